//! Loading `herald.toml` with environment overrides: one `check` per case.

#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use herald_config::{
    Config, ConfigError, DedupWindow, DomainSettings, FsyncPolicy, LogConfig, LogFormat,
    SAMPLE_CONFIG,
};

const KNOWN: &[&str] = &["analytics", "inventory", "orders", "payments", "shipping"];

/// A change to the default config: what a case should load as.
type Edit = fn(&mut Config);

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
fn sample_file_is_the_defaults_hosting_every_registered_domain() {
    let config = load(&sample_path(), &[]).unwrap();
    assert_eq!(config, Config::default());
    assert_eq!(config.enabled_domains(KNOWN), KNOWN);
    check(SAMPLE_CONFIG, &[], Expected::Config(|_| {}));
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
                    ..DomainSettings::default()
                },
            );
            config.domain.insert(
                "payments".into(),
                DomainSettings {
                    mailbox_capacity: 4,
                    ..DomainSettings::default()
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
            "http.bogus: unknown key; [http] allows: bind, max_body_bytes, workers, max_batch_events, max_event_bytes, max_header_bytes, max_connections, body_timeout, body_min_rate, bodies_in_flight_bytes, max_tails (in ",
            ".toml)",
        ]),
    );
    check(
        "[nope]\n",
        &[],
        Expected::Parse(&["nope: unknown key; the top level allows: node, http, bus, log, domains, domain, telemetry"]),
    );
    check(
        "[log]\nsegment = 1\n",
        &[],
        Expected::Parse(&["log.segment: unknown key; [log] allows: fsync, segment_bytes, dedup_window, snapshot_every, snapshot_interval, cache_bytes (in "]),
    );
    // A key the runtime does not read is the domain's own setting: the domain checks it
    // (`Domain::configure`, when the node or `check-config` starts), not this crate.
    check(
        "[domain.orders]\ncapacity = 1\n",
        &[],
        Expected::Config(|config| {
            let mut settings = DomainSettings::default();
            settings.options.insert(
                "capacity".into(),
                herald_config::figment::value::Value::from(1i64),
            );
            config.domain.insert("orders".into(), settings);
        }),
    );
    check(
        "",
        &[("HERALD_HTTP__BOGUS", "1")],
        Expected::Parse(&["http.bogus: unknown key; [http] allows: bind, max_body_bytes, workers, max_batch_events, max_event_bytes, max_header_bytes, max_connections, body_timeout, body_min_rate, bodies_in_flight_bytes, max_tails (in environment variable HERALD_HTTP__BOGUS)"]),
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
        "[bus]\nkind = \"kafka\"\n",
        &[],
        Expected::Parse(&["bus.kind: unknown value \"kafka\"; allowed values are: embedded, nats"]),
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
         [log]\nsegment_bytes = 0\ndedup_window = 0\n[domains]\nenabled = \"orders,orders\"\n[domain.orders]\nmailbox_capacity = 0\n[telemetry]\nlevel = \" \"\n",
        &[("HERALD_NODE__DATA_DIR", "")],
        Expected::Invalid(&[
            "node.id: \"\" is empty; give the node a name such as \"herald-1\"",
            "node.data_dir: \"\" is empty; give a directory such as \"./data\" (in environment variable HERALD_NODE__DATA_DIR)",
            "http.bind: \"8080\" is not a socket address; write it as IP:PORT, for example 127.0.0.1:8080",
            "http.max_body_bytes: 0 is not allowed; use a value of at least 1",
            "http.workers: 0 is not allowed; use a value of at least 1",
            "http.max_batch_events: 0 is not allowed; use a value of at least 1",
            "log.segment_bytes: 0 is not allowed; use a value from 4096 (4 KiB) to 4294967296 (4 GiB)",
            "log.dedup_window: 0 is not allowed; use a count of at least 1 event, or a duration longer than zero such as \"24h\"",
            "domains.enabled[1]: \"orders\" is already listed at domains.enabled[0]; list each domain once",
            "domain.orders.mailbox_capacity: 0 is not allowed; use a value of at least 1",
            "telemetry.level: \"\" is empty; give a tracing filter such as \"info\" or \"herald=debug,warn\"",
        ]),
    );
}

