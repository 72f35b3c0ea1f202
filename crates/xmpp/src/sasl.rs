//! SASL for RFC 6120 §6: SCRAM-SHA-256 (RFC 7677) and SCRAM-SHA-1 (RFC 5802) without channel
//! binding (gs2 header `n,,`), and PLAIN (RFC 4616) only when the caller allows it.
//!
//! A SCRAM exchange is: client-first `n,,n=USER,r=CNONCE` → server-first `r=NONCE,s=SALT,i=N` →
//! client-final `c=biws,r=NONCE,p=PROOF` → server-final `v=SIGNATURE`. The server signature is
//! checked (RFC 5802 §3: mutual authentication), so a server that does not know the password
//! cannot pretend the login worked.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ring::{digest, hmac, pbkdf2};

use crate::XmppError;

/// A mechanism this client implements, strongest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    /// RFC 7677.
    ScramSha256,
    /// RFC 5802.
    ScramSha1,
    /// RFC 4616: the password in the clear, only over TLS or when explicitly allowed.
    Plain,
}

impl Mechanism {
    /// The IANA name used in `<mechanism/>`.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha1 => "SCRAM-SHA-1",
            Mechanism::Plain => "PLAIN",
        }
    }

    /// Picks the strongest acceptable mechanism among those offered.
    pub fn choose<'a>(
        offered: impl IntoIterator<Item = &'a str>,
        allow_plain: bool,
    ) -> Option<Mechanism> {
        let offered: Vec<&str> = offered.into_iter().map(str::trim).collect();
        [
            Mechanism::ScramSha256,
            Mechanism::ScramSha1,
            Mechanism::Plain,
        ]
        .into_iter()
        .filter(|m| allow_plain || *m != Mechanism::Plain)
        .find(|m| offered.contains(&m.name()))
    }
}

/// Where one SASL exchange stands.
#[derive(Debug)]
pub enum SaslExchange {
    /// SCRAM after the client-first message.
    ScramStarted {
        /// Which hash.
        mechanism: Mechanism,
        /// The client nonce.
        cnonce: String,
        /// `n=USER,r=CNONCE` (the client-first-message-bare).
        client_first_bare: String,
        /// The password (kept only until the exchange ends).
        password: String,
    },
    /// SCRAM after client-final: the server signature we expect in server-final.
    ScramProved {
        /// The expected `v=` value, decoded.
        server_signature: Vec<u8>,
    },
    /// PLAIN sent; only success or failure can follow.
    PlainSent,
}

/// RFC 5802 §5.1: `=` and `,` in a user name are written `=3D` and `=2C`.
fn scram_name(user: &str) -> String {
    user.replace('=', "=3D").replace(',', "=2C")
}

impl SaslExchange {
    /// Starts an exchange; returns it and the initial response to put in `<auth/>` (raw bytes,
    /// the caller base64-encodes them).
    pub fn start(
        mechanism: Mechanism,
        username: &str,
        password: &str,
        cnonce: &str,
    ) -> (SaslExchange, Vec<u8>) {
        match mechanism {
            Mechanism::Plain => {
                let mut initial = Vec::new();
                initial.push(0);
                initial.extend_from_slice(username.as_bytes());
                initial.push(0);
                initial.extend_from_slice(password.as_bytes());
                (SaslExchange::PlainSent, initial)
            }
            Mechanism::ScramSha1 | Mechanism::ScramSha256 => {
                let client_first_bare = format!("n={},r={cnonce}", scram_name(username));
                let initial = format!("n,,{client_first_bare}").into_bytes();
                (
                    SaslExchange::ScramStarted {
                        mechanism,
                        cnonce: cnonce.to_owned(),
                        client_first_bare,
                        password: password.to_owned(),
                    },
                    initial,
                )
            }
        }
    }

