//! The response side of Gunicorn 27's `http/wsgi.py Response`: status and header validation,
//! header filtering, the head's exact byte layout, and chunk framing.
//!
//! This module encodes; it does not choose keep-alive or write to sockets. The server calls
//! these in Gunicorn's order: `validate_status`, `process_headers`, the no-body rules, then
//! `encode_head` and `encode_chunk`.

use crate::error::ResponseError;
use crate::headers::is_token;
use crate::pyrepr::{push_latin1, py_int};

/// The last chunk of a chunked response (trailers are never sent on HTTP/1).
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// Validates the status passed to `start_response` against
/// `[0-9]{3}(?: [\t \x21-\x7e\x80-\xff]*)?` and returns the code: `"200"` and `"200 OK"` pass,
/// `"20 OK"` and `"200\tOK"` do not (Gunicorn raises ValueError, a 500).
pub fn validate_status(status: &str) -> Result<u16, ResponseError> {
    let invalid = || ResponseError::InvalidStatus(status.to_string());
    let bytes = status.as_bytes();
    if bytes.len() < 3 || !bytes[..3].iter().all(u8::is_ascii_digit) {
        return Err(invalid());
    }
    let reason = &status[3..];
    if !reason.is_empty() {
        let Some(text) = reason.strip_prefix(' ') else {
            return Err(invalid());
        };
        if !text.chars().all(is_reason_char) {
            return Err(invalid());
        }
    }
    Ok(bytes[..3]
        .iter()
        .fold(0u16, |acc, &b| acc * 10 + u16::from(b - b'0')))
}

fn is_reason_char(c: char) -> bool {
    matches!(u32::from(c), 0x09 | 0x20 | 0x21..=0x7e | 0x80..=0xff)
}

/// A response header name must be an RFC 9110 token.
pub fn valid_header_name(name: &str) -> bool {
    is_token(name.as_bytes())
}

/// A response header value may hold SP, HTAB, visible ASCII and latin-1 obs-text only (so never
/// CR or LF).
pub fn valid_header_value(value: &str) -> bool {
    value.chars().all(is_reason_char)
}

/// Headers Gunicorn never passes through from the application: the hop-by-hop set plus `server`
/// and `date`, which it writes itself. Takes the lower-cased name.
pub fn is_hop_by_hop(lower_name: &str) -> bool {
    matches!(
        lower_name,
        "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailers"
            | "transfer-encoding"
            | "upgrade"
            | "server"
            | "date"
    )
}

/// The application's headers after Gunicorn's `process_headers`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResponseHeaders {
    /// The headers to send, in order, values stripped of SP/HTAB, hop-by-hop ones removed
    /// (except `Upgrade: websocket`).
    pub headers: Vec<(String, String)>,
    /// The last Content-Length as Python's `int()` read it (it may be negative; Gunicorn then
    /// sends no body bytes at all).
    pub content_length: Option<i64>,
    /// The application said `Connection: upgrade`.
    pub upgrade: bool,
}

impl ResponseHeaders {
    /// Removes Content-Length for 1xx and 204 responses, which must not carry one.
    pub fn drop_content_length(&mut self) {
        self.headers
            .retain(|(name, _)| !name.eq_ignore_ascii_case("content-length"));
        self.content_length = None;
    }
}

/// Validates and filters the application's headers as `Response.process_headers` does.
pub fn process_headers(headers: &[(String, String)]) -> Result<ResponseHeaders, ResponseError> {
    let mut out = ResponseHeaders::default();
    for (name, value) in headers {
        if !valid_header_name(name) {
            return Err(ResponseError::InvalidHeaderName(name.clone()));
        }
        if !valid_header_value(value) {
            return Err(ResponseError::InvalidHeaderValue(name.clone()));
        }
        let value = value.trim_matches([' ', '\t']).to_string();
        let lower = name.to_ascii_lowercase();
        if lower == "content-length" {
            let length =
                py_int(&value).ok_or_else(|| ResponseError::InvalidContentLength(value.clone()))?;
            out.content_length = Some(length);
        } else if is_hop_by_hop(&lower) {
            // Websocket handshakes need these two through.
            if lower == "connection" && value.eq_ignore_ascii_case("upgrade") {
                out.upgrade = true;
            } else if lower == "upgrade" && value.eq_ignore_ascii_case("websocket") {
                out.headers.push((name.clone(), value));
            }
            continue;
        }
        out.headers.push((name.clone(), value));
    }
    Ok(out)
}

