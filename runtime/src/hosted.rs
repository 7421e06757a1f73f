//! A domain behind an object-safe interface, so that one host actor serves every domain and
//! the node holds a plain list of them.

use crate::catalog::DomainDescription;
use crate::codec::{self, CodecError, FormatTag};
use crate::domain::{answer, Domain, HandleError, Params, QueryError, Rejection};
use crate::envelope::{Cause, Envelope, JSON_CONTENT_TYPE, SPEC_VERSION};
use crate::event::{DataError, Event};
use crate::ids;
use crate::input::Input;
use crate::outbox::Outbox;
use crate::trace;

/// Why a proposed ingress event was not admitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// `data` does not decode into the type (the schema should have caught it first).
    #[error(transparent)]
    Data(#[from] DataError),
    /// `subject` is not the key the data names.
    #[error("subject \"{subject}\" does not match data.{key_field} \"{key}\"; they must name the same entity")]
    SubjectMismatch {
        /// The envelope's subject.
        subject: String,
        /// The data field holding the key.
        key_field: &'static str,
        /// The key in the data.
        key: String,
    },
    /// The domain rejected it in its current state.
    #[error(transparent)]
    Rejected(#[from] Rejection),
}

/// One domain, with its event type erased: what the host actor drives.
pub trait HostedDomain: Send + Sync {
    /// The domain's name.
    fn name(&self) -> &'static str;
    /// Decodes a proposed ingress event, checks its subject, validates it and applies it.
    fn admit(&mut self, envelope: &Envelope) -> Result<(), Refusal>;
    /// Applies one of the domain's own appended events.
    fn apply(&mut self, envelope: &Envelope) -> Result<(), DataError>;
    /// Handles a subscribed input; returns the emitted events as envelopes ready to append.
    ///
    /// Emitted events are not applied here: the host applies them once appended, and replay
    /// applies them where it meets them in the log, so each is applied exactly once.
    fn handle(&mut self, input: &Envelope, time: &str) -> Result<Vec<Envelope>, HandleError>;
    /// Handles an input whose reactions are already in the log: only the state changes,
    /// so no envelopes (ids, JSON) are built for reactions replay would discard.
    fn rehandle(&mut self, input: &Envelope) -> Result<(), HandleError>;
    /// One entity's state; an error when it does not encode as JSON.
    fn entity(&self, key: &str) -> Result<Option<serde_json::Value>, QueryError>;
    /// A named query.
    fn query(&self, name: &str, params: &Params) -> Result<serde_json::Value, QueryError>;
    /// The whole state as bytes, for a snapshot.
    fn save_state(&self) -> Result<Vec<u8>, CodecError>;
    /// Replaces the whole state with one saved by [`HostedDomain::save_state`].
    fn load_state(&mut self, bytes: &[u8]) -> Result<(), CodecError>;
}

struct Hosted<D: Domain>(D);

impl<D: Domain> HostedDomain for Hosted<D> {
    fn name(&self) -> &'static str {
        D::NAME
    }

    fn admit(&mut self, envelope: &Envelope) -> Result<(), Refusal> {
        let event = D::Event::from_data(&envelope.event_type, &envelope.data)?;
        if event.subject() != envelope.subject {
            return Err(Refusal::SubjectMismatch {
                subject: envelope.subject.clone(),
                key_field: event.key_field(),
                key: event.subject().to_owned(),
            });
        }
        self.0.validate(&event)?;
        self.0.apply(&event);
        Ok(())
    }

    fn apply(&mut self, envelope: &Envelope) -> Result<(), DataError> {
        let event = D::Event::from_data(&envelope.event_type, &envelope.data)?;
        self.0.apply(&event);
        Ok(())
    }

    fn handle(&mut self, input: &Envelope, time: &str) -> Result<Vec<Envelope>, HandleError> {
        let mut outbox = Outbox::default();
        self.0.handle(decode_input::<D>(input)?, &mut outbox)?;
        let emitted = outbox.into_events();
        let cause = Cause {
            source: input.source.clone(),
            id: input.id.clone(),
            position: input.position(),
        };
        // The trace continues through the reaction: each event carries the span that
        // emitted it, a child of this domain's handling of the input.
        let handle = match emitted.is_empty() {
            true => None,
            false => Some(trace::handling(D::NAME, input).0),
        };
        Ok(emitted
            .into_iter()
            .enumerate()
            .map(|(index, event)| emitted_envelope::<D>(&event, &cause, index, time, handle))
            .collect())
    }

    fn rehandle(&mut self, input: &Envelope) -> Result<(), HandleError> {
        let mut outbox = Outbox::default();
        self.0.handle(decode_input::<D>(input)?, &mut outbox)
    }

    fn entity(&self, key: &str) -> Result<Option<serde_json::Value>, QueryError> {
        // An entity that does not encode (a map with non-string keys) is a bug in the
        // domain: answered 500 naming it, never as an absent entity.
        self.0.entity(key).map(|entity| answer(&entity)).transpose()
    }

    fn query(&self, name: &str, params: &Params) -> Result<serde_json::Value, QueryError> {
        self.0.query(name, params)
    }

    fn save_state(&self) -> Result<Vec<u8>, CodecError> {
        codec::encode(FormatTag::StateV1, &self.0)
    }

    fn load_state(&mut self, bytes: &[u8]) -> Result<(), CodecError> {
        self.0 = codec::decode(FormatTag::StateV1, bytes)?;
        Ok(())
    }
}