    /// Answers a server challenge (already base64-decoded). Returns the response to send.
    pub fn challenge(&mut self, server_message: &[u8]) -> Result<Vec<u8>, XmppError> {
        let SaslExchange::ScramStarted {
            mechanism,
            cnonce,
            client_first_bare,
            password,
        } = self
        else {
            return Err(XmppError::Protocol(
                "unexpected SASL challenge at this point".into(),
            ));
        };
        let server_first = std::str::from_utf8(server_message)
            .map_err(|_| XmppError::Protocol("SCRAM server-first is not UTF-8".into()))?;
        let mut nonce = None;
        let mut salt = None;
        let mut iterations = None;
        for part in server_first.split(',') {
            match part.split_once('=') {
                Some(("r", v)) => nonce = Some(v),
                Some(("s", v)) => salt = Some(v),
                Some(("i", v)) => iterations = Some(v),
                Some(("m", _)) => {
                    // RFC 5802 §5.1: a mandatory extension we do not understand fails the login.
                    return Err(XmppError::Protocol(
                        "SCRAM server requires an unsupported extension".into(),
                    ));
                }
                _ => {}
            }
        }
        let (Some(nonce), Some(salt), Some(iterations)) = (nonce, salt, iterations) else {
            return Err(XmppError::Protocol(
                "SCRAM server-first lacks r, s or i".into(),
            ));
        };
        if !nonce.starts_with(cnonce.as_str()) || nonce.len() <= cnonce.len() {
            return Err(XmppError::Protocol(
                "SCRAM server nonce does not extend ours".into(),
            ));
        }
        let salt = B64
            .decode(salt)
            .map_err(|_| XmppError::Protocol("SCRAM salt is not base64".into()))?;
        let iterations: u32 = iterations
            .parse()
            .ok()
            .filter(|i| (1..=10_000_000).contains(i))
            .ok_or_else(|| XmppError::Protocol("SCRAM iteration count out of range".into()))?;
        let client_final_bare = format!("c=biws,r={nonce}");
        let auth_message = format!("{client_first_bare},{server_first},{client_final_bare}");
        let (proof, server_signature) = scram_proof(
            *mechanism,
            password.as_bytes(),
            &salt,
            iterations,
            auth_message.as_bytes(),
        );
        let response = format!("{client_final_bare},p={}", B64.encode(proof)).into_bytes();
        *self = SaslExchange::ScramProved { server_signature };
        Ok(response)
    }

    /// Checks `<success/>` data (already base64-decoded; may be empty for PLAIN).
    pub fn success(&self, additional_data: &[u8]) -> Result<(), XmppError> {
        match self {
            SaslExchange::PlainSent => Ok(()),
            SaslExchange::ScramStarted { .. } => Err(XmppError::Protocol(
                "SASL success before the SCRAM exchange finished".into(),
            )),
            SaslExchange::ScramProved { server_signature } => {
                let text = std::str::from_utf8(additional_data).unwrap_or("");
                let verifier = text
                    .split(',')
                    .find_map(|p| p.strip_prefix("v="))
                    .and_then(|v| B64.decode(v).ok());
                match verifier {
                    Some(v) if v == *server_signature => Ok(()),
                    _ => Err(XmppError::Protocol(
                        "the server's SCRAM signature is wrong: it does not know the password"
                            .into(),
                    )),
                }
            }
        }
    }
}

