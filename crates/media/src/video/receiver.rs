//! [`VideoReceiver`]: a remote VP8 track put back into frames, decoded on a thread of its own,
//! and handed to its sinks (statistics, a Y4M recording, the test pattern's counter, a
//! renderer).
//!
//! ```text
//!  media thread:     track.poll ─▶ FrameAssembler ─┐ (queue of whole frames)
//!  decoding thread:        Vp8Decoder ◀──────────────┘ ─▶ stats, counter, Y4M, callback
//!  media thread:     PLI ─▶ track.write_rtcp  ◀── losses, undecodable frames, the caller
//! ```
//!
//! A frame that cannot be completed (packets lost for good) or decoded leaves the decoder
//! waiting for a keyframe, and the sender is asked for one with an RTCP PLI (RFC 4585 §6.3.1),
//! at most every [`PLI_MIN_INTERVAL`] unless the caller asks.

use super::random_u32;
use super::rtp::{Assembled, AssembledFrame, FrameAssembler};
use crate::error::MediaError;
use lyrebird_video::{
    FrameRate, I420Frame, ReceiveStats, VideoStats, Vp8Decoder, Y4mWriter, read_counter,
};
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self as std_mpsc, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};

/// How long a missing packet is waited for before its frame is given up: the NACK
/// generator asks for it within 50 ms and three times more in the next 150 ms
/// (`setup::NACK_INTERVAL`), so a retransmission over a path with up to ~150 ms round trip
/// still makes it.
pub const LOSS_WAIT: Duration = Duration::from_millis(200);
/// Automatic keyframe requests are at least this far apart: a keyframe takes a round trip
/// and an encode to come, and every inter frame arriving meanwhile would otherwise ask again.
pub const PLI_MIN_INTERVAL: Duration = Duration::from_millis(250);
/// Whole frames waiting for the decoder. When it falls further behind, frames are dropped and a
/// keyframe requested, which bounds the delay it can add.
const DECODE_QUEUE: usize = 4;

/// About one decoded frame, besides its picture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameInfo {
    /// The RTP timestamp (90 kHz) the sender gave the frame.
    pub rtp_timestamp: u32,
    pub keyframe: bool,
    /// The test pattern's counter, when [`VideoReceiverConfig::read_counter`] is on and the
    /// picture carries a readable one.
    pub counter: Option<u32>,
}

/// Called on the decoding thread with each decoded picture, for a renderer. It should hand
/// the picture on (clone it into a channel) rather than work on it: the next frame waits.
pub type FrameCallback = Box<dyn FnMut(&I420Frame, &FrameInfo) + Send + 'static>;

/// What a [`VideoReceiver`] does with what it decodes.
pub struct VideoReceiverConfig {
    /// Record every decoded picture into this Y4M file (created, or truncated, at start).
    pub record: Option<PathBuf>,
    /// The frame rate the recording's header states. Y4M has no timestamps: a player shows the
    /// pictures at this rate, whatever the spacing they arrived with.
    pub record_frame_rate: u32,
    /// Read the test pattern's frame counter from each picture and track its gaps.
    pub read_counter: bool,
    pub on_frame: Option<FrameCallback>,
}

impl Default for VideoReceiverConfig {
    fn default() -> Self {
        Self {
            record: None,
            record_frame_rate: 30,
            read_counter: false,
            on_frame: None,
        }
    }
}

impl std::fmt::Debug for VideoReceiverConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VideoReceiverConfig")
            .field("record", &self.record)
            .field("record_frame_rate", &self.record_frame_rate)
            .field("read_counter", &self.read_counter)
            .field("on_frame", &self.on_frame.is_some())
            .finish()
    }
}

/// What a receiver has seen so far.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VideoReceiverStats {
    /// Frames decoded and dropped (lost in transit or undecodable), size, rate and freezes.
    pub video: VideoStats,
    pub keyframes_decoded: u64,
    /// PLIs sent to the sender.
    pub keyframe_requests_sent: u64,
    /// Frames given up because packets of theirs never came (also in `video.frames_dropped`).
    pub frames_lost_in_transit: u64,
    pub packets_received: u64,
    /// RTP payload bytes received.
    pub bytes_received: u64,
    /// Packets whose VP8 payload descriptor could not be read.
    pub malformed_packets: u64,
    /// The last frame counter read (with `read_counter`).
    pub last_counter: Option<u32>,
    /// When that counter's picture was decoded, wall-clock ms since 1970.
    pub last_counter_at_unix_ms: Option<u64>,
    /// Times the counter jumped forward by more than one, and the numbers it skipped in all.
    pub counter_gaps: u64,
    pub counters_skipped: u64,
    /// Times the counter did not move forward (a repeated or older picture).
    pub counters_backwards: u64,
    /// Decoded pictures with no readable counter.
    pub counters_unreadable: u64,
    /// Why the recording stopped early, if it did.
    pub recording_error: Option<String>,
}

