//! Environment overrides: `HERALD_<SECTION>__<KEY>=value` sets `section.key`.
//!
//! Only names with a double underscore after the prefix are overrides, so unrelated
//! variables that happen to start with `HERALD_` (such as `HERALD_BIN`) are ignored.
//! The variables are passed in as a list rather than read here, so tests can give
//! each case its own environment without racing on the process-wide one.

use figment::value::{Dict, Map, Value};
use figment::{Error, Metadata, Profile, Provider};

/// Prefix every override variable starts with.
const PREFIX: &str = "HERALD_";

/// Separator between path segments in a variable name.
const SEPARATOR: &str = "__";

/// The overrides found in one environment, in the order they were given.
pub(crate) struct EnvOverrides {
    variables: Vec<EnvVariable>,
}

/// One override: `HERALD_HTTP__BIND=0.0.0.0:80` has key `http.bind`.
///
/// Each variable is its own figment provider, so an error in its value names it.
struct EnvVariable {
    name: String,
    key: String,
    value: String,
}

impl EnvOverrides {
    /// Keeps the variables that are overrides and drops the rest.
    pub(crate) fn new<'a>(variables: impl IntoIterator<Item = &'a (String, String)>) -> Self {
        let variables = variables
            .into_iter()
            .filter_map(|(name, value)| {
                let key = override_key(name)?;
                Some(EnvVariable {
                    name: name.clone(),
                    key,
                    value: value.clone(),
                })
            })
            .collect();
        Self { variables }
    }

    /// Adds every override to `figment`, later variables winning over earlier ones.
    pub(crate) fn merge_into(&self, mut figment: figment::Figment) -> figment::Figment {
        for variable in &self.variables {
            figment = figment.merge(variable);
        }
        figment
    }

    /// Name and value of the variable that set the dotted `key`, if one did.
    pub(crate) fn variable_for(&self, key: &str) -> Option<(&str, &str)> {
        self.variables
            .iter()
            .rev()
            .find(|variable| variable.key == key)
            .map(|variable| (variable.name.as_str(), variable.value.as_str()))
    }
}

/// The dotted, lowercase config key a variable name overrides, or `None` when the
/// name is not an override.
fn override_key(name: &str) -> Option<String> {
    let head = name.get(..PREFIX.len())?;
    if !head.eq_ignore_ascii_case(PREFIX) {
        return None;
    }
    let rest = &name[PREFIX.len()..];
    if !rest.contains(SEPARATOR) {
        return None;
    }
    let segments: Vec<String> = rest.split(SEPARATOR).map(str::to_ascii_lowercase).collect();
    // An empty segment (`HERALD_HTTP__`) or a dot would build a path nobody meant;
    // figment's `Env` skips such names too.
    if segments
        .iter()
        .any(|segment| segment.is_empty() || segment.contains('.'))
    {
        return None;
    }
    Some(segments.join("."))
}

impl Provider for EnvVariable {
    fn metadata(&self) -> Metadata {
        Metadata::named(format!("environment variable {}", self.name))
    }

    fn data(&self) -> Result<Map<Profile, Dict>, Error> {
        // The same value syntax as figment's `Env`: numbers, booleans, `[a, b]` arrays.
        let value: Value = self.value.parse().unwrap_or_else(|never| match never {});
        let dict = figment::util::nest(&self.key, value)
            .into_dict()
            .expect("a non-empty dotted key nests into a dictionary");
        Ok(Profile::Default.collect(dict))
    }
}

#[cfg(test)]
mod tests {
    use super::{override_key, PREFIX, SEPARATOR};

    #[test]
    fn names_map_to_keys() {
        let check = |name: &str, expected: Option<&str>| {
            assert_eq!(override_key(name).as_deref(), expected, "variable {name}");
        };
        check("HERALD_HTTP__BIND", Some("http.bind"));
        check("herald_http__bind", Some("http.bind"));
        check(
            "HERALD_DOMAIN__ORDERS__MAILBOX_CAPACITY",
            Some("domain.orders.mailbox_capacity"),
        );
        check("HERALD_BIN", None);
        check("HERALD_LOG_LEVEL", None);
        // A typo still becomes a key, so the unknown-key error names the variable.
        check("HERALD_HTTP___BIND", Some("http._bind"));
        check("HERALD___BIND", None);
        check("HERALD_HTTP__", None);
        check("HERALD_A.B__C", None);
        check("OTHER_HTTP__BIND", None);
        check("HERALD", None);
    }

    /// The mapping matches figment's own `Env` configured the way the brief of this
    /// crate describes, so a node reading the process environment behaves the same.
    #[test]
    fn agrees_with_figment_env() {
        use figment::providers::Env;

        // Names unique to this test, so no other variable in the process interferes.
        let names = [
            "HERALD_ZZTESTBIN",
            "HERALD_ZZTEST__BIND",
            "HERALD_ZZTEST__ORDERS__MAILBOX_CAPACITY",
            "HERALD_ZZTEST___TYPO",
            "HERALD_ZZTEST__",
        ];
        for name in names {
            std::env::set_var(name, "1");
        }
        let figment_keys: Vec<String> = Env::prefixed(PREFIX)
            .split(SEPARATOR)
            .filter(|key| key.as_str().contains('.'))
            .iter()
            .map(|(key, _)| key.to_string())
            .filter(|key| key.starts_with("zztest"))
            .collect();
        for name in names {
            std::env::remove_var(name);
        }
        let mut ours: Vec<String> = names.iter().filter_map(|name| override_key(name)).collect();
        let mut figment_keys = figment_keys;
        ours.sort();
        figment_keys.sort();
        assert_eq!(ours, figment_keys);
        assert_eq!(
            ours,
            [
                "zztest._typo",
                "zztest.bind",
                "zztest.orders.mailbox_capacity"
            ]
        );
    }
}
