//! RFC 4733 named telephone events (DTMF) in the RTP stream, sent and received.
//!
//! One key press is one event: every packet of it carries the same RTP timestamp (the event's
//! start) and a growing duration; the first has the marker bit (§2.5.1.2); the last is sent
//! three times with the End bit (§2.5.1.4) so a single loss does not hang a digit.

/// Tone length in 20 ms packets (100 ms, a common minimum for reliable detection).
const TONE_PACKETS: u32 = 5;
/// Copies of the final (End) packet.
const END_COPIES: u32 = 3;
/// Pause after an event before the next digit, in packets (audio is sent meanwhile).
const GAP_PACKETS: u32 = 3;
/// Event volume, −dBm0 (§2.3.4): 10 is a typical, clearly detectable level.
const VOLUME: u8 = 10;

/// Maps a key to its event code (RFC 4733 §3.2 table 3).
pub fn event_code(digit: char) -> Option<u8> {
    match digit {
        '0'..='9' => Some(digit as u8 - b'0'),
        '*' => Some(10),
        '#' => Some(11),
        'A'..='D' => Some(12 + (digit as u8 - b'A')),
        'a'..='d' => Some(12 + (digit as u8 - b'a')),
        _ => None,
    }
}

/// Encodes the 4-byte event payload (§2.3).
pub fn payload(event: u8, end: bool, duration: u16) -> [u8; 4] {
    let flags = if end { 0x80 } else { 0 } | (VOLUME & 0x3F);
    let d = duration.to_be_bytes();
    [event, flags, d[0], d[1]]
}

/// The packet to send on one 20 ms tick while an event is in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventPacket {
    /// The 4-byte payload.
    pub payload: [u8; 4],
    /// RTP marker bit.
    pub marker: bool,
    /// RTP timestamp to use (the event's start, fixed for all its packets).
    pub timestamp: u32,
}

/// Progress of one event.
#[derive(Debug, Clone)]
pub struct EventSender {
    event: u8,
    start_timestamp: u32,
    step: u32,
    sent: u32,
}

impl EventSender {
    /// Starts `event` at RTP time `start_timestamp`; `step` is the timestamp units per packet.
    pub fn new(event: u8, start_timestamp: u32, step: u32) -> Self {
        EventSender {
            event,
            start_timestamp,
            step,
            sent: 0,
        }
    }

    /// The next packet to send, `None` once the event (including its gap) is over. During the
    /// trailing gap it returns `Some(None)`: send audio.
    pub fn next_packet(&mut self) -> Option<Option<EventPacket>> {
        let index = self.sent;
        self.sent += 1;
        // The last tone packet is the first End packet; END_COPIES − 1 repeats follow.
        let event_packets = TONE_PACKETS + END_COPIES - 1;
        if index < event_packets {
            let packets_of_tone = (index + 1).min(TONE_PACKETS);
            let duration = (packets_of_tone * self.step).min(u32::from(u16::MAX)) as u16;
            let end = index + 1 >= TONE_PACKETS;
            Some(Some(EventPacket {
                payload: payload(self.event, end, duration),
                marker: index == 0,
                timestamp: self.start_timestamp,
            }))
        } else if index < event_packets + GAP_PACKETS {
            Some(None)
        } else {
            None
        }
    }
}

/// The key of an event code (RFC 4733 §3.2 table 3); codes above 15 are not keys.
pub fn digit_of(event: u8) -> Option<char> {
    match event {
        0..=9 => Some(char::from(b'0' + event)),
        10 => Some('*'),
        11 => Some('#'),
        12..=15 => Some(char::from(b'A' + event - 12)),
        _ => None,
    }
}

/// Tells each received key press once, however many packets carry it.
///
/// Every packet of one event carries the event's start as its RTP timestamp (§2.5.1.1), so a
/// timestamp seen before is the same key press: its updates, its End packet and the End
/// packet's repeats. A few recent starts are remembered because repeats of one event's End
/// packets can arrive after the next event began on a reordering path.
#[derive(Debug, Default)]
pub struct EventReceiver {
    recent_starts: [Option<u32>; 4],
    next_slot: usize,
}

impl EventReceiver {
    /// Reads one telephone-event payload sent at RTP time `timestamp`; returns the key the
    /// first time an event is seen. Payloads shorter than the 4 bytes of §2.3 and codes that
    /// are not keys (tones, line events) are ignored.
    pub fn receive(&mut self, timestamp: u32, payload: &[u8]) -> Option<char> {
        let &[event, ..] = payload else {
            return None;
        };
        if payload.len() < 4 || self.recent_starts.contains(&Some(timestamp)) {
            return None;
        }
        let digit = digit_of(event)?;
        self.recent_starts[self.next_slot] = Some(timestamp);
        self.next_slot = (self.next_slot + 1) % self.recent_starts.len();
        Some(digit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        assert_eq!(event_code('0'), Some(0));
        assert_eq!(event_code('9'), Some(9));
        assert_eq!(event_code('*'), Some(10));
        assert_eq!(event_code('#'), Some(11));
        assert_eq!(event_code('D'), Some(15));
        assert_eq!(event_code('x'), None);
    }

    #[test]
    fn event_sequence_follows_rfc4733() {
        let mut sender = EventSender::new(5, 1000, 160);
        let mut packets = Vec::new();
        let mut gaps = 0;
        while let Some(p) = sender.next_packet() {
            match p {
                Some(p) => packets.push(p),
                None => gaps += 1,
            }
        }
        assert_eq!(packets.len() as u32, TONE_PACKETS + END_COPIES - 1);
        assert_eq!(gaps, GAP_PACKETS);
        assert!(packets[0].marker && packets[1..].iter().all(|p| !p.marker));
        assert!(
            packets
                .iter()
                .all(|p| p.timestamp == 1000 && p.payload[0] == 5)
        );
        let durations: Vec<u16> = packets
            .iter()
            .map(|p| u16::from_be_bytes([p.payload[2], p.payload[3]]))
            .collect();
        assert_eq!(durations, vec![160, 320, 480, 640, 800, 800, 800]);
        let ends: Vec<bool> = packets.iter().map(|p| p.payload[1] & 0x80 != 0).collect();
        assert_eq!(ends, vec![false, false, false, false, true, true, true]);
    }

    #[test]
    fn every_key_maps_back() {
        for key in "0123456789*#ABCD".chars() {
            let code = event_code(key).expect("a key");
            assert_eq!(digit_of(code), Some(key));
        }
        assert_eq!(digit_of(16), None);
    }

    #[test]
    fn a_key_press_is_told_once_whatever_its_packets() {
        let mut receiver = EventReceiver::default();
        let mut told = Vec::new();
        for (digit, start) in [('1', 1000u32), ('#', 2600), ('1', 4200)] {
            let mut sender = EventSender::new(event_code(digit).expect("key"), start, 160);
            while let Some(packet) = sender.next_packet() {
                if let Some(packet) = packet {
                    told.extend(receiver.receive(packet.timestamp, &packet.payload));
                }
            }
        }
        // A late repeat of the first event's End packet is not a new key press.
        told.extend(receiver.receive(1000, &payload(1, true, 800)));
        assert_eq!(told, vec!['1', '#', '1']);
    }

    #[test]
    fn short_payloads_and_non_keys_are_ignored() {
        let mut receiver = EventReceiver::default();
        assert_eq!(receiver.receive(1, &[5, 0x80]), None);
        assert_eq!(receiver.receive(2, &[]), None);
        assert_eq!(receiver.receive(3, &payload(70, false, 160)), None);
        assert_eq!(receiver.receive(4, &payload(5, false, 160)), Some('5'));
    }
}
