//! The settings the serving code runs on, resolved from the table's raw values once, at load:
//! the worker type as an enum, the parser and proxy settings as the codec's types, and every
//! duration as a `Duration` (`None` where Gunicorn's 0 means "off"). Code that serves requests
//! reads these and never re-interprets a setting string or converts seconds by hand.
//!
//! Owns: the types of the resolved values (the resolving itself is `Config::resolve`, in
//! `mod.rs`). Must not: validate user input (the validators did; an unexpected value is
//! reported as a configuration error naming the setting, never mapped to a default).

use std::time::Duration;

use ferrocorn_h1::{ParserConfig, ProxyMode};

use super::addr::AddrList;

/// The worker types this release implements; `Config::check_supported` refuses the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerKind {
    /// One connection at a time, `Connection: close` (Gunicorn's `SyncWorker`).
    Sync,
    /// Threads with keep-alive (`gthread`, or `sync` with `threads` above 1, Gunicorn's rule).
    Gthread,
    /// ASGI 3 on an asyncio (or uvloop) event loop, I/O in Rust (`asgi`, and Uvicorn's
    /// worker class names).
    Asgi,
    /// WSGI on a gevent hub, one greenlet per request, I/O in Rust (`gevent` and Gunicorn
    /// 27's other gevent class names).
    Gevent,
}

/// `asgi_loop`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AsgiLoop {
    /// uvloop when it can be imported, else asyncio.
    #[default]
    Auto,
    Asyncio,
    Uvloop,
}

/// `asgi_lifespan`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lifespan {
    /// Used when the app supports it; an app that fails it otherwise still serves.
    #[default]
    Auto,
    On,
    Off,
}

/// The ASGI worker's settings.
#[derive(Debug, Clone, Default)]
pub struct AsgiSettings {
    pub event_loop: AsgiLoop,
    pub lifespan: Lifespan,
    /// `asgi_disconnect_grace_period`: from a lost client to cancelling its task.
    pub disconnect_grace: Duration,
    /// `websocket_max_message_size`; 0 means no limit.
    pub websocket_max_message: usize,
    pub root_path: String,
    /// `worker_connections`: open connections at once, enforced.
    pub worker_connections: usize,
    /// A `...H11Worker` name: Uvicorn pins it to asyncio.
    pub h11_only: bool,
}

/// `reload_engine`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReloadEngine {
    /// inotify, falling back to polling when the kernel refuses an instance.
    #[default]
    Auto,
    Poll,
    Inotify,
}

/// `protocol`: what the listeners speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    #[default]
    Http,
    /// uWSGI packets from a proxy on `uwsgi_allow_ips` (sync and gthread workers).
    Uwsgi,
}

/// What the serving loops and the connection layer need, typed.
#[derive(Debug, Clone, Default)]
pub struct Serving {
    /// Parser limits and header policies (`header_map` already an enum).
    pub parser: ParserConfig,
    pub proxy_protocol: ProxyMode,
    /// Peers trusted with `secure_scheme_headers` and `forwarder_headers`.
    pub forwarded_allow_ips: AddrList,
    /// Peers allowed to send a PROXY header.
    pub proxy_allow_ips: AddrList,
    pub protocol: Protocol,
    /// Peers allowed to send uWSGI packets.
    pub uwsgi_allow_ips: AddrList,
    /// `timeout`: the worker timeout, and how long a client may take to send a request
    /// head or accept bytes. None when `timeout` is 0.
    pub timeout: Option<Duration>,
    /// `keepalive`; None when keep-alive is off.
    pub keepalive: Option<Duration>,
    pub graceful_timeout: Duration,
    pub asgi: AsgiSettings,
}

impl Serving {
    /// The deadline for a request to arrive or a response to be taken: `timeout`, or 30 s
    /// when `timeout` is 0 (the worker timeout is off, but a silent client still may not
    /// hold a connection forever).
    pub fn io_deadline(&self) -> Duration {
        self.timeout.unwrap_or(Duration::from_secs(30))
    }
}

/// One `static_mount`: requests whose decoded path is `prefix` or under `prefix/` are
/// answered from the files under `root`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticMount {
    /// `/` and segments, no trailing slash (`/static`).
    pub prefix: String,
    /// The directory's real path, resolved at load.
    pub root: std::path::PathBuf,
}

/// `static_mount` and `static_max_age`.
#[derive(Debug, Clone, Default)]
pub struct StaticSettings {
    /// Longest prefix first; empty when nothing is mounted.
    pub mounts: Vec<StaticMount>,
    /// `static_max_age` in seconds (0: `Cache-Control: no-cache`).
    pub max_age: u64,
}

/// Everything resolved from one `Config`.
#[derive(Debug, Clone, Default)]
pub struct Resolved {
    /// None for a worker class this release does not implement.
    pub worker_kind: Option<WorkerKind>,
    pub reload_engine: ReloadEngine,
    pub serving: Serving,
    pub statics: StaticSettings,
}

/// The spellings of the threaded worker.
pub(crate) fn is_gthread_worker(name: &str) -> bool {
    matches!(
        name,
        "gthread"
            | "egg:gunicorn#gthread"
            | "gunicorn.workers.gthread.ThreadWorker"
            | "ferrocorn.workers.gthread.ThreadWorker"
    )
}

/// The spellings of the ASGI worker: Gunicorn 27's own and Uvicorn's worker classes, which
/// users name in existing deployments.
pub(crate) fn is_asgi_worker(name: &str) -> bool {
    matches!(
        name,
        "asgi"
            | "egg:gunicorn#asgi"
            | "gunicorn.workers.gasgi.ASGIWorker"
            | "ferrocorn.workers.asgi.ASGIWorker"
            | "uvicorn.workers.UvicornWorker"
            | "uvicorn.workers.UvicornH11Worker"
            | "uvicorn_worker.UvicornWorker"
            | "uvicorn_worker.UvicornH11Worker"
    )
}

/// The spellings of the gevent worker. `gevent_wsgi` and `gevent_pywsgi` are Gunicorn's
/// worker on gevent's own pywsgi server; here they run the same worker as `gevent`.
pub(crate) fn is_gevent_worker(name: &str) -> bool {
    matches!(
        name,
        "gevent"
            | "gevent_wsgi"
            | "gevent_pywsgi"
            | "egg:gunicorn#gevent"
            | "egg:gunicorn#gevent_wsgi"
            | "egg:gunicorn#gevent_pywsgi"
            | "gunicorn.workers.ggevent.GeventWorker"
            | "gunicorn.workers.ggevent.GeventPyWSGIWorker"
            | "ferrocorn.workers.ggevent.GeventWorker"
    )
}

/// Uvicorn's h11 worker names, which force the asyncio loop.
pub(crate) fn is_h11_worker(name: &str) -> bool {
    name.ends_with(".UvicornH11Worker")
}

/// The spellings of the synchronous worker.
pub(crate) fn is_sync_worker(name: &str) -> bool {
    matches!(
        name,
        "sync"
            | "egg:gunicorn#sync"
            | "gunicorn.workers.sync.SyncWorker"
            | "ferrocorn.workers.sync.SyncWorker"
    )
}
