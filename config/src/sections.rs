//! One serde struct per `herald.toml` section, each with its defaults.
//!
//! Every section denies unknown fields, so a misspelt key is an error naming the
//! allowed keys rather than a setting that silently does nothing.

use std::fmt;
use std::path::PathBuf;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

/// `[node]`: who this node is and where it keeps its files.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Name of this node in logs and metrics; must not be empty.
    #[serde(default = "default_node_id")]
    pub id: String,
    /// Directory for the node's durable state.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
}

fn default_node_id() -> String {
    "herald-1".to_owned()
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("./data")
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            id: default_node_id(),
            data_dir: default_data_dir(),
        }
    }
}

/// `[http]`: the ingress server.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Listen address as `IP:PORT`; checked by validation, read it with `Config::bind_addr`.
    #[serde(default = "default_bind")]
    pub bind: String,
    /// Largest request body accepted, in bytes; more than zero.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// Number of HTTP worker threads; `None` keeps the server's default.
    #[serde(default)]
    pub workers: Option<usize>,
    /// Most events accepted in one batch request; more than zero.
    #[serde(default = "default_max_batch_events")]
    pub max_batch_events: usize,
}

fn default_bind() -> String {
    "127.0.0.1:8080".to_owned()
}

fn default_max_body_bytes() -> usize {
    1024 * 1024
}

fn default_max_batch_events() -> usize {
    1000
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            bind: default_bind(),
            max_body_bytes: default_max_body_bytes(),
            workers: None,
            max_batch_events: default_max_batch_events(),
        }
    }
}

/// `[bus]`: how events travel between actors.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BusConfig {
    /// Which bus implementation carries events.
    #[serde(default)]
    pub kind: BusKind,
}

/// The event bus implementations; written lowercase in the file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BusKind {
    /// In-process bus: every domain runs inside this node.
    #[default]
    Embedded,
}

/// `[log]`: reserved for the durable event log.
///
/// It has no keys yet; it exists so a file written for a later version fails loudly
/// on keys this version does not understand instead of ignoring them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {}

/// `[domains]`: which registered domains this node runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DomainsConfig {
    /// Domain names to start; empty means every registered domain.
    ///
    /// Accepts a list or a comma-separated string, so an environment variable such as
    /// `HERALD_DOMAINS__ENABLED=orders,analytics` works.
    #[serde(default, deserialize_with = "string_or_list")]
    pub enabled: Vec<String>,
}

/// `[domain.<name>]`: tuning for one domain's actors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DomainSettings {
    /// Messages an actor's mailbox holds before senders wait; more than zero.
    #[serde(default = "default_mailbox_capacity")]
    pub mailbox_capacity: usize,
}

fn default_mailbox_capacity() -> usize {
    1024
}

impl Default for DomainSettings {
    fn default() -> Self {
        Self {
            mailbox_capacity: default_mailbox_capacity(),
        }
    }
}

/// `[telemetry]`: what the node logs and how.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// A tracing `EnvFilter` directive such as `info` or `herald=debug,actix=warn`.
    #[serde(default = "default_level")]
    pub level: String,
    /// Whether log lines are human-readable text or JSON objects.
    #[serde(default)]
    pub format: LogFormat,
}

fn default_level() -> String {
    "info".to_owned()
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            level: default_level(),
            format: LogFormat::default(),
        }
    }
}

/// Log line formats; written lowercase in the file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Reads a list of names from a list or a comma-separated string, trimming each name
/// and dropping empty ones (so `"orders, ,analytics,"` is two names).
fn string_or_list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    struct NamesVisitor;

    impl<'de> Visitor<'de> for NamesVisitor {
        type Value = Vec<String>;

        fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
            formatter.write_str("a list of names or a comma-separated string of names")
        }

        fn visit_str<E: de::Error>(self, names: &str) -> Result<Self::Value, E> {
            Ok(tidy(names.split(',')))
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut names = Vec::new();
            while let Some(name) = seq.next_element::<String>()? {
                names.push(name);
            }
            Ok(tidy(names.iter().map(String::as_str)))
        }
    }

    fn tidy<'a>(names: impl Iterator<Item = &'a str>) -> Vec<String> {
        names
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .map(str::to_owned)
            .collect()
    }

    deserializer.deserialize_any(NamesVisitor)
}
