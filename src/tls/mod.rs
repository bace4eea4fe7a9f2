//! TLS configuration and sessions for every worker, with rustls (ring provider).
//!
//! The master turns Gunicorn's SSL settings and `ssl_context` hook into a `Spec` (through
//! `ferrocorn._tls`, which records what the hook configures), reads the files it names into
//! `Material`, and checks that a rustls `ServerConfig` can be built from it, so a bad file
//! stops start-up (or a HUP) with a message naming the setting. Forked workers inherit the
//! master's last good material, build their `Acceptor` from it without reading a file, and
//! watch the files for renewal (`watch`). `Session` is the per-connection state machine the
//! connection layers drive with their own sockets.
//!
//! Owns: TLS settings, certificate loading and renewal, per-connection TLS state, and what
//! an app may learn about a TLS connection (`ConnInfo`). Must not: touch a socket (callers
//! hand it `Read`/`Write` adapters), parse HTTP, or run the app.

pub mod ciphers;
mod info;
mod material;
mod session;
mod spec;
mod watch;

use std::sync::{Arc, Mutex, RwLock};

use pyo3::prelude::*;

pub use info::ConnInfo;
pub use material::Material;
pub use session::{is_plain_http, Session, PLAIN_HTTP_RESPONSE};
pub use spec::Spec;

use crate::config::Config;
use crate::telemetry::error_log;

/// A TLS setting that cannot be used; the message names the setting or hook call.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TlsError(pub String);

/// How much a session may hold as records waiting to be sent.
const SEND_BUFFER: usize = 256 * 1024;

/// The master's last good material, inherited by every worker it forks.
static MASTER: Mutex<Option<Arc<Material>>> = Mutex::new(None);

/// Set when a worker is leaving: its renewal thread must not start calling Python (the
/// `ssl_context` hook) while the interpreter shuts down.
static LEAVING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// A worker is about to leave: no more renewals in it.
pub fn stop_renewing() {
    LEAVING.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// In the master, at start-up and on HUP: translate the settings (calling `ssl_context`),
/// read the files and check a server config can be built from them. On success the
/// material is what workers forked from now on serve; on failure nothing changes.
pub fn prepare(py: Python<'_>, cfg: &Config) -> Result<(), TlsError> {
    if !cfg.is_ssl() {
        *locked(&MASTER) = None;
        return Ok(());
    }
    let cfg_obj = cfg
        .to_python(py)
        .map_err(|e| TlsError(format!("ssl_context: {e}")))?;
    let hook = cfg.ssl_context.as_ref().map(|h| h.clone_ref(py));
    let spec = spec::translate(py, cfg_obj.bind(py), hook.as_ref())?;
    let material = Material::load(spec, hook.map(|h| (cfg_obj, h)))?;
    material.server_config()?;
    *locked(&MASTER) = Some(Arc::new(material));
    Ok(())
}

/// The master's look at the certificate files, from its loop (at most once a second): a
/// renewal that can be used becomes what workers forked from now on start with (running
/// workers pick it up themselves), and one that cannot is logged, once for the server.
pub fn master_tick() {
    static WATCH: Mutex<Option<(watch::Watcher, std::time::Instant)>> = Mutex::new(None);
    let Some(material) = locked(&MASTER).clone() else {
        return;
    };
    let mut guard = locked(&WATCH);
    let (watcher, last) =
        guard.get_or_insert_with(|| (watch::Watcher::default(), std::time::Instant::now()));
    if last.elapsed() < std::time::Duration::from_secs(1) {
        return;
    }
    *last = std::time::Instant::now();
    match watcher.look(&material) {
        Some(Ok((renewed, _))) => {
            error_log::info(&format!(
                "TLS certificate reloaded ({})",
                renewed.spec.certfile.display()
            ));
            *locked(&MASTER) = Some(Arc::new(renewed));
        }
        Some(Err(e)) => error_log::error(&format!(
            "TLS: the renewed certificate files cannot be used, still serving the previous \
             certificate: {e}"
        )),
        None => {}
    }
}

/// In a worker: the acceptor for its connections, built from the material inherited from
/// the master, with renewal watching started. None when TLS is off.
pub fn for_worker(cfg: &Config) -> Result<Option<Arc<Acceptor>>, TlsError> {
    let Some(material) = locked(&MASTER).clone() else {
        return Ok(None);
    };
    let acceptor = Arc::new(Acceptor::new(material, cfg.suppress_ragged_eofs)?);
    watch::start(acceptor.clone());
    Ok(Some(acceptor))
}

/// What new connections are served with now: swapped whole when the files are renewed, so a
/// connection sees one consistent certificate, key and client policy.
struct Current {
    config: Arc<rustls::ServerConfig>,
    material: Arc<Material>,
}

/// A worker's source of TLS sessions.
pub struct Acceptor {
    current: RwLock<Current>,
    suppress_ragged_eofs: bool,
}

impl Acceptor {
    fn new(material: Arc<Material>, suppress_ragged_eofs: bool) -> Result<Self, TlsError> {
        let config = material.server_config()?;
        Ok(Acceptor {
            current: RwLock::new(Current { config, material }),
            suppress_ragged_eofs,
        })
    }

    /// A session for a new connection from `peer_ip` (for its log lines). With the PROXY
    /// protocol on, its header may come in clear before the handshake. None (logged) when
    /// rustls cannot start one: the connection is dropped.
    pub fn session(&self, peer_ip: String, proxy: ferrocorn_h1::ProxyMode) -> Option<Session> {
        let cur = self.current.read().unwrap_or_else(|p| p.into_inner());
        let mut conn = match rustls::ServerConnection::new(cur.config.clone()) {
            Ok(conn) => conn,
            Err(e) => {
                error_log::error(&format!("TLS: cannot start a session: {e}"));
                return None;
            }
        };
        // Room for a whole app write (a 64 KiB chunk and its framing) as records, so it
        // leaves in one send rather than a full buffer and a small remainder.
        conn.set_buffer_limit(Some(SEND_BUFFER));
        Some(Session::new(
            conn,
            peer_ip,
            self.suppress_ragged_eofs,
            cur.material.spec.verify_mode,
            cur.material.leaf(),
            proxy != ferrocorn_h1::ProxyMode::Off,
        ))
    }

    fn material(&self) -> Arc<Material> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .material
            .clone()
    }

    fn replace(&self, material: Arc<Material>, config: Arc<rustls::ServerConfig>) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Current { config, material };
    }
}

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests;
