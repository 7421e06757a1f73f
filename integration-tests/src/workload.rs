//! A deterministic saga workload that produces every event type of the example domains,
//! and a fingerprint of everything a node answers about it, for "the same after a restart"
//! comparisons.

use serde_json::{json, Map, Value};

use crate::{credit_granted, order_event, order_placed, stock_added, Node};

/// The entities a workload touched: `(domain, key)`.
pub type Keys = Vec<(&'static str, String)>;

/// One round of the saga under `tag` (fresh skus, customers and orders), each order driven
/// to a known status:
///
/// - `{tag}-ok`: reserved, paid, scheduled, dispatched, delivered;
/// - `{tag}-short`: rejected, out of stock;
/// - `{tag}-poor`: declined for credit, its stock released;
/// - `{tag}-cancel`: paid then cancelled: refunded, released, shipment cancelled;
/// - `{tag}-open`: left awaiting shipment;
/// - `{tag}-quick`: cancelled right after it was placed.
///
/// Returns the entities it touched. Waits for each status, so it ends settled except for
/// reactions to the last cancellation, which [`Node::settle`] covers.
pub fn saga_round(node: &Node, tag: &str) -> Keys {
    let sku_a = format!("{tag}-sku-a");
    let sku_b = format!("{tag}-sku-b");
    let rich = format!("{tag}-rich");
    let poor = format!("{tag}-poor");
    node.accept(&stock_added(&sku_a, 10));
    node.accept(&stock_added(&sku_b, 2));
    node.accept(&credit_granted(&rich, 100_000));
    node.accept(&credit_granted(&poor, 100));
    let order = |name: &str| format!("{tag}-{name}");

    node.accept(&order_placed(&order("ok"), &rich, &[(&sku_a, 2, 300)]));
    node.await_field(
        "orders",
        &order("ok"),
        "status",
        &json!("awaiting_shipment"),
    );
    node.accept(&order_event("shipping.ShipmentDispatched", &order("ok")));
    node.await_field("orders", &order("ok"), "status", &json!("shipped"));
    node.accept(&order_event("shipping.ShipmentDelivered", &order("ok")));
    node.await_field("orders", &order("ok"), "status", &json!("delivered"));

    node.accept(&order_placed(&order("short"), &rich, &[(&sku_b, 5, 100)]));
    node.await_field("orders", &order("short"), "status", &json!("rejected"));

    node.accept(&order_placed(&order("poor"), &poor, &[(&sku_a, 1, 500)]));
    node.await_field("orders", &order("poor"), "status", &json!("rejected"));

    node.accept(&order_placed(&order("cancel"), &rich, &[(&sku_a, 1, 200)]));
    node.await_field(
        "orders",
        &order("cancel"),
        "status",
        &json!("awaiting_shipment"),
    );
    node.accept(&order_event("orders.OrderCancelled", &order("cancel")));
    node.await_field("shipping", &order("cancel"), "status", &json!("cancelled"));

    node.accept(&order_placed(&order("open"), &rich, &[(&sku_a, 1, 100)]));
    node.await_field(
        "orders",
        &order("open"),
        "status",
        &json!("awaiting_shipment"),
    );

    node.accept(&order_placed(&order("quick"), &rich, &[(&sku_b, 1, 50)]));
    node.accept(&order_event("orders.OrderCancelled", &order("quick")));
    node.await_field("orders", &order("quick"), "status", &json!("cancelled"));

    let mut keys: Keys = vec![
        ("inventory", sku_a),
        ("inventory", sku_b),
        ("payments", rich),
        ("payments", poor),
    ];
    for name in ["ok", "short", "poor", "cancel", "open", "quick"] {
        keys.push(("orders", order(name)));
        keys.push(("shipping", order(name)));
    }
    keys
}

/// Everything the node answers about `keys`, once settled: `/v1/streams`, every stream's
/// events, each entity (`null` for 404) and the analytics summary.
pub fn fingerprint(node: &Node, keys: &Keys) -> Value {
    let streams = node.settle();
    let events: Map<String, Value> = node
        .read_all_streams()
        .into_iter()
        .map(|(name, events)| (name, Value::from(events)))
        .collect();
    let mut entities = Map::new();
    for (domain, key) in keys {
        let entity = node.entity(domain, key).unwrap_or(Value::Null);
        entities.insert(format!("{domain}/{key}"), entity);
    }
    json!({
        "streams": streams,
        "events": events,
        "entities": entities,
        "summary": node.summary(),
    })
}
