//! Failed sign-ins slow the next ones down, per user name and per client address: after a few failures each
//! further attempt must wait a delay that doubles with every failure (up to a cap), and attempts made during the
//! wait are refused without checking the password — so a guesser gets a handful of tries, then one every few
//! minutes, whatever the number of connections. A success clears the user's count; counts fade after a quiet
//! quarter of an hour. In memory, per process.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures allowed for one user name without any delay.
pub const FREE_FAILURES: u32 = 5;
/// Failures allowed from one address without any delay: more, since many users may share one (a proxy, a
/// plant's NAT), and a guesser there still meets each name's own limit.
pub const FREE_FAILURES_PER_ADDRESS: u32 = 20;
/// Longest wait between attempts.
pub const MAX_DELAY: Duration = Duration::from_secs(300);
/// A count with no failure for this long is forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);
/// Most names and addresses tracked at once (a flood of distinct ones prunes the quiet first, then the oldest).
const MAX_TRACKED: usize = 50_000;

#[derive(Default)]
pub struct SignInThrottle {
    entries: Mutex<HashMap<String, Entry>>,
}

#[derive(Clone, Copy)]
struct Entry {
    failures: u32,
    last: Instant,
}

/// The delay after `failures` failures of which `free` are allowed: none for those, then 1 s, 2 s, 4 s, … up
/// to `MAX_DELAY`.
pub fn delay_after(failures: u32, free: u32) -> Duration {
    if failures < free {
        return Duration::ZERO;
    }
    let exp = (failures - free).min(16);
    Duration::from_secs(1u64 << exp).min(MAX_DELAY)
}

impl SignInThrottle {
    fn keys(name: &str, addr: &str) -> [String; 2] {
        [format!("user:{}", name.trim().to_lowercase()), format!("addr:{addr}")]
    }

    /// How long the caller must still wait before an attempt for `name` from `addr` is checked; zero when it
    /// may go ahead now.
    pub fn wait(&self, name: &str, addr: &str, now: Instant) -> Duration {
        let entries = self.entries.lock().unwrap();
        Self::keys(name, addr)
            .iter()
            .filter_map(|k| entries.get(k).map(|e| (k, e)))
            .map(|(k, e)| {
                let free = if k.starts_with("addr:") { FREE_FAILURES_PER_ADDRESS } else { FREE_FAILURES };
                (e.last + delay_after(e.failures, free)).saturating_duration_since(now)
            })
            .max()
            .unwrap_or(Duration::ZERO)
    }

    /// Counts a failed attempt against the name and the address.
    pub fn failed(&self, name: &str, addr: &str, now: Instant) {
        let mut entries = self.entries.lock().unwrap();
        if entries.len() >= MAX_TRACKED {
            entries.retain(|_, e| now.saturating_duration_since(e.last) < FORGET_AFTER);
            if entries.len() >= MAX_TRACKED {
                let mut ages: Vec<Instant> = entries.values().map(|e| e.last).collect();
                ages.sort();
                let cut = ages[ages.len() / 2];
                entries.retain(|_, e| e.last > cut);
            }
        }
        for k in Self::keys(name, addr) {
            let e = entries.entry(k).or_insert(Entry { failures: 0, last: now });
            if now.saturating_duration_since(e.last) >= FORGET_AFTER {
                e.failures = 0;
            }
            e.failures = e.failures.saturating_add(1);
            e.last = now;
        }
    }

    /// A successful sign-in clears the user's count (the address keeps its own).
    pub fn succeeded(&self, name: &str) {
        self.entries.lock().unwrap().remove(&format!("user:{}", name.trim().to_lowercase()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_then_cap() {
        assert_eq!(delay_after(0, 5), Duration::ZERO);
        assert_eq!(delay_after(4, 5), Duration::ZERO);
        assert_eq!(delay_after(5, 5), Duration::from_secs(1));
        assert_eq!(delay_after(8, 5), Duration::from_secs(8));
        assert_eq!(delay_after(1000, 5), MAX_DELAY);
    }

    #[test]
    fn per_name_and_per_address() {
        let t = SignInThrottle::default();
        let now = Instant::now();
        for _ in 0..FREE_FAILURES {
            assert_eq!(t.wait("Admin", "10.0.0.1", now), Duration::ZERO);
            t.failed("Admin", "10.0.0.1", now);
        }
        // The name is slowed down from any address; the address only after more failures, for any name.
        assert_eq!(t.wait("admin", "10.0.0.2", now), Duration::from_secs(1));
        assert_eq!(t.wait("bob", "10.0.0.1", now), Duration::ZERO);
        for i in 0..FREE_FAILURES_PER_ADDRESS {
            t.failed(&format!("guess{i}"), "10.0.0.9", now);
        }
        assert_eq!(t.wait("bob", "10.0.0.9", now), Duration::from_secs(1));
        assert_eq!(t.wait("bob", "10.0.0.2", now), Duration::ZERO);
        assert_eq!(t.wait("admin", "10.0.0.2", now + Duration::from_secs(1)), Duration::ZERO);
        t.succeeded("admin");
        assert_eq!(t.wait("admin", "10.0.0.2", now), Duration::ZERO);
        // Quiet for long enough, the count starts again.
        let later = now + FORGET_AFTER;
        t.failed("carol", "10.0.0.1", later);
        assert_eq!(t.wait("carol", "10.0.0.3", later), Duration::ZERO);
    }
}
