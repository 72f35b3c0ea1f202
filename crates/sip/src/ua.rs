//! The user agent: ties transactions, dialogs, registration and digest auth together and
//! exposes the `handle_*` / commands / `poll_*` surface described in the crate docs.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tracing::{debug, trace};

use crate::auth::{self, Challenge, DigestInput};
use crate::dialog::{Dialog, without_tag};
use crate::error::SipError;
use crate::message::{self, Message, Method, NameAddr, StartLine, Uri};
use crate::reason::Reason;
use crate::registration::{RegState, Registration, refresh_delay};
use crate::timer::{MESSAGE_ANSWER_WAIT, T1, T2, TIMEOUT_64T1, TimerTable};
use crate::transaction::{
    ClientState, ClientTxn, ClientVerdict, Owner, ServerState, ServerTxn, client_timer,
    server_timer,
};

/// Methods we accept (Allow header, §20.5).
pub const ALLOW: &str = "INVITE, ACK, BYE, CANCEL, OPTIONS, MESSAGE";
/// Option tags we understand in Require (§8.2.2.3).
const SUPPORTED_OPTIONS: &[&str] = &["outbound", "path"];
const MAX_AUTH_RETRIES: u8 = 2;

/// Configuration of one account.
#[derive(Debug, Clone)]
pub struct UaConfig {
    /// Address of record, e.g. `sip:alice@example.com`.
    pub aor: String,
    /// Display name for From.
    pub display_name: Option<String>,
    /// Digest username; defaults to the AoR user part.
    pub auth_username: Option<String>,
    /// Digest password (kept in memory only, never logged).
    pub password: String,
    /// UUID used as `+sip.instance="<urn:uuid:...>"` (RFC 5626 §4.1).
    pub instance_id: String,
    /// Requested registration lifetime in seconds.
    pub register_expires: u32,
    /// User-Agent header value.
    pub user_agent: String,
    /// `wss` (SIP/2.0/WSS, `transport=wss`) instead of `ws`.
    pub secure: bool,
    /// SIP URI of an outbound proxy, put in a preloaded Route with `;lr`.
    pub outbound_proxy: Option<String>,
    /// Seed for branches, tags, Call-IDs and cnonces.
    pub rng_seed: u64,
}

/// Local handle of a call (not the SIP Call-ID).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallId(u64);

/// Local handle of an outgoing MESSAGE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(u64);

/// Local handle of an incoming MESSAGE that awaits its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IncomingMessageId(u64);

/// A party of a call or message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Party {
    /// Display name, unquoted.
    pub display_name: Option<String>,
    /// The URI.
    pub uri: String,
}

impl From<&NameAddr> for Party {
    fn from(na: &NameAddr) -> Self {
        Party {
            display_name: na.display_name.clone(),
            uri: na.uri.to_string(),
        }
    }
}

/// Why a call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndReason {
    /// We hung up (BYE, CANCEL, or declined/rejected an incoming call).
    LocalHangup,
    /// The peer sent BYE, saying why if it used a Reason header (RFC 3326).
    RemoteHangup {
        /// The BYE's Reason, if any.
        reason: Option<Reason>,
    },
    /// The caller cancelled before we answered.
    Cancelled,
    /// The peer answered our INVITE with a final error.
    Rejected {
        /// status code
        status: u16,
        /// reason phrase
        reason: String,
    },
    /// Local failure: transaction timeout (408), missing ACK (408), transport loss (503).
    Failed {
        /// status code
        status: u16,
        /// reason
        reason: String,
    },
}

/// Events for the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UaEvent {
    /// The registrar accepted our binding.
    Registered {
        /// Granted lifetime.
        expires: Duration,
        /// The registrar answered with `Require: outbound` (RFC 5626 §5.2).
        outbound: bool,
    },
    /// REGISTER failed (status 0: timeout or transport).
    RegistrationFailed {
        /// status code or 0
        status: u16,
        /// reason
        reason: String,
    },
    /// Our binding was removed.
    Unregistered,
    /// A new incoming INVITE.
    IncomingCall {
        /// handle
        call: CallId,
        /// caller
        from: Party,
        /// callee as addressed
        to: Party,
        /// SDP offer
        sdp: Option<String>,
    },
    /// 1xx to our INVITE (other than 100).
    CallProgress {
        /// handle
        call: CallId,
        /// status
        status: u16,
        /// reason phrase
        reason: String,
        /// early SDP
        sdp: Option<String>,
    },
    /// 2xx to our INVITE; the ACK is already queued.
    CallAnswered {
        /// handle
        call: CallId,
        /// SDP answer
        sdp: Option<String>,
    },
    /// The ACK for our 2xx arrived.
    CallConfirmed {
        /// handle
        call: CallId,
    },
    /// The peer sent a re-INVITE; answer with `answer_reoffer`.
    Reoffer {
        /// handle
        call: CallId,
        /// new offer
        sdp: Option<String>,
    },
    /// The call is over; the handle is now invalid.
    CallEnded {
        /// handle
        call: CallId,
        /// why
        reason: EndReason,
    },
    /// An incoming MESSAGE, not answered yet: answer it with [`UserAgent::answer_message`]
    /// once it is kept for good, because a 2xx tells the sender it was delivered (RFC 3428 §7)
    /// and the sender will not send it again. Unanswered after [`MESSAGE_ANSWER_WAIT`], the
    /// core answers 500 itself and reports [`UaEvent::MessageAnswerTimedOut`].
    MessageReceived {
        /// handle for the answer
        id: IncomingMessageId,
        /// The same for every copy of this request (its Call-ID, CSeq number and From tag),
        /// so a copy that comes in a transaction of its own, after ours has ended, is known.
        stable_id: String,
        /// sender
        from: Party,
        /// recipient as addressed
        to: Party,
        /// media type
        content_type: String,
        /// body
        body: Vec<u8>,
    },
    /// An incoming MESSAGE was not answered within [`MESSAGE_ANSWER_WAIT`]; the core
    /// answered it 500 (Server Internal Error), so the sender knows it was not delivered.
    MessageAnswerTimedOut {
        /// handle
        id: IncomingMessageId,
    },
    /// Our MESSAGE got a 2xx.
    MessageDelivered {
        /// handle
        id: MessageId,
    },
    /// Our MESSAGE failed.
    MessageFailed {
        /// handle
        id: MessageId,
        /// status (408 timeout, 503 transport)
        status: u16,
        /// reason
        reason: String,
    },
    /// Malformed input (already answered with 400/505 when possible).
    ProtocolError {
        /// what was wrong
        detail: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CallState {
    /// Outgoing, INVITE sent, no provisional yet.
    Calling,
    /// Outgoing, provisional received.
    Early,
    /// Incoming, not answered (possibly ringing).
    Incoming,
    /// Incoming, 2xx sent, waiting for ACK.
    Answered,
    /// Confirmed dialog.
    Confirmed,
}

impl CallState {
    fn name(self) -> &'static str {
        match self {
            CallState::Calling => "calling",
            CallState::Early => "early",
            CallState::Incoming => "incoming",
            CallState::Answered => "answered",
            CallState::Confirmed => "confirmed",
        }
    }
}

mod call_timer {
    /// Retransmit our 2xx until ACK (§13.3.1.4).
    pub const RETRANSMIT_2XX: usize = 0;
    /// Give up waiting for the ACK after 64*T1 (§13.3.1.4).
    pub const ACK_TIMEOUT: usize = 1;
}

#[derive(Debug, Clone)]
struct Call {
    outgoing: bool,
    state: CallState,
    dialog: Dialog,
    /// Outgoing: the INVITE as last sent. Incoming: the INVITE received.
    invite: Message,
    /// Outgoing: branch of the INVITE client transaction. Incoming: server txn branch.
    invite_branch: String,
    auth_retries: u8,
    /// Hangup requested before any provisional: send CANCEL on the first 1xx (§9.1).
    cancel_pending: bool,
    /// CallEnded was already emitted; the record only lingers to finish the signalling.
    ended: bool,
    /// Hangup requested while our 2xx awaits its ACK (§15: BYE only after ACK or timeout).
    bye_pending: bool,
    /// The Reason (RFC 3326) for the CANCEL or BYE that ends the call.
    hangup_reason: Option<Reason>,
    /// Outgoing: the ACK for the 2xx, resent when the 2xx is retransmitted.
    ack: Option<Vec<u8>>,
    /// Incoming: our 2xx, retransmitted until ACK.
    final_2xx: Option<Vec<u8>>,
    retransmit_interval: Duration,
    timers: TimerTable<2>,
    /// Pending re-INVITE server transaction branch (answered with `answer_reoffer`).
    reinvite: Option<Message>,
}

