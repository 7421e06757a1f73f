//! `shipping`: a shipment per paid order, from scheduled to delivered.
//!
//! On `payments.PaymentCaptured` it schedules a shipment, unless it has already seen the
//! order cancelled (payments does not capture after a cancellation, but the two events come
//! from different streams, so shipping guards it too). Ingress `ShipmentDispatched` and
//! `ShipmentDelivered` move the shipment on, each only from the step before. On
//! `orders.OrderCancelled` a scheduled shipment is cancelled; a dispatched or delivered one
//! cannot be, and the cancel is ignored (see the cancellation window in [`crate::orders`]).

use std::collections::{BTreeMap, BTreeSet};

use herald_runtime::{Domain, HandleError, Incoming, Outbox, Partitioning, Rejection};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::{orders, payments};

/// A paid order's shipment was scheduled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShipmentScheduled {
    /// The order; the entity key.
    pub order_id: String,
}

/// A scheduled shipment left the warehouse.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShipmentDispatched {
    /// The order; the entity key.
    #[schemars(length(min = 1))]
    pub order_id: String,
}

/// A dispatched shipment reached the customer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShipmentDelivered {
    /// The order; the entity key.
    #[schemars(length(min = 1))]
    pub order_id: String,
}

/// A scheduled shipment was called off because its order was cancelled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShipmentCancelled {
    /// The order; the entity key.
    pub order_id: String,
}

herald_runtime::events! {
    /// What the shipping domain records.
    pub enum ShippingEvent in "shipping" {
        ShipmentScheduled keyed by order_id,
        ShipmentDispatched keyed by order_id,
        ShipmentDelivered keyed by order_id,
        ShipmentCancelled keyed by order_id,
    }
}

/// Where a shipment is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
enum Status {
    Scheduled,
    Dispatched,
    Delivered,
    Cancelled,
}

impl Status {
    fn name(self) -> &'static str {
        match self {
            Status::Scheduled => "scheduled",
            Status::Dispatched => "dispatched",
            Status::Delivered => "delivered",
            Status::Cancelled => "cancelled",
        }
    }
}

/// The shipping domain: one shipment per paid order.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Shipping {
    shipments: BTreeMap<String, Status>,
    /// Every order shipping has seen cancelled, so a late capture schedules nothing.
    cancelled_orders: BTreeSet<String>,
}

impl Shipping {
    /// Moves the order's shipment from `from` to `to`; any other state is left alone.
    fn transition(&mut self, order_id: &str, from: Status, to: Status) {
        if let Some(status) = self.shipments.get_mut(order_id) {
            if *status == from {
                *status = to;
            }
        }
    }
}

impl Domain for Shipping {
    const NAME: &'static str = "shipping";
    type Event = ShippingEvent;

    fn subscriptions() -> &'static [&'static str] {
        &[
            payments::PaymentCaptured::TYPE,
            orders::OrderCancelled::TYPE,
        ]
    }

    fn ingress() -> &'static [&'static str] {
        &[ShipmentDispatched::TYPE, ShipmentDelivered::TYPE]
    }

    // Every input is about one order, keyed by the order id; a shipment never depends on another.
    fn partitioning() -> Partitioning {
        Partitioning::ByKey { inputs: &[] }
    }

    fn validate(&self, proposed: &ShippingEvent) -> Result<(), Rejection> {
        let (order_id, required, verb) = match proposed {
            ShippingEvent::ShipmentDispatched(e) => (&e.order_id, Status::Scheduled, "dispatch"),
            ShippingEvent::ShipmentDelivered(e) => (&e.order_id, Status::Dispatched, "deliver"),
            // Not ingress: the runtime never proposes these.
            ShippingEvent::ShipmentScheduled(_) | ShippingEvent::ShipmentCancelled(_) => {
                return Ok(())
            }
        };
        let why = match self.shipments.get(order_id) {
            Some(status) if *status == required => return Ok(()),
            None => "no shipment is scheduled for it".to_owned(),
            Some(Status::Scheduled) => "its shipment has not been dispatched".to_owned(),
            Some(status) => format!("its shipment is already {}", status.name()),
        };
        Err(Rejection::new(format!(
            "cannot {verb} order \"{order_id}\": {why}"
        )))
    }

    fn handle(
        &mut self,
        incoming: &Incoming<'_>,
        out: &mut Outbox<ShippingEvent>,
    ) -> Result<(), HandleError> {
        match incoming.event_type() {
            payments::PaymentCaptured::TYPE => {
                let captured: payments::PaymentCaptured = incoming.data()?;
                let order_id = captured.order_id;
                let known = self.shipments.contains_key(&order_id);
                if !known && !self.cancelled_orders.contains(&order_id) {
                    out.emit(ShipmentScheduled { order_id });
                }
                Ok(())
            }
            orders::OrderCancelled::TYPE => {
                let cancelled: orders::OrderCancelled = incoming.data()?;
                let order_id = cancelled.order_id;
                self.cancelled_orders.insert(order_id.clone());
                // Dispatched or delivered goods cannot be called back: those stay as they are.
                if self.shipments.get(&order_id) == Some(&Status::Scheduled) {
                    out.emit(ShipmentCancelled { order_id });
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn apply(&mut self, event: &ShippingEvent) {
        match event {
            ShippingEvent::ShipmentScheduled(e) => {
                self.shipments
                    .entry(e.order_id.clone())
                    .or_insert(Status::Scheduled);
            }
            ShippingEvent::ShipmentDispatched(e) => {
                self.transition(&e.order_id, Status::Scheduled, Status::Dispatched)
            }
            ShippingEvent::ShipmentDelivered(e) => {
                self.transition(&e.order_id, Status::Dispatched, Status::Delivered)
            }
            ShippingEvent::ShipmentCancelled(e) => {
                self.transition(&e.order_id, Status::Scheduled, Status::Cancelled)
            }
        }
    }

    fn entity(&self, key: &str) -> Option<Value> {
        let status = self.shipments.get(key)?;
        Some(json!({ "order_id": key, "status": status.name() }))
    }
}
