//! Configuration, source/sink selection, statistics and events: the plain data the engine
//! stores in settings and sends to the UI as JSON.

use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

/// How a media session gathers candidates and which codecs it offers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct MediaConfig {
    /// STUN/TURN servers (RFC 8489 / RFC 8656). Empty in tests.
    pub ice_servers: Vec<IceServer>,
    /// Whether host candidates are hidden behind mDNS names (draft-ietf-mmusic-mdns-ice-candidates).
    /// Off in tests: the test network namespace has no multicast interface.
    pub mdns: bool,
    /// Local addresses to bind ICE sockets to; empty means every interface.
    pub bind_addrs: Vec<IpAddr>,
    /// Only relay candidates (W3C `iceTransportPolicy: "relay"`): proves TURN and hides the
    /// local address from the peer.
    pub relay_only: bool,
    /// Upper bound on waiting for ICE gathering before returning an SDP. SIP peers do not
    /// trickle (RFC 8840 is rare), so the SDP must carry the candidates; on loopback or LAN
    /// gathering completes in milliseconds and this bound only matters for unreachable STUN/TURN.
    #[serde(with = "duration_ms")]
    pub gathering_timeout: Duration,
    /// Audio codecs to offer, most preferred first. `telephone-event` (RFC 4733) is always
    /// added. Tests use `[Pcmu]` to force G.711.
    pub codecs: Vec<AudioCodec>,
    /// A WAV file played, looped, to a peer we hold (RFC 6337 §5.1 lets the holder keep
    /// sending); without it a held peer hears silence. Never the microphone.
    pub music_on_hold: Option<PathBuf>,
    /// Video: what we send and what becomes of what we receive.
    pub video: VideoConfig,
}

/// A call's video (VP8, RFC 7741). Without a source no video is offered; a peer's video offer
/// is still taken, received and decoded (answered receive-only).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct VideoConfig {
    /// What we send, if anything.
    pub source: Option<VideoSourceKind>,
    /// Target bitrate of what we send, kbit/s; the receiver's feedback lowers it on a bad link.
    pub bitrate_kbps: u32,
    /// Received video is written to this Y4M file (headless recording, like a WAV sink).
    pub record: Option<PathBuf>,
}

impl Default for VideoConfig {
    fn default() -> Self {
        VideoConfig {
            source: None,
            bitrate_kbps: 800,
            record: None,
        }
    }
}

/// A video source.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum VideoSourceKind {
    /// A moving synthetic picture with its frame counter stamped in, so that a receiver can
    /// read back which frame it shows (order, gaps, latency).
    TestPattern { width: u32, height: u32, fps: u32 },
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            ice_servers: Vec::new(),
            mdns: false,
            bind_addrs: Vec::new(),
            relay_only: false,
            gathering_timeout: Duration::from_secs(2),
            codecs: vec![AudioCodec::Opus, AudioCodec::Pcmu, AudioCodec::Pcma],
            music_on_hold: None,
            video: VideoConfig::default(),
        }
    }
}

/// A STUN or TURN server, as in the W3C `RTCIceServer` dictionary.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct IceServer {
    /// `stun:host:port`, `turn:host:port?transport=udp`, `turns:…`.
    pub urls: Vec<String>,
    /// TURN long-term credential user name (RFC 8656 §9.2).
    pub username: Option<String>,
    /// TURN long-term credential password.
    pub credential: Option<String>,
    /// Time-limited credentials instead of a fixed password: the secret shared with the TURN
    /// server (coturn's `static-auth-secret`; the scheme Kamailio's `auth_ephemeral` uses).
    /// Each session derives its own user name and password from it (`turn_rest.rs`), with
    /// `username` as the user part.
    #[serde(default)]
    pub shared_secret: Option<String>,
}

/// An audio codec this crate can encode and decode.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum AudioCodec {
    /// Opus (RFC 6716, RTP payload RFC 7587): 48 kHz, in-band FEC.
    Opus,
    /// G.711 µ-law, static payload type 0 (RFC 3551 §6).
    Pcmu,
    /// G.711 A-law, static payload type 8 (RFC 3551 §6).
    Pcma,
}

impl AudioCodec {
    /// The encoding name as written in `a=rtpmap`.
    pub fn encoding_name(self) -> &'static str {
        match self {
            AudioCodec::Opus => "opus",
            AudioCodec::Pcmu => "PCMU",
            AudioCodec::Pcma => "PCMA",
        }
    }

    /// RTP clock rate (RFC 7587 §4.1: Opus is always 48000; G.711 is 8000).
    pub fn clock_rate(self) -> u32 {
        match self {
            AudioCodec::Opus => 48_000,
            AudioCodec::Pcmu | AudioCodec::Pcma => 8_000,
        }
    }

    pub(crate) fn from_encoding_name(name: &str) -> Option<Self> {
        if name.eq_ignore_ascii_case("opus") {
            Some(AudioCodec::Opus)
        } else if name.eq_ignore_ascii_case("PCMU") {
            Some(AudioCodec::Pcmu)
        } else if name.eq_ignore_ascii_case("PCMA") {
            Some(AudioCodec::Pcma)
        } else {
            None
        }
    }
}

