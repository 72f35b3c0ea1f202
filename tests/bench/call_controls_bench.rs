//! Call-controls benchmark: prints figures, asserts nothing. Run with
//! `cargo run --release -p lyrebird-tests --bin bench-call-controls -- [ROUNDS]` inside the
//! loopback-only namespace (BENCHMARKS.md has the exact commands and the figures).
//!
//! 1. CPU of a headless Lyrebird hosting a local conference of four remote parties (the
//!    engine mixes: each party gets everyone but itself) against the same process in one
//!    two-party call, same run, same codec (Opus), each party sending speech.
//! 2. Resume latency: from the resume command to the first audio the other side plays again,
//!    seen as its received-packet counter moving (sampled every 10 ms through `stats`).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use serde_json::{Value, json};
use testkit::browser::summarize;
use testkit::lyrebird::{Lyrebird, LyrebirdOptions, call_id};
use testkit::procfs::cpu_seconds;
use testkit::speech::phrase_wav;
use testkit::stack::{Stack, StackOptions};

const STEP: Duration = Duration::from_secs(20);
/// CPU is measured over this long, after the calls have settled.
const WINDOW: Duration = Duration::from_secs(15);
const PARTIES: [&str; 4] = ["bob", "carol", "dave", "erin"];

#[tokio::main]
async fn main() -> Result<()> {
    let rounds: usize = std::env::args()
        .nth(1)
        .map(|r| r.parse())
        .transpose()?
        .unwrap_or(10);
    let stack = Stack::start(StackOptions::kamailio_only())?;
    let dir = tempfile::tempdir()?;
    println!("# Lyrebird call-controls benchmark (Kamailio on loopback)\n");

    let (one_call, conference) = conference_cost(&stack, dir.path()).await?;
    println!("| host CPU, % of one core | |");
    println!("|---|---|");
    println!("| one two-party call | {:.2} % |", one_call * 100.0);
    println!(
        "| local conference, four remote parties | {:.2} % |",
        conference * 100.0
    );
    println!(
        "| conference ÷ one call | **{:.2}×** (target ≤ 3.5×) |\n",
        conference / one_call
    );

    let resume = resume_latency(&stack, dir.path(), rounds).await?;
    println!(
        "| resume → the other side receives audio again ({rounds} rounds) | {} |",
        summarize(&resume)
    );
    Ok(())
}

fn options(stack: &Stack, user: &str, dir: &Path) -> LyrebirdOptions {
    LyrebirdOptions::on_kamailio(stack, user, dir)
        // Quiet so logging costs nothing in the CPU figure; LYREBIRD_TEST_LOG to trace.
        .arg("--log")
        .arg(std::env::var("LYREBIRD_TEST_LOG").unwrap_or_else(|_| "warn".into()))
}

fn uri(stack: &Stack, user: &str) -> String {
    format!("sip:{user}@{}", stack.kamailio().domain())
}

/// The host's CPU (fraction of one core) over `WINDOW`.
async fn cpu_over_window(host: &Lyrebird) -> Result<f64> {
    let pid = host.pid().context("no pid")?;
    let before = cpu_seconds(pid).context("no CPU time")?;
    let started = Instant::now();
    tokio::time::sleep(WINDOW).await;
    let used = cpu_seconds(pid).context("no CPU time")? - before;
    Ok(used / started.elapsed().as_secs_f64())
}

