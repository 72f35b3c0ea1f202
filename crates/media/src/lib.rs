//! Lyrebird's media engine: a WebRTC peer connection per call and the audio pipeline around it.
//!
//! ```text
//!  source (tone/WAV/device/echo) ──20 ms──▶ encoder (Opus | G.711) ──RTP──▶ webrtc (SRTP/ICE)
//!  sink (WAV/device/discard) ◀──20 ms── decoder + PLC ◀── jitter buffer ◀──RTP── webrtc
//! ```
//!
//! * [`MediaSession`] is the whole API for a call: build it, exchange SDP
//!   ([`create_offer`](MediaSession::create_offer) / [`apply_answer`](MediaSession::apply_answer)
//!   or [`accept_offer`](MediaSession::accept_offer)), watch [`MediaEvent`]s, read
//!   [`MediaStats`], [`close`](MediaSession::close).
//! * The media profile is the browser one (JSEP, RFC 8829): `UDP/TLS/RTP/SAVPF`, ICE (RFC 8445),
//!   DTLS-SRTP (RFC 5763/5764), rtcp-mux (RFC 5761), BUNDLE (RFC 8843), provided by the
//!   `webrtc` crate. SDP returned to the caller already contains all gathered candidates,
//!   because SIP peers do not trickle.
//! * Codecs: Opus (RFC 7587) preferred, G.711 µ-law/A-law (RFC 3551) implemented here, DTMF as
//!   RFC 4733 telephone events; VP8 video (RFC 7741) in [`video`].
//! * Modules [`g711`], [`resample`], [`jitter`] and [`dtmf`] are pure and unit-tested; they
//!   are public so benchmarks and tests can use them directly.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod audio;
pub mod codec;
mod conference;
mod config;
mod device;
pub mod dtmf;
mod early_packets;
mod error;
pub mod g711;
mod hold;
pub mod jitter;
mod media_thread;
pub mod resample;
pub mod sdp;
mod session;
mod track;
mod turn_rest;
mod turn_stream;
pub mod video;

pub use audio::read_wav_48k_mono;
pub use conference::Conference;
pub use config::{
    AudioCodec, AudioDevices, AudioSink, AudioSource, DeviceRole, IceServer, MediaConfig,
    MediaEvent, MediaStats, VideoConfig, VideoReceivedStats, VideoSentStats, VideoSourceKind,
};
pub use device::{InputMeter, list_devices, play_test_tone};
pub use error::MediaError;
pub use hold::HoldState;
pub use session::MediaSession;
pub use turn_stream::turn_url_problem;
pub use video::{
    VideoReceiver, VideoReceiverConfig, VideoReceiverStats, VideoSender, VideoSenderConfig,
    VideoSenderStats, VideoSource,
};
