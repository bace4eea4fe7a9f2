//! Who is on the other end of a connection and where it arrived.

use std::net::SocketAddr;
use std::sync::Arc;

/// Who is on the other end: an IP peer, or a unix-socket client (which Gunicorn treats as
/// trusted and reports as REMOTE_ADDR '' with no REMOTE_PORT).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Peer {
    Ip(SocketAddr),
    Unix,
}

impl Peer {
    /// The `ip=` part of "Invalid request from ip=...": Gunicorn prints addr[0], '' for unix.
    pub fn ip_string(&self) -> String {
        match self {
            Peer::Ip(a) => a.ip().to_string(),
            Peer::Unix => String::new(),
        }
    }
}

/// Where a connection arrived: the listener's bound address, or its unix path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerAddr {
    Tcp(SocketAddr),
    Unix(Arc<str>),
}
