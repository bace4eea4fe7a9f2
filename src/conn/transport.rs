//! The transport: sole owner of one accepted socket, through which every byte of a
//! connection is read and written, in plain text or through a TLS session (`conn::tls`
//! drives the session over the socket). `&mut self` throughout, because a TLS session
//! buffers plaintext and writes records while it reads.
//!
//! The descriptor stays in blocking mode for life, with the worker's timeouts as SO_RCVTIMEO
//! and SO_SNDTIMEO (gthread sets both to `timeout`; sync, like Gunicorn's, bounds reads
//! only): `read`/`write_all` block (call them with the GIL released), `try_read`/`try_write`
//! never do (MSG_DONTWAIT), so one descriptor serves a poll loop and a thread that blocks on
//! it without toggling modes per request.

use std::io;
use std::net::{Shutdown, TcpStream};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::Duration;

use super::plain::Plain;
use super::tls;
use crate::net::Accepted;
use crate::tls::{ConnInfo, Session};

pub struct Transport {
    sock: Plain,
    tls: Option<Box<Session>>,
    /// The read timeout last set: one TLS read may take no longer in all.
    read_timeout: Option<Duration>,
}

impl From<Accepted> for Transport {
    fn from(a: Accepted) -> Self {
        match a {
            Accepted::Tcp(s) => Transport::tcp(s),
            Accepted::Unix(s) => Transport::unix(s),
        }
    }
}

impl Transport {
    pub fn tcp(s: TcpStream) -> Self {
        Transport {
            sock: Plain::Tcp(s),
            tls: None,
            read_timeout: None,
        }
    }

    pub fn unix(s: UnixStream) -> Self {
        Transport {
            sock: Plain::Unix(s),
            tls: None,
            read_timeout: None,
        }
    }

    /// Speak TLS on this connection from now on (before anything was read).
    pub fn with_tls(mut self, session: Session) -> Self {
        self.tls = Some(Box::new(session));
        self
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The TLS connection's version, cipher and client certificate, once its handshake is
    /// done; None in plain text.
    pub fn tls_info(&mut self) -> Option<Arc<ConnInfo>> {
        self.tls.as_mut()?.info()
    }

    pub fn set_nonblocking(&self, nb: bool) -> io::Result<()> {
        match &self.sock {
            Plain::Tcp(s) => s.set_nonblocking(nb),
            Plain::Unix(s) => s.set_nonblocking(nb),
        }
    }

    /// How long a blocking read may wait for the peer (None: forever).
    pub fn set_read_timeout(&mut self, t: Option<Duration>) -> io::Result<()> {
        self.read_timeout = t;
        self.sock.set_read_timeout(t)
    }

    /// How long a blocking write may wait for the peer to take bytes (None: forever).
    pub fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match &self.sock {
            Plain::Tcp(s) => s.set_write_timeout(t),
            Plain::Unix(s) => s.set_write_timeout(t),
        }
    }

