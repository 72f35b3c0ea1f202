//! Two webrtc-rs peer connections in one process, over loopback with mDNS off and no STUN:
//! one sends the 640x360 test pattern as VP8, the other receives, decodes, reads the frame
//! counters back and records a Y4M file. Offer and answer are exchanged in-process.
//!
//! Every wait is bounded; no timing figure is asserted (the machine may be slow), only what
//! arrived and in what order.

use anyhow::{Context, Result, bail, ensure};
use lyrebird_media::video::{
    AtFrameRate, BandwidthEstimate, CongestionControl, FrameInfo, VideoReceiver,
    VideoReceiverConfig, VideoReceiverStats, VideoSender, VideoSenderConfig, VideoSenderStats,
    configure_video_interceptors, negotiated_vp8, register_video_codecs, video_track,
};
use lyrebird_video::{TestPattern, Y4mReader, read_counter};
use rtc::ice::mdns::MulticastDnsMode;
use rtc::interceptor::{Interceptor, Packet, Slot, StreamInfo, TaggedPacket};
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use rtc::sansio::Protocol;
use std::collections::{HashSet, VecDeque};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tokio::time::timeout;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler,
    RTCConfigurationBuilder, RTCIceGatheringState, RTCPeerConnectionState, RTCSessionDescription,
    Registry, SettingEngineBuilder,
};
use webrtc::rtp_transceiver::RtpSender;

const STEP_TIMEOUT: Duration = Duration::from_secs(10);
const WIDTH: u32 = 640;
const HEIGHT: u32 = 360;
const FPS: u32 = 30;

/// Turns the peer connection's callbacks into watchable state, and hands video tracks on:
/// the dispatch by kind that `on_track` in a session does.
struct Handler {
    state: watch::Sender<RTCPeerConnectionState>,
    gathered: Arc<watch::Sender<bool>>,
    video_tracks: mpsc::UnboundedSender<Arc<dyn TrackRemote>>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            self.gathered.send_replace(true);
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        self.state.send_replace(state);
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        if track.kind().await == RtpCodecKind::Video {
            let _ = self.video_tracks.send(track);
        }
    }
}

/// Drops outbound RTP as a lossy path would: after a first stretch, every `ONCE_EVERY`th packet
/// once (a retransmission of it passes: NACK must bring it back), and one packet for good, every
/// copy of it (its frame is lost: the receiver must ask for a keyframe).
///
/// It sits in the *sender's* chain, below everything but SRTP, so a dropped packet is never
/// encrypted. Dropping on the receiver's side would come after SRTP decryption, and SRTP replay
/// protection (which webrtc-rs does not let us turn off) would then refuse the retransmission
/// as a replay of a packet it had already seen — a loss no real path produces.
struct LossyWire {
    seen: u64,
    dropped_once: HashSet<u16>,
    dropped_for_good: Option<u16>,
    counts: Arc<WireCounts>,
    read_queue: VecDeque<TaggedPacket>,
    write_queue: VecDeque<TaggedPacket>,
}

#[derive(Default)]
struct WireCounts {
    dropped: AtomicU64,
    /// Second copies of packets dropped once: retransmissions answering our NACKs.
    retransmissions: AtomicU64,
    /// Copies of the packet dropped for good, first one included.
    lost_for_good: AtomicU64,
}

impl LossyWire {
    const START: u64 = 60;
    const ONCE_EVERY: u64 = 37;
    const FOR_GOOD_AT: u64 = 200;

    fn new(counts: Arc<WireCounts>) -> Self {
        Self {
            seen: 0,
            dropped_once: HashSet::new(),
            dropped_for_good: None,
            counts,
            read_queue: VecDeque::new(),
            write_queue: VecDeque::new(),
        }
    }

