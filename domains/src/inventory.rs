//! `inventory`: stock per sku, reserved for orders all or nothing.
//!
//! Ingress: `StockAdded`, refused (409) when the sku could no longer count its units in a
//! `u64`. On `orders.OrderPlaced` it reserves every line of the order or rejects the order
//! naming the first sku that falls short. It remembers what it reserved for
//! each order, so that a `payments.PaymentDeclined` or an `orders.OrderCancelled` releases
//! exactly that, and a `shipping.ShipmentDispatched` moves exactly that from reserved to
//! shipped. Stock that has shipped is never released; stock already released never ships
//! (see the cancellation window in [`crate::orders`]).

use std::collections::BTreeMap;

use herald_runtime::{Domain, HandleError, Incoming, Outbox, Rejection};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::{orders, payments, shipping};

/// Stock of a sku arrived.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StockAdded {
    /// The stock-keeping unit; the entity key.
    #[schemars(length(min = 1))]
    pub sku: String,
    /// How many units arrived; at least one.
    #[schemars(range(min = 1))]
    pub quantity: u64,
}

/// Every line of an order was set aside.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StockReserved {
    /// The order; the entity key.
    pub order_id: String,
    /// What was set aside, one line per sku.
    pub lines: Vec<StockLine>,
}

/// An order could not be reserved in full, so nothing was set aside.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StockRejected {
    /// The order; the entity key.
    pub order_id: String,
    /// Which sku fell short, and by how much.
    pub reason: String,
}

/// An order's reserved stock went back on the shelf (payment declined or order cancelled).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StockReleased {
    /// The order; the entity key.
    pub order_id: String,
    /// What was released: exactly what had been reserved.
    pub lines: Vec<StockLine>,
}

/// An order's reserved stock left the warehouse.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StockShipped {
    /// The order; the entity key.
    pub order_id: String,
    /// What shipped: exactly what had been reserved.
    pub lines: Vec<StockLine>,
}

/// A quantity of one sku.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StockLine {
    /// The stock-keeping unit.
    pub sku: String,
    /// How many units.
    pub quantity: u64,
}

herald_runtime::events! {
    /// What the inventory domain records.
    pub enum InventoryEvent in "inventory" {
        StockAdded keyed by sku,
        StockReserved keyed by order_id,
        StockRejected keyed by order_id,
        StockReleased keyed by order_id,
        StockShipped keyed by order_id,
    }
}

/// The units of one sku, by where they are.
///
/// Their sum, every unit the sku ever received, is at most `u64::MAX`: validate refuses
/// stock past it, and reserving, releasing and shipping only move units between the three.
/// So no count here overflows.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct Stock {
    available: u64,
    reserved: u64,
    shipped: u64,
}

impl Stock {
    /// Every unit the sku ever received, if that fits in a `u64` (a log from before
    /// validate refused stock past it may hold more).
    fn received(&self) -> Option<u64> {
        self.available
            .checked_add(self.reserved)?
            .checked_add(self.shipped)
    }
}

/// What inventory did for one order.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
enum Allocation {
    /// Set aside, waiting for dispatch or release.
    Reserved(Vec<StockLine>),
    /// Could not be reserved.
    Rejected,
    /// Went back on the shelf.
    Released,
    /// Left the warehouse.
    Shipped,
    /// Cancelled before inventory decided anything; it must never reserve for it.
    Cancelled,
}

/// The inventory domain: stock per sku and what each order holds of it.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Inventory {
    stock: BTreeMap<String, Stock>,
    allocations: BTreeMap<String, Allocation>,
}

impl Inventory {
    /// Reserves every line of the order, or rejects it naming the first sku short.
    fn reserve(&self, placed: orders::OrderPlaced, out: &mut Outbox<InventoryEvent>) {
        // Orders refuses units past u64 at ingress; a log from before that may hold some, and
        // no sku can have that many, so the order is rejected.
        let wanted = match placed.units_per_sku() {
            Ok(wanted) => wanted,
            Err(too_large) => {
                out.emit(StockRejected {
                    order_id: placed.order_id,
                    reason: format!("cannot reserve: {too_large}"),
                });
                return;
            }
        };
        for line in &wanted {
            let available = self.stock.get(&line.sku).map_or(0, |stock| stock.available);
            if available < line.quantity {
                let reason = format!(
                    "out of stock: sku \"{}\" has {available} available, {} requested",
                    line.sku, line.quantity
                );
                out.emit(StockRejected {
                    order_id: placed.order_id,
                    reason,
                });
                return;
            }
        }
        out.emit(StockReserved {
            order_id: placed.order_id,
            lines: wanted,
        });
    }

    /// Releases what the order holds, if it still holds it.
    fn release(&self, order_id: String, out: &mut Outbox<InventoryEvent>) {
        if let Some(Allocation::Reserved(lines)) = self.allocations.get(&order_id) {
            let lines = lines.clone();
            out.emit(StockReleased { order_id, lines });
        }
    }

    /// Moves each line's units with `shift(stock, quantity)`; skus it never stocked are skipped.
    fn shift(&mut self, lines: &[StockLine], shift: fn(&mut Stock, u64)) {
        for line in lines {
            if let Some(stock) = self.stock.get_mut(&line.sku) {
                shift(stock, line.quantity);
            }
        }
    }
}

