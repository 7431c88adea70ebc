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
    /// Whether the project says which order dates are written in (`day_first` given): then a
    /// date that reads either way round is no assumption, and no warning.
    pub order_stated: bool,
}

/// Applies one transform (not `owner`, which the mapper resolves against destination users).
pub fn apply(t: Transform, value: String, settings: &TransformSettings) -> Result<String, Rejection> {
    match t {
        Transform::Trim => Ok(value.trim().to_string()),
        Transform::Lower => Ok(value.to_lowercase()),
        Transform::Upper => Ok(value.to_uppercase()),
        Transform::Email => email(&value),
        Transform::Domain => domain(&value),
        Transform::Phone => phone(&value, settings.region),
        Transform::Date => parse_when(&value, settings.day_first).map(|w| iso_date(&w)),
        Transform::Datetime => parse_when(&value, settings.day_first).map(|w| iso_datetime(&w)),
        Transform::Decimal => decimal(&value),
        Transform::Integer => integer(&value),
        Transform::Boolean => boolean(&value),
        Transform::Owner => Ok(value),
        Transform::PhoneExtension => Ok(phone_extension(&value, settings.region).unwrap_or_default()),
        Transform::StripControl => Ok(value
            .chars()
            .filter(|&c| !((c.is_ascii_control() && !matches!(c, '\t' | '\n' | '\r')) || c == '\u{7f}'))
            .collect()),
    }
}

