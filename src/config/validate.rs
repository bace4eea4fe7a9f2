//! The validators: one [`Kind`] per Gunicorn `validate_*` function, applied to Python
//! objects exactly as Gunicorn applies them (command-line strings are turned into Python
//! objects first, so the config file, `GUNICORN_CMD_ARGS` and argv share one code path).
//!
//! Also the reverse direction, value -> Python object, used by `--print-config` and the
//! `cfg` object hooks see. Reasons returned as `Err(String)` are the text of the exception
//! Gunicorn would raise; the caller adds which setting failed.

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyInt, PyList, PyString};
use pyo3::IntoPyObjectExt;

use super::addr::{parse_address, split_comma_list, AddrList};
use super::pytext::{abspath_from, parse_py_int, py_repr};
use super::support;
use super::value::Value;

/// Which Gunicorn validator a setting uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `validate_string`: str or None, stripped.
    Text,
    /// `validate_bool`: bool, or "true"/"false" in any case.
    Boolean,
    /// `validate_pos_int`: `int(x, 0)` for strings, never negative.
    PosInt,
    /// HTTP/2 SETTINGS_MAX_FRAME_SIZE, 16384..=16777215.
    Http2FrameSize,
    /// HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS, at least 1.
    Http2Streams,
    /// HTTP/2 initial window size, 0..=2^31-1.
    Http2Window,
    /// `validate_list_string`: a str (one item) or an iterable of str.
    TextList,
    /// `validate_list_of_files_or_patterns`: paths must exist, globs are kept.
    FilesOrPatterns,
    /// `validate_string_to_addr_list`: comma-separated IPs/CIDRs or `*`.
    Addrs,
    /// `validate_string_to_list`: comma-separated names.
    CommaList,
    /// `validate_dict` for `secure_scheme_headers` (header -> value, both str).
    SchemeHeaders,
    /// `validate_dict` for `logconfig_dict` (kept as the Python dict).
    LogDict,
    /// `validate_class`: a dotted name, a class, or a function returning one.
    Class,
    /// `validate_callable(arity)`: a callable or "mod.func" with exactly this arity.
    Hook(u8),
    /// `validate_post_request`: arity 2, 3 or 4 (short forms are adapted).
    PostRequestHook,
    /// `validate_user`: name or uid.
    User,
    /// `validate_group`: name or gid.
    Group,
    /// `validate_chdir`: an existing directory, made absolute.
    Chdir,
    /// `validate_statsd_address`: `host:port`, `unix://PATH` or legacy `unix:PORT`.
    Statsd,
    /// `validate_reload_engine`: auto, poll, inotify (exact, case-sensitive).
    ReloadEngine,
    /// `validate_header_map_behaviour`: drop, refuse, dangerous.
    HeaderMap,
    /// `validate_asgi_loop`: auto, asyncio, uvloop.
    AsgiLoop,
    /// `validate_asgi_lifespan`: auto, on, off.
    AsgiLifespan,
    /// `validate_http_parser`: auto, fast, python.
    HttpParser,
    /// `validate_http2_cleartext`: off, prior-knowledge, upgrade, both (True = prior-knowledge).
    Http2Cleartext,
    /// `validate_proxy_protocol`: off, v1, v2, auto (with bool and legacy spellings).
    ProxyProtocol,
    /// `protocol`: http or uwsgi. Gunicorn takes any string and serves HTTP for anything
    /// but `uwsgi`; a typo here would serve the wrong protocol, so it is refused.
    Protocol,
    /// `validate_http_protocols`: comma-separated h1/h2 preference list.
    HttpProtocols,
    /// `validate_ssl_version`: anything, with a deprecation warning when changed.
    SslVersion,
    /// ferrocorn's `static_mount`: `PREFIX=DIR` items (or a dict), see `config::statics`.
    StaticMounts,
}

type Reason = String;

fn text_of(obj: &Bound<'_, PyAny>) -> String {
    obj.str()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "<unprintable>".to_string())
}

fn repr_of(obj: &Bound<'_, PyAny>) -> String {
    obj.repr()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "<unprintable>".to_string())
}

