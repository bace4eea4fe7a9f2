//! Serving one request through the WSGI app, whatever the worker and protocol: hooks,
//! environ, the app call, error pages, the access log, and what becomes of the connection.
//! The worker hands in an `http::Exchange` (the request's body and response) and gets back
//! an `http::After`; it owns the connection before and after, never during.

mod app_socket;
mod errors;
mod in_flight;

use std::time::{Duration, Instant};

use pyo3::prelude::*;
use pyo3::types::PyDict;

pub use app_socket::close_app_socket;
pub use errors::log_request_panic;
pub use in_flight::{enter_call, in_flight, leave_call};

use super::state::RequestScope;
use crate::hooks::{self, objects};
use crate::http::{self, After, Request, SharedExchange};
use crate::telemetry::{access, error_log, metrics, pyroute};
use crate::wsgi::app::system_exit_code;
use crate::wsgi::environ::{self, EnvironError};
use crate::wsgi::input::Input;

/// Serve one request (Gunicorn's `handle_request`). `close`: the worker wants the
/// connection closed after it (sync worker, keep-alive off or full, stopping).
/// `app_socket`: the connection's `gunicorn.socket` object, kept between its requests;
/// left there only when the connection goes on. An `Err` is a SystemExit from the app or a
/// hook, or a failing `req` object: the worker exits with it.
pub fn handle_request(
    py: Python<'_>,
    st: &RequestScope,
    exchange: &SharedExchange,
    req: Request,
    app_socket: &mut Option<Py<PyAny>>,
    close: bool,
) -> PyResult<After> {
    let input = Py::new(py, Input::new(exchange.clone()))?.into_any();
    // A Python logger's `access(resp, req, environ, request_time)` needs the req object too.
    let py_logger = pyroute::active();
    let req_obj = if st.pre_request.is_some() || st.post_request.is_some() || py_logger {
        Some(objects::request_object(
            py,
            &st.serving,
            &req,
            input.clone_ref(py),
        )?)
    } else {
        None
    };
    // A failing pre_request hook is answered as an app exception is (Gunicorn's handle()
    // catches both): a 500, its traceback, the access line; a SystemExit stops the worker.
    let hook_error = match (&st.pre_request, &req_obj) {
        (Some(hook), Some(obj)) => {
            match hooks::call_hook(py, Some(hook), (st.worker.clone_ref(py), obj.clone_ref(py))) {
                Ok(()) => None,
                Err(e) if system_exit_code(py, &e).is_some() => return Err(e),
                Err(e) => Some(e),
            }
        }
        _ => {
            error_log::debug(&format!("{} {}", req.method, req.path));
            None
        }
    };
    // A pre_request hook may have called req.force_close().
    let forced = match &req_obj {
        Some(obj) => obj.getattr(py, "must_close")?.is_truthy(py)?,
        None => false,
    };
    if close || forced || req.close_requested || !st.alive() {
        http::lock(py, exchange).close_after();
    }
    let started = Instant::now();
    let in_flight_metric = st.track_in_flight.then(|| {
        in_flight::enter(&req.method, &req.uri, started);
        metrics::InFlight::enter()
    });
    // Gunicorn counts a request once its pre_request hook has passed.
    let hook_failed = hook_error.is_some();
    if !hook_failed {
        st.counter.count(py);
    }

    let (environ, sock, error) = match hook_error {
        Some(e) => (None, app_socket.take(), Some(e)),
        None => call_app(py, st, exchange, &req, input, app_socket.take()),
    };
    let exit_request = error.as_ref().and_then(|e| system_exit_code(py, e));
    if let Some(err) = &error {
        errors::handle_error(py, exchange, &req, err);
    }

    let elapsed = started.elapsed();
    match &req_obj {
        Some(obj) if py_logger => {
            let environ = environ.as_ref().filter(|_| error.is_none());
            py_access(py, obj, environ, exchange, elapsed)
        }
        _ if access::enabled() => log_access(py, &req, environ.as_ref(), exchange, elapsed),
        _ => {}
    }
    let code = http::lock(py, exchange)
        .response()
        .status
        .as_deref()
        .map_or(0, metrics::status_code);
    metrics::request_done(&req.method, code, elapsed);
    drop(in_flight_metric);
    if let (Some(hook), Some(obj)) = (&st.post_request, &req_obj) {
        post_request(py, st, hook, obj, environ.as_ref(), exchange, hook_failed);
    }
    let after = http::lock(py, exchange).conclude(py, exit_request.is_none());
    if let Some(sock) = sock {
        match after {
            After::KeepAlive(_) => *app_socket = Some(sock),
            _ => close_app_socket(py, sock),
        }
    }
    if st.track_in_flight {
        in_flight::leave();
    }
    match (exit_request, error) {
        (Some(_), Some(err)) => Err(err),
        _ => Ok(after),
    }
}

