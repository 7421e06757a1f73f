//! A domain behind an object-safe interface, so that one host actor serves every domain and
//! the node holds a plain list of them.

use crate::catalog::DomainDescription;
use crate::codec::{self, CodecError, FormatTag};
use crate::domain::{answer, Domain, HandleError, Params, QueryError, Rejection};
use crate::envelope::{Cause, Envelope};
use crate::event::{DataError, Event};
use crate::ids;
use crate::input::Input;
use crate::outbox::{Emitted, Outbox};
use crate::settings::{SettingValues, Settings, SettingsError};
use crate::timer::{self, TimerRequest, Timers};
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
    /// When the earliest pending timer may fire.
    fn next_timer(&self) -> Option<time::OffsetDateTime>;
    /// The records of the timers due at `now`, ready to append to `stream`, stamped `time`:
    /// each one's event, or a cancel record where the domain's `validate` refuses it.
    fn due_timers(&self, stream: &str, now: time::OffsetDateTime, time: &str) -> Vec<Envelope>;
    /// The highest sequence of input stream `stream` the state reflects the handling of.
    fn consumed(&self, stream: &str) -> u64;
    /// Up to `limit` entities after key `after`, in key order, each with its key, and
    /// whether more follow.
    fn list(&self, after: Option<&str>, limit: usize) -> Result<Listed, QueryError>;
}

/// A page of entities: each key with its entity's JSON, and whether more follow.
pub type Listed = (Vec<(String, serde_json::Value)>, bool);

struct Hosted<D: Domain> {
    domain: D,
    timers: Timers,
    /// The highest sequence of each input stream whose record the handler has run on (and
    /// whose reactions the state therefore holds): what read-your-writes waits for.
    consumed: std::collections::BTreeMap<String, u64>,
    settings: SettingValues,
}

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
        self.domain.validate(&event)?;
        self.domain.apply(&event);
        Ok(())
    }

    fn apply(&mut self, envelope: &Envelope) -> Result<(), DataError> {
        if timer::is_timer_record(&envelope.event_type) {
            return self
                .timers
                .apply_record(envelope)
                .map_err(|error| DataError::Invalid {
                    type_name: envelope.event_type.clone(),
                    message: error.reason,
                });
        }
        let version = crate::event::stored_version(envelope);
        let event = D::Event::decode_stored(&envelope.event_type, version, &envelope.data)?;
        self.domain.apply(&event);
        self.timers.note_applied(envelope);
        Ok(())
    }

    fn handle(&mut self, input: &Envelope, time: &str) -> Result<Vec<Envelope>, HandleError> {
        let mut outbox = Outbox::at(input_time(input));
        self.domain.handle(decode_input::<D>(input)?, &mut outbox)?;
        self.note_consumed(input);
        let emitted = self.records(outbox.into_emitted());
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
            .map(|(index, event)| emitted_envelope::<D>(event, &cause, index, time, handle))
            .collect())
    }

    fn rehandle(&mut self, input: &Envelope) -> Result<(), HandleError> {
        let mut outbox = Outbox::at(input_time(input));
        self.domain.handle(decode_input::<D>(input)?, &mut outbox)?;
        self.note_consumed(input);
        Ok(())
    }

    fn entity(&self, key: &str) -> Result<Option<serde_json::Value>, QueryError> {
        // An entity that does not encode (a map with non-string keys) is a bug in the
        // domain: answered 500 naming it, never as an absent entity.
        self.domain
            .entity(key)
            .map(|entity| answer(&entity))
            .transpose()
    }

    fn query(&self, name: &str, params: &Params) -> Result<serde_json::Value, QueryError> {
        self.domain.query(name, params)
    }

    fn save_state(&self) -> Result<Vec<u8>, CodecError> {
        codec::encode(
            FormatTag::StateV2,
            &(&self.timers, &self.consumed, &self.domain),
        )
    }

    fn load_state(&mut self, bytes: &[u8]) -> Result<(), CodecError> {
        // A state saved before timers existed holds none.
        (self.timers, self.consumed, self.domain) = match bytes.first() {
            Some(&tag) if tag == FormatTag::StateV1 as u8 => (
                Timers::default(),
                Default::default(),
                codec::decode(FormatTag::StateV1, bytes)?,
            ),
            _ => codec::decode(FormatTag::StateV2, bytes)?,
        };
        // Checked when the node started (`DomainEntry::configured`).
        let _ = self
            .domain
            .configure(&Settings::new(D::NAME, self.settings.clone()));
        Ok(())
    }

    fn next_timer(&self) -> Option<time::OffsetDateTime> {
        self.timers.next_due()
    }

    fn due_timers(&self, stream: &str, now: time::OffsetDateTime, time: &str) -> Vec<Envelope> {
        // A due event is proposed to `validate` as a client's would be: one the state has
        // made moot (an order cancelled meanwhile) drops its timer instead, logged.
        self.timers
            .due(now)
            .into_iter()
            .map(|(name, pending)| {
                let checked =
                    D::Event::decode_stored(&pending.event_type, pending.version, &pending.data)
                        .map_err(|error| error.to_string())
                        .and_then(|event| {
                            self.domain
                                .validate(&event)
                                .map_err(|rejection| rejection.to_string())
                        });
                match checked {
                    Ok(()) => pending.fired(D::NAME, stream, name, time),
                    Err(reason) => pending.refused(D::NAME, stream, name, &reason, time),
                }
            })
            .collect()
    }

    fn consumed(&self, stream: &str) -> u64 {
        self.consumed.get(stream).copied().unwrap_or(0)
    }

    fn list(&self, after: Option<&str>, limit: usize) -> Result<Listed, QueryError> {
        // Keys without an entity are passed over, so keep asking until the page is full:
        // a short page would make the merged page end early and skip keys.
        let mut page = Vec::with_capacity(limit.min(1024));
        let mut from = after.map(str::to_owned);
        loop {
            let keys = self.domain.keys(from.as_deref(), limit.saturating_add(1));
            let exhausted = keys.len() <= limit;
            for key in keys {
                if page.len() == limit {
                    return Ok((page, true));
                }
                if let Some(entity) = self.domain.entity(&key) {
                    page.push((key.clone(), answer(&entity)?));
                }
                from = Some(key);
            }
            if exhausted {
                return Ok((page, false));
            }
        }
    }
}

