//! Field-section rules shared by request heads and chunked trailers: Gunicorn's
//! `Message.parse_headers` and `HeaderPolicy._apply_header_policy`.
//!
//! A section is checked either complete (its terminating empty line has arrived) or as a prefix
//! that is still arriving. For a prefix every field whose extent is known gets the full checks, and
//! the field still arriving gets the checks its visible bytes already decide, so a request that can
//! never become valid is refused at once instead of holding the connection. This module does not
//! find where a section ends and does not decide body framing.

use crate::config::{HeaderMapPolicy, Limits};
use crate::error::ParseError;
use crate::pyrepr::latin1;

/// RFC 9110 `tchar`.
pub(crate) fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_'
                | b'`' | b'|' | b'~'
        )
}

/// A complete RFC 9110 token (non-empty).
pub(crate) fn is_token(bytes: &[u8]) -> bool {
    !bytes.is_empty() && bytes.iter().all(|&b| is_token_byte(b))
}

/// Bytes a request field value may not hold: controls other than HTAB, and DEL.
pub(crate) fn is_forbidden_value_byte(b: u8) -> bool {
    b <= 0x08 || (0x0a..=0x1f).contains(&b) || b == 0x7f
}

fn is_sp_ht(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

pub(crate) fn strip_sp_ht(mut bytes: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = bytes {
        if !is_sp_ht(*first) {
            break;
        }
        bytes = rest;
    }
    rstrip_sp_ht(bytes)
}

pub(crate) fn rstrip_sp_ht(mut bytes: &[u8]) -> &[u8] {
    while let [rest @ .., last] = bytes {
        if !is_sp_ht(*last) {
            break;
        }
        bytes = rest;
    }
    bytes
}

/// Position of the first `needle` in `data`.
pub(crate) fn find(data: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || data.len() < needle.len() {
        return None;
    }
    data.windows(needle.len()).position(|w| w == needle)
}

/// An LF not preceded by CR: Gunicorn compares the counts of `\n` and `\r\n`, which is the same.
pub(crate) fn has_bare_lf(data: &[u8]) -> bool {
    data.iter()
        .enumerate()
        .any(|(i, &b)| b == b'\n' && (i == 0 || data[i - 1] != b'\r'))
}

/// The bytes of a line still arriving that are certainly part of it: a final CR may be the start
/// of its CRLF.
pub(crate) fn visible(line: &[u8], partial: bool) -> &[u8] {
    match line {
        [rest @ .., b'\r'] if partial => rest,
        _ => line,
    }
}

/// Python's `bytes.split(b"\r\n")`.
fn split_crlf(data: &[u8]) -> Vec<&[u8]> {
    let mut lines = Vec::new();
    let mut start = 0;
    while let Some(pos) = find(&data[start..], b"\r\n") {
        lines.push(&data[start..start + pos]);
        start += pos + 2;
    }
    lines.push(&data[start..]);
    lines
}

/// Names that may not appear in a trailer section (RFC 9110 6.5.1).
const FORBIDDEN_TRAILERS: [&str; 6] = [
    "HOST",
    "CONTENT-LENGTH",
    "TRANSFER-ENCODING",
    "TRAILER",
    "AUTHORIZATION",
    "TE",
];

const FIELDS_LIMIT: &str = "limit request headers fields";
const FIELD_SIZE_LIMIT: &str = "limit request headers fields size";

/// What governs one field section.
pub(crate) struct FieldRules<'a> {
    pub strip_header_spaces: bool,
    pub permit_obsolete_folding: bool,
    pub header_map: HeaderMapPolicy,
    pub limits: Limits,
    pub from_trailer: bool,
    pub version: (u8, u8),
    /// Empty unless the peer is trusted and this is a request head.
    pub secure_scheme_headers: &'a [(String, String)],
    /// Empty unless the peer is trusted and this is a request head.
    pub forwarder_headers: &'a [String],
}

/// What the policy learns while walking one section.
#[derive(Debug, Clone)]
pub(crate) struct PolicyState {
    pub scheme: &'static str,
    scheme_set: bool,
    seen_host: bool,
    seen_content_type: bool,
    pub expect_continue: bool,
}

