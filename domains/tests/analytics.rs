//! Analytics alone: counts by type, order outcomes and revenue.

mod common;

use common::{
    cancelled, captured, credit, declined, delivered, dispatched, placed, reserved, scheduled,
    stock_added,
};
use herald_domains::analytics::Analytics;
use herald_domains::events::inventory::{InventoryEvent, StockRejected};
use herald_domains::events::orders::OrdersEvent;
use herald_domains::events::payments::{PaymentRefunded, PaymentsEvent};
use herald_domains::events::shipping::ShippingEvent;
use herald_runtime::testing::Scenario;
use herald_runtime::QueryError;
use serde_json::{json, Value};

fn summary(scenario: &Scenario<Analytics>) -> Value {
    scenario
        .query("summary", &Default::default())
        .expect("summary answers")
}

#[test]
fn starts_at_zero() {
    assert_eq!(
        summary(&Scenario::new()),
        json!({
            "events_by_type": {},
            "orders_placed": 0,
            "orders_delivered": 0,
            "orders_rejected": 0,
            "orders_cancelled": 0,
            "revenue": 0,
        })
    );
}

#[test]
fn counts_every_event_and_sums_revenue() {
    let mut scenario = Scenario::<Analytics>::new();
    let mut orders: Vec<OrdersEvent> = ["o-1", "o-2", "o-3", "o-4"]
        .into_iter()
        .map(|order_id| placed(order_id, "c-1", &[("s-1", 1, 500)]).into())
        .collect();
    orders.push(cancelled("o-4").into());
    for event in orders {
        let emitted = scenario.when_input::<OrdersEvent>(event).expect("handled");
        assert_eq!(emitted, vec![], "analytics emits nothing");
    }

    let inventory: Vec<InventoryEvent> = vec![
        stock_added("s-1", 10).into(),
        reserved("o-1", &[("s-1", 1)]).into(),
        reserved("o-2", &[("s-1", 1)]).into(),
        reserved("o-4", &[("s-1", 1)]).into(),
        StockRejected {
            order_id: "o-3".to_owned(),
            reason: "out of stock".to_owned(),
        }
        .into(),
    ];
    for event in inventory {
        scenario
            .when_input::<InventoryEvent>(event)
            .expect("handled");
    }

    let refund = PaymentRefunded {
        order_id: "o-4".to_owned(),
        customer: "c-1".to_owned(),
        amount: 500,
    };
    let payments: Vec<PaymentsEvent> = vec![
        credit("c-1", 2000).into(),
        captured("o-1", "c-1", 500).into(),
        declined("o-2", "c-1", 500).into(),
        captured("o-4", "c-1", 500).into(),
        refund.into(),
    ];
    for event in payments {
        scenario
            .when_input::<PaymentsEvent>(event)
            .expect("handled");
    }

    let shipping: [ShippingEvent; 3] = [
        scheduled("o-1").into(),
        dispatched("o-1").into(),
        delivered("o-1").into(),
    ];
    for event in shipping {
        scenario
            .when_input::<ShippingEvent>(event)
            .expect("handled");
    }

    assert_eq!(
        summary(&scenario),
        json!({
            "events_by_type": {
                "inventory.StockAdded": 1,
                "inventory.StockRejected": 1,
                "inventory.StockReserved": 3,
                "orders.OrderCancelled": 1,
                "orders.OrderPlaced": 4,
                "payments.CreditGranted": 1,
                "payments.PaymentCaptured": 2,
                "payments.PaymentDeclined": 1,
                "payments.PaymentRefunded": 1,
                "shipping.ShipmentDelivered": 1,
                "shipping.ShipmentDispatched": 1,
                "shipping.ShipmentScheduled": 1,
            },
            "orders_placed": 4,
            "orders_delivered": 1,
            "orders_rejected": 2,
            "orders_cancelled": 1,
            "revenue": 500,
        })
    );
}

#[test]
fn has_no_entities_and_one_query() {
    let scenario = Scenario::<Analytics>::new();
    assert_eq!(scenario.entity("o-1"), None);
    let unknown = scenario.query("totals", &Default::default());
    assert_eq!(
        unknown,
        Err(QueryError::UnknownQuery {
            name: "totals".to_owned(),
            known: vec!["summary".to_owned()],
        })
    );
}

const MAX: u64 = u64::MAX;

/// Feeds analytics payments' captures and refunds of `(order, amount)`; checks revenue.
fn check_revenue(captures: &[u64], refunds: &[u64], expected: Value) {
    let mut scenario = Scenario::<Analytics>::new();
    let captured_events = captures
        .iter()
        .enumerate()
        .map(|(n, &amount)| PaymentsEvent::from(captured(&format!("o-{n}"), "c-1", amount)));
    let refunded_events = refunds.iter().enumerate().map(|(n, &amount)| {
        PaymentsEvent::from(PaymentRefunded {
            order_id: format!("o-{n}"),
            customer: "c-1".to_owned(),
            amount,
        })
    });
    for event in captured_events.chain(refunded_events) {
        scenario
            .when_input::<PaymentsEvent>(event)
            .expect("handled");
    }
    assert_eq!(
        summary(&scenario)["revenue"],
        expected,
        "captures {captures:?}, refunds {refunds:?}"
    );
}

#[test]
fn revenue_is_exact_past_u64() {
    check_revenue(&[MAX], &[], json!(MAX));
    // Past u64 the figure is its decimal digits: 2 x (2^64 - 1). It was clamped to u64::MAX.
    check_revenue(&[MAX, MAX], &[], json!("36893488147419103230"));
    check_revenue(&[MAX, MAX, 2], &[], json!("36893488147419103232"));
    // Back within u64, a number again (it went to 0 after the clamp).
    check_revenue(&[MAX, MAX], &[MAX], json!(MAX));
    check_revenue(&[MAX, MAX], &[MAX, MAX], json!(0));
}
