//! Writing XML: outgoing stanzas are small and built from a handful of templates, so they are
//! written as text with careful escaping rather than through a DOM.

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
