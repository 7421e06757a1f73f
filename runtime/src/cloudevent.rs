//! Parsing events from clients, in CloudEvents 1.0 JSON (structured mode) or as binary mode
//! (`ce-*` headers plus a JSON body), into unappended [`Envelope`]s with precise errors.

use serde_json::{Map, Value};

use crate::envelope::{now_rfc3339, Envelope, JSON_CONTENT_TYPE, SPEC_VERSION};

/// An event as parsed from a client: its envelope (not yet appended) and its `data` as JSON.
#[derive(Debug, Clone)]
pub struct ParsedEvent {
    /// The envelope, with `stream` empty and `sequence` 0.
    pub envelope: Envelope,
    /// `data`, for schema validation.
    pub data: Value,
}

/// What is wrong with a client's event; `attribute` names where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// The event is not a JSON object.
    #[error("an event must be a JSON object, found {found}")]
    NotAnObject {
        /// The JSON kind found.
        found: &'static str,
    },
    /// A required attribute is absent.
    #[error("required attribute \"{attribute}\" is missing")]
    Missing {
        /// The attribute.
        attribute: String,
    },
    /// A required attribute is an empty string.
    #[error("attribute \"{attribute}\" must not be empty")]
    Empty {
        /// The attribute.
        attribute: String,
    },
    /// An attribute has the wrong JSON type.
    #[error("attribute \"{attribute}\" must be {expected}, found {found}")]
    WrongType {
        /// The attribute.
        attribute: String,
        /// What it must be.
        expected: &'static str,
        /// The JSON kind found.
        found: &'static str,
    },
    /// `specversion` is not 1.0.
    #[error("specversion \"{0}\" is not supported; Herald speaks CloudEvents \"1.0\"")]
    SpecVersion(String),
    /// `datacontenttype` is not JSON.
    #[error("datacontenttype \"{0}\" is not supported; send data as application/json")]
    DataContentType(String),
    /// `data_base64` was used.
    #[error("data_base64 is not supported; send data as JSON in \"data\"")]
    Base64Data,
    /// `time` is not RFC 3339.
    #[error("time \"{0}\" is not an RFC 3339 timestamp such as 2026-11-25T10:00:00Z")]
    Time(String),
    /// `source` names Herald itself, which only Herald's domains may.
    #[error("source \"{0}\" is reserved: sources starting with \"/herald/\" belong to Herald's own domains; use your producer's own URI")]
    ReservedSource(String),
    /// A binary-mode `ce-*` header holds bytes that are not visible ASCII, or its
    /// percent-encoding does not decode to UTF-8.
    #[error("header \"{header}\" must be visible ASCII, with other characters percent-encoded as UTF-8 (CloudEvents HTTP binding), found {found}")]
    HeaderNotText {
        /// The header, as `ce-<attribute>`.
        header: String,
        /// What was found instead.
        found: &'static str,
    },
    /// A binary-mode `ce-*` header was sent more than once.
    #[error("header \"{header}\" is sent more than once; an attribute has one value")]
    RepeatedHeader {
        /// The header, as `ce-<attribute>`.
        header: String,
    },
    /// An extension attribute's name or value is not allowed.
    #[error("extension attribute \"{attribute}\": {why}")]
    Extension {
        /// The attribute.
        attribute: String,
        /// What is wrong.
        why: &'static str,
    },
}

impl EventError {
    /// The attribute the error is about, if any.
    pub fn attribute(&self) -> Option<&str> {
        match self {
            Self::NotAnObject { .. } => None,
            Self::HeaderNotText { header, .. } | Self::RepeatedHeader { header } => {
                Some(header.strip_prefix("ce-").unwrap_or(header))
            }
            Self::Missing { attribute }
            | Self::Empty { attribute }
            | Self::WrongType { attribute, .. }
            | Self::Extension { attribute, .. } => Some(attribute),
            Self::SpecVersion(_) => Some("specversion"),
            Self::DataContentType(_) => Some("datacontenttype"),
            Self::Base64Data => Some("data_base64"),
            Self::Time(_) => Some("time"),
            Self::ReservedSource(_) => Some("source"),
        }
    }
}

const KNOWN: [&str; 10] = [
    "id",
    "source",
    "specversion",
    "type",
    "subject",
    "time",
    "datacontenttype",
    "data",
    "partitionkey",
    "traceparent",
];

/// Attributes Herald assigns itself; a client may not set them.
pub const RESERVED: [&str; 7] = [
    "stream",
    "sequence",
    "dataschema",
    "causesource",
    "causeid",
    "causestream",
    "causesequence",
];

