//! HTTP Digest authentication (RFC 7616, RFC 8760) as SIP (RFC 3261 §22.4) and MSRP relays
//! (RFC 4976 §5) use it: sans-IO arithmetic and header syntax, shared by `lyrebird-sip` and
//! `lyrebird-msrp` so that neither core depends on the other.
//!
//! A UAC answers `401` (WWW-Authenticate → Authorization) and `407` (Proxy-Authenticate →
//! Proxy-Authorization). Supported: algorithms MD5, MD5-sess, SHA-256, SHA-256-sess
//! (RFC 8760 §2 adds SHA-256 to SIP), `qop=auth` with nonce-count and cnonce (RFC 7616 §3.4),
//! and the legacy no-qop form of RFC 2069 (RFC 7616 §3.4.1 with qop absent, RFC 3261 §22.4).
//! `auth-int` is not offered: when a server offers only `auth-int` we fail rather than guess.
//! When several challenges are offered, SHA-256 is preferred over MD5 (RFC 8760 §2.4).

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
#![warn(missing_docs)]

use md5::{Digest as _, Md5};
use sha2::Sha256;
use thiserror::Error;

/// Why a credentials header could not be built.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DigestError {
    /// A value would break the header's quoted-string syntax.
    #[error("{0} contains a quote")]
    Unquotable(&'static str),
}

/// Digest hash algorithm (RFC 7616 §3.3, RFC 8760).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// MD5 (the RFC 3261 default when `algorithm` is absent).
    Md5,
    /// MD5-sess.
    Md5Sess,
    /// SHA-256.
    Sha256,
    /// SHA-256-sess.
    Sha256Sess,
}

impl Algorithm {
    fn parse(token: &str) -> Option<Algorithm> {
        match token.to_ascii_uppercase().as_str() {
            "MD5" => Some(Algorithm::Md5),
            "MD5-SESS" => Some(Algorithm::Md5Sess),
            "SHA-256" => Some(Algorithm::Sha256),
            "SHA-256-SESS" => Some(Algorithm::Sha256Sess),
            _ => None,
        }
    }
    /// The token as written in headers.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Md5Sess => "MD5-sess",
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Sha256Sess => "SHA-256-sess",
        }
    }
    fn strength(self) -> u8 {
        match self {
            Algorithm::Md5 | Algorithm::Md5Sess => 1,
            Algorithm::Sha256 | Algorithm::Sha256Sess => 2,
        }
    }
    fn is_sess(self) -> bool {
        matches!(self, Algorithm::Md5Sess | Algorithm::Sha256Sess)
    }
    /// Lower-case hex digest of `data` (the H() function of RFC 7616 §3.4.1).
    pub fn hash_hex(self, data: &str) -> String {
        match self {
            Algorithm::Md5 | Algorithm::Md5Sess => hex::encode(Md5::digest(data.as_bytes())),
            Algorithm::Sha256 | Algorithm::Sha256Sess => {
                hex::encode(Sha256::digest(data.as_bytes()))
            }
        }
    }
}

/// One parsed `Digest` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// realm
    pub realm: String,
    /// nonce
    pub nonce: String,
    /// opaque, echoed back verbatim
    pub opaque: Option<String>,
    /// algorithm
    pub algorithm: Algorithm,
    /// true if the server offered qop=auth
    pub qop_auth: bool,
    /// true if the server offered some qop but not auth (we cannot answer)
    pub qop_unsupported: bool,
    /// stale=true: the nonce expired but the credentials were right (RFC 7616 §3.3)
    pub stale: bool,
}

