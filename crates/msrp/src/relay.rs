//! Authenticating to an MSRP relay (RFC 4976 §5) as a sans-IO state machine.
//!
//! ```text
//!  client                                  relay
//!    AUTH  To-Path: <relay URI>  ───────▶
//!          ◀─────── 401 WWW-Authenticate: Digest ...
//!    AUTH  Authorization: Digest ... ────▶        (digest-uri = the To-Path URI, method AUTH)
//!          ◀─────── 200 Use-Path: msrp://relay/sess;ws  Expires: N
//! ```
//!
//! The Use-Path goes first in the SDP `a=path` (RFC 4976 §6.1); the client must AUTH again
//! before `Expires` runs out (§5.1), which [`RelayAuth::poll_timeout`] schedules at 80 % of the
//! granted time. A `423 Interval Out-of-Bounds` carries Min-Expires / Max-Expires (§5.1): the
//! request is retried once with a value inside them. The digest arithmetic is
//! `lyrebird-digest`, which the SIP core uses too: one concept, one place.

use std::time::{Duration, Instant};

use lyrebird_digest::{Challenge, DigestInput, authorization_value};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::error::MsrpError;
use crate::message::{Kind, Message, Method};
use crate::uri::MsrpUri;

/// RFC 4975 §7.1.1: a transaction with no response in 30 s has failed.
pub const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(30);

/// What the relay granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The relay URIs to put before our own URI in `a=path` (RFC 4976 §6.1).
    pub use_path: Vec<MsrpUri>,
    /// How long the grant lasts.
    pub expires: Duration,
}

/// What happened after a message from the relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthOutcome {
    /// The message was not a response to our AUTH.
    NotMine,
    /// Send this AUTH next (an answer to a challenge or a corrected Expires).
    Send(Vec<u8>),
    /// The relay accepted us (again).
    Granted(Grant),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Idle,
    Waiting {
        since: Instant,
        answered_challenge: bool,
        retried_interval: bool,
    },
    Granted {
        renew_at: Instant,
    },
}

/// One client's authentication to one relay.
#[derive(Debug)]
pub struct RelayAuth {
    relay: MsrpUri,
    local: MsrpUri,
    username: String,
    password: String,
    expires: u32,
    state: State,
    transaction_id: String,
    nonce_count: u32,
    rng: StdRng,
    grant: Option<Grant>,
}

/// A random transaction id: 12 alphanumerics (RFC 4975 §7.1 asks for at least 64 bits of
/// randomness when the id also keeps the body from containing the end-line).
pub(crate) fn new_transaction_id(rng: &mut StdRng) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    (0..16)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

impl RelayAuth {
    /// `relay` is the relay's own URI (no session id); `local` our URI on this connection;
    /// `expires` the lifetime asked for (Kamailio's msrp module accepts 60–3600 s by default).
    pub fn new(
        relay: MsrpUri,
        local: MsrpUri,
        username: impl Into<String>,
        password: impl Into<String>,
        expires: u32,
        rng_seed: u64,
    ) -> Self {
        Self {
            relay,
            local,
            username: username.into(),
            password: password.into(),
            expires,
            state: State::Idle,
            transaction_id: String::new(),
            nonce_count: 0,
            rng: StdRng::seed_from_u64(rng_seed),
            grant: None,
        }
    }

    /// The current grant, if any.
    pub fn grant(&self) -> Option<&Grant> {
        self.grant.as_ref()
    }

    /// Builds the first AUTH (and starts the transaction).
    pub fn start(&mut self, now: Instant) -> Vec<u8> {
        self.state = State::Waiting {
            since: now,
            answered_challenge: false,
            retried_interval: false,
        };
        self.auth_request(None)
    }

    fn auth_request(&mut self, authorization: Option<String>) -> Vec<u8> {
        self.transaction_id = new_transaction_id(&mut self.rng);
        let mut message = Message::request(self.transaction_id.clone(), Method::Auth)
            .with_header("To-Path", self.relay.to_string())
            .with_header("From-Path", self.local.to_string());
        if let Some(authorization) = authorization {
            message = message.with_header("Authorization", authorization);
        }
        message = message.with_header("Expires", self.expires.to_string());
        message.encode()
    }

