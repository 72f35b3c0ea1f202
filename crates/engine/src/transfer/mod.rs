//! File transfer over MSRP (RFC 4975) through a WebSocket relay (RFC 4976, RFC 7977), offered
//! in SIP INVITEs with RFC 5547 SDP — and, in [`chat`], MSRP chat sessions through the same
//! relay.
//!
//! ```text
//!  SIP account task                         transfer task (one per file, owns its MSRP WebSocket)
//!  ┌──────────────────────────┐  FromTask   ┌───────────────────────────────────────────────┐
//!  │ Transfers (this module): │◀────────────│ connect relay, AUTH (lyrebird_msrp::RelayAuth)│
//!  │  INVITE / 200 / BYE for  │  Invite,    │ outgoing: FileSender  incoming: FileReceiver  │
//!  │  each transfer's session │  Answer,Bye │ progress, resume, SHA-256, safe file names    │
//!  │  through the same        │────────────▶│                                               │
//!  │  UserAgent as calls      │  ToTask     └───────────────────────────────────────────────┘
//!  └──────────────────────────┘  Answered, SessionEnded, Accept, Resume, Cancel
//! ```
//!
//! The account tells an INVITE for a file (SDP `m=message ... TCP/WS/MSRP`) from a call and
//! hands it here; everything else about calls is untouched. One MSRP session per file, as
//! RFC 5547 intends; a task outlives its SIP sessions, so a transfer interrupted by a dropped
//! connection resumes in a new session (`a=file-range`, same `a=file-transfer-id`) and keeps
//! its progress, its partial file and its running SHA-256.
//!
//! How the two sides tell a cancel from an interruption (both end the SIP session with BYE):
//! a sender that cancels first sends an aborted chunk (`#`, RFC 4975 §7.1.1); a receiver that
//! cancels first sends a failure REPORT with status 413 ("stop sending this message",
//! RFC 4975 §10). A BYE without either, before the last byte, is an interruption: the sender
//! offers the rest again.

mod chat;
mod names;
mod task;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use lyrebird_msrp::{Direction as SdpDirection, MsrpMedia, offers_msrp};
use lyrebird_sip::{self as sip, UaEvent, UserAgent};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use crate::account::{AccountNotice, IdSource};
use crate::event::EngineEvent;
use crate::history::History;
use crate::{AccountId, EngineError, SipAccountConfig};

pub(crate) use task::TransferSetup;

/// Identifies a file transfer for the life of the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(transparent)]
pub struct TransferId(pub u64);

impl std::fmt::Display for TransferId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "transfer {}", self.0)
    }
}

/// Where and how an account sends and receives files.
#[derive(Debug, Clone)]
pub struct FileTransferConfig {
    /// `ws://` or `wss://` URL of the MSRP relay's WebSocket (sub-protocol `msrp`).
    pub relay_ws_url: String,
    /// The relay's own MSRP URI, the To-Path of AUTH, e.g. `msrp://relay.example.com:443;ws`.
    pub relay_uri: String,
    /// Received files land here.
    pub downloads: PathBuf,
    /// Accept every offered file at once, into `downloads`.
    pub auto_accept: bool,
    /// MSRP chunk body size (the relay bounds frames; see `lyrebird_msrp::DEFAULT_CHUNK_SIZE`).
    pub chunk_size: usize,
    /// Most bytes in flight unconfirmed.
    pub window_bytes: u64,
    /// A PEM certificate trusted for the relay in addition to the system roots.
    pub trusted_certificate: Option<PathBuf>,
    /// Relay AUTH lifetime asked for, seconds (RFC 4976 §5.1; Kamailio allows 60–3600).
    pub auth_expires: u32,
    /// How often an interrupted transfer is resumed before it counts as failed.
    pub max_resumes: u32,
    /// Relay credentials when they differ from the SIP account's (RFC 4976 §5.1 digest).
    pub relay_username: Option<String>,
    pub relay_password: Option<crate::Password>,
    /// What our chat sessions accept, in order of preference (`a=accept-types`).
    pub chat_accept_types: Vec<String>,
}

