//! Support for black-box tests: build the real `herald` binary, start nodes on free ports
//! with their own data directories, talk to them over HTTP, and stop them with signals.
//!
//! # Layout
//!
//! - this file: the [`Node`] fixture (start, restart on the same data directory, SIGTERM,
//!   SIGKILL), HTTP helpers, reading whole streams, waiting for the saga to settle, running
//!   the `herald` binary as a command ([`herald`], [`run_node_to_exit`]), event builders, a
//!   seeded [`Rng`] and a JSON [`diff`] for failure messages.
//! - [`invariants`]: the example saga's invariants checked against a node's whole log.
//! - [`nats`]: a real nats-server (found or installed) for networked-mode tests.
//! - [`raw_http`]: one HTTP/1.1 connection on a plain socket, for connection-limit tests.
//! - [`segments`]: the on-disk log and snapshot files, parsed by their documented framing so
//!   tests can cut and corrupt exact records.
//! - [`sse`]: a line reader for the server-sent-events tail.
//! - [`workload`]: a deterministic saga workload touching every event type, and a
//!   fingerprint of everything a node answers, for before/after comparisons.

pub mod browser;
pub mod invariants;
pub mod nats;
pub mod otlp;
pub mod raw_http;
pub mod segments;
pub mod sse;
pub mod workload;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("integration-tests sits in the workspace")
        .to_path_buf()
}

/// The `herald` binary, built once per test process (cargo only sets `CARGO_BIN_EXE_*`
/// for the package that owns a binary).
pub fn herald_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = Command::new(cargo)
                .args(["build", "--quiet", "-p", "herald", "--bin", "herald"])
                // The test-only fault domains; always on, so every test shares one build.
                .args(["--features", "fault-injection"])
                .current_dir(workspace())
                .status()
                .expect("cargo runs");
            assert!(status.success(), "building herald failed");
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| workspace().join("target"));
            target.join("debug").join("herald")
        })
        .clone()
}

/// The sample config every test node starts from.
pub fn sample_config() -> PathBuf {
    workspace().join("config").join("herald.toml")
}

/// Writes `dir/auth.toml`: the sample config with `[auth]` on and `tokens` (TOML
/// `[[auth.tokens]]` tables) appended; returns its path.
pub fn sample_config_with_auth(dir: &Path, tokens: &str) -> PathBuf {
    let sample = std::fs::read_to_string(sample_config()).expect("sample config");
    let enabled = sample.replacen("enabled = false", "enabled = true", 1);
    assert_ne!(
        enabled, sample,
        "the sample config has an [auth] enabled key"
    );
    let path = dir.join("auth.toml");
    std::fs::write(&path, format!("{enabled}\n{tokens}")).expect("config");
    path
}

/// The command that runs `binary` as a test node: the sample config, a free port, its own
/// data directory. Callers add the log filter and pipes they need.
pub fn node_command(binary: &Path, data_dir: &Path) -> Command {
    node_command_with(binary, &sample_config(), data_dir)
}

/// Like [`node_command`], with another config file.
pub fn node_command_with(binary: &Path, config: &Path, data_dir: &Path) -> Command {
    let mut command = Command::new(binary);
    command
        .args(["run", "--config"])
        .arg(config)
        .env("HERALD_HTTP__BIND", "127.0.0.1:0")
        .env("HERALD_NODE__DATA_DIR", data_dir)
        // The test build also registers the fault-test domains, which the sample config's
        // empty list would host too: test nodes host the saga unless a test says otherwise.
        .env("HERALD_DOMAINS__ENABLED", saga_domains().join(","))
        .env("NO_COLOR", "1");
    command
}

/// The saga's domains, from the registry.
pub fn saga_domains() -> Vec<&'static str> {
    herald_domains::saga()
        .iter()
        .map(|entry| entry.name)
        .collect()
}

