//! Loading `herald.toml` with environment overrides: one `check` per case.

#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::{Path, PathBuf};

use herald_config::{Config, ConfigError, DomainSettings, LogFormat, SAMPLE_CONFIG};

const KNOWN: &[&str] = &["analytics", "inventory", "orders", "payments", "shipping"];

/// What loading a case should produce.
enum Expected<'a> {
    /// This config: the defaults changed by the function.
    Config(fn(&mut Config)),
    /// A parse error whose report contains every fragment.
    Parse(&'a [&'a str]),
    /// Exactly these problems, rendered.
    Invalid(&'a [&'a str]),
}

fn load(path: &Path, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect();
    Config::load_from(path, KNOWN, &env)
}

/// Writes `toml` to a temporary file, loads it with `env`, and compares.
fn check(toml: &str, env: &[(&str, &str)], expected: Expected<'_>) {
    let mut file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    file.write_all(toml.as_bytes()).unwrap();
    let result = load(file.path(), env);
    let case = format!("toml:\n{toml}\nenv: {env:?}\nresult: {result:#?}");
    match (expected, result) {
        (Expected::Config(edit), Ok(config)) => {
            let mut want = Config::default();
            edit(&mut want);
            assert_eq!(config, want, "{case}");
        }
        (Expected::Parse(fragments), Err(error @ ConfigError::Parse { .. })) => {
            let report = error.to_string();
            let first_line = format!("invalid configuration in {}:", file.path().display());
            assert!(report.starts_with(&first_line), "{case}\nreport:\n{report}");
            for fragment in fragments {
                assert!(
                    report.contains(fragment),
                    "missing {fragment:?}\n{case}\nreport:\n{report}"
                );
            }
        }
        (Expected::Invalid(want), Err(error @ ConfigError::Invalid { .. })) => {
            let mut lines = vec![format!(
                "invalid configuration in {}:",
                file.path().display()
            )];
            lines.extend(want.iter().map(|problem| format!("  - {problem}")));
            assert_eq!(error.to_string(), lines.join("\n"), "{case}");
        }
        (_, _) => panic!("unexpected outcome\n{case}"),
    }
}

fn sample_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("herald.toml")
}

fn all_known(config: &mut Config) {
    config.domains.enabled = KNOWN.iter().map(|name| (*name).to_owned()).collect();
}

#[test]
fn defaults() {
    check("", &[], Expected::Config(|_| {}));
    check(
        "[node]\n[http]\n[bus]\n[log]\n[domains]\n[telemetry]\n",
        &[],
        Expected::Config(|_| {}),
    );
    check(
        "[http]\nworkers = 4\n[telemetry]\nformat = \"json\"\n[domain.orders]\n",
        &[],
        Expected::Config(|config| {
            config.http.workers = Some(4);
            config.telemetry.format = LogFormat::Json;
            config
                .domain
                .insert("orders".into(), DomainSettings::default());
        }),
    );
    let config = Config::default();
    assert_eq!(config.bind_addr(), "127.0.0.1:8080".parse().unwrap());
    assert_eq!(config.http.max_body_bytes, 1_048_576);
    assert_eq!(config.domain_settings("orders").mailbox_capacity, 1024);
    assert_eq!(config.enabled_domains(KNOWN), KNOWN);
}

#[test]
fn sample_file_is_the_defaults_with_every_domain() {
    let config = load(&sample_path(), &[]).unwrap();
    let mut want = Config::default();
    all_known(&mut want);
    assert_eq!(config, want);
    check(SAMPLE_CONFIG, &[], Expected::Config(all_known));
}

