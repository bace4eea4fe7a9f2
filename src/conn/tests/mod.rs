//! Tests of the connection layer over real socket pairs: a unix stream pair for most, a
//! loopback TCP pair where TCP behaves differently (a peer's RST). The far end of each pair
//! is a plain std socket the test drives by hand, often from a second thread so that a read
//! of ours really has to wait for it.

mod close;
mod exchange;
mod reader;
mod transport;
mod uwsgi;

use std::io::{self, Read};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use super::transport::Transport;

/// How long a test waits for bytes that must come; far above what a loaded machine needs,
/// so a timeout means the behaviour is broken, not that the machine is slow.
const PATIENCE: Duration = Duration::from_secs(5);

/// Our side as a transport, the peer as a plain socket (both blocking).
fn unix_pair() -> (Transport, UnixStream) {
    let (ours, peer) = UnixStream::pair().expect("socketpair");
    peer.set_read_timeout(Some(PATIENCE)).unwrap();
    peer.set_write_timeout(Some(PATIENCE)).unwrap();
    (Transport::unix(ours), peer)
}

/// A loopback TCP connection: our side is the accepted socket, as a worker's is.
fn tcp_pair() -> (Transport, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let peer = TcpStream::connect(listener.local_addr().unwrap()).expect("connect");
    let (ours, _) = listener.accept().expect("accept");
    peer.set_read_timeout(Some(PATIENCE)).unwrap();
    peer.set_write_timeout(Some(PATIENCE)).unwrap();
    (Transport::tcp(ours), peer)
}

/// Everything `s` sends until it closes (fails the test if that takes longer than the
/// socket's read timeout).
fn read_to_eof(s: &mut impl Read) -> Vec<u8> {
    let mut all = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return all,
            Ok(n) => all.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => panic!(
                "reading to EOF failed after {} bytes: {e}: {:?}",
                all.len(),
                String::from_utf8_lossy(&all)
            ),
        }
    }
}

/// Exactly `n` bytes from `s`.
fn read_n(s: &mut impl Read, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    s.read_exact(&mut buf)
        .unwrap_or_else(|e| panic!("reading {n} bytes: {e}"));
    buf
}

/// Whether `s` has nothing to read right now (and is still open).
fn nothing_pending(s: &UnixStream) -> bool {
    s.set_nonblocking(true).unwrap();
    let res = (&*s).read(&mut [0u8; 1]);
    s.set_nonblocking(false).unwrap();
    matches!(res, Err(e) if e.kind() == io::ErrorKind::WouldBlock)
}

/// Poll `f` until it returns Some, failing the test after `PATIENCE`.
fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let until = Instant::now() + PATIENCE;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A pseudo-random but reproducible byte pattern, so reordered or lost bytes show.
fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
}

/// A file under the temp dir, removed when dropped.
struct TempFile {
    path: std::path::PathBuf,
}

impl TempFile {
    fn with(contents: &[u8]) -> TempFile {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "ferrocorn-conn-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, contents).unwrap();
        TempFile { path }
    }

    fn open(&self) -> std::fs::File {
        std::fs::File::open(&self.path).unwrap()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
