//! A long recovery says where it is: `/readyz` shows each host's replay (records replayed,
//! total, rate, time left) while it runs and once it ended, and the log tells it at a
//! steady interval. Replay is slowed by a test-only pause at each progress report
//! (`HERALD_FAULT_REPLAY_PAUSE_MS`), so a short log makes a long recovery.

use std::time::Duration;

use herald_integration_tests::{poll, stock_added, Node};
use serde_json::Value;

const EVENTS: usize = 5000;

#[test]
fn readyz_and_the_log_show_replay_progress() {
    let dir = tempfile::tempdir().expect("temp dir");
    // No snapshots: the restart replays the whole log.
    let quiet = [
        ("HERALD_LOG__SNAPSHOT_EVERY", "0"),
        ("HERALD_LOG__SNAPSHOT_INTERVAL", "1h"),
    ];
    let mut node = Node::start_in(dir.path(), &quiet);
    let events: Vec<Value> = (0..EVENTS)
        .map(|i| stock_added(&format!("sku-{i}"), 1))
        .collect();
    for chunk in events.chunks(500) {
        let reply = node.publish_batch(chunk);
        assert_eq!(reply.status, 202, "{}", reply.text);
    }
    node.settle();
    // SIGKILL: no snapshot on the way down either.
    node.kill();

    let mut env = quiet.to_vec();
    env.push(("HERALD_FAULT_REPLAY_PAUSE_MS", "1500"));
    let node = Node::launch_in(dir.path(), &env);
    let mut seen = None;
    let caught = poll(Duration::from_secs(60), || {
        let reply = node.get("/readyz");
        let progress = &reply.json["recovery"]["inventory"];
        let replayed = progress["replayed"].as_u64().unwrap_or(0);
        if reply.status == 503 && progress["done"] == false && replayed > 0 {
            seen = Some(reply.json.clone());
            return true;
        }
        false
    });
    assert!(
        caught,
        "never saw inventory's replay under way in /readyz; logs:\n{}",
        node.logs_tail(40)
    );
    let seen = seen.expect("seen");
    let progress = &seen["recovery"]["inventory"];
    let replayed = progress["replayed"].as_u64().expect("replayed");
    let total = progress["total"].as_u64().expect("total");
    assert!(replayed < total, "{seen}");
    // Its own 5000 events, and the positions of inputs it does not consume are not counted
    // for a domain whose replay limit is 0 (it consumes nothing of them).
    assert!(total >= EVENTS as u64, "{seen}");
    assert!(
        progress["per_second"].as_f64().expect("rate") > 0.0,
        "{seen}"
    );
    assert!(
        progress["eta_seconds"].as_f64().expect("eta") > 0.0,
        "{seen}"
    );
    assert_eq!(seen["domains"]["inventory"], "starting", "{seen}");

    node.await_ready(Duration::from_secs(120));
    let ready = node.get("/readyz");
    assert_eq!(ready.status, 200, "{}", ready.text);
    let done = &ready.json["recovery"]["inventory"];
    assert_eq!(done["done"], true, "{}", ready.json);
    assert_eq!(done["replayed"], done["total"], "{}", ready.json);
    assert_eq!(done["eta_seconds"], 0.0, "{}", ready.json);

    let logs = node.logs();
    let line = logs
        .lines()
        .find(|line| line.contains("replaying the log") && line.contains("inventory"))
        .unwrap_or_else(|| panic!("no progress line for inventory in the log:\n{logs}"));
    for field in ["replayed", "total", "per_second", "eta_seconds"] {
        assert!(line.contains(field), "{field} missing from {line:?}");
    }
}
