//! What a peer connection needs before it can carry video: the VP8 codec as browsers describe
//! it, and the interceptors around it (loss repair, reports, congestion control, and the one
//! that lets keyframe requests reach the sender).

use crate::error::MediaError;
use rtc::interceptor::{
    Attribute, BandwidthEstimator, CongestionControlBuilder, EstimatorStats, Gcc, Interceptor,
    NackGeneratorBuilder, NackResponderBuilder, Packet, PacketReport, ReceiverReportBuilder,
    SenderReportBuilder, Slot, StreamInfo, TaggedPacket, TwccReceiverBuilder, TwccSenderBuilder,
};
use rtc::peer_connection::configuration::media_engine::MIME_TYPE_VP8;
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate;
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpHeaderExtensionCapability, RtpCodecKind,
};
use rtc::sansio::Protocol;
use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::peer_connection::{MediaEngine, Registry};
use webrtc::rtp_transceiver::RtpSender;

/// The payload type Chromium gives VP8 in its offers, so ours and its answers agree.
pub const VP8_PAYLOAD_TYPE: u8 = 96;

/// How often the receiver's NACK generator looks for holes. A hole is asked for at most this
/// long after it shows, and again each interval while it stays open.
const NACK_INTERVAL: Duration = Duration::from_millis(50);
/// NACKs per missing packet: four intervals (200 ms), as long as the receiver waits for the
/// packet before giving up its frame (`receiver::LOSS_WAIT`).
const NACKS_PER_PACKET: u16 = 4;
/// How often transport-wide feedback goes back to a sender: libwebrtc's default.
const TWCC_FEEDBACK_INTERVAL: Duration = Duration::from_millis(100);
/// Past the jitter buffer (13 000), the application-most position: the forwarder must see
/// inbound RTCP after every interceptor that acts on it.
const FEEDBACK_FORWARDER_SLOT: usize = 14_000;

/// The RTCP feedback we offer with VP8, as Chromium does (RFC 4585 `nack` and `nack pli`,
/// RFC 5104 `ccm fir`, `goog-remb`, and `transport-cc`). Every one has a user here: the NACK
/// responder answers `nack`, [`VideoSender`](super::VideoSender) answers PLI and FIR and
/// follows REMB, and the congestion controller reads transport-wide feedback. Our receiver
/// sends NACK, PLI and transport-wide feedback, never FIR or REMB (which the sender side
/// ignores when it has `transport-cc`).
pub fn vp8_rtcp_feedback() -> Vec<RTCPFeedback> {
    [
        ("goog-remb", ""),
        ("transport-cc", ""),
        ("ccm", "fir"),
        ("nack", ""),
        ("nack", "pli"),
    ]
    .into_iter()
    .map(|(typ, parameter)| RTCPFeedback {
        typ: typ.to_owned(),
        parameter: parameter.to_owned(),
    })
    .collect()
}

/// VP8 as browsers expect it: `video/VP8` at the 90 kHz clock (RFC 7741 §6.1), no format
/// parameters, with [`vp8_rtcp_feedback`].
pub fn vp8_codec_parameters(payload_type: u8) -> RTCRtpCodecParameters {
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: MIME_TYPE_VP8.to_owned(),
            clock_rate: lyrebird_video::RTP_VIDEO_CLOCK_RATE,
            channels: 0,
            sdp_fmtp_line: String::new(),
            rtcp_feedback: vp8_rtcp_feedback(),
        },
        payload_type,
    }
}

/// Registers VP8 at [`VP8_PAYLOAD_TYPE`] and the transport-wide sequence number header
/// extension for video, which `transport-cc` feedback needs. Audio codecs are left alone.
pub fn register_video_codecs(media_engine: &mut MediaEngine) -> Result<(), MediaError> {
    media_engine
        .register_codec(vp8_codec_parameters(VP8_PAYLOAD_TYPE), RtpCodecKind::Video)
        .map_err(MediaError::transport)?;
    // For audio too, as browsers do: the sequence numbers are transport-wide, so what we send
    // of audio is numbered as well, and feedback that left audio out (the extension not
    // agreed for it) read as 30–60 % loss on a lossless path and drove video to its floor.
    for kind in [RtpCodecKind::Video, RtpCodecKind::Audio] {
        media_engine
            .register_header_extension(
                RTCRtpHeaderExtensionCapability {
                    uri: rtc::sdp::extmap::TRANSPORT_CC_URI.to_owned(),
                },
                kind,
                None,
            )
            .map_err(MediaError::transport)?;
    }
    Ok(())
}

