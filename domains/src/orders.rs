//! `orders`: takes orders in and tracks each one's status from the other domains' events.
//!
//! Ingress: `OrderPlaced` and `OrderCancelled`. Orders appends nothing else: the status of an
//! order is a read model kept in [`Domain::handle`] from what inventory, payments and shipping
//! report, which replay reproduces by re-running the handler.
//!
//! A status only moves forward: `placed`, `reserved`, `paid`, `awaiting_shipment`, `shipped`,
//! then one of the terminal `delivered`, `rejected` or `cancelled`. Events from different
//! streams may arrive in any order (a `PaymentCaptured` before its `StockReserved`, a
//! `StockReserved` after a cancellation), so a late event never moves an order back.
//!
//! # The cancellation window
//!
//! A cancellation is refused once orders knows the order has shipped, but it learns that from
//! `shipping.ShipmentDispatched` asynchronously. A cancel accepted between the dispatch and
//! orders seeing it leaves the order `cancelled` (payment refunded, stock released) while
//! shipping keeps the shipment `dispatched`: shipping ignores a cancel it cannot honour, and
//! inventory ships nothing for stock it already released. The dispatched shipment of a
//! cancelled order is the signal for a person to follow up.
//!
//! # Figures
//!
//! Quantities and prices are `u64`, and so is an order's total in cents. An order whose total
//! or units of one sku pass `u64::MAX` is refused at ingress (409 naming the line), so every
//! domain downstream counts it exactly; none of them clamps.

use std::collections::{btree_map::Entry, BTreeMap, BTreeSet};

use herald_runtime::{
    Domain, HandleError, Incoming, Outbox, Params, Partitioning, QueryError, Rejection,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::{inventory, payments, shipping};

/// A client placed an order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderPlaced {
    /// The order's id; the entity key.
    #[schemars(length(min = 1))]
    pub order_id: String,
    /// The customer who pays for it.
    #[schemars(length(min = 1))]
    pub customer: String,
    /// What is ordered; at least one line.
    #[schemars(length(min = 1))]
    pub lines: Vec<OrderLine>,
}

impl OrderPlaced {
    /// What the order costs, in cents: the sum of quantity times unit price, or where that
    /// sum passes `u64::MAX`. Orders refuses such an order at ingress; a log written before
    /// it did may still hold one, and the other domains decide about it (see
    /// [`OrderTooLarge`]).
    pub fn total(&self) -> Result<u64, OrderTooLarge> {
        let mut total: u64 = 0;
        for (index, line) in self.lines.iter().enumerate() {
            total = line
                .quantity
                .checked_mul(line.unit_price)
                .and_then(|price| total.checked_add(price))
                .ok_or_else(|| OrderTooLarge::Total {
                    line: index + 1,
                    sku: line.sku.clone(),
                    quantity: line.quantity,
                    unit_price: line.unit_price,
                })?;
        }
        Ok(total)
    }

    /// The units ordered of each sku, summed over its lines, in the order skus first
    /// appear; or the sku whose units pass `u64::MAX`.
    pub fn units_per_sku(&self) -> Result<Vec<inventory::StockLine>, OrderTooLarge> {
        let mut wanted: Vec<inventory::StockLine> = Vec::new();
        for line in &self.lines {
            match wanted.iter_mut().find(|w| w.sku == line.sku) {
                Some(same) => {
                    same.quantity = same.quantity.checked_add(line.quantity).ok_or_else(|| {
                        OrderTooLarge::Units {
                            sku: line.sku.clone(),
                        }
                    })?;
                }
                None => wanted.push(inventory::StockLine {
                    sku: line.sku.clone(),
                    quantity: line.quantity,
                }),
            }
        }
        Ok(wanted)
    }
}

/// Why an order's figures cannot be counted exactly in the `u64` they are kept in.
///
/// Orders refuses such an order at ingress. One already in a log (accepted before that rule)
/// is decided on, never clamped: inventory rejects an order whose units it cannot count, and
/// payments declines one it cannot price.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum OrderTooLarge {
    /// The total in cents passes `u64::MAX` at this line.
    Total {
        /// The line, counted from 1.
        line: usize,
        /// Its sku.
        sku: String,
        /// Its quantity.
        quantity: u64,
        /// Its unit price, in cents.
        unit_price: u64,
    },
    /// The units of one sku, over all its lines, pass `u64::MAX`.
    Units {
        /// The sku.
        sku: String,
    },
}

