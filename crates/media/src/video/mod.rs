//! VP8 video over the call's peer connection: codec registration and interceptors
//! ([`register_video_codecs`], [`configure_video_interceptors`]), a sender that encodes a
//! [`VideoSource`] on its own thread ([`VideoSender`]), and a receiver that reassembles,
//! decodes and hands pictures to its sinks on its own thread ([`VideoReceiver`]).
//!
//! ```text
//!  VideoSource ─▶ [enc thread] Vp8Encoder ─▶ RTP (RFC 7741) ─▶ TrackLocalStaticRTP ─▶ webrtc
//!       ▲ keyframe requests (PLI/FIR), bandwidth (TWCC → GCC, REMB) ◀──────────────── RTCP
//!  webrtc ─▶ TrackRemote ─▶ FrameAssembler ─▶ [dec thread] Vp8Decoder ─▶ stats/Y4M/renderer
//!                               └─ loss / undecodable ─▶ PLI ─▶ TrackRemote::write_rtcp
//! ```
//!
//! Neither codec ever runs on the media thread (see `media_thread.rs`), which carries audio:
//! the media thread only moves packets.
//!
//! Wiring into a peer connection, in order:
//! 1. [`register_video_codecs`] on the `MediaEngine`, then [`configure_video_interceptors`]
//!    on the interceptor `Registry` (with a [`BandwidthEstimate`] to share with the sender);
//! 2. `add_track(`[`video_track`]`(ssrc))` for a sending end, or
//!    `add_transceiver_from_kind(Video, recvonly)` for a receive-only one;
//! 3. after the answer, [`negotiated_vp8`] on the `RtpSender` for the SSRC and payload type,
//!    and, once connected, [`VideoSender::start`];
//! 4. in `on_track`, for a track of kind video, [`VideoReceiver::start`].

mod receiver;
mod rtp;
mod sender;
mod setup;

pub use receiver::{
    FrameCallback, FrameInfo, LOSS_WAIT, PLI_MIN_INTERVAL, VideoReceiver, VideoReceiverConfig,
    VideoReceiverStats,
};
pub use sender::{
    AtFrameRate, DEFAULT_FRAME_RATE, VideoSender, VideoSenderConfig, VideoSenderStats, VideoSource,
};
pub use setup::{
    BandwidthEstimate, CongestionControl, VP8_PAYLOAD_TYPE, configure_video_interceptors,
    negotiated_vp8, register_video_codecs, video_track, vp8_codec_parameters, vp8_rtcp_feedback,
};

pub(crate) use crate::track::random_u32;

/// Wall-clock milliseconds since 1970, comparable between processes on one machine (for the
/// capture-to-decode latency of the test pattern).
pub(crate) fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or_default()
}
