//! Reading streams: `GET /v1/streams` (positions, subscribers, lag), the paged events API
//! with cause attributes, problems for bad parameters, the server-sent-events tail (live,
//! resumable, ended by shutdown), and `herald log tail` serving the same JSON offline.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use herald_integration_tests::sse::{Next, Tail};
use herald_integration_tests::workload::saga_round;
use herald_integration_tests::*;
use serde_json::{json, Value};

const PROBLEM: &str = "application/problem+json";

/// `stream -> subscribers` as the topology (`/v1/domains`) implies: a domain subscribes to
/// every stream of a domain (one per partition) when it subscribes to any type of it
/// (`<domain>.<Name>`), and each of its hosts (one per partition: `orders-p0`, or the
/// domain's name) is a subscriber. Partition counts are `partitions`. Only hosted domains
/// count: the test build also registers the fault-test domains, listed but not hosted.
fn expected_subscribers(
    node: &Node,
    partitions: impl Fn(&str) -> u32,
) -> BTreeMap<String, BTreeSet<String>> {
    let topology = node.get("/v1/domains").json;
    let domains: Vec<&Value> = topology["domains"]
        .as_array()
        .expect("domains")
        .iter()
        .filter(|d| d["hosted"] == true)
        .collect();
    let streams_of = |domain: &str| domain_streams(domain, partitions(domain));
    let mut subscribers: BTreeMap<String, BTreeSet<String>> = domains
        .iter()
        .flat_map(|d| streams_of(d["name"].as_str().expect("name")))
        .map(|stream| (stream, BTreeSet::new()))
        .collect();
    for domain in &domains {
        let name = domain["name"].as_str().expect("name");
        for event_type in domain["subscriptions"].as_array().expect("subscriptions") {
            let origin = event_type
                .as_str()
                .expect("type")
                .split('.')
                .next()
                .expect("domain");
            for stream in streams_of(origin) {
                if let Some(set) = subscribers.get_mut(&stream) {
                    set.extend(streams_of(name));
                }
            }
        }
    }
    subscribers
}

/// `/v1/streams` as `stream -> (last_sequence, subscriber -> (consumed, lag))`, checking
/// the shape and `lag = last_sequence - consumed` on the way. A subscriber is named by its
/// host: its partition's stream when its domain is partitioned, else its domain.
type StreamTable = BTreeMap<String, (u64, BTreeMap<String, (u64, u64)>)>;

fn stream_table(answer: &Value) -> StreamTable {
    let mut table = StreamTable::new();
    for stream in answer["streams"].as_array().expect("streams array") {
        let name = stream["stream"].as_str().expect("stream name").to_owned();
        let last = stream["last_sequence"]
            .as_u64()
            .unwrap_or_else(|| panic!("expected a numeric last_sequence: {stream}"));
        let mut subscribers = BTreeMap::new();
        for subscriber in stream["subscribers"].as_array().expect("subscribers array") {
            let domain = subscriber["domain"].as_str().expect("domain");
            let host = match subscriber.get("stream") {
                Some(host) => {
                    let host = host.as_str().expect("a subscriber's stream is a name");
                    assert!(
                        host.starts_with(&format!("{domain}-p")),
                        "expected a partition subscriber's stream to be one of {domain}'s \
                         partitions: {subscriber}"
                    );
                    host.to_owned()
                }
                None => domain.to_owned(),
            };
            let consumed = subscriber["consumed"].as_u64().expect("consumed");
            let lag = subscriber["lag"].as_u64().expect("lag");
            assert!(
                consumed <= last && lag == last - consumed,
                "expected consumed <= last_sequence and lag = last_sequence - consumed on \
                 {name}: {stream}"
            );
            assert!(
                subscribers.insert(host.clone(), (consumed, lag)).is_none(),
                "subscriber {host} listed twice on {name}: {stream}"
            );
        }
        assert!(
            table.insert(name.clone(), (last, subscribers)).is_none(),
            "stream {name} listed twice: {answer}"
        );
    }
    table
}

