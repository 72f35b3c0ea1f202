//! XMPP accounts: chat and presence over XMPP-over-WebSocket (RFC 7395).
//!
//! One task per account owns the WebSocket (sub-protocol `xmpp`, via `transport.rs`) and the
//! sans-IO `lyrebird_xmpp::Client`, exactly as the SIP account task owns its `UserAgent`:
//! feed the core (frames, time, commands, the socket going up or down), then carry out what it
//! asks (frames to send, events, the next deadline).
//!
//! - Keep-alive is a WebSocket ping; a dead flow is noticed by
//!   `transport::KeepAlive` and the account reconnects with jittered backoff (`backoff.rs`). The core
//!   resumes the XEP-0198 session on the new socket, so unacknowledged stanzas are resent and
//!   nothing is received twice; when the server has forgotten the session, a fresh one is bound
//!   and our archive and each room's (XEP-0313) are caught up from where the last catch-up
//!   stopped (`archive.rs`).
//! - Everything received or sent goes to the history writer (`history.rs`). A message that
//!   arrives is shown, and its receipt sent, only once it is committed and only if history did
//!   not hold it already (the store de-duplicates by stable id per conversation), so a copy
//!   resent after a resumption, fetched from the archive or delivered again at the next run is
//!   shown once. Archive pages are written one transaction per page, the same way.
//! - The server hears a stanza was handled (XEP-0198 `h`) only once what it brought is in
//!   history: after each burst the core's received mark is recorded after the burst's messages,
//!   and its commit confirms it to the core. The mark, with the session's resumption id, is also
//!   what a run that was killed leaves behind: the next run resumes that session, so what the
//!   server routed to it after the kill arrives instead of waiting there to expire. An orderly
//!   close forgets it.
//! - HTTP upload (XEP-0363) and downloads of shared links run in their own tasks (`http.rs`),
//!   reporting progress as events.
//! - Calls with XMPP contacts (Jingle, set up with XEP-0353) live in the account's call table
//!   (`calls.rs`); each call's media runs in the same kind of task as a SIP call's.

mod archive;
mod calls;
mod http;
pub(crate) mod store;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use lyrebird_media::MediaConfig;
use lyrebird_store::DeliveryState;
use lyrebird_xmpp::{
    ChatMessage, ChatState, Client, ClientConfig, MessageKind, MessageOrigin, ReceivedMark, Show,
    XmppError, XmppEvent,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::{Instrument, debug, info, warn};

use crate::command::AccountCommand;
use crate::config::CallAudio;
use crate::event::{AccountState, EngineEvent};
use crate::ground::IdSource;
use crate::ground::{AccountId, EngineError};
use crate::history::{History, Kept};
use crate::notice::AccountNotice;
use crate::secret::Password;
use crate::transport::{Flow, FlowEvent, Incoming, KeepAlive, WsTarget, sleep_until_opt};

pub(crate) use store::XmppHappening;
use store::chat_event;

/// News from the history writer about what this account recorded.
enum FromHistory {
    /// A live message (or carbon) is committed, or could not be stored.
    Message {
        message: Box<ChatMessage>,
        result: Result<Kept, EngineError>,
    },
    /// Everything up to this mark is committed (and the mark itself, for a later run).
    Handled(ReceivedMark),
}

/// One of our messages on its way, for its delivery-state updates.
#[derive(Debug)]
struct SentMessage {
    /// Bare JID of the contact or room.
    peer: String,
    room: bool,
    /// The server acknowledged it (XEP-0198), or took it without stream management.
    acked: bool,
    /// The recipient's side answered: delivered (a receipt, the room's reflection) or failed.
    settled: bool,
}

/// How long quitting waits for the server's `<close/>` (see `await_close_answer`); within the
/// supervisor's bound on stopping an account.
const CLOSE_ANSWER_WAIT: Duration = Duration::from_secs(2);

/// An XMPP account: where to connect and who to be.
#[derive(Debug, Clone)]
pub struct XmppAccountConfig {
    /// `ws://` or `wss://` URL of the server's RFC 7395 endpoint.
    pub ws_url: String,
    /// Bare JID, `alice@example.com`.
    pub jid: String,
    pub password: Password,
    /// Resource to ask for; the server picks one when `None`.
    pub resource: Option<String>,
    /// Allow SASL PLAIN (only sensible over `wss://` or a loopback test bed).
    pub allow_plain: bool,
    /// A PEM certificate trusted for this server in addition to the system roots.
    pub trusted_certificate: Option<PathBuf>,
    /// Where received files are downloaded.
    pub download_dir: PathBuf,
    /// Send available presence on login (a bot that only sends may turn it off).
    pub initial_presence: bool,
    /// Approve every subscription request at once (bots, tests).
    pub auto_approve: bool,
    /// Fetch the archive (XEP-0313) after every fresh login.
    pub archive_catch_up: bool,
    /// RSM page size for the archive.
    pub archive_page_size: u32,
    /// Take and place calls (Jingle): advertised to contacts only when on.
    pub calls: bool,
    /// Answer every call from a roster contact at once with this audio (bots, tests); a
    /// stranger's call always waits for the person.
    pub auto_answer: Option<CallAudio>,
}

impl XmppAccountConfig {
    /// A configuration with the usual defaults for everything but the essentials.
    pub fn new(ws_url: impl Into<String>, jid: impl Into<String>, password: Password) -> Self {
        Self {
            ws_url: ws_url.into(),
            jid: jid.into(),
            password,
            resource: None,
            allow_plain: false,
            trusted_certificate: None,
            download_dir: std::env::temp_dir().join("lyrebird-downloads"),
            initial_presence: true,
            auto_approve: false,
            archive_catch_up: true,
            archive_page_size: 500,
            calls: true,
            auto_answer: None,
        }
    }
}

/// Something to do on an XMPP account (also the CLI's JSON-line commands, tagged `cmd`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum XmppAction {
    /// Our presence (RFC 6121 §4.2): `show` is `chat`, `away`, `xa`, `dnd` or absent.
    Presence {
        #[serde(default)]
        show: Option<String>,
        #[serde(default)]
        status: Option<String>,
        #[serde(default)]
        priority: Option<i8>,
    },
    /// Directed presence to one JID (RFC 6121 §4.6).
    DirectedPresence {
        to: String,
        #[serde(default)]
        show: Option<String>,
        #[serde(default)]
        status: Option<String>,
    },
    /// The roster with everyone's current presence.
    Roster,
    /// Adds a contact to the roster and asks to see their presence.
    AddContact {
        jid: String,
        #[serde(default)]
        name: Option<String>,
        #[serde(default)]
        groups: Vec<String>,
    },
    /// Renames a contact or changes its groups.
    RenameContact {
        jid: String,
        name: String,
        #[serde(default)]
        groups: Vec<String>,
    },
    /// Removes a contact (and both subscriptions).
    RemoveContact { jid: String },
    /// Approves a subscription request.
    Approve { jid: String },
    /// Denies a subscription request (or revokes an approval).
    Deny { jid: String },
    /// Stops watching a contact's presence.
    Unsubscribe { jid: String },
    /// A 1:1 message; the reply carries its id.
    Message { to: String, body: String },
    /// Corrects our earlier message `message` to `to` (XEP-0308); `room` when `to` is a room.
    Correct {
        to: String,
        message: String,
        body: String,
        #[serde(default)]
        room: bool,
    },
    /// A chat state (XEP-0085): `active`, `composing`, `paused`, `inactive`, `gone`.
    ChatState { to: String, state: String },
    /// Joins a room (XEP-0045) with up to `history` old messages.
    Join {
        room: String,
        nick: String,
        #[serde(default)]
        history: Option<u32>,
    },
    /// Leaves a room.
    Leave { room: String },
    /// Changes our nickname in a room.
    Nick { room: String, nick: String },
    /// A message to a room.
    RoomMessage { room: String, body: String },
    /// Uploads a file (XEP-0363) and sends its link (XEP-0066) to a contact or room.
    ShareFile {
        to: String,
        path: PathBuf,
        #[serde(default)]
        room: bool,
        #[serde(default)]
        content_type: Option<String>,
    },
    /// Downloads a shared link into the download folder.
    Download {
        url: String,
        #[serde(default)]
        dir: Option<PathBuf>,
    },
}

