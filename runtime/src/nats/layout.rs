//! The JetStream streams one domain needs, for every partition: created (or checked) by
//! every node that enables the domain, before any partition of it is hosted.
//!
//! - Own streams: `<prefix>-<stream>` and its dead-letter stream for each partition stream
//!   (`orders`, or `orders-p0` … `orders-p5`).
//! - One partition: the inbox `<prefix>-in-<domain>` sources each input stream, filtered to
//!   the subscribed types, as it always did.
//! - Several: that inbox becomes a *router*: each filter writes the input's partition into
//!   its subject (`{{partition(P,1)}}`, FNV-1a of the key token, which is what
//!   [`crate::partition::of`] computes), or `all` for a broadcast type. Each partition's
//!   own inbox `<prefix>-in-orders-p3` then sources the router filtered to `…in.orders.3.>`
//!   and `…in.orders.all.>`: dense from 1, read exactly like an unpartitioned inbox.
//!
//! Inputs of partitions nobody owns yet wait in their inboxes.
//!
//! Every node starting at once lays out the same streams, so the partition count of a
//! domain is agreed before any of its streams is made: [`Records`] holds one record per
//! domain, written with `create` so exactly one node decides and the rest read it back.

use std::time::Duration;

use async_nats::jetstream;
use tracing::warn;

use super::connection::NatsSettings;
use super::streams::{self, Placement};
use crate::deadletter;
use crate::log::LogError;
use crate::partition::{InputKey, Layout};

mod records;

pub use records::{records_bucket, Records};

/// Why a domain's streams cannot be laid out.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    /// The streams exist with another partition count.
    #[error("{0}")]
    Mismatch(String),
    /// JetStream refused or could not be reached.
    #[error(transparent)]
    Log(#[from] LogError),
}

/// The types a domain takes from one origin domain, each with how it is keyed.
#[derive(Debug, Clone)]
pub struct Input {
    /// The domain whose stream(s) hold them.
    pub origin: &'static str,
    /// `<origin>.<Name>` and its key.
    pub types: Vec<(String, InputKey)>,
}

/// Where Herald stream `stream` sits, per `layout`.
pub fn placement(layout: &Layout, stream: &str) -> Placement {
    match layout.locate(stream) {
        Some((domain, partition)) => Placement {
            domain: domain.to_owned(),
            partition: (layout.partitions(domain) > 1).then_some(partition),
        },
        None => Placement {
            domain: stream.to_owned(),
            partition: None,
        },
    }
}

/// Creates or checks every stream `domain` needs: its own and its inputs' streams, and its
/// inbox (or router and partition inboxes). Each domain's partition count is agreed
/// through `records` first.
pub async fn provision(
    context: &jetstream::Context,
    settings: &NatsSettings,
    records: &Records,
    layout: &Layout,
    domain: &'static str,
    inputs: &[Input],
) -> Result<(), LayoutError> {
    let prefix = &settings.prefix;
    for origin in inputs.iter().map(|input| input.origin).chain([domain]) {
        records
            .agree(context, origin, layout.partitions(origin))
            .await?;
        for stream in layout.streams(origin) {
            let place = placement(layout, stream);
            for (name, dead) in [
                (stream.to_string(), false),
                (deadletter::stream(stream), true),
            ] {
                let subjects = streams::own_subjects(prefix, &place, dead);
                let name = streams::stream_name(prefix, &name);
                patiently(
                    &name,
                    |_| true,
                    || streams::provision_own(context, settings, name.clone(), subjects.clone()),
                )
                .await?;
            }
        }
    }
    let partitions = layout.partitions(domain);
    let mut sources = Vec::new();
    for input in inputs {
        let partitioned = layout.partitions(input.origin) > 1;
        for stream in layout.streams(input.origin) {
            let filters = input
                .types
                .iter()
                .map(|(event_type, key)| {
                    let filter = streams::type_filter(prefix, event_type, partitioned);
                    let destination = match partitions {
                        1 => String::new(),
                        _ => route(prefix, domain, partitions, event_type, *key, partitioned),
                    };
                    (filter, destination)
                })
                .collect();
            sources.push(streams::source(
                streams::stream_name(prefix, stream),
                filters,
            ));
        }
    }
    let inbox = streams::inbox_name(prefix, domain);
    patiently(
        &inbox,
        |_| true,
        || streams::provision_inbox(context, settings, inbox.clone(), sources.clone()),
    )
    .await?;
    if partitions > 1 {
        for (partition, stream) in layout.streams(domain).iter().enumerate() {
            let filters: Vec<(String, String)> = [partition.to_string(), "all".to_owned()]
                .into_iter()
                .map(|token| (format!("{prefix}.in.{domain}.{token}.>"), String::new()))
                .collect();
            let name = streams::inbox_name(prefix, stream);
            patiently(
                &name,
                |_| true,
                || {
                    streams::provision_inbox(
                        context,
                        settings,
                        name.clone(),
                        vec![streams::source(inbox.clone(), filters.clone())],
                    )
                },
            )
            .await?;
        }
    }
    Ok(())
}

