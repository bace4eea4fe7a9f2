//! `--reload`: Gunicorn's reloader. A thread (in `ferrocorn._reloader`) watches the app's
//! modules and `reload_extra_files`; when one changes, the worker logs it, runs `worker_int`
//! and stops gracefully, and the master starts a fresh one. `inotify` is the kernel side of
//! the inotify engine.
//!
//! Owns: choosing the engine and the change callback. Must not: serve requests or manage
//! processes (stopping is a SIGTERM to this worker, handled like any other).

pub mod inotify;

use pyo3::prelude::*;

use crate::config::{Config, ReloadEngine};
use crate::telemetry::error_log;

/// Start Gunicorn's reloader for this worker; `reload_engine` picks the class in
/// `ferrocorn._reloader`, and the choice is logged at debug.
pub fn start_reloader(py: Python<'_>, cfg: &Config, worker: &Py<PyAny>) -> PyResult<Py<PyAny>> {
    error_log::warning("Reloader is on. Use in development only!");
    let hook = cfg.worker_int.as_ref().map(|h| h.clone_ref(py));
    let worker = worker.clone_ref(py);
    let callback = pyo3::types::PyCFunction::new_closure(py, None, None, move |args, _kw| {
        let py = args.py();
        let path = args.get_item(0).map(|p| p.to_string()).unwrap_or_default();
        error_log::info(&format!("Worker reloading: {path} modified"));
        let _ = crate::hooks::call_hook(py, hook.as_ref(), (worker.clone_ref(py),));
        let _ = nix::sys::signal::kill(nix::unistd::getpid(), nix::sys::signal::Signal::SIGTERM);
    })?;
    let kwargs = pyo3::types::PyDict::new(py);
    kwargs.set_item("callback", callback)?;
    let module = py.import("ferrocorn._reloader")?;
    let make = |class: &str| {
        module
            .getattr(class)?
            .call((cfg.reload_extra_files.clone(),), Some(&kwargs))
    };
    // `auto` is inotify: this is Linux and the watcher is built in, so the only way it is
    // unavailable is the kernel refusing an instance (max_user_instances); then `auto`
    // falls back to polling, while an explicit `inotify` fails the worker as Gunicorn's does.
    let (engine, reloader) = match cfg.reload_engine_kind() {
        ReloadEngine::Poll => ("poll", make("Reloader")?),
        ReloadEngine::Inotify => ("inotify", make("InotifyReloader")?),
        ReloadEngine::Auto => match make("InotifyReloader") {
            Ok(r) => ("inotify", r),
            Err(e) if e.is_instance_of::<pyo3::exceptions::PyOSError>(py) => {
                error_log::warning(&format!(
                    "inotify reloader unavailable ({e}), falling back to polling"
                ));
                ("poll", make("Reloader")?)
            }
            Err(e) => return Err(e),
        },
    };
    error_log::debug(&format!("Reloader engine: {engine}"));
    Ok(reloader.unbind())
}