/// The address in the node's "herald node listening" log line, if `line` is that line.
pub fn listening_address(line: &str) -> Option<&str> {
    if !line.contains("herald node listening") {
        return None;
    }
    // Text lines say `address=HOST:PORT`; JSON lines `"address":"HOST:PORT"`.
    line.split_whitespace()
        .find_map(|word| word.strip_prefix("address="))
        .or_else(|| {
            let rest = line.split_once("\"address\":\"")?.1;
            rest.split_once('"').map(|(address, _)| address)
        })
}

/// The partitions of orders and shipping on an embedded test node, unless a test says
/// otherwise (`HERALD_DOMAINS__PARTITIONS`).
pub const TEST_PARTITIONS: u32 = 3;

/// The streams of `domain` laid out in `partitions` partitions, in partition order:
/// `orders-p0`, `orders-p1`, ..., or the domain's own name when it has one.
pub fn domain_streams(domain: &str, partitions: u32) -> Vec<String> {
    (0..partitions.max(1))
        .map(|partition| herald_runtime::partition::stream(domain, partition, partitions))
        .collect()
}

/// The stream holding `key` of `domain` laid out in `partitions` partitions: the node's
/// own routing (`herald_runtime::partition::of`), so a test names the stream a key is in.
pub fn key_stream(domain: &str, key: &str, partitions: u32) -> String {
    let partitions = partitions.max(1);
    herald_runtime::partition::stream(
        domain,
        herald_runtime::partition::of(key, partitions),
        partitions,
    )
}

/// How many partitions `domain` runs in, as a `/v1/streams` answer lists its streams
/// (`orders-p0`..: their count; the domain's own name, or nothing: 1).
pub fn listed_partitions(streams: &Value, domain: &str) -> u32 {
    let prefix = format!("{domain}-p");
    let partitions = stream_names(streams)
        .iter()
        .filter(|name| {
            name.strip_prefix(&prefix)
                .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        })
        .count();
    (partitions as u32).max(1)
}

/// How long a node may take to report its address and then to become ready (recovery of a
/// large log in a debug build on a loaded 2-core machine included).
pub const START_TIMEOUT: Duration = Duration::from_secs(90);

/// A running node; killed when dropped.
pub struct Node {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    logs: Arc<Mutex<Vec<String>>>,
    client: reqwest::blocking::Client,
    data_dir: PathBuf,
    /// Set when the node owns its data directory (removed when the node is dropped).
    _owned_dir: Option<tempfile::TempDir>,
}

impl Node {
    /// Starts a node from the sample config, on a free port, with its own data directory.
    pub fn start() -> Node {
        Self::start_with(&[])
    }

    /// Starts a node with extra `HERALD_*` environment overrides.
    pub fn start_with(env: &[(&str, &str)]) -> Node {
        let data_dir = tempfile::tempdir().expect("temp dir");
        let mut node = Self::launch_in(data_dir.path(), env);
        node._owned_dir = Some(data_dir);
        node.await_ready(START_TIMEOUT);
        node
    }

    /// Starts a node on `data_dir`, which the caller owns and which outlives the node, so a
    /// test can stop or kill the node and start another on the same directory. Returns once
    /// `/readyz` answers 200.
    pub fn start_in(data_dir: &Path, env: &[(&str, &str)]) -> Node {
        let node = Self::launch_in(data_dir, env);
        node.await_ready(START_TIMEOUT);
        node
    }

    /// Starts a node on `data_dir` and returns as soon as it reports its address, without
    /// waiting for readiness (for tests of `/readyz` during recovery).
    pub fn launch_in(data_dir: &Path, env: &[(&str, &str)]) -> Node {
        Self::launch_with_config(&sample_config(), data_dir, env)
    }

    /// Starts a node from `config` with its own data directory; returns once it is ready.
    pub fn start_with_config(config: &Path, env: &[(&str, &str)]) -> Node {
        let data_dir = tempfile::tempdir().expect("temp dir");
        let mut node = Self::launch_with_config(config, data_dir.path(), env);
        node._owned_dir = Some(data_dir);
        node.await_ready(START_TIMEOUT);
        node
    }

