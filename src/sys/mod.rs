//! Process-level primitives: fork, shared-memory heartbeats, process titles, descriptors
//! handed over by number, the signal wakeup pipe and a listener's accept-queue length.
//!
//! This is the only module allowed to contain `unsafe` (the crate root denies it elsewhere).
//! It knows nothing about HTTP, configuration or workers' logic; it offers small safe
//! functions to the rest of the crate.

#![allow(unsafe_code)]

pub mod fd;
pub mod gil;
pub mod heartbeat;
pub mod metrics;
pub mod process;
pub mod tcp;
pub mod wakeup;
