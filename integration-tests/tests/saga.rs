//! The order-fulfillment saga end to end, on a real node over real HTTP.

use herald_integration_tests::*;
use serde_json::{json, Value};

fn accepted(reply: &Reply) -> u64 {
    assert_eq!(reply.status, 202, "expected 202: {}", reply.json);
    reply.json["sequence"].as_u64().expect("sequence")
}

#[test]
fn happy_path_reaches_delivered() {
    let node = Node::start();
    accepted(&node.publish(&stock_added("sku-a", 10)));
    accepted(&node.publish(&credit_granted("alice", 10_000)));
    let placed = node.publish(&order_placed("o-1", "alice", &[("sku-a", 3, 500)]));
    // The partition of orders that holds o-1 (orders-p0.. on a partitioned node).
    assert_eq!(
        placed.json["stream"],
        node.key_stream("orders", "o-1").as_str()
    );
    accepted(&placed);

    node.await_field("orders", "o-1", "status", &json!("awaiting_shipment"));
    assert_eq!(
        node.entity("inventory", "sku-a").unwrap(),
        json!({"sku": "sku-a", "available": 7, "reserved": 3, "shipped": 0})
    );
    assert_eq!(
        node.entity("payments", "alice").unwrap(),
        json!({"customer": "alice", "credit": 8_500, "captured": 1_500})
    );
    node.await_field("shipping", "o-1", "status", &json!("scheduled"));

    accepted(&node.publish(&order_event("shipping.ShipmentDispatched", "o-1")));
    node.await_field("orders", "o-1", "status", &json!("shipped"));
    node.await_field("inventory", "sku-a", "shipped", &json!(3));
    accepted(&node.publish(&order_event("shipping.ShipmentDelivered", "o-1")));
    let order = node.await_field("orders", "o-1", "status", &json!("delivered"));
    assert_eq!(order["total"], 1_500);
    assert_eq!(order["customer"], "alice");
    assert_eq!(
        node.entity("inventory", "sku-a").unwrap(),
        json!({"sku": "sku-a", "available": 7, "reserved": 0, "shipped": 3})
    );

    eventually("analytics sees the delivery", || {
        node.summary()["orders_delivered"] == 1
    });
    let summary = node.summary();
    assert_eq!(summary["orders_placed"], 1);
    assert_eq!(summary["revenue"], 1_500);
    for event_type in [
        "orders.OrderPlaced",
        "inventory.StockReserved",
        "payments.PaymentCaptured",
        "shipping.ShipmentScheduled",
        "shipping.ShipmentDispatched",
        "inventory.StockShipped",
        "shipping.ShipmentDelivered",
    ] {
        assert_eq!(
            summary["events_by_type"][event_type], 1,
            "{event_type}: {summary}"
        );
    }
}

