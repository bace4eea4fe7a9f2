//! The gthread worker's writer thread. An app thread that finishes a response held in
//! memory (what `H1Exchange::take_back` returns) hands it here and goes on to the next request, so the
//! send, which on loopback also runs the receiving side's TCP stack and wakes the client,
//! overlaps the next request's Python instead of adding to it. Once a response is out the
//! writer hands its connection back to the table (`Conns::written`), so a connection never
//! carries two requests at once and responses stay in order.
//!
//! Sends never block: a client that does not take its response at once waits in a poll set,
//! for at most `timeout`, without holding up the others. The writer runs no Python, never
//! reads requests, and takes the table's lock without the GIL (nothing under that lock
//! waits for the GIL, so the two cannot deadlock).

use std::collections::VecDeque;
use std::os::fd::AsFd;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};

use super::conns::Conns;
use super::tconn::TConn;
use crate::http::After;
use crate::telemetry::error_log;

/// A response to send, and what becomes of its connection once it is out.
pub struct Outgoing {
    pub conn: Box<TConn>,
    pub bytes: Vec<u8>,
    pub after: After,
}

struct Pending {
    out: Outgoing,
    sent: usize,
    deadline: Instant,
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Outgoing>,
    /// The writer is (about to be) asleep in poll: a new job must wake it.
    asleep: bool,
    shutdown: bool,
}

pub struct Writer {
    /// Whether the worker uses a writer thread at all (see `new`).
    enabled: bool,
    queue: Mutex<Queue>,
    wake: EventFd,
    /// How long a client may take to accept a response.
    timeout: Duration,
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Writer {
    /// A writer thread pays off only with a core to spare: with at least as many workers as
    /// cores every worker's leader can keep a core busy, and a second busy thread per worker
    /// only adds switches (measurements in docs/performance.md).
    pub fn new(timeout: Duration, workers: usize) -> std::io::Result<Self> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let wake = EventFd::from_flags(EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC)?;
        Ok(Writer {
            enabled: workers < cores,
            queue: Mutex::new(Queue::default()),
            wake,
            timeout,
        })
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Queue a response. The caller has already moved its connection to the table's
    /// `writing` count (`Conns::handed_to_writer`).
    pub fn push(&self, out: Outgoing) {
        let mut q = locked(&self.queue);
        q.jobs.push_back(out);
        if q.asleep {
            q.asleep = false;
            drop(q);
            let _ = self.wake.write(1);
        }
    }

    /// Finish what can be sent without waiting, then return from `run`.
    pub fn shutdown(&self) {
        locked(&self.queue).shutdown = true;
        let _ = self.wake.write(1);
    }

    /// The writer thread's loop; connections go back to the table through `conns`, and
    /// `leader_wake` wakes the leader when that queued a pipelined request.
    pub fn run(&self, conns: &Mutex<Conns<'_, '_>>, leader_wake: &EventFd) {
        let mut slow: Vec<Pending> = Vec::new();
        loop {
            let (jobs, shutdown) = {
                let mut q = locked(&self.queue);
                (std::mem::take(&mut q.jobs), q.shutdown)
            };
            let mut finished = Vec::with_capacity(jobs.len());
            for out in jobs {
                let p = Pending {
                    out,
                    sent: 0,
                    deadline: Instant::now() + self.timeout,
                };
                self.advance(p, &mut slow, &mut finished);
            }
            self.hand_back(conns, leader_wake, finished);
            // Sleep only with nothing queued; a push after this point writes the eventfd.
            let sleep = {
                let mut q = locked(&self.queue);
                let idle = q.jobs.is_empty() && !q.shutdown;
                q.asleep = idle;
                idle
            };
            if shutdown && slow.is_empty() {
                return;
            }
            if !sleep && slow.is_empty() {
                continue;
            }
            let ready = self.wait(&slow, sleep);
            locked(&self.queue).asleep = false;
            let now = Instant::now();
            let mut finished = Vec::new();
            for (p, ready) in std::mem::take(&mut slow).into_iter().zip(ready) {
                if ready {
                    self.advance(p, &mut slow, &mut finished);
                } else if now >= p.deadline || shutdown {
                    error_log::debug("Client did not take its response in time; closing");
                    finished.push((p.out.conn, After::Gone));
                } else {
                    slow.push(p);
                }
            }
            self.hand_back(conns, leader_wake, finished);
        }
    }

    fn hand_back(
        &self,
        conns: &Mutex<Conns<'_, '_>>,
        leader_wake: &EventFd,
        finished: Vec<(Box<TConn>, After)>,
    ) {
        if finished.is_empty() {
            return;
        }
        let queued = {
            let mut c = locked(conns);
            for (conn, after) in finished {
                c.written(conn, after);
            }
            c.needs_leader()
        };
        if queued {
            // A pipelined request (or one to reject, or a stop to finish) is waiting: the
            // leader may be asleep in epoll.
            let _ = leader_wake.write(1);
        }
    }

    /// Send what the socket takes now; done, gone, or left in `slow` to wait for room.
    fn advance(
        &self,
        mut p: Pending,
        slow: &mut Vec<Pending>,
        finished: &mut Vec<(Box<TConn>, After)>,
    ) {
        loop {
            if p.sent == p.out.bytes.len() {
                // Under TLS the last bytes may still wait as records.
                match p.out.conn.transport.try_flush() {
                    Ok(true) => finished.push((p.out.conn, p.out.after)),
                    Ok(false) => slow.push(p),
                    Err(e) => {
                        error_log::debug(&format!("Ignoring connection error while writing: {e}"));
                        finished.push((p.out.conn, After::Gone));
                    }
                }
                return;
            }
            match p.out.conn.transport.try_write(&p.out.bytes[p.sent..]) {
                Ok(0) => {
                    slow.push(p);
                    return;
                }
                Ok(n) => p.sent += n,
                Err(e) => {
                    error_log::debug(&format!("Ignoring connection error while writing: {e}"));
                    finished.push((p.out.conn, After::Gone));
                    return;
                }
            }
        }
    }

    /// Wait for a push (when `sleep`) or for slow clients to take more bytes, until the
    /// nearest deadline. Returns, for each slow client in order, whether it can take more.
    fn wait(&self, slow: &[Pending], sleep: bool) -> Vec<bool> {
        let mut fds: Vec<PollFd<'_>> = Vec::with_capacity(slow.len() + 1);
        fds.push(PollFd::new(self.wake.as_fd(), PollFlags::POLLIN));
        for p in slow {
            fds.push(PollFd::new(
                p.out.conn.transport.as_fd(),
                PollFlags::POLLOUT,
            ));
        }
        let wait = match slow.iter().map(|p| p.deadline).min() {
            _ if !sleep => PollTimeout::ZERO,
            None => PollTimeout::NONE,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                PollTimeout::from(left.as_millis().clamp(1, 1000) as u16)
            }
        };
        let _ = nix::poll::poll(&mut fds, wait);
        if fds[0].any().unwrap_or(false) {
            let _ = self.wake.read();
        }
        fds[1..].iter().map(|f| f.any().unwrap_or(true)).collect()
    }
}
