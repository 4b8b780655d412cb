//! The rule files in `alerts/`: their paths, the recording rules and thresholds they define,
//! the copies a test server evaluates every second, and the checks both rule engines
//! (`promtool check rules`, `vmalert -dryRun`) make of them.
//!
//! The repository has no YAML crate, and these files only need two facts read without
//! Prometheus: `record:` names (always a plain one-line scalar: a metric name cannot contain
//! spaces or YAML syntax) and group `interval:` lines. The end-to-end test then compares with
//! what Prometheus itself parsed (`/api/v1/rules`), so a parsing slip here cannot hide.

use std::collections::BTreeSet;
use std::path::PathBuf;

use std::path::Path;
use std::process::Command;

use crate::common::{repo, require_tool, TempDir};

/// The thresholds file, the one place operators tune alerts.
pub const THRESHOLDS_FILE: &str = "dbsync-thresholds.rules.yml";

/// `alerts/*.rules.yml` (not the unit tests in `alerts/tests/`), sorted.
pub fn rule_files() -> Vec<PathBuf> {
    let dir = repo().join("alerts");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.is_file()
                && path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.ends_with(".rules.yml"))
        })
        .collect();
    files.sort();
    assert!(
        files.len() >= 3,
        "expected the thresholds, recording and alerting rule files in {}, found {files:?}",
        dir.display()
    );
    files
}

/// The value of a `key: value` YAML line, unquoted; `None` for other lines and comments.
fn scalar<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let rest = line.trim_start().trim_start_matches("- ").trim_start();
    let value = rest.strip_prefix(key)?.strip_prefix(':')?;
    let value = value.split(" #").next().unwrap_or(value).trim();
    Some(value.trim_matches(|c| c == '"' || c == '\''))
}

/// Names defined by `record:` in the rule files.
pub fn recording_rules() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for file in rule_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        for line in text.lines() {
            if let Some(name) = scalar(line, "record") {
                assert!(
                    !name.is_empty()
                        && name
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
                    "{}: unexpected record line {line:?}",
                    file.display()
                );
                names.insert(name.to_owned());
            }
        }
    }
    assert!(!names.is_empty(), "no recording rules found in alerts/");
    names
}

/// Every rule file as (file name, text) for a server that evaluates every second: group
/// `interval:` lines are dropped, because the first evaluation of a 1 m (thresholds) or 5 m
/// (trends) group waits for its slot and everything built on it evaluates to nothing until
/// then. `thresholds` replaces the values of those `dbsync:threshold:*` rules (each must exist
/// exactly once), for windows a test cannot wait for (e.g. 10 minutes of silence).
pub fn fast_rule_files(thresholds: &[(&str, f64)]) -> Vec<(String, String)> {
    let mut replaced = vec![0; thresholds.len()];
    let files = rule_files()
        .iter()
        .map(|path| {
            let text = std::fs::read_to_string(path)
                .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
            let mut out = String::new();
            let mut pending: Option<f64> = None;
            for line in text.lines() {
                if scalar(line, "interval").is_some() {
                    continue;
                }
                if let Some(name) = scalar(line, "record") {
                    pending = thresholds
                        .iter()
                        .position(|(threshold, _)| *threshold == name)
                        .map(|index| {
                            replaced[index] += 1;
                            thresholds[index].1
                        });
                } else if let (Some(value), Some(expr)) = (pending, scalar(line, "expr")) {
                    assert!(
                        expr.starts_with("vector("),
                        "{}: threshold expr {expr:?} is not vector(N)",
                        path.display()
                    );
                    let indent = &line[..line.len() - line.trim_start().len()];
                    out.push_str(&format!("{indent}expr: vector({value})\n"));
                    pending = None;
                    continue;
                }
                out.push_str(line);
                out.push('\n');
            }
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, out)
        })
        .collect();
    for ((name, _), count) in thresholds.iter().zip(replaced) {
        assert_eq!(
            count, 1,
            "threshold {name} should be defined once in alerts/"
        );
    }
    files
}

/// The value of the threshold rule `name` (`expr: vector(N)`) in the thresholds file.
pub fn threshold(name: &str) -> f64 {
    let path = repo().join("alerts").join(THRESHOLDS_FILE);
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if scalar(line, "record") == Some(name) {
            let expr = lines.find_map(|l| scalar(l, "expr")).unwrap();
            return expr
                .strip_prefix("vector(")
                .and_then(|e| e.strip_suffix(')'))
                .and_then(|e| e.parse().ok())
                .unwrap_or_else(|| panic!("{name}: expr {expr:?} is not vector(N)"));
        }
    }
    panic!("no threshold {name} in {}", path.display())
}

/// The absolute `runbook_url` of `alert`: its RUNBOOK.md section under the one base URL
/// (`alerts/runbook-base-url`).
pub fn runbook_url(alert: &str) -> String {
    let base = std::fs::read_to_string(repo().join("alerts/runbook-base-url")).unwrap();
    format!("{}#{}", base.trim(), alert.to_lowercase())
}

