//! The uWSGI protocol's request packet (what nginx's `uwsgi_pass` sends): a 4-byte header
//! (`modifier1`, which must be 0, the vars block's size as u16 little-endian, `modifier2`),
//! then the vars block, a sequence of `u16le keylen, key, u16le vallen, val`, then the body,
//! whose length is the `CONTENT_LENGTH` var.
//!
//! Owns: splitting a packet into its vars (at most `MAX_VARS`, as Gunicorn) and turning them
//! into a `RequestHead` plus the `GatewayVars` the gateway stated about the client and the
//! server. "Need more bytes" is `Ok(None)`, so a packet may arrive in any number of reads; a
//! wrong `modifier1` is refused from the first byte, the vars once their block (at most
//! 64 KiB, by the header's u16) is complete. Must not: touch sockets, decide who may send packets (the caller checks
//! `uwsgi_allow_ips`), or build an environ.

use crate::config::ParserConfig;
use crate::framing::BodyKind;
use crate::headers::{is_forbidden_value_byte, is_token};
use crate::pyrepr::{latin1, repr_str};
use crate::request::RequestHead;
use crate::uri::{percent_decode, split_request_uri};

/// The most vars a packet may carry (Gunicorn's `MAX_UWSGI_VARS`).
pub const MAX_VARS: usize = 1000;

const HEADER_LEN: usize = 4;

/// Why a packet is refused. `Display` is the text of the warning and the error page.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UwsgiError {
    /// `modifier1` names a packet type other than a WSGI request.
    #[error("Unsupported uWSGI modifier1: {0}")]
    UnsupportedModifier(u8),
    /// The vars block's lengths disagree with its size.
    #[error("Invalid uWSGI header: {0}")]
    Truncated(&'static str),
    #[error("Invalid uWSGI header: more than {MAX_VARS} vars")]
    TooManyVars,
    /// A key that is not printable ASCII, or a value the var cannot hold.
    #[error("Invalid uWSGI var {}: {reason}", repr_str(.key))]
    InvalidVar { key: String, reason: &'static str },
    #[error("Invalid uWSGI CONTENT_LENGTH: {}", repr_str(.0))]
    InvalidContentLength(String),
    /// The peer (this address) is not on `uwsgi_allow_ips`.
    #[error("uWSGI request from {} not allowed", repr_str(.0))]
    Forbidden(String),
}

impl UwsgiError {
    /// The class name Gunicorn's exception for the same fault has.
    pub fn class_name(&self) -> &'static str {
        match self {
            UwsgiError::UnsupportedModifier(_) => "UnsupportedModifier",
            UwsgiError::Forbidden(_) => "ForbiddenUWSGIRequest",
            _ => "InvalidUWSGIHeader",
        }
    }

    /// 400 for a malformed packet, 501 for a packet type this server does not implement,
    /// 403 for a peer not on the allow list (Gunicorn answers all three 500).
    pub fn status(&self) -> u16 {
        match self {
            UwsgiError::UnsupportedModifier(_) => 501,
            UwsgiError::Forbidden(_) => 403,
            _ => 400,
        }
    }

    pub fn reason(&self) -> &'static str {
        match self {
            UwsgiError::UnsupportedModifier(_) => "Not Implemented",
            UwsgiError::Forbidden(_) => "Forbidden",
            _ => "Bad Request",
        }
    }
}

impl From<UwsgiError> for crate::error::ParseError {
    fn from(e: UwsgiError) -> Self {
        crate::error::ParseError::Uwsgi(e)
    }
}

/// What the gateway said about the client and the server, beyond the request itself. The
/// gateway is a proxy on `uwsgi_allow_ips`, so these are taken as the truth about the client
/// (as a trusted PROXY header's addresses are).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GatewayVars {
    /// None when the var is missing or empty, like the server and protocol vars below.
    pub remote_addr: Option<String>,
    pub remote_port: Option<String>,
    pub server_name: Option<String>,
    pub server_port: Option<String>,
    /// `SERVER_PROTOCOL`: the client's protocol as the gateway saw it (`HTTP/2.0` ...).
    pub protocol: Option<String>,
    pub script_name: Option<String>,
    /// The other vars (`REQUEST_URI`, `DOCUMENT_ROOT`, `HTTPS`, a `uwsgi_param` of the
    /// deployment's own ...), in arrival order, for the app to see as the gateway named them.
    pub extra: Vec<(String, String)>,
}

/// One var as received: the key checked, both sides latin-1 text (PEP 3333's bytes-as-str).
type Var = (String, String);

fn u16_le(bytes: &[u8]) -> usize {
    usize::from(u16::from_le_bytes([bytes[0], bytes[1]]))
}

/// A whole packet's vars and the bytes its header and vars took; `Ok(None)` until the vars
/// block has arrived. A wrong `modifier1` is refused from the first byte.
pub fn parse_packet(buf: &[u8]) -> Result<Option<(Vec<Var>, usize)>, UwsgiError> {
    let Some(&modifier1) = buf.first() else {
        return Ok(None);
    };
    if modifier1 != 0 {
        return Err(UwsgiError::UnsupportedModifier(modifier1));
    }
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    let end = HEADER_LEN + u16_le(&buf[1..3]);
    if buf.len() < end {
        return Ok(None);
    }
    Ok(Some((parse_vars(&buf[HEADER_LEN..end])?, end)))
}

