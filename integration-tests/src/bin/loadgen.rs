//! `loadgen`: an HTTP load benchmark that reports Herald's throughput as ratios against a
//! baseline measured in the same run, on the same machine, with the same client.
//!
//! The baseline is a bare actix-web server started in this process: `POST /v1/events`
//! parses the JSON body and answers 202 with a position per event without storing;
//! `GET /v1/domains/inventory/entities/{key}` answers a fixed entity. Herald is the real
//! `herald` binary. Every scenario runs against both for `--seconds` over `--connections`
//! keep-alive connections, after an uncounted `--warmup`. Absolute figures depend on the
//! machine and on whatever else runs on it; the ratios are the result.
//!
//! The client is hyper 1's connection-level HTTP/1.1 API plus `hyper-util`'s tokio adapter:
//! reqwest already compiles both with these features, so the client adds no crate to the
//! build, where `awc` would add actix's client stack. One task per connection gives exactly
//! `--connections` keep-alive connections with no pool in the way; as in `wrk`, they are
//! spread over one current-thread runtime per core.
//!
//! `--networked` compares a node on NATS JetStream with an embedded node (single events)
//! and with raw async-nats publishing (batches); `--partitions` spreads `orders` over 1, 2
//! and 3 nodes on NATS and times a SIGKILLed node's partitions moving. Errors are counted
//! by HTTP status (or failure kind), so 503s and 429s under load show as such.

/// The same allocator as the `herald` binary, so the baseline server is not handicapped.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, ChildStdout, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpResponse, HttpServer};
use anyhow::{bail, Context as _, Result};
use clap::Parser;
use herald_integration_tests::{node_command_with, workspace};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{header, Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde_json::{json, Value};

/// Distinct skus that events and queries spread over.
const SKUS: u64 = 1000;
/// Events per request in the batched-ingest scenario.
const BATCH: u64 = 100;
const STRUCTURED: &str = "application/cloudevents+json";
const BATCHED: &str = "application/cloudevents-batch+json";

type Body = Full<Bytes>;

#[derive(Parser)]
#[command(about = "Herald's HTTP throughput as ratios against a bare actix-web baseline")]
struct Cli {
    /// Measured seconds per scenario and target.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Uncounted warm-up seconds before each measured run.
    #[arg(long, default_value_t = 1)]
    warmup: u64,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// The `herald` binary [default: <workspace>/target/release/herald].
    #[arg(long)]
    herald: Option<std::path::PathBuf>,
    /// Print JSON instead of markdown tables.
    #[arg(long)]
    json: bool,
    /// Networked mode instead: single-event ingest of one node on NATS JetStream against an
    /// embedded node, and its batched ingest against raw async-nats JetStream publishing of
    /// the same events to the same server.
    #[arg(long)]
    networked: bool,
    /// Partitions instead: `orders` at `--partition-count` partitions on 1, 2 and 3 nodes
    /// (ingest), and the time a SIGKILLed node's partitions take to be ready elsewhere at
    /// the default lease (`--runs` kills).
    #[arg(long)]
    partitions: bool,
    /// Partitions of `orders` in `--partitions`: 1 to 256; 12 lets work spread over 1, 2
    /// and 3 nodes evenly.
    #[arg(long, default_value_t = 12)]
    partition_count: u32,
    /// Kills measured by `--partitions`.
    #[arg(long, default_value_t = 5)]
    runs: usize,
}

// ---- scenarios: what each request is ----

#[derive(Clone, Copy)]
enum Scenario {
    Ingest,
    Query,
    Batch,
    /// One `orders.OrderPlaced` per request, each a new order (a new key).
    Order,
}

impl Scenario {
    /// Single events to a whole domain (inventory, one host), entity reads, batches, and
    /// single events to a domain spread over partitions (orders: one host per core), whose
    /// saga reactions run behind the answers.
    const ALL: [Scenario; 4] = [
        Scenario::Ingest,
        Scenario::Query,
        Scenario::Batch,
        Scenario::Order,
    ];

    fn name(self) -> &'static str {
        match self {
            Scenario::Ingest => "ingest",
            Scenario::Query => "query",
            Scenario::Batch => "batch",
            Scenario::Order => "order",
        }
    }

    fn description(self) -> String {
        match self {
            Scenario::Ingest => format!(
                "POST one structured inventory.StockAdded ({} bytes)",
                stock_added().to_string().len()
            ),
            Scenario::Query => "GET /v1/domains/inventory/entities/sku-N (seeded)".to_owned(),
            Scenario::Batch => format!("POST batches of {BATCH} inventory.StockAdded"),
            Scenario::Order => {
                "POST one structured orders.OrderPlaced, a new order each".to_owned()
            }
        }
    }

    /// Events a successful request carries; `None` for reads.
    fn events_per_request(self) -> Option<u64> {
        match self {
            Scenario::Ingest | Scenario::Order => Some(1),
            Scenario::Query => None,
            Scenario::Batch => Some(BATCH),
        }
    }

    /// The next request; every event in it has a fresh id.
    fn request(self, address: SocketAddr) -> Result<Request<Body>> {
        match self {
            Scenario::Ingest => post_events(address, STRUCTURED, &stock_added()),
            Scenario::Batch => post_events(address, BATCHED, &batch(BATCH)),
            Scenario::Query => get(address, &entity_path(next() % SKUS)),
            Scenario::Order => post_events(address, STRUCTURED, &order_placed()),
        }
    }
}

