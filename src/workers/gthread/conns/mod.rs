//! The gthread worker's connection table: accepts (only while a thread is free), reads and
//! parses heads and small bodies, keeps idle keep-alive connections, closes connections
//! gracefully, enforces deadlines, and queues complete requests for the threads. Whichever
//! thread leads calls into it (see `threads`), holding the GIL; the writer thread hands
//! connections back without it. Nothing runs Python or waits for the GIL under the
//! table's lock, so it never calls the app, never writes a response, and returns
//! unparseable requests to the caller instead of answering them. Accepting and spreading
//! connections over the workers is in `accept`.

use std::collections::VecDeque;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use ferrocorn_h1::{ParseError, ParserConfig, RequestHead};
use nix::sys::epoll::{Epoll, EpollEvent, EpollFlags, EpollTimeout};

mod accept;
#[cfg(test)]
mod tests;

use accept::{ACCEPT_BACKOFF, SATURATED_ACCEPT};

use super::tconn::TConn;
use crate::conn::{close_now, Linger, Progress, Transport};
use crate::http::After;
use crate::workers::state::WorkerContext;

/// The epoll key of the eventfd that wakes the leader (stop, a queued pipelined request).
pub const WAKE: u64 = u64::MAX;
const CONN_BASE: u64 = 1 << 32;

/// Gunicorn 27.0.1: a stopping worker keeps idle keep-alive connections this long, so a
/// request already on its way is answered (with `Connection: close`) rather than reset.
const STOP_LINGER: Duration = Duration::from_secs(2);

/// A complete request for a thread.
pub struct Job {
    pub conn: Box<TConn>,
    pub head: Box<RequestHead>,
    pub leftover: Vec<u8>,
    /// Answer with `Connection: close` (keep-alive off, too many kept connections, stopping).
    pub close: bool,
}

enum Entry {
    Reading(Box<TConn>),
    /// Write side shut down; reading what the client still sends until it closes.
    Closing(Transport, Linger),
}

pub struct Conns<'s, 'a> {
    ctx: &'s WorkerContext<'a>,
    pcfg: &'s ParserConfig,
    epoll: &'s Epoll,
    entries: slab::Slab<Entry>,
    /// How many entries are `Reading` (the rest are lingering closes).
    reading: usize,
    /// Complete requests no thread has taken yet, in arrival order.
    ready: VecDeque<Job>,
    /// Requests a thread has taken and not handed back.
    busy: usize,
    /// Connections whose response is with the writer thread.
    writing: usize,
    /// Requests that cannot be parsed: the caller answers them outside the lock.
    rejects: Vec<(Box<TConn>, ParseError)>,
    threads: usize,
    max_conns: usize,
    /// Above this many connections a response closes its connection (Gunicorn's
    /// `worker_connections - threads`).
    max_keepalived: usize,
    keepalive: Option<Duration>,
    /// Deadline for a request to arrive or complete once started.
    request_timeout: Duration,
    io_timeout: Option<Duration>,
    accepting: bool,
    accept_deferred: bool,
    last_accept: Instant,
    /// Since when the saturated worker has seen connections waiting (`take_unclaimed`).
    queued_since: Option<Instant>,
    last_queue_check: Instant,
    /// Other workers share the listeners: worth spreading connections over them.
    peers: bool,
    /// Another worker taking connections carries fewer (`update_accepting`).
    crowded: bool,
    stopping: Option<Instant>,
    next_scan: Instant,
    /// TLS sessions for new connections; their handshakes run in this table's reads.
    tls: Option<std::sync::Arc<crate::tls::Acceptor>>,
}

