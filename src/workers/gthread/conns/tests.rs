//! State transitions of the gthread connection table, driven as the leader drives it
//! (`threads::lead`): `tick`, an epoll wait, `handle` for every event, `pop_job`,
//! `take_rejects`, and the hand-backs (`give_back`, `handed_to_writer` + `written`,
//! `close`). A real table on a real epoll set and a loopback listener; clients are plain
//! `TcpStream`s. Being a child module, the tests read the table's counters directly.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollTimeout};
use pyo3::prelude::*;

use super::{Conns, Entry, Job, CONN_BASE, WAKE};
use crate::config::Config;
use crate::http::After;
use crate::net::Listener;
use crate::sys::heartbeat::Heartbeats;
use crate::workers::state::WorkerContext;

/// How long any expected transition may take before the test fails.
const PATIENCE: Duration = Duration::from_secs(3);
const TURN: Duration = Duration::from_millis(10);

struct Table<'s, 'a> {
    conns: Conns<'s, 'a>,
    epoll: &'s Epoll,
    addr: SocketAddr,
    /// Events on the listener seen so far.
    listener_events: usize,
}

/// A table over a fresh loopback listener, with `threads` threads and these integer
/// settings changed, the only worker in its heartbeat region (no peers: it accepts as soon
/// as it ticks).
fn with_table(threads: usize, settings: &[(&str, i64)], body: impl FnOnce(&mut Table<'_, '_>)) {
    let (mut cfg, server, worker) = Python::attach(|py| {
        let cfg = Config::from_defaults(&Default::default()).expect("default config");
        (cfg, py.None(), py.None())
    });
    for &(name, value) in settings {
        match name {
            "keepalive" => cfg.keepalive = value,
            "worker_connections" => cfg.worker_connections = value,
            _ => panic!("no test setting {name}"),
        }
    }
    cfg.resolve().expect("settings resolve");
    let tcp = TcpListener::bind("127.0.0.1:0").expect("bind");
    tcp.set_nonblocking(true).expect("non-blocking listener");
    let addr = tcp.local_addr().expect("local addr");
    let listeners = [Listener::Tcp(tcp, addr)];
    let mut hb = Heartbeats::new().expect("heartbeat region");
    let slot = hb.allocate().expect("slot");
    let ctx = WorkerContext {
        cfg: &cfg,
        listeners: &listeners,
        age: 1,
        ppid: std::process::id() as i32,
        beat: hb.handle(slot),
        preloaded: None,
        server,
        worker,
        max_requests: 0,
    };
    let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).expect("epoll");
    let mut table = Table {
        conns: Conns::new(&ctx, &cfg.serving().parser, &epoll, threads),
        epoll: &epoll,
        addr,
        listener_events: 0,
    };
    body(&mut table);
}

impl Table<'_, '_> {
    /// One turn of the leader's loop (without running jobs); returns what `tick` said.
    fn turn(&mut self, stop: bool, wait: Duration) -> bool {
        let done = self.conns.tick(stop);
        let mut events = [EpollEvent::empty(); 32];
        let timeout = EpollTimeout::try_from(wait).expect("short wait");
        let n = self.epoll.wait(&mut events, timeout).expect("epoll_wait");
        for ev in &events[..n] {
            match ev.data() {
                WAKE => {}
                key => {
                    if key < CONN_BASE {
                        self.listener_events += 1;
                    }
                    self.conns.handle(key)
                }
            }
        }
        done
    }

    /// Turn until `cond` holds; how long it took.
    fn until(&mut self, what: &str, cond: impl Fn(&Conns<'_, '_>) -> bool) -> Duration {
        let start = Instant::now();
        while !cond(&self.conns) {
            assert!(start.elapsed() < PATIENCE, "timed out waiting for {what}");
            self.turn(false, TURN);
        }
        start.elapsed()
    }

    /// A few turns, for "nothing happens" checks.
    fn settle(&mut self, stop: bool) {
        for _ in 0..5 {
            self.turn(stop, TURN);
        }
    }

