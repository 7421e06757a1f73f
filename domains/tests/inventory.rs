//! Inventory alone: all-or-nothing reservation, release, shipping.

mod common;

use common::{cancelled, declined, dispatched, placed, reserved, stock_added, stock_lines};
use herald_domains::events::inventory::{
    InventoryEvent, StockRejected, StockReleased, StockShipped,
};
use herald_domains::events::orders::OrdersEvent;
use herald_domains::events::payments::PaymentsEvent;
use herald_domains::events::shipping::ShippingEvent;
use herald_domains::inventory::Inventory;
use herald_runtime::testing::Scenario;
use serde_json::json;

/// Inventory holding `stock` of `(sku, quantity)`.
fn stocked(stock: &[(&str, u64)]) -> Scenario<Inventory> {
    Scenario::new().given(
        stock
            .iter()
            .map(|&(sku, quantity)| stock_added(sku, quantity)),
    )
}

/// The `(available, reserved, shipped)` of a sku.
fn levels(scenario: &Scenario<Inventory>, sku: &str) -> (u64, u64, u64) {
    let entity = scenario.entity(sku).expect("sku is known");
    let field = |name: &str| entity[name].as_u64().expect("a count");
    (field("available"), field("reserved"), field("shipped"))
}

/// Places o-1 with `lines` against `stock`; checks the emitted event and each sku's levels.
fn check_reservation(
    stock: &[(&str, u64)],
    lines: &[(&str, u64, u64)],
    expected: InventoryEvent,
    expected_levels: &[(&str, (u64, u64, u64))],
) {
    let mut scenario = stocked(stock);
    let emitted = scenario
        .when_input::<OrdersEvent>(placed("o-1", "c-1", lines))
        .expect("handled");
    assert_eq!(emitted, vec![expected], "stock {stock:?}, lines {lines:?}");
    for &(sku, want) in expected_levels {
        assert_eq!(levels(&scenario, sku), want, "levels of {sku}");
    }
}

fn rejection(reason: &str) -> InventoryEvent {
    StockRejected {
        order_id: "o-1".to_owned(),
        reason: reason.to_owned(),
    }
    .into()
}

