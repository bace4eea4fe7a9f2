//! Python's `str % mapping` formatting, compiled once and rendered without Python.
//!
//! Owns: parsing `%(key)[flags][width][.precision][hlL]conv` exactly as CPython's
//! `PyUnicode_Format` does (nested parentheses in keys, `%%`, the same error texts), and
//! converting typed values (`s r a d i u o x X e E f F g G c`). Must not touch: what keys mean;
//! the caller resolves each key once at parse time into its own key type.

use std::borrow::Cow;
use std::fmt::Write;

/// A value as the atom dict holds it: Python str, int or None.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value<'a> {
    Str(Cow<'a, str>),
    Int(u64),
    None,
}

impl Value<'_> {
    fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "str",
            Value::Int(_) => "int",
            Value::None => "NoneType",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Flags {
    pub left: bool,
    pub zero: bool,
    pub plus: bool,
    pub space: bool,
    pub alt: bool,
}

/// Everything after the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Conversion {
    pub flags: Flags,
    pub width: usize,
    pub precision: Option<usize>,
    pub conv: char,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Piece<K> {
    Literal(String),
    Field(K, Conversion),
}

const CONVERSIONS: &str = "sradiuoxXeEfFgGc";

/// Parses a format that is applied to a mapping, resolving each key with `resolve`.
/// Errors carry Python's exception text (`ValueError: incomplete format`, ...).
pub(crate) fn parse<K>(
    format: &str,
    mut resolve: impl FnMut(&str) -> K,
) -> Result<Vec<Piece<K>>, String> {
    let chars: Vec<char> = format.chars().collect();
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '%' {
            literal.push(chars[i]);
            i += 1;
            continue;
        }
        let spec_start = i;
        i += 1;
        if i >= chars.len() {
            return Err("ValueError: incomplete format".into());
        }
        if chars[i] == '%' {
            literal.push('%');
            i += 1;
            continue;
        }
        // The key runs to the matching ')', counting nested parentheses like CPython.
        let mut key = None;
        if chars[i] == '(' {
            let key_start = i + 1;
            let mut depth = 1;
            let mut j = key_start;
            while j < chars.len() && depth > 0 {
                match chars[j] {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                j += 1;
            }
            if depth > 0 {
                return Err("ValueError: incomplete format key".into());
            }
            key = Some(chars[key_start..j - 1].iter().collect::<String>());
            i = j;
        }

        let mut flags = Flags::default();
        while i < chars.len() {
            match chars[i] {
                '-' => flags.left = true,
                '+' => flags.plus = true,
                ' ' => flags.space = true,
                '#' => flags.alt = true,
                '0' => flags.zero = true,
                _ => break,
            }
            i += 1;
        }
        let width = parse_number(&chars, &mut i, "width")?.unwrap_or(0);
        let mut precision = None;
        if i < chars.len() && chars[i] == '.' {
            i += 1;
            precision = Some(parse_number(&chars, &mut i, "precision")?.unwrap_or(0));
        }
        if i < chars.len() && matches!(chars[i], 'h' | 'l' | 'L') {
            i += 1;
        }
        let Some(&conv) = chars.get(i) else {
            return Err("ValueError: incomplete format".into());
        };
        if !CONVERSIONS.contains(conv) {
            // CPython prints '?' for anything outside printable ASCII.
            let shown = if conv.is_ascii_graphic() || conv == ' ' {
                conv
            } else {
                '?'
            };
            return Err(format!(
                "ValueError: unsupported format character '{shown}' (0x{:x}) at index {i}",
                conv as u32
            ));
        }
        i += 1;
        // Python would format the whole atom dict for a keyless field; no one wants that in
        // a log line, so it is refused up front.
        let Some(key) = key else {
            return Err(format!(
                "TypeError: unnamed format specifier at index {spec_start}; the atoms are a \
                 mapping, so every field needs a key such as %(h)s"
            ));
        };
        if !literal.is_empty() {
            pieces.push(Piece::Literal(std::mem::take(&mut literal)));
        }
        pieces.push(Piece::Field(
            resolve(&key),
            Conversion {
                flags,
                width,
                precision,
                conv,
            },
        ));
    }
    if !literal.is_empty() {
        pieces.push(Piece::Literal(literal));
    }
    Ok(pieces)
}

