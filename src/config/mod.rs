//! Configuration: Gunicorn's 120 settings, loaded from defaults and environment variables,
//! the Python config file, `GUNICORN_CMD_ARGS` and the command line, in that precedence.
//!
//! One declarative table (`settings.rs` + `table_*.rs`) generates the typed [`Config`] and
//! drives argv parsing (`cli.rs`), config files (`load.rs`), validation (`validate.rs`),
//! `--print-config`, `-h` and `docs/settings.md` (`render.rs`).
//!
//! This module owns turning inputs into an immutable `Config`. It must not bind sockets,
//! load the application, call hooks or install logging; the arbiter and workers do that
//! with the values found here.

#[macro_use]
mod table_core;
#[macro_use]
mod table_more;

mod addr;
mod cli;
mod handle;
mod load;
mod logging;
mod pytext;
mod render;
mod resolved;
mod settings;
mod statics;
mod support;
mod validate;
mod value;
mod worker_class;

#[cfg(test)]
mod tests;

use std::time::Duration;

use ferrocorn_h1::{HeaderMapPolicy, ParserConfig, ProxyMode};
use pyo3::prelude::*;

pub(crate) use addr::parse_address;
pub use addr::{AddrList, BindAddr};
pub use handle::{application_config, is_setting, parse_args, settings_table, ConfigHandle};
pub use logging::LoggerMode;
pub use render::settings_markdown;
pub use resolved::{
    AsgiLoop, AsgiSettings, Lifespan, Protocol, ReloadEngine, Resolved, Serving, StaticMount,
    StaticSettings, WorkerKind,
};
pub use settings::{setting, Action, ArgType, Config, Setting, TABLE};
pub(crate) use validate::legacy_unix_port;
pub use validate::Kind;

/// A configuration problem. `message` is the text to print on stderr (already worded as
/// Gunicorn words it, always naming the setting for invalid values); `exit_code` is the
/// status to exit with (1 for config errors, as Gunicorn).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ConfigError {
    pub message: String,
    pub exit_code: i32,
}

impl ConfigError {
    /// `Error: <reason>`, exit 1.
    pub(crate) fn error(reason: impl std::fmt::Display) -> ConfigError {
        ConfigError {
            message: format!("Error: {reason}"),
            exit_code: 1,
        }
    }

    /// Gunicorn's report for a value its validator rejected:
    /// `Invalid value for <name>: <value>`, two blank lines (Gunicorn prints the first
    /// line with a trailing newline, then `\nError: ...`), then `Error: <reason>`.
    pub(crate) fn invalid(name: &str, shown: &str, reason: &str) -> ConfigError {
        ConfigError {
            message: format!("Invalid value for {name}: {shown}\n\n\nError: {reason}"),
            exit_code: 1,
        }
    }

    /// The exact bytes Gunicorn writes to stderr for this error (it puts a blank line
    /// before `Error: ...`). Print this, then exit with `exit_code`.
    pub fn report(&self) -> String {
        if self.message.starts_with("Error: ") {
            format!("\n{}\n", self.message)
        } else {
            format!("{}\n", self.message)
        }
    }
}

/// Result of [`Config::load`].
pub enum Loaded {
    /// Start the server with this configuration.
    Run(Box<Config>),
    /// Exit now with this status: `-h`, `--version` or an argparse error was already
    /// printed.
    Exit(i32),
}

impl Config {
    /// Build the configuration from `argv` (`argv[0]` is the program name), the process
    /// environment and the config file, exactly in Gunicorn's order. Usage, help, version
    /// and argparse errors are printed here; everything else is returned as a
    /// [`ConfigError`] for the caller to print and exit with.
    pub fn load(py: Python<'_>, argv: &[String]) -> Result<Loaded, ConfigError> {
        load::load(py, argv, &value::Env::from_process())
    }

    /// The application URI: the positional APP_MODULE (or `--paste` URI), else `wsgi_app`.
    pub fn app_uri(&self) -> Option<&str> {
        self.app_module.as_deref().or(self.wsgi_app.as_deref())
    }

    /// The parsed `bind` addresses (Gunicorn's `cfg.address`).
    pub fn address(&self) -> Result<Vec<BindAddr>, ConfigError> {
        self.bind
            .iter()
            .map(|b| {
                addr::parse_address(b, "8000").map_err(|e| ConfigError::invalid("bind", b, &e))
            })
            .collect()
    }

