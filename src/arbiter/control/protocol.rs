//! The control socket's wire format (Gunicorn 27's `gunicornc` protocol): frames of a 4-byte
//! big-endian length and UTF-8 JSON, requests `{id, command, args}` and replies
//! `{id, status, data|error}`, and the Python spellings its error messages use (`int()`
//! failures, `shlex` errors, `str()` of JSON arguments).
//!
//! Owns: framing, request decoding, reply encoding and error texts. Must not touch: sockets
//! (`control::server`) and arbiter state (`control::commands`).

use serde_json::{json, Map, Value};

/// The largest payload a frame may announce; a longer one drops the connection.
pub const MAX_MESSAGE: usize = 16 * 1024 * 1024;

/// What the start of a buffer holds.
pub enum Frame {
    /// Not a whole frame yet.
    Incomplete,
    /// A request, and the bytes it took.
    Request(Request, usize),
    /// Too large, not UTF-8, not JSON, not an object, or a command that is not a string:
    /// Gunicorn closes the connection without a reply, and so does this.
    Drop,
}

pub struct Request {
    pub id: Value,
    pub command: String,
    pub args: Value,
}

/// Why a command got an error reply; each kind has Gunicorn's prefix.
#[derive(Debug, PartialEq)]
pub enum CmdError {
    /// As is (`Empty command`).
    Plain(String),
    /// `Invalid argument: ...` (Gunicorn's ValueError).
    Invalid(String),
    /// `Command failed: ...` (any other exception).
    Failed(String),
}

impl CmdError {
    pub fn text(&self) -> String {
        match self {
            CmdError::Plain(m) => m.clone(),
            CmdError::Invalid(m) => format!("Invalid argument: {m}"),
            CmdError::Failed(m) => format!("Command failed: {m}"),
        }
    }
}

pub fn take_frame(buf: &[u8]) -> Frame {
    let Some(head) = buf.get(..4) else {
        return Frame::Incomplete;
    };
    let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
    if len > MAX_MESSAGE {
        return Frame::Drop;
    }
    let Some(payload) = buf.get(4..4 + len) else {
        return Frame::Incomplete;
    };
    let Ok(text) = std::str::from_utf8(payload) else {
        return Frame::Drop;
    };
    let Ok(Value::Object(mut message)) = serde_json::from_str::<Value>(text) else {
        return Frame::Drop;
    };
    let command = match message.remove("command") {
        None => String::new(),
        Some(Value::String(s)) => s,
        Some(_) => return Frame::Drop,
    };
    let request = Request {
        id: message.remove("id").unwrap_or(json!(0)),
        command,
        args: message.remove("args").unwrap_or_else(|| json!([])),
    };
    Frame::Request(request, 4 + len)
}

pub fn encode(reply: &Value) -> Vec<u8> {
    let payload = serde_json::to_vec(reply).unwrap_or_default();
    let mut out = Vec::with_capacity(4 + payload.len());
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(&payload);
    out
}

pub fn ok_reply(id: Value, data: Value) -> Value {
    json!({"id": id, "status": "ok", "data": data})
}

pub fn error_reply(id: Value, error: &CmdError) -> Value {
    json!({"id": id, "status": "error", "error": error.text()})
}

/// The words of a request: its command split with POSIX shell rules, then its args, each
/// as Python's `str()` would spell it (Gunicorn iterates whatever `args` is).
pub fn words(request: &Request) -> Result<Vec<String>, CmdError> {
    let command = request.command.trim();
    if command.is_empty() {
        return Err(CmdError::Plain("Empty command".into()));
    }
    let mut parts = split(command)?;
    match &request.args {
        Value::Array(items) => parts.extend(items.iter().map(py_str)),
        Value::String(s) => parts.extend(s.chars().map(String::from)),
        Value::Object(map) => parts.extend(map.keys().cloned()),
        Value::Null | Value::Bool(false) => {}
        Value::Number(n) if n.as_f64() == Some(0.0) => {}
        other => {
            return Err(CmdError::Failed(format!(
                "'{}' object is not iterable",
                py_type(other)
            )))
        }
    }
    if parts.is_empty() {
        return Err(CmdError::Plain("Empty command".into()));
    }
    Ok(parts)
}

