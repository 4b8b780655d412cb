//! THE allow-list: what the dashboards and alert rules may read that the exporter cannot
//! serve against this binary's test fleet (`common::Fleet`). Nothing else is excused from
//! returning data.
//!
//! It is empty: the simulated fleet (a clean instance with a Koios grest table, and a stalled
//! one with every simulator fault planted, each the other's peer) makes the exporter serve
//! every family the dashboards and rules use, with data in every dashboard query. Add an entry
//! only for a family that no fixture can produce, with the reason next to it, e.g.
//! `("dbsync_some_family", "needs X, which the simulator does not write")`.
//!
//! The tests fail when an entry goes stale, i.e. when the exporter serves the family (or runs
//! the check) against the fleet after all, or when no dashboard or rule uses it any more:
//! then remove it, so that its panels are checked for data.

use crate::promql::Selector;

/// Metric families, with the reason the fixtures cannot produce them.
pub const FAMILIES: &[(&str, &str)] = &[];

/// Values of the `check` label (of `dbsync_check_*`) that no test exporter runs, with the
/// reason: selectors matching only these checks may be empty.
pub const CHECKS: &[(&str, &str)] = &[];

/// Whether `name` is an allow-listed family.
pub fn family(name: &str) -> bool {
    FAMILIES.iter().any(|(family, _)| *family == name)
}

/// Why `selector` may legitimately select nothing here, if it may: an allow-listed family, or
/// a `check` matcher that only matches allow-listed checks.
pub fn excuse(selector: &Selector) -> Option<String> {
    if let Some((_, why)) = FAMILIES.iter().find(|(family, _)| *family == selector.name) {
        return Some(format!("{}: {why}", selector.name));
    }
    for matcher in selector.matchers.iter().filter(|m| m.label == "check") {
        let values: Vec<&str> = match matcher.op.as_str() {
            "=" => vec![matcher.value.as_str()],
            "=~" if matcher
                .value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '|') =>
            {
                matcher.value.split('|').collect()
            }
            _ => continue,
        };
        let reasons: Option<Vec<&str>> = values
            .iter()
            .map(|value| {
                CHECKS
                    .iter()
                    .find(|(check, _)| check == value)
                    .map(|(_, why)| *why)
            })
            .collect();
        if let Some(reasons) = reasons {
            return Some(format!(
                "check=~{:?}: {}",
                matcher.value,
                reasons.join("; ")
            ));
        }
    }
    None
}
