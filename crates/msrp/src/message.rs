//! MSRP message syntax (RFC 4975 §7 and the ABNF of §9), one complete message per input.
//!
//! Over WebSocket every MSRP message is exactly one WebSocket message (RFC 7977 §5.1), so the
//! parser takes a whole frame and is strict: the start line, each header line, the blank line
//! before a body and the closing end-line `-------<transaction-id><flag>` must all be where
//! §9 puts them, nothing may follow the end-line, and the body must not contain its own
//! end-line (§7.1: the sender picks the transaction id so that it cannot).
//!
//! ```text
//! MSRP a786hjs2 SEND                    start line: "MSRP" SP transact-id SP method
//! To-Path: msrp://...                   headers; To-Path and From-Path come first (§7.1.1)
//! From-Path: msrp://...
//! Message-ID: 87652491
//! Byte-Range: 1-25/25
//! Content-Type: text/plain
//!                                       blank line, then the body
//! Hey Bob, are you there?
//! -------a786hjs2$                      end-line; `$` complete, `+` more chunks, `#` aborted
//! ```

use std::fmt::Write as _;

use crate::error::MsrpError;
use crate::uri::MsrpUri;

/// The most header lines a message may carry; real ones have fewer than fifteen.
const MAX_HEADERS: usize = 64;
/// The longest header section accepted (start line and headers).
const MAX_HEADER_BYTES: usize = 16 * 1024;

/// The continuation flag of the end-line (RFC 4975 §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Continuation {
    /// `$`: this is the last (or only) chunk of the message.
    Complete,
    /// `+`: more chunks follow.
    More,
    /// `#`: the sender abandoned the message.
    Aborted,
}

impl Continuation {
    fn as_byte(self) -> u8 {
        match self {
            Continuation::Complete => b'$',
            Continuation::More => b'+',
            Continuation::Aborted => b'#',
        }
    }
    fn from_byte(b: u8) -> Option<Self> {
        match b {
            b'$' => Some(Continuation::Complete),
            b'+' => Some(Continuation::More),
            b'#' => Some(Continuation::Aborted),
            _ => None,
        }
    }
}

/// A request method. `SEND` and `REPORT` are RFC 4975's, `AUTH` is RFC 4976's; other
/// methods parse (a relay answers them 501) and round-trip.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    /// SEND (RFC 4975 §7.1.1).
    Send,
    /// REPORT (RFC 4975 §7.1.2).
    Report,
    /// AUTH (RFC 4976 §5).
    Auth,
    /// Any other upper-case token.
    Other(String),
}

impl Method {
    fn parse(token: &str) -> Option<Self> {
        if token.is_empty() || !token.bytes().all(|b| b.is_ascii_uppercase()) {
            return None;
        }
        Some(match token {
            "SEND" => Method::Send,
            "REPORT" => Method::Report,
            "AUTH" => Method::Auth,
            other => Method::Other(other.to_owned()),
        })
    }
    /// The method as written on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Send => "SEND",
            Method::Report => "REPORT",
            Method::Auth => "AUTH",
            Method::Other(other) => other,
        }
    }
}

/// A request or a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A request with its method.
    Request(Method),
    /// A response (RFC 4975 §7.2) with its status code and optional comment.
    Response {
        /// Three-digit status code.
        status: u16,
        /// Reason text after the code, if any.
        comment: Option<String>,
    },
}

/// A `Byte-Range` value `start-end/total` (RFC 4975 §7.1.1, §9); 1-based and inclusive.
/// `end` and `total` may be unknown (`*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    /// First byte's position, counting from 1.
    pub start: u64,
    /// Last byte's position, `None` for `*`.
    pub end: Option<u64>,
    /// Size of the whole message, `None` for `*`.
    pub total: Option<u64>,
}

