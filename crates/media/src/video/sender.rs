//! [`VideoSender`]: a picture source, encoded to VP8 on a thread of its own, sent as RTP on a
//! local track, answering the receiver's keyframe requests and following the bandwidth
//! estimate.
//!
//! ```text
//!  encoding thread:  source ─▶ Vp8Encoder ─▶ packetizer ─┐ (queue of whole frames)
//!  media thread:                     track.write_rtp ◀───┘
//!  media thread:     track.poll (PLI, FIR, REMB) ─▶ flags the encoding thread reads
//! ```
//!
//! Encoding a 720p frame takes milliseconds, so it never runs on the media thread, where it
//! would delay audio. The two sides meet only through a bounded queue and atomics; the encoding
//! thread never waits for the network.

use super::random_u32;
use super::rtp::Vp8Packetizer;
use super::setup::BandwidthEstimate;
use crate::error::MediaError;
use bytes::Bytes;
use lyrebird_video::{
    I420Frame, RTP_VIDEO_CLOCK_RATE, TestPattern, Vp8Encoder, Vp8EncoderConfig, Y4mReader,
};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::mpsc::{self as std_mpsc, RecvTimeoutError};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};

/// Frame rate of a source that does not say (a bare [`TestPattern`]).
pub const DEFAULT_FRAME_RATE: u32 = 30;
/// Encoded frames waiting for the network side. Two is enough to ride out a busy media thread
/// for a frame; beyond that, frames are skipped before encoding, which costs the receiver
/// nothing, rather than after, which would cost it a keyframe.
const FRAME_QUEUE: usize = 2;
/// Share of the bandwidth estimate given to the video encoder: the estimate covers everything
/// sent (audio, RTP/SRTP/UDP headers, retransmissions), the encoder's target only its payload.
const VIDEO_SHARE: f64 = 0.85;
/// How often to look again for feedback on a track not yet bound to a negotiated sender
/// (webrtc-rs has no event for binding; its `poll` just returns `None` until then).
const UNBOUND_RETRY: Duration = Duration::from_millis(100);

/// Where a [`VideoSender`] gets its pictures.
///
/// `next_frame` is called on the sender's encoding thread once per frame interval
/// (`1 / frame_rate`). A source that paces itself, like a camera, may block until its next
/// picture is ready, but should return within an interval or so, because stopping the sender
/// waits for it.
pub trait VideoSource: Send + 'static {
    /// The next picture, or `None` when the source has ended (the sender then stops sending).
    fn next_frame(&mut self) -> Option<I420Frame>;
    /// Pictures per second the source delivers.
    fn frame_rate(&self) -> u32;
}

/// A bare test pattern runs at [`DEFAULT_FRAME_RATE`]; wrap it in [`AtFrameRate`] for another.
impl VideoSource for TestPattern {
    fn next_frame(&mut self) -> Option<I420Frame> {
        Some(TestPattern::next_frame(self))
    }

    fn frame_rate(&self) -> u32 {
        DEFAULT_FRAME_RATE
    }
}

/// A Y4M clip plays at its header's rate (or [`DEFAULT_FRAME_RATE`]) and ends with the file;
/// a damaged file ends it early.
impl<R: std::io::Read + Send + 'static> VideoSource for Y4mReader<R> {
    fn next_frame(&mut self) -> Option<I420Frame> {
        self.read_frame()
            .inspect_err(|err| warn!(%err, "Y4M source unreadable; ending it"))
            .ok()
            .flatten()
    }

    fn frame_rate(&self) -> u32 {
        self.frame_rate()
            .filter(|rate| rate.den > 0)
            .map(|rate| (f64::from(rate.num) / f64::from(rate.den)).round() as u32)
            .filter(|&fps| fps > 0)
            .unwrap_or(DEFAULT_FRAME_RATE)
    }
}

/// Any source, at a frame rate of the caller's choosing.
pub struct AtFrameRate<S> {
    pub source: S,
    pub frame_rate: u32,
}

impl<S: VideoSource> VideoSource for AtFrameRate<S> {
    fn next_frame(&mut self) -> Option<I420Frame> {
        self.source.next_frame()
    }

    fn frame_rate(&self) -> u32 {
        self.frame_rate
    }
}

