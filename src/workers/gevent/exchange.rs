//! One WSGI request of the gevent worker as an `http::Exchange`, so the same request path
//! as the sync and gthread workers' (`workers::request`, the `wsgi` bridge) serves it. The
//! I/O thread owns the socket: the body arrives as `Inbound` pieces through the call's
//! `Session`, and the response goes back as bytes this exchange framed, Gunicorn's way
//! (`Outgoing::Raw`).
//!
//! Waiting never blocks the thread: a read with nothing to read, or a write past the
//! session's high-water mark, parks the request's greenlet on a gevent Event that the hub's
//! dispatch sets when the I/O thread wakes the session. So the exchange holds the GIL
//! while it waits (a greenlet switch needs it), and no Rust lock is held across the switch
//! except this exchange's own: another greenlet of the same request that wants it (an app
//! writing from one greenlet while another reads `wsgi.input`) yields to the hub until it is
//! free (`http::lock`), rather than blocking the thread.
//!
//! Owns: the response's Connection header and its hand-over (the framing is `conn::Framer`,
//! the HTTP/1 exchange's), taking the body from the session. Must not: touch a socket.

use std::io;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use ferrocorn_h1::ParseError;
use pyo3::prelude::*;

use crate::conn::Framer;
use crate::http::{
    After, BodySource, ErrorPage, Exchange, Inbound, Outgoing, Request, ResponseInfo, ResponseSink,
    Session,
};
use crate::telemetry::error_log;

/// A response held in memory is sent at once past this size.
const HOLD_LIMIT: usize = 128 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Writing {
    Init,
    Body,
    Done,
    ErrorPage { head_reported: bool },
}

pub struct GeventExchange {
    session: Arc<Session>,
    /// `gevent.event.Event`, and the one this request's greenlet waits on, made at its
    /// first wait (most requests never wait).
    event_class: Py<PyAny>,
    event: Option<Py<PyAny>>,
    /// The request asked to close, or keep-alive is off.
    close_wanted: bool,
    tls: Option<Arc<crate::tls::ConnInfo>>,
    // The body.
    body: Vec<u8>,
    body_pos: usize,
    body_done: bool,
    // The response.
    framer: Framer,
    writing: Writing,
    forced_close: bool,
    close_announced: bool,
    /// Bytes framed but not yet handed to the I/O thread (the whole body is in memory).
    held: Option<Vec<u8>>,
}

/// Why a wait ended without what it waited for.
fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionReset, "the client went away")
}

impl GeventExchange {
    pub fn new(
        session: Arc<Session>,
        event_class: Py<PyAny>,
        req: &Request,
        keepalive: bool,
    ) -> Self {
        GeventExchange {
            session,
            event_class,
            event: None,
            close_wanted: req.close_requested || !keepalive,
            tls: req.tls.clone(),
            body: Vec::new(),
            body_pos: 0,
            body_done: false,
            framer: Framer::new(req.version, req.method == "HEAD", false),
            writing: Writing::Init,
            forced_close: false,
            close_announced: false,
            held: None,
        }
    }

    /// Park this greenlet until the session is woken (the I/O thread delivered body bytes,
    /// wrote past the high-water mark, or the client left). `ready` is checked under the
    /// session's lock before the waiter is registered, so no wake-up is missed.
    fn wait(
        &mut self,
        recv: bool,
        ready: impl Fn(&crate::http::SessionState) -> bool,
    ) -> io::Result<()> {
        Python::attach(|py| {
            let event = match &self.event {
                Some(e) => e.bind(py).clone(),
                None => {
                    let e = self.event_class.call0(py)?.into_bound(py);
                    self.event = Some(e.clone().unbind());
                    e
                }
            };
            event.call_method0("clear")?;
            {
                let mut st = self.session.state();
                if ready(&st) {
                    return Ok(());
                }
                let slot = if recv {
                    &mut st.recv_waiter
                } else {
                    &mut st.send_waiter
                };
                *slot = Some(event.clone().unbind());
            }
            event.call_method0("wait").map(drop)
        })
        // The Python exception itself (a gevent.Timeout the app set around its read, say)
        // reaches the app again through `wsgi.input`.
        .map_err(io::Error::from)
    }

