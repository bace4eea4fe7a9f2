//! The chunk-size line of a chunked body: `size [BWS] *( ";" chunk-ext )`, with Gunicorn 27's
//! checks and their order (`ChunkedReader.parse_chunk_size`).
//!
//! This module judges one line, complete or still arriving; the decoder state machine that finds
//! lines and copies chunk data is in `body`.

use crate::error::ParseError;
use crate::headers::{is_token_byte, rstrip_sp_ht};

/// Where the RFC 9112 7.1.1 extension grammar stands after some bytes:
/// `*( BWS ";" BWS token [ BWS "=" BWS ( token / quoted-string ) ] )`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ext {
    /// Spaces after an item: only more spaces or `;` may follow.
    Bws,
    /// After `;`: spaces, then a name.
    AfterSemi,
    /// Inside a name (a valid end).
    Name,
    /// Spaces after a name: `=` or `;` must follow.
    AfterName,
    /// After `=`: spaces, then a token or a quoted string.
    AfterEq,
    /// Inside a token value (a valid end).
    Value,
    /// Inside a quoted string.
    Quoted,
    /// After a backslash in a quoted string.
    Escape,
    /// After the closing quote (a valid end).
    Closed,
    Fail,
}

fn is_sp_ht(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn is_qdtext(b: u8) -> bool {
    matches!(b, b'\t' | b' ' | b'!' | 0x23..=0x5b | 0x5d..=0x7e | 0x80..=0xff)
}

fn is_quoted_pair_char(b: u8) -> bool {
    matches!(b, b'\t' | 0x20..=0x7e | 0x80..=0xff)
}

fn step(state: Ext, b: u8) -> Ext {
    match state {
        Ext::Bws | Ext::AfterName | Ext::Name | Ext::Value | Ext::Closed if b == b';' => {
            Ext::AfterSemi
        }
        Ext::Bws | Ext::Value | Ext::Closed if is_sp_ht(b) => Ext::Bws,
        Ext::AfterSemi if is_sp_ht(b) => Ext::AfterSemi,
        Ext::AfterSemi | Ext::Name if is_token_byte(b) => Ext::Name,
        Ext::Name | Ext::AfterName if is_sp_ht(b) => Ext::AfterName,
        Ext::Name | Ext::AfterName if b == b'=' => Ext::AfterEq,
        Ext::AfterEq if is_sp_ht(b) => Ext::AfterEq,
        Ext::AfterEq if b == b'"' => Ext::Quoted,
        Ext::AfterEq | Ext::Value if is_token_byte(b) => Ext::Value,
        Ext::Quoted if b == b'"' => Ext::Closed,
        Ext::Quoted if b == b'\\' => Ext::Escape,
        Ext::Quoted if is_qdtext(b) => Ext::Quoted,
        Ext::Escape if is_quoted_pair_char(b) => Ext::Quoted,
        _ => Ext::Fail,
    }
}

/// Runs the grammar over what follows the first `;`.
fn ext_state(ext: &[u8]) -> Ext {
    let mut state = Ext::AfterSemi;
    for &b in ext {
        state = step(state, b);
        if state == Ext::Fail {
            break;
        }
    }
    state
}

fn ext_complete(ext: &[u8]) -> bool {
    matches!(ext_state(ext), Ext::Name | Ext::Value | Ext::Closed)
}

const BAD_EXTENSION: &str = "invalid chunk extension";
const BARE_CR: &str = "bare CR not allowed";

/// The error for a size line that outgrew the field-size limit without its CRLF.
pub(crate) fn line_too_long(limit: usize) -> ParseError {
    ParseError::InvalidChunkSize(format!("line over {limit} bytes with no terminator").into_bytes())
}

fn is_hex(bytes: &[u8]) -> bool {
    bytes.iter().all(u8::is_ascii_hexdigit)
}

/// Hex digits after leading zeros. More than 16 cannot be a size anyone sends; Gunicorn would
/// wait for that many bytes, this refuses them.
fn hex_value(size: &[u8]) -> Result<u64, ParseError> {
    let significant = &size[size.iter().take_while(|&&b| b == b'0').count()..];
    if significant.len() > 16 {
        return Err(ParseError::InvalidChunkSize(size.to_vec()));
    }
    Ok(significant.iter().fold(0u64, |acc, &b| {
        let digit = char::from(b).to_digit(16).unwrap_or(0);
        (acc << 4) | u64::from(digit)
    }))
}

/// Parses a complete chunk-size line (CRLF excluded) into the chunk size.
pub(crate) fn parse_size_line(line: &[u8], limit: usize) -> Result<u64, ParseError> {
    if line.len() > limit {
        return Err(line_too_long(limit));
    }
    let (size, ext) = match line.iter().position(|&b| b == b';') {
        Some(semi) => (&line[..semi], Some(&line[semi + 1..])),
        None => (line, None),
    };
    // BWS is allowed before an extension, and only then.
    let size = match ext {
        Some(ext) if ext.contains(&b'\r') => {
            return Err(ParseError::InvalidChunkExtension(BARE_CR))
        }
        Some(_) => rstrip_sp_ht(size),
        None => size,
    };
    if size.is_empty() || !is_hex(size) {
        return Err(ParseError::InvalidChunkSize(size.to_vec()));
    }
    if let Some(ext) = ext {
        if !ext_complete(ext) {
            return Err(ParseError::InvalidChunkExtension(BAD_EXTENSION));
        }
    }
    hex_value(size)
}

/// Judges a size line still waiting for its CRLF (`shown` excludes a final CR that may start it).
///
/// It is refused as soon as no continuation can make it valid, so a client cannot hold the
/// connection with a line that is already wrong. The status (400) is the one the whole line gets,
/// but not always the message: Gunicorn reads the whole line before judging it, and which error a
/// bad line gets depends on bytes not seen yet (`zz` is an InvalidChunkSize, `zz;a\rb` an
/// InvalidChunkExtension, and any line that outgrows the limit an InvalidChunkSize again). The
/// checks below follow Gunicorn's order on what has arrived.
pub(crate) fn check_size_line_prefix(
    shown: &[u8],
    cr_last: bool,
    limit: usize,
) -> Result<(), ParseError> {
    if shown.len() > limit {
        return Err(line_too_long(limit));
    }
    // After a final CR only LF may come, which ends the line as it is.
    if cr_last {
        return parse_size_line(shown, limit).map(drop);
    }
    let Some(semi) = shown.iter().position(|&b| b == b';') else {
        // Hex digits, then only the BWS that may come before an extension.
        let digits = shown.iter().take_while(|b| b.is_ascii_hexdigit()).count();
        let empty_size = digits == 0 && !shown.is_empty();
        if empty_size || !shown[digits..].iter().all(|&b| is_sp_ht(b)) {
            return Err(ParseError::InvalidChunkSize(shown.to_vec()));
        }
        hex_value(&shown[..digits])?;
        return Ok(());
    };
    let (size, ext) = (rstrip_sp_ht(&shown[..semi]), &shown[semi + 1..]);
    if ext.contains(&b'\r') {
        return Err(ParseError::InvalidChunkExtension(BARE_CR));
    }
    if size.is_empty() || !is_hex(size) {
        return Err(ParseError::InvalidChunkSize(size.to_vec()));
    }
    hex_value(size)?;
    if ext_state(ext) == Ext::Fail {
        return Err(ParseError::InvalidChunkExtension(BAD_EXTENSION));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extension_grammar() {
        for ok in [
            &b" some; parameters=stuff"[..],
            b" blahblah; blah",
            b"foo=\"bar baz\"",
            b"a = b ; c",
            b"a=\"x\\\"y\"",
            b"a;b;c=d",
        ] {
            assert!(ext_complete(ok), "{:?}", String::from_utf8_lossy(ok));
        }
        for bad in [
            &b""[..],
            b"a ",
            b"=b",
            b"a=",
            b"a=\"x",
            b"a b",
            b"a=b c",
            b"a=\"x\"y",
        ] {
            assert!(!ext_complete(bad), "{:?}", String::from_utf8_lossy(bad));
        }
        assert_eq!(ext_state(b"a b"), Ext::Fail);
        assert_ne!(ext_state(b"a = \"x"), Ext::Fail);
    }

    #[test]
    fn size_lines() {
        assert_eq!(parse_size_line(b"1e", 8190), Ok(30));
        assert_eq!(parse_size_line(b"0005", 8190), Ok(5));
        assert_eq!(parse_size_line(b"5 ; a=b", 8190), Ok(5));
        assert_eq!(
            parse_size_line(b"0 ", 8190),
            Err(ParseError::InvalidChunkSize(b"0 ".to_vec()))
        );
        assert_eq!(
            parse_size_line(b" ;foo=bar", 8190),
            Err(ParseError::InvalidChunkSize(vec![]))
        );
        assert_eq!(
            parse_size_line(b"5;ext=val\rue", 8190),
            Err(ParseError::InvalidChunkExtension(BARE_CR))
        );
        assert_eq!(
            parse_size_line(b"5;a b", 8190),
            Err(ParseError::InvalidChunkExtension(BAD_EXTENSION))
        );
        assert_eq!(parse_size_line(b"12345", 4), Err(line_too_long(4)));
        assert!(parse_size_line(b"1ffffffffffffffff", 8190).is_err());
    }

    #[test]
    fn size_line_prefixes_that_can_still_be_valid_wait() {
        for prefix in [
            &b""[..],
            b"5",
            b"5 ",
            b"5 \t",
            b"ffff",
            b"5 ; a = \"b",
            b"5;a=\"x\\",
            b"5;",
            b"000000000000000000001",
            b"ffffffffffffffff",
        ] {
            assert_eq!(
                check_size_line_prefix(prefix, false, 8190),
                Ok(()),
                "{prefix:?}"
            );
        }
        assert_eq!(
            check_size_line_prefix(b"12345", false, 4),
            Err(line_too_long(4))
        );
        assert_eq!(check_size_line_prefix(b"1234", false, 4), Ok(()));
    }

    #[test]
    fn a_size_line_cut_after_its_cr_is_judged_whole() {
        for bad in [&b""[..], b"5 ", b"5\t", b"5;", b"0;"] {
            let err = check_size_line_prefix(bad, true, 8190).expect_err("refused");
            assert_eq!(err.status(), 400, "{bad:?}");
        }
        for good in [&b"5"[..], b"5 ;a", b"0"] {
            assert_eq!(check_size_line_prefix(good, true, 8190), Ok(()), "{good:?}");
        }
    }

    #[test]
    fn size_line_prefixes_that_cannot_be_valid_are_refused() {
        for prefix in [
            &b"z"[..],
            b"5 5",
            b"-5",
            b"+5",
            b"0x5",
            b"6_",
            b" ",
            b"\0",
            b"5\nabc",
            b"5\rx",
            b";ext",
            b" ;",
            b"5;a b",
            b"5;a\rb",
            b"5;=",
            b"10000000000000000",
            b"10000000000000000;a",
        ] {
            let err = check_size_line_prefix(prefix, false, 8190).expect_err("refused");
            assert_eq!(err.status(), 400, "{prefix:?}");
        }
        assert_eq!(
            check_size_line_prefix(b"5;a\rb", false, 8190),
            Err(ParseError::InvalidChunkExtension(BARE_CR))
        );
    }
}
