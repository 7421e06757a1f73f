//! One domain's log on JetStream, behind the same [`EventLog`] interface the host, replay
//! and recovery use in embedded mode.
//!
//! Two position spaces, kept apart (ARCHITECTURE.md, "Networked mode"):
//! - **inputs** are read from the domain's inbox stream: a record's `offset` is its inbox
//!   sequence, and `consumed` of an own record is an inbox sequence, so `read_after`,
//!   the host's cursor and the replay merge work unchanged;
//! - **own records** (its stream and its dead-letter stream) carry `herald-own`, a counter
//!   over both, as their `offset`: replay merges the two by it.
//!
//! Every append returns only once JetStream acknowledged it, so whatever is written is
//! durable: the [`Durability`] watermark starts past any offset, and ticks once per inbox
//! arrival, which is how the bus hears that there are inputs to read.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use async_nats::jetstream;
use futures_util::StreamExt;
use tokio::sync::Notify;
use tracing::{debug, info, warn};

use super::connection::Nats;
use super::lease::Lease;
use super::publisher::{Job, Publisher, Refused};
use super::streams::{self, AppendError, Outgoing, Placement};
use super::wire;
use crate::deadletter;
use crate::envelope::Envelope;
use crate::log::{
    Acked, Durability, EventLog, LogError, Part, ReadBatch, Record, Visibility, Wanted,
};

/// Where the watermark starts: past any offset either space reaches.
pub(super) const ALWAYS_DURABLE: u64 = 1 << 62;
/// How long the live consumer may deliver nothing before it is asked whether inputs wait.
const STALL_CHECK: std::time::Duration = std::time::Duration::from_secs(5);

/// Inputs prefetched before the consumer waits for the host to take some.
const PREFETCH: usize = 4096;
/// Bytes of prefetched inputs before the consumer waits, whatever their count: large
/// events must not multiply the buffer's memory.
const PREFETCH_BYTES: usize = 8 << 20;
/// Recent own events remembered for deduplication of client re-sends.
const DEDUP_EVENTS: usize = 100_000;
/// Bytes of recent own events remembered, whatever their count: large events must not
/// multiply the index's memory (older resends are then recognised by JetStream's window).
const RECENT_BYTES: usize = 16 << 20;
/// How much earlier than `duplicate_window` ago a search for an original starts: room for
/// the server's clock and this node's to differ.
const CLOCK_SLACK: std::time::Duration = std::time::Duration::from_secs(30);

/// How many recent own events are remembered: [`DEDUP_EVENTS`], or in debug builds what
/// `HERALD_FAULT_RESEND_INDEX` says, so a test can reach JetStream's duplicate window
/// without appending a hundred thousand events first.
fn dedup_events() -> usize {
    // Read once: it is asked for every event remembered.
    static EVENTS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *EVENTS.get_or_init(|| {
        #[cfg(debug_assertions)]
        if let Some(events) = std::env::var("HERALD_FAULT_RESEND_INDEX")
            .ok()
            .and_then(|value| value.parse::<usize>().ok())
        {
            return events.max(1);
        }
        DEDUP_EVENTS
    })
}
/// Events read per call when loading them at start: one page is in memory at a time.
const TAIL_PAGE: usize = 1_000;

/// A domain's streams and inbox on JetStream.
pub struct JetStreamDomainLog {
    nats: Arc<Nats>,
    /// The Herald stream this log writes (the domain's name, or a partition's).
    stream: String,
    dead: String,
    place: Placement,
    lease: Option<Arc<Lease>>,
    own: Mutex<Own>,
    inbox: Arc<Mutex<Inbox>>,
    room: Arc<Notify>,
    durability: Arc<Durability>,
    /// Sends appends in order, many in flight (see `publisher.rs`).
    publisher: Publisher,
    /// The highest own offset JetStream acknowledged.
    acked: Arc<Durability>,
    /// This log, for the acknowledgement futures it hands out.
    me: Weak<Self>,
}