#[test]
fn partitions_default_to_unset_and_are_bounded() {
    check(
        "[domains]\npartitions = 0\n[domain.orders]\npartitions = 257\n",
        &[],
        Expected::Invalid(&[
            "domain.orders.partitions: 257 is not allowed; a domain has 1 to 256 partitions",
            "domains.partitions: 0 is not allowed; a domain has 1 to 256 partitions",
        ]),
    );
    let config = load(
        &sample_path(),
        &[
            ("HERALD_DOMAINS__PARTITIONS", "3"),
            ("HERALD_DOMAIN__ORDERS__PARTITIONS", "6"),
        ],
    )
    .unwrap();
    assert_eq!(config.partitions("orders"), Some(6));
    assert_eq!(config.partitions("shipping"), Some(3));
    assert_eq!(Config::default().partitions("orders"), None);
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
            mailbox_capacity: 8,
            ..DomainSettings::default()
        }
    );
    assert_eq!(
        config.domain_settings("payments"),
        DomainSettings::default()
    );
    // The sample's empty list: every registered domain, whichever they are.
    assert_eq!(config.enabled_domains(&["orders"]), ["orders"]);
    assert_eq!(config.enabled_domains(KNOWN), KNOWN);
    let only = Config {
        domains: herald_config::DomainsConfig {
            enabled: vec!["orders".into()],
            ..herald_config::DomainsConfig::default()
        },
        ..Config::default()
    };
    assert_eq!(only.enabled_domains(KNOWN), ["orders"]);
    assert_eq!(config.bind_addr().port(), 8080);
}

#[test]
fn log_defaults() {
    let log = LogConfig::default();
    assert_eq!(log.fsync, FsyncPolicy::Always);
    assert_eq!(log.segment_bytes, 67_108_864);
    assert_eq!(log.dedup_window, DedupWindow::Events(1_000_000));
    assert_eq!(log.snapshot_every, 10_000);
    assert_eq!(log.snapshot_interval, Duration::from_secs(60));
    assert_eq!(Config::default().log, log);
    // An empty `[log]`, or one key, leaves the rest at their defaults.
    check("[log]\n", &[], Expected::Config(|_| {}));
    check(
        "[log]\nsnapshot_every = 0\n",
        &[],
        Expected::Config(|config| config.log.snapshot_every = 0),
    );
}

#[test]
fn log_keys_from_toml() {
    check(
        "[log]\nfsync = \"never\"\nsegment_bytes = 4096\ndedup_window = 500\n\
         snapshot_every = 10\nsnapshot_interval = \"5m\"\ncache_bytes = 2097152\n",
        &[],
        Expected::Config(|config| {
            config.log = LogConfig {
                fsync: FsyncPolicy::Never,
                segment_bytes: 4096,
                dedup_window: DedupWindow::Events(500),
                snapshot_every: 10,
                snapshot_interval: Duration::from_secs(300),
                cache_bytes: 2 << 20,
            }
        }),
    );
    check(
        "[log]\nfsync = \"always\"\nsegment_bytes = 4294967296\n",
        &[],
        Expected::Config(|config| config.log.segment_bytes = 4_294_967_296),
    );
    let windows: &[(&str, Edit)] = &[
        ("\"24h\"", |config| {
            config.log.dedup_window = DedupWindow::Age(Duration::from_secs(86_400))
        }),
        ("\"30m\"", |config| {
            config.log.dedup_window = DedupWindow::Age(Duration::from_secs(1800))
        }),
        ("\"90s\"", |config| {
            config.log.dedup_window = DedupWindow::Age(Duration::from_secs(90))
        }),
        ("\"7d\"", |config| {
            config.log.dedup_window = DedupWindow::Age(Duration::from_secs(7 * 86_400))
        }),
        ("\"500ms\"", |config| {
            config.log.dedup_window = DedupWindow::Age(Duration::from_millis(500))
        }),
        // A string of only digits is a count, as an environment variable may deliver it.
        ("\"1000\"", |config| {
            config.log.dedup_window = DedupWindow::Events(1000)
        }),
        ("1", |config| {
            config.log.dedup_window = DedupWindow::Events(1)
        }),
    ];
    for (value, edit) in windows {
        check(
            &format!("[log]\ndedup_window = {value}\n"),
            &[],
            Expected::Config(*edit),
        );
    }
    let intervals: &[(&str, Edit)] = &[
        ("\"0s\"", |config| {
            config.log.snapshot_interval = Duration::ZERO
        }),
        ("\"1h 30m\"", |config| {
            config.log.snapshot_interval = Duration::from_secs(5400)
        }),
        ("\"500ms\"", |config| {
            config.log.snapshot_interval = Duration::from_millis(500)
        }),
        // Leniently, a whole number of seconds.
        ("90", |config| {
            config.log.snapshot_interval = Duration::from_secs(90)
        }),
        ("\"90\"", |config| {
            config.log.snapshot_interval = Duration::from_secs(90)
        }),
    ];
    for (value, edit) in intervals {
        check(
            &format!("[log]\nsnapshot_interval = {value}\n"),
            &[],
            Expected::Config(*edit),
        );
    }
}

