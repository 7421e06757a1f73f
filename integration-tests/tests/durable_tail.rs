//! A damaged last record is a torn tail only if nothing durable shows it was synced. When a
//! snapshot reflects it, or the log's durable mark (`log/DURABLE`) records it, the damage is
//! corruption: the node refuses to start, names the file, the byte and `herald log repair`,
//! and changes no file; `herald log verify` says the same and `repair` cuts it, keeping the
//! cut bytes. Bytes past everything durable (a write cut short) are still a torn tail.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use herald_integration_tests::segments::{self, Record, Segment};
use herald_integration_tests::workload::{fingerprint, saga_round, Keys};
use herald_integration_tests::*;
use serde_json::Value;

/// Where the log records how far it was synced; written by the node, read back at start.
const DURABLE_MARK: &str = "DURABLE";

/// How the last record is damaged.
#[derive(Debug, Clone, Copy)]
enum Damage {
    /// Its last 3 bytes are gone.
    CutShort,
    /// All of its bytes are gone: the file ends cleanly at the record before it.
    CutWhole,
    /// Its length field says 1000 bytes more than its payload holds.
    LengthTooLong,
}

/// What shows the last record was synced.
#[derive(Debug, Clone, Copy)]
enum Evidence {
    /// SIGTERM: a shutdown snapshot reflects it, and the durable mark records it.
    SnapshotAndMark,
    /// SIGTERM, then the durable mark is removed: only the snapshot shows it.
    SnapshotOnly,
    /// SIGKILL with snapshots off: only the durable mark shows it.
    MarkOnly,
}

impl Evidence {
    fn env(self) -> Vec<(&'static str, &'static str)> {
        match self {
            Evidence::SnapshotAndMark | Evidence::SnapshotOnly => vec![],
            Evidence::MarkOnly => vec![
                ("HERALD_LOG__SNAPSHOT_EVERY", "0"),
                ("HERALD_LOG__SNAPSHOT_INTERVAL", "0s"),
            ],
        }
    }
}

/// Every file under `dir` with its bytes: "nothing changed" is this map staying equal.
fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut found = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(at) = pending.pop() {
        for entry in std::fs::read_dir(&at).expect("read dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let bytes = std::fs::read(&path).expect("read file");
                found.insert(path, bytes);
            }
        }
    }
    found
}