impl<'s, 'a> Conns<'s, 'a> {
    pub fn new(
        ctx: &'s WorkerContext<'a>,
        pcfg: &'s ParserConfig,
        epoll: &'s Epoll,
        threads: usize,
    ) -> Self {
        let cfg = ctx.cfg;
        let serving = cfg.serving();
        let max_conns = cfg.worker_connections.max(1) as usize;
        Conns {
            ctx,
            pcfg,
            epoll,
            entries: slab::Slab::new(),
            reading: 0,
            ready: VecDeque::new(),
            busy: 0,
            writing: 0,
            rejects: Vec::new(),
            threads,
            max_conns,
            max_keepalived: max_conns.saturating_sub(threads),
            keepalive: serving.keepalive,
            request_timeout: serving.io_deadline(),
            io_timeout: serving.timeout,
            accepting: false,
            accept_deferred: false,
            last_accept: Instant::now(),
            queued_since: None,
            last_queue_check: Instant::now(),
            peers: false,
            crowded: false,
            stopping: None,
            next_scan: Instant::now(),
            tls: None,
        }
    }

    pub fn with_tls(mut self, tls: Option<std::sync::Arc<crate::tls::Acceptor>>) -> Self {
        self.tls = tls;
        self
    }

    /// Every connection the worker holds: being read, queued, with a thread or the writer.
    fn connections(&self) -> usize {
        self.reading + self.ready.len() + self.busy + self.writing
    }

    /// Handle one epoll event (anything but `WAKE`).
    pub fn handle(&mut self, key: u64) {
        if key >= CONN_BASE {
            self.readable((key - CONN_BASE) as usize)
        } else {
            self.accept(key as usize)
        }
    }

    /// Whether handling the event for `key` may run a TLS handshake (a connection that has
    /// not carried a request yet): real CPU work, worth letting go of the GIL for.
    pub fn may_handshake(&self, key: u64) -> bool {
        key >= CONN_BASE
            && matches!(
                self.entries.get((key - CONN_BASE) as usize),
                Some(Entry::Reading(c)) if c.transport.is_tls() && c.served == 0
            )
    }

    /// The next complete request, if any, now owned by the caller.
    pub fn pop_job(&mut self) -> Option<Job> {
        let job = self.ready.pop_front()?;
        self.busy += 1;
        if self.peers && !self.has_capacity() {
            // Its last published load said "taking"; the next `tick` may be a whole
            // request away.
            self.ctx.beat.publish_load(None);
        }
        Some(job)
    }

    /// Whether the leader has something to do now: a queued request, a request to reject,
    /// or a stop to finish (the writer wakes it for these).
    pub fn needs_leader(&self) -> bool {
        !self.ready.is_empty() || !self.rejects.is_empty() || self.stopping.is_some()
    }

