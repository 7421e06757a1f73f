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

use herald_runtime::prelude::*;

use crate::events::inventory::{StockRejected, StockReserved};
use crate::events::orders::{OrderCancelled, OrdersEvent};
use crate::events::payments::{PaymentCaptured, PaymentDeclined};
use crate::events::shipping::{ShipmentDelivered, ShipmentDispatched, ShipmentScheduled};

herald_runtime::inputs! {
    /// What orders follows: every step of the saga that moves an order's status.
    pub enum OrdersInput {
        StockReserved,
        StockRejected,
        PaymentCaptured,
        PaymentDeclined,
        ShipmentScheduled,
        ShipmentDispatched,
        ShipmentDelivered,
    }
}

/// One order, as `GET /v1/domains/orders/entities/{order_id}` answers it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct OrderView {
    /// The order's id.
    pub order_id: String,
    /// Who pays for it.
    pub customer: String,
    /// `placed`, `reserved`, `paid`, `awaiting_shipment`, `shipped`, `delivered`,
    /// `rejected` or `cancelled`.
    pub status: &'static str,
    /// What it costs, in cents; `null` for an order whose total passes `u64::MAX`.
    pub total: Option<u64>,
    /// Why it was rejected or cancelled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The answer to the `statuses` query: how many orders there are, by status.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Statuses {
    /// Every order counted.
    pub orders: u64,
    /// Orders per status name.
    pub by_status: BTreeMap<&'static str, u64>,
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
    /// `[domain.orders] payment_timeout`: configuration, not state (see [`PAYMENT_TIMEOUT`]).
    #[serde(skip)]
    payment_timeout: Duration,
}

/// How long a reserved order waits for its payment before orders cancels it, releasing
/// its stock, unless `[domain.orders] payment_timeout` says otherwise (`"0s"`: never).
///
/// The deadline is the reservation's time plus the timeout, logged as a durable timer when
/// orders learns of the reservation: a payment (captured or declined) cancels the timer, and
/// a timer that fires appends `OrderCancelled`, which inventory and payments already
/// follow. A client's cancellation does not stop the timer (ingress has no outbox); the
/// second `OrderCancelled` it then fires changes nothing anywhere.
pub const PAYMENT_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// The name of an order's payment timer.
fn payment_timer(order_id: &str) -> String {
    format!("payment:{order_id}")
}

impl Domain for Orders {
    type Event = OrdersEvent;
    type Input = OrdersInput;
    type Entity = OrderView;

    fn queries() -> Vec<Query> {
        vec![Query::of::<Statuses>("statuses")]
    }

    // Every input is a saga event about one order, keyed by the order id; no decision spans orders.
    fn partitioning() -> Partitioning {
        Partitioning::ByKey { inputs: &[] }
    }

    fn configure(&mut self, settings: &Settings) -> Result<(), SettingsError> {
        self.payment_timeout = settings.duration("payment_timeout", PAYMENT_TIMEOUT)?;
        Ok(())
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
        input: OrdersInput,
        out: &mut Outbox<OrdersEvent>,
    ) -> Result<(), HandleError> {
        let (order_id, next) = match input {
            OrdersInput::StockReserved(e) => (e.order_id, Status::Reserved),
            OrdersInput::StockRejected(e) => (e.order_id, Status::Rejected { reason: e.reason }),
            OrdersInput::PaymentCaptured(e) => (e.order_id, Status::Paid),
            OrdersInput::PaymentDeclined(e) => (e.order_id, Status::Rejected { reason: e.reason }),
            OrdersInput::ShipmentScheduled(e) => (e.order_id, Status::AwaitingShipment),
            OrdersInput::ShipmentDispatched(e) => (e.order_id, Status::Shipped),
            OrdersInput::ShipmentDelivered(e) => (e.order_id, Status::Delivered),
        };
        // Every saga event follows its order's OrderPlaced, which orders applied at ingress.
        let Some(order) = self.orders.get_mut(&order_id) else {
            return Ok(());
        };
        let was = order.status.rank();
        order.status.advance(next);
        let timeout = self.payment_timeout;
        match order.status {
            // Reserved just now: the payment is due within the timeout of the reservation.
            Status::Reserved if was < Status::Reserved.rank() && !timeout.is_zero() => {
                let reason = format!(
                    "no payment within {}s of the stock being reserved",
                    timeout.as_secs()
                );
                out.schedule(
                    payment_timer(&order_id),
                    out.now() + timeout,
                    OrderCancelled { order_id, reason },
                );
            }
            Status::Reserved | Status::Placed => {}
            // Paid, rejected or further: nothing left to wait for.
            _ if was <= Status::Reserved.rank() => {
                out.cancel(payment_timer(&order_id));
            }
            _ => {}
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
    fn query(&self, name: &str, params: &Params) -> Result<serde_json::Value, QueryError> {
        if name != "statuses" {
            return Err(QueryError::unknown::<Self>(name));
        }
        let customer = params.get("customer");
        let mut by_status: BTreeMap<&str, u64> = BTreeMap::new();
        for order in self.orders.values() {
            if customer.is_none_or(|customer| *customer == order.customer) {
                *by_status.entry(order.status.name()).or_default() += 1;
            }
        }
        let orders = by_status.values().sum();
        answer(&Statuses { orders, by_status })
    }

    fn keys(&self, after: Option<&str>, limit: usize) -> Vec<String> {
        keys_after(&self.orders, after, limit)
    }

    fn entity(&self, key: &str) -> Option<OrderView> {
        let order = self.orders.get(key)?;
        let reason = match &order.status {
            Status::Rejected { reason } | Status::Cancelled { reason } => Some(reason.clone()),
            _ => None,
        };
        Some(OrderView {
            order_id: key.to_owned(),
            customer: order.customer.clone(),
            status: order.status.name(),
            total: (!self.unpriced.contains(key)).then_some(order.total),
            reason,
        })
    }
}
