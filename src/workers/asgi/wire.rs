//! The bytes the ASGI worker writes for HTTP/1: the response head as Gunicorn 27's ASGI
//! worker frames it (the app's headers first, then `Server` and `Date` when absent, and
//! `Connection: close` when the connection ends), chunked framing in lower-case hex, and
//! its plain-text error responses.

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::http::ByteHeaders;

/// Gunicorn's ASGI reason phrases; any other code is `Unknown`.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        103 => "Early Hints",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        413 => "Payload Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Entity",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

thread_local! {
    static DATE: RefCell<(i64, Vec<u8>)> = const { RefCell::new((0, Vec::new())) };
}

/// `Date: ...\r\n`, formatted once per second.
fn push_date(out: &mut Vec<u8>) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    DATE.with(|d| {
        let mut d = d.borrow_mut();
        if d.0 != now || d.1.is_empty() {
            d.1 = format!("Date: {}\r\n", ferrocorn_h1::http_date(now)).into_bytes();
            d.0 = now;
        }
        out.extend_from_slice(&d.1);
    });
}

/// How the app's headers frame the body.
#[derive(Debug, Default, Clone, Copy)]
pub struct HeaderScan {
    pub content_length: Option<u64>,
    pub has_content_length: bool,
    pub transfer_encoding: bool,
    /// The app's own `Connection: close`: the connection ends after this response.
    pub connection_close: bool,
}

pub fn scan(headers: &ByteHeaders) -> HeaderScan {
    let mut s = HeaderScan::default();
    for (n, v) in headers {
        if n.eq_ignore_ascii_case(b"content-length") {
            s.has_content_length = true;
            s.content_length = std::str::from_utf8(v)
                .ok()
                .and_then(|t| t.trim().parse().ok());
        } else if n.eq_ignore_ascii_case(b"transfer-encoding") {
            s.transfer_encoding = true;
        } else if n.eq_ignore_ascii_case(b"connection") {
            s.connection_close |= v
                .split(|&c| c == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"));
        }
    }
    s
}

/// HEAD, 1xx, 204 and 304 carry no body.
pub fn omits_body(method: &str, status: u16) -> bool {
    method == "HEAD" || (100..200).contains(&status) || status == 204 || status == 304
}

pub fn encode_head(
    out: &mut Vec<u8>,
    version: (u8, u8),
    status: u16,
    headers: &ByteHeaders,
    close: bool,
) {
    out.extend_from_slice(
        format!(
            "HTTP/{}.{} {} {}\r\n",
            version.0,
            version.1,
            status,
            reason(status)
        )
        .as_bytes(),
    );
    let (mut date, mut server, mut connection) = (false, false, false);
    for (n, v) in headers {
        out.extend_from_slice(n);
        out.extend_from_slice(b": ");
        out.extend_from_slice(v);
        out.extend_from_slice(b"\r\n");
        if n.eq_ignore_ascii_case(b"date") {
            date = true;
        } else if n.eq_ignore_ascii_case(b"server") {
            server = true;
        } else if n.eq_ignore_ascii_case(b"connection") {
            connection = true;
        }
    }
    if !server {
        out.extend_from_slice(b"Server: ferrocorn\r\n");
    }
    if !date {
        push_date(out);
    }
    if close && !connection {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// `name: value` lines, as the app gave them.
pub fn push_headers(out: &mut Vec<u8>, headers: &ByteHeaders) {
    for (n, v) in headers {
        out.extend_from_slice(n);
        out.extend_from_slice(b": ");
        out.extend_from_slice(v);
        out.extend_from_slice(b"\r\n");
    }
}

/// The size line of a chunk, lower-case hex as Gunicorn's ASGI worker writes it.
pub fn push_chunk_size(out: &mut Vec<u8>, len: usize) {
    out.extend_from_slice(format!("{len:x}\r\n").as_bytes());
}

pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// Gunicorn's ASGI error response: the standard phrase, the message as a text body, and
/// `Connection: close`.
pub fn error_response(status: u16, message: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n",
        error_reason(status),
        message.len()
    )
    .into_bytes();
    for (n, v) in extra {
        out.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
    }
    out.extend_from_slice(b"Connection: close\r\n\r\n");
    out.extend_from_slice(message.as_bytes());
    out
}

/// The phrase of an error response: Gunicorn's table, then Python's `HTTPStatus` phrases.
fn error_reason(status: u16) -> &'static str {
    match reason(status) {
        "Unknown" => match status {
            417 => "Expectation Failed",
            505 => "HTTP Version Not Supported",
            _ => "Error",
        },
        r => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_puts_app_headers_first_and_adds_what_is_missing() {
        let mut out = Vec::new();
        let headers = vec![(b"content-type".to_vec(), b"text/plain".to_vec())];
        encode_head(&mut out, (1, 1), 418, &headers, true);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with(
            "HTTP/1.1 418 Unknown\r\ncontent-type: text/plain\r\nServer: ferrocorn\r\nDate: "
        ));
        assert!(text.ends_with("Connection: close\r\n\r\n"));
    }

    #[test]
    fn chunks_are_lower_case_hex() {
        let mut out = Vec::new();
        push_chunk_size(&mut out, 255);
        assert_eq!(out, b"ff\r\n");
    }

    #[test]
    fn error_responses_are_plain_text_and_close() {
        let r = String::from_utf8(error_response(400, "Bad Request", &[])).unwrap();
        assert_eq!(
            r,
            "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 11\r\nConnection: close\r\n\r\nBad Request"
        );
    }
}
