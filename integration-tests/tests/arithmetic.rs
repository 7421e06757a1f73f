//! Figures past u64 in the example domains, on a real node over real HTTP (issue 13, item 6):
//! an event that cannot be counted exactly is refused with a 409 naming the values, a
//! reaction that would overflow is a decision the domain records, and credit, stock and
//! revenue stay exact. Nothing is clamped.

use std::path::Path;

use herald_integration_tests::*;
use herald_runtime::envelope::{Envelope, JSON_CONTENT_TYPE, SPEC_VERSION};
use herald_runtime::log::{EventLog, FileLog, FileLogOptions};
use serde_json::{json, Value};

const MAX: u64 = u64::MAX;
/// 2^33: an order of 2^33 units at 2^33 cents costs 2^66 cents, past u64.
const HUGE: u64 = 1 << 33;

/// Posts `event` and checks the node refuses it with a 409 whose detail names each of
/// `values`.
fn check_refused(node: &Node, what: &str, event: &Value, values: &[&str]) {
    let reply = node.publish(event);
    assert_eq!(
        reply.status, 409,
        "{what}: expected 409, saw {}: {}",
        reply.status, reply.text
    );
    for value in values {
        assert!(
            reply.text.contains(value),
            "{what}: the refusal should name {value}: {}",
            reply.text
        );
    }
}

#[test]
fn ingress_refuses_what_cannot_be_counted_exactly() {
    let node = Node::start();
    node.accept(&credit_granted("c-1", MAX));
    node.accept(&stock_added("s-1", MAX));

    let max = MAX.to_string();
    let huge = HUGE.to_string();
    // Each of these was 202 before and left a wrong figure behind.
    let cases: [(&str, Value, Vec<&str>); 4] = [
        (
            "a second grant of u64::MAX (one grant was lost)",
            credit_granted("c-1", MAX),
            vec!["c-1", max.as_str()],
        ),
        (
            "one unit more on a full sku (changed nothing)",
            stock_added("s-1", 1),
            vec!["s-1", max.as_str()],
        ),
        (
            "2^33 units at 2^33 cents (total clamped to u64::MAX and captured)",
            order_placed("o-huge", "c-1", &[("s-1", HUGE, HUGE)]),
            vec!["o-huge", "s-1", huge.as_str(), max.as_str()],
        ),
        (
            "two lines of one sku adding up past u64 units (reserved as u64::MAX)",
            order_placed("o-units", "c-1", &[("s-1", MAX, 0), ("s-1", 1, 0)]),
            vec!["o-units", "s-1", max.as_str()],
        ),
    ];
    for (what, event, values) in &cases {
        check_refused(&node, what, event, values);
    }
    node.settle();
    assert_eq!(node.entity("orders", "o-huge"), None);
    assert_eq!(node.entity("orders", "o-units"), None);
    assert_eq!(
        node.entity("payments", "c-1"),
        Some(json!({"customer": "c-1", "credit": MAX, "captured": 0}))
    );
    assert_eq!(
        node.entity("inventory", "s-1"),
        Some(json!({"sku": "s-1", "available": MAX, "reserved": 0, "shipped": 0}))
    );
    assert_eq!(node.summary()["revenue"], 0);
}

#[test]
fn credit_and_revenue_stay_exact_at_the_top_of_u64() {
    let node = Node::start();
    node.accept(&stock_added("s-1", 2));
    // Two customers each spend u64::MAX cents: revenue passes u64.
    for (customer, order) in [("c-1", "o-1"), ("c-2", "o-2")] {
        node.accept(&credit_granted(customer, MAX));
        node.accept(&order_placed(order, customer, &[("s-1", 1, MAX)]));
        node.await_field("orders", order, "status", &json!("awaiting_shipment"));
        assert_eq!(
            node.entity("payments", customer),
            Some(json!({"customer": customer, "credit": 0, "captured": MAX}))
        );
    }
    node.settle();
    // 2 x (2^64 - 1), exactly; past u64 the figure is its decimal digits.
    assert_eq!(node.summary()["revenue"], json!("36893488147419103230"));

    // c-1's account already counts u64::MAX (all captured); more credit would make the
    // refund of o-1 overflow it, so the grant is refused rather than the refund clamped.
    check_refused(
        &node,
        "a grant to an account whose captured credit may come back",
        &credit_granted("c-1", 1),
        &["c-1", &MAX.to_string()],
    );
    node.accept(&order_event("orders.OrderCancelled", "o-1"));
    node.await_field("orders", "o-1", "status", &json!("cancelled"));
    node.settle();
    assert_eq!(
        node.entity("payments", "c-1"),
        Some(json!({"customer": "c-1", "credit": MAX, "captured": 0}))
    );
    assert_eq!(node.summary()["revenue"], json!(MAX));
}

