//! Worker signal handling with Gunicorn's semantics, through CPython's signal machinery.
//!
//! Handlers are Python-level callables, so a signal that arrives while the app runs Python
//! code interrupts it exactly as under Gunicorn (SIGABRT raises SystemExit inside the app,
//! which becomes a 500); while Rust waits on sockets, `set_wakeup_fd` wakes the loop and the
//! loop runs the handlers with `check_signals`. HUP is ignored rather than left fatal, so a
//! stray `pkill -HUP` cannot kill workers.

use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use pyo3::exceptions::PySystemExit;
use pyo3::prelude::*;
use pyo3::types::PyCFunction;

use super::request::in_flight;
use crate::hooks;
use crate::sys::wakeup::WakeupPipe;
use crate::telemetry::error_log;

pub struct WorkerSignals {
    pipe: WakeupPipe,
}

impl WorkerSignals {
    /// What the serving loop polls to learn that a signal arrived.
    pub fn wake_fd(&self) -> BorrowedFd<'_> {
        self.pipe.read_fd()
    }

    /// Drain the wakeup pipe and run pending Python handlers (which may raise SystemExit).
    pub fn dispatch(&self, py: Python<'_>) -> PyResult<()> {
        self.pipe.drain();
        py.check_signals()
    }
}

fn hook_call(py: Python<'_>, hook: &Option<Py<PyAny>>, worker: &Py<PyAny>, name: &str) {
    if let Err(e) = hooks::call_hook(py, hook.as_ref(), (worker.clone_ref(py),)) {
        hooks::log_hook_error(py, name, &e);
    }
}

/// The worker is leaving: ignore further stop signals. CPython's finalization resets
/// Python-level handlers to SIG_DFL (but keeps SIG_IGN), so without this a second TERM from
/// the master during interpreter shutdown would kill a worker that is already exiting
/// cleanly, and the master would report it as "was sent SIGTERM!".
pub fn ignore_stop_signals(py: Python<'_>) {
    let Ok(signal) = py.import("signal") else {
        return;
    };
    let Ok(ign) = signal.getattr("SIG_IGN") else {
        return;
    };
    for name in ["SIGTERM", "SIGINT", "SIGQUIT", "SIGUSR1", "SIGHUP"] {
        if let Ok(sig) = signal.getattr(name) {
            let _ = signal.call_method1("signal", (sig, &ign));
        }
    }
}

/// Gunicorn only logs "WORKER TIMEOUT (pid:N)" in the master; the aborted worker also says
/// what it was doing: the request in flight and the Python stack of every thread.
fn log_abort(py: Python<'_>, worker: &Py<PyAny>) {
    let booted = worker
        .getattr(py, "booted")
        .and_then(|b| b.extract::<bool>(py))
        .unwrap_or(true);
    let doing = match in_flight() {
        Some(request) => format!("serving {request}"),
        None if !booted => "booting".to_string(),
        None => "serving no request".to_string(),
    };
    let stacks = py
        .import("ferrocorn._stacks")
        .and_then(|m| m.call_method0("format_all_stacks"))
        .and_then(|s| s.extract::<String>())
        .unwrap_or_else(|e| format!("(stacks unavailable: {e})"));
    error_log::error(&format!(
        "Worker (pid:{}) aborted while {doing}\n{stacks}",
        std::process::id()
    ));
}

pub fn install(
    py: Python<'_>,
    alive: Arc<AtomicBool>,
    worker: Py<PyAny>,
    worker_int: Option<Py<PyAny>>,
    worker_abort: Option<Py<PyAny>>,
    capture_output: bool,
    errorlog: String,
) -> PyResult<WorkerSignals> {
    let signal = py.import("signal")?;
    let pipe = WakeupPipe::install(py)?;

    let a = alive.clone();
    let term = PyCFunction::new_closure(py, None, None, move |_args, _kw| {
        a.store(false, Ordering::SeqCst);
    })?;

    let a = alive.clone();
    let (wk, hook) = (worker.clone_ref(py), worker_int);
    let quit = PyCFunction::new_closure(py, None, None, move |args, _kw| -> PyResult<()> {
        a.store(false, Ordering::SeqCst);
        let py = args.py();
        hook_call(py, &hook, &wk, "worker_int");
        std::thread::sleep(std::time::Duration::from_millis(100));
        Err(PySystemExit::new_err(0))
    })?;

    let a = alive.clone();
    let (wk, hook) = (worker.clone_ref(py), worker_abort);
    let abort = PyCFunction::new_closure(py, None, None, move |args, _kw| -> PyResult<()> {
        a.store(false, Ordering::SeqCst);
        let py = args.py();
        log_abort(py, &wk);
        let _ = wk.setattr(py, "aborted", true);
        hook_call(py, &hook, &wk, "worker_abort");
        Err(PySystemExit::new_err(1))
    })?;

    let usr1 = PyCFunction::new_closure(py, None, None, move |args, _kw| {
        let reopened = crate::telemetry::setup::reopen(args.py(), capture_output, &errorlog);
        if let Err(e) = reopened {
            error_log::error(&format!("Failed to reopen log files: {e}"));
        }
    })?;
    let winch = PyCFunction::new_closure(py, None, None, |_args, _kw| {
        error_log::debug("worker: SIGWINCH ignored.");
    })?;

    let sig = |name: &str| signal.getattr(name);
    signal.call_method1("signal", (sig("SIGTERM")?, term))?;
    signal.call_method1("signal", (sig("SIGQUIT")?, quit.clone()))?;
    signal.call_method1("signal", (sig("SIGINT")?, quit))?;
    signal.call_method1("signal", (sig("SIGABRT")?, abort))?;
    signal.call_method1("signal", (sig("SIGUSR1")?, usr1))?;
    signal.call_method1("signal", (sig("SIGWINCH")?, winch))?;
    signal.call_method1("signal", (sig("SIGHUP")?, sig("SIG_IGN")?))?;
    for name in ["SIGUSR2", "SIGCHLD", "SIGTTIN", "SIGTTOU"] {
        signal.call_method1("signal", (sig(name)?, sig("SIG_DFL")?))?;
    }
    // TERM and USR1 must not abort a blocking read or write mid-request.
    signal.call_method1("siginterrupt", (sig("SIGTERM")?, false))?;
    signal.call_method1("siginterrupt", (sig("SIGUSR1")?, false))?;
    Ok(WorkerSignals { pipe })
}
