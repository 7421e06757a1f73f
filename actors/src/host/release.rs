//! An operator's retry or skip of a dead letter, which releases its key.
//!
//! A release is one append, all or nothing: the `retried` or `skipped` record in the
//! dead-letter stream, and the reactions of every input it lets through: the parked input
//! itself (on retry), then the inputs that waited behind it, in log order. Each of those is
//! handled once; one that fails is parked in the same append and holds the key again, with
//! the rest still waiting behind it. Replay reads the same append and does the same.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use herald_runtime::deadletter::{self, Held, InputRef, Parked, RETRIED, SKIPPED};
use herald_runtime::envelope::now_rfc3339;
use herald_runtime::log::Part;
use herald_runtime::replay::read_at;
use herald_runtime::Envelope;
use herald_runtime::{latency, trace};
use tracing::{error, info, warn};

use super::faults::{guarded, Failure};
use super::{DomainHost, Wake};

/// What an operator does with a dead letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReleaseAction {
    /// Run the handler on the parked input again (after a fix).
    Retry,
    /// Give up on the parked input.
    Skip,
}

/// Retry or skip the dead letter with this id (`<stream>-<sequence>` of its input).
#[derive(Message)]
#[rtype(result = "Result<ReleaseOutcome, ReleaseError>")]
pub struct Release {
    /// The dead letter's id.
    pub id: String,
    /// What to do.
    pub action: ReleaseAction,
}

/// What a release did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseOutcome {
    /// Inputs handled by it (the retried one and those that waited).
    pub handled: usize,
    /// An input that failed in it and is parked now, holding the key again.
    pub parked_again: Option<String>,
    /// Inputs still waiting behind that one.
    pub still_waiting: usize,
    /// The log offset to be durable before answering.
    pub sync_to: u64,
}

/// Why a release did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReleaseError {
    /// No parked input has that id.
    #[error("no dead letter \"{id}\" in domain \"{domain}\"")]
    NotFound {
        /// The domain.
        domain: String,
        /// The id asked for.
        id: String,
    },
    /// The retried input failed again; it stays parked.
    #[error("dead letter \"{id}\" failed again and stays parked: {error}")]
    StillFailing {
        /// The dead letter.
        id: String,
        /// The handler's error.
        error: String,
        /// The offset of the record of the failed retry, to be durable before answering.
        sync_to: u64,
    },
    /// The log did not take the release; nothing changed.
    #[error("the event log did not take the release: {0}")]
    Log(String),
    /// The domain is not ready.
    #[error("domain \"{0}\" is not ready")]
    NotReady(String),
}

/// How one pass over a release ended.
enum Pass {
    Done(ReleaseOutcome),
    /// The input at this offset failed: start again, parking it without running it.
    Failed(u64, Failure),
}

impl DomainHost {
    fn release(&mut self, id: &str, action: ReleaseAction) -> Result<ReleaseOutcome, ReleaseError> {
        let held = self
            .holds
            .find(id)
            .cloned()
            .ok_or_else(|| ReleaseError::NotFound {
                domain: self.name().to_owned(),
                id: id.to_owned(),
            })?;
        let mut park = None;
        loop {
            match self.release_pass(&held, action, park.take()) {
                Ok(Pass::Done(outcome)) => return Ok(outcome),
                Ok(Pass::Failed(offset, failure)) => {
                    // The handler may have changed the state before failing.
                    if !self.restore() {
                        return Err(ReleaseError::Log(
                            "the state could not be rebuilt; the domain restarts".into(),
                        ));
                    }
                    if action == ReleaseAction::Retry && offset == held.parked.input.offset {
                        return Err(self.park_again(&held, failure));
                    }
                    park = Some((offset, failure));
                }
                Err(error) => {
                    self.restore();
                    return Err(error);
                }
            }
        }
    }

