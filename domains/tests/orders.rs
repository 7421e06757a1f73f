//! Orders alone: status transitions (forward only) and the ingress rejections.

mod common;

use common::{cancelled, captured, declined, delivered, dispatched, placed, reserved, scheduled};
use herald_domains::events::inventory::{InventoryEvent, StockRejected};
use herald_domains::events::payments::PaymentsEvent;
use herald_domains::events::shipping::ShippingEvent;
use herald_domains::orders::Orders;
use herald_runtime::testing::Scenario;
use serde_json::{json, Value};

/// Something that happens to order o-1.
#[derive(Debug, Clone, Copy)]
enum Step {
    Reserved,
    OutOfStock,
    Captured,
    Declined,
    Scheduled,
    Dispatched,
    Delivered,
    /// The client's cancel (ingress), which must be accepted.
    Cancel,
}

/// Orders holding o-1: customer c-1, total 2 x 250 + 1 x 500 = 1000.
fn with_order() -> Scenario<Orders> {
    Scenario::new().given([placed("o-1", "c-1", &[("s-1", 2, 250), ("s-2", 1, 500)])])
}

fn run(scenario: &mut Scenario<Orders>, step: Step) {
    let emitted = match step {
        Step::Reserved => {
            scenario.when_input::<InventoryEvent>(reserved("o-1", &[("s-1", 2), ("s-2", 1)]))
        }
        Step::OutOfStock => scenario.when_input::<InventoryEvent>(StockRejected {
            order_id: "o-1".to_owned(),
            reason: "out of stock".to_owned(),
        }),
        Step::Captured => scenario.when_input::<PaymentsEvent>(captured("o-1", "c-1", 1000)),
        Step::Declined => scenario.when_input::<PaymentsEvent>(declined("o-1", "c-1", 1000)),
        Step::Scheduled => scenario.when_input::<ShippingEvent>(scheduled("o-1")),
        Step::Dispatched => scenario.when_input::<ShippingEvent>(dispatched("o-1")),
        Step::Delivered => scenario.when_input::<ShippingEvent>(delivered("o-1")),
        Step::Cancel => {
            scenario
                .when_ingress(cancelled("o-1"))
                .expect("cancel accepted");
            Ok(vec![])
        }
    };
    assert_eq!(
        emitted.expect("handled"),
        vec![],
        "orders emits nothing on {step:?}"
    );
}

/// Runs `steps` on o-1; checks its status and reason.
fn check(steps: &[Step], status: &str, reason: Option<&str>) {
    let mut scenario = with_order();
    for &step in steps {
        run(&mut scenario, step);
    }
    let entity = scenario.entity("o-1").expect("o-1 exists");
    assert_eq!(entity["status"], status, "after {steps:?}");
    assert_eq!(
        entity.get("reason").and_then(Value::as_str),
        reason,
        "after {steps:?}"
    );
}

#[test]
fn follows_the_saga_forward() {
    use Step::*;
    check(&[], "placed", None);
    check(&[Reserved], "reserved", None);
    check(&[Reserved, Captured], "paid", None);
    check(&[Reserved, Captured, Scheduled], "awaiting_shipment", None);
    check(
        &[Reserved, Captured, Scheduled, Dispatched],
        "shipped",
        None,
    );
    check(
        &[Reserved, Captured, Scheduled, Dispatched, Delivered],
        "delivered",
        None,
    );
    check(&[OutOfStock], "rejected", Some("out of stock"));
    check(
        &[Reserved, Declined],
        "rejected",
        Some("insufficient credit"),
    );
    check(&[Cancel], "cancelled", Some("changed my mind"));
    check(
        &[Reserved, Captured, Scheduled, Cancel],
        "cancelled",
        Some("changed my mind"),
    );
}

#[test]
fn never_moves_back() {
    use Step::*;
    // Streams interleave freely: a late event from an earlier step changes nothing.
    check(&[Captured, Reserved], "paid", None);
    check(&[Scheduled, Captured, Reserved], "awaiting_shipment", None);
    check(
        &[Cancel, Reserved, Captured, Scheduled],
        "cancelled",
        Some("changed my mind"),
    );
    check(&[OutOfStock, Reserved], "rejected", Some("out of stock"));
    check(
        &[Reserved, Declined, Captured],
        "rejected",
        Some("insufficient credit"),
    );
    check(
        &[Dispatched, Delivered, Scheduled, Reserved],
        "delivered",
        None,
    );
    // The cancellation window: orders learns of a dispatch after it accepted the cancel.
    check(
        &[Reserved, Captured, Scheduled, Cancel, Dispatched],
        "cancelled",
        Some("changed my mind"),
    );
}

#[test]
fn shows_the_order_with_its_total() {
    let scenario = with_order();
    assert_eq!(
        scenario.entity("o-1"),
        Some(json!({"order_id": "o-1", "customer": "c-1", "status": "placed", "total": 1000}))
    );
    assert_eq!(scenario.entity("o-2"), None);
}

#[test]
fn ignores_events_about_unknown_orders() {
    let mut scenario = with_order();
    scenario
        .when_input::<PaymentsEvent>(captured("o-9", "c-1", 1))
        .expect("handled");
    assert_eq!(scenario.entity("o-9"), None);
}

#[test]
fn refuses_a_second_order_with_the_same_id() {
    let mut scenario = with_order();
    let again = scenario.when_ingress(placed("o-1", "c-2", &[("s-1", 1, 1)]));
    assert_eq!(
        again.expect_err("refused").reason,
        r#"order "o-1" already exists"#
    );
    scenario
        .when_ingress(placed("o-2", "c-1", &[("s-1", 1, 1)]))
        .expect("a new id is accepted");
}

