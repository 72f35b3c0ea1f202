//! Video call benchmark: prints figures, asserts nothing. Run in a loopback namespace with
//! `$CARGO_TARGET_DIR/debug/bench-video [SECONDS [WxH [FPS [KBPS]]]]` (BENCHMARKS.md says how
//! the published figures were made; use a release CLI through `LYREBIRD_CLI`).
//!
//! Two Lyrebirds on one Kamailio call each other, each sending the test pattern. Every 200 ms
//! the bench reads both ends' statistics: the receiver's last counter read back and when that
//! picture was decoded, and the sender's first capture time, give the capture-to-decode
//! latency of that picture (frame `n` is taken `n` frame intervals after the first, exact while
//! the sender skips nothing — printed). CPU is each process's user + system time over the
//! measured window, per call end.
//!
//! The reference, in the same run: two Chromium tabs running JsSIP call each other at the
//! same size with Chromium's fake camera, and the CPU of each browser (all its processes) is
//! measured over the same length of time.

use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::{Value, json};
use testkit::browser::{BrowserPeer, BrowserPeerOptions, summarize};
use testkit::lyrebird::{Lyrebird, LyrebirdOptions, call_id};
use testkit::procfs::{cpu_seconds, process_tree};
use testkit::stack::{Stack, StackOptions};