#[derive(Debug, Clone)]
struct OutMessage {
    auth_retries: u8,
}

mod in_message_timer {
    /// Answer 500 when the engine has not answered by then.
    pub const ANSWER_BY: usize = 0;
}

/// An incoming MESSAGE whose server transaction waits for `answer_message`.
#[derive(Debug, Clone)]
struct InMessage {
    /// The request without its body, to build the response from.
    request: Message,
    timers: TimerTable<1>,
}

/// The sans-IO SIP user agent. See the crate documentation for the event-loop contract.
#[derive(Debug)]
pub struct UserAgent {
    cfg: UaConfig,
    aor: Uri,
    auth_username: String,
    rng: StdRng,
    /// Random `.invalid` host for Via and Contact (RFC 7118 §5.2).
    local_host: String,
    /// Contact URI user part.
    contact_user: String,
    connected: bool,
    transmits: VecDeque<Vec<u8>>,
    events: VecDeque<UaEvent>,
    next_handle: u64,
    clients: Vec<ClientTxn>,
    servers: Vec<ServerTxn>,
    calls: BTreeMap<u64, Call>,
    messages: BTreeMap<u64, OutMessage>,
    incoming_messages: BTreeMap<u64, InMessage>,
    registration: Registration,
    /// Registration refresh: one slot.
    reg_timers: TimerTable<1>,
    /// Last nonce used and its count, so a reused nonce gets an increasing nc (RFC 7616 §3.4).
    nonce_count: Option<(String, u32)>,
}

const REG_REFRESH: usize = 0;

