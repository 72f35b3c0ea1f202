//! XMPP benchmark: prints figures, asserts nothing. Run with
//! `cargo run --release -p lyrebird-tests --bin bench-xmpp -- [ROUNDS] [ARCHIVE]` inside the
//! test network namespace (see BENCHMARKS.md).
//!
//! 1. Message round trip (send → XEP-0184 receipt back) and throughput (N messages back to back
//!    until every receipt is back) between two Lyrebirds through Prosody, and in the same run
//!    between two xmpp.js clients (the reference library). Lyrebird's figures include the CLI's
//!    JSON-lines hop on stdin/stdout at both ends; xmpp.js is timed inside its process.
//! 2. Archive catch-up (XEP-0313) of ARCHIVE messages (default 10,000): Lyrebird from login to
//!    every message stored and found by full-text search, and xmpp.js fetching the same archive
//!    with the same page size.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::{Value, json};
use testkit::json_lines::JsonLines;
use testkit::stack::{Stack, StackOptions};
use testkit::xmpp::{online, start_lyrebird, start_reference};

fn stats(samples: &mut [f64]) -> String {
    if samples.is_empty() {
        return "no samples".into();
    }
    samples.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| samples[((samples.len() - 1) as f64 * p).round() as usize];
    let mean = samples.iter().sum::<f64>() / samples.len() as f64;
    format!(
        "median {:.2} ms, p90 {:.2} ms, mean {:.2} ms (n={})",
        pct(0.5),
        pct(0.9),
        mean,
        samples.len()
    )
}

async fn lyrebird(
    stack: &Stack,
    user: &str,
    dir: &std::path::Path,
    extra: &[&str],
) -> Result<JsonLines> {
    let mut p = start_lyrebird(
        &stack.prosody().ws_url(),
        &format!("{user}@localhost"),
        &format!("{user}-secret"),
        &dir.join(format!("{user}.sqlite3")),
        &dir.join(format!("{user}.log")),
        extra,
    )?;
    online(&mut p, Duration::from_secs(20)).await?;
    Ok(p)
}

async fn reference(
    stack: &Stack,
    user: &str,
    resource: &str,
    dir: &std::path::Path,
    extra: &[&str],
) -> Result<JsonLines> {
    let mut p = start_reference(
        &stack.prosody().ws_url(),
        &format!("{user}@localhost"),
        &format!("{user}-secret"),
        resource,
        &dir.join(format!("{user}-{resource}.log")),
        extra,
        None,
    )?;
    p.wait_for("online", Duration::from_secs(20), |e| {
        e["event"] == "online"
    })
    .await?;
    Ok(p)
}

