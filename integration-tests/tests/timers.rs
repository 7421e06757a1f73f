//! Durable timers on a real node: the payment deadline of the example saga. An order whose
//! payment never comes (payments is not hosted) is cancelled once its deadline passes, its
//! stock released, exactly once across a SIGKILL between scheduling and firing and across
//! later restarts; a paid order's timer is cancelled; a timer whose event became moot is
//! dropped, logged.

use std::time::Duration;

use herald_integration_tests::*;
use serde_json::{json, Value};

/// Every domain of the saga but payments: no order is ever paid.
const WITHOUT_PAYMENTS: (&str, &str) = (
    "HERALD_DOMAINS__ENABLED",
    "orders,inventory,shipping,analytics",
);
const TIMEOUT: (&str, &str) = ("HERALD_DOMAIN__ORDERS__PAYMENT_TIMEOUT", "3s");

/// Every record of `order` in orders' streams, of type `event_type`.
fn records(node: &Node, order: &str, event_type: &str) -> Vec<Value> {
    node.read_stream(&node.key_stream("orders", order))
        .into_iter()
        .filter(|event| event["subject"] == order && event["type"] == event_type)
        .collect()
}

#[test]
fn an_unpaid_order_is_cancelled_at_its_deadline_once_across_a_sigkill_and_restarts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let env = [WITHOUT_PAYMENTS, TIMEOUT];
    let mut node = Node::start_in(dir.path(), &env);
    node.accept(&stock_added("sku-t", 5));
    node.accept(&order_placed("o-late", "carol", &[("sku-t", 2, 100)]));
    node.await_field("orders", "o-late", "status", &json!("reserved"));
    let scheduled = records(&node, "o-late", "herald.timer.scheduled");
    assert_eq!(scheduled.len(), 1, "one schedule record: {scheduled:?}");
    assert_eq!(scheduled[0]["data"]["name"], "payment:o-late");
    assert_eq!(scheduled[0]["data"]["type"], "orders.OrderCancelled");
    // Killed before the deadline: only the log knows of the timer.
    node.kill();

    let mut node = Node::start_in(dir.path(), &env);
    let order = node.await_field("orders", "o-late", "status", &json!("cancelled"));
    assert!(
        order["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("no payment within 3s"),
        "{order}"
    );
    node.await_field("inventory", "sku-t", "available", &json!(5));
    assert_eq!(node.entity("inventory", "sku-t").unwrap()["reserved"], 0);
    let cancelled = records(&node, "o-late", "orders.OrderCancelled");
    assert_eq!(cancelled.len(), 1, "{cancelled:?}");
    assert_eq!(cancelled[0]["heraldtimer"], "payment:o-late");
    assert_eq!(cancelled[0]["causesequence"], scheduled[0]["sequence"]);
    // Its time is when it fired, at or after the deadline.
    let fired = time_of(&cancelled[0]);
    let deadline = time_of_str(scheduled[0]["data"]["at"].as_str().unwrap());
    assert!(
        fired >= deadline,
        "fired at {fired} before its deadline {deadline}"
    );

    // Restarted twice more, from snapshots and from the log: it never fires again.
    node.stop();
    let mut node = Node::start_in(dir.path(), &env);
    std::thread::sleep(Duration::from_secs(4));
    node.kill();
    let node = Node::start_in(dir.path(), &env);
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(records(&node, "o-late", "orders.OrderCancelled").len(), 1);
    assert_eq!(node.entity("inventory", "sku-t").unwrap()["available"], 5);
    eventually("analytics counts one cancellation", || {
        node.summary()["orders_cancelled"] == 1
    });
    // A second fire would be refused as a duplicate id, leaving the count at 1: the host
    // must not have tried.
    assert!(
        !node
            .logs()
            .contains("cannot append the events of due timers"),
        "the fired timer was due again after the restarts:\n{}",
        node.logs_tail(40)
    );
}

