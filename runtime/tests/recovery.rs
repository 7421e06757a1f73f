//! Replay after a crash: reactions cut short are found (and only those), and a rebuild
//! from a snapshot's positions equals a rebuild from the beginning.
#![allow(clippy::unwrap_used)] // test helpers: a failure here is the test failing

use herald_runtime::cloudevent::parse_structured;
use herald_runtime::hosted::{DomainEntry, HostedDomain};
use herald_runtime::log::{EventLog, MemoryLog};
use herald_runtime::replay::{rebuild, rebuild_reporting, replay_limit, Progress, Replayed, Start};
use herald_runtime::{Domain, Envelope, HandleError, NoInput, Outbox};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// A ping from a client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Ping {
    /// Its key.
    pub id: String,
}

/// One of the two echoes of a ping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Echoed {
    /// The ping's key.
    pub id: String,
    /// First or second echo.
    pub n: u64,
}

herald_runtime::events! {
    /// Pings.
    pub enum PingEvent in "pings" { Ping keyed by id from clients }
}
herald_runtime::inputs! {
    /// What echo consumes.
    pub enum EchoInput { Ping }
}

/// What echo saw and echoed.
#[derive(Debug, Serialize, JsonSchema)]
pub struct EchoState {
    seen: u64,
    echoed: Vec<(String, u64)>,
}
herald_runtime::events! {
    /// Echoes.
    pub enum EchoEvent in "echo" { Echoed keyed by id }
}

/// Takes pings.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Pings;

impl Domain for Pings {
    type Event = PingEvent;
    type Input = NoInput;
    type Entity = ();
    fn handle(&mut self, input: NoInput, _: &mut Outbox<PingEvent>) -> Result<(), HandleError> {
        match input {}
    }
    fn apply(&mut self, _: &PingEvent) {}
    fn entity(&self, _: &str) -> Option<()> {
        None
    }
}

/// Echoes every ping twice; counts what it saw and what it echoed.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Echo {
    seen: u64,
    echoed: Vec<(String, u64)>,
}

impl Domain for Echo {
    type Event = EchoEvent;
    type Input = EchoInput;
    type Entity = EchoState;
    fn handle(&mut self, input: EchoInput, out: &mut Outbox<EchoEvent>) -> Result<(), HandleError> {
        let EchoInput::Ping(ping) = input;
        self.seen += 1;
        for n in 0..2 {
            out.emit(Echoed {
                id: ping.id.clone(),
                n,
            });
        }
        Ok(())
    }
    fn apply(&mut self, event: &EchoEvent) {
        let EchoEvent::Echoed(echoed) = event;
        self.echoed.push((echoed.id.clone(), echoed.n));
    }
    fn entity(&self, _: &str) -> Option<EchoState> {
        Some(EchoState {
            seen: self.seen,
            echoed: self.echoed.clone(),
        })
    }
}

const TIME: &str = "2026-11-25T10:00:00Z";

fn ping(id: &str) -> Envelope {
    parse_structured(json!({
        "specversion": "1.0", "id": id, "source": "/t", "type": Ping::TYPE,
        "subject": id, "data": {"id": id}
    }))
    .unwrap()
    .envelope
}

fn echo() -> Box<dyn HostedDomain> {
    DomainEntry::of::<Echo>().create()
}

fn subscribed(event_type: &str) -> herald_runtime::log::Take {
    (event_type == Ping::TYPE).into()
}

/// Handles a ping live, as the host does, appending its reactions (or only `keep` of them).
fn react(log: &MemoryLog, domain: &mut dyn HostedDomain, input_offset: u64, keep: usize) {
    let input = log
        .read_after(input_offset - 1, 1, &subscribed)
        .unwrap()
        .records
        .remove(0);
    let mut emitted = domain.handle(&input.envelope, TIME).unwrap();
    emitted.truncate(keep);
    for record in log.append("echo", input.offset, emitted).unwrap() {
        domain.apply(&record.envelope).unwrap();
    }
}

/// What a host does first on start without a snapshot: replay up to the limit.
fn recover(log: &MemoryLog) -> (Box<dyn HostedDomain>, u64, Replayed) {
    let mut recovered = echo();
    let upto = replay_limit(log, "echo").unwrap();
    let stream = recovered.name();
    let replayed = rebuild(
        recovered.as_mut(),
        stream,
        log,
        &subscribed,
        Start::default(),
        upto,
        TIME,
    )
    .unwrap();
    (recovered, upto, replayed)
}