#[test]
fn streams_list_positions_subscribers_and_lag() {
    let node = Node::start();
    // orders and shipping are keyed by order: a test node runs them in TEST_PARTITIONS.
    let expected = expected_subscribers(&node, |domain| match domain {
        "orders" | "shipping" => TEST_PARTITIONS,
        _ => 1,
    });
    let empty = stream_table(&node.streams());
    assert_eq!(
        empty.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "expected one stream per partition of each enabled domain"
    );
    for (stream, (last, subscribers)) in &empty {
        assert_eq!(*last, 0, "expected {stream} empty on a new node");
        let names: BTreeSet<String> = subscribers.keys().cloned().collect();
        assert_eq!(names, expected[stream], "subscribers of {stream}");
        for (domain, position) in subscribers {
            assert_eq!(*position, (0, 0), "{domain} on empty {stream}");
        }
    }

    saga_round(&node, "streams");
    let settled = stream_table(&node.settle());
    for (stream, (last, subscribers)) in &settled {
        let events = node.read_stream(stream);
        assert_eq!(
            *last,
            events.len() as u64,
            "expected {stream}'s last_sequence to count its events"
        );
        for (domain, position) in subscribers {
            assert_eq!(
                *position,
                (*last, 0),
                "expected {domain} to have consumed all of {stream}"
            );
        }
    }
    let orders_streams = domain_streams("orders", TEST_PARTITIONS);
    let orders_events: u64 = orders_streams.iter().map(|s| settled[s].0).sum();
    assert!(orders_events > 0 && settled["inventory"].0 > 0);

    // While a burst is being consumed, some subscriber lags: inventory decides each of 1000
    // orders (appending a reaction to each), well after the batch was acknowledged.
    let mut lag_seen = false;
    for burst in 0..5 {
        let events: Vec<Value> = (0..1000)
            .map(|n| {
                let order = format!("burst-{burst}-{n}");
                order_placed(&order, "nobody", &[("no-such-sku", 1, 1)])
            })
            .collect();
        assert_eq!(node.publish_batch(&events).status, 202);
        let table = stream_table(&node.streams());
        if orders_streams
            .iter()
            .any(|stream| table[stream].1["inventory"].1 > 0)
        {
            lag_seen = true;
            break;
        }
    }
    assert!(
        lag_seen,
        "expected inventory to lag on orders right after a batch of 1000 orders"
    );
    let settled = stream_table(&node.settle());
    for stream in &orders_streams {
        assert_eq!(settled[stream].1["inventory"], (settled[stream].0, 0));
    }
}

#[test]
fn streams_list_only_enabled_domains() {
    let node = Node::start_with(&[("HERALD_DOMAINS__ENABLED", "orders,inventory")]);
    let table = stream_table(&node.streams());
    let orders = domain_streams("orders", TEST_PARTITIONS);
    let mut expected = vec!["inventory".to_owned()];
    expected.extend(orders.iter().cloned());
    assert_eq!(
        table.keys().cloned().collect::<Vec<_>>(),
        expected,
        "expected only the enabled domains' streams (orders in {TEST_PARTITIONS} partitions)"
    );
    let subscribers = |stream: &str| table[stream].1.keys().cloned().collect::<Vec<_>>();
    for stream in &orders {
        assert_eq!(subscribers(stream), ["inventory"]);
    }
    // Each partition of orders has its own cursor on inventory.
    assert_eq!(subscribers("inventory"), orders);
}

