//! Partitions end to end: real `herald` processes, each enabling every example domain, on
//! one test-started nats-server; orders and shipping spread over 6 partitions each.
//! Owners are asserted exactly: what `partition::assign` gives over the live members.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use herald_integration_tests::nats::{owners, NatsServer};
use herald_integration_tests::*;
use herald_runtime::partition;
use serde_json::{json, Value};

const ALL: &str = "orders,shipping,inventory,payments,analytics";
const DOMAINS: [&str; 5] = ["orders", "shipping", "inventory", "payments", "analytics"];
const PARTITIONS: u32 = 6;

/// One cluster at a time: two cores cannot run several without starving clients.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn start(nats: &NatsServer, id: &str) -> Node {
    nats.node_with(id, ALL, &[("HERALD_DOMAINS__PARTITIONS", "6")])
}

/// Nodes n1, n2 and n3, once every stream is ready where it belongs.
fn three_settled(nats: &NatsServer) -> Vec<Node> {
    let nodes: Vec<Node> = ["n1", "n2", "n3"]
        .iter()
        .map(|id| start(nats, id))
        .collect();
    await_settled(&nodes[0], &["n1", "n2", "n3"], Duration::from_secs(60));
    nodes
}

/// Stock and credit enough for every order a test places.
fn stock_and_credit(node: &Node) {
    accepted(&node.publish(&stock_added("sku-a", 1_000_000)));
    accepted(&node.publish(&credit_granted("alice", 1_000_000_000)));
}

fn count(domain: &str) -> u32 {
    match domain {
        "orders" | "shipping" => PARTITIONS,
        _ => 1,
    }
}

/// Whether `node`'s cluster view shows every stream ready at the owner `assign` gives over
/// `members`; the mismatches otherwise.
fn mismatches(node: &Node, members: &[&str]) -> Vec<String> {
    mismatches_of(node, &DOMAINS, members)
}

/// [`mismatches`] over `domains` alone.
fn mismatches_of(node: &Node, domains: &[&str], members: &[&str]) -> Vec<String> {
    let mut wrong = Vec::new();
    for &domain in domains {
        let listed = owners(node, domain);
        let wanted = partition::assign(domain, count(domain), members);
        if listed.len() != wanted.len() {
            wrong.push(format!("{domain}: {} streams listed", listed.len()));
            continue;
        }
        for (owner, want) in listed.iter().zip(wanted) {
            if owner.node != want || owner.status != "ready" {
                wrong.push(format!(
                    "{} at {:?} ({}), expected {want:?}",
                    owner.stream, owner.node, owner.status
                ));
            }
        }
    }
    wrong
}