fn now_ms() -> f64 {
    testkit::browser::now_ms()
}

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().map(|r| r.parse()).transpose()?.unwrap_or(50);
    let archive: usize = args
        .next()
        .map(|r| r.parse())
        .transpose()?
        .unwrap_or(10_000);
    let stack = Stack::start(StackOptions::prosody_only())?;
    let dir = tempfile::tempdir()?;
    println!("# Lyrebird XMPP benchmark (Prosody 0.12 on loopback, SQL storage)\n");

    // --- 1. Lyrebird ↔ Lyrebird
    let mut alice = lyrebird(&stack, "alice", dir.path(), &["--no-archive"]).await?;
    let bob = lyrebird(
        &stack,
        "bob",
        dir.path(),
        &["--no-archive", "--resource", "bench"],
    )
    .await?;
    let mut lyre_rtt = Vec::new();
    for i in 0..rounds {
        let t0 = now_ms();
        let sent = alice
            .command(
                json!({"cmd": "message", "to": "bob@localhost/bench", "body": format!("rtt {i}")}),
            )
            .await?;
        let id = sent["message"].clone();
        alice
            .wait_for("receipt", Duration::from_secs(10), |e| {
                e["event"] == "chat_message_state" && e["id"] == id && e["state"] == "delivered"
            })
            .await?;
        lyre_rtt.push(now_ms() - t0);
    }
    let flood = rounds * 10;
    let t0 = now_ms();
    let mut ids = Vec::with_capacity(flood);
    for i in 0..flood {
        let sent = alice
            .command(json!({"cmd": "message", "to": "bob@localhost/bench", "body": format!("flood {i}")}))
            .await?;
        ids.push(sent["message"].clone());
    }
    let last = ids.last().cloned().unwrap_or(Value::Null);
    alice
        .wait_for("last receipt", Duration::from_secs(120), |e| {
            e["event"] == "chat_message_state" && e["id"] == last && e["state"] == "delivered"
        })
        .await?;
    let lyre_flood_ms = now_ms() - t0;
    alice.quit().await?;
    bob.quit().await?;

    // --- 1b. xmpp.js ↔ xmpp.js (same server, same run)
    let mut carol = reference(&stack, "carol", "bench", dir.path(), &[]).await?;
    let dave = reference(&stack, "dave", "bench", dir.path(), &[]).await?;
    let r = carol
        .command_within(
            json!({"cmd": "rtt_receipt", "to": "dave@localhost/bench", "count": rounds}),
            Duration::from_secs(120),
        )
        .await?;
    let mut ref_rtt: Vec<f64> = r["samples"]
        .as_array()
        .context("no samples")?
        .iter()
        .filter_map(Value::as_f64)
        .collect();
    let f = carol
        .command_within(
            json!({"cmd": "flood_receipt", "to": "dave@localhost/bench", "count": flood}),
            Duration::from_secs(180),
        )
        .await?;
    let ref_flood_ms = f["elapsed_ms"].as_f64().unwrap_or(f64::NAN);
    dave.quit().await?;

    println!("| message round trip (send → receipt) | |");
    println!("|---|---|");
    println!("| Lyrebird → Lyrebird | {} |", stats(&mut lyre_rtt));
    println!("| xmpp.js → xmpp.js | {} |", stats(&mut ref_rtt));
    println!();
    println!("| throughput, {flood} messages until the last receipt | |");
    println!("|---|---|");
    println!(
        "| Lyrebird → Lyrebird | {:.0} ms ({:.0} msg/s) |",
        lyre_flood_ms,
        flood as f64 * 1000.0 / lyre_flood_ms
    );
    println!(
        "| xmpp.js → xmpp.js | {:.0} ms ({:.0} msg/s) |",
        ref_flood_ms,
        flood as f64 * 1000.0 / ref_flood_ms
    );
    println!();

    // --- 2. Archive catch-up: fill erin's archive while erin is offline.
    let started = Instant::now();
    carol
        .command_within(
            json!({"cmd": "burst", "to": "erin@localhost", "count": archive, "prefix": "archived"}),
            Duration::from_secs(600),
        )
        .await?;
    eprintln!(
        "filled the archive with {archive} messages in {:?}",
        started.elapsed()
    );
    carol.quit().await?;

    let mut erin = start_lyrebird(
        &stack.prosody().ws_url(),
        "erin@localhost",
        "erin-secret",
        &dir.path().join("erin.sqlite3"),
        &dir.path().join("erin.log"),
        &["--archive-page", "1000"],
    )?;
    let online_event = online(&mut erin, Duration::from_secs(20)).await?;
    let login_t = online_event["t_ms"].as_f64().unwrap_or_else(now_ms);
    let synced = erin
        .wait_for("archive synced", Duration::from_secs(300), |e| {
            e["event"] == "archive_synced"
        })
        .await?;
    let search = erin
        .command(json!({"cmd": "search", "query": format!("archived {}", archive - 1), "limit": 5}))
        .await?;
    let searchable_ms = now_ms() - login_t;
    let found = search["hits"].as_array().map(Vec::len).unwrap_or(0);
    erin.quit().await?;

    println!("| archive catch-up of {archive} messages (pages of 1000) | |");
    println!("|---|---|");
    println!(
        "| Lyrebird: login → all stored and searchable | {searchable_ms:.0} ms (fetched {}, stored {}, catch-up {} ms, search hits {found}) |",
        synced["fetched"], synced["new"], synced["elapsed_ms"]
    );
    let mut erin_ref = reference(&stack, "erin", "bench", dir.path(), &[]).await?;
    let m = erin_ref
        .command_within(json!({"cmd": "mam", "max": 1000}), Duration::from_secs(600))
        .await?;
    erin_ref.quit().await?;

    println!(
        "| xmpp.js: fetch the same archive | {:.0} ms ({} messages) |",
        m["elapsed_ms"].as_f64().unwrap_or(f64::NAN),
        m["total"]
    );
    // Lyrebird keeps XEP-0198 on, and then Prosody clones and queues every stanza it sends
    // (mod_smacks); the same fetch by xmpp.js with stream management shows that share.
    let with_sm = async {
        let mut p = reference(&stack, "erin", "bench-sm", dir.path(), &["--sm"]).await?;
        let m = p
            .command_within(json!({"cmd": "mam", "max": 1000}), Duration::from_secs(600))
            .await?;
        p.quit().await?;
        anyhow::Ok(m)
    };
    match with_sm.await {
        Ok(m) => println!(
            "| xmpp.js with stream management (XEP-0198): fetch the same archive | {:.0} ms ({} messages) |",
            m["elapsed_ms"].as_f64().unwrap_or(f64::NAN),
            m["total"]
        ),
        Err(e) => println!("| xmpp.js with stream management (XEP-0198) | failed: {e:#} |"),
    }
    Ok(())
}
