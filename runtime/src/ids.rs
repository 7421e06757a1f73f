//! Ids of emitted events, derived from their cause so that re-running a handler on the same
//! input produces the same ids, which is how recovery tells what is already in the log.

use uuid::Uuid;

use crate::envelope::Cause;

/// Namespace of Herald's derived ids (a fixed random UUID).
const NAMESPACE: Uuid = Uuid::from_u128(0x6c1f_0a3e_52d4_4b8e_9a71_3f0c_2d9e_8b15);

/// The `source` of events a domain emits.
pub fn emitted_source(domain: &str) -> String {
    format!("/herald/domains/{domain}")
}

/// Sources under this prefix are Herald's own; clients may not use them.
pub const RESERVED_SOURCE_PREFIX: &str = "/herald/";

/// The id of the `index`-th event `domain` emits while handling `cause`.
///
/// The cause's position makes the id unique per input, even when two inputs share a
/// `source` and `id` (in two streams, or resent after the deduplication window); its
/// `source` and `id` keep ids distinct for inputs not yet appended (domain tests).
pub fn derived_id(domain: &str, cause: &Cause, index: usize) -> String {
    let position = &cause.position;
    // Length-prefix each part so ("a|b", "c") and ("a", "b|c") cannot collide.
    let name = format!(
        "{}:{domain}|{}:{}|{}|{}:{}|{}:{}|{index}",
        domain.len(),
        position.stream.len(),
        position.stream,
        position.sequence,
        cause.source.len(),
        cause.source,
        cause.id.len(),
        cause.id
    );
    Uuid::new_v5(&NAMESPACE, name.as_bytes()).to_string()
}

/// What [`derived_envelope`] builds an event of.
pub struct Derived<'a> {
    /// The emitting domain (its ids and `source`).
    pub domain: &'a str,
    /// The stream it is appended to (the domain's, or one partition's).
    pub stream: &'a str,
    /// What caused it.
    pub cause: &'a crate::envelope::Cause,
    /// Its index among the events of that cause.
    pub index: usize,
    /// When it is emitted (RFC 3339).
    pub time: &'a str,
}

/// An event a domain emits (a reaction, a timer record, a fired timer): id derived from
/// its cause and index, `source` the domain's, no trace context, version or other
/// extension yet; the caller adds those.
pub fn derived_envelope(
    of: Derived<'_>,
    event_type: String,
    subject: String,
    data: Vec<u8>,
) -> crate::envelope::Envelope {
    use crate::envelope::{Envelope, JSON_CONTENT_TYPE, SPEC_VERSION};
    Envelope {
        id: derived_id(of.domain, of.cause, of.index),
        source: emitted_source(of.domain),
        specversion: SPEC_VERSION.to_owned(),
        event_type,
        partitionkey: subject.clone(),
        subject,
        time: of.time.to_owned(),
        datacontenttype: JSON_CONTENT_TYPE.to_owned(),
        data,
        traceparent: None,
        extensions: Vec::new(),
        cause: Some(of.cause.clone()),
        stream: of.stream.to_owned(),
        sequence: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::Position;

    fn cause(source: &str, id: &str, stream: &str, sequence: u64) -> Cause {
        Cause {
            source: source.into(),
            id: id.into(),
            position: Position {
                stream: stream.into(),
                sequence,
            },
        }
    }

    #[test]
    fn same_cause_same_id_and_any_change_changes_it() {
        let input = cause("/shop", "e-1", "orders", 7);
        let id = derived_id("inventory", &input, 0);
        assert_eq!(id, derived_id("inventory", &input, 0));
        for other in [
            derived_id("payments", &input, 0),
            derived_id("inventory", &cause("/shop2", "e-1", "orders", 7), 0),
            derived_id("inventory", &cause("/shop", "e-2", "orders", 7), 0),
            derived_id("inventory", &input, 1),
            derived_id("inventory", &cause("/sho", "pe-1", "orders", 7), 0),
            // The same (source, id) in another stream, or again later: another input.
            derived_id("inventory", &cause("/shop", "e-1", "payments", 7), 0),
            derived_id("inventory", &cause("/shop", "e-1", "orders", 8), 0),
        ] {
            assert_ne!(id, other);
        }
    }
}