impl ByteRange {
    /// Parses `start-end/total`.
    pub fn parse(value: &str) -> Result<Self, MsrpError> {
        let bad = |detail: &str| MsrpError::malformed("Byte-Range", format!("{detail}: {value:?}"));
        let (range, total) = value.trim().split_once('/').ok_or_else(|| bad("no `/`"))?;
        let (start, end) = range.split_once('-').ok_or_else(|| bad("no `-`"))?;
        let number = |s: &str| -> Result<u64, MsrpError> {
            if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad("not a number"));
            }
            s.parse().map_err(|_| bad("number out of range"))
        };
        let star_or = |s: &str| -> Result<Option<u64>, MsrpError> {
            if s == "*" {
                Ok(None)
            } else {
                number(s).map(Some)
            }
        };
        let start = number(start)?;
        let end = star_or(end)?;
        let total = star_or(total)?;
        if start == 0 {
            return Err(bad("range-start counts from 1"));
        }
        // An empty message is `1-0/0` (§7.1.1); otherwise end >= start - 1 and end <= total.
        if let Some(end) = end
            && end + 1 < start
        {
            return Err(bad("range ends before it starts"));
        }
        if let (Some(end), Some(total)) = (end, total)
            && end > total
        {
            return Err(bad("range ends after the total"));
        }
        Ok(ByteRange { start, end, total })
    }
}

impl std::fmt::Display for ByteRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-", self.start)?;
        match self.end {
            Some(end) => write!(f, "{end}/")?,
            None => f.write_str("*/")?,
        }
        match self.total {
            Some(total) => write!(f, "{total}"),
            None => f.write_str("*"),
        }
    }
}

/// A `Status` header value `000 code [comment]` (RFC 4975 §7.1.2, §9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The status code.
    pub code: u16,
    /// The comment, if any.
    pub comment: Option<String>,
}

impl Status {
    /// Parses `namespace SP status-code [SP text]`; only namespace `000` is defined.
    pub fn parse(value: &str) -> Result<Self, MsrpError> {
        let bad = |d: &str| MsrpError::malformed("Status", format!("{d}: {value:?}"));
        let mut parts = value.trim().splitn(3, ' ');
        let namespace = parts.next().unwrap_or_default();
        if namespace != "000" {
            return Err(bad("namespace must be 000"));
        }
        let code = parts.next().unwrap_or_default();
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("status code must be three digits"));
        }
        Ok(Status {
            code: code.parse().map_err(|_| bad("status code"))?,
            comment: parts.next().map(str::to_owned),
        })
    }
}

/// One MSRP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The transaction id (RFC 4975 §7.1: 4 to 32 characters of `ident`).
    pub transaction_id: String,
    /// Request or response.
    pub kind: Kind,
    /// Header fields in order, names as written.
    pub headers: Vec<(String, String)>,
    /// The body; `None` when the message has none (not even an empty one).
    pub body: Option<Vec<u8>>,
    /// The end-line flag.
    pub continuation: Continuation,
}

/// True if `id` is a valid transaction id: `ALPHANUM 3*31ident-char` (RFC 4975 §9).
pub fn is_transaction_id(id: &str) -> bool {
    let b = id.as_bytes();
    (4..=32).contains(&b.len())
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b".-+%=".contains(c))
}

fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"-_.!%*+`'~".contains(&c))
}

impl Message {
    /// A request with no headers yet.
    pub fn request(transaction_id: impl Into<String>, method: Method) -> Self {
        Message {
            transaction_id: transaction_id.into(),
            kind: Kind::Request(method),
            headers: Vec::new(),
            body: None,
            continuation: Continuation::Complete,
        }
    }

    /// Adds a header (builder style).
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    /// The method, for a request.
    pub fn method(&self) -> Option<&Method> {
        match &self.kind {
            Kind::Request(m) => Some(m),
            Kind::Response { .. } => None,
        }
    }

    /// The status code, for a response.
    pub fn status(&self) -> Option<u16> {
        match &self.kind {
            Kind::Request(_) => None,
            Kind::Response { status, .. } => Some(*status),
        }
    }

    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every header with this name, in order.
    pub fn headers_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn path(&self, name: &'static str) -> Result<Vec<MsrpUri>, MsrpError> {
        let value = self
            .header(name)
            .ok_or_else(|| MsrpError::malformed(name, "missing"))?;
        MsrpUri::parse_list(value)
    }