/// Runs `tool args… file` and returns whether it accepted the file, with what it said.
fn accepts(tool: &Path, args: &[&str], file: &Path) -> (bool, String) {
    let output = Command::new(tool)
        .args(args)
        .arg(file)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", tool.display()));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), said)
}

/// Both rule engines the stack runs accept every rule file: `promtool check rules`
/// (Prometheus, pull model) and `vmalert -dryRun` (MetricsQL and vmalert's templates, push
/// model). A deliberately broken file is rejected by both, so neither check is a no-op.
#[test]
fn every_rule_file_passes_promtool_and_vmalert_dry_run() {
    let promtool = require_tool("promtool");
    let vmalert = require_tool("vmalert");
    let promtool_args: &[&str] = &["check", "rules"];
    // `-rule=` is one argument with the file glued on; `accepts` appends the path after it.
    let check = |file: &Path| {
        let (ok_p, said_p) = accepts(&promtool, promtool_args, file);
        let output = Command::new(&vmalert)
            .arg("-dryRun")
            .arg("-loggerLevel=ERROR")
            .arg(format!("-rule={}", file.display()))
            .output()
            .unwrap();
        let said_v = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (ok_p, said_p, output.status.success(), said_v)
    };
    for file in rule_files() {
        let (promtool_ok, promtool_said, vmalert_ok, vmalert_said) = check(&file);
        assert!(
            promtool_ok,
            "promtool check rules {}:\n{promtool_said}",
            file.display()
        );
        assert!(
            vmalert_ok,
            "vmalert -dryRun -rule={}:\n{vmalert_said}",
            file.display()
        );
    }
    let dir = TempDir::new("broken-rules");
    let broken = dir.join("broken.rules.yml");
    std::fs::write(
        &broken,
        "groups:\n  - name: broken\n    rules:\n      - record: x:y\n        expr: sum(rate(x[5m]) by\n",
    )
    .unwrap();
    let (promtool_ok, _, vmalert_ok, _) = check(&broken);
    assert!(
        !promtool_ok && !vmalert_ok,
        "a broken rule file must be rejected by both"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_record_lines() {
        assert_eq!(
            scalar("      - record: dbsync:x:y  # c", "record"),
            Some("dbsync:x:y")
        );
        assert_eq!(scalar("  record: 'a:b'", "record"), Some("a:b"));
        assert_eq!(scalar("  # record: a", "record"), None);
        assert_eq!(scalar("    interval: 1m", "interval"), Some("1m"));
        let names = recording_rules();
        assert!(names.contains("dbsync:blocks_behind_fleet"), "{names:?}");
        assert!(
            names.contains("dbsync:threshold:tip_age_critical_seconds"),
            "{names:?}"
        );
    }

    #[test]
    fn fast_rule_files_keep_every_rule_and_replace_only_the_given_thresholds() {
        let count = |text: &str| {
            text.lines()
                .filter(|l| scalar(l, "record").is_some() || scalar(l, "alert").is_some())
                .count()
        };
        let fast = fast_rule_files(&[("dbsync:threshold:instance_vanished_warning_seconds", 7.0)]);
        assert_eq!(fast.len(), rule_files().len());
        for ((name, text), path) in fast.iter().zip(rule_files()) {
            let original = std::fs::read_to_string(&path).unwrap();
            assert!(
                !text.lines().any(|l| scalar(l, "interval").is_some()),
                "{name}"
            );
            assert_eq!(count(text), count(&original), "{name}");
            let changed = original
                .lines()
                .zip(text.lines())
                .filter(|(a, b)| a != b)
                .count();
            let interval_lines = original
                .lines()
                .filter(|l| scalar(l, "interval").is_some())
                .count();
            if name == THRESHOLDS_FILE {
                assert!(text.contains("expr: vector(7)"), "{text}");
            } else {
                assert_eq!(changed > 0, interval_lines > 0, "{name}");
            }
        }
    }

    /// The dashboards and alerts colour and fire at the exporter's own health defaults, so
    /// "red on the fleet table", "alert" and "HAProxy takes it out" mean the same numbers.
    #[test]
    fn thresholds_agree_with_the_health_defaults() {
        let health = dbsync_exporter::Config::with_database(Default::default()).health;
        assert_eq!(
            threshold("dbsync:threshold:tip_age_warning_seconds"),
            health.drain_tip_age.as_secs_f64()
        );
        assert_eq!(
            threshold("dbsync:threshold:tip_age_critical_seconds"),
            health.max_tip_age.as_secs_f64()
        );
        assert_eq!(
            threshold("dbsync:threshold:fleet_lag_blocks"),
            health.drain_fleet_lag_blocks as f64
        );
        assert_eq!(
            threshold("dbsync:threshold:fleet_lag_critical_blocks"),
            health.max_fleet_lag_blocks as f64
        );
    }
}
