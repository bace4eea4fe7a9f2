//! Python-compatible text primitives used by the config layer: `int(x, base)` parsing,
//! `repr()` of strings and `os.path` lexical normalisation.
//!
//! Gunicorn's validators and argparse messages are defined in terms of these Python
//! builtins, so they are reproduced here exactly rather than approximated. This module owns
//! no state and must not touch the process (no cwd, no environment).

/// Why an integer literal was rejected, worded as Python's `int()` would word it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum IntError {
    /// Not an integer literal in the requested base.
    Invalid,
    /// A valid literal that does not fit in an `i64` (Python would accept it; we cannot).
    TooLarge,
}

impl IntError {
    /// Message for a failed `int(text, base)`, matching CPython's `ValueError`.
    pub(crate) fn message(&self, text: &str, base: u32) -> String {
        match self {
            IntError::Invalid => format!(
                "invalid literal for int() with base {base}: {}",
                py_repr(text)
            ),
            IntError::TooLarge => format!("integer {} is too large", text.trim()),
        }
    }
}

/// `int(text, base)` for base 0 (prefix-detecting, no leading zeros) or 10, including
/// Python's whitespace trimming, sign, and single underscores between digits.
pub(crate) fn parse_py_int(text: &str, base: u32) -> Result<i64, IntError> {
    debug_assert!(base == 0 || base == 10);
    let t = text.trim();
    let (negative, body) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let lower = body.to_ascii_lowercase();
    let (radix, digits, prefixed) = if base == 0 && lower.len() > 1 && lower.starts_with('0') {
        match lower.as_bytes()[1] {
            b'x' => (16, &body[2..], true),
            b'o' => (8, &body[2..], true),
            b'b' => (2, &body[2..], true),
            _ => (10, body, false),
        }
    } else {
        (10, body, false)
    };
    // A prefix may be followed directly by one underscore ("0x_ff"); nowhere else may an
    // underscore lead, trail or repeat.
    let digits = if prefixed {
        digits.strip_prefix('_').unwrap_or(digits)
    } else {
        digits
    };
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
    {
        return Err(IntError::Invalid);
    }
    let clean: String = digits.chars().filter(|c| *c != '_').collect();
    if !clean.chars().all(|c| c.is_digit(radix)) {
        return Err(IntError::Invalid);
    }
    // Base 0 forbids "007": a decimal literal may start with 0 only if it is all zeros.
    if base == 0 && !prefixed && clean.starts_with('0') && clean.chars().any(|c| c != '0') {
        return Err(IntError::Invalid);
    }
    let magnitude = i128::from_str_radix(&clean, radix).map_err(|_| IntError::TooLarge)?;
    let value = if negative { -magnitude } else { magnitude };
    i64::try_from(value).map_err(|_| IntError::TooLarge)
}

/// Gunicorn's `auto_int` argparse type: a leading `0<digit>` is read as octal (`0022` is
/// 18), everything else as `int(x, 0)`.
pub(crate) fn parse_auto_int(text: &str) -> Result<i64, IntError> {
    let b = text.as_bytes();
    if b.len() >= 2 && b[0] == b'0' && b[1].is_ascii_digit() {
        parse_py_int(&format!("0o{}", &text[1..]), 0)
    } else {
        parse_py_int(text, 0)
    }
}

/// Python's `repr()` of a `str` (one implementation, shared with the HTTP codec's messages).
pub(crate) fn py_repr(text: &str) -> String {
    ferrocorn_h1::repr_str(text)
}

