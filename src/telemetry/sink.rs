//! One log destination (stdout, stderr, a file, or nothing) shared by all threads of a process
//! and inherited across fork.
//!
//! Owns: opening files for append, swapping destinations, reopening (USR1), and the single
//! write(2) per line that keeps lines from several workers sharing one file whole.
//! Must not touch: line contents; callers hand over finished bytes.
//!
//! The write path takes no lock: a worker forked while another thread held a lock would
//! deadlock on its first log line. Instead the file descriptor number is published in an
//! atomic and is never closed once created; reopening and retargeting replace the open file
//! *behind* that number with dup3(2), which is atomic for concurrent writers.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use super::TelemetryError;
use crate::sys::fd::StableFd;

/// Where a sink writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Disabled = 0,
    Stdout = 1,
    Stderr = 2,
    File = 3,
}

impl Kind {
    fn from_u8(v: u8) -> Kind {
        match v {
            1 => Kind::Stdout,
            2 => Kind::Stderr,
            3 => Kind::File,
            _ => Kind::Disabled,
        }
    }
}

/// A requested destination.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Target<'a> {
    Disabled,
    Stdout,
    Stderr,
    File(&'a Path),
}

/// The control-path half of a sink: only `set_target`, `reopen` and `set_cloexec` lock it.
#[derive(Debug)]
struct Slot {
    path: Option<PathBuf>,
}

#[derive(Debug)]
pub(crate) struct Sink {
    setting: &'static str,
    kind: AtomicU8,
    /// Once set this is never closed or replaced, so lock-free writers can use it for the
    /// life of the process; only the open file behind it changes. Set under `slot`'s lock.
    file: OnceLock<StableFd>,
    slot: Mutex<Slot>,
}

/// How long a line may wait for a non-blocking stdout/stderr (shared with another program) to
/// drain before it is dropped; a log line must not stall a worker past its timeout.
const BLOCKED_WRITE_WAIT_MS: u16 = 1000;

