//! Every limit has a clear answer: an event over `max_event_bytes` is 413 naming it, a batch
//! over `max_batch_events` is 413, oversized headers are 431, connections past
//! `max_connections` get 503 and are closed, and a domain whose ingress slots are all taken
//! answers 429. Each is problem+json (but actix's own bare 431 for heads over 128 KiB), and
//! nothing is appended for any of them.

use std::time::Duration;

use herald_integration_tests::raw_http::RawConnection;
use herald_integration_tests::*;
use serde_json::{json, Value};

/// Asserts `reply` is a problem with `status` whose detail holds every fragment.
fn assert_problem(reply: &Reply, status: u16, fragments: &[&str], what: &str) {
    assert_eq!(reply.status, status, "{what}: {}", reply.text);
    assert!(
        reply.content_type.starts_with("application/problem+json"),
        "{what}: content type {:?}",
        reply.content_type
    );
    assert_eq!(reply.json["status"], status, "{what}: {}", reply.text);
    let detail = reply.json["detail"].as_str().unwrap_or_default();
    for fragment in fragments {
        assert!(
            detail.contains(fragment),
            "{what}: detail {detail:?} lacks {fragment:?}"
        );
    }
}

fn last_sequence(node: &Node, stream: &str) -> u64 {
    node.streams()["streams"]
        .as_array()
        .and_then(|streams| streams.iter().find(|s| s["stream"] == stream))
        .and_then(|s| s["last_sequence"].as_u64())
        .unwrap_or_else(|| panic!("stream {stream} is not listed"))
}

fn fed(key: &str, n: u64) -> Value {
    event("feeder.Fed", key, json!({"key": key, "n": n}))
}

fn poked(key: &str) -> Value {
    event("laggard.Poked", key, json!({"key": key}))
}

#[test]
fn an_event_over_max_event_bytes_is_413_naming_it() {
    let node = Node::start_with(&[("HERALD_HTTP__MAX_EVENT_BYTES", "2048")]);
    let big = "s".repeat(2100);

    let reply = node.publish(&stock_added(&big, 1));
    assert_problem(
        &reply,
        413,
        &["over the limit of 2048 bytes per event", "max_event_bytes"],
        "one structured event",
    );
    assert_eq!(reply.json["limit"], 2048);

    let batch = vec![
        stock_added("sku-a", 1),
        stock_added("sku-b", 1),
        stock_added(&big, 1),
    ];
    let reply = node.publish_batch(&batch);
    assert_problem(
        &reply,
        413,
        &["event 2 of the batch", "max_event_bytes"],
        "a batch",
    );
    assert_eq!(reply.json["index"], 2, "{}", reply.text);
    assert_eq!(reply.json["pointer"], "/2", "{}", reply.text);
    assert_eq!(
        reply.json["size"].as_u64(),
        Some(batch[2].to_string().len() as u64),
        "the size is the event's JSON as sent: {}",
        reply.text
    );

    let data = json!({"sku": big, "quantity": 1}).to_string();
    let reply = node.post_with(
        "/v1/events",
        "application/json",
        &[
            ("ce-specversion", "1.0"),
            ("ce-id", "binary-big"),
            ("ce-source", "/tests/limits"),
            ("ce-type", "inventory.StockAdded"),
            ("ce-subject", &big),
        ],
        data,
    );
    assert_problem(&reply, 413, &["max_event_bytes"], "binary mode");

    // The limit is per event: a batch larger than it whose events each fit is taken.
    let small: Vec<Value> = (0..20)
        .map(|i| stock_added(&format!("sku-{i}"), 1))
        .collect();
    assert!(Value::from(small.clone()).to_string().len() > 2048);
    let reply = node.publish_batch(&small);
    assert_eq!(reply.status, 202, "{}", reply.text);
    assert_eq!(
        last_sequence(&node, "inventory"),
        20,
        "only the batch that fits was appended"
    );
}

