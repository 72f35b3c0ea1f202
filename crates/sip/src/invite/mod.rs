//! The INVITE session: one dialog created by an INVITE and everything that happens in it
//! (RFC 3261 §12–15, RFC 6026; RFC 3311 UPDATE, RFC 3515 REFER, RFC 3891 Replaces, RFC 6086
//! INFO).
//!
//! ```text
//!  client side (client.rs)                       server side (server.rs)
//!
//!  invite()                                      INVITE received ──▶ IncomingCall
//!    │                                             │
//!    ▼          1xx            CANCEL allowed      ▼  ring(): 180
//!  Calling ─────────────▶ Proceeding (§9.1)      Incoming ──reject()/CANCEL/BYE──▶ (gone)
//!    │ hangup()              │ hangup(): CANCEL    │ answer(): 2xx, resent until ACK
//!    ▼                       ▼                     ▼
//!  CancelOnProvisional ──▶ Cancelling            Accepted ──no ACK in 64*T1: BYE──▶ (gone)
//!    (CANCEL on 1xx)         │ 2xx: ACK + BYE      │ ACK (hangup meanwhile: BYE)
//!    │ 2xx: ACK              │ 487: (gone)         │
//!    └──────────┬────────────┘ 2xx: ACK            │
//!               ▼                                  ▼
//!           Confirmed (both sides): re-INVITE / UPDATE both ways (reoffer.rs),
//!               │       REFER and its NOTIFYs both ways (refer.rs), INFO DTMF (info.rs)
//!               │ BYE either way
//!               ▼
//!           Ended: CallEnded reported; the dialog lingers only while a refer subscription
//!               still uses it (RFC 5057), then it is forgotten
//! ```
//!
//! Each phase holds only what is valid in it: the INVITE being sent or answered, the 2xx
//! being retransmitted, the ACK to resend. A session whose call has ended but whose signalling
//! goes on (a CANCEL waiting for its 487, a 2xx waiting for its ACK before our BYE) is in a
//! phase that says so, so [`UaEvent::CallEnded`] is reported exactly once.

mod client;
mod info;
mod refer;
mod reoffer;
mod server;

use std::collections::BTreeMap;
use std::time::Instant;

use tracing::debug;

use crate::dialog::Dialog;
use crate::endpoint::{ALLOW, Endpoint};
use crate::error::SipError;
use crate::events::{CallId, EndReason, UaEvent};
use crate::message::{Message, Method};
use crate::reason::Reason;
use crate::replaces::ReplacesTarget;
use crate::timer::{TimerKind, TimerTable};
use crate::transaction::{Owner, SessionRequest};

pub use client::InviteOptions;

/// Session timers, one slot each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SessionTimer {
    /// Retransmit our 2xx until the ACK comes (§13.3.1.4).
    Retransmit2xx,
    /// Give up waiting for the ACK after 64*T1 (§13.3.1.4).
    AckWait,
    /// Send our re-INVITE again after a 491 (§14.1).
    GlareRetry,
}

impl TimerKind for SessionTimer {
    fn slot(self) -> usize {
        self as usize
    }
}

/// Where the INVITE usage of the dialog is.
#[derive(Debug, Clone)]
enum Phase {
    Client(client::Uac),
    Server(server::Uas),
    Confirmed(Confirmed),
    /// CallEnded was reported; only a refer subscription keeps the dialog.
    Ended,
}

/// The dialog is confirmed (both sides).
#[derive(Debug, Clone, Default)]
struct Confirmed {
    /// Our ACK for the last 2xx we got to an INVITE of ours, with that INVITE's CSeq number,
    /// sent again when the 2xx is (§13.2.2.4).
    ack: Option<(u32, Vec<u8>)>,
}

#[derive(Debug, Clone)]
pub(crate) struct Session {
    dialog: Dialog,
    phase: Phase,
    /// We chose the Call-ID (we sent the initial INVITE): decides the glare back-off (§14.1).
    owns_call_id: bool,
    offers: reoffer::Offers,
    refers: refer::Refers,
    /// The Reason (RFC 3326) for the CANCEL or BYE that ends the call.
    hangup_reason: Option<Reason>,
    timers: TimerTable<SessionTimer, 3>,
}

impl Session {
    fn new(dialog: Dialog, phase: Phase, owns_call_id: bool) -> Session {
        Session {
            dialog,
            phase,
            owns_call_id,
            offers: reoffer::Offers::default(),
            refers: refer::Refers::default(),
            hangup_reason: None,
            timers: TimerTable::new(),
        }
    }

    /// CallEnded was already reported.
    fn ended(&self) -> bool {
        match &self.phase {
            Phase::Client(uac) => uac.ended(),
            Phase::Server(uas) => uas.ended(),
            Phase::Confirmed(_) => false,
            Phase::Ended => true,
        }
    }

