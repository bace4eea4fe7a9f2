//! The Python faces of the error log: `Logger` (handed to hooks as `server.log` and
//! `worker.log`) and `ErrorsStream` (`wsgi.errors`).
//!
//! Owns: Python `logging` call semantics on top of the Rust error log — `msg % args` with the
//! single-mapping rule, `exc_info` / `stack_info`, numeric and named levels, and Python's
//! "--- Logging error ---" report when formatting fails. Must not touch: destinations and line
//! shapes (error_log.rs owns them); access lines, which Rust writes at the request boundary.
//!
//! Neither class holds state: both write through the process-global destinations, so objects
//! created before fork keep working in the worker with the worker's pid.

use pyo3::exceptions::{PyBaseException, PyOSError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple};

use super::error_log::{self, Level};
use super::statsd::{self, LogCall};
use super::{access, TelemetryError};

fn os_error(err: TelemetryError) -> PyErr {
    PyOSError::new_err(err.to_string())
}

/// Gunicorn's `Logger.LOG_LEVELS` lookup for `log("warning", ...)`: unknown names are info.
fn named_levelno(name: &str) -> u32 {
    Level::from_setting(name).levelno()
}

/// The keyword arguments Python's `Logger._log` accepts.
struct CallOptions<'py> {
    /// `exc_info` as passed, if it was.
    exc_info: Option<Bound<'py, PyAny>>,
    /// `exception()` behaves as if `exc_info=True` had been passed.
    exc_info_by_default: bool,
    stack_info: bool,
    /// `extra`, kept for the StatsD logger's `{"metric", "value", "mtype"}` convention.
    extra: Option<Bound<'py, PyAny>>,
}

impl<'py> CallOptions<'py> {
    fn from_kwargs(
        kwargs: Option<&Bound<'py, PyDict>>,
        exc_info_by_default: bool,
    ) -> PyResult<CallOptions<'py>> {
        let mut opts = CallOptions {
            exc_info: None,
            exc_info_by_default,
            stack_info: false,
            extra: None,
        };
        let Some(kwargs) = kwargs else {
            return Ok(opts);
        };
        for (key, value) in kwargs.iter() {
            let key = key.str()?;
            match key.to_cow()?.as_ref() {
                "exc_info" => opts.exc_info = Some(value),
                "stack_info" => opts.stack_info = value.is_truthy()?,
                // `stacklevel` only moves funcName/lineno, which Gunicorn's format omits.
                "stacklevel" => {}
                // StatsD metric hints; the error log line itself ignores them.
                "extra" => opts.extra = Some(value),
                other => {
                    return Err(PyTypeError::new_err(format!(
                        "Logger._log() got an unexpected keyword argument '{other}'"
                    )))
                }
            }
        }
        Ok(opts)
    }

    /// The exception text `logging.Formatter.formatException` would append, if any: an
    /// exception instance, an `(type, value, tb)` tuple, or any other true value meaning
    /// `sys.exc_info()` (which prints `NoneType: None` outside an `except` block).
    fn exception_text(&self, py: Python<'py>) -> PyResult<Option<String>> {
        let given = match &self.exc_info {
            Some(value) if !value.is_truthy()? => return Ok(None),
            Some(value) => Some(value),
            None if self.exc_info_by_default => None,
            None => return Ok(None),
        };
        let traceback = py.import("traceback")?;
        let parts = match given {
            Some(value) if value.is_instance_of::<PyBaseException>() => traceback.call_method1(
                "format_exception",
                (value.get_type(), value, value.getattr("__traceback__")?),
            )?,
            Some(value) if value.is_instance_of::<PyTuple>() => {
                traceback.call_method1("format_exception", value.cast::<PyTuple>()?)?
            }
            _ => {
                let current = py.import("sys")?.call_method0("exc_info")?;
                traceback.call_method1("format_exception", current.cast::<PyTuple>()?)?
            }
        };
        Ok(Some(join_lines(py, &parts)?))
    }

    fn stack_text(&self, py: Python<'py>) -> PyResult<Option<String>> {
        if !self.stack_info {
            return Ok(None);
        }
        let frames = py.import("traceback")?.call_method0("format_stack")?;
        let joined = join_lines(py, &frames)?;
        let joined = joined.strip_suffix('\n').unwrap_or(&joined).to_owned();
        Ok(Some(format!("Stack (most recent call last):\n{joined}")))
    }
}

/// `"".join(lines)` for the list of strings the `traceback` module returns.
fn join_lines<'py>(py: Python<'py>, lines: &Bound<'py, PyAny>) -> PyResult<String> {
    PyString::new(py, "")
        .call_method1("join", (lines,))?
        .extract()
}

