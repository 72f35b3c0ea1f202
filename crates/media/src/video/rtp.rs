//! VP8 over RTP (RFC 7741), without I/O: the packetizer the sender uses and the frame assembler
//! the receiver uses. Both are driven by their callers' clocks, so every rule here is tested
//! with made-up instants.

use bytes::Bytes;
use rtc::rtp;
use rtc::rtp::codec::vp8::Vp8Payloader;
use rtc::rtp::packetizer::Payloader;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tracing::warn;

/// Size of one RTP packet (fixed header and payload) before header extensions and SRTP: what
/// webrtc-rs uses for its own sample tracks, leaving room under any path MTU for extensions,
/// the SRTP tag and IPv6/UDP headers.
pub(crate) const RTP_MTU: usize = 1200;
const RTP_HEADER_LEN: usize = 12;

/// Packets the assembler holds at most. A 720p keyframe is some 100 packets; this is several
/// seconds of video, reached only if a hole is never filled and no frame start follows it.
const MAX_BUFFERED: usize = 2048;

/// The parts of an RFC 7741 §4.2 payload descriptor the receiver needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Vp8Descriptor {
    /// S: the payload starts a VP8 partition.
    pub start_of_partition: bool,
    /// PID: which partition.
    pub partition_index: u8,
    /// The 7- or 15-bit PictureID, if present.
    pub picture_id: Option<u16>,
    /// Bytes of descriptor before the VP8 data.
    pub len: usize,
}

impl Vp8Descriptor {
    /// The first packet of a frame: start of partition 0 (RFC 7741 §4.2: S=1 and PID=0).
    pub fn starts_frame(&self) -> bool {
        self.start_of_partition && self.partition_index == 0
    }
}

/// Reads the payload descriptor, or `None` when the payload is too short for the fields it
/// says are there or carries no VP8 data after them. Written here rather than taken from
/// `rtc`'s `Vp8Packet` because that one refuses every payload under 4 bytes, and the last
/// packet of a frame may well be that short.
pub(crate) fn parse_descriptor(payload: &[u8]) -> Option<Vp8Descriptor> {
    let first = *payload.first()?;
    let mut len = 1;
    let mut picture_id = None;
    if first & 0x80 != 0 {
        let ext = *payload.get(len)?;
        len += 1;
        if ext & 0x80 != 0 {
            let high = *payload.get(len)?;
            len += 1;
            if high & 0x80 != 0 {
                let low = *payload.get(len)?;
                len += 1;
                picture_id = Some((u16::from(high & 0x7f) << 8) | u16::from(low));
            } else {
                picture_id = Some(u16::from(high));
            }
        }
        // L: TL0PICIDX; T or K: one byte of TID/Y/KEYIDX.
        if ext & 0x40 != 0 {
            len += 1;
        }
        if ext & 0x30 != 0 {
            len += 1;
        }
    }
    if payload.len() <= len {
        return None;
    }
    Some(Vp8Descriptor {
        start_of_partition: first & 0x10 != 0,
        partition_index: first & 0x07,
        picture_id,
        len,
    })
}

/// Whether VP8 data that starts a frame is a keyframe (RFC 6386 §9.1: bit 0 of the frame tag
/// is 0 for a keyframe).
fn is_keyframe_start(data: &[u8]) -> bool {
    data.first().is_some_and(|tag| tag & 0x01 == 0)
}

/// Splits encoded VP8 frames into RTP packets of one stream: payload descriptors by `rtc`'s
/// payloader (with a 15-bit PictureID, which lets a receiver see a frame go missing), sequence
/// numbers, the marker bit on each frame's last packet, and the timestamp the caller gives.
pub(crate) struct Vp8Packetizer {
    payloader: Vp8Payloader,
    ssrc: u32,
    payload_type: u8,
    next_sequence: u16,
}