fn parse_number(chars: &[char], i: &mut usize, what: &str) -> Result<Option<usize>, String> {
    if chars.get(*i) == Some(&'*') {
        return Err("TypeError: * wants int".into());
    }
    let start = *i;
    let mut n: usize = 0;
    while let Some(d) = chars.get(*i).and_then(|c| c.to_digit(10)) {
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_add(d as usize))
            .filter(|n| *n <= i32::MAX as usize)
            .ok_or_else(|| format!("ValueError: {what} too big"))?;
        *i += 1;
    }
    Ok((*i > start).then_some(n))
}

/// Appends `value` converted by `c` to `out`, or returns Python's exception text.
pub(crate) fn render(c: &Conversion, value: &Value<'_>, out: &mut String) -> Result<(), String> {
    match c.conv {
        's' | 'r' | 'a' => {
            let text: Cow<'_, str> = match (value, c.conv) {
                (Value::Str(s), 's') => Cow::Borrowed(s.as_ref()),
                (Value::Str(s), conv) => Cow::Owned(py_repr(s, conv == 'a')),
                (Value::Int(n), _) => Cow::Owned(n.to_string()),
                (Value::None, _) => Cow::Borrowed("None"),
            };
            let text = match c.precision {
                Some(p) => match text.char_indices().nth(p) {
                    Some((cut, _)) => Cow::Owned(text[..cut].to_owned()),
                    None => text,
                },
                None => text,
            };
            pad_text(out, &text, c.width, c.flags.left);
        }
        'c' => {
            let ch = match value {
                Value::Int(n) => u32::try_from(*n)
                    .ok()
                    .filter(|n| *n < 0x110000)
                    .ok_or("OverflowError: %c arg not in range(0x110000)")?,
                Value::Str(s) => {
                    let mut it = s.chars();
                    match (it.next(), it.next()) {
                        (Some(ch), None) => ch as u32,
                        _ => return Err("TypeError: %c requires int or char".into()),
                    }
                }
                Value::None => return Err("TypeError: %c requires int or char".into()),
            };
            // Lone surrogates exist in Python strings but not in Rust ones.
            let ch = char::from_u32(ch).unwrap_or(char::REPLACEMENT_CHARACTER);
            pad_text(out, ch.encode_utf8(&mut [0; 4]), c.width, c.flags.left);
        }
        'd' | 'i' | 'u' | 'o' | 'x' | 'X' => {
            let Value::Int(n) = value else {
                let need = if matches!(c.conv, 'd' | 'i' | 'u') {
                    "a real number"
                } else {
                    "an integer"
                };
                return Err(format!(
                    "TypeError: %{} format: {need} is required, not {}",
                    c.conv,
                    value.type_name()
                ));
            };
            let (prefix, mut digits) = match c.conv {
                'o' => ("0o", format!("{n:o}")),
                'x' => ("0x", format!("{n:x}")),
                'X' => ("0X", format!("{n:X}")),
                _ => ("", n.to_string()),
            };
            if let Some(p) = c.precision {
                if digits.len() < p {
                    digits.insert_str(0, &"0".repeat(p - digits.len()));
                }
            }
            let prefix = if c.flags.alt { prefix } else { "" };
            pad_number(out, sign(&c.flags), prefix, &digits, c);
        }
        'e' | 'E' | 'f' | 'F' | 'g' | 'G' => {
            let Value::Int(n) = value else {
                return Err(format!(
                    "TypeError: must be real number, not {}",
                    value.type_name()
                ));
            };
            let body = format_float(*n as f64, c.conv, c.precision.unwrap_or(6), c.flags.alt);
            pad_number(out, sign(&c.flags), "", &body, c);
        }
        other => unreachable!("parse admits only known conversions, got {other:?}"),
    }
    Ok(())
}

/// The sign position for a non-negative number (the atom dict holds no negative ints).
fn sign(flags: &Flags) -> &'static str {
    if flags.plus {
        "+"
    } else if flags.space {
        " "
    } else {
        ""
    }
}

fn push_repeated(out: &mut String, ch: char, count: usize) {
    for _ in 0..count {
        out.push(ch);
    }
}

fn pad_text(out: &mut String, text: &str, width: usize, left: bool) {
    let fill = width.saturating_sub(text.chars().count());
    if !left {
        push_repeated(out, ' ', fill);
    }
    out.push_str(text);
    if left {
        push_repeated(out, ' ', fill);
    }
}