#[test]
fn reserves_every_line_or_none() {
    check_reservation(
        &[("s-1", 5), ("s-2", 3)],
        &[("s-1", 5, 100), ("s-2", 1, 250)],
        reserved("o-1", &[("s-1", 5), ("s-2", 1)]).into(),
        &[("s-1", (0, 5, 0)), ("s-2", (2, 1, 0))],
    );
    check_reservation(
        &[("s-1", 5), ("s-2", 3)],
        &[("s-1", 1, 100), ("s-2", 4, 250)],
        rejection(r#"out of stock: sku "s-2" has 3 available, 4 requested"#),
        &[("s-1", (5, 0, 0)), ("s-2", (3, 0, 0))],
    );
    check_reservation(
        &[("s-1", 5)],
        &[("s-1", 1, 100), ("s-9", 1, 100)],
        rejection(r#"out of stock: sku "s-9" has 0 available, 1 requested"#),
        &[("s-1", (5, 0, 0))],
    );
    // Two lines of one sku are reserved as one.
    check_reservation(
        &[("s-1", 3)],
        &[("s-1", 2, 100), ("s-1", 2, 100)],
        rejection(r#"out of stock: sku "s-1" has 3 available, 4 requested"#),
        &[("s-1", (3, 0, 0))],
    );
    check_reservation(
        &[("s-1", 4)],
        &[("s-1", 2, 100), ("s-1", 2, 100)],
        reserved("o-1", &[("s-1", 4)]).into(),
        &[("s-1", (0, 4, 0))],
    );
}

#[test]
fn a_redelivered_order_reserves_nothing_more() {
    let mut scenario = stocked(&[("s-1", 10)]);
    let order = placed("o-1", "c-1", &[("s-1", 2, 100)]);
    scenario
        .when_input::<OrdersEvent>(order.clone())
        .expect("handled");
    let again = scenario.when_input::<OrdersEvent>(order).expect("handled");
    assert_eq!(again, vec![]);
    assert_eq!(levels(&scenario, "s-1"), (8, 2, 0));
}

fn released(lines: &[(&str, u64)]) -> InventoryEvent {
    StockReleased {
        order_id: "o-1".to_owned(),
        lines: stock_lines(lines),
    }
    .into()
}

#[test]
fn a_declined_payment_releases_what_was_reserved() {
    let mut scenario = stocked(&[("s-1", 10)]);
    scenario
        .when_input::<OrdersEvent>(placed("o-1", "c-1", &[("s-1", 4, 100)]))
        .expect("handled");
    let emitted = scenario
        .when_input::<PaymentsEvent>(declined("o-1", "c-1", 400))
        .expect("handled");
    assert_eq!(emitted, vec![released(&[("s-1", 4)])]);
    assert_eq!(levels(&scenario, "s-1"), (10, 0, 0));
    // A cancel after the decline finds nothing left to release.
    let emitted = scenario
        .when_input::<OrdersEvent>(cancelled("o-1"))
        .expect("handled");
    assert_eq!(emitted, vec![]);
    assert_eq!(levels(&scenario, "s-1"), (10, 0, 0));
}

/// Reserves 4 of s-1's 10 for o-1, runs `before`, then cancels o-1; checks what the cancel
/// emits and s-1's levels after it.
fn check_cancel(
    before: fn(&mut Scenario<Inventory>),
    expected: Vec<InventoryEvent>,
    expected_levels: (u64, u64, u64),
) {
    let mut scenario = stocked(&[("s-1", 10)]);
    scenario
        .when_input::<OrdersEvent>(placed("o-1", "c-1", &[("s-1", 4, 100)]))
        .expect("handled");
    before(&mut scenario);
    let emitted = scenario
        .when_input::<OrdersEvent>(cancelled("o-1"))
        .expect("handled");
    assert_eq!(emitted, expected);
    assert_eq!(levels(&scenario, "s-1"), expected_levels);
}

#[test]
fn a_cancel_releases_only_stock_still_reserved() {
    check_cancel(|_| {}, vec![released(&[("s-1", 4)])], (10, 0, 0));
    // Shipped stock stays shipped.
    check_cancel(
        |s| {
            s.when_input::<ShippingEvent>(dispatched("o-1"))
                .expect("handled");
        },
        vec![],
        (6, 0, 4),
    );
    // Released already, on a declined payment or an earlier cancel.
    check_cancel(
        |s| {
            s.when_input::<PaymentsEvent>(declined("o-1", "c-1", 400))
                .expect("handled");
        },
        vec![],
        (10, 0, 0),
    );
    check_cancel(
        |s| {
            s.when_input::<OrdersEvent>(cancelled("o-1"))
                .expect("handled");
        },
        vec![],
        (10, 0, 0),
    );
}

#[test]
fn a_rejected_order_has_nothing_to_release() {
    let mut scenario = stocked(&[("s-1", 1)]);
    scenario
        .when_input::<OrdersEvent>(placed("o-1", "c-1", &[("s-1", 4, 100)]))
        .expect("handled");
    let emitted = scenario
        .when_input::<OrdersEvent>(cancelled("o-1"))
        .expect("handled");
    assert_eq!(emitted, vec![]);
    assert_eq!(levels(&scenario, "s-1"), (1, 0, 0));
}

#[test]
fn an_order_seen_cancelled_first_is_never_reserved() {
    let mut scenario = stocked(&[("s-1", 10)]);
    scenario
        .when_input::<OrdersEvent>(cancelled("o-1"))
        .expect("handled");
    let emitted = scenario
        .when_input::<OrdersEvent>(placed("o-1", "c-1", &[("s-1", 4, 100)]))
        .expect("handled");
    assert_eq!(emitted, vec![]);
    assert_eq!(levels(&scenario, "s-1"), (10, 0, 0));
}

#[test]
fn dispatch_moves_the_orders_stock_from_reserved_to_shipped() {
    let mut scenario = stocked(&[("s-1", 10), ("s-2", 1)]);
    for (order_id, quantity) in [("o-1", 3), ("o-2", 2)] {
        scenario
            .when_input::<OrdersEvent>(placed(order_id, "c-1", &[("s-1", quantity, 100)]))
            .expect("handled");
    }
    let emitted = scenario
        .when_input::<ShippingEvent>(dispatched("o-1"))
        .expect("handled");
    let shipped = StockShipped {
        order_id: "o-1".to_owned(),
        lines: stock_lines(&[("s-1", 3)]),
    };
    assert_eq!(emitted, vec![shipped.into()]);
    assert_eq!(levels(&scenario, "s-1"), (5, 2, 3));
    assert_eq!(
        scenario.entity("s-1"),
        Some(json!({"sku": "s-1", "available": 5, "reserved": 2, "shipped": 3}))
    );
    // A second dispatch, or one for an order whose stock went back, ships nothing.
    scenario
        .when_input::<OrdersEvent>(cancelled("o-2"))
        .expect("handled");
    for order_id in ["o-1", "o-2"] {
        let emitted = scenario
            .when_input::<ShippingEvent>(dispatched(order_id))
            .expect("handled");
        assert_eq!(emitted, vec![], "{order_id}");
    }
    assert_eq!(levels(&scenario, "s-1"), (7, 0, 3));
    assert_eq!(scenario.entity("s-9"), None);
}

#[test]
fn stock_added_adds_up() {
    let mut scenario = Scenario::<Inventory>::new();
    scenario
        .when_ingress(stock_added("s-1", 2))
        .expect("accepted");
    scenario
        .when_ingress(stock_added("s-1", 3))
        .expect("accepted");
    assert_eq!(levels(&scenario, "s-1"), (5, 0, 0));
}

const MAX: u64 = u64::MAX;

/// Inventory holding s-1 at `(available, reserved, shipped)`, from its own past events.
fn at_levels(levels: (u64, u64, u64)) -> Scenario<Inventory> {
    let (available, reserved_units, shipped_units) = levels;
    Scenario::<Inventory>::new().given([
        InventoryEvent::from(stock_added("s-1", shipped_units)),
        reserved("o-1", &[("s-1", shipped_units)]).into(),
        StockShipped {
            order_id: "o-1".to_owned(),
            lines: stock_lines(&[("s-1", shipped_units)]),
        }
        .into(),
        stock_added("s-1", reserved_units).into(),
        reserved("o-2", &[("s-1", reserved_units)]).into(),
        stock_added("s-1", available).into(),
    ])
}

/// Adds `quantity` of s-1 at `before` levels; checks the levels after, or the refusal's
/// reason (and the levels unchanged).
fn check_adding(before: (u64, u64, u64), quantity: u64, expected: Result<(u64, u64, u64), &str>) {
    let mut scenario = at_levels(before);
    assert_eq!(levels(&scenario, "s-1"), before, "setting up {before:?}");
    let answer = scenario.when_ingress(stock_added("s-1", quantity));
    let (after, reason) = match expected {
        Ok(after) => (after, None),
        Err(reason) => (before, Some(reason)),
    };
    assert_eq!(
        answer.err().map(|rejection| rejection.reason),
        reason.map(str::to_owned),
        "add {quantity} at {before:?}"
    );
    assert_eq!(
        levels(&scenario, "s-1"),
        after,
        "add {quantity} at {before:?}"
    );
}

#[test]
fn stock_is_accepted_only_while_the_sku_counts_it_exactly() {
    check_adding((0, 0, 0), MAX, Ok((MAX, 0, 0)));
    check_adding((MAX - 1, 0, 0), 1, Ok((MAX, 0, 0)));
    check_adding((1, MAX - 3, 1), 1, Ok((2, MAX - 3, 1)));
    // On a full sku it was accepted and changed nothing.
    check_adding(
        (MAX, 0, 0),
        1,
        Err(
            r#"sku "s-1" cannot take 1 more units: it has 18446744073709551615 available, 0 reserved and 0 shipped, and a sku counts at most 18446744073709551615 units"#,
        ),
    );
    // Reserved units may come back on release; shipped ones are still counted.
    check_adding(
        (1, MAX - 3, 1),
        2,
        Err(
            r#"sku "s-1" cannot take 2 more units: it has 1 available, 18446744073709551612 reserved and 1 shipped, and a sku counts at most 18446744073709551615 units"#,
        ),
    );
    check_adding(
        (0, 0, MAX),
        1,
        Err(
            r#"sku "s-1" cannot take 1 more units: it has 0 available, 0 reserved and 18446744073709551615 shipped, and a sku counts at most 18446744073709551615 units"#,
        ),
    );
}

#[test]
fn an_order_whose_units_pass_u64_is_rejected_not_clamped() {
    // Only a log from before orders refused such an order holds one; it was reserved as
    // u64::MAX units.
    check_reservation(
        &[("s-1", MAX)],
        &[("s-1", MAX, 0), ("s-1", 1, 0)],
        rejection(
            r#"cannot reserve: the lines ask for more than 18446744073709551615 units of sku "s-1""#,
        ),
        &[("s-1", (MAX, 0, 0))],
    );
}
