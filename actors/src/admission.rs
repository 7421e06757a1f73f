//! Backpressure at the door of each domain: a bounded number of ingress requests may be
//! queued for (or handled by) a domain host; the next one is answered 429 at once.
//!
//! actix's mailbox bound does not hold for the gateway: every request sends through its own
//! clone of the host's address, and actix gives each sender one message beyond the
//! capacity (as futures' bounded channels do), so `send` and `try_send` alike would queue
//! without bound. Instead each domain has a semaphore of `mailbox_capacity` slots. A
//! request takes a slot without waiting (`try_acquire`: atomic, so no check-then-send race)
//! and the slot travels inside the message ([`Admitted`]); the host frees it when it
//! handles the message. So a client that hangs up cannot free its slot while its message is
//! still queued, and the ingress messages in a host's mailbox never exceed the capacity.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use actix::prelude::*;
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

/// A domain refused a request: all its ingress slots are taken (the gateway answers 429).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overloaded {
    /// The domain (or partition stream).
    pub domain: String,
    /// Its slots.
    pub capacity: usize,
}

/// The ingress slots of one domain, and how often it had to refuse.
#[derive(Debug)]
pub struct Admission {
    slots: Arc<Semaphore>,
    capacity: usize,
    refused: AtomicU64,
}

/// One taken slot; dropping it frees the slot.
#[derive(Debug)]
pub struct Slot {
    _permit: OwnedSemaphorePermit,
}

impl Admission {
    /// `capacity` slots (the domain's `mailbox_capacity`).
    pub fn new(capacity: usize) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(capacity)),
            capacity,
            refused: AtomicU64::new(0),
        }
    }

    /// Takes a slot, or says `domain` is overloaded when all are taken.
    pub fn admit(&self, domain: &str) -> Result<Slot, Overloaded> {
        match Arc::clone(&self.slots).try_acquire_owned() {
            Ok(permit) => Ok(Slot { _permit: permit }),
            Err(_) => Err(self.overloaded(domain)),
        }
    }

    /// Counts a refusal and says so: for a full set of slots, or a message actix's own
    /// mailbox refused.
    pub(crate) fn overloaded(&self, domain: &str) -> Overloaded {
        self.refused.fetch_add(1, Ordering::Relaxed);
        Overloaded {
            domain: domain.to_owned(),
            capacity: self.capacity,
        }
    }

    /// The number of slots.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Slots taken now: ingress requests queued for or being handled by the host.
    pub fn in_flight(&self) -> usize {
        self.capacity.saturating_sub(self.slots.available_permits())
    }

    /// How many requests were refused with 429 since the node started.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

/// A host message that holds an ingress slot until the host handles it, and the channel
/// its answer goes back on (so the gateway can `try_send` and still get a reply).
pub(crate) struct Admitted<M: Message> {
    /// The message.
    pub message: M,
    /// The slot it holds.
    pub slot: Slot,
    /// Where its answer goes.
    pub reply: oneshot::Sender<M::Result>,
}

impl<M: Message> Message for Admitted<M> {
    type Result = ();
}

/// Why an admitted message got no answer.
#[derive(Debug)]
pub(crate) enum Undelivered {
    /// The mailbox refused it (actix's own bound); answered like a full domain.
    Full,
    /// The host is not running.
    Gone,
}

/// Sends `message` with its `slot` without waiting for mailbox room, then awaits the answer.
pub(crate) async fn ask<A, M>(
    addr: &Addr<A>,
    message: M,
    slot: Slot,
) -> Result<M::Result, Undelivered>
where
    A: Actor<Context = Context<A>> + Handler<Admitted<M>>,
    M: Message + Send + 'static,
    M::Result: Send,
{
    let (reply, answer) = oneshot::channel();
    addr.try_send(Admitted {
        message,
        slot,
        reply,
    })
    .map_err(|error| match error {
        SendError::Full(_) => Undelivered::Full,
        SendError::Closed(_) => Undelivered::Gone,
    })?;
    answer.await.map_err(|_| Undelivered::Gone)
}
