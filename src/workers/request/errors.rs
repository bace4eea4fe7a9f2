//! What happens when serving a request fails: Gunicorn's `handle_error` for an exception
//! from the app (a 500 page, or a body parse error's own page, or only a traceback when
//! the response had already started), and the last line of defence for a panic.

use pyo3::prelude::*;

use crate::http::{self, ErrorPage, Request, SharedExchange};
use crate::telemetry::error_log;

/// Answer an app exception (Gunicorn's `Worker.handle_error`). The connection closes after.
/// The traceback (which runs the exception's Python `__str__`) is formatted without the
/// exchange locked: that Python code may touch `wsgi.input` or `write`.
pub(super) fn handle_error(py: Python<'_>, exchange: &SharedExchange, req: &Request, err: &PyErr) {
    let (headers_sent, body_error) = {
        let mut ex = http::lock(py, exchange);
        ex.close_after();
        let sent = ex.headers_sent();
        (sent, if sent { None } else { ex.take_body_error() })
    };
    if headers_sent {
        error_log::exception_py(py, "Error handling request", err);
    } else if let Some(body_error) = body_error {
        // The app failed because the body could not be read: the client gets the parse
        // error's status, as from Gunicorn's parser.
        http::lock(py, exchange).send_error_page(py, ErrorPage::BadBody(&body_error));
    } else {
        let msg = format!("Error handling request {} {}", req.method, req.uri);
        error_log::exception_py(py, &msg, err);
        http::lock(py, exchange).send_error_page(py, ErrorPage::Internal);
    }
}

/// Log a panic caught on the request path: it cost the connection, never the worker.
pub fn log_request_panic(panic: Box<dyn std::any::Any + Send>) {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    error_log::error(&format!(
        "Internal error while handling a request (connection closed): {what}"
    ));
}
