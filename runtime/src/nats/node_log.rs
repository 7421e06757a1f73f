//! The gateway's read view of every Herald stream on JetStream: listing streams and
//! reading pages and tails of them. Appends go through the domains' own logs.
//!
//! JetStream has no node-wide order, so `head` is a tick: it advances a few times a second
//! and tails wake on it to look for new events. It starts past any position, because
//! whatever a domain appended was acknowledged by JetStream: it is durable already.

use std::sync::Arc;
use std::time::Duration;

use super::connection::Nats;
use super::streams;
use crate::deadletter;
use crate::log::{Durability, EventLog, LogError, Part, ReadBatch, Record, Visibility, Wanted};

/// How often tails look for new events.
const TICK: Duration = Duration::from_millis(250);

/// Every stream of the known domains, read from JetStream.
pub struct JetStreamNodeLog {
    nats: Arc<Nats>,
    streams: Vec<String>,
    durability: Arc<Durability>,
}

impl JetStreamNodeLog {
    /// A view of `streams` (every domain's or partition's stream; with their dead-letter
    /// streams).
    pub fn new(nats: Arc<Nats>, streams: &[&str]) -> Arc<Self> {
        let streams = streams
            .iter()
            .flat_map(|stream| [(*stream).to_owned(), deadletter::stream(stream)])
            .collect();
        let durability = Arc::new(Durability::new(super::domain_log::ALWAYS_DURABLE));
        let ticking = Arc::downgrade(&durability);
        nats.spawn(async move {
            let mut interval = tokio::time::interval(TICK);
            loop {
                interval.tick().await;
                let Some(durability) = ticking.upgrade() else {
                    return;
                };
                durability.advance(durability.durable() + 1);
            }
        });
        Arc::new(Self {
            nats,
            streams,
            durability,
        })
    }

    /// Fails at once while NATS is away, so no gateway worker waits on it.
    fn reachable(&self) -> Result<(), LogError> {
        match self.nats.is_up() {
            true => Ok(()),
            false => Err(LogError::Unavailable("NATS is unreachable".into())),
        }
    }

    fn last(&self, stream: &str) -> Result<u64, LogError> {
        self.reachable()?;
        let context = self.nats.context().clone();
        let name = streams::stream_name(&self.nats.settings().prefix, stream);
        self.nats.block("reading a stream's end", async move {
            streams::last_sequence(&context, &name).await
        })
    }
}

impl EventLog for JetStreamNodeLog {
    fn append_all(&self, parts: Vec<Part>) -> Result<Vec<Vec<Arc<Record>>>, LogError> {
        let streams: Vec<String> = parts.into_iter().map(|part| part.stream).collect();
        Err(LogError::Unavailable(format!(
            "an append across streams ({}) cannot be atomic on JetStream",
            streams.join(", ")
        )))
    }

    fn find(&self, _: &str, _: &str, _: &str) -> Result<Option<Arc<Record>>, LogError> {
        Ok(None)
    }

    fn read_stream(
        &self,
        stream: &str,
        from: u64,
        limit: usize,
        _: Visibility,
    ) -> Result<Vec<Arc<Record>>, LogError> {
        self.reachable()?;
        let context = self.nats.context().clone();
        let name = streams::stream_name(&self.nats.settings().prefix, stream);
        let timeout = self.nats.settings().request_timeout;
        let stored = self.nats.block("reading a stream", async move {
            streams::read_range(&context, &name, from, None, limit, timeout).await
        })?;
        streams::own_records(&stored, stream)
    }

    fn read_after(&self, offset: u64, _: usize, _: Wanted<'_>) -> Result<ReadBatch, LogError> {
        Ok(ReadBatch {
            records: Vec::new(),
            scanned_to: offset,
        })
    }

    fn head(&self) -> u64 {
        self.durability.durable()
    }

    fn written(&self) -> u64 {
        self.head()
    }

    fn streams(&self) -> Vec<(String, u64)> {
        self.streams
            .iter()
            .filter_map(|stream| {
                let last = self.last(stream).ok()?;
                (last > 0 || !stream.starts_with("deadletter-")).then(|| (stream.clone(), last))
            })
            .collect()
    }

    /// The last sequence of `stream`: there is no node-wide offset to place it by.
    fn sequence_at(&self, stream: &str, _: u64) -> u64 {
        self.last(stream).unwrap_or(0)
    }

    fn durability(&self) -> &Durability {
        &self.durability
    }
}
