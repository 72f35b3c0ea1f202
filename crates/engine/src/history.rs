//! The history writer: one thread owns the SQLite store.
//!
//! Tasks report what happened (`record`), never blocking on the disk. The writer drains
//! everything queued and writes it in one transaction, so a burst of messages costs one commit,
//! while a lone message is committed at once: nothing waits in memory for a batch to fill up.
//! A change the store refuses is dropped from its batch (with an error) and the rest written.
//!
//! Queued is not yet stored, though: a kill before the commit loses what was queued. So a
//! record can carry an acknowledgement ([`Ack`]), called on the writer thread once the
//! transaction holding it has committed (`Ok`), or has failed or could not be built (`Err`).
//! A message already stored (same stable id) counts as stored, and the acknowledgement says
//! so ([`Kept::Already`]), so a message is shown only by the record that first stored it. The SIP account answers an
//! incoming MESSAGE, and an MSRP chat session sends a received message's Success-Report, only
//! from that acknowledgement, so no sender is told "delivered" about a message a kill could
//! still lose. Records without one are written as promptly but nothing waits for them, so a
//! kill just before their commit loses them: acceptable for what is kept elsewhere too (an
//! XMPP server's archive) or is our own doing (calls, messages we send).

use std::collections::HashMap;
use std::path::Path;
use std::sync::mpsc as std_mpsc;

use lyrebird_store::{
    self as store, AccountKind, CallEnd, CallEndReason, CallRef, Change, ChangeOutcome,
    ConversationKind, DeliveryState, Direction, MessageRef, NewAccount, NewCall, NewMessage, Store,
};
use tokio::sync::oneshot;
use tracing::{debug, error, info, warn};

pub use lyrebird_store::{CallRecord, Message as MessageRecord, SearchHit};

use crate::event::CallDirection;
use crate::ground::{AccountId, EngineError, now_ms};

/// Something that happened, in the engine's words; the writer turns it into store changes.
#[derive(Debug)]
enum Happening {
    AccountAdded {
        account: AccountId,
        aor: String,
        display_name: Option<String>,
        server_url: String,
    },
    CallStarted {
        account: AccountId,
        key: String,
        direction: CallDirection,
        peer: String,
    },
    CallAnswered {
        account: AccountId,
        key: String,
    },
    CallEnded {
        account: AccountId,
        key: String,
        reason: CallEndReason,
    },
    MessageIn {
        account: AccountId,
        stable_id: String,
        from: String,
        content_type: String,
        body: String,
    },
    MessageOut {
        account: AccountId,
        stable_id: String,
        to: String,
        content_type: String,
        body: String,
    },
    MessageState {
        account: AccountId,
        stable_id: String,
        peer: String,
        state: DeliveryState,
    },
    /// A file transfer's row, created or updated (its `account` is filled in here).
    Transfer {
        account: AccountId,
        transfer: Box<store::NewTransfer>,
    },
    /// A change a protocol module words itself (XMPP roster, rooms and chat: `xmpp/store.rs`),
    /// so history needs to know nothing of that protocol.
    Other(Box<dyn OtherHappening>),
}

type Query = Box<dyn FnOnce(&mut Writer) + Send>;

/// A happening recorded by a module history does not know: it says, on the writer thread,
/// what store change it is (`None` when it wrote itself directly).
/// The key in an account row's settings JSON that marks it as saved by the person.
pub(crate) const PROFILE_KEY: &str = "profile";

pub(crate) trait OtherHappening: Send + std::fmt::Debug {
    fn change(
        self: Box<Self>,
        writer: &mut Writer,
        at_ms: i64,
    ) -> Result<Option<Change>, EngineError>;
}

/// Told, on the writer thread, whether the record it came with is committed. It must not
/// block: it hands the news to its task.
pub(crate) type Ack = Box<dyn FnOnce(Result<Kept, EngineError>) + Send>;

/// How a committed record stands in history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kept {
    /// Written by this record.
    New,
    /// History already held it (the same message by its stable id): nothing was written, and
    /// whoever showed it the first time has shown it.
    Already,
}

