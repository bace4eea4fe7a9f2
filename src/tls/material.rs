//! What a `Spec` names, read into memory: the certificate chain, the private key and the CA
//! certificates, with a stamp of each file as it was before reading (so a file renewed
//! while it was read is seen as changed next time). Building the rustls `ServerConfig` from
//! it is also here, with the checks OpenSSL makes at `load_cert_chain` (the key matches the
//! certificate) and the ones it would only fail on per connection (ciphers, versions).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use pyo3::prelude::*;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, SupportedCipherSuite};

use super::{ciphers, Spec, TlsError};

/// Python's `ssl.TLSVersion` values.
const TLS1_2: i64 = 0x0303;
const TLS1_3: i64 = 0x0304;

/// A file as it was: a renewed file (rewritten in place or replaced by a rename, as certbot's
/// symlinks are) changes one of these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

/// The stamps of `paths`, in order (None for a file that cannot be looked at).
pub fn stamps(paths: &[PathBuf]) -> Vec<Option<Stamp>> {
    paths.iter().map(|p| stamp(p)).collect()
}

fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp {
        dev: m.dev(),
        ino: m.ino(),
        size: m.size(),
        mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
        ctime_ns: i128::from(m.ctime()) * 1_000_000_000 + i128::from(m.ctime_nsec()),
    })
}

pub struct Material {
    pub spec: Spec,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    roots: Vec<CertificateDer<'static>>,
    /// The watched files as they were read.
    pub stamps: Vec<Option<Stamp>>,
    /// The hook's `(config, ssl_context)` when a hook made the spec: renewal calls it again.
    pub hook: Option<(Py<PyAny>, Py<PyAny>)>,
}

fn read(origin: &str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError(format!("{origin} {path:?}: {e}")))
}

fn pem_certs(
    origin: &str,
    path: &Path,
    bytes: &[u8],
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError(format!("{origin} {path:?}: {e}")))?;
    if certs.is_empty() {
        return Err(TlsError(format!(
            "{origin} {path:?}: no PEM certificate in it"
        )));
    }
    Ok(certs)
}

fn pem_key(origin: &str, path: &Path, bytes: &[u8]) -> Result<PrivateKeyDer<'static>, TlsError> {
    let text = String::from_utf8_lossy(bytes);
    if text.contains("ENCRYPTED PRIVATE KEY") || text.contains("Proc-Type: 4,ENCRYPTED") {
        return Err(TlsError(format!(
            "{origin} {path:?}: the private key is encrypted, and Gunicorn's settings have no \
             password for it; store it unencrypted (readable only by the server's user)"
        )));
    }
    PrivateKeyDer::from_pem_slice(bytes).map_err(|e| {
        TlsError(format!(
            "{origin} {path:?}: no usable PEM private key in it (PKCS#1, PKCS#8 and SEC1 \
             keys are read): {e}"
        ))
    })
}

impl Material {
    pub fn load(spec: Spec, hook: Option<(Py<PyAny>, Py<PyAny>)>) -> Result<Self, TlsError> {
        let stamps = stamps(&spec.watch);
        if spec.certfile.as_os_str().is_empty() {
            return Err(TlsError(
                "keyfile is set but certfile is not: TLS needs a certificate".into(),
            ));
        }
        let cert_bytes = read(&spec.chain_origin, &spec.certfile)?;
        let chain = pem_certs(&spec.chain_origin, &spec.certfile, &cert_bytes)?;
        let key = match &spec.keyfile {
            Some(k) => pem_key(spec.key_origin(), k, &read(spec.key_origin(), k)?)?,
            None => pem_key(&spec.chain_origin, &spec.certfile, &cert_bytes)?,
        };
        let roots = load_roots(&spec)?;
        Ok(Material {
            spec,
            chain,
            key,
            roots,
            stamps,
            hook,
        })
    }

    /// The server's own certificate (DER), for the ASGI `server_cert`.
    pub fn leaf(&self) -> Option<CertificateDer<'static>> {
        self.chain.first().cloned()
    }

    /// A rustls server config from this material, or why there cannot be one.
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, TlsError> {
        let spec = &self.spec;
        let mut provider = rustls::crypto::ring::default_provider();
        if let Some(c) = &spec.ciphers {
            let tls12 = ciphers::select_tls12(c)
                .map_err(|m| TlsError(format!("{}: {m}", spec.ciphers_origin)))?;
            provider
                .cipher_suites
                .retain(|s| matches!(s, SupportedCipherSuite::Tls13(_)));
            provider.cipher_suites.extend(tls12);
        }
        let provider = Arc::new(provider);
        let versions = versions(spec)?;
        let verifier = match spec.verify_mode {
            0 => WebPkiClientVerifier::no_client_auth(),
            1 | 2 => {
                let mut store = RootCertStore::empty();
                store.add_parsable_certificates(self.roots.iter().cloned());
                if store.is_empty() {
                    return Err(TlsError(format!(
                        "cert_reqs {} asks for client certificates, but no CA certificate to \
                         check them with was loaded (set ca_certs)",
                        spec.verify_mode
                    )));
                }
                let builder =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(store), provider.clone());
                let builder = if spec.verify_mode == 1 {
                    builder.allow_unauthenticated()
                } else {
                    builder
                };
                builder
                    .build()
                    .map_err(|e| TlsError(format!("{}: {e}", spec.ca_origin)))?
            }
            n => {
                return Err(TlsError(format!(
                    "cert_reqs {n}: expected 0 (none), 1 (optional) or 2 (required)"
                )))
            }
        };
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&versions)
            .map_err(|e| TlsError(format!("TLS versions: {e}")))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| self.chain_error(e))?;
        config.alpn_protocols = alpn(spec)?;
        // Python's server contexts set OP_CIPHER_SERVER_PREFERENCE: our order, not the client's.
        config.ignore_client_order = true;
        if spec.no_ticket {
            config.send_tls13_tickets = 0;
        } else {
            config.ticketer = rustls::crypto::ring::Ticketer::new()
                .map_err(|e| TlsError(format!("TLS session tickets: {e}")))?;
        }
        Ok(Arc::new(config))
    }

    fn chain_error(&self, e: rustls::Error) -> TlsError {
        let spec = &self.spec;
        match e {
            rustls::Error::InconsistentKeys(_) => TlsError(format!(
                "{} {:?} does not match the certificate in {} {:?}",
                spec.key_origin(),
                spec.keyfile.as_ref().unwrap_or(&spec.certfile),
                spec.chain_origin,
                spec.certfile
            )),
            other => TlsError(format!(
                "{} {:?}: {other}",
                spec.chain_origin, spec.certfile
            )),
        }
    }
}

