//! Just enough XML for the few flat documents Blob and Queue answer with. The service's documents are
//! machine-written and flat, so a tag scanner is sufficient and keeps the crate dependency-light.

/// Text of every `<tag>…</tag>` in `doc`, in order, unescaped.
pub fn all(doc: &str, tag: &str) -> Vec<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let mut out = Vec::new();
    let mut rest = doc;
    while let Some(start) = rest.find(&open) {
        let after = &rest[start + open.len()..];
        match after.find(&close) {
            Some(end) => {
                out.push(unescape(&after[..end]));
                rest = &after[end + close.len()..];
            }
            None => break,
        }
    }
    out
}

pub fn first(doc: &str, tag: &str) -> Option<String> {
    all(doc, tag).into_iter().next()
}

/// The raw inner text of every `<tag>…</tag>` block (for nested records such as `<Blob>`).
pub fn blocks<'a>(doc: &'a str, tag: &str) -> Vec<&'a str> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let mut out = Vec::new();
    let mut rest = doc;
    while let Some(start) = rest.find(&open) {
        let after = &rest[start + open.len()..];
        match after.find(&close) {
            Some(end) => {
                out.push(&after[..end]);
                rest = &after[end + close.len()..];
            }
            None => break,
        }
    }
    out
}

pub fn unescape(s: &str) -> String {
    s.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&apos;", "'").replace("&amp;", "&")
}

pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&apos;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_repeated_and_escaped_tags() {
        let doc = "<A><Name>x&amp;y</Name><Name>z</Name></A>";
        assert_eq!(all(doc, "Name"), vec!["x&y", "z"]);
        assert_eq!(first(doc, "Missing"), None);
        assert_eq!(escape("a<b&"), "a&lt;b&amp;");
    }
}