    fn job(&mut self) -> Job {
        self.until("a complete request", |c| c.has_ready());
        self.conns.pop_job().expect("a queued job")
    }

    fn client(&self) -> TcpStream {
        let s = TcpStream::connect(self.addr).expect("connect");
        s.set_read_timeout(Some(PATIENCE)).expect("read timeout");
        s
    }

    /// Turn until the server has closed `s` (EOF or reset).
    fn until_closed(&mut self, s: &TcpStream) -> Duration {
        let start = Instant::now();
        while !closed_now(s) {
            assert!(start.elapsed() < PATIENCE, "the server kept the connection");
            self.turn(false, TURN);
        }
        start.elapsed()
    }
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n")
}

fn post_head(len: usize) -> String {
    format!("POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: {len}\r\n\r\n")
}

fn send(s: &mut TcpStream, bytes: impl AsRef<[u8]>) {
    s.write_all(bytes.as_ref()).expect("client write");
}

/// Whether the server has ended its side of `s` (without blocking).
fn closed_now(s: &TcpStream) -> bool {
    let mut b = [0u8; 64];
    s.set_nonblocking(true).expect("non-blocking");
    let res = s.peek(&mut b);
    s.set_nonblocking(false).expect("blocking");
    match res {
        Ok(0) => true,
        Ok(n) => panic!("unexpected bytes from the table: {:?}", &b[..n]),
        Err(e) if e.kind() == ErrorKind::WouldBlock => false,
        Err(_) => true,
    }
}

/// The server has shut its write side: a blocking read ends at once.
fn assert_eof(s: &mut TcpStream) {
    let mut b = [0u8; 64];
    match s.read(&mut b) {
        Ok(0) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        other => panic!("expected the server to have closed, got {other:?}"),
    }
}

fn waiting_body(c: &Conns<'_, '_>) -> usize {
    c.entries
        .iter()
        .filter(|(_, e)| matches!(e, Entry::Reading(conn) if conn.reader.waiting_body()))
        .count()
}

fn closing(c: &Conns<'_, '_>) -> usize {
    c.entries
        .iter()
        .filter(|(_, e)| matches!(e, Entry::Closing(..)))
        .count()
}

#[test]
fn complete_request_becomes_a_busy_job() {
    with_table(2, &[], |t| {
        let mut c = t.client();
        assert!(!t.conns.has_ready());
        send(&mut c, get("/hello?x=1"));
        t.until("the request", |c| c.has_ready());
        assert_eq!((t.conns.reading, t.conns.connections()), (0, 1));
        let job = t.conns.pop_job().expect("job");
        assert_eq!(job.head.method, "GET");
        assert_eq!(job.head.path, "/hello");
        assert_eq!(job.head.query, "x=1");
        assert!(
            !job.close,
            "keep-alive is on and the table is far from full"
        );
        assert!(job.leftover.is_empty());
        assert_eq!(job.conn.served, 0, "its first request: req_number 1");
        assert_eq!(t.conns.busy, 1);
        assert_eq!(t.conns.connections(), 1, "a busy connection still counts");
        assert!(t.conns.pop_job().is_none());
        t.conns.give_back(job.conn, After::Close);
    });
}

#[test]
fn keep_alive_queues_a_pipelined_request_at_once_and_rearms() {
    with_table(2, &[], |t| {
        let mut c = t.client();
        // Accepted and in the epoll set first, so coming back re-arms it (EPOLL_CTL_MOD).
        t.until("the connection", |c| c.reading == 1);
        send(&mut c, format!("{}{}", get("/a"), get("/b")));
        let job = t.job();
        assert_eq!(job.head.path, "/a");
        assert_eq!(
            job.leftover,
            get("/b").into_bytes(),
            "the pipelined request"
        );
        // What the exchange read past the response comes back with the connection.
        t.conns.give_back(job.conn, After::KeepAlive(job.leftover));
        assert_eq!(t.conns.busy, 0);
        let job = t.conns.pop_job().expect("queued without any epoll event");
        assert_eq!(job.head.path, "/b");
        assert_eq!(job.conn.served, 1, "req_number 2");
        assert_eq!((t.conns.busy, t.conns.connections()), (1, 1));
        // Nothing buffered: back to waiting, re-armed for the next request.
        t.conns.give_back(job.conn, After::KeepAlive(Vec::new()));
        assert_eq!(
            (t.conns.reading, t.conns.busy, t.conns.connections()),
            (1, 0, 1)
        );
        t.settle(false);
        assert!(!t.conns.has_ready());
        send(&mut c, get("/c"));
        let job = t.job();
        assert_eq!((job.head.path.as_str(), job.conn.served), ("/c", 2));
        t.conns.give_back(job.conn, After::Close);
    });
}

