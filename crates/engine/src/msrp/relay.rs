//! The authenticated WebSocket to the MSRP relay (RFC 4976 AUTH over RFC 7977) that every file
//! and chat session task opens for itself.

use std::time::Duration;

use lyrebird_msrp::{AuthOutcome, Message, MsrpError, MsrpUri, RelayAuth};
use tokio::time::Instant;
use tracing::{debug, warn};

use super::context::TaskContext;
use crate::transport::{Incoming, WsConnection, WsTarget};

/// Bound on reaching the relay and authenticating.
const LINK_TIMEOUT: Duration = Duration::from_secs(10);

/// An authenticated WebSocket to the relay.
pub(super) struct Link {
    pub(super) conn: WsConnection,
    pub(super) auth: RelayAuth,
    pub(super) local: MsrpUri,
    pub(super) use_path: Vec<MsrpUri>,
}

/// A random token of lowercase letters and digits (session ids, message ids, `.invalid` hosts).
pub(super) fn random_token(len: usize) -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

impl Link {
    /// Connects to the relay and authenticates (RFC 4976 §5).
    pub(super) async fn open(context: &TaskContext) -> Result<Link, String> {
        let config = &context.config;
        let relay = MsrpUri::parse(&config.relay_uri)
            .map_err(|e| format!("the relay URI is unusable: {e}"))?;
        let target = WsTarget {
            url: config.relay_ws_url.clone(),
            subprotocol: "msrp",
            trusted_certificate: config.trusted_certificate.clone(),
            connect_timeout: LINK_TIMEOUT,
        };
        let mut conn = WsConnection::connect(&target)
            .await
            .map_err(|e| format!("the relay is unreachable: {e}"))?;
        // RFC 7977 §5.2: the client's own URI has an invented `.invalid` host.
        let local = MsrpUri {
            secure: false,
            host: format!("{}.invalid", random_token(12)),
            port: Some(2855),
            session_id: Some(random_token(20)),
            transport: "ws".into(),
        };
        let mut auth = RelayAuth::new(
            relay,
            local.clone(),
            context.username.clone(),
            context.password.clone(),
            config.auth_expires,
            rand::random(),
        );
        let first = auth.start(Instant::now().into_std());
        conn.send(first)
            .await
            .map_err(|e| format!("the relay is unreachable: {e}"))?;
        let deadline = Instant::now() + LINK_TIMEOUT;
        loop {
            let incoming = tokio::time::timeout_at(deadline, conn.recv())
                .await
                .map_err(|_| "the relay did not answer AUTH in time".to_owned())?
                .map_err(|e| format!("the relay connection failed: {e}"))?;
            let frame = match incoming {
                Some(Incoming::Message(frame)) => frame,
                Some(Incoming::Alive) => continue,
                None => return Err("the relay closed the connection during AUTH".into()),
            };
            let message = match Message::parse(&frame) {
                Ok(m) => m,
                Err(e) => {
                    warn!(error = %e, "malformed message from the relay ignored");
                    continue;
                }
            };
            match auth.handle_message(Instant::now().into_std(), &message) {
                Ok(AuthOutcome::Send(next)) => conn
                    .send(next)
                    .await
                    .map_err(|e| format!("the relay connection failed: {e}"))?,
                Ok(AuthOutcome::Granted(grant)) => {
                    debug!(expires_s = grant.expires.as_secs(), "relay AUTH granted");
                    return Ok(Link {
                        conn,
                        auth,
                        local,
                        use_path: grant.use_path,
                    });
                }
                Ok(AuthOutcome::NotMine) => {}
                Err(MsrpError::Refused {
                    status, comment, ..
                }) => {
                    return Err(format!("the relay refused AUTH: {status} {comment}"));
                }
                Err(e) => return Err(format!("relay AUTH failed: {e}")),
            }
        }
    }

    /// A frame received on the link as a message for the session: `Ok(None)` when there is
    /// nothing for the session (relay AUTH traffic, handled here; a malformed frame, logged
    /// and dropped), `Err` when the relay refused a re-AUTH.
    pub(super) async fn accept(&mut self, frame: &[u8]) -> Result<Option<Message>, String> {
        let message = match Message::parse(frame) {
            Ok(message) => message,
            Err(e) => {
                warn!(error = %e, "malformed MSRP message ignored");
                return Ok(None);
            }
        };
        Ok((!self.feed_auth(&message).await?).then_some(message))
    }

    /// Renews the relay AUTH when it is due (RFC 4976 §5.2: before it expires).
    pub(super) async fn renew_auth(&mut self, now: Instant) -> Result<(), String> {
        match self.auth.handle_timeout(now.into_std()) {
            Ok(Some(renew)) => self.conn.send(renew).await.map_err(|e| e.to_string()),
            Ok(None) => Ok(()),
            Err(e) => Err(format!("relay re-AUTH: {e}")),
        }
    }

    /// Gives a message to the relay AUTH machine; `true` if it was its.
    pub(super) async fn feed_auth(&mut self, message: &Message) -> Result<bool, String> {
        match self.auth.handle_message(Instant::now().into_std(), message) {
            Ok(AuthOutcome::NotMine) => Ok(false),
            Ok(AuthOutcome::Send(next)) => {
                self.conn.send(next).await.map_err(|e| e.to_string())?;
                Ok(true)
            }
            Ok(AuthOutcome::Granted(_)) => Ok(true),
            Err(e) => Err(format!("relay re-AUTH failed: {e}")),
        }
    }
}
