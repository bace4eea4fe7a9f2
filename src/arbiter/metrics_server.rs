//! The master's Prometheus endpoint: a tiny HTTP/1.x responder that the master's
//! single-threaded loop polls along with its signal pipe, so scrapes need no thread and no
//! Python. Every connection gets one response and is closed.
//!
//! Owns: the metrics listening socket, its connections, request-head parsing and the
//! responses' framing. Must not touch: the application listeners and workers (a forked
//! worker closes these descriptors through `raw_fds`), and what the body says: the caller's
//! `render` closure produces it.

use std::io::{self, Read};
use std::net::ToSocketAddrs;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::poll::PollFlags;
use socket2::{Domain, SockAddr, Socket, Type};

use crate::config::BindAddr;

/// Connections open at once; more are closed as soon as they are accepted.
const MAX_CONNS: usize = 16;
/// Accepts per `on_ready`, so a connection flood cannot hold the master's loop.
const MAX_ACCEPTS: usize = 64;
/// A request head must end within this many bytes.
const MAX_HEAD: usize = 8 * 1024;
/// A head must arrive within this long of the accept, and a response must make progress
/// at least this often.
const IDLE: Duration = Duration::from_secs(5);
/// Input left unread at close makes the kernel answer with a reset that can destroy the
/// response still in flight; this much is read and thrown away first.
const DRAIN_AT_CLOSE: usize = 64 * 1024;
const DEFAULT_PORT: u16 = 9100;
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub struct MetricsServer {
    listener: Socket,
    url: String,
    unix_file: Option<UnixFile>,
    conns: Vec<Conn>,
    idle: Duration,
    /// Accepting is paused until then after an accept error (see `accept_paused`).
    paused_until: Option<Instant>,
}

/// The socket file this process created, removed on drop only by that process and only
/// while it is still the same file (a USR2 successor may have bound the path again).
struct UnixFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
    pid: u32,
}

struct Conn {
    sock: Socket,
    state: State,
    deadline: Instant,
}

enum State {
    Reading(Vec<u8>),
    Writing { out: Vec<u8>, sent: usize },
}

enum Reply {
    Metrics,
    NotFound,
    NotAllowed,
    BadRequest,
}

impl MetricsServer {
    /// Listen on `HOST:PORT`, `[V6]:PORT`, `HOST` (port 9100) or `unix:PATH`. Port 0 picks
    /// a free port; `url` names the real one.
    pub fn bind(addr: &str) -> io::Result<Self> {
        let parsed = parse_metrics_address(addr)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        MetricsServer::bind_to(&parsed)
    }

    /// Listen on an already parsed address (`fd://` sockets are not supported).
    pub fn bind_to(addr: &BindAddr) -> io::Result<Self> {
        let (listener, unix_file) = match addr {
            BindAddr::Tcp { host, port } => (listen_tcp(host, *port)?, None),
            BindAddr::Unix(path) => {
                let (sock, file) = listen_unix(path)?;
                (sock, Some(file))
            }
            BindAddr::Fd(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "the metrics endpoint cannot use an inherited fd:// socket",
                ))
            }
        };
        let url = match (listener.local_addr()?.as_socket(), &unix_file) {
            (Some(std::net::SocketAddr::V4(a)), _) => {
                format!("http://{}:{}/metrics", a.ip(), a.port())
            }
            (Some(std::net::SocketAddr::V6(a)), _) => {
                format!("http://[{}]:{}/metrics", a.ip(), a.port())
            }
            (None, Some(f)) => format!("unix:{}", f.path.display()),
            (None, None) => String::new(),
        };
        Ok(MetricsServer {
            listener,
            url,
            unix_file,
            conns: Vec::new(),
            idle: IDLE,
            paused_until: None,
        })
    }

    /// Where to scrape: `http://HOST:PORT/metrics`, or `unix:PATH` for a unix socket.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// What to poll: the listener for new connections, and each connection for reading its
    /// request or writing its response.
    pub fn poll_fds(&self) -> Vec<(BorrowedFd<'_>, PollFlags)> {
        let mut fds = Vec::with_capacity(1 + self.conns.len());
        if !self.accept_paused() {
            fds.push((self.listener.as_fd(), PollFlags::POLLIN));
        }
        for c in &self.conns {
            let flags = match c.state {
                State::Reading(_) => PollFlags::POLLIN,
                State::Writing { .. } => PollFlags::POLLOUT,
            };
            fds.push((c.sock.as_fd(), flags));
        }
        fds
    }

    /// Every descriptor this server holds, for a forked worker to close.
    pub fn raw_fds(&self) -> Vec<RawFd> {
        let conns = self.conns.iter().map(|c| c.sock.as_raw_fd());
        std::iter::once(self.listener.as_raw_fd())
            .chain(conns)
            .collect()
    }

    /// Accept, read, answer and write as far as possible without blocking. Call it when a
    /// `poll_fds` descriptor is ready and also on every loop turn: it is cheap when nothing
    /// is pending, and it is what closes connections that went quiet. `render` is called
    /// once per `GET`/`HEAD /metrics` request.
    pub fn on_ready(&mut self, render: &mut dyn FnMut() -> String) {
        self.accept_pending();
        let idle = self.idle;
        self.conns.retain_mut(|c| c.advance(render, idle));
    }

    /// Close the listener and every connection (dropping does the same).
    pub fn close(self) {}

    fn accept_paused(&self) -> bool {
        super::accept::paused(self.paused_until)
    }

    fn accept_pending(&mut self) {
        let conns = &mut self.conns;
        let idle = self.idle;
        super::accept::accept_batch(
            &self.listener,
            &mut self.paused_until,
            MAX_ACCEPTS,
            |sock| {
                if conns.len() >= MAX_CONNS {
                    // Idle connections must not lock scrapers out: the one that has waited
                    // longest for its request makes room.
                    if let Some(i) = conns
                        .iter()
                        .position(|c| matches!(c.state, State::Reading(_)))
                    {
                        conns.remove(i);
                    }
                }
                if conns.len() < MAX_CONNS {
                    conns.push(Conn {
                        sock,
                        state: State::Reading(Vec::new()),
                        deadline: Instant::now() + idle,
                    });
                }
            },
        );
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        let Some(f) = &self.unix_file else { return };
        if f.pid != std::process::id() {
            return;
        }
        let same = std::fs::symlink_metadata(&f.path)
            .map(|m| m.dev() == f.dev && m.ino() == f.ino)
            .unwrap_or(false);
        if same {
            let _ = std::fs::remove_file(&f.path);
        }
    }
}

