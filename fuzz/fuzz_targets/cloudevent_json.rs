//! Client input: arbitrary bytes as the body of `POST /v1/events`, decoded the way the
//! gateway decodes them (`actors/src/gateway/ingest.rs`, `parse`): JSON, then one event
//! (structured mode) or every element of an array (batch mode), and, when the input is
//! header lines, a blank line and a body, binary mode (`ce-*` headers plus a JSON body).
//!
//! Beyond "no panic", every event that parses must:
//! - carry what a client event always carries (no stream, sequence or cause; JSON `data`
//!   whose stored bytes read back as the `data` the schema was checked against);
//! - round-trip through the codec (`FormatTag::EnvelopeV1`) to an equal envelope;
//! - render (`Envelope::to_cloudevent_json`, what `/v1/streams` serves) to JSON that parses
//!   back to an equal envelope once the attributes Herald assigns (`stream`, `sequence`) are
//!   removed, and that is refused while they are present: they are reserved by design;
//! - parse to the same envelope in binary mode, when its attributes can be sent as headers.

#![no_main]

use herald_runtime::cloudevent::{self, BinaryHeaders, EventError, ParsedEvent};
use herald_runtime::codec::{self, FormatTag};
use herald_runtime::Envelope;
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

fuzz_target!(|input: &[u8]| {
    if let Some((headers, body)) = binary_request(input) {
        binary_mode(&headers, body);
    }
    // The content type picks the mode, not the body, so any body may meet either parser.
    let Ok(json) = serde_json::from_slice::<Value>(input) else {
        return;
    };
    structured_mode(json.clone());
    if let Value::Array(items) = json {
        batch_mode(items);
    }
});

/// `application/cloudevents+json`: one event.
fn structured_mode(json: Value) {
    let object = json.as_object().cloned();
    if let Ok(event) = cloudevent::parse_structured(json) {
        let object = object.expect("only an object parses as an event");
        check_event(&event);
        same_in_binary_mode(&object, &event);
    }
}

/// `application/cloudevents-batch+json`: every element, stopping at the first refusal.
fn batch_mode(items: Vec<Value>) {
    if items.is_empty() {
        return; // The gateway answers "empty batch" before parsing.
    }
    let objects: Vec<Option<Map<String, Value>>> =
        items.iter().map(|item| item.as_object().cloned()).collect();
    let parsed: Result<Vec<ParsedEvent>, EventError> = items
        .into_iter()
        .map(cloudevent::parse_structured)
        .collect();
    if let Ok(events) = parsed {
        for (event, object) in events.iter().zip(objects) {
            check_event(event);
            same_in_binary_mode(&object.expect("only objects parse as events"), event);
        }
    }
}

/// `application/json` with `ce-*` headers: the gateway reads the headers actix-web hands
/// it (names lowercased, values that are visible ASCII) and the body as JSON `data`.
fn binary_mode(headers: &[(String, String)], body: &[u8]) {
    // Without `ce-specversion` the gateway answers 415 before reading anything.
    if !headers.iter().any(|(name, _)| name == "ce-specversion") {
        return;
    }
    let Ok(data) = serde_json::from_slice::<Value>(body) else {
        return;
    };
    let Ok(headers) = BinaryHeaders::new(
        headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_bytes())),
    ) else {
        return;
    };
    if let Ok(event) = cloudevent::parse_binary(&headers, data) {
        check_event(&event);
    }
}

/// Header names (lowercased) and values, in request order.
type Headers = Vec<(String, String)>;

/// Splits `input` into header lines (`name: value`) and a body at the first blank line,
/// keeping only headers an HTTP server would pass on as text; `None` if there is no blank
/// line or the head is not text.
fn binary_request(input: &[u8]) -> Option<(Headers, &[u8])> {
    let split = input.windows(2).position(|pair| pair == b"\n\n")?;
    let head = std::str::from_utf8(&input[..split]).ok()?;
    let body = &input[split + 2..];
    let headers = head
        .lines()
        .filter_map(|line| {
            let (name, value) = line.split_once(':')?;
            let value = value.trim_matches([' ', '\t']);
            (is_token(name) && is_header_text(value))
                .then(|| (name.to_ascii_lowercase(), value.to_owned()))
        })
        .collect();
    Some((headers, body))
}

