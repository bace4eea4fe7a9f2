//! The response of an HTTP/1 exchange, framed by `Framer` as Gunicorn's `Response` frames it.
//!
//! Bytes go out with a non-blocking send while the GIL is held (most responses fit the
//! socket buffer, and each GIL release is a hand-off to another thread); only the rest of a
//! write that would block releases it. A response whose body is all in memory can be held
//! back whole (`body_in_memory`) for the worker to send after the request.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};

use pyo3::prelude::*;

use super::{finished, H1Exchange};
use crate::http::{ErrorPage, ResponseInfo, ResponseSink};

/// A held-back response larger than this is written at once instead.
const HOLD_LIMIT: usize = 128 * 1024;

/// Where the response is on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Writing {
    /// No head framed yet: `start_response` may (re)set status and headers.
    Init,
    /// The head is framed; body bytes follow.
    Body,
    /// The response is complete (last chunk framed).
    Done,
    /// An error page went out instead of the app's response. `head_reported`: what
    /// `headers_sent` says afterwards (Gunicorn's `resp` object: true only after a body
    /// error page).
    ErrorPage { head_reported: bool },
}

/// Whether the connection may carry another request (hyper's `KA`, minus `Idle`, which is
/// the connection table's business).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum KeepAlive {
    Allowed,
    Disabled,
}

impl H1Exchange {
    fn no_body(&self) -> bool {
        self.framer.no_body()
    }

    fn head_bytes(&mut self, out: &mut Vec<u8>) {
        // A body sent without waiting for `100 Continue` keeps the connection open.
        self.look_for_unawaited_body();
        // Once the client was told, the connection ends whatever happens next.
        if self.framer.head_closing(out, || self.will_close()) {
            self.close_announced = true;
        }
        self.writing = Writing::Body;
    }

    /// Frame `data` as body bytes, prefixed by the head on the first call.
    fn frame(&mut self, data: &[u8], out: &mut Vec<u8>) {
        if self.writing == Writing::Init {
            self.head_bytes(out);
        }
        self.framer.body(data, out);
    }

    /// Send, or hold back while holding is on and the response fits.
    fn send(&mut self, py: Python<'_>, bytes: &[u8]) -> io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        if let Some(held) = self.held.as_mut() {
            if held.len() + bytes.len() <= HOLD_LIMIT {
                held.extend_from_slice(bytes);
                return Ok(());
            }
            let mut all = self.held.take().unwrap_or_default();
            all.extend_from_slice(bytes);
            return self.send_now(py, &all);
        }
        self.send_now(py, bytes)
    }

    fn send_now(&mut self, py: Python<'_>, bytes: &[u8]) -> io::Result<()> {
        let transport = self.transport.as_mut().ok_or_else(finished)?;
        let n = transport.try_write(bytes)?;
        if n == bytes.len() && !transport.has_pending_output() {
            return Ok(());
        }
        let rest = &bytes[n..];
        py.detach(|| transport.write_all(rest))
    }

    /// Write out whatever is held back, before a write that bypasses `send`.
    pub(super) fn flush_held(&mut self, py: Python<'_>) -> io::Result<()> {
        let held = self.held.take().unwrap_or_default();
        self.send(py, &held)
    }

    /// Send `count` bytes of `file` from `offset` with sendfile(2), framed like any other
    /// body write. Unlike Gunicorn, the bytes sent are counted, so `%(b)s` is right.
    fn sendfile(
        &mut self,
        py: Python<'_>,
        file: BorrowedFd<'_>,
        offset: i64,
        count: u64,
    ) -> io::Result<()> {
        let mut count = count;
        if let Some(len) = self.framer.response.response_length {
            count = count.min(len.saturating_sub(self.framer.response.sent));
        }
        self.flush_held(py)?;
        let mut head = Vec::with_capacity(512);
        if self.writing == Writing::Init {
            self.head_bytes(&mut head);
        }
        if self.no_body() || count == 0 {
            return self.send(py, &head);
        }
        if self.framer.response.chunked {
            head.extend_from_slice(format!("{count:X}\r\n").as_bytes());
        }
        self.send(py, &head)?;
        let transport = self.transport.as_mut().ok_or_else(finished)?;
        let mut off = offset;
        let sent = py.detach(|| transport.send_file(file, &mut off, count))?;
        self.framer.response.sent += sent;
        if sent < count {
            // The file was shorter than promised: the framing is broken, never reuse.
            self.keep_alive = KeepAlive::Disabled;
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shorter than the response length",
            ));
        }
        if self.framer.response.chunked {
            self.send(py, b"\r\n")?;
        }
        Ok(())
    }

    fn write_raw(&mut self, py: Python<'_>, bytes: &[u8]) {
        let _ = self.flush_held(py);
        if let Some(transport) = self.transport.as_mut() {
            super::super::write_error_page(py, transport, bytes);
        }
    }
}

