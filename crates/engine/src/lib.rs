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
//!
//! Layers, each using only those before it (`tests/module_graph.rs` keeps it so): `ground` (ids,
//! errors, time) → `event`, `secret`, `config`, `notice`, `session` → `history`, `transport` →
//! the session tasks (`call`, `msrp/`) → `command` → the account tasks (`sip/`, `xmpp/`) → `profile` →
//! `engine` (the supervisor).

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod backoff;
mod call;
mod command;
mod config;
mod engine;
mod event;
mod ground;
mod history;
mod msrp;
mod notice;
mod profile;
pub mod secret;
mod session;
mod sip;
pub mod transport;
mod xmpp;

pub use config::{CallAudio, DtmfMethod, FileTransferConfig, SipAccountConfig};
pub use engine::{Engine, EngineConfig, EngineHandle};
pub use event::{
    AccountState, CallDirection, CallState, ChatOrigin, EngineEvent, OfferedFile,
    TransferDirection, TransferState,
};
pub use ground::{
    AccountId, CallId, EngineError, MAX_SIP_TEXT_BYTES, MAX_XMPP_TEXT_BYTES, MessageId, TransferId,
};
pub use history::{CallRecord, MessageRecord, SearchHit};
pub use lyrebird_media::{
    AudioDevices, AudioSink, AudioSource, DeviceRole, IceServer, InputMeter, MediaConfig,
    MediaStats, VideoConfig, VideoSourceKind, list_devices as list_audio_devices, play_test_tone,
    turn_url_problem,
};
pub use lyrebird_store::Transfer as TransferRecord;
pub use profile::{
    AccountCheck, AccountSettings, ContactEntry, ConversationSummary, SavedAccount, SipSettings,
    TurnSettings, XmppSettings,
};
pub use secret::{Password, PasswordSource};
pub use xmpp::{ResourcePresence, RosterContact, XmppAccountConfig, XmppAction, XmppReply};
