//! How a note Cutover sent is known again in an account that keeps no marker on notes.

/// A note's words, as an account may store them differently from how they were sent: without
/// markup (Pipedrive keeps notes as HTML), entities decoded, and no whitespace at all (line
/// endings, `<br>` for a newline, spaces collapsed).
pub(super) fn note_words(content: &str) -> String {
    let mut out = String::with_capacity(content.len());
    let mut in_tag = false;
    for c in content.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            _ if in_tag || c.is_whitespace() => {}
            _ => out.push(c),
        }
    }
    [("&nbsp;", ""), ("&lt;", "<"), ("&gt;", ">"), ("&quot;", "\""), ("&#39;", "'"), ("&amp;", "&")]
        .iter()
        .fold(out, |s, (entity, plain)| s.replace(entity, plain))
}