struct Record {
    at_ms: i64,
    happening: Happening,
    ack: Option<Ack>,
}

enum Job {
    Record(Record),
    Query(Query),
}

/// What a transfer left offered or active by a previous run says: the process ended (killed,
/// crashed, the power cut) before the transfer did, and its session died with it.
const UNFINISHED_TRANSFER: &str = "Lyrebird stopped before the transfer finished";

/// Marks the transfers a previous run left unfinished as failed and removes their partial
/// files, so no half-received file stays behind or is ever taken for a complete one. Only our
/// own hidden partial files are removed (see `msrp::names`), never a published file.
fn settle_unfinished_transfers(store: &mut Store) -> Result<(), EngineError> {
    let failed = store.fail_unfinished_transfers(now_ms(), UNFINISHED_TRANSFER)?;
    for transfer in failed {
        let partial = transfer
            .local_path
            .as_deref()
            .map(Path::new)
            .filter(|path| crate::msrp::names::is_partial(path));
        if let Some(partial) = partial {
            match std::fs::remove_file(partial) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => warn!(path = %partial.display(), error = %e, "partial file left"),
            }
        }
        info!(transfer = %transfer.transfer_key, file = %transfer.file_name, "unfinished transfer marked failed");
    }
    Ok(())
}

/// A handle to the history writer thread.
#[derive(Clone)]
pub(crate) struct History {
    jobs: std_mpsc::Sender<Job>,
}

