//! Batched writes: a slice of [`Change`]s applied in one SQLite transaction.
//!
//! Each change reports a [`ChangeOutcome`]. Some outcomes that look like failures are not
//! errors on purpose, because their cause is a peer, not the engine:
//! - a message or call whose protocol id is already stored is a *duplicate* (MAM replays
//!   messages that live delivery already stored; SIP retransmits INVITEs);
//! - a receipt, correction or hang-up that names a message or call we never stored is
//!   *missing*: the peer is allowed to be confused, and the rest of the batch must still
//!   be written.
//!
//! Everything else (an unknown account or conversation id, an empty key, an impossible
//! timestamp) is caller misuse or a storage failure: the whole batch is rolled back and
//! [`StoreError::ChangeFailed`] says which change was at fault.

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use serde::{Deserialize, Serialize};

use crate::StoreError;
use crate::model::*;
use crate::query::{
    MESSAGE_COLUMNS, is_foreign_key_violation, message_from_row, require_non_empty,
};

/// One write. See the module docs for which outcomes each can have.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Change {
    /// Insert an account or update the one with the same (kind, address); `created_at_ms`
    /// is kept from the first insert. → [`ChangeOutcome::Account`].
    UpsertAccount(NewAccount),
    /// Insert a contact or update the one with the same (account, address).
    /// → [`ChangeOutcome::Contact`].
    UpsertContact(NewContact),
    /// Remove a contact (roster push with `subscription='remove'`, RFC 6121 §2.5).
    /// → [`ChangeOutcome::Removed`] or [`ChangeOutcome::Missing`].
    RemoveContact {
        /// Account.
        account: AccountId,
        /// Contact address.
        address: String,
    },
    /// Store a message unless its `stable_id` is already stored in that conversation, and
    /// bump the conversation's last activity (and unread count for unread incoming
    /// messages). → [`ChangeOutcome::MessageInserted`] or [`ChangeOutcome::Duplicate`].
    InsertMessage(NewMessage),
    /// Move a message's delivery state forward (see [`DeliveryState::may_become`]);
    /// backward moves are ignored. → [`ChangeOutcome::Updated`] / [`ChangeOutcome::Unchanged`]
    /// / [`ChangeOutcome::Missing`].
    UpdateMessageState {
        /// Which message.
        message: MessageRef,
        /// The new state.
        state: DeliveryState,
    },
    /// A correction (XEP-0308): the original's body becomes the correction's, in place (the
    /// full-text index follows), when the original is here and has the same author — the same
    /// direction and, for a message we received, the same sender. Otherwise (an original we
    /// never got, or someone else's message named: a spoof) the correction is stored as a
    /// message of its own, so nothing is lost and nobody rewrites what another wrote.
    /// → [`ChangeOutcome::Updated`] / [`ChangeOutcome::Unchanged`], or as
    /// [`Change::InsertMessage`].
    CorrectMessage {
        /// The message it corrects.
        original: MessageRef,
        /// The correction as received or sent.
        correction: NewMessage,
    },
    /// Delete a message (retraction, XEP-0424, or the person deleting it).
    /// → [`ChangeOutcome::Removed`] / [`ChangeOutcome::Missing`].
    DeleteMessage(MessageRef),
    /// The person has seen everything in a conversation: unread count to zero and its
    /// incoming messages to `Read`. → [`ChangeOutcome::Updated`].
    MarkConversationRead(ConversationId),
    /// Record a new call. → [`ChangeOutcome::CallInserted`] or [`ChangeOutcome::Duplicate`].
    InsertCall(NewCall),
    /// Record that a call was answered and/or ended. A time already recorded is kept
    /// (the first 200 OK / BYE wins). → [`ChangeOutcome::Updated`] / [`ChangeOutcome::Missing`].
    UpdateCall {
        /// Which call.
        call: CallRef,
        /// When it was answered.
        answered_at_ms: Option<i64>,
        /// When and why it ended.
        ended: Option<CallEnd>,
    },
    /// Insert a transfer or update the one with the same (account, transfer_key).
    /// → [`ChangeOutcome::Transfer`].
    UpsertTransfer(NewTransfer),
    /// Record how far an archive's catch-up has got (replacing what was recorded for the
    /// same account and archive). Put it in the batch that stores the page's messages, so
    /// the point never gets ahead of what is stored. → [`ChangeOutcome::Updated`].
    SetArchiveSync(ArchiveSync),
    /// Record the stream-management session an account is on, replacing what was recorded
    /// for it; put it after the messages that session brought, in the same or a later batch.
    /// → [`ChangeOutcome::Updated`].
    SetStreamResumption(StreamResumption),
    /// Forget an account's stream-management session (it was closed, or cannot be resumed).
    /// → [`ChangeOutcome::Removed`], or [`ChangeOutcome::Missing`] when none was recorded.
    ClearStreamResumption {
        /// Account.
        account: AccountId,
    },
}

