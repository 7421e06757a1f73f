//! A record whose checksum is valid but whose content declares an absurd length (a writer
//! bug, a hand-edited file) is damage the log reports at its byte, not a process abort.
//! Found by the `log_record` fuzz target (see fuzz/README.md).

use herald_runtime::codec::{self, FormatTag};
use herald_runtime::log::{self, frame, DamageKind, Record};

/// A record payload whose envelope `id` claims 2^40 bytes: tag `RecordV1`, offset 1,
/// consumed 0, appended_ms 0, group_rest 0, then the string length as a bincode varint
/// (`0xfd`: a u64 follows) and nothing else.
fn huge_id_payload() -> Vec<u8> {
    let mut payload = vec![FormatTag::RecordV1 as u8, 1, 0, 0, 0, 0xfd];
    payload.extend_from_slice(&(1u64 << 40).to_le_bytes());
    payload
}

#[test]
fn a_record_claiming_a_huge_string_is_a_decode_error() {
    assert!(codec::decode::<Record>(FormatTag::RecordV1, &huge_id_payload()).is_err());
}

#[test]
fn a_log_holding_such_a_record_is_reported_corrupt_at_its_byte() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut segment = b"HERALDS1".to_vec();
    segment.extend_from_slice(&1u64.to_le_bytes());
    frame::write(&huge_id_payload(), &mut segment);
    std::fs::write(dir.path().join("00000000000000000001.seg"), segment).expect("write");
    let damage = log::check(dir.path())
        .expect("check reads")
        .damage
        .expect("the record is damage");
    assert_eq!((damage.byte, damage.kind), (16, DamageKind::Corrupt));
    assert!(
        damage.reason.contains("does not decode"),
        "{}",
        damage.reason
    );
}