impl std::fmt::Display for OrderTooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OrderTooLarge::Total {
                line,
                sku,
                quantity,
                unit_price,
            } => write!(
                f,
                "the total passes {} cents at line {line} ({quantity} units of sku \"{sku}\" at {unit_price} cents)",
                u64::MAX
            ),
            OrderTooLarge::Units { sku } => write!(
                f,
                "the lines ask for more than {} units of sku \"{sku}\"",
                u64::MAX
            ),
        }
    }
}

impl std::error::Error for OrderTooLarge {}

/// One line of an order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderLine {
    /// The stock-keeping unit ordered.
    #[schemars(length(min = 1))]
    pub sku: String,
    /// How many; at least one.
    #[schemars(range(min = 1))]
    pub quantity: u64,
    /// Price of one unit, in cents; may be zero.
    pub unit_price: u64,
}

/// A client cancelled an order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderCancelled {
    /// The order's id; the entity key.
    #[schemars(length(min = 1))]
    pub order_id: String,
    /// Why the client cancelled.
    pub reason: String,
}

herald_runtime::events! {
    /// What the orders domain records.
    pub enum OrdersEvent in "orders" {
        OrderPlaced keyed by order_id,
        OrderCancelled keyed by order_id,
    }
}

/// Where an order stands.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
enum Status {
    Placed,
    Reserved,
    Paid,
    AwaitingShipment,
    Shipped,
    Delivered,
    Rejected { reason: String },
    Cancelled { reason: String },
}

impl Status {
    /// The name entities show.
    fn name(&self) -> &'static str {
        match self {
            Status::Placed => "placed",
            Status::Reserved => "reserved",
            Status::Paid => "paid",
            Status::AwaitingShipment => "awaiting_shipment",
            Status::Shipped => "shipped",
            Status::Delivered => "delivered",
            Status::Rejected { .. } => "rejected",
            Status::Cancelled { .. } => "cancelled",
        }
    }

    /// How far along the order is. The terminal statuses share the last rank, so none of
    /// them ever replaces another.
    fn rank(&self) -> u8 {
        match self {
            Status::Placed => 0,
            Status::Reserved => 1,
            Status::Paid => 2,
            Status::AwaitingShipment => 3,
            Status::Shipped => 4,
            Status::Delivered | Status::Rejected { .. } | Status::Cancelled { .. } => 5,
        }
    }

    /// Moves to `next` if that is forward; a late event is ignored.
    fn advance(&mut self, next: Status) {
        if next.rank() > self.rank() {
            *self = next;
        }
    }
}

/// One order as orders knows it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Order {
    customer: String,
    /// What it costs, in cents; 0, and never shown, for an order in [`Orders::unpriced`].
    total: u64,
    status: Status,
}

/// The orders domain: every order placed, with its status.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Orders {
    orders: BTreeMap<String, Order>,
    /// Orders whose total passes `u64::MAX`: only a log written before validate refused them
    /// holds one. A set of its own, last, rather than an optional total in [`Order`]: a
    /// snapshot from a build without it then fails to decode (and the state is rebuilt from
    /// the log) instead of being misread.
    unpriced: BTreeSet<String>,
}

impl Domain for Orders {
    const NAME: &'static str = "orders";
    type Event = OrdersEvent;

