//! Slow and vanishing clients cannot hold a node's connections or memory: a body that
//! trickles or stalls is answered 408 and closed, bodies in memory are bounded node-wide,
//! shutdown drops a stalled body at once, and a closed SSE tail frees its slot at once.

use std::io::{Read, Write};
use std::thread;
use std::time::{Duration, Instant};

use herald_integration_tests::raw_http::RawConnection;
use herald_integration_tests::*;

/// A POST head declaring `length` body bytes, with the first `sent` of them.
fn partial_post(length: usize, sent: usize) -> Vec<u8> {
    let mut bytes = format!(
        "POST /v1/events HTTP/1.1\r\nhost: test\r\ncontent-type: application/cloudevents+json\r\ncontent-length: {length}\r\n\r\n"
    )
    .into_bytes();
    bytes.extend(std::iter::repeat_n(b' ', sent));
    bytes
}

fn open(node: &Node) -> RawConnection {
    RawConnection::open(&node.base).expect("connect")
}

fn assert_timed_out(answer: &raw_http::RawResponse, what: &str) {
    assert_eq!(answer.status, 408, "{what}: {answer:?}");
    assert!(
        answer
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/problem+json")),
        "{what}: {answer:?}"
    );
    assert_eq!(answer.header("connection"), Some("close"), "{what}");
    let detail = answer.json()["detail"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(detail.contains("body_timeout"), "{what}: {detail}");
}

#[test]
fn trickled_and_stalled_bodies_are_answered_408_and_free_their_connections() {
    let node = Node::start_with(&[
        ("HERALD_HTTP__BODY_TIMEOUT", "2s"),
        ("HERALD_HTTP__MAX_CONNECTIONS", "4"),
    ]);
    let started = Instant::now();
    // Two clients trickle a byte every 200 ms (5 B/s, under the 1024 B/s minimum but never
    // idle for body_timeout); one stops after 10 bytes. Together they hold every slot the
    // fixture's own connection leaves.
    let mut trickling = Vec::new();
    for _ in 0..2 {
        let mut connection = open(&node);
        connection.send(&partial_post(100_000, 10)).expect("send");
        let mut writer = connection.writer().expect("clone");
        thread::spawn(move || {
            while writer.write_all(b" ").is_ok() {
                thread::sleep(Duration::from_millis(200));
            }
        });
        trickling.push(connection);
    }
    let mut stalled = open(&node);
    stalled.send(&partial_post(100_000, 10)).expect("send");

    for (index, connection) in trickling.iter_mut().enumerate() {
        let answer = connection
            .read_answer()
            .expect("a trickled body is answered");
        assert_timed_out(&answer, &format!("trickling client {index}"));
        assert!(
            connection.closed_by_server(Duration::from_secs(5)),
            "trickling client {index}: connection left open"
        );
    }
    let answer = stalled.read_answer().expect("a stalled body is answered");
    assert_timed_out(&answer, "stalled client");
    assert!(stalled.closed_by_server(Duration::from_secs(5)));
    // Under a minute, whatever the machine: before the fix they were held for good.
    assert!(started.elapsed() < Duration::from_secs(60));

    // Their slots are free: new clients are served, and nothing was appended.
    let mut fresh = open(&node);
    let answer = fresh.get("/v1/domains", &[]).expect("an answer");
    assert_eq!(answer.status, 200, "{answer:?}");
    assert!(node.read_stream("inventory").is_empty());
    node.accept(&stock_added("sku-after-slow", 1));
}

#[test]
fn unread_chunked_bodies_close_their_connections() {
    let node = Node::start_with(&[("HERALD_HTTP__BODY_TIMEOUT", "2s")]);
    // A trickled chunked body: timed out on ingest (408); never read on the others. Either
    // way the connection must close after the answer, not drain the chunks forever.
    // The last is refused by the limits themselves (headers over max_header_bytes).
    let big = format!("x-pad: {}\r\n", "p".repeat(20 * 1024));
    for (method, path, extra, status) in [
        ("POST", "/v1/events", "", 408),
        ("GET", "/healthz", "", 200),
        ("POST", "/v1/domains", "", 405),
        ("POST", "/nowhere", "", 404),
        ("POST", "/v1/events", big.as_str(), 431),
    ] {
        let mut connection = open(&node);
        connection
            .send(
                format!(
                    "{method} {path} HTTP/1.1\r\nhost: test\r\ncontent-type: application/cloudevents+json\r\n{extra}transfer-encoding: chunked\r\n\r\n1\r\n \r\n"
                )
                .as_bytes(),
            )
            .expect("send");
        let mut writer = connection.writer().expect("clone");
        thread::spawn(move || {
            // Wait before each chunk: a write racing the server's close would reset the
            // connection and discard the answer before the test reads it.
            loop {
                thread::sleep(Duration::from_millis(200));
                if writer.write_all(b"1\r\n \r\n").is_err() {
                    break;
                }
            }
        });
        let answer = match connection.read_answer() {
            Ok(answer) => answer,
            // Closing with the client's bytes unread makes the kernel send a reset, which
            // may discard the answer: the connection was closed, which is what counts.
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => continue,
            Err(error) => panic!("{method} {path}: no answer: {error}"),
        };
        assert_eq!(answer.status, status, "{method} {path}: {answer:?}");
        assert_eq!(
            answer.header("connection"),
            Some("close"),
            "{method} {path}"
        );
        assert!(
            connection.closed_by_server(Duration::from_secs(5)),
            "{method} {path}: the connection is left draining the chunked body"
        );
    }
}

#[test]
fn request_bodies_in_memory_are_bounded_node_wide() {
    // The budget is one whole body: a second one that does not fit is told to come back.
    // A client that only declares a body holds nothing of it.
    let node = Node::start_with(&[
        ("HERALD_HTTP__BODY_TIMEOUT", "10s"),
        ("HERALD_HTTP__BODIES_IN_FLIGHT_BYTES", "1048576"),
    ]);
    // The budget is taken when a body's bytes arrive (all it declares): the hog sends all
    // but 64 bytes, then stalls.
    let mut hog = open(&node);
    hog.send(&partial_post(1_048_576, 1_048_576 - 64))
        .expect("send");
    // Let the hog take its share before the first probe: a probe holding its own few
    // bytes at that moment would leave the hog no room (and the hog would be refused).
    thread::sleep(Duration::from_secs(1));
    let refused = {
        let mut refused = None;
        eventually("the budget is held by the stalled body", || {
            let reply = node.publish(&stock_added("sku-budget", 1));
            match reply.status {
                503 => {
                    refused = Some(reply);
                    true
                }
                // The stalled head may not have reached the node yet.
                202 => false,
                other => panic!("expected 503 or 202, saw {other}: {}", reply.json),
            }
        });
        refused.expect("a refusal")
    };
    assert_eq!(
        refused.json["type"],
        "https://herald.dev/problems/bodies-in-flight"
    );
    assert_eq!(refused.retry_after.as_deref(), Some("1"));
    assert!(
        refused.text.contains("bodies_in_flight_bytes"),
        "{}",
        refused.text
    );

    // Once the stalled body is dropped (408), the budget is back.
    assert_timed_out(&hog.read_answer().expect("answer"), "the hog");
    eventually("a body fits again", || {
        node.publish(&stock_added("sku-budget", 1)).status == 202
    });
}

#[test]
fn shutdown_drops_a_stalled_body_at_once() {
    // A body timeout far longer than the test: only shutdown can end the stalled request.
    let mut node = Node::start_with(&[("HERALD_HTTP__BODY_TIMEOUT", "10m")]);
    let baseline = open_connections(&node);
    let mut stalled = open(&node);
    stalled.send(&partial_post(100_000, 10)).expect("send");
    // The node has the connection once the gauge counts it; its head is read right after.
    eventually("the stalled connection is open", || {
        open_connections(&node) > baseline
    });
    thread::sleep(Duration::from_millis(200));
    let asked = Instant::now();
    node.signal("TERM");
    let status = node.wait_exit(Duration::from_secs(60));
    let took = asked.elapsed();
    assert!(
        status.is_some_and(|s| s.success()),
        "{status:?}\n{}",
        node.logs_tail(40)
    );
    // actix's graceful shutdown would wait its full 30 s for the request before.
    assert!(took < Duration::from_secs(15), "shutdown took {took:?}");
    let answer = stalled
        .read_answer()
        .expect("the stalled client is answered");
    assert_eq!(answer.status, 503, "{answer:?}");
    assert_eq!(
        answer.json()["type"],
        "https://herald.dev/problems/shutting-down"
    );
}

fn open_connections(node: &Node) -> u64 {
    let text = node.get("/metrics").text;
    text.lines()
        .find_map(|line| line.strip_prefix("herald_http_open_connections "))
        .and_then(|value| value.trim().parse().ok())
        .expect("the connections gauge")
}

#[test]
fn a_closed_tail_frees_its_connection_at_once() {
    let node = Node::start();
    let baseline = open_connections(&node);
    let mut tail = open(&node);
    tail.send(b"GET /v1/streams/inventory/tail HTTP/1.1\r\nhost: test\r\naccept: text/event-stream\r\n\r\n")
        .expect("send");
    let (status, head) = tail.read_head().expect("the tail's head");
    assert_eq!(status, 200, "{head:?}");
    assert_eq!(open_connections(&node), baseline + 1);
    // An event reaches the tail, so it is really streaming.
    node.accept(&stock_added("sku-tail", 1));
    let mut socket = tail.writer().expect("clone");
    let mut first = [0u8; 4096];
    let read = socket.read(&mut first).expect("an event");
    assert!(read > 0);
    // Read everything sent so far, so closing sends a FIN as a client going away does
    // (closing with unread bytes would send a reset, which any server notices).
    socket
        .set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    while matches!(socket.read(&mut first), Ok(n) if n > 0) {}
    drop(socket);
    drop(tail);
    // The tail's next keepalive is 15 s away: only noticing the close frees it sooner.
    let freed = poll(Duration::from_secs(5), || {
        open_connections(&node) == baseline
    });
    assert!(
        freed,
        "the closed tail still holds its connection: {} open",
        open_connections(&node)
    );
}

#[test]
fn open_tails_are_bounded_by_max_tails() {
    let node = Node::start_with(&[("HERALD_HTTP__MAX_TAILS", "1")]);
    let request = b"GET /v1/streams/inventory/tail HTTP/1.1\r\nhost: test\r\n\r\n";
    let mut first = open(&node);
    first.send(request).expect("send");
    let (status, head) = first.read_head().expect("the first tail's head");
    assert_eq!(status, 200, "{head:?}");

    let refused = node.get("/v1/streams/inventory/tail");
    assert_eq!(refused.status, 503, "{}", refused.text);
    assert_eq!(
        refused.json["type"],
        "https://herald.dev/problems/too-many-tails"
    );
    assert_eq!(refused.retry_after.as_deref(), Some("1"));
    assert!(refused.text.contains("max_tails"), "{}", refused.text);

    // A tail that ends gives its place back.
    drop(first);
    eventually("a tail place is free again", || {
        let mut second = open(&node);
        second.send(request).expect("send");
        second.read_head().is_ok_and(|(status, _)| status == 200)
    });
}
