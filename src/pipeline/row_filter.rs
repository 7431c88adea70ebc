//! An object's row filter (`where = "status = 'active' and country in ('DE', 'AT')"`): which
//! source rows are in scope. A row outside it is not dropped: it ends `skipped`, with the filter
//! named, so every physical record of the source still has its one outcome.
//!
//! The language is small on purpose, and the same for every source: conditions on source fields
//! joined by `and` — `F = 'v'`, `F != 'v'` (or `<>`), `F in ('a', 'b')`, `F not in (…)`,
//! `F is blank`, `F is not blank`. Values compare as written, but for surrounding spaces.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Test {
    Equals(String),
    Differs(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Blank,
    NotBlank,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Condition {
    field: String,
    test: Test,
}

/// A parsed `where`, its fields resolved to positions of the source's fields by [`RowFilter::bind`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowFilter {
    text: String,
    conditions: Vec<Condition>,
    positions: Vec<usize>,
}

impl RowFilter {
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut conditions = Vec::new();
        let mut rest = text.trim();
        if rest.is_empty() {
            return Err("an empty filter: give a condition like status = 'active', or remove where".into());
        }
        loop {
            let (condition, after) = condition(rest)?;
            conditions.push(condition);
            let after = after.trim_start();
            if after.is_empty() {
                break;
            }
            match keyword(after, "and") {
                Some(next) => rest = next.trim_start(),
                None => return Err(format!("expected `and` or the end, found '{}'", clip(after))),
            }
        }
        Ok(Self { text: text.trim().to_string(), conditions, positions: Vec::new() })
    }

    /// The source fields the filter reads.
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.conditions.iter().map(|c| c.field.as_str())
    }

    /// Resolves each field to its position among `source_fields`; `Err` names one that is not there.
    pub fn bind(mut self, source_fields: &[String]) -> Result<Self, String> {
        self.positions = Vec::with_capacity(self.conditions.len());
        for c in &self.conditions {
            match source_fields.iter().position(|f| *f == c.field) {
                Some(i) => self.positions.push(i),
                None => return Err(format!("the source has no field '{}'", c.field)),
            }
        }
        Ok(self)
    }

    /// Whether a row (values in source field order) is in scope.
    pub fn admits(&self, values: &[Option<String>]) -> bool {
        self.conditions.iter().zip(&self.positions).all(|(c, &i)| {
            let v = values.get(i).and_then(|v| v.as_deref()).map(str::trim).unwrap_or("");
            match &c.test {
                Test::Equals(x) => v == x,
                Test::Differs(x) => v != x,
                Test::In(xs) => xs.iter().any(|x| x == v),
                Test::NotIn(xs) => !xs.iter().any(|x| x == v),
                Test::Blank => v.is_empty(),
                Test::NotBlank => !v.is_empty(),
            }
        })
    }
}

impl fmt::Display for RowFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn clip(s: &str) -> String {
    s.chars().take(30).collect()
}

/// `word` (any case) at the start of `s`, followed by a space, `(` or the end: what follows it.
fn keyword<'a>(s: &'a str, word: &str) -> Option<&'a str> {
    let head = s.get(..word.len())?;
    let rest = &s[word.len()..];
    (head.eq_ignore_ascii_case(word) && rest.chars().next().is_none_or(|c| c.is_whitespace() || c == '('))
        .then_some(rest)
}

