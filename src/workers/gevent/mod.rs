//! The gevent worker (`-k gevent`, and Gunicorn 27's other gevent class names): WSGI apps on
//! a gevent hub, one greenlet per request, with every socket, the parsing and the writing in
//! Rust. The ASGI worker's I/O thread (`asgi::io`, `asgi::http1`) accepts within
//! `worker_connections` and reads each request; a complete request is handed to the hub
//! through the hub's eventfd (`http::Hub`), and `GeventCore::dispatch`, called by a gevent
//! io watcher, starts a greenlet that serves it through the same request path as the sync
//! and gthread workers (`workers::request`), over a `GeventExchange`. Idle keep-alive
//! connections and slow clients cost no greenlet.
//!
//! This module wires the parts and holds what the hub side calls; the hub loop, the
//! monkey-patching and the graceful stop are in `ferrocorn._gevent`. Must not: touch a
//! socket (the I/O thread owns them), or block the thread (a wait parks the greenlet).

mod exchange;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use pyo3::prelude::*;

use self::exchange::GeventExchange;
use super::asgi::core::LoopCore;
use super::request::{self, log_request_panic};
use super::signals::WorkerSignals;
use super::state::{RequestScope, WorkerState};
use crate::http::{HubEvent, NewCall, Outgoing, Session, SharedExchange};
use crate::telemetry::error_log;
use crate::wsgi::app::system_exit_code;

/// Patch the standard library for gevent, in the worker after fork and before the app is
/// imported, as Gunicorn's worker does (the master is never patched).
pub fn patch(py: Python<'_>) -> PyResult<()> {
    py.import("ferrocorn._gevent")?
        .call_method0("patch")
        .map(drop)
}

pub fn run(py: Python<'_>, st: &WorkerState<'_>, _signals: &WorkerSignals) -> PyResult<()> {
    let serving = st.ctx.cfg.serving().clone();
    let base = LoopCore::start(st, true)?;
    let io = base.io.clone();
    let core = Py::new(
        py,
        PyClassInitializer::from(base).add_subclass(GeventCore {
            scope: st.scope.clone(),
            keepalive: serving.keepalive.is_some(),
            spawn: None,
            event_class: None,
            calls: Arc::new(AtomicUsize::new(0)),
        }),
    )?;
    let result = py.import("ferrocorn._gevent").and_then(|m| {
        m.call_method1(
            "serve",
            (
                core.clone_ref(py),
                serving.graceful_timeout.as_secs_f64(),
                serving.asgi.worker_connections,
            ),
        )
    });
    py.detach(|| super::asgi::core::lock(&io).shutdown());
    result.map(drop)
}

/// A request on its way to its greenlet, counted among the worker's calls until it is served
/// or dropped. Dropped unserved (its runner died before taking it), the client gets a 500.
#[pyclass(module = "ferrocorn._ferrocorn", name = "GeventCall")]
pub struct GeventCall {
    call: Mutex<Option<(Box<NewCall>, Running)>>,
}

impl Drop for GeventCall {
    fn drop(&mut self) {
        let taken = self
            .call
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some((call, _running)) = taken {
            error_log::error("A request was lost before its greenlet ran it; answering 500");
            call.session.send(Outgoing::Raw {
                data: ferrocorn_h1::error_page(500, "Internal Server Error", ""),
                last: true,
                close: true,
            });
        }
    }
}

#[pyclass(module = "ferrocorn._ferrocorn", name = "GeventCore", extends = LoopCore)]
pub struct GeventCore {
    scope: Arc<RequestScope>,
    keepalive: bool,
    /// `spawn(call)`: start a greenlet serving `call` (set by `bind`).
    spawn: Option<Py<PyAny>>,
    /// `gevent.event.Event`, what a request's greenlet waits on.
    event_class: Option<Py<PyAny>>,
    /// Requests whose greenlet has not finished (the graceful stop waits for them).
    calls: Arc<AtomicUsize>,
}

/// Counts a request's greenlet until it finishes.
struct Running(Arc<AtomicUsize>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[pymethods]
impl GeventCore {
    fn bind(&mut self, spawn: Py<PyAny>, event_class: Py<PyAny>, yield_now: Py<PyAny>) {
        self.spawn = Some(spawn);
        self.event_class = Some(event_class);
        crate::http::set_cooperative_yield(yield_now);
    }

    /// Called by the hub when the eventfd is readable: start a greenlet per new request and
    /// wake the greenlets whose session changed.
    fn dispatch(slf: PyRef<'_, Self>, py: Python<'_>) -> PyResult<()> {
        let events = slf.as_super().hub.drain();
        for event in events {
            match event {
                HubEvent::Call(call) => {
                    let Some(spawn) = &slf.spawn else { continue };
                    slf.calls.fetch_add(1, Ordering::SeqCst);
                    let handle = GeventCall {
                        call: Mutex::new(Some((call, Running(slf.calls.clone())))),
                    };
                    if let Err(e) = spawn.call1(py, (handle,)) {
                        error_log::exception_py(py, "Could not start a greenlet", &e);
                    }
                }
                HubEvent::Wake(session) => wake(py, &session),
                // A WSGI call is not cancelled: its writes fail once the client is gone.
                HubEvent::Cancel(_) => {}
            }
        }
        Ok(())
    }

    /// Serve one request in the calling greenlet. Only a SystemExit (from the app or a hook)
    /// escapes, to stop the worker as it stops the others.
    fn run_call(&self, py: Python<'_>, handle: PyRef<'_, GeventCall>) -> PyResult<()> {
        let taken = handle.call.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some((call, _running)) = taken else {
            return Ok(());
        };
        let NewCall {
            request, session, ..
        } = *call;
        let Some(event_class) = &self.event_class else {
            return Ok(());
        };
        let exchange = Arc::new(Mutex::new(GeventExchange::new(
            session.clone(),
            event_class.clone_ref(py),
            &request,
            self.keepalive,
        )));
        let shared: SharedExchange = exchange.clone();
        let served = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            request::handle_request(py, &self.scope, &shared, request, &mut None, false)
        }));
        {
            let mut st = session.state();
            st.recv_waiter = None;
            st.send_waiter = None;
        }
        let result = match served {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(e)) if system_exit_code(py, &e).is_some() => Err(e),
            Ok(Err(e)) => {
                // The `req` object could not be made (the sync worker would exit): this
                // request gets a 500, the worker goes on.
                error_log::exception_py(py, "Error handling request", &e);
                Ok(())
            }
            Err(panic) => {
                log_request_panic(panic);
                Ok(())
            }
        };
        crate::http::lock(py, &*exchange).abandon(py);
        result
    }

    /// Requests whose greenlet is still running.
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

/// Set the events the session's greenlets wait on.
fn wake(py: Python<'_>, session: &Arc<Session>) {
    let waiters = {
        let mut st = session.state();
        Session::woken(&mut st);
        [st.recv_waiter.take(), st.send_waiter.take()]
    };
    for waiter in waiters.into_iter().flatten() {
        if let Err(e) = waiter.call_method0(py, "set") {
            error_log::exception_py(py, "Could not wake a greenlet", &e);
        }
    }
}
