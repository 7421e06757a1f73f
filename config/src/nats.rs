//! `[bus.nats]`: where the NATS servers are and how Herald uses JetStream, for
//! `[bus] kind = "nats"` (networked mode; see `docs/design/networked-mode.md`).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::Problem;

/// `[bus.nats]`.
#[derive(Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NatsConfig {
    /// Server URLs (`nats://host:port` or `tls://host:port`); a list, or a comma-separated
    /// string so `HERALD_BUS__NATS__SERVERS=nats://a:4222,nats://b:4222` works.
    #[serde(
        default = "default_servers",
        deserialize_with = "crate::sections::string_or_list"
    )]
    pub servers: Vec<String>,
    /// User name, with exactly one password source.
    pub user: Option<String>,
    /// The variable holding the password (preferred).
    pub password_env: Option<String>,
    /// A file holding the password.
    pub password_file: Option<PathBuf>,
    /// The password itself (discouraged).
    pub password: Option<String>,
    /// The variable holding a token (preferred).
    pub token_env: Option<String>,
    /// A file holding a token.
    pub token_file: Option<PathBuf>,
    /// A token itself (discouraged).
    pub token: Option<String>,
    /// A NATS credentials file (JWT and nkey seed).
    pub creds_file: Option<PathBuf>,
    /// Prefix of every stream, bucket and subject Herald creates.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// Copies JetStream keeps of each stream: 1 to 5 (3 in production).
    #[serde(default = "default_replicas")]
    pub replicas: u8,
    /// Oldest message a stream keeps; zero keeps everything.
    #[serde(default, with = "crate::duration")]
    pub max_age: Duration,
    /// Largest size of a stream in bytes; zero is unlimited (a full stream refuses appends).
    #[serde(default)]
    pub max_bytes: u64,
    /// How long the server recognises a resent event by its `Nats-Msg-Id`.
    #[serde(default = "default_duplicate_window", with = "crate::duration")]
    pub duplicate_window: Duration,
    /// How long forwarding and JetStream API calls may take.
    #[serde(default = "default_request_timeout", with = "crate::duration")]
    pub request_timeout: Duration,
    /// How long a node owns a partition without renewing; 3s to 60s, the same on every
    /// node. A killed node's partitions move after about this long.
    #[serde(default = "default_lease", with = "crate::duration")]
    pub lease: Duration,
}

fn default_servers() -> Vec<String> {
    vec!["nats://127.0.0.1:4222".to_owned()]
}

fn default_prefix() -> String {
    "herald".to_owned()
}

fn default_replicas() -> u8 {
    1
}

fn default_duplicate_window() -> Duration {
    Duration::from_secs(120)
}

fn default_request_timeout() -> Duration {
    Duration::from_secs(5)
}

fn default_lease() -> Duration {
    // A killed node's streams are ready elsewhere within 5 s; renewals go out every
    // half second, so a 2 s stall still keeps every lease.
    Duration::from_secs(3)
}

impl Default for NatsConfig {
    fn default() -> Self {
        Self {
            servers: default_servers(),
            user: None,
            password_env: None,
            password_file: None,
            password: None,
            token_env: None,
            token_file: None,
            token: None,
            creds_file: None,
            prefix: default_prefix(),
            replicas: default_replicas(),
            max_age: Duration::ZERO,
            max_bytes: 0,
            duplicate_window: default_duplicate_window(),
            request_timeout: default_request_timeout(),
            lease: default_lease(),
        }
    }
}

impl fmt::Debug for NatsConfig {
    // Secrets never reach a log line, even through `{:?}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |set: bool| if set { Some("<redacted>") } else { None };
        f.debug_struct("NatsConfig")
            .field("servers", &self.servers)
            .field("user", &self.user)
            .field("password_env", &self.password_env)
            .field("password_file", &self.password_file)
            .field("password", &redacted(self.password.is_some()))
            .field("token_env", &self.token_env)
            .field("token_file", &self.token_file)
            .field("token", &redacted(self.token.is_some()))
            .field("creds_file", &self.creds_file)
            .field("prefix", &self.prefix)
            .field("replicas", &self.replicas)
            .field("max_age", &self.max_age)
            .field("max_bytes", &self.max_bytes)
            .field("duplicate_window", &self.duplicate_window)
            .field("request_timeout", &self.request_timeout)
            .field("lease", &self.lease)
            .finish()
    }
}