impl Sink {
    pub(crate) const fn new(setting: &'static str, initial: Kind) -> Sink {
        Sink {
            setting,
            kind: AtomicU8::new(initial as u8),
            file: OnceLock::new(),
            slot: Mutex::new(Slot { path: None }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Slot> {
        // A panic while holding this lock leaves the slot consistent (every field is written
        // in one step), so poisoning carries no information.
        self.slot.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn kind(&self) -> Kind {
        Kind::from_u8(self.kind.load(Ordering::Acquire))
    }

    pub(crate) fn is_enabled(&self) -> bool {
        self.kind() != Kind::Disabled
    }

    /// The descriptor of the log file, or None when the sink writes to a standard stream or
    /// nowhere.
    pub(crate) fn raw_fd(&self) -> Option<i32> {
        if self.kind() == Kind::File {
            self.file.get().map(StableFd::raw)
        } else {
            None
        }
    }

    /// Points descriptors 1 and 2 at this sink's file (`capture_output`). Nothing happens
    /// unless the sink is a file.
    pub(crate) fn redirect_stdio(&self) -> io::Result<()> {
        let (Kind::File, Some(fd)) = (self.kind(), self.file.get()) else {
            return Ok(());
        };
        nix::unistd::dup2_stdout(fd)?;
        nix::unistd::dup2_stderr(fd)?;
        Ok(())
    }

    /// Switches the destination. A file that cannot be opened for append leaves the previous
    /// destination in place (as Gunicorn keeps the old logger when a reload fails).
    pub(crate) fn set_target(&self, target: Target<'_>) -> Result<(), TelemetryError> {
        let mut slot = self.lock();
        match target {
            Target::File(path) => {
                let fresh = open_append(path).map_err(|source| TelemetryError::NotWritable {
                    setting: self.setting,
                    path: path.to_path_buf(),
                    source,
                })?;
                self.install(&mut slot, fresh.into()).map_err(|source| {
                    TelemetryError::NotWritable {
                        setting: self.setting,
                        path: path.to_path_buf(),
                        source,
                    }
                })?;
                // Python's FileHandler keeps the absolute path, so a later chdir (the app's
                // or `chdir`) does not change which file USR1 reopens.
                slot.path = Some(std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()));
                self.kind.store(Kind::File as u8, Ordering::Release);
            }
            Target::Stdout | Target::Stderr | Target::Disabled => {
                let kind = match target {
                    Target::Stdout => Kind::Stdout,
                    Target::Stderr => Kind::Stderr,
                    _ => Kind::Disabled,
                };
                self.kind.store(kind as u8, Ordering::Release);
                slot.path = None;
                release_file(self.file.get(), kind);
            }
        }
        Ok(())
    }

    /// Re-opens the file by name, so a rotated (renamed) file is left behind and a new one is
    /// created. Standard streams and a disabled sink have nothing to reopen.
    pub(crate) fn reopen(&self) -> Result<(), TelemetryError> {
        let mut slot = self.lock();
        if self.kind() != Kind::File {
            return Ok(());
        }
        let Some(path) = slot.path.clone() else {
            return Ok(());
        };
        let err = |source| TelemetryError::Reopen {
            setting: self.setting,
            path: path.clone(),
            source,
        };
        let fresh = open_append(&path).map_err(err)?;
        self.install(&mut slot, fresh.into()).map_err(err)
    }

    /// Makes sure the log file is not inherited by exec'd programs. Files are opened with
    /// O_CLOEXEC already; this re-asserts it for callers that follow Gunicorn's
    /// `close_on_exec()` ritual after fork.
    pub(crate) fn set_cloexec(&self) -> io::Result<()> {
        let _slot = self.lock();
        if let Some(file) = self.file.get() {
            fcntl(file, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))?;
        }
        Ok(())
    }

    /// Gives the log file to the user and group workers run as, so they can reopen it on
    /// USR1 after dropping privileges. Failures are ignored as in Gunicorn (the file may be
    /// /dev/null or on a filesystem without ownership).
    pub(crate) fn chown(&self, uid: u32, gid: u32) {
        let slot = self.lock();
        if let Some(path) = slot.path.as_ref() {
            let _ = nix::unistd::chown(
                path,
                Some(nix::unistd::Uid::from_raw(uid)),
                Some(nix::unistd::Gid::from_raw(gid)),
            );
        }
    }

    /// Puts `fresh` behind the stable descriptor (or makes it the stable descriptor).
    fn install(&self, _slot: &mut Slot, fresh: OwnedFd) -> io::Result<()> {
        match self.file.get() {
            Some(stable) => stable.retarget(&fresh)?,
            None => {
                let _ = self.file.set(StableFd::new(fresh));
            }
        }
        Ok(())
    }

    /// Writes one finished line (or raw text) with as few write(2) calls as the kernel allows:
    /// one for regular files opened with O_APPEND, so concurrent writers never interleave.
    /// Failures are dropped: there is nowhere better to report that logging failed.
    pub(crate) fn write_all(&self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        match self.kind() {
            Kind::Disabled => {}
            Kind::Stdout => write_fully(io::stdout().as_fd(), bytes),
            Kind::Stderr => write_fully(io::stderr().as_fd(), bytes),
            Kind::File => {
                if let Some(file) = self.file.get() {
                    write_fully(file.as_fd(), bytes);
                }
            }
        }
    }
}

/// Detaches the stable descriptor from the old file so a rotated log can be freed, pointing
/// it at the new stream (or /dev/null) for writers that raced with the switch.
fn release_file(stable: Option<&StableFd>, kind: Kind) {
    let Some(stable) = stable else {
        return;
    };
    let result = match kind {
        Kind::Stdout => stable.retarget(io::stdout().as_fd()),
        Kind::Stderr => stable.retarget(io::stderr().as_fd()),
        _ => match OpenOptions::new().write(true).open("/dev/null") {
            Ok(null) => stable.retarget(&null),
            Err(_) => Ok(()),
        },
    };
    // Keeping the old file open is harmless; the destination switch already happened.
    let _ = result;
}

/// Python's `open(path, "a")`: create with 0666 & ~umask, append, close-on-exec.
fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().append(true).create(true).open(path)
}

fn write_fully(fd: BorrowedFd<'_>, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        match nix::unistd::write(fd, bytes) {
            Ok(0) => return,
            Ok(n) => bytes = &bytes[n..],
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => {
                let mut fds = [PollFd::new(fd, PollFlags::POLLOUT)];
                match poll(&mut fds, PollTimeout::from(BLOCKED_WRITE_WAIT_MS)) {
                    Ok(n) if n > 0 => {}
                    Err(Errno::EINTR) => {}
                    _ => return,
                }
            }
            Err(_) => return,
        }
    }
}

