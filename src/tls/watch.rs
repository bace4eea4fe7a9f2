//! Certificate renewal in a running worker. Gunicorn's sync and gthread workers re-read the
//! files (and call `ssl_context`) for every connection, which is how its users rotate
//! certificates without a restart; here one thread per worker looks at the files once a
//! second instead, and new connections get the renewed material once the files have stayed
//! the same for one more look (so a pair written one file after the other is not read
//! half-renewed). While renewed files cannot be used the previous certificate keeps serving,
//! and the reason is logged once for each version of the files.

use std::sync::Arc;
use std::time::Duration;

use pyo3::prelude::*;

use super::material::{stamps, Stamp};
use super::{spec, Acceptor, Material, TlsError};

use crate::telemetry::error_log;

const EVERY: Duration = Duration::from_secs(1);

/// What the last looks saw: the changed files once (renewal waits for a second look to agree),
/// and the version of them that could not be used (never retried).
#[derive(Default)]
pub struct Watcher {
    seen: Option<Vec<Option<Stamp>>>,
    failed: Option<Vec<Option<Stamp>>>,
}

pub type Renewed = (Material, Arc<rustls::ServerConfig>);

impl Watcher {
    /// Look at the files `material` was read from. Some when they changed, stayed the same
    /// since the last look, and this version was not already found unusable: the renewed
    /// material, or why it cannot be used.
    pub fn look(&mut self, material: &Material) -> Option<Result<Renewed, TlsError>> {
        let now = stamps(&material.spec.watch);
        if now == material.stamps {
            self.seen = None;
            return None;
        }
        if self.seen.as_ref() != Some(&now) {
            self.seen = Some(now);
            return None;
        }
        if self.failed.as_ref() == Some(&now) {
            return None;
        }
        let res = renew(material);
        self.seen = None;
        self.failed = res.is_err().then_some(now);
        Some(res)
    }
}

/// A worker's renewal thread. The master looks at the same files and logs what it finds
/// (`super::master_tick`), once for the server; workers only log at debug.
pub fn start(acceptor: Arc<Acceptor>) {
    let spawned = std::thread::Builder::new()
        .name("ferrocorn-tls".into())
        .spawn(move || {
            let mut watcher = Watcher::default();
            loop {
                std::thread::sleep(EVERY);
                let material = acceptor.material();
                match watcher.look(&material) {
                    Some(Ok((renewed, config))) => {
                        error_log::debug("TLS certificate reloaded in this worker");
                        acceptor.replace(Arc::new(renewed), config);
                    }
                    // A file the master can read and this worker cannot (privileges dropped
                    // with --user) is this worker's own problem: the master's log would
                    // say the renewal worked.
                    Some(Err(e)) if unreadable(&material) => error_log::warning(&format!(
                        "TLS: this worker cannot read the renewed certificate files, still \
                         serving the previous certificate: {e}"
                    )),
                    Some(Err(e)) => error_log::debug(&format!("TLS renewal not used: {e}")),
                    None => {}
                }
            }
        });
    if let Err(e) = spawned {
        error_log::error(&format!(
            "TLS: cannot start watching the certificate files for renewal: {e}"
        ));
    }
}

fn unreadable(material: &Material) -> bool {
    material.spec.watch.iter().any(|p| {
        matches!(std::fs::File::open(p), Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied)
    })
}

/// Material from the files as they are now: through the `ssl_context` hook again when one
/// made the spec (it may choose other files), else from the same spec.
fn renew(old: &Material) -> Result<Renewed, TlsError> {
    let (spec, hook) = match &old.hook {
        Some(_) if super::LEAVING.load(std::sync::atomic::Ordering::SeqCst) => {
            return Err(TlsError("the worker is leaving".into()))
        }
        Some((cfg_obj, hook)) => Python::attach(|py| {
            // Again with the GIL held: the main thread sets the flag holding it too.
            if super::LEAVING.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(TlsError("the worker is leaving".into()));
            }
            let spec = spec::translate(py, cfg_obj.bind(py), Some(hook))?;
            Ok::<_, TlsError>((spec, Some((cfg_obj.clone_ref(py), hook.clone_ref(py)))))
        })?,
        None => (old.spec.clone(), None),
    };
    let material = Material::load(spec, hook)?;
    let config = material.server_config()?;
    Ok((material, config))
}
