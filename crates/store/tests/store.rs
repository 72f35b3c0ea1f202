//! The store against real SQLite files in a temporary directory.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use lyrebird_store::*;
use tempfile::TempDir;

struct Fixture {
    _dir: TempDir,
    path: PathBuf,
    store: Store,
    account: AccountId,
}

fn db_path(dir: &TempDir) -> PathBuf {
    dir.path().join("history.sqlite3")
}

fn new_account(address: &str, created_at_ms: i64) -> NewAccount {
    NewAccount {
        kind: AccountKind::Sip,
        address: address.to_owned(),
        display_name: Some("Alice".to_owned()),
        server_url: "ws://127.0.0.1:8080".to_owned(),
        settings: serde_json::json!({ "outbound": true, "expires": 600 }),
        created_at_ms,
    }
}

fn fixture() -> Result<Fixture> {
    let dir = tempfile::tempdir()?;
    let path = db_path(&dir);
    let mut store = Store::open(&path)?;
    let outcome = store.apply(&[Change::UpsertAccount(new_account(
        "sip:alice@127.0.0.1",
        1_000,
    ))])?;
    let ChangeOutcome::Account(account) = outcome.outcomes[0] else {
        bail!("unexpected outcome {outcome:?}");
    };
    Ok(Fixture {
        _dir: dir,
        path,
        store,
        account,
    })
}

fn incoming(conversation: ConversationId, stable_id: &str, body: &str, at_ms: i64) -> NewMessage {
    NewMessage {
        conversation,
        direction: Direction::In,
        sender: "sip:bob@127.0.0.1".to_owned(),
        body: body.to_owned(),
        content_type: "text/plain".to_owned(),
        stable_id: stable_id.to_owned(),
        sent_at_ms: Some(at_ms),
        received_at_ms: at_ms + 5,
        state: DeliveryState::Delivered,
        corrects_stable_id: None,
    }
}

fn inserted_message(outcome: &ChangeOutcome) -> Result<MessageId> {
    match outcome {
        ChangeOutcome::MessageInserted(id) => Ok(*id),
        other => bail!("expected an inserted message, got {other:?}"),
    }
}

fn raw(path: &Path) -> Result<rusqlite::Connection> {
    Ok(rusqlite::Connection::open(path)?)
}

fn direct_conversation(fx: &mut Fixture, peer: &str) -> Result<ConversationId> {
    Ok(fx
        .store
        .find_or_create_conversation(fx.account, peer, ConversationKind::Direct)?
        .id)
}

#[test]
fn store_is_send() {
    fn assert_send<T: Send>() {}
    assert_send::<Store>();
    assert_send::<StoreError>();
}

#[test]
fn migrates_an_empty_file_with_wal_and_foreign_keys() -> Result<()> {
    let fx = fixture()?;
    assert_eq!(fx.store.schema_version()?, supported_version());
    assert_eq!(fx.store.journal_mode()?, "wal");
    assert!(
        fx.path.with_extension("sqlite3-wal").exists(),
        "a committed write in WAL mode leaves a -wal file"
    );

    let conn = raw(&fx.path)?;
    // WAL is a property of the file, so a fresh connection sees it too.
    let mode: String = conn.query_row("PRAGMA journal_mode", [], |row| row.get(0))?;
    assert_eq!(mode, "wal");
    let version: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    assert_eq!(version, supported_version());
    for table in [
        "accounts",
        "contacts",
        "conversations",
        "messages",
        "messages_fts",
        "calls",
        "transfers",
    ] {
        let found = conn.query_row(
            "SELECT count(*) FROM sqlite_schema WHERE name = ?1",
            [table],
            |row| row.get::<_, i64>(0),
        )?;
        assert_eq!(found, 1, "table {table} missing");
    }
    Ok(())
}

#[test]
fn foreign_keys_are_enforced() -> Result<()> {
    let mut fx = fixture()?;
    let err = fx
        .store
        .find_or_create_conversation(
            AccountId(9_999),
            "sip:bob@127.0.0.1",
            ConversationKind::Direct,
        )
        .err()
        .context("unknown account must be refused")?;
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
    Ok(())
}

#[test]
fn reopening_keeps_data_and_does_not_rerun_migrations() -> Result<()> {
    let mut fx = fixture()?;
    let conversation = direct_conversation(&mut fx, "sip:bob@127.0.0.1")?;
    fx.store.apply(&[Change::InsertMessage(incoming(
        conversation,
        "m1",
        "kept across restarts",
        2_000,
    ))])?;
    let Fixture {
        _dir, path, store, ..
    } = fx;
    drop(store);

    let store = Store::open(&path)?;
    assert_eq!(store.schema_version()?, supported_version());
    let accounts = store.accounts()?;
    assert_eq!(accounts.len(), 1);
    assert_eq!(accounts[0].address, "sip:alice@127.0.0.1");
    assert_eq!(accounts[0].settings["expires"], 600);
    let messages = store.messages(conversation, None, 10)?;
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].body, "kept across restarts");
    assert_eq!(store.search_messages("restarts", 5)?.len(), 1);
    Ok(())
}

