//! What every connection task of the event-loop workers' I/O thread shares (the ASGI
//! worker's, which the gevent worker runs too).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::watch;

use super::super::request::{enter_call, leave_call};
use crate::config::{AsgiSettings, Serving};
use crate::http::{Hub, Relay, Session};
use crate::sys::heartbeat::Beat;

/// What every connection task shares.
pub struct ConnCtx {
    pub hub: Arc<Hub>,
    pub serving: Serving,
    pub asgi: AsgiSettings,
    /// The worker's `alive` flag: a stopping worker closes after the response.
    pub alive: Arc<AtomicBool>,
    /// Becomes true when the worker stops accepting.
    pub stopping: watch::Receiver<bool>,
    /// Open connections.
    pub conns: AtomicUsize,
    /// The heartbeat: how long the worker has had a request in flight, for WORKER TIMEOUT.
    pub beat: Beat,
    pub next_call: AtomicU64,
    /// TLS sessions for new connections, when TLS is on.
    pub tls: Option<Arc<crate::tls::Acceptor>>,
    /// The static-file mounts, answered in the connection tasks.
    pub statics: Option<Arc<crate::statics::Statics>>,
    /// The calls are WSGI requests (the gevent worker): the bridge frames each response
    /// (`Outgoing::Raw`), writes the access log and counts the request itself, and an
    /// Upgrade request is an ordinary one for the app.
    pub wsgi: bool,
    /// The gevent worker's calls send through a relay (see `http::Relay`).
    pub relay: Option<Arc<Relay>>,
}

/// A request in flight, for the abort log and the heartbeat, until dropped.
pub struct InFlight<'a> {
    ctx: &'a ConnCtx,
    id: u64,
}

impl ConnCtx {
    /// Cancel the app's task once `asgi_disconnect_grace_period` after its client left is over.
    pub fn cancel_after_grace(&self, session: &Arc<Session>) {
        let session = session.clone();
        let grace = self.asgi.disconnect_grace;
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            session.request_cancel();
        });
    }

    pub fn in_flight(&self, method: &str, uri: &str) -> InFlight<'_> {
        let id = self.next_call.fetch_add(1, Ordering::Relaxed);
        if enter_call(id, method, uri) {
            self.beat.request_started();
        }
        crate::telemetry::metrics::request_started();
        InFlight { ctx: self, id }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if leave_call(self.id) {
            self.ctx.beat.request_finished();
        }
        crate::telemetry::metrics::request_left();
    }
}

impl ConnCtx {
    pub fn alive(&self) -> bool {
        self.alive.load(Ordering::SeqCst) && !*self.stopping.borrow()
    }
}
