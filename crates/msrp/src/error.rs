//! The crate's single error type.
//!
//! Variants fall in the three groups the engine reacts to differently: caller misuse (fix the
//! call site), a peer's or relay's protocol fault (answer or abandon the session, carry on), and
//! a refusal by the relay or the peer (report it to the person). There is no transport variant:
//! this crate does no I/O, so a dead connection is the engine's to notice.

use thiserror::Error;

/// Everything that can go wrong in the MSRP core.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MsrpError {
    // --- caller misuse ---------------------------------------------------------------------
    /// The caller asked for something that cannot be done (bad configuration, wrong state).
    #[error("invalid use of the MSRP core: {0}")]
    Misuse(String),

    // --- peer protocol fault ---------------------------------------------------------------
    /// A received MSRP message does not follow RFC 4975 §9 syntax. `what` names the part.
    #[error("malformed MSRP message ({what}): {detail}")]
    Malformed {
        /// The part of the message at fault ("start line", "Byte-Range", "end-line", ...).
        what: &'static str,
        /// What exactly is wrong.
        detail: String,
    },
    /// An MSRP URI (RFC 4975 §6) could not be parsed.
    #[error("invalid MSRP URI {uri:?}: {reason}")]
    InvalidUri {
        /// The offending text.
        uri: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// An SDP body does not describe a usable MSRP session (RFC 4975 §8, RFC 5547).
    #[error("unusable SDP: {0}")]
    Sdp(String),
    /// A well-formed message that breaks the session's rules (wrong Message-ID, byte ranges
    /// beyond the announced size, ...).
    #[error("MSRP protocol violation: {0}")]
    Protocol(String),

    // --- refusals ----------------------------------------------------------------------------
    /// The relay or the peer answered with an error status (RFC 4975 §10, RFC 4976 §5).
    #[error("{who} answered {status} {comment}")]
    Refused {
        /// "the relay" or "the peer".
        who: &'static str,
        /// The MSRP status code.
        status: u16,
        /// The comment of the response or REPORT.
        comment: String,
    },
    /// No response to a transaction in time (RFC 4975 §7.1.1: 30 s by default).
    #[error("no response to {method} within {seconds} s")]
    Timeout {
        /// The request method.
        method: &'static str,
        /// The limit that passed.
        seconds: u64,
    },
}

impl MsrpError {
    pub(crate) fn malformed(what: &'static str, detail: impl Into<String>) -> Self {
        MsrpError::Malformed {
            what,
            detail: detail.into(),
        }
    }
}
