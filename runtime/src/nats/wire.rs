//! Records as NATS messages: the CloudEvents NATS binding (binary mode) plus Herald's
//! bookkeeping headers, so any NATS client can read Herald's events and Herald can read
//! its records back whole.
//!
//! Body = `data`. CloudEvents attributes are `ce-<name>` headers; `datacontenttype` is
//! `content-type`; `traceparent` keeps its W3C name. Herald's own fields (`herald-*`) say
//! where the record sits; `Nats-` headers are the server's.

use async_nats::HeaderMap;
use uuid::Uuid;

use crate::cloudevent::is_attribute;
use crate::envelope::{Cause, Envelope, Position};
use crate::log::Record;

const CE_ID: &str = "ce-id";
const CE_SOURCE: &str = "ce-source";
const CE_SPECVERSION: &str = "ce-specversion";
const CE_TYPE: &str = "ce-type";
const CE_SUBJECT: &str = "ce-subject";
const CE_TIME: &str = "ce-time";
const CE_PARTITIONKEY: &str = "ce-partitionkey";
const CE_CAUSE_SOURCE: &str = "ce-causesource";
const CE_CAUSE_ID: &str = "ce-causeid";
const CE_CAUSE_STREAM: &str = "ce-causestream";
const CE_CAUSE_SEQUENCE: &str = "ce-causesequence";
const CONTENT_TYPE: &str = "content-type";
const TRACEPARENT: &str = "traceparent";
const H_STREAM: &str = "herald-stream";
const H_SEQUENCE: &str = "herald-sequence";
const H_OWN: &str = "herald-own";
const H_CONSUMED: &str = "herald-consumed";
const H_GROUP_REST: &str = "herald-group-rest";
const H_APPENDED: &str = "herald-appended";

/// A message that is not a Herald record: names the header and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("message is not a Herald record: header {header} {problem}")]
pub struct WireError {
    /// The header at fault.
    pub header: &'static str,
    /// What is wrong with it.
    pub problem: String,
}

/// A subject token from a free string: NATS tokens must not hold `.`, `*`, `>` or spaces.
pub fn token(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '.' | '*' | '>' | ' ' | '\t' | '\r' | '\n' => '_',
            c => c,
        })
        .collect()
}

/// The per-key subject token: 16 hex digits of xxh3 of the partition key.
pub fn key_token(partitionkey: &str) -> String {
    format!(
        "{:016x}",
        xxhash_rust::xxh3::xxh3_64(partitionkey.as_bytes())
    )
}

/// `Nats-Msg-Id` of an event in a stream: derived from `source` and `id` (length-prefixed,
/// so no two pairs collide), bounded in length, and distinct per stream.
pub fn msg_id(stream: &str, source: &str, id: &str) -> String {
    let mut name = Vec::with_capacity(stream.len() + source.len() + id.len() + 24);
    for part in [stream, source, id] {
        name.extend_from_slice(&(part.len() as u64).to_be_bytes());
        name.extend_from_slice(part.as_bytes());
    }
    Uuid::new_v5(&Uuid::NAMESPACE_OID, &name).to_string()
}

/// The headers of `record`.
pub fn headers(record: &Record, own: u64) -> HeaderMap {
    let envelope = &record.envelope;
    let mut headers = HeaderMap::new();
    headers.insert(CE_ID, envelope.id.as_str());
    headers.insert(CE_SOURCE, envelope.source.as_str());
    headers.insert(CE_SPECVERSION, envelope.specversion.as_str());
    headers.insert(CE_TYPE, envelope.event_type.as_str());
    headers.insert(CE_SUBJECT, envelope.subject.as_str());
    headers.insert(CE_TIME, envelope.time.as_str());
    headers.insert(CE_PARTITIONKEY, envelope.partitionkey.as_str());
    headers.insert(CONTENT_TYPE, envelope.datacontenttype.as_str());
    if let Some(traceparent) = &envelope.traceparent {
        headers.insert(TRACEPARENT, traceparent.as_str());
    }
    for (name, value) in &envelope.extensions {
        // Extensions never carry an attribute's name (the parser refuses them), but a
        // record must not let one shadow the attribute's own header.
        if !is_attribute(name) {
            headers.insert(format!("ce-{name}").as_str(), value.as_str());
        }
    }
    if let Some(cause) = &envelope.cause {
        headers.insert(CE_CAUSE_SOURCE, cause.source.as_str());
        headers.insert(CE_CAUSE_ID, cause.id.as_str());
        headers.insert(CE_CAUSE_STREAM, cause.position.stream.as_str());
        headers.insert(
            CE_CAUSE_SEQUENCE,
            cause.position.sequence.to_string().as_str(),
        );
    }
    headers.insert(H_STREAM, envelope.stream.as_str());
    headers.insert(H_SEQUENCE, envelope.sequence.to_string().as_str());
    headers.insert(H_OWN, own.to_string().as_str());
    headers.insert(H_CONSUMED, record.consumed.to_string().as_str());
    headers.insert(H_GROUP_REST, record.group_rest.to_string().as_str());
    headers.insert(H_APPENDED, record.appended_ms.to_string().as_str());
    headers
}

