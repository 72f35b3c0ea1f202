//! The engine's front door: `Engine::start` gives an [`EngineHandle`] (commands) and a stream of
//! [`EngineEvent`]s. A supervisor task routes commands to the account that owns the call or
//! message and forwards every account's events, in order, to the front end.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use lyrebird_media::MediaConfig;
use tokio::sync::{mpsc, oneshot};
use tracing::info;

use crate::account::{AccountCommand, AccountNotice, IdSource, SipAccount};
use crate::event::EngineEvent;
use crate::history::{CallRecord, History, MessageRecord, SearchHit};
use crate::{AccountId, CallAudio, CallId, EngineError, MediaStats, MessageId, SipAccountConfig};

/// How the engine is set up.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The history database file; `None` keeps history in memory for this run only.
    pub database: Option<PathBuf>,
    /// WebRTC and audio settings shared by every call.
    pub media: MediaConfig,
    /// The `User-Agent` header.
    pub user_agent: String,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            database: None,
            media: MediaConfig::default(),
            user_agent: format!("Lyrebird/{}", env!("CARGO_PKG_VERSION")),
        }
    }
}

enum Command {
    AddSipAccount {
        config: Box<SipAccountConfig>,
        reply: oneshot::Sender<Result<AccountId, EngineError>>,
    },
    RemoveAccount {
        account: AccountId,
        reply: oneshot::Sender<Result<(), EngineError>>,
    },
    ToAccount {
        account: AccountId,
        command: AccountCommand,
    },
    ToCallOwner {
        call: CallId,
        command: AccountCommand,
    },
    ToTransferOwner {
        transfer: crate::TransferId,
        command: crate::transfer::TransferCommand,
    },
    Shutdown {
        reply: oneshot::Sender<()>,
    },
    /// XMPP accounts (see `xmpp/`).
    Xmpp(crate::xmpp::SupervisorCommand),
}

/// A cheap, cloneable handle for sending commands to the engine.
#[derive(Clone)]
pub struct EngineHandle {
    commands: mpsc::Sender<Command>,
    history: History,
}

impl std::fmt::Debug for EngineHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineHandle").finish_non_exhaustive()
    }
}

/// The engine itself; see [`Engine::start`].
#[derive(Debug)]
pub struct Engine;

impl Engine {
    /// Starts the engine on the current tokio runtime. Events arrive on the returned receiver;
    /// a front end should keep reading it.
    pub fn start(
        config: EngineConfig,
    ) -> Result<(EngineHandle, mpsc::UnboundedReceiver<EngineEvent>), EngineError> {
        let history = History::open(config.database.as_deref())?;
        let (commands_tx, commands) = mpsc::channel(64);
        let (events_tx, events) = mpsc::unbounded_channel();
        let (notices_tx, notices) = mpsc::unbounded_channel();
        let supervisor = Supervisor {
            user_agent: config.user_agent,
            media: Arc::new(config.media),
            ids: Arc::new(IdSource::default()),
            next_account: 0,
            accounts: HashMap::new(),
            calls: HashMap::new(),
            transfers: HashMap::new(),
            xmpp: crate::xmpp::XmppAccounts::default(),
            events: events_tx,
            notices_tx,
            history: history.clone(),
        };
        tokio::spawn(supervisor.run(commands, notices));
        Ok((
            EngineHandle {
                commands: commands_tx,
                history,
            },
            events,
        ))
    }
}

