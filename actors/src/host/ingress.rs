//! Ingress: staging clients' events into the state (deduplication, `validate`, `apply`),
//! the two-phase `Prepare` of a batch across hosts, and group commit.
//!
//! Group commit: requests that reach the host while it is busy are validated
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
//! Pipelining (networked mode): a group is *sent* when flushed, a single-event request as
//! one message of its own and requests of several events together in atomic batches (each
//! request whole within one), and the host
//! goes on staging the next group while JetStream acknowledges; each request is answered
//! once its unit is acknowledged, in order. A refused unit refuses every unit sent after it
//! and the log takes no more until the state is rebuilt: the host answers what was stored,
//! refuses (503) what was not or may not have been, stages again the requests that were
//! resends or never sent, and rebuilds (`restore`). Every 2xx follows an acknowledgement.
//!
//! The log may refuse a group for a resend the host's index did not hold (networked mode:
//! JetStream recognises `Nats-Msg-Id`s for its `duplicate_window`, further back than the
//! host remembers). The log then knows the original, so the host stages the group's
//! requests again, as sent: each is answered as a resend, a conflict, or new.

use actix::prelude::*;
use herald_runtime::log::LogError;
use herald_runtime::Envelope;
use tokio::sync::oneshot;

use std::collections::HashSet;
use std::sync::Arc;

use futures_util::future::{FutureExt as _, Shared};
use herald_runtime::log::{Acked, Part, Record};
use herald_runtime::Position;
use tracing::{error, warn};

use super::messages::{Decision, IdConflict, Ingest, Original, Outcome, Prepare};
use super::{faults, Committed, DomainHost, IngestError};
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

/// A request sent to the log with its group, answered once its unit is acknowledged.
pub(crate) struct Sent {
    answer: Result<Committed, IngestError>,
    events: Vec<Envelope>,
    reply: oneshot::Sender<Result<Committed, IngestError>>,
    slot: Slot,
    /// Which unit of its group's append holds its events.
    unit: usize,
}

/// [`Sent::unit`] of a request that sent nothing itself: every event resends one that may
/// still be in flight, so it is answered with the group before it.
const FOLLOWS: usize = usize::MAX;

/// A group sent to the log and not yet answered.
pub(crate) struct InFlight {
    acked: Shared<Acked>,
    requests: Vec<Sent>,
    /// How many times these requests were staged again already.
    restaged: u32,
    /// Whether it holds an atomic batch.
    batch: bool,
    /// Whose events these are.
    origin: Origin,
}

/// Whose events a group in flight holds.
#[derive(Clone, Copy)]
enum Origin {
    /// Clients' (ingress): each request is answered with its outcome.
    Clients,
    /// The host's own (reactions, fired timers), which the state already holds: a refusal
    /// rebuilds it, and for reactions rewinds the cursor before `reaction`, the input
    /// they answer.
    Own { reaction: Option<u64> },
}

/// What answering the acknowledged groups found: a refusal, and requests to stage again.
#[derive(Default)]
pub(super) struct Refusal {
    /// The first refusal that was not a recognised resend.
    failed: Option<LogError>,
    /// Requests that stored nothing and can be staged again, with their count of tries.
    restage: Vec<(Sent, u32)>,
    /// Whether the log refused anything (then it takes nothing until the state is rebuilt).
    refused: bool,
    /// The cursor to go back to: before the first input whose reactions were refused.
    rewind: Option<u64>,
}

