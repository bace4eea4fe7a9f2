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
    map: Mutex<HashMap<PathBuf, (T, Instant)>>,
}

impl<T> Default for OpenCache<T> {
    fn default() -> Self {
        OpenCache {
            map: Mutex::new(HashMap::new()),
        }
    }
}

impl<T: Clone> OpenCache<T> {
    /// The outcome of opening `rel`: a fresh cached one, else `open`'s, kept for `TTL`.
    pub fn get_or_open(&self, rel: &Path, open: impl FnOnce() -> T) -> T {
        let now = Instant::now();
        {
            let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((outcome, until)) = map.get(rel) {
                if now < *until {
                    return outcome.clone();
                }
            }
        }
        // Opened without the lock: another thread may open the same file meanwhile,
        // which costs one extra open and nothing else.
        let outcome = open();
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= CAPACITY {
            map.retain(|_, (_, until)| now < *until);
            if map.len() >= CAPACITY {
                map.clear();
            }
        }
        map.insert(rel.to_path_buf(), (outcome.clone(), now + TTL));
        outcome
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
            let r = cache.get_or_open(Path::new("x"), || {
                opens += 1;
                Err(())
            });
            assert_eq!(r, Err(()));
        }
        assert_eq!(opens, 1);
        for i in 0..(CAPACITY + 10) {
            let _ = cache.get_or_open(Path::new(&format!("f{i}")), || Ok(1));
        }
        assert!(cache.map.lock().unwrap().len() <= CAPACITY);
    }
}
