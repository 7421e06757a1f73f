//! Herald on a replicated JetStream: three nats-servers in one cluster on loopback, every
//! stream in three replicas, and three Herald nodes (every domain, orders and shipping in
//! six partitions) connected to all three servers. Clients place orders and add stock and
//! credit at any live node throughout, while one NATS server (JetStream's meta leader) is
//! SIGKILLed and started again, and then each Herald node in turn is stopped (SIGTERM) and
//! started again. Afterwards:
//!
//! - clients saw only 2xx and the retryable 503 and 504 (each answered by a resend);
//! - every acknowledged event is stored exactly once, at the position its answer named,
//!   read through Herald's read API and by a plain NATS client alike, and every replica
//!   of every stream holds the same;
//! - every saga took each of its steps exactly once (`invariants::check_all`).
//!
//! A node leaves the clients' rotation before it is stopped, as a load balancer drains a
//! backend, so a request that gets no answer at all is a failure too.
//! `HERALD_CLUSTER_SEED=<seed>` repeats a run's choices.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use herald_integration_tests::invariants::{self, key, text};
use herald_integration_tests::nats::{read_stream, NatsCluster, CLUSTER_SIZE};
use herald_integration_tests::*;
use serde_json::Value;

/// Concurrent clients.
const CLIENTS: usize = 4;
/// The Herald nodes, each enabling every domain.
const NODES: [&str; 3] = ["node-a", "node-b", "node-c"];
const ALL_DOMAINS: &str = "analytics,inventory,orders,payments,shipping";
/// Orders and shipping spread over this many partitions, two per node.
const PARTITIONS: &str = "6";
/// The pause between a client's events: enough load to keep every phase busy, little
/// enough that six servers and nodes and the checks fit on two cores.
const PACE: Duration = Duration::from_millis(25);
/// How long a client keeps resending an event once the test asked it to stop.
const GIVE_UP: Duration = Duration::from_secs(60);
/// Skus with plenty of stock, and one that runs out.
const SKUS: [&str; 4] = ["sku-0", "sku-1", "sku-2", "sku-3"];
const SCARCE_SKU: &str = "sku-scarce";
/// Customers with plenty of credit, and one who runs out.
const CUSTOMERS: [&str; 3] = ["cust-0", "cust-1", "cust-2"];
const POOR_CUSTOMER: &str = "cust-poor";

/// A mutex's guard, whether or not a panicking thread held it last.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The nodes clients may send to (`None` while one is drained or restarting), and the
/// requests each has in flight.
struct Rotation(Mutex<Vec<Slot>>);

struct Slot {
    base: Option<String>,
    in_flight: usize,
}

/// A request's hold on a node: counted in flight until dropped.
struct Visit<'a> {
    rotation: &'a Rotation,
    index: usize,
    base: String,
}

impl Drop for Visit<'_> {
    fn drop(&mut self) {
        lock(&self.rotation.0)[self.index].in_flight -= 1;
    }
}

impl Rotation {
    fn new(bases: Vec<String>) -> Rotation {
        Rotation(Mutex::new(
            bases
                .into_iter()
                .map(|base| Slot {
                    base: Some(base),
                    in_flight: 0,
                })
                .collect(),
        ))
    }

    /// A node in the rotation, chosen at random, held until the visit is dropped.
    fn visit(&self, rng: &mut Rng) -> Option<Visit<'_>> {
        let mut slots = lock(&self.0);
        let open: Vec<usize> = (0..slots.len())
            .filter(|&index| slots[index].base.is_some())
            .collect();
        let index = *open.get((rng.next_u64() % open.len().max(1) as u64) as usize)?;
        let slot = &mut slots[index];
        slot.in_flight += 1;
        Some(Visit {
            rotation: self,
            index,
            base: slot.base.clone().unwrap_or_default(),
        })
    }

    /// Takes node `index` out of the rotation and waits until none of its requests is in
    /// flight.
    fn drain(&self, index: usize, timeout: Duration) {
        lock(&self.0)[index].base = None;
        let drained = poll(timeout, || lock(&self.0)[index].in_flight == 0);
        assert!(
            drained,
            "node {index} still had requests in flight {timeout:?} after leaving the rotation"
        );
    }

    /// Puts node `index`, now at `base`, back in the rotation.
    fn open(&self, index: usize, base: String) {
        lock(&self.0)[index].base = Some(base);
    }
}

