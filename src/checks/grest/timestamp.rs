//! Reading the timestamps Koios writes into `grest.control_table`.
//!
//! Koios stores `NOW() AT TIME ZONE 'utc'` as text, so the text is whatever the writer's
//! session `DateStyle` made of a `timestamp without time zone`: ISO `2026-12-01 21:13:19.704583`
//! (the default), SQL `12/01/2026 21:13:19.704583` (or `01/12/2026 …` with DMY), Postgres
//! `Tue Dec 01 21:13:19.704583 2026` (or `Tue 01 Dec …`) and German `01.12.2026 21:13:19.70`.
//! All four are read here. Only the SQL style is ambiguous (month or day first); it is read
//! in the field order of the reader's own `DateStyle`, which is the server's default, the same
//! one a Koios cron job's session writes with unless it sets its own.

/// Which of day and month comes first in an all-numeric date (the second part of `DateStyle`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldOrder {
    /// `MDY` (PostgreSQL's default) and `YMD`: month before day.
    MonthFirst,
    /// `DMY`: day before month.
    DayFirst,
}

impl FieldOrder {
    /// The field order of a `DateStyle` setting such as `ISO, MDY` or `SQL, DMY`.
    pub fn of_datestyle(datestyle: &str) -> FieldOrder {
        if datestyle.to_ascii_uppercase().contains("DMY") {
            FieldOrder::DayFirst
        } else {
            FieldOrder::MonthFirst
        }
    }
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

/// Unix seconds of a UTC timestamp written in any `DateStyle`; `None` when the text is not
/// one (the caller reports it, it is never skipped silently).
pub fn parse_utc(text: &str, order: FieldOrder) -> Option<f64> {
    let text = text.trim();
    let words: Vec<&str> = text.split_whitespace().collect();
    let ((year, month, day), time) = match words.as_slice() {
        // ISO, with a space or a `T` between date and time.
        [date, time] if date.len() > 4 && date.as_bytes()[4] == b'-' => (iso_date(date)?, *time),
        [joined] => {
            let (date, time) = joined.split_once('T')?;
            (iso_date(date)?, time)
        }
        [date, time] if date.contains('/') => {
            let [a, b, year] = numbers(date, '/')?;
            match order {
                FieldOrder::MonthFirst => ((year, a, b), *time),
                FieldOrder::DayFirst => ((year, b, a), *time),
            }
        }
        [date, time] if date.contains('.') => {
            let [day, month, year] = numbers(date, '.')?;
            ((year, month, day), *time)
        }
        // Postgres style: `Tue Dec 01 21:13:19.70 2026` or, with DMY, `Tue 01 Dec …`.
        [weekday, first, second, time, year]
            if weekday.chars().all(|c| c.is_ascii_alphabetic()) =>
        {
            let (month, day) = match (month_number(first), month_number(second)) {
                (Some(month), None) => (month, second.parse().ok()?),
                (None, Some(month)) => (month, first.parse().ok()?),
                _ => return None,
            };
            ((year.parse().ok()?, month, day), *time)
        }
        _ => return None,
    };
    let (seconds_of_day, offset) = time_of_day(time)?;
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some(days as f64 * 86_400.0 + seconds_of_day - offset)
}

/// `YYYY-MM-DD`.
fn iso_date(date: &str) -> Option<(i64, i64, i64)> {
    let [year, month, day] = numbers(date, '-')?;
    Some((year, month, day))
}

/// Three unsigned numbers separated by `separator`.
fn numbers(text: &str, separator: char) -> Option<[i64; 3]> {
    let mut parts = text.split(separator).map(|part| {
        (!part.is_empty() && part.len() <= 4 && part.bytes().all(|b| b.is_ascii_digit()))
            .then(|| part.parse::<i64>().ok())
            .flatten()
    });
    let numbers = [parts.next()??, parts.next()??, parts.next()??];
    parts.next().is_none().then_some(numbers)
}

fn month_number(word: &str) -> Option<i64> {
    let word = word.to_ascii_lowercase();
    MONTHS
        .iter()
        .position(|month| word.starts_with(month))
        .map(|index| index as i64 + 1)
}

/// `HH:MM:SS[.fraction]` with an optional UTC offset (`Z`, `+00`, `+05:30`, `-03`) as a
/// timestamp with time zone would print; returns (seconds of the day, offset in seconds).
fn time_of_day(text: &str) -> Option<(f64, f64)> {
    let (clock, offset) = match text.find(['+', '-', 'Z']) {
        Some(at) => (&text[..at], utc_offset(&text[at..])?),
        None => (text, 0.0),
    };
    let mut parts = clock.splitn(3, ':');
    let hour: i64 = two_digits(parts.next()?)?;
    let minute: i64 = two_digits(parts.next()?)?;
    let seconds = parts.next()?;
    let (whole, fraction) = seconds.split_once('.').unwrap_or((seconds, ""));
    let second: i64 = two_digits(whole)?;
    if hour > 23 || minute > 59 || second > 59 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let fraction: f64 = if fraction.is_empty() {
        0.0
    } else {
        format!("0.{fraction}").parse().ok()?
    };
    Some((
        (hour * 3600 + minute * 60 + second) as f64 + fraction,
        offset,
    ))
}

fn utc_offset(text: &str) -> Option<f64> {
    if text == "Z" {
        return Some(0.0);
    }
    let sign = if text.starts_with('-') { -1.0 } else { 1.0 };
    let mut parts = text[1..].splitn(2, ':');
    let hours: i64 = two_digits(parts.next()?)?;
    let minutes: i64 = parts.next().map_or(Some(0), two_digits)?;
    Some(sign * (hours * 3600 + minutes * 60) as f64)
}

fn two_digits(text: &str) -> Option<i64> {
    (text.len() == 2 && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse().ok())
        .flatten()
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to a proleptic Gregorian date, counted year by year from 1970 and
/// month by month (the dates here are a few years around now, so a loop is cheap and plain).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let mut days = 0;
    if year >= 1970 {
        for y in 1970..year {
            days += if is_leap(y) { 366 } else { 365 };
        }
    } else {
        for y in year..1970 {
            days -= if is_leap(y) { 366 } else { 365 };
        }
    }
    for m in 1..month {
        days += days_in_month(year, m);
    }
    days + day - 1
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-01 21:13:19 UTC.
    const UNIX: f64 = 1_796_159_599.0;

    #[test]
    fn every_datestyle_reads_the_same_instant() {
        let mdy = FieldOrder::MonthFirst;
        let dmy = FieldOrder::DayFirst;
        let cases = [
            ("2026-12-01 21:13:19.704583", mdy, 0.704583),
            ("2026-12-01T21:13:19", mdy, 0.0),
            ("2026-12-01 21:13:19.5+00", mdy, 0.5),
            ("2026-12-01 22:13:19+01", mdy, 0.0),
            ("2026-12-01 18:43:19-02:30", mdy, 0.0),
            ("12/01/2026 21:13:19.792657", mdy, 0.792657),
            ("01/12/2026 21:13:19.792657", dmy, 0.792657),
            ("01.12.2026 21:13:19.79", mdy, 0.79),
            ("01.12.2026 21:13:19.79", dmy, 0.79),
            ("Tue Dec 01 21:13:19.792657 2026", mdy, 0.792657),
            ("Tue 01 Dec 21:13:19.792657 2026", dmy, 0.792657),
        ];
        for (text, order, fraction) in cases {
            let unix = parse_utc(text, order).unwrap_or_else(|| panic!("{text}"));
            assert!((unix - (UNIX + fraction)).abs() < 1e-6, "{text}: {unix}");
        }
    }

    #[test]
    fn dates_are_exact_across_leap_years_and_epoch() {
        let order = FieldOrder::MonthFirst;
        assert_eq!(parse_utc("1970-01-01 00:00:00", order), Some(0.0));
        assert_eq!(parse_utc("2000-02-29 00:00:00", order), Some(951_782_400.0));
        assert_eq!(
            parse_utc("2020-07-29 21:44:51", order),
            Some(1_596_059_091.0)
        );
        assert_eq!(parse_utc("1969-12-31 23:59:59", order), Some(-1.0));
    }

    #[test]
    fn anything_else_is_refused() {
        let order = FieldOrder::MonthFirst;
        for text in [
            "",
            "yesterday",
            "2026-11-26_01:02:03",
            "2026-02-30 00:00:00",
            "2026-13-01 00:00:00",
            "2026-12-01 24:00:00",
            "2026-12-01 21:13",
            "13/13/2026 00:00:00",
            "Tue Foo 01 21:13:19 2026",
            "1764623599",
            "2026-12-01 21:13:19.12x",
        ] {
            assert_eq!(parse_utc(text, order), None, "{text:?}");
        }
    }

    #[test]
    fn field_order_follows_the_datestyle_setting() {
        assert_eq!(FieldOrder::of_datestyle("ISO, MDY"), FieldOrder::MonthFirst);
        assert_eq!(FieldOrder::of_datestyle("SQL, DMY"), FieldOrder::DayFirst);
        assert_eq!(
            FieldOrder::of_datestyle("German, DMY"),
            FieldOrder::DayFirst
        );
        assert_eq!(FieldOrder::of_datestyle("ISO, YMD"), FieldOrder::MonthFirst);
    }
}
