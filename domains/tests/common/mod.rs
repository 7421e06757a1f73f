//! Builders for the example's events, shared by the domain tests.

// Each test crate uses its own subset of these builders.
#![allow(dead_code)]

use herald_domains::events::inventory::{StockAdded, StockLine, StockReserved};
use herald_domains::events::orders::{OrderCancelled, OrderLine, OrderPlaced};
use herald_domains::events::payments::{CreditGranted, PaymentCaptured, PaymentDeclined};
use herald_domains::events::shipping::{ShipmentDelivered, ShipmentDispatched, ShipmentScheduled};

/// `OrderPlaced` with lines of `(sku, quantity, unit_price)`.
pub fn placed(order_id: &str, customer: &str, lines: &[(&str, u64, u64)]) -> OrderPlaced {
    OrderPlaced {
        order_id: order_id.to_owned(),
        customer: customer.to_owned(),
        lines: lines
            .iter()
            .map(|&(sku, quantity, unit_price)| OrderLine {
                sku: sku.to_owned(),
                quantity,
                unit_price,
            })
            .collect(),
    }
}

/// `OrderCancelled` with a stock reason.
pub fn cancelled(order_id: &str) -> OrderCancelled {
    OrderCancelled {
        order_id: order_id.to_owned(),
        reason: "changed my mind".to_owned(),
    }
}

/// `StockAdded`.
pub fn stock_added(sku: &str, quantity: u64) -> StockAdded {
    StockAdded {
        sku: sku.to_owned(),
        quantity,
    }
}

/// Stock lines of `(sku, quantity)`.
pub fn stock_lines(lines: &[(&str, u64)]) -> Vec<StockLine> {
    lines
        .iter()
        .map(|&(sku, quantity)| StockLine {
            sku: sku.to_owned(),
            quantity,
        })
        .collect()
}

/// `StockReserved` of `(sku, quantity)` lines.
pub fn reserved(order_id: &str, lines: &[(&str, u64)]) -> StockReserved {
    StockReserved {
        order_id: order_id.to_owned(),
        lines: stock_lines(lines),
    }
}

/// `CreditGranted`.
pub fn credit(customer: &str, amount: u64) -> CreditGranted {
    CreditGranted {
        customer: customer.to_owned(),
        amount,
    }
}

/// `PaymentCaptured`.
pub fn captured(order_id: &str, customer: &str, amount: u64) -> PaymentCaptured {
    PaymentCaptured {
        order_id: order_id.to_owned(),
        customer: customer.to_owned(),
        amount,
    }
}

/// `PaymentDeclined` with a stock reason.
pub fn declined(order_id: &str, customer: &str, amount: u64) -> PaymentDeclined {
    PaymentDeclined {
        order_id: order_id.to_owned(),
        customer: customer.to_owned(),
        amount: Some(amount),
        reason: "insufficient credit".to_owned(),
    }
}

/// `ShipmentScheduled`.
pub fn scheduled(order_id: &str) -> ShipmentScheduled {
    ShipmentScheduled {
        order_id: order_id.to_owned(),
    }
}

/// `ShipmentDispatched`.
pub fn dispatched(order_id: &str) -> ShipmentDispatched {
    ShipmentDispatched {
        order_id: order_id.to_owned(),
    }
}

/// `ShipmentDelivered`.
pub fn delivered(order_id: &str) -> ShipmentDelivered {
    ShipmentDelivered {
        order_id: order_id.to_owned(),
    }
}