#[test]
fn out_of_stock_rejects_the_order_and_reserves_nothing() {
    let node = Node::start();
    accepted(&node.publish(&stock_added("sku-a", 5)));
    accepted(&node.publish(&stock_added("sku-b", 1)));
    accepted(&node.publish(&credit_granted("bob", 100_000)));
    accepted(&node.publish(&order_placed(
        "o-2",
        "bob",
        &[("sku-a", 2, 100), ("sku-b", 3, 100)],
    )));
    let order = node.await_field("orders", "o-2", "status", &json!("rejected"));
    let reason = order["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("sku-b"), "reason names the sku: {reason}");
    // All or nothing: sku-a was not reserved either.
    assert_eq!(node.entity("inventory", "sku-a").unwrap()["available"], 5);
    assert_eq!(node.entity("inventory", "sku-a").unwrap()["reserved"], 0);
    assert_eq!(node.entity("payments", "bob").unwrap()["captured"], 0);
    eventually("analytics counts the rejection", || {
        node.summary()["orders_rejected"] == 1
    });
}

#[test]
fn declined_payment_releases_the_stock() {
    let node = Node::start();
    accepted(&node.publish(&stock_added("sku-a", 4)));
    accepted(&node.publish(&credit_granted("carol", 100)));
    accepted(&node.publish(&order_placed("o-3", "carol", &[("sku-a", 2, 500)])));
    let order = node.await_field("orders", "o-3", "status", &json!("rejected"));
    assert!(order["reason"].is_string(), "a reason: {order}");
    node.await_field("inventory", "sku-a", "available", &json!(4));
    assert_eq!(node.entity("inventory", "sku-a").unwrap()["reserved"], 0);
    assert_eq!(
        node.entity("payments", "carol").unwrap(),
        json!({"customer": "carol", "credit": 100, "captured": 0})
    );
    assert!(node.entity("shipping", "o-3").is_none());
}

#[test]
fn cancellation_after_payment_refunds_and_releases() {
    let node = Node::start();
    accepted(&node.publish(&stock_added("sku-a", 6)));
    accepted(&node.publish(&credit_granted("dave", 5_000)));
    accepted(&node.publish(&order_placed("o-4", "dave", &[("sku-a", 2, 700)])));
    node.await_field("orders", "o-4", "status", &json!("awaiting_shipment"));
    node.await_field("payments", "dave", "captured", &json!(1_400));

    accepted(&node.publish(&order_event("orders.OrderCancelled", "o-4")));
    node.await_field("orders", "o-4", "status", &json!("cancelled"));
    node.await_field("payments", "dave", "captured", &json!(0));
    assert_eq!(node.entity("payments", "dave").unwrap()["credit"], 5_000);
    node.await_field("inventory", "sku-a", "available", &json!(6));
    assert_eq!(node.entity("inventory", "sku-a").unwrap()["reserved"], 0);
    node.await_field("shipping", "o-4", "status", &json!("cancelled"));
    eventually("analytics nets the refund", || {
        let summary = node.summary();
        summary["orders_cancelled"] == 1 && summary["revenue"] == 0
    });

    // A cancelled order cannot be dispatched or cancelled again.
    let dispatch = node.publish(&order_event("shipping.ShipmentDispatched", "o-4"));
    assert_eq!(dispatch.status, 409, "{}", dispatch.json);
    let again = node.publish(&order_event("orders.OrderCancelled", "o-4"));
    assert_eq!(again.status, 409, "{}", again.json);
}

#[test]
fn a_resent_event_answers_200_with_the_original_position() {
    let node = Node::start();
    let event = stock_added("sku-d", 3);
    let first = node.publish(&event);
    let sequence = accepted(&first);
    for _ in 0..2 {
        let again = node.publish(&event);
        assert_eq!(again.status, 200, "{}", again.json);
        assert_eq!(again.json["sequence"], sequence);
        assert_eq!(again.json["status"], "duplicate");
    }
    // Deduplication runs before validation: a resent order is not a conflict.
    let order = order_placed("o-dup", "erin", &[("sku-d", 1, 1)]);
    accepted(&node.publish(&order));
    assert_eq!(node.publish(&order).status, 200);
    eventually("analytics counted each once", || {
        let summary = node.summary();
        summary["events_by_type"]["inventory.StockAdded"] == 1
            && summary["events_by_type"]["orders.OrderPlaced"] == 1
    });
}

#[test]
fn a_batch_is_answered_with_each_position_and_a_bad_one_refuses_all() {
    let node = Node::start();
    let batch = [
        stock_added("sku-x", 1),
        stock_added("sku-y", 2),
        credit_granted("frank", 300),
    ];
    let reply = node.publish_batch(&batch);
    assert_eq!(reply.status, 202, "{}", reply.json);
    let results = reply.json["results"].as_array().expect("results");
    let streams: Vec<(&str, u64)> = results
        .iter()
        .map(|r| {
            (
                r["stream"].as_str().unwrap(),
                r["sequence"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        streams,
        [("inventory", 1), ("inventory", 2), ("payments", 1)]
    );
    assert_eq!(results[0]["id"], batch[0]["id"]);

    // The last event conflicts with state (second OrderPlaced for one id): nothing of the
    // batch is appended, in any domain, and the problem names its index.
    accepted(&node.publish(&order_placed("o-b", "frank", &[("sku-x", 1, 1)])));
    let refused = node.publish_batch(&[
        stock_added("sku-z", 9),
        credit_granted("frank", 1),
        order_placed("o-b", "frank", &[("sku-x", 1, 1)]),
    ]);
    assert_eq!(refused.status, 409, "{}", refused.json);
    assert_eq!(refused.json["index"], 2);
    assert!(node.entity("inventory", "sku-z").is_none());
    // 300 granted, 1 captured for o-b, 5 more now: a leaked grant of 1 would show as 305.
    accepted(&node.publish(&credit_granted("frank", 5)));
    node.await_field("payments", "frank", "credit", &json!(304));
    node.await_field("payments", "frank", "captured", &json!(1));
}

#[test]
fn binary_mode_takes_ce_headers() {
    let node = Node::start();
    let reply = node.post_with(
        "/v1/events",
        "application/json",
        &[
            ("ce-specversion", "1.0"),
            ("ce-id", "bin-1"),
            ("ce-source", "/tests/binary"),
            ("ce-type", "inventory.StockAdded"),
            ("ce-subject", "sku-bin"),
        ],
        json!({"sku": "sku-bin", "quantity": 4}).to_string(),
    );
    assert_eq!(reply.status, 202, "{}", reply.json);
    node.await_field("inventory", "sku-bin", "available", &json!(4));
}

#[test]
fn topology_lists_types_schemas_ingress_and_subscriptions() {
    let node = Node::start();
    let reply = node.get("/v1/domains");
    assert_eq!(reply.status, 200);
    let domains = reply.json["domains"].as_array().expect("domains");
    // The test build also registers the fault-test domains, listed but not hosted.
    let names: Vec<&str> = domains
        .iter()
        .filter(|d| d["hosted"] == true)
        .filter_map(|d| d["name"].as_str())
        .collect();
    assert_eq!(names, herald_integration_tests::saga_domains());
    assert!(domains
        .iter()
        .filter(|d| d["hosted"] == true)
        .all(|d| d["status"] == "ready"));
    let inventory = domains.iter().find(|d| d["name"] == "inventory").unwrap();
    assert_eq!(inventory["ingress"], json!(["inventory.StockAdded"]));
    let subscriptions: Vec<&str> = inventory["subscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        subscriptions.contains(&"orders.OrderPlaced"),
        "{subscriptions:?}"
    );
    let reserved = &inventory["types"]["inventory.StockReserved"];
    assert_eq!(reserved["ingress"], false);
    let added = &inventory["types"]["inventory.StockAdded"];
    assert_eq!(added["ingress"], true);
    assert_eq!(added["schema"]["type"], "object");
    assert!(
        added["schema"]["properties"]["quantity"].is_object(),
        "{added}"
    );
    // Entity and query answers are typed: their schemas are in the topology too.
    let entity = &inventory["entity"];
    for field in ["sku", "available", "reserved", "shipped"] {
        assert!(entity["properties"][field].is_object(), "{field}: {entity}");
    }
    let analytics = domains.iter().find(|d| d["name"] == "analytics").unwrap();
    let summary = &analytics["query_answers"]["summary"];
    assert!(
        summary["properties"]["orders_placed"].is_object(),
        "{summary}"
    );
    let orders = domains.iter().find(|d| d["name"] == "orders").unwrap();
    assert_eq!(orders["queries"], json!(["statuses"]));
    assert!(orders["query_answers"]["statuses"]["properties"]["by_status"].is_object());
}

#[test]
fn orders_for_one_sku_are_served_in_append_order() {
    let node = Node::start();
    let skus: Vec<String> = (0..20).map(|n| format!("sku-order-{n}")).collect();
    let batch: Vec<Value> = skus.iter().map(|sku| stock_added(sku, 1)).collect();
    assert_eq!(node.publish_batch(&batch).status, 202);
    accepted(&node.publish(&credit_granted("olga", 1_000_000)));
    // Per sku, two orders for its single unit, appended first then second: inventory must
    // handle them in that order, so the first is served and the second is out of stock.
    for sku in &skus {
        accepted(&node.publish(&order_placed(
            &format!("{sku}-first"),
            "olga",
            &[(sku, 1, 1)],
        )));
        accepted(&node.publish(&order_placed(
            &format!("{sku}-second"),
            "olga",
            &[(sku, 1, 1)],
        )));
    }
    for sku in &skus {
        node.await_field(
            "orders",
            &format!("{sku}-first"),
            "status",
            &json!("awaiting_shipment"),
        );
        node.await_field(
            "orders",
            &format!("{sku}-second"),
            "status",
            &json!("rejected"),
        );
    }
}
