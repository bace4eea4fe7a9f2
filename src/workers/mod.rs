//! Worker processes: boot (post_fork, app load, post_worker_init), signals, and the loop of
//! each worker type: `sync` and `gthread`; `Config::check_supported` refuses the others.
//!
//! Workers never touch the master's state: what they need arrives in `WorkerContext`.

mod app_socket;
pub mod base;
mod gthread;
mod hook_objects;
pub mod inotify;
pub mod request;
pub mod signals;
pub mod sync;

pub use base::{run_worker, WorkerContext};
