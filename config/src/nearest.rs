//! "Did you mean": the name a misspelt one most likely meant, for every error message
//! about a name that matches nothing (config keys' domains, event types, streams).

/// The candidate closest to `wanted`, if it is close enough to be a slip of the keyboard:
/// the same name in other case, else at most a third of its characters edited (rustc's
/// rule for "did you mean"). Ties go to the earlier candidate.
pub fn nearest<'a>(wanted: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let wanted = wanted.to_lowercase();
    let limit = (wanted.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|candidate| {
            (
                strsim::levenshtein(&wanted, &candidate.to_lowercase()),
                candidate,
            )
        })
        .filter(|(distance, _)| *distance <= limit)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

#[cfg(test)]
mod tests {
    use super::nearest;

    #[test]
    fn nearest_takes_small_edits_only() {
        let names = ["orders", "inventory", "payments"];
        for (wanted, expected) in [
            ("order", Some("orders")),
            ("Orders", Some("orders")),
            ("inventroy", Some("inventory")),
            ("shipping", None),
            ("x", None),
        ] {
            assert_eq!(nearest(wanted, names), expected, "{wanted}");
        }
    }
}
