//! When a host snapshots its domain, and the last snapshot it took (kept in memory so a
//! rebuild after a refused batch replays only what came after it).

use std::sync::Arc;
use std::time::{Duration, Instant};

use herald_runtime::snapshot::{Snapshot, SnapshotStore};

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