/// How long a starting node keeps trying a JetStream call of its layout that fails: nodes
/// starting at once on a fresh cluster meet while its streams elect their leaders (a
/// request then times out) and while another node creates the same stream (a create can
/// be refused while the server applies the other's).
pub const START_PATIENCE: Duration = Duration::from_secs(30);

/// Runs `attempt` until it succeeds, fails in a way `retryable` says is final, or
/// [`START_PATIENCE`] has passed since the first try; then returns its last error.
pub async fn patiently<T, E, F, Fut>(
    what: &str,
    retryable: impl Fn(&E) -> bool,
    mut attempt: F,
) -> Result<T, E>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let started = tokio::time::Instant::now();
    let mut pause = Duration::from_millis(100);
    loop {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(error) if retryable(&error) && started.elapsed() + pause < START_PATIENCE => {
                warn!(what, %error, retry_in = ?pause, "a JetStream call at start failed; trying again");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(2));
            }
            Err(error) => return Err(error),
        }
    }
}

/// Whether a layout error may pass (NATS), rather than being the operator's to fix.
fn transient(error: &LayoutError) -> bool {
    matches!(error, LayoutError::Log(_))
}

/// The router's destination for one input type: `<prefix>.in.<domain>.<partition or
/// all>.<origin>.<Name>.<key token>[.p<origin partition>]`.
fn route(
    prefix: &str,
    domain: &str,
    partitions: u32,
    event_type: &str,
    key: InputKey,
    partitioned_origin: bool,
) -> String {
    let (origin, name) = event_type.split_once('.').unwrap_or((event_type, ""));
    let target = match key {
        InputKey::PartitionKey => format!("{{{{partition({partitions},1)}}}}"),
        InputKey::Broadcast => "all".to_owned(),
    };
    let tail = if partitioned_origin {
        "{{wildcard(1)}}.{{wildcard(2)}}"
    } else {
        "{{wildcard(1)}}"
    };
    format!(
        "{prefix}.in.{domain}.{target}.{origin}.{}.{tail}",
        super::wire::token(name)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_router_writes_the_partition_first_and_keeps_the_rest() {
        assert_eq!(
            route(
                "herald",
                "orders",
                6,
                "inventory.StockReserved",
                InputKey::PartitionKey,
                false
            ),
            "herald.in.orders.{{partition(6,1)}}.inventory.StockReserved.{{wildcard(1)}}"
        );
        assert_eq!(
            route(
                "herald",
                "orders",
                6,
                "shipping.ShipmentScheduled",
                InputKey::Broadcast,
                true
            ),
            "herald.in.orders.all.shipping.ShipmentScheduled.{{wildcard(1)}}.{{wildcard(2)}}"
        );
    }

    #[test]
    fn placements_name_the_partition_only_when_there_are_several() {
        let layout = Layout::new([("orders", 3), ("inventory", 1)]);
        assert_eq!(
            placement(&layout, "orders-p2"),
            Placement {
                domain: "orders".into(),
                partition: Some(2)
            }
        );
        assert_eq!(placement(&layout, "inventory").partition, None);
    }
}
