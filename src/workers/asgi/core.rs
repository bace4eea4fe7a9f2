//! What an event-loop worker's Python side holds of the worker: `LoopCore` (the hub's
//! eventfd, the I/O thread's controls, the heartbeat and the worker's flags), shared by the
//! ASGI worker's `AsgiCore` (plus its bridge, `ferrocorn._asgi`) and the gevent worker's
//! `GeventCore` (`ferrocorn._gevent`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::super::state::{RequestCounter, WorkerState};
use super::io::Io;
use crate::asgi::{self, Bridge, ScopeBase};
use crate::config::Serving;
use crate::http::Hub;
use crate::sys::heartbeat::Beat;
use crate::sys::process;
use crate::telemetry::error_log;

#[pyclass(module = "ferrocorn._ferrocorn", name = "LoopCore", subclass)]
pub struct LoopCore {
    pub hub: Arc<Hub>,
    pub io: Arc<Mutex<Io>>,
    pub alive: Arc<AtomicBool>,
    pub beat: Beat,
    pub ppid: i32,
}

impl LoopCore {
    /// The hub and the I/O thread of this worker (`wsgi`: see `ConnCtx::wsgi`).
    pub fn start(st: &WorkerState<'_>, wsgi: bool) -> std::io::Result<LoopCore> {
        let hub = Arc::new(Hub::new()?);
        let io = Io::start(st, hub.clone(), wsgi)?;
        Ok(LoopCore {
            hub,
            io: Arc::new(Mutex::new(io)),
            alive: st.alive.clone(),
            beat: st.ctx.beat,
            ppid: st.ctx.ppid,
        })
    }
}

#[pymethods]
impl LoopCore {
    fn fileno(&self) -> i32 {
        use std::os::fd::AsRawFd;
        self.hub.fd().as_raw_fd()
    }

    fn start_serving(&self) {
        lock(&self.io).start_serving();
    }

    fn stop_serving(&self, py: Python<'_>) {
        let io = self.io.clone();
        py.detach(|| lock(&io).stop_accepting());
    }

    fn connections(&self) -> usize {
        lock(&self.io).connections()
    }

    fn close_all(&self, py: Python<'_>) {
        let io = self.io.clone();
        py.detach(|| lock(&io).shutdown());
    }

    fn beat(&self) {
        self.beat.notify();
    }

    fn alive(&self) -> bool {
        self.alive.load(Ordering::SeqCst)
    }

    fn parent_changed(&self) -> bool {
        if process::getppid() != self.ppid {
            error_log::info(&format!(
                "Parent changed, shutting down: {}",
                process::getpid()
            ));
            return true;
        }
        false
    }

    fn log(&self, level: &str, message: &str) {
        match level {
            "debug" => error_log::debug(message),
            "info" => error_log::info(message),
            "warning" => error_log::warning(message),
            _ => error_log::error(message),
        }
    }
}

#[pyclass(module = "ferrocorn._ferrocorn", name = "AsgiCore", extends = LoopCore)]
pub struct AsgiCore {
    pub bridge: Option<Arc<Bridge>>,
    pub serving: Serving,
    pub worker: Py<PyAny>,
    pub pre_request: Option<Py<PyAny>>,
    pub post_request: Option<Py<PyAny>>,
    pub counter: Arc<RequestCounter>,
}

#[pymethods]
impl AsgiCore {
    /// Called by the loop when the eventfd is readable: start calls, resolve waiters.
    fn dispatch(slf: PyRef<'_, Self>, py: Python<'_>) -> PyResult<()> {
        let events = slf.as_super().hub.drain();
        match &slf.bridge {
            Some(b) => asgi::handle(py, b, events),
            None => Ok(()),
        }
    }

    fn bind(
        &mut self,
        py: Python<'_>,
        event_loop: Py<PyAny>,
        app: Py<PyAny>,
        run_call: Py<PyAny>,
        state: Py<PyDict>,
        disconnected_exc: Py<PyAny>,
    ) -> PyResult<()> {
        let create_task = event_loop.getattr(py, "create_task")?;
        let counter = self.counter.clone();
        self.bridge = Some(Arc::new(Bridge {
            app,
            event_loop,
            run_call,
            create_task,
            scope: ScopeBase {
                root_path: self
                    .serving
                    .asgi
                    .root_path
                    .clone()
                    .into_pyobject(py)?
                    .into_any()
                    .unbind(),
                state: Some(state),
            },
            disconnected_exc,
            worker: self.worker.clone_ref(py),
            serving: self.serving.clone(),
            pre_request: self.pre_request.as_ref().map(|h| h.clone_ref(py)),
            post_request: self.post_request.as_ref().map(|h| h.clone_ref(py)),
            on_request: Box::new(move |py| counter.count(py)),
        }));
        Ok(())
    }
}

pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
