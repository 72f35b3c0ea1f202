//! Call transfer inside a dialog: REFER and the NOTIFYs of its implicit subscription
//! (RFC 3515), with Replaces in the Refer-To for attended transfer (RFC 3891, RFC 5589).
//!
//! ```text
//!  we refer (transferor)                         we are referred (transferee)
//!  refer() ──REFER──▶                            ──REFER──▶ ReferReceived
//!    ◀── 202: ReferProgress(202)                  accept_refer(): 202 + NOTIFY "100 Trying"
//!    ◀── NOTIFY sipfrag "SIP/2.0 180 Ringing"     reject_refer(): 4xx-6xx
//!        200, ReferProgress(180)                  notify_refer(): NOTIFY sipfrag, the final
//!    ◀── NOTIFY "SIP/2.0 200 OK", terminated        one with Subscription-State: terminated
//!        200, ReferProgress(200, final)
//! ```
//!
//! Every NOTIFY is answered 200. Its `Event: refer;id=N` names the REFER by CSeq number
//! (§2.4.6); without `id` it is the first REFER of the dialog. A NOTIFY that ends the
//! subscription without a final status line is reported final with status 0. The
//! subscription shares the INVITE's dialog but not its fate (RFC 5057): after a BYE the
//! dialog is kept until the last subscription is over.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tracing::debug;

use super::Sessions;
use crate::endpoint::{Endpoint, parse_target};
use crate::error::SipError;
use crate::events::{CallId, IncomingReferId, ReferId, UaEvent};
use crate::message::{Message, Method, NameAddr};
use crate::replaces::{Replaces, ReplacesTarget};
use crate::timer::MESSAGE_ANSWER_WAIT;
use crate::transaction::{Owner, SessionRequest};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OutReferState {
    /// The REFER awaits its final response.
    Requested { auth_retries: u8 },
    /// Accepted (202, or a NOTIFY came first): NOTIFYs report progress.
    Subscribed,
    /// A final status was reported; only the subscription's end is still to come.
    Reported,
}

#[derive(Debug, Clone)]
struct OutRefer {
    /// The REFER's CSeq number, the `id` of its NOTIFYs' Event header.
    event_id: u32,
    state: OutReferState,
}

#[derive(Debug, Clone)]
enum InRefer {
    /// Waiting for `accept_refer` or `reject_refer`.
    Pending {
        request: Box<Message>,
        event_id: u32,
        /// Unanswered by then, the core refuses it: the referrer's Timer F is running.
        answer_by: Instant,
    },
    /// Accepted: `notify_refer` reports progress.
    Subscribed { event_id: u32 },
}

/// The refer subscriptions of one dialog, both ways.
#[derive(Debug, Clone, Default)]
pub(super) struct Refers {
    outgoing: BTreeMap<u64, OutRefer>,
    incoming: BTreeMap<u64, InRefer>,
}

impl Refers {
    pub(super) fn is_empty(&self) -> bool {
        self.outgoing.is_empty() && self.incoming.is_empty()
    }

    /// When the first unanswered REFER must be refused.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.incoming
            .values()
            .filter_map(|r| match r {
                InRefer::Pending { answer_by, .. } => Some(*answer_by),
                InRefer::Subscribed { .. } => None,
            })
            .min()
    }
}

/// How long a received REFER waits for `accept_refer` or `reject_refer` before the core
/// answers 480 itself: half of the referrer's Timer F, as for MESSAGE.
const REFER_ANSWER_WAIT: Duration = MESSAGE_ANSWER_WAIT;

/// `SIP/2.0 180 Ringing` → (180, "Ringing").
fn sipfrag_status(body: &[u8]) -> Option<(u16, String)> {
    let text = std::str::from_utf8(body).ok()?;
    let line = text.lines().next()?.trim();
    let rest = line.strip_prefix("SIP/2.0 ")?;
    let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
    let status: u16 = code.parse().ok().filter(|s| (100..=699).contains(s))?;
    Some((status, reason.trim().to_owned()))
}

impl Sessions {
    fn session_of_incoming(&self, refer: IncomingReferId) -> Result<u64, SipError> {
        self.sessions
            .iter()
            .find(|(_, s)| s.refers.incoming.contains_key(&refer.0))
            .map(|(id, _)| *id)
            .ok_or(SipError::UnknownRefer)
    }

