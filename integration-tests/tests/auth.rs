//! Access control: with `[auth]` on, every request but health and readiness needs a bearer
//! token whose scopes (and domains) cover it; 401 and 403 are problem+json, nothing is
//! appended for a refused request, and secrets never reach the logs.

use std::path::{Path, PathBuf};
use std::time::Duration;

use herald_integration_tests::{
    domain_streams, herald_binary, listed_partitions, node_command_with, order_placed, run_command,
    sample_config_with_auth, settle_streams, stock_added, Node, Reply,
};

const PUBLISHER: &str = "publisher-secret-8f2c1a9e77b4";
const ORDERS_ONLY: &str = "orders-only-secret-1d3e5f7a9b";
const READER: &str = "reader-secret-0a1b2c3d4e5f";
const ADMIN: &str = "admin-secret-6e5d4c3b2a19";

/// The sample config with auth on and four tokens, one from each kind of source.
fn auth_config(dir: &Path) -> PathBuf {
    let token_file = dir.join("orders-only.token");
    std::fs::write(&token_file, format!("{ORDERS_ONLY}\n")).expect("token file");
    let tokens = format!(
        "[[auth.tokens]]
name = \"publisher\"
token_env = \"HERALD_TEST_PUBLISHER_TOKEN\"
scopes = [\"publish\", \"query\"]

[[auth.tokens]]
name = \"orders-only\"
token_file = \"{}\"
scopes = [\"publish\", \"query\"]
domains = [\"orders\"]

[[auth.tokens]]
name = \"reader\"
token = \"{READER}\"
scopes = [\"query\"]

[[auth.tokens]]
name = \"admin\"
token_env = \"HERALD_TEST_ADMIN_TOKEN\"
scopes = [\"admin\"]
",
        token_file.display()
    );
    sample_config_with_auth(dir, &tokens)
}

fn env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("HERALD_TEST_PUBLISHER_TOKEN", PUBLISHER),
        ("HERALD_TEST_ADMIN_TOKEN", ADMIN),
    ]
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn get(node: &Node, path: &str, authorization: Option<&str>) -> Reply {
    let mut request = node.client().get(format!("{}{path}", node.base));
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    Reply::from(request.send())
}

fn publish(node: &Node, event: &serde_json::Value, authorization: Option<&str>) -> Reply {
    let headers: Vec<(&str, &str)> = authorization
        .map(|value| vec![("authorization", value)])
        .unwrap_or_default();
    node.post_with(
        "/v1/events",
        "application/cloudevents+json",
        &headers,
        event.to_string(),
    )
}

fn assert_problem(reply: &Reply, status: u16, detail: &str, what: &str) {
    assert_eq!(reply.status, status, "{what}: {}", reply.text);
    assert!(
        reply.content_type.starts_with("application/problem+json"),
        "{what}: content type {}",
        reply.content_type
    );
    let seen = reply.json["detail"].as_str().unwrap_or_default();
    assert!(
        seen.contains(detail),
        "{what}: detail {seen:?} lacks {detail:?}"
    );
}

/// [`Node::settle`], reading `/v1/streams` with a token that may.
fn settle(node: &Node) {
    settle_streams(Duration::from_secs(30), || {
        let reply = get(node, "/v1/streams", Some(&bearer(READER)));
        assert_eq!(reply.status, 200, "{}", reply.text);
        reply.json
    });
}

/// The events appended to `domain`: the last sequences of its streams (one per partition)
/// summed.
fn domain_events(node: &Node, domain: &str) -> u64 {
    let reply = get(node, "/v1/streams", Some(&bearer(READER)));
    assert_eq!(reply.status, 200, "{}", reply.text);
    let partitions = listed_partitions(&reply.json, domain);
    domain_streams(domain, partitions)
        .iter()
        .map(|stream| {
            reply.json["streams"]
                .as_array()
                .expect("streams")
                .iter()
                .find(|s| s["stream"] == stream.as_str())
                .and_then(|s| s["last_sequence"].as_u64())
                .unwrap_or_else(|| panic!("expected {stream} listed: {}", reply.text))
        })
        .sum()
}

#[test]
fn every_token_case_gets_the_answer_its_scopes_give() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = auth_config(dir.path());
    let node = Node::start_with_config(&config, &env());

    // Health and readiness stay open.
    assert_eq!(get(&node, "/healthz", None).status, 200);
    assert_eq!(get(&node, "/readyz", None).status, 200);

    // 401: no token, a wrong token, another scheme. Nothing is appended.
    let stock = stock_added("sku-1", 10);
    assert_problem(
        &publish(&node, &stock, None),
        401,
        "needs a bearer token",
        "no token",
    );
    assert_problem(
        &publish(&node, &stock, Some(&bearer("not-a-token-at-all-123"))),
        401,
        "not valid",
        "wrong token",
    );
    assert_problem(
        &publish(&node, &stock, Some("Basic cHVibGlzaGVyOnNlY3JldA==")),
        401,
        "Bearer",
        "basic auth",
    );
    assert_problem(
        &get(&node, "/v1/domains/inventory/entities/sku-1", None),
        401,
        "needs a bearer token",
        "query without a token",
    );
    assert_eq!(
        domain_events(&node, "inventory"),
        0,
        "a refused request appended"
    );

    // 403: the right token without the scope.
    let reply = publish(&node, &stock, Some(&bearer(READER)));
    assert_problem(&reply, 403, "may not publish", "reader publishing");
    assert_eq!(reply.json["scope"], "publish");
    assert_problem(
        &get(
            &node,
            "/v1/domains/inventory/entities/sku-1",
            Some(&bearer(ADMIN)),
        ),
        403,
        "may not query",
        "admin querying",
    );
    assert_eq!(
        domain_events(&node, "inventory"),
        0,
        "a forbidden request appended"
    );

    // The right scope.
    let reply = publish(&node, &stock, Some(&bearer(PUBLISHER)));
    assert_eq!(reply.status, 202, "publisher publishing: {}", reply.text);
    assert_eq!(domain_events(&node, "inventory"), 1);

    // Per domain: orders-only may publish and query orders, nothing else.
    let reply = publish(&node, &stock_added("sku-2", 1), Some(&bearer(ORDERS_ONLY)));
    assert_problem(
        &reply,
        403,
        "on domain \"inventory\"",
        "orders-only to inventory",
    );
    assert_eq!(domain_events(&node, "inventory"), 1);
    let order = order_placed("o-1", "alice", &[("sku-1", 1, 700)]);
    let reply = publish(&node, &order, Some(&bearer(ORDERS_ONLY)));
    assert_eq!(reply.status, 202, "orders-only to orders: {}", reply.text);
    assert_eq!(
        get(
            &node,
            "/v1/domains/orders/entities/o-1",
            Some(&bearer(ORDERS_ONLY))
        )
        .status,
        200
    );
    assert_problem(
        &get(
            &node,
            "/v1/domains/inventory/entities/sku-1",
            Some(&bearer(ORDERS_ONLY)),
        ),
        403,
        "on domain \"inventory\"",
        "orders-only reading inventory",
    );
    assert_problem(
        &get(
            &node,
            "/v1/streams/inventory/events",
            Some(&bearer(ORDERS_ONLY)),
        ),
        403,
        "on domain \"inventory\"",
        "orders-only reading the inventory stream",
    );
    // A batch reaching a domain the token may not publish to is refused whole. The first
    // order's saga settles first: its reactions (the payment timer's records among them)
    // would otherwise land between the two counts.
    settle(&node);
    let before = domain_events(&node, "orders");
    let batch = serde_json::Value::Array(vec![
        order_placed("o-2", "alice", &[("sku-1", 1, 700)]),
        stock_added("sku-3", 1),
    ]);
    let reply = node.post_with(
        "/v1/events",
        "application/cloudevents-batch+json",
        &[("authorization", &bearer(ORDERS_ONLY))],
        batch.to_string(),
    );
    assert_problem(&reply, 403, "inventory", "mixed batch");
    assert_eq!(
        domain_events(&node, "orders"),
        before,
        "half a forbidden batch was appended"
    );

    // Queries with the query scope.
    let reply = get(
        &node,
        "/v1/domains/inventory/entities/sku-1",
        Some(&bearer(READER)),
    );
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(get(&node, "/v1/domains", Some(&bearer(READER))).status, 200);

    // Dead letters, and the dead-letter streams, are for admin tokens only. A partitioned
    // domain parks per partition: its dead letters are named by the partition's stream.
    let reply = get(&node, "/v1/streams", Some(&bearer(READER)));
    let orders = domain_streams("orders", listed_partitions(&reply.json, "orders")).swap_remove(0);
    for path in [
        "/v1/deadletters".to_owned(),
        "/v1/deadletters/orders".to_owned(),
        format!("/v1/deadletters/{orders}"),
        format!("/v1/streams/deadletter-{orders}/events"),
    ] {
        let path = path.as_str();
        let reply = get(&node, path, None);
        assert_problem(&reply, 401, "bearer", path);
        let reply = get(&node, path, Some(&bearer(READER)));
        assert_problem(&reply, 403, "admin", path);
        // Past auth: 200, or 404 for a dead-letter stream nothing was ever parked in (or a
        // partitioned domain named whole).
        let reply = get(&node, path, Some(&bearer(ADMIN)));
        assert!(
            reply.status == 200 || reply.status == 404,
            "{path} with admin: {}",
            reply.text
        );
    }
    let skip_path = format!("{}/v1/deadletters/{orders}/orders-1/skip", node.base);
    let skip = node
        .client()
        .post(&skip_path)
        .header("authorization", bearer(PUBLISHER))
        .send();
    assert_problem(&Reply::from(skip), 403, "admin", "skip with publish scope");
    let skip = node
        .client()
        .post(&skip_path)
        .header("authorization", bearer(ADMIN))
        .send();
    assert_problem(
        &Reply::from(skip),
        404,
        "no parked input",
        "skip of nothing",
    );

    // Secrets never reach the logs.
    let logs = node.logs();
    for secret in [
        PUBLISHER,
        ORDERS_ONLY,
        READER,
        ADMIN,
        "not-a-token-at-all-123",
    ] {
        assert!(!logs.contains(secret), "a secret is in the logs:\n{logs}");
    }
    assert!(
        logs.contains("auth enabled"),
        "no auth line in the logs:\n{logs}"
    );
}

#[test]
fn a_token_whose_secret_is_missing_stops_the_node_with_status_2() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = auth_config(dir.path());
    let data = tempfile::tempdir().expect("data dir");
    let mut command = node_command_with(&herald_binary(), &config, data.path());
    command.env("HERALD_TEST_ADMIN_TOKEN", ADMIN);
    command.env_remove("HERALD_TEST_PUBLISHER_TOKEN");
    let finished = run_command(command, Duration::from_secs(30));
    assert_eq!(finished.status, Some(2), "{}", finished.output());
    let output = finished.output();
    assert!(
        output.contains("HERALD_TEST_PUBLISHER_TOKEN") && output.contains("auth.tokens[0]"),
        "the error names the token and its variable:\n{output}"
    );
    assert!(
        !output.contains(ADMIN),
        "a secret is in the output:\n{output}"
    );
}

#[test]
fn auth_off_beyond_loopback_is_warned_about() {
    let node = Node::start_with(&[("HERALD_HTTP__BIND", "0.0.0.0:0")]);
    assert!(
        node.logs().contains("AUTH IS OFF"),
        "no warning in the logs:\n{}",
        node.logs()
    );
    let quiet = Node::start();
    assert!(!quiet.logs().contains("AUTH IS OFF"), "warned on loopback");
}
