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

    /// Appends and applies the events of every timer due now.
    fn fire_timers(&mut self, ctx: &mut Context<Self>) {
        if self.fenced || self.broken || !self.view.is_ready() {
            return;
        }
        // Staged ingress goes first: the state already holds it, so the log must too.
        self.flush_ingress();
        let view = self.view.clone();
        let mut domain = view.write();
        let due = domain.due_timers(
            self.stream,
            herald_runtime::prelude::OffsetDateTime::now_utc(),
            &now_rfc3339(),
        );
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
                    error!(domain = self.name(), %error, "cannot append the events of due timers; trying again");
                    view.mark_pending();
                    drop(domain);
                    if let LogError::Fenced { .. } = error {
                        self.fenced(&error);
                    }
                    self.restore();
                    ctx.run_later(super::inputs::STALL_RETRY, |host, ctx| {
                        host.fire_timers(ctx)
                    });
                }
            }
        }
        self.after_step(ctx);
    }
}
