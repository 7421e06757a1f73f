//! A damaged or missing tail of the file log, judged against what shows how far the log was
//! synced (its durable mark, a snapshot passed in as `synced`): corruption that opening
//! refuses without touching a file, or a torn tail it cuts.
#![allow(clippy::unwrap_used)] // test helpers: a failure here is the test failing

use std::fs;
use std::path::{Path, PathBuf};

use herald_runtime::cloudevent::parse_structured;
use herald_runtime::log::{
    self, DamageKind, EventLog, FileLog, FileLogOptions, LogError, Opened, Synced,
};
use serde_json::json;

fn options(dir: &Path, fsync: bool, synced: Option<u64>) -> FileLogOptions {
    FileLogOptions {
        fsync,
        synced: synced.map(|offset| Synced {
            offset,
            shown_by: format!("snapshot test.{offset:020}.snap"),
        }),
        ..FileLogOptions::new(dir)
    }
}

fn open(dir: &Path, fsync: bool, synced: Option<u64>) -> Result<Opened, LogError> {
    FileLog::open(options(dir, fsync, synced))
}

/// A log of `count` records, one append each, closed; answers the only segment and where
/// each record ends in it.
fn written(dir: &Path, fsync: bool, count: u64) -> (PathBuf, Vec<u64>) {
    let log = open(dir, fsync, None).unwrap().log;
    let segment = dir.join("00000000000000000001.seg");
    let mut ends = Vec::new();
    for n in 0..count {
        let event = parse_structured(json!({
            "specversion": "1.0", "id": n.to_string(), "source": "/t", "type": "a.X",
            "subject": "k", "data": {"n": n}
        }))
        .unwrap()
        .envelope;
        let records = log.append("a", 0, vec![event]).unwrap();
        let durable = log.durability().wait(records[0].offset);
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(durable)
            .unwrap();
        ends.push(fs::metadata(&segment).unwrap().len());
    }
    drop(log);
    (segment, ends)
}

fn cut(path: &Path, len: u64) {
    let file = fs::OpenOptions::new().write(true).open(path).unwrap();
    file.set_len(len).unwrap();
}

fn files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut found: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|entry| (entry.path(), fs::read(entry.path()).unwrap()))
        .collect();
    found.sort();
    found
}

fn refused(dir: &Path, fsync: bool, synced: Option<u64>) -> LogError {
    match open(dir, fsync, synced) {
        Ok(_) => panic!("expected the log to be refused"),
        Err(error) => error,
    }
}

#[test]
fn a_damaged_tail_the_durable_mark_shows_synced_is_refused_and_left_alone() {
    for (case, damage_at) in [("cut short", 3), ("length too long", 0)] {
        let dir = tempfile::tempdir().unwrap();
        let (segment, ends) = written(dir.path(), true, 3);
        let last_start = ends[1];
        if damage_at > 0 {
            cut(&segment, ends[2] - damage_at);
        } else {
            let mut bytes = fs::read(&segment).unwrap();
            let at = last_start as usize;
            let length = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) + 1000;
            bytes[at..at + 4].copy_from_slice(&length.to_le_bytes());
            fs::write(&segment, bytes).unwrap();
        }
        let before = files(dir.path());

        let error = refused(dir.path(), true, None);
        assert!(
            matches!(&error, LogError::Corrupt { file, byte, reason }
                if *file == segment && *byte == last_start && reason.contains("durable mark")),
            "{case}: {error}"
        );
        assert!(error.to_string().contains("herald log repair"), "{error}");
        assert_eq!(files(dir.path()), before, "{case}: opening changed files");
        let checked = log::check(dir.path()).unwrap();
        assert_eq!(
            checked.damage.map(|d| (d.kind, d.byte)),
            Some((DamageKind::Corrupt, last_start)),
            "{case}: check judges as opening does"
        );

        let repaired = log::repair(dir.path()).unwrap();
        assert_eq!(repaired.records, 2, "{case}");
        let kept = repaired.kept_tail.expect("the cut bytes are kept");
        assert_eq!(
            fs::read(kept).unwrap(),
            before.iter().find(|(p, _)| *p == segment).unwrap().1[last_start as usize..],
        );
        let opened = open(dir.path(), true, None).unwrap();
        assert!(opened.truncated.is_none());
        assert_eq!(opened.log.head(), 2, "{case}: the repaired log opens");
    }
}

#[test]
fn records_missing_before_what_was_synced_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (segment, ends) = written(dir.path(), true, 3);
    cut(&segment, ends[1]);
    let before = files(dir.path());
    let error = refused(dir.path(), true, None);
    assert!(
        matches!(&error, LogError::Corrupt { byte, reason, .. }
            if *byte == ends[1] && reason.contains("missing")),
        "{error}"
    );
    assert_eq!(files(dir.path()), before);

    // Repair has nothing to cut, keeps no bytes, and lowers the mark to what is left.
    let repaired = log::repair(dir.path()).unwrap();
    assert_eq!((repaired.records, repaired.kept_tail), (2, None));
    assert_eq!(open(dir.path(), true, None).unwrap().log.head(), 2);
}

#[test]
fn a_tail_past_everything_synced_is_still_torn() {
    let dir = tempfile::tempdir().unwrap();
    let (segment, ends) = written(dir.path(), true, 3);
    let bytes = fs::read(&segment).unwrap();
    let mut torn = bytes.clone();
    torn.extend_from_slice(&bytes[ends[1] as usize..ends[2] as usize - 3]);
    fs::write(&segment, torn).unwrap();
    let opened = open(dir.path(), true, Some(3)).unwrap();
    let damage = opened.truncated.clone().expect("a torn tail");
    assert_eq!((damage.kind, damage.byte), (DamageKind::Torn, ends[2]));
    assert_eq!(opened.log.head(), 3);
    drop(opened);
    assert_eq!(fs::read(&segment).unwrap(), bytes);
}

#[test]
fn a_snapshot_shows_a_record_synced_unless_a_run_without_fsync_wrote() {
    // Without fsync, "durable" is only "written": a snapshot of it proves nothing.
    let dir = tempfile::tempdir().unwrap();
    let (segment, ends) = written(dir.path(), false, 3);
    cut(&segment, ends[2] - 3);
    let opened = open(dir.path(), false, Some(3)).unwrap();
    assert_eq!(opened.truncated.map(|d| d.kind), Some(DamageKind::Torn));
    assert_eq!(opened.log.head(), 2);

    // With fsync on, a snapshot alone (no mark) shows it.
    let dir = tempfile::tempdir().unwrap();
    let (segment, ends) = written(dir.path(), true, 3);
    fs::remove_file(dir.path().join("DURABLE")).unwrap();
    cut(&segment, ends[2] - 3);
    let error = refused(dir.path(), true, Some(3));
    assert!(
        matches!(&error, LogError::Corrupt { byte, reason, .. }
            if *byte == ends[1] && reason.contains("snapshot test.")),
        "{error}"
    );
    let outside = Synced {
        offset: 3,
        shown_by: "snapshot".into(),
    };
    assert_eq!(
        log::check_with(dir.path(), Some(&outside))
            .unwrap()
            .damage
            .map(|d| d.kind),
        Some(DamageKind::Corrupt)
    );
    // Weighed against nothing, it is a torn tail, as before.
    assert_eq!(
        log::check(dir.path()).unwrap().damage.map(|d| d.kind),
        Some(DamageKind::Torn)
    );
}
