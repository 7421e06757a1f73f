//! Typed configuration for a Herald node.
//!
//! A node reads one TOML file (see `config/herald.toml`, also available as
//! [`SAMPLE_CONFIG`]), lets environment variables of the form
//! `HERALD_<SECTION>__<KEY>` override single keys, and validates the result. Every
//! error names the key, the file or variable it came from, and what is allowed.
//!
//! ```no_run
//! # fn main() -> Result<(), herald_config::ConfigError> {
//! let config = herald_config::Config::load("herald.toml".as_ref(), &["orders", "payments"])?;
//! println!("listening on {}", config.bind_addr());
//! # Ok(())
//! # }
//! ```
//!
//! # Layout
//!
//! - `lib.rs`: [`Config`], the root of the file, and loading it.
//! - `sections.rs`: one struct per section (`[node]`, `[http]`, ...) with its defaults.
//! - `duration.rs`: reading and writing durations such as `"60s"` (serde helper).
//! - `auth.rs`: `[auth]`, bearer tokens with scopes, and reading their secrets.
//! - `env.rs`: turning `HERALD_*__*` variables into overrides.
//! - `validate.rs`: the rules types cannot express, all checked in one pass.
//! - `error.rs`: [`ConfigError`] and [`Problem`], worded for the person editing the file.

mod auth;
pub mod duration;
mod env;
mod error;
mod nats;
mod nearest;
mod sections;
mod validate;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use figment::providers::{Format, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

pub use crate::auth::{AuthConfig, Credential, Scope, TokenConfig};
use crate::env::EnvOverrides;
pub use crate::error::{ConfigError, Problem};
pub use crate::nats::{NatsConfig, NatsCredentials};
pub use crate::nearest::nearest;
pub use crate::sections::{
    BusConfig, BusKind, DedupWindow, DomainSettings, DomainsConfig, FsyncPolicy, HttpConfig,
    LogConfig, LogFormat, NodeConfig, TelemetryConfig, MAX_PARTITIONS, RUNTIME_DOMAIN_KEYS,
};
/// Re-exported: the values of a domain's own settings are figment values.
pub use figment;

/// The commented sample configuration, every key at its default.
pub const SAMPLE_CONFIG: &str = include_str!("../herald.toml");

/// A whole `herald.toml`; missing sections and keys take their defaults.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `[node]`: identity and data directory.
    pub node: NodeConfig,
    /// `[http]`: the ingress server.
    pub http: HttpConfig,
    /// `[bus]`: the event bus.
    pub bus: BusConfig,
    /// `[log]`: the durable event log.
    pub log: LogConfig,
    /// `[domains]`: which domains run on this node.
    pub domains: DomainsConfig,
    /// `[domain.<name>]`: per-domain tuning, keyed by domain name.
    pub domain: BTreeMap<String, DomainSettings>,
    /// `[telemetry]`: logging level and format.
    pub telemetry: TelemetryConfig,
    /// `[auth]`: bearer tokens and their scopes.
    pub auth: AuthConfig,
}

impl Config {
    /// Loads `path` with overrides from the process environment, then validates it
    /// against the registered `known_domains`.
    pub fn load(path: &Path, known_domains: &[&str]) -> Result<Config, ConfigError> {
        let env: Vec<(String, String)> = std::env::vars_os()
            .filter_map(|(name, value)| Some((name.into_string().ok()?, value.into_string().ok()?)))
            .collect();
        Self::load_from(path, known_domains, &env)
    }

    /// Like [`Config::load`], but takes the environment as `(name, value)` pairs.
    ///
    /// Only `HERALD_<SECTION>__<KEY>` names are overrides (`__` separates path
    /// segments, case does not matter); every other pair is ignored.
    pub fn load_from(
        path: &Path,
        known_domains: &[&str],
        env: &[(String, String)],
    ) -> Result<Config, ConfigError> {
        // figment reports a missing file as a generic I/O message; name it plainly.
        if !path.exists() {
            return Err(ConfigError::NotFound {
                file: path.to_owned(),
            });
        }
        let overrides = EnvOverrides::new(env);
        let figment = overrides.merge_into(Figment::from(Toml::file_exact(path)));
        let config: Config = figment.extract().map_err(|error| ConfigError::Parse {
            file: path.to_owned(),
            message: error::describe_figment_error(error, &overrides),
        })?;
        let lookup = |name: &str| {
            env.iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.clone())
        };
        let validated = config.validate(known_domains).and_then(|()| {
            let mut problems = config
                .auth
                .credentials(known_domains, &lookup)
                .err()
                .unwrap_or_default();
            // A networked node reads its NATS secret when it starts: a missing one is a
            // config error here, not a surprise at `herald run`.
            if config.bus.kind == BusKind::Nats {
                if let Err(problem) = config.bus.nats.read_credentials(&lookup) {
                    problems.push(problem);
                }
            }
            match problems.is_empty() {
                true => Ok(()),
                false => Err(problems),
            }
        });
        validated.map_err(|problems| {
            // Name the variable when an override, not the file, holds the bad value.
            let problems = problems
                .into_iter()
                .map(|mut problem| {
                    let key = problem.key.split('[').next().unwrap_or(&problem.key);
                    if let Some((name, _)) = overrides.variable_for(key) {
                        problem
                            .message
                            .push_str(&format!(" (in environment variable {name})"));
                    }
                    problem
                })
                .collect();
            ConfigError::Invalid {
                file: path.to_owned(),
                problems,
            }
        })?;
        Ok(config)
    }

    /// The domains to start: the `domains.enabled` list, or all of `known` when it is empty.
    pub fn enabled_domains(&self, known: &[&str]) -> Vec<String> {
        match self.domains.enabled.is_empty() {
            true => known.iter().map(|name| (*name).to_owned()).collect(),
            false => self.domains.enabled.clone(),
        }
    }

    /// The parsed `http.bind` address.
    ///
    /// # Panics
    ///
    /// When `http.bind` is not a socket address, which [`Config::validate`] rules out
    /// for every loaded configuration.
    pub fn bind_addr(&self) -> SocketAddr {
        self.http
            .bind
            .parse()
            .expect("http.bind is a socket address: Config::validate checks it")
    }

    /// The `[domain.<name>]` settings, or the defaults when the file has no such table.
    pub fn domain_settings(&self, name: &str) -> DomainSettings {
        self.domain.get(name).cloned().unwrap_or_default()
    }

    /// The partitions the config gives domain `name` if it is keyed by key: its own
    /// setting, else `[domains] partitions`; `None` when neither is set.
    pub fn partitions(&self, name: &str) -> Option<u32> {
        self.domain
            .get(name)
            .and_then(|settings| settings.partitions)
            .or(self.domains.partitions)
    }
}