/// Waits until every stream is ready where it belongs among `members`; how long it took.
fn await_settled(node: &Node, members: &[&str], within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let wrong = mismatches(node, members);
        if wrong.is_empty() {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "not settled over {members:?} within {within:?}: {wrong:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn accepted(reply: &Reply) {
    assert!(
        reply.status == 202 || reply.status == 200,
        "{}: {}",
        reply.status,
        reply.json
    );
}

/// Polls `probe` for up to 30 s until it gives a value.
fn eventually_value<T>(mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30) {
        if let Some(value) = probe() {
            return Some(value);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// Every event of every stream of `domain`, as `node` reads them.
fn events_of(node: &Node, domain: &str) -> Vec<Value> {
    owners(node, domain)
        .iter()
        .flat_map(|owner| node.read_stream(&owner.stream))
        .collect()
}

/// How many events of `event_type` each subject has in `domain`'s streams.
fn per_subject(node: &Node, domain: &str, event_type: &str) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for event in events_of(node, domain) {
        if event["type"] == event_type {
            let subject = event["subject"].as_str().unwrap_or_default().to_owned();
            *counts.entry(subject).or_default() += 1;
        }
    }
    counts
}

fn order(id: &str) -> Value {
    order_placed(id, "alice", &[("sku-a", 1, 100)])
}

/// Posts `event` until it is acknowledged, resending the same event (same id) on 503 and
/// 504 as a client should; panics on anything else. Returns the statuses seen.
fn deliver(node: &Node, event: &Value) -> Vec<u16> {
    let mut seen = Vec::new();
    let started = Instant::now();
    loop {
        let reply = node.publish(event);
        seen.push(reply.status);
        match reply.status {
            200 | 202 => return seen,
            503 | 504 if started.elapsed() < Duration::from_secs(60) => {
                if reply.status == 503 {
                    assert!(
                        reply.retry_after.is_some(),
                        "503 without Retry-After: {}",
                        reply.json
                    );
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            other => panic!(
                "unexpected {other} for {}: {}",
                event["subject"], reply.json
            ),
        }
    }
}

/// Places orders `<prefix>-<n>` at `node` until `stop`, each delivered; the acknowledged
/// order ids and every status seen.
fn keep_ordering(node: &Node, prefix: &str, stop: &AtomicBool) -> (Vec<String>, Vec<u16>) {
    let mut placed = Vec::new();
    let mut statuses = Vec::new();
    let mut n = 0;
    while !stop.load(Ordering::Acquire) {
        let id = format!("{prefix}-{n}");
        statuses.extend(deliver(node, &order(&id)));
        placed.push(id);
        n += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    (placed, statuses)
}

/// Waits until `domain`'s entity `id` has one of `statuses`.
fn await_status(node: &Node, domain: &str, id: &str, statuses: &[&str]) {
    let reached = eventually_value(|| {
        // A partition moving between nodes answers 503 for a moment.
        let entity = node
            .try_entity(domain, id)
            .ok()
            .flatten()
            .unwrap_or(Value::Null);
        statuses
            .iter()
            .any(|status| entity["status"] == *status)
            .then_some(())
    });
    assert!(
        reached.is_some(),
        "{domain}/{id} never reached {statuses:?}"
    );
}

/// The saga's invariants for `orders`: each stored exactly once, each with one stock
/// reservation, one payment and one shipment, all in the right partition, ids unique.
fn assert_saga_whole(node: &Node, orders: &[String]) {
    for id in orders {
        await_status(node, "orders", id, &["awaiting_shipment", "delivered"]);
    }
    let placed = per_subject(node, "orders", "orders.OrderPlaced");
    let wanted: BTreeMap<String, usize> = orders.iter().map(|id| (id.clone(), 1)).collect();
    assert_eq!(
        placed, wanted,
        "every acknowledged order stored exactly once"
    );
    for owner in owners(node, "orders") {
        for event in node.read_stream(&owner.stream) {
            let key = event["subject"].as_str().unwrap_or_default();
            assert_eq!(
                partition::stream("orders", partition::of(key, PARTITIONS), PARTITIONS),
                owner.stream,
                "{key} stored in the partition its key falls in"
            );
        }
    }
    for id in orders {
        await_status(node, "shipping", id, &["scheduled", "delivered"]);
    }
    let reserved = per_subject(node, "inventory", "inventory.StockReserved");
    let captured = per_subject(node, "payments", "payments.PaymentCaptured");
    let scheduled = per_subject(node, "shipping", "shipping.ShipmentScheduled");
    for id in orders {
        assert_eq!(reserved.get(id), Some(&1), "one reservation for {id}");
        assert_eq!(captured.get(id), Some(&1), "one payment for {id}");
        assert_eq!(scheduled.get(id), Some(&1), "one shipment for {id}");
    }
    let mut ids = BTreeSet::new();
    for domain in DOMAINS {
        for event in events_of(node, domain) {
            let id = format!("{}/{}", event["source"], event["id"]);
            assert!(ids.insert(id.clone()), "{id} stored twice");
        }
    }
    eventually("analytics counts what the streams hold", || {
        node.summary()["orders_placed"] == json!(placed.len())
    });
}

#[test]
fn the_saga_runs_on_partitions_over_three_nodes_entering_at_one_and_queried_at_others() {
    let _serial = serial();
    let nats = NatsServer::start();
    let nodes: Vec<Node> = ["n1", "n2", "n3"]
        .iter()
        .map(|id| start(&nats, id))
        .collect();
    let members = ["n1", "n2", "n3"];
    await_settled(&nodes[0], &members, Duration::from_secs(60));
    let (n1, n2, n3) = (&nodes[0], &nodes[1], &nodes[2]);

    stock_and_credit(n1);
    let mut orders: Vec<String> = (1..=18).map(|n| format!("o-{n}")).collect();
    for id in &orders {
        accepted(&n1.publish(&order(id)));
    }

    // A batch spanning partitions is refused whole, naming the groups to send instead.
    let batch_ids: Vec<String> = (100..108).map(|n| format!("o-{n}")).collect();
    let batch: Vec<Value> = batch_ids.iter().map(|id| order(id)).collect();
    let before = per_subject(n2, "orders", "orders.OrderPlaced");
    let refused = n1.publish_batch(&batch);
    assert_eq!(refused.status, 422, "{}", refused.json);
    assert_eq!(
        refused.json["type"],
        "https://herald.dev/problems/batch-spans-partitions"
    );
    assert_eq!(
        per_subject(n2, "orders", "orders.OrderPlaced"),
        before,
        "the refused batch appended nothing"
    );
    let groups = refused.json["groups"].as_object().expect("groups");
    let mut covered = Vec::new();
    for (stream, indexes) in groups {
        let indexes: Vec<usize> = indexes
            .as_array()
            .expect("indexes")
            .iter()
            .map(|i| i.as_u64().expect("index") as usize)
            .collect();
        for index in &indexes {
            let key = &batch_ids[*index];
            assert_eq!(
                stream,
                &partition::stream("orders", partition::of(key, PARTITIONS), PARTITIONS)
            );
        }
        covered.extend(indexes.iter().copied());
        let group: Vec<Value> = indexes.iter().map(|i| batch[*i].clone()).collect();
        accepted(&n1.publish_batch(&group));
    }
    covered.sort_unstable();
    assert_eq!(covered, (0..batch.len()).collect::<Vec<_>>());
    orders.extend(batch_ids);

    // A partitionkey other than the subject would split one order over two partitions.
    let mut split = order("o-200");
    split["partitionkey"] = json!("someone-else");
    let refused = n1.publish(&split);
    assert_eq!(refused.status, 422, "{}", refused.json);
    assert_eq!(
        refused.json["type"],
        "https://herald.dev/problems/partitionkey-not-subject"
    );

    // Answered by the other nodes, wherever each partition lives.
    for id in &orders {
        n2.await_field("orders", id, "status", &json!("awaiting_shipment"));
        assert_eq!(
            n3.entity("orders", id).expect("order")["status"],
            "awaiting_shipment"
        );
        assert_eq!(
            n3.entity("shipping", id).expect("shipment")["status"],
            "scheduled"
        );
    }
    for id in &orders[..4] {
        accepted(&n3.publish(&order_event("shipping.ShipmentDispatched", id)));
        accepted(&n3.publish(&order_event("shipping.ShipmentDelivered", id)));
    }
    for id in &orders[..4] {
        n2.await_field("orders", id, "status", &json!("delivered"));
    }
    eventually("analytics sees the deliveries", || {
        n2.summary()["orders_delivered"] == 4
    });
    assert_saga_whole(n2, &orders);
    assert_eq!(n3.summary()["revenue"], json!(100 * orders.len()));
    // A named query answers for the whole domain from any node, whichever partitions it
    // owns: every partition asked (here or at its owner) and the answers merged.
    let whole = json!({
        "orders": orders.len(),
        "by_status": {"awaiting_shipment": orders.len() - 4, "delivered": 4},
    });
    for (node, id) in nodes.iter().zip(members) {
        for query in ["", "?customer=alice"] {
            let path = format!("/v1/domains/orders/queries/statuses{query}");
            let reply = node.get(&path);
            assert_eq!(reply.status, 200, "{path} on {id}: {}", reply.text);
            assert_eq!(reply.json, whole, "{path} on {id}");
        }
        let reply = node.get("/v1/domains/orders/queries/statuses?customer=nobody");
        assert_eq!(reply.json["orders"], 0, "on {id}: {}", reply.text);
    }
    for node in &nodes {
        assert!(
            mismatches(node, &members).is_empty(),
            "every node agrees on the owners"
        );
    }
    // Each node's metrics name the partitions it owns, by domain and partition.
    for (node, id) in nodes.iter().zip(members) {
        let metrics = node.get("/metrics").text;
        for owner in owners(node, "orders") {
            let partition = &owner.stream["orders-p".len()..];
            let sample =
                format!("herald_domain_ready{{domain=\"orders\",partition=\"{partition}\"}} 1");
            let here = owner.node.as_deref() == Some(id);
            assert_eq!(metrics.contains(&sample), here, "{sample} on {id}");
        }
    }
}

#[test]
fn sigkill_of_a_node_under_load_moves_its_partitions_and_loses_nothing() {
    let _serial = serial();
    let nats = NatsServer::start();
    let mut nodes = three_settled(&nats);
    stock_and_credit(&nodes[0]);
    let killed_streams: Vec<String> = DOMAINS
        .iter()
        .flat_map(|domain| owners(&nodes[0], domain))
        .filter(|owner| owner.node.as_deref() == Some("n3"))
        .map(|owner| owner.stream)
        .collect();
    assert!(!killed_streams.is_empty(), "n3 owns something to move");

    let stop = AtomicBool::new(false);
    let mut n3 = nodes.pop().expect("n3");
    let (moved_in, results) = std::thread::scope(|scope| {
        let clients: Vec<_> = nodes
            .iter()
            .zip(["a", "b"])
            .map(|(node, prefix)| scope.spawn(|| keep_ordering(node, prefix, &stop)))
            .collect();
        std::thread::sleep(Duration::from_secs(2));
        n3.kill();
        let moved_in = await_settled(&nodes[0], &["n1", "n2"], Duration::from_secs(30));
        std::thread::sleep(Duration::from_secs(3));
        stop.store(true, Ordering::Release);
        let results: Vec<_> = clients
            .into_iter()
            .map(|client| client.join().expect("client"))
            .collect();
        (moved_in, results)
    });
    eprintln!("partitions of the killed node ready elsewhere after {moved_in:?}");
    assert!(
        moved_in < Duration::from_secs(10),
        "the killed node's partitions ({killed_streams:?}) moved in {moved_in:?}, over the 10 s target"
    );
    let orders: Vec<String> = results
        .iter()
        .flat_map(|(placed, _)| placed.clone())
        .collect();
    assert!(
        orders.len() > 20,
        "the clients kept placing orders: {}",
        orders.len()
    );
    assert_saga_whole(&nodes[1], &orders);
    // The killed node's keys are answered by the survivors.
    for id in &orders {
        let stream = partition::stream("orders", partition::of(id, PARTITIONS), PARTITIONS);
        if killed_streams.contains(&stream) {
            for node in &nodes {
                assert!(node.entity("orders", id).is_some(), "{id} answered");
            }
        }
    }
}

#[test]
fn a_fourth_node_joining_takes_its_share_of_partitions_with_no_loss() {
    let _serial = serial();
    let nats = NatsServer::start();
    let nodes = three_settled(&nats);
    stock_and_credit(&nodes[0]);

    let stop = AtomicBool::new(false);
    let (joined_in, (orders, statuses), n4) = std::thread::scope(|scope| {
        let client = scope.spawn(|| keep_ordering(&nodes[0], "j", &stop));
        std::thread::sleep(Duration::from_secs(1));
        let n4 = start(&nats, "n4");
        let joined_in = await_settled(
            &nodes[0],
            &["n1", "n2", "n3", "n4"],
            Duration::from_secs(40),
        );
        std::thread::sleep(Duration::from_secs(1));
        stop.store(true, Ordering::Release);
        (joined_in, client.join().expect("client"), n4)
    });
    eprintln!("the fourth node owned its share after {joined_in:?}");
    let taken: Vec<String> = ["orders", "shipping"]
        .iter()
        .flat_map(|domain| owners(&n4, domain))
        .filter(|owner| owner.node.as_deref() == Some("n4"))
        .map(|owner| owner.stream)
        .collect();
    assert!(taken.len() >= 2, "n4 took partitions: {taken:?}");
    assert!(
        statuses.iter().all(|s| matches!(s, 200 | 202 | 503 | 504)),
        "clients saw only acknowledgements or retryable refusals: {statuses:?}"
    );
    assert_saga_whole(&n4, &orders);
}

#[test]
fn a_stale_partition_owner_paused_past_its_lease_cannot_append() {
    let _serial = serial();
    let nats = NatsServer::start();
    let nodes = three_settled(&nats);
    let (n1, n2) = (&nodes[0], &nodes[1]);
    stock_and_credit(n2);
    let stream = owners(n2, "orders")
        .into_iter()
        .find(|owner| owner.node.as_deref() == Some("n1"))
        .expect("n1 owns an orders partition")
        .stream;
    let keys: Vec<String> = (0..)
        .map(|n| format!("k-{n}"))
        .filter(|key| {
            partition::stream("orders", partition::of(key, PARTITIONS), PARTITIONS) == stream
        })
        .take(3)
        .collect();
    accepted(&n2.publish(&order(&keys[0])));

    n1.signal("STOP");
    eventually(
        "another node owns the partition once n1's lease ran out",
        || {
            owners(n2, "orders").iter().any(|owner| {
                owner.stream == stream
                    && owner.node.as_deref() != Some("n1")
                    && owner.status == "ready"
            })
        },
    );
    accepted(&n2.publish(&order(&keys[1])));
    // A request reaches n1 while it is stopped; it is handled once n1 resumes.
    let stale = std::thread::scope(|scope| {
        let pending = scope.spawn(|| {
            n1.client()
                .post(format!("{}/v1/events", n1.base))
                .header("content-type", "application/cloudevents+json")
                .body(order(&keys[2]).to_string())
                .send()
                .map(|response| response.status().as_u16())
                // The node's HTTP server may drop a request that waited out its read timeout
                // while the process was stopped: no answer, nothing appended.
                .unwrap_or(0)
        });
        std::thread::sleep(Duration::from_secs(2));
        n1.signal("CONT");
        pending.join().expect("request")
    });
    // n1's server closes the connections that idled through the pause; let it, so the
    // pooled client does not reuse one.
    std::thread::sleep(Duration::from_secs(1));
    let stored: Vec<String> = n2
        .read_stream(&stream)
        .iter()
        .filter(|event| event["type"] == "orders.OrderPlaced")
        .map(|event| event["subject"].as_str().unwrap_or_default().to_owned())
        .collect();
    match stale {
        202 => assert_eq!(stored, keys, "forwarded to the new owner"),
        0 | 503 => assert_eq!(stored, keys[..2]),
        other => panic!("unexpected {other}"),
    }
    eventually("n1 learns it lost the lease", || {
        n1.logs().contains("lease lost")
    });
    // Once it knows, n1 answers for the partition through its owner.
    for key in &keys[..2] {
        n1.await_field("orders", key, "status", &json!("awaiting_shipment"));
    }
}

#[test]
fn a_partition_count_or_lease_other_than_the_clusters_is_refused_naming_both() {
    let _serial = serial();
    let nats = NatsServer::start();
    let mut first = nats.node("n1", "orders");
    first.stop();
    let url = nats.url();
    let attempt = |env: &[(&str, &str)]| {
        let data_dir = tempfile::tempdir().expect("temp dir");
        let mut all = vec![
            ("HERALD_BUS__KIND", "nats"),
            ("HERALD_BUS__NATS__SERVERS", url.as_str()),
            ("HERALD_NODE__ID", "n2"),
            ("HERALD_DOMAINS__ENABLED", "orders"),
        ];
        all.extend_from_slice(env);
        run_node_to_exit(data_dir.path(), &all, Duration::from_secs(60))
    };
    let repartitioned = attempt(&[("HERALD_DOMAINS__PARTITIONS", "6")]);
    assert_eq!(repartitioned.status, Some(2), "{}", repartitioned.output());
    assert!(
        repartitioned
            .output()
            .contains("configured with 6 partition(s)")
            && repartitioned
                .output()
                .contains("laid out with 1 partition(s)"),
        "{}",
        repartitioned.output()
    );
    let other_lease = attempt(&[("HERALD_BUS__NATS__LEASE", "9s")]);
    assert_eq!(other_lease.status, Some(2), "{}", other_lease.output());
    assert!(
        other_lease.output().contains("lease is 9s here")
            && other_lease.output().contains("made with 3s"),
        "{}",
        other_lease.output()
    );
}

#[test]
fn a_durable_timer_fires_once_on_the_node_its_partition_moves_to_after_a_sigkill() {
    let _serial = serial();
    let nats = NatsServer::start();
    // Payments runs nowhere: no order is ever paid, so each one's payment deadline fires.
    let without_payments = "orders,shipping,inventory,analytics";
    let env = [
        ("HERALD_DOMAINS__PARTITIONS", "6"),
        ("HERALD_DOMAIN__ORDERS__PAYMENT_TIMEOUT", "6s"),
    ];
    let mut nodes: Vec<Node> = ["n1", "n2", "n3"]
        .iter()
        .map(|id| nats.node_with(id, without_payments, &env))
        .collect();
    // Settled over all three (before n3 joins, two nodes own every partition).
    let hosted = ["orders", "shipping", "inventory", "analytics"];
    let members = ["n1", "n2", "n3"];
    let settled = eventually_value(|| {
        mismatches_of(&nodes[0], &hosted, &members)
            .is_empty()
            .then_some(())
    });
    assert!(
        settled.is_some(),
        "not settled on three nodes: {:?}",
        mismatches_of(&nodes[0], &hosted, &members)
    );
    // An order whose partition n3 owns.
    let listed = owners(&nodes[0], "orders");
    let id = (0..1000)
        .map(|n| format!("timed-{n}"))
        .find(|id| {
            let p = partition::of(id, PARTITIONS) as usize;
            listed[p].node.as_deref() == Some("n3")
        })
        .expect("n3 owns a partition of orders");
    let stream = partition::stream("orders", partition::of(&id, PARTITIONS), PARTITIONS);
    accepted(&nodes[0].publish(&stock_added("sku-a", 10)));
    accepted(&nodes[0].publish(&order(&id)));
    await_status(&nodes[0], "orders", &id, &["reserved"]);
    let mut n3 = nodes.pop().expect("n3");
    n3.kill();
    let fired = |node: &Node| {
        node.read_stream(&stream)
            .into_iter()
            .filter(|e| e["subject"] == id.as_str() && e["type"] == "orders.OrderCancelled")
            .collect::<Vec<_>>()
    };
    assert!(
        fired(&nodes[0]).is_empty(),
        "the timer fired before n3 was killed"
    );

    // n1 or n2 takes the partition over, replays the schedule and fires it.
    await_status(&nodes[0], "orders", &id, &["cancelled"]);
    let new_owner = owners(&nodes[0], "orders")
        .into_iter()
        .find(|owner| owner.stream == stream)
        .and_then(|owner| owner.node);
    assert!(
        matches!(new_owner.as_deref(), Some("n1" | "n2")),
        "{stream} moved: {new_owner:?}"
    );
    await_status(&nodes[1], "orders", &id, &["cancelled"]);
    let stock = eventually_value(|| {
        nodes[1]
            .try_entity("inventory", "sku-a")
            .ok()
            .flatten()
            .filter(|stock| stock["reserved"] == 0)
    });
    assert_eq!(stock.expect("stock released")["available"], 10);
    std::thread::sleep(Duration::from_secs(2));
    let cancelled = fired(&nodes[1]);
    assert_eq!(cancelled.len(), 1, "fired exactly once: {cancelled:?}");
    assert_eq!(cancelled[0]["heraldtimer"], format!("payment:{id}"));
}

#[test]
fn a_read_naming_positions_waits_for_the_reactions_through_any_node() {
    let _serial = serial();
    let nats = NatsServer::start();
    let nodes = three_settled(&nats);
    stock_and_credit(&nodes[0]);
    // Ask through a node that does not host inventory: the read is forwarded with the
    // positions, and the owner waits for them.
    let inventory_owner = owners(&nodes[0], "inventory")[0].node.clone();
    let asker = nodes
        .iter()
        .zip(["n1", "n2", "n3"])
        .find(|(_, id)| Some(*id) != inventory_owner.as_deref())
        .map(|(node, _)| node)
        .expect("a node not hosting inventory");
    let before = nodes[0].entity("inventory", "sku-a").expect("stock")["reserved"]
        .as_u64()
        .unwrap_or(0);
    let mut positions = Vec::new();
    for n in 0..30 {
        let reply = nodes[n % 3].publish(&order(&format!("ryw-{n}")));
        accepted(&reply);
        positions.push(format!(
            "{}:{}",
            reply.json["stream"].as_str().expect("stream"),
            reply.json["sequence"]
        ));
    }
    let reflects = positions.join(",");
    let stock = asker.get(&format!(
        "/v1/domains/inventory/entities/sku-a?reflects={reflects}"
    ));
    assert_eq!(stock.status, 200, "{}", stock.json);
    assert_eq!(stock.json["reserved"], before + 30, "{}", stock.json);
    // A named query over partitions on every node waits in each.
    let statuses = asker.get(&format!(
        "/v1/domains/orders/queries/statuses?reflects={reflects}"
    ));
    assert_eq!(statuses.status, 200, "{}", statuses.json);
    assert!(
        statuses.json["orders"].as_u64().unwrap_or(0) >= 30,
        "{}",
        statuses.json
    );
}

#[test]
fn listing_entities_merges_every_nodes_partitions_through_any_node() {
    let _serial = serial();
    let nats = NatsServer::start();
    let nodes = three_settled(&nats);
    stock_and_credit(&nodes[0]);
    let mut ids: Vec<String> = (0..24).map(|n| format!("list-{n:02}")).collect();
    let mut last = Vec::new();
    for (n, id) in ids.iter().enumerate() {
        let reply = nodes[n % 3].publish(&order(id));
        accepted(&reply);
        last.push(format!(
            "{}:{}",
            reply.json["stream"].as_str().expect("stream"),
            reply.json["sequence"]
        ));
    }
    ids.sort();
    let reflects = last.join(",");
    for node in &nodes {
        let mut keys = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let path = match &after {
                Some(after) => {
                    format!("/v1/domains/orders/entities?limit=5&after={after}&reflects={reflects}")
                }
                None => format!("/v1/domains/orders/entities?limit=5&reflects={reflects}"),
            };
            let page = node.get(&path);
            assert_eq!(page.status, 200, "{}", page.json);
            for item in page.json["entities"].as_array().expect("entities") {
                keys.push(item["key"].as_str().expect("key").to_owned());
            }
            match page.json["next"].as_str() {
                Some(next) => after = Some(next.to_owned()),
                None => break,
            }
        }
        assert_eq!(keys, ids, "every order once, in key order");
    }
}
