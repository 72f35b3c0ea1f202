//! One call over Jingle: message initiation (XEP-0353), the session (XEP-0166) and its RTP
//! information (XEP-0167 §7), as a sans-IO state machine.
//!
//! # Contract with the engine (one task per call owns a [`JingleCall`])
//!
//! - Create it with [`JingleCall::propose`] (a contact with XEP-0353: every device rings),
//!   [`JingleCall::initiate`] (straight `session-initiate` to one full JID),
//!   [`JingleCall::incoming_proposal`] or [`JingleCall::incoming_session`].
//! - Feed it what the account receives for this session: Jingle IQ-sets with its `sid`
//!   ([`JingleCall::handle_jingle`]), answers to its IQs ([`JingleCall::handle_iq_result`],
//!   [`JingleCall::handle_iq_error`]), XEP-0353 messages with its id
//!   ([`JingleCall::handle_message`]), and time ([`JingleCall::handle_timeout`] once
//!   [`JingleCall::poll_timeout`] passes). It reads no clock.
//! - Feed it the media engine's SDP ([`JingleCall::set_local_description`]) and trickled
//!   candidates ([`JingleCall::add_local_candidate`]), and the person's decisions
//!   ([`JingleCall::accept`], [`JingleCall::reject`], [`JingleCall::hangup`],
//!   [`JingleCall::hold`], [`JingleCall::mute`], [`JingleCall::remove_content`]).
//! - After each input drain [`JingleCall::poll_transmit`] (stanzas for the account to send)
//!   and [`JingleCall::poll_event`] (remote SDP and candidates for the media engine, and what
//!   to show).
//!
//! Every Jingle IQ-set is acknowledged (XEP-0166 §6.3.2: ack first, then act), with
//! `<out-of-order/>` when the state does not allow it. Our own IQs carry a deadline: a
//! `session-initiate` or `session-accept` that fails or is never answered ends the call, a
//! lost `transport-info` or `session-info` only warns.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use lyrebird_sdp::SessionDescription;
use tracing::debug;

use super::element::{Action, Content, Creator, Jingle, Reason, ReasonText, SessionInfo};
use super::error::JingleError;
use super::message::JingleMessage;
use super::sdp::{
    JingleMedia, TrickleCandidate, candidate_from_sdp, jingle_to_sdp, sdp_to_jingle,
    trickle_candidates,
};
use crate::client::ns;
use crate::xml::Xml;

/// How a call behaves.
#[derive(Debug, Clone)]
pub struct CallConfig {
    /// Our full JID (the `initiator` or `responder` we write).
    pub local: String,
    /// How long a call may ring unanswered (outgoing: then retracted; incoming: then dropped).
    pub ring_timeout: Duration,
    /// How long an IQ of ours may stay unanswered.
    pub iq_timeout: Duration,
}

impl CallConfig {
    /// Defaults: ring 60 s, IQs 20 s.
    pub fn new(local: impl Into<String>) -> Self {
        CallConfig {
            local: local.into(),
            ring_timeout: Duration::from_secs(60),
            iq_timeout: Duration::from_secs(20),
        }
    }
}

/// A stanza for the account to send (one WebSocket text message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// The addressee.
    pub to: String,
    /// The whole stanza.
    pub xml: String,
}

/// Who ended a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndedBy {
    /// We did (hang-up, reject, retract, local failure).
    Us,
    /// The peer did (terminate, reject, retract).
    Peer,
    /// Another of our devices answered or declined.
    Elsewhere,
    /// An IQ of ours was refused with this stanza error condition (a `tie-break` conflict
    /// means the peer's own call to us wins: expect its `session-initiate`).
    Error(String),
    /// Nobody answered in time (the ring timeout or an IQ deadline).
    Timeout,
}

/// What the engine must act on or show.
#[derive(Debug, Clone, PartialEq)]
pub enum CallEvent {
    /// An incoming call to present. `known` is false for a caller not in the roster: ask the
    /// person, never auto-answer. `media` lists `audio` / `video`.
    Incoming {
        /// The caller's full JID.
        from: String,
        /// The media proposed.
        media: Vec<String>,
        /// The caller is in our roster.
        known: bool,
    },
    /// The callee's device is ringing (XEP-0353 `<ringing/>` or XEP-0167 §7.6).
    PeerRinging,
    /// A device of the callee took the call (XEP-0353 `<proceed/>`).
    Proceeding {
        /// That device's full JID.
        device: String,
    },
    /// Set this remote offer on the media engine, then answer with
    /// [`JingleCall::set_local_description`].
    RemoteOffer(SessionDescription),
    /// Set this remote answer on the media engine.
    RemoteAnswer(SessionDescription),
    /// Add this trickled remote candidate (always after the remote description it belongs to).
    RemoteCandidate(TrickleCandidate),
    /// Both sides agreed: the session is active and media may flow.
    Accepted,
    /// The peer put the call on hold (true) or took it back (false).
    PeerHold(bool),
    /// The peer muted or unmuted one content (`None`: all).
    PeerMute {
        /// The content name, if one.
        content: Option<String>,
        /// Muted or not.
        muted: bool,
    },
    /// The peer accepted our new contents (video on).
    ContentsAccepted(Vec<String>),
    /// The peer refused our new contents (their sections are rejected in the remote answer).
    ContentsRejected(Vec<String>),
    /// The peer removed contents (video off): stop their media.
    ContentsRemoved(Vec<String>),
    /// The call is over.
    Ended {
        /// The XEP-0166 reason.
        reason: Reason,
        /// Its text, if any.
        text: Option<String>,
        /// Who ended it.
        by: EndedBy,
    },
    /// Something was wrong but the call carries on.
    Warning(String),
}

