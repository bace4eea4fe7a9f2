//! The master's side of the dirty arbiter (`dirty_apps` with `dirty_workers` > 0): where its
//! socket lives, forking it before the HTTP workers, respawning it when it dies, forwarding
//! HUP and USR1, and stopping it after the HTTP workers so their last requests can still
//! call it. Gunicorn's process model, without its orphans: the arbiter gets SIGTERM when the
//! master dies (and its own workers the same from it), and it never holds the HTTP
//! listeners.
//!
//! Owns: the private socket directory, the arbiter's pid and respawn pacing, and the
//! environment the HTTP workers read to reach it. Must not touch: what runs inside the
//! arbiter and its workers (Python, `ferrocorn.dirty`), and the app modules, which the
//! master never imports.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use pyo3::prelude::*;
use serde_json::Value;

use super::control::{DirtyControl, NoDirtyArbiter};
use super::Arbiter;
use crate::config::Config;
use crate::errors::{Error, Result};
use crate::sys::process::{self, Forked};
use crate::telemetry::error_log;

/// The environment variable request workers find the arbiter's socket by (Gunicorn's name,
/// so code that reads it keeps working).
pub const SOCKET_ENV: &str = "GUNICORN_DIRTY_SOCKET";
/// The client's default timeout follows `dirty_timeout` through this.
pub const TIMEOUT_ENV: &str = "FERROCORN_DIRTY_TIMEOUT";
/// A respawn waits this long after the previous spawn, doubled for each arbiter in a row that
/// died within `QUICK_DEATH` of its start (up to `RESPAWN_PACE_MAX`), so an arbiter that
/// cannot start does not make the master fork in a tight loop.
const RESPAWN_PACE: Duration = Duration::from_secs(1);
const RESPAWN_PACE_MAX: Duration = Duration::from_secs(30);
const QUICK_DEATH: Duration = Duration::from_secs(5);
/// How long the control socket waits for the arbiter's answer: the master's loop waits
/// with it. STATUS is Gunicorn's 2 s; MANAGE (Gunicorn: 10 s) only forks, so 5 s is ample.
/// A MANAGE that times out is answered `success: false`, though the arbiter may still do it.
const STATUS_TIMEOUT: f64 = 2.0;
const MANAGE_TIMEOUT: f64 = 5.0;
/// After an answer that took (nearly) the whole timeout, dirty commands fail at once for
/// this long.
const QUIET_AFTER_SLOW: Duration = Duration::from_secs(10);

/// What the master keeps of the dirty arbiter while dirty apps are configured.
pub(crate) struct DirtyArbiterProc {
    /// Private (0700) directory holding the socket: the same path for the master's whole
    /// life, so request workers reach a respawned arbiter without being told.
    dir: PathBuf,
    socket: PathBuf,
    pid: Option<i32>,
    spawned: Option<Instant>,
    /// Arbiters in a row that died soon after starting (see `RESPAWN_PACE`).
    quick_deaths: u32,
    /// Replaced arbiters still finishing their calls (a HUP changed the dirty settings or
    /// turned dirty apps off), each with the time it is killed at if still there.
    retiring: Vec<(i32, Instant)>,
    /// Dirty apps are configured: a dead arbiter is respawned. Off after a HUP removed
    /// them, while the old arbiter finishes its calls; the directory goes when it has.
    on: bool,
    /// The arbiter was slow to answer the control socket: until then, the dirty commands
    /// fail at once instead of holding the master's loop again.
    quiet_until: Option<Instant>,
    /// The settings the running arbiter was started with; a HUP that changes them replaces
    /// it instead of forwarding the signal.
    settings: DirtySettings,
    /// The master that made `dir`: forked children never remove it.
    owner: i32,
}

#[derive(PartialEq, Debug, Clone)]
struct DirtySettings {
    apps: Vec<String>,
    workers: i64,
    timeout: i64,
    threads: i64,
    graceful_timeout: i64,
    hooks: [bool; 4],
}

impl DirtySettings {
    fn of(cfg: &Config) -> Self {
        DirtySettings {
            apps: cfg.dirty_apps.clone(),
            workers: cfg.dirty_workers,
            timeout: cfg.dirty_timeout,
            threads: cfg.dirty_threads,
            graceful_timeout: cfg.dirty_graceful_timeout,
            hooks: [
                cfg.on_dirty_starting.is_some(),
                cfg.dirty_post_fork.is_some(),
                cfg.dirty_worker_init.is_some(),
                cfg.dirty_worker_exit.is_some(),
            ],
        }
    }
}

