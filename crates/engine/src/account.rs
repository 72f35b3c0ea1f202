//! One SIP account: a task that owns the WebSocket flow and the sans-IO `UserAgent` core.
//!
//! The loop is the usual sans-IO driver: feed the core what happened (a WebSocket message, a
//! timer, a command, the flow going up or down), then carry out what it asks for (messages to
//! send, the next deadline, events). Calls live in their own tasks (see `call.rs`), which own
//! the media; this task owns their SIP side and relays between the two.
//!
//! Flow recovery (RFC 5626 §4.4–4.5): the WebSocket is kept alive with pings; when it dies the
//! core is told, the account reconnects with jittered exponential backoff, and the core
//! re-registers on the new flow. Established calls keep their media (ICE does not depend on the
//! signalling flow) and are reachable again once the new registration is in place.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use lyrebird_media::MediaConfig;
use lyrebird_sip::{self as sip, UaConfig, UaEvent, UserAgent};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::{Instrument, debug, info, warn};

use crate::call::{self, CallRole, FromCall, ToCall};
use crate::event::{AccountState, CallDirection, CallState, EngineEvent};
use crate::history::History;
use crate::transport::{Flow, FlowEvent, Incoming, KeepAlive, WsTarget, sleep_until_opt};
use crate::{AccountId, CallAudio, CallId, EngineError, MediaStats, MessageId, SipAccountConfig};
use lyrebird_store::{CallEndReason, DeliveryState};

/// Commands from the engine's front ends, routed to the account that owns the call or message.
#[derive(Debug)]
pub(crate) enum AccountCommand {
    Call {
        target: String,
        audio: CallAudio,
        reply: oneshot::Sender<Result<CallId, EngineError>>,
    },
    Answer {
        call: CallId,
        audio: Option<CallAudio>,
        reply: oneshot::Sender<Result<(), EngineError>>,
    },
    Reject {
        call: CallId,
        reply: oneshot::Sender<Result<(), EngineError>>,
    },
    Hangup {
        call: CallId,
        reply: oneshot::Sender<Result<(), EngineError>>,
    },
    SendMessage {
        target: String,
        body: String,
        reply: oneshot::Sender<Result<MessageId, EngineError>>,
    },
    Stats {
        call: CallId,
        reply: oneshot::Sender<Result<MediaStats, EngineError>>,
    },
    SetMuted {
        call: CallId,
        muted: bool,
        reply: oneshot::Sender<Result<(), EngineError>>,
    },
    SendDtmf {
        call: CallId,
        digit: char,
        reply: oneshot::Sender<Result<(), EngineError>>,
    },
    /// File transfers (see `transfer/`).
    Transfer(crate::transfer::TransferCommand),
    Shutdown {
        reply: oneshot::Sender<()>,
    },
}

/// What an account reports to the engine's supervisor.
#[derive(Debug)]
pub(crate) enum AccountNotice {
    Event(EngineEvent),
    CallOpened {
        call: CallId,
        account: AccountId,
    },
    CallClosed {
        call: CallId,
    },
    TransferOpened {
        transfer: crate::transfer::TransferId,
        account: AccountId,
    },
    TransferClosed {
        transfer: crate::transfer::TransferId,
    },
}

/// Ids handed out by the engine, unique across accounts.
#[derive(Debug, Default)]
pub(crate) struct IdSource {
    next: AtomicU64,
}

