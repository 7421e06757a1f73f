//! The binary as a process: config errors exit 2 and start nothing, SIGTERM and SIGINT
//! exit 0, and `--help` explains the commands.

use std::process::Command;
use std::time::Duration;

use herald_integration_tests::*;

struct Run {
    status: Option<i32>,
    stderr: String,
    stdout: String,
}

fn herald(args: &[&str], env: &[(&str, &str)]) -> Run {
    let data_dir = tempfile::tempdir().expect("temp dir");
    let mut command = Command::new(herald_binary());
    command
        .args(args)
        .env("HERALD_NODE__DATA_DIR", data_dir.path().join("data"));
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().expect("herald runs");
    // A config error must start nothing: not even the data directory.
    if output.status.code() == Some(2) {
        assert!(
            !data_dir.path().join("data").exists(),
            "data dir created on a bad config"
        );
    }
    Run {
        status: output.status.code(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
    }
}

fn write_config(text: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, text).expect("write config");
    let path = path.to_string_lossy().into_owned();
    (dir, path)
}

#[test]
fn config_errors_exit_2_naming_key_file_and_allowed_values() {
    let cases: [(&str, &str, &[&str]); 6] = [
        (
            "[http]\nbindd = \"127.0.0.1:1\"\n",
            "",
            &["http.bindd", "bind", "bad.toml"],
        ),
        (
            "[http]\nbind = \"localhost:x\"\n",
            "",
            &["http.bind", "localhost:x", "bad.toml"],
        ),
        (
            "[http]\nmax_body_bytes = \"big\"\n",
            "",
            &["max_body_bytes", "bad.toml"],
        ),
        (
            "[domains]\nenabled = [\"orders\", \"billing\"]\n",
            "",
            &["billing", "analytics", "inventory", "bad.toml"],
        ),
        ("[bus]\nkind = \"kafka\"\n", "", &["bus.kind", "embedded"]),
        ("", "orders,nope", &["nope", "HERALD_DOMAINS__ENABLED"]),
    ];
    for (text, enabled_env, expected) in cases {
        let (_dir, path) = write_config(text);
        let env: Vec<(&str, &str)> = if enabled_env.is_empty() {
            vec![]
        } else {
            vec![("HERALD_DOMAINS__ENABLED", enabled_env)]
        };
        for command in ["run", "check-config"] {
            let run = herald(&[command, "--config", &path], &env);
            assert_eq!(run.status, Some(2), "{command} {text:?}: {}", run.stderr);
            for needle in expected {
                assert!(
                    run.stderr.contains(needle),
                    "{command} {text:?}: stderr lacks {needle:?}:\n{}",
                    run.stderr
                );
            }
        }
    }
    let run = herald(&["run", "--config", "/nonexistent/herald.toml"], &[]);
    assert_eq!(run.status, Some(2));
    assert!(
        run.stderr.contains("/nonexistent/herald.toml"),
        "{}",
        run.stderr
    );
}

#[test]
fn check_config_accepts_the_sample_and_env_overrides() {
    let sample = sample_config();
    let sample = sample.to_string_lossy();
    let run = herald(
        &["check-config", "--config", &sample],
        &[("HERALD_DOMAINS__ENABLED", "orders,analytics")],
    );
    assert_eq!(run.status, Some(0), "{}", run.stderr);
    assert!(run.stdout.contains("valid"), "{}", run.stdout);
}

#[test]
fn help_explains_both_commands() {
    let run = herald(&["--help"], &[]);
    assert_eq!(run.status, Some(0));
    assert!(run.stdout.contains("run"), "{}", run.stdout);
    assert!(run.stdout.contains("check-config"), "{}", run.stdout);
}

#[test]
fn sigterm_and_sigint_stop_the_node_with_status_0() {
    for signal in ["TERM", "INT"] {
        let mut node = Node::start();
        assert_eq!(node.publish(&stock_added("sku-s", 1)).status, 202);
        node.signal(signal);
        let status = node
            .wait_exit(Duration::from_secs(30))
            .unwrap_or_else(|| panic!("node ignored SIG{signal}; logs:\n{}", node.logs()));
        assert_eq!(
            status.code(),
            Some(0),
            "SIG{signal}; logs:\n{}",
            node.logs()
        );
        assert!(node.logs().contains("node stopped"), "{}", node.logs());
    }
}

#[test]
fn the_node_logs_its_domains_and_address() {
    let node = Node::start_with(&[("HERALD_DOMAINS__ENABLED", "orders,inventory")]);
    let logs = node.logs();
    assert!(logs.contains("herald node listening"), "{logs}");
    assert!(
        logs.contains("domains=orders,inventory") || logs.contains("domains=inventory,orders"),
        "{logs}"
    );
    // Every registered domain the list leaves out is named at start, so a domain added to
    // the build but not to the config is not silently absent.
    let left_out = logs
        .lines()
        .find(|line| line.contains("registered domains this node does not host"))
        .unwrap_or_else(|| panic!("no line names the domains left out:\n{logs}"));
    for domain in saga_domains() {
        let named = left_out.contains(domain);
        let enabled = domain == "orders" || domain == "inventory";
        assert_eq!(named, !enabled, "{domain} in {left_out}");
    }
    assert!(
        left_out.contains("feeder"),
        "the test build's fault domains too: {left_out}"
    );
    // A domain that is not enabled here is 503 for ingress, naming it.
    let reply = node.publish(&credit_granted("zoe", 5));
    assert_eq!(reply.status, 503, "{}", reply.json);
    assert!(reply.json["detail"]
        .as_str()
        .unwrap_or_default()
        .contains("payments"));
}

#[test]
fn the_nats_sample_validates_and_bad_servers_are_named() {
    let sample = workspace().join("config").join("nats.toml");
    let sample = sample.to_str().expect("utf-8 path");
    let checked = herald(&["check-config", "--config", sample], &[]);
    assert_eq!(checked.status, Some(0), "{}", checked.stderr);
    let servers = herald(
        &["check-config", "--config", sample],
        &[("HERALD_BUS__NATS__SERVERS", "nats://a:4222,http://b:4222")],
    );
    assert_eq!(servers.status, Some(2));
    assert!(
        servers.stderr.contains("bus.nats.servers")
            && servers
                .stderr
                .contains("\"http://b:4222\" is not a nats:// or tls:// URL")
            && servers.stderr.contains("HERALD_BUS__NATS__SERVERS"),
        "{}",
        servers.stderr
    );
}

#[test]
fn partitions_are_refused_for_a_domain_whose_state_spans_keys() {
    let embedded = sample_config();
    let whole = herald(
        &["run", "--config", embedded.to_str().expect("utf-8 path")],
        &[
            ("HERALD_DOMAIN__INVENTORY__PARTITIONS", "4"),
            ("HERALD_HTTP__BIND", "127.0.0.1:0"),
        ],
    );
    assert_eq!(whole.status, Some(2), "{}", whole.stderr);
    assert!(
        whole.stderr.contains("domain.inventory.partitions = 4") && whole.stderr.contains("Whole"),
        "{}",
        whole.stderr
    );
}