    /// When to call [`RelayAuth::handle_timeout`]: the transaction's timeout, or the renewal.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Idle => None,
            State::Waiting { since, .. } => Some(since + TRANSACTION_TIMEOUT),
            State::Granted { renew_at } => Some(renew_at),
        }
    }

    /// A deadline passed: fails a timed-out AUTH, or returns the renewal AUTH to send.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<Option<Vec<u8>>, MsrpError> {
        match self.state {
            State::Waiting { since, .. } if now >= since + TRANSACTION_TIMEOUT => {
                self.state = State::Idle;
                Err(MsrpError::Timeout {
                    method: "AUTH",
                    seconds: TRANSACTION_TIMEOUT.as_secs(),
                })
            }
            State::Granted { renew_at } if now >= renew_at => Ok(Some(self.start(now))),
            _ => Ok(None),
        }
    }

    /// Feeds a message from the relay.
    pub fn handle_message(
        &mut self,
        now: Instant,
        message: &Message,
    ) -> Result<AuthOutcome, MsrpError> {
        let State::Waiting {
            answered_challenge,
            retried_interval,
            ..
        } = self.state
        else {
            return Ok(AuthOutcome::NotMine);
        };
        let Kind::Response { status, comment } = &message.kind else {
            return Ok(AuthOutcome::NotMine);
        };
        if message.transaction_id != self.transaction_id {
            return Ok(AuthOutcome::NotMine);
        }
        let refused = |status: u16| MsrpError::Refused {
            who: "the relay",
            status,
            comment: comment.clone().unwrap_or_default(),
        };
        match *status {
            200 => {
                let use_path = message
                    .header("Use-Path")
                    .ok_or_else(|| {
                        MsrpError::Protocol("the relay's 200 to AUTH has no Use-Path".into())
                    })
                    .and_then(MsrpUri::parse_list)?;
                let granted = match message.header("Expires") {
                    Some(v) => v.trim().parse::<u32>().map_err(|_| {
                        MsrpError::malformed("Expires", format!("not a number: {v:?}"))
                    })?,
                    None => self.expires,
                };
                let expires = Duration::from_secs(u64::from(granted.max(1)));
                // Renew at 80 % of the lifetime so a slow relay still answers in time.
                self.state = State::Granted {
                    renew_at: now + expires.mul_f32(0.8),
                };
                let grant = Grant { use_path, expires };
                self.grant = Some(grant.clone());
                Ok(AuthOutcome::Granted(grant))
            }
            401 if !answered_challenge => {
                let challenge = Challenge::best(message.headers_named("WWW-Authenticate"))
                    .ok_or_else(|| {
                        MsrpError::Protocol("401 without a usable Digest challenge".into())
                    })?;
                self.nonce_count += 1;
                let cnonce = new_transaction_id(&mut self.rng);
                let relay = self.relay.to_string();
                let value = authorization_value(
                    &challenge,
                    &DigestInput {
                        username: &self.username,
                        password: &self.password,
                        method: "AUTH",
                        uri: &relay,
                        cnonce: &cnonce,
                        nonce_count: 1,
                    },
                )
                .map_err(|e| MsrpError::Misuse(e.to_string()))?;
                self.state = State::Waiting {
                    since: now,
                    answered_challenge: true,
                    retried_interval,
                };
                Ok(AuthOutcome::Send(self.auth_request(Some(value))))
            }
            423 if !retried_interval => {
                let bound = |name: &str| {
                    message
                        .header(name)
                        .and_then(|v| v.trim().parse::<u32>().ok())
                };
                if let Some(min) = bound("Min-Expires") {
                    self.expires = self.expires.max(min);
                }
                if let Some(max) = bound("Max-Expires") {
                    self.expires = self.expires.min(max);
                }
                self.state = State::Waiting {
                    since: now,
                    answered_challenge: false,
                    retried_interval: true,
                };
                Ok(AuthOutcome::Send(self.auth_request(None)))
            }
            other => {
                self.state = State::Idle;
                Err(refused(other))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lyrebird_digest::Credentials;

    fn reply(request: &[u8], status: &str, extra: &[(&str, &str)]) -> Message {
        let request = Message::parse(request).unwrap();
        let mut headers = vec![
            (
                "To-Path".to_owned(),
                request.header("From-Path").unwrap().to_owned(),
            ),
            (
                "From-Path".to_owned(),
                request.header("To-Path").unwrap().to_owned(),
            ),
        ];
        headers.extend(extra.iter().map(|(n, v)| (n.to_string(), v.to_string())));
        let (code, comment) = status.split_once(' ').unwrap();
        Message {
            transaction_id: request.transaction_id,
            kind: Kind::Response {
                status: code.parse().unwrap(),
                comment: Some(comment.into()),
            },
            headers,
            body: None,
            continuation: crate::message::Continuation::Complete,
        }
    }

    #[test]
    fn digest_flow_use_path_and_renewal() {
        let relay = MsrpUri::parse("msrp://relay.example.com:2855;ws").unwrap();
        let local = MsrpUri::parse("msrp://abc.invalid:2855/s1;ws").unwrap();
        let mut auth = RelayAuth::new(relay, local, "alice", "secret", 600, 7);
        let t0 = Instant::now();
        let first = auth.start(t0);
        let text = String::from_utf8(first.clone()).unwrap();
        assert!(text.contains(" AUTH\r\nTo-Path: msrp://relay.example.com:2855;ws\r\n"));
        let challenge = reply(
            &first,
            "401 Unauthorized",
            &[(
                "WWW-Authenticate",
                "Digest realm=\"example.com\", nonce=\"n1\", qop=\"auth\"",
            )],
        );
        let AuthOutcome::Send(second) = auth.handle_message(t0, &challenge).unwrap() else {
            panic!("expected an answer to the challenge");
        };
        let second_msg = Message::parse(&second).unwrap();
        let creds = Credentials::parse(second_msg.header("Authorization").unwrap()).unwrap();
        assert_eq!(creds.uri, "msrp://relay.example.com:2855;ws");
        // RFC 4976 §5.1: HA2 = H("AUTH:" digest-uri).
        let ch =
            Challenge::parse("Digest realm=\"example.com\", nonce=\"n1\", qop=\"auth\"").unwrap();
        let expected = lyrebird_digest::digest_response(
            &ch,
            &DigestInput {
                username: "alice",
                password: "secret",
                method: "AUTH",
                uri: "msrp://relay.example.com:2855;ws",
                cnonce: creds.cnonce.as_deref().unwrap(),
                nonce_count: 1,
            },
        );
        assert_eq!(creds.response, expected);
        let ok = reply(
            &second,
            "200 OK",
            &[
                ("Use-Path", "msrp://relay.example.com:2855/r1;ws"),
                ("Expires", "100"),
            ],
        );
        let AuthOutcome::Granted(grant) = auth.handle_message(t0, &ok).unwrap() else {
            panic!("expected a grant");
        };
        assert_eq!(grant.use_path[0].session_id.as_deref(), Some("r1"));
        assert_eq!(auth.poll_timeout(), Some(t0 + Duration::from_secs(80)));
        assert!(
            auth.handle_timeout(t0 + Duration::from_secs(79))
                .unwrap()
                .is_none()
        );
        let renewal = auth.handle_timeout(t0 + Duration::from_secs(80)).unwrap();
        assert!(renewal.is_some());
    }

    #[test]
    fn second_401_is_a_refusal_and_423_is_retried() {
        let relay = MsrpUri::parse("msrp://r:1;ws").unwrap();
        let local = MsrpUri::parse("msrp://l.invalid:2855/s;ws").unwrap();
        let mut auth = RelayAuth::new(relay, local, "a", "wrong", 10, 1);
        let t0 = Instant::now();
        let first = auth.start(t0);
        let AuthOutcome::Send(retry) = auth
            .handle_message(
                t0,
                &reply(
                    &first,
                    "423 Interval Out-of-Bounds",
                    &[("Min-Expires", "60")],
                ),
            )
            .unwrap()
        else {
            panic!("423 must be retried");
        };
        assert!(String::from_utf8_lossy(&retry).contains("Expires: 60\r\n"));
        let ch = [("WWW-Authenticate", "Digest realm=\"r\", nonce=\"n\"")];
        let AuthOutcome::Send(answer) = auth
            .handle_message(t0, &reply(&retry, "401 Unauthorized", &ch))
            .unwrap()
        else {
            panic!("challenge must be answered");
        };
        let err = auth
            .handle_message(t0, &reply(&answer, "401 Unauthorized", &ch))
            .unwrap_err();
        assert!(
            matches!(err, MsrpError::Refused { status: 401, .. }),
            "{err}"
        );
        // Timeout of a pending transaction.
        let mut auth2 = RelayAuth::new(
            MsrpUri::parse("msrp://r:1;ws").unwrap(),
            MsrpUri::parse("msrp://l.invalid:2855/s;ws").unwrap(),
            "a",
            "b",
            60,
            2,
        );
        auth2.start(t0);
        assert!(matches!(
            auth2.handle_timeout(t0 + TRANSACTION_TIMEOUT),
            Err(MsrpError::Timeout { .. })
        ));
    }
}
