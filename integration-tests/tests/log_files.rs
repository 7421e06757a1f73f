//! The durable log on disk: its files as documented, a torn tail cut with a warning (a damaged
//! tail known to have been synced is refused: `durable_tail.rs`), damage
//! mid-log refused until `herald log repair`, snapshots that may vanish or rot, resent events
//! still duplicates after a restart, recovery that answers exactly as before (with and
//! without snapshots, after SIGTERM and after SIGKILL), and `/readyz` during recovery.

use std::path::Path;
use std::time::{Duration, Instant};

use herald_integration_tests::invariants::{self, Failures, Log};
use herald_integration_tests::segments::{self, Record};
use herald_integration_tests::workload::{fingerprint, saga_round, Keys};
use herald_integration_tests::*;
use serde_json::{json, Value};

/// Many small segments, so damage and cuts cross segment boundaries.
const SMALL_SEGMENTS: (&str, &str) = ("HERALD_LOG__SEGMENT_BYTES", "4096");

fn snapshot_every(n: &'static str) -> (&'static str, &'static str) {
    ("HERALD_LOG__SNAPSHOT_EVERY", n)
}

/// The log lines of `logs` that contain every one of `needles` (case-insensitive).
fn lines_with<'a>(logs: &'a str, needles: &[&str]) -> Vec<&'a str> {
    logs.lines()
        .filter(|line| {
            let lower = line.to_lowercase();
            needles.iter().all(|n| lower.contains(&n.to_lowercase()))
        })
        .collect()
}

/// Sequences of a stream's events as read through the API.
fn sequences(events: &[Value]) -> Vec<u64> {
    events
        .iter()
        .map(|e| e["sequence"].as_u64().unwrap_or(0))
        .collect()
}

#[test]
fn segment_files_follow_the_documented_layout() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut node = Node::start_in(dir.path(), &[SMALL_SEGMENTS]);
    saga_round(&node, "lay1");
    saga_round(&node, "lay2");
    node.settle();
    let streams = node.read_all_streams();
    node.stop();

    let log = segments::read_log(dir.path());
    assert!(
        log.len() >= 2,
        "expected several segments with segment_bytes=4096, saw {}",
        log.len()
    );
    segments::assert_layout(dir.path());
    // One record per event the API serves. Ids are stored as text, and a reaction's record
    // also holds its cause's id, so only events nothing reacts to (StockAdded) are in
    // exactly one record; every other id is in at least one.
    let records: Vec<&Record> = log.iter().flat_map(|s| &s.records).collect();
    let events: Vec<&Value> = streams.values().flatten().collect();
    assert_eq!(
        records.len(),
        events.len(),
        "expected one record per event served by the API"
    );
    for event in events {
        let id = event["id"].as_str().expect("id");
        let holding = records.iter().filter(|r| r.contains(id)).count();
        if event["type"] == "inventory.StockAdded" {
            assert_eq!(holding, 1, "expected one record holding StockAdded {id}");
        } else {
            assert!(holding >= 1, "expected a record holding event {id}");
        }
    }

    verify_passes(dir.path(), "a clean log");
}