#[test]
fn upserting_an_account_keeps_its_id_and_creation_time() -> Result<()> {
    let mut fx = fixture()?;
    let mut changed = new_account("sip:alice@127.0.0.1", 99_999);
    changed.display_name = Some("Alice B.".into());
    let outcome = fx.store.apply(&[Change::UpsertAccount(changed)])?;
    assert_eq!(outcome.outcomes, vec![ChangeOutcome::Account(fx.account)]);
    let accounts = fx.store.accounts()?;
    assert_eq!(accounts.len(), 1);
    assert_eq!(accounts[0].display_name.as_deref(), Some("Alice B."));
    assert_eq!(accounts[0].created_at_ms, 1_000);

    let mut bad = new_account("sip:carol@127.0.0.1", 5);
    bad.settings = serde_json::json!(["not", "an", "object"]);
    let err = fx
        .store
        .apply(&[Change::UpsertAccount(bad)])
        .err()
        .context("array settings must be refused")?;
    assert!(matches!(err.root(), StoreError::Invalid(_)), "{err:?}");
    Ok(())
}

#[test]
fn a_failing_change_rolls_back_the_whole_batch() -> Result<()> {
    let mut fx = fixture()?;
    let conversation = direct_conversation(&mut fx, "sip:bob@127.0.0.1")?;
    let err = fx
        .store
        .apply(&[
            Change::InsertMessage(incoming(conversation, "ok-1", "first", 10)),
            Change::UpsertContact(NewContact {
                account: fx.account,
                address: "sip:bob@127.0.0.1".into(),
                display_name: None,
                groups: vec!["Friends".into()],
                subscription: Subscription::Both,
            }),
            Change::InsertMessage(incoming(ConversationId(4_242), "bad", "orphan", 11)),
        ])
        .err()
        .context("a message in an unknown conversation must fail the batch")?;
    match &err {
        StoreError::ChangeFailed { index, source } => {
            assert_eq!(*index, 2);
            assert!(matches!(**source, StoreError::NotFound(_)), "{source:?}");
        }
        other => bail!("unexpected error {other:?}"),
    }

    assert!(fx.store.messages(conversation, None, 10)?.is_empty());
    assert!(fx.store.contacts(fx.account)?.is_empty());
    let stored = fx
        .store
        .conversation(conversation)?
        .context("conversation exists")?;
    assert_eq!(stored.unread_count, 0);
    assert_eq!(stored.last_activity_at_ms, None);
    assert!(fx.store.search_messages("first", 5)?.is_empty());

    // A CHECK-level refusal (bad hash) in the middle also rolls back what came before it.
    let err = fx
        .store
        .apply(&[
            Change::InsertMessage(incoming(conversation, "ok-2", "second", 12)),
            Change::UpsertTransfer(transfer(fx.account, "t-bad", Some("NOT-HEX".into()))),
        ])
        .err()
        .context("bad sha256 must fail")?;
    assert!(matches!(err.root(), StoreError::Invalid(_)), "{err:?}");
    assert!(fx.store.messages(conversation, None, 10)?.is_empty());

    // And the store is still usable afterwards.
    let ok = fx.store.apply(&[Change::InsertMessage(incoming(
        conversation,
        "ok-3",
        "third",
        13,
    ))])?;
    assert_eq!(ok.inserted_messages().len(), 1);
    Ok(())
}

#[test]
fn duplicate_stable_ids_are_stored_once() -> Result<()> {
    let mut fx = fixture()?;
    let conversation = direct_conversation(&mut fx, "sip:bob@127.0.0.1")?;
    let first = fx.store.apply(&[Change::InsertMessage(incoming(
        conversation,
        "sid-1",
        "hello",
        100,
    ))])?;
    let id = inserted_message(&first.outcomes[0])?;

    // Replayed in a later batch (MAM catch-up) and twice within one batch.
    let replay = fx.store.apply(&[
        Change::InsertMessage(incoming(conversation, "sid-1", "hello (replayed)", 100)),
        Change::InsertMessage(incoming(conversation, "sid-2", "world", 101)),
        Change::InsertMessage(incoming(conversation, "sid-2", "world", 101)),
    ])?;
    assert_eq!(
        replay.outcomes[0],
        ChangeOutcome::Duplicate(DuplicateOf::Message(id))
    );
    let second = inserted_message(&replay.outcomes[1])?;
    assert_eq!(
        replay.outcomes[2],
        ChangeOutcome::Duplicate(DuplicateOf::Message(second))
    );
    assert_eq!(replay.duplicates(), 2);

    let messages = fx.store.messages(conversation, None, 10)?;
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0].body, "hello", "the first copy wins");
    let stored = fx
        .store
        .conversation(conversation)?
        .context("conversation exists")?;
    assert_eq!(stored.unread_count, 2, "duplicates do not count as unread");

    // The same stable id in another conversation is a different message.
    let other = direct_conversation(&mut fx, "sip:carol@127.0.0.1")?;
    let elsewhere = fx.store.apply(&[Change::InsertMessage(incoming(
        other, "sid-1", "hello", 100,
    ))])?;
    inserted_message(&elsewhere.outcomes[0])?;
    Ok(())
}