/// A CloudEvent as the log holds it, appended at ingress by an older build.
fn logged(event_type: &str, subject: &str, data: Value) -> Envelope {
    Envelope {
        id: format!("old-{event_type}-{subject}"),
        source: "/tests/older-build".to_owned(),
        specversion: SPEC_VERSION.to_owned(),
        event_type: event_type.to_owned(),
        subject: subject.to_owned(),
        time: "2026-01-01T00:00:00Z".to_owned(),
        datacontenttype: JSON_CONTENT_TYPE.to_owned(),
        data: data.to_string().into_bytes(),
        partitionkey: subject.to_owned(),
        traceparent: None,
        extensions: Vec::new(),
        cause: None,
        stream: String::new(),
        sequence: 0,
    }
}

/// Writes, into `data_dir`'s log, what a build without the checks accepted: stock, credit
/// and two orders whose figures pass u64.
fn write_older_log(data_dir: &Path) {
    let opened = FileLog::open(FileLogOptions::new(data_dir.join("log"))).expect("log opens");
    let line = |sku: &str, quantity: u64, unit_price: u64| json!({"sku": sku, "quantity": quantity, "unit_price": unit_price});
    let appends = [
        (
            "inventory",
            logged(
                "inventory.StockAdded",
                "s-1",
                json!({"sku": "s-1", "quantity": HUGE}),
            ),
        ),
        (
            "inventory",
            logged(
                "inventory.StockAdded",
                "s-2",
                json!({"sku": "s-2", "quantity": MAX}),
            ),
        ),
        (
            "payments",
            logged(
                "payments.CreditGranted",
                "c-1",
                json!({"customer": "c-1", "amount": MAX}),
            ),
        ),
        (
            "orders",
            logged(
                "orders.OrderPlaced",
                "o-price",
                json!({"order_id": "o-price", "customer": "c-1", "lines": [line("s-1", HUGE, HUGE)]}),
            ),
        ),
        (
            "orders",
            logged(
                "orders.OrderPlaced",
                "o-units",
                json!({"order_id": "o-units", "customer": "c-1",
                       "lines": [line("s-2", MAX, 0), line("s-2", MAX, 0)]}),
            ),
        ),
    ];
    for (stream, envelope) in appends {
        opened
            .log
            .append(stream, 0, vec![envelope])
            .expect("appended");
    }
}

#[test]
fn orders_an_older_build_accepted_are_declined_or_rejected_not_clamped() {
    let data_dir = tempfile::tempdir().expect("temp dir");
    write_older_log(data_dir.path());
    // The older log holds the whole `orders` stream: with no count configured, the node
    // keeps the data dir's (one partition); the harness's own count would be refused.
    let node = Node::start_in(data_dir.path(), &[("HERALD_DOMAINS__PARTITIONS", "")]);

    // 2^33 x 2^33 cents has no u64 total: payments declines it, naming the line, and the
    // reserved stock goes back.
    let order = node.await_field("orders", "o-price", "status", &json!("rejected"));
    let reason = order["reason"].as_str().unwrap_or_default();
    for value in [&HUGE.to_string(), "s-1", &MAX.to_string()] {
        assert!(
            reason.contains(value),
            "the reason should name {value}: {order}"
        );
    }
    assert_eq!(order["total"], Value::Null, "no clamped total: {order}");

    // 2 x u64::MAX units of s-2 cannot be counted: inventory rejects the order.
    let order = node.await_field("orders", "o-units", "status", &json!("rejected"));
    let reason = order["reason"].as_str().unwrap_or_default();
    for value in ["s-2", &MAX.to_string()] {
        assert!(
            reason.contains(value),
            "the reason should name {value}: {order}"
        );
    }

    node.settle();
    assert_eq!(
        node.entity("inventory", "s-1"),
        Some(json!({"sku": "s-1", "available": HUGE, "reserved": 0, "shipped": 0}))
    );
    assert_eq!(
        node.entity("inventory", "s-2"),
        Some(json!({"sku": "s-2", "available": MAX, "reserved": 0, "shipped": 0}))
    );
    assert_eq!(
        node.entity("payments", "c-1"),
        Some(json!({"customer": "c-1", "credit": MAX, "captured": 0}))
    );
    let summary = node.summary();
    assert_eq!(summary["revenue"], 0, "{summary}");
    assert_eq!(summary["orders_rejected"], 2, "{summary}");
    assert_eq!(
        summary["events_by_type"]["payments.PaymentCaptured"],
        Value::Null,
        "nothing was captured: {summary}"
    );
}