/// Whether `name` is a CloudEvents or Herald attribute rather than an extension.
pub(crate) fn is_attribute(name: &str) -> bool {
    KNOWN.contains(&name) || RESERVED.contains(&name)
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Reads attributes from a JSON object or from headers, the same way.
trait Attributes {
    fn get(&self, name: &str) -> Option<&Value>;
}

impl Attributes for Map<String, Value> {
    fn get(&self, name: &str) -> Option<&Value> {
        Map::get(self, name)
    }
}

fn required(attrs: &impl Attributes, name: &str) -> Result<String, EventError> {
    match optional(attrs, name)? {
        None => Err(EventError::Missing {
            attribute: name.to_owned(),
        }),
        Some(value) if value.trim().is_empty() => Err(EventError::Empty {
            attribute: name.to_owned(),
        }),
        Some(value) => Ok(value),
    }
}

fn optional(attrs: &impl Attributes, name: &str) -> Result<Option<String>, EventError> {
    match attrs.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(value)) => Ok(Some(value.clone())),
        Some(other) => Err(EventError::WrongType {
            attribute: name.to_owned(),
            expected: "a string",
            found: kind(other),
        }),
    }
}

fn check_time(time: Option<String>) -> Result<String, EventError> {
    match time {
        None => Ok(now_rfc3339()),
        Some(text) => {
            time::OffsetDateTime::parse(&text, &time::format_description::well_known::Rfc3339)
                .map_err(|_| EventError::Time(text.clone()))?;
            Ok(text)
        }
    }
}

fn check_content_type(value: Option<String>) -> Result<(), EventError> {
    match value {
        None => Ok(()),
        Some(text) => {
            let essence = text.split(';').next().unwrap_or_default().trim();
            if essence.eq_ignore_ascii_case(JSON_CONTENT_TYPE) {
                Ok(())
            } else {
                Err(EventError::DataContentType(text))
            }
        }
    }
}

/// CloudEvents names are lowercase ASCII letters and digits; Herald keeps the spec's limit.
fn valid_extension_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 20
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

fn extension_value(name: &str, value: &Value) -> Result<Option<String>, EventError> {
    match value {
        Value::Null => Ok(None),
        Value::String(text) => Ok(Some(text.clone())),
        Value::Bool(flag) => Ok(Some(flag.to_string())),
        Value::Number(number) => Ok(Some(number.to_string())),
        Value::Array(_) | Value::Object(_) => Err(EventError::Extension {
            attribute: name.to_owned(),
            why: "values must be strings, numbers or booleans",
        }),
    }
}

struct Common {
    id: String,
    source: String,
    event_type: String,
    subject: String,
    time: String,
    partitionkey: String,
    traceparent: Option<String>,
}

fn common(attrs: &impl Attributes) -> Result<Common, EventError> {
    let specversion = required(attrs, "specversion")?;
    if specversion != SPEC_VERSION {
        return Err(EventError::SpecVersion(specversion));
    }
    let id = required(attrs, "id")?;
    let source = required(attrs, "source")?;
    if source.starts_with(crate::ids::RESERVED_SOURCE_PREFIX) {
        return Err(EventError::ReservedSource(source));
    }
    let event_type = required(attrs, "type")?;
    let subject = required(attrs, "subject")?;
    let time = check_time(optional(attrs, "time")?)?;
    // One rule in both modes: data is JSON, whatever spelling says otherwise.
    check_content_type(optional(attrs, "datacontenttype")?)?;
    let partitionkey = match optional(attrs, "partitionkey")? {
        Some(key) if key.is_empty() => {
            return Err(EventError::Empty {
                attribute: "partitionkey".to_owned(),
            })
        }
        Some(key) => key,
        None => subject.clone(),
    };
    let traceparent = optional(attrs, "traceparent")?;
    Ok(Common {
        id,
        source,
        event_type,
        subject,
        time,
        partitionkey,
        traceparent,
    })
}

fn envelope(common: Common, data: &Value, extensions: Vec<(String, String)>) -> Envelope {
    Envelope {
        id: common.id,
        source: common.source,
        specversion: SPEC_VERSION.to_owned(),
        event_type: common.event_type,
        subject: common.subject,
        time: common.time,
        datacontenttype: JSON_CONTENT_TYPE.to_owned(),
        data: data.to_string().into_bytes(),
        partitionkey: common.partitionkey,
        traceparent: common.traceparent,
        extensions,
        cause: None,
        stream: String::new(),
        sequence: 0,
    }
}

