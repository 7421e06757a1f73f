//! Read-your-writes on a real node: a query that names the positions `POST /v1/events`
//! returned is answered once the domain's state includes them, reactions included, or 504
//! after a bounded wait; a bad position is 400 naming it.

use std::time::{Duration, Instant};

use herald_integration_tests::*;
use serde_json::{json, Value};

#[test]
fn a_query_naming_a_position_waits_for_the_reaction_to_it() {
    let node = Node::start();
    node.accept(&stock_added("sku-r", 100_000));
    node.accept(&credit_granted("frank", 1_000_000));
    // Orders over every partition, then at once a read of inventory that must show every
    // reservation (paid for, so none is released).
    let mut positions = Vec::new();
    for n in 0..40 {
        let reply = node.publish(&order_placed(
            &format!("ryw-{n}"),
            "frank",
            &[("sku-r", 2, 10)],
        ));
        assert_eq!(reply.status, 202, "{}", reply.json);
        positions.push(format!(
            "{}:{}",
            reply.json["stream"].as_str().unwrap(),
            reply.json["sequence"]
        ));
    }
    let reflects = positions.join(",");
    let stock = node.get(&format!(
        "/v1/domains/inventory/entities/sku-r?reflects={reflects}"
    ));
    assert_eq!(stock.status, 200, "{}", stock.json);
    assert_eq!(
        stock.json["reserved"], 80,
        "every order's reservation: {}",
        stock.json
    );

    // The header says the same; and a domain's own position (orders reflects its order).
    let last = positions.last().unwrap();
    let order = node
        .client()
        .get(format!("{}/v1/domains/orders/entities/ryw-39", node.base))
        .header("Herald-Reflects", last.as_str())
        .send()
        .expect("answer");
    assert_eq!(order.status(), 200);
    // A named query over every partition waits in each.
    let statuses = node.get(&format!(
        "/v1/domains/orders/queries/statuses?reflects={reflects}"
    ));
    assert_eq!(statuses.status, 200, "{}", statuses.json);
    assert_eq!(statuses.json["orders"], 40);
    // The header waits too: one more order, and at once inventory through the header.
    let reply = node.publish(&order_placed("ryw-40", "frank", &[("sku-r", 2, 10)]));
    assert_eq!(reply.status, 202, "{}", reply.json);
    let position = format!(
        "{}:{}",
        reply.json["stream"].as_str().unwrap(),
        reply.json["sequence"]
    );
    let stock: Value = node
        .client()
        .get(format!("{}/v1/domains/inventory/entities/sku-r", node.base))
        .header("Herald-Reflects", position.as_str())
        .send()
        .expect("answer")
        .json()
        .expect("json");
    assert_eq!(stock["reserved"], 82, "{stock}");
    let bad = node
        .client()
        .get(format!("{}/v1/domains/inventory/entities/sku-r", node.base))
        .header("Herald-Reflects", "nonsense")
        .send()
        .expect("answer");
    assert_eq!(bad.status(), 400, "a header naming no position");
}

#[test]
fn bad_positions_are_refused_naming_them_and_an_unreached_one_times_out() {
    let node = Node::start();
    let order_stream = node.key_stream("orders", "o-x");
    for (reflects, fragment) in [
        ("nonsense".to_owned(), "\"nonsense\" is not STREAM:SEQUENCE"),
        (format!("{order_stream}:0"), "is not a whole number from 1"),
        (format!("{order_stream}:x"), "is not a whole number from 1"),
        ("nowhere:3".to_owned(), "no stream \"nowhere\""),
        // payments reads orders and inventory, never shipping.
        (
            format!("{}:1", node.key_stream("shipping", "o-x")),
            "domain \"payments\" neither writes nor reads stream",
        ),
    ] {
        let reply = node.get(&format!(
            "/v1/domains/payments/entities/alice?reflects={reflects}"
        ));
        assert_eq!(reply.status, 400, "{reflects}: {}", reply.json);
        assert_eq!(
            reply.json["type"],
            "https://herald.dev/problems/bad-position"
        );
        assert!(
            reply.json["detail"]
                .as_str()
                .unwrap_or_default()
                .contains(fragment),
            "{reflects}: {}",
            reply.json
        );
    }
    // A position nobody wrote yet: 504 after the bounded wait, naming it.
    let started = Instant::now();
    let reply = node.get(&format!(
        "/v1/domains/inventory/entities/sku?reflects={order_stream}:999"
    ));
    assert_eq!(reply.status, 504, "{}", reply.json);
    assert_eq!(
        reply.json["type"],
        "https://herald.dev/problems/position-not-reflected"
    );
    assert_eq!(reply.json["position"], json!(format!("{order_stream}:999")));
    assert!(
        started.elapsed() >= Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    // Written while the query waits: answered as soon as it is reflected.
    let waiting = {
        let base = node.base.clone();
        let client = node.client().clone();
        let stream = order_stream.clone();
        std::thread::spawn(move || {
            client
                .get(format!(
                    "{base}/v1/domains/inventory/entities/sku-w?reflects={stream}:1"
                ))
                .send()
                .map(|r| {
                    (
                        r.status().as_u16(),
                        r.json::<Value>().unwrap_or(Value::Null),
                    )
                })
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    node.accept(&stock_added("sku-w", 5));
    node.accept(&credit_granted("gina", 1_000));
    node.accept(&order_placed("o-x", "gina", &[("sku-w", 1, 10)]));
    let (status, stock) = waiting.join().unwrap().expect("answer");
    assert_eq!(status, 200, "{stock}");
    assert_eq!(stock["reserved"], 1, "{stock}");
}