/// A group in flight was acknowledged (or refused): answer what is in.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Acknowledged;

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
        let sent = events.clone();
        match self.stage(sent) {
            Err(error) => {
                let _ = reply.send(Err(error));
                false
            }
            Ok(staged) if staged.appends.is_empty() => {
                let answer = self.finish(staged, Ok(Vec::new()));
                let sync_to = answer.as_ref().map_or(0, |committed| committed.sync_to);
                let in_flight = self
                    .acked
                    .as_ref()
                    .is_some_and(|acked| acked.durable() < sync_to);
                match self.in_flight.back().map(|last| last.acked.clone()) {
                    // Every event is a resend of one that may still be in flight: answered
                    // once everything sent before it is, and staged again if any of that
                    // was refused (the original may be gone; the resend is then new).
                    Some(last) if in_flight => self.in_flight.push_back(InFlight {
                        acked: last,
                        requests: vec![Sent {
                            answer,
                            events,
                            reply,
                            slot,
                            unit: FOLLOWS,
                        }],
                        restaged: 0,
                        batch: false,
                        origin: Origin::Clients,
                    }),
                    _ => {
                        let _ = reply.send(answer);
                    }
                }
                false
            }
            Ok(staged) => {
                let count = staged.appends.len();
                self.group_events += count;
                self.group_keys.extend(staged.appends.iter().map(group_key));
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
        // A single event is one message of its own; requests of several events share
        // atomic batches (JetStream commits one at a time, a few milliseconds each,
        // however small), each request whole within one.
        let mut units: Vec<Vec<Envelope>> = Vec::new();
        let mut unit_of = Vec::with_capacity(group.len());
        let mut open_batch = None;
        for waiting in group.iter_mut() {
            let events = std::mem::take(&mut waiting.staged.appends);
            let joins = open_batch.filter(|&unit: &usize| {
                events.len() > 1 && units[unit].len() + events.len() <= GROUP_MAX
            });
            match joins {
                Some(unit) => units[unit].extend(events),
                None => {
                    open_batch = (events.len() > 1).then_some(units.len());
                    units.push(events);
                }
            }
            unit_of.push(joins.unwrap_or(units.len() - 1));
        }
        let batch = units.iter().any(|unit| unit.len() > 1);
        match self.bus.append_pipelined(self.stream, self.cursor, units) {
            Ok((records, acked)) => {
                let mut rest = records.as_slice();
                let mut requests = Vec::with_capacity(group.len());
                for (waiting, unit) in group.into_iter().zip(unit_of) {
                    let (mine, after) = rest.split_at(waiting.count.min(rest.len()));
                    rest = after;
                    requests.push(Sent {
                        answer: self.finish(waiting.staged, Ok(mine.to_vec())),
                        events: waiting.events,
                        reply: waiting.reply,
                        slot: waiting.slot,
                        unit,
                    });
                }
                let acked = acked.shared();
                self.batches_in_flight += usize::from(batch);
                self.in_flight.push_back(InFlight {
                    acked: acked.clone(),
                    requests,
                    restaged,
                    batch,
                    origin: Origin::Clients,
                });
                if acked.clone().now_or_never().is_some() {
                    // Acknowledged already (a log that does not pipeline): answer now.
                    let refusal = self.answer_acknowledged(false);
                    self.after_refusal(refusal);
                } else if let Some(host) = self.me.clone() {
                    actix::spawn(async move {
                        acked.await;
                        host.do_send(Acknowledged);
                    });
                }
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

    /// Answers the groups in flight whose acknowledgements are in, oldest first (with
    /// `wait`, every one, waiting for each): what was stored is answered; what was refused
    /// is refused, or kept to be staged again when it stored nothing and can be.
    pub(super) fn answer_acknowledged(&mut self, wait: bool) -> Refusal {
        let mut refusal = Refusal::default();
        while let Some(first) = self.in_flight.front() {
            let outcomes = match first.acked.peek() {
                Some(outcomes) => outcomes.clone(),
                // The log answers every append within its own timeouts; this bound only
                // keeps a host from waiting forever on one that does not.
                None if wait => block_on(first.acked.clone(), SETTLE_LIMIT).unwrap_or_else(|| {
                    let count = first.requests.iter().map(|sent| sent.unit).filter(|u| *u != FOLLOWS).max().map_or(1, |u| u + 1);
                    vec![
                        Err(LogError::Unavailable(format!(
                            "the append was not answered within {SETTLE_LIMIT:?}; whether it was stored is unknown until the stream is read again"
                        )));
                        count
                    ]
                }),
                None => match first.acked.clone().now_or_never() {
                    Some(outcomes) => outcomes,
                    None => break,
                },
            };
            let Some(entry) = self.in_flight.pop_front() else {
                break;
            };
            self.batches_in_flight -= usize::from(entry.batch);
            if let Origin::Own { reaction } = entry.origin {
                // One group, so one outcome.
                if let Some(Err(error)) = outcomes.first() {
                    refusal.refused = true;
                    if let Some(input) = reaction {
                        refusal.rewind =
                            Some(refusal.rewind.map_or(input - 1, |at| at.min(input - 1)));
                    }
                    refusal.failed.get_or_insert(error.clone());
                }
                continue;
            }
            for sent in entry.requests {
                let outcome = match sent.unit {
                    FOLLOWS if outcomes.iter().all(Result::is_ok) => Ok(()),
                    FOLLOWS => Err(LogError::NotStored(
                        "an append sent before this resend was refused".into(),
                    )),
                    unit => outcomes.get(unit).cloned().unwrap_or_else(|| {
                        Err(LogError::Unavailable(
                            "the log answered fewer units than were sent".into(),
                        ))
                    }),
                };
                match outcome {
                    Ok(()) => {
                        let _ = sent.reply.send(sent.answer);
                    }
                    // Nothing was stored: a resend (the log now holds the original for
                    // `find`), or refused with an earlier append; staged again.
                    Err(LogError::Duplicate { .. } | LogError::NotStored(_))
                        if entry.restaged < RESTAGES =>
                    {
                        refusal.refused = true;
                        refusal.restage.push((sent, entry.restaged + 1));
                    }
                    Err(error) => {
                        refusal.refused = true;
                        let _ = sent.reply.send(Err(IngestError::Log(error.to_string())));
                        refusal.failed.get_or_insert(error);
                    }
                }
            }
        }
        refusal
    }

    /// Sends a handler's reactions to input `input` without waiting for the log: their
    /// acknowledgement is checked with the groups in flight, and a refusal rewinds the
    /// cursor to handle the input again on the rebuilt state.
    pub(super) fn append_reactions(
        &mut self,
        input: u64,
        emitted: Vec<Envelope>,
    ) -> Result<Vec<Arc<Record>>, LogError> {
        self.append_own(input, emitted, Some(input))
    }

    /// Sends events of the host's own making (reactions, fired timers) with `consumed`:
    /// answered with the groups in flight; a refusal rebuilds the state, and rewinds the
    /// cursor before `reaction` when they answer that input.
    pub(super) fn append_own(
        &mut self,
        consumed: u64,
        emitted: Vec<Envelope>,
        reaction: Option<u64>,
    ) -> Result<Vec<Arc<Record>>, LogError> {
        let (records, acked) = self
            .bus
            .append_pipelined(self.stream, consumed, vec![emitted])?;
        let acked = acked.shared();
        self.in_flight.push_back(InFlight {
            acked: acked.clone(),
            requests: Vec::new(),
            restaged: 0,
            batch: false,
            origin: Origin::Own { reaction },
        });
        let stored = acked
            .clone()
            .now_or_never()
            .is_some_and(|outcomes| outcomes.iter().all(Result::is_ok));
        if stored && self.in_flight.len() == 1 {
            // Acknowledged already (a log that does not pipeline), with nothing before it.
            // Anything else is answered through the mailbox: the caller holds the state's
            // write lock, which a rebuild would need.
            self.in_flight.pop_back();
        } else if let Some(host) = self.me.clone() {
            actix::spawn(async move {
                acked.await;
                host.do_send(Acknowledged);
            });
        }
        Ok(records)
    }

    /// Answers every group in flight, waiting for each; recovers from a refusal.
    pub(super) fn settle(&mut self) {
        let refusal = self.answer_acknowledged(true);
        self.after_refusal(refusal);
    }

    /// After a refusal: the state was built on appends the log does not hold, so it is
    /// rebuilt, and the requests that stored nothing are staged again on it.
    fn after_refusal(&mut self, refusal: Refusal) {
        if refusal.refused {
            self.rebuild_after(refusal);
        }
    }

    /// Rebuilds the state from the log after `refusal` (or after a failure of the host's
    /// own, with none), then stages again what can be.
    fn rebuild_after(&mut self, mut refusal: Refusal) -> bool {
        let mut refusal_more = self.answer_acknowledged(true);
        refusal.refused |= refusal_more.refused;
        refusal.restage.append(&mut refusal_more.restage);
        if refusal.failed.is_none() {
            refusal.failed = refusal_more.failed;
        }
        refusal.rewind = match (refusal.rewind, refusal_more.rewind) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if refusal.refused {
            // The group staged meanwhile was built on the refused appends: staged again
            // on the rebuilt state rather than appended.
            for waiting in std::mem::take(&mut self.group) {
                let sent = Sent {
                    answer: Err(IngestError::NotReady(self.name().to_owned())),
                    events: waiting.events,
                    reply: waiting.reply,
                    slot: waiting.slot,
                    unit: 0,
                };
                refusal.restage.push((sent, 0));
            }
            self.group_events = 0;
            self.group_keys.clear();
        } else {
            // The group's staged events are in the state but not yet in the log: append
            // them first, so the rebuild keeps them (and their clients get their answers).
            self.flush_ingress();
            let mut flushed = self.answer_acknowledged(true);
            if flushed.refused {
                return self.rebuild_after(std::mem::take(&mut flushed));
            }
        }
        self.bus.log().reopen();
        if let Some(rewind) = refusal.rewind {
            // Inputs whose reactions the log refused are handled again, unless what it
            // holds says they landed after all (an acknowledgement lost, not a refusal).
            self.cursor = self.cursor.min(rewind);
            if let Ok(limit) = herald_runtime::replay::replay_limit(self.bus.log(), self.stream) {
                if limit != u64::MAX && limit > self.cursor {
                    self.cursor = limit;
                }
            }
        }
        let rebuilt = self.rebuild();
        self.publish_positions();
        if let Err(error) = rebuilt {
            error!(domain = self.name(), %error, "rebuild from the log failed; the host stops and is started again");
            self.view.set_ready(false);
            self.broken = true;
        }
        if let Some(error @ LogError::Fenced { .. }) = &refusal.failed {
            self.fenced(error);
        }
        let restaged = refusal.restage.iter().map(|(_, tries)| *tries).max();
        for (sent, _) in refusal.restage {
            if self.broken {
                let _ = sent
                    .reply
                    .send(Err(IngestError::NotReady(self.name().to_owned())));
            } else {
                self.stage_request(sent.events, sent.slot, sent.reply);
            }
        }
        if let Some(restaged) = restaged {
            self.flush_group(restaged);
        }
        !self.broken
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

impl Handler<Acknowledged> for DomainHost {
    type Result = ();

    fn handle(&mut self, _: Acknowledged, ctx: &mut Self::Context) {
        let cursor = self.cursor;
        let refusal = self.answer_acknowledged(false);
        self.after_refusal(refusal);
        if self.cursor < cursor {
            // Inputs whose reactions were refused are handled again, now.
            ctx.notify(super::Wake);
        }
        if self.batches_in_flight == 0 {
            // A group held back behind a batch goes now, as one batch.
            self.flush_ingress();
        }
        self.after_step(ctx);
    }
}

impl Handler<FlushIngress> for DomainHost {
    type Result = ();

    fn handle(&mut self, _: FlushIngress, ctx: &mut Self::Context) {
        // While an atomic batch is being committed, a group with requests of several
        // events waits and grows: JetStream commits batches one at a time per stream, at
        // a few milliseconds each, so fewer larger ones carry more.
        let holds_batch = self.group.iter().any(|waiting| waiting.count > 1);
        if !(holds_batch && self.batches_in_flight > 0) {
            self.flush_ingress();
        }
        self.after_step(ctx);
    }
}

impl DomainHost {
    /// Deduplicates and admits `events` into the state; returns what to append.
    pub(super) fn stage(&mut self, events: Vec<Envelope>) -> Result<Staged, IngestError> {
        let mut staged = Staged::default();
        let log = self.bus.log();
        // Every event is looked up before any is admitted: a log that cannot tell (its
        // index unreadable) fails the request with nothing to undo, where a rebuild from
        // that same log would likely fail too and stop the host.
        let mut found = Vec::with_capacity(events.len());
        for event in &events {
            match log.find(self.stream, &event.source, &event.id) {
                Ok(logged) => found.push(logged),
                Err(error) => return Err(IngestError::Log(error.to_string())),
            }
        }
        let view = self.view.clone();
        let mut domain = view.write();
        let mut admitted_any = false;
        // Keys of the events staged so far: an earlier one is searched for only on a hit.
        let mut keys = HashSet::with_capacity(events.len());
        for (index, (event, logged)) in events.into_iter().zip(found).enumerate() {
            let key = group_key(&event);
            let repeated = keys.contains(&key);
            // Deduplication runs before validation: a resent event is not a conflict. A
            // resend must be the same event, though: another event under a taken `source`
            // and `id` refuses the whole group rather than being dropped as a duplicate.
            let same = |e: &Envelope| e.source == event.source && e.id == event.id;
            let held = match &logged {
                Some(original) => Some((
                    &original.envelope,
                    Original::Logged(original.envelope.position()),
                )),
                None if !repeated => None,
                None => staged.appends.iter().position(same).map(|earlier| {
                    let at = staged
                        .slots
                        .iter()
                        .position(|slot| matches!(slot, Answer::New(i) if *i == earlier))
                        .unwrap_or(earlier);
                    (&staged.appends[earlier], Original::Earlier(at))
                }),
            };
            if let Some((held, original)) = held {
                let differs = herald_runtime::log::differences(held, &event);
                if !differs.is_empty() {
                    drop(domain);
                    if admitted_any {
                        self.restore();
                    }
                    return Err(IngestError::IdConflict(IdConflict {
                        index,
                        event_source: event.source,
                        id: event.id,
                        original,
                        differs,
                    }));
                }
            }
            if let Some(original) = logged {
                staged.sync_to = staged.sync_to.max(original.offset);
                staged
                    .slots
                    .push(Answer::Duplicate(original.envelope.position()));
                continue;
            }
            if let Some(earlier) = repeated
                .then(|| staged.appends.iter().position(same))
                .flatten()
            {
                staged.slots.push(Answer::DuplicateOfStaged(earlier));
                continue;
            }
            match faults::caught(|| domain.admit(&event)) {
                Ok(Ok(())) => {}
                Ok(Err(refusal)) => {
                    drop(domain);
                    if admitted_any {
                        self.restore();
                    }
                    return Err(IngestError::Refused { index, refusal });
                }
                Err(message) => {
                    // The domain's validate or apply panicked, maybe half-way: rebuild.
                    self.view.mark_pending();
                    drop(domain);
                    error!(domain = self.name(), index, %message, "domain panicked admitting an ingress event");
                    self.restore();
                    return Err(IngestError::Panicked { index, message });
                }
            }
            if !admitted_any {
                // Marked while the write lock is held: no query reads this state as settled.
                self.view.mark_pending();
            }
            admitted_any = true;
            staged.slots.push(Answer::New(staged.appends.len()));
            staged.appends.push(event);
            keys.insert(key);
        }
        Ok(staged)
    }

    /// Appends what was staged; on failure the state goes back to the log's.
    pub(super) fn commit(&mut self, mut staged: Staged) -> Result<Committed, IngestError> {
        let appends = std::mem::take(&mut staged.appends);
        let records = if appends.is_empty() {
            Ok(Vec::new())
        } else {
            self.bus.append(self.stream, self.cursor, appends)
        };
        self.finish(staged, records.map_err(|error| error.to_string()))
    }

    /// Answers staged events once their records were appended (or not).
    pub(super) fn finish(
        &mut self,
        staged: Staged,
        records: Result<Vec<Arc<Record>>, String>,
    ) -> Result<Committed, IngestError> {
        let Staged {
            slots, mut sync_to, ..
        } = staged;
        let records = match records {
            Ok(records) => records,
            Err(error) => {
                self.restore();
                return Err(IngestError::Log(error));
            }
        };
        self.note_own(&records);
        if let Some(last) = records.last() {
            sync_to = sync_to.max(last.offset);
        }
        let positions: Vec<Position> = records.iter().map(|r| r.envelope.position()).collect();
        self.publish_positions();
        let outcomes = slots
            .into_iter()
            .map(|slot| match slot {
                Answer::Duplicate(position) => Outcome::Duplicate(position),
                Answer::DuplicateOfStaged(index) => Outcome::Duplicate(positions[index].clone()),
                Answer::New(index) => Outcome::Accepted(positions[index].clone()),
            })
            .collect();
        self.snapshots_note(records.len() as u64);
        Ok(Committed { outcomes, sync_to })
    }

    /// Admitted but unappended events, or a failed handler, changed the state: rebuild it
    /// from the log. False if that failed: the host then stops at the end of the message,
    /// and the supervisor starts a new one, which recovers from the files.
    pub(super) fn restore(&mut self) -> bool {
        self.rebuild_after(Refusal::default())
    }

    pub(super) fn ready_check(&self) -> Result<(), IngestError> {
        if self.view.is_ready() && !self.fenced {
            Ok(())
        } else {
            Err(IngestError::NotReady(self.name().to_owned()))
        }
    }
}

/// What the host prepared for one group of ingress events.
#[derive(Default)]
pub(super) struct Staged {
    slots: Vec<Answer>,
    appends: Vec<Envelope>,
    /// The highest offset of an original that a duplicate points at.
    sync_to: u64,
}

pub(super) enum Answer {
    Duplicate(Position),
    DuplicateOfStaged(usize),
    New(usize),
}

impl Handler<Ingest> for DomainHost {
    type Result = Result<Committed, IngestError>;

    fn handle(&mut self, ingest: Ingest, ctx: &mut Self::Context) -> Self::Result {
        self.flush_ingress();
        self.ready_check()?;
        let staged = self.stage(ingest.events)?;
        let committed = self.commit(staged);
        self.after_step(ctx);
        committed
    }
}

impl Handler<Prepare> for DomainHost {
    type Result = Result<Part, IngestError>;

    fn handle(&mut self, prepare: Prepare, ctx: &mut Self::Context) -> Self::Result {
        self.flush_ingress();
        self.ready_check()?;
        let mut staged = self.stage(prepare.events)?;
        let part = Part {
            stream: self.name().to_owned(),
            consumed: self.cursor,
            events: std::mem::take(&mut staged.appends),
        };
        let admitted = !part.events.is_empty();
        // Hold the mailbox until the coordinator decides: nothing may slip in between.
        ctx.wait(prepare.decision.into_actor(self).map(
            move |decision, host, ctx| match decision {
                Ok(Decision::Commit(records, reply)) => {
                    let _ = reply.send(host.finish(staged, Ok(records)));
                    host.after_step(ctx);
                }
                Ok(Decision::Abort) | Err(_) => {
                    warn!(domain = host.name(), "prepared batch aborted");
                    if admitted {
                        host.restore();
                    }
                }
            },
        ));
        Ok(part)
    }
}

/// The longest the host waits for its appends in flight before it rebuilds, hands off or
/// stops.
const SETTLE_LIMIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Runs `future` to its end on this thread, for at most `limit` (`None` after it). Only
/// for futures another thread completes (an acknowledgement the NATS thread receives).
fn block_on<F: std::future::Future>(future: F, limit: std::time::Duration) -> Option<F::Output> {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let deadline = std::time::Instant::now() + limit;
    let waker = std::task::Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut context = std::task::Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let std::task::Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return Some(output);
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return None;
        }
        std::thread::park_timeout(left);
    }
}
