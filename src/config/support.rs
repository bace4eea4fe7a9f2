//! Access to `support.py`, the Python half of the config layer, compiled once per
//! interpreter.
//!
//! Owns only the embedded module and thin typed wrappers around its functions; deciding
//! what to do with their results belongs to the validators and the loader.

use std::ffi::CString;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyDict;

static MODULE: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

/// The compiled support module.
pub(crate) fn module(py: Python<'_>) -> PyResult<&Bound<'_, PyModule>> {
    let m = MODULE.get_or_try_init(py, || {
        let code = CString::new(include_str!("support.py"))
            .map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))?;
        PyModule::from_code(
            py,
            &code,
            c"<ferrocorn config support>",
            c"_ferrocorn_config_support",
        )
        .map(Bound::unbind)
    })?;
    Ok(m.bind(py))
}

/// The built-in default function for a hook setting (what Gunicorn would store).
pub(crate) fn default_hook<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
    module(py)?.getattr("DEFAULT_HOOKS")?.get_item(name)
}

/// Number of positional parameters of a callable (Gunicorn's `util.get_arity`).
pub(crate) fn arity(py: Python<'_>, func: &Bound<'_, PyAny>) -> PyResult<usize> {
    module(py)?.getattr("arity")?.call1((func,))?.extract()
}

/// Wrap a 2- or 3-argument `post_request` hook so it can be called with four arguments.
pub(crate) fn adapt_post_request<'py>(
    py: Python<'py>,
    func: &Bound<'py, PyAny>,
    nargs: usize,
) -> PyResult<Bound<'py, PyAny>> {
    module(py)?
        .getattr("validate_post_request")?
        .call1((func, nargs))
}

/// Import `"pkg.mod.func"`; failures are `TypeError`s carrying Gunicorn's texts.
pub(crate) fn import_hook<'py>(py: Python<'py>, dotted: &str) -> PyResult<Bound<'py, PyAny>> {
    module(py)?.getattr("import_hook")?.call1((dotted,))
}

/// Outcome of executing a config file.
pub(crate) enum FileOutcome<'py> {
    Namespace(Bound<'py, PyDict>),
    /// The file raised; the text is the formatted traceback.
    Failed(String),
}

/// Execute a file as module `__config__` (registered in `sys.modules`).
pub(crate) fn exec_config_file<'py>(py: Python<'py>, filename: &str) -> PyResult<FileOutcome<'py>> {
    let m = module(py)?;
    match m.getattr("exec_config_file")?.call1((filename,)) {
        Ok(ns) => Ok(FileOutcome::Namespace(ns.cast_into::<PyDict>()?)),
        Err(err) if err.is_instance(py, &m.getattr("ConfigFileError")?) => {
            let text: String = err.value(py).getattr("args")?.get_item(0)?.extract()?;
            Ok(FileOutcome::Failed(text))
        }
        Err(err) => Err(err),
    }
}

/// `vars(importlib.import_module(name))`.
pub(crate) fn import_config_module<'py>(
    py: Python<'py>,
    name: &str,
) -> PyResult<Bound<'py, PyDict>> {
    Ok(module(py)?
        .getattr("import_config_module")?
        .call1((name,))?
        .cast_into::<PyDict>()?)
}

/// Gunicorn's `Application.chdir()`: `os.chdir` plus `sys.path[0]` insertion.
pub(crate) fn chdir(py: Python<'_>, path: &str) -> PyResult<()> {
    module(py)?.getattr("chdir")?.call1((path,))?;
    Ok(())
}

/// Build the read-only `cfg` object hooks receive.
pub(crate) fn config_object<'py>(
    py: Python<'py>,
    values: &Bound<'py, PyDict>,
    text: &str,
) -> PyResult<Bound<'py, PyAny>> {
    module(py)?.getattr("Config")?.call1((values, text))
}
