//! What the gateway reads of a domain without going through the host's mailbox.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use herald_runtime::hosted::HostedDomain;
use herald_runtime::{Params, QueryError};

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
}

impl DomainView {
    /// A view of `domain`, not ready until its host says so.
    pub fn new(domain: Box<dyn HostedDomain>) -> Self {
        Self {
            domain: Arc::new(RwLock::new(domain)),
            ready: Arc::new(AtomicBool::new(false)),
            cursor: Arc::new(AtomicU64::new(0)),
            reflects: Arc::new(AtomicU64::new(0)),
        }
    }

    /// One entity's state as JSON, and the offset to be durable before it is shown.
    pub fn entity(&self, key: &str) -> (Option<serde_json::Value>, u64) {
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

    /// Whether the host has caught up and takes ingress.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Every input at or before this node-wide offset was handled.
    pub fn cursor(&self) -> u64 {
        self.cursor.load(Ordering::Acquire)
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
