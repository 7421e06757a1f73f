//! The domain host: one generic actor per enabled domain.
//!
//! It owns the domain's state (shared read-only with the gateway through a [`DomainView`]),
//! serializes the domain's ingress, and consumes the domain's inputs by cursor: the bus
//! only wakes it, and it pulls what is new (and durable) from the log, in node-wide order.
//! On start it recovers: latest valid snapshot, replay, then ordinary consumption of what
//! is left (see `recovery.rs`).

mod faults;
mod ingress;
mod inputs;
use inputs::Pulled;
mod messages;
mod progress;
mod recovery;
mod release;
mod snapshots;
mod timers;
mod view;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use actix::prelude::*;
use herald_runtime::bus::{Bus, Subscriber};
use herald_runtime::deadletter::Holds;
use herald_runtime::envelope::now_rfc3339;
use herald_runtime::hosted::{DomainEntry, HostedDomain};
use herald_runtime::latency::{self, Histogram};
use herald_runtime::log::{Durability, LogError, Record};
use herald_runtime::partition::Inputs;
use herald_runtime::replay::{self, Start};
use tracing::{debug, error, info};

pub use faults::FaultPolicy;
pub(crate) use messages::Wake;
pub use messages::{
    Checkpoint, Committed, Decision, Drain, IdConflict, Ingest, IngestError, Original, Outcome,
    Prepare, Retire,
};
pub use progress::RecoveryReport;
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
    pub on_stop: Option<(tokio::sync::mpsc::UnboundedSender<HostStopped>, u64)>,
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
    group: Vec<ingress::Waiting>,
    group_events: usize,
    /// [`ingress::group_key`] of every event in `group`.
    group_keys: HashSet<u64>,
    /// Groups sent to the log and not yet answered, oldest first.
    in_flight: std::collections::VecDeque<ingress::InFlight>,
    /// How many of them hold an atomic batch.
    batches_in_flight: usize,
    /// What the log acknowledged, when its appends are pipelined.
    acked: Option<Arc<Durability>>,
    /// This host's address, for the tasks that tell it of acknowledgements.
    me: Option<Addr<DomainHost>>,
    on_stop: Option<(tokio::sync::mpsc::UnboundedSender<HostStopped>, u64)>,
    /// How long the domain's handler takes, per input (`/metrics`).
    handler_latency: Histogram,
    /// The actix timer armed for the domain's earliest pending timer.
    armed_timer: timers::Armed,
    /// Due timers wait until then (an append failed, or their key is held).
    timers_not_before: Option<herald_runtime::prelude::OffsetDateTime>,
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
        let acked = args.bus.log().acknowledged();
        Self {
            handler_latency: latency::latencies().handler(description.name),
            acked,
            in_flight: std::collections::VecDeque::new(),
            batches_in_flight: 0,
            me: None,
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
            armed_timer: None,
            timers_not_before: None,
        }
    }

    /// Which records of the log are this host's inputs.
    pub fn inputs(&self) -> Arc<Inputs> {
        Arc::clone(&self.inputs)
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
        // With pipelined appends, what the state reflects is its own last offset, which
        // readers wait to see acknowledged (inputs are in another position space).
        let reflects = match self.acked {
            Some(_) => self.own_offset,
            None => self.cursor.max(self.own_offset),
        };
        self.view.set_positions(self.cursor, reflects);
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
        self.view.note_rebuilt();
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

    /// Whether consumption must wait now: a retry not due yet, or blocked on an operator.
    fn waiting_to_retry(&self) -> bool {
        self.blocked
            || self
                .retrying
                .as_ref()
                .is_some_and(|retrying| std::time::Instant::now() < retrying.not_before)
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
        self.arm_timers(ctx);
    }
}

impl Actor for DomainHost {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(self.mailbox_capacity);
        self.me = Some(ctx.address());
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

/// A host's end, as the supervisor hears of it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HostStopped {
    /// Its stream.
    pub(crate) stream: &'static str,
    /// Which start of it ended.
    pub(crate) started: u64,
    /// It stopped because this node may no longer write its stream (the lease ran out or
    /// another writer appended): an ownership event, not a fault of the domain.
    pub(crate) fenced: bool,
}

impl Drop for DomainHost {
    fn drop(&mut self) {
        // Also runs when a panic unwinds out of the actor (then `stopped` does not): the
        // node hears of every end and decides whether to start the domain again.
        self.view.set_ready(false);
        if let Some((on_stop, started)) = self.on_stop.take() {
            let _ = on_stop.send(HostStopped {
                stream: self.stream,
                started,
                fenced: self.fenced,
            });
        }
    }
}

impl Handler<Drain> for DomainHost {
    type Result = u64;

    fn handle(&mut self, _: Drain, _: &mut Self::Context) -> u64 {
        self.flush_ingress();
        self.settle();
        // What is waiting now, not what keeps arriving: under load the inputs never end,
        // and the next owner takes the rest from the inbox.
        let head = self.bus.log().head();
        let mut total = 0;
        while self.view.is_ready() && !self.waiting_to_retry() && self.cursor < head {
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
        // A refusal restages and sends again: settled until nothing is left in flight, so
        // no client loses an answer to the host stopping (bounded by the restage limit).
        for _ in 0..16 {
            if self.in_flight.is_empty() {
                break;
            }
            self.settle();
        }
        ctx.stop();
    }
}
