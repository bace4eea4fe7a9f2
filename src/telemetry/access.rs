//! The access log: `accesslog` destination and `access_log_format` applied to Gunicorn's atoms.
//!
//! Owns: compiling the format once, computing the atoms of §13 (`h l u t r s m U q H b B f a T
//! D M L p {header}i {header}o {key}e`) from an `AccessRecord` with `SafeAtoms` semantics
//! (`"` escaped as `\"`, unknown keys `-`, `{...}` keys case-insensitive), and writing one line
//! per request. Must not touch: the error log's format or level (a render failure is only
//! reported there), and Python: a line is rendered with no GIL.

use std::borrow::Cow;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Local, TimeZone};

use super::pyformat::{self, Piece, Value};
use super::sink::{Kind, Sink, Target};
use super::stamp::clf_stamp;
use super::syslog::{self, Stream};
use super::{basic_auth, error_log, TelemetryError};

/// What one finished request contributes to its access line.
pub struct AccessRecord<'a> {
    /// `h`: REMOTE_ADDR; empty for a unix socket.
    pub remote_addr: &'a str,
    pub method: &'a str,
    /// The request target exactly as received (RAW_URI).
    pub raw_uri: &'a str,
    /// SERVER_PROTOCOL, e.g. `HTTP/1.1`.
    pub protocol: &'a str,
    /// The status line the app gave, e.g. `200 OK`; `s` is its first token.
    pub status: &'a str,
    /// PATH_INFO after decoding and SCRIPT_NAME stripping; None for error pages (`U` prints None).
    pub path_info: Option<&'a str>,
    pub query: &'a str,
    /// Body bytes actually written; None if the response never started.
    pub sent: Option<u64>,
    /// Request headers with UPPER-case names, in arrival order.
    pub request_headers: &'a [(String, String)],
    /// Response headers as the app gave them (after hop-by-hop removal).
    pub response_headers: &'a [(String, String)],
    pub request_time: Duration,
    /// Looks up an environ key for `%({key}e)s`. It is called with the key as written in the
    /// format, then upper-cased, then lower-cased, until one gives a value, because Gunicorn
    /// matches environ keys case-insensitively.
    pub environ: &'a dyn Fn(&str) -> Option<String>,
}

/// An atom key, resolved once when the format is compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Atom {
    RemoteAddr,
    Ident,
    User,
    Time,
    RequestLine,
    Status,
    Method,
    PathInfo,
    Query,
    Protocol,
    BytesText,
    BytesInt,
    Referer,
    UserAgent,
    Seconds,
    Micros,
    Millis,
    SecondsDecimal,
    Pid,
    /// Lower-cased header name.
    RequestHeader(String),
    /// Lower-cased header name.
    ResponseHeader(String),
    /// The key as written between the braces.
    Environ(String),
    Unknown,
}

impl Atom {
    fn resolve(key: &str) -> Atom {
        if key.starts_with('{') {
            return Atom::resolve_braced(key);
        }
        match key {
            "h" => Atom::RemoteAddr,
            "l" => Atom::Ident,
            "u" => Atom::User,
            "t" => Atom::Time,
            "r" => Atom::RequestLine,
            "s" => Atom::Status,
            "m" => Atom::Method,
            "U" => Atom::PathInfo,
            "q" => Atom::Query,
            "H" => Atom::Protocol,
            "b" => Atom::BytesText,
            "B" => Atom::BytesInt,
            "f" => Atom::Referer,
            "a" => Atom::UserAgent,
            "T" => Atom::Seconds,
            "D" => Atom::Micros,
            "M" => Atom::Millis,
            "L" => Atom::SecondsDecimal,
            "p" => Atom::Pid,
            _ => Atom::Unknown,
        }
    }

    /// `{name}i`, `{name}o`, `{name}e`, matched after lower-casing the whole key as SafeAtoms
    /// does; any other braced key is unknown.
    fn resolve_braced(key: &str) -> Atom {
        let Some(tag) = key.chars().last().filter(char::is_ascii) else {
            return Atom::Unknown;
        };
        let body = &key[..key.len() - 1];
        let Some(inner) = body.strip_prefix('{').and_then(|b| b.strip_suffix('}')) else {
            return Atom::Unknown;
        };
        match tag.to_ascii_lowercase() {
            'i' => Atom::RequestHeader(inner.to_lowercase()),
            'o' => Atom::ResponseHeader(inner.to_lowercase()),
            'e' => Atom::Environ(inner.to_owned()),
            _ => Atom::Unknown,
        }
    }
}

/// A compiled `access_log_format`.
#[derive(Debug, Clone)]
pub struct AccessFormat {
    source: String,
    pieces: Vec<Piece<Atom>>,
}