/// Splits `a=b, c="d,e"` auth-params.
fn auth_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let Some(eq) = rest.find('=') else { break };
        let name = rest[..eq]
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let after = rest[eq + 1..].trim_start();
        let (value, used) = if let Some(q) = after.strip_prefix('"') {
            let mut v = String::new();
            let mut end = None;
            let mut chars = q.char_indices();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            v.push(n);
                        }
                    }
                    '"' => {
                        end = Some(i + 2);
                        break;
                    }
                    _ => v.push(c),
                }
            }
            match end {
                Some(e) => (v, e),
                None => (v, after.len()),
            }
        } else {
            let e = after.find(',').unwrap_or(after.len());
            (after[..e].trim().to_owned(), e)
        };
        out.push((name, value));
        rest = after[used..]
            .trim_start()
            .trim_start_matches(',')
            .trim_start();
    }
    out
}

impl Challenge {
    /// Parses a WWW-Authenticate / Proxy-Authenticate value. Non-Digest schemes and unknown
    /// algorithms yield `None`.
    pub fn parse(value: &str) -> Option<Challenge> {
        let v = value.trim();
        let (scheme, rest) = v.split_once(|c: char| c.is_ascii_whitespace())?;
        if !scheme.eq_ignore_ascii_case("Digest") {
            return None;
        }
        let mut realm = None;
        let mut nonce = None;
        let mut opaque = None;
        let mut algorithm = Algorithm::Md5;
        let mut qop_auth = false;
        let mut qop_any = false;
        let mut stale = false;
        for (k, val) in auth_params(rest) {
            match k.as_str() {
                "realm" => realm = Some(val),
                "nonce" => nonce = Some(val),
                "opaque" => opaque = Some(val),
                "algorithm" => algorithm = Algorithm::parse(&val)?,
                "qop" => {
                    qop_any = true;
                    qop_auth = val
                        .split(',')
                        .any(|q| q.trim().eq_ignore_ascii_case("auth"));
                }
                "stale" => stale = val.eq_ignore_ascii_case("true"),
                _ => {}
            }
        }
        Some(Challenge {
            realm: realm?,
            nonce: nonce?,
            opaque,
            algorithm,
            qop_auth,
            qop_unsupported: qop_any && !qop_auth,
            stale,
        })
    }

    /// Picks the strongest usable challenge among header values (RFC 8760 §2.4).
    pub fn best<'a>(values: impl Iterator<Item = &'a str>) -> Option<Challenge> {
        values
            .filter_map(Challenge::parse)
            .filter(|c| !c.qop_unsupported)
            .max_by_key(|c| c.algorithm.strength())
    }
}

/// Inputs of one digest computation.
#[derive(Debug, Clone)]
pub struct DigestInput<'a> {
    /// username
    pub username: &'a str,
    /// password
    pub password: &'a str,
    /// request method (`REGISTER`, `INVITE`, ...)
    pub method: &'a str,
    /// digest-uri (the Request-URI as sent)
    pub uri: &'a str,
    /// client nonce (used with qop or -sess)
    pub cnonce: &'a str,
    /// nonce count, 1 for the first use of a nonce
    pub nonce_count: u32,
}

/// Computes the `response` value (RFC 7616 §3.4.1).
pub fn digest_response(ch: &Challenge, input: &DigestInput<'_>) -> String {
    let alg = ch.algorithm;
    let mut ha1 = alg.hash_hex(&format!(
        "{}:{}:{}",
        input.username, ch.realm, input.password
    ));
    if alg.is_sess() {
        ha1 = alg.hash_hex(&format!("{ha1}:{}:{}", ch.nonce, input.cnonce));
    }
    let ha2 = alg.hash_hex(&format!("{}:{}", input.method, input.uri));
    if ch.qop_auth {
        alg.hash_hex(&format!(
            "{ha1}:{}:{:08x}:{}:auth:{ha2}",
            ch.nonce, input.nonce_count, input.cnonce
        ))
    } else {
        alg.hash_hex(&format!("{ha1}:{}:{ha2}", ch.nonce))
    }
}

