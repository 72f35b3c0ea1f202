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
//!
//! Files: this one holds the types, creation and the person's commands; `remote.rs` what
//! arrives (the `handle_*` entry points); `negotiation.rs` the offer/answer and session
//! bookkeeping both share; `wire.rs` the IQ answers the engine also sends itself.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use lyrebird_sdp::SessionDescription;

use crate::jingle::element::{Action, Content, Creator, Jingle, Reason, ReasonText, SessionInfo};
use crate::jingle::error::JingleError;
use crate::jingle::message::JingleMessage;
use crate::jingle::sdp::{JingleMedia, TrickleCandidate, candidate_from_sdp, sdp_to_jingle};

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
}

mod negotiation;
mod remote;
mod wire;

pub use wire::{iq_error, iq_result, refuse_session_initiate, session_initiate_wins};
