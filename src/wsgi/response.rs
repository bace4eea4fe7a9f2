//! `start_response`, the `write()` callable, and the response writer.
//!
//! Framing follows Gunicorn's `Response`: the app's status and headers are validated (an
//! invalid one is an app error, so a 500), hop-by-hop headers and the app's Server/Date are
//! replaced, Content-Length is honoured and enforced, HTTP/1.1 without a length is chunked,
//! and HEAD/1xx/204/304 carry no body. A write that would block releases the GIL.
//!
//! A response whose body the app returned as a list or tuple can be held back whole
//! (`defer`) and handed to the caller instead of written: the gthread worker's writer
//! thread sends it while the app thread goes on to the next request.

use std::io::Write;
use std::sync::{Arc, Mutex, MutexGuard};

use ferrocorn_h1::{encode_chunk, encode_head, ConnectionHeader, DateCache, LAST_CHUNK};
use pyo3::exceptions::{PyAssertionError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};

use crate::net::Stream;
use crate::telemetry::error_log;

thread_local! {
    /// One Date header cache per serving thread: the text is formatted once a second, not
    /// once a response.
    static DATE: std::cell::RefCell<DateCache> = std::cell::RefCell::new(DateCache::new());
}

pub struct ResponseState {
    /// None once the request is over (see `release`).
    stream: Option<Arc<Stream>>,
    version: (u8, u8),
    is_head: bool,
    pub status: Option<String>,
    pub status_code: u16,
    /// The app's headers after filtering, in order (what `{name}o` access atoms see).
    pub headers: Vec<(String, String)>,
    pub headers_sent: bool,
    pub chunked: bool,
    pub response_length: Option<u64>,
    pub sent: u64,
    pub must_close: bool,
    upgrade: bool,
    warned_body: bool,
    server: &'static str,
    /// Bytes held back for the caller to send (`defer`), while they fit `DEFER_LIMIT`.
    deferred: Option<Vec<u8>>,
}

/// A held-back response larger than this is written at once instead.
const DEFER_LIMIT: usize = 128 * 1024;

impl ResponseState {
    pub fn new(stream: Arc<Stream>, version: (u8, u8), method: &str, must_close: bool) -> Self {
        ResponseState {
            stream: Some(stream),
            version,
            is_head: method == "HEAD",
            status: None,
            status_code: 0,
            headers: Vec::new(),
            headers_sent: false,
            chunked: false,
            response_length: None,
            sent: 0,
            must_close,
            upgrade: false,
            warned_body: false,
            server: "ferrocorn",
            deferred: None,
        }
    }

    /// Hold back what is written from now on, up to `DEFER_LIMIT`, for `take_deferred`.
    pub fn defer(&mut self) {
        if self.deferred.is_none() {
            self.deferred = Some(Vec::new());
        }
    }

    /// The bytes held back (the caller must send them, in order, before anything else on
    /// this connection); writing goes straight to the socket again.
    pub fn take_deferred(&mut self) -> Vec<u8> {
        self.deferred.take().unwrap_or_default()
    }

    /// Let go of the connection at the end of the request, so `start_response`, `write` and
    /// `wsgi.early_hints` kept by the app cannot touch it any more.
    pub fn release(&mut self) {
        self.stream = None;
    }

    fn no_body(&self) -> bool {
        ferrocorn_h1::response_omits_body(if self.is_head { "HEAD" } else { "" }, self.status_code)
    }

    fn start(&mut self, status: &str, headers: &[(String, String)]) -> PyResult<()> {
        let code = ferrocorn_h1::validate_status(status)
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        let mut processed = ferrocorn_h1::process_headers(headers)
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        if ferrocorn_h1::response_forbids_content_length(code) {
            processed.drop_content_length();
        }
        self.status_code = code;
        self.status = Some(status.to_string());
        // A negative Content-Length is kept as Gunicorn keeps it: no body byte is sent.
        self.response_length = processed.content_length.map(|n| n.max(0) as u64);
        self.upgrade = processed.upgrade;
        self.headers = processed.headers;
        self.chunked = ferrocorn_h1::response_is_chunked(
            processed.content_length,
            self.version,
            self.no_body(),
        );
        Ok(())
    }

