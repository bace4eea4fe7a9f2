//! A freshly accepted connection, before the connection layer wraps it in a `Transport`.

use std::net::TcpStream;
use std::os::unix::net::UnixStream;

pub enum Accepted {
    Tcp(TcpStream),
    Unix(UnixStream),
}
