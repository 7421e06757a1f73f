//! Dead letters: inputs a domain's handler kept failing on, parked with their key held.
//!
//! A parked input is recorded in the domain's dead-letter stream, `deadletter-<domain>`,
//! which only the domain's host appends to. While an input is parked, later inputs with
//! the same partition key wait behind it ([`Holds`]); other keys go on. An operator's retry
//! or skip is recorded there too, in the same append as the reactions of the inputs it
//! lets through, so a release is all or nothing. Replay reads these records like the
//! domain's own, which is how parking, holding and releasing survive restarts.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::envelope::{Cause, Envelope, JSON_CONTENT_TYPE, SPEC_VERSION};
use crate::ids;
use crate::log::Record;

/// Type of the record that parks an input (or records a failed retry of a parked one).
pub const PARKED: &str = "herald.deadletter.parked";
/// Type of the record of an operator's retry that succeeded.
pub const RETRIED: &str = "herald.deadletter.retried";
/// Type of the record of an operator giving up on a parked input.
pub const SKIPPED: &str = "herald.deadletter.skipped";

/// The dead-letter stream of `domain`.
pub fn stream(domain: &str) -> String {
    format!("deadletter-{domain}")
}

/// Which input a dead letter is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputRef {
    /// The input's stream.
    pub stream: String,
    /// Its sequence in that stream.
    pub sequence: u64,
    /// Its node-wide offset.
    pub offset: u64,
    /// Its CloudEvents `id`.
    pub id: String,
    /// Its CloudEvents `source`.
    pub source: String,
    /// Its type.
    #[serde(rename = "type")]
    pub event_type: String,
    /// Its partition key: the key held while it is parked.
    pub key: String,
}

impl InputRef {
    /// The reference to an input record.
    pub fn of(record: &Record) -> Self {
        let envelope = &record.envelope;
        Self {
            stream: envelope.stream.clone(),
            sequence: envelope.sequence,
            offset: record.offset,
            id: envelope.id.clone(),
            source: envelope.source.clone(),
            event_type: envelope.event_type.clone(),
            key: envelope.partitionkey.clone(),
        }
    }

    /// The dead letter's id in the HTTP API: `<stream>-<sequence>` of the input.
    pub fn dead_letter_id(&self) -> String {
        format!("{}-{}", self.stream, self.sequence)
    }

    fn cause(&self) -> Cause {
        Cause {
            source: self.source.clone(),
            id: self.id.clone(),
            position: crate::Position {
                stream: self.stream.clone(),
                sequence: self.sequence,
            },
        }
    }
}

/// The data of a [`PARKED`] record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parked {
    /// The input.
    pub input: InputRef,
    /// The handler's last error, or the panic's message.
    pub error: String,
    /// How many times the handler ran on it, in all.
    pub attempts: u32,
    /// When it was parked (RFC 3339).
    pub parked_at: String,
}

/// The data of a [`RETRIED`] or [`SKIPPED`] record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Released {
    /// The input that was parked.
    pub input: InputRef,
}

/// A key held behind a parked input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    /// The parked input and why.
    pub parked: Parked,
    /// Offsets of the later inputs with the same key, in log order.
    pub waiting: VecDeque<u64>,
}

/// Every held key of one domain. Part of its snapshots, so that a snapshot taken while a
/// key is held restores the hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holds {
    keys: BTreeMap<String, Held>,
}

impl Holds {
    /// Whether inputs with `key` must wait.
    pub fn holds(&self, key: &str) -> bool {
        self.keys.contains_key(key)
    }

    /// Queues the input at `offset` behind its key's parked input; false if not held.
    pub fn wait(&mut self, key: &str, offset: u64) -> bool {
        match self.keys.get_mut(key) {
            Some(held) => {
                held.waiting.push_back(offset);
                true
            }
            None => false,
        }
    }

    /// Parks an input: its key is held from now on, behind `waiting`. A key already held
    /// by the same input only gets its details updated (a failed retry).
    pub fn park(&mut self, parked: Parked, waiting: VecDeque<u64>) {
        let key = parked.input.key.clone();
        match self.keys.get_mut(&key) {
            Some(held) if held.parked.input.offset == parked.input.offset => held.parked = parked,
            _ => {
                self.keys.insert(key, Held { parked, waiting });
            }
        }
    }

    /// Releases a key: its hold, if any.
    pub fn release(&mut self, key: &str) -> Option<Held> {
        self.keys.remove(key)
    }

    /// The hold whose parked input has this dead-letter id.
    pub fn find(&self, dead_letter_id: &str) -> Option<&Held> {
        self.keys
            .values()
            .find(|held| held.parked.input.dead_letter_id() == dead_letter_id)
    }

    /// Number of held keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Every hold, by key.
    pub fn iter(&self) -> impl Iterator<Item = &Held> {
        self.keys.values()
    }
}

/// The envelope of a [`PARKED`] record for `domain`.
pub fn parked_envelope(domain: &str, parked: &Parked, traceparent: Option<String>) -> Envelope {
    // Attempts make each parking of one input a distinct record (a failed retry parks again).
    let index = parked.attempts as usize;
    envelope(
        domain,
        PARKED,
        &parked.input,
        index,
        &parked.parked_at,
        data(parked),
        traceparent,
    )
}

