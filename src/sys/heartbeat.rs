//! Worker liveness through shared memory instead of Gunicorn's heartbeat file.
//!
//! The master maps one anonymous shared region before forking any worker; each worker owns
//! one slot and stores the CLOCK_MONOTONIC time of its last sign of life. Nothing touches a
//! disk, so a slow or full `/tmp` can never stall a worker (Gunicorn's FAQ problem). A slot
//! also records when the request in flight started, so a WORKER TIMEOUT can say how long the
//! worker had been serving it, and carries two flags: the worker asking to be replaced
//! (`max_requests` reached) and the master asking a stopping worker to drain the backlog.
//! A gthread worker also publishes how many connections it carries, so workers sharing
//! the listeners can leave new connections to the least loaded one (see `Beat::peer_load`).

use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

/// Enough for any realistic worker count, including TTIN growth.
pub const SLOTS: usize = 4096;

/// 0 means "booting": Gunicorn never times out a worker before its first notify, and neither do we.
const BOOTING: u64 = 0;

/// Set by the worker: it reached `max_requests` and wants a replacement started.
const RETIRE_REQUESTED: u64 = 1;
/// Set by the master before a final graceful stop: accept what is already queued first.
const DRAIN: u64 = 2;

/// A slot's `load` when its worker takes no new connections (booting, stopping, no free
/// thread, or a worker class that does not publish).
const NOT_TAKING: u64 = u64::MAX;

#[repr(C)]
struct Slot {
    last_beat_ms: AtomicU64,
    request_started_ms: AtomicU64,
    flags: AtomicU64,
    load: AtomicU64,
}

#[repr(C)]
struct Region {
    /// One past the highest slot ever allocated: how far a worker scans for peers.
    high: AtomicU64,
    slots: [Slot; SLOTS],
}

pub struct Heartbeats {
    base: NonNull<Region>,
    used: Vec<bool>,
}

/// What a worker sees of the other workers of its generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerLoad {
    /// Another booted worker exists.
    pub any: bool,
    /// The fewest connections any other worker that is taking connections carries.
    pub least: Option<u64>,
}

pub fn monotonic_ms() -> u64 {
    let ts = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .expect("CLOCK_MONOTONIC is always available on Linux");
    // +1 keeps a real reading from ever equalling the BOOTING sentinel.
    (ts.tv_sec() as u64) * 1000 + (ts.tv_nsec() as u64) / 1_000_000 + 1
}

impl Heartbeats {
    pub fn new() -> std::io::Result<Self> {
        // SAFETY: a `Region` is all atomics (valid when zeroed) and needs at most 64-byte
        // alignment, less than a page.
        let ptr = unsafe { super::map_shared_zeroed::<Region>() }?;
        Ok(Heartbeats {
            base: ptr,
            used: vec![false; SLOTS],
        })
    }

    fn region(&self) -> &Region {
        // SAFETY: the mapping holds one `Region` for the life of `self`; all access goes
        // through atomics, so concurrent use by other processes is sound.
        unsafe { self.base.as_ref() }
    }

    fn slot(&self, idx: usize) -> &Slot {
        &self.region().slots[idx]
    }

    /// Reserve a slot for a worker about to be forked, marked as booting.
    pub fn allocate(&mut self) -> Option<usize> {
        let idx = self.used.iter().position(|u| !u)?;
        self.used[idx] = true;
        let s = self.slot(idx);
        s.last_beat_ms.store(BOOTING, Ordering::Relaxed);
        s.request_started_ms.store(0, Ordering::Relaxed);
        s.flags.store(0, Ordering::Relaxed);
        s.load.store(NOT_TAKING, Ordering::Relaxed);
        self.region()
            .high
            .fetch_max(idx as u64 + 1, Ordering::SeqCst);
        Some(idx)
    }

    pub fn release(&mut self, idx: usize) {
        if idx < SLOTS {
            self.used[idx] = false;
            // A dead worker is nobody's peer any more.
            let s = self.slot(idx);
            s.load.store(NOT_TAKING, Ordering::Relaxed);
            s.last_beat_ms.store(BOOTING, Ordering::Relaxed);
        }
    }

    /// Milliseconds since the worker's last beat, or None while it is still booting.
    pub fn silent_for_ms(&self, idx: usize) -> Option<u64> {
        let last = self.slot(idx).last_beat_ms.load(Ordering::Relaxed);
        (last != BOOTING).then(|| monotonic_ms().saturating_sub(last))
    }

    /// Milliseconds the current request has been running, if one is in flight.
    pub fn request_age_ms(&self, idx: usize) -> Option<u64> {
        let start = self.slot(idx).request_started_ms.load(Ordering::Relaxed);
        (start != 0).then(|| monotonic_ms().saturating_sub(start))
    }

