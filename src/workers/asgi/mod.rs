//! The ASGI worker (`-k asgi`, and Uvicorn's worker class names): the app's coroutines run
//! on an asyncio (or uvloop) event loop on the main thread; a second thread runs every
//! connection in Rust (`io`, `http1`, `ws`) and hands complete requests to the loop through
//! the hub (`http::session`), where the bridge (`crate::asgi`) starts a task per request.
//! Idle keep-alive connections, slow clients and WebSocket framing cost no Python.
//!
//! This module wires the parts together; the loop, lifespan and the graceful stop are in
//! `ferrocorn._asgi`.

pub(super) mod core;
mod ctx;
mod http1;
mod io;
mod socket;
mod stream;
mod tls;
mod wire;
mod ws;

use pyo3::prelude::*;

use self::core::{AsgiCore, LoopCore};
use super::signals::WorkerSignals;
use super::state::WorkerState;
use crate::config::{AsgiLoop, Lifespan};

pub fn run(py: Python<'_>, st: &WorkerState<'_>, _signals: &WorkerSignals) -> PyResult<()> {
    let cfg = st.ctx.cfg;
    let serving = cfg.serving().clone();
    let base = LoopCore::start(st, false)?;
    let io = base.io.clone();
    let asgi = &serving.asgi;
    let loop_kind = match (asgi.event_loop, asgi.h11_only) {
        (_, true) | (AsgiLoop::Asyncio, _) => "asyncio",
        (AsgiLoop::Auto, _) => "auto",
        (AsgiLoop::Uvloop, _) => "uvloop",
    };
    let lifespan = match asgi.lifespan {
        Lifespan::Auto => "auto",
        Lifespan::On => "on",
        Lifespan::Off => "off",
    };
    let core = Py::new(
        py,
        PyClassInitializer::from(base).add_subclass(AsgiCore {
            bridge: None,
            serving: serving.clone(),
            worker: st.ctx.worker.clone_ref(py),
            pre_request: cfg.pre_request.as_ref().map(|h| h.clone_ref(py)),
            post_request: cfg.post_request.as_ref().map(|h| h.clone_ref(py)),
            counter: st.counter.clone(),
        }),
    )?;
    let result = py.import("ferrocorn._asgi").and_then(|m| {
        m.call_method1(
            "serve",
            (
                core.clone_ref(py),
                st.scope.app.clone_ref(py),
                loop_kind,
                lifespan,
                serving.graceful_timeout.as_secs_f64(),
            ),
        )
    });
    py.detach(|| io.lock().unwrap_or_else(|p| p.into_inner()).shutdown());
    result.map(drop)
}
