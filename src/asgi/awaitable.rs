//! An awaitable that is already done: what `receive()` and `send()` return when they need
//! no wait, so a small request and its response cost no future and no trip through the
//! event loop's scheduler.

use pyo3::exceptions::PyStopIteration;
use pyo3::prelude::*;

#[pyclass(module = "ferrocorn._ferrocorn", name = "Ready")]
pub struct Ready {
    value: Option<Py<PyAny>>,
}

impl Ready {
    pub fn new(value: Option<Py<PyAny>>) -> Ready {
        Ready { value }
    }

    fn finish(&mut self, py: Python<'_>) -> PyErr {
        match self.value.take() {
            Some(v) => PyStopIteration::new_err((v,)),
            None => PyStopIteration::new_err((py.None(),)),
        }
    }
}

#[pymethods]
impl Ready {
    fn __await__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&mut self, py: Python<'_>) -> PyResult<()> {
        Err(self.finish(py))
    }

    fn send(&mut self, py: Python<'_>, _value: &Bound<'_, PyAny>) -> PyResult<()> {
        Err(self.finish(py))
    }

    #[pyo3(signature = (exc, *_rest))]
    fn throw(
        &mut self,
        exc: &Bound<'_, PyAny>,
        _rest: &Bound<'_, pyo3::types::PyTuple>,
    ) -> PyResult<()> {
        Err(PyErr::from_value(exc.clone()))
    }

    fn close(&mut self) {
        self.value = None;
    }
}