fn load_roots(spec: &Spec) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let origin = &spec.ca_origin;
    let mut roots = Vec::new();
    for f in &spec.ca_files {
        roots.extend(pem_certs(origin, f, &read(origin, f)?)?);
    }
    for dir in &spec.ca_dirs {
        let entries =
            std::fs::read_dir(dir).map_err(|e| TlsError(format!("{origin} {dir:?}: {e}")))?;
        // As OpenSSL's capath: only the `<subject hash>.<n>` names `c_rehash` makes count, so
        // other certificates kept in the directory are not trusted by accident.
        for entry in entries.flatten() {
            let path: PathBuf = entry.path();
            if hashed_name(&entry.file_name().to_string_lossy()) && path.is_file() {
                if let Ok(bytes) = std::fs::read(&path) {
                    roots.extend(CertificateDer::pem_slice_iter(&bytes).flatten());
                }
            }
        }
    }
    for pem in &spec.ca_pem {
        roots.extend(pem_certs(origin, Path::new("cadata"), pem)?);
    }
    for der in &spec.ca_der {
        roots.extend(split_der(der).map(|c| CertificateDer::from(c.to_vec())));
    }
    Ok(roots)
}

/// DER `cadata` may hold several certificates back to back (Python accepts that): split it
/// at each top-level SEQUENCE. What does not parse is left for the verifier to refuse.
pub(super) fn split_der(mut der: &[u8]) -> impl Iterator<Item = &[u8]> {
    std::iter::from_fn(move || {
        if der.len() < 2 || der[0] != 0x30 {
            let rest = (!der.is_empty()).then_some(der);
            der = &[];
            return rest;
        }
        let (len, head) = match der[1] {
            n if n < 0x80 => (n as usize, 2),
            n => {
                let bytes = (n & 0x7f) as usize;
                if bytes == 0 || bytes > 4 || der.len() < 2 + bytes {
                    let rest = der;
                    der = &[];
                    return Some(rest);
                }
                let len = der[2..2 + bytes]
                    .iter()
                    .fold(0usize, |acc, b| (acc << 8) | *b as usize);
                (len, 2 + bytes)
            }
        };
        let end = (head + len).min(der.len());
        let (one, rest) = der.split_at(end);
        der = rest;
        Some(one)
    })
}

fn hashed_name(name: &str) -> bool {
    match name.split_once('.') {
        Some((hash, n)) => {
            hash.len() == 8
                && hash
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
                && !n.is_empty()
                && n.bytes().all(|b| b.is_ascii_digit())
        }
        None => false,
    }
}

fn versions(spec: &Spec) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, TlsError> {
    let allows =
        |v: i64| spec.min_version.is_none_or(|m| m <= v) && spec.max_version.is_none_or(|m| m >= v);
    let mut out = Vec::new();
    if !spec.no_tls13 && allows(TLS1_3) {
        out.push(&rustls::version::TLS13);
    }
    if !spec.no_tls12 && allows(TLS1_2) {
        out.push(&rustls::version::TLS12);
    }
    if out.is_empty() {
        return Err(TlsError(format!(
            "ssl_context: the context allows no TLS version ferrocorn can serve (TLS 1.2 and \
             1.3; minimum_version {:?}, maximum_version {:?}, OP_NO_TLSv1_2 {}, OP_NO_TLSv1_3 {})",
            spec.min_version, spec.max_version, spec.no_tls12, spec.no_tls13
        )));
    }
    Ok(out)
}

/// ALPN: `http/1.1`, the one protocol served over TLS until HTTP/2 arrives.
fn alpn(spec: &Spec) -> Result<Vec<Vec<u8>>, TlsError> {
    let Some(list) = &spec.alpn else {
        return Ok(vec![b"http/1.1".to_vec()]);
    };
    if let Some(other) = list.iter().find(|p| *p != "http/1.1") {
        return Err(TlsError(format!(
            "ssl_context: set_alpn_protocols({list:?}): ferrocorn serves only HTTP/1.1 over TLS \
             so far, so it cannot offer {other:?}"
        )));
    }
    Ok(list.iter().map(|p| p.as_bytes().to_vec()).collect())
}
