//! Request heads: the optional leading CRLF, the request line and the header section, as
//! Gunicorn 27's `Request._parse_python` and `parse_request_line` handle them.
//!
//! "Need more bytes" is a value (`Ok(None)`), returned only while more bytes could still make the
//! head valid. This module owns the request line rules; field rules live in `headers` and body
//! framing in `framing`. It does not read sockets or decode bodies.

use crate::config::{Limits, ParserConfig};
use crate::error::{HttpVersionRepr, ParseError};
use crate::framing::{body_framing, BodyKind};
use crate::headers::{
    find, has_bare_lf_from, is_token, is_token_byte, visible, walk_fields, FieldRules, FieldWalk,
};
use crate::pyrepr::latin1;
use crate::uri::split_request_uri;
use crate::uwsgi::GatewayVars;

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    pub method: String,
    /// The request-target exactly as received (`RAW_URI`).
    pub uri: String,
    pub path: String,
    pub query: String,
    pub fragment: String,
    pub version: (u8, u8),
    /// `(UPPER-CASED name, value)` in wire order; values latin-1 decoded and stripped of SP/HTAB;
    /// underscore names already handled per `header_map`.
    pub headers: Vec<(String, String)>,
    /// `"https"` when the listener is TLS or a trusted secure-scheme header says so.
    pub scheme: &'static str,
    /// `Expect: 100-continue` on HTTP/1.1+: send `HTTP/1.1 100 Continue` before the app runs.
    pub expect_continue: bool,
    pub body: BodyKind,
    /// A gzip/deflate/compress transfer coding was used, or a uWSGI packet carried the
    /// request: close after this request.
    pub must_close: bool,
    /// What a uWSGI gateway said beyond the request (None for an HTTP head).
    pub gateway: Option<Box<GatewayVars>>,
}

impl RequestHead {
    /// Gunicorn's `Message.should_close`: forced closes and CONNECT close; otherwise the first
    /// Connection header decides, and without one HTTP/1.0 closes.
    pub fn should_close(&self) -> bool {
        if self.must_close || self.method == "CONNECT" {
            return true;
        }
        if let Some((_, value)) = self.headers.iter().find(|(name, _)| name == "CONNECTION") {
            let value = value.trim_matches([' ', '\t']).to_ascii_lowercase();
            if value == "close" {
                return true;
            }
            if value == "keep-alive" {
                return false;
            }
        }
        self.version <= (1, 0)
    }

    /// The first value of a header (name upper-cased).
    pub fn header(&self, upper_name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(name, _)| name == upper_name)
            .map(|(_, value)| value.as_str())
    }
}

/// The request line's parts.
#[derive(Debug, Clone)]
struct RequestLine {
    method: String,
    uri: String,
    path: String,
    query: String,
    fragment: String,
    version: (u8, u8),
}

fn method_has_gunicorn_badchar(method: &[u8]) -> bool {
    method.iter().any(|&b| b.is_ascii_lowercase() || b == b'#')
}

fn check_method(method: &[u8], cfg: &ParserConfig) -> Result<(), ParseError> {
    let bad = ParseError::InvalidRequestMethod(latin1(method));
    if !cfg.permit_unconventional_http_method
        && (method_has_gunicorn_badchar(method) || !(3..=20).contains(&method.len()))
    {
        return Err(bad);
    }
    if !is_token(method) {
        return Err(bad);
    }
    Ok(())
}

/// A method that has not ended yet: refused once no continuation can make it acceptable.
fn check_method_prefix(method: &[u8], cfg: &ParserConfig) -> Result<(), ParseError> {
    let bad = !method.iter().all(|&b| is_token_byte(b))
        || (!cfg.permit_unconventional_http_method
            && (method_has_gunicorn_badchar(method) || method.len() > 20));
    if bad {
        return Err(ParseError::InvalidRequestMethod(latin1(method)));
    }
    Ok(())
}

fn is_target_byte(b: u8) -> bool {
    (0x21..=0x7e).contains(&b)
}

/// Target rules after the method is known; returns the split parts.
fn check_target(
    method: &str,
    target: &[u8],
    line: &[u8],
) -> Result<(String, String, String), ParseError> {
    let bad = || ParseError::InvalidRequestLine(latin1(line));
    // RFC 9112 3.2: printable ASCII only; the rest must be percent-encoded.
    if target.is_empty() || !target.iter().all(|&b| is_target_byte(b)) {
        return Err(bad());
    }
    let uri = latin1(target);
    if uri == "*" && method != "OPTIONS" {
        return Err(bad());
    }
    // Anything but origin-, absolute- or asterisk-form is authority-form, for CONNECT only.
    if method != "CONNECT" && uri != "*" && !uri.starts_with('/') && !uri.contains("://") {
        return Err(bad());
    }
    let parts = split_request_uri(&uri).map_err(|_| bad())?;
    Ok((parts.path, parts.query, parts.fragment))
}