/// Decodes a consumed record into the domain's input enum, once, for its handler.
pub(crate) fn decode_input<D: Domain>(input: &Envelope) -> Result<D::Input, HandleError> {
    D::Input::decode(&input.event_type, &input.data).map_err(|error| {
        HandleError::new(format!(
            "input {}#{} into {}: {error}",
            input.stream,
            input.sequence,
            std::any::type_name::<D::Input>()
        ))
    })
}

fn emitted_envelope<D: Domain>(
    event: &D::Event,
    cause: &Cause,
    index: usize,
    time: &str,
    handle: Option<trace::TraceContext>,
) -> Envelope {
    let subject = event.subject().to_owned();
    let id = ids::derived_id(D::NAME, cause, index);
    let traceparent = handle.map(|handle| trace::emitting(&handle, &id).traceparent());
    Envelope {
        id,
        source: ids::emitted_source(D::NAME),
        specversion: SPEC_VERSION.to_owned(),
        event_type: event.type_name().to_owned(),
        partitionkey: subject.clone(),
        subject,
        time: time.to_owned(),
        datacontenttype: JSON_CONTENT_TYPE.to_owned(),
        data: event.to_data(),
        traceparent,
        extensions: Vec::new(),
        cause: Some(cause.clone()),
        stream: D::NAME.to_owned(),
        sequence: 0,
    }
}

/// A registered domain: how to describe it and how to make a fresh one.
#[derive(Clone, Copy)]
pub struct DomainEntry {
    /// The domain's name.
    pub name: &'static str,
    create: fn() -> Box<dyn HostedDomain>,
    describe: fn() -> DomainDescription,
}

impl DomainEntry {
    /// The entry for domain `D`; one line per domain in `domains/src/lib.rs`.
    pub fn of<D: Domain>() -> Self {
        Self {
            name: D::NAME,
            create: || Box::new(Hosted(D::default())),
            describe: DomainDescription::of::<D>,
        }
    }

    /// A fresh domain value in its initial state.
    pub fn create(&self) -> Box<dyn HostedDomain> {
        (self.create)()
    }

    /// The domain's types, schemas, ingress and subscriptions.
    pub fn describe(&self) -> DomainDescription {
        (self.describe)()
    }
}

impl std::fmt::Debug for DomainEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DomainEntry")
            .field("name", &self.name)
            .finish()
    }
}