    /// Move what arrived into `body`, waiting for at least one piece unless the body is done.
    fn fill(&mut self) -> io::Result<()> {
        loop {
            let mut st = self.session.state();
            if st.continue_pending {
                st.continue_pending = false;
                self.session.send(Outgoing::Continue);
            }
            let mut took = false;
            while let Some(item) = st.inbound.pop_front() {
                if let Inbound::Body { data, more } = item {
                    st.inbound_bytes -= data.len().min(st.inbound_bytes);
                    // What the app already read goes first (see `H1Exchange`'s body).
                    self.body.drain(..self.body_pos);
                    self.body_pos = 0;
                    self.body.extend_from_slice(&data);
                    self.body_done |= !more;
                    took = true;
                }
            }
            let disconnected = st.disconnected;
            let client_gone = st.client_gone;
            drop(st);
            if took {
                self.session.space.notify_one();
                return Ok(());
            }
            if self.body_done {
                return Ok(());
            }
            if disconnected {
                // The body stopped short: it was malformed (the I/O thread answered the
                // client), the client left, or it went silent past `timeout`.
                if let Some(err) = self.session.state().body_error.as_ref() {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, err.message()));
                }
                return Err(if client_gone {
                    gone()
                } else {
                    io::Error::new(
                        io::ErrorKind::TimedOut,
                        "timed out reading the request body",
                    )
                });
            }
            self.wait(true, |st| !st.inbound.is_empty() || st.disconnected)?;
        }
    }

    fn head_bytes(&mut self, out: &mut Vec<u8>) {
        if self.framer.head_closing(out, || self.will_close()) {
            self.close_announced = true;
        }
        self.writing = Writing::Body;
    }

    fn frame(&mut self, data: &[u8], out: &mut Vec<u8>) {
        if self.writing == Writing::Init {
            self.head_bytes(out);
        }
        self.framer.body(data, out);
    }

    /// Hand framed bytes to the I/O thread (or hold them), then wait while too much of
    /// what was handed is still unwritten.
    fn send(&mut self, bytes: Vec<u8>, last: bool) -> io::Result<()> {
        // A client that left is not written to (its writes are dropped without filling the
        // high-water mark, so this is where a streaming app learns of it).
        if self.session.state().client_gone {
            self.held = None;
            return Err(gone());
        }
        let bytes = match self.held.take() {
            Some(mut held) if !last && held.len() + bytes.len() <= HOLD_LIMIT => {
                held.extend_from_slice(&bytes);
                self.held = Some(held);
                return Ok(());
            }
            Some(mut held) => {
                held.extend_from_slice(&bytes);
                held
            }
            None => bytes,
        };
        if bytes.is_empty() && !last {
            return Ok(());
        }
        let close = last && self.will_close();
        if !self.session.send(Outgoing::Raw {
            data: bytes,
            last,
            close,
        }) {
            return Err(gone());
        }
        while self.session.over_high_water() {
            if self.session.state().client_gone {
                return Err(gone());
            }
            let session = self.session.clone();
            self.wait(false, move |st| {
                !session.over_high_water() || st.client_gone
            })?;
        }
        Ok(())
    }
}

impl BodySource for GeventExchange {
    /// Reading never blocks the thread (the greenlet waits), so it goes ahead with the GIL.
    fn body_buffered(&self) -> bool {
        true
    }

    fn read_body(&mut self, size: Option<usize>) -> io::Result<Vec<u8>> {
        loop {
            let have = self.body.len() - self.body_pos;
            let enough = match size {
                Some(n) => have >= n,
                None => false,
            };
            if enough || self.body_done || size == Some(0) {
                let n = size.unwrap_or(have).min(have);
                let out = self.body[self.body_pos..self.body_pos + n].to_vec();
                self.body_pos += n;
                return Ok(out);
            }
            self.fill()?;
        }
    }

    fn read_body_line(&mut self, size: Option<usize>) -> io::Result<Vec<u8>> {
        loop {
            let rest = &self.body[self.body_pos..];
            let limit = size.unwrap_or(usize::MAX).min(rest.len());
            let end = match rest[..limit].iter().position(|&b| b == b'\n') {
                Some(i) => Some(i + 1),
                None if limit == rest.len() && !self.body_done && size != Some(limit) => None,
                None => Some(limit),
            };
            if let Some(end) = end {
                let out = rest[..end].to_vec();
                self.body_pos += end;
                return Ok(out);
            }
            self.fill()?;
        }
    }

    fn read_body_in_place(&mut self, _size: Option<usize>, _f: &mut dyn FnMut(&[u8])) -> bool {
        false
    }

    fn take_body_error(&mut self) -> Option<ParseError> {
        // The I/O thread already answered the client (Gunicorn's 4xx page) and closed; the
        // error page this leads to goes nowhere, but the access log gets the status.
        self.session.state().body_error.take()
    }
}

impl ResponseSink for GeventExchange {
    fn start_response(&mut self, status: &str, headers: &[(String, String)]) -> Result<(), String> {
        self.framer.start(status, headers)
    }

    fn headers_sent(&self) -> bool {
        match self.writing {
            Writing::Init => false,
            Writing::Body | Writing::Done => true,
            Writing::ErrorPage { head_reported } => head_reported,
        }
    }