    /// The parsed To-Path.
    pub fn to_path(&self) -> Result<Vec<MsrpUri>, MsrpError> {
        self.path("To-Path")
    }

    /// The parsed From-Path.
    pub fn from_path(&self) -> Result<Vec<MsrpUri>, MsrpError> {
        self.path("From-Path")
    }

    /// The parsed Byte-Range, if present.
    pub fn byte_range(&self) -> Result<Option<ByteRange>, MsrpError> {
        self.header("Byte-Range").map(ByteRange::parse).transpose()
    }

    /// The parsed Status header, if present.
    pub fn status_header(&self) -> Result<Option<Status>, MsrpError> {
        self.header("Status").map(Status::parse).transpose()
    }

    /// The Message-ID, if present.
    pub fn message_id(&self) -> Option<&str> {
        self.header("Message-ID")
    }

    /// Parses one complete message (one WebSocket message).
    pub fn parse(frame: &[u8]) -> Result<Self, MsrpError> {
        // Start line.
        let line_end =
            find_crlf(frame, 0).ok_or_else(|| MsrpError::malformed("start line", "no CRLF"))?;
        if line_end > MAX_HEADER_BYTES {
            return Err(MsrpError::malformed("start line", "too long"));
        }
        let start = std::str::from_utf8(&frame[..line_end])
            .map_err(|_| MsrpError::malformed("start line", "not UTF-8"))?;
        let mut parts = start.splitn(3, ' ');
        if parts.next() != Some("MSRP") {
            return Err(MsrpError::malformed(
                "start line",
                "does not begin with `MSRP `",
            ));
        }
        let transaction_id = parts.next().unwrap_or_default();
        if !is_transaction_id(transaction_id) {
            return Err(MsrpError::malformed(
                "start line",
                format!("bad transaction id {transaction_id:?}"),
            ));
        }
        let rest = parts
            .next()
            .ok_or_else(|| MsrpError::malformed("start line", "no method or status"))?;
        let kind = parse_kind(rest)?;

        // Headers, until a blank line (body follows) or the end-line.
        let end_line_prefix = {
            let mut p = Vec::with_capacity(7 + transaction_id.len());
            p.extend_from_slice(b"-------");
            p.extend_from_slice(transaction_id.as_bytes());
            p
        };
        let mut headers = Vec::new();
        let mut pos = line_end + 2;
        let body_start = loop {
            if pos > MAX_HEADER_BYTES {
                return Err(MsrpError::malformed("headers", "header section too long"));
            }
            if frame[pos..].starts_with(&end_line_prefix) {
                break None;
            }
            let end = find_crlf(frame, pos).ok_or_else(|| {
                MsrpError::malformed("headers", "message ends inside the headers")
            })?;
            if end == pos {
                break Some(end + 2);
            }
            if frame[pos..end].starts_with(b"-------") {
                return Err(MsrpError::malformed(
                    "end-line",
                    "the end-line names another transaction id",
                ));
            }
            let line = std::str::from_utf8(&frame[pos..end])
                .map_err(|_| MsrpError::malformed("headers", "header line is not UTF-8"))?;
            let (name, value) = line.split_once(':').ok_or_else(|| {
                MsrpError::malformed("headers", format!("no `:` in {:?}", truncate(line)))
            })?;
            if !is_header_name(name) {
                return Err(MsrpError::malformed(
                    "headers",
                    format!("bad header name {:?}", truncate(name)),
                ));
            }
            if value.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
                return Err(MsrpError::malformed(
                    "headers",
                    "control character in a value",
                ));
            }
            if headers.len() == MAX_HEADERS {
                return Err(MsrpError::malformed("headers", "too many header fields"));
            }
            headers.push((name.to_owned(), value.trim().to_owned()));
            pos = end + 2;
        };