#[test]
fn a_torn_tail_is_cut_with_a_warning_and_every_record_before_it_kept() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut node = Node::start_in(dir.path(), &[]);
    let keys = saga_round(&node, "torn");
    node.accept(&stock_added("torn-sku", 4));
    node.settle();
    let before = fingerprint(&node, &keys);
    node.stop();

    // A crash mid-write leaves the start of a record after the last whole one: past what
    // the durable mark and the shutdown snapshots show was synced, so never acknowledged.
    // (Damage to a record they show was synced refuses the start: tests/durable_tail.rs.)
    let (segment, record) = segments::last_record(dir.path());
    let bytes = std::fs::read(&segment.path).expect("read segment");
    let frame = &bytes[record.start as usize..record.end() as usize];
    let torn_writes = [
        ("a record cut short", &frame[..frame.len() - 3]),
        ("a frame header cut short (5 of its 8 bytes)", &frame[..5]),
    ];
    for (what, torn) in torn_writes {
        let mut damaged = bytes.clone();
        damaged.extend_from_slice(torn);
        std::fs::write(&segment.path, &damaged).expect("write the torn tail");

        let mut node = Node::start_in(dir.path(), &[]);
        let logs = node.logs();
        assert!(
            lines_with(&logs, &["warn", "torn", &segment.name])
                .iter()
                .any(|line| segments::contains_number(line, segment.len)),
            "{what}: expected a WARN line with \"torn\", the file {} and the byte offset {} \
             where the log was cut; logs:\n{logs}",
            segment.name,
            segment.len
        );
        assert_same_json(
            &format!("every answer after cutting {what}"),
            &before,
            &fingerprint(&node, &keys),
        );
        node.stop();
        assert_eq!(
            std::fs::read(&segment.path).expect("read segment"),
            bytes,
            "{what}: expected the segment cut back to its last whole record"
        );
        verify_passes(dir.path(), "after a torn tail was cut");
        segments::assert_layout(dir.path());
    }

    let node = Node::start_in(dir.path(), &[]);
    assert!(
        lines_with(&node.logs(), &["torn"]).is_empty(),
        "expected no torn tail on the next start; logs:\n{}",
        node.logs()
    );
    segments::assert_layout(dir.path());
}

/// Phase 1, then a marker event and phase 2 over small segments; flips a byte inside the
/// marker's record; checks the refusal, `verify`, `repair`, and that the repaired node
/// serves exactly phase 1.
fn flipped_byte_mid_log(snapshots: &'static str) {
    let env = [SMALL_SEGMENTS, snapshot_every(snapshots)];
    let dir = tempfile::tempdir().expect("temp dir");
    let mut node = Node::start_in(dir.path(), &env);
    let keys = saga_round(&node, "first");
    let phase_one = fingerprint(&node, &keys);
    let marker = stock_added("damage-sku", 1);
    node.accept(&marker);
    let later_keys = saga_round(&node, "second");
    node.settle();
    node.stop();

    let (segment, record) = segments::find_record(dir.path(), marker["id"].as_str().expect("id"));
    let log = segments::read_log(dir.path());
    let records_before: u64 = segment.named_offset - 1
        + segment
            .records
            .iter()
            .take_while(|r| r.start < record.start)
            .count() as u64;
    let total: usize = log.iter().map(|s| s.records.len()).sum();
    assert!(
        (total as u64) > records_before + 1,
        "expected records after the damaged one (it must not be the last)"
    );
    segments::flip_byte(
        &segment.path,
        record.start + segments::FRAME_BYTES + record.payload.len() as u64 / 2,
    );
    // The damaged record's frame starts at record.start; its payload 8 bytes later. Either
    // names the place.
    let names_place = |text: &str| {
        text.contains(&segment.name)
            && (segments::contains_number(text, record.start)
                || segments::contains_number(text, record.start + segments::FRAME_BYTES))
    };

    let refused = run_node_to_exit(dir.path(), &env, Duration::from_secs(60));
    assert!(
        !refused.timed_out,
        "expected the node to refuse to start on a damaged log, it kept running:\n{}",
        refused.output()
    );
    assert_eq!(
        refused.status,
        Some(1),
        "expected exit status 1 on a damaged log, saw {:?}:\n{}",
        refused.status,
        refused.output()
    );
    assert!(
        names_place(&refused.output()) && refused.output().contains("herald log repair"),
        "expected the refusal to name {} and byte offset {} and mention `herald log repair`:\n{}",
        segment.name,
        record.start,
        refused.output()
    );

    let what = format!("a flipped byte mid-log (snapshot_every={snapshots})");
    verify_refuses(dir.path(), &what, &names_place);
    repair_cuts(dir.path(), &what, &names_place);
    let remaining: usize = segments::read_log(dir.path())
        .iter()
        .map(|s| s.records.len())
        .sum();
    assert_eq!(
        remaining as u64, records_before,
        "expected repair to keep exactly the records before the damaged one"
    );
    verify_passes(dir.path(), &format!("{what}, after repair"));

    let node = Node::start_in(dir.path(), &env);
    let repaired = fingerprint(&node, &keys);
    assert_same_json(
        &format!("the repaired node (snapshot_every={snapshots}) against phase one"),
        &phase_one,
        &repaired,
    );
    for (domain, key) in later_keys {
        assert_eq!(
            node.entity(domain, &key),
            None,
            "expected {domain}/{key} (after the damage) to be gone"
        );
    }

    // The repaired log takes new events where it was cut, across a restart.
    let mut node = node;
    let mut keys = keys;
    keys.extend(saga_round(&node, "third"));
    let phase_three = fingerprint(&node, &keys);
    node.stop();
    segments::assert_layout(dir.path());
    let node = Node::start_in(dir.path(), &env);
    assert_same_json(
        &format!("answers after appending to the repaired log and restarting (snapshot_every={snapshots})"),
        &phase_three,
        &fingerprint(&node, &keys),
    );
}