/// How a [`VideoSender`] sends.
#[derive(Debug, Clone)]
pub struct VideoSenderConfig {
    /// The track's SSRC and the negotiated VP8 payload type
    /// ([`negotiated_vp8`](super::negotiated_vp8)).
    pub ssrc: u32,
    pub payload_type: u8,
    /// The encoder's target without a bandwidth estimate, and its ceiling with one.
    pub max_bitrate_kbps: u32,
    /// The encoder's floor, however low the estimate.
    pub min_bitrate_kbps: u32,
    /// The peer connection's congestion controller's estimate, if it has one
    /// ([`configure_video_interceptors`](super::configure_video_interceptors)).
    pub estimate: Option<BandwidthEstimate>,
    /// libvpx speed (0..=16) and encoder threads; see `Vp8EncoderConfig`.
    pub speed: u8,
    pub threads: u32,
}

impl VideoSenderConfig {
    /// 1.5 Mbit/s at most, 150 kbit/s at least: room for 720p at 30 fps, and still a picture
    /// on a poor path.
    pub fn new(ssrc: u32, payload_type: u8) -> Self {
        // The video crate's real-time defaults; the size and rate given here are unused.
        let encoder = Vp8EncoderConfig::new(2, 2, 1);
        Self {
            ssrc,
            payload_type,
            max_bitrate_kbps: 1_500,
            min_bitrate_kbps: 150,
            estimate: None,
            speed: encoder.speed,
            threads: encoder.threads,
        }
    }
}

/// What a sender has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VideoSenderStats {
    pub frames_encoded: u64,
    pub keyframes_encoded: u64,
    /// PLI and FIR received from the remote end (a repeated FIR counts once, RFC 5104 §4.3.1).
    pub keyframe_requests_received: u64,
    /// Frames not encoded: the clock was late (a stall) or the network side was behind.
    pub frames_skipped: u64,
    pub packets_sent: u64,
    /// RTP payload bytes handed to the peer connection.
    pub bytes_sent: u64,
    /// Packets the peer connection refused (before negotiation, after close).
    pub write_errors: u64,
    pub encode_errors: u64,
    /// The encoder's current target.
    pub bitrate_kbps: u32,
    /// Size of the last frame encoded.
    pub resolution: Option<(u32, u32)>,
    /// The source has no more pictures.
    pub source_ended: bool,
    /// Wall-clock ms (since 1970) at which the first frame was taken from the source: with
    /// nothing skipped, frame `n` of a test pattern was taken `n` frame intervals later.
    pub first_capture_unix_ms: Option<u64>,
}

#[derive(Default)]
struct Shared {
    keyframe_wanted: AtomicBool,
    /// Nothing is taken from the source or sent (a call on hold).
    paused: AtomicBool,
    frames_encoded: AtomicU64,
    keyframes_encoded: AtomicU64,
    keyframe_requests_received: AtomicU64,
    frames_skipped: AtomicU64,
    packets_sent: AtomicU64,
    bytes_sent: AtomicU64,
    write_errors: AtomicU64,
    encode_errors: AtomicU64,
    bitrate_kbps: AtomicU32,
    /// Width in the high half, height in the low; 0 before the first frame.
    resolution: AtomicU64,
    /// The last REMB received, bit/s; 0 for none.
    remb_bps: AtomicU64,
    source_ended: AtomicBool,
    /// 0 until the first frame is taken.
    first_capture_unix_ms: AtomicU64,
}

fn bump(counter: &AtomicU64, by: u64) {
    counter.fetch_add(by, Ordering::Relaxed);
}

/// One frame's packets, from the encoding thread to the network side.
struct EncodedPackets {
    packets: Vec<rtc::rtp::Packet>,
}

/// Sends one video stream. See the module documentation. Dropping it stops it, as
/// [`stop`](Self::stop) does.
pub struct VideoSender {
    shared: Arc<Shared>,
    stop: Option<std_mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    tasks: Vec<JoinHandle<()>>,
}

