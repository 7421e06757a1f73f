//! An event log held in memory: fast and simple, gone when the process ends.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, PoisonError, RwLock};

use super::{Durability, EventLog, LogError, Part, ReadBatch, Record, Visibility, Wanted};
use crate::envelope::Position;

/// The whole log in memory; every method takes one lock, so appends are atomic, and every
/// append is durable at once (there is nothing to sync).
pub struct MemoryLog {
    inner: RwLock<Inner>,
    durability: Durability,
}

impl Default for MemoryLog {
    fn default() -> Self {
        Self {
            inner: RwLock::default(),
            durability: Durability::new(0),
        }
    }
}

#[derive(Default)]
struct Inner {
    /// Record at offset `n` is at index `n - 1`.
    records: Vec<Arc<Record>>,
    /// Per stream, the offsets of its records; sequence `n` is at index `n - 1`.
    streams: BTreeMap<String, Vec<u64>>,
    /// (stream, source, id) to sequence, for deduplication.
    ids: HashMap<(String, String, String), u64>,
}

impl MemoryLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }
}

fn key(stream: &str, source: &str, id: &str) -> (String, String, String) {
    (stream.to_owned(), source.to_owned(), id.to_owned())
}

impl EventLog for MemoryLog {
    fn append_all(&self, parts: Vec<Part>) -> Result<Vec<Vec<Arc<Record>>>, LogError> {
        let mut inner = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        let mut seen = HashMap::new();
        for part in &parts {
            let stream = part.stream.as_str();
            let first_sequence = inner.streams.get(stream).map_or(0, Vec::len) as u64 + 1;
            for (index, event) in part.events.iter().enumerate() {
                let existing = inner
                    .ids
                    .get(&key(stream, &event.source, &event.id))
                    .copied()
                    .or_else(|| seen.get(&(stream, &event.source, &event.id)).copied());
                if let Some(sequence) = existing {
                    return Err(LogError::Duplicate {
                        event_source: event.source.clone(),
                        id: event.id.clone(),
                        position: Position {
                            stream: stream.to_owned(),
                            sequence,
                        },
                    });
                }
                seen.insert(
                    (stream, &event.source, &event.id),
                    first_sequence + index as u64,
                );
            }
        }
        let mut appended = Vec::with_capacity(parts.len());
        // Like the file log: each record says how many follow it in this append.
        let mut rest = parts.iter().map(|part| part.events.len()).sum::<usize>() as u32;
        for part in &parts {
            let stream = part.stream.as_str();
            let first_sequence = inner.streams.get(stream).map_or(0, Vec::len) as u64 + 1;
            let mut records = Vec::with_capacity(part.events.len());
            for (index, envelope) in part.events.iter().enumerate() {
                let mut envelope = envelope.clone();
                let offset = inner.records.len() as u64 + 1;
                envelope.stream = stream.to_owned();
                envelope.sequence = first_sequence + index as u64;
                inner.ids.insert(
                    key(stream, &envelope.source, &envelope.id),
                    envelope.sequence,
                );
                let record = Arc::new(Record {
                    offset,
                    consumed: part.consumed,
                    appended_ms: 0,
                    group_rest: {
                        rest -= 1;
                        rest
                    },
                    envelope,
                });
                inner.records.push(Arc::clone(&record));
                inner
                    .streams
                    .entry(stream.to_owned())
                    .or_default()
                    .push(offset);
                records.push(record);
            }
            appended.push(records);
        }
        let head = inner.records.len() as u64;
        drop(inner);
        self.durability.advance(head);
        Ok(appended)
    }

    fn find(&self, stream: &str, source: &str, id: &str) -> Result<Option<Arc<Record>>, LogError> {
        let inner = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        let found = || {
            let sequence = *inner.ids.get(&key(stream, source, id))?;
            let offset = *inner.streams.get(stream)?.get(sequence as usize - 1)?;
            inner.records.get(offset as usize - 1).cloned()
        };
        Ok(found())
    }

