//! One client connection of the gthread worker (Gunicorn's `TConn`): its transport, its head
//! reader, and what the connection table needs to schedule it (deadlines, whether it is in
//! the epoll set, how many requests it carried). Parsing and reading are `conn::HeadReader`'s.
//!
//! It also holds the connection's `gunicorn.socket` object between requests. Dropping that
//! would run Python (the socket's finalizer), which must never happen under the table's
//! lock, so a dropped connection buries it instead and the leader closes the buried ones
//! outside the lock (`close_buried`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use ferrocorn_h1::ParserConfig;
use pyo3::prelude::*;

use crate::conn::{HeadReader, PeerPolicy, Progress, Transport};
use crate::http::Peer;

/// Bodies up to this size are received in full before the app sees the request, so a slow
/// uploader never holds a thread; larger ones stream from the socket.
pub const BUFFER_LIMIT: u64 = 1 << 20;

pub struct TConn {
    pub transport: Transport,
    pub peer: Peer,
    /// Index of the listener it arrived on.
    pub listener: usize,
    pub reader: HeadReader,
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
        crate::workers::request::close_app_socket(py, sock);
    }
}

impl TConn {
    pub fn new(transport: Transport, peer: Peer, listener: usize, policy: PeerPolicy) -> Self {
        TConn {
            transport,
            peer,
            listener,
            reader: HeadReader::new(policy, BUFFER_LIMIT),
            served: 0,
            since: Instant::now(),
            started: false,
            in_epoll: false,
            eof: false,
            app_socket: KeptSocket::default(),
        }
    }

    /// Back from a request with the bytes read past it.
    pub fn resume(&mut self, leftover: Vec<u8>) {
        self.reader.resume(leftover);
        self.served += 1;
        self.since = Instant::now();
        self.started = self.reader.has_buffered();
    }

    /// Read what the socket has, without blocking.
    pub fn fill(&mut self) {
        let filled = self.reader.fill_nonblocking(&mut self.transport);
        if filled.got > 0 && !self.started {
            self.started = true;
            self.since = Instant::now();
        }
        self.eof |= filled.eof;
    }

    pub fn advance(&mut self, pcfg: &ParserConfig) -> Progress {
        self.reader.advance(pcfg)
    }
}
