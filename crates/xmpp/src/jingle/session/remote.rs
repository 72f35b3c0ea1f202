//! What arrives for a call: XEP-0353 messages, Jingle IQ-sets, answers to our IQs, time.

use std::time::Instant;

use tracing::debug;

use crate::jingle::element::{Action, Jingle, Reason, SessionInfo};
use crate::jingle::message::JingleMessage;
use crate::jingle::sdp::trickle_candidates;

use super::wire::iq_error;
use super::{CallEvent, EndedBy, JingleCall, Outgoing, Phase, bare, reason};

impl JingleCall {
    // ----- handle_* -----

    /// An XEP-0353 message with this call's id. `from` is the sender's full JID; `ours` is
    /// true when it came from (or is a carbon of) another device of our own account.
    pub fn handle_message(&mut self, now: Instant, from: &str, message: JingleMessage, ours: bool) {
        if ours {
            if from == self.config.local {
                return; // our own message reflected
            }
            // Another of our devices answered or declined: stop ringing here.
            if matches!(
                self.phase,
                Phase::ProposeReceived | Phase::InitiateReceived { accepted: false }
            ) && matches!(
                message,
                JingleMessage::Accept { .. }
                    | JingleMessage::Proceed { .. }
                    | JingleMessage::Reject { .. }
            ) {
                let why = match &message {
                    JingleMessage::Reject { .. } => Reason::Decline,
                    _ => Reason::Success,
                };
                self.end(why, EndedBy::Elsewhere);
            }
            return;
        }
        if bare(from) != bare(&self.peer) {
            self.warn("ignored a call message for this call from another contact".into());
            return;
        }
        match (&self.phase, message) {
            (Phase::Proposed, JingleMessage::Ringing { .. }) => {
                if !self.rang {
                    self.rang = true;
                    self.events.push(CallEvent::PeerRinging);
                }
            }
            (Phase::Proposed, JingleMessage::Proceed { .. }) => {
                self.device = Some(from.to_owned());
                self.phase = Phase::Initiating { sent: false };
                self.events.push(CallEvent::Proceeding {
                    device: from.to_owned(),
                });
                self.ring_deadline = Some(now + self.config.iq_timeout);
                self.send_initiate_if_ready(now);
            }
            (Phase::Proposed, JingleMessage::Reject { reason: r, .. }) => {
                let r = r.unwrap_or(reason(Reason::Decline));
                self.end_with(r, EndedBy::Peer);
            }
            (
                Phase::ProposeReceived | Phase::AwaitingInitiate,
                JingleMessage::Retract { reason: r, .. },
            ) => {
                let r = r.unwrap_or(reason(Reason::Cancel));
                self.end_with(r, EndedBy::Peer);
            }
            (Phase::Ended, _) => {}
            (_, JingleMessage::Finish { reason: r, .. }) => {
                let r = r.unwrap_or(reason(Reason::Success));
                self.end_with(r, EndedBy::Peer);
            }
            (_, other) => debug!(?other, "jingle message ignored in this state"),
        }
    }

