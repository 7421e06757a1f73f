//! `scales`: an event type that changed, for the tests of upcasting. `scales.Weighed` was
//! `{key, kilos}` (version 1, whole kilograms) and is `{key, grams}` now (version 2): a
//! stored version 1 event is upcast to grams before `scales` applies it, and before
//! `laggard`, which consumes it, handles it.

use std::collections::BTreeMap;

use herald_runtime::prelude::*;

/// A key was weighed.
#[payload]
pub struct Weighed {
    /// The entity key.
    #[schemars(length(min = 1))]
    pub key: String,
    /// The weight, in grams.
    pub grams: u64,
}

/// Version 1 (`kilos`) to version 2 (`grams`).
pub fn upcast_weighed(from: u32, mut data: serde_json::Value) -> Result<serde_json::Value, String> {
    if from != 1 {
        return Err(format!(
            "no version {from} of scales.Weighed was ever written"
        ));
    }
    let object = data.as_object_mut().ok_or("data is not an object")?;
    let kilos = object
        .remove("kilos")
        .and_then(|kilos| kilos.as_u64())
        .ok_or("version 1 has a whole number of kilos")?;
    let grams = kilos
        .checked_mul(1000)
        .ok_or_else(|| format!("{kilos} kilos do not fit in grams"))?;
    object.insert("grams".into(), grams.into());
    Ok(data)
}

herald_runtime::events! {
    /// What the scales record.
    pub enum ScalesEvent in "scales" {
        Weighed keyed by key from clients version 2 upcast upcast_weighed,
    }
}

/// A key's weight.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Weight {
    /// The key.
    pub key: String,
    /// Every weighing summed, in grams.
    pub grams: u64,
}

/// Grams weighed per key.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Scales {
    grams: BTreeMap<String, u64>,
}

impl Domain for Scales {
    type Event = ScalesEvent;
    type Input = NoInput;
    type Entity = Weight;

    fn handle(&mut self, input: NoInput, _: &mut Outbox<ScalesEvent>) -> Result<(), HandleError> {
        match input {}
    }

    fn apply(&mut self, event: &ScalesEvent) {
        let ScalesEvent::Weighed(weighed) = event;
        let sum = self.grams.entry(weighed.key.clone()).or_default();
        *sum = sum.saturating_add(weighed.grams);
    }

    fn entity(&self, key: &str) -> Option<Weight> {
        Some(Weight {
            key: key.to_owned(),
            grams: *self.grams.get(key)?,
        })
    }
}