#[test]
fn events_are_paged_in_sequence_order() {
    let node = Node::start();
    let batch: Vec<Value> = (0..150)
        .map(|n| stock_added(&format!("page-{n}"), n + 1))
        .collect();
    assert_eq!(node.publish_batch(&batch).status, 202);

    let check = |query: &str, expected: std::ops::Range<usize>| {
        let path = format!("/v1/streams/inventory/events{query}");
        let reply = node.get(&path);
        assert_eq!(reply.status, 200, "{path}: {}", reply.text);
        assert!(
            reply
                .content_type
                .starts_with("application/cloudevents-batch+json"),
            "expected the batch content type from {path}, saw {}",
            reply.content_type
        );
        let events = reply.json.as_array().expect("array");
        let ids: Vec<&Value> = events.iter().map(|e| &e["id"]).collect();
        let expected_ids: Vec<&Value> = batch[expected.clone()].iter().map(|e| &e["id"]).collect();
        assert_eq!(ids, expected_ids, "ids from {path}");
        let sequences: Vec<u64> = events
            .iter()
            .map(|e| e["sequence"].as_u64().unwrap())
            .collect();
        let expected_sequences: Vec<u64> =
            (expected.start as u64 + 1..=expected.end as u64).collect();
        assert_eq!(sequences, expected_sequences, "sequences from {path}");
    };
    check("", 0..100);
    check("?from=101", 100..150);
    check("?from=2&limit=3", 1..4);
    check("?limit=1000", 0..150);
    check("?from=150&limit=1000", 149..150);
    check("?from=151", 150..150);
    check("?from=99999", 150..150);

    // Each event: the CloudEvents attributes as posted, plus its position; no cause.
    let events = node.events_page("inventory", 1, 150);
    for (posted, served) in batch.iter().zip(&events) {
        for attribute in ["specversion", "id", "source", "type", "subject", "data"] {
            assert_eq!(
                served[attribute], posted[attribute],
                "expected {attribute} as posted: {served}"
            );
        }
        assert_eq!(served["stream"], "inventory");
        assert_eq!(served["datacontenttype"], "application/json");
        assert_eq!(served["partitionkey"], posted["subject"]);
        assert!(served["time"].as_str().is_some_and(|t| !t.is_empty()));
        for cause in ["causesource", "causeid", "causestream", "causesequence"] {
            assert!(
                served.get(cause).is_none(),
                "expected no {cause} on an ingress event: {served}"
            );
        }
    }
}

/// Whether a cause attribute holds `expected` (a number may come as a number or a string).
fn same_attribute(value: &Value, expected: &Value) -> bool {
    value == expected || value.as_str() == Some(expected.to_string().trim_matches('"'))
}

#[test]
fn reactions_carry_their_cause() {
    let node = Node::start();
    saga_round(&node, "cause");
    node.settle();
    let streams = node.read_all_streams();
    let mut reactions = 0;
    for (stream, events) in &streams {
        for event in events {
            let Some(cause_stream) = event.get("causestream") else {
                continue;
            };
            reactions += 1;
            let cause_stream = cause_stream
                .as_str()
                .unwrap_or_else(|| panic!("expected causestream to be a stream name: {event}"));
            let cause_sequence = event["causesequence"]
                .as_u64()
                .or_else(|| event["causesequence"].as_str().and_then(|s| s.parse().ok()))
                .unwrap_or_else(|| panic!("expected a causesequence: {event}"));
            let cause = streams
                .get(cause_stream)
                .and_then(|events| events.get(cause_sequence as usize - 1))
                .unwrap_or_else(|| panic!("expected the cause of {event} to exist"));
            assert!(
                same_attribute(&event["causeid"], &cause["id"])
                    && same_attribute(&event["causesource"], &cause["source"]),
                "expected {stream}'s {} to name its cause {cause_stream}/{cause_sequence} \
                 ({} from {}): {event}",
                event["type"],
                cause["id"],
                cause["source"]
            );
        }
    }
    // At least: StockReserved x5, StockRejected, PaymentCaptured x4, PaymentDeclined, ...
    assert!(reactions >= 15, "expected many reactions, saw {reactions}");
    // One concrete chain: the "ok" order's reservation was caused by its OrderPlaced.
    let placed_stream = node.key_stream("orders", "cause-ok");
    let placed = streams[&placed_stream]
        .iter()
        .find(|e| e["subject"] == "cause-ok" && e["type"] == "orders.OrderPlaced")
        .expect("OrderPlaced of cause-ok");
    let reserved = streams["inventory"]
        .iter()
        .find(|e| e["subject"] == "cause-ok" && e["type"] == "inventory.StockReserved")
        .expect("StockReserved of cause-ok");
    assert!(same_attribute(
        &reserved["causestream"],
        &json!(placed_stream)
    ));
    assert!(same_attribute(
        &reserved["causesequence"],
        &placed["sequence"]
    ));
    assert!(same_attribute(&reserved["causeid"], &placed["id"]));
    assert!(same_attribute(&reserved["causesource"], &placed["source"]));
}

