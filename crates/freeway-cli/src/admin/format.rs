//! How admin documents read in a terminal: aligned tables, `$1.2345`, UTC `YYYY-MM-DD HH:MM`,
//! and the durations and dates the flags take.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::output;

/// A table whose columns are as wide as their widest cell; numeric columns align right.
pub struct Table {
    header: Vec<&'static str>,
    right: Vec<bool>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// `header` names the columns; a name starting with `>` is right-aligned (the `>` is dropped).
    pub fn new(header: &[&'static str]) -> Self {
        Self {
            header: header.iter().map(|h| h.trim_start_matches('>')).collect(),
            right: header.iter().map(|h| h.starts_with('>')).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn print(&self) {
        for line in self.render() {
            output::line(&line);
        }
    }

    fn render(&self) -> Vec<String> {
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let header: Vec<String> = self.header.iter().map(|h| (*h).to_owned()).collect();
        std::iter::once(&header)
            .chain(&self.rows)
            .map(|cells| {
                let mut line = String::new();
                for (i, (cell, &w)) in cells.iter().zip(&widths).enumerate() {
                    let pad = w.saturating_sub(cell.chars().count());
                    if i > 0 {
                        line.push_str("  ");
                    }
                    if self.right[i] {
                        line.push_str(&" ".repeat(pad));
                        line.push_str(cell);
                    } else {
                        line.push_str(cell);
                        line.push_str(&" ".repeat(pad));
                    }
                }
                line.trim_end().to_owned()
            })
            .collect()
    }
}

/// `label  value` lines with the values aligned, for one record.
pub fn fields(pairs: &[(&str, String)]) {
    let width = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in pairs {
        output::line(&format!("{k:width$}  {v}"));
    }
}

/// A string as is, `null` as `-`, anything else as JSON.
pub fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

/// `$1.2345`; `-` when absent.
pub fn money(v: &Value) -> String {
    v.as_f64()
        .map_or_else(|| "-".to_owned(), |usd| format!("${usd:.4}"))
}

/// An integer with thousands separators: `1,234,567`.
pub fn count(v: &Value) -> String {
    let Some(n) = v.as_i64() else {
        return text(v);
    };
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// Unix seconds as UTC `YYYY-MM-DD HH:MM`; `none` when absent.
pub fn time_secs(v: &Value, none: &str) -> String {
    v.as_i64().map_or_else(|| none.to_owned(), utc)
}

/// Unix milliseconds as UTC `YYYY-MM-DD HH:MM`.
pub fn time_ms(v: &Value) -> String {
    v.as_i64()
        .map_or_else(|| "-".to_owned(), |ms| utc(ms.div_euclid(1000)))
}

/// Unix seconds as UTC `YYYY-MM-DD HH:MM`.
pub fn utc(secs: i64) -> String {
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        rest / 3600,
        rest % 3600 / 60
    )
}

/// The models a team or key may call: `all` when unrestricted.
pub fn models(v: &Value, all: &str) -> String {
    match v.as_array() {
        Some(list) => list.iter().map(text).collect::<Vec<_>>().join(", "),
        None => all.to_owned(),
    }
}

/// A team's or key's budget, rates and fallback in one cell: `$200.0000/month, 600 rpm`.
pub fn limits(doc: &Value) -> String {
    let mut parts = Vec::new();
    if doc["budget_usd"].is_number() {
        let mut budget = format!("{}/{}", money(&doc["budget_usd"]), period(doc));
        if let Some(route) = doc["on_exceed"].as_str() {
            budget.push_str(&format!(" then {route}"));
        }
        parts.push(budget);
    }
    if doc["rpm"].is_number() {
        parts.push(format!("{} rpm", count(&doc["rpm"])));
    }
    if doc["tpm"].is_number() {
        parts.push(format!("{} tpm", count(&doc["tpm"])));
    }
    if parts.is_empty() {
        "-".to_owned()
    } else {
        parts.join(", ")
    }
}

fn period(doc: &Value) -> String {
    doc["budget_period"].as_str().unwrap_or("month").to_owned()
}

/// The budget line of a `show`: `$200.0000 per month`, `none`.
pub fn budget(doc: &Value) -> String {
    if doc["budget_usd"].is_number() {
        format!("{} per {} (UTC)", money(&doc["budget_usd"]), period(doc))
    } else {
        "none".to_owned()
    }
}

/// What a request past the budget gets.
pub fn on_exceed(doc: &Value) -> String {
    match doc["on_exceed"].as_str() {
        Some(route) => format!("sent to {route}"),
        None => "refused (429 budget_exceeded)".to_owned(),
    }
}

pub fn rate(v: &Value, unit: &str) -> String {
    if v.is_number() {
        format!("{} {unit}", count(v))
    } else {
        "unlimited".to_owned()
    }
}

pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// `30d`, `12h`, `90m`, `45s` (or several: `1h30m`) as seconds.
pub fn duration_secs(s: &str) -> anyhow::Result<i64> {
    let bad = || {
        anyhow::anyhow!(
            "`{s}` is not a duration: write a number and a unit, e.g. 90d, 12h, 30m, 45s"
        )
    };
    let mut total: i64 = 0;
    let mut number = String::new();
    for c in s.trim().chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            'd' => 86_400,
            'h' => 3_600,
            'm' => 60,
            's' => 1,
            _ => return Err(bad()),
        };
        let n: i64 = number.parse().map_err(|_| bad())?;
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
        number.clear();
    }
    if !number.is_empty() || (total == 0 && !s.trim().starts_with('0')) {
        return Err(bad());
    }
    Ok(total)
}

/// What `--since`/`--until` send: a date (`YYYY-MM-DD`) or unix seconds as given, a span ago
/// (`7d`) as the unix seconds it names.
pub fn when(s: &str, now: i64) -> anyhow::Result<String> {
    let s = s.trim();
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_digit()) {
        return Ok(s.to_owned());
    }
    if is_date(s) {
        return Ok(s.to_owned());
    }
    match duration_secs(s) {
        Ok(ago) => Ok((now - ago).to_string()),
        Err(_) => anyhow::bail!(
            "`{s}` is not a time: write a date (2025-06-01), unix seconds (1748736000) or a span \
             ago (7d, 12h)"
        ),
    }
}

