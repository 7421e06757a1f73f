//! `laggard`: a slow consumer of `feeder.Fed` (it spends [`super::slowness`] on each),
//! with an ingress type of its own, for the overload tests. Armed with
//! [`super::MISWIRE_VAR`], it misspells its subscription or ingress type, for the tests of
//! the wiring check.

use std::collections::BTreeMap;

use herald_runtime::{Domain, HandleError, Incoming, Outbox, Rejection};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::feeder::Fed;

/// A client poked a key of the laggard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Poked {
    /// The entity key.
    #[schemars(length(min = 1))]
    pub key: String,
}

herald_runtime::events! {
    /// What the laggard records.
    pub enum LaggardEvent in "laggard" {
        Poked keyed by key,
    }
}

/// Counts per key: pokes taken in, feeder events consumed.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Laggard {
    poked: BTreeMap<String, u64>,
    consumed: BTreeMap<String, u64>,
}

impl Domain for Laggard {
    const NAME: &'static str = "laggard";
    type Event = LaggardEvent;

    fn subscriptions() -> &'static [&'static str] {
        match super::miswired_subscription() {
            true => &["feeder.Fedd"],
            false => &[Fed::TYPE],
        }
    }

    fn ingress() -> &'static [&'static str] {
        match super::miswired_ingress() {
            true => &["laggard.Pokd"],
            false => &[Poked::TYPE],
        }
    }

    fn validate(&self, _: &LaggardEvent) -> Result<(), Rejection> {
        Ok(())
    }

    fn handle(
        &mut self,
        incoming: &Incoming<'_>,
        _: &mut Outbox<LaggardEvent>,
    ) -> Result<(), HandleError> {
        let fed: Fed = incoming.data()?;
        let slowness = super::slowness();
        if !slowness.is_zero() {
            std::thread::sleep(slowness);
        }
        *self.consumed.entry(fed.key).or_default() += 1;
        Ok(())
    }

    fn apply(&mut self, event: &LaggardEvent) {
        let LaggardEvent::Poked(poked) = event;
        *self.poked.entry(poked.key.clone()).or_default() += 1;
    }

    fn entity(&self, key: &str) -> Option<Value> {
        let poked = self.poked.get(key).copied().unwrap_or(0);
        let consumed = self.consumed.get(key).copied().unwrap_or(0);
        if poked == 0 && consumed == 0 {
            return None;
        }
        Some(json!({ "key": key, "poked": poked, "consumed": consumed }))
    }
}
