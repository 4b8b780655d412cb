//! Durations as operators write them: `500ms`, `5s`, `2m`, `1h`, `1d`, combinable (`1m30s`).

use std::str::FromStr;
use std::time::Duration;

/// A duration written as `500ms`, `5s`, `2m`, `1h` or `1d` (units may be combined: `1m30s`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl FromStr for HumanDuration {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text.starts_with('-') {
            return Err(format!(
                "`{text}` is negative (durations are 0 or more, e.g. 5s)"
            ));
        }
        if text.is_empty() {
            return Err("empty duration (expected e.g. 500ms, 5s, 2m)".into());
        }
        let mut total = Duration::ZERO;
        let mut rest = text;
        while !rest.is_empty() {
            let digits = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            if digits == 0 {
                return Err(format!(
                    "`{text}` is not a duration (expected e.g. 500ms, 5s, 2m)"
                ));
            }
            let number: u64 = rest[..digits]
                .parse()
                .map_err(|_| format!("`{text}` is too large"))?;
            rest = &rest[digits..];
            let unit_len = rest
                .find(|c: char| c.is_ascii_digit())
                .unwrap_or(rest.len());
            let part = match &rest[..unit_len] {
                "ms" => Duration::from_millis(number),
                "s" => Duration::from_secs(number),
                "m" => Duration::from_secs(number.saturating_mul(60)),
                "h" => Duration::from_secs(number.saturating_mul(3600)),
                "d" => Duration::from_secs(number.saturating_mul(86_400)),
                "" => return Err(format!("`{text}` needs a unit (ms, s, m, h or d)")),
                unit => {
                    return Err(format!(
                        "unknown unit `{unit}` in `{text}` (use ms, s, m, h or d)"
                    ))
                }
            };
            total = total.saturating_add(part);
            rest = &rest[unit_len..];
        }
        if total.is_zero() {
            return Err("must be greater than zero".into());
        }
        Ok(HumanDuration(total))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_in_every_unit() {
        let parse = |s: &str| HumanDuration::from_str(s).map(|d| d.0);
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("24h"), Ok(Duration::from_secs(86_400)));
        assert!(parse("5").unwrap_err().contains("needs a unit"));
        assert!(parse("5x").unwrap_err().contains("unknown unit `x`"));
        assert!(parse("0s").unwrap_err().contains("greater than zero"));
        assert!(parse("s").unwrap_err().contains("not a duration"));
        assert!(parse("-1s").unwrap_err().contains("is negative"));
    }
}