impl EngineHandle {
    async fn request<T>(
        &self,
        build: impl FnOnce(oneshot::Sender<Result<T, EngineError>>) -> Command,
    ) -> Result<T, EngineError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(build(tx))
            .await
            .map_err(|_| EngineError::Stopped)?;
        rx.await.map_err(|_| EngineError::Stopped)?
    }

    /// Adds a SIP account; it connects and registers at once, reporting progress as
    /// `AccountState` events.
    pub async fn add_sip_account(
        &self,
        config: SipAccountConfig,
    ) -> Result<AccountId, EngineError> {
        self.request(|reply| Command::AddSipAccount {
            config: Box::new(config),
            reply,
        })
        .await
    }

    /// Unregisters and removes an account, ending its calls.
    pub async fn remove_account(&self, account: AccountId) -> Result<(), EngineError> {
        self.request(|reply| Command::RemoveAccount { account, reply })
            .await
    }

    /// Calls a SIP URI from an account.
    pub async fn call(
        &self,
        account: AccountId,
        target: &str,
        audio: CallAudio,
    ) -> Result<CallId, EngineError> {
        let target = target.to_owned();
        self.request(|reply| Command::ToAccount {
            account,
            command: AccountCommand::Call {
                target,
                audio,
                reply,
            },
        })
        .await
    }

    /// Answers a ringing incoming call; `None` uses the sound card.
    pub async fn answer(&self, call: CallId, audio: Option<CallAudio>) -> Result<(), EngineError> {
        self.request(|reply| Command::ToCallOwner {
            call,
            command: AccountCommand::Answer { call, audio, reply },
        })
        .await
    }

    /// Declines a ringing incoming call (603 Decline).
    pub async fn reject(&self, call: CallId) -> Result<(), EngineError> {
        self.request(|reply| Command::ToCallOwner {
            call,
            command: AccountCommand::Reject { call, reply },
        })
        .await
    }

    /// Ends a call in whatever state it is: CANCEL, BYE, or decline.
    pub async fn hangup(&self, call: CallId) -> Result<(), EngineError> {
        self.request(|reply| Command::ToCallOwner {
            call,
            command: AccountCommand::Hangup { call, reply },
        })
        .await
    }

    /// Sends a text message (SIP MESSAGE, RFC 3428).
    pub async fn send_message(
        &self,
        account: AccountId,
        target: &str,
        body: &str,
    ) -> Result<MessageId, EngineError> {
        let (target, body) = (target.to_owned(), body.to_owned());
        self.request(|reply| Command::ToAccount {
            account,
            command: AccountCommand::SendMessage {
                target,
                body,
                reply,
            },
        })
        .await
    }

    /// The call's current media statistics and audio levels.
    pub async fn call_stats(&self, call: CallId) -> Result<MediaStats, EngineError> {
        self.request(|reply| Command::ToCallOwner {
            call,
            command: AccountCommand::Stats { call, reply },
        })
        .await
    }

    pub async fn set_muted(&self, call: CallId, muted: bool) -> Result<(), EngineError> {
        self.request(|reply| Command::ToCallOwner {
            call,
            command: AccountCommand::SetMuted { call, muted, reply },
        })
        .await
    }

    /// Sends a DTMF digit (RFC 4733) in a call.
    pub async fn send_dtmf(&self, call: CallId, digit: char) -> Result<(), EngineError> {
        self.request(|reply| Command::ToCallOwner {
            call,
            command: AccountCommand::SendDtmf { call, digit, reply },
        })
        .await
    }

    /// Offers a file to a SIP URI over MSRP (RFC 5547 push); progress and the outcome arrive as
    /// `TransferState` / `TransferProgress` events.
    pub async fn send_file(
        &self,
        account: AccountId,
        target: &str,
        path: impl Into<PathBuf>,
    ) -> Result<crate::TransferId, EngineError> {
        let (target, path) = (target.to_owned(), path.into());
        self.request(|reply| Command::ToAccount {
            account,
            command: AccountCommand::Transfer(crate::transfer::TransferCommand::Send {
                target,
                path,
                reply,
            }),
        })
        .await
    }

    /// Accepts an offered file into `folder` (the account's downloads folder when `None`).
    pub async fn accept_transfer(
        &self,
        transfer: crate::TransferId,
        folder: Option<PathBuf>,
    ) -> Result<(), EngineError> {
        self.request(|reply| Command::ToTransferOwner {
            transfer,
            command: crate::transfer::TransferCommand::Accept {
                transfer,
                folder,
                reply,
            },
        })
        .await
    }

    /// Declines an offered file (603 Decline).
    pub async fn decline_transfer(&self, transfer: crate::TransferId) -> Result<(), EngineError> {
        self.request(|reply| Command::ToTransferOwner {
            transfer,
            command: crate::transfer::TransferCommand::Decline { transfer, reply },
        })
        .await
    }

    /// Cancels a transfer in whatever state it is; the peer learns it was a cancel.
    pub async fn cancel_transfer(&self, transfer: crate::TransferId) -> Result<(), EngineError> {
        self.request(|reply| Command::ToTransferOwner {
            transfer,
            command: crate::transfer::TransferCommand::Cancel { transfer, reply },
        })
        .await
    }

    /// The newest file transfers of all accounts, newest first.
    pub async fn recent_transfers(
        &self,
        limit: u32,
    ) -> Result<Vec<lyrebird_store::Transfer>, EngineError> {
        self.history.recent_transfers(limit).await
    }

    /// Adds an XMPP account; it connects, logs in and fetches what it missed at once,
    /// reporting progress as `AccountState` / `XmppOnline` events.
    pub async fn add_xmpp_account(
        &self,
        config: crate::XmppAccountConfig,
    ) -> Result<AccountId, EngineError> {
        self.request(|reply| {
            Command::Xmpp(crate::xmpp::SupervisorCommand::Add {
                config: Box::new(config),
                reply,
            })
        })
        .await
    }

    /// Carries out a chat / presence / room / file action on an XMPP account.
    pub async fn xmpp(
        &self,
        account: AccountId,
        action: crate::XmppAction,
    ) -> Result<crate::XmppReply, EngineError> {
        self.request(|reply| {
            Command::Xmpp(crate::xmpp::SupervisorCommand::Action {
                account,
                action,
                reply,
            })
        })
        .await
    }

    /// Sends a 1:1 XMPP chat message; returns its id (its stable id in history).
    pub async fn send_chat(
        &self,
        account: AccountId,
        to: &str,
        body: &str,
    ) -> Result<String, EngineError> {
        let action = crate::XmppAction::Message {
            to: to.to_owned(),
            body: body.to_owned(),
        };
        match self.xmpp(account, action).await? {
            crate::XmppReply::Message { message } => Ok(message),
            other => Err(EngineError::InvalidState(format!(
                "unexpected reply {other:?}"
            ))),
        }
    }

    /// The newest `limit` messages of a room on `account`, oldest first.
    pub async fn room_history(
        &self,
        account: AccountId,
        room: &str,
        limit: u32,
    ) -> Result<Vec<MessageRecord>, EngineError> {
        self.history.room_messages(account, room, limit).await
    }

    /// The newest calls, newest first.
    pub async fn recent_calls(&self, limit: u32) -> Result<Vec<CallRecord>, EngineError> {
        self.history.recent_calls(limit).await
    }

    /// Messages whose text matches the words of `query`, best match first.
    pub async fn search_messages(
        &self,
        query: &str,
        limit: u32,
    ) -> Result<Vec<SearchHit>, EngineError> {
        self.history.search_messages(query, limit).await
    }

    /// The newest `limit` messages exchanged with `peer` on `account`, oldest first.
    pub async fn conversation(
        &self,
        account: AccountId,
        peer: &str,
        limit: u32,
    ) -> Result<Vec<MessageRecord>, EngineError> {
        self.history.conversation(account, peer, limit).await
    }

    /// Ends every call, unregisters every account (bounded wait), and writes the last history.
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self
            .commands
            .send(Command::Shutdown { reply: tx })
            .await
            .is_ok()
        {
            let _ = tokio::time::timeout(Duration::from_secs(5), rx).await;
        }
        self.history.flush().await;
    }
}