    /// Blocking read (bounded by the read timeout). Ok(0) is the end of the stream.
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.tls {
            Some(s) => tls::read(&mut self.sock, s, buf, self.read_timeout),
            None => self.sock.read(buf),
        }
    }

    /// Blocking write of everything (bounded by the write timeout).
    pub fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match &mut self.tls {
            Some(s) => tls::write_all(&mut self.sock, s, bytes),
            None => self.sock.write_all(bytes),
        }
    }

    /// `write_all` for bytes that more will follow at once (a response head before its
    /// file): in plain text sent with MSG_MORE, so the kernel holds a short last segment
    /// for the file's first bytes instead of sending the head alone.
    pub fn write_all_more(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        if self.tls.is_some() {
            return self.write_all(bytes);
        }
        while !bytes.is_empty() {
            let slices = [io::IoSlice::new(bytes)];
            // nix has no name for MSG_MORE.
            let more = nix::sys::socket::MsgFlags::from_bits_retain(libc::MSG_MORE);
            match self.sock.send_vectored(&slices, more)? {
                0 => return Err(io::ErrorKind::WriteZero.into()),
                n => bytes = &bytes[n..],
            }
        }
        Ok(())
    }

    /// Read what has arrived without blocking. Ok(None): nothing yet; Ok(Some(0)): the peer
    /// closed its side.
    pub fn try_read(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        match &mut self.tls {
            Some(s) => tls::try_read(&mut self.sock, s, buf),
            None => self
                .sock
                .recv(buf, nix::sys::socket::MsgFlags::MSG_DONTWAIT),
        }
    }

    /// Write what the socket takes right now without blocking; Ok(0) when it takes nothing.
    /// Under TLS the bytes taken may still wait as records: see `has_pending_output`.
    pub fn try_write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        match &mut self.tls {
            Some(s) => tls::try_write(&self.sock, s, bytes),
            None => self.sock.send_now(bytes),
        }
    }

    /// Send what waits to go out without blocking; true once nothing does.
    pub fn try_flush(&mut self) -> io::Result<bool> {
        match &mut self.tls {
            Some(s) => tls::flush_nonblocking(&self.sock, s),
            None => Ok(true),
        }
    }

    /// Bytes already taken by `try_write` still wait to be sent (TLS records): a response is
    /// only out once this is false.
    pub fn has_pending_output(&self) -> bool {
        self.tls.as_ref().is_some_and(|s| s.wants_write())
    }

    /// Send `count` bytes of `file` from `offset` (advanced as bytes go), blocking like
    /// `write_all` and, like it, giving up (WouldBlock) when the client takes nothing for the
    /// write timeout. Returns the bytes sent: fewer than `count` when the file ended first.
    /// In plain text the kernel copies the file (sendfile); under TLS it is read and
    /// encrypted a block at a time.
    pub fn send_file(
        &mut self,
        file: BorrowedFd<'_>,
        offset: &mut i64,
        count: u64,
    ) -> io::Result<u64> {
        if let Some(s) = &mut self.tls {
            return tls::send_file(&mut self.sock, s, file, offset, count);
        }
        let mut left = count;
        while left > 0 {
            let chunk = left.min(1 << 30) as usize;
            let mut off = *offset as libc::off_t;
            match nix::sys::sendfile::sendfile(self.sock.as_fd(), file, Some(&mut off), chunk) {
                Ok(0) => break,
                Ok(n) => {
                    left -= n as u64;
                    *offset = off;
                }
                Err(nix::errno::Errno::EINTR) => continue,
                // SO_SNDTIMEO passed with nothing sent (the descriptor is blocking).
                Err(nix::errno::Errno::EAGAIN) => {
                    return Err(io::Error::new(
                        io::ErrorKind::WouldBlock,
                        "the client took nothing for the write timeout",
                    ))
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(count - left)
    }

    /// Shut one or both directions. Under TLS a graceful end (the write side alone, after a
    /// complete response) says close_notify first, sent if the socket takes it now; an
    /// abrupt one (both sides) does not, so a client can tell a cut response from a whole
    /// one. Records that could not go out are dropped either way: the socket can no longer
    /// send them.
    pub fn shutdown(&mut self, how: Shutdown) -> io::Result<()> {
        if let Some(s) = &mut self.tls {
            if how == Shutdown::Write {
                s.send_close_notify();
                let _ = tls::flush_nonblocking(&self.sock, s);
            }
            if how != Shutdown::Read {
                s.write_side_closed();
            }
        }
        self.sock.shutdown(how)
    }

    /// Whether a poll loop must also wake for writability: a TLS session has records to
    /// send before it can go on, or already holds decrypted bytes (the socket will not
    /// signal those; a writable socket wakes the loop at once). Never for plain text.
    pub fn wants_write(&self) -> bool {
        self.tls
            .as_ref()
            .is_some_and(|s| s.wants_write() || s.has_plaintext())
    }

    /// A second descriptor for the socket (`gunicorn.socket`): the app may close or keep
    /// it without affecting ours.
    pub fn dup_socket(&self) -> io::Result<OwnedFd> {
        self.sock.as_fd().try_clone_to_owned()
    }
}

impl AsFd for Transport {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }
}
