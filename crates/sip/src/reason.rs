//! The Reason header (RFC 3326): why a BYE or CANCEL was sent.
//!
//! ```text
//! Reason            =  "Reason" HCOLON reason-value *(COMMA reason-value)
//! reason-value      =  protocol *(SEMI reason-params)
//! protocol          =  "SIP" / "Q.850" / token
//! reason-params     =  protocol-cause / reason-text / reason-extension
//! protocol-cause    =  "cause" EQUAL cause
//! reason-text       =  "text" EQUAL quoted-string
//! ```

/// One reason-value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason {
    /// `SIP`, `Q.850` or another token.
    pub protocol: String,
    /// The protocol's cause code (a SIP status code for `SIP`).
    pub cause: u16,
    /// Free text for people.
    pub text: Option<String>,
}

impl Reason {
    /// A `SIP` reason with this status code.
    pub fn sip(cause: u16, text: impl Into<String>) -> Self {
        Self {
            protocol: "SIP".into(),
            cause,
            text: Some(text.into()),
        }
    }

    /// The first reason-value of a header value that has a cause; `None` if there is none.
    /// Values are separated by commas outside quoted text.
    pub fn parse(value: &str) -> Option<Self> {
        split_outside_quotes(value, ',').find_map(Self::parse_one)
    }

    fn parse_one(value: &str) -> Option<Self> {
        let mut parts = split_outside_quotes(value, ';');
        let protocol = parts.next()?.trim();
        if protocol.is_empty() || !protocol.chars().all(is_token_char) {
            return None;
        }
        let mut cause = None;
        let mut text = None;
        for param in parts {
            // Extensions may be bare tokens; only cause and text matter here.
            let Some((name, val)) = param.split_once('=') else {
                continue;
            };
            let val = val.trim();
            match name.trim().to_ascii_lowercase().as_str() {
                "cause" => cause = val.parse::<u16>().ok(),
                "text" => {
                    text = val
                        .strip_prefix('"')
                        .and_then(|v| v.strip_suffix('"'))
                        .map(unescape);
                }
                _ => {}
            }
        }
        Some(Self {
            protocol: protocol.to_owned(),
            cause: cause?,
            text,
        })
    }

    /// The header value, e.g. `SIP ;cause=487 ;text="transfer cancelled"`.
    pub fn to_header_value(&self) -> String {
        let mut value = format!("{} ;cause={}", self.protocol, self.cause);
        if let Some(text) = &self.text {
            let escaped: String = text
                .chars()
                .filter(|c| !c.is_control())
                .flat_map(|c| match c {
                    '"' | '\\' => vec!['\\', c],
                    c => vec![c],
                })
                .collect();
            value.push_str(&format!(" ;text=\"{escaped}\""));
        }
        value
    }
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-.!%*_+`'~".contains(c)
}

fn unescape(quoted: &str) -> String {
    let mut out = String::with_capacity(quoted.len());
    let mut chars = quoted.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            c => out.push(c),
        }
    }
    out
}

/// Splits at `separator` where it is not inside a quoted string.
fn split_outside_quotes(value: &str, separator: char) -> impl Iterator<Item = &str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in value.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == separator && !quoted => {
                parts.push(&value[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(&value[start..]);
    parts.into_iter()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_rfc_examples() {
        let r = Reason::parse("SIP ;cause=200 ;text=\"Call completed elsewhere\"").unwrap();
        assert_eq!(r, Reason::sip(200, "Call completed elsewhere"));
        let r = Reason::parse("Q.850 ;cause=16 ;text=\"Terminated\"").unwrap();
        assert_eq!((r.protocol.as_str(), r.cause), ("Q.850", 16));
        let r = Reason::parse("SIP;cause=487").unwrap();
        assert_eq!((r.cause, r.text), (487, None));
    }

    #[test]
    fn takes_the_first_value_with_a_cause() {
        let r = Reason::parse("Q.850;text=\"a, b\", SIP ;cause=487").unwrap();
        assert_eq!((r.protocol.as_str(), r.cause), ("SIP", 487));
    }

    #[test]
    fn rejects_what_is_not_a_reason() {
        for bad in [
            "",
            ";cause=1",
            "SIP",
            "SIP;cause=x",
            "S I P;cause=1",
            "SIP;text=\"x",
        ] {
            assert_eq!(Reason::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn round_trips_text_with_quotes() {
        let r = Reason::sip(487, "the \"file\" \\ cancelled\r\n");
        let parsed = Reason::parse(&r.to_header_value()).unwrap();
        assert_eq!(parsed.text.as_deref(), Some("the \"file\" \\ cancelled"));
    }
}
