//! Herald's streams on JetStream: names, subjects, provisioning, fenced appends and
//! range reads.
//!
//! A Herald stream `S` is the JetStream stream `<prefix>-S`; its sequence *is* the Herald
//! sequence, because only the domain's host writes it and every append is fenced on the
//! last sequence it knows (`Nats-Expected-Last-Sequence`): a second writer is refused, so
//! the numbering stays dense. An append of several records is one atomic batch.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
use async_nats::jetstream::stream::{self, DiscardPolicy, Source, StorageType, SubjectTransform};
use async_nats::{jetstream, HeaderMap};
use bytes::Bytes;
use futures_util::StreamExt;

use super::connection::NatsSettings;
use super::wire;
use std::sync::Arc;

use crate::log::{LogError, Record};

/// The most messages one atomic batch may hold (a server limit).
pub const MAX_BATCH: usize = 1000;

/// The JetStream stream holding Herald stream `stream`.
pub fn stream_name(prefix: &str, stream: &str) -> String {
    format!("{prefix}-{stream}")
}

/// The inbox stream of Herald stream `stream`'s host: every input it handles, in order
/// (for a partitioned domain, also the name of its router, by the domain's name).
pub fn inbox_name(prefix: &str, stream: &str) -> String {
    format!("{prefix}-in-{stream}")
}

/// Where a Herald stream sits among the subjects: its domain, and its partition when the
/// domain has several (the subjects then end in `.p<partition>`, which keeps partition
/// streams disjoint and leaves the first five tokens as they are for outside readers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// The domain.
    pub domain: String,
    /// The partition, for a domain with more than one.
    pub partition: Option<u32>,
}

impl Placement {
    fn suffix(&self) -> String {
        self.partition.map(|p| format!(".p{p}")).unwrap_or_default()
    }
}

/// The subject of an event of `event_type` with `partitionkey` in the stream at `place`
/// (its dead-letter stream when `dead`).
pub fn subject(
    prefix: &str,
    place: &Placement,
    dead: bool,
    event_type: &str,
    partitionkey: &str,
) -> String {
    let key = wire::key_token(partitionkey);
    let domain = &place.domain;
    let suffix = place.suffix();
    if dead {
        return format!("{prefix}.dl.{domain}.{key}{suffix}");
    }
    let name = event_type
        .strip_prefix(domain.as_str())
        .and_then(|rest| rest.strip_prefix('.'))
        .unwrap_or(event_type);
    format!("{prefix}.ev.{domain}.{}.{key}{suffix}", wire::token(name))
}

/// The subjects of the stream at `place` (its dead-letter stream when `dead`).
pub fn own_subjects(prefix: &str, place: &Placement, dead: bool) -> String {
    let domain = &place.domain;
    match (dead, place.partition) {
        (false, None) => format!("{prefix}.ev.{domain}.>"),
        (true, None) => format!("{prefix}.dl.{domain}.>"),
        (false, Some(p)) => format!("{prefix}.ev.{domain}.*.*.p{p}"),
        (true, Some(p)) => format!("{prefix}.dl.{domain}.*.p{p}"),
    }
}

/// The subjects of every event of `event_type` (`<domain>.<Name>`) in one of its domain's
/// streams (`partitioned`: a partition stream, whose subjects have one more token).
pub fn type_filter(prefix: &str, event_type: &str, partitioned: bool) -> String {
    let (domain, name) = event_type.split_once('.').unwrap_or((event_type, ""));
    let tail = if partitioned { ".*.*" } else { ".*" };
    format!("{prefix}.ev.{domain}.{}{tail}", wire::token(name))
}

fn retention(settings: &NatsSettings, config: stream::Config) -> stream::Config {
    stream::Config {
        num_replicas: settings.replicas,
        max_age: settings.max_age,
        max_bytes: if settings.max_bytes == 0 {
            -1
        } else {
            i64::try_from(settings.max_bytes).unwrap_or(i64::MAX)
        },
        duplicate_window: settings.duplicate_window,
        storage: StorageType::File,
        ..config
    }
}

/// Creates (or checks) JetStream stream `name` on `subjects`, written by one host.
pub async fn provision_own(
    context: &jetstream::Context,
    settings: &NatsSettings,
    name: String,
    subjects: String,
) -> Result<(), LogError> {
    let config = retention(
        settings,
        stream::Config {
            name,
            subjects: vec![subjects],
            // A full stream refuses appends rather than dropping history replay needs.
            discard: DiscardPolicy::New,
            allow_atomic_publish: true,
            allow_direct: true,
            ..Default::default()
        },
    );
    create_or_update(context, config).await
}

