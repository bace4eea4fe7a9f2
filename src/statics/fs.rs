//! Opening a file under a mount's directory so that nothing outside it can be reached:
//! openat2(2) with `RESOLVE_BENEATH` relative to the directory, opened once per worker, so
//! the kernel refuses any resolution (a symlink, a `..` inside a symlink's target) that
//! leaves it, in one system call. A symlink the kernel refuses because its target is
//! absolute is resolved to its real path and served only when that lies under the
//! directory. Kernels without openat2 (before 5.6) get the same check from the real path.

use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use nix::errno::Errno;
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;

use super::cache::OpenCache;
use super::reply::{mtime_ns, Facts};

/// Set once openat2 answered ENOSYS: every later open takes the real-path route.
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

/// Why a file is not served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Missing, not a regular file, or outside the directory (404: nothing is revealed).
    NotFound,
    /// The worker may not read it (403).
    Forbidden,
    /// The system could not open it now (out of descriptors or memory, an I/O error):
    /// 503, logged, and never kept in the cache.
    Unavailable(Errno),
}

/// A mount's directory, open for the worker's life, and the files recently opened under
/// it.
#[derive(Debug)]
pub struct Root {
    path: PathBuf,
    dir: OwnedFd,
    cache: OpenCache<Result<Opened, Refusal>>,
}

/// An open regular file and what the reply needs of it.
#[derive(Debug, Clone)]
pub struct Opened {
    pub file: Arc<File>,
    pub facts: Facts,
}

impl Root {
    /// Open the directory `path` (its real path, resolved at load).
    pub fn open(path: &Path) -> io::Result<Root> {
        let dir = File::options()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(path)?;
        Ok(Root {
            path: path.to_path_buf(),
            dir: dir.into(),
            cache: OpenCache::default(),
        })
    }

    /// `open_file`, reusing an outcome less than `cache::TTL` old.
    pub fn open_cached(&self, rel: &Path) -> Result<Opened, Refusal> {
        self.cache.get_or_open(
            rel,
            || self.open_file(rel),
            |outcome| !matches!(outcome, Err(Refusal::Unavailable(_))),
        )
    }

    /// Open `rel` (plain segments, checked by `path::resolve`) under the directory; only
    /// a regular file is served.
    pub fn open_file(&self, rel: &Path) -> Result<Opened, Refusal> {
        if rel.as_os_str().is_empty() {
            return Err(Refusal::NotFound);
        }
        let file = if NO_OPENAT2.load(Ordering::Relaxed) {
            self.open_real(rel)?
        } else {
            match self.beneath(rel, ResolveFlag::RESOLVE_NO_MAGICLINKS) {
                Ok(file) => file,
                // Leaving the directory, or a symlink with an absolute target.
                Err(Errno::EXDEV) => self.open_real(rel)?,
                // ENOSYS: a kernel before 5.6; EPERM: a seccomp profile that blocks it
                // (Docker before 20.10). Never silently: the route is weaker.
                Err(e @ (Errno::ENOSYS | Errno::EPERM)) => {
                    if !NO_OPENAT2.swap(true, Ordering::Relaxed) {
                        crate::telemetry::error_log::warning(&format!(
                            "static files: openat2 is not available ({e}); files are opened by their real path, which a symlink swapped in by someone who can write inside the directory can race"
                        ));
                    }
                    self.open_real(rel)?
                }
                Err(e) => return Err(refusal(e)),
            }
        };
        let meta = file.metadata().map_err(|_| Refusal::NotFound)?;
        if !meta.is_file() {
            return Err(Refusal::NotFound);
        }
        Ok(Opened {
            file: Arc::new(file),
            facts: facts(&meta),
        })
    }

    fn beneath(&self, rel: &Path, resolve: ResolveFlag) -> Result<File, Errno> {
        // Non-blocking so that a FIFO under the directory cannot hang the open; a regular
        // file ignores the flag.
        let how = OpenHow::new()
            .flags(OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOCTTY | OFlag::O_NONBLOCK)
            .mode(Mode::empty())
            .resolve(ResolveFlag::RESOLVE_BENEATH | resolve);
        openat2(&self.dir, rel, how).map(File::from)
    }