#[test]
fn a_paid_order_cancels_its_timer_and_a_moot_timer_is_dropped_with_its_reason() {
    // The whole saga: payment comes within the deadline, the timer is cancelled.
    let node = Node::start_with(&[TIMEOUT]);
    node.accept(&stock_added("sku-p", 5));
    node.accept(&credit_granted("dave", 10_000));
    node.accept(&order_placed("o-paid", "dave", &[("sku-p", 1, 100)]));
    node.await_field("orders", "o-paid", "status", &json!("awaiting_shipment"));
    eventually("the timer cancelled", || {
        records(&node, "o-paid", "herald.timer.cancelled").len() == 1
    });
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        node.entity("orders", "o-paid").unwrap()["status"],
        "awaiting_shipment"
    );
    assert!(records(&node, "o-paid", "orders.OrderCancelled").is_empty());

    // Cancelled by its client before the deadline: the timer's OrderCancelled is refused
    // by orders' own rule when it comes due, and the timer is dropped with that reason.
    let node = Node::start_with(&[WITHOUT_PAYMENTS, TIMEOUT]);
    node.accept(&stock_added("sku-c", 5));
    node.accept(&order_placed("o-mine", "erin", &[("sku-c", 1, 100)]));
    node.await_field("orders", "o-mine", "status", &json!("reserved"));
    node.accept(&order_event("orders.OrderCancelled", "o-mine"));
    eventually("the timer dropped when due", || {
        records(&node, "o-mine", "herald.timer.cancelled").len() == 1
    });
    let dropped = &records(&node, "o-mine", "herald.timer.cancelled")[0];
    assert_eq!(dropped["data"]["name"], "payment:o-mine");
    assert!(
        dropped["data"]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("already cancelled"),
        "{dropped}"
    );
    assert_eq!(records(&node, "o-mine", "orders.OrderCancelled").len(), 1);
    node.await_field("inventory", "sku-c", "available", &json!(5));
}

#[test]
fn a_bad_or_unknown_domain_setting_is_refused_naming_it() {
    for (env, expected) in [
        (
            ("HERALD_DOMAIN__ORDERS__PAYMENT_TIMEOUT", "soon"),
            "domain.orders.payment_timeout: \"soon\" is not a duration",
        ),
        (
            ("HERALD_DOMAIN__ORDERS__PAYMENT_TIMOUT", "5m"),
            "domain.orders.payment_timout: not a setting (orders takes payment_timeout); did you mean \"payment_timeout\"?",
        ),
        (
            ("HERALD_DOMAIN__PAYMENTS__PAYMENT_TIMEOUT", "5m"),
            "domain.payments.payment_timeout: not a setting (payments takes no settings of its own)",
        ),
    ] {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = sample_config();
        let mut command = std::process::Command::new(herald_binary());
        command
            .args(["check-config", "--config", config.to_str().expect("utf-8")])
            .env("HERALD_NODE__DATA_DIR", dir.path().join("data"))
            .env(env.0, env.1);
        let finished = run_command(command, Duration::from_secs(60));
        assert_eq!(finished.status, Some(2), "{env:?}: {}", finished.output());
        assert!(finished.stderr.contains(expected), "{env:?}: {}", finished.output());
    }
}

fn time_of(event: &Value) -> time::OffsetDateTime {
    time_of_str(event["time"].as_str().expect("a time"))
}

fn time_of_str(text: &str) -> time::OffsetDateTime {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .expect("RFC 3339")
}

#[test]
fn a_pending_timer_and_the_inputs_handled_come_back_from_a_snapshot() {
    let dir = tempfile::tempdir().expect("temp dir");
    let env = [
        WITHOUT_PAYMENTS,
        ("HERALD_DOMAIN__ORDERS__PAYMENT_TIMEOUT", "5s"),
    ];
    let mut node = Node::start_in(dir.path(), &env);
    node.accept(&stock_added("sku-s", 5));
    let placed = node.publish(&order_placed("o-snap", "ivan", &[("sku-s", 1, 100)]));
    assert_eq!(placed.status, 202, "{}", placed.json);
    let position = format!(
        "{}:{}",
        placed.json["stream"].as_str().expect("stream"),
        placed.json["sequence"]
    );
    node.await_field("orders", "o-snap", "status", &json!("reserved"));
    // A clean stop snapshots every domain: the schedule and the input it followed are now
    // behind the snapshot, so only the snapshot can say the timer is pending and that
    // inventory handled the order.
    node.stop();
    assert!(
        std::fs::read_dir(dir.path().join("snapshots")).is_ok_and(|mut d| d.next().is_some()),
        "snapshots written at shutdown"
    );
    let node = Node::start_in(dir.path(), &env);
    let stock = node.get(&format!(
        "/v1/domains/inventory/entities/sku-s?reflects={position}"
    ));
    assert_eq!(stock.status, 200, "{}", stock.json);
    assert_eq!(stock.json["reserved"], 1, "{}", stock.json);
    node.await_field("orders", "o-snap", "status", &json!("cancelled"));
    node.await_field("inventory", "sku-s", "available", &json!(5));
    assert_eq!(records(&node, "o-snap", "orders.OrderCancelled").len(), 1);
}