#[test]
fn environment_overrides() {
    check(
        "[http]\nbind = \"127.0.0.1:1\"\n",
        &[
            ("HERALD_HTTP__BIND", "0.0.0.0:9090"),
            ("HERALD_NODE__DATA_DIR", "/var/lib/herald"),
        ],
        Expected::Config(|config| {
            config.http.bind = "0.0.0.0:9090".into();
            config.node.data_dir = "/var/lib/herald".into();
        }),
    );
    check(
        "[domains]\nenabled = [\"shipping\"]\n",
        &[("HERALD_DOMAINS__ENABLED", " orders, ,analytics,")],
        Expected::Config(|config| {
            config.domains.enabled = vec!["orders".into(), "analytics".into()]
        }),
    );
    check(
        "",
        &[
            ("HERALD_DOMAINS__ENABLED", "[orders, payments]"),
            ("herald_http__workers", "2"),
        ],
        Expected::Config(|config| {
            config.domains.enabled = vec!["orders".into(), "payments".into()];
            config.http.workers = Some(2);
        }),
    );
    check(
        "[domain.orders]\nmailbox_capacity = 16\n",
        &[
            ("HERALD_DOMAIN__ORDERS__MAILBOX_CAPACITY", "8"),
            ("HERALD_DOMAIN__PAYMENTS__MAILBOX_CAPACITY", "4"),
        ],
        Expected::Config(|config| {
            config.domain.insert(
                "orders".into(),
                DomainSettings {
                    mailbox_capacity: 8,
                },
            );
            config.domain.insert(
                "payments".into(),
                DomainSettings {
                    mailbox_capacity: 4,
                },
            );
        }),
    );
    // Variables without `__` are not overrides, whatever their prefix.
    check(
        "",
        &[
            ("HERALD_BIN", "/usr/bin/herald"),
            ("HERALD_LOG", "x"),
            ("OTHER_HTTP__BIND", "nonsense"),
        ],
        Expected::Config(|_| {}),
    );
    // A numeric-looking value for a text key can be quoted.
    check(
        "",
        &[("HERALD_NODE__ID", "\"7\"")],
        Expected::Config(|config| config.node.id = "7".into()),
    );
}

#[test]
fn parse_errors_name_key_source_and_allowed_values() {
    check(
        "[http]\nbind = \"127.0.0.1:8080\"\nbogus = 1\n",
        &[],
        Expected::Parse(&[
            "http.bogus: unknown key; [http] allows: bind, max_body_bytes, workers, max_batch_events (in ",
            ".toml)",
        ]),
    );
    check(
        "[nope]\n",
        &[],
        Expected::Parse(&["nope: unknown key; the top level allows: node, http, bus, log, domains, domain, telemetry"]),
    );
    check(
        "[log]\nsegment_bytes = 1\n",
        &[],
        Expected::Parse(&["log.segment_bytes: unknown key; [log] takes no keys yet"]),
    );
    check(
        "[domain.orders]\ncapacity = 1\n",
        &[],
        Expected::Parse(&[
            "domain.orders.capacity: unknown key; [domain.orders] allows: mailbox_capacity",
        ]),
    );
    check(
        "",
        &[("HERALD_HTTP__BOGUS", "1")],
        Expected::Parse(&["http.bogus: unknown key; [http] allows: bind, max_body_bytes, workers, max_batch_events (in environment variable HERALD_HTTP__BOGUS)"]),
    );
    check(
        "[http]\nmax_body_bytes = \"big\"\n",
        &[],
        Expected::Parse(&[
            "http.max_body_bytes: invalid type: found string \"big\", expected usize (in ",
        ]),
    );
    check(
        "[http]\nmax_body_bytes = 10\n",
        &[("HERALD_HTTP__MAX_BODY_BYTES", "big")],
        Expected::Parse(&["http.max_body_bytes: invalid type: found string \"big\", expected usize (in environment variable HERALD_HTTP__MAX_BODY_BYTES)"]),
    );
    check(
        "",
        &[("HERALD_NODE__ID", "7")],
        Expected::Parse(&[
            "node.id: invalid type",
            "quote it to pass it as text: HERALD_NODE__ID='\"7\"'",
        ]),
    );
    check(
        "[bus]\nkind = \"nats\"\n",
        &[],
        Expected::Parse(&["bus.kind: unknown value \"nats\"; allowed values are: embedded"]),
    );
    check(
        "[telemetry]\nformat = \"xml\"\n",
        &[],
        Expected::Parse(&[
            "telemetry.format: unknown value \"xml\"; allowed values are: text, json",
        ]),
    );
    check(
        "[domains]\nenabled = [1]\n",
        &[],
        Expected::Parse(&["domains.enabled", "expected a string"]),
    );
    check(
        "[http\nbind = 1\n",
        &[],
        Expected::Parse(&[".toml: TOML parse error at line 1", "invalid table header"]),
    );
}

