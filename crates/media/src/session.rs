//! One call's media: a WebRTC peer connection (ICE, DTLS-SRTP, rtcp-mux, BUNDLE — the browser
//! profile of RFC 8829/JSEP) carrying one audio stream, and the task that paces it.
//!
//! Signalling is not trickled: SIP peers send one offer and one answer, so [`create_offer`]
//! and [`accept_offer`] wait until ICE gathering completes (bounded by
//! `MediaConfig::gathering_timeout`) and return SDP with every candidate in it.
//!
//! The *media task* is the single owner of source, sink, encoder, decoders and jitter buffer.
//! It wakes every 20 ms and, for each frame due by the wall clock since the session started,
//! plays one frame out of the jitter buffer into the sink and sends one frame from the source.
//! Counting due frames from the start instant (instead of trusting each tick) means a late
//! wake-up produces the missed frames at once — no drift, and a recording stays time-true —
//! while a long stall (suspend, debugger) is skipped rather than burst onto the network.
//!
//! [`create_offer`]: MediaSession::create_offer
//! [`accept_offer`]: MediaSession::accept_offer

use crate::audio::{Sink, Source};
use crate::codec::{Decoder, Encoder, FRAME_48K, rms_level};
use crate::conference::{Conference, ConferenceLink, MemberId};
use crate::config::{
    AudioCodec, AudioSink, AudioSource, DeviceRole, MediaConfig, MediaEvent, MediaStats,
    VideoReceivedStats, VideoSentStats, VideoSourceKind,
};
use crate::dtmf::{EventReceiver, EventSender, event_code};
use crate::early_packets::{AnsweringRuntime, EarlyPackets};
use crate::error::MediaError;
use crate::hold::{HoldState, StreamDirection, offer_for_transport};
use crate::jitter::{Insert, JitterBuffer, Playout};
use crate::sdp::{
    PayloadFormat, audio_section, ice_credentials, settled_setup, usable_audio_section, with_setup,
};
use crate::track::{local_track, random_u32};
use crate::turn_stream::TurnStreamBridge;
use crate::video::{
    AtFrameRate, BandwidthEstimate, CongestionControl, VideoReceiver, VideoReceiverConfig,
    VideoSender, VideoSenderConfig, configure_video_interceptors, negotiated_vp8,
    register_video_codecs, video_track,
};
use bytes::Bytes;
use rtc::peer_connection::configuration::media_engine::{
    MIME_TYPE_OPUS, MIME_TYPE_PCMA, MIME_TYPE_PCMU, MIME_TYPE_TELEPHONE_EVENT,
};
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RTCRtpCodecParameters, RtpCodecKind};
use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tracing::{debug, info, trace, warn};
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler,
    RTCConfigurationBuilder, RTCIceCandidateType, RTCIceConnectionState, RTCIceGatheringState,
    RTCIceServer, RTCIceTransportPolicy, RTCPeerConnectionIceEvent, RTCPeerConnectionState,
    RTCSessionDescription, Registry, SettingEngineBuilder, configure_rtcp_reports,
};
use webrtc::rtp_transceiver::{RTCRtpTransceiverDirection, RtpSender};

const FRAME: Duration = Duration::from_millis(20);
/// Frames produced at once after a late wake-up; beyond this the gap is skipped.
const MAX_CATCH_UP_FRAMES: u64 = 5;
/// Connectivity-check pacing (RFC 8445 §14.2 Ta). A call has a handful of candidate pairs, so
/// a short Ta costs a few STUN packets and saves whole check rounds of post-dial delay:
/// against Chromium, 20 ms took answer→connected from ≈105 ms (at 50 ms) to ≈60 ms.
const ICE_CHECK_INTERVAL: Duration = Duration::from_millis(20);
/// Checks per candidate pair before it fails: ≈2 s at `ICE_CHECK_INTERVAL`, patience enough
/// for a slow TURN path.
const ICE_CHECK_ATTEMPTS: u16 = 100;
/// How long ICE gathering waits for STUN and TURN servers when none has answered yet: a server
/// that is down or unreachable then costs this much post-dial delay, not the whole
/// `MediaConfig::gathering_timeout` (which each side of a call would pay, offer and answer).
/// Once a server has answered, gathering waits three times as long as that took (servers far
/// away are slow alike), still within the timeout. A relay-only session waits for its first
/// relay candidate whatever this says: without one it has nothing to offer.
const SERVER_CANDIDATE_WAIT: Duration = Duration::from_millis(400);
/// ICE consent freshness (RFC 7675): with nothing heard from the peer for this long the
/// connection counts as interrupted (it may come back, e.g. after a network change)...
const CONSENT_DISCONNECTED_AFTER: Duration = Duration::from_secs(5);
/// ...and after this much more it is lost for good and the call ends: 25 s in all, inside the
/// 30 s after which RFC 7675 §5.1 says consent has expired, with room for the check interval.
const CONSENT_FAILED_AFTER: Duration = Duration::from_secs(20);
/// How long after the peer's description the media connection may take before the call is
/// reported failed. Checks give up after ≈2 s per pair, so this is patience for a slow TURN
/// path — and the bound for a DTLS handshake that never completes: a certificate that does not
/// match the fingerprint in the peer's SDP leaves the WebRTC stack waiting, not failed.
const MEDIA_CONNECT_WAIT: Duration = Duration::from_secs(12);

/// Queue from the RTP reader to the media task (about 2.5 s of 20 ms packets).
const RTP_QUEUE: usize = 128;

// Payload types as Chromium numbers them, so our offers and its answers agree.
const PT_OPUS: u8 = 111;
const PT_PCMU: u8 = 0;
const PT_PCMA: u8 = 8;
const PT_TELEPHONE_EVENT_48K: u8 = 110;
const PT_TELEPHONE_EVENT_8K: u8 = 126;

/// One call's media. See the module documentation.
pub struct MediaSession {
    peer: Arc<dyn PeerConnection>,
    shared: Arc<Shared>,
    commands: mpsc::Sender<Command>,
    events: Option<mpsc::Receiver<MediaEvent>>,
    gathering_complete: Arc<watch::Sender<bool>>,
    gathering_timeout: Duration,
    /// Candidates from STUN/TURN servers in the current gathering (see [`ServerCandidates`]).
    server_candidates: Arc<watch::Sender<ServerCandidates>>,
    relay_only: bool,
    /// TURN-over-TCP bridges this session's ICE servers go through; dropped with it.
    _turn_bridges: Vec<TurnStreamBridge>,
    /// Sees to the peer's checks and DTLS between our offer and our agent's connection.
    early_packets: Arc<EarlyPackets>,
    sender: Arc<dyn RtpSender>,
    task: Option<JoinHandle<()>>,
    closed: bool,
    /// The audio's direction and hold (RFC 6337), and the description we sent last, which a
    /// hold or resume offer repeats with a new direction. Never locked across an await.
    offer_answer: std::sync::Mutex<OfferAnswer>,
    /// The conference this call's media is mixed into, if any, and its place in it.
    conference: std::sync::Mutex<Option<(Conference, MemberId)>>,
    /// Where the conference sends this session's ends of its mesh.
    conference_links: mpsc::Sender<Option<ConferenceLink>>,
    /// The call's video, if any.
    video: Arc<std::sync::Mutex<VideoEnds>>,
}

/// A call's two ends of video: ours from the moment the call connects (when we send video),
/// the peer's from the moment its video track arrives.
#[derive(Default)]
struct VideoEnds {
    sender: Option<VideoSender>,
    receiver: Option<VideoReceiver>,
    /// The session is closing: a late start is stopped at once, not kept.
    closed: bool,
}

