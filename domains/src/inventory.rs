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

use herald_runtime::prelude::*;

use crate::events::inventory::{
    InventoryEvent, StockLine, StockRejected, StockReleased, StockReserved, StockShipped,
};
use crate::events::orders::{OrderCancelled, OrderPlaced};
use crate::events::payments::PaymentDeclined;
use crate::events::shipping::ShipmentDispatched;

herald_runtime::inputs! {
    /// What inventory reacts to: orders to reserve for, and what frees or ships a reservation.
    pub enum InventoryInput {
        OrderPlaced,
        OrderCancelled,
        PaymentDeclined,
        ShipmentDispatched,
    }
}

/// One sku's stock, as `GET /v1/domains/inventory/entities/{sku}` answers it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct StockView {
    /// The stock-keeping unit.
    pub sku: String,
    /// Units on the shelf, free to reserve.
    pub available: u64,
    /// Units set aside for orders not yet shipped.
    pub reserved: u64,
    /// Units that left the warehouse.
    pub shipped: u64,
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
    fn reserve(&self, placed: OrderPlaced, out: &mut Outbox<InventoryEvent>) {
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
    type Event = InventoryEvent;
    type Input = InventoryInput;
    type Entity = StockView;

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
        input: InventoryInput,
        out: &mut Outbox<InventoryEvent>,
    ) -> Result<(), HandleError> {
        match input {
            InventoryInput::OrderPlaced(placed) => {
                // Decided already (a redelivery) or cancelled first: reserve nothing.
                if !self.allocations.contains_key(&placed.order_id) {
                    self.reserve(placed, out);
                }
            }
            InventoryInput::OrderCancelled(cancelled) => {
                match self.allocations.get(&cancelled.order_id) {
                    None => {
                        self.allocations
                            .insert(cancelled.order_id, Allocation::Cancelled);
                    }
                    Some(_) => self.release(cancelled.order_id, out),
                }
            }
            InventoryInput::PaymentDeclined(declined) => self.release(declined.order_id, out),
            InventoryInput::ShipmentDispatched(dispatched) => {
                if let Some(Allocation::Reserved(lines)) =
                    self.allocations.get(&dispatched.order_id)
                {
                    let lines = lines.clone();
                    let order_id = dispatched.order_id;
                    out.emit(StockShipped { order_id, lines });
                }
            }
        }
        Ok(())
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

    fn keys(&self, after: Option<&str>, limit: usize) -> Vec<String> {
        keys_after(&self.stock, after, limit)
    }

    fn entity(&self, key: &str) -> Option<StockView> {
        let stock = self.stock.get(key)?;
        Some(StockView {
            sku: key.to_owned(),
            available: stock.available,
            reserved: stock.reserved,
            shipped: stock.shipped,
        })
    }
}
