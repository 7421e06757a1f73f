//! Events that evolve, on a real node: `scales.Weighed` was `{key, kilos}` (version 1) and
//! is `{key, grams}` (version 2). A log written before the change is read by the new build:
//! its owner applies, and a consumer handles, each old event upcast to grams; new events
//! are stored marked version 2; the read API shows either; and all of it holds after a
//! restart from snapshots.

use std::path::Path;

use herald_integration_tests::*;
use herald_runtime::envelope::JSON_CONTENT_TYPE;
use herald_runtime::log::EventLog;
use herald_runtime::log::{FileLog, FileLogOptions};
use herald_runtime::Envelope;
use serde_json::{json, Value};

fn weighed_v1(id: &str, key: &str, kilos: u64) -> Envelope {
    Envelope {
        id: id.to_owned(),
        source: "/scales-v1".to_owned(),
        specversion: "1.0".to_owned(),
        event_type: "scales.Weighed".to_owned(),
        subject: key.to_owned(),
        time: "2026-01-01T00:00:00Z".to_owned(),
        datacontenttype: JSON_CONTENT_TYPE.to_owned(),
        data: json!({"key": key, "kilos": kilos}).to_string().into_bytes(),
        partitionkey: key.to_owned(),
        traceparent: None,
        extensions: Vec::new(),
        cause: None,
        stream: String::new(),
        sequence: 0,
    }
}

/// What a build from before version 2 wrote: two weighings in kilos.
fn write_version_1_log(data_dir: &Path) {
    let opened = FileLog::open(FileLogOptions::new(data_dir.join("log"))).expect("log opens");
    opened
        .log
        .append(
            "scales",
            0,
            vec![weighed_v1("w-1", "crate", 2), weighed_v1("w-2", "crate", 3)],
        )
        .expect("appended");
}

#[test]
fn events_stored_at_an_older_version_are_upcast_for_the_domain_its_consumers_and_the_read_api() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_version_1_log(dir.path());
    let env = [("HERALD_DOMAINS__ENABLED", "scales,laggard,feeder")];
    let mut node = Node::start_in(dir.path(), &env);
    // The owner's replay and the consumer's handler both see grams.
    assert_eq!(
        node.entity("scales", "crate").expect("weighed"),
        json!({"key": "crate", "grams": 5000})
    );
    node.await_field("laggard", "crate", "grams", &json!(5000));

    // A client sends version 2; it is stored marked so.
    node.accept(&event(
        "scales.Weighed",
        "crate",
        json!({"key": "crate", "grams": 250}),
    ));
    // The old layout is refused at the door: clients write the current one.
    let old = node.publish(&event(
        "scales.Weighed",
        "crate",
        json!({"key": "crate", "kilos": 1}),
    ));
    assert_eq!(old.status, 422, "{}", old.json);
    node.await_field("laggard", "crate", "grams", &json!(5250));

    let stored = node.events_page("scales", 1, 10);
    assert_eq!(stored.len(), 3);
    assert_eq!(stored[0]["data"], json!({"key": "crate", "kilos": 2}));
    assert!(stored[0].get("heraldversion").is_none(), "{}", stored[0]);
    assert_eq!(stored[2]["heraldversion"], "2");
    let upcast = node.get("/v1/streams/scales/events?upcast=true");
    assert_eq!(upcast.status, 200, "{}", upcast.json);
    let upcast: Vec<Value> = upcast.json.as_array().cloned().unwrap_or_default();
    assert_eq!(upcast[0]["data"], json!({"key": "crate", "grams": 2000}));
    assert_eq!(upcast[0]["heraldversion"], "2");
    assert_eq!(upcast[2]["data"], json!({"key": "crate", "grams": 250}));
    let bad = node.get("/v1/streams/scales/events?upcast=maybe");
    assert_eq!(bad.status, 400, "{}", bad.json);

    // Restarted (snapshots at shutdown, then the log after them): the same.
    node.stop();
    let mut node = Node::start_in(dir.path(), &env);
    assert_eq!(node.entity("scales", "crate").unwrap()["grams"], 5250);
    assert_eq!(node.entity("laggard", "crate").unwrap()["grams"], 5250);
    node.kill();
    std::fs::remove_dir_all(dir.path().join("snapshots")).expect("snapshots removed");
    let node = Node::start_in(dir.path(), &env);
    assert_eq!(node.entity("scales", "crate").unwrap()["grams"], 5250);
    node.await_field("laggard", "crate", "grams", &json!(5250));
}