/// Renders an I/O error the way Python's `repr(OSError)` does, e.g.
/// `PermissionError(13, 'Permission denied')`, so error texts match Gunicorn's.
pub(crate) fn python_os_error(err: &io::Error) -> String {
    let Some(code) = err.raw_os_error() else {
        return format!(
            "OSError({})",
            super::pyformat::py_repr(&err.to_string(), false)
        );
    };
    let errno = Errno::from_raw(code);
    let class = match errno {
        Errno::EACCES | Errno::EPERM => "PermissionError",
        Errno::ENOENT => "FileNotFoundError",
        Errno::EEXIST => "FileExistsError",
        Errno::EISDIR => "IsADirectoryError",
        Errno::ENOTDIR => "NotADirectoryError",
        Errno::EINTR => "InterruptedError",
        Errno::EAGAIN | Errno::EALREADY | Errno::EINPROGRESS => "BlockingIOError",
        Errno::ECHILD => "ChildProcessError",
        Errno::EPIPE | Errno::ESHUTDOWN => "BrokenPipeError",
        Errno::ECONNABORTED => "ConnectionAbortedError",
        Errno::ECONNREFUSED => "ConnectionRefusedError",
        Errno::ECONNRESET => "ConnectionResetError",
        Errno::ESRCH => "ProcessLookupError",
        Errno::ETIMEDOUT => "TimeoutError",
        _ => "OSError",
    };
    format!(
        "{class}({code}, {})",
        super::pyformat::py_repr(errno.desc(), false)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "ferrocorn-sink-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn read(path: &Path) -> String {
        let mut s = String::new();
        File::open(path).unwrap().read_to_string(&mut s).unwrap();
        s
    }

    #[test]
    fn file_target_appends_and_reopen_follows_rename() {
        let dir = temp_dir("reopen");
        let path = dir.join("error.log");
        std::fs::write(&path, "existing\n").unwrap();
        let sink = Sink::new("errorlog", Kind::Stderr);
        sink.set_target(Target::File(&path)).unwrap();
        let fd = sink.raw_fd().expect("a file target has a descriptor");
        sink.write_all(b"one\n");

        let rotated = dir.join("error.log.1");
        std::fs::rename(&path, &rotated).unwrap();
        sink.write_all(b"two\n");
        sink.reopen().unwrap();
        sink.write_all(b"three\n");

        assert_eq!(read(&rotated), "existing\none\ntwo\n");
        assert_eq!(read(&path), "three\n");
        assert_eq!(
            sink.raw_fd(),
            Some(fd),
            "reopen keeps the descriptor number"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn unwritable_file_names_the_setting_and_keeps_the_old_target() {
        let dir = temp_dir("unwritable");
        let good = dir.join("ok.log");
        let sink = Sink::new("errorlog", Kind::Stderr);
        sink.set_target(Target::File(&good)).unwrap();
        let missing = dir.join("no-such-dir").join("x.log");
        let err = sink.set_target(Target::File(&missing)).unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("errorlog: '"), "{text}");
        assert!(
            text.ends_with("' isn't writable [FileNotFoundError(2, 'No such file or directory')]"),
            "{text}"
        );
        assert_eq!(err.setting(), "errorlog");
        sink.write_all(b"still here\n");
        assert_eq!(read(&good), "still here\n");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn switching_to_a_stream_releases_the_file() {
        let dir = temp_dir("release");
        let path = dir.join("a.log");
        let sink = Sink::new("accesslog", Kind::Disabled);
        assert!(!sink.is_enabled());
        sink.set_target(Target::File(&path)).unwrap();
        assert!(sink.is_enabled());
        sink.set_target(Target::Disabled).unwrap();
        assert!(!sink.is_enabled());
        assert_eq!(sink.raw_fd(), None);
        sink.write_all(b"dropped\n");
        sink.reopen().unwrap();
        assert_eq!(read(&path), "");
        // Going back to a file reuses the stable descriptor.
        sink.set_target(Target::File(&path)).unwrap();
        sink.write_all(b"back\n");
        assert_eq!(read(&path), "back\n");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn cloexec_is_set_on_the_file() {
        let dir = temp_dir("cloexec");
        let path = dir.join("c.log");
        let sink = Sink::new("errorlog", Kind::Stderr);
        sink.set_target(Target::File(&path)).unwrap();
        sink.reopen().unwrap();
        sink.set_cloexec().unwrap();
        let flags = fcntl(sink.file.get().unwrap(), FcntlArg::F_GETFD).unwrap();
        assert!(FdFlag::from_bits_truncate(flags).contains(FdFlag::FD_CLOEXEC));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn python_error_reprs() {
        let e = io::Error::from_raw_os_error(13);
        assert_eq!(
            python_os_error(&e),
            "PermissionError(13, 'Permission denied')"
        );
        let e = io::Error::from_raw_os_error(21);
        assert_eq!(
            python_os_error(&e),
            "IsADirectoryError(21, 'Is a directory')"
        );
    }
}
