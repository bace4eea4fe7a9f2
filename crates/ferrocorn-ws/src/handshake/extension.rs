//! permessage-deflate negotiation (RFC 7692 section 7.1) over `Sec-WebSocket-Extensions`.
//!
//! Owns: reading the client's extension offers and choosing the response. It must not compress
//! anything; the agreed [`DeflateParams`] go to the codec's config.
//!
//! The compressor is flate2 on miniz_oxide, which always uses a 32 KiB window (15 bits):
//! flate2's `Compress::new_with_window_bits` exists only with a zlib backend. So an offer with
//! `server_max_window_bits` below 15 is declined rather than answered with a promise the
//! compressor would break. The decompressor takes any window up to 15 bits, so the client's
//! window is never limited and `client_max_window_bits` is never put in the response.

/// The permessage-deflate settings agreed with a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeflateParams {
    /// The server resets its compressor after every message.
    pub server_no_context_takeover: bool,
    /// The client resets its compressor after every message, so the server resets its
    /// decompressor too.
    pub client_no_context_takeover: bool,
    /// The server's window; always 15 here (see the module doc).
    pub server_max_window_bits: u8,
    /// The largest window the client said it will use: its offer's value, or 15.
    pub client_max_window_bits: u8,
}

impl Default for DeflateParams {
    /// Context takeover both ways and 32 KiB windows: what a bare `permessage-deflate` agrees.
    fn default() -> Self {
        DeflateParams {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
        }
    }
}

const NAME: &str = "permessage-deflate";

/// Picks the first acceptable permessage-deflate offer among all `Sec-WebSocket-Extensions`
/// values (pass every header line, in order) and returns its parameters and the value for the
/// response's `Sec-WebSocket-Extensions` header.
///
/// An offer is skipped, and the next one tried, if it is malformed, names an unknown
/// parameter, repeats a parameter, has a value where none belongs or a bad window size, or
/// asks for a server window under 15 bits. Other extensions are ignored. `None`: answer
/// without `Sec-WebSocket-Extensions` and without compression.
pub fn negotiate_deflate(offers: &[&str]) -> Option<(DeflateParams, String)> {
    offers
        .iter()
        .flat_map(|value| split_unquoted(value, b','))
        .find_map(accept_offer)
}

fn accept_offer(offer: &str) -> Option<(DeflateParams, String)> {
    let mut parts = split_unquoted(offer, b';').map(trim);
    if !parts.next()?.eq_ignore_ascii_case(NAME) {
        return None;
    }
    let mut params = DeflateParams::default();
    let mut seen = [false; 4];
    let mut server_bits_asked = false;
    for part in parts {
        let (name, value) = parse_param(part)?;
        let index = [
            "server_no_context_takeover",
            "client_no_context_takeover",
            "server_max_window_bits",
            "client_max_window_bits",
        ]
        .iter()
        .position(|known| name.eq_ignore_ascii_case(known))?;
        if std::mem::replace(&mut seen[index], true) {
            return None;
        }
        match (index, value) {
            (0, None) => params.server_no_context_takeover = true,
            (1, None) => params.client_no_context_takeover = true,
            (2, Some(v)) => {
                // Honest only at 15: see the module doc.
                if window_bits(&v)? != 15 {
                    return None;
                }
                server_bits_asked = true;
            }
            (3, None) => {}
            (3, Some(v)) => params.client_max_window_bits = window_bits(&v)?,
            _ => return None,
        }
    }
    let mut response = String::from(NAME);
    if params.server_no_context_takeover {
        response.push_str("; server_no_context_takeover");
    }
    if params.client_no_context_takeover {
        response.push_str("; client_no_context_takeover");
    }
    if server_bits_asked {
        // Accepting this parameter means answering it (RFC 7692 section 7.1.2.1).
        response.push_str("; server_max_window_bits=15");
    }
    Some((params, response))
}

/// A window size: a decimal 8 to 15 without leading zeros.
fn window_bits(value: &str) -> Option<u8> {
    match value.as_bytes() {
        [b'8'] => Some(8),
        [b'9'] => Some(9),
        [b'1', d @ b'0'..=b'5'] => Some(10 + (d - b'0')),
        _ => None,
    }
}

/// `name` or `name=value`, the value a token or a quoted string (unquoted here); `None` if the
/// syntax is wrong.
fn parse_param(part: &str) -> Option<(&str, Option<String>)> {
    let Some((name, value)) = part.split_once('=') else {
        return is_token(part).then_some((part, None));
    };
    let (name, value) = (trim(name), trim(value));
    if !is_token(name) {
        return None;
    }
    let value = match value.strip_prefix('"') {
        Some(quoted) => unquote(quoted)?,
        None if is_token(value) => value.to_owned(),
        None => return None,
    };
    Some((name, Some(value)))
}

