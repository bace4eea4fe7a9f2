//! Building the WSGI environ exactly as Gunicorn 27's `wsgi.create` does (§10 of the
//! reference): the same keys, the same values, the same order of precedence. A request a
//! uWSGI gateway sent takes the client's and the server's side from the gateway's vars,
//! and PATH_INFO as the gateway decoded it.
//!
//! Per-worker constants (the base environ) are computed once; per request only the request's
//! own keys are added. It never reads from or writes to the socket.

use std::borrow::Cow;

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use super::response::EarlyHints;
use crate::config::{Config, WorkerKind};
use crate::http::{Peer, Request, ServerAddr, SharedExchange};
use ferrocorn_h1::GatewayVars;

/// What every environ of this worker shares.
pub struct BaseEnviron {
    pub server_software: String,
    pub multiprocess: bool,
    pub multithread: bool,
    /// os.environ["SCRIPT_NAME"] at worker start (after raw_env was exported).
    pub script_name: String,
    pub errors: Py<PyAny>,
    pub file_wrapper: Py<PyAny>,
    /// The keys every environ starts with, in Gunicorn's order; each request copies it
    /// (`fill_template` makes it from the fields above).
    pub template: Py<PyDict>,
}

impl BaseEnviron {
    /// The per-worker constant part of every environ.
    pub fn new(py: Python<'_>, cfg: &Config) -> PyResult<BaseEnviron> {
        let objects = py.import("ferrocorn._objects")?;
        let base = BaseEnviron {
            server_software: format!("ferrocorn/{}", crate::VERSION),
            multiprocess: cfg.workers > 1,
            // Gunicorn's gevent worker says True as well: its greenlets interleave calls.
            multithread: matches!(
                cfg.worker_kind(),
                Some(WorkerKind::Gthread | WorkerKind::Gevent)
            ),
            script_name: std::env::var("SCRIPT_NAME").unwrap_or_default(),
            errors: Py::new(py, crate::telemetry::pylogging::ErrorsStream::new())?.into_any(),
            file_wrapper: objects.getattr("FileWrapper")?.unbind(),
            template: PyDict::new(py).unbind(),
        };
        base.fill_template(py)?;
        Ok(base)
    }

    /// Make `template` from the other fields.
    pub fn fill_template(&self, py: Python<'_>) -> PyResult<()> {
        let env = self.template.bind(py);
        env.clear();
        env.set_item(intern!(py, "wsgi.errors"), self.errors.bind(py))?;
        env.set_item(intern!(py, "wsgi.version"), (1, 0))?;
        env.set_item(intern!(py, "wsgi.multithread"), self.multithread)?;
        env.set_item(intern!(py, "wsgi.multiprocess"), self.multiprocess)?;
        env.set_item(intern!(py, "wsgi.run_once"), false)?;
        env.set_item(intern!(py, "wsgi.file_wrapper"), self.file_wrapper.bind(py))?;
        env.set_item(intern!(py, "wsgi.input_terminated"), true)?;
        env.set_item(intern!(py, "SERVER_SOFTWARE"), &self.server_software)?;
        Ok(())
    }
}

/// `%XX` decoding to bytes, then latin-1 to text, as `unquote_to_wsgi_str`. Malformed
/// escapes are kept literally, as Python's `unquote_to_bytes` does. (The parser lets only
/// ASCII into a request target.)
pub fn unquote_latin1(path: &str) -> String {
    ferrocorn_h1::latin1(&ferrocorn_h1::percent_decode(path))
}

fn http_key(name: &str) -> String {
    let mut k = String::with_capacity(5 + name.len());
    k.push_str("HTTP_");
    k.extend(name.chars().map(|c| if c == '-' { '_' } else { c }));
    k
}

/// Why an environ could not be built.
pub enum EnvironError {
    /// The request does not fit the configuration (the reason); Gunicorn answers with a
    /// 500 page.
    Problem(String),
    /// Python failed (out of memory): an app error like any other.
    Python(PyErr),
}

impl From<PyErr> for EnvironError {
    fn from(e: PyErr) -> Self {
        EnvironError::Python(e)
    }
}

