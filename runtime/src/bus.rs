//! The in-process bus: appends to the event log and, once appended events are durable,
//! wakes the domains. Subscribers pull by cursor, so the bus carries
//! signals, never events: a slow domain is a backlog in the log, not a queue in memory.

use std::sync::{Arc, PoisonError, RwLock};

use crate::envelope::Envelope;
use crate::log::{Acked, EventLog, LogError, Record};

/// Something to wake when events it subscribes to were appended.
pub trait Subscriber: Send + Sync {
    /// Signals "there is more to read"; must be cheap and must not block.
    fn wake(&self);
    /// Whether it still listens; the bus forgets those that do not (a stopped host).
    fn alive(&self) -> bool {
        true
    }
}

/// The log plus a registry of who consumes which event type.
///
/// Every subscriber is woken each time the log's durable offset advances, whatever was
/// appended: a wake is one coalesced message, and reading past records of types a domain
/// does not consume costs an index lookup each. So every cursor follows the head, and a
/// subscriber's lag is simply how far its cursor is behind.
pub struct Bus {
    log: Arc<dyn EventLog>,
    wakers: Arc<RwLock<Vec<Arc<dyn Subscriber>>>>,
}

impl Bus {
    /// A bus over `log` with no subscribers yet.
    pub fn new(log: Arc<dyn EventLog>) -> Self {
        let wakers: Arc<RwLock<Vec<Arc<dyn Subscriber>>>> = Arc::default();
        let to_wake = Arc::clone(&wakers);
        log.durability().listen(Box::new(move |_| {
            for subscriber in to_wake
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
            {
                subscriber.wake();
            }
        }));
        Self { log, wakers }
    }

    /// The log behind the bus, for reading.
    pub fn log(&self) -> &dyn EventLog {
        self.log.as_ref()
    }

    /// The log behind the bus, shared.
    pub fn shared_log(&self) -> Arc<dyn EventLog> {
        Arc::clone(&self.log)
    }

    /// Registers `subscriber` to be woken whenever new events are durable; it reads the
    /// types it consumes from the log itself.
    pub fn subscribe(&self, subscriber: Arc<dyn Subscriber>) {
        let mut wakers = self.wakers.write().unwrap_or_else(PoisonError::into_inner);
        wakers.retain(|waker| waker.alive());
        wakers.push(subscriber);
    }

    /// Appends `events` to `stream` (see [`EventLog::append`]); subscribers are woken once
    /// they are durable.
    pub fn append(
        &self,
        stream: &str,
        consumed: u64,
        events: Vec<Envelope>,
    ) -> Result<Vec<Arc<Record>>, LogError> {
        self.log.append(stream, consumed, events)
    }

    /// Appends `units` to `stream` without waiting for the log to hold them (see
    /// [`EventLog::append_pipelined`]).
    pub fn append_pipelined(
        &self,
        stream: &str,
        consumed: u64,
        units: Vec<Vec<Envelope>>,
    ) -> Result<(Vec<Arc<Record>>, Acked), LogError> {
        self.log.append_pipelined(stream, consumed, units)
    }
}