#[test]
fn log_environment_overrides() {
    let cases: &[(&str, &str, Edit)] = &[
        ("HERALD_LOG__FSYNC", "never", |config| {
            config.log.fsync = FsyncPolicy::Never
        }),
        ("HERALD_LOG__SEGMENT_BYTES", "4096", |config| {
            config.log.segment_bytes = 4096
        }),
        ("HERALD_LOG__DEDUP_WINDOW", "500", |config| {
            config.log.dedup_window = DedupWindow::Events(500)
        }),
        ("HERALD_LOG__DEDUP_WINDOW", "\"500\"", |config| {
            config.log.dedup_window = DedupWindow::Events(500)
        }),
        ("HERALD_LOG__DEDUP_WINDOW", "24h", |config| {
            config.log.dedup_window = DedupWindow::Age(Duration::from_secs(86_400))
        }),
        ("HERALD_LOG__SNAPSHOT_EVERY", "10", |config| {
            config.log.snapshot_every = 10
        }),
        ("HERALD_LOG__SNAPSHOT_INTERVAL", "1s", |config| {
            config.log.snapshot_interval = Duration::from_secs(1)
        }),
        ("HERALD_LOG__SNAPSHOT_INTERVAL", "0", |config| {
            config.log.snapshot_interval = Duration::ZERO
        }),
    ];
    for (name, value, edit) in cases {
        check("", &[(name, value)], Expected::Config(*edit));
    }
    // Overrides win over the file, key by key.
    check(
        "[log]\nfsync = \"always\"\ndedup_window = \"1h\"\nsnapshot_every = 5\n",
        &[
            ("HERALD_LOG__FSYNC", "never"),
            ("HERALD_LOG__DEDUP_WINDOW", "1000"),
        ],
        Expected::Config(|config| {
            config.log.fsync = FsyncPolicy::Never;
            config.log.dedup_window = DedupWindow::Events(1000);
            config.log.snapshot_every = 5;
        }),
    );
}

#[test]
fn log_bad_values_name_key_and_value() {
    const WINDOW_FORMS: &str = "use a count of events such as 1000000, or a duration such as \"24h\", \"30m\", \"90s\", \"7d\" or \"500ms\"";
    const DURATION_FORMS: &str = "write it like \"90s\", \"30m\", \"24h\", \"7d\", \"500ms\" or \"1h 30m\", or as a whole number of seconds";
    check(
        "[log]\nfsync = \"sometimes\"\n",
        &[],
        Expected::Parse(&[
            "log.fsync: unknown value \"sometimes\"; allowed values are: always, never (in ",
        ]),
    );
    check(
        "",
        &[("HERALD_LOG__FSYNC", "sometimes")],
        Expected::Parse(&["log.fsync: unknown value \"sometimes\"; allowed values are: always, never (in environment variable HERALD_LOG__FSYNC)"]),
    );
    check(
        "[log]\ndedup_window = \"soon\"\n",
        &[],
        Expected::Parse(&[&format!(
            "log.dedup_window: \"soon\" is neither a count of events nor a duration; {WINDOW_FORMS} (in "
        )]),
    );
    check(
        "",
        &[("HERALD_LOG__DEDUP_WINDOW", "soon")],
        Expected::Parse(&[&format!(
            "log.dedup_window: \"soon\" is neither a count of events nor a duration; {WINDOW_FORMS} (in environment variable HERALD_LOG__DEDUP_WINDOW)"
        )]),
    );
    check(
        "[log]\ndedup_window = -5\n",
        &[],
        Expected::Parse(&[&format!(
            "log.dedup_window: -5 is negative; {WINDOW_FORMS} (in "
        )]),
    );
    check(
        "[log]\ndedup_window = 1.5\n",
        &[],
        Expected::Parse(&[
            "log.dedup_window: invalid type: found float `1.5`, expected a count of events such as 1000000 or a duration such as \"24h\"",
        ]),
    );
    check(
        "[log]\nsnapshot_interval = \"x\"\n",
        &[],
        Expected::Parse(&[
            "log.snapshot_interval: \"x\" is not a duration (",
            &format!("); {DURATION_FORMS} (in "),
        ]),
    );
    check(
        "",
        &[("HERALD_LOG__SNAPSHOT_INTERVAL", "x")],
        Expected::Parse(&[
            "log.snapshot_interval: \"x\" is not a duration (",
            &format!("); {DURATION_FORMS} (in environment variable HERALD_LOG__SNAPSHOT_INTERVAL)"),
        ]),
    );
    check(
        "[log]\nsnapshot_interval = -1\n",
        &[],
        Expected::Parse(&[&format!(
            "log.snapshot_interval: -1 is negative; {DURATION_FORMS} (in "
        )]),
    );
    check(
        "[log]\nsegment_bytes = \"big\"\n",
        &[],
        Expected::Parse(&[
            "log.segment_bytes: invalid type: found string \"big\", expected u64 (in ",
        ]),
    );

    // Values that parse but are out of range are validation problems, all reported.
    check(
        "[log]\nsegment_bytes = 10\n",
        &[],
        Expected::Invalid(&[
            "log.segment_bytes: 10 is not allowed; use a value from 4096 (4 KiB) to 4294967296 (4 GiB)",
        ]),
    );
    check(
        "[log]\nsegment_bytes = 4294967297\ndedup_window = \"0s\"\n",
        &[],
        Expected::Invalid(&[
            "log.segment_bytes: 4294967297 is not allowed; use a value from 4096 (4 KiB) to 4294967296 (4 GiB)",
            "log.dedup_window: \"0s\" is not allowed; use a count of at least 1 event, or a duration longer than zero such as \"24h\"",
        ]),
    );
    check(
        "[log]\ndedup_window = 0\n",
        &[],
        Expected::Invalid(&[
            "log.dedup_window: 0 is not allowed; use a count of at least 1 event, or a duration longer than zero such as \"24h\"",
        ]),
    );
    check(
        "",
        &[
            ("HERALD_LOG__SEGMENT_BYTES", "10"),
            ("HERALD_LOG__DEDUP_WINDOW", "0"),
        ],
        Expected::Invalid(&[
            "log.segment_bytes: 10 is not allowed; use a value from 4096 (4 KiB) to 4294967296 (4 GiB) (in environment variable HERALD_LOG__SEGMENT_BYTES)",
            "log.dedup_window: 0 is not allowed; use a count of at least 1 event, or a duration longer than zero such as \"24h\" (in environment variable HERALD_LOG__DEDUP_WINDOW)",
        ]),
    );
}