fn py_err_text(py: Python<'_>, err: PyErr) -> Reason {
    text_of(err.value(py).as_any())
}

/// `validate_string`.
fn string(obj: &Bound<'_, PyAny>) -> Result<Option<String>, Reason> {
    if obj.is_none() {
        return Ok(None);
    }
    match obj.cast::<PyString>() {
        Ok(s) => Ok(Some(s.to_string_lossy().trim().to_string())),
        Err(_) => Err(format!("Not a string: {}", text_of(obj))),
    }
}

/// `validate_bool`.
fn boolean(obj: &Bound<'_, PyAny>) -> Result<Option<bool>, Reason> {
    if obj.is_none() {
        return Ok(None);
    }
    if let Ok(b) = obj.cast::<PyBool>() {
        return Ok(Some(b.is_true()));
    }
    let Ok(s) = obj.cast::<PyString>() else {
        return Err(format!("Invalid type for casting: {}", text_of(obj)));
    };
    let raw = s.to_string_lossy();
    match raw.trim().to_lowercase().as_str() {
        "true" => Ok(Some(true)),
        "false" => Ok(Some(false)),
        _ => Err(format!("Invalid boolean: {raw}")),
    }
}

/// `int(val)` for ints (bools included) and `int(val, 0)` for strings.
fn integer(obj: &Bound<'_, PyAny>) -> Result<i64, Reason> {
    if obj.is_instance_of::<PyInt>() {
        return obj
            .extract::<i64>()
            .map_err(|_| format!("integer {} is too large", text_of(obj)));
    }
    match obj.cast::<PyString>() {
        Ok(s) => {
            let raw = s.to_string_lossy();
            parse_py_int(&raw, 0).map_err(|e| e.message(&raw, 0))
        }
        Err(_) => Err("int() can't convert non-string with explicit base".to_string()),
    }
}

fn pos_int(obj: &Bound<'_, PyAny>) -> Result<i64, Reason> {
    let v = integer(obj)?;
    if v < 0 {
        return Err(format!("Value must be positive: {v}"));
    }
    Ok(v)
}

/// `validate_list_string`.
fn string_list(obj: &Bound<'_, PyAny>) -> Result<Vec<String>, Reason> {
    if !obj.is_truthy().map_err(|e| py_err_text(obj.py(), e))? {
        return Ok(Vec::new());
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(vec![s.to_string_lossy().trim().to_string()]);
    }
    let iter = obj.try_iter().map_err(|e| py_err_text(obj.py(), e))?;
    let mut out = Vec::new();
    for item in iter {
        let item = item.map_err(|e| py_err_text(obj.py(), e))?;
        match string(&item)? {
            Some(s) => out.push(s),
            None => return Err("Not a string: None".to_string()),
        }
    }
    Ok(out)
}

/// `validate_string_to_list`.
fn comma_list(obj: &Bound<'_, PyAny>) -> Result<Vec<String>, Reason> {
    Ok(string(obj)?
        .map(|s| split_comma_list(&s))
        .unwrap_or_default())
}

/// Lower-cased, stripped string for the choice validators, with their "not a string" text.
fn choice_text(obj: &Bound<'_, PyAny>, not_str: &str) -> Result<String, Reason> {
    match obj.cast::<PyString>() {
        Ok(s) => Ok(s.to_string_lossy().trim().to_lowercase()),
        Err(_) => Err(not_str.replace("{}", &text_of(obj))),
    }
}

fn one_of(
    obj: &Bound<'_, PyAny>,
    choices: &[&str],
    not_str: &str,
    bad: &str,
) -> Result<Value, Reason> {
    if obj.is_none() {
        return Ok(Value::Text(Some("auto".to_string())));
    }
    let v = choice_text(obj, not_str)?;
    if choices.contains(&v.as_str()) {
        Ok(Value::Text(Some(v)))
    } else {
        Err(bad.replace("{}", &v))
    }
}

