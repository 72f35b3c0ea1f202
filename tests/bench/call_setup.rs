//! Call benchmark: prints figures, asserts nothing. Run with
//! `cargo run --release -p lyrebird-tests --bin bench-call -- [ROUNDS]` (the README and
//! BENCHMARKS.md say how the published figures were made).
//!
//! 1. Call setup through one Kamailio on loopback, from the dial to the first audio packet
//!    received on BOTH sides: Lyrebird → Chromium/JsSIP, and, in the same run, the reference
//!    Chromium/JsSIP → Chromium/JsSIP. Also Lyrebird → Lyrebird.
//! 2. CPU time per second of an established Opus call in a headless Lyrebird process, and the
//!    process's peak resident memory with one account and one call.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use serde_json::json;
use testkit::browser::{
    BrowserPeer, BrowserPeerOptions, browser_to_browser_setup, event_time, now_ms, summarize,
};
use testkit::json_lines::event_ms;
use testkit::lyrebird::{Lyrebird, LyrebirdOptions};
use testkit::procfs::{cpu_seconds, memory_kib};
use testkit::speech::phrase_wav;
use testkit::stack::{Stack, StackOptions};

const STEP: Duration = Duration::from_secs(20);

#[tokio::main]
async fn main() -> Result<()> {
    let rounds: usize = std::env::args()
        .nth(1)
        .map(|r| r.parse())
        .transpose()?
        .unwrap_or(10);
    let stack = Stack::start(StackOptions::kamailio_only())?;
    let dir = tempfile::tempdir()?;
    println!("# Lyrebird call benchmark ({rounds} rounds each, Kamailio on loopback)\n");

    let lyrebird_to_browser = lyrebird_to_browser(&stack, dir.path(), rounds).await?;
    let reference = browser_to_browser_setup(&stack, rounds).await?;
    let between_lyrebirds = lyrebird_to_lyrebird(&stack, dir.path(), rounds, &[]).await?;
    // A STUN or TURN server that never answers (a UDP socket nobody reads): what it adds to
    // the post-dial delay while gathering waits for it.
    let black_hole = std::net::UdpSocket::bind("127.0.0.1:0")?;
    let dead = black_hole.local_addr()?;
    let dead_stun = ["--ice-server".to_owned(), format!("stun:{dead}")];
    let with_dead_stun = lyrebird_to_lyrebird(&stack, dir.path(), rounds, &dead_stun).await?;
    let dead_turn = [
        "--ice-server".to_owned(),
        format!("turn:{dead}?transport=udp"),
        "--turn-user".to_owned(),
        "nobody".to_owned(),
        "--turn-password-env".to_owned(),
        "LYREBIRD_BENCH_TURN_PASSWORD".to_owned(),
    ];
    let with_dead_turn = lyrebird_to_lyrebird(&stack, dir.path(), rounds, &dead_turn).await?;

    let reference_both: Vec<f64> = reference.iter().map(|t| t.dial_to_both_ms).collect();
    println!("| dial → first audio received on both sides | |");
    println!("|---|---|");
    println!(
        "| Lyrebird → Chromium/JsSIP | {} |",
        summarize(&lyrebird_to_browser)
    );
    println!(
        "| Chromium/JsSIP → Chromium/JsSIP (reference) | {} |",
        summarize(&reference_both)
    );
    println!(
        "| Lyrebird → Lyrebird | {} |",
        summarize(&between_lyrebirds)
    );
    println!(
        "| Lyrebird → Lyrebird, a STUN server that does not answer | {} |",
        summarize(&with_dead_stun)
    );
    println!(
        "| Lyrebird → Lyrebird, a TURN server that does not answer | {} |",
        summarize(&with_dead_turn)
    );
    let reference_offer: Vec<f64> = reference.iter().map(|t| t.dial_to_offer_ms).collect();
    println!(
        "\nreference detail: JsSIP dial → offer ready (ICE gathering) {}",
        summarize(&reference_offer)
    );
    let ratio = median(&lyrebird_to_browser) / median(&reference_both);
    println!("ratio Lyrebird→browser / browser→browser (medians): {ratio:.2} (target ≤ 0.5)\n");

    let (cpu_percent, peak_kib, seconds) = established_call_cost(&stack, dir.path()).await?;
    println!("| established Opus call, headless lyrebird-cli | |");
    println!("|---|---|");
    println!(
        "| CPU per second of call | {cpu_percent:.2} % of one core (over {seconds:.0} s; target ≤ 2 %) |"
    );
    println!(
        "| peak resident memory (VmHWM), one account + one call | {:.1} MiB |",
        peak_kib as f64 / 1024.0
    );
    Ok(())
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN)
}

fn options(stack: &Stack, user: &str, dir: &Path) -> LyrebirdOptions {
    LyrebirdOptions::on_kamailio(stack, user, dir)
        // Quiet by default so logging costs nothing in the CPU figure; LYREBIRD_TEST_LOG to trace.
        .arg("--log")
        .arg(std::env::var("LYREBIRD_TEST_LOG").unwrap_or_else(|_| "warn".into()))
}