/// `HTTP/d.d` where each d is one ASCII digit.
fn parse_version(text: &[u8]) -> Option<(u8, u8)> {
    match text {
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            Some((major - b'0', minor - b'0'))
        }
        _ => None,
    }
}

fn check_version_range(version: (u8, u8), cfg: &ParserConfig) -> Result<(), ParseError> {
    if !((1, 0)..(2, 0)).contains(&version) && !cfg.permit_unconventional_http_version {
        return Err(ParseError::InvalidHTTPVersion(HttpVersionRepr::Tuple(
            version.0, version.1,
        )));
    }
    Ok(())
}

fn parse_request_line(line: &[u8], cfg: &ParserConfig) -> Result<RequestLine, ParseError> {
    let mut bits = line.splitn(3, |&b| b == b' ');
    let (Some(method), Some(target), Some(version)) = (bits.next(), bits.next(), bits.next())
    else {
        return Err(ParseError::InvalidRequestLine(latin1(line)));
    };
    check_method(method, cfg)?;
    let mut method = latin1(method);
    if cfg.casefold_http_method {
        method.make_ascii_uppercase();
    }
    let (path, query, fragment) = check_target(&method, target, line)?;
    let parsed = parse_version(version)
        .ok_or_else(|| ParseError::InvalidHTTPVersion(HttpVersionRepr::Text(latin1(version))))?;
    check_version_range(parsed, cfg)?;
    Ok(RequestLine {
        method,
        uri: latin1(target),
        path,
        query,
        fragment,
        version: parsed,
    })
}

/// Checks a request line whose CRLF has not arrived, deciding only what later bytes cannot change.
fn check_request_line_prefix(line: &[u8], cfg: &ParserConfig) -> Result<(), ParseError> {
    let Some(first_space) = line.iter().position(|&b| b == b' ') else {
        return check_method_prefix(line, cfg);
    };
    let method_bytes = &line[..first_space];
    check_method(method_bytes, cfg)?;
    let rest = &line[first_space + 1..];
    let Some(second_space) = rest.iter().position(|&b| b == b' ') else {
        if !rest.iter().all(|&b| is_target_byte(b)) {
            return Err(ParseError::InvalidRequestLine(latin1(line)));
        }
        return Ok(());
    };
    let mut method = latin1(method_bytes);
    if cfg.casefold_http_method {
        method.make_ascii_uppercase();
    }
    check_target(&method, &rest[..second_space], line)?;
    let version = &rest[second_space + 1..];
    const SHAPE: &[u8] = b"HTTP/d.d";
    let fits = version.len() <= SHAPE.len()
        && version.iter().zip(SHAPE).all(|(&b, &s)| match s {
            b'd' => b.is_ascii_digit(),
            _ => b == s,
        });
    if !fits {
        return Err(ParseError::InvalidHTTPVersion(HttpVersionRepr::Text(
            latin1(version),
        )));
    }
    if let Some(parsed) = parse_version(version) {
        check_version_range(parsed, cfg)?;
    }
    Ok(())
}

/// Where the request line starts: one CRLF before it is ignored (RFC 9112 2.2). `None` while a
/// lone CR leaves that undecided.
fn request_line_start(buf: &[u8]) -> Option<usize> {
    match buf {
        [] | [b'\r'] => None,
        [b'\r', b'\n', ..] => Some(2),
        _ => Some(0),
    }
}

/// Parses one request head from the start of `buf`.
///
/// `Ok(None)`: more bytes are needed, and more bytes could still make the head valid.
/// `Ok(Some((head, consumed)))`: the head is complete; its first `consumed` bytes (the optional
/// leading CRLF included) belong to it. `peer_trusted` governs `secure_scheme_headers` and
/// `forwarder_headers` as Gunicorn's HeaderPolicy does.
///
/// This re-reads `buf` from the start on every call; a connection that receives a head in many
/// small pieces should keep a [`HeadParser`] instead.
pub fn parse_head(
    buf: &[u8],
    cfg: &ParserConfig,
    peer_trusted: bool,
) -> Result<Option<(RequestHead, usize)>, ParseError> {
    HeadParser::new().parse(buf, cfg, peer_trusted)
}

/// The request line once it is complete, and progress through the field section.
#[derive(Debug, Clone)]
struct Progress {
    line: RequestLine,
    fields_start: usize,
    walk: FieldWalk,
    /// Bytes of the field section already searched for its end and for bare LFs.
    scanned: usize,
}