/// Creates (or updates) inbox stream `name`, made only of `sources` (each keeps its
/// origin's order).
pub async fn provision_inbox(
    context: &jetstream::Context,
    settings: &NatsSettings,
    name: String,
    sources: Vec<Source>,
) -> Result<(), LogError> {
    let config = retention(
        settings,
        stream::Config {
            name,
            sources: Some(sources),
            discard: DiscardPolicy::New,
            allow_direct: true,
            ..Default::default()
        },
    );
    create_or_update(context, config).await
}

/// A source of `origin` (a JetStream stream name) through `filters`: each a subject
/// filter and where it writes the subject (empty: kept as it is).
pub fn source(origin: String, filters: Vec<(String, String)>) -> Source {
    Source {
        name: origin,
        subject_transforms: filters
            .into_iter()
            .map(|(source, destination)| SubjectTransform {
                source,
                destination,
            })
            .collect(),
        ..Default::default()
    }
}

async fn create_or_update(
    context: &jetstream::Context,
    config: stream::Config,
) -> Result<(), LogError> {
    let name = config.name.clone();
    match context.get_stream(&name).await {
        Ok(mut existing) => {
            let info = existing.info().await.map_err(|e| unavailable(&name, e))?;
            let mut config = config;
            // A source that is new or changed (a subscription added or dropped) starts
            // now: the server would otherwise copy the input stream's whole history into
            // the inbox again, and the domain would handle it twice.
            if let (Some(wanted), Some(had)) =
                (config.sources.as_mut(), info.config.sources.as_ref())
            {
                for source in wanted.iter_mut() {
                    match had.iter().find(|old| {
                        old.name == source.name
                            && old.subject_transforms == source.subject_transforms
                    }) {
                        Some(old) => *source = old.clone(),
                        None => source.start_time = Some(time::OffsetDateTime::now_utc()),
                    }
                }
            }
            let differs = info.config.sources != config.sources
                || info.config.subjects != config.subjects
                || info.config.allow_atomic_publish != config.allow_atomic_publish
                || info.config.discard != config.discard;
            if differs {
                context
                    .update_stream(config)
                    .await
                    .map_err(|e| unavailable(&name, e))?;
            }
            Ok(())
        }
        Err(_) => context
            .create_stream(config)
            .await
            .map(|_| ())
            .map_err(|e| unavailable(&name, e)),
    }
}

fn unavailable(stream: &str, error: impl std::fmt::Display) -> LogError {
    LogError::Unavailable(format!("JetStream stream {stream}: {error}"))
}

/// One message to append.
pub struct Outgoing {
    /// Its subject.
    pub subject: String,
    /// Its headers (CloudEvents and Herald's).
    pub headers: HeaderMap,
    /// Its body.
    pub body: Bytes,
    /// Its `Nats-Msg-Id`.
    pub msg_id: String,
}

static BATCH_IDS: AtomicU64 = AtomicU64::new(0);
static STARTED: std::sync::LazyLock<u128> = std::sync::LazyLock::new(|| {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos())
        .unwrap_or(0)
});

/// Why an append stored nothing (or, for [`AppendError::Log`], perhaps something).
#[derive(Debug)]
pub enum AppendError {
    /// JetStream already holds a message with one of the `Nats-Msg-Id`s, stored within its
    /// `duplicate_window`, and stored nothing: at this sequence for a single message; for
    /// a batch the server does not say which message, nor where.
    Duplicate(Option<u64>),
    /// Any other failure.
    Log(LogError),
}

impl From<LogError> for AppendError {
    fn from(error: LogError) -> Self {
        Self::Log(error)
    }
}

