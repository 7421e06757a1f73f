//! The domain host: one generic actor per enabled domain.
//!
//! It owns the domain's state (shared read-only with the gateway through a [`DomainView`]),
//! serializes the domain's ingress, and consumes the domain's inputs by cursor: the bus
//! only wakes it, and it pulls what is new (and durable) from the log, in node-wide order.
//! On start it recovers: latest valid snapshot, replay, then ordinary consumption of what
//! is left (see `recovery.rs`).

mod faults;
mod group;
mod messages;
mod recovery;
mod release;
mod snapshots;
mod view;

use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use actix::prelude::*;
use herald_runtime::bus::{Bus, Subscriber};
use herald_runtime::deadletter::Holds;
use herald_runtime::envelope::now_rfc3339;
use herald_runtime::hosted::{DomainEntry, HostedDomain};
use herald_runtime::log::{LogError, Part, Record};
use herald_runtime::partition::Inputs;
use herald_runtime::replay::{self, Start};
use herald_runtime::snapshot::Snapshot;
use herald_runtime::{Envelope, Position};
use tracing::{debug, error, info, warn};

pub use faults::FaultPolicy;
pub(crate) use messages::Wake;
pub use messages::{
    Checkpoint, Committed, Decision, Drain, IdConflict, Ingest, IngestError, Original, Outcome,
    Prepare, Retire,
};
pub use release::{Release, ReleaseAction, ReleaseError};
pub use snapshots::{SharedStore, SnapshotSettings};
pub use view::{DeadLetter, DomainView, Health, PENDING};

use snapshots::Snapshots;

/// Inputs handled per turn before the host yields to ingress and other messages.
const PULL_BATCH: usize = 256;

