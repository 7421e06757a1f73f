//! Bad input never reaches the log: each case gets its status and an RFC 9457 problem that
//! says what is wrong and where, and nothing is appended.

use herald_integration_tests::*;
use serde_json::{json, Value};

const STRUCTURED: &str = "application/cloudevents+json";
const BATCH: &str = "application/cloudevents-batch+json";

/// One bad request and what the node must answer.
struct Case {
    name: &'static str,
    content_type: &'static str,
    body: Vec<u8>,
    status: u16,
    /// Text the problem's `detail` must contain.
    detail: &'static str,
    /// Expected `pointer` member, where the problem has a place.
    pointer: Option<&'static str>,
}

fn case(name: &'static str, body: impl Into<Vec<u8>>, status: u16, detail: &'static str) -> Case {
    Case {
        name,
        content_type: STRUCTURED,
        body: body.into(),
        status,
        detail,
        pointer: None,
    }
}

impl Case {
    fn at(mut self, pointer: &'static str) -> Self {
        self.pointer = Some(pointer);
        self
    }

    fn as_(mut self, content_type: &'static str) -> Self {
        self.content_type = content_type;
        self
    }
}

fn edit(mut event: Value, key: &str, value: Option<Value>) -> Vec<u8> {
    match value {
        Some(value) => event[key] = value,
        None => {
            event.as_object_mut().expect("object").remove(key);
        }
    }
    event.to_string().into_bytes()
}

fn cases() -> Vec<Case> {
    let good = || stock_added("sku-bad", 1);
    let order = |data: Value| event("orders.OrderPlaced", "o-bad", data).to_string();
    let mut cases = vec![
        case("malformed json", "{\"id\": ", 400, "not valid JSON"),
        case("empty body", "", 400, "not valid JSON"),
        case("not an object", "[1, 2]", 400, "JSON object"),
        case(
            "missing id",
            edit(good(), "id", None),
            400,
            "\"id\" is missing",
        )
        .at("/id"),
        case(
            "missing source",
            edit(good(), "source", None),
            400,
            "\"source\" is missing",
        )
        .at("/source"),
        case(
            "a source reserved for Herald's own domains",
            edit(good(), "source", Some(json!("/herald/domains/inventory"))),
            400,
            "is reserved",
        )
        .at("/source"),
        case(
            "missing type",
            edit(good(), "type", None),
            400,
            "\"type\" is missing",
        )
        .at("/type"),
        case(
            "missing subject",
            edit(good(), "subject", None),
            400,
            "\"subject\" is missing",
        )
        .at("/subject"),
        case(
            "missing specversion",
            edit(good(), "specversion", None),
            400,
            "specversion",
        )
        .at("/specversion"),
        case(
            "empty id",
            edit(good(), "id", Some(json!(""))),
            400,
            "must not be empty",
        )
        .at("/id"),
        case(
            "id not a string",
            edit(good(), "id", Some(json!(5))),
            400,
            "must be a string",
        )
        .at("/id"),
        case(
            "specversion 0.3",
            edit(good(), "specversion", Some(json!("0.3"))),
            400,
            "\"1.0\"",
        )
        .at("/specversion"),
        case(
            "bad time",
            edit(good(), "time", Some(json!("noon"))),
            400,
            "RFC 3339",
        )
        .at("/time"),
        case(
            "unknown type",
            edit(good(), "type", Some(json!("orders.Foo"))),
            422,
            "ingress types are",
        )
        .at("/type"),
        case(
            "emitted, not ingress",
            edit(good(), "type", Some(json!("inventory.StockReserved"))),
            422,
            "emitted by domain \"inventory\"",
        )
        .at("/type"),
        case(
            "quantity zero",
            edit(
                good(),
                "data",
                Some(json!({"sku": "sku-bad", "quantity": 0})),
            ),
            422,
            "quantity",
        )
        .at("/data/quantity"),
        case(
            "quantity a string",
            edit(
                good(),
                "data",
                Some(json!({"sku": "sku-bad", "quantity": "3"})),
            ),
            422,
            "quantity",
        )
        .at("/data/quantity"),
        case("missing data", edit(good(), "data", None), 422, "object").at("/data"),
        case(
            "empty order lines",
            order(json!({"order_id": "o-bad", "customer": "c", "lines": []})),
            422,
            "lines",
        )
        .at("/data/lines"),
        case(
            "nested line quantity",
            order(json!({"order_id": "o-bad", "customer": "c",
                         "lines": [{"sku": "s", "quantity": 0, "unit_price": 1}]})),
            422,
            "quantity",
        )
        .at("/data/lines/0/quantity"),
        case(
            "subject does not match the key",
            edit(good(), "subject", Some(json!("sku-other"))),
            422,
            "does not match",
        )
        .at("/subject"),
        case(
            "dispatch without a shipment",
            order_event("shipping.ShipmentDispatched", "o-none").to_string(),
            409,
            "o-none",
        ),
        case(
            "cancel an unknown order",
            order_event("orders.OrderCancelled", "o-none").to_string(),
            409,
            "o-none",
        ),
        case(
            "wrong content type",
            good().to_string(),
            415,
            "not accepted",
        )
        .as_("text/plain"),
        case(
            "plain json without ce headers",
            good().to_string(),
            400,
            "no ce-specversion header; to send the whole event as JSON, use content type application/cloudevents+json",
        )
        .as_("application/json"),
        case("batch not an array", good().to_string(), 400, "JSON array").as_(BATCH),
        case("empty batch", "[]", 400, "no events").as_(BATCH),
        case(
            "batch with one bad event",
            Value::from(vec![good(), edit_value(good(), "source")]).to_string(),
            400,
            "event 1 of the batch",
        )
        .as_(BATCH)
        .at("/1/source"),
        case(
            "body over max_body_bytes",
            format!("{{\"pad\": \"{}\"}}", "x".repeat(1024 * 1024 + 1)),
            413,
            "max_body_bytes",
        ),
    ];
    cases.push(
        case(
            "batch over max_batch_events",
            Value::from(vec![good(); 1001]).to_string(),
            413,
            "max_batch_events",
        )
        .as_(BATCH),
    );
    cases
}

