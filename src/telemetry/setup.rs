//! Putting the logging settings into effect: at start-up in the master, again on HUP, and
//! the USR1 reopen in every process. Gunicorn does this in `Logger.__init__`/`setup` and
//! `reopen_files`; here it also decides who writes: Rust (the default logger, with syslog
//! and StatsD from Rust) or a Python logger object (`logconfig*`, a user `logger_class`).
//!
//! Owns: the choice between the two paths, the Python logger's life (build, `setup` on
//! reload with the previous configuration restored on failure, `reopen_files`), and
//! `capture_output` on the Rust path. Must not touch: line shapes and transports (the
//! sibling modules), and what the settings mean (`Config::logger_mode` decides that).

use pyo3::prelude::*;

use super::statsd::{self, StatsdSettings};
use super::syslog::{self, SyslogSettings};
use super::{access, error_log, pyroute};
use crate::config::{Config, LoggerMode};

fn syslog_settings(cfg: &Config) -> Option<SyslogSettings> {
    cfg.syslog.then(|| SyslogSettings {
        addr: cfg.syslog_addr.clone(),
        prefix: cfg.syslog_prefix.clone(),
        facility: cfg.syslog_facility.clone(),
        proc_name: cfg.proc_name(),
        access: !cfg.disable_redirect_access_to_syslog,
        rfc5424: cfg.syslog_rfc5424,
    })
}

fn statsd_settings(cfg: &Config) -> Option<StatsdSettings> {
    cfg.statsd_host.as_ref().map(|host| StatsdSettings {
        host: host.clone(),
        prefix: cfg.statsd_prefix.clone(),
        tags: cfg.dogstatsd_tags.clone(),
    })
}

/// The logging set-up of the master at start-up. `cfg_obj` is the Python view of `cfg`
/// that a Python logger keeps as `self.cfg`. The error is the text after `Error: `.
pub fn setup(py: Python<'_>, cfg: &Config, cfg_obj: &Bound<'_, PyAny>) -> Result<(), String> {
    open_logs(cfg)?;
    match cfg.logger_mode() {
        LoggerMode::Rust {
            statsd: with_statsd,
        } => {
            syslog::configure(syslog_settings(cfg).as_ref())?;
            let settings = statsd_settings(cfg).filter(|_| with_statsd);
            statsd::configure(settings.as_ref())?;
            pyroute::install(None, 0, error_log::write_raw);
            capture_output(py, cfg);
        }
        LoggerMode::Python { class } => {
            // Built first: if the class or its logging configuration fails, syslog and
            // StatsD stay as they were (a failed HUP keeps the previous set-up).
            let logger = build(py, &class, cfg_obj).map_err(|e| python_error(py, &e))?;
            syslog::configure(None)?;
            statsd::configure(None)?;
            let level = pyroute::effective_level(py, logger.bind(py));
            pyroute::install(Some(logger), level, error_log::write_raw);
        }
    }
    Ok(())
}

/// The error and access log destinations and format (both paths: `wsgi.errors` and the
/// fallback writes use the error log's even in Python mode).
fn open_logs(cfg: &Config) -> Result<(), String> {
    error_log::init(&cfg.errorlog, &cfg.loglevel)
        .and_then(|()| access::init(cfg.accesslog.as_deref(), &cfg.access_log_format))
        .map_err(|e| e.to_string())
}

