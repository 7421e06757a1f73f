//! The one place Herald turns records into bytes and back: bincode 2, behind a format tag.
//!
//! Every encoded value starts with a one-byte [`FormatTag`], so a reader can tell what it
//! holds and refuse what it does not know instead of misreading it.

use serde::{de::DeserializeOwned, Serialize};

/// What kind of value follows the tag, and in which layout version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FormatTag {
    /// An [`crate::Envelope`] in layout 1.
    EnvelopeV1 = 1,
    /// A log record (envelope plus node-wide position) in layout 1.
    RecordV1 = 2,
    /// A domain snapshot (positions plus state) in layout 1.
    SnapshotV1 = 3,
    /// A domain's state, as the domain's own serde layout.
    StateV1 = 4,
    /// A domain snapshot with its dead-letter position and held keys (layout 2).
    SnapshotV2 = 5,
    /// A request forwarded to the node hosting a domain (networked mode), layout 1.
    ForwardRequestV1 = 6,
    /// The hosting node's reply to a forwarded request, layout 1.
    ForwardReplyV1 = 7,
    /// A log record in layout 2: a fixed header of positions, then the envelope
    /// (`log/staged.rs`), so the envelope can be encoded before the log's lock.
    RecordV2 = 8,
    /// Forwarded requests travelling together: each a [`FormatTag::ForwardRequestV1`] frame.
    ForwardBatchV1 = 9,
    /// The answers to a [`FormatTag::ForwardBatchV1`], in order: each a
    /// [`FormatTag::ForwardReplyV1`] frame.
    ForwardBatchReplyV1 = 10,
    /// A domain's state with its pending timers (layout 2): the timers, the input
    /// positions handled, then the domain's own serde layout.
    StateV2 = 11,
}

impl FormatTag {
    fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            1 => Some(Self::EnvelopeV1),
            2 => Some(Self::RecordV1),
            3 => Some(Self::SnapshotV1),
            4 => Some(Self::StateV1),
            5 => Some(Self::SnapshotV2),
            6 => Some(Self::ForwardRequestV1),
            7 => Some(Self::ForwardReplyV1),
            8 => Some(Self::RecordV2),
            9 => Some(Self::ForwardBatchV1),
            10 => Some(Self::ForwardBatchReplyV1),
            11 => Some(Self::StateV2),
            _ => None,
        }
    }
}

/// Why bytes could not be decoded or a value encoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The input was empty: not even a tag.
    #[error("empty input: expected a format tag byte")]
    Empty,
    /// The tag byte is not one Herald knows.
    #[error("unknown format tag {0}; this file was written by a newer Herald or is damaged")]
    UnknownTag(u8),
    /// The tag is known but is not the one the caller expected.
    #[error("format tag {found:?} where {expected:?} was expected")]
    WrongTag {
        /// What the caller asked for.
        expected: FormatTag,
        /// What the bytes hold.
        found: FormatTag,
    },
    /// bincode could not decode the body.
    #[error("cannot decode {tag:?}: {source}")]
    Decode {
        /// The tag of the value.
        tag: FormatTag,
        /// bincode's reason.
        source: bincode::error::DecodeError,
    },
    /// bincode could not encode the value.
    #[error("cannot encode {tag:?}: {source}")]
    Encode {
        /// The tag of the value.
        tag: FormatTag,
        /// bincode's reason.
        source: bincode::error::EncodeError,
    },
    /// A layout with a fixed part got fewer bytes than that part needs.
    #[error("a {tag:?} value of {len} bytes is too short: it needs at least {min}")]
    Truncated {
        /// The layout.
        tag: FormatTag,
        /// The bytes there were.
        len: usize,
        /// The fewest it can have.
        min: usize,
    },
    /// Bytes were left over after the value: the frame is not what it claims.
    #[error("{extra} trailing bytes after a {tag:?} value")]
    Trailing {
        /// The tag of the value.
        tag: FormatTag,
        /// How many bytes were left.
        extra: usize,
    },
}

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// Encodes `value` as `tag` followed by its bincode bytes.
pub fn encode<T: Serialize>(tag: FormatTag, value: &T) -> Result<Vec<u8>, CodecError> {
    let mut bytes = vec![tag as u8];
    bincode::serde::encode_into_std_write(value, &mut bytes, config())
        .map_err(|source| CodecError::Encode { tag, source })?;
    Ok(bytes)
}

/// Appends what [`encode`] would return to `out`.
pub fn encode_into<T: Serialize>(
    tag: FormatTag,
    value: &T,
    out: &mut Vec<u8>,
) -> Result<(), CodecError> {
    out.push(tag as u8);
    bincode::serde::encode_into_std_write(value, out, config())
        .map(|_| ())
        .map_err(|source| CodecError::Encode { tag, source })
}

/// Encodes `value`'s bincode bytes alone, for a layout that writes its own tag (`tag` only
/// names it in errors).
pub fn encode_body_into<T: Serialize>(
    tag: FormatTag,
    value: &T,
    out: &mut Vec<u8>,
) -> Result<(), CodecError> {
    bincode::serde::encode_into_std_write(value, out, config())
        .map(|_| ())
        .map_err(|source| CodecError::Encode { tag, source })
}

/// Decodes bincode bytes that are exactly one value, bounded as [`decode`] is; `tag`
/// names the layout in errors.
pub fn decode_body<T: DeserializeOwned>(tag: FormatTag, body: &[u8]) -> Result<T, CodecError> {
    let (value, read) =
        decode_bounded(body).map_err(|source| CodecError::Decode { tag, source })?;
    if read != body.len() {
        return Err(CodecError::Trailing {
            tag,
            extra: body.len() - read,
        });
    }
    Ok(value)
}