#[test]
fn full_text_search_ignores_case_and_diacritics_and_follows_edits() -> Result<()> {
    let mut fx = fixture()?;
    let conversation = direct_conversation(&mut fx, "sip:bob@127.0.0.1")?;
    let outcome = fx.store.apply(&[
        Change::InsertMessage(incoming(conversation, "a", "Rendez-vous au Café à midi", 1)),
        Change::InsertMessage(incoming(conversation, "b", "Der Bär schläft", 2)),
        Change::InsertMessage(incoming(conversation, "c", "nothing to see here", 3)),
    ])?;
    let ids = outcome.inserted_messages();
    assert_eq!(ids.len(), 3);

    for query in ["cafe", "CAFÉ", "café midi", "rend", "a midi"] {
        let hits = fx.store.search_messages(query, 10)?;
        assert_eq!(hits.len(), 1, "query {query:?} -> {hits:?}");
        assert_eq!(hits[0].message.id, ids[0]);
    }
    let hits = fx.store.search_messages("bar schlaft", 10)?;
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].message.id, ids[1]);
    // A hit names its conversation, so a front end can open it whoever wrote the message.
    assert_eq!(hits[0].peer_address, "sip:bob@127.0.0.1");
    assert_eq!(hits[0].kind, ConversationKind::Direct);
    assert!(
        hits[0]
            .snippet
            .contains(&format!("{SNIPPET_MATCH_START}Bär{SNIPPET_MATCH_END}")),
        "snippet {:?}",
        hits[0].snippet
    );
    assert!(
        fx.store.search_messages("cafe bar", 10)?.is_empty(),
        "words are ANDed"
    );

    // Edit: the old word disappears from the index, the new one appears.
    let edit = fx.store.apply(&[Change::CorrectMessage {
        original: MessageRef::Stable {
            conversation,
            stable_id: "a".into(),
        },
        correction: incoming(conversation, "a2", "Meet at the library instead", 4),
    }])?;
    assert_eq!(edit.outcomes, vec![ChangeOutcome::Updated]);
    assert!(fx.store.search_messages("cafe", 10)?.is_empty());
    assert_eq!(fx.store.search_messages("library", 10)?.len(), 1);

    // A state change does not touch the index (trigger is on body only) and keeps results.
    fx.store.apply(&[Change::UpdateMessageState {
        message: MessageRef::Id(ids[0]),
        state: DeliveryState::Read,
    }])?;
    assert_eq!(fx.store.search_messages("library", 10)?.len(), 1);

    // Delete: gone from search.
    let delete = fx
        .store
        .apply(&[Change::DeleteMessage(MessageRef::Id(ids[1]))])?;
    assert_eq!(delete.outcomes, vec![ChangeOutcome::Removed]);
    assert!(fx.store.search_messages("bär", 10)?.is_empty());

    // FTS5's own consistency check of an external-content index against its table.
    let conn = raw(&fx.path)?;
    conn.execute(
        "INSERT INTO messages_fts (messages_fts, rank) VALUES ('integrity-check', 1)",
        [],
    )?;
    Ok(())
}

#[test]
fn a_correction_rewrites_only_a_message_by_the_same_author() -> Result<()> {
    let mut fx = fixture()?;
    let conversation = direct_conversation(&mut fx, "sip:bob@127.0.0.1")?;
    let ours = NewMessage {
        direction: Direction::Out,
        sender: "sip:alice@127.0.0.1".into(),
        state: DeliveryState::Sent,
        ..incoming(conversation, "ours", "I will pay you back 10", 1)
    };
    fx.store.apply(&[
        Change::InsertMessage(ours.clone()),
        Change::InsertMessage(incoming(conversation, "theirs", "see you at 8", 2)),
    ])?;
    let original = |stable_id: &str| MessageRef::Stable {
        conversation,
        stable_id: stable_id.into(),
    };
    let outcome = fx.store.apply(&[
        // The peer names our message: a spoof. Ours stays; theirs is kept as their own.
        Change::CorrectMessage {
            original: original("ours"),
            correction: incoming(conversation, "spoof", "I will pay you back 1000", 3),
        },
        // Someone else in the conversation names the peer's message: the same.
        Change::CorrectMessage {
            original: original("theirs"),
            correction: NewMessage {
                sender: "sip:mallory@127.0.0.1".into(),
                ..incoming(conversation, "other", "see you never", 4)
            },
        },
        // The peer corrects its own message, and we ours: applied in place.
        Change::CorrectMessage {
            original: original("theirs"),
            correction: incoming(conversation, "fix", "see you at 9", 5),
        },
        Change::CorrectMessage {
            original: original("ours"),
            correction: NewMessage {
                stable_id: "ours-fix".into(),
                body: "I will pay you back 12".into(),
                ..ours.clone()
            },
        },
        // A correction of a message we never got is a message of its own.
        Change::CorrectMessage {
            original: original("never-seen"),
            correction: incoming(conversation, "late", "corrected text", 6),
        },
    ])?;
    assert!(matches!(
        outcome.outcomes[0],
        ChangeOutcome::MessageInserted(_)
    ));
    assert!(matches!(
        outcome.outcomes[1],
        ChangeOutcome::MessageInserted(_)
    ));
    assert_eq!(outcome.outcomes[2], ChangeOutcome::Updated);
    assert_eq!(outcome.outcomes[3], ChangeOutcome::Updated);
    assert!(matches!(
        outcome.outcomes[4],
        ChangeOutcome::MessageInserted(_)
    ));
    let bodies: Vec<(String, String)> = fx
        .store
        .messages(conversation, None, 50)?
        .into_iter()
        .map(|m| (m.stable_id, m.body))
        .collect();
    let body_of = |id: &str| {
        bodies
            .iter()
            .find(|(s, _)| s == id)
            .map(|(_, b)| b.clone())
            .unwrap_or_default()
    };
    assert_eq!(body_of("ours"), "I will pay you back 12");
    assert_eq!(body_of("theirs"), "see you at 9");
    assert_eq!(body_of("spoof"), "I will pay you back 1000");
    assert_eq!(body_of("other"), "see you never");
    assert_eq!(body_of("late"), "corrected text");
    Ok(())
}

