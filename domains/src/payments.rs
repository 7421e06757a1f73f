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

use herald_runtime::prelude::*;

use crate::events::inventory::StockReserved;
use crate::events::orders::{OrderCancelled, OrderPlaced, OrderTooLarge};
use crate::events::payments::{PaymentCaptured, PaymentDeclined, PaymentRefunded, PaymentsEvent};

herald_runtime::inputs! {
    /// The three facts payments decides on: the bill, the reservation and a cancellation.
    pub enum PaymentsInput {
        OrderPlaced,
        OrderCancelled,
        StockReserved,
    }
}

/// One customer's account, as `GET /v1/domains/payments/entities/{customer}` answers it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct AccountView {
    /// The customer.
    pub customer: String,
    /// Cents left to spend.
    pub credit: u64,
    /// Cents taken for orders, net of refunds.
    pub captured: u64,
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
    why: OrderTooLarge,
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
    /// Keeps who pays for the order and how much; a redelivered `OrderPlaced` keeps the
    /// first bill.
    fn bill(&mut self, placed: OrderPlaced) {
        let order = self.orders.entry(placed.order_id.clone()).or_default();
        let customer = placed.customer.clone();
        match placed.total() {
            Ok(total) => {
                order.bill.get_or_insert(Bill { customer, total });
            }
            Err(why) => {
                let unpriced = Unpriced { customer, why };
                self.unpriced.entry(placed.order_id).or_insert(unpriced);
            }
        }
    }

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
    type Event = PaymentsEvent;
    type Input = PaymentsInput;
    type Entity = AccountView;

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
        input: PaymentsInput,
        out: &mut Outbox<PaymentsEvent>,
    ) -> Result<(), HandleError> {
        let order_id = match input {
            PaymentsInput::OrderPlaced(placed) => {
                let order_id = placed.order_id.clone();
                self.bill(placed);
                order_id
            }
            PaymentsInput::StockReserved(reserved) => {
                let order = self.orders.entry(reserved.order_id.clone()).or_default();
                order.reserved = true;
                reserved.order_id
            }
            PaymentsInput::OrderCancelled(cancelled) => {
                let order = self.orders.entry(cancelled.order_id.clone()).or_default();
                order.cancelled = true;
                cancelled.order_id
            }
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

    fn keys(&self, after: Option<&str>, limit: usize) -> Vec<String> {
        keys_after(&self.accounts, after, limit)
    }

    fn entity(&self, key: &str) -> Option<AccountView> {
        let account = self.accounts.get(key)?;
        Some(AccountView {
            customer: key.to_owned(),
            credit: account.credit,
            captured: account.captured,
        })
    }
}