/// The estimate of the path's capacity, shared between the congestion controller inside the
/// peer connection's interceptor chain and the [`VideoSender`](super::VideoSender) that encodes
/// to it. One per peer connection; clones share it.
#[derive(Debug, Clone, Default)]
pub struct BandwidthEstimate {
    bits_per_second: Arc<AtomicU64>,
}

impl BandwidthEstimate {
    pub fn new() -> Self {
        Self::default()
    }

    /// The latest estimate, once feedback from the receiver has produced one.
    pub fn bits_per_second(&self) -> Option<u64> {
        match self.bits_per_second.load(Ordering::Relaxed) {
            0 => None,
            bps => Some(bps),
        }
    }

    fn publish(&self, bits_per_second: f64) {
        // A float estimate becomes whole bits; 0 is reserved for "none yet".
        let bps = if bits_per_second.is_finite() {
            bits_per_second.max(1.0) as u64
        } else {
            return;
        };
        self.bits_per_second.store(bps, Ordering::Relaxed);
    }
}

/// Bounds of the congestion controller, kbit/s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CongestionControl {
    /// Where the estimate starts. With no bandwidth probing in webrtc-rs the estimate can only
    /// grow by its slow additive steps, so starting from the sender's configured rate (rather
    /// than Chromium's 300 kbit/s, which it probes up from within a second) keeps the first
    /// seconds of a call sharp; a congested path brings it down within a few feedback rounds.
    pub start_kbps: u32,
    pub min_kbps: u32,
    pub max_kbps: u32,
}

impl Default for CongestionControl {
    fn default() -> Self {
        Self {
            start_kbps: 1_000,
            min_kbps: 100,
            max_kbps: 4_000,
        }
    }
}

/// Adds what video needs to a peer connection's interceptor chain, and the matching RTCP
/// feedback to `media_engine` (call after [`register_video_codecs`]):
///
/// * NACK generator and responder (RFC 4585) — losses are asked for again within 50 ms;
///   retransmissions go on the media SSRC, as no RTX (RFC 4588) is negotiated;
/// * sender and receiver reports (RFC 3550) — harmless to add again if audio added them;
/// * transport-wide sequence numbers on what we send and transport-wide feedback on what we
///   receive, so both ends' congestion controllers have something to go on;
/// * with `congestion_control`, webrtc-rs's Google Congestion Control fed by that feedback,
///   its estimate published to `estimate` for the sender's encoder. Deliberately *without*
///   webrtc-rs's pacer: it would pace audio too, at exactly the estimate, queueing voice
///   behind video; the encoder's rate control keeps video near the estimate instead;
/// * a forwarder that passes inbound PLI, FIR and REMB to the sending track (webrtc-rs ends
///   inbound RTCP inside the chain unless an interceptor marks it for the application).
pub fn configure_video_interceptors(
    registry: Registry,
    media_engine: &mut MediaEngine,
    congestion_control: Option<(CongestionControl, &BandwidthEstimate)>,
) -> Registry {
    for feedback in vp8_rtcp_feedback() {
        media_engine.register_feedback(feedback, RtpCodecKind::Video);
    }
    let mut registry = registry
        .with(Slot::NackResponder, NackResponderBuilder::new().build())
        .with(
            Slot::NackGenerator,
            NackGeneratorBuilder::new()
                .with_interval(NACK_INTERVAL)
                .with_max_nacks_per_packet(NACKS_PER_PACKET)
                .build(),
        )
        .with(Slot::ReceiverReport, ReceiverReportBuilder::new().build())
        .with(Slot::SenderReport, SenderReportBuilder::new().build())
        .with(Slot::TwccSender, TwccSenderBuilder::new().build())
        .with(
            Slot::TwccReceiver,
            TwccReceiverBuilder::new()
                .with_interval(TWCC_FEEDBACK_INTERVAL)
                .build(),
        )
        .with(
            Slot::from(FEEDBACK_FORWARDER_SLOT),
            FeedbackForwarder::default(),
        );
    if let Some((bounds, estimate)) = congestion_control {
        let kbps = |k: u32| f64::from(k) * 1000.0;
        let gcc = Gcc::new(
            kbps(bounds.start_kbps),
            kbps(bounds.min_kbps),
            kbps(bounds.max_kbps.max(bounds.min_kbps)),
        );
        registry = registry.with(
            Slot::CongestionControl,
            CongestionControlBuilder::new(PublishedEstimate {
                inner: gcc,
                out: estimate.clone(),
            })
            .build(),
        );
    }
    registry
}