impl Conn {
    /// Move the connection along; false once it is finished or given up.
    fn advance(&mut self, render: &mut dyn FnMut() -> String, idle: Duration) -> bool {
        if let State::Reading(head) = &mut self.state {
            let reply = match read_head(&self.sock, head) {
                HeadRead::More => return Instant::now() < self.deadline,
                HeadRead::Gone => return false,
                HeadRead::TooLarge => (Reply::BadRequest, false),
                HeadRead::Complete(end) => route(&head[..end]),
            };
            self.state = State::Writing {
                out: response(reply, render),
                sent: 0,
            };
            self.deadline = Instant::now() + idle;
        }
        let State::Writing { out, sent } = &mut self.state else {
            return true;
        };
        loop {
            // MSG_NOSIGNAL: a client that hung up must not raise SIGPIPE in the master.
            match self.sock.send_with_flags(&out[*sent..], libc::MSG_NOSIGNAL) {
                Ok(0) => return false,
                Ok(n) => {
                    *sent += n;
                    self.deadline = Instant::now() + idle;
                    if *sent == out.len() {
                        drain(&self.sock);
                        return false;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Instant::now() < self.deadline
                }
                Err(_) => return false,
            }
        }
    }
}

enum HeadRead {
    More,
    Gone,
    TooLarge,
    /// The head is `..n` of the buffer.
    Complete(usize),
}

fn read_head(sock: &Socket, head: &mut Vec<u8>) -> HeadRead {
    let mut buf = [0u8; 2048];
    loop {
        match (&*sock).read(&mut buf) {
            Ok(0) => return HeadRead::Gone,
            Ok(n) => {
                // The blank line may straddle two reads.
                let from = head.len().saturating_sub(2);
                head.extend_from_slice(&buf[..n]);
                match head_end(head, from) {
                    Some(end) if end <= MAX_HEAD => return HeadRead::Complete(end),
                    Some(_) => return HeadRead::TooLarge,
                    None if head.len() >= MAX_HEAD => return HeadRead::TooLarge,
                    None => {}
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return HeadRead::More,
            Err(_) => return HeadRead::Gone,
        }
    }
}

/// One past the blank line ending a head (`\n\n` or `\n\r\n`), searching from `from`.
fn head_end(buf: &[u8], from: usize) -> Option<usize> {
    (from..buf.len()).find_map(|i| {
        if buf[i] != b'\n' {
            return None;
        }
        match buf.get(i + 1..) {
            Some([b'\n', ..]) => Some(i + 2),
            Some([b'\r', b'\n', ..]) => Some(i + 3),
            _ => None,
        }
    })
}

/// What to answer, and whether the method was HEAD (no body).
fn route(head: &[u8]) -> (Reply, bool) {
    let bad = (Reply::BadRequest, false);
    let mut lines = head
        .split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let Some(Ok(request_line)) = lines.next().map(std::str::from_utf8) else {
        return bad;
    };
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return bad;
    };
    let version_ok = matches!(version.as_bytes(), [b'H', b'T', b'T', b'P', b'/', b'1', b'.', d] if d.is_ascii_digit());
    if !version_ok || method.is_empty() || !method.bytes().all(is_tchar) {
        return bad;
    }
    for line in lines.take_while(|l| !l.is_empty()) {
        let name = line.split(|b| *b == b':').next().unwrap_or_default();
        if name.is_empty() || name.len() == line.len() || !name.iter().copied().all(is_tchar) {
            return bad;
        }
    }
    let Some(path) = request_path(target) else {
        return bad;
    };
    let head_only = method == "HEAD";
    if path != "/metrics" {
        return (Reply::NotFound, head_only);
    }
    match method {
        "GET" | "HEAD" => (Reply::Metrics, head_only),
        _ => (Reply::NotAllowed, false),
    }
}

/// The path of an origin-form (`/metrics?x`) or absolute-form (`http://h/metrics`) target.
fn request_path(target: &str) -> Option<&str> {
    let path_and_query = if target.starts_with('/') {
        target
    } else {
        let (scheme, rest) = target.split_once("://")?;
        if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
            return None;
        }
        rest.find('/').map_or("/", |at| &rest[at..])
    };
    path_and_query.split(['?', '#']).next()
}

/// RFC 9110 token characters.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn response((reply, head_only): (Reply, bool), render: &mut dyn FnMut() -> String) -> Vec<u8> {
    let (status, content_type, extra, body) = match reply {
        Reply::Metrics => ("200 OK", CONTENT_TYPE, "", render()),
        Reply::NotFound => ("404 Not Found", "text/plain", "", "Not Found\n".into()),
        Reply::NotAllowed => (
            "405 Method Not Allowed",
            "text/plain",
            "Allow: GET, HEAD\r\n",
            "Method Not Allowed\n".into(),
        ),
        Reply::BadRequest => ("400 Bad Request", "text/plain", "", "Bad Request\n".into()),
    };
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         {extra}Connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body.as_bytes());
    }
    out
}

