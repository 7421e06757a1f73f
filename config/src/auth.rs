//! `[auth]`: bearer tokens with scopes. Off by default for the local quick start.
//!
//! A token's secret comes from an environment variable (`token_env`, preferred), a file
//! (`token_file`) or, for experiments, the config itself (`token`). Secrets are never
//! printed: [`Credential`]'s `Debug` redacts them.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::Problem;
use crate::validate::KnownDomains;

/// `[auth]`: whether requests need a bearer token, and which tokens there are.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Require a bearer token on every request but `/healthz` and `/readyz`.
    #[serde(default)]
    pub enabled: bool,
    /// The accepted tokens, as `[[auth.tokens]]` tables.
    #[serde(default)]
    pub tokens: Vec<TokenConfig>,
    /// Serve `GET /metrics` without a token even when auth is on (for a scraper on a
    /// trusted network); otherwise it needs the `metrics` scope.
    #[serde(default)]
    pub metrics_open: bool,
}

/// One `[[auth.tokens]]` entry: where its secret is and what it may do.
#[derive(Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// A name for logs and errors (never the secret).
    pub name: String,
    /// Environment variable holding the secret.
    #[serde(default)]
    pub token_env: Option<String>,
    /// File holding the secret (surrounding whitespace is ignored).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// The secret itself; prefer `token_env` or `token_file`, config files get shared.
    #[serde(default)]
    pub token: Option<String>,
    /// What the token may do.
    pub scopes: Vec<Scope>,
    /// The domains it may do it on; empty means every domain.
    #[serde(default)]
    pub domains: Vec<String>,
}

impl fmt::Debug for TokenConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenConfig")
            .field("name", &self.name)
            .field("token_env", &self.token_env)
            .field("token_file", &self.token_file)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("scopes", &self.scopes)
            .field("domains", &self.domains)
            .finish()
    }
}

/// What a token allows; lowercase in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// POST events.
    Publish,
    /// Read the topology, entities, queries and streams.
    Query,
    /// Operate the node (dead letters, cluster, log tools).
    Admin,
    /// Read `GET /metrics`.
    Metrics,
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Publish => "publish",
            Self::Query => "query",
            Self::Admin => "admin",
            Self::Metrics => "metrics",
        })
    }
}

/// A token with its secret read: what the gateway checks requests against.
#[derive(Clone)]
pub struct Credential {
    /// The token's name.
    pub name: String,
    /// The secret a client presents.
    pub secret: String,
    /// What it may do.
    pub scopes: Vec<Scope>,
    /// Where; empty means every domain.
    pub domains: Vec<String>,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("name", &self.name)
            .field("secret", &"<redacted>")
            .field("scopes", &self.scopes)
            .field("domains", &self.domains)
            .finish()
    }
}

