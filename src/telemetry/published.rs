//! A setting value that is replaced rarely (at start-up and on HUP) and read on every log
//! line or metric by any thread, in the master and in forked workers, without a lock.
//!
//! Owns: publishing a new generation and finding the newest one. Must not touch: what the
//! values mean; the StatsD and syslog senders keep their own sockets and counters.
//!
//! A lock would be simpler, but the master forks workers: a lock held by another master
//! thread at fork time stays held forever in the child, and its first log line would hang.
//! So every generation is leaked and chained with `OnceLock`s, which are read with plain
//! atomic loads. Only a value that differs from the newest one is published, so the leak is
//! one small value per actual change of configuration.

use std::sync::OnceLock;

struct Generation<T: 'static> {
    value: T,
    next: OnceLock<&'static Generation<T>>,
}

pub(super) struct Published<T: 'static> {
    first: OnceLock<&'static Generation<T>>,
}

impl<T: PartialEq + Send + Sync + 'static> Published<T> {
    pub(super) const fn new() -> Self {
        Published {
            first: OnceLock::new(),
        }
    }

    /// The newest value, or None before the first `publish`.
    pub(super) fn get(&self) -> Option<&'static T> {
        self.newest().map(|generation| &generation.value)
    }

    fn newest(&self) -> Option<&'static Generation<T>> {
        let mut generation = *self.first.get()?;
        while let Some(next) = generation.next.get() {
            generation = next;
        }
        Some(generation)
    }

    /// Makes `value` the newest value (unless it equals the newest already) and returns it.
    pub(super) fn publish(&self, value: T) -> &'static T {
        if let Some(current) = self.get() {
            if *current == value {
                return current;
            }
        }
        let fresh: &'static Generation<T> = Box::leak(Box::new(Generation {
            value,
            next: OnceLock::new(),
        }));
        // Walk to the first free slot; a publisher that loses a race for a slot follows the
        // winner's generation and tries the next one.
        let mut slot = &self.first;
        while slot.set(fresh).is_err() {
            if let Some(occupant) = slot.get() {
                slot = &occupant.next;
            }
        }
        &fresh.value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_value_wins_and_equal_values_are_not_chained() {
        let published: Published<String> = Published::new();
        assert!(published.get().is_none());
        let first = published.publish("a".to_string());
        assert_eq!(first, "a");
        let again = published.publish("a".to_string());
        assert!(
            std::ptr::eq(first, again),
            "an equal value reuses the generation"
        );
        published.publish("b".to_string());
        published.publish("c".to_string());
        assert_eq!(published.get().map(String::as_str), Some("c"));
        assert_eq!(first, "a", "old generations stay readable");
    }

    #[test]
    fn concurrent_publishers_all_land() {
        static SHARED: Published<u32> = Published::new();
        let handles: Vec<_> = (0..8)
            .map(|i| std::thread::spawn(move || SHARED.publish(i)))
            .collect();
        for handle in handles {
            handle.join().unwrap();
        }
        let mut count = 0;
        let mut generation = SHARED.first.get().copied();
        while let Some(g) = generation {
            count += 1;
            generation = g.next.get().copied();
        }
        assert_eq!(count, 8);
    }
}