impl VideoEnds {
    fn stats(&self) -> (Option<VideoSentStats>, Option<VideoReceivedStats>) {
        let sent = self.sender.as_ref().map(|sender| {
            let s = sender.stats();
            let (width, height) = s.resolution.unwrap_or_default();
            VideoSentStats {
                frames_encoded: s.frames_encoded,
                keyframes_encoded: s.keyframes_encoded,
                keyframe_requests_received: s.keyframe_requests_received,
                frames_skipped: s.frames_skipped,
                packets_sent: s.packets_sent,
                bytes_sent: s.bytes_sent,
                bitrate_kbps: s.bitrate_kbps,
                width,
                height,
                first_capture_unix_ms: s.first_capture_unix_ms,
            }
        });
        let received = self.receiver.as_ref().map(|receiver| {
            let r = receiver.stats();
            let (width, height) = r.video.resolution.unwrap_or_default();
            VideoReceivedStats {
                frames_decoded: r.video.frames_decoded,
                frames_dropped: r.video.frames_dropped,
                keyframes_decoded: r.keyframes_decoded,
                keyframe_requests_sent: r.keyframe_requests_sent,
                packets_received: r.packets_received,
                bytes_received: r.bytes_received,
                width,
                height,
                frames_per_second: r.video.frames_per_second,
                freeze_count: r.video.freeze_count,
                total_freeze_ms: u64::try_from(r.video.total_freeze_duration.as_millis())
                    .unwrap_or(u64::MAX),
                last_counter: r.last_counter,
                last_counter_at_unix_ms: r.last_counter_at_unix_ms,
                counter_gaps: r.counter_gaps,
                counters_skipped: r.counters_skipped,
                counters_backwards: r.counters_backwards,
                counters_unreadable: r.counters_unreadable,
            }
        });
        (sent, received)
    }

    /// Stops both ends (joins their threads; the recording is completed).
    fn stop(&mut self) {
        self.closed = true;
        if let Some(sender) = self.sender.take() {
            sender.stop();
        }
        if let Some(receiver) = self.receiver.take()
            && let Err(e) = receiver.stop()
        {
            warn!(error = %e, "video recording not completed");
        }
    }
}

#[derive(Default)]
struct OfferAnswer {
    direction: StreamDirection,
    last_sent: Option<String>,
    /// Our DTLS role (`a=setup`), once the first offer/answer has settled it; every later
    /// answer we give keeps it.
    dtls_setup: Option<lyrebird_sdp::Setup>,
}

/// Counters the media task writes and `stats()` reads, and switches it reads, without locks.
struct Shared {
    muted: AtomicBool,
    /// Received audio is played (false while we hold the call).
    play: AtomicBool,
    /// The source is sent (false while either side holds the call).
    send_source: AtomicBool,
    /// Music on hold is sent (we hold and the peer still receives).
    send_music: AtomicBool,
    codec: AtomicU8,
    packets_sent: AtomicU64,
    bytes_sent: AtomicU64,
    packets_received: AtomicU64,
    bytes_received: AtomicU64,
    packets_lost: AtomicU64,
    packets_late: AtomicU64,
    jitter_ms: AtomicU32,
    jitter_buffer_ms: AtomicU32,
    input_level: AtomicU32,
    output_level: AtomicU32,
}

impl Default for Shared {
    fn default() -> Self {
        Self {
            muted: AtomicBool::new(false),
            play: AtomicBool::new(true),
            send_source: AtomicBool::new(true),
            send_music: AtomicBool::new(false),
            codec: AtomicU8::default(),
            packets_sent: AtomicU64::default(),
            bytes_sent: AtomicU64::default(),
            packets_received: AtomicU64::default(),
            bytes_received: AtomicU64::default(),
            packets_lost: AtomicU64::default(),
            packets_late: AtomicU64::default(),
            jitter_ms: AtomicU32::default(),
            jitter_buffer_ms: AtomicU32::default(),
            input_level: AtomicU32::default(),
            output_level: AtomicU32::default(),
        }
    }
}

fn codec_index(codec: AudioCodec) -> u8 {
    match codec {
        AudioCodec::Opus => 1,
        AudioCodec::Pcmu => 2,
        AudioCodec::Pcma => 3,
    }
}

fn codec_from_index(index: u8) -> Option<AudioCodec> {
    match index {
        1 => Some(AudioCodec::Opus),
        2 => Some(AudioCodec::Pcmu),
        3 => Some(AudioCodec::Pcma),
        _ => None,
    }
}

fn store_f32(slot: &AtomicU32, value: f32) {
    slot.store(value.to_bits(), Ordering::Relaxed);
}

fn load_f32(slot: &AtomicU32) -> f32 {
    f32::from_bits(slot.load(Ordering::Relaxed))
}

/// An RTP packet as the reader task hands it to the media task.
struct ReceivedRtp {
    sequence: u16,
    timestamp: u32,
    payload_type: u8,
    payload: Bytes,
    arrival: Instant,
}

/// What the negotiation decided, handed to the media task.
struct Negotiated {
    send_codec: AudioCodec,
    send_payload_type: u8,
    telephone_event_payload_type: Option<u8>,
    ssrc: u32,
    receive_formats: Vec<(u8, PayloadFormat)>,
}

enum Command {
    Negotiated(Negotiated),
    Dtmf {
        digit: u8,
        reply: oneshot::Sender<Result<(), MediaError>>,
    },
    Close {
        reply: oneshot::Sender<Result<(), MediaError>>,
    },
    /// Start recording the call into this WAV file, or stop (`None`).
    Record {
        path: Option<std::path::PathBuf>,
        reply: oneshot::Sender<Result<(), MediaError>>,
    },
}

/// Receives the peer connection's callbacks and turns them into channel messages; it never
/// blocks the WebRTC driver.
/// What the STUN and TURN servers have brought in one ICE gathering.
#[derive(Debug, Clone, Copy, Default)]
struct ServerCandidates {
    /// When the first server-reflexive or relay candidate came.
    first_at: Option<Instant>,
    /// Relay candidates so far.
    relays: u32,
}

struct Handler {
    events: mpsc::Sender<MediaEvent>,
    gathering_complete: Arc<watch::Sender<bool>>,
    server_candidates: Arc<watch::Sender<ServerCandidates>>,
    connected: watch::Sender<bool>,
    rtp: mpsc::Sender<ReceivedRtp>,
    early_packets: Arc<EarlyPackets>,
    video: Arc<std::sync::Mutex<VideoEnds>>,
    /// Where received video is recorded, if anywhere.
    record_video: Option<std::path::PathBuf>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_connection_state_change(&self, state: RTCIceConnectionState) {
        debug!(%state, "ICE connection state");
        if !matches!(
            state,
            RTCIceConnectionState::Unspecified
                | RTCIceConnectionState::New
                | RTCIceConnectionState::Checking
        ) {
            self.early_packets.ice_settled();
        }
    }

    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        let typ = event.candidate.typ;
        if matches!(typ, RTCIceCandidateType::Srflx | RTCIceCandidateType::Relay) {
            self.server_candidates.send_modify(|found| {
                found.first_at.get_or_insert_with(Instant::now);
                if typ == RTCIceCandidateType::Relay {
                    found.relays += 1;
                }
            });
        }
    }

    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        debug!(?state, "ICE gathering state");
        if state == RTCIceGatheringState::Complete {
            self.gathering_complete.send_replace(true);
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        info!(%state, "peer connection state");
        let event = match state {
            RTCPeerConnectionState::Connected => {
                self.connected.send_replace(true);
                Some(MediaEvent::Connected)
            }
            RTCPeerConnectionState::Disconnected => Some(MediaEvent::Disconnected),
            RTCPeerConnectionState::Failed => {
                let was_connected = self.connected.send_replace(false);
                let why = if was_connected {
                    format!(
                        "the other side stopped answering: nothing heard from it for {} s \
                         (ICE consent, RFC 7675)",
                        (CONSENT_DISCONNECTED_AFTER + CONSENT_FAILED_AFTER).as_secs()
                    )
                } else {
                    "no working candidate pair, or DTLS failed (RFC 8445 §8.1)".into()
                };
                Some(MediaEvent::Failed {
                    reason: MediaError::IceFailed(why).to_string(),
                })
            }
            RTCPeerConnectionState::Closed => {
                self.connected.send_replace(false);
                None
            }
            _ => None,
        };
        if let Some(event) = event
            && self.events.try_send(event).is_err()
        {
            warn!("media event dropped: the engine is not reading events");
        }
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        if track.kind().await == RtpCodecKind::Video {
            self.on_video_track(track);
            return;
        }
        let rtp = self.rtp.clone();
        debug!("remote audio track");
        crate::media_thread::spawn(async move {
            while let Some(event) = track.poll().await {
                if let TrackRemoteEvent::OnRtpPacket(packet) = event {
                    trace!(
                        seq = packet.header.sequence_number,
                        pt = packet.header.payload_type,
                        "RTP in"
                    );
                    let received = ReceivedRtp {
                        sequence: packet.header.sequence_number,
                        timestamp: packet.header.timestamp,
                        payload_type: packet.header.payload_type,
                        payload: packet.payload,
                        arrival: Instant::now(),
                    };
                    // A full queue means the media task is far behind; dropping is the right
                    // kind of loss for real-time audio (it will be concealed).
                    if let Err(mpsc::error::TrySendError::Closed(_)) = rtp.try_send(received) {
                        break;
                    }
                }
            }
        });
    }
}