fn user_or_group(obj: &Bound<'_, PyAny>, is_user: bool) -> Result<u32, Reason> {
    if obj.is_none() {
        return Ok(if is_user {
            nix::unistd::geteuid().as_raw()
        } else {
            nix::unistd::getegid().as_raw()
        });
    }
    if obj.is_instance_of::<PyInt>() {
        return obj
            .extract::<u32>()
            .map_err(|_| format!("{} is not a valid id", text_of(obj)));
    }
    let Ok(s) = obj.cast::<PyString>() else {
        return Err(format!("Not a string: {}", text_of(obj)));
    };
    let name = s.to_string_lossy().into_owned();
    if !name.is_empty() && name.chars().all(|c| c.is_ascii_digit()) {
        return name
            .parse::<u32>()
            .map_err(|_| format!("{name} is not a valid id"));
    }
    let found = if is_user {
        nix::unistd::User::from_name(&name)
            .ok()
            .flatten()
            .map(|u| u.uid.as_raw())
    } else {
        nix::unistd::Group::from_name(&name)
            .ok()
            .flatten()
            .map(|g| g.gid.as_raw())
    };
    let what = if is_user { "user" } else { "group" };
    found.ok_or_else(|| format!("No such {what}: {}", py_repr(&name)))
}

/// Gunicorn's `util.getcwd()`: `$PWD` when it names the same directory, else getcwd().
pub(crate) fn gunicorn_getcwd() -> String {
    use std::os::unix::fs::MetadataExt;
    let real = std::env::current_dir()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|_| ".".to_string());
    if let Ok(pwd) = std::env::var("PWD") {
        if let (Ok(a), Ok(b)) = (std::fs::metadata(&pwd), std::fs::metadata(&real)) {
            if a.ino() == b.ino() && a.dev() == b.dev() {
                return pwd;
            }
        }
    }
    real
}

fn chdir(obj: &Bound<'_, PyAny>) -> Result<String, Reason> {
    let val = string(obj)?.ok_or_else(|| "Not a string: None".to_string())?;
    let path = abspath_from(&gunicorn_getcwd(), &val);
    if !std::path::Path::new(&path).exists() {
        return Err(format!("can't chdir to {}", py_repr(&val)));
    }
    Ok(path)
}

fn statsd(obj: &Bound<'_, PyAny>) -> Result<Option<String>, Reason> {
    let Some(val) = string(obj)? else {
        return Ok(None);
    };
    if legacy_unix_port(&val).is_none() && parse_address(&val, "8125").is_err() {
        return Err("Value must be one of ('host:port', 'unix://PATH')".to_string());
    }
    Ok(Some(val))
}

