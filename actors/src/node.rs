//! A node: the log, the bus, one host per enabled domain and the gateway, run until told
//! to stop.

use std::future::Future;
use std::net::TcpListener;

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use actix_web::{web, App, HttpServer};
use dashmap::DashMap;
use herald_config::{BusKind, Config, DedupWindow, FsyncPolicy};
use herald_runtime::bus::Bus;
use herald_runtime::catalog::Catalog;
use herald_runtime::hosted::DomainEntry;
use herald_runtime::log::partitions::{self, Wish};
use herald_runtime::log::{self, EventLog, FileLog, FileLogOptions};
use herald_runtime::nats::{BusStatus, JetStreamNodeLog, Nats, ObjectSnapshots};
use herald_runtime::partition::Layout;
use herald_runtime::snapshot::FileSnapshots;
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::gateway::{
    self, Access, Connections, Gateway, GatewayState, HostHandle, Limits, Metrics, StopGateway,
};
use crate::host::{
    Checkpoint, Drain, FaultPolicy, Health, HostArgs, SharedStore, SnapshotSettings,
};
use crate::networked;
use crate::ownership::{self, Bucket, Factory, Member, Ownership};
use crate::supervisor::{Outages, RestartPolicy, Supervisor};

pub use crate::error::NodeError;

/// Connections each HTTP worker accepts beyond `[http] max_connections`, only to answer
/// them 503 and close them; past that, the kernel's backlog holds new ones.
const REFUSAL_HEADROOM: usize = 256;

/// Each registered domain with its own settings from `[domain.<name>]`, checked: a key the
/// domain does not take, or a value it cannot, is refused naming both.
pub fn configure_domains(
    config: &Config,
    registered: Vec<DomainEntry>,
) -> Result<Vec<DomainEntry>, NodeError> {
    registered
        .into_iter()
        .map(|entry| {
            let options = config.domain_settings(entry.name).options;
            entry
                .configured(options)
                .map_err(|error| NodeError::Config(error.to_string()))
        })
        .collect()
}

/// How long a node waits for its domains to catch up before giving up at start.
const READY_TIMEOUT: Duration = Duration::from_secs(300);

