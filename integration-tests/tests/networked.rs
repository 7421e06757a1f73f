//! Networked mode on a real nats-server with JetStream: the saga across nodes, SIGKILL of a
//! node under load, a NATS outage, and a plain NATS client reading Herald's events.

use herald_integration_tests::nats::NatsServer;
use herald_integration_tests::*;
use serde_json::json;

fn accepted(reply: &Reply) {
    assert_eq!(reply.status, 202, "expected 202: {}", reply.json);
}

#[test]
fn the_saga_runs_on_one_node_in_networked_mode() {
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
    eventually("analytics on C sees the delivery", || {
        a.summary()["orders_delivered"] == 1
    });
    assert_eq!(a.summary()["revenue"], 1_500);

    // Every node lists the three nodes and what each hosts.
    for node in [&a, &b, &c] {
        eventually("the cluster view lists three nodes", || {
            members(node).len() == 3
        });
        assert_eq!(
            members(node),
            vec![
                ("node-a".to_owned(), vec!["orders".to_owned()]),
                (
                    "node-b".to_owned(),
                    vec!["inventory".to_owned(), "payments".to_owned()]
                ),
                (
                    "node-c".to_owned(),
                    vec!["analytics".to_owned(), "shipping".to_owned()]
                ),
            ]
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
