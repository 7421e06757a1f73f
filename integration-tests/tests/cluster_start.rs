//! A cluster's first start: nodes spawned at the same moment on a fresh nats-server, each
//! with its own mix of enabled domains and the same partition settings, all become ready,
//! because the partition count of each domain is recorded once (the first node to get
//! there wins) and agreed by the rest. A node configured with another count is still
//! refused, with the count that was recorded. On one server and on a three-server
//! replicated cluster.

use std::time::{Duration, Instant};

use herald_integration_tests::nats::{
    launch_node_at, on_jetstream, owners, NatsCluster, NatsServer,
};
use herald_integration_tests::*;
use serde_json::Value;

const DOMAINS: [&str; 5] = ["analytics", "inventory", "orders", "payments", "shipping"];
const PARTITIONS: u32 = 12;

/// One cluster at a time: two cores cannot start several without starving them.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The partitions `domain` runs in when `HERALD_DOMAINS__PARTITIONS` is `partitions`: only
/// the domains partitioned by key take it.
fn count(domain: &str, partitions: u32) -> u32 {
    match domain {
        "orders" | "shipping" => partitions,
        _ => 1,
    }
}

/// Spawns one node per `(id, enabled domains, partitions)` on the NATS at `urls`, with
/// `env` besides, at once: each from its own thread, so none waits for another to report
/// its address before it starts.
fn spawn_together(urls: &str, env: &[(&str, &str)], nodes: &[(&str, &str, u32)]) -> Vec<Node> {
    std::thread::scope(|scope| {
        let launching: Vec<_> = nodes
            .iter()
            .map(|&(id, domains, partitions)| {
                scope.spawn(move || {
                    let partitions = partitions.to_string();
                    let mut all = vec![("HERALD_DOMAINS__PARTITIONS", partitions.as_str())];
                    all.extend_from_slice(env);
                    launch_node_at(urls, id, domains, &all)
                })
            })
            .collect();
        launching
            .into_iter()
            .map(|launch| launch.join().expect("a node launches"))
            .collect()
    })
}

/// How a started node ended up: ready, or exited with its status and logs.
#[derive(Debug)]
enum Outcome {
    Ready,
    Exited(Option<i32>, String),
}

/// Waits until `node` answers `/readyz` 200 or its process exits.
fn outcome(node: &mut Node) -> Outcome {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        // Between the stand-in that answers while NATS is reached and the gateway, and
        // as a refused node exits, a request can fail: that is not an answer yet.
        let readyz = node.client().get(format!("{}/readyz", node.base)).send();
        if readyz.is_ok_and(|response| response.status().as_u16() == 200) {
            return Outcome::Ready;
        }
        // Doubles as the pause between polls.
        if let Some(status) = node.wait_exit(Duration::from_millis(50)) {
            return Outcome::Exited(status.code(), node.logs());
        }
        assert!(
            Instant::now() < deadline,
            "node neither ready nor exited within {START_TIMEOUT:?}; logs:\n{}",
            node.logs_tail(80)
        );
    }
}

/// Waits until `node`'s cluster view shows every stream of every domain ready at a node,
/// each domain in `count(domain, partitions)` streams.
fn await_every_stream_ready(node: &Node, partitions: u32) {
    let settled = poll(Duration::from_secs(60), || {
        DOMAINS.iter().all(|domain| {
            let listed = owners(node, domain);
            let streams: Vec<String> = listed.iter().map(|owner| owner.stream.clone()).collect();
            streams == domain_streams(domain, count(domain, partitions))
                && listed
                    .iter()
                    .all(|owner| owner.node.is_some() && owner.status == "ready")
        })
    });
    let view: Vec<_> = DOMAINS.iter().map(|domain| owners(node, domain)).collect();
    assert!(
        settled,
        "not every stream is ready at a node within 60 s: {view:?}"
    );
}

/// Starts three nodes at once on the NATS at `urls` (`env` besides), with mixed enabled
/// domains and the same partitions, and asserts they all become ready and every stream of
/// every domain is ready at a node.
fn three_start_together(round: &str, urls: &str, env: &[(&str, &str)]) {
    let mut nodes = spawn_together(
        urls,
        env,
        &[
            ("n1", "orders", PARTITIONS),
            ("n2", "orders,shipping", PARTITIONS),
            (
                "n3",
                "analytics,inventory,orders,payments,shipping",
                PARTITIONS,
            ),
        ],
    );
    for node in &mut nodes {
        match outcome(node) {
            Outcome::Ready => {}
            Outcome::Exited(status, logs) => {
                panic!("{round}: a node exited with {status:?} instead of becoming ready; logs:\n{logs}")
            }
        }
    }
    await_every_stream_ready(&nodes[0], PARTITIONS);
}

#[test]
fn three_nodes_started_together_on_a_fresh_server_all_become_ready() {
    let _serial = serial();
    for round in 1..=3 {
        let nats = NatsServer::start();
        three_start_together(&format!("round {round}"), &nats.url(), &[]);
    }
}

#[test]
fn three_nodes_started_together_on_a_fresh_three_server_cluster_all_become_ready() {
    let _serial = serial();
    for round in 1..=2 {
        let cluster = NatsCluster::start();
        let replicas = cluster.len().to_string();
        three_start_together(
            &format!("round {round} on three servers"),
            &cluster.urls(),
            &[("HERALD_BUS__NATS__REPLICAS", replicas.as_str())],
        );
    }
}

