//! Idempotency by `source` and `id`: a resend is a duplicate (200, the original's position)
//! only when it is the same event, `time` aside; another event under a taken `source` and
//! `id` is 409 `id-conflict` naming the original, and nothing is appended. In embedded
//! mode (and after a SIGKILL, the index rebuilt from the log) and in networked mode (the
//! owner's index, forwarded from another node, after the owner restarts, and beyond the
//! owner's index where only JetStream's duplicate window knows the event), for single
//! events and batches.

use herald_integration_tests::nats::NatsServer;
use herald_integration_tests::*;
use serde_json::{json, Map, Value};

const SOURCE: &str = "/tests/idempotency";
const STRUCTURED: &str = "application/cloudevents+json";

/// One networked test at a time: each runs a nats-server and nodes, and on two cores
/// several at once starve one another past the clients' timeouts.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A client event of this test's source with a chosen id.
fn client_event(id: &str, event_type: &str, subject: &str, data: Value) -> Value {
    json!({
        "specversion": "1.0",
        "id": id,
        "source": SOURCE,
        "type": event_type,
        "subject": subject,
        "time": "2026-11-25T10:00:00Z",
        "data": data,
    })
}

/// The stock event the resends are compared with: it carries an extension (`tenant`).
fn stock_original() -> Value {
    let mut event = client_event(
        "stock-1",
        "inventory.StockAdded",
        "sku-i",
        json!({"sku": "sku-i", "quantity": 5}),
    );
    event["tenant"] = json!("a");
    event
}

/// An order, to resend as another type of the same domain.
fn order_original() -> Value {
    client_event(
        "order-1",
        "orders.OrderPlaced",
        "o-i",
        json!({"order_id": "o-i", "customer": "carol", "lines": [{"sku": "sku-i", "quantity": 1, "unit_price": 100}]}),
    )
}

/// Where an original was appended, as its 202 said: its stream (for orders, the partition
/// holding its key) and sequence.
#[derive(Debug, Clone)]
struct Original {
    stream: String,
    sequence: u64,
}

impl Original {
    /// The position as a problem's `original` names it.
    fn json(&self) -> Value {
        json!({"stream": self.stream, "sequence": self.sequence})
    }
}

/// Publishes `event`, asserts 202, and answers where it was appended.
fn accept_original(node: &Node, event: &Value) -> Original {
    let reply = node.publish(event);
    assert_eq!(reply.status, 202, "{event}: {}", reply.text);
    Original {
        stream: reply.json["stream"]
            .as_str()
            .unwrap_or_else(|| panic!("expected a stream in the 202: {}", reply.json))
            .to_owned(),
        sequence: reply.json["sequence"]
            .as_u64()
            .unwrap_or_else(|| panic!("expected a sequence in the 202: {}", reply.json)),
    }
}

/// What a resend is answered.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// 200 `duplicate` with the original's position.
    Duplicate,
    /// 409 `id-conflict` naming the original and these attributes.
    Conflict(&'static [&'static str]),
}

/// One resend: what it changes, its body, and its answer.
struct Case {
    what: &'static str,
    body: String,
    expect: Expect,
    /// As a new event it would be refused (schema, subject): where only JetStream knows
    /// the original, that refusal comes first.
    refused_as_new: bool,
}

impl Case {
    fn refused_as_new(self) -> Self {
        Self {
            refused_as_new: true,
            ..self
        }
    }
}

fn changed(original: &Value, change: impl FnOnce(&mut Map<String, Value>)) -> String {
    let mut event = original.as_object().cloned().expect("an object");
    change(&mut event);
    Value::Object(event).to_string()
}