#[derive(Default)]
struct Own {
    /// Last sequence of the domain's stream and of its dead-letter stream.
    events_last: u64,
    dead_last: u64,
    /// The last `herald-own` given.
    counter: u64,
    /// An append's outcome is unknown: read the streams' ends again before the next use.
    stale: bool,
    /// Each remembered record with the bytes it is charged.
    recent: HashMap<u64, (Arc<Record>, usize)>,
    /// Keys of `recent`, oldest first.
    order: VecDeque<u64>,
    /// What `recent` holds, in bytes, against [`RECENT_BYTES`].
    bytes: usize,
}

impl Own {
    fn remember(&mut self, record: &Arc<Record>) {
        let key = identity(&record.envelope.source, &record.envelope.id);
        let size = approximate_size(record);
        match self.recent.insert(key, (Arc::clone(record), size)) {
            None => self.order.push_back(key),
            Some((_, replaced)) => self.bytes -= replaced,
        }
        self.bytes += size;
        while self.order.len() > dedup_events() || self.bytes > RECENT_BYTES {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if let Some((_, charged)) = self.recent.remove(&old) {
                self.bytes -= charged;
            }
        }
    }

    fn forget_all(&mut self) {
        self.recent.clear();
        self.order.clear();
        self.bytes = 0;
    }
}

/// What a remembered record costs: its data and attributes, plus the map's overhead.
fn approximate_size(record: &Record) -> usize {
    let envelope = &record.envelope;
    envelope.data.len()
        + envelope.id.len()
        + envelope.source.len()
        + envelope.subject.len()
        + envelope.event_type.len()
        + envelope.partitionkey.len()
        + envelope
            .extensions
            .iter()
            .map(|(name, value)| name.len() + value.len())
            .sum::<usize>()
        + 256
}

#[derive(Default)]
struct Inbox {
    /// Prefetched inputs, contiguous by inbox sequence, each with the message to ack.
    buffer: VecDeque<(Arc<Record>, Option<jetstream::Message>)>,
    /// The payload bytes `buffer` holds.
    bytes: usize,
    /// The inbox sequence the live consumer delivers next (0: no consumer).
    next: u64,
    /// The highest inbox sequence known to exist.
    head: u64,
    /// Bumped at each consumer (re)creation; a stale task's deliveries are dropped.
    generation: u64,
    task: Option<tokio::task::JoinHandle<()>>,
}

fn identity(source: &str, id: &str) -> u64 {
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    hasher.update(source.as_bytes());
    hasher.update(&[0]);
    hasher.update(id.as_bytes());
    hasher.digest()
}

impl JetStreamDomainLog {
    /// Opens the log of Herald stream `stream` at `place` (a domain, or one partition of
    /// it), whose streams and inbox `layout::provision` created, and reads where they end.
    /// With a `lease`, appends are refused once it is no longer valid.
    pub fn open(
        nats: Arc<Nats>,
        stream: &str,
        place: Placement,
        lease: Option<Arc<Lease>>,
    ) -> Result<Arc<Self>, LogError> {
        let acked = Arc::new(Durability::new(0));
        let publisher = Publisher::start(&nats, Arc::clone(&acked));
        let log = Arc::new_cyclic(|me| Self {
            nats,
            stream: stream.to_owned(),
            dead: deadletter::stream(stream),
            place,
            lease,
            own: Mutex::new(Own::default()),
            inbox: Arc::default(),
            room: Arc::new(Notify::new()),
            durability: Arc::new(Durability::new(ALWAYS_DURABLE)),
            publisher,
            acked,
            me: me.clone(),
        });
        let mut own = log.own.lock().unwrap_or_else(PoisonError::into_inner);
        log.load_own(&mut own)?;
        drop(own);
        let context = log.nats.context().clone();
        let inbox = streams::inbox_name(&log.nats.settings().prefix, stream);
        let timeout = log.nats.settings().request_timeout;
        let head = log.nats.block("reading the inbox's end", async move {
            streams::exact_last_sequence(&context, &inbox, timeout).await
        })?;
        log.inbox
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .head = head;
        Ok(log)
    }

    fn js(&self, stream: &str) -> String {
        streams::stream_name(&self.nats.settings().prefix, stream)
    }

