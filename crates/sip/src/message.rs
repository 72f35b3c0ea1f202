//! SIP message syntax: parsing and serialization (RFC 3261 §7, §20, §25).
//!
//! The parser is deliberately our own, tolerant where RFC 3261 is tolerant and strict where it
//! is strict, because RFC 4475 exercises exactly the places where generic parsers go wrong:
//!
//! - header line folding (§7.3.1): a line starting with SP/HTAB continues the previous header
//!   and is replaced by a single space;
//! - header names are case-insensitive and have compact forms (§7.3.3, `i`, `m`, `v`, `l`, ...);
//! - `LWS` may appear around `:` , `/` in Via, `;` and `=` in parameters (§25.1);
//! - the start line uses exactly single spaces (§7.1, §7.2; RFC 4475 §3.1.2.9/10);
//! - Content-Length must be a plain number not larger than the bytes received (§18.3,
//!   RFC 4475 §3.1.2.2/3); over WebSocket (RFC 7118 §5) one WS message is one SIP message, so a
//!   missing Content-Length means "the rest of the frame" and extra bytes are discarded.
//! - Request-URIs must not carry `?headers` (§19.1.1) nor angle brackets (RFC 4475 §3.1.2.7),
//!   IPv6 references must be bracketed and valid (RFC 5118 §4.2, §4.10).
//!
//! Structured header values (URIs, name-addr, Via, CSeq) are parsed on demand by accessor
//! methods on [`Message`]; [`parse`] runs them once for the headers every transaction needs so
//! that a message that passes `parse` can be handled without further error paths.

use std::fmt::{self, Write as _};
use std::net::Ipv6Addr;

use crate::error::SipError;

/// RFC 3261 methods the core knows, plus extensions by name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    /// INVITE (§13).
    Invite,
    /// ACK (§13, §17).
    Ack,
    /// BYE (§15).
    Bye,
    /// CANCEL (§9).
    Cancel,
    /// OPTIONS (§11).
    Options,
    /// REGISTER (§10).
    Register,
    /// MESSAGE (RFC 3428).
    Message,
    /// UPDATE (RFC 3311).
    Update,
    /// REFER (RFC 3515).
    Refer,
    /// NOTIFY (RFC 6665).
    Notify,
    /// INFO (RFC 6086).
    Info,
    /// Any other token, kept verbatim (method names are case-sensitive, §7.1).
    Other(String),
}

impl Method {
    /// Maps a method token to a `Method`. Method names are case-sensitive (§7.1).
    pub fn from_token(token: &str) -> Method {
        match token {
            "INVITE" => Method::Invite,
            "ACK" => Method::Ack,
            "BYE" => Method::Bye,
            "CANCEL" => Method::Cancel,
            "OPTIONS" => Method::Options,
            "REGISTER" => Method::Register,
            "MESSAGE" => Method::Message,
            "UPDATE" => Method::Update,
            "REFER" => Method::Refer,
            "NOTIFY" => Method::Notify,
            "INFO" => Method::Info,
            other => Method::Other(other.to_owned()),
        }
    }
    /// The method token.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Options => "OPTIONS",
            Method::Register => "REGISTER",
            Method::Message => "MESSAGE",
            Method::Update => "UPDATE",
            Method::Refer => "REFER",
            Method::Notify => "NOTIFY",
            Method::Info => "INFO",
            Method::Other(s) => s,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The first line of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartLine {
    /// `Method SP Request-URI SP SIP/2.0`
    Request {
        /// The method.
        method: Method,
        /// The Request-URI.
        uri: Uri,
    },
    /// `SIP/2.0 SP Status-Code SP Reason-Phrase`
    Response {
        /// 100..=699.
        status: u16,
        /// May be empty (RFC 4475 §3.1.1.13) and may be UTF-8 (§3.1.1.12).
        reason: String,
    },
}

/// One header field, unfolded, with its name in canonical spelling for known headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Canonical name (`Call-ID`, `Via`, ...) or the name as received for unknown headers.
    pub name: String,
    /// The value with folding replaced by single spaces and outer whitespace trimmed.
    pub value: String,
}

/// A generic `;name[=value]` parameter (URI or header parameter).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    /// Parameter name as received.
    pub name: String,
    /// Value, unquoted form kept as received (quoted strings keep their quotes).
    pub value: Option<String>,
}

fn find_param<'a>(params: &'a [Param], name: &str) -> Option<&'a Param> {
    params.iter().find(|p| p.name.eq_ignore_ascii_case(name))
}

/// A URI: SIP/SIPS URIs are parsed into parts (§19.1), other schemes are kept opaque.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uri {
    /// Lower-case scheme (`sip`, `sips`, `tel`, ...).
    pub scheme: String,
    /// User part, still %-escaped (RFC 4475 §3.1.1.3 expects escapes to survive).
    pub user: Option<String>,
    /// Password part (deprecated, §19.1.1), still escaped.
    pub password: Option<String>,
    /// Host: a name, IPv4 address, or bracketed IPv6 reference (`[2001:db8::1]`).
    pub host: String,
    /// Port, if given.
    pub port: Option<u16>,
    /// URI parameters.
    pub params: Vec<Param>,
    /// The `?headers` part without the `?`.
    pub headers: Option<String>,
    /// For non-SIP schemes, everything after the `:`.
    pub opaque: Option<String>,
}