    /// Whether the worker has finished booting (it beats only once its loop runs).
    pub fn booted(&self, idx: usize) -> bool {
        self.slot(idx).last_beat_ms.load(Ordering::Relaxed) != BOOTING
    }

    pub fn retire_requested(&self, idx: usize) -> bool {
        self.slot(idx).flags.load(Ordering::SeqCst) & RETIRE_REQUESTED != 0
    }

    pub fn request_drain(&self, idx: usize) {
        self.slot(idx).flags.fetch_or(DRAIN, Ordering::SeqCst);
    }

    pub fn handle(&self, idx: usize) -> Beat {
        assert!(idx < SLOTS);
        Beat {
            region: self.base.as_ptr(),
            idx,
        }
    }
}

/// The worker's side of its slot. Only valid in the process that inherited the mapping.
#[derive(Clone, Copy)]
pub struct Beat {
    region: *const Region,
    idx: usize,
}

// SAFETY: the pointer targets a MAP_SHARED mapping that lives as long as the process
// (never unmapped in a worker) and is only accessed through atomics.
unsafe impl Send for Beat {}
// SAFETY: as above; all accesses are atomic.
unsafe impl Sync for Beat {}

impl Beat {
    fn region(&self) -> &Region {
        // SAFETY: see the Send impl: the mapping outlives every Beat.
        unsafe { &*self.region }
    }

    fn slot(&self) -> &Slot {
        &self.region().slots[self.idx]
    }

    /// Publish how many connections this worker carries, or None when it takes no new ones.
    pub fn publish_load(&self, load: Option<u64>) {
        let v = load.map_or(NOT_TAKING, |n| n.min(NOT_TAKING - 1));
        self.slot().load.store(v, Ordering::Relaxed);
    }

    /// The other booted workers of this generation, and the least load among those taking
    /// connections. Reads a few atomics per worker: cheap enough for every loop turn.
    pub fn peer_load(&self) -> PeerLoad {
        let r = self.region();
        let high = (r.high.load(Ordering::Relaxed) as usize).min(SLOTS);
        let mut out = PeerLoad {
            any: false,
            least: None,
        };
        for (i, s) in r.slots[..high].iter().enumerate() {
            if i == self.idx || s.last_beat_ms.load(Ordering::Relaxed) == BOOTING {
                continue;
            }
            out.any = true;
            let load = s.load.load(Ordering::Relaxed);
            if load != NOT_TAKING {
                out.least = Some(out.least.map_or(load, |l: u64| l.min(load)));
            }
        }
        out
    }

    pub fn notify(&self) {
        self.slot()
            .last_beat_ms
            .store(monotonic_ms(), Ordering::Relaxed);
    }

    /// Milliseconds since this slot's last beat, or None while it is still booting
    /// (`worker.tmp.last_update()` needs it in the worker, where there is no `Heartbeats`).
    pub fn silent_for_ms(&self) -> Option<u64> {
        let last = self.slot().last_beat_ms.load(Ordering::Relaxed);
        (last != BOOTING).then(|| monotonic_ms().saturating_sub(last))
    }

    pub fn request_started(&self) {
        self.slot()
            .request_started_ms
            .store(monotonic_ms(), Ordering::Relaxed);
    }

    pub fn request_finished(&self) {
        self.slot().request_started_ms.store(0, Ordering::Relaxed);
    }

    pub fn request_retirement(&self) {
        self.slot()
            .flags
            .fetch_or(RETIRE_REQUESTED, Ordering::SeqCst);
    }

    /// Whether the master asked this worker to accept what is queued before it exits.
    pub fn drain_requested(&self) -> bool {
        self.slot().flags.load(Ordering::SeqCst) & DRAIN != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_are_booted_workers_and_least_load_skips_those_not_taking() {
        let mut hb = Heartbeats::new().unwrap();
        let (a, b, c) = (
            hb.allocate().unwrap(),
            hb.allocate().unwrap(),
            hb.allocate().unwrap(),
        );
        let (ba, bb, bc) = (hb.handle(a), hb.handle(b), hb.handle(c));
        ba.notify();
        assert_eq!(
            ba.peer_load(),
            PeerLoad {
                any: false,
                least: None
            },
            "booting workers are not peers"
        );
        bb.notify();
        bc.notify();
        assert_eq!(ba.peer_load().least, None, "nobody published a load yet");
        assert!(ba.peer_load().any);
        bb.publish_load(Some(30));
        bc.publish_load(Some(12));
        ba.publish_load(Some(1));
        assert_eq!(
            ba.peer_load().least,
            Some(12),
            "a worker is not its own peer"
        );
        bc.publish_load(None);
        assert_eq!(ba.peer_load().least, Some(30));
        hb.release(b);
        assert_eq!(
            ba.peer_load().least,
            None,
            "a released slot is nobody's peer"
        );
        assert_eq!(bb.peer_load().least, Some(1));
    }
}