/// The environ of one request (`wsgi.create`), with `input` as `wsgi.input`.
pub fn build<'py>(
    py: Python<'py>,
    base: &BaseEnviron,
    req: &Request,
    input: Py<PyAny>,
) -> Result<Bound<'py, PyDict>, EnvironError> {
    // A copy of a prebuilt dict costs less than setting its keys one by one.
    let env = base.template.bind(py).copy()?;
    let set = |k: &Bound<'py, PyString>, v: Bound<'py, PyAny>| env.set_item(k, v);
    let s = |v: &str| PyString::new(py, v).into_any();

    let gw = req.gateway.as_deref();
    if let Some(gw) = gw {
        // The gateway's other vars, as uWSGI passes them (a repeated one: the last). First,
        // so that every key the server sets below wins over a var of the same name; the
        // template's keys (SERVER_SOFTWARE, wsgi.*) are kept.
        let template = base.template.bind(py);
        for (k, v) in &gw.extra {
            if !template.contains(k)? {
                env.set_item(k, v)?;
            }
        }
    }
    set(intern!(py, "wsgi.input"), input.into_bound(py))?;
    set(intern!(py, "REQUEST_METHOD"), s(&req.method))?;
    set(intern!(py, "QUERY_STRING"), s(&req.query))?;
    set(intern!(py, "RAW_URI"), s(&req.uri))?;
    let protocol = match (req.version, gw) {
        ((1, 1), None) => intern!(py, "HTTP/1.1").clone().into_any(),
        ((1, 0), None) => intern!(py, "HTTP/1.0").clone().into_any(),
        _ => s(&req.server_protocol()),
    };
    set(intern!(py, "SERVER_PROTOCOL"), protocol)?;

    let mut host: Option<&str> = None;
    let mut script_name = base.script_name.clone();
    let mut joined: Vec<(String, String)> = Vec::with_capacity(req.headers.len());
    for (name, value) in &req.headers {
        match name.as_str() {
            "HOST" => host = Some(value),
            "SCRIPT_NAME" => script_name = value.clone(),
            "CONTENT-TYPE" => {
                set(intern!(py, "CONTENT_TYPE"), s(value))?;
                continue;
            }
            "CONTENT-LENGTH" => {
                set(intern!(py, "CONTENT_LENGTH"), s(value))?;
                continue;
            }
            _ => {}
        }
        let key = http_key(name);
        // Repeated headers are joined with "," and no space, in arrival order.
        match joined.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => {
                v.push(',');
                v.push_str(value);
            }
            None => joined.push((key, value.clone())),
        }
    }
    for (k, v) in &joined {
        env.set_item(k, v)?;
    }

    set(intern!(py, "wsgi.url_scheme"), s(req.scheme))?;

    // A gateway names the client; its own address is only the proxy's.
    match (gw.and_then(|g| g.remote_addr.as_deref()), &req.peer) {
        (Some(addr), _) => {
            set(intern!(py, "REMOTE_ADDR"), s(addr))?;
            if let Some(port) = gw.and_then(|g| g.remote_port.as_deref()) {
                set(intern!(py, "REMOTE_PORT"), s(port))?;
            }
        }
        (None, Peer::Ip(addr)) => {
            set(intern!(py, "REMOTE_ADDR"), s(&addr.ip().to_string()))?;
            set(intern!(py, "REMOTE_PORT"), s(&addr.port().to_string()))?;
        }
        (None, Peer::Unix) => set(intern!(py, "REMOTE_ADDR"), s(""))?,
    }

    if let Some(info) = &req.proxy {
        // Gunicorn's proxy_environ: None stays None for the addresses, and the ports are
        // str() of the value, so LOCAL/UNSPEC headers give the string "None".
        let opt = |v: &Option<String>| match v {
            Some(a) => s(a),
            None => py.None().into_bound(py),
        };
        let port = |p: Option<u16>| s(&p.map(|p| p.to_string()).unwrap_or_else(|| "None".into()));
        set(intern!(py, "PROXY_PROTOCOL"), s(info.protocol))?;
        set(intern!(py, "REMOTE_ADDR"), opt(&info.client_addr))?;
        set(intern!(py, "REMOTE_PORT"), port(info.client_port))?;
        set(intern!(py, "PROXY_ADDR"), opt(&info.proxy_addr))?;
        set(intern!(py, "PROXY_PORT"), port(info.proxy_port))?;
    }

    let default_port = if req.scheme == "https" { "443" } else { "80" };
    let (name, port): (Cow<'_, str>, Cow<'_, str>) = match (gw, &req.server, host) {
        (Some(gw), _, _) => gateway_server(gw, host, &req.server, default_port),
        (None, ServerAddr::Tcp(addr), _) => {
            (addr.ip().to_string().into(), addr.port().to_string().into())
        }
        // Over a unix socket the Host header names the server.
        (None, ServerAddr::Unix(_), Some(h)) => {
            let (name, port) = h.split_once(':').unwrap_or((h, default_port));
            (name.into(), port.into())
        }
        (None, ServerAddr::Unix(path), None) => ((**path).into(), "".into()),
    };
    set(intern!(py, "SERVER_NAME"), s(&name))?;
    set(intern!(py, "SERVER_PORT"), s(&port))?;

    let (script_name, path_info) = match gw {
        Some(gw) => gateway_path(gw, &req.path, script_name)?,
        None => {
            let path = unquote_latin1(strip_script_name(&req.path, &script_name)?);
            (script_name, path)
        }
    };
    set(intern!(py, "PATH_INFO"), s(&path_info))?;
    set(intern!(py, "SCRIPT_NAME"), s(&script_name))?;
    Ok(env)
}