/// Gunicorn runs the dirty arbiter iff both are set.
pub(crate) fn enabled(cfg: &Config) -> bool {
    cfg.dirty_workers > 0 && !cfg.dirty_apps.is_empty()
}

impl DirtyArbiterProc {
    fn new(cfg: &Config) -> Result<Self> {
        let template = std::env::temp_dir().join("ferrocorn-dirty-XXXXXX");
        let dir = nix::unistd::mkdtemp(&template).map_err(|e| {
            Error::Config(format!(
                "dirty arbiter: cannot create its socket directory under {}: {e}",
                std::env::temp_dir().display()
            ))
        })?;
        let socket = dir.join("arbiter.sock");
        Ok(DirtyArbiterProc {
            dir,
            socket,
            pid: None,
            spawned: None,
            quick_deaths: 0,
            retiring: Vec::new(),
            on: true,
            quiet_until: None,
            settings: DirtySettings::of(cfg),
            owner: process::getpid(),
        })
    }

    fn signal(&mut self, sig: Signal) {
        if let Some(pid) = self.pid {
            if let Err(nix::errno::Errno::ESRCH) = kill(Pid::from_raw(pid), sig) {
                self.pid = None;
            }
        }
    }

    /// Every arbiter process still there: the current one and any retiring.
    fn all_pids(&self) -> Vec<i32> {
        let retiring = self.retiring.iter().map(|(pid, _)| *pid);
        self.pid.iter().copied().chain(retiring).collect()
    }

    /// TERM the current arbiter and let it finish its calls within `grace`.
    fn retire(&mut self, grace: Duration) {
        self.signal(Signal::SIGTERM);
        if let Some(old) = self.pid.take() {
            self.retiring.push((old, Instant::now() + grace));
        }
    }

    /// KILL retiring arbiters past their deadline (they are reaped later).
    fn kill_overdue(&mut self) {
        let now = Instant::now();
        for (pid, deadline) in &mut self.retiring {
            if now >= *deadline {
                let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
                *deadline = now + Duration::from_secs(3600);
            }
        }
    }

    /// Forget `pid` if it is one of ours (it has been reaped); whether it was.
    fn forget(&mut self, pid: i32, status: Option<&WaitStatus>) -> bool {
        if self.pid == Some(pid) {
            self.pid = None;
            let quick = self.spawned.is_some_and(|t| t.elapsed() < QUICK_DEATH);
            self.quick_deaths = if quick { self.quick_deaths + 1 } else { 0 };
        } else if let Some(at) = self.retiring.iter().position(|(p, _)| *p == pid) {
            self.retiring.remove(at);
        } else {
            return false;
        }
        if let Some(status) = status {
            report_exit(pid, status);
        }
        true
    }

    /// Reap whichever of our arbiters have exited.
    fn reap(&mut self) {
        for pid in self.all_pids() {
            match waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => {}
                Ok(status) => {
                    self.forget(pid, Some(&status));
                }
                Err(_) => {
                    self.forget(pid, None);
                }
            }
        }
    }

    /// How long after the last spawn the next may come.
    fn pace(&self) -> Duration {
        RESPAWN_PACE
            .saturating_mul(1 << self.quick_deaths.saturating_sub(1).min(5))
            .min(RESPAWN_PACE_MAX)
    }

    /// Remove the socket directory (the master's own, at its exit).
    fn remove_dir(&self) {
        if process::getpid() != self.owner {
            return;
        }
        let _ = std::fs::remove_file(&self.socket);
        let _ = std::fs::remove_dir(&self.dir);
    }
}

fn report_exit(pid: i32, status: &WaitStatus) {
    match status {
        WaitStatus::Exited(_, 0) => error_log::info(&format!("Dirty arbiter (pid:{pid}) exited")),
        WaitStatus::Exited(_, code) => error_log::error(&format!(
            "Dirty arbiter (pid:{pid}) exited with code {code}"
        )),
        WaitStatus::Signaled(_, sig, _) => error_log::warning(&format!(
            "Dirty arbiter (pid:{pid}) killed by signal {}",
            *sig as i32
        )),
        _ => {}
    }
}