/// Everything a host needs to start.
pub struct HostArgs {
    /// The domain to host.
    pub entry: DomainEntry,
    /// The stream it writes: the domain's name, or one partition's (`orders-p3`).
    pub stream: &'static str,
    /// Its partition and the domain's partition count, when it has several.
    pub partition: Option<(u32, u32)>,
    /// The bus its stream and inputs live on.
    pub bus: Arc<Bus>,
    /// Bound of its mailbox; the gateway admits no more ingress than this (429 beyond).
    pub mailbox_capacity: usize,
    /// When and where to snapshot.
    pub snapshots: SnapshotSettings,
    /// How failing handlers are retried and parked.
    pub faults: FaultPolicy,
    /// The view to publish to: a restarted host keeps its predecessor's, so the gateway's
    /// handle stays valid. `None` makes a new one.
    pub view: Option<DomainView>,
    /// Told when the host's actor ends, with the host's start number, so the node can
    /// restart it (and tell a late signal of an earlier host from its replacement's).
    pub on_stop: Option<(tokio::sync::mpsc::UnboundedSender<(&'static str, u64)>, u64)>,
}

/// The actor hosting one domain.
pub struct DomainHost {
    entry: DomainEntry,
    stream: &'static str,
    partition: Option<(u32, u32)>,
    bus: Arc<Bus>,
    view: DomainView,
    /// Which records of the log are its inputs (types, and a partition's keys).
    inputs: Arc<Inputs>,
    /// Every input at or before this node-wide offset has been handled.
    cursor: u64,
    /// The last own sequence applied, and its offset.
    own_sequence: u64,
    own_offset: u64,
    /// The last dead-letter sequence reflected.
    dead_sequence: u64,
    /// Keys held behind parked inputs.
    holds: Holds,
    /// The input being retried after a failure, if any.
    retrying: Option<faults::Retrying>,
    /// Consumption waits for an operator: too many keys are held to park another.
    blocked: bool,
    /// A rebuild failed: the host stops at the end of the message.
    broken: bool,
    /// Another writer appended to the domain's streams: this host appends nothing more.
    fenced: bool,
    faults: FaultPolicy,
    wake_pending: Arc<AtomicBool>,
    mailbox_capacity: usize,
    snapshots: Snapshots,
    /// A snapshot is due; taken at the end of the current message.
    snapshot_pending: bool,
    /// Ingress staged into the state, to append together (see `group.rs`).
    group: Vec<group::Waiting>,
    group_events: usize,
    /// [`group::group_key`] of every event in `group`.
    group_keys: HashSet<u64>,
    on_stop: Option<(tokio::sync::mpsc::UnboundedSender<(&'static str, u64)>, u64)>,
}

impl DomainHost {
    /// Builds a host; its view is ready once the actor has started and caught up.
    pub fn new(args: HostArgs) -> Self {
        let description = args.entry.describe();
        let inputs = Inputs::new(
            &description.subscriptions,
            description.partitioning,
            args.partition,
        );
        let view = match args.view {
            Some(view) => {
                view.set_ready(false);
                view.set_failure(None);
                *view.write() = args.entry.create();
                view
            }
            None => DomainView::new(args.entry.create()),
        };
        Self {
            view,
            entry: args.entry,
            stream: args.stream,
            partition: args.partition,
            bus: args.bus,
            inputs: Arc::new(inputs),
            cursor: 0,
            own_sequence: 0,
            own_offset: 0,
            dead_sequence: 0,
            holds: Holds::default(),
            retrying: None,
            blocked: false,
            broken: false,
            fenced: false,
            faults: args.faults,
            wake_pending: Arc::new(AtomicBool::new(false)),
            mailbox_capacity: args.mailbox_capacity,
            snapshots: Snapshots::new(args.snapshots),
            snapshot_pending: false,
            group: Vec::new(),
            group_events: 0,
            group_keys: HashSet::new(),
            on_stop: args.on_stop,
        }
    }

    /// The read side of the domain, for the gateway.
    pub fn view(&self) -> DomainView {
        self.view.clone()
    }

    /// The stream this host writes (its domain's name unless partitioned): what it is
    /// known by in logs, the gateway's directory, snapshots and dead letters.
    fn name(&self) -> &'static str {
        self.stream
    }

    fn publish_positions(&self) {
        if !self.group.is_empty() {
            // Staged events not yet appended are in the state: queries must keep waiting.
            return;
        }
        self.view
            .set_positions(self.cursor, self.cursor.max(self.own_offset));
    }

    /// Another writer appended to this stream, or this node's lease on it ran out: the
    /// host appends nothing more and stops; whether it starts again is for the node's
    /// ownership of the stream to decide (it is started again, rebuilt from the streams,
    /// only while this node still holds the lease).
    fn fenced(&mut self, error: &LogError) {
        error!(domain = self.name(), %error, "this node may no longer write this stream; the host stops");
        self.blocked = true;
        self.fenced = true;
        self.broken = true;
    }

    /// A partition's reactions must stay in it: each one's key must fall in this
    /// partition, or two partitions could write one key. (Their ids stay derived from the
    /// domain and the cause, as replay derives them when it completes a torn append.)
    fn place_reactions(&self, emitted: &[Envelope]) -> Result<(), faults::Failure> {
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

    /// Replaces the state with one rebuilt from the last snapshot plus the log, up to the
    /// current cursor: the way back after admitted events were not appended.
    fn rebuild(&mut self) -> Result<(), String> {
        let mut fresh = self.entry.create();
        let start = match &self.snapshots.base {
            Some(base) => {
                fresh
                    .load_state(&base.state)
                    .map_err(|error| format!("the last snapshot does not load: {error}"))?;
                Start {
                    cursor: base.cursor,
                    own_sequence: base.own_sequence,
                    dead_sequence: base.dead_sequence,
                    holds: base.holds.clone(),
                }
            }
            None => Start::default(),
        };
        let inputs = Arc::clone(&self.inputs);
        let replayed = replay::rebuild(
            fresh.as_mut(),
            self.stream,
            self.bus.log(),
            &|event_type: &str| inputs.take(event_type),
            start,
            self.cursor,
            &now_rfc3339(),
        )
        .map_err(|error| error.to_string())?;
        debug!(
            domain = self.name(),
            applied = replayed.applied,
            handled = replayed.handled,
            "domain state rebuilt from the log"
        );
        self.own_sequence = replayed.own_sequence;
        self.own_offset = self.own_offset.max(replayed.own_offset);
        self.dead_sequence = replayed.dead_sequence;
        self.holds = replayed.holds;
        *self.view.write() = fresh;
        self.publish_dead_letters();
        Ok(())
    }

    /// Shows the current holds to the gateway.
    fn publish_dead_letters(&self) {
        let dead_letters = self
            .holds
            .iter()
            .map(|held| DeadLetter {
                parked: held.parked.clone(),
                waiting: held.waiting.len(),
            })
            .collect();
        self.view.set_dead_letters(dead_letters);
    }

    /// Handles up to `limit` new inputs.
    fn pull(&mut self, limit: usize) -> Pulled {
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
            if let Err(stall) = self.handle_input(record) {
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
    fn handle_input(&mut self, record: &Record) -> Result<(), Stall> {
        let input = &record.envelope;
        if self.holds.wait(&input.partitionkey, record.offset) {
            self.cursor = record.offset;
            self.view.note_waiting(&input.partitionkey);
            return Ok(());
        }
        let view = self.view.clone();
        let mut domain = view.write();
        let placed = faults::guarded(|| domain.handle(input, &now_rfc3339()))
            .and_then(|emitted| self.place_reactions(&emitted).map(|()| emitted));
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
            return Ok(());
        }
        match self.bus.append(self.stream, record.offset, emitted) {
            Ok(records) => {
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

    fn note_own(&mut self, records: &[Arc<Record>]) {
        if let Some(last) = records.last() {
            self.own_sequence = last.envelope.sequence;
            self.own_offset = last.offset;
        }
    }

    /// Deduplicates and admits `events` into the state; returns what to append.
    fn stage(&mut self, events: Vec<Envelope>) -> Result<Staged, IngestError> {
        let mut staged = Staged::default();
        let view = self.view.clone();
        let mut domain = view.write();
        let log = self.bus.log();
        let mut admitted_any = false;
        // Keys of the events staged so far: an earlier one is searched for only on a hit.
        let mut keys = HashSet::with_capacity(events.len());
        for (index, event) in events.into_iter().enumerate() {
            let key = group::group_key(&event);
            let repeated = keys.contains(&key);
            // Deduplication runs before validation: a resent event is not a conflict. A
            // resend must be the same event, though: another event under a taken `source`
            // and `id` refuses the whole group rather than being dropped as a duplicate.
            let logged = log.find(self.stream, &event.source, &event.id);
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
                        .position(|slot| matches!(slot, Slot::New(i) if *i == earlier))
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
                    .push(Slot::Duplicate(original.envelope.position()));
                continue;
            }
            if let Some(earlier) = repeated
                .then(|| staged.appends.iter().position(same))
                .flatten()
            {
                staged.slots.push(Slot::DuplicateOfStaged(earlier));
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
            staged.slots.push(Slot::New(staged.appends.len()));
            staged.appends.push(event);
            keys.insert(key);
        }
        Ok(staged)
    }

    /// Appends what was staged; on failure the state goes back to the log's.
    fn commit(&mut self, mut staged: Staged) -> Result<Committed, IngestError> {
        let appends = std::mem::take(&mut staged.appends);
        let records = if appends.is_empty() {
            Ok(Vec::new())
        } else {
            self.bus.append(self.stream, self.cursor, appends)
        };
        self.finish(staged, records.map_err(|error| error.to_string()))
    }

    /// Answers staged events once their records were appended (or not).
    fn finish(
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
                Slot::Duplicate(position) => Outcome::Duplicate(position),
                Slot::DuplicateOfStaged(index) => Outcome::Duplicate(positions[index].clone()),
                Slot::New(index) => Outcome::Accepted(positions[index].clone()),
            })
            .collect();
        self.snapshots_note(records.len() as u64);
        Ok(Committed { outcomes, sync_to })
    }

    /// Admitted but unappended events, or a failed handler, changed the state: rebuild it
    /// from the log. False if that failed: the host then stops at the end of the message,
    /// and the supervisor starts a new one, which recovers from the files.
    fn restore(&mut self) -> bool {
        // The group's staged events are in the state but not yet in the log: append them
        // first, so the rebuild keeps them (and their clients get their answers).
        self.flush_ingress();
        let rebuilt = self.rebuild();
        self.publish_positions();
        match rebuilt {
            Ok(()) => true,
            Err(error) => {
                error!(domain = self.name(), %error, "rebuild from the log failed; the host stops and is started again");
                self.view.set_ready(false);
                self.broken = true;
                false
            }
        }
    }

    /// Whether consumption must wait now: a retry not due yet, or blocked on an operator.
    fn waiting_to_retry(&self) -> bool {
        self.blocked
            || self
                .retrying
                .as_ref()
                .is_some_and(|retrying| std::time::Instant::now() < retrying.not_before)
    }

    fn ready_check(&self) -> Result<(), IngestError> {
        if self.view.is_ready() && !self.fenced {
            Ok(())
        } else {
            Err(IngestError::NotReady(self.name().to_owned()))
        }
    }

    fn snapshots_note(&mut self, changed: u64) {
        if self.snapshots.note(changed) {
            self.snapshot_pending = true;
        }
    }
}

fn apply_all(domain: &mut dyn HostedDomain, records: &[Arc<Record>]) {
    for record in records {
        if let Err(error) = domain.apply(&record.envelope) {
            // Own events are built by the domain itself: a decode failure is a bug.
            error!(%error, "an appended own event does not decode");
        }
    }
}

/// What one pull did.
#[derive(Debug, Clone, Copy)]
struct Pulled {
    /// Inputs handled.
    handled: u64,
    /// More inputs wait in the log.
    more: bool,
    /// An input could not be handled now; when to try again.
    stall: Option<Stall>,
}

/// Why consumption paused, and until when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stall {
    /// Try the same input again after this long.
    Retry(std::time::Duration),
    /// Wait for an operator: too many keys are parked to park another.
    Blocked,
}

/// How long a host waits before handling again an input whose reactions failed to append.
const STALL_RETRY: std::time::Duration = std::time::Duration::from_secs(1);

/// What the host prepared for one group of ingress events.
#[derive(Default)]
struct Staged {
    slots: Vec<Slot>,
    appends: Vec<Envelope>,
    /// The highest offset of an original that a duplicate points at.
    sync_to: u64,
}

enum Slot {
    Duplicate(Position),
    DuplicateOfStaged(usize),
    New(usize),
}

/// Wakes a host through its mailbox, at most one wake in flight.
struct HostWaker {
    host: Addr<DomainHost>,
    pending: Arc<AtomicBool>,
}

impl Subscriber for HostWaker {
    fn wake(&self) {
        if !self.pending.swap(true, Ordering::AcqRel) {
            self.host.do_send(Wake);
        }
    }

    fn alive(&self) -> bool {
        self.host.connected()
    }
}

impl DomainHost {
    /// Starts a snapshot of the current state: the returned job writes it once the log
    /// holds everything it reflects. `None` when snapshots are off or the state is unsaved.
    fn snapshot_job(&mut self) -> Option<impl Future<Output = Result<String, String>>> {
        // A snapshot must not hold staged events the log does not have yet.
        self.flush_ingress();
        let store = self.snapshots.store().cloned()?;
        let state = match self.view.read().save_state() {
            Ok(state) => state,
            Err(error) => {
                error!(domain = self.name(), %error, "cannot encode the domain's state for a snapshot");
                return None;
            }
        };
        let snapshot = Arc::new(Snapshot {
            domain: self.name().to_owned(),
            cursor: self.cursor,
            own_sequence: self.own_sequence,
            offset: self.cursor.max(self.own_offset),
            dead_sequence: self.dead_sequence,
            holds: self.holds.clone(),
            state,
        });
        self.snapshots.started(Arc::clone(&snapshot));
        // A snapshot must never reflect records a crash could still take back.
        let durable = self.bus.log().durability().wait(snapshot.offset);
        Some(async move {
            durable.await.map_err(|error| error.to_string())?;
            tokio::task::spawn_blocking(move || store.save(&snapshot))
                .await
                .map_err(|error| error.to_string())?
                .map_err(|error| error.to_string())
        })
    }

    fn snapshot_written(&mut self, written: Result<String, String>) {
        self.snapshots.finished();
        match written {
            Ok(location) => debug!(domain = self.name(), %location, "snapshot written"),
            Err(error) => {
                warn!(domain = self.name(), %error, "snapshot not written; the next one will try again")
            }
        }
    }

    fn after_step(&mut self, ctx: &mut Context<Self>) {
        if self.broken {
            ctx.stop();
            return;
        }
        if std::mem::take(&mut self.snapshot_pending) {
            if let Some(job) = self.snapshot_job() {
                ctx.spawn(
                    job.into_actor(self)
                        .map(|written, host, _| host.snapshot_written(written)),
                );
            }
        }
    }
}

impl Actor for DomainHost {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(self.mailbox_capacity);
        self.bus.subscribe(Arc::new(HostWaker {
            host: ctx.address(),
            pending: Arc::clone(&self.wake_pending),
        }));
        if let Some(interval) = self.snapshots.interval() {
            // A domain that changed and went quiet is still snapshotted within the interval.
            ctx.run_interval(interval, |host, ctx| {
                if host.snapshots.due_by_time() {
                    host.flush_ingress();
                    host.snapshot_pending = true;
                    host.after_step(ctx);
                }
            });
        }
        match self.recover() {
            Ok(stall) => {
                self.view.set_ready(true);
                info!(
                    domain = self.name(),
                    cursor = self.cursor,
                    own_sequence = self.own_sequence,
                    "domain recovered and ready"
                );
                self.after_step(ctx);
                let pulled = Pulled {
                    handled: 0,
                    more: false,
                    stall,
                };
                self.schedule(pulled, ctx);
            }
            Err(error) => {
                error!(domain = self.name(), %error, "domain cannot recover; it stops");
                ctx.stop();
            }
        }
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        self.view.set_ready(false);
        info!(domain = self.name(), "domain stopped");
    }
}

impl Drop for DomainHost {
    fn drop(&mut self) {
        // Also runs when a panic unwinds out of the actor (then `stopped` does not): the
        // node hears of every end and decides whether to start the domain again.
        self.view.set_ready(false);
        if let Some((on_stop, started)) = self.on_stop.take() {
            let _ = on_stop.send((self.stream, started));
        }
    }
}

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

impl DomainHost {
    /// Arranges the next pull: later after a stall, now if more inputs wait.
    fn schedule(&mut self, pulled: Pulled, ctx: &mut Context<Self>) {
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

impl Handler<Drain> for DomainHost {
    type Result = u64;

    fn handle(&mut self, _: Drain, _: &mut Self::Context) -> u64 {
        self.flush_ingress();
        let mut total = 0;
        while self.view.is_ready() && !self.waiting_to_retry() {
            let pulled = self.pull(PULL_BATCH);
            total += pulled.handled;
            if !pulled.more || pulled.stall.is_some() {
                break;
            }
        }
        total
    }
}

impl Handler<Checkpoint> for DomainHost {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _: Checkpoint, _: &mut Self::Context) -> Self::Result {
        self.flush_ingress();
        let job = if self.snapshots.unsaved() {
            self.snapshot_job()
        } else {
            None
        };
        match job {
            Some(job) => Box::pin(
                job.into_actor(self)
                    .map(|written, host, _| host.snapshot_written(written)),
            ),
            None => Box::pin(actix::fut::ready(())),
        }
    }
}

impl Handler<Retire> for DomainHost {
    type Result = ();

    fn handle(&mut self, _: Retire, ctx: &mut Self::Context) {
        self.flush_ingress();
        ctx.stop();
    }
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