/// `os.path.normpath` for POSIX paths: purely lexical, keeps a leading `//`.
pub(crate) fn normpath(path: &str) -> String {
    if path.is_empty() {
        return ".".to_string();
    }
    let initial_slashes = if path.starts_with("//") && !path.starts_with("///") {
        2
    } else if path.starts_with('/') {
        1
    } else {
        0
    };
    let mut parts: Vec<&str> = Vec::new();
    for comp in path.split('/') {
        match comp {
            "" | "." => {}
            ".." => {
                if initial_slashes == 0 && (parts.is_empty() || parts.last() == Some(&"..")) {
                    parts.push("..");
                } else if !parts.is_empty() {
                    parts.pop();
                }
            }
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    let out = format!("{}{}", "/".repeat(initial_slashes), joined);
    if out.is_empty() {
        ".".to_string()
    } else {
        out
    }
}

/// `os.path.abspath(os.path.normpath(os.path.join(base, path)))`.
pub(crate) fn abspath_from(base: &str, path: &str) -> String {
    let joined = if path.starts_with('/') {
        path.to_string()
    } else if base.ends_with('/') || base.is_empty() {
        format!("{base}{path}")
    } else {
        format!("{base}/{path}")
    };
    normpath(&joined)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int_base0_matches_python() {
        assert_eq!(parse_py_int("0", 0), Ok(0));
        assert_eq!(parse_py_int(" 42 ", 0), Ok(42));
        assert_eq!(parse_py_int("-7", 0), Ok(-7));
        assert_eq!(parse_py_int("0xFF", 0), Ok(255));
        assert_eq!(parse_py_int("0o17", 0), Ok(15));
        assert_eq!(parse_py_int("0b101", 0), Ok(5));
        assert_eq!(parse_py_int("0x_1f", 0), Ok(31));
        assert_eq!(parse_py_int("1_000", 0), Ok(1000));
        assert_eq!(parse_py_int("000", 0), Ok(0));
        assert_eq!(parse_py_int("0022", 0), Err(IntError::Invalid));
        assert_eq!(parse_py_int("1__0", 0), Err(IntError::Invalid));
        assert_eq!(parse_py_int("_1", 0), Err(IntError::Invalid));
        assert_eq!(parse_py_int("1_", 0), Err(IntError::Invalid));
        assert_eq!(parse_py_int("", 0), Err(IntError::Invalid));
        assert_eq!(parse_py_int("0x", 0), Err(IntError::Invalid));
        assert_eq!(parse_py_int("abc", 0), Err(IntError::Invalid));
        assert_eq!(parse_py_int("4.5", 0), Err(IntError::Invalid));
        assert_eq!(
            parse_py_int("99999999999999999999", 0),
            Err(IntError::TooLarge)
        );
    }

    #[test]
    fn int_base10_allows_leading_zeros_but_no_prefix() {
        assert_eq!(parse_py_int("0022", 10), Ok(22));
        assert_eq!(parse_py_int("+4", 10), Ok(4));
        assert_eq!(parse_py_int("0x10", 10), Err(IntError::Invalid));
        assert_eq!(
            IntError::Invalid.message("x", 10),
            "invalid literal for int() with base 10: 'x'"
        );
    }

    #[test]
    fn auto_int_forms() {
        assert_eq!(parse_auto_int("0"), Ok(0));
        assert_eq!(parse_auto_int("0o0"), Ok(0));
        assert_eq!(parse_auto_int("0x0"), Ok(0));
        assert_eq!(parse_auto_int("0xFF"), Ok(255));
        assert_eq!(parse_auto_int("0022"), Ok(18));
        assert_eq!(parse_auto_int("022"), Ok(18));
        assert_eq!(parse_auto_int("18"), Ok(18));
        assert_eq!(parse_auto_int("08"), Err(IntError::Invalid));
    }

    #[test]
    fn repr_picks_quotes_like_python() {
        assert_eq!(py_repr("abc"), "'abc'");
        assert_eq!(py_repr("it's"), "\"it's\"");
        assert_eq!(py_repr("a'b\"c"), "'a\\'b\"c'");
        assert_eq!(py_repr("a\\b\n"), "'a\\\\b\\n'");
        assert_eq!(py_repr("\u{1}"), "'\\x01'");
        assert_eq!(py_repr("é"), "'é'");
    }

    #[test]
    fn normpath_is_lexical() {
        assert_eq!(normpath("/a/./b/../c/"), "/a/c");
        assert_eq!(normpath("a/../../b"), "../b");
        assert_eq!(normpath("/../x"), "/x");
        assert_eq!(normpath("//x/y"), "//x/y");
        assert_eq!(normpath("///x"), "/x");
        assert_eq!(normpath(""), ".");
        assert_eq!(abspath_from("/srv/app", "../lib"), "/srv/lib");
        assert_eq!(abspath_from("/srv/app", "/abs"), "/abs");
        assert_eq!(abspath_from("/srv/app", "."), "/srv/app");
    }
}