    /// Starts a node from `config` on `data_dir`; returns once it reports its address. An
    /// `env` entry with an empty value leaves that variable unset, so a test can start a
    /// node without what the harness sets (`("HERALD_DOMAINS__PARTITIONS", "")`: the
    /// node's own default).
    pub fn launch_with_config(config: &Path, data_dir: &Path, env: &[(&str, &str)]) -> Node {
        Self::launch(&herald_binary(), config, data_dir, env)
    }

    /// Starts `binary`, a service built on Herald (`herald::main` over its own domains),
    /// from the sample config with its own data directory; returns once it is ready.
    pub fn start_service(binary: &Path, env: &[(&str, &str)]) -> Node {
        let data_dir = tempfile::tempdir().expect("temp dir");
        let mut node = Self::launch(binary, &sample_config(), data_dir.path(), env);
        node._owned_dir = Some(data_dir);
        node.await_ready(START_TIMEOUT);
        node
    }

    fn launch(binary: &Path, config: &Path, data_dir: &Path, env: &[(&str, &str)]) -> Node {
        let mut command = node_command_with(binary, config, data_dir);
        command
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // Embedded test nodes spread orders and shipping over partitions, whatever the
        // machine's cores, so every guarantee is tested per partition.
        let networked = env.iter().any(|(key, _)| key.starts_with("HERALD_BUS__"))
            || std::fs::read_to_string(config).is_ok_and(|text| text.contains("\"nats\""));
        if !networked {
            command.env("HERALD_DOMAINS__PARTITIONS", TEST_PARTITIONS.to_string());
        }
        for (key, value) in env {
            match value.is_empty() {
                true => command.env_remove(key),
                false => command.env(key, value),
            };
        }
        let mut child = command.spawn().expect("herald starts");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (address_tx, address_rx) = mpsc::channel();
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        collect(stdout, Arc::clone(&logs), Some(address_tx));
        collect(stderr, Arc::clone(&logs), None);
        let address = address_rx.recv_timeout(START_TIMEOUT).unwrap_or_else(|_| {
            let _ = child.kill();
            let status = child.wait().ok();
            // The collectors may still be draining the pipes.
            std::thread::sleep(Duration::from_millis(100));
            panic!(
                "node did not report its address (exit status {status:?}); logs:\n{}",
                logs.lock().map(|l| l.join("\n")).unwrap_or_default()
            )
        });
        Node {
            child,
            base: format!("http://{address}"),
            logs,
            client: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("http client"),
            data_dir: data_dir.to_path_buf(),
            _owned_dir: None,
        }
    }

