//! The contract of one bounded context: the [`Domain`] trait.

use std::collections::BTreeMap;

use crate::event::Event;
use crate::outbox::{Incoming, Outbox};
use crate::partition::Partitioning;

/// Query parameters, from the URL's query string.
pub type Params = BTreeMap<String, String>;

/// One bounded context: owns its state and its events, and talks to others only by events.
///
/// Domain code is pure and deterministic: no I/O, no clocks, no randomness. The runtime
/// hands in everything a domain needs, which is what makes replay and testing work. The
/// state is serde-serializable so the runtime can snapshot it (derive both; keep to types
/// bincode can encode: no `serde_json::Value`, no `#[serde(untagged)]` or `flatten`).
pub trait Domain:
    Default + serde::Serialize + serde::de::DeserializeOwned + Send + Sync + 'static
{
    /// The domain's name; also its stream's name.
    const NAME: &'static str;
    /// The events this domain owns (and alone appends).
    type Event: Event;
    /// Other domains' event types this domain consumes, by full type name.
    fn subscriptions() -> &'static [&'static str];
    /// Its own event types that clients may POST, by full type name.
    fn ingress() -> &'static [&'static str];
    /// Names of the queries [`Domain::query`] answers, listed in the topology.
    fn queries() -> &'static [&'static str] {
        &[]
    }
    /// How the state divides over keys. The default, [`Partitioning::Whole`], is always
    /// correct; declare [`Partitioning::ByKey`] only when no decision spans keys, so the
    /// domain can be spread over partitions.
    fn partitioning() -> Partitioning {
        Partitioning::Whole
    }
    /// Decides whether a client's proposed ingress event is acceptable in the current state.
    fn validate(&self, proposed: &Self::Event) -> Result<(), Rejection>;
    /// Reacts to a subscribed event: may update read-model state and emit own events.
    fn handle(
        &mut self,
        incoming: &Incoming<'_>,
        out: &mut Outbox<Self::Event>,
    ) -> Result<(), HandleError>;
    /// Evolves state from one of the domain's own events.
    fn apply(&mut self, event: &Self::Event);
    /// The state of one entity, by key, as JSON.
    fn entity(&self, key: &str) -> Option<serde_json::Value>;
    /// Answers a named query.
    fn query(&self, name: &str, params: &Params) -> Result<serde_json::Value, QueryError> {
        let _ = params;
        Err(QueryError::UnknownQuery {
            name: name.to_owned(),
            known: Self::queries().iter().map(|q| q.to_string()).collect(),
        })
    }
    /// Combines the answers of named query `name` from each partition of a domain spread
    /// over partitions into the whole domain's answer (in partition order). The default,
    /// [`merge_json`], sums numbers, merges objects key by key and concatenates arrays: right
    /// for counts, totals and lists of entities; override it for anything else (an average,
    /// a top-N, a sorted list).
    fn merge(name: &str, answers: Vec<serde_json::Value>) -> serde_json::Value {
        let _ = name;
        answers.into_iter().reduce(merge_json).unwrap_or_default()
    }
}

/// Merges two partitions' answers: numbers are summed (integers exactly, while they fit),
/// objects merged key by key, arrays concatenated, `null` yields to the other; for other
/// values (strings, booleans, mismatched kinds) the first partition's stands. Associative,
/// so the whole domain's answer does not depend on how many partitions there are.
pub fn merge_json(left: serde_json::Value, right: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match (left, right) {
        (Value::Number(a), Value::Number(b)) => {
            match (a.as_u64(), b.as_u64(), a.as_i64(), b.as_i64()) {
                (Some(x), Some(y), _, _) if x.checked_add(y).is_some() => Value::from(x + y),
                (_, _, Some(x), Some(y)) if x.checked_add(y).is_some() => Value::from(x + y),
                _ => serde_json::Number::from_f64(
                    a.as_f64().unwrap_or(0.0) + b.as_f64().unwrap_or(0.0),
                )
                .map_or(Value::Null, Value::Number),
            }
        }
        (Value::Object(mut a), Value::Object(b)) => {
            for (key, value) in b {
                let merged = match a.remove(&key) {
                    Some(mine) => merge_json(mine, value),
                    None => value,
                };
                a.insert(key, merged);
            }
            Value::Object(a)
        }
        (Value::Array(mut a), Value::Array(b)) => {
            a.extend(b);
            Value::Array(a)
        }
        (Value::Null, other) | (other, Value::Null) => other,
        (first, _) => first,
    }
}

/// A domain's refusal of a proposed ingress event; clients get 409 with the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct Rejection {
    /// Why, in words a client can act on.
    pub reason: String,
}

impl Rejection {
    /// A rejection with this reason.
    pub fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
        }
    }
}

/// A handler's failure on an input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct HandleError {
    /// What went wrong, with the values involved.
    pub message: String,
}

impl HandleError {
    /// A failure with this message.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

impl From<crate::DataError> for HandleError {
    fn from(error: crate::DataError) -> Self {
        Self::new(error.to_string())
    }
}

/// Why a query could not be answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// The domain has no query of that name.
    #[error("unknown query \"{name}\"; known queries are: {}", known.join(", "))]
    UnknownQuery {
        /// The name asked for.
        name: String,
        /// The queries the domain answers.
        known: Vec<String>,
    },
    /// A parameter is missing or malformed.
    #[error("query parameter \"{name}\": {message}")]
    BadParameter {
        /// The parameter.
        name: String,
        /// What is wrong with it.
        message: String,
    },
}

#[cfg(test)]
mod tests {
    use super::merge_json;
    use serde_json::json;

    #[test]
    fn partitions_answers_merge_the_same_whatever_their_grouping() {
        let answers = [
            json!({"orders": 2, "by_status": {"paid": 2}, "ids": ["a", "b"], "unit": "EUR"}),
            json!({"orders": 1, "by_status": {"paid": 1, "rejected": 1}, "ids": ["c"], "unit": "EUR"}),
            json!({"orders": 0, "by_status": {}, "ids": [], "unit": "USD", "max": null}),
        ];
        let left = answers.iter().cloned().reduce(merge_json).unwrap();
        let [a, b, c] = answers;
        let right = merge_json(a, merge_json(b, c));
        assert_eq!(left, right);
        assert_eq!(
            left,
            json!({"orders": 3, "by_status": {"paid": 3, "rejected": 1}, "ids": ["a", "b", "c"], "unit": "EUR", "max": null})
        );
        assert_eq!(
            merge_json(json!(u64::MAX), json!(1)),
            json!(18_446_744_073_709_551_616.0)
        );
        assert_eq!(merge_json(json!(-2), json!(1)), json!(-1));
    }
}