/// What one [`Change`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChangeOutcome {
    /// The account's row id.
    Account(AccountId),
    /// The contact's row id.
    Contact(ContactId),
    /// A new message was stored with this id.
    MessageInserted(MessageId),
    /// A new call was stored with this id.
    CallInserted(CallId),
    /// The transfer's row id.
    Transfer(TransferId),
    /// Not stored: a message or call with the same protocol id exists, with this row id.
    Duplicate(DuplicateOf),
    /// The named row was changed.
    Updated,
    /// The named row exists and already was in (or past) the requested state.
    Unchanged,
    /// The named row was deleted.
    Removed,
    /// The named row does not exist; nothing was written for this change.
    Missing,
}

/// The existing row a duplicate insert collided with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DuplicateOf {
    /// An existing message.
    Message(MessageId),
    /// An existing call.
    Call(CallId),
}

/// The result of [`crate::Store::apply`]: one outcome per change, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchOutcome {
    /// `outcomes[i]` is what `changes[i]` did.
    pub outcomes: Vec<ChangeOutcome>,
}

impl BatchOutcome {
    /// How many inserts were skipped as duplicates.
    pub fn duplicates(&self) -> usize {
        self.outcomes
            .iter()
            .filter(|outcome| matches!(outcome, ChangeOutcome::Duplicate(_)))
            .count()
    }

    /// Ids of the messages newly stored by this batch, in order.
    pub fn inserted_messages(&self) -> Vec<MessageId> {
        self.outcomes
            .iter()
            .filter_map(|outcome| match outcome {
                ChangeOutcome::MessageInserted(id) => Some(*id),
                _ => None,
            })
            .collect()
    }
}

pub(crate) fn apply(conn: &mut Connection, changes: &[Change]) -> Result<BatchOutcome, StoreError> {
    // IMMEDIATE: take the write lock up front, so a concurrent writer makes us wait on the
    // busy timeout here instead of failing with SQLITE_BUSY halfway through the batch.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut outcomes = Vec::with_capacity(changes.len());
    for (index, change) in changes.iter().enumerate() {
        let outcome = apply_one(&tx, change).map_err(|source| StoreError::ChangeFailed {
            index,
            source: Box::new(source),
        })?;
        outcomes.push(outcome);
    }
    tx.commit()?;
    tracing::debug!(changes = changes.len(), "store batch committed");
    Ok(BatchOutcome { outcomes })
}

/// Maps a foreign-key violation to [`StoreError::NotFound`] naming what was referenced.
fn referencing(what: impl std::fmt::Display) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |err| {
        if is_foreign_key_violation(&err) {
            StoreError::NotFound(what.to_string())
        } else {
            StoreError::Sqlite(err)
        }
    }
}

fn to_i64(value: u64, field: &str) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::Invalid(format!("{field} is too large")))
}

