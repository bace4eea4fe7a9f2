//! The HAProxy PROXY protocol header (v1 text, v2 binary) at the start of a connection, as
//! Gunicorn 27's `Message._handle_proxy_protocol` reads it (`proxy_protocol` setting).
//!
//! The header is optional even when the mode is on. This module only parses; the server decides
//! whether the peer may send one (`proxy_allow_ips`) and passes that in, and applies the result to
//! the first request's environ only.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::error::ParseError;
use crate::pyrepr::{latin1, py_int};

/// The `proxy_protocol` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProxyMode {
    #[default]
    Off,
    V1,
    V2,
    Auto,
}

/// What the header said (`req.proxy_protocol_info`). LOCAL and UNSPEC carry no addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyInfo {
    /// `TCP4`, `TCP6`, `LOCAL` or `UNSPEC`.
    pub protocol: &'static str,
    pub client_addr: Option<String>,
    pub client_port: Option<u16>,
    pub proxy_addr: Option<String>,
    pub proxy_port: Option<u16>,
}

/// The outcome of looking for a PROXY header at the start of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyParse {
    /// More bytes are needed to decide.
    Incomplete,
    /// No PROXY header: the bytes are plain HTTP.
    Absent,
    /// A header of `consumed` bytes.
    Present { info: ProxyInfo, consumed: usize },
}

const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
const V1_PREFIX: &[u8; 6] = b"PROXY ";
/// The longest v1 line the specification allows, CRLF included. Gunicorn reads without a bound;
/// a line that long without its CRLF cannot be valid, so it is refused instead of buffered.
const V1_MAX_LINE: usize = 107;

/// Whether `buf` could still begin with `signature`, and whether it does in full.
fn signature_state(buf: &[u8], signature: &[u8]) -> (bool, bool) {
    let n = buf.len().min(signature.len());
    let possible = buf[..n] == signature[..n];
    (possible, possible && buf.len() >= signature.len())
}

/// Looks for a PROXY header at the start of a connection's first bytes.
///
/// `forbidden_peer` is `Some(ip)` when the peer is an IP address outside `proxy_allow_ips`: a
/// header from it is refused with ForbiddenProxyRequest (before the header is validated, as
/// Gunicorn does).
pub fn parse_proxy_header(
    buf: &[u8],
    mode: ProxyMode,
    forbidden_peer: Option<&str>,
) -> Result<ProxyParse, ParseError> {
    let (v2_allowed, v1_allowed) = match mode {
        ProxyMode::Off => return Ok(ProxyParse::Absent),
        ProxyMode::V1 => (false, true),
        ProxyMode::V2 => (true, false),
        ProxyMode::Auto => (true, true),
    };
    let (v2_possible, v2_match) = signature_state(buf, V2_SIGNATURE);
    let (v1_possible, v1_match) = signature_state(buf, V1_PREFIX);
    if (v2_allowed && v2_possible && !v2_match) || (v1_allowed && v1_possible && !v1_match) {
        return Ok(ProxyParse::Incomplete);
    }
    let check_peer = || match forbidden_peer {
        Some(ip) => Err(ParseError::ForbiddenProxyRequest(ip.to_string())),
        None => Ok(()),
    };
    if v2_allowed && v2_match {
        check_peer()?;
        return parse_v2(buf);
    }
    if v1_allowed && v1_match {
        check_peer()?;
        return parse_v1(buf);
    }
    Ok(ProxyParse::Absent)
}

fn parse_v1(buf: &[u8]) -> Result<ProxyParse, ParseError> {
    let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
        if buf.len() >= V1_MAX_LINE {
            return Err(ParseError::InvalidProxyLine(latin1(buf)));
        }
        return Ok(ProxyParse::Incomplete);
    };
    let line = latin1(&buf[..end]);
    let bits: Vec<&str> = line.split(' ').collect();
    if bits.len() != 6 {
        return Err(ParseError::InvalidProxyLine(line));
    }
    let protocol = match bits[1] {
        "TCP4" => "TCP4",
        "TCP6" => "TCP6",
        other => {
            return Err(ParseError::InvalidProxyLine(format!(
                "protocol '{other}' not supported"
            )))
        }
    };
    let addresses_ok = if protocol == "TCP4" {
        bits[2].parse::<Ipv4Addr>().is_ok() && bits[3].parse::<Ipv4Addr>().is_ok()
    } else {
        bits[2].parse::<Ipv6Addr>().is_ok() && bits[3].parse::<Ipv6Addr>().is_ok()
    };
    if !addresses_ok {
        return Err(ParseError::InvalidProxyLine(line));
    }
    let port = |text: &str| py_int(text).and_then(|p| u16::try_from(p).ok());
    let (Some(client_port), Some(proxy_port)) = (port(bits[4]), port(bits[5])) else {
        return Err(ParseError::InvalidProxyLine(format!("invalid port {line}")));
    };
    Ok(ProxyParse::Present {
        info: ProxyInfo {
            protocol,
            client_addr: Some(bits[2].to_string()),
            client_port: Some(client_port),
            proxy_addr: Some(bits[3].to_string()),
            proxy_port: Some(proxy_port),
        },
        consumed: end + 2,
    })
}

