//! The master's half of the Prometheus endpoint (`prometheus_bind`): the shared-memory
//! region workers count into, the totals of workers that are gone, restarts by reason, boot
//! times, and the listener the master's own loop serves (no thread, nothing to stop around
//! fork).
//!
//! Owns: when a slot is cleared, folded or read, and what a restart is. Must not touch: the
//! text format and the HTTP exchange (`telemetry::prometheus`, `metrics_server`), and the
//! request path (workers count through `telemetry::metrics`).

use std::os::fd::BorrowedFd;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::poll::PollFlags;

use super::metrics_server::MetricsServer;
use crate::sys::metrics::{MetricsRegion, SlotSnapshot, WorkerMetrics};
use crate::telemetry::prometheus::{MasterFacts, RestartReason, Totals, WorkerProc, WorkerStates};

/// Everything the master keeps for the endpoint; inert when `prometheus_bind` is unset.
pub struct MasterMetrics {
    server: Option<MetricsServer>,
    /// The address still held by the old master of a USR2 upgrade; retried every loop.
    pending: Option<String>,
    region: Option<MetricsRegion>,
    totals: Totals,
    started: f64,
    /// Set when the master stops: workers leaving then are not restarts.
    halting: bool,
}

/// What the arbiter knows of its workers when a scrape comes in.
pub struct WorkerView {
    pub pid: i32,
    pub slot: usize,
    pub booted: bool,
    pub stopping: bool,
}

impl MasterMetrics {
    pub fn off() -> Self {
        MasterMetrics {
            server: None,
            pending: None,
            region: None,
            totals: Totals::new(),
            started: now_unix(),
            halting: false,
        }
    }

    /// Binds `prometheus_bind` and maps the shared region (before any worker is forked).
    /// The new master of a USR2 upgrade finds the address still taken by the old one, which
    /// serves it until it exits; it then binds it on a later loop (`retry_bind`).
    pub fn bind(addr: &str, upgrading: bool) -> std::io::Result<Self> {
        let region = Some(MetricsRegion::new()?);
        match MetricsServer::bind(addr) {
            Ok(server) => Ok(MasterMetrics {
                server: Some(server),
                region,
                ..MasterMetrics::off()
            }),
            Err(e) if upgrading && e.kind() == std::io::ErrorKind::AddrInUse => Ok(MasterMetrics {
                pending: Some(addr.to_string()),
                region,
                ..MasterMetrics::off()
            }),
            Err(e) => Err(e),
        }
    }

    /// Binds an address left pending by `bind`; the URL when it just succeeded.
    pub fn retry_bind(&mut self) -> Option<String> {
        let addr = self.pending.as_ref()?;
        let server = MetricsServer::bind(addr).ok()?;
        self.pending = None;
        let url = server.url();
        self.server = Some(server);
        Some(url)
    }

    pub fn url(&self) -> Option<String> {
        self.server.as_ref().map(MetricsServer::url)
    }

    /// A slot about to be handed to a new worker starts from zero.
    pub fn on_spawn(&self, slot: usize) {
        if let Some(region) = &self.region {
            region.reset(slot);
        }
    }

    /// In the forked worker: the listener is the master's, the slot is the worker's.
    pub fn into_worker_slot(mut self, slot: usize) -> Option<WorkerMetrics> {
        self.server = None;
        self.region.as_ref().map(|r| r.handle(slot))
    }

    /// Whether the endpoint is on (so the arbiter gathers what a scrape needs).
    pub fn enabled(&self) -> bool {
        self.region.is_some()
    }

    /// A worker is gone: its counts join the totals (they were written to shared memory
    /// as it went, so a `kill -9` loses nothing finished), and the restart is counted.
    pub fn on_exit(&mut self, slot: usize, reason: Option<RestartReason>) {
        let Some(region) = &self.region else {
            return;
        };
        self.totals.retire_worker(&region.snapshot(slot));
        region.reset(slot);
        if let (Some(reason), false) = (reason, self.halting) {
            self.totals.count_restart(reason);
        }
    }

    pub fn on_booted(&mut self, took: Duration) {
        if self.region.is_some() {
            self.totals.observe_boot(took);
        }
    }

    pub fn halting(&mut self) {
        self.halting = true;
    }

    /// The descriptors the master's loop waits on besides its signal pipe.
    pub fn poll_fds(&self) -> Vec<(BorrowedFd<'_>, PollFlags)> {
        self.server
            .as_ref()
            .map(MetricsServer::poll_fds)
            .unwrap_or_default()
    }

    /// Serves whatever scrapes are ready, rendering with the workers and listeners as the
    /// arbiter sees them now.
    pub fn serve(&mut self, workers: &[WorkerView], target: i64, listeners: &[(String, u64)]) {
        let Some(mut server) = self.server.take() else {
            return;
        };
        let mut render = || self.render(workers, target, listeners);
        server.on_ready(&mut render);
        self.server = Some(server);
    }

    fn render(&self, workers: &[WorkerView], target: i64, listeners: &[(String, u64)]) -> String {
        let Some(region) = &self.region else {
            return String::new();
        };
        let live: Vec<SlotSnapshot> = workers.iter().map(|w| region.snapshot(w.slot)).collect();
        let procs: Vec<WorkerProc> = workers
            .iter()
            .map(|w| {
                let usage = crate::telemetry::prometheus::proc_usage(w.pid);
                WorkerProc {
                    pid: w.pid,
                    rss_bytes: usage.map(|u| u.0),
                    cpu_seconds: usage.map(|u| u.1),
                }
            })
            .collect();
        let count =
            |f: &dyn Fn(&WorkerView) -> bool| workers.iter().filter(|w| f(w)).count() as u64;
        let facts = MasterFacts {
            workers_by_state: WorkerStates {
                booting: count(&|w| !w.booted && !w.stopping),
                serving: count(&|w| w.booted && !w.stopping),
                stopping: count(&|w| w.stopping),
            },
            target_workers: target.max(0) as u64,
            start_time_unix: self.started,
            listeners,
            workers: &procs,
            master_statsd_dropped: crate::telemetry::statsd::dropped_total(),
        };
        crate::telemetry::prometheus::render(&self.totals, &live, &facts)
    }
}

fn now_unix() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}