impl Handler {
    /// The peer's video: decoded on the receiver's own thread, counted, recorded if asked.
    fn on_video_track(&self, track: Arc<dyn TrackRemote>) {
        debug!("remote video track");
        let config = VideoReceiverConfig {
            record: self.record_video.clone(),
            read_counter: true,
            ..VideoReceiverConfig::default()
        };
        let receiver = match VideoReceiver::start(track, config) {
            Ok(receiver) => receiver,
            Err(e) => {
                warn!(error = %e, "the peer's video cannot be received");
                return;
            }
        };
        let Ok(mut ends) = self.video.lock() else {
            return;
        };
        if ends.closed {
            drop(ends);
            let _ = receiver.stop();
            return;
        }
        // A renegotiation can bring the track again: the newest one is the one that flows.
        if let Some(earlier) = ends.receiver.replace(receiver) {
            drop(ends);
            let _ = earlier.stop();
        }
    }
}

/// Starts sending video once the call is connected (before that, webrtc-rs drops what is
/// written), with the payload type and SSRC the answer settled.
#[allow(clippy::too_many_arguments)] // one call site; the parts of one session
async fn start_video_when_connected(
    mut connected: watch::Receiver<bool>,
    peer: Arc<dyn PeerConnection>,
    track: Arc<TrackLocalStaticRTP>,
    rtp_sender: Arc<dyn RtpSender>,
    source: VideoSourceKind,
    bitrate_kbps: u32,
    estimate: BandwidthEstimate,
    ends: Arc<std::sync::Mutex<VideoEnds>>,
    shared: Arc<Shared>,
) {
    if connected.wait_for(|up| *up).await.is_err() {
        return;
    }
    // A track is bound to its transceiver from the start; only the answer says whether the
    // peer takes our video (an audio-only offer leaves our video transceiver out).
    let mut agreed = false;
    for transceiver in peer.get_transceivers().await {
        let ours = matches!(transceiver.sender().await, Ok(Some(s)) if s.id() == rtp_sender.id());
        if ours {
            agreed = matches!(
                transceiver.current_direction().await,
                Ok(RTCRtpTransceiverDirection::Sendrecv | RTCRtpTransceiverDirection::Sendonly)
            );
        }
    }
    if !agreed {
        info!("the peer takes no video from us; none sent");
        return;
    }
    let (ssrc, payload_type) = match negotiated_vp8(&rtp_sender).await {
        Ok(negotiated) => negotiated,
        Err(e) => {
            // The peer declined video (or has no VP8): the call goes on as audio.
            info!(error = %e, "no video sent");
            return;
        }
    };
    let VideoSourceKind::TestPattern { width, height, fps } = source;
    let pattern = match lyrebird_video::TestPattern::new(width, height) {
        Ok(pattern) => pattern,
        Err(e) => {
            warn!(error = %e, "video source unavailable");
            return;
        }
    };
    let config = VideoSenderConfig {
        max_bitrate_kbps: bitrate_kbps,
        min_bitrate_kbps: bitrate_kbps.min(VIDEO_MIN_KBPS),
        estimate: Some(estimate),
        ..VideoSenderConfig::new(ssrc, payload_type)
    };
    let source = AtFrameRate {
        source: pattern,
        frame_rate: fps,
    };
    match VideoSender::start(track as Arc<dyn TrackLocal>, source, config) {
        Ok(sender) => {
            let Ok(mut ends) = ends.lock() else {
                return;
            };
            if ends.closed {
                drop(ends);
                sender.stop();
            } else {
                // A hold may have come first.
                sender.set_paused(!shared.send_source.load(Ordering::Relaxed));
                ends.sender = Some(sender);
            }
        }
        Err(e) => warn!(error = %e, "video not sent"),
    }
}

/// The least a congested link brings our video bitrate down to.
const VIDEO_MIN_KBPS: u32 = 100;

fn codec_parameters(codec: AudioCodec) -> RTCRtpCodecParameters {
    let (mime, channels, fmtp, payload_type) = match codec {
        // RFC 7587 §7: opus is always signalled as 48000/2; useinbandfec=1 asks the peer to
        // send FEC we can use for loss recovery.
        AudioCodec::Opus => (MIME_TYPE_OPUS, 2, "minptime=10;useinbandfec=1", PT_OPUS),
        AudioCodec::Pcmu => (MIME_TYPE_PCMU, 0, "", PT_PCMU),
        AudioCodec::Pcma => (MIME_TYPE_PCMA, 0, "", PT_PCMA),
    };
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: mime.to_owned(),
            clock_rate: codec.clock_rate(),
            channels,
            sdp_fmtp_line: fmtp.to_owned(),
            rtcp_feedback: vec![],
        },
        payload_type,
    }
}

fn telephone_event_parameters(clock_rate: u32, payload_type: u8) -> RTCRtpCodecParameters {
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: MIME_TYPE_TELEPHONE_EVENT.to_owned(),
            clock_rate,
            channels: 0,
            // RFC 4733 §7.1.1: events 0-15 are the DTMF keys.
            sdp_fmtp_line: "0-15".to_owned(),
            rtcp_feedback: vec![],
        },
        payload_type,
    }
}

