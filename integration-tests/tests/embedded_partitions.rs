//! Partitions in embedded mode: a domain keyed by key (orders, shipping) runs as P partition
//! hosts, P recorded in `log/PARTITIONS` (default: one per core) and never changed on a data
//! dir (exit 2, nothing lost); named queries answer for the whole domain; a batch over
//! several partitions is all or nothing, each event answered with its partition's stream.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use herald_integration_tests::workload::{fingerprint, Keys};
use herald_integration_tests::*;
use serde_json::{json, Value};

/// The partition counts a data dir records, as `log/PARTITIONS` holds them.
fn recorded_partitions(data_dir: &Path) -> BTreeMap<String, u32> {
    let file = data_dir.join("log").join("PARTITIONS");
    let text = std::fs::read_to_string(&file)
        .unwrap_or_else(|error| panic!("expected {} to exist: {error}", file.display()));
    serde_json::from_str(&text).unwrap_or_else(|error| {
        panic!(
            "expected {} to be a JSON map of counts ({error}): {text}",
            file.display()
        )
    })
}

/// `per_partition` order ids for each of `partitions` partitions of orders, grouped by
/// partition: `{prefix}-{n}` for the first `n` that the node's routing puts there.
fn orders_by_partition(prefix: &str, partitions: u32, per_partition: usize) -> Vec<Vec<String>> {
    let mut groups = vec![Vec::new(); partitions as usize];
    for n in 0.. {
        if groups.iter().all(|group| group.len() >= per_partition) {
            break;
        }
        let order = format!("{prefix}-{n}");
        let partition = herald_runtime::partition::of(&order, partitions) as usize;
        if groups[partition].len() < per_partition {
            groups[partition].push(order);
        }
    }
    groups
}

/// The hosts `/readyz` reports, which must all be ready.
fn ready_hosts(node: &Node) -> Vec<String> {
    let reply = node.get("/readyz");
    assert_eq!(reply.status, 200, "/readyz: {}", reply.text);
    let domains = reply.json["domains"]
        .as_object()
        .unwrap_or_else(|| panic!("expected a domains map in /readyz: {}", reply.text));
    for (host, status) in domains {
        assert_eq!(status, "ready", "{host} in /readyz: {}", reply.text);
    }
    domains.keys().cloned().collect()
}

fn statuses(node: &Node, query: &str) -> Value {
    let path = format!("/v1/domains/orders/queries/statuses{query}");
    let reply = node.get(&path);
    assert_eq!(reply.status, 200, "{path}: {}", reply.text);
    reply.json
}