/// `messages` as published for one append fenced on `expected_last`: one message with
/// its `Nats-Msg-Id` and fence, or an atomic batch (the fence on its first message, checked
/// when it commits, so a refused fence abandons the whole batch), in order, as subject,
/// headers and body. The caller asks for the acknowledgement on the last one.
pub(super) fn framed(
    messages: Vec<Outgoing>,
    expected_last: u64,
) -> Vec<(String, HeaderMap, Bytes)> {
    let count = messages.len();
    // Unique across restarts too (a PID repeats in containers): an abandoned batch of an
    // earlier process must never be mistaken for this one.
    let batch = (count > 1).then(|| {
        format!(
            "{}-{}-{}",
            std::process::id(),
            *STARTED,
            BATCH_IDS.fetch_add(1, Ordering::Relaxed)
        )
    });
    messages
        .into_iter()
        .enumerate()
        .map(|(index, mut message)| {
            let position = index + 1;
            message
                .headers
                .insert("Nats-Msg-Id", message.msg_id.as_str());
            if position == 1 {
                message.headers.insert(
                    "Nats-Expected-Last-Sequence",
                    expected_last.to_string().as_str(),
                );
            }
            if let Some(batch) = &batch {
                message.headers.insert("Nats-Batch-Id", batch.as_str());
                message
                    .headers
                    .insert("Nats-Batch-Sequence", position.to_string().as_str());
                if position == count {
                    message.headers.insert("Nats-Batch-Commit", "1");
                }
            }
            (message.subject, message.headers, message.body)
        })
        .collect()
}

#[derive(serde::Deserialize)]
struct Ack {
    #[serde(default)]
    seq: u64,
    #[serde(default)]
    duplicate: bool,
    #[serde(default)]
    error: Option<AckError>,
}

#[derive(serde::Deserialize)]
struct AckError {
    #[serde(default)]
    code: u64,
    #[serde(default)]
    err_code: u64,
    #[serde(default)]
    description: String,
}

/// JetStream's error code for an atomic batch holding a `Nats-Msg-Id` it already has.
const BATCH_DUPLICATE: u64 = 10201;

/// Checks a publish reply: stored where expected, or why not.
pub(super) fn check_ack(
    name: &str,
    expected_last: u64,
    count: u64,
    reply: &[u8],
) -> Result<(), AppendError> {
    let ack: Ack = serde_json::from_slice(reply).map_err(|error| {
        LogError::Unavailable(format!(
            "JetStream stream {name} answered an append with something unreadable ({error}): {}",
            String::from_utf8_lossy(reply)
        ))
    })?;
    if ack
        .error
        .as_ref()
        .is_some_and(|error| error.err_code == BATCH_DUPLICATE)
    {
        return Err(AppendError::Duplicate(None));
    }
    if ack.duplicate && ack.error.is_none() {
        return Err(AppendError::Duplicate((count == 1).then_some(ack.seq)));
    }
    if let Some(error) = ack.error {
        // 10071: wrong last sequence, 10070: wrong last message id: someone else appended
        // since this host's last append (or an append before this one was refused).
        if error.err_code == 10071 || error.err_code == 10070 {
            return Err(AppendError::Log(LogError::Fenced {
                stream: name.to_owned(),
                reason: format!(
                    "expected last sequence {expected_last}, the server says {}",
                    error.description
                ),
            }));
        }
        return Err(AppendError::Log(LogError::Unavailable(format!(
            "JetStream stream {name} refused an append after sequence {expected_last}: {} (code {}, {})",
            error.description, error.code, error.err_code
        ))));
    }
    if ack.seq != expected_last + count {
        return Err(AppendError::Log(LogError::Unavailable(format!(
            "JetStream stream {name} stored an append at sequence {}, expected {}; the stream is read again",
            ack.seq,
            expected_last + count
        ))));
    }
    Ok(())
}

/// A stored message: its stream sequence, headers and body.
pub struct Stored {
    /// Stream sequence.
    pub sequence: u64,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
}

/// The last sequence of JetStream stream `name` (0 if empty or missing) as its stream info
/// gives it: for figures shown, as it may be behind (see [`exact_last_sequence`]).
pub async fn last_sequence(context: &jetstream::Context, name: &str) -> Result<u64, LogError> {
    match context.get_stream(name).await {
        // Looking the stream up fetches its info: no second request.
        Ok(stream) => Ok(stream.cached_info().state.last_sequence),
        // A stream not created yet reads as empty.
        Err(error) if not_found(&error) => Ok(0),
        Err(error) => Err(unavailable(name, error)),
    }
}

/// Whether JetStream stream `name` exists.
pub async fn exists(context: &jetstream::Context, name: String) -> Result<bool, LogError> {
    match context.get_stream(&name).await {
        Ok(_) => Ok(true),
        Err(error) if not_found(&error) => Ok(false),
        Err(error) => Err(unavailable(&name, error)),
    }
}

