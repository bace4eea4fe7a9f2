//! `wsgi.input`: the request body as a Python file-like object, read through the request's
//! `http::BodySource`. A body already in memory is read with the GIL held (letting go of it
//! would hand it to another thread for nothing); anything that may wait for the client is
//! read with the GIL released.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::http::{self, Exchange, SharedExchange};

/// The Python object behind `environ['wsgi.input']`.
#[pyclass(module = "ferrocorn", name = "Input")]
pub struct Input {
    exchange: SharedExchange,
}

impl Input {
    pub fn new(exchange: SharedExchange) -> Self {
        Input { exchange }
    }

    fn with<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut dyn Exchange) -> std::io::Result<T> + Send,
    ) -> PyResult<T> {
        let mut ex = http::lock_py(py, &self.exchange)?;
        let result = if ex.body_buffered() {
            f(&mut *ex)
        } else {
            drop(ex);
            let exchange = self.exchange.clone();
            py.detach(move || {
                let mut ex = exchange.lock().unwrap_or_else(|p| p.into_inner());
                f(&mut *ex)
            })
        };
        // The OSError subclass the kind calls for, as Python's socket raises it: a client
        // gone silent is a TimeoutError, one gone away a ConnectionResetError.
        result.map_err(PyErr::from)
    }
}

fn size_arg(size: Option<isize>) -> Option<usize> {
    match size {
        Some(n) if n >= 0 => Some(n as usize),
        _ => None,
    }
}

#[pymethods]
impl Input {
    #[pyo3(signature = (size=None))]
    fn read<'py>(&self, py: Python<'py>, size: Option<isize>) -> PyResult<Bound<'py, PyBytes>> {
        let n = size_arg(size);
        if let Ok(mut ex) = self.exchange.try_lock() {
            let mut bytes = None;
            if ex.read_body_in_place(n, &mut |data| bytes = Some(PyBytes::new(py, data))) {
                if let Some(bytes) = bytes {
                    return Ok(bytes);
                }
            }
        }
        let data = self.with(py, move |ex| ex.read_body(n))?;
        Ok(PyBytes::new(py, &data))
    }

    #[pyo3(signature = (size=None))]
    fn readline<'py>(&self, py: Python<'py>, size: Option<isize>) -> PyResult<Bound<'py, PyBytes>> {
        let n = size_arg(size);
        let data = self.with(py, move |ex| ex.read_body_line(n))?;
        Ok(PyBytes::new(py, &data))
    }

    #[pyo3(signature = (hint=None))]
    fn readlines<'py>(
        &self,
        py: Python<'py>,
        hint: Option<isize>,
    ) -> PyResult<Vec<Bound<'py, PyBytes>>> {
        let hint = size_arg(hint).filter(|h| *h > 0);
        let lines = self.with(py, move |ex| {
            let mut lines = Vec::new();
            let mut total = 0;
            loop {
                let line = ex.read_body_line(None)?;
                if line.is_empty() {
                    break;
                }
                total += line.len();
                lines.push(line);
                if hint.is_some_and(|h| total >= h) {
                    break;
                }
            }
            Ok(lines)
        })?;
        Ok(lines.iter().map(|l| PyBytes::new(py, l)).collect())
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let line = self.with(py, |ex| ex.read_body_line(None))?;
        Ok((!line.is_empty()).then(|| PyBytes::new(py, &line)))
    }

    fn close(&self) {}

    fn seekable(&self) -> bool {
        false
    }

    fn readable(&self) -> bool {
        true
    }

    fn fileno(&self) -> PyResult<i32> {
        Err(PyValueError::new_err("wsgi.input has no file descriptor"))
    }
}
