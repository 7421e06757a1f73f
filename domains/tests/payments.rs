//! Payments alone: capture, decline, refund, and the races with a cancellation.

mod common;

use common::{cancelled, captured, credit, placed, reserved};
use herald_domains::events::inventory::InventoryEvent;
use herald_domains::events::orders::OrdersEvent;
use herald_domains::events::payments::{PaymentDeclined, PaymentRefunded, PaymentsEvent};
use herald_domains::payments::Payments;
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
        amount: Some(1000),
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
        matches!(&second[..], [PaymentsEvent::PaymentDeclined(d)] if d.amount == Some(400)),
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

/// c-1's account as `(credit, captured)`, from its own past events: `credit + captured` granted,
/// then `captured` taken by order o-0.
fn account(credit: u64, captured: u64) -> Scenario<Payments> {
    Scenario::<Payments>::new().given([
        PaymentsEvent::from(common::credit("c-1", credit + captured)),
        common::captured("o-0", "c-1", captured).into(),
    ])
}

/// Grants c-1 `amount` on an account of `(credit, captured)`; checks the answer: the account
/// after, or the refusal's reason (and the account unchanged).
fn check_grant(before: (u64, u64), amount: u64, expected: Result<(u64, u64), &str>) {
    let mut scenario = account(before.0, before.1);
    let answer = scenario.when_ingress(credit("c-1", amount));
    let (after, reason) = match expected {
        Ok(after) => (after, None),
        Err(reason) => (before, Some(reason)),
    };
    assert_eq!(
        answer.err().map(|rejection| rejection.reason),
        reason.map(str::to_owned),
        "grant {amount} on {before:?}"
    );
    assert_eq!(
        scenario.entity("c-1"),
        Some(json!({"customer": "c-1", "credit": after.0, "captured": after.1})),
        "grant {amount} on {before:?}"
    );
}

#[test]
fn credit_is_granted_only_while_the_account_counts_it_exactly() {
    const MAX: u64 = u64::MAX;
    check_grant((0, 0), MAX, Ok((MAX, 0)));
    check_grant((MAX - 1, 0), 1, Ok((MAX, 0)));
    check_grant((6, 4), MAX - 10, Ok((MAX - 4, 4)));
    // A second grant of u64::MAX was accepted and lost.
    check_grant(
        (MAX, 0),
        MAX,
        Err(
            r#"customer "c-1" cannot be granted 18446744073709551615 more cents: the account has 18446744073709551615 credit and 0 captured (which a refund may return), and an account counts at most 18446744073709551615 cents"#,
        ),
    );
    // What was captured may come back as a refund, so it counts.
    check_grant(
        (0, MAX),
        1,
        Err(
            r#"customer "c-1" cannot be granted 1 more cents: the account has 0 credit and 18446744073709551615 captured (which a refund may return), and an account counts at most 18446744073709551615 cents"#,
        ),
    );
    check_grant(
        (6, 4),
        MAX - 9,
        Err(
            r#"customer "c-1" cannot be granted 18446744073709551606 more cents: the account has 6 credit and 4 captured (which a refund may return), and an account counts at most 18446744073709551615 cents"#,
        ),
    );
}

#[test]
fn a_refund_at_the_top_of_u64_comes_back_whole() {
    let max = u64::MAX;
    let mut scenario = Scenario::<Payments>::new().given([credit("c-1", max)]);
    let mut emitted = scenario
        .when_input::<OrdersEvent>(placed("o-1", "c-1", &[("s-1", 1, max)]))
        .expect("handled");
    emitted.extend(
        scenario
            .when_input::<InventoryEvent>(reserved("o-1", &[("s-1", 1)]))
            .expect("handled"),
    );
    emitted.extend(
        scenario
            .when_input::<OrdersEvent>(cancelled("o-1"))
            .expect("handled"),
    );
    let refund = PaymentRefunded {
        order_id: "o-1".to_owned(),
        customer: "c-1".to_owned(),
        amount: max,
    };
    assert_eq!(
        emitted,
        vec![captured("o-1", "c-1", max).into(), refund.into()]
    );
    assert_eq!(
        scenario.entity("c-1"),
        Some(json!({"customer": "c-1", "credit": max, "captured": 0}))
    );
}

/// Feeds order o-9 of 2^33 units at 2^33 cents (2^66 cents: no u64 total; only a log from
/// before orders refused it holds one) and `facts` about it, after granting c-1 u64::MAX;
/// checks what payments emits and that the account is untouched.
fn check_unpriceable(facts: &[Fact], expected: Vec<PaymentsEvent>) {
    let huge = 1 << 33;
    let mut scenario = Scenario::<Payments>::new().given([credit("c-1", u64::MAX)]);
    let mut emitted = Vec::new();
    for fact in facts {
        let more = match fact {
            Fact::Placed => {
                scenario.when_input::<OrdersEvent>(placed("o-9", "c-1", &[("s-1", huge, huge)]))
            }
            Fact::Reserved => {
                scenario.when_input::<InventoryEvent>(reserved("o-9", &[("s-1", huge)]))
            }
            Fact::Cancelled => scenario.when_input::<OrdersEvent>(cancelled("o-9")),
        };
        emitted.extend(more.expect("handled"));
    }
    assert_eq!(emitted, expected, "facts {facts:?}");
    assert_eq!(
        scenario.entity("c-1"),
        Some(json!({"customer": "c-1", "credit": u64::MAX, "captured": 0})),
        "facts {facts:?}"
    );
}

#[test]
fn an_order_with_no_u64_total_is_declined_not_clamped() {
    let decline: PaymentsEvent = PaymentDeclined {
        order_id: "o-9".to_owned(),
        customer: "c-1".to_owned(),
        amount: None,
        reason: r#"cannot charge: the total passes 18446744073709551615 cents at line 1 (8589934592 units of sku "s-1" at 8589934592 cents)"#.to_owned(),
    }
    .into();
    check_unpriceable(&[Fact::Placed, Fact::Reserved], vec![decline.clone()]);
    check_unpriceable(&[Fact::Reserved, Fact::Placed], vec![decline.clone()]);
    check_unpriceable(
        &[Fact::Placed, Fact::Reserved, Fact::Placed, Fact::Reserved],
        vec![decline],
    );
    check_unpriceable(&[Fact::Placed], vec![]);
    check_unpriceable(&[Fact::Placed, Fact::Cancelled, Fact::Reserved], vec![]);
}

#[test]
fn a_declined_order_without_an_amount_reads_back() {
    // A decline of an order with no u64 total carries no amount; one from before carries it.
    let decline = PaymentDeclined {
        order_id: "o-9".to_owned(),
        customer: "c-1".to_owned(),
        amount: None,
        reason: "cannot charge".to_owned(),
    };
    let data = serde_json::to_value(&decline).expect("encodes");
    assert_eq!(
        data,
        json!({"order_id": "o-9", "customer": "c-1", "reason": "cannot charge"})
    );
    let earlier: PaymentDeclined = serde_json::from_value(
        json!({"order_id": "o-1", "customer": "c-1", "amount": 1000, "reason": "insufficient credit"}),
    )
    .expect("decodes");
    assert_eq!(earlier.amount, Some(1000));
}
