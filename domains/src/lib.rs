//! Herald's domain modules: the order-fulfillment example, a choreographed saga with
//! compensation.
//!
//! # Layout
//!
//! The event types live in [`events`], one module per owning domain, so domains share
//! types and nothing else. Then one file per domain, each with its
//! [`inputs!`](herald_runtime::inputs) enum (what it consumes) and its
//! [`Domain`](herald_runtime::Domain) implementation:
//!
//! - [`orders`]: takes orders in (`OrderPlaced`, `OrderCancelled`) and tracks each order's
//!   status from the other domains' events.
//! - [`inventory`]: stock per sku; reserves all lines of an order or rejects it, releases on a
//!   declined payment or a cancellation, ships on dispatch.
//! - [`payments`]: credit per customer; captures or declines once stock is reserved, refunds a
//!   capture whose order was cancelled.
//! - [`shipping`]: schedules a shipment per paid order; dispatch and delivery come in as
//!   ingress.
//! - [`analytics`]: a read model over everything; emits nothing.
//!
//! The saga: `OrderPlaced` → `StockReserved` | `StockRejected` → `PaymentCaptured` |
//! `PaymentDeclined` (→ `StockReleased`) → `ShipmentScheduled` → `ShipmentDispatched`
//! (→ `StockShipped`) → `ShipmentDelivered`. An `OrderCancelled` before shipping releases the
//! stock, refunds the payment and cancels the shipment. Every saga event carries `order_id`
//! and is keyed by it.
//!
//! # Adding a domain
//!
//! Write one file, `src/<name>.rs`, with a type implementing
//! [`Domain`](herald_runtime::Domain), its event enum declared with
//! [`herald_runtime::events!`] and what it consumes with [`herald_runtime::inputs!`]; then
//! add `pub mod <name>;` and one line to [`saga`], both in alphabetical order. Event types
//! other domains consume belong in `src/events/<name>.rs`, so they import types, not the
//! domain. The node checks the wiring (consumed types, owners, schemas) at start.

pub mod analytics;
pub mod events;
#[cfg(feature = "fault-injection")]
pub mod faults;
pub mod inventory;
pub mod orders;
pub mod payments;
pub mod shipping;

use herald_runtime::DomainEntry;

/// The saga's domains, alphabetically: one line per domain.
pub fn saga() -> Vec<DomainEntry> {
    vec![
        DomainEntry::of::<analytics::Analytics>(),
        DomainEntry::of::<inventory::Inventory>(),
        DomainEntry::of::<orders::Orders>(),
        DomainEntry::of::<payments::Payments>(),
        DomainEntry::of::<shipping::Shipping>(),
    ]
}

/// Every domain this build knows: the saga's, then, in test builds with the
/// `fault-injection` feature, the fault-test domains.
pub fn all() -> Vec<DomainEntry> {
    #[allow(unused_mut)] // extended only with `fault-injection`
    let mut all = saga();
    #[cfg(feature = "fault-injection")]
    all.extend([
        DomainEntry::of::<faults::faulty::Faulty>(),
        DomainEntry::of::<faults::feeder::Feeder>(),
        faults::laggard::entry(),
        DomainEntry::of::<faults::scales::Scales>(),
    ]);
    all
}

/// Their names, for validating config.
pub fn names() -> Vec<&'static str> {
    all().iter().map(|entry| entry.name).collect()
}