impl XmppAction {
    /// The text this action sends as a message, if it sends one.
    pub(crate) fn text(&self) -> Option<&str> {
        match self {
            XmppAction::Message { body, .. }
            | XmppAction::Correct { body, .. }
            | XmppAction::RoomMessage { body, .. } => Some(body),
            _ => None,
        }
    }
}

/// What an action produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case", untagged)]
pub enum XmppReply {
    /// Nothing to report but success.
    Done {},
    /// The id (also the stable id in history) of a message sent.
    Message { message: String },
    /// A file transfer started; follow it with `file_*` events.
    Transfer { transfer: u64 },
    /// The roster.
    Roster { contacts: Vec<RosterContact> },
}

/// One contact and the presence of each of its online resources.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct RosterContact {
    pub jid: String,
    pub name: Option<String>,
    pub subscription: String,
    pub pending_out: bool,
    pub groups: Vec<String>,
    pub resources: Vec<ResourcePresence>,
}

/// One online resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ResourcePresence {
    pub resource: String,
    pub show: Option<String>,
    pub status: Option<String>,
    pub priority: i8,
}

pub(crate) struct XmppCommand {
    pub(crate) action: Option<XmppAction>,
    pub(crate) reply: oneshot::Sender<Result<XmppReply, EngineError>>,
}

impl std::fmt::Debug for XmppCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XmppCommand")
            .field("action", &self.action)
            .finish_non_exhaustive()
    }
}

impl From<XmppError> for EngineError {
    fn from(e: XmppError) -> Self {
        match e {
            XmppError::InvalidInput(m) => EngineError::InvalidConfig(m),
            XmppError::NotConnected => EngineError::InvalidState("not connected".into()),
            XmppError::Unsupported(m) => EngineError::InvalidState(m),
            other => EngineError::Xmpp(other.to_string()),
        }
    }
}

/// What upload/download tasks report back.
#[derive(Debug)]
enum FromTransfer {
    Progress {
        transfer: u64,
        upload: bool,
        bytes: u64,
        total: Option<u64>,
    },
    Uploaded {
        transfer: u64,
    },
    Downloaded {
        transfer: u64,
        url: String,
        path: PathBuf,
        sha256: String,
        bytes: u64,
    },
    Failed {
        transfer: u64,
        reason: String,
    },
}

/// An upload waiting for its slot or its PUT.
struct Upload {
    transfer: u64,
    to: String,
    room: bool,
    path: PathBuf,
    size: u64,
    content_type: String,
    sha256: String,
    get_url: Option<String>,
}

#[derive(Default)]
struct Contact {
    name: Option<String>,
    subscription: String,
    pending_out: bool,
    groups: Vec<String>,
}

pub(crate) struct XmppAccount {
    id: AccountId,
    config: XmppAccountConfig,
    client: Client,
    flow: Flow,
    keepalive: KeepAlive,
    commands: mpsc::Receiver<XmppCommand>,
    notices: mpsc::UnboundedSender<AccountNotice>,
    history: History,
    ids: Arc<IdSource>,
    stopping: bool,
    permanent_failure: bool,
    roster: HashMap<String, Contact>,
    /// bare JID → resource → presence
    presence: HashMap<String, HashMap<String, ResourcePresence>>,
    /// Our messages whose delivery is not settled yet, by id.
    sent: HashMap<String, SentMessage>,
    /// Archive catch-ups in progress (`archive.rs`).
    archive: archive::CatchUp,
    /// What the history writer says about our records ([`FromHistory`]).
    from_history_tx: mpsc::UnboundedSender<FromHistory>,
    from_history: mpsc::UnboundedReceiver<FromHistory>,
    /// The last stream-management mark handed to history.
    recorded_mark: Option<ReceivedMark>,
    uploads: HashMap<String, Upload>,
    transfers_tx: mpsc::UnboundedSender<FromTransfer>,
    transfers: mpsc::UnboundedReceiver<FromTransfer>,
    /// Calls with contacts (`calls.rs`), and the front ends' commands for them.
    calls: calls::Calls,
    call_commands: mpsc::Receiver<AccountCommand>,
}

