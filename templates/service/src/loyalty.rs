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

/// Points per customer, and the customer of each order not yet delivered.
#[derive(Default, Serialize, Deserialize)]
pub struct Loyalty {
    points: BTreeMap<String, u64>,
    customers: BTreeMap<String, String>,
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
        match input {
            LoyaltyInput::OrderPlaced(placed) => {
                self.customers.insert(placed.order_id, placed.customer);
            }
            LoyaltyInput::ShipmentDelivered(delivered) => {
                let order_id = delivered.order_id;
                if let Some(customer) = self.customers.remove(&order_id) {
                    out.emit(PointsAwarded { customer, order_id });
                }
            }
        }
        Ok(())
    }

    fn apply(&mut self, event: &LoyaltyEvent) {
        match event {
            LoyaltyEvent::PointsAwarded(e) => {
                *self.points.entry(e.customer.clone()).or_default() += 1;
            }
            LoyaltyEvent::PointsRedeemed(e) => {
                // validate made sure it is covered
                *self.points.entry(e.customer.clone()).or_default() -= e.points;
            }
        }
    }

    fn entity(&self, customer: &str) -> Option<Balance> {
        self.points.get(customer).map(|&points| Balance { points })
    }
}
