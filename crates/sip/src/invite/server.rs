//! The server side of an INVITE session (RFC 3261 §13.3, §9.2 CANCEL; RFC 3891 Replaces).
//!
//! ```text
//!  INVITE ──▶ Incoming ──answer(): 2xx──▶ Accepted ──ACK──▶ Confirmed
//!               │  ring(): 180              │ 2xx resent at T1, 2*T1, ... T2 (§13.3.1.4)
//!               │                           │ no ACK in 64*T1: BYE, Failed 408
//!               │ reject() / hangup(): 4xx-6xx      hangup(): BYE once the ACK is in
//!               │ CANCEL: 200, then 487 to the INVITE
//!               ▼
//!             (gone)
//! ```
//!
//! An INVITE with Replaces (RFC 3891 §3) names one of our dialogs by Call-ID and tags, seen
//! from our side: its `to-tag` is our tag and its `from-tag` our peer's. It may replace a
//! confirmed dialog (unless `early-only`: 486) or an early one we started; an incoming early
//! dialog, or no dialog at all, gives 481.

use std::time::{Duration, Instant};

use rand::Rng;
use tracing::debug;

use super::{Confirmed, Phase, Session, SessionTimer, Sessions};
use crate::dialog::{Dialog, without_tag};
use crate::endpoint::{ALLOW, Endpoint, SUPPORTED, sdp_body};
use crate::error::SipError;
use crate::events::{CallId, EndReason, Party, UaEvent};
use crate::message::Message;
use crate::replaces::Replaces;
use crate::timer::{T1, T2, TIMEOUT_64T1};

/// What to do when the ACK of our 2xx arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AfterAck {
    /// The call is confirmed.
    Confirm,
    /// We hung up meanwhile: BYE (§15 allows BYE only after the ACK or its timeout).
    Bye,
}

#[derive(Debug, Clone)]
pub(super) enum Uas {
    /// The INVITE is not answered yet (maybe ringing).
    Incoming {
        /// The INVITE as received.
        invite: Box<Message>,
    },
    /// Our 2xx is sent and resent until the ACK comes.
    Accepted {
        final_2xx: Vec<u8>,
        /// The INVITE's CSeq number, which the ACK repeats.
        invite_seq: u32,
        retransmit_interval: Duration,
        after_ack: AfterAck,
    },
}

impl Uas {
    pub(super) fn ended(&self) -> bool {
        matches!(
            self,
            Uas::Accepted {
                after_ack: AfterAck::Bye,
                ..
            }
        )
    }

    pub(super) fn name(&self) -> &'static str {
        match self {
            Uas::Incoming { .. } => "incoming",
            Uas::Accepted { .. } => "answered",
        }
    }

    pub(super) fn unanswered_invite(&self) -> Option<&Message> {
        match self {
            Uas::Incoming { invite } => Some(invite),
            Uas::Accepted { .. } => None,
        }
    }
}

impl Sessions {
    fn incoming_invite(&self, call: CallId, action: &'static str) -> Result<Message, SipError> {
        let s = self.get(call)?;
        match &s.phase {
            Phase::Server(Uas::Incoming { invite }) => Ok((**invite).clone()),
            _ => Err(super::invalid(s, action)),
        }
    }