/// `shlex.split` as Python has it (`comments=False`): the crate takes a `#` that starts a
/// word as a comment, so each `#` goes through the split as a character the command does
/// not contain.
fn split(command: &str) -> Result<Vec<String>, CmdError> {
    let stand_in = ('\u{e000}'..='\u{f8ff}')
        .find(|c| !command.contains(*c))
        .unwrap_or('\u{e000}');
    let hidden = command.replace('#', &stand_in.to_string());
    let parts = shlex::split(&hidden).ok_or_else(|| CmdError::Invalid(shlex_error(command)))?;
    Ok(parts
        .into_iter()
        .map(|p| p.replace(stand_in, "#"))
        .collect())
}

/// Python's `shlex` message for a command the splitter refused.
fn shlex_error(command: &str) -> String {
    let (mut quote, mut escaped) = (None::<char>, false);
    for c in command.chars() {
        if escaped {
            escaped = false;
        } else if c == '\\' && quote != Some('\'') {
            escaped = true;
        } else if quote == Some(c) {
            quote = None;
        } else if quote.is_none() && (c == '\'' || c == '"') {
            quote = Some(c);
        }
    }
    if escaped {
        "No escaped character".into()
    } else {
        "No closing quotation".into()
    }
}

/// Python's `int(word)`: surrounding whitespace, a sign, and `_` between digits are
/// allowed. Values beyond i128 saturate (counts and pids that large mean the same thing).
pub fn py_int(word: &str) -> Result<i128, CmdError> {
    let invalid = || {
        CmdError::Invalid(format!(
            "invalid literal for int() with base 10: {}",
            py_repr(word)
        ))
    };
    let s = word.trim();
    let (negative, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let bytes = digits.as_bytes();
    let well_formed = !bytes.is_empty()
        && bytes.first().is_some_and(u8::is_ascii_digit)
        && bytes.last().is_some_and(u8::is_ascii_digit)
        && bytes.iter().all(|b| b.is_ascii_digit() || *b == b'_')
        && !digits.contains("__");
    if !well_formed {
        return Err(invalid());
    }
    let magnitude = bytes
        .iter()
        .filter(|b| b.is_ascii_digit())
        .fold(0i128, |n, b| {
            n.saturating_mul(10).saturating_add(i128::from(b - b'0'))
        });
    Ok(if negative { -magnitude } else { magnitude })
}

/// Python's `repr()` of a string: the error texts quote arguments as Gunicorn's do.
fn py_repr(s: &str) -> String {
    crate::telemetry::pyformat::py_repr(s, false)
}

/// Python's `str()` of a decoded JSON value.
fn py_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => py_value_repr(other),
    }
}

fn py_value_repr(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_string(),
            (_, Some(u), _) => u.to_string(),
            (_, _, Some(f)) => py_float(f),
            _ => n.to_string(),
        },
        Value::String(s) => py_repr(s),
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(py_value_repr).collect();
            format!("[{}]", inner.join(", "))
        }
        Value::Object(map) => py_dict_repr(map),
    }
}

fn py_dict_repr(map: &Map<String, Value>) -> String {
    let inner: Vec<String> = map
        .iter()
        .map(|(k, v)| format!("{}: {}", py_repr(k), py_value_repr(v)))
        .collect();
    format!("{{{}}}", inner.join(", "))
}

