//! Worker processes: boot (`base`), signals, and the serving loop of each worker type (`sync`,
//! `gthread`, which hand every request to `request`; `asgi`, which hands it to the ASGI
//! bridge; `gevent`, which runs the ASGI worker's I/O thread and hands every request to
//! `request` in a greenlet). `Config::check_supported` refuses the other types.
//!
//! Layers, each using only those after it: `base` → `gevent` → {`sync`, `gthread`, `asgi`} →
//! `request` →
//! {`wsgi`, `asgi` bridge, `hooks`}; `state` and `signals` are shared below `base`. Workers never touch the
//! master's state: what they need arrives in `WorkerContext`.

mod access_log;
mod asgi;
mod base;
mod gevent;
mod gthread;
mod request;
mod signals;
mod state;
mod statics;
mod sync;

pub use base::{export_env, run_worker};
pub use state::WorkerContext;
