//! Input consumption: a woken host pulls its inputs from the log by cursor (its
//! subscribed types, and for a partition its keys), runs the handler on each, appends the
//! reactions (which must stay in its partition) and applies them, under the write lock so
//! queries see each step whole.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use herald_runtime::envelope::now_rfc3339;
use herald_runtime::latency;
use herald_runtime::log::{LogError, Record};
use herald_runtime::replay;
use herald_runtime::trace;
use herald_runtime::Envelope;
use tracing::{debug, error, info_span, warn};

use super::messages::Wake;
use super::{apply_all, faults, DomainHost, PULL_BATCH};

impl DomainHost {
    /// Handles up to `limit` new inputs.
    pub(super) fn pull(&mut self, limit: usize) -> Pulled {
        let inputs = Arc::clone(&self.inputs);
        let wanted = |event_type: &str| inputs.take(event_type);
        let batch = match self.bus.log().read_after(self.cursor, limit, &wanted) {
            Ok(batch) => batch,
            Err(error) => {
                error!(domain = self.name(), %error, "cannot read inputs from the log");
                return Pulled {
                    handled: 0,
                    more: false,
                    stall: Some(Stall::Retry(STALL_RETRY)),
                };
            }
        };
        let mut handled = 0;
        for record in &batch.records {
            let handled_to = self.cursor;
            let outcome = self.handle_input(record);
            if self.cursor < handled_to {
                // A refusal rewound the cursor: the rest of this batch is read again.
                self.publish_positions();
                return Pulled {
                    handled,
                    more: outcome.is_ok(),
                    stall: outcome.err(),
                };
            }
            if let Err(stall) = outcome {
                // The input stays unconsumed (cursor before it) and is tried again later.
                self.publish_positions();
                return Pulled {
                    handled,
                    more: false,
                    stall: Some(stall),
                };
            }
            handled += 1;
        }
        let more = batch.scanned_to < self.bus.log().head();
        self.cursor = self.cursor.max(batch.scanned_to);
        self.publish_positions();
        Pulled {
            handled,
            more,
            stall: None,
        }
    }

    /// Handles one input: the handler runs, its events are appended, then applied, all
    /// under the write lock so queries see the step whole or not at all. An input whose
    /// key is held waits behind the parked one. A failing handler is retried with backoff
    /// and its input parked after the last attempt (see `faults.rs`). Answers how to wait
    /// when the input must be handled again later: the state is then back to the log's.
    pub(super) fn handle_input(&mut self, record: &Record) -> Result<(), Stall> {
        let input = &record.envelope;
        if self.holds.wait(&input.partitionkey, record.offset) {
            self.cursor = record.offset;
            self.view.note_waiting(&input.partitionkey);
            return Ok(());
        }
        // Log lines of this step carry its trace id (when logs show trace ids, or spans are
        // exported: nothing is built for it otherwise).
        let handling = trace::Handling::begin(self.entry.name, input);
        let _span = handling
            .as_ref()
            .map(|h| info_span!("handle", trace_id = %h.context.trace_hex()).entered());
        let view = self.view.clone();
        let mut domain = view.write();
        let started = Instant::now();
        let handled = faults::guarded(|| domain.handle(input, &now_rfc3339()));
        latency::observe_since(&self.handler_latency, started);
        let placed = handled.and_then(|emitted| self.place_reactions(&emitted).map(|()| emitted));
        let emitted = match placed {
            Ok(emitted) => emitted,
            Err(failure) => {
                // Marked while the lock is held: no query reads what the failed handler left.
                view.mark_pending();
                drop(domain);
                return self.failed(record, failure);
            }
        };
        self.retrying = None;
        if emitted.is_empty() {
            self.cursor = record.offset;
            if let Some(handling) = &handling {
                handling.record(input, []);
            }
            return Ok(());
        }
        match self.append_reactions(record.offset, emitted) {
            Ok(records) => {
                debug!(
                    domain = self.name(),
                    input = %input.event_type,
                    emitted = records.len(),
                    "input handled"
                );
                if let Some(handling) = &handling {
                    handling.record(input, records.iter().map(|record| &record.envelope));
                }
                apply_all(domain.as_mut(), &records);
                self.cursor = record.offset;
                self.note_own(&records);
                self.publish_positions();
                Ok(())
            }
            Err(error) => {
                error!(domain = self.name(), %error, input_offset = record.offset, "cannot append reactions; the input will be handled again");
                view.mark_pending();
                drop(domain);
                if let LogError::Fenced { .. } = error {
                    self.fenced(&error);
                }
                // The handler may have changed read-model state for an input whose
                // reaction is not logged: go back to what the log says. An append whose
                // answer was lost may have landed all the same (networked mode): then the
                // input is handled, and handling it again would repeat its reactions.
                self.cursor = record.offset - 1;
                let landed = replay::replay_limit(self.bus.log(), self.stream)
                    .is_ok_and(|limit| limit != u64::MAX && limit >= record.offset);
                if landed {
                    warn!(
                        domain = self.name(),
                        input_offset = record.offset,
                        "the reactions were appended after all; the input is handled"
                    );
                    self.cursor = record.offset;
                }
                self.restore();
                match (landed, self.blocked) {
                    (_, true) => Err(Stall::Blocked),
                    (true, false) => Ok(()),
                    (false, false) => Err(Stall::Retry(STALL_RETRY)),
                }
            }
        }
    }