    fn read_stream(
        &self,
        stream: &str,
        from: u64,
        limit: usize,
        _: Visibility,
    ) -> Result<Vec<Arc<Record>>, LogError> {
        let inner = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        let Some(offsets) = inner.streams.get(stream) else {
            return Ok(Vec::new());
        };
        let start = from.saturating_sub(1) as usize;
        Ok(offsets
            .iter()
            .skip(start)
            .take(limit)
            .map(|&offset| Arc::clone(&inner.records[offset as usize - 1]))
            .collect())
    }

    fn read_after(
        &self,
        offset: u64,
        limit: usize,
        wanted: Wanted<'_>,
    ) -> Result<ReadBatch, LogError> {
        let inner = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        let mut batch = ReadBatch {
            records: Vec::new(),
            scanned_to: offset,
        };
        for record in inner.records.iter().skip(offset as usize) {
            if batch.records.len() == limit {
                break;
            }
            batch.scanned_to = record.offset;
            if wanted(&record.envelope.event_type).takes(record) {
                batch.records.push(Arc::clone(record));
            }
        }
        Ok(batch)
    }

    fn head(&self) -> u64 {
        let inner = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        inner.records.len() as u64
    }

    fn written(&self) -> u64 {
        self.head()
    }

    fn streams(&self) -> Vec<(String, u64)> {
        let inner = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        inner
            .streams
            .iter()
            .map(|(name, offsets)| (name.clone(), offsets.len() as u64))
            .collect()
    }

    fn sequence_at(&self, stream: &str, offset: u64) -> u64 {
        let inner = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        inner.streams.get(stream).map_or(0, |offsets| {
            offsets.partition_point(|&o| o <= offset) as u64
        })
    }

    fn durability(&self) -> &Durability {
        &self.durability
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloudevent::parse_structured;
    use crate::envelope::Envelope;
    use serde_json::json;

    fn event(id: &str, event_type: &str) -> Envelope {
        parse_structured(json!({
            "specversion": "1.0", "id": id, "source": "/t", "type": event_type,
            "subject": "k", "data": {}
        }))
        .unwrap()
        .envelope
    }

    #[test]
    fn streams_have_dense_sequences_in_one_node_wide_order() {
        let log = MemoryLog::new();
        log.append("a", 0, vec![event("1", "a.X"), event("2", "a.X")])
            .unwrap();
        let b = log.append("b", 2, vec![event("1", "b.Y")]).unwrap();
        assert_eq!(b[0].offset, 3);
        assert_eq!(b[0].envelope.sequence, 1);
        assert_eq!(b[0].consumed, 2);
        let a = log.read_stream("a", 2, 10, Visibility::Durable).unwrap();
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].envelope.id, "2");
        let only_b = log.read_after(0, 10, &|t| (t == "b.Y").into()).unwrap();
        assert_eq!(only_b.records.len(), 1);
        assert_eq!(only_b.scanned_to, 3);
        assert_eq!(log.streams(), vec![("a".into(), 2), ("b".into(), 1)]);
    }

    #[test]
    fn a_duplicate_refuses_the_whole_append() {
        let log = MemoryLog::new();
        log.append("a", 0, vec![event("1", "a.X")]).unwrap();
        let err = log
            .append("a", 0, vec![event("2", "a.X"), event("1", "a.X")])
            .unwrap_err();
        assert!(matches!(err, LogError::Duplicate { position, .. } if position.sequence == 1));
        let err = log
            .append("a", 0, vec![event("3", "a.X"), event("3", "a.X")])
            .unwrap_err();
        assert!(matches!(err, LogError::Duplicate { position, .. } if position.sequence == 2));
        assert_eq!(log.head(), 1);
        assert_eq!(
            log.find("a", "/t", "1")
                .unwrap()
                .map(|r| r.envelope.sequence),
            Some(1)
        );
        assert_eq!(log.find("b", "/t", "1").unwrap(), None);
    }
}
