//! Python-mode logging: with `logconfig`, `logconfig_dict`, `logconfig_json` or a custom
//! `logger_class`, the logger object Gunicorn would build (`cfg.logger_class(cfg)`) receives
//! every error-log line and access call that Rust writes itself on the default path.
//!
//! Owns: the installed logger object, the threshold below which lines are not worth taking
//! the GIL for, and what happens when the Python logger itself raises. Must not touch: line
//! shapes or destinations (the Python logger and its handlers decide them), and the default
//! path, which never enters this module beyond one atomic load.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::PyDict;

static ACTIVE: AtomicBool = AtomicBool::new(false);
/// The logger's effective level after `setup`: lines below it would be dropped by Python's
/// first check anyway, so they are dropped without the GIL.
static THRESHOLD: AtomicU32 = AtomicU32::new(0);
static LOGGER: RwLock<Option<Arc<Py<PyAny>>>> = RwLock::new(None);

thread_local! {
    /// Set while this thread is inside the Python logger, so a logger that (directly or
    /// through a hook) makes Rust log again writes to the default destination instead of
    /// recursing.
    static INSIDE: Cell<bool> = const { Cell::new(false) };
}

/// Which method of the logger a line goes through: the statsd counters and a custom
/// logger's overrides depend on it, not only on the level number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    Critical,
    Error,
    Warning,
    Info,
    Debug,
    /// `log(levelno, msg)` for levels outside the five names.
    Level(u32),
}

impl Call {
    pub fn levelno(self) -> u32 {
        match self {
            Call::Critical => 50,
            Call::Error => 40,
            Call::Warning => 30,
            Call::Info => 20,
            Call::Debug => 10,
            Call::Level(n) => n,
        }
    }
}

/// Installs (or with None removes) the Python logger; `threshold` is its effective level.
pub fn install(logger: Option<Py<PyAny>>, threshold: u32) {
    let on = logger.is_some();
    *LOGGER.write().unwrap_or_else(|p| p.into_inner()) = logger.map(Arc::new);
    THRESHOLD.store(threshold, Ordering::Release);
    ACTIVE.store(on, Ordering::Release);
}

pub fn active() -> bool {
    ACTIVE.load(Ordering::Acquire)
}

pub fn threshold() -> u32 {
    THRESHOLD.load(Ordering::Acquire)
}

pub fn logger() -> Option<Arc<Py<PyAny>>> {
    if !active() {
        return None;
    }
    LOGGER.read().unwrap_or_else(|p| p.into_inner()).clone()
}

/// The logger's effective level, read once after each `setup` (see `THRESHOLD`).
pub fn effective_level(py: Python<'_>, logger: &Bound<'_, PyAny>) -> u32 {
    let _ = py;
    logger
        .getattr("error_log")
        .and_then(|l| l.call_method0("getEffectiveLevel"))
        .and_then(|n| n.extract::<u32>())
        .unwrap_or(0)
}

/// Hands one line to the Python logger. Returns false when the default path must write it
/// (no Python logger, or this thread is already inside it).
pub(crate) fn line(call: Call, msg: &str) -> bool {
    if !active() || INSIDE.with(Cell::get) {
        return false;
    }
    if call.levelno() < THRESHOLD.load(Ordering::Acquire) {
        return true;
    }
    let Some(logger) = logger() else {
        return false;
    };
    enter(|py| {
        let logger = logger.bind(py);
        match call {
            Call::Critical => logger.call_method1("critical", (msg,)),
            Call::Error => logger.call_method1("error", (msg,)),
            Call::Warning => logger.call_method1("warning", (msg,)),
            Call::Info => logger.call_method1("info", (msg,)),
            Call::Debug => logger.call_method1("debug", (msg,)),
            Call::Level(n) => logger.call_method1("log", (n, msg)),
        }
        .map(drop)
    });
    true
}

/// `log.exception(msg)` while `err` is the exception being handled, as Gunicorn calls it
/// from its `except` blocks, so formatters and loggers see the exception, not only text.
pub(crate) fn exception(py: Python<'_>, msg: &str, err: &PyErr) -> bool {
    if !active() || INSIDE.with(Cell::get) {
        return false;
    }
    let Some(logger) = logger() else {
        return false;
    };
    let value = err.value(py).clone().into_any();
    let tb = err.traceback(py);
    enter(|py| {
        py.import("ferrocorn.glogging")?
            .call_method1("_log_exception", (logger.bind(py), msg, value, tb))
            .map(drop)
    });
    true
}

/// A call with its `extra` metric, the way Gunicorn's arbiter reports the workers gauge and
/// the backlog (`log.debug(msg, extra={"metric": ..., "value": ..., "mtype": ...})`).
pub(crate) fn metric(msg: &str, name: &str, value: i64, mtype: &str) -> bool {
    if !active() || INSIDE.with(Cell::get) {
        return false;
    }
    let Some(logger) = logger() else {
        return false;
    };
    enter(|py| {
        let extra = PyDict::new(py);
        extra.set_item("metric", name)?;
        extra.set_item("value", value)?;
        extra.set_item("mtype", mtype)?;
        let kwargs = PyDict::new(py);
        kwargs.set_item("extra", extra)?;
        logger
            .bind(py)
            .call_method("debug", (msg,), Some(&kwargs))
            .map(drop)
    });
    true
}

/// `log.gauge(name, value)` when the Python logger has one (the StatsD logger): the master
/// re-sends the workers gauge every loop, not only when it changes.
pub(crate) fn gauge(name: &str, value: i64) {
    let Some(logger) = logger() else {
        return;
    };
    if INSIDE.with(Cell::get) {
        return;
    }
    enter(|py| {
        let logger = logger.bind(py);
        if logger.hasattr("gauge")? {
            logger.call_method1("gauge", (name, value))?;
        }
        Ok(())
    });
}

/// Gunicorn's `log.access(resp, req, environ, request_time)` with `request_time` as a
/// `datetime.timedelta`. Called with the GIL held, from the worker that served the request.
pub fn access(
    py: Python<'_>,
    resp: &Bound<'_, PyAny>,
    req: &Bound<'_, PyAny>,
    environ: &Bound<'_, PyAny>,
    elapsed: Duration,
) {
    let Some(logger) = logger() else {
        return;
    };
    if INSIDE.with(Cell::get) {
        return;
    }
    let _ = py;
    enter(|py| {
        let delta = pyo3::types::PyDelta::new(
            py,
            0,
            elapsed.as_secs() as i32,
            elapsed.subsec_micros() as i32,
            true,
        )?;
        logger
            .bind(py)
            .call_method1("access", (resp, req, environ, delta))
            .map(drop)
    });
}

/// Runs `f` inside the logger with the GIL; an exception from the logger is reported on the
/// default error destination and never reaches the code that logged.
fn enter(f: impl FnOnce(Python<'_>) -> PyResult<()>) {
    INSIDE.with(|c| c.set(true));
    Python::attach(|py| {
        if let Err(err) = f(py) {
            let tb = super::format_traceback(py, &err);
            super::error_log::write_raw(
                format!("--- Logging error in the Python logger ---\n{tb}\n").as_bytes(),
            );
        }
    });
    INSIDE.with(|c| c.set(false));
}