/// The record of `domain`'s partition count in the layout bucket, if any.
fn recorded(url: &str, domain: &str) -> Option<Value> {
    let key = format!("partitions.{domain}");
    on_jetstream(url, |context| {
        Box::pin(async move {
            let store = context.get_key_value("herald-layout").await.ok()?;
            let value = store.get(key).await.expect("reads the record")?;
            Some(serde_json::from_slice(&value).expect("a JSON record"))
        })
    })
}

/// Whether `output` is the refusal of `configured` partitions for `domain`, laid out with
/// `had`.
fn refuses(output: &str, domain: &str, configured: u32, had: u32) -> bool {
    output.contains(&format!(
        "domain \"{domain}\" is configured with {configured} partition(s)"
    )) && output.contains(&format!("laid out with {had} partition(s)"))
}

#[test]
fn nodes_started_together_with_different_counts_agree_on_the_first_and_refuse_the_other() {
    let _serial = serial();
    let nats = NatsServer::start();
    let mut nodes = spawn_together(
        &nats.url(),
        &[],
        &[
            ("n1", "orders", PARTITIONS),
            ("n2", "orders,shipping", PARTITIONS),
            ("n3", "orders", 4),
        ],
    );
    let outcomes: Vec<Outcome> = nodes.iter_mut().map(outcome).collect();
    // Each domain's count is raced for on its own: orders' and shipping's may differ.
    let agreed: Vec<(&str, u32)> = ["orders", "shipping"]
        .into_iter()
        .map(|domain| {
            let record = recorded(&nats.url(), domain).expect("the count is recorded");
            let count = record["partitions"].as_u64().expect("a count") as u32;
            assert!(
                count == PARTITIONS || count == 4,
                "{domain}: recorded {count}, which no node was configured with"
            );
            (domain, count)
        })
        .collect();
    for ((id, partitions), outcome) in [("n1", PARTITIONS), ("n2", PARTITIONS), ("n3", 4)]
        .into_iter()
        .zip(&outcomes)
    {
        let differing: Vec<&(&str, u32)> = agreed
            .iter()
            .filter(|(_, count)| *count != partitions)
            .collect();
        match outcome {
            Outcome::Ready => assert!(
                differing.is_empty(),
                "{id}, configured with {partitions}, became ready though {agreed:?} was recorded"
            ),
            Outcome::Exited(status, logs) => {
                assert_eq!(*status, Some(2), "{id}: {logs}");
                assert!(
                    differing
                        .iter()
                        .any(|(domain, had)| refuses(logs, domain, partitions, *had)),
                    "{id} should name {partitions} configured and the count recorded ({agreed:?}): {logs}"
                );
            }
        }
    }
    // Those that agree run the domains in the recorded number of streams.
    if let Some((node, _)) = nodes
        .iter()
        .zip(&outcomes)
        .find(|(_, outcome)| matches!(outcome, Outcome::Ready))
    {
        for (domain, count) in &agreed {
            let listed = owners(node, domain);
            assert_eq!(
                listed.len() as u32,
                *count,
                "{domain} runs in the agreed {count} streams: {listed:?}"
            );
        }
    }
}

#[test]
fn streams_from_before_the_records_say_the_count_and_it_is_recorded() {
    let _serial = serial();
    let nats = NatsServer::start();
    let url = nats.url();
    let mut first = nats.node_with("n1", "orders", &[("HERALD_DOMAINS__PARTITIONS", "12")]);
    first.stop();
    assert_eq!(
        recorded(&url, "orders").map(|record| record["partitions"].clone()),
        Some(12.into())
    );
    // A data set laid out before the records were kept: streams, and no record.
    on_jetstream(&url, |context| {
        Box::pin(async move {
            context
                .delete_key_value("herald-layout")
                .await
                .expect("deletes the layout bucket");
        })
    });
    let attempt = |id: &str, domains: &str, partitions: &str| {
        let data_dir = tempfile::tempdir().expect("temp dir");
        run_node_to_exit(
            data_dir.path(),
            &[
                ("HERALD_BUS__KIND", "nats"),
                ("HERALD_BUS__NATS__SERVERS", url.as_str()),
                ("HERALD_NODE__ID", id),
                ("HERALD_DOMAINS__ENABLED", domains),
                ("HERALD_DOMAINS__PARTITIONS", partitions),
            ],
            Duration::from_secs(60),
        )
    };
    let other = attempt("n2", "orders", "6");
    assert_eq!(other.status, Some(2), "{}", other.output());
    // It checks orders' inputs first: shipping, laid out with 12 alongside.
    assert!(
        ["orders", "shipping"]
            .iter()
            .any(|domain| refuses(&other.output(), domain, 6, 12))
            && other.output().contains("no record"),
        "{}",
        other.output()
    );
    for domain in ["orders", "shipping"] {
        assert_eq!(
            recorded(&url, domain),
            None,
            "a refused count is not recorded"
        );
    }
    let same = nats.node_with("n3", "orders", &[("HERALD_DOMAINS__PARTITIONS", "12")]);
    assert_eq!(
        recorded(&url, "orders").map(|record| record["partitions"].clone()),
        Some(12.into()),
        "the count the streams show is recorded"
    );
    // A node that only routes orders' keys (it hosts a domain without orders' inputs)
    // is refused too: with its own count it would send keys to other partitions.
    let router = attempt("n4", "feeder", "6");
    assert_eq!(router.status, Some(2), "{}", router.output());
    assert!(
        refuses(&router.output(), "orders", 6, 12),
        "{}",
        router.output()
    );
    drop(same);
}