impl MediaSession {
    /// Builds the peer connection with one send-receive audio transceiver and starts the
    /// media clock (the recording, if any, starts now). Opens the source and sink first, so a
    /// missing WAV file or device fails here and not mid-call.
    pub async fn new(
        config: &MediaConfig,
        source: AudioSource,
        sink: AudioSink,
    ) -> Result<Self, MediaError> {
        // A missing or busy sound card does not stop the call: it goes on without that
        // device, and the owner hears why (`MediaEvent::DeviceUnavailable`).
        let mut unavailable = Vec::new();
        let source = match Source::open(&source).await {
            Ok(source) => source,
            Err(MediaError::AudioDevice(reason)) => {
                warn!(%reason, "no microphone; sending silence");
                unavailable.push(MediaEvent::DeviceUnavailable {
                    role: DeviceRole::Microphone,
                    reason,
                });
                Source::Silence
            }
            Err(e) => return Err(e),
        };
        let sink = match Sink::open(&sink).await {
            Ok(sink) => sink,
            Err(MediaError::AudioDevice(reason)) => {
                warn!(%reason, "no speaker; what arrives is not played");
                unavailable.push(MediaEvent::DeviceUnavailable {
                    role: DeviceRole::Speaker,
                    reason,
                });
                Sink::Discard
            }
            Err(e) => return Err(e),
        };
        let music = match &config.music_on_hold {
            Some(path) => {
                let music = AudioSource::Wav {
                    path: path.clone(),
                    looped: true,
                };
                // Without its music a hold is still a hold: the peer hears silence.
                Source::open(&music)
                    .await
                    .inspect_err(|err| warn!(%err, "music on hold unavailable"))
                    .ok()
            }
            None => None,
        };

        let mut codecs: Vec<AudioCodec> = Vec::new();
        for codec in &config.codecs {
            if !codecs.contains(codec) {
                codecs.push(*codec);
            }
        }
        let Some(&first_codec) = codecs.first() else {
            return Err(MediaError::InvalidState("MediaConfig::codecs is empty"));
        };
        let mut preferences: Vec<RTCRtpCodecParameters> =
            codecs.iter().map(|c| codec_parameters(*c)).collect();
        // Offer telephone-event at each clock rate in use: RFC 4733 §2.1 wants the event clock
        // to match the audio codec's, and Chromium offers both.
        if codecs.contains(&AudioCodec::Opus) {
            preferences.push(telephone_event_parameters(48_000, PT_TELEPHONE_EVENT_48K));
        }
        // webrtc-rs matches codec preferences by MIME type alone, so offering both clock rates
        // would list payload type 110 twice in the SDP. With Opus offered, the 48 kHz event is
        // the one that matters; the 8 kHz one is offered only for G.711-only configurations.
        if !codecs.contains(&AudioCodec::Opus) && codecs.iter().any(|c| c.clock_rate() == 8_000) {
            preferences.push(telephone_event_parameters(8_000, PT_TELEPHONE_EVENT_8K));
        }

        let mut media_engine = MediaEngine::default();
        for parameters in &preferences {
            media_engine
                .register_codec(parameters.clone(), RtpCodecKind::Audio)
                .map_err(MediaError::transport)?;
        }
        // Audio needs RTCP sender/receiver reports (RFC 3550 §6.4: browsers derive RTT, loss
        // and jitter statistics from them). The crate's other defaults (NACK, TWCC, simulcast
        // header extensions) serve video and would only add per-packet work here.
        // Video is always registered, so a peer's video is received even when we send none.
        register_video_codecs(&mut media_engine)?;
        let estimate = BandwidthEstimate::new();
        let congestion = CongestionControl {
            start_kbps: config.video.bitrate_kbps,
            min_kbps: config.video.bitrate_kbps.min(VIDEO_MIN_KBPS),
            max_kbps: config.video.bitrate_kbps,
        };
        let registry = configure_video_interceptors(
            configure_rtcp_reports(Registry::new()),
            &mut media_engine,
            Some((congestion, &estimate)),
        );
        let mut settings = SettingEngineBuilder::new().with_multicast_dns_mode(if config.mdns {
            rtc::ice::mdns::MulticastDnsMode::QueryAndGather
        } else {
            rtc::ice::mdns::MulticastDnsMode::Disabled
        });
        // The crate's default pacing of 200 ms puts whole extra check rounds into post-dial
        // delay; see ICE_CHECK_INTERVAL.
        settings = settings
            .with_ice_connection_attempts(Some(ICE_CHECK_INTERVAL), Some(ICE_CHECK_ATTEMPTS))
            .with_ice_timeouts(
                Some(CONSENT_DISCONNECTED_AFTER),
                Some(CONSENT_FAILED_AFTER),
                None,
            )
            // A peer whose check reaches us before its trickled candidate (stanza, most
            // Jingle clients) is paired as peer-reflexive, and the crate waits 1 s before it
            // nominates such a pair even when it is the only one and already checked: whole
            // seconds of post-dial delay, measured with a browser XMPP user (BENCHMARKS.md).
            // The peer reached us there, so the pair is as direct as a host pair.
            .with_prflx_acceptance_min_wait(Some(Duration::ZERO));
        if config.relay_only {
            // Every pair is relayed: the crate's 2 s wait for a better pair than a relayed one
            // (relay_acceptance_min_wait) can only delay the call — it was the first 2 s of the
            // 4.4 s a relay-only call took from answer to media.
            settings = settings.with_relay_acceptance_min_wait(Some(Duration::ZERO));
        }
        if config.bind_addrs.iter().any(IpAddr::is_loopback) {
            settings = settings.with_include_loopback_candidate(true);
        }

        // TURN servers reached over TCP go through a bridge each (`turn_stream.rs`), which
        // lives as long as the session.
        let mut turn_bridges = Vec::new();
        let mut ice_servers = Vec::with_capacity(config.ice_servers.len());
        for server in &config.ice_servers {
            let user = server.username.clone().unwrap_or_default();
            let (username, credential) = match &server.shared_secret {
                Some(secret) => {
                    crate::turn_rest::credentials(secret, &user, std::time::SystemTime::now())
                }
                None => (user, server.credential.clone().unwrap_or_default()),
            };
            let mut urls = Vec::with_capacity(server.urls.len());
            for url in &server.urls {
                match crate::turn_stream::tcp_server_of(url) {
                    Some(address) => {
                        let bridge = TurnStreamBridge::start(address).await?;
                        urls.push(bridge.udp_url());
                        turn_bridges.push(bridge);
                    }
                    None => urls.push(url.clone()),
                }
            }
            ice_servers.push(RTCIceServer {
                urls,
                username,
                credential,
            });
        }
        let mut rtc_config = RTCConfigurationBuilder::new().with_ice_servers(ice_servers);
        if config.relay_only {
            rtc_config = rtc_config.with_ice_transport_policy(RTCIceTransportPolicy::Relay);
        }

        let udp_addrs: Vec<SocketAddr> = if config.bind_addrs.is_empty() {
            // Wildcards expand to one socket per interface (loopback/link-local skipped).
            vec![
                SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
                SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
            ]
        } else {
            config
                .bind_addrs
                .iter()
                .map(|ip| SocketAddr::new(*ip, 0))
                .collect()
        };

        let (events_tx, events_rx) = mpsc::channel(32);
        for event in unavailable {
            // The channel is new and has room for these two.
            let _ = events_tx.try_send(event);
        }
        let (rtp_tx, rtp_rx) = mpsc::channel(RTP_QUEUE);
        let (connected_tx, connected_rx) = watch::channel(false);
        let gathering_complete = Arc::new(watch::channel(false).0);
        let server_candidates = Arc::new(watch::channel(ServerCandidates::default()).0);
        let early_packets = Arc::new(EarlyPackets::default());
        let video = Arc::new(std::sync::Mutex::new(VideoEnds::default()));
        let handler = Handler {
            video: video.clone(),
            record_video: config.video.record.clone(),
            early_packets: early_packets.clone(),
            events: events_tx.clone(),
            gathering_complete: gathering_complete.clone(),
            server_candidates: server_candidates.clone(),
            connected: connected_tx,
            rtp: rtp_tx,
        };

        let peer = PeerConnectionBuilder::new()
            .with_runtime(Arc::new(AnsweringRuntime::new(early_packets.clone())))
            .with_configuration(rtc_config.build())
            .with_media_engine(media_engine)
            .with_setting_engine(settings.build())
            .with_interceptor_registry(registry)
            .with_handler(Arc::new(handler))
            .with_udp_addrs(udp_addrs)
            .build()
            .await
            .map_err(MediaError::transport)?;
        let peer: Arc<dyn PeerConnection> = Arc::new(peer);

        let ssrc = random_u32();
        let track = local_track(
            RtpCodecKind::Audio,
            ssrc,
            codec_parameters(first_codec).rtp_codec,
        );
        let sender = peer
            .add_track(track.clone() as Arc<dyn TrackLocal>)
            .await
            .map_err(MediaError::transport)?;
        // A transceiver built from a track offers only the track's codec; list them all.
        for transceiver in peer.get_transceivers().await {
            transceiver
                .set_codec_preferences(preferences.clone())
                .await
                .map_err(MediaError::transport)?;
        }
        let shared = Arc::new(Shared::default());
        if let Some(source) = config.video.source {
            let track = video_track(random_u32());
            let rtp_sender = peer
                .add_track(track.clone() as Arc<dyn TrackLocal>)
                .await
                .map_err(MediaError::transport)?;
            tokio::spawn(start_video_when_connected(
                connected_rx.clone(),
                peer.clone(),
                track,
                rtp_sender,
                source,
                config.video.bitrate_kbps,
                estimate,
                video.clone(),
                shared.clone(),
            ));
        }

        let (commands_tx, commands_rx) = mpsc::channel(16);
        let (links_tx, links_rx) = mpsc::channel(4);
        let task = MediaTask {
            source,
            music,
            sink,
            track,
            shared: shared.clone(),
            events: events_tx,
            connected: connected_rx,
            send: None,
            receive_formats: Vec::new(),
            decoders: Vec::new(),
            last_decoder: None,
            jitter: JitterBuffer::new(),
            playout: VecDeque::with_capacity(FRAME_48K * 8),
            decoded: Vec::with_capacity(FRAME_48K * 6),
            frame_in: [0.0; FRAME_48K],
            frame_out: [0.0; FRAME_48K],
            first_audio_seen: false,
            connect_deadline: None,
            was_connected: false,
            received_events: EventReceiver::default(),
            conference: None,
            recording: None,
            said: [0.0; FRAME_48K],
            recorded: [0.0; FRAME_48K],
            start: Instant::now(),
        };
        // Beside the peer connection's driver, so a frame's hand-overs stay on one thread.
        let task = crate::media_thread::spawn(task.run(commands_rx, rtp_rx, links_rx));

        Ok(MediaSession {
            peer,
            shared,
            commands: commands_tx,
            events: Some(events_rx),
            gathering_complete,
            gathering_timeout: config.gathering_timeout,
            server_candidates,
            relay_only: config.relay_only,
            _turn_bridges: turn_bridges,
            early_packets,
            sender,
            task: Some(task),
            offer_answer: std::sync::Mutex::default(),
            conference: std::sync::Mutex::new(None),
            conference_links: links_tx,
            closed: false,
            video,
        })
    }