/// RFC 9110: responses to HEAD and 1xx, 204 and 304 responses carry no body, whatever the
/// application writes.
pub fn response_omits_body(method: &str, status: u16) -> bool {
    method == "HEAD" || matches!(status, 100..=199 | 204 | 304)
}

/// RFC 9110 6.4.2: 1xx and 204 must not carry Content-Length (HEAD and 304 may).
pub fn response_forbids_content_length(status: u16) -> bool {
    matches!(status, 100..=199 | 204)
}

/// Gunicorn's `Response.is_chunked` (for the http protocol): no Content-Length, an HTTP/1.1+
/// request, and a response that may carry a body.
pub fn response_is_chunked(
    content_length: Option<i64>,
    request_version: (u8, u8),
    omits_body: bool,
) -> bool {
    content_length.is_none() && request_version > (1, 0) && !omits_body
}

/// The Connection header Gunicorn writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionHeader {
    Close,
    KeepAlive,
    Upgrade,
}

impl ConnectionHeader {
    fn as_str(self) -> &'static str {
        match self {
            ConnectionHeader::Close => "close",
            ConnectionHeader::KeepAlive => "keep-alive",
            ConnectionHeader::Upgrade => "upgrade",
        }
    }
}

/// Writes the response head in Gunicorn's exact order: status line echoing the request version,
/// `Server`, `Date`, `Connection`, `Transfer-Encoding: chunked` when chunked, the application's
/// headers, and the empty line. Text is encoded as latin-1.
#[allow(clippy::too_many_arguments)]
pub fn encode_head(
    out: &mut Vec<u8>,
    version: (u8, u8),
    status: &str,
    server: &str,
    date: &str,
    connection: ConnectionHeader,
    chunked: bool,
    headers: &[(String, String)],
) {
    out.extend_from_slice(format!("HTTP/{}.{} ", version.0, version.1).as_bytes());
    push_latin1(out, status);
    out.extend_from_slice(b"\r\nServer: ");
    push_latin1(out, server);
    out.extend_from_slice(b"\r\nDate: ");
    push_latin1(out, date);
    out.extend_from_slice(b"\r\nConnection: ");
    out.extend_from_slice(connection.as_str().as_bytes());
    out.extend_from_slice(b"\r\n");
    if chunked {
        out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
    }
    for (name, value) in headers {
        push_latin1(out, name);
        out.extend_from_slice(b": ");
        push_latin1(out, value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Frames one chunk as `%X\r\n<data>\r\n` (upper-case hex). Empty data writes nothing, so an
/// empty write never ends the stream early.
pub fn encode_chunk(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    out.extend_from_slice(format!("{:X}\r\n", data.len()).as_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// An informational `103 Early Hints` head with these headers (names and values checked as
/// a response's are); `Err` names the offending header.
pub fn encode_early_hints(headers: &[(String, String)]) -> Result<Vec<u8>, String> {
    let mut out = b"HTTP/1.1 103 Early Hints\r\n".to_vec();
    for (name, value) in headers {
        if !valid_header_name(name) {
            return Err(format!("Invalid response header name {name:?}"));
        }
        if !valid_header_value(value) {
            return Err(format!("Invalid response header value for {name:?}"));
        }
        push_latin1(&mut out, name);
        out.extend_from_slice(b": ");
        push_latin1(&mut out, value.trim_matches([' ', '\t']));
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn statuses() {
        assert_eq!(validate_status("200"), Ok(200));
        assert_eq!(validate_status("200 OK"), Ok(200));
        assert_eq!(validate_status("404 Not\tFound \u{e9}"), Ok(404));
        assert_eq!(validate_status("200 "), Ok(200));
        for bad in [
            "20 OK",
            "200\tOK",
            "200OK",
            "",
            "2000",
            "200 O\nK",
            "200 \u{100}",
        ] {
            assert_eq!(
                validate_status(bad),
                Err(ResponseError::InvalidStatus(bad.to_string())),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn header_rules() {
        assert!(valid_header_name("X-Custom_1"));
        assert!(!valid_header_name("Bad Name"));
        assert!(!valid_header_name(""));
        assert!(valid_header_value(" a\tb \u{ff}"));
        assert!(!valid_header_value("a\r\nb"));
        assert!(!valid_header_value("\u{7f}"));
        assert!(is_hop_by_hop("server") && is_hop_by_hop("date") && !is_hop_by_hop("vary"));
    }

    #[test]
    fn processing_filters_like_gunicorn() {
        let p = process_headers(&h(&[
            ("Content-Type", " text/plain "),
            ("Connection", "Upgrade"),
            ("Upgrade", "websocket"),
            ("Server", "mine"),
            ("Keep-Alive", "5"),
            ("Content-Length", "+1_0"),
        ]))
        .unwrap();
        assert!(p.upgrade);
        assert_eq!(p.content_length, Some(10));
        assert_eq!(
            p.headers,
            h(&[
                ("Content-Type", "text/plain"),
                ("Upgrade", "websocket"),
                ("Content-Length", "+1_0")
            ])
        );
        assert_eq!(
            process_headers(&h(&[("Bad Name", "x")])),
            Err(ResponseError::InvalidHeaderName("Bad Name".into()))
        );
        assert_eq!(
            process_headers(&h(&[("X", "a\nb")])),
            Err(ResponseError::InvalidHeaderValue("X".into()))
        );
        assert_eq!(
            process_headers(&h(&[("Content-Length", "abc")])),
            Err(ResponseError::InvalidContentLength("abc".into()))
        );
        let mut p = process_headers(&h(&[("content-length", "3"), ("X", "1")])).unwrap();
        p.drop_content_length();
        assert_eq!((p.headers, p.content_length), (h(&[("X", "1")]), None));
    }

    #[test]
    fn body_rules() {
        assert!(response_omits_body("HEAD", 200));
        assert!(response_omits_body("GET", 304) && response_omits_body("GET", 101));
        assert!(!response_omits_body("GET", 200));
        assert!(response_forbids_content_length(204) && !response_forbids_content_length(304));
        assert!(response_is_chunked(None, (1, 1), false));
        assert!(!response_is_chunked(None, (1, 0), false));
        assert!(!response_is_chunked(Some(3), (1, 1), false));
        assert!(!response_is_chunked(None, (1, 1), true));
    }

    #[test]
    fn head_layout() {
        let mut out = Vec::new();
        encode_head(
            &mut out,
            (1, 0),
            "200 OK",
            "gunicorn",
            "Sun, 22 Nov 2026 02:53:58 GMT",
            ConnectionHeader::Close,
            false,
            &h(&[("Content-Type", "application/json"), ("X-L", "caf\u{e9}")]),
        );
        assert_eq!(
            out,
            b"HTTP/1.0 200 OK\r\nServer: gunicorn\r\nDate: Sun, 22 Nov 2026 02:53:58 GMT\r\nConnection: close\r\nContent-Type: application/json\r\nX-L: caf\xe9\r\n\r\n"
        );
        let mut out = Vec::new();
        encode_head(
            &mut out,
            (1, 1),
            "204",
            "gunicorn",
            "D",
            ConnectionHeader::KeepAlive,
            true,
            &[],
        );
        assert_eq!(
            out,
            b"HTTP/1.1 204\r\nServer: gunicorn\r\nDate: D\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n"
        );
    }

    #[test]
    fn chunks() {
        let mut out = Vec::new();
        encode_chunk(&mut out, b"");
        assert!(out.is_empty());
        encode_chunk(&mut out, &[b'x'; 26]);
        assert!(out.starts_with(b"1A\r\nxx") && out.ends_with(b"x\r\n"));
        assert_eq!(LAST_CHUNK, b"0\r\n\r\n");
    }
}
