//! A replicated JetStream for tests: three nats-servers on loopback, routed to one another
//! as one cluster with JetStream on each, so Herald can run with `replicas = 3` and a test
//! can SIGKILL one server under load and start it again on the same store and ports.
//!
//! Each server has its own temporary store, a client port, a cluster (route) port and a
//! monitoring port; the monitoring port's `/healthz` says when a server has a JetStream
//! meta leader and its streams are current, and `/jsz` says who leads and what each
//! replica holds.

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{free_port, launch_node_at, nats_server_binary};
use crate::Node;

/// Servers in a [`NatsCluster`]: the smallest cluster that keeps a quorum with one down.
pub const CLUSTER_SIZE: usize = 3;

/// One server of the cluster: its ports and store outlive its process, so it can come back
/// as the same member.
struct Member {
    /// Its `server_name`, as `/jsz` names leaders.
    name: String,
    /// Where clients connect.
    client_port: u16,
    /// Where the other servers route to it.
    route_port: u16,
    /// Its HTTP monitoring port (`/healthz`, `/jsz`).
    monitor_port: u16,
    /// Its store, configuration and log.
    dir: tempfile::TempDir,
    child: Option<Child>,
}

/// Three nats-servers with JetStream in one cluster on 127.0.0.1; every server is killed
/// when dropped.
pub struct NatsCluster {
    members: Vec<Member>,
    /// The `cluster { name }` every member shares.
    name: String,
    binary: PathBuf,
    /// An HTTP client for the monitoring ports.
    monitor: reqwest::blocking::Client,
}

impl NatsCluster {
    /// Starts [`CLUSTER_SIZE`] servers routed to one another; returns once every one of
    /// them answers `/healthz` 200, that is once JetStream has a meta leader they all
    /// follow.
    pub fn start() -> NatsCluster {
        let ports = distinct_free_ports(3 * CLUSTER_SIZE);
        let name = format!("herald-test-{}", std::process::id());
        let members = (0..CLUSTER_SIZE)
            .map(|index| Member {
                name: format!("{name}-n{index}"),
                client_port: ports[3 * index],
                route_port: ports[3 * index + 1],
                monitor_port: ports[3 * index + 2],
                dir: tempfile::tempdir().expect("temp dir"),
                child: None,
            })
            .collect();
        let mut cluster = NatsCluster {
            members,
            name,
            binary: nats_server_binary(),
            monitor: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .expect("http client"),
        };
        for index in 0..CLUSTER_SIZE {
            cluster.launch(index);
        }
        cluster.await_healthy(Duration::from_secs(60));
        cluster
    }

    /// How many servers the cluster has.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the cluster has no server (never, once started).
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// `nats://127.0.0.1:PORT` of server `index`.
    pub fn url(&self, index: usize) -> String {
        format!("nats://127.0.0.1:{}", self.members[index].client_port)
    }