    /// Whether the connection may serve another request after this response.
    pub fn should_close(&self) -> bool {
        if self.must_close {
            return true;
        }
        if self.response_length.is_some() || self.chunked || self.no_body() {
            return false;
        }
        true
    }

    fn head_bytes(&mut self, out: &mut Vec<u8>) {
        let connection = if self.upgrade {
            ConnectionHeader::Upgrade
        } else if self.should_close() {
            ConnectionHeader::Close
        } else {
            ConnectionHeader::KeepAlive
        };
        let status = self.status.clone().unwrap_or_default();
        let date = DATE.with(|d| d.borrow_mut().get().to_string());
        encode_head(
            out,
            self.version,
            &status,
            self.server,
            &date,
            connection,
            self.chunked,
            &self.headers,
        );
        self.headers_sent = true;
    }

    /// Frame `data` as body bytes, prefixed by the head on the first call.
    fn frame(&mut self, data: &[u8], out: &mut Vec<u8>) {
        if !self.headers_sent {
            self.head_bytes(out);
        }
        if self.no_body() {
            if !data.is_empty() && !self.warned_body {
                self.warned_body = true;
                error_log::warning(&format!(
                    "WSGI app sent body bytes on a no-body response ({}); they were dropped",
                    self.status.as_deref().unwrap_or("")
                ));
            }
            return;
        }
        let mut data = data;
        if let Some(len) = self.response_length {
            let left = len.saturating_sub(self.sent) as usize;
            data = &data[..data.len().min(left)];
        }
        if self.chunked {
            encode_chunk(out, data);
        } else {
            out.extend_from_slice(data);
        }
        self.sent += data.len() as u64;
    }

    fn send(&mut self, py: Python<'_>, bytes: &[u8]) -> std::io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        let stream = self
            .stream
            .clone()
            .ok_or_else(crate::wsgi::input::finished)?;
        if let Some(held) = self.deferred.as_mut() {
            if held.len() + bytes.len() <= DEFER_LIMIT {
                held.extend_from_slice(bytes);
                return Ok(());
            }
            let mut all = self.take_deferred();
            all.extend_from_slice(bytes);
            return Self::send_now(py, &stream, &all);
        }
        Self::send_now(py, &stream, bytes)
    }

    fn send_now(py: Python<'_>, stream: &Arc<Stream>, bytes: &[u8]) -> std::io::Result<()> {
        // Most responses fit in the socket buffer: only a write that would block is worth
        // releasing the GIL for (each release is a hand-off to another thread).
        let n = stream.send_now(bytes)?;
        if n == bytes.len() {
            return Ok(());
        }
        let rest = &bytes[n..];
        let stream = stream.clone();
        py.detach(move || (&*stream).write_all(rest))
    }

    /// Write out whatever is held back, before a write that bypasses `send`.
    pub fn flush_deferred(&mut self, py: Python<'_>) -> std::io::Result<()> {
        let held = self.take_deferred();
        self.send(py, &held)
    }

    pub fn write(&mut self, py: Python<'_>, data: &[u8]) -> std::io::Result<()> {
        if self.status.is_none() {
            return Err(std::io::Error::other("write() before start_response()"));
        }
        let mut out = Vec::with_capacity(if self.headers_sent {
            data.len() + 16
        } else {
            512 + data.len()
        });
        self.frame(data, &mut out);
        self.send(py, &out)
    }

