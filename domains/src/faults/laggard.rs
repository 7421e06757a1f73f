//! `laggard`: a slow consumer of `feeder.Fed` (it spends [`super::slowness`] on each),
//! with an ingress type of its own, for the overload tests. Armed with
//! [`super::MISWIRE_VAR`], it is registered consuming `feeder.Fedd` instead, a type no
//! registered domain owns, for the tests of the wiring check.

use std::collections::BTreeMap;

use herald_runtime::prelude::*;
use herald_runtime::DomainEntry;

use super::feeder::Fed;
use super::scales::Weighed;

/// A client poked a key of the laggard.
#[payload]
pub struct Poked {
    /// The entity key.
    #[schemars(length(min = 1))]
    pub key: String,
}

herald_runtime::events! {
    /// What the laggard records.
    pub enum LaggardEvent in "laggard" {
        Poked keyed by key from clients,
    }
}

herald_runtime::inputs! {
    /// What the laggard consumes, slowly.
    pub enum LaggardInput {
        Fed,
        Weighed,
    }
}

/// A key's counts.
#[derive(Debug, Serialize, JsonSchema)]
pub struct LaggardCounts {
    /// The key.
    pub key: String,
    /// Pokes taken in.
    pub poked: u64,
    /// Feeder events consumed.
    pub consumed: u64,
    /// Grams of `scales.Weighed` consumed (shown once there are any).
    #[serde(skip_serializing_if = "is_zero")]
    pub grams: u64,
}

fn is_zero(grams: &u64) -> bool {
    *grams == 0
}

/// Counts per key: pokes taken in, feeder events consumed.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Laggard {
    poked: BTreeMap<String, u64>,
    consumed: BTreeMap<String, u64>,
    grams: BTreeMap<String, u64>,
}

impl Laggard {
    /// Counts one consumed event of `key`, slowly.
    fn consume(&mut self, key: String) {
        let slowness = super::slowness();
        if !slowness.is_zero() {
            std::thread::sleep(slowness);
        }
        *self.consumed.entry(key).or_default() += 1;
    }
}

impl Domain for Laggard {
    type Event = LaggardEvent;
    type Input = LaggardInput;
    type Entity = LaggardCounts;

    fn handle(
        &mut self,
        input: LaggardInput,
        _: &mut Outbox<LaggardEvent>,
    ) -> Result<(), HandleError> {
        match input {
            LaggardInput::Fed(fed) => self.consume(fed.key),
            LaggardInput::Weighed(weighed) => {
                let sum = self.grams.entry(weighed.key).or_default();
                *sum = sum.saturating_add(weighed.grams);
            }
        }
        Ok(())
    }

    fn apply(&mut self, event: &LaggardEvent) {
        let LaggardEvent::Poked(poked) = event;
        *self.poked.entry(poked.key.clone()).or_default() += 1;
    }

    fn entity(&self, key: &str) -> Option<LaggardCounts> {
        let poked = self.poked.get(key).copied().unwrap_or(0);
        let consumed = self.consumed.get(key).copied().unwrap_or(0);
        let grams = self.grams.get(key).copied().unwrap_or(0);
        if poked == 0 && consumed == 0 && grams == 0 {
            return None;
        }
        Some(LaggardCounts {
            key: key.to_owned(),
            poked,
            consumed,
            grams,
        })
    }
}

/// A misspelt feeder type, of a feeder no build registers: what the miswired laggard
/// consumes.
mod misspelt {
    /// `Fed`, misspelt.
    #[herald_runtime::payload]
    pub struct Fedd {
        /// The entity key.
        pub key: String,
    }

    herald_runtime::events! {
        /// A feeder that is never registered.
        pub enum MisspeltFeederEvent in "feeder" {
            Fedd keyed by key,
        }
    }
}

herald_runtime::inputs! {
    /// The laggard's input, misspelt.
    pub enum MiswiredInput {
        Fedd(misspelt::Fedd),
    }
}

/// The laggard as a domain author might miswire it: consuming a type nobody registers.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Miswired(Laggard);

impl Domain for Miswired {
    type Event = LaggardEvent;
    type Input = MiswiredInput;
    type Entity = LaggardCounts;

    fn handle(
        &mut self,
        input: MiswiredInput,
        _: &mut Outbox<LaggardEvent>,
    ) -> Result<(), HandleError> {
        let MiswiredInput::Fedd(fedd) = input;
        self.0.consume(fedd.key);
        Ok(())
    }

    fn apply(&mut self, event: &LaggardEvent) {
        self.0.apply(event);
    }

    fn entity(&self, key: &str) -> Option<LaggardCounts> {
        self.0.entity(key)
    }
}

/// The laggard's registration: miswired while [`super::MISWIRE_VAR`] says so.
pub fn entry() -> DomainEntry {
    match super::miswired_subscription() {
        true => DomainEntry::of::<Miswired>(),
        false => DomainEntry::of::<Laggard>(),
    }
}