impl FileTransferConfig {
    /// Defaults for everything but where the relay is and where files go.
    pub fn new(
        relay_ws_url: impl Into<String>,
        relay_uri: impl Into<String>,
        downloads: impl Into<PathBuf>,
    ) -> Self {
        Self {
            relay_ws_url: relay_ws_url.into(),
            relay_uri: relay_uri.into(),
            downloads: downloads.into(),
            auto_accept: false,
            chunk_size: lyrebird_msrp::DEFAULT_CHUNK_SIZE,
            window_bytes: 4 << 20,
            trusted_certificate: None,
            auth_expires: 600,
            max_resumes: 20,
            relay_username: None,
            relay_password: None,
            chat_accept_types: vec!["text/plain".into(), "message/cpim".into()],
        }
    }
}

/// What an incoming offer says about the file (RFC 5547 file selector) and who sends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct OfferedFile {
    pub from: String,
    pub display_name: Option<String>,
    /// As offered: untrusted; the saved file gets a safe name.
    pub file_name: String,
    pub size: Option<u64>,
    pub mime_type: Option<String>,
    /// SHA-256 as 64 lowercase hex digits, if offered.
    pub sha256: Option<String>,
}

/// In or out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum TransferDirection {
    Outgoing,
    Incoming,
}

/// Where a transfer is in its life.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum TransferState {
    /// Outgoing: hashing the file, reaching the relay, offering it.
    Offering {
        peer: String,
        file_name: String,
        size: u64,
    },
    /// Waiting for the person to accept or decline (incoming), or for the peer (outgoing).
    Offered,
    /// Bytes are flowing (again, after an interruption, from `from_byte`).
    Active { from_byte: u64 },
    /// The connection dropped; the transfer will resume from `confirmed`.
    Interrupted { reason: String, confirmed: u64 },
    /// Every byte arrived and the SHA-256 matches. `path` is where the file is (incoming).
    Completed {
        bytes: u64,
        sha256: String,
        path: Option<String>,
        /// Bytes that arrived twice (resumed overlap) and were not written again.
        duplicate_bytes: u64,
        /// Writes that did not continue exactly where the previous one ended (always 0).
        out_of_order_writes: u64,
    },
    /// The peer declined the offer.
    Declined { status: u16 },
    /// Cancelled by us or by the peer.
    Cancelled { by_peer: bool },
    /// It cannot go on; nothing incomplete is left under the file's name.
    Failed { reason: String },
}

/// Commands about transfers, routed to the account that owns the transfer.
#[derive(Debug)]
pub(crate) enum TransferCommand {
    Send {
        target: String,
        path: PathBuf,
        reply: oneshot::Sender<Result<TransferId, EngineError>>,
    },
    Accept {
        transfer: TransferId,
        folder: Option<PathBuf>,
        reply: oneshot::Sender<Result<(), EngineError>>,
    },
    Decline {
        transfer: TransferId,
        reply: oneshot::Sender<Result<(), EngineError>>,
    },
    Cancel {
        transfer: TransferId,
        reply: oneshot::Sender<Result<(), EngineError>>,
    },
    /// Offer an MSRP chat session (see `chat`); answered when it is open.
    OpenChat {
        target: String,
        reply: oneshot::Sender<Result<(), EngineError>>,
    },
}

impl TransferCommand {
    /// Answers the caller with an error instead of carrying the command out.
    pub(crate) fn fail(self, error: EngineError) {
        match self {
            TransferCommand::Send { reply, .. } => drop(reply.send(Err(error))),
            TransferCommand::Accept { reply, .. }
            | TransferCommand::Decline { reply, .. }
            | TransferCommand::Cancel { reply, .. }
            | TransferCommand::OpenChat { reply, .. } => drop(reply.send(Err(error))),
        }
    }
}

/// The cause in the Reason header (RFC 3326) of a BYE that ends a transfer because a person
/// cancelled it. A BYE alone does not say so: a sender also ends a session it gives up, to
/// resume in a new one, and the MSRP abort (or 413 REPORT) that does say so can sit behind
/// megabytes of file in a relay while the BYE overtakes it. 487 is SIP's "Request Terminated".
const CANCELLED_CAUSE: u16 = 487;

