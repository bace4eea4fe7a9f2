//! The objects hooks get, with Gunicorn's attributes and values: `req` and `resp`
//! (`pre_request`, `post_request`), `server.LISTENERS`/`worker.sockets`, and `worker.tmp`.
//! Built only when a hook will see them; they carry no server behaviour.

use pyo3::prelude::*;
use pyo3::types::{PyCFunction, PyDict, PyList};

use crate::config::Serving;
use crate::http::{Peer, Request, ResponseInfo};
use crate::net::Listener;
use crate::sys::heartbeat::Beat;

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

/// The `req` hooks get. `body` is the same object as `wsgi.input`, so a hook that reads it
/// consumes what the app would have read, as under Gunicorn.
pub fn request_object(
    py: Python<'_>,
    serving: &Serving,
    req: &Request,
    body: Py<PyAny>,
) -> PyResult<Py<PyAny>> {
    let objects = py.import("ferrocorn._objects")?;
    let kw = PyDict::new(py);
    kw.set_item("method", &req.method)?;
    kw.set_item("uri", &req.uri)?;
    kw.set_item("path", &req.path)?;
    kw.set_item("query", &req.query)?;
    kw.set_item("fragment", &req.fragment)?;
    kw.set_item("version", req.version)?;
    kw.set_item(
        "headers",
        PyList::new(
            py,
            req.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())),
        )?,
    )?;
    // The parser checks trailer fields but does not keep them.
    kw.set_item("trailers", PyList::empty(py))?;
    kw.set_item("body", body)?;
    kw.set_item("scheme", req.scheme)?;
    // Gunicorn's must_close is only what force_close() set; should_close() adds the
    // Connection header and version rules, which the request already decided.
    kw.set_item("must_close", false)?;
    kw.set_item("_head_close", req.close_requested)?;
    kw.set_item("req_number", req.number)?;
    match &req.peer {
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
    match &req.proxy {
        Some(info) => kw.set_item("proxy_protocol_info", proxy_info_dict(py, info)?)?,
        None => kw.set_item("proxy_protocol_info", py.None())?,
    }
    // Gunicorn's `Request.__init__` normalises the limits as the parser does.
    let limits = serving.parser.limits();
    kw.set_item("limit_request_line", limits.request_line)?;
    kw.set_item("limit_request_fields", limits.fields)?;
    kw.set_item("limit_request_field_size", limits.field_size)?;
    Ok(objects.getattr("Request")?.call((), Some(&kw))?.unbind())
}

/// What the response said and did, as the `resp` of `post_request`.
pub struct ResponseFacts<'a> {
    pub info: &'a ResponseInfo,
    pub headers_sent: bool,
    pub must_close: bool,
}

pub fn response_object(
    py: Python<'_>,
    resp: ResponseFacts<'_>,
    req: &Py<PyAny>,
) -> PyResult<Py<PyAny>> {
    let r = resp.info;
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
    kw.set_item("headers_sent", resp.headers_sent)?;
    kw.set_item("must_close", resp.must_close)?;
    Ok(py
        .import("ferrocorn._objects")?
        .getattr("Response")?
        .call((), Some(&kw))?
        .unbind())
}

/// `server.LISTENERS` / `worker.sockets`: one `ferrocorn._objects.Listener` per listener,
/// carrying its real descriptor and the address as Gunicorn prints it.
pub fn listener_objects<'py>(
    py: Python<'py>,
    listeners: &[Listener],
) -> PyResult<Bound<'py, PyList>> {
    let class = py.import("ferrocorn._objects")?.getattr("Listener")?;
    let list = PyList::empty(py);
    for l in listeners {
        list.append(class.call1((l.fd(), l.to_string()))?)?;
    }
    Ok(list)
}

/// `worker.tmp`: Gunicorn's heartbeat file object, over this worker's shared-memory slot.
/// Built in the master before fork, so `pre_fork` sees it too, as under Gunicorn.
pub fn worker_tmp(py: Python<'_>, beat: Beat) -> PyResult<Py<PyAny>> {
    let notify = PyCFunction::new_closure(py, None, None, move |_args, _kw| beat.notify())?;
    let silent = PyCFunction::new_closure(py, None, None, move |_args, _kw| beat.silent_for_ms())?;
    Ok(py
        .import("ferrocorn._objects")?
        .getattr("WorkerTmp")?
        .call1((notify, silent))?
        .unbind())
}
