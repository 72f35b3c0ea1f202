//! Reads, `find_or_create_conversation`, and the translation of a person's search words into
//! a safe FTS5 query.

use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};

use crate::StoreError;
use crate::model::*;

/// Columns of `messages` in the order [`message_from_row`] expects, qualified by alias `m`.
pub(crate) const MESSAGE_COLUMNS: &str = "m.id, m.conversation_id, m.direction, m.sender, m.body, \
     m.content_type, m.stable_id, m.sent_at_ms, m.received_at_ms, m.state, m.corrects_stable_id";
const MESSAGE_COLUMN_COUNT: usize = 11;

/// The most words a search may have; more would only make a slow query, not a better one.
const MAX_SEARCH_TERMS: usize = 16;

/// Converts a stored non-negative INTEGER into an unsigned Rust integer, turning an
/// impossible value into a read error instead of a panic or a silent wrap.
fn unsigned<T: TryFrom<i64>>(row: &Row<'_>, index: usize) -> rusqlite::Result<T> {
    let value: i64 = row.get(index)?;
    T::try_from(value).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(index, value))
}

fn optional_unsigned(row: &Row<'_>, index: usize) -> rusqlite::Result<Option<u64>> {
    match row.get::<_, Option<i64>>(index)? {
        None => Ok(None),
        Some(value) => u64::try_from(value)
            .map(Some)
            .map_err(|_| rusqlite::Error::IntegralValueOutOfRange(index, value)),
    }
}

/// Parses a JSON text column.
fn json_column<T: serde::de::DeserializeOwned>(row: &Row<'_>, index: usize) -> rusqlite::Result<T> {
    let text: String = row.get(index)?;
    serde_json::from_str(&text).map_err(|err| {
        rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, Box::new(err))
    })
}

pub(crate) fn message_from_row(row: &Row<'_>) -> rusqlite::Result<Message> {
    Ok(Message {
        id: row.get(0)?,
        conversation: row.get(1)?,
        direction: row.get(2)?,
        sender: row.get(3)?,
        body: row.get(4)?,
        content_type: row.get(5)?,
        stable_id: row.get(6)?,
        sent_at_ms: row.get(7)?,
        received_at_ms: row.get(8)?,
        state: row.get(9)?,
        corrects_stable_id: row.get(10)?,
    })
}

const CONVERSATION_COLUMNS: &str =
    "id, account_id, peer_address, kind, title, last_activity_at_ms, unread_count";

fn conversation_from_row(row: &Row<'_>) -> rusqlite::Result<Conversation> {
    Ok(Conversation {
        id: row.get(0)?,
        account: row.get(1)?,
        peer_address: row.get(2)?,
        kind: row.get(3)?,
        title: row.get(4)?,
        last_activity_at_ms: row.get(5)?,
        unread_count: unsigned(row, 6)?,
    })
}

/// Whether an error is SQLite refusing a row because a referenced row does not exist.
pub(crate) fn is_foreign_key_violation(err: &rusqlite::Error) -> bool {
    matches!(
        err,
        rusqlite::Error::SqliteFailure(e, _)
            if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY
    )
}

/// Rejects empty (or whitespace-only) identifiers before they reach a CHECK constraint, so
/// the caller gets [`StoreError::Invalid`] naming the field instead of a generic SQLite error.
pub(crate) fn require_non_empty(value: &str, field: &str) -> Result<(), StoreError> {
    if value.trim().is_empty() {
        return Err(StoreError::Invalid(format!("{field} must not be empty")));
    }
    Ok(())
}

fn limit_param(limit: u32) -> i64 {
    i64::from(limit)
}

