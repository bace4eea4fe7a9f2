//! THE settings table. The rows live in `table_core.rs` and `table_more.rs` (split only to
//! keep files short); `define_settings!` turns them into both the typed [`Config`] struct
//! (one field per setting) and the [`TABLE`] of row metadata that drives argv parsing,
//! config files, `GUNICORN_CMD_ARGS`, validation, `--print-config`, `-h` and the docs.
//!
//! This module owns the table and the environment-derived defaults; it must not parse
//! argv, read config files or print anything.

use pyo3::prelude::*;

use super::addr::AddrList;
use super::validate::Kind;
use super::value::{list, s, Env, Field, FromEnv, Resolve, Value};
use super::ConfigError;

/// How a setting appears on the command line (argparse's `action`/`type`/`nargs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Config file only: no flag.
    FileOnly,
    /// `--opt VALUE`, converted with the given argparse `type`.
    Store(ArgType),
    /// Flag that stores True.
    StoreTrue,
    /// Flag that stores a constant (`--no-sendfile` stores False).
    StoreConst(bool),
    /// Repeatable `--opt VALUE`, collected into a list.
    Append,
    /// `nargs='?'`: the value is optional, the constant is used when it is absent.
    Optional(&'static str),
}

/// argparse `type=` of a stored option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgType {
    /// Kept as a string for the validator.
    Str,
    /// Python `int()` (base 10) at parse time; failures are argparse errors (exit 2).
    Int,
    /// Gunicorn's `auto_int`: `int(x, 0)` with leading-zero octal.
    AutoInt,
}

/// One row of the table: everything about a setting except its typed default.
#[derive(Debug)]
pub struct Setting {
    pub name: &'static str,
    pub section: &'static str,
    /// Flags with Gunicorn's exact spellings; empty for config-file-only settings.
    pub cli: &'static [&'static str],
    /// argparse metavar; `None` means the upper-cased name.
    pub meta: Option<&'static str>,
    pub action: Action,
    pub kind: Kind,
    /// The default as documented (the real one may depend on the environment).
    pub default_doc: &'static str,
    /// Whether this release implements the setting; unsupported settings must keep their
    /// default (see `Config::check_supported`).
    pub supported: bool,
    pub doc: &'static str,
}

impl Setting {
    /// argparse's metavar for the flag.
    pub fn metavar(&self) -> String {
        self.meta
            .map(str::to_string)
            .unwrap_or_else(|| self.name.to_uppercase())
    }

    /// The one-line help: the first sentence of the description (abbreviations such as
    /// "e.g." do not end a sentence).
    pub fn short(&self) -> &'static str {
        let end = self
            .doc
            .match_indices(". ")
            .map(|(i, _)| i + 1)
            .find(|&end| !self.doc[..end].ends_with("e.g.") && !self.doc[..end].ends_with("i.e."))
            .unwrap_or(self.doc.len());
        &self.doc[..end]
    }
}

const fn meta(m: &'static str) -> Option<&'static str> {
    if m.is_empty() {
        None
    } else {
        Some(m)
    }
}

macro_rules! define_settings {
    ($(
        $name:ident : $ty:ty = $default:expr => {
            section: $section:literal,
            cli: [$($flag:literal),*],
            meta: $meta:literal,
            action: $action:expr,
            kind: $kind:expr,
            supported: $supported:literal,
            default_doc: $default_doc:literal,
            doc: $doc:literal $(,)?
        }
    )*) => {
        /// The resolved configuration: one field per Gunicorn setting, named exactly as the
        /// setting. Built by [`Config::load`]; immutable afterwards.
        #[derive(Debug)]
        pub struct Config {
            $( #[doc = $doc] pub $name: $ty, )*
            /// The positional APP_MODULE (or the `--paste` URI), when given.
            pub(crate) app_module: Option<String>,
            /// The environment the defaults were computed from (Gunicorn's `env_orig`).
            pub(crate) env_orig: Env,
            /// The values above as the serving code uses them (`resolved.rs`).
            pub(crate) resolved: super::resolved::Resolved,
            /// The embedding API's application object (a `BaseApplication`) when the
            /// server was started from Python: it loads the app and reloads the settings.
            pub(crate) application: Option<Py<PyAny>>,
        }

        /// Row metadata for every setting, in Gunicorn's definition order.
        pub static TABLE: &[Setting] = &[
            $( Setting {
                name: stringify!($name),
                section: $section,
                cli: &[$($flag),*],
                meta: meta($meta),
                action: $action,
                kind: $kind,
                default_doc: $default_doc,
                supported: $supported,
                doc: $doc,
            }, )*
        ];

        impl Config {
            /// Every setting at its default, environment-derived defaults read from `env`.
            pub(crate) fn from_defaults(env: &Env) -> Result<Config, ConfigError> {
                let mut cfg = Config {
                    $( $name: Resolve::<$ty>::resolve($default, env)?, )*
                    app_module: None,
                    env_orig: env.clone(),
                    resolved: Default::default(),
                    application: None,
                };
                cfg.resolve()?;
                Ok(cfg)
            }

            /// The current value of a setting, by name.
            pub(crate) fn get_value(&self, py: Python<'_>, name: &str) -> Option<Value> {
                match name {
                    $( stringify!($name) => Some(Field::to_value(&self.$name, py)), )*
                    _ => None,
                }
            }

            /// Store an already validated value.
            pub(crate) fn put_value(&mut self, name: &str, value: Value) -> Result<(), &'static str> {
                match name {
                    $( stringify!($name) => {
                        self.$name = <$ty as Field>::from_value(value)?;
                        Ok(())
                    } )*
                    _ => Err("unknown setting"),
                }
            }
        }

        impl Clone for Config {
            fn clone(&self) -> Self {
                // Hook fields hold Python objects, which can only be cloned with the GIL.
                Python::attach(|py| Config {
                    $( $name: Field::clone_field(&self.$name, py), )*
                    app_module: self.app_module.clone(),
                    env_orig: self.env_orig.clone(),
                    resolved: self.resolved.clone(),
                    application: self.application.as_ref().map(|a| a.clone_ref(py)),
                })
            }
        }
    };
}

// Bring the row vocabulary (`Store(Int)`, `PosInt`, ...) into scope for the rows.
use self::{Action::*, ArgType::*, Kind::*};

with_core_settings!(with_more_settings);

/// The row for a setting name.
pub fn setting(name: &str) -> Option<&'static Setting> {
    TABLE.iter().find(|s| s.name == name)
}

