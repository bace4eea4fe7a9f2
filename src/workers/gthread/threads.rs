//! Who does what among the gthread worker's threads. Every thread can lead: the leader
//! holds the GIL, polls the connections (`conns`) and runs the app on each complete request
//! itself, one after another, so a request costs no thread wake-up and no GIL hand-over.
//! The other threads park, except one spare that watches the leader without the GIL and,
//! once the leader's request has been in the app for `WATCH`, asks for the GIL. It gets it
//! at once if the app blocks (sleep, I/O), or after CPython's switch interval if the app is
//! busy in Python. In the first case the spare takes over leadership, so blocking apps
//! still run `threads` requests at a time; in the second it gives the GIL straight back,
//! unless the leader's request has run for `LONG_REQUEST`, when sharing the GIL between
//! requests is fairer. A response finished in memory goes to the writer thread (`writer`).
//!
//! This module owns the roles and the GIL; it never parses and never touches a socket
//! except through `conns`, the connection layer and `request::handle_request`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ferrocorn_h1::ParserConfig;
use nix::sys::epoll::{Epoll, EpollEvent, EpollTimeout};
use nix::sys::eventfd::EventFd;
use pyo3::prelude::*;

use super::conns::{Conns, Job, WAKE};
use super::tconn::{self, TConn};
use super::writer::{Outgoing, Writer};
use crate::conn::{self, reader, H1Exchange, Setup};
use crate::http::{self, After, SharedExchange};
use crate::workers::request;
use crate::workers::state::WorkerState;

/// A request that has held the leader this long is sliced with the others (Gunicorn's
/// threads share the GIL this way).
const LONG_REQUEST: Duration = Duration::from_millis(20);
/// How long the leader's request must have been in the app before the spare asks for the
/// GIL to see whether it is blocked.
const WATCH: Duration = Duration::from_micros(300);
/// A spare whose leader has been idle this long parks (the next request wakes one).
const SPARE_IDLE: Duration = Duration::from_millis(100);
/// How long a leader that let go of the GIL in the app may take to come back for it before
/// the spare counts it as blocked.
const GRACE: Duration = Duration::from_micros(100);

#[derive(Default)]
struct Ctl {
    leader: Option<usize>,
    /// The leader is running a request (it may be blocked, or waiting for the GIL).
    leader_in_app: bool,
    app_started: Option<Instant>,
    /// Counts the leader's requests, so a spare can tell one request from the next.
    app_seq: u64,
    /// Threads asked to wait for the GIL as spare.
    spares: usize,
    spare_wanted: bool,
    parked: usize,
    shutdown: bool,
    /// A stopping worker has nothing left to do.
    finished: bool,
    fatal: Option<PyErr>,
}

pub struct Shared<'s, 'a> {
    pub st: &'s WorkerState<'a>,
    pub pcfg: &'s ParserConfig,
    pub epoll: &'s Epoll,
    pub conns: Mutex<Conns<'s, 'a>>,
    ctl: Mutex<Ctl>,
    cv: Condvar,
    /// Wakes the leader out of epoll (registered there as `WAKE`).
    pub wake: EventFd,
    /// Wakes the worker's main thread (finished, or a fatal error).
    pub main_wake: EventFd,
    /// Sends responses the threads finished in memory.
    pub writer: Writer,
    stop: AtomicBool,
    /// Below this a spare got the GIL because the leader let go, not because CPython
    /// forced a switch (which takes a whole switch interval).
    voluntary: Duration,
    /// Connections speak TLS: reads may run handshakes.
    tls: bool,
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

enum Role {
    Leader,
    Spare,
    Exit,
}

impl<'s, 'a> Shared<'s, 'a> {
    pub fn new(
        st: &'s WorkerState<'a>,
        pcfg: &'s ParserConfig,
        epoll: &'s Epoll,
        conns: Conns<'s, 'a>,
        wake: EventFd,
        main_wake: EventFd,
        switch_interval: Duration,
    ) -> std::io::Result<Self> {
        let cfg = st.ctx.cfg;
        // `--timeout 0` turns the worker timeout off; a response still gets the table's 30 s
        // default.
        let writer = Writer::new(cfg.serving().io_deadline(), cfg.workers.max(1) as usize)?;
        Ok(Shared {
            st,
            pcfg,
            epoll,
            conns: Mutex::new(conns),
            ctl: Mutex::new(Ctl::default()),
            cv: Condvar::new(),
            wake,
            main_wake,
            writer,
            stop: AtomicBool::new(false),
            voluntary: switch_interval.mul_f64(0.8),
            tls: st.tls.is_some(),
        })
    }

