//! The kernel side of `--reload-engine inotify`: an inotify instance that watches directories
//! and hands the names of changed entries to `ferrocorn._reloader.InotifyReloader`.
//!
//! It owns only the inotify descriptor and its watch table. Which directories to watch, when
//! to refresh them and what a change means (stopping the worker) stay in `_reloader.py` and
//! `reload::start_reloader`; this module must not grow worker or config logic.

use std::collections::HashMap;
use std::ffi::OsString;
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify as RawInotify, WatchDescriptor};
use pyo3::prelude::*;

/// Gunicorn 27's `InotifyReloader.event_mask`: anything that adds, removes, renames or
/// rewrites an entry of a watched directory, or removes or moves the directory itself.
const EVENT_MASK: AddWatchFlags = AddWatchFlags::IN_CREATE
    .union(AddWatchFlags::IN_DELETE)
    .union(AddWatchFlags::IN_DELETE_SELF)
    .union(AddWatchFlags::IN_MODIFY)
    .union(AddWatchFlags::IN_MOVE_SELF)
    .union(AddWatchFlags::IN_MOVED_FROM)
    .union(AddWatchFlags::IN_MOVED_TO);

/// Which paths are watched, both ways round.
#[derive(Debug, Default)]
struct Watches {
    /// Events about a watched directory itself carry no name; this lets them be reported
    /// by the directory's path instead of an empty string.
    by_wd: HashMap<WatchDescriptor, OsString>,
    /// The reloader asks "already watched?" for every directory on every idle tick, so the
    /// answer must not cost a scan. Two spellings of one directory share a descriptor.
    by_path: HashMap<OsString, WatchDescriptor>,
}

impl Watches {
    fn forget(&mut self, wd: WatchDescriptor) -> Option<OsString> {
        self.by_path.retain(|_, w| *w != wd);
        self.by_wd.remove(&wd)
    }
}

/// An inotify instance plus the directory behind each watch descriptor.
#[derive(Debug)]
pub struct Watcher {
    fd: RawInotify,
    watches: Mutex<Watches>,
}

impl Watcher {
    /// Non-blocking, so `wait` alone decides how long a read may block (the reloader needs
    /// idle ticks to pick up newly imported modules). Close-on-exec so a worker's re-exec
    /// or subprocess never inherits the watches.
    pub fn new() -> io::Result<Self> {
        let fd = RawInotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)?;
        Ok(Self {
            fd,
            watches: Mutex::new(Watches::default()),
        })
    }

    fn watches(&self) -> MutexGuard<'_, Watches> {
        // Plain data updated in single statements: a panic elsewhere leaves it usable.
        self.watches.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Watch `path` with Gunicorn's event mask. Watching the same path twice is harmless:
    /// the kernel returns the same descriptor.
    pub fn add_watch(&self, path: &Path) -> io::Result<()> {
        let wd = self.fd.add_watch(path, EVENT_MASK)?;
        let path = path.as_os_str().to_owned();
        let mut watches = self.watches();
        // Events name the directory by the spelling it was first watched under.
        watches.by_wd.entry(wd).or_insert_with(|| path.clone());
        watches.by_path.insert(path, wd);
        Ok(())
    }

    /// Wait up to `timeout` (forever with `None`) for events and return one name per event:
    /// the entry's file name as the kernel gives it (Gunicorn passes that name to the
    /// callback), or the watched directory's path for an event about the directory itself.
    /// An empty list means the wait timed out or a signal interrupted it.
    pub fn wait(&self, timeout: Option<Duration>) -> io::Result<Vec<OsString>> {
        let timeout = match timeout {
            None => PollTimeout::NONE,
            // Longer than poll() can express (~24 days): wait the longest it can.
            Some(t) => PollTimeout::try_from(t).unwrap_or(PollTimeout::MAX),
        };
        let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, timeout) {
            Ok(0) | Err(Errno::EINTR) => return Ok(Vec::new()),
            Ok(_) => {}
            Err(e) => return Err(e.into()),
        }
        let events = match self.fd.read_events() {
            Ok(events) => events,
            Err(Errno::EAGAIN | Errno::EINTR) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut watches = self.watches();
        Ok(events
            .into_iter()
            .map(|ev| {
                if ev.mask.contains(AddWatchFlags::IN_IGNORED) {
                    // The kernel dropped this watch (its directory is gone): forget it, so a
                    // recreated directory of the same path is watched again on refresh.
                    let dir = watches.forget(ev.wd);
                    return ev.name.or(dir).unwrap_or_default();
                }
                ev.name
                    .or_else(|| watches.by_wd.get(&ev.wd).cloned())
                    .unwrap_or_default()
            })
            .collect())
    }

    /// Whether some live watch is on `path` (as it was given to `add_watch`).
    pub fn is_watching(&self, path: &Path) -> bool {
        self.watches().by_path.contains_key(path.as_os_str())
    }
}

