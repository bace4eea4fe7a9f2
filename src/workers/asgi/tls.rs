//! TLS on the ASGI worker's I/O thread: the connection task drives the session over its
//! tokio socket, so a handshake, like any read, costs a waiting task and never a thread,
//! and a client that stalls in it meets the same head deadline as one that stalls in a
//! request. The session (`crate::tls`) decides; this moves bytes.

use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::time::Duration;

use super::socket::Socket;
use crate::tls::{is_plain_http, Session, PLAIN_HTTP_RESPONSE};

/// rustls reading the socket: `WouldBlock` (and tokio's readiness cleared) when empty.
struct Reading<'a>(&'a Socket);

impl Read for Reading<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.0 {
            Socket::Tcp(s) => s.try_read(buf),
            Socket::Unix(s) => s.try_read(buf),
        }
    }
}

/// rustls writing the socket: `WouldBlock` (and readiness cleared) when full.
struct Writing<'a>(&'a Socket);

impl Write for Writing<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.0 {
            Socket::Tcp(s) => s.try_write(buf),
            Socket::Unix(s) => s.try_write(buf),
        }
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        match self.0 {
            Socket::Tcp(s) => s.try_write_vectored(bufs),
            Socket::Unix(s) => s.try_write_vectored(bufs),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

async fn readable(sock: &Socket) -> io::Result<()> {
    match sock {
        Socket::Tcp(s) => s.readable().await,
        Socket::Unix(s) => s.readable().await,
    }
}

async fn writable(sock: &Socket) -> io::Result<()> {
    match sock {
        Socket::Tcp(s) => s.writable().await,
        Socket::Unix(s) => s.writable().await,
    }
}

fn sock_fd(sock: &Socket) -> std::os::fd::BorrowedFd<'_> {
    match sock {
        Socket::Tcp(s) => s.as_fd(),
        Socket::Unix(s) => s.as_fd(),
    }
}

/// Send pending records, giving up after `timeout` without progress.
pub async fn flush(sock: &Socket, s: &mut Session, timeout: Duration) -> io::Result<()> {
    while s.wants_write() {
        match s.write_out(&mut Writing(sock)) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                match tokio::time::timeout(timeout, writable(sock)).await {
                    Err(_) => {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "the client stopped reading",
                        ))
                    }
                    Ok(r) => r?,
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A plain-HTTP client: take what it sent, answer in plain text, shut our side.
fn answer_plain_http(sock: &Socket) {
    let mut sink = [0u8; 16 * 1024];
    for _ in 0..4 {
        if !matches!(Reading(sock).read(&mut sink), Ok(n) if n > 0) {
            break;
        }
    }
    let _ = Writing(sock).write(PLAIN_HTTP_RESPONSE);
    let _ = nix::sys::socket::shutdown(
        std::os::fd::AsRawFd::as_raw_fd(&sock_fd(sock)),
        nix::sys::socket::Shutdown::Write,
    );
}

/// Wait for plaintext and hand it to `f` (0 bytes: the end of the stream).
pub async fn read_with<F: FnMut(&[u8])>(
    sock: &Socket,
    s: &mut Session,
    scratch: &'static std::thread::LocalKey<std::cell::RefCell<Box<[u8]>>>,
    write_timeout: Duration,
    mut f: F,
) -> io::Result<usize> {
    loop {
        let got = scratch.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            let got = s.read_plain(&mut scratch[..])?;
            if let Some(n) = got {
                f(&scratch[..n]);
            }
            Ok::<_, io::Error>(got)
        })?;
        if let Some(n) = got {
            return Ok(n);
        }
        flush(sock, s, write_timeout).await?;
        readable(sock).await?;
        match s.feed(&mut Reading(sock)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) if is_plain_http(&e) => {
                answer_plain_http(sock);
                return Err(e);
            }
            Err(e) => {
                // The alert, if the socket takes it now.
                let _ = s.write_out(&mut Writing(sock));
                return Err(e);
            }
        }
    }
}

/// Encrypt and send every part, in order.
pub async fn write_parts(
    sock: &Socket,
    s: &mut Session,
    parts: &[&[u8]],
    timeout: Duration,
) -> io::Result<()> {
    // Everything is encrypted first and goes out in as few sends as rustls's buffer allows:
    // a flush only when it is full, and at the end.
    for part in parts {
        let mut rest = *part;
        while !rest.is_empty() {
            let n = s.write_plain(rest)?;
            if n == 0 && !s.wants_write() {
                return Err(io::ErrorKind::WriteZero.into());
            }
            rest = &rest[n..];
            if !rest.is_empty() {
                flush(sock, s, timeout).await?;
            }
        }
    }
    flush(sock, s, timeout).await
}

/// A file over TLS: read a block, encrypt it, send it.
pub async fn send_file(
    sock: &Socket,
    s: &mut Session,
    file: &std::fs::File,
    mut offset: i64,
    len: u64,
    timeout: Duration,
) -> io::Result<u64> {
    let mut buf = vec![0u8; (64 * 1024).min(len as usize)];
    let mut left = len;
    while left > 0 {
        let want = (left as usize).min(buf.len());
        let n = match nix::sys::uio::pread(file.as_fd(), &mut buf[..want], offset) {
            Ok(0) => break,
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        };
        write_parts(sock, s, &[&buf[..n]], timeout).await?;
        offset += n as i64;
        left -= n as u64;
    }
    Ok(len - left)
}