/// Where a call is, for display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallState {
    /// Outgoing: proposed, no device took it yet.
    Proposing,
    /// Incoming: ringing here, waiting for the person.
    Ringing,
    /// Accepted on one side, session being set up.
    Connecting,
    /// Both sides accepted.
    Active,
    /// Over.
    Ended,
}

/// The call's phase; each holds only what is valid in it.
#[derive(Debug)]
enum Phase {
    /// Outgoing: `<propose/>` sent to the bare JID.
    Proposed,
    /// Outgoing: a device proceeded or we called a full JID; `session-initiate` sent once the
    /// local offer is there.
    Initiating { sent: bool },
    /// Incoming proposal ringing here.
    ProposeReceived,
    /// Incoming: we proceeded; waiting for the caller's `session-initiate`.
    AwaitingInitiate,
    /// Incoming: `session-initiate` received; `session-accept` goes once the person accepted
    /// and the local answer is there.
    InitiateReceived { accepted: bool },
    /// Both sides accepted.
    Active,
    /// Over.
    Ended,
}

/// What an outstanding IQ of ours was.
#[derive(Debug, Clone)]
enum IqKind {
    SessionInitiate,
    SessionAccept,
    SessionTerminate,
    TransportInfo,
    SessionInfo,
    ContentAdd(Vec<String>),
    ContentAnswer,
    ContentRemove,
}

/// One Jingle call. See the module docs for the contract.
#[derive(Debug)]
pub struct JingleCall {
    config: CallConfig,
    sid: String,
    role: Creator,
    /// The peer's bare JID (proposals) or full JID (the session).
    peer: String,
    /// The peer device of the session, once known.
    device: Option<String>,
    /// XEP-0353 was used (send `<finish/>` at the end).
    jmi: bool,
    phase: Phase,
    /// Our latest local description.
    local: Option<SessionDescription>,
    /// The peer's contents, in media section order, and its BUNDLE group.
    remote: JingleMedia,
    /// A remote description was handed to the engine (candidates may follow).
    remote_described: bool,
    /// Remote candidates that came before their description.
    early_remote: Vec<TrickleCandidate>,
    /// Our candidates gathered before the session element could carry them: (mid, line).
    early_local: Vec<(String, String)>,
    /// Content names the peer added that our next local description answers.
    remote_adds: Vec<String>,
    /// Remote description version (o= line).
    version: u64,
    ring_deadline: Option<Instant>,
    iqs: HashMap<String, (IqKind, Instant)>,
    next_id: u64,
    transmit: Vec<Outgoing>,
    events: Vec<CallEvent>,
    rang: bool,
}

fn bare(jid: &str) -> &str {
    jid.split('/').next().unwrap_or(jid)
}

fn reason(reason: Reason) -> ReasonText {
    ReasonText { reason, text: None }
}

impl JingleCall {
    fn new(config: CallConfig, sid: String, role: Creator, peer: String) -> Self {
        JingleCall {
            config,
            sid,
            role,
            peer,
            device: None,
            jmi: false,
            phase: Phase::Ended,
            local: None,
            remote: JingleMedia {
                contents: Vec::new(),
                bundle: None,
            },
            remote_described: false,
            early_remote: Vec::new(),
            early_local: Vec::new(),
            remote_adds: Vec::new(),
            version: 0,
            ring_deadline: None,
            iqs: HashMap::new(),
            next_id: 0,
            transmit: Vec::new(),
            events: Vec::new(),
            rang: false,
        }
    }

    // ----- creation -----

    /// Calls a contact's every device (XEP-0353 §3.1): `<propose/>` to its bare JID with
    /// `media` (`audio`, `video`). `sid` must be unique (a UUID v4 is recommended). Give the
    /// local offer with [`JingleCall::set_local_description`] as soon as it exists (while it
    /// rings, to save setup time).
    pub fn propose(
        config: CallConfig,
        now: Instant,
        sid: impl Into<String>,
        peer_bare: &str,
        media: &[&str],
    ) -> Self {
        let mut call = JingleCall::new(
            config,
            sid.into(),
            Creator::Initiator,
            bare(peer_bare).into(),
        );
        call.jmi = true;
        call.phase = Phase::Proposed;
        call.ring_deadline = Some(now + call.config.ring_timeout);
        let propose = JingleMessage::Propose {
            id: call.sid.clone(),
            media: media.iter().map(|m| (*m).to_owned()).collect(),
        };
        let to = call.peer.clone();
        call.send_message(&to, &propose);
        call
    }

    /// Calls one device directly (a contact without XEP-0353): `session-initiate` to
    /// `peer_full` once the local offer is given.
    pub fn initiate(
        config: CallConfig,
        now: Instant,
        sid: impl Into<String>,
        peer_full: &str,
    ) -> Self {
        let mut call = JingleCall::new(config, sid.into(), Creator::Initiator, peer_full.into());
        call.device = Some(peer_full.to_owned());
        call.phase = Phase::Initiating { sent: false };
        call.ring_deadline = Some(now + call.config.ring_timeout);
        call
    }