/// An HTTP header name (RFC 9110 `token`).
fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A value `HeaderValue::to_str` accepts, as the server hands it on (surrounding blanks
/// removed).
fn is_header_text(value: &str) -> bool {
    value
        .bytes()
        .all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
        && value.trim_matches([' ', '\t']) == value
}

/// `text` as a header value: visible ASCII but `%` kept, every other byte as `%XX`.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_graphic() && b != b'%' {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn check_event(event: &ParsedEvent) {
    let envelope = &event.envelope;
    assert_eq!(envelope.specversion, "1.0");
    assert_eq!(envelope.datacontenttype, "application/json");
    assert!(envelope.stream.is_empty() && envelope.sequence == 0);
    assert!(envelope.cause.is_none(), "a client event has no cause");
    assert!(
        !envelope.source.starts_with("/herald/"),
        "reserved source accepted: {:?}",
        envelope.source
    );
    // The schema is checked against `event.data`; the domain decodes `envelope.data`.
    let stored: Value =
        serde_json::from_slice(&envelope.data).expect("stored data is the JSON text of data");
    assert_eq!(
        stored, event.data,
        "stored data bytes do not read back as the validated data"
    );

    let bytes = codec::encode(FormatTag::EnvelopeV1, envelope).expect("an envelope encodes");
    let decoded: Envelope = codec::decode(FormatTag::EnvelopeV1, &bytes).expect("and decodes");
    assert_eq!(&decoded, envelope);

    let Value::Object(mut rendered) = envelope.to_cloudevent_json() else {
        panic!("to_cloudevent_json renders an object");
    };
    for cause in ["causesource", "causeid", "causestream", "causesequence"] {
        assert!(!rendered.contains_key(cause));
    }
    // As served, the event names its stream and sequence, which a client may not set.
    match cloudevent::parse_structured(Value::Object(rendered.clone())) {
        Err(EventError::Extension { attribute, .. })
            if attribute == "stream" || attribute == "sequence" => {}
        other => panic!("a served event with stream and sequence was not refused: {other:?}"),
    }
    assert_eq!(rendered.remove("stream"), Some(Value::from("")));
    assert_eq!(rendered.remove("sequence"), Some(Value::from(0)));
    let reparsed = cloudevent::parse_structured(Value::Object(rendered))
        .unwrap_or_else(|error| panic!("a rendered event does not parse back: {error}"));
    assert_eq!(&reparsed.envelope, envelope, "render and parse differ");
    assert_eq!(reparsed.data, event.data);
}

/// Sends the structured event's attributes as `ce-*` headers and its `data` as the body:
/// both modes read attributes the same way, so they must agree.
fn same_in_binary_mode(object: &Map<String, Value>, structured: &ParsedEvent) {
    let mut headers = Vec::new();
    for (name, value) in object {
        if name == "data" {
            continue;
        }
        let text = match value {
            Value::Null => continue,
            Value::String(text) => text.clone(),
            Value::Bool(_) | Value::Number(_) => value.to_string(),
            Value::Array(_) | Value::Object(_) => unreachable!("refused by parse_structured"),
        };
        // Every string is representable: the HTTP binding percent-encodes what is not
        // visible ASCII (and `%` itself).
        headers.push((format!("ce-{name}"), percent_encode(&text)));
    }
    let data = object.get("data").cloned().unwrap_or(Value::Null);
    let headers = BinaryHeaders::new(
        headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_bytes())),
    )
    .unwrap_or_else(|error| panic!("percent-encoded headers refused: {error}"));
    let mut binary = match cloudevent::parse_binary(&headers, data) {
        Ok(event) => event,
        Err(error) => panic!("structured accepted, binary refused: {error}"),
    };
    if object.get("time").is_none_or(Value::is_null) {
        // Each parse stamps its own time.
        binary.envelope.time.clone_from(&structured.envelope.time);
    }
    assert_eq!(
        binary.envelope, structured.envelope,
        "binary and structured differ"
    );
    assert_eq!(binary.data, structured.data);
}
