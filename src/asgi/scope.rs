//! The ASGI scope of a request: what Gunicorn 27's `-k asgi` puts in it, with the ASGI
//! spec's addresses on unix sockets and the extensions ferrocorn serves.

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};

use crate::http::{CallKind, Peer, Request, ServerAddr};

/// `%XX` decoding to bytes (malformed escapes kept), then UTF-8 with replacement.
pub fn decode_path(path: &str) -> String {
    String::from_utf8_lossy(&ferrocorn_h1::percent_decode(path)).into_owned()
}

/// A header value as the bytes that arrived: the parser keeps octets as latin-1 chars.
pub fn latin1_bytes(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    ferrocorn_h1::push_latin1(&mut out, s);
    out
}

/// What every scope of this worker shares, built once.
pub struct ScopeBase {
    pub root_path: Py<PyAny>,
    /// The lifespan state; each scope gets a shallow copy.
    pub state: Option<Py<PyDict>>,
}

fn addresses<'py>(
    py: Python<'py>,
    req: &Request,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    let server = match &req.server {
        ServerAddr::Tcp(a) => (a.ip().to_string(), a.port()).into_pyobject(py)?.into_any(),
        ServerAddr::Unix(path) => PyList::new(
            py,
            [
                path.as_ref().into_pyobject(py)?.into_any(),
                py.None().into_bound(py),
            ],
        )?
        .into_any(),
    };
    let client = match (&req.proxy, &req.peer) {
        (Some(info), _) if info.client_addr.is_some() => (
            info.client_addr.clone().unwrap_or_default(),
            info.client_port.unwrap_or(0),
        )
            .into_pyobject(py)?
            .into_any(),
        (_, Peer::Ip(a)) => (a.ip().to_string(), a.port()).into_pyobject(py)?.into_any(),
        (_, Peer::Unix) => py.None().into_bound(py),
    };
    Ok((server, client))
}

pub fn build<'py>(
    py: Python<'py>,
    base: &ScopeBase,
    req: &Request,
    kind: &CallKind,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    let asgi = PyDict::new(py);
    asgi.set_item(intern!(py, "version"), intern!(py, "3.0"))?;
    asgi.set_item(intern!(py, "spec_version"), intern!(py, "2.4"))?;
    let version = match req.version {
        (1, 0) => intern!(py, "1.0"),
        _ => intern!(py, "1.1"),
    };
    let ws = matches!(kind, CallKind::WebSocket { .. });
    d.set_item(
        intern!(py, "type"),
        if ws {
            intern!(py, "websocket")
        } else {
            intern!(py, "http")
        },
    )?;
    d.set_item(intern!(py, "asgi"), asgi)?;
    d.set_item(intern!(py, "http_version"), version)?;
    let secure = req.scheme == "https";
    let scheme = match (ws, secure) {
        (false, false) => intern!(py, "http"),
        (false, true) => intern!(py, "https"),
        (true, false) => intern!(py, "ws"),
        (true, true) => intern!(py, "wss"),
    };
    if !ws {
        d.set_item(intern!(py, "method"), &req.method)?;
    }
    d.set_item(intern!(py, "scheme"), scheme)?;
    d.set_item(intern!(py, "path"), decode_path(&req.path))?;
    d.set_item(
        intern!(py, "raw_path"),
        PyBytes::new(py, req.path.as_bytes()),
    )?;
    d.set_item(
        intern!(py, "query_string"),
        PyBytes::new(py, &latin1_bytes(&req.query)),
    )?;
    d.set_item(intern!(py, "root_path"), base.root_path.bind(py))?;
    let headers = PyList::empty(py);
    for (name, value) in &req.headers {
        let n = PyBytes::new(py, name.to_ascii_lowercase().as_bytes());
        let v = PyBytes::new(py, &latin1_bytes(value));
        headers.append(PyTuple::new(py, [n.into_any(), v.into_any()])?)?;
    }
    d.set_item(intern!(py, "headers"), headers)?;
    let (server, client) = addresses(py, req)?;
    d.set_item(intern!(py, "server"), server)?;
    d.set_item(intern!(py, "client"), client)?;
    if let Some(state) = &base.state {
        d.set_item(intern!(py, "state"), state.bind(py).copy()?)?;
    }
    let ext = PyDict::new(py);
    match kind {
        CallKind::Http => ext.set_item(intern!(py, "http.response.pathsend"), PyDict::new(py))?,
        CallKind::WebSocket { subprotocols } => {
            d.set_item(intern!(py, "subprotocols"), PyList::new(py, subprotocols)?)?;
            ext.set_item(intern!(py, "websocket.http.response"), PyDict::new(py))?;
        }
    }
    if let Some(info) = &req.tls {
        ext.set_item(intern!(py, "tls"), tls_extension(py, info)?)?;
    }
    d.set_item(intern!(py, "extensions"), ext)?;
    Ok(d)
}

/// The ASGI TLS extension, made once per connection; each scope gets its own copy.
fn tls_extension<'py>(
    py: Python<'py>,
    info: &crate::tls::ConnInfo,
) -> PyResult<Bound<'py, PyDict>> {
    // A copy for each scope, with its own chain list, so an app changing it changes
    // nothing for the connection's next request.
    let own = |made: &Bound<'py, PyAny>| -> PyResult<Bound<'py, PyDict>> {
        let copy = made.cast::<PyDict>()?.copy()?;
        if let Some(chain) = copy.get_item(intern!(py, "client_cert_chain"))? {
            copy.set_item(
                intern!(py, "client_cert_chain"),
                PyList::new(py, chain.try_iter()?.collect::<PyResult<Vec<_>>>()?)?,
            )?;
        }
        Ok(copy)
    };
    if let Some(made) = info.py_form.get() {
        return own(made.bind(py));
    }
    let chain = PyTuple::new(py, info.peer_chain.iter().map(|c| PyBytes::new(py, c)))?;
    let made = py.import("ferrocorn._tls")?.call_method1(
        "asgi_tls_extension",
        (
            info.server_leaf.as_ref().map(|c| PyBytes::new(py, c)),
            chain,
            info.version_code,
            info.suite_code,
        ),
    )?;
    let copy = own(&made)?;
    let _ = info.py_form.set(made.unbind());
    Ok(copy)
}

#[cfg(test)]
mod tests {
    use super::decode_path;

    #[test]
    fn paths_decode_to_utf8_with_replacement() {
        assert_eq!(decode_path("/a%20b"), "/a b");
        assert_eq!(decode_path("/caf%C3%A9"), "/café");
        assert_eq!(decode_path("/%2F"), "//");
        assert_eq!(decode_path("/%zz%4"), "/%zz%4");
        assert_eq!(decode_path("/%"), "/%");
        assert_eq!(decode_path("/%ff"), "/\u{fffd}");
    }
}
