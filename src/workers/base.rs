//! What every worker does between fork and its serving loop, and on the way out: Gunicorn's
//! `spawn_worker` child branch and `Worker.init_process`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyCFunction, PyList};

use crate::config::Config;
use crate::errors::exit;
use crate::net::Listener;
use crate::sys::heartbeat::Beat;
use crate::sys::process;
use crate::telemetry::error_log;
use crate::wsgi::app::{self, format_traceback, system_exit_code, LoadFailure};

/// Everything a freshly forked worker needs from the master.
pub struct WorkerContext<'a> {
    pub cfg: &'a Config,
    pub listeners: &'a [Listener],
    pub age: u64,
    pub ppid: i32,
    pub beat: Beat,
    /// The app when `preload_app` loaded it in the master.
    pub preloaded: Option<Py<PyAny>>,
    pub server: Py<PyAny>,
    pub worker: Py<PyAny>,
    pub max_requests: u64,
}

/// State the serving loop shares with the request handler and signal handlers.
pub struct WorkerState<'a> {
    pub ctx: WorkerContext<'a>,
    pub alive: Arc<AtomicBool>,
    pub app: Py<PyAny>,
    /// Requests served by this worker (all threads).
    pub nr: std::sync::atomic::AtomicU64,
    /// Several threads serve requests (gthread).
    pub threaded: bool,
    /// Environ keys every request of this worker shares, built once after boot.
    pub base: crate::wsgi::environ::BaseEnviron,
}

impl WorkerState<'_> {
    pub fn alive(&self) -> bool {
        self.alive.load(Ordering::SeqCst)
    }
}

pub fn call_hook<'py, A: pyo3::call::PyCallArgs<'py>>(
    py: Python<'py>,
    hook: &Option<Py<PyAny>>,
    name: &str,
    args: A,
) -> PyResult<()> {
    if let Some(h) = hook {
        h.call1(py, args).map(|_| ()).inspect_err(|_| {
            error_log::error(&format!("Exception in {name} hook"));
        })?;
    }
    Ok(())
}

/// `server.LISTENERS` / `worker.sockets`: one `ferrocorn._objects.Listener` per listener,
/// carrying its real descriptor and the address as Gunicorn prints it.
pub fn listener_objects<'py>(
    py: Python<'py>,
    listeners: &[Listener],
) -> PyResult<Bound<'py, PyList>> {
    let class = py.import("ferrocorn._objects")?.getattr("Listener")?;
    let list = PyList::empty(py);
    for l in listeners {
        list.append(class.call1((l.fd(), l.to_string()))?)?;
    }
    Ok(list)
}

/// `worker.tmp`: Gunicorn's heartbeat file object, over this worker's shared-memory slot.
/// Built in the master before fork, so `pre_fork` sees it too, as under Gunicorn.
pub fn worker_tmp(py: Python<'_>, beat: Beat) -> PyResult<Py<PyAny>> {
    let notify = PyCFunction::new_closure(py, None, None, move |_args, _kw| beat.notify())?;
    let silent = PyCFunction::new_closure(py, None, None, move |_args, _kw| beat.silent_for_ms())?;
    Ok(py
        .import("ferrocorn._objects")?
        .getattr("WorkerTmp")?
        .call1((notify, silent))?
        .unbind())
}

/// Tie `worker.alive` to the flag the serving loop and the signal handlers use, both ways:
/// a stop signal shows as `alive == False` in hooks, and a hook setting it False stops the
/// worker after the current request.
fn bind_alive(py: Python<'_>, worker: &Py<PyAny>, alive: &Arc<AtomicBool>) -> PyResult<()> {
    let a = alive.clone();
    let get = PyCFunction::new_closure(py, None, None, move |_args, _kw| a.load(Ordering::SeqCst))?;
    let a = alive.clone();
    let set = PyCFunction::new_closure(py, None, None, move |args, _kw| -> PyResult<()> {
        a.store(args.get_item(0)?.is_truthy()?, Ordering::SeqCst);
        Ok(())
    })?;
    worker.setattr(py, "_alive_cell", (get, set))
}

