//! The whole saga, all five domains together, without a node: a queue stands in for the log
//! and delivers each event, in append order, to every domain subscribed to it.

use std::collections::{BTreeMap, VecDeque};

use herald_domains::all;
use herald_runtime::catalog::DomainDescription;
use herald_runtime::envelope::{JSON_CONTENT_TYPE, SPEC_VERSION};
use herald_runtime::hosted::HostedDomain;
use herald_runtime::Envelope;
use serde_json::{json, Value};

const TIME: &str = "2026-01-01T00:00:00Z";

/// Every registered domain, fed from one in-memory log.
struct Saga {
    domains: Vec<(DomainDescription, Box<dyn HostedDomain>)>,
    sequences: BTreeMap<String, u64>,
    undelivered: VecDeque<Envelope>,
}

impl Saga {
    fn new() -> Self {
        let domains = all().iter().map(|e| (e.describe(), e.create())).collect();
        Self {
            domains,
            sequences: BTreeMap::new(),
            undelivered: VecDeque::new(),
        }
    }

    /// Posts an ingress event, as a client would, then lets the saga run until quiet.
    fn post(&mut self, event_type: &str, data: Value) -> Result<(), String> {
        let (description, domain) = self
            .domains
            .iter_mut()
            .find(|(d, _)| d.types.iter().any(|t| t.name == event_type))
            .expect("a registered type");
        let key_field = description
            .types
            .iter()
            .find(|t| t.name == event_type)
            .map(|t| t.key_field)
            .expect("the type's key");
        let subject = data[key_field].as_str().expect("a string key").to_owned();
        let envelope = Envelope {
            id: format!("client-{}", self.undelivered.len() + self.sequences.len()),
            source: "/tests/saga".to_owned(),
            specversion: SPEC_VERSION.to_owned(),
            event_type: event_type.to_owned(),
            partitionkey: subject.clone(),
            subject,
            time: TIME.to_owned(),
            datacontenttype: JSON_CONTENT_TYPE.to_owned(),
            data: serde_json::to_vec(&data).expect("json"),
            traceparent: None,
            extensions: Vec::new(),
            cause: None,
            stream: description.name.to_owned(),
            sequence: 0,
        };
        domain
            .admit(&envelope)
            .map_err(|refusal| refusal.to_string())?;
        self.append(envelope);
        self.settle();
        Ok(())
    }

    fn append(&mut self, mut envelope: Envelope) {
        let sequence = self.sequences.entry(envelope.stream.clone()).or_default();
        *sequence += 1;
        envelope.sequence = *sequence;
        self.undelivered.push_back(envelope);
    }

    /// Delivers every pending event; what handlers emit is applied, appended and delivered too.
    fn settle(&mut self) {
        while let Some(event) = self.undelivered.pop_front() {
            let mut reactions = Vec::new();
            for (description, domain) in &mut self.domains {
                if !description
                    .subscriptions
                    .contains(&event.event_type.as_str())
                {
                    continue;
                }
                for reaction in domain.handle(&event, TIME).expect("handled") {
                    domain.apply(&reaction).expect("own event applies");
                    reactions.push(reaction);
                }
            }
            for reaction in reactions {
                self.append(reaction);
            }
        }
    }

    fn entity(&self, domain: &str, key: &str) -> Option<Value> {
        let (_, hosted) = self.domains.iter().find(|(d, _)| d.name == domain)?;
        hosted.entity(key)
    }

    fn status(&self, order_id: &str) -> Value {
        let order = self.entity("orders", order_id).expect("order exists");
        json!([order["status"], order.get("reason")])
    }

    /// A saga with stock of s-1 and credit for customer c-1.
    fn stocked(stock: u64, credit: u64) -> Self {
        let mut saga = Self::new();
        saga.post(
            "inventory.StockAdded",
            json!({"sku": "s-1", "quantity": stock}),
        )
        .expect("stock added");
        saga.post(
            "payments.CreditGranted",
            json!({"customer": "c-1", "amount": credit}),
        )
        .expect("credit granted");
        saga
    }

    fn place(&mut self, order_id: &str, quantity: u64) -> Result<(), String> {
        let line = json!({"sku": "s-1", "quantity": quantity, "unit_price": 100});
        self.post(
            "orders.OrderPlaced",
            json!({"order_id": order_id, "customer": "c-1", "lines": [line]}),
        )
    }
}