    /// A Jingle IQ-set for this session from `from`, with its IQ id. Always answered.
    pub fn handle_jingle(&mut self, now: Instant, from: &str, iq_id: &str, jingle: Jingle) {
        let from_peer = match &self.device {
            Some(device) => device == from,
            None => false,
        };
        if !from_peer || jingle.sid != self.sid || matches!(self.phase, Phase::Ended) {
            // XEP-0166 §7.2.8: not our session (or no longer).
            self.transmit.push(Outgoing {
                to: from.to_owned(),
                xml: iq_error(
                    from,
                    iq_id,
                    "cancel",
                    "item-not-found",
                    Some("unknown-session"),
                ),
            });
            return;
        }
        match (&self.phase, &jingle.action) {
            (Phase::AwaitingInitiate, Action::SessionInitiate) => {
                self.ack(from, iq_id);
                self.phase = Phase::InitiateReceived { accepted: true };
                self.ring_deadline = None;
                if self.take_offer(now, &jingle) {
                    self.send_accept_if_ready(now);
                }
            }
            (Phase::Initiating { sent: true }, Action::SessionAccept) => {
                self.ack(from, iq_id);
                self.take_answer(now, &jingle);
            }
            (_, Action::SessionTerminate) => {
                self.ack(from, iq_id);
                let r = jingle.reason.unwrap_or(reason(Reason::Success));
                self.end_with(r, EndedBy::Peer);
            }
            (
                Phase::Initiating { sent: true } | Phase::InitiateReceived { .. } | Phase::Active,
                Action::TransportInfo,
            ) => {
                self.ack(from, iq_id);
                for candidate in trickle_candidates(&jingle) {
                    if self.remote_described {
                        self.events.push(CallEvent::RemoteCandidate(candidate));
                    } else {
                        self.early_remote.push(candidate);
                    }
                }
            }
            (_, Action::SessionInfo)
                if !matches!(self.phase, Phase::Proposed | Phase::ProposeReceived) =>
            {
                self.ack(from, iq_id);
                for info in jingle.info {
                    match info {
                        SessionInfo::Ringing => {
                            if !self.rang {
                                self.rang = true;
                                self.events.push(CallEvent::PeerRinging);
                            }
                        }
                        SessionInfo::Hold => self.events.push(CallEvent::PeerHold(true)),
                        SessionInfo::Unhold => self.events.push(CallEvent::PeerHold(false)),
                        SessionInfo::Active => {}
                        SessionInfo::Mute { name, .. } => self.events.push(CallEvent::PeerMute {
                            content: name,
                            muted: true,
                        }),
                        SessionInfo::Unmute { name, .. } => self.events.push(CallEvent::PeerMute {
                            content: name,
                            muted: false,
                        }),
                    }
                }
            }
            (Phase::Active, Action::ContentAdd) => {
                self.ack(from, iq_id);
                self.take_content_add(now, jingle);
            }
            (Phase::Active, Action::ContentAccept) => {
                self.ack(from, iq_id);
                self.take_content_answer(jingle, true);
            }
            (Phase::Active, Action::ContentReject) => {
                self.ack(from, iq_id);
                self.take_content_answer(jingle, false);
            }
            (Phase::Active, Action::ContentRemove) => {
                self.ack(from, iq_id);
                let names: Vec<String> = jingle.contents.iter().map(|c| c.name.clone()).collect();
                self.remote.contents.retain(|c| !names.contains(&c.name));
                if self.remote.contents.is_empty() {
                    // XEP-0166 §6.8: a session without contents is void.
                    self.terminate(now, Reason::Success, EndedBy::Peer);
                } else {
                    self.events.push(CallEvent::ContentsRemoved(names));
                }
            }
            (Phase::Active, Action::ContentModify) => {
                self.ack(from, iq_id);
                self.take_content_modify(jingle);
            }
            (
                _,
                Action::ContentModify
                | Action::DescriptionInfo
                | Action::SecurityInfo
                | Action::TransportReplace
                | Action::TransportAccept
                | Action::TransportReject,
            ) => {
                self.transmit.push(Outgoing {
                    to: from.to_owned(),
                    xml: iq_error(from, iq_id, "cancel", "feature-not-implemented", None),
                });
            }
            _ => {
                // XEP-0166 §7.2.11: an action the state does not allow.
                self.transmit.push(Outgoing {
                    to: from.to_owned(),
                    xml: iq_error(
                        from,
                        iq_id,
                        "wait",
                        "unexpected-request",
                        Some("out-of-order"),
                    ),
                });
            }
        }
    }

    /// A result for one of our IQs (ids from [`Outgoing`] stanzas).
    pub fn handle_iq_result(&mut self, _now: Instant, id: &str) {
        self.iqs.remove(id);
    }

    /// An error for one of our IQs, with its stanza error condition (and the Jingle
    /// condition, if any, e.g. `tie-break`).
    pub fn handle_iq_error(&mut self, now: Instant, id: &str, condition: &str) {
        let Some((kind, _)) = self.iqs.remove(id) else {
            return;
        };
        self.iq_failed(now, kind, EndedBy::Error(condition.to_owned()));
    }

    /// Time passed: rings that nobody answered, IQs nobody answered.
    pub fn handle_timeout(&mut self, now: Instant) {
        let expired: Vec<_> = self.iqs.extract_if(|_, (_, at)| now >= *at).collect();
        for (_, (kind, _)) in expired {
            self.iq_failed(now, kind, EndedBy::Timeout);
        }
        if self.ring_deadline.is_some_and(|d| now >= d) {
            self.ring_deadline = None;
            match self.phase {
                Phase::Proposed => {
                    let retract = JingleMessage::Retract {
                        id: self.sid.clone(),
                        reason: Some(reason(Reason::Timeout)),
                    };
                    let to = self.peer.clone();
                    self.send_message(&to, &retract);
                    self.end(Reason::Timeout, EndedBy::Timeout);
                }
                Phase::ProposeReceived | Phase::AwaitingInitiate => {
                    self.end(Reason::Timeout, EndedBy::Timeout)
                }
                Phase::Initiating { sent: false } => self.end(Reason::Timeout, EndedBy::Timeout),
                Phase::Initiating { sent: true } | Phase::InitiateReceived { .. } => {
                    self.terminate(now, Reason::Timeout, EndedBy::Timeout)
                }
                Phase::Active | Phase::Ended => {}
            }
        }
    }
}