/// Put `raw_env` (`-e KEY=VALUE`) into `os.environ`, so both Python and C see it.
pub fn export_env(py: Python<'_>, cfg: &Config) -> PyResult<()> {
    let environ = py.import("os")?.getattr("environ")?;
    for (k, v) in cfg
        .env()
        .map_err(|e| pyo3::exceptions::PyRuntimeError::new_err(e.message))?
    {
        environ.set_item(k, v)?;
    }
    Ok(())
}

/// Gunicorn's reloader: a thread that, when a watched file changes, logs it, runs the
/// `worker_int` hook and stops this worker gracefully (the master starts a fresh one).
/// `reload_engine` picks the class in `ferrocorn._reloader`; the choice is logged at debug.
fn start_reloader(py: Python<'_>, cfg: &Config, worker: &Py<PyAny>) -> PyResult<Py<PyAny>> {
    error_log::warning("Reloader is on. Use in development only!");
    let hook = cfg.worker_int.as_ref().map(|h| h.clone_ref(py));
    let worker = worker.clone_ref(py);
    let callback = pyo3::types::PyCFunction::new_closure(py, None, None, move |args, _kw| {
        let py = args.py();
        let path = args.get_item(0).map(|p| p.to_string()).unwrap_or_default();
        error_log::info(&format!("Worker reloading: {path} modified"));
        if let Some(h) = &hook {
            let _ = h.call1(py, (worker.clone_ref(py),));
        }
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
    let (engine, reloader) = match cfg.reload_engine.as_str() {
        "poll" => ("poll", make("Reloader")?),
        "inotify" => ("inotify", make("InotifyReloader")?),
        _ => match make("InotifyReloader") {
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

/// Run a worker to completion in the forked child and return its exit status.
pub fn run_worker(py: Python<'_>, ctx: WorkerContext<'_>) -> i32 {
    let pid = process::getpid();
    let _ = ctx.worker.setattr(py, "pid", pid);
    process::set_title(py, &format!("worker [{}]", ctx.cfg.proc_name()));
    error_log::info(&format!("Booting worker with pid: {pid}"));

    let server = ctx.server.clone_ref(py);
    let worker = ctx.worker.clone_ref(py);
    let worker_exit = ctx.cfg.worker_exit.as_ref().map(|h| h.clone_ref(py));
    let code = match boot_and_serve(py, ctx) {
        Ok(()) => exit::OK,
        Err(code) => code,
    };
    super::signals::ignore_stop_signals(py);
    error_log::info(&format!("Worker exiting (pid: {pid})"));
    if let Some(h) = worker_exit {
        if let Err(e) = h.call1(py, (server, worker)) {
            error_log::warning(&format!(
                "Exception during worker exit:\n{}",
                format_traceback(py, &e)
            ));
        }
    }
    code
}

fn boot_and_serve(py: Python<'_>, ctx: WorkerContext<'_>) -> Result<(), i32> {
    let fail = |py: Python<'_>, e: PyErr, booted: bool| -> i32 {
        if let Some(code) = system_exit_code(py, &e) {
            return code;
        }
        error_log::error(&format!(
            "Exception in worker process\n{}",
            format_traceback(py, &e)
        ));
        if booted {
            exit::UNHANDLED
        } else {
            exit::WORKER_BOOT_ERROR
        }
    };

    let cfg = ctx.cfg;
    let alive = Arc::new(AtomicBool::new(true));
    bind_alive(py, &ctx.worker, &alive).map_err(|e| fail(py, e, false))?;
    let signals = super::signals::install(
        py,
        alive.clone(),
        ctx.worker.clone_ref(py),
        cfg.worker_int.as_ref().map(|h| h.clone_ref(py)),
        cfg.worker_abort.as_ref().map(|h| h.clone_ref(py)),
    )
    .map_err(|e| {
        process::unblock_signals();
        fail(py, e, false)
    })?;
    // Signals sent since the fork were held; they now reach this worker's own handlers.
    process::unblock_signals();

    call_hook(
        py,
        &cfg.post_fork,
        "post_fork",
        (ctx.server.clone_ref(py), ctx.worker.clone_ref(py)),
    )
    .map_err(|e| fail(py, e, false))?;
    export_env(py, cfg).map_err(|e| fail(py, e, false))?;
    process::set_owner(cfg.user, cfg.group, cfg.initgroups).map_err(|e| {
        fail(
            py,
            pyo3::exceptions::PyOSError::new_err(format!(
                "could not switch to user {} / group {}: {e}",
                cfg.user, cfg.group
            )),
            false,
        )
    })?;
    // Each worker gets its own random state, as Gunicorn's util.seed().
    py.import("random")
        .and_then(|r| r.call_method0("seed"))
        .map_err(|e| fail(py, e, false))?;

    let reloader = if cfg.reload {
        Some(start_reloader(py, cfg, &ctx.worker).map_err(|e| fail(py, e, false))?)
    } else {
        None
    };

    let app = match &ctx.preloaded {
        Some(app) => app.clone_ref(py),
        None => {
            let uri = cfg.app_uri().unwrap_or_default().to_string();
            match app::load(py, &uri) {
                Ok(app) => app,
                // With --reload a syntax error is served (as a 500 with the traceback) and
                // its file watched, instead of stopping the server, as Gunicorn does.
                Err(f) if reloader.is_some() && f.syntax_error_file.is_some() => {
                    error_log::error(&format!(
                        "Exception loading the application\n{}",
                        f.traceback
                    ));
                    let r = reloader.as_ref().expect("checked");
                    let _ = r.call_method1(py, "add_extra_file", (f.syntax_error_file.clone(),));
                    py.import("ferrocorn._reloader")
                        .and_then(|m| m.call_method1("make_fail_app", (f.traceback.clone(),)))
                        .map(|a| a.unbind())
                        .map_err(|e| fail(py, e, false))?
                }
                Err(LoadFailure {
                    system_exit: Some(code),
                    ..
                }) => return Err(code),
                Err(f) if f.exit_code == exit::APP_LOAD_ERROR => {
                    error_log::debug(&format!(
                        "Exception while loading the application\n{}",
                        f.traceback
                    ));
                    eprintln!("{}", f.message);
                    return Err(f.exit_code);
                }
                Err(f) => {
                    error_log::error(&format!("Exception in worker process\n{}", f.traceback));
                    return Err(f.exit_code);
                }
            }
        }
    };
    let _ = ctx.worker.setattr(py, "wsgi", app.clone_ref(py));
    if let Some(r) = &reloader {
        r.call_method0(py, "start")
            .map_err(|e| fail(py, e, false))?;
    }

    call_hook(
        py,
        &cfg.post_worker_init,
        "post_worker_init",
        (ctx.worker.clone_ref(py),),
    )
    .map_err(|e| fail(py, e, false))?;
    let _ = ctx.worker.setattr(py, "booted", true);
    // The first beat marks the worker ready; waking the master lets it retire at once any
    // worker this one replaces, instead of on its next one-second tick.
    ctx.beat.notify();
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(ctx.ppid),
        nix::sys::signal::Signal::SIGCHLD,
    );

    let threaded = cfg.is_threaded();
    let base =
        super::request::base_environ(py, ctx.cfg, threaded).map_err(|e| fail(py, e, true))?;
    let mut state = WorkerState {
        ctx,
        alive,
        app,
        nr: std::sync::atomic::AtomicU64::new(0),
        threaded,
        base,
    };
    if threaded {
        super::gthread::run(py, &state, &signals).map_err(|e| fail(py, e, true))
    } else {
        super::sync::run(py, &mut state, &signals).map_err(|e| fail(py, e, true))
    }
}
