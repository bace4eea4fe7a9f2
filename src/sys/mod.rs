//! Process-level primitives: fork, shared-memory heartbeats, process titles.
//!
//! This is the only module allowed to contain `unsafe`. It knows nothing about HTTP,
//! configuration or workers' logic; it offers small safe functions to the arbiter and workers.

pub mod heartbeat;
pub mod process;
