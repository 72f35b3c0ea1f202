//! The crate's single error type. Every variant is a fault in a description that came from a
//! peer (or a value handed to a parsing helper): answer the offer with 488 or drop the answer,
//! and carry on. Nothing here is caller misuse or a transport failure; this crate does no I/O.

use thiserror::Error;

/// Why a session description (or one attribute value) was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SdpError {
    /// The text is longer than [`crate::MAX_DESCRIPTION_BYTES`].
    #[error("SDP of {len} bytes is larger than the {max} accepted")]
    TooLarge {
        /// The length received.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// More lines, media sections or formats than this crate accepts (see the `MAX_*`
    /// constants): a hostile peer must not make us allocate without bound.
    #[error("SDP has more than {max} {what}")]
    TooMany {
        /// What was counted ("lines", "media sections", ...).
        what: &'static str,
        /// The limit.
        max: usize,
    },
    /// The bytes are not UTF-8 (only [`crate::SessionDescription::parse_bytes`] reports this).
    #[error("SDP is not UTF-8 text")]
    NotText,
    /// A required line (`v=`, `o=`, `s=`, `t=`) is absent.
    #[error("SDP has no {0} line")]
    Missing(&'static str),
    /// One line breaks RFC 8866 syntax. `line` counts from 1.
    #[error("SDP line {line}: {reason}")]
    Syntax {
        /// Line number, from 1.
        line: usize,
        /// What is wrong, quoting (a bounded prefix of) the offending text.
        reason: String,
    },
    /// An attribute value handed to a parsing helper (such as
    /// [`crate::FileSelector::parse`]) is malformed.
    #[error("bad {what}: {reason}")]
    Value {
        /// The attribute ("file-selector", "file-range", ...).
        what: &'static str,
        /// What is wrong.
        reason: String,
    },
}

impl SdpError {
    pub(crate) fn value(what: &'static str, reason: impl Into<String>) -> Self {
        SdpError::Value {
            what,
            reason: reason.into(),
        }
    }
}

/// At most this many characters of peer text go into an error message.
const QUOTE_CHARS: usize = 40;

/// `text` quoted for an error message, cut to a bounded length.
pub(crate) fn quote(text: &str) -> String {
    let cut: String = text.chars().take(QUOTE_CHARS).collect();
    if cut.len() < text.len() {
        format!("{cut:?}…")
    } else {
        format!("{cut:?}")
    }
}
