//! Ids of emitted events, derived from their cause so that re-running a handler on the same
//! input produces the same ids, which is how recovery tells what is already in the log.

use uuid::Uuid;

/// Namespace of Herald's derived ids (a fixed random UUID).
const NAMESPACE: Uuid = Uuid::from_u128(0x6c1f_0a3e_52d4_4b8e_9a71_3f0c_2d9e_8b15);

/// The `source` of events a domain emits.
pub fn emitted_source(domain: &str) -> String {
    format!("/herald/domains/{domain}")
}

/// The id of the `index`-th event `domain` emits while handling the input (`source`, `id`).
pub fn derived_id(domain: &str, cause_source: &str, cause_id: &str, index: usize) -> String {
    // Length-prefix each part so ("a|b", "c") and ("a", "b|c") cannot collide.
    let name = format!(
        "{}:{domain}|{}:{cause_source}|{}:{cause_id}|{index}",
        domain.len(),
        cause_source.len(),
        cause_id.len()
    );
    Uuid::new_v5(&NAMESPACE, name.as_bytes()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_cause_same_id_and_any_change_changes_it() {
        let id = derived_id("inventory", "/shop", "e-1", 0);
        assert_eq!(id, derived_id("inventory", "/shop", "e-1", 0));
        for other in [
            derived_id("payments", "/shop", "e-1", 0),
            derived_id("inventory", "/shop2", "e-1", 0),
            derived_id("inventory", "/shop", "e-2", 0),
            derived_id("inventory", "/shop", "e-1", 1),
            derived_id("inventory", "/sho", "pe-1", 0),
        ] {
            assert_ne!(id, other);
        }
    }
}
