//! The service's own binary as a real node, over real HTTP: loyalty, a domain outside
//! Herald's `domains/` crate, follows the saga and refuses an overdraft with 409.

use herald_integration_tests::{
    credit_granted, event, order_event, order_placed, stock_added, Node,
};
use serde_json::json;

#[test]
fn loyalty_awards_a_delivered_order_and_refuses_an_overdraft() {
    let node = Node::start_service(
        env!("CARGO_BIN_EXE_loyalty-service").as_ref(),
        // Every registered domain: the saga's and loyalty.
        &[("HERALD_DOMAINS__ENABLED", "")],
    );
    let domains = node.get("/v1/domains").json;
    let loyalty = domains["domains"]
        .as_array()
        .and_then(|domains| domains.iter().find(|d| d["name"] == "loyalty"))
        .expect("loyalty is registered");
    assert_eq!(loyalty["hosted"], true);
    assert_eq!(loyalty["ingress"], json!(["loyalty.PointsRedeemed"]));
    assert_eq!(loyalty["entity"]["properties"]["points"]["type"], "integer");

    node.accept(&stock_added("sku-a", 5));
    node.accept(&credit_granted("alice", 1_000));
    node.accept(&order_placed("o-1", "alice", &[("sku-a", 1, 100)]));
    node.await_field("shipping", "o-1", "status", &json!("scheduled"));
    node.accept(&order_event("shipping.ShipmentDispatched", "o-1"));
    node.accept(&order_event("shipping.ShipmentDelivered", "o-1"));
    node.await_field("loyalty", "alice", "points", &json!(1));

    let redeem = |points: u64| {
        let data = json!({"customer": "alice", "points": points});
        node.publish(&event("loyalty.PointsRedeemed", "alice", data))
    };
    let overdraft = redeem(2);
    assert_eq!(overdraft.status, 409, "{}", overdraft.json);
    assert!(overdraft.json["detail"]
        .as_str()
        .unwrap_or_default()
        .contains("alice has 1 points"));
    assert_eq!(redeem(1).status, 202);
    assert_eq!(node.entity("loyalty", "alice"), Some(json!({"points": 0})));
}
