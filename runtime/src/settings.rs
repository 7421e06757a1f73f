//! A domain's own settings: the keys of its `[domain.<name>]` table that the runtime does
//! not read itself, handed to [`crate::Domain::configure`].
//!
//! Settings are configuration, not state: a domain keeps what it reads in fields it does
//! not serialize, and the runtime configures every fresh or restored state, so a changed
//! setting takes effect at the next start without touching snapshots. A decision that must
//! replay the same (a deadline) is logged when made, never recomputed from settings.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use herald_config::figment::value::Value;

/// The raw values of one domain's own settings, by key.
pub type SettingValues = Arc<BTreeMap<String, Value>>;

/// What [`crate::Domain::configure`] reads its settings from.
#[derive(Debug)]
pub struct Settings {
    domain: &'static str,
    values: SettingValues,
    read: RefCell<BTreeSet<String>>,
}

/// A setting with a value the domain cannot take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("domain.{domain}.{key}: {message}")]
pub struct SettingsError {
    /// The domain.
    pub domain: &'static str,
    /// The key.
    pub key: String,
    /// What is wrong and what to write instead.
    pub message: String,
}

impl Settings {
    /// `domain`'s settings `values`.
    pub fn new(domain: &'static str, values: SettingValues) -> Self {
        Self {
            domain,
            values,
            read: RefCell::new(BTreeSet::new()),
        }
    }

    /// Duration `key` (`"15m"`, `"90s"`, or whole seconds), `default` when absent.
    pub fn duration(&self, key: &str, default: Duration) -> Result<Duration, SettingsError> {
        self.read.borrow_mut().insert(key.to_owned());
        let Some(value) = self.values.get(key) else {
            return Ok(default);
        };
        let parsed = match value {
            Value::String(_, text) => herald_config::duration::parse(text),
            Value::Num(_, number) => number
                .to_u128()
                .and_then(|seconds| u64::try_from(seconds).ok())
                .map(Duration::from_secs)
                .ok_or_else(|| format!("{number:?} is not a whole number of seconds")),
            _ => Err(format!(
                "expected a duration; {}",
                herald_config::duration::FORMS
            )),
        };
        parsed.map_err(|message| self.error(key, message))
    }

    /// The keys no call has read: not settings of this domain.
    pub fn unread(&self) -> Vec<String> {
        let read = self.read.borrow();
        self.values
            .keys()
            .filter(|key| !read.contains(*key))
            .cloned()
            .collect()
    }

    /// The keys some call has read: the domain's settings, for "did you mean".
    pub fn known(&self) -> Vec<String> {
        self.read.borrow().iter().cloned().collect()
    }

    /// An error about `key`.
    pub fn error(&self, key: &str, message: impl Into<String>) -> SettingsError {
        SettingsError {
            domain: self.domain,
            key: key.to_owned(),
            message: message.into(),
        }
    }
}
