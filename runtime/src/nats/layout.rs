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

use async_nats::jetstream;

use super::connection::NatsSettings;
use super::streams::{self, Placement};
use crate::deadletter;
use crate::log::LogError;
use crate::partition::{InputKey, Layout};

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
/// inbox (or router and partition inboxes).
pub async fn provision(
    context: &jetstream::Context,
    settings: &NatsSettings,
    layout: &Layout,
    domain: &'static str,
    inputs: &[Input],
) -> Result<(), LayoutError> {
    let prefix = &settings.prefix;
    for origin in inputs.iter().map(|input| input.origin).chain([domain]) {
        check_count(context, prefix, origin, layout.partitions(origin)).await?;
        for stream in layout.streams(origin) {
            let place = placement(layout, stream);
            for (name, dead) in [
                (stream.to_string(), false),
                (deadletter::stream(stream), true),
            ] {
                let subjects = streams::own_subjects(prefix, &place, dead);
                streams::provision_own(
                    context,
                    settings,
                    streams::stream_name(prefix, &name),
                    subjects,
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
    streams::provision_inbox(context, settings, inbox.clone(), sources).await?;
    if partitions > 1 {
        for (partition, stream) in layout.streams(domain).iter().enumerate() {
            let filters = [partition.to_string(), "all".to_owned()]
                .into_iter()
                .map(|token| (format!("{prefix}.in.{domain}.{token}.>"), String::new()))
                .collect();
            streams::provision_inbox(
                context,
                settings,
                streams::inbox_name(prefix, stream),
                vec![streams::source(inbox.clone(), filters)],
            )
            .await?;
        }
    }
    Ok(())
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

/// Refuses to lay a domain out with another partition count than its streams already
/// have: keys would move between streams, and their order with them.
async fn check_count(
    context: &jetstream::Context,
    prefix: &str,
    domain: &str,
    partitions: u32,
) -> Result<(), LayoutError> {
    let exists = |stream: String| streams::exists(context, streams::stream_name(prefix, &stream));
    let had = if exists(domain.to_owned()).await? {
        (partitions > 1).then(|| "1".to_owned())
    } else if exists(format!("{domain}-p0")).await? {
        let fewer = !exists(format!("{domain}-p{}", partitions.saturating_sub(1))).await?;
        let more = exists(format!("{domain}-p{partitions}")).await?;
        (partitions == 1 || fewer || more).then(|| "another number of".to_owned())
    } else {
        None
    };
    match had {
        Some(had) => Err(LayoutError::Mismatch(format!(
            "domain \"{domain}\" is configured with {partitions} partition(s), but its JetStream streams ({prefix}-{domain}…) were laid out with {had} partition(s); the count is fixed once a domain's streams exist: set its partitions back, or delete the domain's streams to start over"
        ))),
        None => Ok(()),
    }
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
