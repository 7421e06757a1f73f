//! Replay: rebuilding every example domain's state from a durable log of one million
//! events, as a node does on start without snapshots: orders and shipping laid out in one
//! partition per core (the embedded default; `HERALD_BENCH_PARTITIONS` overrides), every
//! host (domain or partition) rebuilt on its own thread at once. Reported as log events per
//! second (each host reads the whole log's index, and the records it consumes).
#![allow(missing_docs)] // criterion's macros generate undocumented public functions.

use std::path::Path;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use herald_runtime::cloudevent::parse_structured;
use herald_runtime::hosted::{DomainEntry, HostedDomain};
use herald_runtime::log::{EventLog, FileLog, FileLogOptions};
use herald_runtime::partition::Inputs;
use herald_runtime::replay::{rebuild, replay_limit, Start};
use herald_runtime::Envelope;
use serde_json::{json, Value};

/// The allocator the `herald` binary uses, so the figure is the node's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const EVENTS: u64 = 1_000_000;
const TIME: &str = "2026-11-25T10:00:00Z";

/// One host: a domain, or one partition of it.
struct Member {
    entry: DomainEntry,
    stream: String,
    domain: Box<dyn HostedDomain>,
    inputs: Inputs,
    cursor: u64,
}

/// Partitions of orders and shipping: one per core, as a node defaults to.
fn partitions() -> u32 {
    std::env::var("HERALD_BENCH_PARTITIONS")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get() as u32))
        .max(1)
}

/// Every host of the example domains, fresh.
fn members() -> Vec<Member> {
    let partitions = partitions();
    herald_domains::all()
        .into_iter()
        .flat_map(|entry| {
            let description = entry.describe();
            let count = match description.partitioning.by_key() {
                true => partitions,
                false => 1,
            };
            (0..count).map(move |p| {
                let description = entry.describe();
                Member {
                    stream: herald_runtime::partition::stream(entry.name, p, count),
                    domain: entry.create(),
                    inputs: Inputs::new(
                        &description.subscriptions,
                        description.partitioning,
                        (count > 1).then_some((p, count)),
                    ),
                    entry: entry.clone(),
                    cursor: 0,
                }
            })
        })
        .collect()
}

fn ingress(event_type: &str, subject: &str, id: u64, data: Value) -> Envelope {
    parse_structured(json!({
        "specversion": "1.0", "id": format!("bench-{id}"), "source": "/bench",
        "type": event_type, "subject": subject, "time": TIME, "data": data,
    }))
    .expect("a valid event")
    .envelope
}

/// Writes the saga into `dir` until the log holds a million events: stock, credit, orders
/// (a few rejected or declined), deliveries, with every domain's reactions.
fn write_saga(dir: &Path) -> Arc<FileLog> {
    let log = Arc::new(
        FileLog::open(FileLogOptions {
            fsync: false,
            ..FileLogOptions::new(dir)
        })
        .expect("log opens")
        .log,
    );
    let mut members = members();
    let mut id = 0;
    let mut order = 0;
    while log.head() < EVENTS {
        let mut events = Vec::new();
        for _ in 0..200 {
            order += 1;
            let sku = format!("sku-{}", order % 50);
            let customer = format!("c-{}", order % 100);
            if order % 50 == 0 {
                events.push(ingress(
                    "inventory.StockAdded",
                    &sku,
                    id,
                    json!({"sku": sku, "quantity": 500}),
                ));
                id += 1;
            }
            if order % 100 == 0 {
                events.push(ingress(
                    "payments.CreditGranted",
                    &customer,
                    id,
                    json!({"customer": customer, "amount": 100_000}),
                ));
                id += 1;
            }
            let order_id = format!("o-{order}");
            events.push(ingress(
                "orders.OrderPlaced",
                &order_id,
                id,
                json!({"order_id": order_id, "customer": customer, "lines": [{"sku": sku, "quantity": 1, "unit_price": 700}]}),
            ));
            id += 1;
        }
        for event in events {
            let domain = event.event_type.split('.').next().unwrap_or_default();
            let hosts = members.iter().filter(|m| m.entry.name == domain).count() as u32;
            let stream = herald_runtime::partition::stream(
                domain,
                herald_runtime::partition::of(&event.subject, hosts),
                hosts,
            );
            let member = members
                .iter_mut()
                .find(|m| m.stream == stream)
                .expect("an owning host");
            member.domain.admit(&event).expect("admitted");
            log.append(&stream, member.cursor, vec![event])
                .expect("appended");
        }
        settle(log.as_ref(), &mut members);
    }
    log
}

