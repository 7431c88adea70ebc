//! Value transforms of the map stage. Each either returns the transformed value or says why it
//! cannot — a value is never silently blanked (no zero-date turned into NULL).

use crate::config::Transform;
use crate::model::Rule;
use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike};

/// Why a value could not be transformed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub rule: Rule,
    pub message: String,
    pub suggestion: Option<String>,
}

impl Rejection {
    fn new(rule: Rule, message: impl Into<String>) -> Self {
        Self { rule, message: message.into(), suggestion: None }
    }
    fn suggest(mut self, s: impl Into<String>) -> Self {
        self.suggestion = Some(s.into());
        self
    }
}

/// Settings the transforms need.
#[derive(Debug, Clone)]
pub struct TransformSettings {
    pub region: phonenumber::country::Id,
    pub day_first: bool,
}

/// Applies one transform (not `owner`, which the mapper resolves against destination users).
pub fn apply(t: Transform, value: String, settings: &TransformSettings) -> Result<String, Rejection> {
    match t {
        Transform::Trim => Ok(value.trim().to_string()),
        Transform::Lower => Ok(value.to_lowercase()),
        Transform::Upper => Ok(value.to_uppercase()),
        Transform::Email => email(&value),
        Transform::Phone => phone(&value, settings.region),
        Transform::Date => parse_when(&value, settings.day_first).map(|w| iso_date(&w)),
        Transform::Datetime => parse_when(&value, settings.day_first).map(|w| iso_datetime(&w)),
        Transform::Decimal => decimal(&value),
        Transform::Integer => integer(&value),
        Transform::Boolean => boolean(&value),
        Transform::Owner => Ok(value),
        Transform::StripControl => Ok(value
            .chars()
            .filter(|&c| !((c.is_ascii_control() && !matches!(c, '\t' | '\n' | '\r')) || c == '\u{7f}'))
            .collect()),
    }
}

/// Trims and lower-cases an address, and checks its shape.
pub fn email(value: &str) -> Result<String, Rejection> {
    let v = value.trim().to_lowercase();
    let valid = match v.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains('@')
                && !v.chars().any(|c| c.is_whitespace() || c.is_control() || c == ',' || c == ';')
        }
        None => false,
    };
    if let Some((at, c)) = v.chars().enumerate().find(|(_, c)| crate::text::is_invisible(*c)) {
        return Err(Rejection::new(
            Rule::InvalidEmail,
            format!(
                "'{}' holds an invisible character (U+{:04X}) at position {}: it would look like another address",
                crate::text::shown(value.trim()),
                c as u32,
                at + 1
            ),
        )
        .suggest("remove the character"));
    }
    if valid {
        Ok(v)
    } else {
        let r = Rejection::new(Rule::InvalidEmail, format!("'{}' is not an email address", value.trim()));
        Err(if value.contains(';') || value.contains(',') {
            r.suggest("the field holds several addresses: keep one")
        } else {
            r
        })
    }
}

/// Normalises a phone number to E.164 with the configured default region.
pub fn phone(value: &str, region: phonenumber::country::Id) -> Result<String, Rejection> {
    let trimmed = value.trim();
    let parsed = phonenumber::parse(Some(region), trimmed).map_err(|e| {
        Rejection::new(Rule::InvalidPhone, format!("'{trimmed}' is not a phone number ({e})"))
            .suggest("write it with its country code, e.g. +44 20 7946 0958")
    })?;
    if !super::phone_validity::is_valid(&parsed) {
        return Err(Rejection::new(
            Rule::InvalidPhone,
            format!("'{trimmed}' is not a valid number for region {region:?}"),
        )
        .suggest("check the digits, or write it with its country code"));
    }
    // E.164 is "+", the country code and the national significant number (with Italian-style
    // leading zeros); writing it directly avoids the formatter's pattern lookups.
    let national = parsed.national();
    let mut out = format!("+{}", parsed.code().value());
    for _ in 0..national.zeros() {
        out.push('0');
    }
    out.push_str(&national.value().to_string());
    Ok(out)
}

