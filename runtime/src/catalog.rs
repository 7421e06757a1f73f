//! The topology: every registered domain's event types with their schemas, which of them
//! clients may POST, and what each domain subscribes to. Built once at start and checked,
//! so a wiring mistake stops the node with a clear message instead of losing events.

use std::collections::{BTreeMap, HashMap};

use herald_config::nearest;
use serde_json::{json, Value};

use crate::domain::{schema_of, Domain, Query};
use crate::event::{Event, EventType};
use crate::hosted::DomainEntry;
use crate::input::Input;
use crate::partition::Partitioning;

/// What a domain declares about itself.
#[derive(Debug, Clone)]
pub struct DomainDescription {
    /// The domain's name (and stream).
    pub name: &'static str,
    /// The domain named by its event enum; must equal `name`.
    pub event_domain: &'static str,
    /// Every event type it owns.
    pub types: Vec<EventType>,
    /// Its types clients may POST.
    pub ingress: Vec<&'static str>,
    /// Other domains' types it consumes.
    pub subscriptions: Vec<&'static str>,
    /// Named queries it answers, with their answers' schemas.
    pub queries: Vec<Query>,
    /// JSON Schema of one entity's state.
    pub entity_schema: Value,
    /// How its state divides over keys.
    pub partitioning: Partitioning,
    /// Combines partitions' answers to a named query ([`Domain::merge`]).
    pub merge: fn(&str, Vec<serde_json::Value>) -> serde_json::Value,
}

impl DomainDescription {
    /// Describes domain `D`.
    pub fn of<D: Domain>() -> Self {
        // Generated once: each type's JSON Schema is built by `types()`.
        let types = <D::Event as Event>::types();
        let ingress = types.iter().filter(|t| t.ingress).map(|t| t.name).collect();
        Self {
            name: D::NAME,
            event_domain: <D::Event as Event>::DOMAIN,
            types,
            ingress,
            subscriptions: <D::Input as Input>::TYPES.to_vec(),
            queries: D::queries(),
            entity_schema: schema_of::<D::Entity>(),
            partitioning: D::partitioning(),
            merge: D::merge,
        }
    }
}

/// A wiring mistake in the registered domains.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    /// Two registered domains share a name.
    #[error("domain \"{0}\" is registered twice in the list of domains handed to the node")]
    DuplicateDomain(String),
    /// A domain's NAME differs from the domain its event enum declares.
    #[error("domain \"{name}\" declares events of domain \"{event_domain}\"; make `events!(... in \"{name}\")` match `Domain::NAME`")]
    NameMismatch {
        /// `Domain::NAME`.
        name: String,
        /// `Event::DOMAIN`.
        event_domain: String,
    },
    /// Two domains declare the same event type.
    #[error("event type \"{type_name}\" is declared by both domain \"{first}\" and domain \"{second}\"; a type has one owner")]
    DuplicateType {
        /// The type.
        type_name: String,
        /// The domain registered first.
        first: String,
        /// The domain registered later.
        second: String,
    },
    /// An ingress type is not one of the domain's own types.
    #[error("domain \"{domain}\" lists ingress type \"{type_name}\", which is not one of its own types; {choices}")]
    ForeignIngress {
        /// The domain.
        domain: String,
        /// The listed type.
        type_name: String,
        /// The nearest own type, or all of them.
        choices: Choices,
    },
    /// A subscription names a type no registered domain owns.
    #[error("domain \"{domain}\" subscribes to \"{type_name}\", which no registered domain owns; {choices}")]
    UnknownSubscription {
        /// The domain.
        domain: String,
        /// The subscribed type.
        type_name: String,
        /// The nearest type of another domain, or all of them.
        choices: Choices,
    },
    /// A subscription names the domain's own type.
    #[error("domain \"{domain}\" subscribes to \"{type_name}\", which is its own type; own events are applied, not handled: remove it from the domain's `inputs!`")]
    OwnSubscription {
        /// The domain.
        domain: String,
        /// The subscribed type.
        type_name: String,
    },
    /// A partitioned domain says how it keys a type it does not consume.
    #[error("domain \"{domain}\" says how it keys input \"{type_name}\", which it does not subscribe to; {choices}")]
    BadInputKey {
        /// The domain.
        domain: String,
        /// The listed type.
        type_name: String,
        /// The nearest subscription, or all of them.
        choices: Choices,
    },
    /// A type's JSON Schema does not compile.
    #[error("the JSON Schema of \"{type_name}\" does not compile: {message}")]
    BadSchema {
        /// The type.
        type_name: String,
        /// The validator's reason.
        message: String,
    },
}