/// A web address as its domain, the way companies are told apart: scheme, `www.`, a login, a
/// port, the path and a final dot go, case too (`https://WWW.Acme.com:443/about?x` → `acme.com`;
/// `info@acme.com` → `acme.com`). A value without a dot, or with a space in it, is no domain.
pub fn domain(value: &str) -> Result<String, Rejection> {
    let v = value.trim().to_lowercase();
    let rest = v.split_once("://").map_or(v.as_str(), |(_, r)| r);
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    let host = host.split(':').next().unwrap_or_default().trim_end_matches('.');
    let host = host.strip_prefix("www.").unwrap_or(host);
    let valid = host.contains('.')
        && !host.starts_with('.')
        && !host.contains("..")
        && host.chars().all(|c| c.is_alphanumeric() || c == '-' || c == '.');
    if valid {
        Ok(host.to_string())
    } else {
        Err(Rejection::new(
            Rule::Type,
            format!("'{}' is not a web address or domain", crate::text::shown(value.trim())),
        )
        .suggest("give the domain, like acme.com"))
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
    match phone_e164(value, region)? {
        (e164, None) => Ok(e164),
        (_, Some(unassigned)) => Err(unassigned),
    }
}

/// A number as dialled from abroad: `00` before the country code is `+` (the international
/// prefix nearly everywhere), and the trunk `0` that some write after the code in brackets is
/// dropped — `+44 (0)20 7946 0123` is +44 20 7946 0123, never +44 020….
fn international_form(v: &str) -> String {
    let v = match v.strip_prefix("00") {
        Some(rest) if rest.starts_with(|c: char| c.is_ascii_digit()) => format!("+{rest}"),
        _ => v.to_string(),
    };
    // Only right after the country code (`+44 (0)20 …`, `+49(0)30 …`), the rest as written (an
    // extension after it must stay readable).
    match v.find("(0)") {
        Some(at)
            if v[..at]
                .trim_end()
                .strip_prefix('+')
                .is_some_and(|c| (1..=3).contains(&c.len()) && c.bytes().all(|b| b.is_ascii_digit())) =>
        {
            format!("{} {}", v[..at].trim_end(), v[at + 3..].trim_start())
        }
        _ => v,
    }
}

/// The longest start of `v` of at most `max` characters that ends between two symbols as a
/// reader sees them (grapheme clusters): `👍🏽` keeps its skin tone or goes whole, a family emoji
/// is never cut into another family.
pub fn cut_to(v: &str, max: usize) -> String {
    use unicode_segmentation::UnicodeSegmentation;
    let mut out = String::new();
    let mut n = 0;
    for g in v.graphemes(true) {
        let len = g.chars().count();
        if n + len > max {
            break;
        }
        out.push_str(g);
        n += len;
    }
    out
}

/// Why a phone value does not read, in the words of someone reading it (not the parser's).
fn unreadable_phone(e: &phonenumber::ParseError, value: &str) -> String {
    use phonenumber::ParseError as P;
    let digits = value.chars().filter(char::is_ascii_digit).count();
    match e {
        P::NoNumber => format!("{} of a number", crate::text::count(digits as u64, "digit")),
        P::InvalidCountryCode | P::MalformedInteger(_) if value.starts_with("00") => {
            "it starts with 00, which dials abroad, but no country has the code that follows".into()
        }
        P::InvalidCountryCode | P::MalformedInteger(_) if value.starts_with('+') => {
            "no country has the code after its +".into()
        }
        P::InvalidCountryCode => "no country has the code it starts with".into(),
        P::TooShortAfterIdd => "too few digits after the international prefix".into(),
        P::TooShortNsn => "too few digits after the country code".into(),
        P::TooLong => format!("{digits} digits are more than any phone number has"),
        P::MalformedInteger(_) => "its digits do not read as a number".into(),
    }
}

/// A number that parses, in E.164, and why it is not an assigned number of its region if it is
/// not (the caller decides: hold it, warn, or leave it blank); junk is an error.
pub fn phone_e164(value: &str, region: phonenumber::country::Id) -> Result<(String, Option<Rejection>), Rejection> {
    let trimmed = value.trim();
    if trimmed.bytes().any(|b| b.is_ascii_digit()) && trimmed.bytes().filter(u8::is_ascii_digit).all(|b| b == b'0') {
        return Err(Rejection::new(
            Rule::InvalidPhone,
            format!("'{}' is a placeholder (nothing but zeros), not a phone number", crate::text::shown(trimmed)),
        )
        .suggest("leave the field blank in the source, or give the real number"));
    }
    // A number written with its country code gets no advice to add one.
    let international = trimmed.starts_with('+') || trimmed.starts_with("00");
    let dialled = international_form(trimmed);
    // With its country code the number needs no region: given one, the parser strips that
    // region's national prefix after the code (+33 1 48 89 77 95 lost its 1 to the US's).
    let parsed = phonenumber::parse(if international { None } else { Some(region) }, &dialled).map_err(|e| {
        let r = Rejection::new(
            Rule::InvalidPhone,
            format!("'{}' is not a phone number: {}", crate::text::shown(trimmed), unreadable_phone(&e, trimmed)),
        );
        if international {
            r.suggest("check the digits")
        } else {
            r.suggest("write it with its country code, e.g. +44 20 7946 0958")
        }
    })?;
    let valid = super::phone_validity::is_valid(&parsed);
    if !valid && !super::phone_validity::is_possible(&parsed) {
        let shown = crate::text::shown(trimmed);
        return Err(Rejection::new(
            Rule::InvalidPhone,
            format!("'{shown}' has too few or too many digits for a number of +{}", parsed.code().value()),
        )
        .suggest(if international {
            "check the digits"
        } else {
            "check the digits, or write it with its country code"
        }));
    }
    let unassigned = (!valid).then(|| {
        let shown = crate::text::shown(trimmed);
        if international {
            Rejection::new(
                Rule::InvalidPhone,
                format!("'{shown}' is not an assigned number of +{}", parsed.code().value()),
            )
            .suggest("check the digits")
        } else {
            Rejection::new(Rule::InvalidPhone, format!("'{shown}' is not a valid number for region {region:?}"))
                .suggest("check the digits, or write it with its country code")
        }
    });
    // E.164 is "+", the country code and the national significant number (with Italian-style
    // leading zeros); writing it directly avoids the formatter's pattern lookups.
    let national = parsed.national();
    let mut out = format!("+{}", parsed.code().value());
    for _ in 0..national.zeros() {
        out.push('0');
    }
    out.push_str(&national.value().to_string());
    if international && let Some(written) = as_written(trimmed, &parsed, &out) {
        // The parser dropped digits the value was written with: phonenumber 0.3 takes the 1 of
        // a Chinese mobile (+86 139 1234 5678) for a carrier prefix and reads +86 39…, which
        // is another number. Written with its country code, the number is its digits.
        return Ok((written, None));
    }
    Ok((out, unassigned))
}

/// The E.164 of an internationally written number from its own digits, when the parsed reading
/// `ours` left some out — not when the difference is a trunk `(0)` after the country code
/// (`+44 (0)20 …`) or the extension.
fn as_written(trimmed: &str, parsed: &phonenumber::PhoneNumber, ours: &str) -> Option<String> {
    let mut digits: String = trimmed.chars().filter(char::is_ascii_digit).collect();
    if trimmed.starts_with("00") {
        digits.drain(..2);
    }
    if let Some(ext) = parsed.extension().map(|e| e.to_string()).filter(|e| !e.is_empty()) {
        digits = digits.strip_suffix(ext.as_str())?.to_string();
    }
    let ours = ours.strip_prefix('+')?;
    let code = parsed.code().value().to_string();
    let trunk = format!("{code}0{}", ours.strip_prefix(code.as_str())?);
    let dropped = digits != ours && digits != trunk && digits.starts_with(&code) && digits.len() > ours.len();
    (dropped && digits.len() <= 15).then(|| format!("+{digits}"))
}

/// The extension written with a phone number (`415-555-2671 x123`, `ext. 12`, `extension 9`), if any.
/// A value that is no phone number has none (the phone field itself says what is wrong).
pub fn phone_extension(value: &str, region: phonenumber::country::Id) -> Option<String> {
    let parsed = phonenumber::parse(Some(region), value.trim()).ok()?;
    parsed.extension().map(|e| e.to_string()).filter(|e| !e.is_empty())
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

/// The form a date was read in (named in messages, and in the audit with the warning tier).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateForm {
    /// ISO 8601 / RFC 3339, or another pattern with the year first.
    Iso,
    /// `MM/DD/YYYY`, or `DD/MM/YYYY` with `day_first` (or a first number above 12).
    Slashed { day_first: bool },
    /// `20210304`.
    Compact,
    /// Seconds since 1970 (ten digits).
    EpochSeconds,
    /// Milliseconds since 1970 (thirteen digits).
    EpochMillis,
    /// A spreadsheet's day number (days since 1899-12-30, a fraction for the time).
    ExcelSerial,
    /// Written out: `06-Feb-2021 21:32`, `Tue, 5 Mar 2024 14:00:00 +0100`, `March 5 2024 2pm`.
    Written,
}

impl DateForm {
    pub fn describe(self) -> &'static str {
        match self {
            DateForm::Iso => "ISO 8601",
            DateForm::Slashed { day_first: false } => "month first (MM/DD/YYYY)",
            DateForm::Slashed { day_first: true } => "day first (DD/MM/YYYY)",
            DateForm::Compact => "YYYYMMDD",
            DateForm::EpochSeconds => "seconds since 1970",
            DateForm::EpochMillis => "milliseconds since 1970",
            DateForm::ExcelSerial => "a spreadsheet day number",
            DateForm::Written => "a written-out date",
        }
    }
}

