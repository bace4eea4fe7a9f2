//! `gunicorn.socket` and the other environ keys tied to the connection: a Python socket
//! object over a duplicate of the client descriptor (so the app closing it cannot close
//! ours), made once per connection where the worker keeps connections alive, and closed
//! without letting go of the GIL. Touches the descriptor only to duplicate it.

use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::request::Conn;
use crate::wsgi::environ::BaseEnviron;
use crate::wsgi::response::{EarlyHints, Shared};

/// The environ keys tied to this connection: `gunicorn.socket` (a Python socket over a
/// duplicate of the descriptor, so the app closing it cannot close ours; reused from an
/// earlier request on the connection unless the app closed or detached it) and
/// `wsgi.early_hints`.
pub fn add_connection_keys(
    py: Python<'_>,
    env: &Bound<'_, PyDict>,
    base: &BaseEnviron,
    conn: &Conn<'_>,
    resp: &Shared,
) -> PyResult<Py<PyAny>> {
    let kept = conn.app_socket.borrow_mut().take();
    let sock = match kept {
        Some(s) if s.call_method0(py, "fileno")?.extract::<i64>(py)? >= 0 => s.into_bound(py),
        _ => new_app_socket(py, base, conn)?,
    };
    env.set_item(pyo3::intern!(py, "gunicorn.socket"), &sock)?;
    let hints = Py::new(
        py,
        EarlyHints {
            state: resp.clone(),
        },
    )?;
    env.set_item(pyo3::intern!(py, "wsgi.early_hints"), hints)?;
    Ok(sock.unbind())
}

fn new_app_socket<'py>(
    py: Python<'py>,
    base: &BaseEnviron,
    conn: &Conn<'_>,
) -> PyResult<Bound<'py, PyAny>> {
    use std::os::fd::{AsRawFd, IntoRawFd};
    let fd = nix::unistd::dup(crate::sys::process::borrow_fd(conn.stream.as_raw_fd()))
        .map_err(|e| pyo3::exceptions::PyOSError::new_err(e.to_string()))?;
    // Family, type and protocol given (as Python's own accept() does) spare the socket
    // object probing syscalls.
    let family = match conn.listener.local_tcp() {
        Some(std::net::SocketAddr::V4(_)) => libc::AF_INET,
        Some(std::net::SocketAddr::V6(_)) => libc::AF_INET6,
        None => libc::AF_UNIX,
    };
    let kwargs = PyDict::new(py);
    kwargs.set_item("family", family)?;
    kwargs.set_item("type", libc::SOCK_STREAM)?;
    kwargs.set_item("proto", 0)?;
    kwargs.set_item("fileno", fd.into_raw_fd())?;
    base.socket_class.bind(py).call((), Some(&kwargs))
}

/// Close a `gunicorn.socket` object with detach() and close(2) rather than socket.close(),
/// which lets go of the GIL around close(2): a release per request would hand the GIL to a
/// waiting thread.
pub fn close_app_socket(py: Python<'_>, sock: Py<PyAny>) {
    if let Ok(fd) = sock
        .call_method0(py, "detach")
        .and_then(|f| f.extract::<i32>(py))
    {
        if fd >= 0 {
            // SAFETY: detach() gave us sole ownership of this descriptor (the duplicate
            // made for the socket object), and nothing else refers to it.
            drop(unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) });
        }
    }
}
