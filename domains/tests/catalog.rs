//! The wiring of the registered domains, and what their JSON Schemas let through.

use herald_domains::{all, names, saga};
use herald_runtime::catalog::{Catalog, TypeLookupError};
use serde_json::{json, Value};

fn catalog() -> Catalog {
    let enabled: Vec<String> = names().into_iter().map(str::to_owned).collect();
    Catalog::new(&all(), &enabled).expect("the registered domains wire up")
}

/// The saga's domains, from the registry: a domain added there is covered here.
fn saga_names() -> Vec<&'static str> {
    saga().iter().map(|entry| entry.name).collect()
}

/// Whether `type_name` belongs to one of the saga's domains.
fn of_the_saga(type_name: &str) -> bool {
    let domain = type_name.split('.').next().unwrap_or_default();
    saga_names().contains(&domain)
}

#[test]
fn registers_the_saga_alphabetically_and_each_domain_once() {
    let saga = saga_names();
    let mut sorted = saga.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(
        saga, sorted,
        "saga() lists domains alphabetically, once each"
    );
    assert!(names().starts_with(&saga), "all() starts with the saga");
}

#[test]
fn offers_exactly_the_contracts_ingress_types() {
    let ingress: Vec<String> = catalog()
        .ingress_types()
        .into_iter()
        .filter(|name| of_the_saga(name))
        .collect();
    let ingress: Vec<&str> = ingress.iter().map(String::as_str).collect();
    assert_eq!(
        ingress,
        [
            "inventory.StockAdded",
            "orders.OrderCancelled",
            "orders.OrderPlaced",
            "payments.CreditGranted",
            "shipping.ShipmentDelivered",
            "shipping.ShipmentDispatched",
        ]
    );
    let emitted_only = catalog().ingress_type("inventory.StockReserved").err();
    assert!(
        matches!(emitted_only, Some(TypeLookupError::NotIngress { .. })),
        "{emitted_only:?}"
    );
}

#[test]
fn saga_events_are_keyed_by_order_and_analytics_hears_them_all() {
    let descriptions: Vec<_> = saga().iter().map(|entry| entry.describe()).collect();
    let analytics = descriptions
        .iter()
        .find(|d| d.name == "analytics")
        .expect("analytics is registered");
    assert!(analytics.types.is_empty(), "analytics owns no events");
    for description in descriptions.iter().filter(|d| d.name != "analytics") {
        for event_type in &description.types {
            let expected_key = match event_type.name {
                "inventory.StockAdded" => "sku",
                "payments.CreditGranted" => "customer",
                _ => "order_id",
            };
            assert_eq!(event_type.key_field, expected_key, "{}", event_type.name);
            assert!(
                analytics.subscriptions.contains(&event_type.name),
                "analytics misses {}",
                event_type.name
            );
        }
    }
}

/// Checks `data` against the schema of ingress type `type_name`: `Ok(())` or the JSON pointer
/// of the first violation.
fn check(type_name: &str, data: Value, expected: Result<(), &str>) {
    let catalog = catalog();
    let entry = catalog.ingress_type(type_name).expect("an ingress type");
    let result = entry.check_data(&data);
    assert_eq!(
        result
            .as_ref()
            .map(|_| ())
            .map_err(|violation| violation.pointer.as_str()),
        expected,
        "{type_name} {data}: {result:?}"
    );
}

#[test]
fn schemas_insist_on_positive_quantities_and_amounts() {
    let stock = "inventory.StockAdded";
    check(stock, json!({"sku": "s-1", "quantity": 1}), Ok(()));
    check(
        stock,
        json!({"sku": "s-1", "quantity": 0}),
        Err("/quantity"),
    );
    check(
        stock,
        json!({"sku": "s-1", "quantity": -3}),
        Err("/quantity"),
    );
    check(stock, json!({"sku": "", "quantity": 1}), Err("/sku"));
    check(stock, json!({"sku": "s-1"}), Err(""));

    let credit = "payments.CreditGranted";
    check(credit, json!({"customer": "c-1", "amount": 1}), Ok(()));
    check(
        credit,
        json!({"customer": "c-1", "amount": 0}),
        Err("/amount"),
    );
    check(
        credit,
        json!({"customer": "", "amount": 1}),
        Err("/customer"),
    );
}

