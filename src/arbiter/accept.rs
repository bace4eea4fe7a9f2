//! Accepting on the master's own small listeners (the Prometheus endpoint, the control
//! socket), which its single-threaded loop polls: a bounded batch per turn, and a pause after
//! an error that leaves the listener readable.
//!
//! Owns: the accept loop and its pause. Must not touch: what a connection is for (the
//! caller's `take` decides whether to keep it).

use std::io;
use std::time::{Duration, Instant};

use socket2::Socket;

/// After an accept error such as EMFILE the listener stays readable; polling it again at once
/// would spin the master's loop, so accepting pauses this long.
const PAUSE_AFTER_ERROR: Duration = Duration::from_secs(1);

/// Whether accepting is paused (the listener is left out of the poll set meanwhile).
pub fn paused(paused_until: Option<Instant>) -> bool {
    paused_until.is_some_and(|t| Instant::now() < t)
}

/// Accept up to `max` connections, each handed to `take` already non-blocking. socket2
/// accepts with accept4(SOCK_CLOEXEC), so forked children never inherit them.
pub fn accept_batch(
    listener: &Socket,
    paused_until: &mut Option<Instant>,
    max: usize,
    mut take: impl FnMut(Socket),
) {
    if paused(*paused_until) {
        return;
    }
    *paused_until = None;
    for _ in 0..max {
        match listener.accept() {
            Ok((sock, _)) => {
                if sock.set_nonblocking(true).is_ok() {
                    take(sock);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.raw_os_error() == Some(libc::ECONNABORTED) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(_) => {
                *paused_until = Some(Instant::now() + PAUSE_AFTER_ERROR);
                return;
            }
        }
    }
}
