//! The transport: sole owner of one accepted socket, through which every byte of a
//! connection is read and written. `&mut self` throughout, so a TLS session (which must
//! buffer plaintext and write records while it reads) can become a variant without
//! changing any caller.
//!
//! The descriptor stays in blocking mode for life, with the worker's timeouts as SO_RCVTIMEO
//! and SO_SNDTIMEO (gthread sets both to `timeout`; sync, like Gunicorn's, bounds reads
//! only): `read`/`write_all` block (call them with the GIL released), `try_read`/`try_write`
//! never do (MSG_DONTWAIT), so one descriptor serves a poll loop and a thread that blocks on
//! it without toggling modes per request.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use crate::net::Accepted;

pub enum Transport {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl From<Accepted> for Transport {
    fn from(a: Accepted) -> Self {
        match a {
            Accepted::Tcp(s) => Transport::Tcp(s),
            Accepted::Unix(s) => Transport::Unix(s),
        }
    }
}

impl Transport {
    pub fn set_nonblocking(&self, nb: bool) -> io::Result<()> {
        match self {
            Transport::Tcp(s) => s.set_nonblocking(nb),
            Transport::Unix(s) => s.set_nonblocking(nb),
        }
    }

    /// How long a blocking read may wait for the peer (None: forever).
    pub fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            Transport::Tcp(s) => s.set_read_timeout(t),
            Transport::Unix(s) => s.set_read_timeout(t),
        }
    }

    /// How long a blocking write may wait for the peer to take bytes (None: forever).
    pub fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            Transport::Tcp(s) => s.set_write_timeout(t),
            Transport::Unix(s) => s.set_write_timeout(t),
        }
    }

    /// Blocking read (bounded by the read timeout). Ok(0) is the end of the stream.
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let res = match self {
                Transport::Tcp(s) => s.read(buf),
                Transport::Unix(s) => s.read(buf),
            };
            match res {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => return other,
            }
        }
    }

    /// Blocking write of everything (bounded by the write timeout).
    pub fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Transport::Tcp(s) => s.write_all(bytes),
            Transport::Unix(s) => s.write_all(bytes),
        }
    }

    /// Read what has arrived without blocking. Ok(None): nothing yet; Ok(Some(0)): the peer
    /// closed its side.
    pub fn try_read(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        use nix::sys::socket::{recv, MsgFlags};
        loop {
            match recv(self.raw(), buf, MsgFlags::MSG_DONTWAIT) {
                Ok(n) => return Ok(Some(n)),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(nix::errno::Errno::EAGAIN) => return Ok(None),
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Write what the socket takes right now without blocking; Ok(0) when it takes nothing.
    pub fn try_write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        use nix::sys::socket::{send, MsgFlags};
        let flags = MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL;
        loop {
            match send(self.raw(), bytes, flags) {
                Ok(n) => return Ok(n),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(nix::errno::Errno::EAGAIN) => return Ok(0),
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Send `count` bytes of `file` from `offset` (advanced as bytes go), blocking like
    /// `write_all` and, like it, giving up (WouldBlock) when the client takes nothing for the
    /// write timeout. Returns the bytes sent: fewer than `count` when the file ended first.
    pub fn send_file(
        &mut self,
        file: BorrowedFd<'_>,
        offset: &mut i64,
        count: u64,
    ) -> io::Result<u64> {
        let mut left = count;
        while left > 0 {
            let chunk = left.min(1 << 30) as usize;
            let mut off = *offset as libc::off_t;
            match nix::sys::sendfile::sendfile(self.as_fd(), file, Some(&mut off), chunk) {
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

    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self {
            Transport::Tcp(s) => s.shutdown(how),
            Transport::Unix(s) => s.shutdown(how),
        }
    }

    /// Whether bytes are waiting to go out before more can be read (a TLS session's
    /// records); a poll loop must then wait for writability too. Never for a plain socket.
    pub fn wants_write(&self) -> bool {
        match self {
            Transport::Tcp(_) | Transport::Unix(_) => false,
        }
    }

    /// A second descriptor for the socket (`gunicorn.socket`): the app may close or keep
    /// it without affecting ours.
    pub fn dup_socket(&self) -> io::Result<OwnedFd> {
        self.as_fd().try_clone_to_owned()
    }

    fn raw(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(&self.as_fd())
    }
}

impl AsFd for Transport {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Transport::Tcp(s) => s.as_fd(),
            Transport::Unix(s) => s.as_fd(),
        }
    }
}
