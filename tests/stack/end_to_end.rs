//! The whole stack end to end: the test fleet (see `common::Fleet`), a real Prometheus that
//! scrapes it every second and evaluates the repository's rules, and every dashboard query
//! asked through Prometheus' HTTP API.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::AsyncWriteExt as _;

use dbsync_sim::Fault;

use crate::common::{require_tool, served_names, Fleet, NETWORK};
use crate::dashboards::{self, interpolate, parse_label_values, variable_query, Variables};
use crate::prometheus::Prometheus;
use crate::promql::{metric_names, selectors};
use crate::rules::{recording_rules, rule_files, thresholds_for_fast_evaluation, THRESHOLDS_FILE};
use crate::unavailable;

/// Prometheus' scrape and evaluation interval.
const SCRAPE_SECONDS: u64 = 1;
/// Generous bounds for a loaded 2-core CI machine.
const SETTLE: Duration = Duration::from_secs(90);

/// Prometheus scrapes the fleet every second with `alerts/*.rules.yml` loaded (the thresholds
/// file with its real values, evaluated every second), and its HTTP API shows that:
/// 1. both targets are up;
/// 2. the integrity values the simulator planted arrive with the expected values;
/// 3. the stalled instance's alerts go pending or firing (stale tip at both severities,
///    behind the fleet, health down, failing check, one per planted integrity fault), with
///    severity, summary, description naming the instance, and runbook; the fresh instance and
///    the fleet as a whole raise none;
/// 4. every rule of the files is loaded and evaluates with health "ok", and reads only
///    served, recorded or Prometheus' own metrics;
/// 5. every dashboard variable query lists the real networks and instances, and every panel
///    query, with the variables substituted as Grafana does, is valid and returns data (the
///    only excuse: `unavailable.rs`); one instance at a time it is still valid;
/// 6. `promtool check metrics` is clean on a scrape of each exporter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_evaluates_the_rules_and_answers_every_dashboard_query() {
    require_tool("prometheus");
    let promtool = require_tool("promtool");

    let fleet = Fleet::start("stack_e2e").await;
    let (fresh_exporter, stalled_exporter) = (&fleet.fresh, &fleet.stalled);

    // --- Prometheus with the repository's rules ------------------------------------------
    let targets = [fresh_exporter.addr, stalled_exporter.addr];
    let mut rule_paths = Vec::new();
    for file in rule_files() {
        if file.file_name().is_some_and(|n| n == THRESHOLDS_FILE) {
            // Same thresholds, but evaluated every second (see rules.rs).
            rule_paths.push(None);
        } else {
            rule_paths.push(Some(file));
        }
    }
    let prometheus = Prometheus::start(
        &[(THRESHOLDS_FILE, thresholds_for_fast_evaluation())],
        |dir| {
            let rules: Vec<String> = rule_paths
                .iter()
                .map(|path| {
                    let path = path.clone().unwrap_or_else(|| dir.join(THRESHOLDS_FILE));
                    format!("  - {:?}\n", path.display().to_string())
                })
                .collect();
            format!(
                "global:\n  scrape_interval: {SCRAPE_SECONDS}s\n  scrape_timeout: {SCRAPE_SECONDS}s\n  \
                 evaluation_interval: {SCRAPE_SECONDS}s\n\
                 rule_files:\n{}\
                 scrape_configs:\n  - job_name: dbsync\n    static_configs:\n      - targets: [{}]\n",
                rules.concat(),
                targets
                    .iter()
                    .map(|t| format!("\"{t}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        },
    )
    .await;
    let fresh_instance = fresh_exporter.addr.to_string();
    let stalled_instance = stalled_exporter.addr.to_string();

    // --- 1. the targets are up -----------------------------------------------------------
    prometheus
        .wait_for(
            SETTLE,
            "both exporters to be scraped successfully",
            || async {
                let data = prometheus.api("targets", &[("state", "active")]).await?;
                let active = data["activeTargets"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                let up: BTreeSet<String> = active
                    .iter()
                    .filter(|t| t["health"] == "up" && t["labels"]["job"] == "dbsync")
                    .filter_map(|t| Some(t["labels"]["instance"].as_str()?.to_owned()))
                    .collect();
                let want = BTreeSet::from([fresh_instance.clone(), stalled_instance.clone()]);
                (up == want)
                    .then_some(())
                    .ok_or_else(|| format!("{active:#?}"))
            },
        )
        .await;

    // --- 2. what the simulator planted arrives in Prometheus with the expected values ------
    prometheus
        .wait_for(
            SETTLE,
            "the stalled instance's integrity series",
            || async {
                let mut wrong = Vec::new();
                for expectation in &fleet.stalled_report.expectations {
                    let query = with_instance(&expectation.series, &stalled_instance);
                    let found: Vec<f64> = prometheus
                        .query(&query)
                        .await?
                        .iter()
                        .filter_map(|sample| sample["value"][1].as_str()?.parse().ok())
                        .collect();
                    if found != [expectation.value as f64] {
                        wrong.push(format!(
                            "{query}: want {}, have {found:?}",
                            expectation.value
                        ));
                    }
                }
                wrong
                    .is_empty()
                    .then_some(())
                    .ok_or_else(|| wrong.join("\n"))
            },
        )
        .await;

    // --- 3. the stale-tip alert goes pending (or firing) for the stalled instance only -------
    // Every simulator fault planted in the stalled instance raises its integrity alert.
    let planted: Vec<Fault> = fleet
        .stalled_report
        .planted
        .iter()
        .map(|p| p.fault)
        .collect();
    assert_eq!(
        planted,
        Fault::ALL,
        "the simulator planted: {:#?}",
        fleet.stalled_report.planted
    );
    let mut expected = vec![
        ("DbSyncTipStale", "warning"),
        ("DbSyncTipStale", "critical"),
        ("DbSyncBehindFleet", "warning"),
        ("DbSyncHealthDown", "critical"),
    ];
    expected.extend(planted.iter().map(|fault| {
        let alert = match fault {
            Fault::MissingMir => "DbSyncMirUnpaid",
            Fault::OrphanMir => "DbSyncMirOrphanRewards",
            Fault::MissingRefund => "DbSyncPoolRefundsMissing",
            Fault::BrokenAdaPots => "DbSyncAdaPotsInconsistent",
            Fault::MissingAdaPots => "DbSyncAdaPotsMissing",
        };
        (alert, "warning")
    }));
    let alerts = prometheus
        .wait_for(SETTLE, "the stalled instance's alerts", || async {
            let alerts = active_alerts(&prometheus).await?;
            let missing: Vec<_> = expected
                .iter()
                .filter(|(name, severity)| {
                    !alerts.iter().any(|a| {
                        a["labels"]["alertname"] == *name
                            && a["labels"]["severity"] == *severity
                            && a["labels"]["instance"] == stalled_instance.as_str()
                    })
                })
                .collect();
            let failing_info = alerts.iter().any(|a| {
                a["labels"]["alertname"] == "DbSyncCheckFailing"
                    && a["labels"]["check"] == "info"
                    && a["labels"]["instance"] == stalled_instance.as_str()
            });
            if missing.is_empty() && failing_info {
                Ok(alerts)
            } else {
                Err(format!(
                    "missing {missing:?}, DbSyncCheckFailing{{check=info}}: {failing_info}; \
                     active alerts:\n{alerts:#?}"
                ))
            }
        })
        .await;
    for alert in &alerts {
        let labels = &alert["labels"];
        let annotations = &alert["annotations"];
        let name = labels["alertname"].as_str().unwrap_or_default();
        assert!(
            matches!(alert["state"].as_str(), Some("pending" | "firing")),
            "{alert:#}"
        );
        assert!(
            matches!(labels["severity"].as_str(), Some("warning" | "critical")),
            "{name} has no severity: {alert:#}"
        );
        let description = annotations["description"].as_str().unwrap_or_default();
        assert!(
            !annotations["summary"]
                .as_str()
                .unwrap_or_default()
                .is_empty()
                && description.contains(labels["instance"].as_str().unwrap_or("<no instance>")),
            "{name}: summary and description with the instance expected: {alert:#}"
        );
        let runbook = annotations["runbook"].as_str().unwrap_or_default();
        assert!(
            runbook.starts_with("alerts/RUNBOOK.md#"),
            "{name}: runbook {runbook:?}"
        );
    }
    let tip_stale = alerts
        .iter()
        .find(|a| a["labels"]["alertname"] == "DbSyncTipStale")
        .unwrap();
    let age: f64 = tip_stale["value"].as_str().unwrap().parse().unwrap();
    assert!(
        (3600.0..4000.0).contains(&age),
        "DbSyncTipStale value should be the stalled tip's age: {tip_stale:#}"
    );

    // The fresh instance stays silent, and so do the fleet-wide alerts (e.g. thresholds
    // missing). Startup may briefly show one (a scrape that timed out, the first evaluation
    // before the thresholds group ran), so wait for a clean evaluation.
    prometheus
        .wait_for(
            Duration::from_secs(30),
            "no alert for the fresh instance and none fleet-wide",
            || async {
                let alerts = active_alerts(&prometheus).await?;
                let unexpected: Vec<&Value> = alerts
                    .iter()
                    .filter(|a| a["labels"]["instance"] != stalled_instance.as_str())
                    .collect();
                unexpected
                    .is_empty()
                    .then_some(())
                    .ok_or_else(|| format!("{unexpected:#?}"))
            },
        )
        .await;

    // --- 4. every rule loaded and evaluates without error --------------------------------
    let rules = prometheus
        .wait_for(SETTLE, "every rule to be evaluated once", || async {
            let data = prometheus.api("rules", &[]).await?;
            let rules = loaded_rules(&data);
            let unevaluated: Vec<String> = rules
                .iter()
                .filter(|(_, rule)| rule["health"] == "unknown")
                .map(|(name, _)| name.clone())
                .collect();
            unevaluated
                .is_empty()
                .then_some((data, rules))
                .ok_or_else(|| format!("not evaluated yet: {unevaluated:?}"))
        })
        .await;
    let (rule_data, rules) = rules;
    let broken: Vec<String> = rules
        .iter()
        .filter(|(_, rule)| {
            rule["health"] != "ok" || rule["lastError"].as_str().is_some_and(|e| !e.is_empty())
        })
        .map(|(name, rule)| format!("{name}: {} {}", rule["health"], rule["lastError"]))
        .collect();
    if !broken.is_empty() {
        prometheus.fail(&format!(
            "rules with evaluation errors:\n  {}",
            broken.join("\n  ")
        ));
    }
    // What Prometheus loaded is what the files define.
    let loaded_records: BTreeSet<String> = rules
        .iter()
        .filter(|(_, rule)| rule["type"] == "recording")
        .filter_map(|(_, rule)| Some(rule["name"].as_str()?.to_owned()))
        .collect();
    assert_eq!(
        loaded_records,
        recording_rules(),
        "recording rules loaded vs in alerts/"
    );
    let alert_lines: usize = rule_files()
        .iter()
        .map(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .filter(|l| l.trim_start().starts_with("- alert:"))
                .count()
        })
        .sum();
    let loaded_alerts = rules
        .iter()
        .filter(|(_, r)| r["type"] == "alerting")
        .count();
    assert_eq!(
        loaded_alerts, alert_lines,
        "alerting rules loaded vs `- alert:` lines in alerts/"
    );
    for group in rule_data["groups"].as_array().unwrap() {
        assert_eq!(
            group["interval"].as_f64(),
            Some(SCRAPE_SECONDS as f64),
            "group {} should be evaluated every second here",
            group["name"]
        );
    }

    // Every metric a rule reads is served here, recorded, allow-listed, or Prometheus' own.
    let served: BTreeSet<String> = served_names(&fresh_exporter.metrics().await)
        .into_iter()
        .chain(served_names(&stalled_exporter.metrics().await))
        .collect();
    let recorded = recording_rules();
    for (name, rule) in &rules {
        let query = rule["query"].as_str().unwrap_or_default();
        for metric in metric_names(query) {
            assert!(
                served.contains(&metric)
                    || recorded.contains(&metric)
                    || unavailable::family(&metric)
                    || metric == "up",
                "rule {name} reads {metric}, which the exporter does not serve and no rule \
                 records: {query}"
            );
        }
    }

    // --- 5. every dashboard variable and query --------------------------------------------
    let dashboards = dashboards::load();
    let mut networks = BTreeSet::new();
    let mut instances = BTreeSet::new();
    for dashboard in &dashboards {
        let variables = dashboard.variables();
        let (selector, label) = parse_label_values(&variable_query(variables["network"])).unwrap();
        let found = label_values(&prometheus, &label, &selector).await;
        assert_eq!(
            found,
            BTreeSet::from([NETWORK.to_owned()]),
            "{}: network variable",
            dashboard.file
        );
        networks.extend(found);
        let (selector, label) = parse_label_values(&variable_query(variables["instance"])).unwrap();
        let selector = interpolate(&selector, &all_selected(&networks, &BTreeSet::new()));
        let found = label_values(&prometheus, &label, &selector).await;
        assert_eq!(
            found,
            BTreeSet::from([fresh_instance.clone(), stalled_instance.clone()]),
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
            match prometheus.query(&query).await {
                Err(e) => prometheus.fail(&format!(
                    "{place}: Prometheus rejects the query: {e}\n  {query}"
                )),
                Ok(result) if !result.is_empty() => {}
                Ok(_) => match emptiness(&prometheus, &query).await {
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
            prometheus.fail(&format!(
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
                if let Err(e) = prometheus.query(&query).await {
                    prometheus.fail(&format!(
                        "{} with instance {instance}: Prometheus rejects the query: {e}\n  {query}",
                        target.place
                    ));
                }
            }
        }
    }

    // --- 6. promtool check metrics on a scrape of each exporter ----------------------------
    for exporter in [fresh_exporter, stalled_exporter] {
        let body = exporter.metrics().await;
        let mut child = tokio::process::Command::new(&promtool)
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(body.as_bytes())
            .await
            .unwrap();
        let output = child.wait_with_output().await.unwrap();
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            output.status.success() && said.trim().is_empty(),
            "promtool check metrics on {}: {}\n{said}\n--- scrape ---\n{body}",
            exporter.addr,
            output.status
        );
    }

    drop(prometheus);
    fleet.shutdown().await;
}

/// Alerts Prometheus currently holds (pending or firing).
async fn active_alerts(prometheus: &Prometheus) -> Result<Vec<Value>, String> {
    let data = prometheus.api("alerts", &[]).await?;
    Ok(data["alerts"].as_array().cloned().unwrap_or_default())
}

/// Every rule of `/api/v1/rules`, keyed `group/name#index` (alert names repeat).
fn loaded_rules(data: &Value) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for group in data["groups"].as_array().into_iter().flatten() {
        for (index, rule) in group["rules"].as_array().into_iter().flatten().enumerate() {
            out.push((
                format!(
                    "{}/{}#{index}",
                    group["name"].as_str().unwrap_or("?"),
                    rule["name"].as_str().unwrap_or("?")
                ),
                rule.clone(),
            ));
        }
    }
    out
}

/// The values Prometheus has for `label` over the series `selector` matches, as Grafana's
/// `label_values()` asks for them.
async fn label_values(prometheus: &Prometheus, label: &str, selector: &str) -> BTreeSet<String> {
    let data = prometheus
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
async fn emptiness(prometheus: &Prometheus, query: &str) -> (Option<Vec<String>>, String) {
    let mut reasons = Vec::new();
    let mut unexplained = false;
    let mut diagnosis = String::new();
    for selector in selectors(query) {
        let found = prometheus.query(&selector.text).await.map(|r| r.len());
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

/// `series` (name plus exact label text, as the simulator reports it) restricted to
/// `instance`, as a PromQL selector.
fn with_instance(series: &str, instance: &str) -> String {
    match series.split_once('{') {
        Some((name, labels)) => format!("{name}{{instance=\"{instance}\",{labels}"),
        None => format!("{series}{{instance=\"{instance}\"}}"),
    }
}
