//! What every app call of a worker shares: the app, the loop, the scope template, the
//! hooks; and the `post_request` call, which `send.finish` makes.

use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::scope::ScopeBase;
use crate::config::Serving;
use crate::hooks::{self, objects};
use crate::http::ResponseInfo;

/// What every call of this worker shares.
pub struct Bridge {
    /// The app as an ASGI 3 callable (`ferrocorn._asgi.asgi3` wraps an ASGI 2 class).
    pub app: Py<PyAny>,
    pub event_loop: Py<PyAny>,
    /// `ferrocorn._asgi.run_call`: runs the app and reports its end to `send.finish`.
    pub run_call: Py<PyAny>,
    pub create_task: Py<PyAny>,
    pub scope: ScopeBase,
    /// What `send()` raises once a WebSocket is closed (an OSError, as ASGI 2.4 asks).
    pub disconnected_exc: Py<PyAny>,
    pub worker: Py<PyAny>,
    pub serving: Serving,
    pub pre_request: Option<Py<PyAny>>,
    pub post_request: Option<Py<PyAny>>,
    /// Counts a request towards `max_requests`.
    pub on_request: Box<dyn Fn(Python<'_>) + Send + Sync>,
}

impl Bridge {
    pub fn post_request(
        &self,
        py: Python<'_>,
        req: &Py<PyAny>,
        request: &crate::http::Request,
        status: u16,
        headers: &[(String, String)],
        sent: u64,
    ) {
        let Some(hook) = &self.post_request else {
            return;
        };
        let info = ResponseInfo {
            status: Some(format!("{status}")),
            status_code: status,
            headers: headers.to_vec(),
            response_length: None,
            sent,
            chunked: false,
        };
        let result = objects::response_object(
            py,
            objects::ResponseFacts {
                info: &info,
                headers_sent: status != 0,
                must_close: false,
            },
            req,
        )
        .and_then(|resp| {
            // The ASGI worker's `resp.status` is the app's int status.
            resp.setattr(py, "status", status)?;
            let environ = hook_environ(py, request)?;
            hook.call1(
                py,
                (self.worker.clone_ref(py), req.clone_ref(py), environ, resp),
            )
        });
        if let Err(e) = result {
            hooks::log_hook_error(py, "post_request", &e);
        }
    }
}

/// The minimal environ Gunicorn's ASGI worker gives `post_request` (always here; Gunicorn
/// gives None unless the access log is on).
fn hook_environ<'py>(py: Python<'py>, req: &crate::http::Request) -> PyResult<Bound<'py, PyDict>> {
    let env = PyDict::new(py);
    env.set_item("REQUEST_METHOD", &req.method)?;
    env.set_item("RAW_URI", &req.uri)?;
    env.set_item("PATH_INFO", &req.path)?;
    env.set_item("QUERY_STRING", &req.query)?;
    env.set_item(
        "SERVER_PROTOCOL",
        format!("HTTP/{}.{}", req.version.0, req.version.1),
    )?;
    let remote = match &req.peer {
        crate::http::Peer::Ip(a) => a.ip().to_string(),
        crate::http::Peer::Unix => "-".to_string(),
    };
    env.set_item("REMOTE_ADDR", remote)?;
    for (name, value) in &req.headers {
        env.set_item(format!("HTTP_{}", name.replace('-', "_")), value)?;
    }
    Ok(env)
}