fn apply_one(tx: &Transaction<'_>, change: &Change) -> Result<ChangeOutcome, StoreError> {
    match change {
        Change::UpsertAccount(account) => upsert_account(tx, account),
        Change::UpsertContact(contact) => upsert_contact(tx, contact),
        Change::RemoveContact { account, address } => {
            let removed = tx
                .prepare_cached("DELETE FROM contacts WHERE account_id = ?1 AND address = ?2")?
                .execute(params![account, address])?;
            Ok(if removed > 0 {
                ChangeOutcome::Removed
            } else {
                ChangeOutcome::Missing
            })
        }
        Change::InsertMessage(message) => insert_message(tx, message),
        Change::UpdateMessageState { message, state } => {
            let Some(stored) = find_message(tx, message)? else {
                return Ok(ChangeOutcome::Missing);
            };
            if !stored.state.may_become(*state) {
                return Ok(ChangeOutcome::Unchanged);
            }
            tx.prepare_cached("UPDATE messages SET state = ?2 WHERE id = ?1")?
                .execute(params![stored.id, state])?;
            if stored.direction == Direction::In && *state == DeliveryState::Read {
                decrement_unread(tx, stored.conversation)?;
            }
            Ok(ChangeOutcome::Updated)
        }
        Change::CorrectMessage {
            original,
            correction,
        } => {
            let same_author = |stored: &Message| {
                stored.direction == correction.direction
                    && (correction.direction == Direction::Out
                        || stored.sender == correction.sender)
            };
            match find_message(tx, original)? {
                Some(stored) if same_author(&stored) => {
                    if stored.body == correction.body {
                        return Ok(ChangeOutcome::Unchanged);
                    }
                    tx.prepare_cached("UPDATE messages SET body = ?2 WHERE id = ?1")?
                        .execute(params![stored.id, correction.body])?;
                    Ok(ChangeOutcome::Updated)
                }
                _ => insert_message(tx, correction),
            }
        }
        Change::DeleteMessage(message) => {
            let Some(stored) = find_message(tx, message)? else {
                return Ok(ChangeOutcome::Missing);
            };
            tx.prepare_cached("DELETE FROM messages WHERE id = ?1")?
                .execute([stored.id])?;
            if counts_as_unread(stored.direction, stored.state) {
                decrement_unread(tx, stored.conversation)?;
            }
            Ok(ChangeOutcome::Removed)
        }
        Change::MarkConversationRead(conversation) => {
            let found = tx
                .prepare_cached("UPDATE conversations SET unread_count = 0 WHERE id = ?1")?
                .execute([conversation])?;
            if found == 0 {
                return Err(StoreError::NotFound(conversation.to_string()));
            }
            tx.prepare_cached(
                "UPDATE messages SET state = 'read'
                 WHERE conversation_id = ?1 AND direction = 'in' AND state <> 'read'",
            )?
            .execute([conversation])?;
            Ok(ChangeOutcome::Updated)
        }
        Change::InsertCall(call) => insert_call(tx, call),
        Change::UpdateCall {
            call,
            answered_at_ms,
            ended,
        } => update_call(tx, call, *answered_at_ms, *ended),
        Change::UpsertTransfer(transfer) => upsert_transfer(tx, transfer),
        Change::SetArchiveSync(sync) => set_archive_sync(tx, sync),
        Change::SetStreamResumption(resumption) => set_stream_resumption(tx, resumption),
        Change::ClearStreamResumption { account } => {
            let removed = tx
                .prepare_cached("DELETE FROM stream_resumption WHERE account_id = ?1")?
                .execute([account])?;
            Ok(if removed > 0 {
                ChangeOutcome::Removed
            } else {
                ChangeOutcome::Missing
            })
        }
    }
}

