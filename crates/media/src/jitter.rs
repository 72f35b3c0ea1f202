//! Receive-side jitter buffer.
//!
//! Packets are stored by extended sequence number (RFC 3550 §A.1 style unwrapping of the 16-bit
//! field) and played out in order, one packet per request from the playout clock. The buffer
//! first fills to a *target depth* before playing; the depth follows the measured interarrival
//! jitter (RFC 3550 §6.4.1 / §A.8) and grows after an underrun, shrinks slowly when the network
//! is calm. A packet that arrives after its turn was played (or concealed) is late and dropped;
//! a duplicate is dropped; a gap produces a [`Playout::Lost`] so the decoder can conceal it
//! (Opus PLC or in-band FEC from the following packet, RFC 6716 §2.1.7).
//!
//! The buffer does no I/O and reads no clock: arrival times come in as milliseconds.

use bytes::Bytes;
use std::collections::BTreeMap;

/// Nominal packet duration the depth is measured in (WebRTC audio uses 20 ms ptime).
const PACKET_MS: f64 = 20.0;
/// Never hold more than this many packets (1 s): bounds memory and delay after a stall.
const MAX_PACKETS: usize = 50;
/// Bounds on the adaptive target depth, in packets.
const MIN_TARGET: usize = 1;
const MAX_TARGET: usize = 10;
/// Consecutive empty pulls after which the stream is considered paused (DTX, hold, end of
/// talk spurt) and the buffer re-enters prefetch instead of concealing forever.
const EMPTY_PULLS_BEFORE_PAUSE: u32 = 3;

/// What the playout clock gets for one packet slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Playout {
    /// The next packet in sequence.
    Packet {
        /// Its RTP payload.
        payload: Bytes,
        /// Its RTP payload type.
        payload_type: u8,
    },
    /// The next packet is missing but later ones are here: conceal one packet. `next` is the
    /// following packet, if present, for Opus in-band FEC.
    Lost {
        /// The packet after the missing one, if it has arrived.
        next: Option<(Bytes, u8)>,
    },
    /// Nothing to play (not started, paused, or underrun): play silence / fade out.
    Empty,
}

/// Outcome of [`JitterBuffer::insert`], for statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Insert {
    /// Stored for playout.
    Accepted,
    /// Already stored or already played.
    Duplicate,
    /// Its slot was already played or concealed.
    Late,
}

#[derive(Debug, Clone)]
struct Stored {
    payload: Bytes,
    payload_type: u8,
}

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct JitterBuffer {
    packets: BTreeMap<u64, Stored>,
    /// Highest extended sequence number seen (reference for unwrapping).
    highest: Option<u64>,
    /// Next extended sequence number to play, once playing.
    next_to_play: Option<u64>,
    playing: bool,
    target: usize,
    empty_pulls: u32,
    calm_pulls: u32,
    // RFC 3550 A.8 jitter estimator state, in milliseconds.
    last_transit_ms: Option<f64>,
    jitter_ms: f64,
    lost: u64,
    late: u64,
}

impl Default for JitterBuffer {
    fn default() -> Self {
        Self::new()
    }
}

impl JitterBuffer {
    /// An empty buffer with a 2-packet (40 ms) initial target.
    pub fn new() -> Self {
        JitterBuffer {
            packets: BTreeMap::new(),
            highest: None,
            next_to_play: None,
            playing: false,
            target: 2,
            empty_pulls: 0,
            calm_pulls: 0,
            last_transit_ms: None,
            jitter_ms: 0.0,
            lost: 0,
            late: 0,
        }
    }

    /// Stores a packet. `rtp_timestamp_ms` is the RTP timestamp converted to milliseconds
    /// (timestamp / clock rate × 1000, wrapping is harmless for the jitter difference);
    /// `arrival_ms` is the local receive time.
    pub fn insert(
        &mut self,
        sequence: u16,
        rtp_timestamp_ms: f64,
        arrival_ms: f64,
        payload_type: u8,
        payload: Bytes,
    ) -> Insert {
        let extended = self.extend(sequence);
        if self.next_to_play.is_some_and(|next| extended < next) {
            self.late += 1;
            return Insert::Late;
        }
        if self.packets.contains_key(&extended) {
            return Insert::Duplicate;
        }
        self.update_jitter(rtp_timestamp_ms, arrival_ms);
        self.highest = Some(self.highest.map_or(extended, |h| h.max(extended)));
        self.packets.insert(
            extended,
            Stored {
                payload,
                payload_type,
            },
        );
        // Bound the buffer: after a long stall drop the oldest and move playout forward.
        while self.packets.len() > MAX_PACKETS {
            if let Some((oldest, _)) = self.packets.pop_first() {
                self.next_to_play = Some(oldest + 1);
            }
        }
        Insert::Accepted
    }