#[test]
fn hostile_search_strings_neither_fail_nor_inject() -> Result<()> {
    let mut fx = fixture()?;
    let conversation = direct_conversation(&mut fx, "sip:bob@127.0.0.1")?;
    fx.store.apply(&[
        Change::InsertMessage(incoming(conversation, "1", "alpha beta gamma", 1)),
        Change::InsertMessage(incoming(conversation, "2", "he said \"near\" or not", 2)),
        Change::InsertMessage(incoming(conversation, "3", "drop table messages", 3)),
    ])?;
    let hostile = [
        "\"",
        "\"\"",
        "\"alpha",
        "alpha\"",
        "'",
        "alpha' OR '1'='1",
        "NEAR(",
        "NEAR(alpha beta",
        "NEAR(alpha, beta, 2)",
        "*",
        "alpha*",
        "**",
        "^alpha",
        "OR",
        "alpha OR",
        "OR alpha",
        "AND NOT",
        "NOT alpha",
        "body:alpha",
        "messages_fts:alpha",
        "{body}: alpha",
        "- alpha",
        "+",
        "(",
        ")",
        "alpha)",
        "'; DROP TABLE messages; --",
        "\"; DELETE FROM messages; --",
        "\u{0}alpha",
        "alpha\u{0}beta",
        "\n\r\t",
        "%_\\",
        "🦜",
        "ﷺ",
        "\u{200b}",
        &"x".repeat(10_000),
        &"a ".repeat(1_000),
    ];
    for query in hostile {
        let hits = fx
            .store
            .search_messages(query, 10)
            .with_context(|| format!("query {query:?}"))?;
        // Operators are words: "alpha OR" needs both "alpha" and "or"; nothing has both.
        if query == "alpha OR" || query == "NOT alpha" {
            assert!(hits.is_empty(), "{query:?} -> {hits:?}");
        }
    }
    // Words that are FTS operators are found as plain words.
    let hits = fx.store.search_messages("\"near\" or", 10)?;
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].message.stable_id, "2");
    let hits = fx.store.search_messages("'; DROP TABLE messages; --", 10)?;
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].message.stable_id, "3");

    // Nothing was injected: all three messages are still there.
    assert_eq!(fx.store.messages(conversation, None, 10)?.len(), 3);
    assert_eq!(fx.store.search_messages("alpha", 10)?.len(), 1);
    Ok(())
}

#[test]
fn calls_report_missed_and_duration_newest_first() -> Result<()> {
    let mut fx = fixture()?;
    let account = fx.account;
    let call = move |key: &str, direction, started_at_ms| {
        Change::InsertCall(NewCall {
            account,
            call_key: key.into(),
            direction,
            peer_address: "sip:bob@127.0.0.1".into(),
            started_at_ms,
        })
    };
    let by_key = move |key: &str| CallRef::Key {
        account,
        call_key: key.into(),
    };
    let outcome = fx.store.apply(&[
        call("answered-in", Direction::In, 1_000),
        call("missed-in", Direction::In, 2_000),
        call("unanswered-out", Direction::Out, 3_000),
        call("missed-in", Direction::In, 2_000),
        Change::UpdateCall {
            call: by_key("answered-in"),
            answered_at_ms: Some(1_500),
            ended: None,
        },
        Change::UpdateCall {
            call: by_key("answered-in"),
            answered_at_ms: None,
            ended: Some(CallEnd {
                at_ms: 61_500,
                reason: CallEndReason::RemoteHangup,
            }),
        },
        Change::UpdateCall {
            call: by_key("missed-in"),
            answered_at_ms: None,
            ended: Some(CallEnd {
                at_ms: 32_000,
                reason: CallEndReason::RemoteCancel,
            }),
        },
        Change::UpdateCall {
            call: by_key("unanswered-out"),
            answered_at_ms: None,
            ended: Some(CallEnd {
                at_ms: 4_000,
                reason: CallEndReason::Busy,
            }),
        },
        Change::UpdateCall {
            call: by_key("never-seen"),
            answered_at_ms: Some(1),
            ended: None,
        },
    ])?;
    assert!(matches!(
        outcome.outcomes[3],
        ChangeOutcome::Duplicate(DuplicateOf::Call(_))
    ));
    assert_eq!(outcome.outcomes[8], ChangeOutcome::Missing);

    let calls = fx.store.calls(10)?;
    let keys: Vec<&str> = calls.iter().map(|c| c.call_key.as_str()).collect();
    assert_eq!(keys, ["unanswered-out", "missed-in", "answered-in"]);
    let (out, missed, answered) = (&calls[0], &calls[1], &calls[2]);
    assert!(!out.missed, "outgoing calls are never missed");
    assert_eq!(out.end_reason, Some(CallEndReason::Busy));
    assert_eq!(out.duration_ms, None);
    assert!(missed.missed);
    assert_eq!(missed.duration_ms, None);
    assert!(!answered.missed);
    assert_eq!(answered.duration_ms, Some(60_000));
    assert_eq!(answered.end_reason, Some(CallEndReason::RemoteHangup));
    assert_eq!(fx.store.calls(1)?.len(), 1);

    // A second BYE does not rewrite the end; an end before the answer is refused.
    let again = fx.store.apply(&[Change::UpdateCall {
        call: CallRef::Id(answered.id),
        answered_at_ms: None,
        ended: Some(CallEnd {
            at_ms: 99_999,
            reason: CallEndReason::LocalHangup,
        }),
    }])?;
    assert_eq!(again.outcomes, vec![ChangeOutcome::Unchanged]);
    fx.store.apply(&[call("early", Direction::In, 10_000)])?;
    let err = fx
        .store
        .apply(&[Change::UpdateCall {
            call: by_key("early"),
            answered_at_ms: Some(20_000),
            ended: Some(CallEnd {
                at_ms: 15_000,
                reason: CallEndReason::LocalHangup,
            }),
        }])
        .err()
        .context("end before answer must be refused")?;
    assert!(matches!(err.root(), StoreError::Invalid(_)), "{err:?}");
    Ok(())
}