impl Vp8Packetizer {
    pub fn new(ssrc: u32, payload_type: u8, first_sequence: u16) -> Self {
        let mut payloader = Vp8Payloader::default();
        payloader.enable_picture_id = true;
        Self {
            payloader,
            ssrc,
            payload_type,
            next_sequence: first_sequence,
        }
    }

    /// The packets of one frame shown at `timestamp` (90 kHz).
    pub fn packetize(&mut self, frame: Bytes, timestamp: u32) -> Vec<rtp::Packet> {
        let payloads = match self.payloader.payload(RTP_MTU - RTP_HEADER_LEN, &frame) {
            Ok(payloads) => payloads,
            Err(err) => {
                // Only an empty frame or a zero MTU make it fail, neither of which happens.
                warn!(%err, "VP8 frame not packetized");
                return Vec::new();
            }
        };
        let last = payloads.len().saturating_sub(1);
        payloads
            .into_iter()
            .enumerate()
            .map(|(index, payload)| {
                let sequence_number = self.next_sequence;
                self.next_sequence = self.next_sequence.wrapping_add(1);
                rtp::Packet {
                    header: rtp::header::Header {
                        version: 2,
                        marker: index == last,
                        payload_type: self.payload_type,
                        sequence_number,
                        timestamp,
                        ssrc: self.ssrc,
                        ..Default::default()
                    },
                    payload,
                }
            })
            .collect()
    }
}

/// One packet waiting in the assembler.
#[derive(Debug)]
struct Buffered {
    timestamp: u32,
    marker: bool,
    /// Starts a frame (S=1, PID=0).
    frame_start: bool,
    /// Padding only (no payload): occupies a sequence number, belongs to no frame. Senders
    /// send these to probe bandwidth.
    padding: bool,
    /// VP8 data, the descriptor removed.
    data: Bytes,
}

/// A whole VP8 frame, ready for the decoder.
#[derive(Debug)]
pub(crate) struct AssembledFrame {
    pub timestamp: u32,
    pub keyframe: bool,
    pub data: Vec<u8>,
}

/// What the assembler hands on, in sequence order.
#[derive(Debug)]
pub(crate) enum Assembled {
    Frame(AssembledFrame),
    /// At least one frame could not be completed (packets lost for good, or damaged). The
    /// frames after it refer to a picture the decoder will not have: it must wait for a
    /// keyframe, and the sender should be asked for one.
    Lost,
}

/// What a walk from the head of the buffer found.
enum Walk {
    /// A complete frame from the head up to this extended sequence number.
    Complete { end: u64 },
    /// The head is a padding packet.
    Padding,
    /// The head is there but does not start a frame.
    Broken,
    /// This sequence number is not there (yet).
    Missing { at: u64 },
}

/// Puts RTP packets of one VP8 stream back into frames: by sequence number, a frame running
/// from a packet that starts partition 0 to the packet with the marker bit (or to the last
/// packet before the timestamp changes, for a sender that loses a marker).
///
/// A missing packet is waited for — a NACK may bring it back — for `loss_wait` once packets
/// after it have arrived; then the frame is given up as [`Assembled::Lost`] and assembly
/// resumes at the next frame start. Frames leave strictly in order, never with a hole.
#[derive(Debug)]
pub(crate) struct FrameAssembler {
    buffered: BTreeMap<u64, Buffered>,
    /// Where the next frame starts, once in step with the stream.
    next: Option<u64>,
    /// Packets below this are late (already given up, or already assembled) and ignored.
    floor: u64,
    /// Highest extended sequence number seen: the reference for unwrapping the next one.
    highest: Option<u64>,
    /// Since when the head has been waiting for a missing packet with later ones present.
    stalled_since: Option<Instant>,
    loss_wait: Duration,
}

impl FrameAssembler {
    pub fn new(loss_wait: Duration) -> Self {
        Self {
            buffered: BTreeMap::new(),
            next: None,
            floor: 0,
            highest: None,
            stalled_since: None,
            loss_wait,
        }
    }

