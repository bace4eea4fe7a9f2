//! Per-worker request metrics through shared memory, for the master's Prometheus endpoint.
//!
//! The master maps one anonymous shared region before forking any worker, next to the
//! heartbeat region and indexed the same way: the worker in heartbeat slot `i` writes metrics
//! slot `i`. A worker only adds to its own counters (relaxed atomics, no lock, no allocation
//! on the request path); the master reads every slot when scraped, and folds a dead worker's
//! slot into its own totals before the slot is reused, so counters survive restarts.
//!
//! Owns: the region's layout and the request/status/latency classification. Must not touch:
//! what the numbers mean to Prometheus (names, exposition, aggregation live in
//! `telemetry::prometheus`), and slot allocation, which belongs to `heartbeat`.

use std::ptr::NonNull;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use super::heartbeat::SLOTS;

/// GET HEAD POST PUT DELETE PATCH OPTIONS, then everything else.
pub const METHODS: usize = 8;
pub const METHOD_LABELS: [&str; METHODS] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "other",
];

/// 1xx to 5xx, then anything else (including 0: the request got no response).
pub const CLASSES: usize = 6;
pub const CLASS_LABELS: [&str; CLASSES] = ["1xx", "2xx", "3xx", "4xx", "5xx", "other"];

/// Upper bounds of the latency histogram's finite buckets, in microseconds so a request's
/// bucket is found without floating point; `BUCKET_LE` is the same list as Prometheus `le`
/// labels.
pub const BUCKET_BOUNDS_US: [u64; BUCKETS - 1] = [
    1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000,
    5_000_000, 10_000_000,
];
pub const BUCKET_LE: [&str; BUCKETS] = [
    "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5",
    "10", "+Inf",
];
/// The finite buckets plus +Inf.
pub const BUCKETS: usize = 14;

/// Aligned to a cache line so two workers on different cores never bounce one line between
/// them on every request.
#[repr(C, align(64))]
struct Slot {
    counters: [[AtomicU64; CLASSES]; METHODS],
    /// Non-cumulative: a request is counted in the first bucket whose bound it does not exceed.
    buckets: [AtomicU64; BUCKETS],
    sum_us: AtomicU64,
    in_flight: AtomicI64,
    statsd_dropped: AtomicU64,
}

#[repr(C)]
struct Region {
    slots: [Slot; SLOTS],
}

/// The master's side of the region. Like the heartbeat region it is never unmapped: the
/// `WorkerMetrics` handles copied out of it carry no lifetime.
pub struct MetricsRegion {
    base: NonNull<Region>,
}

/// One slot's numbers at one moment, as plain data the master can add up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SlotSnapshot {
    /// Requests by `[method_index][class_index]`.
    pub counters: [[u64; CLASSES]; METHODS],
    /// Non-cumulative latency bucket counts, `BUCKET_LE` order.
    pub buckets: [u64; BUCKETS],
    /// Total request duration in microseconds.
    pub sum_us: u64,
    pub in_flight: i64,
    pub statsd_dropped: u64,
}

impl SlotSnapshot {
    /// Fold `other` into `self` (wrapping, like the counters themselves).
    pub fn add(&mut self, other: &SlotSnapshot) {
        for (row, o) in self.counters.iter_mut().zip(&other.counters) {
            for (c, o) in row.iter_mut().zip(o) {
                *c = c.wrapping_add(*o);
            }
        }
        for (b, o) in self.buckets.iter_mut().zip(&other.buckets) {
            *b = b.wrapping_add(*o);
        }
        self.sum_us = self.sum_us.wrapping_add(other.sum_us);
        self.in_flight = self.in_flight.wrapping_add(other.in_flight);
        self.statsd_dropped = self.statsd_dropped.wrapping_add(other.statsd_dropped);
    }

    /// Requests counted, whatever their method and status.
    pub fn requests(&self) -> u64 {
        self.buckets.iter().fold(0u64, |a, b| a.wrapping_add(*b))
    }
}

/// Row of `METHOD_LABELS` for a request method. Methods are case-sensitive (RFC 9110 9.1),
/// so `get` is "other".
pub fn method_index(method: &str) -> usize {
    match method {
        "GET" => 0,
        "HEAD" => 1,
        "POST" => 2,
        "PUT" => 3,
        "DELETE" => 4,
        "PATCH" => 5,
        "OPTIONS" => 6,
        _ => 7,
    }
}

/// Column of `CLASS_LABELS` for a status code.
pub fn class_index(status: u16) -> usize {
    match status {
        100..=599 => usize::from(status / 100 - 1),
        _ => CLASSES - 1,
    }
}

