//! Server hooks: the one way to call a configured hook, and the objects hooks receive
//! (`req`, `resp`, `server.LISTENERS`, `worker.tmp`) with Gunicorn's attributes.
//!
//! Owns: calling hooks and building their argument objects. Must not: decide what a hook's
//! failure means (the caller does: the master stops, a worker fails its boot, a signal
//! handler logs and goes on) or touch a connection.

pub mod objects;

use pyo3::prelude::*;

use crate::telemetry::error_log;

/// Call a configured hook (`None`: not configured, nothing happens).
pub fn call_hook<'py, A: pyo3::call::PyCallArgs<'py>>(
    py: Python<'py>,
    hook: Option<&Py<PyAny>>,
    args: A,
) -> PyResult<()> {
    match hook {
        Some(h) => h.call1(py, args).map(|_| ()),
        None => Ok(()),
    }
}

/// Log a hook's exception with its traceback, for callers that go on without it.
pub fn log_hook_error(py: Python<'_>, name: &str, err: &PyErr) {
    error_log::error(&format!(
        "Exception in {name} hook\n{}",
        crate::wsgi::app::format_traceback(py, err)
    ));
}
