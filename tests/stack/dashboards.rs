//! The Grafana dashboards in `dashboards/`: loading them, their expressions and variables,
//! Grafana's variable interpolation, and the test that each is importable and reads only
//! metrics the exporter really serves (no Prometheus needed).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::Value;

use crate::common::{eventually, label_values, repo, served_names, value, Exporter, Fleet};
use crate::promql::{metric_names, selectors};
use crate::rules::recording_rules;
use crate::unavailable;

/// The recording rule every dashboard's `network` and `instance` variables come from.
pub const INSTANCES: &str = "dbsync:instance:info";

/// One dashboard file.
pub struct Dashboard {
    pub file: String,
    pub json: Value,
}

/// One panel target (query) of a dashboard.
pub struct Target {
    /// `file panel <id> "<title>" target <refId>`.
    pub place: String,
    pub expr: String,
}

/// Every `dashboards/*.json`, parsed; panics with the file and the serde error otherwise.
pub fn load() -> Vec<Dashboard> {
    let dir = repo().join("dashboards");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 4,
        "expected the four dashboards in {}, found {files:?}",
        dir.display()
    );
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            let json = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{} is not valid JSON: {e}", path.display()));
            Dashboard {
                file: path.file_name().unwrap().to_string_lossy().into_owned(),
                json,
            }
        })
        .collect()
}

impl Dashboard {
    /// Every panel, including those nested in (collapsed) rows.
    pub fn panels(&self) -> Vec<&Value> {
        fn walk<'a>(panels: &'a Value, out: &mut Vec<&'a Value>) {
            for panel in panels.as_array().into_iter().flatten() {
                out.push(panel);
                walk(&panel["panels"], out);
            }
        }
        let mut out = Vec::new();
        walk(&self.json["panels"], &mut out);
        out
    }

    /// Every target with an expression.
    pub fn targets(&self) -> Vec<Target> {
        let mut out = Vec::new();
        for panel in self.panels() {
            for target in panel["targets"].as_array().into_iter().flatten() {
                out.push(Target {
                    place: format!(
                        "{} panel {} {:?} target {}",
                        self.file,
                        panel["id"],
                        panel["title"].as_str().unwrap_or_default(),
                        target["refId"].as_str().unwrap_or("?")
                    ),
                    expr: target["expr"].as_str().unwrap_or_default().to_owned(),
                });
            }
        }
        out
    }

    /// The templating variables by name.
    pub fn variables(&self) -> BTreeMap<String, &Value> {
        self.json["templating"]["list"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| Some((v["name"].as_str()?.to_owned(), v)))
            .collect()
    }
}

/// The query text of a query variable (a plain string, or Grafana's editor object).
pub fn variable_query(variable: &Value) -> String {
    match &variable["query"] {
        Value::String(query) => query.clone(),
        Value::Object(object) => object
            .get("query")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        _ => String::new(),
    }
}

/// `label_values(<selector>, <label>)` → (selector, label).
pub fn parse_label_values(query: &str) -> Option<(String, String)> {
    let inner = query
        .trim()
        .strip_prefix("label_values(")?
        .strip_suffix(')')?;
    let (selector, label) = inner.rsplit_once(',')?;
    Some((selector.trim().to_owned(), label.trim().to_owned()))
}

/// Values for Grafana's variables, as a user with everything selected would see them.
pub struct Variables {
    /// Query variables (`network`, `instance`) and their selected values.
    pub selected: BTreeMap<String, Vec<String>>,
    /// `$__interval` as a Prometheus duration; `$__rate_interval` and the rest follow.
    pub interval_seconds: u64,
    /// The datasource's scrape interval, which `$__rate_interval` depends on.
    pub scrape_interval_seconds: u64,
    /// `$__range`, the dashboard's time range.
    pub range_seconds: u64,
}

impl Variables {
    fn builtin(&self, name: &str) -> Option<String> {
        let rate = (self.interval_seconds + self.scrape_interval_seconds)
            .max(4 * self.scrape_interval_seconds);
        Some(match name {
            "__interval" => format!("{}s", self.interval_seconds),
            "__interval_ms" => (self.interval_seconds * 1000).to_string(),
            "__rate_interval" => format!("{rate}s"),
            "__rate_interval_ms" => (rate * 1000).to_string(),
            "__range" => format!("{}s", self.range_seconds),
            "__range_s" => self.range_seconds.to_string(),
            "__range_ms" => (self.range_seconds * 1000).to_string(),
            _ => return None,
        })
    }
}

