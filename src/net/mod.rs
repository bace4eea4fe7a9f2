//! Listening sockets and accepted connections.
//!
//! Owns binding (TCP v4/v6, unix paths, inherited `fd://N` sockets), Gunicorn's retry loop and
//! its "Listening at" names, and accepting. It does not read or write connections (that is
//! `conn`), parse HTTP, or decide what to do with a connection.

pub mod listener;
pub mod stream;
pub mod systemd;

pub use listener::{create_listeners, create_listeners_from, Listener};
pub use stream::Accepted;
