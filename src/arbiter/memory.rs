//! Memory-based recycling (`max_worker_memory`, a ferrocorn extension): when the master
//! reads its serving workers' PSS, and which worker it hands over because of it.
//!
//! Owns: the reading schedule, each worker's memory state, and the choice between replacing
//! a worker and reporting it once as too big at boot. Must not touch: the hand-over itself
//! (a worker marked `replaced` gets its replacement and is released by `supervise`, as with
//! `max_requests`), nor how /proc is read (`sys::procmem`).

use std::time::{Duration, Instant};

use super::Arbiter;
use crate::sys::procmem;
use crate::telemetry::error_log;

const MIB: u64 = 1 << 20;

/// The shortest time between two rounds of reads: the master's loop wakes about once a
/// second anyway, and a leak worth recycling for does not double in a second.
const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// A round may cost at most 1/COST_SHARE of the time until the next one: the kernel walks
/// every page table to answer (6 to 12 ms per resident GiB measured, against 0.01 ms for
/// `statm`), so sixteen 1 GiB workers are read every 10 to 20 s instead of every second,
/// and the master's loop is never held up for long.
const COST_SHARE: u32 = 100;

/// What the master knows of one worker's memory.
#[derive(Debug, Default)]
pub(crate) struct WorkerMemory {
    /// It had its first reading since it booted.
    checked: bool,
    /// It was over the limit at that first reading: reported once, never replaced for it,
    /// because its replacement would be as big and would be replaced in turn.
    too_big_at_boot: bool,
    /// It is being replaced for its memory use.
    pub(crate) over_limit: bool,
}

/// The master's schedule of reads.
#[derive(Debug, Default)]
pub(crate) struct MemoryWatch {
    next_round: Option<Instant>,
    /// A read failed for a reason other than the worker being gone; said once.
    read_error_reported: bool,
}

impl Arbiter<'_> {
    /// Once per loop: a worker that has just booted is read at once (it wakes the master
    /// when ready, so its size at boot is known before a leak can blur it), the other
    /// serving workers once per round. Workers over the limit are handed over one at a
    /// time, the biggest first.
    pub(super) fn check_memory(&mut self) {
        let Ok(limit_mib) = u64::try_from(self.cfg.max_worker_memory) else {
            return;
        };
        if limit_mib == 0 {
            return;
        }
        let limit = limit_mib.saturating_mul(MIB);
        let started = Instant::now();
        let round = self.memory.next_round.is_none_or(|at| started >= at);
        let pids: Vec<i32> = self
            .workers
            .iter()
            .filter(|(_, w)| !w.retiring && !w.replaced && self.hb.booted(w.slot))
            .filter(|(_, w)| round || !w.memory.checked)
            .map(|(pid, _)| *pid)
            .collect();
        // The kernel walks page tables to answer: no Python needs to wait for that.
        let read: Vec<(i32, std::io::Result<u64>)> = self
            .py
            .detach(|| pids.iter().map(|&p| (p, procmem::pss_bytes(p))).collect());
        let mut readings = Vec::with_capacity(read.len());
        for (pid, result) in read {
            match result {
                Ok(bytes) => readings.push((pid, bytes)),
                // Exited (a zombie too): the reaper hears of it on this loop or the next.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) if !self.memory.read_error_reported => {
                    self.memory.read_error_reported = true;
                    error_log::warning(&format!(
                        "max_worker_memory: cannot read the memory of worker (pid:{pid}): {e}; \
                         workers whose memory cannot be read are not recycled for it"
                    ));
                }
                Err(_) => {}
            }
        }
        if round {
            self.memory.next_round =
                Some(Instant::now() + MIN_INTERVAL.max(started.elapsed() * COST_SHARE));
        }
        if readings.is_empty() {
            return;
        }
        if error_log::enabled(error_log::Level::Debug) {
            let listed: Vec<String> = readings
                .iter()
                .map(|(pid, bytes)| format!("pid:{pid} {}", mib(*bytes)))
                .collect();
            error_log::debug(&format!(
                "Worker memory (PSS, MiB): {} (read in {:.1} ms)",
                listed.join(", "),
                started.elapsed().as_secs_f64() * 1000.0
            ));
        }
        let mut over = Vec::new();
        for (pid, bytes) in readings {
            let Some(w) = self.workers.get_mut(&pid) else {
                continue;
            };
            let first = !std::mem::replace(&mut w.memory.checked, true);
            if bytes <= limit || w.memory.too_big_at_boot {
                continue;
            }
            if first {
                w.memory.too_big_at_boot = true;
                error_log::warning(&format!(
                    "Worker (pid:{pid}) uses {} MiB (PSS) right after booting, over \
                     max_worker_memory {limit_mib} MiB: a new worker would be as big, so it is \
                     not replaced and keeps serving; raise max_worker_memory above the app's \
                     size at boot",
                    mib(bytes)
                ));
                continue;
            }
            over.push((bytes, pid));
        }
        // Each hand-over briefly runs one more process; when several workers outgrow the
        // limit together, replacing them all at once would add their boot size to the very
        // memory the limit protects.
        if self
            .workers
            .values()
            .any(|w| w.memory.over_limit && !w.retiring)
        {
            return;
        }
        let Some((bytes, pid)) = over.into_iter().max() else {
            return;
        };
        if let Some(w) = self.workers.get_mut(&pid) {
            w.replaced = true;
            w.memory.over_limit = true;
            error_log::info(&format!(
                "Worker (pid:{pid}) uses {} MiB (PSS), over max_worker_memory {limit_mib} MiB: \
                 replacing it; it serves until its replacement has booted",
                mib(bytes)
            ));
        }
    }
}

/// Bytes as MiB with one decimal, the precision a limit in whole MiB needs.
fn mib(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / MIB as f64)
}
