//! The user agent: a router in front of the parts that hold the protocol state.
//!
//! ```text
//!  handle_input ─▶ parse ─┬─ response ─▶ client transaction (§17.1) ─▶ its owner:
//!                         │                registration | INVITE session | MESSAGE
//!                         └─ request ──▶ server transaction (§17.2): retransmission? answered
//!                                        CANCEL? the INVITE's session (§9.2)
//!                                        Require we lack? 420 (§8.2.2.3)
//!                                        To tag? the dialog's session (§12.2.2), else 481
//!                                        else by method: INVITE, MESSAGE, OPTIONS, 405
//! ```
//!
//! The router owns no protocol state beyond the flow: `Endpoint` holds the transactions and
//! the output queues, `Registration`, `Sessions` and `Messaging` the rest. Commands go
//! straight to the part they concern; every output is collected in the endpoint's queues.

use std::time::{Duration, Instant};

use tracing::{debug, trace};

use crate::endpoint::{Endpoint, token};
use crate::error::SipError;
use crate::invite::Sessions;
use crate::message::{self, Message, Method, StartLine};
use crate::messaging::Messaging;
use crate::reason::Reason;
use crate::registration::Registration;
use crate::transaction::{ClientState, ClientVerdict, Owner, ServerState};

pub use crate::endpoint::{ALLOW, UaConfig, reason_phrase};
pub use crate::events::{
    CallId, EndReason, IncomingMessageId, IncomingReferId, MessageId, Party, ReferId, UaEvent,
};
pub use crate::invite::InviteOptions;
pub use crate::replaces::ReplacesTarget;

/// The sans-IO SIP user agent. See the crate documentation for the event-loop contract.
#[derive(Debug)]
pub struct UserAgent {
    ep: Endpoint,
    registration: Registration,
    sessions: Sessions,
    messaging: Messaging,
}

impl UserAgent {
    /// Validates the configuration and creates an idle, disconnected UA.
    pub fn new(config: UaConfig) -> Result<Self, SipError> {
        let (ep, reg_call_id, reg_tag) = Endpoint::new(config)?;
        Ok(UserAgent {
            ep,
            registration: Registration::new(reg_call_id, reg_tag),
            sessions: Sessions::default(),
            messaging: Messaging::default(),
        })
    }

    // ------------------------------------------------------------------ getters

    /// The Contact URI this UA registers (`sip:user@host.invalid;transport=ws;ob`).
    pub fn contact_uri(&self) -> String {
        self.ep.contact_uri()
    }

    /// True while the flow is up.
    pub fn is_connected(&self) -> bool {
        self.ep.connected
    }

    /// Keepalive interval from the registrar's Flow-Timer (RFC 5626 §4.4.1), if any.
    pub fn keepalive_interval(&self) -> Option<Duration> {
        self.registration.keepalive()
    }

    /// The Replaces value (RFC 3891) that names `call` for its peer, for an attended
    /// transfer's REFER or INVITE; None until the peer has answered with its tag.
    pub fn replaces_target(&self, call: CallId) -> Option<ReplacesTarget> {
        self.sessions.replaces_target(call)
    }

    // ------------------------------------------------------------------ outputs