impl Domain for Inventory {
    const NAME: &'static str = "inventory";
    type Event = InventoryEvent;

    fn subscriptions() -> &'static [&'static str] {
        &[
            orders::OrderPlaced::TYPE,
            orders::OrderCancelled::TYPE,
            payments::PaymentDeclined::TYPE,
            shipping::ShipmentDispatched::TYPE,
        ]
    }

    fn ingress() -> &'static [&'static str] {
        &[StockAdded::TYPE]
    }

    fn validate(&self, proposed: &InventoryEvent) -> Result<(), Rejection> {
        let added = match proposed {
            InventoryEvent::StockAdded(added) => added,
            // Not ingress: the runtime never proposes these.
            InventoryEvent::StockReserved(_)
            | InventoryEvent::StockRejected(_)
            | InventoryEvent::StockReleased(_)
            | InventoryEvent::StockShipped(_) => return Ok(()),
        };
        // The schema insists on a positive quantity; the sku must still count it exactly.
        let stock = self.stock.get(&added.sku).cloned().unwrap_or_default();
        match stock.received().and_then(|units| units.checked_add(added.quantity)) {
            Some(_) => Ok(()),
            None => Err(Rejection::new(format!(
                "sku \"{}\" cannot take {} more units: it has {} available, {} reserved and {} shipped, and a sku counts at most {} units",
                added.sku,
                added.quantity,
                stock.available,
                stock.reserved,
                stock.shipped,
                u64::MAX
            ))),
        }
    }

    fn handle(
        &mut self,
        incoming: &Incoming<'_>,
        out: &mut Outbox<InventoryEvent>,
    ) -> Result<(), HandleError> {
        match incoming.event_type() {
            orders::OrderPlaced::TYPE => {
                let placed: orders::OrderPlaced = incoming.data()?;
                // Decided already (a redelivery) or cancelled first: reserve nothing.
                if !self.allocations.contains_key(&placed.order_id) {
                    self.reserve(placed, out);
                }
                Ok(())
            }
            orders::OrderCancelled::TYPE => {
                let cancelled: orders::OrderCancelled = incoming.data()?;
                match self.allocations.get(&cancelled.order_id) {
                    None => {
                        self.allocations
                            .insert(cancelled.order_id, Allocation::Cancelled);
                    }
                    Some(_) => self.release(cancelled.order_id, out),
                }
                Ok(())
            }
            payments::PaymentDeclined::TYPE => {
                let declined: payments::PaymentDeclined = incoming.data()?;
                self.release(declined.order_id, out);
                Ok(())
            }
            shipping::ShipmentDispatched::TYPE => {
                let dispatched: shipping::ShipmentDispatched = incoming.data()?;
                if let Some(Allocation::Reserved(lines)) =
                    self.allocations.get(&dispatched.order_id)
                {
                    let lines = lines.clone();
                    let order_id = dispatched.order_id;
                    out.emit(StockShipped { order_id, lines });
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    // Exact for every event validate and handle let through (see [`Stock`]): a reservation
    // takes no more than is available, a release or shipment no more than is reserved.
    // Saturating only matters for a log written before validate refused stock past u64;
    // there it rebuilds the state that log produced, as apply must not fail.
    fn apply(&mut self, event: &InventoryEvent) {
        match event {
            InventoryEvent::StockAdded(added) => {
                let stock = self.stock.entry(added.sku.clone()).or_default();
                stock.available = stock.available.saturating_add(added.quantity);
            }
            InventoryEvent::StockReserved(reserved) => {
                self.shift(&reserved.lines, |stock, quantity| {
                    stock.available = stock.available.saturating_sub(quantity);
                    stock.reserved = stock.reserved.saturating_add(quantity);
                });
                let allocation = Allocation::Reserved(reserved.lines.clone());
                self.allocations
                    .insert(reserved.order_id.clone(), allocation);
            }
            InventoryEvent::StockRejected(rejected) => {
                self.allocations
                    .insert(rejected.order_id.clone(), Allocation::Rejected);
            }
            InventoryEvent::StockReleased(released) => {
                self.shift(&released.lines, |stock, quantity| {
                    stock.reserved = stock.reserved.saturating_sub(quantity);
                    stock.available = stock.available.saturating_add(quantity);
                });
                self.allocations
                    .insert(released.order_id.clone(), Allocation::Released);
            }
            InventoryEvent::StockShipped(shipped) => {
                self.shift(&shipped.lines, |stock, quantity| {
                    stock.reserved = stock.reserved.saturating_sub(quantity);
                    stock.shipped = stock.shipped.saturating_add(quantity);
                });
                self.allocations
                    .insert(shipped.order_id.clone(), Allocation::Shipped);
            }
        }
    }

    fn entity(&self, key: &str) -> Option<Value> {
        let stock = self.stock.get(key)?;
        Some(json!({
            "sku": key,
            "available": stock.available,
            "reserved": stock.reserved,
            "shipped": stock.shipped,
        }))
    }
}
