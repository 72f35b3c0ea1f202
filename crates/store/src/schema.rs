//! Versioned migrations.
//!
//! `MIGRATIONS[i]` takes the database from schema version `i` to `i + 1`. The version lives
//! in SQLite's header field `PRAGMA user_version` (0 in a fresh file), so no bookkeeping
//! table is needed and the version changes atomically with the schema: each step runs in
//! its own `BEGIN IMMEDIATE` transaction together with its `user_version` bump, and a crash
//! mid-step leaves the previous version intact. Steps are append-only: once released, a
//! step's SQL never changes; fixes go into a new step.
//!
//! A file whose version is higher than `MIGRATIONS.len()` was written by a newer build.
//! We refuse it ([`StoreError::NewerSchema`]) rather than guess: an older build writing
//! rows without the newer columns' invariants is how silent corruption happens.
//!
//! Tables are `STRICT` (SQLite ≥ 3.37) so a wrong type is an error, not a silent
//! coercion; closed sets of words have `CHECK` constraints mirroring the Rust enums.

use rusqlite::{Connection, TransactionBehavior};

use crate::StoreError;

/// `PRAGMA application_id` for Lyrebird files: ASCII "LYRB". Lets `file(1)` and this
/// crate tell our database from any other SQLite file the person points us at.
pub(crate) const APPLICATION_ID: i32 = 0x4C59_5242;

/// Schema steps, applied in order.
pub(crate) const MIGRATIONS: &[&str] = &[MIGRATION_1, MIGRATION_2, MIGRATION_3];

/// The schema version this build writes.
pub fn supported_version() -> i64 {
    // The list is a compile-time constant of a handful of entries.
    MIGRATIONS.len() as i64
}

const MIGRATION_1: &str = r#"
-- One row per configured account. No password/secret column, on purpose: credentials live
-- in the OS keyring (or only in memory) so that copying or backing up this file leaks nothing.
CREATE TABLE accounts (
    id            INTEGER PRIMARY KEY,
    kind          TEXT    NOT NULL CHECK (kind IN ('sip', 'xmpp')),
    address       TEXT    NOT NULL CHECK (length(address) > 0),
    display_name  TEXT,
    server_url    TEXT    NOT NULL,
    settings_json TEXT    NOT NULL DEFAULT '{}'
                          CHECK (json_valid(settings_json) AND json_type(settings_json) = 'object'),
    created_at_ms INTEGER NOT NULL,
    UNIQUE (kind, address)
) STRICT;

-- Roster / address book. groups_json is a JSON array of strings (RFC 6121 §2.1.2.4 groups).
CREATE TABLE contacts (
    id           INTEGER PRIMARY KEY,
    account_id   INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    address      TEXT    NOT NULL CHECK (length(address) > 0),
    display_name TEXT,
    groups_json  TEXT    NOT NULL DEFAULT '[]'
                         CHECK (json_valid(groups_json) AND json_type(groups_json) = 'array'),
    subscription TEXT    NOT NULL CHECK (subscription IN ('none', 'to', 'from', 'both')),
    UNIQUE (account_id, address)
) STRICT;

-- One row per peer or room per account. last_activity_at_ms and unread_count are
-- denormalised counters maintained by the same transaction that inserts messages, so the
-- conversation list needs no aggregate over messages.
CREATE TABLE conversations (
    id                  INTEGER PRIMARY KEY,
    account_id          INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    peer_address        TEXT    NOT NULL CHECK (length(peer_address) > 0),
    kind                TEXT    NOT NULL CHECK (kind IN ('direct', 'room')),
    title               TEXT,
    last_activity_at_ms INTEGER,
    unread_count        INTEGER NOT NULL DEFAULT 0 CHECK (unread_count >= 0),
    UNIQUE (account_id, peer_address)
) STRICT;
CREATE INDEX conversations_by_activity
    ON conversations (account_id, last_activity_at_ms DESC);

