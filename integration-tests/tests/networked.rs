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
