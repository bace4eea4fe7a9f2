//! `send()`: the app's messages, checked against the ASGI state machine (an out-of-order
//! message raises RuntimeError in the app, as under uvicorn) and handed to the connection
//! in order. Past the session's high-water mark of unwritten bytes the app awaits a future
//! until the connection caught up, so a slow client slows the app instead of filling memory.
//! Also `finish`, which the call's runner invokes when the app returns or raises.

use std::sync::Arc;

use pyo3::exceptions::asyncio::CancelledError as PyCancelledError;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString};

use super::awaitable::Ready;
use super::bridge::Bridge;
use crate::http::{ByteHeaders, Outgoing, Session};
use crate::telemetry::error_log;
use crate::wsgi::app::format_traceback;

fn ready(py: Python<'_>) -> PyResult<Py<PyAny>> {
    Ok(Py::new(py, Ready::new(None))?.into_any())
}

fn runtime(msg: String) -> PyErr {
    PyRuntimeError::new_err(msg)
}

fn get<'py>(m: &Bound<'py, PyDict>, key: &str) -> PyResult<Option<Bound<'py, PyAny>>> {
    match m.get_item(key)? {
        Some(v) if !v.is_none() => Ok(Some(v)),
        _ => Ok(None),
    }
}

fn to_bytes(v: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<u8>> {
    if let Ok(b) = v.cast::<PyBytes>() {
        return Ok(b.as_bytes().to_vec());
    }
    if let Ok(s) = v.cast::<PyString>() {
        let s = s.to_cow()?;
        if s.chars().all(|c| (c as u32) < 256) {
            let mut out = Vec::with_capacity(s.len());
            ferrocorn_h1::push_latin1(&mut out, &s);
            return Ok(out);
        }
    }
    if let Ok(b) = v.extract::<Vec<u8>>() {
        return Ok(b);
    }
    Err(PyValueError::new_err(format!(
        "{what} must be bytes, not {}",
        v.get_type().name()?
    )))
}

/// An ASGI header list, checked as Gunicorn checks a WSGI app's headers.
fn headers(message: &Bound<'_, PyDict>) -> PyResult<ByteHeaders> {
    let mut out = Vec::new();
    let Some(list) = get(message, "headers")? else {
        return Ok(out);
    };
    for item in list.try_iter()? {
        let item = item?;
        let mut pair = item.try_iter()?;
        let (Some(n), Some(v), None) = (pair.next(), pair.next(), pair.next()) else {
            return Err(PyValueError::new_err(
                "ASGI headers must be (name, value) pairs",
            ));
        };
        let name = to_bytes(&n?, "header name")?;
        let value = to_bytes(&v?, "header value")?;
        let name_ok = std::str::from_utf8(&name).is_ok_and(ferrocorn_h1::valid_header_name);
        if !name_ok {
            return Err(PyValueError::new_err(format!(
                "Invalid HTTP header name {:?}",
                String::from_utf8_lossy(&name)
            )));
        }
        if value.iter().any(|&c| c == b'\r' || c == b'\n' || c == 0) {
            return Err(PyValueError::new_err(format!(
                "Invalid HTTP header value for {:?}",
                String::from_utf8_lossy(&name)
            )));
        }
        out.push((name, value));
    }
    Ok(out)
}

fn status(message: &Bound<'_, PyDict>) -> PyResult<u16> {
    let s: i64 = get(message, "status")?
        .ok_or_else(|| PyValueError::new_err("'status' is required"))?
        .extract()?;
    if !(100..=999).contains(&s) {
        return Err(PyValueError::new_err(format!(
            "Invalid HTTP status code {s}"
        )));
    }
    Ok(s as u16)
}

fn kind<'py>(message: &Bound<'py, PyAny>) -> PyResult<(Bound<'py, PyDict>, String)> {
    let d = message.cast::<PyDict>()?.clone();
    let t: String = get(&d, "type")?
        .ok_or_else(|| PyValueError::new_err("ASGI message has no 'type'"))?
        .extract()?;
    Ok((d, t))
}

