//! The crash test: the real binary on one data directory, restarted and SIGKILLed at random
//! moments while concurrent clients place and cancel orders, add stock, grant credit,
//! dispatch, deliver, and resend events. Afterwards the log and every answer must be as if
//! each acknowledged event had been processed exactly once:
//!
//! - every acknowledged event is in its stream exactly once, at the acknowledged position,
//!   and each client's events are in the order it sent them; refused ones are absent;
//! - sequences are dense from 1, no `(source, id)` appears twice, no reaction appears twice
//!   for one cause, and every cause exists;
//! - stock, credit and analytics add up against the log, and every order reached the final
//!   status its events imply, with every step of the saga taken exactly once.
//!
//! A second test kills the node under cross-domain batches: each batch must be in the log
//! whole or not at all.
//!
//! A failure prints the seed; `HERALD_CRASH_SEED=<seed>` repeats the same choices, and
//! `HERALD_CRASH_ROUNDS=<n>` changes the number of restarts (20 by default, 12 for batches).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use herald_integration_tests::invariants::{self, key, text, Failures, Log};
use herald_integration_tests::*;
use serde_json::Value;

/// Restarts, each ended by SIGKILL (or, every fifth, SIGTERM) while clients are busy.
const ROUNDS: usize = 20;
/// Concurrent clients.
const CLIENTS: usize = 8;
/// Skus with plenty of stock, and one that runs out.
const SKUS: [&str; 4] = ["sku-0", "sku-1", "sku-2", "sku-3"];
const SCARCE_SKU: &str = "sku-scarce";
/// Customers with plenty of credit, and one who runs out.
const CUSTOMERS: [&str; 3] = ["cust-0", "cust-1", "cust-2"];
const POOR_CUSTOMER: &str = "cust-poor";

/// An event a client got a 2xx for.
#[derive(Debug, Clone)]
struct Ack {
    /// The client, or `None` for the seed events.
    client: Option<usize>,
    event: Value,
    stream: String,
    sequence: u64,
}

/// What sending one event gave.
enum Sent {
    /// 202 accepted, or 200 duplicate: the event's position.
    Acked {
        duplicate: bool,
        stream: String,
        sequence: u64,
    },
    /// 409: refused by the domain, so not appended.
    Refused,
    /// 429 or 503: not appended; try again.
    Busy,
    /// No answer (the node died): maybe appended, maybe not.
    Lost,
    /// Anything else: a bug.
    Unexpected(String),
}

fn send(client: &reqwest::blocking::Client, base: &str, event: &Value) -> Sent {
    let response = client
        .post(format!("{base}/v1/events"))
        .header("content-type", "application/cloudevents+json")
        .body(event.to_string())
        .send();
    let Ok(response) = response else {
        return Sent::Lost;
    };
    let status = response.status().as_u16();
    let Ok(text) = response.text() else {
        return Sent::Lost;
    };
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    match status {
        200 | 202 => match (body["stream"].as_str(), body["sequence"].as_u64()) {
            (Some(stream), Some(sequence)) => Sent::Acked {
                duplicate: status == 200,
                stream: stream.to_owned(),
                sequence,
            },
            _ => Sent::Unexpected(format!("{status} without a position: {text}")),
        },
        409 => Sent::Refused,
        429 | 503 => Sent::Busy,
        _ => Sent::Unexpected(format!("{status} for {event}: {text}")),
    }
}

/// One client's memory, kept across rounds.
struct Client {
    index: usize,
    rng: Rng,
    next_order: u64,
    /// First acknowledgements, in the order received.
    acks: Vec<Ack>,
    /// Orders this client placed (acknowledged), dispatched, delivered, cancelled.
    orders: Vec<String>,
    dispatched: Vec<String>,
    delivered: BTreeSet<String>,
    cancelled: BTreeSet<String>,
    /// An event sent without an answer, to resend (or abandon) next round.
    pending: Option<Value>,
    abandoned: Vec<Value>,
    refused: Vec<Value>,
    resent_acked: u64,
    anomalies: Vec<String>,
}

