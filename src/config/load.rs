//! The loading sequence of Gunicorn's `Application.load_config()`: argv, `init()`
//! (APP_MODULE / `--paste`), `chdir`, `GUNICORN_CMD_ARGS`, the config file, then the
//! environment's and the command line's values, and `chdir` again.
//!
//! Owns the order and the config-file rules (`python:MODULE`, `file:PATH`, `PATH`,
//! `./gunicorn.conf.py`). It changes the process cwd and `sys.path` exactly where Gunicorn
//! does and nowhere else; it never loads the application.

use std::io::Write;

use pyo3::prelude::*;
use pyo3::types::{PyList, PyString};
use pyo3::IntoPyObjectExt;

use super::cli::{self, CliValue, Parsed, Stop};
use super::pytext::{abspath_from, py_repr};
use super::render;
use super::settings::{setting, Config};
use super::support::{self, FileOutcome};
use super::value::Env;
use super::{ConfigError, Loaded};

/// argparse's `prog`: the basename of argv[0], or "ferrocorn" when run as a module.
fn prog_name(argv0: Option<&String>) -> String {
    let base = argv0
        .map(|a| a.rsplit('/').next().unwrap_or(a).to_string())
        .unwrap_or_default();
    if base.is_empty() || base == "__main__.py" || base == "-c" {
        "ferrocorn".to_string()
    } else {
        base
    }
}

/// Print what argparse prints for `-h`, `--version` or an error; return the exit status.
pub(crate) fn report_stop(prog: &str, stop: Stop) -> i32 {
    match stop {
        Stop::Help => {
            print!("{}", render::help(prog));
            let _ = std::io::stdout().flush();
            0
        }
        Stop::Version => {
            println!("{prog} (version {})", crate::VERSION);
            let _ = std::io::stdout().flush();
            0
        }
        Stop::Error(message) => {
            eprint!("usage: {}\n{prog}: error: {message}\n", render::usage(prog));
            2
        }
    }
}

fn py_text(obj: &Bound<'_, PyAny>) -> String {
    obj.str()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "<unprintable>".to_string())
}

fn py_error(py: Python<'_>, err: PyErr) -> ConfigError {
    ConfigError::error(py_text(err.value(py).as_any()))
}

/// Why `cfg.set` refused a value.
pub(crate) enum SetError {
    /// Not a setting name.
    Unknown,
    /// The validator's reason.
    Invalid(String),
}

/// Validate, then store (Gunicorn's `cfg.set(name, value)` without its reporting).
pub(crate) fn try_set(
    cfg: &mut Config,
    name: &str,
    obj: &Bound<'_, PyAny>,
) -> Result<(), SetError> {
    let row = setting(name).ok_or(SetError::Unknown)?;
    let value = row.kind.validate(name, obj).map_err(SetError::Invalid)?;
    cfg.put_value(name, value)
        .map_err(|reason| SetError::Invalid(reason.to_string()))
}

/// Gunicorn's `cfg.set(name, value)`: validate, then store; failures name the setting.
pub(crate) fn set(cfg: &mut Config, name: &str, obj: &Bound<'_, PyAny>) -> Result<(), ConfigError> {
    try_set(cfg, name, obj).map_err(|e| match e {
        SetError::Unknown => ConfigError::error(format!("No configuration setting for: {name}")),
        SetError::Invalid(reason) => ConfigError::invalid(name, &py_text(obj), &reason),
    })
}

pub(crate) fn cli_object<'py>(py: Python<'py>, value: &CliValue) -> PyResult<Bound<'py, PyAny>> {
    match value {
        CliValue::Str(s) => s.into_bound_py_any(py),
        CliValue::Int(i) => i.into_bound_py_any(py),
        CliValue::Bool(b) => b.into_bound_py_any(py),
        CliValue::List(items) => Ok(PyList::new(py, items)?.into_any()),
    }
}

fn apply(py: Python<'_>, cfg: &mut Config, parsed: &Parsed) -> Result<(), ConfigError> {
    for (row, value) in &parsed.values {
        let obj = cli_object(py, value).map_err(|e| py_error(py, e))?;
        set(cfg, row.name, &obj)?;
    }
    Ok(())
}

pub(crate) fn chdir(py: Python<'_>, cfg: &Config) -> Result<(), ConfigError> {
    support::chdir(py, &cfg.chdir).map_err(|e| py_error(py, e))
}

