//! Where a handler puts what it emits: the [`Outbox`].

use time::OffsetDateTime;

use crate::timer::TimerRequest;

/// The events a handler emits, in order, and the timers it sets or cancels; the host
/// appends them to the domain's stream.
#[derive(Debug)]
pub struct Outbox<E> {
    emitted: Vec<Emitted<E>>,
    now: OffsetDateTime,
}

/// One thing a handler put in its outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Emitted<E> {
    /// An event to append now.
    Event(E),
    /// A timer set or cancelled.
    Timer(TimerRequest<E>),
}

impl<E> Default for Outbox<E> {
    fn default() -> Self {
        Self::at(OffsetDateTime::UNIX_EPOCH)
    }
}

impl<E> Outbox<E> {
    /// An empty outbox for handling an input recorded at `now`.
    pub fn at(now: OffsetDateTime) -> Self {
        Self {
            emitted: Vec::new(),
            now,
        }
    }

    /// The time of the input being handled (its `time` attribute), the domain's only clock:
    /// replay hands in the same time, so it reaches the same decisions.
    pub fn now(&self) -> OffsetDateTime {
        self.now
    }

    /// Emits one of the domain's own events.
    pub fn emit(&mut self, event: impl Into<E>) {
        self.emitted.push(Emitted::Event(event.into()));
    }

    /// Appends `event` at or after `at`, once, as timer `name`: the schedule is logged with
    /// this input's reactions and survives restarts and moves. A pending timer of the same
    /// name is replaced. The event must belong to this domain (and partition), as any
    /// emitted event must.
    pub fn schedule(&mut self, name: impl Into<String>, at: OffsetDateTime, event: impl Into<E>) {
        self.emitted.push(Emitted::Timer(TimerRequest::Schedule {
            name: name.into(),
            at,
            event: event.into(),
        }));
    }

    /// Cancels timer `name` if it is still pending; nothing if it fired or never was.
    pub fn cancel(&mut self, name: impl Into<String>) {
        self.emitted
            .push(Emitted::Timer(TimerRequest::Cancel { name: name.into() }));
    }

    /// The emitted events alone, in emission order (timers left out).
    pub fn into_events(self) -> Vec<E> {
        self.emitted
            .into_iter()
            .filter_map(|emitted| match emitted {
                Emitted::Event(event) => Some(event),
                Emitted::Timer(_) => None,
            })
            .collect()
    }

    /// Everything emitted, events and timers, in order.
    pub fn into_emitted(self) -> Vec<Emitted<E>> {
        self.emitted
    }
}