impl VideoSender {
    /// Starts encoding `source` onto `track` (given to `add_track` on the peer connection).
    /// Start it once the connection is up: webrtc-rs takes packets from the moment the track is
    /// added but can send none before DTLS is done, so earlier frames, the first keyframe
    /// among them, are lost, and the receiver has to ask for another.
    pub fn start(
        track: Arc<dyn TrackLocal>,
        source: impl VideoSource,
        config: VideoSenderConfig,
    ) -> Result<Self, MediaError> {
        if config.max_bitrate_kbps == 0 {
            return Err(MediaError::Video(lyrebird_video::Error::InvalidArgument(
                "video bitrate must be above zero",
            )));
        }
        let shared = Arc::new(Shared::default());
        shared
            .bitrate_kbps
            .store(config.max_bitrate_kbps, Ordering::Relaxed);
        let (frames_tx, frames_rx) = mpsc::channel(FRAME_QUEUE);
        let (stop_tx, stop_rx) = std_mpsc::channel();
        let span = tracing::debug_span!("video_send", ssrc = config.ssrc);
        let encoding = Encoding {
            config: config.clone(),
            shared: shared.clone(),
            out: frames_tx,
            stop: stop_rx,
        };
        let thread = std::thread::Builder::new()
            .name("lyrebird-video-enc".into())
            .spawn(move || {
                let _entered = span.enter();
                encoding.run(Box::new(source));
            })
            .map_err(lyrebird_video::Error::Io)?;
        let tasks = vec![
            crate::media_thread::spawn(write_packets(track.clone(), frames_rx, shared.clone())),
            crate::media_thread::spawn(read_feedback(track, config.ssrc, shared.clone())),
        ];
        info!(
            ssrc = config.ssrc,
            payload_type = config.payload_type,
            "video sender started"
        );
        Ok(Self {
            shared,
            stop: Some(stop_tx),
            thread: Some(thread),
            tasks,
        })
    }

    /// Makes the next frame a keyframe (for a new viewer, say; the remote end's own requests
    /// arrive as RTCP and are answered without this).
    pub fn request_keyframe(&self) {
        self.shared.keyframe_wanted.store(true, Ordering::Relaxed);
    }

    /// Stops (`true`) or restarts taking pictures from the source and sending them — a call on
    /// hold shows nothing of us. The first picture after a pause is a keyframe.
    pub fn set_paused(&self, paused: bool) {
        let was = self.shared.paused.swap(paused, Ordering::Relaxed);
        if was && !paused {
            self.shared.keyframe_wanted.store(true, Ordering::Relaxed);
        }
    }

    pub fn stats(&self) -> VideoSenderStats {
        let s = &self.shared;
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let resolution = load(&s.resolution);
        VideoSenderStats {
            frames_encoded: load(&s.frames_encoded),
            keyframes_encoded: load(&s.keyframes_encoded),
            keyframe_requests_received: load(&s.keyframe_requests_received),
            frames_skipped: load(&s.frames_skipped),
            packets_sent: load(&s.packets_sent),
            bytes_sent: load(&s.bytes_sent),
            write_errors: load(&s.write_errors),
            encode_errors: load(&s.encode_errors),
            bitrate_kbps: s.bitrate_kbps.load(Ordering::Relaxed),
            resolution: (resolution != 0).then_some(((resolution >> 32) as u32, resolution as u32)),
            source_ended: s.source_ended.load(Ordering::Relaxed),
            first_capture_unix_ms: Some(load(&s.first_capture_unix_ms)).filter(|ms| *ms != 0),
        }
    }

    /// Stops encoding and sending, waits for the encoding thread to finish its frame, and
    /// returns the final figures.
    pub fn stop(mut self) -> VideoSenderStats {
        self.shutdown();
        self.stats()
    }

    fn shutdown(&mut self) {
        // Closing the channel wakes the encoding thread at once, whatever it waits for.
        self.stop.take();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            warn!("video encoding thread panicked");
        }
        for task in self.tasks.drain(..) {
            task.abort();
        }
    }
}

