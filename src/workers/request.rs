//! Serving one parsed request through the WSGI app: hooks, environ, app call, response
//! iteration, error pages, access log. Shared by every worker type; it owns no socket
//! lifecycle (the caller accepts and closes).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use ferrocorn_h1::{ParseError, ParserConfig, RequestHead};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};

use super::app_socket;
use super::base::WorkerState;
use super::hook_objects;
use crate::net::{Listener, Peer, Stream};
use crate::telemetry::{access, error_log};
use crate::wsgi::app::{format_traceback, system_exit_code};
use crate::wsgi::environ::{self, BaseEnviron, Local};
use crate::wsgi::input::{BodyReader, Input};
use crate::wsgi::response::{lock, ResponseState, Shared, StartResponse};

type InFlight = (std::thread::ThreadId, String, String, Instant);

/// The requests this worker is serving (one per serving thread), for the log line of a
/// WORKER TIMEOUT abort.
static IN_FLIGHT: std::sync::Mutex<Vec<InFlight>> = std::sync::Mutex::new(Vec::new());

/// "GET /path (running 2.0s)" for each request in flight, oldest first; None when idle.
pub fn in_flight() -> Option<String> {
    let guard = IN_FLIGHT.lock().unwrap_or_else(|p| p.into_inner());
    let all: Vec<String> = guard
        .iter()
        .map(|(_, method, uri, start)| {
            format!(
                "{method} {uri} (running {:.1}s)",
                start.elapsed().as_secs_f64()
            )
        })
        .collect();
    (!all.is_empty()).then(|| all.join(", "))
}

fn set_in_flight(value: Option<(String, String, Instant)>) {
    let me = std::thread::current().id();
    let mut guard = IN_FLIGHT.lock().unwrap_or_else(|p| p.into_inner());
    guard.retain(|(t, ..)| *t != me);
    if let Some((method, uri, start)) = value {
        guard.push((me, method, uri, start));
    }
}

/// Log a panic caught on the request path: it cost the connection, never the worker.
pub fn log_request_panic(panic: Box<dyn std::any::Any + Send>) {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    error_log::error(&format!(
        "Internal error while handling a request (connection closed): {what}"
    ));
}

pub struct Conn<'a> {
    pub stream: Arc<Stream>,
    pub peer: Peer,
    pub listener: &'a Listener,
    /// What a PROXY protocol header at the start of the connection said.
    pub proxy: Option<ferrocorn_h1::ProxyInfo>,
    /// `gunicorn.socket`: in, the object an earlier request on this connection used (so a
    /// kept-alive connection makes one, as Gunicorn's gthread worker does, instead of a
    /// dup, getsockname and close per request); out, the object to use next time, left
    /// here only when the connection stays open and the caller keeps it.
    pub app_socket: std::cell::RefCell<Option<Py<PyAny>>>,
    /// The caller sends a response held in memory itself (`Served::unsent`).
    pub defer_writes: bool,
}

/// How a request ended, for the caller.
pub struct Served {
    /// The bytes received past the request (a pipelined next one) when the connection may
    /// carry another request; None when it must close.
    pub keep: Option<Vec<u8>>,
    /// Response bytes the caller must still send, before anything else on the connection
    /// (only with `Conn::defer_writes`).
    pub unsent: Vec<u8>,
}

/// Answer a request that could not be parsed with Gunicorn's status line and page.
pub fn send_parse_error(
    py: Python<'_>,
    stream: &Stream,
    peer: &Peer,
    err: &ParseError,
    _uri: Option<&str>,
) {
    if matches!(err, ParseError::NoMoreData(_)) {
        error_log::debug("Ignored premature client disconnection.");
        return;
    }
    if err.is_client_error() {
        error_log::warning(&format!(
            "Invalid request from ip={}: {}",
            peer.ip_string(),
            err.message()
        ));
    } else {
        error_log::error(&format!(
            "Error handling request (no URI read): {}",
            err.message()
        ));
    }
    write_all(py, stream, &err.error_response());
}

fn write_all(py: Python<'_>, stream: &Stream, bytes: &[u8]) {
    use std::io::Write;
    if py.detach(|| (&*stream).write_all(bytes)).is_err() {
        error_log::debug("Failed to send error message.");
    }
}

/// The per-worker constant part of every environ.
pub fn base_environ(
    py: Python<'_>,
    cfg: &crate::config::Config,
    multithread: bool,
) -> PyResult<BaseEnviron> {
    let objects = py.import("ferrocorn._objects")?;
    let base = BaseEnviron {
        server_software: format!("ferrocorn/{}", crate::VERSION),
        multiprocess: cfg.workers > 1,
        multithread,
        script_name: std::env::var("SCRIPT_NAME").unwrap_or_default(),
        errors: Py::new(py, crate::telemetry::pylogging::ErrorsStream::new())?.into_any(),
        file_wrapper: objects.getattr("FileWrapper")?.unbind(),
        socket_class: py.import("socket")?.getattr("socket")?.unbind(),
        template: PyDict::new(py).unbind(),
    };
    base.fill_template(py)?;
    Ok(base)
}