#[test]
fn a_database_from_a_newer_version_is_refused_untouched() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = db_path(&dir);
    drop(Store::open(&path)?);
    let newer = supported_version() + 1;
    raw(&path)?.pragma_update(None, "user_version", newer)?;

    match Store::open(&path) {
        Err(StoreError::NewerSchema { found, supported }) => {
            assert_eq!(found, newer);
            assert_eq!(supported, supported_version());
        }
        other => bail!("expected NewerSchema, got {other:?}"),
    }
    let version: i64 = raw(&path)?.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    assert_eq!(version, newer, "refusing must not modify the file");
    Ok(())
}

#[test]
fn another_applications_database_is_refused() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("other.db");
    let conn = raw(&path)?;
    conn.execute_batch("PRAGMA application_id = 12345; CREATE TABLE t (x);")?;
    drop(conn);
    match Store::open(&path) {
        Err(StoreError::ForeignDatabase { found }) => assert_eq!(found, 12345),
        other => bail!("expected ForeignDatabase, got {other:?}"),
    }
    Ok(())
}

#[test]
fn schema_has_no_password_or_secret_columns() -> Result<()> {
    let fx = fixture()?;
    let conn = raw(&fx.path)?;
    let mut tables = conn.prepare("SELECT name FROM sqlite_schema WHERE type = 'table'")?;
    let names: Vec<String> = tables
        .query_map([], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    assert!(names.len() >= 7, "{names:?}");
    let mut columns_seen = 0;
    for table in names {
        let mut info = conn.prepare("SELECT name FROM pragma_table_xinfo(?1)")?;
        let columns: Vec<String> = info
            .query_map([&table], |row| row.get(0))?
            .collect::<Result<_, _>>()?;
        for column in columns {
            columns_seen += 1;
            let lower = column.to_lowercase();
            for forbidden in ["password", "passwd", "secret", "token", "credential"] {
                assert!(
                    !lower.contains(forbidden),
                    "{table}.{column} looks like a place for a secret"
                );
            }
        }
    }
    assert!(columns_seen > 40, "only {columns_seen} columns inspected");
    Ok(())
}

#[test]
fn history_pages_backwards_in_reading_order() -> Result<()> {
    let mut fx = fixture()?;
    let conversation = direct_conversation(&mut fx, "sip:bob@127.0.0.1")?;
    // Archive messages arrive late (received_at far later) but sort by their sent time;
    // two share a timestamp and are ordered by id.
    let mut changes: Vec<Change> = (0..5)
        .map(|i| {
            Change::InsertMessage(incoming(
                conversation,
                &format!("m{i}"),
                &format!("n{i}"),
                100 + i,
            ))
        })
        .collect();
    let mut late = incoming(conversation, "late", "from the archive", 50);
    late.received_at_ms = 10_000;
    changes.push(Change::InsertMessage(late));
    let mut tie = incoming(conversation, "tie", "same time as n4", 104);
    tie.sent_at_ms = Some(104);
    changes.push(Change::InsertMessage(tie));
    fx.store.apply(&changes)?;

    let newest = fx.store.messages(conversation, None, 3)?;
    let bodies: Vec<&str> = newest.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(bodies, ["n3", "n4", "same time as n4"]);
    let older = fx
        .store
        .messages(conversation, Some(newest[0].cursor()), 3)?;
    let bodies: Vec<&str> = older.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(bodies, ["n0", "n1", "n2"]);
    let oldest = fx
        .store
        .messages(conversation, Some(older[0].cursor()), 3)?;
    let bodies: Vec<&str> = oldest.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(bodies, ["from the archive"]);
    assert!(
        fx.store
            .messages(conversation, Some(oldest[0].cursor()), 3)?
            .is_empty()
    );
    Ok(())
}

#[test]
fn delivery_state_only_moves_forward_and_unread_counts_follow() -> Result<()> {
    let mut fx = fixture()?;
    let conversation = direct_conversation(&mut fx, "sip:bob@127.0.0.1")?;
    let mut out = incoming(conversation, "out-1", "sent by me", 10);
    out.direction = Direction::Out;
    out.state = DeliveryState::Queued;
    let outcome = fx.store.apply(&[
        Change::InsertMessage(out),
        Change::InsertMessage(incoming(conversation, "in-1", "one", 11)),
        Change::InsertMessage(incoming(conversation, "in-2", "two", 12)),
    ])?;
    let out_id = inserted_message(&outcome.outcomes[0])?;
    let state = |store: &Store| -> Result<DeliveryState> {
        Ok(store.message(out_id)?.context("message exists")?.state)
    };
    let set = |state| Change::UpdateMessageState {
        message: MessageRef::Id(out_id),
        state,
    };

    let r = fx.store.apply(&[
        set(DeliveryState::Sent),
        set(DeliveryState::Read),
        set(DeliveryState::Delivered),
        set(DeliveryState::Failed),
    ])?;
    assert_eq!(
        r.outcomes,
        vec![
            ChangeOutcome::Updated,
            ChangeOutcome::Updated,
            ChangeOutcome::Unchanged,
            ChangeOutcome::Unchanged
        ]
    );
    assert_eq!(state(&fx.store)?, DeliveryState::Read);

    let missing = fx.store.apply(&[Change::UpdateMessageState {
        message: MessageRef::Stable {
            conversation,
            stable_id: "receipt-for-something-unknown".into(),
        },
        state: DeliveryState::Delivered,
    }])?;
    assert_eq!(missing.outcomes, vec![ChangeOutcome::Missing]);

    let conv = fx.store.conversation(conversation)?.context("exists")?;
    assert_eq!(conv.unread_count, 2, "outgoing messages are never unread");
    assert_eq!(conv.last_activity_at_ms, Some(12));
    fx.store.apply(&[Change::UpdateMessageState {
        message: MessageRef::Stable {
            conversation,
            stable_id: "in-1".into(),
        },
        state: DeliveryState::Read,
    }])?;
    assert_eq!(
        fx.store
            .conversation(conversation)?
            .context("exists")?
            .unread_count,
        1
    );
    fx.store
        .apply(&[Change::MarkConversationRead(conversation)])?;
    assert_eq!(
        fx.store
            .conversation(conversation)?
            .context("exists")?
            .unread_count,
        0
    );
    let all_read = fx
        .store
        .messages(conversation, None, 10)?
        .iter()
        .filter(|m| m.direction == Direction::In)
        .all(|m| m.state == DeliveryState::Read);
    assert!(all_read);
    Ok(())
}

#[test]
fn conversations_are_unique_per_peer_and_ordered_by_activity() -> Result<()> {
    let mut fx = fixture()?;
    let bob = direct_conversation(&mut fx, "sip:bob@127.0.0.1")?;
    let again = direct_conversation(&mut fx, "sip:bob@127.0.0.1")?;
    assert_eq!(bob, again);
    let room = fx
        .store
        .find_or_create_conversation(
            fx.account,
            "room@conference.localhost",
            ConversationKind::Room,
        )?
        .id;
    let err = fx
        .store
        .find_or_create_conversation(
            fx.account,
            "room@conference.localhost",
            ConversationKind::Direct,
        )
        .err()
        .context("kind mismatch must be refused")?;
    assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
    let quiet = direct_conversation(&mut fx, "sip:quiet@127.0.0.1")?;

    fx.store.apply(&[
        Change::InsertMessage(incoming(bob, "b", "hi", 100)),
        Change::InsertMessage(incoming(room, "r", "hello room", 200)),
    ])?;
    let order: Vec<ConversationId> = fx
        .store
        .conversations(fx.account)?
        .iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(order, [room, bob, quiet]);
    Ok(())
}

fn transfer(account: AccountId, key: &str, sha256: Option<String>) -> NewTransfer {
    NewTransfer {
        account,
        transfer_key: key.into(),
        direction: Direction::Out,
        peer_address: "sip:bob@127.0.0.1".into(),
        file_name: "report.pdf".into(),
        size_bytes: Some(1_048_576),
        mime_type: Some("application/pdf".into()),
        sha256,
        local_path: Some("/home/alice/report.pdf".into()),
        state: TransferState::Offered,
        bytes_confirmed: 0,
        started_at_ms: 5_000,
        ended_at_ms: None,
        error: None,
    }
}

#[test]
fn unfinished_transfers_are_failed_and_finished_ones_kept() -> Result<()> {
    let mut fx = fixture()?;
    let mut active = transfer(fx.account, "active", None);
    active.state = TransferState::Active;
    active.direction = Direction::In;
    active.local_path = Some("/downloads/.report.pdf.part".into());
    let offered = transfer(fx.account, "offered", None);
    let mut completed = transfer(fx.account, "completed", None);
    completed.state = TransferState::Completed;
    completed.ended_at_ms = Some(6_000);
    fx.store.apply(&[
        Change::UpsertTransfer(active),
        Change::UpsertTransfer(offered),
        Change::UpsertTransfer(completed),
    ])?;

    let failed = fx.store.fail_unfinished_transfers(9_000, "stopped")?;
    let mut keys: Vec<&str> = failed.iter().map(|t| t.transfer_key.as_str()).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["active", "offered"]);
    assert!(failed.iter().all(|t| t.state == TransferState::Failed
        && t.ended_at_ms == Some(9_000)
        && t.error.as_deref() == Some("stopped")));
    let partial = failed.iter().find(|t| t.transfer_key == "active");
    assert_eq!(
        partial.and_then(|t| t.local_path.as_deref()),
        Some("/downloads/.report.pdf.part"),
        "the partial file's path is returned so it can be removed"
    );
    let kept = fx.store.transfers(10)?;
    let completed = kept.iter().find(|t| t.transfer_key == "completed");
    assert_eq!(completed.map(|t| t.state), Some(TransferState::Completed));
    // Settled once: a second start finds nothing more.
    assert!(
        fx.store
            .fail_unfinished_transfers(10_000, "stopped")?
            .is_empty()
    );
    Ok(())
}

