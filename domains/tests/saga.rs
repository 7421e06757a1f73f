//! The whole saga, all five domains together, without a node: an in-memory log, and each
//! domain reading its inputs from it in log order, as a node's hosts do. Replaying that log
//! into fresh domains must give back the same state.

use herald_domains::all;
use herald_runtime::catalog::DomainDescription;
use herald_runtime::envelope::{JSON_CONTENT_TYPE, SPEC_VERSION};
use herald_runtime::hosted::HostedDomain;
use herald_runtime::log::{EventLog, MemoryLog};
use herald_runtime::replay::{rebuild, replay_limit, Start};
use herald_runtime::Envelope;
use serde_json::{json, Value};

const TIME: &str = "2026-01-01T00:00:00Z";

/// One registered domain and how far it has read the log.
struct Member {
    description: DomainDescription,
    domain: Box<dyn HostedDomain>,
    cursor: u64,
}

impl Member {
    fn subscribes_to(&self, event_type: &str) -> bool {
        self.description.subscriptions.contains(&event_type)
    }
}

/// Every registered domain, fed from one in-memory log.
struct Saga {
    members: Vec<Member>,
    log: MemoryLog,
    posted: u64,
}

impl Saga {
    fn new() -> Self {
        let members = all()
            .iter()
            .map(|entry| Member {
                description: entry.describe(),
                domain: entry.create(),
                cursor: 0,
            })
            .collect();
        Self {
            members,
            log: MemoryLog::new(),
            posted: 0,
        }
    }

    /// Posts an ingress event, as a client would, then lets the saga run until quiet.
    fn post(&mut self, event_type: &str, data: Value) -> Result<(), String> {
        let owner = self
            .members
            .iter_mut()
            .find(|m| m.description.types.iter().any(|t| t.name == event_type))
            .expect("a registered type");
        let key_field = owner
            .description
            .types
            .iter()
            .find(|t| t.name == event_type)
            .map(|t| t.key_field)
            .expect("the type's key");
        let subject = data[key_field].as_str().expect("a string key").to_owned();
        self.posted += 1;
        let envelope = Envelope {
            id: format!("client-{}", self.posted),
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
            stream: owner.description.name.to_owned(),
            sequence: 0,
        };
        owner
            .domain
            .admit(&envelope)
            .map_err(|refusal| refusal.to_string())?;
        self.log
            .append(owner.description.name, owner.cursor, vec![envelope])
            .expect("appended");
        self.settle();
        Ok(())
    }

    /// Lets every domain handle its inputs, appending what it emits, until none is left.
    fn settle(&mut self) {
        let mut progressed = true;
        while progressed {
            progressed = false;
            for member in &mut self.members {
                let wanted = |event_type: &str| member.subscribes_to(event_type).into();
                let batch = self
                    .log
                    .read_after(member.cursor, 1000, &wanted)
                    .expect("read");
                for record in batch.records {
                    let emitted = member
                        .domain
                        .handle(&record.envelope, TIME)
                        .expect("handled");
                    for event in &emitted {
                        member.domain.apply(event).expect("own event applies");
                    }
                    if !emitted.is_empty() {
                        let stream = member.description.name;
                        self.log
                            .append(stream, record.offset, emitted)
                            .expect("appended");
                    }
                    member.cursor = record.offset;
                    progressed = true;
                }
            }
        }
    }

