//! Faults stay local: a handler that panics or fails is retried, then parked as a dead
//! letter with its key held, while other keys and other domains go on; operators retry or
//! skip it over HTTP; all of it survives SIGKILL. A host that dies is started again, and a
//! restart loop marks its domain failed. Runs the real binary with the test-only `feeder`
//! and `faulty` domains (feature `fault-injection`); `faulty` is keyed by key, so it runs
//! in the harness's partitions: each partition parks, holds, bounds its parked keys and
//! restarts on its own, and the dead-letter API of the domain spans them all.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use herald_integration_tests::{
    credit_granted, domain_streams, event, eventually, key_stream, order_placed, poll, stock_added,
    stream_names, Node, Reply, TEST_PARTITIONS,
};
use herald_runtime::deadletter;
use serde_json::{json, Value};

const DOMAINS: &str = "analytics,inventory,orders,payments,shipping,feeder,faulty";

fn settings(cleared: bool) -> Vec<(&'static str, &'static str)> {
    let mut env = vec![
        ("HERALD_DOMAINS__ENABLED", DOMAINS),
        ("HERALD_DOMAIN__FAULTY__RETRY_ATTEMPTS", "3"),
        ("HERALD_DOMAIN__FAULTY__RETRY_BACKOFF", "20ms"),
        ("HERALD_DOMAIN__FAULTY__RETRY_BACKOFF_MAX", "80ms"),
        ("HERALD_DOMAINS__RESTART_LIMIT", "3"),
    ];
    if cleared {
        env.push(("HERALD_TEST_FAULTS_CLEARED", "1"));
    }
    env
}

fn start(data_dir: &Path, cleared: bool) -> Node {
    partitioned(Node::start_in(data_dir, &settings(cleared)))
}

/// `node`, once it shows faulty in the harness's partitions: the tests pick keys by
/// partition with [`stream_of`], which is right only for that many partitions.
fn partitioned(node: Node) -> Node {
    assert_eq!(
        node.domain_streams("faulty"),
        domain_streams("faulty", TEST_PARTITIONS),
        "faulty should run in {TEST_PARTITIONS} partitions"
    );
    node
}

/// faulty's partition stream that holds `key` (`faulty-p1`).
fn stream_of(key: &str) -> String {
    key_stream("faulty", key, TEST_PARTITIONS)
}

/// The dead-letter stream of the partition that holds `key` (`deadletter-faulty-p1`).
fn dead_letter_stream_of(key: &str) -> String {
    deadletter::stream(&stream_of(key))
}

/// The first of `prefix`, `prefix1`, `prefix2`, ... that falls in faulty's partition of
/// `key` (`same`) or in another one.
fn key_beside(key: &str, prefix: &str, same: bool) -> String {
    let wanted = stream_of(key);
    (0..1000)
        .map(|n| match n {
            0 => prefix.to_owned(),
            n => format!("{prefix}{n}"),
        })
        .find(|candidate| (stream_of(candidate) == wanted) == same)
        .unwrap_or_else(|| panic!("no key {prefix}.. with same = {same} beside {key}"))
}

/// Feeds `key` its event number `n`, optionally marked; answers its feeder sequence.
fn feed(node: &Node, key: &str, n: u64, fault: Option<&str>) -> u64 {
    let mut data = json!({"key": key, "n": n});
    if let Some(fault) = fault {
        data["fault"] = fault.into();
    }
    let reply = node.publish(&event("feeder.Fed", key, data));
    assert_eq!(reply.status, 202, "feeding {key} #{n}: {}", reply.text);
    reply.json["sequence"]
        .as_u64()
        .expect("the answer gives the sequence")
}

