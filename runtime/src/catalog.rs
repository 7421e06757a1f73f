//! The topology: every registered domain's event types with their schemas, which of them
//! clients may POST, and what each domain subscribes to. Built once at start and checked,
//! so a wiring mistake stops the node with a clear message instead of losing events.

use std::collections::{BTreeMap, HashMap};

use serde_json::{json, Value};

use crate::domain::Domain;
use crate::event::{Event, EventType};
use crate::hosted::DomainEntry;
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
    /// Named queries it answers.
    pub queries: Vec<&'static str>,
    /// How its state divides over keys.
    pub partitioning: Partitioning,
}

impl DomainDescription {
    /// Describes domain `D`.
    pub fn of<D: Domain>() -> Self {
        Self {
            name: D::NAME,
            event_domain: <D::Event as Event>::DOMAIN,
            types: <D::Event as Event>::types(),
            ingress: D::ingress().to_vec(),
            subscriptions: D::subscriptions().to_vec(),
            queries: D::queries().to_vec(),
            partitioning: D::partitioning(),
        }
    }
}

/// A wiring mistake in the registered domains.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    /// Two registered domains share a name.
    #[error("domain \"{0}\" is registered twice in domains/src/lib.rs")]
    DuplicateDomain(String),
    /// A domain's NAME differs from the domain its event enum declares.
    #[error("domain \"{name}\" declares events of domain \"{event_domain}\"; make `events!(... in \"{name}\")` match `Domain::NAME`")]
    NameMismatch {
        /// `Domain::NAME`.
        name: String,
        /// `Event::DOMAIN`.
        event_domain: String,
    },
    /// An ingress type is not one of the domain's own types.
    #[error("domain \"{domain}\" lists ingress type \"{type_name}\", which is not one of its own types: {}", own.join(", "))]
    ForeignIngress {
        /// The domain.
        domain: String,
        /// The listed type.
        type_name: String,
        /// The domain's own types.
        own: Vec<String>,
    },
    /// A subscription names no registered type, or the domain's own type.
    #[error("domain \"{domain}\" subscribes to \"{type_name}\", which {why}")]
    BadSubscription {
        /// The domain.
        domain: String,
        /// The subscribed type.
        type_name: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A partitioned domain says how it keys a type it does not consume.
    #[error("domain \"{domain}\" says how it keys input \"{type_name}\", which it does not subscribe to; subscriptions are: {}", subscriptions.join(", "))]
    BadInputKey {
        /// The domain.
        domain: String,
        /// The listed type.
        type_name: String,
        /// What it does subscribe to.
        subscriptions: Vec<String>,
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
    /// Builds and checks the catalog; `enabled` names the domains this node hosts.
    pub fn new(entries: &[DomainEntry], enabled: &[String]) -> Result<Self, CatalogError> {
        let mut domains: Vec<(DomainDescription, bool)> = Vec::new();
        let mut types = HashMap::new();
        for entry in entries {
            let description = entry.describe();
            if domains.iter().any(|(d, _)| d.name == description.name) {
                return Err(CatalogError::DuplicateDomain(description.name.to_owned()));
            }
            if description.name != description.event_domain {
                return Err(CatalogError::NameMismatch {
                    name: description.name.to_owned(),
                    event_domain: description.event_domain.to_owned(),
                });
            }
            let hosted = enabled.iter().any(|name| name == description.name);
            for event_type in &description.types {
                let validator = jsonschema::validator_for(&event_type.schema).map_err(|error| {
                    CatalogError::BadSchema {
                        type_name: event_type.name.to_owned(),
                        message: error.to_string(),
                    }
                })?;
                types.insert(
                    event_type.name,
                    TypeEntry {
                        name: event_type.name,
                        domain: description.name,
                        ingress: description.ingress.contains(&event_type.name),
                        hosted,
                        validator,
                    },
                );
            }
            for ingress in &description.ingress {
                if !description.types.iter().any(|t| t.name == *ingress) {
                    return Err(CatalogError::ForeignIngress {
                        domain: description.name.to_owned(),
                        type_name: (*ingress).to_owned(),
                        own: description
                            .types
                            .iter()
                            .map(|t| t.name.to_owned())
                            .collect(),
                    });
                }
            }
            domains.push((description, hosted));
        }
        for (description, _) in &domains {
            if let Partitioning::ByKey { inputs } = description.partitioning {
                if let Some((type_name, _)) = inputs
                    .iter()
                    .find(|(name, _)| !description.subscriptions.contains(name))
                {
                    return Err(CatalogError::BadInputKey {
                        domain: description.name.to_owned(),
                        type_name: (*type_name).to_owned(),
                        subscriptions: description
                            .subscriptions
                            .iter()
                            .map(|s| s.to_string())
                            .collect(),
                    });
                }
            }
            for subscription in &description.subscriptions {
                let why = match types.get(subscription) {
                    None => "no registered domain owns",
                    Some(owner) if owner.domain == description.name => {
                        "is its own type; own events are applied, not handled"
                    }
                    Some(_) => continue,
                };
                return Err(CatalogError::BadSubscription {
                    domain: description.name.to_owned(),
                    type_name: (*subscription).to_owned(),
                    why,
                });
            }
        }
        Ok(Self { domains, types })
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
                    "queries": d.queries,
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