/// The end of a message about a name that matches nothing: the name most likely meant,
/// else every name there is to choose from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choices {
    /// What the names are, in the plural ("its own types").
    what: &'static str,
    /// The name within a small edit distance of the one given, if any.
    nearest: Option<String>,
    /// Every name there is, sorted.
    names: Vec<String>,
}

impl Choices {
    /// The choices for `wanted` among `names`, which are `what`.
    pub fn new<'a>(
        what: &'static str,
        wanted: &str,
        names: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        let mut names: Vec<String> = names.into_iter().map(str::to_owned).collect();
        names.sort();
        names.dedup();
        Self {
            what,
            nearest: nearest(wanted, names.iter().map(String::as_str)).map(str::to_owned),
            names,
        }
    }

    /// The name most likely meant, if one is close enough.
    pub fn nearest(&self) -> Option<&str> {
        self.nearest.as_deref()
    }
}

impl std::fmt::Display for Choices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.nearest, self.names.is_empty()) {
            (Some(nearest), _) => write!(f, "did you mean \"{nearest}\"?"),
            (None, true) => write!(f, "there are no {}", self.what),
            (None, false) => write!(f, "{} are: {}", self.what, self.names.join(", ")),
        }
    }
}

/// An event type as the gateway needs it.
pub struct TypeEntry {
    /// Full type name.
    pub name: &'static str,
    /// Owning domain.
    pub domain: &'static str,
    /// Whether clients may POST it.
    pub ingress: bool,
    /// Whether its owning domain runs on this node.
    pub hosted: bool,
    /// Its payload's version.
    pub version: u32,
    /// Stored `data` of an older version in the current layout.
    pub upgrade: crate::event::Upgrade,
    validator: jsonschema::Validator,
}

/// Why a client's event type cannot be taken in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TypeLookupError {
    /// No domain owns the type.
    #[error("unknown event type \"{type_name}\"; ingress types are: {}", known.join(", "))]
    Unknown {
        /// The type asked for.
        type_name: String,
        /// Every ingress type.
        known: Vec<String>,
    },
    /// The type exists but only its domain emits it.
    #[error("event type \"{type_name}\" is emitted by domain \"{domain}\" and cannot be posted; ingress types of \"{domain}\" are: {}", ingress.join(", "))]
    NotIngress {
        /// The type asked for.
        type_name: String,
        /// Its owner.
        domain: String,
        /// The owner's ingress types.
        ingress: Vec<String>,
    },
    /// The owning domain is not enabled on this node.
    #[error("domain \"{domain}\", which owns \"{type_name}\", is not enabled on this node")]
    NotHosted {
        /// The type asked for.
        type_name: String,
        /// Its owner.
        domain: String,
    },
}

/// `data` that does not fit its type's schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("data at \"{pointer}\" {message}")]
pub struct SchemaViolation {
    /// JSON pointer into `data` (empty for `data` itself).
    pub pointer: String,
    /// The validator's message.
    pub message: String,
}

/// The checked topology of the registered domains.
pub struct Catalog {
    domains: Vec<(DomainDescription, bool)>,
    types: HashMap<&'static str, TypeEntry>,
}

impl Catalog {
    /// Builds and checks the catalog; `enabled` names the domains this node hosts. Fails
    /// with the first wiring mistake; [`Catalog::check`] reports them all.
    pub fn new(entries: &[DomainEntry], enabled: &[String]) -> Result<Self, CatalogError> {
        Self::check(entries, enabled).map_err(|mut errors| errors.swap_remove(0))
    }

    /// Builds and checks the catalog, reporting every wiring mistake (never none), so
    /// `herald check-config` names them all in one go.
    pub fn check(entries: &[DomainEntry], enabled: &[String]) -> Result<Self, Vec<CatalogError>> {
        Self::from_descriptions(entries.iter().map(DomainEntry::describe).collect(), enabled)
    }