    /// A 64-bit sequence number for `sequence`, taken as the one nearest the highest so far.
    fn extend(&mut self, sequence: u16) -> u64 {
        let extended = match self.highest {
            // Start one cycle up, so packets from just before the first stay representable.
            None => (1 << 16) + u64::from(sequence),
            Some(highest) => {
                let delta = i64::from(sequence.wrapping_sub(highest as u16) as i16);
                highest.saturating_add_signed(delta)
            }
        };
        if self.highest.is_none_or(|highest| extended > highest) {
            self.highest = Some(extended);
        }
        extended
    }

    /// Takes one packet's header fields and payload. A payload whose descriptor cannot be read
    /// is refused (`Err`); its sequence number then stays a hole, and its frame is lost.
    pub fn push(
        &mut self,
        sequence: u16,
        timestamp: u32,
        marker: bool,
        payload: Bytes,
    ) -> Result<(), MalformedPayload> {
        let extended = self.extend(sequence);
        if extended < self.floor
            || self.next.is_some_and(|next| extended < next)
            || self.buffered.contains_key(&extended)
        {
            // Late (a retransmission that came after we gave up) or a duplicate.
            return Ok(());
        }
        let entry = if payload.is_empty() {
            Buffered {
                timestamp,
                marker,
                frame_start: false,
                padding: true,
                data: payload,
            }
        } else {
            let descriptor = parse_descriptor(&payload).ok_or(MalformedPayload)?;
            Buffered {
                timestamp,
                marker,
                frame_start: descriptor.starts_frame(),
                padding: false,
                data: payload.slice(descriptor.len..),
            }
        };
        self.buffered.insert(extended, entry);
        Ok(())
    }

    /// The next frame or loss, if one is decided by `now`.
    pub fn poll(&mut self, now: Instant) -> Option<Assembled> {
        loop {
            let Some(next) = self.next else {
                // Not in step yet (the start, or after a loss with no frame start buffered):
                // begin at the first frame start; what comes before it is part of a frame
                // whose beginning we do not have.
                let Some(start) = self.first_frame_start_from(0) else {
                    if self.buffered.len() > MAX_BUFFERED {
                        self.buffered.clear();
                    }
                    return None;
                };
                self.buffered = self.buffered.split_off(&start);
                self.next = Some(start);
                continue;
            };
            match self.walk(next) {
                Walk::Padding => {
                    self.buffered.remove(&next);
                    self.advance_to(next + 1);
                }
                Walk::Complete { end } => {
                    self.stalled_since = None;
                    let rest = self.buffered.split_off(&(end + 1));
                    let packets = std::mem::replace(&mut self.buffered, rest);
                    self.advance_to(end + 1);
                    return Some(Assembled::Frame(join(packets)));
                }
                Walk::Broken => {
                    self.give_up(next);
                    return Some(Assembled::Lost);
                }
                Walk::Missing { at } => {
                    let anything_after = self.buffered.range(at + 1..).next().is_some();
                    if !anything_after {
                        // Nothing says a packet is missing: the rest has not been sent yet.
                        self.stalled_since = None;
                        return None;
                    }
                    let since = *self.stalled_since.get_or_insert(now);
                    if now.saturating_duration_since(since) < self.loss_wait
                        && self.buffered.len() <= MAX_BUFFERED
                    {
                        return None;
                    }
                    self.give_up(next);
                    return Some(Assembled::Lost);
                }
            }
        }
    }