    /// Reads where the own streams end, the own counter, and the recent events.
    fn load_own(&self, own: &mut Own) -> Result<(), LogError> {
        let context = self.nats.context().clone();
        let events = self.js(&self.stream);
        let dead = self.js(&self.dead);
        let timeout = self.nats.settings().request_timeout;
        let (events_last, dead_last, dead_tail) = {
            let context = context.clone();
            let events = events.clone();
            self.nats.block("reading stream ends", async move {
                let events_last = streams::exact_last_sequence(&context, &events, timeout).await?;
                let dead_last = streams::exact_last_sequence(&context, &dead, timeout).await?;
                let dead_tail =
                    streams::read_range(&context, &dead, dead_last, Some(dead_last), 1, timeout)
                        .await?;
                Ok((events_last, dead_last, dead_tail))
            })?
        };
        own.events_last = events_last;
        own.dead_last = dead_last;
        // Never lowered: offsets of appends that were refused are not given again, so the
        // acknowledged watermark only moves forward.
        own.forget_all();
        let mut stored = 0;
        // The recent events, a page per call, so each call stays within its time bound and
        // one page at a time is in memory; the index keeps what its bounds allow.
        let mut from = events_last.saturating_sub(dedup_events() as u64 - 1).max(1);
        while from <= events_last {
            let context = context.clone();
            let events = events.clone();
            let page = self.nats.block("reading recent events", async move {
                streams::read_range(
                    &context,
                    &events,
                    from,
                    Some(events_last),
                    TAIL_PAGE,
                    timeout,
                )
                .await
            })?;
            match page.last() {
                Some(last) => from = last.sequence + 1,
                None => break,
            }
            for record in streams::own_records(&page, &self.stream)? {
                stored = stored.max(record.offset);
                own.remember(&record);
            }
        }
        let dead_tail = streams::own_records(&dead_tail, &self.dead)?;
        for record in dead_tail.iter() {
            stored = stored.max(record.offset);
            if record.envelope.stream == self.stream {
                own.remember(record);
            }
        }
        own.stale = false;
        own.counter = own.counter.max(stored);
        // Only what the streams hold: offsets of refused appends stay unacknowledged.
        self.acked.advance(stored);
        debug!(domain = %self.stream, events_last, dead_last, counter = own.counter, "JetStream streams opened");
        Ok(())
    }