fn is_date(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    let ok = |p: &str, len: usize| p.len() == len && p.chars().all(|c| c.is_ascii_digit());
    match parts.as_slice() {
        [y, m, d] if ok(y, 4) && ok(m, 2) && ok(d, 2) => {
            let (m, d): (u32, u32) = (m.parse().unwrap_or(0), d.parse().unwrap_or(0));
            (1..=12).contains(&m) && (1..=31).contains(&d)
        }
        _ => false,
    }
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn times_are_utc_minutes() {
        assert_eq!(utc(0), "1970-01-01 00:00");
        assert_eq!(utc(1_748_736_000), "2025-06-01 00:00");
        assert_eq!(utc(951_825_599), "2000-02-29 11:59");
        assert_eq!(time_ms(&json!(1_700_000_000_123_i64)), "2023-11-14 22:13");
        assert_eq!(time_secs(&Value::Null, "never"), "never");
    }

    #[test]
    fn money_and_counts() {
        assert_eq!(money(&json!(1.23456)), "$1.2346");
        assert_eq!(money(&json!(0)), "$0.0000");
        assert_eq!(money(&Value::Null), "-");
        assert_eq!(count(&json!(1_234_567)), "1,234,567");
        assert_eq!(count(&json!(999)), "999");
        assert_eq!(count(&json!(1000)), "1,000");
    }

    #[test]
    fn durations() {
        assert_eq!(duration_secs("30d").unwrap(), 30 * 86_400);
        assert_eq!(duration_secs("12h").unwrap(), 12 * 3_600);
        assert_eq!(duration_secs("90m").unwrap(), 5_400);
        assert_eq!(duration_secs("1h30m").unwrap(), 5_400);
        assert_eq!(duration_secs("0s").unwrap(), 0);
        for bad in ["", "30", "d", "3x", "1.5h", "-1d"] {
            assert!(duration_secs(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn times_for_since_and_until() {
        assert_eq!(when("2025-06-01", 0).unwrap(), "2025-06-01");
        assert_eq!(when("1748736000", 0).unwrap(), "1748736000");
        assert_eq!(
            when("7d", 1_000_000).unwrap(),
            (1_000_000 - 7 * 86_400).to_string()
        );
        assert!(when("2025-13-01", 0).is_err());
        assert!(when("yesterday", 0).is_err());
    }

    #[test]
    fn limits_read_as_one_cell() {
        let doc = json!({"budget_usd": 200.0, "budget_period": "month", "rpm": 600, "tpm": null,
                         "on_exceed": "route:cheap"});
        assert_eq!(limits(&doc), "$200.0000/month then route:cheap, 600 rpm");
        assert_eq!(limits(&json!({"budget_usd": null})), "-");
    }

    #[test]
    fn tables_align() {
        let mut t = Table::new(&["NAME", ">COST", "NOTE"]);
        t.row(vec!["a".into(), "$1.0000".into(), String::new()]);
        t.row(vec!["longer".into(), "$10.0000".into(), "x".into()]);
        assert_eq!(
            t.render(),
            [
                "NAME        COST  NOTE",
                "a        $1.0000",
                "longer  $10.0000  x"
            ]
        );
    }
}
