//! A node in networked mode: the NATS settings from `[bus.nats]`, the connection (while it
//! cannot be made, a stand-in server answers `/readyz` and every request with 503 naming
//! NATS), and the JetStream streams of the domains it enables.

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::Arc;

use actix_web::{web, App, HttpResponse, HttpServer};
use herald_config::{Config, NatsCredentials};
use herald_runtime::hosted::DomainEntry;
use herald_runtime::nats::{layout, BusStatus, Input, LayoutError, Nats, NatsAuth, NatsSettings};
use herald_runtime::partition::{InputKey, Layout};
use serde_json::json;
use tokio::sync::watch;
use tracing::info;

use crate::error::NodeError;
use crate::gateway::nats_down;

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
        lease: nats.lease,
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

/// Creates (or checks) the streams of every domain in `enabled`, for all its partitions:
/// its own streams, its inputs' streams and its inbox (or router and partition inboxes).
/// A domain configured with another partition count than the one agreed for it (recorded
/// by the first node to lay it out) is refused, whether this node hosts it or not.
pub async fn provision(
    nats: &Arc<Nats>,
    layout: &Arc<Layout>,
    registered: &[DomainEntry],
    enabled: &[String],
) -> Result<(), NodeError> {
    let owners: HashMap<&str, &'static str> = registered
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
    let records = {
        let context = nats.context().clone();
        let settings = nats.settings().clone();
        let known: Vec<(&'static str, u32)> = registered
            .iter()
            .map(|entry| (entry.name, layout.partitions(entry.name)))
            .collect();
        nats.spawn(async move {
            let records = layout::Records::open(&context, &settings).await?;
            // Every domain's recorded count, before anything is laid out: this node routes
            // keys of domains it does not host too, and a count of its own would send
            // them to the wrong partition.
            for (domain, partitions) in known {
                records.check(domain, partitions).await?;
            }
            Ok(records)
        })
        .await
        .map_err(|error| {
            NodeError::Config(format!("reading the domains' partition counts: {error}"))
        })?
        .map_err(refusal)?
    };
    for entry in registered
        .iter()
        .filter(|entry| enabled.iter().any(|name| name == entry.name))
    {
        let description = entry.describe();
        let mut inputs: Vec<Input> = Vec::new();
        for subscribed in &description.subscriptions {
            let Some(origin) = owners.get(subscribed) else {
                continue;
            };
            let key = description
                .partitioning
                .input_key(subscribed)
                .unwrap_or(InputKey::PartitionKey);
            match inputs.iter_mut().find(|input| input.origin == *origin) {
                Some(input) => input.types.push(((*subscribed).to_owned(), key)),
                None => inputs.push(Input {
                    origin,
                    types: vec![((*subscribed).to_owned(), key)],
                }),
            }
        }
        let context = nats.context().clone();
        let settings = nats.settings().clone();
        let shared = Arc::clone(layout);
        let records = records.clone();
        let domain = entry.name;
        nats.spawn(async move {
            layout::provision(&context, &settings, &records, &shared, domain, &inputs).await
        })
        .await
        .map_err(|error| {
            NodeError::Config(format!("provisioning the streams of \"{domain}\": {error}"))
        })?
        .map_err(refusal)?;
        info!(
            domain = entry.name,
            partitions = layout.partitions(entry.name),
            "JetStream streams and inboxes ready"
        );
    }
    Ok(())
}

/// A count other than the agreed one is the operator's to fix (exit 2); NATS failing is
/// an outage.
fn refusal(error: LayoutError) -> NodeError {
    match error {
        LayoutError::Mismatch(message) => NodeError::Config(message),
        LayoutError::Log(error) => NodeError::Log(error),
    }
}