/// SERVER_NAME and SERVER_PORT of a request from a uWSGI gateway: its vars, else the Host
/// the client sent (nginx sends SERVER_NAME empty without a `server_name`, and PEP 3333
/// wants neither empty), else the listener, whose address is only the proxy's side.
fn gateway_server<'a>(
    gw: &'a GatewayVars,
    host: Option<&'a str>,
    listener: &'a ServerAddr,
    default_port: &'static str,
) -> (Cow<'a, str>, Cow<'a, str>) {
    let (host_name, host_port) = match host.map(split_host) {
        Some((name, port)) => (Some(name), port),
        None => (None, None),
    };
    let (listen_name, listen_port): (Cow<'a, str>, Cow<'a, str>) = match listener {
        ServerAddr::Tcp(addr) => (addr.ip().to_string().into(), addr.port().to_string().into()),
        ServerAddr::Unix(path) => ((**path).into(), "".into()),
    };
    let named = gw.server_name.as_deref().or(host_name);
    let port = gw.server_port.as_deref().or(host_port);
    match (named, port) {
        (Some(name), Some(port)) => (name.into(), port.into()),
        (Some(name), None) => (name.into(), default_port.into()),
        (None, Some(port)) => (listen_name, port.into()),
        (None, None) => (listen_name, listen_port),
    }
}

/// `host[:port]`, `[v6]:port` or a bare name or address.
fn split_host(host: &str) -> (&str, Option<&str>) {
    match host.rsplit_once(':') {
        Some((name, port))
            if !port.is_empty()
                && port.bytes().all(|b| b.is_ascii_digit())
                && (!name.contains(':') || name.ends_with(']')) =>
        {
            (name, Some(port))
        }
        _ => (host, None),
    }
}

/// SCRIPT_NAME and PATH_INFO of a request from a uWSGI gateway, whose PATH_INFO is already
/// decoded (decoding it again would turn `%25` into `%` twice). A SCRIPT_NAME var is the
/// mount point the gateway states: taken off the front of PATH_INFO when it is there
/// (nginx sends the whole path), otherwise PATH_INFO is already the rest (CGI's split).
/// Without one, the server's own SCRIPT_NAME applies as it does over HTTP.
fn gateway_path(
    gw: &GatewayVars,
    path: &str,
    configured: String,
) -> Result<(String, String), EnvironError> {
    match &gw.script_name {
        Some(mount) => {
            let rest = path
                .strip_prefix(mount.as_str())
                .filter(|rest| rest.is_empty() || rest.starts_with('/'))
                .unwrap_or(path);
            Ok((mount.clone(), rest.to_string()))
        }
        None => {
            let rest = strip_script_name(path, &configured)?.to_string();
            Ok((configured, rest))
        }
    }
}

/// `path` without the leading `script_name` the server was configured with; a path outside
/// it is a configuration problem (Gunicorn's 500 page).
fn strip_script_name<'p>(path: &'p str, script_name: &str) -> Result<&'p str, EnvironError> {
    if script_name.is_empty() {
        return Ok(path);
    }
    path.strip_prefix(script_name).ok_or_else(|| {
        EnvironError::Problem(format!(
            "Configuration problem: Request path {} does not start with SCRIPT_NAME {}",
            ferrocorn_h1::repr_str(path),
            ferrocorn_h1::repr_str(script_name)
        ))
    })
}

/// `wsgi.early_hints`, after the connection's keys (Gunicorn's order).
pub fn add_early_hints(
    py: Python<'_>,
    env: &Bound<'_, PyDict>,
    exchange: &SharedExchange,
) -> PyResult<()> {
    let hints = Py::new(py, EarlyHints::new(exchange.clone()))?;
    env.set_item(intern!(py, "wsgi.early_hints"), hints)
}

#[cfg(test)]
mod tests {
    use super::{split_host, unquote_latin1};

    #[test]
    fn host_and_port() {
        assert_eq!(split_host("a.example"), ("a.example", None));
        assert_eq!(split_host("a.example:8443"), ("a.example", Some("8443")));
        assert_eq!(split_host("[::1]:8080"), ("[::1]", Some("8080")));
        assert_eq!(split_host("::1"), ("::1", None));
        assert_eq!(split_host("a.example:"), ("a.example:", None));
    }

    #[test]
    fn unquote_decodes_to_latin1_and_keeps_bad_escapes() {
        assert_eq!(unquote_latin1("/a%20b"), "/a b");
        assert_eq!(unquote_latin1("/%2F"), "//");
        assert_eq!(unquote_latin1("/caf%C3%A9"), "/caf\u{c3}\u{a9}");
        assert_eq!(unquote_latin1("/%zz%4"), "/%zz%4");
        assert_eq!(unquote_latin1("/%"), "/%");
    }
}