impl NatsConfig {
    /// Checks the section; every problem names its key under `bus.nats`.
    pub fn validate(&self, problems: &mut Vec<Problem>) {
        if self.servers.is_empty() {
            problems.push(Problem::new(
                "bus.nats.servers",
                "no server given; list at least one, such as \"nats://127.0.0.1:4222\"",
            ));
        }
        for server in &self.servers {
            if let Err(why) = check_url(server) {
                problems.push(Problem::new(
                    "bus.nats.servers",
                    format!("{server:?} {why}; write nats://HOST:PORT or tls://HOST:PORT"),
                ));
            }
        }
        let password_sources = [
            self.password_env.is_some(),
            self.password_file.is_some(),
            self.password.is_some(),
        ]
        .into_iter()
        .filter(|set| *set)
        .count();
        let token_sources = [
            self.token_env.is_some(),
            self.token_file.is_some(),
            self.token.is_some(),
        ]
        .into_iter()
        .filter(|set| *set)
        .count();
        let methods = [
            self.user.is_some() || password_sources > 0,
            token_sources > 0,
            self.creds_file.is_some(),
        ]
        .into_iter()
        .filter(|set| *set)
        .count();
        if methods > 1 {
            problems.push(Problem::new(
                "bus.nats",
                "more than one way to authenticate is set; use one of user and password, a token, or creds_file",
            ));
        }
        if self.user.is_some() != (password_sources > 0) || password_sources > 1 {
            problems.push(Problem::new(
                "bus.nats.user",
                format!(
                    "a user needs exactly one of password_env, password_file or password (has {password_sources}), and a password needs a user"
                ),
            ));
        }
        if token_sources > 1 {
            problems.push(Problem::new(
                "bus.nats.token",
                format!(
                    "a token needs exactly one of token_env, token_file or token; it has {token_sources}"
                ),
            ));
        }
        let valid_prefix = !self.prefix.is_empty()
            && self
                .prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid_prefix {
            problems.push(Problem::new(
                "bus.nats.prefix",
                format!(
                    "{:?} is not allowed; use letters, digits, '-' and '_' only (it names streams and subjects)",
                    self.prefix
                ),
            ));
        }
        if !(1..=5).contains(&self.replicas) {
            problems.push(Problem::new(
                "bus.nats.replicas",
                format!(
                    "{} is not allowed; JetStream keeps 1 to 5 copies",
                    self.replicas
                ),
            ));
        }
        if !self.max_age.is_zero() && self.duplicate_window > self.max_age {
            problems.push(Problem::new(
                "bus.nats.duplicate_window",
                format!(
                    "{:?} is longer than max_age ({:?}); a stream cannot recognise resends of messages it no longer keeps",
                    self.duplicate_window, self.max_age
                ),
            ));
        }
        if !(Duration::from_secs(3)..=Duration::from_secs(60)).contains(&self.lease) {
            problems.push(Problem::new(
                "bus.nats.lease",
                format!(
                    "{:?} is not allowed; give 3s to 60s (shorter moves partitions sooner after a crash, and also on a brief NATS hiccup)",
                    self.lease
                ),
            ));
        }
        if self.request_timeout.is_zero() {
            problems.push(Problem::new(
                "bus.nats.request_timeout",
                "0s is not allowed; give it time, such as \"5s\"",
            ));
        }
    }
}

/// The credentials of `[bus.nats]`, secrets read.
#[derive(Clone, PartialEq, Eq)]
pub enum NatsCredentials {
    /// None configured.
    None,
    /// User and password.
    UserPassword {
        /// The user.
        user: String,
        /// The password.
        password: String,
    },
    /// A token.
    Token(String),
    /// A `.creds` file.
    CredsFile(PathBuf),
}

impl fmt::Debug for NatsCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => f.write_str("None"),
            Self::UserPassword { user, .. } => write!(f, "UserPassword({user}, <redacted>)"),
            Self::Token(_) => f.write_str("Token(<redacted>)"),
            Self::CredsFile(path) => write!(f, "CredsFile({})", path.display()),
        }
    }
}

