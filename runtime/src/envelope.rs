//! The CloudEvents 1.0 envelope every event travels in, and the position Herald gives it.

use serde::{Deserialize, Serialize};

/// The CloudEvents spec version Herald speaks.
pub const SPEC_VERSION: &str = "1.0";

/// The only `datacontenttype` Herald stores: `data` is JSON.
pub const JSON_CONTENT_TYPE: &str = "application/json";

/// One event: CloudEvents attributes plus where Herald put it.
///
/// Fixed-shape on purpose: bincode cannot decode self-describing values, so `data` is kept
/// as the bytes of its JSON and optional attributes are plain `Option`s.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Identifies the event together with `source`.
    pub id: String,
    /// The context that produced the event (a URI reference).
    pub source: String,
    /// Always [`SPEC_VERSION`].
    pub specversion: String,
    /// Full type name, `<domain>.<EventName>`.
    pub event_type: String,
    /// The entity key.
    pub subject: String,
    /// RFC 3339 timestamp; Herald stamps one when the producer gave none.
    pub time: String,
    /// Always [`JSON_CONTENT_TYPE`].
    pub datacontenttype: String,
    /// The JSON text of `data`.
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
    /// Events with the same partition key are processed in order; defaults to `subject`.
    pub partitionkey: String,
    /// W3C trace context, carried through untouched.
    pub traceparent: Option<String>,
    /// Other CloudEvents extension attributes, as strings.
    pub extensions: Vec<(String, String)>,
    /// The input whose handling emitted this event; `None` for ingress.
    pub cause: Option<Cause>,
    /// The stream (domain) this event was appended to.
    pub stream: String,
    /// Dense position in `stream`, from 1; 0 until appended.
    pub sequence: u64,
}

/// Where an event sits: its stream and its sequence in it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Position {
    /// Stream name (the owning domain).
    pub stream: String,
    /// Sequence in the stream, from 1.
    pub sequence: u64,
}

/// The input an emitted event was caused by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cause {
    /// `source` of the input.
    pub source: String,
    /// `id` of the input.
    pub id: String,
    /// Where the input sits.
    pub position: Position,
}

impl Envelope {
    /// The event's position, once appended.
    pub fn position(&self) -> Position {
        Position {
            stream: self.stream.clone(),
            sequence: self.sequence,
        }
    }

    /// `data` as a JSON value, for rendering to clients.
    pub fn data_json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.data).unwrap_or(serde_json::Value::Null)
    }

    /// The structured-mode CloudEvents JSON of this event, as served to clients.
    pub fn to_cloudevent_json(&self) -> serde_json::Value {
        let mut object = serde_json::Map::new();
        let mut put = |key: &str, value: serde_json::Value| {
            object.insert(key.to_owned(), value);
        };
        put("specversion", self.specversion.clone().into());
        put("id", self.id.clone().into());
        put("source", self.source.clone().into());
        put("type", self.event_type.clone().into());
        put("subject", self.subject.clone().into());
        put("time", self.time.clone().into());
        put("datacontenttype", self.datacontenttype.clone().into());
        put("partitionkey", self.partitionkey.clone().into());
        if let Some(traceparent) = &self.traceparent {
            put("traceparent", traceparent.clone().into());
        }
        for (name, value) in &self.extensions {
            put(name, value.clone().into());
        }
        if let Some(cause) = &self.cause {
            put("causesource", cause.source.clone().into());
            put("causeid", cause.id.clone().into());
            put("causestream", cause.position.stream.clone().into());
            put("causesequence", cause.position.sequence.into());
        }
        put("stream", self.stream.clone().into());
        put("sequence", self.sequence.into());
        put("data", self.data_json());
        serde_json::Value::Object(object)
    }
}

/// The current time as RFC 3339, for events that arrive without one.
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| String::from("1970-01-01T00:00:00Z"))
}