/// `ferrocorn._ferrocorn.Inotify`: the Python face of [`Watcher`], used by
/// `ferrocorn._reloader.InotifyReloader`. Methods raise `OSError` subclasses with the errno.
#[pyclass(module = "ferrocorn._ferrocorn", name = "Inotify", frozen)]
pub struct Inotify {
    watcher: Watcher,
}

#[pymethods]
impl Inotify {
    #[new]
    fn py_new() -> PyResult<Self> {
        Ok(Self {
            watcher: Watcher::new()?,
        })
    }

    /// `add_watch(path)`: watch the directory (or file) `path` for changes.
    fn add_watch(&self, path: PathBuf) -> PyResult<()> {
        Ok(self.watcher.add_watch(&path)?)
    }

    /// `watching(path) -> bool`: whether `path` has a live watch.
    fn watching(&self, path: PathBuf) -> bool {
        self.watcher.is_watching(&path)
    }

    /// `read(timeout=None) -> list[str]`: names of changed entries, `[]` after `timeout`
    /// seconds without events. The GIL is released while waiting, so the app keeps running.
    #[pyo3(signature = (timeout=None))]
    fn read(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Vec<OsString>> {
        let timeout = match timeout {
            Some(t) if t.is_nan() || t < 0.0 => {
                return Err(pyo3::exceptions::PyValueError::new_err(
                    "timeout must be a non-negative number",
                ))
            }
            Some(t) => Some(Duration::try_from_secs_f64(t).unwrap_or(Duration::MAX)),
            None => None,
        };
        Ok(py.detach(|| self.watcher.wait(timeout))?)
    }

    /// `fileno() -> int`: the inotify descriptor, for callers that select on it.
    fn fileno(&self) -> i32 {
        self.watcher.fd.as_fd().as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> Self {
            static N: AtomicUsize = AtomicUsize::new(0);
            let n = N.fetch_add(1, Ordering::SeqCst);
            let p =
                std::env::temp_dir().join(format!("ferrocorn-inotify-{}-{n}", std::process::id()));
            std::fs::create_dir_all(&p).unwrap();
            Self(p)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    const WAIT: Option<Duration> = Some(Duration::from_secs(5));

    #[test]
    fn a_created_file_is_reported_by_name() {
        let dir = TempDir::new();
        let w = Watcher::new().unwrap();
        w.add_watch(&dir.0).unwrap();
        std::fs::write(dir.0.join("app.py"), "x = 1\n").unwrap();
        let names = w.wait(WAIT).unwrap();
        assert!(names.iter().any(|n| n == "app.py"), "{names:?}");
    }

    #[test]
    fn a_modified_file_is_reported() {
        let dir = TempDir::new();
        let file = dir.0.join("mod.py");
        std::fs::write(&file, "a").unwrap();
        let w = Watcher::new().unwrap();
        w.add_watch(&dir.0).unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&file)
            .and_then(|mut f| io::Write::write_all(&mut f, b"b"))
            .unwrap();
        assert_eq!(w.wait(WAIT).unwrap(), vec![OsString::from("mod.py")]);
    }

    #[test]
    fn a_quiet_directory_times_out_with_no_names() {
        let dir = TempDir::new();
        let w = Watcher::new().unwrap();
        w.add_watch(&dir.0).unwrap();
        let names = w.wait(Some(Duration::from_millis(50))).unwrap();
        assert!(names.is_empty(), "{names:?}");
    }

    #[test]
    fn removing_the_directory_names_it_and_drops_the_watch() {
        let parent = TempDir::new();
        let dir = parent.0.join("pkg");
        std::fs::create_dir(&dir).unwrap();
        let w = Watcher::new().unwrap();
        // A second spelling of the same directory: the kernel hands back the same watch.
        let alias = dir.join(".");
        w.add_watch(&dir).unwrap();
        w.add_watch(&alias).unwrap();
        assert!(w.is_watching(&dir) && w.is_watching(&alias));
        std::fs::remove_dir(&dir).unwrap();
        let mut names = Vec::new();
        // DELETE_SELF and IGNORED may arrive in one read or two.
        while let Ok(batch) = w.wait(Some(Duration::from_millis(500))) {
            if batch.is_empty() {
                break;
            }
            names.extend(batch);
        }
        assert!(names.contains(&dir.clone().into_os_string()), "{names:?}");
        assert!(!w.is_watching(&dir) && !w.is_watching(&alias));
    }

    #[test]
    fn watching_a_missing_directory_is_not_found() {
        let parent = TempDir::new();
        let err = Watcher::new()
            .unwrap()
            .add_watch(&parent.0.join("absent"))
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }
}