/// Where the audio we send comes from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AudioSource {
    /// Digital silence.
    Silence,
    /// A sine tone.
    Tone {
        /// Frequency in Hz.
        frequency_hz: f32,
        /// Peak amplitude, 0..1 of full scale.
        amplitude: f32,
    },
    /// A WAV file of any rate and channel count, converted to 48 kHz mono.
    Wav {
        /// The file.
        path: PathBuf,
        /// Start again at the end instead of sending silence.
        looped: bool,
    },
    /// A capture device via cpal; `None` is the system default.
    Device {
        /// Device name as returned by [`crate::list_devices`].
        name: Option<String>,
    },
    /// Send back what is received (an echo test / auto-answer bot).
    Echo,
}

/// Where the audio we receive goes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AudioSink {
    /// Decode (so statistics and levels are real) and drop.
    Discard,
    /// Record to a 48 kHz mono 16-bit WAV file, time-true from session start.
    Wav {
        /// The file to create (overwritten).
        path: PathBuf,
    },
    /// A playback device via cpal; `None` is the system default.
    Device {
        /// Device name as returned by [`crate::list_devices`].
        name: Option<String>,
    },
}

/// A snapshot of a session's counters, for the UI and for benchmarks.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct MediaStats {
    /// RTP audio packets written (DTMF events included).
    pub packets_sent: u64,
    /// RTP payload bytes written.
    pub bytes_sent: u64,
    /// RTP audio packets received from the peer (duplicates excluded).
    pub packets_received: u64,
    /// RTP payload bytes received.
    pub bytes_received: u64,
    /// Packets never received in time to play (concealed).
    pub packets_lost: u64,
    /// Packets that arrived after their playout time and were dropped.
    pub packets_late: u64,
    /// RFC 3550 §6.4.1 interarrival jitter, in milliseconds.
    pub jitter_ms: f32,
    /// Current jitter-buffer target delay, in milliseconds.
    pub jitter_buffer_ms: u32,
    /// Negotiated send codec (`opus`, `PCMU`, `PCMA`), empty before negotiation.
    pub codec: String,
    /// RMS level of the last 20 ms sent, 0..1 of full scale (0 while muted).
    pub input_level: f32,
    /// RMS level of the last 20 ms played, 0..1 of full scale.
    pub output_level: f32,
    /// Video sent, when we send video.
    pub video_sent: Option<VideoSentStats>,
    /// Video received, once the peer's video track arrived.
    pub video_received: Option<VideoReceivedStats>,
}

/// What our video sender has done so far.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct VideoSentStats {
    pub frames_encoded: u64,
    pub keyframes_encoded: u64,
    /// PLI and FIR from the peer.
    pub keyframe_requests_received: u64,
    /// Frames not encoded because the sender fell behind.
    pub frames_skipped: u64,
    pub packets_sent: u64,
    pub bytes_sent: u64,
    /// The encoder's target now (follows the receiver's bandwidth feedback).
    pub bitrate_kbps: u32,
    pub width: u32,
    pub height: u32,
    /// Wall-clock ms (since 1970) at which the first frame was taken.
    pub first_capture_unix_ms: Option<u64>,
}

/// What has arrived of the peer's video so far (W3C webrtc-stats names where they exist).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct VideoReceivedStats {
    pub frames_decoded: u64,
    /// Frames lost in transit or undecodable.
    pub frames_dropped: u64,
    pub keyframes_decoded: u64,
    /// PLIs we sent.
    pub keyframe_requests_sent: u64,
    pub packets_received: u64,
    pub bytes_received: u64,
    pub width: u32,
    pub height: u32,
    pub frames_per_second: u32,
    pub freeze_count: u64,
    pub total_freeze_ms: u64,
    /// For a test-pattern sender: the last frame counter read from the picture, how often it
    /// skipped ahead and how many numbers it skipped, how often it went backwards, and pictures
    /// without a readable counter.
    pub last_counter: Option<u32>,
    /// When the picture with `last_counter` was decoded, wall-clock ms since 1970.
    pub last_counter_at_unix_ms: Option<u64>,
    pub counter_gaps: u64,
    pub counters_skipped: u64,
    pub counters_backwards: u64,
    pub counters_unreadable: u64,
}

/// Something the engine should know about, delivered on [`crate::MediaSession::events`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MediaEvent {
    /// ICE and DTLS are up; media flows.
    Connected,
    /// The first RTP audio packet arrived from the peer.
    FirstAudioReceived,
    /// Connectivity was lost (ICE consent failing); it may come back.
    Disconnected,
    /// The peer pressed a key (an RFC 4733 telephone event, told once per key press).
    Dtmf {
        /// `0-9`, `*`, `#` or `A-D`.
        digit: char,
    },
    /// The connection failed for good.
    Failed {
        /// Human-readable cause.
        reason: String,
    },
    /// A sound-card device could not be opened, so the call goes on without it: the peer
    /// hears silence instead of the microphone, or what arrives is decoded and dropped instead
    /// of played. Told once, at the start of the session.
    DeviceUnavailable {
        /// Which device.
        role: DeviceRole,
        /// Why, in the sound system's words.
        reason: String,
    },
}

/// What a sound-card device is for.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum DeviceRole {
    /// The capture device.
    Microphone,
    /// The playback device.
    Speaker,
}

/// Input and output device names, as cpal reports them.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct AudioDevices {
    /// Capture devices.
    pub inputs: Vec<String>,
    /// Playback devices.
    pub outputs: Vec<String>,
    /// The default capture device, if any.
    pub default_input: Option<String>,
    /// The default playback device, if any.
    pub default_output: Option<String>,
}

mod duration_ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(u64::try_from(value.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(deserializer)?))
    }
}
