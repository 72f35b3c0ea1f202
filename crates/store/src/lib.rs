//! Lyrebird's local history: accounts, contacts, conversations, messages, calls and file
//! transfers in one SQLite file, with full-text search over messages.
//!
//! # How it is used
//!
//! The engine owns one [`Store`] on a dedicated thread (or via `spawn_blocking`; `Store` is
//! `Send`, not `Sync`). Protocol cores emit changes; the engine collects those it got in one
//! turn of its loop into a slice of [`Change`]s and calls [`Store::apply`], which writes
//! them in **one transaction**. Batching is what makes SQLite fast here (one fsync per
//! batch instead of per message) and keeps related rows consistent: a message and the
//! conversation's unread counter are updated together or not at all. Reads
//! ([`Store::messages`], [`Store::search_messages`], ...) return plain serde-able structs.
//!
//! # Durability settings, and why
//!
//! - `journal_mode=WAL`: readers never block the writer, and a commit is an append to the
//!   `-wal` file. If the app is killed, committed batches survive.
//! - `synchronous=NORMAL`: in WAL mode this cannot corrupt the database; at worst a power
//!   cut loses the last commits before a checkpoint. Messages are also kept by the server
//!   (MAM), so this trade of a little durability for far fewer fsyncs is the usual one.
//! - `foreign_keys=ON` (SQLite leaves it off per connection by default), and a 5 s
//!   `busy_timeout` so a second process (the CLI, a backup tool) waits instead of failing.
//!
//! # Schema (version 1, see `schema.rs` for the SQL)
//!
//! | table           | key                         | notes                                        |
//! |-----------------|-----------------------------|----------------------------------------------|
//! | `accounts`      | (kind, address)             | settings as a JSON object; **no password**   |
//! | `contacts`      | (account, address)          | roster groups JSON array, subscription       |
//! | `conversations` | (account, peer_address)     | direct or room; last activity, unread count  |
//! | `messages`      | (conversation, stable_id)   | de-duplicated by protocol id; FTS5 indexed   |
//! | `messages_fts`  | rowid = messages.id         | external-content FTS5, kept by triggers      |
//! | `calls`         | (account, call_key)         | derived `duration_ms` and `missed`           |
//! | `transfers`     | (account, transfer_key)     | size, mime, sha256, bytes confirmed, state   |
//!
//! Passwords and other secrets are never stored: this file is the kind of thing people back
//! up, sync and attach to bug reports. Credentials live in the OS keyring or in memory. A
//! test asserts that no column name contains "password" or "secret".
//!
//! All timestamps are `i64` milliseconds since the UNIX epoch supplied by the caller; the
//! store reads no clock. The schema version is `PRAGMA user_version`; a file from a newer
//! build is refused with [`StoreError::NewerSchema`].
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
#![warn(missing_docs)]

mod batch;
mod error;
mod model;
mod query;
mod schema;

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

pub use batch::{BatchOutcome, Change, ChangeOutcome, DuplicateOf};
pub use error::StoreError;
pub use model::*;
pub use query::fts_query_from_user_input;
pub use schema::supported_version;

/// How long a statement waits for another connection's lock before failing with `SQLITE_BUSY`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// An open history database. See the crate docs.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
}