#[test]
fn a_flipped_byte_mid_log_refuses_start_until_repaired() {
    flipped_byte_mid_log("0");
}

#[test]
fn repair_discards_snapshots_taken_past_the_cut() {
    flipped_byte_mid_log("3");
}

/// A node with snapshots every 5 events, three saga rounds, settled and stopped; returns
/// what it answered.
fn snapshotted(dir: &Path) -> (Keys, Value) {
    let mut node = Node::start_in(dir, &[snapshot_every("5")]);
    let mut keys = Keys::new();
    for tag in ["snap1", "snap2", "snap3"] {
        keys.extend(saga_round(&node, tag));
    }
    let before = fingerprint(&node, &keys);
    eventually("inventory snapshots written", || {
        !segments::snapshots_of(dir, "inventory").is_empty()
    });
    node.stop();
    (keys, before)
}

#[test]
fn snapshots_are_named_by_cursor_and_two_kept_per_domain() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_, before) = snapshotted(dir.path());
    let files = segments::snapshot_files(dir.path());
    let domains: std::collections::BTreeSet<&str> =
        files.iter().map(|f| f.domain.as_str()).collect();
    // Each host snapshots on its own: every partition of orders and shipping (named by its
    // stream, `orders-p0`) as well as the unpartitioned domains.
    let hosts = ["inventory", "payments"]
        .map(str::to_owned)
        .into_iter()
        .chain(domain_streams("orders", TEST_PARTITIONS))
        .chain(domain_streams("shipping", TEST_PARTITIONS));
    for host in hosts {
        assert!(
            domains.contains(host.as_str()),
            "expected snapshots of {host} after ~{} events with snapshot_every=5, saw {files:?}",
            before["streams"]
        );
    }
    for domain in domains {
        let of = segments::snapshots_of(dir.path(), domain);
        assert!(
            of.len() <= 2,
            "expected at most the latest two snapshots of {domain}, saw {of:?}"
        );
    }
}

#[test]
fn snapshots_are_taken_by_interval_when_not_by_count() {
    let dir = tempfile::tempdir().expect("temp dir");
    let env = [snapshot_every("0"), ("HERALD_LOG__SNAPSHOT_INTERVAL", "1s")];
    let mut node = Node::start_in(dir.path(), &env);
    let keys = saga_round(&node, "interval");
    let before = fingerprint(&node, &keys);
    let written = poll(Duration::from_secs(10), || {
        !segments::snapshots_of(dir.path(), "inventory").is_empty()
    });
    assert!(
        written,
        "expected a snapshot of inventory within 10 s with snapshot_interval=1s, saw {:?}",
        segments::snapshot_files(dir.path())
    );
    node.kill();
    let node = Node::start_in(dir.path(), &env);
    assert_same_json(
        "answers after SIGKILL with interval snapshots",
        &before,
        &fingerprint(&node, &keys),
    );
}