    /// The worker was told to stop: the leader stops accepting and winds down.
    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.wake.write(1);
    }

    /// Threads finish the request they hold, then return.
    pub fn shutdown(&self) {
        locked(&self.ctl).shutdown = true;
        self.cv.notify_all();
        let _ = self.wake.write(1);
    }

    pub fn finished(&self) -> bool {
        locked(&self.ctl).finished
    }

    pub fn take_fatal(&self) -> Option<PyErr> {
        locked(&self.ctl).fatal.take()
    }

    fn park(&self, id: usize) -> Role {
        let mut c = locked(&self.ctl);
        c.parked += 1;
        let role = loop {
            if c.shutdown {
                break Role::Exit;
            }
            if c.leader.is_none() {
                c.leader = Some(id);
                c.leader_in_app = false;
                break Role::Leader;
            }
            if c.spare_wanted {
                c.spare_wanted = false;
                c.spares += 1;
                break Role::Spare;
            }
            c = self.cv.wait(c).unwrap_or_else(|p| p.into_inner());
        };
        c.parked -= 1;
        role
    }
}

/// One thread of the worker, until it shuts down.
pub fn thread_main(sh: &Shared<'_, '_>, id: usize) {
    let mut events = vec![EpollEvent::empty(); 128];
    loop {
        let role = sh.park(id);
        let exit = match role {
            Role::Exit => return,
            Role::Leader => Python::attach(|py| lead(py, sh, id, &mut events)),
            Role::Spare => {
                let mut gave_back = None;
                loop {
                    if !watch(sh, gave_back) {
                        break false;
                    }
                    let asked = Instant::now();
                    let outcome = Python::attach(|py| match spare(py, sh, id, asked) {
                        Spare::Lead => Some(lead(py, sh, id, &mut events)),
                        Spare::Park => Some(false),
                        Spare::Watch(seq) => {
                            gave_back = seq;
                            None
                        }
                    });
                    if let Some(exit) = outcome {
                        break exit;
                    }
                }
            }
        };
        if exit {
            return;
        }
    }
}

/// Watch the leader without the GIL, waking every `WATCH` at most. True once the leader's
/// request has been in the app for `WATCH` (for `LONG_REQUEST` if it is request
/// `gave_back`, a busy one the spare already gave the GIL back to): then it is worth asking
/// for the GIL. False to park: shutting down, nobody leads, or the leader idle for
/// `SPARE_IDLE`. A request of a few microseconds therefore never wakes anybody, where
/// asking for the GIL on every request cost each one a few thread switches.
fn watch(sh: &Shared<'_, '_>, gave_back: Option<u64>) -> bool {
    let mut c = locked(&sh.ctl);
    let mut idle_since: Option<Instant> = None;
    loop {
        if c.shutdown || c.leader.is_none() {
            c.spares -= 1;
            return false;
        }
        let wait = match (c.leader_in_app, c.app_started) {
            (true, Some(started)) => {
                idle_since = None;
                let due = if gave_back == Some(c.app_seq) {
                    LONG_REQUEST
                } else {
                    WATCH
                };
                match due.checked_sub(started.elapsed()) {
                    Some(left) if !left.is_zero() => left,
                    _ => return true,
                }
            }
            _ => {
                if idle_since.get_or_insert_with(Instant::now).elapsed() >= SPARE_IDLE {
                    c.spares -= 1;
                    return false;
                }
                WATCH
            }
        };
        c = sh
            .cv
            .wait_timeout(c, wait)
            .unwrap_or_else(|p| p.into_inner())
            .0;
    }
}

enum Spare {
    /// This thread leads now.
    Lead,
    Park,
    /// Back to watching; `Some(seq)`: the GIL went back to request `seq`, which is busy.
    Watch(Option<u64>),
}