impl History {
    /// Opens (or creates) the database and starts the writer thread. With
    /// `settle_unfinished`, transfers a previous run left unfinished are settled first (see
    /// [`settle_unfinished_transfers`]).
    pub(crate) fn open(path: Option<&Path>, settle_unfinished: bool) -> Result<Self, EngineError> {
        let store = match path {
            Some(path) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|e| {
                        EngineError::History(format!("cannot create {}: {e}", dir.display()))
                    })?;
                }
                let mut store = Store::open(path)?;
                if settle_unfinished {
                    settle_unfinished_transfers(&mut store)?;
                }
                store
            }
            None => Store::open_in_memory()?,
        };
        let (jobs, inbox) = std_mpsc::channel();
        std::thread::Builder::new()
            .name("lyrebird-history".into())
            .spawn(move || {
                Writer {
                    store,
                    accounts: HashMap::new(),
                }
                .run(inbox)
            })
            .map_err(|e| EngineError::History(format!("cannot start the history writer: {e}")))?;
        Ok(Self { jobs })
    }

    fn record(&self, happening: Happening) {
        self.record_acked(happening, None);
    }

    fn record_acked(&self, happening: Happening, ack: Option<Ack>) {
        let record = Record {
            at_ms: now_ms(),
            happening,
            ack,
        };
        if let Err(std_mpsc::SendError(job)) = self.jobs.send(Job::Record(record)) {
            error!("history writer has stopped; an event was not recorded");
            if let Job::Record(Record { ack: Some(ack), .. }) = job {
                ack(Err(EngineError::Stopped));
            }
        }
    }

    async fn query<T: Send + 'static>(
        &self,
        run: impl FnOnce(&mut Writer) -> Result<T, EngineError> + Send + 'static,
    ) -> Result<T, EngineError> {
        let (tx, rx) = oneshot::channel();
        let job: Query = Box::new(move |writer| {
            let _ = tx.send(run(writer));
        });
        self.jobs
            .send(Job::Query(job))
            .map_err(|_| EngineError::Stopped)?;
        rx.await.map_err(|_| EngineError::Stopped)?
    }

    pub(crate) fn account_added(
        &self,
        account: AccountId,
        aor: &str,
        display_name: Option<&str>,
        server_url: &str,
    ) {
        self.record(Happening::AccountAdded {
            account,
            aor: aor.to_owned(),
            display_name: display_name.map(str::to_owned),
            server_url: server_url.to_owned(),
        });
    }

    pub(crate) fn call_started(
        &self,
        account: AccountId,
        key: &str,
        direction: CallDirection,
        peer: &str,
    ) {
        self.record(Happening::CallStarted {
            account,
            key: key.to_owned(),
            direction,
            peer: peer.to_owned(),
        });
    }

    pub(crate) fn call_answered(&self, account: AccountId, key: &str) {
        self.record(Happening::CallAnswered {
            account,
            key: key.to_owned(),
        });
    }

    pub(crate) fn call_ended(&self, account: AccountId, key: &str, reason: CallEndReason) {
        self.record(Happening::CallEnded {
            account,
            key: key.to_owned(),
            reason,
        });
    }

    /// Records an incoming message; `ack`, if any, learns when it is stored (see the module
    /// docs). A message with a `stable_id` already stored from `from` is not stored again.
    pub(crate) fn message_received(
        &self,
        account: AccountId,
        stable_id: &str,
        from: &str,
        content_type: &str,
        body: &str,
        ack: Option<Ack>,
    ) {
        self.record_acked(
            Happening::MessageIn {
                account,
                stable_id: stable_id.to_owned(),
                from: from.to_owned(),
                content_type: content_type.to_owned(),
                body: body.to_owned(),
            },
            ack,
        );
    }

    pub(crate) fn message_sent(
        &self,
        account: AccountId,
        stable_id: &str,
        to: &str,
        content_type: &str,
        body: &str,
    ) {
        self.record(Happening::MessageOut {
            account,
            stable_id: stable_id.to_owned(),
            to: to.to_owned(),
            content_type: content_type.to_owned(),
            body: body.to_owned(),
        });
    }

    pub(crate) fn message_state(
        &self,
        account: AccountId,
        stable_id: &str,
        peer: &str,
        state: DeliveryState,
    ) {
        self.record(Happening::MessageState {
            account,
            stable_id: stable_id.to_owned(),
            peer: peer.to_owned(),
            state,
        });
    }

    pub(crate) fn transfer(&self, account: AccountId, transfer: store::NewTransfer) {
        self.record(Happening::Transfer {
            account,
            transfer: Box::new(transfer),
        });
    }

    /// The newest file transfers, newest first.
    pub(crate) async fn recent_transfers(
        &self,
        limit: u32,
    ) -> Result<Vec<store::Transfer>, EngineError> {
        self.query(move |writer| Ok(writer.store.transfers(limit)?))
            .await
    }

    pub(crate) async fn integrity_problems(&self) -> Result<Vec<String>, EngineError> {
        self.query(|w| Ok(w.store.integrity_problems()?)).await
    }

    pub(crate) async fn recent_calls(&self, limit: u32) -> Result<Vec<CallRecord>, EngineError> {
        self.query(move |w| Ok(w.store.calls(limit)?)).await
    }

    pub(crate) async fn search_messages(
        &self,
        query: &str,
        limit: u32,
    ) -> Result<Vec<SearchHit>, EngineError> {
        let query = query.to_owned();
        self.query(move |w| Ok(w.store.search_messages(&query, limit)?))
            .await
    }

    pub(crate) async fn conversation(
        &self,
        account: AccountId,
        peer: &str,
        limit: u32,
    ) -> Result<Vec<MessageRecord>, EngineError> {
        let peer = peer.to_owned();
        self.query(move |w| {
            let account = w.store_account(account)?;
            let conversation =
                w.store
                    .find_or_create_conversation(account, &peer, ConversationKind::Direct)?;
            Ok(w.store.messages(conversation.id, None, limit)?)
        })
        .await
    }

    /// Records a happening worded by another module (acknowledged like any record).
    pub(crate) fn record_other(&self, happening: Box<dyn OtherHappening>, ack: Option<Ack>) {
        self.record_acked(Happening::Other(happening), ack);
    }

    /// Runs `run` on the writer thread after everything recorded so far is written.
    pub(crate) async fn query_writer<T: Send + 'static>(
        &self,
        run: impl FnOnce(&mut Writer) -> Result<T, EngineError> + Send + 'static,
    ) -> Result<T, EngineError> {
        self.query(run).await
    }

    /// Waits until everything recorded so far is written.
    pub(crate) async fn flush(&self) {
        let _ = self.query(|_| Ok(())).await;
    }
}

