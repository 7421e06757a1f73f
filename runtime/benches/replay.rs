//! Replay: rebuilding every example domain's state from a durable log of one million
//! events, as a node does on start without snapshots. Reported as log events per second
//! (the whole log is read once per domain that consumes from it).
#![allow(missing_docs)] // criterion's macros generate undocumented public functions.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use herald_runtime::cloudevent::parse_structured;
use herald_runtime::hosted::{DomainEntry, HostedDomain};
use herald_runtime::log::{EventLog, FileLog, FileLogOptions};
use herald_runtime::replay::{rebuild, replay_limit, Start};
use herald_runtime::Envelope;
use serde_json::{json, Value};

/// The allocator the `herald` binary uses, so the figure is the node's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const EVENTS: u64 = 1_000_000;
const TIME: &str = "2026-11-25T10:00:00Z";

struct Member {
    entry: DomainEntry,
    domain: Box<dyn HostedDomain>,
    subscriptions: HashSet<String>,
    cursor: u64,
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
    let mut members: Vec<Member> = herald_domains::all()
        .into_iter()
        .map(|entry| Member {
            domain: entry.create(),
            subscriptions: entry
                .describe()
                .subscriptions
                .iter()
                .map(|s| s.to_string())
                .collect(),
            entry,
            cursor: 0,
        })
        .collect();
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
            let stream = event
                .event_type
                .split('.')
                .next()
                .unwrap_or_default()
                .to_owned();
            let member = members
                .iter_mut()
                .find(|m| m.entry.name == stream)
                .expect("an owning domain");
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
            let subscriptions = member.subscriptions.clone();
            let batch = log
                .read_after(member.cursor, 4096, &|t| subscriptions.contains(t).into())
                .expect("reads");
            for record in &batch.records {
                let emitted = member
                    .domain
                    .handle(&record.envelope, TIME)
                    .unwrap_or_default();
                if !emitted.is_empty() {
                    let records = log
                        .append(member.entry.name, record.offset, emitted)
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

/// What a starting node does per domain: replay to the limit, then consume the rest.
fn rebuild_all(log: &dyn EventLog) -> u64 {
    let mut handled = 0;
    for entry in herald_domains::all() {
        let mut domain = entry.create();
        let subscriptions: HashSet<String> = entry
            .describe()
            .subscriptions
            .iter()
            .map(|s| s.to_string())
            .collect();
        let wanted = |t: &str| subscriptions.contains(t).into();
        let upto = replay_limit(log, entry.name).expect("limit");
        let stream = domain.name();
        let replayed = rebuild(
            domain.as_mut(),
            stream,
            log,
            &wanted,
            Start::default(),
            upto,
            TIME,
        )
        .expect("rebuilds");
        handled += replayed.handled + replayed.applied;
        let mut cursor = replayed.cursor;
        loop {
            let batch = log.read_after(cursor, 4096, &wanted).expect("reads");
            for record in &batch.records {
                let _ = domain.handle(&record.envelope, TIME);
                handled += 1;
            }
            if batch.scanned_to == cursor {
                break;
            }
            cursor = batch.scanned_to;
        }
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
        format!("rebuild every example domain from {head} events"),
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