/// A local video track for `add_track`, sending VP8 on `ssrc`.
pub fn video_track(ssrc: u32) -> Arc<TrackLocalStaticRTP> {
    crate::track::local_track(
        RtpCodecKind::Video,
        ssrc,
        vp8_codec_parameters(VP8_PAYLOAD_TYPE).rtp_codec,
    )
}

/// The SSRC and payload type negotiation settled for a VP8 sender, to pass to
/// [`VideoSenderConfig`](super::VideoSenderConfig). The payload type is the answer's (a
/// Firefox offer numbers VP8 120), and webrtc-rs refuses packets with any other.
pub async fn negotiated_vp8(sender: &Arc<dyn RtpSender>) -> Result<(u32, u8), MediaError> {
    let parameters = sender
        .get_parameters()
        .await
        .map_err(MediaError::transport)?;
    let payload_type = parameters
        .rtp_parameters
        .codecs
        .iter()
        .find(|c| c.rtp_codec.mime_type.eq_ignore_ascii_case(MIME_TYPE_VP8))
        .map(|c| c.payload_type)
        .ok_or_else(|| MediaError::NoCommonVideoCodec {
            offered: parameters
                .rtp_parameters
                .codecs
                .iter()
                .map(|c| c.rtp_codec.mime_type.clone())
                .collect::<Vec<_>>()
                .join(", "),
        })?;
    let ssrc = parameters
        .encodings
        .first()
        .and_then(|e| e.rtp_coding_parameters.ssrc)
        .ok_or(MediaError::InvalidState("video sender has no SSRC"))?;
    Ok((ssrc, payload_type))
}

/// Google Congestion Control, publishing each new estimate where the encoder reads it.
struct PublishedEstimate {
    inner: Gcc,
    out: BandwidthEstimate,
}

impl BandwidthEstimator for PublishedEstimate {
    fn on_reports(&mut self, now: Instant, reports: &[PacketReport]) {
        self.inner.on_reports(now, reports);
        if !reports.is_empty() {
            // Published only once feedback has said something: until then the encoder keeps
            // its configured rate rather than the controller's starting guess.
            self.out.publish(self.inner.target_bitrate());
            let stats = self.inner.stats();
            // Both halves, for a log that shows which one moved the rate.
            tracing::debug!(
                reports = reports.len(),
                lost = reports.iter().filter(|r| !r.arrived).count(),
                loss = ?stats.packet_loss,
                delay_bps = ?stats.delay_based_bitrate,
                loss_bps = ?stats.loss_based_bitrate,
                "congestion feedback"
            );
        }
    }

    fn target_bitrate(&self) -> f64 {
        self.inner.target_bitrate()
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.inner.handle_timeout(now);
        if self.out.bits_per_second().is_some() {
            self.out.publish(self.inner.target_bitrate());
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.inner.poll_timeout()
    }

    fn stats(&self) -> EstimatorStats {
        self.inner.stats()
    }
}

/// Marks inbound keyframe requests (PLI, FIR) and REMB about our video streams for the
/// application, narrowing each compound packet to them.
///
/// webrtc-rs routes a delivered compound to a track by its first packet's first destination
/// SSRC, so a receiver report ahead of the PLI would send it astray, and a REMB listing the
/// audio SSRC first would land in the audio track's queue, which nobody reads (it fills, and
/// each further packet is logged as an error). So only feedback naming a local video SSRC is
/// kept, a REMB is reordered to name it first, and everything else passes unmarked and ends at
/// the chain's terminus, as before.
#[derive(Default)]
struct FeedbackForwarder {
    /// SSRCs of the video streams we send.
    video_ssrcs: HashSet<u32>,
    read_queue: VecDeque<TaggedPacket>,
    write_queue: VecDeque<TaggedPacket>,
}

impl FeedbackForwarder {
    /// The packet as the video sender should get it, if it is for the video sender.
    #[allow(clippy::borrowed_box)]
    fn for_video_sender(
        &self,
        packet: &Box<dyn rtc::rtcp::Packet>,
    ) -> Option<Box<dyn rtc::rtcp::Packet>> {
        let any = packet.as_any();
        if let Some(pli) = any.downcast_ref::<PictureLossIndication>() {
            return self
                .video_ssrcs
                .contains(&pli.media_ssrc)
                .then(|| packet.clone());
        }
        if let Some(fir) = any.downcast_ref::<FullIntraRequest>() {
            let mut fir = fir.clone();
            fir.fir
                .retain(|entry| self.video_ssrcs.contains(&entry.ssrc));
            return (!fir.fir.is_empty()).then(|| Box::new(fir) as Box<dyn rtc::rtcp::Packet>);
        }
        if let Some(remb) = any.downcast_ref::<ReceiverEstimatedMaximumBitrate>() {
            let mut remb = remb.clone();
            let ours = remb
                .ssrcs
                .iter()
                .position(|ssrc| self.video_ssrcs.contains(ssrc))?;
            remb.ssrcs.swap(0, ours);
            return Some(Box::new(remb));
        }
        None
    }
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for FeedbackForwarder {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtcp(packets) = &msg.message.packet {
            let wanted: Vec<_> = packets
                .iter()
                .filter_map(|p| self.for_video_sender(p))
                .collect();
            if !wanted.is_empty() {
                msg.message.packet = Packet::Rtcp(wanted);
                msg.message.add(Attribute::DeliverToApplication);
            }
        }
        self.read_queue.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<TaggedPacket> {
        self.read_queue.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.write_queue.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.write_queue.pop_front()
    }
}

impl Interceptor for FeedbackForwarder {
    fn bind_local_stream(&mut self, info: &StreamInfo) {
        if info.mime_type.to_ascii_lowercase().starts_with("video/") {
            self.video_ssrcs.insert(info.ssrc);
        }
    }

