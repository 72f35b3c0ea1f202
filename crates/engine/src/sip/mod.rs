//! One SIP account: a task that owns the WebSocket flow and the sans-IO `UserAgent` core.
//!
//! The loop is the usual sans-IO driver: feed the core what happened (a WebSocket message, a
//! timer, a command, the flow going up or down), then carry out what it asks for (messages to
//! send, the next deadline, events). Every INVITE dialog carries a session — a call, a file or an
//! MSRP chat — whose work runs in a task of its own (`call.rs`, `msrp/`); the session table
//! (`sessions.rs`) says which dialog is whose and carries out the sessions' offer/answer signals
//! (`session.rs`), and the books (`calls.rs`, `msrp::Transfers`) keep each kind's state.
//!
//! Flow recovery (RFC 5626 §4.4–4.5): the WebSocket is kept alive with pings; when it dies the
//! core is told, the account reconnects with jittered exponential backoff, and the core
//! re-registers on the new flow. Established calls keep their media (ICE does not depend on the
//! signalling flow) and are reachable again once the new registration is in place.

mod calls;
pub(crate) mod sessions;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use lyrebird_media::MediaConfig;
use lyrebird_sip::{self as sip, UaConfig, UaEvent, UserAgent};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::{Instrument, debug, info, warn};

use crate::call::ToCall;
use crate::command::AccountCommand;
use crate::config::{DtmfMethod, SipAccountConfig};
use crate::event::{AccountState, EngineEvent};
use crate::ground::{AccountId, EngineError, IdSource, MessageId};
use crate::history::History;
use crate::notice::AccountNotice;
use crate::session::SessionId;
use crate::transport::{Flow, FlowEvent, Incoming, KeepAlive, WsTarget, sleep_until_opt};
use calls::Calls;
use lyrebird_msrp::offers_msrp;
use lyrebird_store::DeliveryState;
use sessions::{Routed, Sessions, Signalling};

/// Messages the core asks to send while the flow is down, kept until it is back.
const MAX_PENDING_TRANSMITS: usize = 256;
/// How long shutdown waits for the registrar to confirm the unregistration.
const UNREGISTER_WAIT: Duration = Duration::from_secs(2);
/// How long shutdown waits for incoming messages being stored, to answer them on the way out.
const STORE_WAIT: Duration = Duration::from_secs(2);

/// An incoming MESSAGE the history writer has stored, or failed to store.
struct StoredMessage {
    id: sip::IncomingMessageId,
    result: Result<crate::history::Kept, EngineError>,
    from: String,
    content_type: String,
    body: String,
}

