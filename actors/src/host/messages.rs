//! The messages a domain host takes, and what it answers.

use std::sync::Arc;

use actix::prelude::*;
use herald_runtime::hosted::Refusal;
use herald_runtime::log::{Part, Record};
use herald_runtime::{Envelope, Position};
use tokio::sync::oneshot;

use super::DomainHost;
use crate::admission::Admitted;

/// How one proposed ingress event ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Appended at this position.
    Accepted(Position),
    /// Its `source` and `id` were already appended, here; nothing new was appended.
    Duplicate(Position),
}

impl Outcome {
    /// Where the event sits.
    pub fn position(&self) -> &Position {
        match self {
            Self::Accepted(position) | Self::Duplicate(position) => position,
        }
    }
}

/// What a committed group of ingress events answers: each event's outcome, and the log
/// offset that must be durable before the client may be told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// One outcome per event, in the order sent.
    pub outcomes: Vec<Outcome>,
    /// The highest offset among the events (new or original); 0 when nothing to wait for.
    pub sync_to: u64,
}

/// Why a group of ingress events was refused as a whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IngestError {
    /// The event at `index` (within the group sent) was refused; nothing was appended.
    #[error("event {index}: {refusal}")]
    Refused {
        /// Index of the refused event in the group.
        index: usize,
        /// Why.
        refusal: Refusal,
    },
    /// The log did not take the events; nothing was appended.
    #[error("the event log did not take the events: {0}")]
    Log(String),
    /// The domain panicked validating or applying the event at `index`; nothing was
    /// appended and its state was rebuilt.
    #[error("event {index}: the domain panicked admitting it: {message}")]
    Panicked {
        /// Index of the event in the group.
        index: usize,
        /// The panic's message.
        message: String,
    },
    /// The host is not ready (still rebuilding) or is stopping.
    #[error("domain \"{0}\" is not ready to take events")]
    NotReady(String),
    /// The event at `index` has the `source` and `id` of another event that differs from
    /// it; nothing was appended.
    #[error("event {index}: {conflict}", index = .0.index, conflict = .0)]
    IdConflict(IdConflict),
}

/// A resend that is not the same event: its `source` and `id` name an event already
/// taken, which differs in the attributes `differs` lists.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "source \"{event_source}\" and id \"{id}\" already name a different event ({original}), which differs in {}",
    differs.join(", ")
)]
pub struct IdConflict {
    /// Index of the conflicting event in the group.
    pub index: usize,
    /// Its `source`.
    pub event_source: String,
    /// Its `id`.
    pub id: String,
    /// Where the event that holds the `source` and `id` is.
    pub original: Original,
    /// The attributes that differ (`data`, `type`, an extension's name, ...).
    pub differs: Vec<String>,
}

/// Where the event holding a `source` and `id` is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Original {
    /// In the stream, at this position.
    Logged(Position),
    /// Earlier in the same group, at this index.
    Earlier(usize),
}

impl std::fmt::Display for Original {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Logged(position) => write!(f, "at {}#{}", position.stream, position.sequence),
            Self::Earlier(index) => write!(f, "event {index} of the same request"),
        }
    }
}

/// Ingress events for the host's domain: deduplicated, validated and appended all or none.
#[derive(Message)]
#[rtype(result = "Result<Committed, IngestError>")]
pub struct Ingest {
    /// Parsed and schema-checked envelopes, in client order.
    pub events: Vec<Envelope>,
}

/// What the coordinator of a multi-domain batch decided.
#[derive(Debug)]
pub enum Decision {
    /// Every part was appended, in one write: here are this host's records; answer the
    /// outcomes through the sender.
    Commit(
        Vec<Arc<Record>>,
        oneshot::Sender<Result<Committed, IngestError>>,
    ),
    /// Forget what was prepared.
    Abort,
}

/// First phase of a batch spanning several domains: validate and hold, then wait for
/// the [`Decision`] without taking other messages, so no other event slips in between.
/// Answers the host's part of the append, which the coordinator writes with the others'.
#[derive(Message)]
#[rtype(result = "Result<Part, IngestError>")]
pub struct Prepare {
    /// Parsed and schema-checked envelopes, in client order.
    pub events: Vec<Envelope>,
    /// Where the decision arrives; a dropped sender means abort.
    pub decision: oneshot::Receiver<Decision>,
}

/// Signals that the host's inputs grew; the host pulls them from the log.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Wake;

/// Asks the host to handle every input now in the log; answers how many it handled.
#[derive(Message)]
#[rtype(result = "u64")]
pub struct Drain;

/// Asks the host to snapshot its state now if it changed since the last snapshot (at
/// shutdown, so the next start replays nothing); answers once it is written.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Checkpoint;

/// Tells the host to stop: its partition moves to another node (sent after [`Drain`] and
/// [`Checkpoint`], so the next owner has little to replay).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Retire;

// Ingress arrives with the slot it took at the gateway (`crate::admission`).
impl Handler<Admitted<Ingest>> for DomainHost {
    type Result = ();

    fn handle(&mut self, admitted: Admitted<Ingest>, ctx: &mut Self::Context) {
        let Admitted {
            message,
            slot,
            reply,
        } = admitted;
        // Appended with the other requests of its group; the client may have gone by
        // then, its events are appended (or not) all the same.
        self.enqueue_ingest(message.events, slot, reply, ctx);
    }
}

impl Handler<Admitted<Prepare>> for DomainHost {
    type Result = ();

    fn handle(&mut self, admitted: Admitted<Prepare>, ctx: &mut Self::Context) {
        let Admitted {
            message,
            slot,
            reply,
        } = admitted;
        // The host now holds its mailbox until the decision; the slot has done its job.
        let answer = <Self as Handler<Prepare>>::handle(self, message, ctx);
        drop(slot);
        let _ = reply.send(answer);
    }
}
