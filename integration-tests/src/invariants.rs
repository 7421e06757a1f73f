//! Invariants of the example saga checked against a node's whole log: the log's shape
//! (dense sequences, each id once, each reaction once per cause, causes present) and every
//! answer the domains give against what the log implies (stock, credit, analytics, each
//! order's status and shipment, each saga step exactly once). The crash test runs them after
//! its kills; failures are collected by kind and reported together.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::{json, Value};

use crate::Node;

/// Every check below on the node's whole log.
pub fn check_all(node: &Node, log: &Log, failures: &mut Failures) {
    check_log_shape(log, failures);
    check_inventory(node, log, failures);
    check_payments(node, log, failures);
    check_analytics(node, log, failures);
    check_orders(node, log, failures);
}

/// Waits until every check holds over every stream (read and queried through `node`):
/// reactions keep coming after the last client event, so a check that fails may only be
/// early. Fails with what does not hold after `timeout`.
pub fn settled(node: &Node, timeout: std::time::Duration) -> Log {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let log = Log::read(node);
        let mut failures = Failures::default();
        check_all(node, &log, &mut failures);
        if failures.is_empty() {
            return log;
        }
        if std::time::Instant::now() > deadline {
            failures.assert_none(&format!("not settled within {timeout:?}"));
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}

/// Failures by kind, reported together (the first few of each).
#[derive(Default)]
pub struct Failures(BTreeMap<&'static str, Vec<String>>);

impl Failures {
    /// Records a failure of `kind`.
    pub fn add(&mut self, kind: &'static str, what: String) {
        self.0.entry(kind).or_default().push(what);
    }

    /// Whether nothing failed.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Panics listing every failure (the first five of each kind) under `context`.
    pub fn assert_none(&self, context: &str) {
        if self.0.is_empty() {
            return;
        }
        let mut report = format!("{context}: invariants failed:\n");
        for (kind, list) in &self.0 {
            report.push_str(&format!("- {kind}: {} case(s)\n", list.len()));
            for what in list.iter().take(5) {
                report.push_str(&format!("    {what}\n"));
            }
        }
        panic!("{report}");
    }
}

/// Every stream read whole, with indexes.
pub struct Log {
    /// Stream name → its events, in sequence order.
    pub streams: BTreeMap<String, Vec<Value>>,
    /// `(source, id)` → every `(stream, sequence)` holding it.
    pub by_id: HashMap<(String, String), Vec<(String, u64)>>,
    /// `(type, subject)` → how many events of that type about that entity.
    by_subject: HashMap<(String, String), usize>,
}

impl Log {
    /// Reads every stream the node lists.
    pub fn read(node: &Node) -> Log {
        let streams = node.read_all_streams();
        let mut by_id: HashMap<(String, String), Vec<(String, u64)>> = HashMap::new();
        let mut by_subject: HashMap<(String, String), usize> = HashMap::new();
        for (stream, events) in &streams {
            for event in events {
                by_id
                    .entry(key(event))
                    .or_default()
                    .push((stream.clone(), event["sequence"].as_u64().unwrap_or(0)));
                *by_subject
                    .entry((text(&event["type"]), text(&event["subject"])))
                    .or_default() += 1;
            }
        }
        Log {
            streams,
            by_id,
            by_subject,
        }
    }

    /// Every event of every stream.
    pub fn events(&self) -> impl Iterator<Item = &Value> {
        self.streams.values().flatten()
    }

    /// Every event of one type.
    pub fn of_type<'a>(&'a self, event_type: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.events().filter(move |e| e["type"] == event_type)
    }

    /// Events of `event_type` about `order` (every saga event is keyed by the order).
    pub fn count(&self, event_type: &str, order: &str) -> usize {
        self.by_subject
            .get(&(event_type.to_owned(), order.to_owned()))
            .copied()
            .unwrap_or(0)
    }
}

/// `(source, id)`: what identifies an event.
pub fn key(event: &Value) -> (String, String) {
    (
        event["source"].as_str().unwrap_or_default().to_owned(),
        event["id"].as_str().unwrap_or_default().to_owned(),
    )
}

/// A JSON value as text (strings without quotes).
pub fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Dense sequences, no id twice, no reaction twice for one cause, every cause present.
pub fn check_log_shape(log: &Log, failures: &mut Failures) {
    for (stream, events) in &log.streams {
        for (index, event) in events.iter().enumerate() {
            if event["sequence"].as_u64() != Some(index as u64 + 1) {
                failures.add(
                    "sequences dense from 1",
                    format!(
                        "{stream}: expected sequence {} at index {index}, saw {}",
                        index + 1,
                        event["sequence"]
                    ),
                );
                break;
            }
        }
    }
    for ((source, id), places) in &log.by_id {
        if places.len() > 1 {
            failures.add(
                "an id appears once",
                format!("({source}, {id}) appears at {places:?}"),
            );
        }
    }
    let mut reactions: HashMap<(String, String, String, String), u64> = HashMap::new();
    for (stream, events) in &log.streams {
        for event in events {
            let Some(cause_id) = event.get("causeid") else {
                continue;
            };
            let cause = (
                stream.clone(),
                text(&event["type"]),
                text(&event["causesource"]),
                text(cause_id),
            );
            if let Some(first) =
                reactions.insert(cause.clone(), event["sequence"].as_u64().unwrap_or(0))
            {
                failures.add(
                    "a reaction once per cause",
                    format!(
                        "{stream}: {} caused by ({}, {}) at sequences {first} and {}",
                        cause.1, cause.2, cause.3, event["sequence"]
                    ),
                );
            }
            let cause_stream = text(&event["causestream"]);
            let cause_sequence: u64 = text(&event["causesequence"]).parse().unwrap_or(0);
            let found = log
                .streams
                .get(&cause_stream)
                .and_then(|events| events.get((cause_sequence as usize).wrapping_sub(1)));
            let matches =
                found.is_some_and(|c| text(&c["id"]) == cause.3 && text(&c["source"]) == cause.2);
            if !matches {
                failures.add(
                    "the cause of a reaction exists",
                    format!(
                        "{stream}/{}: cause {cause_stream}/{cause_sequence} ({}, {}) not found, \
                         saw {found:?}",
                        event["sequence"], cause.2, cause.3
                    ),
                );
            }
        }
    }
}

/// `(sku, quantity)` of an event's `data.lines`.
pub fn lines(event: &Value) -> Vec<(String, u64)> {
    event["data"]["lines"]
        .as_array()
        .map(|lines| {
            lines
                .iter()
                .map(|l| (text(&l["sku"]), l["quantity"].as_u64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default()
}

/// Every sku as the inventory stream implies, and stock added = available + reserved + shipped.
pub fn check_inventory(node: &Node, log: &Log, failures: &mut Failures) {
    #[derive(Default, Debug)]
    struct Stock {
        added: u64,
        available: i64,
        reserved: i64,
        shipped: i64,
    }
    let mut skus: BTreeMap<String, Stock> = BTreeMap::new();
    for event in &log.streams["inventory"] {
        match event["type"].as_str().unwrap_or_default() {
            "inventory.StockAdded" => {
                let stock = skus.entry(text(&event["data"]["sku"])).or_default();
                let quantity = event["data"]["quantity"].as_u64().unwrap_or(0);
                stock.added += quantity;
                stock.available += quantity as i64;
            }
            kind @ ("inventory.StockReserved"
            | "inventory.StockReleased"
            | "inventory.StockShipped") => {
                for (sku, quantity) in lines(event) {
                    let stock = skus.entry(sku).or_default();
                    let quantity = quantity as i64;
                    match kind {
                        "inventory.StockReserved" => {
                            stock.available -= quantity;
                            stock.reserved += quantity;
                        }
                        "inventory.StockReleased" => {
                            stock.reserved -= quantity;
                            stock.available += quantity;
                        }
                        _ => {
                            stock.reserved -= quantity;
                            stock.shipped += quantity;
                        }
                    }
                }
            }
            _ => {}
        }
    }
    for (sku, stock) in &skus {
        let expected = json!({
            "sku": sku,
            "available": stock.available,
            "reserved": stock.reserved,
            "shipped": stock.shipped,
        });
        let seen = match node.try_entity("inventory", sku) {
            Ok(found) => found.unwrap_or(Value::Null),
            Err(error) => {
                failures.add("every query answered", error);
                continue;
            }
        };
        if seen != expected {
            failures.add(
                "inventory entities as the log implies",
                format!("expected {expected}, saw {seen}"),
            );
        }
        let total = ["available", "reserved", "shipped"]
            .iter()
            .map(|field| seen[field].as_u64().unwrap_or(0))
            .sum::<u64>();
        if total != stock.added {
            failures.add(
                "stock added = available + reserved + shipped",
                format!("{sku}: {} added, entity {seen}", stock.added),
            );
        }
    }
}

/// Every customer as the payments stream implies, and credit granted = credit + captured.
pub fn check_payments(node: &Node, log: &Log, failures: &mut Failures) {
    let mut customers: BTreeMap<String, (u64, u64, u64)> = BTreeMap::new();
    for event in &log.streams["payments"] {
        let data = &event["data"];
        let amount = data["amount"].as_u64().unwrap_or(0);
        let account = customers.entry(text(&data["customer"])).or_default();
        match event["type"].as_str().unwrap_or_default() {
            "payments.CreditGranted" => account.0 += amount,
            "payments.PaymentCaptured" => account.1 += amount,
            "payments.PaymentRefunded" => account.2 += amount,
            _ => {}
        }
    }
    for (customer, (granted, captured, refunded)) in &customers {
        let net = captured - refunded;
        let expected = json!({"customer": customer, "credit": granted - net, "captured": net});
        let seen = match node.try_entity("payments", customer) {
            Ok(found) => found.unwrap_or(Value::Null),
            Err(error) => {
                failures.add("every query answered", error);
                continue;
            }
        };
        if seen != expected {
            failures.add(
                "credit granted = credit + captured net of refunds",
                format!("{customer}: granted {granted}, captured {captured}, refunded {refunded}: expected {expected}, saw {seen}"),
            );
        }
    }
}

/// Analytics counts equal the streams.
pub fn check_analytics(node: &Node, log: &Log, failures: &mut Failures) {
    let summary = match node.try_summary() {
        Ok(summary) => summary,
        Err(error) => return failures.add("every query answered", error),
    };
    let mut by_type: BTreeMap<String, u64> = BTreeMap::new();
    // Herald's own records (timers, dead letters) are no domain's events.
    for event in log
        .events()
        .filter(|e| !text(&e["type"]).starts_with("herald."))
    {
        *by_type.entry(text(&event["type"])).or_default() += 1;
    }
    let counted = summary["events_by_type"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let types: BTreeSet<&String> = by_type.keys().chain(counted.keys()).collect();
    for event_type in types {
        let expected = by_type.get(event_type).copied().unwrap_or(0);
        let seen = counted.get(event_type).and_then(Value::as_u64).unwrap_or(0);
        if seen != expected {
            failures.add(
                "analytics counts each event once",
                format!("{event_type}: {expected} in the log, analytics counts {seen}"),
            );
        }
    }
    let count = |t: &str| by_type.get(t).copied().unwrap_or(0);
    let sum = |t: &str| -> u64 {
        log.of_type(t)
            .map(|e| e["data"]["amount"].as_u64().unwrap_or(0))
            .sum()
    };
    let expected = json!({
        "orders_placed": count("orders.OrderPlaced"),
        "orders_cancelled": count("orders.OrderCancelled"),
        "orders_rejected": count("inventory.StockRejected") + count("payments.PaymentDeclined"),
        "orders_delivered": count("shipping.ShipmentDelivered"),
        "revenue": sum("payments.PaymentCaptured") - sum("payments.PaymentRefunded"),
    });
    for (field, value) in expected.as_object().expect("an object") {
        if &summary[field] != value {
            failures.add(
                "analytics figures as the log implies",
                format!("{field}: expected {value}, saw {}", summary[field]),
            );
        }
    }
}

/// Every order's saga complete and its status and shipment as its events imply.
pub fn check_orders(node: &Node, log: &Log, failures: &mut Failures) {
    for placed in log.of_type("orders.OrderPlaced") {
        let order = text(&placed["subject"]);
        let n = |t: &str| log.count(t, &order);
        let cancelled = n("orders.OrderCancelled");
        let reserved = n("inventory.StockReserved");
        let rejected = n("inventory.StockRejected");
        let captured = n("payments.PaymentCaptured");
        let declined = n("payments.PaymentDeclined");
        let refunded = n("payments.PaymentRefunded");
        let released = n("inventory.StockReleased");
        let shipped = n("inventory.StockShipped");
        let scheduled = n("shipping.ShipmentScheduled");
        let dispatched = n("shipping.ShipmentDispatched");
        let delivered = n("shipping.ShipmentDelivered");
        let shipment_cancelled = n("shipping.ShipmentCancelled");
        let counts = format!(
            "cancelled {cancelled}, reserved {reserved}, rejected {rejected}, captured \
             {captured}, declined {declined}, refunded {refunded}, released {released}, shipped \
             {shipped}, scheduled {scheduled}, dispatched {dispatched}, delivered {delivered}, \
             shipment cancelled {shipment_cancelled}"
        );
        let mut rule = |holds: bool, what: &str| {
            if !holds {
                failures.add(
                    "every saga step taken exactly once",
                    format!("order {order}: expected {what}; events: {counts}"),
                );
            }
        };
        rule(cancelled <= 1, "at most one OrderCancelled");
        // Inventory sees OrderPlaced before any OrderCancelled (same stream): it decides.
        rule(
            reserved + rejected == 1,
            "exactly one StockReserved or StockRejected",
        );
        rule(
            captured + declined <= reserved,
            "a payment decision only after a reservation",
        );
        rule(
            cancelled == 1 || reserved == captured + declined,
            "a payment decision for a reservation of an order not cancelled",
        );
        rule(
            refunded == usize::from(captured == 1 && cancelled == 1),
            "a refund exactly when a captured order was cancelled",
        );
        // Reserved stock leaves the reservation exactly once: released on a decline or a
        // cancellation, shipped on a dispatch (whichever inventory saw first).
        rule(
            released + shipped
                == usize::from(reserved == 1 && declined + cancelled + dispatched > 0),
            "reserved stock released or shipped once after a decline, cancellation or dispatch",
        );
        rule(
            !(dispatched == 1 && cancelled == 0) || shipped == 1,
            "stock shipped for a dispatched order not cancelled",
        );
        rule(
            scheduled <= captured,
            "a shipment only for a captured payment",
        );
        rule(
            cancelled == 1 || scheduled == captured,
            "a shipment for every captured payment of an order not cancelled",
        );
        rule(
            dispatched <= scheduled && delivered <= dispatched,
            "dispatch and delivery in turn",
        );
        rule(
            !(scheduled == 1 && cancelled == 1) || shipment_cancelled + dispatched == 1,
            "a scheduled shipment of a cancelled order cancelled unless dispatched",
        );

        let status = if cancelled == 1 {
            "cancelled"
        } else if rejected == 1 || declined == 1 {
            "rejected"
        } else if delivered == 1 {
            "delivered"
        } else if dispatched == 1 {
            "shipped"
        } else {
            "awaiting_shipment"
        };
        let entity = match node.try_entity("orders", &order) {
            Ok(found) => found.unwrap_or(Value::Null),
            Err(error) => {
                failures.add("every query answered", error);
                continue;
            }
        };
        if entity["status"] != status {
            failures.add(
                "every order in the final status its events imply",
                format!("order {order}: expected {status}, saw {entity}; events: {counts}"),
            );
        }
        let shipment = if scheduled == 0 {
            Value::Null
        } else if shipment_cancelled == 1 {
            json!("cancelled")
        } else if delivered == 1 {
            json!("delivered")
        } else if dispatched == 1 {
            json!("dispatched")
        } else {
            json!("scheduled")
        };
        let seen = node
            .entity("shipping", &order)
            .map(|e| e["status"].clone())
            .unwrap_or(Value::Null);
        if seen != shipment {
            failures.add(
                "every shipment in the status its events imply",
                format!("order {order}: expected {shipment}, saw {seen}; events: {counts}"),
            );
        }
    }
}