/// Execute or import the config file and apply every module-level setting name in it;
/// returns the file's namespace (Gunicorn's `load_config_from_file` returns it too).
pub(crate) fn load_config_file<'py>(
    py: Python<'py>,
    cfg: &mut Config,
    location: &str,
) -> Result<Bound<'py, pyo3::types::PyDict>, ConfigError> {
    let namespace = if let Some(module) = location.strip_prefix("python:") {
        support::import_config_module(py, module).map_err(|e| py_error(py, e))?
    } else {
        let filename = location.strip_prefix("file:").unwrap_or(location);
        if !std::path::Path::new(filename).exists() {
            return Err(ConfigError::error(format!(
                "{} doesn't exist",
                py_repr(filename)
            )));
        }
        if !(filename.ends_with(".py") || filename.ends_with(".pyc")) {
            eprint!(
                "!!!\n!!! WARNING: configuration file should have a valid Python extension.\n!!!\n\n"
            );
        }
        match support::exec_config_file(py, filename).map_err(|e| py_error(py, e))? {
            FileOutcome::Namespace(ns) => ns,
            FileOutcome::Failed(traceback) => {
                return Err(ConfigError {
                    message: format!(
                        "Failed to read config file: {filename}\n{}",
                        traceback.trim_end()
                    ),
                    exit_code: 1,
                })
            }
        }
    };
    apply_namespace(cfg, &namespace)?;
    Ok(namespace)
}

/// Apply every module-level name of a config file's namespace that is a setting name.
pub(crate) fn apply_namespace(
    cfg: &mut Config,
    namespace: &Bound<'_, pyo3::types::PyDict>,
) -> Result<(), ConfigError> {
    for (key, value) in namespace.iter() {
        let Ok(name) = key.cast::<PyString>() else {
            continue;
        };
        let name = name.to_string_lossy();
        if setting(&name).is_some() {
            set(cfg, &name, &value)?;
        }
    }
    Ok(())
}

/// Gunicorn's `WSGIApplication.init()` for `--paste PATH[#section]`.
fn init_paste(py: Python<'_>, cfg: &mut Config, paste: &str) -> Result<(), ConfigError> {
    let cwd = std::env::current_dir()
        .map(|p| p.to_string_lossy().into_owned())
        .map_err(|e| ConfigError::error(e.to_string()))?;
    let config_uri = abspath_from(&cwd, paste);
    let config_file = config_uri.split('#').next().unwrap_or("").to_string();
    let contents = std::fs::read_to_string(&config_file)
        .map_err(|_| ConfigError::error(format!("{} not found", py_repr(&config_file))))?;
    let file_obj = config_file
        .as_str()
        .into_bound_py_any(py)
        .map_err(|e| py_error(py, e))?;
    set(cfg, "default_proc_name", &file_obj)?;
    if contents.lines().any(|l| l.trim() == "[loggers]") {
        set(cfg, "logconfig", &file_obj)?;
    }
    cfg.app_module = Some(config_uri);
    Ok(())
}

fn parse_or_exit(prog: &str, args: &[String]) -> Result<Parsed, i32> {
    cli::parse(args).map_err(|stop| report_stop(prog, stop))
}

fn config_location(parsed: &Parsed) -> Option<String> {
    match parsed.get("config") {
        Some(CliValue::Str(s)) => Some(s.clone()),
        _ => None,
    }
}

/// The whole sequence, with the environment snapshot injected (tests pass their own).
pub(crate) fn load(py: Python<'_>, argv: &[String], env: &Env) -> Result<Loaded, ConfigError> {
    let prog = prog_name(argv.first());
    let args = argv.get(1..).unwrap_or_default();
    let parsed = match parse_or_exit(&prog, args) {
        Ok(p) => p,
        Err(code) => return Ok(Loaded::Exit(code)),
    };
    let mut cfg = Config::from_defaults(env)?;

    if let Some(CliValue::Str(paste)) = parsed.get("paste") {
        init_paste(py, &mut cfg, paste)?;
    } else if let Some(app) = parsed.positionals.first() {
        let obj = app
            .as_str()
            .into_bound_py_any(py)
            .map_err(|e| py_error(py, e))?;
        set(&mut cfg, "default_proc_name", &obj)?;
        cfg.app_module = Some(app.clone());
    }

    chdir(py, &cfg)?;

    let env_args = match env.get("GUNICORN_CMD_ARGS") {
        Some(raw) => shlex::split(raw).ok_or_else(|| ConfigError::error("No closing quotation"))?,
        None => Vec::new(),
    };
    let env_parsed = match parse_or_exit(&prog, &env_args) {
        Ok(p) => p,
        Err(code) => return Ok(Loaded::Exit(code)),
    };

    let location = config_location(&parsed).or_else(|| config_location(&env_parsed));
    let location = location.or_else(|| {
        let cwd = std::env::current_dir().ok()?;
        let default = cwd.join("gunicorn.conf.py");
        default
            .exists()
            .then(|| default.to_string_lossy().into_owned())
    });
    if let Some(location) = location {
        load_config_file(py, &mut cfg, &location)?;
    }

    apply(py, &mut cfg, &env_parsed)?;
    apply(py, &mut cfg, &parsed)?;

    chdir(py, &cfg)?;

    if cfg.app_uri().is_none() {
        return Err(ConfigError::error("No application module specified."));
    }
    cfg.resolve()?;
    Ok(Loaded::Run(Box::new(cfg)))
}