impl Uri {
    /// Parses a URI. SIP and SIPS URIs are validated (§19.1.1, §25.1); other schemes only
    /// need to be free of whitespace and delimiters.
    pub fn parse(text: &str) -> Result<Uri, SipError> {
        let bad = |d: &str| SipError::InvalidUri {
            uri: text.to_owned(),
            reason: d.to_owned(),
        };
        let colon = text.find(':').ok_or_else(|| bad("no scheme"))?;
        let scheme = &text[..colon];
        let scheme_ok = scheme
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        if !scheme_ok {
            return Err(bad("bad scheme"));
        }
        if text
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control() || b"<>\"".contains(&b))
        {
            return Err(bad("whitespace, control character or delimiter in URI"));
        }
        let scheme = scheme.to_ascii_lowercase();
        let rest = &text[colon + 1..];
        if scheme != "sip" && scheme != "sips" {
            if rest.is_empty() {
                return Err(bad("empty URI"));
            }
            return Ok(Uri {
                scheme,
                user: None,
                password: None,
                host: String::new(),
                port: None,
                params: Vec::new(),
                headers: None,
                opaque: Some(rest.to_owned()),
            });
        }
        // userinfo may itself contain ';', '?', '/', ',' (RFC 4475 §3.1.1.2, §3.1.1.9), but
        // never an unescaped '@', so the first '@' ends it.
        let (userinfo, hostpart) = match rest.find('@') {
            Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
            None => (None, rest),
        };
        let (user, password) = match userinfo {
            Some(ui) => {
                let (u, p) = match ui.find(':') {
                    Some(c) => (&ui[..c], Some(ui[c + 1..].to_owned())),
                    None => (ui, None),
                };
                if u.is_empty() {
                    return Err(bad("empty user part"));
                }
                (Some(u.to_owned()), p)
            }
            None => (None, None),
        };
        let (hostpart, headers) = match hostpart.find('?') {
            Some(q) => (&hostpart[..q], Some(hostpart[q + 1..].to_owned())),
            None => (hostpart, None),
        };
        let (hostport, params_text) = match hostpart.find(';') {
            Some(s) => (&hostpart[..s], &hostpart[s..]),
            None => (hostpart, ""),
        };
        let (host, port) = parse_hostport(hostport).map_err(|d| bad(&d))?;
        let mut params = Vec::new();
        for p in params_text.split(';').skip(1) {
            if p.is_empty() {
                return Err(bad("empty URI parameter"));
            }
            let (n, v) = match p.find('=') {
                Some(e) => (&p[..e], Some(p[e + 1..].to_owned())),
                None => (p, None),
            };
            if n.is_empty() {
                return Err(bad("empty URI parameter name"));
            }
            params.push(Param {
                name: n.to_owned(),
                value: v,
            });
        }
        Ok(Uri {
            scheme,
            user,
            password,
            host,
            port,
            params,
            headers,
            opaque: None,
        })
    }

    /// True for `sip:` and `sips:` URIs.
    pub fn is_sip(&self) -> bool {
        self.opaque.is_none()
    }

    /// A URI parameter by case-insensitive name.
    pub fn param(&self, name: &str) -> Option<&Param> {
        find_param(&self.params, name)
    }

    /// True if the URI carries the loose-routing flag `;lr` (§19.1.1).
    pub fn is_loose_route(&self) -> bool {
        self.param("lr").is_some()
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.scheme)?;
        if let Some(opaque) = &self.opaque {
            return f.write_str(opaque);
        }
        if let Some(user) = &self.user {
            f.write_str(user)?;
            if let Some(pw) = &self.password {
                write!(f, ":{pw}")?;
            }
            f.write_char('@')?;
        }
        f.write_str(&self.host)?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        for p in &self.params {
            write!(f, ";{}", p.name)?;
            if let Some(v) = &p.value {
                write!(f, "={v}")?;
            }
        }
        if let Some(h) = &self.headers {
            write!(f, "?{h}")?;
        }
        Ok(())
    }
}

