//! Worker processes: boot (`base`), signals, and the serving loop of each worker type (`sync`,
//! `gthread`), which hand every request to `request`. `Config::check_supported` refuses the
//! other types.
//!
//! Layers, each using only those after it: `base` → {`sync`, `gthread`} → `request` →
//! {`wsgi`, `hooks`}; `state` and `signals` are shared below `base`. Workers never touch the
//! master's state: what they need arrives in `WorkerContext`.

mod base;
mod gthread;
mod request;
mod signals;
mod state;
mod sync;

pub use base::{export_env, run_worker};
pub use state::WorkerContext;
