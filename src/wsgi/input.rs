//! `wsgi.input`: the request body as a Python file-like object.
//!
//! The body is streamed from the socket on demand (a 1 GB upload never sits in memory) and the
//! GIL is released while waiting for the client. `Expect: 100-continue` is answered on the
//! first read, so a client is never told to send a body the app will not read.

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};

use ferrocorn_h1::{BodyKind, ChunkedDecoder, ParseError, ParserConfig};
use pyo3::exceptions::{PyIOError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::net::Stream;

/// Largest single socket read for a body of known length (Gunicorn 27 reads up to 1 MiB).
const MAX_READ: usize = 1 << 20;

enum Framing {
    Length(u64),
    Chunked(Box<ChunkedDecoder>),
}

pub struct BodyReader {
    /// None once the request is over: an app that kept `wsgi.input` cannot keep the
    /// connection alive or read from the next request.
    stream: Option<Arc<Stream>>,
    /// Bytes already received but not yet decoded (read-ahead from the head read).
    raw: Vec<u8>,
    raw_pos: usize,
    framing: Framing,
    /// Decoded body bytes not yet handed to the app.
    out: Vec<u8>,
    out_pos: usize,
    done: bool,
    continue_pending: bool,
    /// The protocol error that ended the body, so the worker answers with Gunicorn's status.
    pub failed: Option<ParseError>,
    pub disconnected: bool,
}

impl BodyReader {
    pub fn new(
        stream: Arc<Stream>,
        leftover: Vec<u8>,
        kind: &BodyKind,
        cfg: &ParserConfig,
        expect_continue: bool,
    ) -> Self {
        let framing = match kind {
            BodyKind::Length(n) => Framing::Length(*n),
            BodyKind::Chunked => Framing::Chunked(Box::new(ChunkedDecoder::new(cfg))),
        };
        let done = matches!(framing, Framing::Length(0));
        BodyReader {
            stream: Some(stream),
            raw: leftover,
            raw_pos: 0,
            framing,
            out: Vec::new(),
            out_pos: 0,
            done,
            continue_pending: expect_continue && !done,
            failed: None,
            disconnected: false,
        }
    }

    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Whether what the app can still read is all in memory, so reading needs no socket
    /// I/O (nor a `100 Continue`).
    fn buffered(&self) -> bool {
        if self.done {
            return true;
        }
        match &self.framing {
            Framing::Length(left) => {
                !self.continue_pending && (self.raw.len() - self.raw_pos) as u64 >= *left
            }
            Framing::Chunked(_) => false,
        }
    }

    fn available(&self) -> usize {
        self.out.len() - self.out_pos
    }

    /// Let go of the connection at the end of the request.
    pub fn release(&mut self) {
        self.stream = None;
    }

    fn recv(&mut self, want: usize) -> std::io::Result<usize> {
        let stream = self.stream.clone().ok_or_else(finished)?;
        if self.continue_pending {
            self.continue_pending = false;
            (&*stream).write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        }
        if self.raw_pos >= self.raw.len() {
            self.raw.clear();
            self.raw_pos = 0;
        }
        let start = self.raw.len();
        self.raw.resize(start + want, 0);
        let res = loop {
            match (&*stream).read(&mut self.raw[start..]) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        let n = *res.as_ref().unwrap_or(&0);
        self.raw.truncate(start + n);
        res
    }

    /// Decode more body into `out`. Returns false at the end of the body. Blocking: call it
    /// with the GIL released.
    fn fill(&mut self, want: usize) -> std::io::Result<bool> {
        loop {
            if self.done {
                return Ok(false);
            }
            let pending = &self.raw[self.raw_pos..];
            match &mut self.framing {
                Framing::Length(remaining) => {
                    if !pending.is_empty() {
                        let n = (*remaining).min(pending.len() as u64) as usize;
                        self.out.extend_from_slice(&pending[..n]);
                        self.raw_pos += n;
                        *remaining -= n as u64;
                        self.done = *remaining == 0;
                        return Ok(true);
                    }
                    let ask = (*remaining).min(want.clamp(8192, MAX_READ) as u64) as usize;
                    if self.recv(ask)? == 0 {
                        // Gunicorn's length reader stops at EOF and hands the app what came;
                        // the connection is not reused.
                        self.done = true;
                        self.disconnected = true;
                        return Ok(false);
                    }
                    continue;
                }
                Framing::Chunked(dec) => {
                    if !pending.is_empty() {
                        let before = self.out.len();
                        match dec.decode(pending, &mut self.out) {
                            Ok(used) => self.raw_pos += used,
                            Err(e) => return self.protocol_error(e),
                        }
                        self.done = dec.is_done();
                        if self.out.len() > before || self.done {
                            return Ok(true);
                        }
                        continue;
                    }
                }
            }
            // Nothing buffered: only chunked bodies get here.
            if self.recv(want.clamp(8192, MAX_READ))? == 0 {
                let err = match &self.framing {
                    Framing::Chunked(dec) => dec.finish_eof().err(),
                    Framing::Length(_) => None,
                };
                return self.eof(err.unwrap_or(ParseError::NoMoreData(None)));
            }
        }
    }

    fn eof(&mut self, err: ParseError) -> std::io::Result<bool> {
        self.disconnected = true;
        self.protocol_error(err)
    }

    fn protocol_error(&mut self, err: ParseError) -> std::io::Result<bool> {
        let msg = err.message();
        self.failed = Some(err);
        self.done = true;
        Err(std::io::Error::new(std::io::ErrorKind::InvalidData, msg))
    }

    fn take(&mut self, n: usize) -> Vec<u8> {
        let n = n.min(self.available());
        let v = self.out[self.out_pos..self.out_pos + n].to_vec();
        self.out_pos += n;
        if self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
        }
        v
    }

    /// Hand `f` up to `size` bytes (all when None) straight from the received bytes, when
    /// the rest of a Content-Length body is already in memory and nothing was decoded
    /// ahead: one copy (into the app's bytes object) instead of three. None otherwise.
    pub fn read_in_place<R>(
        &mut self,
        size: Option<usize>,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Option<R> {
        if self.done || self.available() != 0 || !self.buffered() {
            return None;
        }
        let Framing::Length(left) = &mut self.framing else {
            return None;
        };
        let pending = self.raw.len() - self.raw_pos;
        let n = (*left)
            .min(size.unwrap_or(usize::MAX) as u64)
            .min(pending as u64) as usize;
        let out = f(&self.raw[self.raw_pos..self.raw_pos + n]);
        self.raw_pos += n;
        *left -= n as u64;
        self.done = *left == 0;
        Some(out)
    }

    /// Read up to `size` bytes (all when None), blocking until that many arrive or the body ends.
    pub fn read(&mut self, size: Option<usize>) -> std::io::Result<Vec<u8>> {
        let limit = size.unwrap_or(usize::MAX);
        while self.available() < limit {
            let want = limit.saturating_sub(self.available());
            if !self.fill(want)? {
                break;
            }
        }
        Ok(self.take(limit))
    }

    pub fn readline(&mut self, size: Option<usize>) -> std::io::Result<Vec<u8>> {
        let limit = size.unwrap_or(usize::MAX);
        let mut scanned = 0;
        loop {
            let avail = &self.out[self.out_pos..];
            if let Some(i) = avail[scanned..].iter().position(|b| *b == b'\n') {
                return Ok(self.take((scanned + i + 1).min(limit)));
            }
            scanned = avail.len();
            if scanned >= limit || !self.fill(8192)? {
                return Ok(self.take(limit));
            }
        }
    }

    /// Read and discard what the app left unread (bounded), so a keep-alive connection can
    /// go on with the next request.
    pub fn drain(&mut self, max: usize) -> bool {
        let mut seen = 0;
        while !self.done && seen <= max {
            self.out.clear();
            self.out_pos = 0;
            match self.fill(65536) {
                Ok(_) => seen += self.out.len(),
                Err(_) => return false,
            }
        }
        self.done && self.failed.is_none()
    }

    /// Bytes received beyond this body (a pipelined next request).
    pub fn take_leftover(&mut self) -> Vec<u8> {
        self.raw.split_off(self.raw_pos)
    }
}

/// The error for I/O on a request that is already over.
pub fn finished() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::NotConnected, "the request is over")
}