// ---- environment-derived defaults -------------------------------------------------------

fn default_bind(env: &Env) -> Result<Vec<String>, ConfigError> {
    Ok(match env.get("PORT") {
        Some(port) => vec![format!("0.0.0.0:{port}")],
        None => list(&["127.0.0.1:8000"]),
    })
}

fn default_workers(env: &Env) -> Result<i64, ConfigError> {
    match env.get("WEB_CONCURRENCY") {
        None => Ok(1),
        // Gunicorn does `int(os.environ["WEB_CONCURRENCY"])`, base 10.
        Some(raw) => super::pytext::parse_py_int(raw, 10).map_err(|e| {
            ConfigError::invalid(
                "workers",
                raw,
                &format!("{} (from WEB_CONCURRENCY)", e.message(raw, 10)),
            )
        }),
    }
}

fn default_forwarded(env: &Env) -> Result<AddrList, ConfigError> {
    let raw = env.get("FORWARDED_ALLOW_IPS").unwrap_or("127.0.0.1,::1");
    AddrList::parse(raw.trim()).map_err(|e| {
        ConfigError::invalid(
            "forwarded_allow_ips",
            raw,
            &format!("{e} (from FORWARDED_ALLOW_IPS)"),
        )
    })
}

fn local_peers(_env: &Env) -> Result<AddrList, ConfigError> {
    AddrList::parse("127.0.0.1,::1").map_err(|e| ConfigError::invalid("proxy_allow_ips", "", &e))
}

fn default_chdir(_env: &Env) -> Result<String, ConfigError> {
    Ok(super::pytext::normpath(&super::validate::gunicorn_getcwd()))
}

fn default_user(_env: &Env) -> Result<u32, ConfigError> {
    Ok(nix::unistd::geteuid().as_raw())
}

fn default_group(_env: &Env) -> Result<u32, ConfigError> {
    Ok(nix::unistd::getegid().as_raw())
}

fn default_scheme_headers(_env: &Env) -> Result<Vec<(String, String)>, ConfigError> {
    Ok([
        ("X-FORWARDED-PROTOCOL", "ssl"),
        ("X-FORWARDED-PROTO", "https"),
        ("X-FORWARDED-SSL", "on"),
    ]
    .iter()
    .map(|(k, v)| (s(k), s(v)))
    .collect())
}

fn default_syslog_addr(_env: &Env) -> Result<String, ConfigError> {
    let addr = if cfg!(target_os = "macos") {
        "unix:///var/run/syslog"
    } else if cfg!(any(target_os = "freebsd", target_os = "dragonfly")) {
        "unix:///var/run/log"
    } else if cfg!(target_os = "openbsd") {
        "unix:///dev/log"
    } else {
        "udp://localhost:514"
    };
    Ok(s(addr))
}

fn default_control_socket(env: &Env) -> Result<String, ConfigError> {
    if let Some(xdg) = env.get("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        if std::path::Path::new(xdg).is_dir() {
            return Ok(format!("{}/gunicorn.ctl", xdg.trim_end_matches('/')));
        }
    }
    let home = env
        .get("HOME")
        .map(str::to_string)
        .or_else(|| {
            nix::unistd::User::from_uid(nix::unistd::getuid())
                .ok()
                .flatten()
                .map(|u| u.dir.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "~".to_string());
    Ok(format!(
        "{}/.gunicorn/gunicorn.ctl",
        home.trim_end_matches('/')
    ))
}