/// A numeric date that reads either way round (`03/04/2024`, `3-4-2024 10:00`: both numbers 12 or
/// less, and different): how it is read with `day_first`, and the other reading. `None` for any
/// other value (`13/04/2024` can only be day first; ISO dates are never ambiguous).
pub fn ambiguous_order(value: &str, day_first: bool) -> Option<String> {
    let v = value.trim();
    let date = v.split_once([' ', 'T']).map_or(v, |(d, _)| d);
    let sep = if date.contains('/') { '/' } else { '-' };
    let parts: Vec<&str> = date.split(sep).collect();
    let [a, b, y] = parts.as_slice() else { return None };
    let digits =
        |s: &str, n: std::ops::RangeInclusive<usize>| n.contains(&s.len()) && s.bytes().all(|c| c.is_ascii_digit());
    if !digits(a, 1..=2) || !digits(b, 1..=2) || !digits(y, 4..=4) {
        return None;
    }
    let (a, b, y): (u32, u32, i32) = (a.parse().ok()?, b.parse().ok()?, y.parse().ok()?);
    if a > 12 || b > 12 || a == b || a == 0 || b == 0 {
        return None;
    }
    let (month, day) = if day_first { (b, a) } else { (a, b) };
    let read = NaiveDate::from_ymd_opt(y, month, day)?;
    let other = NaiveDate::from_ymd_opt(y, day, month)?;
    let (how, switch) = if day_first { ("day first", "false") } else { ("month first", "true") };
    Some(format!(
        "'{}' reads either way round: read as {read} ({how}); it is {other} if the export writes it the other way \
         (day_first = {switch} under [project]); say day_first = true or false to make it the project's decision",
        crate::text::shown(v)
    ))
}

/// Reads a date or date-time in one of the formats exports use; times without a zone are UTC.
pub fn parse_when(value: &str, day_first: bool) -> Result<NaiveDateTime, Rejection> {
    read_when(value, day_first).map(|(at, _)| at)
}

/// Like [`parse_when`], with the form it was read in. The common forms are read by fixed
/// patterns (fast, exact); anything else by `dtparse` (python-dateutil's rules), which must find
/// a year, a month and a day in the value itself — it would otherwise fill them in from today.
pub fn read_when(value: &str, day_first: bool) -> Result<(NaiveDateTime, DateForm), Rejection> {
    let v = value.trim();
    let reject = || match no_such_day(v, day_first) {
        Some(why) => Rejection::new(Rule::InvalidDate, format!("'{}' {why}", crate::text::shown(v)))
            .suggest("give the real date in the source, or leave the field blank"),
        None => {
            Rejection::new(Rule::InvalidDate, format!("'{}' is not a date Cutover can read", crate::text::shown(v)))
                .suggest("use YYYY-MM-DD (or YYYY-MM-DD HH:MM:SS)")
        }
    };
    if v.starts_with("0000") || v.starts_with("00/00") || v.starts_with("00.00") || v.starts_with("00-00") {
        return Err(Rejection::new(Rule::InvalidDate, format!("'{v}' is a zero date: there is no such day"))
            .suggest("leave the field blank in the source, or give the real date"));
    }
    if let Some(read) = numeric_date(v) {
        return read.ok_or_else(reject);
    }
    // "03/05/2024" can only be a slashed date: skip the formats that cannot match it.
    let slashed = v.contains('/') && !v.as_bytes().get(..4).is_some_and(|p| p.iter().all(u8::is_ascii_digit));
    if !slashed {
        if let Ok(dt) = DateTime::parse_from_rfc3339(v) {
            return Ok((dt.naive_utc(), DateForm::Iso));
        }
        for f in DATETIME_FORMATS {
            if let Ok(dt) = NaiveDateTime::parse_from_str(v, f) {
                return Ok((dt, DateForm::Iso));
            }
        }
        for f in DATE_FORMATS {
            if let Ok(d) = NaiveDate::parse_from_str(v, f) {
                let form = if f.starts_with("%Y") { DateForm::Iso } else { DateForm::Written };
                return Ok((d.and_time(NaiveTime::MIN), form));
            }
        }
    }
    if let Some(read) = slashed_date(v, day_first) {
        return read.ok_or_else(reject);
    }
    written_date(v, day_first).map(|at| (at, DateForm::Written)).ok_or_else(reject)
}

/// A value of digits only (and a spreadsheet's fraction): `YYYYMMDD`, epoch seconds (10 digits)
/// or milliseconds (13), a spreadsheet day number (5 digits: 1927 to 2173). `None`: not such a
/// value; `Some(None)`: such a value that is no date.
fn numeric_date(v: &str) -> Option<Option<(NaiveDateTime, DateForm)>> {
    let (whole, frac) = v.split_once('.').unwrap_or((v, ""));
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: i64 = whole.parse().ok()?;
    Some(match (whole.len(), frac.is_empty()) {
        (8, true) => {
            NaiveDate::parse_from_str(whole, "%Y%m%d").ok().map(|d| (d.and_time(NaiveTime::MIN), DateForm::Compact))
        }
        (10, true) => DateTime::from_timestamp(n, 0).map(|t| (t.naive_utc(), DateForm::EpochSeconds)),
        (13, true) => DateTime::from_timestamp_millis(n).map(|t| (t.naive_utc(), DateForm::EpochMillis)),
        (5, _) => {
            let day_fraction: f64 = format!("0.{frac}").parse().unwrap_or(0.0);
            let secs = (day_fraction * 86_400.0).round() as i64;
            NaiveDate::from_ymd_opt(1899, 12, 30)
                .and_then(|base| base.checked_add_signed(chrono::Duration::days(n)))
                .map(|d| (d.and_time(NaiveTime::MIN) + chrono::Duration::seconds(secs), DateForm::ExcelSerial))
        }
        _ => None,
    })
}

/// Why a value in a date's form names no day (`2023-02-30`, `31/02/1990`): "has no such day:
/// February 2023 has 28 days". `None` when it is not a year, a month of 1–12 and a day of 1–31.
fn no_such_day(v: &str, day_first: bool) -> Option<String> {
    let number = |s: &str| {
        (!s.is_empty() && s.len() <= 4 && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u32>().ok())
            .flatten()
    };
    let (year, month, day) = match written_day(v) {
        Some(ymd) => ymd,
        None => {
            let date = v.split([' ', 'T']).next().unwrap_or(v);
            let parts: Vec<&str> = date.split(['-', '/', '.']).collect();
            let [a, b, c] = parts.as_slice() else { return None };
            let (a, b, c) = (number(a)?, number(b)?, number(c)?);
            match (parts[0].len(), parts[2].len()) {
                (4, 1..=2) => (a, b, c),
                (1..=2, 4) if day_first || a > 12 => (c, b, a),
                (1..=2, 4) => (c, a, b),
                _ => return None,
            }
        }
    };
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || NaiveDate::from_ymd_opt(year as i32, month, day).is_some()
    {
        return None;
    }
    let first = NaiveDate::from_ymd_opt(year as i32, month, 1)?;
    let next = if month == 12 {
        NaiveDate::from_ymd_opt(year as i32 + 1, 1, 1)?
    } else {
        NaiveDate::from_ymd_opt(year as i32, month + 1, 1)?
    };
    let days = (next - first).num_days();
    Some(format!("has no such day: {} {year} has {days} days", first.format("%B")))
}

