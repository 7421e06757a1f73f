//! Snapshots in networked mode: one object per domain in the JetStream object store
//! `<prefix>-snapshots`. The object store chunks large states (a KV value is bounded by
//! the server's `max_payload`), checks a SHA-256 digest on read, and replaces an object
//! only once the new one is whole, so one object per domain is enough.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::object_store;
use tokio::io::AsyncReadExt as _;

use super::connection::Nats;
use super::layout::START_PATIENCE;
use crate::codec::{self, FormatTag};
use crate::log::LogError;
use crate::snapshot::{Snapshot, SnapshotError, SnapshotStore, Unusable};

/// The domains' snapshots in the JetStream object store.
pub struct ObjectSnapshots {
    nats: Arc<Nats>,
    bucket: String,
}

impl ObjectSnapshots {
    /// Opens (creating if needed) the bucket `<prefix>-snapshots`, trying again for up to
    /// [`START_PATIENCE`] if JetStream does not answer (nodes starting at once on a fresh
    /// cluster meet while its streams elect their leaders).
    pub fn open(nats: Arc<Nats>) -> Result<Self, LogError> {
        let bucket = format!("{}-snapshots", nats.settings().prefix);
        let started = Instant::now();
        let mut pause = Duration::from_millis(100);
        loop {
            match Self::open_or_create(&nats, &bucket) {
                Ok(()) => return Ok(Self { nats, bucket }),
                Err(error) if started.elapsed() + pause < START_PATIENCE => {
                    tracing::warn!(%bucket, %error, retry_in = ?pause, "opening the snapshots bucket failed; trying again");
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
                Err(error) => return Err(error),
            }
        }
    }

    fn open_or_create(nats: &Nats, bucket: &str) -> Result<(), LogError> {
        let context = nats.context().clone();
        let name = bucket.to_owned();
        let replicas = nats.settings().replicas;
        nats.block("opening the snapshots bucket", async move {
            if context.get_object_store(&name).await.is_ok() {
                return Ok(());
            }
            let created = context
                .create_object_store(object_store::Config {
                    bucket: name.clone(),
                    description: Some("Herald domain snapshots".into()),
                    num_replicas: replicas,
                    ..Default::default()
                })
                .await;
            match created {
                Ok(_) => Ok(()),
                // Nodes starting at once all create it; a failed create may be another
                // node's having made it first, perhaps with settings of its own.
                Err(error) => match context.get_object_store(&name).await {
                    Ok(_) => Ok(()),
                    Err(_) => Err(LogError::Unavailable(format!(
                        "object store {name}: {error}"
                    ))),
                },
            }
        })
    }

    fn location(&self, domain: &str) -> String {
        format!("object {}/{domain}", self.bucket)
    }

    fn store(
        &self,
    ) -> impl std::future::Future<Output = Result<object_store::ObjectStore, LogError>> {
        let context = self.nats.context().clone();
        let bucket = self.bucket.clone();
        async move {
            context
                .get_object_store(&bucket)
                .await
                .map_err(|error| LogError::Unavailable(format!("object store {bucket}: {error}")))
        }
    }

    /// Reads the object of `domain`: `None` if there is none.
    fn read(&self, domain: &str) -> Result<Option<Vec<u8>>, LogError> {
        let store = self.store();
        let name = domain.to_owned();
        self.nats.block("reading a snapshot", async move {
            let store = store.await?;
            let mut object = match store.get(&name).await {
                Ok(object) => object,
                Err(error) if error.kind() == object_store::GetErrorKind::NotFound => {
                    return Ok(None)
                }
                Err(error) => {
                    return Err(LogError::Unavailable(format!("snapshot {name}: {error}")))
                }
            };
            let mut bytes = Vec::new();
            object
                .read_to_end(&mut bytes)
                .await
                .map_err(|error| LogError::Unavailable(format!("snapshot {name}: {error}")))?;
            Ok(Some(bytes))
        })
    }
}

impl SnapshotStore for ObjectSnapshots {
    fn save(&self, snapshot: &Snapshot) -> Result<String, SnapshotError> {
        let bytes = codec::encode(FormatTag::SnapshotV2, snapshot).map_err(|error| {
            SnapshotError::Encode {
                domain: snapshot.domain.clone(),
                message: error.to_string(),
            }
        })?;
        let store = self.store();
        let name = snapshot.domain.clone();
        let location = self.location(&snapshot.domain);
        self.nats
            .block("writing a snapshot", async move {
                let store = store.await?;
                store
                    .put(name.as_str(), &mut bytes.as_slice())
                    .await
                    .map(|_| ())
                    .map_err(|error| LogError::Unavailable(error.to_string()))
            })
            .map_err(|error| SnapshotError::Store {
                location: location.clone(),
                message: error.to_string(),
            })?;
        Ok(location)
    }

    fn latest(
        &self,
        domain: &str,
        usable: &dyn Fn(&Snapshot) -> Result<(), String>,
    ) -> (Option<Snapshot>, Vec<Unusable>) {
        let location = self.location(domain);
        let unusable = |reason: String| Unusable {
            location: location.clone(),
            reason,
        };
        let bytes = match self.read(domain) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return (None, Vec::new()),
            Err(error) => {
                // Not read is not unusable: the snapshot stays for the next start.
                tracing::warn!(domain, %error, "cannot read the snapshot; replaying from the beginning");
                return (None, Vec::new());
            }
        };
        let checked = codec::decode::<Snapshot>(FormatTag::SnapshotV2, &bytes)
            .map_err(|error| error.to_string())
            .and_then(|snapshot| {
                if snapshot.domain != domain {
                    return Err(format!(
                        "it holds domain \"{}\", not \"{domain}\"",
                        snapshot.domain
                    ));
                }
                usable(&snapshot)?;
                Ok(snapshot)
            });
        match checked {
            Ok(snapshot) => (Some(snapshot), Vec::new()),
            Err(reason) => (None, vec![unusable(reason)]),
        }
    }

    fn set_aside(&self, unusable: &Unusable) -> Option<String> {
        let domain = unusable.location.rsplit('/').next()?.to_owned();
        let store = self.store();
        self.nats
            .block("deleting a snapshot", async move {
                store
                    .await?
                    .delete(&domain)
                    .await
                    .map_err(|error| LogError::Unavailable(error.to_string()))
            })
            .ok()
            .map(|()| "deleted".to_owned())
    }
}