impl AuthConfig {
    /// Reads every token's secret (`env` looks a variable up) and checks the entries;
    /// reports every problem, each naming the token's key.
    pub fn credentials(
        &self,
        known_domains: &[&str],
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Vec<Credential>, Vec<Problem>> {
        let mut problems = Vec::new();
        let mut credentials = Vec::new();
        let known = KnownDomains::new(known_domains);
        if self.enabled && self.tokens.is_empty() {
            problems.push(Problem::new(
                "auth.tokens",
                "auth is enabled but no token is configured; add an [[auth.tokens]] entry, or set enabled = false",
            ));
        }
        for (index, token) in self.tokens.iter().enumerate() {
            let key = format!("auth.tokens[{index}]");
            let sources = [
                token.token_env.is_some(),
                token.token_file.is_some(),
                token.token.is_some(),
            ]
            .iter()
            .filter(|set| **set)
            .count();
            if sources != 1 {
                problems.push(Problem::new(
                    &key,
                    format!(
                        "token \"{}\" needs exactly one of token_env, token_file or token; it has {sources}",
                        token.name
                    ),
                ));
                continue;
            }
            let secret = if let Some(variable) = &token.token_env {
                env(variable).ok_or_else(|| {
                    format!(
                        "token \"{}\": environment variable {variable} is not set",
                        token.name
                    )
                })
            } else if let Some(path) = &token.token_file {
                std::fs::read_to_string(path)
                    .map(|text| text.trim().to_owned())
                    .map_err(|error| {
                        format!(
                            "token \"{}\": cannot read token_file {}: {error}",
                            token.name,
                            path.display()
                        )
                    })
            } else {
                Ok(token.token.clone().unwrap_or_default())
            };
            let secret = match secret {
                Ok(secret) if secret.len() >= 16 => secret,
                Ok(_) => {
                    problems.push(Problem::new(
                        &key,
                        format!(
                            "token \"{}\" is shorter than 16 characters; use a long random secret",
                            token.name
                        ),
                    ));
                    continue;
                }
                Err(message) => {
                    problems.push(Problem::new(&key, message));
                    continue;
                }
            };
            if token.scopes.is_empty() {
                problems.push(Problem::new(
                    format!("{key}.scopes"),
                    format!(
                        "token \"{}\" has no scopes; give it some of: publish, query, admin, metrics",
                        token.name
                    ),
                ));
            }
            for domain in &token.domains {
                if !known.contains(domain) {
                    problems.push(Problem::new(
                        format!("{key}.domains"),
                        format!(
                            "token \"{}\" names unknown domain \"{domain}\"; {}",
                            token.name,
                            known.hint(domain)
                        ),
                    ));
                }
            }
            credentials.push(Credential {
                name: token.name.clone(),
                secret,
                scopes: token.scopes.clone(),
                domains: token.domains.clone(),
            });
        }
        if problems.is_empty() {
            Ok(credentials)
        } else {
            Err(problems)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(name: &str) -> TokenConfig {
        TokenConfig {
            name: name.into(),
            token_env: None,
            token_file: None,
            token: None,
            scopes: vec![Scope::Query],
            domains: Vec::new(),
        }
    }

    #[test]
    fn every_problem_names_its_token() {
        let auth = AuthConfig {
            enabled: true,
            tokens: vec![
                token("no-source"),
                TokenConfig {
                    token: Some("short".into()),
                    ..token("short")
                },
                TokenConfig {
                    token_env: Some("UNSET_VARIABLE".into()),
                    ..token("unset")
                },
                TokenConfig {
                    token: Some("a-long-enough-secret".into()),
                    scopes: Vec::new(),
                    domains: vec!["nowhere".into()],
                    ..token("bad")
                },
            ],
            metrics_open: false,
        };
        let problems = auth.credentials(&["orders"], &|_| None).unwrap_err();
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert!(
            text[0].contains("auth.tokens[0]") && text[0].contains("exactly one"),
            "{text:?}"
        );
        assert!(text[1].contains("shorter than 16"), "{text:?}");
        assert!(text[2].contains("UNSET_VARIABLE"), "{text:?}");
        assert!(text[3].contains("no scopes"), "{text:?}");
        assert!(text[4].contains("unknown domain \"nowhere\""), "{text:?}");
    }

    #[test]
    fn secrets_come_from_the_environment_and_are_never_printed() {
        let auth = AuthConfig {
            enabled: true,
            tokens: vec![TokenConfig {
                token_env: Some("SECRET".into()),
                ..token("reader")
            }],
            metrics_open: false,
        };
        let credentials = auth
            .credentials(&["orders"], &|name| {
                (name == "SECRET").then(|| "from-the-environment-123".to_owned())
            })
            .unwrap();
        assert_eq!(credentials[0].secret, "from-the-environment-123");
        assert!(!format!("{credentials:?}").contains("from-the-environment"));
        let inline = TokenConfig {
            token: Some("inline-secret-value-1".into()),
            ..token("inline")
        };
        assert!(!format!("{inline:?}").contains("inline-secret"));
    }
}
