//! The errors the codec reports, one variant per Gunicorn exception class, and how Gunicorn's
//! `Worker.handle_error` turns each into a response.
//!
//! This module owns the exception-to-status/reason/page mapping (including Gunicorn's quirks:
//! `501 Bad Request`, `500 Bad Request`, doubly wrapped request-line messages). It does not decide
//! when an error happens; the parsers do.

use crate::pyrepr::{html_escape, push_latin1, repr_bytes, repr_str};

/// The value carried by `InvalidHTTPVersion`: Gunicorn raises it with the version text when the
/// text does not look like `HTTP/d.d`, and with the parsed tuple when the version is out of range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpVersionRepr {
    Text(String),
    Tuple(u8, u8),
}

impl HttpVersionRepr {
    fn py_repr(&self) -> String {
        match self {
            HttpVersionRepr::Text(text) => repr_str(text),
            HttpVersionRepr::Tuple(major, minor) => format!("({major}, {minor})"),
        }
    }
}

fn repr_opt_bytes(data: &Option<Vec<u8>>) -> String {
    match data {
        Some(bytes) => repr_bytes(bytes),
        None => "None".to_string(),
    }
}

/// A request Gunicorn 27 refuses. `Display` is Python's `str(exc)` for the class.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The client closed the connection mid-request. `None` is Gunicorn's `NoMoreData()` without
    /// a buffer (raised while reading a chunked body).
    #[error("No more data after: {}", repr_opt_bytes(.0))]
    NoMoreData(Option<Vec<u8>>),
    #[error("Invalid HTTP request line: {}", repr_str(.0))]
    InvalidRequestLine(String),
    #[error("Invalid HTTP method: {}", repr_str(.0))]
    InvalidRequestMethod(String),
    #[error("Invalid HTTP Version: {}", .0.py_repr())]
    InvalidHTTPVersion(HttpVersionRepr),
    #[error("Invalid HTTP Header: {}", repr_str(.0))]
    InvalidHeader(String),
    #[error("Invalid HTTP header name: {}", repr_str(.0))]
    InvalidHeaderName(String),
    /// An HTTP/1.1 request without Host (RFC 9112 3.2); Gunicorn 27 lets it through.
    #[error("Missing HTTP Header: {}", repr_str(.0))]
    MissingHeader(String),
    #[error("Obsolete line folding is unacceptable: {}", repr_str(.0))]
    ObsoleteFolding(String),
    #[error("Request Line is too large ({size} > {max})")]
    LimitRequestLine { size: usize, max: usize },
    #[error("{0}")]
    LimitRequestHeaders(&'static str),
    #[error("Contradictory scheme headers")]
    InvalidSchemeHeaders,
    #[error("Unsupported transfer coding: {}", repr_str(.0))]
    UnsupportedTransferCoding(String),
    #[error("Invalid chunk size: {}", repr_bytes(.0))]
    InvalidChunkSize(Vec<u8>),
    #[error("Invalid chunk extension: {0}")]
    InvalidChunkExtension(&'static str),
    #[error("Invalid chunk terminator is not '\\r\\n': {}", repr_bytes(.0))]
    ChunkMissingTerminator(Vec<u8>),
    #[error("Unable to comply with expectation: {}", repr_str(.0))]
    ExpectationFailed(String),
    #[error("Invalid PROXY line: {}", repr_str(.0))]
    InvalidProxyLine(String),
    #[error("Invalid PROXY header: {0}")]
    InvalidProxyHeader(String),
    #[error("Proxy request from {} not allowed", repr_str(.0))]
    ForbiddenProxyRequest(String),
    /// Raised by the server while building the environ (SCRIPT_NAME mismatch); kept here so its
    /// response comes from the same table.
    #[error("Configuration problem: {0}")]
    ConfigurationProblem(String),
    #[error("Expected HTTP/2 connection preface, got {}", repr_bytes(.0))]
    InvalidH2CPreface(Vec<u8>),
    /// A uWSGI packet that cannot be served, or a peer not allowed to send one.
    #[error("{0}")]
    Uwsgi(crate::uwsgi::UwsgiError),
}

impl ParseError {
    /// Gunicorn's exception class name.
    pub fn class_name(&self) -> &'static str {
        match self {
            ParseError::NoMoreData(_) => "NoMoreData",
            ParseError::InvalidRequestLine(_) => "InvalidRequestLine",
            ParseError::InvalidRequestMethod(_) => "InvalidRequestMethod",
            ParseError::InvalidHTTPVersion(_) => "InvalidHTTPVersion",
            ParseError::InvalidHeader(_) => "InvalidHeader",
            ParseError::InvalidHeaderName(_) => "InvalidHeaderName",
            ParseError::MissingHeader(_) => "MissingHeader",
            ParseError::ObsoleteFolding(_) => "ObsoleteFolding",
            ParseError::LimitRequestLine { .. } => "LimitRequestLine",
            ParseError::LimitRequestHeaders(_) => "LimitRequestHeaders",
            ParseError::InvalidSchemeHeaders => "InvalidSchemeHeaders",
            ParseError::UnsupportedTransferCoding(_) => "UnsupportedTransferCoding",
            ParseError::InvalidChunkSize(_) => "InvalidChunkSize",
            ParseError::InvalidChunkExtension(_) => "InvalidChunkExtension",
            ParseError::ChunkMissingTerminator(_) => "ChunkMissingTerminator",
            ParseError::ExpectationFailed(_) => "ExpectationFailed",
            ParseError::InvalidProxyLine(_) => "InvalidProxyLine",
            ParseError::InvalidProxyHeader(_) => "InvalidProxyHeader",
            ParseError::ForbiddenProxyRequest(_) => "ForbiddenProxyRequest",
            ParseError::ConfigurationProblem(_) => "ConfigurationProblem",
            ParseError::InvalidH2CPreface(_) => "InvalidH2CPreface",
            ParseError::Uwsgi(e) => e.class_name(),
        }
    }

    /// Whether `handle_error` treats it as the client's fault: logged at warning as
    /// `Invalid request from ip=<ip>: <message()>`, answered with the status below. Everything else
    /// is logged with a traceback and answered 500 with an empty message.
    pub fn is_client_error(&self) -> bool {
        !matches!(
            self,
            ParseError::NoMoreData(_) | ParseError::InvalidProxyHeader(_)
        )
    }

    /// The status code `handle_error` sends.
    pub fn status(&self) -> u16 {
        match self {
            ParseError::NoMoreData(_) | ParseError::InvalidProxyHeader(_) => 500,
            ParseError::ConfigurationProblem(_) => 500,
            ParseError::LimitRequestLine { .. } => 414,
            ParseError::LimitRequestHeaders(_) => 431,
            ParseError::UnsupportedTransferCoding(_) => 501,
            ParseError::ExpectationFailed(_) => 417,
            ParseError::ForbiddenProxyRequest(_) => 403,
            ParseError::Uwsgi(e) => e.status(),
            _ => 400,
        }
    }

    /// The reason phrase `handle_error` sends. Gunicorn never updates it for 501 and for the
    /// ConfigurationProblem 500, so those say "Bad Request".
    pub fn reason(&self) -> &'static str {
        match self {
            ParseError::NoMoreData(_) | ParseError::InvalidProxyHeader(_) => {
                "Internal Server Error"
            }
            ParseError::LimitRequestLine { .. } => "URI Too Long",
            ParseError::LimitRequestHeaders(_) => "Request Header Fields Too Large",
            ParseError::ExpectationFailed(_) => "Expectation Failed",
            ParseError::ForbiddenProxyRequest(_) => "Forbidden",
            ParseError::Uwsgi(e) => e.reason(),
            _ => "Bad Request",
        }
    }

    /// `str(exc)`: the text of the warning `Invalid request from ip=<ip>: <message>`.
    pub fn message(&self) -> String {
        self.to_string()
    }

    /// The text `handle_error` puts in the error page, before HTML escaping. It differs from
    /// [`message`](Self::message) for a few classes, which Gunicorn wraps a second time.
    pub fn page_message(&self) -> String {
        let text = self.to_string();
        match self {
            ParseError::NoMoreData(_) | ParseError::InvalidProxyHeader(_) => String::new(),
            ParseError::InvalidRequestLine(_) => format!("Invalid Request Line '{text}'"),
            ParseError::InvalidRequestMethod(_) => format!("Invalid Method '{text}'"),
            ParseError::InvalidHTTPVersion(_) => format!("Invalid HTTP Version '{text}'"),
            ParseError::LimitRequestHeaders(_) => format!("Error parsing headers: '{text}'"),
            ParseError::InvalidProxyLine(_) => format!("'{text}'"),
            ParseError::ForbiddenProxyRequest(_)
            | ParseError::Uwsgi(crate::uwsgi::UwsgiError::Forbidden(_)) => {
                "Request forbidden".to_string()
            }
            _ => text,
        }
    }

    /// The complete bytes Gunicorn writes for this error (`util.write_error`).
    pub fn error_response(&self) -> Vec<u8> {
        error_page(self.status(), self.reason(), &self.page_message())
    }
}

