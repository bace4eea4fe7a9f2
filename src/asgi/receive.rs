//! `receive()`: the messages a call's app reads, built from what the connection queued.
//! A message that is already there is returned as a finished awaitable; otherwise the app
//! awaits a future that the wake-up from the connection resolves.

use std::sync::Arc;

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use super::awaitable::Ready;
use crate::http::{Inbound, Outgoing, Session, SessionState, RECEIVE_HIGH_WATER};

#[pyclass(module = "ferrocorn._ferrocorn", name = "Receive")]
pub struct Receive {
    session: Arc<Session>,
    event_loop: Py<PyAny>,
    /// A WebSocket app's first message is `websocket.connect`.
    connect_pending: bool,
}

impl Receive {
    pub fn new(session: Arc<Session>, event_loop: Py<PyAny>) -> Receive {
        let connect_pending = session.ws;
        Receive {
            session,
            event_loop,
            connect_pending,
        }
    }
}

fn message<'py>(
    py: Python<'py>,
    kind: &Bound<'py, pyo3::types::PyString>,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item(intern!(py, "type"), kind)?;
    Ok(d)
}

/// What the app receives next, taken from the session under its lock (plain Rust: no
/// Python runs while the I/O thread may be waiting for the lock).
pub enum Next {
    Body(Vec<u8>, bool),
    Disconnect,
    WsText(String),
    WsBytes(Vec<u8>),
    WsDisconnect(u16, String),
}

/// Take the app's next message if it can have one now.
pub fn take_next(session: &Session, st: &mut SessionState) -> Option<Next> {
    if session.ws {
        let next = take_ws(st);
        if next.is_some() {
            // The connection may be waiting for room in the queue.
            session.space.notify_one();
        }
        return next;
    }
    if matches!(st.inbound.front(), Some(Inbound::Body { .. })) {
        let before = st.inbound_bytes;
        let mut body: Vec<u8> = Vec::new();
        let mut more = true;
        while let Some(Inbound::Body { .. }) = st.inbound.front() {
            let Some(Inbound::Body { data, more: m }) = st.inbound.pop_front() else {
                break;
            };
            st.inbound_bytes -= data.len();
            if body.is_empty() {
                body = data;
            } else {
                body.extend_from_slice(&data);
            }
            more = m;
            if !more {
                break;
            }
        }
        if before >= RECEIVE_HIGH_WATER && st.inbound_bytes < RECEIVE_HIGH_WATER {
            session.space.notify_one();
        }
        return Some(Next::Body(body, more));
    }
    st.disconnected.then_some(Next::Disconnect)
}

fn take_ws(st: &mut SessionState) -> Option<Next> {
    match st.inbound.pop_front() {
        Some(Inbound::WsText(t)) => {
            st.inbound_bytes -= t.len();
            Some(Next::WsText(t))
        }
        Some(Inbound::WsBytes(b)) => {
            st.inbound_bytes -= b.len();
            Some(Next::WsBytes(b))
        }
        Some(Inbound::WsClosed { code, reason }) => {
            st.ws_close = Some((code, reason.clone()));
            Some(Next::WsDisconnect(code, reason))
        }
        Some(Inbound::Body { .. }) => None,
        None if st.disconnected || st.ws_close.is_some() => {
            let (code, reason) = st.ws_close.clone().unwrap_or((1006, String::new()));
            Some(Next::WsDisconnect(code, reason))
        }
        None => None,
    }
}

/// The ASGI message for what `take_next` took.
pub fn build(py: Python<'_>, next: Next) -> PyResult<Py<PyAny>> {
    let d = match next {
        Next::Body(body, more) => {
            let d = message(py, intern!(py, "http.request"))?;
            d.set_item(intern!(py, "body"), PyBytes::new(py, &body))?;
            d.set_item(intern!(py, "more_body"), more)?;
            d
        }
        Next::Disconnect => message(py, intern!(py, "http.disconnect"))?,
        Next::WsText(t) => {
            let d = message(py, intern!(py, "websocket.receive"))?;
            d.set_item(intern!(py, "text"), t)?;
            d
        }
        Next::WsBytes(b) => {
            let d = message(py, intern!(py, "websocket.receive"))?;
            d.set_item(intern!(py, "bytes"), PyBytes::new(py, &b))?;
            d
        }
        Next::WsDisconnect(code, reason) => {
            let d = message(py, intern!(py, "websocket.disconnect"))?;
            d.set_item(intern!(py, "code"), code)?;
            d.set_item(intern!(py, "reason"), reason)?;
            d
        }
    };
    Ok(d.into_any().unbind())
}

fn ready(py: Python<'_>, next: Next) -> PyResult<Py<PyAny>> {
    let msg = build(py, next)?;
    Ok(Py::new(py, Ready::new(Some(msg)))?.into_any())
}

#[pymethods]
impl Receive {
    fn __call__(&mut self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        if self.connect_pending {
            self.connect_pending = false;
            let d = message(py, intern!(py, "websocket.connect"))?;
            return Ok(Py::new(py, Ready::new(Some(d.into_any().unbind())))?.into_any());
        }
        {
            let mut st = self.session.state();
            if st.continue_pending {
                st.continue_pending = false;
                self.session.send(Outgoing::Continue);
            }
            if let Some(next) = take_next(&self.session, &mut st) {
                drop(st);
                return ready(py, next);
            }
        }
        // Nothing yet: wait on a future. It is made without the lock, then the lock is
        // taken again to look once more and register it, so nothing slips in between.
        let fut = self
            .event_loop
            .bind(py)
            .call_method0(intern!(py, "create_future"))?
            .unbind();
        let old = {
            let mut st = self.session.state();
            if let Some(next) = take_next(&self.session, &mut st) {
                drop(st);
                return ready(py, next);
            }
            st.recv_waiter.replace(fut.clone_ref(py))
        };
        if let Some(old) = old {
            if !old
                .bind(py)
                .call_method0(intern!(py, "done"))?
                .is_truthy()?
            {
                self.session.state().recv_waiter = Some(old);
                return Err(pyo3::exceptions::PyRuntimeError::new_err(
                    "receive() called while another receive() is waiting",
                ));
            }
        }
        Ok(fut)
    }
}
