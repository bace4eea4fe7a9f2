//! The `Host` field value (RFC 9112 3.2, RFC 9110 7.2): `uri-host [ ":" port ]` with the
//! RFC 3986 grammar for `uri-host`.
//!
//! Gunicorn 27 lets any value through to the app; a value an app or a cache may split, log or
//! route on differently from the proxy in front is refused here instead. This module only judges
//! one value; when Host is required or repeated is the field walk's and the head parser's business.

use std::net::Ipv6Addr;

const fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

const fn is_sub_delim(b: u8) -> bool {
    matches!(
        b,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
    )
}

/// `unreserved / sub-delims`, by byte: every request carries a Host, so this is per-request work.
const REG_NAME_BYTE: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = is_unreserved(b as u8) || is_sub_delim(b as u8);
        b += 1;
    }
    table
};

/// `reg-name = *( unreserved / pct-encoded / sub-delims )`; an IPv4 address is one too.
fn valid_reg_name(name: &[u8]) -> bool {
    let mut i = 0;
    while i < name.len() {
        if REG_NAME_BYTE[usize::from(name[i])] {
            i += 1;
        } else if name[i] == b'%'
            && name
                .get(i + 1..i + 3)
                .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit))
        {
            i += 3;
        } else {
            return false;
        }
    }
    true
}

/// What sits between `[` and `]`: an IPv6 address or `IPvFuture`
/// (`"v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" )`). Zone identifiers are not part of it.
fn valid_ip_literal(literal: &str) -> bool {
    if let Some(future) = literal.strip_prefix(['v', 'V']) {
        let Some((version, rest)) = future.split_once('.') else {
            return false;
        };
        return !version.is_empty()
            && version.bytes().all(|b| b.is_ascii_hexdigit())
            && !rest.is_empty()
            && rest
                .bytes()
                .all(|b| is_unreserved(b) || is_sub_delim(b) || b == b':');
    }
    literal.parse::<Ipv6Addr>().is_ok()
}

/// A port that TCP can have: digits, at least one, at most 65535.
fn valid_port(port: &str) -> bool {
    let digits = port.trim_start_matches('0');
    !port.is_empty()
        && port.bytes().all(|b| b.is_ascii_digit())
        && digits.len() <= 5
        && digits
            .bytes()
            .fold(0u32, |n, b| n * 10 + u32::from(b - b'0'))
            <= 65535
}

/// Whether `value` (already stripped of surrounding SP/HTAB) is a valid Host field value. An
/// empty value is valid: it is what a client sends for a target without an authority.
pub(crate) fn valid_host(value: &str) -> bool {
    let (host_ok, port) = if let Some(rest) = value.strip_prefix('[') {
        let Some((literal, after)) = rest.split_once(']') else {
            return false;
        };
        let port = match after {
            "" => None,
            _ => match after.strip_prefix(':') {
                Some(port) => Some(port),
                None => return false,
            },
        };
        (valid_ip_literal(literal), port)
    } else {
        let (host, port) = match value.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (value, None),
        };
        (valid_reg_name(host.as_bytes()), port)
    };
    host_ok && port.is_none_or(valid_port)
}

#[cfg(test)]
mod tests {
    use super::valid_host;

    #[test]
    fn accepts_what_rfc_3986_allows() {
        for ok in [
            "",
            "example.com",
            "example.com:8080",
            "127.0.0.1:80",
            "[::1]",
            "[::1]:8080",
            "[2001:db8::7]:443",
            "[v1.fe80::a+en1]",
            "0.0.0.0=5000",
            "xn--bcher-kva.example",
            "a%20b",
            "EXAMPLE.com:0",
            "host:00080",
            ":80",
            "a_b~c!$&'()*+,;=",
        ] {
            assert!(valid_host(ok), "{ok:?}");
        }
    }

    #[test]
    fn refuses_everything_else() {
        for bad in [
            "a b",
            "a/b",
            "user@host",
            "a\\b",
            "a\u{1}b",
            "host:",
            "host:abc",
            "host:65536",
            "host:99999999999999999999",
            "host:-1",
            "[::1",
            "[zz]",
            "[::1]x",
            "[::1]:",
            "[fe80::1%25eth0]",
            "[v.x]",
            "[v1.]",
            "caf\u{e9}",
            "a:1:2",
            "a%2",
            "a%zz",
            "a\"b",
            "a<b>",
            "a#b",
            "a?b",
            "::1",
        ] {
            assert!(!valid_host(bad), "{bad:?}");
        }
    }
}
