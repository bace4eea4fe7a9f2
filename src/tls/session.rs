//! One TLS connection's state, sans I/O: the connection layers (blocking and non-blocking
//! for the WSGI workers, tokio for the ASGI worker) move bytes between their socket and this
//! with `feed`/`write_out`, and take and give plaintext with `read_plain`/`write_plain`.
//! It also decides what Gunicorn users see when a client speaks no TLS or fails the
//! handshake: one log line, an alert where TLS allows one, and a plain-HTTP client told in
//! plain HTTP which port it reached.

use std::io::{self, Read, Write};
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::ServerConnection;

use super::ConnInfo;
use crate::telemetry::error_log;

/// The answer to a plain-HTTP request on a TLS port: readable in a browser or curl, unlike
/// the empty close Gunicorn gives (see docs/differences.md).
pub const PLAIN_HTTP_RESPONSE: &[u8] = b"HTTP/1.1 400 Bad Request\r\n\
Connection: close\r\n\
Content-Type: text/plain\r\n\
Content-Length: 50\r\n\
\r\n\
The plain HTTP request was sent to an HTTPS port.\n";

pub struct Session {
    conn: ServerConnection,
    peer_ip: String,
    suppress_ragged_eofs: bool,
    verify_mode: u8,
    server_leaf: Option<CertificateDer<'static>>,
    /// Decrypted bytes rustls holds that nobody has read yet.
    plaintext: usize,
    /// The client sent close_notify.
    peer_closed: bool,
    /// The socket reached its end.
    eof: bool,
    /// Nothing has been received yet: the first bytes decide TLS or plain HTTP.
    fresh: bool,
    failed: bool,
    /// Our side of the socket is shut: records still pending can never go out.
    write_shut: bool,
    info: Option<Arc<ConnInfo>>,
}

/// Why a session failed, as an I/O error's payload.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error("plain HTTP request sent to a TLS port")]
    PlainHttp,
    #[error("TLS: {0}")]
    Tls(rustls::Error),
}

impl Session {
    pub(super) fn new(
        conn: ServerConnection,
        peer_ip: String,
        suppress_ragged_eofs: bool,
        verify_mode: u8,
        server_leaf: Option<CertificateDer<'static>>,
    ) -> Session {
        Session {
            conn,
            peer_ip,
            suppress_ragged_eofs,
            verify_mode,
            server_leaf,
            plaintext: 0,
            peer_closed: false,
            eof: false,
            fresh: true,
            failed: false,
            write_shut: false,
            info: None,
        }
    }

    /// Whether the caller should peek at the first bytes and pass them to `sniff` before
    /// feeding anything.
    pub fn wants_sniff(&self) -> bool {
        self.fresh
    }

    /// Look at the connection's first bytes (peeked, not consumed). A request line (an
    /// upper-case method) is plain HTTP: the caller answers `PLAIN_HTTP_RESPONSE` in plain
    /// text and closes. Anything else goes to rustls, which judges it.
    pub fn sniff(&mut self, first: &[u8]) -> io::Result<()> {
        let Some(&b) = first.first() else {
            return Ok(());
        };
        self.fresh = false;
        if b.is_ascii_uppercase() {
            self.failed = true;
            error_log::warning(&format!(
                "Invalid request from ip={}: plain HTTP request sent to a TLS port",
                self.peer_ip
            ));
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                Failure::PlainHttp,
            ));
        }
        Ok(())
    }

    /// Plaintext for the caller: Some(n > 0) bytes, Some(0) the end of the stream, None when
    /// more must be fed first.
    pub fn read_plain(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        if self.failed {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the TLS session failed",
            ));
        }
        if self.plaintext > 0 && !buf.is_empty() {
            let n = match self.conn.reader().read(buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
                Err(e) => return Err(e),
            };
            self.plaintext = self.plaintext.saturating_sub(n);
            if n > 0 {
                return Ok(Some(n));
            }
        }
        if self.peer_closed {
            return Ok(Some(0));
        }
        if self.eof {
            // A client that drops the connection without close_notify: a normal end unless
            // `suppress_ragged_eofs` is off (then, as Python's SSLSocket, an error), and
            // always just an end when nothing was ever said.
            if self.suppress_ragged_eofs || self.conn.is_handshaking() {
                return Ok(Some(0));
            }
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "TLS connection closed without close_notify",
            ));
        }
        Ok(None)
    }

    /// Take what the socket has (one read through `rd`); `WouldBlock` and timeouts pass
    /// through. A handshake or record error is logged once and returned.
    pub fn feed(&mut self, rd: &mut dyn Read) -> io::Result<()> {
        match self.conn.read_tls(rd)? {
            0 => {
                self.eof = true;
                if self.conn.is_handshaking() {
                    error_log::debug("ssl connection closed");
                }
                Ok(())
            }
            _ => self.process(),
        }
    }

    fn process(&mut self) -> io::Result<()> {
        match self.conn.process_new_packets() {
            Ok(st) => {
                self.plaintext = st.plaintext_bytes_to_read();
                self.peer_closed = st.peer_has_closed();
                Ok(())
            }
            Err(e) => {
                self.failed = true;
                let what = if self.conn.is_handshaking() {
                    "TLS handshake failed"
                } else {
                    "TLS error"
                };
                error_log::warning(&format!(
                    "Invalid request from ip={}: {what}: {e}",
                    self.peer_ip
                ));
                Err(io::Error::new(io::ErrorKind::InvalidData, Failure::Tls(e)))
            }
        }
    }

    /// Records (handshake messages, alerts, encrypted data) wait to go out.
    pub fn wants_write(&self) -> bool {
        !self.write_shut && self.conn.wants_write()
    }

    /// The socket's write side was shut: drop what waits to go out, so nobody waits to send
    /// it.
    pub fn write_side_closed(&mut self) {
        self.write_shut = true;
    }

    /// Decrypted bytes are waiting: a poll loop must not wait for the socket to get them.
    pub fn has_plaintext(&self) -> bool {
        self.plaintext > 0 || (self.peer_closed && !self.failed)
    }

    /// Write pending records through `wr` (one write); `WouldBlock` passes through.
    pub fn write_out(&mut self, wr: &mut dyn Write) -> io::Result<usize> {
        if self.write_shut {
            return Ok(0);
        }
        self.conn.write_tls(wr)
    }

    /// Encrypt `bytes` into pending records; returns how many it took (0 while its buffer is
    /// full: write out first).
    pub fn write_plain(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.conn.writer().write(bytes)
    }

    pub fn send_close_notify(&mut self) {
        if !self.failed {
            self.conn.send_close_notify();
        }
    }

    pub fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    /// What the app may learn about the connection, once the handshake is done.
    pub fn info(&mut self) -> Option<Arc<ConnInfo>> {
        if self.info.is_none() && !self.conn.is_handshaking() {
            self.info =
                ConnInfo::of(&self.conn, self.verify_mode, self.server_leaf.clone()).map(Arc::new);
        }
        self.info.clone()
    }
}

/// Whether an I/O error is a session that failed for a plain-HTTP client.
pub fn is_plain_http(e: &io::Error) -> bool {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<Failure>())
        .is_some_and(|f| matches!(f, Failure::PlainHttp))
}
