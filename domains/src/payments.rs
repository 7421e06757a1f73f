//! `payments`: customers' credit, captured for orders once their stock is reserved.
//!
//! Ingress: `CreditGranted`. Payments keeps its own model of each order, built in
//! [`Domain::handle`] from three facts that may arrive in any order, since they come from
//! different streams: the bill (customer and total, from `orders.OrderPlaced`), the
//! reservation (`inventory.StockReserved`) and a cancellation (`orders.OrderCancelled`).
//! After each fact it decides:
//!
//! - billed, reserved, not cancelled and not yet decided: `PaymentCaptured` if the customer's
//!   credit covers the total, else `PaymentDeclined`;
//! - captured, then cancelled: `PaymentRefunded`.
//!
//! So it never captures for an order it knows is cancelled, and refunds one it captured before
//! learning of the cancellation.

use std::collections::BTreeMap;

use herald_runtime::{Domain, HandleError, Incoming, Outbox, Rejection};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::{inventory, orders};

/// A customer was given credit to spend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreditGranted {
    /// The customer; the entity key.
    #[schemars(length(min = 1))]
    pub customer: String,
    /// How much, in cents; at least one.
    #[schemars(range(min = 1))]
    pub amount: u64,
}

/// An order's total was taken from its customer's credit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentCaptured {
    /// The order; the entity key.
    pub order_id: String,
    /// Who paid.
    pub customer: String,
    /// How much, in cents.
    pub amount: u64,
}

/// An order's customer had too little credit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentDeclined {
    /// The order; the entity key.
    pub order_id: String,
    /// Who would have paid.
    pub customer: String,
    /// The order's total, in cents.
    pub amount: u64,
    /// The credit there was against the total.
    pub reason: String,
}

/// A captured payment went back to the customer because the order was cancelled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentRefunded {
    /// The order; the entity key.
    pub order_id: String,
    /// Who is refunded.
    pub customer: String,
    /// How much, in cents: what was captured.
    pub amount: u64,
}

herald_runtime::events! {
    /// What the payments domain records.
    pub enum PaymentsEvent in "payments" {
        CreditGranted keyed by customer,
        PaymentCaptured keyed by order_id,
        PaymentDeclined keyed by order_id,
        PaymentRefunded keyed by order_id,
    }
}

/// One customer's money.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct Account {
    /// What is left to spend.
    credit: u64,
    /// What was taken, net of refunds.
    captured: u64,
}

/// Who pays for an order, and how much.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Bill {
    customer: String,
    total: u64,
}

/// What payments did about an order, from its own events.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
enum Outcome {
    #[default]
    Undecided,
    Captured {
        customer: String,
        amount: u64,
    },
    Declined,
    Refunded,
}

/// Payments' model of one order.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct OrderPayment {
    bill: Option<Bill>,
    reserved: bool,
    cancelled: bool,
    outcome: Outcome,
}

/// The payments domain: credit per customer and a payment decision per order.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Payments {
    accounts: BTreeMap<String, Account>,
    orders: BTreeMap<String, OrderPayment>,
}

impl Payments {
    /// Acts on what is now known about the order: capture or decline, or refund.
    fn decide(&self, order_id: String, out: &mut Outbox<PaymentsEvent>) {
        let Some(order) = self.orders.get(&order_id) else {
            return;
        };
        match (&order.outcome, &order.bill) {
            (Outcome::Undecided, Some(bill)) if order.reserved && !order.cancelled => {
                let credit = self.accounts.get(&bill.customer).map_or(0, |a| a.credit);
                let customer = bill.customer.clone();
                let amount = bill.total;
                if credit >= amount {
                    out.emit(PaymentCaptured {
                        order_id,
                        customer,
                        amount,
                    });
                } else {
                    let reason = format!(
                        "insufficient credit: customer \"{customer}\" has {credit} available, {amount} required"
                    );
                    out.emit(PaymentDeclined {
                        order_id,
                        customer,
                        amount,
                        reason,
                    });
                }
            }
            (Outcome::Captured { customer, amount }, _) if order.cancelled => {
                out.emit(PaymentRefunded {
                    order_id,
                    customer: customer.clone(),
                    amount: *amount,
                });
            }
            _ => {}
        }
    }
}

impl Domain for Payments {
    const NAME: &'static str = "payments";
    type Event = PaymentsEvent;

    fn subscriptions() -> &'static [&'static str] {
        &[
            orders::OrderPlaced::TYPE,
            orders::OrderCancelled::TYPE,
            inventory::StockReserved::TYPE,
        ]
    }

    fn ingress() -> &'static [&'static str] {
        &[CreditGranted::TYPE]
    }

    fn validate(&self, _proposed: &PaymentsEvent) -> Result<(), Rejection> {
        // Credit may always be granted; the schema already insists on a positive amount.
        Ok(())
    }

    fn handle(
        &mut self,
        incoming: &Incoming<'_>,
        out: &mut Outbox<PaymentsEvent>,
    ) -> Result<(), HandleError> {
        let order_id = match incoming.event_type() {
            orders::OrderPlaced::TYPE => {
                let placed: orders::OrderPlaced = incoming.data()?;
                let bill = Bill {
                    total: placed.total(),
                    customer: placed.customer,
                };
                let order = self.orders.entry(placed.order_id.clone()).or_default();
                // A redelivered OrderPlaced keeps the first bill.
                order.bill.get_or_insert(bill);
                placed.order_id
            }
            inventory::StockReserved::TYPE => {
                let reserved: inventory::StockReserved = incoming.data()?;
                let order = self.orders.entry(reserved.order_id.clone()).or_default();
                order.reserved = true;
                reserved.order_id
            }
            orders::OrderCancelled::TYPE => {
                let cancelled: orders::OrderCancelled = incoming.data()?;
                let order = self.orders.entry(cancelled.order_id.clone()).or_default();
                order.cancelled = true;
                cancelled.order_id
            }
            _ => return Ok(()),
        };
        self.decide(order_id, out);
        Ok(())
    }

    fn apply(&mut self, event: &PaymentsEvent) {
        match event {
            PaymentsEvent::CreditGranted(granted) => {
                let account = self.accounts.entry(granted.customer.clone()).or_default();
                account.credit = account.credit.saturating_add(granted.amount);
            }
            PaymentsEvent::PaymentCaptured(captured) => {
                // A zero total is captured even from a customer never granted credit.
                let account = self.accounts.entry(captured.customer.clone()).or_default();
                account.credit = account.credit.saturating_sub(captured.amount);
                account.captured = account.captured.saturating_add(captured.amount);
                self.orders
                    .entry(captured.order_id.clone())
                    .or_default()
                    .outcome = Outcome::Captured {
                    customer: captured.customer.clone(),
                    amount: captured.amount,
                };
            }
            PaymentsEvent::PaymentDeclined(declined) => {
                self.orders
                    .entry(declined.order_id.clone())
                    .or_default()
                    .outcome = Outcome::Declined;
            }
            PaymentsEvent::PaymentRefunded(refunded) => {
                if let Some(account) = self.accounts.get_mut(&refunded.customer) {
                    account.credit = account.credit.saturating_add(refunded.amount);
                    account.captured = account.captured.saturating_sub(refunded.amount);
                }
                self.orders
                    .entry(refunded.order_id.clone())
                    .or_default()
                    .outcome = Outcome::Refunded;
            }
        }
    }

    fn entity(&self, key: &str) -> Option<Value> {
        let account = self.accounts.get(key)?;
        Some(json!({
            "customer": key,
            "credit": account.credit,
            "captured": account.captured,
        }))
    }
}