impl XmppAccount {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        id: AccountId,
        config: XmppAccountConfig,
        ids: Arc<IdSource>,
        media: Arc<MediaConfig>,
        commands: mpsc::Receiver<XmppCommand>,
        call_commands: mpsc::Receiver<AccountCommand>,
        notices: mpsc::UnboundedSender<AccountNotice>,
        history: History,
    ) -> Result<Self, EngineError> {
        if !(config.ws_url.starts_with("ws://") || config.ws_url.starts_with("wss://")) {
            return Err(EngineError::InvalidConfig(format!(
                "`{}` is not a ws:// or wss:// URL",
                config.ws_url
            )));
        }
        let mut core = ClientConfig::new(config.jid.clone(), config.password.expose());
        core.resource = config.resource.clone();
        core.allow_plain = config.allow_plain;
        core.rng_seed = rand::random();
        core.mam_page_size = config.archive_page_size.max(1);
        core.caps_node = "https://lyrebird.invalid/caps".into();
        // The server hears a stanza was handled only once what it brought is in history.
        core.confirm_handled = true;
        core.calls = config.calls;
        if config.calls {
            core.extra_features = lyrebird_xmpp::jingle::caps::call_features(false)
                .into_iter()
                .map(str::to_owned)
                .collect();
        }
        let client = Client::new(core)?;
        let calls = calls::Calls::new(
            id,
            media,
            Arc::clone(&ids),
            notices.clone(),
            history.clone(),
            config.auto_answer.clone(),
        );
        let target = WsTarget {
            url: config.ws_url.clone(),
            subprotocol: "xmpp",
            trusted_certificate: config.trusted_certificate.clone(),
            connect_timeout: Duration::from_secs(10),
        };
        let (transfers_tx, transfers) = mpsc::unbounded_channel();
        let (from_history_tx, from_history) = mpsc::unbounded_channel();
        let archive = archive::CatchUp::new(id, config.archive_page_size, notices.clone());
        Ok(Self {
            id,
            config,
            client,
            flow: Flow::new(target),
            keepalive: KeepAlive::new(),
            commands,
            notices,
            history,
            ids,
            stopping: false,
            permanent_failure: false,
            roster: HashMap::new(),
            presence: HashMap::new(),
            sent: HashMap::new(),
            archive,
            from_history_tx,
            from_history,
            recorded_mark: None,
            uploads: HashMap::new(),
            transfers_tx,
            transfers,
            calls,
            call_commands,
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
        let span = tracing::info_span!("xmpp_account", account = self.id.0);
        self.drive_until_stopped().instrument(span).await;
    }

    async fn drive_until_stopped(mut self) {
        self.archive.start_writer(self.history.clone());
        self.resume_what_an_earlier_run_left().await;
        self.start_connecting();
        let mut shutdown_reply = None;
        loop {
            self.drive().await;
            if self.stopping {
                break;
            }
            let core_deadline = self.client.poll_timeout().map(Instant::from_std);
            let calls_deadline = self.calls.poll_timeout().map(Instant::from_std);
            let ping_at = self.flow.is_open().then(|| self.keepalive.deadline());
            let second_look_at = self
                .client
                .is_online()
                .then(|| self.archive.second_look_at())
                .flatten();
            tokio::select! {
                command = self.commands.recv() => match command {
                    Some(XmppCommand { action: Some(action), reply }) => {
                        let result = self.on_action(action);
                        let _ = reply.send(result);
                    }
                    Some(XmppCommand { action: None, reply }) => {
                        shutdown_reply = Some(reply);
                        self.stopping = true;
                    }
                    None => self.stopping = true,
                },
                Some(command) = self.call_commands.recv() => {
                    let now = self.now();
                    self.calls.on_command(&mut self.client, now, command);
                }
                Some(message) = self.calls.next_message() => {
                    let now = self.now();
                    self.calls.on_task_message(&mut self.client, now, message);
                }
                () = sleep_until_opt(calls_deadline) => {
                    let now = self.now();
                    self.calls.on_timeout(&mut self.client, now);
                }
                Some(message) = self.transfers.recv() => self.on_transfer(message),
                Some(written) = self.archive.next_written() => self.archive.on_written(written),
                Some(news) = self.from_history.recv() => self.on_history_news(news),
                event = self.flow.next() => match event {
                    FlowEvent::Opened => self.on_connected(),
                    FlowEvent::Failed(e) => self.attempt_failed(e),
                    FlowEvent::Incoming(incoming) => self.on_incoming(incoming),
                    FlowEvent::ReconnectDue => self.start_connecting(),
                },
                () = sleep_until_opt(core_deadline) => {
                    let now = self.now();
                    self.client.handle_timeout(now);
                }
                () = sleep_until_opt(ping_at) => self.on_keepalive_due().await,
                () = sleep_until_opt(second_look_at) => {
                    self.archive.take_second_look(&mut self.client, &self.history).await;
                }
            }
        }
        // Calls end first, so their peers hear it (session-terminate) before we leave.
        let now = self.now();
        self.calls.hangup_all(&mut self.client, now);
        self.calls.stop_tasks();
        // Orderly close: unavailable presence, SM ack, </close>; bounded. Everything received
        // is recorded by now; once it is written, the final ack can count all of it.
        self.history.flush().await;
        if let Some(mark) = self.client.received_mark() {
            self.client.confirm_handled(&mark);
        }
        let now = self.now();
        self.client.close(now);
        while let Some(frame) = self.client.poll_transmit() {
            if let Some(conn) = self.flow.conn.as_mut()
                && tokio::time::timeout(Duration::from_secs(1), conn.send(frame.into_bytes()))
                    .await
                    .is_err()
            {
                break;
            }
        }
        self.await_close_answer().await;
        self.flow.close().await;
        if self.client.close_answered() {
            // The server ended the session: there is nothing left to resume.
            self.history.record_xmpp(XmppHappening::StreamResumption {
                account: self.id,
                mark: None,
            });
        }
        self.history.flush().await;
        self.set_state(AccountState::Stopped);
        if let Some(reply) = shutdown_reply {
            let _ = reply.send(Ok(XmppReply::Done {}));
        }
    }

    /// RFC 7395 §3.6: after our `<close/>`, the server answers with its own before the
    /// WebSocket closes. Closing at once makes a server (ejabberd) take it for a dropped
    /// connection and hold the session for resumption, so the next login with the same
    /// resource meets a conflict. Bounded: a server that does not answer is not waited for.
    /// Stanzas that still arrive are left to the archive catch-up of the next start (they
    /// came after our final acknowledgement, so the server does not count them delivered).
    async fn await_close_answer(&mut self) {
        let deadline = Instant::now() + CLOSE_ANSWER_WAIT;
        while !self.client.close_answered() {
            let Some(conn) = self.flow.conn.as_mut() else {
                return;
            };
            match tokio::time::timeout_at(deadline, conn.recv()).await {
                Ok(Ok(Some(Incoming::Message(frame)))) => {
                    let now = self.now();
                    self.client
                        .handle_frame(now, &String::from_utf8_lossy(&frame));
                }
                Ok(Ok(Some(Incoming::Alive))) => {}
                Ok(Ok(None) | Err(_)) => return,
                Err(_) => {
                    debug!(account = self.id.0, "no <close/> from the server in time");
                    return;
                }
            }
        }
        // Whatever the core made of the last frames is not acted on any more.
        while self.client.poll_transmit().is_some() {}
        while self.client.poll_event().is_some() {}
    }

    async fn drive(&mut self) {
        loop {
            let mut progressed = false;
            while let Some(frame) = self.client.poll_transmit() {
                progressed = true;
                let Some(conn) = self.flow.conn.as_mut() else {
                    // The core keeps unacknowledged stanzas itself (XEP-0198); a frame that
                    // cannot go now is resent after resumption.
                    continue;
                };
                if let Err(e) = conn.send(frame.into_bytes()).await {
                    self.lost(e.to_string());
                }
            }
            while let Some(event) = self.client.poll_event() {
                progressed = true;
                self.on_core_event(event).await;
            }
            while let Some(signal) = self.client.poll_call_signal() {
                progressed = true;
                let now = self.now();
                let roster = &self.roster;
                self.calls.on_signal(&mut self.client, now, signal, |jid| {
                    let contact = roster.get(jid);
                    calls::Caller {
                        known: contact.is_some(),
                        name: contact.and_then(|c| c.name.clone()),
                    }
                });
            }
            if !progressed {
                break;
            }
        }
        self.record_received_mark();
    }

    /// Hands the stream-management mark to history after what the stanzas it counts brought
    /// (their messages were recorded as they were handled): once written, it lets the core
    /// tell the server they were handled, and a later run resume the session from it.
    fn record_received_mark(&mut self) {
        let Some(mark) = self.client.received_mark() else {
            return;
        };
        if self.recorded_mark.as_ref() == Some(&mark) {
            return;
        }
        self.recorded_mark = Some(mark.clone());
        let news = self.from_history_tx.clone();
        let handled = mark.clone();
        self.history.record_xmpp_acked(
            XmppHappening::StreamResumption {
                account: self.id,
                mark: Some(mark),
            },
            Box::new(move |result| {
                if result.is_ok() {
                    let _ = news.send(FromHistory::Handled(handled));
                }
            }),
        );
    }

    /// Before the first connection: if the last run ended without closing its session (it was
    /// killed or crashed), the core resumes that session, so what the server queued for it
    /// arrives rather than waiting there to expire.
    async fn resume_what_an_earlier_run_left(&mut self) {
        let account = self.id;
        let left = self
            .history
            .query_writer(move |w| store::stream_resumption(w, account))
            .await;
        match left {
            Ok(Some(left)) => {
                info!(
                    account = self.id.0,
                    handled = left.handled,
                    "resuming the session the last run left"
                );
                self.client
                    .resume_after_restart(left.resume_id, left.handled, left.jid);
            }
            Ok(None) => {}
            Err(e) => warn!(account = self.id.0, error = %e, "the last run's session is not known"),
        }
    }

    fn on_history_news(&mut self, news: FromHistory) {
        match news {
            FromHistory::Handled(mark) => self.client.confirm_handled(&mark),
            FromHistory::Message { message, result } => match result {
                Ok(kept) => {
                    // "Delivered" is said only of what a crash can no longer lose.
                    self.client.send_receipt(&message);
                    if kept == Kept::New {
                        self.emit(chat_event(self.id, &message));
                    } else {
                        debug!("a message already in history arrived again; shown once");
                    }
                }
                Err(e) => {
                    warn!(account = self.id.0, error = %e, "an incoming message could not be stored");
                    self.warn(format!(
                        "a message from {} could not be stored: {e}",
                        message.peer
                    ));
                }
            },
        }
    }

    /// Sends what the core has queued, without handling events (used inside event handling).
    async fn drive_transmit(&mut self) {
        while let Some(frame) = self.client.poll_transmit() {
            let Some(conn) = self.flow.conn.as_mut() else {
                continue;
            };
            if let Err(e) = conn.send(frame.into_bytes()).await {
                self.lost(e.to_string());
            }
        }
    }

    fn start_connecting(&mut self) {
        if !self.stopping && !self.permanent_failure && self.flow.connect() {
            self.set_state(AccountState::Connecting);
        }
    }

    fn on_connected(&mut self) {
        self.keepalive.heard();
        self.set_state(AccountState::Connected);
        let now = self.now();
        self.client.handle_connected(now);
    }

    fn lost(&mut self, reason: String) {
        if !self.flow.lose() {
            return;
        }
        warn!(account = self.id.0, %reason, "XMPP connection lost");
        let now = self.now();
        self.client.handle_disconnected(now);
        self.schedule_reconnect(reason);
    }

    fn attempt_failed(&mut self, error: EngineError) {
        if self.stopping || self.permanent_failure {
            return;
        }
        if let Some(state) = self.flow.attempt_failed(error) {
            self.set_state(state);
        }
    }

    fn schedule_reconnect(&mut self, reason: String) {
        if self.stopping || self.permanent_failure {
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
                let now = self.now();
                match String::from_utf8(message) {
                    Ok(text) => self.client.handle_frame(now, &text),
                    // RFC 7395 §3.2: XMPP frames are UTF-8 text; anything else is not XML.
                    Err(_) => self.client.handle_frame(now, "<"),
                }
            }
            Ok(Some(Incoming::Alive)) => {}
            Ok(None) => self.lost("the server closed the connection".into()),
            Err(e) => self.lost(e.to_string()),
        }
    }

    async fn on_keepalive_due(&mut self) {
        if !self.keepalive.awaiting_answer() && self.client.probe_liveness() {
            // An XMPP-level probe beside the WebSocket ping: after a resumption over
            // WebSocket, Prosody 0.12 answers pings on the connection the session came from,
            // so only the stream itself can show this one is alive.
            self.drive_transmit().await;
        }
        let Some(conn) = self.flow.conn.as_mut() else {
            return;
        };
        if let Err(reason) = self.keepalive.due(conn).await {
            self.lost(reason);
        }
    }

    fn warn(&self, detail: String) {
        self.emit(EngineEvent::Warning {
            account: Some(self.id),
            detail,
        });
    }
}

