//! THE allow-list: what the dashboards and alert rules may read that the exporter cannot
//! serve against this binary's fixtures. Nothing else is excused from returning data.
//!
//! Every entry says why. The tests fail when an entry goes stale, i.e. when the exporter
//! serves the family (or runs the check) against the fixture after all, or when no dashboard
//! or rule uses it any more: then remove it, so that its panels are checked for data.

use crate::promql::Selector;

/// Metric families, with the reason the fixtures cannot produce them.
pub const FAMILIES: &[(&str, &str)] = &[
    // --- integrity ------------------------------------------------------------------------
    // The integrity checks (mir, pool_refunds, ada_pots, epoch_stake) run, but their metric
    // encoding is not wired into /metrics yet; the fixture builder has no rewards, MIR
    // certificates, retirements or ada_pots rows either (the db-sync simulator that will
    // plant them, faults included, is being written).
    (
        "dbsync_mir_unpaid_payments",
        "integrity metrics not served yet (mir)",
    ),
    (
        "dbsync_mir_unpaid_lovelace",
        "integrity metrics not served yet (mir)",
    ),
    (
        "dbsync_mir_orphan_rewards",
        "integrity metrics not served yet (mir)",
    ),
    (
        "dbsync_pool_refunds_missing",
        "integrity metrics not served yet (pool_refunds)",
    ),
    (
        "dbsync_pool_refunds_missing_lovelace",
        "integrity metrics not served yet (pool_refunds)",
    ),
    (
        "dbsync_pool_refunds_unclaimed",
        "integrity metrics not served yet (pool_refunds)",
    ),
    (
        "dbsync_ada_pots_deviation_lovelace",
        "integrity metrics not served yet (ada_pots)",
    ),
    (
        "dbsync_ada_pots_inconsistent_epochs",
        "integrity metrics not served yet (ada_pots)",
    ),
    (
        "dbsync_ada_pots_missing_epochs",
        "integrity metrics not served yet (ada_pots)",
    ),
    (
        "dbsync_epoch_stake_complete",
        "integrity metrics not served yet (epoch_stake)",
    ),
];

/// Values of the `check` label (of `dbsync_check_*`) that no test exporter reports. Empty
/// now that the exporter runs every check the dashboards name.
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
