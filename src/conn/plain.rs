//! The socket under a connection, plain: blocking reads and writes bounded by its timeouts,
//! and `recv`/`send` with flags for the poll loops. The transport and the TLS driver both
//! build on it.

use std::io::{self, Read, Write};

use std::net::{Shutdown, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;

/// The socket itself.
pub enum Plain {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Plain {
    /// Blocking read (bounded by the read timeout), retried on EINTR.
    pub(super) fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let res = match self {
                Plain::Tcp(s) => s.read(buf),
                Plain::Unix(s) => s.read(buf),
            };
            match res {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => return other,
            }
        }
    }

    /// One gathered send with `flags` (MSG_NOSIGNAL always: a client gone away is an error,
    /// never a SIGPIPE). Blocking unless `flags` has MSG_DONTWAIT; EAGAIN (nothing taken
    /// before the write timeout, or a full socket) is `WouldBlock`.
    pub(super) fn send_vectored(
        &self,
        bufs: &[io::IoSlice<'_>],
        flags: nix::sys::socket::MsgFlags,
    ) -> io::Result<usize> {
        use nix::sys::socket::{sendmsg, MsgFlags};
        loop {
            match sendmsg::<()>(self.raw(), bufs, &[], flags | MsgFlags::MSG_NOSIGNAL, None) {
                Ok(n) => return Ok(n),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(nix::errno::Errno::EAGAIN) => return Err(io::ErrorKind::WouldBlock.into()),
                Err(e) => return Err(e.into()),
            }
        }
    }

    pub(super) fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Plain::Tcp(s) => s.write_all(bytes),
            Plain::Unix(s) => s.write_all(bytes),
        }
    }

    fn raw(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(&self.as_fd())
    }

    /// `recv` with `flags`: Ok(None) when nothing is there yet (EAGAIN).
    pub(super) fn recv(
        &self,
        buf: &mut [u8],
        flags: nix::sys::socket::MsgFlags,
    ) -> io::Result<Option<usize>> {
        loop {
            match nix::sys::socket::recv(self.raw(), buf, flags) {
                Ok(n) => return Ok(Some(n)),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(nix::errno::Errno::EAGAIN) => return Ok(None),
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Send without blocking: Ok(0) when the socket takes nothing now.
    pub(super) fn send_now(&self, bytes: &[u8]) -> io::Result<usize> {
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

    pub(super) fn set_read_timeout(&self, t: Option<std::time::Duration>) -> io::Result<()> {
        match self {
            Plain::Tcp(s) => s.set_read_timeout(t),
            Plain::Unix(s) => s.set_read_timeout(t),
        }
    }

    pub(super) fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self {
            Plain::Tcp(s) => s.shutdown(how),
            Plain::Unix(s) => s.shutdown(how),
        }
    }
}

impl AsFd for Plain {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Plain::Tcp(s) => s.as_fd(),
            Plain::Unix(s) => s.as_fd(),
        }
    }
}