    fn from_descriptions(
        descriptions: Vec<DomainDescription>,
        enabled: &[String],
    ) -> Result<Self, Vec<CatalogError>> {
        let mut errors = Vec::new();
        let mut domains: Vec<(DomainDescription, bool)> = Vec::new();
        let mut types = HashMap::new();
        // Every declared type's owner, schema compiled or not, so one bad schema does not
        // also report each subscription to that type.
        let mut owners: HashMap<&'static str, &'static str> = HashMap::new();
        for description in descriptions {
            if domains.iter().any(|(d, _)| d.name == description.name) {
                errors.push(CatalogError::DuplicateDomain(description.name.to_owned()));
                continue;
            }
            if description.name != description.event_domain {
                errors.push(CatalogError::NameMismatch {
                    name: description.name.to_owned(),
                    event_domain: description.event_domain.to_owned(),
                });
            }
            let hosted = enabled.iter().any(|name| name == description.name);
            for event_type in &description.types {
                if let Some(first) = owners.insert(event_type.name, description.name) {
                    errors.push(CatalogError::DuplicateType {
                        type_name: event_type.name.to_owned(),
                        first: first.to_owned(),
                        second: description.name.to_owned(),
                    });
                    continue;
                }
                match jsonschema::validator_for(&event_type.schema) {
                    Ok(validator) => {
                        types.insert(
                            event_type.name,
                            TypeEntry {
                                name: event_type.name,
                                domain: description.name,
                                ingress: description.ingress.contains(&event_type.name),
                                hosted,
                                version: event_type.version,
                                upgrade: event_type.upgrade,
                                validator,
                            },
                        );
                    }
                    Err(error) => errors.push(CatalogError::BadSchema {
                        type_name: event_type.name.to_owned(),
                        message: error.to_string(),
                    }),
                }
            }
            for ingress in &description.ingress {
                if !description.types.iter().any(|t| t.name == *ingress) {
                    errors.push(CatalogError::ForeignIngress {
                        domain: description.name.to_owned(),
                        type_name: (*ingress).to_owned(),
                        choices: Choices::new(
                            "its own types",
                            ingress,
                            description.types.iter().map(|t| t.name),
                        ),
                    });
                }
            }
            domains.push((description, hosted));
        }
        for (description, _) in &domains {
            if let Partitioning::ByKey { inputs } = description.partitioning {
                for (type_name, _) in inputs
                    .iter()
                    .filter(|(name, _)| !description.subscriptions.contains(name))
                {
                    errors.push(CatalogError::BadInputKey {
                        domain: description.name.to_owned(),
                        type_name: (*type_name).to_owned(),
                        choices: Choices::new(
                            "its subscriptions",
                            type_name,
                            description.subscriptions.iter().copied(),
                        ),
                    });
                }
            }
            for subscription in &description.subscriptions {
                match owners.get(subscription) {
                    Some(owner) if *owner != description.name => {}
                    Some(_) => errors.push(CatalogError::OwnSubscription {
                        domain: description.name.to_owned(),
                        type_name: (*subscription).to_owned(),
                    }),
                    None => errors.push(CatalogError::UnknownSubscription {
                        domain: description.name.to_owned(),
                        type_name: (*subscription).to_owned(),
                        choices: Choices::new(
                            "the types of other domains",
                            subscription,
                            owners
                                .iter()
                                .filter(|(_, owner)| **owner != description.name)
                                .map(|(name, _)| *name),
                        ),
                    }),
                }
            }
        }
        match errors.is_empty() {
            true => Ok(Self { domains, types }),
            false => Err(errors),
        }
    }

    /// Looks up a type a client wants to POST to a domain hosted here.
    pub fn ingress_type(&self, type_name: &str) -> Result<&TypeEntry, TypeLookupError> {
        let entry = self.ingress_type_anywhere(type_name)?;
        if !entry.hosted {
            return Err(TypeLookupError::NotHosted {
                type_name: type_name.to_owned(),
                domain: entry.domain.to_owned(),
            });
        }
        Ok(entry)
    }

    /// Looks up a type a client wants to POST, wherever its domain is hosted (networked
    /// mode forwards it to a node that hosts it).
    pub fn ingress_type_anywhere(&self, type_name: &str) -> Result<&TypeEntry, TypeLookupError> {
        let Some(entry) = self.types.get(type_name) else {
            return Err(TypeLookupError::Unknown {
                type_name: type_name.to_owned(),
                known: self.ingress_types(),
            });
        };
        if !entry.ingress {
            let ingress = self
                .description(entry.domain)
                .map(|d| d.ingress.iter().map(|t| t.to_string()).collect())
                .unwrap_or_default();
            return Err(TypeLookupError::NotIngress {
                type_name: type_name.to_owned(),
                domain: entry.domain.to_owned(),
                ingress,
            });
        }
        Ok(entry)
    }

