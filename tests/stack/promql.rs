//! Just enough PromQL lexing to find the vector selectors of an expression: which metric
//! names (and recording rules) it reads, with their label matchers.
//!
//! Validity is Prometheus' business (the end-to-end test sends every expression to it); this
//! only has to recognise selectors in valid expressions, and panics on syntax it does not
//! understand rather than guessing.

/// One label matcher of a selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Matcher {
    pub label: String,
    /// `=`, `!=`, `=~` or `!~`.
    pub op: String,
    /// The value with string escapes resolved.
    pub value: String,
}

/// One vector selector, e.g. `dbsync_check_success{check=~"mir|ada_pots"}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selector {
    pub name: String,
    pub matchers: Vec<Matcher>,
    /// The selector as written (name and braces), a valid expression of its own.
    pub text: String,
}

/// Words that look like identifiers but are not metric names.
const KEYWORDS: &[&str] = &[
    // binary operators and modifiers
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "atan2",
    // aggregation operators (may be followed by `by`/`without` instead of `(`)
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
    // number literals
    "inf",
    "nan",
];

/// Words followed by a parenthesised label list.
const GROUPING: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// Every vector selector in `expr`, in order.
pub fn selectors(expr: &str) -> Vec<Selector> {
    let chars: Vec<char> = expr.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '#' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '"' || c == '\'' || c == '`' {
            i = string_literal(&chars, i, expr).1;
        } else if c.is_ascii_digit()
            || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            // numbers and durations: 0.1667, 1e3, 0x1f, 1h30m
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                let exponent =
                    matches!(chars[i], 'e' | 'E') && matches!(chars.get(i + 1), Some('+' | '-'));
                i += if exponent { 2 } else { 1 };
            }
        } else if c == '[' {
            // range or subquery: durations only
            while i < chars.len() && chars[i] != ']' {
                i += 1;
            }
            i += 1;
        } else if c == '{' {
            panic!("selector without a metric name at {i} in {expr}: not supported here");
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let next = skip_space(&chars, i);
            let lower = word.to_ascii_lowercase();
            if GROUPING.contains(&lower.as_str()) {
                if chars.get(next) == Some(&'(') {
                    i = chars[next..]
                        .iter()
                        .position(|&c| c == ')')
                        .map(|p| next + p + 1)
                        .unwrap_or_else(|| panic!("unclosed label list after {word} in {expr}"));
                }
            } else if KEYWORDS.contains(&lower.as_str()) || chars.get(next) == Some(&'(') {
                // operator, aggregation or function call
            } else {
                let mut selector = Selector {
                    name: word.clone(),
                    matchers: Vec::new(),
                    text: word,
                };
                if chars.get(next) == Some(&'{') {
                    let (matchers, end) = label_matchers(&chars, next, expr);
                    selector.matchers = matchers;
                    selector
                        .text
                        .push_str(&chars[next..end].iter().collect::<String>());
                    i = end;
                }
                if selector.matchers.iter().any(|m| m.label == "__name__") {
                    panic!("__name__ matchers are not supported here: {expr}");
                }
                out.push(selector);
            }
        } else {
            i += 1;
        }
    }
    out
}

/// Distinct metric (and recording rule) names read by `expr`.
pub fn metric_names(expr: &str) -> Vec<String> {
    let mut names: Vec<String> = selectors(expr).into_iter().map(|s| s.name).collect();
    names.sort();
    names.dedup();
    names
}

fn skip_space(chars: &[char], mut i: usize) -> usize {
    while i < chars.len() && chars[i].is_whitespace() {
        i += 1;
    }
    i
}

/// The string literal starting at `start`: its value and the index after its closing quote.
fn string_literal(chars: &[char], start: usize, expr: &str) -> (String, usize) {
    let quote = chars[start];
    let mut value = String::new();
    let mut i = start + 1;
    while i < chars.len() {
        let c = chars[i];
        if c == quote {
            return (value, i + 1);
        }
        if c == '\\' && quote != '`' {
            i += 1;
            let escaped = *chars
                .get(i)
                .unwrap_or_else(|| panic!("dangling escape in {expr}"));
            value.push(match escaped {
                'n' => '\n',
                't' => '\t',
                other => other,
            });
        } else {
            value.push(c);
        }
        i += 1;
    }
    panic!("unclosed string literal in {expr}");
}

/// The matchers in the braces at `start`, and the index after the closing brace.
fn label_matchers(chars: &[char], start: usize, expr: &str) -> (Vec<Matcher>, usize) {
    let mut matchers = Vec::new();
    let mut i = start + 1;
    loop {
        i = skip_space(chars, i);
        match chars.get(i) {
            Some('}') => return (matchers, i + 1),
            Some(',') => {
                i += 1;
                continue;
            }
            Some(_) => {}
            None => panic!("unclosed label matchers in {expr}"),
        }
        let label_start = i;
        while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
            i += 1;
        }
        let label: String = chars[label_start..i].iter().collect();
        i = skip_space(chars, i);
        let op_start = i;
        while i < chars.len() && matches!(chars[i], '=' | '!' | '~') {
            i += 1;
        }
        let op: String = chars[op_start..i].iter().collect();
        i = skip_space(chars, i);
        assert!(
            !label.is_empty()
                && ["=", "!=", "=~", "!~"].contains(&op.as_str())
                && matches!(chars.get(i), Some('"' | '\'' | '`')),
            "cannot read the label matchers at {start} in {expr}"
        );
        let (value, end) = string_literal(chars, i, expr);
        matchers.push(Matcher { label, op, value });
        i = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_selectors_and_skips_functions_keywords_and_label_lists() {
        let expr = r#"max by (network, instance) (
            dbsync:integrity_problems:count
              * on (instance, job) group_left (network)
            max by (instance, job, network) (dbsync_info{network=~"$network", instance=~"$instance"})
          ) or vector(0)
          unless on (instance) (time() - dbsync_check_last_success_timestamp_seconds{check="a,}b"} offset 5m) > bool 1e3
          and increase(dbsync_rollbacks_total[1h:5m]) > 0.1667
          or label_replace(dbsync_grest_info, "grest_version", "$1", "version", "(.*)") # note: fake_metric
        "#;
        let found = selectors(expr);
        let names: Vec<&str> = found.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "dbsync:integrity_problems:count",
                "dbsync_info",
                "dbsync_check_last_success_timestamp_seconds",
                "dbsync_rollbacks_total",
                "dbsync_grest_info",
            ]
        );
        assert_eq!(
            found[1].matchers,
            [
                Matcher {
                    label: "network".into(),
                    op: "=~".into(),
                    value: "$network".into()
                },
                Matcher {
                    label: "instance".into(),
                    op: "=~".into(),
                    value: "$instance".into()
                },
            ]
        );
        assert_eq!(found[2].matchers[0].value, "a,}b");
        assert_eq!(
            found[2].text,
            r#"dbsync_check_last_success_timestamp_seconds{check="a,}b"}"#
        );
    }

    #[test]
    fn metric_names_are_distinct() {
        assert_eq!(
            metric_names("up == 0 or up{job=\"x\"} and absent(dbsync:threshold:a)"),
            ["dbsync:threshold:a", "up"]
        );
    }
}
