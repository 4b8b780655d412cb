//! The rule files in `alerts/`: their paths, the recording rules they define, and the test
//! copy of the thresholds file.
//!
//! The repository has no YAML crate, and these files only need two facts read without
//! Prometheus: `record:` names (always a plain one-line scalar: a metric name cannot contain
//! spaces or YAML syntax) and group `interval:` lines. The end-to-end test then compares with
//! what Prometheus itself parsed (`/api/v1/rules`), so a parsing slip here cannot hide.

use std::collections::BTreeSet;
use std::path::PathBuf;

use crate::common::repo;

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

/// The thresholds file with its values, for a Prometheus that evaluates every second: group
/// `interval:` lines are dropped, because the first evaluation of a 1 m group waits for its
/// slot (up to a minute) and every threshold-based alert evaluates to nothing until then.
pub fn thresholds_for_fast_evaluation() -> String {
    let path = repo().join("alerts").join(THRESHOLDS_FILE);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    text.lines()
        .filter(|line| scalar(line, "interval").is_none())
        .map(|line| format!("{line}\n"))
        .collect()
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
    fn fast_thresholds_keep_every_rule() {
        let fast = thresholds_for_fast_evaluation();
        assert!(!fast.lines().any(|l| scalar(l, "interval").is_some()));
        let original =
            std::fs::read_to_string(repo().join("alerts").join(THRESHOLDS_FILE)).unwrap();
        let count = |text: &str| {
            text.lines()
                .filter(|l| scalar(l, "record").is_some())
                .count()
        };
        assert_eq!(count(&fast), count(&original));
    }
}