/// Gunicorn's error response: `HTTP/1.1` status line (whatever the request version),
/// `Connection: close`, `Content-Type: text/html`, `Content-Length`, and the small HTML page with
/// the HTML-escaped message. Used for 500s and any other status the server writes itself.
pub fn error_page(status: u16, reason: &str, message: &str) -> Vec<u8> {
    let html = format!(
        "<html>\n  <head>\n    <title>{reason}</title>\n  </head>\n  <body>\n    <h1><p>{reason}</p></h1>\n    {}\n  </body>\n</html>\n",
        html_escape(message)
    );
    // Content-Length counts latin-1 bytes, one per char, as Python's len() of the page does.
    let page_len = html.chars().count();
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: text/html\r\nContent-Length: {page_len}\r\n\r\n"
    );
    let mut out = Vec::with_capacity(head.len() + page_len);
    push_latin1(&mut out, &head);
    push_latin1(&mut out, &html);
    out
}

/// An application's response that Gunicorn refuses in `start_response` (all answered 500).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    /// The status does not match `[0-9]{3}( [\t \x21-\x7e\x80-\xff]*)?` (a ValueError).
    #[error("Invalid status {}", repr_str(.0))]
    InvalidStatus(String),
    /// A header name that is not an RFC 9110 token.
    #[error("Invalid response header name from the application: {}", repr_str(.0))]
    InvalidHeaderName(String),
    /// A header value with a forbidden byte; only the name is reported, as the value may be
    /// sensitive.
    #[error("Invalid response header from the application: {}", repr_str(.0))]
    InvalidHeaderValue(String),
    /// A Content-Length Python's `int()` cannot read (a ValueError).
    #[error("invalid literal for int() with base 10: {}", repr_str(.0))]
    InvalidContentLength(String),
}