#[test]
fn a_torn_reaction_is_completed_and_nothing_is_echoed_twice() {
    let log = MemoryLog::new();
    log.append("pings", 0, vec![ping("a")]).unwrap();
    let mut live = echo();
    // The crash cut the second echo of "a" off.
    react(&log, live.as_mut(), 1, 1);

    let (mut recovered, upto, replayed) = recover(&log);
    assert_eq!(upto, 1);
    assert_eq!(replayed.missing.len(), 1, "{:?}", replayed.missing);
    let missing = &replayed.missing[0];
    assert_eq!(missing.data_json()["n"], 1);
    for record in log.append("echo", upto, replayed.missing).unwrap() {
        recovered.apply(&record.envelope).unwrap();
    }
    assert_eq!(
        recovered.entity("x").unwrap().unwrap(),
        json!({"seen": 1, "echoed": [["a", 0], ["a", 1]]})
    );
}

#[test]
fn inputs_after_the_last_reaction_are_left_to_consumption() {
    let log = MemoryLog::new();
    log.append("pings", 0, vec![ping("a")]).unwrap();
    let mut live = echo();
    react(&log, live.as_mut(), 1, 2);
    // "b" was logged but the crash came before its echoes.
    log.append("pings", 0, vec![ping("b")]).unwrap();

    let (_, _, replayed) = recover(&log);
    assert!(replayed.missing.is_empty());
    assert_eq!(replayed.cursor, 1);
    let rest = log.read_after(replayed.cursor, 10, &subscribed).unwrap();
    assert_eq!(rest.records.len(), 1);
    assert_eq!(rest.records[0].envelope.id, "b");
}

#[test]
fn a_rebuild_from_snapshot_positions_equals_one_from_the_beginning() {
    let log = MemoryLog::new();
    let mut live = echo();
    let mut snapshot = None;
    for (n, id) in ["a", "b", "c", "d"].iter().enumerate() {
        let offset = log.append("pings", 0, vec![ping(id)]).unwrap()[0].offset;
        react(&log, live.as_mut(), offset, 2);
        if n == 1 {
            let own_sequence = log.sequence_at("echo", log.head());
            snapshot = Some((
                live.save_state().unwrap(),
                Start {
                    cursor: offset,
                    own_sequence,
                    ..Start::default()
                },
            ));
        }
    }
    let upto = replay_limit(&log, "echo").unwrap();
    let mut full = echo();
    let stream = full.name();
    rebuild(
        full.as_mut(),
        stream,
        &log,
        &subscribed,
        Start::default(),
        upto,
        TIME,
    )
    .unwrap();
    let (state, start) = snapshot.unwrap();
    let mut from_snapshot = echo();
    from_snapshot.load_state(&state).unwrap();
    let stream = from_snapshot.name();
    let replayed = rebuild(
        from_snapshot.as_mut(),
        stream,
        &log,
        &subscribed,
        start,
        upto,
        TIME,
    )
    .unwrap();
    assert_eq!(replayed.handled, 2);
    assert_eq!(full.entity("x"), live.entity("x"));
    assert_eq!(from_snapshot.entity("x"), live.entity("x"));
}

#[test]
fn a_rebuild_reports_its_progress_against_a_total_known_up_front() {
    let log = MemoryLog::new();
    let mut live = echo();
    for n in 0..1500 {
        let offset = log
            .append("pings", 0, vec![ping(&format!("p{n}"))])
            .unwrap()[0]
            .offset;
        react(&log, live.as_mut(), offset, 2);
    }
    let upto = replay_limit(&log, "echo").unwrap();
    let mut rebuilt = echo();
    let stream = rebuilt.name();
    let mut reports: Vec<Progress> = Vec::new();
    rebuild_reporting(
        rebuilt.as_mut(),
        stream,
        &log,
        &subscribed,
        Start::default(),
        upto,
        TIME,
        &mut |progress| reports.push(progress),
    )
    .unwrap();
    // Its 3000 echoes to apply and the input positions up to the last ping's.
    let total = 3000 + upto;
    assert!(reports.len() > 2, "{reports:?}");
    assert!(
        reports.iter().all(|report| report.total == total),
        "{reports:?}"
    );
    assert!(
        reports.windows(2).all(|pair| pair[0].done <= pair[1].done),
        "{reports:?}"
    );
    assert!(
        reports[0].done > 0 && reports[0].done < total,
        "{reports:?}"
    );
    assert_eq!(reports.last().map(|report| report.done), Some(total));
    assert_eq!(rebuilt.entity("x"), live.entity("x"));
}