fn edit_value(mut event: Value, key: &str) -> Value {
    event.as_object_mut().expect("object").remove(key);
    event
}

#[test]
fn every_bad_input_gets_a_problem_and_appends_nothing() {
    let node = Node::start();
    // A baseline every domain has seen, so "nothing appended" is checkable through analytics.
    let reply = node.publish(&stock_added("sku-probe", 1));
    assert_eq!(reply.status, 202);
    eventually("analytics sees the baseline", || {
        node.summary()["events_by_type"]["inventory.StockAdded"] == 1
    });
    let before = node.summary();
    let streams_before = (
        node.publish(&stock_added("sku-probe", 1)).json["sequence"].clone(),
        node.entity("inventory", "sku-bad"),
    );

    let mut failures = Vec::new();
    for case in cases() {
        let reply = node.post("/v1/events", case.content_type, case.body.clone());
        let detail = reply.json["detail"].as_str().unwrap_or_default();
        let problems = [
            (reply.status != case.status).then(|| format!("status {}", reply.status)),
            (!reply.content_type.starts_with("application/problem+json"))
                .then(|| format!("content type {}", reply.content_type)),
            (reply.json["status"] != case.status).then(|| "body status".to_owned()),
            (!reply.json["type"].is_string() || !reply.json["title"].is_string())
                .then(|| "type/title missing".to_owned()),
            (!detail.contains(case.detail)).then(|| format!("detail lacks {:?}", case.detail)),
            case.pointer
                .filter(|pointer| reply.json["pointer"] != *pointer)
                .map(|pointer| format!("pointer is not {pointer}")),
        ];
        let problems: Vec<String> = problems.into_iter().flatten().collect();
        if !problems.is_empty() {
            failures.push(format!(
                "{}: {} in {}",
                case.name,
                problems.join(", "),
                reply.json
            ));
        }
    }
    assert!(failures.is_empty(), "bad answers:\n{}", failures.join("\n"));

    // Nothing was appended: the next event lands right after the last good one, and the
    // read model counts only the good ones once it has seen the probe.
    let probe = node.publish(&stock_added("sku-probe", 1));
    assert_eq!(
        probe.json["sequence"].as_u64(),
        streams_before.0.as_u64().map(|s| s + 1),
        "inventory stream grew by a bad event"
    );
    assert_eq!(node.entity("inventory", "sku-bad"), streams_before.1);
    eventually("analytics sees the probe", || {
        node.summary()["events_by_type"]["inventory.StockAdded"] == 3
    });
    let after = node.summary();
    let mut expected = before.clone();
    expected["events_by_type"]["inventory.StockAdded"] = json!(3);
    assert_eq!(after, expected, "only the two probes were counted");
    assert_eq!(after["orders_placed"], 0);
}