    /// A new INVITE (no To tag).
    pub(crate) fn on_new_invite(&mut self, ep: &mut Endpoint, now: Instant, req: Message) {
        if let Some(user) = req.request_uri().and_then(|u| u.user.as_deref())
            && !ep.is_our_user(user)
        {
            ep.reply(now, &req, 404, &[]);
            return;
        }
        if !req.body.is_empty() && req.content_type().as_deref() != Some("application/sdp") {
            ep.reply(now, &req, 415, &[("Accept", "application/sdp".to_owned())]);
            return;
        }
        let (Ok(from), Ok(to), Ok(call_id), Ok(cseq)) =
            (req.from(), req.to(), req.call_id(), req.cseq())
        else {
            return;
        };
        let Some(target) = req.contacts().ok().and_then(|c| c.into_iter().next()) else {
            ep.reply(now, &req, 400, &[]);
            return;
        };
        let replaces = match Replaces::from_header_values(req.header_values("Replaces")) {
            Ok(None) => None,
            Ok(Some(r)) => match self.replaced_call(&r) {
                Ok(call) => Some(call),
                Err(status) => {
                    ep.reply(now, &req, status, &[]);
                    return;
                }
            },
            Err(()) => {
                ep.reply(now, &req, 400, &[]);
                return;
            }
        };
        let route_set: Vec<String> = req
            .record_routes()
            .map(|rs| rs.iter().map(|r| r.to_string()).collect())
            .unwrap_or_default();
        let id = ep.next_handle();
        let dialog = Dialog {
            call_id: call_id.to_owned(),
            local_tag: ep.token(10),
            remote_tag: from.tag().map(str::to_owned),
            local_uri: without_tag(&to),
            remote_uri: without_tag(&from),
            local_seq: ep.rng.random_range(1..10_000),
            remote_seq: Some(cseq.seq),
            remote_target: target.uri,
            route_set,
        };
        ep.reply(now, &req, 100, &[]);
        let sdp = sdp_body(&req);
        self.sessions.insert(
            id,
            Session::new(
                dialog,
                Phase::Server(Uas::Incoming {
                    invite: Box::new(req),
                }),
                false,
            ),
        );
        debug!(call = id, replaces = ?replaces, "incoming call");
        ep.emit(UaEvent::IncomingCall {
            call: CallId(id),
            from: Party::from(&from),
            to: Party::from(&to),
            sdp,
            replaces,
        });
    }

    /// RFC 3891 §3: which call a Replaces names, or the status refusing the INVITE.
    fn replaced_call(&self, replaces: &Replaces) -> Result<CallId, u16> {
        let target = &replaces.target;
        let found = self.sessions.iter().find(|(_, s)| {
            s.dialog.call_id == target.call_id
                && s.dialog.local_tag == target.to_tag
                && s.dialog.remote_tag.as_deref() == Some(target.from_tag.as_str())
        });
        let Some((id, s)) = found else {
            return Err(481);
        };
        // A dialog is confirmed from its 2xx on, ACKed or not (§12.1).
        let confirmed = matches!(
            s.phase,
            Phase::Confirmed(_) | Phase::Server(Uas::Accepted { .. })
        );
        match &s.phase {
            _ if s.ended() => Err(481),
            _ if confirmed && replaces.early_only => Err(486),
            _ if confirmed => Ok(CallId(*id)),
            Phase::Client(_) => Ok(CallId(*id)),
            // An early dialog we did not start.
            _ => Err(481),
        }
    }

    /// Sends 180 Ringing.
    pub(crate) fn ring(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        call: CallId,
    ) -> Result<(), SipError> {
        let invite = self.incoming_invite(call, "ring")?;
        let s = self.get(call)?;
        let mut resp = ep.response_to(&invite, 180, "Ringing", Some(&s.dialog.local_tag));
        resp.push_header("Contact", ep.contact());
        ep.respond(now, &invite, resp);
        Ok(())
    }

    /// Answers with 200 OK and our SDP; the 2xx is resent until the ACK (§13.3.1.4).
    pub(crate) fn answer(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        call: CallId,
        sdp: String,
    ) -> Result<(), SipError> {
        let invite = self.incoming_invite(call, "answer")?;
        let s = self.get_mut(call)?;
        let mut resp = ep.response_to(&invite, 200, "OK", Some(&s.dialog.local_tag));
        resp.push_header("Contact", ep.contact());
        resp.push_header("Allow", ALLOW);
        resp.push_header("Supported", SUPPORTED);
        resp.push_header("Content-Type", "application/sdp");
        resp.body = sdp.into_bytes();
        let final_2xx = resp.to_bytes();
        ep.respond(now, &invite, resp);
        s.phase = Phase::Server(Uas::Accepted {
            final_2xx,
            invite_seq: invite.cseq().map(|c| c.seq).unwrap_or(0),
            retransmit_interval: T1,
            after_ack: AfterAck::Confirm,
        });
        s.timers.set(SessionTimer::Retransmit2xx, now + T1);
        s.timers.set(SessionTimer::AckWait, now + TIMEOUT_64T1);
        Ok(())
    }

    /// Rejects with a final error status (300..=699).
    pub(crate) fn reject(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        call: CallId,
        status: u16,
    ) -> Result<(), SipError> {
        if !(300..=699).contains(&status) {
            return Err(SipError::InvalidStatus(status));
        }
        let invite = self.incoming_invite(call, "reject")?;
        self.refuse_invite(ep, now, call.0, &invite, status);
        self.close(ep, call.0, EndReason::LocalHangup);
        Ok(())
    }