/// `YYYY-MM-DD`, written directly: chrono's `format` parses its pattern string on every call.
fn iso_date(w: &NaiveDateTime) -> String {
    let mut out = String::with_capacity(20);
    push_date(&mut out, w);
    out
}

/// `YYYY-MM-DDTHH:MM:SSZ` (UTC, whole seconds).
fn iso_datetime(w: &NaiveDateTime) -> String {
    let mut out = String::with_capacity(20);
    push_date(&mut out, w);
    for (sep, n) in [('T', w.hour()), (':', w.minute()), (':', w.second())] {
        out.push(sep);
        push_digits(&mut out, n, 2);
    }
    out.push('Z');
    out
}

fn push_date(out: &mut String, w: &NaiveDateTime) {
    let year = w.year();
    if !(0..=9999).contains(&year) {
        // Outside four digits ISO-8601 needs a sign; chrono's own formatting writes it.
        out.push_str(&w.date().format("%Y").to_string());
    } else {
        push_digits(out, year as u32, 4);
    }
    out.push('-');
    push_digits(out, w.month(), 2);
    out.push('-');
    push_digits(out, w.day(), 2);
}

fn push_digits(out: &mut String, n: u32, width: u32) {
    for i in (0..width).rev() {
        out.push(char::from(b'0' + ((n / 10u32.pow(i)) % 10) as u8));
    }
}

const DATE_FORMATS: &[&str] =
    &["%Y-%m-%d", "%Y/%m/%d", "%d.%m.%Y", "%d %b %Y", "%d %B %Y", "%b %d, %Y", "%B %d, %Y", "%b %d %Y"];
const DATETIME_FORMATS: &[&str] = &[
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M:%S%.f",
];

/// Reads a date or date-time in one of the formats exports use; times without a zone are UTC.
pub fn parse_when(value: &str, day_first: bool) -> Result<NaiveDateTime, Rejection> {
    let v = value.trim();
    let reject = || {
        Rejection::new(Rule::InvalidDate, format!("'{v}' is not a date Cutover can read"))
            .suggest("use YYYY-MM-DD (or YYYY-MM-DD HH:MM:SS)")
    };
    if v.starts_with("0000") || v.starts_with("00/00") || v.starts_with("00.00") {
        return Err(Rejection::new(Rule::InvalidDate, format!("'{v}' is a zero date: there is no such day"))
            .suggest("leave the field blank in the source, or give the real date"));
    }
    // "03/05/2024" can only be a slashed date: skip the formats that cannot match it.
    let slashed = v.contains('/') && !v.as_bytes().get(..4).is_some_and(|p| p.iter().all(u8::is_ascii_digit));
    if !slashed {
        if let Ok(dt) = DateTime::parse_from_rfc3339(v) {
            return Ok(dt.naive_utc());
        }
        for f in DATETIME_FORMATS {
            if let Ok(dt) = NaiveDateTime::parse_from_str(v, f) {
                return Ok(dt);
            }
        }
        for f in DATE_FORMATS {
            if let Ok(d) = NaiveDate::parse_from_str(v, f) {
                return Ok(d.and_time(NaiveTime::MIN));
            }
        }
    }
    // Slashed dates: month first unless configured otherwise; a first number above 12 can only be a day.
    let (date_part, time_part) = match v.split_once(' ') {
        Some((d, t)) => (d, Some(t.trim())),
        None => (v, None),
    };
    let nums: Vec<&str> = date_part.split('/').collect();
    if nums.len() == 3 {
        let first: u32 = nums[0].parse().map_err(|_| reject())?;
        let second: u32 = nums[1].parse().map_err(|_| reject())?;
        let year: i32 = nums[2].parse().map_err(|_| reject())?;
        if nums[2].len() != 4 {
            return Err(reject());
        }
        let (month, day) = if day_first || first > 12 { (second, first) } else { (first, second) };
        let date = NaiveDate::from_ymd_opt(year, month, day).ok_or_else(reject)?;
        let time = match time_part {
            None => NaiveTime::MIN,
            Some(t) => ["%H:%M:%S", "%H:%M", "%I:%M %p", "%I:%M:%S %p"]
                .iter()
                .find_map(|f| NaiveTime::parse_from_str(t, f).ok())
                .ok_or_else(reject)?,
        };
        return Ok(date.and_time(time));
    }
    Err(reject())
}

