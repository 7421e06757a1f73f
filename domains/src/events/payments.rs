//! Events of `payments`: credit granted, and payments captured, declined or refunded per order.

/// A customer was given credit to spend.
#[herald_runtime::payload]
pub struct CreditGranted {
    /// The customer; the entity key.
    #[schemars(length(min = 1))]
    pub customer: String,
    /// How much, in cents; at least one.
    #[schemars(range(min = 1))]
    pub amount: u64,
}

/// An order's total was taken from its customer's credit.
#[herald_runtime::payload]
pub struct PaymentCaptured {
    /// The order; the entity key.
    pub order_id: String,
    /// Who paid.
    pub customer: String,
    /// How much, in cents.
    pub amount: u64,
}

/// An order's customer had too little credit, or the order could not be priced.
#[herald_runtime::payload]
pub struct PaymentDeclined {
    /// The order; the entity key.
    pub order_id: String,
    /// Who would have paid.
    pub customer: String,
    /// The order's total, in cents; absent when it passes `u64::MAX` (see `reason`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<u64>,
    /// The credit there was against the total, or why there is no total.
    pub reason: String,
}

/// A captured payment went back to the customer because the order was cancelled.
#[herald_runtime::payload]
pub struct PaymentRefunded {
    /// The order; the entity key.
    pub order_id: String,
    /// Who is refunded.
    pub customer: String,
    /// How much, in cents: what was captured.
    pub amount: u64,
}

herald_runtime::events! {
    /// What the payments domain records.
    pub enum PaymentsEvent in "payments" {
        CreditGranted keyed by customer from clients,
        PaymentCaptured keyed by order_id,
        PaymentDeclined keyed by order_id,
        PaymentRefunded keyed by order_id,
    }
}
