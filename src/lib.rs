//! ferrocorn: Gunicorn's behaviour with a Rust engine.
//!
//! This file only registers the Python module; each area lives in its own module and says
//! in its doc comment what it owns.

pub mod arbiter;
pub mod config;
pub mod errors;
pub mod net;
pub mod sys;
pub mod telemetry;
pub mod workers;
pub mod wsgi;

use pyo3::prelude::*;

/// Package version, shared by `--version`, SERVER_SOFTWARE and the boot log line.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

#[pymodule]
fn _ferrocorn(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", VERSION)?;
    Ok(())
}
