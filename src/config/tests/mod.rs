//! Unit tests of the config layer, grouped by what they pin down. Tests that load a full
//! configuration change the process cwd and `sys.path` (as Gunicorn's loader does), so they
//! run one at a time under [`LOCK`].

mod cli_forms;
mod loading;
mod table;
mod validators;
mod worker_classes;

use std::sync::{Mutex, MutexGuard};

use pyo3::prelude::*;

use super::value::Env;
use super::{load, Config, ConfigError, Loaded};

static LOCK: Mutex<()> = Mutex::new(());

/// Serialise tests that touch the cwd; a failed test must not wedge the others.
pub(super) fn lock() -> MutexGuard<'static, ()> {
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub(super) fn argv(args: &[&str]) -> Vec<String> {
    std::iter::once("ferrocorn")
        .chain(args.iter().copied())
        .map(String::from)
        .collect()
}

/// Run the whole loader with an injected environment. The caller holds [`lock`].
pub(super) fn load_env(args: &[&str], env: &[(&str, &str)]) -> Result<Loaded, ConfigError> {
    Python::attach(|py| load::load(py, &argv(args), &Env::from_pairs(env)))
}

/// Load and expect a runnable configuration. The caller holds [`lock`].
pub(super) fn load_ok(args: &[&str], env: &[(&str, &str)]) -> Config {
    match load_env(args, env) {
        Ok(Loaded::Run(cfg)) => *cfg,
        Ok(Loaded::Exit(code)) => panic!("unexpected exit {code}"),
        Err(e) => panic!("unexpected error: {}", e.message),
    }
}

/// Load and expect a config error. The caller holds [`lock`].
pub(super) fn load_err(args: &[&str], env: &[(&str, &str)]) -> ConfigError {
    match load_env(args, env) {
        Ok(Loaded::Run(_)) => panic!("expected an error"),
        Ok(Loaded::Exit(code)) => panic!("unexpected exit {code}"),
        Err(e) => e,
    }
}

/// A fresh scratch directory for one test.
pub(super) fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("ferrocorn-config-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Write a config file into a scratch directory and return its path.
pub(super) fn config_file(name: &str, body: &str) -> String {
    let path = scratch(name).join("conf.py");
    std::fs::write(&path, body).expect("write config");
    path.to_string_lossy().into_owned()
}
