//! Driving a TLS session over a worker's socket, blocking (a thread that serves the
//! connection, bounded by the socket's timeouts) or not (the gthread poll loop, which does
//! every handshake without a thread waiting on it). The session decides; this moves bytes.
//!
//! Owns: the socket I/O of TLS connections. Must not: parse HTTP or log (the session logs
//! what a Gunicorn user sees).

use std::io::{self, Read, Write};
use std::os::fd::BorrowedFd;

use nix::sys::socket::MsgFlags;

use super::plain::Plain;
use crate::tls::{Session, PLAIN_HTTP_RESPONSE};

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
        self.0.write_vectored(&[io::IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        self.0.write_vectored(bufs)
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
        match self.0.send_now(buf)? {
            0 if !buf.is_empty() => Err(io::ErrorKind::WouldBlock.into()),
            n => Ok(n),
        }
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

/// Before the first bytes go to rustls: a peek decides TLS or plain HTTP. Ok(false) when
/// nothing came (the peer closed, or nothing yet without blocking).
fn sniff(sock: &Plain, s: &mut Session, flags: MsgFlags) -> io::Result<bool> {
    let mut first = [0u8; 8];
    match sock.recv(&mut first, flags | MsgFlags::MSG_PEEK)? {
        None | Some(0) => Ok(false),
        Some(n) => match s.sniff(&first[..n]) {
            Ok(()) => Ok(true),
            Err(e) => {
                answer_plain_http(sock);
                Err(e)
            }
        },
    }
}

/// A failed session: send its alert if the socket takes it now, and return the error.
fn failed(sock: &Plain, s: &mut Session, e: io::Error) -> io::Error {
    let _ = flush_nonblocking(sock, s);
    e
}

pub fn read(sock: &mut Plain, s: &mut Session, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        if let Some(n) = s.read_plain(buf)? {
            return Ok(n);
        }
        flush_blocking(sock, s)?;
        if s.wants_sniff() && !sniff(sock, s, MsgFlags::empty())? {
            return Ok(0);
        }
        if let Err(e) = s.feed(&mut Blocking(sock)) {
            return Err(failed(sock, s, e));
        }
    }
}

pub fn write_all(sock: &mut Plain, s: &mut Session, bytes: &[u8]) -> io::Result<()> {
    let mut rest = bytes;
    loop {
        flush_blocking(sock, s)?;
        if rest.is_empty() {
            return Ok(());
        }
        let n = s.write_plain(rest)?;
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
        if s.wants_sniff() {
            match sock.recv(&mut [0u8; 1], MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_PEEK)? {
                None => return Ok(None),
                Some(0) => return Ok(Some(0)),
                Some(_) => {
                    sniff(sock, s, MsgFlags::MSG_DONTWAIT)?;
                }
            }
        }
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