#[test]
fn deleted_snapshots_are_rebuilt_from_the_log() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (keys, before) = snapshotted(dir.path());
    for domain in ["inventory", "payments"] {
        for file in segments::snapshots_of(dir.path(), domain) {
            std::fs::remove_file(&file.path).unwrap();
        }
    }
    let node = Node::start_in(dir.path(), &[snapshot_every("5")]);
    assert_same_json(
        "answers after deleting inventory's and payments' snapshots",
        &before,
        &fingerprint(&node, &keys),
    );
}

#[test]
fn a_corrupt_snapshot_is_skipped_with_a_warning() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (keys, before) = snapshotted(dir.path());

    // The latest snapshot of inventory rots: the node falls back to an older one or the log.
    let latest = segments::snapshots_of(dir.path(), "inventory")
        .pop()
        .expect("an inventory snapshot");
    let len = std::fs::metadata(&latest.path).unwrap().len();
    segments::write_at(&latest.path, len / 2, &[0xAB; 16]);
    let file_name = latest
        .path
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let mut node = Node::start_in(dir.path(), &[snapshot_every("5")]);
    let logs = node.logs();
    assert!(
        lines_with(&logs, &["warn", "snapshot"])
            .iter()
            .any(|line| line.contains(&file_name) || line.contains("inventory")),
        "expected a WARN line about the corrupt snapshot {file_name}; logs:\n{logs}"
    );
    assert_same_json(
        "answers after corrupting inventory's latest snapshot",
        &before,
        &fingerprint(&node, &keys),
    );
    node.stop();

    // Every snapshot of every domain rots: the node replays the whole log.
    for file in segments::snapshot_files(dir.path()) {
        let len = std::fs::metadata(&file.path).unwrap().len();
        segments::write_at(&file.path, len / 2, &[0xCD; 16]);
    }
    let mut node = Node::start_in(dir.path(), &[snapshot_every("5")]);
    assert_same_json(
        "answers after corrupting every snapshot",
        &before,
        &fingerprint(&node, &keys),
    );
    node.stop();

    // Snapshots cut short (a crash while writing one), and an empty one.
    for (n, file) in segments::snapshot_files(dir.path()).iter().enumerate() {
        let len = std::fs::metadata(&file.path).unwrap().len();
        segments::truncate(&file.path, if n % 2 == 0 { len / 2 } else { 0 });
    }
    let node = Node::start_in(dir.path(), &[snapshot_every("5")]);
    assert_same_json(
        "answers after cutting every snapshot short",
        &before,
        &fingerprint(&node, &keys),
    );
}

#[test]
fn a_resent_event_is_a_duplicate_after_a_restart() {
    // The window as a count and as an age, both far wider than these few events.
    for (crash, window) in [(false, "1000"), (true, "24h"), (true, "1000000")] {
        let env = [("HERALD_LOG__DEDUP_WINDOW", window)];
        let dir = tempfile::tempdir().expect("temp dir");
        let mut node = Node::start_in(dir.path(), &env);
        let events = [
            stock_added("dup-sku", 5),
            credit_granted("dup-customer", 1_000),
            order_placed("dup-order", "dup-customer", &[("dup-sku", 1, 10)]),
        ];
        let positions: Vec<(Value, Value)> = events
            .iter()
            .map(|event| {
                let reply = node.publish(event);
                assert_eq!(reply.status, 202, "{}", reply.json);
                (reply.json["stream"].clone(), reply.json["sequence"].clone())
            })
            .collect();
        // Acknowledged means on disk: SIGKILL right after the last 202 loses nothing.
        if crash {
            node.kill();
        } else {
            node.stop();
        }
        for restart in 1..=2 {
            let mut node = Node::start_in(dir.path(), &env);
            for (event, (stream, sequence)) in events.iter().zip(&positions) {
                let again = node.publish(event);
                assert_eq!(
                    (again.status, &again.json["status"]),
                    (200, &json!("duplicate")),
                    "expected 200 duplicate for {} after restart {restart} (crash: {crash}, window \
                     {window}): {}",
                    event["id"],
                    again.json
                );
                assert_eq!(
                    (&again.json["stream"], &again.json["sequence"]),
                    (stream, sequence),
                    "expected the original position of {} after restart {restart}",
                    event["id"]
                );
            }
            node.settle();
            for (event, (stream, _)) in events.iter().zip(&positions) {
                let copies = node
                    .read_stream(stream.as_str().unwrap())
                    .iter()
                    .filter(|e| e["id"] == event["id"] && e["source"] == event["source"])
                    .count();
                assert_eq!(copies, 1, "expected {} once in {stream}", event["id"]);
            }
            node.await_field("orders", "dup-order", "status", &json!("awaiting_shipment"));
            assert_eq!(
                node.entity("inventory", "dup-sku").unwrap(),
                json!({"sku": "dup-sku", "available": 4, "reserved": 1, "shipped": 0}),
            );
            node.stop();
        }
    }
}