/// The content of a quoted string whose opening quote is already removed; `None` unless it
/// ends with the closing quote and nothing after it.
fn unquote(rest: &str) -> Option<String> {
    let mut out = String::new();
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return chars.as_str().is_empty().then_some(out),
            '\\' => out.push(chars.next()?),
            c => out.push(c),
        }
    }
    None
}

/// Splits on `sep` outside quoted strings, so a quoted value may hold commas and semicolons.
/// An unterminated quote runs to the end of the value (and fails to parse there).
fn split_unquoted(value: &str, sep: u8) -> impl Iterator<Item = &str> {
    let bytes = value.as_bytes();
    let mut start = 0;
    let mut in_quotes = false;
    let mut escaped = false;
    let mut cuts = Vec::new();
    for (at, &b) in bytes.iter().enumerate() {
        if escaped {
            escaped = false;
        } else if in_quotes && b == b'\\' {
            escaped = true;
        } else if b == b'"' {
            in_quotes = !in_quotes;
        } else if b == sep && !in_quotes {
            cuts.push(&value[start..at]);
            start = at + 1;
        }
    }
    cuts.push(&value[start..]);
    // Empty list elements are allowed and mean nothing (RFC 9110 section 5.6.1).
    cuts.into_iter().filter(|part| !trim(part).is_empty())
}

fn trim(s: &str) -> &str {
    s.trim_matches([' ', '\t'])
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(offers: &[&str]) -> Option<String> {
        negotiate_deflate(offers).map(|(_, r)| r)
    }

    #[test]
    fn bare_offer() {
        let (params, r) = negotiate_deflate(&["permessage-deflate"]).unwrap();
        assert_eq!(params, DeflateParams::default());
        assert_eq!(r, "permessage-deflate");
    }

    #[test]
    fn browser_offer_ignores_client_bits_without_value() {
        let (params, r) =
            negotiate_deflate(&["permessage-deflate; client_max_window_bits"]).expect("accepted");
        assert_eq!(params, DeflateParams::default());
        assert_eq!(r, "permessage-deflate");
    }

    #[test]
    fn context_takeover_flags_are_echoed() {
        let (params, r) = negotiate_deflate(&[
            "Permessage-Deflate;server_no_context_takeover ; client_no_context_takeover",
        ])
        .unwrap();
        assert!(params.server_no_context_takeover && params.client_no_context_takeover);
        assert_eq!(
            r,
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
        );
    }

    #[test]
    fn window_bits_values() {
        let (params, r) = negotiate_deflate(&[
            "permessage-deflate; server_max_window_bits=15; client_max_window_bits=10",
        ])
        .unwrap();
        assert_eq!(params.client_max_window_bits, 10);
        assert_eq!(r, "permessage-deflate; server_max_window_bits=15");
        let quoted = "permessage-deflate; client_max_window_bits=\"9\"";
        assert_eq!(
            negotiate_deflate(&[quoted])
                .unwrap()
                .0
                .client_max_window_bits,
            9
        );
        for bad in [
            "permessage-deflate; server_max_window_bits=10",
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; client_max_window_bits=7",
            "permessage-deflate; client_max_window_bits=015",
            "permessage-deflate; client_max_window_bits=1 5",
            "permessage-deflate; client_max_window_bits=\"15",
            "permessage-deflate; client_max_window_bits=\"15\"x",
        ] {
            assert_eq!(response(&[bad]), None, "{bad}");
        }
    }

    #[test]
    fn bad_offers_are_skipped_for_the_next() {
        for bad in [
            "permessage-deflate; unknown",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; client_max_window_bits; client_max_window_bits=10",
            "permessage-deflate; client_no_context_takeover=1",
            "permessage-deflate; server_no_context_takeover=\"\"",
            "permessage-deflate; =15",
            "permessage-deflate; a b",
        ] {
            assert_eq!(response(&[bad]), None, "{bad}");
            let with_next = format!("{bad}, permessage-deflate; client_no_context_takeover");
            assert_eq!(
                response(&[&with_next]).as_deref(),
                Some("permessage-deflate; client_no_context_takeover"),
                "{bad}"
            );
        }
    }

    #[test]
    fn offers_span_header_lines_and_other_extensions_are_ignored() {
        let offers = [
            "x-webkit-deflate-frame, permessage-deflate; server_max_window_bits=12",
            "",
            "foo; bar=\"a,b;c\", permessage-deflate; server_no_context_takeover",
            "permessage-deflate",
        ];
        assert_eq!(
            response(&offers).as_deref(),
            Some("permessage-deflate; server_no_context_takeover")
        );
        assert_eq!(response(&[]), None);
        assert_eq!(response(&["x-other", " , "]), None);
        assert_eq!(response(&["permessage-deflatex"]), None);
    }
}