fn next() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

fn entity_path(sku: u64) -> String {
    format!("/v1/domains/inventory/entities/sku-{sku}")
}

/// A structured `inventory.StockAdded` of about 300 bytes with a unique id.
fn stock_added() -> Value {
    let n = next();
    let sku = format!("sku-{}", n % SKUS);
    json!({
        "specversion": "1.0",
        "id": format!("loadgen-{}-{n:012}", std::process::id()),
        "source": "/loadgen/client",
        "type": "inventory.StockAdded",
        "subject": sku,
        "time": "2026-01-01T00:00:00Z",
        "datacontenttype": "application/json",
        "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "data": {"sku": sku, "quantity": 1},
    })
}

/// A structured `orders.OrderPlaced` for a new order.
fn order_placed() -> Value {
    let n = next();
    let order = format!("order-{}-{n}", std::process::id());
    json!({
        "specversion": "1.0",
        "id": format!("loadgen-{}-{n:012}", std::process::id()),
        "source": "/loadgen/client",
        "type": "orders.OrderPlaced",
        "subject": order,
        "time": "2026-01-01T00:00:00Z",
        "datacontenttype": "application/json",
        "data": {"order_id": order, "customer": "c-1", "lines": [{"sku": "sku-1", "quantity": 1, "unit_price": 100}]},
    })
}

fn batch(events: u64) -> Value {
    (0..events).map(|_| stock_added()).collect()
}

fn post_events(address: SocketAddr, content_type: &str, body: &Value) -> Result<Request<Body>> {
    Ok(Request::builder()
        .method(Method::POST)
        .uri("/v1/events")
        .header(header::HOST, address.to_string())
        .header(header::CONTENT_TYPE, content_type)
        .body(Full::new(Bytes::from(body.to_string())))?)
}

fn get(address: SocketAddr, path: &str) -> Result<Request<Body>> {
    Ok(Request::builder()
        .uri(path)
        .header(header::HOST, address.to_string())
        .body(Full::new(Bytes::new()))?)
}

// ---- the baseline: bare handlers for Herald's two hot routes ----

/// Starts the baseline server on its own thread; it lives until the process exits.
fn start_baseline() -> Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding the baseline")?;
    let address = listener.local_addr()?;
    std::thread::spawn(move || {
        let served = actix_rt::System::new().block_on(async move {
            HttpServer::new(|| {
                App::new()
                    // Herald's default [http] max_body_bytes, so the 1000-event seed fits.
                    .app_data(web::PayloadConfig::new(1 << 20))
                    .route("/v1/events", web::post().to(bare_ingest))
                    .route(
                        "/v1/domains/inventory/entities/{key}",
                        web::get().to(bare_entity),
                    )
            })
            .disable_signals()
            .listen(listener)?
            .run()
            .await
        });
        if let Err(error) = served {
            eprintln!("loadgen: the baseline server failed: {error}");
        }
    });
    Ok(address)
}

/// Parses the body and answers a position per event, as Herald does, storing nothing.
async fn bare_ingest(body: web::Bytes) -> HttpResponse {
    let position = |event: &Value| json!({"id": event["id"], "stream": "inventory", "sequence": 1});
    match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Array(events)) => HttpResponse::Accepted()
            .json(json!({"results": events.iter().map(position).collect::<Vec<_>>()})),
        Ok(event) => HttpResponse::Accepted().json(position(&event)),
        Err(error) => HttpResponse::BadRequest().body(error.to_string()),
    }
}

/// An entity shaped like Herald's inventory entity.
async fn bare_entity(key: web::Path<String>) -> HttpResponse {
    let sku = key.into_inner();
    HttpResponse::Ok().json(json!({"sku": sku, "available": 1, "reserved": 0, "shipped": 0}))
}

// ---- Herald: the real binary, killed on drop ----

/// A running `herald` with its own data directory.
struct Herald {
    address: SocketAddr,
    _process: KillOnDrop,
    _data_dir: tempfile::TempDir,
}

/// Kills the child when dropped, including when `loadgen` fails half-way.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Herald {
    fn start(binary: &Path) -> Result<Herald> {
        Self::start_with(binary, &herald_integration_tests::sample_config(), &[])
    }

    fn start_with(binary: &Path, config: &Path, env: &[(&str, &str)]) -> Result<Herald> {
        let data_dir = tempfile::tempdir().context("creating a data directory")?;
        let child = node_command_with(binary, config, data_dir.path())
            .env("RUST_LOG", "warn,herald_actors::node=info")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}; build it first", binary.display()))?;
        let mut process = KillOnDrop(child);
        let stdout = process
            .0
            .stdout
            .take()
            .context("herald's stdout is piped")?;
        let address = listening_address(stdout)?;
        await_ok(address, "/readyz")?;
        Ok(Herald {
            address,
            _process: process,
            _data_dir: data_dir,
        })
    }
}