    /// Whether this inbound packet is lost.
    fn drops(&mut self, sequence: u16) -> bool {
        self.seen += 1;
        if self.dropped_for_good == Some(sequence) {
            self.counts.lost_for_good.fetch_add(1, Ordering::Relaxed);
            return true;
        }
        if self.dropped_once.contains(&sequence) {
            self.counts.retransmissions.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        if self.seen == Self::FOR_GOOD_AT {
            self.dropped_for_good = Some(sequence);
            self.counts.lost_for_good.fetch_add(1, Ordering::Relaxed);
            return true;
        }
        if self.seen > Self::START && self.seen.is_multiple_of(Self::ONCE_EVERY) {
            self.dropped_once.insert(sequence);
            self.counts.dropped.fetch_add(1, Ordering::Relaxed);
            return true;
        }
        false
    }
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for LossyWire {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.read_queue.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<TaggedPacket> {
        self.read_queue.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtp(packet) = &msg.message.packet
            && self.drops(packet.header.sequence_number)
        {
            return Ok(());
        }
        self.write_queue.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.write_queue.pop_front()
    }
}

impl Interceptor for LossyWire {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

struct Peer {
    pc: Arc<dyn PeerConnection>,
    state: watch::Receiver<RTCPeerConnectionState>,
    gathered: Arc<watch::Sender<bool>>,
    video_tracks: mpsc::UnboundedReceiver<Arc<dyn TrackRemote>>,
    estimate: BandwidthEstimate,
}

async fn peer() -> Result<Peer> {
    peer_with(None).await
}

/// A peer whose interceptor chain has `wire` closest to the network: what it drops on the
/// way out is lost as if on the path.
async fn peer_with(wire: Option<LossyWire>) -> Result<Peer> {
    let mut media_engine = MediaEngine::default();
    register_video_codecs(&mut media_engine)?;
    let estimate = BandwidthEstimate::new();
    let mut registry = configure_video_interceptors(
        Registry::new(),
        &mut media_engine,
        Some((CongestionControl::default(), &estimate)),
    );
    if let Some(wire) = wire {
        registry = registry.with(Slot::from(500), wire);
    }
    let settings = SettingEngineBuilder::new()
        .with_multicast_dns_mode(MulticastDnsMode::Disabled)
        .with_include_loopback_candidate(true);
    let (state_tx, state_rx) = watch::channel(RTCPeerConnectionState::New);
    let gathered = Arc::new(watch::channel(false).0);
    let (tracks_tx, tracks_rx) = mpsc::unbounded_channel();
    let handler = Handler {
        state: state_tx,
        gathered: gathered.clone(),
        video_tracks: tracks_tx,
    };
    let pc = PeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_media_engine(media_engine)
        .with_setting_engine(settings.build())
        .with_interceptor_registry(registry)
        .with_handler(Arc::new(handler))
        .with_udp_addrs(vec![SocketAddr::from((Ipv4Addr::LOCALHOST, 0))])
        .build()
        .await?;
    Ok(Peer {
        pc: Arc::new(pc),
        state: state_rx,
        gathered,
        video_tracks: tracks_rx,
        estimate,
    })
}

/// Sets the local description and returns it once ICE gathering is complete (loopback
/// candidates only, so at once).
async fn set_local(peer: &Peer, description: RTCSessionDescription) -> Result<String> {
    let mut gathered = peer.gathered.subscribe();
    peer.gathered.send_replace(false);
    peer.pc.set_local_description(description).await?;
    timeout(STEP_TIMEOUT, gathered.wait_for(|done| *done))
        .await
        .context("ICE gathering did not complete")??;
    Ok(peer
        .pc
        .local_description()
        .await
        .context("no local description")?
        .sdp)
}

async fn wait_connected(peer: &mut Peer) -> Result<()> {
    let state = timeout(
        STEP_TIMEOUT,
        peer.state.wait_for(|s| {
            matches!(
                s,
                RTCPeerConnectionState::Connected | RTCPeerConnectionState::Failed
            )
        }),
    )
    .await
    .context("not connected in time")??
    .to_owned();
    ensure!(
        state == RTCPeerConnectionState::Connected,
        "connection {state}"
    );
    Ok(())
}

/// The lines of the first `m=video` section.
fn video_section(sdp: &str) -> Vec<&str> {
    sdp.lines()
        .map(str::trim_end)
        .skip_while(|l| !l.starts_with("m=video"))
        .enumerate()
        .take_while(|(i, l)| *i == 0 || !l.starts_with("m="))
        .map(|(_, l)| l)
        .collect()
}

/// Checks that a description offers or accepts VP8 with every feedback type the sender and
/// receiver use, and the transport-wide sequence number extension.
fn assert_vp8_with_feedback(sdp: &str) -> Result<()> {
    let section = video_section(sdp);
    ensure!(!section.is_empty(), "no video section:\n{sdp}");
    let pt = section
        .iter()
        .find_map(|l| {
            l.strip_prefix("a=rtpmap:")
                .filter(|rest| rest.ends_with(" VP8/90000"))
                .and_then(|rest| rest.split(' ').next())
        })
        .with_context(|| format!("no VP8/90000 rtpmap:\n{sdp}"))?;
    for feedback in ["nack", "nack pli", "ccm fir", "goog-remb", "transport-cc"] {
        let line = format!("a=rtcp-fb:{pt} {feedback}");
        ensure!(section.contains(&line.as_str()), "missing {line}:\n{sdp}");
    }
    ensure!(
        section.iter().any(|l| l.starts_with("a=extmap:")
            && l.ends_with("draft-holmer-rmcat-transport-wide-cc-extensions-01")),
        "no transport-wide-cc extension:\n{sdp}"
    );
    // Only VP8: the payload types on the m-line are all VP8's.
    let formats: Vec<&str> = section[0].split(' ').skip(3).collect();
    ensure!(formats == [pt], "unexpected formats {formats:?}:\n{sdp}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_offer_lists_vp8_with_its_rtcp_feedback() -> Result<()> {
    let peer = peer().await?;
    peer.pc
        .add_track(video_track(0x1234_5678) as Arc<dyn TrackLocal>)
        .await?;
    let offer = timeout(STEP_TIMEOUT, peer.pc.create_offer(None)).await??;
    println!("{}", offer.sdp);
    assert_vp8_with_feedback(&offer.sdp)?;
    ensure!(offer.sdp.contains("a=sendrecv"), "{}", offer.sdp);
    timeout(STEP_TIMEOUT, peer.pc.close()).await??;
    Ok(())
}

/// Polls `probe` until `done` holds, within the step timeout.
async fn until<T: std::fmt::Debug>(
    what: &str,
    mut probe: impl FnMut() -> T,
    done: impl Fn(&T) -> bool,
) -> Result<T> {
    let result = timeout(STEP_TIMEOUT, async {
        loop {
            let value = probe();
            if done(&value) {
                return value;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    match result {
        Ok(value) => Ok(value),
        Err(_) => bail!("timed out waiting for {what}: {:?}", probe()),
    }
}

/// A connected pair, A sending the test pattern to B.
struct Call {
    a: Peer,
    b: Peer,
    video: VideoSender,
    receiver: VideoReceiver,
    /// What B's renderer callback saw.
    frames: std::sync::mpsc::Receiver<(FrameInfo, (u32, u32))>,
    recording: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

/// Builds both ends (A sending through `a_wire`), negotiates, connects, and starts sending and
/// receiving.
async fn call(a_wire: Option<LossyWire>) -> Result<Call> {
    let dir = tempfile::tempdir()?;
    let recording = dir.path().join("received.y4m");
    let mut a = peer_with(a_wire).await?;
    let mut b = peer().await?;

    // A sends; B only receives.
    let track = video_track(0x0a0a_0001);
    let sender: Arc<dyn RtpSender> = a.pc.add_track(track.clone() as Arc<dyn TrackLocal>).await?;
    b.pc.add_transceiver_from_kind(
        RtpCodecKind::Video,
        Some(RTCRtpTransceiverInit {
            direction: RTCRtpTransceiverDirection::Recvonly,
            streams: vec![],
            send_encodings: vec![],
        }),
    )
    .await?;

    let offer = a.pc.create_offer(None).await?;
    let offer = set_local(&a, offer).await?;
    assert_vp8_with_feedback(&offer)?;
    b.pc.set_remote_description(RTCSessionDescription::offer(offer)?)
        .await?;
    let answer = b.pc.create_answer(None).await?;
    let answer = set_local(&b, answer).await?;
    assert_vp8_with_feedback(&answer)?;
    a.pc.set_remote_description(RTCSessionDescription::answer(answer)?)
        .await?;
    wait_connected(&mut a).await?;
    wait_connected(&mut b).await?;

    let (ssrc, payload_type) = negotiated_vp8(&sender).await?;
    let video = VideoSender::start(
        track,
        AtFrameRate {
            source: TestPattern::new(WIDTH, HEIGHT)?,
            frame_rate: FPS,
        },
        VideoSenderConfig {
            max_bitrate_kbps: 1_000,
            estimate: Some(a.estimate.clone()),
            ..VideoSenderConfig::new(ssrc, payload_type)
        },
    )?;

    let remote = timeout(STEP_TIMEOUT, b.video_tracks.recv())
        .await
        .context("no video track at B")?
        .context("B's handler is gone")?;
    let (frames_tx, frames) = std::sync::mpsc::channel();
    let receiver = VideoReceiver::start(
        remote,
        VideoReceiverConfig {
            record: Some(recording.clone()),
            read_counter: true,
            on_frame: Some(Box::new(move |frame, info| {
                let _ = frames_tx.send((*info, (frame.width(), frame.height())));
            })),
            ..VideoReceiverConfig::default()
        },
    )?;
    Ok(Call {
        a,
        b,
        video,
        receiver,
        frames,
        recording,
        _dir: dir,
    })
}

/// Stops both ends and checks what B decoded: the size A sent, every picture's counter
/// readable and strictly increasing with gaps of a few frames at most, and a recording that
/// holds exactly the decoded pictures. Returns the final figures.
async fn finish(call: Call) -> Result<(VideoSenderStats, VideoReceiverStats)> {
    let Call {
        a,
        b,
        video,
        receiver,
        frames,
        recording,
        _dir,
    } = call;
    let sent = video.stop();
    let received = receiver.stop()?;
    println!("sender: {sent:?}\nreceiver: {received:?}");
    timeout(STEP_TIMEOUT, a.pc.close()).await??;
    timeout(STEP_TIMEOUT, b.pc.close()).await??;

    ensure!(
        received.video.resolution == Some((WIDTH, HEIGHT)),
        "{received:?}"
    );
    ensure!(received.counters_unreadable == 0, "{received:?}");
    ensure!(received.counters_backwards == 0, "{received:?}");
    ensure!(received.malformed_packets == 0, "{received:?}");
    ensure!(received.recording_error.is_none(), "{received:?}");
    ensure!(
        sent.encode_errors == 0 && sent.write_errors == 0,
        "{sent:?}"
    );
    ensure!(sent.resolution == Some((WIDTH, HEIGHT)), "{sent:?}");

    let frames: Vec<(FrameInfo, (u32, u32))> = frames.try_iter().collect();
    ensure!(frames.len() as u64 == received.video.frames_decoded);
    ensure!(frames.iter().all(|(_, size)| *size == (WIDTH, HEIGHT)));
    ensure!(
        frames.first().is_some_and(|(info, _)| info.keyframe),
        "the first decoded frame must be a keyframe"
    );
    let counters: Vec<u32> = frames
        .iter()
        .map(|(info, _)| info.counter.context("unreadable counter"))
        .collect::<Result<_>>()?;
    for pair in counters.windows(2) {
        // A gap only where frames were lost or the decoder restarted (a loss wait, a round
        // trip and an encode: a few frames), or a frame was skipped on a busy machine.
        ensure!(
            pair[1] > pair[0],
            "counter went from {} to {}",
            pair[0],
            pair[1]
        );
        ensure!(
            pair[1] - pair[0] <= 2 * FPS,
            "counter jumped from {} to {}",
            pair[0],
            pair[1]
        );
    }

    let mut reader = Y4mReader::new(std::io::BufReader::new(std::fs::File::open(&recording)?))?;
    ensure!((reader.width(), reader.height()) == (WIDTH, HEIGHT));
    let mut recorded = Vec::new();
    while let Some(frame) = reader.read_frame()? {
        recorded.push(read_counter(&frame));
    }
    ensure!(
        recorded == counters.iter().copied().map(Some).collect::<Vec<_>>(),
        "recording differs: {} frames recorded, {} decoded",
        recorded.len(),
        counters.len()
    );
    Ok((sent, received))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vp8_crosses_a_peer_connection_and_recovers_from_a_keyframe_request() -> Result<()> {
    let call = call(None).await?;
    let (video, receiver) = (&call.video, &call.receiver);

    // About a second and a half of video first.
    let first = until(
        "45 frames decoded",
        || receiver.stats(),
        |s| s.video.frames_decoded >= 45,
    )
    .await?;
    println!("after warm-up: {first:?}\nsender: {:?}", video.stats());
    ensure!(first.keyframes_decoded >= 1, "{first:?}");

    // A keyframe request from B reaches A's encoder and comes back as a keyframe.
    let before = video.stats();
    receiver.request_keyframe();
    until(
        "A to see B's PLI",
        || video.stats(),
        |s| s.keyframe_requests_received > before.keyframe_requests_received,
    )
    .await?;
    until(
        "A to encode a keyframe",
        || video.stats(),
        |s| s.keyframes_encoded > before.keyframes_encoded,
    )
    .await?;
    let requested = receiver.stats();
    ensure!(requested.keyframe_requests_sent >= 1, "{requested:?}");
    until(
        "B to decode the requested keyframe",
        || receiver.stats(),
        |s| s.keyframes_decoded > first.keyframes_decoded,
    )
    .await?;

    // B's decoder starts over: it drops inter frames, asks for a keyframe, and recovers.
    let reset = receiver.stats();
    let before = video.stats();
    receiver.restart_decoding();
    until(
        "B to decode again after restarting",
        || receiver.stats(),
        |s| {
            s.keyframes_decoded > reset.keyframes_decoded
                && s.video.frames_decoded >= reset.video.frames_decoded + 45
        },
    )
    .await?;
    let sent = video.stats();
    ensure!(
        sent.keyframe_requests_received > before.keyframe_requests_received,
        "A never heard B ask after the restart: {sent:?}"
    );

    // TWCC feedback from B reached A's congestion controller, whose estimate the encoder
    // follows.
    let estimate = until(
        "a bandwidth estimate at A",
        || call.a.estimate.bits_per_second(),
        Option::is_some,
    )
    .await?;
    println!("estimate at A: {estimate:?} bit/s");

    let (sent, received) = finish(call).await?;
    ensure!(received.video.frames_decoded >= 90, "{received:?}");
    ensure!(received.keyframes_decoded >= 3, "{received:?}");
    ensure!(sent.keyframes_encoded >= 3, "{sent:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_packets_come_back_by_nack_or_a_keyframe() -> Result<()> {
    let counts = Arc::new(WireCounts::default());
    let call = call(Some(LossyWire::new(counts.clone()))).await?;
    let (video, receiver) = (&call.video, &call.receiver);

    // A packet lost for good costs its frame; B gives it up, asks for a keyframe and decodes
    // again from there.
    let lost = until(
        "B to give up a frame",
        || receiver.stats(),
        |s| s.frames_lost_in_transit >= 1,
    )
    .await?;
    until(
        "B to decode again after the loss",
        || receiver.stats(),
        |s| {
            s.keyframes_decoded > lost.keyframes_decoded
                && s.video.frames_decoded >= lost.video.frames_decoded + 30
        },
    )
    .await?;
    // Packets lost once were asked for again (NACK) and retransmitted by A.
    until(
        "a retransmission",
        || counts.retransmissions.load(Ordering::Relaxed),
        |&n| n >= 1,
    )
    .await?;
    let sent = video.stats();
    ensure!(sent.keyframe_requests_received >= 1, "{sent:?}");
    println!(
        "wire: dropped once {}, retransmissions {}, copies of the packet lost for good {}",
        counts.dropped.load(Ordering::Relaxed),
        counts.retransmissions.load(Ordering::Relaxed),
        counts.lost_for_good.load(Ordering::Relaxed),
    );

    let (_sent, received) = finish(call).await?;
    ensure!(received.keyframe_requests_sent >= 1, "{received:?}");
    ensure!(received.counter_gaps >= 1, "{received:?}");
    Ok(())
}
