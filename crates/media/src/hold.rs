//! Which way the call's audio flows, as the offer/answer exchanges so far settled it (RFC 3264
//! §6.1), and holding (RFC 6337).
//!
//! Holding is a change of direction only: the holder offers `sendonly` (or `inactive` if it is
//! held itself), the held side answers `recvonly` (or `inactive`), and resuming offers the
//! direction back. Transport and codecs stay as negotiated, so our own hold and resume offers
//! are the current description with the new direction and the next `o=` version (RFC 3264 §8);
//! the peer connection is not renegotiated for them. A hold the peer puts on us arrives as its
//! re-offer, which the peer connection answers as any re-offer; this module then writes the
//! direction we allow into that answer.
//!
//! What flows follows from the direction in the last description we sent: we play what arrives
//! only if it says we receive, and we send the source only if it says we send and we are not
//! the holder (a holder sends nothing, or music on hold — never the microphone).

use lyrebird_sdp::{Direction, MediaKind, SessionDescription};

use crate::error::MediaError;

/// Both sides' hold, as front ends show it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HoldState {
    /// We put the call on hold.
    pub local: bool,
    /// The other side put us on hold.
    pub remote: bool,
}

/// The audio stream's direction and hold state of one call.
#[derive(Debug)]
pub(crate) struct StreamDirection {
    /// The direction in the last description we sent.
    ours: Direction,
    hold: HoldState,
    /// A hold or resume offered and not yet answered: the state to go back to if refused.
    pending: Option<(Direction, HoldState)>,
    /// The `o=` version of the last description we sent.
    version: Option<u64>,
    /// A first offer/answer has completed; only later offers can put us on hold.
    negotiated: bool,
}

impl Default for StreamDirection {
    fn default() -> Self {
        Self {
            ours: Direction::SendRecv,
            hold: HoldState::default(),
            pending: None,
            version: None,
            negotiated: false,
        }
    }
}

fn parse(sdp: &str) -> Result<SessionDescription, MediaError> {
    SessionDescription::parse(sdp).map_err(|e| MediaError::BadSdp(e.to_string()))
}

/// The direction of the first audio section, `c=0.0.0.0` (RFC 2543 hold) read as `sendonly`
/// from the describing side.
fn audio_direction(description: &SessionDescription) -> Direction {
    let Some((index, _)) = description.first_of(&MediaKind::Audio) else {
        return Direction::Inactive;
    };
    let direction = description.direction(index).unwrap_or_default();
    if description.holds(index) && direction.sends() {
        Direction::SendOnly.intersect(direction)
    } else {
        direction
    }
}

/// The peer's offer as the WebRTC stack gets it: send-receive. The stack reads an offer's
/// direction as an order for its own transceiver (an `inactive` offer stops the transceiver and
/// its sender for good, `recvonly` makes it send-only), while holding is this module's to apply
/// to what we play and send; so the stack keeps one send-receive transceiver for the whole call.
pub(crate) fn offer_for_transport(offer: &str) -> Result<String, MediaError> {
    let mut description = parse(offer)?;
    description.set_audio_video_direction(Direction::SendRecv);
    Ok(description.to_string())
}

impl StreamDirection {
    pub(crate) fn hold_state(&self) -> HoldState {
        self.hold
    }

    /// A hold or resume of ours is waiting for its answer.
    pub(crate) fn pending(&self) -> bool {
        self.pending.is_some()
    }

    /// Received audio is played.
    pub(crate) fn plays(&self) -> bool {
        self.ours.receives()
    }

    /// The source (microphone, file, tone) is sent.
    pub(crate) fn sends_source(&self) -> bool {
        self.ours.sends() && !self.hold.local
    }

    /// We hold the call and may still send: music on hold goes out, if there is any.
    pub(crate) fn sends_music(&self) -> bool {
        self.ours.sends() && self.hold.local
    }

    /// Stamps a description we are about to send with our direction and the next version, so
    /// versions only grow whoever built the description.
    pub(crate) fn outgoing(&mut self, sdp: &str) -> Result<String, MediaError> {
        let mut description = parse(sdp)?;
        description.set_audio_video_direction(self.ours);
        let version = match self.version {
            Some(last) => last
                .saturating_add(1)
                .max(description.origin.session_version),
            None => description.origin.session_version,
        };
        description.origin.session_version = version;
        self.version = Some(version);
        Ok(description.to_string())
    }

    /// Our offer to hold (`hold`) or resume, built from the description we sent last.
    pub(crate) fn hold_offer(&mut self, last_sent: &str, hold: bool) -> Result<String, MediaError> {
        if !self.negotiated {
            return Err(MediaError::InvalidState("the call is not connected yet"));
        }
        if self.pending.is_some() {
            return Err(MediaError::InvalidState(
                "a hold or resume is already waiting for its answer",
            ));
        }
        if self.hold.local == hold {
            return Err(MediaError::InvalidState(if hold {
                "the call is already on hold"
            } else {
                "the call is not on hold"
            }));
        }
        self.pending = Some((self.ours, self.hold));
        self.ours = if hold {
            self.ours.held()
        } else {
            self.ours.resumed()
        };
        self.hold.local = hold;
        self.outgoing(last_sent)
    }

