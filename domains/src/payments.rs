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
//!
//! # Figures
//!
//! An account's credit plus what it has captured is at most `u64::MAX`: a grant past that is
//! refused (409), since the captured part may come back as a refund. Capture and refund only
//! move cents between the two, so no figure is ever clamped. An order with no `u64` total
//! (only in a log from before orders refused one) is declined with the reason.

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

/// An order's customer had too little credit, or the order could not be priced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentDeclined {
    /// The order; the entity key.
    pub order_id: String,
    /// Who would have paid.
    pub customer: String,
    /// The order's total, in cents; absent when it passes `u64::MAX` (see `reason`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<u64>,
    /// The credit there was against the total, or why there is no total.
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

/// An order with no `u64` total, known from its `OrderPlaced`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Unpriced {
    customer: String,
    why: orders::OrderTooLarge,
}

/// Payments' model of one order.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct OrderPayment {
    /// None until the order is known, and for an order in [`Payments::unpriced`].
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
    /// Orders whose total passes `u64::MAX`, by id: only a log written before orders refused
    /// them holds one. Last, so a snapshot from a build without it fails to decode (and the
    /// state is rebuilt from the log) rather than being misread.
    unpriced: BTreeMap<String, Unpriced>,
}

impl Payments {
    /// Acts on what is now known about the order: capture or decline, or refund.
    fn decide(&self, order_id: String, out: &mut Outbox<PaymentsEvent>) {
        let Some(order) = self.orders.get(&order_id) else {
            return;
        };
        let due = order.reserved && !order.cancelled;
        match (&order.outcome, &order.bill) {
            (Outcome::Undecided, None) if due => {
                if let Some(unpriced) = self.unpriced.get(&order_id) {
                    out.emit(PaymentDeclined {
                        order_id,
                        customer: unpriced.customer.clone(),
                        amount: None,
                        reason: format!("cannot charge: {}", unpriced.why),
                    });
                }
            }
            (Outcome::Undecided, Some(bill)) if due => {
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
                        amount: Some(amount),
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

    fn validate(&self, proposed: &PaymentsEvent) -> Result<(), Rejection> {
        let granted = match proposed {
            PaymentsEvent::CreditGranted(granted) => granted,
            // Not ingress: the runtime never proposes these.
            PaymentsEvent::PaymentCaptured(_)
            | PaymentsEvent::PaymentDeclined(_)
            | PaymentsEvent::PaymentRefunded(_) => return Ok(()),
        };
        // The schema insists on a positive amount; the account must still count it exactly,
        // including what it has captured, which a refund may bring back.
        let account = self
            .accounts
            .get(&granted.customer)
            .cloned()
            .unwrap_or_default();
        let held = account.credit.checked_add(account.captured);
        match held.and_then(|held| held.checked_add(granted.amount)) {
            Some(_) => Ok(()),
            None => Err(Rejection::new(format!(
                "customer \"{}\" cannot be granted {} more cents: the account has {} credit and {} captured (which a refund may return), and an account counts at most {} cents",
                granted.customer,
                granted.amount,
                account.credit,
                account.captured,
                u64::MAX
            ))),
        }
    }

    fn handle(
        &mut self,
        incoming: &Incoming<'_>,
        out: &mut Outbox<PaymentsEvent>,
    ) -> Result<(), HandleError> {
        let order_id = match incoming.event_type() {
            orders::OrderPlaced::TYPE => {
                let placed: orders::OrderPlaced = incoming.data()?;
                let order = self.orders.entry(placed.order_id.clone()).or_default();
                // A redelivered OrderPlaced keeps the first bill.
                match placed.total() {
                    Ok(total) => {
                        let customer = placed.customer;
                        order.bill.get_or_insert(Bill { customer, total });
                    }
                    Err(why) => {
                        let customer = placed.customer;
                        let unpriced = Unpriced { customer, why };
                        self.unpriced
                            .entry(placed.order_id.clone())
                            .or_insert(unpriced);
                    }
                }
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

    // Exact for every event validate and handle let through (see the module's Figures): a
    // capture takes no more than the credit, a refund returns what was captured. Saturating
    // only matters for a log written before validate refused grants past u64; there it
    // rebuilds the state that log produced, as apply must not fail.
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
