//! Python `repr()` of text and bytes, and latin-1 conversions.
//!
//! Gunicorn builds its error messages with `%r`, and those messages reach clients (error pages) and
//! logs, so they are reproduced byte for byte here. This module owns only string formatting; it
//! knows nothing about HTTP.

/// Decodes bytes as latin-1: every byte becomes the char with the same code point, which is what
/// Gunicorn's `bytes_to_str` does to everything it reads off the wire.
pub fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

/// Encodes text as latin-1 into `out`. Callers validate first, so nothing above U+00FF should
/// arrive; if it does anyway, `?` stands in rather than silently wrapping the code point.
pub fn push_latin1(out: &mut Vec<u8>, text: &str) {
    out.extend(
        text.chars()
            .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?')),
    );
}

/// Picks the quote Python's repr uses: double quotes only when the text has a single quote and
/// no double quote.
fn quote_for(has_single: bool, has_double: bool) -> char {
    if has_single && !has_double {
        '"'
    } else {
        '\''
    }
}

/// Whether Python's `str.isprintable()` holds for `c`. Exact for latin-1 (the only range wire
/// data can produce); above it, control and non-space whitespace characters are treated as
/// unprintable, which covers what an application can plausibly hand us.
fn py_printable(c: char) -> bool {
    let cp = u32::from(c);
    match cp {
        0x20..=0x7e => true,
        0..=0x1f | 0x7f..=0xa0 | 0xad => false,
        0xa1..=0xff => true,
        _ => !(c.is_control() || (c.is_whitespace() && c != ' ')),
    }
}

/// `repr(text)` as Python 3 prints it.
pub fn repr_str(text: &str) -> String {
    let quote = quote_for(text.contains('\''), text.contains('"'));
    let mut out = String::with_capacity(text.len() + 2);
    out.push(quote);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if py_printable(c) => out.push(c),
            c => {
                let cp = u32::from(c);
                if cp <= 0xff {
                    out.push_str(&format!("\\x{cp:02x}"));
                } else if cp <= 0xffff {
                    out.push_str(&format!("\\u{cp:04x}"));
                } else {
                    out.push_str(&format!("\\U{cp:08x}"));
                }
            }
        }
    }
    out.push(quote);
    out
}

/// `repr(data)` for a Python `bytes` object, `b'...'`.
pub fn repr_bytes(data: &[u8]) -> String {
    let quote = quote_for(data.contains(&b'\''), data.contains(&b'"'));
    let mut out = String::with_capacity(data.len() + 3);
    out.push('b');
    out.push(quote);
    for &b in data {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            b if char::from(b) == quote => {
                out.push('\\');
                out.push(char::from(b));
            }
            0x20..=0x7e => out.push(char::from(b)),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out.push(quote);
    out
}

/// Python's `html.escape(text, quote=True)`, used on the message of Gunicorn's error page.
pub fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    out
}

/// Python's `int(text)` for base 10, as Gunicorn uses it on PROXY ports and on an application's
/// Content-Length: surrounding whitespace, one sign, and single underscores between digits are
/// accepted. `None` where Python raises ValueError (or the value does not fit an i64).
pub fn py_int(text: &str) -> Option<i64> {
    let is_py_space = |c: char| {
        matches!(
            c,
            '\t' | '\n' | '\x0b' | '\x0c' | '\r' | '\x1c'..='\x1f' | ' ' | '\u{85}'
        ) || c.is_whitespace()
    };
    let trimmed = text.trim_matches(is_py_space);
    let (negative, digits) = match trimmed.as_bytes().first() {
        Some(b'-') => (true, &trimmed[1..]),
        Some(b'+') => (false, &trimmed[1..]),
        _ => (false, trimmed),
    };
    let bytes = digits.as_bytes();
    if bytes.is_empty() || bytes[0] == b'_' || bytes[bytes.len() - 1] == b'_' {
        return None;
    }
    let mut value: i64 = 0;
    let mut prev_underscore = false;
    for &b in bytes {
        if b == b'_' {
            if prev_underscore {
                return None;
            }
            prev_underscore = true;
            continue;
        }
        prev_underscore = false;
        if !b.is_ascii_digit() {
            return None;
        }
        value = value.checked_mul(10)?.checked_add(i64::from(b - b'0'))?;
    }
    Some(if negative { -value } else { value })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn str_repr_matches_python() {
        assert_eq!(repr_str("GET\u{c3}\u{9f}"), "'GET\u{c3}\\x9f'");
        assert_eq!(repr_str("a'b"), "\"a'b\"");
        assert_eq!(repr_str("a'b\""), "'a\\'b\"'");
        assert_eq!(repr_str("ba\0z"), "'ba\\x00z'");
        assert_eq!(repr_str("\u{a0}\u{ad}\u{ff}"), "'\\xa0\\xad\u{ff}'");
    }

    #[test]
    fn bytes_repr_matches_python() {
        assert_eq!(repr_bytes(b"5\n"), "b'5\\n'");
        assert_eq!(repr_bytes(b""), "b''");
        assert_eq!(repr_bytes(b"\xff'"), "b\"\\xff'\"");
    }

    #[test]
    fn python_int_rules() {
        assert_eq!(py_int(" 443 "), Some(443));
        assert_eq!(py_int("1_000"), Some(1000));
        assert_eq!(py_int("-0"), Some(0));
        assert_eq!(py_int("+7"), Some(7));
        assert_eq!(py_int("65iii"), None);
        assert_eq!(py_int("1__0"), None);
        assert_eq!(py_int("_1"), None);
        assert_eq!(py_int(""), None);
    }

    #[test]
    fn escape_html() {
        assert_eq!(
            html_escape("a<'b'>&\""),
            "a&lt;&#x27;b&#x27;&gt;&amp;&quot;"
        );
    }
}
