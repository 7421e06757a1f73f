//! A node in networked mode: the NATS settings from `[bus.nats]`, the connection (while it
//! cannot be made, a stand-in server answers `/readyz` and every request with 503 naming
//! NATS), and one bus per hosted domain over its JetStream log.

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{web, App, HttpResponse, HttpServer};
use herald_config::{Config, NatsCredentials};
use herald_runtime::bus::Bus;
use herald_runtime::hosted::DomainEntry;
use herald_runtime::nats::{BusStatus, JetStreamDomainLog, Nats, NatsAuth, NatsSettings};
use serde_json::json;
use tokio::sync::watch;
use tracing::info;

use crate::gateway::Problem;
use crate::node::NodeError;
use crate::presence;

/// The NATS settings of `config`, secrets read from their variables or files.
pub fn settings(config: &Config) -> Result<NatsSettings, NodeError> {
    let nats = &config.bus.nats;
    let auth = match nats
        .credentials(&|name| std::env::var(name).ok())
        .map_err(NodeError::Config)?
    {
        NatsCredentials::None => NatsAuth::None,
        NatsCredentials::UserPassword { user, password } => {
            NatsAuth::UserPassword { user, password }
        }
        NatsCredentials::Token(token) => NatsAuth::Token(token),
        NatsCredentials::CredsFile(path) => NatsAuth::CredsFile(path),
    };
    Ok(NatsSettings {
        servers: nats.servers.clone(),
        auth,
        prefix: nats.prefix.clone(),
        replicas: usize::from(nats.replicas),
        max_age: nats.max_age,
        max_bytes: nats.max_bytes,
        duplicate_window: nats.duplicate_window,
        request_timeout: nats.request_timeout,
        node: config.node.id.clone(),
    })
}

/// Connects to NATS; until connected, a stand-in server on `listener` answers 503 (200 on
/// `/healthz`: the process is alive).
pub async fn connect(
    settings: NatsSettings,
    listener: &TcpListener,
) -> Result<(Arc<Nats>, watch::Receiver<BusStatus>), NodeError> {
    let (status, watching) = watch::channel(BusStatus::Down(format!(
        "connecting to NATS at {}",
        settings.servers.join(",")
    )));
    let stand_in = {
        let watching = watching.clone();
        let listener = listener.try_clone().map_err(NodeError::Http)?;
        HttpServer::new(move || {
            let watching = watching.clone();
            App::new().default_service(web::to(move |request: actix_web::HttpRequest| {
                let reason = match &*watching.borrow() {
                    BusStatus::Down(reason) => reason.clone(),
                    BusStatus::Up => "connected to NATS; starting".to_owned(),
                };
                async move {
                    if request.path() == "/healthz" {
                        return HttpResponse::Ok().json(json!({"status": "ok"}));
                    }
                    actix_web::ResponseError::error_response(&nats_down(&reason))
                }
            }))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .map_err(NodeError::Http)?
        .run()
    };
    if let Ok(address) = listener.local_addr() {
        info!(%address, "herald node listening; answering 503 until NATS is reached");
    }
    let handle = stand_in.handle();
    let serving = tokio::spawn(stand_in);
    let connected = Nats::connect(settings, status).await;
    handle.stop(true).await;
    let _ = serving.await;
    let nats = connected.map_err(NodeError::Nats)?;
    Ok((Arc::clone(&nats), nats.status()))
}

/// Refuses to host a domain a live node already hosts: in networked mode each domain has
/// one writer (a second one would be refused at its first append, and its state would
/// drift). Entries of this node's own id are its previous life (a restart after a kill).
pub async fn check_single_host(
    nats: &Nats,
    node: &str,
    enabled: &[String],
) -> Result<(), NodeError> {
    let members = presence::members(nats)
        .await
        .map_err(|error| NodeError::Config(format!("cannot read the presence bucket: {error}")))?;
    for member in members.iter().filter(|member| member.id != node) {
        if let Some(domain) = enabled.iter().find(|d| member.domains.contains_key(*d)) {
            return Err(NodeError::Config(format!(
                "domain \"{domain}\" is already hosted by node \"{}\" ({}): in networked mode a domain runs on exactly one node; stop that node (its entry expires {:?} after it stops) or remove \"{domain}\" from [domains] enabled here",
                member.id,
                member.http,
                presence::PRESENCE_TTL
            )));
        }
    }
    Ok(())
}

/// 503 for a request that needs NATS while it cannot be reached.
pub fn nats_down(reason: &str) -> Problem {
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "nats-unavailable",
        "NATS unavailable",
        format!("{reason}; retry shortly (nothing was appended)"),
    )
    .retry_after(1)
}

/// One bus per domain in `enabled`, each over the domain's JetStream log, whose inbox
/// sources the streams of the types it subscribes to.
pub fn buses(
    nats: &Arc<Nats>,
    registered: &[DomainEntry],
    enabled: &[String],
) -> Result<HashMap<&'static str, Arc<Bus>>, NodeError> {
    let owners: HashMap<&str, &str> = registered
        .iter()
        .flat_map(|entry| {
            let description = entry.describe();
            description
                .types
                .iter()
                .map(|t| (t.name, entry.name))
                .collect::<Vec<_>>()
        })
        .collect();
    let mut buses = HashMap::new();
    for entry in registered
        .iter()
        .filter(|entry| enabled.iter().any(|name| name == entry.name))
    {
        let mut inputs: Vec<(String, Vec<String>)> = Vec::new();
        for subscribed in entry.describe().subscriptions {
            let Some(owner) = owners.get(subscribed) else {
                continue;
            };
            match inputs.iter_mut().find(|(stream, _)| stream == owner) {
                Some((_, types)) => types.push(subscribed.to_owned()),
                None => inputs.push(((*owner).to_owned(), vec![subscribed.to_owned()])),
            }
        }
        let log = JetStreamDomainLog::open(Arc::clone(nats), entry.name, inputs)?;
        info!(domain = entry.name, "JetStream streams and inbox ready");
        buses.insert(entry.name, Arc::new(Bus::new(log)));
    }
    Ok(buses)
}
