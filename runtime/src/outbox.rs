//! What a handler sees of its input ([`Incoming`]) and where it puts what it emits ([`Outbox`]).

use serde::de::DeserializeOwned;

use crate::domain::HandleError;
use crate::envelope::{Envelope, Position};

/// A subscribed event as a handler receives it.
#[derive(Debug, Clone, Copy)]
pub struct Incoming<'a> {
    envelope: &'a Envelope,
}

impl<'a> Incoming<'a> {
    /// Wraps an appended envelope.
    pub fn new(envelope: &'a Envelope) -> Self {
        Self { envelope }
    }

    /// Full type name, for example `orders.OrderPlaced`.
    pub fn event_type(&self) -> &'a str {
        &self.envelope.event_type
    }

    /// The entity key.
    pub fn subject(&self) -> &'a str {
        &self.envelope.subject
    }

    /// Where the event sits in its stream.
    pub fn position(&self) -> Position {
        self.envelope.position()
    }

    /// The whole envelope, for what the accessors above do not cover.
    pub fn envelope(&self) -> &'a Envelope {
        self.envelope
    }

    /// Decodes `data` into the payload type the handler expects.
    pub fn data<T: DeserializeOwned>(&self) -> Result<T, HandleError> {
        serde_json::from_slice(&self.envelope.data).map_err(|error| {
            HandleError::new(format!(
                "data of {} at {}#{} does not decode as {}: {error}",
                self.envelope.event_type,
                self.envelope.stream,
                self.envelope.sequence,
                std::any::type_name::<T>()
            ))
        })
    }
}

/// The events a handler emits, in order; the host appends them to the domain's stream.
#[derive(Debug)]
pub struct Outbox<E> {
    emitted: Vec<E>,
}

impl<E> Default for Outbox<E> {
    fn default() -> Self {
        Self {
            emitted: Vec::new(),
        }
    }
}

impl<E> Outbox<E> {
    /// Emits one of the domain's own events.
    pub fn emit(&mut self, event: impl Into<E>) {
        self.emitted.push(event.into());
    }

    /// The emitted events, in emission order.
    pub fn into_events(self) -> Vec<E> {
        self.emitted
    }
}