    /// Takes what should be played for the next packet slot.
    pub fn pop(&mut self) -> Playout {
        if !self.playing {
            if self.packets.len() < self.target {
                return Playout::Empty;
            }
            self.playing = true;
            self.empty_pulls = 0;
            if let Some((&first, _)) = self.packets.first_key_value() {
                // Resume at the oldest packet we hold; anything before it is gone.
                self.next_to_play = Some(self.next_to_play.map_or(first, |n| n.max(first)));
            }
        }
        let Some(next) = self.next_to_play else {
            return Playout::Empty;
        };
        if let Some(stored) = self.packets.remove(&next) {
            self.next_to_play = Some(next + 1);
            self.empty_pulls = 0;
            self.adapt_after_pull();
            return Playout::Packet {
                payload: stored.payload,
                payload_type: stored.payload_type,
            };
        }
        if self.packets.is_empty() {
            // Underrun: nothing newer has arrived. Either loss at the end of what we have, or
            // the sender paused. Conceal a little, then go back to prefetch.
            self.empty_pulls += 1;
            if self.empty_pulls >= EMPTY_PULLS_BEFORE_PAUSE {
                self.playing = false;
                self.target = (self.target + 1).min(MAX_TARGET);
                self.calm_pulls = 0;
                return Playout::Empty;
            }
            // Do not advance: if the packet turns up it is still played, only delayed.
            return Playout::Empty;
        }
        // A hole with newer packets behind it: this one is lost.
        self.lost += 1;
        self.next_to_play = Some(next + 1);
        let following = self
            .packets
            .get(&(next + 1))
            .map(|s| (s.payload.clone(), s.payload_type));
        Playout::Lost { next: following }
    }

    /// Packets concealed because they never arrived in time.
    pub fn lost(&self) -> u64 {
        self.lost
    }

    /// Packets dropped because they arrived after their slot.
    pub fn late(&self) -> u64 {
        self.late
    }

    /// RFC 3550 interarrival jitter estimate in milliseconds.
    pub fn jitter_ms(&self) -> f64 {
        self.jitter_ms
    }

    /// Current target delay in milliseconds.
    pub fn target_ms(&self) -> u32 {
        (self.target as f64 * PACKET_MS) as u32
    }

    /// Packets currently held.
    pub fn len(&self) -> usize {
        self.packets.len()
    }

    /// Whether no packets are held.
    pub fn is_empty(&self) -> bool {
        self.packets.is_empty()
    }

    fn extend(&self, sequence: u16) -> u64 {
        let Some(reference) = self.highest else {
            // Start well above zero so a packet from "before" the first does not underflow.
            return (1u64 << 32) + u64::from(sequence);
        };
        let delta = sequence.wrapping_sub(reference as u16) as i16;
        reference.wrapping_add_signed(i64::from(delta))
    }

    fn update_jitter(&mut self, rtp_timestamp_ms: f64, arrival_ms: f64) {
        let transit = arrival_ms - rtp_timestamp_ms;
        if let Some(last) = self.last_transit_ms {
            let d = (transit - last).abs();
            // Ignore absurd jumps (timestamp wrap or a new talk spurt after a long pause).
            if d < 1_000.0 {
                self.jitter_ms += (d - self.jitter_ms) / 16.0;
            }
        }
        self.last_transit_ms = Some(transit);
        // Target covers about three jitter deviations plus one packet of slack.
        let wanted = ((3.0 * self.jitter_ms) / PACKET_MS).ceil() as usize + 1;
        let wanted = wanted.clamp(MIN_TARGET, MAX_TARGET);
        if wanted > self.target {
            self.target = wanted;
        }
    }

