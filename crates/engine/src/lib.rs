//! The Lyrebird engine: the only place with sockets, timers and tasks.
//!
//! Front ends (the desktop shell, `lyrebird-cli`) hold an [`EngineHandle`]: they send commands
//! and read [`EngineEvent`]s. Behind it, one task owns each live thing:
//!
//! ```text
//!  EngineHandle ──commands──▶ supervisor ──▶ SIP account task ──▶ call task (one per call)
//!       ▲                        │  owns           owns: WebSocket,     owns: MediaSession
//!       └──────events────────────┘  id maps        sip::UserAgent core  (WebRTC + audio)
//!                                   history writer thread (SQLite, one transaction per batch)
//! ```
//!
//! The protocol cores (`lyrebird-sip`) do no I/O; the account task feeds them WebSocket messages,
//! the current time and commands, and carries out what they ask for.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod account;
mod backoff;
mod call;
mod engine;
mod event;
mod history;
mod profile;
pub mod secret;
mod transfer;
pub mod transport;
mod xmpp;

pub use engine::{Engine, EngineConfig, EngineHandle};
pub use event::{AccountState, CallDirection, CallState, EngineEvent};
pub use history::{CallRecord, MessageRecord, SearchHit};
pub use lyrebird_media::{
    AudioDevices, AudioSink, AudioSource, IceServer, InputMeter, MediaConfig, MediaStats,
    list_devices as list_audio_devices, play_test_tone,
};
pub use lyrebird_store::Transfer as TransferRecord;
pub use profile::{
    AccountCheck, AccountSettings, ContactEntry, ConversationSummary, SavedAccount, SipSettings,
    TurnSettings, XmppSettings,
};
pub use secret::{Password, PasswordSource};
pub use transfer::{FileTransferConfig, OfferedFile, TransferDirection, TransferId, TransferState};
pub use xmpp::{
    ChatOrigin, ResourcePresence, RosterContact, XmppAccountConfig, XmppAction, XmppReply,
};

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

/// A SIP account: where to connect and who to be.
#[derive(Debug, Clone)]
pub struct SipAccountConfig {
    /// `ws://` or `wss://` URL of the SIP-over-WebSocket server (RFC 7118).
    pub ws_url: String,
    /// Address of record, e.g. `sip:alice@example.com`.
    pub aor: String,
    pub display_name: Option<String>,
    /// Digest user name when it differs from the AoR's user part.
    pub auth_username: Option<String>,
    pub password: Password,
    /// A SIP URI every request is routed through (preloaded Route).
    pub outbound_proxy: Option<String>,
    /// A PEM certificate trusted for this server in addition to the system roots.
    pub trusted_certificate: Option<std::path::PathBuf>,
    /// Registration lifetime asked for, in seconds.
    pub register_expires: u32,
    /// Answer every incoming call at once with this audio (bots, echo service, tests).
    pub auto_answer: Option<CallAudio>,
    /// A stable `+sip.instance` UUID for this device (RFC 5626); a fresh one when `None`.
    pub instance_id: Option<String>,
    /// File transfer over MSRP (RFC 4975/4976/5547); `None` declines file offers (488).
    pub file_transfer: Option<FileTransferConfig>,
    /// STUN/TURN servers for this account's calls, instead of the engine's.
    pub ice_servers: Option<Vec<IceServer>>,
}

impl SipAccountConfig {
    /// A configuration with the usual defaults for everything but the essentials.
    pub fn new(ws_url: impl Into<String>, aor: impl Into<String>, password: Password) -> Self {
        Self {
            ws_url: ws_url.into(),
            aor: aor.into(),
            display_name: None,
            auth_username: None,
            password,
            outbound_proxy: None,
            trusted_certificate: None,
            register_expires: 600,
            auto_answer: None,
            instance_id: None,
            file_transfer: None,
            ice_servers: None,
        }
    }
}

/// Where a call's audio comes from and goes to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallAudio {
    pub source: AudioSource,
    pub sink: AudioSink,
}

impl CallAudio {
    /// The sound card's default input and output.
    pub fn devices() -> Self {
        Self {
            source: AudioSource::Device { name: None },
            sink: AudioSink::Device { name: None },
        }
    }

    /// Sends back what it hears (an echo test service).
    pub fn echo() -> Self {
        Self {
            source: AudioSource::Echo,
            sink: AudioSink::Discard,
        }
    }
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