/// Resends of `stock_original()`: the same event in several spellings, and each attribute
/// changed in turn.
fn stock_cases() -> Vec<Case> {
    let original = stock_original();
    let text = original.to_string();
    let same = |what, body| Case {
        what,
        body,
        expect: Expect::Duplicate,
        refused_as_new: false,
    };
    let conflict = |what, body, differs| Case {
        what,
        body,
        expect: Expect::Conflict(differs),
        refused_as_new: false,
    };
    vec![
        same("identical", text.clone()),
        same(
            "another time",
            changed(&original, |e| {
                e.insert("time".into(), json!("2027-01-01T00:00:00Z"));
            }),
        ),
        same(
            "no time (Herald stamps one)",
            changed(&original, |e| {
                e.remove("time");
            }),
        ),
        same(
            "data with other key order and spacing",
            text.replace(
                r#""data":{"quantity":5,"sku":"sku-i"}"#,
                r#""data":{ "sku" : "sku-i",  "quantity" : 5 }"#,
            ),
        ),
        same(
            "datacontenttype spelled out (stored as application/json either way)",
            changed(&original, |e| {
                e.insert(
                    "datacontenttype".into(),
                    json!("application/json; charset=utf-8"),
                );
            }),
        ),
        conflict(
            "other data",
            changed(&original, |e| {
                e.insert("data".into(), json!({"sku": "sku-i", "quantity": 6}));
            }),
            &["data"],
        ),
        conflict(
            "data 5.0 for 5",
            text.replace(r#""quantity":5"#, r#""quantity":5.0"#),
            &["data"],
        )
        .refused_as_new(),
        conflict(
            "other subject and key",
            changed(&original, |e| {
                e.insert("subject".into(), json!("sku-j"));
                e.insert("data".into(), json!({"sku": "sku-j", "quantity": 5}));
            }),
            &["subject", "data", "partitionkey"],
        ),
        conflict(
            "other subject, same partitionkey",
            changed(&original, |e| {
                e.insert("subject".into(), json!("sku-j"));
                e.insert("partitionkey".into(), json!("sku-i"));
            }),
            &["subject"],
        )
        .refused_as_new(),
        conflict(
            "other partitionkey",
            changed(&original, |e| {
                e.insert("partitionkey".into(), json!("elsewhere"));
            }),
            &["partitionkey"],
        ),
        conflict(
            "other extension value",
            changed(&original, |e| {
                e.insert("tenant".into(), json!("b"));
            }),
            &["tenant"],
        ),
        conflict(
            "extension left out",
            changed(&original, |e| {
                e.remove("tenant");
            }),
            &["tenant"],
        ),
        conflict(
            "extension added",
            changed(&original, |e| {
                e.insert("region".into(), json!("eu"));
            }),
            &["region"],
        ),
        // A client's retry is a new span: the trace context is not part of the event.
        same(
            "traceparent added",
            changed(&original, |e| {
                e.insert(
                    "traceparent".into(),
                    json!("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
                );
            }),
        ),
    ]
}

/// Resends of `order_original()` as another ingress type of `orders`.
fn order_cases() -> Vec<Case> {
    let original = order_original();
    vec![
        Case {
            what: "identical order",
            body: original.to_string(),
            expect: Expect::Duplicate,
            refused_as_new: false,
        },
        Case {
            what: "another type of the same domain",
            body: changed(&original, |e| {
                e.insert("type".into(), json!("orders.OrderCancelled"));
                e.insert(
                    "data".into(),
                    json!({"order_id": "o-i", "reason": "changed my mind"}),
                );
            }),
            expect: Expect::Conflict(&["type", "data"]),
            refused_as_new: false,
        },
    ]
}

/// Sends `case` to `node` and checks its answer against `original`; returns the answer.
fn check(node: &Node, original: &Original, case: &Case) -> Reply {
    let (stream, sequence) = (original.stream.as_str(), original.sequence);
    let reply = node.post("/v1/events", STRUCTURED, case.body.clone());
    let what = case.what;
    match case.expect {
        Expect::Duplicate => {
            assert_eq!(reply.status, 200, "{what}: {}", reply.text);
            assert_eq!(reply.json["status"], "duplicate", "{what}: {}", reply.json);
            assert_eq!(reply.json["stream"], stream, "{what}: {}", reply.json);
            assert_eq!(reply.json["sequence"], sequence, "{what}: {}", reply.json);
        }
        Expect::Conflict(differs) => {
            assert_eq!(reply.status, 409, "{what}: {}", reply.text);
            assert!(
                reply.content_type.starts_with("application/problem+json"),
                "{what}: {}",
                reply.content_type
            );
            assert_eq!(
                reply.json["type"], "https://herald.dev/problems/id-conflict",
                "{what}: {}",
                reply.json
            );
            assert_eq!(reply.json["status"], 409, "{what}: {}", reply.json);
            assert_eq!(
                reply.json["original"],
                json!({"stream": stream, "sequence": sequence}),
                "{what}: {}",
                reply.json
            );
            assert_eq!(
                reply.json["differs"],
                json!(differs),
                "{what}: {}",
                reply.json
            );
            assert_eq!(reply.json["attribute"], "id", "{what}: {}", reply.json);
            assert_eq!(reply.json["pointer"], "/id", "{what}: {}", reply.json);
            let detail = reply.json["detail"].as_str().unwrap_or("");
            assert!(
                detail.contains(&format!("{stream}#{sequence}")),
                "{what}: the detail names the original: {detail}"
            );
        }
    }
    reply
}

/// Every case of both originals, at `node`; answers each reply in order.
fn check_all(node: &Node, stock: &Original, order: &Original) -> Vec<Reply> {
    let mut replies = Vec::new();
    for case in stock_cases() {
        replies.push(check(node, stock, &case));
    }
    for case in order_cases() {
        replies.push(check(node, order, &case));
    }
    replies
}

/// The events of this test's source in `domain`'s streams (each of its partitions, in
/// partition order), as `(id, data)`.
fn client_events(node: &Node, domain: &str) -> Vec<(String, Value)> {
    node.domain_streams(domain)
        .iter()
        .flat_map(|stream| node.read_stream(stream))
        .filter(|event| event["source"] == SOURCE)
        .map(|event| {
            (
                event["id"].as_str().unwrap_or_default().to_owned(),
                event["data"].clone(),
            )
        })
        .collect()
}

/// The answer to a batch refused because of the event at `index`.
fn assert_batch_conflict(reply: &Reply, index: usize, original: Value) {
    assert_eq!(reply.status, 409, "{}", reply.text);
    assert_eq!(
        reply.json["type"], "https://herald.dev/problems/id-conflict",
        "{}",
        reply.json
    );
    assert_eq!(reply.json["index"], index, "{}", reply.json);
    assert_eq!(
        reply.json["pointer"],
        format!("/{index}/id"),
        "{}",
        reply.json
    );
    assert_eq!(reply.json["original"], original, "{}", reply.json);
}

/// Batches: a conflicting resend refuses the whole batch, and so does a batch holding one
/// `source` and `id` twice for two different events; an identical resend in a batch is a
/// duplicate next to a new event. Returns the sequence of the one event appended.
fn check_batches(node: &Node, stock: &Original) -> u64 {
    let fresh = |id: &str| {
        client_event(
            id,
            "inventory.StockAdded",
            "sku-k",
            json!({"sku": "sku-k", "quantity": 1}),
        )
    };
    let mut other = stock_original();
    other["data"] = json!({"sku": "sku-i", "quantity": 7});
    let refused = node.publish_batch(&[fresh("batch-1"), other]);
    assert_batch_conflict(&refused, 1, stock.json());

    let mut twin = fresh("batch-2");
    twin["data"] = json!({"sku": "sku-k", "quantity": 2});
    let refused = node.publish_batch(&[fresh("batch-2"), twin]);
    assert_batch_conflict(&refused, 1, json!({"index": 0}));

    let mixed = node.publish_batch(&[fresh("batch-3"), stock_original()]);
    assert_eq!(mixed.status, 202, "{}", mixed.text);
    let results = &mixed.json["results"];
    assert_eq!(results[0]["status"], "accepted", "{results}");
    assert_eq!(results[1]["status"], "duplicate", "{results}");
    assert_eq!(results[1]["sequence"], stock.sequence, "{results}");
    results[0]["sequence"].as_u64().expect("a sequence")
}

/// The streams hold the originals and the one new batch event, nothing from a refusal.
fn assert_only_originals(node: &Node) {
    let stock = stock_original();
    assert_eq!(
        client_events(node, "inventory"),
        vec![
            ("stock-1".to_owned(), stock["data"].clone()),
            ("batch-3".to_owned(), json!({"sku": "sku-k", "quantity": 1})),
        ]
    );
    assert_eq!(
        client_events(node, "orders"),
        vec![("order-1".to_owned(), order_original()["data"].clone())]
    );
}

#[test]
fn a_resend_is_a_duplicate_only_when_it_is_the_same_event_embedded() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut node = Node::start_in(dir.path(), &[]);
    let stock = accept_original(&node, &stock_original());
    let order = accept_original(&node, &order_original());
    // The order's key decides its partition: resends are answered with that stream.
    assert_eq!(order.stream, node.key_stream("orders", "o-i"));
    assert!(
        order.stream.starts_with("orders-p"),
        "expected orders partitioned on a test node: {order:?}"
    );
    check_all(&node, &stock, &order);
    check_batches(&node, &stock);
    // A binary-mode resend is compared the same way.
    let headers = |quantity: &str| {
        node.post_with(
            "/v1/events",
            "application/json",
            &[
                ("ce-specversion", "1.0"),
                ("ce-id", "stock-1"),
                ("ce-source", SOURCE),
                ("ce-type", "inventory.StockAdded"),
                ("ce-subject", "sku-i"),
                ("ce-tenant", "a"),
            ],
            format!(r#"{{"sku":"sku-i","quantity":{quantity}}}"#),
        )
    };
    let binary = headers("5");
    assert_eq!(binary.status, 200, "{}", binary.text);
    assert_eq!(binary.json["sequence"], stock.sequence, "{}", binary.json);
    let binary = headers("8");
    assert_eq!(binary.status, 409, "{}", binary.text);
    assert_eq!(binary.json["differs"], json!(["data"]), "{}", binary.json);
    // A batch across domains (prepared in each, then one append) is refused whole too.
    let mut other = stock_original();
    other["subject"] = json!("sku-j");
    let credit = client_event(
        "credit-1",
        "payments.CreditGranted",
        "dave",
        json!({"customer": "dave", "amount": 10}),
    );
    let refused = node.publish_batch(&[credit, other]);
    assert_batch_conflict(&refused, 1, stock.json());
    assert!(
        client_events(&node, "payments").is_empty(),
        "nothing appended"
    );
    assert_only_originals(&node);

    // After a SIGKILL the index is rebuilt from the log: the same answers.
    node.kill();
    let node = Node::start_in(dir.path(), &[]);
    check_all(&node, &stock, &order);
    assert_only_originals(&node);
}

#[test]
fn a_resend_is_compared_by_the_owner_in_networked_mode_and_the_answer_forwarded_unchanged() {
    let _serial = serial();
    let nats = NatsServer::start();
    let owner = nats.node("node-b", "inventory,orders");
    let entry = nats.node("node-a", "payments");
    let stock = accept_original(&owner, &stock_original());
    let order = accept_original(&owner, &order_original());
    let direct = check_all(&owner, &stock, &order);
    let forwarded = check_all(&entry, &stock, &order);
    for (direct, forwarded) in direct.iter().zip(&forwarded) {
        assert_eq!(forwarded.status, direct.status, "{}", forwarded.text);
        if direct.status == 409 {
            // The problem the owner answered, unchanged.
            assert_eq!(forwarded.json, direct.json);
        }
    }
    check_batches(&entry, &stock);
    assert_only_originals(&entry);

    // A new owner (the same node id, restarted) reads the recent events back from
    // JetStream: the same answers.
    drop(owner);
    let owner = nats.node("node-b", "inventory,orders");
    check_all(&owner, &stock, &order);
    assert_only_originals(&owner);
}

#[test]
fn a_resend_beyond_the_owners_index_is_compared_with_what_jetstream_holds() {
    let _serial = serial();
    let nats = NatsServer::start();
    // The owner remembers only its last two events, so the original is soon known only
    // to JetStream's duplicate window.
    let node = nats.node_with(
        "node-a",
        "inventory,orders",
        &[("HERALD_FAULT_RESEND_INDEX", "2")],
    );
    let stock = accept_original(&node, &stock_original());
    let mut fillers = 0;
    let mut forget = || {
        for _ in 0..2 {
            fillers += 1;
            node.accept(&client_event(
                &format!("filler-{fillers}"),
                "inventory.StockAdded",
                "sku-f",
                json!({"sku": "sku-f", "quantity": 1}),
            ));
        }
    };
    // One event alone is one message to JetStream, which says where the original is.
    // Beyond the owner's index a resend is validated as a new event before JetStream sees
    // it, so a resend refused as a new event (422) is left out here.
    let cases: Vec<Case> = stock_cases()
        .into_iter()
        .filter(|case| !case.refused_as_new)
        .collect();
    for case in &cases {
        forget();
        check(&node, &stock, case);
    }
    // A batch is one atomic batch, which JetStream refuses without saying which event it
    // holds, nor where.
    let mut other = stock_original();
    other["data"] = json!({"sku": "sku-i", "quantity": 7});
    let fresh = client_event(
        "batch-1",
        "inventory.StockAdded",
        "sku-k",
        json!({"sku": "sku-k", "quantity": 1}),
    );
    forget();
    let refused = node.publish_batch(&[fresh.clone(), other]);
    assert_batch_conflict(&refused, 1, stock.json());
    forget();
    let mixed = node.publish_batch(&[fresh, stock_original()]);
    assert_eq!(mixed.status, 202, "{}", mixed.text);
    assert_eq!(
        mixed.json["results"][0]["status"], "accepted",
        "{}",
        mixed.json
    );
    assert_eq!(
        mixed.json["results"][1]["status"], "duplicate",
        "{}",
        mixed.json
    );
    assert_eq!(
        mixed.json["results"][1]["sequence"], stock.sequence,
        "{}",
        mixed.json
    );

    let ids: Vec<String> = client_events(&node, "inventory")
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let mut expected = vec!["stock-1".to_owned()];
    let batches = 2;
    let filler_count = (cases.len() + batches) * 2;
    for n in 1..=filler_count {
        expected.push(format!("filler-{n}"));
    }
    expected.push("batch-1".to_owned());
    assert_eq!(ids, expected, "the original once, nothing from a refusal");
    let recognised = node
        .logs()
        .matches("JetStream recognised a resend older than this node's index")
        .count();
    assert_eq!(
        recognised,
        cases.len() + batches,
        "each resend went past the owner's index to JetStream"
    );
}