/// Parses one structured-mode event.
pub fn parse_structured(value: Value) -> Result<ParsedEvent, EventError> {
    let Value::Object(object) = value else {
        return Err(EventError::NotAnObject {
            found: kind(&value),
        });
    };
    let common = common(&object)?;
    if object.contains_key("data_base64") {
        return Err(EventError::Base64Data);
    }
    let mut extensions = Vec::new();
    for (name, value) in &object {
        if KNOWN.contains(&name.as_str()) {
            continue;
        }
        if RESERVED.contains(&name.as_str()) {
            return Err(EventError::Extension {
                attribute: name.clone(),
                why: "is assigned by Herald and cannot be set by a client",
            });
        }
        if !valid_extension_name(name) {
            return Err(EventError::Extension {
                attribute: name.clone(),
                why: "names must be 1 to 20 lowercase letters or digits",
            });
        }
        if let Some(text) = extension_value(name, value)? {
            extensions.push((name.clone(), text));
        }
    }
    let data = object.get("data").cloned().unwrap_or(Value::Null);
    Ok(ParsedEvent {
        envelope: envelope(common, &data, extensions),
        data,
    })
}

/// Headers of a binary-mode request, lowercased names to values.
pub struct BinaryHeaders(Map<String, Value>);

impl BinaryHeaders {
    /// Collects the `ce-*` headers (names lowercased, prefix removed, values
    /// percent-decoded as the CloudEvents HTTP binding says). A value that is not visible
    /// ASCII, or decodes to something other than UTF-8, or a header sent twice, is an
    /// error rather than dropped: structured mode would have taken or refused the same
    /// attribute, never silently lost it.
    pub fn new<'a>(
        headers: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    ) -> Result<Self, EventError> {
        let mut map = Map::new();
        for (name, raw) in headers {
            let name = name.to_ascii_lowercase();
            let Some(attribute) = name.strip_prefix("ce-") else {
                continue;
            };
            let value = header_text(&name, raw)?;
            if map
                .insert(attribute.to_owned(), Value::String(value))
                .is_some()
            {
                return Err(EventError::RepeatedHeader { header: name });
            }
        }
        Ok(Self(map))
    }

    /// Whether the request is in binary mode at all.
    pub fn is_binary(&self) -> bool {
        self.0.contains_key("specversion")
    }
}

/// A `ce-*` header's value as text: visible ASCII (and spaces), percent-decoded as UTF-8.
fn header_text(header: &str, raw: &[u8]) -> Result<String, EventError> {
    let not_text = |found| EventError::HeaderNotText {
        header: header.to_owned(),
        found,
    };
    if let Some(&byte) = raw
        .iter()
        .find(|&&b| !(b == b' ' || b == b'\t' || b.is_ascii_graphic()))
    {
        return Err(not_text(if byte.is_ascii() {
            "a control character"
        } else {
            "a byte that is not ASCII"
        }));
    }
    percent_encoding::percent_decode(raw)
        .decode_utf8()
        .map(|text| text.into_owned())
        .map_err(|_| not_text("a percent-encoding that is not UTF-8"))
}

impl Attributes for BinaryHeaders {
    fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name)
    }
}

