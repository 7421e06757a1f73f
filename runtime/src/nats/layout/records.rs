//! The agreed partition counts: one record per domain in the KV bucket `<prefix>-layout`,
//! written with `create` so that of nodes starting at once exactly one decides a domain's
//! count and the others read it back. A data set from before the records is read from
//! which streams exist, and its count recorded.

use async_nats::jetstream::{self, kv};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tracing::info;

use super::{patiently, transient, LayoutError};
use crate::log::LogError;
use crate::nats::connection::NatsSettings;
use crate::nats::{streams, wire};

/// The KV bucket recording each domain's partition count: `<prefix>-layout`.
pub fn records_bucket(prefix: &str) -> String {
    format!("{prefix}-layout")
}

/// A domain's partition count as the node that laid it out first recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Recorded {
    /// The count every node enabling (or reading) the domain must use.
    partitions: u32,
    /// The node that recorded it, named when another count is refused.
    node: String,
}

/// The agreed layouts: one record per domain, `partitions.<domain>`, in the KV bucket
/// [`records_bucket`]. A record is written with `create`, so of nodes starting at once
/// exactly one decides and the others read its count back; it is never changed after.
#[derive(Clone)]
pub struct Records {
    store: kv::Store,
    prefix: String,
    node: String,
}

/// What a domain's existing streams say of its partition count, for a data set from
/// before the records.
#[derive(Debug, PartialEq, Eq)]
enum Inferred {
    /// None of its streams exists.
    Nothing,
    /// Its streams exist for this many partitions (the highest partition stream's index
    /// plus one; 1 for the domain's own stream).
    Partitions(u32),
}

impl Records {
    /// Opens the bucket, creating it if no node did yet (every node creates it alike, so
    /// creates at the same moment all succeed).
    pub async fn open(
        context: &jetstream::Context,
        settings: &NatsSettings,
    ) -> Result<Self, LayoutError> {
        let bucket = records_bucket(&settings.prefix);
        let store = patiently(&bucket, transient, || async {
            if let Ok(store) = context.get_key_value(&bucket).await {
                return Ok(store);
            }
            let created = context
                .create_key_value(kv::Config {
                    bucket: bucket.clone(),
                    description: "Herald: each domain's partition count, as first laid out".into(),
                    history: 1,
                    num_replicas: settings.replicas,
                    storage: jetstream::stream::StorageType::File,
                    ..Default::default()
                })
                .await;
            match created {
                Ok(store) => Ok(store),
                // Made meanwhile by another node, perhaps with settings of its own.
                Err(error) => context.get_key_value(&bucket).await.map_err(|_| {
                    LayoutError::Log(LogError::Unavailable(format!(
                        "KV bucket {bucket} (the domains' partition counts): {error}"
                    )))
                }),
            }
        })
        .await?;
        Ok(Self {
            store,
            prefix: settings.prefix.clone(),
            node: settings.node.clone(),
        })
    }

    fn key(domain: &str) -> String {
        format!("partitions.{}", wire::token(domain))
    }

    fn unavailable(&self, domain: &str, error: impl std::fmt::Display) -> LayoutError {
        LayoutError::Log(LogError::Unavailable(format!(
            "the partition count of domain \"{domain}\" in KV bucket {} (key {}): {error}",
            self.store.name,
            Self::key(domain)
        )))
    }

    /// The record of `domain`, read from the bucket's leader (a direct get may be
    /// answered by a replica that has not seen the latest create).
    async fn read(&self, domain: &str) -> Result<Option<Recorded>, LayoutError> {
        let subject = format!("$KV.{}.{}", self.store.name, Self::key(domain));
        let message = match self
            .store
            .stream
            .get_last_raw_message_by_subject(&subject)
            .await
        {
            Ok(message) => message,
            Err(error)
                if error.kind() == jetstream::stream::LastRawMessageErrorKind::NoMessageFound =>
            {
                return Ok(None)
            }
            Err(error) => return Err(self.unavailable(domain, error)),
        };
        // A deleted or purged record reads as none: the domain is laid out afresh.
        if message.headers.get("KV-Operation").is_some() {
            return Ok(None);
        }
        serde_json::from_slice(&message.payload)
            .map(Some)
            .map_err(|error| {
                self.unavailable(
                    domain,
                    format!(
                        "unreadable record ({error}): {}",
                        String::from_utf8_lossy(&message.payload)
                    ),
                )
            })
    }

    /// Agrees on `domain`'s partition count before any of its streams is made: the
    /// recorded count if there is one; else this node records `partitions` (or the count
    /// its existing streams show, for a data set from before the records), unless another
    /// node records first, whose count it then reads back. Refuses a count other than the
    /// agreed one.
    pub async fn agree(
        &self,
        context: &jetstream::Context,
        domain: &str,
        partitions: u32,
    ) -> Result<(), LayoutError> {
        let what = format!("agreeing on the partition count of domain \"{domain}\"");
        patiently(&what, transient, || {
            self.agree_once(context, domain, partitions)
        })
        .await
    }