/// Reads herald's log up to the listening line; every other line goes on to stderr.
fn listening_address(stdout: ChildStdout) -> Result<SocketAddr> {
    use std::io::BufRead as _;
    let (found, address) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            match herald_integration_tests::listening_address(&line) {
                Some(address) => {
                    let _ = found.send(address.to_owned());
                }
                None => eprintln!("herald: {line}"),
            }
        }
    });
    let address = address
        .recv_timeout(Duration::from_secs(30))
        .context("herald did not log \"herald node listening\" with address=IP:PORT")?;
    address
        .parse()
        .with_context(|| format!("herald's address {address:?}"))
}

// ---- the client ----

async fn connect(address: SocketAddr) -> Result<SendRequest<Body>> {
    let stream = tokio::net::TcpStream::connect(address).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

/// Sends one request on a connection and reads the whole answer.
async fn exchange(
    sender: &mut SendRequest<Body>,
    request: Request<Body>,
) -> Result<(StatusCode, Bytes)> {
    sender.ready().await?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    Ok((status, response.into_body().collect().await?.to_bytes()))
}

/// One request on a fresh connection, for set-up.
fn send_once(address: SocketAddr, request: Request<Body>) -> Result<(StatusCode, Bytes)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async { exchange(&mut connect(address).await?, request).await })
}

/// Polls `GET path` until it answers 200, for at most 30 s.
fn await_ok(address: SocketAddr, path: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok((StatusCode::OK, _)) = send_once(address, get(address, path)?) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("{address}{path} did not answer 200 within 30 s")
}