fn no_addresses(protocol: &'static str) -> ProxyInfo {
    ProxyInfo {
        protocol,
        client_addr: None,
        client_port: None,
        proxy_addr: None,
        proxy_port: None,
    }
}

fn parse_v2(buf: &[u8]) -> Result<ProxyParse, ParseError> {
    if buf.len() < 16 {
        return Ok(ProxyParse::Incomplete);
    }
    let version = buf[12] >> 4;
    if version != 2 {
        return Err(ParseError::InvalidProxyHeader(format!(
            "unsupported version {version}"
        )));
    }
    let command = buf[12] & 0x0f;
    if command > 1 {
        return Err(ParseError::InvalidProxyHeader(format!(
            "unsupported command {command}"
        )));
    }
    let length = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    let total = 16 + length;
    if buf.len() < total {
        return Ok(ProxyParse::Incomplete);
    }
    let present = |info| {
        Ok(ProxyParse::Present {
            info,
            consumed: total,
        })
    };
    if command == 0 {
        return present(no_addresses("LOCAL"));
    }
    let family = buf[13] >> 4;
    if buf[13] & 0x0f != 1 {
        return Err(ParseError::InvalidProxyHeader(
            "only TCP protocol is supported".to_string(),
        ));
    }
    let data = &buf[16..total];
    let port = |at: usize| u16::from_be_bytes([data[at], data[at + 1]]);
    let info = match family {
        1 => {
            if length < 12 {
                return Err(ParseError::InvalidProxyHeader(
                    "insufficient address data for IPv4".to_string(),
                ));
            }
            let addr =
                |at: usize| Ipv4Addr::new(data[at], data[at + 1], data[at + 2], data[at + 3]);
            ProxyInfo {
                protocol: "TCP4",
                client_addr: Some(addr(0).to_string()),
                client_port: Some(port(8)),
                proxy_addr: Some(addr(4).to_string()),
                proxy_port: Some(port(10)),
            }
        }
        2 => {
            if length < 36 {
                return Err(ParseError::InvalidProxyHeader(
                    "insufficient address data for IPv6".to_string(),
                ));
            }
            let addr = |at: usize| {
                let mut octets = [0u8; 16];
                octets.copy_from_slice(&data[at..at + 16]);
                format_ipv6(&octets)
            };
            ProxyInfo {
                protocol: "TCP6",
                client_addr: Some(addr(0)),
                client_port: Some(port(32)),
                proxy_addr: Some(addr(16)),
                proxy_port: Some(port(34)),
            }
        }
        0 => no_addresses("UNSPEC"),
        other => {
            return Err(ParseError::InvalidProxyHeader(format!(
                "unsupported address family {other}"
            )))
        }
    };
    present(info)
}