#[test]
fn a_batch_over_max_batch_events_is_413() {
    let node = Node::start_with(&[("HERALD_HTTP__MAX_BATCH_EVENTS", "3")]);
    let batch: Vec<Value> = (0..4)
        .map(|i| stock_added(&format!("sku-{i}"), 1))
        .collect();
    let reply = node.publish_batch(&batch);
    assert_problem(
        &reply,
        413,
        &["holds 4 events", "limit of 3", "max_batch_events"],
        "four events",
    );
    assert_eq!(reply.json["limit"], 3);
    assert_eq!(node.publish_batch(&batch[..3]).status, 202);
    assert_eq!(last_sequence(&node, "inventory"), 3);
}

#[test]
fn headers_over_max_header_bytes_are_431() {
    let node = Node::start_with(&[("HERALD_HTTP__MAX_HEADER_BYTES", "4096")]);
    let get = |pad: usize| {
        Reply::from(
            node.client()
                .get(format!("{}/v1/domains", node.base))
                .header("x-pad", "p".repeat(pad))
                .send(),
        )
    };
    assert_eq!(get(3000).status, 200, "headers under the limit");
    let reply = get(5000);
    assert_problem(
        &reply,
        431,
        &["over the limit of 4096 bytes", "max_header_bytes"],
        "a 5000-byte header",
    );
    assert_eq!(reply.json["limit"], 4096);

    let pad = "p".repeat(5000);
    let reply = node.post_with(
        "/v1/events",
        "application/cloudevents+json",
        &[("x-pad", &pad)],
        stock_added("sku-1", 1).to_string(),
    );
    assert_problem(
        &reply,
        431,
        &["max_header_bytes"],
        "an event with big headers",
    );
    assert_eq!(last_sequence(&node, "inventory"), 0, "it was appended");

    // Past actix-http's fixed 128 KiB head buffer the HTTP layer answers by itself: still
    // 431, without a problem body. The config refuses a limit that high, so the limit
    // above is the one clients meet.
    let mut connection = RawConnection::open(&node.base).expect("connect");
    let answer = connection.get("/v1/domains", &[("x-pad", &"p".repeat(140 * 1024))]);
    match answer {
        Ok(response) => assert_eq!(response.status, 431, "{response:?}"),
        // The server may reset the connection before the client reads the answer.
        Err(error) => assert!(
            matches!(
                error.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
            ),
            "{error}"
        ),
    }
    assert_eq!(get(10).status, 200, "the node still answers");
}

#[test]
fn connections_past_max_connections_get_503_and_are_closed() {
    let node = Node::start_with(&[("HERALD_HTTP__MAX_CONNECTIONS", "2")]);
    // Hold both places with connections of ours. The fixture's pooled connection may hold
    // one until the server's keep-alive (5 s) closes it; ours are kept busy meanwhile, so
    // the server's timeout never closes them.
    let mut admitted: Vec<RawConnection> = Vec::new();
    eventually("two connections of ours admitted", || {
        for connection in &mut admitted {
            let status = connection
                .get("/v1/domains", &[])
                .expect("an answer")
                .status;
            assert_eq!(status, 200, "an admitted connection was refused");
        }
        let mut connection = RawConnection::open(&node.base).expect("connect");
        let response = connection.get("/v1/domains", &[]).expect("an answer");
        match response.status {
            200 => admitted.push(connection),
            503 => {}
            other => panic!("expected 200 or 503, saw {other}: {response:?}"),
        }
        assert!(
            admitted.len() <= 2,
            "a third connection was admitted with max_connections = 2"
        );
        admitted.len() == 2
    });

    let mut connection = RawConnection::open(&node.base).expect("connect");
    let response = connection.get("/v1/domains", &[]).expect("an answer");
    assert_eq!(response.status, 503, "{response:?}");
    assert!(
        response
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/problem+json")),
        "{response:?}"
    );
    assert_eq!(response.header("retry-after"), Some("1"), "{response:?}");
    assert_eq!(response.header("connection"), Some("close"), "{response:?}");
    let body = response.json();
    assert_eq!(body["status"], 503);
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("max_connections")),
        "{body}"
    );
    assert!(
        connection.closed_by_server(Duration::from_secs(10)),
        "the refused connection was left open"
    );

    // Health and readiness probes are answered even so (a busy node is alive), and their
    // connection is closed after them.
    for probe in ["/healthz", "/readyz"] {
        let mut connection = RawConnection::open(&node.base).expect("connect");
        let response = connection.get(probe, &[]).expect("an answer");
        assert_eq!(response.status, 200, "{probe}: {response:?}");
        assert_eq!(response.header("connection"), Some("close"), "{probe}");
    }

    // The admitted ones keep working.
    for connection in &mut admitted {
        let status = connection.get("/v1/domains", &[]).expect("answer").status;
        assert_eq!(status, 200);
    }
    // Closing them frees their places.
    drop(admitted);
    eventually("a new connection is admitted once others closed", || {
        RawConnection::open(&node.base)
            .and_then(|mut connection| connection.get("/v1/domains", &[]))
            .is_ok_and(|response| response.status == 200)
    });
}