#[test]
fn invalid_values_are_all_reported() {
    check(
        "[http]\nbind = \"localhost:80x\"\n",
        &[],
        Expected::Invalid(&[
            "http.bind: \"localhost:80x\" is not a socket address; write it as IP:PORT, for example 127.0.0.1:8080",
        ]),
    );
    check(
        "[domains]\nenabled = [\"orders\", \"payments\", \"billing\"]\n",
        &[],
        Expected::Invalid(&[
            "domains.enabled[2]: unknown domain \"billing\"; known domains are: analytics, inventory, orders, payments, shipping",
        ]),
    );
    check(
        "[domain.billing]\nmailbox_capacity = 8\n",
        &[],
        Expected::Invalid(&[
            "domain.billing: settings for unknown domain \"billing\"; known domains are: analytics, inventory, orders, payments, shipping",
        ]),
    );
    check(
        "[node]\nid = \"\"\n[http]\nbind = \"8080\"\nmax_body_bytes = 0\nworkers = 0\nmax_batch_events = 0\n\
         [domains]\nenabled = \"orders,orders\"\n[domain.orders]\nmailbox_capacity = 0\n[telemetry]\nlevel = \" \"\n",
        &[("HERALD_NODE__DATA_DIR", "")],
        Expected::Invalid(&[
            "node.id: \"\" is empty; give the node a name such as \"herald-1\"",
            "node.data_dir: \"\" is empty; give a directory such as \"./data\" (in environment variable HERALD_NODE__DATA_DIR)",
            "http.bind: \"8080\" is not a socket address; write it as IP:PORT, for example 127.0.0.1:8080",
            "http.max_body_bytes: 0 is not allowed; use a value of at least 1",
            "http.workers: 0 is not allowed; use a value of at least 1",
            "http.max_batch_events: 0 is not allowed; use a value of at least 1",
            "domains.enabled[1]: \"orders\" is already listed at domains.enabled[0]; list each domain once",
            "domain.orders.mailbox_capacity: 0 is not allowed; use a value of at least 1",
            "telemetry.level: \"\" is empty; give a tracing filter such as \"info\" or \"herald=debug,warn\"",
        ]),
    );
}

#[test]
fn missing_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.toml");
    let error = load(&path, &[]).unwrap_err();
    assert!(
        matches!(&error, ConfigError::NotFound { file } if file == &path),
        "{error:?}"
    );
    assert!(error.to_string().contains(&format!(
        "configuration file {} does not exist",
        path.display()
    )));
}

#[test]
fn accessors() {
    let config = load(
        &sample_path(),
        &[("HERALD_DOMAIN__ORDERS__MAILBOX_CAPACITY", "8")],
    )
    .unwrap();
    assert_eq!(
        config.domain_settings("orders"),
        DomainSettings {
            mailbox_capacity: 8
        }
    );
    assert_eq!(
        config.domain_settings("payments"),
        DomainSettings::default()
    );
    assert_eq!(config.enabled_domains(&["orders"]), KNOWN);
    let only = Config {
        domains: herald_config::DomainsConfig {
            enabled: vec!["orders".into()],
        },
        ..Config::default()
    };
    assert_eq!(only.enabled_domains(KNOWN), ["orders"]);
    assert_eq!(config.bind_addr().port(), 8080);
}
