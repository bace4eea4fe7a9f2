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
    /// Nothing has been judged yet: the first bytes decide TLS, plain HTTP or (with the
    /// PROXY protocol on) a PROXY header sent in clear before the handshake.
    fresh: bool,
    /// The first bytes, until they are judged.
    first: Vec<u8>,
    /// A PROXY protocol header may come in clear before the handshake.
    proxy: bool,
    /// A cleartext PROXY header, handed out as the stream's first bytes (the head reader
    /// parses it as it would inside TLS).
    passthrough: Vec<u8>,
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
    #[error("invalid PROXY header before the TLS handshake")]
    BadProxy,
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
        proxy: bool,
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
            first: Vec::new(),
            proxy,
            passthrough: Vec::new(),
            failed: false,
            write_shut: false,
            info: None,
        }
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
        // A cleartext PROXY header goes out once the handshake is done, so an error page
        // the head reader writes about it can reach the client.
        if !self.passthrough.is_empty() && !buf.is_empty() && !self.conn.is_handshaking() {
            let n = self.passthrough.len().min(buf.len());
            buf[..n].copy_from_slice(&self.passthrough[..n]);
            self.passthrough.drain(..n);
            return Ok(Some(n));
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
        if self.fresh {
            return self.feed_first(rd);
        }
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

    /// The connection's first bytes, read here rather than by rustls until they are judged
    /// (`judge`): a request line is plain HTTP, a PROXY header (when the protocol is on)
    /// passes through in clear, anything else goes to rustls.
    fn feed_first(&mut self, rd: &mut dyn Read) -> io::Result<()> {
        // A whole ClientHello (1.5 to 2 KB with post-quantum key shares) in one read.
        let mut chunk = [0u8; 4096];
        let n = rd.read(&mut chunk)?;
        if n == 0 {
            self.eof = true;
            self.fresh = false;
            if !self.first.is_empty() {
                // Cut short before it could be judged: as a truncated hello, just an end.
                error_log::debug("ssl connection closed");
            }
            return Ok(());
        }
        self.first.extend_from_slice(&chunk[..n]);
        match judge(&self.first, self.proxy) {
            First::NeedMore => Ok(()),
            First::PlainHttp => {
                self.fresh = false;
                self.failed = true;
                error_log::warning(&format!(
                    "Invalid request from ip={}: plain HTTP request sent to a TLS port",
                    self.peer_ip
                ));
                Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    Failure::PlainHttp,
                ))
            }
            First::BadProxy => {
                self.fresh = false;
                self.failed = true;
                error_log::warning(&format!(
                    "Invalid request from ip={}: invalid PROXY header before the TLS handshake",
                    self.peer_ip
                ));
                Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    Failure::BadProxy,
                ))
            }
            First::Proxy(len) => {
                self.fresh = false;
                let mut first = std::mem::take(&mut self.first);
                let rest = first.split_off(len);
                self.passthrough = first;
                self.feed_slice(&rest)
            }
            First::Tls => {
                self.fresh = false;
                let first = std::mem::take(&mut self.first);
                self.feed_slice(&first)
            }
        }
    }

    /// Bytes already read from the socket, to rustls.
    fn feed_slice(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            if self.conn.read_tls(&mut bytes)? == 0 {
                break;
            }
            self.process()?;
        }
        Ok(())
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
        (!self.passthrough.is_empty() && !self.conn.is_handshaking())
            || self.plaintext > 0
            || (self.peer_closed && !self.failed)
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

    /// The cleartext PROXY header held back until the handshake is done.
    #[cfg(test)]
    pub fn passthrough(&self) -> &[u8] {
        &self.passthrough
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

/// The PROXY protocol v2 signature.
const PROXY_V2: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// The longest PROXY v1 line, CRLF included.
const PROXY_V1_MAX: usize = 107;
/// The longest PROXY v2 header passed through in clear (signature, length, addresses and
/// TLVs); a longer one is refused rather than held in memory while it arrives.
const PROXY_V2_MAX: usize = 16 + 4096;

#[derive(Debug, PartialEq, Eq)]
enum First {
    NeedMore,
    PlainHttp,
    /// A PROXY header of this many bytes, then TLS.
    Proxy(usize),
    /// A PROXY header too long to be one (or to pass through in clear).
    BadProxy,
    Tls,
}

/// What the first bytes of a connection on a TLS port are. Only an upper-case letter or
/// (with `proxy`) the start of a PROXY v2 signature waits for more; a TLS record's first
/// byte (22) is judged at once.
fn judge(first: &[u8], proxy: bool) -> First {
    const V1: &[u8] = b"PROXY ";
    if proxy && first[0] == b'P' {
        let n = first.len().min(V1.len());
        if first[..n] != V1[..n] {
            return First::PlainHttp;
        }
        if first.len() < V1.len() {
            return First::NeedMore;
        }
        let window = &first[..first.len().min(PROXY_V1_MAX)];
        return match window.windows(2).position(|w| w == b"\r\n") {
            Some(i) => First::Proxy(i + 2),
            None if first.len() >= PROXY_V1_MAX => First::BadProxy,
            None => First::NeedMore,
        };
    }
    if first[0].is_ascii_uppercase() {
        return First::PlainHttp;
    }
    if proxy && first[0] == PROXY_V2[0] {
        let n = first.len().min(PROXY_V2.len());
        if first[..n] != PROXY_V2[..n] {
            return First::Tls;
        }
        if first.len() < 16 {
            return First::NeedMore;
        }
        let total = 16 + u16::from_be_bytes([first[14], first[15]]) as usize;
        return match total {
            t if t > PROXY_V2_MAX => First::BadProxy,
            t if first.len() >= t => First::Proxy(t),
            _ => First::NeedMore,
        };
    }
    First::Tls
}

/// Whether an I/O error is a session that failed for a plain-HTTP client.
pub fn is_plain_http(e: &io::Error) -> bool {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<Failure>())
        .is_some_and(|f| matches!(f, Failure::PlainHttp))
}
