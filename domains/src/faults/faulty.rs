//! `faulty`: consumes `feeder.Fed` and fails on marked events while faults are armed.
//!
//! A marked event (`fault: "panic"` or `"error"`) makes the handler panic or return an
//! error, after it has already changed its read model (`last_seen`), so a host that did not
//! rebuild the state after a failure would show it. Every other event is recorded per key,
//! in the order handled, through an emitted `faulty.Handled`. `fault: "crash"` (or
//! `"crash-once"`) is handled, but applying its `Handled` panics, outside any handler: the
//! host itself dies, for the supervision tests.
//!
//! It is keyed by key (`ByKey`), so a test node runs it in partitions, each with its own
//! dead-letter stream (`deadletter-faulty-p1`), holds and `max_parked_keys`.

use std::collections::BTreeMap;

use herald_runtime::prelude::*;

use super::feeder::Fed;

/// `faulty` handled the key's event number `n`.
#[payload]
pub struct Handled {
    /// The entity key.
    pub key: String,
    /// The feeder's number.
    pub n: u64,
    /// `"crash"` or `"crash-once"`: applying this event panics (always while faults are
    /// armed, or only the first time in the process), which stops the domain's host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crash: Option<String>,
}

herald_runtime::events! {
    /// What faulty records.
    pub enum FaultyEvent in "faulty" {
        Handled keyed by key,
    }
}

herald_runtime::inputs! {
    /// What faulty consumes.
    pub enum FaultyInput {
        Fed,
    }
}

/// One key as faulty saw it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct FaultyKey {
    /// The key.
    pub key: String,
    /// The numbers handled, in order.
    pub handled: Vec<u64>,
    /// The last number the handler looked at, failed or not.
    pub last_seen: Option<u64>,
}

/// Per key: the numbers handled, in order, and the last number the handler looked at.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Faulty {
    handled: BTreeMap<String, Vec<u64>>,
    last_seen: BTreeMap<String, u64>,
}

impl Domain for Faulty {
    type Event = FaultyEvent;
    type Input = FaultyInput;
    type Entity = FaultyKey;

    // State is per key and each `Fed` is keyed by its key, as is the `Handled` it causes:
    // the fault tests run in partitions like the real ByKey domains.
    fn partitioning() -> Partitioning {
        Partitioning::ByKey { inputs: &[] }
    }

    fn handle(
        &mut self,
        input: FaultyInput,
        out: &mut Outbox<FaultyEvent>,
    ) -> Result<(), HandleError> {
        let FaultyInput::Fed(fed) = input;
        // Changed before failing on purpose: the host must throw this away on a failure.
        self.last_seen.insert(fed.key.clone(), fed.n);
        let mut crash = None;
        if !super::cleared() {
            match fed.fault.as_deref() {
                Some("panic") => panic!("faulty: injected panic on {} #{}", fed.key, fed.n),
                Some(kind @ ("crash" | "crash-once")) => crash = Some(kind.to_owned()),
                Some(other) => {
                    return Err(HandleError::new(format!(
                        "faulty: injected {other} on {} #{}",
                        fed.key, fed.n
                    )))
                }
                None => {}
            }
        }
        out.emit(Handled {
            key: fed.key,
            n: fed.n,
            crash,
        });
        Ok(())
    }

    fn apply(&mut self, event: &FaultyEvent) {
        let FaultyEvent::Handled(handled) = event;
        let crash = match handled.crash.as_deref() {
            Some("crash") => !super::cleared(),
            Some("crash-once") => super::first_crash(),
            _ => false,
        };
        if crash {
            panic!(
                "faulty: injected crash applying {} #{}",
                handled.key, handled.n
            );
        }
        self.handled
            .entry(handled.key.clone())
            .or_default()
            .push(handled.n);
    }

    fn entity(&self, key: &str) -> Option<FaultyKey> {
        let handled = self.handled.get(key);
        let last_seen = self.last_seen.get(key).copied();
        if handled.is_none() && last_seen.is_none() {
            return None;
        }
        Some(FaultyKey {
            key: key.to_owned(),
            handled: handled.cloned().unwrap_or_default(),
            last_seen,
        })
    }
}
