//! Partitions: how a domain's state divides over keys, and which partition a key is in.
//!
//! A domain declares its [`Partitioning`] (`Domain::partitioning`). `Whole` (the default)
//! keeps its state in one piece: it runs as one partition, which may still move between
//! nodes. `ByKey` keeps state per key, so its inputs and ingress can be spread over P
//! partitions by [`of`]. The layout on JetStream and the ownership of partitions are in
//! `docs/design/partitions.md`.
//!
//! [`of`] is FNV-1a 32 of the key's subject token (the 16 hex digits of xxh3 already in
//! every subject) modulo P: exactly what nats-server's `{{partition(P, i)}}` subject
//! mapping computes, so the server can route inputs with the same function Herald uses to
//! route ingress and queries.

use crate::log::Take;

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

/// Which records of the node-wide order one host consumes: its domain's subscribed types,
/// and for one partition of a domain keyed by key, only inputs of its keys (and every
/// broadcast input).
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    types: std::collections::HashMap<String, Take>,
}

impl Inputs {
    /// The inputs of a host of a domain subscribed to `subscriptions`, keyed as
    /// `partitioning` says, running partition `partition` (partition, count), if any.
    pub fn new(
        subscriptions: &[&str],
        partitioning: Partitioning,
        partition: Option<(u32, u32)>,
    ) -> Self {
        let types = subscriptions
            .iter()
            .map(|event_type| {
                let take = match (partition, partitioning.input_key(event_type)) {
                    (Some((partition, partitions)), Some(InputKey::PartitionKey))
                        if partitions > 1 =>
                    {
                        Take::Partition {
                            partition,
                            partitions,
                        }
                    }
                    _ => Take::All,
                };
                ((*event_type).to_owned(), take)
            })
            .collect();
        Self { types }
    }

    /// What the host takes of records of `event_type`.
    pub fn take(&self, event_type: &str) -> Take {
        self.types.get(event_type).copied().unwrap_or(Take::Nothing)
    }
}

/// The partition (0..`partitions`) of `key`.
///
/// # Panics
///
/// When `partitions` is 0, which configuration validation rules out.
pub fn of(key: &str, partitions: u32) -> u32 {
    assert!(partitions > 0, "a domain has at least one partition");
    key_hash(key) % partitions
}

