//! Gunicorn's logging with a Rust engine: the process-wide error log, the access log and the
//! Python objects (`server.log`, `worker.log`, `wsgi.errors`) that write to them.
//!
//! Owns: where log lines go (stderr, stdout or files opened for append, syslog), reopening
//! them on USR1, the exact line shapes Gunicorn 27 writes, the `access_log_format` engine,
//! StatsD, the per-request counters the Prometheus endpoint adds up, and handing every log
//! call to a Python logger object instead when `logconfig*` or a custom `logger_class` asks
//! for one (`pyroute`, `setup`). Must not touch: configuration parsing (settings arrive
//! typed in `Config`), sockets other than the syslog and StatsD ones, and Python's
//! `logging` itself, which only the Python logger (`ferrocorn.glogging`) configures.
//!
//! Destinations are process-global and lock-free on the write path, so they keep working in
//! forked workers and in every thread of a gthread worker.

pub mod access;
mod basic_auth;
pub mod error_log;
pub mod metrics;
pub mod prometheus;
mod published;
pub(crate) mod pyformat;
pub mod pylogging;
pub mod pyroute;
pub mod setup;
mod sink;
mod stamp;
pub mod statsd;
pub mod syslog;

#[cfg(test)]
mod access_tests;
#[cfg(test)]
mod pyformat_tests;
#[cfg(test)]
mod pylogging_tests;
#[cfg(test)]
mod statsd_tests;
#[cfg(test)]
mod syslog_tests;

use std::io;
use std::path::PathBuf;

use pyo3::prelude::*;

pub use access::{AccessFormat, AccessRecord};
pub use error_log::Level;
pub use pylogging::{ErrorsStream, Logger};

/// Everything that can go wrong while setting up or reopening a log, or rendering an access line.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// Gunicorn's `check_is_writable` wording, prefixed with the setting that named the file.
    #[error("{setting}: '{}' isn't writable [{}]", .path.display(), sink::python_os_error(.source))]
    NotWritable {
        setting: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// USR1 could not re-open a log file; the old file stays in use.
    #[error("{setting}: cannot reopen '{}' [{}]", .path.display(), sink::python_os_error(.source))]
    Reopen {
        setting: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// `access_log_format` is not a valid Python %-format for the atom dict.
    #[error("access_log_format: {message}")]
    Format { message: String },
    /// A valid format met a value its conversion cannot take (e.g. `%(h)d`), as Python would
    /// raise at logging time.
    #[error("access_log_format {format:?}: {message}")]
    Render { format: String, message: String },
}

impl TelemetryError {
    /// The setting the error is about (`errorlog`, `accesslog` or `access_log_format`).
    pub fn setting(&self) -> &'static str {
        match self {
            TelemetryError::NotWritable { setting, .. }
            | TelemetryError::Reopen { setting, .. } => setting,
            TelemetryError::Format { .. } | TelemetryError::Render { .. } => "access_log_format",
        }
    }
}

/// Adds `Logger` and `ErrorsStream` to the extension module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Logger>()?;
    m.add_class::<ErrorsStream>()?;
    Ok(())
}

/// Serialises the tests that touch the process-global destinations, since cargo runs tests on
/// several threads of one process.
#[cfg(test)]
pub(crate) static GLOBAL_TEST_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[cfg(test)]
pub(crate) fn global_test_guard() -> std::sync::MutexGuard<'static, ()> {
    GLOBAL_TEST_LOCK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The full Python traceback text of `err`, as `traceback.format_exception` prints it.
pub fn format_traceback(py: Python<'_>, err: &PyErr) -> String {
    let fmt = || -> PyResult<String> {
        let tb = py.import("traceback")?;
        let lines = tb.call_method1(
            "format_exception",
            (err.get_type(py), err.value(py), err.traceback(py)),
        )?;
        let text: String = pyo3::types::PyString::new(py, "")
            .call_method1("join", (lines,))?
            .extract()?;
        Ok(text.trim_end().to_string())
    };
    fmt().unwrap_or_else(|_| format!("{}", err))
}