pub(crate) struct Writer {
    pub(crate) store: Store,
    /// Engine account ids (valid for one run) → store row ids (stable across runs) and the
    /// account's own address, the sender of what it sends.
    pub(crate) accounts: HashMap<AccountId, (store::AccountId, String)>,
}

impl Writer {
    fn run(mut self, inbox: std_mpsc::Receiver<Job>) {
        while let Ok(first) = inbox.recv() {
            let mut batch = Vec::new();
            let mut job = Some(first);
            while let Some(next) = job.take() {
                match next {
                    Job::Record(record) => batch.push(record),
                    Job::Query(query) => {
                        // A query sees everything recorded before it.
                        self.write(std::mem::take(&mut batch));
                        query(&mut self);
                    }
                }
                job = inbox.try_recv().ok();
            }
            self.write(batch);
        }
        debug!("history writer stopped");
    }

    /// The row of a running account; a saved account that is not running (its password is
    /// not known yet) runs under its row id, so its history is still reachable.
    pub(crate) fn store_account(
        &self,
        account: AccountId,
    ) -> Result<store::AccountId, EngineError> {
        if let Some((id, _)) = self.accounts.get(&account) {
            return Ok(*id);
        }
        let row = store::AccountId(i64::from(account.0));
        let saved = self
            .store
            .accounts()?
            .iter()
            .any(|a| a.id == row && a.settings.get(PROFILE_KEY).is_some());
        if saved {
            Ok(row)
        } else {
            Err(EngineError::UnknownAccount(account.0))
        }
    }

    fn conversation(
        &mut self,
        account: AccountId,
        peer: &str,
    ) -> Result<store::ConversationId, EngineError> {
        let account = self.store_account(account)?;
        Ok(self
            .store
            .find_or_create_conversation(account, peer, ConversationKind::Direct)?
            .id)
    }

    /// Writes a batch in one transaction, then tells the records' acknowledgements how it
    /// went. Accounts are written first, on their own, because every other change names the
    /// account's row id.
    fn write(&mut self, batch: Vec<Record>) {
        if batch.is_empty() {
            return;
        }
        let mut changes = Vec::with_capacity(batch.len());
        // `acks[i]` belongs to `changes[i]`.
        let mut acks: Vec<Option<Ack>> = Vec::with_capacity(batch.len());
        for Record {
            at_ms,
            happening,
            ack,
        } in batch
        {
            match self.change_for(at_ms, happening) {
                Ok(Some(change)) => {
                    changes.push(change);
                    acks.push(ack);
                }
                // Already written on its own.
                Ok(None) => {
                    if let Some(ack) = ack {
                        ack(Ok(Kept::New));
                    }
                }
                Err(e) => {
                    error!(error = %e, "history: event not recorded");
                    if let Some(ack) = ack {
                        ack(Err(e));
                    }
                }
            }
        }
        // One change the store refuses (a peer's odd data, a bug) must not take the rest of
        // the batch with it: it is dropped, with an error, and the others are written. A
        // failure of SQLite itself (disk full, I/O) fails them all.
        while !changes.is_empty() {
            // A duplicate is an outcome, not an error: the message is stored, once.
            let kept: Vec<Kept> = match self.store.apply(&changes) {
                Ok(outcome) => {
                    debug!(
                        changes = changes.len(),
                        duplicates = outcome.duplicates(),
                        "history written"
                    );
                    outcome
                        .outcomes
                        .iter()
                        .map(|o| match o {
                            ChangeOutcome::Duplicate(_) => Kept::Already,
                            _ => Kept::New,
                        })
                        .collect()
                }
                Err(lyrebird_store::StoreError::ChangeFailed { index, source })
                    if index < changes.len() =>
                {
                    error!(error = %source, "history: a change could not be written; writing the rest");
                    changes.remove(index);
                    if let Some(ack) = acks.remove(index) {
                        ack(Err(EngineError::from(*source)));
                    }
                    continue;
                }
                Err(e) => {
                    error!(error = %e, changes = changes.len(), "history batch failed");
                    let failure = EngineError::from(e);
                    for ack in acks.into_iter().flatten() {
                        ack(Err(failure.clone()));
                    }
                    return;
                }
            };
            for (i, ack) in acks.into_iter().enumerate() {
                if let Some(ack) = ack {
                    ack(Ok(kept.get(i).copied().unwrap_or(Kept::New)));
                }
            }
            return;
        }
    }