/// How much memory decoding may claim per input byte. bincode reserves a string's or
/// buffer's declared length before reading it, so without a limit a corrupt length (behind
/// a valid checksum: a writer bug, a hand-edited file) aborts the process on a terabyte
/// allocation instead of failing as a decode error. In-memory sizes exceed encoded sizes
/// (a one-byte integer becomes eight, a map entry dozens), hence a generous factor.
const CLAIM_PER_BYTE: usize = 64;

/// Decodes with a claim limit proportional to the input: the smallest power-of-16 budget
/// (from 1 MiB) that covers [`CLAIM_PER_BYTE`] per byte. bincode's limit is a constant.
fn decode_bounded<T: DeserializeOwned>(
    body: &[u8],
) -> Result<(T, usize), bincode::error::DecodeError> {
    use bincode::serde::decode_from_slice;
    let budget = body.len().saturating_mul(CLAIM_PER_BYTE);
    let standard = config();
    if budget <= 1 << 20 {
        decode_from_slice(body, standard.with_limit::<{ 1 << 20 }>())
    } else if budget <= 1 << 24 {
        decode_from_slice(body, standard.with_limit::<{ 1 << 24 }>())
    } else if budget <= 1 << 28 {
        decode_from_slice(body, standard.with_limit::<{ 1 << 28 }>())
    } else if budget <= 1 << 32 {
        decode_from_slice(body, standard.with_limit::<{ 1 << 32 }>())
    } else {
        decode_from_slice(body, standard.with_limit::<{ 1 << 36 }>())
    }
}

/// Decodes bytes written by [`encode`] with the same `tag`.
pub fn decode<T: DeserializeOwned>(expected: FormatTag, bytes: &[u8]) -> Result<T, CodecError> {
    let (&first, body) = bytes.split_first().ok_or(CodecError::Empty)?;
    let found = FormatTag::from_byte(first).ok_or(CodecError::UnknownTag(first))?;
    if found != expected {
        return Err(CodecError::WrongTag { expected, found });
    }
    let (value, read) =
        decode_bounded(body).map_err(|source| CodecError::Decode { tag: found, source })?;
    if read != body.len() {
        return Err(CodecError::Trailing {
            tag: found,
            extra: body.len() - read,
        });
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_corrupt_length_is_a_decode_error_not_an_abort() {
        // Found by fuzzing (fuzz/known-issues): an envelope id declaring ~2^56 bytes.
        let bytes = [
            0x02, 0x15, 0x01, 0x01, 0x00, 0xfd, 0xa8, 0x30, 0x01, 0x01, 0x01, 0x00, 0x00, 0x01,
        ];
        let decoded = decode::<crate::log::Record>(FormatTag::RecordV1, &bytes);
        assert!(
            matches!(decoded, Err(CodecError::Decode { .. })),
            "{decoded:?}"
        );
    }
    use crate::envelope::{Cause, Envelope, Position};

    fn sample() -> Envelope {
        Envelope {
            id: "evt-1".into(),
            source: "/clients/shop".into(),
            specversion: "1.0".into(),
            event_type: "orders.OrderPlaced".into(),
            subject: "o-1".into(),
            time: "2026-11-25T10:00:00Z".into(),
            datacontenttype: "application/json".into(),
            data: br#"{"order_id":"o-1","nested":{"a":[1,2,null]}}"#.to_vec(),
            partitionkey: "o-1".into(),
            traceparent: None,
            extensions: vec![("tenant".into(), "acme".into())],
            cause: Some(Cause {
                source: "/clients/shop".into(),
                id: "evt-0".into(),
                position: Position {
                    stream: "inventory".into(),
                    sequence: 7,
                },
            }),
            stream: "orders".into(),
            sequence: 42,
        }
    }

    #[test]
    fn envelope_round_trips_with_json_data_as_bytes() {
        let envelope = sample();
        let bytes = encode(FormatTag::EnvelopeV1, &envelope).unwrap();
        assert_eq!(bytes[0], FormatTag::EnvelopeV1 as u8);
        let back: Envelope = decode(FormatTag::EnvelopeV1, &bytes).unwrap();
        assert_eq!(back, envelope);
        assert_eq!(back.data_json()["nested"]["a"][1], 2);
    }

    #[test]
    fn refuses_wrong_unknown_and_truncated_input() {
        let bytes = encode(FormatTag::EnvelopeV1, &sample()).unwrap();
        assert!(matches!(
            decode::<Envelope>(FormatTag::SnapshotV1, &bytes),
            Err(CodecError::WrongTag { .. })
        ));
        let mut unknown = bytes.clone();
        unknown[0] = 99;
        assert!(matches!(
            decode::<Envelope>(FormatTag::EnvelopeV1, &unknown),
            Err(CodecError::UnknownTag(99))
        ));
        assert!(matches!(
            decode::<Envelope>(FormatTag::EnvelopeV1, &bytes[..bytes.len() / 2]),
            Err(CodecError::Decode { .. })
        ));
        let mut longer = bytes;
        longer.push(0);
        assert!(matches!(
            decode::<Envelope>(FormatTag::EnvelopeV1, &longer),
            Err(CodecError::Trailing { extra: 1, .. })
        ));
        assert!(matches!(
            decode::<Envelope>(FormatTag::EnvelopeV1, &[]),
            Err(CodecError::Empty)
        ));
    }
}