    /// Waits until `/readyz` answers 200, failing with the node's logs if it does not within
    /// `timeout` or if the process exits first.
    pub fn await_ready(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let last = match self.client.get(format!("{}/readyz", self.base)).send() {
                Ok(response) if response.status().as_u16() == 200 => return,
                Ok(response) => {
                    format!(
                        "{} {}",
                        response.status(),
                        response.text().unwrap_or_default()
                    )
                }
                Err(error) => format!("request failed: {error}"),
            };
            assert!(
                Instant::now() < deadline,
                "node not ready after {timeout:?}: expected /readyz 200, last answer: {last}; \
                 logs:\n{}",
                self.logs_tail(80)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Makes the node own `dir`: removed when the node is dropped.
    pub fn own_dir(&mut self, dir: tempfile::TempDir) {
        self._owned_dir = Some(dir);
    }

    /// The node's data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The node's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The HTTP client the node's helpers use (30 s timeout).
    pub fn client(&self) -> &reqwest::blocking::Client {
        &self.client
    }

    /// Everything the node logged so far.
    pub fn logs(&self) -> String {
        self.logs.lock().map(|l| l.join("\n")).unwrap_or_default()
    }

    /// The last `lines` lines the node logged, for failure messages.
    pub fn logs_tail(&self, lines: usize) -> String {
        self.logs
            .lock()
            .map(|l| l[l.len().saturating_sub(lines)..].join("\n"))
            .unwrap_or_default()
    }

    /// SIGKILL: the process dies at once, mid-write if it was writing; then reaps it.
    pub fn kill(&mut self) {
        // std's Child::kill sends SIGKILL on Unix.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then asserts that the node exits with status 0 within 30 s.
    pub fn stop(&mut self) {
        self.signal("TERM");
        let status = self.wait_exit(Duration::from_secs(30)).unwrap_or_else(|| {
            panic!(
                "expected the node to exit within 30 s of SIGTERM, it is still running; logs:\n{}",
                self.logs_tail(80)
            )
        });
        assert_eq!(
            status.code(),
            Some(0),
            "expected exit status 0 after SIGTERM, saw {status}; logs:\n{}",
            self.logs_tail(80)
        );
    }

    /// GET a path.
    pub fn get(&self, path: &str) -> Reply {
        Reply::from(self.client.get(format!("{}{path}", self.base)).send())
    }

    /// POST a body with a content type.
    pub fn post(&self, path: &str, content_type: &str, body: impl Into<Vec<u8>>) -> Reply {
        self.post_with(path, content_type, &[], body)
    }

    /// POST with extra headers.
    pub fn post_with(
        &self,
        path: &str,
        content_type: &str,
        headers: &[(&str, &str)],
        body: impl Into<Vec<u8>>,
    ) -> Reply {
        let mut request = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", content_type)
            .body(body.into());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        Reply::from(request.send())
    }

    /// POST one structured-mode event.
    pub fn publish(&self, event: &Value) -> Reply {
        self.post(
            "/v1/events",
            "application/cloudevents+json",
            event.to_string(),
        )
    }

    /// POST one event and assert it was accepted (202); returns its sequence.
    pub fn accept(&self, event: &Value) -> u64 {
        let reply = self.publish(event);
        assert_eq!(
            reply.status, 202,
            "expected 202 for {event}, saw {}: {}",
            reply.status, reply.json
        );
        reply.json["sequence"]
            .as_u64()
            .unwrap_or_else(|| panic!("expected a sequence in the 202 body: {}", reply.json))
    }

    /// POST a batch.
    pub fn publish_batch(&self, events: &[Value]) -> Reply {
        self.post(
            "/v1/events",
            "application/cloudevents-batch+json",
            Value::from(events.to_vec()).to_string(),
        )
    }

    /// An entity's JSON, or `None` on 404.
    pub fn entity(&self, domain: &str, key: &str) -> Option<Value> {
        self.try_entity(domain, key)
            .unwrap_or_else(|error| panic!("{error}"))
    }

    /// An entity's JSON, `None` on 404, or what else was answered (a partition moving
    /// between nodes answers 503 for a moment).
    pub fn try_entity(&self, domain: &str, key: &str) -> Result<Option<Value>, String> {
        let reply = self.get(&format!("/v1/domains/{domain}/entities/{key}"));
        match reply.status {
            200 => Ok(Some(reply.json)),
            404 => Ok(None),
            other => Err(format!(
                "entity {domain}/{key}: status {other}: {}",
                reply.json
            )),
        }
    }

    /// Waits until `domain/key` has `field` equal to `expected`; returns the entity.
    pub fn await_field(&self, domain: &str, key: &str, field: &str, expected: &Value) -> Value {
        let mut last = Value::Null;
        let reached = poll(Duration::from_secs(20), || {
            last = self.entity(domain, key).unwrap_or(Value::Null);
            &last[field] == expected
        });
        assert!(
            reached,
            "{domain}/{key}.{field} never became {expected}; last: {last}"
        );
        last
    }

    /// The analytics summary.
    pub fn summary(&self) -> Value {
        self.try_summary().unwrap_or_else(|error| panic!("{error}"))
    }

    /// Analytics' `summary`, or what else was answered.
    pub fn try_summary(&self) -> Result<Value, String> {
        let reply = self.get("/v1/domains/analytics/queries/summary");
        match reply.status {
            200 => Ok(reply.json),
            other => Err(format!("summary: status {other}: {}", reply.json)),
        }
    }

    /// `GET /v1/streams`, asserted 200 with a `streams` array.
    pub fn streams(&self) -> Value {
        let reply = self.get("/v1/streams");
        assert_eq!(
            reply.status, 200,
            "expected 200 from /v1/streams, saw {}: {}",
            reply.status, reply.text
        );
        assert!(
            reply.json["streams"].is_array(),
            "expected {{\"streams\": [...]}} from /v1/streams, saw {}",
            reply.text
        );
        reply.json
    }

    /// How many partitions `domain` runs in on this node, by its streams in `/v1/streams`.
    pub fn partitions(&self, domain: &str) -> u32 {
        listed_partitions(&self.streams(), domain)
    }

    /// The stream holding `key` of `domain` on this node (`orders-p1`, or `inventory`).
    pub fn key_stream(&self, domain: &str, key: &str) -> String {
        key_stream(domain, key, self.partitions(domain))
    }

    /// The streams of `domain`'s partitions on this node, in partition order.
    pub fn domain_streams(&self, domain: &str) -> Vec<String> {
        domain_streams(domain, self.partitions(domain))
    }

    /// One page of `GET /v1/streams/{stream}/events?from=&limit=`, asserted 200 with the
    /// batch content type and a JSON array.
    pub fn events_page(&self, stream: &str, from: u64, limit: u64) -> Vec<Value> {
        let path = format!("/v1/streams/{stream}/events?from={from}&limit={limit}");
        // A 503 (a JetStream stream between leaders) is asked again, for up to 10 s.
        let mut reply = self.get(&path);
        for _ in 0..20 {
            if reply.status != 503 {
                break;
            }
            std::thread::sleep(Duration::from_millis(500));
            reply = self.get(&path);
        }
        assert_eq!(
            reply.status, 200,
            "expected 200 from {path}, saw {}: {}",
            reply.status, reply.text
        );
        assert!(
            reply
                .content_type
                .starts_with("application/cloudevents-batch+json"),
            "expected content-type application/cloudevents-batch+json from {path}, saw {:?}",
            reply.content_type
        );
        match reply.json {
            Value::Array(events) => events,
            other => panic!("expected a JSON array from {path}, saw {other}"),
        }
    }

    /// Every event of `stream`, read through the events API in pages of 1000.
    pub fn read_stream(&self, stream: &str) -> Vec<Value> {
        let mut events: Vec<Value> = Vec::new();
        let mut from = 1;
        loop {
            let page = self.events_page(stream, from, 1000);
            let Some(last) = page.last() else {
                return events;
            };
            let sequence = last["sequence"].as_u64().unwrap_or_else(|| {
                panic!("expected a numeric \"sequence\" on every event of {stream}, saw {last}")
            });
            assert!(
                sequence >= from,
                "expected the page of {stream} from {from} to end at a sequence >= {from}, \
                 it ends at {sequence}"
            );
            from = sequence + 1;
            events.extend(page);
        }
    }

    /// Every stream the node lists in `/v1/streams`, read whole, by name.
    pub fn read_all_streams(&self) -> BTreeMap<String, Vec<Value>> {
        stream_names(&self.streams())
            .into_iter()
            .map(|name| {
                let events = self.read_stream(&name);
                (name, events)
            })
            .collect()
    }

    /// Waits until every subscriber of every stream has lag 0 and two reads of
    /// `/v1/streams` 300 ms apart are equal (reactions cause reactions); returns that answer.
    pub fn settle(&self) -> Value {
        self.settle_within(Duration::from_secs(90))
    }

    /// [`Node::settle`] with a deadline.
    pub fn settle_within(&self, timeout: Duration) -> Value {
        settle_streams(timeout, || self.streams())
    }

    /// Sends a signal (`"TERM"`, `"INT"`, `"KILL"`) to the node.
    pub fn signal(&self, signal: &str) {
        // Through kill(1): the workspace forbids unsafe code, and libc's kill is unsafe.
        let status = Command::new("kill")
            .args(["-s", signal, &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -s {signal} failed");
    }

    /// Waits for the node to exit, at most `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The stream names in a `/v1/streams` answer.
pub fn stream_names(streams: &Value) -> Vec<String> {
    streams["streams"]
        .as_array()
        .map(|streams| {
            streams
                .iter()
                .filter_map(|s| s["stream"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until every subscriber in `read()`'s `/v1/streams` answer has lag 0 and two reads
/// 300 ms apart are equal (reactions cause reactions); returns that answer. `read` is how
/// the answer is fetched: with a token, where auth is on.
pub fn settle_streams(timeout: Duration, mut read: impl FnMut() -> Value) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let first = read();
        if caught_up(&first) {
            std::thread::sleep(Duration::from_millis(300));
            let second = read();
            if second == first {
                return second;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the node did not settle within {timeout:?}: expected every subscriber at lag \
             0 and no change between two reads; last /v1/streams: {first}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether every subscriber of every stream in a `/v1/streams` answer has lag 0.
pub fn caught_up(streams: &Value) -> bool {
    streams["streams"].as_array().is_some_and(|streams| {
        streams.iter().all(|stream| {
            stream["subscribers"]
                .as_array()
                .is_some_and(|subscribers| subscribers.iter().all(|s| s["lag"].as_u64() == Some(0)))
        })
    })
}

fn collect(
    stream: impl std::io::Read + Send + 'static,
    logs: Arc<Mutex<Vec<String>>>,
    address: Option<mpsc::Sender<String>>,
) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if let (Some(sender), Some(found)) = (&address, listening_address(&line)) {
                let _ = sender.send(found.to_owned());
            }
            if let Ok(mut logs) = logs.lock() {
                logs.push(line);
            }
        }
    });
}

/// A finished (or timed-out) run of the `herald` binary.
#[derive(Debug)]
pub struct Finished {
    /// The exit code; `None` if it was killed by a signal or by the timeout.
    pub status: Option<i32>,
    /// Whether it had to be killed because it outlived its timeout.
    pub timed_out: bool,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
}

impl Finished {
    /// Standard output and standard error together, for searching and failure messages.
    pub fn output(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

/// Runs `command` to completion with piped output, killing it after `timeout`.
pub fn run_command(mut command: Command, timeout: Duration) -> Finished {
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().expect("command starts");
    let read = |stream: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            if let Some(mut stream) = stream {
                let _ = stream.read_to_end(&mut text);
            }
            String::from_utf8_lossy(&text).into_owned()
        })
    };
    let stdout = read(child.stdout.take().map(|s| Box::new(s) as Box<_>));
    let stderr = read(child.stderr.take().map(|s| Box::new(s) as Box<_>));
    let deadline = Instant::now() + timeout;
    let mut timed_out = false;
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break status;
        }
        if Instant::now() >= deadline {
            timed_out = true;
            let _ = child.kill();
            break child.wait().expect("reap the child");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Finished {
        status: status.code(),
        timed_out,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

/// `herald log ARGS...` (the offline log tools), with a 120 s timeout.
pub fn herald_log(args: &[&str]) -> Finished {
    let mut command = Command::new(herald_binary());
    command.arg("log").args(args).env("NO_COLOR", "1");
    run_command(command, Duration::from_secs(120))
}

/// `herald log SUBCOMMAND --data-dir DIR`.
pub fn herald_log_on(subcommand: &str, data_dir: &Path, extra: &[&str]) -> Finished {
    let dir = data_dir.to_string_lossy().into_owned();
    let mut args = vec![subcommand, "--data-dir", dir.as_str()];
    args.extend_from_slice(extra);
    herald_log(&args)
}

/// `herald log verify` on a damaged `data_dir`: asserted to fail and to name the damage
/// (`names_place`); answers its output.
pub fn verify_refuses(data_dir: &Path, what: &str, names_place: &dyn Fn(&str) -> bool) -> String {
    let verify = herald_log_on("verify", data_dir, &[]);
    let output = verify.output();
    assert!(
        verify.status.is_some_and(|code| code != 0) && names_place(&output),
        "{what}: expected `herald log verify` to fail and name the damage, saw {:?}:\n{output}",
        verify.status
    );
    output
}

/// `herald log repair` on a damaged `data_dir`: asserted to succeed and to say what it cut
/// (`names_place`); answers its output.
pub fn repair_cuts(data_dir: &Path, what: &str, names_place: &dyn Fn(&str) -> bool) -> String {
    let repair = herald_log_on("repair", data_dir, &[]);
    let output = repair.output();
    assert_eq!(
        repair.status,
        Some(0),
        "{what}: expected `herald log repair` to succeed:\n{output}"
    );
    assert!(
        names_place(&output),
        "{what}: expected `herald log repair` to say what it cut:\n{output}"
    );
    output
}

/// `herald log verify` on `data_dir`, asserted to pass.
pub fn verify_passes(data_dir: &Path, what: &str) {
    let verify = herald_log_on("verify", data_dir, &[]);
    assert_eq!(
        verify.status,
        Some(0),
        "{what}: expected `herald log verify` to pass:\n{}",
        verify.output()
    );
}

/// `herald run` on `data_dir` for a node expected to refuse to start: waits up to `timeout`
/// for it to exit (killing it otherwise, with `timed_out` set).
pub fn run_node_to_exit(data_dir: &Path, env: &[(&str, &str)], timeout: Duration) -> Finished {
    let mut command = node_command(&herald_binary(), data_dir);
    command.env("RUST_LOG", "info");
    for (key, value) in env {
        command.env(key, value);
    }
    run_command(command, timeout)
}

/// A small seeded pseudo-random generator (xorshift64*), so a failing run can be repeated
/// with the seed it printed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (0 is replaced, xorshift cannot leave it).
    pub fn seeded(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    /// The seed in environment variable `var` if set, else one from the clock; returns the
    /// generator and the seed to print.
    pub fn from_env_or_clock(var: &str) -> (Rng, u64) {
        let seed = std::env::var(var)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
            });
        (Rng::seeded(seed), seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `low..=high`.
    pub fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.next_u64() % (high - low + 1)
    }

    /// True with `percent` in 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }

    /// One item of a non-empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next_u64() % items.len() as u64) as usize]
    }
}

/// Where two JSON values differ, as `path: expected X, saw Y` lines (at most `limit`).
pub fn diff(expected: &Value, seen: &Value, limit: usize) -> Vec<String> {
    fn walk(path: &str, expected: &Value, seen: &Value, out: &mut Vec<String>, limit: usize) {
        if out.len() >= limit || expected == seen {
            return;
        }
        match (expected, seen) {
            (Value::Object(a), Value::Object(b)) => {
                let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
                for key in keys {
                    let a = a.get(key).unwrap_or(&Value::Null);
                    let b = b.get(key).unwrap_or(&Value::Null);
                    walk(&format!("{path}/{key}"), a, b, out, limit);
                }
            }
            (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
                for (index, (a, b)) in a.iter().zip(b).enumerate() {
                    walk(&format!("{path}/{index}"), a, b, out, limit);
                }
            }
            (Value::Array(a), Value::Array(b)) => {
                out.push(format!(
                    "{path}: expected {} items, saw {}",
                    a.len(),
                    b.len()
                ));
                let first = a.iter().zip(b).position(|(a, b)| a != b);
                if let Some(index) = first {
                    walk(&format!("{path}/{index}"), &a[index], &b[index], out, limit);
                }
            }
            _ => out.push(format!("{path}: expected {expected}, saw {seen}")),
        }
    }
    let mut out = Vec::new();
    walk("", expected, seen, &mut out, limit);
    out
}

/// Asserts two JSON values are equal, naming `what` and the first differences.
pub fn assert_same_json(what: &str, expected: &Value, seen: &Value) {
    let differences = diff(expected, seen, 12);
    assert!(
        differences.is_empty(),
        "{what}: expected the same as before, differences:\n  {}",
        differences.join("\n  ")
    );
}

/// An HTTP answer: status, content type and body as JSON (`Null` when not JSON).
#[derive(Debug)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// The `content-type` header.
    pub content_type: String,
    /// The `retry-after` header, if any.
    pub retry_after: Option<String>,
    /// The body parsed as JSON.
    pub json: Value,
    /// The body as text.
    pub text: String,
}

impl From<reqwest::Result<reqwest::blocking::Response>> for Reply {
    fn from(response: reqwest::Result<reqwest::blocking::Response>) -> Self {
        let response = response.expect("the node answers");
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let content_type = header("content-type").unwrap_or_default();
        let retry_after = header("retry-after");
        let status = response.status().as_u16();
        let text = response.text().unwrap_or_default();
        Reply {
            status,
            content_type,
            retry_after,
            json: serde_json::from_str(&text).unwrap_or(Value::Null),
            text,
        }
    }
}

/// Polls `condition` every 20 ms until it holds or `timeout` passes.
pub fn poll(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits (up to 20 s) for `condition`, failing the test with `what` if it never holds.
pub fn eventually(what: &str, condition: impl FnMut() -> bool) {
    assert!(
        poll(Duration::from_secs(20), condition),
        "timed out waiting for: {what}"
    );
}

/// A structured CloudEvent with a fresh-looking id derived from the type and subject.
pub fn event(event_type: &str, subject: &str, data: Value) -> Value {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    json!({
        "specversion": "1.0",
        "id": format!("{event_type}-{subject}-{n}-{}", std::process::id()),
        "source": "/tests/client",
        "type": event_type,
        "subject": subject,
        "data": data,
    })
}

/// `inventory.StockAdded`.
pub fn stock_added(sku: &str, quantity: u64) -> Value {
    event(
        "inventory.StockAdded",
        sku,
        json!({"sku": sku, "quantity": quantity}),
    )
}

/// `payments.CreditGranted`.
pub fn credit_granted(customer: &str, amount: u64) -> Value {
    event(
        "payments.CreditGranted",
        customer,
        json!({"customer": customer, "amount": amount}),
    )
}

/// `orders.OrderPlaced` with `(sku, quantity, unit_price)` lines.
pub fn order_placed(order: &str, customer: &str, lines: &[(&str, u64, u64)]) -> Value {
    let lines: Vec<Value> = lines
        .iter()
        .map(|(sku, quantity, unit_price)| {
            json!({"sku": sku, "quantity": quantity, "unit_price": unit_price})
        })
        .collect();
    event(
        "orders.OrderPlaced",
        order,
        json!({"order_id": order, "customer": customer, "lines": lines}),
    )
}

/// An event about an order carrying only its id (`orders.OrderCancelled` adds a reason).
pub fn order_event(event_type: &str, order: &str) -> Value {
    let data = if event_type == "orders.OrderCancelled" {
        json!({"order_id": order, "reason": "changed my mind"})
    } else {
        json!({"order_id": order})
    };
    event(event_type, order, data)
}

/// The value of one sample in a Prometheus text exposition, named as written on its line:
/// `herald_log_head_offset` or `herald_stream_events_total{stream="orders"}`.
pub fn metric_value(exposition: &str, sample: &str) -> Option<f64> {
    exposition.lines().find_map(|line| {
        let value = line.strip_prefix(sample)?.strip_prefix(' ')?;
        value.trim().parse().ok()
    })
}