/// Parses `host[:port]` where host is a name, IPv4 address or `[IPv6]` (RFC 5118).
fn parse_hostport(text: &str) -> Result<(String, Option<u16>), String> {
    let (host, port_text) = if let Some(inner) = text.strip_prefix('[') {
        let close = inner.find(']').ok_or("unterminated IPv6 reference")?;
        let addr = &inner[..close];
        addr.parse::<Ipv6Addr>()
            .map_err(|_| format!("invalid IPv6 address {addr:?}"))?;
        let after = &inner[close + 1..];
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => return Err("garbage after IPv6 reference".into()),
        };
        (format!("[{addr}]"), port)
    } else {
        match text.find(':') {
            Some(c) => (text[..c].to_owned(), Some(&text[c + 1..])),
            None => (text.to_owned(), None),
        }
    };
    if host.is_empty() {
        return Err("empty host".into());
    }
    if !host.starts_with('[')
        && !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_')
    {
        return Err(format!("invalid host {host:?}"));
    }
    let port = match port_text {
        Some(p) => {
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("invalid port {p:?}"));
            }
            Some(
                p.parse::<u16>()
                    .map_err(|_| format!("port {p} out of range"))?,
            )
        }
        None => None,
    };
    Ok((host, port))
}

/// `name-addr` / `addr-spec` with header parameters (From, To, Contact, Route, ... §20.10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    /// Display name without quotes and with quoted-pairs resolved.
    pub display_name: Option<String>,
    /// The address.
    pub uri: Uri,
    /// Header parameters (`tag`, `expires`, `+sip.instance`, ...).
    pub params: Vec<Param>,
}

impl NameAddr {
    /// A header parameter by case-insensitive name.
    pub fn param(&self, name: &str) -> Option<&Param> {
        find_param(&self.params, name)
    }
    /// The `tag` parameter value.
    pub fn tag(&self) -> Option<&str> {
        self.param("tag").and_then(|p| p.value.as_deref())
    }
    /// Parses one name-addr or addr-spec with its parameters.
    pub fn parse(text: &str) -> Result<NameAddr, SipError> {
        parse_name_addr(text)
    }
}

impl fmt::Display for NameAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(d) = &self.display_name {
            f.write_char('"')?;
            for c in d.chars() {
                if c == '"' || c == '\\' {
                    f.write_char('\\')?;
                }
                f.write_char(c)?;
            }
            f.write_str("\" ")?;
        }
        write!(f, "<{}>", self.uri)?;
        for p in &self.params {
            write!(f, ";{}", p.name)?;
            if let Some(v) = &p.value {
                write!(f, "={v}")?;
            }
        }
        Ok(())
    }
}

/// One Via entry (§20.42).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    /// Upper-case transport (`UDP`, `TCP`, `WS`, `WSS`, or an unknown token).
    pub transport: String,
    /// Sent-by host.
    pub host: String,
    /// Sent-by port.
    pub port: Option<u16>,
    /// Via parameters.
    pub params: Vec<Param>,
}

impl Via {
    /// The `branch` parameter.
    pub fn branch(&self) -> Option<&str> {
        find_param(&self.params, "branch").and_then(|p| p.value.as_deref())
    }
    /// `host[:port]`, as compared in server transaction matching (§17.2.3).
    pub fn sent_by(&self) -> String {
        match self.port {
            Some(p) => format!("{}:{p}", self.host.to_ascii_lowercase()),
            None => self.host.to_ascii_lowercase(),
        }
    }
}

/// The CSeq header (§20.16).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq {
    /// Sequence number, less than 2**31 (§8.1.1.5).
    pub seq: u32,
    /// Method.
    pub method: Method,
}

/// A SIP request or response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Request or status line.
    pub start: StartLine,
    /// Header fields in received order.
    pub headers: Vec<Header>,
    /// Body bytes (exactly Content-Length of them).
    pub body: Vec<u8>,
}

/// Known header names in canonical spelling, with compact forms (§7.3.3, RFC 3841, 4474...).
const KNOWN_HEADERS: &[(&str, Option<&str>)] = &[
    ("Accept", None),
    ("Allow", None),
    ("Authorization", None),
    ("Call-ID", Some("i")),
    ("Contact", Some("m")),
    ("Content-Encoding", Some("e")),
    ("Content-Length", Some("l")),
    ("Content-Type", Some("c")),
    ("CSeq", None),
    ("Event", Some("o")),
    ("Expires", None),
    ("Flow-Timer", None),
    ("From", Some("f")),
    ("Max-Forwards", None),
    ("Min-Expires", None),
    ("Path", None),
    ("Proxy-Authenticate", None),
    ("Proxy-Authorization", None),
    ("Proxy-Require", None),
    ("Record-Route", None),
    ("Refer-To", Some("r")),
    ("Referred-By", Some("b")),
    ("Require", None),
    ("Route", None),
    ("Server", None),
    ("Subject", Some("s")),
    ("Supported", Some("k")),
    ("To", Some("t")),
    ("Unsupported", None),
    ("User-Agent", None),
    ("Via", Some("v")),
    ("Warning", None),
    ("WWW-Authenticate", None),
    ("Allow-Events", Some("u")),
    ("Session-Expires", Some("x")),
    ("Identity", Some("y")),
];