/// Wait for the GIL as spare and decide what it meant.
///
/// Getting the GIL quickly while the leader is in the app means the leader let go of it:
/// blocked (take over), or only for a moment (a close(2), a short write). The spare tells
/// them apart by letting `GRACE` pass and looking again: a leader still on the same request
/// is blocked. Getting it only after a switch interval means CPython made a busy leader let
/// go: give it back, unless that request has run for `LONG_REQUEST`.
fn spare(py: Python<'_>, sh: &Shared<'_, '_>, id: usize, mut asked: Instant) -> Spare {
    let mut suspect: Option<u64> = None;
    loop {
        let waited = asked.elapsed();
        let mut c = locked(&sh.ctl);
        if c.shutdown {
            c.spares -= 1;
            return Spare::Park;
        }
        if c.leader.is_some() {
            if !c.leader_in_app {
                return Spare::Watch(None);
            }
            // We hold the GIL, so the leader is not running Python.
            let long = c.app_started.is_some_and(|t| t.elapsed() >= LONG_REQUEST);
            let blocked = waited < sh.voluntary && suspect == Some(c.app_seq);
            if !long && !blocked {
                if waited >= sh.voluntary {
                    return Spare::Watch(Some(c.app_seq));
                }
                suspect = Some(c.app_seq);
                drop(c);
                asked = py.detach(|| {
                    std::thread::sleep(GRACE);
                    Instant::now()
                });
                continue;
            }
        }
        c.spares -= 1;
        c.leader = Some(id);
        c.leader_in_app = false;
        c.app_started = None;
        return Spare::Lead;
    }
}

/// Lead until leadership passes to another thread (false) or the worker shuts down (true).
fn lead(py: Python<'_>, sh: &Shared<'_, '_>, id: usize, events: &mut [EpollEvent]) -> bool {
    loop {
        if locked(&sh.ctl).shutdown {
            return true;
        }
        let stop = sh.stop.load(Ordering::SeqCst);
        let (job, done) = {
            let mut conns = locked(&sh.conns);
            let done = conns.tick(stop);
            (conns.pop_job(), done)
        };
        if done {
            let mut c = locked(&sh.ctl);
            if !c.finished {
                c.finished = true;
                let _ = sh.main_wake.write(1);
            }
        }
        tconn::close_buried(py);
        if let Some(job) = job {
            if !serve_job(py, sh, id, job) {
                return false;
            }
            continue;
        }
        let mut n = sh.epoll.wait(events, EpollTimeout::ZERO).unwrap_or(0);
        if n == 0 {
            let timeout = locked(&sh.conns).wait_timeout();
            // An error is EINTR (a signal for the main thread) or not worth dying of.
            n = py.detach(|| sh.epoll.wait(events, timeout).unwrap_or_default());
        }
        let handle_events = || {
            let mut conns = locked(&sh.conns);
            for ev in &events[..n] {
                match ev.data() {
                    WAKE => {
                        let _ = sh.wake.read();
                    }
                    key => conns.handle(key),
                }
            }
            conns.take_rejects()
        };
        // TLS handshakes are real CPU work (signatures, key exchange): do them without the
        // GIL so app threads run meanwhile. Reads on established connections (plain or
        // TLS) are too short to be worth a switch, which can cost a whole switch interval.
        let handshakes = sh.tls && {
            let conns = locked(&sh.conns);
            events[..n].iter().any(|ev| conns.may_handshake(ev.data()))
        };
        let rejects = if handshakes {
            py.detach(handle_events)
        } else {
            handle_events()
        };
        for (mut c, err) in rejects {
            // An error page is small; a client that does not take it in a second loses it.
            let _ = c.transport.set_write_timeout(Some(Duration::from_secs(1)));
            conn::send_parse_error(py, &mut c.transport, &c.peer, &err);
            locked(&sh.conns).close(c);
        }
    }
}

