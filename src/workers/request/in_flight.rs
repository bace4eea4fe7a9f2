//! The requests this worker is serving (one per serving thread, or one per ASGI call), for
//! the log line of a WORKER TIMEOUT abort.

use std::sync::Mutex;
use std::thread::ThreadId;
use std::time::Instant;

/// Who serves a request: a thread (sync, gthread), or an ASGI call by its number.
#[derive(PartialEq, Eq)]
enum Key {
    Thread(ThreadId),
    Call(u64),
}

type InFlight = (Key, String, String, Instant);

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
    let me = Key::Thread(std::thread::current().id());
    let mut guard = IN_FLIGHT.lock().unwrap_or_else(|p| p.into_inner());
    guard.retain(|(t, ..)| *t != me);
    guard.push((me, method.to_string(), uri.to_string(), start));
}

/// This thread is done with its request.
pub(super) fn leave() {
    let me = Key::Thread(std::thread::current().id());
    let mut guard = IN_FLIGHT.lock().unwrap_or_else(|p| p.into_inner());
    guard.retain(|(t, ..)| *t != me);
}

/// ASGI call `id` started serving `method uri`. True when it is the only request in flight.
pub fn enter_call(id: u64, method: &str, uri: &str) -> bool {
    let mut guard = IN_FLIGHT.lock().unwrap_or_else(|p| p.into_inner());
    guard.push((
        Key::Call(id),
        method.to_string(),
        uri.to_string(),
        Instant::now(),
    ));
    guard.len() == 1
}

/// ASGI call `id` is answered. True when no request is left in flight.
pub fn leave_call(id: u64) -> bool {
    let mut guard = IN_FLIGHT.lock().unwrap_or_else(|p| p.into_inner());
    guard.retain(|(k, ..)| *k != Key::Call(id));
    guard.is_empty()
}
