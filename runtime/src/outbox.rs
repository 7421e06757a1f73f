//! Where a handler puts what it emits: the [`Outbox`].

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