    /// When [`poll`](Self::poll) may next decide something without a new packet: the moment
    /// a missing packet is given up.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.stalled_since.map(|since| since + self.loss_wait)
    }

    fn walk(&self, next: u64) -> Walk {
        let Some(head) = self.buffered.get(&next) else {
            return Walk::Missing { at: next };
        };
        if head.padding {
            return Walk::Padding;
        }
        if !head.frame_start {
            return Walk::Broken;
        }
        let mut at = next;
        loop {
            let Some(packet) = self.buffered.get(&at) else {
                return Walk::Missing { at };
            };
            if at != next && (packet.timestamp != head.timestamp || packet.padding) {
                // The frame ended without a marker (one lost from an otherwise whole frame
                // cannot happen, as the marker packet has its own sequence number; a sender
                // that never sets it can).
                return Walk::Complete { end: at - 1 };
            }
            if packet.marker {
                return Walk::Complete { end: at };
            }
            at += 1;
        }
    }

    fn advance_to(&mut self, next: u64) {
        self.next = Some(next);
        self.floor = self.floor.max(next);
    }

    /// Drops the frame at `head` and whatever follows up to the next frame start.
    fn give_up(&mut self, head: u64) {
        self.stalled_since = None;
        match self.first_frame_start_from(head + 1) {
            Some(start) => {
                self.buffered = self.buffered.split_off(&start);
                self.advance_to(start);
            }
            None => {
                self.buffered.clear();
                self.next = None;
                self.floor = self.highest.map_or(0, |highest| highest + 1);
            }
        }
    }

    fn first_frame_start_from(&self, from: u64) -> Option<u64> {
        self.buffered
            .range(from..)
            .find(|(_, packet)| packet.frame_start)
            .map(|(&at, _)| at)
    }
}

/// A payload descriptor that could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MalformedPayload;

