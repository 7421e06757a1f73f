//! The newest records kept in memory, so subscribers and tails near the head read without
//! touching the disk.
//!
//! Bounded by bytes, not by count: a count bound lets a few thousand large events pin a
//! gigabyte (and reload it at every start). A record is charged its frame size plus a
//! fixed overhead for its allocation, so many tiny records are bounded too.

use std::collections::VecDeque;
use std::sync::Arc;

use super::Record;

/// What a cached record costs beyond its frame: the `Arc`, the `Record` and its strings'
/// headers, and the queue slot (an estimate on the high side).
const RECORD_OVERHEAD: usize = 256;

/// A window of the newest records, contiguous in offset, at most `limit` bytes.
pub(crate) struct Cache {
    records: VecDeque<(Arc<Record>, usize)>,
    /// The offset of `records[0]`.
    first: u64,
    bytes: usize,
    limit: usize,
}

impl Cache {
    /// An empty cache holding at most `limit` bytes.
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            records: VecDeque::new(),
            first: 0,
            bytes: 0,
            limit,
        }
    }

    /// Adds the record after the newest (its frame `size` in bytes), dropping the oldest
    /// while over the limit; a record larger than the whole limit is not kept at all.
    pub(crate) fn push(&mut self, record: Arc<Record>, size: usize) {
        self.push_then(record, size, drop);
    }

    /// [`Cache::push`], moving the records it evicts into `evicted`, so the caller can free
    /// them after releasing the log's lock (freeing a record's strings is not free).
    pub(crate) fn push_evicting(
        &mut self,
        record: Arc<Record>,
        size: usize,
        evicted: &mut Vec<Arc<Record>>,
    ) {
        self.push_then(record, size, |old| evicted.push(old));
    }

    /// Adds the record, handing each one it evicts to `evict`.
    fn push_then(&mut self, record: Arc<Record>, size: usize, mut evict: impl FnMut(Arc<Record>)) {
        let cost = size + RECORD_OVERHEAD;
        if self.records.is_empty() {
            self.first = record.offset;
        }
        self.records.push_back((record, cost));
        self.bytes += cost;
        while self.bytes > self.limit {
            let Some((old, dropped)) = self.records.pop_front() else {
                break;
            };
            evict(old);
            self.bytes -= dropped;
            self.first += 1;
        }
    }

    /// The record at `offset`, if it is still in memory.
    pub(crate) fn get(&self, offset: u64) -> Option<&Arc<Record>> {
        let index = usize::try_from(offset.checked_sub(self.first)?).ok()?;
        self.records.get(index).map(|(record, _)| record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloudevent::parse_structured;
    use serde_json::json;

    fn record(offset: u64) -> Arc<Record> {
        let envelope = parse_structured(json!({
            "specversion": "1.0", "id": "e", "source": "/t", "type": "t.T",
            "subject": "k", "data": {}
        }))
        .unwrap()
        .envelope;
        Arc::new(Record {
            offset,
            consumed: 0,
            appended_ms: 0,
            group_rest: 0,
            envelope,
        })
    }

    #[test]
    fn keeps_the_newest_records_within_the_byte_limit() {
        let mut cache = Cache::new(3 * (1000 + RECORD_OVERHEAD));
        for offset in 1..=5 {
            cache.push(record(offset), 1000);
        }
        let kept: Vec<u64> = (1..=5).filter(|&o| cache.get(o).is_some()).collect();
        assert_eq!(kept, [3, 4, 5]);
        // One record larger than the limit pushes everything out, itself included.
        cache.push(record(6), 10_000);
        assert!((1..=6).all(|o| cache.get(o).is_none()));
        cache.push(record(7), 10);
        assert_eq!(cache.get(7).map(|r| r.offset), Some(7));
    }
}