    /// Any known event type, by name.
    pub fn event_type(&self, type_name: &str) -> Option<&TypeEntry> {
        self.types.get(type_name)
    }

    /// Every ingress type, sorted.
    pub fn ingress_types(&self) -> Vec<String> {
        let mut known: Vec<String> = self
            .types
            .values()
            .filter(|t| t.ingress)
            .map(|t| t.name.to_owned())
            .collect();
        known.sort();
        known
    }

    /// A domain's description, by name.
    pub fn description(&self, domain: &str) -> Option<&DomainDescription> {
        self.domains
            .iter()
            .map(|(d, _)| d)
            .find(|d| d.name == domain)
    }

    /// The names of every known domain.
    pub fn names(&self) -> Vec<&'static str> {
        self.domains.iter().map(|(d, _)| d.name).collect()
    }

    /// The names of the domains this node hosts.
    pub fn hosted(&self) -> Vec<&'static str> {
        self.domains
            .iter()
            .filter(|(_, hosted)| *hosted)
            .map(|(d, _)| d.name)
            .collect()
    }

    /// The hosted domains that consume events of `stream` (a domain's name).
    pub fn subscribers_of(&self, stream: &str) -> Vec<&'static str> {
        let Some(owner) = self.description(stream) else {
            return Vec::new();
        };
        self.domains
            .iter()
            .filter(|(d, hosted)| {
                *hosted
                    && d.subscriptions
                        .iter()
                        .any(|s| owner.types.iter().any(|t| t.name == *s))
            })
            .map(|(d, _)| d.name)
            .collect()
    }

    /// The topology as served by `GET /v1/domains`.
    pub fn to_json(&self) -> Value {
        let domains: Vec<Value> = self
            .domains
            .iter()
            .map(|(d, hosted)| {
                let types: BTreeMap<&str, Value> = d
                    .types
                    .iter()
                    .map(|t| {
                        let entry = json!({
                            "ingress": d.ingress.contains(&t.name),
                            "key": t.key_field,
                            "schema": t.schema,
                            "version": t.version,
                        });
                        (t.name, entry)
                    })
                    .collect();
                json!({
                    "name": d.name,
                    "stream": d.name,
                    "hosted": hosted,
                    "types": types,
                    "ingress": d.ingress,
                    "subscriptions": d.subscriptions,
                    "queries": d.queries.iter().map(|q| q.name).collect::<Vec<_>>(),
                    "query_answers": d
                        .queries
                        .iter()
                        .map(|q| (q.name, q.schema.clone()))
                        .collect::<BTreeMap<_, _>>(),
                    "entity": d.entity_schema,
                    "partitioned": d.partitioning.by_key(),
                    "input_keys": d
                        .subscriptions
                        .iter()
                        .filter_map(|t| d.partitioning.input_key(t).map(|key| (*t, key.name())))
                        .collect::<BTreeMap<&str, &str>>(),
                })
            })
            .collect();
        json!({ "domains": domains })
    }
}