/// Saga rounds, then the same answers after a SIGTERM restart and after a SIGKILL restart;
/// the node then carries on appending densely.
fn recovery_answers_as_before(snapshots: &'static str) {
    let env = [snapshot_every(snapshots)];
    let dir = tempfile::tempdir().expect("temp dir");
    let mut node = Node::start_in(dir.path(), &env);
    let mut keys = Keys::new();
    for tag in ["rec1", "rec2", "rec3"] {
        keys.extend(saga_round(&node, tag));
    }
    let before = fingerprint(&node, &keys);
    node.stop();

    let mut node = Node::start_in(dir.path(), &env);
    assert_same_json(
        &format!("answers after SIGTERM and restart (snapshot_every={snapshots})"),
        &before,
        &fingerprint(&node, &keys),
    );
    node.kill();

    let node = Node::start_in(dir.path(), &env);
    assert_same_json(
        &format!("answers after SIGKILL and restart (snapshot_every={snapshots})"),
        &before,
        &fingerprint(&node, &keys),
    );
    keys.extend(saga_round(&node, "rec4"));
    node.settle();
    let mut failures = Failures::default();
    invariants::check_all(&node, &Log::read(&node), &mut failures);
    failures.assert_none(&format!(
        "the log after recovery (snapshot_every={snapshots})"
    ));
    for (stream, events) in node.read_all_streams() {
        let expected: Vec<u64> = (1..=events.len() as u64).collect();
        assert_eq!(
            sequences(&events),
            expected,
            "expected {stream}'s sequences dense from 1 after recovery"
        );
    }
}

#[test]
fn recovery_with_snapshots_answers_as_before() {
    recovery_answers_as_before("5");
}

#[test]
fn recovery_without_snapshots_answers_as_before() {
    recovery_answers_as_before("0");
}