/// The envelope of a [`RETRIED`] or [`SKIPPED`] record for `domain`.
pub fn released_envelope(
    domain: &str,
    kind: &'static str,
    input: &InputRef,
    time: &str,
) -> Envelope {
    // An input is released once; these indexes keep clear of the parking ones.
    let index = if kind == RETRIED {
        usize::MAX - 1
    } else {
        usize::MAX
    };
    let released = Released {
        input: input.clone(),
    };
    envelope(domain, kind, input, index, time, data(&released), None)
}

fn data<T: Serialize>(value: &T) -> Vec<u8> {
    // Plain structs of strings and numbers always serialize.
    serde_json::to_vec(value).unwrap_or_default()
}

fn envelope(
    domain: &str,
    kind: &str,
    input: &InputRef,
    index: usize,
    time: &str,
    data: Vec<u8>,
    traceparent: Option<String>,
) -> Envelope {
    let stream = stream(domain);
    let cause = input.cause();
    Envelope {
        id: ids::derived_id(&stream, &cause, index),
        source: ids::emitted_source(domain),
        specversion: SPEC_VERSION.to_owned(),
        event_type: kind.to_owned(),
        subject: input.dead_letter_id(),
        time: time.to_owned(),
        datacontenttype: JSON_CONTENT_TYPE.to_owned(),
        data,
        partitionkey: input.key.clone(),
        traceparent,
        extensions: Vec::new(),
        cause: Some(cause),
        stream,
        sequence: 0,
    }
}

/// What a dead-letter record says, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeadLetterRecord {
    /// An input was parked (or a retry of it failed).
    Parked(Parked),
    /// A parked input was retried successfully.
    Retried(Released),
    /// A parked input was given up on.
    Skipped(Released),
}

/// Why a dead-letter record does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("dead-letter record {stream}#{sequence} ({event_type}) does not decode: {message}")]
pub struct DeadLetterError {
    /// Its stream.
    pub stream: String,
    /// Its sequence.
    pub sequence: u64,
    /// Its type.
    pub event_type: String,
    /// Why.
    pub message: String,
}

/// Decodes a record of a dead-letter stream.
pub fn decode(envelope: &Envelope) -> Result<DeadLetterRecord, DeadLetterError> {
    let error = |message: String| DeadLetterError {
        stream: envelope.stream.clone(),
        sequence: envelope.sequence,
        event_type: envelope.event_type.clone(),
        message,
    };
    let data = &envelope.data;
    match envelope.event_type.as_str() {
        PARKED => serde_json::from_slice(data)
            .map(DeadLetterRecord::Parked)
            .map_err(|e| error(e.to_string())),
        RETRIED => serde_json::from_slice(data)
            .map(DeadLetterRecord::Retried)
            .map_err(|e| error(e.to_string())),
        SKIPPED => serde_json::from_slice(data)
            .map(DeadLetterRecord::Skipped)
            .map_err(|e| error(e.to_string())),
        other => Err(error(format!("unknown dead-letter type \"{other}\""))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(key: &str, offset: u64) -> InputRef {
        InputRef {
            stream: "feeder".into(),
            sequence: offset,
            offset,
            id: format!("e{offset}"),
            source: "/test".into(),
            event_type: "feeder.Fed".into(),
            key: key.into(),
        }
    }

    fn parked(key: &str, offset: u64, attempts: u32) -> Parked {
        Parked {
            input: input(key, offset),
            error: "boom".into(),
            attempts,
            parked_at: "2026-01-01T00:00:00Z".into(),
        }
    }

    #[test]
    fn a_held_key_queues_later_inputs_and_others_pass() {
        let mut holds = Holds::default();
        holds.park(parked("a", 3, 5), VecDeque::new());
        assert!(holds.wait("a", 7));
        assert!(!holds.wait("b", 8));
        let held = holds.release("a").expect("held");
        assert_eq!(held.waiting, VecDeque::from([7]));
        assert!(holds.is_empty());
    }

    #[test]
    fn parking_the_same_input_again_updates_it_and_keeps_the_queue() {
        let mut holds = Holds::default();
        holds.park(parked("a", 3, 5), VecDeque::new());
        holds.wait("a", 9);
        holds.park(parked("a", 3, 6), VecDeque::new());
        let held = holds.find("feeder-3").expect("found by dead-letter id");
        assert_eq!(held.parked.attempts, 6);
        assert_eq!(held.waiting, VecDeque::from([9]));
    }

    #[test]
    fn records_round_trip_and_have_distinct_ids() {
        let first = parked_envelope("faulty", &parked("a", 3, 5), None);
        let again = parked_envelope("faulty", &parked("a", 3, 6), None);
        let retried = released_envelope("faulty", RETRIED, &input("a", 3), "t");
        let skipped = released_envelope("faulty", SKIPPED, &input("a", 3), "t");
        let ids: std::collections::HashSet<_> = [&first.id, &again.id, &retried.id, &skipped.id]
            .into_iter()
            .collect();
        assert_eq!(ids.len(), 4);
        assert_eq!(first.stream, "deadletter-faulty");
        assert_eq!(
            decode(&first).expect("decodes"),
            DeadLetterRecord::Parked(parked("a", 3, 5))
        );
        assert!(matches!(decode(&skipped), Ok(DeadLetterRecord::Skipped(_))));
    }
}
