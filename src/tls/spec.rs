//! The TLS settings as one description, whoever set them: Gunicorn's default context factory
//! (certfile, keyfile, ca_certs, cert_reqs, ciphers) or an `ssl_context` hook.
//! `ferrocorn._tls.context_spec` runs the hook on a recording `SSLContext` and returns a
//! dict; this reads it into typed fields. Where each value came from is kept, so an error
//! about a file names the setting or hook call that gave it.

use std::path::PathBuf;

use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::TlsError;
use crate::telemetry::format_traceback;

#[derive(Debug, Clone, Default)]
pub struct Spec {
    pub certfile: PathBuf,
    /// None: the key is in `certfile`.
    pub keyfile: Option<PathBuf>,
    /// `certfile`, or the hook call that loaded the chain.
    pub chain_origin: String,
    pub ca_files: Vec<PathBuf>,
    pub ca_dirs: Vec<PathBuf>,
    pub ca_pem: Vec<Vec<u8>>,
    pub ca_der: Vec<Vec<u8>>,
    pub ca_origin: String,
    /// Python's `verify_mode`: 0 none, 1 optional, 2 required.
    pub verify_mode: u8,
    pub ciphers: Option<String>,
    pub ciphers_origin: String,
    /// `ssl.TLSVersion` values (771 is TLS 1.2, 772 TLS 1.3); None: no bound.
    pub min_version: Option<i64>,
    pub max_version: Option<i64>,
    pub alpn: Option<Vec<String>>,
    pub no_tls12: bool,
    pub no_tls13: bool,
    pub no_ticket: bool,
    /// Every file read, for renewal.
    pub watch: Vec<PathBuf>,
}

impl Spec {
    /// What a setting is called in messages about the key file.
    pub fn key_origin(&self) -> &str {
        if self.chain_origin == "certfile" {
            "keyfile"
        } else {
            &self.chain_origin
        }
    }
}

/// Run the translation: `hook(config, default_ssl_context_factory)`, or the factory alone.
pub fn translate(
    py: Python<'_>,
    cfg_obj: &Bound<'_, PyAny>,
    hook: Option<&Py<PyAny>>,
) -> Result<Spec, TlsError> {
    let module = py
        .import("ferrocorn._tls")
        .map_err(|e| TlsError(format!("cannot import ferrocorn._tls: {e}")))?;
    let hook_arg = match hook {
        Some(h) => h.bind(py).clone(),
        None => py.None().into_bound(py),
    };
    let dict = module
        .call_method1("context_spec", (cfg_obj, hook_arg))
        .map_err(|e| {
            let translation = module
                .getattr("TranslationError")
                .is_ok_and(|t| e.get_type(py).is(&t));
            if translation {
                TlsError(e.value(py).to_string())
            } else {
                TlsError(format!(
                    "the ssl_context hook failed:\n{}",
                    format_traceback(py, &e)
                ))
            }
        })?;
    let dict = dict
        .cast_into::<PyDict>()
        .map_err(|_| TlsError("ferrocorn._tls.context_spec did not return a dict".into()))?;
    from_dict(&dict).map_err(|e| TlsError(format!("reading the TLS settings: {e}")))
}

fn from_dict(d: &Bound<'_, PyDict>) -> PyResult<Spec> {
    fn get<'py, T: FromPyObjectOwned<'py>>(d: &Bound<'py, PyDict>, key: &str) -> PyResult<T> {
        match d.get_item(key)? {
            Some(v) => v.extract::<T>().map_err(Into::into),
            None => Err(pyo3::exceptions::PyKeyError::new_err(key.to_string())),
        }
    }
    let paths = |key: &str| -> PyResult<Vec<PathBuf>> {
        Ok(get::<Vec<String>>(d, key)?
            .into_iter()
            .map(PathBuf::from)
            .collect())
    };
    let certfile: Option<String> = get(d, "certfile")?;
    let verify_mode: i64 = get(d, "verify_mode")?;
    Ok(Spec {
        certfile: certfile.map(PathBuf::from).unwrap_or_default(),
        keyfile: get::<Option<String>>(d, "keyfile")?.map(PathBuf::from),
        chain_origin: get(d, "chain_origin")?,
        ca_files: paths("ca_files")?,
        ca_dirs: paths("ca_dirs")?,
        ca_pem: get(d, "ca_pem")?,
        ca_der: get(d, "ca_der")?,
        ca_origin: get(d, "ca_origin")?,
        verify_mode: u8::try_from(verify_mode).unwrap_or(u8::MAX),
        ciphers: get(d, "ciphers")?,
        ciphers_origin: get(d, "ciphers_origin")?,
        min_version: get(d, "min_version")?,
        max_version: get(d, "max_version")?,
        alpn: get(d, "alpn")?,
        no_tls12: get(d, "no_tls12")?,
        no_tls13: get(d, "no_tls13")?,
        no_ticket: get(d, "no_ticket")?,
        watch: paths("watch")?,
    })
}