    /// The real-path route: every symlink resolved, the result must lie under the
    /// directory. With openat2 the real path is then opened refusing any symlink, so a
    /// link swapped in meanwhile is not followed; without it only the last component is
    /// protected (`O_NOFOLLOW`), which leaves a race to someone who can write inside the
    /// directory.
    fn open_real(&self, rel: &Path) -> Result<File, Refusal> {
        let real = std::fs::canonicalize(self.path.join(rel)).map_err(io_refusal)?;
        let inside = real
            .strip_prefix(&self.path)
            .map_err(|_| Refusal::NotFound)?;
        if NO_OPENAT2.load(Ordering::Relaxed) {
            return OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
                .open(&real)
                .map_err(io_refusal);
        }
        self.beneath(inside, ResolveFlag::RESOLVE_NO_SYMLINKS)
            .map_err(refusal)
    }
}

fn refusal(e: Errno) -> Refusal {
    match e {
        Errno::EACCES | Errno::EPERM => Refusal::Forbidden,
        Errno::EMFILE | Errno::ENFILE | Errno::ENOMEM | Errno::EIO | Errno::EAGAIN => {
            Refusal::Unavailable(e)
        }
        _ => Refusal::NotFound,
    }
}

fn io_refusal(e: io::Error) -> Refusal {
    match e.raw_os_error() {
        Some(code) => refusal(Errno::from_raw(code)),
        None => Refusal::NotFound,
    }
}

fn facts(meta: &Metadata) -> Facts {
    let mtime = meta
        .modified()
        .map(mtime_ns)
        .unwrap_or_else(|_| i128::from(meta.mtime()) * 1_000_000_000);
    Facts {
        len: meta.len(),
        mtime_ns: mtime,
        ino: meta.ino(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> (PathBuf, PathBuf) {
        let base = std::env::temp_dir().join(format!(
            "ferrocorn-statics-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&base);
        let root = base.join("root");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(base.join("secret"), b"secret").unwrap();
        std::fs::write(root.join("a.txt"), b"hello").unwrap();
        std::os::unix::fs::symlink("../secret", root.join("rel-out")).unwrap();
        std::os::unix::fs::symlink(base.join("secret"), root.join("abs-out")).unwrap();
        std::os::unix::fs::symlink("a.txt", root.join("rel-in")).unwrap();
        std::os::unix::fs::symlink(root.join("a.txt"), root.join("sub/abs-in")).unwrap();
        std::os::unix::fs::symlink("..", root.join("sub/up")).unwrap();
        (base, std::fs::canonicalize(root).unwrap())
    }

    #[test]
    fn only_files_under_the_directory_open() {
        let (base, root) = tree();
        let r = Root::open(&root).unwrap();
        let read = |rel: &str| {
            r.open_file(Path::new(rel)).map(|o| {
                let mut s = String::new();
                std::io::Read::read_to_string(&mut &*o.file, &mut s).unwrap();
                s
            })
        };
        assert_eq!(read("a.txt").as_deref(), Ok("hello"));
        assert_eq!(read("rel-in").as_deref(), Ok("hello"));
        assert_eq!(read("sub/abs-in").as_deref(), Ok("hello"));
        assert_eq!(read("sub/up/a.txt").as_deref(), Ok("hello"));
        assert_eq!(read("rel-out"), Err(Refusal::NotFound));
        assert_eq!(read("abs-out"), Err(Refusal::NotFound));
        assert_eq!(read("sub/up/../secret"), Err(Refusal::NotFound));
        assert_eq!(read("sub"), Err(Refusal::NotFound));
        assert_eq!(read(""), Err(Refusal::NotFound));
        assert_eq!(read("missing"), Err(Refusal::NotFound));
        assert_eq!(read("a.txt/x"), Err(Refusal::NotFound));
        let facts = r.open_file(Path::new("a.txt")).unwrap().facts;
        assert_eq!(facts.len, 5);
        let _ = std::fs::remove_dir_all(base);
    }
}
