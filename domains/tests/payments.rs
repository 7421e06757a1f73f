//! Payments alone: capture, decline, refund, and the races with a cancellation.

mod common;

use common::{cancelled, captured, credit, placed, reserved};
use herald_domains::inventory::InventoryEvent;
use herald_domains::orders::OrdersEvent;
use herald_domains::payments::{PaymentDeclined, PaymentRefunded, Payments, PaymentsEvent};
use herald_runtime::testing::Scenario;
use serde_json::json;

/// One fact payments consumes about order o-1 (customer c-1, total 1000).
#[derive(Debug, Clone, Copy)]
enum Fact {
    Placed,
    Reserved,
    Cancelled,
}

/// Feeds one fact; returns what payments emitted.
fn feed(scenario: &mut Scenario<Payments>, fact: Fact) -> Vec<PaymentsEvent> {
    let emitted = match fact {
        // Two lines: 2 x 300 + 1 x 400 = 1000.
        Fact::Placed => scenario.when_input::<OrdersEvent>(placed(
            "o-1",
            "c-1",
            &[("s-1", 2, 300), ("s-2", 1, 400)],
        )),
        Fact::Reserved => {
            scenario.when_input::<InventoryEvent>(reserved("o-1", &[("s-1", 2), ("s-2", 1)]))
        }
        Fact::Cancelled => scenario.when_input::<OrdersEvent>(cancelled("o-1")),
    };
    emitted.expect("handled")
}

fn declined(credit: u64) -> PaymentsEvent {
    PaymentDeclined {
        order_id: "o-1".to_owned(),
        customer: "c-1".to_owned(),
        amount: 1000,
        reason: format!(
            r#"insufficient credit: customer "c-1" has {credit} available, 1000 required"#
        ),
    }
    .into()
}

fn refunded() -> PaymentsEvent {
    PaymentRefunded {
        order_id: "o-1".to_owned(),
        customer: "c-1".to_owned(),
        amount: 1000,
    }
    .into()
}

/// Grants c-1 `granted`, feeds `facts` in order; checks everything emitted and c-1's account
/// as `(credit, captured)`.
fn check(granted: u64, facts: &[Fact], expected: Vec<PaymentsEvent>, account: (u64, u64)) {
    let mut scenario = Scenario::<Payments>::new().given([credit("c-1", granted)]);
    let emitted: Vec<PaymentsEvent> = facts.iter().flat_map(|&f| feed(&mut scenario, f)).collect();
    assert_eq!(emitted, expected, "credit {granted}, facts {facts:?}");
    let (credit, captured) = account;
    assert_eq!(
        scenario.entity("c-1"),
        Some(json!({"customer": "c-1", "credit": credit, "captured": captured})),
        "credit {granted}, facts {facts:?}"
    );
}

#[test]
fn captures_when_credit_covers_the_total() {
    let capture = || captured("o-1", "c-1", 1000).into();
    check(
        1000,
        &[Fact::Placed, Fact::Reserved],
        vec![capture()],
        (0, 1000),
    );
    check(
        1500,
        &[Fact::Placed, Fact::Reserved],
        vec![capture()],
        (500, 1000),
    );
    // The reservation may arrive before the order itself: it comes from another stream.
    check(
        1000,
        &[Fact::Reserved, Fact::Placed],
        vec![capture()],
        (0, 1000),
    );
}

#[test]
fn declines_when_credit_falls_short() {
    check(
        999,
        &[Fact::Placed, Fact::Reserved],
        vec![declined(999)],
        (999, 0),
    );
    check(
        1,
        &[Fact::Reserved, Fact::Placed],
        vec![declined(1)],
        (1, 0),
    );
}

#[test]
fn waits_for_both_the_order_and_its_reservation() {
    check(1000, &[Fact::Placed], vec![], (1000, 0));
    check(1000, &[Fact::Reserved], vec![], (1000, 0));
}

#[test]
fn never_captures_for_an_order_it_knows_is_cancelled() {
    for facts in [
        [Fact::Placed, Fact::Cancelled, Fact::Reserved],
        [Fact::Cancelled, Fact::Placed, Fact::Reserved],
        [Fact::Reserved, Fact::Cancelled, Fact::Placed],
    ] {
        check(1000, &facts, vec![], (1000, 0));
    }
}

#[test]
fn refunds_a_capture_when_the_cancel_comes_after() {
    check(
        1200,
        &[Fact::Placed, Fact::Reserved, Fact::Cancelled],
        vec![captured("o-1", "c-1", 1000).into(), refunded()],
        (1200, 0),
    );
    // A redelivered cancel refunds nothing twice.
    check(
        1200,
        &[
            Fact::Placed,
            Fact::Reserved,
            Fact::Cancelled,
            Fact::Cancelled,
        ],
        vec![captured("o-1", "c-1", 1000).into(), refunded()],
        (1200, 0),
    );
}

#[test]
fn a_declined_order_has_nothing_to_refund() {
    check(
        10,
        &[Fact::Placed, Fact::Reserved, Fact::Cancelled],
        vec![declined(10)],
        (10, 0),
    );
}

#[test]
fn a_redelivered_reservation_captures_once() {
    check(
        5000,
        &[Fact::Placed, Fact::Reserved, Fact::Reserved, Fact::Placed],
        vec![captured("o-1", "c-1", 1000).into()],
        (4000, 1000),
    );
}

#[test]
fn credit_adds_up_and_spends_across_orders() {
    let mut scenario = Scenario::<Payments>::new();
    scenario.when_ingress(credit("c-1", 300)).expect("accepted");
    scenario.when_ingress(credit("c-1", 200)).expect("accepted");
    for (order_id, price) in [("o-1", 400), ("o-2", 400)] {
        scenario
            .when_input::<OrdersEvent>(placed(order_id, "c-1", &[("s-1", 1, price)]))
            .expect("handled");
    }
    let first = scenario
        .when_input::<InventoryEvent>(reserved("o-1", &[("s-1", 1)]))
        .expect("handled");
    let second = scenario
        .when_input::<InventoryEvent>(reserved("o-2", &[("s-1", 1)]))
        .expect("handled");
    assert_eq!(first, vec![captured("o-1", "c-1", 400).into()]);
    assert!(
        matches!(&second[..], [PaymentsEvent::PaymentDeclined(d)] if d.amount == 400),
        "{second:?}"
    );
    assert_eq!(
        scenario.entity("c-1"),
        Some(json!({"customer": "c-1", "credit": 100, "captured": 400}))
    );
    assert_eq!(scenario.entity("c-2"), None);
}

#[test]
fn a_free_order_is_captured_without_credit() {
    let mut scenario = Scenario::<Payments>::new();
    scenario
        .when_input::<OrdersEvent>(placed("o-1", "c-9", &[("s-1", 3, 0)]))
        .expect("handled");
    let emitted = scenario
        .when_input::<InventoryEvent>(reserved("o-1", &[("s-1", 3)]))
        .expect("handled");
    assert_eq!(emitted, vec![captured("o-1", "c-9", 0).into()]);
}