    /// The peer answered our hold or resume offer. An answer that refuses to receive what
    /// we offered to send holds us (RFC 6337 §5.3: the peer that is itself holding answers
    /// `inactive`, or `sendonly` to our `sendrecv`).
    pub(crate) fn on_hold_answer(&mut self, answer: &str) -> Result<(), MediaError> {
        let theirs = audio_direction(&parse(answer)?);
        if self.ours.sends() {
            self.hold.remote = !theirs.receives();
        }
        self.ours = self.ours.intersect(theirs.reversed());
        self.pending = None;
        Ok(())
    }

    /// The peer refused our hold or resume offer: the call stays as it was (RFC 3261 §14.1).
    pub(crate) fn on_hold_refused(&mut self) {
        if let Some((ours, hold)) = self.pending.take() {
            self.ours = ours;
            self.hold = hold;
        }
    }

    /// Our hold or resume offer was not sent because the peer's offer came first: the answer
    /// to it already says what we want (it is built from our hold), so nothing is pending.
    pub(crate) fn on_hold_superseded(&mut self) {
        self.pending = None;
    }

    /// The peer's offer, before the answer is built: the direction we will answer with.
    pub(crate) fn on_remote_offer(&mut self, offer: &str) -> Result<(), MediaError> {
        let theirs = audio_direction(&parse(offer)?);
        let wanted = if self.hold.local {
            Direction::SendOnly
        } else {
            Direction::SendRecv
        };
        self.ours = wanted.intersect(theirs.reversed());
        if self.negotiated {
            self.hold.remote = !theirs.receives();
        }
        Ok(())
    }

    /// The peer's answer to our first offer.
    pub(crate) fn on_remote_answer(&mut self, answer: &str) -> Result<(), MediaError> {
        let theirs = audio_direction(&parse(answer)?);
        self.ours = self.ours.intersect(theirs.reversed());
        self.negotiated = true;
        Ok(())
    }