impl Drop for VideoSender {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The encoding thread's state.
struct Encoding {
    config: VideoSenderConfig,
    shared: Arc<Shared>,
    out: mpsc::Sender<EncodedPackets>,
    stop: std_mpsc::Receiver<()>,
}

impl Encoding {
    fn run(self, mut source: Box<dyn VideoSource>) {
        let fps = source.frame_rate().clamp(1, 120);
        let period_ns = 1_000_000_000 / u64::from(fps);
        let start = Instant::now();
        // RFC 3550 §5.1: timestamps and sequence numbers start at random values.
        let timestamp_base = random_u32();
        let mut packetizer = Vp8Packetizer::new(
            self.config.ssrc,
            self.config.payload_type,
            random_u32() as u16,
        );
        let mut encoder: Option<Vp8Encoder> = None;
        let mut bitrate = self.config.max_bitrate_kbps;
        let mut last_pts: i64 = -1;
        let mut due_frames: u64 = 0;
        let mut encode_failures_logged = false;
        loop {
            let due = start + Duration::from_nanos(period_ns.saturating_mul(due_frames));
            match self
                .stop
                .recv_timeout(due.saturating_duration_since(Instant::now()))
            {
                Err(RecvTimeoutError::Timeout) => {}
                Ok(()) | Err(RecvTimeoutError::Disconnected) => break,
            }
            // After a stall (suspend, an overloaded machine) the frames missed are skipped,
            // not burst out late.
            let late = (Instant::now().saturating_duration_since(due).as_nanos()
                / u128::from(period_ns)) as u64;
            if late > 0 {
                bump(&self.shared.frames_skipped, late);
            }
            due_frames += late + 1;
            if self.shared.paused.load(Ordering::Relaxed) {
                continue;
            }

            let Some(frame) = source.next_frame() else {
                info!("video source ended");
                self.shared.source_ended.store(true, Ordering::Relaxed);
                break;
            };
            let captured = Instant::now();
            if self.shared.first_capture_unix_ms.load(Ordering::Relaxed) == 0 {
                self.shared
                    .first_capture_unix_ms
                    .store(super::unix_ms(), Ordering::Relaxed);
            }
            if self.out.capacity() == 0 {
                bump(&self.shared.frames_skipped, 1);
                continue;
            }

            let encoder = match &mut encoder {
                Some(encoder) => encoder,
                None => match self.new_encoder(&frame, fps, bitrate) {
                    Ok(created) => encoder.insert(created),
                    Err(err) => {
                        bump(&self.shared.encode_errors, 1);
                        if !encode_failures_logged {
                            warn!(%err, "cannot start the VP8 encoder");
                            encode_failures_logged = true;
                        }
                        continue;
                    }
                },
            };
            if self.shared.keyframe_wanted.swap(false, Ordering::Relaxed) {
                encoder.request_keyframe();
            }
            let target = self.target_kbps();
            // Small changes are not worth reconfiguring libvpx's rate control for.
            if target.abs_diff(bitrate) * 20 >= bitrate {
                match encoder.set_bitrate(target) {
                    Ok(()) => {
                        debug!(from = bitrate, to = target, "video bitrate");
                        bitrate = target;
                        self.shared.bitrate_kbps.store(target, Ordering::Relaxed);
                    }
                    Err(err) => warn!(%err, "cannot change the video bitrate"),
                }
            }
            // 90 kHz from the capture instant, so the receiver sees the real spacing of frames;
            // strictly increasing, as the encoder requires.
            let since_start = captured.saturating_duration_since(start);
            let ticks = since_start.as_nanos() * u128::from(RTP_VIDEO_CLOCK_RATE) / 1_000_000_000;
            let pts = i64::try_from(ticks).unwrap_or(i64::MAX).max(last_pts + 1);
            last_pts = pts;

            let encoded = match encoder.encode(&frame, pts) {
                Ok(encoded) => encoded,
                Err(err) => {
                    bump(&self.shared.encode_errors, 1);
                    if !encode_failures_logged {
                        warn!(%err, "VP8 encoding failed");
                        encode_failures_logged = true;
                    }
                    continue;
                }
            };
            for encoded in encoded {
                let keyframe = encoded.keyframe;
                let size = (u64::from(encoded.width) << 32) | u64::from(encoded.height);
                // The RTP timestamp is the pts modulo 2^32, offset by the random base.
                let timestamp = timestamp_base.wrapping_add(encoded.pts as u32);
                let packets = packetizer.packetize(Bytes::from(encoded.data), timestamp);
                match self.out.try_send(EncodedPackets { packets }) {
                    Ok(()) => {
                        bump(&self.shared.frames_encoded, 1);
                        if keyframe {
                            bump(&self.shared.keyframes_encoded, 1);
                        }
                        self.shared.resolution.store(size, Ordering::Relaxed);
                    }
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        // This frame never leaves, and the next refers to it.
                        bump(&self.shared.frames_skipped, 1);
                        self.shared.keyframe_wanted.store(true, Ordering::Relaxed);
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => return,
                }
            }
        }
    }