/// Creates every sku the query scenario reads, in one batch, and waits until each is visible.
fn seed(address: SocketAddr) -> Result<()> {
    let (status, body) = send_once(address, post_events(address, BATCHED, &batch(SKUS))?)?;
    if !status.is_success() {
        bail!(
            "seeding {address}: {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    (0..SKUS).try_for_each(|sku| await_ok(address, &entity_path(sku)))
}

// ---- load: connections sending back to back ----

/// What one connection, or merged, one run did.
#[derive(Default)]
struct Tally {
    successes: u64,
    errors: u64,
    /// Failures by kind: the HTTP status ("503", "429", ...), or "transport" for a broken
    /// connection, "connect" for a refused reconnect, "nats" for a refused publish; a
    /// retryable 503 under load reads differently from a 500.
    errors_by_kind: BTreeMap<String, u64>,
    first_error: Option<String>,
    latencies: Vec<Duration>,
}

impl Tally {
    fn error(&mut self, kind: &str, what: String) {
        self.errors += 1;
        *self.errors_by_kind.entry(kind.to_owned()).or_default() += 1;
        self.first_error.get_or_insert(what);
    }

    fn merge(&mut self, other: Tally) {
        self.successes += other.successes;
        self.errors += other.errors;
        for (kind, count) in other.errors_by_kind {
            *self.errors_by_kind.entry(kind).or_default() += count;
        }
        self.first_error = self.first_error.take().or(other.first_error);
        self.latencies.extend(other.latencies);
    }
}

/// Sends requests back to back on one keep-alive connection until `deadline`; only 2xx count.
async fn connection(address: SocketAddr, scenario: Scenario, deadline: Instant) -> Result<Tally> {
    let mut tally = Tally::default();
    let mut sender = None;
    while Instant::now() < deadline {
        let connected = match sender.as_mut() {
            Some(connected) => connected,
            None => match connect(address).await {
                Ok(connected) => sender.insert(connected),
                Err(error) => {
                    // Counted, not fatal: a node that restarts or sheds connections shows
                    // up as errors in the figures instead of ending the run.
                    tally.error("connect", format!("connecting to {address}: {error:#}"));
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let request = scenario.request(address)?;
        let started = Instant::now();
        match exchange(connected, request).await {
            Ok((status, _)) if status.is_success() => {
                tally.successes += 1;
                tally.latencies.push(started.elapsed());
            }
            Ok((status, body)) => {
                let body = String::from_utf8_lossy(&body);
                tally.error(status.as_str(), format!("{status}: {body}"));
            }
            Err(error) => {
                tally.error("transport", format!("{error:#}"));
                sender = None;
            }
        }
    }
    Ok(tally)
}

/// Drives `connections` connections on one current-thread runtime, spread round robin
/// over `addresses` from `first` on.
fn client_thread(
    addresses: &[SocketAddr],
    first: usize,
    scenario: Scenario,
    connections: usize,
    deadline: Instant,
) -> Result<Tally> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for n in 0..connections {
            let address = addresses[(first + n) % addresses.len()];
            tasks.spawn(connection(address, scenario, deadline));
        }
        let mut tally = Tally::default();
        while let Some(done) = tasks.join_next().await {
            tally.merge(done??);
        }
        Ok(tally)
    })
}

/// Runs `scenario` against `address` for `seconds`, over `connections` spread on the cores.
fn load(
    address: SocketAddr,
    scenario: Scenario,
    connections: usize,
    seconds: u64,
) -> Result<Stats> {
    load_over(&[address], scenario, connections, seconds)
}

/// Like [`load`], with the connections spread round robin over `addresses`.
fn load_over(
    addresses: &[SocketAddr],
    scenario: Scenario,
    connections: usize,
    seconds: u64,
) -> Result<Stats> {
    let threads = cores().min(connections).max(1);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let tally = std::thread::scope(|scope| {
        let shares =
            (0..threads).map(|t| connections / threads + usize::from(t < connections % threads));
        let mut first = 0;
        let handles: Vec<_> = shares
            .map(|share| {
                let start = first;
                first += share;
                scope.spawn(move || client_thread(addresses, start, scenario, share, deadline))
            })
            .collect();
        let mut tally = Tally::default();
        for handle in handles {
            let joined = handle
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            tally.merge(joined?);
        }
        anyhow::Ok(tally)
    })?;
    Ok(Stats::new(scenario, tally, started.elapsed()))
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

// ---- results ----

/// One measured run, summarised.
#[derive(Serialize)]
struct Stats {
    requests_per_s: f64,
    events_per_s: Option<f64>,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
    /// `errors` by HTTP status or failure kind (see [`Tally`]).
    errors_by_kind: BTreeMap<String, u64>,
    first_error: Option<String>,
}

impl Stats {
    fn new(scenario: Scenario, mut tally: Tally, elapsed: Duration) -> Stats {
        tally.latencies.sort_unstable();
        let percentile = |p: f64| {
            let rank = (tally.latencies.len() as f64 * p).ceil() as usize;
            let latency = tally.latencies.get(rank.saturating_sub(1));
            latency.map_or(f64::NAN, |l| l.as_secs_f64() * 1e3)
        };
        let requests_per_s = tally.successes as f64 / elapsed.as_secs_f64();
        Stats {
            requests_per_s,
            events_per_s: scenario
                .events_per_request()
                .map(|n| requests_per_s * n as f64),
            p50_ms: percentile(0.50),
            p99_ms: percentile(0.99),
            errors: tally.errors,
            errors_by_kind: tally.errors_by_kind,
            first_error: tally.first_error,
        }
    }

    /// The throughput a ratio is taken of: events/s where requests carry events.
    fn throughput(&self) -> f64 {
        self.events_per_s.unwrap_or(self.requests_per_s)
    }

    /// `0`, or the count with its kinds: `12 (429: 2, 503: 10)`.
    fn errors_text(&self) -> String {
        if self.errors_by_kind.is_empty() {
            return self.errors.to_string();
        }
        let kinds: Vec<String> = self
            .errors_by_kind
            .iter()
            .map(|(kind, count)| format!("{kind}: {count}"))
            .collect();
        format!("{} ({})", self.errors, kinds.join(", "))
    }
}

/// Herald / baseline: below 1 for throughput, or above 1 for latency, means Herald is slower.
#[derive(Serialize)]
struct Ratios {
    requests_per_s: f64,
    events_per_s: Option<f64>,
    p50_ms: f64,
    p99_ms: f64,
}

/// A scenario's figures for the baseline and for Herald.
#[derive(Serialize)]
struct Comparison {
    scenario: &'static str,
    description: String,
    /// What the baseline side is.
    baseline_is: &'static str,
    /// What the Herald side is.
    herald_is: &'static str,
    baseline: Stats,
    herald: Stats,
    herald_over_baseline: Ratios,
    /// The throughput ratio the issue asks for, where it names one.
    target: Option<f64>,
    /// Whether the throughput ratio (events/s, else requests/s) reaches `target`.
    target_met: Option<bool>,
}

impl Comparison {
    /// Herald with the sample config against the bare actix-web baseline.
    fn new(scenario: Scenario, baseline: Stats, herald: Stats) -> Comparison {
        let herald_over_baseline = Ratios {
            requests_per_s: herald.requests_per_s / baseline.requests_per_s,
            events_per_s: herald
                .events_per_s
                .zip(baseline.events_per_s)
                .map(|(h, b)| h / b),
            p50_ms: herald.p50_ms / baseline.p50_ms,
            p99_ms: herald.p99_ms / baseline.p99_ms,
        };
        let (scenario, description) = (scenario.name(), scenario.description());
        Comparison {
            scenario,
            description,
            baseline_is: "bare actix-web",
            herald_is: "herald",
            baseline,
            herald,
            herald_over_baseline,
            target: None,
            target_met: None,
        }
    }

    /// Names the two sides and says what is compared.
    fn between(
        mut self,
        baseline_is: &'static str,
        herald_is: &'static str,
        description: String,
    ) -> Comparison {
        self.baseline_is = baseline_is;
        self.herald_is = herald_is;
        self.description = description;
        self
    }

    /// Sets the throughput ratio to reach.
    fn aiming_at(mut self, target: f64) -> Comparison {
        let ratio = self.herald.throughput() / self.baseline.throughput();
        self.target = Some(target);
        self.target_met = Some(ratio >= target);
        self
    }

    fn markdown(&self) -> String {
        let events = |e: Option<f64>, digits| e.map_or("-".into(), |e| format!("{e:.digits$}"));
        let mut out = format!("### {}: {}\n\n", self.scenario, self.description);
        out += "| target | requests/s | events/s | p50 ms | p99 ms | errors |\n";
        out += "|---|---:|---:|---:|---:|---:|\n";
        for (target, s) in [
            (self.baseline_is, &self.baseline),
            (self.herald_is, &self.herald),
        ] {
            let (rps, eps) = (s.requests_per_s, events(s.events_per_s, 0));
            let (p50, p99, errors) = (s.p50_ms, s.p99_ms, s.errors_text());
            out += &format!("| {target} | {rps:.0} | {eps} | {p50:.2} | {p99:.2} | {errors} |\n");
        }
        let r = &self.herald_over_baseline;
        let (rps, eps, p50, p99) = (
            r.requests_per_s,
            events(r.events_per_s, 3),
            r.p50_ms,
            r.p99_ms,
        );
        let (herald, baseline) = (self.herald_is, self.baseline_is);
        out +=
            &format!("| **{herald} / {baseline}** | {rps:.3} | {eps} | {p50:.2} | {p99:.2} | |\n");
        if let (Some(target), Some(met)) = (self.target, self.target_met) {
            let verdict = if met { "met" } else { "missed" };
            let (herald, baseline) = (self.herald_is, self.baseline_is);
            out += &format!("\ntarget: {herald} / {baseline} >= {target} ({verdict})\n");
        }
        for (target, stats) in [
            (self.baseline_is, &self.baseline),
            (self.herald_is, &self.herald),
        ] {
            if let Some(error) = &stats.first_error {
                out += &format!("\nfirst error of {target}: {error}\n");
            }
        }
        out
    }
}

/// The whole run, as printed by `--json`.
#[derive(Serialize)]
struct Report {
    /// `http` (Herald against a bare server) or `networked` (Herald on NATS).
    mode: &'static str,
    cores: usize,
    connections: usize,
    seconds: u64,
    warmup_seconds: u64,
    scenarios: Vec<Comparison>,
}

impl Report {
    fn new(mode: &'static str, cli: &Cli, scenarios: Vec<Comparison>) -> Report {
        Report {
            mode,
            cores: cores(),
            connections: cli.connections,
            seconds: cli.seconds,
            warmup_seconds: cli.warmup,
            scenarios,
        }
    }

    fn markdown(&self) -> String {
        let title = match self.mode {
            "networked" => "Herald networked benchmark",
            _ => "Herald load benchmark",
        };
        let mut out = format!(
            "## {title}\n\nmachine: {} cores (clients, baselines and herald share them); \
             {} connections; {} s measured after {} s of warm-up per run. \
             Ratios are herald / baseline; each table names its two sides.\n\n",
            self.cores, self.connections, self.seconds, self.warmup_seconds
        );
        for comparison in &self.scenarios {
            out += &comparison.markdown();
            out += "\n";
        }
        out
    }
}

/// Prints `report` as `--json` or markdown asks.
fn print_report(
    report: &impl Serialize,
    markdown: impl FnOnce() -> String,
    json: bool,
) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        print!("{}", markdown());
    }
    Ok(())
}

/// Seeds if the scenario reads, warms up, then measures one scenario on one target.
fn measure(address: SocketAddr, scenario: Scenario, cli: &Cli) -> Result<Stats> {
    if scenario.events_per_request().is_none() {
        seed(address)?;
    }
    load(address, scenario, cli.connections, cli.warmup)?;
    load(address, scenario, cli.connections, cli.seconds)
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let binary = cli
        .herald
        .clone()
        .unwrap_or_else(|| workspace().join("target/release/herald"));
    if cli.partition_count == 0 || cli.partition_count > herald_config::MAX_PARTITIONS {
        bail!(
            "--partition-count {} is out of range; use 1 to {}",
            cli.partition_count,
            herald_config::MAX_PARTITIONS
        );
    }
    if cli.networked {
        return networked(&binary, &cli);
    }
    if cli.partitions {
        return partitions(&binary, &cli);
    }
    let baseline = start_baseline()?;
    await_ok(baseline, &entity_path(0))?;
    let herald = Herald::start(&binary)?;
    let mut scenarios = Vec::new();
    for scenario in Scenario::ALL {
        eprintln!("loadgen: {} ...", scenario.name());
        let baseline = measure(baseline, scenario, &cli)?;
        let herald = measure(herald.address, scenario, &cli)?;
        scenarios.push(Comparison::new(scenario, baseline, herald));
    }
    let report = Report::new("http", &cli, scenarios);
    print_report(&report, || report.markdown(), cli.json)
}

// ---- networked mode: Herald on JetStream against an embedded node and raw publishing ----

/// Single-event ingest of a node on NATS against an embedded node, and batched ingest of
/// the node on NATS against raw async-nats publishing of the same events to the same
/// nats-server; every side with the same client on the same machine.
fn networked(binary: &Path, cli: &Cli) -> Result<()> {
    let nats = herald_integration_tests::nats::NatsServer::start_default_sync();
    let url = nats.url();
    eprintln!("loadgen: raw async-nats JetStream publishing ...");
    raw_publish(&url, cli.connections, cli.warmup)?;
    let raw = raw_publish(&url, cli.connections, cli.seconds)?;
    eprintln!("loadgen: an embedded node, single events over HTTP ...");
    // Stopped (dropped) before the node on NATS starts, so the two never share the cores.
    let embedded = {
        let node = Herald::start_with(
            binary,
            &herald_integration_tests::sample_config(),
            &[("HERALD_DOMAINS__ENABLED", "inventory")],
        )?;
        measure(node.address, Scenario::Ingest, cli)?
    };
    eprintln!("loadgen: a node on NATS, single events, then batches over HTTP ...");
    let node = Herald::start_with(
        binary,
        &herald_integration_tests::nats::nats_config(),
        &[
            ("HERALD_BUS__NATS__SERVERS", url.as_str()),
            ("HERALD_DOMAINS__ENABLED", "inventory"),
            ("HERALD_NODE__ID", "loadgen"),
        ],
    )?;
    let single = measure(node.address, Scenario::Ingest, cli)?;
    let batched = measure(node.address, Scenario::Batch, cli)?;
    let scenarios = vec![
        Comparison::new(Scenario::Ingest, embedded, single)
            .between(
                "herald embedded",
                "herald on NATS",
                format!(
                    "{}, a new id each, durable before the 202; baseline: an embedded node \
                     (file log, the sample config's fsync = \"always\"); against: one node on \
                     NATS JetStream (config/nats.toml, one nats-server with its default sync); \
                     both host only inventory, one after the other, same client",
                    Scenario::Ingest.description()
                ),
            )
            .aiming_at(0.5),
        Comparison::new(Scenario::Batch, raw, batched)
            .between(
                "raw async-nats",
                "herald on NATS",
                format!(
                    "batches of {BATCH} inventory.StockAdded over HTTP to the same node on NATS \
                     JetStream; baseline: the same events published raw with async-nats to the \
                     same nats-server ({BATCH} acks in flight per connection, a batch counts as \
                     one request)"
                ),
            )
            .aiming_at(0.7),
    ];
    let report = Report::new("networked", cli, scenarios);
    print_report(&report, || report.markdown(), cli.json)
}

/// Publishes batches of [`BATCH`] events from `connections` tasks for `seconds`, each
/// batch's acks awaited together; a batch counts as one request.
fn raw_publish(url: &str, connections: usize, seconds: u64) -> Result<Stats> {
    use async_nats::jetstream::{self, stream};

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores())
        .enable_all()
        .build()?;
    let started = Instant::now();
    let tally = runtime.block_on(async {
        let client = async_nats::connect(url).await?;
        let context = jetstream::new(client);
        context
            .get_or_create_stream(stream::Config {
                name: "loadgen-raw".into(),
                subjects: vec!["loadgen.ev.>".into()],
                discard: stream::DiscardPolicy::New,
                allow_atomic_publish: true,
                allow_direct: true,
                duplicate_window: Duration::from_secs(120),
                ..Default::default()
            })
            .await?;
        let deadline = Instant::now() + Duration::from_secs(seconds);
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..connections {
            let context = context.clone();
            tasks.spawn(async move {
                let mut tally = Tally::default();
                while Instant::now() < deadline {
                    let begun = Instant::now();
                    let mut acks = Vec::with_capacity(BATCH as usize);
                    let mut failed = None;
                    for _ in 0..BATCH {
                        let (subject, headers, body) = raw_message();
                        match context.publish_with_headers(subject, headers, body).await {
                            Ok(ack) => acks.push(ack),
                            Err(error) => failed = Some(("publish", error.to_string())),
                        }
                    }
                    for ack in acks {
                        if let Err(error) = ack.await {
                            failed = Some(("ack", error.to_string()));
                        }
                    }
                    match failed {
                        None => {
                            tally.successes += 1;
                            tally.latencies.push(begun.elapsed());
                        }
                        Some((kind, error)) => tally.error(kind, error),
                    }
                }
                tally
            });
        }
        let mut tally = Tally::default();
        while let Some(done) = tasks.join_next().await {
            tally.merge(done?);
        }
        anyhow::Ok(tally)
    })?;
    Ok(Stats::new(Scenario::Batch, tally, started.elapsed()))
}