// Events from the core.
impl XmppAccount {
    async fn on_core_event(&mut self, event: XmppEvent) {
        match event {
            XmppEvent::Online { jid, resumed } => {
                self.flow.reset_backoff();
                self.calls.set_local(&jid);
                if !resumed {
                    self.presence.clear();
                    // Available before anyone is told we are online (RFC 6121 §4.2).
                    if self.config.initial_presence {
                        self.client.set_presence(None, None, 0);
                    }
                    self.drive_transmit().await;
                }
                self.emit(EngineEvent::XmppOnline {
                    account: self.id,
                    jid,
                    resumed,
                });
                if !resumed && self.config.calls {
                    // XEP-0215: the server's STUN/TURN services, for calls.
                    let now = self.now();
                    self.client.request_ice_servers(now);
                }
                if !resumed && self.config.archive_catch_up {
                    self.archive.on_login(&mut self.client, &self.history).await;
                }
            }
            XmppEvent::Offline { error } => {
                let permanent = error.as_ref().is_some_and(XmppError::is_permanent);
                let reason = error
                    .map(|e| e.to_string())
                    .unwrap_or_else(|| "stream closed".into());
                if permanent {
                    self.permanent_failure = true;
                    self.set_state(AccountState::AuthenticationFailed {
                        reason: reason.clone(),
                    });
                    if let Some(conn) = self.flow.take() {
                        conn.close().await;
                    }
                    let now = self.now();
                    self.client.handle_disconnected(now);
                } else if !self.stopping {
                    // The core has closed the stream; close the socket and resume on a new one.
                    if let Some(mut conn) = self.flow.take() {
                        while let Some(frame) = self.client.poll_transmit() {
                            let send = conn.send(frame.into_bytes());
                            if tokio::time::timeout(Duration::from_secs(1), send)
                                .await
                                .is_err()
                            {
                                break;
                            }
                        }
                        conn.close().await;
                        let now = self.now();
                        self.client.handle_disconnected(now);
                        self.schedule_reconnect(reason);
                    }
                }
            }
            XmppEvent::Roster(items) => {
                self.roster.clear();
                for item in items {
                    self.on_roster_item(item);
                }
            }
            XmppEvent::RosterPush(item) => self.on_roster_item(item),
            XmppEvent::Presence(p) => {
                let bare = p.from.split('/').next().unwrap_or(&p.from).to_owned();
                let resource = p.from.split_once('/').map(|(_, r)| r.to_owned());
                let resources = self.presence.entry(bare.clone()).or_default();
                let key = resource.clone().unwrap_or_default();
                if p.available {
                    resources.insert(
                        key.clone(),
                        ResourcePresence {
                            resource: key,
                            show: p.show.map(|s| s.as_str().to_owned()),
                            status: p.status.clone(),
                            priority: p.priority,
                        },
                    );
                } else {
                    resources.remove(&key);
                    self.calls.on_unavailable(&p.from);
                }
                self.emit(EngineEvent::Presence {
                    account: self.id,
                    jid: p.from,
                    available: p.available,
                    show: p.show.map(|s| s.as_str().to_owned()),
                    status: p.status,
                });
            }
            XmppEvent::SubscriptionRequest { from } => {
                self.emit(EngineEvent::SubscriptionRequest {
                    account: self.id,
                    from: from.clone(),
                });
                if self.config.auto_approve {
                    let _ = self.client.subscription(&from, "subscribed");
                    // Mutual: ask back unless we already see them.
                    let sees = self
                        .roster
                        .get(&from)
                        .is_some_and(|c| matches!(c.subscription.as_str(), "to" | "both"));
                    if !sees {
                        let _ = self.client.subscription(&from, "subscribe");
                    }
                }
            }
            XmppEvent::SubscriptionChanged { from, kind } => {
                self.emit(EngineEvent::SubscriptionChanged {
                    account: self.id,
                    from,
                    kind,
                });
            }
            XmppEvent::Message(message) => self.on_message(message),
            XmppEvent::ChatState { from, state } => self.emit(EngineEvent::ChatState {
                account: self.id,
                from,
                state: state.as_str().to_owned(),
            }),
            XmppEvent::MessageSent { id, to } => {
                self.message_state(&id, &to, DeliveryState::Sent, None)
            }
            XmppEvent::MessageDelivered { id, from } => {
                self.message_state(&id, &from, DeliveryState::Delivered, None)
            }
            XmppEvent::MessageFailed {
                id,
                peer,
                condition,
            } => self.message_state(&id, &peer, DeliveryState::Failed, Some(condition)),
            XmppEvent::RoomJoined { room, nick } => {
                self.history.record_xmpp(XmppHappening::Room {
                    account: self.id,
                    room: room.clone(),
                });
                self.emit(EngineEvent::RoomJoined {
                    account: self.id,
                    room: room.clone(),
                    nick,
                });
                if self.config.archive_catch_up {
                    self.archive
                        .start_catch_up(&mut self.client, &self.history, Some(room))
                        .await;
                }
            }
            XmppEvent::RoomError { room, condition } => self.emit(EngineEvent::RoomError {
                account: self.id,
                room,
                reason: condition,
            }),
            XmppEvent::Occupant(o) => self.emit(EngineEvent::Occupant {
                account: self.id,
                room: o.room,
                nick: o.nick,
                jid: o.jid,
                available: o.available,
                role: o.role,
                is_self: o.is_self,
            }),
            XmppEvent::RoomSubject { room, subject } => self.emit(EngineEvent::RoomSubject {
                account: self.id,
                room,
                subject,
            }),
            XmppEvent::ArchivePage {
                query,
                last,
                complete,
                messages,
            } => self.archive.on_page(&query, last, complete, messages),
            XmppEvent::ArchiveFailed { query, condition } => {
                self.archive.on_failed(&mut self.client, &query, condition)
            }
            XmppEvent::ServerInfo {
                features,
                upload_service,
            } => {
                debug!(?features, ?upload_service, "server info");
                self.emit(EngineEvent::XmppServerInfo {
                    account: self.id,
                    features,
                    upload_service: upload_service.map(|(jid, _)| jid),
                });
            }
            XmppEvent::PeerFeatures { jid, features } => {
                self.calls.on_features(&jid, &features);
                self.emit(EngineEvent::PeerFeatures {
                    account: self.id,
                    jid,
                    features,
                })
            }
            XmppEvent::UploadSlot { request, slot } => {
                let Some(mut upload) = self.uploads.remove(&request) else {
                    return;
                };
                upload.get_url = Some(slot.get_url.clone());
                let tx = self.transfers_tx.clone();
                let transfer = upload.transfer;
                let path = upload.path.clone();
                let size = upload.size;
                let content_type = upload.content_type.clone();
                let trusted = self.config.trusted_certificate.clone();
                self.uploads.insert(format!("put:{transfer}"), upload);
                tokio::spawn(async move {
                    let progress_tx = tx.clone();
                    let result = http::put_file(
                        &slot.put_url,
                        &slot.put_headers,
                        &path,
                        size,
                        &content_type,
                        trusted.as_deref(),
                        move |bytes| {
                            let _ = progress_tx.send(FromTransfer::Progress {
                                transfer,
                                upload: true,
                                bytes,
                                total: Some(size),
                            });
                        },
                    )
                    .await;
                    let _ = tx.send(match result {
                        Ok(()) => FromTransfer::Uploaded { transfer },
                        Err(reason) => FromTransfer::Failed { transfer, reason },
                    });
                });
            }
            XmppEvent::UploadFailed { request, condition } => {
                if let Some(upload) = self.uploads.remove(&request) {
                    self.emit(EngineEvent::FileFailed {
                        account: self.id,
                        transfer: upload.transfer,
                        reason: format!("no upload slot: {condition}"),
                    });
                }
            }
            XmppEvent::Warning(detail) => self.warn(detail),
        }
    }