fn assert_unchanged(what: &str, before: &BTreeMap<PathBuf, Vec<u8>>, dir: &Path) {
    let after = files(dir);
    let differ: Vec<String> = before
        .keys()
        .chain(after.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .filter(|path| before.get(*path) != after.get(*path))
        .map(|path| {
            let len = |map: &BTreeMap<PathBuf, Vec<u8>>| map.get(path).map(Vec::len);
            format!(
                "{} ({:?} bytes before, {:?} after)",
                path.display(),
                len(before),
                len(&after)
            )
        })
        .collect();
    assert!(
        differ.is_empty(),
        "expected {what} to leave every file unchanged; changed: {differ:#?}"
    );
}

/// A node with a saga round and then one last event (a StockAdded nothing reacts to),
/// stopped as `evidence` says. Answers what it served before the last event, its keys, the
/// last event's sku, and the number of records.
fn written_and_stopped(dir: &Path, evidence: Evidence) -> (Value, Keys, u64) {
    let env = evidence.env();
    let mut node = Node::start_in(dir, &env);
    let keys = saga_round(&node, "dur");
    let before_last = fingerprint(&node, &keys);
    node.accept(&stock_added("dur-last", 3));
    node.settle();
    match evidence {
        Evidence::SnapshotAndMark | Evidence::SnapshotOnly => node.stop(),
        Evidence::MarkOnly => node.kill(),
    }
    let records = segments::assert_layout(dir);
    let (segment, record) = segments::last_record(dir);
    assert!(
        record.contains("dur-last"),
        "expected the last record of {} to hold the last event",
        segment.name
    );
    let newest_snapshot = segments::snapshot_files(dir)
        .iter()
        .map(|file| file.cursor)
        .max();
    match evidence {
        Evidence::SnapshotAndMark | Evidence::SnapshotOnly => assert!(
            newest_snapshot.is_some_and(|offset| offset >= records),
            "expected a shutdown snapshot reflecting the last record (offset {records}), saw \
             {:?}",
            segments::snapshot_files(dir)
        ),
        Evidence::MarkOnly => assert_eq!(
            newest_snapshot, None,
            "expected no snapshots with snapshots off and SIGKILL"
        ),
    }
    if let Evidence::SnapshotOnly = evidence {
        let mark = segments::log_dir(dir).join(DURABLE_MARK);
        if mark.exists() {
            std::fs::remove_file(&mark).expect("remove the durable mark");
        }
    }
    (before_last, keys, records)
}

fn damage(damage: Damage, segment: &Segment, record: &Record) {
    match damage {
        Damage::CutShort => segments::truncate(&segment.path, record.end() - 3),
        Damage::CutWhole => segments::truncate(&segment.path, record.start),
        Damage::LengthTooLong => {
            let length = record.payload.len() as u32 + 1000;
            segments::write_at(&segment.path, record.start, &length.to_le_bytes());
        }
    }
}

/// Damages the last record, checks the refusal, `verify` and `repair`, and that the
/// repaired node serves what it served before the last event.
fn refused_until_repaired(evidence: Evidence, how: Damage) {
    let case = format!("{how:?} with {evidence:?}");
    let dir = tempfile::tempdir().expect("temp dir");
    let (before_last, keys, records) = written_and_stopped(dir.path(), evidence);
    let (segment, record) = segments::last_record(dir.path());
    damage(how, &segment, &record);
    let damaged = files(dir.path());
    let names_place =
        |text: &str| text.contains(&segment.name) && segments::contains_number(text, record.start);

    let env = evidence.env();
    let refused = run_node_to_exit(dir.path(), &env, Duration::from_secs(60));
    assert!(
        !refused.timed_out && refused.status.is_some_and(|code| code != 0),
        "{case}: expected the node to refuse to start (exit non-zero), saw {:?} (timed out: \
         {}):\n{}",
        refused.status,
        refused.timed_out,
        refused.output()
    );
    assert!(
        names_place(&refused.output()) && refused.output().contains("herald log repair"),
        "{case}: expected the refusal to name {} and byte {} and `herald log repair`:\n{}",
        segment.name,
        record.start,
        refused.output()
    );
    assert_unchanged(&format!("{case}: the refused start"), &damaged, dir.path());

    let verified = verify_refuses(dir.path(), &case, &names_place);
    assert!(
        verified.contains("corrupt"),
        "{case}: expected `herald log verify` to call it corrupt:\n{verified}"
    );
    assert_unchanged(&format!("{case}: verify"), &damaged, dir.path());

    repair_cuts(dir.path(), &case, &names_place);
    let cut_bytes = &damaged[&segment.path][record.start as usize..];
    if !cut_bytes.is_empty() {
        let kept = PathBuf::from(format!("{}.cut-{}", segment.path.display(), record.start));
        assert_eq!(
            std::fs::read(&kept).ok().as_deref(),
            Some(cut_bytes),
            "{case}: expected repair to keep the cut bytes in {}",
            kept.display()
        );
    }
    assert_eq!(
        segments::assert_layout(dir.path()),
        records - 1,
        "{case}: expected repair to keep every record but the damaged last one"
    );
    let ahead: Vec<_> = segments::snapshot_files(dir.path())
        .into_iter()
        .filter(|file| file.cursor >= records)
        .collect();
    assert!(
        ahead.is_empty(),
        "{case}: expected repair to move aside snapshots reflecting the cut record: {ahead:?}"
    );
    verify_passes(dir.path(), &format!("{case}: after repair"));

    let node = Node::start_in(dir.path(), &env);
    assert_same_json(
        &format!("{case}: the repaired node against what it served before the last event"),
        &before_last,
        &fingerprint(&node, &keys),
    );
    assert_eq!(node.entity("inventory", "dur-last"), None);
}

#[test]
fn a_cut_last_record_a_snapshot_reflects_refuses_start() {
    refused_until_repaired(Evidence::SnapshotAndMark, Damage::CutShort);
}

#[test]
fn a_last_record_cut_whole_that_a_snapshot_reflects_refuses_start() {
    refused_until_repaired(Evidence::SnapshotAndMark, Damage::CutWhole);
}

#[test]
fn a_corrupt_length_in_a_last_record_a_snapshot_reflects_refuses_start() {
    refused_until_repaired(Evidence::SnapshotAndMark, Damage::LengthTooLong);
}

#[test]
fn a_snapshot_alone_shows_the_last_record_was_synced() {
    refused_until_repaired(Evidence::SnapshotOnly, Damage::CutShort);
    refused_until_repaired(Evidence::SnapshotOnly, Damage::CutWhole);
}

#[test]
fn the_durable_mark_alone_shows_the_last_record_was_synced_after_sigkill() {
    refused_until_repaired(Evidence::MarkOnly, Damage::CutShort);
    refused_until_repaired(Evidence::MarkOnly, Damage::LengthTooLong);
}

/// Bytes appended past the last record, as a write cut short by a crash leaves them: past
/// everything durable, so a torn tail, cut with a warning, with every record kept and no
/// snapshot set aside.
#[test]
fn bytes_past_everything_durable_are_still_a_torn_tail() {
    for evidence in [Evidence::SnapshotAndMark, Evidence::MarkOnly] {
        let dir = tempfile::tempdir().expect("temp dir");
        let env = evidence.env();
        let mut node = Node::start_in(dir.path(), &env);
        let keys = saga_round(&node, "tail");
        node.accept(&stock_added("tail-last", 3));
        let before = fingerprint(&node, &keys);
        match evidence {
            Evidence::MarkOnly => node.kill(),
            _ => node.stop(),
        }
        let records = segments::assert_layout(dir.path());
        let (segment, record) = segments::last_record(dir.path());
        let frame = std::fs::read(&segment.path).expect("read segment")
            [record.start as usize..record.end() as usize]
            .to_vec();
        let torn_writes: [(&str, Vec<u8>); 3] = [
            ("a partial record", frame[..frame.len() - 3].to_vec()),
            ("a partial frame header", frame[..5].to_vec()),
            ("zeros", vec![0; 300]),
        ];
        for (what, bytes) in torn_writes {
            let case = format!("{what} after {evidence:?}");
            let snapshots = segments::snapshot_files(dir.path());
            let end = segments::read_segment(&segment.path).len;
            let mut file = std::fs::OpenOptions::new()
                .append(true)
                .open(&segment.path)
                .expect("open segment");
            std::io::Write::write_all(&mut file, &bytes).expect("append torn bytes");
            drop(file);

            let mut node = Node::start_in(dir.path(), &env);
            let logs = node.logs();
            assert!(
                logs.lines().any(|line| {
                    let lower = line.to_lowercase();
                    lower.contains("warn")
                        && lower.contains("torn")
                        && line.contains(&segment.name)
                        && segments::contains_number(line, end)
                }),
                "{case}: expected a WARN line with \"torn\", {} and byte {end}; logs:\n{logs}",
                segment.name
            );
            assert_same_json(
                &format!("{case}: every event after cutting the torn tail"),
                &before,
                &fingerprint(&node, &keys),
            );
            node.stop();
            assert_eq!(
                segments::read_segment(&segment.path).len,
                end,
                "{case}: expected the segment cut back to its last record"
            );
            assert_eq!(segments::assert_layout(dir.path()), records);
            let kept: Vec<_> = segments::snapshot_files(dir.path())
                .into_iter()
                .filter(|file| snapshots.contains(file))
                .collect();
            assert_eq!(
                kept, snapshots,
                "{case}: expected no snapshot set aside for a torn tail"
            );
        }
    }
}
