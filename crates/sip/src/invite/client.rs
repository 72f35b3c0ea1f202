//! The client side of an INVITE session (RFC 3261 §13.2, §9.1 CANCEL; RFC 3891 Replaces).
//!
//! ```text
//!  Calling ──1xx──▶ Proceeding ──2xx: ACK──▶ Confirmed
//!    │                 │
//!    │ hangup()        │ hangup(): CANCEL
//!    ▼                 ▼
//!  CancelOnProvisional ──1xx: CANCEL──▶ Cancelling ──487──▶ (gone)
//!                                         └──2xx: ACK, then BYE──▶ (gone)
//! ```
//!
//! §9.1: a CANCEL may only follow a provisional response, so a hangup before any waits for
//! one. 401/407 are answered once with credentials (§22.2), which starts a new client
//! transaction with the next CSeq; the session goes back to Calling.

use std::time::Instant;

use tracing::debug;

use super::{Confirmed, Phase, Session, Sessions};
use crate::dialog::Dialog;
use crate::endpoint::{ALLOW, Endpoint, parse_target, sdp_body};
use crate::error::SipError;
use crate::events::{CallId, EndReason, UaEvent};
use crate::message::{Message, Method};
use crate::replaces::ReplacesTarget;
use crate::transaction::{Owner, SessionRequest};

/// Options of an outgoing INVITE.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InviteOptions {
    /// Take the place of this dialog at the callee (RFC 3891), e.g. when completing an
    /// attended transfer we were asked to make.
    pub replaces: Option<ReplacesTarget>,
    /// A Referred-By value (RFC 3892) to pass on, when the call is made because of a REFER.
    pub referred_by: Option<String>,
}

/// Our INVITE as sent, and how often it was retried with credentials.
#[derive(Debug, Clone)]
pub(super) struct Attempt {
    /// The INVITE as last sent (with its Via), for CANCEL and auth retries.
    invite: Box<Message>,
    auth_retries: u8,
}

#[derive(Debug, Clone)]
pub(super) enum Uac {
    /// INVITE sent, no response yet: no CANCEL allowed.
    Calling(Attempt),
    /// A provisional came (an early dialog if it had a To tag).
    Proceeding(Attempt),
    /// We hung up before any provisional: the CANCEL goes out with the first one.
    CancelOnProvisional(Attempt),
    /// CANCEL sent; the INVITE's final response is still to come.
    Cancelling(Attempt),
}

impl Uac {
    pub(super) fn ended(&self) -> bool {
        matches!(self, Uac::CancelOnProvisional(_) | Uac::Cancelling(_))
    }

    pub(super) fn name(&self) -> &'static str {
        match self {
            Uac::Calling(_) => "calling",
            Uac::Proceeding(_) => "early",
            Uac::CancelOnProvisional(_) | Uac::Cancelling(_) => "cancelling",
        }
    }

    fn attempt(&self) -> &Attempt {
        match self {
            Uac::Calling(a)
            | Uac::Proceeding(a)
            | Uac::CancelOnProvisional(a)
            | Uac::Cancelling(a) => a,
        }
    }
}

/// §12.1.2: remote tag, remote target and (reversed) route set from a dialog-creating response.
fn update_dialog_from_response(dialog: &mut Dialog, resp: &Message) {
    if let Some(tag) = resp.to().ok().and_then(|t| t.tag().map(str::to_owned)) {
        dialog.remote_tag = Some(tag);
    }
    if let Some(c) = resp.contacts().ok().and_then(|c| c.into_iter().next()) {
        dialog.remote_target = c.uri;
    }
    if let Ok(rr) = resp.record_routes() {
        dialog.route_set = rr.iter().rev().map(|r| r.to_string()).collect();
    }
}

impl Sessions {
    /// Places a call.
    pub(crate) fn invite(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        target: &str,
        sdp: String,
        options: InviteOptions,
    ) -> Result<CallId, SipError> {
        if !ep.connected {
            return Err(SipError::NotConnected);
        }
        let target_uri = parse_target(target)?;
        if let Some(r) = &options.replaces
            && !r.is_well_formed()
        {
            return Err(SipError::InvalidConfig("malformed Replaces target".into()));
        }
        if options
            .referred_by
            .as_deref()
            .is_some_and(|r| r.contains(['\r', '\n']))
        {
            return Err(SipError::InvalidConfig("Referred-By contains CR/LF".into()));
        }
        let id = ep.next_handle();
        let dialog = Dialog {
            call_id: ep.token(22),
            local_tag: ep.token(10),
            remote_tag: None,
            local_uri: ep.local_name_addr(),
            remote_uri: format!("<{target_uri}>"),
            local_seq: 1,
            remote_seq: None,
            remote_target: target_uri.clone(),
            route_set: Vec::new(),
        };
        let mut req = ep.out_of_dialog_request(
            Method::Invite,
            target_uri,
            &dialog.remote_uri,
            &dialog.local_party_value(),
            &dialog.call_id,
            1,
        );
        req.push_header("Contact", ep.contact());
        req.push_header("Allow", ALLOW);
        if let Some(replaces) = &options.replaces {
            req.push_header("Replaces", replaces.to_header_value());
        }
        if let Some(referred_by) = &options.referred_by {
            req.push_header("Referred-By", referred_by.clone());
        }
        req.push_header("Content-Type", "application/sdp");
        req.body = sdp.into_bytes();
        let invite = ep.start_client_txn(now, req, Owner::Session(id, SessionRequest::Invite));
        let attempt = Attempt {
            invite: Box::new(invite),
            auth_retries: 0,
        };
        self.sessions.insert(
            id,
            Session::new(dialog, Phase::Client(Uac::Calling(attempt)), true),
        );
        debug!(call = id, "outgoing call");
        Ok(CallId(id))
    }

