//! ferrocorn: Gunicorn's behaviour with a Rust engine.
//!
//! This file only declares the modules and registers the Python extension module; `boot::run`
//! is what the `ferrocorn` command calls. Each module says in its doc comment what it owns
//! and what it must not touch. `unsafe` is allowed in `sys` only.
#![deny(unsafe_code)]

pub mod arbiter;
pub mod asgi;
pub mod boot;
pub mod config;
pub mod conn;
pub mod errors;
pub mod hooks;
pub mod http;
pub mod net;
pub mod reload;
pub mod statics;
pub mod sys;
pub mod telemetry;
pub mod tls;
pub mod workers;
pub mod wsgi;

use pyo3::prelude::*;

/// Package version, shared by `--version`, SERVER_SOFTWARE and the boot log line.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// `ferrocorn [OPTIONS] [APP_MODULE]`: returns the process exit status.
#[pyfunction]
fn run(py: Python<'_>, argv: Vec<String>) -> i32 {
    boot::run(py, argv)
}

/// The embedding API's `BaseApplication.run()`: returns the process exit status.
#[pyfunction]
fn run_application(py: Python<'_>, application: &Bound<'_, PyAny>) -> PyResult<i32> {
    boot::run_application(py, application)
}

#[pymodule]
fn _ferrocorn(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", VERSION)?;
    m.add_function(wrap_pyfunction!(run, m)?)?;
    m.add_function(wrap_pyfunction!(run_application, m)?)?;
    m.add_class::<config::ConfigHandle>()?;
    m.add_function(wrap_pyfunction!(config::parse_args, m)?)?;
    m.add_function(wrap_pyfunction!(config::settings_table, m)?)?;
    m.add_function(wrap_pyfunction!(config::is_setting, m)?)?;
    m.add_function(wrap_pyfunction!(sys::process::set_parent_death_signal, m)?)?;
    m.add_function(wrap_pyfunction!(sys::process::set_proc_title, m)?)?;
    telemetry::register(m)?;
    m.add_class::<reload::inotify::Inotify>()?;
    Ok(())
}
