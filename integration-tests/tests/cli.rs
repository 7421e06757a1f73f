//! The `herald` command line as a new user meets it: `check-config` refuses everything
//! `run` would refuse (the domains' wiring included), with status 2 and each message once;
//! a misspelt name gets "did you mean"; `herald log tail` names a stream that is not there;
//! and the README asks for the toolchain the lockfile needs.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use herald_integration_tests::*;

/// `herald ARGS...` with `env` set and each of `unset` removed, on a data directory that a
/// refusal must leave uncreated.
fn herald(args: &[&str], env: &[(&str, &str)], unset: &[&str]) -> Finished {
    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = dir.path().join("data");
    let mut command = Command::new(herald_binary());
    command
        .args(args)
        .env("HERALD_NODE__DATA_DIR", &data_dir)
        .env("HERALD_HTTP__BIND", "127.0.0.1:0")
        .env("NO_COLOR", "1");
    for (key, value) in env {
        command.env(key, value);
    }
    for key in unset {
        command.env_remove(key);
    }
    let finished = run_command(command, Duration::from_secs(60));
    if finished.status == Some(2) {
        assert!(
            !data_dir.exists(),
            "herald {args:?} refused to start but created its data directory"
        );
    }
    finished
}

/// Runs `check-config` and `run` on `config` with `env`: both must exit 2 and print each
/// of `expected` exactly once, on stderr.
fn check_refused(config: &Path, env: &[(&str, &str)], unset: &[&str], expected: &[&str]) {
    let config = config.to_str().expect("utf-8 path");
    for command in ["check-config", "run"] {
        let finished = herald(&[command, "--config", config], env, unset);
        let context = format!("herald {command} with {env:?}:\n{}", finished.output());
        assert!(!finished.timed_out, "{context}");
        assert_eq!(finished.status, Some(2), "{context}");
        for needle in expected {
            assert_eq!(
                finished.output().matches(needle).count(),
                1,
                "expected once: {needle:?}\n{context}"
            );
            assert!(finished.stderr.contains(needle), "{context}");
        }
    }
}

#[test]
fn broken_domain_wiring_is_refused_by_check_config_and_run_with_the_nearest_name() {
    // A consumed type no registered domain owns (an ingress type that is not the domain's
    // own can no longer be written: `events!` marks them).
    let subscription = "domain wiring: domain \"laggard\" subscribes to \"feeder.Fedd\", which no registered domain owns; did you mean \"feeder.Fed\"?";
    check_refused(
        &sample_config(),
        &[
            ("HERALD_TEST_MISWIRE", "subscription"),
            ("HERALD_DOMAINS__ENABLED", "feeder,laggard"),
        ],
        &[],
        &[subscription],
    );
    // The wiring is the build's, not the node's: a domain this node does not enable is
    // still checked.
    check_refused(
        &sample_config(),
        &[
            ("HERALD_TEST_MISWIRE", "subscription"),
            ("HERALD_DOMAINS__ENABLED", "orders"),
        ],
        &[],
        &[subscription],
    );
    // Without the switch the same build and config are valid.
    let sample = sample_config();
    let valid = herald(
        &["check-config", "--config", sample.to_str().expect("utf-8")],
        &[("HERALD_DOMAINS__ENABLED", "feeder,laggard")],
        &[],
    );
    assert_eq!(valid.status, Some(0), "{}", valid.output());
}

#[test]
fn check_config_refuses_what_run_would_refuse() {
    let nats = workspace().join("config").join("nats.toml");
    // A partition count the domain cannot honour (its state spans keys).
    check_refused(
        &sample_config(),
        &[("HERALD_DOMAIN__INVENTORY__PARTITIONS", "4")],
        &[],
        &["domain.inventory.partitions = 4: domain \"inventory\" keeps state across keys"],
    );
    // A NATS secret whose variable is not set.
    check_refused(
        &nats,
        &[("HERALD_BUS__NATS__TOKEN_ENV", "HERALD_TEST_NO_SUCH_TOKEN")],
        &["HERALD_TEST_NO_SUCH_TOKEN"],
        &["bus.nats.token_env: the environment variable HERALD_TEST_NO_SUCH_TOKEN is not set (or empty)"],
    );
}