/// A date with its month written out (`Feb 30 2023`, `30 February 2023`, `February 30, 2023`):
/// (year, month, day) when it names exactly one month, one day of 1–31 and a four-digit year.
fn written_day(v: &str) -> Option<(u32, u32, u32)> {
    const MONTHS: [&str; 12] = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
    let lower = v.to_lowercase();
    let words: Vec<&str> = lower.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).collect();
    let months: Vec<u32> = words
        .iter()
        .filter(|w| w.len() >= 3 && w.chars().all(char::is_alphabetic))
        .filter_map(|w| MONTHS.iter().position(|m| w.starts_with(m)).map(|i| i as u32 + 1))
        .collect();
    let numbers: Vec<&str> = words.iter().copied().filter(|w| w.bytes().all(|b| b.is_ascii_digit())).collect();
    let [month] = months.as_slice() else { return None };
    let [a, b] = numbers.as_slice() else { return None };
    let (day, year) = match (a.len(), b.len()) {
        (1..=2, 4) => (a, b),
        (4, 1..=2) => (b, a),
        _ => return None,
    };
    Some((year.parse().ok()?, *month, day.parse().ok()?))
}

/// `MM/DD/YYYY [time]`: month first unless configured otherwise; a first number above 12 can only
/// be a day. `None`: not three slashed numbers with a four-digit year.
fn slashed_date(v: &str, day_first: bool) -> Option<Option<(NaiveDateTime, DateForm)>> {
    let (date_part, time_part) = match v.split_once(' ') {
        Some((d, t)) => (d, Some(t.trim())),
        None => (v, None),
    };
    let nums: Vec<&str> = date_part.split('/').collect();
    if nums.len() != 3
        || nums[2].len() != 4
        || !nums.iter().all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    let (first, second, year): (u32, u32, i32) = (nums[0].parse().ok()?, nums[1].parse().ok()?, nums[2].parse().ok()?);
    let day_first = day_first || first > 12;
    let (month, day) = if day_first { (second, first) } else { (first, second) };
    let Some(date) = NaiveDate::from_ymd_opt(year, month, day) else { return Some(None) };
    let time = match time_part {
        None => Some(NaiveTime::MIN),
        Some(t) => ["%H:%M:%S", "%H:%M", "%I:%M %p", "%I:%M:%S %p", "%H:%M:%S%.f"]
            .iter()
            .find_map(|f| NaiveTime::parse_from_str(t, f).ok()),
    };
    Some(time.map(|t| (date.and_time(t), DateForm::Slashed { day_first })))
}

/// Any other written form, by dtparse; a zone converts to UTC. Read twice with two different
/// defaults: a value that takes anything from the default (no year, no day) is not a date.
fn written_date(v: &str, day_first: bool) -> Option<NaiveDateTime> {
    // Lone numbers and very long text are no dates; dtparse would guess.
    if v.len() > 64 || !v.bytes().any(|b| b.is_ascii_digit()) || v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // dtparse indexes past the end (and slices inside a character) when a `+` or `-` after a
    // time has nothing after it, or a character beyond ASCII (`0H+`, `10:00 +€`): no such value
    // is a date, and none may crash the run.
    let signs_are_followed = v
        .char_indices()
        .filter(|(_, c)| matches!(c, '+' | '-'))
        .all(|(i, _)| v[i + 1..].trim_start().bytes().next().is_some_and(|b| b.is_ascii_alphanumeric()));
    if !signs_are_followed {
        return None;
    }
    let parser = dtparse::Parser::default();
    let tz = std::collections::HashMap::new();
    let read = |default: NaiveDateTime| {
        parser.parse(v, Some(day_first), Some(false), false, false, Some(&default), false, &tz).ok()
    };
    let a = NaiveDate::from_ymd_opt(1904, 1, 1)?.and_time(NaiveTime::MIN);
    let b = NaiveDate::from_ymd_opt(1996, 12, 28)?.and_time(NaiveTime::MIN);
    let (at, offset, _) = read(a)?;
    let (again, _, _) = read(b)?;
    // Both defaults agree on the date, and the year is written in full: a two-digit year would be
    // guessed (a birth year '55 read as 2055).
    if at.date() != again.date() || !v.contains(&format!("{:04}", at.year())) {
        return None;
    }
    // dtparse moves a day past the month's end to its last day (Feb 30 → Feb 29): the day read
    // must be one of the value's numbers.
    let numbers: Vec<u32> = v.split(|c: char| !c.is_ascii_digit()).filter_map(|n| n.parse().ok()).collect();
    if !numbers.contains(&at.day()) {
        return None;
    }
    Some(match offset {
        Some(o) => at - chrono::Duration::seconds(o.local_minus_utc() as i64),
        None => at,
    })
}

/// An exact decimal as text: currency and thousands separators removed, digits never rounded.
pub fn decimal(value: &str) -> Result<String, Rejection> {
    money(value).map(|m| m.amount)
}

/// An amount as exports write it, and the currency it named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Money {
    /// `-1234.50`: a sign, digits, a point; as many decimals as written.
    pub amount: String,
    /// The ISO 4217 code of the symbol or code written (`$` reads as USD), if any.
    pub currency: Option<&'static str>,
}