/// The hash [`of`] takes modulo P: FNV-1a 32 of the key's subject token. The embedded log
/// keeps it per record, so a partition's host picks its inputs without reading the others.
pub fn key_hash(key: &str) -> u32 {
    // The token's 16 hex digits, written on the stack: this runs for every record appended
    // or indexed, so no String.
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let hash = xxhash_rust::xxh3::xxh3_64(key.as_bytes());
    let mut token = [0u8; 16];
    for (i, digit) in token.iter_mut().enumerate() {
        *digit = HEX[((hash >> (60 - 4 * i)) & 0xf) as usize];
    }
    fnv1a32(&token)
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

/// How many partitions each known domain has, and the names of their streams: what every
/// node needs to route a key, whichever domains it runs.
#[derive(Debug, Clone, Default)]
pub struct Layout {
    domains: std::collections::BTreeMap<&'static str, Vec<&'static str>>,
}

impl Layout {
    /// The layout of `domains`, each with its partition count (0 reads as 1).
    pub fn new(domains: impl IntoIterator<Item = (&'static str, u32)>) -> Self {
        let domains = domains
            .into_iter()
            .map(|(domain, partitions)| {
                let streams = match partitions {
                    0 | 1 => vec![domain],
                    // Interned once per node: hosts, routes and metrics key by stream name,
                    // and partitions are bounded (`MAX_PARTITIONS` per domain).
                    _ => (0..partitions)
                        .map(|p| &*Box::leak(stream(domain, p, partitions).into_boxed_str()))
                        .collect(),
                };
                (domain, streams)
            })
            .collect();
        Self { domains }
    }

    /// The partition count of `domain` (1 if unknown).
    pub fn partitions(&self, domain: &str) -> u32 {
        self.domains
            .get(domain)
            .map_or(1, |streams| streams.len() as u32)
    }

    /// The streams of `domain`'s partitions, in partition order.
    pub fn streams(&self, domain: &str) -> &[&'static str] {
        self.domains.get(domain).map_or(&[], Vec::as_slice)
    }

    /// The stream of the partition holding `key` of `domain`.
    pub fn stream_for(&self, domain: &str, key: &str) -> Option<&'static str> {
        let streams = self.domains.get(domain)?;
        Some(streams[of(key, streams.len() as u32) as usize])
    }

    /// The domain and partition of Herald stream `stream` (a domain's own stream name when
    /// it has one partition).
    pub fn locate(&self, stream: &str) -> Option<(&'static str, u32)> {
        self.domains.iter().find_map(|(domain, streams)| {
            streams
                .iter()
                .position(|s| *s == stream)
                .map(|p| (*domain, p as u32))
        })
    }

    /// Every stream of every domain.
    pub fn all_streams(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.domains.values().flatten().copied()
    }
}

/// Who should own each partition of `domain`: partition `p` goes to the member ranked
/// highest for it (xxh3 of domain, `p` and member id) that still has room, where room is
/// ⌈P/N⌉ for at most P mod N members and ⌊P/N⌋ for the others. Every node computes the
/// same answer from the same member set, in any order; each member gets ⌊P/N⌋ or ⌈P/N⌉
/// partitions, and a join or a leave moves few of them. `None` when there is no member.
pub fn assign(domain: &str, partitions: u32, members: &[&str]) -> Vec<Option<String>> {
    let mut members: Vec<&str> = members.to_vec();
    members.sort_unstable();
    members.dedup();
    if members.is_empty() {
        return vec![None; partitions as usize];
    }
    let count = members.len() as u32;
    let (base, mut extra) = (partitions / count, partitions % count);
    let mut held = vec![0u32; members.len()];
    (0..partitions)
        .map(|partition| {
            let mut ranked: Vec<(u64, usize)> = members
                .iter()
                .enumerate()
                .map(|(index, member)| (rank(domain, partition, member), index))
                .collect();
            ranked.sort_unstable_by(|a, b| b.cmp(a));
            let chosen = ranked
                .iter()
                .map(|(_, index)| *index)
                .find(|index| held[*index] < base || (held[*index] == base && extra > 0));
            chosen.map(|index| {
                if held[index] == base {
                    extra -= 1;
                }
                held[index] += 1;
                members[index].to_owned()
            })
        })
        .collect()
}

fn rank(domain: &str, partition: u32, member: &str) -> u64 {
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    hasher.update(domain.as_bytes());
    hasher.update(&[0]);
    hasher.update(&partition.to_le_bytes());
    hasher.update(member.as_bytes());
    hasher.digest()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nats::wire;

    #[test]
    fn the_key_hash_is_fnv1a_of_the_keys_subject_token() {
        for key in ["", "o-1", "order-42", "ünïcode key"] {
            assert_eq!(
                key_hash(key),
                fnv1a32(wire::key_token(key).as_bytes()),
                "{key}"
            );
        }
    }

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

    fn owned(assignment: &[Option<String>], member: &str) -> usize {
        assignment
            .iter()
            .filter(|owner| owner.as_deref() == Some(member))
            .count()
    }

    #[test]
    fn every_partition_has_an_owner_and_loads_differ_by_at_most_one() {
        for partitions in [1, 2, 6, 8, 12, 64] {
            for members in [
                vec!["a"],
                vec!["a", "b"],
                vec!["a", "b", "c"],
                vec!["n1", "n2", "n3", "n4", "n5"],
            ] {
                let assignment = assign("orders", partitions, &members);
                assert_eq!(assignment.len(), partitions as usize);
                assert!(assignment.iter().all(Option::is_some));
                let loads: Vec<usize> = members.iter().map(|m| owned(&assignment, m)).collect();
                let (min, max) = (loads.iter().min(), loads.iter().max());
                assert!(
                    max.zip(min).is_some_and(|(max, min)| max - min <= 1),
                    "{partitions} over {members:?}: {loads:?}"
                );
            }
        }
        assert_eq!(assign("orders", 3, &[]), vec![None, None, None]);
    }

    #[test]
    fn every_node_computes_the_same_owners_in_any_order() {
        let one = assign("orders", 12, &["c", "a", "b", "a"]);
        let other = assign("orders", 12, &["b", "c", "a"]);
        assert_eq!(one, other);
        assert_ne!(
            assign("shipping", 12, &["a", "b", "c"]),
            one,
            "domains spread differently"
        );
    }

    #[test]
    fn a_join_or_a_leave_moves_few_partitions() {
        let before = assign("orders", 12, &["a", "b", "c"]);
        let joined = assign("orders", 12, &["a", "b", "c", "d"]);
        let moved = before.iter().zip(&joined).filter(|(x, y)| x != y).count();
        // The ideal is 3 (d's share); bounded load may move a few more, never most.
        assert!((3..=6).contains(&moved), "{moved} of 12 moved on a join");
        let left = assign("orders", 12, &["a", "b"]);
        let kept = before
            .iter()
            .zip(&left)
            .filter(|(x, y)| x.as_deref() != Some("c") && x == y)
            .count();
        assert!(
            kept >= 6,
            "only {kept} of the survivors' 8 partitions stayed"
        );
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

    #[test]
    fn a_layout_routes_keys_to_partition_streams_and_back() {
        let layout = Layout::new([("orders", 6), ("inventory", 1)]);
        assert_eq!(layout.streams("inventory"), ["inventory"]);
        assert_eq!(layout.streams("orders").len(), 6);
        let stream = layout.stream_for("orders", "o-1").unwrap();
        assert_eq!(stream, format!("orders-p{}", of("o-1", 6)));
        assert_eq!(layout.locate(stream), Some(("orders", of("o-1", 6))));
        assert_eq!(layout.locate("inventory"), Some(("inventory", 0)));
        assert_eq!(layout.stream_for("inventory", "x"), Some("inventory"));
        assert_eq!(layout.locate("nope"), None);
        assert_eq!(layout.all_streams().count(), 7);
    }
}
