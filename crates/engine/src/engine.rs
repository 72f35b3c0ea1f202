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

use crate::command::AccountCommand;
use crate::config::{CallAudio, SipAccountConfig};
use crate::event::EngineEvent;
use crate::ground::now_ms;
use crate::ground::{AccountId, CallId, EngineError, IdSource, MessageId, TransferId};
use crate::history::{CallRecord, History, MessageRecord, SearchHit};
use crate::notice::AccountNotice;
use crate::profile::AccountConfig;
use crate::profile::{
    AccountCheck, AccountSettings, ContactEntry, ConversationSummary, SavedAccount,
};
use crate::secret;
use crate::secret::Password;
use crate::sip::SipAccount;
use lyrebird_media::MediaStats;

/// How the engine is set up.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The history database file; `None` keeps history in memory for this run only.
    pub database: Option<PathBuf>,
    /// WebRTC and audio settings shared by every call.
    pub media: MediaConfig,
    /// The `User-Agent` header.
    pub user_agent: String,
    /// Where saved accounts put received files.
    pub downloads: PathBuf,
    /// Where call recordings go.
    pub recordings: PathBuf,
    /// One call talks at a time, as on a phone: answering or placing a call, or resuming one,
    /// puts the other answered calls on hold first (call waiting, swapping). Off for engines
    /// that carry many calls at once (a bot, a load test).
    pub hold_other_calls: bool,
    /// At start, mark the transfers a previous run left unfinished (it was killed or crashed)
    /// as failed and remove their partial files. Off for a process that only reads a history
    /// file another Lyrebird may be writing.
    pub settle_unfinished_transfers: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            database: None,
            media: MediaConfig::default(),
            user_agent: format!("Lyrebird/{}", env!("CARGO_PKG_VERSION")),
            downloads: std::env::temp_dir().join("lyrebird-downloads"),
            recordings: std::env::temp_dir().join("lyrebird-recordings"),
            hold_other_calls: true,
            settle_unfinished_transfers: true,
        }
    }
}

