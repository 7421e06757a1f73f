//! The event log: the single source of truth every domain's state is derived from.
//!
//! Streams (one per domain) are logical: each has its own dense `sequence` from 1. All
//! streams share one node-wide order, the record `offset`, which is what subscribers read
//! by and what makes replay deterministic. [`EventLog`] is the interface the buses build
//! on; [`FileLog`] is the durable embedded log, [`MemoryLog`] a volatile one for tests.
//!
//! An append is *written* when it returns and *durable* once synced; readers see only
//! durable records, and [`Durability`] lets a caller wait for its own.

mod cache;
mod check;
mod dedup;
mod durability;
mod file;
// Public only so the fuzz targets in `fuzz/` can reach it; not part of the domain API.
#[doc(hidden)]
pub mod frame;
mod index;
mod memory;
pub mod partitions;
mod segment;
mod staged;
mod write_health;

use std::path::PathBuf;
use std::sync::Arc;

pub use check::{check, check_with, each_record, repair, repair_with, LogCheck, Repaired};
pub use dedup::{differences, DedupWindow};
pub use durability::{Durability, DurableListener, Synced};
pub use file::{DirLock, FileLog, FileLogOptions, Opened};
pub use frame::MAX_PAYLOAD;
pub use memory::MemoryLog;
pub use segment::{Damage, DamageKind};

use crate::envelope::{Envelope, Position};

/// Decodes a record's payload as the log stores it (layout `RecordV2`, or `RecordV1` of
/// older logs), exactly as opening the log does.
pub fn decode_record(payload: &[u8]) -> Result<Record, crate::codec::CodecError> {
    staged::decode(payload)
}

/// One appended event with its node-wide place.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Record {
    /// Node-wide position, dense from 1, across all streams.
    pub offset: u64,
    /// The appending domain had handled every input up to this offset when it appended;
    /// replay applies the record right after them, reproducing the live order.
    pub consumed: u64,
    /// When the log took the record, in milliseconds since the Unix epoch; bounds the
    /// deduplication window by age.
    pub appended_ms: u64,
    /// How many records after this one were appended in the same call. A call is one
    /// write: opening the log drops a call found cut short, so a batch is all or nothing.
    pub group_rest: u32,
    /// The event, with `stream` and `sequence` filled in.
    pub envelope: Envelope,
}

/// Which records a read may return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visibility {
    /// Only records that are durable: what anyone but the appender may see.
    Durable,
    /// Also records written but not yet durable: the appender's own view.
    Written,
}

/// What a reader of the node-wide order takes of the records of one event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Take {
    /// None of them.
    Nothing,
    /// All of them.
    All,
    /// Those whose `partitionkey` falls in `partition` (of `partitions`): the inputs of one
    /// partition of a domain keyed by key.
    Partition {
        /// The partition, from 0.
        partition: u32,
        /// The domain's partition count.
        partitions: u32,
    },
}

impl Take {
    /// Whether a record whose key hashes to `key_hash` ([`crate::partition::key_hash`]) is taken.
    pub fn accepts(self, key_hash: u32) -> bool {
        match self {
            Self::Nothing => false,
            Self::All => true,
            Self::Partition {
                partition,
                partitions,
            } => partitions == 0 || key_hash % partitions == partition,
        }
    }

    /// Whether `record` is taken.
    pub fn takes(self, record: &Record) -> bool {
        match self {
            Self::Nothing => false,
            Self::All => true,
            Self::Partition { .. } => {
                self.accepts(crate::partition::key_hash(&record.envelope.partitionkey))
            }
        }
    }
}

impl From<bool> for Take {
    fn from(all: bool) -> Self {
        match all {
            true => Self::All,
            false => Self::Nothing,
        }
    }
}

/// What a reader takes of each event type: see [`Take`].
pub type Wanted<'a> = &'a dyn Fn(&str) -> Take;

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
    /// A file of the log is damaged where it cannot be a torn tail.
    #[error(
        "event log damaged: {} at byte {byte}: {reason}; nothing was dropped. Run `herald log verify --data-dir DIR` to see the damage and `herald log repair --data-dir DIR` to cut the log back to the last good record",
        file.display()
    )]
    Corrupt {
        /// The damaged file.
        file: PathBuf,
        /// Where in it the damage starts.
        byte: u64,
        /// What is wrong there.
        reason: String,
    },
    /// Another process holds the log directory.
    #[error("the event log in {} is in use by another process (a running node, or `herald log repair`); stop it first, or give this node its own [node] data_dir", dir.display())]
    Locked {
        /// The log directory.
        dir: PathBuf,
    },
    /// Another writer appended to a stream this log's owner writes alone (networked mode:
    /// two nodes host one domain). The owner must stop writing.
    #[error("another writer appended to {stream}: {reason}; two nodes may host this domain: stop one of them")]
    Fenced {
        /// The stream.
        stream: String,
        /// The server's refusal.
        reason: String,
    },
    /// An append sent after one the log refused was refused with it; nothing of it was
    /// stored, and it may be sent again once the appender rebuilt its state.
    #[error("{0}")]
    NotStored(String),
    /// One record would exceed the frame limit.
    #[error(
        "a record of {size} bytes exceeds the log's limit of {max} bytes; nothing was appended"
    )]
    TooLarge {
        /// The framed record's size.
        size: u64,
        /// The limit.
        max: u32,
    },
    /// The operating system refused a file operation.
    #[error("event log i/o on {}: {message}", file.display())]
    Io {
        /// The file or directory.
        file: PathBuf,
        /// The OS error.
        message: String,
    },
}

