//! The log's in-memory index: where each node-wide offset sits on disk and what type it
//! holds, and each stream's offsets by sequence. Reads by stream and sequence, and reads
//! filtered by type, go through it instead of scanning files.

use std::collections::{BTreeMap, HashMap};

use super::Record;

/// Where one record's frame is, and its event type (interned).
#[derive(Debug, Clone, Copy)]
pub struct Loc {
    /// Index of the segment in the log's list.
    pub segment: u32,
    /// Byte position of the frame in the segment file.
    pub pos: u64,
    /// Frame size, header included.
    pub size: u32,
    /// Interned event type.
    pub kind: u32,
    /// The event's `partitionkey`, hashed ([`crate::partition::key_hash`]).
    pub key_hash: u32,
}

/// Offsets, streams and types of every record in the log.
#[derive(Debug, Default)]
pub struct Index {
    /// Record at offset `n` is at index `n - 1`.
    locs: Vec<Loc>,
    /// Per stream, its records' offsets; sequence `n` is at index `n - 1`.
    streams: BTreeMap<String, Vec<u64>>,
    kinds: Vec<String>,
    kind_ids: HashMap<String, u32>,
}

impl Index {
    /// Adds `record`, which must be the next offset, found at `segment`/`pos`.
    pub fn push(&mut self, record: &Record, segment: u32, pos: u64, size: u32) {
        let key_hash = crate::partition::key_hash(&record.envelope.partitionkey);
        self.push_hashed(record, segment, pos, size, key_hash);
    }

    /// [`Index::push`] with the key's hash already computed (outside the log's lock).
    pub fn push_hashed(
        &mut self,
        record: &Record,
        segment: u32,
        pos: u64,
        size: u32,
        key_hash: u32,
    ) {
        let event_type = &record.envelope.event_type;
        let kind = match self.kind_ids.get(event_type) {
            Some(&kind) => kind,
            None => {
                let kind = self.kinds.len() as u32;
                self.kinds.push(event_type.clone());
                self.kind_ids.insert(event_type.clone(), kind);
                kind
            }
        };
        self.locs.push(Loc {
            segment,
            pos,
            size,
            kind,
            key_hash,
        });
        match self.streams.get_mut(&record.envelope.stream) {
            Some(offsets) => offsets.push(record.offset),
            None => {
                self.streams
                    .insert(record.envelope.stream.clone(), vec![record.offset]);
            }
        }
    }

    /// Where the record at `offset` is.
    pub fn loc(&self, offset: u64) -> Option<Loc> {
        let index = usize::try_from(offset.checked_sub(1)?).ok()?;
        self.locs.get(index).copied()
    }

    /// The name of an interned event type.
    pub fn kind_name(&self, kind: u32) -> &str {
        self.kinds.get(kind as usize).map_or("", String::as_str)
    }

    /// How many distinct event types the log holds.
    pub fn kinds(&self) -> usize {
        self.kinds.len()
    }

    /// The offsets of `stream`'s records, by sequence.
    pub fn stream(&self, stream: &str) -> &[u64] {
        self.streams.get(stream).map_or(&[], Vec::as_slice)
    }

    /// The sequence the next record of `stream` gets.
    pub fn next_sequence(&self, stream: &str) -> u64 {
        self.stream(stream).len() as u64 + 1
    }

    /// How many records of `stream` sit at or before `offset`.
    pub fn sequence_at(&self, stream: &str, offset: u64) -> u64 {
        self.stream(stream).partition_point(|&o| o <= offset) as u64
    }

    /// Every stream with its last sequence at or before `offset`.
    pub fn streams_at(&self, offset: u64) -> Vec<(String, u64)> {
        self.streams
            .iter()
            .map(|(name, offsets)| {
                (
                    name.clone(),
                    offsets.partition_point(|&o| o <= offset) as u64,
                )
            })
            .collect()
    }
}