impl ResponseError {
    /// The Python exception class Gunicorn raises.
    pub fn class_name(&self) -> &'static str {
        match self {
            ResponseError::InvalidStatus(_) | ResponseError::InvalidContentLength(_) => {
                "ValueError"
            }
            ResponseError::InvalidHeaderName(_) => "InvalidResponseHeaderName",
            ResponseError::InvalidHeaderValue(_) => "InvalidResponseHeader",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_match_gunicorn() {
        let e = ParseError::InvalidHTTPVersion(HttpVersionRepr::Tuple(2, 0));
        assert_eq!(e.message(), "Invalid HTTP Version: (2, 0)");
        let e = ParseError::InvalidHTTPVersion(HttpVersionRepr::Text("FTP/1.1".into()));
        assert_eq!(
            e.page_message(),
            "Invalid HTTP Version 'Invalid HTTP Version: 'FTP/1.1''"
        );
        let e = ParseError::ChunkMissingTerminator(b"xy".to_vec());
        assert_eq!(
            e.message(),
            "Invalid chunk terminator is not '\\r\\n': b'xy'"
        );
        assert_eq!(
            ParseError::NoMoreData(None).message(),
            "No more data after: None"
        );
        let e = ParseError::LimitRequestLine {
            size: 9000,
            max: 4094,
        };
        assert_eq!(e.message(), "Request Line is too large (9000 > 4094)");
        assert_eq!(e.status(), 414);
    }

    #[test]
    fn quirky_statuses() {
        let e = ParseError::UnsupportedTransferCoding("foo, chunked".into());
        assert_eq!((e.status(), e.reason()), (501, "Bad Request"));
        let e = ParseError::ConfigurationProblem("x".into());
        assert_eq!((e.status(), e.reason()), (500, "Bad Request"));
        assert!(e.is_client_error());
        let e = ParseError::InvalidProxyHeader("unsupported version 3".into());
        assert_eq!((e.status(), e.page_message().as_str()), (500, ""));
        assert!(!e.is_client_error());
        let e = ParseError::ForbiddenProxyRequest("10.0.0.1".into());
        assert_eq!(e.message(), "Proxy request from '10.0.0.1' not allowed");
        assert_eq!(
            (e.status(), e.page_message().as_str()),
            (403, "Request forbidden")
        );
    }

    #[test]
    fn error_page_bytes() {
        let e = ParseError::LimitRequestLine {
            size: 4112,
            max: 4094,
        };
        let expected = "HTTP/1.1 414 URI Too Long\r\nConnection: close\r\nContent-Type: text/html\r\nContent-Length: 165\r\n\r\n<html>\n  <head>\n    <title>URI Too Long</title>\n  </head>\n  <body>\n    <h1><p>URI Too Long</p></h1>\n    Request Line is too large (4112 &gt; 4094)\n  </body>\n</html>\n";
        assert_eq!(e.error_response(), expected.as_bytes());
    }

    #[test]
    fn response_errors() {
        let e = ResponseError::InvalidStatus("20 OK".into());
        assert_eq!(e.to_string(), "Invalid status '20 OK'");
        assert_eq!(e.class_name(), "ValueError");
    }
}
