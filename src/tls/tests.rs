//! The parts of TLS that need no certificate: file errors name their setting, and a
//! session judges plain HTTP, garbage and silence at the first bytes. Handshakes with real
//! certificates are tested against the running server (tests/test_tls_*.py).

use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::session::is_plain_http;
use super::{Material, Session, Spec};

fn spec(dir: &std::path::Path) -> Spec {
    Spec {
        certfile: dir.join("cert.pem"),
        keyfile: Some(dir.join("key.pem")),
        chain_origin: "certfile".into(),
        ca_origin: "ca_certs".into(),
        ciphers_origin: "ciphers".into(),
        ..Spec::default()
    }
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ferrocorn-tls-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn load_error(spec: Spec) -> String {
    match Material::load(spec, None) {
        Ok(_) => panic!("loaded"),
        Err(e) => e.0,
    }
}

#[test]
fn file_errors_name_the_setting_and_the_file() {
    let dir = scratch("files");
    let err = load_error(spec(&dir));
    assert!(err.starts_with("certfile "), "{err}");
    assert!(err.contains("cert.pem"), "{err}");

    std::fs::write(dir.join("cert.pem"), "not a certificate\n").unwrap();
    let err = load_error(spec(&dir));
    assert!(
        err.contains("certfile") && err.contains("no PEM certificate"),
        "{err}"
    );

    let mut s = spec(&dir);
    s.chain_origin = "ssl_context hook (load_cert_chain)".into();
    let err = load_error(s);
    assert!(
        err.starts_with("ssl_context hook (load_cert_chain) "),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_encrypted_key_is_refused_with_the_reason() {
    let dir = scratch("encrypted");
    // Any parseable certificate will do: the key is read after the chain.
    std::fs::write(
        dir.join("cert.pem"),
        "-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("key.pem"),
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMAA=\n-----END ENCRYPTED PRIVATE KEY-----\n",
    )
    .unwrap();
    let err = load_error(spec(&dir));
    assert!(
        err.starts_with("keyfile ") && err.contains("encrypted"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A server that has no certificate: enough to start sessions that never finish a
/// handshake.
#[derive(Debug)]
struct NoCert;

impl ResolvesServerCert for NoCert {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        None
    }
}

fn session(proxy: bool) -> Session {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(NoCert));
    let conn = rustls::ServerConnection::new(Arc::new(config)).unwrap();
    Session::new(conn, "127.0.0.1".into(), true, 0, None, proxy)
}

fn feed(s: &mut Session, mut bytes: &[u8]) -> io::Result<()> {
    s.feed(&mut bytes as &mut dyn Read)
}

#[test]
fn a_request_line_is_plain_http() {
    for proxy in [false, true] {
        let mut s = session(proxy);
        let err = feed(&mut s, b"GET / HTTP/1.1\r\n").unwrap_err();
        assert!(is_plain_http(&err));
        assert!(s.read_plain(&mut [0u8; 16]).is_err(), "the session is over");
    }
    // With the PROXY protocol on, a method starting with P is still a request line.
    let mut s = session(true);
    assert!(is_plain_http(&feed(&mut s, b"POST / HT").unwrap_err()));
}

#[test]
fn a_tls_record_goes_on_to_rustls() {
    let mut s = session(false);
    feed(&mut s, &[0x16, 0x03, 0x01, 0x00]).unwrap();
    // Part of a record so far: more must be fed.
    assert!(matches!(s.read_plain(&mut [0u8; 16]), Ok(None)));
}

#[test]
fn garbage_fails_the_session_at_once() {
    let mut s = session(false);
    let err = feed(&mut s, b"\x16\x03\x01\x00\x05hello").unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    assert!(!is_plain_http(&err));
    assert!(s.read_plain(&mut [0u8; 16]).is_err(), "the session is over");
}

#[test]
fn silence_then_close_is_a_quiet_end() {
    let mut s = session(false);
    feed(&mut s, b"").unwrap();
    assert!(matches!(s.read_plain(&mut [0u8; 16]), Ok(Some(0))));
}

#[test]
fn a_cleartext_proxy_v1_header_passes_through_before_tls() {
    let mut s = session(true);
    // Cut anywhere, the header waits for its CRLF.
    feed(&mut s, b"PRO").unwrap();
    assert!(matches!(s.read_plain(&mut [0u8; 16]), Ok(None)));
    feed(&mut s, b"XY TCP4 1.2.3.4 5.6.7.8 1 2\r").unwrap();
    assert!(matches!(s.read_plain(&mut [0u8; 16]), Ok(None)));
    feed(&mut s, b"\n\x16\x03\x01\x00").unwrap();
    assert_eq!(s.passthrough(), b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n");
    // Held back until the handshake is done (so an error page about it can be read), and
    // what followed went to rustls: part of a record, so nothing yet.
    assert!(matches!(s.read_plain(&mut [0u8; 16]), Ok(None)));
    assert!(!s.has_plaintext());
}

#[test]
fn a_proxy_header_too_long_to_be_one_is_refused() {
    let mut s = session(true);
    let mut line = b"PROXY TCP4 ".to_vec();
    line.extend([b'1'; 120]);
    assert!(feed(&mut s, &line).is_err());
    let mut s = session(true);
    let v2 = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\xff\xff";
    assert!(feed(&mut s, v2).is_err());
}

#[test]
fn a_cleartext_proxy_v2_header_passes_through_before_tls() {
    let mut header = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c".to_vec();
    header.extend([1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2]);
    let mut s = session(true);
    feed(&mut s, &header[..10]).unwrap();
    assert!(matches!(s.read_plain(&mut [0u8; 16]), Ok(None)));
    let mut rest = header[10..].to_vec();
    rest.extend([0x16, 0x03, 0x01]);
    feed(&mut s, &rest).unwrap();
    assert_eq!(s.passthrough(), header);
}

#[test]
fn without_the_proxy_protocol_a_proxy_line_is_plain_http() {
    let mut s = session(false);
    let err = feed(&mut s, b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n").unwrap_err();
    assert!(is_plain_http(&err));
}

#[test]
fn the_plain_http_answer_is_framed_right() {
    let text = std::str::from_utf8(super::PLAIN_HTTP_RESPONSE).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(len, body.len());
}

#[test]
fn der_cadata_splits_into_certificates() {
    // Two short SEQUENCEs back to back, one with a long-form length.
    let mut two = vec![0x30, 0x03, 1, 2, 3];
    two.extend([0x30, 0x81, 0x02, 9, 9]);
    let parts: Vec<&[u8]> = super::material::split_der(&two).collect();
    assert_eq!(
        parts,
        vec![&[0x30, 0x03, 1, 2, 3][..], &[0x30, 0x81, 0x02, 9, 9][..]]
    );
    assert_eq!(super::material::split_der(b"junk").count(), 1);
    assert_eq!(super::material::split_der(b"").count(), 0);
}