impl PolicyState {
    pub fn new(default_scheme: &'static str) -> Self {
        PolicyState {
            scheme: default_scheme,
            scheme_set: false,
            seen_host: false,
            seen_content_type: false,
            expect_continue: false,
        }
    }

    /// Host and Content-Type may appear once (RFC 9110 5.3).
    fn check_singleton(&mut self, name: &str) -> Result<(), ParseError> {
        let seen = match name {
            "HOST" => &mut self.seen_host,
            "CONTENT-TYPE" => &mut self.seen_content_type,
            _ => return Ok(()),
        };
        if *seen {
            return Err(ParseError::InvalidHeader(name.to_string()));
        }
        *seen = true;
        Ok(())
    }
}

/// Whether a name with `_` is kept: `Err` for `header_map=refuse`, `Ok(false)` to drop it.
fn underscore_verdict(name: &str, rules: &FieldRules<'_>) -> Result<bool, ParseError> {
    if !name.contains('_') {
        return Ok(true);
    }
    let forwarded = rules
        .forwarder_headers
        .iter()
        .any(|h| h == name || h == "*");
    if forwarded {
        return Ok(true);
    }
    match rules.header_map {
        HeaderMapPolicy::Dangerous => Ok(true),
        HeaderMapPolicy::Drop => Ok(false),
        HeaderMapPolicy::Refuse => Err(ParseError::InvalidHeaderName(name.to_string())),
    }
}

/// `_apply_header_policy` for a field whose value is final. `Ok(None)` drops the field.
fn apply_policy(
    name: String,
    value: String,
    rules: &FieldRules<'_>,
    state: &mut PolicyState,
) -> Result<Option<(String, String)>, ParseError> {
    state.check_singleton(&name)?;
    if !rules.from_trailer && name == "EXPECT" {
        if value.eq_ignore_ascii_case("100-continue") {
            // RFC 9110 10.1.1: an HTTP/1.0 server must ignore the expectation.
            if rules.version >= (1, 1) {
                state.expect_continue = true;
            }
        } else {
            return Err(ParseError::ExpectationFailed(value));
        }
    }
    if let Some((_, secure_value)) = rules.secure_scheme_headers.iter().find(|(h, _)| *h == name) {
        let scheme = if value == *secure_value {
            "https"
        } else {
            "http"
        };
        if state.scheme_set {
            if scheme != state.scheme {
                return Err(ParseError::InvalidSchemeHeaders);
            }
        } else {
            state.scheme_set = true;
            state.scheme = scheme;
        }
    }
    if underscore_verdict(&name, rules)? {
        Ok(Some((name, value)))
    } else {
        Ok(None)
    }
}