struct Outcome {
    error: Option<PyErr>,
}

/// The file behind a `wsgi.file_wrapper` result, when it can go out with sendfile(2):
/// its descriptor, the current offset, and how many bytes are left in it.
fn sendfile_source(result: &Bound<'_, PyAny>) -> Option<(i32, i64, u64)> {
    let fd: i32 = result
        .getattr("filelike")
        .ok()?
        .call_method0("fileno")
        .ok()?
        .extract()
        .ok()?;
    let borrowed = crate::sys::process::borrow_fd(fd);
    let offset = nix::unistd::lseek(borrowed, 0, nix::unistd::Whence::SeekCur).ok()?;
    let size = nix::sys::stat::fstat(borrowed).ok()?.st_size;
    Some((fd, offset, (size - offset).max(0) as u64))
}

/// Send a file-wrapper result with sendfile(2). Returns false when the result is not a
/// real file, so the caller iterates it instead (BytesIO, sockets, anything without fileno).
fn try_sendfile(
    py: Python<'_>,
    result: &Bound<'_, PyAny>,
    wrapper: Option<&Py<PyAny>>,
    resp: &Shared,
) -> PyResult<bool> {
    let Some(wrapper) = wrapper else {
        return Ok(false);
    };
    if !result.is_instance(wrapper.bind(py))? {
        return Ok(false);
    }
    let Some((fd, offset, count)) = sendfile_source(result) else {
        return Ok(false);
    };
    let file = crate::sys::process::borrow_fd(fd);
    let sent = lock(resp).sendfile(py, file, offset, count);
    // Leave the file where the app left it, as Gunicorn does.
    let _ = nix::unistd::lseek(file, offset, nix::unistd::Whence::SeekSet);
    if let Err(e) = sent {
        error_log::debug(&format!("Ignoring connection error while writing: {e}"));
        lock(resp).must_close = true;
    }
    Ok(true)
}

/// Call the app and stream its result; `close()` on the result runs on every path.
fn run_app(
    py: Python<'_>,
    app: &Py<PyAny>,
    environ: &Bound<'_, PyDict>,
    resp: &Shared,
    sendfile_wrapper: Option<&Py<PyAny>>,
    defer: bool,
) -> Outcome {
    let sr = match Py::new(
        py,
        StartResponse {
            state: resp.clone(),
        },
    ) {
        Ok(sr) => sr,
        Err(e) => return Outcome { error: Some(e) },
    };
    let result = match app.bind(py).call1((environ, sr)) {
        Ok(r) => r,
        Err(e) => return Outcome { error: Some(e) },
    };
    // A list or tuple is the whole body, in memory: nothing is gained by writing it before
    // the app is done, and the caller may send it on another thread. Anything else may
    // stream (a generator pausing between chunks), so it goes out as it comes.
    if defer
        && (result.is_exact_instance_of::<PyList>() || result.is_exact_instance_of::<PyTuple>())
    {
        lock(resp).defer();
    }
    let mut error = None;
    let iterate = || -> PyResult<()> {
        let items = if try_sendfile(py, &result, sendfile_wrapper, resp)? {
            None
        } else {
            Some(result.try_iter()?)
        };
        for item in items.into_iter().flatten() {
            let item = item?;
            let bytes = item.cast::<PyBytes>().map_err(|_| {
                pyo3::exceptions::PyTypeError::new_err(format!("{item:?} is not a byte"))
            })?;
            // Bind the result first: a guard in the `if let` scrutinee would live through
            // the body, and the body locks again.
            let written = lock(resp).write(py, bytes.as_bytes());
            if let Err(e) = written {
                // The client went away: stop producing, but still close the result below.
                error_log::debug(&format!("Ignoring connection error while writing: {e}"));
                lock(resp).must_close = true;
                return Ok(());
            }
        }
        let mut r = lock(resp);
        if r.status.is_none() {
            return Err(pyo3::exceptions::PyAssertionError::new_err(
                "The application did not call start_response()",
            ));
        }
        if let Err(e) = r.finish(py) {
            error_log::debug(&format!("Ignoring connection error while writing: {e}"));
            r.must_close = true;
        }
        Ok(())
    };
    if let Err(e) = iterate() {
        error = Some(e);
    }
    if let Ok(close) = result.getattr("close") {
        if let Err(e) = close.call0() {
            error_log::error(&format!(
                "Error while closing the response\n{}",
                format_traceback(py, &e)
            ));
        }
    }
    Outcome { error }
}

