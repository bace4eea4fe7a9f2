//! Process-level primitives: fork, shared-memory heartbeats, process titles, descriptors
//! handed over by number, and the signal wakeup pipe.
//!
//! This is the only module allowed to contain `unsafe` (the crate root denies it elsewhere).
//! It knows nothing about HTTP, configuration or workers' logic; it offers small safe
//! functions to the rest of the crate.

#![allow(unsafe_code)]

pub mod fd;
pub mod heartbeat;
pub mod process;
pub mod wakeup;