/// The control socket's view (`show dirty`, `show all`, `dirty add|remove`): each a short
/// round trip to the arbiter's socket through `ferrocorn.dirty.control`, with Gunicorn's
/// timeouts (`STATUS_TIMEOUT`, `MANAGE_TIMEOUT`).
impl DirtyControl for DirtyArbiterProc {
    fn pid(&self) -> Option<i32> {
        self.pid
    }

    fn show(&mut self) -> std::result::Result<(Vec<Value>, Vec<Value>), String> {
        let status = self.ask("status", &[], STATUS_TIMEOUT)?;
        let list = |key: &str| match status.get(key) {
            Some(Value::Array(items)) => items.clone(),
            _ => Vec::new(),
        };
        Ok((list("workers"), list("apps")))
    }

    fn status_workers(&mut self) -> Vec<Value> {
        self.show().map(|(workers, _)| workers).unwrap_or_default()
    }

    fn manage(&mut self, add: bool, count: i64) -> Value {
        let op = if add { "add" } else { "remove" };
        self.ask("manage", &[op.into(), count.into()], MANAGE_TIMEOUT)
            .unwrap_or_else(|e| serde_json::json!({"success": false, "error": e}))
    }
}

impl DirtyArbiterProc {
    /// `ferrocorn.dirty.control.<what>(socket, *args)`, its answer as JSON; both ways
    /// through `json`, as the answer is JSON-shaped anyway.
    fn ask(
        &mut self,
        what: &str,
        args: &[Value],
        timeout: f64,
    ) -> std::result::Result<Value, String> {
        if let Some(until) = self.quiet_until.filter(|t| Instant::now() < *t) {
            return Err(format!(
                "the dirty arbiter did not answer in time; not asked again for {} s",
                until
                    .saturating_duration_since(Instant::now())
                    .as_secs_f64()
                    .ceil()
            ));
        }
        let mut all = args.to_vec();
        all.push(timeout.into());
        let started = Instant::now();
        let answer = self.ask_now(what, &all);
        // A stopped or stuck arbiter costs the master's loop one timeout, not one per
        // command: the next ones fail at once for a while.
        if started.elapsed().as_secs_f64() >= timeout * 0.9 {
            self.quiet_until = Some(Instant::now() + QUIET_AFTER_SLOW);
        }
        answer
    }

    fn ask_now(&self, what: &str, args: &[Value]) -> std::result::Result<Value, String> {
        let mut all = vec![Value::String(self.socket.to_string_lossy().into_owned())];
        all.extend_from_slice(args);
        let all = Value::Array(all).to_string();
        Python::attach(|py| -> PyResult<String> {
            let json = py.import("json")?;
            let all = py
                .import("builtins")?
                .getattr("tuple")?
                .call1((json.call_method1("loads", (all,))?,))?
                .cast_into::<pyo3::types::PyTuple>()?;
            let answer = py
                .import("ferrocorn.dirty.control")?
                .getattr(what)?
                .call1(all)?;
            json.call_method1("dumps", (answer,))?.extract()
        })
        .map_err(|e| Python::attach(|py| e.value(py).to_string()))
        .and_then(|text| serde_json::from_str(&text).map_err(|e| e.to_string()))
    }
}

/// Tell the request workers forked from now on where the arbiter is and how long a call may
/// take (`None`: dirty apps are off, so they see neither).
fn export_env(py: Python<'_>, dirty: Option<(&Path, i64)>) -> PyResult<()> {
    let environ = py.import("os")?.getattr("environ")?;
    match dirty {
        Some((socket, timeout)) => {
            environ.set_item(SOCKET_ENV, socket.to_string_lossy().into_owned())?;
            environ.set_item(TIMEOUT_ENV, timeout.to_string())?;
        }
        None => {
            for key in [SOCKET_ENV, TIMEOUT_ENV] {
                if environ.contains(key)? {
                    environ.del_item(key)?;
                }
            }
        }
    }
    Ok(())
}

