//! Splitting a request-target into path, query and fragment exactly as Gunicorn's
//! `util.split_request_uri` does with Python's `urllib.parse.urlsplit`, quirks included
//! (`CONNECT example.com:443` has the path `443`, because `example.com` parses as a scheme).
//!
//! Only targets that already passed the request-line checks reach this module, so they are
//! printable ASCII; urlsplit's whitespace stripping and NFKC netloc check never apply. This module
//! does not validate the request line itself.

use std::net::Ipv6Addr;

/// The parts Gunicorn keeps; absent parts are empty strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UriParts {
    pub path: String,
    pub query: String,
    pub fragment: String,
}

/// urlsplit raised ValueError (an unbalanced or invalid bracketed host).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidUri;

/// `split_request_uri(uri)`: a target starting with `//` is a path, not an authority.
pub fn split_request_uri(uri: &str) -> Result<UriParts, InvalidUri> {
    if uri.starts_with("//") {
        // Gunicorn parses "." + uri and drops the dot again.
        let dotted = format!(".{uri}");
        let mut parts = urlsplit(&dotted)?;
        parts.path.remove(0);
        return Ok(parts);
    }
    urlsplit(uri)
}

fn is_scheme_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.')
}

fn urlsplit(url: &str) -> Result<UriParts, InvalidUri> {
    let mut rest = url;
    if let Some(colon) = url.find(':') {
        let candidate = &url.as_bytes()[..colon];
        if colon > 0
            && candidate[0].is_ascii_alphabetic()
            && candidate.iter().all(|&b| is_scheme_char(b))
        {
            rest = &url[colon + 1..];
        }
    }
    if let Some(after) = rest.strip_prefix("//") {
        let end = after.find(['/', '?', '#']).unwrap_or(after.len());
        let netloc = &after[..end];
        rest = &after[end..];
        let open = netloc.contains('[');
        let close = netloc.contains(']');
        if open != close {
            return Err(InvalidUri);
        }
        if open {
            let inner = netloc.split_once('[').map_or("", |(_, tail)| tail);
            let host = inner.split_once(']').map_or(inner, |(head, _)| head);
            check_bracketed_host(host)?;
        }
    }
    let mut fragment = "";
    if let Some((head, tail)) = rest.split_once('#') {
        rest = head;
        fragment = tail;
    }
    let mut query = "";
    if let Some((head, tail)) = rest.split_once('?') {
        rest = head;
        query = tail;
    }
    Ok(UriParts {
        path: rest.to_string(),
        query: query.to_string(),
        fragment: fragment.to_string(),
    })
}

/// urlsplit's `_check_bracketed_host`: an IPvFuture literal (`v<hex>.<anything>`) or an IPv6
/// address, optionally with a zone (`%eth0`). A valid IPv4 address in brackets is refused too,
/// which falls out of requiring IPv6.
fn check_bracketed_host(host: &str) -> Result<(), InvalidUri> {
    if let Some(future) = host.strip_prefix('v') {
        let (hex, tail) = future.split_once('.').ok_or(InvalidUri)?;
        let ok = !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()) && !tail.is_empty();
        return if ok { Ok(()) } else { Err(InvalidUri) };
    }
    let address = match host.split_once('%') {
        Some((_, zone)) if zone.is_empty() || zone.contains('%') => return Err(InvalidUri),
        Some((address, _)) => address,
        None => host,
    };
    address
        .parse::<Ipv6Addr>()
        .map(|_| ())
        .map_err(|_| InvalidUri)
}

/// `%XX` decoding to bytes, as Python's `unquote_to_bytes`: a malformed escape stays as it
/// is. The WSGI environ reads the result as latin-1, the ASGI scope as UTF-8.
pub fn percent_decode(target: &str) -> Vec<u8> {
    let b = target.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let hex = |c: u8| (c as char).to_digit(16);
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(uri: &str) -> (String, String, String) {
        let p = split_request_uri(uri).expect("valid");
        (p.path, p.query, p.fragment)
    }

    #[test]
    fn urlsplit_quirks() {
        assert_eq!(
            split("/forums/1/topics/2375?page=1#posts-17408"),
            (
                "/forums/1/topics/2375".into(),
                "page=1".into(),
                "posts-17408".into()
            )
        );
        assert_eq!(split("///keeping_slashes").0, "///keeping_slashes");
        assert_eq!(split("example.com:443").0, "443");
        assert_eq!(split("[::1]:443").0, "[::1]:443");
        assert_eq!(split("http://[::1]:8080/foo").0, "/foo");
        assert_eq!(split("http://u:p@h:8080/foo?q=1").1, "q=1");
        assert_eq!(split("*").0, "*");
        assert_eq!(split("http://[v1.x]/a").0, "/a");
        assert_eq!(split("http://[fe80::1%25eth0]/a").0, "/a");
        assert!(split_request_uri("s://]ufd/:").is_err());
        assert!(split_request_uri("http://[1.2.3.4]/").is_err());
        assert!(split_request_uri("http://[::1/").is_err());
        assert!(split_request_uri("http://[vz.1]/").is_err());
    }
}
