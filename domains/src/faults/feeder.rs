//! `feeder`: takes `feeder.Fed` in, keyed by `key`, for the fault tests to consume.

use std::collections::BTreeMap;

use herald_runtime::prelude::*;

/// One numbered event for a key; `fault` marks it for `faulty` to fail on.
#[payload]
pub struct Fed {
    /// The entity key.
    #[schemars(length(min = 1))]
    pub key: String,
    /// The client's number for it, to check order.
    pub n: u64,
    /// `"panic"` or `"error"`: how `faulty` fails on it while faults are armed;
    /// `"validate-panic"`: the feeder itself panics validating it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<String>,
}

herald_runtime::events! {
    /// What the feeder records.
    pub enum FeederEvent in "feeder" {
        Fed keyed by key from clients,
    }
}

/// How many events a key was fed.
#[derive(Debug, Serialize, JsonSchema)]
pub struct FedCount {
    /// The key.
    pub key: String,
    /// Events fed to it.
    pub fed: u64,
}

/// How many events each key was fed.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Feeder {
    fed: BTreeMap<String, u64>,
}

impl Domain for Feeder {
    type Event = FeederEvent;
    type Input = NoInput;
    type Entity = FedCount;

    fn validate(&self, proposed: &FeederEvent) -> Result<(), Rejection> {
        let FeederEvent::Fed(fed) = proposed;
        if fed.fault.as_deref() == Some("validate-panic") && !super::cleared() {
            panic!("feeder: injected panic validating {} #{}", fed.key, fed.n);
        }
        Ok(())
    }

    fn handle(&mut self, input: NoInput, _: &mut Outbox<FeederEvent>) -> Result<(), HandleError> {
        match input {}
    }

    fn apply(&mut self, event: &FeederEvent) {
        let FeederEvent::Fed(fed) = event;
        *self.fed.entry(fed.key.clone()).or_default() += 1;
    }

    fn entity(&self, key: &str) -> Option<FedCount> {
        let fed = *self.fed.get(key)?;
        Some(FedCount {
            key: key.to_owned(),
            fed,
        })
    }
}
