//! The deduplication index: which `(stream, source, id)` were appended recently, bounded by
//! a window of events or of age so its memory does not grow with the log.
//!
//! Keys are 128-bit hashes (16 bytes per event instead of the strings); a hit is confirmed
//! against the record itself, so a hash collision can never turn a new event away.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::time::Duration;

/// How far back the log recognises a resent event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DedupWindow {
    /// The most recent this many events.
    Events(u64),
    /// Events appended within this age.
    Age(Duration),
}

/// The hash of one event's identity in one stream.
pub type Key = u64;

/// The key of `(stream, source, id)`.
pub fn key(stream: &str, source: &str, id: &str) -> Key {
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    hasher.update(stream.as_bytes());
    hasher.update(&[0]);
    hasher.update(source.as_bytes());
    hasher.update(&[0]);
    hasher.update(id.as_bytes());
    hasher.digest()
}

/// Keys are already uniform hashes: hashing them again (SipHash) would only cost time.
#[derive(Default)]
pub struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }

    fn write_u64(&mut self, key: u64) {
        self.0 = key;
    }
}

/// Recent keys and the offsets they were appended at.
///
/// Offsets are dense, so the window is a queue of keys whose front has offset `first`;
/// a hit is only a candidate until the caller compares the record (a 64-bit hash can
/// collide; a collision costs the older event its protection, never a new event its place).
#[derive(Debug)]
pub struct Dedup {
    window: DedupWindow,
    offsets: HashMap<Key, u64, BuildHasherDefault<KeyHasher>>,
    /// Keys in offset order, with their append time in ms (kept for age windows).
    order: VecDeque<(Key, u64)>,
    /// Offset of `order[0]`.
    first: u64,
}

/// What [`Dedup::claim`] found.
pub enum Claim {
    /// The key was free; it now points at the new offset.
    New,
    /// The key points at this earlier offset: compare the records.
    Seen(u64),
}

impl Dedup {
    /// An empty index bounded by `window`, whose next offset is `next`.
    pub fn new(window: DedupWindow, next: u64) -> Self {
        Self {
            window,
            offsets: HashMap::default(),
            order: VecDeque::new(),
            first: next,
        }
    }

    /// The offset `key` was appended at, if within the window.
    pub fn get(&self, key: Key) -> Option<u64> {
        self.offsets.get(&key).copied()
    }

    /// Claims `key` for the next offset (which must follow the last claimed), appended at
    /// `at_ms`, unless it is already held.
    pub fn claim(&mut self, key: Key, at_ms: u64) -> Claim {
        let next = self.first + self.order.len() as u64;
        match self.offsets.entry(key) {
            std::collections::hash_map::Entry::Occupied(held) => Claim::Seen(*held.get()),
            std::collections::hash_map::Entry::Vacant(free) => {
                free.insert(next);
                self.order.push_back((key, at_ms));
                Claim::New
            }
        }
    }

    /// Points `key` at the next offset although it is held: the holder was a collision.
    pub fn take_over(&mut self, key: Key, at_ms: u64) {
        let next = self.first + self.order.len() as u64;
        self.offsets.insert(key, next);
        self.order.push_back((key, at_ms));
    }

    /// Undoes the last `count` claims (an append that did not happen).
    pub fn unclaim(&mut self, count: usize) {
        for _ in 0..count {
            let offset = self.first + self.order.len() as u64 - 1;
            if let Some((key, _)) = self.order.pop_back() {
                if self.offsets.get(&key) == Some(&offset) {
                    self.offsets.remove(&key);
                }
            }
        }
    }

    /// Forgets what left the window by `now_ms`.
    pub fn evict(&mut self, now_ms: u64) {
        while let Some(&(old, old_at)) = self.order.front() {
            let expired = match self.window {
                DedupWindow::Events(count) => self.order.len() as u64 > count,
                DedupWindow::Age(age) => {
                    now_ms.saturating_sub(old_at)
                        > u64::try_from(age.as_millis()).unwrap_or(u64::MAX)
                }
            };
            if !expired {
                break;
            }
            self.order.pop_front();
            if self.offsets.get(&old) == Some(&self.first) {
                self.offsets.remove(&old);
            }
            self.first += 1;
        }
    }

    /// How many keys are held.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.order.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_count_window_forgets_the_oldest() {
        let mut dedup = Dedup::new(DedupWindow::Events(2), 1);
        for id in ["a", "b", "c"] {
            assert!(matches!(dedup.claim(key("s", "/src", id), 0), Claim::New));
            dedup.evict(0);
        }
        assert!(matches!(
            dedup.claim(key("s", "/src", "c"), 0),
            Claim::Seen(3)
        ));
        assert_eq!(dedup.get(key("s", "/src", "a")), None);
        assert_eq!(dedup.get(key("s", "/src", "c")), Some(3));
        assert_eq!(dedup.len(), 2);
        assert_ne!(key("s", "/src", "a"), key("t", "/src", "a"));
        assert_ne!(key("s", "/sr", "ca"), key("s", "/src", "a"));
    }

    #[test]
    fn an_age_window_forgets_what_is_older() {
        let mut dedup = Dedup::new(DedupWindow::Age(Duration::from_secs(10)), 1);
        dedup.claim(key("s", "/src", "old"), 1_000);
        dedup.claim(key("s", "/src", "new"), 20_000);
        dedup.unclaim(0);
        dedup.evict(20_000);
        assert_eq!(dedup.get(key("s", "/src", "old")), None);
        assert_eq!(dedup.get(key("s", "/src", "new")), Some(2));
    }
}
