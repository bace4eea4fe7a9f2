//! A connection of the ASGI worker's I/O thread: TCP or unix, in plain text or TLS (driven
//! by `super::tls`), with the few operations the connection tasks need, sendfile(2)
//! included.

use std::io;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncWriteExt, Interest};

pub use super::socket::Socket;
use super::tls;

/// Bytes one read takes at most.
const READ_SIZE: usize = 64 * 1024;
/// What one read of a file on a blocking thread takes at most (`send_file_off_thread`
/// under TLS).
const OFF_THREAD_PIECE: u64 = 256 * 1024;

thread_local! {
    /// Where every connection of the I/O thread reads into: a connection waiting for bytes
    /// holds no buffer, so a thousand idle clients cost a thousand small tasks.
    static SCRATCH: std::cell::RefCell<Box<[u8]>> =
        std::cell::RefCell::new(vec![0u8; READ_SIZE].into_boxed_slice());
}

/// A client connection. Every write gives up after `write_timeout` without progress, so a
/// client that stops reading cannot hold a connection (and its app task) forever.
pub struct Stream {
    sock: Socket,
    write_timeout: Duration,
    tls: Option<Box<crate::tls::Session>>,
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "the client stopped reading")
}

impl Stream {
    pub fn new(sock: Socket, write_timeout: Duration) -> Stream {
        Stream {
            sock,
            write_timeout,
            tls: None,
        }
    }

    /// Speak TLS on this connection (before anything was read).
    pub fn with_tls(mut self, session: crate::tls::Session) -> Stream {
        self.tls = Some(Box::new(session));
        self
    }

    /// The TLS version, cipher and client certificate, once the handshake is done.
    pub fn tls_info(&mut self) -> Option<std::sync::Arc<crate::tls::ConnInfo>> {
        self.tls.as_mut()?.info()
    }

    /// Wait for bytes and hand what one read got to `f` (0 bytes: the peer closed).
    pub async fn read_with<F: FnMut(&[u8])>(&mut self, mut f: F) -> io::Result<usize> {
        if let Some(s) = &mut self.tls {
            return tls::read_with(&self.sock, s, &SCRATCH, self.write_timeout, f).await;
        }
        loop {
            match &self.sock {
                Socket::Tcp(s) => s.readable().await?,
                Socket::Unix(s) => s.readable().await?,
            }
            let res = SCRATCH.with(|scratch| {
                let mut scratch = scratch.borrow_mut();
                let n = match &self.sock {
                    Socket::Tcp(s) => s.try_read(&mut scratch[..])?,
                    Socket::Unix(s) => s.try_read(&mut scratch[..])?,
                };
                f(&scratch[..n]);
                Ok::<usize, io::Error>(n)
            });
            match res {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                r => return r,
            }
        }
    }