#[test]
fn close_lingers_until_the_client_closes() {
    with_table(2, &[], |t| {
        let mut c = t.client();
        send(&mut c, get("/"));
        let job = t.job();
        t.conns.give_back(job.conn, After::Close);
        assert_eq!((t.conns.busy, t.conns.connections()), (0, 0));
        assert_eq!(closing(&t.conns), 1, "lingering");
        assert_eq!(t.conns.entries.len(), 1);
        // The write side is shut: the client reads EOF.
        assert_eof(&mut c);
        // What the client still sends is read and discarded; the linger goes on.
        send(&mut c, b"late bytes");
        t.settle(false);
        assert_eq!(closing(&t.conns), 1, "still lingering");
        drop(c);
        let took = t.until("the linger to end", |c| c.entries.is_empty());
        assert!(
            took < Duration::from_secs(1),
            "ended after {took:?}: at its limit, not at EOF"
        );
        assert!(t.conns.tick(true), "nothing left");
    });
}

#[test]
fn gone_ends_the_connection_without_lingering() {
    with_table(2, &[], |t| {
        let mut a = t.client();
        send(&mut a, get("/a"));
        let job = t.job();
        t.conns.give_back(job.conn, After::Gone);
        assert_eq!((t.conns.busy, t.conns.connections()), (0, 0));
        assert!(
            t.conns.entries.is_empty(),
            "no linger for a connection that is gone"
        );
        assert_eof(&mut a);

        let mut b = t.client();
        send(&mut b, get("/b"));
        let job = t.job();
        t.conns.handed_to_writer();
        assert_eq!(
            (t.conns.busy, t.conns.writing, t.conns.connections()),
            (0, 1, 1)
        );
        t.conns.written(job.conn, After::Gone);
        assert_eq!((t.conns.writing, t.conns.connections()), (0, 0));
        assert!(t.conns.entries.is_empty());
        assert_eof(&mut b);
        assert!(t.conns.tick(true));
    });
}

#[test]
fn malformed_request_line_is_rejected_not_dispatched() {
    with_table(2, &[], |t| {
        let mut c = t.client();
        send(&mut c, "GET /\x01 HTTP/1.1 extra\r\nHost: t\r\n\r\n");
        t.until("a reject", |c| !c.rejects.is_empty());
        assert!(!t.conns.has_ready());
        assert!(t.conns.needs_leader(), "the leader answers rejects");
        let mut rejects = t.conns.take_rejects();
        assert_eq!(rejects.len(), 1);
        assert!(t.conns.take_rejects().is_empty());
        let (conn, err) = rejects.pop().expect("one reject");
        assert!(
            !matches!(err, ferrocorn_h1::ParseError::NoMoreData(_)),
            "{err:?}"
        );
        assert_eq!((t.conns.reading, t.conns.connections()), (0, 0));
        // The leader answers it outside the lock, then closes it gracefully.
        t.conns.close(conn);
        assert_eq!(closing(&t.conns), 1);
        assert_eof(&mut c);
    });
}