#[test]
fn unknown_routes_domains_entities_and_queries_are_404_problems() {
    let node = Node::start();
    for (path, status, detail) in [
        ("/v1/nothing", 404, "no resource"),
        (
            "/v1/domains/nope/entities/x",
            404,
            "unknown domain \"nope\"",
        ),
        (
            "/v1/domains/orders/entities/o-missing",
            404,
            "no entity \"o-missing\"",
        ),
        (
            "/v1/domains/analytics/queries/nope",
            404,
            "unknown query \"nope\"",
        ),
    ] {
        let reply = node.get(path);
        assert_eq!(reply.status, status, "{path}: {}", reply.json);
        assert!(
            reply.content_type.starts_with("application/problem+json"),
            "{path}"
        );
        let text = reply.json["detail"].as_str().unwrap_or_default();
        assert!(text.contains(detail), "{path}: {text}");
    }
    // A 405 says, in `Allow`, which method the path takes (RFC 9110).
    for (method, path, allow) in [
        ("GET", "/v1/events", "POST"),
        ("DELETE", "/v1/domains", "GET"),
        ("PUT", "/v1/domains/orders/entities/o-1", "GET"),
        ("GET", "/v1/deadletters/orders/x/retry", "POST"),
        ("POST", "/metrics", "GET"),
        ("POST", "/healthz", "GET"),
        ("DELETE", "/readyz", "GET"),
    ] {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let response = node
            .client()
            .request(method.clone(), format!("{}{path}", node.base))
            .send()
            .expect("the node answers");
        assert_eq!(response.status().as_u16(), 405, "{method} {path}");
        let allowed = response
            .headers()
            .get("allow")
            .map(|v| v.to_str().unwrap_or(""));
        assert_eq!(allowed, Some(allow), "{method} {path}: Allow header");
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.as_bytes().to_vec());
        assert!(
            content_type.is_some_and(|c| c.starts_with(b"application/problem+json")),
            "{method} {path}"
        );
    }
}

/// Binary mode (`ce-*` headers) takes and refuses exactly what structured mode does.
#[test]
fn binary_mode_follows_the_structured_rules() {
    let node = Node::start();
    let post = |headers: &[(&str, &str)]| {
        node.post_with(
            "/v1/events",
            "application/json",
            headers,
            json!({"sku": "sku-bin", "quantity": 1}).to_string(),
        )
    };
    let base = |id: &'static str, subject: &'static str| {
        vec![
            ("ce-specversion", "1.0"),
            ("ce-id", id),
            ("ce-source", "/bin-test"),
            ("ce-type", "inventory.StockAdded"),
            ("ce-subject", subject),
        ]
    };
    let with = |mut headers: Vec<(&'static str, &'static str)>,
                extra: &[(&'static str, &'static str)]| {
        headers.extend_from_slice(extra);
        headers
    };
    let mut failures = Vec::new();
    for (name, headers, status, attribute, detail) in [
        (
            "datacontenttype not JSON",
            with(
                base("b-1", "sku-bin"),
                &[("ce-datacontenttype", "text/xml")],
            ),
            400,
            "datacontenttype",
            "text/xml",
        ),
        (
            "non-ASCII header value",
            with(base("b-2", "sku-bin"), &[("ce-tenant", "café")]),
            400,
            "tenant",
            "percent-encoded",
        ),
        (
            "percent-encoding that is not UTF-8",
            base("b-3", "sku%FF"),
            400,
            "subject",
            "not UTF-8",
        ),
        (
            "header sent twice",
            with(base("b-4", "sku-bin"), &[("ce-id", "b-5")]),
            400,
            "id",
            "more than once",
        ),
    ] {
        let reply = post(&headers);
        let detail_text = reply.json["detail"].as_str().unwrap_or_default();
        if reply.status != status
            || reply.json["attribute"] != attribute
            || !detail_text.contains(detail)
            || !reply.content_type.starts_with("application/problem+json")
        {
            failures.push(format!("{name}: {} {}", reply.status, reply.json));
        }
    }
    assert!(
        failures.is_empty(),
        "binary mode answers:\n{}",
        failures.join("\n")
    );
    assert_eq!(
        node.entity("inventory", "sku-bin"),
        None,
        "a refused event was applied"
    );

    // What structured mode takes, binary mode takes: a JSON datacontenttype, and
    // percent-encoded UTF-8 (the CloudEvents HTTP binding), decoded.
    let reply = post(&with(
        base("b-6", "sku-bin"),
        &[
            ("ce-datacontenttype", "application/json; charset=utf-8"),
            ("ce-tenant", "caf%C3%A9"),
        ],
    ));
    assert_eq!(reply.status, 202, "{}", reply.json);
    let stored = node.read_stream("inventory");
    let last = stored.last().expect("the inventory stream holds the event");
    assert_eq!(last["id"], "b-6");
    assert_eq!(last["tenant"], "café", "{last}");
}