    /// The process-title base: `proc_name`, else `default_proc_name` (APP_MODULE when given).
    pub fn proc_name(&self) -> String {
        self.proc_name
            .clone()
            .unwrap_or_else(|| self.default_proc_name.clone())
    }

    /// The worker type as Gunicorn reports it: the configured name, except that the sync
    /// worker with `threads > 1` is `gthread`.
    pub fn worker_class_str(&self) -> String {
        if resolved::is_sync_worker(&self.worker_class) && self.threads > 1 {
            "gthread".to_string()
        } else {
            self.worker_class.clone()
        }
    }

    /// Recompute the resolved values after the table's values changed (end of loading).
    pub(crate) fn resolve(&mut self) -> Result<(), ConfigError> {
        self.resolved = resolve(self)?;
        Ok(())
    }

    /// The worker type to run; None for a class this release does not implement.
    pub fn worker_kind(&self) -> Option<WorkerKind> {
        self.resolved.worker_kind
    }

    pub fn reload_engine_kind(&self) -> ReloadEngine {
        self.resolved.reload_engine
    }

    /// The serving settings, typed.
    pub fn serving(&self) -> &Serving {
        &self.resolved.serving
    }

    /// The static-file mounts and their cache lifetime.
    pub fn statics(&self) -> &StaticSettings {
        &self.resolved.statics
    }

    /// `raw_env` as `(KEY, VALUE)` pairs, split at the first `=`.
    pub fn env(&self) -> Result<Vec<(String, String)>, ConfigError> {
        self.raw_env
            .iter()
            .map(|item| match item.split_once('=') {
                Some((k, v)) => Ok((k.to_string(), v.to_string())),
                None => Err(ConfigError::invalid(
                    "raw_env",
                    item,
                    &format!("environment setting {} invalid", pytext::py_repr(item)),
                )),
            })
            .collect()
    }

    /// Whether `wsgi.file_wrapper` responses may use sendfile(2): the `sendfile` setting
    /// when set (`--no-sendfile` is False), else `$SENDFILE` (y/1/yes/true enable, anything
    /// else disables), else enabled. Gunicorn treats an explicit `sendfile = True` as
    /// disabling too; we honour the value instead.
    pub fn sendfile_enabled(&self) -> bool {
        if let Some(explicit) = self.sendfile {
            return explicit;
        }
        match std::env::var("SENDFILE") {
            Ok(v) => matches!(v.to_lowercase().as_str(), "y" | "1" | "yes" | "true"),
            Err(_) => true,
        }
    }

    /// TLS is on when a certificate or key file is configured.
    pub fn is_ssl(&self) -> bool {
        self.certfile.as_deref().is_some_and(|s| !s.is_empty())
            || self.keyfile.as_deref().is_some_and(|s| !s.is_empty())
    }

