//! Given/when/then for testing a domain alone, without a node.
//!
//! ```
//! # use herald_runtime::testing::Scenario;
//! # fn demo<D: herald_runtime::Domain>(past: Vec<D::Event>) {
//! let mut scenario = Scenario::<D>::new().given(past);
//! // scenario.when_ingress(...), scenario.when_input::<OtherEvent>(...), then check
//! // what was emitted and scenario.entity(key).
//! # }
//! ```

use crate::domain::{Domain, HandleError, Params, QueryError, Rejection};
use crate::envelope::{Envelope, JSON_CONTENT_TYPE, SPEC_VERSION};
use crate::event::Event;
use crate::outbox::{Incoming, Outbox};

/// A domain under test, fed events directly.
pub struct Scenario<D: Domain> {
    domain: D,
    inputs: u64,
}

impl<D: Domain> Default for Scenario<D> {
    fn default() -> Self {
        Self::new()
    }
}

impl<D: Domain> Scenario<D> {
    /// A domain in its initial state.
    pub fn new() -> Self {
        Self {
            domain: D::default(),
            inputs: 0,
        }
    }

    /// Given the domain's own past events, applied in order.
    pub fn given(mut self, events: impl IntoIterator<Item = impl Into<D::Event>>) -> Self {
        for event in events {
            self.domain.apply(&event.into());
        }
        self
    }

    /// Given another domain's past event, handled (and what it emits applied).
    ///
    /// Panics if the handler fails: a `given` is a precondition, not the thing under test.
    pub fn given_input<E: Event>(mut self, event: impl Into<E>) -> Self {
        if let Err(error) = self.when_input::<E>(event) {
            panic!("given input failed: {error}");
        }
        self
    }

    /// When a client proposes an ingress event: validated, then applied if accepted.
    pub fn when_ingress(&mut self, event: impl Into<D::Event>) -> Result<(), Rejection> {
        let event = event.into();
        self.domain.validate(&event)?;
        self.domain.apply(&event);
        Ok(())
    }

    /// When another domain's event arrives: handled; returns what the domain emitted, which
    /// is also applied, as the host would.
    pub fn when_input<E: Event>(
        &mut self,
        event: impl Into<E>,
    ) -> Result<Vec<D::Event>, HandleError> {
        let event = event.into();
        self.inputs += 1;
        let envelope = Envelope {
            id: format!("input-{}", self.inputs),
            source: "/herald/testing".to_owned(),
            specversion: SPEC_VERSION.to_owned(),
            event_type: event.type_name().to_owned(),
            subject: event.subject().to_owned(),
            time: "2026-01-01T00:00:00Z".to_owned(),
            datacontenttype: JSON_CONTENT_TYPE.to_owned(),
            data: event.to_data(),
            partitionkey: event.subject().to_owned(),
            traceparent: None,
            extensions: Vec::new(),
            cause: None,
            stream: E::DOMAIN.to_owned(),
            sequence: self.inputs,
        };
        let mut outbox = Outbox::default();
        self.domain.handle(&Incoming::new(&envelope), &mut outbox)?;
        let emitted = outbox.into_events();
        for event in &emitted {
            self.domain.apply(event);
        }
        Ok(emitted)
    }

    /// The domain's state.
    pub fn state(&self) -> &D {
        &self.domain
    }

    /// One entity's JSON, as `GET /v1/domains/{domain}/entities/{key}` would show it.
    pub fn entity(&self, key: &str) -> Option<serde_json::Value> {
        self.domain.entity(key)
    }

    /// A named query's answer.
    pub fn query(&self, name: &str, params: &Params) -> Result<serde_json::Value, QueryError> {
        self.domain.query(name, params)
    }
}