    fn state_name(&self) -> &'static str {
        match &self.phase {
            Phase::Client(uac) => uac.name(),
            Phase::Server(uas) => uas.name(),
            Phase::Confirmed(_) => "confirmed",
            Phase::Ended => "ended",
        }
    }

    fn is_confirmed(&self) -> bool {
        matches!(self.phase, Phase::Confirmed(_))
    }

    /// The next request of ours in this dialog (§12.2.1.1), with a new CSeq number.
    fn next_request(&mut self, ep: &Endpoint, method: Method) -> Message {
        self.dialog.local_seq += 1;
        ep.in_dialog_request(method, &self.dialog, self.dialog.local_seq)
    }
}

/// Every INVITE session of the account.
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    sessions: BTreeMap<u64, Session>,
}

fn invalid(session: &Session, action: &'static str) -> SipError {
    SipError::InvalidCallState {
        state: session.state_name(),
        action,
    }
}

impl Sessions {
    fn get(&self, call: CallId) -> Result<&Session, SipError> {
        self.sessions
            .get(&call.0)
            .filter(|s| !s.ended())
            .ok_or(SipError::UnknownCall)
    }

    fn get_mut(&mut self, call: CallId) -> Result<&mut Session, SipError> {
        self.sessions
            .get_mut(&call.0)
            .filter(|s| !s.ended())
            .ok_or(SipError::UnknownCall)
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.sessions
            .values()
            .flat_map(|s| [s.timers.next(), s.refers.next_deadline()])
            .flatten()
            .min()
    }

    /// The Replaces value that names `call` for its peer (RFC 3891 §3): the peer's tag is
    /// the `to-tag`, ours the `from-tag`. None until the dialog has the peer's tag.
    pub(crate) fn replaces_target(&self, call: CallId) -> Option<ReplacesTarget> {
        let s = self.get(call).ok()?;
        Some(ReplacesTarget {
            call_id: s.dialog.call_id.clone(),
            to_tag: s.dialog.remote_tag.clone().filter(|t| !t.is_empty())?,
            from_tag: s.dialog.local_tag.clone(),
        })
    }

    /// §12.2.2: the session whose dialog a request belongs to (To tag ours, From tag theirs).
    pub(crate) fn find_dialog(&self, req: &Message) -> Option<u64> {
        let call_id = req.call_id().ok()?;
        let local = req.to().ok()?.tag()?.to_owned();
        let remote = req.from().ok()?.tag().map(str::to_owned);
        self.sessions
            .iter()
            .find(|(_, s)| {
                s.dialog.call_id == call_id
                    && s.dialog.local_tag == local
                    && s.dialog.remote_tag.as_deref().unwrap_or("")
                        == remote.as_deref().unwrap_or("")
            })
            .map(|(id, _)| *id)
    }

    /// Reports the end of the call (once) and forgets the session, unless a refer
    /// subscription still uses its dialog.
    fn close(&mut self, ep: &mut Endpoint, id: u64, reason: EndReason) {
        let Some(s) = self.sessions.get_mut(&id) else {
            return;
        };
        if !s.ended() {
            debug!(call = id, ?reason, "call ended");
            ep.emit(UaEvent::CallEnded {
                call: CallId(id),
                reason,
            });
        }
        s.timers.stop_all();
        if s.refers.is_empty() {
            self.sessions.remove(&id);
        } else {
            s.phase = Phase::Ended;
        }
    }

    /// Forgets an ended session once nothing uses its dialog any more.
    fn reap(&mut self, id: u64) {
        if self
            .sessions
            .get(&id)
            .is_some_and(|s| matches!(s.phase, Phase::Ended) && s.refers.is_empty())
        {
            self.sessions.remove(&id);
        }
    }

    fn send_bye(&mut self, ep: &mut Endpoint, now: Instant, id: u64) {
        let Some(s) = self.sessions.get_mut(&id) else {
            return;
        };
        let mut bye = s.next_request(ep, Method::Bye);
        if let Some(reason) = &s.hangup_reason {
            bye.push_header("Reason", reason.to_header_value());
        }
        ep.start_client_txn(now, bye, Owner::Session(id, SessionRequest::Bye));
    }

    /// Ends a call: CANCEL (outgoing, early), BYE (confirmed), 603 (incoming unanswered).
    pub(crate) fn hangup(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        call: CallId,
        reason: Option<Reason>,
    ) -> Result<(), SipError> {
        let s = self.get_mut(call)?;
        s.hangup_reason = reason;
        match s.phase {
            Phase::Client(_) => self.hangup_client(ep, now, call.0),
            Phase::Server(_) => self.hangup_server(ep, now, call.0),
            Phase::Confirmed(_) => {
                self.send_bye(ep, now, call.0);
                self.close(ep, call.0, EndReason::LocalHangup);
            }
            Phase::Ended => return Err(SipError::UnknownCall),
        }
        Ok(())
    }

    // ------------------------------------------------------------------ requests

