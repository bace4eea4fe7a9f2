//! Open files and their metadata, kept for a second per worker (what nginx's
//! `open_file_cache` does): a file requested again within `TTL` costs no open, no stat and
//! no close, which is most of a small file's system calls. Misses are kept too, so a
//! client asking for precompressed siblings that do not exist costs no failed opens.
//!
//! The price: a file replaced, changed or removed is seen up to `TTL` late (its old
//! descriptor keeps serving the old inode meanwhile; a file truncated in place makes the
//! response short, and the worker then closes the connection).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long an open (or a refusal) is reused.
pub const TTL: Duration = Duration::from_secs(1);
/// Entries kept at most per mount; past it, expired ones go, then everything.
const CAPACITY: usize = 1024;

/// What opening a path gave (`T`: the open file or why there is none), by path.
#[derive(Debug)]
pub struct OpenCache<T> {
    inner: Mutex<Inner<T>>,
}

#[derive(Debug)]
struct Inner<T> {
    map: HashMap<PathBuf, (T, Instant)>,
    /// Expired entries are dropped (their descriptors closed) at most once per `TTL`, so a
    /// file asked for once is not held open for the worker's life.
    swept: Instant,
}

impl<T> Default for OpenCache<T> {
    fn default() -> Self {
        OpenCache {
            inner: Mutex::new(Inner {
                map: HashMap::new(),
                swept: Instant::now(),
            }),
        }
    }
}

impl<T: Clone> OpenCache<T> {
    /// The outcome of opening `rel`: a fresh cached one, else `open`'s, kept for `TTL` when
    /// `keep` says it may be (a transient failure, such as running out of descriptors, is
    /// not).
    pub fn get_or_open(
        &self,
        rel: &Path,
        open: impl FnOnce() -> T,
        keep: impl FnOnce(&T) -> bool,
    ) -> T {
        let now = Instant::now();
        {
            let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((outcome, until)) = inner.map.get(rel) {
                if now < *until {
                    return outcome.clone();
                }
            }
        }
        // Opened without the lock: another thread may open the same file meanwhile,
        // which costs one extra open and nothing else.
        let outcome = open();
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if now >= inner.swept + TTL || inner.map.len() >= CAPACITY {
            inner.map.retain(|_, (_, until)| now < *until);
            inner.swept = now;
            if inner.map.len() >= CAPACITY {
                inner.map.clear();
            }
        }
        if keep(&outcome) {
            inner
                .map
                .insert(rel.to_path_buf(), (outcome.clone(), now + TTL));
        } else {
            inner.map.remove(rel);
        }
        outcome
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.inner.lock().unwrap().map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuses_within_the_ttl_and_bounds_its_size() {
        let cache: OpenCache<Result<u32, ()>> = OpenCache::default();
        let mut opens = 0;
        for _ in 0..3 {
            let r = cache.get_or_open(
                Path::new("x"),
                || {
                    opens += 1;
                    Err(())
                },
                |_| true,
            );
            assert_eq!(r, Err(()));
        }
        assert_eq!(opens, 1);
        for i in 0..(CAPACITY + 10) {
            let _ = cache.get_or_open(Path::new(&format!("f{i}")), || Ok(1), |_| true);
        }
        assert!(cache.len() <= CAPACITY);
    }

    #[test]
    fn expired_entries_go_and_transient_failures_are_not_kept() {
        let cache: OpenCache<Result<u32, ()>> = OpenCache::default();
        let _ = cache.get_or_open(Path::new("once"), || Ok(1), |_| true);
        assert_eq!(cache.len(), 1);
        // Whatever comes a TTL later sweeps the entry nobody asked for again.
        cache.inner.lock().unwrap().swept -= TTL;
        cache
            .inner
            .lock()
            .unwrap()
            .map
            .get_mut(Path::new("once"))
            .unwrap()
            .1 -= TTL;
        let _ = cache.get_or_open(Path::new("other"), || Err(()), |r| r.is_ok());
        assert_eq!(cache.len(), 0);
        let mut opens = 0;
        for _ in 0..2 {
            let _ = cache.get_or_open(
                Path::new("busy"),
                || {
                    opens += 1;
                    Err(())
                },
                |r| r.is_ok(),
            );
        }
        assert_eq!(opens, 2);
    }
}
