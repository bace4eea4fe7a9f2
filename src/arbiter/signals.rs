//! The master's signal queue: CPython's `set_wakeup_fd` writes each signal number into a
//! pipe from inside the C-level handler (async-signal-safe, ordered), and the main loop reads
//! them back and handles them one at a time, as Gunicorn's SimpleQueue does. Handlers
//! themselves do nothing, so no work ever runs in signal context.

use std::time::Duration;

use nix::sys::signal::Signal;
use pyo3::prelude::*;
use pyo3::types::PyCFunction;

use crate::sys::wakeup::WakeupPipe;

pub const HANDLED: [Signal; 10] = [
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGTTIN,
    Signal::SIGTTOU,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
    Signal::SIGCHLD,
];

pub use crate::sys::wakeup::clear_wakeup_fd;

pub struct MasterSignals {
    pipe: WakeupPipe,
}

impl MasterSignals {
    pub fn install(py: Python<'_>) -> PyResult<Self> {
        let pipe = WakeupPipe::install(py)?;
        let signal = py.import("signal")?;
        let noop = PyCFunction::new_closure(py, None, None, |_a, _k| {})?;
        for sig in HANDLED {
            signal.call_method1("signal", (sig as i32, noop.clone()))?;
        }
        Ok(MasterSignals { pipe })
    }

    /// Block up to `timeout` (GIL released), or until one of `extra` is ready, and return
    /// the signals received, in order.
    pub fn wait(
        &self,
        py: Python<'_>,
        timeout: Duration,
        extra: &[(std::os::fd::BorrowedFd<'_>, nix::poll::PollFlags)],
    ) -> Vec<Signal> {
        self.pipe.wait_with(py, timeout, extra);
        self.drain(py)
    }

    /// The signals already queued, without blocking.
    pub fn drain(&self, py: Python<'_>) -> Vec<Signal> {
        let out = self
            .pipe
            .drain()
            .into_iter()
            .filter_map(|b| Signal::try_from(b as i32).ok())
            .collect();
        // Clear CPython's "tripped" flags; the handlers are no-ops.
        let _ = py.check_signals();
        out
    }
}