/// The length-prefixed item at `*pos`, moving `*pos` past it; the messages name what was
/// cut short.
fn take<'b>(
    block: &'b [u8],
    pos: &mut usize,
    what_len: &'static str,
    what: &'static str,
) -> Result<&'b [u8], UwsgiError> {
    let len_end = *pos + 2;
    let len = block
        .get(*pos..len_end)
        .ok_or(UwsgiError::Truncated(what_len))?;
    let end = len_end + u16_le(len);
    let item = block.get(len_end..end).ok_or(UwsgiError::Truncated(what))?;
    *pos = end;
    Ok(item)
}

/// Split a complete vars block.
fn parse_vars(block: &[u8]) -> Result<Vec<Var>, UwsgiError> {
    let mut vars = Vec::new();
    let mut pos = 0;
    while pos < block.len() {
        if vars.len() == MAX_VARS {
            return Err(UwsgiError::TooManyVars);
        }
        let key = take(
            block,
            &mut pos,
            "the vars block ends inside a key's length",
            "a key runs past the vars block",
        )?;
        // Checked before the value is taken: the fault is in the key, whatever follows.
        if key.is_empty() || !key.iter().all(|b| (0x21..=0x7e).contains(b)) {
            return Err(UwsgiError::InvalidVar {
                key: latin1(key),
                reason: "a key must be printable ASCII",
            });
        }
        let key = latin1(key);
        let value = take(
            block,
            &mut pos,
            "the vars block ends inside a value's length",
            "a value runs past the vars block",
        )?;
        vars.push((key, latin1(value)));
    }
    Ok(vars)
}

/// `HTTPS` says https: on, 1 or true, in any case (what nginx's `$https` and Apache's
/// mod_uwsgi send).
fn https_on(value: &str) -> bool {
    ["on", "1", "true"]
        .iter()
        .any(|v| value.eq_ignore_ascii_case(v))
}

fn non_empty(value: String) -> Option<String> {
    (!value.is_empty()).then_some(value)
}

fn invalid(key: &str, reason: &'static str) -> UwsgiError {
    UwsgiError::InvalidVar {
        key: key.to_string(),
        reason,
    }
}

/// Content-Length as in an HTTP head: ASCII digits only. Empty means no body (nginx's
/// `$content_length` for a request without one).
fn content_length(value: &str) -> Result<u64, UwsgiError> {
    let bad = || UwsgiError::InvalidContentLength(value.to_string());
    if !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    if value.is_empty() {
        return Ok(0);
    }
    value.parse::<u64>().map_err(|_| bad())
}

/// The header an `HTTP_*` var carries: `HTTP_X_FOO` is `X-FOO`.
fn header_of(key: &str, value: &str) -> Result<(String, String), UwsgiError> {
    let name = &key["HTTP_".len()..];
    if !is_token(name.as_bytes()) {
        return Err(invalid(key, "not a header name"));
    }
    if value
        .chars()
        .any(|c| u8::try_from(c).is_ok_and(is_forbidden_value_byte))
    {
        return Err(invalid(
            key,
            "a header value may not hold control characters",
        ));
    }
    Ok((
        name.to_ascii_uppercase().replace('_', "-"),
        value.to_string(),
    ))
}

/// Vars that name the request or its peers: they reach the environ and the access log as
/// they are, where a control character could only forge or split a line.
const IDENTITY_VARS: &[&str] = &[
    "REQUEST_URI",
    "QUERY_STRING",
    "REMOTE_ADDR",
    "REMOTE_PORT",
    "SERVER_NAME",
    "SERVER_PORT",
    "SCRIPT_NAME",
];

fn no_controls(key: &str, value: &str) -> Result<(), UwsgiError> {
    if value.chars().any(|c| c < ' ' || c == '\u{7f}') {
        return Err(invalid(key, "control characters are not allowed"));
    }
    Ok(())
}

