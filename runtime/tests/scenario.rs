//! `Scenario` behaves as the node would: a failed handler's changes are undone, and a
//! posted event the node would refuse (422) never reaches the domain.

use herald_runtime::prelude::*;
use herald_runtime::testing::Scenario;

herald_runtime::events! {
    /// What the counter records.
    pub enum CounterEvent in "counter" {
        /// A client adds to a key, at least 1.
        Added { key: String, #[schemars(range(min = 1))] by: u64 } keyed by key from clients,
        /// The counter noted a tick.
        Noted { key: String } keyed by key,
    }
}

herald_runtime::events! {
    /// A clock that ticks.
    pub enum ClockEvent in "clock" {
        /// A tick; `fail` makes the counter's handler fail after changing its state.
        Ticked { key: String, fail: bool } keyed by key from clients,
    }
}

herald_runtime::inputs! {
    /// What the counter consumes.
    pub enum CounterInput { Ticked }
}

/// Counts per key.
#[derive(Default, Serialize, Deserialize)]
pub struct Counter {
    counts: BTreeMap<String, u64>,
}

impl Domain for Counter {
    type Event = CounterEvent;
    type Input = CounterInput;
    type Entity = u64;

    fn handle(&mut self, input: CounterInput, out: &mut Outbox<CounterEvent>) -> Handled {
        let CounterInput::Ticked(tick) = input;
        *self.counts.entry(tick.key.clone()).or_default() += 100;
        match tick.fail {
            true => Err(HandleError::new(format!("tick of {} failed", tick.key))),
            false => {
                out.emit(Noted { key: tick.key });
                Ok(())
            }
        }
    }

    fn apply(&mut self, event: &CounterEvent) {
        match event {
            CounterEvent::Added(e) => *self.counts.entry(e.key.clone()).or_default() += e.by,
            CounterEvent::Noted(e) => *self.counts.entry(e.key.clone()).or_default() += 1,
        }
    }

    fn entity(&self, key: &str) -> Option<u64> {
        self.counts.get(key).copied()
    }
}

fn tick(fail: bool) -> Ticked {
    Ticked {
        key: "k".into(),
        fail,
    }
}

#[test]
fn a_failed_handler_changes_nothing_and_a_good_one_emits() {
    let scenario = Scenario::<Counter>::new()
        .when_consumed::<ClockEvent>(tick(true))
        .then_fails("tick of k failed");
    assert_eq!(
        scenario.entity("k"),
        None,
        "the failed handler's change is undone"
    );
    let scenario = scenario
        .when_consumed::<ClockEvent>(tick(false))
        .then_emits([Noted { key: "k".into() }]);
    assert_eq!(scenario.entity("k"), Some(serde_json::json!(101)));
}

#[test]
fn posted_events_the_node_would_refuse_never_reach_the_domain() {
    let scenario = Scenario::<Counter>::new()
        .when_posted(Noted { key: "k".into() })
        .then_invalid("counter.Noted is not an ingress type")
        .when_posted(Added {
            key: "k".into(),
            by: 0,
        })
        .then_invalid("does not fit its schema at \"/by\"")
        .when_posted(Added {
            key: "k".into(),
            by: 2,
        })
        .then_emits([Added {
            key: "k".into(),
            by: 2,
        }]);
    assert_eq!(scenario.entity("k"), Some(serde_json::json!(2)));
}