/// [`parse_head`] for a head arriving in pieces: it remembers what it already judged, so each
/// call costs about the new bytes rather than the whole buffer (a slowly fed head is not
/// quadratic work).
///
/// Between calls `buf` must hold the same bytes, possibly with more appended. After a call that
/// returns a head or an error the parser is reset, ready for the next request.
#[derive(Debug, Clone, Default)]
pub struct HeadParser {
    progress: Option<Progress>,
}

impl HeadParser {
    pub fn new() -> Self {
        HeadParser { progress: None }
    }

    /// Forgets any partial head (for a new request or a rewritten buffer).
    pub fn reset(&mut self) {
        self.progress = None;
    }

    /// See [`parse_head`].
    pub fn parse(
        &mut self,
        buf: &[u8],
        cfg: &ParserConfig,
        peer_trusted: bool,
    ) -> Result<Option<(RequestHead, usize)>, ParseError> {
        let result = self.advance(buf, cfg, peer_trusted);
        if !matches!(result, Ok(None)) {
            self.reset();
        }
        result
    }

    fn advance(
        &mut self,
        buf: &[u8],
        cfg: &ParserConfig,
        peer_trusted: bool,
    ) -> Result<Option<(RequestHead, usize)>, ParseError> {
        let limits = cfg.limits();
        if self
            .progress
            .as_ref()
            .is_some_and(|p| buf.len() < p.fields_start)
        {
            self.reset();
        }
        if self.progress.is_none() {
            let Some((line, fields_start)) = parse_line(buf, cfg, &limits)? else {
                return Ok(None);
            };
            self.progress = Some(Progress {
                line,
                fields_start,
                walk: FieldWalk::new(if cfg.is_ssl { "https" } else { "http" }),
                scanned: 0,
            });
        }
        let Some(mut progress) = self.progress.take() else {
            return Ok(None);
        };
        match advance_fields(&mut progress, buf, cfg, &limits, peer_trusted)? {
            None => {
                self.progress = Some(progress);
                Ok(None)
            }
            Some(consumed) => finish(progress, consumed, cfg),
        }
    }
}

/// Finds and parses the request line; `Ok(None)` while its CRLF has not arrived.
fn parse_line(
    buf: &[u8],
    cfg: &ParserConfig,
    limits: &Limits,
) -> Result<Option<(RequestLine, usize)>, ParseError> {
    let Some(start) = request_line_start(buf) else {
        return Ok(None);
    };
    let rest = &buf[start..];
    let line_end = find(rest, b"\r\n");
    // What can be judged: the line, less a final CR that may start its CRLF.
    let shown = match line_end {
        Some(len) => &rest[..len],
        None => visible(rest, true),
    };
    // The bytes are judged in wire order up to the first one past the limit, so that the
    // verdict is the same whether the line came whole or cut anywhere: a bare LF, then a
    // prefix that cannot start a request line, then the length.
    let limit = limits.request_line;
    let over = limit > 0 && shown.len() > limit;
    let judged = if over { &shown[..=limit] } else { shown };
    if judged.contains(&b'\n') {
        return Err(ParseError::InvalidRequestLine(
            "bare LF as line terminator".to_string(),
        ));
    }
    if over {
        check_request_line_prefix(&shown[..limit], cfg)?;
    } else if line_end.is_none() {
        check_request_line_prefix(shown, cfg)?;
    }
    if over {
        return Err(ParseError::LimitRequestLine {
            size: line_end.unwrap_or(rest.len()),
            max: limit,
        });
    }
    let Some(line_len) = line_end else {
        // Cut right after its CR, the line can only end as it is.
        if rest.ends_with(b"\r") && !shown.is_empty() {
            parse_request_line(shown, cfg)?;
        }
        return Ok(None);
    };
    let line = parse_request_line(&rest[..line_len], cfg)?;
    Ok(Some((line, start + line_len + 2)))
}