    /// Send `count` bytes of `file` from `offset` with sendfile(2), framed like any other body
    /// write (head first, chunk size line when chunked). The GIL is released throughout.
    /// Unlike Gunicorn, the bytes sent are counted, so the access log's `%(b)s` is right.
    pub fn sendfile(
        &mut self,
        py: Python<'_>,
        file: std::os::fd::BorrowedFd<'_>,
        offset: i64,
        count: u64,
    ) -> std::io::Result<()> {
        let mut count = count;
        if let Some(len) = self.response_length {
            count = count.min(len.saturating_sub(self.sent));
        }
        self.flush_deferred(py)?;
        let mut head = Vec::with_capacity(512);
        if !self.headers_sent {
            self.head_bytes(&mut head);
        }
        if self.no_body() || count == 0 {
            return self.send(py, &head);
        }
        if self.chunked {
            head.extend_from_slice(format!("{count:X}\r\n").as_bytes());
        }
        self.send(py, &head)?;
        let stream = self
            .stream
            .clone()
            .ok_or_else(crate::wsgi::input::finished)?;
        let raw_file = std::os::fd::AsRawFd::as_raw_fd(&file);
        let sent = py.detach(move || -> std::io::Result<u64> {
            let out = crate::sys::process::borrow_fd(std::os::fd::AsRawFd::as_raw_fd(&*stream));
            let input = crate::sys::process::borrow_fd(raw_file);
            let mut off = offset as libc::off_t;
            let mut left = count;
            while left > 0 {
                let chunk = left.min(1 << 30) as usize;
                match nix::sys::sendfile::sendfile(out, input, Some(&mut off), chunk) {
                    Ok(0) => break,
                    Ok(n) => left -= n as u64,
                    Err(nix::errno::Errno::EINTR) | Err(nix::errno::Errno::EAGAIN) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            Ok(count - left)
        })?;
        self.sent += sent;
        if sent < count {
            // The file was shorter than promised: the framing is broken, never reuse.
            self.must_close = true;
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "file shorter than the response length",
            ));
        }
        if self.chunked {
            self.send(py, b"\r\n")?;
        }
        Ok(())
    }

    /// End the response: the head if nothing was written yet, and the last chunk.
    pub fn finish(&mut self, py: Python<'_>) -> std::io::Result<()> {
        let mut out = Vec::new();
        if !self.headers_sent {
            self.head_bytes(&mut out);
        }
        if self.chunked {
            out.extend_from_slice(LAST_CHUNK);
        }
        if let Some(len) = self.response_length {
            if self.sent < len && !self.no_body() {
                // The client cannot tell where this response ends: never reuse the connection.
                self.must_close = true;
                error_log::warning(&format!(
                    "WSGI app sent {} bytes of a {}-byte Content-Length; closing the connection",
                    self.sent, len
                ));
            }
        }
        self.send(py, &out)
    }
}

pub type Shared = Arc<Mutex<ResponseState>>;

pub fn lock(s: &Shared) -> MutexGuard<'_, ResponseState> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