/// An exact decimal as text: thousands separators removed, digits never rounded.
pub fn decimal(value: &str) -> Result<String, Rejection> {
    let v = value.trim();
    let reject = || Rejection::new(Rule::Type, format!("'{v}' is not a number")).suggest("write it like 1234.50");
    let unsigned = v.strip_prefix('-').unwrap_or(v);
    let (int_part, frac) = match unsigned.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (unsigned, None),
    };
    let int_digits: String = if int_part.contains(',') {
        let groups: Vec<&str> = int_part.split(',').collect();
        let ok = !groups[0].is_empty()
            && groups[0].len() <= 3
            && groups[1..].iter().all(|g| g.len() == 3)
            && groups.iter().all(|g| g.bytes().all(|b| b.is_ascii_digit()));
        if !ok {
            return Err(reject());
        }
        groups.concat()
    } else {
        int_part.to_string()
    };
    if int_digits.is_empty() || !int_digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(reject());
    }
    if let Some(f) = frac
        && (f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(reject());
    }
    let sign = if v.starts_with('-') { "-" } else { "" };
    Ok(match frac {
        Some(f) => format!("{sign}{int_digits}.{f}"),
        None => format!("{sign}{int_digits}"),
    })
}

pub fn integer(value: &str) -> Result<String, Rejection> {
    let v = value.trim();
    v.parse::<i64>()
        .map(|n| n.to_string())
        .map_err(|_| Rejection::new(Rule::Type, format!("'{v}' is not a whole number")))
}

