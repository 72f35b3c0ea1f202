//! The crate's single error type.
//!
//! Variants fall in three groups so the engine can react correctly:
//! * caller misuse (`InvalidState`, `InvalidDtmfDigit`, `DtmfNotNegotiated`) — a bug or a UI
//!   action that does not apply now; nothing to retry;
//! * a peer's protocol fault (`BadSdp`, `NoCommonCodec`, `NoCommonVideoCodec`,
//!   `UnsupportedProfile`) — answer the SIP request with an error (488 Not Acceptable Here) and
//!   carry on;
//! * a dead transport or environment (`IceFailed`, `Transport`, `AudioFile`, `AudioDevice`,
//!   `Closed`) — end or re-establish the call;
//! * `Video` carries the picture side's own error (`lyrebird_video::Error`), which says itself
//!   whose fault it is (a bad setting, a damaged stream, libvpx or a file).

/// Everything that can go wrong in a media session.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MediaError {
    /// The peer's SDP could not be parsed or is not a usable WebRTC audio description.
    #[error("unusable SDP from peer: {0}")]
    BadSdp(String),
    /// The peer offered or answered no audio codec we can encode and decode.
    #[error("no common audio codec (we support opus, PCMU, PCMA); peer offered: {offered}")]
    NoCommonCodec {
        /// The encodings the peer listed, for the log and the 488 reason.
        offered: String,
    },
    /// The peer offered or answered no video codec we can encode and decode (VP8 only, so far).
    #[error("no common video codec (we support VP8); peer offered: {offered}")]
    NoCommonVideoCodec {
        /// The encodings the peer listed, for the log and the 488 reason.
        offered: String,
    },
    /// The peer's audio is not on the WebRTC profile (DTLS-SRTP, `UDP/TLS/RTP/SAVPF`): a SIP
    /// phone offering plain RTP (`RTP/AVP`) or SDES keys (`RTP/SAVP`).
    #[error(
        "the other side's phone offers {protocol} (plain RTP or SDES-SRTP without DTLS); \
         Lyrebird speaks only the WebRTC profile (UDP/TLS/RTP/SAVPF, DTLS-SRTP) so far"
    )]
    UnsupportedProfile {
        /// The `m=` line's transport protocol.
        protocol: String,
    },
    /// A method was called in a state where it does not apply (e.g. `apply_answer` before
    /// `create_offer`).
    #[error("operation not valid now: {0}")]
    InvalidState(&'static str),
    /// `send_dtmf` was given something that is not one of `0-9 * # A-D`.
    #[error("not a DTMF digit: {0:?}")]
    InvalidDtmfDigit(char),
    /// The peer did not accept `telephone-event` (RFC 4733), so DTMF cannot be sent in band.
    #[error("telephone-event was not negotiated with the peer")]
    DtmfNotNegotiated,
    /// ICE could not find a working candidate pair (or the connection failed later).
    #[error("ICE failed: {0}")]
    IceFailed(String),
    /// The WebRTC stack reported an error (socket bind, DTLS, internal state).
    #[error("WebRTC transport error: {0}")]
    Transport(String),
    /// A WAV file could not be read or written.
    #[error("audio file error: {0}")]
    AudioFile(String),
    /// An audio device could not be opened or failed.
    #[error("audio device error: {0}")]
    AudioDevice(String),
    /// The video codec, a video setting or a Y4M recording failed.
    #[error("video: {0}")]
    Video(#[from] lyrebird_video::Error),
    /// The session's media task has stopped (the session was closed or crashed).
    #[error("media session is closed")]
    Closed,
}

impl MediaError {
    pub(crate) fn transport(err: impl std::fmt::Display) -> Self {
        MediaError::Transport(err.to_string())
    }
}
