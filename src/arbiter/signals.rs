//! The master's signal queue: CPython's `set_wakeup_fd` writes each signal number into a
//! pipe from inside the C-level handler (async-signal-safe, ordered), and the main loop reads
//! them back and handles them one at a time, as Gunicorn's SimpleQueue does. Handlers
//! themselves do nothing, so no work ever runs in signal context.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::Duration;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;
use pyo3::prelude::*;
use pyo3::types::PyCFunction;

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

/// Detach CPython from our wakeup pipe before the pipe closes, so a signal arriving during
/// interpreter shutdown is not written to a closed (or reused) descriptor.
pub fn clear_wakeup_fd(py: Python<'_>) {
    if let Ok(signal) = py.import("signal") {
        let _ = signal.call_method1("set_wakeup_fd", (-1,));
    }
}

pub struct MasterSignals {
    read: OwnedFd,
    _write: OwnedFd,
}

impl Drop for MasterSignals {
    fn drop(&mut self) {
        Python::attach(clear_wakeup_fd);
    }
}

impl MasterSignals {
    pub fn install(py: Python<'_>) -> PyResult<Self> {
        let (read, write) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_NONBLOCK | nix::fcntl::OFlag::O_CLOEXEC)
                .map_err(|e| pyo3::exceptions::PyOSError::new_err(e.to_string()))?;
        let signal = py.import("signal")?;
        let kwargs = pyo3::types::PyDict::new(py);
        kwargs.set_item("warn_on_full_buffer", false)?;
        signal.call_method("set_wakeup_fd", (write.as_raw_fd(),), Some(&kwargs))?;
        let noop = PyCFunction::new_closure(py, None, None, |_a, _k| {})?;
        for sig in HANDLED {
            signal.call_method1("signal", (sig as i32, noop.clone()))?;
        }
        Ok(MasterSignals {
            read,
            _write: write,
        })
    }

    /// Block up to `timeout` (GIL released) and return the signals received, in order.
    pub fn wait(&self, py: Python<'_>, timeout: Duration) -> Vec<Signal> {
        let fd = self.read.as_raw_fd();
        let ms = timeout.as_millis().min(u16::MAX as u128) as u16;
        py.detach(|| {
            let borrowed = crate::sys::process::borrow_fd(fd);
            let mut pfd = [PollFd::new(borrowed, PollFlags::POLLIN)];
            let _ = poll(&mut pfd, PollTimeout::from(ms));
        });
        self.drain(py)
    }

    /// The signals already queued, without blocking.
    pub fn drain(&self, py: Python<'_>) -> Vec<Signal> {
        let mut out = Vec::new();
        let mut buf = [0u8; 256];
        while let Ok(n) = nix::unistd::read(self.read.as_fd(), &mut buf) {
            if n == 0 {
                break;
            }
            out.extend(
                buf[..n]
                    .iter()
                    .filter_map(|b| Signal::try_from(*b as i32).ok()),
            );
        }
        // Clear CPython's "tripped" flags; the handlers are no-ops.
        let _ = py.check_signals();
        out
    }
}
