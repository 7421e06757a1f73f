//! Events of `orders`: orders placed and cancelled by clients.

use super::inventory;

/// A client placed an order.
#[herald_runtime::payload]
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
#[herald_runtime::payload]
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
#[herald_runtime::payload]
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
        OrderPlaced keyed by order_id from clients,
        OrderCancelled keyed by order_id from clients,
    }
}
