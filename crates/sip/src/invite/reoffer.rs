//! New offers inside a dialog: re-INVITE (RFC 3261 §14) and UPDATE (RFC 3311), both ways.
//!
//! ```text
//!  ours:    (none) ──reinvite()/update()──▶ InFlight ──2xx: ACK──▶ (none), ReofferAnswered
//!                                            │  401/407: again with credentials
//!                                            │  491: BackingOff ──timer──▶ InFlight
//!                                            └─ other / timeout: (none), ReofferFailed
//!  theirs:  (none) ──re-INVITE/UPDATE──▶ Pending ──answer_reoffer()/reject_reoffer()──▶ (none)
//! ```
//!
//! Only one offer may be outstanding in a dialog. Glare (§14.1, RFC 3311 §5.2): a peer's
//! re-INVITE or UPDATE that arrives while ours is in flight is answered 491; ours answered
//! 491 is sent again after a random delay, 2.1–4 s (in 10 ms steps) when we chose the
//! Call-ID and 0–2 s when the peer did, so the two sides do not collide again. A peer's second
//! offer while its first is unanswered gets 500 with Retry-After (§14.2). A failed re-INVITE
//! leaves the session as it was (§14.1), except that 408 and 481 end the dialog (§12.2.1.2).

use std::time::{Duration, Instant};

use rand::Rng;
use tracing::debug;

use super::client::ack_for_2xx;
use super::{Confirmed, Phase, SessionTimer, Sessions};
use crate::endpoint::{ALLOW, Endpoint, SUPPORTED, sdp_body};
use crate::error::SipError;
use crate::events::{CallId, EndReason, UaEvent};
use crate::message::{Message, Method};
use crate::transaction::{Owner, SessionRequest};

/// How often a 491 is met with another try before the re-offer is reported failed.
const MAX_GLARE_RETRIES: u8 = 3;

#[derive(Debug, Clone)]
enum OurOffer {
    /// Our re-INVITE or UPDATE awaits its final response.
    InFlight {
        method: Method,
        sdp: String,
        auth_retries: u8,
        glare_retries: u8,
    },
    /// It met a 491; it goes again when the glare timer fires.
    BackingOff {
        method: Method,
        sdp: String,
        glare_retries: u8,
    },
}

/// The offer exchanges of one dialog beyond the INVITE's own.
#[derive(Debug, Clone, Default)]
pub(super) struct Offers {
    ours: Option<OurOffer>,
    /// The peer's re-INVITE or UPDATE awaiting `answer_reoffer`.
    theirs: Option<Message>,
}

impl Sessions {
    /// Sends a new offer in a confirmed dialog, as a re-INVITE or an UPDATE.
    pub(crate) fn send_reoffer(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        call: CallId,
        method: Method,
        sdp: String,
    ) -> Result<(), SipError> {
        let s = self.get_mut(call)?;
        if !s.is_confirmed() {
            return Err(super::invalid(
                s,
                "send a new offer before the call is set up",
            ));
        }
        if s.offers.ours.is_some() || s.offers.theirs.is_some() {
            return Err(SipError::InvalidCallState {
                state: "negotiating an offer",
                action: "send another offer",
            });
        }
        s.offers.ours = Some(OurOffer::InFlight {
            method: method.clone(),
            sdp: sdp.clone(),
            auth_retries: 0,
            glare_retries: 0,
        });
        self.transmit_offer(ep, now, call.0, method, sdp);
        Ok(())
    }

    /// Withdraws our offer that waits to be sent again after a 491: an answer we gave to the
    /// peer's offer since then already said what it would have said. `false` when none waits
    /// (there is none, or it is in flight and its answer will come).
    pub(crate) fn withdraw_reoffer(&mut self, call: CallId) -> Result<bool, SipError> {
        let s = self.get_mut(call)?;
        if !matches!(s.offers.ours, Some(OurOffer::BackingOff { .. })) {
            return Ok(false);
        }
        s.offers.ours = None;
        s.timers.stop(SessionTimer::GlareRetry);
        Ok(true)
    }

    fn transmit_offer(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        id: u64,
        method: Method,
        sdp: String,
    ) {
        let Some(s) = self.sessions.get_mut(&id) else {
            return;
        };
        let mut req = s.next_request(ep, method);
        req.push_header("Contact", ep.contact());
        req.push_header("Allow", ALLOW);
        req.push_header("Supported", SUPPORTED);
        req.push_header("Content-Type", "application/sdp");
        req.body = sdp.into_bytes();
        ep.start_client_txn(now, req, Owner::Session(id, SessionRequest::Reoffer));
    }

