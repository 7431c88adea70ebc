//! Finds the line of a key path in the project file, so every problem can point at its line.

use super::line_of_offset;

/// The parsed file kept for looking up lines (`toml_edit` keeps the spans of keys).
#[derive(Debug, Clone, Default)]
pub struct Spans {
    text: String,
    doc: Option<toml_edit::Document<String>>,
}

impl Spans {
    pub fn parse(text: &str) -> Self {
        Self { text: text.to_string(), doc: toml_edit::Document::parse(text.to_string()).ok() }
    }

    /// Line of the deepest key of `path` (dotted, as serde_ignored and our checks write it) that
    /// exists in the file; `None` when not even the first key is there.
    pub fn line_of(&self, path: &str) -> Option<usize> {
        let doc = self.doc.as_ref()?;
        let mut item: &toml_edit::Item = doc.as_item();
        let mut found = None;
        // One segment the file does not have is passed over: an object a `repeat` entry made
        // (`objects.emails.work.fields.value`) has its lines in its object's table.
        let mut passed_over = false;
        for segment in split_path(path) {
            let Some(table) = item.as_table_like() else {
                break;
            };
            let Some((key, next)) = table.get_key_value(&segment) else {
                if passed_over || found.is_none() {
                    break;
                }
                passed_over = true;
                continue;
            };
            if let Some(span) = key.span().or_else(|| next.span()) {
                found = Some(line_of_offset(&self.text, span.start));
            }
            item = next;
        }
        found
    }
}

/// Splits `a.b."c.d"` into segments, honouring quotes around keys that hold dots.
fn split_path(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in path.chars() {
        match c {
            '"' => quoted = !quoted,
            '.' if !quoted => out.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    out.push(current);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nested_key_lines() {
        let text = "[project]\nname = \"x\"\n\n[objects.deals.fields]\nstage = { from = \"s\" }\n";
        let spans = Spans::parse(text);
        assert_eq!(spans.line_of("project.name"), Some(2));
        assert_eq!(spans.line_of("objects.deals.fields.stage"), Some(5));
        assert_eq!(spans.line_of("objects.deals.fields.stage.from"), Some(5));
        assert_eq!(spans.line_of("nothing.here"), None);
        assert_eq!(spans.line_of("objects.deals.won.fields.stage"), Some(5), "a repeat entry's object");
        assert_eq!(spans.line_of("objects.deals.a.b.stage"), Some(4), "one segment passed over, not two");
    }

    #[test]
    fn quoted_segments_keep_their_dots() {
        assert_eq!(split_path(r#"destination.types."deals.amount""#), vec!["destination", "types", "deals.amount"]);
    }
}
