//! Replay of dead letters: a parked input holds its key (later inputs of the key wait, other
//! keys go on), and a release appended as one group lets them through in order, from the
//! start of the log or from a snapshot taken while the key was held.
#![allow(clippy::unwrap_used)] // test helpers: a failure here is the test failing

use herald_runtime::cloudevent::parse_structured;
use herald_runtime::deadletter::{self, InputRef, Parked, RETRIED};
use herald_runtime::hosted::{DomainEntry, HostedDomain};
use herald_runtime::log::{EventLog, MemoryLog, Part, Record};
use herald_runtime::replay::{rebuild, replay_limit, Replayed, Start};
use herald_runtime::{Domain, Envelope, HandleError, Outbox};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::Arc;

/// A numbered input for a key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Fed {
    /// Its key.
    pub key: String,
    /// Its number.
    pub n: u64,
}

/// The recorder handled one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Recorded {
    /// Its key.
    pub key: String,
    /// Its number.
    pub n: u64,
}

herald_runtime::events! {
    /// Inputs.
    pub enum FedEvent in "src" { Fed keyed by key }
}
herald_runtime::events! {
    /// Reactions.
    pub enum RecordedEvent in "rec" { Recorded keyed by key }
}
herald_runtime::inputs! {
    /// What the recorder consumes.
    pub enum RecorderInput { Fed }
}

/// Records every input it handles, in order.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Recorder {
    order: Vec<String>,
}

impl Domain for Recorder {
    type Event = RecordedEvent;
    type Input = RecorderInput;
    type Entity = Vec<String>;
    fn handle(
        &mut self,
        input: RecorderInput,
        out: &mut Outbox<RecordedEvent>,
    ) -> Result<(), HandleError> {
        let RecorderInput::Fed(fed) = input;
        out.emit(Recorded {
            key: fed.key,
            n: fed.n,
        });
        Ok(())
    }
    fn apply(&mut self, event: &RecordedEvent) {
        let RecordedEvent::Recorded(recorded) = event;
        self.order.push(format!("{}{}", recorded.key, recorded.n));
    }
    fn entity(&self, _: &str) -> Option<Vec<String>> {
        Some(self.order.clone())
    }
}

fn fed(key: &str, n: u64) -> Envelope {
    parse_structured(json!({
        "specversion": "1.0", "id": format!("{key}{n}"), "source": "/t", "type": Fed::TYPE,
        "subject": key, "data": {"key": key, "n": n},
    }))
    .unwrap()
    .envelope
}

fn subscribed(event_type: &str) -> herald_runtime::log::Take {
    (event_type == Fed::TYPE).into()
}

fn replay(log: &MemoryLog, start: Start) -> (Box<dyn HostedDomain>, Replayed) {
    let mut domain = DomainEntry::of::<Recorder>().create();
    let upto = replay_limit(log, "rec").unwrap();
    let stream = domain.name();
    let replayed = rebuild(domain.as_mut(), stream, log, &subscribed, start, upto, "t").unwrap();
    (domain, replayed)
}

fn order(domain: &dyn HostedDomain) -> serde_json::Value {
    domain.entity("").unwrap().unwrap()
}

/// What the host does for one input handled normally: append its reactions.
fn handle(log: &MemoryLog, live: &mut dyn HostedDomain, input: &Arc<Record>) {
    let reactions = live.handle(&input.envelope, "t").unwrap();
    for record in log.append("rec", input.offset, reactions).unwrap() {
        live.apply(&record.envelope).unwrap();
    }
}

#[test]
fn a_parked_input_holds_its_key_and_a_release_lets_the_queue_through_in_order() {
    let log = MemoryLog::new();
    let inputs = log
        .append(
            "src",
            0,
            vec![fed("a", 1), fed("a", 2), fed("a", 3), fed("b", 1)],
        )
        .unwrap();
    let mut live = DomainEntry::of::<Recorder>().create();
    handle(&log, live.as_mut(), &inputs[0]);
    // a2 failed its attempts: parked where it stood.
    let parked = Parked {
        input: InputRef::of(&inputs[1]),
        error: "boom".into(),
        attempts: 3,
        parked_at: "t".into(),
    };
    log.append(
        &deadletter::stream("rec"),
        inputs[1].offset,
        vec![deadletter::parked_envelope("rec", &parked, None)],
    )
    .unwrap();
    // a3 waits behind it; b1 goes on.
    handle(&log, live.as_mut(), &inputs[3]);

    let (held, while_held) = replay(&log, Start::default());
    assert_eq!(order(held.as_ref()), json!(["a1", "b1"]));
    let holds: Vec<_> = while_held.holds.iter().cloned().collect();
    assert_eq!(holds.len(), 1);
    assert_eq!(holds[0].parked, parked);
    assert_eq!(holds[0].waiting, [inputs[2].offset]);
    assert_eq!(while_held.cursor, inputs[3].offset);
    // A snapshot taken now.
    let snapshot = (held.save_state().unwrap(), while_held);

    // The operator retries a2: one append with the release and a2's and a3's reactions.
    let mut reactions = live.handle(&inputs[1].envelope, "t").unwrap();
    reactions.extend(live.handle(&inputs[2].envelope, "t").unwrap());
    log.append_all(vec![
        Part {
            stream: deadletter::stream("rec"),
            consumed: inputs[3].offset,
            events: vec![deadletter::released_envelope(
                "rec",
                RETRIED,
                &parked.input,
                "t",
            )],
        },
        Part {
            stream: "rec".into(),
            consumed: inputs[3].offset,
            events: reactions,
        },
    ])
    .unwrap();
    // Later inputs of the key flow as usual.
    let later = log.append("src", 0, vec![fed("a", 4)]).unwrap();
    handle(&log, live.as_mut(), &later[0]);

    let expected = json!(["a1", "b1", "a2", "a3", "a4"]);
    let (from_start, replayed) = replay(&log, Start::default());
    assert_eq!(order(from_start.as_ref()), expected);
    assert!(replayed.holds.is_empty());
    assert_eq!(replayed.dead_sequence, 2);
    assert!(replayed.missing.is_empty(), "{:?}", replayed.missing);

    let (state, positions) = snapshot;
    let mut from_snapshot = DomainEntry::of::<Recorder>().create();
    from_snapshot.load_state(&state).unwrap();
    let start = Start {
        cursor: positions.cursor,
        own_sequence: positions.own_sequence,
        dead_sequence: positions.dead_sequence,
        holds: positions.holds,
    };
    let upto = replay_limit(&log, "rec").unwrap();
    let stream = from_snapshot.name();
    let resumed = rebuild(
        from_snapshot.as_mut(),
        stream,
        &log,
        &subscribed,
        start,
        upto,
        "t",
    )
    .unwrap();
    assert_eq!(order(from_snapshot.as_ref()), expected);
    assert!(resumed.holds.is_empty());
}