/// Grafana's Prometheus regex escaping of one value of a multi-value variable
/// (`prometheusSpecialRegexEscape`): the result sits inside a PromQL string, so the regex
/// backslash is itself escaped.
fn regex_escape(value: &str) -> String {
    let mut out = String::new();
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\\\\\"),
            '$' | '^' | '*' | '{' | '}' | '[' | ']' | '\'' | '+' | '?' | '.' | '(' | ')' | '|' => {
                out.push_str("\\\\");
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// `expr` with Grafana's variables substituted the way Grafana's Prometheus data source does
/// for multi-value variables. Panics on a variable it does not know (`$1` and the like in
/// `label_replace` are regex references, not variables, and stay).
pub fn interpolate(expr: &str, variables: &Variables) -> String {
    let mut out = String::new();
    let mut rest = expr;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        let (name, consumed) = if let Some(braced) = after.strip_prefix('{') {
            let end = braced
                .find('}')
                .unwrap_or_else(|| panic!("unclosed ${{ in {expr}"));
            let name = braced[..end].split(':').next().unwrap_or_default();
            (name, end + 2)
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], end)
        };
        let replacement = if name.chars().all(|c| c.is_ascii_digit()) {
            format!("${}", &after[..consumed])
        } else if let Some(values) = variables.selected.get(name) {
            let escaped: Vec<String> = values.iter().map(|v| regex_escape(v)).collect();
            match escaped.as_slice() {
                [] => panic!("variable ${name} has no value to substitute in {expr}"),
                [one] => one.clone(),
                many => format!("({})", many.join("|")),
            }
        } else if let Some(value) = variables.builtin(name) {
            value
        } else {
            panic!("unknown Grafana variable ${name} in {expr}");
        };
        out.push_str(&replacement);
        rest = &after[consumed..];
    }
    out.push_str(rest);
    out
}

/// Waits until every check scheduled on `exporter` has finished a run (those in
/// `must_succeed` successfully) and its peers have been polled, and returns that scrape: by
/// then every family it can serve against its fixture has been written.
pub async fn settled_scrape(exporter: &Exporter, must_succeed: &[&str]) -> String {
    eventually(
        Duration::from_secs(90),
        &format!(
            "every check of the exporter on {} to finish a run ({must_succeed:?} successfully), \
             and its peers to be polled and up",
            exporter.addr
        ),
        || async {
            let body = exporter.metrics().await;
            let scheduled = label_values(&body, "dbsync_check_interval_seconds", "check");
            let unfinished: Vec<&String> = scheduled
                .iter()
                .filter(|check| {
                    let ran = ["success", "error", "timeout"].iter().any(|outcome| {
                        value(
                            &body,
                            &format!(
                                "dbsync_check_runs_total{{check=\"{check}\",outcome=\"{outcome}\"}}"
                            ),
                        )
                        .is_some_and(|runs| runs > 0.0)
                    });
                    let succeeded =
                        value(&body, &format!("dbsync_check_success{{check=\"{check}\"}}"))
                            == Some(1.0);
                    !ran || (must_succeed.contains(&check.as_str()) && !succeeded)
                })
                .collect();
            // Every exporter of the fleet is up, so every peer must read as up.
            let peers: Vec<&str> = body
                .lines()
                .filter(|l| l.starts_with("dbsync_peer_up{"))
                .collect();
            let peers_polled = !peers.is_empty() && peers.iter().all(|l| l.ends_with(" 1"));
            if scheduled.is_empty() || !unfinished.is_empty() || !peers_polled {
                return Err(format!(
                    "unfinished checks {unfinished:?}, peers polled: {peers_polled}, in:\n{body}"
                ));
            }
            Ok(body)
        },
    )
    .await
}

