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

/// The app's next message, if it can have one now (the loop thread, under the session's
/// lock, so a message cannot arrive between looking and waiting).
pub fn next_message(
    py: Python<'_>,
    session: &Session,
    st: &mut SessionState,
) -> PyResult<Option<Py<PyAny>>> {
    if session.ws {
        let msg = next_ws_message(py, st)?;
        if msg.is_some() {
            // The connection may be waiting for room in the queue.
            session.space.notify_one();
        }
        return Ok(msg);
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
        let d = message(py, intern!(py, "http.request"))?;
        d.set_item(intern!(py, "body"), PyBytes::new(py, &body))?;
        d.set_item(intern!(py, "more_body"), more)?;
        return Ok(Some(d.into_any().unbind()));
    }
    if st.disconnected {
        return Ok(Some(
            message(py, intern!(py, "http.disconnect"))?
                .into_any()
                .unbind(),
        ));
    }
    Ok(None)
}

fn next_ws_message(py: Python<'_>, st: &mut SessionState) -> PyResult<Option<Py<PyAny>>> {
    match st.inbound.pop_front() {
        Some(Inbound::WsText(t)) => {
            st.inbound_bytes -= t.len();
            let d = message(py, intern!(py, "websocket.receive"))?;
            d.set_item(intern!(py, "text"), t)?;
            Ok(Some(d.into_any().unbind()))
        }
        Some(Inbound::WsBytes(b)) => {
            st.inbound_bytes -= b.len();
            let d = message(py, intern!(py, "websocket.receive"))?;
            d.set_item(intern!(py, "bytes"), PyBytes::new(py, &b))?;
            Ok(Some(d.into_any().unbind()))
        }
        Some(Inbound::WsClosed { code, reason }) => {
            st.ws_close = Some((code, reason));
            ws_disconnect(py, st).map(Some)
        }
        Some(Inbound::Body { .. }) => Ok(None),
        None if st.disconnected || st.ws_close.is_some() => ws_disconnect(py, st).map(Some),
        None => Ok(None),
    }
}

fn ws_disconnect(py: Python<'_>, st: &SessionState) -> PyResult<Py<PyAny>> {
    let (code, reason) = st.ws_close.clone().unwrap_or((1006, String::new()));
    let d = message(py, intern!(py, "websocket.disconnect"))?;
    d.set_item(intern!(py, "code"), code)?;
    d.set_item(intern!(py, "reason"), reason)?;
    Ok(d.into_any().unbind())
}

#[pymethods]
impl Receive {
    fn __call__(&mut self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        if self.connect_pending {
            self.connect_pending = false;
            let d = message(py, intern!(py, "websocket.connect"))?;
            return Ok(Py::new(py, Ready::new(Some(d.into_any().unbind())))?.into_any());
        }
        let mut st = self.session.state();
        if st.continue_pending {
            st.continue_pending = false;
            self.session.send(Outgoing::Continue);
        }
        if let Some(msg) = next_message(py, &self.session, &mut st)? {
            return Ok(Py::new(py, Ready::new(Some(msg)))?.into_any());
        }
        if let Some(old) = &st.recv_waiter {
            if !old
                .bind(py)
                .call_method0(intern!(py, "done"))?
                .is_truthy()?
            {
                return Err(pyo3::exceptions::PyRuntimeError::new_err(
                    "receive() called while another receive() is waiting",
                ));
            }
        }
        let fut = self
            .event_loop
            .bind(py)
            .call_method0(intern!(py, "create_future"))?
            .unbind();
        st.recv_waiter = Some(fut.clone_ref(py));
        Ok(fut)
    }
}
