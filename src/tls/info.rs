//! What an app may learn about a TLS connection, as Python's `SSLSocket` tells it under
//! Gunicorn (`gunicorn.socket`) and as the ASGI TLS extension puts it: protocol version,
//! cipher, ALPN protocol and the client's certificate chain. Captured once, when the
//! handshake completes.

use rustls::pki_types::CertificateDer;
use rustls::ServerConnection;

use super::ciphers;

#[derive(Debug)]
pub struct ConnInfo {
    /// The wire code: 0x0303 for TLS 1.2, 0x0304 for TLS 1.3.
    pub version_code: u16,
    /// Python's `version()`: "TLSv1.2" or "TLSv1.3".
    pub version_name: &'static str,
    /// The IANA cipher suite code (the ASGI `cipher_suite`).
    pub suite_code: u16,
    /// OpenSSL's name and secret bits, as Python's `cipher()` reports them.
    pub cipher_name: &'static str,
    pub cipher_bits: u32,
    pub alpn: Option<String>,
    /// The client's certificates, leaf first (empty without one).
    pub peer_chain: Vec<CertificateDer<'static>>,
    /// Python's `verify_mode` the connection was made under.
    pub verify_mode: u8,
    /// Our own certificate.
    pub server_leaf: Option<CertificateDer<'static>>,
    /// A bridge's Python form of this (the ASGI TLS extension dict), made once per
    /// connection.
    pub py_form: std::sync::OnceLock<pyo3::Py<pyo3::PyAny>>,
}

impl ConnInfo {
    pub fn of(
        conn: &ServerConnection,
        verify_mode: u8,
        server_leaf: Option<CertificateDer<'static>>,
    ) -> Option<ConnInfo> {
        let suite = conn.negotiated_cipher_suite()?;
        let version = conn.protocol_version()?;
        let version_code = u16::from(version);
        let suite_code = u16::from(suite.suite());
        let (cipher_name, cipher_bits) = ciphers::openssl_name(suite.suite()).unwrap_or(("", 0));
        Some(ConnInfo {
            version_code,
            version_name: match version_code {
                0x0304 => "TLSv1.3",
                0x0303 => "TLSv1.2",
                _ => "",
            },
            suite_code,
            cipher_name,
            cipher_bits,
            alpn: conn
                .alpn_protocol()
                .map(|p| String::from_utf8_lossy(p).into_owned()),
            peer_chain: conn
                .peer_certificates()
                .map(|c| c.iter().map(|c| c.clone().into_owned()).collect())
                .unwrap_or_default(),
            verify_mode,
            server_leaf,
            py_form: std::sync::OnceLock::new(),
        })
    }
}
