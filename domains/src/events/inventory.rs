//! Events of `inventory`: stock added, and reserved, rejected, released or shipped per order.

/// Stock of a sku arrived.
#[herald_runtime::payload]
pub struct StockAdded {
    /// The stock-keeping unit; the entity key.
    #[schemars(length(min = 1))]
    pub sku: String,
    /// How many units arrived; at least one.
    #[schemars(range(min = 1))]
    pub quantity: u64,
}

/// Every line of an order was set aside.
#[herald_runtime::payload]
pub struct StockReserved {
    /// The order; the entity key.
    pub order_id: String,
    /// What was set aside, one line per sku.
    pub lines: Vec<StockLine>,
}

/// An order could not be reserved in full, so nothing was set aside.
#[herald_runtime::payload]
pub struct StockRejected {
    /// The order; the entity key.
    pub order_id: String,
    /// Which sku fell short, and by how much.
    pub reason: String,
}

/// An order's reserved stock went back on the shelf (payment declined or order cancelled).
#[herald_runtime::payload]
pub struct StockReleased {
    /// The order; the entity key.
    pub order_id: String,
    /// What was released: exactly what had been reserved.
    pub lines: Vec<StockLine>,
}

/// An order's reserved stock left the warehouse.
#[herald_runtime::payload]
pub struct StockShipped {
    /// The order; the entity key.
    pub order_id: String,
    /// What shipped: exactly what had been reserved.
    pub lines: Vec<StockLine>,
}

/// A quantity of one sku.
#[herald_runtime::payload]
pub struct StockLine {
    /// The stock-keeping unit.
    pub sku: String,
    /// How many units.
    pub quantity: u64,
}

herald_runtime::events! {
    /// What the inventory domain records.
    pub enum InventoryEvent in "inventory" {
        StockAdded keyed by sku from clients,
        StockReserved keyed by order_id,
        StockRejected keyed by order_id,
        StockReleased keyed by order_id,
        StockShipped keyed by order_id,
    }
}