/// Parses one binary-mode event: attributes from `ce-*` headers, `data` from the JSON body.
pub fn parse_binary(headers: &BinaryHeaders, data: Value) -> Result<ParsedEvent, EventError> {
    let common = common(headers)?;
    let mut extensions = Vec::new();
    for (name, value) in &headers.0 {
        if KNOWN.contains(&name.as_str()) {
            continue;
        }
        if RESERVED.contains(&name.as_str()) || !valid_extension_name(name) {
            return Err(EventError::Extension {
                attribute: name.clone(),
                why: "is not a header a client may set: names are 1 to 20 lowercase letters or digits, and stream, sequence and dataschema are Herald's",
            });
        }
        if let Some(text) = extension_value(name, value)? {
            extensions.push((name.clone(), text));
        }
    }
    Ok(ParsedEvent {
        envelope: envelope(common, &data, extensions),
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn good() -> Value {
        json!({
            "specversion": "1.0", "id": "e-1", "source": "/shop", "type": "orders.OrderPlaced",
            "subject": "o-1", "data": {"order_id": "o-1"}
        })
    }

    fn with(key: &str, value: Value) -> Value {
        let mut event = good();
        event[key] = value;
        event
    }

    fn without(key: &str) -> Value {
        let mut event = good();
        event.as_object_mut().unwrap().remove(key);
        event
    }

    fn check(input: Value, expected: Result<(), EventError>) {
        let got = parse_structured(input).map(|_| ());
        assert_eq!(got, expected);
    }

    #[test]
    fn structured_events_are_checked_attribute_by_attribute() {
        let missing = |a: &str| {
            Err(EventError::Missing {
                attribute: a.into(),
            })
        };
        check(good(), Ok(()));
        check(
            json!([1]),
            Err(EventError::NotAnObject { found: "an array" }),
        );
        for attribute in ["id", "source", "type", "subject", "specversion"] {
            check(without(attribute), missing(attribute));
        }
        check(
            with("id", json!("  ")),
            Err(EventError::Empty {
                attribute: "id".into(),
            }),
        );
        check(
            with("id", json!(7)),
            Err(EventError::WrongType {
                attribute: "id".into(),
                expected: "a string",
                found: "a number",
            }),
        );
        check(
            with("specversion", json!("0.3")),
            Err(EventError::SpecVersion("0.3".into())),
        );
        check(
            with("time", json!("yesterday")),
            Err(EventError::Time("yesterday".into())),
        );
        check(with("time", json!("2026-11-25T10:00:00Z")), Ok(()));
        check(
            with("datacontenttype", json!("text/xml")),
            Err(EventError::DataContentType("text/xml".into())),
        );
        check(
            with("datacontenttype", json!("application/json; charset=utf-8")),
            Ok(()),
        );
        check(
            with("data_base64", json!("AA==")),
            Err(EventError::Base64Data),
        );
        check(with("tenant", json!("acme")), Ok(()));
        assert!(matches!(
            parse_structured(with("Tenant", json!("x"))),
            Err(EventError::Extension { .. })
        ));
        assert!(matches!(
            parse_structured(with("sequence", json!(3))),
            Err(EventError::Extension { .. })
        ));
        assert!(matches!(
            parse_structured(with("tenant", json!({"a": 1}))),
            Err(EventError::Extension { .. })
        ));
    }

    #[test]
    fn partition_key_defaults_to_subject_and_time_is_stamped() {
        let parsed = parse_structured(good()).unwrap();
        assert_eq!(parsed.envelope.partitionkey, "o-1");
        assert!(!parsed.envelope.time.is_empty());
        let parsed = parse_structured(with("partitionkey", json!("c-9"))).unwrap();
        assert_eq!(parsed.envelope.partitionkey, "c-9");
        assert_eq!(parsed.data, json!({"order_id": "o-1"}));
    }

    #[test]
    fn binary_mode_reads_ce_headers() {
        let headers = binary([
            ("ce-specversion", "1.0"),
            ("CE-ID", "e-2"),
            ("ce-source", "/shop"),
            ("ce-type", "inventory.StockAdded"),
            ("ce-subject", "sku-1"),
            ("content-type", "application/json"),
        ])
        .unwrap();
        assert!(headers.is_binary());
        let parsed = parse_binary(&headers, json!({"sku": "sku-1", "quantity": 3})).unwrap();
        assert_eq!(parsed.envelope.id, "e-2");
        assert_eq!(parsed.envelope.event_type, "inventory.StockAdded");
        let headers = binary([("ce-specversion", "1.0"), ("ce-id", "e-2")]).unwrap();
        assert_eq!(
            parse_binary(&headers, json!({})).map(|_| ()),
            Err(EventError::Missing {
                attribute: "source".into()
            })
        );
    }

    fn binary<'a>(
        headers: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<BinaryHeaders, EventError> {
        BinaryHeaders::new(
            headers
                .into_iter()
                .map(|(name, value)| (name, value.as_bytes())),
        )
    }

    #[test]
    fn binary_mode_follows_structured_rules() {
        let base = [
            ("ce-specversion", "1.0"),
            ("ce-id", "e-3"),
            ("ce-source", "/shop"),
            ("ce-type", "inventory.StockAdded"),
        ];
        let parse = |extra: &[(&'static str, &'static str)]| {
            let headers = binary(base.iter().chain(extra).copied())?;
            parse_binary(&headers, json!({})).map(|event| event.envelope)
        };
        // Percent-encoded UTF-8 is decoded, as the HTTP binding says.
        let envelope = parse(&[("ce-subject", "caf%C3%A9")]).unwrap();
        assert_eq!(envelope.subject, "café");
        let refused = |extra: &[(&'static str, &'static str)], attribute: &str| {
            let error = parse(extra).unwrap_err();
            assert_eq!(error.attribute(), Some(attribute), "{error}");
        };
        refused(
            &[("ce-subject", "s"), ("ce-datacontenttype", "text/xml")],
            "datacontenttype",
        );
        refused(&[("ce-subject", "caf%C3")], "subject");
        refused(&[("ce-subject", "s"), ("ce-subject", "t")], "subject");
        let raw = BinaryHeaders::new([("ce-subject", "café".as_bytes())]);
        assert!(matches!(
            raw,
            Err(EventError::HeaderNotText { ref header, .. }) if header == "ce-subject"
        ));
    }
}
