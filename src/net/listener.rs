//! Binding listeners with Gunicorn's rules: SO_REUSEADDR, optional SO_REUSEPORT, TCP_NODELAY,
//! stale unix socket removal under the configured umask, `fd://N` adoption without a second
//! listen(), and five bind attempts a second apart before giving up with exit status 1.

use std::fmt;
use std::io;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;

use socket2::{Domain, Socket, Type};

use super::stream::Accepted;
use crate::config::{BindAddr, Config};
use crate::errors::{Error, Result};
use crate::http::{Peer, ServerAddr};
use crate::telemetry::error_log;

pub enum Listener {
    Tcp(TcpListener, SocketAddr),
    /// The path, and the same as text for every request's SERVER_NAME.
    Unix(UnixListener, PathBuf, std::sync::Arc<str>),
}

impl Listener {
    pub fn fd(&self) -> RawFd {
        self.as_fd().as_raw_fd()
    }

    /// Non-blocking accept; the caller polls first.
    pub fn accept(&self) -> io::Result<(Accepted, Peer)> {
        match self {
            Listener::Tcp(l, _) => {
                let (s, addr) = l.accept()?;
                s.set_nodelay(true)?;
                Ok((Accepted::Tcp(s), Peer::Ip(addr)))
            }
            Listener::Unix(l, ..) => {
                let (s, _) = l.accept()?;
                Ok((Accepted::Unix(s), Peer::Unix))
            }
        }
    }

    /// Where its connections arrive, as requests report it.
    pub fn server_addr(&self) -> ServerAddr {
        match self {
            Listener::Tcp(_, a) => ServerAddr::Tcp(*a),
            Listener::Unix(_, _, text) => ServerAddr::Unix(text.clone()),
        }
    }

    /// Make the kernel drop new TCP connection attempts (SYNs) while the connections already
    /// queued stay acceptable, so a final graceful stop can drain the backlog without racing
    /// new arrivals. A dropped SYN is retried by the client and refused once the socket is
    /// closed, where closing with a non-empty queue would reset connections the client
    /// believes are open (Gunicorn #2409). The filter belongs to the socket, not this
    /// descriptor: never use it on a socket another server will keep listening on.
    pub fn stop_new_connections(&self) -> io::Result<()> {
        match self {
            Listener::Tcp(l, _) => {
                // Classic BPF "ret #0": accept zero bytes of every packet, i.e. drop it.
                let drop_all = [socket2::SockFilter::new(
                    (libc::BPF_RET | libc::BPF_K) as u16,
                    0,
                    0,
                    0,
                )];
                socket2::SockRef::from(l).attach_filter(&drop_all)
            }
            // Unix sockets do not run socket filters on connect; they are drained as they are.
            Listener::Unix(..) => Ok(()),
        }
    }

    /// Remove a unix socket file on shutdown (Gunicorn does this only in a plain master).
    pub fn unlink(&self) {
        if let Listener::Unix(_, p, _) = self {
            let _ = std::fs::remove_file(p);
        }
    }
}

impl AsFd for Listener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Listener::Tcp(l, _) => l.as_fd(),
            Listener::Unix(l, ..) => l.as_fd(),
        }
    }
}

impl fmt::Display for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Listener::Tcp(_, SocketAddr::V4(a)) => write!(f, "http://{}:{}", a.ip(), a.port()),
            Listener::Tcp(_, SocketAddr::V6(a)) => write!(f, "http://[{}]:{}", a.ip(), a.port()),
            Listener::Unix(_, p, _) => write!(f, "unix:{}", p.display()),
        }
    }
}

impl Listener {
    /// The "Listening at" name: `https://` under TLS, for IPv6 too (Gunicorn 27 prints
    /// `http://[…]` there whatever the scheme).
    pub fn url(&self, tls: bool) -> String {
        let plain = self.to_string();
        match (tls, plain.strip_prefix("http://")) {
            (true, Some(rest)) => format!("https://{rest}"),
            _ => plain,
        }
    }
}

fn from_socket(sock: Socket) -> io::Result<Listener> {
    let local = sock.local_addr()?;
    if let Some(addr) = local.as_socket() {
        let _ = sock.set_tcp_nodelay(true);
        Ok(Listener::Tcp(sock.into(), addr))
    } else {
        let path = local
            .as_pathname()
            .map(|p| p.to_path_buf())
            .unwrap_or_default();
        let text = path.to_str().unwrap_or("").into();
        Ok(Listener::Unix(sock.into(), path, text))
    }
}

fn prepare(sock: &Socket, reuse_port: bool) -> io::Result<()> {
    sock.set_reuse_address(true)?;
    if reuse_port {
        // Like Gunicorn, a kernel without SO_REUSEPORT is not an error.
        let _ = sock.set_reuse_port(true);
    }
    Ok(())
}