#[test]
fn a_full_domain_answers_429_and_a_batch_reaching_it_appends_nothing() {
    let node = Node::start_with(&[
        ("HERALD_DOMAINS__ENABLED", "feeder,laggard"),
        ("HERALD_TEST_SLOW_MICROS", "50000"),
        ("HERALD_DOMAIN__LAGGARD__MAILBOX_CAPACITY", "1"),
    ]);
    // 100 inputs in one append: the laggard reads them in one turn of about 5 s, during
    // which it does not read its mailbox.
    let batch: Vec<Value> = (1..=100).map(|n| fed("k", n)).collect();
    assert_eq!(node.publish_batch(&batch).status, 202);
    eventually("the laggard is busy with its inputs", || {
        node.entity("laggard", "k")
            .is_some_and(|entity| entity["consumed"].as_u64() >= Some(1))
    });
    let in_flight = "herald_domain_ingress_in_flight{domain=\"laggard\"}";
    std::thread::scope(|scope| {
        // This poke takes the laggard's one slot and waits in its mailbox.
        let waiting = scope.spawn(|| node.publish(&poked("k")));
        eventually("the poke holds the laggard's only slot", || {
            metric_value(&node.get("/metrics").text, in_flight) == Some(1.0)
        });

        let reply = node.publish(&poked("k"));
        assert_problem(
            &reply,
            429,
            &[
                "domain \"laggard\"",
                "mailbox_capacity",
                "nothing was appended",
            ],
            "a poke to a full laggard",
        );
        assert_eq!(reply.json["domain"], "laggard");
        assert_eq!(reply.retry_after.as_deref(), Some("1"));
        assert!(
            reply.json["type"]
                .as_str()
                .is_some_and(|t| t.ends_with("/domain-overloaded")),
            "{}",
            reply.text
        );

        // A batch reaching feeder and the full laggard is refused whole.
        let feeder_before = last_sequence(&node, "feeder");
        let reply = node.publish_batch(&[fed("k", 101), poked("k")]);
        assert_problem(&reply, 429, &["domain \"laggard\""], "a two-domain batch");
        assert_eq!(
            last_sequence(&node, "feeder"),
            feeder_before,
            "half of a refused batch was appended"
        );

        // Queries do not go through the mailbox: answered while it is full.
        assert_eq!(node.get("/v1/domains/feeder/entities/k").status, 200);

        let reply = waiting.join().expect("the waiting poke");
        assert_eq!(reply.status, 202, "the waiting poke: {}", reply.text);
    });
    assert_eq!(
        node.publish(&poked("k")).status,
        202,
        "a free laggard takes pokes"
    );
    let metrics = node.get("/metrics").text;
    assert_eq!(
        metric_value(
            &metrics,
            "herald_domain_ingress_refused_total{domain=\"laggard\"}"
        ),
        Some(2.0),
        "{metrics}"
    );
    assert_eq!(
        metric_value(&metrics, "herald_ingress_requests_total{status=\"429\"}"),
        Some(2.0),
        "{metrics}"
    );
    assert_eq!(
        node.entity("laggard", "k").map(|e| e["poked"].clone()),
        Some(json!(2))
    );
}