    fn new_encoder(
        &self,
        frame: &I420Frame,
        fps: u32,
        bitrate: u32,
    ) -> Result<Vp8Encoder, MediaError> {
        let mut config = Vp8EncoderConfig::new(frame.width(), frame.height(), bitrate);
        config.frame_rate = fps;
        config.speed = self.config.speed;
        config.threads = self.config.threads;
        Ok(Vp8Encoder::new(config)?)
    }

    /// The encoder's target: the configured ceiling, or less when the congestion controller's
    /// estimate or the receiver's REMB says so.
    fn target_kbps(&self) -> u32 {
        let estimate = self
            .config
            .estimate
            .as_ref()
            .and_then(BandwidthEstimate::bits_per_second);
        let remb = match self.shared.remb_bps.load(Ordering::Relaxed) {
            0 => None,
            bps => Some(bps),
        };
        target_kbps(
            estimate.into_iter().chain(remb).min(),
            self.config.min_bitrate_kbps,
            self.config.max_bitrate_kbps,
        )
    }
}

fn target_kbps(limit_bps: Option<u64>, min_kbps: u32, max_kbps: u32) -> u32 {
    match limit_bps {
        None => max_kbps,
        Some(bps) => {
            let kbps = (bps as f64 * VIDEO_SHARE / 1000.0) as u32;
            kbps.clamp(min_kbps.min(max_kbps), max_kbps)
        }
    }
}

/// Hands each frame's packets to the peer connection, on the media thread.
async fn write_packets(
    track: Arc<dyn TrackLocal>,
    mut frames: mpsc::Receiver<EncodedPackets>,
    shared: Arc<Shared>,
) {
    let mut refused_logged = false;
    while let Some(frame) = frames.recv().await {
        for packet in frame.packets {
            let bytes = packet.payload.len() as u64;
            match track.write_rtp(packet).await {
                Ok(()) => {
                    bump(&shared.packets_sent, 1);
                    bump(&shared.bytes_sent, bytes);
                }
                Err(err) => {
                    bump(&shared.write_errors, 1);
                    if !refused_logged {
                        debug!(%err, "video packet refused (not negotiated yet?)");
                        refused_logged = true;
                    }
                    // The rest of the frame is useless without this packet, and the next frame
                    // would refer to it: start again from a keyframe.
                    shared.keyframe_wanted.store(true, Ordering::Relaxed);
                    break;
                }
            }
        }
    }
}

/// Reads the RTCP the remote end sends about this track: keyframe requests and REMB.
async fn read_feedback(track: Arc<dyn TrackLocal>, ssrc: u32, shared: Arc<Shared>) {
    // RFC 5104 §4.3.1.2: a FIR repeated with the same sequence number asks for nothing new.
    let mut last_fir: Option<u8> = None;
    loop {
        let Some(event) = track.poll().await else {
            tokio::time::sleep(UNBOUND_RETRY).await;
            continue;
        };
        let TrackLocalEvent::OnRtcpPacket(packets) = event else {
            continue;
        };
        for packet in packets {
            let any = packet.as_any();
            let wants_keyframe = if let Some(pli) = any.downcast_ref::<PictureLossIndication>() {
                pli.media_ssrc == ssrc
            } else if let Some(fir) = any.downcast_ref::<FullIntraRequest>() {
                fir.fir.iter().any(|entry| {
                    entry.ssrc == ssrc
                        && last_fir.replace(entry.sequence_number) != Some(entry.sequence_number)
                })
            } else {
                if let Some(remb) = any.downcast_ref::<ReceiverEstimatedMaximumBitrate>()
                    && (remb.ssrcs.is_empty() || remb.ssrcs.contains(&ssrc))
                    && remb.bitrate.is_finite()
                {
                    shared
                        .remb_bps
                        .store(remb.bitrate.max(1.0) as u64, Ordering::Relaxed);
                }
                false
            };
            if wants_keyframe {
                debug!("keyframe requested by the receiver");
                bump(&shared.keyframe_requests_received, 1);
                shared.keyframe_wanted.store(true, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_follows_the_estimate_within_bounds() {
        assert_eq!(target_kbps(None, 150, 1500), 1500);
        assert_eq!(target_kbps(Some(1_000_000), 150, 1500), 850);
        assert_eq!(target_kbps(Some(10_000_000), 150, 1500), 1500);
        assert_eq!(target_kbps(Some(10_000), 150, 1500), 150);
        // A floor above the ceiling is the ceiling.
        assert_eq!(target_kbps(Some(10_000), 900, 500), 500);
    }
}
