//! Partitions: how a domain's state divides over keys, and which partition a key is in.
//!
//! A domain declares its [`Partitioning`] (`Domain::partitioning`). `Whole` (the default)
//! keeps its state in one piece: it runs as one partition, which may still move between
//! nodes. `ByKey` keeps state per key, so its inputs and ingress can be spread over P
//! partitions by [`of`]. The layout on JetStream and the ownership of partitions are in
//! `docs/partitions.md`.
//!
//! [`of`] is FNV-1a 32 of the key's subject token (the 16 hex digits of xxh3 already in
//! every subject) modulo P: exactly what nats-server's `{{partition(P, i)}}` subject
//! mapping computes, so the server can route inputs with the same function Herald uses to
//! route ingress and queries.

use crate::nats::wire;

/// How a domain's state divides over keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Partitioning {
    /// One partition: the state spans keys (a decision over several keys, a global sum).
    Whole,
    /// State per key; own events are keyed by `subject`, inputs as `inputs` says (a type
    /// not listed is keyed by its `partitionkey`).
    ByKey {
        /// How each listed input type is keyed.
        inputs: &'static [(&'static str, InputKey)],
    },
}

impl Partitioning {
    /// Whether state is per key.
    pub fn by_key(&self) -> bool {
        matches!(self, Self::ByKey { .. })
    }

    /// How input type `event_type` is keyed (`None` for a `Whole` domain).
    pub fn input_key(&self, event_type: &str) -> Option<InputKey> {
        match self {
            Self::Whole => None,
            Self::ByKey { inputs } => Some(
                inputs
                    .iter()
                    .find(|(name, _)| *name == event_type)
                    .map_or(InputKey::PartitionKey, |(_, key)| *key),
            ),
        }
    }
}

/// How a partitioned domain keys one input type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKey {
    /// By the event's `partitionkey`: one partition receives it.
    PartitionKey,
    /// Every partition receives it.
    Broadcast,
}

impl InputKey {
    /// Its name in the topology.
    pub fn name(self) -> &'static str {
        match self {
            Self::PartitionKey => "partitionkey",
            Self::Broadcast => "broadcast",
        }
    }
}

/// The partition (0..`partitions`) of `key`.
///
/// # Panics
///
/// When `partitions` is 0, which configuration validation rules out.
pub fn of(key: &str, partitions: u32) -> u32 {
    assert!(partitions > 0, "a domain has at least one partition");
    fnv1a32(wire::key_token(key).as_bytes()) % partitions
}

/// FNV-1a, 32 bits: the hash nats-server's `partition()` subject mapping uses.
fn fnv1a32(bytes: &[u8]) -> u32 {
    const OFFSET: u32 = 2_166_136_261;
    const PRIME: u32 = 16_777_619;
    bytes.iter().fold(OFFSET, |hash, byte| {
        (hash ^ u32::from(*byte)).wrapping_mul(PRIME)
    })
}

/// The Herald stream of partition `partition` of `domain` (the domain's own name when it
/// has one partition, so an unpartitioned layout stays as it is).
pub fn stream(domain: &str, partition: u32, partitions: u32) -> String {
    match partitions {
        0 | 1 => domain.to_owned(),
        _ => format!("{domain}-p{partition}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_the_reference_vectors() {
        // From the FNV reference (draft-eastlake-fnv): "", "a", "foobar".
        assert_eq!(fnv1a32(b""), 0x811c_9dc5);
        assert_eq!(fnv1a32(b"a"), 0xe40c_292c);
        assert_eq!(fnv1a32(b"foobar"), 0xbf9c_f968);
    }

    #[test]
    fn a_key_always_lands_in_the_same_partition_and_keys_spread_evenly() {
        assert_eq!(of("order-42", 6), of("order-42", 6));
        assert_eq!(of("anything", 1), 0);
        let mut counts = [0u32; 6];
        for n in 0..6000 {
            counts[of(&format!("order-{n}"), 6) as usize] += 1;
        }
        for count in counts {
            assert!((850..=1150).contains(&count), "uneven: {counts:?}");
        }
    }

    #[test]
    fn streams_keep_the_unpartitioned_name() {
        assert_eq!(stream("orders", 0, 1), "orders");
        assert_eq!(stream("orders", 3, 6), "orders-p3");
    }

    #[test]
    fn input_keys_default_to_the_partition_key() {
        let whole = Partitioning::Whole;
        assert_eq!(whole.input_key("payments.PaymentCaptured"), None);
        let by_key = Partitioning::ByKey {
            inputs: &[("inventory.StockAdded", InputKey::Broadcast)],
        };
        assert_eq!(
            by_key.input_key("inventory.StockAdded"),
            Some(InputKey::Broadcast)
        );
        assert_eq!(
            by_key.input_key("payments.PaymentCaptured"),
            Some(InputKey::PartitionKey)
        );
    }
}