/// Lyrebird dials a JsSIP browser that answers at once; each round is timed from the moment the
/// command is written to Lyrebird until both have received audio.
async fn lyrebird_to_browser(stack: &Stack, dir: &Path, rounds: usize) -> Result<Vec<f64>> {
    let kamailio = stack.kamailio();
    let speech = phrase_wav(dir, 1)?;
    let mut browser = BrowserPeer::start(
        BrowserPeerOptions::new(
            kamailio.ws_url(),
            format!("sip:erin@{}", kamailio.domain()),
            "erin-secret",
        )
        .fake_audio(&speech)
        .auto_answer(true)
        .name("bench-erin"),
    )
    .await?;
    let mut alice = Lyrebird::start(
        options(stack, "alice", dir)
            .arg("--play")
            .arg(speech.to_string_lossy())
            .arg("--discard"),
    )
    .await?;
    browser.wait_for("registered", STEP).await?;
    alice.registered(STEP).await?;
    let target = format!("sip:erin@{}", kamailio.domain());
    let mut figures = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let dial = now_ms();
        let call = alice
            .command(json!({"cmd": "call", "target": target}))
            .await?["call"]
            .as_u64()
            .context("no call id")?;
        let ours = event_ms(&alice.call_state(call, "audio_flowing", STEP).await?)?;
        let theirs = event_time(&browser.wait_for("first_audio", STEP).await?)?;
        figures.push(ours.max(theirs) - dial);
        alice
            .command(json!({"cmd": "hangup", "call": call}))
            .await?;
        alice.call_state(call, "ended", STEP).await?;
        browser.wait_for("ended", STEP).await?;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    alice.quit().await?;
    browser.quit().await?;
    Ok(figures)
}

/// Calls between two Lyrebirds started with `extra` arguments each.
async fn lyrebird_to_lyrebird(
    stack: &Stack,
    dir: &Path,
    rounds: usize,
    extra: &[String],
) -> Result<Vec<f64>> {
    let speech = phrase_wav(dir, 2)?;
    let play = speech.to_string_lossy().into_owned();
    let with_extra = |mut options: LyrebirdOptions| {
        for arg in extra {
            options = options.arg(arg);
        }
        options.env("LYREBIRD_BENCH_TURN_PASSWORD", "nothing-to-guard")
    };
    let mut bob = Lyrebird::start(with_extra(
        options(stack, "bob", dir)
            .arg("--auto-answer")
            .arg("--play")
            .arg(&play)
            .arg("--discard"),
    ))
    .await?;
    let mut alice = Lyrebird::start(with_extra(
        options(stack, "carol", dir)
            .arg("--play")
            .arg(&play)
            .arg("--discard"),
    ))
    .await?;
    bob.registered(STEP).await?;
    alice.registered(STEP).await?;
    let target = format!("sip:bob@{}", stack.kamailio().domain());
    let mut figures = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let dial = now_ms();
        let call = alice
            .command(json!({"cmd": "call", "target": target}))
            .await?["call"]
            .as_u64()
            .context("no call id")?;
        let ours = event_ms(&alice.call_state(call, "audio_flowing", STEP).await?)?;
        let incoming = bob.incoming_call(STEP).await?;
        let theirs = event_ms(&bob.call_state(incoming, "audio_flowing", STEP).await?)?;
        figures.push(ours.max(theirs) - dial);
        alice
            .command(json!({"cmd": "hangup", "call": call}))
            .await?;
        alice.call_state(call, "ended", STEP).await?;
        bob.call_state(incoming, "ended", STEP).await?;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    alice.quit().await?;
    bob.quit().await?;
    Ok(figures)
}

/// An Opus call between two headless Lyrebirds, both sending speech; after it settles, the
/// caller's CPU is sampled over a fixed window.
async fn established_call_cost(stack: &Stack, dir: &Path) -> Result<(f64, u64, f64)> {
    const WINDOW: Duration = Duration::from_secs(20);
    let speech = phrase_wav(dir, 3)?;
    let play = speech.to_string_lossy().into_owned();
    let mut bob = Lyrebird::start(
        options(stack, "bob", dir)
            .arg("--auto-answer")
            .arg("--echo"),
    )
    .await?;
    let mut alice = Lyrebird::start(
        options(stack, "dave", dir)
            .arg("--play")
            .arg(&play)
            .arg("--loop-play")
            .arg("--record")
            .arg(dir.join("cost.wav").to_string_lossy()),
    )
    .await?;
    bob.registered(STEP).await?;
    alice.registered(STEP).await?;
    let call = alice
        .command(json!({"cmd": "call", "target": format!("sip:bob@{}", stack.kamailio().domain())}))
        .await?["call"]
        .as_u64()
        .context("no call id")?;
    alice.call_state(call, "audio_flowing", STEP).await?;
    let stats = alice.command(json!({"cmd": "stats", "call": call})).await?;
    println!("codec in use: {}", stats["stats"]["codec"]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pid = alice.pid().context("no pid")?;
    let before = cpu_seconds(pid).context("no CPU time")?;
    let started = std::time::Instant::now();
    tokio::time::sleep(WINDOW).await;
    let used = cpu_seconds(pid).context("no CPU time")? - before;
    let seconds = started.elapsed().as_secs_f64();
    let stats = alice.command(json!({"cmd": "stats", "call": call})).await?;
    ensure!(
        stats["stats"]["packets_received"].as_u64().unwrap_or(0) > 500,
        "the call carried no audio: {stats}"
    );
    let peak = memory_kib(pid).context("no VmHWM")?.1;
    alice
        .command(json!({"cmd": "hangup", "call": call}))
        .await?;
    alice.call_state(call, "ended", STEP).await?;
    alice.quit().await?;
    bob.quit().await?;
    Ok((used / seconds * 100.0, peak, seconds))
}