    fn own_state(&self) -> Result<std::sync::MutexGuard<'_, Own>, LogError> {
        let mut own = self.own.lock().unwrap_or_else(PoisonError::into_inner);
        if self.publisher.take_reload() {
            own.stale = true;
        }
        if own.stale {
            // The streams' ends are read once every append in flight is answered: a
            // refusal refuses those after it, so the ends then stay put.
            let settled = self.publisher.settled();
            self.nats.block("appends in flight", settled)?;
            self.publisher.take_reload();
            self.load_own(&mut own)?;
        }
        Ok(own)
    }

    /// JetStream refused an append of `records` to JetStream stream `name` because it
    /// holds one of them already (at sequence `at`, when it said). Reads the originals,
    /// remembers them for [`EventLog::find`], and answers the duplicate to refuse the
    /// append with; an original that cannot be read leaves it unknown (503, resend).
    fn recognised(
        &self,
        own: &mut Own,
        name: &str,
        at: Option<u64>,
        records: &[Arc<Record>],
    ) -> LogError {
        let msg_ids: std::collections::HashSet<String> = records
            .iter()
            .map(|r| wire::msg_id(&self.stream, &r.envelope.source, &r.envelope.id))
            .collect();
        let context = self.nats.context().clone();
        let timeout = self.nats.settings().request_timeout;
        let window = self.nats.settings().duplicate_window;
        let js_name = name.to_owned();
        let stored = self
            .nats
            .block("reading the original of a resend", async move {
                match at {
                    Some(sequence) => {
                        streams::read_range(
                            &context,
                            &js_name,
                            sequence,
                            Some(sequence),
                            1,
                            timeout,
                        )
                        .await
                    }
                    None => {
                        let since = time::OffsetDateTime::now_utc() - window - CLOCK_SLACK;
                        streams::find_msg_ids(&context, &js_name, since, &msg_ids, timeout).await
                    }
                }
            });
        let originals = stored.and_then(|stored| streams::own_records(&stored, &self.stream));
        let originals = match originals {
            Ok(originals) => originals,
            Err(error) => return error,
        };
        let mut recognised = None;
        for original in originals {
            let held = &original.envelope;
            let sent = records
                .iter()
                .any(|r| r.envelope.source == held.source && r.envelope.id == held.id);
            if sent {
                info!(domain = %self.stream, sequence = held.sequence, source = %held.source, id = %held.id, "JetStream recognised a resend older than this node's index; comparing with the original");
                recognised.get_or_insert_with(|| LogError::Duplicate {
                    event_source: held.source.clone(),
                    id: held.id.clone(),
                    position: held.position(),
                });
                own.remember(&original);
            }
        }
        recognised.unwrap_or_else(|| {
            LogError::Unavailable(format!(
                "JetStream stream {name} holds an event of this append (at sequence {at:?}) that cannot be found to compare it with; nothing was appended"
            ))
        })
    }

    /// Inputs after `after` read straight from the inbox (replay, a release, a rewind).
    fn read_inbox(&self, after: u64, limit: usize) -> Result<Vec<Arc<Record>>, LogError> {
        let context = self.nats.context().clone();
        let name = streams::inbox_name(&self.nats.settings().prefix, &self.stream);
        let timeout = self.nats.settings().request_timeout;
        let stored = self.nats.block("reading inputs", async move {
            streams::read_range(&context, &name, after + 1, None, limit, timeout).await
        })?;
        let mut records = Vec::with_capacity(stored.len());
        for message in stored {
            records.push(Arc::new(self.decode_input(
                &message.headers,
                &message.body,
                message.sequence,
            )?));
        }
        if let Some(last) = records.last() {
            let mut inbox = self.inbox.lock().unwrap_or_else(PoisonError::into_inner);
            inbox.head = inbox.head.max(last.offset);
        }
        Ok(records)
    }

    fn decode_input(
        &self,
        headers: &async_nats::HeaderMap,
        body: &[u8],
        sequence: u64,
    ) -> Result<Record, LogError> {
        wire::record(headers, body, Some(sequence)).map_err(|error| {
            LogError::Unavailable(format!(
                "input {sequence} in the inbox of \"{}\": {error}",
                self.stream
            ))
        })
    }

    /// Starts the live consumer at inbox sequence `start`, replacing any earlier one.
    fn consume_from(&self, start: u64) -> Result<(), LogError> {
        let context = self.nats.context().clone();
        let prefix = self.nats.settings().prefix.clone();
        let stream = self.stream.clone();
        let consumer = self.nats.block("creating the inbox consumer", async move {
            streams::durable_consumer(&context, &prefix, &stream, start).await
        })?;
        let mut inbox = self.inbox.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(task) = inbox.task.take() {
            task.abort();
        }
        inbox.generation += 1;
        inbox.buffer.clear();
        inbox.bytes = 0;
        inbox.next = start;
        let generation = inbox.generation;
        let shared = Arc::clone(&self.inbox);
        let room = Arc::clone(&self.room);
        let durability = Arc::clone(&self.durability);
        let domain = self.stream.clone();
        inbox.task = Some(self.nats.spawn(async move {
            prefetch(consumer, shared, room, durability, generation, domain).await;
        }));
        Ok(())
    }
}