impl Client {
    fn new(index: usize, seed: u64) -> Client {
        Client {
            index,
            rng: Rng::seeded(seed ^ (index as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            next_order: 0,
            acks: Vec::new(),
            orders: Vec::new(),
            dispatched: Vec::new(),
            delivered: BTreeSet::new(),
            cancelled: BTreeSet::new(),
            pending: None,
            abandoned: Vec::new(),
            refused: Vec::new(),
            resent_acked: 0,
            anomalies: Vec::new(),
        }
    }

    /// A new event to send, chosen at random.
    fn next_event(&mut self) -> Value {
        let roll = self.rng.between(0, 99);
        let open: Vec<&String> = self
            .orders
            .iter()
            .filter(|o| !self.cancelled.contains(*o))
            .collect();
        if roll < 12 && !open.is_empty() {
            let order = (*self.rng.pick(&open)).clone();
            return order_event("orders.OrderCancelled", &order);
        }
        if roll < 22 {
            let sku = if self.rng.chance(30) {
                SCARCE_SKU
            } else {
                *self.rng.pick(&SKUS)
            };
            return stock_added(sku, self.rng.between(1, 5));
        }
        if roll < 30 {
            let customer = if self.rng.chance(40) {
                POOR_CUSTOMER
            } else {
                *self.rng.pick(&CUSTOMERS)
            };
            return credit_granted(customer, self.rng.between(1, 300));
        }
        if roll < 40 && !open.is_empty() {
            let order = (*self.rng.pick(&open)).clone();
            return order_event("shipping.ShipmentDispatched", &order);
        }
        if roll < 45 && !self.dispatched.is_empty() {
            let order = self.rng.pick(&self.dispatched).clone();
            if !self.delivered.contains(&order) {
                return order_event("shipping.ShipmentDelivered", &order);
            }
        }
        self.next_order += 1;
        let order = format!("c{}-o{}", self.index, self.next_order);
        let customer = if self.rng.chance(12) {
            POOR_CUSTOMER
        } else {
            *self.rng.pick(&CUSTOMERS)
        };
        let mut lines = Vec::new();
        for _ in 0..self.rng.between(1, 2) {
            let sku = if self.rng.chance(15) {
                SCARCE_SKU
            } else {
                *self.rng.pick(&SKUS)
            };
            lines.push((sku, self.rng.between(1, 3), self.rng.between(1, 200)));
        }
        order_placed(&order, customer, &lines)
    }

    /// Remembers what an acknowledged event means for the next choices.
    fn acknowledged(&mut self, event: &Value, stream: String, sequence: u64) {
        let order = event["subject"].as_str().unwrap_or_default().to_owned();
        match event["type"].as_str().unwrap_or_default() {
            "orders.OrderPlaced" => self.orders.push(order),
            "orders.OrderCancelled" => {
                self.cancelled.insert(order);
            }
            "shipping.ShipmentDispatched" => self.dispatched.push(order),
            "shipping.ShipmentDelivered" => {
                self.delivered.insert(order);
            }
            _ => {}
        }
        self.acks.push(Ack {
            client: Some(self.index),
            event: event.clone(),
            stream,
            sequence,
        });
    }

    /// Sends events until the node stops answering or `stop` is set.
    fn run_round(&mut self, base: &str, stop: &AtomicBool) {
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("http client");
        // An event lost last round: mostly resent (it must not appear twice), sometimes
        // abandoned (it may or may not be in the log, at most once).
        if let Some(event) = self.pending.take() {
            if self.rng.chance(25) {
                self.abandoned.push(event);
            } else {
                self.pending = Some(event);
            }
        }
        while !stop.load(Ordering::Relaxed) {
            if self.pending.is_none() && !self.acks.is_empty() && self.rng.chance(12) {
                if !self.resend_acknowledged(&http, base) {
                    return;
                }
                continue;
            }
            let (event, retry) = match self.pending.take() {
                Some(event) => (event, true),
                None => (self.next_event(), false),
            };
            match send(&http, base, &event) {
                Sent::Acked {
                    duplicate,
                    stream,
                    sequence,
                } => {
                    if duplicate && !retry {
                        self.anomalies
                            .push(format!("a first send answered 200 duplicate: {event}"));
                    }
                    self.acknowledged(&event, stream, sequence);
                }
                Sent::Refused => self.refused.push(event),
                Sent::Busy => {
                    self.pending = Some(event);
                    std::thread::sleep(Duration::from_millis(20));
                }
                Sent::Lost => {
                    self.pending = Some(event);
                    return;
                }
                Sent::Unexpected(what) => {
                    self.anomalies.push(what);
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(self.rng.between(0, 4)));
        }
    }

    /// Resends an acknowledged event: it must answer 200 with its original position.
    /// Returns false when the node no longer answers.
    fn resend_acknowledged(&mut self, http: &reqwest::blocking::Client, base: &str) -> bool {
        let ack = self.rng.pick(&self.acks).clone();
        match send(http, base, &ack.event) {
            Sent::Acked {
                duplicate: true,
                stream,
                sequence,
            } if stream == ack.stream && sequence == ack.sequence => {
                self.resent_acked += 1;
                true
            }
            Sent::Acked {
                duplicate,
                stream,
                sequence,
            } => {
                self.anomalies.push(format!(
                    "resending acknowledged {} (at {}/{}): expected 200 duplicate at that \
                     position, saw duplicate={duplicate} at {stream}/{sequence}",
                    ack.event["id"], ack.stream, ack.sequence
                ));
                true
            }
            Sent::Lost => false,
            Sent::Busy => true,
            Sent::Refused => {
                self.anomalies.push(format!(
                    "resending acknowledged {} answered 409 instead of 200 duplicate",
                    ack.event["id"]
                ));
                true
            }
            Sent::Unexpected(what) => {
                self.anomalies
                    .push(format!("resending acknowledged: {what}"));
                false
            }
        }
    }
}

/// The environment of round `round`: snapshots often in some rounds, never in others, and
/// small segments throughout so the log spans many files.
fn round_env(round: usize) -> Vec<(&'static str, &'static str)> {
    let every = match round % 3 {
        0 => "50",
        1 => "0",
        _ => "7",
    };
    vec![
        ("HERALD_LOG__SNAPSHOT_EVERY", every),
        ("HERALD_LOG__SEGMENT_BYTES", "65536"),
    ]
}

#[test]
fn acknowledged_events_survive_sigkill_exactly_once() {
    let started = Instant::now();
    let (mut rng, seed) = Rng::from_env_or_clock("HERALD_CRASH_SEED");
    eprintln!("crash test seed: {seed} (HERALD_CRASH_SEED={seed} repeats it)");
    let dir = tempfile::tempdir().expect("temp dir");

    let mut seeds = Vec::new();
    {
        let mut node = Node::start_in(dir.path(), &round_env(0));
        let mut seed_event = |event: Value| {
            let reply = node.publish(&event);
            assert_eq!(reply.status, 202, "seeding {event}: {}", reply.json);
            seeds.push(Ack {
                client: None,
                stream: reply.json["stream"].as_str().unwrap().to_owned(),
                sequence: reply.json["sequence"].as_u64().unwrap(),
                event,
            });
        };
        for sku in SKUS {
            seed_event(stock_added(sku, 400));
        }
        seed_event(stock_added(SCARCE_SKU, 3));
        for customer in CUSTOMERS {
            seed_event(credit_granted(customer, 1_000_000));
        }
        seed_event(credit_granted(POOR_CUSTOMER, 50));
        node.kill();
    }

    let clients: Vec<Arc<Mutex<Client>>> = (0..CLIENTS)
        .map(|index| Arc::new(Mutex::new(Client::new(index, seed))))
        .collect();
    let rounds = std::env::var("HERALD_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(ROUNDS);
    let mut torn_tails = 0;
    for round in 0..rounds {
        let round_started = Instant::now();
        let mut node = Node::start_in(dir.path(), &round_env(round));
        let ready_after = round_started.elapsed();
        // A kill mid-write leaves a torn tail, which recovery cuts with a warning.
        let torn = node.logs().to_lowercase().contains("torn");
        torn_tails += usize::from(torn);
        let stop = Arc::new(AtomicBool::new(false));
        let threads: Vec<_> = clients
            .iter()
            .map(|client| {
                let client = Arc::clone(client);
                let stop = Arc::clone(&stop);
                let base = node.base.clone();
                std::thread::spawn(move || {
                    client.lock().expect("client lock").run_round(&base, &stop)
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(rng.between(200, 1500)));
        if round % 5 == 4 {
            // A clean stop under load: in-flight requests finish, the node exits 0.
            node.stop();
        } else {
            node.kill();
        }
        stop.store(true, Ordering::Relaxed);
        for thread in threads {
            thread.join().expect("client thread");
        }
        let acked: usize = clients
            .iter()
            .map(|c| c.lock().expect("client lock").acks.len())
            .sum();
        eprintln!(
            "round {round}: ready after {:.2} s{}, round {:.2} s, {acked} acknowledged so far",
            ready_after.as_secs_f64(),
            if torn { " (cut a torn tail)" } else { "" },
            round_started.elapsed().as_secs_f64()
        );
    }
    eprintln!(
        "rounds done after {:.1} s; {torn_tails} starts cut a torn tail",
        started.elapsed().as_secs_f64()
    );

    let node = Node::start_in(dir.path(), &[]);
    node.settle_within(Duration::from_secs(120));
    let clients: Vec<Client> = clients
        .into_iter()
        .map(|c| {
            Arc::try_unwrap(c)
                .unwrap_or_else(|_| panic!("client threads joined"))
                .into_inner()
                .expect("client lock")
        })
        .collect();
    eprintln!("settled after {:.1} s", started.elapsed().as_secs_f64());
    let log = Log::read(&node);
    assert_partitioned(&log, &["orders", "shipping"]);
    let mut failures = Failures::default();
    for client in &clients {
        for anomaly in &client.anomalies {
            failures.add("unexpected answer", anomaly.clone());
        }
    }
    check_acknowledged(&log, &seeds, &clients, &mut failures);
    invariants::check_all(&node, &log, &mut failures);
    eprintln!("checked after {:.1} s", started.elapsed().as_secs_f64());

    let acked: usize = clients.iter().map(|c| c.acks.len()).sum();
    eprintln!(
        "crash test: {rounds} rounds, {acked} events acknowledged, {} refused, {} abandoned, \
         {} acknowledged events resent, {} events in the log, {:.1} s",
        clients.iter().map(|c| c.refused.len()).sum::<usize>(),
        clients.iter().map(|c| c.abandoned.len()).sum::<usize>(),
        clients.iter().map(|c| c.resent_acked).sum::<u64>(),
        log.streams.values().map(Vec::len).sum::<usize>(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        acked >= 200,
        "expected the clients to get at least 200 events acknowledged over {rounds} rounds, \
         they got {acked}"
    );
    failures.assert_none(&format!("crash test (HERALD_CRASH_SEED={seed})"));

    // One more clean restart answers the same.
    let summary = node.summary();
    let mut node = node;
    node.stop();
    let node = Node::start_in(dir.path(), &[]);
    node.settle();
    assert_same_json(
        "every stream after a last clean restart",
        &serde_json::json!(log.streams),
        &serde_json::json!(node.read_all_streams()),
    );
    assert_same_json(
        "the analytics summary after a last clean restart",
        &summary,
        &node.summary(),
    );
    let mut node = node;
    node.stop();
    verify_passes(dir.path(), "the log after all the kills");
    let records = herald_integration_tests::segments::assert_layout(dir.path());
    assert_eq!(
        records as usize,
        log.streams.values().map(Vec::len).sum::<usize>(),
        "expected one record per event in the segment files"
    );
}

/// Asserts that `domains` ran in partitions through the rounds: each of their
/// `TEST_PARTITIONS` streams holds events and none sits in a stream named for the domain,
/// so the guarantees checked here held per partition.
fn assert_partitioned(log: &Log, domains: &[&str]) {
    for domain in domains {
        assert!(
            !log.streams.contains_key(*domain),
            "expected {domain} partitioned, the log has a stream \"{domain}\": {:?}",
            log.streams.keys().collect::<Vec<_>>()
        );
        for stream in domain_streams(domain, TEST_PARTITIONS) {
            assert!(
                log.streams
                    .get(&stream)
                    .is_some_and(|events| !events.is_empty()),
                "expected events in {stream} (each of {domain}'s {TEST_PARTITIONS} partitions): \
                 streams {:?}",
                log.streams.keys().collect::<Vec<_>>()
            );
        }
    }
}

/// Every acknowledged event once at its position; refused ones absent; each client's
/// events in the order it sent them.
fn check_acknowledged(log: &Log, seeds: &[Ack], clients: &[Client], failures: &mut Failures) {
    let all_acks = seeds.iter().chain(clients.iter().flat_map(|c| &c.acks));
    for ack in all_acks {
        let places = log.by_id.get(&key(&ack.event)).cloned().unwrap_or_default();
        let expected = vec![(ack.stream.clone(), ack.sequence)];
        if places != expected {
            failures.add(
                "an acknowledged event once, where acknowledged",
                format!(
                    "{} (client {:?}): expected at {expected:?}, found at {places:?}",
                    ack.event["id"], ack.client
                ),
            );
        }
    }
    for client in clients {
        for event in &client.refused {
            if let Some(places) = log.by_id.get(&key(event)) {
                failures.add(
                    "a refused (409) event is not in the log",
                    format!(
                        "{} found at {places:?} (if it was a resend of an event already in \
                         the log, it should have answered 200 duplicate)",
                        event["id"]
                    ),
                );
            }
        }
        let mut last: BTreeMap<&str, (u64, &Value)> = BTreeMap::new();
        for ack in &client.acks {
            if let Some((previous, before)) = last.get(ack.stream.as_str()) {
                if ack.sequence <= *previous {
                    failures.add(
                        "a client's events in the order it sent them",
                        format!(
                            "client {}: {} acknowledged after {} but at {}/{} <= {previous}",
                            client.index, ack.event["id"], before["id"], ack.stream, ack.sequence
                        ),
                    );
                }
            }
            last.insert(&ack.stream, (ack.sequence, &ack.event));
        }
    }
}

/// A batch as sent, and its 202 answer if it got one.
type SentBatch = (Vec<Value>, Option<Value>);

/// A batch that spans domains (inventory, payments, and two orders, most often in two
/// partitions of orders) is appended by several hosts; a SIGKILL must still leave all of it
/// or none of it in the log, acknowledged or not.
/// Batches lost to a kill are never resent here: a resend would complete a half batch and
/// hide it.
#[test]
fn cross_domain_batches_are_all_or_nothing_across_sigkill() {
    let (mut rng, seed) = Rng::from_env_or_clock("HERALD_CRASH_SEED");
    eprintln!("batch crash test seed: {seed}");
    let dir = tempfile::tempdir().expect("temp dir");
    let sent: Arc<Mutex<Vec<SentBatch>>> = Arc::default();
    let rounds = std::env::var("HERALD_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    for round in 0..rounds {
        let mut node = Node::start_in(dir.path(), &round_env(round));
        let stop = Arc::new(AtomicBool::new(false));
        let threads: Vec<_> = (0..6)
            .map(|thread| {
                let base = node.base.clone();
                let stop = Arc::clone(&stop);
                let sent = Arc::clone(&sent);
                std::thread::spawn(move || {
                    let http = reqwest::blocking::Client::builder()
                        .timeout(Duration::from_secs(10))
                        .build()
                        .expect("http client");
                    let mut n = 0;
                    while !stop.load(Ordering::Relaxed) {
                        n += 1;
                        let order = format!("b{round}-{thread}-{n}");
                        let batch = vec![
                            stock_added(&format!("bsku-{thread}"), 1),
                            credit_granted(&format!("bcust-{thread}"), 1),
                            order_placed(&order, "nobody", &[("no-such-sku", 1, 1)]),
                            order_placed(&format!("{order}-x"), "nobody", &[("no-such-sku", 1, 1)]),
                        ];
                        let answer = http
                            .post(format!("{base}/v1/events"))
                            .header("content-type", "application/cloudevents-batch+json")
                            .body(Value::from(batch.clone()).to_string())
                            .send()
                            .ok()
                            .filter(|r| r.status().as_u16() == 202)
                            .and_then(|r| r.json::<Value>().ok());
                        let lost = answer.is_none();
                        sent.lock().expect("sent lock").push((batch, answer));
                        if lost {
                            return;
                        }
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(rng.between(200, 1200)));
        node.kill();
        stop.store(true, Ordering::Relaxed);
        for thread in threads {
            thread.join().expect("client thread");
        }
    }

    let node = Node::start_in(dir.path(), &[]);
    node.settle();
    let log = Log::read(&node);
    assert_partitioned(&log, &["orders"]);
    let sent = sent.lock().expect("sent lock");
    let mut failures = Failures::default();
    for (batch, answer) in sent.iter() {
        let places: Vec<Vec<(String, u64)>> = batch
            .iter()
            .map(|event| log.by_id.get(&key(event)).cloned().unwrap_or_default())
            .collect();
        let present = places.iter().filter(|p| !p.is_empty()).count();
        if present != 0 && present != batch.len() {
            failures.add(
                "a batch all or nothing",
                format!(
                    "batch {:?} (acknowledged: {}): only {present} of {} events in the log: \
                     {places:?}",
                    batch.iter().map(|e| &e["id"]).collect::<Vec<_>>(),
                    answer.is_some(),
                    batch.len()
                ),
            );
        }
        if let Some(answer) = answer {
            for (event, result) in batch
                .iter()
                .zip(answer["results"].as_array().into_iter().flatten())
            {
                let expected = vec![(
                    text(&result["stream"]),
                    result["sequence"].as_u64().unwrap_or(0),
                )];
                let found = log.by_id.get(&key(event)).cloned().unwrap_or_default();
                if found != expected {
                    failures.add(
                        "an acknowledged batch event once, where acknowledged",
                        format!(
                            "{}: expected at {expected:?}, found at {found:?}",
                            event["id"]
                        ),
                    );
                }
            }
        }
    }
    let acked = sent.iter().filter(|(_, a)| a.is_some()).count();
    // The two orders of a batch fall in two partitions about two times in three.
    let across_partitions = sent
        .iter()
        .filter_map(|(_, answer)| answer.as_ref())
        .filter(|answer| answer["results"][2]["stream"] != answer["results"][3]["stream"])
        .count();
    eprintln!(
        "batch crash test: {rounds} rounds, {} batches sent, {acked} acknowledged, \
         {across_partitions} of them across two partitions of orders",
        sent.len()
    );
    assert!(
        across_partitions > 0,
        "expected some acknowledged batches across two partitions of orders"
    );
    failures.assert_none(&format!("batch crash test (HERALD_CRASH_SEED={seed})"));
}
