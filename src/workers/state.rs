//! What a worker process knows once it is booted, shared by its serving loop, the request
//! path and its signal handlers: the context the master handed over, the app, the per-worker
//! environ template, and the request count that drives `max_requests`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use pyo3::prelude::*;

use crate::config::Config;
use crate::net::Listener;
use crate::sys::heartbeat::Beat;
use crate::telemetry::error_log;
use crate::wsgi::environ::BaseEnviron;

/// Everything a freshly forked worker needs from the master.
pub struct WorkerContext<'a> {
    pub cfg: &'a Config,
    pub listeners: &'a [Listener],
    pub age: u64,
    pub ppid: i32,
    pub beat: Beat,
    /// The app when `preload_app` loaded it in the master.
    pub preloaded: Option<Py<PyAny>>,
    pub server: Py<PyAny>,
    pub worker: Py<PyAny>,
    pub max_requests: u64,
}

/// State the serving loop shares with the request handler and signal handlers.
pub struct WorkerState<'a> {
    pub ctx: WorkerContext<'a>,
    pub alive: Arc<AtomicBool>,
    /// What serving one WSGI request needs (`workers::request::handle_request`).
    pub scope: Arc<RequestScope>,
    /// Requests served by this worker (all threads), towards `max_requests`.
    pub counter: Arc<RequestCounter>,
    /// TLS sessions for new connections, when TLS is on.
    pub tls: Option<Arc<crate::tls::Acceptor>>,
    /// The static-file mounts, their directories open; None when nothing is mounted.
    pub statics: Option<Arc<crate::statics::Statics>>,
}

/// What serving one WSGI request needs, owned rather than borrowed from the worker's
/// context: a greenlet's call (the gevent worker) holds it as well as a thread does.
pub struct RequestScope {
    pub app: Py<PyAny>,
    pub worker: Py<PyAny>,
    pub alive: Arc<AtomicBool>,
    /// Requests served by this worker (all threads), towards `max_requests`.
    pub counter: Arc<RequestCounter>,
    /// Environ keys every request of this worker shares, built once after boot.
    pub base: BaseEnviron,
    /// `socket.socket` (`ferrocorn._tls.TLSAppSocket` under TLS), to hand the app
    /// `gunicorn.socket`.
    pub socket_class: Py<PyAny>,
    pub serving: crate::config::Serving,
    pub pre_request: Option<Py<PyAny>>,
    pub post_request: Option<Py<PyAny>>,
    pub sendfile: bool,
    /// The request path keeps the worker's in-flight record itself (one request per
    /// thread); false where the connection side keeps it per call (the gevent worker's
    /// greenlets share one thread).
    pub track_in_flight: bool,
}

impl RequestScope {
    pub fn alive(&self) -> bool {
        self.alive.load(Ordering::SeqCst)
    }
}

impl<'a> WorkerState<'a> {
    pub fn new(
        py: Python<'_>,
        ctx: WorkerContext<'a>,
        alive: Arc<AtomicBool>,
        app: Py<PyAny>,
        base: BaseEnviron,
        socket_class: Py<PyAny>,
        tls: Option<Arc<crate::tls::Acceptor>>,
    ) -> Self {
        let counter = Arc::new(RequestCounter {
            nr: AtomicU64::new(0),
            max_requests: ctx.max_requests,
            beat: ctx.beat,
            ppid: ctx.ppid,
            worker: ctx.worker.clone_ref(py),
        });
        let cfg = ctx.cfg;
        let scope = Arc::new(RequestScope {
            app,
            worker: ctx.worker.clone_ref(py),
            alive: alive.clone(),
            counter: counter.clone(),
            base,
            socket_class,
            serving: cfg.serving().clone(),
            pre_request: cfg.pre_request.as_ref().map(|h| h.clone_ref(py)),
            post_request: cfg.post_request.as_ref().map(|h| h.clone_ref(py)),
            sendfile: cfg.sendfile_enabled(),
            track_in_flight: cfg.worker_kind() != Some(crate::config::WorkerKind::Gevent),
        });
        WorkerState {
            ctx,
            alive,
            scope,
            counter,
            tls,
            statics: None,
        }
    }

    /// Serve `static_mount` from these mounts.
    pub fn with_statics(mut self, statics: Option<Arc<crate::statics::Statics>>) -> Self {
        self.statics = statics;
        self
    }

    pub fn alive(&self) -> bool {
        self.alive.load(Ordering::SeqCst)
    }
}

/// The requests a worker served (`worker.nr`), shared by every serving loop.
pub struct RequestCounter {
    nr: AtomicU64,
    max_requests: u64,
    beat: Beat,
    ppid: i32,
    worker: Py<PyAny>,
}

impl RequestCounter {
    /// Count a request. The one that reaches `max_requests` asks the master for a
    /// replacement: Gunicorn stops here and leaves its share of the backlog waiting for a
    /// fresh worker to boot; this worker keeps serving instead, and the master TERMs it once
    /// the replacement is ready (see `arbiter::supervise::release_replaced`).
    pub fn count(&self, py: Python<'_>) {
        let nr = self.nr.fetch_add(1, Ordering::SeqCst) + 1;
        if nr == self.max_requests {
            error_log::info(&format!(
                "Autorestarting worker after max_requests ({nr}): a replacement boots first, then this worker stops."
            ));
            self.beat.request_retirement();
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.ppid),
                nix::sys::signal::Signal::SIGCHLD,
            );
        }
        let _ = self.worker.setattr(py, "nr", nr);
    }
}