    pub(super) fn hangup_client(&mut self, ep: &mut Endpoint, now: Instant, id: u64) {
        let Some(s) = self.sessions.get_mut(&id) else {
            return;
        };
        let Phase::Client(uac) = &s.phase else {
            return;
        };
        let attempt = uac.attempt().clone();
        match uac {
            Uac::Calling(_) => s.phase = Phase::Client(Uac::CancelOnProvisional(attempt)),
            Uac::Proceeding(_) => {
                ep.send_cancel(
                    now,
                    &attempt.invite,
                    s.hangup_reason.as_ref(),
                    Owner::Session(id, SessionRequest::Cancel),
                );
                s.phase = Phase::Client(Uac::Cancelling(attempt));
            }
            Uac::CancelOnProvisional(_) | Uac::Cancelling(_) => return,
        }
        debug!(call = id, "call ended by us before an answer");
        ep.emit(UaEvent::CallEnded {
            call: CallId(id),
            reason: EndReason::LocalHangup,
        });
    }

    pub(super) fn on_invite_response(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        id: u64,
        request: &Message,
        resp: &Message,
    ) {
        let status = resp.status().unwrap_or(0);
        let Some(s) = self.sessions.get_mut(&id) else {
            return;
        };
        match (&s.phase, status) {
            (Phase::Client(uac), 100..=199) => {
                if resp
                    .to()
                    .ok()
                    .and_then(|t| t.tag().map(str::to_owned))
                    .is_some()
                    && s.dialog.remote_tag.is_none()
                {
                    update_dialog_from_response(&mut s.dialog, resp);
                }
                let attempt = uac.attempt().clone();
                match uac {
                    // Any provisional, 100 included, allows a CANCEL (§9.1).
                    Uac::CancelOnProvisional(_) => {
                        ep.send_cancel(
                            now,
                            &attempt.invite,
                            s.hangup_reason.as_ref(),
                            Owner::Session(id, SessionRequest::Cancel),
                        );
                        s.phase = Phase::Client(Uac::Cancelling(attempt));
                    }
                    Uac::Calling(_) | Uac::Proceeding(_) => {
                        s.phase = Phase::Client(Uac::Proceeding(attempt));
                        if status > 100 {
                            ep.emit(UaEvent::CallProgress {
                                call: CallId(id),
                                status,
                                reason: resp.reason().to_owned(),
                                sdp: sdp_body(resp),
                            });
                        }
                    }
                    Uac::Cancelling(_) => {}
                }
            }
            (Phase::Client(uac), 200..=299) => {
                let ended = uac.ended();
                update_dialog_from_response(&mut s.dialog, resp);
                let ack = ack_for_2xx(ep, &s.dialog, request);
                s.phase = Phase::Confirmed(Confirmed {
                    ack: Some((request.cseq().map(|c| c.seq).unwrap_or(1), ack.clone())),
                });
                ep.transmit_bytes(ack);
                if ended {
                    // We hung up while the INVITE was in flight: confirm, then tear down.
                    self.send_bye(ep, now, id);
                    self.sessions.remove(&id);
                } else {
                    ep.emit(UaEvent::CallAnswered {
                        call: CallId(id),
                        sdp: sdp_body(resp),
                    });
                }
            }
            // A retransmitted 2xx: the ACK is resent by the core (§13.2.2.4).
            (
                Phase::Confirmed(Confirmed {
                    ack: Some((seq, ack)),
                }),
                200..=299,
            ) if request.cseq().is_ok_and(|c| c.seq == *seq) => {
                ep.transmit_bytes(ack.clone());
            }
            (Phase::Client(uac @ (Uac::Calling(_) | Uac::Proceeding(_))), 401 | 407) => {
                let retries = uac.attempt().auth_retries;
                match ep.authorized_retry(request, resp, retries) {
                    Some(retry) => {
                        let invite = ep.start_client_txn(
                            now,
                            retry,
                            Owner::Session(id, SessionRequest::Invite),
                        );
                        s.dialog.local_seq = invite.cseq().map(|c| c.seq).unwrap_or(1);
                        s.phase = Phase::Client(Uac::Calling(Attempt {
                            invite: Box::new(invite),
                            auth_retries: retries + 1,
                        }));
                    }
                    None => self.rejected(ep, id, status, resp.reason()),
                }
            }
            (Phase::Client(_), 300..) => self.rejected(ep, id, status, resp.reason()),
            _ => {}
        }
    }

    fn rejected(&mut self, ep: &mut Endpoint, id: u64, status: u16, reason: &str) {
        self.close(
            ep,
            id,
            EndReason::Rejected {
                status,
                reason: reason.to_owned(),
            },
        );
    }
}

/// §13.2.2.4: the ACK of a 2xx is a new request in the dialog with the INVITE's CSeq number
/// and its credentials.
pub(super) fn ack_for_2xx(ep: &mut Endpoint, dialog: &Dialog, invite: &Message) -> Vec<u8> {
    let seq = invite.cseq().map(|c| c.seq).unwrap_or(1);
    let mut ack = ep.in_dialog_request(Method::Ack, dialog, seq);
    for h in ["Authorization", "Proxy-Authorization"] {
        if let Some(v) = invite.header(h) {
            ack.push_header(h, v);
        }
    }
    ep.stamp_via(&mut ack);
    ack.to_bytes()
}