/// Pulls inputs from the live consumer into the buffer and wakes the host.
async fn prefetch(
    consumer: jetstream::consumer::Consumer<jetstream::consumer::pull::Config>,
    inbox: Arc<Mutex<Inbox>>,
    room: Arc<Notify>,
    durability: Arc<Durability>,
    generation: u64,
    domain: String,
) {
    let mut messages = match consumer
        .stream()
        .max_messages_per_batch(256)
        .messages()
        .await
    {
        Ok(messages) => messages,
        Err(error) => {
            warn!(%domain, %error, "cannot consume the inbox; consumption resumes at the next read");
            let mut state = inbox.lock().unwrap_or_else(PoisonError::into_inner);
            if state.generation == generation {
                state.next = 0;
            }
            drop(state);
            // Wake the host, whose next read starts a consumer again.
            durability.advance(durability.durable() + 1);
            return;
        }
    };
    loop {
        loop {
            let full = {
                let inbox = inbox.lock().unwrap_or_else(PoisonError::into_inner);
                inbox.buffer.len() >= PREFETCH || inbox.bytes >= PREFETCH_BYTES
            };
            if !full {
                break;
            }
            room.notified().await;
        }
        let next = match tokio::time::timeout(STALL_CHECK, messages.next()).await {
            Ok(next) => next,
            Err(_) => {
                // Quiet for a while. Fine if nothing waits; but a pull request lost in a
                // consumer leader change leaves messages waiting that never come (the
                // client's own expiry only re-pulls much later): start over then.
                match consumer.get_info().await {
                    Ok(info) if info.num_pending > 0 => {
                        warn!(%domain, pending = info.num_pending, "the inbox consumer holds inputs but delivers none; starting it again");
                        break;
                    }
                    _ => continue,
                }
            }
        };
        let message = match next {
            Some(Ok(message)) => message,
            Some(Err(error)) => {
                // Missed heartbeats and the like while NATS is away: the stream resumes
                // by itself once it is back.
                debug!(%domain, %error, "inbox consumer interrupted; waiting");
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                continue;
            }
            None => break,
        };
        let Ok(sequence) = message.info().map(|info| info.stream_sequence) else {
            continue;
        };
        let headers = message.headers.clone().unwrap_or_default();
        let record = match wire::record(&headers, &message.payload, Some(sequence)) {
            Ok(record) => Arc::new(record),
            Err(error) => {
                warn!(%domain, sequence, %error, "inbox message is not a Herald record");
                continue;
            }
        };
        {
            let mut inbox = inbox.lock().unwrap_or_else(PoisonError::into_inner);
            if inbox.generation != generation {
                return;
            }
            if sequence != inbox.next {
                // A redelivery or a gap: start over from where the host is.
                debug!(%domain, sequence, expected = inbox.next, "inbox out of step; re-reading");
                inbox.next = 0;
                break;
            }
            inbox.next = sequence + 1;
            inbox.head = inbox.head.max(sequence);
            inbox.bytes += message.payload.len();
            inbox.buffer.push_back((record, Some(message)));
        }
        durability.advance(durability.durable() + 1);
    }
    // The consumer ended: the next read starts a new one where the host is.
    {
        let mut inbox = inbox.lock().unwrap_or_else(PoisonError::into_inner);
        if inbox.generation == generation {
            inbox.next = 0;
        }
    }
    durability.advance(durability.durable() + 1);
}

/// One unit of a pipelined append: its records and the answers of its jobs.
struct SentUnit {
    records: Vec<Arc<Record>>,
    jobs: Vec<tokio::sync::oneshot::Receiver<Result<(), Refused>>>,
    /// Whether a duplicate refusal may be answered from the original (ingress events
    /// only: a reaction or a dead letter JetStream already holds means the ends moved).
    recognisable: bool,
}