/// Judges the field section as far as it has arrived; `Some(consumed)` once the head is complete.
fn advance_fields(
    progress: &mut Progress,
    buf: &[u8],
    cfg: &ParserConfig,
    limits: &Limits,
    peer_trusted: bool,
) -> Result<Option<usize>, ParseError> {
    let data = &buf[progress.fields_start..];
    let trusted_secure: &[(String, String)] = if peer_trusted {
        &cfg.secure_scheme_headers
    } else {
        &[]
    };
    let trusted_forwarders: &[String] = if peer_trusted {
        &cfg.forwarder_headers
    } else {
        &[]
    };
    let version = progress.line.version;
    let rules = FieldRules {
        strip_header_spaces: cfg.strip_header_spaces,
        permit_obsolete_folding: cfg.permit_obsolete_folding,
        header_map: cfg.header_map,
        limits: *limits,
        from_trailer: false,
        version,
        secure_scheme_headers: trusted_secure,
        forwarder_headers: trusted_forwarders,
    };
    let walk = &mut progress.walk;
    let consumed = if data.starts_with(b"\r\n") {
        progress.fields_start + 2
    } else {
        // The end can only be found among new bytes and the three before them.
        let from = progress.scanned.saturating_sub(3);
        if let Some(end) = find(&data[from..], b"\r\n\r\n").map(|at| at + from) {
            walk_fields(&data[..end], true, &rules, walk)?;
            progress.fields_start + end + 4
        } else {
            // The fields first: a fault in a line before a bare LF comes first on the wire.
            walk_fields(data, false, &rules, walk)?;
            // Every head line ends with CRLF; a bare LF means it never ends the way it is read.
            if has_bare_lf_from(data, progress.scanned) {
                return Err(ParseError::InvalidHeader(
                    "bare LF as line terminator".to_string(),
                ));
            }
            if data.len() > limits.max_buffer_headers {
                return Err(ParseError::LimitRequestHeaders("max buffer headers"));
            }
            progress.scanned = data.len();
            return Ok(None);
        }
    };
    Ok(Some(consumed))
}

/// Builds the head once its section is complete.
fn finish(
    progress: Progress,
    consumed: usize,
    cfg: &ParserConfig,
) -> Result<Option<(RequestHead, usize)>, ParseError> {
    let Progress { line, walk, .. } = progress;
    let framing = body_framing(&walk.fields, line.version)?;
    // RFC 9112 3.2; HTTP/1.0 predates Host and keeps working without it.
    if line.version >= (1, 1) && !walk.state.seen_host() && !cfg.permit_missing_host {
        return Err(ParseError::MissingHeader("HOST".to_string()));
    }
    let head = RequestHead {
        method: line.method,
        uri: line.uri,
        path: line.path,
        query: line.query,
        fragment: line.fragment,
        version: line.version,
        headers: walk.fields,
        scheme: walk.state.scheme,
        expect_continue: walk.state.expect_continue,
        body: framing.body,
        must_close: framing.must_close,
        gateway: None,
    };
    Ok(Some((head, consumed)))
}

