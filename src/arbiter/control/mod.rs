//! The control socket (Gunicorn 27's `control_socket`, what `gunicornc` talks to): its
//! life in the master, from the first bind after the initial workers are spawned to the
//! stop, the USR2 hand-over, the counters `show stats` reports, and the seam through which
//! the dirty arbiter answers the `dirty` commands.
//!
//! Owns: whether and where the socket is listening, and the queue of signals that
//! `reload`/`reopen`/`shutdown` hand to the master's loop. Must not touch: workers and
//! listeners (`control::commands` reads and changes them through the arbiter's own
//! methods).

mod commands;
pub mod protocol;
mod server;

use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::poll::PollFlags;
use nix::sys::signal::Signal;
use serde_json::Value;

use crate::config::Config;
use crate::telemetry::error_log;
use server::{py_os_error, BindError, ControlServer};

/// How often the new master of a USR2 upgrade tries again for the socket the old one holds.
const RETRY_EVERY: Duration = Duration::from_secs(1);

/// The dirty arbiter as the control socket sees it: `arbiter::dirty`'s process handle, or
/// `NoDirtyArbiter` when dirty apps are off (`Arbiter::with_dirty`). `pid()` says whether it
/// runs now: `None` while it is down or being respawned. Every method runs on the master's
/// loop thread, with the GIL held: keep them short (a local socket round trip with a
/// timeout: `arbiter::dirty`'s 2 s STATUS and 5 s MANAGE). The commands call them only
/// while `pid()` is `Some`, and otherwise give Gunicorn's "not running" replies
/// (`commands.rs`: `show_dirty`, `dirty_command`, `show_all`, `show_stats`).
pub trait DirtyControl {
    /// The dirty arbiter's pid while it runs (`show stats`' `dirty_arbiter_pid`).
    fn pid(&self) -> Option<i32>;
    /// `show dirty`: the `workers` and `apps` arrays (Gunicorn's shapes: workers
    /// `{pid, age, apps, booted, last_heartbeat}`, apps `{import_path, worker_count,
    /// current_workers, worker_pids}`). An `Err` becomes `Command failed: <text>`.
    fn show(&mut self) -> Result<(Vec<Value>, Vec<Value>), String>;
    /// `show all`'s `dirty_workers`: what the dirty arbiter's STATUS answer lists; empty
    /// when it cannot be asked (Gunicorn's rule).
    fn status_workers(&mut self) -> Vec<Value>;
    /// `dirty add|remove N` (N >= 1): the MANAGE answer's `result`, or
    /// `{"success": false, "error": ...}` when it failed (still an ok reply, as in Gunicorn).
    fn manage(&mut self, add: bool, count: i64) -> Value;
}

/// No dirty arbiter configured.
pub struct NoDirtyArbiter;

impl DirtyControl for NoDirtyArbiter {
    fn pid(&self) -> Option<i32> {
        None
    }
    fn show(&mut self) -> Result<(Vec<Value>, Vec<Value>), String> {
        Ok((Vec::new(), Vec::new()))
    }
    fn status_workers(&mut self) -> Vec<Value> {
        Vec::new()
    }
    fn manage(&mut self, _add: bool, _count: i64) -> Value {
        serde_json::json!({"success": false, "error": "Dirty arbiter not running"})
    }
}

pub struct Control {
    server: Option<ControlServer>,
    /// A path the old master of a USR2 upgrade still answers on; bound once it stops.
    pending: Option<(PathBuf, u32)>,
    next_retry: Instant,
    /// Signals asked for by `reload`, `reopen` and `shutdown`, for the loop to handle.
    signals: Vec<Signal>,
    started: Instant,
    workers_killed: u64,
    reloads: u64,
}

impl Control {
    pub fn new() -> Self {
        Control {
            server: None,
            pending: None,
            next_retry: Instant::now(),
            signals: Vec::new(),
            started: Instant::now(),
            workers_killed: 0,
            reloads: 0,
        }
    }