fn upsert_account(tx: &Transaction<'_>, account: &NewAccount) -> Result<ChangeOutcome, StoreError> {
    require_non_empty(&account.address, "account address")?;
    if !account.settings.is_object() {
        return Err(StoreError::Invalid(
            "account settings must be a JSON object".into(),
        ));
    }
    let settings = account.settings.to_string();
    let id = tx.prepare_cached("INSERT INTO accounts (kind, address, display_name, server_url, settings_json, created_at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (kind, address) DO UPDATE SET
             display_name = excluded.display_name,
             server_url = excluded.server_url,
             settings_json = json_patch(accounts.settings_json, excluded.settings_json)
         RETURNING id")?.query_row(
        params![
            account.kind,
            account.address,
            account.display_name,
            account.server_url,
            settings,
            account.created_at_ms
        ],
        |row| row.get(0),
    )?;
    Ok(ChangeOutcome::Account(id))
}

fn upsert_contact(tx: &Transaction<'_>, contact: &NewContact) -> Result<ChangeOutcome, StoreError> {
    require_non_empty(&contact.address, "contact address")?;
    let groups = serde_json::Value::from(contact.groups.clone()).to_string();
    let id = tx
        .prepare_cached(
            "INSERT INTO contacts (account_id, address, display_name, groups_json, subscription)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (account_id, address) DO UPDATE SET
                 display_name = excluded.display_name,
                 groups_json = excluded.groups_json,
                 subscription = excluded.subscription
             RETURNING id",
        )?
        .query_row(
            params![
                contact.account,
                contact.address,
                contact.display_name,
                groups,
                contact.subscription
            ],
            |row| row.get(0),
        )
        .map_err(referencing(contact.account))?;
    Ok(ChangeOutcome::Contact(id))
}

fn counts_as_unread(direction: Direction, state: DeliveryState) -> bool {
    direction == Direction::In && state != DeliveryState::Read
}

fn decrement_unread(tx: &Transaction<'_>, conversation: ConversationId) -> Result<(), StoreError> {
    tx.prepare_cached(
        "UPDATE conversations SET unread_count = max(unread_count - 1, 0) WHERE id = ?1",
    )?
    .execute([conversation])?;
    Ok(())
}

fn insert_message(tx: &Transaction<'_>, message: &NewMessage) -> Result<ChangeOutcome, StoreError> {
    require_non_empty(&message.stable_id, "message stable_id")?;
    let inserted: Option<MessageId> = tx
        .prepare_cached(
            "INSERT INTO messages (conversation_id, direction, sender, body, content_type,
                                   stable_id, sent_at_ms, received_at_ms, state, corrects_stable_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
             ON CONFLICT (conversation_id, stable_id) DO NOTHING
             RETURNING id",
        )?
        .query_row(
            params![
                message.conversation,
                message.direction,
                message.sender,
                message.body,
                message.content_type,
                message.stable_id,
                message.sent_at_ms,
                message.received_at_ms,
                message.state,
                message.corrects_stable_id
            ],
            |row| row.get(0),
        )
        .optional()
        .map_err(referencing(message.conversation))?;
    let Some(id) = inserted else {
        let existing = tx
            .prepare_cached(
                "SELECT id FROM messages WHERE conversation_id = ?1 AND stable_id = ?2",
            )?
            .query_row(params![message.conversation, message.stable_id], |row| {
                row.get(0)
            })?;
        return Ok(ChangeOutcome::Duplicate(DuplicateOf::Message(existing)));
    };
    let sort_at = message.sent_at_ms.unwrap_or(message.received_at_ms);
    let unread_increment = i64::from(counts_as_unread(message.direction, message.state));
    tx.prepare_cached(
        "UPDATE conversations SET
             last_activity_at_ms = max(coalesce(last_activity_at_ms, ?2), ?2),
             unread_count = unread_count + ?3
         WHERE id = ?1",
    )?
    .execute(params![message.conversation, sort_at, unread_increment])?;
    Ok(ChangeOutcome::MessageInserted(id))
}

fn find_message(tx: &Transaction<'_>, message: &MessageRef) -> Result<Option<Message>, StoreError> {
    let found = match message {
        MessageRef::Id(id) => tx
            .prepare_cached(&format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages m WHERE m.id = ?1"
            ))?
            .query_row([id], message_from_row)
            .optional()?,
        MessageRef::Stable {
            conversation,
            stable_id,
        } => tx
            .prepare_cached(&format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages m
                     WHERE m.conversation_id = ?1 AND m.stable_id = ?2"
            ))?
            .query_row(params![conversation, stable_id], message_from_row)
            .optional()?,
    };
    Ok(found)
}