/// Counter reading, for a test pattern source.
#[derive(Debug, Default)]
struct Counters {
    last: Option<u32>,
    last_at_unix_ms: Option<u64>,
    gaps: u64,
    skipped: u64,
    backwards: u64,
    unreadable: u64,
}

impl Counters {
    fn note(&mut self, counter: Option<u32>) {
        let Some(counter) = counter else {
            self.unreadable += 1;
            return;
        };
        if let Some(last) = self.last {
            // Forward means less than half the counter's range ahead, so it may wrap.
            let step = counter.wrapping_sub(last);
            if step == 0 || step >= 1 << 31 {
                self.backwards += 1;
            } else if step > 1 {
                self.gaps += 1;
                self.skipped += u64::from(step - 1);
            }
        }
        self.last = Some(counter);
    }
}

/// What the decoding thread writes and [`VideoReceiver::stats`] reads; locked once per frame.
#[derive(Default)]
struct DecodeState {
    stats: ReceiveStats,
    keyframes_decoded: u64,
    counters: Counters,
    recording_error: Option<String>,
}

struct Shared {
    /// The origin of the times given to `ReceiveStats`.
    start: Instant,
    state: Mutex<DecodeState>,
    /// The caller asked the decoder to start again from a keyframe.
    restart: AtomicBool,
    keyframe_requests_sent: AtomicU64,
    frames_lost_in_transit: AtomicU64,
    packets_received: AtomicU64,
    bytes_received: AtomicU64,
    malformed_packets: AtomicU64,
}

impl Shared {
    /// Runs `f` on the decode state. A panic elsewhere while it was held leaves figures that
    /// are still worth reading, so a poisoned lock is taken anyway.
    fn with_state<T>(&self, f: impl FnOnce(&mut DecodeState) -> T) -> T {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut state)
    }
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Why a keyframe is wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyframeRequest {
    /// A loss or an undecodable frame: rate-limited.
    Automatic,
    /// The caller asked: sent at once.
    Forced,
}

enum DecodeInput {
    Frame {
        frame: AssembledFrame,
        /// Frames before this one were lost: it may refer to a picture the decoder lacks.
        after_gap: bool,
    },
    Stop,
}

/// Receives one remote video track. See the module documentation. Dropping it stops it, as
/// [`stop`](Self::stop) does, without reporting a recording error.
pub struct VideoReceiver {
    shared: Arc<Shared>,
    requests: mpsc::UnboundedSender<KeyframeRequest>,
    inputs: SyncSender<DecodeInput>,
    thread: Option<std::thread::JoinHandle<Option<lyrebird_video::Error>>>,
    task: Option<JoinHandle<()>>,
}