/// What a handler put in its outbox, as records to append (before ids and positions): its
/// events, and a schedule or cancel record per timer request. A cancel of a timer that is
/// not pending (it fired, or never was) writes nothing.
enum Reaction<E> {
    Event(E),
    Record {
        event_type: &'static str,
        subject: String,
        data: Vec<u8>,
    },
}

impl<D: Domain> Hosted<D> {
    fn note_consumed(&mut self, input: &Envelope) {
        // Per input: no allocation once the stream is known.
        match self.consumed.get_mut(&input.stream) {
            Some(seen) => *seen = (*seen).max(input.sequence),
            None => {
                self.consumed.insert(input.stream.clone(), input.sequence);
            }
        }
    }

    fn records(&self, emitted: Vec<Emitted<D::Event>>) -> Vec<Reaction<D::Event>> {
        // Timers this outbox schedules, by name, with their subjects: a later cancel in the
        // same outbox cancels them.
        let mut scheduled: Vec<(String, String)> = Vec::new();
        let mut out = Vec::with_capacity(emitted.len());
        for item in emitted {
            match item {
                Emitted::Event(event) => out.push(Reaction::Event(event)),
                Emitted::Timer(TimerRequest::Schedule { name, at, event }) => {
                    let subject = event.subject().to_owned();
                    let data = timer::scheduled_data(
                        &name,
                        at,
                        (event.type_name(), event.version()),
                        &subject,
                        &event.to_data(),
                    );
                    scheduled.push((name, subject.clone()));
                    out.push(Reaction::Record {
                        event_type: timer::SCHEDULED,
                        subject,
                        data,
                    });
                }
                Emitted::Timer(TimerRequest::Cancel { name }) => {
                    let subject = scheduled
                        .iter()
                        .rev()
                        .find(|(scheduled, _)| *scheduled == name)
                        .map(|(_, subject)| subject.clone())
                        .or_else(|| self.timers.subject_of(&name).map(str::to_owned));
                    if let Some(subject) = subject {
                        out.push(Reaction::Record {
                            event_type: timer::CANCELLED,
                            subject,
                            data: timer::cancelled_data(&name),
                        });
                    }
                }
            }
        }
        out
    }
}

