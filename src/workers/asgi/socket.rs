//! A client socket of the ASGI worker's I/O thread, TCP or unix. Its own module so that the
//! stream and the TLS driver can both use it without depending on each other.

use tokio::net::{TcpStream, UnixStream};

pub enum Socket {
    Tcp(TcpStream),
    Unix(UnixStream),
}