pub(crate) struct SipAccount {
    id: AccountId,
    ids: Arc<IdSource>,
    /// How key presses are sent in calls.
    dtmf: DtmfMethod,
    ua: UserAgent,
    flow: Flow,
    keepalive: KeepAlive,
    registered_once: bool,
    awaiting_unregister: bool,
    pending: VecDeque<Vec<u8>>,
    /// Which dialog carries which session (call, file, chat).
    sessions: Sessions,
    calls: Calls,
    /// Outgoing messages awaiting their final response: engine id, history key, recipient.
    messages: HashMap<sip::MessageId, (MessageId, String, String)>,
    commands: mpsc::Receiver<AccountCommand>,
    notices: mpsc::UnboundedSender<AccountNotice>,
    history: History,
    /// The history writer's word on incoming MESSAGEs: they are answered only once stored.
    stored_tx: mpsc::UnboundedSender<StoredMessage>,
    stored: mpsc::UnboundedReceiver<StoredMessage>,
    shutdown_reply: Option<(oneshot::Sender<()>, Instant)>,
    /// File transfers: their SIP sessions go through `ua`, their bytes through their own tasks.
    transfers: crate::msrp::Transfers,
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
        let (stored_tx, stored) = mpsc::unbounded_channel();
        let transfers = crate::msrp::Transfers::new(
            id,
            &config,
            Arc::clone(&ids),
            notices.clone(),
            history.clone(),
        );
        let calls = Calls::new(
            id,
            Arc::clone(&media),
            Arc::clone(&ids),
            notices.clone(),
            history.clone(),
            config.auto_answer.clone(),
            config.call_waiting,
        );
        Ok(Self {
            calls,
            dtmf: config.dtmf,
            id,
            ids,
            ua,
            flow: Flow::new(target),
            keepalive: KeepAlive::new(),
            registered_once: false,
            awaiting_unregister: false,
            pending: VecDeque::new(),
            sessions: Sessions::default(),
            messages: HashMap::new(),
            commands,
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
                Some(message) = self.calls.next_message() => {
                    let mut sig = Signalling {
                        ua: &mut self.ua,
                        sessions: &mut self.sessions,
                        now: Instant::now().into_std(),
                    };
                    self.calls.on_task_message(&mut sig, message);
                }
                Some(stored) = self.stored.recv() => {
                    // A batch's commit settles many at once: answer them all in one turn.
                    self.on_message_stored(stored);
                    while let Ok(stored) = self.stored.try_recv() {
                        self.on_message_stored(stored);
                    }
                }
                Some(message) = self.transfers.next_message() => {
                    let mut sig = Signalling {
                        ua: &mut self.ua,
                        sessions: &mut self.sessions,
                        now: Instant::now().into_std(),
                    };
                    self.transfers.on_task_message(&mut sig, message);
                }
                event = self.flow.next() => match event {
                    FlowEvent::Opened => self.on_connected(),
                    FlowEvent::Failed(e) => self.attempt_failed(e),
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

    fn attempt_failed(&mut self, error: EngineError) {
        if self.shutdown_reply.is_some() {
            return;
        }
        if let Some(state) = self.flow.attempt_failed(error) {
            self.set_state(state);
        }
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
        let mut sig = Signalling {
            ua: &mut self.ua,
            sessions: &mut self.sessions,
            now: Instant::now().into_std(),
        };
        let event = match sig.sessions.route(event) {
            Routed::Session(SessionId::Call(call), event) => {
                return self.calls.on_dialog(&mut sig, call, event);
            }
            Routed::Session(session, event) => {
                return self.transfers.on_dialog(&mut sig, session, event);
            }
            Routed::Offer {
                dialog,
                from,
                sdp,
                replaces,
            } => {
                if self.shutdown_reply.is_some() {
                    let _ = sig.ua.reject(sig.now, dialog, 480);
                } else if sdp.as_deref().is_some_and(offers_msrp) {
                    // A file (RFC 5547) or an MSRP chat: the transfer book's.
                    self.transfers
                        .on_offer(&mut sig, dialog, from, sdp.unwrap_or_default());
                } else {
                    let replaces = match replaces {
                        Some(SessionId::Call(call)) => Some(call),
                        _ => None,
                    };
                    self.calls.on_offer(&mut sig, dialog, from, sdp, replaces);
                }
                return;
            }
            Routed::Nothing => return,
            Routed::Account(event) => event,
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
            // Dialog events: `Sessions::route` took them.
            UaEvent::IncomingCall { .. }
            | UaEvent::CallProgress { .. }
            | UaEvent::CallAnswered { .. }
            | UaEvent::CallConfirmed { .. }
            | UaEvent::Reoffer { .. }
            | UaEvent::CallEnded { .. }
            | UaEvent::ReofferAnswered { .. }
            | UaEvent::ReofferFailed { .. }
            | UaEvent::DtmfReceived { .. }
            | UaEvent::ReferReceived { .. }
            | UaEvent::ReferProgress { .. } => {}
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
            Ok(kept) => {
                if let Err(e) = self.ua.answer_message(now, stored.id, 200) {
                    // It is stored all the same; only the sender did not hear so from us (the
                    // flow went down, or the core gave up waiting and answered 500).
                    debug!(account = self.id.0, error = %e, "stored message not answered 200");
                }
                // A copy sent again (our 200 was lost, perhaps with the run that stored it)
                // is answered but not shown twice.
                if kept == crate::history::Kept::Already {
                    return;
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
}

// Commands from front ends.
impl SipAccount {
    fn on_command(&mut self, command: AccountCommand) {
        let mut sig = Signalling {
            ua: &mut self.ua,
            sessions: &mut self.sessions,
            now: Instant::now().into_std(),
        };
        match command {
            AccountCommand::Call {
                target,
                audio,
                reply,
            } => {
                let result = match self.shutdown_reply {
                    Some(_) => Err(EngineError::Stopped),
                    None => self.calls.place_call(&mut sig, target, audio),
                };
                let _ = reply.send(result);
            }
            AccountCommand::Answer { call, audio, reply } => {
                let _ = reply.send(self.calls.answer(call, audio));
            }
            AccountCommand::Reject { call, reply } => {
                let _ = reply.send(self.calls.reject(&mut sig, call));
            }
            AccountCommand::Hangup { call, reply } => {
                let _ = reply.send(self.calls.hangup(&mut sig, call));
            }
            AccountCommand::SendMessage {
                target,
                body,
                reply,
            } => {
                let _ = reply.send(self.send_message(target, body));
            }
            AccountCommand::Stats { call, reply } => self.calls.stats(call, reply),
            AccountCommand::SetMuted { call, muted, reply } => {
                let result = self.calls.task(call).map(|task| {
                    let _ = task.try_send(ToCall::SetMuted { muted });
                });
                let _ = reply.send(result);
            }
            AccountCommand::SendDtmf { call, digit, reply } => {
                let method = self.dtmf;
                self.calls.send_dtmf(&mut sig, call, digit, method, reply);
            }
            AccountCommand::Hold { call, hold, reply } => self.calls.hold(call, hold, reply),
            AccountCommand::Record {
                call,
                folder,
                reply,
            } => self.calls.record(call, folder, reply),
            AccountCommand::Conference {
                call,
                conference,
                reply,
            } => self
                .calls
                .command(call, ToCall::Conference { conference, reply }),
            AccountCommand::Transfer {
                call,
                target,
                reply,
            } => {
                let _ = reply.send(self.calls.transfer(&mut sig, call, target));
            }
            AccountCommand::AttendedTransfer { call, to, reply } => {
                let _ = reply.send(self.calls.attended_transfer(&mut sig, call, to));
            }
            AccountCommand::Files(command) => self.transfers.on_command(&mut sig, command),
            AccountCommand::Shutdown { reply } => self.begin_shutdown(Some(reply)),
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
        // Only a MESSAGE is bounded: an MSRP chat above sends any length in chunks.
        crate::ground::check_text_length(&body, crate::ground::MAX_SIP_TEXT_BYTES)?;
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

    fn begin_shutdown(&mut self, reply: Option<oneshot::Sender<()>>) {
        if self.shutdown_reply.is_some() {
            if let Some(reply) = reply {
                let _ = reply.send(());
            }
            return;
        }
        info!(account = self.id.0, "shutting down");
        let mut sig = Signalling {
            ua: &mut self.ua,
            sessions: &mut self.sessions,
            now: Instant::now().into_std(),
        };
        self.transfers.shutdown(&mut sig);
        self.calls.hangup_all(&mut sig);
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
        self.calls.stop_tasks();
        self.flow.close().await;
        self.set_state(AccountState::Stopped);
        if let Some((reply, _)) = self.shutdown_reply.take() {
            let _ = reply.send(());
        }
    }
}
