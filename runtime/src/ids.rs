//! Ids of emitted events, derived from their cause so that re-running a handler on the same
//! input produces the same ids, which is how recovery tells what is already in the log.

use uuid::Uuid;

use crate::envelope::Cause;

/// Namespace of Herald's derived ids (a fixed random UUID).
const NAMESPACE: Uuid = Uuid::from_u128(0x6c1f_0a3e_52d4_4b8e_9a71_3f0c_2d9e_8b15);

/// The `source` of events a domain emits.
pub fn emitted_source(domain: &str) -> String {
    format!("/herald/domains/{domain}")
}

/// Sources under this prefix are Herald's own; clients may not use them.
pub const RESERVED_SOURCE_PREFIX: &str = "/herald/";

/// The id of the `index`-th event `domain` emits while handling `cause`.
///
/// The cause's position makes the id unique per input, even when two inputs share a
/// `source` and `id` (in two streams, or resent after the deduplication window); its
/// `source` and `id` keep ids distinct for inputs not yet appended (domain tests).
pub fn derived_id(domain: &str, cause: &Cause, index: usize) -> String {
    let position = &cause.position;
    // Length-prefix each part so ("a|b", "c") and ("a", "b|c") cannot collide.
    let name = format!(
        "{}:{domain}|{}:{}|{}|{}:{}|{}:{}|{index}",
        domain.len(),
        position.stream.len(),
        position.stream,
        position.sequence,
        cause.source.len(),
        cause.source,
        cause.id.len(),
        cause.id
    );
    Uuid::new_v5(&NAMESPACE, name.as_bytes()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::Position;

    fn cause(source: &str, id: &str, stream: &str, sequence: u64) -> Cause {
        Cause {
            source: source.into(),
            id: id.into(),
            position: Position {
                stream: stream.into(),
                sequence,
            },
        }
    }

    #[test]
    fn same_cause_same_id_and_any_change_changes_it() {
        let input = cause("/shop", "e-1", "orders", 7);
        let id = derived_id("inventory", &input, 0);
        assert_eq!(id, derived_id("inventory", &input, 0));
        for other in [
            derived_id("payments", &input, 0),
            derived_id("inventory", &cause("/shop2", "e-1", "orders", 7), 0),
            derived_id("inventory", &cause("/shop", "e-2", "orders", 7), 0),
            derived_id("inventory", &input, 1),
            derived_id("inventory", &cause("/sho", "pe-1", "orders", 7), 0),
            // The same (source, id) in another stream, or again later: another input.
            derived_id("inventory", &cause("/shop", "e-1", "payments", 7), 0),
            derived_id("inventory", &cause("/shop", "e-1", "orders", 8), 0),
        ] {
            assert_ne!(id, other);
        }
    }
}