    fn write_body(&mut self, _py: Python<'_>, data: &[u8]) -> io::Result<()> {
        if self.framer.response.status.is_none() {
            return Err(io::Error::other("write() before start_response()"));
        }
        let mut out = Vec::with_capacity(
            data.len()
                + if self.writing == Writing::Init {
                    512
                } else {
                    16
                },
        );
        self.frame(data, &mut out);
        self.send(out, false)
    }

    fn body_in_memory(&mut self) {
        if self.held.is_none() {
            self.held = Some(Vec::new());
        }
    }

    fn send_file(&mut self, _py: Python<'_>, _fileno: i32) -> io::Result<bool> {
        // The I/O thread owns the socket: the bridge reads the file and sends its bytes.
        Ok(false)
    }

    fn finish_response(&mut self, _py: Python<'_>) -> io::Result<()> {
        let mut out = Vec::new();
        if self.writing == Writing::Init {
            self.head_bytes(&mut out);
        }
        if self.framer.end(&mut out) {
            self.forced_close = true;
        }
        self.writing = Writing::Done;
        self.send(out, true)
    }

    fn early_hints(&mut self, _py: Python<'_>, headers: &[(String, String)]) -> io::Result<()> {
        if self.writing != Writing::Init || self.framer.version < (1, 1) {
            return Ok(());
        }
        // Checked as a response's headers are; the I/O thread frames the interim response,
        // which leaves a later `100 Continue` possible.
        ferrocorn_h1::encode_early_hints(headers)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let headers = headers
            .iter()
            .map(|(n, v)| {
                let mut value = Vec::new();
                ferrocorn_h1::push_latin1(&mut value, v.trim_matches([' ', '\t']));
                (n.as_bytes().to_vec(), value)
            })
            .collect();
        self.session.send(Outgoing::Informational {
            status: 103,
            headers,
        });
        Ok(())
    }

    fn send_error_page(&mut self, _py: Python<'_>, page: ErrorPage<'_>) {
        self.forced_close = true;
        self.held = None;
        let bytes = match page {
            ErrorPage::Internal => {
                self.framer.response.status = Some("500 Internal Server Error".into());
                self.framer.response.headers.clear();
                self.framer.response.sent = 0;
                ferrocorn_h1::error_page(500, "Internal Server Error", "")
            }
            ErrorPage::BadEnviron(reason) => {
                self.framer.response.status = Some("500 Bad Request".into());
                ferrocorn_h1::error_page(500, "Bad Request", reason)
            }
            ErrorPage::BadBody(err) => {
                self.framer.response.status = Some(format!("{} {}", err.status(), err.reason()));
                err.error_response()
            }
        };
        self.writing = Writing::ErrorPage {
            head_reported: false,
        };
        if self.send(bytes, true).is_err() {
            error_log::debug("Failed to send error message.");
        }
    }

    fn close_after(&mut self) {
        self.forced_close = true;
    }

    fn close_forced(&self) -> bool {
        self.forced_close
    }

    fn will_close(&self) -> bool {
        if self.forced_close || self.close_announced || self.close_wanted || self.framer.upgrade {
            return true;
        }
        // A client still waiting for `100 Continue` has sent none of the body: what it sends
        // next could be taken for it, so the connection ends with this response. So does one
        // whose body stopped arriving (the I/O thread closes after the response).
        if !self.body_done {
            let st = self.session.state();
            if (st.continue_pending && st.inbound.is_empty()) || st.disconnected {
                return true;
            }
        }
        !self.framer.delimited()
    }

    fn response(&self) -> &ResponseInfo {
        &self.framer.response
    }
}

impl GeventExchange {
    /// The request ended without `handle_request` concluding it (a failing `pre_request`
    /// hook, a panic): the client gets a 500 if nothing was sent, and the connection closes.
    pub fn abandon(&mut self, py: Python<'_>) {
        if self.writing == Writing::Init {
            self.send_error_page(py, ErrorPage::Internal);
        }
        self.conclude(py, false);
    }
}

impl Exchange for GeventExchange {
    /// The last `Outgoing::Raw` completes the response on the I/O thread, so no `Done`
    /// follows it: each message sent wakes that thread, and one is enough.
    fn conclude(&mut self, _py: Python<'_>, _reuse: bool) -> After {
        if matches!(self.writing, Writing::Init | Writing::Body) {
            // The app failed after its head went out (or never answered): end the response
            // where it stands, and the connection with it.
            self.forced_close = true;
            self.writing = Writing::Done;
            let _ = self.send(Vec::new(), true);
        }
        After::Close
    }

    fn dup_socket(&self) -> Option<io::Result<OwnedFd>> {
        None
    }

    fn tls_info(&mut self) -> Option<Arc<crate::tls::ConnInfo>> {
        self.tls.clone()
    }
}
