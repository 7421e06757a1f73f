//! The owners bucket `<prefix>-owners`: who is in the cluster and which node owns which
//! stream (a domain, or one partition of it). Its `max_age` is the lease, so an entry
//! nobody renews disappears one lease after its last write: a killed node's membership
//! and partitions free themselves, with no consensus of Herald's own.
//!
//! - `member.<node>`: [`Member`], put at every tick;
//! - `part.<stream>`: [`Claim`], created by the winner (`create` lets exactly one node
//!   win), renewed by revision compare-and-set (a stale owner's renewal is refused), and
//!   deleted at its revision on a hand-off.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use futures_util::StreamExt;
use herald_runtime::nats::{layout, wire, Nats, NatsSettings};
use serde::{Deserialize, Serialize};

/// What one node says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The node's id (`[node] id`).
    pub id: String,
    /// Where its gateway listens.
    pub http: String,
    /// Herald's version.
    pub version: String,
    /// The streams it hosts now, with their status (starting, ready, failed).
    pub domains: BTreeMap<String, String>,
    /// The domains it may own (`[domains] enabled`).
    #[serde(default)]
    pub enabled: Vec<String>,
}

/// Who owns a stream, and since when (milliseconds since the Unix epoch).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    /// The owning node.
    pub node: String,
    /// When it claimed the stream.
    pub since: u64,
}

/// Every live entry of the bucket, as read in one pass.
#[derive(Debug, Default)]
pub struct Scan {
    /// The live members, by id.
    pub members: BTreeMap<String, Member>,
    /// The owned streams: claim and its revision.
    pub claims: BTreeMap<String, (Claim, u64)>,
}

/// The owners bucket.
#[derive(Clone)]
pub struct Bucket {
    nats: Arc<Nats>,
    store: kv::Store,
}

fn member_key(node: &str) -> String {
    format!("member.{}", wire::token(node))
}

fn claim_key(stream: &str) -> String {
    format!("part.{}", wire::token(stream))
}

/// The bucket `name`, created as this node would make it if no node did yet. Nodes
/// starting at once all create it (alike, so all succeed); should one create fail anyway
/// (a cluster's meta leader still applying another's), the bucket found is the other's.
async fn open_or_create(
    context: &jetstream::Context,
    settings: &NatsSettings,
    name: &str,
) -> Result<kv::Store, String> {
    if let Ok(store) = context.get_key_value(name).await {
        return Ok(store);
    }
    let created = context
        .create_key_value(kv::Config {
            bucket: name.to_owned(),
            description: "Herald nodes and the streams each owns".into(),
            history: 1,
            max_age: settings.lease,
            num_replicas: settings.replicas,
            ..Default::default()
        })
        .await;
    match created {
        Ok(store) => Ok(store),
        Err(error) => context
            .get_key_value(name)
            .await
            .map_err(|_| format!("KV bucket {name}: {error}")),
    }
}

impl Bucket {
    /// Opens the bucket, creating it with `max_age` = the lease; refuses one made with
    /// another lease (every node must expire owners alike).
    pub async fn open(nats: Arc<Nats>) -> Result<Self, String> {
        let context = nats.context().clone();
        let settings = nats.settings().clone();
        let name = format!("{}-owners", settings.prefix);
        let store = nats
            .spawn(async move {
                let store = layout::patiently(&name, |_| true, || {
                    open_or_create(&context, &settings, &name)
                })
                .await?;
                let made_with = store.stream.cached_info().config.max_age;
                if made_with != settings.lease {
                    return Err(format!(
                        "[bus.nats] lease is {:?} here, but the cluster's owners bucket {name} was made with {made_with:?}: every node must use the same lease; set it to {made_with:?} (or delete the bucket while no node runs)",
                        settings.lease
                    ));
                }
                Ok(store)
            })
            .await
            .map_err(|error| error.to_string())??;
        Ok(Self { nats, store })
    }

