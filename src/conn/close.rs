//! The one graceful-close policy (RFC 9112 §9.6, as Gunicorn 26+): stop writing, then read
//! and discard what the client still sends, at most `LINGER_LIMIT` bytes for at most
//! `LINGER`, so the kernel does not answer our last bytes with a RST that would destroy the
//! response in flight. The sync worker lingers blocking (`close_graceful`); the gthread
//! table lingers in its poll set with the same `Linger` bookkeeping.

use std::net::Shutdown;
use std::time::{Duration, Instant};

use super::transport::Transport;
use super::Liveness;

/// How long a closed connection may still send before we stop reading it.
pub const LINGER: Duration = Duration::from_secs(2);
/// How much a closed connection may still send before we stop reading it.
pub const LINGER_LIMIT: usize = 64 * 1024;

/// A connection whose write side is shut, draining what the client still sends.
#[derive(Debug)]
pub struct Linger {
    pub until: Instant,
    left: usize,
}

impl Linger {
    /// Shut the write side and start lingering; None when the socket is already gone.
    pub fn start(transport: &mut Transport) -> Option<Linger> {
        transport.shutdown(Shutdown::Write).ok()?;
        Some(Linger {
            until: Instant::now() + LINGER,
            left: LINGER_LIMIT,
        })
    }

    /// Count `n` discarded bytes; false once the limit is reached.
    pub fn absorb(&mut self, n: usize) -> bool {
        self.left = self.left.saturating_sub(n);
        self.left > 0
    }

    pub fn expired(&self, now: Instant) -> bool {
        now >= self.until
    }
}

/// Close gracefully, blocking until the client closes or the linger ends (call with the GIL
/// released). Ends with shutdown(both), so the connection is over even if some other handle
/// to this socket (a `gunicorn.socket` the app kept) is still open. `liveness` hears from the
/// wait, as in `read_head_blocking`.
pub fn close_graceful(mut transport: Transport, liveness: Option<&Liveness>) {
    let Some(mut linger) = Linger::start(&mut transport) else {
        return;
    };
    let mut buf = [0u8; 8192];
    loop {
        let now = Instant::now();
        if linger.expired(now)
            || transport
                .set_read_timeout(Liveness::slice(liveness, Some(linger.until - now)))
                .is_err()
        {
            break;
        }
        let res = transport.read(&mut buf);
        if Liveness::after_read(liveness, &res) {
            continue;
        }
        match res {
            Ok(n) if n > 0 && linger.absorb(n) => {}
            _ => break,
        }
    }
    let _ = transport.shutdown(Shutdown::Both);
}

/// End a connection at once: both directions shut, so a `gunicorn.socket` the app kept
/// cannot keep it alive either. The descriptor closes when `transport` drops.
pub fn close_now(mut transport: Transport) {
    let _ = transport.shutdown(Shutdown::Both);
}