#[test]
fn changing_the_partition_count_is_refused_with_exit_2_and_nothing_is_lost() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut node = Node::start_in(dir.path(), &[("HERALD_DOMAINS__PARTITIONS", "3")]);
    node.accept(&credit_granted("pia", 1_000_000));
    node.accept(&stock_added("sku-p", 1_000));
    let mut keys: Keys = vec![
        ("inventory", "sku-p".to_owned()),
        ("payments", "pia".into()),
    ];
    for group in orders_by_partition("keep", 3, 3) {
        for order in group {
            node.accept(&order_placed(&order, "pia", &[("sku-p", 1, 10)]));
            keys.push(("orders", order.clone()));
            keys.push(("shipping", order));
        }
    }
    let before = fingerprint(&node, &keys);
    for stream in domain_streams("orders", 3) {
        assert!(
            !before["events"][&stream]
                .as_array()
                .is_none_or(Vec::is_empty),
            "expected events in every partition of orders, {stream} has none: {}",
            before["streams"]
        );
    }
    node.stop();
    let recorded = std::fs::read(dir.path().join("log").join("PARTITIONS")).expect("PARTITIONS");
    assert_eq!(recorded_partitions(dir.path())["orders"], 3);

    // Another count, for every domain or for orders alone: refused before anything is
    // read or written.
    for setting in [
        ("HERALD_DOMAINS__PARTITIONS", "5"),
        ("HERALD_DOMAIN__ORDERS__PARTITIONS", "5"),
    ] {
        let refused = run_node_to_exit(dir.path(), &[setting], Duration::from_secs(60));
        assert!(
            !refused.timed_out,
            "expected {setting:?} on a data dir of 3 partitions to be refused, the node kept \
             running:\n{}",
            refused.output()
        );
        assert_eq!(
            refused.status,
            Some(2),
            "expected exit status 2 for {setting:?}:\n{}",
            refused.output()
        );
        for named in ["orders", "3 partition", "5", "PARTITIONS"] {
            assert!(
                refused.stderr.contains(named),
                "expected the refusal of {setting:?} to name {named:?} on stderr:\n{}",
                refused.output()
            );
        }
        assert_eq!(
            std::fs::read(dir.path().join("log").join("PARTITIONS")).expect("PARTITIONS"),
            recorded,
            "expected the refused start ({setting:?}) to leave log/PARTITIONS as it was"
        );
    }

    // No count configured: the data dir's count is kept, every answer as before.
    let node = Node::start_in(dir.path(), &[("HERALD_DOMAINS__PARTITIONS", "")]);
    let hosts = ready_hosts(&node);
    for stream in domain_streams("orders", 3) {
        assert!(
            hosts.contains(&stream),
            "expected /readyz to list {stream}: {hosts:?}"
        );
    }
    assert_same_json(
        "the node on the data dir's 3 partitions against before the refused starts",
        &before,
        &fingerprint(&node, &keys),
    );
    assert_eq!(recorded_partitions(dir.path())["orders"], 3);
    assert_eq!(recorded_partitions(dir.path())["shipping"], 3);
}

#[test]
fn a_new_data_dir_without_a_count_runs_one_partition_per_core() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    let node = Node::start_with(&[("HERALD_DOMAINS__PARTITIONS", "")]);
    let hosts = ready_hosts(&node);
    for domain in ["orders", "shipping"] {
        assert_eq!(
            node.domain_streams(domain),
            domain_streams(domain, cores),
            "expected {domain} in one partition per core ({cores}) in /v1/streams"
        );
        for stream in domain_streams(domain, cores) {
            assert!(
                hosts.contains(&stream),
                "expected /readyz to list {stream}: {hosts:?}"
            );
        }
    }
    let recorded = recorded_partitions(node.data_dir());
    assert_eq!(
        (recorded["orders"], recorded["shipping"]),
        (cores, cores),
        "expected log/PARTITIONS to record {cores} for orders and shipping: {recorded:?}"
    );
    // Domains whose state spans keys stay whole.
    assert_eq!(node.domain_streams("inventory"), ["inventory"]);
    let reply = node.publish(&order_placed("core-order", "cora", &[("sku", 1, 1)]));
    assert_eq!(reply.status, 202, "{}", reply.text);
    assert_eq!(
        reply.json["stream"],
        key_stream("orders", "core-order", cores).as_str()
    );
}

