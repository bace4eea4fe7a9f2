//! What every connection task of the ASGI worker's I/O thread shares.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::watch;

use crate::config::{AsgiSettings, Serving};
use crate::http::Hub;

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
}

impl ConnCtx {
    pub fn alive(&self) -> bool {
        self.alive.load(Ordering::SeqCst) && !*self.stopping.borrow()
    }
}
