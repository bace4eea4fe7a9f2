//! Driving a TLS session over a worker's socket, blocking (a thread that serves the
//! connection, bounded by the socket's timeouts) or not (the gthread poll loop, which does
//! every handshake without a thread waiting on it). The session decides; this moves bytes.
//!
//! Owns: the socket I/O of TLS connections. Must not: parse HTTP or log (the session logs
//! what a Gunicorn user sees).

use std::io::{self, Read, Write};
use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use nix::sys::socket::MsgFlags;

use super::plain::Plain;
use crate::tls::{is_plain_http, Session, PLAIN_HTTP_RESPONSE};

/// How much one send of a file reads and encrypts at a time.
const FILE_BLOCK: usize = 64 * 1024;

/// rustls reading and writing the socket with the thread blocked (bounded by the socket's
/// timeouts).
struct Blocking<'a>(&'a mut Plain);

impl Read for Blocking<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for Blocking<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[io::IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        self.0.send_vectored(bufs, MsgFlags::empty())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// rustls reading and writing the socket without blocking: `WouldBlock` when it cannot.
struct NonBlocking<'a>(&'a Plain);

impl Read for NonBlocking<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0
            .recv(buf, MsgFlags::MSG_DONTWAIT)?
            .ok_or_else(|| io::ErrorKind::WouldBlock.into())
    }
}

impl Write for NonBlocking<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[io::IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        self.0.send_vectored(bufs, MsgFlags::MSG_DONTWAIT)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn flush_blocking(sock: &mut Plain, s: &mut Session) -> io::Result<()> {
    while s.wants_write() {
        s.write_out(&mut Blocking(sock))?;
    }
    Ok(())
}

/// Send pending records without blocking; true once none wait.
pub fn flush_nonblocking(sock: &Plain, s: &mut Session) -> io::Result<bool> {
    while s.wants_write() {
        match s.write_out(&mut NonBlocking(sock)) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// A plain-HTTP client: take what it sent (so closing does not reset the connection under
/// our answer), answer in plain text, and shut our side.
fn answer_plain_http(sock: &Plain) {
    let mut sink = [0u8; 16 * 1024];
    let mut left: usize = 64 * 1024;
    while left > 0 {
        match sock.recv(&mut sink, MsgFlags::MSG_DONTWAIT) {
            Ok(Some(n)) if n > 0 => left = left.saturating_sub(n),
            _ => break,
        }
    }
    let _ = sock.send_now(PLAIN_HTTP_RESPONSE);
    let _ = sock.shutdown(std::net::Shutdown::Write);
}

/// A failed session: a plain-HTTP client is answered in plain text; otherwise the alert
/// goes out if the socket takes it now. Returns the error.
fn failed(sock: &Plain, s: &mut Session, e: io::Error) -> io::Error {
    if is_plain_http(&e) {
        answer_plain_http(sock);
    } else {
        let _ = flush_nonblocking(sock, s);
    }
    e
}

/// Blocking read of plaintext. Bounded as a plain read is, by the read timeout in force
/// (`timeout`): a client trickling TLS bytes that never complete a record cannot keep it
/// going, because every further socket read only gets what is left of that time.
pub fn read(
    sock: &mut Plain,
    s: &mut Session,
    buf: &mut [u8],
    timeout: Option<Duration>,
) -> io::Result<usize> {
    let deadline = timeout.map(|t| Instant::now() + t);
    let mut shortened = false;
    let mut fed = false;
    let res = loop {
        match s.read_plain(buf) {
            Ok(Some(n)) => break Ok(n),
            Ok(None) => {}
            Err(e) => break Err(e),
        }
        if let Err(e) = flush_blocking(sock, s) {
            break Err(e);
        }
        if fed {
            // A second socket read in this call: only what is left of the timeout.
            if let Some(d) = deadline {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break Err(io::ErrorKind::WouldBlock.into());
                }
                if let Err(e) = sock.set_read_timeout(Some(left)) {
                    break Err(e);
                }
                shortened = true;
            }
        }
        if let Err(e) = s.feed(&mut Blocking(sock)) {
            break Err(failed(sock, s, e));
        }
        fed = true;
    };
    if shortened {
        let _ = sock.set_read_timeout(timeout);
    }
    res
}

pub fn write_all(sock: &mut Plain, s: &mut Session, bytes: &[u8]) -> io::Result<()> {
    let mut rest = bytes;
    loop {
        flush_blocking(sock, s)?;
        if rest.is_empty() {
            return Ok(());
        }
        let n = s.write_plain(rest)?;
        if n == 0 && !s.wants_write() {
            return Err(io::ErrorKind::WriteZero.into());
        }
        rest = &rest[n..];
    }
}

pub fn try_read(sock: &mut Plain, s: &mut Session, buf: &mut [u8]) -> io::Result<Option<usize>> {
    loop {
        if let Some(n) = s.read_plain(buf)? {
            return Ok(Some(n));
        }
        // Handshake records the client waits for; if the socket is full the poll loop waits
        // for writability (`Transport::wants_write`).
        flush_nonblocking(sock, s)?;
        match s.feed(&mut NonBlocking(sock)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) => return Err(failed(sock, s, e)),
        }
    }
}

pub fn try_write(sock: &Plain, s: &mut Session, bytes: &[u8]) -> io::Result<usize> {
    if !flush_nonblocking(sock, s)? || bytes.is_empty() {
        return Ok(0);
    }
    let n = s.write_plain(bytes)?;
    if n == 0 && !s.wants_write() {
        return Err(io::ErrorKind::WriteZero.into());
    }
    flush_nonblocking(sock, s)?;
    Ok(n)
}

/// A file over TLS: read a block, encrypt it, send it, until `count` bytes or the file's end.
pub fn send_file(
    sock: &mut Plain,
    s: &mut Session,
    file: BorrowedFd<'_>,
    offset: &mut i64,
    count: u64,
) -> io::Result<u64> {
    let mut buf = vec![0u8; FILE_BLOCK.min(count as usize)];
    let mut left = count;
    while left > 0 {
        let want = (left as usize).min(buf.len());
        let n = match nix::sys::uio::pread(file, &mut buf[..want], *offset) {
            Ok(0) => break,
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        };
        write_all(sock, s, &buf[..n])?;
        *offset += n as i64;
        left -= n as u64;
    }
    Ok(count - left)
}