#[test]
fn bad_stream_parameters_are_problems_naming_them() {
    let node = Node::start();
    // A partitioned domain's name is not a stream: the problem names its partitions'.
    let orders = node.key_stream("orders", "any-order");
    assert_ne!(
        orders, "orders",
        "expected orders partitioned on a test node"
    );
    let cases: [(String, u16, &str); 11] = [
        ("/v1/streams/nope/events".into(), 404, "nope"),
        ("/v1/streams/nope/tail".into(), 404, "nope"),
        ("/v1/streams/orders/events".into(), 404, orders.as_str()),
        ("/v1/streams/orders/tail".into(), 404, orders.as_str()),
        (format!("/v1/streams/{orders}/events?from=0"), 400, "from"),
        (format!("/v1/streams/{orders}/events?from=abc"), 400, "from"),
        (format!("/v1/streams/{orders}/events?from=-1"), 400, "from"),
        (format!("/v1/streams/{orders}/events?limit=0"), 400, "limit"),
        (
            format!("/v1/streams/{orders}/events?limit=5000"),
            400,
            "limit",
        ),
        (
            format!("/v1/streams/{orders}/events?limit=1001"),
            400,
            "limit",
        ),
        (
            format!("/v1/streams/{orders}/events?limit=x&from=1"),
            400,
            "limit",
        ),
    ];
    for (path, status, named) in cases {
        let reply = node.get(&path);
        assert_eq!(
            (reply.status, reply.content_type.as_str()),
            (status, PROBLEM),
            "expected {status} problem+json for {path}, saw {} {}: {}",
            reply.status,
            reply.content_type,
            reply.text
        );
        assert_eq!(reply.json["status"], status, "{path}: {}", reply.json);
        let detail = reply.json["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains(named),
            "expected the problem for {path} to name {named:?}: {}",
            reply.json
        );
    }
    assert_eq!(
        node.get(&format!("/v1/streams/{orders}/events?limit=1000"))
            .status,
        200
    );
    assert_eq!(node.get("/v1/streams/analytics/events").status, 200);
}

/// The events API's JSON for `stream` at `sequences`.
fn served(node: &Node, stream: &str, sequences: std::ops::RangeInclusive<u64>) -> Vec<Value> {
    let from = *sequences.start();
    let limit = sequences.end() - from + 1;
    node.events_page(stream, from, limit)
}

fn tail_json(events: &[herald_integration_tests::sse::SseEvent]) -> Vec<Value> {
    events.iter().map(|e| e.json()).collect()
}