    /// Fresh domains rebuilt from the log alone.
    fn replayed(&self) -> Vec<Box<dyn HostedDomain>> {
        self.members
            .iter()
            .map(|member| {
                let mut fresh = all()
                    .into_iter()
                    .find(|entry| entry.name == member.description.name)
                    .expect("registered")
                    .create();
                let wanted = |event_type: &str| member.subscribes_to(event_type).into();
                let upto = replay_limit(&self.log, member.description.name).expect("limit");
                let stream = fresh.name();
                let replayed = rebuild(
                    fresh.as_mut(),
                    stream,
                    &self.log,
                    &wanted,
                    Start::default(),
                    upto,
                    TIME,
                )
                .expect("rebuilt");
                assert!(replayed.missing.is_empty(), "{:?}", replayed.missing);
                // Inputs after the replay limit caused no reactions: handling them as the
                // host does after replay emits nothing new.
                let later = self
                    .log
                    .read_after(replayed.cursor, usize::MAX, &wanted)
                    .expect("read");
                for record in later.records {
                    let emitted = fresh.handle(&record.envelope, TIME).expect("handled");
                    assert!(
                        emitted.is_empty(),
                        "input after the limit reacted: {emitted:?}"
                    );
                }
                fresh
            })
            .collect()
    }

    fn entity(&self, domain: &str, key: &str) -> Option<Value> {
        let member = self.members.iter().find(|m| m.description.name == domain)?;
        member.domain.entity(key).expect("entity encodes")
    }

    fn summary(&self) -> Value {
        let analytics = self
            .members
            .iter()
            .find(|m| m.description.name == "analytics");
        let analytics = &analytics.expect("analytics is registered").domain;
        analytics
            .query("summary", &Default::default())
            .expect("summary answers")
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

    let summary = saga.summary();
    assert_eq!(summary["orders_placed"], 1);
    assert_eq!(summary["orders_cancelled"], 1);
    assert_eq!(summary["revenue"], 0);
    assert_eq!(summary["events_by_type"]["payments.PaymentRefunded"], 1);
    assert_eq!(summary["events_by_type"]["inventory.StockReleased"], 1);
    assert_eq!(summary["events_by_type"]["shipping.ShipmentCancelled"], 1);
}

/// Every entity the tests touch, and the analytics summary, as one value.
fn state_of(domains: &[&dyn HostedDomain]) -> Value {
    let mut state = serde_json::Map::new();
    for domain in domains {
        let keys: &[&str] = match domain.name() {
            "inventory" => &["s-1"],
            "payments" => &["c-1"],
            _ => &["o-1", "o-2", "o-3", "o-4"],
        };
        let entities: Vec<Value> = keys
            .iter()
            .map(|key| json!(domain.entity(key).expect("entity encodes")))
            .collect();
        let summary = domain.query("summary", &Default::default()).ok();
        state.insert(domain.name().to_owned(), json!([entities, summary]));
    }
    Value::Object(state)
}

#[test]
fn replaying_the_log_rebuilds_the_same_state() {
    let mut saga = Saga::stocked(10, 900);
    saga.place("o-1", 2).expect("placed");
    saga.place("o-2", 20).expect("placed");
    saga.place("o-3", 3).expect("placed");
    saga.place("o-4", 5).expect("placed");
    saga.post("shipping.ShipmentDispatched", json!({"order_id": "o-1"}))
        .expect("dispatched");
    saga.post(
        "orders.OrderCancelled",
        json!({"order_id": "o-3", "reason": "late"}),
    )
    .expect("cancelled");
    saga.post(
        "payments.CreditGranted",
        json!({"customer": "c-1", "amount": 50}),
    )
    .expect("granted");

    let live: Vec<&dyn HostedDomain> = saga.members.iter().map(|m| m.domain.as_ref()).collect();
    let live = state_of(&live);
    let replayed = saga.replayed();
    let replayed: Vec<&dyn HostedDomain> = replayed.iter().map(|d| d.as_ref()).collect();
    assert_eq!(state_of(&replayed), live);
    // The run did what it says: the comparison above is not between two empty states.
    assert_eq!(
        live["orders"][0][3]["status"], "rejected",
        "o-4 ran out of credit"
    );
    assert_eq!(Some(live["inventory"][0][0].clone()), stock(8, 0, 2));
    assert_eq!(Some(live["payments"][0][0].clone()), account(750, 200));
}
