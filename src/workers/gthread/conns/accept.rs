//! Accepting, for the connection table: listen only while a thread is free, spread
//! keep-alive connections over the workers by the load each publishes in its heartbeat
//! slot, take connections every busy worker left waiting, and make room at
//! `worker_connections` by closing the longest-idle connection. Same rules as the rest of
//! the table: called with its lock held, never runs Python.

use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use nix::sys::epoll::{EpollEvent, EpollFlags};

use super::{Conns, Entry};
use crate::conn::{PeerPolicy, Transport};
use crate::telemetry::error_log;
use crate::workers::gthread::tconn::TConn;

/// How long a worker holding at least `threads` connections waits between accepts.
pub(super) const ACCEPT_BACKOFF: Duration = Duration::from_millis(1);
const ACCEPT_YOUNG: Duration = Duration::from_millis(50);
/// How many more live connections than the least loaded worker a worker may carry before it
/// leaves new ones to that worker.
const BALANCE_SLACK: u64 = 2;
/// How long a connection may wait, unclaimed by any free worker, before a busy one takes it.
pub(super) const SATURATED_ACCEPT: Duration = Duration::from_millis(5);

impl Conns<'_, '_> {
    /// Connections that carry load: requests with a thread, kept-alive connections that
    /// have served a request, and connections accepted in the last `ACCEPT_YOUNG` (their
    /// first request is probably on its way). A socket that connected and went quiet is not
    /// load, so a flood of idle or slowloris connections never slows accepting down.
    pub(super) fn live_connections(&self) -> usize {
        self.busy
            + self.writing
            + self.ready.len()
            + self
                .entries
                .iter()
                .filter(|(_, e)| match e {
                    Entry::Reading(c) => c.served > 0 || c.since.elapsed() < ACCEPT_YOUNG,
                    Entry::Closing(..) => false,
                })
                .count()
    }

    /// Whether to listen for new connections: while a thread is free. A final stop takes
    /// everything queued; any other stop takes nothing.
    ///
    /// Queued requests count against the free threads only once two or more threads are in
    /// the app: then the app blocks and a queued request waits for one to come back. With at
    /// most one request in the app the leader runs the queue back to back at CPU speed, and
    /// refusing connections then would only hand them to whichever worker next gives up
    /// waiting (`take_unclaimed`), piling keep-alive connections onto one worker.
    pub(super) fn has_capacity(&self) -> bool {
        if self.stopping.is_some() {
            return self.ctx.beat.drain_requested();
        }
        self.busy < self.threads && (self.busy <= 1 || self.busy + self.ready.len() < self.threads)
    }

    /// A worker whose threads are all busy does not listen, so the kernel wakes a free
    /// worker for each new connection. It only looks at the queue: a connection still
    /// there after `SATURATED_ACCEPT` was left by every other worker too (all busy), and is
    /// taken now, with a batch queued behind it, rather than starve behind this worker's
    /// kept-alive connections.
    pub(super) fn take_unclaimed(&mut self) {
        let now = Instant::now();
        if now.duration_since(self.last_queue_check) < Duration::from_millis(1) {
            return;
        }
        self.last_queue_check = now;
        let mut pfds: Vec<nix::poll::PollFd<'_>> = self
            .ctx
            .listeners
            .iter()
            .map(|l| nix::poll::PollFd::new(l.as_fd(), nix::poll::PollFlags::POLLIN))
            .collect();
        let queued = matches!(nix::poll::poll(&mut pfds, 0u8), Ok(n) if n > 0);
        match (queued, self.queued_since) {
            (false, _) => self.queued_since = None,
            (true, None) => self.queued_since = Some(now),
            (true, Some(since)) if now.duration_since(since) >= SATURATED_ACCEPT => {
                self.queued_since = None;
                for idx in 0..self.ctx.listeners.len() {
                    self.accept_from(idx, true);
                }
            }
            (true, Some(_)) => {}
        }
    }