    async fn on_nats<T: Send + 'static>(
        &self,
        what: &str,
        work: impl std::future::Future<Output = Result<T, String>> + Send + 'static,
    ) -> Result<T, String> {
        let timeout = self.nats.settings().request_timeout;
        match self
            .nats
            .spawn(async move { tokio::time::timeout(timeout, work).await })
            .await
        {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(format!("{what}: no answer within {timeout:?}")),
            Err(error) => Err(format!("{what}: {error}")),
        }
    }

    /// Every live member and claim.
    pub async fn scan(&self) -> Result<Scan, String> {
        let store = self.store.clone();
        self.on_nats("reading the owners bucket", async move {
            let mut keys = store.keys().await.map_err(|error| error.to_string())?;
            let mut scan = Scan::default();
            while let Some(key) = keys.next().await {
                let Ok(key) = key else {
                    continue;
                };
                let Ok(Some(entry)) = store.entry(key.clone()).await else {
                    continue;
                };
                if entry.operation != kv::Operation::Put {
                    continue;
                }
                if let Some(node) = key.strip_prefix("member.") {
                    if let Ok(member) = serde_json::from_slice::<Member>(&entry.value) {
                        scan.members.insert(node.to_owned(), member);
                    }
                } else if let Some(stream) = key.strip_prefix("part.") {
                    if let Ok(claim) = serde_json::from_slice::<Claim>(&entry.value) {
                        scan.claims
                            .insert(stream.to_owned(), (claim, entry.revision));
                    }
                }
            }
            Ok(scan)
        })
        .await
    }

    /// Puts this node's entry.
    pub async fn put_member(&self, member: &Member) -> Result<(), String> {
        let value = serde_json::to_vec(member).map_err(|error| error.to_string())?;
        let store = self.store.clone();
        let key = member_key(&member.id);
        self.on_nats("announcing this node", async move {
            store
                .put(key, value.into())
                .await
                .map(|_| ())
                .map_err(|error| error.to_string())
        })
        .await
    }

    /// Removes this node's entry (a clean stop).
    pub async fn withdraw(&self, node: &str) -> Result<(), String> {
        let store = self.store.clone();
        let key = member_key(node);
        self.on_nats("withdrawing this node", async move {
            store.delete(key).await.map_err(|error| error.to_string())
        })
        .await
    }

    /// Claims a free stream: its revision if this node won, `None` if another holds it.
    pub async fn claim(&self, stream: &str, claim: &Claim) -> Result<Option<u64>, String> {
        let value = serde_json::to_vec(claim).map_err(|error| error.to_string())?;
        let store = self.store.clone();
        let key = claim_key(stream);
        self.on_nats("claiming a stream", async move {
            match store.create(key, value.into()).await {
                Ok(revision) => Ok(Some(revision)),
                Err(error) if error.kind() == kv::CreateErrorKind::AlreadyExists => Ok(None),
                Err(error) => Err(error.to_string()),
            }
        })
        .await
    }

    /// Renews a held claim: its new revision, or `None` if it was lost (expired, or
    /// claimed by another node since).
    pub async fn renew(
        &self,
        stream: &str,
        claim: &Claim,
        revision: u64,
    ) -> Result<Option<u64>, String> {
        let value = serde_json::to_vec(claim).map_err(|error| error.to_string())?;
        let store = self.store.clone();
        let key = claim_key(stream);
        self.on_nats("renewing a lease", async move {
            match store.update(key, value.into(), revision).await {
                Ok(revision) => Ok(Some(revision)),
                Err(error) if error.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(None),
                Err(error) => Err(error.to_string()),
            }
        })
        .await
    }

    /// Gives a held claim up (only if still at `revision`).
    pub async fn release(&self, stream: &str, revision: u64) -> Result<(), String> {
        let store = self.store.clone();
        let key = claim_key(stream);
        self.on_nats("releasing a lease", async move {
            store
                .delete_expect_revision(key, Some(revision))
                .await
                .map_err(|error| error.to_string())
        })
        .await
    }

    /// How long an entry lives without renewal.
    pub fn lease(&self) -> Duration {
        self.nats.settings().lease
    }
}