pub fn boolean(value: &str) -> Result<String, Rejection> {
    let v = value.trim().to_lowercase();
    match v.as_str() {
        "true" | "yes" | "y" | "1" | "t" => Ok("true".into()),
        "false" | "no" | "n" | "0" | "f" => Ok("false".into()),
        _ => Err(Rejection::new(Rule::Type, format!("'{}' is not yes/no", value.trim()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use phonenumber::country::Id;

    fn settings() -> TransformSettings {
        TransformSettings { region: Id::US, day_first: false }
    }

    #[test]
    fn iso_formatting_equals_chronos() {
        let mut day = NaiveDate::from_ymd_opt(1, 1, 1).expect("date").and_hms_opt(0, 0, 0).expect("time");
        let end = NaiveDate::from_ymd_opt(9999, 12, 31).expect("date").and_hms_opt(0, 0, 0).expect("time");
        let mut n = 0u32;
        while day <= end {
            let w = day + chrono::Duration::seconds(i64::from(n % 86_400));
            assert_eq!(iso_date(&w), w.format("%Y-%m-%d").to_string());
            assert_eq!(iso_datetime(&w), w.format("%Y-%m-%dT%H:%M:%SZ").to_string());
            day += chrono::Duration::days(1 + i64::from(n % 7));
            n = n.wrapping_mul(31).wrapping_add(7919);
        }
    }

    #[test]
    fn phones_become_e164() {
        for input in ["(415) 555-2671", "415.555.2671", "+1 415 555 2671", "4155552671", " 1-415-555-2671 "] {
            assert_eq!(phone(input, Id::US).as_deref(), Ok("+14155552671"), "{input}");
        }
        assert_eq!(phone("+44 20 7946 0958", Id::US).as_deref(), Ok("+442079460958"));
        assert_eq!(phone("020 7946 0958", Id::GB).as_deref(), Ok("+442079460958"));
        assert_eq!(phone("+39 02 3661 8300", Id::US).as_deref(), Ok("+390236618300"), "Italian leading zero kept");
        for input in ["+39 02 3661 8300", "+44 20 7946 0958", "(415) 555-2671", "+49 30 901820", "+61 2 9374 4000"] {
            let parsed = phonenumber::parse(Some(Id::US), input).expect(input);
            let library = parsed.format().mode(phonenumber::Mode::E164).to_string();
            assert_eq!(phone(input, Id::US).as_deref(), Ok(library.as_str()), "same E.164 as the library's formatter");
        }
        let err = phone("12", Id::US).expect_err("too short");
        assert_eq!(err.rule, Rule::InvalidPhone);
        assert!(phone("not a phone", Id::US).is_err());
    }

    #[test]
    fn emails_are_trimmed_lowercased_and_checked() {
        assert_eq!(email("  Ann.Lee@Example.COM ").as_deref(), Ok("ann.lee@example.com"));
        for bad in ["ann", "ann@", "@example.com", "ann@example", "a b@example.com", "a@x.com; b@y.com"] {
            assert_eq!(email(bad).expect_err(bad).rule, Rule::InvalidEmail, "{bad}");
        }
        assert!(email("a@x.com, b@y.com").expect_err("two").suggestion.is_some());
        // Looks like zw@x.com, is not: held, with the character named and shown.
        let hidden = email("zw\u{200b}@x.com").expect_err("zero-width space");
        assert!(
            hidden.message.contains("U+200B") && hidden.message.contains("zw\\u{200b}@x.com"),
            "{}",
            hidden.message
        );
        assert!(email("\u{feff}ann@x.com").is_err());
    }

    #[test]
    fn dates_from_several_formats() {
        let s = settings();
        let date = |v: &str| apply(Transform::Date, v.into(), &s);
        for input in [
            "2024-03-05",
            "03/05/2024",
            "2024/03/05",
            "05.03.2024",
            "5 Mar 2024",
            "March 5, 2024",
            "2024-03-05 14:22:01",
            "2024-03-05T14:22:01Z",
        ] {
            assert_eq!(date(input).as_deref(), Ok("2024-03-05"), "{input}");
        }
        assert_eq!(date("25/03/2024").as_deref(), Ok("2024-03-25"), "a first number above 12 is a day");
        let dmy = TransformSettings { day_first: true, ..settings() };
        assert_eq!(apply(Transform::Date, "03/05/2024".into(), &dmy).as_deref(), Ok("2024-05-03"));
        assert_eq!(
            apply(Transform::Datetime, "2024-03-05T14:22:01+02:00".into(), &s).as_deref(),
            Ok("2024-03-05T12:22:01Z")
        );
        assert_eq!(apply(Transform::Datetime, "03/05/2024 2:05 PM".into(), &s).as_deref(), Ok("2024-03-05T14:05:00Z"));
        let zero = date("0000-00-00").expect_err("zero date");
        assert_eq!(zero.rule, Rule::InvalidDate);
        assert!(zero.message.contains("zero date"));
        assert!(date("2024-02-30").is_err());
        assert!(date("yesterday").is_err());
    }

    #[test]
    fn decimals_stay_exact() {
        assert_eq!(decimal("1,234.50").as_deref(), Ok("1234.50"));
        assert_eq!(decimal("-0.10").as_deref(), Ok("-0.10"));
        assert_eq!(decimal("12").as_deref(), Ok("12"));
        for bad in ["1,23.5", "1.2.3", "abc", "", "1e5", "12."] {
            assert!(decimal(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn integers_and_booleans() {
        assert_eq!(integer(" 42 ").as_deref(), Ok("42"));
        assert!(integer("4.2").is_err());
        assert_eq!(boolean("Yes").as_deref(), Ok("true"));
        assert_eq!(boolean("0").as_deref(), Ok("false"));
        assert!(boolean("maybe").is_err());
    }
}