/// RFC 5802 §3: SaltedPassword = Hi(password, salt, i); ClientKey = HMAC(SaltedPassword,
/// "Client Key"); StoredKey = H(ClientKey); ClientSignature = HMAC(StoredKey, AuthMessage);
/// ClientProof = ClientKey XOR ClientSignature; ServerSignature = HMAC(HMAC(SaltedPassword,
/// "Server Key"), AuthMessage).
fn scram_proof(
    mechanism: Mechanism,
    password: &[u8],
    salt: &[u8],
    iterations: u32,
    auth_message: &[u8],
) -> (Vec<u8>, Vec<u8>) {
    let (pbkdf, hmac_alg, digest_alg, len) = match mechanism {
        Mechanism::ScramSha1 => (
            pbkdf2::PBKDF2_HMAC_SHA1,
            hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            &digest::SHA1_FOR_LEGACY_USE_ONLY,
            20,
        ),
        _ => (
            pbkdf2::PBKDF2_HMAC_SHA256,
            hmac::HMAC_SHA256,
            &digest::SHA256,
            32,
        ),
    };
    let mut salted = vec![0u8; len];
    let iterations = std::num::NonZeroU32::new(iterations).unwrap_or(std::num::NonZeroU32::MIN);
    pbkdf2::derive(pbkdf, iterations, salt, password, &mut salted);
    let salted_key = hmac::Key::new(hmac_alg, &salted);
    let client_key = hmac::sign(&salted_key, b"Client Key");
    let stored_key = digest::digest(digest_alg, client_key.as_ref());
    let client_signature = hmac::sign(&hmac::Key::new(hmac_alg, stored_key.as_ref()), auth_message);
    let proof = client_key
        .as_ref()
        .iter()
        .zip(client_signature.as_ref())
        .map(|(a, b)| a ^ b)
        .collect();
    let server_key = hmac::sign(&salted_key, b"Server Key");
    let server_signature = hmac::sign(&hmac::Key::new(hmac_alg, server_key.as_ref()), auth_message);
    (proof, server_signature.as_ref().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_vector(
        mechanism: Mechanism,
        cnonce: &str,
        server_first: &str,
        client_final: &str,
        server_final: &str,
    ) {
        let (mut ex, first) = SaslExchange::start(mechanism, "user", "pencil", cnonce);
        assert_eq!(first, format!("n,,n=user,r={cnonce}").into_bytes());
        let response = ex.challenge(server_first.as_bytes()).unwrap();
        assert_eq!(String::from_utf8(response).unwrap(), client_final);
        ex.success(server_final.as_bytes()).unwrap();
        assert!(
            ex.success(b"v=AAAA").is_err(),
            "a wrong signature is refused"
        );
    }

    #[test]
    fn rfc5802_scram_sha1_vector() {
        run_vector(
            Mechanism::ScramSha1,
            "fyko+d2lbbFgONRv9qkxdawL",
            "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
            "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
            "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=",
        );
    }

    #[test]
    fn rfc7677_scram_sha256_vector() {
        run_vector(
            Mechanism::ScramSha256,
            "rOprNGfwEbeRWgbNEkqO",
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
            "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
        );
    }

    #[test]
    fn refuses_a_server_nonce_that_does_not_extend_ours() {
        let (mut ex, _) = SaslExchange::start(Mechanism::ScramSha1, "user", "pencil", "abc");
        assert!(ex.challenge(b"r=xyz123,s=QSXCR+Q6sek8bf92,i=4096").is_err());
        let (mut ex, _) = SaslExchange::start(Mechanism::ScramSha1, "user", "pencil", "abc");
        assert!(ex.challenge(b"r=abcdef,s=QSXCR+Q6sek8bf92").is_err());
        let (mut ex, _) = SaslExchange::start(Mechanism::ScramSha1, "user", "pencil", "abc");
        assert!(ex.challenge(b"r=abcdef,s=***,i=1").is_err());
    }

    #[test]
    fn chooses_the_strongest_and_plain_only_when_allowed() {
        let offered = ["PLAIN", "SCRAM-SHA-1"];
        assert_eq!(
            Mechanism::choose(offered, false),
            Some(Mechanism::ScramSha1)
        );
        assert_eq!(
            Mechanism::choose(["SCRAM-SHA-256", "SCRAM-SHA-1"], false),
            Some(Mechanism::ScramSha256)
        );
        assert_eq!(Mechanism::choose(["PLAIN"], false), None);
        assert_eq!(Mechanism::choose(["PLAIN"], true), Some(Mechanism::Plain));
        let (_, initial) = SaslExchange::start(Mechanism::Plain, "alice", "pw", "");
        assert_eq!(initial, b"\0alice\0pw");
    }
}