impl JetStreamDomainLog {
    /// Sends `units` to `stream` (the domain's or its dead letters') in order, without
    /// waiting for their acknowledgements.
    fn send_units(
        &self,
        stream: &str,
        consumed: u64,
        units: Vec<Vec<Envelope>>,
    ) -> Result<Vec<SentUnit>, LogError> {
        if !self.writable() {
            return Err(LogError::Fenced {
                stream: self.stream.clone(),
                reason: "this node's lease on it has run out (another node may own it now)".into(),
            });
        }
        if self.publisher.refused() {
            return Err(LogError::Unavailable(format!(
                "an earlier append to {} was refused; nothing more is appended until the domain's state is rebuilt from its streams",
                self.stream
            )));
        }
        let dead = stream == self.dead;
        if stream != self.stream && !dead {
            return Err(LogError::Unavailable(format!(
                "the log of domain \"{}\" cannot append to stream \"{stream}\"",
                self.stream
            )));
        }
        let mut own = self.own_state()?;
        let appended_ms = u64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or(0),
        )
        .unwrap_or(0);
        let prefix = self.nats.settings().prefix.clone();
        let name = self.js(stream);
        let mut sent = Vec::with_capacity(units.len());
        for events in units {
            let last = if dead { own.dead_last } else { own.events_last };
            let mut rest = events.len() as u32;
            let recognisable = !dead && events.iter().all(|e| e.cause.is_none());
            let mut records = Vec::with_capacity(events.len());
            let mut outgoing = Vec::with_capacity(events.len());
            for (index, mut envelope) in events.into_iter().enumerate() {
                envelope.stream = stream.to_owned();
                envelope.sequence = last + 1 + index as u64;
                rest -= 1;
                let offset = own.counter + 1 + index as u64;
                let record = Record {
                    offset,
                    consumed,
                    appended_ms,
                    group_rest: rest,
                    envelope,
                };
                outgoing.push(Outgoing {
                    subject: streams::subject(
                        &prefix,
                        &self.place,
                        dead,
                        &record.envelope.event_type,
                        &record.envelope.partitionkey,
                    ),
                    headers: wire::headers(&record, offset),
                    body: bytes::Bytes::from(record.envelope.data.clone()),
                    msg_id: wire::msg_id(stream, &record.envelope.source, &record.envelope.id),
                });
                records.push(Arc::new(record));
            }
            // More than one atomic batch holds is sent as several: a crash between them
            // is a torn append, which recovery completes (the missing reactions).
            let mut expected = last;
            let mut jobs = Vec::new();
            let mut outgoing = outgoing.into_iter().peekable();
            let mut sent_records = 0;
            while outgoing.peek().is_some() {
                let chunk: Vec<Outgoing> = outgoing.by_ref().take(streams::MAX_BATCH).collect();
                let count = chunk.len() as u64;
                sent_records += chunk.len();
                let (done, answer) = tokio::sync::oneshot::channel();
                self.publisher.send(Job {
                    name: name.clone(),
                    expected,
                    messages: chunk,
                    last_offset: records[sent_records - 1].offset,
                    done,
                    epoch: 0,
                });
                jobs.push(answer);
                expected += count;
            }
            if let Some(record) = records.last() {
                own.counter = record.offset;
                if dead {
                    own.dead_last = record.envelope.sequence;
                } else {
                    own.events_last = record.envelope.sequence;
                }
            }
            if !dead {
                for record in &records {
                    own.remember(record);
                }
            }
            sent.push(SentUnit {
                records,
                jobs,
                recognisable,
            });
        }
        Ok(sent)
    }

    /// What one sent unit came to, from its jobs' answers: on this (the appending)
    /// thread, because answering a resend reads its original from JetStream.
    fn unit_outcome(
        &self,
        unit: &SentUnit,
        answers: Vec<Result<(), Refused>>,
    ) -> Result<(), LogError> {
        let refusal = answers
            .into_iter()
            .enumerate()
            .find_map(|(index, answer)| answer.err().map(|refused| (index, refused)));
        let Some((index, refused)) = refusal else {
            return Ok(());
        };
        let name = self.js(&unit.records[0].envelope.stream);
        let mut own = self.own.lock().unwrap_or_else(PoisonError::into_inner);
        own.stale = true;
        match refused {
            Refused::Chained(reason) => Err(LogError::NotStored(reason)),
            // Nothing is stored: JetStream knows an ingress event by its `Nats-Msg-Id` from
            // further back than `recent`. Remember the original, so the host compares the
            // resend with it and answers for itself.
            Refused::First(AppendError::Duplicate(at)) if index == 0 && unit.recognisable => {
                // The original is read once the ends are known again.
                drop(own);
                let mut own = self.own_state()?;
                Err(self.recognised(&mut own, &name, at, &unit.records))
            }
            Refused::First(AppendError::Duplicate(at)) => Err(LogError::Unavailable(format!(
                "JetStream stream {name} already holds an event of this append (at sequence {at:?}); the stream is read again"
            ))),
            Refused::First(AppendError::Log(error)) => Err(error),
        }
    }
}

