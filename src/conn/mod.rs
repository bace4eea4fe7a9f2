//! The connection layer, below every worker and above the sockets: the transport that owns
//! an accepted socket, the head reader (PROXY header, request head, small bodies), the
//! HTTP/1 exchange that carries one request and its response, and the one graceful-close
//! policy. The sync and gthread workers both serve through it; TLS (a transport variant)
//! and HTTP/2 (another `http::Exchange`) plug in here.
//!
//! Owns: every read and write on a client connection. Must not: call Python except to
//! release the GIL around a blocking read or write, run the app, or decide scheduling
//! (which thread or worker serves a connection is the workers' business).

pub mod close;
pub mod exchange;
mod plain;
pub mod reader;
mod tls;
pub mod transport;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use ferrocorn_h1::ParseError;
use pyo3::prelude::*;

pub use close::{close_graceful, close_now, Linger};
pub use exchange::{BodyWait, Framer, H1Exchange, Setup};
pub use reader::{HeadReader, PeerPolicy, Progress};
pub use transport::Transport;

use crate::http::Peer;
use crate::telemetry::error_log;

/// A caller's watchdog that must hear from a blocked read: `beat` is called at least every
/// `every` while a read waits (the sync worker's heartbeat, so that waiting on a client for
/// up to `timeout` does not get the worker killed at the master's same `timeout`).
#[derive(Clone)]
pub struct Liveness {
    pub every: Duration,
    pub beat: Arc<dyn Fn() + Send + Sync>,
}

impl Liveness {
    /// The read timeout for one blocking read: what is `left`, in slices of `every`.
    pub(crate) fn slice(this: Option<&Self>, left: Option<Duration>) -> Option<Duration> {
        match (left, this) {
            (Some(left), Some(l)) => Some(left.min(l.every)),
            (left, None) => left,
            (None, Some(l)) => Some(l.every),
        }
    }

    /// After a read, whatever it returned: beat (a client trickling bytes faster than the
    /// slices must not starve the watchdog either). True when it was a slice running out,
    /// so the caller reads again; false for data, EOF or a real error, or with no watchdog.
    pub(crate) fn after_read(this: Option<&Self>, res: &std::io::Result<usize>) -> bool {
        let Some(l) = this else {
            return false;
        };
        (l.beat)();
        matches!(res, Err(e) if is_read_timeout(e))
    }
}

/// Log a request that could not be parsed as Gunicorn does. False when nobody is left to
/// answer (the client closed mid-request).
pub fn log_parse_error(peer: &Peer, err: &ParseError) -> bool {
    if matches!(err, ParseError::NoMoreData(_)) {
        error_log::debug("Ignored premature client disconnection.");
        return false;
    }
    if err.is_client_error() {
        error_log::warning(&format!(
            "Invalid request from ip={}: {}",
            peer.ip_string(),
            err.message()
        ));
    } else {
        error_log::error(&format!(
            "Error handling request (no URI read): {}",
            err.message()
        ));
    }
    true
}

/// Answer a request that could not be parsed with Gunicorn's status line and page
/// (blocking for at most the transport's write timeout, with the GIL released).
pub fn send_parse_error(py: Python<'_>, transport: &mut Transport, peer: &Peer, err: &ParseError) {
    if !log_parse_error(peer, err) {
        return;
    }
    write_error_page(py, transport, &err.error_response());
}

/// Write a whole error page (blocking for at most the write timeout, GIL released); a client
/// that does not take it is only logged at debug, as Gunicorn does.
fn write_error_page(py: Python<'_>, transport: &mut Transport, page: &[u8]) {
    if py.detach(|| transport.write_all(page)).is_err() {
        error_log::debug("Failed to send error message.");
    }
}

/// SO_RCVTIMEO running out: EAGAIN from a blocking socket.
pub(crate) fn is_read_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}
