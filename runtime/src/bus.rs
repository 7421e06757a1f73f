//! The in-process bus: appends to the event log and wakes the domains subscribed to what
//! was appended. Subscribers pull by cursor, so the bus carries signals, never events: a
//! slow domain is a backlog in the log, not a growing queue in memory.

use std::collections::HashMap;
use std::sync::Arc;

use dashmap::DashMap;

use crate::envelope::Envelope;
use crate::log::{EventLog, LogError, Record};

/// Something to wake when events it subscribes to were appended.
pub trait Subscriber: Send + Sync {
    /// Signals "there is more to read"; must be cheap and must not block.
    fn wake(&self);
}

/// A subscribed domain and how to wake it.
type Subscription = (String, Arc<dyn Subscriber>);

/// The log plus a registry of who consumes which event type.
pub struct Bus {
    log: Arc<dyn EventLog>,
    /// Event type to (domain, subscriber) pairs.
    subscribers: DashMap<String, Vec<Subscription>>,
}

impl Bus {
    /// A bus over `log` with no subscribers yet.
    pub fn new(log: Arc<dyn EventLog>) -> Self {
        Self {
            log,
            subscribers: DashMap::new(),
        }
    }

    /// The log behind the bus, for reading.
    pub fn log(&self) -> &dyn EventLog {
        self.log.as_ref()
    }

    /// Registers `domain` to be woken when events of any of `types` are appended.
    pub fn subscribe(&self, domain: &str, types: &[&str], subscriber: Arc<dyn Subscriber>) {
        for event_type in types {
            self.subscribers
                .entry((*event_type).to_owned())
                .or_default()
                .push((domain.to_owned(), Arc::clone(&subscriber)));
        }
    }

    /// Appends `events` to `stream` (see [`EventLog::append`]) and wakes their subscribers.
    pub fn append(
        &self,
        stream: &str,
        consumed: u64,
        events: Vec<Envelope>,
    ) -> Result<Vec<Arc<Record>>, LogError> {
        let records = self.log.append(stream, consumed, events)?;
        self.wake_subscribers(&records);
        Ok(records)
    }

    fn wake_subscribers(&self, records: &[Arc<Record>]) {
        // Wake each subscriber once per append, however many of its types were appended.
        let mut to_wake: HashMap<String, Arc<dyn Subscriber>> = HashMap::new();
        let mut seen_types: Vec<&str> = Vec::new();
        for record in records {
            let event_type = record.envelope.event_type.as_str();
            if seen_types.contains(&event_type) {
                continue;
            }
            seen_types.push(event_type);
            if let Some(entry) = self.subscribers.get(event_type) {
                for (domain, subscriber) in entry.iter() {
                    to_wake
                        .entry(domain.clone())
                        .or_insert_with(|| Arc::clone(subscriber));
                }
            }
        }
        for subscriber in to_wake.values() {
            subscriber.wake();
        }
    }
}