struct AccountEntry {
    commands: mpsc::Sender<AccountCommand>,
}

struct Supervisor {
    user_agent: String,
    media: Arc<MediaConfig>,
    ids: Arc<IdSource>,
    next_account: u32,
    accounts: HashMap<AccountId, AccountEntry>,
    calls: HashMap<CallId, AccountId>,
    transfers: HashMap<crate::TransferId, AccountId>,
    xmpp: crate::xmpp::XmppAccounts,
    events: mpsc::UnboundedSender<EngineEvent>,
    notices_tx: mpsc::UnboundedSender<AccountNotice>,
    history: History,
}

impl Supervisor {
    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut notices: mpsc::UnboundedReceiver<AccountNotice>,
    ) {
        loop {
            tokio::select! {
                command = commands.recv() => match command {
                    Some(Command::Shutdown { reply }) => {
                        self.shutdown().await;
                        // Events the accounts sent while stopping still reach the front end.
                        while let Ok(notice) = notices.try_recv() {
                            self.on_notice(notice);
                        }
                        let _ = reply.send(());
                        return;
                    }
                    Some(command) => self.on_command(command).await,
                    None => {
                        self.shutdown().await;
                        return;
                    }
                },
                Some(notice) = notices.recv() => self.on_notice(notice),
            }
        }
    }

    fn on_notice(&mut self, notice: AccountNotice) {
        match notice {
            AccountNotice::Event(event) => {
                let _ = self.events.send(event);
            }
            AccountNotice::CallOpened { call, account } => {
                self.calls.insert(call, account);
            }
            AccountNotice::CallClosed { call } => {
                self.calls.remove(&call);
            }
            AccountNotice::TransferOpened { transfer, account } => {
                self.transfers.insert(transfer, account);
            }
            AccountNotice::TransferClosed { transfer } => {
                self.transfers.remove(&transfer);
            }
        }
    }

    async fn on_command(&mut self, command: Command) {
        match command {
            Command::AddSipAccount { config, reply } => {
                let _ = reply.send(self.add_sip_account(*config));
            }
            Command::RemoveAccount { account, reply } => {
                let result = match self.accounts.remove(&account) {
                    Some(entry) => {
                        stop_account(&entry).await;
                        Ok(())
                    }
                    None => self.xmpp.remove(account).await,
                };
                let _ = reply.send(result);
            }
            Command::Xmpp(command) => {
                let context = crate::xmpp::SupervisorContext {
                    next_account: &mut self.next_account,
                    ids: &self.ids,
                    notices: &self.notices_tx,
                    history: &self.history,
                };
                self.xmpp.on_command(command, context).await;
            }
            Command::ToAccount { account, command } => match self.accounts.get(&account) {
                Some(entry) => forward(entry, command).await,
                None => command.fail(EngineError::UnknownAccount(account.0)),
            },
            Command::ToCallOwner { call, command } => {
                match self
                    .calls
                    .get(&call)
                    .and_then(|account| self.accounts.get(account))
                {
                    Some(entry) => forward(entry, command).await,
                    None => command.fail(EngineError::UnknownCall(call.0)),
                }
            }
            Command::ToTransferOwner { transfer, command } => {
                match self
                    .transfers
                    .get(&transfer)
                    .and_then(|account| self.accounts.get(account))
                {
                    Some(entry) => forward(entry, AccountCommand::Transfer(command)).await,
                    None => command.fail(EngineError::InvalidState(format!(
                        "no such transfer: {}",
                        transfer.0
                    ))),
                }
            }
            Command::Shutdown { reply } => {
                let _ = reply.send(());
            }
        }
    }

    fn add_sip_account(&mut self, config: SipAccountConfig) -> Result<AccountId, EngineError> {
        self.next_account += 1;
        let id = AccountId(self.next_account);
        let (tx, rx) = mpsc::channel(64);
        self.history.account_added(
            id,
            &config.aor,
            config.display_name.as_deref(),
            &config.ws_url,
        );
        let account = SipAccount::new(
            id,
            config,
            &self.user_agent,
            Arc::clone(&self.media),
            Arc::clone(&self.ids),
            rx,
            self.notices_tx.clone(),
            self.history.clone(),
        )?;
        tokio::spawn(account.run());
        self.accounts.insert(id, AccountEntry { commands: tx });
        info!(account = id.0, "SIP account added");
        Ok(id)
    }

    async fn shutdown(&mut self) {
        let stops = self
            .accounts
            .drain()
            .map(|(_, entry)| async move { stop_account(&entry).await });
        futures_util::future::join_all(stops).await;
        self.xmpp.shutdown().await;
    }
}