-- Messages. (conversation_id, stable_id) is unique: that is the de-duplication key for
-- MAM replays and retransmissions. sort_at_ms orders history by the sender's timestamp
-- when known, else by local receipt, and is indexed for keyset pagination.
CREATE TABLE messages (
    id                 INTEGER PRIMARY KEY,
    conversation_id    INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    direction          TEXT    NOT NULL CHECK (direction IN ('in', 'out')),
    sender             TEXT    NOT NULL,
    body               TEXT    NOT NULL,
    content_type       TEXT    NOT NULL,
    stable_id          TEXT    NOT NULL CHECK (length(stable_id) > 0),
    sent_at_ms         INTEGER,
    received_at_ms     INTEGER NOT NULL,
    sort_at_ms         INTEGER NOT NULL GENERATED ALWAYS AS (coalesce(sent_at_ms, received_at_ms)) VIRTUAL,
    state              TEXT    NOT NULL
                               CHECK (state IN ('queued', 'sent', 'delivered', 'read', 'failed')),
    corrects_stable_id TEXT,
    UNIQUE (conversation_id, stable_id)
) STRICT;
CREATE INDEX messages_by_time ON messages (conversation_id, sort_at_ms, id);
-- Outgoing messages still waiting for the network, resent on reconnect.
CREATE INDEX messages_queued ON messages (conversation_id) WHERE state = 'queued';

-- Full-text index over message bodies. External content (content='messages') stores the
-- text once, in messages; the triggers below keep the index in step on every insert,
-- body update and delete (SQLite FTS5 docs §4.4.3). remove_diacritics 2 folds accents so
-- "cafe" finds "café".
CREATE VIRTUAL TABLE messages_fts USING fts5(
    body,
    content = 'messages',
    content_rowid = 'id',
    tokenize = 'unicode61 remove_diacritics 2'
);
CREATE TRIGGER messages_fts_after_insert AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts (rowid, body) VALUES (new.id, new.body);
END;
CREATE TRIGGER messages_fts_after_delete AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, body) VALUES ('delete', old.id, old.body);
END;
CREATE TRIGGER messages_fts_after_update AFTER UPDATE OF body ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, body) VALUES ('delete', old.id, old.body);
    INSERT INTO messages_fts (rowid, body) VALUES (new.id, new.body);
END;

-- Call history. duration_ms and missed are derived, so they can never disagree with the
-- timestamps. missed = an incoming call that was never answered on this device.
CREATE TABLE calls (
    id             INTEGER PRIMARY KEY,
    account_id     INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    call_key       TEXT    NOT NULL CHECK (length(call_key) > 0),
    direction      TEXT    NOT NULL CHECK (direction IN ('in', 'out')),
    peer_address   TEXT    NOT NULL,
    started_at_ms  INTEGER NOT NULL,
    answered_at_ms INTEGER CHECK (answered_at_ms IS NULL OR answered_at_ms >= started_at_ms),
    ended_at_ms    INTEGER CHECK (ended_at_ms IS NULL
                                  OR ended_at_ms >= coalesce(answered_at_ms, started_at_ms)),
    end_reason     TEXT    CHECK (end_reason IS NULL OR end_reason IN (
                       'local_hangup', 'remote_hangup', 'local_cancel', 'remote_cancel',
                       'declined', 'busy', 'no_answer', 'answered_elsewhere', 'failed')),
    duration_ms    INTEGER GENERATED ALWAYS AS (ended_at_ms - answered_at_ms) VIRTUAL,
    missed         INTEGER NOT NULL
                   GENERATED ALWAYS AS (direction = 'in' AND answered_at_ms IS NULL) VIRTUAL,
    UNIQUE (account_id, call_key)
) STRICT;
CREATE INDEX calls_by_start ON calls (started_at_ms DESC, id DESC);