    /// Handles the inputs `held` lets through, in one append; `park` names one known to
    /// fail, which is parked instead of run.
    fn release_pass(
        &mut self,
        held: &Held,
        action: ReleaseAction,
        park: Option<(u64, Failure)>,
    ) -> Result<Pass, ReleaseError> {
        let name = self.name();
        let log = self.bus.shared_log();
        let now = now_rfc3339();
        let kind = match action {
            ReleaseAction::Retry => RETRIED,
            ReleaseAction::Skip => SKIPPED,
        };
        let mut items: VecDeque<u64> = held.waiting.clone();
        if action == ReleaseAction::Retry {
            items.push_front(held.parked.input.offset);
        }
        let mut dead = vec![deadletter::released_envelope(
            name,
            kind,
            &held.parked.input,
            &now,
        )];
        let mut reactions: Vec<Envelope> = Vec::new();
        let mut handled = 0;
        // Each traced handling, its input and how many reactions it added: recorded once
        // they are stored.
        let mut traced = Vec::new();
        let mut parked_again: Option<(Parked, VecDeque<u64>)> = None;
        let view = self.view.clone();
        let mut domain = view.write();
        view.mark_pending();
        while let Some(offset) = items.pop_front() {
            let input = read_at(log.as_ref(), offset)
                .map_err(|error| ReleaseError::Log(error.to_string()))?;
            let Some(input) = input else { continue };
            if let Some((_, failure)) = park.as_ref().filter(|(at, _)| *at == offset) {
                let parked = Parked {
                    input: InputRef::of(&input),
                    error: failure.describe(),
                    attempts: 1,
                    parked_at: now.clone(),
                };
                dead.push(deadletter::parked_envelope(
                    name,
                    &parked,
                    input.envelope.traceparent.clone(),
                ));
                parked_again = Some((parked, items));
                break;
            }
            // The emit rule holds here as live: a partition's reactions stay in it.
            let handling = trace::Handling::begin(self.entry.name, &input.envelope);
            let started = Instant::now();
            let handled_now = guarded(|| domain.handle(&input.envelope, &now));
            latency::observe_since(&self.handler_latency, started);
            let placed =
                handled_now.and_then(|emitted| self.place_reactions(&emitted).map(|()| emitted));
            match placed {
                Ok(emitted) => {
                    if let Some(handling) = handling {
                        traced.push((handling, Arc::clone(&input), emitted.len()));
                    }
                    // Applied before the append, in order, as the next input's handler must
                    // see them; a failed append rebuilds the state from the log.
                    for event in &emitted {
                        if let Err(error) = domain.apply(event) {
                            error!(domain = name, %error, "an emitted event does not decode");
                        }
                    }
                    reactions.extend(emitted);
                    handled += 1;
                }
                Err(failure) => return Ok(Pass::Failed(offset, failure)),
            }
        }
        drop(domain);
        let mut parts = vec![Part {
            stream: deadletter::stream(name),
            consumed: self.cursor,
            events: dead,
        }];
        if !reactions.is_empty() {
            parts.push(Part {
                stream: name.to_owned(),
                consumed: self.cursor,
                events: reactions,
            });
        }
        let records: Vec<_> = log
            .append_all(parts)
            .map_err(|error| ReleaseError::Log(error.to_string()))?
            .into_iter()
            .flatten()
            .collect();
        self.note_dead(&records);
        let own: Vec<_> = records
            .iter()
            .filter(|record| record.envelope.stream == name)
            .cloned()
            .collect();
        self.note_own(&own);
        let mut stored = own.iter().map(|record| &record.envelope);
        for (handling, input, count) in traced {
            handling.record(&input.envelope, stored.by_ref().take(count));
        }
        let sync_to = records.last().map_or(0, |record| record.offset);
        self.holds.release(&held.parked.input.key);
        let outcome = match parked_again {
            Some((parked, waiting)) => {
                let outcome = ReleaseOutcome {
                    handled,
                    parked_again: Some(parked.input.dead_letter_id()),
                    still_waiting: waiting.len(),
                    sync_to,
                };
                self.holds.park(parked, waiting);
                outcome
            }
            None => ReleaseOutcome {
                handled,
                parked_again: None,
                still_waiting: 0,
                sync_to,
            },
        };
        self.publish_positions();
        self.publish_dead_letters();
        self.snapshots_note(records.len() as u64);
        info!(
            domain = name,
            dead_letter = %held.parked.input.dead_letter_id(),
            action = kind,
            handled = outcome.handled,
            "dead letter released"
        );
        Ok(Pass::Done(outcome))
    }

    /// A retry failed: record it, the key stays held.
    fn park_again(&mut self, held: &Held, failure: Failure) -> ReleaseError {
        let id = held.parked.input.dead_letter_id();
        let parked = Parked {
            input: held.parked.input.clone(),
            error: failure.describe(),
            attempts: held.parked.attempts + 1,
            parked_at: now_rfc3339(),
        };
        let error = parked.error.clone();
        match self.park(parked, self.cursor, None) {
            Ok(sync_to) => {
                warn!(domain = self.name(), dead_letter = %id, %error, "retried dead letter failed again");
                ReleaseError::StillFailing { id, error, sync_to }
            }
            Err(error) => ReleaseError::Log(error.to_string()),
        }
    }
}

impl Handler<Release> for DomainHost {
    type Result = Result<ReleaseOutcome, ReleaseError>;

    fn handle(&mut self, release: Release, ctx: &mut Self::Context) -> Self::Result {
        self.flush_ingress();
        // A dead letter's `consumed` must not pass reactions the log may still refuse.
        self.settle();
        if !self.view.is_ready() {
            return Err(ReleaseError::NotReady(self.name().to_owned()));
        }
        let outcome = self.release(&release.id, release.action);
        if self.blocked && !self.fenced && self.holds.len() < self.faults.max_parked_keys {
            // A domain stopped by too many held keys may consume again.
            self.blocked = false;
            self.view.set_failure(None);
        }
        self.after_step(ctx);
        ctx.notify(Wake);
        outcome
    }
}
