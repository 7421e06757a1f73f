//! Traces across reactions, in both modes: an order posted with an HTTP `traceparent` is
//! one trace through the whole saga, exported over OTLP/HTTP to a real receiver. Its
//! ingest span is the child of the client's span; each reaction's handling the child of
//! the span that emitted its input; each emitted event's span the child of that handling;
//! and every stored event carries its own span as `traceparent`. JSON log lines carry the
//! node id, and those logged while handling carry the trace id.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use herald_integration_tests::nats::NatsServer;
use herald_integration_tests::otlp::{OtlpReceiver, ReceivedSpan};
use herald_integration_tests::*;
use serde_json::{json, Value};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

fn telemetry_env(receiver: &OtlpReceiver) -> Vec<(&'static str, String)> {
    vec![
        ("HERALD_TELEMETRY__OTLP_ENDPOINT", receiver.endpoint()),
        ("HERALD_TELEMETRY__FORMAT", "json".to_owned()),
        ("RUST_LOG", "info,herald_actors::host=debug".to_owned()),
    ]
}

/// The span id a stored event's `traceparent` names.
fn span_of(event: &Value) -> Option<(String, String)> {
    let parts: Vec<&str> = event["traceparent"].as_str()?.split('-').collect();
    Some((parts.get(1)?.to_string(), parts.get(2)?.to_string()))
}

/// Runs the saga through `node` (one of `nodes`, each with its id) and checks its trace.
fn run_saga_and_check_its_trace(node: &Node, nodes: &[(&Node, &str)], receiver: &OtlpReceiver) {
    let node_id = nodes
        .iter()
        .find(|(candidate, _)| std::ptr::eq(*candidate, node))
        .map(|(_, id)| *id)
        .expect("the node posted to is one of the nodes");
    let accepted = |reply: Reply| assert_eq!(reply.status, 202, "{}", reply.text);
    accepted(node.publish(&stock_added("sku-t", 10)));
    accepted(node.publish(&credit_granted("trace-customer", 10_000)));
    let order = order_placed("o-t", "trace-customer", &[("sku-t", 2, 100)]);
    let traceparent = format!("00-{TRACE}-{CLIENT_SPAN}-01");
    accepted(node.post_with(
        "/v1/events",
        "application/cloudevents+json",
        &[("traceparent", &traceparent)],
        order.to_string(),
    ));
    node.await_field("orders", "o-t", "status", &json!("awaiting_shipment"));
    node.await_field("shipping", "o-t", "status", &json!("scheduled"));
    node.settle();

    // Every stored event of the trace, by its span id.
    let stored: BTreeMap<String, Value> = node
        .read_all_streams()
        .into_values()
        .flatten()
        .filter_map(|event| {
            let (trace, span) = span_of(&event)?;
            (trace == TRACE).then_some((span, event))
        })
        .collect();
    let types: BTreeSet<&str> = stored
        .values()
        .filter_map(|event| event["type"].as_str())
        .collect();
    for expected in [
        "orders.OrderPlaced",
        "inventory.StockReserved",
        "payments.PaymentCaptured",
        "shipping.ShipmentScheduled",
    ] {
        assert!(
            types.contains(expected),
            "{expected} not in the trace: {types:?}"
        );
    }
    let placed = stored
        .iter()
        .find(|(_, event)| event["type"] == "orders.OrderPlaced")
        .map(|(span, _)| span.clone())
        .expect("the order in the trace");

    // Each stored event's span, and each handling that emitted one, reach the receiver.
    let mut spans: Vec<ReceivedSpan> = Vec::new();
    let complete = poll(Duration::from_secs(30), || {
        spans = receiver
            .spans()
            .into_iter()
            .filter(|span| span.trace_id == TRACE)
            .collect();
        let ids: BTreeSet<&str> = spans.iter().map(|s| s.span_id.as_str()).collect();
        stored.keys().all(|span| ids.contains(span.as_str()))
            && spans.iter().all(|span| {
                span.parent_span_id == CLIENT_SPAN || ids.contains(span.parent_span_id.as_str())
            })
    });
    let by_id: BTreeMap<&str, &ReceivedSpan> =
        spans.iter().map(|s| (s.span_id.as_str(), s)).collect();
    assert!(
        complete,
        "the trace is not whole: stored spans {:?}, received {spans:#?}",
        stored.keys().collect::<Vec<_>>()
    );

    // The ingest: the client's span is its parent; its append is its child.
    let ingest = by_id[placed.as_str()];
    assert_eq!(ingest.name, "ingest");
    assert_eq!(ingest.parent_span_id, CLIENT_SPAN);
    assert_eq!(
        ingest.attribute("cloudevents.event_type"),
        Some("orders.OrderPlaced")
    );
    assert_eq!(ingest.node, node_id);
    assert!(
        spans
            .iter()
            .any(|s| s.name == "append" && s.parent_span_id == placed),
        "no append span under the ingest: {spans:#?}"
    );

    // Every reaction: emitted by a handling of the event that caused it.
    for (span_id, event) in &stored {
        if event["type"] == "orders.OrderPlaced" {
            continue;
        }
        let emit = by_id[span_id.as_str()];
        assert_eq!(emit.name, "emit", "{event}");
        assert_eq!(emit.attribute("cloudevents.event_id"), event["id"].as_str());
        let handle = by_id[emit.parent_span_id.as_str()];
        assert_eq!(handle.name, "handle", "{event}");
        // The handling's parent is the span its input (the cause) was stored with.
        let cause = stored
            .iter()
            .find(|(_, candidate)| {
                candidate["id"] == event["causeid"] && candidate["source"] == event["causesource"]
            })
            .map(|(span, _)| span.as_str())
            .unwrap_or_else(|| panic!("the cause of {event} is not in the trace"));
        assert_eq!(handle.parent_span_id, cause, "{event}");
        assert_eq!(
            handle.attribute("cloudevents.event_id"),
            event["causeid"].as_str()
        );
    }

    // JSON log lines: each names its node; those logged while handling, the trace.
    let mut traced = 0;
    for (node, id) in nodes {
        let logs = node.logs();
        let lines: Vec<Value> = logs
            .lines()
            .filter(|line| line.starts_with('{'))
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
            .collect();
        assert!(lines.len() > 5, "{logs}");
        assert!(lines.iter().all(|line| line["node"] == *id), "{logs}");
        traced += lines
            .iter()
            .filter(|line| {
                line["trace_id"] == TRACE && line["fields"]["message"] == "input handled"
            })
            .count();
    }
    assert!(
        traced >= 3,
        "reactions of the trace logged without its trace id"
    );
}

