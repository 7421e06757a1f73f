//! Firing durable timers: after every step the host arms one actix timer for the earliest
//! pending timer of its domain; when it goes off, the host appends the events of every
//! timer due, as its own events with `consumed` at its cursor, and applies them.
//!
//! The table of pending timers lives in the domain's hosted state (see
//! `herald_runtime::timer`), so recovery, rebuilds and snapshots carry it, and a host that
//! takes a stream over fires what its predecessor left pending. A fired event's id is
//! derived from its schedule record: a host that dies before the append fires it again
//! after recovery under the same id, and one that dies after finds it applied.

use actix::prelude::*;
use herald_runtime::envelope::now_rfc3339;
use herald_runtime::log::LogError;
use tracing::{debug, error};

use super::{apply_all, DomainHost};

/// The longest the host sleeps before looking at its timers again: a clock that jumps, or
/// a table changed by a path that does not re-arm, is noticed within this.
const LONGEST_SLEEP: std::time::Duration = std::time::Duration::from_secs(30);

/// The armed actix timer and the deadline (Unix nanoseconds) it is for.
pub(super) type Armed = Option<(SpawnHandle, i128)>;

/// How long due timers wait after an append failed, or while their keys are held.
const TIMER_RETRY: std::time::Duration = std::time::Duration::from_secs(1);

impl DomainHost {
    /// Arms the actix timer for the earliest pending timer, unless it is armed for it.
    pub(super) fn arm_timers(&mut self, ctx: &mut Context<Self>) {
        if self.fenced || self.broken || !self.view.is_ready() {
            return;
        }
        let Some(next) = self.view.read().next_timer() else {
            if let Some((handle, _)) = self.armed_timer.take() {
                ctx.cancel_future(handle);
            }
            return;
        };
        // Not before a failed append's or a held key's retry time.
        let next = match self.timers_not_before {
            Some(not_before) if not_before > next => not_before,
            _ => next,
        };
        let deadline = next.unix_timestamp_nanos();
        if self
            .armed_timer
            .as_ref()
            .is_some_and(|(_, at)| *at == deadline)
        {
            return;
        }
        if let Some((handle, _)) = self.armed_timer.take() {
            ctx.cancel_future(handle);
        }
        let wait = (next - herald_runtime::prelude::OffsetDateTime::now_utc())
            .try_into()
            .unwrap_or(std::time::Duration::ZERO)
            .min(LONGEST_SLEEP);
        let handle = ctx.run_later(wait, |host, ctx| {
            host.armed_timer = None;
            host.fire_timers(ctx);
        });
        self.armed_timer = Some((handle, deadline));
    }

    /// Appends and applies the events of every timer due now: after the inputs already in
    /// the log (a payment logged before the deadline is handled before the deadline fires),
    /// and never for a key held behind a dead letter (it waits, as the key's inputs do).
    fn fire_timers(&mut self, ctx: &mut Context<Self>) {
        let now = herald_runtime::prelude::OffsetDateTime::now_utc();
        if self
            .timers_not_before
            .is_some_and(|not_before| not_before > now)
        {
            self.after_step(ctx);
            return;
        }
        self.timers_not_before = None;
        if self.fenced || self.broken || !self.view.is_ready() {
            return;
        }
        if !self.waiting_to_retry() && self.cursor < self.bus.log().head() {
            let pulled = self.pull(super::PULL_BATCH);
            self.snapshots_note(pulled.handled);
            self.schedule(pulled, ctx);
        }
        // Staged ingress goes first: the state already holds it, so the log must too.
        self.flush_ingress();
        if self.fenced || self.broken || !self.view.is_ready() {
            self.after_step(ctx);
            return;
        }
        let view = self.view.clone();
        let mut domain = view.write();
        let mut due = domain.due_timers(self.stream, now, &now_rfc3339());
        let before = due.len();
        due.retain(|event| !self.holds.holds(&event.partitionkey));
        if due.len() < before {
            self.timers_not_before = Some(now + TIMER_RETRY);
        }
        if !due.is_empty() {
            match self.append_own(self.cursor, due, None) {
                Ok(records) => {
                    debug!(domain = self.name(), fired = records.len(), "timers fired");
                    apply_all(domain.as_mut(), &records);
                    self.note_own(&records);
                    drop(domain);
                    self.publish_positions();
                    self.snapshots_note(records.len() as u64);
                }
                Err(error) => {
                    error!(domain = self.name(), %error, "cannot append the events of due timers; trying again in a second");
                    view.mark_pending();
                    drop(domain);
                    if let LogError::Fenced { .. } = error {
                        self.fenced(&error);
                    }
                    self.restore();
                    self.timers_not_before = Some(now + TIMER_RETRY);
                }
            }
        }
        self.after_step(ctx);
    }
}
