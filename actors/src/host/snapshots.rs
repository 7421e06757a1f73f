//! When a host snapshots its domain, and the last snapshot it took (kept in memory so a
//! rebuild after a refused batch replays only what came after it).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use herald_runtime::snapshot::{Snapshot, SnapshotStore};
use tracing::{debug, error, warn};

/// A node's snapshot store, shared by its hosts.
pub type SharedStore = Arc<dyn SnapshotStore>;

/// Snapshot settings of one host, from `[log]`.
#[derive(Clone)]
pub struct SnapshotSettings {
    /// Where snapshots go; `None` turns them off.
    pub store: Option<SharedStore>,
    /// Snapshot after this many events handled or applied; 0 = never by count.
    pub every: u64,
    /// Snapshot at least this often while the state changes; zero = never by time.
    pub interval: Duration,
}

/// A host's snapshot bookkeeping.
pub(crate) struct Snapshots {
    settings: SnapshotSettings,
    /// Events handled or applied since the last snapshot.
    changed: u64,
    last_at: Instant,
    in_flight: bool,
    /// The last snapshot taken (or loaded): the base of in-memory rebuilds.
    pub(crate) base: Option<Arc<Snapshot>>,
}

impl Snapshots {
    pub(crate) fn new(settings: SnapshotSettings) -> Self {
        Self {
            settings,
            changed: 0,
            last_at: Instant::now(),
            in_flight: false,
            base: None,
        }
    }

    pub(crate) fn store(&self) -> Option<&SharedStore> {
        self.settings.store.as_ref()
    }

    /// Counts `events` more changes; answers whether a snapshot is due now.
    pub(crate) fn note(&mut self, events: u64) -> bool {
        self.changed += events;
        if self.settings.store.is_none() || self.in_flight || self.changed == 0 {
            return false;
        }
        let by_count = self.settings.every > 0 && self.changed >= self.settings.every;
        let by_time =
            !self.settings.interval.is_zero() && self.last_at.elapsed() >= self.settings.interval;
        by_count || by_time
    }

    /// How often to look whether a snapshot is due by time; `None` when never by time.
    pub(crate) fn interval(&self) -> Option<Duration> {
        (self.settings.store.is_some() && !self.settings.interval.is_zero())
            .then_some(self.settings.interval)
    }

    /// Whether the state changed and the interval has passed since the last snapshot.
    pub(crate) fn due_by_time(&self) -> bool {
        self.unsaved()
            && !self.in_flight
            && !self.settings.interval.is_zero()
            && self.last_at.elapsed() >= self.settings.interval
    }

    /// Whether the state changed since the last snapshot (and snapshots are on).
    pub(crate) fn unsaved(&self) -> bool {
        self.settings.store.is_some() && self.changed > 0
    }

    /// A snapshot is being written; count afresh.
    pub(crate) fn started(&mut self, snapshot: Arc<Snapshot>) {
        self.in_flight = true;
        self.changed = 0;
        self.last_at = Instant::now();
        self.base = Some(snapshot);
    }

    pub(crate) fn finished(&mut self) {
        self.in_flight = false;
    }
}

impl super::DomainHost {
    pub(super) fn snapshots_note(&mut self, changed: u64) {
        if self.snapshots.note(changed) {
            self.snapshot_pending = true;
        }
    }

    /// Starts a snapshot of the current state: the returned job writes it once the log
    /// holds everything it reflects. `None` when snapshots are off or the state is unsaved.
    pub(super) fn snapshot_job(&mut self) -> Option<impl Future<Output = Result<String, String>>> {
        // A snapshot must not hold staged events the log does not have yet, nor appends in
        // flight that the log may still refuse.
        self.flush_ingress();
        self.settle();
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
        // A snapshot must never reflect records a crash could still take back (nor, with
        // pipelined appends, own records JetStream has not acknowledged).
        let durable = match &self.acked {
            Some(acked) => acked.wait(self.own_offset),
            None => self.bus.log().durability().wait(snapshot.offset),
        };
        Some(async move {
            durable.await.map_err(|error| error.to_string())?;
            tokio::task::spawn_blocking(move || store.save(&snapshot))
                .await
                .map_err(|error| error.to_string())?
                .map_err(|error| error.to_string())
        })
    }

    pub(super) fn snapshot_written(&mut self, written: Result<String, String>) {
        self.snapshots.finished();
        match written {
            Ok(location) => debug!(domain = self.name(), %location, "snapshot written"),
            Err(error) => {
                warn!(domain = self.name(), %error, "snapshot not written; the next one will try again")
            }
        }
    }
}