/// How much unread request body is discarded to keep a connection alive; a longer one
/// closes the connection instead.
const DRAIN_LIMIT: usize = 1 << 20;

/// Serve one request.
pub fn handle_request(
    py: Python<'_>,
    st: &WorkerState<'_>,
    pcfg: &ParserConfig,
    conn: &Conn<'_>,
    head: RequestHead,
    leftover: Vec<u8>,
    force_close: bool,
) -> PyResult<Served> {
    let cfg = st.ctx.cfg;
    // One slot per worker: with several threads the loop's beat is what counts.
    if !st.threaded {
        st.ctx.beat.request_started();
    }
    let reader = Arc::new(Mutex::new(BodyReader::new(
        conn.stream.clone(),
        leftover,
        &head.body,
        pcfg,
        head.expect_continue,
    )));
    let input = Py::new(
        py,
        Input {
            reader: reader.clone(),
        },
    )?
    .into_any();
    let wants_req_obj = cfg.pre_request.is_some() || cfg.post_request.is_some();
    let req_obj = if wants_req_obj {
        Some(hook_objects::request_object(
            py,
            cfg,
            &head,
            conn,
            input.clone_ref(py),
            hook_objects::request_number_on(&conn.stream),
        )?)
    } else {
        None
    };
    match (&cfg.pre_request, &req_obj) {
        (Some(hook), Some(req)) => {
            hook.call1(py, (st.ctx.worker.clone_ref(py), req.clone_ref(py)))?;
        }
        _ => error_log::debug(&format!("{} {}", head.method, head.path)),
    }
    // A pre_request hook may have called req.force_close().
    let force_close = force_close
        || match &req_obj {
            Some(req) => req.getattr(py, "must_close")?.is_truthy(py)?,
            None => false,
        };
    let started = Instant::now();
    set_in_flight(Some((head.method.clone(), head.uri.clone(), started)));

    let local = match (conn.listener.local_tcp(), conn.listener.unix_path()) {
        (Some(a), _) => Local::Tcp(a),
        (None, Some(p)) => Local::Unix(p.to_str().unwrap_or("")),
        (None, None) => Local::Unix(""),
    };
    let must_close = force_close || head.should_close() || !st.alive();
    let resp: Shared = Arc::new(Mutex::new(ResponseState::new(
        conn.stream.clone(),
        head.version,
        &head.method,
        must_close,
    )));

    let nr = st.nr.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
    if nr == st.ctx.max_requests {
        // Gunicorn stops here and leaves its share of the backlog waiting for a fresh worker
        // to boot. This worker keeps serving instead; the master TERMs it once the
        // replacement is ready (see `arbiter::supervise::release_replaced`).
        error_log::info(&format!(
            "Autorestarting worker after max_requests ({}): a replacement boots first, then this worker stops.",
            nr
        ));
        st.ctx.beat.request_retirement();
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(st.ctx.ppid),
            nix::sys::signal::Signal::SIGCHLD,
        );
    }
    let _ = st.ctx.worker.setattr(py, "nr", nr);

    let mut socket_obj = None;
    let (environ, outcome) = match environ::build(
        py,
        &st.base,
        &head,
        &conn.peer,
        &local,
        input,
        conn.proxy.as_ref(),
    ) {
        Ok(env) => {
            socket_obj = Some(app_socket::add_connection_keys(
                py, &env, &st.base, conn, &resp,
            )?);
            let wrapper =
                (cfg.sendfile_enabled() && !cfg.is_ssl()).then_some(&st.base.file_wrapper);
            let outcome = run_app(py, &st.app, &env, &resp, wrapper, conn.defer_writes);
            (Some(env), outcome)
        }
        Err(problem) => {
            error_log::error(&format!(
                "Error handling request {} {}: {}",
                head.method, head.uri, problem.0
            ));
            write_all(
                py,
                &conn.stream,
                &ferrocorn_h1::error_page(500, "Bad Request", &problem.0),
            );
            let mut r = lock(&resp);
            r.status = Some("500 Bad Request".into());
            r.must_close = true;
            (None, Outcome { error: None })
        }
    };

    let mut exit_request = None;
    if let Some(err) = outcome.error {
        exit_request = system_exit_code(py, &err).map(|c| (c, err.clone_ref(py)));
        // The error page, if any, goes straight to the socket: after what was held back.
        let _ = lock(&resp).flush_deferred(py);
        let mut r = lock(&resp);
        r.must_close = true;
        let body_error = reader.lock().ok().and_then(|mut b| b.failed.take());
        if r.headers_sent {
            error_log::error(&format!(
                "Error handling request\n{}",
                format_traceback(py, &err)
            ));
        } else if let Some(perr) = body_error {
            drop(r);
            send_parse_error(py, &conn.stream, &conn.peer, &perr, Some(&head.uri));
            let mut r = lock(&resp);
            r.status = Some(format!("{} {}", perr.status(), perr.reason()));
            r.headers_sent = true;
        } else {
            error_log::error(&format!(
                "Error handling request {} {}\n{}",
                head.method,
                head.uri,
                format_traceback(py, &err)
            ));
            write_all(
                py,
                &conn.stream,
                &ferrocorn_h1::error_page(500, "Internal Server Error", ""),
            );
            r.status = Some("500 Internal Server Error".into());
            r.headers.clear();
            r.sent = 0;
        }
    }

    let elapsed = started.elapsed();
    if access::enabled() {
        log_access(py, &head, &conn.peer, environ.as_ref(), &resp, elapsed);
    }
    if let (Some(hook), Some(req)) = (&cfg.post_request, &req_obj) {
        let env_obj = environ
            .as_ref()
            .map(|e| e.clone().into_any().unbind())
            .unwrap_or_else(|| py.None());
        let resp_obj = hook_objects::response_object(py, &resp, req).unwrap_or_else(|_| py.None());
        if let Err(e) = hook.call1(
            py,
            (
                st.ctx.worker.clone_ref(py),
                req.clone_ref(py),
                env_obj,
                resp_obj,
            ),
        ) {
            error_log::error(&format!(
                "Exception in post_request hook\n{}",
                format_traceback(py, &e)
            ));
        }
    }
    // A body the app left unread is discarded (bounded) so the connection can go on, as
    // Gunicorn's parser does before the next request.
    let keep = exit_request.is_none() && !lock(&resp).should_close();
    let leftover = if keep {
        let drain = || {
            let mut b = reader.lock().ok()?;
            let clean = b.drain(DRAIN_LIMIT) && !b.disconnected && b.failed.is_none();
            clean.then(|| b.take_leftover())
        };
        // Reading the rest of a body may block; a body already consumed needs no I/O.
        let done = reader.lock().map(|b| b.is_done()).unwrap_or(false);
        if done {
            drain()
        } else if let Err(e) = lock(&resp).flush_deferred(py) {
            // Flushed first: the client may wait for the answer before sending the rest.
            error_log::debug(&format!("Ignoring connection error while writing: {e}"));
            None
        } else {
            py.detach(drain)
        }
    } else {
        None
    };
    // Whatever the app kept (the environ, wsgi.input, start_response) lets go of the
    // connection now, so the worker's close is final, as Gunicorn's is; gunicorn.socket
    // lives as long as the connection.
    if let Ok(mut r) = reader.lock() {
        r.release();
    }
    let unsent = {
        let mut r = lock(&resp);
        let unsent = r.take_deferred();
        r.release();
        unsent
    };
    if let Some(sock) = socket_obj {
        if leftover.is_some() {
            *conn.app_socket.borrow_mut() = Some(sock);
        } else {
            app_socket::close_app_socket(py, sock);
        }
    }
    if !st.threaded {
        st.ctx.beat.request_finished();
    }
    set_in_flight(None);
    if let Some((_, err)) = exit_request {
        return Err(err);
    }
    Ok(Served {
        keep: leftover,
        unsent,
    })
}

