//! The settings as the embedding API's Python `ferrocorn.config.Config` sees them: a mutable
//! Rust `Config` behind a Python class, plus the command-line parser and the settings
//! table, so `ferrocorn.app.base.Application` can run Gunicorn's loading steps from Python
//! with the very validators, parser and config-file rules the `ferrocorn` command uses.
//!
//! Owns only the crossing into Python. Must not start anything: `boot::run_application`
//! takes the finished `Config` out of the handle.

use pyo3::exceptions::{PyAttributeError, PySystemExit, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use super::load::{self, SetError};
use super::settings::{setting, Action, ArgType, Config, TABLE};
use super::value::Env;
use super::{cli, render, ConfigError};

/// Print a loading error as the `ferrocorn` command would and leave with its status
/// (Gunicorn's config-file steps print and exit rather than raise).
fn exit_with(err: ConfigError) -> PyErr {
    eprint!("{}", err.report());
    PySystemExit::new_err(err.exit_code)
}

/// A `Config` Python code can change; `ferrocorn.config.Config` wraps one.
#[pyclass(module = "ferrocorn._ferrocorn", unsendable)]
pub struct ConfigHandle {
    pub(crate) cfg: Config,
}

#[pymethods]
impl ConfigHandle {
    /// Every setting at its default (environment-derived ones from the process now).
    #[new]
    fn new() -> PyResult<Self> {
        let cfg = Config::from_defaults(&Env::from_process()).map_err(exit_with)?;
        Ok(ConfigHandle { cfg })
    }

    /// Gunicorn's `cfg.set`: AttributeError for an unknown name, ValueError with the
    /// validator's reason for a bad value.
    fn set(&mut self, name: &str, value: &Bound<'_, PyAny>) -> PyResult<()> {
        load::try_set(&mut self.cfg, name, value).map_err(|e| match e {
            SetError::Unknown => {
                PyAttributeError::new_err(format!("No configuration setting for: {name}"))
            }
            SetError::Invalid(reason) => PyValueError::new_err(reason),
        })
    }

    /// Every setting's value plus Gunicorn's derived properties, as hooks see `cfg`.
    fn values<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let obj = render::to_python(&self.cfg, py)?;
        obj.bind(py).getattr("_values")
    }

    /// One setting's stored value (`cfg.settings[name].get()`), which for `proc_name` or
    /// `sendfile` is not the derived property `cfg.<name>` gives.
    fn get<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
        let row = setting(name).ok_or_else(|| {
            PyAttributeError::new_err(format!("No configuration setting for: {name}"))
        })?;
        render::setting_value(&self.cfg, py, row)
    }

    /// `--print-config`'s text.
    fn text(&self, py: Python<'_>) -> String {
        render::print_config(&self.cfg, py)
    }

    /// Apply the setting names of a config file's namespace, with the command's rules: an
    /// invalid value prints `Invalid value for ...` and exits, as in Gunicorn.
    fn apply_namespace(&mut self, namespace: &Bound<'_, PyDict>) -> PyResult<()> {
        load::apply_namespace(&mut self.cfg, namespace).map_err(exit_with)
    }

    /// Gunicorn's `cfg.validate()`: the checks the `ferrocorn` command makes once the
    /// settings are loaded (values that only make sense together, and settings this
    /// release does not support yet).
    fn validate(&self) -> PyResult<()> {
        let mut cfg = self.cfg.clone();
        cfg.resolve()
            .and_then(|()| cfg.check_supported())
            .map_err(|e| {
                let text = e.message.strip_prefix("Error: ").unwrap_or(&e.message);
                PyValueError::new_err(text.to_string())
            })
    }

    /// Gunicorn's `Application.chdir()` with the current `chdir` value.
    fn chdir(&self, py: Python<'_>) -> PyResult<()> {
        load::chdir(py, &self.cfg).map_err(|e| PyValueError::new_err(e.message))
    }

    /// The APP_MODULE (or `--paste` URI) `init()` found; `wsgi_app` still backs it up.
    #[getter]
    fn get_app_module(&self) -> Option<String> {
        self.cfg.app_module.clone()
    }

    #[setter]
    fn set_app_module(&mut self, uri: Option<String>) {
        self.cfg.app_module = uri;
    }
}

/// The settings an embedding application holds (`application.cfg`), bound to it so the
/// app is loaded through `application.wsgi()` and HUP reloads through the application.
pub fn application_config(application: &Bound<'_, PyAny>) -> PyResult<Config> {
    let handle = application.getattr("cfg")?.getattr("_handle")?;
    let handle = handle.cast::<ConfigHandle>()?;
    let mut cfg = handle.borrow().cfg.clone();
    cfg.application = Some(application.clone().unbind());
    Ok(cfg)
}

/// Parse command-line arguments with the `ferrocorn` command's parser. Returns
/// `([(name, value), ...], positionals)` in the order Gunicorn applies them; `-h`,
/// `--version` and usage errors print and raise SystemExit, as argparse does.
#[pyfunction]
pub fn parse_args<'py>(
    py: Python<'py>,
    prog: &str,
    args: Vec<String>,
) -> PyResult<(Bound<'py, PyList>, Vec<String>)> {
    let parsed =
        cli::parse(&args).map_err(|stop| PySystemExit::new_err(load::report_stop(prog, stop)))?;
    let values = PyList::empty(py);
    for (row, value) in &parsed.values {
        values.append((row.name, load::cli_object(py, value)?))?;
    }
    Ok((values, parsed.positionals))
}

/// The settings table, a dict per row, for `Config.settings` and `Config.parser()`.
#[pyfunction]
pub fn settings_table(py: Python<'_>) -> PyResult<Bound<'_, PyList>> {
    let defaults = Config::from_defaults(&Env::from_process()).map_err(exit_with)?;
    let rows = PyList::empty(py);
    for row in TABLE {
        let d = PyDict::new(py);
        d.set_item("name", row.name)?;
        d.set_item("default", render::setting_value(&defaults, py, row)?)?;
        d.set_item("section", row.section)?;
        d.set_item("cli", row.cli.to_vec())?;
        d.set_item("meta", row.meta)?;
        d.set_item("default_doc", row.default_doc)?;
        d.set_item("doc", row.doc)?;
        d.set_item("supported", row.supported)?;
        let (action, nargs_const, int): (&str, Option<&str>, bool) = match row.action {
            Action::FileOnly => ("file", None, false),
            Action::Store(ArgType::Int) => ("store", None, true),
            Action::Store(_) => ("store", None, false),
            Action::StoreTrue => ("store_true", None, false),
            Action::StoreConst(false) => ("store_false", None, false),
            Action::StoreConst(true) => ("store_true", None, false),
            Action::Append => ("append", None, false),
            Action::Optional(c) => ("optional", Some(c), false),
        };
        d.set_item("action", action)?;
        d.set_item("const", nargs_const)?;
        d.set_item("int", int)?;
        rows.append(d)?;
    }
    Ok(rows)
}

/// Whether `name` is a setting (for `name in cfg.settings` without building the table).
#[pyfunction]
pub fn is_setting(name: &str) -> bool {
    setting(name).is_some()
}