-- File transfers (MSRP RFC 4975/5547, XEP-0363 uploads).
CREATE TABLE transfers (
    id              INTEGER PRIMARY KEY,
    account_id      INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    transfer_key    TEXT    NOT NULL CHECK (length(transfer_key) > 0),
    direction       TEXT    NOT NULL CHECK (direction IN ('in', 'out')),
    peer_address    TEXT    NOT NULL,
    file_name       TEXT    NOT NULL,
    size_bytes      INTEGER CHECK (size_bytes IS NULL OR size_bytes >= 0),
    mime_type       TEXT,
    sha256          TEXT    CHECK (sha256 IS NULL
                                   OR (length(sha256) = 64 AND sha256 NOT GLOB '*[^0-9a-f]*')),
    local_path      TEXT,
    state           TEXT    NOT NULL
                            CHECK (state IN ('offered', 'active', 'completed', 'failed', 'cancelled')),
    bytes_confirmed INTEGER NOT NULL DEFAULT 0 CHECK (bytes_confirmed >= 0),
    started_at_ms   INTEGER NOT NULL,
    ended_at_ms     INTEGER,
    error           TEXT,
    UNIQUE (account_id, transfer_key)
) STRICT;
CREATE INDEX transfers_by_start ON transfers (started_at_ms DESC, id DESC);
"#;

const MIGRATION_2: &str = r#"
-- How far the catch-up of each server archive (XEP-0313) has got: the archive id (RSM UID)
-- of the last item of the last page stored, written in the same transaction as that page's
-- messages. The next catch-up resumes after it. It is moved only by archive pages, never by
-- a message that arrived live, so a live message cannot make older archived ones look
-- fetched. archive is '' for the account's own archive, else the room's bare JID.
CREATE TABLE archive_sync (
    account_id    INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    archive       TEXT    NOT NULL,
    last_id       TEXT    NOT NULL CHECK (length(last_id) > 0),
    last_at_ms    INTEGER,
    complete      INTEGER NOT NULL CHECK (complete IN (0, 1)),
    updated_at_ms INTEGER NOT NULL,
    PRIMARY KEY (account_id, archive)
) STRICT;
"#;

const MIGRATION_3: &str = r#"
-- The XMPP stream-management session (XEP-0198) an account is on, so a run that ends without
-- closing it (killed, crashed, the power cut) can be followed by one that resumes it and gets
-- what the server queued for it meanwhile. handled counts the stanzas received on it whose
-- messages are stored: it is written after them, never ahead. An orderly close deletes the row.
CREATE TABLE stream_resumption (
    account_id    INTEGER PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE,
    resume_id     TEXT    NOT NULL CHECK (length(resume_id) > 0),
    jid           TEXT    NOT NULL CHECK (length(jid) > 0),
    handled       INTEGER NOT NULL CHECK (handled >= 0),
    updated_at_ms INTEGER NOT NULL
) STRICT;
"#;

/// Reads `PRAGMA user_version`.
pub(crate) fn user_version(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn.pragma_query_value(None, "user_version", |row| row.get(0))?)
}

/// Refuses files that are not ours or are newer than this build.
pub(crate) fn check_compatible(conn: &Connection) -> Result<i64, StoreError> {
    let application_id: i32 = conn.pragma_query_value(None, "application_id", |row| row.get(0))?;
    if application_id != 0 && application_id != APPLICATION_ID {
        return Err(StoreError::ForeignDatabase {
            found: application_id,
        });
    }
    let found = user_version(conn)?;
    let supported = supported_version();
    if found > supported {
        return Err(StoreError::NewerSchema { found, supported });
    }
    Ok(found)
}

/// Applies every migration the file has not seen yet.
pub(crate) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    for (index, sql) in MIGRATIONS.iter().enumerate() {
        let target = index as i64 + 1;
        // IMMEDIATE takes the write lock before we read the version, so two processes
        // opening the same fresh file cannot both run step 1.
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let current = check_compatible(&tx)?;
        if current >= target {
            continue;
        }
        tracing::info!(from = current, to = target, "applying store migration");
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", target)?;
        tx.pragma_update(None, "application_id", APPLICATION_ID)?;
        tx.commit()?;
    }
    Ok(())
}