/// Run one request on this thread (which holds the GIL) and hand its connection back.
/// True while this thread leads afterwards.
fn serve_job(py: Python<'_>, sh: &Shared<'_, '_>, id: usize, job: Job) -> bool {
    {
        let mut c = locked(&sh.ctl);
        if c.leader == Some(id) {
            c.leader_in_app = true;
            c.app_started = Some(Instant::now());
            c.app_seq += 1;
        }
        if c.spares == 0 && !c.spare_wanted && c.parked > 0 && !c.shutdown {
            c.spare_wanted = true;
            sh.cv.notify_one();
        }
    }
    let served = serve(py, sh, job);
    let still = {
        let mut c = locked(&sh.ctl);
        if c.leader != Some(id) && (c.leader.is_none() || c.leader_in_app) {
            // Whoever leads now is in the app and not running (we hold the GIL).
            c.leader = Some(id);
        }
        let still = c.leader == Some(id);
        if still {
            c.leader_in_app = false;
            c.app_started = None;
        }
        still
    };
    let (queued, outgoing) = {
        let mut conns = locked(&sh.conns);
        let outgoing = match served {
            // The response is in memory: to the writer thread, which hands the connection
            // back once it is out.
            Some((conn, after, unsent)) if !unsent.is_empty() => {
                conns.handed_to_writer();
                Some(Outgoing {
                    conn,
                    bytes: unsent,
                    after,
                })
            }
            Some((conn, after, _)) => {
                conns.give_back(conn, after);
                None
            }
            None => {
                conns.lost();
                None
            }
        };
        (conns.has_ready(), outgoing)
    };
    if let Some(out) = outgoing {
        sh.writer.push(out);
    }
    if !still && queued {
        // A pipelined request queued by a thread that does not lead: the leader may be
        // blocked in epoll.
        let _ = sh.wake.write(1);
    }
    still
}

/// Run one request: the connection back with what becomes of it and the response bytes
/// still to send, or None if the connection was lost.
fn serve(py: Python<'_>, sh: &Shared<'_, '_>, job: Job) -> Option<(Box<TConn>, After, Vec<u8>)> {
    let Job {
        mut conn,
        head,
        leftover,
        close,
    } = job;
    let listener = &sh.st.ctx.listeners[conn.listener];
    let proxy = conn.reader.proxy_info().cloned();
    let (req, framing) = reader::into_request(
        *head,
        conn.peer.clone(),
        listener.server_addr(),
        proxy,
        conn.served + 1,
    );
    if let Some(statics) = sh.st.statics.as_deref() {
        if let Some(target) = statics.lookup(&req.path, req.gateway.is_some()) {
            // Marked in the app like any request: a client slow to take the file gets this
            // thread replaced as leader by the spare.
            let c = crate::workers::statics::Conn {
                transport: &mut conn.transport,
                leftover,
                close,
                liveness: None,
            };
            let after =
                py.detach(|| crate::workers::statics::serve(statics, target, &req, framing, c));
            return Some((conn, after, Vec::new()));
        }
    }
    let setup = Setup {
        pcfg: sh.pcfg,
        framing,
        version: req.version,
        method: &req.method,
        leftover,
        may_hold: sh.writer.enabled(),
        body_wait: None,
    };
    // The exchange owns the transport while the request runs.
    let exchange = Arc::new(Mutex::new(H1Exchange::new(
        conn.transport,
        conn.peer.clone(),
        setup,
    )));
    let shared: SharedExchange = exchange.clone();
    let mut app_socket = conn.app_socket.0.take();
    // A bug on the request path must cost one connection, never the worker.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        request::handle_request(py, &sh.st.scope, &shared, req, &mut app_socket, close)
    }));
    conn.app_socket.0 = app_socket;
    let panicked = outcome.is_err();
    let after = match outcome {
        Ok(Ok(after)) => after,
        Ok(Err(err)) => {
            // SystemExit from the app or a hook: the worker exits with it, as Gunicorn's
            // gthread worker does.
            let mut c = locked(&sh.ctl);
            if c.fatal.is_none() {
                c.fatal = Some(err);
            }
            let _ = sh.main_wake.write(1);
            After::Gone
        }
        Err(panic) => {
            request::log_request_panic(panic);
            After::Close
        }
    };
    let taken = http::lock(py, &exchange).take_back();
    let (transport, mut unsent) = taken?;
    if panicked {
        // Whatever the request held back may be a truncated response: it is not sent.
        unsent.clear();
    }
    conn.transport = transport;
    Some((conn, after, unsent))
}