/// Walks a field section. With `complete`, `data` is the whole section without its final CRLF
/// pair and every field is checked; otherwise `data` is what has arrived so far, its last line
/// may be partial, and the fields returned are only those whose extent is already known.
pub(crate) fn parse_fields(
    data: &[u8],
    complete: bool,
    rules: &FieldRules<'_>,
    state: &mut PolicyState,
) -> Result<Vec<(String, String)>, ParseError> {
    let lines = split_crlf(data);
    let partial_index = if complete {
        None
    } else {
        Some(lines.len() - 1)
    };
    let limits = rules.limits;
    let mut fields: Vec<(String, String)> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let first_partial = partial_index == Some(i);
        // Nothing of the next field yet, or a lone CR that may be the section's end.
        if first_partial && visible(lines[i], true).is_empty() {
            break;
        }
        if fields.len() >= limits.fields {
            return Err(ParseError::LimitRequestHeaders(FIELDS_LIMIT));
        }
        let first = visible(lines[i], first_partial);
        let mut field_len = first.len() + 2;
        let (raw_name, raw_value) = match first.iter().position(|&b| b == b':') {
            Some(0) => return Err(ParseError::InvalidHeader(latin1(first))),
            Some(colon) => (&first[..colon], &first[colon + 1..]),
            None if !first_partial => return Err(ParseError::InvalidHeader(latin1(first))),
            None => {
                // The name is still arriving: refuse it once it cannot become a token.
                let name = if rules.strip_header_spaces {
                    rstrip_sp_ht(first)
                } else {
                    first
                };
                if !name.iter().all(|&b| is_token_byte(b)) {
                    return Err(ParseError::InvalidHeaderName(latin1(name)));
                }
                if field_len > limits.field_size {
                    return Err(ParseError::LimitRequestHeaders(FIELD_SIZE_LIMIT));
                }
                break;
            }
        };
        let raw_name = if rules.strip_header_spaces {
            rstrip_sp_ht(raw_name)
        } else {
            raw_name
        };
        if !is_token(raw_name) {
            return Err(ParseError::InvalidHeaderName(latin1(raw_name)));
        }
        // Upper-casing after validation keeps it ASCII-only, as Gunicorn intends.
        let name = latin1(raw_name).to_ascii_uppercase();
        if rules.from_trailer && FORBIDDEN_TRAILERS.contains(&name.as_str()) {
            return Err(ParseError::InvalidHeaderName(name));
        }
        let mut value: Vec<u8> = strip_sp_ht(raw_value).to_vec();
        let mut j = i + 1;
        let mut last_partial = first_partial;
        while j < lines.len() && lines[j].first().is_some_and(|&b| is_sp_ht(b)) {
            if !rules.permit_obsolete_folding {
                return Err(ParseError::ObsoleteFolding(name));
            }
            let partial = partial_index == Some(j);
            let continuation = visible(lines[j], partial);
            field_len += continuation.len() + 2;
            if field_len > limits.field_size {
                return Err(ParseError::LimitRequestHeaders(FIELD_SIZE_LIMIT));
            }
            value.push(b' ');
            value.extend_from_slice(strip_sp_ht(continuation));
            last_partial = partial;
            j += 1;
        }
        if value.iter().any(|&b| is_forbidden_value_byte(b)) {
            return Err(ParseError::InvalidHeader(name));
        }
        if field_len > limits.field_size {
            return Err(ParseError::LimitRequestHeaders(FIELD_SIZE_LIMIT));
        }
        // Known only once the line after it has started: it may still be continued.
        let determined = complete || (!last_partial && j < lines.len() && !lines[j].is_empty());
        if !determined {
            // The value may still grow, so only the checks on the name are decided.
            state.check_singleton(&name)?;
            underscore_verdict(&name, rules)?;
            break;
        }
        if let Some(field) = apply_policy(name, latin1(&value), rules, state)? {
            fields.push(field);
        }
        i = j;
    }
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ParserConfig;

    fn rules(limits: Limits) -> FieldRules<'static> {
        FieldRules {
            strip_header_spaces: false,
            permit_obsolete_folding: false,
            header_map: HeaderMapPolicy::Drop,
            limits,
            from_trailer: false,
            version: (1, 1),
            secure_scheme_headers: &[],
            forwarder_headers: &[],
        }
    }

    #[test]
    fn complete_section() {
        let r = rules(ParserConfig::default().limits());
        let mut st = PolicyState::new("http");
        let f = parse_fields(b"Host: a\r\nX_Y: 1\r\nName: \t v \t ", true, &r, &mut st).unwrap();
        assert_eq!(
            f,
            vec![
                ("HOST".to_string(), "a".to_string()),
                ("NAME".to_string(), "v".to_string())
            ]
        );
    }

    #[test]
    fn prefix_refuses_early() {
        let r = rules(ParserConfig::default().limits());
        let mut st = PolicyState::new("http");
        assert_eq!(
            parse_fields(b"Bad Name", false, &r, &mut st),
            Err(ParseError::InvalidHeaderName("Bad Name".into()))
        );
        let mut st = PolicyState::new("http");
        assert_eq!(
            parse_fields(b"X: a\x07", false, &r, &mut st),
            Err(ParseError::InvalidHeader("X".into()))
        );
        let mut st = PolicyState::new("http");
        assert_eq!(
            parse_fields(b"Host: a\r\nHost:", false, &r, &mut st),
            Err(ParseError::InvalidHeader("HOST".into()))
        );
        // A field may still be continued (and then refused as folding), so it is not returned.
        let mut st = PolicyState::new("http");
        assert_eq!(parse_fields(b"A: 1\r\n", false, &r, &mut st), Ok(vec![]));
        let mut st = PolicyState::new("http");
        assert_eq!(
            parse_fields(b"A: 1\r\n\r", false, &r, &mut st).unwrap().len(),
            1
        );
    }
}
