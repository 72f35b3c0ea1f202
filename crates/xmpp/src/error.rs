//! The one error type of the XMPP core.

/// What went wrong, sorted by who must act: the caller (misuse), the server (a protocol fault or
/// a refusal), or nobody but the reconnect logic (a dead or silent transport).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmppError {
    /// The caller asked for something malformed or impossible (bad JID, empty body, ...).
    #[error("invalid request: {0}")]
    InvalidInput(String),
    /// The command needs a feature the server did not offer (no upload service, no MAM, ...).
    #[error("not supported by the server: {0}")]
    Unsupported(String),
    /// SASL failed (RFC 6120 §6.5): wrong password or account disabled. Retrying will not help.
    #[error("authentication failed: {condition}{}", text.as_deref().map(|t| format!(" ({t})")).unwrap_or_default())]
    AuthFailed {
        /// The SASL failure condition, e.g. `not-authorized`.
        condition: String,
        /// Human-readable text the server added, if any.
        text: Option<String>,
    },
    /// None of the server's SASL mechanisms is acceptable (PLAIN on an insecure stream that the
    /// user did not allow, or nothing we implement).
    #[error("no acceptable authentication mechanism (server offers: {offered})")]
    NoMechanism {
        /// The mechanisms the server offered, comma separated.
        offered: String,
    },
    /// The server broke the protocol: malformed XML, a bad SCRAM signature, an unexpected element.
    #[error("protocol violation by the server: {0}")]
    Protocol(String),
    /// The server closed the stream with a stream error (RFC 6120 §4.9).
    #[error("stream error from the server: {condition}{}", text.as_deref().map(|t| format!(" ({t})")).unwrap_or_default())]
    StreamError {
        /// The defined condition, e.g. `conflict`, `system-shutdown`.
        condition: String,
        /// Human-readable text the server added, if any.
        text: Option<String>,
    },
    /// The server did not answer in time.
    #[error("timed out: {0}")]
    Timeout(String),
    /// The stream is not established; the command was not sent.
    #[error("not connected")]
    NotConnected,
}

impl XmppError {
    /// Whether reconnecting cannot help (the user must fix the account first).
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            XmppError::AuthFailed { .. } | XmppError::NoMechanism { .. }
        )
    }
}
