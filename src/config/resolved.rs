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
    /// `timeout`: the worker timeout, and how long a client may take to send a request
    /// head or accept bytes. None when `timeout` is 0.
    pub timeout: Option<Duration>,
    /// `keepalive`; None when keep-alive is off.
    pub keepalive: Option<Duration>,
    pub graceful_timeout: Duration,
}

impl Serving {
    /// The deadline for a request to arrive or a response to be taken: `timeout`, or 30 s
    /// when `timeout` is 0 (the worker timeout is off, but a silent client still may not
    /// hold a connection forever).
    pub fn io_deadline(&self) -> Duration {
        self.timeout.unwrap_or(Duration::from_secs(30))
    }
}

/// Everything resolved from one `Config`.
#[derive(Debug, Clone, Default)]
pub struct Resolved {
    /// None for a worker class this release does not implement.
    pub worker_kind: Option<WorkerKind>,
    pub reload_engine: ReloadEngine,
    pub serving: Serving,
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
