//! Keeping the right number of healthy workers: spawn (fork), manage, kill, reap, the
//! hand-over that retires a worker only once its replacement has booted, and the checks that
//! abort workers silent for longer than `timeout` or booting for longer than `boot_timeout`.

use std::os::fd::AsFd;

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::metrics::{MasterMetrics, WorkerView};
use super::{Arbiter, WorkerRec};
use crate::errors::{exit, Error, Result};
use crate::sys::process::{self, Forked};
use crate::telemetry::prometheus::RestartReason;
use crate::telemetry::{error_log, pyroute, statsd};
use crate::workers::{run_worker, WorkerContext};

impl Arbiter<'_> {
    fn workers_dict(&self) -> Option<Bound<'_, PyDict>> {
        self.server
            .getattr(self.py, "WORKERS")
            .ok()
            .and_then(|w| w.into_bound(self.py).cast_into::<PyDict>().ok())
    }

    fn active_count(&self) -> usize {
        self.workers
            .values()
            .filter(|w| !w.retiring && !w.replaced)
            .count()
    }

    pub(super) fn manage_workers(&mut self) -> Result<()> {
        let before = self.active_count();
        while (self.active_count() as i64) < self.num_workers {
            self.spawn_worker()?;
        }
        let mut by_age: Vec<(u64, i32)> = self
            .workers
            .iter()
            .filter(|(_, w)| !w.retiring && !w.replaced)
            .map(|(pid, w)| (w.age, *pid))
            .collect();
        by_age.sort_unstable();
        let excess = by_age
            .len()
            .saturating_sub(self.num_workers.max(0) as usize);
        for (_, pid) in by_age.into_iter().take(excess) {
            if let Some(w) = self.workers.get_mut(&pid) {
                w.retiring = true;
            }
            self.kill_worker(pid, Signal::SIGTERM);
        }
        let after = self.active_count();
        if after != before {
            let msg = format!("{after} workers");
            // Gunicorn's arbiter logs this with the workers gauge attached for StatsD.
            if !pyroute::metric(&msg, "gunicorn.workers", after as i64, "gauge") {
                error_log::debug(&msg);
                if statsd::enabled() {
                    statsd::gauge("gunicorn.workers", &after.to_string());
                }
            }
            self.workers_reported = true;
        }
        Ok(())
    }

    /// Once per loop: the workers gauge again (Gunicorn sends it only when the count
    /// changes, so a collector that expires idle gauges shows 0 workers), and the listen
    /// backlog when `enable_backlog_metric` is on.
    pub(super) fn report_gauges(&mut self) {
        // The loop also wakes for signals and scrapes; the gauges keep to about one a second.
        if self
            .gauges_sent
            .is_some_and(|at| at.elapsed() < std::time::Duration::from_secs(1))
        {
            return;
        }
        self.gauges_sent = Some(std::time::Instant::now());
        if !std::mem::take(&mut self.workers_reported) {
            let n = self.active_count() as i64;
            if statsd::enabled() {
                statsd::gauge("gunicorn.workers", &n.to_string());
            } else {
                pyroute::gauge("gunicorn.workers", n);
            }
        }
        if !self.cfg.enable_backlog_metric {
            return;
        }
        let backlog: i64 = self.accept_queues().map(|(_, n)| i64::from(n)).sum();
        let msg = format!("socket backlog: {backlog}");
        if !pyroute::metric(&msg, "gunicorn.backlog", backlog, "histogram") {
            error_log::debug(&msg);
            if statsd::enabled() {
                statsd::histogram("gunicorn.backlog", &backlog.to_string());
            }
        }
    }

    pub(super) fn spawn_worker(&mut self) -> Result<()> {
        let py = self.py;
        self.worker_age += 1;
        let age = self.worker_age;
        self.server.setattr(py, "worker_age", age)?;
        let slot = self
            .hb
            .allocate()
            .ok_or_else(|| Error::Config("too many workers for the heartbeat table".into()))?;
        let jitter = if self.cfg.max_requests_jitter > 0 {
            py.import("random")?
                .call_method1("randint", (0, self.cfg.max_requests_jitter))?
                .extract::<u64>()?
        } else {
            0
        };
        let max_requests = if self.cfg.max_requests > 0 {
            self.cfg.max_requests as u64 + jitter
        } else {
            u64::MAX
        };
        let kw = PyDict::new(py);
        kw.set_item("age", age)?;
        kw.set_item("pid", "[booting]")?;
        kw.set_item("ppid", self.pid)?;
        kw.set_item("alive", true)?;
        kw.set_item("booted", false)?;
        kw.set_item("aborted", false)?;
        kw.set_item("nr", 0)?;
        // Gunicorn shows "no limit" as sys.maxsize.
        let shown_max = if self.cfg.max_requests > 0 {
            max_requests
        } else {
            i64::MAX as u64
        };
        kw.set_item("max_requests", shown_max)?;
        kw.set_item("timeout", self.cfg.timeout as f64 / 2.0)?;
        kw.set_item("cfg", self.cfg_obj.clone_ref(py))?;
        kw.set_item("log", self.log.clone_ref(py))?;
        // One application object shared with the server, as Gunicorn's worker.app is.
        kw.set_item("app", self.server.getattr(py, "app")?)?;
        kw.set_item(
            "sockets",
            crate::hooks::objects::listener_objects(py, &self.listeners)?,
        )?;
        kw.set_item(
            "tmp",
            crate::hooks::objects::worker_tmp(py, self.hb.handle(slot))?,
        )?;
        let obj = py
            .import("ferrocorn._objects")?
            .getattr("Worker")?
            .call((), Some(&kw))?
            .unbind();
        if let Some(h) = &self.cfg.pre_fork {
            h.call1(py, (self.server.clone_ref(py), obj.clone_ref(py)))?;
        }
        self.metrics.on_spawn(slot);
        match process::fork(py)? {
            Forked::Parent(pid) => {
                obj.setattr(py, "pid", pid)?;
                if let Some(d) = self.workers_dict() {
                    d.set_item(pid, obj.clone_ref(py))?;
                }
                self.workers.insert(
                    pid,
                    WorkerRec {
                        age,
                        slot,
                        aborted: false,
                        retiring: false,
                        replaced: false,
                        spawned: std::time::Instant::now(),
                        boot_reported_s: 0,
                        boot_observed: false,
                        obj,
                    },
                );
                Ok(())
            }
            Forked::Child => {
                // The master's signal pipe and queue belong to the master, and so does the
                // metrics listener; the worker keeps only its own slot.
                self.signals = None;
                self.control.forget_in_child();
                let metrics = std::mem::replace(&mut self.metrics, MasterMetrics::off());
                if let Some(handle) = metrics.into_worker_slot(slot) {
                    crate::telemetry::metrics::install_worker_slot(handle);
                }
                let ctx = WorkerContext {
                    cfg: &self.cfg,
                    listeners: &self.listeners,
                    age,
                    ppid: self.pid,
                    beat: self.hb.handle(slot),
                    preloaded: self.app.as_ref().map(|a| a.clone_ref(py)),
                    server: self.server.clone_ref(py),
                    worker: obj,
                    max_requests,
                };
                Err(Error::Exit(run_worker(py, ctx)))
            }
        }
    }

    pub(super) fn kill_worker(&mut self, pid: i32, sig: Signal) {
        let sent = kill(Pid::from_raw(pid), sig);
        self.control.count_kill(sig, sent.is_ok());
        if let Err(nix::errno::Errno::ESRCH) = sent {
            if let Some(w) = self.workers.remove(&pid) {
                let reason = self.restart_reason(&w);
                self.metrics.on_exit(w.slot, reason);
                self.hb.release(w.slot);
                if let Some(d) = self.workers_dict() {
                    let _ = d.del_item(pid);
                }
                if let Some(h) = &self.cfg.worker_exit {
                    let _ = h.call1(self.py, (self.server.clone_ref(self.py), w.obj));
                }
            }
        }
    }

    pub(super) fn kill_workers(&mut self, sig: Signal) {
        let pids: Vec<i32> = self.workers.keys().copied().collect();
        for pid in pids {
            self.kill_worker(pid, sig);
        }
    }

    pub(super) fn reap_workers(&mut self) -> Result<()> {
        loop {
            let status = match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => return Ok(()),
                Ok(s) => s,
            };
            let (pid, code, signal) = match status {
                WaitStatus::Exited(pid, code) => (pid.as_raw(), Some(code), None),
                WaitStatus::Signaled(pid, sig, _) => (pid.as_raw(), None, Some(sig)),
                _ => continue,
            };
            if pid == self.reexec_pid && pid != 0 {
                // The USR2 child master is gone (it failed to boot, or was stopped).
                self.reexec_pid = 0;
                let _ = self.server.setattr(self.py, "reexec_pid", 0);
                continue;
            }
            if !self.workers.contains_key(&pid) {
                error_log::debug(&format!(
                    "Reaped unknown child process (pid:{pid}, status:{status:?})"
                ));
                continue;
            }
            if let Some(sig) = signal {
                let msg = format!("Worker (pid:{pid}) was sent {}!", sig.as_str());
                match sig {
                    Signal::SIGKILL => error_log::error(&format!("{msg} Perhaps out of memory?")),
                    Signal::SIGTERM => error_log::info(&msg),
                    _ => error_log::warning(&msg),
                }
            }
            if let Some(code) = code.filter(|c| *c != 0) {
                error_log::error(&format!("Worker (pid:{pid}) exited with code {code}."));
            }
            let Some(w) = self.workers.remove(&pid) else {
                continue;
            };
            let reason = self.restart_reason(&w);
            self.metrics.on_exit(w.slot, reason);
            self.hb.release(w.slot);
            if let Some(d) = self.workers_dict() {
                let _ = d.del_item(pid);
            }
            // Like Gunicorn, a boot or app-load failure halts the server before child_exit.
            if code == Some(exit::WORKER_BOOT_ERROR) {
                return Err(Error::Halt {
                    reason: "Worker failed to boot.".into(),
                    status: exit::WORKER_BOOT_ERROR,
                });
            }
            if code == Some(exit::APP_LOAD_ERROR) {
                return Err(Error::Halt {
                    reason: "App failed to load.".into(),
                    status: exit::APP_LOAD_ERROR,
                });
            }
            if let Some(h) = &self.cfg.child_exit {
                if let Err(e) = h.call1(self.py, (self.server.clone_ref(self.py), w.obj)) {
                    error_log::error(&format!("Exception in child_exit hook: {e}"));
                }
            }
        }
    }

    /// Each TCP listener with the connections waiting in its accept queue. Unix listeners
    /// have no such reading; Gunicorn adds -1 for each instead, which skews sums.
    fn accept_queues(&self) -> impl Iterator<Item = (&crate::net::Listener, u32)> {
        self.listeners
            .iter()
            .filter_map(|l| Some((l, crate::sys::tcp::accept_queue_len(l.as_fd())?)))
    }

    /// Why a worker that is gone will be replaced, for the restart counters; None when it
    /// was asked to go for good (TTOU, fewer workers).
    fn restart_reason(&self, w: &WorkerRec) -> Option<RestartReason> {
        if w.aborted {
            Some(RestartReason::Timeout)
        } else if w.replaced && self.hb.retire_requested(w.slot) {
            Some(RestartReason::MaxRequests)
        } else if w.replaced {
            Some(RestartReason::Reload)
        } else if w.retiring {
            None
        } else {
            Some(RestartReason::Crash)
        }
    }

    /// The metrics endpoint's loop work: boot times of workers that just came up, a pending
    /// bind, and any scrape that is ready.
    pub(super) fn serve_metrics(&mut self) {
        if !self.metrics.enabled() {
            return;
        }
        if let Some(url) = self.metrics.retry_bind() {
            error_log::info(&format!("Metrics at: {url}"));
        }
        for w in self.workers.values_mut() {
            if !w.boot_observed && self.hb.booted(w.slot) {
                w.boot_observed = true;
                self.metrics.on_booted(w.spawned.elapsed());
            }
        }
        let views: Vec<WorkerView> = self
            .workers
            .iter()
            .map(|(pid, w)| WorkerView {
                pid: *pid,
                slot: w.slot,
                booted: self.hb.booted(w.slot),
                stopping: w.retiring,
            })
            .collect();
        let tls = self.cfg.is_ssl();
        let listeners: Vec<(String, u64)> = self
            .accept_queues()
            .map(|(l, n)| (l.url(tls), u64::from(n)))
            .collect();
        self.metrics.serve(&views, self.num_workers, &listeners);
    }

    /// Workers that reached `max_requests` ask (through their heartbeat slot) to be replaced;
    /// they keep serving while the replacement boots, so capacity never dips.
    pub(super) fn collect_retire_requests(&mut self) {
        for (pid, w) in self.workers.iter_mut() {
            if !w.retiring && !w.replaced && self.hb.retire_requested(w.slot) {
                w.replaced = true;
                error_log::info(&format!(
                    "Worker (pid:{pid}) reached max_requests; it serves until its replacement has booted"
                ));
            }
        }
    }

    /// TERM replaced workers, oldest first, as long as booted workers plus the replaced ones
    /// still serving exceed `num_workers`.
    pub(super) fn release_replaced(&mut self) {
        let booted = self
            .workers
            .values()
            .filter(|w| !w.retiring && !w.replaced && self.hb.booted(w.slot))
            .count() as i64;
        let mut replaced: Vec<(u64, i32)> = self
            .workers
            .iter()
            .filter(|(_, w)| w.replaced && !w.retiring)
            .map(|(pid, w)| (w.age, *pid))
            .collect();
        replaced.sort_unstable();
        let mut serving = booted + replaced.len() as i64;
        for (_, pid) in replaced {
            if serving <= self.num_workers.max(0) {
                break;
            }
            serving -= 1;
            if let Some(w) = self.workers.get_mut(&pid) {
                w.retiring = true;
            }
            self.kill_worker(pid, Signal::SIGTERM);
        }
    }

    /// The boot limit: at least `timeout`, as Gunicorn (whose clock starts at fork) allows.
    fn boot_limit_s(&self) -> Option<u64> {
        (self.cfg.boot_timeout > 0).then(|| self.cfg.boot_timeout.max(self.cfg.timeout) as u64)
    }

    /// Abort (then kill) workers that have not beaten for `timeout` seconds since they
    /// booted, or have not finished booting within the boot limit. Unlike Gunicorn, the log
    /// says how long the stuck request had been running, and a slow boot is reported while
    /// it lasts instead of being killed at `timeout`.
    pub(super) fn murder_workers(&mut self) {
        let boot_limit = self.boot_limit_s();
        let report_every = self.cfg.timeout.max(1) as u64;
        let mut late_boot: Vec<(i32, bool, u64)> = Vec::new();
        for (pid, w) in self.workers.iter_mut() {
            if self.hb.booted(w.slot) || w.retiring {
                continue;
            }
            let secs = w.spawned.elapsed().as_secs();
            if boot_limit.is_some_and(|limit| secs >= limit) {
                late_boot.push((*pid, w.aborted, secs));
            } else if secs >= w.boot_reported_s + report_every {
                w.boot_reported_s = secs;
                error_log::warning(&format!("Worker (pid:{pid}) still booting ({secs} s)"));
            }
        }
        for (pid, aborted, secs) in late_boot {
            if aborted {
                self.kill_worker(pid, Signal::SIGKILL);
                continue;
            }
            error_log::critical(&format!(
                "WORKER BOOT TIMEOUT (pid:{pid}) (still booting after {secs} s, boot_timeout {} s)",
                boot_limit.unwrap_or_default()
            ));
            if let Some(w) = self.workers.get_mut(&pid) {
                w.aborted = true;
                let _ = w.obj.setattr(self.py, "aborted", true);
            }
            self.kill_worker(pid, Signal::SIGABRT);
        }
        let Some(timeout) = self.cfg.serving().timeout else {
            return;
        };
        let limit_ms = timeout.as_millis() as u64;
        let late: Vec<(i32, bool, Option<u64>)> = self
            .workers
            .iter()
            .filter_map(|(pid, w)| {
                let silent = self.hb.silent_for_ms(w.slot)?;
                (silent > limit_ms).then(|| (*pid, w.aborted, self.hb.request_age_ms(w.slot)))
            })
            .collect();
        for (pid, aborted, req_ms) in late {
            if !aborted {
                match req_ms {
                    Some(ms) => error_log::critical(&format!(
                        "WORKER TIMEOUT (pid:{pid}) (request in flight for {:.1}s)",
                        ms as f64 / 1000.0
                    )),
                    None => error_log::critical(&format!("WORKER TIMEOUT (pid:{pid})")),
                }
                if let Some(w) = self.workers.get_mut(&pid) {
                    w.aborted = true;
                    let _ = w.obj.setattr(self.py, "aborted", true);
                }
                self.kill_worker(pid, Signal::SIGABRT);
            } else {
                self.kill_worker(pid, Signal::SIGKILL);
            }
        }
    }
}