fn insert_call(tx: &Transaction<'_>, call: &NewCall) -> Result<ChangeOutcome, StoreError> {
    require_non_empty(&call.call_key, "call key")?;
    let inserted: Option<CallId> = tx
        .prepare_cached(
            "INSERT INTO calls (account_id, call_key, direction, peer_address, started_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (account_id, call_key) DO NOTHING
             RETURNING id",
        )?
        .query_row(
            params![
                call.account,
                call.call_key,
                call.direction,
                call.peer_address,
                call.started_at_ms
            ],
            |row| row.get(0),
        )
        .optional()
        .map_err(referencing(call.account))?;
    match inserted {
        Some(id) => Ok(ChangeOutcome::CallInserted(id)),
        None => {
            let existing = tx
                .prepare_cached("SELECT id FROM calls WHERE account_id = ?1 AND call_key = ?2")?
                .query_row(params![call.account, call.call_key], |row| row.get(0))?;
            Ok(ChangeOutcome::Duplicate(DuplicateOf::Call(existing)))
        }
    }
}

fn update_call(
    tx: &Transaction<'_>,
    call: &CallRef,
    answered_at_ms: Option<i64>,
    ended: Option<CallEnd>,
) -> Result<ChangeOutcome, StoreError> {
    let row: Option<(CallId, i64, Option<i64>, Option<i64>)> = match call {
        CallRef::Id(id) => tx
            .prepare_cached(
                "SELECT id, started_at_ms, answered_at_ms, ended_at_ms FROM calls WHERE id = ?1",
            )?
            .query_row([id], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
            })
            .optional()?,
        CallRef::Key { account, call_key } => tx
            .prepare_cached(
                "SELECT id, started_at_ms, answered_at_ms, ended_at_ms FROM calls
                 WHERE account_id = ?1 AND call_key = ?2",
            )?
            .query_row(params![account, call_key], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
            })
            .optional()?,
    };
    let Some((id, started, stored_answer, stored_end)) = row else {
        return Ok(ChangeOutcome::Missing);
    };
    // The first answer and the first end win: a retransmitted 200 OK or a BYE racing a
    // CANCEL must not rewrite history.
    let answered = stored_answer.or(if stored_end.is_none() {
        answered_at_ms
    } else {
        None
    });
    let end = match (stored_end, ended) {
        (Some(_), _) | (None, None) => None,
        (None, Some(end)) => Some(end),
    };
    if answered == stored_answer && end.is_none() {
        return Ok(ChangeOutcome::Unchanged);
    }
    if let Some(at) = answered
        && at < started
    {
        return Err(StoreError::Invalid(
            "call answered before it started".into(),
        ));
    }
    if let Some(end) = end
        && end.at_ms < answered.unwrap_or(started)
    {
        return Err(StoreError::Invalid(
            "call ended before it started or was answered".into(),
        ));
    }
    tx.prepare_cached(
        "UPDATE calls SET answered_at_ms = ?2,
                          ended_at_ms = coalesce(?3, ended_at_ms),
                          end_reason = coalesce(?4, end_reason)
         WHERE id = ?1",
    )?
    .execute(params![
        id,
        answered,
        end.map(|end| end.at_ms),
        end.map(|end| end.reason)
    ])?;
    Ok(ChangeOutcome::Updated)
}

