//! The ASGI worker's I/O thread: one current-thread tokio runtime that accepts on every
//! listener (at most `worker_connections` connections open at once; the rest wait in the
//! backlog for a worker with room) and runs a task per connection. The event loop tells it
//! when to start, to stop accepting (which also closes idle connections and asks open
//! WebSockets to close), and to close everything.
//!
//! Owns: the runtime, the listeners' duplicates, the connection count. Must not: call
//! Python.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};

use super::super::state::WorkerState;
use super::ctx::ConnCtx;
use super::stream::{Socket, Stream};
use crate::http::{Hub, Peer, ServerAddr};
use crate::net::Listener;
use crate::telemetry::error_log;

enum Control {
    Start,
    /// Answered once no more connections will be accepted.
    StopAccepting(std::sync::mpsc::SyncSender<()>),
    CloseAll,
}

/// Threads that may wait for the disk for static files at once (idle ones end after 10 s).
const BLOCKING_THREADS: usize = 8;

/// A listener, duplicated so the runtime can own it while the worker keeps the original.
enum StdListener {
    Tcp(std::net::TcpListener),
    Unix(std::os::unix::net::UnixListener),
}

pub struct Io {
    control: mpsc::UnboundedSender<Control>,
    thread: Option<JoinHandle<()>>,
    pub ctx: Arc<ConnCtx>,
}

