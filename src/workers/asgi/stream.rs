//! A connection of the ASGI worker's I/O thread: TCP or unix, with the few operations the
//! connection tasks need, sendfile(2) included.

use std::io;
use std::os::fd::AsFd;
use std::time::Duration;

use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::{TcpStream, UnixStream};

/// Bytes one read takes at most.
const READ_SIZE: usize = 64 * 1024;

thread_local! {
    /// Where every connection of the I/O thread reads into: a connection waiting for bytes
    /// holds no buffer, so a thousand idle clients cost a thousand small tasks.
    static SCRATCH: std::cell::RefCell<Box<[u8]>> =
        std::cell::RefCell::new(vec![0u8; READ_SIZE].into_boxed_slice());
}

pub enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    /// Wait for bytes and hand what one read got to `f` (0 bytes: the peer closed).
    pub async fn read_with<F: FnMut(&[u8])>(&mut self, mut f: F) -> io::Result<usize> {
        loop {
            match self {
                Stream::Tcp(s) => s.readable().await?,
                Stream::Unix(s) => s.readable().await?,
            }
            let res = SCRATCH.with(|scratch| {
                let mut scratch = scratch.borrow_mut();
                let n = match self {
                    Stream::Tcp(s) => s.try_read(&mut scratch[..])?,
                    Stream::Unix(s) => s.try_read(&mut scratch[..])?,
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

    pub async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.write_all(bytes).await,
            Stream::Unix(s) => s.write_all(bytes).await,
        }
    }

    /// Send `len` bytes of `file` from `offset` without copying them through user space.
    pub async fn send_file(
        &mut self,
        file: &std::fs::File,
        mut offset: i64,
        len: u64,
    ) -> io::Result<u64> {
        let mut left = len;
        while left > 0 {
            let chunk = left.min(1 << 30) as usize;
            let res = match self {
                Stream::Tcp(s) => {
                    s.writable().await?;
                    s.try_io(Interest::WRITABLE, || sendfile(s, file, &mut offset, chunk))
                }
                Stream::Unix(s) => {
                    s.writable().await?;
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

    /// Close our side, then read and drop what the client still sends (up to a limit and a
    /// second), so unread request bytes do not turn the close into a reset that could
    /// destroy the response in flight.
    pub async fn close_graceful(mut self) {
        let _ = match &mut self {
            Stream::Tcp(s) => s.shutdown().await,
            Stream::Unix(s) => s.shutdown().await,
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