/// The error for a connection that ended while `buf` held an unfinished head: `None` when
/// nothing was received (Gunicorn closes silently), otherwise `NoMoreData` with the bytes of the
/// stage that was waiting, as Gunicorn reports them.
pub fn head_eof_error(buf: &[u8]) -> Option<ParseError> {
    if buf.is_empty() {
        return None;
    }
    let start = request_line_start(buf).unwrap_or(0);
    let rest = &buf[start..];
    let pending = match find(rest, b"\r\n") {
        Some(line_len) => &rest[line_len + 2..],
        None => rest,
    };
    Some(ParseError::NoMoreData(Some(pending.to_vec())))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The status a head gets fed whole, one byte at a time, and cut after every LF.
    fn statuses(wire: &[u8]) -> [Option<u16>; 3] {
        statuses_with(wire, &ParserConfig::default())
    }

    /// Each head gets its status whole, byte by byte and cut at every LF alike.
    fn assert_one_verdict(cases: &[(&[u8], u16)], cfg: &ParserConfig) {
        for &(wire, want) in cases {
            assert_eq!(
                statuses_with(wire, cfg),
                [Some(want); 3],
                "{}",
                String::from_utf8_lossy(wire)
            );
        }
    }

    fn statuses_with(wire: &[u8], cfg: &ParserConfig) -> [Option<u16>; 3] {
        let cfg = cfg.clone();
        let whole = parse_head(wire, &cfg, true).err().map(|e| e.status());
        let fed = |ends: Vec<usize>| {
            let mut parser = HeadParser::new();
            for end in ends {
                match parser.parse(&wire[..end], &cfg, true) {
                    Ok(None) => {}
                    Ok(Some(_)) => return None,
                    Err(e) => return Some(e.status()),
                }
            }
            None
        };
        let bytes = fed((1..=wire.len()).collect());
        let mut at_lf: Vec<usize> = (0..wire.len())
            .filter(|&i| wire[i] == b'\n')
            .map(|i| i + 1)
            .collect();
        at_lf.push(wire.len());
        [whole, bytes, fed(at_lf)]
    }

    /// Found in review: fields settled by their CRLF were refused with 417 or 501 when cut
    /// there, while the whole head was a 400 for the folded line after them; and framing judged
    /// per read let a later malformed line decide the status only when it came in the same read.
    /// Now the first fault in wire order decides, however the head is cut.
    #[test]
    fn the_status_does_not_depend_on_the_cut() {
        assert_one_verdict(
            &[
                // The first fault in wire order decides: the field's own, then the folding.
                (
                    &b"GET / HTTP/1.1\r\nHost: a\r\nExpect: foo\r\n bar\r\n\r\n"[..],
                    417,
                ),
                (
                    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: foo\r\n bar\r\n\r\n",
                    501,
                ),
                (
                    b"GET / HTTP/1.1\r\nHost: a\r\nX: ok\r\n bar\r\nExpect: foo\r\n\r\n",
                    400,
                ),
                (
                    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: foo\r\nBad Name: x\r\n\r\n",
                    501,
                ),
                (
                    b"GET / HTTP/1.1\r\nHost: a\r\nExpect: foo\r\nX: y\r\n\r\n",
                    417,
                ),
                (
                    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\nBad Name: y\r\n\r\n",
                    400,
                ),
                (b"GET / HTTP/1.1\r\nHost: a b\r\nExpect: foo\r\n\r\n", 400),
                // Found by the fuzz target: the bare LF after the line was judged first.
                (
                    b"POST /c HTTP/1.0\r\nTransfer-Encoding: chunked,\r\n\n",
                    501,
                ),
            ],
            &ParserConfig::default(),
        );
    }

    /// Found by the `request_head` fuzz target: with a small `limit_request_line`, a line with
    /// a bare LF past the limit was a 400 whole and a 414 cut at the limit; and a prefix that
    /// cannot start a request line was a 400 when cut before the limit and a 414 whole. The
    /// bytes are now judged in wire order up to the first one past the limit.
    #[test]
    fn a_long_request_line_gets_one_verdict_however_it_is_cut() {
        let cfg = ParserConfig {
            limit_request_line: 8,
            ..ParserConfig::default()
        };
        assert_one_verdict(
            &[
                (&b"POSD un\0\xff\xff\n wrlod"[..], 400),
                (b"POSD unxx\xff\xff\n wrlod", 414),
                (b"GET /abcdefgh HTTP/1.1\r\nHost: a\r\n\r\n", 414),
                (b"GET /abc\n", 400),
            ],
            &cfg,
        );
    }

    /// Found by the `request_head` fuzz target: a field line over `limit_request_field_size`
    /// with a bad byte further on was a 431 cut early and a 400 whole. The size comes first
    /// only when it was exceeded before the bad byte.
    #[test]
    fn a_long_field_line_gets_one_verdict_however_it_is_cut() {
        let cfg = ParserConfig {
            limit_request_field_size: 4,
            ..ParserConfig::default()
        };
        assert_eq!(
            statuses_with(b"POST /p HTTP/1.6\r\nTransfev-\xff\0", &cfg),
            [Some(431); 3]
        );
        let cfg = ParserConfig {
            limit_request_field_size: 12,
            ..ParserConfig::default()
        };
        assert_one_verdict(
            &[
                (
                    &b"POST /p HTTP/1.1\r\nHost: a\r\nT\xffansfer: x\r\n\r\n"[..],
                    400,
                ),
                (
                    b"POST /p HTTP/1.1\r\nHost: a\r\nX: abcdefghijk\x01\r\n\r\n",
                    431,
                ),
                (
                    b"POST /p HTTP/1.1\r\nHost: a\r\nX:\x01bcdefghijkl\r\n\r\n",
                    400,
                ),
            ],
            &cfg,
        );
    }

    /// A line cut right after its CR can only be completed by LF: judged as it stands.
    #[test]
    fn a_line_cut_after_its_cr_is_judged_as_it_stands() {
        let cfg = ParserConfig::default();
        for wire in [&b"GET /\r"[..], b"GET / HTTP/1.1\r\nHost: a\r\nNocolon\r"] {
            let got = parse_head(wire, &cfg, true).map_err(|e| e.status());
            assert_eq!(got, Err(400), "{}", String::from_utf8_lossy(wire));
            // Fed one byte at a time too (the line's tail is then extended, not re-walked).
            assert_eq!(
                statuses(wire)[1],
                Some(400),
                "{}",
                String::from_utf8_lossy(wire)
            );
        }
        for wire in [&b"GET / HTTP/1.1\r"[..], b"GET / HTTP/1.1\r\nHost: a\r"] {
            assert_eq!(parse_head(wire, &cfg, true), Ok(None));
        }
    }
}