#[test]
fn transfers_upsert_by_key_and_contacts_round_trip() -> Result<()> {
    let mut fx = fixture()?;
    let hash = "ab".repeat(32);
    let first = fx.store.apply(&[Change::UpsertTransfer(transfer(
        fx.account,
        "msrp-1",
        Some(hash.clone()),
    ))])?;
    let ChangeOutcome::Transfer(id) = first.outcomes[0] else {
        bail!("unexpected {first:?}");
    };
    let mut done = transfer(fx.account, "msrp-1", Some(hash.clone()));
    done.state = TransferState::Completed;
    done.bytes_confirmed = 1_048_576;
    done.ended_at_ms = Some(9_000);
    let second = fx.store.apply(&[
        Change::UpsertTransfer(done),
        Change::UpsertContact(NewContact {
            account: fx.account,
            address: "bob@localhost".into(),
            display_name: Some("Bob".into()),
            groups: vec!["Friends".into(), "Work \"quoted\"".into()],
            subscription: Subscription::Both,
        }),
    ])?;
    assert_eq!(second.outcomes[0], ChangeOutcome::Transfer(id));
    let transfers = fx.store.transfers(10)?;
    assert_eq!(transfers.len(), 1);
    assert_eq!(transfers[0].state, TransferState::Completed);
    assert_eq!(transfers[0].bytes_confirmed, 1_048_576);
    assert_eq!(transfers[0].sha256.as_deref(), Some(hash.as_str()));
    assert_eq!(transfers[0].started_at_ms, 5_000);

    let contacts = fx.store.contacts(fx.account)?;
    assert_eq!(contacts.len(), 1);
    assert_eq!(contacts[0].groups, ["Friends", "Work \"quoted\""]);
    let removed = fx.store.apply(&[
        Change::RemoveContact {
            account: fx.account,
            address: "bob@localhost".into(),
        },
        Change::RemoveContact {
            account: fx.account,
            address: "bob@localhost".into(),
        },
    ])?;
    assert_eq!(
        removed.outcomes,
        vec![ChangeOutcome::Removed, ChangeOutcome::Missing]
    );

    let err = fx
        .store
        .apply(&[Change::UpsertTransfer(NewTransfer {
            size_bytes: Some(u64::MAX),
            ..transfer(fx.account, "huge", None)
        })])
        .err()
        .context("u64::MAX does not fit SQLite's INTEGER")?;
    assert!(matches!(err.root(), StoreError::Invalid(_)), "{err:?}");
    Ok(())
}