    fn subscriptions() -> &'static [&'static str] {
        &[
            inventory::StockReserved::TYPE,
            inventory::StockRejected::TYPE,
            payments::PaymentCaptured::TYPE,
            payments::PaymentDeclined::TYPE,
            shipping::ShipmentScheduled::TYPE,
            shipping::ShipmentDispatched::TYPE,
            shipping::ShipmentDelivered::TYPE,
        ]
    }

    fn ingress() -> &'static [&'static str] {
        &[OrderPlaced::TYPE, OrderCancelled::TYPE]
    }

    fn queries() -> &'static [&'static str] {
        &["statuses"]
    }

    // Every input is a saga event about one order, keyed by the order id; no decision spans orders.
    fn partitioning() -> Partitioning {
        Partitioning::ByKey { inputs: &[] }
    }

    fn validate(&self, proposed: &OrdersEvent) -> Result<(), Rejection> {
        match proposed {
            OrdersEvent::OrderPlaced(placed) if self.orders.contains_key(&placed.order_id) => Err(
                Rejection::new(format!("order \"{}\" already exists", placed.order_id)),
            ),
            OrdersEvent::OrderPlaced(placed) => {
                // Every figure of an order must be countable exactly, here and downstream.
                placed
                    .total()
                    .and(placed.units_per_sku())
                    .map(|_| ())
                    .map_err(|too_large| {
                        Rejection::new(format!(
                            "order \"{}\" cannot be placed: {too_large}",
                            placed.order_id
                        ))
                    })
            }
            OrdersEvent::OrderCancelled(cancelled) => {
                let id = &cancelled.order_id;
                let Some(order) = self.orders.get(id) else {
                    return Err(Rejection::new(format!("order \"{id}\" does not exist")));
                };
                let refusal = match order.status {
                    Status::Shipped => "has shipped and can no longer be cancelled",
                    Status::Delivered => "was delivered and can no longer be cancelled",
                    Status::Rejected { .. } => "was rejected and cannot be cancelled",
                    Status::Cancelled { .. } => "is already cancelled",
                    Status::Placed | Status::Reserved | Status::Paid | Status::AwaitingShipment => {
                        return Ok(())
                    }
                };
                Err(Rejection::new(format!("order \"{id}\" {refusal}")))
            }
        }
    }

    fn handle(
        &mut self,
        incoming: &Incoming<'_>,
        _out: &mut Outbox<OrdersEvent>,
    ) -> Result<(), HandleError> {
        let (order_id, next) = match incoming.event_type() {
            inventory::StockReserved::TYPE => {
                let reserved: inventory::StockReserved = incoming.data()?;
                (reserved.order_id, Status::Reserved)
            }
            inventory::StockRejected::TYPE => {
                let rejected: inventory::StockRejected = incoming.data()?;
                let reason = rejected.reason;
                (rejected.order_id, Status::Rejected { reason })
            }
            payments::PaymentCaptured::TYPE => {
                let captured: payments::PaymentCaptured = incoming.data()?;
                (captured.order_id, Status::Paid)
            }
            payments::PaymentDeclined::TYPE => {
                let declined: payments::PaymentDeclined = incoming.data()?;
                let reason = declined.reason;
                (declined.order_id, Status::Rejected { reason })
            }
            shipping::ShipmentScheduled::TYPE => {
                let scheduled: shipping::ShipmentScheduled = incoming.data()?;
                (scheduled.order_id, Status::AwaitingShipment)
            }
            shipping::ShipmentDispatched::TYPE => {
                let dispatched: shipping::ShipmentDispatched = incoming.data()?;
                (dispatched.order_id, Status::Shipped)
            }
            shipping::ShipmentDelivered::TYPE => {
                let delivered: shipping::ShipmentDelivered = incoming.data()?;
                (delivered.order_id, Status::Delivered)
            }
            _ => return Ok(()),
        };
        // Every saga event follows its order's OrderPlaced, which orders applied at ingress.
        if let Some(order) = self.orders.get_mut(&order_id) {
            order.status.advance(next);
        }
        Ok(())
    }

    fn apply(&mut self, event: &OrdersEvent) {
        match event {
            OrdersEvent::OrderPlaced(placed) => {
                if let Entry::Vacant(vacant) = self.orders.entry(placed.order_id.clone()) {
                    let total = match placed.total() {
                        Ok(total) => total,
                        Err(_) => {
                            self.unpriced.insert(placed.order_id.clone());
                            0
                        }
                    };
                    vacant.insert(Order {
                        customer: placed.customer.clone(),
                        total,
                        status: Status::Placed,
                    });
                }
            }
            OrdersEvent::OrderCancelled(cancelled) => {
                if let Some(order) = self.orders.get_mut(&cancelled.order_id) {
                    let reason = cancelled.reason.clone();
                    order.status.advance(Status::Cancelled { reason });
                }
            }
        }
    }

    // Counts per status sum over partitions, so the default `Domain::merge` answers for
    // the whole domain.
    fn query(&self, name: &str, params: &Params) -> Result<Value, QueryError> {
        if name != "statuses" {
            return Err(QueryError::UnknownQuery {
                name: name.to_owned(),
                known: Self::queries().iter().map(|q| q.to_string()).collect(),
            });
        }
        let customer = params.get("customer");
        let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
        for order in self.orders.values() {
            if customer.is_none_or(|customer| *customer == order.customer) {
                *counts.entry(order.status.name()).or_default() += 1;
            }
        }
        Ok(json!({ "orders": counts.values().sum::<u64>(), "by_status": counts }))
    }

    fn entity(&self, key: &str) -> Option<Value> {
        let order = self.orders.get(key)?;
        let total = if self.unpriced.contains(key) {
            Value::Null
        } else {
            json!(order.total)
        };
        let mut entity = json!({
            "order_id": key,
            "customer": order.customer,
            "status": order.status.name(),
            "total": total,
        });
        if let Status::Rejected { reason } | Status::Cancelled { reason } = &order.status {
            entity["reason"] = json!(reason);
        }
        Some(entity)
    }
}