fn settle(log: &dyn EventLog, members: &mut [Member]) {
    let mut progressed = true;
    while progressed {
        progressed = false;
        for member in members.iter_mut() {
            let inputs = &member.inputs;
            let batch = log
                .read_after(member.cursor, 4096, &|t| inputs.take(t))
                .expect("reads");
            for record in &batch.records {
                let emitted = member
                    .domain
                    .handle(&record.envelope, TIME)
                    .unwrap_or_default();
                if !emitted.is_empty() {
                    let records = log
                        .append(&member.stream, record.offset, emitted)
                        .expect("appends");
                    for appended in &records {
                        member.domain.apply(&appended.envelope).expect("applies");
                    }
                }
                member.cursor = record.offset;
            }
            if batch.scanned_to > member.cursor {
                member.cursor = batch.scanned_to;
            }
            progressed |= !batch.records.is_empty();
        }
    }
}

/// What a starting node does per host, every host on its own thread at once: replay to
/// the limit, then consume the rest.
fn rebuild_all(log: &dyn EventLog) -> u64 {
    std::thread::scope(|scope| {
        let hosts: Vec<_> = members()
            .into_iter()
            .map(|member| scope.spawn(move || rebuild_one(log, member)))
            .collect();
        hosts
            .into_iter()
            .map(|host| host.join().expect("a host rebuilds"))
            .sum()
    })
}

/// Rebuilds one host; with `HERALD_BENCH_TRACE` set, prints how long it took (where the
/// time goes: the slowest host bounds the whole).
fn rebuild_one(log: &dyn EventLog, member: Member) -> u64 {
    let started = std::time::Instant::now();
    let name = member.stream.clone();
    let handled = rebuild_host(log, member);
    if std::env::var_os("HERALD_BENCH_TRACE").is_some() {
        eprintln!("{name}: {handled} records in {:?}", started.elapsed());
    }
    handled
}

fn rebuild_host(log: &dyn EventLog, mut member: Member) -> u64 {
    let inputs = &member.inputs;
    let wanted = |t: &str| inputs.take(t);
    let upto = replay_limit(log, &member.stream).expect("limit");
    let replayed = rebuild(
        member.domain.as_mut(),
        &member.stream,
        log,
        &wanted,
        Start::default(),
        upto,
        TIME,
    )
    .expect("rebuilds");
    let mut handled = replayed.handled + replayed.applied;
    let mut cursor = replayed.cursor;
    loop {
        let batch = log.read_after(cursor, 4096, &wanted).expect("reads");
        for record in &batch.records {
            let _ = member.domain.handle(&record.envelope, TIME);
            handled += 1;
        }
        if batch.scanned_to == cursor {
            break;
        }
        cursor = batch.scanned_to;
    }
    handled
}

fn replay(c: &mut Criterion) {
    let dir = tempfile::tempdir_in(Path::new(env!("CARGO_TARGET_TMPDIR"))).expect("a scratch dir");
    let log = write_saga(&dir.path().join("log"));
    let head = log.head();
    let mut group = c.benchmark_group("replay");
    group.sample_size(10);
    group.throughput(Throughput::Elements(head));
    group.bench_function(
        format!(
            "rebuild every example domain ({} partitions of orders and shipping) from {head} events",
            partitions()
        ),
        |b| b.iter(|| rebuild_all(log.as_ref())),
    );
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default();
    targets = replay
}
criterion_main!(benches);