impl Store {
    /// Opens (creating if needed) the database at `path` and migrates it to the current
    /// schema. Fails with [`StoreError::NewerSchema`] if a newer build wrote it.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
                | OpenFlags::SQLITE_OPEN_URI,
        )?;
        Store::init(conn)
    }

    /// An empty database that lives in memory (tests, `--no-history`).
    pub fn open_in_memory() -> Result<Store, StoreError> {
        Store::init(Connection::open_in_memory()?)
    }

    fn init(mut conn: Connection) -> Result<Store, StoreError> {
        conn.busy_timeout(BUSY_TIMEOUT)?;
        // Refuse foreign or newer files before changing anything about them (WAL mode is
        // persistent in the file, so even the journal mode pragma would be a write).
        schema::check_compatible(&conn)?;
        let journal_mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
        if !journal_mode.eq_ignore_ascii_case("wal") && !journal_mode.eq_ignore_ascii_case("memory")
        {
            tracing::warn!(
                journal_mode,
                "SQLite refused WAL mode; writes will be slower"
            );
        }
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", true)?;
        schema::migrate(&mut conn)?;
        Ok(Store { conn })
    }

    /// The schema version of the open file (equals [`supported_version`] after open).
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        schema::user_version(&self.conn)
    }

    /// The journal mode SQLite reports (`"wal"` for files, `"memory"` in memory).
    pub fn journal_mode(&self) -> Result<String, StoreError> {
        Ok(self
            .conn
            .pragma_query_value(None, "journal_mode", |row| row.get(0))?)
    }

    /// SQLite's full consistency check of the file (`PRAGMA integrity_check`): the problems it
    /// found, none when the file is sound. Reads every page, so it is for a person or a test
    /// asking, not for every start.
    pub fn integrity_problems(&self) -> Result<Vec<String>, StoreError> {
        let mut statement = self.conn.prepare("PRAGMA integrity_check")?;
        let rows = statement.query_map([], |row| row.get::<_, String>(0))?;
        let mut problems = Vec::new();
        for row in rows {
            let row = row?;
            if row != "ok" {
                problems.push(row);
            }
        }
        Ok(problems)
    }

    /// Applies `changes` in one transaction: either all of them are written or, if any
    /// fails, none is ([`StoreError::ChangeFailed`] names the failing index).
    pub fn apply(&mut self, changes: &[Change]) -> Result<BatchOutcome, StoreError> {
        batch::apply(&mut self.conn, changes)
    }

    /// The conversation with `peer` on `account`, created if it does not exist yet.
    /// Fails with [`StoreError::Invalid`] if it exists with the other `kind` (a JID is a
    /// room or a person, not both) and [`StoreError::NotFound`] for an unknown account.
    pub fn find_or_create_conversation(
        &mut self,
        account: AccountId,
        peer: &str,
        kind: ConversationKind,
    ) -> Result<Conversation, StoreError> {
        query::find_or_create_conversation(&mut self.conn, account, peer, kind)
    }

    /// All accounts, oldest first.
    pub fn accounts(&self) -> Result<Vec<Account>, StoreError> {
        query::accounts(&self.conn)
    }

    /// The contacts of `account`, by address.
    pub fn contacts(&self, account: AccountId) -> Result<Vec<Contact>, StoreError> {
        query::contacts(&self.conn, account)
    }

    /// Conversations of `account`, most recently active first (never-active ones last).
    pub fn conversations(&self, account: AccountId) -> Result<Vec<Conversation>, StoreError> {
        query::conversations(&self.conn, account)
    }

    /// One conversation by id.
    pub fn conversation(&self, id: ConversationId) -> Result<Option<Conversation>, StoreError> {
        query::conversation(&self.conn, id)
    }

    /// Up to `limit` messages of `conversation` older than `before` (or the newest, if
    /// `None`), returned oldest first so they can be shown as they are. Pass the first
    /// returned message's [`Message::cursor`] to get the page before it.
    pub fn messages(
        &self,
        conversation: ConversationId,
        before: Option<MessageCursor>,
        limit: u32,
    ) -> Result<Vec<Message>, StoreError> {
        query::messages(&self.conn, conversation, before, limit)
    }

    /// One message by id.
    pub fn message(&self, id: MessageId) -> Result<Option<Message>, StoreError> {
        query::message(&self.conn, id)
    }

    /// Full-text search over all message bodies. `query` is what the person typed: every
    /// word must occur (as a word prefix, accents and case ignored). FTS5 syntax in it
    /// (quotes, `OR`, `NEAR(`, `*`, `:`) is treated as plain text, never as operators.
    /// Best matches first.
    pub fn search_messages(&self, query: &str, limit: u32) -> Result<Vec<SearchHit>, StoreError> {
        query::search_messages(&self.conn, query, limit)
    }

    /// The newest `limit` calls of all accounts, newest first.
    pub fn calls(&self, limit: u32) -> Result<Vec<CallRecord>, StoreError> {
        query::calls(&self.conn, limit)
    }

    /// How far the catch-up of `archive` (`""`: the account's own; else a room's bare JID)
    /// has got, if it ever stored a page.
    pub fn archive_sync(
        &self,
        account: AccountId,
        archive: &str,
    ) -> Result<Option<ArchiveSync>, StoreError> {
        query::archive_sync(&self.conn, account, archive)
    }

    /// The stream-management session `account` was last on, if it was not closed.
    pub fn stream_resumption(
        &self,
        account: AccountId,
    ) -> Result<Option<StreamResumption>, StoreError> {
        query::stream_resumption(&self.conn, account)
    }

    /// The newest `limit` transfers of all accounts, newest first.
    pub fn transfers(&self, limit: u32) -> Result<Vec<Transfer>, StoreError> {
        query::transfers(&self.conn, limit)
    }

    /// Marks every transfer still offered or active as failed with `error` at `now_ms` and
    /// returns them as they are now: at start, these are what a previous run left when it was
    /// killed or crashed, and no session of theirs survives it.
    pub fn fail_unfinished_transfers(
        &mut self,
        now_ms: i64,
        error: &str,
    ) -> Result<Vec<Transfer>, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let ids: Vec<i64> = tx
            .prepare("SELECT id FROM transfers WHERE state IN ('offered', 'active')")?
            .query_map([], |row| row.get(0))?
            .collect::<Result<_, _>>()?;
        tx.execute(
            "UPDATE transfers SET state = 'failed', ended_at_ms = ?1, error = ?2
             WHERE state IN ('offered', 'active')",
            rusqlite::params![now_ms, error],
        )?;
        let failed = query::transfers_by_id(&tx, &ids)?;
        tx.commit()?;
        Ok(failed)
    }
}