fn set_stream_resumption(
    tx: &Transaction<'_>,
    resumption: &StreamResumption,
) -> Result<ChangeOutcome, StoreError> {
    require_non_empty(&resumption.resume_id, "stream resumption id")?;
    require_non_empty(&resumption.jid, "stream resumption JID")?;
    let handled = i64::try_from(resumption.handled)
        .map_err(|_| StoreError::Invalid("stream resumption count out of range".into()))?;
    let written = tx
        .prepare_cached(
            "INSERT INTO stream_resumption (account_id, resume_id, jid, handled, updated_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (account_id) DO UPDATE SET
                 resume_id = excluded.resume_id,
                 jid = excluded.jid,
                 handled = excluded.handled,
                 updated_at_ms = excluded.updated_at_ms",
        )?
        .execute(params![
            resumption.account,
            resumption.resume_id,
            resumption.jid,
            handled,
            resumption.updated_at_ms
        ]);
    row_of_account(written, resumption.account)
}

/// The outcome of writing a row that names `account`: an account that is not there is the
/// caller's mistake ([`StoreError::NotFound`]), not a failure of SQLite.
fn row_of_account(
    written: rusqlite::Result<usize>,
    account: AccountId,
) -> Result<ChangeOutcome, StoreError> {
    match written {
        Ok(_) => Ok(ChangeOutcome::Updated),
        Err(e) if is_foreign_key_violation(&e) => Err(StoreError::NotFound(account.to_string())),
        Err(e) => Err(e.into()),
    }
}

fn set_archive_sync(tx: &Transaction<'_>, sync: &ArchiveSync) -> Result<ChangeOutcome, StoreError> {
    require_non_empty(&sync.last_id, "archive sync id")?;
    let written = tx
        .prepare_cached(
            "INSERT INTO archive_sync (account_id, archive, last_id, last_at_ms, complete,
                                       updated_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (account_id, archive) DO UPDATE SET
                 last_id = excluded.last_id,
                 last_at_ms = coalesce(excluded.last_at_ms, archive_sync.last_at_ms),
                 complete = excluded.complete,
                 updated_at_ms = excluded.updated_at_ms",
        )?
        .execute(params![
            sync.account,
            sync.archive,
            sync.last_id,
            sync.last_at_ms,
            sync.complete,
            sync.updated_at_ms
        ]);
    row_of_account(written, sync.account)
}

fn upsert_transfer(
    tx: &Transaction<'_>,
    transfer: &NewTransfer,
) -> Result<ChangeOutcome, StoreError> {
    require_non_empty(&transfer.transfer_key, "transfer key")?;
    if let Some(hash) = &transfer.sha256
        && (hash.len() != 64
            || !hash
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
    {
        return Err(StoreError::Invalid(
            "sha256 must be 64 lowercase hex digits".into(),
        ));
    }
    let size = transfer
        .size_bytes
        .map(|size| to_i64(size, "size_bytes"))
        .transpose()?;
    let confirmed = to_i64(transfer.bytes_confirmed, "bytes_confirmed")?;
    let id = tx
        .prepare_cached(
            "INSERT INTO transfers (account_id, transfer_key, direction, peer_address, file_name,
                                    size_bytes, mime_type, sha256, local_path, state,
                                    bytes_confirmed, started_at_ms, ended_at_ms, error)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
             ON CONFLICT (account_id, transfer_key) DO UPDATE SET
                 peer_address = excluded.peer_address,
                 file_name = excluded.file_name,
                 size_bytes = excluded.size_bytes,
                 mime_type = excluded.mime_type,
                 sha256 = excluded.sha256,
                 local_path = excluded.local_path,
                 state = excluded.state,
                 bytes_confirmed = excluded.bytes_confirmed,
                 ended_at_ms = excluded.ended_at_ms,
                 error = excluded.error
             RETURNING id",
        )?
        .query_row(
            params![
                transfer.account,
                transfer.transfer_key,
                transfer.direction,
                transfer.peer_address,
                transfer.file_name,
                size,
                transfer.mime_type,
                transfer.sha256,
                transfer.local_path,
                transfer.state,
                confirmed,
                transfer.started_at_ms,
                transfer.ended_at_ms,
                transfer.error
            ],
            |row| row.get(0),
        )
        .map_err(referencing(transfer.account))?;
    Ok(ChangeOutcome::Transfer(id))
}
