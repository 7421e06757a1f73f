//! The segment walk: arbitrary bytes as the only segment file of a log directory
//! (`00000000000000000001.seg`, header included), judged by `log::check`, opened with
//! `FileLog::open` and cut back by `log::repair`, all of which walk it with
//! `segment::walk`. The directory lives on tmpfs (`/dev/shm`) when there is one.
//!
//! Beyond "no panic":
//! - `check` and `each_record` agree; good records have dense offsets from 1 and end with a
//!   whole append (the last one's `group_rest` is 0); everything before the damage is
//!   exactly those records, frame after frame;
//! - opening refuses corruption with the damage `check` reported, and cuts a torn tail;
//!   once open, the log serves exactly the good records, by offset and by stream;
//! - after opening, the log checks clean with the same records (a torn tail cut once stays
//!   cut: the next start does not refuse the log);
//! - `repair` of the original bytes leaves a clean log with the same records.

#![no_main]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use herald_runtime::log::frame::{self, Parsed};
use herald_runtime::log::{
    self, DamageKind, EventLog, FileLog, FileLogOptions, Record, Visibility,
};
use libfuzzer_sys::fuzz_target;

/// Bytes before the first frame of a segment: magic and first offset.
const SEGMENT_HEADER: usize = 16;

fuzz_target!(|input: &[u8]| {
    let dir = fresh_dir(input);
    let checked = log::check(&dir).expect("check reads the directory");
    let mut good: Vec<Record> = Vec::new();
    let damage = log::each_record(&dir, &mut |record| good.push(record.clone()))
        .expect("each_record reads the directory");
    assert_eq!(damage, checked.damage);
    assert_eq!(good.len() as u64, checked.records);
    for (record, offset) in good.iter().zip(1..) {
        assert_eq!(record.offset, offset);
    }
    if let Some(last) = good.last() {
        assert_eq!(last.group_rest, 0, "a good prefix ends with a whole append");
    }
    let mut per_stream: BTreeMap<String, u64> = BTreeMap::new();
    for record in &good {
        *per_stream
            .entry(record.envelope.stream.clone())
            .or_default() += 1;
    }
    assert_eq!(per_stream, checked.streams);
    let good_end = damage
        .as_ref()
        .map_or(input.len(), |damage| damage.byte as usize);
    assert!(good_end <= input.len());
    assert_eq!(
        rescan(&input[..good_end]),
        good,
        "the good prefix reads differently"
    );

    open_and_reopen(&dir, &checked, &good);

    let dir = fresh_dir(input);
    let repaired = log::repair(&dir).expect("repair works on tmpfs");
    assert_eq!(repaired.damage, checked.damage);
    assert_eq!(repaired.records, checked.records);
    let after = log::check(&dir).expect("check after repair");
    assert_eq!(after.damage, None, "repair left damage");
    assert_eq!(after.records, checked.records);
});

/// Frames read one after another from the segment's first record, each decoded as a
/// record: what the log holds when nothing is wrong.
fn rescan(segment: &[u8]) -> Vec<Record> {
    let mut records = Vec::new();
    let Some(mut rest) = segment.get(SEGMENT_HEADER..) else {
        return records;
    };
    while !rest.is_empty() {
        let Parsed::Whole { payload, size } = frame::parse(rest) else {
            panic!("bytes before the damage are not a whole frame");
        };
        records.push(
            log::decode_record(payload).expect("a frame before the damage decodes"),
        );
        rest = &rest[size..];
    }
    records
}

fn open_and_reopen(dir: &Path, checked: &log::LogCheck, good: &[Record]) {
    let options = FileLogOptions {
        fsync: false,
        // Small, so reads go to the file through the index rather than the cache.
        cache_bytes: 1,
        ..FileLogOptions::new(dir)
    };
    let opened = FileLog::open(options);
    let opened = match (&checked.damage, opened) {
        (Some(damage), Err(error)) if damage.kind == DamageKind::Corrupt => {
            assert_eq!(error, damage.to_error());
            return;
        }
        (None, Ok(opened)) => {
            assert!(opened.truncated.is_none());
            opened
        }
        (Some(damage), Ok(opened)) if damage.kind == DamageKind::Torn => {
            assert_eq!(opened.truncated.as_ref(), Some(damage));
            opened
        }
        (damage, Err(error)) => panic!("open refused {damage:?}: {error}"),
        (damage, Ok(_)) => panic!("open accepted {damage:?}"),
    };
    let event_log = opened.log;
    assert_eq!(event_log.head(), good.len() as u64);
    let read = event_log
        .read_after(0, usize::MAX, &|_| herald_runtime::log::Take::All)
        .expect("the open log reads");
    let read: Vec<Record> = read.records.iter().map(|r| Record::clone(r)).collect();
    assert_eq!(
        read, good,
        "the open log serves other records than it checked"
    );
    for (stream, count) in event_log.streams() {
        let records = event_log
            .read_stream(&stream, 1, usize::MAX, Visibility::Durable)
            .expect("a stream reads");
        let expected: Vec<&Record> = good
            .iter()
            .filter(|record| record.envelope.stream == stream)
            .collect();
        assert_eq!(records.len() as u64, count);
        assert!(records.iter().map(|r| &**r).eq(expected));
    }
    drop(event_log);
    let reopened = log::check(dir).expect("check after open");
    assert_eq!(reopened.damage, None, "opening left damage behind");
    assert_eq!(reopened.records, good.len() as u64);
}

/// An empty log directory holding `segment` as its first segment file.
fn fresh_dir(segment: &[u8]) -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let base = Path::new("/dev/shm");
        let base = if base.is_dir() {
            base.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        base.join(format!("herald-fuzz-log-segment-{}", std::process::id()))
    });
    if dir.exists() {
        fs::remove_dir_all(dir).expect("clear the log directory");
    }
    fs::create_dir_all(dir).expect("create the log directory");
    fs::write(dir.join("00000000000000000001.seg"), segment).expect("write the segment");
    dir.clone()
}