/// Waits for every job of every unit, in order.
async fn answers(
    jobs: Vec<Vec<tokio::sync::oneshot::Receiver<Result<(), Refused>>>>,
) -> Vec<Vec<Result<(), Refused>>> {
    let mut all = Vec::with_capacity(jobs.len());
    for unit in jobs {
        let mut answered = Vec::with_capacity(unit.len());
        for job in unit {
            answered.push(job.await.unwrap_or_else(|_| {
                Err(Refused::First(AppendError::Log(LogError::Unavailable(
                    "the NATS thread stopped before the append was acknowledged; whether it was stored is unknown until the stream is read again".into(),
                ))))
            }));
        }
        all.push(answered);
    }
    all
}

impl EventLog for JetStreamDomainLog {
    fn append_all(&self, parts: Vec<Part>) -> Result<Vec<Vec<Arc<Record>>>, LogError> {
        let mut answered = Vec::with_capacity(parts.len());
        for part in parts {
            let mut units = self.send_units(&part.stream, part.consumed, vec![part.events])?;
            let jobs = units
                .iter_mut()
                .map(|unit| std::mem::take(&mut unit.jobs))
                .collect();
            let started = std::time::Instant::now();
            let outcomes = self
                .nats
                .block("an append", async move { Ok(answers(jobs).await) })?;
            for (unit, outcome) in units.iter().zip(outcomes) {
                self.unit_outcome(unit, outcome)?;
            }
            let records: Vec<Arc<Record>> =
                units.into_iter().flat_map(|unit| unit.records).collect();
            debug!(domain = %self.stream, events = records.len(), elapsed_us = started.elapsed().as_micros() as u64, "append");
            answered.push(records);
        }
        Ok(answered)
    }

    fn append_pipelined(
        &self,
        stream: &str,
        consumed: u64,
        units: Vec<Vec<Envelope>>,
    ) -> Result<(Vec<Arc<Record>>, Acked), LogError> {
        let mut units = self.send_units(stream, consumed, units)?;
        let jobs: Vec<_> = units
            .iter_mut()
            .map(|unit| std::mem::take(&mut unit.jobs))
            .collect();
        let records = units.iter().flat_map(|unit| unit.records.clone()).collect();
        let log = self.me.clone();
        let acked: Acked = Box::pin(async move {
            let outcomes = answers(jobs).await;
            let Some(log) = log.upgrade() else {
                return outcomes
                    .iter()
                    .map(|_| Err(LogError::Unavailable("the domain's log was closed".into())))
                    .collect();
            };
            units
                .iter()
                .zip(outcomes)
                .map(|(unit, outcome)| log.unit_outcome(unit, outcome))
                .collect()
        });
        Ok((records, acked))
    }

    fn acknowledged(&self) -> Option<Arc<Durability>> {
        Some(Arc::clone(&self.acked))
    }

    fn reopen(&self) {
        // The ends were read again at the refusal (`take_reload`); reading them once more
        // would forget the originals a refused resend was recognised by.
        self.publisher.reopen();
    }

    fn find(&self, stream: &str, source: &str, id: &str) -> Result<Option<Arc<Record>>, LogError> {
        if stream != self.stream {
            return Ok(None);
        }
        // Not knowing is an error, not "new": while the index is read again after an
        // outage, a resend of an event stored behind it would otherwise meet its original
        // in the state and be refused 409 (found by nats_cluster.rs).
        let own = self.own_state()?;
        Ok(own
            .recent
            .get(&identity(source, id))
            .map(|(record, _)| record)
            .filter(|record| record.envelope.source == source && record.envelope.id == id)
            .cloned())
    }

