//! What every gateway handler shares: the topology, the domain hosts, the limits and the
//! counters behind `/metrics`.

use std::sync::Arc;

use dashmap::DashMap;

use herald_runtime::catalog::Catalog;
use herald_runtime::log::EventLog;
use herald_runtime::nats::{BusStatus, Nats};
use herald_runtime::partition::Layout;
use tokio::sync::watch;

use super::auth::Access;
use super::limits::Connections;
use super::metrics::Metrics;
use super::problem::{self, Problem};
use crate::host::Health;
use crate::members::Bucket;
pub use crate::registry::HostHandle;

/// Request limits, from `[http]`.
#[derive(Clone)]
pub struct Limits {
    /// How request bodies are read: size, budget, timeout and rate.
    pub body: super::body::BodyLimits,
    /// Most events in one batch.
    pub max_batch_events: usize,
    /// Largest single event (its JSON as sent; binary mode: the body).
    pub max_event_bytes: usize,
    /// Largest total size of a request's header fields.
    pub max_header_bytes: usize,
    /// Most SSE tails open at once.
    pub max_tails: usize,
}

/// The state shared by every handler.
pub struct GatewayState {
    /// This node's id (`[node] id`).
    pub node: String,
    /// Where the gateway listens, as others should reach it.
    pub address: String,
    /// The checked topology.
    pub catalog: Arc<Catalog>,
    /// Each domain's partitions and their streams (one each in embedded mode).
    pub layout: Arc<Layout>,
    /// Networked mode: the bucket of members and owners, for `/v1/cluster`.
    pub owners: Option<Bucket>,
    /// Whether the node has claimed its streams once (always, in embedded mode): until
    /// then `/readyz` says it is not ready.
    pub claimed: Arc<std::sync::atomic::AtomicBool>,
    /// Stream (a domain's, or a partition's) to host; a dashmap so hosts can come and go
    /// while serving.
    pub hosts: Arc<DashMap<&'static str, HostHandle>>,
    /// Request limits.
    pub limits: Limits,
    /// The event log, for the read API and for waiting on durability.
    pub log: Arc<dyn EventLog>,
    /// Networked mode: whether NATS is reachable; `None` in embedded mode.
    pub nats: Option<Arc<Nats>>,
    /// Turns true when the node shuts down, ending long-lived responses (tails).
    pub shutdown: watch::Receiver<bool>,
    /// The accepted tokens; `None` when `[auth]` is off.
    pub access: Option<Arc<Access>>,
    /// The open client connections, against `[http] max_connections`.
    pub connections: Arc<Connections>,
    /// Places for SSE tails, against `[http] max_tails`.
    pub tails: Arc<tokio::sync::Semaphore>,
    /// Counters for `/metrics`.
    pub metrics: Arc<Metrics>,
}

impl GatewayState {
    /// Why NATS cannot be used now, in networked mode; `None` when it can (or embedded).
    pub fn nats_down(&self) -> Option<String> {
        match &*self.nats.as_ref()?.status().borrow() {
            BusStatus::Up => None,
            BusStatus::Down(reason) => Some(reason.clone()),
        }
    }

    /// The streams of the domains this node enables: each domain's, or each of its
    /// partitions'.
    pub fn hosted_streams(&self) -> Vec<&'static str> {
        self.catalog
            .hosted()
            .into_iter()
            .flat_map(|domain| self.layout.streams(domain).iter().copied())
            .collect()
    }

    /// The host of a stream a client named (a domain's, or a partition's such as
    /// `orders-p3`): 404 if there is no such stream, 503 if not here.
    pub fn host(&self, domain: &str) -> Result<HostHandle, Problem> {
        let partitions = self.layout.streams(domain);
        if partitions.len() > 1 {
            // A partitioned domain's dead letters and hosts are per partition.
            return Err(Problem::new(problem::PARTITIONED_DOMAIN, format!(
                    "domain \"{domain}\" is spread over {} partitions, each with its own stream and dead letters: name one of {}",
                    partitions.len(),
                    partitions.join(", ")
                ),
            )
            .with("domain", domain)
            .with("streams", serde_json::json!(partitions)));
        }
        if self.layout.locate(domain).is_none() {
            let mut known: Vec<&str> = self.layout.all_streams().collect();
            known.sort_unstable();
            return Err(Problem::new(
                problem::UNKNOWN_DOMAIN,
                format!(
                    "unknown domain \"{domain}\"; domains are: {}",
                    known.join(", ")
                ),
            )
            .with("domain", domain));
        }
        self.hosts
            .get(domain)
            .map(|handle| handle.value().clone())
            .ok_or_else(|| not_hosted(domain))
    }

    /// Like [`GatewayState::host`], and 503 while the domain is still recovering.
    pub fn ready_host(&self, domain: &str) -> Result<HostHandle, Problem> {
        let host = self.host(domain)?;
        if host.view.is_ready() {
            return Ok(host);
        }
        if let Health::Failed(reason) = host.view.health() {
            return Err(Problem::new(
                problem::DOMAIN_FAILED,
                format!("domain \"{domain}\" failed: {reason}"),
            )
            .with("domain", domain));
        }
        Err(Problem::new(
            problem::DOMAIN_NOT_READY,
            format!(
                "domain \"{domain}\" is still recovering its state from the log; retry shortly"
            ),
        )
        .with("domain", domain)
        .retry_after(1))
    }
}

/// 503 for a domain that is registered but not running on this node.
pub fn not_hosted(domain: &str) -> Problem {
    Problem::new(problem::DOMAIN_NOT_HOSTED, format!("domain \"{domain}\" is not hosted on this node (it is not in [domains] enabled here, or another node owns it now); retry, or send it to a node that enables it"),
    )
    .with("domain", domain)
}