fn token(rng: &mut StdRng, len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

fn sdp_body(msg: &Message) -> Option<String> {
    if msg.body.is_empty() || msg.content_type().as_deref() != Some("application/sdp") {
        return None;
    }
    Some(String::from_utf8_lossy(&msg.body).into_owned())
}

impl UserAgent {
    /// Validates the configuration and creates an idle, disconnected UA.
    pub fn new(config: UaConfig) -> Result<Self, SipError> {
        let aor =
            Uri::parse(&config.aor).map_err(|e| SipError::InvalidConfig(format!("AoR: {e}")))?;
        if !aor.is_sip() {
            return Err(SipError::InvalidConfig(
                "AoR must be a sip: or sips: URI".into(),
            ));
        }
        let Some(user) = aor.user.clone() else {
            return Err(SipError::InvalidConfig("AoR has no user part".into()));
        };
        if config.instance_id.is_empty()
            || !config
                .instance_id
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == '-')
        {
            return Err(SipError::InvalidConfig("instance_id must be a UUID".into()));
        }
        if let Some(proxy) = &config.outbound_proxy {
            let u = Uri::parse(proxy)
                .map_err(|e| SipError::InvalidConfig(format!("outbound proxy: {e}")))?;
            if !u.is_sip() {
                return Err(SipError::InvalidConfig(
                    "outbound proxy must be a SIP URI".into(),
                ));
            }
        }
        if config.user_agent.contains(['\r', '\n']) {
            return Err(SipError::InvalidConfig("user_agent contains CR/LF".into()));
        }
        let mut rng = StdRng::seed_from_u64(config.rng_seed);
        let local_host = format!("{}.invalid", token(&mut rng, 12));
        let reg_call_id = token(&mut rng, 22);
        let reg_tag = token(&mut rng, 10);
        let auth_username = config.auth_username.clone().unwrap_or_else(|| user.clone());
        let registration = Registration::new(reg_call_id, reg_tag, config.register_expires);
        Ok(UserAgent {
            aor,
            auth_username,
            rng,
            local_host,
            contact_user: user,
            connected: false,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            next_handle: 1,
            clients: Vec::new(),
            servers: Vec::new(),
            calls: BTreeMap::new(),
            messages: BTreeMap::new(),
            incoming_messages: BTreeMap::new(),
            registration,
            reg_timers: TimerTable::new(),
            nonce_count: None,
            cfg: config,
        })
    }

    // ------------------------------------------------------------------ getters

    /// The Contact URI this UA registers (`sip:user@host.invalid;transport=ws;ob`).
    pub fn contact_uri(&self) -> String {
        format!(
            "sip:{}@{};transport={};ob",
            self.contact_user,
            self.local_host,
            self.transport_param()
        )
    }

    /// True while the flow is up.
    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// Keepalive interval from the registrar's Flow-Timer (RFC 5626 §4.4.1), if any.
    pub fn keepalive_interval(&self) -> Option<Duration> {
        self.registration.keepalive
    }

    fn transport_param(&self) -> &'static str {
        if self.cfg.secure { "wss" } else { "ws" }
    }

    // ------------------------------------------------------------------ outputs

    /// One serialized SIP message to send as one WebSocket message.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmits.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<UaEvent> {
        self.events.pop_front()
    }

    /// The earliest deadline at which `handle_timeout` must be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let clients = self.clients.iter().filter_map(|t| t.timers.next());
        let servers = self.servers.iter().filter_map(|t| t.timers.next());
        let calls = self.calls.values().filter_map(|c| c.timers.next());
        let incoming = self
            .incoming_messages
            .values()
            .filter_map(|m| m.timers.next());
        clients
            .chain(servers)
            .chain(calls)
            .chain(incoming)
            .chain(self.reg_timers.next())
            .min()
    }

    // ------------------------------------------------------------------ flow state

    /// The flow (WebSocket) is up. Re-registers if registration is wanted (RFC 5626 §4.4.1
    /// flow recovery: a new flow needs a new REGISTER).
    pub fn handle_connected(&mut self, now: Instant) {
        debug!("flow up");
        self.connected = true;
        if self.registration.wanted && !matches!(self.registration.state, RegState::Registering) {
            self.registration.auth_retries = 0;
            self.registration.retried_423 = false;
            self.send_register(now, self.cfg.register_expires);
        }
    }

    /// The flow is down: client transactions fail, the binding is considered lost.
    pub fn handle_disconnected(&mut self, _now: Instant) {
        debug!("flow down");
        self.connected = false;
        self.reg_timers.stop_all();
        self.registration.keepalive = None;
        let clients = std::mem::take(&mut self.clients);
        for txn in clients {
            match txn.owner {
                Owner::Invite(id) if txn.state != ClientState::Accepted => {
                    self.end_call(
                        id,
                        EndReason::Failed {
                            status: 503,
                            reason: "transport closed".into(),
                        },
                    );
                }
                Owner::Message(id) if self.messages.remove(&id).is_some() => {
                    self.events.push_back(UaEvent::MessageFailed {
                        id: MessageId(id),
                        status: 503,
                        reason: "transport closed".into(),
                    });
                }
                _ => {}
            }
        }
        match self.registration.state {
            RegState::Registered | RegState::Registering => {
                self.registration.state = RegState::Idle;
                self.events.push_back(UaEvent::RegistrationFailed {
                    status: 0,
                    reason: "flow closed".into(),
                });
            }
            RegState::Unregistering => {
                self.registration.state = RegState::Idle;
                self.events.push_back(UaEvent::Unregistered);
            }
            RegState::Idle | RegState::Failed => {}
        }
        // Unanswered incoming calls cannot be answered over a dead flow.
        let unanswered: Vec<u64> = self
            .calls
            .iter()
            .filter(|(_, c)| !c.outgoing && c.state == CallState::Incoming)
            .map(|(id, _)| *id)
            .collect();
        for id in unanswered {
            self.end_call(
                id,
                EndReason::Failed {
                    status: 503,
                    reason: "transport closed".into(),
                },
            );
        }
        // Nor can incoming MESSAGEs: their transactions die with the flow, and the sender's
        // proxy answers them for us.
        if !self.incoming_messages.is_empty() {
            debug!(
                count = self.incoming_messages.len(),
                "flow down: incoming MESSAGEs left unanswered"
            );
            self.incoming_messages.clear();
        }
        self.servers.clear();
    }

    // ------------------------------------------------------------------ commands

    /// Starts (or keeps) registration. When the flow is down it happens on `handle_connected`.
    pub fn register(&mut self, now: Instant) -> Result<(), SipError> {
        self.registration.wanted = true;
        if self.connected && self.registration.state != RegState::Registering {
            self.registration.auth_retries = 0;
            self.registration.retried_423 = false;
            self.send_register(now, self.cfg.register_expires);
        }
        Ok(())
    }

    /// Removes our binding (Expires: 0).
    pub fn unregister(&mut self, now: Instant) -> Result<(), SipError> {
        self.registration.wanted = false;
        self.reg_timers.stop_all();
        if !self.connected {
            if self.registration.state != RegState::Idle {
                self.registration.state = RegState::Idle;
                self.events.push_back(UaEvent::Unregistered);
            }
            return Ok(());
        }
        self.clients.retain(|t| t.owner != Owner::Register);
        self.registration.auth_retries = 0;
        self.send_register(now, 0);
        Ok(())
    }

    /// Places a call. `target` is a SIP URI (`sip:bob@example.com`).
    pub fn invite(&mut self, now: Instant, target: &str, sdp: String) -> Result<CallId, SipError> {
        if !self.connected {
            return Err(SipError::NotConnected);
        }
        let target_uri = parse_target(target)?;
        let id = self.next_handle();
        let dialog = Dialog {
            call_id: token(&mut self.rng, 22),
            local_tag: token(&mut self.rng, 10),
            remote_tag: None,
            local_uri: self.local_name_addr(),
            remote_uri: format!("<{target_uri}>"),
            local_seq: 1,
            remote_seq: None,
            remote_target: target_uri.clone(),
            route_set: Vec::new(),
        };
        let mut req = self.out_of_dialog_request(
            Method::Invite,
            target_uri,
            &dialog.remote_uri,
            &dialog.local_party_value(),
            &dialog.call_id,
            1,
        );
        req.push_header("Contact", format!("<{}>", self.contact_uri()));
        req.push_header("Allow", ALLOW);
        req.push_header("Content-Type", "application/sdp");
        req.body = sdp.into_bytes();
        let branch = self.start_client_txn(now, req.clone(), Owner::Invite(id));
        // Keep the INVITE as sent (with its Via) for CANCEL and auth retries.
        let req = self
            .clients
            .last()
            .map(|t| t.request.clone())
            .unwrap_or(req);
        self.calls.insert(
            id,
            Call {
                outgoing: true,
                state: CallState::Calling,
                dialog,
                invite: req,
                invite_branch: branch,
                auth_retries: 0,
                cancel_pending: false,
                ended: false,
                bye_pending: false,
                hangup_reason: None,
                ack: None,
                final_2xx: None,
                retransmit_interval: T1,
                timers: TimerTable::new(),
                reinvite: None,
            },
        );
        debug!(call = id, "outgoing call");
        Ok(CallId(id))
    }

    /// Sends 180 Ringing for an incoming call.
    pub fn ring(&mut self, now: Instant, call: CallId) -> Result<(), SipError> {
        let c = self.calls.get(&call.0).ok_or(SipError::UnknownCall)?;
        if c.outgoing || c.state != CallState::Incoming || c.ended {
            return Err(SipError::InvalidCallState {
                state: c.state.name(),
                action: "ring",
            });
        }
        let mut resp = self.response_to(&c.invite, 180, "Ringing", Some(&c.dialog.local_tag));
        resp.push_header("Contact", format!("<{}>", self.contact_uri()));
        let branch = c.invite_branch.clone();
        self.send_server_response(now, &branch, &Method::Invite, resp);
        Ok(())
    }

    /// Answers an incoming call with 200 OK and our SDP.
    pub fn answer(&mut self, now: Instant, call: CallId, sdp: String) -> Result<(), SipError> {
        let c = self.calls.get(&call.0).ok_or(SipError::UnknownCall)?;
        if c.outgoing || c.state != CallState::Incoming || c.ended {
            return Err(SipError::InvalidCallState {
                state: c.state.name(),
                action: "answer",
            });
        }
        let mut resp = self.response_to(&c.invite, 200, "OK", Some(&c.dialog.local_tag));
        resp.push_header("Contact", format!("<{}>", self.contact_uri()));
        resp.push_header("Allow", ALLOW);
        resp.push_header("Supported", "outbound");
        resp.push_header("Content-Type", "application/sdp");
        resp.body = sdp.into_bytes();
        let bytes = resp.to_bytes();
        let branch = c.invite_branch.clone();
        self.send_server_response(now, &branch, &Method::Invite, resp);
        if let Some(c) = self.calls.get_mut(&call.0) {
            c.state = CallState::Answered;
            c.final_2xx = Some(bytes);
            c.retransmit_interval = T1;
            c.timers.set(call_timer::RETRANSMIT_2XX, now + T1);
            c.timers.set(call_timer::ACK_TIMEOUT, now + TIMEOUT_64T1);
        }
        Ok(())
    }

    /// Rejects an incoming call with a final error status (300..=699).
    pub fn reject(&mut self, now: Instant, call: CallId, status: u16) -> Result<(), SipError> {
        if !(300..=699).contains(&status) {
            return Err(SipError::InvalidStatus(status));
        }
        let c = self.calls.get(&call.0).ok_or(SipError::UnknownCall)?;
        if c.outgoing || c.state != CallState::Incoming || c.ended {
            return Err(SipError::InvalidCallState {
                state: c.state.name(),
                action: "reject",
            });
        }
        let resp = self.response_to(
            &c.invite,
            status,
            reason_phrase(status),
            Some(&c.dialog.local_tag),
        );
        let branch = c.invite_branch.clone();
        self.send_server_response(now, &branch, &Method::Invite, resp);
        self.end_call(call.0, EndReason::LocalHangup);
        Ok(())
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
        let c = self.calls.get_mut(&call.0).ok_or(SipError::UnknownCall)?;
        if c.ended {
            return Err(SipError::UnknownCall);
        }
        c.hangup_reason = reason;
        let c = self.calls.get(&call.0).ok_or(SipError::UnknownCall)?;
        match (c.outgoing, c.state) {
            (true, CallState::Calling) => {
                // §9.1: no CANCEL before a provisional response; send it when one arrives.
                if let Some(c) = self.calls.get_mut(&call.0) {
                    c.cancel_pending = true;
                }
                self.mark_ended(call.0, EndReason::LocalHangup);
            }
            (true, CallState::Early) => {
                self.send_cancel(now, call.0);
                self.mark_ended(call.0, EndReason::LocalHangup);
            }
            (false, CallState::Incoming) => {
                let resp = self.response_to(&c.invite, 603, "Decline", Some(&c.dialog.local_tag));
                let branch = c.invite_branch.clone();
                self.send_server_response(now, &branch, &Method::Invite, resp);
                self.end_call(call.0, EndReason::LocalHangup);
            }
            (false, CallState::Answered) => {
                if let Some(c) = self.calls.get_mut(&call.0) {
                    c.bye_pending = true;
                }
                self.mark_ended(call.0, EndReason::LocalHangup);
            }
            (_, CallState::Confirmed) => {
                self.send_bye(now, call.0);
                self.end_call(call.0, EndReason::LocalHangup);
            }
            (_, state) => {
                return Err(SipError::InvalidCallState {
                    state: state.name(),
                    action: "hang up",
                });
            }
        }
        Ok(())
    }

    /// Answers a pending re-INVITE with 200 OK and our SDP.
    pub fn answer_reoffer(
        &mut self,
        now: Instant,
        call: CallId,
        sdp: String,
    ) -> Result<(), SipError> {
        let c = self.calls.get_mut(&call.0).ok_or(SipError::UnknownCall)?;
        let Some(reinvite) = c.reinvite.take() else {
            return Err(SipError::InvalidCallState {
                state: c.state.name(),
                action: "answer a re-offer (none pending)",
            });
        };
        let local_tag = c.dialog.local_tag.clone();
        let mut resp = self.response_to(&reinvite, 200, "OK", Some(&local_tag));
        resp.push_header("Contact", format!("<{}>", self.contact_uri()));
        resp.push_header("Content-Type", "application/sdp");
        resp.body = sdp.into_bytes();
        let branch = reinvite
            .top_via()
            .ok()
            .and_then(|v| v.branch().map(str::to_owned))
            .unwrap_or_default();
        self.send_server_response(now, &branch, &Method::Invite, resp);
        Ok(())
    }

    /// Sends a MESSAGE (RFC 3428) outside any dialog.
    pub fn send_message(
        &mut self,
        now: Instant,
        target: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<MessageId, SipError> {
        if !self.connected {
            return Err(SipError::NotConnected);
        }
        let target_uri = parse_target(target)?;
        if content_type.is_empty() || content_type.contains(['\r', '\n']) {
            return Err(SipError::InvalidConfig("bad content type".into()));
        }
        let id = self.next_handle();
        let call_id = token(&mut self.rng, 22);
        let from = format!(
            "{};tag={}",
            self.local_name_addr(),
            token(&mut self.rng, 10)
        );
        let mut req = self.out_of_dialog_request(
            Method::Message,
            target_uri.clone(),
            &format!("<{target_uri}>"),
            &from,
            &call_id,
            1,
        );
        req.push_header("Content-Type", content_type);
        req.body = body;
        self.start_client_txn(now, req, Owner::Message(id));
        self.messages.insert(id, OutMessage { auth_retries: 0 });
        Ok(MessageId(id))
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
        if !(200..=699).contains(&status) {
            return Err(SipError::InvalidStatus(status));
        }
        let pending = self
            .incoming_messages
            .remove(&id.0)
            .ok_or(SipError::UnknownMessage)?;
        self.reply(now, &pending.request, status, &[]);
        Ok(())
    }

    // ------------------------------------------------------------------ input

    /// One received WebSocket message.
    pub fn handle_input(&mut self, now: Instant, input: &[u8]) {
        if input.iter().all(|b| *b == b'\r' || *b == b'\n') {
            // RFC 5626 §4.4.1 double-CRLF ping gets a CRLF pong; a lone CRLF is a pong.
            if input.len() >= 4 {
                self.transmits.push_back(b"\r\n".to_vec());
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
        // Client transactions.
        let mut timed_out = Vec::new();
        for txn in &mut self.clients {
            if txn.timers.take_expired(client_timer::TIMEOUT, now) {
                txn.state = ClientState::Terminated;
                timed_out.push(txn.owner);
            }
            if txn.timers.take_expired(client_timer::ACCEPTED, now) {
                txn.state = ClientState::Terminated;
            }
        }
        self.clients.retain(|t| t.state != ClientState::Terminated);
        for owner in timed_out {
            self.on_client_timeout(now, owner);
        }
        // Server transactions.
        for txn in &mut self.servers {
            if txn.timers.take_expired(server_timer::LINGER, now) {
                txn.state = ServerState::Terminated;
            }
        }
        self.servers.retain(|t| t.state != ServerState::Terminated);
        // Incoming MESSAGEs the engine did not answer in time.
        let late: Vec<u64> = self
            .incoming_messages
            .iter_mut()
            .filter_map(|(id, m)| {
                m.timers
                    .take_expired(in_message_timer::ANSWER_BY, now)
                    .then_some(*id)
            })
            .collect();
        for id in late {
            if let Some(pending) = self.incoming_messages.remove(&id) {
                debug!(message = id, "incoming MESSAGE not answered in time; 500");
                self.reply(now, &pending.request, 500, &[]);
                self.events.push_back(UaEvent::MessageAnswerTimedOut {
                    id: IncomingMessageId(id),
                });
            }
        }
        // Calls.
        let ids: Vec<u64> = self.calls.keys().copied().collect();
        for id in ids {
            let Some(call) = self.calls.get_mut(&id) else {
                continue;
            };
            if call.timers.take_expired(call_timer::RETRANSMIT_2XX, now)
                && let Some(bytes) = call.final_2xx.clone()
            {
                {
                    call.retransmit_interval = (call.retransmit_interval * 2).min(T2);
                    call.timers
                        .set(call_timer::RETRANSMIT_2XX, now + call.retransmit_interval);
                    self.transmits.push_back(bytes);
                }
            }
            let Some(call) = self.calls.get_mut(&id) else {
                continue;
            };
            if call.timers.take_expired(call_timer::ACK_TIMEOUT, now) {
                call.timers.stop_all();
                call.state = CallState::Confirmed;
                debug!(call = id, "no ACK for 2xx within 64*T1; sending BYE");
                self.send_bye(now, id);
                self.end_call(
                    id,
                    EndReason::Failed {
                        status: 408,
                        reason: "no ACK received".into(),
                    },
                );
            }
        }
        // Registration refresh.
        if self.reg_timers.take_expired(REG_REFRESH, now)
            && self.registration.wanted
            && self.connected
        {
            debug!("refreshing registration");
            self.registration.auth_retries = 0;
            self.registration.retried_423 = false;
            self.send_register(now, self.cfg.register_expires);
        }
    }

    // ------------------------------------------------------------------ internals: sending

    fn next_handle(&mut self) -> u64 {
        let h = self.next_handle;
        self.next_handle += 1;
        h
    }

    fn new_branch(&mut self) -> String {
        format!("z9hG4bK{}", token(&mut self.rng, 16))
    }

    fn via_value(&self, branch: &str) -> String {
        format!(
            "SIP/2.0/{} {};branch={branch};rport",
            if self.cfg.secure { "WSS" } else { "WS" },
            self.local_host
        )
    }

    fn local_name_addr(&self) -> String {
        let na = NameAddr {
            display_name: self.cfg.display_name.clone(),
            uri: self.aor.clone(),
            params: Vec::new(),
        };
        na.to_string()
    }

    fn transmit(&mut self, msg: &Message) {
        let bytes = msg.to_bytes();
        trace!(message = %String::from_utf8_lossy(&bytes), "send");
        self.transmits.push_back(bytes);
    }

    /// A request outside any dialog, with the preloaded outbound-proxy Route (§8.1.1).
    fn out_of_dialog_request(
        &mut self,
        method: Method,
        ruri: Uri,
        to: &str,
        from: &str,
        call_id: &str,
        cseq: u32,
    ) -> Message {
        let mut req = Message::new_request(method.clone(), ruri);
        req.push_header("Via", "");
        req.push_header("Max-Forwards", "70");
        if let Some(proxy) = &self.cfg.outbound_proxy {
            let route = if proxy.contains(";lr") {
                format!("<{proxy}>")
            } else {
                format!("<{proxy};lr>")
            };
            req.push_header("Route", route);
        }
        req.push_header("To", to);
        req.push_header("From", from);
        req.push_header("Call-ID", call_id);
        req.push_header("CSeq", format!("{cseq} {method}"));
        req.push_header("Supported", "outbound, path");
        req.push_header("User-Agent", self.cfg.user_agent.clone());
        req
    }

    /// A request inside a dialog (§12.2.1.1).
    fn in_dialog_request(&mut self, method: Method, dialog: &Dialog, cseq: u32) -> Message {
        let (ruri, routes) = dialog.request_target();
        let mut req = Message::new_request(method.clone(), ruri);
        req.push_header("Via", "");
        req.push_header("Max-Forwards", "70");
        for r in routes {
            req.push_header("Route", r);
        }
        req.push_header("To", dialog.remote_party_value());
        req.push_header("From", dialog.local_party_value());
        req.push_header("Call-ID", dialog.call_id.clone());
        req.push_header("CSeq", format!("{cseq} {method}"));
        req.push_header("User-Agent", self.cfg.user_agent.clone());
        req
    }

    /// Sets a fresh branch in the (placeholder) top Via.
    fn stamp_via(&mut self, req: &mut Message) -> String {
        let branch = self.new_branch();
        let via = self.via_value(&branch);
        match req.headers.iter_mut().find(|h| h.name == "Via") {
            Some(h) => h.value = via,
            None => req.headers.insert(
                0,
                message::Header {
                    name: "Via".into(),
                    value: via,
                },
            ),
        }
        branch
    }

    fn start_client_txn(&mut self, now: Instant, mut req: Message, owner: Owner) -> String {
        let branch = self.stamp_via(&mut req);
        let method = req.method().cloned().unwrap_or(Method::Options);
        self.transmit(&req);
        let mut timers = TimerTable::new();
        // Timer B / F = 64*T1; A and E are not armed on a reliable transport (§17.1).
        timers.set(client_timer::TIMEOUT, now + TIMEOUT_64T1);
        self.clients.push(ClientTxn {
            branch: branch.clone(),
            method,
            request: req,
            state: ClientState::Calling,
            timers,
            owner,
        });
        branch
    }

    fn send_register(&mut self, now: Instant, expires: u32) {
        self.clients.retain(|t| t.owner != Owner::Register);
        self.registration.cseq += 1;
        self.registration.requested_expires = expires;
        self.registration.state = if expires == 0 {
            RegState::Unregistering
        } else {
            RegState::Registering
        };
        let req = self.build_register(expires);
        self.start_client_txn(now, req, Owner::Register);
    }

    fn build_register(&mut self, expires: u32) -> Message {
        let registrar = Uri {
            scheme: self.aor.scheme.clone(),
            user: None,
            password: None,
            host: self.aor.host.clone(),
            port: self.aor.port,
            params: Vec::new(),
            headers: None,
            opaque: None,
        };
        let aor = format!("<{}>", self.aor);
        let from = format!(
            "{};tag={}",
            self.local_name_addr(),
            self.registration.from_tag
        );
        let call_id = self.registration.call_id.clone();
        let mut req = self.out_of_dialog_request(
            Method::Register,
            registrar,
            &aor,
            &from,
            &call_id,
            self.registration.cseq,
        );
        req.push_header(
            "Contact",
            format!(
                "<{}>;+sip.instance=\"<urn:uuid:{}>\";reg-id=1;expires={expires}",
                self.contact_uri(),
                self.cfg.instance_id
            ),
        );
        req.push_header("Expires", expires.to_string());
        req.push_header("Allow", ALLOW);
        req
    }

    fn send_cancel(&mut self, now: Instant, id: u64) {
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        let inv = call.invite.clone();
        let branch = call.invite_branch.clone();
        let Some(uri) = inv.request_uri().cloned() else {
            return;
        };
        // §9.1: same Request-URI, Call-ID, To, From, CSeq number and top Via (branch).
        let mut cancel = Message::new_request(Method::Cancel, uri);
        if let Some(v) = inv.list_header("Via").first() {
            cancel.push_header("Via", *v);
        }
        cancel.push_header("Max-Forwards", "70");
        for r in inv.header_values("Route") {
            cancel.push_header("Route", r);
        }
        for h in ["To", "From", "Call-ID"] {
            if let Some(v) = inv.header(h) {
                cancel.push_header(h, v);
            }
        }
        let seq = inv.cseq().map(|c| c.seq).unwrap_or(1);
        cancel.push_header("CSeq", format!("{seq} CANCEL"));
        if let Some(reason) = &call.hangup_reason {
            cancel.push_header("Reason", reason.to_header_value());
        }
        self.transmit(&cancel);
        let mut timers = TimerTable::new();
        timers.set(client_timer::TIMEOUT, now + TIMEOUT_64T1);
        self.clients.push(ClientTxn {
            branch,
            method: Method::Cancel,
            request: cancel,
            state: ClientState::Calling,
            timers,
            owner: Owner::Cancel(id),
        });
        if let Some(c) = self.calls.get_mut(&id) {
            c.cancel_pending = false;
        }
    }

    fn send_bye(&mut self, now: Instant, id: u64) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        call.dialog.local_seq += 1;
        let dialog = call.dialog.clone();
        let reason = call.hangup_reason.clone();
        let mut req = self.in_dialog_request(Method::Bye, &dialog, dialog.local_seq);
        if let Some(reason) = reason {
            req.push_header("Reason", reason.to_header_value());
        }
        self.start_client_txn(now, req, Owner::Bye(id));
    }

    /// §8.2.6.2: a response copies Via, From, To, Call-ID, CSeq; adds our To tag.
    fn response_to(
        &self,
        req: &Message,
        status: u16,
        reason: &str,
        to_tag: Option<&str>,
    ) -> Message {
        let mut resp = Message::new_response(status, reason);
        for v in req.header_values("Via") {
            resp.push_header("Via", v);
        }
        if let Some(v) = req.header("From") {
            resp.push_header("From", v);
        }
        if let Some(v) = req.header("To") {
            let has_tag = req.to().map(|t| t.tag().is_some()).unwrap_or(true);
            match to_tag {
                Some(tag) if !has_tag && status > 100 => {
                    resp.push_header("To", format!("{v};tag={tag}"))
                }
                _ => resp.push_header("To", v),
            }
        }
        for h in ["Call-ID", "CSeq"] {
            if let Some(v) = req.header(h) {
                resp.push_header(h, v);
            }
        }
        // §12.1.1: dialog-creating responses copy Record-Route.
        if req.method() == Some(&Method::Invite) && (101..300).contains(&status) {
            for rr in req.header_values("Record-Route") {
                resp.push_header("Record-Route", rr);
            }
        }
        resp.push_header("Server", self.cfg.user_agent.clone());
        resp
    }

    /// Sends a response through the matching server transaction (if any).
    fn send_server_response(&mut self, now: Instant, branch: &str, method: &Method, resp: Message) {
        let status = resp.status().unwrap_or(500);
        let bytes = resp.to_bytes();
        trace!(message = %String::from_utf8_lossy(&bytes), "send");
        if let Some(txn) = self
            .servers
            .iter_mut()
            .find(|t| t.branch == branch && t.method == *method)
        {
            txn.on_send(now, status, &bytes);
        }
        self.servers.retain(|t| t.state != ServerState::Terminated);
        self.transmits.push_back(bytes);
    }

    /// Responds to a request statelessly-but-through-its-transaction with extra headers.
    fn reply(&mut self, now: Instant, req: &Message, status: u16, extra: &[(&str, String)]) {
        let mut resp = self.response_to(req, status, reason_phrase(status), None);
        if status > 100 && req.to().map(|t| t.tag().is_none()).unwrap_or(false) {
            // Non-dialog responses still need a To tag (§8.2.6.2).
            let tag = token(&mut self.rng, 10);
            resp.remove_header("To");
            if let Some(v) = req.header("To") {
                resp.headers.insert(
                    2.min(resp.headers.len()),
                    message::Header {
                        name: "To".into(),
                        value: format!("{v};tag={tag}"),
                    },
                );
            }
        }
        for (n, v) in extra {
            resp.push_header(n, v.clone());
        }
        let branch = req
            .top_via()
            .ok()
            .and_then(|v| v.branch().map(str::to_owned))
            .unwrap_or_default();
        let method = req.method().cloned().unwrap_or(Method::Options);
        self.send_server_response(now, &branch, &method, resp);
    }

    // ------------------------------------------------------------------ internals: calls

    /// Emits CallEnded once; keeps the record while signalling finishes.
    fn mark_ended(&mut self, id: u64, reason: EndReason) {
        if let Some(c) = self.calls.get_mut(&id)
            && !c.ended
        {
            c.ended = true;
            debug!(call = id, ?reason, "call ended");
            self.events.push_back(UaEvent::CallEnded {
                call: CallId(id),
                reason,
            });
        }
    }

    /// Emits CallEnded (if not yet) and forgets the call.
    fn end_call(&mut self, id: u64, reason: EndReason) {
        self.mark_ended(id, reason);
        self.calls.remove(&id);
    }

    fn on_client_timeout(&mut self, _now: Instant, owner: Owner) {
        match owner {
            Owner::Register => {
                let was_unregister = self.registration.state == RegState::Unregistering;
                self.registration.state = RegState::Failed;
                if was_unregister {
                    self.events.push_back(UaEvent::Unregistered);
                } else {
                    self.events.push_back(UaEvent::RegistrationFailed {
                        status: 0,
                        reason: "timeout".into(),
                    });
                }
            }
            Owner::Invite(id) => self.end_call(
                id,
                EndReason::Failed {
                    status: 408,
                    reason: "Request Timeout".into(),
                },
            ),
            Owner::Message(id) => {
                if self.messages.remove(&id).is_some() {
                    self.events.push_back(UaEvent::MessageFailed {
                        id: MessageId(id),
                        status: 408,
                        reason: "Request Timeout".into(),
                    });
                }
            }
            Owner::Cancel(id) | Owner::Bye(id) => {
                if self.calls.get(&id).is_some_and(|c| c.ended) {
                    self.calls.remove(&id);
                }
            }
        }
    }

    // ------------------------------------------------------------------ internals: responses

    fn handle_response(&mut self, now: Instant, resp: Message) {
        let (Ok(via), Ok(cseq)) = (resp.top_via(), resp.cseq()) else {
            return;
        };
        let Some(branch) = via.branch() else { return };
        let Some(idx) = self
            .clients
            .iter()
            .position(|t| t.matches(branch, &cseq.method))
        else {
            trace!("response matches no transaction; dropped");
            return;
        };
        let verdict = self.clients[idx].on_response(now, &resp);
        let owner = self.clients[idx].owner;
        let request = self.clients[idx].request.clone();
        if self.clients[idx].state == ClientState::Terminated {
            self.clients.remove(idx);
        }
        match verdict {
            ClientVerdict::Absorb => {}
            ClientVerdict::AckOnly(ack) => self.transmit(&ack),
            ClientVerdict::AckAndDeliver(ack) => {
                self.transmit(&ack);
                self.deliver_response(now, owner, &request, resp);
            }
            ClientVerdict::Deliver => self.deliver_response(now, owner, &request, resp),
        }
    }

    fn deliver_response(&mut self, now: Instant, owner: Owner, request: &Message, resp: Message) {
        match owner {
            Owner::Register => self.on_register_response(now, request, resp),
            Owner::Invite(id) => self.on_invite_response(now, id, request, resp),
            Owner::Message(id) => self.on_message_response(now, id, request, resp),
            Owner::Cancel(_) => {}
            Owner::Bye(id) => {
                if resp.status().unwrap_or(0) >= 200 && self.calls.get(&id).is_some_and(|c| c.ended)
                {
                    self.calls.remove(&id);
                }
            }
        }
    }

    /// Builds a copy of `request` with credentials for `resp`'s challenge, or None when we
    /// must not retry (second failure with the same credentials, unusable challenge).
    fn authorized_retry(
        &mut self,
        request: &Message,
        resp: &Message,
        retries: u8,
    ) -> Option<Message> {
        let status = resp.status()?;
        let (challenge_header, auth_header) = if status == 401 {
            ("WWW-Authenticate", "Authorization")
        } else {
            ("Proxy-Authenticate", "Proxy-Authorization")
        };
        let challenge = Challenge::best(resp.header_values(challenge_header))?;
        // A first challenge is always answered; after that only a stale nonce justifies a
        // new attempt (RFC 7616 §3.3), and never more than MAX_AUTH_RETRIES times.
        if retries > 0 && (!challenge.stale || retries >= MAX_AUTH_RETRIES) {
            return None;
        }
        let nc = match &self.nonce_count {
            Some((n, c)) if *n == challenge.nonce => c + 1,
            _ => 1,
        };
        self.nonce_count = Some((challenge.nonce.clone(), nc));
        let cnonce = token(&mut self.rng, 16);
        let method = request.method()?.as_str().to_owned();
        let uri = request.request_uri()?.to_string();
        let value = auth::authorization_value(
            &challenge,
            &DigestInput {
                username: &self.auth_username,
                password: &self.cfg.password,
                method: &method,
                uri: &uri,
                cnonce: &cnonce,
                nonce_count: nc,
            },
        )
        .ok()?;
        let mut retry = request.clone();
        retry.remove_header(auth_header);
        retry.push_header(auth_header, value);
        let cseq = request.cseq().ok()?;
        retry.remove_header("CSeq");
        retry.push_header("CSeq", format!("{} {}", cseq.seq + 1, cseq.method));
        Some(retry)
    }

    fn on_register_response(&mut self, now: Instant, request: &Message, resp: Message) {
        let status = resp.status().unwrap_or(0);
        if status < 200 {
            return;
        }
        let unregistering = self.registration.requested_expires == 0;
        match status {
            200..=299 => {
                self.registration.auth_retries = 0;
                if unregistering {
                    self.registration.state = RegState::Idle;
                    self.registration.keepalive = None;
                    self.events.push_back(UaEvent::Unregistered);
                    return;
                }
                let granted = self.granted_expires(&resp);
                self.registration.state = RegState::Registered;
                self.registration.outbound = resp.has_option("Require", "outbound");
                self.registration.keepalive = resp
                    .header("Flow-Timer")
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .filter(|s| *s > 0)
                    .map(Duration::from_secs);
                let expires = Duration::from_secs(u64::from(granted));
                if granted > 0 {
                    self.reg_timers
                        .set(REG_REFRESH, now + refresh_delay(expires));
                }
                debug!(expires = granted, "registered");
                self.events.push_back(UaEvent::Registered {
                    expires,
                    outbound: self.registration.outbound,
                });
            }
            401 | 407 => {
                let retries = self.registration.auth_retries;
                match self.authorized_retry(request, &resp, retries) {
                    Some(retry) => {
                        self.registration.auth_retries += 1;
                        self.registration.cseq += 1;
                        self.start_client_txn(now, retry, Owner::Register);
                    }
                    None => self.registration_failed(status, resp.reason(), unregistering),
                }
            }
            423 if !self.registration.retried_423 && !unregistering => {
                let min = resp
                    .header("Min-Expires")
                    .and_then(|v| v.trim().parse::<u32>().ok());
                match min {
                    Some(min) if min > self.registration.requested_expires => {
                        self.registration.retried_423 = true;
                        // Keep credentials: the retry re-uses the last Authorization.
                        let mut retry = self.build_register(min);
                        for h in ["Authorization", "Proxy-Authorization"] {
                            if let Some(v) = request.header(h) {
                                retry.push_header(h, v);
                            }
                        }
                        self.registration.cseq += 1;
                        retry.remove_header("CSeq");
                        retry.push_header("CSeq", format!("{} REGISTER", self.registration.cseq));
                        self.registration.requested_expires = min;
                        self.start_client_txn(now, retry, Owner::Register);
                    }
                    _ => self.registration_failed(status, resp.reason(), false),
                }
            }
            _ => self.registration_failed(status, resp.reason(), unregistering),
        }
    }

    fn registration_failed(&mut self, status: u16, reason: &str, unregistering: bool) {
        self.reg_timers.stop_all();
        if unregistering {
            self.registration.state = RegState::Idle;
            self.events.push_back(UaEvent::Unregistered);
            return;
        }
        self.registration.state = RegState::Failed;
        debug!(status, "registration failed");
        self.events.push_back(UaEvent::RegistrationFailed {
            status,
            reason: reason.to_owned(),
        });
    }

    /// §10.2.4: our Contact's expires param, else the Expires header, else what we asked.
    fn granted_expires(&self, resp: &Message) -> u32 {
        let instance = format!("\"<urn:uuid:{}>\"", self.cfg.instance_id);
        let ours = resp.contacts().ok().and_then(|cs| {
            cs.into_iter().find(|c| {
                c.param("+sip.instance")
                    .and_then(|p| p.value.as_deref())
                    .is_some_and(|v| v.eq_ignore_ascii_case(&instance))
                    || c.uri.host.eq_ignore_ascii_case(&self.local_host)
            })
        });
        ours.and_then(|c| {
            c.param("expires")
                .and_then(|p| p.value.as_deref()?.parse().ok())
        })
        .or_else(|| resp.header("Expires").and_then(|v| v.trim().parse().ok()))
        .unwrap_or(self.registration.requested_expires)
    }

    fn on_invite_response(&mut self, now: Instant, id: u64, request: &Message, resp: Message) {
        let status = resp.status().unwrap_or(0);
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let to_tag = resp.to().ok().and_then(|t| t.tag().map(str::to_owned));
        match status {
            100..=199 => {
                // Any provisional, 100 included, allows a CANCEL (§9.1).
                if call.state == CallState::Calling {
                    call.state = CallState::Early;
                }
                if to_tag.is_some() && call.dialog.remote_tag.is_none() {
                    update_dialog_from_response(&mut call.dialog, &resp);
                }
                if call.cancel_pending {
                    self.send_cancel(now, id);
                } else if !call.ended && status > 100 {
                    self.events.push_back(UaEvent::CallProgress {
                        call: CallId(id),
                        status,
                        reason: resp.reason().to_owned(),
                        sdp: sdp_body(&resp),
                    });
                }
            }
            200..=299 => {
                if call.state == CallState::Confirmed {
                    // Retransmitted 2xx: the ACK is resent by the core (§13.2.2.4).
                    if let Some(ack) = call.ack.clone() {
                        self.transmits.push_back(ack);
                    }
                    return;
                }
                update_dialog_from_response(&mut call.dialog, &resp);
                call.state = CallState::Confirmed;
                let dialog = call.dialog.clone();
                let seq = request.cseq().map(|c| c.seq).unwrap_or(1);
                let mut ack = self.in_dialog_request(Method::Ack, &dialog, seq);
                for h in ["Authorization", "Proxy-Authorization"] {
                    if let Some(v) = request.header(h) {
                        ack.push_header(h, v);
                    }
                }
                self.stamp_via(&mut ack);
                let bytes = ack.to_bytes();
                trace!(message = %String::from_utf8_lossy(&bytes), "send");
                self.transmits.push_back(bytes.clone());
                let ended = if let Some(call) = self.calls.get_mut(&id) {
                    call.ack = Some(bytes);
                    call.ended
                } else {
                    false
                };
                if ended {
                    // We hung up while the INVITE was in flight: confirm then tear down.
                    self.send_bye(now, id);
                } else {
                    self.events.push_back(UaEvent::CallAnswered {
                        call: CallId(id),
                        sdp: sdp_body(&resp),
                    });
                }
            }
            401 | 407 if !call.ended => {
                let retries = call.auth_retries;
                match self.authorized_retry(request, &resp, retries) {
                    Some(retry) => {
                        let branch = self.start_client_txn(now, retry.clone(), Owner::Invite(id));
                        if let Some(call) = self.calls.get_mut(&id) {
                            call.auth_retries += 1;
                            call.invite = self
                                .clients
                                .last()
                                .map(|t| t.request.clone())
                                .unwrap_or(retry);
                            call.invite_branch = branch;
                            call.dialog.local_seq = call.invite.cseq().map(|c| c.seq).unwrap_or(1);
                            call.state = CallState::Calling;
                        }
                    }
                    None => self.end_call(
                        id,
                        EndReason::Rejected {
                            status,
                            reason: resp.reason().to_owned(),
                        },
                    ),
                }
            }
            _ => self.end_call(
                id,
                EndReason::Rejected {
                    status,
                    reason: resp.reason().to_owned(),
                },
            ),
        }
    }

    fn on_message_response(&mut self, now: Instant, id: u64, request: &Message, resp: Message) {
        let status = resp.status().unwrap_or(0);
        if status < 200 {
            return;
        }
        match status {
            200..=299 => {
                self.messages.remove(&id);
                self.events
                    .push_back(UaEvent::MessageDelivered { id: MessageId(id) });
            }
            401 | 407 => {
                let retries = self.messages.get(&id).map(|m| m.auth_retries).unwrap_or(0);
                match self.authorized_retry(request, &resp, retries) {
                    Some(retry) => {
                        if let Some(m) = self.messages.get_mut(&id) {
                            m.auth_retries += 1;
                        }
                        self.start_client_txn(now, retry, Owner::Message(id));
                    }
                    None => {
                        self.messages.remove(&id);
                        self.events.push_back(UaEvent::MessageFailed {
                            id: MessageId(id),
                            status,
                            reason: resp.reason().to_owned(),
                        });
                    }
                }
            }
            _ => {
                self.messages.remove(&id);
                self.events.push_back(UaEvent::MessageFailed {
                    id: MessageId(id),
                    status,
                    reason: resp.reason().to_owned(),
                });
            }
        }
    }

    // ------------------------------------------------------------------ internals: requests

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
                format!("{};tag={}", s.to, token(&mut self.rng, 10))
            };
            resp.push_header("To", to);
            resp.push_header("Call-ID", s.call_id.clone());
            resp.push_header("CSeq", s.cseq.clone());
            self.transmit(&resp);
        }
        self.events.push_back(UaEvent::ProtocolError { detail });
    }

    fn handle_request(&mut self, now: Instant, req: Message) {
        let (Ok(via), Ok(cseq), Some(method)) = (req.top_via(), req.cseq(), req.method().cloned())
        else {
            return;
        };
        let branch = via.branch().unwrap_or("").to_owned();
        let sent_by = via.sent_by();

        if method == Method::Ack {
            self.handle_ack(now, &req, &branch, &sent_by, cseq.seq);
            return;
        }
        // Retransmission of a request we already have a transaction for (§17.2.3).
        if let Some(txn) = self
            .servers
            .iter()
            .find(|t| t.matches(&branch, &sent_by, &method))
        {
            if let Some(last) = txn.last_response.clone() {
                self.transmits.push_back(last);
            }
            return;
        }
        if method == Method::Cancel {
            self.handle_cancel(now, &req, &branch, &sent_by);
            return;
        }
        self.servers.push(ServerTxn {
            branch: branch.clone(),
            sent_by,
            method: method.clone(),
            state: ServerState::Proceeding,
            last_response: None,
            timers: TimerTable::new(),
        });
        // §8.2.2.3: option tags we do not understand → 420 with Unsupported.
        let unsupported: Vec<String> = req
            .list_header("Require")
            .into_iter()
            .filter(|o| !SUPPORTED_OPTIONS.iter().any(|s| s.eq_ignore_ascii_case(o)))
            .map(str::to_owned)
            .collect();
        if !unsupported.is_empty() {
            self.reply(now, &req, 420, &[("Unsupported", unsupported.join(", "))]);
            return;
        }
        let to_tag = req.to().ok().and_then(|t| t.tag().map(str::to_owned));
        if to_tag.is_some() {
            self.handle_in_dialog(now, req, cseq.seq);
            return;
        }
        match method {
            Method::Invite => self.handle_new_invite(now, req, &branch),
            Method::Options => self.reply(
                now,
                &req,
                200,
                &[
                    ("Allow", ALLOW.to_owned()),
                    ("Accept", "application/sdp, text/plain, */*".to_owned()),
                    ("Supported", "outbound, path".to_owned()),
                ],
            ),
            Method::Message => self.handle_message(now, req),
            Method::Bye => self.reply(now, &req, 481, &[]),
            _ => self.reply(now, &req, 405, &[("Allow", ALLOW.to_owned())]),
        }
    }

    fn handle_ack(&mut self, now: Instant, req: &Message, branch: &str, sent_by: &str, seq: u32) {
        // ACK of a non-2xx: absorbed by the INVITE server transaction (Timer I = 0).
        if let Some(idx) = self.servers.iter().position(|t| {
            t.matches(branch, sent_by, &Method::Ack) && t.state == ServerState::Completed
        }) {
            self.servers.remove(idx);
            return;
        }
        // ACK of a 2xx: belongs to the dialog (§13.3.1.4).
        let Some(id) = self.find_dialog(req) else {
            return;
        };
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if call.state == CallState::Answered
            && call.invite.cseq().map(|c| c.seq).unwrap_or(0) == seq
        {
            call.timers.stop_all();
            call.final_2xx = None;
            call.state = CallState::Confirmed;
            if call.bye_pending {
                call.bye_pending = false;
                self.send_bye(now, id);
                self.calls.remove(&id);
            } else {
                debug!(call = id, "call confirmed");
                self.events
                    .push_back(UaEvent::CallConfirmed { call: CallId(id) });
            }
        }
    }

    fn handle_cancel(&mut self, now: Instant, req: &Message, branch: &str, sent_by: &str) {
        // §9.2: the CANCEL matches the INVITE server transaction with the same branch.
        let invite_state = self
            .servers
            .iter()
            .find(|t| t.matches(branch, sent_by, &Method::Invite))
            .map(|t| t.state);
        let Some(state) = invite_state else {
            self.reply(now, req, 481, &[]);
            return;
        };
        self.reply(now, req, 200, &[]);
        if state != ServerState::Proceeding {
            return;
        }
        let call_id = self
            .calls
            .iter()
            .find(|(_, c)| {
                !c.outgoing && c.invite_branch == branch && c.state == CallState::Incoming
            })
            .map(|(id, _)| *id);
        if let Some(id) = call_id
            && let Some(c) = self.calls.get(&id)
        {
            let resp = self.response_to(
                &c.invite,
                487,
                "Request Terminated",
                Some(&c.dialog.local_tag),
            );
            self.send_server_response(now, branch, &Method::Invite, resp);
            self.end_call(id, EndReason::Cancelled);
        }
    }

    fn find_dialog(&self, req: &Message) -> Option<u64> {
        let call_id = req.call_id().ok()?;
        let local = req.to().ok()?.tag()?.to_owned();
        let remote = req.from().ok()?.tag().map(str::to_owned);
        self.calls
            .iter()
            .find(|(_, c)| {
                c.dialog.call_id == call_id
                    && c.dialog.local_tag == local
                    && c.dialog.remote_tag.as_deref().unwrap_or("")
                        == remote.as_deref().unwrap_or("")
            })
            .map(|(id, _)| *id)
    }

    fn handle_in_dialog(&mut self, now: Instant, req: Message, seq: u32) {
        let method = req.method().cloned().unwrap_or(Method::Options);
        let Some(id) = self.find_dialog(&req) else {
            // §12.2.2: no matching dialog → 481.
            self.reply(now, &req, 481, &[]);
            return;
        };
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if let Some(last) = call.dialog.remote_seq
            && seq < last
        {
            // §12.2.2: lower CSeq than the last one → 500.
            self.reply(now, &req, 500, &[]);
            return;
        }
        call.dialog.remote_seq = Some(seq);
        match method {
            Method::Bye => {
                self.reply(now, &req, 200, &[]);
                let reason = req.header_values("Reason").find_map(Reason::parse);
                self.end_call(id, EndReason::RemoteHangup { reason });
            }
            Method::Invite => {
                if call.state != CallState::Confirmed || call.reinvite.is_some() {
                    // §14.2: a re-INVITE while another is pending → 500 with Retry-After.
                    let retry = (self.rng.random_range(0..10u32)).to_string();
                    self.reply(now, &req, 500, &[("Retry-After", retry)]);
                    return;
                }
                if let Some(target) = req.contacts().ok().and_then(|c| c.into_iter().next()) {
                    call.dialog.remote_target = target.uri;
                }
                call.reinvite = Some(req.clone());
                let sdp = sdp_body(&req);
                self.reply(now, &req, 100, &[]);
                self.events.push_back(UaEvent::Reoffer {
                    call: CallId(id),
                    sdp,
                });
            }
            Method::Message => self.handle_message(now, req),
            Method::Options => self.reply(now, &req, 200, &[("Allow", ALLOW.to_owned())]),
            _ => self.reply(now, &req, 405, &[("Allow", ALLOW.to_owned())]),
        }
    }

    fn handle_new_invite(&mut self, now: Instant, req: Message, branch: &str) {
        // Accept our AoR user or contact user; proxies may add parameters such as
        // nathelper's `;alias=` to the Request-URI, which we ignore.
        if let Some(user) = req.request_uri().and_then(|u| u.user.as_deref())
            && user != self.contact_user
            && Some(user) != self.aor.user.as_deref()
        {
            self.reply(now, &req, 404, &[]);
            return;
        }
        if !req.body.is_empty() && req.content_type().as_deref() != Some("application/sdp") {
            self.reply(now, &req, 415, &[("Accept", "application/sdp".to_owned())]);
            return;
        }
        let (Ok(from), Ok(to), Ok(call_id), Ok(cseq)) =
            (req.from(), req.to(), req.call_id(), req.cseq())
        else {
            return;
        };
        let Some(target) = req.contacts().ok().and_then(|c| c.into_iter().next()) else {
            self.reply(now, &req, 400, &[]);
            return;
        };
        let route_set: Vec<String> = req
            .record_routes()
            .map(|rs| rs.iter().map(|r| r.to_string()).collect())
            .unwrap_or_default();
        let id = self.next_handle();
        let local_tag = token(&mut self.rng, 10);
        let dialog = Dialog {
            call_id: call_id.to_owned(),
            local_tag,
            remote_tag: from.tag().map(str::to_owned),
            local_uri: without_tag(&to),
            remote_uri: without_tag(&from),
            local_seq: self.rng.random_range(1..10_000),
            remote_seq: Some(cseq.seq),
            remote_target: target.uri,
            route_set,
        };
        self.reply(now, &req, 100, &[]);
        let sdp = sdp_body(&req);
        self.calls.insert(
            id,
            Call {
                outgoing: false,
                state: CallState::Incoming,
                dialog,
                invite: req,
                invite_branch: branch.to_owned(),
                auth_retries: 0,
                cancel_pending: false,
                ended: false,
                bye_pending: false,
                hangup_reason: None,
                ack: None,
                final_2xx: None,
                retransmit_interval: T1,
                timers: TimerTable::new(),
                reinvite: None,
            },
        );
        debug!(call = id, "incoming call");
        self.events.push_back(UaEvent::IncomingCall {
            call: CallId(id),
            from: Party::from(&from),
            to: Party::from(&to),
            sdp,
        });
    }

    /// Keeps the MESSAGE's server transaction open until the engine answers: a
    /// retransmission meanwhile matches it and gets nothing, as in the Trying state (§17.2.2).
    fn handle_message(&mut self, now: Instant, mut req: Message) {
        let (Ok(from), Ok(to), Ok(call_id), Ok(cseq)) =
            (req.from(), req.to(), req.call_id(), req.cseq())
        else {
            return;
        };
        // None of the three holds whitespace (§25.1: Call-ID is words, a tag a token).
        let stable_id = format!("{call_id} {} {}", cseq.seq, from.tag().unwrap_or(""));
        let content_type = req.content_type().unwrap_or_else(|| "text/plain".into());
        let body = std::mem::take(&mut req.body);
        let id = self.next_handle();
        let mut timers = TimerTable::new();
        timers.set(in_message_timer::ANSWER_BY, now + MESSAGE_ANSWER_WAIT);
        self.incoming_messages.insert(
            id,
            InMessage {
                request: req,
                timers,
            },
        );
        self.events.push_back(UaEvent::MessageReceived {
            id: IncomingMessageId(id),
            stable_id,
            from: Party::from(&from),
            to: Party::from(&to),
            content_type,
            body,
        });
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

fn parse_target(target: &str) -> Result<Uri, SipError> {
    let uri = Uri::parse(target.trim())?;
    if !uri.is_sip() || uri.headers.is_some() {
        return Err(SipError::InvalidUri {
            uri: target.to_owned(),
            reason: "target must be a sip:/sips: URI without headers".into(),
        });
    }
    Ok(uri)
}

/// Default reason phrases (§21).
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Trying",
        180 => "Ringing",
        183 => "Session Progress",
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        415 => "Unsupported Media Type",
        420 => "Bad Extension",
        423 => "Interval Too Brief",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        491 => "Request Pending",
        500 => "Server Internal Error",
        503 => "Service Unavailable",
        603 => "Decline",
        _ => "Unknown",
    }
}
