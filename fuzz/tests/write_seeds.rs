//! Writes the seeds of `log_record` and `log_segment` (`fuzz/seeds/<target>/`) from a real
//! log: events parsed as the gateway parses them, appended by `FileLog` (its framing and
//! encoding), read back from the segment file. Ignored by default, since it rewrites
//! committed files (times differ per run):
//!
//! ```sh
//! cd fuzz && cargo +nightly test --test write_seeds -- --ignored
//! ```

use std::fs;
use std::path::{Path, PathBuf};

use herald_runtime::cloudevent::parse_structured;
use herald_runtime::log::frame::{self, Parsed};
use herald_runtime::log::{EventLog, FileLog, FileLogOptions, Part};
use herald_runtime::{Cause, Envelope, Position};
use serde_json::{json, Value};

const SEGMENT_HEADER: usize = 16;

fn event(value: Value) -> Envelope {
    parse_structured(value).expect("seed event parses").envelope
}

fn client_events() -> Vec<Envelope> {
    vec![
        event(json!({
            "specversion": "1.0", "id": "s-1", "source": "/seeds", "type": "inventory.StockAdded",
            "subject": "sku-1", "data": {"sku": "sku-1", "quantity": 10}
        })),
        event(json!({
            "specversion": "1.0", "id": "s-2", "source": "/seeds", "type": "orders.OrderPlaced",
            "subject": "o-1", "time": "2026-11-25T10:00:00Z", "partitionkey": "alice",
            "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "tenant": "acme", "priority": 3, "urgent": true,
            "data": {"order_id": "o-1", "customer": "alice",
                     "lines": [{"sku": "sku-1", "quantity": 2, "unit_price": 700}]}
        })),
        event(json!({
            "specversion": "1.0", "id": "s-3", "source": "/seeds", "type": "payments.CreditGranted",
            "subject": "alice", "data": {"customer": "alice", "amount": 5000, "note": "caf\u{e9} \u{1f600}"}
        })),
    ]
}

/// A reaction as a domain host appends it: Herald's source and the input that caused it.
fn reaction(input: &Envelope, stream: &str, sequence: u64) -> Envelope {
    let mut envelope = event(json!({
        "specversion": "1.0", "id": "r-1", "source": "/seeds", "type": "inventory.StockReserved",
        "subject": "sku-1", "data": {"sku": "sku-1", "order_id": "o-1", "quantity": 2}
    }));
    envelope.source = "/herald/domains/inventory".into();
    envelope.cause = Some(Cause {
        source: input.source.clone(),
        id: input.id.clone(),
        position: Position {
            stream: stream.into(),
            sequence,
        },
    });
    envelope
}

/// A log with single appends, a reaction and a three-record append over two streams.
fn real_segment(dir: &Path) -> Vec<u8> {
    let opened = FileLog::open(FileLogOptions {
        fsync: false,
        ..FileLogOptions::new(dir)
    })
    .expect("open a fresh log");
    let log = opened.log;
    let [stock, order, credit]: [Envelope; 3] = client_events().try_into().expect("three events");
    log.append("inventory", 0, vec![stock]).expect("append");
    let order_records = log.append("orders", 0, vec![order]).expect("append");
    log.append(
        "inventory",
        2,
        vec![reaction(&order_records[0].envelope, "orders", 1)],
    )
    .expect("append");
    let mut second = credit.clone();
    second.id = "s-4".into();
    log.append_all(vec![
        Part {
            stream: "payments".into(),
            consumed: 0,
            events: vec![credit, second],
        },
        Part {
            stream: "analytics".into(),
            consumed: 3,
            events: client_events().into_iter().take(1).collect(),
        },
    ])
    .expect("append_all");
    drop(log);
    fs::read(dir.join("00000000000000000001.seg")).expect("read the segment")
}

/// Each frame of a segment: (start, size).
fn frames(segment: &[u8]) -> Vec<(usize, usize)> {
    let mut found = Vec::new();
    let mut pos = SEGMENT_HEADER;
    while let Parsed::Whole { size, .. } = frame::parse(&segment[pos..]) {
        found.push((pos, size));
        pos += size;
    }
    assert_eq!(pos, segment.len(), "the real segment is all whole frames");
    found
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    fs::write(dir.join(name), bytes).expect("write a seed");
}

fn seeds_dir(target: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("seeds")
        .join(target);
    fs::create_dir_all(&dir).expect("create the seeds directory");
    dir
}

#[test]
#[ignore = "rewrites the committed seeds; run on purpose"]
fn write_log_seeds() {
    let temp = tempfile::tempdir().expect("temp dir");
    let segment = real_segment(temp.path());
    let frames = frames(&segment);
    assert_eq!(frames.len(), 6);

    let records = seeds_dir("log_record");
    for (n, &(start, size)) in frames.iter().enumerate() {
        let framed = &segment[start..start + size];
        write(&records, &format!("frame-{}", n + 1), framed);
        write(
            &records,
            &format!("payload-{}", n + 1),
            &framed[frame::HEADER_LEN..],
        );
    }
    write(&records, "body-all-frames", &segment[SEGMENT_HEADER..]);
    let (start, size) = frames[1];
    write(&records, "frame-torn", &segment[start..start + size - 5]);
    let mut flipped = segment[start..start + size].to_vec();
    flipped[frame::HEADER_LEN + 3] ^= 0x20;
    write(&records, "frame-bad-checksum", &flipped);
    write(&records, "zeros", &[0; 24]);

    let segments = seeds_dir("log_segment");
    write(&segments, "clean", &segment);
    write(&segments, "header-only", &segment[..SEGMENT_HEADER]);
    write(&segments, "header-torn", &segment[..11]);
    let (last_start, last_size) = frames[frames.len() - 1];
    write(
        &segments,
        "torn-last-record",
        &segment[..last_start + last_size - 7],
    );
    // The last append holds three records: keep only the first of them.
    let (group_start, group_size) = frames[3];
    write(
        &segments,
        "torn-append",
        &segment[..group_start + group_size],
    );
    let mut zeros = segment.clone();
    zeros.extend_from_slice(&[0; 64]);
    write(&segments, "zero-tail", &zeros);
    let mut corrupt = segment.clone();
    corrupt[frames[1].0 + frame::HEADER_LEN + 2] ^= 0x01;
    write(&segments, "corrupt-middle", &corrupt);
    let mut magic = segment.clone();
    magic[0] = b'X';
    write(&segments, "bad-magic", &magic);
}