/// The metric names the test fleet's exporters serve, and the checks they run.
pub async fn served_by_fleet() -> (BTreeSet<String>, BTreeSet<String>) {
    let fleet = Fleet::start("stack_served").await;
    let fresh = settled_scrape(&fleet.fresh, &["tip", "rollback", "info", "grest"]).await;
    let stalled = settled_scrape(&fleet.stalled, &["tip", "rollback"]).await;
    fleet.shutdown().await;
    let names = served_names(&fresh)
        .into_iter()
        .chain(served_names(&stalled))
        .collect();
    let checks = label_values(&fresh, "dbsync_check_interval_seconds", "check")
        .into_iter()
        .chain(label_values(
            &stalled,
            "dbsync_check_interval_seconds",
            "check",
        ))
        .collect();
    (names, checks)
}

/// Each dashboard parses, is importable (datasource variable, no hard-coded datasource or
/// instance, `network`/`instance` from `dbsync:instance:info`) and reads only metric names that the
/// exporter serves (from a real scrape) or the recording rules define.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboards_are_importable_and_read_only_served_metrics() {
    let (served, checks_run) = served_by_fleet().await;
    let recorded = recording_rules();
    let dashboards = load();
    let mut problems: Vec<String> = Vec::new();
    let mut used_unavailable = BTreeSet::new();

    for dashboard in &dashboards {
        let file = &dashboard.file;
        let mut bad = |problem: String| problems.push(format!("{file}: {problem}"));
        let json = &dashboard.json;
        for key in ["uid", "title"] {
            if json[key].as_str().is_none_or(str::is_empty) {
                bad(format!("no {key}"));
            }
        }
        if json.get("__inputs").is_some() {
            bad("has __inputs: file provisioning cannot fill them".into());
        }
        let variables = dashboard.variables();

        match variables.get("datasource") {
            Some(ds) if ds["type"] == "datasource" && ds["query"] == "prometheus" => {}
            other => bad(format!(
                "needs a `datasource` variable of type datasource for prometheus, found {other:?}"
            )),
        }
        for name in ["network", "instance"] {
            let Some(variable) = variables.get(name) else {
                bad(format!("no `{name}` variable"));
                continue;
            };
            let query = variable_query(variable);
            // `network` lists every network; `instance` may narrow the list by network. Both
            // come from dbsync:instance:info, which also lists an exporter whose database
            // never answered (dbsync_info would hide it).
            let fed_by_info = parse_label_values(&query).is_some_and(|(selector, label)| {
                label == name
                    && if name == "network" {
                        selector == INSTANCES
                    } else {
                        selector.starts_with(INSTANCES) && metric_names(&selector) == [INSTANCES]
                    }
            });
            if !fed_by_info {
                bad(format!(
                    "variable `{name}` must be label_values({INSTANCES}..., {name}), is {query:?}"
                ));
            }
            if variable["type"] != "query" {
                bad(format!("variable `{name}` is not a query variable"));
            }
            if variable["datasource"]["uid"] != "${datasource}" {
                bad(format!("variable `{name}` does not use ${{datasource}}"));
            }
            // A saved selection or option list would pin an instance of whoever exported it.
            let current = &variable["current"]["value"];
            let pinned = match current {
                Value::Null => false,
                Value::String(v) => v != "$__all",
                Value::Array(values) => values.iter().any(|v| v != "$__all"),
                _ => true,
            };
            if pinned
                || variable["options"]
                    .as_array()
                    .is_some_and(|o| !o.is_empty())
            {
                bad(format!(
                    "variable `{name}` saves a selection ({current}) or options: hard-coded values"
                ));
            }
        }
        for (name, variable) in &variables {
            if !["datasource", "network", "instance"].contains(&name.as_str()) {
                bad(format!(
                    "unexpected variable `{name}` ({}): extend this test",
                    variable["type"]
                ));
            }
        }

        for panel in dashboard.panels() {
            let id = &panel["id"];
            let title = panel["title"].as_str().unwrap_or_default();
            let kind = panel["type"].as_str().unwrap_or_default();
            let datasource = &panel["datasource"];
            let reads_data = !["row", "text"].contains(&kind);
            if (reads_data || !datasource.is_null()) && datasource["uid"] != "${datasource}" {
                bad(format!(
                    "panel {id} {title:?} ({kind}) datasource is {datasource}, not ${{datasource}}"
                ));
            }
            let targets = panel["targets"].as_array().cloned().unwrap_or_default();
            if reads_data && targets.is_empty() {
                bad(format!("panel {id} {title:?} ({kind}) has no targets"));
            }
            for target in &targets {
                let reference = target["refId"].as_str().unwrap_or("?");
                if target["datasource"]["uid"] != "${datasource}" {
                    bad(format!(
                        "panel {id} {title:?} target {reference} datasource is {}",
                        target["datasource"]
                    ));
                }
                let expr = target["expr"].as_str().unwrap_or_default();
                if expr.trim().is_empty() {
                    bad(format!(
                        "panel {id} {title:?} target {reference} has no expr"
                    ));
                    continue;
                }
                for selector in selectors(expr) {
                    for matcher in &selector.matchers {
                        let pinned = match matcher.label.as_str() {
                            "instance" => matcher.value != "$instance",
                            "network" => matcher.value != "$network",
                            "job" => true,
                            _ => false,
                        };
                        if pinned {
                            bad(format!(
                                "panel {id} {title:?} target {reference} hard-codes \
                                 {}{}{:?} in {expr}",
                                matcher.label, matcher.op, matcher.value
                            ));
                        }
                    }
                    let name = &selector.name;
                    if unavailable::family(name) {
                        used_unavailable.insert(name.clone());
                    } else if !served.contains(name) && !recorded.contains(name) {
                        bad(format!(
                            "panel {id} {title:?} target {reference} reads {name}, which the \
                             exporter does not serve and no recording rule defines"
                        ));
                    }
                }
            }
        }
        // Belt and braces for the matcher check above: no literal address anywhere.
        let text = json.to_string();
        for needle in ["127.0.0.1", "localhost:", ":9895"] {
            if text.contains(needle) {
                bad(format!("contains {needle:?}: a hard-coded instance?"));
            }
        }
    }

    // The allow-list must stay honest: nothing in it is served, everything in it is used.
    for (family, why) in unavailable::FAMILIES {
        if served.contains(*family) {
            problems.push(format!(
                "allow-listed {family} ({why}) is served by the exporter now: remove it from \
                 tests/stack/unavailable.rs so its panels are checked"
            ));
        }
    }
    for (check, why) in unavailable::CHECKS {
        if checks_run.contains(*check) {
            problems.push(format!(
                "allow-listed check {check} ({why}) runs in the exporter now: remove it from \
                 tests/stack/unavailable.rs"
            ));
        }
    }
    let rule_names: BTreeSet<String> = crate::rules::rule_files()
        .iter()
        .flat_map(|file| {
            let text = std::fs::read_to_string(file).unwrap();
            selectors_in_rule_file(&text)
        })
        .collect();
    for (family, _) in unavailable::FAMILIES {
        if !used_unavailable.contains(*family) && !rule_names.contains(*family) {
            problems.push(format!(
                "allow-listed {family} is used by no dashboard and no rule: remove it"
            ));
        }
    }

    assert!(
        problems.is_empty(),
        "{} dashboard problem(s):\n  {}\n(served names: {served:?})",
        problems.len(),
        problems.join("\n  ")
    );
}

