//! What every finished request reports besides its access line: StatsD's request metrics
//! (sent from Rust on the default logger path) and the counters in this worker's
//! shared-memory slot that the master's Prometheus endpoint adds up.
//!
//! Owns: the worker's slot handle and the per-request calls. Must not touch: the access log
//! (a Python logger's `access` sends its own StatsD metrics), and the master's side of the
//! slots (`arbiter`).

use std::sync::OnceLock;
use std::time::Duration;

use super::statsd;
use crate::sys::metrics::WorkerMetrics;

/// Set once in a worker when the Prometheus endpoint is on; never in the master.
static SLOT: OnceLock<WorkerMetrics> = OnceLock::new();

pub fn install_worker_slot(slot: WorkerMetrics) {
    let _ = SLOT.set(slot);
}

/// A request reached the app: it is in flight until `request_left`.
pub fn request_started() {
    if let Some(slot) = SLOT.get() {
        slot.enter();
    }
}

/// The request is no longer in flight, whether or not it completed.
pub fn request_left() {
    if let Some(slot) = SLOT.get() {
        slot.leave();
    }
}

/// A request in flight for as long as this lives, so a panic on the request path does not
/// leave the gauge one too high for the rest of the worker's life.
pub struct InFlight(());

impl InFlight {
    pub fn enter() -> InFlight {
        request_started();
        InFlight(())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        request_left();
    }
}

/// A response went out: `status` is its code (0 when it had none). Counted once per
/// request, where Gunicorn calls `log.access`.
pub fn request_done(method: &str, status: u16, elapsed: Duration) {
    let with_statsd = statsd::enabled();
    if with_statsd {
        statsd::request(status, elapsed);
    }
    if let Some(slot) = SLOT.get() {
        slot.record(method, status, elapsed);
        if with_statsd {
            // One relaxed store: the master adds the workers' drop counts up.
            slot.set_statsd_dropped(statsd::dropped_total());
        }
    }
}

/// The status code of a WSGI status line (`"404 Not Found"` → 404); 0 if it has none.
pub fn status_code(status: &str) -> u16 {
    status
        .split_ascii_whitespace()
        .next()
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}