/// `unix:NNNN` is host "unix" port NNNN for backward compatibility with Gunicorn < 20.
pub(crate) fn legacy_unix_port(val: &str) -> Option<u16> {
    let digits = val.strip_prefix("unix:")?;
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn files_or_patterns(obj: &Bound<'_, PyAny>) -> Result<Vec<String>, Reason> {
    let py = obj.py();
    let entries = string_list(obj)?;
    for entry in &entries {
        if !entry.contains(['*', '?', '[']) {
            if !std::path::Path::new(entry).exists() {
                return Err(format!("File {entry} does not exists."));
            }
            continue;
        }
        let glob = py.import("glob").map_err(|e| py_err_text(py, e))?;
        let kwargs = PyDict::new(py);
        kwargs
            .set_item("recursive", true)
            .map_err(|e| py_err_text(py, e))?;
        let matches = glob
            .call_method("glob", (entry,), Some(&kwargs))
            .and_then(|m| m.len())
            .map_err(|e| py_err_text(py, e))?;
        if matches == 0 {
            let warn = py.import("warnings").and_then(|w| {
                w.call_method1(
                    "warn",
                    (
                        format!("Pattern {entry} currently matches no files."),
                        py.get_type::<pyo3::exceptions::PyRuntimeWarning>(),
                    ),
                )
            });
            warn.map_err(|e| py_err_text(py, e))?;
        }
    }
    Ok(entries)
}

fn scheme_headers(obj: &Bound<'_, PyAny>) -> Result<Vec<(String, String)>, Reason> {
    let dict = obj
        .cast::<PyDict>()
        .map_err(|_| format!("Value is not a dictionary: {} ", text_of(obj)))?;
    let mut pairs = Vec::new();
    for (k, v) in dict.iter() {
        let key = k
            .cast::<PyString>()
            .map_err(|_| format!("Not a string: {}", text_of(&k)))?;
        let val = v
            .cast::<PyString>()
            .map_err(|_| format!("Not a string: {}", text_of(&v)))?;
        pairs.push((
            key.to_string_lossy().into_owned(),
            val.to_string_lossy().into_owned(),
        ));
    }
    Ok(pairs)
}

fn class(obj: &Bound<'_, PyAny>) -> Result<Option<String>, Reason> {
    let py = obj.py();
    let inspect = py.import("inspect").map_err(|e| py_err_text(py, e))?;
    let test = |f: &str, o: &Bound<'_, PyAny>| -> Result<bool, Reason> {
        inspect
            .call_method1(f, (o,))
            .and_then(|r| r.is_truthy())
            .map_err(|e| py_err_text(py, e))
    };
    let mut val = obj.clone();
    if test("isfunction", &val)? || test("ismethod", &val)? {
        val = val.call0().map_err(|e| py_err_text(py, e))?;
    }
    if test("isclass", &val)? {
        // The field is a string, so a class is stored as its import path.
        let module: String = val
            .getattr("__module__")
            .and_then(|m| m.extract())
            .map_err(|e| py_err_text(py, e))?;
        let qualname: String = val
            .getattr("__qualname__")
            .and_then(|m| m.extract())
            .map_err(|e| py_err_text(py, e))?;
        return Ok(Some(format!("{module}.{qualname}")));
    }
    string(&val)
}

fn callable<'py>(
    name: &str,
    obj: &Bound<'py, PyAny>,
    arity: Option<usize>,
) -> Result<Value, Reason> {
    let py = obj.py();
    let func = if let Ok(s) = obj.cast::<PyString>() {
        support::import_hook(py, &s.to_string_lossy()).map_err(|e| py_err_text(py, e))?
    } else {
        obj.clone()
    };
    if !func.is_callable() {
        return Err(format!("Value is not callable: {}", text_of(&func)));
    }
    // The built-in default is stored as "no hook" so the Rust side can use its own.
    if let Ok(default) = support::default_hook(py, name) {
        if default.is(&func) {
            return Ok(Value::Obj(None));
        }
    }
    if let Some(n) = arity {
        let got = support::arity(py, &func).map_err(|e| py_err_text(py, e))?;
        if got != n {
            return Err(format!("Value must have an arity of: {n}"));
        }
    }
    Ok(Value::Obj(Some(func.unbind())))
}

fn post_request(name: &str, obj: &Bound<'_, PyAny>) -> Result<Value, Reason> {
    let py = obj.py();
    let Value::Obj(Some(func)) = callable(name, obj, None)? else {
        return Ok(Value::Obj(None));
    };
    let func = func.into_bound(py);
    match support::arity(py, &func).map_err(|e| py_err_text(py, e))? {
        4 => Ok(Value::Obj(Some(func.unbind()))),
        n @ (2 | 3) => support::adapt_post_request(py, &func, n)
            .map(|f| Value::Obj(Some(f.unbind())))
            .map_err(|e| py_err_text(py, e)),
        _ => Err("Value must have an arity of: 4".to_string()),
    }
}

fn http_protocols(obj: &Bound<'_, PyAny>) -> Result<Vec<String>, Reason> {
    if obj.is_none() {
        return Ok(vec!["h1".to_string()]);
    }
    let s = obj
        .cast::<PyString>()
        .map_err(|_| "http_protocols must be a string".to_string())?;
    let protocols: Vec<String> = s
        .to_string_lossy()
        .split(',')
        .map(|p| p.trim().to_lowercase())
        .filter(|p| !p.is_empty())
        .collect();
    if protocols.is_empty() {
        return Ok(vec!["h1".to_string()]);
    }
    for p in &protocols {
        if p != "h1" && p != "h2" {
            return Err(format!("Invalid protocol '{p}'. Valid protocols: h1, h2"));
        }
    }
    let distinct: std::collections::HashSet<&String> = protocols.iter().collect();
    if distinct.len() != protocols.len() {
        return Err("Duplicate protocols specified".to_string());
    }
    Ok(protocols)
}

