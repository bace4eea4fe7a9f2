//! The sync worker: one connection at a time, one request per connection, `Connection: close`,
//! as Gunicorn's `SyncWorker`. Accepting, reading and parsing run with the GIL released.

use std::os::fd::AsFd;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use pyo3::prelude::*;

use super::request::{self, close_app_socket, log_request_panic};
use super::signals::WorkerSignals;
use super::state::WorkerState;
use crate::conn::reader::{self, HeadRead};
use crate::conn::{self, H1Exchange, HeadReader, PeerPolicy, Setup, Transport};
use crate::http::{self, Peer, SharedExchange};
use crate::net::Listener;
use crate::sys::process;
use crate::telemetry::error_log;

/// How long a worker waits in poll before beating again; Gunicorn uses timeout/2.
fn poll_interval(st: &WorkerState<'_>) -> Duration {
    let half = st.ctx.cfg.serving().timeout.unwrap_or_default() / 2;
    half.clamp(Duration::from_millis(100), Duration::from_secs(1))
}

/// Wait for a listener to become readable (or a signal). Returns the ready listener indexes.
fn wait(
    py: Python<'_>,
    listeners: &[Listener],
    signals: &WorkerSignals,
    timeout: Duration,
) -> Vec<usize> {
    let ms = timeout.as_millis().min(u16::MAX as u128) as u16;
    let wake = signals.wake_fd();
    py.detach(|| {
        let mut pfds: Vec<PollFd<'_>> = listeners
            .iter()
            .map(|l| l.as_fd())
            .chain(std::iter::once(wake))
            .map(|fd| PollFd::new(fd, PollFlags::POLLIN))
            .collect();
        match poll(&mut pfds, PollTimeout::from(ms)) {
            Ok(_) => pfds[..listeners.len()]
                .iter()
                .enumerate()
                .filter(|(_, p)| p.revents().is_some_and(|r| !r.is_empty()))
                .map(|(i, _)| i)
                .collect(),
            Err(_) => Vec::new(),
        }
    })
}

/// The worker's loop (Gunicorn's `SyncWorker.run`), until it is told to stop.
pub fn run(py: Python<'_>, st: &WorkerState<'_>, signals: &WorkerSignals) -> PyResult<()> {
    let interval = poll_interval(st);
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
        let ready = wait(py, listeners, signals, interval);
        signals.dispatch(py)?;
        for idx in ready {
            if !st.alive() {
                break;
            }
            accept(py, st, idx)?;
            signals.dispatch(py)?;
        }
    }
    if st.ctx.beat.drain_requested() {
        drain(py, st, signals)?;
    }
    Ok(())
}

/// A final graceful stop: the master has made the kernel drop new connection attempts, so
/// serve every connection already queued instead of letting the close reset it. Bounded by
/// `graceful_timeout`, after which the master kills the worker anyway.
fn drain(py: Python<'_>, st: &WorkerState<'_>, signals: &WorkerSignals) -> PyResult<()> {
    let limit = Instant::now() + st.ctx.cfg.serving().graceful_timeout;
    loop {
        let mut served = false;
        for idx in 0..st.ctx.listeners.len() {
            served |= accept(py, st, idx)?;
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
fn accept(py: Python<'_>, st: &WorkerState<'_>, idx: usize) -> PyResult<bool> {
    let listener = &st.ctx.listeners[idx];
    let (accepted, peer) = match listener.accept() {
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
    let mut transport = Transport::from(accepted);
    if let Some(tls) = &st.tls {
        match tls.session(peer.ip_string(), st.ctx.cfg.serving().proxy_protocol) {
            Some(session) => transport = transport.with_tls(session),
            None => return Ok(true),
        }
    }
    // A bug on the request path must cost one connection, never the worker.
    let served = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        handle(py, st, listener, transport, peer)
    }));
    match served {
        Ok(res) => res?,
        Err(panic) => log_request_panic(panic),
    }
    Ok(true)
}

/// Serve one connection: read its request, run it, close gracefully (Gunicorn's `handle`).
fn handle(
    py: Python<'_>,
    st: &WorkerState<'_>,
    listener: &Listener,
    mut transport: Transport,
    peer: Peer,
) -> PyResult<()> {
    if transport.set_nonblocking(false).is_err() {
        return Ok(());
    }
    let serving = st.ctx.cfg.serving();
    let mut reader = HeadReader::new(PeerPolicy::new(serving, &peer), 0);
    // A client gets `timeout` to send its request head; Gunicorn's sync worker would instead
    // block until the master kills it. The worker beats while it waits, so the master's own
    // `timeout` never races the client's.
    let deadline = serving.timeout.map(|t| Instant::now() + t);
    let beat = st.ctx.beat;
    let liveness = serving.timeout.map(|t| conn::Liveness {
        every: t / 2,
        beat: Arc::new(move || beat.notify()),
    });
    let head = py.detach(|| {
        reader::read_head_blocking(
            &mut transport,
            &mut reader,
            &serving.parser,
            deadline,
            liveness.as_ref(),
        )
    });
    let _ = transport.set_read_timeout(serving.timeout);
    let mut result = Ok(());
    match head {
        // Nothing was sent, so there is nothing to linger for.
        HeadRead::Closed => {
            conn::close_now(transport);
            return Ok(());
        }
        HeadRead::Invalid(err) => conn::send_parse_error(py, &mut transport, &peer, &err),
        HeadRead::Ready(head, leftover) => {
            let proxy = reader.proxy_info().cloned();
            let (req, framing) =
                reader::into_request(*head, peer.clone(), listener.server_addr(), proxy, 1);
            if let Some(statics) = st.statics.as_deref() {
                if let Some(target) = statics.lookup(&req.path, req.gateway.is_some()) {
                    // Without a write timeout a client that reads nothing would hold the
                    // worker until the master kills it.
                    let _ = transport.set_write_timeout(serving.timeout);
                    let conn = super::statics::Conn {
                        transport: &mut transport,
                        leftover,
                        close: true,
                        liveness: liveness.as_ref(),
                    };
                    let after =
                        py.detach(|| super::statics::serve(statics, target, &req, framing, conn));
                    if after == http::After::Gone {
                        conn::close_now(transport);
                    } else {
                        py.detach(|| conn::close_graceful(transport, liveness.as_ref()));
                    }
                    return Ok(());
                }
            }
            let setup = Setup {
                pcfg: &serving.parser,
                framing,
                version: req.version,
                method: &req.method,
                leftover,
                may_hold: false,
                // The body gets `timeout` from the head, as the whole request would under
                // Gunicorn before the master killed the worker.
                body_wait: serving.timeout.zip(liveness.clone()).map(|(t, liveness)| {
                    conn::BodyWait {
                        deadline: Instant::now() + t,
                        liveness,
                    }
                }),
            };
            let exchange = Arc::new(Mutex::new(H1Exchange::new(transport, peer, setup)));
            let shared: SharedExchange = exchange.clone();
            let mut app_socket = None;
            st.ctx.beat.request_started();
            result = request::handle_request(py, &st.scope, &shared, req, &mut app_socket, true)
                .map(drop);
            st.ctx.beat.request_finished();
            if let Some(sock) = app_socket {
                close_app_socket(py, sock);
            }
            let taken = http::lock(py, &exchange).take_back();
            match taken {
                Some((t, _)) => transport = t,
                None => return result,
            }
        }
    }
    // A worker leaving on SystemExit does not linger over the connection.
    if result.is_ok() {
        py.detach(|| conn::close_graceful(transport, liveness.as_ref()));
    }
    result
}
