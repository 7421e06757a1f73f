//! `loyalty`: a point per delivered order for its customer, who may redeem them.

use herald_domains::events::{orders::OrderPlaced, shipping::ShipmentDelivered};
use herald_runtime::prelude::*;

herald_runtime::events! {
    /// What loyalty records.
    pub enum LoyaltyEvent in "loyalty" {
        /// A delivered order earned its customer a point.
        PointsAwarded { customer: String, order_id: String } keyed by customer,
        /// A customer spent points, at least one.
        PointsRedeemed { customer: String, #[schemars(range(min = 1))] points: u64 }
            keyed by customer from clients,
    }
}

herald_runtime::inputs! {
    /// Who placed each order, and which were delivered.
    pub enum LoyaltyInput { OrderPlaced, ShipmentDelivered }
}

/// A customer's points, as `GET /v1/domains/loyalty/entities/{customer}` answers them.
#[derive(Serialize, JsonSchema)]
pub struct Balance {
    /// Points to spend.
    pub points: u64,
}

/// Points per customer; per order not yet awarded, its customer once it is placed (`None`:
/// delivered, but its `OrderPlaced` not seen yet: the two come from different streams).
#[derive(Default, Serialize, Deserialize)]
pub struct Loyalty {
    points: BTreeMap<String, u64>,
    orders: BTreeMap<String, Option<String>>,
}

impl Domain for Loyalty {
    type Event = LoyaltyEvent;
    type Input = LoyaltyInput;
    type Entity = Balance;

    fn validate(&self, proposed: &LoyaltyEvent) -> Result<(), Rejection> {
        let LoyaltyEvent::PointsRedeemed(r) = proposed else {
            return Ok(());
        };
        let has = self.points.get(&r.customer).copied().unwrap_or(0);
        Rejection::unless(has >= r.points, format!("{} has {has} points", r.customer))
    }

    fn handle(&mut self, input: LoyaltyInput, out: &mut Outbox<LoyaltyEvent>) -> Handled {
        // Placed and delivered may arrive in either order: award once both are in.
        let (order_id, placed) = match input {
            LoyaltyInput::OrderPlaced(placed) => (placed.order_id, Some(placed.customer)),
            LoyaltyInput::ShipmentDelivered(delivered) => (delivered.order_id, None),
        };
        match (self.orders.remove(&order_id), placed) {
            (Some(Some(customer)), None) | (Some(None), Some(customer)) => {
                out.emit(PointsAwarded { customer, order_id });
            }
            (_, placed) => {
                self.orders.insert(order_id, placed);
            }
        }
        Ok(())
    }

    fn apply(&mut self, event: &LoyaltyEvent) {
        let (customer, earned, spent) = match event {
            LoyaltyEvent::PointsAwarded(e) => (&e.customer, 1, 0),
            LoyaltyEvent::PointsRedeemed(e) => (&e.customer, 0, e.points),
        };
        let points = self.points.entry(customer.clone()).or_default();
        *points = *points + earned - spent; // validate made sure a redeem is covered
    }

    fn entity(&self, customer: &str) -> Option<Balance> {
        self.points.get(customer).map(|&points| Balance { points })
    }
}