/// What `Config` serializes to reads back as the same config.
#[test]
fn log_serializes_to_what_it_reads() {
    use figment::providers::Serialized;
    use figment::Figment;

    for dedup_window in [
        DedupWindow::Events(42),
        DedupWindow::Age(Duration::from_secs(90)),
        DedupWindow::Age(Duration::from_millis(1500)),
    ] {
        let mut config = Config::default();
        config.log.dedup_window = dedup_window;
        config.log.snapshot_interval = Duration::from_secs(3661);
        let read: Config = Figment::from(Serialized::defaults(&config))
            .extract()
            .unwrap();
        assert_eq!(read, config);
    }
}

#[test]
fn limits_have_defaults_ranges_and_environment_overrides() {
    let defaults = Config::default();
    assert_eq!(defaults.http.max_event_bytes, 262_144);
    assert_eq!(defaults.http.max_header_bytes, 16_384);
    assert_eq!(defaults.http.max_connections, 1024);
    assert!(!defaults.auth.metrics_open);
    check(
        "",
        &[
            ("HERALD_HTTP__MAX_EVENT_BYTES", "1000"),
            ("HERALD_HTTP__MAX_HEADER_BYTES", "2048"),
            ("HERALD_HTTP__MAX_CONNECTIONS", "3"),
            ("HERALD_AUTH__METRICS_OPEN", "true"),
        ],
        Expected::Config(|config| {
            config.http.max_event_bytes = 1000;
            config.http.max_header_bytes = 2048;
            config.http.max_connections = 3;
            config.auth.metrics_open = true;
        }),
    );
    check(
        "[http]\nmax_event_bytes = 0\nmax_header_bytes = 100\nmax_connections = 0\n",
        &[],
        Expected::Invalid(&[
            "http.max_event_bytes: 0 is not allowed; use a value of at least 1",
            "http.max_header_bytes: 100 is not allowed; use a value from 1024 (1 KiB) to 65536 (64 KiB): the HTTP layer itself refuses request heads over 128 KiB",
            "http.max_connections: 0 is not allowed; use a value of at least 1",
        ]),
    );
    check(
        "[http]\nmax_event_bytes = 16777217\nmax_connections = 100001\n",
        &[("HERALD_HTTP__MAX_HEADER_BYTES", "65537")],
        Expected::Invalid(&[
            "http.max_event_bytes: 16777217 is not allowed; use at most 16777216 (16 MiB), the largest body a node takes",
            "http.max_header_bytes: 65537 is not allowed; use a value from 1024 (1 KiB) to 65536 (64 KiB): the HTTP layer itself refuses request heads over 128 KiB (in environment variable HERALD_HTTP__MAX_HEADER_BYTES)",
            "http.max_connections: 100001 is not allowed; use at most 100000",
        ]),
    );
    check(
        "[http]\nbody_timeout = \"500ms\"\nbodies_in_flight_bytes = 1000\n[log]\ncache_bytes = 1000\n",
        &[],
        Expected::Invalid(&[
            "http.body_timeout: 500ms is not allowed; use a duration from \"1s\" to \"10m\"",
            "http.bodies_in_flight_bytes: 1000 is not allowed; use at least http.max_body_bytes (1048576), or no body could ever be read whole",
            "log.cache_bytes: 1000 is not allowed; use at least 1048576 (1 MiB)",
        ]),
    );
}