    async fn agree_once(
        &self,
        context: &jetstream::Context,
        domain: &str,
        partitions: u32,
    ) -> Result<(), LayoutError> {
        if let Some(recorded) = self.read(domain).await? {
            return self.compare(domain, partitions, &recorded);
        }
        match infer(context, &self.prefix, domain).await? {
            Inferred::Nothing => {}
            Inferred::Partitions(had) if had == partitions => {}
            Inferred::Partitions(had) => {
                // Streams being laid out by a node that recorded its count since the first
                // read are partial: its record, not they, says the count.
                if let Some(recorded) = self.read(domain).await? {
                    return self.compare(domain, partitions, &recorded);
                }
                return Err(mismatch(
                    &self.prefix,
                    domain,
                    partitions,
                    had,
                    format!(
                        "there is no record of its count in KV bucket {}, so it is read from which streams exist",
                        self.store.name
                    ),
                    "delete the domain's streams",
                ));
            }
        }
        let record = Recorded {
            partitions,
            node: self.node.clone(),
        };
        let value = serde_json::to_vec(&record).map_err(|error| self.unavailable(domain, error))?;
        match self.store.create(Self::key(domain), value.into()).await {
            Ok(_) => {
                info!(domain, partitions, bucket = %self.store.name, "recorded the domain's partition count");
                Ok(())
            }
            // Another node recorded first: its count is the one (read from the leader,
            // which has it, as it accepted that create).
            Err(error) if error.kind() == kv::CreateErrorKind::AlreadyExists => {
                match self.read(domain).await? {
                    Some(recorded) => self.compare(domain, partitions, &recorded),
                    None => Err(self.unavailable(
                        domain,
                        "another node recorded it first, and it was gone when read back",
                    )),
                }
            }
            Err(error) => Err(self.unavailable(domain, error)),
        }
    }

    /// Refuses `partitions` for `domain` if its recorded count is another (a domain this
    /// node routes requests to without laying it out); nothing recorded passes.
    pub async fn check(&self, domain: &str, partitions: u32) -> Result<(), LayoutError> {
        let what = format!("reading the partition count of domain \"{domain}\"");
        match patiently(&what, transient, || self.read(domain)).await? {
            Some(recorded) => self.compare(domain, partitions, &recorded),
            None => Ok(()),
        }
    }

    /// Keys would move between streams under another count, and their order with them.
    fn compare(
        &self,
        domain: &str,
        partitions: u32,
        recorded: &Recorded,
    ) -> Result<(), LayoutError> {
        if recorded.partitions == partitions {
            return Ok(());
        }
        Err(mismatch(
            &self.prefix,
            domain,
            partitions,
            recorded.partitions,
            format!(
                "as node \"{}\" recorded in KV bucket {} (key {})",
                recorded.node,
                self.store.name,
                Self::key(domain)
            ),
            "delete the domain's streams and that key",
        ))
    }
}

/// The refusal of `partitions` for `domain`, laid out with `had`.
fn mismatch(
    prefix: &str,
    domain: &str,
    partitions: u32,
    had: u32,
    how_known: String,
    start_over: &str,
) -> LayoutError {
    LayoutError::Mismatch(format!(
        "domain \"{domain}\" is configured with {partitions} partition(s), but its JetStream streams ({prefix}-{domain}…) were laid out with {had} partition(s) ({how_known}); the count is fixed once a domain's streams exist: set its partitions to {had}, or {start_over} to start over"
    ))
}

/// What the streams of `domain` that exist say of its partition count (a data set laid
/// out before the records). The domain's own stream means one partition; otherwise the
/// highest partition stream's index plus one, so a layout cut short by a crash is still
/// taken when its last partition was made.
async fn infer(
    context: &jetstream::Context,
    prefix: &str,
    domain: &str,
) -> Result<Inferred, LayoutError> {
    let whole = streams::stream_name(prefix, domain);
    let mut names = context.stream_names();
    let mut found = Vec::new();
    while let Some(name) = names.next().await {
        found.push(name.map_err(|error| {
            LayoutError::Log(LogError::Unavailable(format!(
                "listing JetStream streams to find {whole}…: {error}"
            )))
        })?);
    }
    Ok(inferred(&whole, found.iter().map(String::as_str)))
}

/// What JetStream streams `names` say of the count of the domain whose own stream is
/// `whole` (its partitions' are `<whole>-p<n>`).
fn inferred<'a>(whole: &str, names: impl Iterator<Item = &'a str>) -> Inferred {
    let partition_prefix = format!("{whole}-p");
    let mut highest: Option<u32> = None;
    for name in names {
        if name == whole {
            return Inferred::Partitions(1);
        }
        if let Some(index) = name
            .strip_prefix(&partition_prefix)
            .filter(|index| !index.is_empty() && index.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|index| index.parse::<u32>().ok())
        {
            highest = highest.max(Some(index));
        }
    }
    highest.map_or(Inferred::Nothing, |index| {
        Inferred::Partitions(index.saturating_add(1))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_from_before_the_records_say_the_count() {
        let check = |names: &[&str], expected: Inferred| {
            assert_eq!(
                inferred("herald-orders", names.iter().copied()),
                expected,
                "{names:?}"
            );
        };
        check(&[], Inferred::Nothing);
        // Inboxes, dead letters and other domains say nothing of orders' count.
        check(
            &[
                "herald-in-orders",
                "herald-deadletter-orders-p3",
                "herald-orders-pending",
                "herald-ordersx-p2",
                "KV_herald-owners",
            ],
            Inferred::Nothing,
        );
        check(
            &["herald-orders", "herald-deadletter-orders"],
            Inferred::Partitions(1),
        );
        check(
            &["herald-orders-p0", "herald-orders-p11", "herald-orders-p3"],
            Inferred::Partitions(12),
        );
        // The domain's own stream wins, as it always did.
        check(
            &["herald-orders-p5", "herald-orders"],
            Inferred::Partitions(1),
        );
    }
}
