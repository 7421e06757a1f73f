//! Given/when/then for testing a domain alone, without a node.
//!
//! ```
//! # use herald_runtime::testing::Scenario;
//! # fn demo<D: herald_runtime::Domain, E: herald_runtime::Event>(
//! #     past: Vec<D::Event>, input: E, ingress: D::Event, expected: D::Event,
//! # ) {
//! Scenario::<D>::new()
//!     .given(past)
//!     .when_consumed::<E>(input)      // another domain's event arrives
//!     .then_emits([expected]);        // what the domain emitted, in order
//! Scenario::<D>::new()
//!     .when_posted(ingress)           // a client posts one of its ingress types
//!     .then_rejected("already");      // refused (409), the reason containing this
//! # }
//! ```

use crate::codec::{self, FormatTag};
use crate::domain::{answer, Domain, HandleError, Params, QueryError, Rejection};
use crate::envelope::{Envelope, JSON_CONTENT_TYPE, SPEC_VERSION};
use crate::event::Event;
use crate::hosted::decode_input;
use crate::outbox::{Emitted, Outbox};
use crate::settings::Settings;
use crate::timer::TimerRequest;

/// A domain under test, fed events directly.
pub struct Scenario<D: Domain> {
    domain: D,
    inputs: u64,
    /// Its own settings so far (`with_setting`).
    settings: std::collections::BTreeMap<String, herald_config::figment::value::Value>,
    /// The timers the last handled input set or cancelled, in order.
    timers: Vec<TimerRequest<D::Event>>,
}

impl<D: Domain> Default for Scenario<D> {
    fn default() -> Self {
        Self::new()
    }
}

impl<D: Domain> Scenario<D> {
    /// A domain in its initial state, configured with its settings' defaults.
    pub fn new() -> Self {
        let mut scenario = Self {
            domain: D::default(),
            inputs: 0,
            settings: Default::default(),
            timers: Vec::new(),
        };
        scenario.configure();
        scenario
    }

    /// With the domain's own setting `key` = `value` (as `[domain.<name>]` would give it,
    /// a string such as `"10s"`). Panics if the domain refuses it.
    pub fn with_setting(mut self, key: &str, value: &str) -> Self {
        self.settings
            .insert(key.to_owned(), value.to_owned().into());
        self.configure();
        self
    }

    fn configure(&mut self) {
        let settings = Settings::new(D::NAME, std::sync::Arc::new(self.settings.clone()));
        if let Err(error) = self.domain.configure(&settings) {
            panic!("the domain refuses its settings: {error}");
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
    ///
    /// Panics if the node would refuse it before the domain sees it (422: a type not
    /// marked `from clients`, or `data` outside the type's JSON Schema): use
    /// [`Scenario::when_posted`] and [`Then::then_invalid`] to test that.
    pub fn when_ingress(&mut self, event: impl Into<D::Event>) -> Result<(), Rejection> {
        let event = event.into();
        if let Err(invalid) = postable(&event) {
            panic!("the node would refuse this event before the domain saw it: {invalid}");
        }
        self.admit(&event)
    }

    /// What the node does with a postable event: validated, then applied if accepted.
    fn admit(&mut self, event: &D::Event) -> Result<(), Rejection> {
        self.domain.validate(event)?;
        self.domain.apply(event);
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
        let mut outbox = Outbox::at(crate::hosted::input_time(&envelope));
        // The host throws away what a failing handler changed: so does the scenario.
        let before = codec::encode(FormatTag::StateV1, &self.domain).expect(
            "the state encodes as snapshots do (bincode: no serde_json::Value, no flatten)",
        );
        let handled =
            decode_input::<D>(&envelope).and_then(|input| self.domain.handle(input, &mut outbox));
        if let Err(error) = handled {
            self.domain = codec::decode(FormatTag::StateV1, &before).expect(
                "the state decodes as snapshots do (bincode: no skip_serializing_if, no untagged)",
            );
            return Err(error);
        }
        let mut emitted = Vec::new();
        self.timers.clear();
        for item in outbox.into_emitted() {
            match item {
                Emitted::Event(event) => emitted.push(event),
                Emitted::Timer(request) => self.timers.push(request),
            }
        }
        for event in &emitted {
            self.domain.apply(event);
        }
        Ok(emitted)
    }

    /// When another domain's event arrives; check the outcome with [`Then`].
    pub fn when_consumed<E: Event>(mut self, event: impl Into<E>) -> Then<D> {
        let outcome = self
            .when_input::<E>(event)
            .map_err(|error| Failure::Failed(error.message));
        Then {
            scenario: self,
            outcome,
        }
    }

    /// When a client posts one of the domain's ingress events; check the outcome with
    /// [`Then`] (an accepted event is what it "emits").
    pub fn when_posted(mut self, event: impl Into<D::Event>) -> Then<D> {
        let event = event.into();
        let outcome = match postable(&event) {
            Err(invalid) => Err(Failure::Invalid(invalid)),
            Ok(()) => match self.admit(&event) {
                Ok(()) => Ok(vec![event]),
                Err(rejection) => Err(Failure::Rejected(rejection.reason)),
            },
        };
        Then {
            scenario: self,
            outcome,
        }
    }

    /// The domain's state.
    pub fn state(&self) -> &D {
        &self.domain
    }

    /// One entity's JSON, as `GET /v1/domains/{domain}/entities/{key}` would show it.
    pub fn entity(&self, key: &str) -> Option<serde_json::Value> {
        self.domain
            .entity(key)
            .map(|entity| answer(&entity).expect("the entity encodes as JSON"))
    }

    /// A named query's answer.
    pub fn query(&self, name: &str, params: &Params) -> Result<serde_json::Value, QueryError> {
        self.domain.query(name, params)
    }
}

/// Whether the node would take `event` from a client at all: its type marked `from
/// clients`, its `data` within the type's JSON Schema (else the node answers 422).
fn postable<E: Event>(event: &E) -> Result<(), String> {
    let name = event.type_name();
    let Some(event_type) = E::types().into_iter().find(|t| t.name == name) else {
        return Err(format!("{name} is not a type of its enum"));
    };
    if !event_type.ingress {
        return Err(format!(
            "{name} is not an ingress type (mark it `from clients` in events!)"
        ));
    }
    if event.subject().trim().is_empty() {
        return Err(format!(
            "{name} has an empty key (data.{}), the event's subject",
            event.key_field()
        ));
    }
    let validator = jsonschema::validator_for(&event_type.schema)
        .map_err(|error| format!("the JSON Schema of {name} does not compile: {error}"))?;
    let data: serde_json::Value = serde_json::from_slice(&event.to_data())
        .map_err(|error| format!("data of {name} is not JSON: {error}"))?;
    let violation = validator.iter_errors(&data).next().map(|error| {
        format!(
            "data of {name} does not fit its schema at \"{}\": {error}",
            error.instance_path()
        )
    });
    match violation {
        None => Ok(()),
        Some(violation) => Err(violation),
    }
}

/// What went wrong in a [`Then`]'s step.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Failure {
    /// The node would refuse the posted event before the domain saw it (422).
    Invalid(String),
    /// The domain refused a posted event, with this reason.
    Rejected(String),
    /// The handler failed, with this message.
    Failed(String),
}

impl Failure {
    /// Its reason or message.
    fn text(&self) -> &str {
        match self {
            Failure::Invalid(text) | Failure::Rejected(text) | Failure::Failed(text) => text,
        }
    }
}

/// The outcome of one `when_*` step, to check; each check panics with what happened instead.
#[must_use = "check the outcome with then_emits, then_emits_nothing, then_rejected, then_invalid or then_fails"]
pub struct Then<D: Domain> {
    scenario: Scenario<D>,
    outcome: Result<Vec<D::Event>, Failure>,
}

impl<D: Domain> Then<D> {
    /// The step scheduled timer `name` to fire `event` at `at`; check the emitted events
    /// next.
    #[track_caller]
    pub fn then_schedules(
        self,
        name: &str,
        at: time::OffsetDateTime,
        event: impl Into<D::Event>,
    ) -> Self {
        let wanted = TimerRequest::Schedule {
            name: name.to_owned(),
            at,
            event: event.into(),
        };
        assert!(
            self.scenario.timers.contains(&wanted),
            "expected {wanted:?} among the timers set: {:?}",
            self.scenario.timers
        );
        self
    }