    /// A partition's reactions must stay in it: each one's key must fall in this
    /// partition, or two partitions could write one key. (Their ids stay derived from the
    /// domain and the cause, as replay derives them when it completes a torn append.)
    pub(super) fn place_reactions(&self, emitted: &[Envelope]) -> Result<(), faults::Failure> {
        let Some((partition, partitions)) = self.partition else {
            return Ok(());
        };
        for event in emitted {
            let lands = herald_runtime::partition::of(&event.partitionkey, partitions);
            if lands != partition {
                return Err(faults::Failure {
                    message: format!(
                        "the handler emitted {} with key \"{}\", which belongs to partition {lands}, not to this one ({partition} of {partitions}); a partitioned domain may only emit events for keys of the partition handling the input",
                        event.event_type, event.partitionkey
                    ),
                    panicked: false,
                });
            }
        }
        Ok(())
    }

    pub(super) fn note_own(&mut self, records: &[Arc<Record>]) {
        if let Some(last) = records.last() {
            self.own_sequence = last.envelope.sequence;
            self.own_offset = last.offset;
        }
    }

    /// Arranges the next pull: later after a stall, now if more inputs wait.
    pub(super) fn schedule(&mut self, pulled: Pulled, ctx: &mut Context<Self>) {
        match pulled.stall {
            Some(Stall::Retry(delay)) => {
                ctx.run_later(delay, |_, ctx| ctx.notify(Wake));
            }
            // A release (retry or skip of a dead letter) wakes the host again.
            Some(Stall::Blocked) => {}
            None if pulled.more => {
                // Yield between batches so ingress and other messages are not starved.
                ctx.notify(Wake);
            }
            None => {}
        }
    }
}

/// What one pull did.
#[derive(Debug, Clone, Copy)]
pub(super) struct Pulled {
    /// Inputs handled.
    pub(super) handled: u64,
    /// More inputs wait in the log.
    pub(super) more: bool,
    /// An input could not be handled now; when to try again.
    pub(super) stall: Option<Stall>,
}

/// Why consumption paused, and until when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stall {
    /// Try the same input again after this long.
    Retry(std::time::Duration),
    /// Wait for an operator: too many keys are parked to park another.
    Blocked,
}

/// How long a host waits before handling again an input whose reactions failed to append.
pub(super) const STALL_RETRY: std::time::Duration = std::time::Duration::from_secs(1);

impl Handler<Wake> for DomainHost {
    type Result = ();

    fn handle(&mut self, _: Wake, ctx: &mut Self::Context) {
        self.wake_pending.store(false, Ordering::Release);
        self.flush_ingress();
        if !self.view.is_ready() {
            // Not recovered (or a rebuild failed): consuming now would build on bad state.
            return;
        }
        if self.waiting_to_retry() {
            // Every durable advance in the node wakes every host; a failing input is tried
            // again only when its backoff is over (a timer wakes the host then).
            return;
        }
        let pulled = self.pull(PULL_BATCH);
        self.snapshots_note(pulled.handled);
        self.after_step(ctx);
        self.schedule(pulled, ctx);
    }
}