/// One event as Herald writes it to JetStream: the same `data`, `ce-*` headers and
/// `Nats-Msg-Id`.
fn raw_message() -> (String, async_nats::HeaderMap, Bytes) {
    let event = stock_added();
    let text = |key: &str| event[key].as_str().unwrap_or("").to_owned();
    let mut headers = async_nats::HeaderMap::new();
    for (header, key) in [
        ("ce-id", "id"),
        ("ce-source", "source"),
        ("ce-specversion", "specversion"),
        ("ce-type", "type"),
        ("ce-subject", "subject"),
        ("ce-time", "time"),
        ("ce-partitionkey", "subject"),
        ("content-type", "datacontenttype"),
        ("traceparent", "traceparent"),
    ] {
        headers.insert(header, text(key).as_str());
    }
    headers.insert(
        "Nats-Msg-Id",
        format!("{}/{}", text("source"), text("id")).as_str(),
    );
    let subject = format!("loadgen.ev.inventory.StockAdded.{}", text("subject"));
    (subject, headers, Bytes::from(event["data"].to_string()))
}

// ---- partitions: spreading a domain over nodes, and failover time ----

/// The lease every node of `--partitions` runs with: the configuration's default, passed
/// explicitly so the failover figure is the default's even where config/nats.toml sets
/// another.
fn default_lease() -> Duration {
    herald_config::NatsConfig::default().lease
}