    /// Every server's URL, comma-separated, as `HERALD_BUS__NATS__SERVERS` takes them.
    pub fn urls(&self) -> String {
        (0..self.len())
            .map(|index| self.url(index))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Server `index`'s `server_name`.
    pub fn server_name(&self, index: usize) -> &str {
        &self.members[index].name
    }

    /// Server `index`'s log so far.
    pub fn log(&self, index: usize) -> String {
        std::fs::read_to_string(self.members[index].dir.path().join("nats.log")).unwrap_or_default()
    }

    /// Whether server `index` is running (started and not killed).
    pub fn is_running(&self, index: usize) -> bool {
        self.members[index].child.is_some()
    }

    fn launch(&mut self, index: usize) {
        let routes: Vec<String> = self
            .members
            .iter()
            .map(|member| format!("\"nats-route://127.0.0.1:{}\"", member.route_port))
            .collect();
        let member = &mut self.members[index];
        let config = member.dir.path().join("nats.conf");
        let store = member.dir.path().join("store");
        // Durability comes from the other two replicas here, not from fsync: a SIGKILL
        // takes one server's unsynced writes, and its peers hold them.
        std::fs::write(
            &config,
            format!(
                "server_name: {:?}\nlisten: 127.0.0.1:{}\nhttp: 127.0.0.1:{}\n\
                 jetstream {{\n  store_dir: {:?}\n}}\n\
                 cluster {{\n  name: {:?}\n  listen: 127.0.0.1:{}\n  routes: [{}]\n}}\n",
                member.name,
                member.client_port,
                member.monitor_port,
                store.display().to_string(),
                self.name,
                member.route_port,
                routes.join(", "),
            ),
        )
        .expect("nats config");
        member.child = Some(super::spawn_server(
            &self.binary,
            &config,
            member.dir.path(),
        ));
        let port = member.client_port;
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "cluster server {index} did not listen on {port} within 20 s; its log:\n{}",
                self.log(index)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL of server `index`: it dies at once, mid-write if it was writing; reaped.
    pub fn kill(&mut self, index: usize) {
        if let Some(mut child) = self.members[index].child.take() {
            // std's Child::kill sends SIGKILL on Unix.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts server `index` again after [`NatsCluster::kill`], on the same ports and store;
    /// returns once it accepts connections (not yet caught up: see
    /// [`NatsCluster::await_healthy`]).
    pub fn start_again(&mut self, index: usize) {
        assert!(
            self.members[index].child.is_none(),
            "cluster server {index} is still running"
        );
        self.launch(index);
    }

    /// `GET path` on server `index`'s monitoring port: status and body.
    fn monitor_get(&self, index: usize, path: &str) -> Result<(u16, String), String> {
        let url = format!(
            "http://127.0.0.1:{}{path}",
            self.members[index].monitor_port
        );
        let response = self.monitor.get(&url).send().map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        Ok((status, response.text().unwrap_or_default()))
    }

    /// Waits until every running server answers `/healthz` 200: JetStream has a meta
    /// leader, the server is current with it, and its replicas of every stream are
    /// current. Fails after `timeout` naming each unhealthy server's last answer.
    pub fn await_healthy(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let unhealthy: Vec<String> = (0..self.len())
                .filter(|&index| self.is_running(index))
                .filter_map(|index| match self.monitor_get(index, "/healthz") {
                    Ok((200, _)) => None,
                    Ok((status, body)) => {
                        Some(format!("{}: {status} {body}", self.members[index].name))
                    }
                    Err(error) => Some(format!("{}: {error}", self.members[index].name)),
                })
                .collect();
            if unhealthy.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the NATS cluster is not healthy after {timeout:?}: expected /healthz 200 from \
                 every server, saw:\n  {}\nlogs (last 20 lines each):\n{}",
                unhealthy.join("\n  "),
                self.logs_tail(20)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The last `lines` lines of every server's log, for failure messages.
    pub fn logs_tail(&self, lines: usize) -> String {
        (0..self.len())
            .map(|index| {
                let log = self.log(index);
                let all: Vec<&str> = log.lines().collect();
                format!(
                    "--- {}\n{}",
                    self.members[index].name,
                    all[all.len().saturating_sub(lines)..].join("\n")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// `/jsz` (with `query`) of the first running server that answers, as JSON.
    fn jsz(&self, query: &str) -> Option<Value> {
        (0..self.len())
            .filter(|&index| self.is_running(index))
            .find_map(
                |index| match self.monitor_get(index, &format!("/jsz{query}")) {
                    Ok((200, body)) => serde_json::from_str(&body).ok(),
                    _ => None,
                },
            )
    }

    /// The index of the server leading JetStream's meta group, if one leads now.
    pub fn meta_leader(&self) -> Option<usize> {
        let jsz = self.jsz("")?;
        let leader = jsz["meta_cluster"]["leader"].as_str()?;
        self.members.iter().position(|member| member.name == leader)
    }

    /// What server `index`'s own replica of each stream holds, by stream name:
    /// `(messages, last sequence)`. A follower answers for its copy, so comparing servers
    /// tells whether every replica holds the same.
    pub fn replica_states(&self, index: usize) -> Result<BTreeMap<String, (u64, u64)>, String> {
        let (status, body) = self.monitor_get(index, "/jsz?streams=true")?;
        if status != 200 {
            return Err(format!("/jsz answered {status}: {body}"));
        }
        let jsz: Value =
            serde_json::from_str(&body).map_err(|e| format!("/jsz is not JSON ({e}): {body}"))?;
        let mut states = BTreeMap::new();
        for account in jsz["account_details"].as_array().into_iter().flatten() {
            for stream in account["stream_detail"].as_array().into_iter().flatten() {
                let state = &stream["state"];
                states.insert(
                    stream["name"].as_str().unwrap_or_default().to_owned(),
                    (
                        state["messages"].as_u64().unwrap_or(0),
                        state["last_seq"].as_u64().unwrap_or(0),
                    ),
                );
            }
        }
        Ok(states)
    }

    /// Starts a herald node connected to every server of the cluster, from
    /// `config/nats.toml`, with id `id`, hosting `domains` (comma-separated), its streams
    /// kept in as many replicas as there are servers (unless `env` sets
    /// `HERALD_BUS__NATS__REPLICAS`); returns once it is ready.
    pub fn node(&self, id: &str, domains: &str, env: &[(&str, &str)]) -> Node {
        let replicas = self.len().to_string();
        let mut all = vec![("HERALD_BUS__NATS__REPLICAS", replicas.as_str())];
        // Later entries win: the caller's own replica count, if any.
        all.extend_from_slice(env);
        let node = launch_node_at(&self.urls(), id, domains, &all);
        node.await_ready(crate::START_TIMEOUT);
        node
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for index in 0..self.len() {
            self.kill(index);
        }
    }
}

/// `count` ports free now, no two the same, below the kernel's ephemeral range: a killed
/// server must bind its ports again, and an outgoing connection (another test's, or a peer
/// dialling the dead server's route) may hold any port of that range by then. Ports the
/// kernel hands out (`free_port`) serve when no such range is known.
fn distinct_free_ports(count: usize) -> Vec<u16> {
    let ephemeral_floor = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .filter(|&floor| floor > 20_000);
    // Per process and per call, so tests started together try different ports.
    let clock = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |since| since.as_nanos() as u64);
    let mut rng = crate::Rng::seeded(clock ^ (u64::from(std::process::id()) << 32));
    let mut seen = BTreeSet::new();
    let mut ports = Vec::with_capacity(count);
    while ports.len() < count {
        let port = match ephemeral_floor {
            Some(floor) => {
                let candidate = rng.between(10_000, u64::from(floor) - 1) as u16;
                let free = std::net::TcpListener::bind(("127.0.0.1", candidate)).is_ok();
                match free {
                    true => candidate,
                    false => continue,
                }
            }
            None => free_port(),
        };
        if seen.insert(port) {
            ports.push(port);
        }
    }
    ports
}