impl AccessFormat {
    /// Compiles a format; errors are the ones Python would raise when applying it.
    pub fn parse(format: &str) -> Result<AccessFormat, TelemetryError> {
        let pieces = pyformat::parse(format, Atom::resolve)
            .map_err(|message| TelemetryError::Format { message })?;
        Ok(AccessFormat {
            source: format.to_owned(),
            pieces,
        })
    }

    /// The format text as configured.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The line for `record` without its newline, at the current local time and pid.
    pub fn render(&self, record: &AccessRecord<'_>) -> Result<String, TelemetryError> {
        self.render_at(record, &Local::now(), std::process::id())
    }

    pub(crate) fn render_at<Tz: TimeZone>(
        &self,
        record: &AccessRecord<'_>,
        now: &DateTime<Tz>,
        pid: u32,
    ) -> Result<String, TelemetryError> {
        let mut atoms = Atoms {
            rec: record,
            pid,
            time: None,
            user: None,
        };
        let mut out = String::with_capacity(self.source.len() + 128);
        for piece in &self.pieces {
            match piece {
                Piece::Literal(text) => out.push_str(text),
                Piece::Field(atom, conversion) => {
                    let value = atoms.value(atom, now);
                    pyformat::render(conversion, &value, &mut out).map_err(|message| {
                        TelemetryError::Render {
                            format: self.source.clone(),
                            message,
                        }
                    })?;
                }
            }
        }
        Ok(out)
    }
}

/// Per-line evaluation state: `t` and `u` are computed at most once per line, like Gunicorn's
/// atom dict.
struct Atoms<'r, 'a> {
    rec: &'r AccessRecord<'a>,
    pid: u32,
    time: Option<String>,
    user: Option<String>,
}

impl<'r> Atoms<'r, '_> {
    fn value<Tz: TimeZone>(&mut self, atom: &Atom, now: &DateTime<Tz>) -> Value<'r> {
        let rec = self.rec;
        let micros = rec.request_time.subsec_micros() as u64;
        let secs = rec.request_time.as_secs();
        match atom {
            Atom::RemoteAddr => safe(rec.remote_addr),
            Atom::Ident | Atom::Unknown => dash(),
            Atom::User => {
                let user = self.user.get_or_insert_with(|| user_atom(rec));
                safe_owned(user.clone())
            }
            Atom::Time => {
                let time = self.time.get_or_insert_with(|| {
                    let mut s = String::with_capacity(28);
                    clf_stamp(now, &mut s);
                    s
                });
                Value::Str(Cow::Owned(time.clone()))
            }
            Atom::RequestLine => {
                safe_owned(format!("{} {} {}", rec.method, rec.raw_uri, rec.protocol))
            }
            Atom::Status => safe(rec.status.split_whitespace().next().unwrap_or("")),
            Atom::Method => safe(rec.method),
            Atom::PathInfo => rec.path_info.map_or(Value::None, safe),
            Atom::Query => safe(rec.query),
            Atom::Protocol => safe(rec.protocol),
            Atom::BytesText => match rec.sent {
                Some(n) => Value::Str(Cow::Owned(n.to_string())),
                None => dash(),
            },
            Atom::BytesInt => rec.sent.map_or(Value::None, Value::Int),
            Atom::Referer => {
                environ_header(rec.request_headers, "REFERER").map_or(dash(), safe_cow)
            }
            Atom::UserAgent => {
                environ_header(rec.request_headers, "USER-AGENT").map_or(dash(), safe_cow)
            }
            Atom::Seconds => Value::Int(secs),
            Atom::Micros => Value::Int(secs.saturating_mul(1_000_000).saturating_add(micros)),
            Atom::Millis => Value::Int(secs.saturating_mul(1_000).saturating_add(micros / 1000)),
            Atom::SecondsDecimal => Value::Str(Cow::Owned(format!("{secs}.{micros:06}"))),
            Atom::Pid => Value::Str(Cow::Owned(format!("<{}>", self.pid))),
            Atom::RequestHeader(name) => {
                last_header(rec.request_headers, name).map_or(dash(), safe)
            }
            Atom::ResponseHeader(name) => {
                last_header(rec.response_headers, name).map_or(dash(), safe)
            }
            Atom::Environ(key) => environ_lookup(rec.environ, key).map_or(dash(), safe_owned),
        }
    }
}

fn dash() -> Value<'static> {
    Value::Str(Cow::Borrowed("-"))
}

/// SafeAtoms: string values get `"` escaped as `\"`.
fn safe(s: &str) -> Value<'_> {
    if s.contains('"') {
        Value::Str(Cow::Owned(s.replace('"', "\\\"")))
    } else {
        Value::Str(Cow::Borrowed(s))
    }
}

fn safe_owned<'x>(s: String) -> Value<'x> {
    if s.contains('"') {
        Value::Str(Cow::Owned(s.replace('"', "\\\"")))
    } else {
        Value::Str(Cow::Owned(s))
    }
}