/// Build the environ and run the app: the environ (None when it could not be built), the
/// connection's `gunicorn.socket` object, and the app's exception.
fn call_app<'py>(
    py: Python<'py>,
    st: &RequestScope,
    exchange: &SharedExchange,
    req: &Request,
    input: Py<PyAny>,
    kept_socket: Option<Py<PyAny>>,
) -> (Option<Bound<'py, PyDict>>, Option<Py<PyAny>>, Option<PyErr>) {
    let env = match environ::build(py, &st.base, req, input) {
        Ok(env) => env,
        Err(EnvironError::Problem(problem)) => {
            // Gunicorn reports its ConfigurationProblem as an invalid request.
            error_log::warning(&format!(
                "Invalid request from ip={}: {problem}",
                req.peer.ip_string()
            ));
            http::lock(py, exchange).send_error_page(py, http::ErrorPage::BadEnviron(&problem));
            return (None, kept_socket, None);
        }
        Err(EnvironError::Python(e)) => return (None, kept_socket, Some(e)),
    };
    let dup = || {
        let mut ex = http::lock(py, exchange);
        ex.dup_socket().map(|fd| fd.map(|fd| (fd, ex.tls_info())))
    };
    let sock =
        app_socket::add_app_socket(py, &env, &st.socket_class, dup, &req.server, kept_socket);
    let sock = match sock {
        Ok(sock) => sock,
        Err(e) => return (Some(env), None, Some(e)),
    };
    if let Err(e) = environ::add_early_hints(py, &env, exchange) {
        return (Some(env), sock, Some(e));
    }
    // Under TLS a file still goes out without Python: read and encrypted in Rust.
    let wrapper = st.sendfile.then_some(&st.base.file_wrapper);
    let error = crate::wsgi::call::run_app(py, &st.app, &env, exchange, wrapper);
    (Some(env), sock, error)
}

fn post_request(
    py: Python<'_>,
    st: &RequestScope,
    hook: &Py<PyAny>,
    req_obj: &Py<PyAny>,
    environ: Option<&Bound<'_, PyDict>>,
    exchange: &SharedExchange,
    pre_request_failed: bool,
) {
    // After a failing pre_request hook, Gunicorn's post_request gets the empty environ and
    // no response object, what it started with.
    let (env_obj, resp_obj) = if pre_request_failed {
        (PyDict::new(py).into_any().unbind(), py.None())
    } else {
        (
            environ
                .map(|e| e.clone().into_any().unbind())
                .unwrap_or_else(|| py.None()),
            response_object(py, exchange, req_obj).unwrap_or_else(|_| py.None()),
        )
    };
    let args = (
        st.worker.clone_ref(py),
        req_obj.clone_ref(py),
        env_obj,
        resp_obj,
    );
    if let Err(e) = hooks::call_hook(py, Some(hook), args) {
        hooks::log_hook_error(py, "post_request", &e);
    }
}

/// Gunicorn's `resp` object for the hooks and a Python logger, as the exchange stands now.
fn response_object(
    py: Python<'_>,
    exchange: &SharedExchange,
    req_obj: &Py<PyAny>,
) -> PyResult<Py<PyAny>> {
    // Copied out: building the Python object runs Python, which must not find the exchange
    // locked.
    let (info, headers_sent, must_close) = {
        let ex = http::lock(py, exchange);
        (ex.response().clone(), ex.headers_sent(), ex.close_forced())
    };
    let facts = objects::ResponseFacts {
        info: &info,
        headers_sent,
        must_close,
    };
    objects::response_object(py, facts, req_obj)
}

/// The access call of a Python logger, with the objects Gunicorn's workers pass it.
fn py_access(
    py: Python<'_>,
    req_obj: &Py<PyAny>,
    environ: Option<&Bound<'_, PyDict>>,
    exchange: &SharedExchange,
    elapsed: Duration,
) {
    let Ok(resp) = response_object(py, exchange, req_obj) else {
        return;
    };
    let environ = match environ {
        Some(env) => env.clone().into_any(),
        None => error_environ(py, req_obj).into_any(),
    };
    pyroute::access(py, resp.bind(py), req_obj.bind(py), &environ, elapsed);
}

/// The environ Gunicorn's `handle_error` logs an error page with (`default_environ`): the
/// request line's parts only, so `%(U)s` prints None and headers print `-`.
fn error_environ<'py>(py: Python<'py>, req_obj: &Py<PyAny>) -> Bound<'py, PyDict> {
    let env = PyDict::new(py);
    let req = req_obj.bind(py);
    let fill = || -> PyResult<()> {
        env.set_item("REQUEST_METHOD", req.getattr("method")?)?;
        env.set_item("QUERY_STRING", req.getattr("query")?)?;
        env.set_item("RAW_URI", req.getattr("uri")?)?;
        let (major, minor): (u8, u8) = req.getattr("version")?.extract()?;
        env.set_item("SERVER_PROTOCOL", format!("HTTP/{major}.{minor}"))?;
        if let Ok((host, port)) = req.getattr("peer_addr")?.extract::<(String, u16)>() {
            env.set_item("REMOTE_ADDR", host)?;
            env.set_item("REMOTE_PORT", port.to_string())?;
        }
        Ok(())
    };
    let _ = fill();
    env
}

fn log_access(
    py: Python<'_>,
    req: &Request,
    environ: Option<&Bound<'_, PyDict>>,
    exchange: &SharedExchange,
    elapsed: Duration,
) {
    // Copied out: the environ lookups below run Python (`str()`), which must not find the
    // exchange locked.
    let r = http::lock(py, exchange).response().clone();
    let protocol = req.server_protocol();
    let env_get = |key: &str| -> Option<String> {
        let env = environ?;
        let v = env.get_item(key).ok()??;
        Some(v.str().ok()?.to_string())
    };
    let path_info: Option<String> = environ.and_then(|_| env_get("PATH_INFO"));
    // `h` is environ['REMOTE_ADDR'] as Gunicorn logs it: the PROXY client when there is one,
    // the client a uWSGI gateway names.
    let remote = env_get("REMOTE_ADDR").unwrap_or_else(|| req.remote_addr());
    let status = r.status.clone().unwrap_or_default();
    let record = access::AccessRecord {
        remote_addr: &remote,
        method: &req.method,
        raw_uri: &req.uri,
        protocol: &protocol,
        status: &status,
        path_info: path_info.as_deref(),
        query: &req.query,
        sent: Some(r.sent),
        request_headers: &req.headers,
        response_headers: &r.headers,
        request_time: elapsed,
        environ: &env_get,
    };
    access::log(&record);
}