    /// A `<propose/>` received from `from` (a full JID). Rings here: [`CallEvent::Incoming`];
    /// a known caller also hears that we ring (XEP-0353 `<ringing/>`). A stranger (`known`
    /// false) is told nothing until the person accepts.
    pub fn incoming_proposal(
        config: CallConfig,
        now: Instant,
        from: &str,
        id: &str,
        media: Vec<String>,
        known: bool,
    ) -> Self {
        let mut call = JingleCall::new(config, id.into(), Creator::Responder, bare(from).into());
        call.jmi = true;
        call.device = Some(from.to_owned());
        call.phase = Phase::ProposeReceived;
        call.ring_deadline = Some(now + call.config.ring_timeout);
        call.events.push(CallEvent::Incoming {
            from: from.to_owned(),
            media,
            known,
        });
        if known {
            call.send_message(from, &JingleMessage::Ringing { id: id.to_owned() });
        }
        call
    }

    /// A `session-initiate` received without a proposal (or whose proposal this device did
    /// not see). It is acknowledged; if it cannot be a call (unknown transport, no
    /// fingerprint...) the session is terminated with the matching reason at once.
    pub fn incoming_session(
        config: CallConfig,
        now: Instant,
        from: &str,
        iq_id: &str,
        jingle: Jingle,
        known: bool,
    ) -> Self {
        let mut call = JingleCall::new(config, jingle.sid.clone(), Creator::Responder, from.into());
        call.device = Some(from.to_owned());
        call.ack(from, iq_id);
        call.phase = Phase::InitiateReceived { accepted: false };
        call.ring_deadline = Some(now + call.config.ring_timeout);
        let media: Vec<String> = jingle
            .contents
            .iter()
            .filter_map(|c| c.description.as_ref().map(|d| d.media.clone()))
            .collect();
        if call.take_offer(now, &jingle) {
            call.events.push(CallEvent::Incoming {
                from: from.to_owned(),
                media,
                known,
            });
            if known {
                call.send_info(now, SessionInfo::Ringing);
            }
        }
        call
    }

    // ----- getters -----

    /// The session id (also the XEP-0353 id).
    pub fn sid(&self) -> &str {
        &self.sid
    }

    /// Whether we initiated the session.
    pub fn role(&self) -> &Creator {
        &self.role
    }

    /// The peer device of the session, once known.
    pub fn device(&self) -> Option<&str> {
        self.device.as_deref()
    }

    /// Whether the IQ with this id is one of this call's, still unanswered (to route a
    /// [`crate::CallSignal::IqResult`] or [`crate::CallSignal::IqError`]).
    pub fn owns_iq(&self, id: &str) -> bool {
        self.iqs.contains_key(id)
    }

    /// Where the call is.
    pub fn state(&self) -> CallState {
        match self.phase {
            Phase::Proposed => CallState::Proposing,
            // Calling one device directly: it rings until the local offer has gone out.
            Phase::Initiating { sent: false } if !self.jmi => CallState::Proposing,
            Phase::ProposeReceived | Phase::InitiateReceived { accepted: false } => {
                CallState::Ringing
            }
            Phase::Initiating { .. }
            | Phase::AwaitingInitiate
            | Phase::InitiateReceived { accepted: true } => CallState::Connecting,
            Phase::Active => CallState::Active,
            Phase::Ended => CallState::Ended,
        }
    }

    // ----- poll_* -----

    /// The next stanza to send.
    pub fn poll_transmit(&mut self) -> Option<Outgoing> {
        (!self.transmit.is_empty()).then(|| self.transmit.remove(0))
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<CallEvent> {
        (!self.events.is_empty()).then(|| self.events.remove(0))
    }

    /// When [`JingleCall::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let iq = self.iqs.values().map(|(_, at)| *at).min();
        [iq, self.ring_deadline].into_iter().flatten().min()
    }

    // ----- commands -----

    /// The person takes the incoming call. With a proposal: `<proceed/>` to the caller's
    /// device and `<accept/>` to our own bare JID (older clients stop ringing on it; newer
    /// ones on the carbon of the proceed). With a session: `session-accept` as soon as the
    /// local answer is there.
    pub fn accept(&mut self, now: Instant) -> Result<(), JingleError> {
        match self.phase {
            Phase::ProposeReceived => {
                let device = self.device.clone().unwrap_or_else(|| self.peer.clone());
                let own = bare(&self.config.local).to_owned();
                let id = self.sid.clone();
                self.send_message(&own, &JingleMessage::Accept { id: id.clone() });
                self.send_message(&device, &JingleMessage::Proceed { id });
                self.phase = Phase::AwaitingInitiate;
                // The caller now has until the IQ timeout to send session-initiate.
                self.ring_deadline = Some(now + self.config.iq_timeout);
                Ok(())
            }
            Phase::InitiateReceived { .. } => {
                self.phase = Phase::InitiateReceived { accepted: true };
                self.ring_deadline = None;
                self.send_accept_if_ready(now);
                Ok(())
            }
            _ => Err(JingleError::OutOfOrder("no incoming call to accept".into())),
        }
    }