/// IPv6 text as glibc's `inet_ntop` (which Python's `socket.inet_ntop` calls) writes it: the
/// first longest run of two or more zero groups becomes `::`, and IPv4-compatible and
/// IPv4-mapped addresses end in dotted quad.
pub fn format_ipv6(octets: &[u8; 16]) -> String {
    let words: Vec<u16> = octets
        .chunks(2)
        .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
        .collect();
    let (mut best_start, mut best_len) = (0usize, 0usize);
    let mut i = 0;
    while i < 8 {
        if words[i] == 0 {
            let start = i;
            while i < 8 && words[i] == 0 {
                i += 1;
            }
            if i - start > best_len {
                (best_start, best_len) = (start, i - start);
            }
        } else {
            i += 1;
        }
    }
    if best_len < 2 {
        best_len = 0;
    }
    let mut out = String::new();
    let mut i = 0;
    while i < 8 {
        if best_len > 0 && i == best_start {
            out.push(':');
            i += best_len;
            if i == 8 {
                out.push(':');
            }
            continue;
        }
        if i > 0 {
            out.push(':');
        }
        let embeds_ipv4 =
            best_start == 0 && (best_len == 6 || (best_len == 5 && words[5] == 0xffff));
        if i == 6 && embeds_ipv4 {
            out.push_str(
                &Ipv4Addr::new(octets[12], octets[13], octets[14], octets[15]).to_string(),
            );
            break;
        }
        out.push_str(&format!("{:x}", words[i]));
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v6(text: &str) -> String {
        format_ipv6(&text.parse::<Ipv6Addr>().unwrap().octets())
    }

    #[test]
    fn ipv6_text_like_glibc() {
        assert_eq!(v6("::1.2.3.4"), "::1.2.3.4");
        assert_eq!(v6("::ffff:1.2.3.4"), "::ffff:1.2.3.4");
        assert_eq!(v6("2001:db8::1"), "2001:db8::1");
        assert_eq!(v6("::"), "::");
        assert_eq!(v6("::1"), "::1");
        assert_eq!(v6("1::"), "1::");
        assert_eq!(v6("0:0:1::"), "0:0:1::");
        assert_eq!(v6("1:0:0:1:0:0:0:1"), "1:0:0:1::1");
        assert_eq!(v6("1:0:1:1:1:1:1:1"), "1:0:1:1:1:1:1:1");
    }

    #[test]
    fn v1_lines() {
        let wire = b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET";
        let Ok(ProxyParse::Present { info, consumed }) =
            parse_proxy_header(wire, ProxyMode::Auto, None)
        else {
            panic!("expected a header");
        };
        assert_eq!(consumed, wire.len() - 3);
        assert_eq!(info.client_addr.as_deref(), Some("192.168.0.1"));
        assert_eq!(info.proxy_port, Some(443));
        let bad = b"PROXY TCP4 192.168.0.1 192.168.0.11 65iii 100000\r\n";
        assert_eq!(
            parse_proxy_header(bad, ProxyMode::V1, None)
                .unwrap_err()
                .message(),
            "Invalid PROXY line: 'invalid port PROXY TCP4 192.168.0.1 192.168.0.11 65iii 100000'"
        );
        assert_eq!(
            parse_proxy_header(b"PROXY UNKNOWN\r\n", ProxyMode::V1, None),
            Err(ParseError::InvalidProxyLine("PROXY UNKNOWN".into()))
        );
        assert_eq!(
            parse_proxy_header(b"PROX", ProxyMode::Auto, None),
            Ok(ProxyParse::Incomplete)
        );
        assert_eq!(
            parse_proxy_header(b"GET / HTTP/1.1\r\n", ProxyMode::Auto, None),
            Ok(ProxyParse::Absent)
        );
        assert_eq!(
            parse_proxy_header(b"PROXY TCP4", ProxyMode::V2, None),
            Ok(ProxyParse::Absent)
        );
        assert_eq!(
            parse_proxy_header(b"PROXY ", ProxyMode::Auto, Some("10.0.0.1")),
            Err(ParseError::ForbiddenProxyRequest("10.0.0.1".into()))
        );
    }

    #[test]
    fn v2_headers() {
        let mut wire = V2_SIGNATURE.to_vec();
        wire.extend_from_slice(&[0x21, 0x11, 0x00, 0x0c, 192, 168, 1, 10, 192, 168, 1, 1]);
        wire.extend_from_slice(&[0x30, 0x39, 0x01, 0xbb]);
        let Ok(ProxyParse::Present { info, consumed }) =
            parse_proxy_header(&wire, ProxyMode::V2, None)
        else {
            panic!("expected a header");
        };
        assert_eq!(consumed, 28);
        assert_eq!(info.client_addr.as_deref(), Some("192.168.1.10"));
        assert_eq!(
            (info.client_port, info.proxy_port),
            (Some(12345), Some(443))
        );
        assert_eq!(
            parse_proxy_header(&wire[..20], ProxyMode::Auto, None),
            Ok(ProxyParse::Incomplete)
        );
        wire[12] = 0x31;
        assert_eq!(
            parse_proxy_header(&wire, ProxyMode::Auto, None),
            Err(ParseError::InvalidProxyHeader(
                "unsupported version 3".into()
            ))
        );
        wire[12] = 0x20;
        let Ok(ProxyParse::Present { info, .. }) = parse_proxy_header(&wire, ProxyMode::Auto, None)
        else {
            panic!("expected LOCAL");
        };
        assert_eq!(info.protocol, "LOCAL");
    }
}