/// An event a client got a 2xx for, and the position its answer named.
struct Ack {
    event: Value,
    stream: String,
    sequence: u64,
}

/// What one client saw.
#[derive(Default)]
struct Report {
    acks: Vec<Ack>,
    /// Answers other than 2xx, 503 and 504, and requests without an answer.
    unexpected: Vec<String>,
    /// Events sent and never acknowledged: each stored at most once.
    unacknowledged: Vec<Value>,
    /// 503 and 504 answers, each followed by a resend.
    retried: BTreeMap<u16, u64>,
}

/// One client: sends a random event to a random node in the rotation, resending it after
/// a 503 or 504 (or no answer) until a 2xx, until `stop` is set.
struct Client<'a> {
    index: usize,
    rng: Rng,
    http: reqwest::blocking::Client,
    rotation: &'a Rotation,
    stop: &'a AtomicBool,
    acked: &'a AtomicU64,
    next_order: u64,
    report: Report,
}

impl Client<'_> {
    fn run(mut self) -> Report {
        while !self.stop.load(Ordering::Relaxed) {
            let event = self.next_event();
            self.deliver(event);
            std::thread::sleep(PACE);
        }
        self.report
    }

    /// Mostly new orders (some of them rejected for stock or declined for credit), with
    /// stock and credit added now and then: ingress no domain refuses, so any 409 is a
    /// defect.
    fn next_event(&mut self) -> Value {
        let roll = self.rng.between(0, 99);
        if roll < 8 {
            let sku = match self.rng.chance(30) {
                true => SCARCE_SKU,
                false => *self.rng.pick(&SKUS),
            };
            return stock_added(sku, self.rng.between(1, 5));
        }
        if roll < 16 {
            let customer = match self.rng.chance(40) {
                true => POOR_CUSTOMER,
                false => *self.rng.pick(&CUSTOMERS),
            };
            return credit_granted(customer, self.rng.between(1, 300));
        }
        self.next_order += 1;
        let order = format!("c{}-o{}", self.index, self.next_order);
        let customer = match self.rng.chance(10) {
            true => POOR_CUSTOMER,
            false => *self.rng.pick(&CUSTOMERS),
        };
        let lines: Vec<(&str, u64, u64)> = (0..self.rng.between(1, 2))
            .map(|_| {
                let sku = match self.rng.chance(15) {
                    true => SCARCE_SKU,
                    false => *self.rng.pick(&SKUS),
                };
                (sku, self.rng.between(1, 3), self.rng.between(1, 200))
            })
            .collect();
        order_placed(&order, customer, &lines)
    }

    /// Sends `event` until a 2xx, resending after a 503, a 504 or no answer.
    fn deliver(&mut self, event: Value) {
        let what = format!("{} {}", text(&event["type"]), text(&event["id"]));
        let mut give_up_at: Option<Instant> = None;
        let mut attempts = 0;
        loop {
            if self.stop.load(Ordering::Relaxed) && give_up_at.is_none() {
                give_up_at = Some(Instant::now() + GIVE_UP);
            }
            if give_up_at.is_some_and(|at| Instant::now() > at) {
                self.report.unexpected.push(format!(
                    "{what}: no 2xx in {attempts} attempts, the last {GIVE_UP:?} after the \
                     load stopped"
                ));
                self.report.unacknowledged.push(event);
                return;
            }
            let Some(visit) = self.rotation.visit(&mut self.rng) else {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            };
            attempts += 1;
            let answer = self
                .http
                .post(format!("{}/v1/events", visit.base))
                .header("content-type", "application/cloudevents+json")
                .body(event.to_string())
                .send()
                .and_then(|response| {
                    let status = response.status().as_u16();
                    response.text().map(|body| (status, body))
                });
            let base = visit.base.clone();
            drop(visit);
            let (status, body) = match answer {
                Ok(answer) => answer,
                Err(error) => {
                    // It may have been stored: the resend is recognised.
                    self.report
                        .unexpected
                        .push(format!("{what}: no answer from {base}: {error}"));
                    continue;
                }
            };
            let json: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            match status {
                200 | 202 => {
                    if status == 200 && attempts == 1 {
                        self.report.unexpected.push(format!(
                            "{what}: its first send answered 200 from {base}: {body}"
                        ));
                    }
                    match (json["stream"].as_str(), json["sequence"].as_u64()) {
                        (Some(stream), Some(sequence)) => {
                            self.report.acks.push(Ack {
                                event,
                                stream: stream.to_owned(),
                                sequence,
                            });
                            self.acked.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => {
                            self.report.unexpected.push(format!(
                                "{what}: {status} from {base} without a position: {body}"
                            ));
                            self.report.unacknowledged.push(event);
                        }
                    }
                    return;
                }
                503 | 504 => {
                    *self.report.retried.entry(status).or_default() += 1;
                    std::thread::sleep(Duration::from_millis(50));
                }
                _ => {
                    self.report
                        .unexpected
                        .push(format!("{what}: {status} from {base}: {body}"));
                    self.report.unacknowledged.push(event);
                    return;
                }
            }
        }
    }
}

