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
mod context;
mod file;
pub(crate) mod names;
mod relay;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use lyrebird_msrp::{Direction as SdpDirection, MsrpMedia};
use lyrebird_sip as sip;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use crate::config::SipAccountConfig;
use crate::event::{EngineEvent, OfferedFile, TransferDirection, TransferState};
use crate::ground::{AccountId, EngineError, IdSource, TransferId};
use crate::history::History;
use crate::notice::AccountNotice;
use crate::session::{DialogEvent, SessionId, Signal};
use crate::sip::sessions::Signalling;
use context::{CANCELLED_CAUSE, FromTask, TaskContext, ToTask};
use file::TransferSetup;

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
    /// The incoming offer not yet accepted.
    offer: Option<MsrpMedia>,
    file_transfer_id: String,
    task: Option<mpsc::Sender<ToTask>>,
}

/// The account's book of transfers: SIP sessions ↔ transfer tasks.
pub(crate) struct Transfers {
    context: Option<TaskContext>,
    ids: Arc<IdSource>,
    account: AccountId,
    entries: HashMap<TransferId, Entry>,
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
        message: crate::ground::MessageId,
        key: &str,
        body: &str,
    ) -> bool {
        self.chats.send(peer, message, key, body)
    }

    /// The next message from a transfer task (for the account's `select!`).
    pub(crate) async fn next_message(&mut self) -> Option<FromTask> {
        self.from_tasks.recv().await
    }

    /// Something happened on the dialog of a transfer or a chat session.
    pub(crate) fn on_dialog(
        &mut self,
        sig: &mut Signalling,
        session: SessionId,
        event: DialogEvent,
    ) {
        let transfer = match session {
            SessionId::File(transfer) => transfer,
            SessionId::Chat(chat) => return self.chats.on_dialog(sig, chat, event),
            SessionId::Call(_) => return,
        };
        match event {
            DialogEvent::Answered { sdp: Some(sdp) } => {
                self.to_task(transfer, ToTask::Answered { sdp });
            }
            DialogEvent::Answered { sdp: None } => {
                let _ = sig.send(session, Signal::End { reason: None });
                self.to_task(transfer, ToTask::SessionEnded);
            }
            DialogEvent::Progress { .. } => {}
            DialogEvent::Reoffered { .. } => {
                // A refresh: the transfer goes on as it was, so the answer is our last SDP.
                if let Err(e) = sig.send(session, Signal::AnswerReoffer { sdp: None }) {
                    warn!(error = %e, "could not answer a re-INVITE of a transfer");
                }
            }
            DialogEvent::Ended { reason } => self.on_session_ended(sig, transfer, &reason),
            DialogEvent::Referred { refer, .. } => {
                // A file session is not a call to transfer.
                let _ = sig.ua.reject_refer(sig.now, refer, 603);
            }
            DialogEvent::ReofferAnswered { .. }
            | DialogEvent::ReofferFailed { .. }
            | DialogEvent::Dtmf { .. }
            | DialogEvent::ReferProgress { .. } => {}
        }
    }

    /// An incoming INVITE whose offer is MSRP: a file pushed to us, or a chat session.
    pub(crate) fn on_offer(
        &mut self,
        sig: &mut Signalling,
        call: sip::CallId,
        from: sip::Party,
        sdp: String,
    ) {
        let Some(context) = self.context.clone() else {
            info!(
                account = self.account.0,
                "file offered but file transfer is not set up: 488"
            );
            let _ = sig.ua.reject(sig.now, call, 488);
            return;
        };
        let offer = match MsrpMedia::parse(&sdp) {
            Ok(offer)
                if offer.direction == SdpDirection::SendOnly && offer.file_selector.is_some() =>
            {
                offer
            }
            Ok(offer) if chat::is_chat_offer(&offer) => {
                self.chats.on_offer(&context, sig, call, from.uri, offer);
                return;
            }
            Ok(_) => {
                self.warn(
                    "an MSRP offer that is neither a file push nor a chat was declined (488)"
                        .into(),
                );
                let _ = sig.ua.reject(sig.now, call, 488);
                return;
            }
            Err(e) => {
                self.warn(format!("unusable file offer declined (488): {e}"));
                let _ = sig.ua.reject(sig.now, call, 488);
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
            if let Some((&transfer, _)) = resumed {
                if let Some(old) = sig.sessions.rebind(SessionId::File(transfer), call) {
                    let _ = sig.ua.hangup(sig.now, old);
                }
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
                offer: Some(offer),
                file_transfer_id: file_transfer_id.clone(),
                task: None,
            },
        );
        sig.sessions
            .open(SessionId::File(transfer), from.uri.clone(), Some(call));
        let _ = self.notices.send(AccountNotice::TransferOpened {
            transfer,
            account: self.account,
        });
        let _ = sig.ua.ring(sig.now, call);
        let sha256 = selector.sha256.map(hex::encode);
        self.history.transfer(
            self.account,
            file::row(
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

    fn on_session_ended(
        &mut self,
        sig: &mut Signalling,
        transfer: TransferId,
        reason: &sip::EndReason,
    ) {
        let Some(entry) = self.entries.get(&transfer) else {
            return;
        };
        if entry.phase == Phase::Offered {
            // Never accepted: the sender cancelled (or it failed on the way).
            self.end_offer(
                sig.sessions,
                transfer,
                TransferState::Cancelled { by_peer: true },
            );
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

    /// An offer that was never accepted is over: declined by us, or cancelled by the sender.
    fn end_offer(
        &mut self,
        sessions: &mut crate::sip::sessions::Sessions,
        transfer: TransferId,
        state: TransferState,
    ) {
        let Some(entry) = self.entries.get_mut(&transfer) else {
            return;
        };
        {
            if let Some(offer) = entry.offer.take()
                && let Some(selector) = offer.file_selector
            {
                let mut row = file::row(
                    &entry.file_transfer_id,
                    TransferDirection::Incoming,
                    &entry.peer,
                    &selector.name,
                    selector.size,
                    selector.mime_type,
                    selector.sha256.map(hex::encode),
                );
                row.state = lyrebird_store::TransferState::Cancelled;
                row.ended_at_ms = Some(crate::ground::now_ms());
                row.error = Some(match state {
                    TransferState::Declined { .. } => "declined".into(),
                    _ => "cancelled by the sender".into(),
                });
                self.history.transfer(self.account, row);
            }
            self.state(transfer, state);
            self.forget(sessions, transfer);
        }
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

    fn forget(&mut self, sessions: &mut crate::sip::sessions::Sessions, transfer: TransferId) {
        if self.entries.remove(&transfer).is_some() {
            sessions.close(SessionId::File(transfer));
            let _ = self
                .notices
                .send(AccountNotice::TransferClosed { transfer });
        }
    }

    /// A command from a front end.
    pub(crate) fn on_command(&mut self, sig: &mut Signalling, command: TransferCommand) {
        match command {
            TransferCommand::Send {
                target,
                path,
                reply,
            } => {
                let _ = reply.send(self.send_file(sig, target, path));
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
                    Some(entry) if entry.phase == Phase::Offered => self.decline(sig, transfer),
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
                self.chats.open(self.context.as_ref(), sig, target, reply);
            }
            TransferCommand::Cancel { transfer, reply } => {
                let result = match self.entries.get(&transfer) {
                    Some(entry) if entry.phase == Phase::Offered => self.decline(sig, transfer),
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

    /// Declines an offer not yet accepted (603 Decline).
    fn decline(&mut self, sig: &mut Signalling, transfer: TransferId) -> Result<(), EngineError> {
        sig.send(SessionId::File(transfer), Signal::Decline { status: 603 })
            .map_err(|_| EngineError::InvalidState("the offer is gone".into()))?;
        self.end_offer(
            sig.sessions,
            transfer,
            TransferState::Declined { status: 603 },
        );
        Ok(())
    }

    fn send_file(
        &mut self,
        sig: &mut Signalling,
        target: String,
        path: PathBuf,
    ) -> Result<TransferId, EngineError> {
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
                offer: None,
                file_transfer_id: file_transfer_id.clone(),
                task: Some(tx),
            },
        );
        sig.sessions
            .open(SessionId::File(transfer), target.clone(), None);
        let _ = self.notices.send(AccountNotice::TransferOpened {
            transfer,
            account: self.account,
        });
        tokio::spawn(file::run(
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
        tokio::spawn(file::run(
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
    pub(crate) fn on_task_message(&mut self, sig: &mut Signalling, message: FromTask) {
        match message {
            FromTask::Chat(message) => {
                if let Some(context) = &self.context {
                    self.chats.on_task_message(context, sig, message);
                }
            }
            FromTask::Signal { transfer, signal } => {
                let failure = match &signal {
                    Signal::Offer { .. } => Some("the offer could not be sent"),
                    Signal::Answer { .. } => Some("the offer could not be answered"),
                    _ => None,
                };
                match sig.send(SessionId::File(transfer), signal) {
                    Ok(()) => {}
                    Err(e) if failure.is_some() => {
                        warn!(error = %e, transfer = transfer.0, "{}", failure.unwrap_or_default());
                        self.to_task(
                            transfer,
                            ToTask::OfferRefused {
                                status: 0,
                                reason: e.to_string(),
                            },
                        );
                    }
                    // Ending a session that has already ended.
                    Err(e) => debug!(error = %e, transfer = transfer.0, "signal not carried out"),
                }
            }
            FromTask::Finished { transfer } => {
                let _ = sig.send(SessionId::File(transfer), Signal::End { reason: None });
                self.forget(sig.sessions, transfer);
            }
        }
    }

    /// The account is stopping: end every session and task.
    pub(crate) fn shutdown(&mut self, sig: &mut Signalling) {
        self.chats.shutdown(sig);
        for (&transfer, entry) in &self.entries {
            let signal = match entry.phase {
                Phase::Offered => Signal::Decline { status: 480 },
                Phase::Running => Signal::End { reason: None },
            };
            let _ = sig.send(SessionId::File(transfer), signal);
            if let Some(task) = &entry.task {
                let _ = task.try_send(ToTask::Cancel);
            }
        }
    }
}
