//! Snapshots written by a build from before the example domains counted their figures
//! exactly: each one either decodes to the same state or fails to decode (so the host
//! rebuilds the state from the log), never decodes into a misread state.

use std::collections::BTreeMap;

use herald_domains::analytics::Analytics;
use herald_domains::orders::Orders;
use herald_domains::payments::Payments;
use herald_runtime::codec::{self, FormatTag};
use herald_runtime::Domain;
use serde::Serialize;
use serde_json::{json, Value};

/// Encodes `older` as a saved state, decodes it as `D`; checks it fails when `expected` is
/// `None`, else that `read(state)` gives `expected`.
fn check<D: Domain>(older: &impl Serialize, read: fn(&D) -> Value, expected: Option<Value>) {
    let bytes = codec::encode(FormatTag::StateV1, older).expect("encodes");
    let decoded = codec::decode::<D>(FormatTag::StateV1, &bytes);
    assert_eq!(
        decoded.as_ref().ok().map(read),
        expected,
        "{}: {:?}",
        D::NAME,
        decoded.err()
    );
}

/// Analytics as it was: revenue summed in u64.
#[derive(Serialize)]
struct AnalyticsBefore {
    events_by_type: BTreeMap<String, u64>,
    orders_placed: u64,
    orders_delivered: u64,
    orders_rejected: u64,
    orders_cancelled: u64,
    captured: u64,
    refunded: u64,
}

fn summary(analytics: &Analytics) -> Value {
    analytics
        .query("summary", &Default::default())
        .expect("summary answers")
}

#[test]
fn analytics_reads_its_older_figures_exactly() {
    for (captured, refunded, revenue) in [
        (0, 0, json!(0)),
        (1500, 500, json!(1000)),
        (250, 0, json!(250)),
        (u64::MAX, 1, json!(u64::MAX - 1)),
        (u64::MAX, 0, json!(u64::MAX)),
    ] {
        let older = AnalyticsBefore {
            events_by_type: BTreeMap::from([("orders.OrderPlaced".to_owned(), 3)]),
            orders_placed: 3,
            orders_delivered: 1,
            orders_rejected: 1,
            orders_cancelled: 0,
            captured,
            refunded,
        };
        check::<Analytics>(
            &older,
            summary,
            Some(json!({
                "events_by_type": {"orders.OrderPlaced": 3},
                "orders_placed": 3,
                "orders_delivered": 1,
                "orders_rejected": 1,
                "orders_cancelled": 0,
                "revenue": revenue,
            })),
        );
    }
}

/// Orders as it was: no set of unpriced orders.
#[derive(Serialize)]
struct OrdersBefore {
    orders: BTreeMap<String, (String, u64, u32)>,
}

/// Payments as it was: no map of unpriced orders.
#[derive(Serialize)]
struct PaymentsBefore {
    accounts: BTreeMap<String, (u64, u64)>,
    orders: BTreeMap<String, OrderPaymentBefore>,
}

/// Payments' model of an order, unchanged: bill (customer, total), reserved, cancelled, and
/// the outcome's variant (0, undecided).
#[derive(Serialize)]
struct OrderPaymentBefore(Option<(String, u64)>, bool, bool, u32);

#[test]
fn orders_and_payments_rebuild_rather_than_misread_older_state() {
    // Totals 0 and 1 are the ones a changed field layout could misread silently.
    for total in [0, 1, 1000, u64::MAX] {
        // (customer, total, status "placed"), as bincode lays the struct out.
        let orders = BTreeMap::from([("o-1".to_owned(), ("c-1".to_owned(), total, 0))]);
        check::<Orders>(
            &OrdersBefore { orders },
            |orders| json!(orders.entity("o-1")),
            None,
        );
        let accounts = BTreeMap::from([("c-1".to_owned(), (5, total))]);
        let bill = Some(("c-1".to_owned(), total));
        let orders = BTreeMap::from([("o-1".to_owned(), OrderPaymentBefore(bill, true, false, 0))]);
        check::<Payments>(
            &PaymentsBefore { accounts, orders },
            |p| json!(p.entity("c-1")),
            None,
        );
    }
}