fn stock(available: u64, reserved: u64, shipped: u64) -> Option<Value> {
    Some(json!({"sku": "s-1", "available": available, "reserved": reserved, "shipped": shipped}))
}

fn account(credit: u64, captured: u64) -> Option<Value> {
    Some(json!({"customer": "c-1", "credit": credit, "captured": captured}))
}

#[test]
fn an_order_runs_from_placed_to_delivered() {
    let mut saga = Saga::stocked(10, 1000);
    saga.place("o-1", 3).expect("placed");
    assert_eq!(saga.status("o-1"), json!(["awaiting_shipment", null]));
    assert_eq!(saga.entity("inventory", "s-1"), stock(7, 3, 0));
    assert_eq!(saga.entity("payments", "c-1"), account(700, 300));

    saga.post("shipping.ShipmentDispatched", json!({"order_id": "o-1"}))
        .expect("dispatched");
    assert_eq!(saga.status("o-1"), json!(["shipped", null]));
    assert_eq!(saga.entity("inventory", "s-1"), stock(7, 0, 3));
    let refused = saga.post(
        "orders.OrderCancelled",
        json!({"order_id": "o-1", "reason": "late"}),
    );
    assert_eq!(
        refused,
        Err(r#"order "o-1" has shipped and can no longer be cancelled"#.to_owned())
    );

    saga.post("shipping.ShipmentDelivered", json!({"order_id": "o-1"}))
        .expect("delivered");
    assert_eq!(saga.status("o-1"), json!(["delivered", null]));
    assert_eq!(
        saga.entity("shipping", "o-1"),
        Some(json!({"order_id": "o-1", "status": "delivered"}))
    );
    assert_eq!(
        saga.place("o-1", 1),
        Err(r#"order "o-1" already exists"#.to_owned())
    );
}

#[test]
fn an_order_without_stock_or_credit_is_rejected_and_compensated() {
    let mut saga = Saga::stocked(10, 500);
    saga.place("o-1", 11).expect("placed");
    assert_eq!(
        saga.status("o-1"),
        json!([
            "rejected",
            r#"out of stock: sku "s-1" has 10 available, 11 requested"#
        ])
    );
    saga.place("o-2", 6).expect("placed");
    assert_eq!(
        saga.status("o-2"),
        json!([
            "rejected",
            r#"insufficient credit: customer "c-1" has 500 available, 600 required"#
        ])
    );
    // The reservation made before the decline went back on the shelf.
    assert_eq!(saga.entity("inventory", "s-1"), stock(10, 0, 0));
    assert_eq!(saga.entity("payments", "c-1"), account(500, 0));
    assert_eq!(saga.entity("shipping", "o-2"), None);
}

#[test]
fn a_cancelled_order_is_refunded_released_and_not_shipped() {
    let mut saga = Saga::stocked(10, 1000);
    saga.place("o-1", 4).expect("placed");
    saga.post(
        "orders.OrderCancelled",
        json!({"order_id": "o-1", "reason": "late"}),
    )
    .expect("cancelled");
    assert_eq!(saga.status("o-1"), json!(["cancelled", "late"]));
    assert_eq!(saga.entity("inventory", "s-1"), stock(10, 0, 0));
    assert_eq!(saga.entity("payments", "c-1"), account(1000, 0));
    assert_eq!(
        saga.entity("shipping", "o-1"),
        Some(json!({"order_id": "o-1", "status": "cancelled"}))
    );
    let refused = saga.post("shipping.ShipmentDispatched", json!({"order_id": "o-1"}));
    assert_eq!(
        refused,
        Err(r#"cannot dispatch order "o-1": its shipment is already cancelled"#.to_owned())
    );

    let summary = {
        let (_, analytics) = saga
            .domains
            .iter()
            .find(|(d, _)| d.name == "analytics")
            .expect("analytics");
        analytics
            .query("summary", &Default::default())
            .expect("summary")
    };
    assert_eq!(summary["orders_placed"], 1);
    assert_eq!(summary["orders_cancelled"], 1);
    assert_eq!(summary["revenue"], 0);
    assert_eq!(summary["events_by_type"]["payments.PaymentRefunded"], 1);
    assert_eq!(summary["events_by_type"]["inventory.StockReleased"], 1);
    assert_eq!(summary["events_by_type"]["shipping.ShipmentCancelled"], 1);
}