    fn on_roster_item(&mut self, item: lyrebird_xmpp::RosterItem) {
        if item.subscription == "remove" {
            self.roster.remove(&item.jid);
            self.history.record_xmpp(XmppHappening::ContactRemoved {
                account: self.id,
                jid: item.jid.clone(),
            });
            self.emit(EngineEvent::ContactRemoved {
                account: self.id,
                jid: item.jid,
            });
            return;
        }
        self.roster.insert(
            item.jid.clone(),
            Contact {
                name: item.name.clone(),
                subscription: item.subscription.clone(),
                pending_out: item.pending_out,
                groups: item.groups.clone(),
            },
        );
        self.history.record_xmpp(XmppHappening::Contact {
            account: self.id,
            jid: item.jid.clone(),
            name: item.name.clone(),
            subscription: item.subscription.clone(),
            groups: item.groups.clone(),
        });
        self.emit(EngineEvent::Contact {
            account: self.id,
            jid: item.jid,
            name: item.name,
            subscription: item.subscription,
            pending_out: item.pending_out,
            groups: item.groups,
        });
    }

    fn message_state(
        &mut self,
        id: &str,
        peer: &str,
        state: DeliveryState,
        reason: Option<String>,
    ) {
        let (peer, room) = match self.sent.get_mut(id) {
            Some(sent) => {
                // The server's acknowledgement and the recipient's answer (a receipt, a room's
                // reflection, a bounce) arrive in either order: a room may reflect a message
                // before the acknowledgement. The entry, which knows whether the message went
                // to a room, stays until both are in.
                if state == DeliveryState::Sent && sent.settled {
                    // Delivered (or failed) already says more than the acknowledgement.
                    self.sent.remove(id);
                    return;
                }
                match state {
                    DeliveryState::Sent => sent.acked = true,
                    DeliveryState::Delivered | DeliveryState::Failed => sent.settled = true,
                    _ => {}
                }
                let known = (sent.peer.clone(), sent.room);
                // A contact's client may never send receipts; once acknowledged, what is
                // left to come for a 1:1 message is found by its peer alone.
                if sent.acked && (sent.settled || !sent.room) {
                    self.sent.remove(id);
                }
                known
            }
            None => (peer.to_owned(), false),
        };
        self.history.record_xmpp(XmppHappening::MessageState {
            account: self.id,
            peer: peer.clone(),
            room,
            stable_id: id.to_owned(),
            state,
        });
        self.emit(EngineEvent::ChatMessageState {
            account: self.id,
            id: id.to_owned(),
            peer,
            state: state.as_str().to_owned(),
            reason,
        });
    }