    fn change_for(
        &mut self,
        at_ms: i64,
        happening: Happening,
    ) -> Result<Option<Change>, EngineError> {
        Ok(Some(match happening {
            Happening::AccountAdded {
                account,
                aor,
                display_name,
                server_url,
            } => {
                let change = Change::UpsertAccount(NewAccount {
                    kind: AccountKind::Sip,
                    address: aor.clone(),
                    display_name,
                    server_url,
                    settings: serde_json::json!({}),
                    created_at_ms: at_ms,
                });
                let outcome = self.store.apply(std::slice::from_ref(&change))?;
                if let Some(ChangeOutcome::Account(id)) = outcome.outcomes.first() {
                    self.accounts.insert(account, (*id, aor));
                }
                return Ok(None);
            }
            Happening::CallStarted {
                account,
                key,
                direction,
                peer,
            } => Change::InsertCall(NewCall {
                account: self.store_account(account)?,
                call_key: key,
                direction: match direction {
                    CallDirection::Incoming => Direction::In,
                    CallDirection::Outgoing => Direction::Out,
                },
                peer_address: peer,
                started_at_ms: at_ms,
            }),
            Happening::CallAnswered { account, key } => Change::UpdateCall {
                call: CallRef::Key {
                    account: self.store_account(account)?,
                    call_key: key,
                },
                answered_at_ms: Some(at_ms),
                ended: None,
            },
            Happening::CallEnded {
                account,
                key,
                reason,
            } => Change::UpdateCall {
                call: CallRef::Key {
                    account: self.store_account(account)?,
                    call_key: key,
                },
                answered_at_ms: None,
                ended: Some(CallEnd { at_ms, reason }),
            },
            Happening::MessageIn {
                account,
                stable_id,
                from,
                content_type,
                body,
            } => Change::InsertMessage(NewMessage {
                conversation: self.conversation(account, &from)?,
                direction: Direction::In,
                sender: from,
                body,
                content_type,
                stable_id,
                sent_at_ms: None,
                received_at_ms: at_ms,
                state: DeliveryState::Delivered,
                corrects_stable_id: None,
            }),
            Happening::MessageOut {
                account,
                stable_id,
                to,
                content_type,
                body,
            } => {
                let sender = self
                    .accounts
                    .get(&account)
                    .map(|(_, aor)| aor.clone())
                    .unwrap_or_default();
                Change::InsertMessage(NewMessage {
                    conversation: self.conversation(account, &to)?,
                    direction: Direction::Out,
                    sender,
                    body,
                    content_type,
                    stable_id,
                    sent_at_ms: Some(at_ms),
                    received_at_ms: at_ms,
                    state: DeliveryState::Queued,
                    corrects_stable_id: None,
                })
            }
            Happening::MessageState {
                account,
                stable_id,
                peer,
                state,
            } => Change::UpdateMessageState {
                message: MessageRef::Stable {
                    conversation: self.conversation(account, &peer)?,
                    stable_id,
                },
                state,
            },
            Happening::Transfer {
                account,
                mut transfer,
            } => {
                transfer.account = self.store_account(account)?;
                Change::UpsertTransfer(*transfer)
            }
            Happening::Other(happening) => return happening.change(self, at_ms),
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc::{Receiver, channel};
    use std::time::Duration;

    use super::*;

    const ACCOUNT: AccountId = AccountId(1);
    const PEER: &str = "sip:bob@example.com";

    /// An acknowledgement that reports into the returned receiver.
    fn ack() -> (Ack, Receiver<Result<Kept, EngineError>>) {
        let (tx, rx) = channel();
        (
            Box::new(move |result| {
                let _ = tx.send(result);
            }),
            rx,
        )
    }

    fn message_in(stable_id: &str, body: &str, ack: Option<Ack>) -> Record {
        Record {
            at_ms: 1_000,
            happening: Happening::MessageIn {
                account: ACCOUNT,
                stable_id: stable_id.into(),
                from: PEER.into(),
                content_type: "text/plain".into(),
                body: body.into(),
            },
            ack,
        }
    }

    fn writer(path: &Path) -> Writer {
        let mut writer = Writer {
            store: Store::open(path).unwrap(),
            accounts: HashMap::new(),
        };
        writer.write(vec![Record {
            at_ms: 0,
            happening: Happening::AccountAdded {
                account: ACCOUNT,
                aor: "sip:alice@example.com".into(),
                display_name: None,
                server_url: "ws://127.0.0.1:8080".into(),
            },
            ack: None,
        }]);
        writer
    }

    /// Bodies found by `word`, read through a connection of their own: what a restarted app
    /// would see.
    fn stored(path: &Path, word: &str) -> Vec<String> {
        Store::open(path)
            .unwrap()
            .search_messages(word, 100)
            .unwrap()
            .into_iter()
            .map(|hit| hit.message.body)
            .collect()
    }

    #[test]
    fn acks_come_after_the_commit_and_a_duplicate_counts_as_stored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.sqlite3");
        let mut writer = writer(&path);
        let (first, first_rx) = ack();
        let (second, second_rx) = ack();
        writer.write(vec![
            message_in("s1", "hello one", Some(first)),
            message_in("s2", "hello two", Some(second)),
        ]);
        assert_eq!(first_rx.try_recv(), Ok(Ok(Kept::New)));
        assert_eq!(second_rx.try_recv(), Ok(Ok(Kept::New)));
        let mut bodies = stored(&path, "hello");
        bodies.sort();
        assert_eq!(bodies, ["hello one", "hello two"]);

        let (again, again_rx) = ack();
        writer.write(vec![message_in("s1", "hello one", Some(again))]);
        assert_eq!(again_rx.try_recv(), Ok(Ok(Kept::Already)));
        assert_eq!(stored(&path, "one"), ["hello one"]);
    }

    #[test]
    fn a_change_the_store_refuses_does_not_take_the_rest_of_the_batch_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.sqlite3");
        let mut writer = writer(&path);
        let (good, good_rx) = ack();
        let (bad, bad_rx) = ack();
        let (later, later_rx) = ack();
        // An empty stable id is refused by the store.
        writer.write(vec![
            message_in("s1", "hello good", Some(good)),
            message_in("", "hello bad", Some(bad)),
            message_in("s3", "hello later", Some(later)),
            message_in("", "hello worse", None),
        ]);
        assert_eq!(good_rx.try_recv(), Ok(Ok(Kept::New)));
        assert_eq!(later_rx.try_recv(), Ok(Ok(Kept::New)));
        assert!(matches!(
            bad_rx.try_recv(),
            Ok(Err(EngineError::History(_)))
        ));
        let mut bodies = stored(&path, "hello");
        bodies.sort();
        assert_eq!(bodies, ["hello good", "hello later"]);
    }

    #[test]
    fn an_ack_hears_when_the_change_cannot_even_be_built() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.sqlite3");
        let mut writer = writer(&path);
        let (ack, rx) = ack();
        let mut record = message_in("s1", "hello stranger", Some(ack));
        if let Happening::MessageIn { account, .. } = &mut record.happening {
            *account = AccountId(99);
        }
        writer.write(vec![record]);
        assert_eq!(rx.try_recv(), Ok(Err(EngineError::UnknownAccount(99))));
    }

    #[test]
    fn message_received_acks_from_the_writer_thread_once_stored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.sqlite3");
        let history = History::open(Some(&path), true).unwrap();
        history.account_added(
            ACCOUNT,
            "sip:alice@example.com",
            None,
            "ws://127.0.0.1:8080",
        );
        let (ack, rx) = ack();
        history.message_received(ACCOUNT, "s1", PEER, "text/plain", "hello there", Some(ack));
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok(Ok(Kept::New)));
        assert_eq!(stored(&path, "there"), ["hello there"]);
    }
}
