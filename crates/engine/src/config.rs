//! How a SIP account is set up: where to connect, who to be, where a call's audio goes, and
//! how files and chats travel (MSRP through a relay).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use lyrebird_media::{AudioSink, AudioSource, IceServer};

use crate::secret::Password;

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
    /// How key presses are sent in calls.
    pub dtmf: DtmfMethod,
    /// A second call rings while one is answered (call waiting); off, it gets 486 Busy Here.
    pub call_waiting: bool,
}

/// How key presses (DTMF) are sent in a call. Telephone events in the media (RFC 4733) are
/// what IVRs and gateways expect; SIP INFO (`application/dtmf-relay`) is what browser SIP
/// libraries report to their pages (JsSIP and SIP.js tell their application only INFO digits).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum DtmfMethod {
    /// RFC 4733 telephone events in the RTP stream.
    #[default]
    Rfc4733,
    /// SIP INFO requests (RFC 6086) with `application/dtmf-relay`.
    Info,
    /// Both, for peers whose support is unknown (a peer that reads both hears each key twice).
    Both,
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
            dtmf: DtmfMethod::default(),
            call_waiting: true,
        }
    }
}

/// Where a call's audio comes from and goes to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallAudio {
    pub source: AudioSource,
    pub sink: AudioSink,
    /// A WAV looped to the peer while we hold this call; without it, the engine's
    /// `MediaConfig::music_on_hold` (if any).
    #[serde(default)]
    pub music_on_hold: Option<std::path::PathBuf>,
}

impl CallAudio {
    /// The sound card's default input and output.
    pub fn devices() -> Self {
        Self {
            source: AudioSource::Device { name: None },
            sink: AudioSink::Device { name: None },
            music_on_hold: None,
        }
    }

    /// The audio for a call that takes over this one (a transfer): the same source and
    /// device; a recording goes to its own file beside this one's (`<name>-call<N>.wav`), as
    /// both calls are live for a moment and one file cannot take two recordings.
    pub fn for_successor(&self, call: u64) -> Self {
        let sink = match &self.sink {
            AudioSink::Wav { path } => {
                let stem = path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                AudioSink::Wav {
                    path: path.with_file_name(format!("{stem}-call{call}.wav")),
                }
            }
            other => other.clone(),
        };
        Self {
            source: self.source.clone(),
            sink,
            music_on_hold: self.music_on_hold.clone(),
        }
    }

    /// Sends back what it hears (an echo test service).
    pub fn echo() -> Self {
        Self {
            source: AudioSource::Echo,
            sink: AudioSink::Discard,
            music_on_hold: None,
        }
    }
}

/// Where and how an account sends and receives files.
#[derive(Debug, Clone)]
pub struct FileTransferConfig {
    /// `ws://` or `wss://` URL of the MSRP relay's WebSocket (sub-protocol `msrp`).
    pub relay_ws_url: String,
    /// The relay's own MSRP URI, the To-Path of AUTH, e.g. `msrp://relay.example.com:443;ws`.
    pub relay_uri: String,
    /// Received files land here.
    pub downloads: PathBuf,
    /// Accept every offered file at once, into `downloads`.
    pub auto_accept: bool,
    /// MSRP chunk body size (the relay bounds frames; see `lyrebird_msrp::DEFAULT_CHUNK_SIZE`).
    pub chunk_size: usize,
    /// Most bytes in flight unconfirmed.
    pub window_bytes: u64,
    /// A PEM certificate trusted for the relay in addition to the system roots.
    pub trusted_certificate: Option<PathBuf>,
    /// Relay AUTH lifetime asked for, seconds (RFC 4976 §5.1; Kamailio allows 60–3600).
    pub auth_expires: u32,
    /// How often an interrupted transfer is resumed before it counts as failed.
    pub max_resumes: u32,
    /// Relay credentials when they differ from the SIP account's (RFC 4976 §5.1 digest).
    pub relay_username: Option<String>,
    pub relay_password: Option<Password>,
    /// What our chat sessions accept, in order of preference (`a=accept-types`).
    pub chat_accept_types: Vec<String>,
}

impl FileTransferConfig {
    /// Defaults for everything but where the relay is and where files go.
    pub fn new(
        relay_ws_url: impl Into<String>,
        relay_uri: impl Into<String>,
        downloads: impl Into<PathBuf>,
    ) -> Self {
        Self {
            relay_ws_url: relay_ws_url.into(),
            relay_uri: relay_uri.into(),
            downloads: downloads.into(),
            auto_accept: false,
            chunk_size: lyrebird_msrp::DEFAULT_CHUNK_SIZE,
            window_bytes: 4 << 20,
            trusted_certificate: None,
            auth_expires: 600,
            max_resumes: 20,
            relay_username: None,
            relay_password: None,
            chat_accept_types: vec!["text/plain".into(), "message/cpim".into()],
        }
    }
}