/// From a transfer task to its account: SIP work to do.
#[derive(Debug)]
pub(crate) enum FromTask {
    Invite {
        transfer: TransferId,
        sdp: String,
    },
    Answer {
        transfer: TransferId,
        sdp: String,
    },
    /// End the SIP session; `cancelled` when the person cancelled the transfer.
    Bye {
        transfer: TransferId,
        cancelled: bool,
    },
    Finished {
        transfer: TransferId,
    },
    /// From a chat session's task.
    Chat(chat::FromChat),
}

/// From the account to a transfer task.
#[derive(Debug)]
pub(crate) enum ToTask {
    /// The peer answered our offer with this SDP.
    Answered { sdp: String },
    /// Our offer was refused (status) or failed.
    OfferRefused { status: u16, reason: String },
    /// The SIP session ended (BYE or CANCEL from the peer, or a local failure).
    SessionEnded,
    /// The peer ended the session saying it cancelled the transfer (see `CANCELLED_CAUSE`).
    PeerCancelled,
    /// The peer offers the rest of an interrupted incoming transfer (RFC 5547 §9).
    Resume { offer: Box<MsrpMedia> },
    /// The person cancelled.
    Cancel,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Incoming, waiting for the person.
    Offered,
    /// A task runs it.
    Running,
}

struct Entry {
    direction: TransferDirection,
    peer: String,
    phase: Phase,
    sip: Option<sip::CallId>,
    /// The SDP we sent last, repeated if the peer re-INVITEs.
    local_sdp: Option<String>,
    /// The incoming offer not yet accepted.
    offer: Option<MsrpMedia>,
    file_transfer_id: String,
    task: Option<mpsc::Sender<ToTask>>,
}

/// Everything needed to start transfer tasks for one account.
#[derive(Clone)]
pub(crate) struct TaskContext {
    pub(crate) account: AccountId,
    /// The account's own address (CPIM `From`).
    pub(crate) aor: String,
    pub(crate) config: Arc<FileTransferConfig>,
    pub(crate) username: String,
    pub(crate) password: String,
    pub(crate) notices: mpsc::UnboundedSender<AccountNotice>,
    pub(crate) history: History,
    pub(crate) to_account: mpsc::Sender<FromTask>,
}

/// The account's book of transfers: SIP sessions ↔ transfer tasks.
pub(crate) struct Transfers {
    context: Option<TaskContext>,
    ids: Arc<IdSource>,
    account: AccountId,
    entries: HashMap<TransferId, Entry>,
    by_sip: HashMap<sip::CallId, TransferId>,
    from_tasks: mpsc::Receiver<FromTask>,
    notices: mpsc::UnboundedSender<AccountNotice>,
    history: History,
    chats: chat::Chats,
}

impl Transfers {
    pub(crate) fn new(
        account: AccountId,
        config: &SipAccountConfig,
        ids: Arc<IdSource>,
        notices: mpsc::UnboundedSender<AccountNotice>,
        history: History,
    ) -> Self {
        let (to_account, from_tasks) = mpsc::channel(64);
        let username = config.auth_username.clone().unwrap_or_else(|| {
            let user = config
                .aor
                .trim_start_matches("sips:")
                .trim_start_matches("sip:");
            user.split('@').next().unwrap_or(user).to_owned()
        });
        let context = config.file_transfer.clone().map(|ft| TaskContext {
            account,
            aor: config.aor.clone(),
            username: ft.relay_username.clone().unwrap_or(username),
            password: ft
                .relay_password
                .as_ref()
                .unwrap_or(&config.password)
                .expose()
                .to_owned(),
            config: Arc::new(ft),
            notices: notices.clone(),
            history: history.clone(),
            to_account,
        });
        Self {
            context,
            ids,
            account,
            entries: HashMap::new(),
            by_sip: HashMap::new(),
            from_tasks,
            notices,
            history,
            chats: chat::Chats::new(account),
        }
    }

    fn emit(&self, event: EngineEvent) {
        let _ = self.notices.send(AccountNotice::Event(event));
    }

