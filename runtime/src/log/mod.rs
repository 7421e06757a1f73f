//! The event log: the single source of truth every domain's state is derived from.
//!
//! Streams (one per domain) are logical: each has its own dense `sequence` from 1. All
//! streams share one node-wide order, the record `offset`, which is what subscribers read
//! by and what makes replay deterministic. [`EventLog`] is the interface; [`MemoryLog`]
//! keeps everything in memory (the durable file log implements the same trait).

mod memory;

use std::sync::Arc;

pub use memory::MemoryLog;

use crate::envelope::{Envelope, Position};

/// One appended event with its node-wide place.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Record {
    /// Node-wide position, dense from 1, across all streams.
    pub offset: u64,
    /// The appending domain had handled every input up to this offset when it appended;
    /// replay applies the record right after them, reproducing the live order.
    pub consumed: u64,
    /// The event, with `stream` and `sequence` filled in.
    pub envelope: Envelope,
}

/// Records read from the node-wide order.
#[derive(Debug, Default)]
pub struct ReadBatch {
    /// The records that passed the filter, in offset order.
    pub records: Vec<Arc<Record>>,
    /// The offset reading stopped at; the next read starts after it.
    pub scanned_to: u64,
}

/// Why the log could not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogError {
    /// The log cannot take or serve records now.
    #[error("event log unavailable: {0}")]
    Unavailable(String),
    /// An event's `source` and `id` are already in the stream.
    #[error("event (source \"{event_source}\", id \"{id}\") is already at {}#{}", position.stream, position.sequence)]
    Duplicate {
        /// `source` of the event.
        event_source: String,
        /// `id` of the event.
        id: String,
        /// Where the original sits.
        position: Position,
    },
}

/// The storage every bus appends to and reads from.
pub trait EventLog: Send + Sync + 'static {
    /// Appends `events` to `stream`, all or none, after every input up to `consumed` was
    /// handled; fills in `stream` and `sequence`. An event already in the stream (same
    /// `source` and `id`) refuses the whole append with [`LogError::Duplicate`].
    fn append(
        &self,
        stream: &str,
        consumed: u64,
        events: Vec<Envelope>,
    ) -> Result<Vec<Arc<Record>>, LogError>;
    /// Where an event with this `source` and `id` sits in `stream`, if it was appended.
    fn find(&self, stream: &str, source: &str, id: &str) -> Option<Position>;
    /// Up to `limit` records of `stream` from sequence `from`, in order.
    fn read_stream(
        &self,
        stream: &str,
        from: u64,
        limit: usize,
    ) -> Result<Vec<Arc<Record>>, LogError>;
    /// Records after node-wide `offset` that `wanted` accepts, up to `limit` of them.
    fn read_after(
        &self,
        offset: u64,
        limit: usize,
        wanted: &dyn Fn(&Envelope) -> bool,
    ) -> Result<ReadBatch, LogError>;
    /// The last node-wide offset (0 when empty).
    fn head(&self) -> u64;
    /// Every stream with its last sequence.
    fn streams(&self) -> Vec<(String, u64)>;
}