/// HUP: the same set-up with the new configuration. A Python logger of the same class is
/// kept and `setup(cfg)` re-run on it, as Gunicorn 26.1+ does; if that fails, it is set up
/// again with `old_obj` and the error returned, so logging keeps working as before.
pub fn reload(
    py: Python<'_>,
    cfg: &Config,
    cfg_obj: &Bound<'_, PyAny>,
    old_obj: &Bound<'_, PyAny>,
) -> Result<(), String> {
    let current = pyroute::logger();
    let same_class = match (&current, cfg.logger_mode()) {
        (Some(logger), LoggerMode::Python { class }) => {
            let loaded = load_class(py, &class).map_err(|e| python_error(py, &e))?;
            logger.bind(py).get_type().is(&loaded)
        }
        _ => false,
    };
    let (Some(logger), true) = (current, same_class) else {
        return setup(py, cfg, cfg_obj);
    };
    open_logs(cfg)?;
    let logger = logger.bind(py);
    if let Err(e) = logger.call_method1("setup", (cfg_obj,)) {
        let text = python_error(py, &e);
        let _ = logger.call_method1("setup", (old_obj,));
        return Err(text);
    }
    pyroute::install(
        Some(logger.clone().unbind()),
        pyroute::effective_level(py, logger),
        error_log::write_raw,
    );
    Ok(())
}

/// USR1 (master and workers): reopen the log files by name, then redo `capture_output`.
pub fn reopen(py: Python<'_>, cfg_capture: bool, errorlog: &str) -> Result<(), String> {
    // Rust's own descriptors too: `wsgi.errors` and the fallback writes use them.
    let result = py.detach(|| error_log::reopen().and_then(|()| access::reopen()));
    if let Some(logger) = pyroute::logger() {
        return logger
            .bind(py)
            .call_method0("reopen_files")
            .map(drop)
            .map_err(|e| python_error(py, &e))
            .and(result.map_err(|e| e.to_string()));
    }
    if cfg_capture && errorlog != "-" {
        redirect_stdio(py);
    }
    result.map_err(|e| e.to_string())
}

/// What hooks see as `server.log` and `worker.log`: the Python logger when there is one,
/// else the Rust one.
pub fn logger_object(py: Python<'_>) -> PyResult<Py<PyAny>> {
    match pyroute::logger() {
        Some(logger) => Ok(logger.clone_ref(py)),
        None => Ok(Py::new(py, super::pylogging::Logger::new())?.into_any()),
    }
}

/// In a freshly forked worker: StatsD batches from here on (see `statsd`), and output
/// captured into the error log is line-buffered so a `print` shows up when it happens.
pub fn after_fork_in_worker(py: Python<'_>, capture: bool) {
    statsd::after_fork_in_worker();
    if capture {
        let _ = py.run(
            c"import sys\nfor s in (sys.stdout, sys.stderr):\n    getattr(s, 'reconfigure', lambda **k: None)(line_buffering=True)\n",
            None,
            None,
        );
    }
}

/// `ferrocorn.glogging.load_logger_class(uri)`: Gunicorn's and ferrocorn's names mapped to
/// ferrocorn's classes, anything else imported.
fn load_class<'py>(py: Python<'py>, uri: &str) -> PyResult<Bound<'py, PyAny>> {
    py.import("ferrocorn.glogging")?
        .call_method1("load_logger_class", (uri,))
}

fn build(py: Python<'_>, class: &str, cfg_obj: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
    Ok(load_class(py, class)?.call1((cfg_obj,))?.unbind())
}

/// The message of a Python exception, as Gunicorn prints `Error: <message>`.
fn python_error(py: Python<'_>, err: &PyErr) -> String {
    err.value(py)
        .str()
        .map(|s| s.to_string())
        .unwrap_or_else(|_| err.to_string())
}

/// `capture_output` on the Rust path: with `errorlog` a file, descriptors 1 and 2 point at
/// it, so anything a worker prints, from Python or C, lands in the error log.
fn capture_output(py: Python<'_>, cfg: &Config) {
    if cfg.capture_output && cfg.errorlog != "-" {
        redirect_stdio(py);
    }
}

fn redirect_stdio(py: Python<'_>) {
    // Python's buffers would otherwise be written after the switch, to the new file, or lost.
    let _ = py.run(
        c"import sys\nfor s in (sys.stdout, sys.stderr):\n    s is not None and s.flush()\n",
        None,
        None,
    );
    if let Err(e) = error_log::redirect_stdio() {
        error_log::warning(&format!("capture_output: cannot redirect output: {e}"));
    }
}