        // Body and end-line.
        let (body, end_line_at) = match body_start {
            None => (None, pos),
            Some(body_start) => {
                // The end-line is the last line of the frame: CRLF "-------" tid flag CRLF.
                let tail_len = 2 + end_line_prefix.len() + 1 + 2;
                if frame.len() < body_start + tail_len - 2 {
                    return Err(MsrpError::malformed("end-line", "missing"));
                }
                // An empty body: the blank line is followed directly by CRLF and the end-line;
                // handled by letting the body end where the tail begins.
                let tail_at = frame
                    .len()
                    .checked_sub(tail_len)
                    .filter(|t| *t >= body_start);
                let Some(tail_at) = tail_at else {
                    return Err(MsrpError::malformed("end-line", "missing"));
                };
                if &frame[tail_at..tail_at + 2] != b"\r\n" {
                    return Err(MsrpError::malformed(
                        "end-line",
                        "not preceded by CRLF or not the last line",
                    ));
                }
                let body = &frame[body_start..tail_at];
                let mut needle = Vec::with_capacity(2 + end_line_prefix.len());
                needle.extend_from_slice(b"\r\n");
                needle.extend_from_slice(&end_line_prefix);
                if memchr::memmem::find(body, &needle).is_some() {
                    return Err(MsrpError::malformed(
                        "body",
                        "the body contains the message's own end-line",
                    ));
                }
                (Some(body.to_vec()), tail_at + 2)
            }
        };
        let end_line = &frame[end_line_at..];
        if !end_line.starts_with(&end_line_prefix) {
            return Err(MsrpError::malformed(
                "end-line",
                "expected `-------` and the transaction id",
            ));
        }
        let after = &end_line[end_line_prefix.len()..];
        let continuation = after
            .first()
            .copied()
            .and_then(Continuation::from_byte)
            .ok_or_else(|| MsrpError::malformed("end-line", "flag must be $, + or #"))?;
        match &after[1..] {
            b"\r\n" => {}
            b"" => return Err(MsrpError::malformed("end-line", "missing final CRLF")),
            _ => {
                return Err(MsrpError::malformed(
                    "end-line",
                    "data after the end of the message",
                ));
            }
        }
        let message = Message {
            transaction_id: transaction_id.to_owned(),
            kind,
            headers,
            body,
            continuation,
        };
        message.check_required()?;
        Ok(message)
    }

    /// RFC 4975 §7.1.1 / §7.2: To-Path then From-Path first; a body needs a Content-Type
    /// (a SEND) and responses carry no body.
    fn check_required(&self) -> Result<(), MsrpError> {
        let first_two: Vec<&str> = self
            .headers
            .iter()
            .take(2)
            .map(|(n, _)| n.as_str())
            .collect();
        if first_two.len() < 2
            || !first_two[0].eq_ignore_ascii_case("To-Path")
            || !first_two[1].eq_ignore_ascii_case("From-Path")
        {
            return Err(MsrpError::malformed(
                "headers",
                "To-Path and From-Path must be the first two header fields",
            ));
        }
        self.to_path()?;
        self.from_path()?;
        if let Kind::Response { .. } = self.kind
            && self.body.is_some()
        {
            return Err(MsrpError::malformed("body", "a response has no body"));
        }
        if self.body.as_ref().is_some_and(|b| !b.is_empty())
            && self.header("Content-Type").is_none()
        {
            return Err(MsrpError::malformed(
                "headers",
                "a body without Content-Type",
            ));
        }
        self.byte_range()?;
        self.status_header()?;
        Ok(())
    }

    /// The message on the wire.
    pub fn encode(&self) -> Vec<u8> {
        let mut head = String::with_capacity(256);
        let _ = write!(head, "MSRP {} ", self.transaction_id);
        match &self.kind {
            Kind::Request(method) => head.push_str(method.as_str()),
            Kind::Response { status, comment } => {
                let _ = write!(head, "{status:03}");
                if let Some(comment) = comment {
                    head.push(' ');
                    head.push_str(comment);
                }
            }
        }
        head.push_str("\r\n");
        for (name, value) in &self.headers {
            let _ = write!(head, "{name}: {value}\r\n");
        }
        let body_len = self.body.as_ref().map_or(0, Vec::len);
        let mut out = Vec::with_capacity(head.len() + body_len + self.transaction_id.len() + 16);
        out.extend_from_slice(head.as_bytes());
        if let Some(body) = &self.body {
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(body);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"-------");
        out.extend_from_slice(self.transaction_id.as_bytes());
        out.push(self.continuation.as_byte());
        out.extend_from_slice(b"\r\n");
        out
    }

    /// The transaction response to this request (RFC 4975 §7.2): To-Path is the previous hop
    /// (the first From-Path URI), From-Path is `local`. `None` for a REPORT, which is never
    /// answered, and for a SEND whose Failure-Report says no response is wanted (`no`, and
    /// `partial` for success, §7.1.1).
    pub fn response(&self, status: u16, comment: &str, local: &MsrpUri) -> Option<Message> {
        let method = self.method()?;
        if *method == Method::Report {
            return None;
        }
        let failure_report = self.header("Failure-Report").unwrap_or("yes");
        if failure_report.eq_ignore_ascii_case("no")
            || (failure_report.eq_ignore_ascii_case("partial") && status == 200)
        {
            return None;
        }
        let previous_hop = self.from_path().ok()?.into_iter().next()?;
        Some(Message {
            transaction_id: self.transaction_id.clone(),
            kind: Kind::Response {
                status,
                comment: Some(comment.to_owned()),
            },
            headers: vec![
                ("To-Path".into(), previous_hop.to_string()),
                ("From-Path".into(), local.to_string()),
            ],
            body: None,
            continuation: Continuation::Complete,
        })
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(60).collect()
}

