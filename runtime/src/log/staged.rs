//! A record's bytes, prepared before the log's lock is taken.
//!
//! Appends from every host meet at one lock (offsets are node-wide and the file is one), so
//! whatever can be done before it is done by the appending thread: the envelope is encoded
//! and checksummed, and the hashes the log indexes it by are computed. Under the lock the
//! log only assigns the offset and sequence, writes them in a fixed-size trailer after the
//! bytes, continues the checksum over the trailer and copies (layout `RecordV2`). The
//! positions go last so the checksum of everything before them is computed outside the
//! lock and merely continued under it (combining two checksums in the other order costs
//! microseconds).
//!
//! `RecordV2` payload: tag, the bincode envelope with sequence 0, then offset, consumed,
//! appended_ms (u64 LE each), group_rest (u32 LE), sequence (u64 LE). Records written as
//! `RecordV1` (one bincode `Record`) are still read.

use super::{dedup, Record};
use crate::codec::{self, CodecError, FormatTag};
use crate::envelope::Envelope;

/// The trailer of a `RecordV2` payload: the fields assigned under the lock.
pub(crate) const TRAILER_LEN: usize = 8 + 8 + 8 + 4 + 8;

/// An event encoded for appending, waiting for its place.
pub(crate) struct Staged {
    /// The event, its `stream` filled in; `sequence` is set once placed.
    pub envelope: Envelope,
    /// The tag and the bincode envelope, with sequence 0: the payload before its trailer.
    pub body: Vec<u8>,
    /// CRC32C of `body`, to be continued over the trailer.
    pub body_crc: u32,
    /// The event's key in the deduplication index.
    pub dedup_key: u64,
    /// Its `partitionkey` hashed, for the index ([`crate::partition::key_hash`]).
    pub key_hash: u32,
}

impl Staged {
    /// Encodes `envelope` for `stream`.
    pub fn new(stream: &str, mut envelope: Envelope) -> Result<Self, CodecError> {
        envelope.stream.clear();
        envelope.stream.push_str(stream);
        envelope.sequence = 0;
        let mut body = Vec::with_capacity(256 + envelope.data.len());
        body.push(FormatTag::RecordV2 as u8);
        codec::encode_body_into(FormatTag::RecordV2, &envelope, &mut body)?;
        Ok(Self {
            body_crc: crc32c::crc32c(&body),
            dedup_key: dedup::key(stream, &envelope.source, &envelope.id),
            key_hash: crate::partition::key_hash(&envelope.partitionkey),
            body,
            envelope,
        })
    }

    /// The frame's size on disk.
    pub fn frame_len(&self) -> usize {
        super::frame::HEADER_LEN + self.body.len() + TRAILER_LEN
    }

    /// Appends the frame of this event placed at `place` to `out`, and answers its record.
    pub fn write(self, place: Place, out: &mut Vec<u8>) -> Record {
        let mut trailer = [0u8; TRAILER_LEN];
        trailer[0..8].copy_from_slice(&place.offset.to_le_bytes());
        trailer[8..16].copy_from_slice(&place.consumed.to_le_bytes());
        trailer[16..24].copy_from_slice(&place.appended_ms.to_le_bytes());
        trailer[24..28].copy_from_slice(&place.group_rest.to_le_bytes());
        trailer[28..36].copy_from_slice(&place.sequence.to_le_bytes());
        let crc = crc32c::crc32c_append(self.body_crc, &trailer);
        // Bodies are bounded far below u32 by the caller's frame check.
        let len = u32::try_from(self.body.len() + TRAILER_LEN).unwrap_or(u32::MAX);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&self.body);
        out.extend_from_slice(&trailer);
        let mut envelope = self.envelope;
        envelope.sequence = place.sequence;
        Record {
            offset: place.offset,
            consumed: place.consumed,
            appended_ms: place.appended_ms,
            group_rest: place.group_rest,
            envelope,
        }
    }
}