    fn unbind_local_stream(&mut self, info: &StreamInfo) {
        self.video_ssrcs.remove(&info.ssrc);
    }

    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::interceptor::AttributedPacket;
    use rtc::rtcp::receiver_report::ReceiverReport;
    use rtc::shared::TransportContext;

    fn inbound(packets: Vec<Box<dyn rtc::rtcp::Packet>>) -> TaggedPacket {
        TaggedPacket {
            now: Instant::now(),
            transport: TransportContext::default(),
            message: AttributedPacket::new(Packet::Rtcp(packets)),
        }
    }

    #[test]
    fn the_forwarder_passes_on_feedback_about_our_video_only() {
        let mut forwarder = FeedbackForwarder::default();
        forwarder.bind_local_stream(&StreamInfo {
            ssrc: 2,
            mime_type: MIME_TYPE_VP8.to_owned(),
            ..Default::default()
        });
        forwarder.bind_local_stream(&StreamInfo {
            ssrc: 3,
            mime_type: "audio/opus".to_owned(),
            ..Default::default()
        });
        let pli = |media_ssrc| {
            Box::new(PictureLossIndication {
                sender_ssrc: 1,
                media_ssrc,
            }) as Box<dyn rtc::rtcp::Packet>
        };
        // A PLI behind a receiver report; a PLI about audio; a REMB naming audio first.
        forwarder
            .handle_read(inbound(vec![Box::new(ReceiverReport::default()), pli(2)]))
            .unwrap();
        forwarder.handle_read(inbound(vec![pli(3)])).unwrap();
        forwarder
            .handle_read(inbound(vec![Box::new(ReceiverEstimatedMaximumBitrate {
                sender_ssrc: 1,
                bitrate: 500_000.0,
                ssrcs: vec![3, 2],
            })]))
            .unwrap();

        let first = forwarder.poll_read().unwrap();
        assert!(first.message.has(&Attribute::DeliverToApplication));
        let Packet::Rtcp(packets) = &first.message.packet else {
            panic!("not RTCP")
        };
        assert_eq!(packets.len(), 1);
        assert_eq!(packets[0].destination_ssrc(), vec![2]);

        let audio = forwarder.poll_read().unwrap();
        assert!(!audio.message.has(&Attribute::DeliverToApplication));

        let remb = forwarder.poll_read().unwrap();
        assert!(remb.message.has(&Attribute::DeliverToApplication));
        let Packet::Rtcp(packets) = &remb.message.packet else {
            panic!("not RTCP")
        };
        assert_eq!(packets[0].destination_ssrc(), vec![2, 3]);
        assert!(forwarder.poll_read().is_none());
    }

    #[test]
    fn the_estimate_is_published_only_after_feedback() {
        let estimate = BandwidthEstimate::new();
        let mut published = PublishedEstimate {
            inner: Gcc::new(1e6, 1e5, 4e6),
            out: estimate.clone(),
        };
        published.handle_timeout(Instant::now());
        assert_eq!(estimate.bits_per_second(), None);
        published.on_reports(Instant::now(), &[]);
        assert_eq!(estimate.bits_per_second(), None);
    }
}