    /// Fail for any setting this release does not implement whose value differs from its
    /// default: `Error: <setting> is not supported yet`, exit 1. A worker class no built-in
    /// worker runs is refused first, on its own, with a message of its own (Gunicorn's
    /// `class uri ... invalid or not found` where Gunicorn has no such class either); for
    /// a dotted path that means importing the class's module, as Gunicorn does at start-up.
    pub fn check_supported(&self) -> Result<(), ConfigError> {
        if self.worker_kind().is_none() {
            return Err(Python::attach(|py| {
                worker_class::refusal(py, &self.worker_class)
            }));
        }
        let mut problems = Vec::new();
        if self.serving().protocol == Protocol::Uwsgi {
            if let Some(kind @ (WorkerKind::Asgi | WorkerKind::Gevent)) = self.worker_kind() {
                let name = if kind == WorkerKind::Asgi {
                    "asgi"
                } else {
                    "gevent"
                };
                problems.push(format!(
                    "protocol = uwsgi is not supported with the {name} worker (the uwsgi protocol \
                     runs on the sync and gthread workers)"
                ));
            }
            if self.serving().proxy_protocol != ProxyMode::Off {
                problems.push(
                    "proxy_protocol cannot be combined with protocol = uwsgi (the uWSGI proxy's \
                     vars name the client)"
                        .to_string(),
                );
            }
        }
        if self.max_worker_memory > 0 {
            if let Err(e) = crate::sys::procmem::available() {
                problems.push(format!(
                    "max_worker_memory needs /proc/PID/smaps_rollup (Linux 4.14 or later) to \
                     read workers' memory, and /proc/self/smaps_rollup cannot be read: {e}"
                ));
            }
        }
        if self.dirty_workers > MAX_DIRTY_WORKERS {
            problems.push(format!(
                "dirty_workers: at most {MAX_DIRTY_WORKERS} dirty workers can run (got {})",
                self.dirty_workers
            ));
        }
        for spec in &self.dirty_apps {
            if let Err(problem) = check_dirty_app_spec(spec) {
                problems.push(problem);
            }
        }
        Python::attach(|py| -> Result<(), ConfigError> {
            if self.worker_kind() == Some(WorkerKind::Gevent) {
                if let Err(problem) = check_gevent(py) {
                    problems.push(problem);
                }
            }
            let defaults = Config::from_defaults(&self.env_orig)?;
            for row in TABLE.iter().filter(|r| !r.supported) {
                let (Some(now), Some(default)) = (
                    self.get_value(py, row.name),
                    defaults.get_value(py, row.name),
                ) else {
                    continue;
                };
                if !now.same(&default) {
                    problems.push(format!("{} is not supported yet", row.name));
                }
            }
            Ok(())
        })?;
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::error(problems.join("; ")))
        }
    }

    /// The environment as it was when the configuration was first read (Gunicorn's
    /// `cfg.env_orig`): what a USR2 re-exec starts from, so `raw_env` does not leak into it.
    pub fn env_orig(&self) -> Vec<(String, String)> {
        self.env_orig
            .vars()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// The debug-level configuration dump the master logs at start-up.
    pub fn current_configuration(&self, py: Python<'_>) -> String {
        render::current_configuration(self, py)
    }

    /// The `--print-config` text: Gunicorn's `str(cfg)`, sorted `name = value` lines.
    pub fn print_config(&self, py: Python<'_>) -> String {
        render::print_config(self, py)
    }

    /// The object hooks see as `server.cfg` / `worker.cfg`: one attribute per setting plus
    /// Gunicorn's derived properties (`address`, `proc_name`, `env`, `sendfile`, ...).
    pub fn to_python(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        render::to_python(self, py)
    }
}

/// The dirty arbiter's own cap (`ferrocorn.dirty.control.MAX_DIRTY_WORKERS`, which TTIN and
/// `dirty add` respect too).
const MAX_DIRTY_WORKERS: i64 = 1024;

/// A `dirty_apps` entry is `module:Class` or `module:Class:N` (N ≥ 1). Only the form is
/// checked here: the master never imports the module (the dirty workers do).
fn check_dirty_app_spec(spec: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("dirty_apps: invalid entry {spec:?}: {why}"));
    let parts: Vec<&str> = spec.split(':').collect();
    let ident = |s: &str| {
        !s.is_empty()
            && s.split('.').all(|p| {
                p.chars()
                    .next()
                    .is_some_and(|c| c.is_alphabetic() || c == '_')
                    && p.chars().all(|c| c.is_alphanumeric() || c == '_')
            })
    };
    match parts.as_slice() {
        [module, class] | [module, class, _] if !ident(module) || !ident(class) => {
            bad("expected module:Class or module:Class:N")
        }
        [_, _] => Ok(()),
        [_, _, n] => match n.parse::<u32>() {
            Ok(n) if n >= 1 => Ok(()),
            _ => bad("the worker count after the class must be a positive integer"),
        },
        _ => bad("expected module:Class or module:Class:N"),
    }
}

/// Seconds as Gunicorn takes them: 0 or less means "off".
fn seconds(n: i64) -> Option<Duration> {
    (n > 0).then(|| Duration::from_secs(n as u64))
}

fn unexpected(name: &str, value: &str) -> ConfigError {
    ConfigError::error(format!("{name} has an unexpected value {value:?}"))
}