    /// Creates an offer, waits for ICE gathering and returns the complete SDP.
    pub async fn create_offer(&self) -> Result<String, MediaError> {
        let offer = self
            .peer
            .create_offer(None)
            .await
            .map_err(MediaError::transport)?;
        let sdp = self.set_local_and_gather(offer).await?;
        let sdp = self.sending(&sdp, |_| Ok(()))?;
        // The peer starts checking as soon as it has our offer (see `early_packets`).
        if let Some((ufrag, pwd)) = ice_credentials(&sdp) {
            self.early_packets.offered(ufrag, pwd);
        }
        Ok(sdp)
    }

    /// Applies the peer's answer to our offer and starts sending once connected.
    /// Unparsable SDP is [`MediaError::BadSdp`]; no usable codec is
    /// [`MediaError::NoCommonCodec`].
    pub async fn apply_answer(&self, sdp: &str) -> Result<(), MediaError> {
        usable_audio_section(sdp)?;
        self.offer_answer(|o| {
            o.direction.on_remote_answer(sdp)?;
            o.dtls_setup = o.dtls_setup.or_else(|| settled_setup(sdp, false));
            Ok(())
        })?;
        let answer = RTCSessionDescription::answer(sdp.to_owned())
            .map_err(|e| MediaError::BadSdp(e.to_string()))?;
        // From here the ICE agent has the peer's credentials and answers checks itself.
        self.early_packets.answer_applied();
        self.peer
            .set_remote_description(answer)
            .await
            .map_err(|e| MediaError::BadSdp(e.to_string()))?;
        self.start_media(sdp).await
    }

    /// Applies the peer's offer and returns our complete answer SDP.
    pub async fn accept_offer(&self, sdp: &str) -> Result<String, MediaError> {
        usable_audio_section(sdp)?;
        self.offer_answer(|o| o.direction.on_remote_offer(sdp))?;
        let offer = RTCSessionDescription::offer(offer_for_transport(sdp)?)
            .map_err(|e| MediaError::BadSdp(e.to_string()))?;
        self.peer
            .set_remote_description(offer)
            .await
            .map_err(|e| MediaError::BadSdp(e.to_string()))?;
        let answer = self
            .peer
            .create_answer(None)
            .await
            .map_err(MediaError::transport)?;
        let answer_sdp = self.set_local_and_gather(answer).await?;
        // The WebRTC stack writes its default answering role into every answer, even one
        // that would swap the roles of the DTLS association already running.
        let answer_sdp = match self.offer_answer(|o| Ok(o.dtls_setup))? {
            Some(setup) => with_setup(&answer_sdp, setup)?,
            None => answer_sdp,
        };
        let answer_sdp = self.sending(&answer_sdp, |direction| {
            direction.answered();
            Ok(())
        })?;
        self.offer_answer(|o| {
            o.dtls_setup = o.dtls_setup.or_else(|| settled_setup(&answer_sdp, true));
            Ok(())
        })?;
        self.start_media(sdp).await?;
        Ok(answer_sdp)
    }

    /// An offer that puts the call on hold (`hold`) or takes our hold back (RFC 6337): the
    /// description we sent last with the new direction. Received audio stops playing and the
    /// source stops going out at once; [`MediaSession::apply_hold_answer`] or
    /// [`MediaSession::hold_refused`] settle it.
    pub fn hold_offer(&self, hold: bool) -> Result<String, MediaError> {
        let sdp = self.offer_answer(|o| {
            let last = o
                .last_sent
                .clone()
                .ok_or(MediaError::InvalidState("the call is not connected yet"))?;
            let sdp = o.direction.hold_offer(&last, hold)?;
            o.last_sent = Some(sdp.clone());
            Ok(sdp)
        })?;
        Ok(sdp)
    }

    /// A hold or resume offer of ours is waiting for its answer: another must wait (RFC 3264
    /// §4, one offer at a time).
    pub fn hold_pending(&self) -> bool {
        self.offer_answer(|o| Ok(o.direction.pending()))
            .unwrap_or(false)
    }

    /// The peer answered our hold or resume offer.
    pub fn apply_hold_answer(&self, sdp: &str) -> Result<(), MediaError> {
        self.offer_answer(|o| o.direction.on_hold_answer(sdp))
    }

    /// The peer refused our hold or resume offer: the call goes on as it was.
    pub fn hold_refused(&self) {
        let _ = self.offer_answer(|o| {
            o.direction.on_hold_refused();
            Ok(())
        });
    }

    /// Our hold or resume offer was not sent because the peer's offer came first; the answer
    /// to that offer carried our hold or resume instead.
    pub fn hold_superseded(&self) {
        let _ = self.offer_answer(|o| {
            o.direction.on_hold_superseded();
            Ok(())
        });
    }

    /// Records the call — what we hear and what we say, mixed — into a 48 kHz WAV file at
    /// `path` (replacing one in progress), or stops recording (`None`). The file is complete
    /// once recording stops or the call ends.
    pub async fn record(&self, path: Option<std::path::PathBuf>) -> Result<(), MediaError> {
        let (reply, result) = oneshot::channel();
        self.commands
            .send(Command::Record { path, reply })
            .await
            .map_err(|_| MediaError::Closed)?;
        result.await.map_err(|_| MediaError::Closed)?
    }

    /// Mixes this call into `conference`: its party hears the other members' parties and they
    /// hear it. A call is in one conference at most; joining another leaves the first.
    pub fn join_conference(&self, conference: &Conference) -> Result<(), MediaError> {
        self.leave_conference();
        let member = conference.join(self.conference_links.clone())?;
        let mut slot = self
            .conference
            .lock()
            .map_err(|_| MediaError::InvalidState("conference state poisoned"))?;
        *slot = Some((conference.clone(), member));
        Ok(())
    }

    /// Takes this call out of its conference, if it is in one.
    pub fn leave_conference(&self) {
        let left = self.conference.lock().ok().and_then(|mut slot| slot.take());
        if let Some((conference, member)) = left {
            conference.leave(member);
        }
    }

    /// Who holds the call.
    pub fn hold_state(&self) -> HoldState {
        self.offer_answer(|o| Ok(o.direction.hold_state()))
            .unwrap_or_default()
    }

    /// Runs `change` on the offer/answer state and passes the resulting directions to the media
    /// task.
    fn offer_answer<T>(
        &self,
        change: impl FnOnce(&mut OfferAnswer) -> Result<T, MediaError>,
    ) -> Result<T, MediaError> {
        let mut state = self
            .offer_answer
            .lock()
            .map_err(|_| MediaError::InvalidState("offer/answer state poisoned"))?;
        let result = change(&mut state);
        self.shared
            .play
            .store(state.direction.plays(), Ordering::Relaxed);
        self.shared
            .send_source
            .store(state.direction.sends_source(), Ordering::Relaxed);
        // Our picture follows our voice: nothing of it while we hold the call.
        if let Ok(ends) = self.video.lock()
            && let Some(sender) = &ends.sender
        {
            sender.set_paused(!state.direction.sends_source());
        }
        self.shared
            .send_music
            .store(state.direction.sends_music(), Ordering::Relaxed);
        result
    }

    /// Stamps a description we send with our direction and version and keeps it.
    fn sending(
        &self,
        sdp: &str,
        before: impl FnOnce(&mut StreamDirection) -> Result<(), MediaError>,
    ) -> Result<String, MediaError> {
        self.offer_answer(|o| {
            before(&mut o.direction)?;
            let sdp = o.direction.outgoing(sdp)?;
            o.last_sent = Some(sdp.clone());
            Ok(sdp)
        })
    }