    fn on_message(&mut self, message: ChatMessage) {
        if let MessageOrigin::Archive { query } = &message.origin {
            let query = query.clone();
            self.archive.on_message(&query, message);
            return;
        }
        // A room reflecting our own message: it reached the room.
        if message.kind == MessageKind::Groupchat
            && message.outgoing
            && self.sent.contains_key(&message.stable_id)
        {
            let id = message.stable_id.clone();
            let peer = message.peer.clone();
            self.message_state(&id, &peer, DeliveryState::Delivered, None);
            return;
        }
        // Shown (and its receipt sent) once it is in history, and only if it was not there
        // already: a copy may come again from the archive, after a resumption, or at the next
        // run.
        let news = self.from_history_tx.clone();
        let happening = store::message_happening(self.id, &message, None);
        self.history.record_xmpp_acked(
            happening,
            Box::new(move |result| {
                let _ = news.send(FromHistory::Message {
                    message: Box::new(message),
                    result,
                });
            }),
        );
    }
}

// Commands.
impl XmppAccount {
    fn on_action(&mut self, action: XmppAction) -> Result<XmppReply, EngineError> {
        let now = self.now();
        let done = Ok(XmppReply::Done {});
        match action {
            XmppAction::Presence {
                show,
                status,
                priority,
            } => {
                let show = parse_show(show.as_deref())?;
                self.client
                    .set_presence(show, status.as_deref(), priority.unwrap_or(0));
                done
            }
            XmppAction::DirectedPresence { to, show, status } => {
                let show = parse_show(show.as_deref())?;
                self.client
                    .send_directed_presence(&to, show, status.as_deref())?;
                done
            }
            XmppAction::Roster => Ok(XmppReply::Roster {
                contacts: self.roster_view(),
            }),
            XmppAction::AddContact { jid, name, groups } => {
                self.client
                    .roster_set(now, &jid, name.as_deref(), &groups)?;
                self.client.subscription(&jid, "subscribe")?;
                done
            }
            XmppAction::RenameContact { jid, name, groups } => {
                let groups = if groups.is_empty() {
                    self.roster
                        .get(&jid)
                        .map(|c| c.groups.clone())
                        .unwrap_or_default()
                } else {
                    groups
                };
                self.client.roster_set(now, &jid, Some(&name), &groups)?;
                done
            }
            XmppAction::RemoveContact { jid } => {
                self.client.roster_remove(now, &jid)?;
                done
            }
            XmppAction::Approve { jid } => {
                self.client.subscription(&jid, "subscribed")?;
                done
            }
            XmppAction::Deny { jid } => {
                self.client.subscription(&jid, "unsubscribed")?;
                done
            }
            XmppAction::Unsubscribe { jid } => {
                self.client.subscription(&jid, "unsubscribe")?;
                done
            }
            XmppAction::Message { to, body } => {
                let id = self.client.send_chat(&to, &body)?;
                self.record_outgoing(&id, &to, &body, false, None, None);
                Ok(XmppReply::Message { message: id })
            }
            XmppAction::Correct {
                to,
                message,
                body,
                room,
            } => {
                let new_id = if room {
                    self.client.send_room_correction(&to, &message, &body)?
                } else {
                    self.client.send_correction(&to, &message, &body)?
                };
                self.record_outgoing(&new_id, &to, &body, room, Some(message), None);
                Ok(XmppReply::Message { message: new_id })
            }
            XmppAction::ChatState { to, state } => {
                let state = ChatState::parse(&state).ok_or_else(|| {
                    EngineError::InvalidConfig(format!("unknown chat state `{state}`"))
                })?;
                self.client.send_chat_state(&to, state)?;
                done
            }
            XmppAction::Join {
                room,
                nick,
                history,
            } => {
                self.client.join_room(&room, &nick, history.unwrap_or(20))?;
                done
            }
            XmppAction::Leave { room } => {
                self.client.leave_room(&room)?;
                done
            }
            XmppAction::Nick { room, nick } => {
                self.client.change_nick(&room, &nick)?;
                done
            }
            XmppAction::RoomMessage { room, body } => {
                let id = self.client.send_room_message(&room, &body)?;
                self.record_outgoing(&id, &room, &body, true, None, None);
                Ok(XmppReply::Message { message: id })
            }
            XmppAction::ShareFile {
                to,
                path,
                room,
                content_type,
            } => self.share_file(now, to, path, room, content_type),
            XmppAction::Download { url, dir } => {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(EngineError::InvalidConfig(format!(
                        "`{url}` is not an http(s) URL"
                    )));
                }
                let transfer = self.ids.next();
                let dir = dir.unwrap_or_else(|| self.config.download_dir.clone());
                let tx = self.transfers_tx.clone();
                let trusted = self.config.trusted_certificate.clone();
                tokio::spawn(async move {
                    let progress_tx = tx.clone();
                    let result =
                        http::get_file(&url, &dir, trusted.as_deref(), move |bytes, total| {
                            let _ = progress_tx.send(FromTransfer::Progress {
                                transfer,
                                upload: false,
                                bytes,
                                total,
                            });
                        })
                        .await;
                    let _ = tx.send(match result {
                        Ok((path, sha256, bytes)) => FromTransfer::Downloaded {
                            transfer,
                            url,
                            path,
                            sha256,
                            bytes,
                        },
                        Err(reason) => FromTransfer::Failed { transfer, reason },
                    });
                });
                Ok(XmppReply::Transfer { transfer })
            }
        }
    }

    fn record_outgoing(
        &mut self,
        id: &str,
        to: &str,
        body: &str,
        room: bool,
        replaces: Option<String>,
        url: Option<String>,
    ) {
        let peer = to.split('/').next().unwrap_or(to).trim().to_owned();
        self.sent.insert(
            id.to_owned(),
            SentMessage {
                peer: peer.clone(),
                room,
                acked: false,
                settled: false,
            },
        );
        let message = ChatMessage {
            stable_id: id.to_owned(),
            kind: if room {
                MessageKind::Groupchat
            } else {
                MessageKind::Chat
            },
            outgoing: true,
            peer,
            from: self.client.full_jid().unwrap_or_default().to_owned(),
            nick: None,
            body: body.to_owned(),
            replaces,
            oob_url: url,
            sent_at_ms: None,
            archive_id: None,
            origin: MessageOrigin::Live,
            receipt_id: None,
        };
        self.history.record_xmpp(store::message_happening(
            self.id,
            &message,
            Some(DeliveryState::Queued),
        ));
    }

    fn share_file(
        &mut self,
        now: std::time::Instant,
        to: String,
        path: PathBuf,
        room: bool,
        content_type: Option<String>,
    ) -> Result<XmppReply, EngineError> {
        let data = std::fs::read(&path)
            .map_err(|e| EngineError::InvalidConfig(format!("{}: {e}", path.display())))?;
        let size = data.len() as u64;
        let sha256 = http::sha256_hex(&data);
        drop(data);
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "file".into());
        let content_type = content_type.unwrap_or_else(|| "application/octet-stream".into());
        let request = self
            .client
            .request_upload_slot(now, &name, size, &content_type)?;
        let transfer = self.ids.next();
        self.uploads.insert(
            request,
            Upload {
                transfer,
                to,
                room,
                path,
                size,
                content_type,
                sha256,
                get_url: None,
            },
        );
        Ok(XmppReply::Transfer { transfer })
    }

    fn on_transfer(&mut self, message: FromTransfer) {
        match message {
            FromTransfer::Progress {
                transfer,
                upload,
                bytes,
                total,
            } => self.emit(EngineEvent::FileProgress {
                account: self.id,
                transfer,
                direction: if upload { "upload" } else { "download" }.to_owned(),
                bytes,
                total,
            }),
            FromTransfer::Uploaded { transfer } => {
                let Some(upload) = self.uploads.remove(&format!("put:{transfer}")) else {
                    return;
                };
                let Some(url) = upload.get_url.clone() else {
                    return;
                };
                let sent = if upload.room {
                    self.client.send_room_message(&upload.to, &url)
                } else {
                    self.client.send_link(&upload.to, &url)
                };
                match sent {
                    Ok(id) => {
                        self.record_outgoing(
                            &id,
                            &upload.to,
                            &url,
                            upload.room,
                            None,
                            Some(url.clone()),
                        );
                        self.emit(EngineEvent::FileShared {
                            account: self.id,
                            transfer,
                            to: upload.to,
                            url,
                            sha256: upload.sha256,
                            message: id,
                        });
                    }
                    Err(e) => self.emit(EngineEvent::FileFailed {
                        account: self.id,
                        transfer,
                        reason: e.to_string(),
                    }),
                }
            }
            FromTransfer::Downloaded {
                transfer,
                url,
                path,
                sha256,
                bytes,
            } => self.emit(EngineEvent::FileDownloaded {
                account: self.id,
                transfer,
                url,
                path: path.to_string_lossy().into_owned(),
                sha256,
                bytes,
            }),
            FromTransfer::Failed { transfer, reason } => {
                self.uploads.remove(&format!("put:{transfer}"));
                self.emit(EngineEvent::FileFailed {
                    account: self.id,
                    transfer,
                    reason,
                });
            }
        }
    }

    fn roster_view(&self) -> Vec<RosterContact> {
        let mut contacts: Vec<RosterContact> = self
            .roster
            .iter()
            .map(|(jid, c)| RosterContact {
                jid: jid.clone(),
                name: c.name.clone(),
                subscription: c.subscription.clone(),
                pending_out: c.pending_out,
                groups: c.groups.clone(),
                resources: self
                    .presence
                    .get(jid)
                    .map(|r| r.values().cloned().collect())
                    .unwrap_or_default(),
            })
            .collect();
        contacts.sort_by(|a, b| a.jid.cmp(&b.jid));
        contacts
    }
}