/// Starts `count` nodes enabling only `orders` at `partitions` partitions on `url`, one
/// after another, and waits until every partition is ready at the node
/// `partition::assign` gives it.
fn partitioned_nodes(
    binary: &Path,
    url: &str,
    count: usize,
    partitions: u32,
) -> Result<Vec<Herald>> {
    let ids: Vec<String> = (1..=count).map(|n| format!("p{n}")).collect();
    let partition_count = partitions.to_string();
    let lease = format!("{}ms", default_lease().as_millis());
    let mut nodes = Vec::new();
    for id in &ids {
        nodes.push(Herald::start_with(
            binary,
            &herald_integration_tests::nats::nats_config(),
            &[
                ("HERALD_BUS__NATS__SERVERS", url),
                ("HERALD_BUS__NATS__LEASE", &lease),
                ("HERALD_DOMAINS__ENABLED", "orders"),
                ("HERALD_DOMAINS__PARTITIONS", &partition_count),
                ("HERALD_NODE__ID", id),
            ],
        )?);
    }
    let members: Vec<&str> = ids.iter().map(String::as_str).collect();
    let started = Instant::now();
    while !orders_settled(nodes[0].address, partitions, &members, None)? {
        if started.elapsed() > Duration::from_secs(60) {
            bail!("orders did not settle over {members:?} within 60 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(nodes)
}

/// Whether every one of the `partitions` `orders` partitions is ready at the owner `assign`
/// gives over `members` (and at none of `gone`).
fn orders_settled(
    address: SocketAddr,
    partitions: u32,
    members: &[&str],
    gone: Option<&str>,
) -> Result<bool> {
    let (status, body) = send_once(address, get(address, "/v1/cluster")?)?;
    if !status.is_success() {
        return Ok(false);
    }
    let cluster: Value = serde_json::from_slice(&body)?;
    let owners = cluster["partitions"]["orders"]["owners"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let wanted = herald_runtime::partition::assign("orders", partitions, members);
    Ok(owners.len() == wanted.len()
        && owners.iter().zip(wanted).all(|(owner, want)| {
            owner["status"] == "ready"
                && owner["node"].as_str() == want.as_deref()
                && gone.is_none_or(|gone| owner["node"].as_str() != Some(gone))
        }))
}

/// The median and the maximum of `times`.
fn median_max(times: &mut [Duration]) -> (Duration, Duration) {
    times.sort_unstable();
    let median = times.get(times.len() / 2).copied().unwrap_or_default();
    (median, times.last().copied().unwrap_or_default())
}

/// One row of `--partitions`: the same load spread over `nodes` nodes.
#[derive(Serialize)]
struct NodesRow {
    nodes: usize,
    stats: Stats,
    /// Events/s over those of one node.
    over_one_node: f64,
}

/// Time from SIGKILL of a node until every partition is ready elsewhere.
#[derive(Serialize)]
struct Failover {
    runs: usize,
    lease_s: f64,
    median_s: f64,
    max_s: f64,
    each_s: Vec<f64>,
}

/// What `--partitions` prints.
#[derive(Serialize)]
struct PartitionsReport {
    cores: usize,
    connections: usize,
    seconds: u64,
    warmup_seconds: u64,
    partitions: u32,
    rows: Vec<NodesRow>,
    /// The target for 3 nodes over 1: 1.5x on 2 cores, 2x on 16.
    three_nodes_target: f64,
    three_nodes_target_met: Option<bool>,
    failover: Failover,
}

impl PartitionsReport {
    fn markdown(&self) -> String {
        let mut out = format!(
            "## Partitions: orders at {} partitions, {} connections round robin over the nodes, {} s after {} s of warm-up, {} cores\n\n",
            self.partitions, self.connections, self.seconds, self.warmup_seconds, self.cores
        );
        out += "| nodes | events/s | vs 1 node | p50 ms | p99 ms | errors |\n";
        out += "|---:|---:|---:|---:|---:|---:|\n";
        for row in &self.rows {
            let s = &row.stats;
            out += &format!(
                "| {} | {:.0} | {:.2} | {:.1} | {:.1} | {} |\n",
                row.nodes,
                s.throughput(),
                row.over_one_node,
                s.p50_ms,
                s.p99_ms,
                s.errors_text()
            );
        }
        if let Some(met) = self.three_nodes_target_met {
            let verdict = if met { "met" } else { "missed" };
            out += &format!(
                "\ntarget: 3 nodes >= {}x one node on {} cores ({verdict})\n",
                self.three_nodes_target, self.cores
            );
        }
        for row in &self.rows {
            if let Some(error) = &row.stats.first_error {
                out += &format!("\nfirst error with {} node(s): {error}\n", row.nodes);
            }
        }
        let f = &self.failover;
        let each: Vec<String> = f.each_s.iter().map(|s| format!("{s:.1}")).collect();
        out += &format!(
            "\nPartition move after SIGKILL of the node owning the most partitions, until every \
             partition is ready elsewhere ({} runs, default lease {:.1} s): median {:.1} s, max \
             {:.1} s (each: {})\n",
            f.runs,
            f.lease_s,
            f.median_s,
            f.max_s,
            each.join(", ")
        );
        out
    }
}

fn partitions(binary: &Path, cli: &Cli) -> Result<()> {
    let partitions = cli.partition_count;
    let mut rows: Vec<NodesRow> = Vec::new();
    for count in 1..=3 {
        eprintln!("loadgen: orders at {partitions} partitions on {count} node(s) ...");
        let nats = herald_integration_tests::nats::NatsServer::start_default_sync();
        let nodes = partitioned_nodes(binary, &nats.url(), count, partitions)?;
        let addresses: Vec<SocketAddr> = nodes.iter().map(|node| node.address).collect();
        load_over(&addresses, Scenario::Order, cli.connections, cli.warmup)?;
        let stats = load_over(&addresses, Scenario::Order, cli.connections, cli.seconds)?;
        let one_node = rows
            .first()
            .map_or(stats.throughput(), |row| row.stats.throughput());
        rows.push(NodesRow {
            nodes: count,
            over_one_node: stats.throughput() / one_node,
            stats,
        });
    }
    let mut moves = Vec::new();
    for run in 1..=cli.runs {
        eprintln!("loadgen: failover run {run} of {} ...", cli.runs);
        let nats = herald_integration_tests::nats::NatsServer::start_default_sync();
        let mut nodes = partitioned_nodes(binary, &nats.url(), 3, partitions)?;
        // Kill the node owning the most partitions (the last on a tie).
        let wanted = herald_runtime::partition::assign("orders", partitions, &["p1", "p2", "p3"]);
        let held = |id: &str| wanted.iter().filter(|o| o.as_deref() == Some(id)).count();
        let victim = (1..=3).max_by_key(|n| held(&format!("p{n}"))).unwrap_or(3);
        let survivors: Vec<String> = (1..=3)
            .filter(|n| *n != victim)
            .map(|n| format!("p{n}"))
            .collect();
        let watcher = nodes[survivors[0][1..].parse::<usize>()? - 1].address;
        let killed = nodes.remove(victim - 1);
        let started = Instant::now();
        drop(killed);
        let members: Vec<&str> = survivors.iter().map(String::as_str).collect();
        let gone = format!("p{victim}");
        while !orders_settled(watcher, partitions, &members, Some(&gone))? {
            if started.elapsed() > Duration::from_secs(60) {
                bail!("partitions did not move within 60 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        moves.push(started.elapsed());
    }
    let (median, max) = median_max(&mut moves);
    let three_nodes_target = if cores() >= 16 { 2.0 } else { 1.5 };
    let report = PartitionsReport {
        cores: cores(),
        connections: cli.connections,
        seconds: cli.seconds,
        warmup_seconds: cli.warmup,
        partitions,
        three_nodes_target,
        three_nodes_target_met: rows
            .iter()
            .find(|row| row.nodes == 3)
            .map(|row| row.over_one_node >= three_nodes_target),
        rows,
        failover: Failover {
            runs: moves.len(),
            lease_s: default_lease().as_secs_f64(),
            median_s: median.as_secs_f64(),
            max_s: max.as_secs_f64(),
            each_s: moves.iter().map(Duration::as_secs_f64).collect(),
        },
    };
    print_report(&report, || report.markdown(), cli.json)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    /// A server on its own thread answering 202, 503 and 429 in turn.
    fn start_refusing_server() -> SocketAddr {
        static ANSWERED: AtomicUsize = AtomicUsize::new(0);
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding a test server");
        let address = listener.local_addr().expect("its address");
        std::thread::spawn(move || {
            actix_rt::System::new().block_on(async move {
                HttpServer::new(|| {
                    // The body is read, as Herald does: actix closes a connection whose
                    // request body was left unread.
                    App::new().default_service(web::to(|_body: web::Bytes| async {
                        match ANSWERED.fetch_add(1, Ordering::Relaxed) % 3 {
                            0 => HttpResponse::Accepted().finish(),
                            1 => HttpResponse::ServiceUnavailable().body("not ready"),
                            _ => HttpResponse::TooManyRequests().body("slow down"),
                        }
                    }))
                })
                .workers(1)
                .disable_signals()
                .listen(listener)?
                .run()
                .await
            })
        });
        address
    }

    #[test]
    fn errors_are_counted_by_status() {
        let stats = load(start_refusing_server(), Scenario::Ingest, 2, 1).expect("the load runs");
        let kinds: Vec<&str> = stats.errors_by_kind.keys().map(String::as_str).collect();
        assert_eq!(kinds, ["429", "503"], "{:?}", stats.errors_by_kind);
        assert_eq!(stats.errors, stats.errors_by_kind.values().sum::<u64>());
        assert!(stats.requests_per_s > 0.0, "the 202s count as successes");
        let text = stats.errors_text();
        assert!(
            text.starts_with(&format!("{} (429: ", stats.errors)) && text.contains(", 503: "),
            "{text}"
        );
    }

    #[test]
    fn a_refused_connection_is_counted_not_fatal() {
        let nobody =
            SocketAddr::from(([127, 0, 0, 1], herald_integration_tests::nats::free_port()));
        let stats = load(nobody, Scenario::Ingest, 1, 1).expect("the load runs to its end");
        assert_eq!(stats.requests_per_s, 0.0);
        assert!(stats.errors > 0);
        let kinds: Vec<&str> = stats.errors_by_kind.keys().map(String::as_str).collect();
        assert_eq!(kinds, ["connect"]);
    }
}