    pub fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }

    pub fn take_rejects(&mut self) -> Vec<(Box<TConn>, ParseError)> {
        std::mem::take(&mut self.rejects)
    }

    /// Housekeeping between events: stopping, accepting, deadlines. `stop` says the worker
    /// was told to stop. Returns true once a stopping worker has nothing left to do.
    pub fn tick(&mut self, stop: bool) -> bool {
        if stop && self.stopping.is_none() {
            self.stopping = Some(Instant::now());
        }
        if self.stopping.is_some() && self.ctx.beat.drain_requested() {
            // Take everything still queued in the kernel before deciding we are done.
            for idx in 0..self.ctx.listeners.len() {
                self.accept(idx);
            }
        }
        if self.stopping.is_some() && self.connections() == 0 && self.rejects.is_empty() {
            return true;
        }
        self.update_accepting();
        if !self.accepting && self.stopping.is_none() {
            self.take_unclaimed();
        }
        let now = Instant::now();
        if now >= self.next_scan {
            self.murder_keepalived(now);
            self.next_scan = now + Duration::from_millis(250);
        }
        false
    }

    /// How long the leader may block in epoll before `tick` has something to do.
    pub fn wait_timeout(&self) -> EpollTimeout {
        let mut wait = self.next_scan.saturating_duration_since(Instant::now());
        if self.accept_deferred {
            // Waiting for less loaded workers to catch up needs no 1 ms polling.
            wait = wait.min(if self.crowded {
                SATURATED_ACCEPT
            } else {
                ACCEPT_BACKOFF
            });
        } else if !self.accepting && self.stopping.is_none() {
            wait = wait.min(SATURATED_ACCEPT);
        }
        EpollTimeout::from(wait.as_millis().clamp(1, 1000) as u16)
    }

    /// Take a connection into the loop; read at once when data may already be there.
    fn admit(&mut self, mut conn: Box<TConn>, try_read: bool) {
        if try_read {
            conn.fill();
        }
        if conn.reader.has_buffered() || conn.eof {
            match conn.advance(self.pcfg) {
                Progress::Ready(head, rest) => return self.enqueue_req(conn, head, rest),
                Progress::Invalid(err) => return self.reject(conn, err),
                Progress::NeedMore if conn.eof => return self.ended(conn),
                Progress::NeedMore => {}
            }
        }
        self.keep(conn);
    }

    /// Put a connection waiting for bytes into the table and arm it.
    fn keep(&mut self, mut conn: Box<TConn>) {
        let known = conn.in_epoll;
        conn.in_epoll = true;
        let key = self.entries.insert(Entry::Reading(conn));
        self.reading += 1;
        if self.arm(key, known).is_err() {
            self.remove(key);
        }
    }

    /// The client closed before a request was complete. One whose body was still arriving
    /// goes to the app with what came (Gunicorn's length reader hands over what it got at
    /// EOF); anything else is dropped.
    fn ended(&mut self, mut conn: Box<TConn>) {
        match conn.reader.take_partial() {
            Some((head, body)) => self.enqueue_req(conn, head, body),
            None => self.end(conn.transport, conn.in_epoll),
        }
    }

    /// Finish with a connection for good: out of epoll, both directions shut (so a
    /// `gunicorn.socket` the app kept cannot keep it alive).
    fn end(&self, transport: Transport, in_epoll: bool) {
        if in_epoll {
            let _ = self.epoll.delete(transport.as_fd());
        }
        close_now(transport);
    }

    /// One-shot interest in entry `key`: an event disarms the descriptor, so a connection
    /// handed to a thread needs no removal, and a connection coming back costs one re-arm.
    /// A transport with bytes of its own to send (TLS) waits for writability too.
    fn arm(&self, key: usize, known: bool) -> nix::Result<()> {
        let transport = match &self.entries[key] {
            Entry::Reading(conn) => &conn.transport,
            Entry::Closing(transport, _) => transport,
        };
        let mut flags = EpollFlags::EPOLLIN | EpollFlags::EPOLLONESHOT;
        if transport.wants_write() {
            flags |= EpollFlags::EPOLLOUT;
        }
        let mut ev = EpollEvent::new(flags, CONN_BASE + key as u64);
        if known {
            self.epoll.modify(transport.as_fd(), &mut ev)
        } else {
            self.epoll.add(transport.as_fd(), ev)
        }
    }

    fn readable(&mut self, key: usize) {
        let progress = match self.entries.get_mut(key) {
            Some(Entry::Reading(conn)) => {
                conn.fill();
                conn.advance(self.pcfg)
            }
            Some(Entry::Closing(transport, linger)) => {
                let mut buf = [0u8; 8192];
                let keep = match transport.try_read(&mut buf) {
                    Ok(Some(0)) | Err(_) => false,
                    Ok(Some(n)) => linger.absorb(n),
                    Ok(None) => true,
                };
                if !keep || self.arm(key, true).is_err() {
                    self.remove(key);
                }
                return;
            }
            None => return,
        };
        let Some(conn) = self.detach(key) else {
            return;
        };
        match progress {
            Progress::NeedMore if conn.eof => self.ended(conn),
            // Back into the table (usually the same slot) and re-armed.
            Progress::NeedMore => self.keep(conn),
            Progress::Ready(head, rest) => self.enqueue_req(conn, head, rest),
            Progress::Invalid(err) => self.reject(conn, err),
        }
    }

    /// Take a connection out of the loop's table, for a thread or to reject it. Its
    /// descriptor stays in the epoll set, disarmed (the event that led here was one-shot).
    fn detach(&mut self, key: usize) -> Option<Box<TConn>> {
        match self.entries.try_remove(key)? {
            Entry::Reading(conn) => {
                self.reading -= 1;
                Some(conn)
            }
            Entry::Closing(transport, _) => {
                self.end(transport, true);
                None
            }
        }
    }

    fn remove(&mut self, key: usize) {
        if let Some(entry) = self.entries.try_remove(key) {
            let transport = match entry {
                Entry::Reading(c) => {
                    self.reading -= 1;
                    c.transport
                }
                Entry::Closing(t, _) => t,
            };
            // Everything in the table is in the epoll set.
            self.end(transport, true);
        }
    }

    /// Queue a complete request for the threads (Gunicorn's `enqueue_req`).
    fn enqueue_req(&mut self, conn: Box<TConn>, head: Box<RequestHead>, rest: Vec<u8>) {
        let close = self.keepalive.is_none()
            || self.stopping.is_some()
            || self.connections() + 1 > self.max_keepalived;
        self.ready.push_back(Job {
            conn,
            head,
            leftover: rest,
            close,
        });
    }

    fn reject(&mut self, conn: Box<TConn>, err: ParseError) {
        self.rejects.push((conn, err));
    }

    /// Graceful close without blocking: stop writing, then read until the client closes
    /// (bounded), so our last bytes are not destroyed by a RST.
    pub fn close(&mut self, conn: Box<TConn>) {
        let known = conn.in_epoll;
        let mut transport = conn.transport;
        let Some(linger) = Linger::start(&mut transport) else {
            if known {
                let _ = self.epoll.delete(transport.as_fd());
            }
            return;
        };
        let key = self.entries.insert(Entry::Closing(transport, linger));
        if self.arm(key, known).is_err() {
            self.remove(key);
        }
    }

    /// A thread hands back the connection of a request it took from `pop_job`.
    pub fn give_back(&mut self, conn: Box<TConn>, after: After) {
        self.busy = self.busy.saturating_sub(1);
        self.finish_request(conn, after);
    }

    /// A thread took a request and lost its connection (a bug): only the count changes.
    pub fn lost(&mut self) {
        self.busy = self.busy.saturating_sub(1);
    }

    /// A connection whose request is over (Gunicorn's `finish_request`): back into the
    /// table, a pipelined request already buffered on it queued at once; or closed.
    fn finish_request(&mut self, mut conn: Box<TConn>, after: After) {
        match after {
            After::KeepAlive(rest) => {
                conn.resume(rest);
                self.admit(conn, false);
            }
            After::Close => self.close(conn),
            After::Gone => self.end(conn.transport, conn.in_epoll),
        }
    }

    /// A thread hands the connection of its request to the writer thread.
    pub fn handed_to_writer(&mut self) {
        self.busy = self.busy.saturating_sub(1);
        self.writing += 1;
    }

    /// The writer is done with a connection: its response is out, or the client is gone
    /// (`After::Gone`).
    pub fn written(&mut self, conn: Box<TConn>, after: After) {
        self.writing = self.writing.saturating_sub(1);
        self.finish_request(conn, after);
    }

    /// Close connections past their deadline (Gunicorn's `murder_keepalived`, and more):
    /// idle keep-alive after `keepalive`, a request that has not fully arrived after
    /// `timeout`, lingering closes after 2 s, and, once the worker stops, idle connections
    /// after Gunicorn's 2 s linger.
    fn murder_keepalived(&mut self, now: Instant) {
        let mut late = Vec::new();
        for (key, entry) in self.entries.iter() {
            let deadline = match entry {
                Entry::Closing(_, linger) => linger.until,
                Entry::Reading(c) => {
                    let mut d = if !c.started && c.served > 0 {
                        c.since + self.keepalive.unwrap_or(Duration::ZERO)
                    } else {
                        c.since + self.request_timeout
                    };
                    if let Some(stop) = self.stopping {
                        if !c.started {
                            d = d.min(stop + STOP_LINGER);
                        }
                    }
                    d
                }
            };
            if now >= deadline {
                late.push(key);
            }
        }
        for key in late {
            self.remove(key);
        }
    }
}
