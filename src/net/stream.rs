//! An accepted connection, TCP or unix, usable through a shared reference from both the
//! request-body reader and the response writer.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

pub enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

/// Who is on the other end: an IP peer, or a unix-socket client (which Gunicorn treats as
/// trusted and reports as REMOTE_ADDR '' with no REMOTE_PORT).
#[derive(Clone, Debug)]
pub enum Peer {
    Ip(SocketAddr),
    Unix,
}

impl Peer {
    /// The `ip=` part of "Invalid request from ip=...": Gunicorn prints addr[0], '' for unix.
    pub fn ip_string(&self) -> String {
        match self {
            Peer::Ip(a) => a.ip().to_string(),
            Peer::Unix => String::new(),
        }
    }
}

impl Stream {
    pub fn set_nonblocking(&self, nb: bool) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_nonblocking(nb),
            Stream::Unix(s) => s.set_nonblocking(nb),
        }
    }

    pub fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_read_timeout(t),
            Stream::Unix(s) => s.set_read_timeout(t),
        }
    }

    pub fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_write_timeout(t),
            Stream::Unix(s) => s.set_write_timeout(t),
        }
    }

    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.shutdown(how),
            Stream::Unix(s) => s.shutdown(how),
        }
    }

    /// Write what the socket takes right now without blocking, whatever the descriptor's
    /// mode (MSG_DONTWAIT). Lets a small response go out without releasing the GIL.
    pub fn send_now(&self, bytes: &[u8]) -> io::Result<usize> {
        use nix::sys::socket::{send, MsgFlags};
        let flags = MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL;
        loop {
            match send(self.as_raw_fd(), bytes, flags) {
                Ok(n) => return Ok(n),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(nix::errno::Errno::EAGAIN) => return Ok(0),
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Read what has arrived without blocking, whatever the descriptor's mode
    /// (MSG_DONTWAIT): the gthread loop reads this way so that the descriptor itself can
    /// stay blocking for the thread that serves the request. Ok(None) means nothing yet.
    pub fn recv_now(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        use nix::sys::socket::{recv, MsgFlags};
        loop {
            match recv(self.as_raw_fd(), buf, MsgFlags::MSG_DONTWAIT) {
                Ok(n) => return Ok(Some(n)),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(nix::errno::Errno::EAGAIN) => return Ok(None),
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// RFC 9112 §9.6 close, as Gunicorn 26+: stop writing, then drain what the client still
    /// sends (at most 64 KiB, at most 2 s) so the kernel does not answer our last bytes with
    /// a RST that would destroy the response in flight.
    /// Ends with shutdown(both), so the connection is over even if some other handle to
    /// this descriptor (a `gunicorn.socket` the app kept) is still open.
    pub fn close_graceful(&self) {
        if self.shutdown(Shutdown::Write).is_err() {
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut left = 64 * 1024usize;
        let mut buf = [0u8; 8192];
        let mut s = self;
        while left > 0 {
            let now = Instant::now();
            if now >= deadline || s.set_read_timeout(Some(deadline - now)).is_err() {
                break;
            }
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
        let _ = self.shutdown(Shutdown::Both);
    }
}

impl AsRawFd for Stream {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            Stream::Tcp(s) => s.as_raw_fd(),
            Stream::Unix(s) => s.as_raw_fd(),
        }
    }
}

impl Read for &Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => (&*s).read(buf),
            Stream::Unix(s) => (&*s).read(buf),
        }
    }
}

impl Write for &Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => (&*s).write(buf),
            Stream::Unix(s) => (&*s).write(buf),
        }
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => (&*s).write_vectored(bufs),
            Stream::Unix(s) => (&*s).write_vectored(bufs),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