#[test]
fn small_body_is_gathered_large_body_is_not() {
    with_table(2, &[], |t| {
        let mut c = t.client();
        t.until("the connection", |c| c.reading == 1);
        send(&mut c, format!("{}01234", post_head(10)));
        t.until("the head, waiting for its body", |c| waiting_body(c) == 1);
        t.settle(false);
        assert!(!t.conns.has_ready(), "half a body is not a request yet");
        send(&mut c, "56789");
        let job = t.job();
        assert_eq!(job.head.method, "POST");
        assert_eq!(job.leftover, b"0123456789");
        t.conns.give_back(job.conn, After::Close);

        // Above BUFFER_LIMIT (1 MiB) the body streams from the socket in the thread.
        let big = super::super::tconn::BUFFER_LIMIT as usize + 1;
        let mut d = t.client();
        send(&mut d, format!("{}{}", post_head(big), "x".repeat(100)));
        let job = t.job();
        assert_eq!(job.leftover, vec![b'x'; 100]);
        assert_eq!(waiting_body(&t.conns), 0);
        t.conns.give_back(job.conn, After::Close);
    });
}

#[test]
fn client_closing_mid_body_still_dispatches_what_came() {
    with_table(2, &[], |t| {
        let mut c = t.client();
        send(&mut c, format!("{}abc", post_head(10)));
        c.shutdown(Shutdown::Write).expect("half close");
        let job = t.job();
        assert_eq!(job.head.path, "/up");
        assert_eq!(job.leftover, b"abc", "the app gets what came");
        assert!(job.conn.eof);
        t.conns.give_back(job.conn, After::Gone);

        // Mid-head, though, there is no request: the connection is dropped quietly.
        let mut e = t.client();
        send(&mut e, "GET /x HT");
        e.shutdown(Shutdown::Write).expect("half close");
        t.until_closed(&e);
        t.settle(false);
        assert!(!t.conns.has_ready());
        assert!(t.conns.rejects.is_empty());
        assert_eq!(t.conns.connections(), 0);
    });
}

#[test]
fn jobs_close_without_keepalive_when_full_or_stopping() {
    with_table(2, &[("keepalive", 0)], |t| {
        let mut c = t.client();
        send(&mut c, get("/"));
        let job = t.job();
        assert!(job.close, "keepalive = 0");
        t.conns.give_back(job.conn, After::Close);
    });
    // Gunicorn closes once the worker keeps `worker_connections - threads` connections.
    with_table(2, &[("worker_connections", 3)], |t| {
        let mut b = t.client();
        send(&mut b, get("/alone"));
        let job = t.job();
        assert!(!job.close, "one connection is under the limit of 1");
        t.conns.give_back(job.conn, After::KeepAlive(Vec::new()));
        let _idle = t.client();
        t.until("the second connection", |c| c.reading == 2);
        send(&mut b, get("/crowded"));
        let job = t.job();
        assert_eq!(job.head.path, "/crowded");
        assert!(job.close, "two connections are over the limit of 1");
        t.conns.give_back(job.conn, After::Close);
    });
    with_table(2, &[], |t| {
        let mut c = t.client();
        t.until("the connection", |c| c.reading == 1);
        assert!(!t.turn(true, TURN), "a connection is left");
        send(&mut c, get("/late"));
        let start = Instant::now();
        while !t.conns.has_ready() {
            assert!(start.elapsed() < PATIENCE, "no job while stopping");
            t.turn(true, TURN);
        }
        let job = t.conns.pop_job().expect("job");
        assert!(
            job.close,
            "a stopping worker answers with Connection: close"
        );
        t.conns.give_back(job.conn, After::Close);
    });
}

#[test]
fn idle_keepalive_is_closed_after_keepalive_seconds() {
    with_table(2, &[("keepalive", 1)], |t| {
        let mut kept = t.client();
        send(&mut kept, get("/"));
        let job = t.job();
        t.conns.give_back(job.conn, After::KeepAlive(Vec::new()));
        let back = Instant::now();
        // A connection that never sent anything waits for `timeout`, not `keepalive`.
        let fresh = t.client();
        t.until("both connections", |c| c.reading == 2);
        t.until_closed(&kept);
        let waited = back.elapsed();
        assert!(
            waited >= Duration::from_millis(900),
            "closed after {waited:?}, before keepalive = 1 s"
        );
        assert!(
            waited < Duration::from_millis(2500),
            "closed after {waited:?}"
        );
        assert_eq!(t.conns.reading, 1);
        assert!(!closed_now(&fresh), "the unserved connection is still open");
    });
}