    /// One serialized SIP message to send as one WebSocket message.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.ep.poll_transmit()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<UaEvent> {
        self.ep.poll_event()
    }

    /// The earliest deadline at which `handle_timeout` must be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.ep.next_transaction_deadline(),
            self.registration.next_deadline(),
            self.sessions.next_deadline(),
            self.messaging.next_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    // ------------------------------------------------------------------ flow state

    /// The flow (WebSocket) is up. Re-registers if registration is wanted (RFC 5626 §4.4.1
    /// flow recovery: a new flow needs a new REGISTER).
    pub fn handle_connected(&mut self, now: Instant) {
        debug!("flow up");
        self.ep.connected = true;
        self.registration.on_connected(&mut self.ep, now);
    }

    /// The flow is down: client transactions fail, the binding is considered lost, calls not
    /// set up yet end, and incoming requests awaiting an answer can no longer get one.
    pub fn handle_disconnected(&mut self, _now: Instant) {
        debug!("flow down");
        self.ep.connected = false;
        self.ep.clients.clear();
        self.sessions.on_disconnected(&mut self.ep);
        self.messaging.on_disconnected(&mut self.ep);
        self.registration.on_disconnected(&mut self.ep);
        self.ep.servers.clear();
    }

    // ------------------------------------------------------------------ commands: registration

    /// Starts (or keeps) registration. When the flow is down it happens on `handle_connected`.
    pub fn register(&mut self, now: Instant) -> Result<(), SipError> {
        self.registration.register(&mut self.ep, now);
        Ok(())
    }

    /// Removes our binding (Expires: 0).
    pub fn unregister(&mut self, now: Instant) -> Result<(), SipError> {
        self.registration.unregister(&mut self.ep, now);
        Ok(())
    }

    // ------------------------------------------------------------------ commands: calls

    /// Places a call. `target` is a SIP URI (`sip:bob@example.com`).
    pub fn invite(&mut self, now: Instant, target: &str, sdp: String) -> Result<CallId, SipError> {
        self.invite_with(now, target, sdp, InviteOptions::default())
    }

    /// Places a call with options, e.g. a Replaces header (RFC 3891) for attended transfer.
    pub fn invite_with(
        &mut self,
        now: Instant,
        target: &str,
        sdp: String,
        options: InviteOptions,
    ) -> Result<CallId, SipError> {
        self.sessions
            .invite(&mut self.ep, now, target, sdp, options)
    }

    /// Sends 180 Ringing for an incoming call.
    pub fn ring(&mut self, now: Instant, call: CallId) -> Result<(), SipError> {
        self.sessions.ring(&mut self.ep, now, call)
    }

    /// Answers an incoming call with 200 OK and our SDP.
    pub fn answer(&mut self, now: Instant, call: CallId, sdp: String) -> Result<(), SipError> {
        self.sessions.answer(&mut self.ep, now, call, sdp)
    }

    /// Rejects an incoming call with a final error status (300..=699).
    pub fn reject(&mut self, now: Instant, call: CallId, status: u16) -> Result<(), SipError> {
        self.sessions.reject(&mut self.ep, now, call, status)
    }

    /// Ends a call: CANCEL (outgoing, early), BYE (confirmed), 603 (incoming unanswered).
    pub fn hangup(&mut self, now: Instant, call: CallId) -> Result<(), SipError> {
        self.hangup_with_reason(now, call, None)
    }

    /// Ends a call like [`UserAgent::hangup`], with a Reason header (RFC 3326) on the CANCEL
    /// or BYE that says why.
    pub fn hangup_with_reason(
        &mut self,
        now: Instant,
        call: CallId,
        reason: Option<Reason>,
    ) -> Result<(), SipError> {
        self.sessions.hangup(&mut self.ep, now, call, reason)
    }

    /// Sends a new offer in a confirmed call as a re-INVITE (RFC 3261 §14.1). The outcome
    /// comes as [`UaEvent::ReofferAnswered`] or [`UaEvent::ReofferFailed`]; a 491 (glare)
    /// is retried by the core after a random delay.
    pub fn reinvite(&mut self, now: Instant, call: CallId, sdp: String) -> Result<(), SipError> {
        self.sessions
            .send_reoffer(&mut self.ep, now, call, Method::Invite, sdp)
    }

    /// Withdraws our re-offer that is waiting to be retried after a 491 (RFC 3261 §14.1 says to
    /// retry only "if it still desires" the change): the answer we gave the peer's crossing
    /// offer already carried it. Returns whether one was waiting.
    pub fn withdraw_reoffer(&mut self, call: CallId) -> Result<bool, SipError> {
        self.sessions.withdraw_reoffer(call)
    }

    /// Like [`UserAgent::reinvite`], as an UPDATE (RFC 3311): no ACK, no three-way handshake.
    pub fn update(&mut self, now: Instant, call: CallId, sdp: String) -> Result<(), SipError> {
        self.sessions
            .send_reoffer(&mut self.ep, now, call, Method::Update, sdp)
    }

    /// Answers the peer's pending re-INVITE or UPDATE ([`UaEvent::Reoffer`]) with 200 OK
    /// and our SDP.
    pub fn answer_reoffer(
        &mut self,
        now: Instant,
        call: CallId,
        sdp: String,
    ) -> Result<(), SipError> {
        self.sessions
            .answer_reoffer(&mut self.ep, now, call, Ok(sdp))
    }

    /// Refuses the peer's pending re-INVITE or UPDATE (e.g. 488); the session stays as it was.
    pub fn reject_reoffer(
        &mut self,
        now: Instant,
        call: CallId,
        status: u16,
    ) -> Result<(), SipError> {
        self.sessions
            .answer_reoffer(&mut self.ep, now, call, Err(status))
    }

    /// Asks the peer of a confirmed call to call `target_uri` (RFC 3515); with `replaces`,
    /// its INVITE replaces that dialog at the target (attended transfer, RFC 5589). Progress
    /// comes as [`UaEvent::ReferProgress`].
    pub fn refer(
        &mut self,
        now: Instant,
        call: CallId,
        target_uri: &str,
        replaces: Option<ReplacesTarget>,
    ) -> Result<ReferId, SipError> {
        self.sessions
            .refer(&mut self.ep, now, call, target_uri, replaces)
    }

    /// Accepts a REFER ([`UaEvent::ReferReceived`]): 202, then NOTIFY "100 Trying".
    pub fn accept_refer(&mut self, now: Instant, refer: IncomingReferId) -> Result<(), SipError> {
        self.sessions.accept_refer(&mut self.ep, now, refer)
    }

    /// Refuses a REFER with a final error status (300..=699).
    pub fn reject_refer(
        &mut self,
        now: Instant,
        refer: IncomingReferId,
        status: u16,
    ) -> Result<(), SipError> {
        self.sessions.reject_refer(&mut self.ep, now, refer, status)
    }

    /// Tells the referrer how the call it asked for goes (a NOTIFY with a `message/sipfrag`
    /// status line); a final status (≥ 200) ends the refer's subscription.
    pub fn notify_refer(
        &mut self,
        now: Instant,
        refer: IncomingReferId,
        status: u16,
        reason: &str,
    ) -> Result<(), SipError> {
        self.sessions
            .notify_refer(&mut self.ep, now, refer, status, reason)
    }

    /// Sends a DTMF digit (`0`-`9`, `*`, `#`, `A`-`D`) as INFO with
    /// `application/dtmf-relay`.
    pub fn send_dtmf_info(
        &mut self,
        now: Instant,
        call: CallId,
        digit: char,
        duration_ms: u32,
    ) -> Result<(), SipError> {
        self.sessions
            .send_dtmf_info(&mut self.ep, now, call, digit, duration_ms)
    }

    // ------------------------------------------------------------------ commands: messages

    /// Sends a MESSAGE (RFC 3428) outside any dialog.
    pub fn send_message(
        &mut self,
        now: Instant,
        target: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<MessageId, SipError> {
        self.messaging
            .send(&mut self.ep, now, target, content_type, body)
    }

    /// Answers an incoming MESSAGE (see [`UaEvent::MessageReceived`]) with a final status:
    /// 200 once it is kept, an error when it cannot be. Fails with
    /// [`SipError::UnknownMessage`] when it was already answered, by the deadline too, or its
    /// flow is gone.
    pub fn answer_message(
        &mut self,
        now: Instant,
        id: IncomingMessageId,
        status: u16,
    ) -> Result<(), SipError> {
        self.messaging.answer(&mut self.ep, now, id, status)
    }

    // ------------------------------------------------------------------ input

    /// One received WebSocket message.
    pub fn handle_input(&mut self, now: Instant, input: &[u8]) {
        if input.iter().all(|b| *b == b'\r' || *b == b'\n') {
            // RFC 5626 §4.4.1 double-CRLF ping gets a CRLF pong; a lone CRLF is a pong.
            if input.len() >= 4 {
                self.ep.transmit_bytes(b"\r\n".to_vec());
            }
            return;
        }
        trace!(message = %String::from_utf8_lossy(input), "recv");
        match message::parse(input) {
            Ok(msg) => match msg.start {
                StartLine::Request { .. } => self.handle_request(now, msg),
                StartLine::Response { .. } => self.handle_response(now, msg),
            },
            Err(err) => self.handle_malformed(input, err),
        }
    }

    /// Advances timers; call at (or after) `poll_timeout`.
    pub fn handle_timeout(&mut self, now: Instant) {
        for (owner, _request) in self.ep.expire_clients(now) {
            match owner {
                Owner::Register => self.registration.on_transaction_timeout(&mut self.ep),
                Owner::Message(id) => {
                    self.messaging
                        .failed(&mut self.ep, id, 408, "Request Timeout")
                }
                Owner::Session(id, which) => {
                    self.sessions
                        .on_transaction_timeout(&mut self.ep, now, id, which)
                }
            }
        }
        self.messaging.on_timeout(&mut self.ep, now);
        self.sessions.on_timeout(&mut self.ep, now);
        self.registration.on_timeout(&mut self.ep, now);
    }

    // ------------------------------------------------------------------ routing

    fn handle_response(&mut self, now: Instant, resp: Message) {
        let (Ok(via), Ok(cseq)) = (resp.top_via(), resp.cseq()) else {
            return;
        };
        let Some(branch) = via.branch() else { return };
        let clients = &mut self.ep.clients;
        let Some(idx) = clients.iter().position(|t| t.matches(branch, &cseq.method)) else {
            trace!("response matches no transaction; dropped");
            return;
        };
        let verdict = clients[idx].on_response(now, &resp);
        let owner = clients[idx].owner;
        let request = clients[idx].request.clone();
        if clients[idx].state == ClientState::Terminated {
            clients.remove(idx);
        }
        match verdict {
            ClientVerdict::Absorb => {}
            ClientVerdict::AckOnly(ack) => self.ep.transmit(&ack),
            ClientVerdict::AckAndDeliver(ack) => {
                self.ep.transmit(&ack);
                self.deliver_response(now, owner, &request, &resp);
            }
            ClientVerdict::Deliver => self.deliver_response(now, owner, &request, &resp),
        }
    }

    fn deliver_response(&mut self, now: Instant, owner: Owner, request: &Message, resp: &Message) {
        match owner {
            Owner::Register => self
                .registration
                .on_response(&mut self.ep, now, request, resp),
            Owner::Message(id) => self
                .messaging
                .on_response(&mut self.ep, now, id, request, resp),
            Owner::Session(id, which) => {
                self.sessions
                    .on_response(&mut self.ep, now, id, which, request, resp)
            }
        }
    }

    fn handle_malformed(&mut self, input: &[u8], err: SipError) {
        let detail = err.to_string();
        debug!(%detail, "malformed message");
        if let Some(s) = message::salvage(input)
            && let Some(method) = &s.method
            && method != "ACK"
        {
            let (status, reason) = match &err {
                SipError::UnsupportedVersion(_) => (505, "Version Not Supported".to_owned()),
                SipError::Malformed { what, .. } => (400, format!("Bad {what}")),
                _ => (400, "Bad Request".to_owned()),
            };
            let mut resp = Message::new_response(status, &reason);
            for v in &s.vias {
                resp.push_header("Via", v.clone());
            }
            resp.push_header("From", s.from.clone());
            let to = if s.to.contains(";tag=") {
                s.to.clone()
            } else {
                format!("{};tag={}", s.to, token(&mut self.ep.rng, 10))
            };
            resp.push_header("To", to);
            resp.push_header("Call-ID", s.call_id.clone());
            resp.push_header("CSeq", s.cseq.clone());
            self.ep.transmit(&resp);
        }
        self.ep.emit(UaEvent::ProtocolError { detail });
    }

    fn handle_request(&mut self, now: Instant, req: Message) {
        let (Ok(via), Some(method)) = (req.top_via(), req.method().cloned()) else {
            return;
        };
        let branch = via.branch().unwrap_or("").to_owned();
        let sent_by = via.sent_by();
        let ep = &mut self.ep;

        if method == Method::Ack {
            // ACK of a non-2xx: absorbed by the INVITE server transaction (Timer I = 0).
            if let Some(idx) = ep.servers.iter().position(|t| {
                t.matches(&branch, &sent_by, &Method::Ack) && t.state == ServerState::Completed
            }) {
                ep.servers.remove(idx);
                return;
            }
            // ACK of a 2xx: belongs to the dialog (§13.3.1.4).
            self.sessions.on_ack(ep, now, &req);
            return;
        }
        // Retransmission of a request we already have a transaction for (§17.2.3).
        if let Some(txn) = ep
            .servers
            .iter()
            .find(|t| t.matches(&branch, &sent_by, &method))
        {
            if let Some(last) = txn.last_response.clone() {
                ep.transmit_bytes(last);
            }
            return;
        }
        if method == Method::Cancel {
            // §9.2: the CANCEL matches the INVITE server transaction with the same branch.
            let invite_state = ep
                .servers
                .iter()
                .find(|t| t.matches(&branch, &sent_by, &Method::Invite))
                .map(|t| t.state);
            let Some(state) = invite_state else {
                ep.reply(now, &req, 481, &[]);
                return;
            };
            ep.reply(now, &req, 200, &[]);
            if state == ServerState::Proceeding {
                self.sessions.on_cancel(ep, now, &branch);
            }
            return;
        }
        ep.open_server_txn(branch, sent_by, method.clone());
        // §8.2.2.3: option tags we do not understand → 420 with Unsupported.
        let unsupported: Vec<String> = req
            .list_header("Require")
            .into_iter()
            .filter(|o| {
                !crate::endpoint::SUPPORTED_OPTIONS
                    .iter()
                    .any(|s| s.eq_ignore_ascii_case(o))
            })
            .map(str::to_owned)
            .collect();
        if !unsupported.is_empty() {
            ep.reply(now, &req, 420, &[("Unsupported", unsupported.join(", "))]);
            return;
        }
        if req
            .to()
            .ok()
            .and_then(|t| t.tag().map(str::to_owned))
            .is_some()
        {
            if let Some(message) = self.sessions.on_request_in_dialog(ep, now, req) {
                self.messaging.on_request(ep, now, message);
            }
            return;
        }
        match method {
            Method::Invite => self.sessions.on_new_invite(ep, now, req),
            Method::Options => ep.reply(
                now,
                &req,
                200,
                &[
                    ("Allow", ALLOW.to_owned()),
                    ("Accept", "application/sdp, text/plain, */*".to_owned()),
                    ("Supported", crate::endpoint::SUPPORTED.to_owned()),
                ],
            ),
            Method::Message => self.messaging.on_request(ep, now, req),
            // Requests that only make sense inside a dialog we do not have (§12.2.2).
            Method::Bye | Method::Update | Method::Info | Method::Notify | Method::Refer => {
                ep.reply(now, &req, 481, &[])
            }
            _ => ep.reply(now, &req, 405, &[("Allow", ALLOW.to_owned())]),
        }
    }
}
