//! The protocol-neutral request and the two traits a bridge reads a body from and writes a
//! response to. HTTP/1.1 (`conn::exchange`) implements them today; an HTTP/2 stream or an
//! ASGI worker can implement the same ones, so `wsgi/` never learns which protocol or
//! transport carried the request.
//!
//! Owns: what a request *is* (method, target, headers, who sent it, where it arrived) and the
//! contract of reading its body and answering it. Must not: parse or frame bytes, or touch a
//! socket; every implementation of these traits does that on its own side.

mod addr;
mod session;

use std::io;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex, MutexGuard};

use ferrocorn_h1::{GatewayVars, ParseError, ProxyInfo};
use pyo3::prelude::*;

pub use addr::{Peer, ServerAddr};
pub use session::{
    ByteHeaders, CallKind, Hub, HubEvent, Inbound, NewCall, Outgoing, Relay, Session, SessionState,
    RECEIVE_HIGH_WATER, SEND_HIGH_WATER, WS_QUEUE_LIMIT,
};

/// One request, whatever protocol carried it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// The request-target exactly as received (`RAW_URI`).
    pub uri: String,
    pub path: String,
    pub query: String,
    pub fragment: String,
    pub version: (u8, u8),
    /// `(UPPER-CASED name, value)` in arrival order.
    pub headers: Vec<(String, String)>,
    /// `"https"` when the listener is TLS or a trusted secure-scheme header says so.
    pub scheme: &'static str,
    pub peer: Peer,
    pub server: ServerAddr,
    /// What a PROXY protocol header at the start of the connection said.
    pub proxy: Option<ProxyInfo>,
    /// The request's position on its connection, from 1 (Gunicorn's `req.req_number`).
    pub number: u64,
    /// The client asked for the connection to close after this request.
    pub close_requested: bool,
    /// The connection's TLS version, cipher and client certificate, for bridges that tell
    /// the app (the ASGI TLS extension); None in plain text.
    pub tls: Option<Arc<crate::tls::ConnInfo>>,
    /// What a uWSGI gateway (a proxy on `uwsgi_allow_ips`) said about the client and the
    /// server; None for HTTP. `path` is then PATH_INFO as the gateway sent it, already
    /// decoded.
    pub gateway: Option<Box<GatewayVars>>,
}

impl Request {
    /// SERVER_PROTOCOL: what the client spoke, as the gateway saw it or as the head said.
    pub fn server_protocol(&self) -> std::borrow::Cow<'_, str> {
        match self.gateway.as_ref().and_then(|g| g.protocol.as_deref()) {
            Some(p) => p.into(),
            None => match self.version {
                (1, 1) => "HTTP/1.1".into(),
                (1, 0) => "HTTP/1.0".into(),
                (major, minor) => format!("HTTP/{major}.{minor}").into(),
            },
        }
    }

    /// REMOTE_ADDR before any PROXY header: the client a gateway names, else the peer ('' for
    /// a unix socket).
    pub fn remote_addr(&self) -> String {
        match self.gateway.as_ref().and_then(|g| g.remote_addr.as_ref()) {
            Some(a) => a.clone(),
            None => self.peer.ip_string(),
        }
    }

    /// The values of every field named `upper` (an UPPER-cased name), in arrival order.
    pub fn header_values<'r>(&'r self, upper: &'r str) -> impl Iterator<Item = &'r str> {
        self.headers
            .iter()
            .filter(move |(n, _)| n == upper)
            .map(|(_, v)| v.as_str())
    }
}

/// What becomes of the connection once a request is over.
#[derive(Debug, PartialEq, Eq)]
pub enum After {
    /// It may carry another request; these bytes of it already arrived.
    KeepAlive(Vec<u8>),
    /// Close it gracefully once the response is out.
    Close,
    /// Drop it without a graceful close: the worker is exiting, or (the gthread writer)
    /// the client stopped taking the response.
    Gone,
}

/// The response as the access log and `post_request` hooks see it.
#[derive(Debug, Default, Clone)]
pub struct ResponseInfo {
    /// The status line the app gave (or the error page's), e.g. `"200 OK"`.
    pub status: Option<String>,
    pub status_code: u16,
    /// The app's headers after filtering, in order.
    pub headers: Vec<(String, String)>,
    /// The Content-Length the app announced.
    pub response_length: Option<u64>,
    /// Body bytes sent.
    pub sent: u64,
    pub chunked: bool,
}