    fn adapt_after_pull(&mut self) {
        // Shrink the target slowly when the network has been calm for ~10 s, and drop a packet
        // when far over target so latency does not stay high after a burst.
        let wanted = (((3.0 * self.jitter_ms) / PACKET_MS).ceil() as usize + 1)
            .clamp(MIN_TARGET, MAX_TARGET);
        if wanted < self.target {
            self.calm_pulls += 1;
            if self.calm_pulls >= 500 {
                self.target -= 1;
                self.calm_pulls = 0;
            }
        } else {
            self.calm_pulls = 0;
        }
        if self.packets.len() > self.target + 4
            && let Some((oldest, _)) = self.packets.pop_first()
        {
            self.next_to_play = Some(oldest + 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(seq: u16) -> Bytes {
        Bytes::from(seq.to_be_bytes().to_vec())
    }

    /// Inserts `seq` as if sent at seq×20 ms and received at `arrival` ms.
    fn put(jb: &mut JitterBuffer, seq: u16, arrival: f64) -> Insert {
        jb.insert(seq, f64::from(seq) * 20.0, arrival, 111, payload(seq))
    }

    fn played_seq(p: &Playout) -> Option<u16> {
        match p {
            Playout::Packet { payload, .. } => Some(u16::from_be_bytes([payload[0], payload[1]])),
            _ => None,
        }
    }

    #[test]
    fn reorders_packets() {
        let mut jb = JitterBuffer::new();
        for (i, seq) in [1u16, 0, 3, 2, 4].iter().enumerate() {
            assert_eq!(put(&mut jb, *seq, i as f64 * 20.0), Insert::Accepted);
        }
        let order: Vec<_> = (0..5).map(|_| played_seq(&jb.pop())).collect();
        assert_eq!(order, vec![Some(0), Some(1), Some(2), Some(3), Some(4)]);
        assert_eq!(jb.lost(), 0);
    }

    #[test]
    fn waits_for_the_target_depth_before_playing() {
        let mut jb = JitterBuffer::new();
        put(&mut jb, 10, 0.0);
        assert_eq!(jb.pop(), Playout::Empty);
        put(&mut jb, 11, 20.0);
        assert_eq!(played_seq(&jb.pop()), Some(10));
    }

    #[test]
    fn drops_duplicates() {
        let mut jb = JitterBuffer::new();
        assert_eq!(put(&mut jb, 5, 0.0), Insert::Accepted);
        assert_eq!(put(&mut jb, 5, 1.0), Insert::Duplicate);
        put(&mut jb, 6, 20.0);
        assert_eq!(played_seq(&jb.pop()), Some(5));
        // A duplicate of something already played counts as late, not played twice.
        assert_eq!(put(&mut jb, 5, 30.0), Insert::Late);
        assert_eq!(played_seq(&jb.pop()), Some(6));
    }

    #[test]
    fn loss_is_reported_for_concealment_with_the_next_packet_for_fec() {
        let mut jb = JitterBuffer::new();
        for seq in [0u16, 1, 3, 4] {
            put(&mut jb, seq, f64::from(seq) * 20.0);
        }
        assert_eq!(played_seq(&jb.pop()), Some(0));
        assert_eq!(played_seq(&jb.pop()), Some(1));
        match jb.pop() {
            Playout::Lost {
                next: Some((p, pt)),
            } => {
                assert_eq!(u16::from_be_bytes([p[0], p[1]]), 3);
                assert_eq!(pt, 111);
            }
            other => panic!("expected loss, got {other:?}"),
        }
        assert_eq!(played_seq(&jb.pop()), Some(3));
        assert_eq!(played_seq(&jb.pop()), Some(4));
        assert_eq!(jb.lost(), 1);
    }

    #[test]
    fn late_packets_are_dropped() {
        let mut jb = JitterBuffer::new();
        for seq in [0u16, 2, 3] {
            put(&mut jb, seq, f64::from(seq) * 20.0);
        }
        assert_eq!(played_seq(&jb.pop()), Some(0));
        assert!(matches!(jb.pop(), Playout::Lost { .. })); // 1 concealed
        assert_eq!(put(&mut jb, 1, 100.0), Insert::Late);
        assert_eq!(jb.late(), 1);
        assert_eq!(played_seq(&jb.pop()), Some(2));
    }

    #[test]
    fn sequence_numbers_wrap() {
        let mut jb = JitterBuffer::new();
        let seqs = [65_534u16, 65_535, 0, 1];
        for (i, seq) in seqs.iter().enumerate() {
            jb.insert(*seq, i as f64 * 20.0, i as f64 * 20.0, 0, payload(*seq));
        }
        let order: Vec<_> = (0..4).map(|_| played_seq(&jb.pop())).collect();
        assert_eq!(order, vec![Some(65_534), Some(65_535), Some(0), Some(1)]);
    }

    #[test]
    fn underrun_pauses_then_resumes_after_prefetch() {
        let mut jb = JitterBuffer::new();
        put(&mut jb, 0, 0.0);
        put(&mut jb, 1, 20.0);
        assert_eq!(played_seq(&jb.pop()), Some(0));
        assert_eq!(played_seq(&jb.pop()), Some(1));
        for _ in 0..EMPTY_PULLS_BEFORE_PAUSE {
            assert_eq!(jb.pop(), Playout::Empty);
        }
        // Back in prefetch with a larger target: a single packet is not enough.
        put(&mut jb, 2, 200.0);
        assert_eq!(jb.pop(), Playout::Empty);
        put(&mut jb, 3, 220.0);
        put(&mut jb, 4, 240.0);
        assert_eq!(played_seq(&jb.pop()), Some(2));
    }

    #[test]
    fn jitter_estimate_and_target_grow_with_irregular_arrival() {
        let mut calm = JitterBuffer::new();
        let mut rough = JitterBuffer::new();
        for seq in 0u16..200 {
            put(&mut calm, seq, f64::from(seq) * 20.0);
            let wobble = if seq % 2 == 0 { 0.0 } else { 60.0 };
            put(&mut rough, seq, f64::from(seq) * 20.0 + wobble);
            let _ = calm.pop();
            let _ = rough.pop();
        }
        assert!(calm.jitter_ms() < 1.0, "calm {}", calm.jitter_ms());
        assert!(rough.jitter_ms() > 30.0, "rough {}", rough.jitter_ms());
        assert!(rough.target_ms() > calm.target_ms());
        assert!(rough.target_ms() <= (MAX_TARGET as u32) * 20);
    }

    #[test]
    fn stays_bounded_when_playout_stalls() {
        let mut jb = JitterBuffer::new();
        for seq in 0u16..500 {
            put(&mut jb, seq, f64::from(seq) * 20.0);
        }
        assert!(jb.len() <= MAX_PACKETS);
        // Playout resumes with the newest second of audio, in order.
        let first = played_seq(&jb.pop());
        assert_eq!(first, Some(500 - MAX_PACKETS as u16));
    }
}