fn parse_show(show: Option<&str>) -> Result<Option<Show>, EngineError> {
    match show {
        None | Some("") | Some("available") | Some("online") => Ok(None),
        Some(s) => Show::parse(s)
            .map(Some)
            .ok_or_else(|| EngineError::InvalidConfig(format!("unknown presence show `{s}`"))),
    }
}

/// Commands for XMPP accounts, routed by the engine's supervisor.
pub(crate) enum SupervisorCommand {
    Add {
        config: Box<XmppAccountConfig>,
        /// The id to run under (a saved account's); the next free one when `None`.
        id: Option<AccountId>,
        /// Record the account in history (not for connection checks).
        record: bool,
        reply: oneshot::Sender<Result<AccountId, EngineError>>,
    },
    Action {
        account: AccountId,
        action: XmppAction,
        reply: oneshot::Sender<Result<XmppReply, EngineError>>,
    },
}

/// What the supervisor lends to XMPP account management.
pub(crate) struct SupervisorContext<'a> {
    pub(crate) next_account: &'a mut u32,
    pub(crate) media: &'a Arc<MediaConfig>,
    pub(crate) ids: &'a Arc<IdSource>,
    pub(crate) notices: &'a mpsc::UnboundedSender<AccountNotice>,
    pub(crate) history: &'a History,
}