    pub(super) fn on_reoffer_response(
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
        let is_invite = request.method() == Some(&Method::Invite);
        let seq = request.cseq().map(|c| c.seq).unwrap_or(0);
        let Phase::Confirmed(confirmed) = &mut s.phase else {
            return;
        };
        let Some(OurOffer::InFlight {
            method,
            sdp,
            auth_retries,
            glare_retries,
        }) = s.offers.ours.clone()
        else {
            // A retransmitted 2xx to a re-INVITE already answered: ACK it again.
            if let Some((acked, ack)) = &confirmed.ack
                && *acked == seq
                && (200..300).contains(&status)
            {
                ep.transmit_bytes(ack.clone());
            }
            return;
        };
        match status {
            100..=199 => {}
            200..=299 => {
                if let Some(c) = resp.contacts().ok().and_then(|c| c.into_iter().next()) {
                    s.dialog.remote_target = c.uri;
                }
                if is_invite {
                    let ack = ack_for_2xx(ep, &s.dialog, request);
                    *confirmed = Confirmed {
                        ack: Some((seq, ack.clone())),
                    };
                    ep.transmit_bytes(ack);
                }
                s.offers.ours = None;
                ep.emit(UaEvent::ReofferAnswered {
                    call: CallId(id),
                    sdp: sdp_body(resp),
                });
            }
            401 | 407 => match ep.authorized_retry(request, resp, auth_retries) {
                Some(retry) => {
                    s.dialog.local_seq = retry.cseq().map(|c| c.seq).unwrap_or(s.dialog.local_seq);
                    s.offers.ours = Some(OurOffer::InFlight {
                        method,
                        sdp,
                        auth_retries: auth_retries + 1,
                        glare_retries,
                    });
                    ep.start_client_txn(now, retry, Owner::Session(id, SessionRequest::Reoffer));
                }
                None => self.reoffer_failed(ep, now, id, status, resp.reason()),
            },
            491 if glare_retries < MAX_GLARE_RETRIES => {
                // §14.1: the owner of the Call-ID waits 2.1–4 s, the other side 0–2 s.
                let steps = if s.owns_call_id {
                    ep.rng.random_range(210..=400u64)
                } else {
                    ep.rng.random_range(0..=200u64)
                };
                let delay = Duration::from_millis(steps * 10);
                debug!(call = id, ?delay, "our offer met a 491; trying again later");
                s.offers.ours = Some(OurOffer::BackingOff {
                    method,
                    sdp,
                    glare_retries: glare_retries + 1,
                });
                s.timers.set(SessionTimer::GlareRetry, now + delay);
            }
            _ => self.reoffer_failed(ep, now, id, status, resp.reason()),
        }
    }

    /// Reports a re-offer that will not be answered; 408 and 481 end the dialog too.
    pub(super) fn reoffer_failed(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        id: u64,
        status: u16,
        reason: &str,
    ) {
        let Some(s) = self.sessions.get_mut(&id) else {
            return;
        };
        s.offers.ours = None;
        s.timers.stop(SessionTimer::GlareRetry);
        ep.emit(UaEvent::ReofferFailed {
            call: CallId(id),
            status,
            reason: reason.to_owned(),
        });
        if matches!(status, 408 | 481) && s.is_confirmed() {
            if status == 408 {
                self.send_bye(ep, now, id);
            }
            self.close(
                ep,
                id,
                EndReason::Failed {
                    status,
                    reason: reason.to_owned(),
                },
            );
        }
    }

    pub(super) fn glare_timer(&mut self, ep: &mut Endpoint, now: Instant, id: u64) {
        let Some(s) = self.sessions.get_mut(&id) else {
            return;
        };
        if !s.timers.take_expired(SessionTimer::GlareRetry, now) {
            return;
        }
        let Some(OurOffer::BackingOff {
            method,
            sdp,
            glare_retries,
        }) = s.offers.ours.clone()
        else {
            return;
        };
        if s.offers.theirs.is_some() {
            // The peer's offer won the race and is not answered yet: ours waits its turn.
            s.timers
                .set(SessionTimer::GlareRetry, now + Duration::from_secs(1));
            return;
        }
        s.offers.ours = Some(OurOffer::InFlight {
            method: method.clone(),
            sdp: sdp.clone(),
            auth_retries: 0,
            glare_retries,
        });
        self.transmit_offer(ep, now, id, method, sdp);
    }

