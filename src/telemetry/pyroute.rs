//! Python-mode logging: with `logconfig`, `logconfig_dict`, `logconfig_json` or a custom
//! `logger_class`, the logger object Gunicorn would build (`cfg.logger_class(cfg)`) receives
//! every error-log line and access call that Rust writes itself on the default path.
//!
//! Owns: the installed logger object, the threshold below which lines are not worth taking
//! the GIL for, the hand-over of calls made by threads that do not hold the GIL, and what
//! happens when the Python logger itself raises. Must not touch: line shapes or
//! destinations (the Python logger and its handlers decide them), and the default path,
//! which never enters this module beyond one atomic load.
//!
//! A thread without the GIL (the gthread leader, the ASGI I/O thread, the TLS watcher) may
//! hold a Rust lock that a thread holding the GIL is waiting for; waiting for the GIL there
//! would deadlock. Its calls are queued instead and made by the `ferrocorn-log` thread,
//! which holds no lock when it takes the GIL.

use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, RwLock};
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

/// Where a Python logger's own failure is reported: the error log's raw writer, handed in by
/// `setup` (the error log itself routes lines here, so this module does not name it).
static FALLBACK: OnceLock<fn(&[u8])> = OnceLock::new();

/// Installs (or with None removes) the Python logger; `threshold` is its effective level and
/// `fallback` writes text to the default error destination.
pub fn install(logger: Option<Py<PyAny>>, threshold: u32, fallback: fn(&[u8])) {
    let _ = FALLBACK.set(fallback);
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

/// The logger, unless there is none or this thread is already inside it (a logger that makes
/// Rust log again gets the default destination rather than recursion).
fn outside_logger() -> Option<Arc<Py<PyAny>>> {
    if INSIDE.with(Cell::get) {
        return None;
    }
    logger()
}

/// The level below which lines may be dropped without the GIL, read after each `setup`
/// (see `THRESHOLD`): the `gunicorn.error` logger's effective level for ferrocorn's own
/// `Logger` class, whose level methods only forward to it. Any other class (a subclass, the
/// StatsD logger that counts every call) receives every line: 0.
pub fn effective_level(py: Python<'_>, logger: &Bound<'_, PyAny>) -> u32 {
    let plain = py
        .import("ferrocorn.glogging")
        .and_then(|m| m.getattr("Logger"))
        .is_ok_and(|class| logger.get_type().is(&class));
    if !plain {
        return 0;
    }
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
    let msg = msg.to_owned();
    enter(move |py| {
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
    let Some(logger) = outside_logger() else {
        return false;
    };
    // Called with the GIL (the exception is a Python object), so never deferred.
    let value = err.value(py).clone().into_any();
    let tb = err.traceback(py);
    run_inside(|py| {
        py.import("ferrocorn.glogging")?
            .call_method1("_log_exception", (logger.bind(py), msg, value, tb))
            .map(drop)
    });
    true
}

/// A call with its `extra` metric, the way Gunicorn's arbiter reports the workers gauge and
/// the backlog (`log.debug(msg, extra={"metric": ..., "value": ..., "mtype": ...})`).
pub(crate) fn metric(msg: &str, name: &str, value: i64, mtype: &str) -> bool {
    let Some(logger) = outside_logger() else {
        return false;
    };
    let (msg, name, mtype) = (msg.to_owned(), name.to_owned(), mtype.to_owned());
    enter(move |py| {
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
    let Some(logger) = outside_logger() else {
        return;
    };
    let name = name.to_owned();
    enter(move |py| {
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
    // No recursion guard: Rust never makes an access call from inside the logger, and a
    // deferred ASGI access call runs inside the logger thread's own guard.
    let _ = py;
    run_inside(|py| {
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

/// Runs `f` inside the logger: at once when this thread holds the GIL, else on the
/// `ferrocorn-log` thread (see the module comment). An exception from the logger is
/// reported on the default error destination and never reaches the code that logged.
fn enter(f: impl FnOnce(Python<'_>) -> PyResult<()> + Send + 'static) {
    if crate::sys::gil::held() {
        run_inside(f);
    } else {
        defer(Box::new(f));
    }
}

fn run_inside(f: impl FnOnce(Python<'_>) -> PyResult<()>) {
    let was_inside = INSIDE.with(|c| c.replace(true));
    Python::attach(|py| {
        if let Err(err) = f(py) {
            let tb = super::format_traceback(py, &err);
            if let Some(write) = FALLBACK.get() {
                write(format!("--- Logging error in the Python logger ---\n{tb}\n").as_bytes());
            }
        }
    });
    INSIDE.with(|c| c.set(was_inside));
}

type Deferred = Box<dyn FnOnce(Python<'_>) -> PyResult<()> + Send>;

/// Calls waiting for the `ferrocorn-log` thread; the lock is held only to push or take.
static QUEUE: Mutex<VecDeque<Deferred>> = Mutex::new(VecDeque::new());
static QUEUED: Condvar = Condvar::new();
/// The process whose `ferrocorn-log` thread is running (a forked worker starts its own).
static DRAINER_PID: AtomicU32 = AtomicU32::new(0);
/// Past this many waiting calls, new ones are dropped: a logger that cannot keep up must
/// not grow the worker's memory without bound.
const QUEUE_LIMIT: usize = 10_000;

/// Queues a logger call made without the GIL; `access` uses it for the ASGI I/O thread.
pub fn defer(f: Deferred) {
    let pid = std::process::id();
    if DRAINER_PID.swap(pid, Ordering::AcqRel) != pid {
        let started = std::thread::Builder::new()
            .name("ferrocorn-log".into())
            .spawn(drain);
        if started.is_err() {
            DRAINER_PID.store(0, Ordering::Release);
            return;
        }
    }
    let mut queue = QUEUE.lock().unwrap_or_else(|p| p.into_inner());
    if queue.len() < QUEUE_LIMIT {
        queue.push_back(f);
    }
    drop(queue);
    QUEUED.notify_one();
}

fn drain() {
    loop {
        let batch: Vec<Deferred> = {
            let mut queue = QUEUE.lock().unwrap_or_else(|p| p.into_inner());
            while queue.is_empty() {
                queue = QUEUED.wait(queue).unwrap_or_else(|p| p.into_inner());
            }
            queue.drain(..).collect()
        };
        for f in batch {
            run_inside(f);
        }
    }
}

/// Makes every queued call before the process exits, so the last lines of a stopping
/// worker are not lost.
pub fn flush() {
    if !active() {
        return;
    }
    let batch: Vec<Deferred> = QUEUE
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .drain(..)
        .collect();
    for f in batch {
        run_inside(f);
    }
}