    /// A request with a To tag. Returns it back when it is a MESSAGE in one of our dialogs,
    /// which the MESSAGE handling takes.
    pub(crate) fn on_request_in_dialog(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        req: Message,
    ) -> Option<Message> {
        let Some(id) = self.find_dialog(&req) else {
            // §12.2.2: no matching dialog → 481.
            ep.reply(now, &req, 481, &[]);
            return None;
        };
        let (Some(method), Ok(cseq)) = (req.method().cloned(), req.cseq()) else {
            return None;
        };
        let s = self.sessions.get_mut(&id)?;
        if let Some(last) = s.dialog.remote_seq
            && cseq.seq < last
        {
            // §12.2.2: lower CSeq than the last one → 500.
            ep.reply(now, &req, 500, &[]);
            return None;
        }
        s.dialog.remote_seq = Some(cseq.seq);
        let ended = s.ended();
        match method {
            Method::Notify => self.on_notify(ep, now, id, &req),
            _ if ended => ep.reply(now, &req, 481, &[]),
            Method::Bye => self.on_bye(ep, now, id, &req),
            Method::Invite => self.on_reinvite(ep, now, id, req),
            Method::Update => self.on_update(ep, now, id, req),
            Method::Refer => self.on_refer(ep, now, id, req),
            Method::Info => self.on_info(ep, now, id, &req),
            Method::Message => return Some(req),
            Method::Options => ep.reply(now, &req, 200, &[("Allow", ALLOW.to_owned())]),
            _ => ep.reply(now, &req, 405, &[("Allow", ALLOW.to_owned())]),
        }
        None
    }

    fn on_bye(&mut self, ep: &mut Endpoint, now: Instant, id: u64, req: &Message) {
        ep.reply(now, req, 200, &[]);
        // §15: a caller may end an early dialog with BYE; its INVITE then gets 487.
        if let Some(Phase::Server(uas)) = self.sessions.get(&id).map(|s| &s.phase)
            && let Some(invite) = uas.unanswered_invite()
        {
            let invite = invite.clone();
            ep.reply(now, &invite, 487, &[]);
        }
        let reason = req.header_values("Reason").find_map(Reason::parse);
        self.close(ep, id, EndReason::RemoteHangup { reason });
    }

    // ------------------------------------------------------------------ responses

    pub(crate) fn on_response(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        id: u64,
        which: SessionRequest,
        request: &Message,
        resp: &Message,
    ) {
        match which {
            SessionRequest::Invite => self.on_invite_response(ep, now, id, request, resp),
            SessionRequest::Reoffer => self.on_reoffer_response(ep, now, id, request, resp),
            SessionRequest::Refer(refer) => {
                self.on_refer_response(ep, now, id, refer, request, resp)
            }
            SessionRequest::Notify(refer) => self.on_notify_response(id, refer, resp),
            SessionRequest::Cancel | SessionRequest::Bye | SessionRequest::Info => {}
        }
    }

    /// Timer B or F fired for one of a session's requests.
    pub(crate) fn on_transaction_timeout(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        id: u64,
        which: SessionRequest,
    ) {
        match which {
            SessionRequest::Invite => self.close(
                ep,
                id,
                EndReason::Failed {
                    status: 408,
                    reason: "Request Timeout".into(),
                },
            ),
            SessionRequest::Reoffer => self.reoffer_failed(ep, now, id, 408, "Request Timeout"),
            SessionRequest::Refer(refer) => {
                self.refer_failed(ep, id, refer, 408, "Request Timeout")
            }
            SessionRequest::Notify(refer) => self.drop_incoming_refer(id, refer),
            SessionRequest::Cancel | SessionRequest::Bye | SessionRequest::Info => {}
        }
    }

    // ------------------------------------------------------------------ time and flow

    pub(crate) fn on_timeout(&mut self, ep: &mut Endpoint, now: Instant) {
        let ids: Vec<u64> = self.sessions.keys().copied().collect();
        for id in ids {
            self.server_timers(ep, now, id);
            self.glare_timer(ep, now, id);
            self.refer_timers(ep, now, id);
        }
    }

    /// The flow is gone: calls not yet set up cannot be, and requests in flight failed.
    /// Confirmed calls stay; their media may outlive the signalling flow.
    pub(crate) fn on_disconnected(&mut self, ep: &mut Endpoint) {
        let ids: Vec<u64> = self.sessions.keys().copied().collect();
        for id in ids {
            let Some(s) = self.sessions.get_mut(&id) else {
                continue;
            };
            if s.is_confirmed() {
                self.reoffer_lost_with_flow(ep, id);
                self.refers_lost_with_flow(ep, id);
            } else {
                self.close(
                    ep,
                    id,
                    EndReason::Failed {
                        status: 503,
                        reason: "transport closed".into(),
                    },
                );
                if let Some(s) = self.sessions.get_mut(&id) {
                    // An ended dialog's subscriptions cannot be notified any more either.
                    s.refers = refer::Refers::default();
                }
                self.reap(id);
            }
        }
    }
}