/// `LogRecord.getMessage`: `str(msg) % args`, where a single non-empty mapping argument is
/// used as the mapping itself.
fn get_message<'py>(
    py: Python<'py>,
    msg: &Bound<'py, PyAny>,
    args: &Bound<'py, PyTuple>,
) -> PyResult<String> {
    let text = msg.str()?;
    if args.is_empty() {
        return Ok(text.to_cow()?.into_owned());
    }
    let mut operand = args.clone().into_any();
    if args.len() == 1 {
        let only = args.get_item(0)?;
        let mapping = py.import("collections.abc")?.getattr("Mapping")?;
        if only.is_instance(&mapping)? && only.is_truthy()? {
            operand = only;
        }
    }
    Ok(text.rem(operand)?.str()?.to_cow()?.into_owned())
}

/// Python's `Handler.handleError`: a formatting mistake in a hook must not break the server,
/// so it is reported on stderr (where Gunicorn's logging module writes it) and the call
/// returns normally.
fn report_logging_error(
    py: Python<'_>,
    err: PyErr,
    msg: &Bound<'_, PyAny>,
    args: &Bound<'_, PyTuple>,
) -> PyResult<()> {
    let traceback = py.import("traceback")?;
    let lines = traceback.call_method1("format_exception", (err.into_value(py),))?;
    let tb = join_lines(py, &lines)?;
    let report = format!(
        "--- Logging error ---\n{tb}Message: {}\nArguments: {}\n",
        msg.repr()?,
        args.repr()?
    );
    let stderr = py.import("sys")?.getattr("stderr")?;
    if !stderr.is_none() {
        stderr.call_method1("write", (report,))?;
        stderr.call_method0("flush")?;
    }
    Ok(())
}

/// Which `Logger` method was called: the StatsD logger counts critical, error, warning and
/// exception calls, and reads `extra` metrics only on the `log` path (info, debug, log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    Critical,
    Error,
    Warning,
    Exception,
    Log,
}

fn emit(
    py: Python<'_>,
    method: Method,
    levelno: u32,
    msg: &Bound<'_, PyAny>,
    args: &Bound<'_, PyTuple>,
    kwargs: Option<&Bound<'_, PyDict>>,
) -> PyResult<()> {
    let opts = CallOptions::from_kwargs(kwargs, method == Method::Exception)?;
    if statsd::enabled() {
        if let Err(err) = send_metrics(method, &opts, msg) {
            // Gunicorn's StatsD logger catches this and logs a warning; so does this.
            let tb = super::format_traceback(py, &err);
            error_log::log_levelno(30, &format!("Failed to log to statsd\n{tb}"));
        }
        // The StatsD logger writes no line for a metric-only call with an empty message.
        if method == Method::Log && !msg.is_truthy()? {
            return Ok(());
        }
    }
    if !error_log::enabled_levelno(levelno) {
        return Ok(());
    }
    let mut text = match get_message(py, msg, args) {
        Ok(text) => text,
        Err(err) => {
            // Like Python's handleError, a report that itself fails (stderr closed, a
            // broken __repr__) is dropped rather than raised into the hook.
            let _ = report_logging_error(py, err, msg, args);
            return Ok(());
        }
    };
    if let Some(exc) = opts.exception_text(py)? {
        text = error_log::with_traceback(&text, &exc);
    }
    if let Some(stack) = opts.stack_text(py)? {
        if !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&stack);
    }
    // The write may block on a slow disk or pipe; other Python threads keep running.
    py.detach(|| error_log::log_levelno(levelno, &text));
    Ok(())
}

/// The StatsD side of one call: the log counters, or a metric named in `extra`. A
/// malformed `extra` is ignored as Gunicorn's logger ignores it.
fn send_metrics(method: Method, opts: &CallOptions<'_>, _msg: &Bound<'_, PyAny>) -> PyResult<()> {
    let kind = match method {
        Method::Critical => Some(LogCall::Critical),
        Method::Error => Some(LogCall::Error),
        Method::Warning => Some(LogCall::Warning),
        Method::Exception => Some(LogCall::Exception),
        Method::Log => None,
    };
    if let Some(kind) = kind {
        statsd::log_call(kind);
        return Ok(());
    }
    let Some(extra) = opts.extra.as_ref().and_then(|e| e.cast::<PyDict>().ok()) else {
        return Ok(());
    };
    let get = |key: &str| extra.get_item(key).ok().flatten();
    let (Some(name), Some(value), Some(mtype)) = (get("metric"), get("value"), get("mtype")) else {
        return Ok(());
    };
    if !name.is_truthy()? || value.is_none() || !mtype.is_truthy()? {
        return Ok(());
    }
    statsd::extra_metric(
        &name.str()?.to_cow()?,
        &value.str()?.to_cow()?,
        &mtype.str()?.to_cow()?,
    );
    Ok(())
}

/// `server.log` / `worker.log`: Gunicorn's `glogging.Logger` call surface over the Rust logs.
#[pyclass(module = "ferrocorn._ferrocorn", name = "Logger", frozen)]
#[derive(Debug, Default)]
pub struct Logger;