/// Runs a node until `shutdown` resolves, then stops taking requests, drains, and returns.
///
/// `registered` is every domain this build knows (the service's registry); the config
/// picks which of them run. Must be called inside an actix system.
pub async fn run(
    config: Config,
    registered: Vec<DomainEntry>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), NodeError> {
    let registered = configure_domains(&config, registered)?;
    let known: Vec<&str> = registered.iter().map(|entry| entry.name).collect();
    let enabled = config.enabled_domains(&known);
    let left_out: Vec<&str> = known
        .iter()
        .copied()
        .filter(|name| !enabled.iter().any(|enabled| enabled == name))
        .collect();
    if !left_out.is_empty() {
        // A domain added to the build but not to `[domains] enabled` would otherwise be
        // silently absent.
        info!(
            domains = %left_out.join(", "),
            "registered domains this node does not host: [domains] enabled leaves them out (an empty list hosts every registered domain)"
        );
    }
    let catalog = Arc::new(Catalog::new(&registered, &enabled)?);
    check_partitions(&config, &catalog, &enabled)?;
    let (storage, layout) = match config.bus.kind {
        BusKind::Embedded => {
            std::fs::create_dir_all(&config.node.data_dir).map_err(|source| {
                NodeError::DataDir {
                    path: config.node.data_dir.clone(),
                    source,
                }
            })?;
            let log = open_log(&config)?;
            let layout = Arc::new(embedded_layout(&config, &registered, &enabled, &*log)?);
            let storage = Storage {
                shared: Some(Arc::new(Bus::new(Arc::clone(&log)))),
                log,
                store: Some(Arc::new(FileSnapshots::open(
                    config.node.data_dir.join("snapshots"),
                )?)),
                nats: None,
                owners: None,
            };
            (storage, layout)
        }
        BusKind::Nats => {
            // Every node must agree on P, so the cores of one say nothing: 1 unless set.
            let layout = Arc::new(Layout::new(registered.iter().map(|entry| {
                let partitions = match entry.describe().partitioning.by_key() {
                    true => config.partitions(entry.name).unwrap_or(1),
                    false => 1,
                };
                (entry.name, partitions)
            })));
            let settings = networked::settings(&config)?;
            let (nats, status) = networked::connect(settings, &listener).await?;
            let owners = Bucket::open(Arc::clone(&nats))
                .await
                .map_err(NodeError::Config)?;
            networked::provision(&nats, &layout, &registered, &enabled).await?;
            let streams: Vec<&str> = layout.all_streams().collect();
            let storage = Storage {
                shared: None,
                log: JetStreamNodeLog::new(Arc::clone(&nats), &streams),
                store: Some(Arc::new(ObjectSnapshots::open(Arc::clone(&nats))?)),
                nats: Some((nats, status)),
                owners: Some(owners),
            };
            (storage, layout)
        }
    };
    let log = Arc::clone(&storage.log);
    let snapshots = SnapshotSettings {
        store: storage.store.clone(),
        every: config.log.snapshot_every,
        interval: config.log.snapshot_interval,
    };

    let hosts = Arc::new(DashMap::new());
    let mut supervisor = Supervisor::new(
        Arc::clone(&hosts),
        RestartPolicy {
            limit: config.domains.restart_limit,
            window: config.domains.restart_window,
        },
        storage
            .nats
            .as_ref()
            .map(|(_, status)| Outages::new(status.clone())),
    );
    let factory: Factory = {
        let config = config.clone();
        let layout = Arc::clone(&layout);
        let registered = registered.clone();
        Arc::new(move |stream: &'static str, bus: Arc<Bus>| {
            let (domain, partition) = layout.locate(stream).unwrap_or((stream, 0));
            let partitions = layout.partitions(domain);
            let entry = registered
                .iter()
                .find(|entry| entry.name == domain)
                .cloned()
                .expect("streams come from the layout of registered domains");
            let settings = config.domain_settings(domain);
            let snapshots = snapshots.clone();
            Box::new(move |view| HostArgs {
                entry: entry.clone(),
                stream,
                partition: (partitions > 1).then_some((partition, partitions)),
                bus: Arc::clone(&bus),
                mailbox_capacity: settings.mailbox_capacity,
                snapshots: snapshots.clone(),
                faults: FaultPolicy {
                    attempts: settings.retry_attempts,
                    backoff: settings.retry_backoff,
                    backoff_max: settings.retry_backoff_max,
                    max_parked_keys: settings.max_parked_keys,
                },
                view,
                on_stop: None,
            })
        })
    };
    let mut arbiters = Vec::new();
    if let Some(bus) = &storage.shared {
        for entry in registered
            .iter()
            .filter(|entry| enabled.iter().any(|name| name == entry.name))
        {
            // One thread per stream (a domain, or each of its partitions): they consume,
            // take ingress and recover at their own pace, in parallel.
            for stream in layout.streams(entry.name) {
                let arbiter = Arbiter::new();
                supervisor.start(stream, arbiter.handle(), factory(stream, Arc::clone(bus)));
                arbiters.push(arbiter);
            }
        }
    }
    let hosting = supervisor.hosting();
    let supervising = tokio::spawn(supervisor.run());

    // Serve while the domains recover: /readyz says when they have caught up.
    let (shutdown_tails, tails_shutdown) = watch::channel(false);
    let access = match config.auth.enabled {
        true => {
            let credentials = config
                .auth
                .credentials(&known, &|name| std::env::var(name).ok())
                .map_err(|problems| {
                    NodeError::Auth(
                        problems
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join("; "),
                    )
                })?;
            info!(
                tokens = credentials.len(),
                "auth enabled: bearer tokens required"
            );
            Some(Arc::new(Access::new(
                &credentials,
                config.auth.metrics_open,
            )))
        }
        false => {
            let loopback = listener.local_addr().is_ok_and(|a| a.ip().is_loopback());
            if !loopback {
                warn!("AUTH IS OFF and the node listens beyond loopback: anyone who can reach it can publish and read every domain; set [auth] enabled = true");
            }
            None
        }
    };
    let connections = Connections::new(config.http.max_connections);
    let address = listener.local_addr().map_err(NodeError::Http)?;
    let state = web::Data::new(GatewayState {
        node: config.node.id.clone(),
        address: format!("http://{address}"),
        catalog,
        layout: Arc::clone(&layout),
        owners: storage.owners.clone(),
        claimed: Arc::new(std::sync::atomic::AtomicBool::new(storage.owners.is_none())),
        hosts: Arc::clone(&hosts),
        limits: Limits {
            body: gateway::BodyLimits::new(
                config.http.max_body_bytes,
                config.http.body_timeout,
                config.http.body_min_rate,
                config.http.bodies_in_flight_bytes,
            ),
            max_batch_events: config.http.max_batch_events,
            max_event_bytes: config.http.max_event_bytes,
            max_header_bytes: config.http.max_header_bytes,
            max_tails: config.http.max_tails,
        },
        log: Arc::clone(&log),
        nats: storage.nats.as_ref().map(|(nats, _)| Arc::clone(nats)),
        shutdown: tails_shutdown,
        access,
        connections: Arc::clone(&connections),
        tails: Arc::new(tokio::sync::Semaphore::new(config.http.max_tails)),
        metrics: Arc::new(Metrics::default()),
    });
    let serving_state = state.clone();
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(serving_state.clone())
            // Outermost: connection and header limits come before authentication, which
            // each resource of `gateway::routes` does once the router has matched it.
            .wrap(actix_web::middleware::from_fn(gateway::limit))
            // Outside even the limits, so a request they refuse with its chunked body
            // unread is closed too.
            .wrap(actix_web::middleware::from_fn(gateway::close_unread))
            .configure(gateway::routes)
    })
    .on_connect(move |_, extensions| connections.on_connect(extensions))
    // actix stops accepting at its own per-worker cap; keep it above ours, so connections
    // past `max_connections` are accepted and told 503 rather than left in the backlog.
    .max_connections(config.http.max_connections + REFUSAL_HEADROOM)
    // The node handles signals itself, so it can drain domains after HTTP stops.
    .disable_signals()
    // A client that closes its socket is gone: end its response (an SSE tail) at once and
    // free its connection slot, rather than at the next keepalive write.
    .h1_allow_half_closed(false)
    .shutdown_timeout(30);
    if let Some(workers) = config.http.workers {
        server = server.workers(workers);
    }
    let server = server.listen(listener).map_err(NodeError::Http)?.run();
    let gateway = Gateway::new(server.handle()).start();
    info!(
        node = %config.node.id,
        %address,
        domains = %enabled.join(","),
        data_dir = %config.node.data_dir.display(),
        "herald node listening"
    );

    let serving = tokio::spawn(server);
    let mut ownership = match (&storage.nats, &storage.owners) {
        (Some((nats, _)), Some(owners)) => Some(ownership::start(Ownership {
            bucket: owners.clone(),
            nats: Arc::clone(nats),
            layout: Arc::clone(&layout),
            enabled: state.catalog.hosted(),
            member: Member {
                id: config.node.id.clone(),
                http: format!("http://{address}"),
                version: env!("CARGO_PKG_VERSION").to_owned(),
                domains: Default::default(),
                enabled: enabled.clone(),
            },
            hosts: Arc::clone(&hosts),
            hosting,
            factory,
            gateway: state.clone(),
            ignore_lease: cfg!(feature = "fault-injection")
                && std::env::var_os("HERALD_FAULT_IGNORE_LEASE").is_some(),
        })),
        _ => None,
    };
    tokio::pin!(shutdown);
    let first_round = async {
        if let Some(ownership) = ownership.as_mut() {
            ownership.first_round().await;
        }
        state
            .claimed
            .store(true, std::sync::atomic::Ordering::Release);
    };
    tokio::select! {
        ready = async { first_round.await; wait_until_ready(&hosts).await } => {
            if let Err(error) = ready {
                let _ = gateway.send(StopGateway).await;
                return Err(error);
            }
            let failed: Vec<&str> = hosts
                .iter()
                .filter(|host| matches!(host.view.health(), Health::Failed(_)))
                .map(|host| *host.key())
                .collect();
            match failed.is_empty() {
                true => info!("every domain has caught up with its inputs; ready"),
                false => error!(failed = %failed.join(", "), "some domains failed; the others are ready"),
            }
            shutdown.await;
        }
        () = &mut shutdown => {}
    }
    info!("shutting down: no new requests; draining domains");
    let _ = shutdown_tails.send(true);
    let _ = gateway.send(StopGateway).await;
    match serving.await {
        Ok(result) => result.map_err(NodeError::Http)?,
        Err(error) => warn!(%error, "http server task ended abnormally"),
    }
    // Networked: hand every held stream to the other nodes (drained and snapshotted), then
    // leave the cluster. With NATS away there is nothing to hand over through; the leases
    // run out by themselves.
    if let (Some(ownership), Some((nats, _))) = (ownership.as_mut(), &storage.nats) {
        match nats.is_up() {
            true => ownership.stop().await,
            false => ownership.abandon(),
        }
    }
    // From here on a host that stops is meant to.
    supervising.abort();
    drain(&hosts).await;
    // Snapshots only save replay time: with NATS away there is nowhere to put them.
    if storage.nats.as_ref().is_none_or(|(nats, _)| nats.is_up()) {
        checkpoint(&hosts).await;
    }
    for arbiter in arbiters {
        arbiter.stop();
    }
    info!("node stopped");
    Ok(())
}