/// Metric names in the expressions of a rule file, by a plain scan of its `expr` values.
fn selectors_in_rule_file(text: &str) -> BTreeSet<String> {
    // Every metric name in the file is a word; comments and annotations may mention others,
    // which only makes this (a "used somewhere" check) more lenient.
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|word| word.starts_with("dbsync_"))
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolates_like_grafana() {
        let variables = Variables {
            selected: BTreeMap::from([
                ("network".to_owned(), vec!["mainnet".to_owned()]),
                (
                    "instance".to_owned(),
                    vec!["127.0.0.1:80".to_owned(), "a-b:1".to_owned()],
                ),
            ]),
            interval_seconds: 2,
            scrape_interval_seconds: 1,
            range_seconds: 60,
        };
        assert_eq!(
            interpolate(
                r#"x{network=~"$network", instance=~"${instance}"}[$__rate_interval] $1 $__range"#,
                &variables
            ),
            r#"x{network=~"mainnet", instance=~"(127\\.0\\.0\\.1:80|a-b:1)"}[4s] $1 60s"#
        );
    }

    #[test]
    fn reads_label_values_queries() {
        assert_eq!(
            parse_label_values(r#"label_values(dbsync_info{network=~"$network"}, instance)"#),
            Some((
                r#"dbsync_info{network=~"$network"}"#.to_owned(),
                "instance".to_owned()
            ))
        );
        assert_eq!(parse_label_values("query_result(up)"), None);
    }
}
