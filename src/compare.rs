//! Whether the destination holds what Cutover wrote, field by field. Systems hand values back in
//! their own spelling ("1234.5" for "1234.50", "1" for "true", "" for nothing), so values are
//! compared by the destination field's type, never as floating point.

use crate::model::FieldType;
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use rust_decimal::Decimal;
use std::str::FromStr;

/// A value as a number, exactly; `None` for blank or text that is not a number.
pub fn decimal(value: &str) -> Option<Decimal> {
    let v = value.trim();
    if v.is_empty() {
        return None;
    }
    Decimal::from_str(v).or_else(|_| Decimal::from_scientific(v)).ok()
}

/// A date-time as an instant, in the spellings systems hand back: RFC 3339, or SQL's
/// `2024-03-05 14:05:00+00` — with no offset it is taken as UTC, which is how Cutover writes them.
pub fn instant(text: &str) -> Option<DateTime<Utc>> {
    let t = text.trim();
    DateTime::parse_from_rfc3339(t)
        .or_else(|_| DateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f%#z"))
        .map(|d| d.with_timezone(&Utc))
        .or_else(|_| NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f").map(|n| n.and_utc()))
        .or_else(|_| NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f").map(|n| n.and_utc()))
        .or_else(|_| NaiveDate::parse_from_str(t, "%Y-%m-%d").map(|d| d.and_time(NaiveTime::MIN).and_utc()))
        .ok()
}

/// A date, as a date or as a date-time at midnight UTC — how a system that keeps dates as
/// date-times (HubSpot: `2025-08-20T00:00:00.000Z`) hands one back. Any other time of day is
/// not a date.
pub fn day(text: &str) -> Option<NaiveDate> {
    let t = text.trim();
    if let Ok(d) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        return Some(d);
    }
    let at = instant(t)?;
    (at.time() == NaiveTime::MIN).then(|| at.date_naive())
}

fn blank(v: Option<&str>) -> Option<&str> {
    v.filter(|s| !s.trim().is_empty())
}

fn boolean(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "t" | "y" => Some(true),
        "false" | "0" | "no" | "f" | "n" => Some(false),
        _ => None,
    }
}

/// True when `actual` (read back from the destination) is the value `expected` (what was written).
pub fn same(ty: FieldType, expected: Option<&str>, actual: Option<&str>) -> bool {
    match (blank(expected), blank(actual)) {
        (None, None) => true,
        (None, Some(_)) | (Some(_), None) => false,
        (Some(e), Some(a)) => {
            if e == a {
                return true;
            }
            match ty {
                FieldType::Integer | FieldType::Number | FieldType::Decimal => {
                    matches!((decimal(e), decimal(a)), (Some(x), Some(y)) if x == y)
                }
                FieldType::Boolean => matches!((boolean(e), boolean(a)), (Some(x), Some(y)) if x == y),
                FieldType::Email => e.eq_ignore_ascii_case(a),
                FieldType::Datetime => matches!((instant(e), instant(a)), (Some(x), Some(y)) if x == y),
                FieldType::Date => matches!((day(e), day(a)), (Some(x), Some(y)) if x == y),
                // Line endings are how a system stores text, not what it says.
                _ if e.contains('\r') || a.contains('\r') => unix_lines(e) == unix_lines(a),
                _ => false,
            }
        }
    }
}

fn unix_lines(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\r', "\n")
}

/// The value a distribution counts: numbers and booleans in one spelling, blanks as none.
pub fn canonical(ty: FieldType, value: Option<&str>) -> Option<String> {
    let v = blank(value)?;
    Some(match ty {
        FieldType::Integer | FieldType::Number | FieldType::Decimal => {
            decimal(v).map(|d| d.normalize().to_string()).unwrap_or_else(|| v.to_string())
        }
        FieldType::Boolean => boolean(v).map(|b| b.to_string()).unwrap_or_else(|| v.to_string()),
        FieldType::Email => v.to_ascii_lowercase(),
        FieldType::Date => day(v).map(|d| d.to_string()).unwrap_or_else(|| v.to_string()),
        FieldType::Datetime => instant(v)
            .map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
            .unwrap_or_else(|| v.to_string()),
        _ => v.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_compare_exactly_whatever_their_spelling() {
        assert!(same(FieldType::Decimal, Some("1234.50"), Some("1234.5")));
        assert!(same(FieldType::Integer, Some("7"), Some("7.0")));
        assert!(!same(FieldType::Decimal, Some("0.3"), Some("0.30000000000000004")));
        assert!(!same(FieldType::Decimal, Some("10"), Some("ten")));
        assert!(same(FieldType::Number, Some("1e3"), Some("1000")));
    }

    #[test]
    fn blanks_are_nothing_and_text_is_exact() {
        assert!(same(FieldType::Text, None, Some("")));
        assert!(same(FieldType::Text, Some("  "), None));
        assert!(!same(FieldType::Text, Some("Ann"), Some("ann")));
        assert!(!same(FieldType::Text, Some("Ann"), None));
        assert!(same(FieldType::Email, Some("Ann@x.io"), Some("ann@x.io")));
        assert!(same(FieldType::Boolean, Some("true"), Some("1")));
        assert!(!same(FieldType::Boolean, Some("true"), Some("0")));
        assert!(same(FieldType::Datetime, Some("2024-03-05T14:05:00Z"), Some("2024-03-05 16:05:00+02")));
        assert!(same(FieldType::Datetime, Some("2024-03-05T14:05:00Z"), Some("2024-03-05 14:05:00")));
        assert!(!same(FieldType::Datetime, Some("2024-03-05T14:05:00Z"), Some("2024-03-05 14:05:01")));
    }

    #[test]
    fn line_endings_are_how_text_is_kept_not_what_it_says() {
        assert!(same(FieldType::Text, Some("Call back\r\nTuesday"), Some("Call back\nTuesday")));
        assert!(!same(FieldType::Text, Some("Call back\r\nTuesday"), Some("Call back Tuesday")));
    }

    #[test]
    fn a_date_kept_as_a_date_time_at_midnight_utc_is_that_date() {
        // HubSpot keeps date properties, and dates written to date-time ones, at midnight UTC.
        assert!(same(FieldType::Date, Some("2025-08-20"), Some("2025-08-20T00:00:00.000Z")));
        assert!(same(FieldType::Date, Some("2025-08-20"), Some("2025-08-20T02:00:00+02:00")));
        assert!(same(FieldType::Datetime, Some("2025-08-20"), Some("2025-08-20T00:00:00.000Z")));
        assert!(
            !same(FieldType::Date, Some("2025-08-20"), Some("2025-08-20T09:30:00Z")),
            "a time of day is not a date"
        );
        assert!(!same(FieldType::Date, Some("2025-08-20"), Some("2025-08-21T00:00:00Z")));
        assert!(!same(FieldType::Date, Some("2025-08-20"), Some("20/08/2025")), "not read in another order");
    }

    #[test]
    fn canonical_values_group_spellings_together() {
        assert_eq!(canonical(FieldType::Decimal, Some("1.50")), Some("1.5".into()));
        assert_eq!(canonical(FieldType::Boolean, Some("1")), Some("true".into()));
        assert_eq!(canonical(FieldType::Text, Some("")), None);
        assert_eq!(canonical(FieldType::Date, Some("2025-08-20T00:00:00.000Z")), Some("2025-08-20".into()));
        assert_eq!(
            canonical(FieldType::Datetime, Some("2025-08-20 14:05:00+02")),
            canonical(FieldType::Datetime, Some("2025-08-20T12:05:00.000Z"))
        );
    }
}
