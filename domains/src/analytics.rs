//! `analytics`: a read model over every other domain's events; it emits nothing.
//!
//! It counts every event by type and keeps a few business figures, answered by the `summary`
//! query: orders placed, delivered, rejected (out of stock or payment declined) and
//! cancelled, and revenue (captured minus refunded, in cents).
//!
//! # Figures
//!
//! A read model cannot refuse what happened, so its figures are kept wide enough never to
//! overflow. Counts of events are `u64`: a log's offsets are `u64`, so it holds fewer events
//! than that. Captured and refunded cents are `u128` sums of `u64` amounts over fewer than
//! 2^64 events, so they stay below 2^128. Revenue is answered exactly: a JSON number while it
//! fits in a `u64` (up to 18446744073709551615), beyond that its decimal digits as a string
//! (such as `"36893488147419103230"`), since a JSON number past `u64` is not read back exactly
//! by most parsers.

use std::collections::BTreeMap;

use herald_runtime::{Domain, HandleError, Incoming, Outbox, Params, QueryError, Rejection};
use serde_json::{json, Value};

use crate::{inventory, orders, payments, shipping};

herald_runtime::events! {
    /// The events analytics owns: none. The enum has no variants, so no value of it exists
    /// and "analytics emits nothing" is checked by the compiler.
    pub enum AnalyticsEvent in "analytics" {}
}

/// Every event type of the other domains: analytics consumes them all.
const EVERY_OTHER_TYPE: &[&str] = &[
    inventory::StockAdded::TYPE,
    inventory::StockReserved::TYPE,
    inventory::StockRejected::TYPE,
    inventory::StockReleased::TYPE,
    inventory::StockShipped::TYPE,
    orders::OrderPlaced::TYPE,
    orders::OrderCancelled::TYPE,
    payments::CreditGranted::TYPE,
    payments::PaymentCaptured::TYPE,
    payments::PaymentDeclined::TYPE,
    payments::PaymentRefunded::TYPE,
    shipping::ShipmentScheduled::TYPE,
    shipping::ShipmentDispatched::TYPE,
    shipping::ShipmentDelivered::TYPE,
    shipping::ShipmentCancelled::TYPE,
];

/// The analytics domain: counts and sums over the whole saga.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Analytics {
    events_by_type: BTreeMap<String, u64>,
    orders_placed: u64,
    orders_delivered: u64,
    orders_rejected: u64,
    orders_cancelled: u64,
    // u128, not u64: a u64 value decodes as the same u128 (bincode's varint), so snapshots
    // from before still load.
    captured: u128,
    refunded: u128,
}

impl Analytics {
    /// Captured minus refunded, in cents, exactly (see the module's Figures).
    fn revenue(&self) -> Value {
        match self.captured.checked_sub(self.refunded) {
            Some(net) => {
                u64::try_from(net).map_or_else(|_| json!(net.to_string()), |net| json!(net))
            }
            // A refund follows its capture in the payments stream, so this cannot happen;
            // were it to, the figure is shown with its sign rather than clamped to zero.
            None => json!(format!("-{}", self.refunded - self.captured)),
        }
    }
}

impl Domain for Analytics {
    const NAME: &'static str = "analytics";
    type Event = AnalyticsEvent;

    fn subscriptions() -> &'static [&'static str] {
        EVERY_OTHER_TYPE
    }

    fn ingress() -> &'static [&'static str] {
        &[]
    }

    fn queries() -> &'static [&'static str] {
        &["summary"]
    }

    fn validate(&self, proposed: &AnalyticsEvent) -> Result<(), Rejection> {
        match *proposed {}
    }

    fn handle(
        &mut self,
        incoming: &Incoming<'_>,
        _out: &mut Outbox<AnalyticsEvent>,
    ) -> Result<(), HandleError> {
        let event_type = incoming.event_type();
        // No `+= 1` below can overflow: a log holds fewer than u64::MAX events.
        *self
            .events_by_type
            .entry(event_type.to_owned())
            .or_default() += 1;
        match event_type {
            orders::OrderPlaced::TYPE => self.orders_placed += 1,
            orders::OrderCancelled::TYPE => self.orders_cancelled += 1,
            inventory::StockRejected::TYPE | payments::PaymentDeclined::TYPE => {
                self.orders_rejected += 1
            }
            shipping::ShipmentDelivered::TYPE => self.orders_delivered += 1,
            payments::PaymentCaptured::TYPE => {
                let captured: payments::PaymentCaptured = incoming.data()?;
                // Below 2^128 whatever the log: fewer than 2^64 amounts of under 2^64 each.
                self.captured += u128::from(captured.amount);
            }
            payments::PaymentRefunded::TYPE => {
                let refunded: payments::PaymentRefunded = incoming.data()?;
                self.refunded += u128::from(refunded.amount);
            }
            _ => {}
        }
        Ok(())
    }

    fn apply(&mut self, event: &AnalyticsEvent) {
        match *event {}
    }

    fn entity(&self, _key: &str) -> Option<Value> {
        None
    }

    fn query(&self, name: &str, _params: &Params) -> Result<Value, QueryError> {
        match name {
            "summary" => Ok(json!({
                "events_by_type": self.events_by_type,
                "orders_placed": self.orders_placed,
                "orders_delivered": self.orders_delivered,
                "orders_rejected": self.orders_rejected,
                "orders_cancelled": self.orders_cancelled,
                "revenue": self.revenue(),
            })),
            _ => Err(QueryError::UnknownQuery {
                name: name.to_owned(),
                known: Self::queries().iter().map(|q| q.to_string()).collect(),
            }),
        }
    }
}
