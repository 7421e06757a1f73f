//! The deduplication index: which `(stream, source, id)` were appended recently, bounded by
//! a window of events or of age so its memory does not grow with the log.
//!
//! Keys are 64-bit hashes (8 bytes per event instead of the strings); a hit is confirmed
//! against the record itself, so a hash collision can never turn a new event away.
//!
//! A confirmed hit is a resend only when it is the same event: [`differences`] says which
//! attributes of a resend differ from the stored original (none for a true resend).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::time::Duration;

use crate::envelope::Envelope;

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

/// The attributes in which `resent` differs from `original`, the stored event with the same
/// `source` and `id`; empty when `resent` is the same event, a true resend.
///
/// Every attribute a client sets counts except `time` (stamped when absent, so two sends
/// of one event may carry different times) and `traceparent` (the node stores the span of
/// the ingest that took it, and a client's retry is a new span of the same trace or of
/// another: the retry is still the same event). `data` is compared as parsed JSON values:
/// key order and whitespace do not matter, while `1` and `1.0` differ (an integer and a
/// float, as a domain decoding the data sees them). Extensions are compared by name and
/// value, and each one that differs is named by its own name.
pub fn differences(original: &Envelope, resent: &Envelope) -> Vec<String> {
    let mut differs = Vec::new();
    let mut check = |attribute: &str, same: bool| {
        if !same {
            differs.push(attribute.to_owned());
        }
    };
    check("specversion", original.specversion == resent.specversion);
    check("type", original.event_type == resent.event_type);
    check("subject", original.subject == resent.subject);
    check(
        "datacontenttype",
        original.datacontenttype == resent.datacontenttype,
    );
    check("data", same_json(&original.data, &resent.data));
    check("partitionkey", original.partitionkey == resent.partitionkey);
    let extensions = |event: &Envelope| -> BTreeMap<String, String> {
        event.extensions.iter().cloned().collect()
    };
    let (before, after) = (extensions(original), extensions(resent));
    let names: std::collections::BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    for name in names {
        check(name, before.get(name) == after.get(name));
    }
    differs
}

/// Whether two `data` texts hold the same JSON value (bytes that are not JSON compare as
/// bytes).
fn same_json(original: &[u8], resent: &[u8]) -> bool {
    if original == resent {
        return true;
    }
    match (
        serde_json::from_slice::<serde_json::Value>(original),
        serde_json::from_slice::<serde_json::Value>(resent),
    ) {
        (Ok(original), Ok(resent)) => original == resent,
        _ => false,
    }
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
    fn a_resend_differs_only_where_the_event_does() {
        let original = Envelope {
            id: "e-1".into(),
            source: "/shop".into(),
            specversion: "1.0".into(),
            event_type: "inventory.StockAdded".into(),
            subject: "sku-1".into(),
            time: "2026-11-25T10:00:00Z".into(),
            datacontenttype: "application/json".into(),
            data: br#"{"quantity":3,"sku":"sku-1"}"#.to_vec(),
            partitionkey: "sku-1".into(),
            traceparent: None,
            extensions: vec![("tenant".into(), "a".into())],
            cause: None,
            stream: "inventory".into(),
            sequence: 7,
        };
        let check = |change: &dyn Fn(&mut Envelope), expected: &[&str]| {
            let mut resent = original.clone();
            resent.stream = String::new();
            resent.sequence = 0;
            change(&mut resent);
            assert_eq!(differences(&original, &resent), expected);
        };
        check(&|_| {}, &[]);
        check(&|e| e.time = "2030-01-01T00:00:00Z".into(), &[]);
        check(
            &|e| e.data = br#"{ "sku": "sku-1", "quantity": 3 }"#.to_vec(),
            &[],
        );
        check(
            &|e| e.data = br#"{"quantity":3.0,"sku":"sku-1"}"#.to_vec(),
            &["data"],
        );
        check(&|e| e.data = b"not json".to_vec(), &["data"]);
        check(
            &|e| e.event_type = "inventory.StockRemoved".into(),
            &["type"],
        );
        check(
            &|e| {
                e.subject = "sku-2".into();
                e.partitionkey = "sku-2".into();
            },
            &["subject", "partitionkey"],
        );
        check(&|e| e.traceparent = Some("00-ab-cd-01".into()), &[]);
        check(&|e| e.extensions.clear(), &["tenant"]);
        check(
            &|e| e.extensions.push(("region".into(), "eu".into())),
            &["region"],
        );
        check(
            &|e| e.datacontenttype = "text/plain".into(),
            &["datacontenttype"],
        );
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
