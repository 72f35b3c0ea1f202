//! Prints write and search figures for a history file in a temporary directory:
//! `cargo run -p lyrebird-store --example store_bench [messages] [batch size]`.

use std::time::Instant;

use anyhow::{Context, Result, bail};
use lyrebird_store::*;

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let total: usize = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(20_000);
    let batch_size: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(100);
    if batch_size == 0 {
        bail!("batch size must be positive");
    }
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("bench.sqlite3");
    let mut store = Store::open(&path)?;
    let outcome = store.apply(&[Change::UpsertAccount(NewAccount {
        kind: AccountKind::Xmpp,
        address: "alice@localhost".into(),
        display_name: None,
        server_url: "ws://127.0.0.1:5280/xmpp-websocket".into(),
        settings: serde_json::json!({}),
        created_at_ms: 0,
    })])?;
    let ChangeOutcome::Account(account) = outcome.outcomes[0] else {
        bail!("no account id");
    };
    let conversation = store
        .find_or_create_conversation(account, "bob@localhost", ConversationKind::Direct)?
        .id;
    let words = [
        "café", "meeting", "tomorrow", "lyrebird", "call", "file", "résumé", "ok",
    ];
    let message = |i: usize| NewMessage {
        conversation,
        direction: if i.is_multiple_of(2) {
            Direction::In
        } else {
            Direction::Out
        },
        sender: "bob@localhost".into(),
        body: format!(
            "message {i} about {} and {} number {}",
            words[i % words.len()],
            words[(i / 3) % words.len()],
            i * 7
        ),
        content_type: "text/plain".into(),
        stable_id: format!("id-{i}"),
        sent_at_ms: Some(i as i64),
        received_at_ms: i as i64,
        state: DeliveryState::Delivered,
        corrects_stable_id: None,
    };

    let started = Instant::now();
    let mut i = 0;
    while i < total {
        let changes: Vec<Change> = (i..(i + batch_size).min(total))
            .map(|n| Change::InsertMessage(message(n)))
            .collect();
        store.apply(&changes)?;
        i += batch_size;
    }
    let insert = started.elapsed();
    println!(
        "insert {total} messages in batches of {batch_size}: {:.0} ms ({:.1} µs/message)",
        insert.as_secs_f64() * 1e3,
        insert.as_secs_f64() * 1e6 / total as f64
    );

    let started = Instant::now();
    let single = 200.min(total);
    for n in 0..single {
        store.apply(&[Change::InsertMessage(message(n))])?; // duplicates: one txn each
    }
    let dup = started.elapsed();
    println!(
        "{single} single-change batches (duplicates): {:.2} ms/batch",
        dup.as_secs_f64() * 1e3 / single as f64
    );

    for query in ["cafe", "RESUME", "lyre", "\"NEAR(* OR"] {
        let started = Instant::now();
        let hits = store.search_messages(query, 50)?;
        println!(
            "search {query:?}: {} hits (limit 50) in {:.2} ms",
            hits.len(),
            started.elapsed().as_secs_f64() * 1e3
        );
    }
    let started = Instant::now();
    let page = store.messages(conversation, None, 50)?;
    let first = page.first().context("no messages")?;
    let older = store.messages(conversation, Some(first.cursor()), 50)?;
    println!(
        "two history pages of 50: {:.2} ms ({} + {} rows)",
        started.elapsed().as_secs_f64() * 1e3,
        page.len(),
        older.len()
    );
    let size = std::fs::metadata(&path)?.len()
        + std::fs::metadata(path.with_extension("sqlite3-wal")).map_or(0, |m| m.len());
    println!("file + wal size: {:.1} MiB", size as f64 / 1048576.0);
    Ok(())
}