fn parse_kind(rest: &str) -> Result<Kind, MsrpError> {
    let (first, comment) = match rest.split_once(' ') {
        Some((f, c)) => (f, Some(c)),
        None => (rest, None),
    };
    if first.len() == 3 && first.bytes().all(|b| b.is_ascii_digit()) {
        let status: u16 = first
            .parse()
            .map_err(|_| MsrpError::malformed("start line", "bad status"))?;
        if !(100..=999).contains(&status) {
            return Err(MsrpError::malformed("start line", "status out of range"));
        }
        if let Some(c) = comment
            && c.bytes().any(|b| b.is_ascii_control() && b != b'\t')
        {
            return Err(MsrpError::malformed(
                "start line",
                "control character in comment",
            ));
        }
        return Ok(Kind::Response {
            status,
            comment: comment.map(str::to_owned),
        });
    }
    if comment.is_some() {
        return Err(MsrpError::malformed("start line", "text after the method"));
    }
    Method::parse(first).map(Kind::Request).ok_or_else(|| {
        MsrpError::malformed("start line", format!("bad method {:?}", truncate(first)))
    })
}

fn find_crlf(data: &[u8], from: usize) -> Option<usize> {
    let mut at = from;
    loop {
        let cr = memchr::memchr(b'\r', data.get(at..)?)? + at;
        if data.get(cr + 1) == Some(&b'\n') {
            return Some(cr);
        }
        at = cr + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_ranges() {
        let r = ByteRange::parse("1-25/25").unwrap();
        assert_eq!((r.start, r.end, r.total), (1, Some(25), Some(25)));
        assert_eq!(ByteRange::parse("1-*/*").unwrap().to_string(), "1-*/*");
        assert_eq!(ByteRange::parse("1-0/0").unwrap().end, Some(0));
        for bad in [
            "0-1/1",
            "5-3/9",
            "1-10/5",
            "a-1/1",
            "1-1",
            "-1/1",
            "1-99999999999999999999/1",
        ] {
            assert!(ByteRange::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn status_header() {
        let s = Status::parse("000 200 OK").unwrap();
        assert_eq!(s.code, 200);
        assert_eq!(s.comment.as_deref(), Some("OK"));
        assert!(Status::parse("001 200").is_err());
        assert!(Status::parse("000 20").is_err());
    }

    #[test]
    fn transaction_ids() {
        assert!(is_transaction_id("a786hjs2"));
        assert!(!is_transaction_id("abc"));
        assert!(!is_transaction_id("-abc"));
        assert!(!is_transaction_id(&"a".repeat(33)));
    }
}