const SETUP: Duration = Duration::from_secs(20);

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let seconds: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(10);
    let size = args.next().unwrap_or_else(|| "1280x720".to_owned());
    let fps: u32 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(30);
    let kbps: u32 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(1500);
    let stack = Stack::start(StackOptions::kamailio_only())?;
    let dir = testkit::test_dir("lyrebird-bench-video-")?;
    println!(
        "# Lyrebird video call benchmark ({size} at {fps} fps, {kbps} kbit/s, {seconds} s, Kamailio on loopback)\n"
    );

    let start = |user: &str, extra: &[&str]| {
        let mut options = LyrebirdOptions::on_kamailio(&stack, user, dir.path())
            .arg("--silence")
            .arg("--discard")
            .arg("--video")
            .arg("test-pattern")
            .arg("--video-size")
            .arg(size.as_str())
            .arg("--video-fps")
            .arg(fps.to_string())
            .arg("--video-bitrate")
            .arg(kbps.to_string());
        for arg in extra {
            options = options.arg(*arg);
        }
        Lyrebird::start(options)
    };
    let mut bob = start("bob", &["--auto-answer"]).await?;
    let mut alice = start("alice", &[]).await?;
    bob.registered(SETUP).await?;
    alice.registered(SETUP).await?;
    let call = call_id(
        &alice
            .command(
                json!({"cmd": "call", "target": format!("sip:bob@{}", stack.kamailio().domain())}),
            )
            .await?,
    )?;
    alice.call_state(call, "audio_flowing", SETUP).await?;
    let bob_call = bob.incoming_call(SETUP).await?;
    // The first second: keyframes, the encoders' start.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let pids = [
        alice.pid().context("alice has no pid")?,
        bob.pid().context("bob has no pid")?,
    ];
    let cpu_before: Vec<f64> = pids
        .iter()
        .map(|p| cpu_seconds(*p).unwrap_or(0.0))
        .collect();
    let window = std::time::Instant::now();
    let mut latencies = Vec::new();
    let rounds = seconds * 5;
    for _ in 0..rounds {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let sent = stats(&mut alice, call).await?;
        let received = stats(&mut bob, bob_call).await?;
        if let Some(ms) = latency(&sent, &received, fps) {
            latencies.push(ms);
        }
    }
    let elapsed = window.elapsed().as_secs_f64();
    let cpu: Vec<f64> = pids
        .iter()
        .zip(&cpu_before)
        .map(|(p, before)| (cpu_seconds(*p).unwrap_or(0.0) - before) / elapsed * 100.0)
        .collect();
    let sent = stats(&mut alice, call).await?;
    let received = stats(&mut bob, bob_call).await?;

    println!("| alice → bob | |");
    println!("|---|---|");
    println!(
        "| capture → decoded (test pattern counter) | {} |",
        summarize(&latencies)
    );
    let r = &received["video_received"];
    let s = &sent["video_sent"];
    println!(
        "| frames decoded / rate / freezes | {} / {} fps / {} |",
        r["frames_decoded"], r["frames_per_second"], r["freeze_count"]
    );
    println!(
        "| counters skipped / unreadable / backwards | {} / {} / {} |",
        r["counters_skipped"], r["counters_unreadable"], r["counters_backwards"]
    );
    println!(
        "| sender: frames encoded / skipped, bitrate now | {} / {}, {} kbit/s |",
        s["frames_encoded"], s["frames_skipped"], s["bitrate_kbps"]
    );
    println!(
        "| CPU per call end (both directions sending and receiving) | alice {:.0} %, bob {:.0} % of one core |",
        cpu[0], cpu[1]
    );
    alice
        .command(json!({"cmd": "hangup", "call": call}))
        .await?;
    alice.call_state(call, "ended", SETUP).await?;
    alice.quit().await?;
    bob.quit().await?;

    let (width, height) = size
        .split_once('x')
        .and_then(|(w, h)| Some((w.parse::<u32>().ok()?, h.parse::<u32>().ok()?)))
        .context("size is not WxH")?;
    let browser = |user: &str, answer: bool| {
        BrowserPeer::start(
            BrowserPeerOptions::new(
                stack.kamailio().ws_url(),
                format!("sip:{user}@{}", stack.kamailio().domain()),
                format!("{user}-secret"),
            )
            .video_size(width, height)
            .hold_resolution(true)
            .auto_answer(answer)
            .name(user),
        )
    };
    let mut carol = browser("carol", true).await?;
    let mut dave = browser("dave", false).await?;
    carol.wait_for("registered", SETUP).await?;
    dave.wait_for("registered", SETUP).await?;
    dave.send(json!({"cmd": "call", "target": format!("sip:carol@{}", stack.kamailio().domain())}))
        .await?;
    dave.wait_for("first_audio", SETUP).await?;
    carol.wait_for("first_audio", SETUP).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let tree_cpu = |peer: &BrowserPeer| -> f64 {
        peer.browser_process_groups()
            .iter()
            .filter_map(|group| u32::try_from(*group).ok())
            .flat_map(process_tree)
            .filter_map(cpu_seconds)
            .sum()
    };
    let before = (tree_cpu(&dave), tree_cpu(&carol));
    let window = std::time::Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let elapsed = window.elapsed().as_secs_f64();
    let browser_cpu = (
        (tree_cpu(&dave) - before.0) / elapsed * 100.0,
        (tree_cpu(&carol) - before.1) / elapsed * 100.0,
    );
    let seen = carol.stats().await?;
    println!(
        "| reference: Chromium/JsSIP ↔ Chromium/JsSIP, fake camera | decoded {} frames at {}x{}; CPU per call end: dave {:.0} %, carol {:.0} % of one core |",
        seen.video_frames_decoded,
        seen.video_width,
        seen.video_height,
        browser_cpu.0,
        browser_cpu.1
    );
    let ours = (cpu[0] + cpu[1]) / 2.0;
    let theirs = (browser_cpu.0 + browser_cpu.1) / 2.0;
    if theirs > 0.0 {
        println!(
            "| Lyrebird / Chromium CPU per call end | {:.2}× |",
            ours / theirs
        );
    }
    dave.send(json!({"cmd": "hangup"})).await?;
    dave.wait_for("ended", SETUP).await?;
    carol.quit().await?;
    dave.quit().await?;
    Ok(())
}

async fn stats(peer: &mut Lyrebird, call: u64) -> Result<Value> {
    Ok(peer.command(json!({"cmd": "stats", "call": call})).await?["stats"].clone())
}

/// Capture-to-decode latency of the receiver's last picture, in ms.
fn latency(sent: &Value, received: &Value, fps: u32) -> Option<f64> {
    let first = sent["video_sent"]["first_capture_unix_ms"].as_f64()?;
    let counter = received["video_received"]["last_counter"].as_f64()?;
    let decoded = received["video_received"]["last_counter_at_unix_ms"].as_f64()?;
    Some(decoded - (first + counter * 1000.0 / f64::from(fps)))
}
