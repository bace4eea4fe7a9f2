//! The sync worker: one connection at a time, one request per connection, `Connection: close`,
//! as Gunicorn's `SyncWorker`. Accepting, reading and parsing run with the GIL released.

use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrocorn_h1::{
    parse_proxy_header, ParseError, ParserConfig, ProxyInfo, ProxyMode, ProxyParse,
};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use pyo3::prelude::*;

use super::base::WorkerState;
use super::request::{self, Conn};
use super::signals::WorkerSignals;
use crate::net::{Listener, Peer, Stream};
use crate::sys::process;
use crate::telemetry::error_log;

pub fn parser_config(cfg: &crate::config::Config) -> ParserConfig {
    ParserConfig {
        limit_request_line: cfg.limit_request_line,
        limit_request_fields: cfg.limit_request_fields,
        limit_request_field_size: cfg.limit_request_field_size,
        permit_unconventional_http_method: cfg.permit_unconventional_http_method,
        permit_unconventional_http_version: cfg.permit_unconventional_http_version,
        casefold_http_method: cfg.casefold_http_method,
        permit_obsolete_folding: cfg.permit_obsolete_folding,
        strip_header_spaces: cfg.strip_header_spaces,
        header_map: match cfg.header_map.as_str() {
            "refuse" => ferrocorn_h1::HeaderMapPolicy::Refuse,
            "dangerous" => ferrocorn_h1::HeaderMapPolicy::Dangerous,
            _ => ferrocorn_h1::HeaderMapPolicy::Drop,
        },
        forwarder_headers: cfg.forwarder_headers.clone(),
        secure_scheme_headers: cfg.secure_scheme_headers.clone(),
        is_ssl: cfg.is_ssl(),
    }
}

pub fn proxy_mode(setting: &str) -> ProxyMode {
    match setting {
        "v1" => ProxyMode::V1,
        "v2" => ProxyMode::V2,
        "auto" => ProxyMode::Auto,
        _ => ProxyMode::Off,
    }
}

/// How long a worker waits in poll before beating again; Gunicorn uses timeout/2.
fn poll_interval(cfg: &crate::config::Config) -> Duration {
    let half = Duration::from_millis((cfg.timeout.max(0) as u64) * 500);
    half.clamp(Duration::from_millis(100), Duration::from_secs(1))
}

/// Wait for a listener to become readable (or a signal). Returns the ready listener indexes.
fn wait(
    py: Python<'_>,
    listeners: &[Listener],
    wake: BorrowedFd<'_>,
    timeout: Duration,
) -> Vec<usize> {
    let raw: Vec<i32> = listeners.iter().map(|l| l.fd()).collect();
    let wake_raw = wake.as_raw_fd();
    let ms = timeout.as_millis().min(u16::MAX as u128) as u16;
    py.detach(move || {
        // SAFETY-free: the fds stay open for the whole call; borrow them only inside it.
        let fds: Vec<BorrowedFd<'_>> = raw
            .iter()
            .chain(std::iter::once(&wake_raw))
            .map(|fd| crate::sys::process::borrow_fd(*fd))
            .collect();
        let mut pfds: Vec<PollFd<'_>> = fds
            .iter()
            .map(|fd| PollFd::new(*fd, PollFlags::POLLIN))
            .collect();
        match poll(&mut pfds, PollTimeout::from(ms)) {
            Ok(_) => pfds[..raw.len()]
                .iter()
                .enumerate()
                .filter(|(_, p)| p.revents().is_some_and(|r| !r.is_empty()))
                .map(|(i, _)| i)
                .collect(),
            Err(_) => Vec::new(),
        }
    })
}

pub fn run(py: Python<'_>, st: &mut WorkerState<'_>, signals: &WorkerSignals) -> PyResult<()> {
    let pcfg = parser_config(st.ctx.cfg);
    let interval = poll_interval(st.ctx.cfg);
    let listeners = st.ctx.listeners;
    while st.alive() {
        st.ctx.beat.notify();
        if process::getppid() != st.ctx.ppid {
            error_log::info(&format!(
                "Parent changed, shutting down: {}",
                process::getpid()
            ));
            return Ok(());
        }
        let ready = wait(py, listeners, signals.wake_read.as_fd(), interval);
        signals.dispatch(py)?;
        for idx in ready {
            if !st.alive() {
                break;
            }
            accept_and_serve(py, st, &pcfg, idx)?;
            signals.dispatch(py)?;
        }
    }
    if st.ctx.beat.drain_requested() {
        drain(py, st, &pcfg, signals)?;
    }
    Ok(())
}

/// A final graceful stop: the master has made the kernel drop new connection attempts, so
/// serve every connection already queued instead of letting the close reset it. Bounded by
/// `graceful_timeout`, after which the master kills the worker anyway.
fn drain(
    py: Python<'_>,
    st: &mut WorkerState<'_>,
    pcfg: &ParserConfig,
    signals: &WorkerSignals,
) -> PyResult<()> {
    let limit = Instant::now() + Duration::from_secs(st.ctx.cfg.graceful_timeout.max(0) as u64);
    loop {
        let mut served = false;
        for idx in 0..st.ctx.listeners.len() {
            served |= accept_and_serve(py, st, pcfg, idx)?;
            signals.dispatch(py)?;
        }
        if !served || Instant::now() >= limit {
            return Ok(());
        }
        st.ctx.beat.notify();
    }
}