/// Sets the flag when dropped, so clients stop on every way out of the test, a panic too.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Waits until clients have `more` acknowledgements than now, failing with `phase`.
fn await_progress(acked: &AtomicU64, more: u64, phase: &str) {
    let from = acked.load(Ordering::Relaxed);
    let timeout = Duration::from_secs(60);
    assert!(
        poll(timeout, || acked.load(Ordering::Relaxed) >= from + more),
        "{phase}: expected {more} more acknowledgements within {timeout:?}, saw {}",
        acked.load(Ordering::Relaxed) - from
    );
}

/// Everything the test started, kept so a failure leaves every log behind.
struct Fixture {
    cluster: NatsCluster,
    /// The nodes running now, in `NODES` order.
    nodes: Vec<Node>,
    /// Nodes the rolling restart stopped, by id.
    retired: Vec<(&'static str, Node)>,
}

impl Fixture {
    /// Writes every node's and every NATS server's log into a directory named after the
    /// seed, under the temporary directory; returns it.
    fn keep_logs(&self, seed: u64) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("herald-nats-cluster-{seed}"));
        let _ = std::fs::create_dir_all(&dir);
        for (id, node) in NODES.iter().zip(&self.nodes) {
            let _ = std::fs::write(dir.join(format!("{id}.log")), node.logs());
        }
        for (id, node) in &self.retired {
            let _ = std::fs::write(dir.join(format!("{id}-before-restart.log")), node.logs());
        }
        for index in 0..self.cluster.len() {
            let name = self.cluster.server_name(index);
            let _ = std::fs::write(dir.join(format!("{name}.log")), self.cluster.log(index));
        }
        dir
    }
}

#[test]
fn a_nats_server_killed_and_every_node_restarted_under_load_lose_and_repeat_nothing() {
    let (rng, seed) = Rng::from_env_or_clock("HERALD_CLUSTER_SEED");
    eprintln!("seed {seed}: HERALD_CLUSTER_SEED={seed} repeats this run's choices");
    let mut fixture = Fixture {
        cluster: NatsCluster::start(),
        nodes: Vec::new(),
        retired: Vec::new(),
    };
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        kill_restart_and_check(&mut fixture, rng, seed)
    }));
    if let Err(panic) = outcome {
        let dir = fixture.keep_logs(seed);
        eprintln!("every node's and NATS server's log is in {}", dir.display());
        std::panic::resume_unwind(panic);
    }
}