async fn forward(entry: &AccountEntry, command: AccountCommand) {
    if let Err(mpsc::error::SendError(command)) = entry.commands.send(command).await {
        command.fail(EngineError::Stopped);
    }
}

async fn stop_account(entry: &AccountEntry) {
    let (tx, rx) = oneshot::channel();
    if entry
        .commands
        .send(AccountCommand::Shutdown { reply: tx })
        .await
        .is_ok()
    {
        let _ = tokio::time::timeout(Duration::from_secs(4), rx).await;
    }
}

impl AccountCommand {
    /// Answers the command's caller with an error instead of carrying it out.
    fn fail(self, error: EngineError) {
        match self {
            AccountCommand::Call { reply, .. } => drop(reply.send(Err(error))),
            AccountCommand::Answer { reply, .. }
            | AccountCommand::Reject { reply, .. }
            | AccountCommand::Hangup { reply, .. }
            | AccountCommand::SetMuted { reply, .. }
            | AccountCommand::SendDtmf { reply, .. } => drop(reply.send(Err(error))),
            AccountCommand::SendMessage { reply, .. } => drop(reply.send(Err(error))),
            AccountCommand::Stats { reply, .. } => drop(reply.send(Err(error))),
            AccountCommand::Transfer(command) => command.fail(error),
            AccountCommand::Shutdown { reply } => drop(reply.send(())),
        }
    }
}
