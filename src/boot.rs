//! Starting the server: `ferrocorn [OPTIONS] [APP_MODULE]` from argv to a running master.
//! Configuration, logging, the checks Gunicorn makes before binding, optional preload and
//! daemonizing, then the arbiter. Everything after the fork belongs to `workers`.

use pyo3::prelude::*;

use crate::config::{Config, Loaded};
use crate::errors::exit;
use crate::{arbiter, sys, telemetry, tls, workers, wsgi, VERSION};

/// Python modules the worker code uses (see `run`).
const WORKER_MODULES: &[&str] = &[
    "random",
    "signal",
    "socket",
    "traceback",
    "threading",
    "ferrocorn._objects",
    "ferrocorn._stacks",
    "ferrocorn._loader",
    "ferrocorn._reloader",
];

fn eprint_flush(text: &str) {
    use std::io::Write;
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{text}");
    let _ = err.flush();
}

fn insert_pythonpath(py: Python<'_>, cfg: &Config) -> PyResult<()> {
    let Some(pp) = cfg.pythonpath.as_deref() else {
        return Ok(());
    };
    let sys_path = py.import("sys")?.getattr("path")?;
    let paths: Vec<String> = pp
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            std::fs::canonicalize(p)
                .map(|c| c.to_string_lossy().into_owned())
                .unwrap_or_else(|_| p.to_string())
        })
        .collect();
    for p in paths.iter().rev() {
        sys_path.call_method1("insert", (0, p))?;
    }
    Ok(())
}

/// `ferrocorn [OPTIONS] [APP_MODULE]`: returns the process exit status.
pub fn run(py: Python<'_>, argv: Vec<String>) -> i32 {
    // Where the command was started (before any --chdir), for USR2 re-exec.
    let start_cwd = std::env::current_dir().unwrap_or_else(|_| "/".into());
    match Config::load(py, &argv) {
        Ok(Loaded::Run(cfg)) => start(py, *cfg, argv, start_cwd),
        Ok(Loaded::Exit(code)) => code,
        Err(e) => {
            eprint_flush(&e.report());
            e.exit_code
        }
    }
}

/// The embedding API's `BaseApplication.run()`: serve with the settings of
/// `application.cfg` (already loaded by its `load_config()`), loading the app through
/// `application.wsgi()`. Returns the process exit status.
pub fn run_application(py: Python<'_>, application: &Bound<'_, PyAny>) -> PyResult<i32> {
    let start_cwd = std::env::current_dir().unwrap_or_else(|_| "/".into());
    let mut cfg = crate::config::application_config(application)?;
    if let Err(e) = cfg.resolve() {
        eprint_flush(&e.report());
        return Ok(e.exit_code);
    }
    let argv: Vec<String> = py.import("sys")?.getattr("argv")?.extract()?;
    Ok(start(py, cfg, argv, start_cwd))
}

