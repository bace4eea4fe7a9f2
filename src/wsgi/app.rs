//! Loading the application and producing Python tracebacks for the error log.

use pyo3::prelude::*;

pub use crate::telemetry::format_traceback;

use crate::config::Config;
use crate::errors::exit;

/// Why the app could not be loaded, with the exit status Gunicorn uses for it.
pub struct LoadFailure {
    pub exit_code: i32,
    pub message: String,
    pub traceback: String,
    /// The file of a SyntaxError, which `--reload` watches to recover.
    pub syntax_error_file: Option<String>,
    /// Set when the import raised SystemExit (e.g. the SIGABRT of a boot timeout): the
    /// worker exits with that status, as Gunicorn's lets SystemExit through.
    pub system_exit: Option<i32>,
}

/// Load the app the configuration names: the embedding API's `application.wsgi()`, a
/// PasteDeploy ini (`--paste`), or an APP_MODULE (`module:var`, `module`,
/// `module:factory(args)`). `AppImportError` means the module imported but the object is
/// wrong (exit 4); any other exception is a worker boot failure (exit 3), as in Gunicorn.
pub fn load(py: Python<'_>, cfg: &Config) -> Result<Py<PyAny>, LoadFailure> {
    let run = || -> PyResult<Py<PyAny>> {
        if let Some(application) = &cfg.application {
            return Ok(application.bind(py).call_method0("wsgi")?.unbind());
        }
        let loader = py.import("ferrocorn._loader")?;
        let uri = cfg.app_uri().unwrap_or_default();
        let app = if cfg.paste.is_some() {
            loader.call_method1("load_pasteapp", (uri, cfg.raw_paste_global_conf.clone()))?
        } else {
            loader.call_method1("import_app", (uri,))?
        };
        Ok(app.unbind())
    };
    run().map_err(|err| {
        let is_app_error = py
            .import("ferrocorn._loader")
            .and_then(|m| m.getattr("AppImportError"))
            .map(|cls| err.get_type(py).is_subclass(&cls).unwrap_or(false))
            .unwrap_or(false);
        let syntax_error_file = if err.is_instance_of::<pyo3::exceptions::PySyntaxError>(py) {
            err.value(py)
                .getattr("filename")
                .ok()
                .and_then(|f| f.extract::<String>().ok())
        } else {
            None
        };
        LoadFailure {
            system_exit: system_exit_code(py, &err),
            syntax_error_file,
            exit_code: if is_app_error {
                exit::APP_LOAD_ERROR
            } else {
                exit::WORKER_BOOT_ERROR
            },
            message: err.value(py).to_string(),
            traceback: format_traceback(py, &err),
        }
    })
}

/// The exit status carried by a SystemExit, if `err` is one.
pub fn system_exit_code(py: Python<'_>, err: &PyErr) -> Option<i32> {
    if !err.is_instance_of::<pyo3::exceptions::PySystemExit>(py) {
        return None;
    }
    let code = err.value(py).getattr("code").ok()?;
    if code.is_none() {
        return Some(0);
    }
    Some(code.extract::<i32>().unwrap_or(1))
}
