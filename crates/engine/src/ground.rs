//! Plumbing every part of the engine shares: the ids it hands out, the error its commands
//! return, and the wall clock as history stores it. It imports nothing of the engine, so any
//! module can use it without pulling in another.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Identifies an account for the life of the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(transparent)]
pub struct AccountId(pub u32);

/// Identifies a call for the life of the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(transparent)]
pub struct CallId(pub u64);

/// Identifies an outgoing message until it is delivered or has failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(transparent)]
pub struct MessageId(pub u64);

impl std::fmt::Display for AccountId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "account {}", self.0)
    }
}

impl std::fmt::Display for CallId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "call {}", self.0)
    }
}

/// Identifies a file transfer for the life of the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(transparent)]
pub struct TransferId(pub u64);

impl std::fmt::Display for TransferId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "transfer {}", self.0)
    }
}

/// Ids handed out by the engine, unique across accounts.
#[derive(Debug, Default)]
pub(crate) struct IdSource {
    next: AtomicU64,
}

impl IdSource {
    pub(crate) fn next(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// The longest text sent as one SIP MESSAGE body, in UTF-8 bytes (an MSRP chat session with
/// the peer carries any length, in chunks). A proxy answers a longer
/// message by dropping the connection, which interrupts the account's signalling and loses
/// whatever else was in flight: Kamailio reads a WebSocket frame into a 16 KiB buffer
/// ("advertised length greater than buffer size (16383)"), and the message's headers, with
/// those the proxy adds on the way, need the rest. So a longer text is refused before it is
/// sent, with words that say to send it as a file.
pub const MAX_SIP_TEXT_BYTES: usize = 12 * 1024;

/// The longest text sent as one XMPP message stanza's body, in UTF-8 bytes: Prosody's default
/// stanza limit is 256 KiB, and XML escaping can make a text four times longer (`<` is
/// `&lt;`); past the limit the server closes the stream.
pub const MAX_XMPP_TEXT_BYTES: usize = 48 * 1024;

/// Refuses a text longer than `limit` bytes (one of the limits above).
pub(crate) fn check_text_length(body: &str, limit: usize) -> Result<(), EngineError> {
    if body.len() <= limit {
        return Ok(());
    }
    Err(EngineError::TooLong(format!(
        "the message is {} kB long and a text message can be at most {} kB; send it as a file \
         instead",
        body.len().div_ceil(1024),
        limit / 1024
    )))
}

/// Wall-clock time in ms since the Unix epoch, as history stores it.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Everything that can go wrong in a command, told so a person can act on it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(tag = "kind", content = "detail", rename_all = "snake_case")]
pub enum EngineError {
    /// The caller asked for something malformed (bad URL, bad address, unreadable file).
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// No such account.
    #[error("no such account: {0}")]
    UnknownAccount(u32),
    /// No such call, or it has already ended.
    #[error("no such call: {0}")]
    UnknownCall(u64),
    /// The command does not fit the call's state (answering an outgoing call, ...).
    #[error("not possible now: {0}")]
    InvalidState(String),
    /// The server or network failed.
    #[error("transport: {0}")]
    Transport(String),
    /// The server's TLS certificate is not one this account trusts. Final: retrying cannot
    /// change a certificate, so the account waits until its trust setting changes.
    #[error("{0}")]
    Untrusted(String),
    /// A text too long to send as one message (see [`MAX_SIP_TEXT_BYTES`]).
    #[error("{0}")]
    TooLong(String),
    /// The SIP core refused the command.
    #[error("SIP: {0}")]
    Sip(String),
    /// Audio or WebRTC failed.
    #[error("media: {0}")]
    Media(String),
    /// The history database failed.
    #[error("history: {0}")]
    History(String),
    /// The XMPP stream failed or the server refused the command.
    #[error("XMPP: {0}")]
    Xmpp(String),
    /// The OS keyring failed or has no such entry.
    #[error("keyring: {0}")]
    Keyring(String),
    /// The engine has shut down.
    #[error("the engine has stopped")]
    Stopped,
}

impl From<lyrebird_sip::SipError> for EngineError {
    fn from(e: lyrebird_sip::SipError) -> Self {
        EngineError::Sip(e.to_string())
    }
}

impl From<lyrebird_media::MediaError> for EngineError {
    fn from(e: lyrebird_media::MediaError) -> Self {
        EngineError::Media(e.to_string())
    }
}

impl From<lyrebird_store::StoreError> for EngineError {
    fn from(e: lyrebird_store::StoreError) -> Self {
        EngineError::History(e.to_string())
    }
}
