//! The gthread worker (`-k gthread`, or `sync` with `--threads` above 1): `threads` threads
//! take turns leading, and the leader both polls the connections and runs the app on each
//! complete request (see `threads`). Idle keep-alive connections and slow clients never
//! occupy a thread, and a worker whose threads are all busy stops accepting, leaving new
//! connections to a worker that can serve them.
//!
//! This module wires the parts together and keeps the worker's main thread for what only
//! it may do: run Python's signal handlers, beat the heartbeat, watch the parent, and time
//! the graceful stop. `tconn` is one connection, `conns` owns the connections, `threads`
//! runs them, `writer` sends what they finished in memory.

mod conns;
mod tconn;
mod threads;
mod writer;

use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags};
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};
use nix::sys::eventfd::{EfdFlags, EventFd};
use pyo3::prelude::*;

use super::signals::WorkerSignals;
use super::state::WorkerState;
use crate::sys::process;
use crate::telemetry::error_log;

/// How often the main thread beats when nothing else wakes it.
const BEAT: Duration = Duration::from_millis(250);

pub fn run(py: Python<'_>, st: &WorkerState<'_>, signals: &WorkerSignals) -> PyResult<()> {
    let threads = st.ctx.cfg.threads.max(1) as usize;
    let pcfg = &st.ctx.cfg.serving().parser;
    let switch_interval: f64 = py
        .import("sys")?
        .call_method0("getswitchinterval")?
        .extract()?;
    let io = |e: nix::errno::Errno| PyErr::from(std::io::Error::from(e));
    let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).map_err(io)?;
    let new_eventfd =
        || EventFd::from_flags(EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC).map_err(io);
    let wake = new_eventfd()?;
    epoll
        .add(
            wake.as_fd(),
            EpollEvent::new(EpollFlags::EPOLLIN, conns::WAKE),
        )
        .map_err(io)?;
    let conns = conns::Conns::new(&st.ctx, pcfg, &epoll, threads).with_tls(st.tls.clone());
    let sh = threads::Shared::new(
        st,
        pcfg,
        &epoll,
        conns,
        wake,
        new_eventfd()?,
        Duration::from_secs_f64(switch_interval.max(0.0)),
    )?;
    py.detach(|| {
        std::thread::scope(|scope| {
            let sh = &sh;
            let mut app_threads = Vec::with_capacity(threads);
            let mut spawned = Ok(());
            for i in 0..threads {
                match std::thread::Builder::new()
                    .name(format!("ferrocorn-app-{i}"))
                    .spawn_scoped(scope, move || threads::thread_main(sh, i))
                {
                    Ok(t) => app_threads.push(t),
                    Err(e) => {
                        spawned = Err(e);
                        break;
                    }
                }
            }
            if spawned.is_ok() && sh.writer.enabled() {
                spawned = std::thread::Builder::new()
                    .name("ferrocorn-writer".into())
                    .spawn_scoped(scope, move || sh.writer.run(&sh.conns, &sh.wake))
                    .map(drop);
            }
            // A worker that cannot start its threads fails its boot (exit 3).
            let result = match spawned {
                Ok(()) => supervise(st, signals, sh),
                Err(e) => Err(PyErr::from(e)),
            };
            // Threads finish the requests they hold (a quick stop still lets them answer,
            // as Gunicorn's interpreter exit joins its pool threads), then return; the
            // writer sends what they left it.
            sh.shutdown();
            for t in app_threads {
                let _ = t.join();
            }
            sh.writer.shutdown();
            result
        })
    })
}

/// The main thread's loop, until the worker is done.
fn supervise(
    st: &WorkerState<'_>,
    signals: &WorkerSignals,
    sh: &threads::Shared<'_, '_>,
) -> PyResult<()> {
    let mut stopping: Option<Instant> = None;
    loop {
        st.ctx.beat.notify();
        let mut fds = [
            PollFd::new(signals.wake_fd(), PollFlags::POLLIN),
            PollFd::new(sh.main_wake.as_fd(), PollFlags::POLLIN),
        ];
        let _ = nix::poll::poll(&mut fds, BEAT.as_millis() as u16);
        let signalled = fds[0].any().unwrap_or(false);
        if signalled {
            Python::attach(|py| signals.dispatch(py))?;
        }
        let _ = sh.main_wake.read();
        if let Some(err) = sh.take_fatal() {
            return Err(err);
        }
        if stopping.is_none() && !st.alive() {
            stopping = Some(Instant::now());
            sh.request_stop();
        }
        if let Some(since) = stopping {
            let limit = st.ctx.cfg.serving().graceful_timeout;
            if sh.finished() || since.elapsed() >= limit {
                return Ok(());
            }
        }
        if process::getppid() != st.ctx.ppid {
            error_log::info(&format!(
                "Parent changed, shutting down: {}",
                process::getpid()
            ));
            return Ok(());
        }
    }
}
