//! The requests this worker is serving (one per serving thread), for the log line of a
//! WORKER TIMEOUT abort.

use std::sync::Mutex;
use std::thread::ThreadId;
use std::time::Instant;

type InFlight = (ThreadId, String, String, Instant);

static IN_FLIGHT: Mutex<Vec<InFlight>> = Mutex::new(Vec::new());

/// "GET /path (running 2.0s)" for each request in flight, oldest first; None when idle.
pub fn in_flight() -> Option<String> {
    let guard = IN_FLIGHT.lock().unwrap_or_else(|p| p.into_inner());
    let all: Vec<String> = guard
        .iter()
        .map(|(_, method, uri, start)| {
            format!(
                "{method} {uri} (running {:.1}s)",
                start.elapsed().as_secs_f64()
            )
        })
        .collect();
    (!all.is_empty()).then(|| all.join(", "))
}

/// This thread started serving `method uri`.
pub(super) fn enter(method: &str, uri: &str, start: Instant) {
    let me = std::thread::current().id();
    let mut guard = IN_FLIGHT.lock().unwrap_or_else(|p| p.into_inner());
    guard.retain(|(t, ..)| *t != me);
    guard.push((me, method.to_string(), uri.to_string(), start));
}

/// This thread is done with its request.
pub(super) fn leave() {
    let me = std::thread::current().id();
    let mut guard = IN_FLIGHT.lock().unwrap_or_else(|p| p.into_inner());
    guard.retain(|(t, ..)| *t != me);
}