/// Refuses partition counts the node cannot honour: more than one for a domain whose state
/// spans keys. `herald check-config` runs it too.
pub fn check_partitions(
    config: &Config,
    catalog: &Catalog,
    enabled: &[String],
) -> Result<(), NodeError> {
    for name in enabled {
        let Some(description) = catalog.description(name) else {
            continue;
        };
        let own = config
            .domain
            .get(name.as_str())
            .and_then(|settings| settings.partitions);
        if let Some(partitions) = own.filter(|p| *p > 1 && !description.partitioning.by_key()) {
            return Err(NodeError::Config(format!(
                "domain.{name}.partitions = {partitions}: domain \"{name}\" keeps state across keys (its Domain::partitioning is Whole), so it runs as one partition; remove the setting"
            )));
        }
    }
    Ok(())
}

/// The partitions of each domain in embedded mode: what the data dir was laid out with,
/// else the config's count, else (for a domain keyed by key) one per core; recorded in
/// `log/PARTITIONS` before any host starts. A config naming another count than the data
/// dir's is refused (exit 2): the keys' events would be read from the wrong partitions.
fn embedded_layout(
    config: &Config,
    registered: &[DomainEntry],
    enabled: &[String],
    log: &dyn EventLog,
) -> Result<Layout, NodeError> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    let default = cores.clamp(1, herald_config::MAX_PARTITIONS);
    let wishes: Vec<Wish> = registered
        .iter()
        .map(|entry| Wish {
            domain: entry.name,
            by_key: entry.describe().partitioning.by_key(),
            configured: config.partitions(entry.name),
            hosted: enabled.iter().any(|name| name == entry.name),
        })
        .collect();
    let streams: Vec<String> = log.streams().into_iter().map(|(name, _)| name).collect();
    let counts = partitions::settle(
        &config.node.data_dir.join("log"),
        &streams,
        &wishes,
        default,
    )?;
    Ok(Layout::new(registered.iter().map(|entry| {
        (entry.name, counts.get(entry.name).copied().unwrap_or(1))
    })))
}

