//! How a host gets its domain back on start: the newest usable snapshot, replay of the
//! log after it, the reactions a crash cut short, then ordinary consumption to the head.
//!
//! Replay handles inputs only up to the `consumed` of the domain's last own record (see
//! `herald_runtime::replay`): every input before it had its reactions logged, none after
//! it had any. Inputs after it are then consumed as if live, which appends their
//! reactions. So after any crash each input's reactions are in the log exactly once.

use std::sync::Arc;

use herald_runtime::deadletter;
use herald_runtime::envelope::now_rfc3339;
use herald_runtime::log::EventLog;
use herald_runtime::replay::{self, Start};
use herald_runtime::snapshot::Snapshot;
use tracing::{info, warn};

use super::inputs::Stall;
use super::{apply_all, DomainHost, PULL_BATCH};

impl DomainHost {
    /// Rebuilds the state and catches up with the log; the host is then ready.
    /// Answers how the catch-up ended: a stall (a failing input being retried) is not a
    /// failure to recover; the host is ready and goes on retrying.
    pub(super) fn recover(&mut self) -> Result<Option<Stall>, String> {
        let log = self.bus.shared_log();
        let name = self.name();
        let mut fresh = self.entry.create();
        let mut start = Start::default();
        if let Some(snapshot) = self.usable_snapshot(log.as_ref()) {
            match fresh.load_state(&snapshot.state) {
                Ok(()) => {
                    start = Start {
                        cursor: snapshot.cursor,
                        own_sequence: snapshot.own_sequence,
                        dead_sequence: snapshot.dead_sequence,
                        holds: snapshot.holds.clone(),
                    };
                    info!(
                        domain = name,
                        offset = snapshot.offset,
                        "state loaded from a snapshot"
                    );
                    // A snapshot's offset is node-wide in embedded mode; on JetStream it may
                    // be an inbox position, which is no own offset to wait for.
                    if self.acked.is_none() {
                        self.own_offset = snapshot.offset;
                    }
                    self.snapshots.base = Some(snapshot);
                }
                Err(error) => {
                    warn!(domain = name, %error, "snapshot ignored: the state does not decode with this build; replaying from the beginning");
                    fresh = self.entry.create();
                }
            }
        }
        let upto = replay::replay_limit(log.as_ref(), name).map_err(|e| e.to_string())?;
        let inputs = Arc::clone(&self.inputs);
        let progress = self.view.recovery_progress().clone();
        progress.start();
        let pause = replay_pause();
        let replayed = replay::rebuild_reporting(
            fresh.as_mut(),
            name,
            log.as_ref(),
            &|event_type: &str| inputs.take(event_type),
            start,
            upto,
            &now_rfc3339(),
            &mut |at| {
                progress.update(name, at);
                if let Some(pause) = pause {
                    std::thread::sleep(pause);
                }
            },
        )
        .map_err(|error| {
            progress.fail(&error.to_string());
            error.to_string()
        })?;
        progress.finish();
        self.cursor = replayed.cursor;
        self.own_sequence = replayed.own_sequence;
        self.own_offset = self.own_offset.max(replayed.own_offset);
        self.dead_sequence = replayed.dead_sequence;
        self.holds = replayed.holds;
        if !self.holds.is_empty() {
            info!(
                domain = name,
                held_keys = self.holds.len(),
                "keys held behind parked inputs (dead letters)"
            );
        }
        info!(
            domain = name,
            applied = replayed.applied,
            handled = replayed.handled,
            cursor = self.cursor,
            "replayed the log"
        );
        if !replayed.missing.is_empty() {
            warn!(
                domain = name,
                count = replayed.missing.len(),
                input_offset = upto,
                "appending reactions a crash cut short"
            );
            let records = self
                .bus
                .append(name, upto, replayed.missing)
                .map_err(|error| {
                    format!("cannot append reactions cut short by a crash: {error}")
                })?;
            apply_all(fresh.as_mut(), &records);
            self.note_own(&records);
        }
        *self.view.write() = fresh;
        self.publish_positions();
        self.publish_dead_letters();
        let mut caught_up = 0;
        let stall = loop {
            let pulled = self.pull(PULL_BATCH);
            caught_up += pulled.handled;
            if pulled.stall.is_some() || !pulled.more {
                break pulled.stall;
            }
        };
        self.snapshots_note(replayed.handled + replayed.applied + caught_up);
        Ok(stall)
    }

    /// The newest snapshot that reads back and fits the log; says why others were not.
    fn usable_snapshot(&self, log: &dyn EventLog) -> Option<Arc<Snapshot>> {
        let store = self.snapshots.store()?;
        let name = self.name();
        let dead = deadletter::stream(name);
        // Each position against the end of its own sequence: inputs, own stream, dead
        // letters (in networked mode they are different streams, with no common offset).
        let inputs = log.head();
        let own_last = log.sequence_at(name, log.written());
        let dead_last = log.sequence_at(&dead, log.written());
        let (found, passed_over) = store.latest(name, &|snapshot| {
            if snapshot.cursor > inputs {
                Err(format!(
                    "it reflects inputs up to {} but the inputs end at {inputs}",
                    snapshot.cursor
                ))
            } else if snapshot.own_sequence > own_last {
                Err(format!(
                    "it reflects {name}#{} but the stream ends at #{own_last}",
                    snapshot.own_sequence
                ))
            } else if snapshot.dead_sequence > dead_last {
                Err(format!(
                    "it reflects {dead}#{} but the stream ends at #{dead_last}",
                    snapshot.dead_sequence
                ))
            } else {
                Ok(())
            }
        });
        for unusable in passed_over {
            // Moved aside, not left in place: a snapshot ahead of the log (after a repair or
            // a lost tail) would otherwise look usable again once the log grows past it.
            let moved = store.set_aside(&unusable);
            warn!(
                domain = name,
                snapshot = %unusable.location,
                reason = %unusable.reason,
                moved_to = %moved.unwrap_or_else(|| "-".into()),
                "snapshot ignored; using an older one or replaying from the beginning"
            );
        }
        found.map(Arc::new)
    }
}

/// Test builds only: `HERALD_FAULT_REPLAY_PAUSE_MS` pauses replay at each progress report,
/// so a test can watch a long recovery without writing a long log.
fn replay_pause() -> Option<std::time::Duration> {
    if !cfg!(feature = "fault-injection") {
        return None;
    }
    let millis = std::env::var("HERALD_FAULT_REPLAY_PAUSE_MS").ok()?;
    millis.parse().ok().map(std::time::Duration::from_millis)
}