fn drain(sock: &Socket) {
    let mut buf = [0u8; 4096];
    let mut total = 0;
    while total < DRAIN_AT_CLOSE {
        match (&*sock).read(&mut buf) {
            Ok(n) if n > 0 => total += n,
            _ => return,
        }
    }
}

/// `HOST:PORT`, `[V6]:PORT`, `HOST` (port 9100), `:PORT` (every interface), `tcp://` the
/// same, or `unix:PATH` / `unix://PATH`, like Gunicorn's `bind`. An IPv6 address needs its
/// brackets, so `::1` alone is an error rather than a guess.
pub fn parse_metrics_address(addr: &str) -> Result<BindAddr, String> {
    if let Some(rest) = addr.strip_prefix("unix:") {
        let path = rest.strip_prefix("//").unwrap_or(rest);
        if path.is_empty() {
            return Err(format!("{addr:?}: the unix socket path is empty"));
        }
        return Ok(BindAddr::Unix(PathBuf::from(path)));
    }
    if addr.starts_with("fd://") {
        return Err(format!("{addr:?}: fd:// is not supported here"));
    }
    let netloc = addr.strip_prefix("tcp://").unwrap_or(addr);
    let (host, port) = if let Some(rest) = netloc.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("{addr:?}: missing ']'"))?;
        match after {
            "" => (host, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None => return Err(format!("{addr:?}: expected ':PORT' after ']'")),
            },
        }
    } else {
        match netloc.split_once(':') {
            Some((_, port)) if port.contains(':') => {
                return Err(format!("{addr:?}: write an IPv6 address as [ADDRESS]:PORT"))
            }
            Some((host, port)) => (host, Some(port)),
            None => (netloc, None),
        }
    };
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => p
            .parse::<u16>()
            .map_err(|_| format!("{addr:?}: {p:?} is not a valid port number"))?,
    };
    let host = if host.is_empty() { "0.0.0.0" } else { host };
    Ok(BindAddr::Tcp {
        host: host.to_lowercase(),
        port,
    })
}

fn listen_tcp(host: &str, port: u16) -> io::Result<Socket> {
    let mut last = None;
    for addr in (host, port).to_socket_addrs()? {
        let attempt = (|| {
            // socket2 opens sockets with SOCK_CLOEXEC.
            let sock = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
            sock.set_reuse_address(true)?;
            sock.bind(&addr.into())?;
            sock.listen(128)?;
            sock.set_nonblocking(true)?;
            Ok::<_, io::Error>(sock)
        })();
        match attempt {
            Ok(sock) => return Ok(sock),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::AddrNotAvailable,
            format!("{host:?} has no address"),
        )
    }))
}

/// A stale socket file from an earlier run is replaced, as for the app's unix listeners;
/// any other file at the path is an error.
fn listen_unix(path: &Path) -> io::Result<(Socket, UnixFile)> {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a socket", path.display()),
            ));
        }
        std::fs::remove_file(path)?;
    }
    let sock = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    sock.bind(&SockAddr::unix(path)?)?;
    let meta = std::fs::symlink_metadata(path)?;
    sock.listen(128)?;
    sock.set_nonblocking(true)?;
    let file = UnixFile {
        path: path.to_path_buf(),
        dev: meta.dev(),
        ino: meta.ino(),
        pid: std::process::id(),
    };
    Ok((sock, file))
}

#[cfg(test)]
#[path = "metrics_server_tests.rs"]
mod tests;
