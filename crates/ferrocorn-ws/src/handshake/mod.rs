//! The header work of the opening handshake (RFC 6455 section 4.2): the accept key, key and
//! version checks, header token lists, and permessage-deflate negotiation.
//!
//! Owns: computing and checking header values. It must not parse HTTP or write responses: the
//! HTTP/1 layer hands it header values and puts what it returns in the 101 response.

mod extension;

pub use extension::{negotiate_deflate, DeflateParams};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sha1::{Digest, Sha1};

/// Appended to the client's key before hashing (RFC 6455 section 1.3).
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The `Sec-WebSocket-Accept` value for a `Sec-WebSocket-Key` (surrounding whitespace ignored).
pub fn accept_key(client_key: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(client_key.trim().as_bytes());
    sha.update(GUID.as_bytes());
    STANDARD.encode(sha.finalize())
}

/// Whether a `Sec-WebSocket-Key` is base64 (padded, canonical) of exactly 16 bytes.
pub fn valid_key(key: &str) -> bool {
    let key = key.trim();
    // 16 bytes always encode to 24 characters; checking first bounds the decode.
    key.len() == 24 && STANDARD.decode(key).is_ok_and(|raw| raw.len() == 16)
}

/// Whether a `Sec-WebSocket-Version` value is the one version this server speaks, 13.
pub fn valid_version(value: &str) -> bool {
    value.trim() == "13"
}

/// The subprotocol names in one `Sec-WebSocket-Protocol` value, in the client's order of
/// preference; call it once per header line. Empty list elements are skipped.
pub fn subprotocols(value: &str) -> Vec<&str> {
    list_elements(value).collect()
}

/// Whether a comma-separated header value (one line of `Connection`, `Upgrade`, ...) holds
/// `token`, compared case-insensitively.
pub fn header_has_token(value: &str, token: &str) -> bool {
    list_elements(value).any(|t| t.eq_ignore_ascii_case(token))
}

/// The non-empty, trimmed elements of an HTTP list (RFC 9110 section 5.6.1).
fn list_elements(value: &str) -> impl Iterator<Item = &str> {
    value
        .split(',')
        .map(|t| t.trim_matches([' ', '\t']))
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_6455_example_key() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        assert_eq!(
            accept_key(" dGhlIHNhbXBsZSBub25jZQ==\t"),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn key_must_be_16_bytes_of_base64() {
        assert!(valid_key("dGhlIHNhbXBsZSBub25jZQ=="));
        assert!(valid_key("  AAAAAAAAAAAAAAAAAAAAAA==  "));
        assert!(!valid_key(""));
        assert!(!valid_key("dGhlIHNhbXBsZSBub25jZQ"), "unpadded");
        assert!(!valid_key("dGhlIHNhbXBsZSBub25jZQ=="[..20].trim()));
        assert!(!valid_key("AAAAAAAAAAAAAAAAAAAAAAAA"), "18 bytes");
        assert!(!valid_key("AAAAAAAAAAAAAAAAAAAAAAA="), "17 bytes");
        assert!(!valid_key("dGhlIHNhbXBsZSBub25jZR=="), "trailing bits set");
        assert!(!valid_key("dGhlIHNhbXBsZSBub25jZ!=="), "not base64");
        assert!(!valid_key("dGhlIHNhbXBs ZSBub25jZQ=="), "inner space");
    }

    #[test]
    fn version() {
        assert!(valid_version("13"));
        assert!(valid_version(" 13 "));
        assert!(!valid_version("8"));
        assert!(!valid_version("13, 8"));
    }

    #[test]
    fn subprotocol_lists() {
        assert_eq!(subprotocols("chat, superchat"), ["chat", "superchat"]);
        assert_eq!(subprotocols(" a ,, b\t,"), ["a", "b"]);
        assert!(subprotocols("").is_empty());
        assert!(subprotocols(" , ").is_empty());
    }

    #[test]
    fn token_lists() {
        assert!(header_has_token("keep-alive, Upgrade", "upgrade"));
        assert!(header_has_token("UPGRADE", "Upgrade"));
        assert!(header_has_token("close,upgrade ,x", "upgrade"));
        assert!(!header_has_token("keep-alive", "upgrade"));
        assert!(!header_has_token("upgrades", "upgrade"));
        assert!(!header_has_token("", "upgrade"));
    }
}