/// Python's `repr()` of a float: the shortest round-trip digits, positional for exponents
/// -4..16, else `d.ddde+XX`.
fn py_float(f: f64) -> String {
    if !f.is_finite() {
        return if f.is_nan() {
            "nan".into()
        } else if f > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        };
    }
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    if (-4..16).contains(&exp) {
        let point = exp + 1;
        let (int, frac) = if point <= 0 {
            (
                "0".to_string(),
                format!("{}{digits}", "0".repeat((-point) as usize)),
            )
        } else if point as usize >= digits.len() {
            (
                format!("{digits}{}", "0".repeat(point as usize - digits.len())),
                String::new(),
            )
        } else {
            (
                digits[..point as usize].to_string(),
                digits[point as usize..].to_string(),
            )
        };
        let frac = if frac.is_empty() { "0".into() } else { frac };
        format!("{sign}{int}.{frac}")
    } else {
        let rest = if digits.len() > 1 {
            format!(".{}", &digits[1..])
        } else {
            String::new()
        };
        let esign = if exp < 0 { '-' } else { '+' };
        format!("{sign}{}{rest}e{esign}{:02}", &digits[..1], exp.abs())
    }
}

fn py_type(v: &Value) -> &'static str {
    match v {
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        _ => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(command: &str, args: Value) -> Request {
        Request {
            id: json!(1),
            command: command.into(),
            args,
        }
    }

    #[test]
    fn words_follow_python() {
        assert_eq!(
            words(&req(
                " worker  add ",
                json!([2, "x y", true, null, 2.5, [1, "a"]])
            ))
            .unwrap(),
            ["worker", "add", "2", "x y", "True", "None", "2.5", "[1, 'a']"]
        );
        assert_eq!(words(&req("a", json!("bc"))).unwrap(), ["a", "b", "c"]);
        assert_eq!(words(&req("'a b' c", json!(0))).unwrap(), ["a b", "c"]);
        assert_eq!(
            words(&req("kill #1 a#b '#'", json!([]))).unwrap(),
            ["kill", "#1", "a#b", "#"]
        );
        assert_eq!(
            words(&req("  ", json!([]))).unwrap_err().text(),
            "Empty command"
        );
        assert_eq!(
            words(&req("a", json!(5))).unwrap_err().text(),
            "Command failed: 'int' object is not iterable"
        );
        assert_eq!(
            words(&req("'open", json!([]))).unwrap_err().text(),
            "Invalid argument: No closing quotation"
        );
        assert_eq!(
            words(&req("end\\", json!([]))).unwrap_err().text(),
            "Invalid argument: No escaped character"
        );
    }

    #[test]
    fn int_follows_python() {
        assert_eq!(py_int(" 2 ").unwrap(), 2);
        assert_eq!(py_int("-3").unwrap(), -3);
        assert_eq!(py_int("1_0").unwrap(), 10);
        assert_eq!(py_int("9".repeat(60).as_str()).unwrap(), i128::MAX);
        for bad in ["", "1__0", "_1", "1_", "2.5", "x", "+"] {
            assert!(py_int(bad).is_err(), "{bad}");
        }
        assert_eq!(
            py_int("x'y").unwrap_err().text(),
            "Invalid argument: invalid literal for int() with base 10: \"x'y\""
        );
    }

    #[test]
    fn floats_as_python_prints_them() {
        for (f, s) in [
            (2.0, "2.0"),
            (2.5, "2.5"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1e16, "1e+16"),
            (123456.789, "123456.789"),
            (-1.5e-7, "-1.5e-07"),
        ] {
            assert_eq!(py_float(f), s);
        }
    }

    #[test]
    fn frames() {
        let mut buf = encode(&json!({"command": "help"}));
        buf.extend_from_slice(&[0, 0]);
        match take_frame(&buf) {
            Frame::Request(r, used) => {
                assert_eq!((r.id, r.command.as_str()), (json!(0), "help"));
                assert_eq!(used, buf.len() - 2);
            }
            _ => panic!("not a request"),
        }
        assert!(matches!(take_frame(&buf[..5]), Frame::Incomplete));
        assert!(matches!(
            take_frame(&((MAX_MESSAGE as u32 + 1).to_be_bytes())),
            Frame::Drop
        ));
        assert!(matches!(take_frame(&encode(&json!([1]))), Frame::Drop));
        assert!(matches!(
            take_frame(&encode(&json!({"command": 1}))),
            Frame::Drop
        ));
    }
}