impl VideoReceiver {
    /// Starts receiving `track` (from `PeerConnectionEventHandler::on_track`, kind video).
    /// Fails if the decoder or the recording file cannot be opened.
    pub fn start(
        track: Arc<dyn TrackRemote>,
        config: VideoReceiverConfig,
    ) -> Result<Self, MediaError> {
        let decoder = Vp8Decoder::new()?;
        let recording = match &config.record {
            Some(path) => {
                let file = File::create(path).map_err(lyrebird_video::Error::Io)?;
                Some(Y4mWriter::new(
                    BufWriter::new(file),
                    FrameRate::fps(config.record_frame_rate.max(1)),
                )?)
            }
            None => None,
        };
        let shared = Arc::new(Shared {
            start: Instant::now(),
            state: Mutex::default(),
            restart: AtomicBool::new(false),
            keyframe_requests_sent: AtomicU64::default(),
            frames_lost_in_transit: AtomicU64::default(),
            packets_received: AtomicU64::default(),
            bytes_received: AtomicU64::default(),
            malformed_packets: AtomicU64::default(),
        });
        let (requests_tx, requests_rx) = mpsc::unbounded_channel();
        let (inputs_tx, inputs_rx) = std_mpsc::sync_channel(DECODE_QUEUE);
        let decoding = Decoding {
            decoder,
            recording,
            read_counter: config.read_counter,
            on_frame: config.on_frame,
            shared: shared.clone(),
            requests: requests_tx.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("lyrebird-video-dec".into())
            .spawn(move || decoding.run(inputs_rx))
            .map_err(lyrebird_video::Error::Io)?;
        let task = crate::media_thread::spawn(receive(
            track,
            shared.clone(),
            inputs_tx.clone(),
            requests_rx,
        ));
        info!("video receiver started");
        Ok(Self {
            shared,
            requests: requests_tx,
            inputs: inputs_tx,
            thread: Some(thread),
            task: Some(task),
        })
    }

    /// Sends the sender a PLI now (once the stream's SSRC is known, i.e. a packet has arrived).
    pub fn request_keyframe(&self) {
        let _ = self.requests.send(KeyframeRequest::Forced);
    }

    /// Makes the decoder drop what it holds and start again from the next keyframe, which it
    /// asks for: what happens by itself after a loss, for a caller that lost pictures further
    /// on (a renderer that was reset).
    pub fn restart_decoding(&self) {
        self.shared.restart.store(true, Ordering::Relaxed);
    }

    pub fn stats(&self) -> VideoReceiverStats {
        let s = &self.shared;
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let now = s.start.elapsed();
        s.with_state(|state| VideoReceiverStats {
            video: state.stats.snapshot(now),
            keyframes_decoded: state.keyframes_decoded,
            keyframe_requests_sent: load(&s.keyframe_requests_sent),
            frames_lost_in_transit: load(&s.frames_lost_in_transit),
            packets_received: load(&s.packets_received),
            bytes_received: load(&s.bytes_received),
            malformed_packets: load(&s.malformed_packets),
            last_counter: state.counters.last,
            last_counter_at_unix_ms: state.counters.last_at_unix_ms,
            counter_gaps: state.counters.gaps,
            counters_skipped: state.counters.skipped,
            counters_backwards: state.counters.backwards,
            counters_unreadable: state.counters.unreadable,
            recording_error: state.recording_error.clone(),
        })
    }

    /// Stops receiving, decodes what is queued, completes the recording and returns the final
    /// figures; an error if the recording could not be completed.
    pub fn stop(mut self) -> Result<VideoReceiverStats, MediaError> {
        match self.shutdown() {
            Some(err) => Err(err.into()),
            None => Ok(self.stats()),
        }
    }

    fn shutdown(&mut self) -> Option<lyrebird_video::Error> {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        let thread = self.thread.take()?;
        // Queued behind at most DECODE_QUEUE frames, which the thread is decoding; an error
        // means the thread is gone already.
        let _ = self.inputs.send(DecodeInput::Stop);
        match thread.join() {
            Ok(result) => result,
            Err(_) => {
                warn!("video decoding thread panicked");
                None
            }
        }
    }
}

impl Drop for VideoReceiver {
    fn drop(&mut self) {
        if let Some(err) = self.shutdown() {
            warn!(%err, "video recording incomplete");
        }
    }
}

/// Reads the track on the media thread: assembles frames, passes them to the decoding thread,
/// and sends PLIs.
async fn receive(
    track: Arc<dyn TrackRemote>,
    shared: Arc<Shared>,
    inputs: SyncSender<DecodeInput>,
    mut requests: mpsc::UnboundedReceiver<KeyframeRequest>,
) {
    let mut assembler = FrameAssembler::new(LOSS_WAIT);
    let mut feedback = Feedback {
        track: track.clone(),
        shared: shared.clone(),
        // Our end sends nothing on this stream; PLI still needs a sender SSRC (RFC 4585
        // §6.1), and libwebrtc uses a fixed one for receive-only streams. Random will do.
        sender_ssrc: random_u32(),
        media_ssrc: None,
        last_sent: None,
    };
    let mut gap_pending = false;
    let mut malformed_logged = false;
    loop {
        let deadline = assembler.poll_timeout();
        tokio::select! {
            event = track.poll() => match event {
                None | Some(TrackRemoteEvent::OnEnded) => {
                    debug!("remote video track ended");
                    break;
                }
                Some(TrackRemoteEvent::OnRtpPacket(packet)) => {
                    feedback.media_ssrc = Some(packet.header.ssrc);
                    bump(&shared.packets_received);
                    shared
                        .bytes_received
                        .fetch_add(packet.payload.len() as u64, Ordering::Relaxed);
                    let header = &packet.header;
                    if assembler
                        .push(header.sequence_number, header.timestamp, header.marker, packet.payload)
                        .is_err()
                    {
                        bump(&shared.malformed_packets);
                        if !malformed_logged {
                            warn!("VP8 payload descriptor unreadable; packet dropped");
                            malformed_logged = true;
                        }
                    }
                }
                Some(_) => {}
            },
            Some(request) = requests.recv() => feedback.request(request).await,
            () = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now).into()),
                if deadline.is_some() => {}
        }
        while let Some(assembled) = assembler.poll(Instant::now()) {
            let frame = match assembled {
                Assembled::Frame(frame) => frame,
                Assembled::Lost => {
                    debug!("video frame lost in transit");
                    bump(&shared.frames_lost_in_transit);
                    shared.with_state(|state| state.stats.frame_dropped());
                    gap_pending = true;
                    feedback.request(KeyframeRequest::Automatic).await;
                    continue;
                }
            };
            let input = DecodeInput::Frame {
                frame,
                after_gap: gap_pending,
            };
            match inputs.try_send(input) {
                Ok(()) => gap_pending = false,
                Err(TrySendError::Full(_)) => {
                    debug!("video decoder behind; frame dropped");
                    shared.with_state(|state| state.stats.frame_dropped());
                    gap_pending = true;
                    feedback.request(KeyframeRequest::Automatic).await;
                }
                Err(TrySendError::Disconnected(_)) => return,
            }
        }
    }
}