impl NatsConfig {
    /// Reads the configured secret from its variable (through `env`), file or the config;
    /// the error names the key and the variable or file that failed.
    pub fn credentials(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<NatsCredentials, String> {
        self.read_credentials(env)
            .map_err(|problem| problem.to_string())
    }

    /// [`NatsConfig::credentials`], failing with the key that holds the bad setting.
    pub(crate) fn read_credentials(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<NatsCredentials, Problem> {
        let secret = |key: &str,
                      variable: &Option<String>,
                      file: &Option<PathBuf>,
                      inline: &Option<String>|
         -> Result<Option<String>, Problem> {
            if let Some(name) = variable {
                return env(name)
                    .filter(|value| !value.is_empty())
                    .map(Some)
                    .ok_or_else(|| {
                        Problem::new(
                            format!("bus.nats.{key}_env"),
                            format!("the environment variable {name} is not set (or empty)"),
                        )
                    });
            }
            if let Some(path) = file {
                return std::fs::read_to_string(path)
                    .map(|text| Some(text.trim_end_matches(['\n', '\r']).to_owned()))
                    .map_err(|error| {
                        Problem::new(
                            format!("bus.nats.{key}_file"),
                            format!("cannot read {}: {error}", path.display()),
                        )
                    });
            }
            Ok(inline.clone())
        };
        if let Some(path) = &self.creds_file {
            return Ok(NatsCredentials::CredsFile(path.clone()));
        }
        if let Some(token) = secret("token", &self.token_env, &self.token_file, &self.token)? {
            return Ok(NatsCredentials::Token(token));
        }
        if let Some(user) = &self.user {
            let password = secret(
                "password",
                &self.password_env,
                &self.password_file,
                &self.password,
            )?
            .unwrap_or_default();
            return Ok(NatsCredentials::UserPassword {
                user: user.clone(),
                password,
            });
        }
        Ok(NatsCredentials::None)
    }
}

/// Whether `url` is `nats://` or `tls://` with a host and a port.
fn check_url(url: &str) -> Result<(), &'static str> {
    let rest = url
        .strip_prefix("nats://")
        .or_else(|| url.strip_prefix("tls://"))
        .ok_or("is not a nats:// or tls:// URL")?;
    // Credentials may precede the host: user:password@host:port.
    let host_port = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    let (host, port) = host_port.rsplit_once(':').ok_or("has no port")?;
    if host.is_empty() {
        return Err("has no host");
    }
    port.parse::<u16>()
        .map(|_| ())
        .map_err(|_| "has no valid port")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(config: &NatsConfig) -> Vec<String> {
        let mut problems = Vec::new();
        config.validate(&mut problems);
        problems.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn the_defaults_are_valid() {
        assert!(problems(&NatsConfig::default()).is_empty());
    }

    #[test]
    fn bad_urls_name_the_server() {
        let config = NatsConfig {
            servers: vec![
                "http://a:4222".into(),
                "nats://a".into(),
                "nats://:4222".into(),
                "tls://user:pw@b:4443".into(),
            ],
            ..NatsConfig::default()
        };
        let found = problems(&config);
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(found[0].contains("\"http://a:4222\" is not a nats:// or tls:// URL"));
        assert!(found[1].contains("has no port"));
        assert!(found[2].contains("has no host"));
    }

    #[test]
    fn auth_methods_are_exclusive_and_whole() {
        let two = NatsConfig {
            token_env: Some("T".into()),
            creds_file: Some("/x.creds".into()),
            ..NatsConfig::default()
        };
        assert!(problems(&two)[0].contains("more than one way to authenticate"));
        let user_only = NatsConfig {
            user: Some("herald".into()),
            ..NatsConfig::default()
        };
        assert!(problems(&user_only)[0].contains("a user needs exactly one of password_env"));
        let user = NatsConfig {
            user: Some("herald".into()),
            password_env: Some("P".into()),
            ..NatsConfig::default()
        };
        assert!(problems(&user).is_empty());
    }

    #[test]
    fn limits_name_their_key() {
        let config = NatsConfig {
            replicas: 7,
            prefix: "her ald".into(),
            max_age: Duration::from_secs(60),
            duplicate_window: Duration::from_secs(120),
            ..NatsConfig::default()
        };
        let found = problems(&config).join("\n");
        assert!(found.contains("bus.nats.replicas"), "{found}");
        assert!(found.contains("bus.nats.prefix"), "{found}");
        assert!(found.contains("bus.nats.duplicate_window"), "{found}");
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let config = NatsConfig {
            token: Some("s3cr3t-token-value".into()),
            ..NatsConfig::default()
        };
        assert!(!format!("{config:?}").contains("s3cr3t"));
    }
}
