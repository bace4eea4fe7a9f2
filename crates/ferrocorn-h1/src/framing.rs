//! Request body framing from the parsed headers: Gunicorn 27's `Message.set_body_reader`
//! (Content-Length and Transfer-Encoding rules, smuggling defences).
//!
//! This module only decides how long the body is; decoding it belongs to `body`.

use crate::error::ParseError;

/// How the request body is delimited. A request without Content-Length or Transfer-Encoding has
/// `Length(0)`: Gunicorn never reads a request body to EOF.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    Length(u64),
    Chunked,
}

/// The framing decision and whether a coding forces the connection closed afterwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Framing {
    pub body: BodyKind,
    pub must_close: bool,
}

fn invalid(name: &str) -> ParseError {
    ParseError::InvalidHeader(name.to_string())
}

/// Content-Length must be ASCII digits only (Python's `isnumeric()` followed by `int()` accepts
/// nothing else from latin-1 text). A value beyond u64 is refused rather than waited for.
fn content_length(value: &str) -> Result<u64, ParseError> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid("CONTENT-LENGTH"));
    }
    value.parse::<u64>().map_err(|_| invalid("CONTENT-LENGTH"))
}

/// What the framing headers say, before the final decision.
struct Scan<'h> {
    chunked: bool,
    has_transfer_encoding: bool,
    must_close: bool,
    length: Option<&'h str>,
}

/// The checks that hold whatever headers follow: duplicate Content-Length, codings, chunked on
/// HTTP/1.0, chunked beside Content-Length, and a malformed Content-Length.
fn scan(headers: &[(String, String)], version: (u8, u8)) -> Result<Scan<'_>, ParseError> {
    let mut s = Scan {
        chunked: false,
        has_transfer_encoding: false,
        must_close: false,
        length: None,
    };
    for (name, value) in headers {
        match name.as_str() {
            "CONTENT-LENGTH" => {
                if s.length.is_some() {
                    return Err(invalid("CONTENT-LENGTH"));
                }
                s.length = Some(value);
            }
            "TRANSFER-ENCODING" => {
                s.has_transfer_encoding = true;
                for coding in value.split(',') {
                    let coding = coding.trim_matches([' ', '\t']).to_ascii_lowercase();
                    match coding.as_str() {
                        // Stacked chunking is never intended.
                        "chunked" if s.chunked => return Err(invalid("TRANSFER-ENCODING")),
                        "chunked" => s.chunked = true,
                        // chunked must be the final coding.
                        "identity" | "compress" | "deflate" | "gzip" if s.chunked => {
                            return Err(invalid("TRANSFER-ENCODING"))
                        }
                        "identity" => {}
                        "compress" | "deflate" | "gzip" => s.must_close = true,
                        _ => return Err(ParseError::UnsupportedTransferCoding(value.clone())),
                    }
                }
            }
            _ => {}
        }
    }
    if s.chunked {
        // Chunked HTTP/1.0 is always faulty, and CL beside TE cannot be trusted to mean what
        // the proxy in front of us understood.
        if version < (1, 1) {
            return Err(invalid("TRANSFER-ENCODING"));
        }
        if s.length.is_some() {
            return Err(invalid("CONTENT-LENGTH"));
        }
    } else if let Some(value) = s.length {
        if !s.has_transfer_encoding {
            content_length(value)?;
        }
    }
    Ok(s)
}

/// Refuses a head still arriving as soon as the framing headers seen so far condemn it.
pub(crate) fn check_partial_framing(
    headers: &[(String, String)],
    version: (u8, u8),
) -> Result<(), ParseError> {
    let s = scan(headers, version)?;
    // Content-Length beside codings that do not end in chunked is condemned whatever follows: a
    // later chunked contradicts the length, and without one the length is unknowable. `scan`
    // skips the Content-Length format once a coding is present, so without this a malformed
    // length refused before the Transfer-Encoding arrived would be waited on after it.
    if s.has_transfer_encoding && !s.chunked && s.length.is_some() {
        return Err(invalid("TRANSFER-ENCODING"));
    }
    Ok(())
}

/// Gunicorn's framing decision for a complete head.
pub(crate) fn body_framing(
    headers: &[(String, String)],
    version: (u8, u8),
) -> Result<Framing, ParseError> {
    let s = scan(headers, version)?;
    // RFC 9112 6.3: a request whose codings do not end with chunked has no knowable length.
    if s.has_transfer_encoding && !s.chunked {
        return Err(invalid("TRANSFER-ENCODING"));
    }
    let body = match (s.chunked, s.length) {
        (true, _) => BodyKind::Chunked,
        (false, Some(value)) => BodyKind::Length(content_length(value)?),
        (false, None) => BodyKind::Length(0),
    };
    Ok(Framing {
        body,
        must_close: s.must_close,
    })
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
    fn framing_rules() {
        let f = body_framing(&h(&[("TRANSFER-ENCODING", "gzip, chunked")]), (1, 1)).unwrap();
        assert_eq!(f.body, BodyKind::Chunked);
        assert!(f.must_close);
        assert_eq!(
            body_framing(&h(&[("TRANSFER-ENCODING", "foo, chunked")]), (1, 1)),
            Err(ParseError::UnsupportedTransferCoding("foo, chunked".into()))
        );
        assert_eq!(
            body_framing(&h(&[("TRANSFER-ENCODING", "gzip")]), (1, 1)),
            Err(invalid("TRANSFER-ENCODING"))
        );
        assert_eq!(
            check_partial_framing(&h(&[("TRANSFER-ENCODING", "gzip")]), (1, 1)),
            Ok(())
        );
        assert_eq!(
            body_framing(&h(&[("CONTENT-LENGTH", "\u{b2}")]), (1, 0)),
            Err(invalid("CONTENT-LENGTH"))
        );
        let f = body_framing(&h(&[("CONTENT-LENGTH", "007")]), (1, 0)).unwrap();
        assert_eq!(f.body, BodyKind::Length(7));
        let f = body_framing(&[], (1, 1)).unwrap();
        assert_eq!(f.body, BodyKind::Length(0));
    }

    /// Found by the `request_head` fuzz target: a head refused for a malformed Content-Length
    /// was waited on again once a non-chunked Transfer-Encoding followed.
    #[test]
    fn partial_refusal_survives_later_headers() {
        let bad_length = h(&[("CONTENT-LENGTH", "12\u{96}y")]);
        assert_eq!(
            check_partial_framing(&bad_length, (1, 1)),
            Err(invalid("CONTENT-LENGTH"))
        );
        for coding in ["identity", "gzip"] {
            for length in ["12\u{96}y", "12"] {
                let headers = h(&[("CONTENT-LENGTH", length), ("TRANSFER-ENCODING", coding)]);
                assert_eq!(
                    check_partial_framing(&headers, (1, 1)),
                    Err(invalid("TRANSFER-ENCODING")),
                    "{length} {coding}"
                );
                // The complete head is refused the same way.
                assert_eq!(
                    body_framing(&headers, (1, 1)),
                    Err(invalid("TRANSFER-ENCODING"))
                );
            }
        }
    }
}