fn ranged(obj: &Bound<'_, PyAny>, name: &str, lo: i64, hi: i64) -> Result<Value, Reason> {
    let v = integer(obj)?;
    if v < lo || v > hi {
        return Err(format!("{name} must be between {lo} and {hi}, got {v}"));
    }
    Ok(Value::Int(v))
}

impl Kind {
    /// Validate a Python object for setting `name`, as Gunicorn's `Setting.set` would.
    pub(crate) fn validate(self, name: &str, obj: &Bound<'_, PyAny>) -> Result<Value, Reason> {
        match self {
            Kind::Text => string(obj).map(Value::Text),
            Kind::Boolean => boolean(obj).map(Value::Flag),
            Kind::PosInt => pos_int(obj).map(Value::Int),
            Kind::Http2FrameSize => ranged(obj, name, 16384, 16_777_215),
            Kind::Http2Streams => ranged(obj, name, 1, i64::from(u32::MAX)),
            Kind::Http2Window => ranged(obj, name, 0, (1 << 31) - 1),
            Kind::TextList => string_list(obj).map(Value::List),
            Kind::FilesOrPatterns => files_or_patterns(obj).map(Value::List),
            Kind::Addrs => AddrList::from_entries(comma_list(obj)?).map(Value::Addrs),
            Kind::CommaList => comma_list(obj).map(Value::List),
            Kind::SchemeHeaders => scheme_headers(obj).map(Value::Pairs),
            Kind::LogDict => {
                let dict = obj
                    .cast::<PyDict>()
                    .map_err(|_| format!("Value is not a dictionary: {} ", text_of(obj)))?;
                Ok(Value::Obj(
                    (!dict.is_empty()).then(|| dict.clone().into_any().unbind()),
                ))
            }
            Kind::Class => class(obj).map(Value::Text),
            Kind::Hook(n) => callable(name, obj, Some(usize::from(n))),
            Kind::PostRequestHook => post_request(name, obj),
            Kind::User => user_or_group(obj, true).map(Value::Id),
            Kind::Group => user_or_group(obj, false).map(Value::Id),
            Kind::Chdir => chdir(obj).map(|p| Value::Text(Some(p))),
            Kind::Statsd => statsd(obj).map(Value::Text),
            Kind::ReloadEngine => match obj.extract::<String>() {
                Ok(v) if ["auto", "poll", "inotify"].contains(&v.as_str()) => {
                    Ok(Value::Text(Some(v)))
                }
                _ => Err(format!("Invalid reload_engine: {}", repr_of(obj))),
            },
            Kind::HeaderMap => {
                if obj.is_none() {
                    return Ok(Value::Text(None));
                }
                let v = choice_text(obj, "Invalid type for casting: {}")?;
                match v.as_str() {
                    "drop" | "refuse" | "dangerous" => Ok(Value::Text(Some(v))),
                    _ => Err(format!("Invalid header map behaviour: {}", text_of(obj))),
                }
            }
            Kind::AsgiLoop => one_of(
                obj,
                &["auto", "asyncio", "uvloop"],
                "Invalid type for casting: {}",
                "Invalid ASGI loop: {}",
            ),
            Kind::AsgiLifespan => one_of(
                obj,
                &["auto", "on", "off"],
                "Invalid type for casting: {}",
                "Invalid ASGI lifespan: {}",
            ),
            Kind::HttpParser => one_of(
                obj,
                &["auto", "fast", "python"],
                "http_parser must be a string",
                "http_parser must be one of: auto, fast, python",
            ),
            Kind::Http2Cleartext => {
                if obj.is_none() {
                    return Ok(Value::Text(Some("off".to_string())));
                }
                if let Ok(b) = obj.cast::<PyBool>() {
                    let v = if b.is_true() {
                        "prior-knowledge"
                    } else {
                        "off"
                    };
                    return Ok(Value::Text(Some(v.to_string())));
                }
                let v = choice_text(obj, "Invalid type for casting: {}")?;
                match v.as_str() {
                    "off" | "prior-knowledge" | "upgrade" | "both" => Ok(Value::Text(Some(v))),
                    _ => Err(format!("Invalid http2_cleartext: {v}")),
                }
            }
            Kind::ProxyProtocol => {
                if obj.is_none() {
                    return Ok(Value::Text(Some("off".to_string())));
                }
                if let Ok(b) = obj.cast::<PyBool>() {
                    let v = if b.is_true() { "auto" } else { "off" };
                    return Ok(Value::Text(Some(v.to_string())));
                }
                let v = choice_text(obj, "proxy_protocol must be string or bool")?;
                let mapped = match v.as_str() {
                    "false" | "off" | "0" | "none" => "off",
                    "true" | "auto" | "1" => "auto",
                    "v1" => "v1",
                    "v2" => "v2",
                    _ => return Err("proxy_protocol must be: off, v1, v2, or auto".to_string()),
                };
                Ok(Value::Text(Some(mapped.to_string())))
            }
            Kind::Protocol => {
                if obj.is_none() {
                    return Ok(Value::Text(Some("http".to_string())));
                }
                let v = choice_text(obj, "Not a string: {}")?;
                match v.as_str() {
                    "http" | "uwsgi" => Ok(Value::Text(Some(v))),
                    _ => Err(format!(
                        "protocol must be http or uwsgi, not {}",
                        repr_of(obj)
                    )),
                }
            }
            Kind::HttpProtocols => http_protocols(obj).map(Value::List),
            Kind::StaticMounts => super::statics::validate(obj).map(Value::List),
            Kind::SslVersion => {
                let is_default = obj.eq(2).unwrap_or(false);
                if !is_default {
                    eprintln!(
                        "Warning: option `ssl_version` is deprecated and it is ignored. \
                         Use ssl_context instead."
                    );
                }
                Ok(Value::Text(Some(text_of(obj))))
            }
        }
    }