#[test]
fn readyz_is_503_until_recovery_has_caught_up() {
    let dir = tempfile::tempdir().expect("temp dir");
    let env = [snapshot_every("0"), ("HERALD_LOG__SNAPSHOT_INTERVAL", "0s")];
    let mut node = Node::start_in(dir.path(), &env);
    // A log long enough that replaying it takes a while in a debug build.
    for batch in 0..30 {
        let events: Vec<Value> = (0..1000)
            .map(|n| stock_added(&format!("ready-{}", n % 50), 1 + batch))
            .collect();
        let reply = node.publish_batch(&events);
        assert_eq!(reply.status, 202, "{}", reply.json);
    }
    node.settle();
    let summary = node.summary();
    let skus: Vec<Option<Value>> = (0..50)
        .map(|n| node.entity("inventory", &format!("ready-{n}")))
        .collect();
    node.stop();
    for file in segments::snapshot_files(dir.path()) {
        std::fs::remove_file(&file.path).unwrap();
    }

    let node = Node::launch_in(dir.path(), &env);
    let client = reqwest::blocking::Client::new();
    let deadline = Instant::now() + START_TIMEOUT;
    let mut not_ready = Vec::new();
    loop {
        let reply = Reply::from(client.get(format!("{}/readyz", node.base)).send());
        if reply.status == 200 {
            break;
        }
        not_ready.push((reply.status, reply.content_type, reply.json));
        assert!(
            Instant::now() < deadline,
            "expected /readyz 200 once recovered; logs:\n{}",
            node.logs_tail(40)
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    // Ready means caught up: the first 200 already answers everything as before.
    assert_same_json(
        "summary at the first 200 of /readyz",
        &summary,
        &node.summary(),
    );
    for (n, expected) in skus.iter().enumerate() {
        assert_eq!(
            &node.entity("inventory", &format!("ready-{n}")),
            expected,
            "expected sku ready-{n} as before at the first 200 of /readyz"
        );
    }
    assert!(
        !not_ready.is_empty(),
        "expected /readyz to answer 503 while 30000 events were replayed, it answered 200 at \
         once (is HTTP served only after recovery?)"
    );
    for (status, content_type, body) in &not_ready {
        assert_eq!(
            (*status, content_type.as_str()),
            (503, "application/problem+json"),
            "expected 503 problem+json before ready, saw {status} {content_type}: {body}"
        );
    }
}

#[test]
fn a_crash_around_a_segment_roll_is_recovered() {
    // What a kill can leave while a new segment is created: the file with no bytes yet,
    // with part of its header, or with its whole header and no record.
    for (case, header_bytes) in [
        ("empty new segment", 0),
        ("torn header", 5),
        ("header only", 16),
    ] {
        let dir = tempfile::tempdir().expect("temp dir");
        let env = [SMALL_SEGMENTS];
        let mut node = Node::start_in(dir.path(), &env);
        let mut keys = saga_round(&node, "roll");
        let before = fingerprint(&node, &keys);
        node.stop();

        let records = segments::assert_layout(dir.path());
        let first = segments::read_log(dir.path()).remove(0);
        let mut header = first.magic.to_vec();
        header.extend_from_slice(&(records + 1).to_le_bytes());
        let path = segments::log_dir(dir.path()).join(format!("{:020}.seg", records + 1));
        std::fs::write(&path, &header[..header_bytes]).expect("write segment");

        let mut node = Node::start_in(dir.path(), &env);
        assert_same_json(
            &format!("answers after a crash at a segment roll ({case})"),
            &before,
            &fingerprint(&node, &keys),
        );
        keys.extend(saga_round(&node, "after"));
        let after = fingerprint(&node, &keys);
        node.stop();
        segments::assert_layout(dir.path());
        let node = Node::start_in(dir.path(), &env);
        assert_same_json(
            &format!("answers after appending past a crash at a segment roll ({case})"),
            &after,
            &fingerprint(&node, &keys),
        );
    }
}

#[test]
fn bad_log_settings_exit_2_naming_the_key() {
    let cases: [(&str, &str, &[&str]); 5] = [
        (
            "HERALD_LOG__SEGMENT_BYTES",
            "100",
            &["segment_bytes", "4096"],
        ),
        (
            "HERALD_LOG__FSYNC",
            "sometimes",
            &["fsync", "always", "never"],
        ),
        ("HERALD_LOG__DEDUP_WINDOW", "forever", &["dedup_window"]),
        ("HERALD_LOG__SNAPSHOT_EVERY", "-3", &["snapshot_every"]),
        (
            "HERALD_LOG__SNAPSHOT_INTERVAL",
            "soon",
            &["snapshot_interval"],
        ),
    ];
    let config = sample_config().to_string_lossy().into_owned();
    for (variable, value, needles) in cases {
        for command in ["check-config", "run"] {
            let mut herald = std::process::Command::new(herald_binary());
            herald
                .args([command, "--config", &config])
                .env(variable, value)
                .env("HERALD_HTTP__BIND", "127.0.0.1:0");
            let dir = tempfile::tempdir().expect("temp dir");
            herald.env("HERALD_NODE__DATA_DIR", dir.path().join("data"));
            let run = run_command(herald, Duration::from_secs(30));
            assert_eq!(
                run.status,
                Some(2),
                "expected `herald {command}` with {variable}={value} to exit 2:\n{}",
                run.output()
            );
            for needle in needles.iter().chain(&[variable]) {
                assert!(
                    run.stderr.contains(needle),
                    "expected `herald {command}` with {variable}={value} to name {needle:?}:\n{}",
                    run.stderr
                );
            }
        }
    }
}