/// PATH_INFO arrives decoded, so a client's `%0A` is a real newline there; the
/// request-target rebuilt from it (when the gateway sends no REQUEST_URI) encodes it again.
fn escape_controls(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if c < ' ' || c == '\u{7f}' {
            out.push_str(&format!("%{:02X}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// Turn a packet's vars into a request head. Unlike an HTTP head, PATH_INFO arrives already
/// percent-decoded (the gateway decoded the URL), so `path` is kept as sent; `uri` is the
/// `REQUEST_URI` var, the request-target as the client sent it.
pub fn head_from_vars(vars: Vec<Var>, cfg: &ParserConfig) -> Result<RequestHead, UwsgiError> {
    let mut gw = GatewayVars::default();
    let mut method = None;
    let mut path = None;
    let mut query = None;
    let mut request_uri = None;
    let mut https = false;
    let mut schemes: [Option<Var>; 3] = Default::default();
    let mut length = 0;
    let mut headers = Vec::new();
    for (key, value) in vars {
        if IDENTITY_VARS.contains(&key.as_str()) {
            no_controls(&key, &value)?;
        }
        // A repeated var replaces the earlier one (a dict, as in uWSGI and Gunicorn);
        // repeated HTTP_* vars are repeated headers.
        match key.as_str() {
            "REQUEST_METHOD" => {
                if !is_token(value.as_bytes()) {
                    return Err(invalid(&key, "not an HTTP method"));
                }
                method = Some(value);
            }
            "PATH_INFO" => path = Some(value),
            "QUERY_STRING" => query = Some(value),
            "CONTENT_LENGTH" => {
                length = content_length(&value)?;
                headers.retain(|(n, _): &(String, String)| n != "CONTENT-LENGTH");
                if !value.is_empty() {
                    headers.push(("CONTENT-LENGTH".to_string(), value));
                }
            }
            "CONTENT_TYPE" => {
                headers.retain(|(n, _): &(String, String)| n != "CONTENT-TYPE");
                if !value.is_empty() {
                    headers.push(("CONTENT-TYPE".to_string(), value));
                }
            }
            // CGI carries these two as CONTENT_*; a second copy could only contradict them.
            "HTTP_CONTENT_LENGTH" | "HTTP_CONTENT_TYPE" => {}
            k if k.starts_with("HTTP_") => headers.push(header_of(k, &value)?),
            // Empty says nothing (nginx's `$server_name` without a `server_name`).
            "REMOTE_ADDR" => gw.remote_addr = non_empty(value),
            "REMOTE_PORT" => gw.remote_port = non_empty(value),
            "SERVER_NAME" => gw.server_name = non_empty(value),
            "SERVER_PORT" => gw.server_port = non_empty(value),
            "SCRIPT_NAME" => gw.script_name = Some(value),
            "SERVER_PROTOCOL" => {
                if !value.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
                    return Err(invalid(&key, "not a protocol name"));
                }
                gw.protocol = non_empty(value);
            }
            // The scheme vars, most specific first: wsgi.url_scheme (Gunicorn), UWSGI_SCHEME
            // (uWSGI), REQUEST_SCHEME (nginx's uwsgi_params, also shown to the app).
            "wsgi.url_scheme" => schemes[0] = Some((key, value)),
            "UWSGI_SCHEME" => schemes[1] = Some((key, value)),
            "REQUEST_SCHEME" => {
                schemes[2] = Some((key.clone(), value.clone()));
                gw.extra.push((key, value));
            }
            _ => {
                match key.as_str() {
                    "HTTPS" => https = https_on(&value),
                    "REQUEST_URI" => request_uri = Some(value.clone()),
                    _ => {}
                }
                // wsgi.* keys are the server's to set (PEP 3333).
                if !key.starts_with("wsgi.") {
                    gw.extra.push((key, value));
                }
            }
        }
    }
    let scheme = if https {
        "https"
    } else if let Some((key, value)) = schemes.into_iter().flatten().next() {
        if value.eq_ignore_ascii_case("https") {
            "https"
        } else if value.eq_ignore_ascii_case("http") {
            "http"
        } else {
            return Err(invalid(&key, "the scheme must be http or https"));
        }
    } else if cfg.is_ssl {
        "https"
    } else {
        "http"
    };
    // Without PATH_INFO or QUERY_STRING the request-target still says them.
    let target = request_uri
        .as_deref()
        .filter(|u| !u.is_empty())
        .and_then(|u| split_request_uri(u).ok());
    let path = path.unwrap_or_else(|| match &target {
        Some(t) => latin1(&percent_decode(&t.path)),
        None => "/".to_string(),
    });
    let query = query.unwrap_or_else(|| target.map(|t| t.query).unwrap_or_default());
    let uri = match request_uri.filter(|u| !u.is_empty()) {
        Some(u) => u,
        None if query.is_empty() => escape_controls(&path),
        None => format!("{}?{query}", escape_controls(&path)),
    };
    Ok(RequestHead {
        method: method.unwrap_or_else(|| "GET".to_string()),
        uri,
        path,
        query,
        fragment: String::new(),
        // The response goes back as HTTP/1.1, whatever the client spoke to the gateway.
        version: (1, 1),
        headers,
        scheme,
        // The gateway answers `Expect: 100-continue` itself.
        expect_continue: false,
        body: BodyKind::Length(length),
        // One request per connection: nginx's uwsgi module never reuses one.
        must_close: true,
        gateway: Some(Box::new(gw)),
    })
}

/// Parse a whole request packet: the head and the bytes it took (the body follows), or
/// `Ok(None)` until the vars have arrived.
pub fn parse_uwsgi(
    buf: &[u8],
    cfg: &ParserConfig,
) -> Result<Option<(RequestHead, usize)>, UwsgiError> {
    match parse_packet(buf)? {
        None => Ok(None),
        Some((vars, used)) => Ok(Some((head_from_vars(vars, cfg)?, used))),
    }
}

#[cfg(test)]
#[path = "uwsgi_tests.rs"]
mod tests;
