//! One client connection while the connection table owns it: the bytes received so far, the
//! head parser's progress, an optional PROXY header, and the body bytes gathered before the
//! request goes to a Python thread. Non-blocking reads only; no Python, no writes except
//! the error page of a request that cannot be parsed.
//!
//! It also holds the connection's `gunicorn.socket` object between requests. Dropping that
//! would run Python (the socket's finalizer), which must never happen under the table's
//! lock, so a dropped connection buries it instead and the leader closes the buried ones
//! outside the lock (`close_buried`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use pyo3::prelude::*;

use ferrocorn_h1::{
    parse_proxy_header, BodyKind, HeadParser, ParseError, ParserConfig, ProxyInfo, ProxyParse,
    RequestHead,
};

use crate::net::{Peer, Stream};
use crate::workers::sync::ProxyPolicy;

/// Bodies up to this size are received in full before the app sees the
/// request, so a slow uploader never holds a thread; larger ones stream from the socket.
pub const BUFFER_LIMIT: u64 = 1 << 20;

/// At most this much is read from one connection per readiness event, so one fast sender
/// cannot starve the others.
const READ_CHUNK: usize = 64 * 1024;

thread_local! {
    /// Where `fill` receives, zeroed once per thread rather than once per read, and large
    /// enough that a request with a 16 KiB body arrives in one recv(2).
    static SCRATCH: std::cell::RefCell<Box<[u8]>> =
        std::cell::RefCell::new(vec![0u8; READ_CHUNK].into_boxed_slice());
}

pub struct Connection {
    pub stream: Arc<Stream>,
    pub peer: Peer,
    pub listener: usize,
    /// Received and not yet handed to a request (the start of the next one when pipelined).
    buf: Vec<u8>,
    parser: HeadParser,
    proxy: ProxyPolicy,
    proxy_pending: bool,
    pub proxy_info: Option<ProxyInfo>,
    trusted: bool,
    /// A parsed head waiting for its body to arrive in `buf`.
    waiting: Option<(Box<RequestHead>, usize)>,
    /// Requests this connection has carried.
    pub served: u64,
    /// When the current wait began: accept, the end of the last response, or the first byte
    /// of a head; the table's deadlines count from here.
    pub since: Instant,
    /// Whether any byte of the next request has arrived.
    pub started: bool,
    /// Whether the descriptor is in the worker's epoll set (armed or not).
    pub in_epoll: bool,
    /// The peer closed its side (or reading failed): nothing more will arrive.
    pub eof: bool,
    /// The `gunicorn.socket` object of this connection's requests.
    pub app_socket: KeptSocket,
}

/// Socket objects of dropped connections, waiting for a thread holding the GIL and no lock.
static BURIED: Mutex<Vec<Py<PyAny>>> = Mutex::new(Vec::new());
static BURIED_COUNT: AtomicUsize = AtomicUsize::new(0);

#[derive(Default)]
pub struct KeptSocket(pub Option<Py<PyAny>>);

impl Drop for KeptSocket {
    fn drop(&mut self) {
        if let Some(sock) = self.0.take() {
            BURIED.lock().unwrap_or_else(|p| p.into_inner()).push(sock);
            BURIED_COUNT.fetch_add(1, Ordering::Release);
        }
    }
}

/// Close the socket objects of connections dropped since the last call. Call with the GIL
/// and without the table's lock.
pub fn close_buried(py: Python<'_>) {
    if BURIED_COUNT.load(Ordering::Acquire) == 0 {
        return;
    }
    let socks = std::mem::take(&mut *BURIED.lock().unwrap_or_else(|p| p.into_inner()));
    BURIED_COUNT.fetch_sub(socks.len(), Ordering::AcqRel);
    for sock in socks {
        crate::workers::app_socket::close_app_socket(py, sock);
    }
}

pub enum Progress {
    /// Nothing complete yet.
    NeedMore,
    /// A request to hand to a thread, with the bytes after its head.
    Ready(Box<RequestHead>, Vec<u8>),
    /// Input that can never become a request: answer with the error page and close.
    Invalid(ParseError),
}