    pub async fn write_all(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        if let Some(s) = &mut self.tls {
            return tls::write_parts(&self.sock, s, &[bytes], self.write_timeout).await;
        }
        while !bytes.is_empty() {
            let write = async {
                match &mut self.sock {
                    Socket::Tcp(s) => s.write(bytes).await,
                    Socket::Unix(s) => s.write(bytes).await,
                }
            };
            match tokio::time::timeout(self.write_timeout, write).await {
                Err(_) => return Err(timed_out()),
                Ok(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(Ok(n)) => bytes = &bytes[n..],
                Ok(Err(e)) => return Err(e),
            }
        }
        Ok(())
    }

    /// Write `parts` in order, with as few system calls as the socket allows.
    pub async fn write_all_parts(&mut self, parts: &[&[u8]]) -> io::Result<()> {
        if let Some(s) = &mut self.tls {
            return tls::write_parts(&self.sock, s, parts, self.write_timeout).await;
        }
        let mut parts: Vec<&[u8]> = parts.iter().copied().filter(|p| !p.is_empty()).collect();
        let mut first = 0;
        while first < parts.len() {
            let slices: Vec<io::IoSlice<'_>> =
                parts[first..].iter().map(|p| io::IoSlice::new(p)).collect();
            let write = async {
                match &mut self.sock {
                    Socket::Tcp(s) => s.write_vectored(&slices).await,
                    Socket::Unix(s) => s.write_vectored(&slices).await,
                }
            };
            let mut n = match tokio::time::timeout(self.write_timeout, write).await {
                Err(_) => return Err(timed_out()),
                Ok(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(Ok(n)) => n,
                Ok(Err(e)) => return Err(e),
            };
            while n > 0 && first < parts.len() {
                let take = n.min(parts[first].len());
                parts[first] = &parts[first][take..];
                n -= take;
                if parts[first].is_empty() {
                    first += 1;
                }
            }
        }
        Ok(())
    }

    /// Send `len` bytes of `file` from `offset` without copying them through user space.
    pub async fn send_file(
        &mut self,
        file: &std::fs::File,
        mut offset: i64,
        len: u64,
    ) -> io::Result<u64> {
        if let Some(s) = &mut self.tls {
            return tls::send_file(&self.sock, s, file, offset, len, self.write_timeout).await;
        }
        let mut left = len;
        while left > 0 {
            let chunk = left.min(1 << 30) as usize;
            self.wait_writable().await?;
            let res = match &self.sock {
                Socket::Tcp(s) => {
                    s.try_io(Interest::WRITABLE, || sendfile(s, file, &mut offset, chunk))
                }
                Socket::Unix(s) => {
                    s.try_io(Interest::WRITABLE, || sendfile(s, file, &mut offset, chunk))
                }
            };
            match res {
                Ok(0) => break,
                Ok(n) => left -= n as u64,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(len - left)
    }

    /// Wait until the socket takes more bytes, for at most the write timeout.
    async fn wait_writable(&self) -> io::Result<()> {
        let writable = async {
            match &self.sock {
                Socket::Tcp(s) => s.writable().await,
                Socket::Unix(s) => s.writable().await,
            }
        };
        match tokio::time::timeout(self.write_timeout, writable).await {
            Err(_) => Err(timed_out()),
            Ok(r) => r,
        }
    }

    /// Send `len` bytes of `file` from `offset`, the disk reads done on the runtime's
    /// blocking threads so that this thread never waits for the disk: in plain text
    /// sendfile(2) there from a duplicate of the socket (non-blocking like it, so one call
    /// sends what the socket takes now, and this thread waits for room), under TLS a piece
    /// read there and encrypted here. Returns the bytes sent: fewer when the file ended.
    pub async fn send_file_off_thread(
        &mut self,
        file: Arc<std::fs::File>,
        mut offset: u64,
        len: u64,
    ) -> io::Result<u64> {
        let mut left = len;
        if let Some(s) = &mut self.tls {
            while left > 0 {
                let want = left.min(OFF_THREAD_PIECE) as usize;
                let f = file.clone();
                let piece = off_thread(move || {
                    let mut buf = vec![0u8; want];
                    let n = std::os::unix::fs::FileExt::read_at(&*f, &mut buf, offset)?;
                    buf.truncate(n);
                    Ok(buf)
                })
                .await?;
                if piece.is_empty() {
                    break;
                }
                tls::write_parts(&self.sock, s, &[&piece], self.write_timeout).await?;
                offset += piece.len() as u64;
                left -= piece.len() as u64;
            }
            return Ok(len - left);
        }
        let sock = Arc::new(match &self.sock {
            Socket::Tcp(s) => s.as_fd().try_clone_to_owned()?,
            Socket::Unix(s) => s.as_fd().try_clone_to_owned()?,
        });
        while left > 0 {
            self.wait_writable().await?;
            let (f, out) = (file.clone(), sock.clone());
            let chunk = left.min(1 << 30) as usize;
            let sent = off_thread(move || {
                let mut off = offset as i64;
                loop {
                    match nix::sys::sendfile::sendfile(&*out, &*f, Some(&mut off), chunk) {
                        Err(nix::errno::Errno::EINTR) => continue,
                        r => return r.map_err(io::Error::from),
                    }
                }
            })
            .await;
            match sent {
                Ok(0) => break,
                Ok(n) => {
                    offset += n as u64;
                    left -= n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // The send happened outside tokio: tell it the socket is full, or the
                    // next wait for room would return at once.
                    let full = || Err::<(), _>(io::Error::from(io::ErrorKind::WouldBlock));
                    let _ = match &self.sock {
                        Socket::Tcp(s) => s.try_io(Interest::WRITABLE, full),
                        Socket::Unix(s) => s.try_io(Interest::WRITABLE, full),
                    };
                }
                Err(e) => return Err(e),
            }
        }
        Ok(len - left)
    }

    /// Close our side, then read and drop what the client still sends (up to a limit and a
    /// second), so unread request bytes do not turn the close into a reset that could
    /// destroy the response in flight.
    pub async fn close_graceful(mut self) {
        if let Some(s) = &mut self.tls {
            s.send_close_notify();
            let _ = tls::flush(&self.sock, s, Duration::from_secs(1)).await;
        }
        let _ = match &mut self.sock {
            Socket::Tcp(s) => s.shutdown().await,
            Socket::Unix(s) => s.shutdown().await,
        };
        let mut left = 1usize << 20;
        let linger = async {
            while left > 0 {
                match self.read_with(|_| {}).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => left = left.saturating_sub(n),
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(1), linger).await;
    }
}

fn sendfile<S: AsFd>(
    s: &S,
    file: &std::fs::File,
    offset: &mut i64,
    count: usize,
) -> io::Result<usize> {
    nix::sys::sendfile::sendfile(s.as_fd(), file.as_fd(), Some(offset), count)
        .map_err(io::Error::from)
}

/// Run `f` on the runtime's blocking threads (bounded: see `io.rs`).
pub async fn off_thread<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(io::Error::other(format!("blocking task failed: {e}"))))
}
