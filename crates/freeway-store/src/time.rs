//! Wall-clock milliseconds and the UTC calendar periods budgets reset on.

use crate::model::Period;

const DAY_MS: i64 = 86_400_000;

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// When the period holding `at_ms` began (UTC midnight, or midnight of the month's first day).
pub fn period_start_ms(period: Period, at_ms: i64) -> i64 {
    let day = at_ms.div_euclid(DAY_MS);
    match period {
        Period::Day => day * DAY_MS,
        Period::Month => {
            let (y, m, _) = civil_from_days(day);
            days_from_civil(y, m, 1) * DAY_MS
        }
    }
}

/// When the period holding `at_ms` ends (the next one's start).
pub fn period_end_ms(period: Period, at_ms: i64) -> i64 {
    let day = at_ms.div_euclid(DAY_MS);
    match period {
        Period::Day => (day + 1) * DAY_MS,
        Period::Month => {
            let (y, m, _) = civil_from_days(day);
            let (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
            days_from_civil(y, m, 1) * DAY_MS
        }
    }
}

/// `YYYY-MM-DD` of a day number (days since 1970-01-01).
pub fn date_of_day(day: i64) -> String {
    let (y, m, d) = civil_from_days(day);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The day number of a `YYYY-MM-DD` date, if it is one.
pub fn day_of_date(date: &str) -> Option<i64> {
    let mut parts = date.trim().splitn(3, '-');
    let y: i64 = parts.next()?.parse().ok()?;
    let m: u32 = parts.next()?.parse().ok()?;
    let d: u32 = parts.next()?.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let day = days_from_civil(y, m, d);
    // 2026-02-31 would roll over into March: refuse it.
    (civil_from_days(day) == (y, m, d)).then_some(day)
}

/// Howard Hinnant's `civil_from_days`: proleptic Gregorian (year, month, day).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-12-01T10:30:00Z
    const AT: i64 = 1_796_121_000_000;

    #[test]
    fn calendar_round_trips() {
        for day in [-1, 0, 59, 365, 11_016, 20_423, 100_000] {
            let (y, m, d) = civil_from_days(day);
            assert_eq!(days_from_civil(y, m, d), day);
        }
        assert_eq!(date_of_day(0), "1970-01-01");
        assert_eq!(date_of_day(AT / DAY_MS), "2026-12-01");
        assert_eq!(day_of_date("2026-12-01"), Some(AT / DAY_MS));
        assert_eq!(day_of_date("2026-02-31"), None);
        assert_eq!(day_of_date("yesterday"), None);
    }

    #[test]
    fn periods_start_and_end_on_utc_boundaries() {
        assert_eq!(
            date_of_day(period_start_ms(Period::Day, AT) / DAY_MS),
            "2026-12-01"
        );
        assert_eq!(
            period_end_ms(Period::Day, AT) - period_start_ms(Period::Day, AT),
            DAY_MS
        );
        let start = period_start_ms(Period::Month, AT + 20 * DAY_MS);
        assert_eq!(date_of_day(start / DAY_MS), "2026-12-01");
        let end = period_end_ms(Period::Month, AT + 20 * DAY_MS);
        assert_eq!(date_of_day(end / DAY_MS), "2027-01-01");
    }
}