    fn state(&self, transfer: TransferId, state: TransferState) {
        debug!(
            account = self.account.0,
            transfer = transfer.0,
            ?state,
            "transfer state"
        );
        self.emit(EngineEvent::TransferState {
            account: self.account,
            transfer,
            state,
        });
    }

    /// Sends a text through the open MSRP chat session with `peer`; `false` if there is none
    /// (the caller sends a SIP MESSAGE instead).
    pub(crate) fn send_in_chat(
        &mut self,
        peer: &str,
        message: crate::MessageId,
        key: &str,
        body: &str,
    ) -> bool {
        self.chats.send(peer, message, key, body)
    }

    /// The next message from a transfer task (for the account's `select!`).
    pub(crate) async fn next_message(&mut self) -> Option<FromTask> {
        self.from_tasks.recv().await
    }

    /// Takes the SIP events that belong to transfers; gives back the others.
    pub(crate) fn intercept(
        &mut self,
        ua: &mut UserAgent,
        now: Instant,
        event: UaEvent,
    ) -> Option<UaEvent> {
        let event = self.chats.intercept(ua, now, event)?;
        match event {
            UaEvent::IncomingCall {
                call,
                from,
                to: _,
                sdp: Some(sdp),
                ..
            } if offers_msrp(&sdp) => {
                self.on_offer(ua, now, call, from, &sdp);
                None
            }
            UaEvent::CallAnswered { call, sdp } if self.by_sip.contains_key(&call) => {
                let transfer = self.by_sip[&call];
                match sdp {
                    Some(sdp) => self.to_task(transfer, ToTask::Answered { sdp }),
                    None => {
                        let _ = ua.hangup(now, call);
                    }
                }
                None
            }
            UaEvent::CallProgress { call, .. } | UaEvent::CallConfirmed { call }
                if self.by_sip.contains_key(&call) =>
            {
                None
            }
            UaEvent::Reoffer { call, .. } if self.by_sip.contains_key(&call) => {
                let transfer = self.by_sip[&call];
                let local = self
                    .entries
                    .get(&transfer)
                    .and_then(|e| e.local_sdp.clone())
                    .unwrap_or_default();
                if let Err(e) = ua.answer_reoffer(now, call, local) {
                    warn!(error = %e, "could not answer a re-INVITE of a transfer");
                }
                None
            }
            UaEvent::CallEnded { call, reason } if self.by_sip.contains_key(&call) => {
                self.on_session_ended(call, &reason);
                None
            }
            other => Some(other),
        }
    }

