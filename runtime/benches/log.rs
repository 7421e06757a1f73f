//! Durable appends to Herald's file log against a raw append-plus-`fdatasync` loop writing
//! the same bytes per batch, in the same run: batches of 1, 64 and 1024 records of about
//! 300 bytes. Both run in the target directory, on the same disk as the node's data. Then
//! the serialized part of an append (time under the log's lock) against the whole append.
#![allow(missing_docs)] // criterion's macros generate undocumented public functions.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::Path;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use herald_runtime::log::{EventLog, FileLog, FileLogOptions};
use herald_runtime::Envelope;

fn envelope(n: u64) -> Envelope {
    Envelope {
        id: format!("0b0c9a4e-6d1f-4f3a-9a0e-{n:012}"),
        source: "/shop/checkout".into(),
        specversion: "1.0".into(),
        event_type: "orders.OrderPlaced".into(),
        subject: format!("o-{n}"),
        time: "2026-11-25T10:00:00Z".into(),
        datacontenttype: "application/json".into(),
        data: format!(r#"{{"order_id":"o-{n}","customer":"c-1","lines":[{{"sku":"s-1","quantity":2,"unit_price":700}}]}}"#).into_bytes(),
        partitionkey: format!("o-{n}"),
        traceparent: None,
        extensions: Vec::new(),
        cause: None,
        stream: String::new(),
        sequence: 0,
    }
}

fn scratch_dir() -> tempfile::TempDir {
    tempfile::tempdir_in(Path::new(env!("CARGO_TARGET_TMPDIR"))).expect("a scratch directory")
}

fn append(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime to await durability");
    let mut group = c.benchmark_group("durable append");
    group.sample_size(20);
    for batch in [1_u64, 64, 1024] {
        group.throughput(Throughput::Elements(batch));
        // Durable, then the same appends without syncing: the log's own CPU cost.
        for (fsync, name) in [
            (true, "herald file log"),
            (false, "herald file log, fsync never"),
        ] {
            let dir = scratch_dir();
            let log = FileLog::open(FileLogOptions {
                fsync,
                ..FileLogOptions::new(dir.path().join("log"))
            })
            .expect("log opens")
            .log;
            let mut next = 0;
            group.bench_with_input(BenchmarkId::new(name, batch), &batch, |b, &batch| {
                // Building the events is the client's work, not the log's: it is not timed.
                b.iter_batched(
                    || {
                        let events: Vec<Envelope> = (next..next + batch).map(envelope).collect();
                        next += batch;
                        events
                    },
                    |events| {
                        let records = log.append("orders", 0, events).expect("appends");
                        let last = records.last().map_or(0, |r| r.offset);
                        runtime
                            .block_on(log.durability().wait(last))
                            .expect("durable");
                        records
                    },
                    BatchSize::SmallInput,
                )
            });
        }

        // The same bytes per record (an encoded envelope is about this size), one write
        // and one fdatasync per batch.
        let record_bytes = herald_runtime::codec::encode(
            herald_runtime::codec::FormatTag::EnvelopeV1,
            &envelope(0),
        )
        .expect("encodes")
        .len()
            + 8;
        let raw_dir = scratch_dir();
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(raw_dir.path().join("raw.seg"))
            .expect("raw file");
        let buffer = vec![7_u8; record_bytes * batch as usize];
        group.bench_with_input(
            BenchmarkId::new("baseline: raw write + fdatasync", batch),
            &batch,
            |b, _| {
                b.iter(|| {
                    file.write_all(&buffer).expect("writes");
                    file.sync_data().expect("syncs");
                })
            },
        );
    }
    group.finish();
}

/// The serialized cost of an event: how long an append holds the log's lock (offsets, the
/// deduplication index, one copy, one write, the index), per event, next to the whole CPU
/// cost of the same append (fsync never) measured in the same run. Only the first can never
/// run on two cores at once.
fn serialized(c: &mut Criterion) {
    let mut group = c.benchmark_group("serialized append");
    group.sample_size(20);
    for batch in [1_u64, 64] {
        group.throughput(Throughput::Elements(batch));
        let dir = scratch_dir();
        let log = FileLog::open(FileLogOptions {
            fsync: false,
            ..FileLogOptions::new(dir.path().join("log"))
        })
        .expect("log opens")
        .log;
        let mut next = 0;
        let mut events = |batch: u64| {
            let events: Vec<Envelope> = (next..next + batch).map(envelope).collect();
            next += batch;
            events
        };
        group.bench_with_input(
            BenchmarkId::new("baseline: whole append, fsync never", batch),
            &batch,
            |b, &batch| {
                b.iter_batched(
                    || events(batch),
                    |events| log.append("orders", 0, events).expect("appends"),
                    BatchSize::SmallInput,
                )
            },
        );
        group.bench_with_input(
            BenchmarkId::new("under the log's lock", batch),
            &batch,
            |b, &batch| {
                b.iter_custom(|iters| {
                    let (before, _) = log.serialized();
                    for _ in 0..iters {
                        log.append("orders", 0, events(batch)).expect("appends");
                    }
                    log.serialized().0 - before
                })
            },
        );
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default();
    targets = append, serialized
}
criterion_main!(benches);