fn bind_tcp(host: &str, port: u16, cfg: &Config) -> io::Result<Listener> {
    let addr = (host, port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::AddrNotAvailable, "no address"))?;
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    prepare(&sock, cfg.reuse_port)?;
    sock.set_tcp_nodelay(true)?;
    sock.bind(&addr.into())?;
    sock.listen(backlog(cfg))?;
    from_socket(sock)
}

fn backlog(cfg: &Config) -> i32 {
    cfg.backlog.clamp(1, i32::MAX as i64) as i32
}

fn bind_unix(path: &PathBuf, cfg: &Config) -> io::Result<Listener> {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if meta.file_type().is_socket() {
            std::fs::remove_file(path)?;
        } else {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{:?} is not a socket", path.display().to_string()),
            ));
        }
    }
    let sock = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    prepare(&sock, false)?;
    let mask = nix::sys::stat::Mode::from_bits_truncate(cfg.umask as libc::mode_t);
    let old = nix::sys::stat::umask(mask);
    let res = sock.bind(&socket2::SockAddr::unix(path)?);
    nix::sys::stat::umask(old);
    res?;
    // Workers may run as another user; they, not the master, must own the socket file.
    let euid = nix::unistd::geteuid().as_raw();
    let egid = nix::unistd::getegid().as_raw();
    if cfg.user != euid || cfg.group != egid {
        crate::sys::process::chown_path(path, cfg.user, cfg.group)?;
    }
    sock.listen(backlog(cfg))?;
    from_socket(sock)
}

fn adopt_fd(fd: i32, cfg: &Config) -> io::Result<Listener> {
    let sock = crate::sys::process::adopt_socket(fd)?;
    // An inherited socket that is already listening keeps its backlog (systemd, SELinux).
    if !sock.is_listener().unwrap_or(false) {
        sock.listen(backlog(cfg))?;
    }
    sock.set_cloexec(true)?;
    from_socket(sock)
}

fn bind_one(addr: &BindAddr, cfg: &Config) -> io::Result<Listener> {
    match addr {
        BindAddr::Tcp { host, port } => bind_tcp(host, *port, cfg),
        BindAddr::Unix(p) => bind_unix(p, cfg),
        BindAddr::Fd(fd) => adopt_fd(*fd, cfg),
    }
}

fn describe(addr: &BindAddr) -> String {
    match addr {
        BindAddr::Tcp { host, port } if host.contains(':') => format!("[{host}]:{port}"),
        BindAddr::Tcp { host, port } => format!("{host}:{port}"),
        BindAddr::Unix(p) => p.display().to_string(),
        BindAddr::Fd(fd) => format!("fd://{fd}"),
    }
}

/// Bind every configured address. When any `fd://` address is given, only fd listeners are
/// used, as in Gunicorn. Each bind is tried five times before the server gives up (exit 1).
pub fn create_listeners(cfg: &Config) -> Result<Vec<Listener>> {
    create_listeners_from(cfg, &[])
}

/// As [`create_listeners`], with inherited descriptors (systemd socket activation) taking
/// the place of the configured binds, as Gunicorn does.
pub fn create_listeners_from(cfg: &Config, inherited: &[i32]) -> Result<Vec<Listener>> {
    let mut addrs = if inherited.is_empty() {
        cfg.address()?
    } else {
        inherited.iter().map(|fd| BindAddr::Fd(*fd)).collect()
    };
    if addrs.iter().any(|a| matches!(a, BindAddr::Fd(_))) {
        addrs.retain(|a| matches!(a, BindAddr::Fd(_)));
    }
    let mut out = Vec::with_capacity(addrs.len());
    for addr in &addrs {
        let mut attempt = 0;
        loop {
            match bind_one(addr, cfg) {
                Ok(l) => {
                    out.push(l);
                    break;
                }
                Err(e) => {
                    match e.raw_os_error() {
                        Some(libc::EADDRINUSE) => {
                            error_log::error(&format!("Connection in use: {}", describe(addr)))
                        }
                        Some(libc::EADDRNOTAVAIL) => {
                            error_log::error(&format!("Invalid address: {}", describe(addr)))
                        }
                        _ => error_log::error(&format!(
                            "connection to {} failed: {}",
                            describe(addr),
                            e
                        )),
                    }
                    attempt += 1;
                    if attempt >= 5 || matches!(addr, BindAddr::Fd(_)) {
                        error_log::error(&format!("Can't connect to {}", describe(addr)));
                        return Err(Error::Exit(crate::errors::exit::CONFIG));
                    }
                    error_log::debug("Retrying in 1 second.");
                    std::thread::sleep(std::time::Duration::from_secs(1));
                }
            }
        }
    }
    for l in &out {
        // Workers poll the listeners; accept must never block a worker.
        let res = match l {
            Listener::Tcp(s, _) => s.set_nonblocking(true),
            Listener::Unix(s, ..) => s.set_nonblocking(true),
        };
        res?;
    }
    Ok(out)
}