    /// The person declines the incoming call (`reason`: usually `decline` or `busy`).
    pub fn reject(&mut self, now: Instant, why: Reason) -> Result<(), JingleError> {
        match self.phase {
            Phase::ProposeReceived => {
                let device = self.device.clone().unwrap_or_else(|| self.peer.clone());
                let reject = JingleMessage::Reject {
                    id: self.sid.clone(),
                    reason: Some(reason(why.clone())),
                };
                self.send_message(&device, &reject);
                self.end(why, EndedBy::Us);
                Ok(())
            }
            Phase::InitiateReceived { .. } | Phase::AwaitingInitiate => {
                self.terminate(now, why, EndedBy::Us);
                Ok(())
            }
            _ => Err(JingleError::OutOfOrder("no incoming call to reject".into())),
        }
    }

    /// Ends the call from our side, whatever its state: retracts a proposal, cancels an
    /// unanswered session, or terminates an active one with `success`.
    pub fn hangup(&mut self, now: Instant) {
        match self.phase {
            Phase::Proposed | Phase::Initiating { sent: false } if self.jmi => {
                let retract = JingleMessage::Retract {
                    id: self.sid.clone(),
                    reason: Some(reason(Reason::Cancel)),
                };
                let to = self.peer.clone();
                self.send_message(&to, &retract);
                self.end(Reason::Cancel, EndedBy::Us);
            }
            Phase::Proposed | Phase::Initiating { sent: false } => {
                self.end(Reason::Cancel, EndedBy::Us)
            }
            Phase::Initiating { sent: true } | Phase::AwaitingInitiate => {
                self.terminate(now, Reason::Cancel, EndedBy::Us)
            }
            Phase::ProposeReceived | Phase::InitiateReceived { .. } => {
                let _ = self.reject(now, Reason::Decline);
            }
            Phase::Active => self.terminate(now, Reason::Success, EndedBy::Us),
            Phase::Ended => {}
        }
    }

    /// Ends the call because the media failed here: `connectivity-error` when ICE failed,
    /// `security-error` when DTLS did (a fingerprint mismatch), `media-error`,
    /// `failed-application`...
    pub fn fail(&mut self, now: Instant, why: Reason) {
        match self.phase {
            Phase::Ended => {}
            Phase::Proposed | Phase::ProposeReceived => {
                self.hangup(now);
            }
            _ => self.terminate(now, why, EndedBy::Us),
        }
    }

    /// Tells the peer we hold (true) or resume (false) the call (XEP-0167 §7.1). The media
    /// engine changes directions itself.
    pub fn hold(&mut self, now: Instant, on: bool) -> Result<(), JingleError> {
        self.require_active()?;
        self.send_info(
            now,
            if on {
                SessionInfo::Hold
            } else {
                SessionInfo::Unhold
            },
        );
        Ok(())
    }

    /// Tells the peer we muted (true) or unmuted one content, or all (`None`) (XEP-0167 §7.3).
    pub fn mute(
        &mut self,
        now: Instant,
        on: bool,
        content: Option<&str>,
    ) -> Result<(), JingleError> {
        self.require_active()?;
        let creator = content.map(|_| self.role.clone());
        let name = content.map(str::to_owned);
        self.send_info(
            now,
            if on {
                SessionInfo::Mute { creator, name }
            } else {
                SessionInfo::Unmute { creator, name }
            },
        );
        Ok(())
    }

    /// Removes contents (video off, XEP-0166 §6.8 `content-remove`). The media engine stops
    /// them itself; no answer is expected.
    pub fn remove_content(&mut self, now: Instant, names: &[&str]) -> Result<(), JingleError> {
        self.require_active()?;
        let mut contents = Vec::new();
        for name in names {
            let content = self
                .remote
                .contents
                .iter()
                .find(|c| c.name == *name)
                .ok_or_else(|| JingleError::UnknownContent((*name).to_owned()))?;
            contents.push(Content::bare(content.creator.clone(), content.name.clone()));
        }
        self.remote
            .contents
            .retain(|c| !names.contains(&c.name.as_str()));
        let mut jingle = self.jingle(Action::ContentRemove);
        jingle.contents = contents;
        self.send_jingle(now, jingle, IqKind::ContentRemove);
        Ok(())
    }

    /// The media engine's local description: our offer (outgoing call), our answer (incoming
    /// call, or after the peer's `content-add`), or a new offer with more sections (video on:
    /// sent as `content-add`).
    pub fn set_local_description(
        &mut self,
        now: Instant,
        sdp: SessionDescription,
    ) -> Result<(), JingleError> {
        match self.phase {
            Phase::Proposed | Phase::Initiating { sent: false } => {
                // Validate now: a local offer Jingle cannot carry is a bug to report at once.
                sdp_to_jingle(&sdp, &self.role, &Creator::Initiator)?;
                self.local = Some(sdp);
                self.send_initiate_if_ready(now);
                Ok(())
            }
            Phase::InitiateReceived { .. } => {
                sdp_to_jingle(&sdp, &self.role, &Creator::Initiator)?;
                self.local = Some(sdp);
                self.send_accept_if_ready(now);
                Ok(())
            }
            Phase::Active => self.renegotiate(now, sdp),
            _ => Err(JingleError::OutOfOrder("no session to describe yet".into())),
        }
    }