impl TypeEntry {
    /// Checks `data` against the type's JSON Schema; reports the first violation's path.
    pub fn check_data(&self, data: &Value) -> Result<(), SchemaViolation> {
        match self.validator.iter_errors(data).next() {
            None => Ok(()),
            Some(error) => Err(SchemaViolation {
                pointer: error.instance_path().to_string(),
                message: error.to_string(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::partition::InputKey;

    /// A domain owning `types` (short names, prefixed with its own name).
    fn domain(
        name: &'static str,
        types: &[&'static str],
        ingress: &[&'static str],
        subscriptions: &[&'static str],
    ) -> DomainDescription {
        DomainDescription {
            name,
            event_domain: name,
            types: types
                .iter()
                .map(|full| EventType {
                    name: full,
                    key_field: "key",
                    schema: json!({ "type": "object" }),
                    ingress: ingress.contains(full),
                    version: 1,
                    upgrade: |_, _| Ok(None),
                })
                .collect(),
            ingress: ingress.to_vec(),
            subscriptions: subscriptions.to_vec(),
            queries: Vec::new(),
            entity_schema: json!({}),
            partitioning: Partitioning::Whole,
            merge: |_, answers| answers.into_iter().next().unwrap_or_default(),
        }
    }

    fn orders() -> DomainDescription {
        domain(
            "orders",
            &["orders.OrderPlaced", "orders.OrderCancelled"],
            &["orders.OrderPlaced"],
            &["stock.StockReserved"],
        )
    }

    fn stock() -> DomainDescription {
        domain(
            "stock",
            &["stock.StockReserved", "stock.StockAdded"],
            &["stock.StockAdded"],
            &["orders.OrderPlaced"],
        )
    }

    /// Builds a catalog of `domains` and compares every error's message with `expected`.
    fn check(domains: Vec<DomainDescription>, expected: &[&str]) {
        let seen: Vec<String> = match Catalog::from_descriptions(domains, &[]) {
            Ok(_) => Vec::new(),
            Err(errors) => errors.iter().map(ToString::to_string).collect(),
        };
        assert_eq!(seen, expected);
    }

    #[test]
    fn well_wired_domains_build() {
        check(vec![orders(), stock()], &[]);
    }

    #[test]
    fn a_misspelt_subscription_names_the_nearest_type() {
        let mut misspelt = orders();
        misspelt.subscriptions = vec!["stock.StockReservd"];
        check(
            vec![misspelt, stock()],
            &["domain \"orders\" subscribes to \"stock.StockReservd\", which no registered domain owns; did you mean \"stock.StockReserved\"?"],
        );
        let mut case = orders();
        case.subscriptions = vec!["Stock.stockreserved"];
        check(
            vec![case, stock()],
            &["domain \"orders\" subscribes to \"Stock.stockreserved\", which no registered domain owns; did you mean \"stock.StockReserved\"?"],
        );
    }

    #[test]
    fn a_subscription_like_nothing_lists_the_other_domains_types() {
        let mut unknown = orders();
        unknown.subscriptions = vec!["billing.InvoiceSent"];
        check(
            vec![unknown, stock()],
            &["domain \"orders\" subscribes to \"billing.InvoiceSent\", which no registered domain owns; the types of other domains are: stock.StockAdded, stock.StockReserved"],
        );
    }

    #[test]
    fn every_mistake_is_reported_at_once() {
        let mut own = orders();
        own.subscriptions = vec!["orders.OrderCancelled", "stock.StockReservd"];
        own.ingress = vec!["orders.OrderPlacd"];
        let mut keyed = stock();
        keyed.partitioning = Partitioning::ByKey {
            inputs: &[("orders.OrderPlace", InputKey::Broadcast)],
        };
        check(
            vec![own, keyed, stock()],
            &[
                "domain \"orders\" lists ingress type \"orders.OrderPlacd\", which is not one of its own types; did you mean \"orders.OrderPlaced\"?",
                "domain \"stock\" is registered twice in the list of domains handed to the node",
                "domain \"orders\" subscribes to \"orders.OrderCancelled\", which is its own type; own events are applied, not handled: remove it from the domain's `inputs!`",
                "domain \"orders\" subscribes to \"stock.StockReservd\", which no registered domain owns; did you mean \"stock.StockReserved\"?",
                "domain \"stock\" says how it keys input \"orders.OrderPlace\", which it does not subscribe to; did you mean \"orders.OrderPlaced\"?",
            ],
        );
    }

    #[test]
    fn a_type_has_one_owner_and_a_domain_its_own_name() {
        let mut borrowed = domain("billing", &["stock.StockAdded"], &[], &[]);
        borrowed.event_domain = "stock";
        check(
            vec![stock(), borrowed, orders()],
            &[
                "domain \"billing\" declares events of domain \"stock\"; make `events!(... in \"billing\")` match `Domain::NAME`",
                "event type \"stock.StockAdded\" is declared by both domain \"stock\" and domain \"billing\"; a type has one owner",
            ],
        );
    }

    #[test]
    fn a_bad_schema_is_named_once() {
        let mut bad = stock();
        bad.types[0].schema = json!({ "type": 7 });
        let errors = Catalog::from_descriptions(vec![orders(), bad], &[])
            .err()
            .unwrap_or_default();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            matches!(&errors[0], CatalogError::BadSchema { type_name, .. } if type_name == "stock.StockReserved"),
            "{errors:?}"
        );
    }
}