    fn on_offer(
        &mut self,
        ua: &mut UserAgent,
        now: Instant,
        call: sip::CallId,
        from: sip::Party,
        sdp: &str,
    ) {
        let Some(context) = self.context.clone() else {
            info!(
                account = self.account.0,
                "file offered but file transfer is not set up: 488"
            );
            let _ = ua.reject(now, call, 488);
            return;
        };
        let offer = match MsrpMedia::parse(sdp) {
            Ok(offer)
                if offer.direction == SdpDirection::SendOnly && offer.file_selector.is_some() =>
            {
                offer
            }
            Ok(offer) if chat::is_chat_offer(&offer) => {
                self.chats
                    .on_offer(&context, ua, now, call, from.uri, offer);
                return;
            }
            Ok(_) => {
                self.warn(
                    "an MSRP offer that is neither a file push nor a chat was declined (488)"
                        .into(),
                );
                let _ = ua.reject(now, call, 488);
                return;
            }
            Err(e) => {
                self.warn(format!("unusable file offer declined (488): {e}"));
                let _ = ua.reject(now, call, 488);
                return;
            }
        };
        let file_transfer_id = offer.file_transfer_id.clone().unwrap_or_default();
        // A resumed transfer (RFC 5547 §9): same id, same peer, a task waiting for it.
        if offer.file_range.is_some() && !file_transfer_id.is_empty() {
            // The old session's BYE may still be on its way (a proxy with several workers
            // can deliver the new INVITE first): the resume supersedes the old session.
            let resumed = self.entries.iter_mut().find(|(_, e)| {
                e.direction == TransferDirection::Incoming
                    && e.phase == Phase::Running
                    && e.file_transfer_id == file_transfer_id
                    && e.peer == from.uri
            });
            if let Some((&transfer, entry)) = resumed {
                if let Some(old) = entry.sip.replace(call) {
                    self.by_sip.remove(&old);
                    let _ = ua.hangup(now, old);
                }
                self.by_sip.insert(call, transfer);
                info!(
                    account = self.account.0,
                    transfer = transfer.0,
                    "resume offered"
                );
                self.to_task(
                    transfer,
                    ToTask::Resume {
                        offer: Box::new(offer),
                    },
                );
                return;
            }
        }
        let transfer = TransferId(self.ids.next());
        let Some(selector) = offer.file_selector.clone() else {
            return;
        };
        self.entries.insert(
            transfer,
            Entry {
                direction: TransferDirection::Incoming,
                peer: from.uri.clone(),
                phase: Phase::Offered,
                sip: Some(call),
                local_sdp: None,
                offer: Some(offer),
                file_transfer_id: file_transfer_id.clone(),
                task: None,
            },
        );
        self.by_sip.insert(call, transfer);
        let _ = self.notices.send(AccountNotice::TransferOpened {
            transfer,
            account: self.account,
        });
        let _ = ua.ring(now, call);
        let sha256 = selector.sha256.map(hex::encode);
        self.history.transfer(
            self.account,
            task::row(
                &file_transfer_id,
                TransferDirection::Incoming,
                &from.uri,
                &selector.name,
                selector.size,
                selector.mime_type.clone(),
                sha256.clone(),
            ),
        );
        self.emit(EngineEvent::TransferOffered {
            account: self.account,
            transfer,
            offer: Box::new(OfferedFile {
                from: from.uri,
                display_name: from.display_name,
                file_name: selector.name,
                size: selector.size,
                mime_type: selector.mime_type,
                sha256,
            }),
        });
        self.state(transfer, TransferState::Offered);
        if context.config.auto_accept {
            let folder = context.config.downloads.clone();
            if let Err(e) = self.accept(transfer, Some(folder)) {
                self.warn(format!("auto-accept failed: {e}"));
            }
        }
    }

    fn warn(&self, detail: String) {
        warn!(account = self.account.0, %detail, "file transfer problem");
        self.emit(EngineEvent::Warning {
            account: Some(self.account),
            detail,
        });
    }

    fn on_session_ended(&mut self, call: sip::CallId, reason: &sip::EndReason) {
        let Some(transfer) = self.by_sip.remove(&call) else {
            return;
        };
        let Some(entry) = self.entries.get_mut(&transfer) else {
            return;
        };
        entry.sip = None;
        if entry.phase == Phase::Offered {
            // Never accepted: the caller cancelled, or we declined.
            let state = match reason {
                sip::EndReason::LocalHangup => TransferState::Declined { status: 603 },
                _ => TransferState::Cancelled { by_peer: true },
            };
            let row_state = match state {
                TransferState::Declined { .. } => lyrebird_store::TransferState::Cancelled,
                _ => lyrebird_store::TransferState::Cancelled,
            };
            if let Some(offer) = entry.offer.take()
                && let Some(selector) = offer.file_selector
            {
                let mut row = task::row(
                    &entry.file_transfer_id,
                    TransferDirection::Incoming,
                    &entry.peer,
                    &selector.name,
                    selector.size,
                    selector.mime_type,
                    selector.sha256.map(hex::encode),
                );
                row.state = row_state;
                row.ended_at_ms = Some(task::now_ms());
                row.error = Some(match state {
                    TransferState::Declined { .. } => "declined".into(),
                    _ => "cancelled by the sender".into(),
                });
                self.history.transfer(self.account, row);
            }
            self.state(transfer, state);
            self.forget(transfer);
            return;
        }
        let message = match reason {
            sip::EndReason::Rejected { status, reason }
            | sip::EndReason::Failed { status, reason } => ToTask::OfferRefused {
                status: *status,
                reason: reason.clone(),
            },
            sip::EndReason::RemoteHangup {
                reason: Some(reason),
            } if reason.protocol.eq_ignore_ascii_case("SIP") && reason.cause == CANCELLED_CAUSE => {
                ToTask::PeerCancelled
            }
            sip::EndReason::RemoteHangup { .. }
            | sip::EndReason::Cancelled
            | sip::EndReason::LocalHangup => ToTask::SessionEnded,
        };
        self.to_task(transfer, message);
    }

