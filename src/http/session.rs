//! One call of an event-loop app (an ASGI HTTP request or WebSocket session, or a WSGI
//! request in a gevent greenlet) as two threads
//! share it: the connection task on the I/O thread, which owns the socket, and the bridge on
//! the event-loop thread, which owns the Python objects. Neither waits for the other: the
//! connection puts what arrived in `inbound` and wakes the loop through the `Hub`; the
//! bridge sends what the app answered down an unbounded channel and, past a high-water
//! mark of unwritten bytes, makes the app wait until the connection wrote them.
//!
//! Owns: the message vocabulary between the two sides, and the hand-over of requests and
//! wake-ups to the event loop (`Hub`: a queue plus an eventfd the loop watches). Must not:
//! parse or frame bytes, touch a socket, or call Python (the waiters it stores are only
//! handled, and cleared when the call ends, on the loop thread by the bridge; a session
//! dropped on the I/O thread while its call still runs leaves its task to PyO3's deferred
//! reference release).

use std::collections::VecDeque;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use nix::sys::eventfd::{EfdFlags, EventFd};
use pyo3::prelude::*;
use tokio::sync::{mpsc, Notify};

use super::Request;

/// Unwritten response bytes past which `send()` makes the app wait.
pub const SEND_HIGH_WATER: usize = 256 * 1024;
/// Unread request bytes past which the connection stops reading the body.
pub const RECEIVE_HIGH_WATER: usize = 256 * 1024;
/// WebSocket messages queued for the app before the connection stops reading frames.
pub const WS_QUEUE_LIMIT: usize = 32;

/// What the connection hands the app, in order.
#[derive(Debug)]
pub enum Inbound {
    /// Request body bytes; `more` is false on the last piece.
    Body {
        data: Vec<u8>,
        more: bool,
    },
    WsText(String),
    WsBytes(Vec<u8>),
    /// The peer closed the WebSocket (its code, or 1006 when the connection just ended).
    WsClosed {
        code: u16,
        reason: String,
    },
}

/// An ASGI header list, as byte pairs.
pub type ByteHeaders = Vec<(Vec<u8>, Vec<u8>)>;

/// What the app answers, in the order it sent it.
#[derive(Debug)]
pub enum Outgoing {
    Informational {
        status: u16,
        headers: ByteHeaders,
    },
    Start {
        status: u16,
        headers: ByteHeaders,
    },
    /// A start and the first body message together: one hand-over for a small response.
    Response {
        status: u16,
        headers: ByteHeaders,
        data: Vec<u8>,
        more: bool,
    },
    Body {
        data: Vec<u8>,
        more: bool,
    },
    /// `http.response.pathsend`: the whole file is the rest of the body.
    PathSend {
        path: String,
    },
    WsAccept {
        subprotocol: Option<String>,
        headers: ByteHeaders,
    },
    WsText(String),
    WsBytes(Vec<u8>),
    WsClose {
        code: u16,
        reason: String,
    },
    /// Response bytes the bridge framed itself (a WSGI response on the gevent worker):
    /// written as they are; `last` ends the response, and with `close` the connection.
    Raw {
        data: Vec<u8>,
        last: bool,
        close: bool,
    },
    /// The app asked for the body: answer a pending `Expect: 100-continue`.
    Continue,
    /// The app's call returned (`failed`: it raised; the bridge logged it).
    Done {
        failed: bool,
    },
}

impl Outgoing {
    fn weight(&self) -> usize {
        match self {
            Outgoing::Body { data, .. }
            | Outgoing::Response { data, .. }
            | Outgoing::Raw { data, .. }
            | Outgoing::WsBytes(data) => data.len(),
            Outgoing::WsText(t) => t.len(),
            _ => 0,
        }
    }
}

/// What kind of call a request starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallKind {
    Http,
    WebSocket { subprotocols: Vec<String> },
}

/// A request for the event loop to start an app call with.
pub struct NewCall {
    pub request: Request,
    pub kind: CallKind,
    pub session: Arc<Session>,
}

/// What the event loop is woken for.
pub enum HubEvent {
    Call(Box<NewCall>),
    /// Something the session's waiters may be waiting for changed.
    Wake(Arc<Session>),
    /// The client left and the grace period is over: cancel the call's task.
    Cancel(Arc<Session>),
}

/// The queue from the I/O thread to the event loop.
pub struct Hub {
    events: Mutex<Vec<HubEvent>>,
    fd: EventFd,
    /// An eventfd write is pending that the loop has not drained yet: later pushes skip it.
    armed: AtomicBool,
}

