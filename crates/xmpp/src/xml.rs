//! Writing XML: outgoing stanzas are small and built from a handful of templates, so they are
//! written as text with careful escaping rather than through a DOM. And one guard on reading:
//! the nesting depth of a received frame, checked before the parser builds a tree from it.

/// Deepest element nesting accepted in a received stanza. Real stanzas nest a dozen levels or
/// so (a forwarded, archived message with its payloads); the parser and the tree it builds
/// recurse once per level, so a frame nested tens of thousands deep would overflow the stack.
pub const MAX_NESTING: usize = 64;

/// Whether `xml` nests elements deeper than `limit`. A scan of the markup only: comments,
/// CDATA sections, processing instructions and declarations are skipped, quoted attribute
/// values may hold `>`, and `/>` closes at once. Malformed input is left to the parser.
pub fn nests_deeper_than(xml: &str, limit: usize) -> bool {
    let bytes = xml.as_bytes();
    let skip_past = |from: usize, end: &[u8]| -> usize {
        bytes[from..]
            .windows(end.len())
            .position(|w| w == end)
            .map_or(bytes.len(), |at| from + at + end.len())
    };
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'<' {
            i += 1;
            continue;
        }
        let rest = &bytes[i..];
        if rest.starts_with(b"<!--") {
            i = skip_past(i + 4, b"-->");
        } else if rest.starts_with(b"<![CDATA[") {
            i = skip_past(i + 9, b"]]>");
        } else if rest.starts_with(b"<?") {
            i = skip_past(i + 2, b"?>");
        } else if rest.starts_with(b"<!") {
            i = skip_past(i + 2, b">");
        } else if rest.starts_with(b"</") {
            depth = depth.saturating_sub(1);
            i = skip_past(i + 2, b">");
        } else {
            // A start tag: find its end outside quoted attribute values.
            let mut quote = None;
            let mut j = i + 1;
            while j < bytes.len() {
                match (quote, bytes[j]) {
                    (None, b'"' | b'\'') => quote = Some(bytes[j]),
                    (Some(q), c) if c == q => quote = None,
                    (None, b'>') => break,
                    _ => {}
                }
                j += 1;
            }
            if j > i + 1 && bytes.get(j - 1) != Some(&b'/') {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            i = j + 1;
        }
    }
    false
}

/// Escapes text for use in XML character data or in a single- or double-quoted attribute.
/// Characters that XML 1.0 does not allow at all (most C0 controls, RFC 6120 §11.1) are dropped,
/// so a user's stray control character cannot make the server close the stream.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&apos;"),
            '"' => out.push_str("&quot;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod depth_tests {
    use super::nests_deeper_than;

    #[test]
    fn counts_nesting_not_siblings_comments_or_quoted_markup() {
        let nested = |n: usize| format!("{}{}", "<a>".repeat(n), "</a>".repeat(n));
        assert!(!nests_deeper_than(&nested(64), 64));
        assert!(nests_deeper_than(&nested(65), 64));
        let siblings = format!("<r>{}</r>", "<a/><b x='>'></b>".repeat(1_000));
        assert!(!nests_deeper_than(&siblings, 3));
        let hidden = "<r><!-- <a><a><a> --><![CDATA[<a><a><a>]]><?pi <a><a>?></r>";
        assert!(!nests_deeper_than(hidden, 1));
        assert!(!nests_deeper_than("<r a=\"<b><c>\"/>", 0));
    }
}

/// A tiny element writer: `Xml::new("message").attr("to", jid).child(...).text(...)`.
#[derive(Debug, Clone)]
pub struct Xml {
    name: &'static str,
    attrs: String,
    content: String,
}

impl Xml {
    /// An element with no attributes and no content.
    pub fn new(name: &'static str) -> Self {
        Self {
            name,
            attrs: String::new(),
            content: String::new(),
        }
    }

    /// An element in a namespace (`xmlns='...'`).
    pub fn ns(name: &'static str, namespace: &str) -> Self {
        Self::new(name).attr("xmlns", namespace)
    }

    /// Adds an attribute (value escaped).
    pub fn attr(mut self, name: &str, value: &str) -> Self {
        self.attrs.push(' ');
        self.attrs.push_str(name);
        self.attrs.push_str("='");
        self.attrs.push_str(&escape(value));
        self.attrs.push('\'');
        self
    }

    /// Adds an attribute when there is a value.
    pub fn attr_opt(self, name: &str, value: Option<&str>) -> Self {
        match value {
            Some(v) => self.attr(name, v),
            None => self,
        }
    }

    /// Appends a child element.
    pub fn child(mut self, child: Xml) -> Self {
        self.content.push_str(&child.build());
        self
    }

    /// Appends a child element when there is one.
    pub fn child_opt(self, child: Option<Xml>) -> Self {
        match child {
            Some(c) => self.child(c),
            None => self,
        }
    }

    /// Appends markup that is already well-formed XML (an element serialized by `minidom`).
    pub fn raw(mut self, xml: &str) -> Self {
        self.content.push_str(xml);
        self
    }

    /// Appends character data (escaped).
    pub fn text(mut self, text: &str) -> Self {
        self.content.push_str(&escape(text));
        self
    }

    /// The element as text.
    pub fn build(self) -> String {
        if self.content.is_empty() {
            format!("<{}{}/>", self.name, self.attrs)
        } else {
            format!(
                "<{}{}>{}</{}>",
                self.name, self.attrs, self.content, self.name
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_drops_forbidden_controls() {
        assert_eq!(escape("a<b>&'\"\u{1}c\n"), "a&lt;b&gt;&amp;&apos;&quot;c\n");
        let x = Xml::ns("body", "jabber:client").text("1 < 2").build();
        assert_eq!(x, "<body xmlns='jabber:client'>1 &lt; 2</body>");
        assert_eq!(Xml::new("r").attr("h", "3").build(), "<r h='3'/>");
    }
}
