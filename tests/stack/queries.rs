//! Every dashboard query asked through a Prometheus-compatible API (Prometheus in the pull
//! model, VictoriaMetrics in the push model), with Grafana's variables substituted as Grafana
//! does: the variables list the expected networks and instances, and every panel query is
//! valid and returns data.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::dashboards::{self, interpolate, parse_label_values, variable_query, Variables};
use crate::process::Api;
use crate::promql::selectors;
use crate::unavailable;

/// The servers' scrape and evaluation interval in these tests.
pub const SCRAPE_SECONDS: u64 = 1;
/// Generous bounds for a loaded 2-core CI machine.
pub const SETTLE: Duration = Duration::from_secs(90);

/// Every dashboard's `network` and `instance` variables list exactly `want_networks` and
/// `want_instances`; with everything selected (the dashboards' default) every panel query is
/// valid and returns data (the only excuse: `unavailable.rs`); with one instance selected at a
/// time it is still valid.
pub async fn check_dashboard_queries(
    api: &Api,
    want_networks: &BTreeSet<String>,
    want_instances: &BTreeSet<String>,
) {
    let dashboards = dashboards::load();
    let mut networks = BTreeSet::new();
    let mut instances = BTreeSet::new();
    for dashboard in &dashboards {
        let variables = dashboard.variables();
        let (selector, label) = parse_label_values(&variable_query(variables["network"])).unwrap();
        let found = label_values(api, &label, &selector).await;
        assert_eq!(
            found,
            want_networks.clone(),
            "{}: network variable",
            dashboard.file
        );
        networks.extend(found);
        let (selector, label) = parse_label_values(&variable_query(variables["instance"])).unwrap();
        let selector = interpolate(&selector, &all_selected(&networks, &BTreeSet::new()));
        let found = label_values(api, &label, &selector).await;
        assert_eq!(
            found,
            want_instances.clone(),
            "{}: instance variable ({selector})",
            dashboard.file
        );
        instances.extend(found);
    }

    // Everything selected (the dashboards' default): each query must return data, unless an
    // allow-listed selector in it is what is empty.
    let everything = all_selected(&networks, &instances);
    let mut pending: Vec<(String, String)> = dashboards
        .iter()
        .flat_map(|d| d.targets())
        .map(|t| (t.place, t.expr))
        .collect();
    let total = pending.len();
    let mut excused: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + SETTLE;
    loop {
        let mut still = Vec::new();
        let mut report = Vec::new();
        for (place, expr) in pending.drain(..) {
            let query = interpolate(&expr, &everything);
            match api.query(&query).await {
                Err(e) => api.fail(&format!(
                    "{place}: {} rejects the query: {e}\n  {query}",
                    api.name
                )),
                Ok(result) if !result.is_empty() => {}
                Ok(_) => match emptiness(api, &query).await {
                    (Some(why), _) => {
                        excused.insert(place, why);
                    }
                    (None, diagnosis) => {
                        report.push(format!("{place}: no data\n    {query}\n{diagnosis}"));
                        still.push((place, expr));
                    }
                },
            }
        }
        pending = still;
        if pending.is_empty() {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            api.fail(&format!(
                "{} of {total} dashboard queries return no data after {SETTLE:?}, and not \
                 because of an allow-listed family (tests/stack/unavailable.rs):\n{}",
                pending.len(),
                report.join("\n")
            ));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    eprintln!(
        "{total} dashboard queries: {} with data, {} empty only because of allow-listed \
         families:",
        total - excused.len(),
        excused.len()
    );
    for (place, why) in &excused {
        eprintln!("  {place}: {}", why.join("; "));
    }

    // One instance selected at a time: still valid PromQL (data not required: e.g. the fresh
    // instance has no failing checks to show).
    for instance in &instances {
        let one = all_selected(&networks, &BTreeSet::from([instance.clone()]));
        for dashboard in &dashboards {
            for target in dashboard.targets() {
                let query = interpolate(&target.expr, &one);
                if let Err(e) = api.query(&query).await {
                    api.fail(&format!(
                        "{} with instance {instance}: {} rejects the query: {e}\n  {query}",
                        target.place, api.name
                    ));
                }
            }
        }
    }
}

/// The values the server has for `label` over the series `selector` matches, as Grafana's
/// `label_values()` asks for them.
async fn label_values(api: &Api, label: &str, selector: &str) -> BTreeSet<String> {
    let data = api
        .must(&format!("label/{label}/values"), &[("match[]", selector)])
        .await;
    data.as_array()
        .unwrap()
        .iter()
        .filter_map(|v| Some(v.as_str()?.to_owned()))
        .collect()
}

/// The dashboard variables with these networks and instances selected.
fn all_selected(networks: &BTreeSet<String>, instances: &BTreeSet<String>) -> Variables {
    Variables {
        selected: BTreeMap::from([
            ("network".to_owned(), networks.iter().cloned().collect()),
            ("instance".to_owned(), instances.iter().cloned().collect()),
        ]),
        interval_seconds: 2 * SCRAPE_SECONDS,
        scrape_interval_seconds: SCRAPE_SECONDS,
        range_seconds: 300,
    }
}

/// Why the (interpolated) `query` returns nothing: `Some(reasons)` when every selector that
/// selects nothing is allow-listed (and at least one does), else `None`, with a per-selector
/// diagnosis either way.
async fn emptiness(api: &Api, query: &str) -> (Option<Vec<String>>, String) {
    let mut reasons = Vec::new();
    let mut unexplained = false;
    let mut diagnosis = String::new();
    for selector in selectors(query) {
        let found = api.query(&selector.text).await.map(|r| r.len());
        diagnosis.push_str(&format!("      {} -> {found:?} series\n", selector.text));
        match (found, unavailable::excuse(&selector)) {
            (Ok(n), _) if n > 0 => {}
            (_, Some(why)) => reasons.push(why),
            (_, None) => unexplained = true,
        }
    }
    let why = (!reasons.is_empty() && !unexplained).then_some(reasons);
    (why, diagnosis)
}
