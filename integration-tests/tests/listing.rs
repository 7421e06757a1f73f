//! Listing a domain's entities on a real node: pages in key order merged over partitions,
//! `next` and `Link: rel="next"` to follow, and clear refusals of bad parameters.

use herald_integration_tests::*;
use serde_json::{json, Value};

/// Follows `Link: rel="next"` from `first` to the last page; every key, in order.
pub fn every_key(node: &Node, first: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut next = Some(first.to_owned());
    let mut pages = 0;
    while let Some(path) = next.take() {
        pages += 1;
        assert!(pages < 100, "more pages than there can be");
        let reply = node
            .client()
            .get(format!("{}{path}", node.base))
            .send()
            .expect("answer");
        assert_eq!(reply.status(), 200);
        next = reply
            .headers()
            .get("link")
            .and_then(|v| v.to_str().ok())
            .and_then(|link| link.split_once('<'))
            .and_then(|(_, rest)| rest.split_once('>'))
            .map(|(target, _)| target.to_owned());
        let page: Value = reply.json().expect("JSON");
        assert_eq!(page["next"].is_null(), next.is_none(), "{page}");
        for item in page["entities"].as_array().expect("entities") {
            keys.push(item["key"].as_str().expect("key").to_owned());
        }
    }
    keys
}

#[test]
fn entities_page_in_key_order_over_partitions_and_bad_parameters_are_refused() {
    let node = Node::start();
    node.accept(&stock_added("sku-l", 1_000));
    node.accept(&credit_granted("hana", 1_000_000));
    let mut ids: Vec<String> = (0..25).map(|n| format!("l-{n:02}")).collect();
    // Keys that need encoding in a URL: a space, a slash, non-ASCII.
    ids.push("l-x y/ü".to_owned());
    for id in &ids {
        node.accept(&order_placed(id, "hana", &[("sku-l", 1, 10)]));
    }
    ids.sort();
    // Orders are spread over partitions; the pages merge them in key order.
    assert!(node.partitions("orders") > 1);
    let first = node.get("/v1/domains/orders/entities?limit=10");
    assert_eq!(first.status, 200, "{}", first.json);
    let keys: Vec<&str> = first.json["entities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["key"].as_str().unwrap())
        .collect();
    assert_eq!(
        keys,
        ids[..10].iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert_eq!(first.json["next"], ids[9].as_str());
    // Each entity is what the entity route answers.
    let one = &first.json["entities"][3];
    assert_eq!(
        one["entity"],
        node.entity("orders", one["key"].as_str().unwrap()).unwrap()
    );
    assert_eq!(
        every_key(&node, "/v1/domains/orders/entities?limit=7"),
        ids,
        "every order once, in order"
    );
    assert_eq!(every_key(&node, "/v1/domains/orders/entities"), ids);
    // Past the last key: an empty page.
    let past = node.get("/v1/domains/orders/entities?after=zzz");
    assert_eq!(past.json, json!({"entities": [], "next": null}));
    // A domain with no entities to list (analytics) answers an empty page.
    let analytics = node.get("/v1/domains/analytics/entities");
    assert_eq!(analytics.status, 200);
    assert_eq!(analytics.json["entities"], json!([]));

    for (query, status, fragment) in [
        (
            "limit=0",
            400,
            "limit \"0\" is not a whole number from 1 to 1000",
        ),
        ("limit=1001", 400, "limit \"1001\""),
        ("limit=ten", 400, "limit \"ten\""),
        ("reflects=orders", 400, "is not STREAM:SEQUENCE"),
    ] {
        let reply = node.get(&format!("/v1/domains/orders/entities?{query}"));
        assert_eq!(reply.status, status, "{query}: {}", reply.json);
        assert!(
            reply.json["detail"]
                .as_str()
                .unwrap_or_default()
                .contains(fragment),
            "{query}: {}",
            reply.json
        );
    }
    let unknown = node.get("/v1/domains/ordres/entities");
    assert_eq!(unknown.status, 404, "{}", unknown.json);
    assert!(unknown.json["detail"]
        .as_str()
        .unwrap_or_default()
        .contains("unknown domain \"ordres\""));
    let post = node.post("/v1/domains/orders/entities", "application/json", "{}");
    assert_eq!(post.status, 405);
}