    fn to_task(&self, transfer: TransferId, message: ToTask) {
        if let Some(task) = self.entries.get(&transfer).and_then(|e| e.task.as_ref())
            && task.try_send(message).is_err()
        {
            debug!(
                transfer = transfer.0,
                "transfer task gone or busy; message dropped"
            );
        }
    }

    fn forget(&mut self, transfer: TransferId) {
        if let Some(entry) = self.entries.remove(&transfer) {
            if let Some(call) = entry.sip {
                self.by_sip.remove(&call);
            }
            let _ = self
                .notices
                .send(AccountNotice::TransferClosed { transfer });
        }
    }

    /// A command from a front end.
    pub(crate) fn on_command(
        &mut self,
        ua: &mut UserAgent,
        now: Instant,
        command: TransferCommand,
    ) {
        match command {
            TransferCommand::Send {
                target,
                path,
                reply,
            } => {
                let _ = reply.send(self.send_file(target, path));
            }
            TransferCommand::Accept {
                transfer,
                folder,
                reply,
            } => {
                let _ = reply.send(self.accept(transfer, folder));
            }
            TransferCommand::Decline { transfer, reply } => {
                let result = match self.entries.get(&transfer) {
                    Some(entry) if entry.phase == Phase::Offered => match entry.sip {
                        Some(call) => ua.reject(now, call, 603).map_err(EngineError::from),
                        None => Err(EngineError::InvalidState("the offer is gone".into())),
                    },
                    Some(_) => Err(EngineError::InvalidState(
                        "only an offered file can be declined; cancel it instead".into(),
                    )),
                    None => Err(EngineError::InvalidState(format!(
                        "no such transfer: {}",
                        transfer.0
                    ))),
                };
                let _ = reply.send(result);
            }
            TransferCommand::OpenChat { target, reply } => {
                self.chats.open(self.context.as_ref(), target, reply);
            }
            TransferCommand::Cancel { transfer, reply } => {
                let result = match self.entries.get(&transfer) {
                    Some(entry) if entry.phase == Phase::Offered => match entry.sip {
                        Some(call) => ua.reject(now, call, 603).map_err(EngineError::from),
                        None => Err(EngineError::InvalidState("the offer is gone".into())),
                    },
                    Some(_) => {
                        self.to_task(transfer, ToTask::Cancel);
                        Ok(())
                    }
                    None => Err(EngineError::InvalidState(format!(
                        "no such transfer: {}",
                        transfer.0
                    ))),
                };
                let _ = reply.send(result);
            }
        }
    }

    fn send_file(&mut self, target: String, path: PathBuf) -> Result<TransferId, EngineError> {
        let context = self.context.clone().ok_or_else(|| {
            EngineError::InvalidConfig("file transfer is not set up for this account".into())
        })?;
        let target = target.trim().to_owned();
        if target.is_empty() {
            return Err(EngineError::InvalidConfig(
                "no one to send to: the address is empty".into(),
            ));
        }
        let meta = std::fs::metadata(&path).map_err(|e| {
            EngineError::InvalidConfig(format!("cannot read {}: {e}", path.display()))
        })?;
        if !meta.is_file() {
            return Err(EngineError::InvalidConfig(format!(
                "{} is not a file",
                path.display()
            )));
        }
        let transfer = TransferId(self.ids.next());
        let file_transfer_id = uuid::Uuid::new_v4().simple().to_string();
        let (tx, rx) = mpsc::channel(16);
        self.entries.insert(
            transfer,
            Entry {
                direction: TransferDirection::Outgoing,
                peer: target.clone(),
                phase: Phase::Running,
                sip: None,
                local_sdp: None,
                offer: None,
                file_transfer_id: file_transfer_id.clone(),
                task: Some(tx),
            },
        );
        let _ = self.notices.send(AccountNotice::TransferOpened {
            transfer,
            account: self.account,
        });
        tokio::spawn(task::run(
            context,
            TransferSetup::Outgoing {
                transfer,
                peer: target,
                path,
                file_transfer_id,
            },
            rx,
        ));
        Ok(transfer)
    }