fn join(packets: BTreeMap<u64, Buffered>) -> AssembledFrame {
    let mut packets = packets.into_values();
    let first = packets.next();
    let timestamp = first.as_ref().map_or(0, |p| p.timestamp);
    let keyframe = first.as_ref().is_some_and(|p| is_keyframe_start(&p.data));
    let mut data: Vec<u8> = first.map(|p| p.data.to_vec()).unwrap_or_default();
    for packet in packets {
        data.extend_from_slice(&packet.data);
    }
    AssembledFrame {
        timestamp,
        keyframe,
        data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAIT: Duration = Duration::from_millis(200);

    /// A fake VP8 frame of `len` bytes; a keyframe has bit 0 of its first byte clear.
    fn frame(len: usize, keyframe: bool, fill: u8) -> Bytes {
        let mut data = vec![fill; len];
        data[0] = if keyframe { 0x10 } else { 0x11 };
        Bytes::from(data)
    }

    fn push_all(assembler: &mut FrameAssembler, packets: &[rtp::Packet]) {
        for p in packets {
            assembler
                .push(
                    p.header.sequence_number,
                    p.header.timestamp,
                    p.header.marker,
                    p.payload.clone(),
                )
                .unwrap();
        }
    }

    fn frames(assembler: &mut FrameAssembler, now: Instant) -> Vec<Assembled> {
        std::iter::from_fn(|| assembler.poll(now)).collect()
    }

    #[test]
    fn descriptors_of_every_shape_are_read() {
        // Minimal: S=1, PID=0.
        let d = parse_descriptor(&[0x10, 0xaa]).unwrap();
        assert!(d.starts_frame());
        assert_eq!((d.len, d.picture_id), (1, None));
        // X, I with 15-bit PictureID, L, T/K.
        let d = parse_descriptor(&[0x90, 0xf0, 0x81, 0x02, 0x07, 0x40, 0xaa]).unwrap();
        assert_eq!((d.len, d.picture_id), (6, Some(0x0102)));
        // 7-bit PictureID, continuation packet of partition 1.
        let d = parse_descriptor(&[0x81, 0x80, 0x05, 0xaa]).unwrap();
        assert!(!d.starts_frame());
        assert_eq!((d.len, d.partition_index, d.picture_id), (3, 1, Some(5)));
        // Too short for its own fields, or no VP8 data after them.
        assert_eq!(parse_descriptor(&[]), None);
        assert_eq!(parse_descriptor(&[0x10]), None);
        assert_eq!(parse_descriptor(&[0x90, 0x80]), None);
        assert_eq!(parse_descriptor(&[0x90, 0x80, 0x81, 0x02]), None);
    }

    #[test]
    fn packetized_frames_come_back_whole_and_in_order() {
        let mut packetizer = Vp8Packetizer::new(7, 96, 65_530);
        let mut assembler = FrameAssembler::new(WAIT);
        let now = Instant::now();
        let sent: Vec<Bytes> = (0..6)
            .map(|i| frame(500 + i * 1000, i == 0, i as u8))
            .collect();
        for (i, data) in sent.iter().enumerate() {
            let packets = packetizer.packetize(data.clone(), 3000 * i as u32);
            assert!(packets.iter().all(|p| p.marshal_size_ok()));
            assert!(packets.last().unwrap().header.marker);
            assert_eq!(packets.iter().filter(|p| p.header.marker).count(), 1);
            push_all(&mut assembler, &packets);
        }
        let out = frames(&mut assembler, now);
        assert_eq!(out.len(), sent.len());
        for (i, (out, sent)) in out.iter().zip(&sent).enumerate() {
            let Assembled::Frame(f) = out else {
                panic!("frame {i} lost")
            };
            assert_eq!(f.data, sent.to_vec(), "frame {i}");
            assert_eq!(f.timestamp, 3000 * i as u32);
            assert_eq!(f.keyframe, i == 0);
        }
    }

    #[test]
    fn reordered_packets_wait_for_each_other() {
        let mut packetizer = Vp8Packetizer::new(7, 96, 100);
        let mut assembler = FrameAssembler::new(WAIT);
        let now = Instant::now();
        let mut packets = packetizer.packetize(frame(3000, true, 1), 0);
        packets.extend(packetizer.packetize(frame(100, false, 2), 3000));
        assert!(packets.len() > 3);
        // The second packet arrives first; the third is late.
        packets.swap(0, 1);
        push_all(&mut assembler, &packets[..2]);
        assert!(frames(&mut assembler, now).is_empty());
        push_all(&mut assembler, &packets[2..]);
        let out = frames(&mut assembler, now);
        assert!(
            matches!(out.as_slice(), [Assembled::Frame(a), Assembled::Frame(b)]
            if a.keyframe && !b.keyframe)
        );
    }

    #[test]
    fn a_hole_is_waited_for_then_given_up_at_the_next_frame_start() {
        let mut packetizer = Vp8Packetizer::new(7, 96, 0);
        let mut assembler = FrameAssembler::new(WAIT);
        let t0 = Instant::now();
        let first = packetizer.packetize(frame(3000, true, 1), 0);
        let second = packetizer.packetize(frame(3000, false, 2), 3000);
        let third = packetizer.packetize(frame(200, false, 3), 6000);
        push_all(&mut assembler, &first);
        // The middle packet of the second frame goes missing.
        push_all(&mut assembler, &second[..1]);
        push_all(&mut assembler, &second[2..]);
        push_all(&mut assembler, &third);
        let out = frames(&mut assembler, t0);
        assert!(matches!(out.as_slice(), [Assembled::Frame(f)] if f.keyframe));
        assert_eq!(assembler.poll_timeout(), Some(t0 + WAIT));
        assert!(assembler.poll(t0 + WAIT / 2).is_none());

        // A retransmission in time completes it.
        let mut retransmitted = FrameAssembler::new(WAIT);
        push_all(&mut retransmitted, &first);
        push_all(&mut retransmitted, &second[..1]);
        push_all(&mut retransmitted, &second[2..]);
        assert_eq!(frames(&mut retransmitted, t0).len(), 1);
        push_all(&mut retransmitted, &second[1..2]);
        assert_eq!(frames(&mut retransmitted, t0 + WAIT / 2).len(), 1);

        // Without it, the frame is lost once the wait is over, and the next one follows.
        let out = frames(&mut assembler, t0 + WAIT);
        assert!(
            matches!(out.as_slice(), [Assembled::Lost, Assembled::Frame(f)] if f.timestamp == 6000),
            "{out:?}"
        );
        // The missing packet arriving late changes nothing.
        push_all(&mut assembler, &second[1..2]);
        assert!(frames(&mut assembler, t0 + WAIT).is_empty());
        assert_eq!(assembler.poll_timeout(), None);
    }

    #[test]
    fn a_lost_frame_start_resynchronises_on_the_next_one() {
        let mut packetizer = Vp8Packetizer::new(7, 96, 10);
        let mut assembler = FrameAssembler::new(WAIT);
        let now = Instant::now();
        let first = packetizer.packetize(frame(100, true, 1), 0);
        let second = packetizer.packetize(frame(2500, false, 2), 3000);
        let third = packetizer.packetize(frame(100, false, 3), 6000);
        push_all(&mut assembler, &first);
        push_all(&mut assembler, &second[1..]);
        push_all(&mut assembler, &third);
        assert_eq!(frames(&mut assembler, now).len(), 1);
        let out = frames(&mut assembler, now + WAIT);
        assert!(
            matches!(out.as_slice(), [Assembled::Lost, Assembled::Frame(f)] if f.timestamp == 6000),
            "{out:?}"
        );
    }

    #[test]
    fn joining_mid_stream_starts_at_a_frame_start_and_padding_is_skipped() {
        let mut packetizer = Vp8Packetizer::new(7, 96, 500);
        let mut assembler = FrameAssembler::new(WAIT);
        let now = Instant::now();
        let first = packetizer.packetize(frame(2500, false, 1), 0);
        let second = packetizer.packetize(frame(100, false, 2), 3000);
        push_all(&mut assembler, &first[1..]);
        // A padding-only packet between frames takes a sequence number.
        let padding_seq = second[0].header.sequence_number;
        let mut third = packetizer.packetize(frame(100, false, 3), 6000);
        for p in &mut third {
            p.header.sequence_number = p.header.sequence_number.wrapping_add(1);
        }
        push_all(&mut assembler, &second);
        assembler
            .push(padding_seq.wrapping_add(1), 3000, false, Bytes::new())
            .unwrap();
        push_all(&mut assembler, &third);
        let out = frames(&mut assembler, now);
        assert!(
            matches!(out.as_slice(), [Assembled::Frame(a), Assembled::Frame(b)] if a.timestamp == 3000 && b.timestamp == 6000),
            "{out:?}"
        );
    }

    #[test]
    fn a_missing_marker_ends_the_frame_at_the_timestamp_change() {
        let mut packetizer = Vp8Packetizer::new(7, 96, 0);
        let mut assembler = FrameAssembler::new(WAIT);
        let mut first = packetizer.packetize(frame(100, true, 1), 0);
        first[0].header.marker = false;
        let second = packetizer.packetize(frame(100, false, 2), 3000);
        push_all(&mut assembler, &first);
        assert!(frames(&mut assembler, Instant::now()).is_empty());
        push_all(&mut assembler, &second);
        assert_eq!(frames(&mut assembler, Instant::now()).len(), 2);
    }

    #[test]
    fn garbage_is_refused_and_costs_its_frame() {
        let mut assembler = FrameAssembler::new(WAIT);
        assert_eq!(
            assembler.push(1, 0, true, Bytes::from_static(&[0x90])),
            Err(MalformedPayload)
        );
        // Random bytes never panic, whatever they say.
        let mut x: u32 = 1;
        for seq in 0..5000u16 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let len = (x % 7) as usize;
            let payload: Vec<u8> = (0..len).map(|i| (x >> (i % 4 * 8)) as u8).collect();
            let _ = assembler.push(seq.wrapping_mul(7), x, x & 1 == 0, Bytes::from(payload));
            let _ = frames(
                &mut assembler,
                Instant::now() + Duration::from_secs(u64::from(seq)),
            );
        }
    }

    trait MarshalSizeOk {
        fn marshal_size_ok(&self) -> bool;
    }

    impl MarshalSizeOk for rtp::Packet {
        fn marshal_size_ok(&self) -> bool {
            RTP_HEADER_LEN + self.payload.len() <= RTP_MTU
        }
    }
}