fn condition(s: &str) -> Result<(Condition, &str), String> {
    let end = s.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.' || c == '-')).unwrap_or(s.len());
    let (field, rest) = s.split_at(end);
    if field.is_empty() {
        return Err(format!("expected a source field name, found '{}'", clip(s)));
    }
    let rest = rest.trim_start();
    let field = field.to_string();
    if let Some(r) = rest.strip_prefix("!=").or_else(|| rest.strip_prefix("<>")) {
        let (v, r) = quoted(r.trim_start())?;
        return Ok((Condition { field, test: Test::Differs(v) }, r));
    }
    if let Some(r) = rest.strip_prefix('=') {
        let (v, r) = quoted(r.trim_start())?;
        return Ok((Condition { field, test: Test::Equals(v) }, r));
    }
    if let Some(r) = keyword(rest, "is") {
        let r = r.trim_start();
        let (negated, r) = match keyword(r, "not") {
            Some(r) => (true, r.trim_start()),
            None => (false, r),
        };
        let r = keyword(r, "blank").ok_or_else(|| format!("expected `is blank` or `is not blank` after {field}"))?;
        return Ok((Condition { field, test: if negated { Test::NotBlank } else { Test::Blank } }, r));
    }
    let (negated, r) = match keyword(rest, "not") {
        Some(r) => (true, r.trim_start()),
        None => (false, rest),
    };
    if let Some(r) = keyword(r, "in") {
        let (list, r) = list(r.trim_start())?;
        return Ok((Condition { field, test: if negated { Test::NotIn(list) } else { Test::In(list) } }, r));
    }
    Err(format!("expected =, !=, in, not in or is [not] blank after {field}, found '{}'", clip(rest)))
}

/// `'value'` (a doubled `''` is a quote): the value and what follows.
fn quoted(s: &str) -> Result<(String, &str), String> {
    let Some(body) = s.strip_prefix('\'') else {
        return Err(format!("expected a value in single quotes, found '{}'", clip(s)));
    };
    let mut out = String::new();
    let mut chars = body.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c == '\'' {
            if chars.peek().is_some_and(|(_, n)| *n == '\'') {
                chars.next();
                out.push('\'');
                continue;
            }
            return Ok((out.trim().to_string(), &body[i + 1..]));
        }
        out.push(c);
    }
    Err("a value's quote is never closed".into())
}

/// `('a', 'b')`: the values and what follows.
fn list(s: &str) -> Result<(Vec<String>, &str), String> {
    let mut rest = s.strip_prefix('(').ok_or_else(|| format!("expected ( after in, found '{}'", clip(s)))?;
    let mut values = Vec::new();
    loop {
        let (v, r) = quoted(rest.trim_start())?;
        values.push(v);
        let r = r.trim_start();
        if let Some(r) = r.strip_prefix(',') {
            rest = r;
        } else if let Some(r) = r.strip_prefix(')') {
            return Ok((values, r));
        } else {
            return Err(format!("expected , or ) in the list, found '{}'", clip(r)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admits(filter: &str, fields: &[&str], row: &[Option<&str>]) -> bool {
        let fields: Vec<String> = fields.iter().map(|f| f.to_string()).collect();
        let row: Vec<Option<String>> = row.iter().map(|v| v.map(str::to_string)).collect();
        RowFilter::parse(filter).expect("parses").bind(&fields).expect("binds").admits(&row)
    }

    #[test]
    fn conditions_joined_by_and() {
        let f = ["status", "country", "email"];
        let row = [Some("active"), Some("DE"), None];
        assert!(admits("status = 'active'", &f, &row));
        assert!(admits("status = ' active '", &f, &row), "surrounding spaces do not count");
        assert!(!admits("status = 'Active'", &f, &row), "values compare as written");
        assert!(admits("status != 'gone' AND country in ('DE', 'AT')", &f, &row));
        assert!(!admits("country not in ('DE')", &f, &row));
        assert!(admits("email is blank and country is not blank", &f, &row));
        assert!(admits("status <> 'it''s'", &f, &row));
    }

    #[test]
    fn a_mistake_is_named() {
        for (bad, says) in [
            ("", "empty"),
            ("status == 'x'", "single quotes"),
            ("status = active", "single quotes"),
            ("status = 'x' or country = 'y'", "expected `and`"),
            ("status like 'x%'", "expected =, !=, in"),
            ("status in 'x'", "expected ("),
            ("status = 'open", "never closed"),
            ("status is empty", "is blank"),
        ] {
            let e = RowFilter::parse(bad).expect_err(bad);
            assert!(e.contains(says), "{bad}: {e}");
        }
        let e = RowFilter::parse("stauts = 'x'").expect("parses").bind(&["status".into()]).expect_err("field");
        assert!(e.contains("no field 'stauts'"), "{e}");
    }
}
