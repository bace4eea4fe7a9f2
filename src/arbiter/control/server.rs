//! The control socket itself: a non-blocking unix listener and its connections, polled by
//! the master's own loop like the metrics endpoint (no thread, nothing to stop around fork),
//! and the careful bind that never takes a path from a server still answering on it.
//!
//! Owns: the socket file (created with its final mode, removed only while it is still
//! ours), connections, reading frames and writing replies. Must not touch: what a request
//! means (`control::commands`) and the frame format (`control::protocol`).

use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::poll::PollFlags;
use socket2::{Domain, SockAddr, Socket, Type};

use super::protocol::{take_frame, Frame, Request, MAX_MESSAGE};

/// Gunicorn closes a connection that sends no request for five minutes.
const IDLE: Duration = Duration::from_secs(300);
const MAX_CONNS: usize = 64;
/// Accepts per loop turn, and bytes read from one connection per loop turn, so a flood
/// cannot hold the master's loop.
const MAX_ACCEPTS: usize = 64;
const READ_PER_TURN: usize = 1024 * 1024;

pub struct ControlServer {
    listener: Socket,
    path: PathBuf,
    dev: u64,
    ino: u64,
    pid: u32,
    conns: Vec<Conn>,
    next_id: u64,
    paused_until: Option<Instant>,
}

struct Conn {
    id: u64,
    sock: Socket,
    input: Vec<u8>,
    out: Vec<u8>,
    sent: usize,
    /// Close once `out` is sent: the peer hung up or sent something that ends the
    /// connection.
    closing: bool,
    dead: bool,
    deadline: Instant,
}

/// Why the socket was not bound.
#[derive(Debug)]
pub enum BindError {
    /// Another process answers at the path.
    InUse,
    /// Something that is not a socket is at the path; it is left alone.
    NotASocket,
    Io(io::Error),
}

impl ControlServer {
    /// Bind `path` with `mode`: creates the parent directory (0700) if missing, replaces a
    /// stale socket file, refuses a live one or a file of another kind. The socket is
    /// created under a umask that leaves exactly `mode`, so it is never more open than that.
    pub fn bind(path: &Path, mode: u32) -> Result<Self, BindError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.exists() {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)
                    .map_err(BindError::Io)?;
            }
        }
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            if !meta.file_type().is_socket() {
                return Err(BindError::NotASocket);
            }
            if answers(path) {
                return Err(BindError::InUse);
            }
            match std::fs::remove_file(path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(BindError::Io(e)),
                _ => {}
            }
        }
        let io = BindError::Io;
        // socket2 opens with SOCK_CLOEXEC, so a USR2 re-exec does not inherit it.
        let listener = Socket::new(Domain::UNIX, Type::STREAM, None).map_err(io)?;
        // Python's wording, for Gunicorn's `Control server error: ...` line.
        let addr = SockAddr::unix(path)
            .map_err(|_| BindError::Io(io::Error::other("AF_UNIX path too long")))?;
        let mask = nix::sys::stat::Mode::from_bits_truncate(!mode & 0o777);
        let old = nix::sys::stat::umask(mask);
        let bound = listener.bind(&addr);
        nix::sys::stat::umask(old);
        bound.map_err(io)?;
        let meta = std::fs::symlink_metadata(path).map_err(io)?;
        let server = ControlServer {
            listener,
            path: path.to_path_buf(),
            dev: meta.dev(),
            ino: meta.ino(),
            pid: std::process::id(),
            conns: Vec::new(),
            next_id: 0,
            paused_until: None,
        };
        // Only narrows or restates what the umask left (bits beyond 0777 need chmod).
        if mode & !0o777 != 0 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o7777))
                .map_err(io)?;
        }
        server.listener.listen(64).map_err(io)?;
        server.listener.set_nonblocking(true).map_err(io)?;
        Ok(server)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn poll_fds(&self) -> Vec<(BorrowedFd<'_>, PollFlags)> {
        let mut fds = Vec::with_capacity(1 + self.conns.len());
        if !self.accept_paused() {
            fds.push((self.listener.as_fd(), PollFlags::POLLIN));
        }
        for c in &self.conns {
            // A connection with a reply still going out is not read: a client that never
            // reads cannot make the master buffer without bound.
            let flags = if c.sent < c.out.len() {
                PollFlags::POLLOUT
            } else {
                PollFlags::POLLIN
            };
            fds.push((c.sock.as_fd(), flags));
        }
        fds
    }

    /// Accept what is waiting and read every connection as far as it goes; the complete
    /// requests, in order, with the connection each came on.
    pub fn read_requests(&mut self) -> Vec<(u64, Request)> {
        self.accept_pending();
        let mut out = Vec::new();
        for c in &mut self.conns {
            c.read_into(&mut out);
        }
        out
    }

    /// Queue a reply on a connection (gone connections are skipped).
    pub fn reply(&mut self, conn: u64, bytes: Vec<u8>) {
        if let Some(c) = self.conns.iter_mut().find(|c| c.id == conn) {
            c.out.extend_from_slice(&bytes);
        }
    }

    /// Write what can be written, and drop finished, broken or idle connections.
    pub fn flush(&mut self) {
        let now = Instant::now();
        self.conns.retain_mut(|c| {
            c.write();
            let pending = c.sent < c.out.len();
            !(c.dead || (c.closing && !pending) || now >= c.deadline)
        });
    }

    fn accept_paused(&self) -> bool {
        crate::arbiter::accept::paused(self.paused_until)
    }

    fn accept_pending(&mut self) {
        let conns = &mut self.conns;
        let next_id = &mut self.next_id;
        crate::arbiter::accept::accept_batch(
            &self.listener,
            &mut self.paused_until,
            MAX_ACCEPTS,
            |sock| {
                if conns.len() >= MAX_CONNS {
                    // The connection idle longest makes room: idle clients must not lock an
                    // operator out.
                    if let Some(i) = (0..conns.len()).min_by_key(|i| conns[*i].deadline) {
                        conns.remove(i);
                    }
                }
                *next_id += 1;
                conns.push(Conn {
                    id: *next_id,
                    sock,
                    input: Vec::new(),
                    out: Vec::new(),
                    sent: 0,
                    closing: false,
                    dead: false,
                    deadline: Instant::now() + IDLE,
                });
            },
        );
    }
}

