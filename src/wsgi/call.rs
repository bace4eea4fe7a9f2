//! Calling the app (PEP 3333): `app(environ, start_response)`, iterating its result into the
//! response sink, `wsgi.file_wrapper` results handed over whole, and `close()` on the result
//! on every path.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};

use super::app::format_traceback;
use super::response::{carried_exception, StartResponse};
use crate::http::{self, SharedExchange};
use crate::telemetry::error_log;

fn connection_error(e: &std::io::Error) {
    error_log::debug(&format!("Ignoring connection error while writing: {e}"));
}

/// Send a `wsgi.file_wrapper` result as a file. False when the result is not a wrapper
/// over a real file, so the caller iterates it instead (BytesIO, sockets, anything without
/// `fileno`).
fn try_send_file(
    py: Python<'_>,
    result: &Bound<'_, PyAny>,
    wrapper: Option<&Py<PyAny>>,
    exchange: &SharedExchange,
) -> PyResult<bool> {
    let Some(wrapper) = wrapper else {
        return Ok(false);
    };
    if !result.is_instance(wrapper.bind(py))? {
        return Ok(false);
    }
    let fileno = result
        .getattr("filelike")
        .and_then(|f| f.call_method0("fileno"))
        .and_then(|n| n.extract::<i32>());
    let Ok(fileno) = fileno else {
        return Ok(false);
    };
    let mut ex = http::lock_py(py, exchange)?;
    match ex.send_file(py, fileno) {
        Ok(sent) => Ok(sent),
        Err(e) => {
            connection_error(&e);
            ex.close_after();
            Ok(true)
        }
    }
}

/// Call the app and send its result. `file_wrapper`: the `wsgi.file_wrapper` class whose
/// results may go out as files (None when sendfile is off). Returns the app's exception, if
/// it raised one; connection errors are not the app's and only close the connection.
pub fn run_app(
    py: Python<'_>,
    app: &Py<PyAny>,
    environ: &Bound<'_, PyDict>,
    exchange: &SharedExchange,
    file_wrapper: Option<&Py<PyAny>>,
) -> Option<PyErr> {
    let start_response = match Py::new(py, StartResponse::new(exchange.clone())) {
        Ok(sr) => sr,
        Err(e) => return Some(e),
    };
    let result = match app.bind(py).call1((environ, start_response)) {
        Ok(r) => r,
        Err(e) => return Some(e),
    };
    // A list or tuple is the whole body, in memory: nothing is gained by writing it before
    // the app is done, and the worker may send it from another thread. Anything else may
    // stream (a generator pausing between chunks), so it goes out as it comes.
    if result.is_exact_instance_of::<PyList>() || result.is_exact_instance_of::<PyTuple>() {
        http::lock(py, exchange).body_in_memory();
    }
    let iterate = || -> PyResult<()> {
        let items = if try_send_file(py, &result, file_wrapper, exchange)? {
            None
        } else {
            Some(result.try_iter()?)
        };
        for item in items.into_iter().flatten() {
            let item = item?;
            let bytes = item.cast::<PyBytes>().map_err(|_| {
                pyo3::exceptions::PyTypeError::new_err(format!("{item:?} is not a byte"))
            })?;
            let mut ex = http::lock_py(py, exchange)?;
            if let Err(e) = ex.write_body(py, bytes.as_bytes()) {
                let e = carried_exception(e).map_or_else(Ok, Err);
                ex.close_after();
                // The client went away: stop producing, but still close the result below.
                return e.map(|e| connection_error(&e));
            }
        }
        let mut ex = http::lock_py(py, exchange)?;
        if ex.response().status.is_none() {
            return Err(pyo3::exceptions::PyAssertionError::new_err(
                "The application did not call start_response()",
            ));
        }
        if let Err(e) = ex.finish_response(py) {
            connection_error(&e);
            ex.close_after();
        }
        Ok(())
    };
    let error = iterate().err();
    if let Ok(close) = result.getattr("close") {
        if let Err(e) = close.call0() {
            error_log::error(&format!(
                "Error while closing the response\n{}",
                format_traceback(py, &e)
            ));
        }
    }
    error
}