/// Sends keyframe requests for one received stream.
struct Feedback {
    track: Arc<dyn TrackRemote>,
    shared: Arc<Shared>,
    sender_ssrc: u32,
    /// The stream's SSRC, from its packets.
    media_ssrc: Option<u32>,
    last_sent: Option<Instant>,
}

impl Feedback {
    async fn request(&mut self, request: KeyframeRequest) {
        let Some(media_ssrc) = self.media_ssrc else {
            debug!("keyframe wanted before any packet; nothing to ask yet");
            return;
        };
        let now = Instant::now();
        if request == KeyframeRequest::Automatic
            && self
                .last_sent
                .is_some_and(|last| now.saturating_duration_since(last) < PLI_MIN_INTERVAL)
        {
            return;
        }
        let pli = PictureLossIndication {
            sender_ssrc: self.sender_ssrc,
            media_ssrc,
        };
        match self.track.write_rtcp(vec![Box::new(pli)]).await {
            Ok(()) => {
                debug!(?request, "PLI sent");
                self.last_sent = Some(now);
                bump(&self.shared.keyframe_requests_sent);
            }
            Err(err) => debug!(%err, "PLI not sent"),
        }
    }
}

/// The decoding thread's state.
struct Decoding {
    decoder: Vp8Decoder,
    recording: Option<Y4mWriter<BufWriter<File>>>,
    read_counter: bool,
    on_frame: Option<FrameCallback>,
    shared: Arc<Shared>,
    requests: mpsc::UnboundedSender<KeyframeRequest>,
}

impl Decoding {
    /// Decodes until told to stop; returns the recording's error, if it failed.
    fn run(mut self, inputs: std_mpsc::Receiver<DecodeInput>) -> Option<lyrebird_video::Error> {
        let mut recording_failure = None;
        while let Ok(DecodeInput::Frame { frame, after_gap }) = inputs.recv() {
            if self.shared.restart.swap(false, Ordering::Relaxed) {
                self.decoder.wait_for_keyframe();
                let _ = self.requests.send(KeyframeRequest::Forced);
            }
            if after_gap {
                self.decoder.wait_for_keyframe();
            }
            let picture = match self.decoder.decode(&frame.data) {
                Ok(Some(picture)) => picture,
                Ok(None) => continue,
                Err(err) => {
                    debug!(%err, keyframe = frame.keyframe, "video frame not decoded");
                    self.shared.with_state(|state| state.stats.frame_dropped());
                    let _ = self.requests.send(KeyframeRequest::Automatic);
                    continue;
                }
            };
            let info = FrameInfo {
                rtp_timestamp: frame.timestamp,
                keyframe: frame.keyframe,
                counter: if self.read_counter {
                    read_counter(&picture)
                } else {
                    None
                },
            };
            let at = self.shared.start.elapsed();
            self.shared.with_state(|state| {
                state
                    .stats
                    .frame_decoded(at, picture.width(), picture.height());
                if frame.keyframe {
                    state.keyframes_decoded += 1;
                }
                if self.read_counter {
                    state.counters.note(info.counter);
                    if info.counter.is_some() {
                        state.counters.last_at_unix_ms = Some(super::unix_ms());
                    }
                }
            });
            if let Some(writer) = &mut self.recording
                && let Err(err) = writer.write_frame(&picture)
            {
                // Y4M keeps one size per file: a sender changing size ends the recording.
                warn!(%err, "video recording stopped");
                self.shared
                    .with_state(|state| state.recording_error = Some(err.to_string()));
                self.recording = None;
                recording_failure = Some(err);
            }
            if let Some(on_frame) = &mut self.on_frame {
                on_frame(&picture, &info);
            }
        }
        if let Some(mut writer) = self.recording.take()
            && let Err(err) = writer.flush()
        {
            self.shared
                .with_state(|state| state.recording_error = Some(err.to_string()));
            recording_failure = Some(err);
        }
        recording_failure
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_count_gaps_repeats_and_wrap() {
        let mut counters = Counters::default();
        for c in [
            Some(u32::MAX - 1),
            Some(u32::MAX),
            Some(1), // wraps forward, skipping 0
            Some(1), // repeated
            Some(0), // older
            Some(3), // skips 1 and 2
            None,
        ] {
            counters.note(c);
        }
        assert_eq!(counters.last, Some(3));
        assert_eq!(counters.gaps, 2);
        assert_eq!(counters.skipped, 3);
        assert_eq!(counters.backwards, 2);
        assert_eq!(counters.unreadable, 1);
    }
}