    /// A candidate the media engine gathered for section `mid` (`candidate:...`). Sent as
    /// `transport-info` (XEP-0176 §6.2), or carried in the session element if that is not
    /// sent yet. Candidates ICE-UDP cannot carry (TCP, mDNS names) are dropped.
    pub fn add_local_candidate(
        &mut self,
        now: Instant,
        mid: &str,
        candidate: &str,
    ) -> Result<(), JingleError> {
        let parsed: lyrebird_sdp::Candidate = candidate.parse()?;
        if candidate_from_sdp(&parsed, mid).is_none() {
            return Ok(());
        }
        let sent = match self.phase {
            Phase::Initiating { sent } => sent,
            Phase::Active => true,
            Phase::Ended => return Ok(()),
            _ => false,
        };
        if !sent {
            self.early_local
                .push((mid.to_owned(), candidate.to_owned()));
            return Ok(());
        }
        self.send_transport_info(now, mid, candidate)
    }

    /// Our outgoing proposal crossed one from the same peer (each called the other at once).
    /// The proposal with the lower id wins on both sides. Returns true if ours wins (ignore
    /// theirs: it will be retracted); false if ours lost, in which case it is retracted here
    /// (reason `expired`) and the engine should take the peer's proposal and accept it.
    pub fn resolve_crossed_proposal(&mut self, their_id: &str) -> bool {
        if !matches!(self.phase, Phase::Proposed) || self.sid.as_str() < their_id {
            return true;
        }
        let retract = JingleMessage::Retract {
            id: self.sid.clone(),
            reason: Some(reason(Reason::Expired)),
        };
        let to = self.peer.clone();
        self.send_message(&to, &retract);
        self.end(Reason::Expired, EndedBy::Us);
        false
    }

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
        let expired: Vec<String> = self
            .iqs
            .iter()
            .filter(|(_, (_, at))| now >= *at)
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            if let Some((kind, _)) = self.iqs.remove(&id) {
                self.iq_failed(now, kind, EndedBy::Timeout);
            }
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

    // ----- internals -----

    fn require_active(&self) -> Result<(), JingleError> {
        match self.phase {
            Phase::Active => Ok(()),
            _ => Err(JingleError::OutOfOrder("the call is not active".into())),
        }
    }

    fn warn(&mut self, text: String) {
        debug!(%text, sid = %self.sid, "jingle call warning");
        self.events.push(CallEvent::Warning(text));
    }

    fn new_id(&mut self) -> String {
        self.next_id += 1;
        format!("{}-{}", self.sid, self.next_id)
    }

    fn jingle(&self, action: Action) -> Jingle {
        let mut jingle = Jingle::new(action, self.sid.clone());
        match action_attr(&jingle.action) {
            Some(Creator::Initiator) => jingle.initiator = Some(self.config.local.clone()),
            Some(Creator::Responder) => jingle.responder = Some(self.config.local.clone()),
            None => {}
        }
        jingle
    }

    fn send_message(&mut self, to: &str, message: &JingleMessage) {
        let id = self.new_id();
        self.transmit.push(Outgoing {
            to: to.to_owned(),
            xml: message.to_stanza(to, &id),
        });
    }

    fn send_jingle(&mut self, now: Instant, jingle: Jingle, kind: IqKind) {
        let Some(to) = self.device.clone() else {
            return;
        };
        let id = self.new_id();
        let xml = Xml::ns("iq", ns::CLIENT)
            .attr("type", "set")
            .attr("to", &to)
            .attr("id", &id)
            .child(jingle.to_xml())
            .build();
        self.iqs.insert(id, (kind, now + self.config.iq_timeout));
        self.transmit.push(Outgoing { to, xml });
    }

    fn ack(&mut self, to: &str, iq_id: &str) {
        self.transmit.push(Outgoing {
            to: to.to_owned(),
            xml: iq_result(to, iq_id),
        });
    }

    fn send_info(&mut self, now: Instant, info: SessionInfo) {
        let mut jingle = self.jingle(Action::SessionInfo);
        jingle.info.push(info);
        self.send_jingle(now, jingle, IqKind::SessionInfo);
    }

    fn send_transport_info(
        &mut self,
        now: Instant,
        mid: &str,
        candidate: &str,
    ) -> Result<(), JingleError> {
        let credentials = self.local.as_ref().and_then(|sdp| {
            let (index, _) = sdp.media_by_mid(mid)?;
            sdp.ice_credentials(index)
                .map(|(u, p)| (u.to_owned(), p.to_owned()))
        });
        let creator = self.creator_of(mid);
        let content = super::sdp::transport_info_content(
            &creator,
            mid,
            credentials.as_ref().map(|(u, _)| u.as_str()),
            credentials.as_ref().map(|(_, p)| p.as_str()),
            candidate,
        )?;
        if let Some(content) = content {
            let mut jingle = self.jingle(Action::TransportInfo);
            jingle.contents.push(content);
            self.send_jingle(now, jingle, IqKind::TransportInfo);
        }
        Ok(())
    }

    /// The creator of content `mid`: the peer's record of it, else the session initiator.
    fn creator_of(&self, mid: &str) -> Creator {
        self.remote
            .contents
            .iter()
            .find(|c| c.name == mid)
            .map(|c| c.creator.clone())
            .unwrap_or(Creator::Initiator)
    }

