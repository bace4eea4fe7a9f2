//! The access log line of a request answered without a WSGI environ (an ASGI request, a
//! static file), from Rust: the atoms Gunicorn's ASGI worker fills (its environ for
//! `%({key}e)s` is the minimal one it builds for logging). Never takes the GIL: a Python
//! logger gets the call on its own thread.

use std::time::Duration;

use crate::http::Request;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::telemetry::{access, pyroute};

/// One line for `req`, answered with `status` (the status line's text, `200 OK`) and
/// `sent` body bytes.
pub fn log(
    req: &Request,
    status: &str,
    sent: u64,
    headers: &[(String, String)],
    elapsed: Duration,
) {
    // The client as the app's environ names it: the uWSGI gateway's REMOTE_ADDR, a PROXY
    // header's source, else the peer.
    let protocol = req.server_protocol().into_owned();
    let remote = match (&req.proxy, &req.gateway) {
        (_, Some(_)) => req.remote_addr(),
        (Some(p), None) if p.client_addr.is_some() => p.client_addr.clone().unwrap_or_default(),
        _ => req.peer.ip_string(),
    };
    if pyroute::active() {
        py_access(req, status, sent, headers, &protocol, &remote, elapsed);
        return;
    }
    let env = |key: &str| -> Option<String> {
        match key {
            "REQUEST_METHOD" => Some(req.method.clone()),
            "RAW_URI" => Some(req.uri.clone()),
            "PATH_INFO" => Some(req.path.clone()),
            "QUERY_STRING" => Some(req.query.clone()),
            "SERVER_PROTOCOL" => Some(protocol.clone()),
            "REMOTE_ADDR" => Some(remote.clone()),
            k => k.strip_prefix("HTTP_").and_then(|h| {
                let name = h.replace('_', "-");
                let value = req.header_values(&name).next().map(str::to_string);
                value
            }),
        }
    };
    let record = access::AccessRecord {
        remote_addr: &remote,
        method: &req.method,
        raw_uri: &req.uri,
        protocol: &protocol,
        status,
        path_info: Some(&req.path),
        query: &req.query,
        sent: Some(sent),
        request_headers: &req.headers,
        response_headers: headers,
        request_time: elapsed,
        environ: &env,
    };
    access::log(&record);
}

/// A Python logger's `access(resp, req, environ, request_time)`, with objects carrying what
/// Gunicorn's ASGI worker gives it. The I/O thread must not wait for the GIL, so the call is
/// handed to the logger's own thread with copies of what it needs.
fn py_access(
    req: &Request,
    status: &str,
    sent: u64,
    headers: &[(String, String)],
    protocol: &str,
    remote: &str,
    elapsed: Duration,
) {
    let req = req.clone();
    let (status, headers, protocol) = (status.to_owned(), headers.to_vec(), protocol.to_owned());
    let remote = remote.to_owned();
    pyroute::defer(Box::new(move |py| {
        let ns = py.import("types")?.getattr("SimpleNamespace")?;
        let kw = PyDict::new(py);
        kw.set_item("status", &status)?;
        kw.set_item(
            "status_code",
            crate::telemetry::metrics::status_code(&status),
        )?;
        kw.set_item("headers", headers)?;
        kw.set_item("sent", sent)?;
        kw.set_item("response_length", sent)?;
        let resp = ns.call((), Some(&kw))?;
        let kw = PyDict::new(py);
        kw.set_item("method", &req.method)?;
        kw.set_item("uri", &req.uri)?;
        kw.set_item("path", &req.path)?;
        kw.set_item("query", &req.query)?;
        kw.set_item("version", req.version)?;
        kw.set_item("headers", req.headers.clone())?;
        let req_obj = ns.call((), Some(&kw))?;
        let environ = PyDict::new(py);
        environ.set_item("REQUEST_METHOD", &req.method)?;
        environ.set_item("RAW_URI", &req.uri)?;
        environ.set_item("PATH_INFO", &req.path)?;
        environ.set_item("QUERY_STRING", &req.query)?;
        environ.set_item("SERVER_PROTOCOL", &protocol)?;
        environ.set_item("REMOTE_ADDR", &remote)?;
        for (name, value) in &req.headers {
            environ.set_item(format!("HTTP_{}", name.replace('-', "_")), value)?;
        }
        pyroute::access(py, &resp, &req_obj, environ.as_any(), elapsed);
        Ok(())
    }));
}