/// Accept one connection from listener `idx` if one is queued and serve it. Returns whether
/// there was one.
fn accept_and_serve(
    py: Python<'_>,
    st: &mut WorkerState<'_>,
    pcfg: &ParserConfig,
    idx: usize,
) -> PyResult<bool> {
    let listener = &st.ctx.listeners[idx];
    let (stream, peer) = match listener.accept() {
        Ok(c) => c,
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EAGAIN) | Some(libc::ECONNABORTED) | Some(libc::EINTR)
            ) =>
        {
            return Ok(false)
        }
        Err(e) => return Err(e.into()),
    };
    st.ctx.beat.notify();
    // A bug on the request path must cost one connection, never the worker.
    let served = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        handle(py, st, pcfg, listener, stream, peer)
    }));
    match served {
        Ok(res) => res?,
        Err(panic) => request::log_request_panic(panic),
    }
    Ok(true)
}

enum Head {
    Parsed(Box<ferrocorn_h1::RequestHead>, Vec<u8>, Option<ProxyInfo>),
    Closed,
    Invalid(ParseError),
}

/// How a connection may open with a PROXY protocol header.
pub struct ProxyPolicy {
    pub mode: ProxyMode,
    /// Set when the peer is not in `proxy_allow_ips`: a header from it gets a 403.
    pub forbidden_peer: Option<String>,
}

/// Read until a whole request head is parsed, the client goes away, or the input can no
/// longer become a valid request (answered at once, never waited on). A PROXY header, when
/// allowed, is taken off the front first (first request of a connection only, as Gunicorn).
fn read_head(
    stream: &Stream,
    pcfg: &ParserConfig,
    trusted: bool,
    deadline: Option<Instant>,
    proxy: &ProxyPolicy,
) -> Head {
    let mut buf: Vec<u8> = Vec::with_capacity(8192);
    let mut chunk = [0u8; 8192];
    let mut r = stream;
    let mut parser = ferrocorn_h1::HeadParser::new();
    let mut proxy_pending = proxy.mode != ProxyMode::Off;
    let mut proxy_info = None;
    loop {
        if let Some(d) = deadline {
            let now = Instant::now();
            if now >= d || stream.set_read_timeout(Some(d - now)).is_err() {
                return Head::Closed;
            }
        }
        match r.read(&mut chunk) {
            Ok(0) => {
                return if buf.is_empty() {
                    Head::Closed
                } else {
                    error_log::debug("Ignored premature client disconnection.");
                    Head::Closed
                }
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return Head::Closed,
        }
        if proxy_pending {
            match parse_proxy_header(&buf, proxy.mode, proxy.forbidden_peer.as_deref()) {
                Ok(ProxyParse::Incomplete) => continue,
                Ok(ProxyParse::Absent) => proxy_pending = false,
                Ok(ProxyParse::Present { info, consumed }) => {
                    buf.drain(..consumed);
                    proxy_info = Some(info);
                    proxy_pending = false;
                }
                Err(e) => return Head::Invalid(e),
            }
        }
        match parser.parse(&buf, pcfg, trusted) {
            Ok(Some((head, used))) => {
                return Head::Parsed(Box::new(head), buf.split_off(used), proxy_info)
            }
            Ok(None) => continue,
            Err(e) => return Head::Invalid(e),
        }
    }
}

fn handle(
    py: Python<'_>,
    st: &mut WorkerState<'_>,
    pcfg: &ParserConfig,
    listener: &Listener,
    stream: Stream,
    peer: Peer,
) -> PyResult<()> {
    if stream.set_nonblocking(false).is_err() {
        return Ok(());
    }
    let cfg = st.ctx.cfg;
    let trusted = match &peer {
        Peer::Unix => true,
        Peer::Ip(a) => cfg.forwarded_allow_ips.contains(a.ip()),
    };
    // A client gets `timeout` seconds to send its request head; Gunicorn's sync worker would
    // instead block until the master kills it.
    let deadline =
        (cfg.timeout > 0).then(|| Instant::now() + Duration::from_secs(cfg.timeout as u64));
    let stream = Arc::new(stream);
    let proxy = ProxyPolicy {
        mode: proxy_mode(&cfg.proxy_protocol),
        forbidden_peer: match &peer {
            Peer::Ip(a) if !cfg.proxy_allow_ips.contains(a.ip()) => Some(a.ip().to_string()),
            _ => None,
        },
    };
    let head = py.detach(|| read_head(&stream, pcfg, trusted, deadline, &proxy));
    let _ = stream.set_read_timeout(deadline.map(|_| Duration::from_secs(cfg.timeout as u64)));
    match head {
        Head::Closed => {}
        Head::Invalid(err) => request::send_parse_error(py, &stream, &peer, &err, None),
        Head::Parsed(head, leftover, proxy_info) => {
            let conn = Conn {
                stream: stream.clone(),
                peer: peer.clone(),
                listener,
                proxy: proxy_info,
                app_socket: Default::default(),
                defer_writes: false,
            };
            request::handle_request(py, st, pcfg, &conn, *head, leftover, true)?;
            if let Some(sock) = conn.app_socket.take() {
                super::app_socket::close_app_socket(py, sock);
            }
        }
    }
    drop_stream(py, stream);
    Ok(())
}

fn drop_stream(py: Python<'_>, stream: Arc<Stream>) {
    py.detach(|| stream.close_graceful());
}
