//! Memory does not grow with event size: the log's read cache is bounded by bytes, so a
//! node fed large events stays small while it runs and after a restart (when the old
//! cache reloaded the newest 65,536 records whatever their size).

use herald_integration_tests::*;
use serde_json::Value;

/// Events of about 200 KiB each (a padding extension attribute), four to a batch.
const EVENT_PAD: usize = 200 * 1024;
const BATCHES: usize = 150;
const PER_BATCH: usize = 4;

fn resident_mib(node: &Node) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", node.pid())).expect("status");
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kib / 1024
}

#[test]
fn large_events_do_not_grow_the_node_past_its_cache_bound() {
    // A cache of 16 MiB against 120 MiB of events: before, the count bound kept them all.
    // The default 64 MiB segments: opening the log reads them in pieces, not whole.
    let env = [("HERALD_LOG__CACHE_BYTES", "16777216")];
    let mut node = Node::start_with(&env);
    // What a node holds with no events yet: the figures below are growth over it.
    node.settle();
    let baseline = resident_mib(&node);
    let pad = "x".repeat(EVENT_PAD);
    let mut peak = 0;
    for batch in 0..BATCHES {
        let events: Vec<Value> = (0..PER_BATCH)
            .map(|i| {
                let mut event = stock_added(&format!("sku-{}", (batch * PER_BATCH + i) % 8), 1);
                event["pad"] = Value::from(pad.as_str());
                event
            })
            .collect();
        let reply = node.publish_batch(&events);
        assert_eq!(reply.status, 202, "batch {batch}: {}", reply.json);
        peak = peak.max(resident_mib(&node));
    }
    node.settle();
    let running = resident_mib(&node);
    let stored_mib = (BATCHES * PER_BATCH * EVENT_PAD) >> 20;

    node.stop();
    let node = Node::start_in(node.data_dir(), &env);
    node.settle();
    let restarted = resident_mib(&node);
    eprintln!(
        "{stored_mib} MiB of events: {baseline} MiB before any, peak {peak} MiB while ingesting, {running} MiB settled, {restarted} MiB after a restart"
    );
    // What the events add must stay near the 16 MiB cache bound (plus transients: 1 MiB
    // pieces of a segment at open, pages of 1 MiB), far under the events' total.
    let grown = |now: u64| now.saturating_sub(baseline);
    assert!(
        grown(restarted) < 60,
        "after a restart the node grew by {} MiB for {stored_mib} MiB of events",
        grown(restarted)
    );
    assert!(
        grown(running) < 70,
        "settled, the node grew by {} MiB for {stored_mib} MiB of events",
        grown(running)
    );
    assert_eq!(
        node.entity("inventory", "sku-0")
            .map(|sku| sku["available"].clone()),
        Some(Value::from(BATCHES * PER_BATCH / 8))
    );
}