    /// The step cancelled timer `name`; check the emitted events next.
    #[track_caller]
    pub fn then_cancels(self, name: &str) -> Self {
        let wanted = TimerRequest::Cancel {
            name: name.to_owned(),
        };
        assert!(
            self.scenario.timers.contains(&wanted),
            "expected timer {name:?} cancelled, among: {:?}",
            self.scenario.timers
        );
        self
    }

    /// The step succeeded and emitted exactly `expected`, in order; the scenario goes on.
    #[track_caller]
    pub fn then_emits(
        self,
        expected: impl IntoIterator<Item = impl Into<D::Event>>,
    ) -> Scenario<D> {
        let expected: Vec<D::Event> = expected.into_iter().map(Into::into).collect();
        match self.outcome {
            Ok(emitted) => assert_eq!(emitted, expected, "emitted events"),
            Err(failure) => panic!("expected {expected:?} emitted, but {failure:?}"),
        }
        self.scenario
    }

    /// The step succeeded and emitted nothing; the scenario goes on.
    #[track_caller]
    pub fn then_emits_nothing(self) -> Scenario<D> {
        self.then_emits(Vec::<D::Event>::new())
    }

    /// The domain refused the posted event, with a reason containing `reason`.
    #[track_caller]
    pub fn then_rejected(self, reason: &str) -> Scenario<D> {
        self.then_failed(Failure::Rejected, "a rejection", reason)
    }

    /// The node would refuse the posted event before the domain saw it (422: not an
    /// ingress type, or `data` outside its schema), with a reason containing `reason`.
    #[track_caller]
    pub fn then_invalid(self, reason: &str) -> Scenario<D> {
        self.then_failed(Failure::Invalid, "the node to refuse it", reason)
    }

    /// The handler failed, with a message containing `message`; what it changed before
    /// failing is undone, as the host does.
    #[track_caller]
    pub fn then_fails(self, message: &str) -> Scenario<D> {
        self.then_failed(Failure::Failed, "the handler to fail", message)
    }

    /// The step failed as `kind` (a variant of [`Failure`]), its text containing `text`.
    #[track_caller]
    fn then_failed(self, kind: fn(String) -> Failure, what: &str, text: &str) -> Scenario<D> {
        match &self.outcome {
            Err(failure) if *failure == kind(failure.text().to_owned()) => {
                assert!(
                    failure.text().contains(text),
                    "expected {what} with {text:?}, got {failure:?}"
                );
            }
            other => panic!("expected {what} with {text:?}, got {other:?}"),
        }
        self.scenario
    }
}