#[test]
fn a_misspelt_domain_name_gets_did_you_mean() {
    let dir = tempfile::tempdir().expect("temp dir");
    check_refused(
        &sample_config(),
        &[("HERALD_DOMAINS__ENABLED", "orders,inventroy")],
        &[],
        &["domains.enabled[1]: unknown domain \"inventroy\"; did you mean \"inventory\"?"],
    );
    check_refused(
        &sample_config(),
        &[("HERALD_DOMAIN__ORDER__MAILBOX_CAPACITY", "8")],
        &[],
        &["domain.order: settings for unknown domain \"order\"; did you mean \"orders\"?"],
    );
    let auth = sample_config_with_auth(
        dir.path(),
        "[[auth.tokens]]\nname = \"reader\"\ntoken = \"reader-secret-0a1b2c3d4e5f\"\nscopes = [\"query\"]\ndomains = [\"Payments\"]\n",
    );
    check_refused(
        &auth,
        &[],
        &[],
        &["token \"reader\" names unknown domain \"Payments\"; did you mean \"payments\"?"],
    );
    // Nothing near: every known name, as before.
    check_refused(
        &sample_config(),
        &[("HERALD_DOMAINS__ENABLED", "billing")],
        &[],
        &["unknown domain \"billing\"; known domains are: analytics, "],
    );
}

#[test]
fn log_tail_names_a_stream_that_is_not_there() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log_dir = dir.path().join("log");
    std::fs::create_dir_all(&log_dir).expect("log dir");
    let empty = herald_log_on("tail", dir.path(), &["--stream", "nope"]);
    assert_ne!(empty.status, Some(0), "{}", empty.output());
    assert!(
        empty.stderr.contains(&format!(
            "there is no stream \"nope\" in {}; the log holds no events yet",
            log_dir.display()
        )),
        "{}",
        empty.output()
    );
    // A registered domain's stream (or its dead letters) is there before its first event:
    // empty, not unknown.
    for stream in ["orders", "analytics", "deadletter-orders"] {
        let tail = herald_log_on("tail", dir.path(), &["--stream", stream]);
        assert_eq!(tail.status, Some(0), "--stream {stream}: {}", tail.output());
        assert!(
            tail.stdout.is_empty(),
            "--stream {stream}: {}",
            tail.output()
        );
    }

    let mut node = Node::start_in(
        dir.path(),
        &[("HERALD_DOMAINS__ENABLED", "inventory,orders")],
    );
    node.accept(&stock_added("sku-t", 3));
    node.accept(&order_placed("o-t", "c-t", &[("sku-t", 1, 5)]));
    node.stop();

    let cases: [(&str, &str); 3] = [
        ("nope", "there is no stream \"nope\" in {log}; its streams are: inventory, orders"),
        (
            "inventroy",
            "there is no stream \"inventroy\" in {log} (did you mean \"inventory\"?); its streams are: inventory, orders",
        ),
        ("", "there is no stream \"\" in {log}; its streams are: inventory, orders"),
    ];
    for (stream, expected) in cases {
        let expected = expected.replace("{log}", &log_dir.display().to_string());
        let tail = herald_log_on("tail", dir.path(), &["--stream", stream]);
        assert_ne!(
            tail.status,
            Some(0),
            "--stream {stream:?}: {}",
            tail.output()
        );
        assert!(
            tail.stdout.is_empty(),
            "--stream {stream:?}: {}",
            tail.output()
        );
        assert!(
            tail.stderr.contains(&expected),
            "--stream {stream:?}: expected {expected:?}:\n{}",
            tail.output()
        );
    }
    // A stream that is there still tails, also past its end (nothing to print is no error).
    let tail = herald_log_on("tail", dir.path(), &["--stream", "inventory"]);
    assert_eq!(tail.status, Some(0), "{}", tail.output());
    assert!(
        tail.stdout.contains("inventory.StockAdded"),
        "{}",
        tail.output()
    );
    let past = herald_log_on(
        "tail",
        dir.path(),
        &["--stream", "inventory", "--from", "99"],
    );
    assert_eq!(past.status, Some(0), "{}", past.output());
    assert!(past.stdout.is_empty(), "{}", past.output());
}