    /// Asks the peer to call `target` (RFC 3515), replacing `replaces` at the target when
    /// given (attended transfer, RFC 5589 §7).
    pub(crate) fn refer(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        call: CallId,
        target: &str,
        replaces: Option<ReplacesTarget>,
    ) -> Result<ReferId, SipError> {
        let target = parse_target(target)?;
        if replaces.as_ref().is_some_and(|r| !r.is_well_formed()) {
            return Err(SipError::InvalidConfig("malformed Replaces target".into()));
        }
        let s = self.get_mut(call)?;
        if !s.is_confirmed() {
            return Err(super::invalid(s, "refer before the call is set up"));
        }
        let refer_to = match &replaces {
            Some(r) => format!("<{target}?{}>", r.to_uri_header()),
            None => format!("<{target}>"),
        };
        let mut req = s.next_request(ep, Method::Refer);
        req.push_header("Contact", ep.contact());
        req.push_header("Refer-To", refer_to);
        req.push_header("Referred-By", format!("<{}>", ep.aor));
        let event_id = s.dialog.local_seq;
        let id = ep.next_handle();
        s.refers.outgoing.insert(
            id,
            OutRefer {
                event_id,
                state: OutReferState::Requested { auth_retries: 0 },
            },
        );
        ep.start_client_txn(now, req, Owner::Session(call.0, SessionRequest::Refer(id)));
        debug!(call = call.0, refer = id, "REFER sent");
        Ok(ReferId(id))
    }

    pub(super) fn on_refer_response(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        id: u64,
        refer: u64,
        request: &Message,
        resp: &Message,
    ) {
        let status = resp.status().unwrap_or(0);
        let Some(s) = self.sessions.get_mut(&id) else {
            return;
        };
        let Some(out) = s.refers.outgoing.get_mut(&refer) else {
            return;
        };
        let OutReferState::Requested { auth_retries } = out.state else {
            // A NOTIFY came before the 202: the subscription is already going.
            return;
        };
        match status {
            100..=199 => {}
            200..=299 => {
                out.state = OutReferState::Subscribed;
                ep.emit(UaEvent::ReferProgress {
                    call: CallId(id),
                    refer: ReferId(refer),
                    status,
                    reason: resp.reason().to_owned(),
                    final_: false,
                });
            }
            401 | 407 => match ep.authorized_retry(request, resp, auth_retries) {
                Some(retry) => {
                    let seq = retry.cseq().map(|c| c.seq).unwrap_or(out.event_id);
                    out.event_id = seq;
                    out.state = OutReferState::Requested {
                        auth_retries: auth_retries + 1,
                    };
                    s.dialog.local_seq = seq;
                    ep.start_client_txn(
                        now,
                        retry,
                        Owner::Session(id, SessionRequest::Refer(refer)),
                    );
                }
                None => self.refer_failed(ep, id, refer, status, resp.reason()),
            },
            _ => self.refer_failed(ep, id, refer, status, resp.reason()),
        }
    }

    /// The REFER failed: a final report, and the refer is forgotten.
    pub(super) fn refer_failed(
        &mut self,
        ep: &mut Endpoint,
        id: u64,
        refer: u64,
        status: u16,
        reason: &str,
    ) {
        let Some(s) = self.sessions.get_mut(&id) else {
            return;
        };
        if s.refers.outgoing.remove(&refer).is_some() {
            ep.emit(UaEvent::ReferProgress {
                call: CallId(id),
                refer: ReferId(refer),
                status,
                reason: reason.to_owned(),
                final_: true,
            });
        }
        self.reap(id);
    }