/// Symbols and prefixes exports put before or after an amount, longest first.
const CURRENCY_SYMBOLS: &[(&str, &str)] = &[
    ("US$", "USD"),
    ("CA$", "CAD"),
    ("AU$", "AUD"),
    ("NZ$", "NZD"),
    ("HK$", "HKD"),
    ("C$", "CAD"),
    ("A$", "AUD"),
    ("S$", "SGD"),
    ("R$", "BRL"),
    ("$", "USD"),
    ("€", "EUR"),
    ("£", "GBP"),
    ("¥", "JPY"),
    ("₹", "INR"),
    ("₩", "KRW"),
    ("₽", "RUB"),
    ("₺", "TRY"),
    ("₪", "ILS"),
    ("₫", "VND"),
    ("₱", "PHP"),
    ("฿", "THB"),
    ("zł", "PLN"),
    ("kr", "SEK"),
];

/// ISO 4217 codes read before or after an amount (`USD 1,234.50`, `1.234,50 EUR`).
const CURRENCY_CODES: &[&str] = &[
    "USD", "EUR", "GBP", "JPY", "CHF", "CAD", "AUD", "NZD", "SEK", "NOK", "DKK", "PLN", "CZK", "HUF", "RON", "BGN",
    "INR", "CNY", "HKD", "SGD", "KRW", "BRL", "MXN", "ZAR", "TRY", "ILS", "AED", "SAR", "RUB", "THB", "PHP", "IDR",
    "MYR", "VND", "ARS", "CLP", "COP", "PEN", "ISK", "TWD",
];

/// Reads an amount: a currency symbol or code before or after it, a sign before or after the
/// symbol, accounting parentheses for a negative, thousands grouped by `,` `.` space or `'`,
/// a decimal point or comma (the later of two separators is the decimal one). Never rounds.
pub fn money(value: &str) -> Result<Money, Rejection> {
    let v = value.trim();
    let reject = |why: &str| {
        Rejection::new(Rule::Type, format!("'{}' is not a number{why}", crate::text::shown(v)))
            .suggest("write it like 1234.50 (a currency sign and thousands separators are fine)")
    };
    let mut rest = v;
    let mut negative = false;
    if let Some(inner) = rest.strip_prefix('(').and_then(|r| r.strip_suffix(')')) {
        negative = true;
        rest = inner.trim();
    }
    let mut currency = None;
    let sign = |r: &str| -> Option<String> {
        for m in ['-', '\u{2212}'] {
            if let Some(x) = r.strip_prefix(m).or_else(|| r.strip_suffix(m)) {
                return Some(x.trim().to_string());
            }
        }
        None
    };
    let mut text = rest.to_string();
    for _ in 0..2 {
        if let Some(t) = sign(&text) {
            if negative {
                return Err(reject(" (two minus signs)"));
            }
            negative = true;
            text = t;
        }
        if let Some(t) = text.strip_prefix('+') {
            text = t.trim().to_string();
        }
        if currency.is_none()
            && let Some((t, code)) = strip_currency(&text)
        {
            currency = Some(code);
            text = t;
        }
    }
    let digits = plain_number(&text).ok_or_else(|| reject(""))?;
    let amount = if negative && digits.bytes().any(|b| b != b'0' && b != b'.') { format!("-{digits}") } else { digits };
    Ok(Money { amount, currency })
}

/// The text without a currency symbol or code at its start or end, and the currency's code.
fn strip_currency(text: &str) -> Option<(String, &'static str)> {
    for (sym, code) in CURRENCY_SYMBOLS {
        if let Some(t) = text.strip_prefix(sym).or_else(|| text.strip_suffix(sym)) {
            return Some((t.trim().to_string(), code));
        }
    }
    let upper = |s: &str| s.len() == 3 && s.bytes().all(|b| b.is_ascii_uppercase());
    let (head, tail) = (text.get(..3)?, text.get(text.len().checked_sub(3)?..)?);
    for (part, t) in [(head, text.get(3..)?), (tail, text.get(..text.len() - 3)?)] {
        if upper(part)
            && let Some(code) = CURRENCY_CODES.iter().find(|c| **c == part)
        {
            return Some((t.trim().to_string(), code));
        }
    }
    None
}

/// Digits with thousands groups and a decimal separator, as `1234.50`; `None` if not a plain
/// number (a group of other than three digits, two decimal separators, an exponent, letters).
fn plain_number(text: &str) -> Option<String> {
    let grouping = |c: char| matches!(c, ',' | '.' | ' ' | '\'' | '\u{a0}' | '\u{202f}' | '\u{2009}');
    if text.is_empty() || !text.chars().all(|c| c.is_ascii_digit() || grouping(c)) {
        return None;
    }
    // The decimal separator: the last '.' or ',' when it is the only one of its kind and follows
    // thousands groups, or is a '.', or is not followed by exactly three digits ("1,234" is a
    // thousand and more; "1.234" and "12,5" are not).
    let last = text.rfind(['.', ',']);
    let decimal_at = last.filter(|&i| {
        let sep = text.as_bytes()[i];
        let count = text.bytes().filter(|&b| b == sep).count();
        let grouped_before = text[..i].contains(grouping);
        count == 1 && (grouped_before || text.len() - i - 1 != 3 || sep == b'.')
    });
    let (int_part, frac) = match decimal_at {
        Some(i) => (&text[..i], Some(&text[i + 1..])),
        None => (text, None),
    };
    let groups: Vec<&str> = int_part.split(grouping).collect();
    let separators: std::collections::HashSet<char> = int_part.chars().filter(|c| grouping(*c)).collect();
    let grouped = groups.len() == 1
        || (separators.len() == 1
            && !groups[0].is_empty()
            && groups[0].len() <= 3
            && groups[1..].iter().all(|g| g.len() == 3));
    if !grouped || groups.iter().any(|g| g.is_empty() && groups.len() > 1) || int_part.is_empty() {
        return None;
    }
    let int_digits = groups.concat();
    match frac {
        Some(f) if f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit()) => None,
        Some(f) => Some(format!("{int_digits}.{f}")),
        None => Some(int_digits),
    }
}

