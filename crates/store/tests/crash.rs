//! A process killed while it writes history — a crash, or a pulled plug as far as the process
//! can tell — leaves a database that opens, passes SQLite's own integrity check, and holds every
//! batch whose commit returned, whole, and nothing of a batch that did not commit.
//!
//! The writer is this test binary run again as a child (the `writer` test below does nothing
//! unless [`WRITER_FILE`] is set), so the kill lands in real SQLite writes of a real file.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use lyrebird_store::*;

/// The database the child writes; its presence makes the `writer` test write.
const WRITER_FILE: &str = "LYREBIRD_STORE_CRASH_WRITER";
/// Which round of kills this child belongs to (stable ids must not repeat across rounds).
const WRITER_ROUND: &str = "LYREBIRD_STORE_CRASH_ROUND";
const MESSAGES_PER_BATCH: usize = 100;
/// Bounds the child even if nobody kills it.
const MAX_BATCHES: usize = 5_000;

#[test]
fn writer() -> Result<()> {
    let Some(path) = std::env::var_os(WRITER_FILE) else {
        return Ok(());
    };
    let round = std::env::var(WRITER_ROUND).unwrap_or_default();
    let mut store = Store::open(Path::new(&path))?;
    let outcome = store.apply(&[Change::UpsertAccount(NewAccount {
        kind: AccountKind::Xmpp,
        address: "alice@localhost".into(),
        display_name: None,
        server_url: "ws://127.0.0.1:5280/xmpp-websocket".into(),
        settings: serde_json::json!({}),
        created_at_ms: 1,
    })])?;
    let ChangeOutcome::Account(account) = outcome.outcomes[0] else {
        bail!("unexpected outcome {outcome:?}");
    };
    let conversation = store
        .find_or_create_conversation(account, "bob@localhost", ConversationKind::Direct)?
        .id;
    let body = "a message long enough to spread a batch over several pages ".repeat(8);
    for batch in 0..MAX_BATCHES {
        let changes: Vec<Change> = (0..MESSAGES_PER_BATCH)
            .map(|i| {
                let at_ms = i64::try_from(batch * MESSAGES_PER_BATCH + i).unwrap_or(i64::MAX);
                Change::InsertMessage(NewMessage {
                    conversation,
                    direction: Direction::In,
                    sender: "bob@localhost".into(),
                    body: body.clone(),
                    content_type: "text/plain".into(),
                    stable_id: format!("{round}/{batch}/{i}"),
                    sent_at_ms: Some(at_ms),
                    received_at_ms: at_ms,
                    state: DeliveryState::Delivered,
                    corrects_stable_id: None,
                })
            })
            .collect();
        store.apply(&changes)?;
        println!("committed {batch}");
    }
    Ok(())
}

/// Runs the writer until it has reported `batches` commits, kills it with SIGKILL, and returns
/// the last batch it reported committed.
fn write_and_kill(path: &Path, round: usize, batches: usize) -> Result<usize> {
    let mut child = Command::new(std::env::current_exe()?)
        .args(["--exact", "writer", "--nocapture", "--test-threads=1"])
        .env(WRITER_FILE, path)
        .env(WRITER_ROUND, round.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().context("no stdout")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(batch) = line.strip_prefix("committed ")
                && let Ok(batch) = batch.trim().parse::<usize>()
                && tx.send(batch).is_err()
            {
                break;
            }
        }
    });
    let mut last = None;
    while last.is_none_or(|l| l + 1 < batches) {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(batch) => last = Some(batch),
            Err(_) => {
                let _ = child.kill();
                bail!("the writer stopped reporting commits (last {last:?})");
            }
        }
    }
    // SIGKILL while the next batch is being written.
    child.kill()?;
    child.wait()?;
    // Commits reported between the last read and the kill.
    while let Ok(batch) = rx.try_recv() {
        last = Some(batch);
    }
    last.context("no batch committed")
}

#[test]
fn a_kill_during_batch_writes_leaves_a_sound_database_with_every_committed_batch() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("history.sqlite3");
    for (round, batches) in [3, 11, 24].into_iter().enumerate() {
        let last = write_and_kill(&path, round, batches)?;

        let raw = rusqlite::Connection::open(&path)?;
        let verdict: String = raw.query_row("PRAGMA integrity_check", [], |row| row.get(0))?;
        ensure!(
            verdict == "ok",
            "round {round}: integrity check says {verdict}"
        );
        let mut per_batch = BTreeMap::<usize, usize>::new();
        let mut statement =
            raw.prepare("SELECT stable_id FROM messages WHERE stable_id LIKE ?1")?;
        let ids = statement.query_map([format!("{round}/%")], |row| row.get::<_, String>(0))?;
        for id in ids {
            let id = id?;
            let batch = id
                .split('/')
                .nth(1)
                .and_then(|b| b.parse::<usize>().ok())
                .with_context(|| format!("odd stable id {id}"))?;
            *per_batch.entry(batch).or_default() += 1;
        }
        for batch in 0..=last {
            let stored = per_batch.get(&batch).copied().unwrap_or(0);
            ensure!(
                stored == MESSAGES_PER_BATCH,
                "round {round}: committed batch {batch} has {stored} of {MESSAGES_PER_BATCH}"
            );
        }
        // The batch being written at the kill is all there (its commit finished before the
        // report) or not there at all; nothing after it.
        for (batch, stored) in per_batch.range(last + 1..) {
            ensure!(
                *batch == last + 1 && *stored == MESSAGES_PER_BATCH,
                "round {round}: batch {batch} after the last commit has {stored} messages"
            );
        }
        drop(statement);
        drop(raw);
        // And the store itself opens it and goes on.
        Store::open(&path).context("the store refuses the file after a kill")?;
    }
    Ok(())
}
