//! What the gateway reads of a domain without going through the host's mailbox.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use herald_runtime::deadletter::Parked;
use herald_runtime::hosted::HostedDomain;
use herald_runtime::{Params, QueryError};

use super::progress::{RecoveryProgress, RecoveryReport};

/// [`DomainView::reflects`] while the state holds admitted events that are not appended
/// yet (between a batch's admission and its append): no answer may be read from it.
pub const PENDING: u64 = u64::MAX;

/// A domain's state, shared by its host (which writes) and the gateway (which queries).
///
/// Queries take the read lock on the gateway's thread: no message round trip per query.
/// The host holds the write lock for a whole step (handle, append, apply), so a query
/// never sees half a step. The state may reflect records written but not yet durable;
/// [`DomainView::reflects`] tells the gateway which offset to wait for before answering.
#[derive(Clone)]
pub struct DomainView {
    domain: Arc<RwLock<Box<dyn HostedDomain>>>,
    ready: Arc<AtomicBool>,
    /// Every input at or before this offset was handled.
    cursor: Arc<AtomicU64>,
    /// The highest log offset the state reflects.
    reflects: Arc<AtomicU64>,
    /// Bumped at every rebuild: an answer read before one may hold appends the log refused.
    rebuilds: Arc<AtomicU64>,
    /// Why the domain stopped consuming, while it is failed.
    failure: Arc<RwLock<Option<String>>>,
    /// The parked inputs, one per held key, as the host last published them.
    dead_letters: Arc<RwLock<Vec<DeadLetter>>>,
    /// How far its last recovery came.
    recovery: RecoveryProgress,
}

/// A parked input as the gateway shows it.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// The parked input and why.
    pub parked: Parked,
    /// How many inputs with its key wait behind it.
    pub waiting: usize,
}

/// Where a domain is, for `/readyz` and `GET /v1/domains`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Recovering its state; not taking events yet.
    Starting,
    /// Taking events and consuming its inputs.
    Ready,
    /// Stopped consuming, for this reason; needs an operator.
    Failed(String),
}

impl Health {
    /// The one-word status.
    pub fn status(&self) -> &'static str {
        match self {
            Health::Starting => "starting",
            Health::Ready => "ready",
            Health::Failed(_) => "failed",
        }
    }
}

impl DomainView {
    /// A view of `domain`, not ready until its host says so.
    pub fn new(domain: Box<dyn HostedDomain>) -> Self {
        Self {
            domain: Arc::new(RwLock::new(domain)),
            ready: Arc::new(AtomicBool::new(false)),
            cursor: Arc::new(AtomicU64::new(0)),
            reflects: Arc::new(AtomicU64::new(0)),
            rebuilds: Arc::new(AtomicU64::new(0)),
            failure: Arc::new(RwLock::new(None)),
            dead_letters: Arc::new(RwLock::new(Vec::new())),
            recovery: RecoveryProgress::default(),
        }
    }

    /// Where the domain is: starting, ready, or failed and why.
    pub fn health(&self) -> Health {
        if let Some(reason) = self
            .failure
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
        {
            return Health::Failed(reason);
        }
        if self.is_ready() {
            Health::Ready
        } else {
            Health::Starting
        }
    }

    /// The parked inputs, oldest key first.
    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        self.dead_letters
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn set_failure(&self, failure: Option<String>) {
        *self.failure.write().unwrap_or_else(PoisonError::into_inner) = failure;
    }

    /// One more input waits behind the parked one of `key`: cheaper than republishing all.
    pub(crate) fn note_waiting(&self, key: &str) {
        let mut dead_letters = self
            .dead_letters
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(dead_letter) = dead_letters.iter_mut().find(|d| d.parked.input.key == key) {
            dead_letter.waiting += 1;
        }
    }

    pub(crate) fn set_dead_letters(&self, dead_letters: Vec<DeadLetter>) {
        *self
            .dead_letters
            .write()
            .unwrap_or_else(PoisonError::into_inner) = dead_letters;
    }

    /// One entity's state as JSON, and the offset to be durable before it is shown.
    pub fn entity(&self, key: &str) -> (Result<Option<serde_json::Value>, QueryError>, u64) {
        let domain = self.read();
        (domain.entity(key), self.reflects())
    }

    /// A named query's answer, and the offset to be durable before it is shown.
    pub fn query(
        &self,
        name: &str,
        params: &Params,
    ) -> (Result<serde_json::Value, QueryError>, u64) {
        let domain = self.read();
        (domain.query(name, params), self.reflects())
    }

    /// A page of entities after `after`, and the offset to be durable before it is shown.
    pub fn list(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> (Result<herald_runtime::hosted::Listed, QueryError>, u64) {
        let domain = self.read();
        (domain.list(after, limit), self.reflects())
    }

    /// How far the host's last recovery came; `None` before one started.
    pub fn recovery(&self) -> Option<RecoveryReport> {
        self.recovery.report()
    }

    /// Where the host notes its recovery's progress.
    pub(crate) fn recovery_progress(&self) -> &RecoveryProgress {
        &self.recovery
    }

    /// Whether the domain has recovered and takes events.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Every input at or before this node-wide offset was handled.
    pub fn cursor(&self) -> u64 {
        self.cursor.load(Ordering::Acquire)
    }

    /// The highest sequence of input stream `stream` whose handling the state reflects.
    pub fn consumed(&self, stream: &str) -> u64 {
        self.read().consumed(stream)
    }

    /// The highest log offset the state reflects.
    pub fn reflects(&self) -> u64 {
        self.reflects.load(Ordering::Acquire)
    }

    pub(crate) fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }

    /// The state holds admitted events not yet appended: queries must wait for the host.
    pub(crate) fn mark_pending(&self) {
        self.reflects.store(PENDING, Ordering::Release);
    }

    /// How many times the state was rebuilt.
    pub fn rebuilds(&self) -> u64 {
        self.rebuilds.load(Ordering::Acquire)
    }

    pub(crate) fn note_rebuilt(&self) {
        self.rebuilds.fetch_add(1, Ordering::AcqRel);
    }

    pub(crate) fn set_positions(&self, cursor: u64, reflects: u64) {
        self.cursor.store(cursor, Ordering::Release);
        self.reflects.store(reflects, Ordering::Release);
    }

    pub(crate) fn read(&self) -> RwLockReadGuard<'_, Box<dyn HostedDomain>> {
        // A poisoned lock means a handler panicked mid-step; the host rebuilds the state.
        self.domain.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn write(&self) -> RwLockWriteGuard<'_, Box<dyn HostedDomain>> {
        self.domain.write().unwrap_or_else(PoisonError::into_inner)
    }
}
