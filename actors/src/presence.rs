//! Who is in the cluster: every node puts what it is and what it hosts into the KV bucket
//! `<prefix>-nodes` every few seconds; the bucket forgets an entry after
//! [`PRESENCE_TTL`], so a killed node drops out by itself and a stopped one deletes its own.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::kv;
use dashmap::DashMap;
use futures_util::StreamExt;
use herald_runtime::nats::{wire, Nats};
use serde::{Deserialize, Serialize};
use tracing::{debug, warn};

use crate::gateway::HostHandle;

/// How often a node says it is alive.
pub const HEARTBEAT: Duration = Duration::from_secs(5);
/// How long an entry lives without a heartbeat.
pub const PRESENCE_TTL: Duration = Duration::from_secs(15);

/// What one node says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The node's id (`[node] id`).
    pub id: String,
    /// Where its gateway listens.
    pub http: String,
    /// Herald's version.
    pub version: String,
    /// The domains it hosts, with their status (starting, ready, failed).
    pub domains: BTreeMap<String, String>,
}

fn bucket(nats: &Nats) -> String {
    format!("{}-nodes", nats.settings().prefix)
}

async fn store(nats: &Nats) -> Result<kv::Store, String> {
    let context = nats.context().clone();
    let name = bucket(nats);
    let replicas = nats.settings().replicas;
    nats.spawn(async move {
        if let Ok(store) = context.get_key_value(&name).await {
            return Ok(store);
        }
        context
            .create_key_value(kv::Config {
                bucket: name.clone(),
                description: "Herald nodes and the domains they host".into(),
                history: 1,
                max_age: PRESENCE_TTL,
                num_replicas: replicas,
                ..Default::default()
            })
            .await
            .map_err(|error| format!("KV bucket {name}: {error}"))
    })
    .await
    .map_err(|error| error.to_string())?
}

/// Stops the announcements of [`announce`] once set.
pub type Withdrawn = Arc<AtomicBool>;

/// Puts this node's entry every [`HEARTBEAT`] until `withdrawn` is set.
pub fn announce(
    nats: Arc<Nats>,
    id: String,
    http: String,
    hosts: Arc<DashMap<&'static str, HostHandle>>,
) -> Withdrawn {
    let withdrawn = Withdrawn::default();
    let stop = Arc::clone(&withdrawn);
    actix_rt::spawn(async move {
        let mut interval = tokio::time::interval(HEARTBEAT);
        let key = wire::token(&id);
        loop {
            interval.tick().await;
            if stop.load(Ordering::Acquire) {
                return;
            }
            let member = Member {
                id: id.clone(),
                http: http.clone(),
                version: env!("CARGO_PKG_VERSION").to_owned(),
                domains: hosts
                    .iter()
                    .map(|host| {
                        (
                            (*host.key()).to_owned(),
                            host.view.health().status().to_owned(),
                        )
                    })
                    .collect(),
            };
            let Ok(value) = serde_json::to_vec(&member) else {
                continue;
            };
            let put = match store(&nats).await {
                Ok(store) => {
                    let key = key.clone();
                    nats.spawn(async move { store.put(key, value.into()).await.map(|_| ()) })
                        .await
                        .map_err(|error| error.to_string())
                        .and_then(|put| put.map_err(|error| error.to_string()))
                }
                Err(error) => Err(error),
            };
            if let Err(error) = put {
                debug!(%error, "presence not announced; trying again");
            }
        }
    });
    withdrawn
}

/// Stops announcing and removes this node's entry (a clean stop, once its domains are
/// drained: until then it still hosts them).
pub async fn withdraw(nats: &Nats, id: &str, withdrawn: &Withdrawn) {
    withdrawn.store(true, Ordering::Release);
    let key = wire::token(id);
    if let Ok(store) = store(nats).await {
        let deleted = nats.spawn(async move { store.delete(key).await }).await;
        if !matches!(deleted, Ok(Ok(()))) {
            warn!("could not withdraw this node from the presence bucket; it expires by itself");
        }
    }
}

/// Every live node's entry.
pub async fn members(nats: &Nats) -> Result<Vec<Member>, String> {
    let store = store(nats).await?;
    nats.spawn(async move {
        let mut keys = store.keys().await.map_err(|error| error.to_string())?;
        let mut members = Vec::new();
        while let Some(key) = keys.next().await {
            let Ok(key) = key else {
                continue;
            };
            if let Ok(Some(value)) = store.get(&key).await {
                if let Ok(member) = serde_json::from_slice::<Member>(&value) {
                    members.push(member);
                }
            }
        }
        members.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(members)
    })
    .await
    .map_err(|error| error.to_string())?
}