impl LogError {
    pub(crate) fn io(file: impl Into<PathBuf>, error: &std::io::Error) -> Self {
        Self::Io {
            file: file.into(),
            message: error.to_string(),
        }
    }
}

/// Events for one stream in an append.
#[derive(Debug, Clone)]
pub struct Part {
    /// The stream (domain) they go to; each part of one append names a different stream.
    pub stream: String,
    /// The appending domain had handled every input up to this offset.
    pub consumed: u64,
    /// The events, in order.
    pub events: Vec<Envelope>,
}

/// What each unit of a pipelined append came to, in order: stored, or why not.
pub type Acked =
    std::pin::Pin<Box<dyn std::future::Future<Output = Vec<Result<(), LogError>>> + Send>>;

/// The storage every bus appends to and reads from.
pub trait EventLog: Send + Sync + 'static {
    /// Appends every part, all or none, even across a crash: fills in `stream` and
    /// `sequence`. An event already in its stream (same `source` and `id`, within the
    /// deduplication window) refuses the whole append with [`LogError::Duplicate`]. The
    /// records are written, not yet durable: wait on [`EventLog::durability`] before
    /// acknowledging them. Answers each part's records.
    fn append_all(&self, parts: Vec<Part>) -> Result<Vec<Vec<Arc<Record>>>, LogError>;
    /// Appends `events` to `stream` after every input up to `consumed` was handled; see
    /// [`EventLog::append_all`].
    fn append(
        &self,
        stream: &str,
        consumed: u64,
        events: Vec<Envelope>,
    ) -> Result<Vec<Arc<Record>>, LogError> {
        let mut parts = self.append_all(vec![Part {
            stream: stream.to_owned(),
            consumed,
            events,
        }])?;
        Ok(parts.pop().unwrap_or_default())
    }
    /// Appends `units` to `stream` in order, each all or nothing on its own, and answers
    /// their records (in order, one run) as soon as they are sent, with what each unit came
    /// to once the log has it or not ([`Acked`]). A refused unit refuses every unit after it,
    /// so what is stored is always a prefix and the stream stays dense. Logs that do not
    /// pipeline append the units as one, answered before this returns.
    fn append_pipelined(
        &self,
        stream: &str,
        consumed: u64,
        units: Vec<Vec<Envelope>>,
    ) -> Result<(Vec<Arc<Record>>, Acked), LogError> {
        let count = units.len();
        let records = self.append(stream, consumed, units.concat())?;
        Ok((records, Box::pin(std::future::ready(vec![Ok(()); count]))))
    }
    /// For a log whose appends are acknowledged after [`EventLog::append_pipelined`]
    /// returns: the highest own offset acknowledged, which a reader of state that reflects
    /// pipelined appends waits for. `None`: an append is acknowledged when it returns.
    fn acknowledged(&self) -> Option<Arc<Durability>> {
        None
    }
    /// The appender rebuilt its state from the log after a refused pipelined append: take
    /// appends again (a log that pipelines refuses them until then, since they were built
    /// on state the log does not hold).
    fn reopen(&self) {}
    /// The record of the event with this `source` and `id` in `stream`, written or durable,
    /// if it is within the deduplication window. An error when the log cannot tell (its
    /// index is being read again from an unreachable store): the caller must not take the
    /// event for new, or a resend would be validated as a second event.
    fn find(&self, stream: &str, source: &str, id: &str) -> Result<Option<Arc<Record>>, LogError>;
    /// Up to `limit` records of `stream` from sequence `from`, in order: durable ones, or
    /// also those only written (for the stream's owner rebuilding its own state).
    fn read_stream(
        &self,
        stream: &str,
        from: u64,
        limit: usize,
        visibility: Visibility,
    ) -> Result<Vec<Arc<Record>>, LogError>;
    /// Durable records after node-wide `offset` that `wanted` takes (by event type, and for
    /// a partition by key), up to `limit` of them.
    fn read_after(
        &self,
        offset: u64,
        limit: usize,
        wanted: Wanted<'_>,
    ) -> Result<ReadBatch, LogError>;
    /// The last durable node-wide offset (0 when empty).
    fn head(&self) -> u64;
    /// The last written node-wide offset; at least [`EventLog::head`].
    fn written(&self) -> u64;
    /// Every stream with its last durable sequence.
    fn streams(&self) -> Vec<(String, u64)>;
    /// How many records of `stream` sit at or before node-wide `offset`: the sequence a
    /// subscriber at that offset has consumed.
    fn sequence_at(&self, stream: &str, offset: u64) -> u64;
    /// Waits for records to become durable, and tells listeners when they do.
    fn durability(&self) -> &Durability;

    /// Why appends fail now (disk full, log not writable, a failed sync), if they do: the
    /// node is not ready meanwhile. `None` once an append succeeds again.
    fn write_failure(&self) -> Option<String> {
        None
    }

    /// Whether an append may be tried now: networked mode says no once this node's lease
    /// on the stream has run out (always yes in embedded mode).
    fn writable(&self) -> bool {
        true
    }
}
