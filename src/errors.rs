//! Crate-wide error type and the single conversion point to Python exceptions.
//!
//! Inside the crate everything returns `Result<_, Error>`; only `lib.rs` turns an `Error`
//! into a Python exception (or an exit status). Nothing here logs: callers decide.

use pyo3::PyErr;

/// Gunicorn's exit statuses, which process managers and users rely on.
pub mod exit {
    pub const OK: i32 = 0;
    pub const CONFIG: i32 = 1;
    pub const WORKER_BOOT_ERROR: i32 = 3;
    pub const APP_LOAD_ERROR: i32 = 4;
    pub const UNHANDLED: i32 = 255;
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Python(#[from] PyErr),
    /// The master must stop with this status (worker boot or app-load failure).
    #[error("{reason}")]
    Halt { reason: String, status: i32 },
    /// Leave this process now with the status, nothing more to log. Used by a forked worker
    /// unwinding out of the master's call stack, and for Gunicorn's direct `sys.exit` paths.
    #[error("exit {0}")]
    Exit(i32),
}

impl From<nix::Error> for Error {
    fn from(e: nix::Error) -> Self {
        Error::Io(std::io::Error::from(e))
    }
}

impl From<crate::config::ConfigError> for Error {
    fn from(e: crate::config::ConfigError) -> Self {
        Error::Config(e.message)
    }
}

impl From<crate::telemetry::TelemetryError> for Error {
    fn from(e: crate::telemetry::TelemetryError) -> Self {
        Error::Config(e.to_string())
    }
}

impl From<Error> for PyErr {
    fn from(e: Error) -> PyErr {
        match e {
            Error::Python(err) => err,
            other => pyo3::exceptions::PyRuntimeError::new_err(other.to_string()),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