impl Connection {
    pub fn new(
        stream: Stream,
        peer: Peer,
        listener: usize,
        proxy: ProxyPolicy,
        trusted: bool,
    ) -> Self {
        let proxy_pending = proxy.mode != ferrocorn_h1::ProxyMode::Off;
        Connection {
            stream: Arc::new(stream),
            peer,
            listener,
            buf: Vec::new(),
            parser: HeadParser::new(),
            proxy,
            proxy_pending,
            proxy_info: None,
            trusted,
            waiting: None,
            served: 0,
            since: Instant::now(),
            started: false,
            in_epoll: false,
            eof: false,
            app_socket: KeptSocket::default(),
        }
    }

    /// Back from a thread with the bytes it read past its request.
    pub fn resume(&mut self, leftover: Vec<u8>) {
        self.buf = leftover;
        self.parser.reset();
        self.waiting = None;
        self.served += 1;
        self.since = Instant::now();
        self.started = !self.buf.is_empty();
    }

    /// A head has arrived and its body is still coming: a request, not an idle connection.
    pub fn waiting_body(&self) -> bool {
        self.waiting.is_some()
    }

    /// The client closed while its body was still arriving: the request goes to the app
    /// with what came, as Gunicorn's length reader hands over what it got at EOF.
    pub fn take_partial(&mut self) -> Option<(Box<RequestHead>, Vec<u8>)> {
        let (head, _) = self.waiting.take()?;
        Some((head, std::mem::take(&mut self.buf)))
    }

    pub fn has_buffered(&self) -> bool {
        !self.buf.is_empty()
    }

    /// Read what the socket has (bounded); `eof` says the peer closed (or the read failed).
    /// Bytes read before the end are kept: a request (or part of a body) may precede it.
    /// A short read means the socket is drained for now: epoll reports more
    /// instead of paying a read that would only say EAGAIN.
    pub fn fill(&mut self) {
        SCRATCH.with(|scratch| {
            let mut chunk = scratch.borrow_mut();
            let mut got = 0;
            while got < READ_CHUNK {
                match self.stream.recv_now(&mut chunk[..]) {
                    Ok(Some(0)) | Err(_) => {
                        self.eof = true;
                        return;
                    }
                    Ok(None) => return,
                    Ok(Some(n)) => {
                        if !self.started {
                            self.started = true;
                            self.since = Instant::now();
                        }
                        self.buf.extend_from_slice(&chunk[..n]);
                        got += n;
                        if n < chunk.len() {
                            return;
                        }
                    }
                }
            }
        })
    }

    /// Parse what has arrived: the PROXY header (first request only, as Gunicorn), the
    /// head, then, for a small body with a Content-Length, the body itself.
    pub fn advance(&mut self, pcfg: &ParserConfig) -> Progress {
        if let Some((_, need)) = &self.waiting {
            if self.buf.len() < *need {
                return Progress::NeedMore;
            }
            let (head, _) = self.waiting.take().expect("checked");
            return Progress::Ready(head, std::mem::take(&mut self.buf));
        }
        if self.proxy_pending {
            match parse_proxy_header(
                &self.buf,
                self.proxy.mode,
                self.proxy.forbidden_peer.as_deref(),
            ) {
                Ok(ProxyParse::Incomplete) => return Progress::NeedMore,
                Ok(ProxyParse::Absent) => self.proxy_pending = false,
                Ok(ProxyParse::Present { info, consumed }) => {
                    self.buf.drain(..consumed);
                    self.proxy_info = Some(info);
                    self.proxy_pending = false;
                }
                Err(e) => return Progress::Invalid(e),
            }
        }
        if self.buf.is_empty() {
            return Progress::NeedMore;
        }
        match self.parser.parse(&self.buf, pcfg, self.trusted) {
            Ok(None) => Progress::NeedMore,
            Err(e) => Progress::Invalid(e),
            Ok(Some((head, used))) => {
                let rest = self.buf.split_off(used);
                self.buf.clear();
                match head.body {
                    // A client waiting for `100 Continue` sends nothing until the app
                    // reads, so its body cannot be gathered here.
                    BodyKind::Length(n)
                        if n > 0
                            && n <= BUFFER_LIMIT
                            && !head.expect_continue
                            && (rest.len() as u64) < n =>
                    {
                        self.buf = rest;
                        self.waiting = Some((Box::new(head), n as usize));
                        Progress::NeedMore
                    }
                    _ => Progress::Ready(Box::new(head), rest),
                }
            }
        }
    }
}