/// A whole number; thousands separators (`1,234`, `1 234`) are read, a fraction is not dropped.
pub fn integer(value: &str) -> Result<String, Rejection> {
    let v = value.trim();
    let reject = || Rejection::new(Rule::Type, format!("'{}' is not a whole number", crate::text::shown(v)));
    if let Ok(n) = v.parse::<i64>() {
        return Ok(n.to_string());
    }
    let (negative, unsigned) = match v.strip_prefix('-') {
        Some(u) => (true, u.trim_start()),
        None => (false, v),
    };
    let digits = plain_number(unsigned).filter(|d| !d.contains('.')).ok_or_else(reject)?;
    let n: i64 = format!("{}{digits}", if negative { "-" } else { "" }).parse().map_err(|_| reject())?;
    Ok(n.to_string())
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
        TransformSettings { region: Id::US, day_first: false, order_stated: false }
    }

    #[test]
    fn a_date_that_reads_either_way_round_says_so() {
        let m = ambiguous_order("03/04/2024", false).expect("ambiguous");
        assert!(m.contains("read as 2024-03-04 (month first)") && m.contains("2024-04-03"), "{m}");
        let d = ambiguous_order("03/04/2024 10:00", true).expect("ambiguous");
        assert!(d.contains("read as 2024-04-03 (day first)"), "{d}");
        assert!(ambiguous_order("3-4-2024", false).is_some());
        for clear in ["13/04/2024", "04/04/2024", "2024-03-04", "03.04.2024", "3/4/55", "Mar 3, 2024", "20240304"] {
            assert_eq!(ambiguous_order(clear, false), None, "{clear}");
        }
    }

    #[test]
    fn a_phone_extension_is_found_in_the_ways_exports_write_it() {
        let us = Id::US;
        assert_eq!(phone_extension("415-555-2671 x123", us).as_deref(), Some("123"));
        assert_eq!(phone_extension("(415) 555-2671 ext. 12", us).as_deref(), Some("12"));
        assert_eq!(phone_extension("+1 415 555 2671 extension 9", us).as_deref(), Some("9"));
        assert_eq!(phone_extension("(415) 555-2671", us), None);
        assert_eq!(phone_extension("n/a", us), None);
        assert_eq!(phone("415-555-2671 x123", us).as_deref(), Ok("+14155552671"));
        // Too few or too many digits for the plan are junk, not unassigned numbers.
        for junk in ["555", "x123", "415555", "415 555 267", "+1 415 555 26712", "020 7946 0958"] {
            let e = phone_e164(junk, us).expect_err(junk);
            assert_eq!(e.rule, Rule::InvalidPhone, "{junk}");
        }
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
        // A number written with its country code keeps every digit it was written with (the
        // parser reads a Chinese mobile's 1 as a carrier prefix).
        for (input, e164) in [
            ("+86 139 1234 5678", "+8613912345678"),
            ("+8613800138000", "+8613800138000"),
            ("+86 10 6552 9988", "+861065529988"),
        ] {
            assert_eq!(phone_e164(input, Id::US).map(|(e, _)| e).as_deref(), Ok(e164), "{input}");
        }
        // Written with a country code, a number is read by that country's plan whatever the
        // project's region: the parser took the 1 of a Paris number for the US trunk prefix.
        for (input, e164) in [
            ("+33 1 48 89 77 95", "+33148897795"),
            ("+33148897795", "+33148897795"),
            ("0033 1 48 89 77 95", "+33148897795"),
            ("+44 (0)20 7946 0123", "+442079460123"),
            ("+49 (0)30 46405499", "+493046405499"),
            ("+49(0)30 46405499", "+493046405499"),
            ("001 212 721 1371", "+12127211371"),
            ("+33 (0)1 20 50 21 82 ext. 704", "+33120502182"),
            ("+44 (0)20 7136 0499 ext. 885", "+442071360499"),
        ] {
            for region in [Id::US, Id::GB, Id::DE, Id::FR] {
                assert_eq!(phone(input, region).as_deref(), Ok(e164), "{input} in {region:?}");
            }
        }
        for zeros in ["000-000-0000", "0", "+00 000"] {
            let r = phone(zeros, Id::US).expect_err(zeros);
            assert!(r.message.contains("is a placeholder (nothing but zeros)"), "{zeros}: {}", r.message);
        }
        let err = phone("12", Id::US).expect_err("too short");
        assert_eq!(err.rule, Rule::InvalidPhone);
        assert!(phone("not a phone", Id::US).is_err());
        // Written with its country code: no advice to add one.
        let unassigned = phone("+1 999 555 0100", Id::US).expect_err("no such area code");
        assert!(unassigned.message.contains("not an assigned number of +1"), "{}", unassigned.message);
        assert_eq!(unassigned.suggestion.as_deref(), Some("check the digits"));
        let local = phone("999 555 0100", Id::US).expect_err("no such area code");
        assert!(local.suggestion.is_some_and(|s| s.contains("country code")));
    }

    #[test]
    fn a_cut_ends_between_symbols_as_a_reader_sees_them() {
        assert_eq!(cut_to("Ébène ☕ café!", 10), "Ébène ☕ ca");
        assert_eq!(cut_to("ok 👍🏽!", 4), "ok ", "the thumb and its tone are one symbol");
        assert_eq!(cut_to("ok 👍🏽!", 5), "ok 👍🏽");
        let family = "👨\u{200d}👩\u{200d}👧\u{200d}👦";
        assert_eq!(cut_to(&format!("a{family}"), 5), "a", "never a smaller family");
        assert_eq!(cut_to("abc", 10), "abc");
    }

    #[test]
    fn a_sign_with_no_digits_after_it_is_no_date_and_no_crash() {
        // dtparse 2.0.1 panicked on these (found by the property below).
        for v in ["0H+", "5 Mar 2024 10:00 +", "5 Mar 2024 10:00 +€", "5 Mar 2024 10:00 -"] {
            assert!(written_date(v, false).is_none(), "{v}");
        }
        assert!(written_date("Tue, 05 Mar 2024 14:00:00 +0100", false).is_some());
    }

    #[test]
    fn junk_phones_are_told_in_a_readers_words() {
        for (junk, says) in [
            ("00000000000", "a placeholder (nothing but zeros)"),
            ("00999 1234567", "it starts with 00, which dials abroad"),
            ("n/a", "is not a phone number"),
            ("+999 1234567", "no country has the code after its +"),
        ] {
            let e = phone(junk, Id::US).expect_err(junk);
            assert!(e.message.contains(says), "{junk}: {}", e.message);
            for internal in ["IDD", "NSN", "malformed", "Error"] {
                assert!(!e.message.contains(internal), "{junk}: {}", e.message);
            }
        }
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
    fn web_addresses_become_their_domain() {
        for (given, want) in [
            ("acme.com", "acme.com"),
            ("https://www.Acme.com/about?x=1", "acme.com"),
            ("http://acme.com:8080", "acme.com"),
            ("WWW.ACME.CO.UK.", "acme.co.uk"),
            ("  info@acme.com ", "acme.com"),
            ("shop.acme.com/#top", "shop.acme.com"),
            ("münchen.de", "münchen.de"),
        ] {
            assert_eq!(domain(given).as_deref(), Ok(want), "{given}");
        }
        for bad in ["N/A", "acme", "acme .com", "http://", ".com", "a..com"] {
            let r = domain(bad).expect_err(bad);
            assert_eq!(r.rule, Rule::Type, "{bad}");
            assert!(r.message.contains("is not a web address or domain"), "{}", r.message);
        }
    }

    #[test]
    fn a_day_the_calendar_lacks_is_named_as_such() {
        let s = settings();
        let said = |v: &str| apply(Transform::Date, v.into(), &s).expect_err(v).message;
        assert_eq!(said("2023-02-30"), "'2023-02-30' has no such day: February 2023 has 28 days");
        assert_eq!(said("2024-02-30"), "'2024-02-30' has no such day: February 2024 has 29 days");
        assert_eq!(said("31/04/1990"), "'31/04/1990' has no such day: April 1990 has 30 days");
        assert_eq!(said("02/31/1990 10:00"), "'02/31/1990 10:00' has no such day: February 1990 has 28 days");
        assert_eq!(said("Feb 30 2023"), "'Feb 30 2023' has no such day: February 2023 has 28 days");
        assert_eq!(said("31 April, 1990"), "'31 April, 1990' has no such day: April 1990 has 30 days");
        for other in ["2023-13-45", "2023-00-10", "yesterday", "2023-02-32"] {
            assert!(said(other).contains("not a date Cutover can read"), "{other}: {}", said(other));
        }
    }

    #[test]
    fn dates_in_the_forms_exports_write_them() {
        let s = settings();
        let when = |v: &str| apply(Transform::Datetime, v.into(), &s);
        for (input, want) in [
            ("06-Feb-2021 21:32", "2021-02-06T21:32:00Z"),
            ("06-Feb-2021", "2021-02-06T00:00:00Z"),
            ("1549695766000", "2019-02-09T07:02:46Z"),
            ("1549695766", "2019-02-09T07:02:46Z"),
            ("20210304", "2021-03-04T00:00:00Z"),
            ("Feb 6, 2021", "2021-02-06T00:00:00Z"),
            ("Feb 6, 2021 9:05 PM", "2021-02-06T21:05:00Z"),
            ("Tue, 05 Mar 2024 14:00:00 +0100", "2024-03-05T13:00:00Z"),
            ("2024-03-05 14:22:01 UTC", "2024-03-05T14:22:01Z"),
            ("2024-03-05T14:22:01.123+0000", "2024-03-05T14:22:01Z"),
            ("5 March 2024 14:22", "2024-03-05T14:22:00Z"),
            ("03/05/2024 14:22:01.5", "2024-03-05T14:22:01Z"),
            // A spreadsheet's day number: 44927 is 2023-01-01, .75 six in the evening.
            ("44927", "2023-01-01T00:00:00Z"),
            ("44927.75", "2023-01-01T18:00:00Z"),
        ] {
            assert_eq!(when(input).as_deref(), Ok(want), "{input}");
        }
        // day_first still decides an ambiguous dashed or dotted date, and is named in the form.
        let dmy = TransformSettings { day_first: true, ..settings() };
        assert_eq!(apply(Transform::Date, "03-04-2024".into(), &dmy).as_deref(), Ok("2024-04-03"));
        assert_eq!(apply(Transform::Date, "03-04-2024".into(), &s).as_deref(), Ok("2024-03-04"));
        assert_eq!(read_when("03/04/2024", true).map(|r| r.1), Ok(DateForm::Slashed { day_first: true }));
        assert_eq!(read_when("1549695766000", false).map(|r| r.1), Ok(DateForm::EpochMillis));
        // What would be guessed is refused: a part missing, a two-digit year, a lone number.
        for bad in [
            "March 2024",
            "2024",
            "5",
            "10:30",
            "Tuesday",
            "3/4/55",
            "12345678",
            "1549695766000123",
            "42",
            "Feb 30, 2024",
        ] {
            assert_eq!(when(bad).map_err(|r| r.rule), Err(Rule::InvalidDate), "{bad}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 256, ..Default::default() })]

        /// Every day from 1900 to 2099 written in an export's forms reads back as itself, with
        /// `day_first` deciding the order only where the order is ambiguous.
        #[test]
        fn a_date_written_any_common_way_reads_back_as_itself(
            days in 0i64..73_000, secs in 0i64..86_400, day_first: bool, form in 0usize..9,
        ) {
            let d = NaiveDate::from_ymd_opt(1900, 1, 1).expect("date") + chrono::Duration::days(days);
            let at = d.and_time(NaiveTime::MIN) + chrono::Duration::seconds(secs);
            let (dd, mm) = (d.format("%d"), d.format("%m"));
            let y = d.format("%Y");
            let text = match form {
                0 => at.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                1 => if day_first { format!("{dd}/{mm}/{y}") } else { format!("{mm}/{dd}/{y}") },
                2 => at.format("%d-%b-%Y %H:%M:%S").to_string(),
                3 => at.format("%b %-d, %Y").to_string(),
                4 => at.format("%a, %d %b %Y %H:%M:%S +0000").to_string(),
                5 => d.format("%Y%m%d").to_string(),
                6 => if day_first { format!("{dd}-{mm}-{y}") } else { format!("{mm}-{dd}-{y}") },
                7 => at.format("%d.%m.%Y").to_string(),
                _ => at.format("%B %-d %Y %-I:%M:%S %p").to_string(),
            };
            let want = if matches!(form, 0 | 2 | 4 | 8) { at } else { d.and_time(NaiveTime::MIN) };
            proptest::prop_assert_eq!(parse_when(&text, day_first).ok(), Some(want), "{}", text);
        }

        /// Whatever the text, reading it never panics, and a date read has its year written in
        /// it (or is a number's date): nothing is filled in from today.
        #[test]
        fn no_text_gets_a_year_it_does_not_hold(text in "[0-9A-Za-z ,./:+€é-]{0,24}", day_first: bool) {
            if let Ok((at, form)) = read_when(&text, day_first)
                && !matches!(form, DateForm::EpochSeconds | DateForm::EpochMillis | DateForm::ExcelSerial)
            {
                proptest::prop_assert!(text.contains(&format!("{:04}", at.year())), "{} → {}", text, at);
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 256, ..Default::default() })]

        /// Any amount, written with any symbol, grouping and sign style an export uses, reads
        /// back digit for digit.
        #[test]
        fn an_amount_written_any_common_way_reads_back_exactly(
            units in 0u64..10_000_000_000, cents in "[0-9]{0,6}", style in 0usize..6, negative: bool,
        ) {
            let int = units.to_string();
            let group = |sep: &str| {
                let digits: Vec<char> = int.chars().collect();
                let mut out = String::new();
                for (i, c) in digits.iter().enumerate() {
                    if i > 0 && (digits.len() - i).is_multiple_of(3) {
                        out.push_str(sep);
                    }
                    out.push(*c);
                }
                out
            };
            let frac = |point: &str| if cents.is_empty() { String::new() } else { format!("{point}{cents}") };
            let body = match style {
                0 => format!("${}{}", group(","), frac(".")),
                1 => format!("{}{} €", group("."), frac(",")),
                2 => format!("USD {}{}", group(","), frac(".")),
                3 => format!("{}{}", group(" "), frac(",")),
                4 => format!("CHF {}{}", group("'"), frac(".")),
                _ => format!("{int}{}", frac(".")),
            };
            // A lone group of three after a point reads as decimals ("1.234 €" is 1.234): leave it out.
            proptest::prop_assume!(!(style == 1 && cents.is_empty() && (1000..1_000_000).contains(&units)));
            let text = if negative { format!("({body})") } else { body };
            let mut want = if cents.is_empty() { int.clone() } else { format!("{int}.{cents}") };
            if negative && want.bytes().any(|b| b != b'0' && b != b'.') {
                want = format!("-{want}");
            }
            proptest::prop_assert_eq!(decimal(&text), Ok(want), "{}", text);
        }
    }

    #[test]
    fn decimals_stay_exact() {
        assert_eq!(decimal("1,234.50").as_deref(), Ok("1234.50"));
        assert_eq!(decimal("-0.10").as_deref(), Ok("-0.10"));
        assert_eq!(decimal("12").as_deref(), Ok("12"));
        for bad in ["1,23.5", "1.2.3", "abc", "", "1e5", "12.", "1,2,3", ",5", "1..2", "--5", "(-5)", "$", "5 apples"] {
            assert!(decimal(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn money_as_exports_write_it() {
        let m = |v: &str| money(v).map(|m| (m.amount, m.currency));
        let ok = |a: &str, c: Option<&'static str>| Ok((a.to_string(), c));
        assert_eq!(m("$12,345.00"), ok("12345.00", Some("USD")));
        assert_eq!(m("USD 1,234.50"), ok("1234.50", Some("USD")));
        assert_eq!(m("1.234,50 €"), ok("1234.50", Some("EUR")));
        assert_eq!(m("€1.234.567,891"), ok("1234567.891", Some("EUR")));
        assert_eq!(m("£0.5"), ok("0.5", Some("GBP")));
        assert_eq!(m("(1,234.50)"), ok("-1234.50", None));
        assert_eq!(m("($1,234.50)"), ok("-1234.50", Some("USD")));
        assert_eq!(m("-$5"), ok("-5", Some("USD")));
        assert_eq!(m("$-5"), ok("-5", Some("USD")));
        assert_eq!(m("5-"), ok("-5", None));
        assert_eq!(m("\u{2212}7.25"), ok("-7.25", None));
        assert_eq!(m("1 234 567,5 EUR"), ok("1234567.5", Some("EUR")));
        assert_eq!(m("CHF 1'234.50"), ok("1234.50", Some("CHF")));
        assert_eq!(m("12,5"), ok("12.5", None));
        assert_eq!(m("1,234"), ok("1234", None));
        assert_eq!(m("0.123456789012345678901234567890"), ok("0.123456789012345678901234567890", None));
        assert_eq!(m("-0"), ok("0", None));
        assert_eq!(m("+42"), ok("42", None));
        assert_eq!(m("XYZ 5").map_err(|r| r.rule), Err(Rule::Type), "not a currency code");
    }

    #[test]
    fn integers_and_booleans() {
        assert_eq!(integer(" 42 ").as_deref(), Ok("42"));
        assert_eq!(integer("1,234,567").as_deref(), Ok("1234567"));
        assert_eq!(integer("-1 234").as_deref(), Ok("-1234"));
        for bad in ["4.2", "1,23", "1.234", "99999999999999999999", "12a"] {
            assert!(integer(bad).is_err(), "{bad}");
        }
        assert_eq!(boolean("Yes").as_deref(), Ok("true"));
        assert_eq!(boolean("0").as_deref(), Ok("false"));
        assert!(boolean("maybe").is_err());
    }
}