/// The time of `input`, the domain's clock while it handles it; the Unix epoch when it
/// does not parse (never for a record Herald stored), so replay still agrees.
pub(crate) fn input_time(input: &Envelope) -> time::OffsetDateTime {
    time::OffsetDateTime::parse(&input.time, &time::format_description::well_known::Rfc3339)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

/// Decodes a consumed record into the domain's input enum, once, for its handler.
pub(crate) fn decode_input<D: Domain>(input: &Envelope) -> Result<D::Input, HandleError> {
    // An input stored at an older version of its type is upcast first: the handler sees
    // only the current layout.
    let version = crate::event::stored_version(input);
    D::Input::decode_stored(&input.event_type, version, &input.data).map_err(|error| {
        HandleError::new(format!(
            "input {}#{} into {}: {error}",
            input.stream,
            input.sequence,
            std::any::type_name::<D::Input>()
        ))
    })
}

fn emitted_envelope<D: Domain>(
    reaction: Reaction<D::Event>,
    cause: &Cause,
    index: usize,
    time: &str,
    handle: Option<trace::TraceContext>,
) -> Envelope {
    let (event_type, subject, data, version) = match reaction {
        Reaction::Event(event) => (
            event.type_name().to_owned(),
            event.subject().to_owned(),
            event.to_data(),
            event.version(),
        ),
        Reaction::Record {
            event_type,
            subject,
            data,
        } => (event_type.to_owned(), subject, data, 1),
    };
    let of = ids::Derived {
        domain: D::NAME,
        stream: D::NAME,
        cause,
        index,
        time,
    };
    let mut envelope = ids::derived_envelope(of, event_type, subject, data);
    envelope.traceparent =
        handle.map(|handle| trace::emitting(&handle, &envelope.id).traceparent());
    crate::event::mark_version(&mut envelope, version);
    envelope
}

/// A registered domain: how to describe it and how to make a fresh one, with the domain's
/// own settings.
#[derive(Clone)]
pub struct DomainEntry {
    /// The domain's name.
    pub name: &'static str,
    create: fn(&SettingValues) -> Result<Box<dyn HostedDomain>, SettingsError>,
    describe: fn() -> DomainDescription,
    settings: SettingValues,
}

impl DomainEntry {
    /// The entry for domain `D`; one line per domain in `domains/src/lib.rs`.
    pub fn of<D: Domain>() -> Self {
        Self {
            name: D::NAME,
            create: |settings| {
                let mut domain = D::default();
                let read = Settings::new(D::NAME, settings.clone());
                domain.configure(&read)?;
                if let Some(key) = read.unread().into_iter().next() {
                    let known = read.known();
                    let candidates = known
                        .iter()
                        .map(String::as_str)
                        .chain(herald_config::RUNTIME_DOMAIN_KEYS.iter().copied());
                    let hint = match herald_config::nearest(&key, candidates) {
                        Some(near) => format!("did you mean \"{near}\"?"),
                        None => "remove it".to_owned(),
                    };
                    let takes = match known.is_empty() {
                        true => format!("{} takes no settings of its own", D::NAME),
                        false => format!("{} takes {}", D::NAME, known.join(", ")),
                    };
                    return Err(read.error(&key, format!("not a setting ({takes}); {hint}")));
                }
                Ok(Box::new(Hosted {
                    domain,
                    timers: Timers::default(),
                    consumed: Default::default(),
                    settings: settings.clone(),
                }))
            },
            describe: DomainDescription::of::<D>,
            settings: SettingValues::default(),
        }
    }

    /// This entry with the domain's own settings `values`, checked: every key must be one
    /// the domain reads, with a value it takes.
    pub fn configured(
        mut self,
        values: std::collections::BTreeMap<String, herald_config::figment::value::Value>,
    ) -> Result<Self, SettingsError> {
        self.settings = std::sync::Arc::new(values);
        (self.create)(&self.settings)?;
        Ok(self)
    }

    /// A fresh domain value in its initial state.
    pub fn create(&self) -> Box<dyn HostedDomain> {
        match (self.create)(&self.settings) {
            Ok(domain) => domain,
            // `configured` checked these settings; an entry never configured has none.
            Err(error) => panic!("domain settings were checked at start: {error}"),
        }
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
