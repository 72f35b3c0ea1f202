//! The Replaces header (RFC 3891) and its place inside a Refer-To URI (RFC 3515, RFC 5589).
//!
//! ```text
//! Replaces: 98asjd8@h.invalid;to-tag=12345;from-tag=54321[;early-only]
//! Refer-To: <sip:carol@example.com?Replaces=98asjd8%40h.invalid%3Bto-tag%3D12345%3Bfrom-tag%3D54321>
//! ```
//!
//! The tags are named as the UA that *receives* the INVITE with Replaces sees its dialog: the
//! `to-tag` is that UA's own (local) tag and the `from-tag` its peer's (RFC 3891 §3). Inside a
//! URI the header value is %-escaped as an `hvalue` (RFC 3261 §19.1.1, §25.1): everything but
//! unreserved characters and `[]/?:+$` is escaped, `;`, `=` and `@` included.

use crate::message::split_list;

/// The dialog an INVITE with Replaces takes the place of (RFC 3891 §3).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReplacesTarget {
    /// The dialog's Call-ID.
    pub call_id: String,
    /// The tag of the UA that receives the Replaces (its local tag).
    pub to_tag: String,
    /// The tag of that UA's peer in the dialog.
    pub from_tag: String,
}

/// A parsed Replaces header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Replaces {
    pub target: ReplacesTarget,
    /// Only an early dialog may be replaced (RFC 3891 §3, §6.1).
    pub early_only: bool,
}

impl ReplacesTarget {
    /// The Replaces header value (RFC 3891 §6.1).
    pub fn to_header_value(&self) -> String {
        format!(
            "{};to-tag={};from-tag={}",
            self.call_id, self.to_tag, self.from_tag
        )
    }

    /// `Replaces=<escaped value>`, for the header part of a Refer-To URI.
    pub(crate) fn to_uri_header(&self) -> String {
        format!("Replaces={}", escape_hvalue(&self.to_header_value()))
    }

    /// True when nothing in it could break a header line or a parameter.
    pub(crate) fn is_well_formed(&self) -> bool {
        let ok = |s: &str| {
            !s.is_empty()
                && !s
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control() || matches!(c, ';' | ',' | '"'))
        };
        ok(&self.call_id) && ok(&self.to_tag) && ok(&self.from_tag)
    }
}

impl Replaces {
    /// Parses `callid;to-tag=..;from-tag=..[;early-only]`; None when a part is missing.
    pub(crate) fn parse(value: &str) -> Option<Replaces> {
        let mut parts = value.split(';').map(str::trim);
        let call_id = parts.next().filter(|c| !c.is_empty())?.to_owned();
        let (mut to_tag, mut from_tag, mut early_only) = (None, None, false);
        for part in parts {
            let (name, val) = match part.split_once('=') {
                Some((n, v)) => (n.trim(), Some(v.trim())),
                None => (part, None),
            };
            if name.eq_ignore_ascii_case("to-tag") {
                to_tag = val.map(str::to_owned);
            } else if name.eq_ignore_ascii_case("from-tag") {
                from_tag = val.map(str::to_owned);
            } else if name.eq_ignore_ascii_case("early-only") {
                early_only = true;
            }
        }
        Some(Replaces {
            target: ReplacesTarget {
                call_id,
                to_tag: to_tag?,
                from_tag: from_tag?,
            },
            early_only,
        })
    }

    /// The Replaces carried in the header part of a URI (`?Replaces=...&...`), if any.
    pub(crate) fn from_uri_headers(headers: &str) -> Option<Replaces> {
        headers.split('&').find_map(|h| {
            let (name, value) = h.split_once('=')?;
            name.eq_ignore_ascii_case("Replaces")
                .then(|| unescape(value))
                .flatten()
                .and_then(|v| Replaces::parse(&v))
        })
    }

    /// The one Replaces header of a request; two are an error (RFC 3891 §3 → 400).
    pub(crate) fn from_header_values<'a>(
        mut values: impl Iterator<Item = &'a str>,
    ) -> Result<Option<Replaces>, ()> {
        let Some(first) = values.next() else {
            return Ok(None);
        };
        if values.next().is_some() || split_list(first).len() > 1 {
            return Err(());
        }
        Replaces::parse(first).map(Some).ok_or(())
    }
}

fn escape_hvalue(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 2);
    for b in value.bytes() {
        let plain = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'_'
                    | b'.'
                    | b'!'
                    | b'~'
                    | b'*'
                    | b'\''
                    | b'('
                    | b')'
                    | b'['
                    | b']'
                    | b'/'
                    | b'?'
                    | b':'
                    | b'+'
                    | b'$'
            );
        if plain {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Undoes %-escapes; None on a broken escape or bytes that are not UTF-8.
pub(crate) fn unescape(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = value.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> ReplacesTarget {
        ReplacesTarget {
            call_id: "425928@bobster.example.org".into(),
            to_tag: "7743".into(),
            from_tag: "6472".into(),
        }
    }

    #[test]
    fn header_value_round_trips_with_early_only() {
        assert_eq!(
            target().to_header_value(),
            "425928@bobster.example.org;to-tag=7743;from-tag=6472"
        );
        let parsed =
            Replaces::parse("425928@bobster.example.org ; from-tag=6472;to-tag=7743;early-only")
                .unwrap();
        assert_eq!(parsed.target, target());
        assert!(parsed.early_only);
        assert_eq!(Replaces::parse("abc;to-tag=1"), None, "from-tag missing");
    }

    #[test]
    fn refer_to_escapes_the_header_part_and_reads_it_back() {
        let h = target().to_uri_header();
        assert_eq!(
            h,
            "Replaces=425928%40bobster.example.org%3Bto-tag%3D7743%3Bfrom-tag%3D6472"
        );
        let back = Replaces::from_uri_headers(&format!("X=1&{h}")).unwrap();
        assert_eq!(back.target, target());
        assert!(!back.early_only);
        assert_eq!(Replaces::from_uri_headers("Replaces=%4"), None);
    }

    #[test]
    fn two_replaces_headers_are_refused() {
        let one = ["a;to-tag=1;from-tag=2"];
        assert!(Replaces::from_header_values(one.into_iter()).is_ok_and(|r| r.is_some()));
        let two = ["a;to-tag=1;from-tag=2", "b;to-tag=1;from-tag=2"];
        assert!(Replaces::from_header_values(two.into_iter()).is_err());
    }
}