/// From a loaded configuration to a running master, whatever loaded it.
fn start(py: Python<'_>, cfg: Config, argv: Vec<String>, start_cwd: std::path::PathBuf) -> i32 {
    // Before the checks: a custom worker class is imported from these paths to word its
    // refusal, as Gunicorn imports it from them.
    if let Err(e) = insert_pythonpath(py, &cfg) {
        eprint_flush(&format!("\nError: {e}\n"));
        return exit::CONFIG;
    }
    if let Err(e) = cfg.check_supported() {
        eprint_flush(&e.report());
        return e.exit_code;
    }
    // Gunicorn builds its logger (and with it syslog, StatsD and Python logging
    // configuration) before anything else, so a bad logging setting stops start-up here.
    let logged = cfg
        .to_python(py)
        .map_err(|e| e.to_string())
        .and_then(|cfg_obj| telemetry::setup::setup(py, &cfg, cfg_obj.bind(py)));
    if let Err(e) = logged {
        eprint_flush(&format!("\nError: {e}\n"));
        return exit::CONFIG;
    }
    // Workers that drop privileges must still be able to write and reopen the log files.
    telemetry::error_log::chown(cfg.user, cfg.group);
    telemetry::access::chown(cfg.user, cfg.group);
    if cfg.application.is_none() && cfg.app_uri().is_none() {
        eprint_flush("\nError: No application module specified.\n");
        return exit::CONFIG;
    }

    if cfg.print_config || cfg.check_config {
        if cfg.print_config {
            println!("{}", cfg.print_config(py));
        }
        return match wsgi::app::load(py, &cfg) {
            Ok(_) => exit::OK,
            Err(f) => {
                eprint_flush(&format!(
                    "\nError while loading the application:\n\n{}",
                    f.traceback
                ));
                exit::CONFIG
            }
        };
    }

    if let Err(e) = arbiter::spew(py, cfg.spew) {
        eprint_flush(&format!("\nError: {e}\n"));
        return exit::CONFIG;
    }

    if let Ok(os) = py.import("os") {
        if let Ok(environ) = os.getattr("environ") {
            let _ = environ.set_item("SERVER_SOFTWARE", format!("ferrocorn/{VERSION}"));
        }
    }
    if let Err(e) = workers::export_env(py, &cfg) {
        eprint_flush(&format!("\nError: {e}\n"));
        return exit::CONFIG;
    }

    // Everything a worker imports for itself, imported once here: workers then pay nothing
    // for it, and a worker that drops privileges (--user) no longer needs read access to
    // the interpreter's library directories.
    // `ferrocorn._tls` only with TLS on: it subclasses `ssl`'s classes, which the gevent
    // worker's monkey-patching warns about when they exist before it runs.
    let tls_module = cfg.is_ssl().then_some("ferrocorn._tls");
    for module in WORKER_MODULES.iter().copied().chain(tls_module) {
        if let Err(e) = py.import(module) {
            eprint_flush(&format!("\nError: cannot import {module}: {e}\n"));
            return exit::CONFIG;
        }
    }
    // TLS files are read (and the ssl_context hook run) here, so a bad certificate stops
    // start-up with a message naming its setting instead of failing every connection.
    if let Err(e) = tls::prepare(py, &cfg) {
        eprint_flush(&format!("\nError: {e}\n"));
        return exit::CONFIG;
    }
    // Optional, as in Gunicorn: process titles need the setproctitle package.
    let _ = py.import("setproctitle");

    // A USR2 child is already detached: it inherited the old master's situation.
    if cfg.daemon && std::env::var_os("GUNICORN_FD").is_none() {
        if std::env::var_os("NOTIFY_SOCKET").is_some() {
            eprint_flush(
                "Warning: ferrocorn was started in daemon mode with NOTIFY_SOCKET set; \
                 systemd should run it in the foreground (Type=notify) instead.",
            );
        }
        if let Err(e) = sys::process::daemonize(py, cfg.enable_stdio_inheritance) {
            eprint_flush(&format!("\nError: could not daemonize: {e}\n"));
            return exit::CONFIG;
        }
        // Daemonizing pointed descriptors 1 and 2 at /dev/null; capture_output takes them
        // back (Gunicorn builds its logger after daemonizing, which has the same effect).
        if cfg.capture_output {
            let _ = telemetry::setup::reopen(py, true, &cfg.errorlog);
        }
    }

    let app = if cfg.preload_app {
        match wsgi::app::load(py, &cfg) {
            Ok(app) => Some(app),
            Err(f) => {
                eprint_flush(&f.traceback);
                return f.exit_code;
            }
        }
    } else {
        None
    };

    match arbiter::Arbiter::new(py, cfg, argv, app, start_cwd) {
        Ok(a) => a.run(),
        Err(e) => {
            eprint_flush(&format!("\nError: {e}\n"));
            exit::CONFIG
        }
    }
}