impl IdSource {
    pub(crate) fn next(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// Messages the core asks to send while the flow is down, kept until it is back.
const MAX_PENDING_TRANSMITS: usize = 256;
/// How long shutdown waits for the registrar to confirm the unregistration.
const UNREGISTER_WAIT: Duration = Duration::from_secs(2);
/// How long shutdown waits for incoming messages being stored, to answer them on the way out.
const STORE_WAIT: Duration = Duration::from_secs(2);

/// An incoming MESSAGE the history writer has stored, or failed to store.
struct StoredMessage {
    id: sip::IncomingMessageId,
    result: Result<(), EngineError>,
    from: String,
    content_type: String,
    body: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CallPhase {
    /// Outgoing: the offer is being prepared. Incoming: waiting for the user.
    Setup,
    /// Incoming call accepted by the user, the answer is being prepared.
    Answering,
    /// INVITE sent / 200 sent.
    Signalled,
    /// The SIP side is over; waiting for the call task to stop.
    Ended,
}

struct CallEntry {
    sip: Option<sip::CallId>,
    direction: CallDirection,
    peer: String,
    phase: CallPhase,
    /// The peer's offer, for an incoming call not yet answered.
    offer: Option<String>,
    /// The local SDP sent last, re-sent when a re-INVITE cannot be renegotiated.
    local_sdp: Option<String>,
    /// The peer's answer has been given to the media session.
    remote_applied: bool,
    /// The user hung up before the INVITE could be sent.
    cancelled_early: bool,
    /// A 2xx was sent or received.
    answered: bool,
    task: Option<mpsc::Sender<ToCall>>,
    history_key: String,
}

pub(crate) struct SipAccount {
    id: AccountId,
    config: SipAccountConfig,
    media: Arc<MediaConfig>,
    ids: Arc<IdSource>,
    ua: UserAgent,
    flow: Flow,
    keepalive: KeepAlive,
    registered_once: bool,
    awaiting_unregister: bool,
    pending: VecDeque<Vec<u8>>,
    calls: HashMap<CallId, CallEntry>,
    by_sip: HashMap<sip::CallId, CallId>,
    /// Outgoing messages awaiting their final response: engine id, history key, recipient.
    messages: HashMap<sip::MessageId, (MessageId, String, String)>,
    commands: mpsc::Receiver<AccountCommand>,
    from_calls_tx: mpsc::Sender<FromCall>,
    from_calls: mpsc::Receiver<FromCall>,
    notices: mpsc::UnboundedSender<AccountNotice>,
    history: History,
    /// The history writer's word on incoming MESSAGEs: they are answered only once stored.
    stored_tx: mpsc::UnboundedSender<StoredMessage>,
    stored: mpsc::UnboundedReceiver<StoredMessage>,
    shutdown_reply: Option<(oneshot::Sender<()>, Instant)>,
    /// File transfers: their SIP sessions go through `ua`, their bytes through their own tasks.
    transfers: crate::transfer::Transfers,
}

impl SipAccount {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        id: AccountId,
        config: SipAccountConfig,
        user_agent: &str,
        media: Arc<MediaConfig>,
        ids: Arc<IdSource>,
        commands: mpsc::Receiver<AccountCommand>,
        notices: mpsc::UnboundedSender<AccountNotice>,
        history: History,
    ) -> Result<Self, EngineError> {
        if !(config.ws_url.starts_with("ws://") || config.ws_url.starts_with("wss://")) {
            return Err(EngineError::InvalidConfig(format!(
                "`{}` is not a ws:// or wss:// URL",
                config.ws_url
            )));
        }
        let instance_id = config
            .instance_id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let ua = UserAgent::new(UaConfig {
            aor: config.aor.clone(),
            display_name: config.display_name.clone(),
            auth_username: config.auth_username.clone(),
            password: config.password.expose().to_owned(),
            instance_id,
            register_expires: config.register_expires,
            user_agent: user_agent.to_owned(),
            secure: config.ws_url.starts_with("wss://"),
            outbound_proxy: config.outbound_proxy.clone(),
            rng_seed: rand::random(),
        })?;
        let target = WsTarget {
            url: config.ws_url.clone(),
            subprotocol: "sip",
            trusted_certificate: config.trusted_certificate.clone(),
            connect_timeout: Duration::from_secs(10),
        };
        let (from_calls_tx, from_calls) = mpsc::channel(64);
        let (stored_tx, stored) = mpsc::unbounded_channel();
        let transfers = crate::transfer::Transfers::new(
            id,
            &config,
            Arc::clone(&ids),
            notices.clone(),
            history.clone(),
        );
        Ok(Self {
            id,
            config,
            media,
            ids,
            ua,
            flow: Flow::new(target),
            keepalive: KeepAlive::new(),
            registered_once: false,
            awaiting_unregister: false,
            pending: VecDeque::new(),
            calls: HashMap::new(),
            by_sip: HashMap::new(),
            messages: HashMap::new(),
            commands,
            from_calls_tx,
            from_calls,
            notices,
            history,
            stored_tx,
            stored,
            shutdown_reply: None,
            transfers,
        })
    }

    fn emit(&self, event: EngineEvent) {
        let _ = self.notices.send(AccountNotice::Event(event));
    }

    fn set_state(&self, state: AccountState) {
        info!(account = self.id.0, ?state, "account state");
        self.emit(EngineEvent::AccountState {
            account: self.id,
            state,
        });
    }

    fn call_state(&self, call: CallId, state: CallState) {
        debug!(account = self.id.0, call = call.0, ?state, "call state");
        self.emit(EngineEvent::CallState {
            account: self.id,
            call,
            state,
        });
    }

    fn now(&self) -> std::time::Instant {
        Instant::now().into_std()
    }

    pub(crate) async fn run(self) {
        let span = tracing::info_span!("sip_account", account = self.id.0);
        self.drive_until_stopped().instrument(span).await;
    }

    async fn drive_until_stopped(mut self) {
        self.start_connecting();
        loop {
            self.drive().await;
            if let Some((_, deadline)) = &self.shutdown_reply {
                let waiting = self.flow.is_open() && self.awaiting_unregister;
                if !waiting || Instant::now() >= *deadline {
                    break;
                }
            }
            let core_deadline = self.ua.poll_timeout().map(Instant::from_std);
            let shutdown_deadline = self.shutdown_reply.as_ref().map(|(_, d)| *d);
            let ping_at = self.flow.is_open().then(|| self.keepalive.deadline());
            tokio::select! {
                command = self.commands.recv() => match command {
                    Some(command) => self.on_command(command),
                    None => self.begin_shutdown(None),
                },
                Some(from_call) = self.from_calls.recv() => self.on_call_message(from_call),
                Some(stored) = self.stored.recv() => {
                    // A batch's commit settles many at once: answer them all in one turn.
                    self.on_message_stored(stored);
                    while let Ok(stored) = self.stored.try_recv() {
                        self.on_message_stored(stored);
                    }
                }
                Some(message) = self.transfers.next_message() => {
                    let now = self.now();
                    self.transfers.on_task_message(&mut self.ua, now, message);
                }
                event = self.flow.next() => match event {
                    FlowEvent::Opened => self.on_connected(),
                    FlowEvent::Failed(e) => self.schedule_reconnect(e.to_string()),
                    FlowEvent::Incoming(incoming) => self.on_incoming(incoming),
                    FlowEvent::ReconnectDue => self.start_connecting(),
                },
                () = sleep_until_opt(core_deadline) => {
                    let now = self.now();
                    self.ua.handle_timeout(now);
                }
                () = sleep_until_opt(ping_at) => self.on_keepalive_due().await,
                () = sleep_until_opt(shutdown_deadline) => {}
            }
        }
        self.finish().await;
    }

    /// Carries out everything the core has queued: messages to send and events to act on.
    /// Acting on an event may queue more, so this runs until both queues are empty.
    async fn drive(&mut self) {
        while self.flow.is_open() {
            let Some(message) = self.pending.pop_front() else {
                break;
            };
            self.transmit(message).await;
        }
        loop {
            let mut progressed = false;
            while let Some(message) = self.ua.poll_transmit() {
                progressed = true;
                self.transmit(message).await;
            }
            while let Some(event) = self.ua.poll_event() {
                progressed = true;
                self.on_ua_event(event);
            }
            if !progressed {
                break;
            }
        }
    }

    async fn transmit(&mut self, message: Vec<u8>) {
        tracing::trace!(message = %String::from_utf8_lossy(&message), "SIP out");
        let Some(conn) = self.flow.conn.as_mut() else {
            if self.pending.len() == MAX_PENDING_TRANSMITS {
                self.pending.pop_front();
                warn!(
                    account = self.id.0,
                    "flow down too long: dropped the oldest queued SIP message"
                );
            }
            self.pending.push_back(message);
            return;
        };
        if let Err(e) = conn.send(message).await {
            self.lost(e.to_string());
        }
    }

    fn start_connecting(&mut self) {
        if self.shutdown_reply.is_none() && self.flow.connect() {
            self.set_state(AccountState::Connecting);
        }
    }

    fn on_connected(&mut self) {
        self.keepalive.heard();
        self.set_state(AccountState::Connected);
        let now = self.now();
        self.ua.handle_connected(now);
        if !self.registered_once {
            self.registered_once = true;
            if let Err(e) = self.ua.register(now) {
                self.set_state(AccountState::RegistrationFailed {
                    status: 0,
                    reason: e.to_string(),
                });
            }
        }
        // What the core asked to send while the flow was down goes out on the next
        // `drive`, ahead of anything queued since.
    }

    fn lost(&mut self, reason: String) {
        if !self.flow.lose() {
            return;
        }
        warn!(account = self.id.0, %reason, "SIP flow lost");
        let now = self.now();
        self.ua.handle_disconnected(now);
        self.awaiting_unregister = false;
        self.schedule_reconnect(reason);
    }

    fn schedule_reconnect(&mut self, reason: String) {
        if self.shutdown_reply.is_some() {
            return;
        }
        if let Some(state) = self.flow.schedule_reconnect(reason) {
            self.set_state(state);
        }
    }

    fn on_incoming(&mut self, incoming: Result<Option<Incoming>, EngineError>) {
        self.keepalive.heard();
        match incoming {
            Ok(Some(Incoming::Message(message))) => {
                tracing::trace!(message = %String::from_utf8_lossy(&message), "SIP in");
                let now = self.now();
                self.ua.handle_input(now, &message);
            }
            Ok(Some(Incoming::Alive)) => {}
            Ok(None) => self.lost("the server closed the connection".into()),
            Err(e) => self.lost(e.to_string()),
        }
    }

    async fn on_keepalive_due(&mut self) {
        let Some(conn) = self.flow.conn.as_mut() else {
            return;
        };
        if let Err(reason) = self.keepalive.due(conn).await {
            self.lost(reason);
        }
    }
}

// Events from the SIP core.
impl SipAccount {
    fn on_ua_event(&mut self, event: UaEvent) {
        // File offers and the SIP sessions of transfers go to the transfer book.
        let now = self.now();
        let Some(event) = self.transfers.intercept(&mut self.ua, now, event) else {
            return;
        };
        match event {
            UaEvent::Registered { expires, outbound } => {
                self.flow.reset_backoff();
                self.set_state(AccountState::Registered {
                    expires_s: expires.as_secs(),
                    outbound,
                });
            }
            // A flow that died takes its registration with it; the account already reports
            // `Reconnecting` and re-registers on the next flow, so this is not a failure to show.
            UaEvent::RegistrationFailed { status: 0, reason } if !self.flow.is_open() => {
                debug!(account = self.id.0, %reason, "registration lost with the flow");
            }
            UaEvent::RegistrationFailed { status, reason } => {
                self.set_state(AccountState::RegistrationFailed { status, reason });
            }
            UaEvent::Unregistered => {
                self.awaiting_unregister = false;
                self.set_state(AccountState::Unregistered);
            }
            UaEvent::IncomingCall {
                call: sip_call,
                from,
                to: _,
                sdp,
                ..
            } => {
                self.on_incoming_call(sip_call, from, sdp);
            }
            UaEvent::CallProgress {
                call: sip_call,
                status,
                reason: _,
                sdp,
            } => {
                let Some(call) = self.by_sip.get(&sip_call).copied() else {
                    return;
                };
                self.call_state(call, CallState::Ringing { status });
                if let Some(sdp) = sdp {
                    self.deliver_remote_sdp(call, sdp);
                }
            }
            UaEvent::CallAnswered {
                call: sip_call,
                sdp,
            } => {
                let Some(call) = self.by_sip.get(&sip_call).copied() else {
                    return;
                };
                if let Some(entry) = self.calls.get_mut(&call) {
                    entry.answered = true;
                }
                self.call_state(call, CallState::Answered);
                self.history.call_answered(self.id, self.call_key(call));
                match sdp {
                    Some(sdp) => self.deliver_remote_sdp(call, sdp),
                    None if self.calls.get(&call).is_some_and(|c| c.remote_applied) => {}
                    None => {
                        self.warn("the callee answered without SDP; hanging up".into());
                        let _ = self.hangup(call);
                    }
                }
            }
            UaEvent::CallConfirmed { call: sip_call } => {
                debug!(account = self.id.0, ?sip_call, "ACK received");
            }
            UaEvent::Reoffer {
                call: sip_call,
                sdp,
            } => {
                let Some(call) = self.by_sip.get(&sip_call).copied() else {
                    return;
                };
                self.on_reoffer(call, sdp);
            }
            UaEvent::CallEnded {
                call: sip_call,
                reason,
            } => {
                let Some(call) = self.by_sip.remove(&sip_call) else {
                    return;
                };
                let answered = self.calls.get(&call).is_some_and(|c| c.answered);
                self.end_call(call, CallEnding::from_sip(&reason, answered));
            }
            UaEvent::MessageReceived {
                id,
                stable_id,
                from,
                to: _,
                content_type,
                body,
            } => {
                let body = String::from_utf8_lossy(&body).into_owned();
                self.store_message(id, &stable_id, from.uri, content_type, body);
            }
            UaEvent::MessageAnswerTimedOut { id } => {
                warn!(
                    account = self.id.0,
                    ?id,
                    "an incoming message was not stored in time"
                );
                self.emit(EngineEvent::Warning {
                    account: Some(self.id),
                    detail: format!(
                        "an incoming message was not stored within {} s, so the sender was \
                         told it was not delivered (500)",
                        sip::timer::MESSAGE_ANSWER_WAIT.as_secs()
                    ),
                });
            }
            UaEvent::MessageDelivered { id } => {
                if let Some((message, key, peer)) = self.messages.remove(&id) {
                    self.history
                        .message_state(self.id, &key, &peer, DeliveryState::Sent);
                    self.emit(EngineEvent::MessageDelivered {
                        account: self.id,
                        message,
                    });
                }
            }
            UaEvent::MessageFailed { id, status, reason } => {
                if let Some((message, key, peer)) = self.messages.remove(&id) {
                    self.history
                        .message_state(self.id, &key, &peer, DeliveryState::Failed);
                    self.emit(EngineEvent::MessageFailed {
                        account: self.id,
                        message,
                        status,
                        reason,
                    });
                }
            }
            UaEvent::ProtocolError { detail } => self.warn(detail),
            // Transfers are not offered yet: decline, so the referrer is not left waiting.
            UaEvent::ReferReceived { refer, .. } => {
                if let Err(e) = self.ua.reject_refer(now, refer, 603) {
                    debug!(account = self.id.0, error = %e, "could not decline a REFER");
                }
            }
            other => debug!(account = self.id.0, ?other, "SIP event not used yet"),
        }
    }

    /// Hands an incoming MESSAGE to the history writer; it is answered and shown once the
    /// writer says it is stored (`on_message_stored`), so "delivered" to the sender and "shown"
    /// here both mean "on disk".
    fn store_message(
        &self,
        id: sip::IncomingMessageId,
        stable_id: &str,
        from: String,
        content_type: String,
        body: String,
    ) {
        let stored = self.stored_tx.clone();
        let (history_from, history_type, history_body) =
            (from.clone(), content_type.clone(), body.clone());
        let ack: crate::history::Ack = Box::new(move |result| {
            let _ = stored.send(StoredMessage {
                id,
                result,
                from,
                content_type,
                body,
            });
        });
        self.history.message_received(
            self.id,
            stable_id,
            &history_from,
            &history_type,
            &history_body,
            Some(ack),
        );
    }

    fn on_message_stored(&mut self, stored: StoredMessage) {
        let now = self.now();
        match stored.result {
            Ok(()) => {
                if let Err(e) = self.ua.answer_message(now, stored.id, 200) {
                    // It is stored all the same; only the sender did not hear so from us (the
                    // flow went down, or the core gave up waiting and answered 500).
                    debug!(account = self.id.0, error = %e, "stored message not answered 200");
                }
                self.emit(EngineEvent::MessageReceived {
                    account: self.id,
                    from: stored.from,
                    content_type: stored.content_type,
                    body: stored.body,
                });
            }
            Err(e) => {
                // 500 tells the sender it was not delivered, so it can say so or send again.
                let _ = self.ua.answer_message(now, stored.id, 500);
                warn!(account = self.id.0, error = %e, "an incoming message could not be stored");
                self.emit(EngineEvent::Warning {
                    account: Some(self.id),
                    detail: format!(
                        "a message from {} could not be stored, so the sender was told it was \
                         not delivered (500): {e}",
                        stored.from
                    ),
                });
            }
        }
    }

    fn warn(&self, detail: String) {
        warn!(account = self.id.0, %detail, "protocol problem");
        self.emit(EngineEvent::Warning {
            account: Some(self.id),
            detail,
        });
    }

    fn call_key(&self, call: CallId) -> &str {
        self.calls
            .get(&call)
            .map(|c| c.history_key.as_str())
            .unwrap_or_default()
    }

    fn new_call(&mut self, direction: CallDirection, peer: String) -> CallId {
        let call = CallId(self.ids.next());
        let history_key = uuid::Uuid::new_v4().to_string();
        self.history
            .call_started(self.id, &history_key, direction, &peer);
        self.calls.insert(
            call,
            CallEntry {
                sip: None,
                direction,
                peer: peer.clone(),
                phase: CallPhase::Setup,
                offer: None,
                local_sdp: None,
                remote_applied: false,
                cancelled_early: false,
                answered: false,
                task: None,
                history_key,
            },
        );
        let _ = self.notices.send(AccountNotice::CallOpened {
            call,
            account: self.id,
        });
        self.call_state(call, CallState::Dialing { direction, peer });
        call
    }

    fn on_incoming_call(&mut self, sip_call: sip::CallId, from: sip::Party, sdp: Option<String>) {
        let now = self.now();
        if self.shutdown_reply.is_some() {
            let _ = self.ua.reject(now, sip_call, 480);
            return;
        }
        let Some(offer) = sdp else {
            // A WebRTC peer always offers in the INVITE; answering an offerless INVITE would need
            // an offer in the 200 and the answer in the ACK, which no browser peer sends.
            self.warn("incoming INVITE without an SDP offer declined (488)".into());
            let _ = self.ua.reject(now, sip_call, 488);
            return;
        };
        let call = self.new_call(CallDirection::Incoming, from.uri.clone());
        if let Some(entry) = self.calls.get_mut(&call) {
            entry.sip = Some(sip_call);
            entry.offer = Some(offer);
        }
        self.by_sip.insert(sip_call, call);
        if let Err(e) = self.ua.ring(now, sip_call) {
            debug!(error = %e, "could not send 180");
        }
        self.emit(EngineEvent::IncomingCall {
            account: self.id,
            call,
            from: from.uri,
            display_name: from.display_name,
        });
        self.call_state(call, CallState::Ringing { status: 180 });
        if let Some(audio) = self.config.auto_answer.clone()
            && let Err(e) = self.answer(call, Some(audio))
        {
            self.warn(format!("auto-answer failed: {e}"));
        }
    }

    /// Gives the peer's answer (from a 183 or the 200) to the media session, once.
    fn deliver_remote_sdp(&mut self, call: CallId, sdp: String) {
        let Some(entry) = self.calls.get_mut(&call) else {
            return;
        };
        if entry.remote_applied || entry.direction != CallDirection::Outgoing {
            return;
        }
        entry.remote_applied = true;
        if let Some(task) = &entry.task {
            let _ = task.try_send(ToCall::RemoteAnswer { sdp });
        }
    }

    fn on_reoffer(&mut self, call: CallId, sdp: Option<String>) {
        let Some(entry) = self.calls.get(&call) else {
            return;
        };
        match (sdp, &entry.task) {
            (Some(sdp), Some(task)) => {
                let _ = task.try_send(ToCall::Reoffer { sdp });
            }
            _ => {
                // No offer (or no media yet): our current session description answers it.
                let local = entry.local_sdp.clone().unwrap_or_default();
                if let Some(sip_call) = entry.sip {
                    let now = self.now();
                    if let Err(e) = self.ua.answer_reoffer(now, sip_call, local) {
                        self.warn(format!("could not answer a re-INVITE: {e}"));
                    }
                }
            }
        }
    }

    fn end_call(&mut self, call: CallId, end: CallEnding) {
        let Some(entry) = self.calls.get_mut(&call) else {
            return;
        };
        if entry.phase == CallPhase::Ended {
            return;
        }
        entry.phase = CallPhase::Ended;
        if let Some(sip_call) = entry.sip.take() {
            self.by_sip.remove(&sip_call);
        }
        let task_running = match &entry.task {
            Some(task) => task.try_send(ToCall::End).is_ok(),
            None => false,
        };
        let key = entry.history_key.clone();
        self.history.call_ended(self.id, &key, end.cause);
        self.call_state(
            call,
            CallState::Ended {
                reason: end.text,
                status: end.status,
            },
        );
        if !task_running {
            self.forget_call(call);
        }
    }

    fn forget_call(&mut self, call: CallId) {
        if self.calls.remove(&call).is_some() {
            let _ = self.notices.send(AccountNotice::CallClosed { call });
        }
    }
}

// Commands from front ends.
impl SipAccount {
    fn on_command(&mut self, command: AccountCommand) {
        match command {
            AccountCommand::Call {
                target,
                audio,
                reply,
            } => {
                let _ = reply.send(self.place_call(target, audio));
            }
            AccountCommand::Answer { call, audio, reply } => {
                let _ = reply.send(self.answer(call, audio));
            }
            AccountCommand::Reject { call, reply } => {
                let _ = reply.send(self.reject(call));
            }
            AccountCommand::Hangup { call, reply } => {
                let _ = reply.send(self.hangup(call));
            }
            AccountCommand::SendMessage {
                target,
                body,
                reply,
            } => {
                let _ = reply.send(self.send_message(target, body));
            }
            AccountCommand::Stats { call, reply } => match self.call_task(call) {
                Ok(task) => {
                    let _ = task.try_send(ToCall::Stats { reply });
                }
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
            },
            AccountCommand::SetMuted { call, muted, reply } => {
                let result = self.call_task(call).map(|task| {
                    let _ = task.try_send(ToCall::SetMuted { muted });
                });
                let _ = reply.send(result);
            }
            AccountCommand::SendDtmf { call, digit, reply } => match self.call_task(call) {
                Ok(task) => {
                    let _ = task.try_send(ToCall::Dtmf { digit, reply });
                }
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
            },
            AccountCommand::Transfer(command) => {
                let now = self.now();
                self.transfers.on_command(&mut self.ua, now, command);
            }
            AccountCommand::Shutdown { reply } => self.begin_shutdown(Some(reply)),
        }
    }

    fn call_task(&self, call: CallId) -> Result<mpsc::Sender<ToCall>, EngineError> {
        let entry = self
            .calls
            .get(&call)
            .ok_or(EngineError::UnknownCall(call.0))?;
        entry
            .task
            .clone()
            .ok_or_else(|| EngineError::InvalidState("the call has no media yet".into()))
    }

    fn spawn_call_task(&mut self, call: CallId, audio: CallAudio, role: CallRole) {
        let (tx, rx) = mpsc::channel(16);
        let media = Arc::clone(&self.media);
        let to_account = self.from_calls_tx.clone();
        let notices = self.notices.clone();
        let account = self.id;
        tokio::spawn(call::run(
            call, account, media, audio, role, rx, to_account, notices,
        ));
        if let Some(entry) = self.calls.get_mut(&call) {
            entry.task = Some(tx);
        }
    }

    fn place_call(&mut self, target: String, audio: CallAudio) -> Result<CallId, EngineError> {
        if self.shutdown_reply.is_some() {
            return Err(EngineError::Stopped);
        }
        let target = target.trim().to_owned();
        if target.is_empty() {
            return Err(EngineError::InvalidConfig(
                "no one to call: the address is empty".into(),
            ));
        }
        let call = self.new_call(CallDirection::Outgoing, target);
        self.spawn_call_task(call, audio, CallRole::Offerer);
        Ok(call)
    }

    fn answer(&mut self, call: CallId, audio: Option<CallAudio>) -> Result<(), EngineError> {
        let entry = self
            .calls
            .get_mut(&call)
            .ok_or(EngineError::UnknownCall(call.0))?;
        if entry.direction != CallDirection::Incoming || entry.phase != CallPhase::Setup {
            return Err(EngineError::InvalidState(
                "only a ringing incoming call can be answered".into(),
            ));
        }
        let offer = entry
            .offer
            .take()
            .ok_or_else(|| EngineError::InvalidState("the call has no offer".into()))?;
        entry.phase = CallPhase::Answering;
        let audio = audio.unwrap_or_else(CallAudio::devices);
        self.spawn_call_task(call, audio, CallRole::Answerer { offer });
        Ok(())
    }

    fn reject(&mut self, call: CallId) -> Result<(), EngineError> {
        let entry = self
            .calls
            .get(&call)
            .ok_or(EngineError::UnknownCall(call.0))?;
        if entry.direction != CallDirection::Incoming || entry.phase != CallPhase::Setup {
            return Err(EngineError::InvalidState(
                "only a ringing incoming call can be declined".into(),
            ));
        }
        let sip_call = entry.sip.ok_or(EngineError::UnknownCall(call.0))?;
        let now = self.now();
        self.ua.reject(now, sip_call, 603)?;
        Ok(())
    }

    fn hangup(&mut self, call: CallId) -> Result<(), EngineError> {
        let entry = self
            .calls
            .get_mut(&call)
            .ok_or(EngineError::UnknownCall(call.0))?;
        match (entry.phase, entry.sip) {
            (CallPhase::Ended, _) => Err(EngineError::UnknownCall(call.0)),
            (_, Some(sip_call)) => {
                let now = self.now();
                self.ua.hangup(now, sip_call)?;
                Ok(())
            }
            (_, None) => {
                // The INVITE has not gone out yet (the offer is still being built).
                entry.cancelled_early = true;
                self.end_call(
                    call,
                    CallEnding::local("hung up before dialling", CallEndReason::LocalCancel),
                );
                Ok(())
            }
        }
    }

    fn send_message(&mut self, target: String, body: String) -> Result<MessageId, EngineError> {
        // An open MSRP chat session with the peer carries it (session mode, RFC 4975).
        let message = MessageId(self.ids.next());
        let key = uuid::Uuid::new_v4().to_string();
        if self.transfers.send_in_chat(&target, message, &key, &body) {
            self.history
                .message_sent(self.id, &key, &target, "text/plain", &body);
            return Ok(message);
        }
        let now = self.now();
        let sip_id = self.ua.send_message(
            now,
            &target,
            "text/plain;charset=UTF-8",
            body.clone().into_bytes(),
        )?;
        self.history
            .message_sent(self.id, &key, &target, "text/plain", &body);
        self.messages.insert(sip_id, (message, key, target));
        Ok(message)
    }

    fn on_call_message(&mut self, message: FromCall) {
        match message {
            FromCall::OfferReady { call, sdp } => {
                let Some(entry) = self.calls.get_mut(&call) else {
                    return;
                };
                if entry.cancelled_early || entry.phase == CallPhase::Ended {
                    return;
                }
                entry.local_sdp = Some(sdp.clone());
                entry.phase = CallPhase::Signalled;
                let target = entry.peer.clone();
                let now = self.now();
                match self.ua.invite(now, &target, sdp) {
                    Ok(sip_call) => {
                        if let Some(entry) = self.calls.get_mut(&call) {
                            entry.sip = Some(sip_call);
                        }
                        self.by_sip.insert(sip_call, call);
                    }
                    Err(e) => self.end_call(
                        call,
                        CallEnding::local(
                            format!("cannot call {target}: {e}"),
                            CallEndReason::Failed,
                        ),
                    ),
                }
            }
            FromCall::AnswerReady { call, sdp } => {
                let now = self.now();
                let Some(entry) = self.calls.get_mut(&call) else {
                    return;
                };
                let Some(sip_call) = entry.sip else { return };
                if entry.phase != CallPhase::Answering {
                    return;
                }
                entry.phase = CallPhase::Signalled;
                entry.answered = true;
                entry.local_sdp = Some(sdp.clone());
                self.history.call_answered(self.id, &entry.history_key);
                self.call_state(call, CallState::Answered);
                if let Err(e) = self.ua.answer(now, sip_call, sdp) {
                    self.end_call(
                        call,
                        CallEnding::local(format!("could not answer: {e}"), CallEndReason::Failed),
                    );
                }
            }
            FromCall::ReofferAnswer { call, sdp } => {
                let Some(entry) = self.calls.get_mut(&call) else {
                    return;
                };
                let sdp = match sdp {
                    Some(sdp) => {
                        entry.local_sdp = Some(sdp.clone());
                        sdp
                    }
                    None => entry.local_sdp.clone().unwrap_or_default(),
                };
                if let Some(sip_call) = entry.sip {
                    let now = self.now();
                    if let Err(e) = self.ua.answer_reoffer(now, sip_call, sdp) {
                        self.warn(format!("could not answer a re-INVITE: {e}"));
                    }
                }
            }
            FromCall::MediaFailed {
                call,
                reason,
                peer_fault,
            } => {
                let Some(entry) = self.calls.get(&call) else {
                    return;
                };
                let now = self.now();
                match (entry.phase, entry.sip) {
                    // The peer's offer was unusable: 488 Not Acceptable Here (RFC 3261 §21.4.26).
                    (CallPhase::Answering, Some(sip_call)) => {
                        if peer_fault {
                            self.warn(format!("peer's SDP refused: {reason}"));
                        }
                        let _ = self
                            .ua
                            .reject(now, sip_call, if peer_fault { 488 } else { 500 });
                    }
                    (CallPhase::Ended, _) => {}
                    (_, Some(sip_call)) => {
                        if peer_fault {
                            self.warn(format!("peer's SDP refused: {reason}"));
                        }
                        let _ = self.ua.hangup(now, sip_call);
                    }
                    (_, None) => self.end_call(
                        call,
                        CallEnding::local(format!("media failed: {reason}"), CallEndReason::Failed),
                    ),
                }
            }
            FromCall::Finished { call } => {
                let ended = self
                    .calls
                    .get(&call)
                    .is_some_and(|c| c.phase == CallPhase::Ended);
                if ended {
                    self.forget_call(call);
                } else if let Some(entry) = self.calls.get_mut(&call) {
                    entry.task = None;
                }
            }
        }
    }

    fn begin_shutdown(&mut self, reply: Option<oneshot::Sender<()>>) {
        if self.shutdown_reply.is_some() {
            if let Some(reply) = reply {
                let _ = reply.send(());
            }
            return;
        }
        info!(account = self.id.0, "shutting down");
        let now = self.now();
        self.transfers.shutdown(&mut self.ua, now);
        let calls: Vec<CallId> = self.calls.keys().copied().collect();
        for call in calls {
            let _ = self.hangup(call);
        }
        if self.flow.is_open() && self.registered_once {
            let now = self.now();
            match self.ua.unregister(now) {
                Ok(()) => self.awaiting_unregister = true,
                Err(e) => debug!(error = %e, "nothing to unregister"),
            }
        }
        let reply = reply.unwrap_or_else(|| oneshot::channel().0);
        self.shutdown_reply = Some((reply, Instant::now() + UNREGISTER_WAIT));
    }

    async fn finish(mut self) {
        // Messages being stored are still answered on the way out, rather than left for the
        // sender's proxy to time out.
        if tokio::time::timeout(STORE_WAIT, self.history.flush())
            .await
            .is_err()
        {
            warn!(
                account = self.id.0,
                "history writer slow; unanswered messages left"
            );
        }
        while let Ok(stored) = self.stored.try_recv() {
            self.on_message_stored(stored);
        }
        self.drive().await;
        for entry in self.calls.values() {
            if let Some(task) = &entry.task {
                let _ = task.try_send(ToCall::End);
            }
        }
        self.flow.close().await;
        self.set_state(AccountState::Stopped);
        if let Some((reply, _)) = self.shutdown_reply.take() {
            let _ = reply.send(());
        }
    }
}

/// How a call ended: words for the person, the SIP status if any, and the history's category.
struct CallEnding {
    text: String,
    status: Option<u16>,
    cause: CallEndReason,
}

impl CallEnding {
    fn local(text: impl Into<String>, cause: CallEndReason) -> Self {
        Self {
            text: text.into(),
            status: None,
            cause,
        }
    }

    fn from_sip(reason: &sip::EndReason, answered: bool) -> Self {
        use CallEndReason as R;
        let (text, status, cause) = match reason {
            sip::EndReason::LocalHangup if answered => ("hung up".to_owned(), None, R::LocalHangup),
            sip::EndReason::LocalHangup => ("cancelled".to_owned(), None, R::LocalCancel),
            sip::EndReason::RemoteHangup { .. } => {
                ("the other side hung up".to_owned(), None, R::RemoteHangup)
            }
            sip::EndReason::Cancelled => (
                "cancelled by the caller".to_owned(),
                Some(487),
                R::RemoteCancel,
            ),
            sip::EndReason::Rejected { status, reason } => {
                let cause = match status {
                    486 | 600 => R::Busy,
                    603 => R::Declined,
                    408 | 480 => R::NoAnswer,
                    _ => R::Failed,
                };
                (format!("declined: {status} {reason}"), Some(*status), cause)
            }
            sip::EndReason::Failed { status, reason } => (
                format!("failed: {status} {reason}"),
                Some(*status),
                R::Failed,
            ),
        };
        Self {
            text,
            status,
            cause,
        }
    }
}
