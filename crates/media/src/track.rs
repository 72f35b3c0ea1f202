//! What audio and video tracks share: random identifiers and the local track a sender writes.

use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

use rtc::media_stream::MediaStreamTrack;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;

/// A random 32-bit value for SSRCs, track ids, initial sequence numbers and timestamps
/// (RFC 3550 §5.1, §8.1: unpredictable, not secret).
pub(crate) fn random_u32() -> u32 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    hasher.finish() as u32
}

/// A local track for `add_track`, sending `codec` on `ssrc`. Its id is random because webrtc-rs
/// routes RTCP to local and remote tracks by track id: two ends both naming theirs "video"
/// would have feedback about one delivered to the other.
pub(crate) fn local_track(
    kind: RtpCodecKind,
    ssrc: u32,
    codec: RTCRtpCodec,
) -> Arc<TrackLocalStaticRTP> {
    let name = match kind {
        RtpCodecKind::Video => "video",
        _ => "audio",
    };
    Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
        "lyrebird".to_owned(),
        format!("{name}-{:08x}", random_u32()),
        name.to_owned(),
        kind,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                ..Default::default()
            },
            codec,
            ..Default::default()
        }],
    )))
}