    /// A NOTIFY in one of our dialogs (RFC 3515 §2.4.4, RFC 6665 §4.1.3).
    pub(super) fn on_notify(&mut self, ep: &mut Endpoint, now: Instant, id: u64, req: &Message) {
        let event = req.header("Event").unwrap_or("");
        let mut parts = event.split(';').map(str::trim);
        if !parts
            .next()
            .is_some_and(|p| p.eq_ignore_ascii_case("refer"))
        {
            ep.reply(now, req, 489, &[]);
            return;
        }
        let event_id = parts.find_map(|p| {
            let (name, value) = p.split_once('=')?;
            name.trim()
                .eq_ignore_ascii_case("id")
                .then(|| value.trim().parse::<u32>().ok())?
        });
        let Some(s) = self.sessions.get_mut(&id) else {
            return;
        };
        let refer = s
            .refers
            .outgoing
            .iter()
            .find(|(_, r)| event_id.is_none_or(|e| e == r.event_id))
            .map(|(refer, _)| *refer);
        let Some(refer) = refer else {
            ep.reply(now, req, 481, &[]);
            return;
        };
        ep.reply(now, req, 200, &[]);
        let state = req.header("Subscription-State").unwrap_or("active");
        let mut state_parts = state.split(';').map(str::trim);
        let terminated = state_parts
            .next()
            .is_some_and(|p| p.eq_ignore_ascii_case("terminated"));
        let why = state_parts
            .find_map(|p| p.strip_prefix("reason="))
            .unwrap_or("no reason given");
        let frag = match req.content_type().as_deref() {
            Some("message/sipfrag") => sipfrag_status(&req.body),
            _ => None,
        };
        let Some(out) = s.refers.outgoing.get_mut(&refer) else {
            return;
        };
        if out.state != OutReferState::Reported {
            let report = match frag {
                Some((status, reason)) => Some((status, reason, terminated || status >= 200)),
                None if terminated => Some((0, format!("subscription terminated: {why}"), true)),
                None => None,
            };
            out.state = OutReferState::Subscribed;
            if let Some((status, reason, final_)) = report {
                if final_ {
                    out.state = OutReferState::Reported;
                }
                ep.emit(UaEvent::ReferProgress {
                    call: CallId(id),
                    refer: ReferId(refer),
                    status,
                    reason,
                    final_,
                });
            }
        }
        if terminated {
            s.refers.outgoing.remove(&refer);
            self.reap(id);
        }
    }

    /// A REFER from the peer (RFC 3515 §2.4.2): reported, answered by the owner.
    pub(super) fn on_refer(&mut self, ep: &mut Endpoint, now: Instant, id: u64, req: Message) {
        let Some(s) = self.sessions.get_mut(&id) else {
            return;
        };
        if !s.is_confirmed() {
            ep.reply(now, &req, 403, &[]);
            return;
        }
        let refer_to: Vec<&str> = req.header_values("Refer-To").collect();
        let parsed = match refer_to.as_slice() {
            [one] => NameAddr::parse(one).ok().filter(|na| na.uri.is_sip()),
            _ => None,
        };
        let Some(refer_to) = parsed else {
            ep.reply(now, &req, 400, &[]);
            return;
        };
        let replaces = refer_to
            .uri
            .headers
            .as_deref()
            .and_then(Replaces::from_uri_headers)
            .map(|r| r.target);
        let mut target = refer_to.uri.clone();
        target.headers = None;
        let referred_by = req.header("Referred-By").map(str::to_owned);
        let event_id = req.cseq().map(|c| c.seq).unwrap_or(0);
        let refer = ep.next_handle();
        let mut request = req;
        request.body.clear();
        s.refers.incoming.insert(
            refer,
            InRefer::Pending {
                request: Box::new(request),
                event_id,
                answer_by: now + REFER_ANSWER_WAIT,
            },
        );
        debug!(call = id, refer, "REFER received");
        ep.emit(UaEvent::ReferReceived {
            call: CallId(id),
            refer: IncomingReferId(refer),
            target: target.to_string(),
            replaces,
            referred_by,
        });
    }

    /// 202 Accepted, then the first NOTIFY ("100 Trying", RFC 3515 §2.4.5).
    pub(crate) fn accept_refer(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        refer: IncomingReferId,
    ) -> Result<(), SipError> {
        let id = self.session_of_incoming(refer)?;
        let s = self.sessions.get_mut(&id).ok_or(SipError::UnknownRefer)?;
        let Some(InRefer::Pending {
            request, event_id, ..
        }) = s.refers.incoming.get(&refer.0).cloned()
        else {
            return Err(SipError::UnknownRefer);
        };
        let mut resp = ep.response_to(&request, 202, "Accepted", Some(&s.dialog.local_tag));
        resp.push_header("Contact", ep.contact());
        ep.respond(now, &request, resp);
        s.refers
            .incoming
            .insert(refer.0, InRefer::Subscribed { event_id });
        self.send_refer_notify(ep, now, id, refer.0, 100, "Trying");
        Ok(())
    }