impl Arbiter<'_> {
    /// The control socket's handle on the dirty arbiter, whether or not dirty apps are on.
    pub(super) fn with_dirty<R>(&mut self, f: impl FnOnce(&mut dyn DirtyControl) -> R) -> R {
        match self.dirty.as_mut() {
            Some(d) => f(d),
            None => f(&mut NoDirtyArbiter),
        }
    }

    /// How long a stopping arbiter may take: the longer of the grace it was started with and
    /// the current one (a HUP may have shortened it, or dropped the dirty settings).
    fn dirty_grace(&self) -> Duration {
        let started = self
            .dirty
            .as_ref()
            .map_or(0, |d| d.settings.graceful_timeout);
        Duration::from_secs(started.max(self.cfg.dirty_graceful_timeout).max(0) as u64)
    }

    pub(super) fn dirty_pid(&self) -> Option<i32> {
        self.dirty.as_ref().and_then(|d| d.pid)
    }

    /// At start-up, before the first HTTP worker: make the socket directory, export it and
    /// fork the arbiter.
    pub(super) fn start_dirty(&mut self) -> Result<()> {
        if !enabled(&self.cfg) {
            return Ok(());
        }
        let proc = DirtyArbiterProc::new(&self.cfg)?;
        export_env(self.py, Some((&proc.socket, self.cfg.dirty_timeout)))?;
        self.dirty = Some(proc);
        self.spawn_dirty_arbiter()
    }

    /// Gunicorn's `manage_dirty_arbiter`: respawn a dead arbiter (paced).
    pub(super) fn manage_dirty_arbiter(&mut self) -> Result<()> {
        let Some(d) = &mut self.dirty else {
            return Ok(());
        };
        d.reap();
        d.kill_overdue();
        if !d.on {
            if d.retiring.is_empty() {
                if let Some(d) = self.dirty.take() {
                    d.remove_dir();
                }
            }
            return Ok(());
        }
        if d.pid.is_some() || d.spawned.is_some_and(|t| t.elapsed() < d.pace()) {
            return Ok(());
        }
        error_log::info("Spawning dirty arbiter...");
        self.spawn_dirty_arbiter()
    }

    /// Whether `pid` was the dirty arbiter; if so it is forgotten (the caller reaped it).
    pub(super) fn reaped_dirty_arbiter(&mut self, pid: i32, status: &WaitStatus) -> bool {
        self.dirty
            .as_mut()
            .is_some_and(|d| d.forget(pid, Some(status)))
    }

    fn spawn_dirty_arbiter(&mut self) -> Result<()> {
        let py = self.py;
        let Some(d) = &mut self.dirty else {
            return Ok(());
        };
        d.spawned = Some(Instant::now());
        d.settings = DirtySettings::of(&self.cfg);
        d.quiet_until = None;
        let socket = d.socket.to_string_lossy().into_owned();
        match process::fork(py)? {
            Forked::Parent(pid) => {
                d.pid = Some(pid);
                error_log::info(&format!("Spawned dirty arbiter (pid: {pid}) at {socket}"));
                Ok(())
            }
            Forked::Child => Err(Error::Exit(self.run_dirty_arbiter(&socket))),
        }
    }

    /// In the forked child: shed everything that is the master's, then run the arbiter.
    fn run_dirty_arbiter(&mut self, socket: &str) -> i32 {
        let py = self.py;
        let master = self.pid;
        // The HTTP listeners stay with the master and its request workers: an arbiter
        // holding them would keep the port bound after the master is gone.
        self.listeners.clear();
        self.signals = None;
        self.control.forget_in_child();
        self.metrics = super::metrics::MasterMetrics::off();
        self.pidfile = None;
        self.dirty = None;
        super::signals::clear_wakeup_fd(py);
        let reset = reset_signal_handlers(py);
        process::unblock_signals();
        let parent_alive = process::die_with_parent(Signal::SIGTERM, master);
        process::set_title(py, &format!("dirty-arbiter [{}]", self.cfg.proc_name()));
        match (reset, parent_alive) {
            (Err(e), _) => {
                error_log::error(&format!("Dirty arbiter could not reset its signals: {e}"));
                return 1;
            }
            (_, Err(e)) => {
                error_log::error(&format!("Dirty arbiter could not watch its master: {e}"));
                return 1;
            }
            (_, Ok(false)) => return 0,
            _ => {}
        }
        let ran = py.import("ferrocorn.dirty.arbiter").and_then(|m| {
            m.call_method1(
                "run",
                (
                    self.cfg_obj.clone_ref(py),
                    self.log.clone_ref(py),
                    socket,
                    master,
                ),
            )?
            .extract::<i32>()
        });
        match ran {
            Ok(code) => code,
            Err(e) if crate::wsgi::app::system_exit_code(py, &e).is_some() => {
                crate::wsgi::app::system_exit_code(py, &e).unwrap_or(1)
            }
            Err(e) => {
                error_log::error(&format!(
                    "Exception in dirty arbiter process\n{}",
                    crate::wsgi::app::format_traceback(py, &e)
                ));
                1
            }
        }
    }

    /// USR1: the arbiter reopens its logs too.
    pub(super) fn forward_to_dirty_arbiter(&mut self, sig: Signal) {
        if let Some(d) = &mut self.dirty {
            // Retiring arbiters write logs too, for as long as they finish calls.
            for pid in d.all_pids() {
                let _ = kill(Pid::from_raw(pid), sig);
            }
        }
    }

    /// After a HUP has installed the new configuration: the same dirty settings reload the
    /// dirty workers (the arbiter starts fresh ones, then retires the old); changed settings
    /// replace the arbiter itself, which is respawned with them; dirty apps turned on or off
    /// start or stop it.
    pub(super) fn reload_dirty(&mut self) -> Result<()> {
        let on = enabled(&self.cfg);
        // The old arbiter's calls get its grace (plus a second to reap its workers), counted
        // by the master's loop, which keeps serving meanwhile.
        let grace = self.dirty_grace() + Duration::from_secs(1);
        match (&mut self.dirty, on) {
            (None, false) => Ok(()),
            (None, true) => self.start_dirty(),
            (Some(d), false) => {
                if d.on {
                    d.on = false;
                    d.retire(grace);
                }
                export_env(self.py, None)?;
                Ok(())
            }
            (Some(d), true) => {
                export_env(self.py, Some((&d.socket, self.cfg.dirty_timeout)))?;
                if d.on && d.pid.is_some() && d.settings == DirtySettings::of(&self.cfg) {
                    d.signal(Signal::SIGHUP);
                    return Ok(());
                }
                if d.pid.is_some() {
                    error_log::info("Dirty arbiter settings changed: replacing the dirty arbiter");
                }
                // The new arbiter takes the socket path over at once; the old one finishes
                // the calls it has and leaves.
                d.on = true;
                d.retire(grace);
                self.spawn_dirty_arbiter()
            }
        }
    }

    /// Stop the arbiter: TERM (QUIT when quick) and wait up to `dirty_graceful_timeout`,
    /// then KILL. Called once the HTTP workers are gone, so their last requests could still
    /// make dirty calls.
    pub(super) fn stop_dirty_arbiter(&mut self, graceful: bool) {
        let grace = self.dirty_grace();
        let Some(d) = &mut self.dirty else {
            return;
        };
        let sig = if graceful {
            Signal::SIGTERM
        } else {
            Signal::SIGQUIT
        };
        let signal_all = |d: &mut DirtyArbiterProc, sig| {
            for pid in d.all_pids() {
                let _ = kill(Pid::from_raw(pid), sig);
            }
        };
        signal_all(d, sig);
        // The arbiter needs a little longer than its workers' grace to reap them and leave.
        let limit = Instant::now() + grace + Duration::from_secs(1);
        while !d.all_pids().is_empty() && Instant::now() < limit {
            d.reap();
            std::thread::sleep(Duration::from_millis(50));
        }
        signal_all(d, Signal::SIGKILL);
        for pid in d.all_pids() {
            let status = waitpid(Pid::from_raw(pid), None).ok();
            d.forget(pid, status.as_ref());
        }
    }

    /// At the master's exit: stop the arbiter and remove its socket directory.
    pub(super) fn halt_dirty(&mut self, graceful: bool) {
        self.stop_dirty_arbiter(graceful);
        if let Some(d) = self.dirty.take() {
            d.remove_dir();
        }
    }
}

/// The master's no-op Python handlers would swallow TERM and friends in the arbiter until
/// its own event loop installs handlers: every signal the master handled gets its default
/// action back (an early TERM, INT or QUIT is fatal, as it should be), except the ones the
/// master forwards or a user sends the arbiter (HUP, USR1, TTIN, TTOU), whose default
/// action would kill it: those are ignored until `ferrocorn.dirty.arbiter.run`, which
/// remembers them until its loop can handle them.
fn reset_signal_handlers(py: Python<'_>) -> PyResult<()> {
    let signal = py.import("signal")?;
    let dfl = signal.getattr("SIG_DFL")?;
    let ign = signal.getattr("SIG_IGN")?;
    for sig in super::signals::HANDLED {
        let forwarded = matches!(
            sig,
            Signal::SIGHUP | Signal::SIGUSR1 | Signal::SIGTTIN | Signal::SIGTTOU
        );
        let action = if forwarded { &ign } else { &dfl };
        signal.call_method1("signal", (sig as i32, action))?;
    }
    Ok(())
}