/// Whether a lookup failed because the stream does not exist (JetStream error 10059).
fn not_found(error: &jetstream::context::GetStreamError) -> bool {
    matches!(error.kind(), jetstream::context::GetStreamErrorKind::JetStream(ref e) if e.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND)
}

/// The last sequence of JetStream stream `name` as its leader holds it (0 if empty or
/// missing). Stream info may come from a replica that is behind (a replica that thinks its
/// group leaderless answers too), so its end is only a hint, checked through an ordered
/// consumer, which lives on the leader. For what must not start from an old end: a host's
/// own stream and inbox.
pub async fn exact_last_sequence(
    context: &jetstream::Context,
    name: &str,
    timeout: Duration,
) -> Result<u64, LogError> {
    let stream = match context.get_stream(name).await {
        Ok(stream) => stream,
        Err(error) if not_found(&error) => return Ok(0),
        Err(error) => return Err(unavailable(name, error)),
    };
    let hint = stream.cached_info().state.last_sequence;
    let mut last = hint;
    let start = DeliverPolicy::ByStartSequence {
        start_sequence: hint + 1,
    };
    read_ordered(
        &stream,
        name,
        start,
        &format!("after {hint}"),
        timeout,
        |sequence, _| {
            last = sequence;
            true
        },
    )
    .await?;
    Ok(last)
}

/// Up to `limit` messages of stream `name` from sequence `from` to `last` (`None`: the
/// stream's end now), in order, through an ordered consumer (one per call).
pub async fn read_range(
    context: &jetstream::Context,
    name: &str,
    from: u64,
    last: Option<u64>,
    limit: usize,
    timeout: Duration,
) -> Result<Vec<Stored>, LogError> {
    let from = from.max(1);
    if last.is_some_and(|last| from > last) || limit == 0 {
        return Ok(Vec::new());
    }
    let stream = match context.get_stream(name).await {
        Ok(stream) => stream,
        Err(error) if not_found(&error) => return Ok(Vec::new()),
        Err(error) => return Err(unavailable(name, error)),
    };
    // The end comes from the ordered consumer, not from the stream info, which a replica
    // that is behind may have answered (see `exact_last_sequence`).
    let last = last.unwrap_or(u64::MAX);
    let want = usize::try_from(last - from)
        .unwrap_or(usize::MAX)
        .saturating_add(1)
        .min(limit);
    let mut out = Vec::with_capacity(want.min(4096));
    let start = DeliverPolicy::ByStartSequence {
        start_sequence: from,
    };
    read_ordered(
        &stream,
        name,
        start,
        &format!("from {from}"),
        timeout,
        |sequence, message| {
            if sequence > last {
                return false;
            }
            out.push(Stored {
                sequence,
                headers: message.headers.clone().unwrap_or_default(),
                body: message.payload.clone(),
            });
            sequence < last && out.len() < want
        },
    )
    .await?;
    Ok(out)
}

/// Reads stream `name` in order through an ordered consumer (one per call) starting as
/// `start` says, handing `visit` each message with its sequence until it answers false or
/// the stream's end as the consumer found it at creation (on the stream's leader) is read;
/// each wait is bounded by `timeout`. `at` says where, for errors.
async fn read_ordered(
    stream: &jetstream::stream::Stream,
    name: &str,
    start: DeliverPolicy,
    at: &str,
    timeout: Duration,
    mut visit: impl FnMut(u64, &jetstream::Message) -> bool,
) -> Result<(), LogError> {
    let consumer = stream
        .create_consumer(pull::OrderedConfig {
            deliver_policy: start,
            ..Default::default()
        })
        .await
        .map_err(|e| unavailable(name, e))?;
    if consumer.cached_info().num_pending == 0 {
        return Ok(());
    }
    let mut messages = consumer
        .messages()
        .await
        .map_err(|e| unavailable(name, e))?;
    loop {
        let next = tokio::time::timeout(timeout, messages.next())
            .await
            .map_err(|_| {
                LogError::Unavailable(format!(
                    "reading JetStream stream {name} {at}: nothing arrived within {timeout:?}"
                ))
            })?;
        let message = match next {
            Some(Ok(message)) => message,
            Some(Err(error)) => return Err(unavailable(name, error)),
            None => return Ok(()),
        };
        let (sequence, pending) = message
            .info()
            .map(|info| (info.stream_sequence, info.pending))
            .map_err(|e| unavailable(name, e))?;
        // `pending` counts the messages after this one: 0 is the end as of now.
        if !visit(sequence, &message) || pending == 0 {
            return Ok(());
        }
    }
}

