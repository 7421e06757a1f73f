//! On-disk log records: arbitrary bytes as a frame, as a segment body (frame after frame)
//! and as a frame's payload, decoded exactly as opening the log decodes them
//! (`runtime/src/log/segment.rs`: `frame::parse`, then `log::decode_record`, which reads
//! layout 2 records and layout 1 ones of older logs).
//!
//! Beyond "no panic":
//! - `frame::parse` answers what the bytes hold: a whole frame only with a matching length
//!   and checksum, `Zeros` only for zero bytes, and the same as `parse_up_to` with a larger
//!   limit whenever the payload is within `MAX_PAYLOAD`; a whole frame re-framed gives the
//!   same bytes;
//! - a record that decodes re-encodes to bytes that decode to an equal record, and the
//!   append path's in-place framing (`frame::write_with` + `codec::encode_into`) writes the
//!   same bytes as `frame::write` of `codec::encode`, which parse back whole;
//! - a decoded record renders as a client would be served it without panicking.
//!
//! The payload is also decoded directly, unframed: through a frame, mutated payloads almost
//! never match their checksum, so the decoder would otherwise see only the seeds.

#![no_main]

use herald_runtime::codec::{self, FormatTag};
use herald_runtime::log::frame::{self, Parsed, HEADER_LEN, MAX_PAYLOAD};
use herald_runtime::log::Record;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    check_frame(input);
    // A segment body: frames back to back, as `scan_frames` reads them.
    let mut rest = input;
    while let Parsed::Whole { payload, size } = frame::parse(rest) {
        check_record(payload);
        rest = &rest[size..];
    }
    check_record(input);
});

fn check_frame(bytes: &[u8]) {
    let parsed = frame::parse(bytes);
    let unlimited = frame::parse_up_to(bytes, u32::MAX);
    match &parsed {
        Parsed::Whole { payload, size } => {
            assert_eq!(*size, HEADER_LEN + payload.len());
            assert!(!payload.is_empty() && payload.len() <= MAX_PAYLOAD as usize);
            assert_eq!(*payload, &bytes[HEADER_LEN..*size]);
            let mut framed = Vec::new();
            frame::write(payload, &mut framed);
            assert_eq!(framed, &bytes[..*size], "re-framing changes the bytes");
            assert_eq!(unlimited, parsed);
        }
        Parsed::Zeros => assert!(!bytes.is_empty() && bytes.iter().all(|&b| b == 0)),
        Parsed::Incomplete => {
            if let Some(header) = bytes.get(..HEADER_LEN) {
                let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
                assert!((1..=MAX_PAYLOAD).contains(&len));
                assert!(HEADER_LEN + len as usize > bytes.len());
            }
            assert_eq!(unlimited, parsed);
        }
        Parsed::Bad(_) => {
            if let Parsed::Whole { payload, .. } = unlimited {
                assert!(
                    payload.len() > MAX_PAYLOAD as usize,
                    "only the limit differs"
                );
            }
        }
    }
    // A limit below the frame's length refuses it as damage.
    if let Parsed::Whole { payload, .. } = parsed {
        let below = payload.len() as u32 - 1;
        assert!(matches!(
            frame::parse_up_to(bytes, below),
            Parsed::Bad(reason) if reason.contains("length")
        ));
    }
}

fn check_record(payload: &[u8]) {
    // What `segment::decode` does with every frame's payload when the log is opened.
    let Ok(record) = herald_runtime::log::decode_record(payload) else {
        return;
    };
    // The append path writes layout 2 (positions in a trailer, `log/staged.rs`): its
    // payloads are checked by decoding and serving; layout 1 also round-trips.
    if payload.first() != Some(&(FormatTag::RecordV1 as u8)) {
        serde_json::to_vec(&record.envelope.to_cloudevent_json()).expect("serializes");
        return;
    }
    let encoded = codec::encode(FormatTag::RecordV1, &record).expect("a decoded record encodes");
    let again: Record = codec::decode(FormatTag::RecordV1, &encoded).expect("and decodes");
    assert_eq!(again, record, "a record changes through encode and decode");

    // The append path (`file.rs`) frames in place; it must agree with framing a buffer.
    let mut in_place = Vec::new();
    frame::write_with(&mut in_place, |out| {
        codec::encode_into(FormatTag::RecordV1, &record, out)
    })
    .expect("a decoded record encodes in place");
    let mut framed = Vec::new();
    frame::write(&encoded, &mut framed);
    assert_eq!(in_place, framed);
    assert_eq!(
        frame::parse(&in_place),
        Parsed::Whole {
            payload: &encoded,
            size: framed.len()
        }
    );

    // What `/v1/streams/{stream}/events` and the SSE tail serve from a record.
    let served = record.envelope.to_cloudevent_json();
    serde_json::to_vec(&served).expect("a served event serializes");
}