fn resolve(cfg: &Config) -> Result<Resolved, ConfigError> {
    let header_map = match cfg.header_map.as_str() {
        "drop" => HeaderMapPolicy::Drop,
        "refuse" => HeaderMapPolicy::Refuse,
        "dangerous" => HeaderMapPolicy::Dangerous,
        other => return Err(unexpected("header_map", other)),
    };
    let proxy_protocol = match cfg.proxy_protocol.as_str() {
        "off" => ProxyMode::Off,
        "v1" => ProxyMode::V1,
        "v2" => ProxyMode::V2,
        "auto" => ProxyMode::Auto,
        other => return Err(unexpected("proxy_protocol", other)),
    };
    let protocol = match cfg.protocol.as_str() {
        "http" => Protocol::Http,
        "uwsgi" => Protocol::Uwsgi,
        other => return Err(unexpected("protocol", other)),
    };
    let reload_engine = match cfg.reload_engine.as_str() {
        "auto" => ReloadEngine::Auto,
        "poll" => ReloadEngine::Poll,
        "inotify" => ReloadEngine::Inotify,
        other => return Err(unexpected("reload_engine", other)),
    };
    let worker_kind = if resolved::is_gthread_worker(&cfg.worker_class)
        || (resolved::is_sync_worker(&cfg.worker_class) && cfg.threads > 1)
    {
        Some(WorkerKind::Gthread)
    } else if resolved::is_sync_worker(&cfg.worker_class) {
        Some(WorkerKind::Sync)
    } else if resolved::is_asgi_worker(&cfg.worker_class) {
        Some(WorkerKind::Asgi)
    } else if resolved::is_gevent_worker(&cfg.worker_class) {
        Some(WorkerKind::Gevent)
    } else {
        None
    };
    let parser = ParserConfig {
        limit_request_line: cfg.limit_request_line,
        limit_request_fields: cfg.limit_request_fields,
        limit_request_field_size: cfg.limit_request_field_size,
        permit_unconventional_http_method: cfg.permit_unconventional_http_method,
        permit_unconventional_http_version: cfg.permit_unconventional_http_version,
        casefold_http_method: cfg.casefold_http_method,
        permit_obsolete_folding: cfg.permit_obsolete_folding,
        strip_header_spaces: cfg.strip_header_spaces,
        header_map,
        permit_missing_host: cfg.permit_missing_host,
        forwarder_headers: cfg.forwarder_headers.clone(),
        secure_scheme_headers: cfg.secure_scheme_headers.clone(),
        is_ssl: cfg.is_ssl(),
    };
    Ok(Resolved {
        worker_kind,
        reload_engine,
        serving: Serving {
            parser,
            proxy_protocol,
            forwarded_allow_ips: cfg.forwarded_allow_ips.clone(),
            proxy_allow_ips: cfg.proxy_allow_ips.clone(),
            protocol,
            uwsgi_allow_ips: cfg.uwsgi_allow_ips.clone(),
            timeout: seconds(cfg.timeout),
            keepalive: seconds(cfg.keepalive),
            graceful_timeout: seconds(cfg.graceful_timeout).unwrap_or_default(),
            asgi: resolve_asgi(cfg)?,
        },
        statics: StaticSettings {
            mounts: statics::resolve(&cfg.static_mount)?,
            max_age: cfg.static_max_age.max(0) as u64,
        },
    })
}

/// The ASGI worker's own settings, typed.
fn resolve_asgi(cfg: &Config) -> Result<AsgiSettings, ConfigError> {
    use resolved::{AsgiLoop, AsgiSettings, Lifespan};
    let event_loop = match cfg.asgi_loop.as_str() {
        "auto" => AsgiLoop::Auto,
        "asyncio" => AsgiLoop::Asyncio,
        "uvloop" => AsgiLoop::Uvloop,
        other => return Err(unexpected("asgi_loop", other)),
    };
    let lifespan = match cfg.asgi_lifespan.as_str() {
        "auto" => Lifespan::Auto,
        "on" => Lifespan::On,
        "off" => Lifespan::Off,
        other => return Err(unexpected("asgi_lifespan", other)),
    };
    Ok(AsgiSettings {
        event_loop,
        lifespan,
        disconnect_grace: Duration::from_secs(cfg.asgi_disconnect_grace_period.max(0) as u64),
        websocket_max_message: cfg.websocket_max_message_size.max(0) as usize,
        root_path: cfg.root_path.clone(),
        worker_connections: cfg.worker_connections.max(1) as usize,
        h11_only: resolved::is_h11_worker(&cfg.worker_class),
    })
}

/// The gevent release Gunicorn 27's gevent worker requires, checked in the master at
/// start-up (importing gevent does not patch anything).
fn check_gevent(py: Python<'_>) -> Result<(), String> {
    const REQUIRED: &str = "gevent worker requires gevent 24.10.1 or higher";
    let version: String = py
        .import("gevent")
        .and_then(|m| m.getattr("__version__")?.extract())
        .map_err(|_| REQUIRED.to_string())?;
    let mut parts = version
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let mut next = || parts.next().unwrap_or(0);
    let found = (next(), next(), next());
    if found < (24, 10, 1) {
        return Err(format!("{REQUIRED} (found {version})"));
    }
    Ok(())
}