#[test]
fn named_queries_answer_for_the_whole_domain() {
    let node = Node::start();
    let partitions = node.partitions("orders");
    assert_eq!(partitions, TEST_PARTITIONS);
    let customers = ["ann", "bob", "cy"];
    let mut placed: BTreeMap<&str, u64> = BTreeMap::new();
    let mut orders = Vec::new();
    let groups = orders_by_partition("whole", partitions, 4);
    for (n, order) in groups.iter().flatten().enumerate() {
        // Uneven on purpose: ann places most, cy least.
        let customer = customers[[0, 0, 1, 0, 1, 2][n % 6]];
        node.accept(&order_placed(order, customer, &[("no-such-sku", 1, 1)]));
        *placed.entry(customer).or_default() += 1;
        orders.push((order.clone(), customer));
    }
    node.settle();

    let whole = statuses(&node, "");
    assert_eq!(
        whole["orders"],
        orders.len(),
        "expected the whole domain's {} orders from {partitions} partitions: {whole}",
        orders.len()
    );
    let mut by_status: BTreeMap<String, u64> = BTreeMap::new();
    for (order, _) in &orders {
        let entity = node.entity("orders", order).expect("a placed order");
        let status = entity["status"].as_str().expect("status").to_owned();
        *by_status.entry(status).or_default() += 1;
    }
    assert_eq!(whole["by_status"], json!(by_status), "{whole}");
    for customer in customers {
        let answer = statuses(&node, &format!("?customer={customer}"));
        assert_eq!(
            answer["orders"], placed[customer],
            "expected {customer}'s orders over every partition: {answer}"
        );
    }
    assert_eq!(statuses(&node, "?customer=nobody")["orders"], 0);

    // Each partition answers for its own keys; the whole is their sum.
    let mut sum = 0;
    for (partition, stream) in domain_streams("orders", partitions).iter().enumerate() {
        let path = format!("/v1/domains/{stream}/queries/statuses");
        let reply = node.get(&path);
        assert_eq!(reply.status, 200, "{path}: {}", reply.text);
        assert_eq!(
            reply.json["orders"],
            groups[partition].len(),
            "expected {stream} to hold only its keys: {}",
            reply.json
        );
        sum += reply.json["orders"].as_u64().expect("a count");
    }
    assert_eq!(sum, orders.len() as u64);
}

#[test]
fn a_batch_over_partitions_is_all_or_nothing() {
    let node = Node::start();
    let partitions = node.partitions("orders");
    assert_eq!(partitions, TEST_PARTITIONS);
    let groups = orders_by_partition("spread", partitions, 3);
    let taken = &groups[0][0];
    node.accept(&order_placed(taken, "tess", &[("no-such-sku", 1, 1)]));
    node.settle();
    let before = node.streams();

    // A batch of new orders in every partition and one already placed: refused whole,
    // wherever the refused event sits (the others' partitions come before or after it).
    let fresh: Vec<&String> = groups.iter().map(|group| &group[1]).collect();
    for place in 0..=fresh.len() {
        let mut batch: Vec<Value> = fresh
            .iter()
            .map(|order| order_placed(order, "tess", &[("no-such-sku", 1, 1)]))
            .collect();
        batch.insert(place, order_placed(taken, "tess", &[("no-such-sku", 1, 1)]));
        let refused = node.publish_batch(&batch);
        assert_eq!(
            refused.status, 409,
            "expected the batch with {taken} again at {place} refused: {}",
            refused.text
        );
        assert_eq!(refused.json["index"], place, "{}", refused.json);
        for order in &fresh {
            assert_eq!(
                node.entity("orders", order),
                None,
                "expected nothing of the refused batch in orders, {order} exists"
            );
        }
    }
    assert_same_json(
        "the streams after the refused batches",
        &before,
        &node.settle(),
    );

    // A valid batch over every partition: accepted whole, each in its key's partition.
    let batch: Vec<Value> = groups
        .iter()
        .map(|group| order_placed(&group[2], "tess", &[("no-such-sku", 1, 1)]))
        .collect();
    let accepted = node.publish_batch(&batch);
    assert_eq!(accepted.status, 202, "{}", accepted.text);
    let results = accepted.json["results"].as_array().expect("results");
    assert_eq!(results.len(), batch.len(), "{}", accepted.json);
    for (group, result) in groups.iter().zip(results) {
        assert_eq!(result["status"], "accepted", "{result}");
        assert_eq!(
            result["stream"],
            key_stream("orders", &group[2], partitions).as_str(),
            "{result}"
        );
        assert!(node.entity("orders", &group[2]).is_some());
    }
    let streams: std::collections::BTreeSet<&str> = results
        .iter()
        .filter_map(|r| r["stream"].as_str())
        .collect();
    assert_eq!(
        streams.len(),
        partitions as usize,
        "expected the batch to span every partition: {}",
        accepted.json
    );
}
