//! Common Presence and Instant Messaging message format (RFC 3862), `message/cpim`: the wrapper
//! an MSRP chat peer may ask for (`a=accept-types:message/cpim`, RFC 4975 §8.6) around the
//! real content.
//!
//! ```text
//! From: Alice <sip:alice@example.com>      message headers (RFC 3862 §3)
//! To: <sip:bob@example.com>
//! DateTime: 2026-11-21T10:00:00Z
//!                                          empty line
//! Content-Type: text/plain;charset=utf-8   encapsulated MIME headers
//!                                          empty line
//! Hello                                    content
//! ```

use crate::error::MsrpError;

/// A CPIM message: who, when, and the encapsulated content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpimMessage {
    /// The `From` header as written (`Name <uri>`).
    pub from: String,
    /// The `To` header as written.
    pub to: String,
    /// `DateTime` (RFC 3339), if given.
    pub date_time: Option<String>,
    /// The encapsulated Content-Type (`text/plain` when the part has none).
    pub content_type: String,
    /// The encapsulated content.
    pub body: Vec<u8>,
}

fn malformed(detail: &str) -> MsrpError {
    MsrpError::malformed("message/cpim", detail)
}

/// Splits `data` at the first empty line (CRLF CRLF, or LF LF from a lenient peer).
fn split_block(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let crlf = data
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4));
    let lf = data.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2));
    let (at, len) = match (crlf, lf) {
        (Some(a), Some(b)) => {
            if a.0 <= b.0 {
                a
            } else {
                b
            }
        }
        (a, b) => a.or(b)?,
    };
    Some((&data[..at], &data[at + len..]))
}

/// The header lines of a block as (name, value) pairs.
fn headers(block: &[u8]) -> Result<Vec<(String, String)>, MsrpError> {
    let text = std::str::from_utf8(block).map_err(|_| malformed("headers are not UTF-8"))?;
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| malformed("a header line without a colon"))?;
            Ok((name.trim().to_owned(), value.trim().to_owned()))
        })
        .collect()
}

impl CpimMessage {
    /// Parses a `message/cpim` body.
    pub fn parse(data: &[u8]) -> Result<Self, MsrpError> {
        let (message_headers, rest) =
            split_block(data).ok_or_else(|| malformed("no empty line after the headers"))?;
        let (mime_headers, body) = split_block(rest)
            .ok_or_else(|| malformed("no empty line after the encapsulated headers"))?;
        let message_headers = headers(message_headers)?;
        let find = |name: &str| {
            message_headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        let from = find("From").ok_or_else(|| malformed("no From header"))?;
        let to = find("To").ok_or_else(|| malformed("no To header"))?;
        let content_type = headers(mime_headers)?
            .into_iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("Content-Type"))
            .map_or_else(|| "text/plain".to_owned(), |(_, v)| v);
        Ok(Self {
            from,
            to,
            date_time: find("DateTime"),
            content_type,
            body: body.to_vec(),
        })
    }

    /// The `message/cpim` body.
    pub fn encode(&self) -> Vec<u8> {
        let clean = |s: &str| s.replace(['\r', '\n'], " ");
        let mut head = format!("From: {}\r\nTo: {}\r\n", clean(&self.from), clean(&self.to));
        if let Some(date_time) = &self.date_time {
            head.push_str(&format!("DateTime: {}\r\n", clean(date_time)));
        }
        head.push_str(&format!(
            "\r\nContent-Type: {}\r\n\r\n",
            clean(&self.content_type)
        ));
        let mut out = head.into_bytes();
        out.extend_from_slice(&self.body);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_rfc_3862_example() {
        let text = b"From: MR SANDERS <im:piglet@100akerwood.com>\r\n\
To: Depressed Donkey <im:eeyore@100akerwood.com>\r\n\
DateTime: 2000-12-13T13:40:00-08:00\r\n\
Subject: the weather will be fine today\r\n\
\r\n\
Content-type: text/plain\r\n\
Content-ID: <1234567890@foo.com>\r\n\
\r\n\
Here is the text of my message.";
        let m = CpimMessage::parse(text).unwrap();
        assert_eq!(m.from, "MR SANDERS <im:piglet@100akerwood.com>");
        assert_eq!(m.to, "Depressed Donkey <im:eeyore@100akerwood.com>");
        assert_eq!(m.date_time.as_deref(), Some("2000-12-13T13:40:00-08:00"));
        assert_eq!(m.content_type, "text/plain");
        assert_eq!(m.body, b"Here is the text of my message.");
    }

    #[test]
    fn round_trips_and_keeps_the_body_byte_exact() {
        let m = CpimMessage {
            from: "<sip:alice@localhost>".into(),
            to: "<sip:bob@localhost>".into(),
            date_time: Some("2026-11-21T10:00:00Z".into()),
            content_type: "text/plain;charset=utf-8".into(),
            body: "<b>not html</b>\r\n\r\nsecond paragraph ✓"
                .as_bytes()
                .to_vec(),
        };
        assert_eq!(CpimMessage::parse(&m.encode()).unwrap(), m);
    }

    #[test]
    fn rejects_what_is_not_cpim() {
        for bad in [
            &b""[..],
            b"hello",
            b"From: a\r\nTo: b\r\n\r\nno second block",
            b"To: b\r\n\r\nContent-Type: text/plain\r\n\r\nx",
            b"From a\r\nTo: b\r\n\r\n\r\nx",
        ] {
            assert!(CpimMessage::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn header_injection_is_neutralised() {
        let m = CpimMessage {
            from: "<sip:a@x>\r\nTo: <sip:evil@x>".into(),
            to: "<sip:b@x>".into(),
            date_time: None,
            content_type: "text/plain".into(),
            body: b"x".to_vec(),
        };
        let parsed = CpimMessage::parse(&m.encode()).unwrap();
        assert_eq!(parsed.to, "<sip:b@x>");
    }
}
