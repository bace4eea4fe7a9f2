//! What every worker does between fork and its serving loop, and on the way out: Gunicorn's
//! `spawn_worker` child branch and `Worker.init_process`, then the one choice of serving
//! loop by worker type.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::PyCFunction;

use super::signals::{self, WorkerSignals};
use super::state::{WorkerContext, WorkerState};
use crate::config::{Config, WorkerKind};
use crate::errors::exit;
use crate::hooks::call_hook;
use crate::sys::process;
use crate::telemetry::{self, error_log};
use crate::wsgi::app::{self, format_traceback, system_exit_code, LoadFailure};
use crate::wsgi::environ::BaseEnviron;

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

/// Run a worker to completion in the forked child and return its exit status.
pub fn run_worker(py: Python<'_>, ctx: WorkerContext<'_>) -> i32 {
    let pid = process::getpid();
    let _ = ctx.worker.setattr(py, "pid", pid);
    process::set_title(py, &format!("worker [{}]", ctx.cfg.proc_name()));
    error_log::info(&format!("Booting worker with pid: {pid}"));
    telemetry::setup::after_fork_in_worker(py, ctx.cfg.capture_output);

    let server = ctx.server.clone_ref(py);
    let worker = ctx.worker.clone_ref(py);
    let worker_exit = ctx.cfg.worker_exit.as_ref().map(|h| h.clone_ref(py));
    let code = match init_process(py, ctx) {
        Ok(()) => exit::OK,
        Err(code) => code,
    };
    crate::tls::stop_renewing();
    signals::ignore_stop_signals(py);
    error_log::info(&format!("Worker exiting (pid: {pid})"));
    if let Some(h) = worker_exit {
        if let Err(e) = h.call1(py, (server, worker)) {
            error_log::warning(&format!(
                "Exception during worker exit:\n{}",
                format_traceback(py, &e)
            ));
        }
    }
    // What the worker logged and measured in its last moments still goes out.
    telemetry::pyroute::flush();
    telemetry::statsd::flush();
    code
}

/// Boot (Gunicorn's `init_process`): signals, `post_fork`, environment, privileges, the
/// reloader, the app, `post_worker_init`; then serve until told to stop.
fn init_process(py: Python<'_>, ctx: WorkerContext<'_>) -> Result<(), i32> {
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
    let signals = signals::install(
        py,
        alive.clone(),
        ctx.worker.clone_ref(py),
        cfg.worker_int.as_ref().map(|h| h.clone_ref(py)),
        cfg.worker_abort.as_ref().map(|h| h.clone_ref(py)),
        cfg.capture_output,
        cfg.errorlog.clone(),
    )
    .map_err(|e| {
        process::unblock_signals();
        fail(py, e, false)
    })?;
    // Signals sent since the fork were held; they now reach this worker's own handlers.
    process::unblock_signals();

    call_hook(
        py,
        cfg.post_fork.as_ref(),
        (ctx.server.clone_ref(py), ctx.worker.clone_ref(py)),
    )
    .map_err(|e| {
        error_log::error("Exception in post_fork hook");
        fail(py, e, false)
    })?;
    // Gunicorn's gevent worker patches right after post_fork, before anything else it
    // imports (the app included) can take the unpatched modules.
    if cfg.worker_kind() == Some(WorkerKind::Gevent) {
        super::gevent::patch(py).map_err(|e| fail(py, e, false))?;
    }
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
        Some(crate::reload::start_reloader(py, cfg, &ctx.worker).map_err(|e| fail(py, e, false))?)
    } else {
        None
    };

    let app = match &ctx.preloaded {
        // An embedding application is still asked, as Gunicorn's workers ask it: its
        // `wsgi()` returns the preloaded app unless the subclass decides otherwise.
        Some(app) if cfg.application.is_none() => app.clone_ref(py),
        _ => {
            match app::load(py, cfg) {
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
                        .and_then(|m| {
                            let asgi = cfg.worker_kind() == Some(crate::config::WorkerKind::Asgi);
                            m.call_method1("make_fail_app", (f.traceback.clone(), asgi))
                        })
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
        cfg.post_worker_init.as_ref(),
        (ctx.worker.clone_ref(py),),
    )
    .map_err(|e| {
        error_log::error("Exception in post_worker_init hook");
        fail(py, e, false)
    })?;
    let _ = ctx.worker.setattr(py, "booted", true);
    // The first beat marks the worker ready; waking the master lets it retire at once any
    // worker this one replaces, instead of on its next one-second tick.
    ctx.beat.notify();
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(ctx.ppid),
        nix::sys::signal::Signal::SIGCHLD,
    );

    let base = BaseEnviron::new(py, cfg).map_err(|e| fail(py, e, true))?;
    let tls = crate::tls::for_worker(cfg)
        .map_err(|e| fail(py, pyo3::exceptions::PyRuntimeError::new_err(e.0), true))?;
    // Under TLS, `gunicorn.socket` answers what Gunicorn's SSLSocket would (peer certificate,
    // cipher, version).
    let (module, class) = if tls.is_some() {
        ("ferrocorn._tls", "TLSAppSocket")
    } else {
        ("socket", "socket")
    };
    let socket_class = py
        .import(module)
        .and_then(|m| m.getattr(class))
        .map_err(|e| fail(py, e, true))?
        .unbind();
    // Each worker opens the mounts' directories itself: a descriptor is all a request
    // needs to resolve a path under one.
    let statics = crate::statics::Statics::open(cfg.statics())
        .map_err(|e| {
            fail(
                py,
                pyo3::exceptions::PyRuntimeError::new_err(e.to_string()),
                true,
            )
        })?
        .map(Arc::new);
    let state =
        WorkerState::new(py, ctx, alive, app, base, socket_class, tls).with_statics(statics);
    run(py, &state, &signals).map_err(|e| fail(py, e, true))
}

/// The serving loop of this worker's type: the one place the type is chosen.
fn run(py: Python<'_>, st: &WorkerState<'_>, signals: &WorkerSignals) -> PyResult<()> {
    match st.ctx.cfg.worker_kind() {
        Some(WorkerKind::Sync) => super::sync::run(py, st, signals),
        Some(WorkerKind::Gthread) => super::gthread::run(py, st, signals),
        Some(WorkerKind::Asgi) => super::asgi::run(py, st, signals),
        Some(WorkerKind::Gevent) => super::gevent::run(py, st, signals),
        None => Err(pyo3::exceptions::PyRuntimeError::new_err(format!(
            "worker_class {:?} is not supported",
            st.ctx.cfg.worker_class
        ))),
    }
}
