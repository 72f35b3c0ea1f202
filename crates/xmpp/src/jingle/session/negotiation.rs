//! Offer/answer and session bookkeeping shared by the commands and what arrives: sending our
//! description as `session-initiate` / `session-accept` / `content-add` / `content-accept`,
//! taking the peer's as remote offers and answers, and ending.

use std::time::Instant;

use lyrebird_sdp::SessionDescription;
use tracing::debug;

use crate::jingle::element::{Action, Content, Creator, Jingle, Reason, ReasonText, SessionInfo};
use crate::jingle::error::JingleError;
use crate::jingle::message::JingleMessage;
use crate::jingle::sdp::{JingleMedia, candidate_from_sdp, jingle_to_sdp, sdp_to_jingle};
use crate::ns;
use crate::xml::Xml;

use super::wire::iq_result;
use super::{CallEvent, EndedBy, IqKind, JingleCall, Outgoing, Phase, bare, reason};

impl JingleCall {
    pub(super) fn require_active(&self) -> Result<(), JingleError> {
        match self.phase {
            Phase::Active => Ok(()),
            _ => Err(JingleError::OutOfOrder("the call is not active".into())),
        }
    }

    pub(super) fn warn(&mut self, text: String) {
        debug!(%text, sid = %self.sid, "jingle call warning");
        self.events.push(CallEvent::Warning(text));
    }

    pub(super) fn new_id(&mut self) -> String {
        self.next_id += 1;
        format!("{}-{}", self.sid, self.next_id)
    }

    pub(super) fn jingle(&self, action: Action) -> Jingle {
        let mut jingle = Jingle::new(action, self.sid.clone());
        match action_attr(&jingle.action) {
            Some(Creator::Initiator) => jingle.initiator = Some(self.config.local.clone()),
            Some(Creator::Responder) => jingle.responder = Some(self.config.local.clone()),
            None => {}
        }
        jingle
    }

    pub(super) fn send_message(&mut self, to: &str, message: &JingleMessage) {
        let id = self.new_id();
        self.transmit.push(Outgoing {
            to: to.to_owned(),
            xml: message.to_stanza(to, &id),
        });
    }

    pub(super) fn send_jingle(&mut self, now: Instant, jingle: Jingle, kind: IqKind) {
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

    pub(super) fn ack(&mut self, to: &str, iq_id: &str) {
        self.transmit.push(Outgoing {
            to: to.to_owned(),
            xml: iq_result(to, iq_id),
        });
    }

    pub(super) fn send_info(&mut self, now: Instant, info: SessionInfo) {
        let mut jingle = self.jingle(Action::SessionInfo);
        jingle.info.push(info);
        self.send_jingle(now, jingle, IqKind::SessionInfo);
    }

    pub(super) fn send_transport_info(
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
        let content = crate::jingle::sdp::transport_info_content(
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
    pub(super) fn creator_of(&self, mid: &str) -> Creator {
        self.remote
            .contents
            .iter()
            .find(|c| c.name == mid)
            .map(|c| c.creator.clone())
            .unwrap_or(Creator::Initiator)
    }

    /// Our contents from the local description, with the candidates gathered so far.
    pub(super) fn local_media(&mut self, creator: &Creator) -> Result<JingleMedia, JingleError> {
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

    pub(super) fn send_initiate_if_ready(&mut self, now: Instant) {
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

    pub(super) fn send_accept_if_ready(&mut self, now: Instant) {
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

    pub(super) fn activate(&mut self) {
        self.phase = Phase::Active;
        self.ring_deadline = None;
        self.events.push(CallEvent::Accepted);
    }

    /// Reads the peer's session-initiate into a remote offer. False (and the session
    /// terminated) if it cannot be a call.
    pub(super) fn take_offer(&mut self, now: Instant, jingle: &Jingle) -> bool {
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

    pub(super) fn take_answer(&mut self, now: Instant, jingle: &Jingle) {
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

    pub(super) fn flush_early_remote(&mut self) {
        for candidate in std::mem::take(&mut self.early_remote) {
            self.events.push(CallEvent::RemoteCandidate(candidate));
        }
    }

    /// The peer added contents: a new remote offer with every content, old and new.
    pub(super) fn take_content_add(&mut self, _now: Instant, jingle: Jingle) {
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
    pub(super) fn take_content_modify(&mut self, jingle: Jingle) {
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
    pub(super) fn take_content_answer(&mut self, jingle: Jingle, accepted: bool) {
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
    pub(super) fn describe_remote_answer(&mut self) {
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
    pub(super) fn renegotiate(
        &mut self,
        now: Instant,
        sdp: SessionDescription,
    ) -> Result<(), JingleError> {
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

    pub(super) fn iq_failed(&mut self, now: Instant, kind: IqKind, by: EndedBy) {
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
    pub(super) fn terminate(&mut self, now: Instant, why: Reason, by: EndedBy) {
        if matches!(self.phase, Phase::Ended) {
            return;
        }
        let mut jingle = self.jingle(Action::SessionTerminate);
        jingle.reason = Some(reason(why.clone()));
        self.send_jingle(now, jingle, IqKind::SessionTerminate);
        self.end(why, by);
    }

    pub(super) fn end(&mut self, why: Reason, by: EndedBy) {
        self.end_with(reason(why), by);
    }

    pub(super) fn end_with(&mut self, why: ReasonText, by: EndedBy) {
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

pub(super) fn other(role: &Creator) -> Creator {
    match role {
        Creator::Initiator => Creator::Responder,
        Creator::Responder => Creator::Initiator,
    }
}

/// Which attribute (`initiator` or `responder`) an action carries (XEP-0166 §7.1).
pub(super) fn action_attr(action: &Action) -> Option<Creator> {
    match action {
        Action::SessionInitiate => Some(Creator::Initiator),
        Action::SessionAccept => Some(Creator::Responder),
        _ => None,
    }
}