impl Hub {
    pub fn new() -> std::io::Result<Hub> {
        let fd = EventFd::from_flags(EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC)
            .map_err(std::io::Error::from)?;
        Ok(Hub {
            events: Mutex::new(Vec::new()),
            fd,
            armed: AtomicBool::new(false),
        })
    }

    pub fn push(&self, event: HubEvent) {
        lock(&self.events).push(event);
        if !self.armed.swap(true, Ordering::SeqCst) {
            let _ = self.fd.write(1);
        }
    }

    /// Everything queued so far (the loop thread, when the eventfd is readable).
    pub fn drain(&self) -> Vec<HubEvent> {
        // Clear the eventfd before disarming: a push after the disarm writes it again, and
        // one before it is in the queue taken below, so no event is left without a wake-up.
        let _ = self.fd.read();
        self.armed.store(false, Ordering::SeqCst);
        std::mem::take(&mut *lock(&self.events))
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// The loop thread's messages to the connection tasks, handed to the I/O thread in batches.
/// A message sent straight down a task's channel from another thread wakes the I/O thread
/// (a syscall) every time; through the relay, only the first message after the I/O thread
/// last took the queue does, and whatever the loop sends meanwhile rides along.
#[derive(Default)]
pub struct Relay {
    queue: Mutex<Vec<(mpsc::UnboundedSender<Outgoing>, Outgoing)>>,
    /// A wake-up is pending that the I/O thread has not acted on yet.
    armed: AtomicBool,
    notify: Notify,
}

impl Relay {
    fn push(&self, to: &mpsc::UnboundedSender<Outgoing>, msg: Outgoing) {
        lock(&self.queue).push((to.clone(), msg));
        if !self.armed.swap(true, Ordering::SeqCst) {
            self.notify.notify_one();
        }
    }

    /// The I/O thread's side: hand every queued message to its connection task, for good.
    pub async fn run(&self) {
        loop {
            self.notify.notified().await;
            // Disarm before taking: a push after this wakes again, one before it is taken
            // below (as in `Hub::drain`).
            self.armed.store(false, Ordering::SeqCst);
            let batch = std::mem::take(&mut *lock(&self.queue));
            for (to, msg) in batch {
                let _ = to.send(msg);
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The state both sides touch, under one lock.
#[derive(Default)]
pub struct SessionState {
    pub inbound: VecDeque<Inbound>,
    /// Bytes in `inbound` (for the connection's read pacing).
    pub inbound_bytes: usize,
    /// The client is gone, or the response is complete: `receive()` says disconnect.
    pub disconnected: bool,
    /// The future a `receive()` waits on (loop thread only).
    pub recv_waiter: Option<Py<PyAny>>,
    /// The future a `send()` waits on for the connection to write (loop thread only).
    pub send_waiter: Option<Py<PyAny>>,
    /// The app's task, to cancel once the client left (loop thread only).
    pub task: Option<Py<PyAny>>,
    /// The client went away (not merely the response completing).
    pub client_gone: bool,
    /// The WebSocket close the peer sent (or 1006), once it is known.
    pub ws_close: Option<(u16, String)>,
    /// `Expect: 100-continue` is still unanswered: the first `receive()` answers it.
    pub continue_pending: bool,
    /// Why the request body could not be read (a WSGI call's `wsgi.input` reports it).
    pub body_error: Option<ferrocorn_h1::ParseError>,
    /// A Wake for this session is queued and not yet handled.
    wake_queued: bool,
}

pub struct Session {
    /// A WebSocket session rather than an HTTP request.
    pub ws: bool,
    state: Mutex<SessionState>,
    out: mpsc::UnboundedSender<Outgoing>,
    /// The app took inbound data: the connection may read more.
    pub space: Notify,
    unwritten: AtomicUsize,
    hub: Arc<Hub>,
    /// Messages go through this relay instead of straight down the channel.
    relay: Option<Arc<Relay>>,
}

impl Session {
    pub fn new(
        hub: Arc<Hub>,
        ws: bool,
        relay: Option<Arc<Relay>>,
    ) -> (Arc<Session>, mpsc::UnboundedReceiver<Outgoing>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let s = Session {
            ws,
            state: Mutex::new(SessionState::default()),
            out: tx,
            space: Notify::new(),
            unwritten: AtomicUsize::new(0),
            hub,
            relay,
        };
        (Arc::new(s), rx)
    }

    pub fn state(&self) -> MutexGuard<'_, SessionState> {
        lock(&self.state)
    }

    /// Connection side: queue what arrived and wake a waiting `receive()`.
    pub fn deliver(self: &Arc<Self>, item: Inbound) {
        let mut st = self.state();
        if let Inbound::Body { data, .. } | Inbound::WsBytes(data) = &item {
            st.inbound_bytes += data.len();
        } else if let Inbound::WsText(t) = &item {
            st.inbound_bytes += t.len();
        }
        st.inbound.push_back(item);
        self.wake_locked(st);
    }

    /// Connection side: the response is complete (`client_gone`: or the client left).
    pub fn disconnect(self: &Arc<Self>, client_gone: bool) {
        let mut st = self.state();
        st.client_gone |= client_gone;
        if st.disconnected {
            return;
        }
        st.disconnected = true;
        self.wake_locked(st);
    }

    fn wake_locked(self: &Arc<Self>, mut st: MutexGuard<'_, SessionState>) {
        let waiting = st.recv_waiter.is_some() || st.send_waiter.is_some();
        if waiting && !st.wake_queued {
            st.wake_queued = true;
            drop(st);
            self.hub.push(HubEvent::Wake(self.clone()));
        }
    }

    /// Loop side: a queued Wake is being handled.
    pub fn woken(st: &mut SessionState) {
        st.wake_queued = false;
    }

    /// Connection side: the client left; after the grace period the task is cancelled.
    pub fn request_cancel(self: &Arc<Self>) {
        self.hub.push(HubEvent::Cancel(self.clone()));
    }

    /// Bridge side: hand the connection a message. False when the connection is gone.
    pub fn send(&self, msg: Outgoing) -> bool {
        let w = msg.weight();
        if w > 0 {
            self.unwritten.fetch_add(w, Ordering::SeqCst);
        }
        match &self.relay {
            Some(relay) if !self.out.is_closed() => {
                relay.push(&self.out, msg);
                true
            }
            Some(_) => false,
            None => self.out.send(msg).is_ok(),
        }
    }

    /// Bridge side: whether the app must wait before sending more.
    pub fn over_high_water(&self) -> bool {
        self.unwritten.load(Ordering::SeqCst) > SEND_HIGH_WATER
    }

    /// Connection side: `n` bytes of what the app sent are written (or dropped).
    pub fn written(self: &Arc<Self>, n: usize) {
        // Saturating: `abandon_output` may have zeroed the count already.
        let before = self
            .unwritten
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |u| {
                Some(u.saturating_sub(n))
            })
            .unwrap_or(0);
        let n = n.min(before);
        if before > SEND_HIGH_WATER && before - n <= SEND_HIGH_WATER {
            let st = self.state();
            if st.send_waiter.is_some() {
                self.wake_locked(st);
            }
        }
    }

    /// Connection side: the app's messages will never be written; release a waiting send.
    pub fn abandon_output(self: &Arc<Self>) {
        self.unwritten.store(0, Ordering::SeqCst);
        let st = self.state();
        self.wake_locked(st);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

    use super::{Hub, HubEvent, Session};

    /// Every push is followed by a readable eventfd until it is drained: a consumer that
    /// only drains when woken never strands an event (the order of read, disarm and take in
    /// `drain` is what guarantees it).
    #[test]
    fn no_event_is_left_without_a_wake_up() {
        let hub = Arc::new(Hub::new().unwrap());
        const N: usize = 20_000;
        let (session, _rx) = Session::new(hub.clone(), false, None);
        let producer = {
            let hub = hub.clone();
            std::thread::spawn(move || {
                for i in 0..N {
                    hub.push(HubEvent::Cancel(session.clone()));
                    if i % 97 == 0 {
                        std::thread::yield_now();
                    }
                }
            })
        };
        let mut got = 0;
        while got < N {
            let mut fds = [PollFd::new(hub.fd(), PollFlags::POLLIN)];
            let ready = poll(&mut fds, PollTimeout::from(2000u16)).unwrap();
            assert!(
                ready > 0,
                "stranded: {got} of {N} events arrived, then no wake-up"
            );
            got += hub.drain().len();
        }
        producer.join().unwrap();
        assert_eq!(got, N);
        std::thread::sleep(Duration::from_millis(10));
        assert!(hub.drain().is_empty());
    }
}