/// The Python object behind `environ['wsgi.input']`.
#[pyclass(module = "ferrocorn", name = "Input")]
pub struct Input {
    pub reader: Arc<Mutex<BodyReader>>,
}

fn size_arg(size: Option<isize>) -> Option<usize> {
    match size {
        Some(n) if n >= 0 => Some(n as usize),
        _ => None,
    }
}

impl Input {
    fn with<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut BodyReader) -> std::io::Result<T> + Send,
    ) -> PyResult<T> {
        let reader = self.reader.clone();
        // A body already in memory is read with the GIL held: letting go of it would hand
        // it to another thread for nothing. (A reader busy in another thread is waited for
        // without the GIL.)
        let guard = match reader.try_lock() {
            Ok(r) => Some(r),
            Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        };
        let result = match guard {
            Some(mut r) if r.buffered() => f(&mut r),
            other => {
                drop(other);
                py.detach(move || {
                    let mut r = reader.lock().unwrap_or_else(|p| p.into_inner());
                    f(&mut r)
                })
            }
        };
        result.map_err(|e| PyIOError::new_err(e.to_string()))
    }
}

#[pymethods]
impl Input {
    #[pyo3(signature = (size=None))]
    fn read<'py>(&self, py: Python<'py>, size: Option<isize>) -> PyResult<Bound<'py, PyBytes>> {
        let n = size_arg(size);
        if let Ok(mut r) = self.reader.try_lock() {
            if let Some(bytes) = r.read_in_place(n, |data| PyBytes::new(py, data)) {
                return Ok(bytes);
            }
        }
        let data = self.with(py, move |r| r.read(n))?;
        Ok(PyBytes::new(py, &data))
    }

    #[pyo3(signature = (size=None))]
    fn readline<'py>(&self, py: Python<'py>, size: Option<isize>) -> PyResult<Bound<'py, PyBytes>> {
        let n = size_arg(size);
        let data = self.with(py, move |r| r.readline(n))?;
        Ok(PyBytes::new(py, &data))
    }

    #[pyo3(signature = (hint=None))]
    fn readlines<'py>(
        &self,
        py: Python<'py>,
        hint: Option<isize>,
    ) -> PyResult<Vec<Bound<'py, PyBytes>>> {
        let hint = size_arg(hint).filter(|h| *h > 0);
        let lines = self.with(py, move |r| {
            let mut lines = Vec::new();
            let mut total = 0;
            loop {
                let line = r.readline(None)?;
                if line.is_empty() {
                    break;
                }
                total += line.len();
                lines.push(line);
                if hint.is_some_and(|h| total >= h) {
                    break;
                }
            }
            Ok(lines)
        })?;
        Ok(lines.iter().map(|l| PyBytes::new(py, l)).collect())
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let line = self.with(py, |r| r.readline(None))?;
        Ok((!line.is_empty()).then(|| PyBytes::new(py, &line)))
    }

    fn close(&self) {}

    fn seekable(&self) -> bool {
        false
    }

    fn readable(&self) -> bool {
        true
    }

    fn fileno(&self) -> PyResult<i32> {
        Err(PyValueError::new_err("wsgi.input has no file descriptor"))
    }
}