#[test]
fn refuses_cancels_it_cannot_honour() {
    use Step::*;
    let cases: [(&[Step], &str); 5] = [
        (
            &[Reserved, Captured, Scheduled, Dispatched],
            "has shipped and can no longer be cancelled",
        ),
        (
            &[Reserved, Captured, Scheduled, Dispatched, Delivered],
            "was delivered and can no longer be cancelled",
        ),
        (&[Cancel], "is already cancelled"),
        (&[OutOfStock], "was rejected and cannot be cancelled"),
        (
            &[Reserved, Declined],
            "was rejected and cannot be cancelled",
        ),
    ];
    for (steps, why) in cases {
        let mut scenario = with_order();
        for &step in steps {
            run(&mut scenario, step);
        }
        let refused = scenario
            .when_ingress(cancelled("o-1"))
            .expect_err("refused");
        assert_eq!(
            refused.reason,
            format!(r#"order "o-1" {why}"#),
            "after {steps:?}"
        );
    }
    let refused = with_order()
        .when_ingress(cancelled("o-9"))
        .expect_err("refused");
    assert_eq!(refused.reason, r#"order "o-9" does not exist"#);
}

const MAX: u64 = u64::MAX;
/// 2^33: 2^33 units at 2^33 cents cost 2^66 cents.
const HUGE: u64 = 1 << 33;

/// Proposes order o-9 with `lines`; checks it is placed with `expected` total, or refused
/// with `expected` reason and not recorded.
fn check_placing(lines: &[(&str, u64, u64)], expected: Result<u64, &str>) {
    let mut scenario = Scenario::<Orders>::new();
    let answer = scenario.when_ingress(placed("o-9", "c-1", lines));
    match expected {
        Ok(total) => {
            assert_eq!(answer, Ok(()), "{lines:?}");
            assert_eq!(
                scenario.entity("o-9").map(|order| order["total"].clone()),
                Some(json!(total)),
                "{lines:?}"
            );
        }
        Err(reason) => {
            assert_eq!(
                answer.err().map(|rejection| rejection.reason),
                Some(format!(r#"order "o-9" cannot be placed: {reason}"#)),
                "{lines:?}"
            );
            assert_eq!(scenario.entity("o-9"), None, "{lines:?}");
        }
    }
}

#[test]
fn refuses_an_order_whose_figures_pass_u64() {
    check_placing(&[("s-1", 1, MAX)], Ok(MAX));
    check_placing(&[("s-1", MAX, 0), ("s-2", MAX, 0)], Ok(0));
    check_placing(&[("s-1", (1 << 32) - 1, (1 << 32) + 1)], Ok(MAX));
    check_placing(&[("s-1", MAX - 1, 1), ("s-2", 1, 1)], Ok(MAX));
    // Its total was clamped to u64::MAX and captured.
    check_placing(
        &[("s-1", HUGE, HUGE)],
        Err(
            r#"the total passes 18446744073709551615 cents at line 1 (8589934592 units of sku "s-1" at 8589934592 cents)"#,
        ),
    );
    check_placing(
        &[("s-1", 1, MAX), ("s-2", 1, 1)],
        Err(
            r#"the total passes 18446744073709551615 cents at line 2 (1 units of sku "s-2" at 1 cents)"#,
        ),
    );
    // Its units were reserved as u64::MAX.
    check_placing(
        &[("s-1", MAX, 0), ("s-2", 1, 0), ("s-1", 1, 0)],
        Err(r#"the lines ask for more than 18446744073709551615 units of sku "s-1""#),
    );
}

#[test]
fn an_order_with_no_u64_total_from_an_older_log_shows_none() {
    // A build without the check recorded it; its total is unknown, not u64::MAX.
    let mut scenario =
        Scenario::<Orders>::new().given([placed("o-9", "c-1", &[("s-1", HUGE, HUGE)])]);
    assert_eq!(
        scenario.entity("o-9"),
        Some(json!({"order_id": "o-9", "customer": "c-1", "status": "placed", "total": null}))
    );
    scenario
        .when_input::<PaymentsEvent>(declined("o-9", "c-1", 0))
        .expect("handled");
    assert_eq!(
        scenario.entity("o-9").map(|o| o["status"].clone()),
        Some(json!("rejected"))
    );
}

#[test]
fn a_reservation_schedules_the_payment_deadline_and_a_payment_cancels_it() {
    use herald_domains::events::orders::OrderCancelled;
    use herald_runtime::prelude::OffsetDateTime;
    // Scenario inputs are recorded at 2026-01-01T00:00:00Z: the handler's `out.now()`.
    let recorded = OffsetDateTime::from_unix_timestamp(1_767_225_600).expect("a time");
    let deadline = recorded + std::time::Duration::from_secs(90);
    with_order()
        .with_setting("payment_timeout", "90s")
        .when_consumed::<InventoryEvent>(reserved("o-1", &[("s-1", 2), ("s-2", 1)]))
        .then_schedules(
            "payment:o-1",
            deadline,
            OrderCancelled {
                order_id: "o-1".to_owned(),
                reason: "no payment within 90s of the stock being reserved".to_owned(),
            },
        )
        .then_emits_nothing()
        .when_consumed::<PaymentsEvent>(captured("o-1", "c-1", 1000))
        .then_cancels("payment:o-1")
        .then_emits_nothing();
}