/// The `rust-version = "X"` value of `text`'s line that starts with `rust-version`.
fn rust_version(text: &str) -> Option<String> {
    text.lines()
        .find(|line| line.trim_start().starts_with("rust-version ="))
        .and_then(|line| line.split('"').nth(1))
        .map(str::to_owned)
}

/// `"1.89.0"` as `(1, 89, 0)`, a missing patch as 0.
fn version_tuple(version: &str) -> (u64, u64, u64) {
    let mut parts = version
        .split('.')
        .map(|part| part.parse::<u64>().unwrap_or(0));
    (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    )
}

#[test]
fn the_readme_asks_for_the_toolchain_the_lockfile_needs() {
    let root = workspace();
    let read = |path: &Path| std::fs::read_to_string(path).expect("readable");
    let manifest = read(&root.join("Cargo.toml"));
    let declared = rust_version(
        manifest
            .split("[workspace.package]")
            .nth(1)
            .expect("a [workspace.package] table"),
    )
    .expect("[workspace.package] rust-version");
    let readme = read(&root.join("README.md"));
    let line = format!("with a Rust toolchain ({declared} or later)");
    assert!(
        readme.contains(&line),
        "README.md must say {line:?}, as Cargo.toml's rust-version = {declared:?} does"
    );
    for member in [
        "actors",
        "config",
        "domains",
        "integration-tests",
        "runtime",
    ] {
        let text = read(&root.join(member).join("Cargo.toml"));
        assert!(
            text.contains("rust-version.workspace = true"),
            "{member}/Cargo.toml must take the workspace's rust-version"
        );
    }
    assert!(manifest.contains("rust-version.workspace = true"));

    // What the lockfile needs: the highest rust-version of the locked crates whose sources
    // this build downloaded (the others are for other platforms).
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cargo")))
        .expect("CARGO_HOME or HOME");
    let registries: Vec<_> = std::fs::read_dir(cargo_home.join("registry").join("src"))
        .expect("cargo's registry sources")
        .flatten()
        .map(|entry| entry.path())
        .collect();
    let lock = read(&root.join("Cargo.lock"));
    let mut needs: BTreeMap<(u64, u64, u64), Vec<String>> = BTreeMap::new();
    for package in lock.split("[[package]]").skip(1) {
        let field = |name: &str| {
            package
                .lines()
                .find_map(|line| line.strip_prefix(&format!("{name} = \"")))
                .map(|rest| rest.trim_end_matches('"').to_owned())
        };
        let (Some(name), Some(version), Some(_)) =
            (field("name"), field("version"), field("source"))
        else {
            continue;
        };
        let crate_dir = format!("{name}-{version}");
        let Some(text) = registries.iter().find_map(|registry| {
            std::fs::read_to_string(registry.join(&crate_dir).join("Cargo.toml")).ok()
        }) else {
            continue;
        };
        if let Some(needed) = rust_version(&text) {
            needs
                .entry(version_tuple(&needed))
                .or_default()
                .push(crate_dir);
        }
    }
    let (highest, crates) = needs
        .iter()
        .next_back()
        .expect("locked crates declare rust-version");
    assert_eq!(
        version_tuple(&declared),
        *highest,
        "Cargo.toml and README.md say {declared}, but the lockfile's newest rust-version is {highest:?} ({})",
        crates.join(", ")
    );
}