/// The supervisor's table of XMPP account tasks.
#[derive(Default)]
pub(crate) struct XmppAccounts {
    accounts: HashMap<AccountId, mpsc::Sender<XmppCommand>>,
    /// Each account's inbox for call commands (the same commands SIP accounts take).
    call_inboxes: HashMap<AccountId, mpsc::Sender<AccountCommand>>,
}

impl XmppAccounts {
    pub(crate) async fn on_command(
        &mut self,
        command: SupervisorCommand,
        cx: SupervisorContext<'_>,
    ) {
        match command {
            SupervisorCommand::Add {
                config,
                id,
                record,
                reply,
            } => {
                let id = id.unwrap_or_else(|| {
                    *cx.next_account += 1;
                    AccountId(*cx.next_account)
                });
                let (tx, rx) = mpsc::channel(256);
                let (calls_tx, calls_rx) = mpsc::channel(64);
                if record {
                    cx.history.record_xmpp(XmppHappening::AccountAdded {
                        account: id,
                        jid: config.jid.trim().to_owned(),
                        server_url: config.ws_url.clone(),
                    });
                }
                let result = XmppAccount::new(
                    id,
                    *config,
                    Arc::clone(cx.ids),
                    Arc::clone(cx.media),
                    rx,
                    calls_rx,
                    cx.notices.clone(),
                    cx.history.clone(),
                )
                .map(|account| {
                    tokio::spawn(account.run());
                    self.accounts.insert(id, tx);
                    self.call_inboxes.insert(id, calls_tx);
                    info!(account = id.0, "XMPP account added");
                    id
                });
                let _ = reply.send(result);
            }
            SupervisorCommand::Action {
                account,
                action,
                reply,
            } => match self.accounts.get(&account) {
                Some(tx) => {
                    let command = XmppCommand {
                        action: Some(action),
                        reply,
                    };
                    if let Err(mpsc::error::SendError(command)) = tx.send(command).await {
                        let _ = command.reply.send(Err(EngineError::Stopped));
                    }
                }
                None => {
                    let _ = reply.send(Err(EngineError::UnknownAccount(account.0)));
                }
            },
        }
    }

    pub(crate) fn ids(&self) -> impl Iterator<Item = AccountId> + '_ {
        self.accounts.keys().copied()
    }

    /// Where an account's call commands go, if it is an XMPP account.
    pub(crate) fn call_inbox(&self, account: AccountId) -> Option<&mpsc::Sender<AccountCommand>> {
        self.call_inboxes.get(&account)
    }

    pub(crate) fn contains(&self, account: AccountId) -> bool {
        self.accounts.contains_key(&account)
    }

    /// Stops one account in the background (a finished connection check).
    pub(crate) fn stop_in_background(&mut self, account: AccountId) {
        self.call_inboxes.remove(&account);
        if let Some(tx) = self.accounts.remove(&account) {
            tokio::spawn(stop(tx));
        }
    }

    /// Stops one account (bounded wait).
    pub(crate) async fn remove(&mut self, account: AccountId) -> Result<(), EngineError> {
        self.call_inboxes.remove(&account);
        let tx = self
            .accounts
            .remove(&account)
            .ok_or(EngineError::UnknownAccount(account.0))?;
        stop(tx).await;
        Ok(())
    }

    pub(crate) async fn shutdown(&mut self) {
        self.call_inboxes.clear();
        let stops = self.accounts.drain().map(|(_, tx)| stop(tx));
        futures_util::future::join_all(stops).await;
    }
}

async fn stop(tx: mpsc::Sender<XmppCommand>) {
    let (reply, done) = oneshot::channel();
    if tx
        .send(XmppCommand {
            action: None,
            reply,
        })
        .await
        .is_ok()
    {
        let _ = tokio::time::timeout(Duration::from_secs(4), done).await;
    }
}
