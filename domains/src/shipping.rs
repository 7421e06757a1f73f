//! `shipping`: a shipment per paid order, from scheduled to delivered.
//!
//! On `payments.PaymentCaptured` it schedules a shipment, unless it has already seen the
//! order cancelled (payments does not capture after a cancellation, but the two events come
//! from different streams, so shipping guards it too). Ingress `ShipmentDispatched` and
//! `ShipmentDelivered` move the shipment on, each only from the step before. On
//! `orders.OrderCancelled` a scheduled shipment is cancelled; a dispatched or delivered one
//! cannot be, and the cancel is ignored (see the cancellation window in [`crate::orders`]).

use std::collections::{BTreeMap, BTreeSet};

use herald_runtime::prelude::*;

use crate::events::orders::OrderCancelled;
use crate::events::payments::PaymentCaptured;
use crate::events::shipping::{ShipmentCancelled, ShipmentScheduled, ShippingEvent};

herald_runtime::inputs! {
    /// What shipping reacts to: a paid order to ship, a cancelled one to call off.
    pub enum ShippingInput {
        PaymentCaptured,
        OrderCancelled,
    }
}

/// One order's shipment, as `GET /v1/domains/shipping/entities/{order_id}` answers it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ShipmentView {
    /// The order.
    pub order_id: String,
    /// `scheduled`, `dispatched`, `delivered` or `cancelled`.
    pub status: &'static str,
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
    type Event = ShippingEvent;
    type Input = ShippingInput;
    type Entity = ShipmentView;

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
        input: ShippingInput,
        out: &mut Outbox<ShippingEvent>,
    ) -> Result<(), HandleError> {
        match input {
            ShippingInput::PaymentCaptured(captured) => {
                let order_id = captured.order_id;
                let known = self.shipments.contains_key(&order_id);
                if !known && !self.cancelled_orders.contains(&order_id) {
                    out.emit(ShipmentScheduled { order_id });
                }
            }
            ShippingInput::OrderCancelled(cancelled) => {
                let order_id = cancelled.order_id;
                self.cancelled_orders.insert(order_id.clone());
                // Dispatched or delivered goods cannot be called back: those stay as they are.
                if self.shipments.get(&order_id) == Some(&Status::Scheduled) {
                    out.emit(ShipmentCancelled { order_id });
                }
            }
        }
        Ok(())
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

    fn keys(&self, after: Option<&str>, limit: usize) -> Vec<String> {
        keys_after(&self.shipments, after, limit)
    }

    fn entity(&self, key: &str) -> Option<ShipmentView> {
        let status = self.shipments.get(key)?;
        Some(ShipmentView {
            order_id: key.to_owned(),
            status: status.name(),
        })
    }
}