/// `herald schema check --against FILE` over a copy of the committed snapshot, edited by
/// `edit` as an earlier build would have had it.
fn schema_check(edit: impl FnOnce(&mut serde_json::Value)) -> Finished {
    let committed = workspace().join("schemas").join("example.json");
    let mut earlier: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&committed).expect("snapshot"))
            .expect("JSON");
    edit(&mut earlier);
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("earlier.json");
    std::fs::write(&file, earlier.to_string()).expect("written");
    let mut command = Command::new(herald_binary());
    command.args([
        "schema",
        "check",
        "--against",
        file.to_str().expect("utf-8"),
    ]);
    run_command(command, Duration::from_secs(60))
}

/// The schema of `type_name` in a topology.
fn schema_of<'a>(
    topology: &'a mut serde_json::Value,
    type_name: &str,
) -> &'a mut serde_json::Value {
    let domain = type_name.split('.').next().expect("domain");
    let domains = topology["domains"].as_array_mut().expect("domains");
    let found = domains
        .iter_mut()
        .find(|d| d["name"] == domain)
        .expect("domain listed");
    &mut found["types"][type_name]["schema"]
}

#[test]
fn schema_check_passes_the_committed_snapshot_and_names_every_breaking_change() {
    let same = schema_check(|_| {});
    assert_eq!(same.status, Some(0), "{}", same.output());
    assert!(same.stdout.contains("compatible"), "{}", same.output());

    // An earlier build had a field this one dropped, a field of another JSON type, and no
    // `reason` on OrderCancelled (so this build's required `reason` is new).
    let broken = schema_check(|earlier| {
        let placed = schema_of(earlier, "orders.OrderPlaced");
        placed["properties"]["coupon"] = serde_json::json!({"type": "string"});
        let added = schema_of(earlier, "inventory.StockAdded");
        added["properties"]["quantity"] = serde_json::json!({"type": "string"});
        let cancelled = schema_of(earlier, "orders.OrderCancelled");
        cancelled["properties"]
            .as_object_mut()
            .expect("properties")
            .remove("reason");
        let required = cancelled["required"].as_array_mut().expect("required");
        required.retain(|name| name != "reason");
    });
    assert_eq!(broken.status, Some(1), "{}", broken.output());
    for needle in [
        "breaking: orders.OrderPlaced data/coupon: the field was removed",
        "breaking: inventory.StockAdded data/quantity: changed from",
        "breaking: orders.OrderCancelled data/reason: a new required field without a default",
        "3 change(s) would break",
    ] {
        assert!(
            broken.stderr.contains(needle),
            "missing {needle:?}:\n{}",
            broken.output()
        );
    }
    // A removed type, and a version that went down.
    let removed = schema_check(|earlier| {
        let domains = earlier["domains"].as_array_mut().expect("domains");
        let shipping = domains
            .iter_mut()
            .find(|d| d["name"] == "shipping")
            .expect("shipping");
        shipping["types"]["shipping.ShipmentLost"] =
            serde_json::json!({"schema": {"type": "object"}, "version": 1});
        let orders = domains
            .iter_mut()
            .find(|d| d["name"] == "orders")
            .expect("orders");
        orders["types"]["orders.OrderPlaced"]["version"] = serde_json::json!(3);
    });
    assert_eq!(removed.status, Some(1), "{}", removed.output());
    assert!(
        removed
            .stderr
            .contains("shipping.ShipmentLost: the type was removed"),
        "{}",
        removed.output()
    );
    assert!(
        removed
            .stderr
            .contains("orders.OrderPlaced: the version went down from 3 to 1"),
        "{}",
        removed.output()
    );
    // Not a topology at all: 2, naming what to save.
    let unusable = schema_check(|earlier| *earlier = serde_json::json!({"streams": []}));
    assert_eq!(unusable.status, Some(2), "{}", unusable.output());
    assert!(
        unusable.stderr.contains("save the body of GET /v1/domains"),
        "{}",
        unusable.output()
    );
}