    fn read_stream(
        &self,
        stream: &str,
        from: u64,
        limit: usize,
        _: Visibility,
    ) -> Result<Vec<Arc<Record>>, LogError> {
        let last = {
            // Errors surface here, not as an empty stream: replay must not mistake an
            // unreachable NATS for a domain with no history.
            let own = self.own_state()?;
            match stream {
                s if s == self.stream => own.events_last,
                s if s == self.dead => own.dead_last,
                _ => 0,
            }
        };
        let context = self.nats.context().clone();
        let name = self.js(stream);
        let timeout = self.nats.settings().request_timeout;
        let stored = self.nats.block("reading own records", async move {
            streams::read_range(&context, &name, from, Some(last), limit, timeout).await
        })?;
        streams::own_records(&stored, stream)
    }

    fn read_after(
        &self,
        offset: u64,
        limit: usize,
        wanted: Wanted<'_>,
    ) -> Result<ReadBatch, LogError> {
        let mut batch = ReadBatch {
            records: Vec::new(),
            scanned_to: offset,
        };
        let live = {
            let mut inbox = self.inbox.lock().unwrap_or_else(PoisonError::into_inner);
            // Inputs at or before `offset` are handled: acknowledge them (all at once).
            let mut handled = None;
            while inbox
                .buffer
                .front()
                .is_some_and(|(record, _)| record.offset <= offset)
            {
                handled = inbox.buffer.pop_front().and_then(|(_, message)| message);
                if let Some(message) = &handled {
                    inbox.bytes = inbox.bytes.saturating_sub(message.payload.len());
                }
            }
            if let Some(message) = handled {
                self.nats.spawn(async move {
                    let _ = message.ack().await;
                });
                self.room.notify_one();
            }
            match inbox.buffer.front() {
                Some((first, _)) if first.offset == offset + 1 => {
                    for (record, _) in inbox.buffer.iter().take(limit) {
                        batch.scanned_to = record.offset;
                        if wanted(&record.envelope.event_type).takes(record) {
                            batch.records.push(Arc::clone(record));
                        }
                    }
                    true
                }
                None if inbox.next == offset + 1 => true,
                _ => false,
            }
        };
        if live {
            return Ok(batch);
        }
        // Not what the live consumer is at: read the inbox directly.
        let records = self.read_inbox(offset, limit)?;
        let forward = {
            let inbox = self.inbox.lock().unwrap_or_else(PoisonError::into_inner);
            inbox
                .buffer
                .front()
                .is_none_or(|(first, _)| first.offset > offset + 1)
                && offset + 1 >= inbox.next
        };
        for record in &records {
            batch.scanned_to = record.offset;
            if wanted(&record.envelope.event_type).takes(record) {
                batch.records.push(Arc::clone(record));
            }
        }
        if forward && records.len() < limit {
            // The end of the inbox: consume live from here on.
            self.consume_from(batch.scanned_to + 1)?;
        }
        Ok(batch)
    }

    fn head(&self) -> u64 {
        self.inbox
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .head
    }

    fn written(&self) -> u64 {
        self.head()
    }

    fn streams(&self) -> Vec<(String, u64)> {
        match self.own_state() {
            Ok(own) => vec![
                (self.stream.clone(), own.events_last),
                (self.dead.clone(), own.dead_last),
            ],
            Err(_) => Vec::new(),
        }
    }

    /// The last sequence of `stream` (`u64::MAX` while it cannot be known): the domain's
    /// positions are not node-wide, so `offset` is not used.
    fn sequence_at(&self, stream: &str, _: u64) -> u64 {
        match self.own_state() {
            Ok(own) if stream == self.stream => own.events_last,
            Ok(own) if stream == self.dead => own.dead_last,
            Ok(_) => 0,
            // Unknown while NATS cannot be asked: never 0, which would read as "empty" and
            // make a snapshot look ahead or replay stop short; a read after it fails.
            Err(_) => u64::MAX,
        }
    }

    fn durability(&self) -> &Durability {
        &self.durability
    }

    fn writable(&self) -> bool {
        self.lease.as_ref().is_none_or(|lease| lease.valid())
    }
}

impl Drop for JetStreamDomainLog {
    fn drop(&mut self) {
        if let Some(task) = self
            .inbox
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .task
            .take()
        {
            task.abort();
        }
    }
}