#[test]
fn a_second_connection_reads_while_the_first_writes() -> Result<()> {
    let mut fx = fixture()?;
    let conversation = direct_conversation(&mut fx, "sip:bob@127.0.0.1")?;
    let reader = Store::open(&fx.path)?;
    fx.store.apply(&[Change::InsertMessage(incoming(
        conversation,
        "x",
        "visible",
        1,
    ))])?;
    assert_eq!(reader.messages(conversation, None, 10)?.len(), 1);

    // A store can move to another thread (the engine's storage thread).
    let path = fx.path.clone();
    let handle = std::thread::spawn(move || -> Result<usize> {
        let moved = reader;
        Ok(moved.search_messages("visible", 5)?.len() + Store::open(&path)?.accounts()?.len())
    });
    let found = handle
        .join()
        .map_err(|_| anyhow::anyhow!("reader thread panicked"))??;
    assert_eq!(found, 2);
    Ok(())
}

#[test]
fn in_memory_store_has_the_same_schema() -> Result<()> {
    let mut store = Store::open_in_memory()?;
    assert_eq!(store.schema_version()?, supported_version());
    assert_eq!(store.journal_mode()?, "memory");
    let outcome = store.apply(&[Change::UpsertAccount(new_account("alice@localhost", 1))])?;
    assert!(matches!(outcome.outcomes[0], ChangeOutcome::Account(_)));
    Ok(())
}

#[test]
fn account_settings_are_merged_and_null_removes_a_key() -> Result<()> {
    let mut fx = fixture()?;
    let mut update = new_account("sip:alice@127.0.0.1", 5_000);
    update.settings = serde_json::json!({ "profile": { "kind": "sip" } });
    fx.store.apply(&[Change::UpsertAccount(update.clone())])?;
    let settings = &fx.store.accounts()?[0].settings;
    assert_eq!(settings["expires"], 600, "keys not named stay");
    assert_eq!(settings["profile"]["kind"], "sip");

    update.settings = serde_json::json!({ "profile": null });
    fx.store.apply(&[Change::UpsertAccount(update)])?;
    let settings = &fx.store.accounts()?[0].settings;
    assert!(settings.get("profile").is_none(), "null removes the key");
    assert_eq!(settings["outbound"], true);
    Ok(())
}

