//! What the gateway reads of a domain without going through the host's mailbox.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use herald_runtime::hosted::HostedDomain;
use herald_runtime::{Params, QueryError};

/// A domain's state, shared by its host (which writes) and the gateway (which queries).
///
/// Queries take the read lock on the gateway's thread: no message round trip per query.
/// The host holds the write lock for a whole step (handle, append, apply), so a query
/// never sees an event applied that is not in the log.
#[derive(Clone)]
pub struct DomainView {
    domain: Arc<RwLock<Box<dyn HostedDomain>>>,
    ready: Arc<AtomicBool>,
}

impl DomainView {
    /// A view of `domain`, not ready until its host says so.
    pub fn new(domain: Box<dyn HostedDomain>) -> Self {
        Self {
            domain: Arc::new(RwLock::new(domain)),
            ready: Arc::new(AtomicBool::new(false)),
        }
    }

    /// One entity's state as JSON.
    pub fn entity(&self, key: &str) -> Option<serde_json::Value> {
        self.read().entity(key)
    }

    /// A named query's answer.
    pub fn query(&self, name: &str, params: &Params) -> Result<serde_json::Value, QueryError> {
        self.read().query(name, params)
    }

    /// Whether the host has caught up and takes ingress.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    pub(crate) fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }

    pub(crate) fn read(&self) -> RwLockReadGuard<'_, Box<dyn HostedDomain>> {
        // A poisoned lock means a handler panicked mid-step; the host rebuilds the state.
        self.domain.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn write(&self) -> RwLockWriteGuard<'_, Box<dyn HostedDomain>> {
        self.domain.write().unwrap_or_else(PoisonError::into_inner)
    }
}
