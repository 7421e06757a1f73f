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

use herald_runtime::prelude::*;

use crate::events::inventory::{
    StockAdded, StockRejected, StockReleased, StockReserved, StockShipped,
};
use crate::events::orders::{OrderCancelled, OrderPlaced};
use crate::events::payments::{CreditGranted, PaymentCaptured, PaymentDeclined, PaymentRefunded};
use crate::events::shipping::{
    ShipmentCancelled, ShipmentDelivered, ShipmentDispatched, ShipmentScheduled,
};

herald_runtime::events! {
    /// The events analytics owns: none. The enum has no variants, so no value of it exists
    /// and "analytics emits nothing" is checked by the compiler.
    pub enum AnalyticsEvent in "analytics" {}
}

herald_runtime::inputs! {
    /// Every event type of the other domains: analytics consumes them all, and reads the
    /// data of two (the others it only counts, so their data is not decoded).
    pub enum AnalyticsInput {
        StockAdded(Seen<StockAdded>),
        StockReserved(Seen<StockReserved>),
        StockRejected(Seen<StockRejected>),
        StockReleased(Seen<StockReleased>),
        StockShipped(Seen<StockShipped>),
        OrderPlaced(Seen<OrderPlaced>),
        OrderCancelled(Seen<OrderCancelled>),
        CreditGranted(Seen<CreditGranted>),
        PaymentCaptured,
        PaymentDeclined(Seen<PaymentDeclined>),
        PaymentRefunded,
        ShipmentScheduled(Seen<ShipmentScheduled>),
        ShipmentDispatched(Seen<ShipmentDispatched>),
        ShipmentDelivered(Seen<ShipmentDelivered>),
        ShipmentCancelled(Seen<ShipmentCancelled>),
    }
}

/// Revenue in cents, exactly: a number while it fits in a `u64`, else its decimal digits.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum Cents {
    /// Up to `u64::MAX`.
    Number(u64),
    /// Beyond it (or negative), as decimal digits.
    Digits(String),
}

/// The answer to the `summary` query.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Summary {
    /// Events seen, per full type name.
    pub events_by_type: BTreeMap<String, u64>,
    /// Orders placed.
    pub orders_placed: u64,
    /// Orders delivered.
    pub orders_delivered: u64,
    /// Orders rejected: out of stock or payment declined.
    pub orders_rejected: u64,
    /// Orders cancelled.
    pub orders_cancelled: u64,
    /// Captured minus refunded, in cents.
    pub revenue: Cents,
}

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
    fn revenue(&self) -> Cents {
        match self.captured.checked_sub(self.refunded) {
            Some(net) => {
                u64::try_from(net).map_or_else(|_| Cents::Digits(net.to_string()), Cents::Number)
            }
            // A refund follows its capture in the payments stream, so this cannot happen;
            // were it to, the figure is shown with its sign rather than clamped to zero.
            None => Cents::Digits(format!("-{}", self.refunded - self.captured)),
        }
    }
}

impl Domain for Analytics {
    type Event = AnalyticsEvent;
    type Input = AnalyticsInput;
    /// Analytics answers no entities: only `summary`.
    type Entity = ();

    fn queries() -> Vec<Query> {
        vec![Query::of::<Summary>("summary")]
    }

    fn handle(
        &mut self,
        input: AnalyticsInput,
        _out: &mut Outbox<AnalyticsEvent>,
    ) -> Result<(), HandleError> {
        use AnalyticsInput as In;
        // No `+= 1` below can overflow: a log holds fewer than u64::MAX events.
        *self
            .events_by_type
            .entry(input.type_name().to_owned())
            .or_default() += 1;
        match input {
            In::OrderPlaced(_) => self.orders_placed += 1,
            In::OrderCancelled(_) => self.orders_cancelled += 1,
            In::StockRejected(_) | In::PaymentDeclined(_) => self.orders_rejected += 1,
            In::ShipmentDelivered(_) => self.orders_delivered += 1,
            // Below 2^128 whatever the log: fewer than 2^64 amounts of under 2^64 each.
            In::PaymentCaptured(captured) => self.captured += u128::from(captured.amount),
            In::PaymentRefunded(refunded) => self.refunded += u128::from(refunded.amount),
            In::StockAdded(_)
            | In::StockReserved(_)
            | In::StockReleased(_)
            | In::StockShipped(_)
            | In::CreditGranted(_)
            | In::ShipmentScheduled(_)
            | In::ShipmentDispatched(_)
            | In::ShipmentCancelled(_) => {}
        }
        Ok(())
    }

    fn apply(&mut self, event: &AnalyticsEvent) {
        match *event {}
    }

    fn entity(&self, _key: &str) -> Option<()> {
        None
    }

    fn query(&self, name: &str, _params: &Params) -> Result<serde_json::Value, QueryError> {
        match name {
            "summary" => answer(&Summary {
                events_by_type: self.events_by_type.clone(),
                orders_placed: self.orders_placed,
                orders_delivered: self.orders_delivered,
                orders_rejected: self.orders_rejected,
                orders_cancelled: self.orders_cancelled,
                revenue: self.revenue(),
            }),
            _ => Err(QueryError::unknown::<Self>(name)),
        }
    }
}
