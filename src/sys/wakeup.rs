//! The signal wakeup pipe, for the master and for workers: CPython's C-level signal handler
//! writes each signal number into it (async-signal-safe, in order), so a loop waiting on
//! sockets wakes up and then runs the signals' work outside signal context.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use pyo3::prelude::*;

pub struct WakeupPipe {
    read: OwnedFd,
    /// Kept open for CPython's handler, which writes to it by number.
    _write: OwnedFd,
}

impl WakeupPipe {
    /// Make the pipe and point `signal.set_wakeup_fd` at it.
    pub fn install(py: Python<'_>) -> PyResult<Self> {
        let (read, write) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_NONBLOCK | nix::fcntl::OFlag::O_CLOEXEC)
                .map_err(|e| pyo3::exceptions::PyOSError::new_err(e.to_string()))?;
        let kwargs = pyo3::types::PyDict::new(py);
        kwargs.set_item("warn_on_full_buffer", false)?;
        py.import("signal")?
            .call_method("set_wakeup_fd", (write.as_raw_fd(),), Some(&kwargs))?;
        Ok(WakeupPipe {
            read,
            _write: write,
        })
    }

    /// What a loop polls to learn that a signal arrived.
    pub fn read_fd(&self) -> BorrowedFd<'_> {
        self.read.as_fd()
    }

    /// Block up to `timeout` (GIL released) until a signal arrives.
    pub fn wait(&self, py: Python<'_>, timeout: Duration) {
        self.wait_with(py, timeout, &[]);
    }

    /// Block up to `timeout` (GIL released) until a signal arrives or one of `extra` is
    /// ready for what its flags ask (the master's metrics listener and its connections).
    pub fn wait_with(
        &self,
        py: Python<'_>,
        timeout: Duration,
        extra: &[(BorrowedFd<'_>, PollFlags)],
    ) {
        let ms = timeout.as_millis().min(u16::MAX as u128) as u16;
        let fd = self.read.as_fd();
        py.detach(|| {
            let mut pfd = Vec::with_capacity(1 + extra.len());
            pfd.push(PollFd::new(fd, PollFlags::POLLIN));
            pfd.extend(extra.iter().map(|(fd, flags)| PollFd::new(*fd, *flags)));
            let _ = poll(&mut pfd, PollTimeout::from(ms));
        });
    }

    /// The signal numbers written since the last call, in order, without blocking.
    pub fn drain(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = [0u8; 256];
        while let Ok(n) = nix::unistd::read(&self.read, &mut buf) {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        out
    }
}

impl Drop for WakeupPipe {
    fn drop(&mut self) {
        // CPython must stop writing to the pipe before it closes, or a signal arriving
        // during interpreter shutdown would be written to a closed (or reused) descriptor.
        Python::attach(clear_wakeup_fd);
    }
}

/// Detach CPython from any wakeup pipe.
pub fn clear_wakeup_fd(py: Python<'_>) {
    if let Ok(signal) = py.import("signal") {
        let _ = signal.call_method1("set_wakeup_fd", (-1,));
    }
}
