//! `start_response`, the `write()` callable it returns, and `wsgi.early_hints`: PEP 3333's
//! rules for calling them (`exc_info`, "headers already set") and the conversion of Python
//! values; the response itself is validated and framed by the request's `http::ResponseSink`.

use pyo3::exceptions::{PyAssertionError, PyIOError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};

use crate::http::{self, SharedExchange};

fn header_list(headers: &Bound<'_, PyAny>) -> PyResult<Vec<(String, String)>> {
    let mut out = Vec::new();
    for item in headers.try_iter()? {
        let item = item?;
        // Like Gunicorn's `for name, value in headers`, any two-item sequence will do.
        let pair: Vec<Bound<'_, PyAny>> = item
            .try_iter()
            .and_then(|it| it.collect::<PyResult<Vec<_>>>())
            .map_err(|_| PyTypeError::new_err(format!("{item:?} is not a (name, value) pair")))?;
        let [name, value] = <[Bound<'_, PyAny>; 2]>::try_from(pair)
            .map_err(|_| PyTypeError::new_err(format!("{item:?} is not a (name, value) pair")))?;
        let name = name
            .cast::<PyString>()
            .map_err(|_| PyTypeError::new_err(format!("{name:?} is not a string")))?
            .to_str()?
            .to_string();
        let value = value
            .cast::<PyString>()
            .map_err(|_| PyTypeError::new_err(format!("{value:?} is not a string")))?
            .to_str()?
            .to_string();
        out.push((name, value));
    }
    Ok(out)
}

/// The `start_response` callable handed to the app.
#[pyclass(module = "ferrocorn", name = "StartResponse")]
pub struct StartResponse {
    exchange: SharedExchange,
}

impl StartResponse {
    pub fn new(exchange: SharedExchange) -> Self {
        StartResponse { exchange }
    }
}

#[pymethods]
impl StartResponse {
    #[pyo3(signature = (status, headers, exc_info=None))]
    fn __call__(
        &self,
        py: Python<'_>,
        status: &Bound<'_, PyAny>,
        headers: &Bound<'_, PyAny>,
        exc_info: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<WriteFn> {
        let exc_info = exc_info.filter(|e| !e.is_none());
        let (headers_sent, started) = {
            let ex = http::lock_py(py, &self.exchange)?;
            (ex.headers_sent(), ex.response().status.is_some())
        };
        if let Some(info) = exc_info {
            if headers_sent {
                // PEP 3333: too late to change the response; re-raise the app's error.
                let exc = info.get_item(1)?;
                return Err(PyErr::from_value(exc));
            }
        } else if started {
            return Err(PyAssertionError::new_err("Response headers already set!"));
        }
        let status = status
            .cast::<PyString>()
            .map_err(|_| PyTypeError::new_err(format!("{status:?} is not a string")))?
            .to_str()?
            .to_string();
        let headers = header_list(headers)?;
        http::lock_py(py, &self.exchange)?
            .start_response(&status, &headers)
            .map_err(PyValueError::new_err)?;
        Ok(WriteFn {
            exchange: self.exchange.clone(),
        })
    }
}

/// The legacy `write(data)` callable returned by `start_response`.
#[pyclass(module = "ferrocorn", name = "Write")]
pub struct WriteFn {
    exchange: SharedExchange,
}

#[pymethods]
impl WriteFn {
    fn __call__(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let bytes = data
            .cast::<PyBytes>()
            .map_err(|_| PyTypeError::new_err(format!("{data:?} is not a byte")))?;
        http::lock_py(py, &self.exchange)?
            .write_body(py, bytes.as_bytes())
            .map_err(|e| carried_exception(e).unwrap_or_else(|e| PyIOError::new_err(e.to_string())))
    }
}

fn text_or_latin1(v: &Bound<'_, PyAny>) -> PyResult<String> {
    if let Ok(s) = v.cast::<PyString>() {
        return Ok(s.to_str()?.to_string());
    }
    if let Ok(b) = v.cast::<PyBytes>() {
        return Ok(b.as_bytes().iter().map(|&c| c as char).collect());
    }
    Err(PyTypeError::new_err(format!("{v:?} is not a string")))
}

/// `environ['wsgi.early_hints']`: sends `103 Early Hints` with the given headers, as many
/// times as the app calls it, until the response starts. Ignored on HTTP/1.0 (which has no
/// 1xx responses) and after the response head went out, as Gunicorn does.
#[pyclass(module = "ferrocorn", name = "EarlyHints")]
pub struct EarlyHints {
    exchange: SharedExchange,
}

impl EarlyHints {
    pub fn new(exchange: SharedExchange) -> Self {
        EarlyHints { exchange }
    }
}

#[pymethods]
impl EarlyHints {
    fn __call__(&self, py: Python<'_>, headers: &Bound<'_, PyAny>) -> PyResult<()> {
        let mut list = Vec::new();
        for item in headers.try_iter()? {
            let item = item?;
            let pair: Vec<Bound<'_, PyAny>> = item.try_iter()?.collect::<PyResult<_>>()?;
            let [name, value] = <[Bound<'_, PyAny>; 2]>::try_from(pair).map_err(|_| {
                PyTypeError::new_err(format!("{item:?} is not a (name, value) pair"))
            })?;
            list.push((text_or_latin1(&name)?, text_or_latin1(&value)?));
        }
        http::lock_py(py, &self.exchange)?
            .early_hints(py, &list)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::InvalidInput => PyValueError::new_err(e.to_string()),
                _ => PyIOError::new_err(e.to_string()),
            })
    }
}

/// A Python exception a write carried rather than a connection error: one thrown into a
/// greenlet while its write waited (the gevent worker), such as a `gevent.Timeout` the app
/// set, which must reach the app as itself.
pub(super) fn carried_exception(e: std::io::Error) -> Result<PyErr, std::io::Error> {
    if e.get_ref().is_some_and(|inner| inner.is::<PyErr>()) {
        Ok(PyErr::from(e))
    } else {
        Err(e)
    }
}