/// The test proper, on a healthy cluster: nodes, load, the kill and the restarts, checks.
fn kill_restart_and_check(fixture: &mut Fixture, mut rng: Rng, seed: u64) {
    let Fixture {
        cluster,
        nodes,
        retired,
    } = fixture;
    let began = Instant::now();
    let phase = |what: &str| eprintln!("[{:>6.1} s] {what}", began.elapsed().as_secs_f64());
    let env = [("HERALD_DOMAINS__PARTITIONS", PARTITIONS)];
    // One at a time: nodes started together on a fresh NATS may disagree on the layout.
    for id in NODES {
        nodes.push(cluster.node(id, ALL_DOMAINS, &env));
    }
    phase("three nodes ready");
    let mut seeds: Vec<Value> = SKUS.iter().map(|sku| stock_added(sku, 1_000_000)).collect();
    seeds.push(stock_added(SCARCE_SKU, 5));
    seeds.extend(CUSTOMERS.iter().map(|c| credit_granted(c, 100_000_000)));
    seeds.push(credit_granted(POOR_CUSTOMER, 300));
    let seeds: Vec<Ack> = seeds
        .into_iter()
        .map(|event| {
            let reply = nodes[0].publish(&event);
            assert_eq!(reply.status, 202, "seeding {event}: {}", reply.text);
            Ack {
                stream: text(&reply.json["stream"]),
                sequence: reply.json["sequence"].as_u64().unwrap_or(0),
                event,
            }
        })
        .collect();

    let rotation = Rotation::new(nodes.iter().map(|node| node.base.clone()).collect());
    let stop = AtomicBool::new(false);
    let acked = AtomicU64::new(0);
    let mut victim = 0;
    let reports: Vec<Report> = std::thread::scope(|scope| {
        let _stop_on_drop = StopOnDrop(&stop);
        let clients: Vec<_> = (0..CLIENTS)
            .map(|index| {
                let client = Client {
                    index,
                    rng: Rng::seeded(seed ^ (index as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
                    http: reqwest::blocking::Client::builder()
                        .timeout(Duration::from_secs(30))
                        // Below the node's keep-alive, so no request goes out on a
                        // connection the node is closing.
                        .pool_idle_timeout(Duration::from_secs(1))
                        .build()
                        .expect("http client"),
                    rotation: &rotation,
                    stop: &stop,
                    acked: &acked,
                    next_order: 0,
                    report: Report::default(),
                };
                scope.spawn(move || client.run())
            })
            .collect();
        await_progress(&acked, 50, "load starting");
        phase("load under way");

        victim = cluster
            .meta_leader()
            .unwrap_or_else(|| rng.between(0, cluster.len() as u64 - 1) as usize);
        cluster.kill(victim);
        let name = cluster.server_name(victim).to_owned();
        phase(&format!("SIGKILLed {name}, JetStream's meta leader"));
        await_progress(&acked, 100, &format!("with {name} down"));
        cluster.start_again(victim);
        cluster.await_healthy(Duration::from_secs(90));
        phase(&format!("{name} back and current"));
        await_progress(&acked, 50, "after the NATS server came back");

        for (index, id) in NODES.iter().enumerate() {
            rotation.drain(index, Duration::from_secs(60));
            nodes[index].stop();
            phase(&format!("{id} stopped"));
            let again = cluster.node(id, ALL_DOMAINS, &env);
            rotation.open(index, again.base.clone());
            retired.push((id, std::mem::replace(&mut nodes[index], again)));
            phase(&format!("{id} ready again"));
            await_progress(&acked, 50, &format!("after {id} came back"));
        }
        stop.store(true, Ordering::Relaxed);
        clients
            .into_iter()
            .map(|client| client.join().expect("a client ran to its end"))
            .collect()
    });
    phase("load stopped");

    let mut retried: BTreeMap<u16, u64> = BTreeMap::new();
    for report in &reports {
        for (status, count) in &report.retried {
            *retried.entry(*status).or_default() += count;
        }
    }
    let acks: Vec<&Ack> = seeds
        .iter()
        .chain(reports.iter().flat_map(|r| &r.acks))
        .collect();
    eprintln!(
        "{} events acknowledged; resends after 503 and 504: {retried:?}",
        acks.len()
    );
    let unexpected: Vec<&String> = reports.iter().flat_map(|r| &r.unexpected).collect();
    assert!(
        unexpected.is_empty(),
        "clients saw {} answer(s) other than 2xx, 503 or 504 (first 20):\n  {}",
        unexpected.len(),
        unexpected
            .iter()
            .take(20)
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n  ")
    );

    let log = invariants::settled(&nodes[0], Duration::from_secs(120));
    phase("every saga settled");
    check_stored_once(&log, &acks, &reports);
    check_through_nats(cluster, victim, &log, &nodes[0]);
    phase("checked");
}

/// Every acknowledged event stored once where its answer said, every unacknowledged one
/// at most once, and no event from outside (not a reaction) that no client sent.
fn check_stored_once(log: &invariants::Log, acks: &[&Ack], reports: &[Report]) {
    let mut failures = invariants::Failures::default();
    for ack in acks {
        let places = log.by_id.get(&key(&ack.event)).cloned().unwrap_or_default();
        if places != [(ack.stream.clone(), ack.sequence)] {
            failures.add(
                "an acknowledged event stored once, where its answer said",
                format!(
                    "{}: answered at {}/{}, stored at {places:?}",
                    text(&ack.event["id"]),
                    ack.stream,
                    ack.sequence
                ),
            );
        }
    }
    let unacknowledged = reports.iter().flat_map(|r| &r.unacknowledged);
    for event in unacknowledged.clone() {
        let places = log.by_id.get(&key(event)).map_or(0, Vec::len);
        if places > 1 {
            failures.add(
                "an unacknowledged event stored at most once",
                format!("{}: stored {places} times", text(&event["id"])),
            );
        }
    }
    let sent: BTreeSet<(String, String)> = acks
        .iter()
        .map(|ack| &ack.event)
        .chain(unacknowledged)
        .map(key)
        .collect();
    for event in log.events() {
        let id = key(event);
        if event.get("causeid").is_none() && !sent.contains(&id) {
            failures.add(
                "nothing stored that no client sent",
                format!("{id:?}, a {}", text(&event["type"])),
            );
        }
    }
    failures.assert_none("after the NATS server's SIGKILL and the rolling restart");
}

/// A plain NATS client reads each stream through the server that was killed, with the same
/// events in the same order as Herald's read API; and every server's replica of every
/// stream holds the same, the restarted server's included.
fn check_through_nats(cluster: &NatsCluster, victim: usize, log: &invariants::Log, node: &Node) {
    let on_victim = cluster
        .replica_states(victim)
        .unwrap_or_else(|error| panic!("the restarted server's /jsz: {error}"));
    let mut expected: BTreeMap<String, Option<(u64, u64)>> = BTreeMap::new();
    for (stream, events) in &log.streams {
        let name = format!("herald-{stream}");
        // A stream nothing was ever appended to may not exist in JetStream.
        if !on_victim.contains_key(&name) {
            assert!(
                events.is_empty(),
                "Herald's read API lists {} events in {stream}, but the restarted server has \
                 no replica of JetStream stream {name}; it has: {:?}",
                events.len(),
                on_victim.keys().collect::<Vec<_>>()
            );
            continue;
        }
        let count = events.len() as u64;
        expected.insert(name.clone(), Some((count, count)));
        let messages = read_stream(&cluster.url(victim), &name);
        let through_nats: Vec<(String, String)> = messages
            .iter()
            .map(|message| {
                (
                    message.header("ce-source").unwrap_or_default().to_owned(),
                    message.header("ce-id").unwrap_or_default().to_owned(),
                )
            })
            .collect();
        let through_herald: Vec<(String, String)> = events.iter().map(key).collect();
        if through_nats != through_herald {
            // What differs, and whether Herald reads the same now: a late append and a read
            // cut short look alike in the counts alone.
            let differ = through_nats
                .iter()
                .zip(&through_herald)
                .position(|(a, b)| a != b)
                .unwrap_or(through_nats.len().min(through_herald.len()));
            let mut types: BTreeMap<&str, usize> = BTreeMap::new();
            for message in messages.iter().skip(differ) {
                *types
                    .entry(message.header("ce-type").unwrap_or("?"))
                    .or_default() += 1;
            }
            panic!(
                "stream {stream}: a plain NATS client reads {} events, Herald's read API {}; \
                 they first differ at index {differ}; the NATS client's from there, by type: \
                 {types:?}; Herald's read API now reads {} events",
                through_nats.len(),
                through_herald.len(),
                node.read_stream(stream).len()
            );
        }
    }

    let mut by_server = Vec::new();
    let agreed = poll(Duration::from_secs(30), || {
        by_server = (0..cluster.len())
            .map(|index| {
                cluster.replica_states(index).map(|states| {
                    expected
                        .keys()
                        .map(|name| (name.clone(), states.get(name).copied()))
                        .collect::<BTreeMap<_, _>>()
                })
            })
            .collect();
        by_server
            .iter()
            .all(|states| states.as_ref() == Ok(&expected))
    });
    assert!(
        agreed,
        "expected every server's replica of every stream to hold its events, (messages, last \
         sequence) = {expected:?}; saw, by server ({CLUSTER_SIZE}):\n{by_server:#?}"
    );
}
