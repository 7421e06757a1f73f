//! Shipping alone: schedule on capture, dispatch and deliver in turn, cancel while scheduled.

mod common;

use common::{cancelled, captured, delivered, dispatched, scheduled};
use herald_domains::events::orders::OrdersEvent;
use herald_domains::events::payments::PaymentsEvent;
use herald_domains::events::shipping::{ShipmentCancelled, ShippingEvent};
use herald_domains::shipping::Shipping;
use herald_runtime::testing::Scenario;
use serde_json::json;

/// Something that happens to order o-1's shipment.
#[derive(Debug, Clone, Copy)]
enum Step {
    Captured,
    Cancelled,
    Dispatch,
    Deliver,
}

/// Runs one step; returns what shipping emitted, or the rejection of an ingress step.
fn run(scenario: &mut Scenario<Shipping>, step: Step) -> Result<Vec<ShippingEvent>, String> {
    let handled = |result: Result<Vec<ShippingEvent>, _>| Ok(result.expect("handled"));
    let ingress = |result: Result<(), herald_runtime::Rejection>| {
        result
            .map(|()| vec![])
            .map_err(|rejection| rejection.reason)
    };
    match step {
        Step::Captured => {
            handled(scenario.when_input::<PaymentsEvent>(captured("o-1", "c-1", 100)))
        }
        Step::Cancelled => handled(scenario.when_input::<OrdersEvent>(cancelled("o-1"))),
        Step::Dispatch => ingress(scenario.when_ingress(dispatched("o-1"))),
        Step::Deliver => ingress(scenario.when_ingress(delivered("o-1"))),
    }
}

/// Runs `steps`, each of which must succeed, and returns everything emitted on the way.
fn after(steps: &[Step]) -> (Scenario<Shipping>, Vec<ShippingEvent>) {
    let mut scenario = Scenario::new();
    let mut emitted = Vec::new();
    for &step in steps {
        emitted.extend(run(&mut scenario, step).expect("step succeeds"));
    }
    (scenario, emitted)
}

fn status(scenario: &Scenario<Shipping>) -> Option<String> {
    let entity = scenario.entity("o-1")?;
    assert_eq!(entity["order_id"], "o-1");
    entity["status"].as_str().map(str::to_owned)
}

/// Runs `steps`; checks what was emitted and the shipment's status.
fn check(steps: &[Step], expected: Vec<ShippingEvent>, expected_status: Option<&str>) {
    let (scenario, emitted) = after(steps);
    assert_eq!(emitted, expected, "after {steps:?}");
    assert_eq!(
        status(&scenario).as_deref(),
        expected_status,
        "after {steps:?}"
    );
}

fn shipment_cancelled() -> ShippingEvent {
    ShipmentCancelled {
        order_id: "o-1".to_owned(),
    }
    .into()
}

#[test]
fn moves_a_shipment_from_scheduled_to_delivered() {
    use Step::*;
    check(&[], vec![], None);
    check(
        &[Captured],
        vec![scheduled("o-1").into()],
        Some("scheduled"),
    );
    check(
        &[Captured, Captured],
        vec![scheduled("o-1").into()],
        Some("scheduled"),
    );
    check(
        &[Captured, Dispatch],
        vec![scheduled("o-1").into()],
        Some("dispatched"),
    );
    check(
        &[Captured, Dispatch, Deliver],
        vec![scheduled("o-1").into()],
        Some("delivered"),
    );
    assert_eq!(
        after(&[Captured]).0.entity("o-1"),
        Some(json!({"order_id": "o-1", "status": "scheduled"}))
    );
}

#[test]
fn cancels_only_a_shipment_not_yet_dispatched() {
    use Step::*;
    let scheduled = || scheduled("o-1").into();
    check(
        &[Captured, Cancelled],
        vec![scheduled(), shipment_cancelled()],
        Some("cancelled"),
    );
    check(
        &[Captured, Cancelled, Cancelled],
        vec![scheduled(), shipment_cancelled()],
        Some("cancelled"),
    );
    check(
        &[Captured, Dispatch, Cancelled],
        vec![scheduled()],
        Some("dispatched"),
    );
    check(
        &[Captured, Dispatch, Deliver, Cancelled],
        vec![scheduled()],
        Some("delivered"),
    );
    // Cancelled before the capture reached shipping: nothing is ever scheduled.
    check(&[Cancelled, Captured], vec![], None);
}

#[test]
fn refuses_dispatch_and_delivery_out_of_turn() {
    use Step::*;
    let cases: [(&[Step], Step, &str); 7] = [
        (
            &[],
            Dispatch,
            "cannot dispatch order \"o-1\": no shipment is scheduled for it",
        ),
        (
            &[Captured, Cancelled],
            Dispatch,
            "cannot dispatch order \"o-1\": its shipment is already cancelled",
        ),
        (
            &[Captured, Dispatch],
            Dispatch,
            "cannot dispatch order \"o-1\": its shipment is already dispatched",
        ),
        (
            &[],
            Deliver,
            "cannot deliver order \"o-1\": no shipment is scheduled for it",
        ),
        (
            &[Captured],
            Deliver,
            "cannot deliver order \"o-1\": its shipment has not been dispatched",
        ),
        (
            &[Captured, Dispatch, Deliver],
            Deliver,
            "cannot deliver order \"o-1\": its shipment is already delivered",
        ),
        (
            &[Captured, Cancelled],
            Deliver,
            "cannot deliver order \"o-1\": its shipment is already cancelled",
        ),
    ];
    for (steps, step, reason) in cases {
        let (mut scenario, _) = after(steps);
        let before = status(&scenario);
        assert_eq!(
            run(&mut scenario, step),
            Err(reason.to_owned()),
            "{step:?} after {steps:?}"
        );
        assert_eq!(
            status(&scenario),
            before,
            "a refused {step:?} changes nothing"
        );
    }
}