fn header_list(headers: &Bound<'_, PyAny>) -> PyResult<Vec<(String, String)>> {
    let mut out = Vec::new();
    for item in headers.try_iter()? {
        let item = item?;
        // Like Gunicorn's `for name, value in headers`, any two-item sequence will do.
        let pair: Vec<Bound<'_, PyAny>> = item
            .try_iter()
            .and_then(|it| it.collect::<PyResult<Vec<_>>>())
            .map_err(|_| PyTypeError::new_err(format!("{item:?} is not a (name, value) pair")))?;
        let [name, value] = <[Bound<'_, PyAny>; 2]>::try_from(pair)
            .map_err(|_| PyTypeError::new_err(format!("{item:?} is not a (name, value) pair")))?;
        let name = name
            .cast::<PyString>()
            .map_err(|_| PyTypeError::new_err(format!("{name:?} is not a string")))?
            .to_str()?
            .to_string();
        let value = value
            .cast::<PyString>()
            .map_err(|_| PyTypeError::new_err(format!("{value:?} is not a string")))?
            .to_str()?
            .to_string();
        out.push((name, value));
    }
    Ok(out)
}

/// The `start_response` callable handed to the app.
#[pyclass(module = "ferrocorn", name = "StartResponse")]
pub struct StartResponse {
    pub state: Shared,
}

#[pymethods]
impl StartResponse {
    #[pyo3(signature = (status, headers, exc_info=None))]
    fn __call__(
        &self,
        py: Python<'_>,
        status: &Bound<'_, PyAny>,
        headers: &Bound<'_, PyAny>,
        exc_info: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<WriteFn> {
        let exc_info = exc_info.filter(|e| !e.is_none());
        {
            let st = lock(&self.state);
            if let Some(info) = exc_info {
                if st.headers_sent {
                    // PEP 3333: too late to change the response; re-raise the app's error.
                    let exc = info.get_item(1)?;
                    return Err(PyErr::from_value(exc));
                }
            } else if st.status.is_some() {
                return Err(PyAssertionError::new_err("Response headers already set!"));
            }
        }
        let status = status
            .cast::<PyString>()
            .map_err(|_| PyTypeError::new_err(format!("{status:?} is not a string")))?
            .to_str()?
            .to_string();
        let headers = header_list(headers)?;
        let _ = py;
        lock(&self.state).start(&status, &headers)?;
        Ok(WriteFn {
            state: self.state.clone(),
        })
    }
}

/// The legacy `write(data)` callable returned by `start_response`.
#[pyclass(module = "ferrocorn", name = "Write")]
pub struct WriteFn {
    state: Shared,
}

#[pymethods]
impl WriteFn {
    fn __call__(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let bytes = data
            .cast::<PyBytes>()
            .map_err(|_| PyTypeError::new_err(format!("{data:?} is not a byte")))?;
        lock(&self.state)
            .write(py, bytes.as_bytes())
            .map_err(|e| pyo3::exceptions::PyIOError::new_err(e.to_string()))
    }
}

fn text_or_latin1(v: &Bound<'_, PyAny>) -> PyResult<String> {
    if let Ok(s) = v.cast::<PyString>() {
        return Ok(s.to_str()?.to_string());
    }
    if let Ok(b) = v.cast::<PyBytes>() {
        return Ok(b.as_bytes().iter().map(|&c| c as char).collect());
    }
    Err(PyTypeError::new_err(format!("{v:?} is not a string")))
}

/// `environ['wsgi.early_hints']`: sends `103 Early Hints` with the given headers, as many
/// times as the app calls it, until the response starts. Ignored on HTTP/1.0 (which has no
/// 1xx responses) and after the response head went out, as Gunicorn does.
#[pyclass(module = "ferrocorn", name = "EarlyHints")]
pub struct EarlyHints {
    pub state: Shared,
}

#[pymethods]
impl EarlyHints {
    fn __call__(&self, py: Python<'_>, headers: &Bound<'_, PyAny>) -> PyResult<()> {
        let mut out = b"HTTP/1.1 103 Early Hints\r\n".to_vec();
        for item in headers.try_iter()? {
            let item = item?;
            let pair: Vec<Bound<'_, PyAny>> = item.try_iter()?.collect::<PyResult<_>>()?;
            let [name, value] = <[Bound<'_, PyAny>; 2]>::try_from(pair).map_err(|_| {
                PyTypeError::new_err(format!("{item:?} is not a (name, value) pair"))
            })?;
            let (name, value) = (text_or_latin1(&name)?, text_or_latin1(&value)?);
            if !ferrocorn_h1::valid_header_name(&name) {
                return Err(PyValueError::new_err(format!(
                    "Invalid response header name {name:?}"
                )));
            }
            if !ferrocorn_h1::valid_header_value(&value) {
                return Err(PyValueError::new_err(format!(
                    "Invalid response header value for {name:?}"
                )));
            }
            ferrocorn_h1::push_latin1(&mut out, &name);
            out.extend_from_slice(b": ");
            ferrocorn_h1::push_latin1(&mut out, value.trim_matches([' ', '\t']));
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        let mut st = lock(&self.state);
        if st.headers_sent || st.version < (1, 1) {
            return Ok(());
        }
        st.send(py, &out)
            .map_err(|e| pyo3::exceptions::PyIOError::new_err(e.to_string()))
    }
}
