//! `gunicorn.socket`: a Python socket object over a duplicate of the client connection's
//! socket (so the app closing it cannot close ours), made once per connection where the
//! worker keeps connections alive, and closed without letting go of the GIL.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyTuple};

use crate::http::ServerAddr;
use crate::tls::ConnInfo;

/// Tell a `ferrocorn._tls.TLSAppSocket` what Python's SSLSocket would know: the client's
/// chain, the cipher, the version and the ALPN protocol.
fn set_tls(sock: &Bound<'_, PyAny>, info: &ConnInfo) -> PyResult<()> {
    let py = sock.py();
    let chain = PyTuple::new(py, info.peer_chain.iter().map(|c| PyBytes::new(py, c)))?;
    let cipher = (info.cipher_name, info.version_name, info.cipher_bits);
    sock.call_method1(
        "_ferrocorn_set_tls",
        (
            chain,
            cipher,
            info.version_name,
            info.alpn.as_deref(),
            info.verify_mode,
        ),
    )?;
    Ok(())
}

/// Put `gunicorn.socket` into the environ: `kept` (an earlier request's object on this
/// connection) unless the app closed or detached it, else a new one over `dup()`. None
/// when the exchange has no socket to give.
pub(super) fn add_app_socket(
    py: Python<'_>,
    env: &Bound<'_, PyDict>,
    socket_class: &Py<PyAny>,
    dup: impl FnOnce() -> Option<std::io::Result<(std::os::fd::OwnedFd, Option<Arc<ConnInfo>>)>>,
    server: &ServerAddr,
    kept: Option<Py<PyAny>>,
) -> PyResult<Option<Py<PyAny>>> {
    let sock = match kept {
        Some(s) if s.call_method0(py, "fileno")?.extract::<i64>(py)? >= 0 => s.into_bound(py),
        _ => match dup() {
            Some(fd) => {
                let (fd, tls) =
                    fd.map_err(|e| pyo3::exceptions::PyOSError::new_err(e.to_string()))?;
                let sock = new_app_socket(py, socket_class, server, fd)?;
                if let Some(info) = tls {
                    set_tls(&sock, &info)?;
                }
                sock
            }
            None => return Ok(None),
        },
    };
    env.set_item(pyo3::intern!(py, "gunicorn.socket"), &sock)?;
    Ok(Some(sock.unbind()))
}

fn new_app_socket<'py>(
    py: Python<'py>,
    socket_class: &Py<PyAny>,
    server: &ServerAddr,
    fd: std::os::fd::OwnedFd,
) -> PyResult<Bound<'py, PyAny>> {
    use std::os::fd::IntoRawFd;
    // Family, type and protocol given (as Python's own accept() does) spare the socket
    // object probing syscalls.
    let family = match server {
        ServerAddr::Tcp(std::net::SocketAddr::V4(_)) => libc::AF_INET,
        ServerAddr::Tcp(std::net::SocketAddr::V6(_)) => libc::AF_INET6,
        ServerAddr::Unix(_) => libc::AF_UNIX,
    };
    let kwargs = PyDict::new(py);
    kwargs.set_item("family", family)?;
    kwargs.set_item("type", libc::SOCK_STREAM)?;
    kwargs.set_item("proto", 0)?;
    // The socket object owns the descriptor from here on.
    kwargs.set_item("fileno", fd.into_raw_fd())?;
    socket_class.bind(py).call((), Some(&kwargs))
}

/// Close a `gunicorn.socket` object with detach() and close(2) rather than socket.close(),
/// which lets go of the GIL around close(2): a release per request would hand the GIL to a
/// waiting thread.
pub fn close_app_socket(py: Python<'_>, sock: Py<PyAny>) {
    // Dropping the descriptor closes it.
    let _ = crate::sys::fd::detach_socket(sock.bind(py));
}