    fn accept(&mut self, transfer: TransferId, folder: Option<PathBuf>) -> Result<(), EngineError> {
        let context = self
            .context
            .clone()
            .ok_or_else(|| EngineError::InvalidConfig("file transfer is not set up".into()))?;
        let entry = self.entries.get_mut(&transfer).ok_or_else(|| {
            EngineError::InvalidState(format!("no such transfer: {}", transfer.0))
        })?;
        if entry.phase != Phase::Offered {
            return Err(EngineError::InvalidState(
                "only an offered file can be accepted".into(),
            ));
        }
        let offer = entry
            .offer
            .take()
            .ok_or_else(|| EngineError::InvalidState("the offer is gone".into()))?;
        entry.phase = Phase::Running;
        let (tx, rx) = mpsc::channel(16);
        entry.task = Some(tx);
        let folder = folder.unwrap_or_else(|| context.config.downloads.clone());
        tokio::spawn(task::run(
            context,
            TransferSetup::Incoming {
                transfer,
                peer: entry.peer.clone(),
                offer: Box::new(offer),
                folder,
            },
            rx,
        ));
        Ok(())
    }

    /// SIP work asked for by a task.
    pub(crate) fn on_task_message(&mut self, ua: &mut UserAgent, now: Instant, message: FromTask) {
        match message {
            FromTask::Chat(message) => {
                if let Some(context) = &self.context {
                    self.chats.on_task_message(context, ua, now, message);
                }
            }
            FromTask::Invite { transfer, sdp } => {
                let Some(entry) = self.entries.get_mut(&transfer) else {
                    return;
                };
                entry.local_sdp = Some(sdp.clone());
                match ua.invite(now, &entry.peer, sdp) {
                    Ok(call) => {
                        entry.sip = Some(call);
                        self.by_sip.insert(call, transfer);
                    }
                    Err(e) => self.to_task(
                        transfer,
                        ToTask::OfferRefused {
                            status: 0,
                            reason: e.to_string(),
                        },
                    ),
                }
            }
            FromTask::Answer { transfer, sdp } => {
                let Some(entry) = self.entries.get_mut(&transfer) else {
                    return;
                };
                entry.local_sdp = Some(sdp.clone());
                if let Some(call) = entry.sip
                    && let Err(e) = ua.answer(now, call, sdp)
                {
                    warn!(error = %e, "could not answer a file offer");
                    self.to_task(transfer, ToTask::SessionEnded);
                }
            }
            FromTask::Bye {
                transfer,
                cancelled,
            } => {
                if let Some(call) = self.entries.get_mut(&transfer).and_then(|e| e.sip.take()) {
                    self.by_sip.remove(&call);
                    let reason = cancelled
                        .then(|| sip::Reason::sip(CANCELLED_CAUSE, "file transfer cancelled"));
                    let _ = ua.hangup_with_reason(now, call, reason);
                }
            }
            FromTask::Finished { transfer } => {
                if let Some(call) = self.entries.get_mut(&transfer).and_then(|e| e.sip.take()) {
                    self.by_sip.remove(&call);
                    let _ = ua.hangup(now, call);
                }
                self.forget(transfer);
            }
        }
    }

    /// The account is stopping: end every session and task.
    pub(crate) fn shutdown(&mut self, ua: &mut UserAgent, now: Instant) {
        self.chats.shutdown(ua, now);
        let ids: Vec<TransferId> = self.entries.keys().copied().collect();
        for transfer in ids {
            if let Some(entry) = self.entries.get(&transfer) {
                if let Some(call) = entry.sip {
                    let _ = if entry.phase == Phase::Offered {
                        ua.reject(now, call, 480)
                    } else {
                        ua.hangup(now, call)
                    };
                }
                if let Some(task) = &entry.task {
                    let _ = task.try_send(ToTask::Cancel);
                }
            }
        }
    }
}