fn safe_cow(s: Cow<'_, str>) -> Value<'_> {
    match s {
        Cow::Borrowed(b) => safe(b),
        Cow::Owned(o) => safe_owned(o),
    }
}

/// Header names compare after Python's `str.lower()`; `lower` is already lower-cased.
fn same_name(name: &str, lower: &str) -> bool {
    if name.is_ascii() {
        name.eq_ignore_ascii_case(lower)
    } else {
        name.to_lowercase() == lower
    }
}

/// `{name}i` / `{name}o`: a dict built from the header list, so the last value wins.
fn last_header<'h>(headers: &'h [(String, String)], lower: &str) -> Option<&'h str> {
    headers
        .iter()
        .rev()
        .find(|(name, _)| same_name(name, lower))
        .map(|(_, value)| value.as_str())
}

/// The environ's `HTTP_*` value for a header: repeated headers joined with `,` in order.
fn environ_header<'h>(headers: &'h [(String, String)], upper: &str) -> Option<Cow<'h, str>> {
    let mut found = headers
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case(upper));
    let first = found.next()?;
    let Some(second) = found.next() else {
        return Some(Cow::Borrowed(first.1.as_str()));
    };
    let mut joined = format!("{},{}", first.1, second.1);
    for (_, value) in found {
        joined.push(',');
        joined.push_str(value);
    }
    Some(Cow::Owned(joined))
}

fn environ_lookup(environ: &dyn Fn(&str) -> Option<String>, key: &str) -> Option<String> {
    environ(key)
        .or_else(|| {
            let upper = key.to_uppercase();
            (upper != key).then(|| environ(&upper)).flatten()
        })
        .or_else(|| {
            let lower = key.to_lowercase();
            (lower != key).then(|| environ(&lower)).flatten()
        })
}

/// `u`: Gunicorn's `_get_user(environ) or '-'`, reading HTTP_AUTHORIZATION.
fn user_atom(rec: &AccessRecord<'_>) -> String {
    let Some(header) = environ_header(rec.request_headers, "AUTHORIZATION") else {
        return "-".into();
    };
    match basic_auth::user(&header) {
        Ok(Some(user)) => user,
        Ok(None) => "-".into(),
        Err(why) => {
            error_log::debug(&format!("Couldn't get username: {why}"));
            "-".into()
        }
    }
}

static SINK: Sink = Sink::new("accesslog", Kind::Disabled);
static FORMAT: RwLock<Option<Arc<AccessFormat>>> = RwLock::new(None);

/// Sets the access log: `None` disables it, `-` is stdout, anything else a file opened for
/// append. The format is compiled here, so a bad format is reported before any request.
/// On error the previous destination and format stay.
pub fn init(accesslog: Option<&str>, format: &str) -> Result<(), TelemetryError> {
    let compiled = Arc::new(AccessFormat::parse(format)?);
    let target = match accesslog {
        None => Target::Disabled,
        Some("-") => Target::Stdout,
        Some(path) => Target::File(Path::new(path)),
    };
    // Publish the format before the destination so a writer that sees the new destination
    // never renders with no format at all.
    let previous = FORMAT
        .write()
        .unwrap_or_else(|p| p.into_inner())
        .replace(compiled);
    if let Err(err) = SINK.set_target(target) {
        *FORMAT.write().unwrap_or_else(|p| p.into_inner()) = previous;
        return Err(err);
    }
    Ok(())
}

/// Whether access lines are written at all (to `accesslog` or to syslog); callers can skip
/// building records when not.
pub fn enabled() -> bool {
    SINK.is_enabled() || syslog::access_enabled()
}

/// Renders and writes one line with a single write(2). A render error (e.g. `%(h)d`) is
/// reported on the error log and the request goes on, as in Gunicorn.
pub fn log(record: &AccessRecord<'_>) {
    let to_syslog = syslog::access_enabled();
    if !SINK.is_enabled() && !to_syslog {
        return;
    }
    let format = FORMAT.read().unwrap_or_else(|p| p.into_inner()).clone();
    let Some(format) = format else {
        return;
    };
    match format.render(record) {
        Ok(mut line) => {
            if to_syslog {
                syslog::send(20, Stream::Access, &line);
            }
            if SINK.is_enabled() {
                line.push('\n');
                SINK.write_all(line.as_bytes());
            }
        }
        Err(err) => error_log::error(&format!("Error writing the access log line: {err}")),
    }
}

/// Re-opens the access log file by name (USR1). Stdout has nothing to reopen.
pub fn reopen() -> Result<(), TelemetryError> {
    SINK.reopen()
}

/// The access log file's descriptor, or None for stdout or when disabled.
pub fn raw_fd() -> Option<i32> {
    SINK.raw_fd()
}

/// Chowns the access log file to the worker user and group, like the error log's.
pub fn chown(uid: u32, gid: u32) {
    SINK.chown(uid, gid);
}

pub(crate) fn set_cloexec() -> std::io::Result<()> {
    SINK.set_cloexec()
}
