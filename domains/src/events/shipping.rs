//! Events of `shipping`: a shipment per paid order, scheduled, dispatched, delivered or cancelled.

/// A paid order's shipment was scheduled.
#[herald_runtime::payload]
pub struct ShipmentScheduled {
    /// The order; the entity key.
    pub order_id: String,
}

/// A scheduled shipment left the warehouse.
#[herald_runtime::payload]
pub struct ShipmentDispatched {
    /// The order; the entity key.
    #[schemars(length(min = 1))]
    pub order_id: String,
}

/// A dispatched shipment reached the customer.
#[herald_runtime::payload]
pub struct ShipmentDelivered {
    /// The order; the entity key.
    #[schemars(length(min = 1))]
    pub order_id: String,
}

/// A scheduled shipment was called off because its order was cancelled.
#[herald_runtime::payload]
pub struct ShipmentCancelled {
    /// The order; the entity key.
    pub order_id: String,
}

herald_runtime::events! {
    /// What the shipping domain records.
    pub enum ShippingEvent in "shipping" {
        ShipmentScheduled keyed by order_id,
        ShipmentDispatched keyed by order_id from clients,
        ShipmentDelivered keyed by order_id from clients,
        ShipmentCancelled keyed by order_id,
    }
}
