//! The deduplication index: which `(stream, source, id)` were appended recently, bounded by
//! a window of events or of age so its memory does not grow with the log.
//!
//! Keys are 128-bit hashes (16 bytes per event instead of the strings); a hit is confirmed
//! against the record itself, so a hash collision can never turn a new event away.

use std::collections::{HashMap, VecDeque};
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
pub type Key = u128;

/// The key of `(stream, source, id)`.
pub fn key(stream: &str, source: &str, id: &str) -> Key {
    let mut bytes = Vec::with_capacity(stream.len() + source.len() + id.len() + 2);
    bytes.extend_from_slice(stream.as_bytes());
    bytes.push(0);
    bytes.extend_from_slice(source.as_bytes());
    bytes.push(0);
    bytes.extend_from_slice(id.as_bytes());
    xxhash_rust::xxh3::xxh3_128(&bytes)
}

/// Recent keys and the offsets they were appended at.
#[derive(Debug)]
pub struct Dedup {
    window: DedupWindow,
    offsets: HashMap<Key, u64>,
    /// In append order: key, offset, append time in ms.
    order: VecDeque<(Key, u64, u64)>,
}

impl Dedup {
    /// An empty index bounded by `window`.
    pub fn new(window: DedupWindow) -> Self {
        Self {
            window,
            offsets: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// The offset `key` was appended at, if within the window.
    pub fn get(&self, key: Key) -> Option<u64> {
        self.offsets.get(&key).copied()
    }

    /// Records `key` at `offset`, appended at `at_ms`, and forgets what left the window by
    /// then (`now_ms`).
    pub fn insert(&mut self, key: Key, offset: u64, at_ms: u64, now_ms: u64) {
        self.offsets.insert(key, offset);
        self.order.push_back((key, offset, at_ms));
        while let Some(&(old, old_offset, old_at)) = self.order.front() {
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
            if self.offsets.get(&old) == Some(&old_offset) {
                self.offsets.remove(&old);
            }
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
        let mut dedup = Dedup::new(DedupWindow::Events(2));
        for (n, id) in ["a", "b", "c"].iter().enumerate() {
            dedup.insert(key("s", "/src", id), n as u64 + 1, 0, 0);
        }
        assert_eq!(dedup.get(key("s", "/src", "a")), None);
        assert_eq!(dedup.get(key("s", "/src", "c")), Some(3));
        assert_eq!(dedup.len(), 2);
        assert_ne!(key("s", "/src", "a"), key("t", "/src", "a"));
        assert_ne!(key("s", "/sr", "ca"), key("s", "/src", "a"));
    }

    #[test]
    fn an_age_window_forgets_what_is_older() {
        let mut dedup = Dedup::new(DedupWindow::Age(Duration::from_secs(10)));
        dedup.insert(key("s", "/src", "old"), 1, 1_000, 1_000);
        dedup.insert(key("s", "/src", "new"), 2, 20_000, 20_000);
        assert_eq!(dedup.get(key("s", "/src", "old")), None);
        assert_eq!(dedup.get(key("s", "/src", "new")), Some(2));
    }
}