/// Counts a connection while its task runs.
struct Open(Arc<ConnCtx>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.conns.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Io {
    /// Start the I/O thread for this worker. `wsgi`: the calls are the gevent worker's WSGI
    /// requests (see `ConnCtx::wsgi`).
    pub fn start(st: &WorkerState<'_>, hub: Arc<Hub>, wsgi: bool) -> std::io::Result<Io> {
        let listeners = st.ctx.listeners;
        let serving = st.ctx.cfg.serving().clone();
        let (alive, beat) = (st.alive.clone(), st.ctx.beat);
        let (tls, statics) = (st.tls.clone(), st.statics.clone());
        let mut dups = Vec::new();
        for l in listeners {
            let server = l.server_addr();
            let std_l = match l {
                Listener::Tcp(t, _) => StdListener::Tcp(t.try_clone()?),
                Listener::Unix(u, _, _) => StdListener::Unix(u.try_clone()?),
            };
            dups.push((std_l, server));
        }
        let (stop_tx, stop_rx) = watch::channel(false);
        let ctx = Arc::new(ConnCtx {
            hub,
            asgi: serving.asgi.clone(),
            serving,
            alive,
            stopping: stop_rx,
            conns: AtomicUsize::new(0),
            beat,
            next_call: std::sync::atomic::AtomicU64::new(0),
            tls,
            statics,
            wsgi,
            relay: wsgi.then(Arc::default),
        });
        let (tx, rx) = mpsc::unbounded_channel();
        // The blocking threads only open and read static files; a few are enough to keep
        // the disk busy, and a burst of requests queues for them instead of starting a
        // thread each.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .max_blocking_threads(BLOCKING_THREADS)
            .build()?;
        let c = ctx.clone();
        let thread = std::thread::Builder::new()
            .name("ferrocorn-io".into())
            .spawn(move || {
                rt.block_on(run(dups, c, rx, stop_tx));
                // Dropping the runtime drops every connection task: their sockets close.
                drop(rt);
            })?;
        Ok(Io {
            control: tx,
            thread: Some(thread),
            ctx,
        })
    }

    pub fn start_serving(&self) {
        let _ = self.control.send(Control::Start);
    }

    /// Stop accepting, and return once the I/O thread has (call without the GIL): from then
    /// on `connections()` counts every connection this worker will ever have, so a stop that
    /// waits for it to reach 0 cannot close one accepted meanwhile.
    pub fn stop_accepting(&self) {
        let (done, wait) = std::sync::mpsc::sync_channel(1);
        if self.control.send(Control::StopAccepting(done)).is_ok() {
            let _ = wait.recv_timeout(Duration::from_secs(5));
        }
    }

    pub fn connections(&self) -> usize {
        self.ctx.conns.load(Ordering::SeqCst)
    }

    /// Close every connection and end the thread (call without the GIL: it joins).
    pub fn shutdown(&mut self) {
        let _ = self.control.send(Control::CloseAll);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Io {
    fn drop(&mut self) {
        self.shutdown();
    }
}

async fn run(
    listeners: Vec<(StdListener, ServerAddr)>,
    ctx: Arc<ConnCtx>,
    mut control: mpsc::UnboundedReceiver<Control>,
    stop_tx: watch::Sender<bool>,
) {
    let mut accepts = Vec::new();
    if let Some(relay) = ctx.relay.clone() {
        tokio::spawn(async move { relay.run().await });
    }
    while let Some(c) = control.recv().await {
        match c {
            Control::Start if accepts.is_empty() => {
                let room = Arc::new(Semaphore::new(ctx.asgi.worker_connections.max(1)));
                for (l, server) in listeners.iter() {
                    match accept_loop(l, server.clone(), room.clone(), ctx.clone()) {
                        Ok(task) => accepts.push(task),
                        Err(e) => error_log::error(&format!("Failed to serve on {server:?}: {e}")),
                    }
                }
            }
            Control::Start => {}
            Control::StopAccepting(done) => {
                // An aborted accept task is never polled again (this runtime has one thread),
                // and one that accepted counted the connection before it yielded.
                for a in accepts.drain(..) {
                    a.abort();
                }
                if ctx.beat.drain_requested() {
                    drain_backlog(&listeners, &ctx);
                }
                let _ = stop_tx.send(true);
                let _ = done.send(());
            }
            Control::CloseAll => break,
        }
    }
}

fn accept_loop(
    l: &StdListener,
    server: ServerAddr,
    room: Arc<Semaphore>,
    ctx: Arc<ConnCtx>,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    enum Async {
        Tcp(tokio::net::TcpListener),
        Unix(tokio::net::UnixListener),
    }
    let listener = match l {
        StdListener::Tcp(t) => {
            let t = t.try_clone()?;
            t.set_nonblocking(true)?;
            Async::Tcp(tokio::net::TcpListener::from_std(t)?)
        }
        StdListener::Unix(u) => {
            let u = u.try_clone()?;
            u.set_nonblocking(true)?;
            Async::Unix(tokio::net::UnixListener::from_std(u)?)
        }
    };
    Ok(tokio::spawn(async move {
        loop {
            let Ok(permit) = room.clone().acquire_owned().await else {
                return;
            };
            let accepted = match &listener {
                Async::Tcp(t) => t.accept().await.map(|(s, a)| {
                    let _ = s.set_nodelay(true);
                    (Socket::Tcp(s), Peer::Ip(a))
                }),
                Async::Unix(u) => u.accept().await.map(|(s, _)| (Socket::Unix(s), Peer::Unix)),
            };
            match accepted {
                Ok((sock, peer)) => spawn_conn(sock, peer, server.clone(), &ctx, Some(permit)),
                Err(e) => {
                    // Out of descriptors or memory: wait instead of spinning.
                    error_log::debug(&format!("accept failed: {e}"));
                    drop(permit);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }))
}

fn spawn_conn(
    sock: Socket,
    peer: Peer,
    server: ServerAddr,
    ctx: &Arc<ConnCtx>,
    permit: Option<OwnedSemaphorePermit>,
) {
    let mut stream = Stream::new(sock, ctx.serving.io_deadline());
    if let Some(tls) = &ctx.tls {
        match tls.session(peer.ip_string(), ctx.serving.proxy_protocol) {
            Some(session) => stream = stream.with_tls(session),
            None => return,
        }
    }
    ctx.conns.fetch_add(1, Ordering::SeqCst);
    let open = Open(ctx.clone());
    let c = ctx.clone();
    tokio::spawn(async move {
        let _permit = permit;
        let _open = open;
        super::http1::serve(stream, peer, server, c).await;
    });
}

/// A final stop: the master made the kernel drop new connection attempts, so every
/// connection already queued is taken and served instead of being reset by the close.
fn drain_backlog(listeners: &[(StdListener, ServerAddr)], ctx: &Arc<ConnCtx>) {
    for (l, server) in listeners {
        let nonblocking = match l {
            StdListener::Tcp(t) => t.set_nonblocking(true),
            StdListener::Unix(u) => u.set_nonblocking(true),
        };
        if nonblocking.is_err() {
            continue;
        }
        loop {
            let accepted = match l {
                StdListener::Tcp(t) => t.accept().and_then(|(s, a)| {
                    s.set_nonblocking(true)?;
                    let _ = s.set_nodelay(true);
                    Ok((
                        Socket::Tcp(tokio::net::TcpStream::from_std(s)?),
                        Peer::Ip(a),
                    ))
                }),
                StdListener::Unix(u) => u.accept().and_then(|(s, _)| {
                    s.set_nonblocking(true)?;
                    Ok((
                        Socket::Unix(tokio::net::UnixStream::from_std(s)?),
                        Peer::Unix,
                    ))
                }),
            };
            match accepted {
                Ok((sock, peer)) => spawn_conn(sock, peer, server.clone(), ctx, None),
                // WouldBlock: the queue is empty (the listeners are non-blocking).
                Err(_) => break,
            }
        }
    }
}