impl Drop for ControlServer {
    /// Forked workers drop their copy too: only the process that bound the socket removes
    /// the file, and only while it is still the file it bound (another server may own the
    /// path by now).
    fn drop(&mut self) {
        if self.pid != std::process::id() {
            return;
        }
        let same = std::fs::symlink_metadata(&self.path)
            .map(|m| m.dev() == self.dev && m.ino() == self.ino)
            .unwrap_or(false);
        if same {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl Conn {
    fn read_into(&mut self, requests: &mut Vec<(u64, Request)>) {
        if self.closing || self.dead || self.sent < self.out.len() {
            return;
        }
        let mut buf = [0u8; 16 * 1024];
        let mut read = 0;
        while read < READ_PER_TURN {
            match (&self.sock).read(&mut buf) {
                Ok(0) => {
                    self.closing = true;
                    break;
                }
                Ok(n) => {
                    read += n;
                    self.input.extend_from_slice(&buf[..n]);
                    self.deadline = Instant::now() + IDLE;
                    if self.input.len() > 4 + MAX_MESSAGE {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    self.dead = true;
                    return;
                }
            }
        }
        loop {
            match take_frame(&self.input) {
                Frame::Incomplete => break,
                Frame::Request(request, used) => {
                    self.input.drain(..used);
                    requests.push((self.id, request));
                }
                Frame::Drop => {
                    // Replies to earlier requests still go out; nothing more is read.
                    self.input.clear();
                    self.closing = true;
                    break;
                }
            }
        }
        if self.closing {
            self.input.clear();
        }
    }

    fn write(&mut self) {
        while self.sent < self.out.len() {
            // MSG_NOSIGNAL: a client that hung up must not raise SIGPIPE in the master.
            match self
                .sock
                .send_with_flags(&self.out[self.sent..], libc::MSG_NOSIGNAL)
            {
                Ok(0) => {
                    self.dead = true;
                    return;
                }
                Ok(n) => {
                    self.sent += n;
                    self.deadline = Instant::now() + IDLE;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => {
                    self.dead = true;
                    return;
                }
            }
        }
        self.out.clear();
        self.sent = 0;
    }
}

/// Whether a process accepts connections on the unix socket at `path`. A non-blocking
/// connect never waits: a full backlog (EAGAIN) still means someone is there, and only a
/// refusal (nobody listening) or a vanished file means the socket is stale.
fn answers(path: &Path) -> bool {
    let Ok(sock) = Socket::new(Domain::UNIX, Type::STREAM, None) else {
        return true;
    };
    let Ok(addr) = SockAddr::unix(path) else {
        return true;
    };
    if sock.set_nonblocking(true).is_err() {
        return true;
    }
    match sock.connect(&addr) {
        Ok(()) => true,
        Err(e) => !matches!(
            e.raw_os_error(),
            Some(libc::ECONNREFUSED) | Some(libc::ENOENT)
        ),
    }
}

/// An OS error as Python prints one (`[Errno 13] Permission denied`), for Gunicorn's log
/// lines.
pub fn py_os_error(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => format!(
            "[Errno {code}] {}",
            nix::errno::Errno::from_raw(code).desc()
        ),
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ferrocorn-ctl-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn binds_with_its_mode_and_removes_only_its_own_file() {
        let dir = tmp_dir("mode");
        let path = dir.join("sub/x.ctl");
        let server = ControlServer::bind(&path, 0o640).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o7777, 0o640);
        assert_eq!(
            std::fs::metadata(dir.join("sub"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o700
        );
        // A live server keeps its path.
        assert!(matches!(
            ControlServer::bind(&path, 0o600),
            Err(BindError::InUse)
        ));
        // Someone else's file at the path by now: dropping leaves it.
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, "other").unwrap();
        drop(server);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "other");
        assert!(matches!(
            ControlServer::bind(&path, 0o600),
            Err(BindError::NotASocket)
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn replaces_a_stale_socket_and_unlinks_on_drop() {
        let dir = tmp_dir("stale");
        let path = dir.join("x.ctl");
        let stale = std::os::unix::net::UnixListener::bind(&path).unwrap();
        drop(stale);
        assert!(!answers(&path));
        let server = ControlServer::bind(&path, 0o600).unwrap();
        assert!(answers(&path));
        drop(server);
        assert!(!path.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