/// Where an event lands: what the lock assigns.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Place {
    /// Node-wide offset.
    pub offset: u64,
    /// The appender's consumed offset.
    pub consumed: u64,
    /// Append time, ms since the epoch.
    pub appended_ms: u64,
    /// Records after this one in the same append.
    pub group_rest: u32,
    /// Sequence in its stream.
    pub sequence: u64,
}

/// Decodes a record payload of either layout.
pub(crate) fn decode(payload: &[u8]) -> Result<Record, CodecError> {
    match payload.first() {
        Some(&tag) if tag == FormatTag::RecordV2 as u8 => {
            let Some(split) = payload.len().checked_sub(TRAILER_LEN).filter(|at| *at > 1) else {
                return Err(CodecError::Truncated {
                    tag: FormatTag::RecordV2,
                    len: payload.len(),
                    min: TRAILER_LEN + 2,
                });
            };
            let (body, trailer) = payload.split_at(split);
            let u64_at = |at: usize| {
                let mut bytes = [0u8; 8];
                bytes.copy_from_slice(&trailer[at..at + 8]);
                u64::from_le_bytes(bytes)
            };
            let mut rest = [0u8; 4];
            rest.copy_from_slice(&trailer[24..28]);
            let mut envelope: Envelope = codec::decode_body(FormatTag::RecordV2, &body[1..])?;
            envelope.sequence = u64_at(28);
            Ok(Record {
                offset: u64_at(0),
                consumed: u64_at(8),
                appended_ms: u64_at(16),
                group_rest: u32::from_le_bytes(rest),
                envelope,
            })
        }
        _ => codec::decode(FormatTag::RecordV1, payload),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::frame::{self, Parsed};

    fn event(id: &str) -> Envelope {
        crate::cloudevent::parse_structured(serde_json::json!({
            "specversion": "1.0", "id": id, "source": "/client", "type": "orders.OrderPlaced",
            "subject": "o-1", "data": {"order_id": "o-1"}
        }))
        .unwrap()
        .envelope
    }

    #[test]
    fn a_staged_frame_checks_and_decodes_to_its_record() {
        let staged = Staged::new("orders-p1", event("e-1")).unwrap();
        let place = Place {
            offset: 42,
            consumed: 7,
            appended_ms: 1_700_000_000_000,
            group_rest: 2,
            sequence: 9,
        };
        let mut out = Vec::new();
        let record = staged.write(place, &mut out);
        let Parsed::Whole { payload, size } = frame::parse(&out) else {
            panic!("the frame must check: {:?}", frame::parse(&out));
        };
        assert_eq!(size, out.len());
        let decoded = decode(payload).unwrap();
        assert_eq!(decoded, record);
        assert_eq!(
            (decoded.offset, decoded.envelope.sequence),
            (42, 9),
            "the trailer's fields win"
        );
        assert_eq!(decoded.envelope.stream, "orders-p1");
    }

    #[test]
    fn records_of_the_first_layout_still_decode() {
        let record = Record {
            offset: 3,
            consumed: 1,
            appended_ms: 5,
            group_rest: 0,
            envelope: event("e-2"),
        };
        let bytes = codec::encode(FormatTag::RecordV1, &record).unwrap();
        assert_eq!(decode(&bytes).unwrap(), record);
    }

    #[test]
    fn a_flipped_bit_in_the_trailer_fails_the_checksum() {
        let staged = Staged::new("orders", event("e-3")).unwrap();
        let place = Place {
            offset: 1,
            consumed: 0,
            appended_ms: 0,
            group_rest: 0,
            sequence: 1,
        };
        let mut out = Vec::new();
        staged.write(place, &mut out);
        let last = out.len() - 3;
        out[last] ^= 1;
        assert!(matches!(frame::parse(&out), Parsed::Bad(_)));
    }

    #[test]
    fn a_payload_too_short_for_its_trailer_is_a_clean_error() {
        for len in [1, 2, 10, TRAILER_LEN, TRAILER_LEN + 1] {
            let mut payload = vec![0u8; len];
            payload[0] = FormatTag::RecordV2 as u8;
            let error = decode(&payload).unwrap_err();
            assert!(error.to_string().contains("too short"), "{len}: {error}");
        }
    }
}