    /// Open the socket `cfg` asks for (Gunicorn does this once the first workers are up).
    /// Nothing here is fatal: a failure is logged and the server runs without it.
    pub fn start(&mut self, cfg: &Config, upgrading: bool) {
        if cfg.control_socket_disable {
            error_log::debug("Control socket disabled");
            return;
        }
        let path = match std::env::current_dir() {
            Ok(cwd) => cwd.join(&cfg.control_socket),
            Err(_) => PathBuf::from(&cfg.control_socket),
        };
        let mode = (cfg.control_socket_mode.clamp(0, 0o7777)) as u32;
        match ControlServer::bind(&path, mode) {
            Ok(server) => self.listening(server),
            Err(BindError::InUse) if upgrading => {
                error_log::info(&format!(
                    "Control socket {} is still the old master's; taking it over once that one stops",
                    path.display()
                ));
                self.pending = Some((path, mode));
                self.next_retry = Instant::now() + RETRY_EVERY;
            }
            Err(e) => refused(&path, e),
        }
    }

    fn listening(&mut self, server: ControlServer) {
        error_log::info(&format!(
            "Control socket listening at {}",
            server.path().display()
        ));
        self.server = Some(server);
    }

    /// The descriptors the master's loop waits on for the control socket.
    pub fn poll_fds(&self) -> Vec<(BorrowedFd<'_>, PollFlags)> {
        self.server
            .as_ref()
            .map(ControlServer::poll_fds)
            .unwrap_or_default()
    }

    /// Binds a path left pending by `start` once its old owner no longer answers.
    fn retry_bind(&mut self) {
        let Some((path, mode)) = &self.pending else {
            return;
        };
        if Instant::now() < self.next_retry {
            return;
        }
        self.next_retry = Instant::now() + RETRY_EVERY;
        match ControlServer::bind(path, *mode) {
            Ok(server) => {
                self.pending = None;
                self.listening(server);
            }
            Err(BindError::InUse) => {}
            Err(e) => {
                refused(path, e);
                self.pending = None;
            }
        }
    }

    /// Stop listening and remove the socket file if it is still ours.
    pub fn close(&mut self) {
        self.server = None;
        self.pending = None;
    }

    /// In a forked worker: the socket is the master's (dropping closes this copy; the file
    /// stays, see `ControlServer`'s drop).
    pub fn forget_in_child(&mut self) {
        self.close();
        self.signals.clear();
    }

    /// `show stats`' `workers_killed` counts TERM and KILL sent to a worker, as Gunicorn does.
    pub fn count_kill(&mut self, sig: Signal, sent: bool) {
        if sent && matches!(sig, Signal::SIGTERM | Signal::SIGKILL) {
            self.workers_killed += 1;
        }
    }

    pub fn count_reload(&mut self) {
        self.reloads += 1;
    }
}

impl Default for Control {
    fn default() -> Self {
        Control::new()
    }
}

fn refused(path: &Path, e: BindError) {
    match e {
        BindError::InUse => error_log::warning(&format!(
            "Control socket {} is in use by another running server; not starting the control socket",
            path.display()
        )),
        BindError::NotASocket => error_log::warning(&format!(
            "Control socket not started: {} exists and is not a socket (left as it is)",
            path.display()
        )),
        BindError::Io(e) => error_log::error(&format!("Control server error: {}", py_os_error(&e))),
    }
}

/// On HUP the socket keeps its path and mode, as in Gunicorn; say so when they changed.
pub fn warn_if_changed(old: &Config, new: &Config) {
    if old.control_socket != new.control_socket
        || old.control_socket_mode != new.control_socket_mode
        || old.control_socket_disable != new.control_socket_disable
    {
        error_log::warning(
            "control_socket settings changed; the control socket keeps its path and mode until a restart or upgrade (USR2)",
        );
    }
}
