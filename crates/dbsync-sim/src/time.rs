//! Wall-clock helpers of the simulator: RFC 3339 timestamps for its log lines and reports,
//! and the `500ms` / `5s` / `2m` / `1h` / `1d` durations its command line takes.
//!
//! Its own code rather than the exporter's, so that `dbsync-sim` builds without the crate it
//! is meant to test.

use std::time::Duration;

/// Formats unix seconds as an RFC 3339 UTC timestamp (`2020-07-29T21:44:51Z`).
pub fn rfc3339(unix: i64) -> String {
    let (year, month, day) = civil_date(unix.div_euclid(86_400));
    let second = unix.rem_euclid(86_400);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        second / 3_600,
        second / 60 % 60,
        second % 60
    )
}

fn is_leap_year(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

/// Days in a Gregorian 400-year cycle: the leap-year pattern repeats after it.
const DAYS_PER_400_YEARS: i64 = 146_097;

/// `(year, month, day)` of the day `days` after 1970-01-01 (proleptic Gregorian).
///
/// Whole 400-year cycles are skipped first (the calendar repeats, so a cycle can start at
/// 1970 as well as anywhere), then the remaining years and months are counted off one by
/// one: at most 400 + 12 steps, and obviously right.
fn civil_date(days: i64) -> (i64, i64, i64) {
    let mut year = 1970 + 400 * days.div_euclid(DAYS_PER_400_YEARS);
    let mut day = days.rem_euclid(DAYS_PER_400_YEARS);
    loop {
        let in_year = if is_leap_year(year) { 366 } else { 365 };
        if day < in_year {
            break;
        }
        day -= in_year;
        year += 1;
    }
    let february = if is_leap_year(year) { 29 } else { 28 };
    let months = [31, february, 31, 30, 31, 30, 31, 31, 30, 31, 30];
    let mut month = 1;
    for length in months {
        if day < length {
            break;
        }
        day -= length;
        month += 1;
    }
    // Whatever is left after November's end falls into December (month 12).
    (year, month, day + 1)
}

/// Units a duration may be written in, with their length in milliseconds.
const UNITS: [(&str, u64); 5] = [
    ("ms", 1),
    ("s", 1_000),
    ("m", 60_000),
    ("h", 3_600_000),
    ("d", 86_400_000),
];

/// Parses a duration such as `500ms`, `5s`, `2m`, `1h`, `1d`, or a sum of them (`1m30s`).
///
/// Zero is refused: every flag that takes a duration (`--rollback-every`, `--stall-after`)
/// means "after this long", and an interval of zero would roll back without pause.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let expected = "expected e.g. 500ms, 5s, 2m, 1h, 1d or 1m30s";
    if text.is_empty() {
        return Err(format!("empty duration ({expected})"));
    }
    let mut millis: u64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let number_len = rest.bytes().take_while(|b| b.is_ascii_digit()).count();
        let unit_len = rest[number_len..]
            .bytes()
            .take_while(|b| !b.is_ascii_digit())
            .count();
        let (number, unit) = (
            &rest[..number_len],
            &rest[number_len..number_len + unit_len],
        );
        rest = &rest[number_len + unit_len..];
        if number.is_empty() {
            return Err(format!("`{text}` is not a duration ({expected})"));
        }
        let Some(&(_, unit_millis)) = UNITS.iter().find(|(name, _)| *name == unit) else {
            return Err(if unit.is_empty() {
                format!("`{text}` needs a unit (ms, s, m, h or d)")
            } else {
                format!("unknown unit `{unit}` in `{text}` (use ms, s, m, h or d)")
            });
        };
        millis = number
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(unit_millis))
            .and_then(|part| millis.checked_add(part))
            .ok_or_else(|| format!("`{text}` is too long"))?;
    }
    if millis == 0 {
        return Err(format!("`{text}` is zero (a duration must be positive)"));
    }
    Ok(Duration::from_millis(millis))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_of_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_596_059_091), "2020-07-29T21:44:51Z");
        assert_eq!(rfc3339(1_506_203_091), "2017-09-23T21:44:51Z");
        // Leap days: 2000 is a leap year (divisible by 400), 2100 is not (by 100 only).
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(951_868_800), "2000-03-01T00:00:00Z");
        assert_eq!(rfc3339(4_107_456_000), "2100-02-28T00:00:00Z");
        assert_eq!(rfc3339(4_107_542_400), "2100-03-01T00:00:00Z");
        assert_eq!(rfc3339(1_704_067_199), "2023-12-31T23:59:59Z");
        // Before 1970 and far from it.
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
        assert_eq!(rfc3339(-2_208_988_800), "1900-01-01T00:00:00Z");
        assert_eq!(rfc3339(253_402_300_799), "9999-12-31T23:59:59Z");
        assert_eq!(rfc3339(-62_135_596_800), "0001-01-01T00:00:00Z");
    }

    #[test]
    fn durations() {
        let ok = |text| parse_duration(text).unwrap();
        assert_eq!(ok("500ms"), Duration::from_millis(500));
        assert_eq!(ok("5s"), Duration::from_secs(5));
        assert_eq!(ok("2m"), Duration::from_secs(120));
        assert_eq!(ok("1h"), Duration::from_secs(3_600));
        assert_eq!(ok("1d"), Duration::from_secs(86_400));
        assert_eq!(ok("1m30s"), Duration::from_secs(90));
        assert_eq!(ok(" 1h1m1s1ms "), Duration::from_millis(3_661_001));
        for bad in [
            "",
            "  ",
            "5",
            "s",
            "5x",
            "1m30",
            "1.5s",
            "-1s",
            "0s",
            "0m0s",
            "5 s",
            "99999999999999999999s",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }
}