pub(crate) fn find_or_create_conversation(
    conn: &mut Connection,
    account: AccountId,
    peer: &str,
    kind: ConversationKind,
) -> Result<Conversation, StoreError> {
    require_non_empty(peer, "peer address")?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute(
        "INSERT INTO conversations (account_id, peer_address, kind) VALUES (?1, ?2, ?3)
         ON CONFLICT (account_id, peer_address) DO NOTHING",
        params![account, peer, kind],
    )
    .map_err(|err| {
        if is_foreign_key_violation(&err) {
            StoreError::NotFound(account.to_string())
        } else {
            err.into()
        }
    })?;
    let conversation = tx.query_row(
        &format!(
            "SELECT {CONVERSATION_COLUMNS} FROM conversations
             WHERE account_id = ?1 AND peer_address = ?2"
        ),
        params![account, peer],
        conversation_from_row,
    )?;
    if conversation.kind != kind {
        return Err(StoreError::Invalid(format!(
            "conversation with this peer already exists as {}, not {}",
            conversation.kind.as_str(),
            kind.as_str()
        )));
    }
    tx.commit()?;
    Ok(conversation)
}

pub(crate) fn accounts(conn: &Connection) -> Result<Vec<Account>, StoreError> {
    let mut statement = conn.prepare_cached(
        "SELECT id, kind, address, display_name, server_url, settings_json, created_at_ms
         FROM accounts ORDER BY id",
    )?;
    let rows = statement.query_map([], |row| {
        Ok(Account {
            id: row.get(0)?,
            kind: row.get(1)?,
            address: row.get(2)?,
            display_name: row.get(3)?,
            server_url: row.get(4)?,
            settings: json_column(row, 5)?,
            created_at_ms: row.get(6)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(crate) fn contacts(conn: &Connection, account: AccountId) -> Result<Vec<Contact>, StoreError> {
    let mut statement = conn.prepare_cached(
        "SELECT id, account_id, address, display_name, groups_json, subscription
         FROM contacts WHERE account_id = ?1 ORDER BY address",
    )?;
    let rows = statement.query_map([account], |row| {
        Ok(Contact {
            id: row.get(0)?,
            account: row.get(1)?,
            address: row.get(2)?,
            display_name: row.get(3)?,
            groups: json_column(row, 4)?,
            subscription: row.get(5)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(crate) fn conversations(
    conn: &Connection,
    account: AccountId,
) -> Result<Vec<Conversation>, StoreError> {
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE account_id = ?1
         ORDER BY last_activity_at_ms IS NULL, last_activity_at_ms DESC, id DESC"
    ))?;
    let rows = statement.query_map([account], conversation_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(crate) fn conversation(
    conn: &Connection,
    id: ConversationId,
) -> Result<Option<Conversation>, StoreError> {
    Ok(conn
        .query_row(
            &format!("SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id = ?1"),
            [id],
            conversation_from_row,
        )
        .optional()?)
}

pub(crate) fn messages(
    conn: &Connection,
    conversation: ConversationId,
    before: Option<MessageCursor>,
    limit: u32,
) -> Result<Vec<Message>, StoreError> {
    // Keyset pagination on the (conversation_id, sort_at_ms, id) index: take the newest
    // `limit` rows below the cursor, then flip them into reading order.
    let mut messages = match before {
        None => {
            let mut statement = conn.prepare_cached(&format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages m WHERE m.conversation_id = ?1
                 ORDER BY m.sort_at_ms DESC, m.id DESC LIMIT ?2"
            ))?;
            statement
                .query_map(params![conversation, limit_param(limit)], message_from_row)?
                .collect::<Result<Vec<_>, _>>()?
        }
        Some(cursor) => {
            let mut statement = conn.prepare_cached(&format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages m WHERE m.conversation_id = ?1
                   AND (m.sort_at_ms, m.id) < (?2, ?3)
                 ORDER BY m.sort_at_ms DESC, m.id DESC LIMIT ?4"
            ))?;
            statement
                .query_map(
                    params![conversation, cursor.at_ms, cursor.id, limit_param(limit)],
                    message_from_row,
                )?
                .collect::<Result<Vec<_>, _>>()?
        }
    };
    messages.reverse();
    Ok(messages)
}

pub(crate) fn message(conn: &Connection, id: MessageId) -> Result<Option<Message>, StoreError> {
    Ok(conn
        .query_row(
            &format!("SELECT {MESSAGE_COLUMNS} FROM messages m WHERE m.id = ?1"),
            [id],
            message_from_row,
        )
        .optional()?)
}

/// Turns what a person typed into an FTS5 query that can never be a syntax error and never
/// uses an operator the person did not mean: each whitespace-separated word becomes a
/// quoted FTS5 string (RFC-like quoting: `"` doubled, FTS5 docs §3.1) followed by `*`
/// (prefix match, so results appear while typing), and the words are ANDed implicitly.
/// Control characters are treated as spaces; words with no letter or digit are dropped
/// because the tokenizer would turn them into empty phrases. `None` means there is
/// nothing to search for.
pub fn fts_query_from_user_input(input: &str) -> Option<String> {
    let cleaned: String = input
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let terms: Vec<String> = cleaned
        .split_whitespace()
        .filter(|word| word.chars().any(char::is_alphanumeric))
        .take(MAX_SEARCH_TERMS)
        .map(|word| format!("\"{}\"*", word.replace('"', "\"\"")))
        .collect();
    if terms.is_empty() {
        None
    } else {
        Some(terms.join(" "))
    }
}

pub(crate) fn search_messages(
    conn: &Connection,
    input: &str,
    limit: u32,
) -> Result<Vec<SearchHit>, StoreError> {
    let Some(fts_query) = fts_query_from_user_input(input) else {
        return Ok(Vec::new());
    };
    // The user's text only ever reaches SQLite as the bound MATCH parameter, so it cannot
    // change the SQL; the quoting above keeps it from changing the FTS5 query structure.
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {MESSAGE_COLUMNS},
                snippet(messages_fts, 0, ?2, ?3, '…', 12),
                bm25(messages_fts) AS score,
                c.account_id, c.peer_address, c.kind
         FROM messages_fts JOIN messages m ON m.id = messages_fts.rowid
              JOIN conversations c ON c.id = m.conversation_id
         WHERE messages_fts MATCH ?1
         ORDER BY score, m.id DESC
         LIMIT ?4"
    ))?;
    let rows = statement.query_map(
        params![
            fts_query,
            SNIPPET_MATCH_START,
            SNIPPET_MATCH_END,
            limit_param(limit)
        ],
        |row| {
            Ok(SearchHit {
                message: message_from_row(row)?,
                snippet: row.get(MESSAGE_COLUMN_COUNT)?,
                rank: row.get(MESSAGE_COLUMN_COUNT + 1)?,
                account: row.get(MESSAGE_COLUMN_COUNT + 2)?,
                peer_address: row.get(MESSAGE_COLUMN_COUNT + 3)?,
                kind: row.get(MESSAGE_COLUMN_COUNT + 4)?,
            })
        },
    )?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(crate) fn calls(conn: &Connection, limit: u32) -> Result<Vec<CallRecord>, StoreError> {
    let mut statement = conn.prepare_cached(
        "SELECT id, account_id, call_key, direction, peer_address, started_at_ms,
                answered_at_ms, ended_at_ms, end_reason, duration_ms, missed
         FROM calls ORDER BY started_at_ms DESC, id DESC LIMIT ?1",
    )?;
    let rows = statement.query_map([limit_param(limit)], |row| {
        Ok(CallRecord {
            id: row.get(0)?,
            account: row.get(1)?,
            call_key: row.get(2)?,
            direction: row.get(3)?,
            peer_address: row.get(4)?,
            started_at_ms: row.get(5)?,
            answered_at_ms: row.get(6)?,
            ended_at_ms: row.get(7)?,
            end_reason: row.get(8)?,
            duration_ms: row.get(9)?,
            missed: row.get(10)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

const TRANSFER_COLUMNS: &str = "id, account_id, transfer_key, direction, peer_address, \
     file_name, size_bytes, mime_type, sha256, local_path, state, bytes_confirmed, \
     started_at_ms, ended_at_ms, error";

fn transfer_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Transfer> {
    Ok(Transfer {
        id: row.get(0)?,
        account: row.get(1)?,
        transfer_key: row.get(2)?,
        direction: row.get(3)?,
        peer_address: row.get(4)?,
        file_name: row.get(5)?,
        size_bytes: optional_unsigned(row, 6)?,
        mime_type: row.get(7)?,
        sha256: row.get(8)?,
        local_path: row.get(9)?,
        state: row.get(10)?,
        bytes_confirmed: unsigned(row, 11)?,
        started_at_ms: row.get(12)?,
        ended_at_ms: row.get(13)?,
        error: row.get(14)?,
    })
}

pub(crate) fn transfers(conn: &Connection, limit: u32) -> Result<Vec<Transfer>, StoreError> {
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {TRANSFER_COLUMNS} FROM transfers
         ORDER BY started_at_ms DESC, id DESC LIMIT ?1"
    ))?;
    let rows = statement.query_map([limit_param(limit)], transfer_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The transfers with these row ids, in the order given.
pub(crate) fn transfers_by_id(conn: &Connection, ids: &[i64]) -> Result<Vec<Transfer>, StoreError> {
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {TRANSFER_COLUMNS} FROM transfers WHERE id = ?1"
    ))?;
    let mut found = Vec::with_capacity(ids.len());
    for id in ids {
        found.push(statement.query_row([id], transfer_from_row)?);
    }
    Ok(found)
}

pub(crate) fn archive_sync(
    conn: &Connection,
    account: AccountId,
    archive: &str,
) -> Result<Option<ArchiveSync>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT last_id, last_at_ms, complete, updated_at_ms FROM archive_sync
             WHERE account_id = ?1 AND archive = ?2",
        )?
        .query_row(params![account, archive], |row| {
            Ok(ArchiveSync {
                account,
                archive: archive.to_owned(),
                last_id: row.get(0)?,
                last_at_ms: row.get(1)?,
                complete: row.get(2)?,
                updated_at_ms: row.get(3)?,
            })
        })
        .optional()?)
}

pub(crate) fn stream_resumption(
    conn: &Connection,
    account: AccountId,
) -> Result<Option<StreamResumption>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT resume_id, jid, handled, updated_at_ms FROM stream_resumption
             WHERE account_id = ?1",
        )?
        .query_row([account], |row| {
            let handled: i64 = row.get(2)?;
            Ok(StreamResumption {
                account,
                resume_id: row.get(0)?,
                jid: row.get(1)?,
                // The table's CHECK keeps it non-negative.
                handled: u64::try_from(handled).unwrap_or(0),
                updated_at_ms: row.get(3)?,
            })
        })
        .optional()?)
}

#[cfg(test)]
mod tests {
    use super::fts_query_from_user_input;

    #[test]
    fn words_become_quoted_prefix_terms() {
        assert_eq!(
            fts_query_from_user_input("hello World").as_deref(),
            Some("\"hello\"* \"World\"*")
        );
    }

    #[test]
    fn quotes_are_doubled_and_operators_are_plain_words() {
        assert_eq!(
            fts_query_from_user_input("a\"b OR NEAR(x").as_deref(),
            Some("\"a\"\"b\"* \"OR\"* \"NEAR(x\"*")
        );
    }

    #[test]
    fn punctuation_only_input_searches_nothing() {
        assert_eq!(fts_query_from_user_input(" \" * ( ) : ^ - "), None);
        assert_eq!(fts_query_from_user_input(""), None);
        assert_eq!(fts_query_from_user_input("\0\n\t"), None);
    }
}