/// Numbers pad with zeros between sign/prefix and digits when `0` is given without `-`.
fn pad_number(out: &mut String, sign: &str, prefix: &str, digits: &str, c: &Conversion) {
    let len = sign.len() + prefix.len() + digits.len();
    let fill = c.width.saturating_sub(len);
    if c.flags.left {
        out.push_str(sign);
        out.push_str(prefix);
        out.push_str(digits);
        push_repeated(out, ' ', fill);
    } else if c.flags.zero {
        out.push_str(sign);
        out.push_str(prefix);
        push_repeated(out, '0', fill);
        out.push_str(digits);
    } else {
        push_repeated(out, ' ', fill);
        out.push_str(sign);
        out.push_str(prefix);
        out.push_str(digits);
    }
}

/// `%e %f %g` of a finite non-negative value, with C's exponent shape (`e+06`).
fn format_float(v: f64, conv: char, precision: usize, alt: bool) -> String {
    let upper = conv.is_ascii_uppercase();
    match conv.to_ascii_lowercase() {
        'f' => {
            let mut s = format!("{v:.precision$}");
            if alt && precision == 0 {
                s.push('.');
            }
            s
        }
        'e' => exponential(v, precision, alt, upper),
        _ => {
            let p = precision.max(1);
            // The exponent after rounding to p significant digits decides the style.
            let exp = if v == 0.0 {
                0
            } else {
                split_exponent(&format!("{v:.prec$e}", prec = p - 1)).1
            };
            let mut s = if exp >= -4 && exp < p as i32 {
                let decimals = (p as i32 - 1 - exp) as usize;
                let mut s = format!("{v:.decimals$}");
                if alt && decimals == 0 {
                    s.push('.');
                }
                s
            } else {
                exponential(v, p - 1, alt, upper)
            };
            if !alt {
                s = strip_fraction_zeros(&s);
            }
            s
        }
    }
}

fn split_exponent(rust_exp: &str) -> (&str, i32) {
    let (mantissa, exp) = rust_exp.split_once('e').unwrap_or((rust_exp, "0"));
    (mantissa, exp.parse().unwrap_or(0))
}

fn exponential(v: f64, precision: usize, alt: bool, upper: bool) -> String {
    let rust = format!("{v:.precision$e}");
    let (mantissa, exp) = split_exponent(&rust);
    let mut s = mantissa.to_owned();
    if alt && precision == 0 {
        s.push('.');
    }
    s.push(if upper { 'E' } else { 'e' });
    s.push(if exp < 0 { '-' } else { '+' });
    let _ = write!(s, "{:02}", exp.unsigned_abs());
    s
}

/// `%g` without `#`: drop trailing zeros of the fraction, and the point if nothing is left.
fn strip_fraction_zeros(s: &str) -> String {
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(at) => s.split_at(at),
        None => (s, ""),
    };
    let mantissa = if mantissa.contains('.') {
        mantissa.trim_end_matches('0').trim_end_matches('.')
    } else {
        mantissa
    };
    format!("{mantissa}{exponent}")
}

/// Python's `repr(str)` (or `ascii(str)` when `ascii_only`): quote choice and escapes as
/// CPython does. Printability follows Python's rules for the characters that matter in logs
/// (controls, separators, format characters, private use); unassigned code points, which
/// need the Unicode database, are treated as printable.
pub(crate) fn py_repr(s: &str, ascii_only: bool) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for ch in s.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (' '..='~').contains(&c) => out.push(c),
            c if !ascii_only && !c.is_ascii() && is_printable(c) => out.push(c),
            c => {
                let n = c as u32;
                let _ = if n < 0x100 {
                    write!(out, "\\x{n:02x}")
                } else if n < 0x10000 {
                    write!(out, "\\u{n:04x}")
                } else {
                    write!(out, "\\U{n:08x}")
                };
            }
        }
    }
    out.push(quote);
    out
}

fn is_printable(c: char) -> bool {
    let n = c as u32;
    !matches!(n,
        0x80..=0xa0 | 0xad | 0x600..=0x605 | 0x61c | 0x6dd | 0x70f | 0x890..=0x891 | 0x8e2
        | 0x1680 | 0x180e | 0x2000..=0x200f | 0x2028..=0x202f | 0x205f..=0x2064
        | 0x2066..=0x206f | 0x3000 | 0xe000..=0xf8ff | 0xfeff | 0xfff9..=0xfffb
        | 0xfffe..=0xffff | 0x110bd | 0x110cd | 0x13430..=0x1343f | 0x1bca0..=0x1bca3
        | 0x1d173..=0x1d17a | 0xe0001 | 0xe0020..=0xe007f | 0xf0000..=0x10ffff)
}
