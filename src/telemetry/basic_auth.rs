//! The user name of the access log's `u` atom, taken from `Authorization: Basic`.
//!
//! Owns: reproducing Gunicorn's `_get_user`, including Python's lenient base64 decoding
//! (characters outside the alphabet are skipped, data after complete padding is ignored) so
//! the same malformed headers give the same result. Must not touch: authentication itself;
//! nothing here is trusted, it is only printed.

/// The user name, `None` when the header is not Basic or names no user, or Python's error
/// text when decoding fails (Gunicorn logs that at debug level and prints `-`).
pub(crate) fn user(authorization: &str) -> Result<Option<String>, String> {
    let scheme = authorization.as_bytes().get(..5);
    if !scheme.is_some_and(|s| s.eq_ignore_ascii_case(b"basic")) {
        return Ok(None);
    }
    // Gunicorn splits on the first single space; "Basic\tx" has no credentials part.
    let Some((_, credentials)) = authorization.split_once(' ') else {
        return Ok(None);
    };
    let decoded = b64decode_lenient(credentials.as_bytes())?;
    let name = match decoded.iter().position(|&b| b == b':') {
        Some(colon) => &decoded[..colon],
        None => &decoded[..],
    };
    let name = std::str::from_utf8(name).map_err(|e| utf8_error_text(name, e))?;
    Ok((!name.is_empty()).then(|| name.to_owned()))
}

fn sextet(b: u8) -> Option<u8> {
    match b {
        b'A'..=b'Z' => Some(b - b'A'),
        b'a'..=b'z' => Some(b - b'a' + 26),
        b'0'..=b'9' => Some(b - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

/// `binascii.a2b_base64(data, strict_mode=False)`.
fn b64decode_lenient(input: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(input.len() / 4 * 3 + 2);
    let mut quad_pos = 0u8;
    let mut pads = 0u8;
    let mut left = 0u8;
    let mut data_chars = 0usize;
    for &b in input {
        if b == b'=' {
            // Padding only counts once two data characters of the quad are in, and a full
            // quad of data plus padding ends the input.
            if quad_pos >= 2 {
                pads += 1;
                if quad_pos + pads >= 4 {
                    return Ok(out);
                }
            }
            continue;
        }
        let Some(v) = sextet(b) else {
            continue;
        };
        data_chars += 1;
        pads = 0;
        match quad_pos {
            0 => {
                left = v;
                quad_pos = 1;
            }
            1 => {
                out.push((left << 2) | (v >> 4));
                left = v & 0x0f;
                quad_pos = 2;
            }
            2 => {
                out.push((left << 4) | (v >> 2));
                left = v & 0x03;
                quad_pos = 3;
            }
            _ => {
                out.push((left << 6) | v);
                quad_pos = 0;
            }
        }
    }
    match quad_pos {
        0 => Ok(out),
        1 => Err(format!(
            "Invalid base64-encoded string: number of data characters ({data_chars}) cannot \
             be 1 more than a multiple of 4"
        )),
        _ => Err("Incorrect padding".into()),
    }
}

/// Python's `UnicodeDecodeError` text for the first bad byte.
fn utf8_error_text(bytes: &[u8], e: std::str::Utf8Error) -> String {
    let at = e.valid_up_to();
    let byte = bytes[at];
    let reason = match e.error_len() {
        None => "unexpected end of data",
        Some(_) if matches!(byte, 0x80..=0xc1 | 0xf5..=0xff) => "invalid start byte",
        Some(_) => "invalid continuation byte",
    };
    format!("'utf-8' codec can't decode byte 0x{byte:02x} in position {at}: {reason}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenient_base64_matches_python() {
        let ok = |s: &str, want: &[u8]| assert_eq!(b64decode_lenient(s.as_bytes()).unwrap(), want);
        ok("dXNlcjpwYXNz", b"user:pass");
        ok("dXNlcjpwYXNz====", b"user:pass");
        ok("dXNl cjpw YXNz", b"user:pass");
        ok("YQ==YQ==", b"a");
        ok("YQ=YQ==", b"a\x06\x10");
        ok("=YQ==", b"a");
        ok("!!YQ==", b"a");
        ok("YQ=\n=", b"a");
        ok("YWI=Yw==", b"ab");
        ok("", b"");
        ok("YW=JjZA==", b"abcd");
        let err = |s: &str| b64decode_lenient(s.as_bytes()).unwrap_err();
        assert_eq!(err("dXNlcjpwYXN"), "Incorrect padding");
        assert_eq!(err("YQ="), "Incorrect padding");
        assert_eq!(err("Y=Q="), "Incorrect padding");
        assert_eq!(err("YW=JjZA="), "Incorrect padding");
        assert_eq!(
            err("Y"),
            "Invalid base64-encoded string: number of data characters (1) cannot be 1 more \
             than a multiple of 4"
        );
    }

    #[test]
    fn user_extraction() {
        assert_eq!(user("Basic dXNlcjpwYXNz").unwrap().as_deref(), Some("user"));
        assert_eq!(user("basic dXNlcjpwYXNz").unwrap().as_deref(), Some("user"));
        assert_eq!(user("BASIC dXNlcg==").unwrap().as_deref(), Some("user"));
        assert_eq!(user("Basic YTpiOmM=").unwrap().as_deref(), Some("a"));
        assert_eq!(user("Basic Og==").unwrap(), None, "empty user prints -");
        assert_eq!(user("Bearer dXNlcjpwYXNz").unwrap(), None);
        assert_eq!(user("Basic").unwrap(), None);
        assert_eq!(user("Basic\tdXNlcg==").unwrap(), None);
        assert_eq!(user("").unwrap(), None);
        assert_eq!(user("Basic dXNlcjpwYXN").unwrap_err(), "Incorrect padding");
        assert_eq!(
            user("Basic /w==").unwrap_err(),
            "'utf-8' codec can't decode byte 0xff in position 0: invalid start byte"
        );
        // "Basicx y" starts with "basic" and has a space, as in Gunicorn.
        assert_eq!(user("Basicx dXNlcg==").unwrap().as_deref(), Some("user"));
    }
}