enum Command {
    Merge {
        calls: Vec<CallId>,
        reply: oneshot::Sender<Result<(), EngineError>>,
    },
    Split {
        call: CallId,
        reply: oneshot::Sender<Result<(), EngineError>>,
    },
    LeaveConference {
        reply: oneshot::Sender<Result<(), EngineError>>,
    },
    StartAccount {
        config: AccountConfig,
        /// A saved account's id; the next free id when `None`.
        id: Option<AccountId>,
        reply: oneshot::Sender<Result<AccountId, EngineError>>,
    },
    /// Runs an account only until its first verdict (a connection check); its events are
    /// not shown to the front end.
    Probe {
        config: AccountConfig,
        verdict: oneshot::Sender<Verdict>,
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
        transfer: TransferId,
        command: crate::msrp::TransferCommand,
    },
    /// The ids of the accounts running now.
    Running {
        reply: oneshot::Sender<Result<Vec<AccountId>, EngineError>>,
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
    events: mpsc::UnboundedSender<EngineEvent>,
    downloads: PathBuf,
    recordings: PathBuf,
}

/// A connection check's outcome: success, the stage reached, words for a person.
type Verdict = (bool, &'static str, String);

/// How long a connection check waits for the server's verdict.
const CHECK_TIMEOUT: Duration = Duration::from_secs(15);

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
        let history = History::open(
            config.database.as_deref(),
            config.settle_unfinished_transfers,
        )?;
        let (commands_tx, commands) = mpsc::channel(64);
        let (events_tx, events) = mpsc::unbounded_channel();
        let (notices_tx, notices) = mpsc::unbounded_channel();
        let supervisor = Supervisor {
            user_agent: config.user_agent,
            media: Arc::new(config.media),
            ids: Arc::new(IdSource::default()),
            next_account: 0,
            next_probe: PROBE_IDS_FROM,
            probes: HashMap::new(),
            accounts: HashMap::new(),
            calls: HashMap::new(),
            talking: HashMap::new(),
            conference: lyrebird_media::Conference::new(),
            conference_calls: Vec::new(),
            hold_other_calls: config.hold_other_calls,
            transfers: HashMap::new(),
            xmpp: crate::xmpp::XmppAccounts::default(),
            events: events_tx.clone(),
            notices_tx,
            history: history.clone(),
        };
        tokio::spawn(supervisor.run(commands, notices));
        Ok((
            EngineHandle {
                commands: commands_tx,
                history,
                events: events_tx,
                downloads: config.downloads,
                recordings: config.recordings,
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
        self.start_account(AccountConfig::Sip(Box::new(config)), None)
            .await
    }

    async fn start_account(
        &self,
        config: AccountConfig,
        id: Option<AccountId>,
    ) -> Result<AccountId, EngineError> {
        self.request(|reply| Command::StartAccount { config, id, reply })
            .await
    }

    /// Removes an account: it unregisters / logs out and stops.
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

    /// Puts a call on hold (RFC 6337: a re-INVITE offering `sendonly`); the other side no longer
    /// hears us and we no longer hear it. Returns once the offer is sent; `call_hold` events
    /// tell the outcome.
    pub async fn hold(&self, call: CallId) -> Result<(), EngineError> {
        self.set_hold(call, true).await
    }

    /// Takes our hold back (a re-INVITE offering the direction back).
    pub async fn resume(&self, call: CallId) -> Result<(), EngineError> {
        self.set_hold(call, false).await
    }

    /// Asks the other side of `call` to call `target` instead (blind transfer, RFC 3515). The
    /// call ends once the transfer succeeds; `call_transfer` events tell its progress.
    pub async fn transfer(&self, call: CallId, target: &str) -> Result<(), EngineError> {
        let target = target.to_owned();
        self.request(|reply| Command::ToCallOwner {
            call,
            command: AccountCommand::Transfer {
                call,
                target,
                reply,
            },
        })
        .await
    }

    /// Connects the other side of `call` with the other side of `to` (attended transfer:
    /// REFER with Replaces, RFC 3891); both calls end once it succeeds. Both calls must be on
    /// the same account.
    pub async fn attended_transfer(&self, call: CallId, to: CallId) -> Result<(), EngineError> {
        self.request(|reply| Command::ToCallOwner {
            call,
            command: AccountCommand::AttendedTransfer { call, to, reply },
        })
        .await
    }

    /// Starts recording a call (`on`) — what we hear and what we say, mixed, into a new WAV
    /// file in the recordings folder — or stops. `call_recording` events say where.
    pub async fn record(&self, call: CallId, on: bool) -> Result<(), EngineError> {
        let folder = on.then(|| self.recordings.clone());
        self.request(|reply| Command::ToCallOwner {
            call,
            command: AccountCommand::Record {
                call,
                folder,
                reply,
            },
        })
        .await
    }

    /// Mixes `calls` (and those already in it) into the local conference: every party hears
    /// every other and us, never itself (N−1 mixing in the engine). Held calls are resumed.
    /// Calls of different accounts can be merged.
    pub async fn merge(&self, calls: Vec<CallId>) -> Result<(), EngineError> {
        self.request(|reply| Command::Merge { calls, reply }).await
    }

    /// Takes a call out of the conference; it stays connected, on its own.
    pub async fn split(&self, call: CallId) -> Result<(), EngineError> {
        self.request(|reply| Command::Split { call, reply }).await
    }

    /// Leaves the conference. A mix cannot go on without the one who mixes it, so: two other
    /// parties on one account are connected to each other (attended transfer; our calls end
    /// once it succeeds, `call_transfer` events tell), and any other conference ends, every
    /// call in it hung up.
    pub async fn leave_conference(&self) -> Result<(), EngineError> {
        self.request(|reply| Command::LeaveConference { reply })
            .await
    }

    async fn set_hold(&self, call: CallId, hold: bool) -> Result<(), EngineError> {
        self.request(|reply| Command::ToCallOwner {
            call,
            command: AccountCommand::Hold { call, hold, reply },
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

    /// Opens an MSRP chat session (RFC 4975) with a SIP URI through the account's relay; from
    /// then on `send_message` to that peer goes through it. Returns once the peer has taken it.
    pub async fn open_chat_session(
        &self,
        account: AccountId,
        target: &str,
    ) -> Result<(), EngineError> {
        let target = target.to_owned();
        self.request(|reply| Command::ToAccount {
            account,
            command: AccountCommand::Files(crate::msrp::TransferCommand::OpenChat {
                target,
                reply,
            }),
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
    ) -> Result<TransferId, EngineError> {
        let (target, path) = (target.to_owned(), path.into());
        self.request(|reply| Command::ToAccount {
            account,
            command: AccountCommand::Files(crate::msrp::TransferCommand::Send {
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
        transfer: TransferId,
        folder: Option<PathBuf>,
    ) -> Result<(), EngineError> {
        self.request(|reply| Command::ToTransferOwner {
            transfer,
            command: crate::msrp::TransferCommand::Accept {
                transfer,
                folder,
                reply,
            },
        })
        .await
    }

    /// Declines an offered file (603 Decline).
    pub async fn decline_transfer(&self, transfer: TransferId) -> Result<(), EngineError> {
        self.request(|reply| Command::ToTransferOwner {
            transfer,
            command: crate::msrp::TransferCommand::Decline { transfer, reply },
        })
        .await
    }

    /// Cancels a transfer in whatever state it is; the peer learns it was a cancel.
    pub async fn cancel_transfer(&self, transfer: TransferId) -> Result<(), EngineError> {
        self.request(|reply| Command::ToTransferOwner {
            transfer,
            command: crate::msrp::TransferCommand::Cancel { transfer, reply },
        })
        .await
    }

    /// The newest file transfers of all accounts, newest first.
    /// SQLite's full consistency check of the history file: the problems found, none when it
    /// is sound.
    pub async fn history_integrity_problems(&self) -> Result<Vec<String>, EngineError> {
        self.history.integrity_problems().await
    }

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
        config: crate::xmpp::XmppAccountConfig,
    ) -> Result<AccountId, EngineError> {
        self.start_account(AccountConfig::Xmpp(Box::new(config)), None)
            .await
    }

    /// Carries out a chat / presence / room / file action on an XMPP account.
    pub async fn xmpp(
        &self,
        account: AccountId,
        action: crate::xmpp::XmppAction,
    ) -> Result<crate::xmpp::XmppReply, EngineError> {
        if let Some(text) = action.text() {
            crate::ground::check_text_length(text, crate::ground::MAX_XMPP_TEXT_BYTES)?;
        }
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
        let action = crate::xmpp::XmppAction::Message {
            to: to.to_owned(),
            body: body.to_owned(),
        };
        match self.xmpp(account, action).await? {
            crate::xmpp::XmppReply::Message { message } => Ok(message),
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

    // ----- Saved accounts (the desktop app's account list; see `profile.rs`) -----

    /// The saved accounts, oldest first, and whether the keyring holds each password.
    pub async fn saved_accounts(&self) -> Result<Vec<SavedAccount>, EngineError> {
        let mut out = Vec::new();
        for (id, settings) in self.history.saved_accounts().await? {
            let entry = settings.keyring_entry();
            let password_saved =
                tokio::task::spawn_blocking(move || secret::read_keyring(&entry).is_ok())
                    .await
                    .unwrap_or(false);
            out.push(SavedAccount {
                id,
                settings,
                password_saved,
            });
        }
        Ok(out)
    }

    /// Saves an account (never its password in the database) and (re)starts it under its
    /// saved id. With `remember`, the password goes to the OS keyring; when there is none,
    /// a `Warning` says the password is kept for this run only.
    pub async fn save_account(
        &self,
        settings: AccountSettings,
        password: Password,
        remember: bool,
    ) -> Result<SavedAccount, EngineError> {
        settings.validate()?;
        if password.expose().is_empty() {
            return Err(EngineError::InvalidConfig("the password is empty".into()));
        }
        let id = self
            .history
            .save_profile(settings.clone(), now_ms())
            .await?;
        let mut password_saved = false;
        if remember {
            let entry = settings.keyring_entry();
            let secret = password.clone();
            match tokio::task::spawn_blocking(move || secret::store_in_keyring(&entry, &secret))
                .await
            {
                Ok(Ok(())) => password_saved = true,
                Ok(Err(e)) => self.warn(
                    Some(id),
                    format!("the password is kept for this session only: {e}"),
                ),
                Err(e) => self.warn(Some(id), format!("the keyring failed: {e}")),
            }
        }
        // Saving a running account again applies the new settings.
        match self.remove_account(id).await {
            Ok(()) | Err(EngineError::UnknownAccount(_)) => {}
            Err(e) => return Err(e),
        }
        let config = settings.to_config(password, &self.downloads, false);
        self.start_account(config, Some(id)).await?;
        Ok(SavedAccount {
            id,
            settings,
            password_saved,
        })
    }

    /// Starts every saved account whose password the keyring has. The others are reported
    /// as `AuthenticationFailed { reason: "password needed" }`. Returns the accounts started.
    pub async fn start_saved_accounts(&self) -> Result<Vec<AccountId>, EngineError> {
        let mut started = Vec::new();
        let running = self.request(|reply| Command::Running { reply }).await?;
        for (id, settings) in self.history.saved_accounts().await? {
            if running.contains(&id) {
                continue;
            }
            let entry = settings.keyring_entry();
            let password = tokio::task::spawn_blocking(move || secret::read_keyring(&entry))
                .await
                .map_err(|e| EngineError::Keyring(e.to_string()))
                .and_then(|found| found);
            match password {
                Ok(password) => {
                    let config = settings.to_config(password, &self.downloads, false);
                    match self.start_account(config, Some(id)).await {
                        Ok(id) => started.push(id),
                        Err(e) => self.warn(Some(id), format!("could not start: {e}")),
                    }
                }
                Err(_) => {
                    let _ = self.events.send(EngineEvent::AccountState {
                        account: id,
                        state: crate::event::AccountState::AuthenticationFailed {
                            reason: "password needed".into(),
                        },
                    });
                }
            }
        }
        Ok(started)
    }

    /// Stops a saved account and forgets its settings and keyring entry; its history stays.
    pub async fn forget_account(&self, account: AccountId) -> Result<(), EngineError> {
        match self.remove_account(account).await {
            Ok(()) | Err(EngineError::UnknownAccount(_)) => {}
            Err(e) => return Err(e),
        }
        let settings = self.history.forget_profile(account).await?;
        let entry = settings.keyring_entry();
        // No entry (never remembered) is the usual case, not an error.
        let _ = tokio::task::spawn_blocking(move || secret::delete_from_keyring(&entry)).await;
        Ok(())
    }

    /// Connects with these settings until the server says yes or no (at most 15 s), and
    /// says in words how far it got. Nothing is saved; no call or message is taken.
    pub async fn check_account(
        &self,
        settings: AccountSettings,
        password: Password,
    ) -> Result<AccountCheck, EngineError> {
        let started = std::time::Instant::now();
        let elapsed_ms = || u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        if let Err(e) = settings.validate() {
            return Ok(AccountCheck {
                ok: false,
                stage: "settings".into(),
                detail: e.to_string(),
                elapsed_ms: elapsed_ms(),
            });
        }
        let config = settings.to_config(password, &self.downloads, true);
        let (verdict_tx, verdict_rx) = oneshot::channel();
        let probe = self
            .request(|reply| Command::Probe {
                config,
                verdict: verdict_tx,
                reply,
            })
            .await?;
        let (ok, stage, detail) = match tokio::time::timeout(CHECK_TIMEOUT, verdict_rx).await {
            Ok(Ok(verdict)) => verdict,
            Ok(Err(_)) => return Err(EngineError::Stopped),
            Err(_) => {
                let _ = self.remove_account(probe).await;
                (
                    false,
                    "connect",
                    format!(
                        "no answer from the server within {} s",
                        CHECK_TIMEOUT.as_secs()
                    ),
                )
            }
        };
        Ok(AccountCheck {
            ok,
            stage: stage.into(),
            detail,
            elapsed_ms: elapsed_ms(),
        })
    }

    /// The merged contact list (XMPP rosters, SIP peers from history) of the saved
    /// accounts, straight from the database: it is there before any server answers.
    pub async fn contacts(&self) -> Result<Vec<ContactEntry>, EngineError> {
        self.history.contacts().await
    }

    /// The saved accounts' conversations, most recently active first.
    pub async fn conversations(&self) -> Result<Vec<ConversationSummary>, EngineError> {
        self.history.conversations().await
    }

    /// Marks a conversation read.
    pub async fn mark_read(
        &self,
        account: AccountId,
        peer: &str,
        room: bool,
    ) -> Result<(), EngineError> {
        self.history.mark_read(account, peer.to_owned(), room).await
    }

    fn warn(&self, account: Option<AccountId>, detail: String) {
        let _ = self.events.send(EngineEvent::Warning { account, detail });
    }

    /// The ids of the accounts running now. The engine's own task answers, after every
    /// command sent before, so an answer also says that task is not stuck.
    pub async fn running_accounts(&self) -> Result<Vec<AccountId>, EngineError> {
        self.request(|reply| Command::Running { reply }).await
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

/// Connection checks run under ids from here up, far from any saved account's row id.
const PROBE_IDS_FROM: u32 = 1 << 30;

struct Supervisor {
    user_agent: String,
    media: Arc<MediaConfig>,
    ids: Arc<IdSource>,
    next_account: u32,
    next_probe: u32,
    /// Connection checks, with whoever waits for the verdict until it is given. A check stays
    /// here until its account has stopped, so none of its events reach the front end.
    probes: HashMap<AccountId, Option<oneshot::Sender<Verdict>>>,
    accounts: HashMap<AccountId, AccountEntry>,
    calls: HashMap<CallId, AccountId>,
    /// Answered calls and whether we hold them, for `hold_other_calls`.
    talking: HashMap<CallId, bool>,
    /// The local conference (one per engine: it mixes calls of any account) and its calls.
    conference: lyrebird_media::Conference,
    conference_calls: Vec<CallId>,
    hold_other_calls: bool,
    transfers: HashMap<TransferId, AccountId>,
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
                self.track_talking(&event);
                let probe = event.account().filter(|a| self.probes.contains_key(a));
                match probe {
                    None => {
                        let _ = self.events.send(event);
                    }
                    Some(account) => {
                        if matches!(
                            event,
                            EngineEvent::AccountState {
                                state: crate::event::AccountState::Stopped,
                                ..
                            }
                        ) {
                            self.probes.remove(&account);
                        } else if let Some(verdict) = crate::profile::check_verdict(&event)
                            && let Some(waiting) =
                                self.probes.get_mut(&account).and_then(Option::take)
                        {
                            let _ = waiting.send(verdict);
                            self.stop_in_background(account);
                        }
                    }
                }
            }
            AccountNotice::CallOpened { call, account } => {
                self.calls.insert(call, account);
            }
            AccountNotice::CallClosed { call } => {
                self.calls.remove(&call);
                self.talking.remove(&call);
                if let Some(at) = self.conference_calls.iter().position(|c| *c == call) {
                    self.conference_calls.remove(at);
                    self.tell_conference();
                }
            }
            AccountNotice::TransferOpened { transfer, account } => {
                self.transfers.insert(transfer, account);
            }
            AccountNotice::TransferClosed { transfer } => {
                self.transfers.remove(&transfer);
            }
        }
    }

    /// Keeps `talking` in step with the calls' events.
    fn track_talking(&mut self, event: &EngineEvent) {
        match event {
            EngineEvent::CallState {
                call,
                state: crate::event::CallState::Answered,
                ..
            } => {
                self.talking.entry(*call).or_insert(false);
            }
            EngineEvent::CallState {
                call,
                state: crate::event::CallState::Ended { .. },
                ..
            } => {
                self.talking.remove(call);
            }
            EngineEvent::CallHold { call, local, .. } => {
                if let Some(held) = self.talking.get_mut(call) {
                    *held = *local;
                }
            }
            _ => {}
        }
    }

    fn tell_conference(&self) {
        let _ = self.events.send(EngineEvent::Conference {
            calls: self.conference_calls.clone(),
        });
    }

    /// Mixes `calls` (with the calls already in the conference) into the local conference:
    /// every one is resumed and joined; those that cannot be are reported and left out.
    async fn merge(&mut self, calls: Vec<CallId>) -> Result<(), EngineError> {
        let mut joining: Vec<CallId> = calls
            .into_iter()
            .filter(|c| !self.conference_calls.contains(c))
            .collect();
        joining.dedup();
        if self.conference_calls.len() + joining.len() < 2 {
            return Err(EngineError::InvalidState(
                "a conference needs at least two calls".into(),
            ));
        }
        for call in &joining {
            if !self.talking.contains_key(call) {
                return Err(EngineError::InvalidState(format!(
                    "call {} is not answered; only answered calls can be merged",
                    call.0
                )));
            }
        }
        for call in joining {
            let Some(entry) = self.call_owner(call).cloned() else {
                continue;
            };
            if self.talking.get(&call) == Some(&true) {
                let (reply, result) = oneshot::channel();
                forward(
                    &entry,
                    AccountCommand::Hold {
                        call,
                        hold: false,
                        reply,
                    },
                )
                .await;
                self.talking.insert(call, false);
                drop(result);
            }
            let (reply, result) = oneshot::channel();
            let conference = Some(self.conference.clone());
            forward(
                &entry,
                AccountCommand::Conference {
                    call,
                    conference,
                    reply,
                },
            )
            .await;
            match result.await {
                Ok(Ok(())) => self.conference_calls.push(call),
                Ok(Err(e)) => return Err(e),
                Err(_) => return Err(EngineError::UnknownCall(call.0)),
            }
        }
        self.tell_conference();
        Ok(())
    }

    /// Takes `call` out of the conference; it stays connected, on its own.
    async fn split(&mut self, call: CallId) -> Result<(), EngineError> {
        let at = self
            .conference_calls
            .iter()
            .position(|c| *c == call)
            .ok_or_else(|| EngineError::InvalidState("the call is not in the conference".into()))?;
        self.conference_calls.remove(at);
        if let Some(entry) = self.call_owner(call).cloned() {
            let (reply, _result) = oneshot::channel();
            forward(
                &entry,
                AccountCommand::Conference {
                    call,
                    conference: None,
                    reply,
                },
            )
            .await;
        }
        self.tell_conference();
        Ok(())
    }

    /// Holds (`hold`) or resumes every other call of the conference `call` is in, as the
    /// person holds or resumes `call` itself.
    async fn hold_conference_with(&mut self, call: CallId, hold: bool) {
        if !self.conference_calls.contains(&call) {
            return;
        }
        let others: Vec<CallId> = self
            .conference_calls
            .iter()
            .copied()
            .filter(|c| *c != call && self.talking.get(c).is_some_and(|held| *held != hold))
            .collect();
        for other in others {
            let Some(entry) = self.call_owner(other).cloned() else {
                continue;
            };
            let (reply, result) = oneshot::channel();
            forward(
                &entry,
                AccountCommand::Hold {
                    call: other,
                    hold,
                    reply,
                },
            )
            .await;
            self.talking.insert(other, hold);
            tokio::spawn(async move {
                if let Ok(Err(e)) = result.await {
                    tracing::warn!(call = other.0, error = %e, "could not hold or resume a conference call");
                }
            });
        }
    }

    /// Leaves the conference: connects the other two to each other where one account holds
    /// both calls, else hangs up on everyone in it.
    async fn leave_conference(&mut self) -> Result<(), EngineError> {
        let members = self.conference_calls.clone();
        if members.is_empty() {
            return Err(EngineError::InvalidState(
                "there is no conference to leave".into(),
            ));
        }
        for call in &members {
            self.split(*call).await?;
        }
        if let [first, second] = members[..] {
            let account = self
                .calls
                .get(&first)
                .filter(|a| self.calls.get(&second) == Some(a));
            if let Some(entry) = account.and_then(|a| self.account_inbox(*a)).cloned() {
                let (reply, result) = oneshot::channel();
                forward(
                    &entry,
                    AccountCommand::AttendedTransfer {
                        call: first,
                        to: second,
                        reply,
                    },
                )
                .await;
                match result.await {
                    Ok(Ok(())) => return Ok(()),
                    Ok(Err(e)) => {
                        tracing::info!(error = %e, "cannot connect the other two; ending the conference");
                    }
                    Err(_) => {}
                }
            }
        }
        for call in members {
            let Some(entry) = self.call_owner(call).cloned() else {
                continue;
            };
            let (reply, _result) = oneshot::channel();
            forward(&entry, AccountCommand::Hangup { call, reply }).await;
        }
        Ok(())
    }

    /// Puts every answered call we do not hold yet on hold, but `except` (and, when `except`
    /// is in the conference, the other calls in it): the person is about to talk elsewhere.
    async fn hold_others(&mut self, except: Option<CallId>) {
        if !self.hold_other_calls {
            return;
        }
        let in_conference = |call: &CallId| {
            except.is_some_and(|e| self.conference_calls.contains(&e))
                && self.conference_calls.contains(call)
        };
        let others: Vec<CallId> = self
            .talking
            .iter()
            .filter(|(call, held)| !**held && Some(**call) != except && !in_conference(call))
            .map(|(call, _)| *call)
            .collect();
        for call in others {
            let Some(entry) = self.call_owner(call).cloned() else {
                continue;
            };
            let (reply, result) = oneshot::channel();
            forward(
                &entry,
                AccountCommand::Hold {
                    call,
                    hold: true,
                    reply,
                },
            )
            .await;
            // Marked at once, so a second command in a row does not hold it twice.
            self.talking.insert(call, true);
            tokio::spawn(async move {
                if let Ok(Err(e)) = result.await {
                    tracing::warn!(call = call.0, error = %e, "could not hold the other call");
                }
            });
        }
    }

    /// Where an account's call commands go, whichever protocol it speaks.
    fn account_inbox(&self, account: AccountId) -> Option<&mpsc::Sender<AccountCommand>> {
        match self.accounts.get(&account) {
            Some(entry) => Some(&entry.commands),
            None => self.xmpp.call_inbox(account),
        }
    }

    /// Where commands for `call` go: the account that owns it.
    fn call_owner(&self, call: CallId) -> Option<&mpsc::Sender<AccountCommand>> {
        self.calls
            .get(&call)
            .and_then(|account| self.account_inbox(*account))
    }

    async fn on_command(&mut self, command: Command) {
        match command {
            Command::Merge { calls, reply } => {
                let _ = reply.send(self.merge(calls).await);
            }
            Command::Split { call, reply } => {
                let _ = reply.send(self.split(call).await);
            }
            Command::LeaveConference { reply } => {
                let _ = reply.send(self.leave_conference().await);
            }
            Command::StartAccount { config, id, reply } => {
                let result = match self.allocate(id) {
                    Ok(id) => self.start(config, id, true).await,
                    Err(e) => Err(e),
                };
                let _ = reply.send(result);
            }
            Command::Probe {
                config,
                verdict,
                reply,
            } => {
                self.next_probe = self.next_probe.wrapping_add(1).max(PROBE_IDS_FROM);
                let id = AccountId(self.next_probe);
                let result = self.start(config, id, false).await;
                if result.is_ok() {
                    self.probes.insert(id, Some(verdict));
                }
                let _ = reply.send(result);
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
            Command::Xmpp(command) => self.forward_to_xmpp(command).await,
            Command::ToAccount { account, command } => {
                if matches!(command, AccountCommand::Call { .. }) {
                    self.hold_others(None).await;
                }
                match self.accounts.get(&account) {
                    Some(entry) => forward(&entry.commands, command).await,
                    None => match self.xmpp.call_inbox(account) {
                        Some(inbox) => forward(inbox, command).await,
                        None => command.fail(EngineError::UnknownAccount(account.0)),
                    },
                }
            }
            Command::ToCallOwner { call, command } => {
                if matches!(
                    command,
                    AccountCommand::Answer { .. } | AccountCommand::Hold { hold: false, .. }
                ) {
                    self.hold_others(Some(call)).await;
                }
                if let AccountCommand::Hold { hold, .. } = command {
                    // The conference is held and resumed as one: its other calls follow.
                    self.hold_conference_with(call, hold).await;
                }
                match self.call_owner(call) {
                    Some(inbox) => forward(inbox, command).await,
                    None => command.fail(EngineError::UnknownCall(call.0)),
                }
            }
            Command::ToTransferOwner { transfer, command } => {
                match self
                    .transfers
                    .get(&transfer)
                    .and_then(|account| self.accounts.get(account))
                {
                    Some(entry) => forward(&entry.commands, AccountCommand::Files(command)).await,
                    None => command.fail(EngineError::InvalidState(format!(
                        "no such transfer: {}",
                        transfer.0
                    ))),
                }
            }
            Command::Running { reply } => {
                let mut running: Vec<AccountId> = self.accounts.keys().copied().collect();
                running.extend(self.xmpp.ids());
                running.retain(|id| !self.probes.contains_key(id));
                let _ = reply.send(Ok(running));
            }
            Command::Shutdown { reply } => {
                let _ = reply.send(());
            }
        }
    }

    /// The id a new account runs under: the one asked for (a saved account's row id) if it
    /// is free, else the next unused one.
    fn allocate(&mut self, wanted: Option<AccountId>) -> Result<AccountId, EngineError> {
        match wanted {
            Some(id) if self.accounts.contains_key(&id) || self.xmpp.contains(id) => Err(
                EngineError::InvalidState(format!("{id} is already running")),
            ),
            Some(id) => {
                self.next_account = self.next_account.max(id.0);
                Ok(id)
            }
            None => {
                self.next_account += 1;
                Ok(AccountId(self.next_account))
            }
        }
    }

    /// Starts an account task; `record` files it in history (not for connection checks).
    async fn start(
        &mut self,
        config: AccountConfig,
        id: AccountId,
        record: bool,
    ) -> Result<AccountId, EngineError> {
        match config {
            AccountConfig::Sip(config) => self.add_sip_account(*config, id, record),
            AccountConfig::Xmpp(config) => {
                let (reply, result) = oneshot::channel();
                let command = crate::xmpp::SupervisorCommand::Add {
                    config,
                    id: Some(id),
                    record,
                    reply,
                };
                self.forward_to_xmpp(command).await;
                result.await.map_err(|_| EngineError::Stopped)?
            }
        }
    }

    /// Hands a command to the XMPP accounts, lending them what they share with SIP ones.
    async fn forward_to_xmpp(&mut self, command: crate::xmpp::SupervisorCommand) {
        let context = crate::xmpp::SupervisorContext {
            next_account: &mut self.next_account,
            media: &self.media,
            ids: &self.ids,
            notices: &self.notices_tx,
            history: &self.history,
        };
        self.xmpp.on_command(command, context).await;
    }

    /// Stops an account without waiting (a finished connection check).
    fn stop_in_background(&mut self, account: AccountId) {
        match self.accounts.remove(&account) {
            Some(entry) => {
                tokio::spawn(async move { stop_account(&entry).await });
            }
            None => self.xmpp.stop_in_background(account),
        }
    }

    fn add_sip_account(
        &mut self,
        config: SipAccountConfig,
        id: AccountId,
        record: bool,
    ) -> Result<AccountId, EngineError> {
        let (tx, rx) = mpsc::channel(64);
        if record {
            self.history.account_added(
                id,
                &config.aor,
                config.display_name.as_deref(),
                &config.ws_url,
            );
        }
        // An account with its own STUN/TURN servers gets its own copy of the media settings.
        let media = match &config.ice_servers {
            Some(servers) => Arc::new(MediaConfig {
                ice_servers: servers.clone(),
                ..(*self.media).clone()
            }),
            None => Arc::clone(&self.media),
        };
        let account = SipAccount::new(
            id,
            config,
            &self.user_agent,
            media,
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

async fn forward(inbox: &mpsc::Sender<AccountCommand>, command: AccountCommand) {
    if let Err(mpsc::error::SendError(command)) = inbox.send(command).await {
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
