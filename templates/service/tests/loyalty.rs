//! Loyalty alone, given/when/then.

use herald_domains::events::orders::{OrderLine, OrderPlaced, OrdersEvent};
use herald_domains::events::shipping::{ShipmentDelivered, ShippingEvent};
use herald_runtime::testing::Scenario;
use loyalty_service::loyalty::{Loyalty, PointsAwarded, PointsRedeemed};

fn placed(order_id: &str, customer: &str) -> OrderPlaced {
    let line = OrderLine {
        sku: "sku-a".into(),
        quantity: 1,
        unit_price: 100,
    };
    OrderPlaced {
        order_id: order_id.into(),
        customer: customer.into(),
        lines: vec![line],
    }
}

fn delivered(order_id: &str) -> ShipmentDelivered {
    ShipmentDelivered {
        order_id: order_id.into(),
    }
}

fn awarded(customer: &str, order_id: &str) -> PointsAwarded {
    PointsAwarded {
        customer: customer.into(),
        order_id: order_id.into(),
    }
}

fn redeem(customer: &str, points: u64) -> PointsRedeemed {
    PointsRedeemed {
        customer: customer.into(),
        points,
    }
}

#[test]
fn a_delivered_order_earns_its_customer_a_point_once() {
    Scenario::<Loyalty>::new()
        .when_consumed::<OrdersEvent>(placed("o-1", "alice"))
        .then_emits_nothing()
        .when_consumed::<ShippingEvent>(delivered("o-1"))
        .then_emits([awarded("alice", "o-1")])
        .when_consumed::<ShippingEvent>(delivered("o-1"))
        .then_emits_nothing();
}

#[test]
fn a_delivery_seen_before_its_order_still_earns_the_point() {
    // The two come from different streams; networked mode keeps order only per stream.
    Scenario::<Loyalty>::new()
        .when_consumed::<ShippingEvent>(delivered("o-1"))
        .then_emits_nothing()
        .when_consumed::<OrdersEvent>(placed("o-1", "alice"))
        .then_emits([awarded("alice", "o-1")]);
}

#[test]
fn points_are_redeemed_only_while_there_are_enough() {
    let scenario = Scenario::<Loyalty>::new()
        .given([awarded("alice", "o-1"), awarded("alice", "o-2")])
        .when_posted(redeem("alice", 3))
        .then_rejected("alice has 2 points")
        .when_posted(redeem("alice", 2))
        .then_emits([redeem("alice", 2)]);
    assert_eq!(
        scenario.entity("alice"),
        Some(serde_json::json!({"points": 0}))
    );
}
