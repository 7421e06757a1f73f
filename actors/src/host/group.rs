//! Group commit of ingress: requests that reach the host while it is busy are validated
//! one by one as they come (each against the state the ones before it left), then appended
//! together in one write, and each is answered with its own outcome.
//!
//! One append per group instead of one per request is what lets a domain keep up with
//! many clients: the embedded log syncs once per group, and JetStream takes a group as
//! one atomic batch, which costs the server a few milliseconds however small it is.
//!
//! Staged-but-unappended events live only in the state, so anything else the host does
//! (handling an input, a release, a snapshot, a rebuild after a refusal) appends the group
//! first: the log and the state never disagree about what came before.
//!
//! The log may refuse a group for a resend the host's index did not hold (networked mode:
//! JetStream recognises `Nats-Msg-Id`s for its `duplicate_window`, further back than the
//! host remembers). The log then knows the original, so the host stages the group's
//! requests again, as sent: each is answered as a resend, a conflict, or new.

use actix::prelude::*;
use herald_runtime::log::LogError;
use herald_runtime::Envelope;
use tokio::sync::oneshot;

use super::{Committed, DomainHost, IngestError, Staged};
use crate::admission::Slot;

/// Most events one group appends: JetStream's limit for an atomic batch.
pub(crate) const GROUP_MAX: usize = 1000;

/// How many times one group is staged again after the log recognised a resend; each time
/// the log has learned at least one more original, so this only bounds a log that fails
/// to find what it just recognised.
const RESTAGES: u32 = 8;

/// An event's `source` and `id`, hashed: what tells a resend within the group.
pub(crate) fn group_key(event: &Envelope) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (&event.source, &event.id).hash(&mut hasher);
    hasher.finish()
}

/// A request staged into the state, waiting for its group's append.
pub(crate) struct Waiting {
    staged: Staged,
    count: usize,
    /// The request's events as sent, to stage again if the log recognises a resend.
    events: Vec<Envelope>,
    reply: oneshot::Sender<Result<Committed, IngestError>>,
    /// Held until the answer: the domain's ingress bound covers waiting requests too.
    slot: Slot,
}

/// Appends the waiting group; sent to itself when the first request of a group is staged,
/// so it runs once the requests already in the mailbox are staged too.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct FlushIngress;

impl DomainHost {
    /// Stages `events` into the group, or answers at once (not ready, refused, or every
    /// event a duplicate).
    pub(crate) fn enqueue_ingest(
        &mut self,
        events: Vec<Envelope>,
        slot: Slot,
        reply: oneshot::Sender<Result<Committed, IngestError>>,
        ctx: &mut Context<Self>,
    ) {
        if let Err(error) = self.ready_check() {
            let _ = reply.send(Err(error));
            return;
        }
        // A resend of an event still in the group is found in the log only once the group
        // is appended; so is the group's room.
        let resends = events.iter().any(|event| self.in_group(event));
        if resends || self.group_events + events.len() > GROUP_MAX {
            self.flush_ingress();
            // The flush may have failed and left the host unable to go on.
            if let Err(error) = self.ready_check().and(self.usable()) {
                let _ = reply.send(Err(error));
                self.after_step(ctx);
                return;
            }
        }
        let first = self.group.is_empty();
        if self.stage_request(events, slot, reply) {
            if first {
                ctx.notify(FlushIngress);
            }
        } else {
            self.after_step(ctx);
        }
    }

    /// Stages one request into the group, or answers it at once (refused, or every event
    /// a resend); true when it joined the group.
    fn stage_request(
        &mut self,
        events: Vec<Envelope>,
        slot: Slot,
        reply: oneshot::Sender<Result<Committed, IngestError>>,
    ) -> bool {
        match self.stage(events.clone()) {
            Err(error) => {
                let _ = reply.send(Err(error));
                false
            }
            Ok(staged) if staged.appends.is_empty() => {
                let _ = reply.send(self.finish(staged, Ok(Vec::new())));
                false
            }
            Ok(staged) => {
                let count = staged.appends.len();
                self.group_events += count;
                self.group_keys
                    .extend(staged.appends.iter().map(|event| group_key(event)));
                self.group.push(Waiting {
                    staged,
                    count,
                    events,
                    reply,
                    slot,
                });
                true
            }
        }
    }

    fn in_group(&self, event: &Envelope) -> bool {
        // The set answers the common case (not there) without comparing to every event
        // staged: a scan per request made a full group quadratic.
        if !self.group_keys.contains(&group_key(event)) {
            return false;
        }
        self.group.iter().any(|waiting| {
            waiting
                .staged
                .appends
                .iter()
                .any(|staged| staged.source == event.source && staged.id == event.id)
        })
    }

    /// Appends every waiting request in one write and answers each; on failure every one
    /// is refused and the state goes back to the log's.
    pub(crate) fn flush_ingress(&mut self) {
        self.flush_group(0);
    }

    fn flush_group(&mut self, restaged: u32) {
        if self.group.is_empty() {
            return;
        }
        let mut group = std::mem::take(&mut self.group);
        self.group_events = 0;
        self.group_keys.clear();
        if let Err(error) = self.usable() {
            // A host that could not rebuild its state appends nothing more.
            for waiting in group {
                let _ = waiting.reply.send(Err(error.clone()));
            }
            return;
        }
        let appends: Vec<Envelope> = group
            .iter_mut()
            .flat_map(|waiting| std::mem::take(&mut waiting.staged.appends))
            .collect();
        match self.bus.append(self.stream, self.cursor, appends) {
            Ok(records) => {
                let mut rest = records.as_slice();
                for waiting in group {
                    let (mine, after) = rest.split_at(waiting.count.min(rest.len()));
                    rest = after;
                    let answer = self.finish(waiting.staged, Ok(mine.to_vec()));
                    let _ = waiting.reply.send(answer);
                }
            }
            Err(LogError::Duplicate { .. }) if restaged < RESTAGES => {
                // Nothing was appended, and the log now holds the original for `find`.
                if !self.restore() {
                    for waiting in group {
                        let _ = waiting
                            .reply
                            .send(Err(IngestError::NotReady(self.name().to_owned())));
                    }
                    return;
                }
                for waiting in group {
                    self.stage_request(waiting.events, waiting.slot, waiting.reply);
                }
                self.flush_group(restaged + 1);
            }
            Err(error) => {
                if let LogError::Fenced { .. } = error {
                    self.fenced(&error);
                }
                let message = error.to_string();
                let mut waiting = group.into_iter();
                if let Some(first) = waiting.next() {
                    // `finish` puts the state back to the log's, once for the whole group.
                    let answer = self.finish(first.staged, Err(message.clone()));
                    let _ = first.reply.send(answer);
                }
                for other in waiting {
                    let _ = other.reply.send(Err(IngestError::Log(message.clone())));
                }
            }
        }
    }
}

impl DomainHost {
    /// Refuses work once a rebuild failed or another writer took the domain's streams.
    fn usable(&self) -> Result<(), IngestError> {
        match self.broken || self.fenced {
            true => Err(IngestError::NotReady(self.name().to_owned())),
            false => Ok(()),
        }
    }
}

impl Handler<FlushIngress> for DomainHost {
    type Result = ();

    fn handle(&mut self, _: FlushIngress, ctx: &mut Self::Context) {
        self.flush_ingress();
        self.after_step(ctx);
    }
}