    /// Our answer to the peer's offer has gone out.
    pub(crate) fn answered(&mut self) {
        self.negotiated = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sdp(direction: &str, version: u64) -> String {
        format!(
            "v=0\r\no=- 42 {version} IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
             m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\n\
             a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\n\
             a=rtpmap:111 opus/48000/2\r\na={direction}\r\n"
        )
    }

    fn direction_of(text: &str) -> Direction {
        audio_direction(&SessionDescription::parse(text).expect("valid"))
    }

    fn version_of(text: &str) -> u64 {
        SessionDescription::parse(text)
            .expect("valid")
            .origin
            .session_version
    }

    fn connected_caller() -> (StreamDirection, String) {
        let mut stream = StreamDirection::default();
        let offer = stream.outgoing(&sdp("sendrecv", 2)).expect("offer");
        stream
            .on_remote_answer(&sdp("sendrecv", 7))
            .expect("answer");
        (stream, offer)
    }

    #[test]
    fn we_hold_then_resume_and_versions_grow() {
        let (mut stream, offer) = connected_caller();
        assert!(stream.plays() && stream.sends_source());
        let hold = stream.hold_offer(&offer, true).expect("hold offer");
        assert_eq!(direction_of(&hold), Direction::SendOnly);
        assert_eq!(version_of(&hold), version_of(&offer) + 1);
        // Nothing of the peer is played and the microphone is not sent while we hold; music
        // on hold may be.
        assert!(!stream.plays() && !stream.sends_source());
        assert!(stream.sends_music());
        stream.on_hold_answer(&sdp("recvonly", 8)).expect("answer");
        assert_eq!(
            stream.hold_state(),
            HoldState {
                local: true,
                remote: false
            }
        );
        let resume = stream.hold_offer(&hold, false).expect("resume offer");
        assert_eq!(direction_of(&resume), Direction::SendRecv);
        assert_eq!(version_of(&resume), version_of(&hold) + 1);
        assert!(stream.plays() && stream.sends_source() && !stream.sends_music());
        stream.on_hold_answer(&sdp("sendrecv", 9)).expect("answer");
        assert_eq!(stream.hold_state(), HoldState::default());
    }

    #[test]
    fn the_peer_holds_us_and_we_answer_recvonly() {
        let mut stream = StreamDirection::default();
        stream.on_remote_offer(&sdp("sendrecv", 1)).expect("offer");
        let answer = stream.outgoing(&sdp("sendrecv", 1)).expect("answer");
        stream.answered();
        assert_eq!(direction_of(&answer), Direction::SendRecv);
        stream
            .on_remote_offer(&sdp("sendonly", 2))
            .expect("re-offer");
        let answer = stream.outgoing(&sdp("sendrecv", 1)).expect("answer");
        assert_eq!(direction_of(&answer), Direction::RecvOnly);
        assert!(version_of(&answer) > 1);
        assert!(stream.hold_state().remote && !stream.hold_state().local);
        // We hear what the holder sends (music on hold), and send nothing.
        assert!(stream.plays() && !stream.sends_source());
        stream.on_remote_offer(&sdp("sendrecv", 3)).expect("resume");
        assert_eq!(stream.hold_state(), HoldState::default());
        assert!(stream.plays() && stream.sends_source());
    }

    #[test]
    fn holding_while_held_is_inactive_and_each_side_resumes_its_own() {
        let (mut stream, offer) = connected_caller();
        stream
            .on_remote_offer(&sdp("sendonly", 8))
            .expect("peer holds");
        let answer = stream.outgoing(&offer).expect("answer");
        assert_eq!(direction_of(&answer), Direction::RecvOnly);
        let hold = stream.hold_offer(&answer, true).expect("we hold too");
        assert_eq!(direction_of(&hold), Direction::Inactive);
        stream.on_hold_answer(&sdp("inactive", 9)).expect("answer");
        // Both hold: no music either, nobody would hear it.
        assert!(!stream.sends_music());
        // The peer resumes: still held by us, so we answer sendonly, and the music plays.
        stream
            .on_remote_offer(&sdp("sendrecv", 10))
            .expect("peer resumes");
        let answer = stream.outgoing(&hold).expect("answer");
        assert_eq!(direction_of(&answer), Direction::SendOnly);
        assert!(stream.sends_music());
        let resume = stream.hold_offer(&answer, false).expect("we resume");
        assert_eq!(direction_of(&resume), Direction::SendRecv);
    }

    #[test]
    fn the_transport_sees_every_offer_send_receive() {
        for direction in ["sendonly", "recvonly", "inactive", "sendrecv"] {
            let offer = sdp(direction, 3);
            let seen = offer_for_transport(&offer).expect("valid");
            assert_eq!(direction_of(&seen), Direction::SendRecv, "{direction}");
            // Everything else stays as the peer wrote it.
            assert!(seen.contains("a=ice-pwd:abcdefghijklmnopqrstuvwx"));
            assert_eq!(version_of(&seen), 3);
        }
    }

    #[test]
    fn a_refused_hold_leaves_the_call_as_it_was() {
        let (mut stream, offer) = connected_caller();
        stream.hold_offer(&offer, true).expect("hold offer");
        assert!(stream.hold_offer(&offer, false).is_err(), "one at a time");
        stream.on_hold_refused();
        assert_eq!(stream.hold_state(), HoldState::default());
        assert!(stream.plays() && stream.sends_source());
        assert!(stream.hold_offer(&offer, false).is_err(), "not on hold");
    }

    #[test]
    fn a_hold_crossed_by_the_peers_offer_is_carried_by_our_answer() {
        let (mut stream, offer) = connected_caller();
        stream.hold_offer(&offer, true).expect("hold offer");
        // The peer's own hold arrives before ours could be sent.
        stream
            .on_remote_offer(&sdp("sendonly", 8))
            .expect("peer holds");
        let answer = stream.outgoing(&offer).expect("answer");
        assert_eq!(direction_of(&answer), Direction::Inactive);
        stream.on_hold_superseded();
        assert_eq!(
            stream.hold_state(),
            HoldState {
                local: true,
                remote: true
            }
        );
        let resume = stream
            .hold_offer(&answer, false)
            .expect("resume is possible");
        assert_eq!(direction_of(&resume), Direction::RecvOnly);
    }

    #[test]
    fn an_answer_that_will_not_receive_tells_us_we_are_held() {
        let (mut stream, offer) = connected_caller();
        let hold = stream.hold_offer(&offer, true).expect("hold offer");
        // The peer put us on hold too, in its answer.
        stream.on_hold_answer(&sdp("inactive", 8)).expect("answer");
        assert_eq!(
            stream.hold_state(),
            HoldState {
                local: true,
                remote: true
            }
        );
        // Our inactive resume-to-recvonly offer says nothing of the peer's hold.
        stream
            .on_remote_offer(&sdp("sendonly", 9))
            .expect("still held");
        let resume = stream.hold_offer(&hold, false).expect("resume");
        assert_eq!(direction_of(&resume), Direction::RecvOnly);
        stream.on_hold_answer(&sdp("sendonly", 10)).expect("answer");
        assert!(stream.hold_state().remote && !stream.hold_state().local);
    }

    #[test]
    fn a_legacy_zero_address_offer_is_a_hold() {
        let (mut stream, _) = connected_caller();
        let legacy = "v=0\r\no=- 1 3 IN IP4 0.0.0.0\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n\
                      m=audio 4000 RTP/AVP 0\r\n";
        stream.on_remote_offer(legacy).expect("offer");
        assert!(stream.hold_state().remote);
    }

    #[test]
    fn no_hold_before_the_call_is_connected() {
        let mut stream = StreamDirection::default();
        assert!(stream.hold_offer(&sdp("sendrecv", 1), true).is_err());
    }
}