#[test]
fn full_table_evicts_the_longest_idle_connection_not_an_upload() {
    with_table(1, &[("worker_connections", 3)], |t| {
        // The oldest connection is an upload in progress: never the victim.
        let mut upload = t.client();
        send(&mut upload, format!("{}abc", post_head(10)));
        t.until("the upload's head", |c| waiting_body(c) == 1);
        let oldest_idle = t.client();
        t.until("the idle connection", |c| c.reading == 2);
        std::thread::sleep(Duration::from_millis(5));
        let newer_idle = t.client();
        t.until("the newer idle connection", |c| c.reading == 3);
        let mut newcomer = t.client();
        t.until_closed(&oldest_idle);
        t.until("the newcomer", |c| c.reading == 3);
        assert_eq!(waiting_body(&t.conns), 1, "the upload is still there");
        assert!(!closed_now(&upload));
        assert!(!closed_now(&newer_idle), "only the longest idle goes");
        send(&mut upload, "defghij");
        let job = t.job();
        assert_eq!(job.leftover, b"abcdefghij");
        t.conns.give_back(job.conn, After::Close);
        send(&mut newcomer, get("/new"));
        let job = t.job();
        assert_eq!(job.head.path, "/new");
        t.conns.give_back(job.conn, After::Close);
    });
}

#[test]
fn full_table_with_nothing_to_evict_does_not_spin_on_the_listener() {
    with_table(1, &[("worker_connections", 1)], |t| {
        let mut upload = t.client();
        send(&mut upload, format!("{}abc", post_head(10)));
        t.until("the upload's head", |c| waiting_body(c) == 1);
        let _queued = t.client();
        t.settle(false);
        assert_eq!(
            t.conns.reading, 1,
            "no room: the newcomer waits in the backlog"
        );
        let before = t.listener_events;
        let start = Instant::now();
        for _ in 0..10 {
            t.turn(false, Duration::from_millis(20));
        }
        let woken = t.listener_events - before;
        assert!(
            woken <= 1,
            "the listener woke the loop {woken} times in {:?} though nothing can be accepted",
            start.elapsed()
        );
    });
}

#[test]
fn stop_finishes_at_once_when_empty_and_after_the_linger_when_idle() {
    with_table(2, &[], |t| {
        assert!(!t.conns.needs_leader());
        assert!(t.conns.tick(true), "nothing to wait for");
    });
    with_table(2, &[("keepalive", 10)], |t| {
        let mut kept = t.client();
        send(&mut kept, get("/"));
        let job = t.job();
        t.conns.give_back(job.conn, After::KeepAlive(Vec::new()));
        // A close whose client never closes: its linger ends on its own (2 s).
        let mut silent = t.client();
        send(&mut silent, get("/bye"));
        let job = t.job();
        t.conns.give_back(job.conn, After::Close);
        assert_eq!(closing(&t.conns), 1);
        assert!(
            !t.conns.needs_leader(),
            "an idle table lets the leader sleep"
        );
        let start = Instant::now();
        assert!(
            !t.conns.tick(true),
            "an idle keep-alive connection is kept for now"
        );
        assert!(t.conns.needs_leader(), "a stop to finish");
        let ms = t.conns.wait_timeout().as_millis().expect("bounded wait");
        assert!((1..=250).contains(&ms), "wait {ms} ms while stopping");
        // A stopping worker accepts nothing new.
        let _late = t.client();
        while !t.turn(true, Duration::from_millis(50)) {
            assert!(start.elapsed() < Duration::from_secs(4), "never finished");
            assert!(t.conns.reading <= 1, "accepted while stopping");
        }
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(1900),
            "the idle connection was dropped after {took:?}, before Gunicorn's 2 s"
        );
        assert_eof(&mut kept);
        assert!(t.conns.entries.is_empty(), "the linger is over too");
        drop(silent);
    });
}