/// Index into `BUCKET_LE` for a request that took `elapsed` (bounds are inclusive, as `le`).
pub fn bucket_index(elapsed: Duration) -> usize {
    BUCKET_BOUNDS_US
        .iter()
        .position(|&us| elapsed <= Duration::from_micros(us))
        .unwrap_or(BUCKETS - 1)
}

impl MetricsRegion {
    pub fn new() -> std::io::Result<Self> {
        // SAFETY: a `Region` is all atomics (valid when zeroed) and needs at most 64-byte
        // alignment, less than a page.
        let ptr = unsafe { super::map_shared_zeroed::<Region>() }?;
        Ok(MetricsRegion { base: ptr })
    }

    fn region(&self) -> &Region {
        // SAFETY: the mapping holds one `Region` for the life of the process (never unmapped);
        // all access goes through atomics, so concurrent use by other processes is sound.
        unsafe { self.base.as_ref() }
    }

    pub fn handle(&self, idx: usize) -> WorkerMetrics {
        assert!(idx < SLOTS);
        WorkerMetrics {
            region: self.base.as_ptr(),
            idx,
        }
    }

    /// The slot's numbers now. Each value is read on its own, so a scrape racing a request
    /// may see its count before its bucket; the next scrape is consistent again.
    pub fn snapshot(&self, idx: usize) -> SlotSnapshot {
        let s = &self.region().slots[idx];
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        SlotSnapshot {
            counters: std::array::from_fn(|m| std::array::from_fn(|c| load(&s.counters[m][c]))),
            buckets: std::array::from_fn(|b| load(&s.buckets[b])),
            sum_us: load(&s.sum_us),
            in_flight: s.in_flight.load(Ordering::Relaxed),
            statsd_dropped: load(&s.statsd_dropped),
        }
    }

    /// Zero a slot. Only once its worker is reaped (nothing writes it any more) and its last
    /// snapshot has been folded into the master's totals, before the index is reused.
    pub fn reset(&self, idx: usize) {
        let s = &self.region().slots[idx];
        let all = s.counters.iter().flatten().chain(&s.buckets);
        for a in all.chain([&s.sum_us, &s.statsd_dropped]) {
            a.store(0, Ordering::Relaxed);
        }
        s.in_flight.store(0, Ordering::Relaxed);
    }
}

/// The worker's side of its slot. Only valid in the process that inherited the mapping.
#[derive(Clone, Copy)]
pub struct WorkerMetrics {
    region: *const Region,
    idx: usize,
}

// SAFETY: the pointer targets a MAP_SHARED mapping that lives as long as the process
// (never unmapped) and is only accessed through atomics.
unsafe impl Send for WorkerMetrics {}
// SAFETY: as above; all accesses are atomic.
unsafe impl Sync for WorkerMetrics {}

impl WorkerMetrics {
    fn slot(&self) -> &Slot {
        // SAFETY: see the Send impl: the mapping outlives every WorkerMetrics.
        let region = unsafe { &*self.region };
        &region.slots[self.idx]
    }

