//! The one error type of the Jingle module.

/// Why a Jingle element, an SDP description handed to the mapping, or a call command was
/// refused. Every variant that comes from the peer maps to a XEP-0166 reason the call can end
/// with ([`JingleError::reason`]); nothing in this module panics on input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JingleError {
    /// The element is not a well-formed `<jingle/>` (or a child of it is malformed).
    #[error("malformed Jingle: {0}")]
    Malformed(String),
    /// A content uses a transport other than ICE-UDP (XEP-0176), the only one for calls.
    #[error("content `{content}` uses an unsupported transport {namespace}")]
    UnknownTransport {
        /// The content name.
        content: String,
        /// The transport's namespace.
        namespace: String,
    },
    /// A content has a description other than RTP (XEP-0167).
    #[error("content `{content}` has an unsupported application {namespace}")]
    UnknownDescription {
        /// The content name.
        content: String,
        /// The description's namespace.
        namespace: String,
    },
    /// A content that must have a description or transport has none.
    #[error("content `{content}` has no {what}")]
    Missing {
        /// The content name.
        content: String,
        /// `description`, `transport`, `ICE credentials`...
        what: &'static str,
    },
    /// An RTP content without a DTLS fingerprint (XEP-0320): media would be unencrypted, or
    /// not set up at all with a WebRTC stack. Refused.
    #[error("content `{content}` has no DTLS fingerprint")]
    MissingFingerprint {
        /// The content name.
        content: String,
    },
    /// An RTP description with no usable payload type.
    #[error("content `{content}` offers no payload type")]
    NoPayloadTypes {
        /// The content name.
        content: String,
    },
    /// More of something than a call can reasonably carry (see the `MAX_*` constants).
    #[error("more than {max} {what}")]
    TooMany {
        /// What was counted.
        what: &'static str,
        /// The limit.
        max: usize,
    },
    /// A value that the element's schema allows but the mapping cannot use (a payload type id
    /// above 127, an unknown `senders`, a content name that cannot be a `mid`...).
    #[error("bad {what}: {reason}")]
    BadValue {
        /// What was read.
        what: &'static str,
        /// Why it is refused.
        reason: String,
    },
    /// The SDP handed to the mapping cannot be expressed in Jingle (no `a=mid`, a profile that
    /// is not DTLS-SRTP, ...), or an SDP value did not parse.
    #[error("SDP not usable for Jingle: {0}")]
    Sdp(String),
    /// A content name that the session does not have.
    #[error("no content named `{0}` in this session")]
    UnknownContent(String),
    /// A command or a received action that the session's state does not allow.
    #[error("not possible now: {0}")]
    OutOfOrder(String),
}

impl From<lyrebird_sdp::SdpError> for JingleError {
    fn from(e: lyrebird_sdp::SdpError) -> Self {
        JingleError::Sdp(e.to_string())
    }
}

impl JingleError {
    /// The XEP-0166 §7.4 reason a session ends with when this error ends it.
    pub fn reason(&self) -> crate::jingle::Reason {
        use crate::jingle::Reason;
        match self {
            JingleError::UnknownTransport { .. } => Reason::UnsupportedTransports,
            JingleError::UnknownDescription { .. } => Reason::UnsupportedApplications,
            JingleError::MissingFingerprint { .. } => Reason::SecurityError,
            JingleError::NoPayloadTypes { .. } => Reason::FailedApplication,
            JingleError::OutOfOrder(_) | JingleError::UnknownContent(_) => Reason::GeneralError,
            JingleError::Sdp(_) => Reason::FailedApplication,
            JingleError::Malformed(_)
            | JingleError::Missing { .. }
            | JingleError::TooMany { .. }
            | JingleError::BadValue { .. } => Reason::GeneralError,
        }
    }
}