/// Wait for the connection to take what was sent, when too much is unwritten. The future
/// is made without the session's lock; the mark is checked again under it, so a `written`
/// in between cannot leave the future unresolved.
fn paced(py: Python<'_>, session: &Arc<Session>, event_loop: &Py<PyAny>) -> PyResult<Py<PyAny>> {
    if !session.over_high_water() {
        return ready(py);
    }
    let fut = event_loop
        .bind(py)
        .call_method0(intern!(py, "create_future"))?
        .unbind();
    let mut st = session.state();
    if st.client_gone || !session.over_high_water() {
        return ready(py);
    }
    st.send_waiter = Some(fut.clone_ref(py));
    Ok(fut)
}

/// The call is over: no future of it is waited on any more, and the task is done. Cleared
/// here, on the loop thread, so the session never drops a Python object elsewhere.
fn release(session: &Session) {
    let mut st = session.state();
    st.task = None;
    st.recv_waiter = None;
    st.send_waiter = None;
}

/// How the app's call ended, logged as Gunicorn logs it; the connection then decides what
/// the client sees. Returns whether the call failed.
fn log_end(py: Python<'_>, exc: Option<&Bound<'_, PyAny>>, complete: bool, what: &str) -> bool {
    let Some(exc) = exc else {
        return false;
    };
    let err = PyErr::from_value(exc.clone());
    if !err.is_instance_of::<pyo3::exceptions::PyException>(py)
        && !err.is_instance_of::<PyCancelledError>(py)
    {
        // SystemExit or KeyboardInterrupt from a signal handler (a WORKER TIMEOUT abort, a
        // quick stop): the worker is leaving, which the worker itself logs.
        return true;
    }
    if err.is_instance_of::<PyCancelledError>(py) {
        error_log::debug("Request cancelled (client disconnected)");
    } else if complete {
        error_log::debug("Exception after response complete (client disconnected)");
    } else {
        error_log::error(&format!("Error in {what}\n{}", format_traceback(py, &err)));
    }
    true
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum HttpPhase {
    Init,
    Started,
    Complete,
}

#[pyclass(module = "ferrocorn._ferrocorn", name = "HttpSend")]
pub struct HttpSend {
    session: Arc<Session>,
    bridge: Arc<Bridge>,
    phase: HttpPhase,
    /// For `post_request`: the request object and the request, the status and headers,
    /// bytes sent.
    hook_request: Option<(Py<PyAny>, crate::http::Request)>,
    status: u16,
    headers: Vec<(String, String)>,
    sent: u64,
    /// The start waits for the first body message, so both cross to the I/O thread at once.
    pending_start: Option<(u16, ByteHeaders)>,
}

impl HttpSend {
    fn flush_start(&mut self) {
        if let Some((status, headers)) = self.pending_start.take() {
            self.session.send(Outgoing::Start { status, headers });
        }
    }
    pub fn new(
        session: Arc<Session>,
        bridge: Arc<Bridge>,
        hook_request: Option<(Py<PyAny>, crate::http::Request)>,
    ) -> Self {
        HttpSend {
            session,
            bridge,
            phase: HttpPhase::Init,
            hook_request,
            status: 0,
            headers: Vec::new(),
            sent: 0,
            pending_start: None,
        }
    }
}

#[pymethods]
impl HttpSend {
    fn __call__(&mut self, py: Python<'_>, message: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let (m, t) = kind(message)?;
        if self.session.state().client_gone {
            return ready(py);
        }
        match (t.as_str(), self.phase) {
            ("http.response.start", HttpPhase::Init) => {
                let status = status(&m)?;
                let headers = headers(&m)?;
                if self.hook_request.is_some() {
                    self.headers = headers
                        .iter()
                        .map(|(n, v)| {
                            (
                                String::from_utf8_lossy(n).into_owned(),
                                ferrocorn_h1::latin1(v),
                            )
                        })
                        .collect();
                }
                self.status = status;
                self.phase = HttpPhase::Started;
                // A final status before the body was asked for: no 100 Continue.
                self.session.state().continue_pending = false;
                self.pending_start = Some((status, headers));
                ready(py)
            }
            ("http.response.informational", HttpPhase::Init) => {
                let status = status(&m)?;
                if !(100..200).contains(&status) || status == 101 {
                    return Err(PyValueError::new_err(format!(
                        "Invalid informational status {status}"
                    )));
                }
                let headers = headers(&m)?;
                self.session
                    .send(Outgoing::Informational { status, headers });
                ready(py)
            }
            ("http.response.body", HttpPhase::Started) => {
                let data = match get(&m, "body")? {
                    Some(b) => to_bytes(&b, "body")?,
                    None => Vec::new(),
                };
                let more = match get(&m, "more_body")? {
                    Some(v) => v.is_truthy()?,
                    None => false,
                };
                self.sent += data.len() as u64;
                if !more {
                    self.phase = HttpPhase::Complete;
                }
                let msg = match self.pending_start.take() {
                    Some((status, headers)) => Outgoing::Response {
                        status,
                        headers,
                        data,
                        more,
                    },
                    None => Outgoing::Body { data, more },
                };
                self.session.send(msg);
                paced(py, &self.session, &self.bridge.event_loop)
            }
            ("http.response.pathsend", HttpPhase::Started) => {
                let path: String = get(&m, "path")?
                    .ok_or_else(|| PyValueError::new_err("'path' is required"))?
                    .extract()?;
                self.phase = HttpPhase::Complete;
                self.flush_start();
                self.session.send(Outgoing::PathSend { path });
                ready(py)
            }
            (t, HttpPhase::Init) => Err(runtime(format!(
                "Expected ASGI message 'http.response.start', but got '{t}'."
            ))),
            (t, HttpPhase::Started) => Err(runtime(format!(
                "Expected ASGI message 'http.response.body', but got '{t}'."
            ))),
            (t, HttpPhase::Complete) => Err(runtime(format!(
                "Unexpected ASGI message '{t}' sent, after response already completed."
            ))),
        }
    }

    /// The runner's report: the app returned (`exc` None) or raised `exc`.
    #[pyo3(signature = (exc=None))]
    fn finish(&mut self, py: Python<'_>, exc: Option<&Bound<'_, PyAny>>) {
        let failed = log_end(
            py,
            exc,
            self.phase == HttpPhase::Complete,
            "ASGI application",
        );
        self.session.state().task = None;
        self.session.send(Outgoing::Done { failed });
        if let Some((obj, req)) = self.hook_request.take() {
            let status = if self.phase == HttpPhase::Init {
                500
            } else {
                self.status
            };
            self.bridge
                .post_request(py, &obj, &req, status, &self.headers, self.sent);
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum WsPhase {
    Connecting,
    Accepted,
    Closed,
    Denying,
    Denied,
}

#[pyclass(module = "ferrocorn._ferrocorn", name = "WebSocketSend")]
pub struct WsSend {
    session: Arc<Session>,
    bridge: Arc<Bridge>,
    phase: WsPhase,
}

impl WsSend {
    pub fn new(session: Arc<Session>, bridge: Arc<Bridge>) -> Self {
        WsSend {
            session,
            bridge,
            phase: WsPhase::Connecting,
        }
    }

    fn gone(&self, py: Python<'_>) -> PyErr {
        PyErr::from_value(
            self.bridge
                .disconnected_exc
                .bind(py)
                .call1(("the WebSocket connection is closed",))
                .unwrap_or_else(|e| e.into_value(py).into_bound(py).into_any()),
        )
    }
}

#[pymethods]
impl WsSend {
    fn __call__(&mut self, py: Python<'_>, message: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let (m, t) = kind(message)?;
        let peer_closed = {
            let st = self.session.state();
            st.client_gone || st.ws_close.is_some()
        };
        match (t.as_str(), self.phase) {
            ("websocket.accept", WsPhase::Connecting) => {
                let subprotocol: Option<String> =
                    get(&m, "subprotocol")?.map(|s| s.extract()).transpose()?;
                if let Some(p) = &subprotocol {
                    // A subprotocol is a token, as a header name is.
                    if !ferrocorn_h1::valid_header_name(p) {
                        return Err(PyValueError::new_err(format!(
                            "Invalid WebSocket subprotocol {p:?}"
                        )));
                    }
                }
                let headers = headers(&m)?;
                self.phase = WsPhase::Accepted;
                self.session.send(Outgoing::WsAccept { subprotocol, headers });
                ready(py)
            }
            ("websocket.send", WsPhase::Accepted) => {
                if peer_closed {
                    return Err(self.gone(py));
                }
                let text = get(&m, "text")?;
                let bytes = get(&m, "bytes")?;
                let msg = match (text, bytes) {
                    (Some(t), None) => Outgoing::WsText(t.extract()?),
                    (None, Some(b)) => Outgoing::WsBytes(to_bytes(&b, "bytes")?),
                    _ => {
                        return Err(PyValueError::new_err(
                            "websocket.send needs exactly one of 'bytes' and 'text'",
                        ))
                    }
                };
                self.session.send(msg);
                paced(py, &self.session, &self.bridge.event_loop)
            }
            ("websocket.close", WsPhase::Connecting | WsPhase::Accepted) => {
                let code: u16 = get(&m, "code")?.map(|c| c.extract()).transpose()?.unwrap_or(1000);
                // Some frameworks pass a non-string reason (FastAPI: a list of errors).
                let reason: String = match get(&m, "reason")? {
                    Some(r) => match r.extract::<String>() {
                        Ok(s) => s,
                        Err(_) => r.str()?.to_cow()?.into_owned(),
                    },
                    None => String::new(),
                };
                self.phase = WsPhase::Closed;
                self.session.send(Outgoing::WsClose { code, reason });
                ready(py)
            }
            ("websocket.http.response.start", WsPhase::Connecting) => {
                let status = status(&m)?;
                let headers = headers(&m)?;
                self.phase = WsPhase::Denying;
                self.session.send(Outgoing::Start { status, headers });
                ready(py)
            }
            ("websocket.http.response.body", WsPhase::Denying) => {
                let data = match get(&m, "body")? {
                    Some(b) => to_bytes(&b, "body")?,
                    None => Vec::new(),
                };
                let more = get(&m, "more_body")?.map(|v| v.is_truthy()).transpose()?.unwrap_or(false);
                if !more {
                    self.phase = WsPhase::Denied;
                }
                self.session.send(Outgoing::Body { data, more });
                ready(py)
            }
            (_, WsPhase::Closed) | ("websocket.send", _) if peer_closed || self.phase == WsPhase::Closed => {
                Err(self.gone(py))
            }
            (t, WsPhase::Connecting) => Err(runtime(format!(
                "Expected ASGI message 'websocket.accept', 'websocket.close', or 'websocket.http.response.start' but got '{t}'."
            ))),
            (t, WsPhase::Accepted) => Err(runtime(format!(
                "Expected ASGI message 'websocket.send' or 'websocket.close', but got '{t}'."
            ))),
            (t, WsPhase::Denying) => Err(runtime(format!(
                "Expected ASGI message 'websocket.http.response.body', but got '{t}'."
            ))),
            (t, _) => Err(runtime(format!(
                "Unexpected ASGI message '{t}', after sending 'websocket.close' or response already completed."
            ))),
        }
    }

    #[pyo3(signature = (exc=None))]
    fn finish(&mut self, py: Python<'_>, exc: Option<&Bound<'_, PyAny>>) {
        // A send after the peer left raised WebSocketDisconnected: not the app's fault.
        let disconnected = exc.is_some_and(|e| {
            e.is_instance(self.bridge.disconnected_exc.bind(py))
                .unwrap_or(false)
        });
        if disconnected {
            error_log::debug("WebSocket closed while the application was sending");
        }
        let failed = if disconnected {
            true
        } else {
            log_end(py, exc, false, "WebSocket ASGI application")
        };
        release(&self.session);
        self.session.send(Outgoing::Done { failed });
    }
}