fn log_access(
    py: Python<'_>,
    head: &RequestHead,
    peer: &Peer,
    environ: Option<&Bound<'_, PyDict>>,
    resp: &Shared,
    elapsed: std::time::Duration,
) {
    let r = lock(resp);
    let peer_ip = match peer {
        Peer::Ip(a) => a.ip().to_string(),
        Peer::Unix => String::new(),
    };
    let protocol = format!("HTTP/{}.{}", head.version.0, head.version.1);
    let env_get = |key: &str| -> Option<String> {
        let env = environ?;
        let v = env.get_item(key).ok()??;
        Some(v.str().ok()?.to_string())
    };
    let path_info: Option<String> = environ.and_then(|_| env_get("PATH_INFO"));
    // `h` is environ['REMOTE_ADDR'] as Gunicorn logs it: the PROXY client when there is one.
    let remote = env_get("REMOTE_ADDR").unwrap_or(peer_ip);
    let status = r.status.clone().unwrap_or_default();
    let record = access::AccessRecord {
        remote_addr: &remote,
        method: &head.method,
        raw_uri: &head.uri,
        protocol: &protocol,
        status: &status,
        path_info: path_info.as_deref(),
        query: &head.query,
        sent: Some(r.sent),
        request_headers: &head.headers,
        response_headers: &r.headers,
        request_time: elapsed,
        environ: &env_get,
    };
    let _ = py;
    access::log(&record);
}