#[pymethods]
impl Logger {
    #[new]
    pub fn new() -> Self {
        Logger
    }

    #[pyo3(signature = (msg, *args, **kwargs))]
    fn critical(
        &self,
        py: Python<'_>,
        msg: &Bound<'_, PyAny>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        emit(
            py,
            Method::Critical,
            Level::Critical.levelno(),
            msg,
            args,
            kwargs,
        )
    }

    #[pyo3(signature = (msg, *args, **kwargs))]
    fn error(
        &self,
        py: Python<'_>,
        msg: &Bound<'_, PyAny>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        emit(py, Method::Error, Level::Error.levelno(), msg, args, kwargs)
    }

    #[pyo3(signature = (msg, *args, **kwargs))]
    fn warning(
        &self,
        py: Python<'_>,
        msg: &Bound<'_, PyAny>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        emit(
            py,
            Method::Warning,
            Level::Warning.levelno(),
            msg,
            args,
            kwargs,
        )
    }

    #[pyo3(signature = (msg, *args, **kwargs))]
    fn info(
        &self,
        py: Python<'_>,
        msg: &Bound<'_, PyAny>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        emit(py, Method::Log, Level::Info.levelno(), msg, args, kwargs)
    }

    #[pyo3(signature = (msg, *args, **kwargs))]
    fn debug(
        &self,
        py: Python<'_>,
        msg: &Bound<'_, PyAny>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        emit(py, Method::Log, Level::Debug.levelno(), msg, args, kwargs)
    }

    /// Error level plus the exception being handled (`exc_info=True` unless overridden).
    #[pyo3(signature = (msg, *args, **kwargs))]
    fn exception(
        &self,
        py: Python<'_>,
        msg: &Bound<'_, PyAny>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        emit(
            py,
            Method::Exception,
            Level::Error.levelno(),
            msg,
            args,
            kwargs,
        )
    }

    /// `log(lvl, msg, *args)`: a level name (unknown names are info) or a logging number.
    #[pyo3(signature = (lvl, msg, *args, **kwargs))]
    fn log(
        &self,
        py: Python<'_>,
        lvl: &Bound<'_, PyAny>,
        msg: &Bound<'_, PyAny>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        let levelno = if let Ok(name) = lvl.cast::<PyString>() {
            named_levelno(&name.to_cow()?)
        } else if let Ok(number) = lvl.extract::<i64>() {
            // Negative levels can never pass a threshold, which is at least DEBUG.
            u32::try_from(number.clamp(0, u32::MAX as i64)).unwrap_or(0)
        } else {
            return Err(PyTypeError::new_err("level must be an integer"));
        };
        emit(py, Method::Log, levelno, msg, args, kwargs)
    }

    /// Accepted so hooks written for Gunicorn keep working, but writes nothing: access lines
    /// come from Rust at the end of each request, and a second writer would duplicate them.
    #[pyo3(signature = (*_args, **_kwargs))]
    fn access(&self, _args: &Bound<'_, PyTuple>, _kwargs: Option<&Bound<'_, PyDict>>) {}

    /// Re-opens the error and access log files by name (what USR1 does).
    fn reopen_files(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| {
            error_log::reopen()?;
            access::reopen()
        })
        .map_err(os_error)
    }

    /// Marks the log files close-on-exec, as Gunicorn does after fork.
    fn close_on_exec(&self) -> PyResult<()> {
        error_log::set_cloexec()?;
        access::set_cloexec()?;
        Ok(())
    }
}

/// `wsgi.errors`: text written as-is to the error log destination, one write(2) per call,
/// like Gunicorn's `WSGIErrorsWrapper` (no timestamp, no level).
#[pyclass(module = "ferrocorn._ferrocorn", name = "ErrorsStream", frozen)]
#[derive(Debug, Default)]
pub struct ErrorsStream;

#[pymethods]
impl ErrorsStream {
    #[new]
    pub fn new() -> Self {
        ErrorsStream
    }

    fn write(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let Ok(text) = data.cast::<PyString>() else {
            return Err(PyTypeError::new_err(format!(
                "write() argument must be str, not {}",
                data.get_type().name()?
            )));
        };
        let bytes: Vec<u8> = match text.to_cow() {
            Ok(s) => s.into_owned().into_bytes(),
            // Lone surrogates cannot be UTF-8; keep the line readable instead of losing it.
            Err(_) => text
                .call_method1("encode", ("utf-8", "backslashreplace"))?
                .extract()?,
        };
        py.detach(|| error_log::write_raw(&bytes));
        Ok(())
    }

    fn writelines(&self, py: Python<'_>, lines: &Bound<'_, PyAny>) -> PyResult<()> {
        for line in lines.try_iter()? {
            self.write(py, &line?)?;
        }
        Ok(())
    }

    /// Nothing is buffered: every write already reached the descriptor.
    fn flush(&self) {}

    fn writable(&self) -> bool {
        true
    }
}
