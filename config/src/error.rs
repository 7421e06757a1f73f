//! Why a configuration could not be loaded, worded for the person editing the file.

use std::fmt;
use std::path::PathBuf;

use figment::error::Kind;

use crate::env::EnvOverrides;

/// A configuration that could not be loaded; `Display` is a multi-line report.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The configuration file does not exist.
    #[error(
        "configuration file {} does not exist; create it (config/herald.toml in the \
         source tree is a commented sample) or pass the path of an existing file",
        file.display()
    )]
    NotFound {
        /// The path that was looked up.
        file: PathBuf,
    },
    /// The file or an override could not be read into the typed sections: bad TOML,
    /// an unknown key, a value of the wrong type.
    #[error("invalid configuration in {}:\n{message}", file.display())]
    Parse {
        /// The configuration file.
        file: PathBuf,
        /// One `  - ` line per error figment found, each naming its key and source.
        message: String,
    },
    /// The values parsed but some are not allowed; every such problem is listed.
    #[error("invalid configuration in {}:{}", file.display(), Bullets(problems))]
    Invalid {
        /// The configuration file.
        file: PathBuf,
        /// Every problem found, in key order.
        problems: Vec<Problem>,
    },
}

/// One value that is not allowed: `http.bind: "x" is not a socket address; ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key of the value, such as `http.bind` or `domains.enabled[2]`.
    pub key: String,
    /// What is wrong with the value, quoting it, and what is allowed instead.
    pub message: String,
}

impl Problem {
    pub(crate) fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Writes each item on its own `  - ` line, each line preceded by a newline.
struct Bullets<'a>(&'a [Problem]);

impl fmt::Display for Bullets<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0
            .iter()
            .try_for_each(|problem| write!(f, "\n{}", bullet(&problem.to_string())))
    }
}

/// `  - first line`, with any further lines indented under it.
fn bullet(text: &str) -> String {
    format!("  - {}", text.trim_end().replace('\n', "\n    "))
}

/// Renders every error figment chained together, one bullet each, naming the key and
/// where its value came from: the file, or the environment variable that set it.
pub(crate) fn describe_figment_error(error: figment::Error, env: &EnvOverrides) -> String {
    let lines: Vec<String> = error
        .into_iter()
        .map(|error| bullet(&describe_one(&error, env)))
        .collect();
    lines.join("\n")
}

fn describe_one(error: &figment::Error, env: &EnvOverrides) -> String {
    let key = error.path.join(".");
    // Ask the overrides first: figment tags a table built from both the file and the
    // environment with the file, which would blame the file for an override's key.
    let variable = env.variable_for(&key);
    let origin = match (variable, &error.metadata) {
        (Some((name, _)), _) => format!("environment variable {name}"),
        (None, Some(metadata)) => match &metadata.source {
            Some(source) => source.to_string(),
            None => metadata.name.to_string(),
        },
        (None, None) => "unknown source".to_owned(),
    };
    let mut message = match &error.kind {
        Kind::UnknownField(_, allowed) => {
            let section = match error.path.split_last() {
                Some((_, parents)) if !parents.is_empty() => format!("[{}]", parents.join(".")),
                _ => "the top level".to_owned(),
            };
            match allowed.is_empty() {
                true => format!("unknown key; {section} takes no keys yet"),
                false => format!("unknown key; {section} allows: {}", allowed.join(", ")),
            }
        }
        Kind::UnknownVariant(value, allowed) => {
            format!(
                "unknown value {value:?}; allowed values are: {}",
                allowed.join(", ")
            )
        }
        kind => kind.to_string(),
    };
    // The environment syntax reads `7` or `true` as a number or boolean; say how to
    // keep it text.
    if let (Some((name, value)), Kind::InvalidType(_, expected)) = (variable, &error.kind) {
        if expected == "a string" {
            message.push_str(&format!(
                "; quote it to pass it as text: {name}='\"{value}\"'"
            ));
        }
    }
    match key.is_empty() {
        true => format!("{origin}: {message}"),
        false => format!("{key}: {message} (in {origin})"),
    }
}