/// The messages of stream `name` stored since `since` whose `Nats-Msg-Id` is one of
/// `msg_ids`, read in order up to the stream's end now (or until every one is found).
/// Finds the originals JetStream recognised in an atomic batch, which it does not name.
pub async fn find_msg_ids(
    context: &jetstream::Context,
    name: &str,
    since: time::OffsetDateTime,
    msg_ids: &std::collections::HashSet<String>,
    timeout: Duration,
) -> Result<Vec<Stored>, LogError> {
    if msg_ids.is_empty() {
        return Ok(Vec::new());
    }
    let stream = match context.get_stream(name).await {
        Ok(stream) => stream,
        Err(error) if not_found(&error) => return Ok(Vec::new()),
        Err(error) => return Err(unavailable(name, error)),
    };
    let mut found = Vec::new();
    let start = DeliverPolicy::ByStartTime { start_time: since };
    read_ordered(
        &stream,
        name,
        start,
        &format!("since {since}"),
        timeout,
        |sequence, message| {
            let headers = message.headers.clone().unwrap_or_default();
            let wanted = headers
                .get("Nats-Msg-Id")
                .is_some_and(|id| msg_ids.contains(id.as_str()));
            if wanted {
                found.push(Stored {
                    sequence,
                    headers,
                    body: message.payload.clone(),
                });
            }
            found.len() < msg_ids.len()
        },
    )
    .await?;
    Ok(found)
}

/// (Re)creates the durable consumer of Herald stream `stream` on its inbox, starting at
/// `start`, acking all up to a position at once.
pub async fn durable_consumer(
    context: &jetstream::Context,
    prefix: &str,
    stream: &str,
    start: u64,
) -> Result<jetstream::consumer::Consumer<pull::Config>, LogError> {
    let name = inbox_name(prefix, stream);
    let durable = format!("{prefix}-{stream}");
    let stream = context
        .get_stream(&name)
        .await
        .map_err(|e| unavailable(&name, e))?;
    // Every host start decides where consumption resumes from its own streams; the
    // server's ack state is only the record of how far it got.
    let _ = stream.delete_consumer(&durable).await;
    stream
        .create_consumer(pull::Config {
            durable_name: Some(durable),
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: start.max(1),
            },
            ack_policy: AckPolicy::All,
            // Never redelivered in practice: the host re-creates the consumer where it is
            // at every start, and acks each input once its cursor passed it.
            ack_wait: Duration::from_secs(3600),
            max_ack_pending: 8192,
            ..Default::default()
        })
        .await
        .map_err(|e| unavailable(&name, e))
}

/// Herald's own records from stored messages (`offset` from `herald-own`); an error names
/// the message.
pub fn own_records(stored: &[Stored], stream: &str) -> Result<Vec<Arc<Record>>, LogError> {
    stored
        .iter()
        .map(|message| {
            wire::record(&message.headers, &message.body, None)
                .map(Arc::new)
                .map_err(|error| {
                    LogError::Unavailable(format!("record {stream}#{}: {error}", message.sequence))
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ack_says_stored_duplicate_fenced_or_refused() {
        let check = |count, reply: &str| check_ack("herald-orders", 4, count, reply.as_bytes());
        assert!(check(1, r#"{"stream":"herald-orders","seq":5}"#).is_ok());
        // A single message JetStream already holds: it names the original's sequence.
        assert!(matches!(
            check(1, r#"{"stream":"herald-orders","seq":2,"duplicate":true}"#),
            Err(AppendError::Duplicate(Some(2)))
        ));
        // An atomic batch holding one: neither which nor where.
        let batch = r#"{"stream":"herald-orders","error":{"code":400,"err_code":10201,"description":"atomic publish batch contains duplicate message id"}}"#;
        assert!(matches!(check(3, batch), Err(AppendError::Duplicate(None))));
        let fenced =
            r#"{"error":{"code":400,"err_code":10071,"description":"wrong last sequence: 6"}}"#;
        assert!(matches!(
            check(1, fenced),
            Err(AppendError::Log(LogError::Fenced { .. }))
        ));
        assert!(matches!(
            check(2, r#"{"stream":"herald-orders","seq":5}"#),
            Err(AppendError::Log(LogError::Unavailable(_)))
        ));
    }
}