    /// Count one finished request: `status` 0 (no response) counts as class "other".
    pub fn record(&self, method: &str, status: u16, elapsed: Duration) {
        let s = self.slot();
        s.counters[method_index(method)][class_index(status)].fetch_add(1, Ordering::Relaxed);
        s.buckets[bucket_index(elapsed)].fetch_add(1, Ordering::Relaxed);
        // Rounded to the nearest microsecond, so sub-microsecond requests do not vanish
        // from the sum while their count still grows.
        let us = (elapsed.as_nanos().saturating_add(500) / 1000).min(u64::MAX as u128) as u64;
        s.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    pub fn enter(&self) {
        self.slot().in_flight.fetch_add(1, Ordering::Relaxed);
    }

    pub fn leave(&self) {
        self.slot().in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    /// Publish this process's StatsD drop count so far (a running total, not an increment).
    pub fn set_statsd_dropped(&self, total: u64) {
        self.slot().statsd_dropped.store(total, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_and_statuses_classify() {
        let methods: Vec<usize> = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]
            .iter()
            .map(|m| method_index(m))
            .collect();
        assert_eq!(methods, [0, 1, 2, 3, 4, 5, 6]);
        for other in ["get", "PROPFIND", "", "GETX"] {
            assert_eq!(METHOD_LABELS[method_index(other)], "other", "{other:?}");
        }
        let classes: Vec<&str> = [100, 199, 200, 302, 404, 418, 500, 599, 0, 99, 600, 999]
            .iter()
            .map(|s| CLASS_LABELS[class_index(*s)])
            .collect();
        assert_eq!(
            classes,
            [
                "1xx", "1xx", "2xx", "3xx", "4xx", "4xx", "5xx", "5xx", "other", "other", "other",
                "other"
            ]
        );
    }

    #[test]
    fn bucket_bounds_are_inclusive_and_match_the_labels() {
        assert_eq!(bucket_index(Duration::ZERO), 0);
        assert_eq!(bucket_index(Duration::from_millis(1)), 0);
        assert_eq!(bucket_index(Duration::from_nanos(1_000_001)), 1);
        assert_eq!(bucket_index(Duration::from_secs(1)), 9);
        assert_eq!(bucket_index(Duration::from_secs(10)), 12);
        assert_eq!(bucket_index(Duration::from_nanos(10_000_000_001)), 13);
        assert_eq!(bucket_index(Duration::MAX), 13);
        for (us, le) in BUCKET_BOUNDS_US.iter().zip(BUCKET_LE) {
            assert_eq!(*us as f64 / 1e6, le.parse::<f64>().unwrap());
        }
        assert_eq!(BUCKET_LE[BUCKETS - 1], "+Inf");
    }

    #[test]
    fn record_fills_one_cell_one_bucket_and_the_sum() {
        let region = MetricsRegion::new().unwrap();
        let m = region.handle(3);
        m.record("POST", 201, Duration::from_micros(2_400));
        m.record("POST", 201, Duration::from_nanos(2_600_400));
        m.record("BREW", 0, Duration::from_secs(11));
        m.enter();
        m.enter();
        m.leave();
        m.set_statsd_dropped(7);
        m.set_statsd_dropped(9);
        let s = region.snapshot(3);
        assert_eq!(s.counters[2][1], 2);
        assert_eq!(s.counters[7][5], 1);
        assert_eq!(s.counters.iter().flatten().sum::<u64>(), 3);
        assert_eq!(s.buckets[1], 1, "2.4 ms is under 2.5 ms");
        assert_eq!(s.buckets[2], 1, "2.6 ms is over 2.5 ms");
        assert_eq!(s.buckets[13], 1);
        assert_eq!(s.requests(), 3);
        assert_eq!(s.sum_us, 2_400 + 2_600 + 11_000_000);
        assert_eq!(s.in_flight, 1);
        assert_eq!(s.statsd_dropped, 9, "a running total, stored as is");
        assert_eq!(
            region.snapshot(2),
            SlotSnapshot::default(),
            "slots are separate"
        );
        region.reset(3);
        assert_eq!(region.snapshot(3), SlotSnapshot::default());
    }

    #[test]
    fn snapshots_fold() {
        let region = MetricsRegion::new().unwrap();
        region
            .handle(0)
            .record("GET", 200, Duration::from_millis(3));
        region
            .handle(1)
            .record("GET", 200, Duration::from_millis(3));
        region
            .handle(1)
            .record("HEAD", 304, Duration::from_millis(30));
        region.handle(1).enter();
        region.handle(1).set_statsd_dropped(4);
        let mut total = region.snapshot(0);
        total.add(&region.snapshot(1));
        assert_eq!(total.counters[0][1], 2);
        assert_eq!(total.counters[1][2], 1);
        assert_eq!(total.buckets[2], 2);
        assert_eq!(total.buckets[5], 1);
        assert_eq!(total.sum_us, 36_000);
        assert_eq!(total.in_flight, 1);
        assert_eq!(total.statsd_dropped, 4);
    }

    #[test]
    fn a_forked_child_writes_what_the_parent_reads() {
        use nix::sys::wait::{waitpid, WaitStatus};

        let region = MetricsRegion::new().unwrap();
        let slot = region.handle(SLOTS - 1);
        // The child only touches atomics in the shared mapping: no allocation, no lock.
        let child = crate::sys::process::fork_and_run(move || {
            slot.enter();
            slot.record("DELETE", 503, Duration::from_millis(70));
            slot.set_statsd_dropped(2);
        });
        assert_eq!(waitpid(child, None).unwrap(), WaitStatus::Exited(child, 0));
        let s = region.snapshot(SLOTS - 1);
        assert_eq!(s.counters[4][4], 1);
        assert_eq!(s.buckets[6], 1);
        assert_eq!(s.sum_us, 70_000);
        assert_eq!(
            s.in_flight, 1,
            "a worker that died mid-request leaves it counted"
        );
        assert_eq!(s.statsd_dropped, 2);
    }
}
