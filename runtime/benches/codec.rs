//! Encode+decode of one envelope through Herald's codec (bincode 2 + format tag), against
//! serde_json of the same envelope as the baseline, measured in the same run.
#![allow(missing_docs)] // criterion's macros generate undocumented public functions.

use criterion::{criterion_group, criterion_main, Criterion};
use herald_runtime::codec::{decode, encode, FormatTag};
use herald_runtime::Envelope;

fn envelope() -> Envelope {
    Envelope {
        id: "0b0c9a4e-6d1f-4f3a-9a0e-3c1d2b4a5f60".into(),
        source: "/shop/checkout".into(),
        specversion: "1.0".into(),
        event_type: "orders.OrderPlaced".into(),
        subject: "o-12345".into(),
        time: "2026-11-25T10:00:00Z".into(),
        datacontenttype: "application/json".into(),
        data: br#"{"order_id":"o-12345","customer":"c-1","lines":[{"sku":"s-1","quantity":2,"unit_price":700}]}"#.to_vec(),
        partitionkey: "o-12345".into(),
        traceparent: None,
        extensions: Vec::new(),
        cause: None,
        stream: "orders".into(),
        sequence: 42,
    }
}

fn codec(c: &mut Criterion) {
    let envelope = envelope();
    let mut group = c.benchmark_group("envelope round trip");
    group.bench_function("herald codec (bincode 2)", |b| {
        b.iter(|| {
            let bytes = encode(FormatTag::EnvelopeV1, &envelope).expect("encodes");
            decode::<Envelope>(FormatTag::EnvelopeV1, &bytes).expect("decodes")
        })
    });
    group.bench_function("baseline: serde_json", |b| {
        b.iter(|| {
            let bytes = serde_json::to_vec(&envelope).expect("encodes");
            serde_json::from_slice::<Envelope>(&bytes).expect("decodes")
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default();
    targets = codec
}
criterion_main!(benches);