/// Where the node's streams live, and how hosts reach them.
struct Storage {
    /// The gateway's log: the embedded log, or the read view of JetStream.
    log: Arc<dyn EventLog>,
    /// Embedded: one bus for every domain (networked: each stream's host gets its own bus
    /// over its JetStream log when this node wins the stream's lease).
    shared: Option<Arc<Bus>>,
    store: Option<SharedStore>,
    nats: Option<(Arc<Nats>, watch::Receiver<BusStatus>)>,
    /// Networked: the members and owners bucket.
    owners: Option<Bucket>,
}

/// Opens the durable log under `<data_dir>/log`, as `[log]` says.
fn open_log(config: &Config) -> Result<Arc<dyn EventLog>, NodeError> {
    let fsync = config.log.fsync == FsyncPolicy::Always;
    if !fsync {
        warn!("[log] fsync = \"never\": acknowledged events can be lost if the machine crashes; use it only for tests and benchmarks");
    }
    let opened = FileLog::open(FileLogOptions {
        fsync,
        segment_bytes: config.log.segment_bytes,
        cache_bytes: config.log.cache_bytes,
        dedup_window: match config.log.dedup_window {
            DedupWindow::Events(count) => log::DedupWindow::Events(count),
            DedupWindow::Age(age) => log::DedupWindow::Age(age),
        },
        // A snapshot shows the log was synced up to its offset: damage there is corruption.
        synced: herald_runtime::snapshot::newest_reflected(&config.node.data_dir.join("snapshots")),
        ..FileLogOptions::new(config.node.data_dir.join("log"))
    })?;
    info!(
        dir = %opened.log.dir().display(),
        head = opened.log.head(),
        fsync,
        "event log opened"
    );
    Ok(Arc::new(opened.log))
}

async fn wait_until_ready(hosts: &DashMap<&'static str, HostHandle>) -> Result<(), NodeError> {
    let started = std::time::Instant::now();
    loop {
        // A failed domain is done waiting: the node serves the others and says so.
        let waiting: Vec<&str> = hosts
            .iter()
            .filter(|host| host.view.health() == Health::Starting)
            .map(|host| *host.key())
            .collect();
        if waiting.is_empty() {
            return Ok(());
        }
        if started.elapsed() > READY_TIMEOUT {
            return Err(NodeError::NotReady(READY_TIMEOUT, waiting.join(", ")));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Snapshots every domain that changed, so the next start has nothing to replay.
async fn checkpoint(hosts: &DashMap<&'static str, HostHandle>) {
    let addresses: Vec<_> = hosts.iter().map(|host| host.addr.clone()).collect();
    for addr in addresses {
        let _ = addr.send(Checkpoint).await;
    }
}

/// Lets every domain handle what is in the log; repeats while reactions cause reactions.
async fn drain(hosts: &DashMap<&'static str, HostHandle>) {
    let addresses: Vec<_> = hosts.iter().map(|host| host.addr.clone()).collect();
    for _round in 0..100 {
        let mut handled = 0;
        for addr in &addresses {
            handled += addr.send(Drain).await.unwrap_or(0);
        }
        if handled == 0 {
            return;
        }
    }
    warn!("domains still had inputs after 100 drain rounds; stopping anyway");
}