    /// Our contents from the local description, with the candidates gathered so far.
    fn local_media(&mut self, creator: &Creator) -> Result<JingleMedia, JingleError> {
        let Some(sdp) = &self.local else {
            return Err(JingleError::OutOfOrder("no local description".into()));
        };
        let mut media = sdp_to_jingle(sdp, &self.role, creator)?;
        for (mid, line) in self.early_local.drain(..) {
            let Ok(parsed) = line.parse::<lyrebird_sdp::Candidate>() else {
                continue;
            };
            let Some(candidate) = candidate_from_sdp(&parsed, &mid) else {
                continue;
            };
            if let Some(transport) = media
                .contents
                .iter_mut()
                .find(|c| c.name == mid)
                .and_then(|c| c.transport.as_mut())
                && !transport.candidates.contains(&candidate)
            {
                transport.candidates.push(candidate);
            }
        }
        Ok(media)
    }

    fn send_initiate_if_ready(&mut self, now: Instant) {
        if !matches!(self.phase, Phase::Initiating { sent: false }) || self.local.is_none() {
            return;
        }
        let media = match self.local_media(&Creator::Initiator) {
            Ok(m) => m,
            Err(e) => {
                self.warn(format!("local offer not usable: {e}"));
                return self.end(e.reason(), EndedBy::Us);
            }
        };
        let mut jingle = self.jingle(Action::SessionInitiate);
        jingle.contents = media.contents;
        jingle.bundle = media.bundle;
        self.phase = Phase::Initiating { sent: true };
        self.send_jingle(now, jingle, IqKind::SessionInitiate);
    }

    fn send_accept_if_ready(&mut self, now: Instant) {
        if !matches!(self.phase, Phase::InitiateReceived { accepted: true }) || self.local.is_none()
        {
            return;
        }
        let media = match self.local_media(&Creator::Initiator) {
            Ok(m) => m,
            Err(e) => {
                self.warn(format!("local answer not usable: {e}"));
                return self.terminate(now, e.reason(), EndedBy::Us);
            }
        };
        let mut jingle = self.jingle(Action::SessionAccept);
        jingle.contents = media.contents;
        jingle.bundle = media.bundle;
        self.send_jingle(now, jingle, IqKind::SessionAccept);
        self.activate();
    }

    fn activate(&mut self) {
        self.phase = Phase::Active;
        self.ring_deadline = None;
        self.events.push(CallEvent::Accepted);
    }

    /// Reads the peer's session-initiate into a remote offer. False (and the session
    /// terminated) if it cannot be a call.
    fn take_offer(&mut self, now: Instant, jingle: &Jingle) -> bool {
        let media = JingleMedia::of(jingle);
        self.version += 1;
        match jingle_to_sdp(&media, &Creator::Initiator, &self.sid, self.version, None) {
            Ok(sdp) => {
                self.remote = media;
                self.events.push(CallEvent::RemoteOffer(sdp));
                self.remote_described = true;
                self.flush_early_remote();
                true
            }
            Err(e) => {
                self.warn(format!("session-initiate refused: {e}"));
                self.terminate(now, e.reason(), EndedBy::Us);
                false
            }
        }
    }

    fn take_answer(&mut self, now: Instant, jingle: &Jingle) {
        let media = JingleMedia::of(jingle);
        self.version += 1;
        match jingle_to_sdp(
            &media,
            &Creator::Responder,
            &self.sid,
            self.version,
            self.local.as_ref(),
        ) {
            Ok(sdp) => {
                self.remote = media;
                self.events.push(CallEvent::RemoteAnswer(sdp));
                self.remote_described = true;
                self.flush_early_remote();
                self.activate();
            }
            Err(e) => {
                self.warn(format!("session-accept refused: {e}"));
                self.terminate(now, e.reason(), EndedBy::Us);
            }
        }
    }

    fn flush_early_remote(&mut self) {
        for candidate in std::mem::take(&mut self.early_remote) {
            self.events.push(CallEvent::RemoteCandidate(candidate));
        }
    }

    /// The peer added contents: a new remote offer with every content, old and new.
    fn take_content_add(&mut self, _now: Instant, jingle: Jingle) {
        let peer = other(&self.role);
        let mut media = self.remote.clone();
        for content in jingle.contents {
            if media.contents.iter().any(|c| c.name == content.name) {
                self.warn(format!(
                    "content-add of an existing content {}",
                    content.name
                ));
                continue;
            }
            self.remote_adds.push(content.name.clone());
            media.contents.push(content);
        }
        if let Some(bundle) = jingle.bundle {
            media.bundle = Some(bundle);
        }
        self.version += 1;
        match jingle_to_sdp(&media, &peer, &self.sid, self.version, None) {
            Ok(sdp) => {
                self.remote = media;
                self.events.push(CallEvent::RemoteOffer(sdp));
            }
            Err(e) => {
                self.warn(format!("content-add refused: {e}"));
                let mut reject = self.jingle(Action::ContentReject);
                reject.contents = std::mem::take(&mut self.remote_adds)
                    .into_iter()
                    .map(|n| Content::bare(peer.clone(), n))
                    .collect();
                reject.reason = Some(reason(e.reason()));
                self.send_jingle(_now, reject, IqKind::ContentAnswer);
            }
        }
    }