fn sync_point(account: AccountId, archive: &str, last_id: &str, at: Option<i64>) -> ArchiveSync {
    ArchiveSync {
        account,
        archive: archive.to_owned(),
        last_id: last_id.to_owned(),
        last_at_ms: at,
        complete: false,
        updated_at_ms: 9_000,
    }
}

#[test]
fn an_archive_sync_point_moves_only_with_the_batch_that_stores_its_page() -> Result<()> {
    let mut fx = fixture()?;
    let conversation = direct_conversation(&mut fx, "bob@localhost")?;
    assert_eq!(fx.store.archive_sync(fx.account, "")?, None);
    fx.store.apply(&[
        Change::InsertMessage(incoming(conversation, "a1", "page one", 2_000)),
        Change::SetArchiveSync(sync_point(fx.account, "", "A1", Some(2_000))),
    ])?;
    assert_eq!(
        fx.store.archive_sync(fx.account, "")?,
        Some(sync_point(fx.account, "", "A1", Some(2_000)))
    );
    // A page whose messages cannot be stored leaves the point where it was.
    let failed = fx.store.apply(&[
        Change::InsertMessage(incoming(ConversationId(9_999), "a2", "lost?", 3_000)),
        Change::SetArchiveSync(sync_point(fx.account, "", "A2", Some(3_000))),
    ]);
    assert!(failed.is_err());
    assert_eq!(
        fx.store.archive_sync(fx.account, "")?.map(|s| s.last_id),
        Some("A1".to_owned())
    );
    // A page of items without bodies keeps the newest time it knew; rooms have their own.
    fx.store.apply(&[Change::SetArchiveSync(sync_point(
        fx.account, "", "A3", None,
    ))])?;
    let own = fx
        .store
        .archive_sync(fx.account, "")?
        .context("own point")?;
    assert_eq!((own.last_id.as_str(), own.last_at_ms), ("A3", Some(2_000)));
    assert_eq!(
        fx.store.archive_sync(fx.account, "room@muc.localhost")?,
        None
    );
    // An empty id is a bug, not a point.
    assert!(
        fx.store
            .apply(&[Change::SetArchiveSync(sync_point(fx.account, "", "", None))])
            .is_err()
    );
    Ok(())
}

#[test]
fn a_file_of_the_first_schema_gains_archive_sync_points() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = db_path(&dir);
    {
        // What the first release wrote: its schema and version 1, nothing newer.
        let mut store = Store::open(&path)?;
        store.apply(&[Change::UpsertAccount(new_account("xmpp-alice", 1))])?;
        drop(store);
        let conn = raw(&path)?;
        conn.execute_batch(
            "DROP TABLE archive_sync; DROP TABLE stream_resumption; PRAGMA user_version = 1;",
        )?;
    }
    let mut store = Store::open(&path)?;
    assert_eq!(store.schema_version()?, supported_version());
    let account = store.accounts()?[0].id;
    store.apply(&[Change::SetArchiveSync(sync_point(
        account,
        "",
        "A9",
        Some(5),
    ))])?;
    assert_eq!(
        store.archive_sync(account, "")?.map(|s| s.last_id),
        Some("A9".to_owned())
    );
    Ok(())
}

fn resumption(account: AccountId, id: &str, handled: u64) -> StreamResumption {
    StreamResumption {
        account,
        resume_id: id.to_owned(),
        jid: "alice@localhost/desk".to_owned(),
        handled,
        updated_at_ms: 9_000,
    }
}

#[test]
fn a_stream_resumption_is_kept_replaced_and_forgotten_per_account() -> Result<()> {
    let mut fx = fixture()?;
    assert_eq!(fx.store.stream_resumption(fx.account)?, None);
    fx.store
        .apply(&[Change::SetStreamResumption(resumption(fx.account, "s1", 4))])?;
    fx.store
        .apply(&[Change::SetStreamResumption(resumption(fx.account, "s1", 9))])?;
    assert_eq!(
        fx.store.stream_resumption(fx.account)?,
        Some(resumption(fx.account, "s1", 9))
    );
    // Kept across a reopen: what a restarted run reads.
    drop(fx.store);
    let mut store = Store::open(&fx.path)?;
    assert_eq!(
        store.stream_resumption(fx.account)?.map(|r| r.handled),
        Some(9)
    );
    let cleared = store.apply(&[Change::ClearStreamResumption {
        account: fx.account,
    }])?;
    assert_eq!(cleared.outcomes, [ChangeOutcome::Removed]);
    assert_eq!(store.stream_resumption(fx.account)?, None);
    // A bug is refused, not kept: an empty id, an unknown account.
    assert!(
        store
            .apply(&[Change::SetStreamResumption(resumption(fx.account, "", 1))])
            .is_err()
    );
    assert!(
        store
            .apply(&[Change::SetStreamResumption(resumption(
                AccountId(9_999),
                "s2",
                1
            ))])
            .is_err()
    );
    Ok(())
}
