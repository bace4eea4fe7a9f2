//! Listening sockets and accepted connections.
//!
//! Owns binding (TCP v4/v6, unix paths, inherited `fd://N` sockets), Gunicorn's retry loop and
//! its "Listening at" names, and the `Stream` type workers read and write. It does not parse
//! HTTP and does not decide what to do with a connection.

pub mod listener;
pub mod stream;
pub mod systemd;

pub use listener::{create_listeners, create_listeners_from, Listener};
pub use stream::{Peer, Stream};