impl ResponseSink for H1Exchange {
    fn start_response(&mut self, status: &str, headers: &[(String, String)]) -> Result<(), String> {
        self.framer.start(status, headers)
    }

    fn headers_sent(&self) -> bool {
        match self.writing {
            Writing::Init => false,
            Writing::Body | Writing::Done => true,
            Writing::ErrorPage { head_reported } => head_reported,
        }
    }

    fn write_body(&mut self, py: Python<'_>, data: &[u8]) -> io::Result<()> {
        if self.framer.response.status.is_none() {
            return Err(io::Error::other("write() before start_response()"));
        }
        let mut out = Vec::with_capacity(if self.writing == Writing::Init {
            512 + data.len()
        } else {
            data.len() + 16
        });
        self.frame(data, &mut out);
        self.send(py, &out)
    }

    fn body_in_memory(&mut self) {
        if self.may_hold && self.held.is_none() {
            self.held = Some(Vec::new());
        }
    }

    fn send_file(&mut self, py: Python<'_>, fileno: i32) -> io::Result<bool> {
        use nix::unistd::{lseek, Whence};
        // Our own descriptor for the file: the app's object could close its number while the
        // GIL is released for the send.
        let Ok(file) = crate::sys::fd::dup_raw(fileno) else {
            return Ok(false);
        };
        let Ok(offset) = lseek(file.as_fd(), 0, Whence::SeekCur) else {
            return Ok(false);
        };
        let Ok(stat) = nix::sys::stat::fstat(file.as_fd()) else {
            return Ok(false);
        };
        let count = (stat.st_size - offset).max(0) as u64;
        let sent = self.sendfile(py, file.as_fd(), offset, count);
        // Leave the file where the app left it, as Gunicorn does.
        let _ = lseek(file.as_fd(), offset, Whence::SeekSet);
        sent.map(|()| true)
    }

    fn finish_response(&mut self, py: Python<'_>) -> io::Result<()> {
        let mut out = Vec::new();
        if self.writing == Writing::Init {
            self.head_bytes(&mut out);
        }
        if self.framer.end(&mut out) {
            // The client cannot tell where this response ends: never reuse the connection.
            self.keep_alive = KeepAlive::Disabled;
        }
        self.writing = Writing::Done;
        self.send(py, &out)
    }

    fn early_hints(&mut self, py: Python<'_>, headers: &[(String, String)]) -> io::Result<()> {
        let out = ferrocorn_h1::encode_early_hints(headers)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        // HTTP/1.0 has no 1xx responses; after the head it is too late. A uWSGI gateway
        // would take an interim response for the final one.
        if self.writing != Writing::Init || self.framer.version < (1, 1) || self.framer.to_gateway {
            return Ok(());
        }
        self.send(py, &out)
    }

    fn send_error_page(&mut self, py: Python<'_>, page: ErrorPage<'_>) {
        self.keep_alive = KeepAlive::Disabled;
        match page {
            ErrorPage::Internal => {
                self.write_raw(
                    py,
                    &ferrocorn_h1::error_page(500, "Internal Server Error", ""),
                );
                self.framer.response.status = Some("500 Internal Server Error".into());
                self.framer.response.headers.clear();
                self.framer.response.sent = 0;
                self.writing = Writing::ErrorPage {
                    head_reported: false,
                };
            }
            ErrorPage::BadEnviron(reason) => {
                self.write_raw(py, &ferrocorn_h1::error_page(500, "Bad Request", reason));
                self.framer.response.status = Some("500 Bad Request".into());
                self.writing = Writing::ErrorPage {
                    head_reported: false,
                };
            }
            ErrorPage::BadBody(err) => {
                if super::super::log_parse_error(&self.peer, err) {
                    self.write_raw(py, &err.error_response());
                }
                self.framer.response.status = Some(format!("{} {}", err.status(), err.reason()));
                self.writing = Writing::ErrorPage {
                    head_reported: true,
                };
            }
        }
    }

    fn close_after(&mut self) {
        self.keep_alive = KeepAlive::Disabled;
    }

    fn close_forced(&self) -> bool {
        self.keep_alive == KeepAlive::Disabled
    }

    fn will_close(&self) -> bool {
        // A client still waiting for `100 Continue` has not sent the body: the connection
        // cannot go on (see `conclude`).
        if self.close_forced() || self.close_announced || self.awaiting_continue() {
            return true;
        }
        !self.framer.delimited()
    }

    fn response(&self) -> &ResponseInfo {
        &self.framer.response
    }
}

/// What the worker sends itself after the request (see `H1Exchange::take_back`).
pub(super) fn held_bytes(ex: &mut H1Exchange) -> Vec<u8> {
    ex.held.take().unwrap_or_default()
}