#[test]
fn an_order_is_one_trace_through_the_saga_embedded() {
    let receiver = OtlpReceiver::start();
    let env = telemetry_env(&receiver);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let node = Node::start_with(&env);
    run_saga_and_check_its_trace(&node, &[(&node, "herald-1")], &receiver);
}

/// Two nodes: the order is posted to the one without orders, so it is forwarded, and the
/// saga's reactions cross between them; the trace is one all the same.
#[test]
fn an_order_is_one_trace_through_the_saga_networked() {
    let receiver = OtlpReceiver::start();
    let nats = NatsServer::start();
    let env = telemetry_env(&receiver);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let a = nats.node_with("node-a", "inventory", &env);
    let b = nats.node_with("node-b", "analytics,orders,payments,shipping", &env);
    run_saga_and_check_its_trace(&a, &[(&a, "node-a"), (&b, "node-b")], &receiver);
    let spans = receiver.spans();
    let nodes: BTreeSet<&str> = spans
        .iter()
        .filter(|span| span.trace_id == TRACE && span.name == "handle")
        .map(|span| span.node.as_str())
        .collect();
    assert_eq!(
        nodes,
        BTreeSet::from(["node-a", "node-b"]),
        "both nodes handled parts of the saga"
    );
    // The latency histograms of networked mode: node-a forwarded the order, node-b's
    // appends were acknowledged by JetStream.
    let forwarded = metric_value(&a.get("/metrics").text, "herald_forward_seconds_count");
    assert!(forwarded.is_some_and(|count| count >= 1.0), "{forwarded:?}");
    let acked = metric_value(&b.get("/metrics").text, "herald_log_append_seconds_count");
    assert!(acked.is_some_and(|count| count >= 3.0), "{acked:?}");
}
