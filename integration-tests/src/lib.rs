//! Support for black-box tests: build the real `herald` binary, start nodes on free ports
//! with their own data directories, talk to them over HTTP, and stop them with signals.

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

/// The command that runs `binary` as a test node: the sample config, a free port, its own
/// data directory. Callers add the log filter and pipes they need.
pub fn node_command(binary: &Path, data_dir: &Path) -> Command {
    let mut command = Command::new(binary);
    command
        .args(["run", "--config"])
        .arg(sample_config())
        .env("HERALD_HTTP__BIND", "127.0.0.1:0")
        .env("HERALD_NODE__DATA_DIR", data_dir)
        .env("NO_COLOR", "1");
    command
}

/// The address in the node's "herald node listening" log line, if `line` is that line.
pub fn listening_address(line: &str) -> Option<&str> {
    if !line.contains("herald node listening") {
        return None;
    }
    line.split_whitespace()
        .find_map(|word| word.strip_prefix("address="))
}

/// A running node; killed when dropped.
pub struct Node {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    logs: Arc<Mutex<Vec<String>>>,
    client: reqwest::blocking::Client,
    _data_dir: tempfile::TempDir,
}

impl Node {
    /// Starts a node from the sample config, on a free port, with its own data directory.
    pub fn start() -> Node {
        Self::start_with(&[])
    }

    /// Starts a node with extra `HERALD_*` environment overrides.
    pub fn start_with(env: &[(&str, &str)]) -> Node {
        let data_dir = tempfile::tempdir().expect("temp dir");
        let mut command = node_command(&herald_binary(), data_dir.path());
        command
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("herald starts");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (address_tx, address_rx) = mpsc::channel();
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        collect(stdout, Arc::clone(&logs), Some(address_tx));
        collect(stderr, Arc::clone(&logs), None);
        let address = address_rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| {
                let _ = child.kill();
                panic!(
                    "node did not report its address; logs:\n{}",
                    logs.lock().map(|l| l.join("\n")).unwrap_or_default()
                )
            });
        let node = Node {
            child,
            base: format!("http://{address}"),
            logs,
            client: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("http client"),
            _data_dir: data_dir,
        };
        eventually("node ready", || node.get("/readyz").status == 200);
        node
    }

    /// Everything the node logged so far.
    pub fn logs(&self) -> String {
        self.logs.lock().map(|l| l.join("\n")).unwrap_or_default()
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
        let reply = self.get(&format!("/v1/domains/{domain}/entities/{key}"));
        match reply.status {
            200 => Some(reply.json),
            404 => None,
            other => panic!("entity {domain}/{key}: status {other}: {}", reply.json),
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
        let reply = self.get("/v1/domains/analytics/queries/summary");
        assert_eq!(reply.status, 200, "summary: {}", reply.json);
        reply.json
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