    /// A re-INVITE from the peer.
    pub(super) fn on_reinvite(&mut self, ep: &mut Endpoint, now: Instant, id: u64, req: Message) {
        let Some(s) = self.sessions.get(&id) else {
            return;
        };
        if !s.is_confirmed() {
            let retry = ep.rng.random_range(0..10u32).to_string();
            ep.reply(now, &req, 500, &[("Retry-After", retry)]);
            return;
        }
        if self.accept_their_offer(ep, now, id, &req) {
            ep.reply(now, &req, 100, &[]);
            self.report_their_offer(ep, id, req);
        }
    }

    /// An UPDATE from the peer, in an early or confirmed dialog (RFC 3311 §5.2).
    pub(super) fn on_update(&mut self, ep: &mut Endpoint, now: Instant, id: u64, req: Message) {
        if sdp_body(&req).is_none() {
            // No offer (a session-timer refresh, say): nothing to negotiate.
            ep.reply(now, &req, 200, &[("Contact", ep.contact())]);
            return;
        }
        if self.accept_their_offer(ep, now, id, &req) {
            self.report_their_offer(ep, id, req);
        }
    }

    /// Glare and overlap checks; answers the request itself when it cannot be taken.
    fn accept_their_offer(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        id: u64,
        req: &Message,
    ) -> bool {
        let Some(s) = self.sessions.get(&id) else {
            return false;
        };
        if matches!(s.offers.ours, Some(OurOffer::InFlight { .. })) {
            debug!(call = id, "glare: the peer's offer crosses ours; 491");
            ep.reply(now, req, 491, &[]);
            return false;
        }
        if s.offers.theirs.is_some() {
            let retry = ep.rng.random_range(0..10u32).to_string();
            ep.reply(now, req, 500, &[("Retry-After", retry)]);
            return false;
        }
        true
    }

    fn report_their_offer(&mut self, ep: &mut Endpoint, id: u64, req: Message) {
        let Some(s) = self.sessions.get_mut(&id) else {
            return;
        };
        if let Some(target) = req.contacts().ok().and_then(|c| c.into_iter().next()) {
            s.dialog.remote_target = target.uri;
        }
        let sdp = sdp_body(&req);
        s.offers.theirs = Some(req);
        ep.emit(UaEvent::Reoffer {
            call: CallId(id),
            sdp,
        });
    }

    /// Answers the peer's pending re-INVITE or UPDATE: 200 with our SDP, or an error status
    /// that leaves the session as it was.
    pub(crate) fn answer_reoffer(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        call: CallId,
        answer: Result<String, u16>,
    ) -> Result<(), SipError> {
        if let Err(status) = answer
            && !(300..=699).contains(&status)
        {
            return Err(SipError::InvalidStatus(status));
        }
        let s = self.get_mut(call)?;
        let Some(offer) = s.offers.theirs.take() else {
            return Err(super::invalid(s, "answer a re-offer (none pending)"));
        };
        let resp = match answer {
            Ok(sdp) => {
                let mut resp = ep.response_to(&offer, 200, "OK", Some(&s.dialog.local_tag));
                resp.push_header("Contact", ep.contact());
                resp.push_header("Content-Type", "application/sdp");
                resp.body = sdp.into_bytes();
                resp
            }
            Err(status) => ep.response_to(
                &offer,
                status,
                crate::endpoint::reason_phrase(status),
                Some(&s.dialog.local_tag),
            ),
        };
        ep.respond(now, &offer, resp);
        Ok(())
    }

    /// The flow died with our offer on it, or the peer's offer can no longer be answered.
    pub(super) fn reoffer_lost_with_flow(&mut self, ep: &mut Endpoint, id: u64) {
        let Some(s) = self.sessions.get_mut(&id) else {
            return;
        };
        s.offers.theirs = None;
        if s.offers.ours.is_some() {
            s.offers.ours = None;
            s.timers.stop(SessionTimer::GlareRetry);
            ep.emit(UaEvent::ReofferFailed {
                call: CallId(id),
                status: 503,
                reason: "transport closed".into(),
            });
        }
    }
}