/// What faulty handled for `key`, in order; empty while unknown or while the domain
/// restarts (503).
fn handled(node: &Node, key: &str) -> Vec<u64> {
    let reply = node.get(&format!("/v1/domains/faulty/entities/{key}"));
    reply.json["handled"]
        .as_array()
        .map(|items| items.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default()
}

fn await_handled(node: &Node, key: &str, expected: &[u64]) {
    let reached = poll(Duration::from_secs(20), || handled(node, key) == expected);
    assert!(
        reached,
        "faulty should have handled {key} as {expected:?}, has {:?}",
        handled(node, key)
    );
}

/// Every dead letter of faulty, over all its partitions (`GET /v1/deadletters/faulty`).
fn dead_letters(node: &Node) -> Vec<Value> {
    dead_letters_of(node, "faulty")
}

/// The dead letters `GET /v1/deadletters/{name}` lists (a domain, or a partition stream).
fn dead_letters_of(node: &Node, name: &str) -> Vec<Value> {
    let reply = node.get(&format!("/v1/deadletters/{name}"));
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json["dead_letters"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn dead_letter(node: &Node, id: &str) -> Value {
    dead_letters(node)
        .into_iter()
        .find(|d| d["id"] == id)
        .unwrap_or_else(|| panic!("no dead letter {id} in {:?}", dead_letters(node)))
}

fn release(node: &Node, id: &str, action: &str) -> Reply {
    node.post(
        &format!("/v1/deadletters/faulty/{id}/{action}"),
        "application/json",
        "",
    )
}

/// The records of dead-letter stream `stream`; none while nothing was parked there (the
/// node lists a stream once it has a record).
fn dead_letter_records(node: &Node, stream: &str) -> Vec<Value> {
    match stream_names(&node.streams())
        .iter()
        .any(|name| name == stream)
    {
        true => node.read_stream(stream),
        false => Vec::new(),
    }
}

/// The types of the records in the dead-letter stream of `key`'s partition, without the
/// `herald.deadletter.` prefix.
fn assert_dead_letter_stream(node: &Node, key: &str, expected: &[&str]) {
    let stream = dead_letter_stream_of(key);
    let kinds: Vec<String> = dead_letter_records(node, &stream)
        .iter()
        .filter_map(|e| e["type"].as_str())
        .map(|t| t.trim_start_matches("herald.deadletter.").to_owned())
        .collect();
    assert_eq!(kinds, expected, "records of {stream}");
}

/// Parked and waiting inputs per faulty partition stream, from `GET /v1/deadletters`,
/// which must list every partition.
fn partition_counts(node: &Node) -> BTreeMap<String, (u64, u64)> {
    let reply = node.get("/v1/deadletters");
    assert_eq!(reply.status, 200, "{}", reply.text);
    domain_streams("faulty", TEST_PARTITIONS)
        .into_iter()
        .map(|stream| {
            let dead_letters = deadletter::stream(&stream);
            let counts = reply.json["domains"]
                .as_array()
                .and_then(|domains| {
                    domains
                        .iter()
                        .find(|d| d["stream"] == dead_letters.as_str())
                })
                .unwrap_or_else(|| panic!("{dead_letters} is not listed: {}", reply.text));
            let counted = (
                counts["parked"].as_u64().unwrap_or(0),
                counts["waiting"].as_u64().unwrap_or(0),
            );
            (stream, counted)
        })
        .collect()
}

/// Parked and waiting inputs of faulty, all partitions together.
fn faulty_count(node: &Node) -> (u64, u64) {
    partition_counts(node)
        .values()
        .fold((0, 0), |(parked, waiting), (p, w)| {
            (parked + p, waiting + w)
        })
}

/// Parked and waiting inputs of the partition that holds `key`.
fn count_beside(node: &Node, key: &str) -> (u64, u64) {
    partition_counts(node)[&stream_of(key)]
}

/// The `n` of every `faulty.Handled` of `key` in its partition's stream, in log order.
fn reactions(node: &Node, key: &str) -> Vec<u64> {
    node.read_stream(&stream_of(key))
        .iter()
        .filter(|e| e["data"]["key"] == key)
        .filter_map(|e| e["data"]["n"].as_u64())
        .collect()
}

fn place_order(node: &Node, order: &str, sku: &str) {
    let customer = format!("c-{order}");
    assert_eq!(node.publish(&credit_granted(&customer, 100)).status, 202);
    let placed = order_placed(order, &customer, &[(sku, 1, 5)]);
    assert_eq!(node.publish(&placed).status, 202);
}

#[test]
fn a_panicking_input_is_parked_its_key_held_and_retried_in_order_across_sigkill() {
    let data_dir = tempfile::tempdir().expect("temp dir");
    let mut node = start(data_dir.path(), false);
    assert_eq!(node.publish(&stock_added("sku-1", 10)).status, 202);
    // b shares a's partition: a held key stops only itself, not its partition.
    let b = key_beside("a", "b", true);
    let b = b.as_str();

    feed(&node, "a", 1, None);
    let parked = feed(&node, "a", 2, Some("panic"));
    feed(&node, "a", 3, None);
    feed(&node, b, 1, None);
    feed(&node, "a", 4, None);
    feed(&node, b, 2, None);
    let id = format!("feeder-{parked}");

    // Other keys go on; the failing key stops at the parked input.
    await_handled(&node, b, &[1, 2]);
    eventually("the input is parked", || faulty_count(&node) == (1, 2));
    assert_eq!(count_beside(&node, "a"), (1, 2), "parked in a's partition");
    assert_eq!(handled(&node, "a"), [1]);
    let parked_letter = dead_letter(&node, &id);
    assert_eq!(parked_letter["stream"], dead_letter_stream_of("a"));
    assert_eq!(parked_letter["attempts"], 3, "{parked_letter}");
    assert_eq!(parked_letter["waiting"], 2);
    assert_eq!(parked_letter["input"]["key"], "a");
    assert_eq!(parked_letter["input"]["type"], "feeder.Fed");
    let error = parked_letter["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("panicked") && error.contains("injected panic on a #2"),
        "{error}"
    );
    // The handler changed its state before panicking; the host rebuilt it, so that change
    // is gone.
    let a = node.entity("faulty", "a").expect("a is known");
    assert_eq!(
        a["last_seen"], 1,
        "state was not rebuilt after the panic: {a}"
    );
    let metrics = node.get("/metrics").text;
    for stream in domain_streams("faulty", TEST_PARTITIONS) {
        let partition = stream.trim_start_matches("faulty-p");
        let expected = u64::from(stream == stream_of("a"));
        let sample = format!(
            "herald_domain_dead_letters{{domain=\"faulty\",partition=\"{partition}\"}} {expected}"
        );
        assert!(
            metrics.contains(&sample),
            "expected {sample} in:\n{metrics}"
        );
    }
    // The dead-letter stream of a's partition records it, and only it.
    let stream = node.read_stream(&dead_letter_stream_of("a"));
    assert_eq!(stream.len(), 1, "{stream:?}");
    assert_eq!(stream[0]["type"], "herald.deadletter.parked");
    assert_eq!(stream[0]["data"]["attempts"], 3);
    for other in domain_streams("faulty", TEST_PARTITIONS) {
        if other != stream_of("a") {
            let records = dead_letter_records(&node, &deadletter::stream(&other));
            assert!(records.is_empty(), "deadletter-{other}: {records:?}");
        }
    }

    // Other domains are untouched.
    place_order(&node, "o-1", "sku-1");
    node.await_field("orders", "o-1", "status", &json!("awaiting_shipment"));

    // More for both keys while parked; then a SIGKILL.
    feed(&node, "a", 5, None);
    feed(&node, b, 3, None);
    await_handled(&node, b, &[1, 2, 3]);
    eventually("a #5 waits too", || faulty_count(&node) == (1, 3));
    node.kill();

    // The parking survives the crash, and retrying while still broken keeps it parked.
    let node = start(data_dir.path(), false);
    assert_eq!(faulty_count(&node), (1, 3));
    assert_eq!(handled(&node, "a"), [1]);
    assert_eq!(handled(&node, b), [1, 2, 3]);
    let again = release(&node, &id, "retry");
    assert_eq!(again.status, 409, "{}", again.text);
    assert_eq!(
        again.json["type"]
            .as_str()
            .map(|t| t.ends_with("still-failing")),
        Some(true),
        "{}",
        again.text
    );
    assert_eq!(dead_letter(&node, &id)["attempts"], 4);
    assert_eq!(handled(&node, "a"), [1]);
    // An id no partition parked is an unknown dead letter of the domain, not a request to
    // name a partition.
    let unknown = release(&node, "feeder-999999", "retry");
    assert_eq!(unknown.status, 404, "{}", unknown.text);
    assert_eq!(
        unknown.json["type"]
            .as_str()
            .map(|t| t.ends_with("/unknown-dead-letter")),
        Some(true),
        "{}",
        unknown.text
    );
    assert_eq!(unknown.json["domain"], "faulty", "{}", unknown.text);
    drop(node);

    // After the fix (faults cleared at start), retry re-drives it and the key resumes in order.
    let mut node = start(data_dir.path(), true);
    let retried = release(&node, &id, "retry");
    assert_eq!(retried.status, 200, "{}", retried.text);
    assert_eq!(retried.json["handled"], 4, "{}", retried.text);
    assert_eq!(handled(&node, "a"), [1, 2, 3, 4, 5]);
    assert_eq!(faulty_count(&node), (0, 0));
    // Later events of the key flow as usual.
    feed(&node, "a", 6, None);
    await_handled(&node, "a", &[1, 2, 3, 4, 5, 6]);
    assert_dead_letter_stream(&node, "a", &["parked", "parked", "retried"]);
    node.kill();

    // The release survives a crash too: nothing handled twice, nothing parked again.
    let node = start(data_dir.path(), true);
    assert_eq!(handled(&node, "a"), [1, 2, 3, 4, 5, 6]);
    assert_eq!(handled(&node, b), [1, 2, 3]);
    assert_eq!(faulty_count(&node), (0, 0));
    // One Handled per input handled, each in its key's partition (the emit rule).
    assert_eq!(reactions(&node, "a"), [1, 2, 3, 4, 5, 6]);
    assert_eq!(reactions(&node, b), [1, 2, 3]);
    let all: usize = domain_streams("faulty", TEST_PARTITIONS)
        .iter()
        .map(|stream| node.read_stream(stream).len())
        .sum();
    assert_eq!(all, 9, "one Handled per input handled, in all partitions");
}

#[test]
fn skip_releases_the_key_and_a_waiting_input_that_fails_is_parked_in_its_place() {
    let data_dir = tempfile::tempdir().expect("temp dir");
    // Snapshots after every event, so restarts load holds from a snapshot.
    let mut env = settings(false);
    env.push(("HERALD_LOG__SNAPSHOT_EVERY", "1"));
    let start = |dir: &Path| partitioned(Node::start_in(dir, &env));
    let mut node = start(data_dir.path());
    let d = key_beside("c", "d", true);
    let first = feed(&node, "c", 1, Some("error"));
    let second = feed(&node, "c", 2, Some("panic"));
    feed(&node, "c", 3, None);
    feed(&node, &d, 1, None);
    await_handled(&node, &d, &[1]);
    eventually("c #1 is parked", || faulty_count(&node) == (1, 2));
    assert_eq!(count_beside(&node, "c"), (1, 2), "parked in c's partition");
    let error = dead_letter(&node, &format!("feeder-{first}"))["error"].clone();
    assert_eq!(error, "faulty: injected error on c #1");

    // Skipping c #1 lets c #2 through, which fails too: it is parked in the same step,
    // and c #3 now waits behind it.
    let skipped = release(&node, &format!("feeder-{first}"), "skip");
    assert_eq!(skipped.status, 200, "{}", skipped.text);
    assert_eq!(skipped.json["handled"], 0);
    assert_eq!(skipped.json["parked_again"], format!("feeder-{second}"));
    assert_eq!(skipped.json["still_waiting"], 1);
    assert_eq!(faulty_count(&node), (1, 1));
    assert_eq!(handled(&node, "c"), Vec::<u64>::new());
    // A clean stop snapshots every domain: the holds come back from the snapshot.
    node.stop();
    let mut node = start(data_dir.path());
    assert_eq!(faulty_count(&node), (1, 1));
    assert!(
        node.logs().contains("state loaded from a snapshot"),
        "no snapshot was loaded"
    );
    feed(&node, "c", 4, None);
    eventually("c #4 waits behind c #2", || faulty_count(&node) == (1, 2));
    node.kill();

    // After a crash the same: c #2 parked, c #3 and c #4 waiting.
    let node = start(data_dir.path());
    let letter = dead_letter(&node, &format!("feeder-{second}"));
    assert_eq!(letter["attempts"], 1);
    assert_eq!(faulty_count(&node), (1, 2));
    let skipped = release(&node, &format!("feeder-{second}"), "skip");
    assert_eq!(skipped.status, 200, "{}", skipped.text);
    assert_eq!(skipped.json["handled"], 2);
    assert_eq!(handled(&node, "c"), [3, 4]);
    assert_eq!(faulty_count(&node), (0, 0));
    assert_dead_letter_stream(&node, "c", &["parked", "skipped", "parked", "skipped"]);
    drop(node);
    let node = start(data_dir.path());
    assert_eq!(handled(&node, "c"), [3, 4]);
    assert_eq!(handled(&node, &d), [1]);
    assert_eq!(reactions(&node, "c"), [3, 4]);
    assert_eq!(faulty_count(&node), (0, 0));
}

#[test]
fn a_host_that_dies_is_started_again_with_its_state_rebuilt() {
    let node = partitioned(Node::start_with(&settings(false)));
    feed(&node, "e", 1, None);
    feed(&node, "e", 2, Some("crash-once"));
    feed(&node, "e", 3, None);
    // The host died applying e #2; the supervisor started a new one, which rebuilt the
    // state from the log (where e #2's reaction is) and went on.
    await_handled(&node, "e", &[1, 2, 3]);
    eventually("the node's log says the host was restarted", || {
        node.logs()
            .contains("starting it again with its state rebuilt")
    });
    assert!(node.logs().contains("injected crash applying e #2"));
    assert_eq!(node.get("/readyz").status, 200);
    assert_eq!(faulty_count(&node), (0, 0));
    // Each input's reaction was appended once, crash or not, in e's partition.
    assert_eq!(reactions(&node, "e"), [1, 2, 3]);
    assert_eq!(node.read_stream(&stream_of("e")).len(), 3);
}

#[test]
fn a_restart_loop_marks_the_domain_failed_and_the_others_go_on() {
    let data_dir = tempfile::tempdir().expect("temp dir");
    let node = start(data_dir.path(), false);
    assert_eq!(node.publish(&stock_added("sku-2", 10)).status, 202);
    let failing = stream_of("f");
    feed(&node, "f", 1, Some("crash"));
    eventually(
        "f's partition of faulty is marked failed in /readyz",
        || {
            let ready = node.get("/readyz");
            ready.status == 503 && ready.json["domains"][failing.as_str()] == "failed"
        },
    );
    let ready = node.get("/readyz");
    let reason = ready.json["failed"][failing.as_str()]
        .as_str()
        .unwrap_or_default();
    assert!(reason.contains("restart_limit"), "{}", ready.text);
    // Only that partition: the others still take their keys.
    for stream in domain_streams("faulty", TEST_PARTITIONS) {
        if stream != failing {
            assert_eq!(
                ready.json["domains"][stream.as_str()],
                "ready",
                "{}",
                ready.text
            );
        }
    }
    let domains = node.get("/v1/domains");
    let faulty = domains.json["domains"]
        .as_array()
        .and_then(|all| all.iter().find(|d| d["name"] == "faulty").cloned())
        .expect("faulty listed");
    assert_eq!(faulty["status"], "failed", "{faulty}");
    assert!(faulty["failure"].as_str().is_some());
    // It does not spin: the number of restarts stays at the limit (the log lines arrive
    // through a reader thread, so wait for them, then give a spin time to show).
    let restarts = || node.logs().matches("starting it again").count();
    eventually("the restarts are logged", || restarts() >= 3);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(restarts(), 3, "restarts logged: {}", restarts());
    // The others go on.
    place_order(&node, "o-2", "sku-2");
    node.await_field("orders", "o-2", "status", &json!("awaiting_shipment"));
    let beside = key_beside("f", "g", true);
    let elsewhere = key_beside("f", "g", false);
    feed(&node, &beside, 1, None);
    feed(&node, &elsewhere, 1, None);
    await_handled(&node, &elsewhere, &[1]);
    let query = node.get(&format!("/v1/domains/faulty/entities/{beside}"));
    assert_eq!(query.status, 503, "{}", query.text);
    assert!(query.text.contains("failed"), "{}", query.text);
    drop(node);

    // Once fixed, the domain recovers and handles what it missed.
    let node = start(data_dir.path(), true);
    await_handled(&node, "f", &[1]);
    await_handled(&node, &beside, &[1]);
    assert_eq!(handled(&node, &elsewhere), [1]);
}

#[test]
fn a_domain_that_panics_validating_ingress_answers_500_and_appends_nothing() {
    let node = partitioned(Node::start_with(&settings(false)));
    feed(&node, "h", 1, None);
    let bad = event(
        "feeder.Fed",
        "h",
        json!({"key": "h", "n": 2, "fault": "validate-panic"}),
    );
    let good = event("feeder.Fed", "h", json!({"key": "h", "n": 3}));
    let reply = node.publish_batch(&[good.clone(), bad]);
    assert_eq!(reply.status, 500, "{}", reply.text);
    assert!(reply.content_type.starts_with("application/problem+json"));
    assert!(
        reply.text.contains("injected panic validating h #2"),
        "{}",
        reply.text
    );
    assert_eq!(reply.json["index"], 1, "{}", reply.text);
    // Nothing of the batch was appended, the state was rebuilt, and the domain goes on.
    assert_eq!(node.read_stream("feeder").len(), 1);
    assert_eq!(node.entity("feeder", "h").expect("h")["fed"], 1);
    assert_eq!(node.publish(&good).status, 202);
    assert_eq!(node.entity("feeder", "h").expect("h")["fed"], 2);
    await_handled(&node, "h", &[1, 3]);
}

#[test]
fn past_max_parked_keys_the_domain_stops_consuming_until_an_operator_releases_one() {
    let mut env = settings(false);
    env.push(("HERALD_DOMAIN__FAULTY__MAX_PARKED_KEYS", "1"));
    let node = partitioned(Node::start_with(&env));
    // The bound is per partition host: k1, k2 and k3 share a partition, m and n another.
    let bounded = stream_of("k1");
    let (k2, k3) = (key_beside("k1", "k2", true), key_beside("k1", "k3", true));
    let m = key_beside("k1", "m", false);
    let n = key_beside(&m, "n", true);
    let first = feed(&node, "k1", 1, Some("error"));
    eventually("k1 #1 is parked", || faulty_count(&node) == (1, 0));
    // Another partition parks its own key: its bound is its own.
    let other = feed(&node, &m, 1, Some("error"));
    eventually("m #1 is parked in its partition", || {
        count_beside(&node, &m) == (1, 0)
    });
    let second = feed(&node, &k2, 1, Some("error"));
    // A second key in k1's partition would exceed the bound: that partition stops at the
    // input, failed.
    eventually("k1's partition of faulty is failed in /readyz", || {
        let ready = node.get("/readyz");
        ready.status == 503 && ready.json["domains"][bounded.as_str()] == "failed"
    });
    let ready = node.get("/readyz");
    let reason = ready.json["failed"][bounded.as_str()]
        .as_str()
        .unwrap_or_default();
    assert!(reason.contains("max_parked_keys = 1"), "{}", ready.text);
    assert_eq!(
        ready.json["domains"][stream_of(&m).as_str()],
        "ready",
        "{}",
        ready.text
    );
    // It consumes nothing else meanwhile, but still answers queries and the dead-letter
    // API; the other partition goes on.
    feed(&node, &k3, 1, None);
    feed(&node, &n, 1, None);
    await_handled(&node, &n, &[1]);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(handled(&node, &k3), Vec::<u64>::new());
    assert_eq!(count_beside(&node, "k1"), (1, 0));
    assert_eq!(faulty_count(&node), (2, 0));

    // Skipping the first frees a slot: the second is parked, and consumption resumes.
    let skipped = release(&node, &format!("feeder-{first}"), "skip");
    assert_eq!(skipped.status, 200, "{}", skipped.text);
    await_handled(&node, &k3, &[1]);
    eventually("k2 #1 is parked now", || {
        dead_letters(&node)
            .iter()
            .any(|d| d["id"] == format!("feeder-{second}"))
    });
    eventually("faulty is ready again", || {
        node.get("/readyz").status == 200
    });
    let parked: Vec<Value> = dead_letters(&node)
        .iter()
        .map(|d| d["id"].clone())
        .collect();
    assert_eq!(
        parked.len(),
        2,
        "k2 and m parked, one per partition: {parked:?}"
    );
    assert!(
        parked.contains(&json!(format!("feeder-{other}"))),
        "{parked:?}"
    );
}

#[test]
fn retries_wait_out_their_backoff_whatever_else_the_node_does() {
    let mut env = settings(false);
    env.retain(|(key, _)| !key.starts_with("HERALD_DOMAIN__FAULTY__RETRY_BACKOFF"));
    env.push(("HERALD_DOMAIN__FAULTY__RETRY_BACKOFF", "300ms"));
    env.push(("HERALD_DOMAIN__FAULTY__RETRY_BACKOFF_MAX", "5s"));
    let node = partitioned(Node::start_with(&env));
    // In r's partition, so every one of its inputs is for the very host that waits.
    let other = key_beside("r", "other", true);
    let started = std::time::Instant::now();
    let failing = feed(&node, "r", 1, Some("error"));
    // Traffic elsewhere wakes every host over and over; the retries must still wait.
    let mut n = 0;
    while faulty_count(&node).0 == 0 {
        n += 1;
        feed(&node, &other, n, None);
        assert!(started.elapsed() < Duration::from_secs(20), "never parked");
    }
    // Three attempts: waits of 300 ms and 600 ms between them.
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "parked after {:?}, before the backoff (0.9 s) was over",
        started.elapsed()
    );
    assert_eq!(
        dead_letter(&node, &format!("feeder-{failing}"))["attempts"],
        3
    );
    // The node's output is collected by a reader thread: wait for the lines to arrive.
    let failures = || {
        node.logs()
            .lines()
            .filter(|line| {
                line.contains("handler failed") && line.contains("injected error on r #1")
            })
            .count()
    };
    eventually("the three failures are logged", || failures() >= 3);
    assert_eq!(failures(), 3, "one failure logged per attempt");
    await_handled(&node, &other, &(1..=n).collect::<Vec<_>>());
}

#[test]
fn keys_parked_in_different_partitions_are_listed_and_released_by_the_domains_name() {
    let data_dir = tempfile::tempdir().expect("temp dir");
    let mut node = start(data_dir.path(), false);
    // x and y in two partitions, z in the third; w shares x's partition and is never held.
    let x = "x".to_owned();
    let y = key_beside(&x, "y", false);
    let z = (0..100)
        .map(|n| format!("z{n}"))
        .find(|z| stream_of(z) != stream_of(&x) && stream_of(z) != stream_of(&y))
        .expect("a key in the third partition");
    let w = key_beside(&x, "w", true);
    let x_first = feed(&node, &x, 1, Some("error"));
    feed(&node, &x, 2, None);
    let y_first = feed(&node, &y, 1, Some("panic"));
    feed(&node, &x, 3, None);
    feed(&node, &y, 2, None);
    feed(&node, &w, 1, None);
    feed(&node, &z, 1, None);
    await_handled(&node, &w, &[1]);
    await_handled(&node, &z, &[1]);
    eventually("x #1 and y #1 are parked", || faulty_count(&node) == (2, 3));
    assert_eq!(count_beside(&node, &x), (1, 2));
    assert_eq!(count_beside(&node, &y), (1, 1));
    let (x_id, y_id) = (format!("feeder-{x_first}"), format!("feeder-{y_first}"));

    // The domain's name lists both, each with its partition's dead-letter stream.
    let whole = node.get("/v1/deadletters/faulty");
    assert_eq!(whole.status, 200, "{}", whole.text);
    let every_stream: Vec<String> = domain_streams("faulty", TEST_PARTITIONS)
        .iter()
        .map(|stream| deadletter::stream(stream))
        .collect();
    assert_eq!(whole.json["streams"], json!(every_stream), "{}", whole.text);
    let listed: BTreeMap<String, (Value, Value, Value)> = dead_letters(&node)
        .iter()
        .map(|d| {
            let id = d["id"].as_str().unwrap_or_default().to_owned();
            (
                id,
                (
                    d["stream"].clone(),
                    d["input"]["key"].clone(),
                    d["waiting"].clone(),
                ),
            )
        })
        .collect();
    let expected = BTreeMap::from([
        (
            x_id.clone(),
            (json!(dead_letter_stream_of(&x)), json!(x), json!(2)),
        ),
        (
            y_id.clone(),
            (json!(dead_letter_stream_of(&y)), json!(y), json!(1)),
        ),
    ]);
    assert_eq!(listed, expected, "{}", whole.text);
    // A partition's stream name lists only that partition's.
    for (key, id) in [(&x, Some(&x_id)), (&y, Some(&y_id)), (&z, None)] {
        let stream = stream_of(key);
        let reply = node.get(&format!("/v1/deadletters/{stream}"));
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(
            reply.json["stream"],
            dead_letter_stream_of(key),
            "{}",
            reply.text
        );
        let ids: Vec<Value> = dead_letters_of(&node, &stream)
            .iter()
            .map(|d| d["id"].clone())
            .collect();
        let expected: Vec<Value> = id.map(|id| json!(id)).into_iter().collect();
        assert_eq!(ids, expected, "dead letters of {stream}");
    }

    // Skipping x #1 by the domain's name releases it in x's partition only: x #2 and
    // x #3 are handled in order, y stays parked.
    let skipped = release(&node, &x_id, "skip");
    assert_eq!(skipped.status, 200, "{}", skipped.text);
    assert_eq!(skipped.json["handled"], 2, "{}", skipped.text);
    // The answer names the domain as asked, and the partition that released it.
    assert_eq!(skipped.json["domain"], "faulty", "{}", skipped.text);
    assert_eq!(
        skipped.json["stream"],
        node.key_stream("faulty", &x),
        "{}",
        skipped.text
    );
    assert_eq!(handled(&node, &x), [2, 3]);
    assert_eq!(count_beside(&node, &x), (0, 0));
    assert_eq!(count_beside(&node, &y), (1, 1));
    assert_eq!(handled(&node, &y), Vec::<u64>::new());
    assert_dead_letter_stream(&node, &x, &["parked", "skipped"]);
    assert_dead_letter_stream(&node, &y, &["parked"]);
    assert_dead_letter_stream(&node, &z, &[]);
    // Releasing it again: it is no longer parked anywhere.
    let again = release(&node, &x_id, "skip");
    assert_eq!(again.status, 404, "{}", again.text);
    assert_eq!(
        again.json["type"]
            .as_str()
            .map(|t| t.ends_with("/unknown-dead-letter")),
        Some(true),
        "{}",
        again.text
    );
    assert_eq!(again.json["domain"], "faulty", "{}", again.text);
    feed(&node, &y, 3, None);
    eventually("y #3 waits behind y #1", || {
        count_beside(&node, &y) == (1, 2)
    });
    node.stop();

    // After the fix, retrying y #1 by the domain's name re-drives it in y's partition,
    // then y #2 and y #3, in order.
    let node = start(data_dir.path(), true);
    let retried = release(&node, &y_id, "retry");
    assert_eq!(retried.status, 200, "{}", retried.text);
    assert_eq!(retried.json["handled"], 3, "{}", retried.text);
    assert_eq!(handled(&node, &y), [1, 2, 3]);
    assert_eq!(faulty_count(&node), (0, 0));
    assert!(dead_letters(&node).is_empty());
    assert_dead_letter_stream(&node, &y, &["parked", "retried"]);
    assert_dead_letter_stream(&node, &x, &["parked", "skipped"]);
    // Each release's reactions are in its key's partition, and the keys flow on.
    feed(&node, &x, 4, None);
    feed(&node, &y, 4, None);
    await_handled(&node, &x, &[2, 3, 4]);
    await_handled(&node, &y, &[1, 2, 3, 4]);
    assert_eq!(reactions(&node, &x), [2, 3, 4]);
    assert_eq!(reactions(&node, &y), [1, 2, 3, 4]);
}