    /// The peer changed who sends in contents (XEP-0166 §6.6 `content-modify`, e.g. its
    /// camera off without removing the content): a new remote offer with the new directions,
    /// which the media engine answers (that answer needs no Jingle message).
    fn take_content_modify(&mut self, jingle: Jingle) {
        let mut changed = false;
        for modified in &jingle.contents {
            match self
                .remote
                .contents
                .iter_mut()
                .find(|c| c.name == modified.name)
            {
                Some(content) => {
                    changed |= content.senders != modified.senders;
                    content.senders = modified.senders.clone();
                }
                None => self.warn(format!(
                    "content-modify of an unknown content {}",
                    modified.name
                )),
            }
        }
        if !changed {
            return;
        }
        self.version += 1;
        let peer = other(&self.role);
        match jingle_to_sdp(&self.remote, &peer, &self.sid, self.version, None) {
            Ok(sdp) => self.events.push(CallEvent::RemoteOffer(sdp)),
            Err(e) => self.warn(format!("content-modify not usable: {e}")),
        }
    }

    /// Our content-add was accepted (with the peer's transports) or rejected.
    fn take_content_answer(&mut self, jingle: Jingle, accepted: bool) {
        let names: Vec<String> = jingle.contents.iter().map(|c| c.name.clone()).collect();
        self.iqs
            .retain(|_, (k, _)| !matches!(k, IqKind::ContentAdd(_)));
        if accepted {
            for content in jingle.contents {
                self.remote.contents.retain(|c| c.name != content.name);
                self.remote.contents.push(content);
            }
            if jingle.bundle.is_some() {
                self.remote.bundle = jingle.bundle;
            }
        }
        self.describe_remote_answer();
        self.events.push(if accepted {
            CallEvent::ContentsAccepted(names)
        } else {
            CallEvent::ContentsRejected(names)
        });
    }

    /// A remote answer for our latest local offer, from the peer's contents (sections it did
    /// not accept are written rejected).
    fn describe_remote_answer(&mut self) {
        self.version += 1;
        let peer = other(&self.role);
        match jingle_to_sdp(
            &self.remote,
            &peer,
            &self.sid,
            self.version,
            self.local.as_ref(),
        ) {
            Ok(sdp) => self.events.push(CallEvent::RemoteAnswer(sdp)),
            Err(e) => self.warn(format!("no remote answer for the new contents: {e}")),
        }
    }

    /// A new local description while active: the answer to the peer's content-add, or our
    /// own offer of new contents.
    fn renegotiate(&mut self, now: Instant, sdp: SessionDescription) -> Result<(), JingleError> {
        let ours = sdp_to_jingle(&sdp, &self.role, &self.role)?;
        self.local = Some(sdp);
        if !self.remote_adds.is_empty() {
            // Our answer: accept what it kept, reject what it refused (XEP-0166 §6.5).
            let peer = other(&self.role);
            let adds = std::mem::take(&mut self.remote_adds);
            let (accepted, rejected): (Vec<String>, Vec<String>) = adds
                .into_iter()
                .partition(|n| ours.contents.iter().any(|c| &c.name == n));
            if !accepted.is_empty() {
                let mut jingle = self.jingle(Action::ContentAccept);
                jingle.contents = ours
                    .contents
                    .iter()
                    .filter(|c| accepted.contains(&c.name))
                    .cloned()
                    .map(|mut c| {
                        c.creator = peer.clone();
                        c
                    })
                    .collect();
                self.send_jingle(now, jingle, IqKind::ContentAnswer);
            }
            if !rejected.is_empty() {
                self.remote.contents.retain(|c| !rejected.contains(&c.name));
                let mut jingle = self.jingle(Action::ContentReject);
                jingle.contents = rejected
                    .iter()
                    .map(|n| Content::bare(peer.clone(), n.clone()))
                    .collect();
                jingle.reason = Some(reason(Reason::Decline));
                self.send_jingle(now, jingle, IqKind::ContentAnswer);
            }
            return Ok(());
        }
        let new: Vec<Content> = ours
            .contents
            .into_iter()
            .filter(|c| !self.remote.contents.iter().any(|r| r.name == c.name))
            .collect();
        if new.is_empty() {
            return Ok(()); // nothing Jingle needs to say (a local direction change, ...)
        }
        let names: Vec<String> = new.iter().map(|c| c.name.clone()).collect();
        let mut jingle = self.jingle(Action::ContentAdd);
        jingle.contents = new;
        jingle.bundle = ours.bundle;
        self.send_jingle(now, jingle, IqKind::ContentAdd(names));
        Ok(())
    }

    fn iq_failed(&mut self, now: Instant, kind: IqKind, by: EndedBy) {
        match kind {
            IqKind::SessionInitiate | IqKind::SessionAccept => {
                let why = if by == EndedBy::Timeout {
                    Reason::Timeout
                } else {
                    Reason::GeneralError
                };
                if by == EndedBy::Timeout {
                    // The peer may have it after all: tell it the session is over.
                    self.terminate(now, why, by);
                } else {
                    self.end(why, by);
                }
            }
            IqKind::ContentAdd(names) => {
                self.describe_remote_answer();
                self.events.push(CallEvent::ContentsRejected(names));
            }
            IqKind::SessionTerminate => {}
            IqKind::TransportInfo
            | IqKind::SessionInfo
            | IqKind::ContentAnswer
            | IqKind::ContentRemove => {
                self.warn(format!("the peer did not take a {kind:?}: {by:?}"));
            }
        }
    }

