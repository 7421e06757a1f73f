//! Semantic checks run after parsing: every rule a type cannot express.
//!
//! All rules run and every failure is collected, so the user fixes them in one pass.

use std::net::SocketAddr;

use crate::error::Problem;
use crate::nearest::nearest;
use crate::sections::{
    MAX_BODY_TIMEOUT, MAX_HEADER_BYTES, MAX_PARTITIONS, MAX_SEGMENT_BYTES, MIN_BODY_TIMEOUT,
    MIN_CACHE_BYTES, MIN_HEADER_BYTES, MIN_SEGMENT_BYTES,
};
use crate::Config;

/// The largest request body the node may be configured to take.
const MAX_BODY_BYTES: usize = 16 << 20;

/// The most connections the node may be configured to hold: far beyond what one process
/// serves well, and low enough that the HTTP server's own per-worker cap stays above it.
const MAX_CONNECTIONS: usize = 100_000;

impl Config {
    /// Checks every value against its rules and the registered `known_domains`,
    /// returning all problems found (in file order) rather than the first.
    pub fn validate(&self, known_domains: &[&str]) -> Result<(), Vec<Problem>> {
        let mut problems = Vec::new();
        let known = KnownDomains::new(known_domains);

        if self.node.id.trim().is_empty() {
            problems.push(Problem::new(
                "node.id",
                "\"\" is empty; give the node a name such as \"herald-1\"",
            ));
        }
        if self.node.data_dir.as_os_str().is_empty() {
            problems.push(Problem::new(
                "node.data_dir",
                "\"\" is empty; give a directory such as \"./data\"",
            ));
        }

        if self.http.bind.parse::<SocketAddr>().is_err() {
            problems.push(Problem::new(
                "http.bind",
                format!(
                    "{:?} is not a socket address; write it as IP:PORT, for example 127.0.0.1:8080",
                    self.http.bind
                ),
            ));
        }
        positive(
            &mut problems,
            "http.max_body_bytes",
            self.http.max_body_bytes,
        );
        if self.http.max_body_bytes > MAX_BODY_BYTES {
            problems.push(Problem::new(
                "http.max_body_bytes",
                format!(
                    "{} is not allowed; use at most {MAX_BODY_BYTES} (16 MiB): one event is one log record, and records are limited to 64 MiB",
                    self.http.max_body_bytes
                ),
            ));
        }
        if let Some(workers) = self.http.workers {
            positive(&mut problems, "http.workers", workers);
        }
        positive(
            &mut problems,
            "http.max_batch_events",
            self.http.max_batch_events,
        );
        positive(
            &mut problems,
            "http.max_event_bytes",
            self.http.max_event_bytes,
        );
        if self.http.max_event_bytes > MAX_BODY_BYTES {
            problems.push(Problem::new(
                "http.max_event_bytes",
                format!(
                    "{} is not allowed; use at most {MAX_BODY_BYTES} (16 MiB), the largest body a node takes",
                    self.http.max_event_bytes
                ),
            ));
        }
        let header_bytes = self.http.max_header_bytes;
        if !(MIN_HEADER_BYTES..=MAX_HEADER_BYTES).contains(&header_bytes) {
            problems.push(Problem::new(
                "http.max_header_bytes",
                format!(
                    "{header_bytes} is not allowed; use a value from {MIN_HEADER_BYTES} (1 KiB) to {MAX_HEADER_BYTES} (64 KiB): the HTTP layer itself refuses request heads over 128 KiB"
                ),
            ));
        }
        positive(
            &mut problems,
            "http.max_connections",
            self.http.max_connections,
        );
        if self.http.max_connections > MAX_CONNECTIONS {
            problems.push(Problem::new(
                "http.max_connections",
                format!(
                    "{} is not allowed; use at most {MAX_CONNECTIONS}",
                    self.http.max_connections
                ),
            ));
        }

        let body_timeout = self.http.body_timeout;
        if !(MIN_BODY_TIMEOUT..=MAX_BODY_TIMEOUT).contains(&body_timeout) {
            problems.push(Problem::new(
                "http.body_timeout",
                format!(
                    "{} is not allowed; use a duration from \"1s\" to \"10m\"",
                    crate::duration::format(body_timeout)
                ),
            ));
        }
        positive(&mut problems, "http.max_tails", self.http.max_tails);
        if self.http.max_tails > MAX_CONNECTIONS {
            problems.push(Problem::new(
                "http.max_tails",
                format!(
                    "{} is not allowed; use at most {MAX_CONNECTIONS}: each tail holds a connection",
                    self.http.max_tails
                ),
            ));
        }
        if self.http.bodies_in_flight_bytes < self.http.max_body_bytes {
            problems.push(Problem::new(
                "http.bodies_in_flight_bytes",
                format!(
                    "{} is not allowed; use at least http.max_body_bytes ({}), or no body could ever be read whole",
                    self.http.bodies_in_flight_bytes, self.http.max_body_bytes
                ),
            ));
        }
        if self.log.cache_bytes < MIN_CACHE_BYTES {
            problems.push(Problem::new(
                "log.cache_bytes",
                format!(
                    "{} is not allowed; use at least {MIN_CACHE_BYTES} (1 MiB)",
                    self.log.cache_bytes
                ),
            ));
        }
        let segment_bytes = self.log.segment_bytes;
        if !(MIN_SEGMENT_BYTES..=MAX_SEGMENT_BYTES).contains(&segment_bytes) {
            problems.push(Problem::new(
                "log.segment_bytes",
                format!(
                    "{segment_bytes} is not allowed; use a value from {MIN_SEGMENT_BYTES} (4 KiB) to {MAX_SEGMENT_BYTES} (4 GiB)"
                ),
            ));
        }
        if self.log.dedup_window.is_empty() {
            problems.push(Problem::new(
                "log.dedup_window",
                format!(
                    "{} is not allowed; use a count of at least 1 event, or a duration longer than zero such as \"24h\"",
                    self.log.dedup_window.to_toml()
                ),
            ));
        }

        for (index, name) in self.domains.enabled.iter().enumerate() {
            let key = format!("domains.enabled[{index}]");
            if !known.contains(name) {
                problems.push(Problem::new(
                    key,
                    format!("unknown domain {name:?}; {}", known.hint(name)),
                ));
            } else if let Some(first) = self.domains.enabled[..index]
                .iter()
                .position(|earlier| earlier == name)
            {
                problems.push(Problem::new(
                    key,
                    format!("{name:?} is already listed at domains.enabled[{first}]; list each domain once"),
                ));
            }
        }

        for (name, settings) in &self.domain {
            if !known.contains(name) {
                problems.push(Problem::new(
                    format!("domain.{name}"),
                    format!("settings for unknown domain {name:?}; {}", known.hint(name)),
                ));
            }
            positive(
                &mut problems,
                &format!("domain.{name}.mailbox_capacity"),
                settings.mailbox_capacity,
            );
            positive(
                &mut problems,
                &format!("domain.{name}.retry_attempts"),
                settings.retry_attempts as usize,
            );
            positive(
                &mut problems,
                &format!("domain.{name}.max_parked_keys"),
                settings.max_parked_keys,
            );
            if let Some(partitions) = settings.partitions {
                partition_count(
                    &mut problems,
                    &format!("domain.{name}.partitions"),
                    partitions,
                );
            }
            if settings.retry_backoff > settings.retry_backoff_max {
                problems.push(Problem::new(
                    format!("domain.{name}.retry_backoff"),
                    format!(
                        "{:?} is longer than retry_backoff_max ({:?}); make the first wait no longer than the longest",
                        settings.retry_backoff, settings.retry_backoff_max
                    ),
                ));
            }
        }
        positive(
            &mut problems,
            "domains.restart_limit",
            self.domains.restart_limit as usize,
        );

        if let Some(partitions) = self.domains.partitions {
            partition_count(&mut problems, "domains.partitions", partitions);
        }

        self.bus.nats.validate(&mut problems);

        if self.telemetry.level.trim().is_empty() {
            problems.push(Problem::new(
                "telemetry.level",
                "\"\" is empty; give a tracing filter such as \"info\" or \"herald=debug,warn\"",
            ));
        }

        if let Some(endpoint) = &self.telemetry.otlp_endpoint {
            let scheme = endpoint.split_once("://").map(|(scheme, _)| scheme);
            let host = endpoint.split_once("://").map_or("", |(_, rest)| rest);
            // Plain HTTP only: spans go to a collector beside the node, which forwards them
            // with TLS where it must (the node carries no TLS stack for this).
            if scheme != Some("http") || host.trim_matches('/').is_empty() {
                problems.push(Problem::new(
                    "telemetry.otlp_endpoint",
                    format!("{endpoint:?} is not an http:// URL; give the OTLP/HTTP receiver's base URL, such as \"http://localhost:4318\" (for TLS, run an OpenTelemetry Collector beside the node)"),
                ));
            }
        }

        match problems.is_empty() {
            true => Ok(()),
            false => Err(problems),
        }
    }
}