/// One call, then the same host with four calls merged into a conference.
async fn conference_cost(stack: &Stack, dir: &Path) -> Result<(f64, f64)> {
    let mut parties = Vec::new();
    for (index, user) in PARTIES.iter().enumerate() {
        let speech = phrase_wav(dir, index)?;
        let party = Lyrebird::start(
            options(stack, user, dir)
                .arg("--auto-answer")
                .arg("--play")
                .arg(speech.to_string_lossy().into_owned())
                .arg("--loop-play")
                .arg("--discard"),
        )
        .await?;
        parties.push(party);
    }
    let host_speech = phrase_wav(dir, 5)?;
    let mut host = Lyrebird::start(
        options(stack, "alice", dir)
            .arg("--play")
            .arg(host_speech.to_string_lossy().into_owned())
            .arg("--loop-play")
            .arg("--discard"),
    )
    .await?;
    host.registered(STEP).await?;
    for party in &mut parties {
        party.registered(STEP).await?;
    }

    let first = call_id(
        &host
            .command(json!({"cmd": "call", "target": uri(stack, PARTIES[0])}))
            .await?,
    )?;
    host.call_state(first, "audio_flowing", STEP).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let one_call = cpu_over_window(&host).await?;

    let mut calls = vec![first];
    for user in &PARTIES[1..] {
        let call = call_id(
            &host
                .command(json!({"cmd": "call", "target": uri(stack, user)}))
                .await?,
        )?;
        host.call_state(call, "audio_flowing", STEP).await?;
        calls.push(call);
    }
    host.command(json!({"cmd": "merge", "calls": calls}))
        .await?;
    host.wait_for("the conference", STEP, |e| {
        e["event"] == "conference" && e["calls"].as_array().is_some_and(|c| c.len() == 4)
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let conference = cpu_over_window(&host).await?;
    for call in &calls {
        let stats = host.command(json!({"cmd": "stats", "call": call})).await?;
        ensure!(
            stats["stats"]["packets_sent"].as_u64().unwrap_or(0) > 500,
            "a conference call carried no audio: {stats}"
        );
    }
    host.quit().await?;
    for party in parties {
        party.quit().await?;
    }
    Ok((one_call, conference))
}

/// Hold, then time each resume until the other side's received-packet count moves.
async fn resume_latency(stack: &Stack, dir: &Path, rounds: usize) -> Result<Vec<f64>> {
    let speech = phrase_wav(dir, 6)?;
    let mut bob = Lyrebird::start(
        options(stack, "bob", dir)
            .arg("--auto-answer")
            .arg("--silence")
            .arg("--discard"),
    )
    .await?;
    let mut alice = Lyrebird::start(
        options(stack, "alice", dir)
            .arg("--play")
            .arg(speech.to_string_lossy().into_owned())
            .arg("--loop-play")
            .arg("--discard"),
    )
    .await?;
    bob.registered(STEP).await?;
    alice.registered(STEP).await?;
    let call = call_id(
        &alice
            .command(json!({"cmd": "call", "target": uri(stack, "bob")}))
            .await?,
    )?;
    alice.call_state(call, "audio_flowing", STEP).await?;
    let bob_call = bob
        .wait_for("the call", STEP, |e| e["event"] == "incoming_call")
        .await?["call"]
        .as_u64()
        .context("no id")?;
    let received = |v: &Value| v["stats"]["packets_received"].as_u64().unwrap_or(0);
    let mut latencies = Vec::new();
    for _ in 0..rounds {
        alice.command(json!({"cmd": "hold", "call": call})).await?;
        bob.wait_for("held", STEP, |e| {
            e["event"] == "call_hold" && e["remote"] == true
        })
        .await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let held_at = received(
            &bob.command(json!({"cmd": "stats", "call": bob_call}))
                .await?,
        );
        let started = Instant::now();
        alice
            .command(json!({"cmd": "resume", "call": call}))
            .await?;
        loop {
            let now = received(
                &bob.command(json!({"cmd": "stats", "call": bob_call}))
                    .await?,
            );
            if now > held_at {
                latencies.push(started.elapsed().as_secs_f64() * 1000.0);
                break;
            }
            ensure!(started.elapsed() < STEP, "no audio after resume");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        bob.wait_for("resumed", STEP, |e| {
            e["event"] == "call_hold" && e["remote"] == false
        })
        .await?;
    }
    alice.quit().await?;
    bob.quit().await?;
    Ok(latencies)
}