/// Canonical spelling of a header name: compact forms expanded, known names re-cased.
pub fn canonical_header_name(name: &str) -> String {
    for (full, compact) in KNOWN_HEADERS {
        if full.eq_ignore_ascii_case(name) || compact.is_some_and(|c| c.eq_ignore_ascii_case(name))
        {
            return (*full).to_owned();
        }
    }
    name.to_owned()
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-.!%*_+`'~".contains(c)
}

fn is_token(s: &str) -> bool {
    !s.is_empty() && s.chars().all(is_token_char)
}

fn is_lws(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// Parses exactly one SIP message from one WebSocket message (RFC 7118 §5). Bytes beyond
/// Content-Length are discarded as for datagrams (§18.3).
pub fn parse(input: &[u8]) -> Result<Message, SipError> {
    parse_prefix(input).map(|(m, _)| m)
}

/// Parses the first message of a byte stream; returns it and the number of bytes it used.
/// On a stream Content-Length is mandatory (§18.3), so its absence is an error here.
pub fn parse_stream(input: &[u8]) -> Result<(Message, usize), SipError> {
    let (msg, used) = parse_prefix(input)?;
    if msg.header("Content-Length").is_none() {
        return Err(SipError::malformed(
            "Content-Length",
            "missing on a stream transport",
        ));
    }
    Ok((msg, used))
}

fn parse_prefix(input: &[u8]) -> Result<(Message, usize), SipError> {
    // Tolerate leading CRLFs (keepalives, §7.5) before the start line.
    let mut start = 0;
    while input[start..].starts_with(b"\r\n") {
        start += 2;
    }
    let input_rest = &input[start..];
    let (head_len, sep_len) = find_header_end(input_rest)
        .ok_or_else(|| SipError::malformed("message", "no empty line after the headers"))?;
    let head = std::str::from_utf8(&input_rest[..head_len])
        .map_err(|_| SipError::malformed("message", "header section is not UTF-8"))?;
    let body_start = head_len + sep_len;
    let available = input_rest.len() - body_start;

    let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let first = lines
        .next()
        .ok_or_else(|| SipError::malformed("start line", "empty message"))?;
    let start_line = parse_start_line(first)?;

    let mut headers: Vec<Header> = Vec::new();
    for line in lines {
        if line.starts_with([' ', '\t']) {
            // Folding (§7.3.1): continuation of the previous header value.
            let last = headers.last_mut().ok_or_else(|| {
                SipError::malformed("header", "continuation line before any header")
            })?;
            let cont = line.trim_matches(is_lws);
            if !cont.is_empty() {
                if !last.value.is_empty() {
                    last.value.push(' ');
                }
                last.value.push_str(cont);
            }
            continue;
        }
        let colon = line
            .find(':')
            .ok_or_else(|| SipError::malformed("header", format!("no colon in {line:?}")))?;
        let name = line[..colon].trim_end_matches(is_lws);
        if !is_token(name) {
            return Err(SipError::malformed(
                "header",
                format!("invalid header name {name:?}"),
            ));
        }
        headers.push(Header {
            name: canonical_header_name(name),
            value: line[colon + 1..].trim_matches(is_lws).to_owned(),
        });
    }

    let body_len = match headers
        .iter()
        .find(|h| h.name == "Content-Length")
        .map(|h| h.value.as_str())
    {
        Some(v) => {
            if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(SipError::malformed(
                    "Content-Length",
                    format!("not a number: {v:?}"),
                ));
            }
            let n: usize = v
                .parse()
                .map_err(|_| SipError::malformed("Content-Length", "too large"))?;
            if n > available {
                return Err(SipError::malformed(
                    "Content-Length",
                    format!("says {n} bytes but only {available} follow"),
                ));
            }
            n
        }
        None => available,
    };
    let msg = Message {
        start: start_line,
        headers,
        body: input_rest[body_start..body_start + body_len].to_vec(),
    };
    msg.validate()?;
    Ok((msg, start + body_start + body_len))
}

/// Returns (length of header section, length of the blank-line separator).
fn find_header_end(input: &[u8]) -> Option<(usize, usize)> {
    let crlf = input.windows(4).position(|w| w == b"\r\n\r\n");
    let lf = input.windows(2).position(|w| w == b"\n\n");
    match (crlf, lf) {
        (Some(c), Some(l)) if l < c => Some((l, 2)),
        (Some(c), _) => Some((c, 4)),
        (None, Some(l)) => Some((l, 2)),
        (None, None) => None,
    }
}

fn parse_start_line(line: &str) -> Result<StartLine, SipError> {
    if let Some(rest) = line.strip_prefix("SIP/") {
        // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase (§7.2)
        let (version, rest) = rest
            .split_once(' ')
            .ok_or_else(|| SipError::malformed("status line", "no status code"))?;
        if version != "2.0" {
            return Err(SipError::UnsupportedVersion(format!("SIP/{version}")));
        }
        let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(SipError::malformed(
                "status line",
                format!("status code {code:?} is not 3 digits"),
            ));
        }
        let status: u16 = code
            .parse()
            .map_err(|_| SipError::malformed("status line", "bad status code"))?;
        if !(100..=699).contains(&status) {
            return Err(SipError::malformed(
                "status line",
                format!("status {status} out of range"),
            ));
        }
        if reason.chars().any(|c| c == '\r' || c == '\n') {
            return Err(SipError::malformed("status line", "CR/LF in reason"));
        }
        return Ok(StartLine::Response {
            status,
            reason: reason.to_owned(),
        });
    }
    // Request-Line = Method SP Request-URI SP SIP-Version (§7.1), single spaces only.
    let parts: Vec<&str> = line.split(' ').collect();
    let [method, uri, version] = parts.as_slice() else {
        return Err(SipError::malformed(
            "request line",
            "expected exactly three elements separated by single spaces",
        ));
    };
    if !is_token(method) {
        return Err(SipError::malformed(
            "request line",
            format!("invalid method {method:?}"),
        ));
    }
    match version.strip_prefix("SIP/") {
        Some("2.0") => {}
        Some(_) => return Err(SipError::UnsupportedVersion((*version).to_owned())),
        None => {
            return Err(SipError::malformed(
                "request line",
                format!("bad version {version:?}"),
            ));
        }
    }
    let uri = Uri::parse(uri).map_err(|e| SipError::malformed("Request-URI", e.to_string()))?;
    if uri.headers.is_some() {
        // §19.1.1 table: headers are not allowed in a Request-URI (RFC 4475 §3.1.2.11).
        return Err(SipError::malformed(
            "Request-URI",
            "URI headers are not allowed in a Request-URI",
        ));
    }
    Ok(StartLine::Request {
        method: Method::from_token(method),
        uri,
    })
}

/// Splits a header value on commas that are outside quotes and angle brackets.
pub fn split_list(value: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut in_quote = false;
    let mut in_angle = false;
    let mut escaped = false;
    let mut start = 0;
    for (i, c) in value.char_indices() {
        if in_quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_quote = false;
            }
            continue;
        }
        match c {
            '"' => in_quote = true,
            '<' => in_angle = true,
            '>' => in_angle = false,
            ',' if !in_angle => {
                out.push(value[start..i].trim_matches(is_lws));
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(value[start..].trim_matches(is_lws));
    out
}

/// Reads a quoted-string starting at `s[0] == '"'`; returns (unescaped content, bytes used).
fn read_quoted(s: &str) -> Result<(String, usize), SipError> {
    let mut out = String::new();
    let mut chars = s.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, i + 1)),
            '\\' => match chars.next() {
                Some((_, e)) if e != '\r' && e != '\n' => out.push(e),
                _ => return Err(SipError::malformed("quoted string", "bad escape")),
            },
            _ => out.push(c),
        }
    }
    Err(SipError::malformed("quoted string", "unterminated quote"))
}

/// Parses `*( SWS ";" SWS name [ SWS "=" SWS value ] )` (§25.1 generic-param with LWS).
fn parse_params(mut s: &str, what: &'static str) -> Result<Vec<Param>, SipError> {
    let mut params = Vec::new();
    loop {
        s = s.trim_start_matches(is_lws);
        if s.is_empty() {
            return Ok(params);
        }
        s = s
            .strip_prefix(';')
            .ok_or_else(|| SipError::malformed(what, format!("unexpected {s:?}")))?
            .trim_start_matches(is_lws);
        let name_end = s.find(|c: char| !is_token_char(c)).unwrap_or(s.len());
        let name = &s[..name_end];
        if name.is_empty() {
            return Err(SipError::malformed(what, "empty parameter"));
        }
        s = s[name_end..].trim_start_matches(is_lws);
        let value = if let Some(rest) = s.strip_prefix('=') {
            let rest = rest.trim_start_matches(is_lws);
            if rest.starts_with('"') {
                let (_, used) = read_quoted(rest)?;
                s = &rest[used..];
                Some(rest[..used].to_owned())
            } else {
                let end = rest
                    .find(|c: char| c == ';' || c == ',' || is_lws(c))
                    .unwrap_or(rest.len());
                if end == 0 {
                    return Err(SipError::malformed(
                        what,
                        format!("parameter {name} has no value"),
                    ));
                }
                s = &rest[end..];
                Some(rest[..end].to_owned())
            }
        } else {
            None
        };
        params.push(Param {
            name: name.to_owned(),
            value,
        });
    }
}

fn parse_name_addr(text: &str) -> Result<NameAddr, SipError> {
    const WHAT: &str = "address";
    let s = text.trim_matches(is_lws);
    let (display_name, rest) = if s.starts_with('"') {
        let (d, used) = read_quoted(s)?;
        let rest = s[used..].trim_start_matches(is_lws);
        if !rest.starts_with('<') {
            return Err(SipError::malformed(
                WHAT,
                "display name not followed by <URI>",
            ));
        }
        (Some(d), rest)
    } else if let Some(lt) = s.find('<') {
        let d = s[..lt].trim_matches(is_lws);
        // Unquoted display names are *(token LWS) (§25.1); RFC 4475 §3.1.2.15.
        if !d.chars().all(|c| is_token_char(c) || is_lws(c)) {
            return Err(SipError::malformed(
                WHAT,
                format!("display name {d:?} must be quoted"),
            ));
        }
        let d = d
            .split(is_lws)
            .filter(|t| !t.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        (if d.is_empty() { None } else { Some(d) }, &s[lt..])
    } else {
        (None, s)
    };
    let (uri_text, params_text) = if let Some(inner) = rest.strip_prefix('<') {
        let close = inner
            .find('>')
            .ok_or_else(|| SipError::malformed(WHAT, "missing '>'"))?;
        (&inner[..close], &inner[close + 1..])
    } else {
        // addr-spec: the URI ends at the first ';' or LWS; any ';' after it starts header
        // parameters (§20.10), and a '?' would need angle brackets (RFC 4475 §3.1.2.13).
        let end = rest
            .find(|c: char| c == ';' || is_lws(c))
            .unwrap_or(rest.len());
        let uri_text = &rest[..end];
        if uri_text.contains('?') || uri_text.contains(',') {
            return Err(SipError::malformed(
                WHAT,
                "URI with '?' or ',' must be enclosed in <>",
            ));
        }
        (uri_text, &rest[end..])
    };
    let uri = Uri::parse(uri_text).map_err(|e| SipError::malformed(WHAT, e.to_string()))?;
    let params = parse_params(params_text, WHAT)?;
    Ok(NameAddr {
        display_name,
        uri,
        params,
    })
}

fn parse_via(text: &str) -> Result<Via, SipError> {
    const WHAT: &str = "Via";
    let mut s = text.trim_matches(is_lws);
    let mut fields = Vec::with_capacity(3);
    for i in 0..3 {
        let end = s.find(|c: char| !is_token_char(c)).unwrap_or(s.len());
        if end == 0 {
            return Err(SipError::malformed(WHAT, "bad sent-protocol"));
        }
        fields.push(&s[..end]);
        s = s[end..].trim_start_matches(is_lws);
        if i < 2 {
            s = s
                .strip_prefix('/')
                .ok_or_else(|| SipError::malformed(WHAT, "expected '/' in sent-protocol"))?
                .trim_start_matches(is_lws);
        }
    }
    if !fields[0].eq_ignore_ascii_case("SIP") {
        return Err(SipError::malformed(WHAT, "protocol is not SIP"));
    }
    if fields[1] != "2.0" {
        return Err(SipError::UnsupportedVersion(format!("SIP/{}", fields[1])));
    }
    let host_end = if s.starts_with('[') {
        s.find(']').map(|i| i + 1).unwrap_or(s.len())
    } else {
        0
    };
    let end = s[host_end..]
        .find(|c: char| c == ';' || is_lws(c))
        .map(|i| i + host_end)
        .unwrap_or(s.len());
    let (host, port) = parse_hostport(&s[..end]).map_err(|d| SipError::malformed(WHAT, d))?;
    let params = parse_params(&s[end..], WHAT)?;
    Ok(Via {
        transport: fields[2].to_ascii_uppercase(),
        host,
        port,
        params,
    })
}

fn parse_cseq(text: &str) -> Result<CSeq, SipError> {
    let mut it = text.split(is_lws).filter(|t| !t.is_empty());
    let (Some(num), Some(method), None) = (it.next(), it.next(), it.next()) else {
        return Err(SipError::malformed("CSeq", "expected '<number> <method>'"));
    };
    if !num.bytes().all(|b| b.is_ascii_digit()) || !is_token(method) {
        return Err(SipError::malformed("CSeq", format!("invalid {text:?}")));
    }
    // §8.1.1.5: the sequence number MUST be expressible as a 32-bit unsigned integer and less
    // than 2**31 (RFC 4475 §3.1.2.4/5).
    let seq: u32 = num.parse().ok().filter(|n| *n < 1 << 31).ok_or_else(|| {
        SipError::malformed("CSeq", format!("sequence number {num} out of range"))
    })?;
    Ok(CSeq {
        seq,
        method: Method::from_token(method),
    })
}

impl Message {
    /// A new request with no headers.
    pub fn new_request(method: Method, uri: Uri) -> Message {
        Message {
            start: StartLine::Request { method, uri },
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A new response with no headers.
    pub fn new_response(status: u16, reason: &str) -> Message {
        Message {
            start: StartLine::Response {
                status,
                reason: reason.to_owned(),
            },
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// The method of a request.
    pub fn method(&self) -> Option<&Method> {
        match &self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    /// The Request-URI of a request.
    pub fn request_uri(&self) -> Option<&Uri> {
        match &self.start {
            StartLine::Request { uri, .. } => Some(uri),
            StartLine::Response { .. } => None,
        }
    }

    /// The status code of a response.
    pub fn status(&self) -> Option<u16> {
        match &self.start {
            StartLine::Response { status, .. } => Some(*status),
            StartLine::Request { .. } => None,
        }
    }

    /// The reason phrase of a response (empty for requests).
    pub fn reason(&self) -> &str {
        match &self.start {
            StartLine::Response { reason, .. } => reason,
            StartLine::Request { .. } => "",
        }
    }

    /// First value of a header (name compared after canonicalisation).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = canonical_header_name(name);
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(&name))
            .map(|h| h.value.as_str())
    }

    /// All header lines with this name, in order.
    pub fn header_values<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a str> + 'a {
        let name = canonical_header_name(name);
        self.headers
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(&name))
            .map(|h| h.value.as_str())
    }

    /// All comma-separated elements of all header lines with this name (§7.3.1).
    pub fn list_header<'a>(&'a self, name: &str) -> Vec<&'a str> {
        self.header_values(name)
            .flat_map(split_list)
            .collect::<Vec<_>>()
    }

    /// True if a comma-list header (Supported, Require, ...) contains `option`.
    pub fn has_option(&self, header: &str, option: &str) -> bool {
        self.list_header(header)
            .iter()
            .any(|o| o.eq_ignore_ascii_case(option))
    }

    /// Appends a header line.
    pub fn push_header(&mut self, name: &str, value: impl Into<String>) {
        self.headers.push(Header {
            name: canonical_header_name(name),
            value: value.into(),
        });
    }

    /// Removes all header lines with this name.
    pub fn remove_header(&mut self, name: &str) {
        let name = canonical_header_name(name);
        self.headers.retain(|h| !h.name.eq_ignore_ascii_case(&name));
    }

    /// All Via entries, top first.
    pub fn vias(&self) -> Result<Vec<Via>, SipError> {
        let items = self.list_header("Via");
        if items.is_empty() {
            return Err(SipError::malformed("Via", "missing"));
        }
        items.into_iter().map(parse_via).collect()
    }

    /// The topmost Via.
    pub fn top_via(&self) -> Result<Via, SipError> {
        let first = self
            .list_header("Via")
            .into_iter()
            .next()
            .ok_or_else(|| SipError::malformed("Via", "missing"))?;
        parse_via(first)
    }

    /// The CSeq header.
    pub fn cseq(&self) -> Result<CSeq, SipError> {
        parse_cseq(
            self.header("CSeq")
                .ok_or_else(|| SipError::malformed("CSeq", "missing"))?,
        )
    }

    /// The Call-ID.
    pub fn call_id(&self) -> Result<&str, SipError> {
        let v = self
            .header("Call-ID")
            .ok_or_else(|| SipError::malformed("Call-ID", "missing"))?;
        if v.is_empty() || v.contains(is_lws) {
            return Err(SipError::malformed("Call-ID", format!("invalid {v:?}")));
        }
        Ok(v)
    }

    /// The From header.
    pub fn from(&self) -> Result<NameAddr, SipError> {
        let v = self
            .header("From")
            .ok_or_else(|| SipError::malformed("From", "missing"))?;
        parse_name_addr(v).map_err(|e| rename(e, "From"))
    }

    /// The To header.
    pub fn to(&self) -> Result<NameAddr, SipError> {
        let v = self
            .header("To")
            .ok_or_else(|| SipError::malformed("To", "missing"))?;
        parse_name_addr(v).map_err(|e| rename(e, "To"))
    }

    /// Contact entries (a `*` wildcard yields an empty list).
    pub fn contacts(&self) -> Result<Vec<NameAddr>, SipError> {
        self.name_addr_list("Contact")
            .map_err(|e| rename(e, "Contact"))
    }

    /// Record-Route entries in received order.
    pub fn record_routes(&self) -> Result<Vec<NameAddr>, SipError> {
        self.name_addr_list("Record-Route")
            .map_err(|e| rename(e, "Record-Route"))
    }

    /// Route entries in received order.
    pub fn routes(&self) -> Result<Vec<NameAddr>, SipError> {
        self.name_addr_list("Route").map_err(|e| rename(e, "Route"))
    }

    fn name_addr_list(&self, name: &str) -> Result<Vec<NameAddr>, SipError> {
        let mut out = Vec::new();
        for item in self.list_header(name) {
            if item == "*" && name == "Contact" {
                continue;
            }
            out.push(parse_name_addr(item)?);
        }
        Ok(out)
    }

    /// The media type of the body (`type/subtype`, lower case, parameters dropped).
    pub fn content_type(&self) -> Option<String> {
        self.header("Content-Type").map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .chars()
                .filter(|c| !is_lws(*c))
                .collect::<String>()
                .to_ascii_lowercase()
        })
    }

    /// Checks the headers every transaction relies on (§8.1.1, §8.2.2, §20).
    fn validate(&self) -> Result<(), SipError> {
        self.vias()?;
        let cseq = self.cseq()?;
        self.call_id()?;
        self.from()?;
        self.to()?;
        self.contacts()?;
        self.record_routes()?;
        self.routes()?;
        if let Some(mf) = self.header("Max-Forwards")
            && (mf.is_empty() || !mf.bytes().all(|b| b.is_ascii_digit()) || mf.len() > 10)
        {
            return Err(SipError::malformed(
                "Max-Forwards",
                format!("invalid {mf:?}"),
            ));
        }
        if let Some(method) = self.method()
            && *method != cseq.method
        {
            // RFC 4475 §3.1.2.17/18: the CSeq method must match the request method.
            return Err(SipError::malformed(
                "CSeq",
                format!(
                    "method {} does not match request method {method}",
                    cseq.method
                ),
            ));
        }
        Ok(())
    }

    /// Serializes the message; Content-Length is always written from the actual body.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = String::with_capacity(512);
        match &self.start {
            StartLine::Request { method, uri } => {
                let _ = write!(out, "{method} {uri} SIP/2.0\r\n");
            }
            StartLine::Response { status, reason } => {
                let _ = write!(out, "SIP/2.0 {status} {reason}\r\n");
            }
        }
        for h in self.headers.iter().filter(|h| h.name != "Content-Length") {
            let _ = write!(out, "{}: {}\r\n", h.name, h.value);
        }
        let _ = write!(out, "Content-Length: {}\r\n\r\n", self.body.len());
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }
}

fn rename(e: SipError, what: &'static str) -> SipError {
    match e {
        SipError::Malformed { detail, .. } => SipError::Malformed { what, detail },
        other => other,
    }
}

/// A tolerant extractor for messages that failed [`parse`]: finds the start line and the raw
/// values of Via, From, To, Call-ID and CSeq so a 400 can still be sent (§8.2 / §21.4.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Salvaged {
    /// The request method token, if the first line looks like a request.
    pub method: Option<String>,
    /// Raw Via values (each a whole header line value), in order.
    pub vias: Vec<String>,
    /// Raw From value.
    pub from: String,
    /// Raw To value.
    pub to: String,
    /// Raw Call-ID value.
    pub call_id: String,
    /// Raw CSeq value.
    pub cseq: String,
}

/// Salvages the fields needed to answer a malformed request; `None` when they are not there.
pub fn salvage(input: &[u8]) -> Option<Salvaged> {
    let text = String::from_utf8_lossy(input);
    let head = text.split("\r\n\r\n").next().unwrap_or("");
    let mut lines = head.split('\n').map(|l| l.trim_end_matches('\r'));
    let first = lines.next()?;
    let method = if first.starts_with("SIP/") {
        None
    } else {
        let m = first.split(' ').find(|t| !t.is_empty())?;
        Some(m.to_owned()).filter(|m| is_token(m))
    };
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in lines {
        if line.starts_with([' ', '\t']) {
            if let Some(last) = fields.last_mut() {
                last.1.push(' ');
                last.1.push_str(line.trim());
            }
            continue;
        }
        if let Some((n, v)) = line.split_once(':') {
            fields.push((canonical_header_name(n.trim()), v.trim().to_owned()));
        }
    }
    let get = |n: &str| {
        fields
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty() && !v.contains(['\r', '\n']))
    };
    let vias: Vec<String> = fields
        .iter()
        .filter(|(k, _)| k == "Via")
        .map(|(_, v)| v.clone())
        .collect();
    if vias.is_empty() {
        return None;
    }
    Some(Salvaged {
        method,
        vias,
        from: get("From")?,
        to: get("To")?,
        call_id: get("Call-ID")?,
        cseq: get("CSeq")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_structure() {
        let raw = b"INVITE sip:bob@example.com SIP/2.0\r\nv: SIP/2.0/WS a.invalid;branch=z9hG4bK1\r\nf: <sip:a@example.com>;tag=1\r\nt: sip:bob@example.com\r\ni: x@y\r\nCSeq: 1 INVITE\r\nl: 3\r\n\r\nabc";
        let m = parse(raw).unwrap();
        assert_eq!(m.header("Call-ID"), Some("x@y"));
        assert_eq!(m.body, b"abc");
        let again = parse(&m.to_bytes()).unwrap();
        assert_eq!(again.headers.len(), m.headers.len());
        assert_eq!(again.top_via().unwrap().branch(), Some("z9hG4bK1"));
    }

    #[test]
    fn uri_with_ipv6_and_params() {
        let u = Uri::parse("sip:alice@[2001:db8::1]:5060;transport=ws;lr").unwrap();
        assert_eq!(u.host, "[2001:db8::1]");
        assert_eq!(u.port, Some(5060));
        assert!(u.is_loose_route());
        assert_eq!(
            u.to_string(),
            "sip:alice@[2001:db8::1]:5060;transport=ws;lr"
        );
    }

    #[test]
    fn name_addr_forms() {
        let n = NameAddr::parse("\"A \\\"B\\\"\" <sip:a@b.c;ob>;tag=x ; expires = 60").unwrap();
        assert_eq!(n.display_name.as_deref(), Some("A \"B\""));
        assert_eq!(n.tag(), Some("x"));
        assert_eq!(n.param("expires").unwrap().value.as_deref(), Some("60"));
        assert!(NameAddr::parse("sip:a@b?x=y").is_err());
    }
}