/// Records a problem when a partition count is outside 1..=[`MAX_PARTITIONS`].
fn partition_count(problems: &mut Vec<Problem>, key: &str, value: u32) {
    if !(1..=MAX_PARTITIONS).contains(&value) {
        problems.push(Problem::new(
            key,
            format!("{value} is not allowed; a domain has 1 to {MAX_PARTITIONS} partitions"),
        ));
    }
}

/// Records a problem when a count or size that must be at least one is zero.
fn positive(problems: &mut Vec<Problem>, key: &str, value: usize) {
    if value == 0 {
        problems.push(Problem::new(
            key,
            format!("{value} is not allowed; use a value of at least 1"),
        ));
    }
}

/// The registered domain names, sorted so messages list them the same way every time.
pub(crate) struct KnownDomains<'a> {
    names: Vec<&'a str>,
}

impl<'a> KnownDomains<'a> {
    pub(crate) fn new(names: &[&'a str]) -> Self {
        let mut names = names.to_vec();
        names.sort_unstable();
        names.dedup();
        Self { names }
    }

    pub(crate) fn contains(&self, name: &str) -> bool {
        self.names.binary_search(&name).is_ok()
    }

    /// For the end of a message about unknown domain `name`: `did you mean "orders"?`
    /// when a known name is a slip of the keyboard away, else every known name.
    pub(crate) fn hint(&self, name: &str) -> String {
        match nearest(name, self.names.iter().copied()) {
            Some(nearest) => format!("did you mean \"{nearest}\"?"),
            None if self.names.is_empty() => "no domains are registered".to_owned(),
            None => format!("known domains are: {}", self.names.join(", ")),
        }
    }
}