    /// Refuses a REFER with a final error status.
    pub(crate) fn reject_refer(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        refer: IncomingReferId,
        status: u16,
    ) -> Result<(), SipError> {
        if !(300..=699).contains(&status) {
            return Err(SipError::InvalidStatus(status));
        }
        let id = self.session_of_incoming(refer)?;
        let s = self.sessions.get_mut(&id).ok_or(SipError::UnknownRefer)?;
        let Some(InRefer::Pending { request, .. }) = s.refers.incoming.get(&refer.0).cloned()
        else {
            return Err(SipError::UnknownRefer);
        };
        s.refers.incoming.remove(&refer.0);
        ep.reply(now, &request, status, &[]);
        self.reap(id);
        Ok(())
    }

    /// Reports how the call made for an accepted REFER goes; a final status (≥ 200) ends
    /// the subscription.
    pub(crate) fn notify_refer(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        refer: IncomingReferId,
        status: u16,
        reason: &str,
    ) -> Result<(), SipError> {
        if !(100..=699).contains(&status) {
            return Err(SipError::InvalidStatus(status));
        }
        if reason.contains(['\r', '\n']) {
            return Err(SipError::InvalidConfig("reason contains CR/LF".into()));
        }
        let id = self.session_of_incoming(refer)?;
        let subscribed = self
            .sessions
            .get(&id)
            .and_then(|s| s.refers.incoming.get(&refer.0))
            .is_some_and(|r| matches!(r, InRefer::Subscribed { .. }));
        if !subscribed {
            return Err(SipError::UnknownRefer);
        }
        self.send_refer_notify(ep, now, id, refer.0, status, reason);
        Ok(())
    }

    fn send_refer_notify(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        id: u64,
        refer: u64,
        status: u16,
        reason: &str,
    ) {
        let Some(s) = self.sessions.get_mut(&id) else {
            return;
        };
        let Some(InRefer::Subscribed { event_id }) = s.refers.incoming.get(&refer).cloned() else {
            return;
        };
        let done = status >= 200;
        let mut req = s.next_request(ep, Method::Notify);
        req.push_header("Contact", ep.contact());
        req.push_header("Event", format!("refer;id={event_id}"));
        req.push_header(
            "Subscription-State",
            if done {
                "terminated;reason=noresource"
            } else {
                "active;expires=60"
            },
        );
        req.push_header("Content-Type", "message/sipfrag;version=2.0");
        req.body = format!("SIP/2.0 {status} {reason}\r\n").into_bytes();
        ep.start_client_txn(now, req, Owner::Session(id, SessionRequest::Notify(refer)));
        if done {
            s.refers.incoming.remove(&refer);
            self.reap(id);
        }
    }

    /// A 481 to our NOTIFY: the peer has forgotten the subscription.
    pub(super) fn on_notify_response(&mut self, id: u64, refer: u64, resp: &Message) {
        if resp.status() == Some(481) {
            self.drop_incoming_refer(id, refer);
        }
    }

    pub(super) fn drop_incoming_refer(&mut self, id: u64, refer: u64) {
        if let Some(s) = self.sessions.get_mut(&id) {
            s.refers.incoming.remove(&refer);
        }
        self.reap(id);
    }

    /// The flow died: our REFERs get a final report; the peer's cannot be answered.
    pub(super) fn refers_lost_with_flow(&mut self, ep: &mut Endpoint, id: u64) {
        let Some(s) = self.sessions.get_mut(&id) else {
            return;
        };
        s.refers.incoming.clear();
        let outgoing: Vec<u64> = s.refers.outgoing.keys().copied().collect();
        for refer in outgoing {
            self.refer_failed(ep, id, refer, 503, "transport closed");
        }
    }

    /// REFERs the owner left unanswered too long get 480 (Temporarily Unavailable).
    pub(super) fn refer_timers(&mut self, ep: &mut Endpoint, now: Instant, id: u64) {
        let Some(s) = self.sessions.get_mut(&id) else {
            return;
        };
        let late: Vec<(u64, Box<Message>)> = s
            .refers
            .incoming
            .iter()
            .filter_map(|(refer, r)| match r {
                InRefer::Pending {
                    request, answer_by, ..
                } if *answer_by <= now => Some((*refer, request.clone())),
                _ => None,
            })
            .collect();
        for (refer, request) in late {
            debug!(call = id, refer, "REFER not answered in time; 480");
            s.refers.incoming.remove(&refer);
            ep.reply(now, &request, 480, &[]);
        }
        self.reap(id);
    }
}