    fn refuse_invite(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        id: u64,
        invite: &Message,
        status: u16,
    ) {
        let Some(s) = self.sessions.get(&id) else {
            return;
        };
        let resp = ep.response_to(
            invite,
            status,
            crate::endpoint::reason_phrase(status),
            Some(&s.dialog.local_tag),
        );
        ep.respond(now, invite, resp);
    }

    pub(super) fn hangup_server(&mut self, ep: &mut Endpoint, now: Instant, id: u64) {
        let Some(s) = self.sessions.get_mut(&id) else {
            return;
        };
        match &mut s.phase {
            Phase::Server(Uas::Incoming { invite }) => {
                let invite = (**invite).clone();
                self.refuse_invite(ep, now, id, &invite, 603);
                self.close(ep, id, EndReason::LocalHangup);
            }
            Phase::Server(Uas::Accepted { after_ack, .. }) => {
                *after_ack = AfterAck::Bye;
                ep.emit(UaEvent::CallEnded {
                    call: CallId(id),
                    reason: EndReason::LocalHangup,
                });
            }
            _ => {}
        }
    }

    /// An ACK outside any server transaction: the ACK of a 2xx belongs to the dialog.
    pub(crate) fn on_ack(&mut self, ep: &mut Endpoint, now: Instant, req: &Message) {
        let Some(id) = self.find_dialog(req) else {
            return;
        };
        let seq = req.cseq().map(|c| c.seq).unwrap_or(0);
        let Some(s) = self.sessions.get_mut(&id) else {
            return;
        };
        let Phase::Server(Uas::Accepted {
            invite_seq,
            after_ack,
            ..
        }) = &s.phase
        else {
            return;
        };
        if *invite_seq != seq {
            return;
        }
        let after_ack = *after_ack;
        s.timers.stop(SessionTimer::Retransmit2xx);
        s.timers.stop(SessionTimer::AckWait);
        s.phase = Phase::Confirmed(Confirmed::default());
        match after_ack {
            AfterAck::Confirm => {
                debug!(call = id, "call confirmed");
                ep.emit(UaEvent::CallConfirmed { call: CallId(id) });
            }
            AfterAck::Bye => {
                self.send_bye(ep, now, id);
                // CallEnded was reported at the hangup.
                self.sessions.remove(&id);
            }
        }
    }

    /// §9.2: a CANCEL whose INVITE is still unanswered ends the call; the CANCEL itself was
    /// answered 200 by the router.
    pub(crate) fn on_cancel(&mut self, ep: &mut Endpoint, now: Instant, invite_branch: &str) {
        let found = self.sessions.iter().find_map(|(id, s)| match &s.phase {
            Phase::Server(Uas::Incoming { invite })
                if crate::endpoint::branch_of(invite) == invite_branch =>
            {
                Some((*id, (**invite).clone()))
            }
            _ => None,
        });
        if let Some((id, invite)) = found {
            self.refuse_invite(ep, now, id, &invite, 487);
            self.close(ep, id, EndReason::Cancelled);
        }
    }

    /// Retransmits our 2xx and gives up on a missing ACK.
    pub(super) fn server_timers(&mut self, ep: &mut Endpoint, now: Instant, id: u64) {
        let Some(s) = self.sessions.get_mut(&id) else {
            return;
        };
        if s.timers.take_expired(SessionTimer::Retransmit2xx, now)
            && let Phase::Server(Uas::Accepted {
                final_2xx,
                retransmit_interval,
                ..
            }) = &mut s.phase
        {
            *retransmit_interval = (*retransmit_interval * 2).min(T2);
            s.timers
                .set(SessionTimer::Retransmit2xx, now + *retransmit_interval);
            ep.transmit_bytes(final_2xx.clone());
        }
        if s.timers.take_expired(SessionTimer::AckWait, now) {
            s.timers.stop(SessionTimer::Retransmit2xx);
            debug!(call = id, "no ACK for 2xx within 64*T1; sending BYE");
            self.send_bye(ep, now, id);
            self.close(
                ep,
                id,
                EndReason::Failed {
                    status: 408,
                    reason: "no ACK received".into(),
                },
            );
        }
    }
}