#[test]
fn order_placed_schema_needs_lines_and_knows_its_fields() {
    let placed = "orders.OrderPlaced";
    let line = json!({"sku": "s-1", "quantity": 2, "unit_price": 0});
    check(
        placed,
        json!({"order_id": "o-1", "customer": "c-1", "lines": [line]}),
        Ok(()),
    );
    check(
        placed,
        json!({"order_id": "o-1", "customer": "c-1", "lines": []}),
        Err("/lines"),
    );
    check(
        placed,
        json!({"order_id": "o-1", "customer": "c-1", "lines": [line], "coupon": "X"}),
        Err(""),
    );
    check(
        placed,
        json!({"order_id": "o-1", "customer": "c-1",
               "lines": [{"sku": "s-1", "quantity": 0, "unit_price": 5}]}),
        Err("/lines/0/quantity"),
    );
    check(
        placed,
        json!({"order_id": "o-1", "customer": "c-1",
               "lines": [{"sku": "s-1", "quantity": 1, "unit_price": 5, "colour": "red"}]}),
        Err("/lines/0"),
    );
    check(
        placed,
        json!({"order_id": "", "customer": "c-1", "lines": [line]}),
        Err("/order_id"),
    );
}

#[test]
fn the_other_ingress_schemas_know_their_fields() {
    check(
        "orders.OrderCancelled",
        json!({"order_id": "o-1", "reason": "late"}),
        Ok(()),
    );
    check("orders.OrderCancelled", json!({"order_id": "o-1"}), Err(""));
    for shipping in ["shipping.ShipmentDispatched", "shipping.ShipmentDelivered"] {
        check(shipping, json!({"order_id": "o-1"}), Ok(()));
        check(shipping, json!({"order_id": ""}), Err("/order_id"));
        check(
            shipping,
            json!({"order_id": "o-1", "carrier": "x"}),
            Err(""),
        );
    }
}

#[test]
fn orders_and_shipping_are_partitioned_by_key_and_the_others_are_whole() {
    let topology = catalog().to_json();
    let partitioned: Vec<(String, bool)> = topology["domains"]
        .as_array()
        .expect("domains")
        .iter()
        .map(|d| {
            (
                d["name"].as_str().unwrap_or("").to_owned(),
                d["partitioned"].as_bool().expect("partitioned"),
            )
        })
        .filter(|(name, _)| saga_names().contains(&name.as_str()))
        .collect();
    assert_eq!(
        partitioned,
        [
            ("analytics".to_owned(), false),
            ("inventory".to_owned(), false),
            ("orders".to_owned(), true),
            ("payments".to_owned(), false),
            ("shipping".to_owned(), true),
        ]
    );
    let orders = topology["domains"]
        .as_array()
        .and_then(|d| d.iter().find(|d| d["name"] == "orders"))
        .expect("orders");
    assert_eq!(
        orders["input_keys"]["inventory.StockReserved"],
        json!("partitionkey")
    );
}

/// A domain keyed by a type it does not consume.
#[derive(Default, serde::Serialize, serde::Deserialize)]
struct Misdeclared;

/// A thing happened.
#[herald_runtime::payload]
pub struct Noted {
    /// Its id.
    pub id: String,
}

herald_runtime::events! {
    /// Nothing of note.
    pub enum MisdeclaredEvent in "misdeclared" {
        Noted keyed by id,
    }
}

herald_runtime::inputs! {
    /// Orders placed.
    pub enum MisdeclaredInput {
        Placed(herald_domains::events::orders::OrderPlaced),
    }
}

impl herald_runtime::Domain for Misdeclared {
    type Event = MisdeclaredEvent;
    type Input = MisdeclaredInput;
    type Entity = ();

    fn partitioning() -> herald_runtime::Partitioning {
        herald_runtime::Partitioning::ByKey {
            inputs: &[(
                "payments.PaymentCaptured",
                herald_runtime::InputKey::Broadcast,
            )],
        }
    }

    fn handle(
        &mut self,
        _: MisdeclaredInput,
        _: &mut herald_runtime::Outbox<MisdeclaredEvent>,
    ) -> Result<(), herald_runtime::HandleError> {
        Ok(())
    }

    fn apply(&mut self, _: &MisdeclaredEvent) {}

    fn entity(&self, _: &str) -> Option<()> {
        None
    }
}

#[test]
fn a_key_for_an_input_the_domain_does_not_consume_is_a_wiring_error() {
    let mut entries = all();
    entries.push(herald_runtime::DomainEntry::of::<Misdeclared>());
    let error = Catalog::new(&entries, &[]).err().expect("refused");
    let text = error.to_string();
    assert!(
        text.contains("\"misdeclared\"")
            && text.contains("\"payments.PaymentCaptured\"")
            && text.contains("orders.OrderPlaced"),
        "{text}"
    );
}