/// An error page the server answers with instead of the app's response.
#[derive(Debug)]
pub enum ErrorPage<'a> {
    /// The app failed before its response started (`500 Internal Server Error`).
    Internal,
    /// The environ could not be built (Gunicorn answers `500 Bad Request` with the reason).
    BadEnviron(&'a str),
    /// The request body could not be read (Gunicorn's status for the parse error).
    BadBody(&'a ParseError),
}

/// The request body, as the bridge reads it. Reads block until data arrives: call them with
/// the GIL released unless `body_buffered` says no I/O is needed.
pub trait BodySource {
    /// Whether everything the app can still read is in memory, so reading needs no I/O.
    fn body_buffered(&self) -> bool;
    /// Up to `size` bytes (all that is left when None), blocking until that many arrive or
    /// the body ends.
    fn read_body(&mut self, size: Option<usize>) -> io::Result<Vec<u8>>;
    /// One line (through `\n`), at most `size` bytes.
    fn read_body_line(&mut self, size: Option<usize>) -> io::Result<Vec<u8>>;
    /// Hand `f` up to `size` bytes straight from memory when the rest of the body is there
    /// and nothing was decoded ahead (one copy fewer). False when it could not.
    fn read_body_in_place(&mut self, size: Option<usize>, f: &mut dyn FnMut(&[u8])) -> bool;
    /// The protocol error that ended the body early, once (for the error page).
    fn take_body_error(&mut self) -> Option<ParseError>;
}

/// The response, as the bridge writes it. Methods that may block take `py` to release the
/// GIL around the wait.
pub trait ResponseSink {
    /// Status and headers, validated by the protocol's rules; an `Err` is the message of the
    /// app's mistake (the bridge raises it as ValueError). May be called again until the
    /// head goes out.
    fn start_response(&mut self, status: &str, headers: &[(String, String)]) -> Result<(), String>;
    /// Whether the response head has gone out (or is framed to go out).
    fn headers_sent(&self) -> bool;
    /// Body bytes.
    fn write_body(&mut self, py: Python<'_>, data: &[u8]) -> io::Result<()>;
    /// The app's whole body is in memory: the sink may hold the response back and let the
    /// worker send it after the request (the gthread writer thread).
    fn body_in_memory(&mut self);
    /// Send the rest of the file behind descriptor number `fileno` (what Python's
    /// `fileno()` returned) as body. Ok(false) when it is not a file that can be sent this
    /// way; the bridge then iterates it instead.
    fn send_file(&mut self, py: Python<'_>, fileno: i32) -> io::Result<bool>;
    /// End the response (the head if nothing was written, the last chunk).
    fn finish_response(&mut self, py: Python<'_>) -> io::Result<()>;
    /// Informational `103 Early Hints`, ignored where the protocol has none.
    fn early_hints(&mut self, py: Python<'_>, headers: &[(String, String)]) -> io::Result<()>;
    /// Answer with an error page instead (only before the head went out).
    fn send_error_page(&mut self, py: Python<'_>, page: ErrorPage<'_>);
    /// The connection must not carry another request after this one.
    fn close_after(&mut self);
    /// Whether `close_after` was called (Gunicorn's `resp.must_close`).
    fn close_forced(&self) -> bool;
    /// Whether the connection closes after this response: forced, or a response whose end
    /// the client can only learn from the close.
    fn will_close(&self) -> bool;
    fn response(&self) -> &ResponseInfo;
}

/// One request's body and response, shared by the objects a bridge hands the app.
pub trait Exchange: BodySource + ResponseSink + Send {
    /// The request is over: `reuse` says whether the request side allows another one on the
    /// connection. Discards what the app left of the body (bounded) and says what becomes
    /// of the connection. Objects the app kept can no longer touch the connection after
    /// the worker takes it back.
    fn conclude(&mut self, py: Python<'_>, reuse: bool) -> After;
    /// A new descriptor for the connection's socket (`gunicorn.socket`); None when the
    /// exchange has no socket of its own to give.
    fn dup_socket(&self) -> Option<io::Result<OwnedFd>>;
    /// What the connection's TLS session says about itself (None in plain text).
    fn tls_info(&mut self) -> Option<Arc<crate::tls::ConnInfo>> {
        None
    }
}

pub type SharedExchange = Arc<Mutex<dyn Exchange>>;

/// Set by the gevent worker: a callable that lets the hub run other greenlets for a moment.
static YIELD: std::sync::OnceLock<Py<PyAny>> = std::sync::OnceLock::new();

/// Under gevent, a mutex held here may belong to a greenlet parked on this same thread (an
/// exchange locked by a `wsgi.input` read waiting for the body, while another greenlet of the
/// app writes the response): `lock` then yields to the hub until it is free, instead of
/// blocking the thread that greenlet needs to run on.
pub fn set_cooperative_yield(yield_now: Py<PyAny>) {
    let _ = YIELD.set(yield_now);
}

/// Lock a mutex that another thread may hold while it waits for the GIL (an exchange, held
/// by an app thread blocked reading the body), from a thread holding the GIL: at once when
/// it is free, otherwise waiting without the GIL, so the two never wait for each other (or,
/// under gevent, letting other greenlets run, see `set_cooperative_yield`; an exception
/// thrown into this greenlet meanwhile is dropped: use `lock_py` where the app called).
pub fn lock<'a, T: ?Sized + Send>(py: Python<'_>, ex: &'a Mutex<T>) -> MutexGuard<'a, T> {
    loop {
        if let Ok(guard) = lock_py(py, ex) {
            return guard;
        }
    }
}

/// `lock` for a call the app made: an exception thrown into the greenlet while it waits
/// (a `gevent.Timeout` the app set, a kill) ends the wait and is raised to the app.
pub fn lock_py<'a, T: ?Sized + Send>(
    py: Python<'_>,
    ex: &'a Mutex<T>,
) -> PyResult<MutexGuard<'a, T>> {
    loop {
        match ex.try_lock() {
            Ok(g) => return Ok(g),
            Err(std::sync::TryLockError::Poisoned(p)) => return Ok(p.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => match YIELD.get() {
                Some(yield_now) => {
                    yield_now.call0(py)?;
                }
                None => py.detach(|| {
                    drop(ex.lock());
                }),
            },
        }
    }
}