    /// The Python object Gunicorn would hold for this value (what `str(cfg)` prints and
    /// what `cfg.<name>` returns to hooks).
    pub(crate) fn to_python<'py>(
        self,
        py: Python<'py>,
        name: &str,
        value: &Value,
    ) -> PyResult<Bound<'py, PyAny>> {
        match (self, value) {
            (Kind::Statsd, Value::Text(Some(s))) => match legacy_unix_port(s) {
                Some(port) => ("unix", port).into_bound_py_any(py),
                None => match parse_address(s, "8125") {
                    Ok(addr) => addr.to_python(py),
                    Err(_) => s.into_bound_py_any(py),
                },
            },
            (Kind::SslVersion, Value::Text(Some(s))) => match s.parse::<i64>() {
                Ok(n) => n.into_bound_py_any(py),
                Err(_) => s.into_bound_py_any(py),
            },
            (Kind::LogDict, Value::Obj(None)) => Ok(PyDict::new(py).into_any()),
            (Kind::Hook(_) | Kind::PostRequestHook, Value::Obj(None)) => {
                support::default_hook(py, name)
            }
            (_, Value::Int(v)) => v.into_bound_py_any(py),
            (_, Value::Id(v)) => v.into_bound_py_any(py),
            (_, Value::Flag(v)) => v.into_bound_py_any(py),
            (_, Value::Text(v)) => v.into_bound_py_any(py),
            (_, Value::List(v)) => Ok(PyList::new(py, v)?.into_any()),
            (_, Value::Addrs(v)) => Ok(PyList::new(py, v.entries())?.into_any()),
            (_, Value::Pairs(v)) => {
                let d = PyDict::new(py);
                for (k, val) in v {
                    d.set_item(k, val)?;
                }
                Ok(d.into_any())
            }
            (_, Value::Obj(Some(o))) => Ok(o.bind(py).clone()),
            (_, Value::Obj(None)) => Ok(py.None().into_bound(py)),
        }
    }
}