#[test]
fn tail_delivers_old_and_new_events_and_resumes_after_last_event_id() {
    let node = Node::start();
    let wait = Duration::from_secs(10);
    for n in 1..=3 {
        node.accept(&stock_added(&format!("tail-{n}"), n));
    }

    let tail = Tail::open(&node.base, "/v1/streams/inventory/tail?from=1", None);
    assert_eq!(tail.status, 200, "tail: {}", tail.error_body);
    assert!(
        tail.content_type.starts_with("text/event-stream"),
        "expected text/event-stream, saw {:?}",
        tail.content_type
    );
    let first = tail.take(3, wait, "the three stored events");
    assert_eq!(
        first.iter().map(|e| e.sequence()).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    for event in &first {
        assert_eq!(event.event.as_deref(), Some("inventory.StockAdded"));
    }
    assert_eq!(tail_json(&first), served(&node, "inventory", 1..=3));
    let lines = tail.lines();
    assert!(
        lines.iter().any(|l| l == "id: 1")
            && lines.iter().any(|l| l == "event: inventory.StockAdded"),
        "expected `id: 1` and `event: inventory.StockAdded` lines, saw {lines:?}"
    );

    // Appended later: delivered on the open tail.
    node.accept(&stock_added("tail-4", 4));
    node.accept(&stock_added("tail-5", 5));
    let later = tail.take(2, wait, "the events appended after opening");
    assert_eq!(
        later.iter().map(|e| e.sequence()).collect::<Vec<_>>(),
        [4, 5]
    );
    assert_eq!(tail_json(&later), served(&node, "inventory", 4..=5));

    // Without `from`: only events appended from now on.
    let fresh = Tail::open(&node.base, "/v1/streams/inventory/tail", None);
    assert_eq!(fresh.status, 200, "tail: {}", fresh.error_body);
    assert!(
        matches!(fresh.next(Duration::from_millis(500)), Next::Timeout),
        "expected nothing old on a tail without from"
    );
    node.accept(&stock_added("tail-6", 6));
    let sixth = fresh.expect_event(wait, "the event appended after a tail without from");
    assert_eq!(sixth.sequence(), 6, "expected only new events: {sixth:?}");
    assert_eq!(
        tail.expect_event(wait, "event 6 on the first tail")
            .sequence(),
        6
    );

    // A reconnect with Last-Event-ID resumes after it, whatever `from` says.
    let resumed = Tail::open(&node.base, "/v1/streams/inventory/tail?from=1", Some("3"));
    assert_eq!(resumed.status, 200, "tail: {}", resumed.error_body);
    let rest = resumed.take(3, wait, "the events after Last-Event-ID 3");
    assert_eq!(
        rest.iter().map(|e| e.sequence()).collect::<Vec<_>>(),
        [4, 5, 6]
    );

    // Another stream's tail sees only that stream: the partition of orders holding the order.
    let orders_stream = node.key_stream("orders", "tail-order");
    let orders = Tail::open(
        &node.base,
        &format!("/v1/streams/{orders_stream}/tail?from=1"),
        None,
    );
    assert_eq!(orders.status, 200, "tail: {}", orders.error_body);
    assert!(matches!(
        orders.next(Duration::from_millis(300)),
        Next::Timeout
    ));
    node.accept(&credit_granted("tail-customer", 10_000));
    node.accept(&order_placed(
        "tail-order",
        "tail-customer",
        &[("tail-1", 1, 1)],
    ));
    let placed = orders.expect_event(wait, "the OrderPlaced");
    assert_eq!(
        (placed.sequence(), placed.event.as_deref()),
        (1, Some("orders.OrderPlaced"))
    );
    for comment in tail.comments() {
        assert!(comment.starts_with(':'), "{comment}");
    }
}

#[test]
fn tails_under_concurrent_appends_deliver_every_event_once_in_order() {
    let node = Node::start();
    node.accept(&stock_added("load-0", 1));
    // Opened with one event stored and appends racing the catch-up read.
    // One tail per stream: inventory and each partition of orders.
    let streams: Vec<String> = std::iter::once("inventory".to_owned())
        .chain(node.domain_streams("orders"))
        .collect();
    assert!(
        streams.len() > 2,
        "expected orders partitioned: {streams:?}"
    );
    let tails: Vec<(String, Tail)> = streams
        .iter()
        .map(|stream| {
            let tail = Tail::open(
                &node.base,
                &format!("/v1/streams/{stream}/tail?from=1"),
                None,
            );
            assert_eq!(tail.status, 200, "tail of {stream}: {}", tail.error_body);
            (stream.clone(), tail)
        })
        .collect();
    std::thread::scope(|scope| {
        for thread in 0..4 {
            let node = &node;
            scope.spawn(move || {
                for n in 0..150 {
                    node.accept(&stock_added(&format!("load-{thread}"), 1));
                    let order = format!("load-{thread}-{n}");
                    node.accept(&order_placed(&order, "nobody", &[("no-such-sku", 1, 1)]));
                }
            });
        }
    });
    node.settle();
    for (stream, tail) in &tails {
        let expected = node.read_stream(stream);
        let received: Vec<Value> = (0..expected.len())
            .map(|n| {
                tail.expect_event(
                    Duration::from_secs(20),
                    &format!("{stream} event {}", n + 1),
                )
                .json()
            })
            .collect();
        assert_same_json(
            &format!("the {stream} tail against the events API"),
            &Value::from(expected),
            &Value::from(received),
        );
        assert!(
            matches!(tail.next(Duration::from_millis(300)), Next::Timeout),
            "expected nothing more on the {stream} tail"
        );
    }
}

#[test]
fn sigterm_with_an_open_tail_exits_0_promptly() {
    let mut node = Node::start();
    node.accept(&stock_added("term-sku", 1));
    let tail = Tail::open(&node.base, "/v1/streams/inventory/tail?from=1", None);
    assert_eq!(tail.status, 200, "tail: {}", tail.error_body);
    tail.expect_event(Duration::from_secs(10), "the stored event");

    node.signal("TERM");
    let status = node.wait_exit(Duration::from_secs(10)).unwrap_or_else(|| {
        panic!(
            "expected the node to exit within 10 s of SIGTERM with a tail open; logs:\n{}",
            node.logs_tail(40)
        )
    });
    assert_eq!(status.code(), Some(0), "logs:\n{}", node.logs_tail(40));
    assert!(
        matches!(tail.next(Duration::from_secs(5)), Next::Ended),
        "expected the tail to end when the node stopped"
    );
}

/// Lines of `herald log tail` output parsed as JSON, one event per line.
fn cli_events(args: &[&str]) -> Vec<Value> {
    let run = herald_log(args);
    assert_eq!(
        run.status,
        Some(0),
        "expected `herald log {}` to succeed:\n{}",
        args.join(" "),
        run.output()
    );
    run.stdout
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("expected one CloudEvent JSON per line ({e}): {line}"))
        })
        .collect()
}

