//! `static_mount` at load: checking each `PREFIX=DIR` item (or a config file's dict), and
//! turning the checked items into the typed mounts the serving code uses.
//!
//! Owns: the rules for a mount's prefix and directory, and resolving the directory to its
//! real path once. Must not: open anything for serving (each worker opens its mounts) or
//! know how requests are matched against a prefix (`statics`).

use std::path::PathBuf;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use super::pytext::{abspath_from, py_repr};
use super::resolved::StaticMount;
use super::ConfigError;

/// `validate` for `static_mount`: a str (one item), an iterable of `"PREFIX=DIR"` strings,
/// or a dict `{PREFIX: DIR}`. Returns the items as `PREFIX=DIR`, the prefix without a
/// trailing slash, so validating the result again gives the same list. The directory is
/// resolved by `resolve`, once loading is over and the working directory is `chdir`.
pub(super) fn validate(obj: &Bound<'_, PyAny>) -> Result<Vec<String>, String> {
    let py_err = |e: PyErr| e.to_string();
    let pairs: Vec<(String, String)> = if let Ok(dict) = obj.cast::<PyDict>() {
        let mut pairs = Vec::with_capacity(dict.len());
        for (k, v) in dict.iter() {
            pairs.push((text(&k)?, text(&v)?));
        }
        pairs
    } else if obj.is_none() {
        Vec::new()
    } else {
        let items: Vec<String> = if obj.is_instance_of::<PyString>() {
            vec![text(obj)?]
        } else {
            let mut items = Vec::new();
            for item in obj.try_iter().map_err(py_err)? {
                items.push(text(&item.map_err(py_err)?)?);
            }
            items
        };
        items
            .into_iter()
            .map(|item| match item.split_once('=') {
                Some((prefix, dir)) => Ok((prefix.trim().to_string(), dir.trim().to_string())),
                None => Err(format!(
                    "{} is not URL_PREFIX=DIRECTORY (for example /static=public)",
                    py_repr(&item)
                )),
            })
            .collect::<Result<_, _>>()?
    };
    let mut out: Vec<String> = Vec::with_capacity(pairs.len());
    for (prefix, dir) in pairs {
        let prefix = check_prefix(&prefix)?;
        if dir.is_empty() {
            return Err("the DIRECTORY of a static mount is empty".to_string());
        }
        if out
            .iter()
            .any(|o| o.split_once('=').map(|(p, _)| p) == Some(&prefix))
        {
            return Err(format!("the prefix {prefix} is mounted twice"));
        }
        out.push(format!("{prefix}={dir}"));
    }
    Ok(out)
}

/// A str item, stripped (Gunicorn's `validate_string`).
fn text(o: &Bound<'_, PyAny>) -> Result<String, String> {
    match o.cast::<PyString>() {
        Ok(s) => Ok(s.to_string_lossy().trim().to_string()),
        Err(_) => Err(format!(
            "Not a string: {}",
            o.str()
                .map_or_else(|_| "<unprintable>".to_string(), |s| s.to_string())
        )),
    }
}

/// A prefix as requests are matched against it: `/` followed by segments, no trailing
/// slash. Its segments are compared with a request's decoded segments, so it is written
/// decoded (no `%`).
fn check_prefix(raw: &str) -> Result<String, String> {
    if !raw.starts_with('/') {
        return Err(format!("the URL prefix {} must start with /", py_repr(raw)));
    }
    let trimmed = raw.trim_end_matches('/');
    if trimmed.is_empty() {
        return Err(
            "the URL prefix must not be / itself (the app would never be reached); mount the \
             files under a prefix such as /static"
                .to_string(),
        );
    }
    for segment in trimmed[1..].split('/') {
        let bad = segment.is_empty()
            || segment == "."
            || segment == ".."
            || segment
                .chars()
                .any(|c| c.is_control() || matches!(c, '%' | '?' | '#' | '\\'));
        if bad {
            return Err(format!(
                "the URL prefix {} must be plain path segments (no empty, . or .. segment, \
                 and no %, ?, # or backslash)",
                py_repr(raw)
            ));
        }
    }
    Ok(trimmed.to_string())
}

/// The directory's real path (symlinks resolved), a relative one taken from the working
/// directory once loading is over: `chdir`, at start-up and on HUP alike.
fn real_dir(raw: &str) -> Result<PathBuf, String> {
    let cwd = std::env::current_dir().map_err(|e| format!("the current directory: {e}"))?;
    let path = abspath_from(&cwd.to_string_lossy(), raw);
    let real = std::fs::canonicalize(&path)
        .map_err(|e| format!("static directory {}: {e}", py_repr(raw)))?;
    if !real.is_dir() {
        return Err(format!(
            "static directory {} is not a directory",
            py_repr(raw)
        ));
    }
    Ok(real)
}

/// The checked items as mounts, longest prefix first (a request under `/static/img` goes
/// to that mount, not to `/static`'s).
pub(super) fn resolve(items: &[String]) -> Result<Vec<StaticMount>, ConfigError> {
    let mut mounts = items
        .iter()
        .map(|item| match item.split_once('=') {
            Some((prefix, root)) if prefix.starts_with('/') && !root.is_empty() => {
                Ok(StaticMount {
                    prefix: prefix.to_string(),
                    root: real_dir(root)
                        .map_err(|e| ConfigError::invalid("static_mount", item, &e))?,
                })
            }
            _ => Err(ConfigError::invalid(
                "static_mount",
                item,
                "not URL_PREFIX=DIRECTORY",
            )),
        })
        .collect::<Result<Vec<_>, _>>()?;
    mounts.sort_by_key(|m| std::cmp::Reverse(m.prefix.len()));
    Ok(mounts)
}