/// Builds the Authorization / Proxy-Authorization header value.
pub fn authorization_value(ch: &Challenge, input: &DigestInput<'_>) -> Result<String, DigestError> {
    if input.username.contains('"') {
        return Err(DigestError::Unquotable("username"));
    }
    if input.uri.contains('"') {
        return Err(DigestError::Unquotable("digest URI"));
    }
    let response = digest_response(ch, input);
    let mut v = format!(
        "Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{}\", response=\"{}\", algorithm={}",
        input.username,
        quoted_pairs(&ch.realm),
        quoted_pairs(&ch.nonce),
        input.uri,
        response,
        ch.algorithm.as_str()
    );
    if let Some(o) = &ch.opaque {
        v.push_str(&format!(", opaque=\"{}\"", quoted_pairs(o)));
    }
    if ch.qop_auth {
        v.push_str(&format!(
            ", qop=auth, nc={:08x}, cnonce=\"{}\"",
            input.nonce_count, input.cnonce
        ));
    } else if ch.algorithm.is_sess() {
        v.push_str(&format!(", cnonce=\"{}\"", input.cnonce));
    }
    Ok(v)
}

/// Escapes `"` and `\\` for a quoted-string (RFC 7230 §3.2.6 quoted-pair). Realm, nonce and
/// opaque come from the server, which may quote them with escapes; they must go back exactly
/// as it meant them, or its comparison fails and the rest of our header could be misread.
fn quoted_pairs(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Parsed fields of an Authorization header, for servers and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    /// username
    pub username: String,
    /// realm
    pub realm: String,
    /// nonce
    pub nonce: String,
    /// uri
    pub uri: String,
    /// response
    pub response: String,
    /// cnonce
    pub cnonce: Option<String>,
    /// nc as sent (hex)
    pub nc: Option<String>,
    /// qop
    pub qop: Option<String>,
    /// algorithm
    pub algorithm: Option<String>,
}

impl Credentials {
    /// Parses an Authorization / Proxy-Authorization value.
    pub fn parse(value: &str) -> Option<Credentials> {
        let (scheme, rest) = value.trim().split_once(|c: char| c.is_ascii_whitespace())?;
        if !scheme.eq_ignore_ascii_case("Digest") {
            return None;
        }
        let mut c = Credentials::default();
        for (k, v) in auth_params(rest) {
            match k.as_str() {
                "username" => c.username = v,
                "realm" => c.realm = v,
                "nonce" => c.nonce = v,
                "uri" => c.uri = v,
                "response" => c.response = v,
                "cnonce" => c.cnonce = Some(v),
                "nc" => c.nc = Some(v),
                "qop" => c.qop = Some(v),
                "algorithm" => c.algorithm = Some(v),
                _ => {}
            }
        }
        Some(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_challenge_with_quoted_commas() {
        let c = Challenge::parse(
            "Digest realm=\"a,b\", nonce=\"n\", qop=\"auth,auth-int\", algorithm=SHA-256, stale=TRUE",
        )
        .unwrap();
        assert_eq!(c.realm, "a,b");
        assert!(c.qop_auth && c.stale);
        assert_eq!(c.algorithm, Algorithm::Sha256);
        assert!(Challenge::parse("Basic realm=\"x\"").is_none());
        assert!(Challenge::parse("Digest realm=\"x\"").is_none());
    }

    #[test]
    fn escaped_realm_nonce_and_opaque_go_back_escaped() {
        let c = Challenge::parse(
            "Digest realm=\"a \\\"quoted\\\" realm\", nonce=\"n\\\\1\", opaque=\"o\\\"\"",
        )
        .unwrap();
        assert_eq!(c.realm, "a \"quoted\" realm");
        assert_eq!(c.nonce, "n\\1");
        let input = DigestInput {
            username: "alice",
            password: "secret",
            method: "REGISTER",
            uri: "sip:example.com",
            cnonce: "c",
            nonce_count: 1,
        };
        let value = authorization_value(&c, &input).unwrap();
        assert!(value.contains(r#"realm="a \"quoted\" realm""#), "{value}");
        let back = Credentials::parse(&value).unwrap();
        assert_eq!(back.realm, c.realm);
        assert_eq!(back.nonce, c.nonce);
        assert_eq!(back.uri, "sip:example.com");
    }
}
