//! The typed values settings hold, and the bridge between a validator's result and the
//! concrete field type of `Config` (`i64`, `bool`, `Option<String>`, ...).
//!
//! Validators produce a [`Value`]; each field type implements [`Field`] to accept the
//! matching variant. A mismatch means the table pairs a validator with the wrong field type,
//! which the default round-trip test catches. Nothing here touches the process.

use pyo3::prelude::*;

use super::addr::AddrList;
use super::ConfigError;

/// A validated setting value, independent of which field will hold it.
#[derive(Debug)]
pub(crate) enum Value {
    Int(i64),
    Flag(Option<bool>),
    Text(Option<String>),
    List(Vec<String>),
    Addrs(AddrList),
    Pairs(Vec<(String, String)>),
    Obj(Option<Py<PyAny>>),
    Id(u32),
}

impl Value {
    /// Equality as Gunicorn would see it; Python objects compare by identity because hooks
    /// and dicts are only ever "the default" (None) or "something the user supplied".
    pub(crate) fn same(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Int(a), Value::Int(b)) => a == b,
            (Value::Flag(a), Value::Flag(b)) => a == b,
            (Value::Text(a), Value::Text(b)) => a == b,
            (Value::List(a), Value::List(b)) => a == b,
            (Value::Addrs(a), Value::Addrs(b)) => a == b,
            (Value::Pairs(a), Value::Pairs(b)) => a == b,
            (Value::Obj(a), Value::Obj(b)) => match (a, b) {
                (None, None) => true,
                (Some(x), Some(y)) => x.as_ptr() == y.as_ptr(),
                _ => false,
            },
            (Value::Id(a), Value::Id(b)) => a == b,
            _ => false,
        }
    }
}

/// A `Config` field type. `from_value` fails with a short reason when the validator's
/// result cannot be stored (e.g. `None` for a setting that needs a string).
pub(crate) trait Field: Sized {
    fn to_value(&self, py: Python<'_>) -> Value;
    fn from_value(value: Value) -> Result<Self, &'static str>;
    fn clone_field(&self, py: Python<'_>) -> Self;
}

macro_rules! plain_field {
    ($ty:ty, $variant:ident) => {
        impl Field for $ty {
            fn to_value(&self, _py: Python<'_>) -> Value {
                Value::$variant(self.clone())
            }
            fn from_value(value: Value) -> Result<Self, &'static str> {
                match value {
                    Value::$variant(v) => Ok(v),
                    _ => Err("value of the wrong type for this setting"),
                }
            }
            fn clone_field(&self, _py: Python<'_>) -> Self {
                self.clone()
            }
        }
    };
}

plain_field!(i64, Int);
plain_field!(u32, Id);
plain_field!(Option<bool>, Flag);
plain_field!(Option<String>, Text);
plain_field!(Vec<String>, List);
plain_field!(AddrList, Addrs);
plain_field!(Vec<(String, String)>, Pairs);

impl Field for bool {
    fn to_value(&self, _py: Python<'_>) -> Value {
        Value::Flag(Some(*self))
    }
    fn from_value(value: Value) -> Result<Self, &'static str> {
        match value {
            Value::Flag(Some(b)) => Ok(b),
            Value::Flag(None) => Err("None is not allowed for this setting"),
            _ => Err("value of the wrong type for this setting"),
        }
    }
    fn clone_field(&self, _py: Python<'_>) -> Self {
        *self
    }
}

impl Field for String {
    fn to_value(&self, _py: Python<'_>) -> Value {
        Value::Text(Some(self.clone()))
    }
    fn from_value(value: Value) -> Result<Self, &'static str> {
        match value {
            Value::Text(Some(s)) => Ok(s),
            Value::Text(None) => Err("None is not allowed for this setting"),
            _ => Err("value of the wrong type for this setting"),
        }
    }
    fn clone_field(&self, _py: Python<'_>) -> Self {
        self.clone()
    }
}

impl Field for Option<Py<PyAny>> {
    fn to_value(&self, py: Python<'_>) -> Value {
        Value::Obj(self.as_ref().map(|o| o.clone_ref(py)))
    }
    fn from_value(value: Value) -> Result<Self, &'static str> {
        match value {
            Value::Obj(o) => Ok(o),
            _ => Err("value of the wrong type for this setting"),
        }
    }
    fn clone_field(&self, py: Python<'_>) -> Self {
        self.as_ref().map(|o| o.clone_ref(py))
    }
}

/// Environment snapshot the defaults are computed from (Gunicorn reads these at import).
#[derive(Clone, Default)]
pub(crate) struct Env {
    vars: std::collections::HashMap<String, String>,
}

impl std::fmt::Debug for Env {
    // The environment may hold secrets; a debug-printed Config must not leak them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Env {{ {} variables }}", self.vars.len())
    }
}

impl Env {
    pub(crate) fn vars(&self) -> impl Iterator<Item = (&String, &String)> {
        self.vars.iter()
    }

    pub(crate) fn from_process() -> Env {
        Env {
            vars: std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
        }
    }

    #[cfg(test)]
    pub(crate) fn from_pairs(pairs: &[(&str, &str)]) -> Env {
        Env {
            vars: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.vars.get(key).map(String::as_str)
    }
}

/// A default computed from the environment (or fallibly) when `Config` is built.
pub(crate) struct FromEnv<T>(pub(crate) fn(&Env) -> Result<T, ConfigError>);

/// How a table row's `default:` expression becomes the field value: plain values are used
/// as they are, [`FromEnv`] defaults are evaluated against the snapshot.
pub(crate) trait Resolve<T> {
    fn resolve(self, env: &Env) -> Result<T, ConfigError>;
}

impl<T: Field> Resolve<T> for T {
    fn resolve(self, _env: &Env) -> Result<T, ConfigError> {
        Ok(self)
    }
}

impl<T> Resolve<T> for FromEnv<T> {
    fn resolve(self, env: &Env) -> Result<T, ConfigError> {
        (self.0)(env)
    }
}

/// `String` from a literal, to keep table rows short.
pub(crate) fn s(text: &str) -> String {
    text.to_string()
}

/// `Vec<String>` from literals.
pub(crate) fn list(items: &[&str]) -> Vec<String> {
    items.iter().map(|i| i.to_string()).collect()
}