    /// Sends session-terminate (XEP-0166 §6.7) and ends.
    fn terminate(&mut self, now: Instant, why: Reason, by: EndedBy) {
        if matches!(self.phase, Phase::Ended) {
            return;
        }
        let mut jingle = self.jingle(Action::SessionTerminate);
        jingle.reason = Some(reason(why.clone()));
        self.send_jingle(now, jingle, IqKind::SessionTerminate);
        self.end(why, by);
    }

    fn end(&mut self, why: Reason, by: EndedBy) {
        self.end_with(reason(why), by);
    }

    fn end_with(&mut self, why: ReasonText, by: EndedBy) {
        if matches!(self.phase, Phase::Ended) {
            return;
        }
        let session_started = matches!(
            self.phase,
            Phase::Initiating { sent: true } | Phase::InitiateReceived { .. } | Phase::Active
        );
        self.phase = Phase::Ended;
        self.ring_deadline = None;
        // XEP-0353 §3.6: the end of a session that message initiation started is recorded
        // with <finish/> (by the side that ended it).
        if self.jmi && session_started && by == EndedBy::Us {
            let to = bare(&self.peer).to_owned();
            let finish = JingleMessage::Finish {
                id: self.sid.clone(),
                reason: Some(why.clone()),
            };
            self.send_message(&to, &finish);
        }
        // Outstanding IQs no longer matter, except that our terminate gets its answer.
        self.iqs
            .retain(|_, (k, _)| matches!(k, IqKind::SessionTerminate));
        debug!(sid = %self.sid, reason = ?why.reason, ?by, "jingle call ended");
        self.events.push(CallEvent::Ended {
            reason: why.reason,
            text: why.text,
            by,
        });
    }
}

fn other(role: &Creator) -> Creator {
    match role {
        Creator::Initiator => Creator::Responder,
        Creator::Responder => Creator::Initiator,
    }
}

/// Which attribute (`initiator` or `responder`) an action carries (XEP-0166 §7.1).
fn action_attr(action: &Action) -> Option<Creator> {
    match action {
        Action::SessionInitiate => Some(Creator::Initiator),
        Action::SessionAccept => Some(Creator::Responder),
        _ => None,
    }
}

/// `<iq type='result'/>` acknowledging a Jingle IQ (XEP-0166 §6.3.2).
pub fn iq_result(to: &str, id: &str) -> String {
    Xml::ns("iq", ns::CLIENT)
        .attr("type", "result")
        .attr("to", to)
        .attr("id", id)
        .build()
}

/// An IQ error with a stanza condition and an optional XEP-0166 §10 Jingle condition
/// (`unknown-session`, `out-of-order`, `tie-break`, `unsupported-info`). The engine answers
/// a Jingle IQ for a session it does not have with `item-not-found` + `unknown-session`, and
/// a malformed one with `bad-request`.
pub fn iq_error(
    to: &str,
    id: &str,
    kind: &str,
    condition: &'static str,
    jingle_condition: Option<&'static str>,
) -> String {
    let mut error = Xml::new("error")
        .attr("type", kind)
        .child(Xml::ns(condition, ns::STANZA_ERRORS));
    if let Some(c) = jingle_condition {
        error = error.child(Xml::ns(c, ns::JINGLE_ERRORS));
    }
    Xml::ns("iq", ns::CLIENT)
        .attr("type", "error")
        .attr("to", to)
        .attr("id", id)
        .child(error)
        .build()
}

/// The answer to a `session-initiate` that did not read as a call (an unknown transport or
/// application, no fingerprint, ...): the IQ is acknowledged and the session terminated with
/// the matching reason (XEP-0166 §6.3.2, "ack, then terminate"), so the caller learns why.
pub fn refuse_session_initiate(
    local: &str,
    from: &str,
    iq_id: &str,
    sid: &str,
    error: &JingleError,
) -> Vec<Outgoing> {
    let mut terminate = Jingle::new(Action::SessionTerminate, sid);
    terminate.reason = Some(ReasonText {
        reason: error.reason(),
        text: Some(error.to_string()),
    });
    let terminate = Xml::ns("iq", ns::CLIENT)
        .attr("type", "set")
        .attr("to", from)
        .attr("id", &format!("{sid}-refused"))
        .child(terminate.to_xml())
        .build();
    debug!(%local, %sid, %error, "session-initiate refused");
    vec![
        Outgoing {
            to: from.to_owned(),
            xml: iq_result(from, iq_id),
        },
        Outgoing {
            to: from.to_owned(),
            xml: terminate,
        },
    ]
}

/// XEP-0166 §7.2.16 tie-break between two `session-initiate`s crossing between the same
/// parties: the one with the lower sid wins. True if `ours` wins, in which case the engine
/// answers theirs with `iq_error(.., "cancel", "conflict", Some("tie-break"))`.
pub fn session_initiate_wins(ours: &str, theirs: &str) -> bool {
    ours < theirs
}