#[test]
fn cli_tail_prints_what_the_events_api_serves() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut node = Node::start_in(dir.path(), &[]);
    saga_round(&node, "cli");
    node.settle();
    let api = node.read_all_streams();
    node.stop();
    let data_dir = dir.path().to_string_lossy().into_owned();

    // An empty stream (a partition no key of the round hashed to) prints nothing: the tool
    // knows the partition streams from log/PARTITIONS.
    for (stream, events) in &api {
        let printed = cli_events(&["tail", "--data-dir", &data_dir, "--stream", stream]);
        assert_same_json(
            &format!("`herald log tail --stream {stream}` against the events API"),
            &Value::from(events.clone()),
            &Value::from(printed),
        );
    }
    let page = cli_events(&[
        "tail",
        "--data-dir",
        &data_dir,
        "--stream",
        "inventory",
        "--from",
        "2",
        "--limit",
        "3",
    ]);
    assert_eq!(
        Value::from(page),
        Value::from(api["inventory"][1..4].to_vec()),
        "expected --from 2 --limit 3 to print inventory 2..=4"
    );

    // A partitioned domain's own name is no stream: refused, naming its partitions.
    let whole = herald_log(&["tail", "--data-dir", &data_dir, "--stream", "orders"]);
    assert!(
        whole.status.is_some_and(|code| code != 0) && whole.output().contains("orders-p0"),
        "expected `herald log tail --stream orders` to name the partition streams:\n{}",
        whole.output()
    );

    // Without --stream: every event once, each stream in its order.
    let everything = cli_events(&["tail", "--data-dir", &data_dir]);
    let mut by_stream: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for event in everything {
        let stream = event["stream"].as_str().expect("stream").to_owned();
        by_stream.entry(stream).or_default().push(event);
    }
    let api_nonempty: BTreeMap<String, Vec<Value>> = api
        .into_iter()
        .filter(|(_, events)| !events.is_empty())
        .collect();
    assert_same_json(
        "`herald log tail` (all streams) grouped by stream against the events API",
        &json!(api_nonempty),
        &json!(by_stream),
    );
}

/// `GET /v1/streams` with `Accept: text/event-stream`: the same JSON as server-sent events,
/// again every second, so a new event shows in a later frame; each watch takes a place
/// among `max_tails`; `q=0` on the event stream asks for plain JSON.
#[test]
fn the_streams_can_be_watched_as_server_sent_events() {
    let node = Node::start_with(&[("HERALD_HTTP__MAX_TAILS", "1")]);
    let watch = Tail::open(&node.base, "/v1/streams", None);
    assert_eq!(watch.status, 200, "{}", watch.error_body);
    assert_eq!(watch.content_type, "text/event-stream");
    let first = watch.expect_event(Duration::from_secs(5), "the first frame");
    assert_eq!(first.event.as_deref(), Some("streams"));
    let plain = node.get("/v1/streams");
    assert_eq!(
        stream_names(&first.json()),
        stream_names(&plain.json),
        "a frame is what GET /v1/streams answers"
    );

    let refused = Tail::open(&node.base, "/v1/streams", None);
    assert_eq!(refused.status, 503, "a second watch past max_tails = 1");

    node.accept(&stock_added("sku-watched", 2));
    let last_of_inventory = |frame: &Value| {
        frame["streams"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| s["stream"] == "inventory")
            .map(|s| s["last_sequence"].clone())
    };
    let mut moved = false;
    for _ in 0..10 {
        let frame = watch.expect_event(Duration::from_secs(3), "a later frame");
        if last_of_inventory(&frame.json()) == Some(json!(1)) {
            moved = true;
            break;
        }
    }
    assert!(moved, "no frame showed inventory's new event");

    let json_wanted = node
        .client()
        .get(format!("{}/v1/streams", node.base))
        .header("accept", "text/event-stream;q=0, application/json")
        .send()
        .expect("GET");
    let content_type = json_wanted.headers()["content-type"].to_str().unwrap_or("");
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
}
