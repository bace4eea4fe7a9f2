//! The `req` and `resp` objects `pre_request` / `post_request` hooks get, with Gunicorn's
//! attributes and values. Built only when such a hook is configured; they carry no server
//! behaviour and must not touch the socket.

use std::sync::Arc;

use ferrocorn_h1::RequestHead;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use super::request::Conn;
use crate::net::{Peer, Stream};
use crate::wsgi::response::{lock, Shared};

thread_local! {
    /// The connection this thread served last and how many requests it has carried. The
    /// Weak keeps that allocation from being reused, so a new connection never matches it.
    static ON_CONNECTION: std::cell::RefCell<Option<(std::sync::Weak<Stream>, u64)>> =
        const { std::cell::RefCell::new(None) };
}

/// Gunicorn's `req.req_number`: the request's position on its connection, from 1.
pub(super) fn request_number_on(stream: &Arc<Stream>) -> u64 {
    ON_CONNECTION.with(|cell| {
        let mut last = cell.borrow_mut();
        let n = match last.as_ref() {
            Some((weak, n)) if std::sync::Weak::ptr_eq(weak, &Arc::downgrade(stream)) => n + 1,
            _ => 1,
        };
        *last = Some((Arc::downgrade(stream), n));
        n
    })
}

/// Gunicorn's request limits as `Request.__init__` normalises them: out-of-range values
/// become the hard maxima (8190 bytes, 32768 fields), and 0 lines stay 0 (unlimited).
fn request_limits(cfg: &crate::config::Config) -> (i64, i64, i64) {
    const MAX_REQUEST_LINE: i64 = 8190;
    const MAX_HEADERS: i64 = 32768;
    const DEFAULT_MAX_HEADERFIELD_SIZE: i64 = 8190;
    let line = match cfg.limit_request_line {
        n if !(0..MAX_REQUEST_LINE).contains(&n) => MAX_REQUEST_LINE,
        n => n,
    };
    let fields = match cfg.limit_request_fields {
        n if n <= 0 || n > MAX_HEADERS => MAX_HEADERS,
        n => n,
    };
    let field_size = match cfg.limit_request_field_size {
        n if n <= 0 => DEFAULT_MAX_HEADERFIELD_SIZE,
        n => n,
    };
    (line, fields, field_size)
}

/// Gunicorn's `req.proxy_protocol_info` dict for what the PROXY header said.
fn proxy_info_dict<'py>(
    py: Python<'py>,
    info: &ferrocorn_h1::ProxyInfo,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("proxy_protocol", info.protocol)?;
    d.set_item("client_addr", info.client_addr.as_deref())?;
    d.set_item("client_port", info.client_port)?;
    d.set_item("proxy_addr", info.proxy_addr.as_deref())?;
    d.set_item("proxy_port", info.proxy_port)?;
    Ok(d)
}

/// The `req` hooks get. `body` is the same reader as `wsgi.input`, so a hook that reads it
/// consumes what the app would have read, as under Gunicorn.
pub(super) fn request_object(
    py: Python<'_>,
    cfg: &crate::config::Config,
    head: &RequestHead,
    conn: &Conn<'_>,
    body: Py<PyAny>,
    nr: u64,
) -> PyResult<Py<PyAny>> {
    let objects = py.import("ferrocorn._objects")?;
    let kw = PyDict::new(py);
    kw.set_item("method", &head.method)?;
    kw.set_item("uri", &head.uri)?;
    kw.set_item("path", &head.path)?;
    kw.set_item("query", &head.query)?;
    kw.set_item("fragment", &head.fragment)?;
    kw.set_item("version", head.version)?;
    kw.set_item(
        "headers",
        PyList::new(
            py,
            head.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())),
        )?,
    )?;
    // The parser checks trailer fields but does not keep them.
    kw.set_item("trailers", PyList::empty(py))?;
    kw.set_item("body", body)?;
    kw.set_item("scheme", head.scheme)?;
    // Gunicorn's must_close is only what force_close() set; should_close() adds the
    // Connection header and version rules, which the head already decided.
    kw.set_item("must_close", false)?;
    kw.set_item("_head_close", head.should_close())?;
    kw.set_item("req_number", nr)?;
    match &conn.peer {
        Peer::Ip(a) => {
            kw.set_item("peer_addr", (a.ip().to_string(), a.port()))?;
            kw.set_item("remote_addr", (a.ip().to_string(), a.port()))?;
        }
        // accept() on a unix socket names no peer; Python reports that as "".
        Peer::Unix => {
            kw.set_item("peer_addr", "")?;
            kw.set_item("remote_addr", "")?;
        }
    }
    match &conn.proxy {
        Some(info) => kw.set_item("proxy_protocol_info", proxy_info_dict(py, info)?)?,
        None => kw.set_item("proxy_protocol_info", py.None())?,
    }
    let (line, fields, field_size) = request_limits(cfg);
    kw.set_item("limit_request_line", line)?;
    kw.set_item("limit_request_fields", fields)?;
    kw.set_item("limit_request_field_size", field_size)?;
    Ok(objects.getattr("Request")?.call((), Some(&kw))?.unbind())
}

pub(super) fn response_object(
    py: Python<'_>,
    resp: &Shared,
    req: &Py<PyAny>,
) -> PyResult<Py<PyAny>> {
    let r = lock(resp);
    let kw = PyDict::new(py);
    // Response.should_close() consults the request, as Gunicorn's does.
    kw.set_item("_req", req.clone_ref(py))?;
    kw.set_item("status", r.status.clone())?;
    kw.set_item("status_code", r.status_code)?;
    kw.set_item(
        "headers",
        PyList::new(py, r.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())))?,
    )?;
    kw.set_item("sent", r.sent)?;
    kw.set_item("response_length", r.response_length)?;
    kw.set_item("chunked", r.chunked)?;
    kw.set_item("headers_sent", r.headers_sent)?;
    kw.set_item("must_close", r.must_close)?;
    Ok(py
        .import("ferrocorn._objects")?
        .getattr("Response")?
        .call((), Some(&kw))?
        .unbind())
}
