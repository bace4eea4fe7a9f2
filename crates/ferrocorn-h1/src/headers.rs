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
use crate::framing::check_partial_framing;
use crate::policy::{apply_policy, underscore_verdict, PolicyState};
use crate::pyrepr::latin1;

/// RFC 9110 `tchar`.
pub(crate) fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
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

/// An LF not preceded by CR at or after `from` (Gunicorn compares the counts of `\n` and
/// `\r\n`, which is the same). `from` lets a caller skip bytes it has already checked.
pub(crate) fn has_bare_lf_from(data: &[u8], from: usize) -> bool {
    (from..data.len()).any(|i| data[i] == b'\n' && (i == 0 || data[i - 1] != b'\r'))
}

/// The bytes of a line still arriving that are certainly part of it: a final CR may be the start
/// of its CRLF.
pub(crate) fn visible(line: &[u8], partial: bool) -> &[u8] {
    match line {
        [rest @ .., b'\r'] if partial => rest,
        _ => line,
    }
}

/// Python's `bytes.split(b"\r\n")`, with each line's offset.
fn split_crlf(data: &[u8]) -> Vec<(usize, &[u8])> {
    let mut lines = Vec::new();
    let mut start = 0;
    while let Some(pos) = find(&data[start..], b"\r\n") {
        lines.push((start, &data[start..start + pos]));
        start += pos + 2;
    }
    lines.push((start, &data[start..]));
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

/// What is known about the line still arriving at the end of an unfinished section, so that
/// bytes appended to it are checked alone instead of re-reading the line.
#[derive(Debug, Clone)]
struct Tail {
    /// Where the line starts.
    line_start: usize,
    /// Bytes before this have been checked.
    checked_to: usize,
    /// The field's length without the visible part of this line.
    base_len: usize,
    /// The field name once its colon has been seen; `None` while the name is arriving.
    name: Option<String>,
    /// While the name is arriving: every byte so far is a token byte.
    name_plain: bool,
    /// The line continues a folded field. Gunicorn checks the field's size as each continuation
    /// line is added, before it looks at the value, so here the size is judged first.
    folded: bool,
}

/// Progress through one field section, kept between calls while the section arrives so that
/// fields already judged are not walked again.
#[derive(Debug, Clone)]
pub(crate) struct FieldWalk {
    /// The fields kept so far, in order.
    pub fields: Vec<(String, String)>,
    pub state: PolicyState,
    /// Offset of the first field whose extent is not yet known.
    resume: usize,
    /// Where the last field judged starts, so that a folded line arriving after it (which its
    /// CRLF alone settled, folding being refused) is refused as folding of that field. An
    /// offset rather than the name: this is rare, and a copy of every name is not.
    last_field: Option<usize>,
    /// Boxed: it is rare (a line cut by the read) and would otherwise make every decoder big.
    tail: Option<Box<Tail>>,
}

impl FieldWalk {
    pub fn new(default_scheme: &'static str) -> Self {
        FieldWalk {
            fields: Vec::new(),
            state: PolicyState::new(default_scheme),
            resume: 0,
            last_field: None,
            tail: None,
        }
    }

    /// Checks only the bytes appended to the line still arriving, when that is all that changed
    /// (no new line has begun). `None` when the full walk is needed.
    fn extend_tail(&mut self, data: &[u8], limits: &Limits) -> Option<Result<(), ParseError>> {
        let tail = self.tail.as_mut()?;
        let appended = data.get(tail.checked_to..)?;
        // A name cut right after a CR is judged by the full walk (no colon can come any more).
        if appended.contains(&b'\n') || (tail.name.is_none() && data.ends_with(b"\r")) {
            return None;
        }
        let shown_end = data.len() - usize::from(data.ends_with(b"\r"));
        let fresh = &data[tail.checked_to..shown_end.max(tail.checked_to)];
        let too_long = tail.base_len + (shown_end - tail.line_start) > limits.field_size;
        // A first line that turns bad or too long is judged by the full walk, which orders a
        // 400 and the 431 by where they happen on the wire (`overflow_first`).
        match &tail.name {
            Some(_) if !tail.folded => {
                if too_long || fresh.iter().any(|&b| is_forbidden_value_byte(b)) {
                    return None;
                }
            }
            Some(name) => {
                if !too_long && fresh.iter().any(|&b| is_forbidden_value_byte(b)) {
                    return Some(Err(ParseError::InvalidHeader(name.clone())));
                }
            }
            None => {
                if too_long || !tail.name_plain || !fresh.iter().all(|&b| is_token_byte(b)) {
                    return None;
                }
            }
        }
        if too_long {
            return Some(Err(ParseError::LimitRequestHeaders(FIELD_SIZE_LIMIT)));
        }
        tail.checked_to = shown_end.max(tail.checked_to);
        Some(Ok(()))
    }
}

/// Whether a field's first line outgrows `limit_request_field_size` (431) before anything in
/// it is refused with a 400, counting where each becomes certain on the wire. Gunicorn judges
/// a whole line name first, value next and size last; a line cut short must get the status
/// the whole line gets, so the size only comes first when it was exceeded earlier.
fn overflow_first(first: &[u8], line_ended: bool, rules: &FieldRules<'_>) -> bool {
    let limit = rules.limits.field_size;
    if first.len() + 2 <= limit {
        return false;
    }
    let over_at = limit.saturating_sub(2);
    let colon = first.iter().position(|&b| b == b':');
    let name = &first[..colon.unwrap_or(first.len())];
    // Where the name cannot be a token any more: a byte that is neither a token byte nor (with
    // strip_header_spaces) SP/HT, or a token byte after SP/HT.
    let mut spaced = false;
    let name_bad = if colon == Some(0) {
        Some(0)
    } else {
        name.iter().position(|&b| {
            if rules.strip_header_spaces && is_sp_ht(b) {
                spaced = true;
                return false;
            }
            spaced || !is_token_byte(b)
        })
    };
    let value_bad = colon.and_then(|c| {
        first[c + 1..]
            .iter()
            .position(|&b| is_forbidden_value_byte(b))
            .map(|p| c + 1 + p)
    });
    let no_colon = (colon.is_none() && line_ended).then_some(first.len());
    let refused_at = [name_bad, value_bad, no_colon].into_iter().flatten().min();
    refused_at.is_none_or(|at| over_at < at)
}

/// Walks a field section from where `walk` stopped. With `complete`, `data` is the whole section
/// without its final CRLF pair and every remaining field is judged; otherwise `data` is what has
/// arrived so far (always a prefix of what the next call sees), its last line may be partial,
/// and only fields whose extent is known are kept.
pub(crate) fn walk_fields(
    data: &[u8],
    complete: bool,
    rules: &FieldRules<'_>,
    walk: &mut FieldWalk,
) -> Result<(), ParseError> {
    if !complete {
        if let Some(result) = walk.extend_tail(data, &rules.limits) {
            return result;
        }
    }
    walk.tail = None;
    let base = walk.resume;
    if base >= data.len() && complete {
        // The section ended right after the fields already judged.
        return Ok(());
    }
    let lines = split_crlf(&data[base..]);
    let partial_index = if complete {
        None
    } else {
        Some(lines.len() - 1)
    };
    let limits = rules.limits;
    let mut i = 0;
    while i < lines.len() {
        let first_partial = partial_index == Some(i);
        // Nothing of the next field yet, or a lone CR that may be the section's end.
        if first_partial && visible(lines[i].1, true).is_empty() {
            break;
        }
        if i == 0 && lines[i].1.first().is_some_and(|&b| is_sp_ht(b)) {
            if let Some(at) = walk.last_field {
                let line = &data[at..];
                let name = &line[..line.iter().position(|&b| b == b':').unwrap_or(0)];
                let name = if rules.strip_header_spaces {
                    rstrip_sp_ht(name)
                } else {
                    name
                };
                return Err(ParseError::ObsoleteFolding(
                    latin1(name).to_ascii_uppercase(),
                ));
            }
        }
        if walk.fields.len() >= limits.fields {
            return Err(ParseError::LimitRequestHeaders(FIELDS_LIMIT));
        }
        let first = visible(lines[i].1, first_partial);
        let line_ended = !first_partial || lines[i].1.ends_with(b"\r");
        if overflow_first(first, line_ended, rules) {
            return Err(ParseError::LimitRequestHeaders(FIELD_SIZE_LIMIT));
        }
        let mut field_len = first.len() + 2;
        let (raw_name, raw_value) = match first.iter().position(|&b| b == b':') {
            Some(0) => return Err(ParseError::InvalidHeader(latin1(first))),
            Some(colon) => (&first[..colon], &first[colon + 1..]),
            // A line cut right after its CR can only go on with LF, which ends it as it is.
            None if !first_partial || lines[i].1.ends_with(b"\r") => {
                return Err(ParseError::InvalidHeader(latin1(first)))
            }
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
                let line_start = base + lines[i].0;
                walk.tail = Some(Box::new(Tail {
                    line_start,
                    checked_to: line_start + first.len(),
                    base_len: 2,
                    name: None,
                    name_plain: first.iter().all(|&b| is_token_byte(b)),
                    folded: false,
                }));
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
        // Refused folding is reported once the folded field itself has been judged: a field's
        // own fault is found when its CRLF arrives, before anyone knows whether a folded line
        // follows, and the verdict must not depend on that.
        let mut folded = None;
        while j < lines.len() && lines[j].1.first().is_some_and(|&b| is_sp_ht(b)) {
            if !rules.permit_obsolete_folding {
                folded = Some(ParseError::ObsoleteFolding(name.clone()));
                break;
            }
            let partial = partial_index == Some(j);
            let continuation = visible(lines[j].1, partial);
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
        // With folding allowed the value is known only once the line after it has started (it
        // may be continued); without, a continuation is refused anyway, so the CRLF settles the
        // field and a bad Content-Length, Host, Transfer-Encoding or Expect is answered before
        // the rest of the head arrives.
        let next_started = j < lines.len() && !lines[j].1.is_empty();
        let settled_by_crlf = !rules.permit_obsolete_folding && j < lines.len();
        let determined =
            folded.is_some() || complete || (!last_partial && (next_started || settled_by_crlf));
        if !determined {
            // The value may still grow, so only the checks on the name are decided.
            if walk.state.repeats_singleton(&name) {
                return Err(ParseError::InvalidHeader(name));
            }
            underscore_verdict(&name, rules)?;
            if last_partial {
                let (offset, line) = lines[j - 1];
                let shown = visible(line, true).len();
                walk.tail = Some(Box::new(Tail {
                    line_start: base + offset,
                    checked_to: base + offset + shown,
                    base_len: field_len - shown,
                    name: Some(name),
                    name_plain: false,
                    folded: j - 1 > i,
                }));
            }
            break;
        }
        walk.last_field = Some(base + lines[i].0);
        if let Some(field) = apply_policy(name, latin1(&value), rules, &mut walk.state)? {
            let framing = matches!(field.0.as_str(), "CONTENT-LENGTH" | "TRANSFER-ENCODING");
            walk.fields.push(field);
            // Framing is judged at the field that condemns it, whether the section arrived
            // whole or in pieces, so the verdict cannot depend on the cut.
            if framing && !rules.from_trailer {
                check_partial_framing(&walk.fields, rules.version)?;
            }
        }
        if let Some(err) = folded {
            return Err(err);
        }
        i = j;
    }
    walk.resume = base
        + lines
            .get(i)
            .map_or(data.len() - base, |(offset, _)| *offset);
    Ok(())
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

    fn walk(data: &[u8], complete: bool) -> Result<Vec<(String, String)>, ParseError> {
        let r = rules(ParserConfig::default().limits());
        let mut w = FieldWalk::new("http");
        walk_fields(data, complete, &r, &mut w).map(|()| w.fields)
    }

    #[test]
    fn complete_section() {
        let f = walk(b"Host: a\r\nX_Y: 1\r\nName: \t v \t ", true).unwrap();
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
        assert_eq!(
            walk(b"Bad Name", false),
            Err(ParseError::InvalidHeaderName("Bad Name".into()))
        );
        assert_eq!(
            walk(b"X: a\x07", false),
            Err(ParseError::InvalidHeader("X".into()))
        );
        assert_eq!(
            walk(b"Host: a\r\nHost:", false),
            Err(ParseError::InvalidHeader("HOST".into()))
        );
        // Folding is refused, so the CRLF settles a field: it is kept (and judged) at once.
        assert_eq!(walk(b"A: 1\r\n", false).unwrap().len(), 1);
        assert_eq!(walk(b"A: 1\r\n\r", false).unwrap().len(), 1);
        assert_eq!(
            walk(b"Host: a b\r\n", false),
            Err(ParseError::InvalidHeader("HOST".into()))
        );
        // With folding allowed the next line's first byte is still needed.
        let mut folding = rules(ParserConfig::default().limits());
        folding.permit_obsolete_folding = true;
        let mut w = FieldWalk::new("http");
        walk_fields(b"A: 1\r\n", false, &folding, &mut w).unwrap();
        assert!(w.fields.is_empty());
        walk_fields(b"A: 1\r\n 2\r\n", false, &folding, &mut w).unwrap();
        assert!(w.fields.is_empty());
        walk_fields(b"A: 1\r\n 2\r\nB", false, &folding, &mut w).unwrap();
        assert_eq!(w.fields, vec![("A".to_string(), "1 2".to_string())]);
    }

    #[test]
    fn resumes_where_it_stopped() {
        let r = rules(ParserConfig::default().limits());
        let data = b"Host: a\r\nB: 2\r\nC: 3";
        let mut w = FieldWalk::new("http");
        for end in 1..=data.len() {
            walk_fields(&data[..end], false, &r, &mut w).unwrap();
        }
        assert_eq!(w.fields.len(), 2);
        walk_fields(data, true, &r, &mut w).unwrap();
        let names: Vec<&str> = w.fields.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["HOST", "B", "C"]);
    }

    #[test]
    fn appended_bytes_are_still_judged() {
        let r = rules(Limits {
            field_size: 12,
            ..ParserConfig::default().limits()
        });
        let run = |data: &[u8]| {
            let mut w = FieldWalk::new("http");
            let mut result = Ok(());
            for end in 1..=data.len() {
                result = walk_fields(&data[..end], false, &r, &mut w);
                if result.is_err() {
                    break;
                }
            }
            result
        };
        assert_eq!(run(b"A: 1\r2"), Err(ParseError::InvalidHeader("A".into())));
        assert_eq!(
            run(b"A: 12\x7f"),
            Err(ParseError::InvalidHeader("A".into()))
        );
        assert_eq!(
            run(b"A: 1234567890"),
            Err(ParseError::LimitRequestHeaders(FIELD_SIZE_LIMIT))
        );
        assert_eq!(
            run(b"Abc d"),
            Err(ParseError::InvalidHeaderName("Abc ".into()))
        );
        assert_eq!(run(b"A: 1234567\r"), Ok(()));
    }

    /// Found by the `request_head` fuzz target: a folded line that grows past the field size
    /// with a NUL was refused for the NUL when only its new bytes were checked, but for its size
    /// when the section was walked afresh (Gunicorn checks a continuation's size first).
    #[test]
    fn folded_tail_checks_size_before_value() {
        let mut r = rules(Limits {
            field_size: 14,
            ..ParserConfig::default().limits()
        });
        r.permit_obsolete_folding = true;
        let before: &[u8] = b"Acce.t:\r\n *P";
        let after: &[u8] = b"Acce.t:\r\n *P\0";
        let mut w = FieldWalk::new("http");
        assert_eq!(walk_fields(before, false, &r, &mut w), Ok(()));
        let want = Err(ParseError::LimitRequestHeaders(FIELD_SIZE_LIMIT));
        assert_eq!(walk_fields(after, false, &r, &mut w), want);
        assert_eq!(
            walk_fields(after, false, &r, &mut FieldWalk::new("http")),
            want
        );
        // The first line of a field is judged by its value first, arriving whole or not.
        let first_line: &[u8] = b"Acce.t: 1234\0";
        let mut w = FieldWalk::new("http");
        assert_eq!(walk_fields(b"Acce.t: 1234", false, &r, &mut w), Ok(()));
        let want = Err(ParseError::InvalidHeader("ACCE.T".into()));
        assert_eq!(walk_fields(first_line, false, &r, &mut w), want);
        assert_eq!(
            walk_fields(first_line, false, &r, &mut FieldWalk::new("http")),
            want
        );
    }

    #[test]
    fn bare_lf_scan_can_resume() {
        assert!(!has_bare_lf_from(b"a\r\nb", 3));
        assert!(has_bare_lf_from(b"a\nb", 1));
        assert!(!has_bare_lf_from(b"a\nb", 2));
    }
}