    /// Takes the event stream. Only the first call gets events; later calls get a closed
    /// receiver.
    pub fn events(&mut self) -> mpsc::Receiver<MediaEvent> {
        self.events.take().unwrap_or_else(|| mpsc::channel(1).1)
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> MediaStats {
        let s = &self.shared;
        let (video_sent, video_received) = self
            .video
            .lock()
            .map(|ends| ends.stats())
            .unwrap_or_default();
        MediaStats {
            packets_sent: s.packets_sent.load(Ordering::Relaxed),
            bytes_sent: s.bytes_sent.load(Ordering::Relaxed),
            packets_received: s.packets_received.load(Ordering::Relaxed),
            bytes_received: s.bytes_received.load(Ordering::Relaxed),
            packets_lost: s.packets_lost.load(Ordering::Relaxed),
            packets_late: s.packets_late.load(Ordering::Relaxed),
            jitter_ms: load_f32(&s.jitter_ms),
            jitter_buffer_ms: s.jitter_buffer_ms.load(Ordering::Relaxed),
            codec: codec_from_index(s.codec.load(Ordering::Relaxed))
                .map(|c| c.encoding_name().to_owned())
                .unwrap_or_default(),
            input_level: load_f32(&s.input_level),
            output_level: load_f32(&s.output_level),
            video_sent,
            video_received,
        }
    }

    /// A candidate the peer trickled (RFC 8838) for the media section `mid`: `candidate:...` as
    /// in an `a=candidate` line. Candidates arrive after the description they belong to; one
    /// that cannot be read is the peer's fault ([`MediaError::BadSdp`]).
    pub async fn add_remote_candidate(&self, mid: &str, candidate: &str) -> Result<(), MediaError> {
        let candidate = candidate.trim();
        let candidate = candidate.strip_prefix("a=").unwrap_or(candidate);
        let init = rtc::peer_connection::transport::RTCIceCandidateInit {
            candidate: candidate.to_owned(),
            sdp_mid: Some(mid.to_owned()),
            ..Default::default()
        };
        self.peer
            .add_ice_candidate(init)
            .await
            .map_err(|e| MediaError::BadSdp(format!("trickled candidate refused: {e}")))
    }

    /// Sends silence instead of the source while `muted` (the stream keeps flowing so NATs and
    /// the peer's jitter buffer stay warm).
    pub fn set_muted(&self, muted: bool) {
        self.shared.muted.store(muted, Ordering::Relaxed);
    }

    /// Queues one DTMF key (`0-9 * # A-D`) as RFC 4733 telephone events.
    pub async fn send_dtmf(&self, digit: char) -> Result<(), MediaError> {
        let code = event_code(digit).ok_or(MediaError::InvalidDtmfDigit(digit))?;
        let (reply, result) = oneshot::channel();
        self.commands
            .send(Command::Dtmf { digit: code, reply })
            .await
            .map_err(|_| MediaError::Closed)?;
        result.await.map_err(|_| MediaError::Closed)?
    }

    /// Stops media, finalizes the recording (valid WAV header) and closes the connection.
    pub async fn close(mut self) -> Result<(), MediaError> {
        self.leave_conference();
        self.closed = true;
        let (reply, result) = oneshot::channel();
        let finalized = match self.commands.send(Command::Close { reply }).await {
            Ok(()) => result.await.unwrap_or(Err(MediaError::Closed)),
            Err(_) => Err(MediaError::Closed),
        };
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        // Joining the video threads blocks for at most a frame's work.
        let video = self.video.clone();
        let _ = tokio::task::spawn_blocking(move || {
            if let Ok(mut ends) = video.lock() {
                ends.stop();
            }
        })
        .await;
        let closed = self.peer.close().await.map_err(MediaError::transport);
        finalized.and(closed)
    }

    async fn set_local_and_gather(
        &self,
        description: RTCSessionDescription,
    ) -> Result<String, MediaError> {
        let mut gathered = self.gathering_complete.subscribe();
        self.gathering_complete.send_replace(false);
        gathered.mark_unchanged();
        let mut servers = self.server_candidates.subscribe();
        self.server_candidates
            .send_replace(ServerCandidates::default());
        let started = Instant::now();
        self.peer
            .set_local_description(description)
            .await
            .map_err(MediaError::transport)?;
        let hard_deadline = started + self.gathering_timeout;
        loop {
            if *gathered.borrow_and_update() {
                debug!(elapsed = ?started.elapsed(), "ICE gathering complete");
                break;
            }
            let found = *servers.borrow_and_update();
            let soft_deadline = match found.first_at {
                Some(at) => started + SERVER_CANDIDATE_WAIT.max(3 * at.duration_since(started)),
                None => started + SERVER_CANDIDATE_WAIT,
            };
            let deadline = if self.relay_only && found.relays == 0 {
                hard_deadline
            } else {
                soft_deadline.min(hard_deadline)
            };
            if Instant::now() >= deadline {
                let left_waiting = if deadline == hard_deadline {
                    "ICE gathering not complete in time"
                } else {
                    "STUN/TURN servers slow or not answering"
                };
                warn!(
                    elapsed = ?started.elapsed(),
                    server_candidates = found.first_at.is_some(),
                    "{left_waiting}; sending the candidates gathered so far"
                );
                break;
            }
            tokio::select! {
                changed = gathered.changed() => {
                    if changed.is_err() {
                        return Err(MediaError::Closed);
                    }
                }
                _ = servers.changed() => {}
                () = tokio::time::sleep_until(deadline.into()) => {}
            }
        }
        let local = self
            .peer
            .local_description()
            .await
            .ok_or(MediaError::InvalidState(
                "no local description after setting it",
            ))?;
        Ok(local.sdp)
    }

    /// Reads what was negotiated and hands it to the media task.
    async fn start_media(&self, remote_sdp: &str) -> Result<(), MediaError> {
        let parameters = self
            .sender
            .get_parameters()
            .await
            .map_err(MediaError::transport)?;
        let negotiated: Vec<(u8, PayloadFormat)> = parameters
            .rtp_parameters
            .codecs
            .iter()
            .filter_map(|c| {
                let name = c.rtp_codec.mime_type.split('/').nth(1).unwrap_or_default();
                let format = crate::sdp::SdpFormat {
                    payload_type: c.payload_type,
                    name: name.to_owned(),
                    clock_rate: c.rtp_codec.clock_rate,
                }
                .format()?;
                Some((c.payload_type, format))
            })
            .collect();
        let Some((send_payload_type, send_codec)) =
            negotiated.iter().find_map(|(pt, format)| match format {
                PayloadFormat::Audio(codec) => Some((*pt, *codec)),
                PayloadFormat::TelephoneEvent(_) => None,
            })
        else {
            return Err(MediaError::NoCommonCodec {
                offered: parameters
                    .rtp_parameters
                    .codecs
                    .iter()
                    .map(|c| c.rtp_codec.mime_type.clone())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        };
        let telephone_event_payload_type = negotiated.iter().find_map(|(pt, format)| {
            (*format == PayloadFormat::TelephoneEvent(send_codec.clock_rate())).then_some(*pt)
        });
        let ssrc = parameters
            .encodings
            .first()
            .and_then(|e| e.rtp_coding_parameters.ssrc)
            .ok_or(MediaError::InvalidState("sender has no SSRC"))?;

        // Payload types the peer may send us: what we put in our description, plus the
        // peer's own numbering in case it does not mirror ours.
        let mut receive_formats = negotiated.clone();
        let mut add_from = |sdp: &str| {
            if let Ok(section) = audio_section(sdp) {
                for format in section.formats {
                    if let Some(meaning) = format.format()
                        && !receive_formats
                            .iter()
                            .any(|(pt, _)| *pt == format.payload_type)
                    {
                        receive_formats.push((format.payload_type, meaning));
                    }
                }
            }
        };
        if let Some(local) = self.peer.local_description().await {
            add_from(&local.sdp);
        }
        add_from(remote_sdp);

        info!(codec = send_codec.encoding_name(), "media negotiated");
        self.commands
            .send(Command::Negotiated(Negotiated {
                send_codec,
                send_payload_type,
                telephone_event_payload_type,
                ssrc,
                receive_formats,
            }))
            .await
            .map_err(|_| MediaError::Closed)
    }
}

impl Drop for MediaSession {
    fn drop(&mut self) {
        if self.closed {
            return;
        }
        self.leave_conference();
        // Dropped without close(): the media task ends when the command channel closes; the
        // peer connection still needs an explicit close to release its sockets, and the
        // video threads a stop.
        let peer = self.peer.clone();
        let video = self.video.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn_blocking(move || {
                if let Ok(mut ends) = video.lock() {
                    ends.stop();
                }
            });
            runtime.spawn(async move {
                let _ = peer.close().await;
            });
        }
    }
}

struct SendState {
    codec: AudioCodec,
    encoder: Encoder,
    payload_type: u8,
    telephone_event_payload_type: Option<u8>,
    ssrc: u32,
    sequence: u16,
    timestamp: u32,
    first_packet: bool,
    pending_digits: VecDeque<u8>,
    current_event: Option<EventSender>,
}

struct MediaTask {
    source: Source,
    /// Sent instead of the source while we hold, when configured.
    music: Option<Source>,
    sink: Sink,
    track: Arc<TrackLocalStaticRTP>,
    shared: Arc<Shared>,
    events: mpsc::Sender<MediaEvent>,
    connected: watch::Receiver<bool>,
    send: Option<SendState>,
    receive_formats: Vec<(u8, PayloadFormat)>,
    decoders: Vec<(AudioCodec, Decoder)>,
    last_decoder: Option<AudioCodec>,
    jitter: JitterBuffer,
    playout: VecDeque<f32>,
    decoded: Vec<f32>,
    frame_in: [f32; FRAME_48K],
    frame_out: [f32; FRAME_48K],
    first_audio_seen: bool,
    /// Until the media connection is up: when it must be up by (set by the first negotiation).
    connect_deadline: Option<Instant>,
    /// The connection was up once (later losses are ICE consent's business).
    was_connected: bool,
    /// Key presses the peer sends as telephone events.
    received_events: EventReceiver,
    /// In a conference: the rings to and from the other members.
    conference: Option<ConferenceLink>,
    /// The call's recording (what we heard and what we said, mixed), when one is made.
    recording: Option<Sink>,
    /// What we said in the last frame (the source after mute), for the recording.
    said: [f32; FRAME_48K],
    /// The frame being recorded.
    recorded: [f32; FRAME_48K],
    start: Instant,
}

impl MediaTask {
    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut rtp: mpsc::Receiver<ReceivedRtp>,
        mut conference_links: mpsc::Receiver<Option<ConferenceLink>>,
    ) {
        let mut ticker = tokio::time::interval(FRAME);
        // Missed ticks are made up by counting due frames below; Burst would fire a volley of
        // ticks after a stall and Delay would let the schedule drift.
        ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
        let mut frames_done: u64 = 0;
        let mut close_reply = None;
        loop {
            tokio::select! {
                _ = ticker.tick() => {
                    self.check_connect_deadline();
                    let due = (self.start.elapsed().as_micros() / FRAME.as_micros()) as u64 + 1;
                    let mut behind = due.saturating_sub(frames_done);
                    if behind > MAX_CATCH_UP_FRAMES {
                        debug!(skipped = behind - 1, "media clock stalled; skipping ahead");
                        // The sink still gets silence for the gap so recordings stay time-true.
                        self.frame_out.fill(0.0);
                        for _ in 0..behind - 1 {
                            if let Err(err) = self.sink.write(&self.frame_out) {
                                warn!(%err, "sink write failed");
                            }
                        }
                        if let Some(send) = self.send.as_mut() {
                            let step = send.encoder.timestamp_step();
                            send.timestamp = send
                                .timestamp
                                .wrapping_add(step.wrapping_mul((behind - 1) as u32));
                        }
                        frames_done = due - 1;
                        behind = 1;
                    }
                    for _ in 0..behind {
                        self.process_frame().await;
                        frames_done += 1;
                    }
                }
                Some(packet) = rtp.recv() => self.on_rtp(packet),
                Some(link) = conference_links.recv() => self.conference = link,
                command = commands.recv() => match command {
                    Some(Command::Negotiated(negotiated)) => self.on_negotiated(negotiated),
                    Some(Command::Dtmf { digit, reply }) => {
                        let _ = reply.send(self.queue_dtmf(digit));
                    }
                    Some(Command::Close { reply }) => {
                        close_reply = Some(reply);
                        break;
                    }
                    Some(Command::Record { path, reply }) => {
                        let _ = reply.send(self.record(path).await);
                    }
                    None => break,
                },
            }
        }
        let mut result = self.sink.finalize();
        if let Err(e) = self.record(None).await {
            result = result.and(Err(e));
        }
        if let Some(reply) = close_reply {
            let _ = reply.send(result);
        }
    }

    /// Starts a recording into `path` (ending one in progress), or ends it (`None`).
    async fn record(&mut self, path: Option<std::path::PathBuf>) -> Result<(), MediaError> {
        if let Some(mut recording) = self.recording.take() {
            recording.finalize()?;
        }
        if let Some(path) = path {
            self.recording = Some(Sink::open(&AudioSink::Wav { path }).await?);
        }
        Ok(())
    }

    /// Reports a media connection that did not come up in time as a failed call (once).
    fn check_connect_deadline(&mut self) {
        if *self.connected.borrow() {
            self.was_connected = true;
            self.connect_deadline = None;
            return;
        }
        let Some(deadline) = self.connect_deadline else {
            return;
        };
        if Instant::now() < deadline {
            return;
        }
        self.connect_deadline = None;
        let reason = format!(
            "no media connection {} s after the answer: no network path to the peer worked, or \
             its DTLS certificate does not match the fingerprint in its SDP",
            MEDIA_CONNECT_WAIT.as_secs()
        );
        warn!(%reason, "media connection not established");
        if self.events.try_send(MediaEvent::Failed { reason }).is_err() {
            warn!("media event dropped: the engine is not reading events");
        }
    }

    fn on_negotiated(&mut self, negotiated: Negotiated) {
        if !self.was_connected && self.connect_deadline.is_none() && !*self.connected.borrow() {
            self.connect_deadline = Some(Instant::now() + MEDIA_CONNECT_WAIT);
        }
        self.receive_formats = negotiated.receive_formats;
        let keep_stream = self
            .send
            .as_ref()
            .is_some_and(|s| s.codec == negotiated.send_codec && s.ssrc == negotiated.ssrc);
        if keep_stream {
            if let Some(send) = self.send.as_mut() {
                send.payload_type = negotiated.send_payload_type;
                send.telephone_event_payload_type = negotiated.telephone_event_payload_type;
            }
            return;
        }
        match Encoder::new(negotiated.send_codec) {
            Ok(encoder) => {
                self.shared
                    .codec
                    .store(codec_index(negotiated.send_codec), Ordering::Relaxed);
                self.send = Some(SendState {
                    codec: negotiated.send_codec,
                    encoder,
                    payload_type: negotiated.send_payload_type,
                    telephone_event_payload_type: negotiated.telephone_event_payload_type,
                    ssrc: negotiated.ssrc,
                    // RFC 3550 §5.1: random initial sequence number and timestamp.
                    sequence: random_u32() as u16,
                    timestamp: random_u32(),
                    first_packet: true,
                    pending_digits: VecDeque::new(),
                    current_event: None,
                });
            }
            Err(err) => warn!(%err, "cannot create encoder; not sending"),
        }
    }

    fn queue_dtmf(&mut self, digit: u8) -> Result<(), MediaError> {
        let send = self.send.as_mut().ok_or(MediaError::InvalidState(
            "DTMF before the call is negotiated",
        ))?;
        if send.telephone_event_payload_type.is_none() {
            return Err(MediaError::DtmfNotNegotiated);
        }
        send.pending_digits.push_back(digit);
        Ok(())
    }

    fn on_rtp(&mut self, packet: ReceivedRtp) {
        let Some(format) = self
            .receive_formats
            .iter()
            .find(|(pt, _)| *pt == packet.payload_type)
            .map(|(_, f)| *f)
        else {
            trace!(
                pt = packet.payload_type,
                "RTP with unknown payload type ignored"
            );
            return;
        };
        let clock_rate = match format {
            PayloadFormat::Audio(codec) => codec.clock_rate(),
            PayloadFormat::TelephoneEvent(rate) => rate,
        };
        if matches!(format, PayloadFormat::TelephoneEvent(_))
            && let Some(digit) = self
                .received_events
                .receive(packet.timestamp, &packet.payload)
        {
            debug!(%digit, "DTMF received");
            let _ = self.events.try_send(MediaEvent::Dtmf { digit });
        }
        let bytes = packet.payload.len() as u64;
        let arrival_ms = packet
            .arrival
            .saturating_duration_since(self.start)
            .as_secs_f64()
            * 1e3;
        let timestamp_ms = f64::from(packet.timestamp) * 1e3 / f64::from(clock_rate.max(1));
        match self.jitter.insert(
            packet.sequence,
            timestamp_ms,
            arrival_ms,
            packet.payload_type,
            packet.payload,
        ) {
            Insert::Accepted => {
                self.shared.packets_received.fetch_add(1, Ordering::Relaxed);
                self.shared
                    .bytes_received
                    .fetch_add(bytes, Ordering::Relaxed);
                if !self.first_audio_seen && matches!(format, PayloadFormat::Audio(_)) {
                    self.first_audio_seen = true;
                    info!("first audio packet received");
                    let _ = self.events.try_send(MediaEvent::FirstAudioReceived);
                }
            }
            Insert::Late => {
                self.shared
                    .packets_late
                    .store(self.jitter.late(), Ordering::Relaxed);
            }
            Insert::Duplicate => {}
        }
        store_f32(&self.shared.jitter_ms, self.jitter.jitter_ms() as f32);
        self.shared
            .jitter_buffer_ms
            .store(self.jitter.target_ms(), Ordering::Relaxed);
    }

    fn decoder(&mut self, codec: AudioCodec) -> Option<&mut Decoder> {
        if !self.decoders.iter().any(|(c, _)| *c == codec) {
            match Decoder::new(codec) {
                Ok(decoder) => self.decoders.push((codec, decoder)),
                Err(err) => {
                    warn!(%err, "cannot create decoder");
                    return None;
                }
            }
        }
        self.decoders
            .iter_mut()
            .find(|(c, _)| *c == codec)
            .map(|(_, d)| d)
    }

    fn format_of(&self, payload_type: u8) -> Option<PayloadFormat> {
        self.receive_formats
            .iter()
            .find(|(pt, _)| *pt == payload_type)
            .map(|(_, f)| *f)
    }

    /// Fills the playout queue to one frame from the jitter buffer.
    fn pull_playout(&mut self) {
        let mut guard = 0;
        while self.playout.len() < FRAME_48K && guard < 8 {
            guard += 1;
            self.decoded.clear();
            match self.jitter.pop() {
                Playout::Packet {
                    payload,
                    payload_type,
                } => match self.format_of(payload_type) {
                    Some(PayloadFormat::Audio(codec)) => {
                        self.last_decoder = Some(codec);
                        let mut decoded = std::mem::take(&mut self.decoded);
                        if let Some(decoder) = self.decoder(codec) {
                            decoder.decode(&payload, &mut decoded);
                        }
                        self.decoded = decoded;
                    }
                    // A telephone-event packet replaces 20 ms of audio (RFC 4733 §2.5.1.1).
                    _ => self.decoded.resize(FRAME_48K, 0.0),
                },
                Playout::Lost { next } => {
                    self.shared
                        .packets_lost
                        .store(self.jitter.lost(), Ordering::Relaxed);
                    let Some(codec) = self.last_decoder else {
                        self.decoded.resize(FRAME_48K, 0.0);
                        self.playout.extend(self.decoded.drain(..));
                        continue;
                    };
                    let next_same_codec = next.and_then(|(payload, pt)| {
                        (self.format_of(pt) == Some(PayloadFormat::Audio(codec))).then_some(payload)
                    });
                    let mut decoded = std::mem::take(&mut self.decoded);
                    if let Some(decoder) = self.decoder(codec) {
                        decoder.conceal(next_same_codec.as_deref(), &mut decoded);
                    }
                    self.decoded = decoded;
                }
                Playout::Empty => break,
            }
            self.playout.extend(self.decoded.drain(..));
        }
    }

    async fn process_frame(&mut self) {
        // Receive side: one frame to the sink, silence where nothing is playable.
        self.pull_playout();
        for slot in self.frame_out.iter_mut() {
            *slot = self.playout.pop_front().unwrap_or(0.0);
        }
        if !self.shared.play.load(Ordering::Relaxed) {
            // On hold: what still arrives is consumed, not played.
            self.frame_out.fill(0.0);
        }
        if let Some(link) = self.conference.as_mut() {
            link.publish(&self.frame_out);
        }
        if let Some(recording) = self.recording.as_mut() {
            for (mixed, (heard, said)) in self
                .recorded
                .iter_mut()
                .zip(self.frame_out.iter().zip(self.said.iter()))
            {
                *mixed = (heard + said).clamp(-1.0, 1.0);
            }
            if let Err(err) = recording.write(&self.recorded) {
                warn!(%err, "call recording failed; it stops here");
                self.recording = None;
            }
        }
        self.said.fill(0.0);
        store_f32(&self.shared.output_level, rms_level(&self.frame_out));
        if let Err(err) = self.sink.write(&self.frame_out) {
            warn!(%err, "sink write failed");
        }
        self.source.received(&self.frame_out);

        // Send side: only once negotiated and connected.
        let connected = *self.connected.borrow();
        let Some(send) = self.send.as_mut().filter(|_| connected) else {
            self.source.idle(&mut self.frame_in);
            return;
        };
        let music = self
            .music
            .as_mut()
            .filter(|_| self.shared.send_music.load(Ordering::Relaxed));
        if let Some(music) = music {
            // We hold: the music goes out, and nothing of the microphone or a conference.
            self.source.idle(&mut self.frame_in);
            music.fill(&mut self.frame_in);
            store_f32(&self.shared.input_level, 0.0);
        } else if !self.shared.send_source.load(Ordering::Relaxed) {
            // On hold: nothing goes out, and the first packet after it starts a talk spurt.
            self.source.idle(&mut self.frame_in);
            send.timestamp = send.timestamp.wrapping_add(send.encoder.timestamp_step());
            send.first_packet = true;
            return;
        } else {
            self.source.fill(&mut self.frame_in);
            if self.shared.muted.load(Ordering::Relaxed) {
                self.frame_in.fill(0.0);
            }
            store_f32(&self.shared.input_level, rms_level(&self.frame_in));
            self.said.copy_from_slice(&self.frame_in);
            // In a conference the other parties' voices go out with ours (never this party's
            // own).
            if let Some(link) = self.conference.as_mut() {
                link.mix_into(&mut self.frame_in);
            }
        }

        let step = send.encoder.timestamp_step();
        if send.current_event.is_none()
            && let Some(digit) = send.pending_digits.pop_front()
        {
            send.current_event = Some(EventSender::new(digit, send.timestamp, step));
        }
        let event_packet = match send.current_event.as_mut().map(EventSender::next_packet) {
            Some(Some(packet)) => packet,
            Some(None) => {
                send.current_event = None;
                None
            }
            None => None,
        };
        let packet = match (event_packet, send.telephone_event_payload_type) {
            (Some(event), Some(pt)) => Some((
                pt,
                event.marker,
                event.timestamp,
                Bytes::copy_from_slice(&event.payload),
            )),
            _ => match send.encoder.encode(&self.frame_in) {
                Ok(payload) => {
                    // RFC 3551 §4.1: marker on the first packet of a talk spurt.
                    let marker = std::mem::take(&mut send.first_packet);
                    Some((
                        send.payload_type,
                        marker,
                        send.timestamp,
                        Bytes::copy_from_slice(payload),
                    ))
                }
                Err(err) => {
                    warn!(%err, "encode failed");
                    None
                }
            },
        };
        if let Some((payload_type, marker, timestamp, payload)) = packet {
            let bytes = payload.len() as u64;
            let packet = rtc::rtp::Packet {
                header: rtc::rtp::header::Header {
                    version: 2,
                    marker,
                    payload_type,
                    sequence_number: send.sequence,
                    timestamp,
                    ssrc: send.ssrc,
                    ..Default::default()
                },
                payload,
            };
            send.sequence = send.sequence.wrapping_add(1);
            match self.track.write_rtp(packet).await {
                Ok(()) => {
                    self.shared.packets_sent.fetch_add(1, Ordering::Relaxed);
                    self.shared.bytes_sent.fetch_add(bytes, Ordering::Relaxed);
                }
                Err(err) => debug!(%err, "RTP write failed"),
            }
        }
        send.timestamp = send.timestamp.wrapping_add(step);
    }
}
