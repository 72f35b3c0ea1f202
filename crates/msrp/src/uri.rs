//! MSRP URIs (RFC 4975 §6, §9): `msrp://host:port/session-id;transport`, and `msrps://` for TLS.
//!
//! Over WebSocket (RFC 7977 §5.2) the transport parameter is `ws` and a client's own host is an
//! invented `.invalid` name: nothing ever connects to it, it only names the session. A relay's
//! own URI (the To-Path of an AUTH, RFC 4976 §5.1) has no session id.
//!
//! Comparison (RFC 4975 §6.1): scheme, host (case-insensitive), port, session id
//! (case-sensitive) and transport (case-insensitive) must match.

use std::fmt;

use crate::error::MsrpError;

/// One MSRP URI.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MsrpUri {
    /// `msrps` (true) or `msrp`.
    pub secure: bool,
    /// Host name or address literal as written (IPv6 with its brackets).
    pub host: String,
    /// Port, when written.
    pub port: Option<u16>,
    /// The session id (path component), absent in a relay's own URI.
    pub session_id: Option<String>,
    /// The transport parameter, e.g. `tcp` or `ws`.
    pub transport: String,
}

fn invalid(uri: &str, reason: &'static str) -> MsrpError {
    MsrpError::InvalidUri {
        uri: uri.chars().take(200).collect(),
        reason,
    }
}

fn is_unreserved_or_sub_delim(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~!$&'()*+,=:%".contains(c)
}

impl MsrpUri {
    /// Parses one URI.
    pub fn parse(text: &str) -> Result<Self, MsrpError> {
        let (secure, rest) = if let Some(rest) = strip_prefix_ci(text, "msrps://") {
            (true, rest)
        } else if let Some(rest) = strip_prefix_ci(text, "msrp://") {
            (false, rest)
        } else {
            return Err(invalid(text, "scheme must be msrp or msrps"));
        };
        // RFC 4975 §9: msrp-uri = msrp-scheme "://" authority ["/" session-id] ";" transport
        // *( ";" URI-parameter ). We accept exactly one transport and ignore other parameters.
        let (before_params, params) = rest
            .split_once(';')
            .ok_or_else(|| invalid(text, "the transport parameter is missing"))?;
        let (authority, session_id) = match before_params.split_once('/') {
            Some((authority, session)) => {
                if session.is_empty() || !session.chars().all(is_unreserved_or_sub_delim) {
                    return Err(invalid(text, "bad session id"));
                }
                (authority, Some(session.to_owned()))
            }
            None => (before_params, None),
        };
        // userinfo is allowed by the grammar but meaningless to us; drop it.
        let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (addr, after) = v6
                .split_once(']')
                .ok_or_else(|| invalid(text, "unterminated IPv6 literal"))?;
            let port = match after {
                "" => None,
                p => Some(parse_port(text, p.strip_prefix(':').unwrap_or("x"))?),
            };
            (format!("[{addr}]"), port)
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h.to_owned(), Some(parse_port(text, p)?)),
                None => (hostport.to_owned(), None),
            }
        };
        if host.is_empty()
            || !host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-[]:".contains(c))
        {
            return Err(invalid(text, "bad host"));
        }
        let transport = params.split(';').next().unwrap_or_default();
        if transport.is_empty()
            || !transport
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(invalid(text, "bad transport"));
        }
        Ok(MsrpUri {
            secure,
            host,
            port,
            session_id,
            transport: transport.to_ascii_lowercase(),
        })
    }

    /// Parses a whitespace-separated list of URIs (To-Path, From-Path, Use-Path, SDP `a=path`).
    pub fn parse_list(text: &str) -> Result<Vec<Self>, MsrpError> {
        let uris = text
            .split_ascii_whitespace()
            .map(MsrpUri::parse)
            .collect::<Result<Vec<_>, _>>()?;
        if uris.is_empty() {
            return Err(invalid(text, "empty path"));
        }
        Ok(uris)
    }

    /// RFC 4975 §6.1 equality (host and transport case-insensitively).
    pub fn same_as(&self, other: &MsrpUri) -> bool {
        self.secure == other.secure
            && self.host.eq_ignore_ascii_case(&other.host)
            && self.port == other.port
            && self.session_id == other.session_id
            && self.transport.eq_ignore_ascii_case(&other.transport)
    }
}

fn strip_prefix_ci<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

fn parse_port(uri: &str, port: &str) -> Result<u16, MsrpError> {
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(uri, "bad port"));
    }
    port.parse().map_err(|_| invalid(uri, "port out of range"))
}

impl fmt::Display for MsrpUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.secure { "msrps://" } else { "msrp://" })?;
        f.write_str(&self.host)?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        if let Some(session) = &self.session_id {
            write!(f, "/{session}")?;
        }
        write!(f, ";{}", self.transport)
    }
}

/// Writes a path as a space-separated list.
pub fn format_path(path: &[MsrpUri]) -> String {
    path.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rfc4975_uris() {
        let u = MsrpUri::parse("msrp://bob.example.com:8888/9di4eae923wzd;tcp").unwrap();
        assert_eq!(u.host, "bob.example.com");
        assert_eq!(u.port, Some(8888));
        assert_eq!(u.session_id.as_deref(), Some("9di4eae923wzd"));
        assert_eq!(u.transport, "tcp");
        assert_eq!(
            u.to_string(),
            "msrp://bob.example.com:8888/9di4eae923wzd;tcp"
        );
        let relay = MsrpUri::parse("msrp://127.0.0.1:5000;ws").unwrap();
        assert!(relay.session_id.is_none());
        assert_eq!(relay.to_string(), "msrp://127.0.0.1:5000;ws");
        let v6 = MsrpUri::parse("msrps://[2001:db8::1]:2855/abc;TCP").unwrap();
        assert!(v6.secure);
        assert_eq!(v6.host, "[2001:db8::1]");
        assert!(v6.same_as(&MsrpUri::parse("MSRPS://[2001:DB8::1]:2855/abc;tcp").unwrap()));
    }

    #[test]
    fn rejects_bad_uris() {
        for bad in [
            "http://a:1/b;tcp",
            "msrp://a:1/b",
            "msrp://:1/b;tcp",
            "msrp://a:99999/b;tcp",
            "msrp://a:1/;tcp",
            "msrp://a b:1/c;tcp",
            "msrp://a:1/c;",
            "msrp://[::1/c;tcp",
        ] {
            assert!(MsrpUri::parse(bad).is_err(), "{bad}");
        }
    }
}
