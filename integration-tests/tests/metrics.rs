//! `GET /metrics`: the Prometheus text format with the log, streams, domains, ingress and
//! connections; with `[auth]` on it needs the `metrics` scope unless `metrics_open`.

use std::path::{Path, PathBuf};

use herald_integration_tests::*;

const SCRAPER: &str = "scraper-secret-5b7d9f1e3c2a";
const READER: &str = "reader-secret-9e8d7c6b5a41";

fn get(node: &Node, path: &str, authorization: Option<&str>) -> Reply {
    let mut request = node.client().get(format!("{}{path}", node.base));
    if let Some(token) = authorization {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    Reply::from(request.send())
}

#[test]
fn metrics_report_the_log_streams_domains_ingress_and_connections() {
    let node = Node::start();
    for sku in ["sku-1", "sku-2", "sku-3"] {
        node.accept(&stock_added(sku, 5));
    }
    let bad = node.publish(&event("orders.Nope", "x", serde_json::json!({})));
    assert_eq!(bad.status, 422);
    node.settle();

    let reply = node.get("/metrics");
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        reply.content_type,
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = &reply.text;
    // Every line is a comment or `name{labels} value`.
    for line in text.lines() {
        if line.starts_with("# HELP ") || line.starts_with("# TYPE ") {
            continue;
        }
        let (name, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("not a sample line: {line:?}"));
        assert!(value.parse::<f64>().is_ok(), "bad value in {line:?}");
        assert!(
            name.starts_with("herald_") || name.starts_with("process_"),
            "{line:?}"
        );
    }
    let value = |sample: &str| {
        metric_value(text, sample).unwrap_or_else(|| panic!("no {sample} in:\n{text}"))
    };
    assert_eq!(
        value("herald_stream_events_total{stream=\"inventory\"}"),
        3.0
    );
    assert_eq!(value("herald_ingress_requests_total{status=\"202\"}"), 3.0);
    assert_eq!(value("herald_ingress_requests_total{status=\"422\"}"), 1.0);
    assert!(value("herald_log_head_offset") >= 3.0);
    // A partitioned domain (orders, shipping on a test node) reports each partition's host,
    // labelled with its partition; the others one host.
    let mut hosts = Vec::new();
    for domain in ["analytics", "inventory", "orders", "payments", "shipping"] {
        match node.partitions(domain) {
            1 => hosts.push(format!("domain=\"{domain}\"")),
            partitions => hosts
                .extend((0..partitions).map(|p| format!("domain=\"{domain}\",partition=\"{p}\""))),
        }
    }
    assert!(
        hosts.iter().any(|labels| labels.contains("partition=")),
        "expected a partitioned domain on a test node: {hosts:?}"
    );
    for labels in &hosts {
        assert_eq!(
            value(&format!("herald_domain_lag_records{{{labels}}}")),
            0.0
        );
        assert_eq!(value(&format!("herald_domain_ready{{{labels}}}")), 1.0);
        assert_eq!(value(&format!("herald_domain_failed{{{labels}}}")), 0.0);
        assert_eq!(
            value(&format!("herald_domain_dead_letters{{{labels}}}")),
            0.0
        );
        assert_eq!(
            value(&format!("herald_domain_ingress_capacity{{{labels}}}")),
            1024.0
        );
        assert_eq!(
            value(&format!("herald_domain_ingress_refused_total{{{labels}}}")),
            0.0
        );
    }
    assert!(value("herald_http_open_connections") >= 1.0);
    assert_eq!(value("herald_http_max_connections"), 1024.0);
    assert!(value("process_resident_memory_bytes") > 1_000_000.0);
    assert!(text.contains("# TYPE herald_stream_events_total counter"));

    // Latency histograms: every answer to POST /v1/events is observed once, every bucket
    // counts at most what the next one does, and the last (+Inf) counts them all.
    assert!(text.contains("# TYPE herald_ingest_answer_seconds histogram"));
    assert_eq!(value("herald_ingest_answer_seconds_count"), 4.0);
    let buckets: Vec<f64> = text
        .lines()
        .filter(|line| line.starts_with("herald_ingest_answer_seconds_bucket{"))
        .map(|line| value(line.rsplit_once(' ').expect("a sample").0))
        .collect();
    assert!(buckets.len() > 10, "{text}");
    assert!(
        buckets.windows(2).all(|pair| pair[0] <= pair[1]),
        "{buckets:?}"
    );
    assert_eq!(
        value("herald_ingest_answer_seconds_bucket{le=\"+Inf\"}"),
        4.0
    );
    assert!(value("herald_ingest_answer_seconds_sum") > 0.0);
    assert!(value("herald_log_append_seconds_count") >= 3.0);
    assert!(value("herald_log_fsync_seconds_count") >= 1.0);
    // Each stock-added is an input of analytics: its handler ran three times.
    assert_eq!(
        value("herald_domain_handler_seconds_count{domain=\"analytics\"}"),
        3.0
    );
    assert!(
        !text.contains("# EOF"),
        "the 0.0.4 format has no EOF marker"
    );
}

/// The sample config with auth on, a scraper token (`metrics`) and a reader (`query`).
fn auth_config(dir: &Path) -> PathBuf {
    let tokens = format!(
        "[[auth.tokens]]
name = \"scraper\"
token = \"{SCRAPER}\"
scopes = [\"metrics\"]

[[auth.tokens]]
name = \"reader\"
token = \"{READER}\"
scopes = [\"query\"]
"
    );
    sample_config_with_auth(dir, &tokens)
}

#[test]
fn metrics_need_the_metrics_scope_unless_open() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = auth_config(dir.path());
    let node = Node::start_with_config(&config, &[]);

    let reply = get(&node, "/metrics", None);
    assert_eq!(reply.status, 401, "{}", reply.text);
    assert!(reply.content_type.starts_with("application/problem+json"));
    let reply = get(&node, "/metrics", Some(READER));
    assert_eq!(reply.status, 403, "{}", reply.text);
    assert_eq!(reply.json["scope"], "metrics");
    assert!(
        reply.json["detail"]
            .as_str()
            .is_some_and(|d| d.contains("may not read metrics")),
        "{}",
        reply.text
    );
    let reply = get(&node, "/metrics", Some(SCRAPER));
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(reply.text.contains("herald_log_head_offset"));
    // The scraper's token reads nothing else.
    assert_eq!(get(&node, "/v1/streams", Some(SCRAPER)).status, 403);
    assert_eq!(get(&node, "/healthz", None).status, 200);
    assert_eq!(get(&node, "/readyz", None).status, 200);
    drop(node);

    // metrics_open (here from the environment): no token needed for /metrics only.
    let node = Node::start_with_config(&config, &[("HERALD_AUTH__METRICS_OPEN", "true")]);
    let reply = get(&node, "/metrics", None);
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(reply.text.contains("herald_log_head_offset"));
    assert_eq!(get(&node, "/v1/streams", None).status, 401);
}
