//! The crate's single error type.
//!
//! Variants fall in three groups, so the engine can react without string matching:
//! caller misuse (fix the call site), a peer's protocol fault (the core has already answered it
//! where RFC 3261 says to, e.g. with 400, and carries on), and a dead transport (reconnect).

use thiserror::Error;

/// Everything that can go wrong in the SIP core.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SipError {
    // --- caller misuse -------------------------------------------------------------------
    /// The configuration is unusable (bad AoR, empty instance id, ...).
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// A target or URI given by the caller is not a usable SIP URI.
    #[error("invalid SIP URI {uri:?}: {reason}")]
    InvalidUri {
        /// The offending text.
        uri: String,
        /// Why it was rejected.
        reason: String,
    },
    /// The call handle does not name a live call.
    #[error("unknown call")]
    UnknownCall,
    /// The incoming-message handle does not name a MESSAGE awaiting its answer.
    #[error("no such incoming message awaiting an answer")]
    UnknownMessage,
    /// The refer handle does not name a REFER awaiting that command.
    #[error("no such refer awaiting this")]
    UnknownRefer,
    /// The command does not fit the call's current state (e.g. `answer` on an outgoing call).
    #[error("call is {state}; cannot {action}")]
    InvalidCallState {
        /// The call's state, for humans.
        state: &'static str,
        /// The refused command.
        action: &'static str,
    },
    /// A status code outside what the command allows (e.g. `reject` with 200).
    #[error("status {0} not allowed here")]
    InvalidStatus(u16),

    // --- peer protocol fault ---------------------------------------------------------------
    /// A received message is malformed. `what` names the part (e.g. "CSeq", "Via"), usable
    /// as the 400 reason detail; `detail` says what was wrong.
    #[error("malformed SIP message: {what}: {detail}")]
    Malformed {
        /// The element that failed to parse.
        what: &'static str,
        /// What was wrong with it.
        detail: String,
    },
    /// The message uses a SIP version other than 2.0 (RFC 3261 §8.2.2 → 505).
    #[error("unsupported SIP version {0}")]
    UnsupportedVersion(String),

    // --- dead transport ----------------------------------------------------------------------
    /// The flow (WebSocket) is down; the command needs it.
    #[error("not connected")]
    NotConnected,
}

impl SipError {
    pub(crate) fn malformed(what: &'static str, detail: impl Into<String>) -> Self {
        SipError::Malformed {
            what,
            detail: detail.into(),
        }
    }
}