    /// Listen only while a thread is free: a busy worker leaves new connections in the
    /// kernel queue for a worker that can serve them. EPOLLEXCLUSIVE wakes one waiting
    /// worker per connection instead of all of them.
    ///
    /// Keep-alive connections stay with the worker that accepted them, so with several
    /// workers the kernel's choice of waker decides how the load is split, and it is often
    /// lopsided (53 of 64 wrk connections on one of two workers). So each worker publishes
    /// its live connections in its heartbeat slot, and one that carries at least `threads`
    /// of them stops listening while another worker that is taking connections carries
    /// `BALANCE_SLACK` fewer; otherwise it waits `ACCEPT_BACKOFF` between accepts. A
    /// connection nobody takes is still taken after `SATURATED_ACCEPT` (`take_unclaimed`).
    pub(super) fn update_accepting(&mut self) {
        let beat = self.ctx.beat;
        let peers = beat.peer_load();
        self.peers = peers.any;
        let live = if peers.any {
            self.live_connections()
        } else {
            0
        };
        let taking = self.stopping.is_none() && self.has_capacity();
        if peers.any {
            beat.publish_load(taking.then_some(live as u64));
        }
        let loaded = peers.any && live >= self.threads;
        self.crowded = peers
            .least
            .is_some_and(|least| live as u64 > least + BALANCE_SLACK);
        self.accept_deferred =
            loaded && (self.crowded || self.last_accept.elapsed() < ACCEPT_BACKOFF);
        let want = self.has_capacity() && !self.accept_deferred && self.has_room();
        if want == self.accepting {
            return;
        }
        for (i, l) in self.ctx.listeners.iter().enumerate() {
            let fd = l.as_fd();
            let res = if want {
                self.epoll.add(
                    fd,
                    EpollEvent::new(EpollFlags::EPOLLIN | EpollFlags::EPOLLEXCLUSIVE, i as u64),
                )
            } else {
                self.epoll.delete(fd)
            };
            if let Err(e) = res {
                error_log::debug(&format!("epoll listener update failed: {e}"));
            }
        }
        self.accepting = want;
    }

    pub(super) fn accept(&mut self, idx: usize) {
        self.accept_from(idx, false)
    }

    /// Accept from listener `idx`: a few at a time while threads are free, or everything
    /// queued when `unclaimed` (see `take_unclaimed`), a batch at a time.
    fn accept_from(&mut self, idx: usize, unclaimed: bool) {
        let serving = self.ctx.cfg.serving();
        let Some(listener) = self.ctx.listeners.get(idx) else {
            return;
        };
        // A loaded worker takes one connection per turn (see `update_accepting`).
        // Unclaimed connections come in batches of `threads`, or singly while a less loaded
        // worker is taking: a worker that was only descheduled for a moment (two cores, three
        // busy processes) must not lose a whole burst to whichever gave up waiting first.
        let mut room = if unclaimed {
            if self.crowded {
                1
            } else {
                self.threads
            }
        } else if self.peers && self.live_connections() >= self.threads {
            1
        } else {
            self.threads
                .saturating_sub(self.busy + self.ready.len())
                .max(1)
        };
        while room > 0 && (unclaimed || self.has_capacity()) {
            if self.connections() >= self.max_conns && !self.evict_idle() {
                return;
            }
            let (mut transport, peer) = match listener.accept() {
                Ok((accepted, peer)) => (Transport::from(accepted), peer),
                Err(_) => return,
            };
            if let Some(tls) = &self.tls {
                match tls.session(peer.ip_string(), serving.proxy_protocol) {
                    Some(session) => transport = transport.with_tls(session),
                    None => continue,
                }
            }
            room -= 1;
            self.last_accept = Instant::now();
            // The descriptor stays blocking for its whole life: the loop reads with
            // MSG_DONTWAIT, and the thread serving a request reads the rest of a large
            // body and writes the response with plain blocking calls, bounded by `timeout`
            // so a client that stops reading or sending cannot hold a thread.
            if transport.set_read_timeout(self.io_timeout).is_err()
                || transport.set_write_timeout(self.io_timeout).is_err()
            {
                continue;
            }
            let policy = PeerPolicy::new(serving, &peer);
            // A TLS connection's first read may run the handshake: leave it to its own
            // event, which the leader handles without the GIL (`may_handshake`).
            let read_now = !transport.is_tls();
            let conn = Box::new(TConn::new(transport, peer, idx, policy));
            self.admit(conn, read_now);
        }
    }

    /// Whether a new connection can be taken: below `worker_connections`, or one could be
    /// evicted. Otherwise listening would only wake the leader, over and over, for a
    /// connection it cannot take.
    fn has_room(&self) -> bool {
        self.connections() < self.max_conns
            || self.entries.iter().any(|(_, e)| evictable(e).is_some())
    }

    /// At the connection limit, make room by closing the connection that has waited
    /// longest without a complete head (an idle keep-alive or a slow client), so idle and
    /// slowloris connections can never lock out a new client.
    pub(super) fn evict_idle(&mut self) -> bool {
        let victim = self
            .entries
            .iter()
            .filter_map(|(k, e)| Some((evictable(e)?.since, k)))
            .min();
        match victim {
            Some((_, key)) => {
                self.remove(key);
                true
            }
            None => false,
        }
    }
}

/// A connection `evict_idle` may close: waiting for a head (idle keep-alive or a slow
/// client), not one whose body is arriving or that is lingering.
fn evictable(entry: &Entry) -> Option<&TConn> {
    match entry {
        Entry::Reading(c) if !c.reader.waiting_body() => Some(c),
        _ => None,
    }
}
