//! The contract of one bounded context: the [`Domain`] trait.

use std::collections::BTreeMap;

use crate::event::Event;
use crate::input::Input;
use crate::outbox::Outbox;
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
    /// The domain's name; also its stream's name. Taken from its [`events!`](crate::events)
    /// enum (`in "orders"`).
    const NAME: &'static str = <Self::Event as Event>::DOMAIN;
    /// The events this domain owns (and alone appends); [`events!`](crate::events) writes it.
    type Event: Event;
    /// Other domains' events this domain consumes; [`inputs!`](crate::inputs) writes it, or
    /// [`NoInput`](crate::NoInput) for none. Its types are the domain's subscriptions.
    type Input: Input;
    /// One entity's state as `GET /v1/domains/{domain}/entities/{key}` answers it; its JSON
    /// Schema is shown in `GET /v1/domains`.
    type Entity: serde::Serialize + schemars::JsonSchema;
    /// The named queries [`Domain::query`] answers, each with its answer's schema.
    fn queries() -> Vec<Query> {
        Vec::new()
    }
    /// How the state divides over keys. The default, [`Partitioning::Whole`], is always
    /// correct; declare [`Partitioning::ByKey`] only when no decision spans keys, so the
    /// domain can be spread over partitions.
    fn partitioning() -> Partitioning {
        Partitioning::Whole
    }
    /// Reads the domain's own settings (the keys of its `[domain.<name>]` table the runtime
    /// does not take) into fields the state does not serialize; called on every fresh or
    /// restored state. A key it does not read is refused at start, naming it. By default
    /// the domain takes none.
    fn configure(
        &mut self,
        settings: &crate::settings::Settings,
    ) -> Result<(), crate::settings::SettingsError> {
        let _ = settings;
        Ok(())
    }
    /// Decides whether a client's proposed ingress event is acceptable in the current state;
    /// by default every one is.
    fn validate(&self, proposed: &Self::Event) -> Result<(), Rejection> {
        let _ = proposed;
        Ok(())
    }
    /// Reacts to a consumed event: may update read-model state and emit own events. A
    /// failure is retried, then parked as a dead letter.
    fn handle(&mut self, input: Self::Input, out: &mut Outbox<Self::Event>) -> Handled;
    /// Evolves state from one of the domain's own events.
    fn apply(&mut self, event: &Self::Event);
    /// The state of one entity, by key.
    fn entity(&self, key: &str) -> Option<Self::Entity>;
    /// The keys of entities after `after` (from the first when `None`), in key order, at
    /// most `limit`: what `GET /v1/domains/{domain}/entities` pages through (each key then
    /// answered by [`Domain::entity`]). [`keys_after`] writes it for a `BTreeMap`. By
    /// default a domain lists none.
    fn keys(&self, after: Option<&str>, limit: usize) -> Vec<String> {
        let _ = (after, limit);
        Vec::new()
    }
    /// Answers a named query (build the answer with [`answer`]).
    fn query(&self, name: &str, params: &Params) -> Result<serde_json::Value, QueryError> {
        let _ = params;
        Err(QueryError::unknown::<Self>(name))
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

/// The keys of `map` after `after`, in order, at most `limit`: [`Domain::keys`] for state
/// kept in a map by entity key.
pub fn keys_after<V>(map: &BTreeMap<String, V>, after: Option<&str>, limit: usize) -> Vec<String> {
    use std::ops::Bound;
    let from = match after {
        Some(after) => Bound::Excluded(after),
        None => Bound::Unbounded,
    };
    map.range::<str, _>((from, Bound::Unbounded))
        .take(limit)
        .map(|(key, _)| key.clone())
        .collect()
}

/// What [`Domain::handle`] returns: `Ok(())`, or the failure that parks the input.
pub type Handled = Result<(), HandleError>;

/// A named query and the JSON Schema of its answer.
#[derive(Debug, Clone)]
pub struct Query {
    /// The query's name, as in `GET /v1/domains/{domain}/queries/{name}`.
    pub name: &'static str,
    /// JSON Schema of the answer.
    pub schema: serde_json::Value,
}

impl Query {
    /// Query `name`, answered with a `T`.
    pub fn of<T: schemars::JsonSchema>(name: &'static str) -> Self {
        Self {
            name,
            schema: schema_of::<T>(),
        }
    }
}

/// The JSON Schema (draft 2020-12) of `T`.
pub fn schema_of<T: schemars::JsonSchema>() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(T)).unwrap_or_default()
}

/// A query's typed answer as the JSON the gateway sends.
pub fn answer<T: serde::Serialize>(value: &T) -> Result<serde_json::Value, QueryError> {
    serde_json::to_value(value).map_err(|error| QueryError::Unencodable {
        message: error.to_string(),
    })
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

    /// Accepts when `holds`, else rejects with `reason` (built either way: write an `if`
    /// where building it costs too much).
    pub fn unless(holds: bool, reason: impl Into<String>) -> Result<(), Rejection> {
        match holds {
            true => Ok(()),
            false => Err(Self::new(reason)),
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
    /// The answer does not encode as JSON (a map with non-string keys, a float that is NaN).
    #[error("the answer does not encode as JSON: {message}")]
    Unencodable {
        /// serde_json's reason.
        message: String,
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

impl QueryError {
    /// `name` is not one of domain `D`'s queries.
    pub fn unknown<D: Domain>(name: &str) -> Self {
        Self::UnknownQuery {
            name: name.to_owned(),
            known: D::queries().iter().map(|q| q.name.to_owned()).collect(),
        }
    }
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