/// Reads a record back. `offset` is where the reader found it: the own counter for the
/// domain's own streams (`None`: take `herald-own`), the inbox sequence for inputs.
pub fn record(headers: &HeaderMap, body: &[u8], offset: Option<u64>) -> Result<Record, WireError> {
    let text = |name: &'static str| -> Result<String, WireError> {
        headers
            .get(name)
            .map(|value| value.as_str().to_owned())
            .ok_or(WireError {
                header: name,
                problem: "is missing".into(),
            })
    };
    let number = |name: &'static str| -> Result<u64, WireError> {
        let value = text(name)?;
        value.parse().map_err(|_| WireError {
            header: name,
            problem: format!("is \"{value}\", not a number"),
        })
    };
    let optional = |name: &str| headers.get(name).map(|value| value.as_str().to_owned());
    let cause = match optional(CE_CAUSE_ID) {
        Some(id) => Some(Cause {
            source: text(CE_CAUSE_SOURCE)?,
            id,
            position: Position {
                stream: text(CE_CAUSE_STREAM)?,
                sequence: number(CE_CAUSE_SEQUENCE)?,
            },
        }),
        None => None,
    };
    let mut extensions = Vec::new();
    for (name, values) in headers.iter() {
        let name: &str = name.as_ref();
        let Some(extension) = name.strip_prefix("ce-") else {
            continue;
        };
        if is_attribute(extension) {
            continue;
        }
        if let Some(value) = values.first() {
            extensions.push((extension.to_owned(), value.as_str().to_owned()));
        }
    }
    // Header order is not kept by the map: a stable order keeps replays identical.
    extensions.sort();
    let envelope = Envelope {
        id: text(CE_ID)?,
        source: text(CE_SOURCE)?,
        specversion: text(CE_SPECVERSION)?,
        event_type: text(CE_TYPE)?,
        subject: text(CE_SUBJECT)?,
        time: text(CE_TIME)?,
        datacontenttype: text(CONTENT_TYPE)?,
        data: body.to_vec(),
        partitionkey: text(CE_PARTITIONKEY)?,
        traceparent: optional(TRACEPARENT),
        extensions,
        cause,
        stream: text(H_STREAM)?,
        sequence: number(H_SEQUENCE)?,
    };
    let group_rest = number(H_GROUP_REST)?;
    Ok(Record {
        offset: match offset {
            Some(offset) => offset,
            None => number(H_OWN)?,
        },
        consumed: number(H_CONSUMED)?,
        appended_ms: number(H_APPENDED)?,
        group_rest: u32::try_from(group_rest).map_err(|_| WireError {
            header: H_GROUP_REST,
            problem: format!("is {group_rest}, beyond a batch's size"),
        })?,
        envelope,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Record {
        Record {
            offset: 7,
            consumed: 3,
            appended_ms: 1_700_000_000_000,
            group_rest: 2,
            envelope: Envelope {
                id: "id-1".into(),
                source: "/client".into(),
                specversion: "1.0".into(),
                event_type: "orders.OrderPlaced".into(),
                subject: "o-1".into(),
                time: "2026-11-26T00:00:00Z".into(),
                datacontenttype: "application/json".into(),
                data: br#"{"order":"o-1"}"#.to_vec(),
                partitionkey: "o-1".into(),
                traceparent: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into()),
                extensions: vec![
                    ("region".into(), "eu".into()),
                    ("tenant".into(), "t1".into()),
                ],
                cause: Some(Cause {
                    source: "/herald/payments".into(),
                    id: "c-1".into(),
                    position: Position {
                        stream: "payments".into(),
                        sequence: 9,
                    },
                }),
                stream: "orders".into(),
                sequence: 4,
            },
        }
    }

    #[test]
    fn a_record_round_trips_through_headers_and_body() {
        let record = sample();
        let headers = headers(&record, 7);
        assert_eq!(
            super::record(&headers, &record.envelope.data, None),
            Ok(record.clone())
        );
        let mut at_inbox = record.clone();
        at_inbox.offset = 42;
        assert_eq!(
            super::record(&headers, &record.envelope.data, Some(42)),
            Ok(at_inbox)
        );
    }

    #[test]
    fn a_missing_header_is_named() {
        let record = sample();
        let mut headers = headers(&record, 7);
        headers.insert(H_SEQUENCE, "x");
        let error = super::record(&headers, b"{}", None).unwrap_err();
        assert_eq!(error.header, H_SEQUENCE);
        assert!(error.to_string().contains("\"x\""), "{error}");
    }

    #[test]
    fn message_ids_depend_on_stream_source_and_id_only() {
        assert_eq!(msg_id("orders", "/a", "1"), msg_id("orders", "/a", "1"));
        assert_ne!(msg_id("orders", "/a", "1"), msg_id("orders", "/a1", ""));
        assert_ne!(msg_id("orders", "/a", "1"), msg_id("in-orders", "/a", "1"));
        assert_eq!(token("orders.OrderPlaced"), "orders_OrderPlaced");
        assert_eq!(key_token("o-1").len(), 16);
    }
}
