//! One HTTP/1 request and its response on a connection: the body as it is read
//! (`body::Reading`), the response as it is written (`response::Writing`), and whether the
//! connection may carry another request (`KeepAlive`), each an explicit state instead of
//! flags (hyper's `proto/h1/conn.rs` is the model). It implements `http::Exchange`, so the
//! WSGI bridge reads and writes through it without knowing HTTP/1 or sockets.
//!
//! The exchange owns the connection's transport while the request runs and gives it back
//! when the worker takes it (`take_back`): the objects the app may keep (`wsgi.input`,
//! `start_response`, `write`) then find no connection, so they can neither keep a
//! `Connection: close` connection open nor touch the next request.

mod body;
mod framer;
mod response;

pub use body::BodyWait;
pub use framer::Framer;

use std::io;
use std::os::fd::OwnedFd;

use ferrocorn_h1::{BodyDecoder, ParserConfig};
use pyo3::prelude::*;

use self::body::Reading;
use self::response::{KeepAlive, Writing};
use super::reader::Framing;
use super::transport::Transport;
use crate::http::{After, Exchange, Peer};
use crate::telemetry::error_log;

/// How much unread request body is discarded to keep a connection alive; a longer one
/// closes the connection instead.
const DRAIN_LIMIT: usize = 1 << 20;

/// The error for I/O on a request that is already over.
fn finished() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "the request is over")
}

pub struct H1Exchange {
    /// The connection, while the request may use it: None once the request is over.
    transport: Option<Transport>,
    /// The connection after `conclude`, for the worker alone: whatever the app kept can no
    /// longer write to it or read from it.
    concluded: Option<Transport>,
    peer: Peer,
    // The request body.
    reading: Reading,
    /// Bytes received but not yet decoded (read-ahead from the head, pipelined requests).
    raw: Vec<u8>,
    raw_pos: usize,
    /// Decoded body bytes not yet handed to the app.
    out: Vec<u8>,
    out_pos: usize,
    // The response.
    writing: Writing,
    framer: Framer,
    keep_alive: KeepAlive,
    /// The response head said `Connection: close`.
    close_announced: bool,
    /// The worker sends a response held in memory itself (see `body_in_memory`).
    may_hold: bool,
    /// Response bytes held back for the worker, while they fit.
    held: Option<Vec<u8>>,
    body_wait: Option<BodyWait>,
}

/// How the worker sets up an exchange.
pub struct Setup<'a> {
    pub pcfg: &'a ParserConfig,
    pub framing: Framing,
    pub version: (u8, u8),
    pub method: &'a str,
    /// Bytes received after the head: the start of the body (and maybe more).
    pub leftover: Vec<u8>,
    /// The worker can send a response held in memory after the request.
    pub may_hold: bool,
    /// How a blocking body read waits; None: as the socket's own read timeout says.
    pub body_wait: Option<BodyWait>,
}

impl H1Exchange {
    pub fn new(transport: Transport, peer: Peer, setup: Setup<'_>) -> Self {
        let decoder = BodyDecoder::new(setup.framing.body, setup.pcfg);
        H1Exchange {
            transport: Some(transport),
            concluded: None,
            peer,
            reading: Reading::new(decoder, setup.framing.expect_continue),
            raw: setup.leftover,
            raw_pos: 0,
            out: Vec::new(),
            out_pos: 0,
            writing: Writing::Init,
            framer: Framer::new(
                setup.version,
                setup.method == "HEAD",
                setup.framing.to_gateway,
            ),
            // A gateway gets one request per connection.
            keep_alive: if setup.framing.to_gateway {
                KeepAlive::Disabled
            } else {
                KeepAlive::Allowed
            },
            close_announced: false,
            may_hold: setup.may_hold,
            held: None,
            body_wait: setup.body_wait,
        }
    }

    /// The worker takes the connection back once the request is over, with the response
    /// bytes it must still send (before anything else on the connection). None when it
    /// was already taken.
    pub fn take_back(&mut self) -> Option<(Transport, Vec<u8>)> {
        let transport = self.concluded.take().or_else(|| self.transport.take())?;
        Some((transport, response::held_bytes(self)))
    }
}

impl H1Exchange {
    fn decide_after(&mut self, py: Python<'_>, reuse: bool) -> After {
        use crate::http::ResponseSink;
        // `will_close` includes a client still waiting for `100 Continue`: it has not sent
        // the body, and inviting it now would put the interim response after the final one.
        // Whether it sent the body anyway only matters to a connection that could go on.
        if reuse {
            self.look_for_unawaited_body();
        }
        if !reuse || self.will_close() {
            return After::Close;
        }
        // A body the app left unread is discarded (bounded) so the connection can go on,
        // as Gunicorn's parser does before the next request. A body already consumed needs
        // no I/O; otherwise what is held back goes out first (the client may wait for the
        // answer before sending the rest), and the reading blocks without the GIL.
        let clean = if self.body_done() {
            self.drain_body(DRAIN_LIMIT)
        } else if let Err(e) = self.flush_held(py) {
            error_log::debug(&format!("Ignoring connection error while writing: {e}"));
            false
        } else {
            py.detach(|| self.drain_body(DRAIN_LIMIT))
        };
        if clean {
            After::KeepAlive(self.raw.split_off(self.raw_pos))
        } else {
            After::Close
        }
    }
}

impl Exchange for H1Exchange {
    fn conclude(&mut self, py: Python<'_>, reuse: bool) -> After {
        let after = self.decide_after(py, reuse);
        self.concluded = self.transport.take();
        after
    }

    fn dup_socket(&self) -> Option<io::Result<OwnedFd>> {
        self.transport.as_ref().map(Transport::dup_socket)
    }

    fn tls_info(&mut self) -> Option<std::sync::Arc<crate::tls::ConnInfo>> {
        self.transport.as_mut().and_then(Transport::tls_info)
    }
}
