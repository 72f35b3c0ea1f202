//! Calls and messages through a real Kamailio over WebSocket, between headless Lyrebirds and
//! between Lyrebird and a real Chromium running JsSIP. What is asserted is what a person would
//! check: the other side's speech is in the recording (and the wrong speech is not), the browser
//! decoded audio with energy, hang-up from either side ends both, messages arrive with their text
//! and are in history.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use serde_json::{Value, json};
use testkit::audio::similarity;
use testkit::browser::{BrowserPeer, BrowserPeerOptions};
use testkit::lyrebird::{Lyrebird, LyrebirdOptions, run_cli};
use testkit::speech::phrase_wav;
use testkit::stack::{Stack, StackOptions};

const SETUP: Duration = Duration::from_secs(20);
/// How long a call is held so several seconds of speech cross it.
const TALK: Duration = Duration::from_secs(7);

fn sip_stack() -> Result<Stack> {
    Stack::start(StackOptions {
        prosody: false,
        coturn: false,
        ..StackOptions::default()
    })
}

fn lyrebird_options(stack: &Stack, user: &str, dir: &Path) -> LyrebirdOptions {
    let kamailio = stack.kamailio();
    LyrebirdOptions::for_user(
        &kamailio.ws_url(),
        kamailio.domain(),
        user,
        &format!("{user}-secret"),
        dir,
    )
}

fn uri(stack: &Stack, user: &str) -> String {
    format!("sip:{user}@{}", stack.kamailio().domain())
}

fn call_id(result: &Value) -> Result<u64> {
    result["call"]
        .as_u64()
        .with_context(|| format!("no call id in {result}"))
}

/// Asserts that `recording` contains `expected` speech and not `other` speech.
fn assert_heard(recording: &Path, expected: &Path, other: &Path, who: &str) -> Result<()> {
    let right = similarity(expected, recording)?;
    let wrong = similarity(other, recording)?;
    println!(
        "{who}: expected speech score {:.2} (lag {:.0} ms), other speech {:.2}",
        right.score, right.lag_ms, wrong.score
    );
    ensure!(
        right.contains_reference(),
        "{who} did not hear the speech sent: {right:?}"
    );
    ensure!(
        !wrong.contains_reference(),
        "{who}'s recording matches speech that was never sent: {wrong:?}"
    );
    Ok(())
}

async fn history_calls(db: &Path) -> Result<Vec<Value>> {
    let db = db.to_string_lossy().into_owned();
    let lines = run_cli(&["--db", &db, "history", "calls"], Duration::from_secs(20)).await?;
    Ok(lines.into_iter().map(|l| l["call"].clone()).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_lyrebirds_hear_each_other_speak() -> Result<()> {
    let stack = sip_stack()?;
    let dir = tempfile::tempdir()?;
    let speech_alice = phrase_wav(dir.path(), 0)?;
    let speech_bob = phrase_wav(dir.path(), 1)?;
    let heard_by_alice = dir.path().join("heard-by-alice.wav");
    let heard_by_bob = dir.path().join("heard-by-bob.wav");

    let mut bob = Lyrebird::start(
        lyrebird_options(&stack, "bob", dir.path())
            .arg("--auto-answer")
            .arg("--play")
            .arg(speech_bob.to_string_lossy())
            .arg("--record")
            .arg(heard_by_bob.to_string_lossy()),
    )
    .await?;
    let mut alice = Lyrebird::start(lyrebird_options(&stack, "alice", dir.path())).await?;
    bob.registered(SETUP).await?;
    alice.registered(SETUP).await?;

    let result = alice
        .command(json!({"cmd": "call", "target": uri(&stack, "bob"),
                        "play": speech_alice, "record": heard_by_alice}))
        .await?;
    let call = call_id(&result)?;
    alice.call_state(call, "answered", SETUP).await?;
    alice.call_state(call, "audio_flowing", SETUP).await?;
    let bob_call = bob.incoming_call(SETUP).await?;
    bob.call_state(bob_call, "audio_flowing", SETUP).await?;
    tokio::time::sleep(TALK).await;
    alice
        .command(json!({"cmd": "hangup", "call": call}))
        .await?;
    alice.call_state(call, "ended", SETUP).await?;
    let ended = bob.call_state(bob_call, "ended", SETUP).await?;
    ensure!(
        ended["state"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("other side")),
        "bob: {ended}"
    );
    alice.quit().await?;
    bob.quit().await?;

    assert_heard(&heard_by_bob, &speech_alice, &speech_bob, "bob")?;
    assert_heard(&heard_by_alice, &speech_bob, &speech_alice, "alice")?;

    let alice_calls = history_calls(&dir.path().join("alice.sqlite3")).await?;
    ensure!(alice_calls.len() == 1, "alice's history: {alice_calls:?}");
    ensure!(
        alice_calls[0]["direction"] == "out" && alice_calls[0]["answered_at_ms"].is_i64(),
        "{alice_calls:?}"
    );
    ensure!(
        alice_calls[0]["end_reason"] == "local_hangup",
        "{alice_calls:?}"
    );
    let bob_calls = history_calls(&dir.path().join("bob.sqlite3")).await?;
    ensure!(
        bob_calls.len() == 1 && bob_calls[0]["direction"] == "in",
        "bob's history: {bob_calls:?}"
    );
    ensure!(
        bob_calls[0]["end_reason"] == "remote_hangup" && bob_calls[0]["missed"] == false,
        "{bob_calls:?}"
    );
    Ok(())
}

/// Waits until the browser has decoded audio with energy from the call.
async fn browser_hears_audio(browser: &mut BrowserPeer) -> Result<()> {
    let deadline = tokio::time::Instant::now() + SETUP;
    loop {
        let stats = browser.stats().await?;
        if stats.packets_received > 50 && stats.total_audio_energy > 0.0 && stats.audio_level > 0.0
        {
            println!("browser stats: {stats:?}");
            return Ok(());
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "the browser decoded no audio: {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lyrebird_calls_a_browser_and_the_browser_hangs_up() -> Result<()> {
    let stack = sip_stack()?;
    let dir = tempfile::tempdir()?;
    let speech_lyrebird = phrase_wav(dir.path(), 2)?;
    let speech_browser = phrase_wav(dir.path(), 3)?;
    let recording = dir.path().join("heard-from-browser.wav");

    let kamailio = stack.kamailio();
    let mut browser = BrowserPeer::start(
        BrowserPeerOptions::new(kamailio.ws_url(), uri(&stack, "carol"), "carol-secret")
            .fake_audio(&speech_browser)
            .auto_answer(true)
            .name("carol"),
    )
    .await?;
    browser.wait_for("registered", SETUP).await?;
    let mut alice = Lyrebird::start(lyrebird_options(&stack, "alice", dir.path())).await?;
    alice.registered(SETUP).await?;

    let result = alice
        .command(json!({"cmd": "call", "target": uri(&stack, "carol"),
                        "play": speech_lyrebird, "record": recording}))
        .await?;
    let call = call_id(&result)?;
    alice.call_state(call, "answered", SETUP).await?;
    alice.call_state(call, "audio_flowing", SETUP).await?;
    browser.wait_for("first_audio", SETUP).await?;
    browser_hears_audio(&mut browser).await?;
    tokio::time::sleep(TALK).await;

    browser.send(json!({"cmd": "hangup"})).await?;
    browser.wait_for("ended", SETUP).await?;
    let ended = alice.call_state(call, "ended", SETUP).await?;
    ensure!(
        ended["state"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("other side")),
        "{ended}"
    );
    alice.quit().await?;
    browser.quit().await?;

    // Chromium loops its fake-microphone file, so the recording holds the browser's speech.
    assert_heard(
        &recording,
        &speech_browser,
        &speech_lyrebird,
        "lyrebird (from the browser)",
    )?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_calls_lyrebird_and_lyrebird_hangs_up() -> Result<()> {
    let stack = sip_stack()?;
    let dir = tempfile::tempdir()?;
    let speech_lyrebird = phrase_wav(dir.path(), 4)?;
    let speech_browser = phrase_wav(dir.path(), 5)?;
    let recording = dir.path().join("heard-from-browser.wav");

    let kamailio = stack.kamailio();
    let mut browser = BrowserPeer::start(
        BrowserPeerOptions::new(kamailio.ws_url(), uri(&stack, "dave"), "dave-secret")
            .fake_audio(&speech_browser)
            .name("dave"),
    )
    .await?;
    let mut bob = Lyrebird::start(lyrebird_options(&stack, "bob", dir.path())).await?;
    browser.wait_for("registered", SETUP).await?;
    bob.registered(SETUP).await?;

    browser
        .send(json!({"cmd": "call", "target": uri(&stack, "bob")}))
        .await?;
    let call = bob.incoming_call(SETUP).await?;
    bob.command(
        json!({"cmd": "answer", "call": call, "play": speech_lyrebird, "record": recording}),
    )
    .await?;
    bob.call_state(call, "audio_flowing", SETUP).await?;
    browser.wait_for("confirmed", SETUP).await?;
    browser_hears_audio(&mut browser).await?;
    tokio::time::sleep(TALK).await;

    bob.command(json!({"cmd": "hangup", "call": call})).await?;
    bob.call_state(call, "ended", SETUP).await?;
    let ended = browser.wait_for("ended", SETUP).await?;
    ensure!(
        ended["originator"] == "remote",
        "the browser should see the remote side hang up: {ended}"
    );
    bob.quit().await?;
    browser.quit().await?;

    assert_heard(
        &recording,
        &speech_browser,
        &speech_lyrebird,
        "lyrebird (called by the browser)",
    )?;
    let calls = history_calls(&dir.path().join("bob.sqlite3")).await?;
    ensure!(
        calls.len() == 1
            && calls[0]["direction"] == "in"
            && calls[0]["end_reason"] == "local_hangup",
        "{calls:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_cross_both_ways_with_a_browser_and_land_in_history() -> Result<()> {
    let stack = sip_stack()?;
    let dir = tempfile::tempdir()?;
    let kamailio = stack.kamailio();
    let mut browser = BrowserPeer::start(
        BrowserPeerOptions::new(kamailio.ws_url(), uri(&stack, "erin"), "erin-secret").name("erin"),
    )
    .await?;
    let mut alice = Lyrebird::start(lyrebird_options(&stack, "alice", dir.path())).await?;
    browser.wait_for("registered", SETUP).await?;
    alice.registered(SETUP).await?;

    // Text a person might type, including markup and non-ASCII, must arrive as it was written.
    let to_browser = "Grüße from Lyrebird <b>not bold</b> & 🐦";
    let result = alice
        .command(json!({"cmd": "message", "target": uri(&stack, "erin"), "body": to_browser}))
        .await?;
    let message = result["message"].clone();
    alice
        .wait_for("delivery", SETUP, |e| {
            e["event"] == "message_delivered" && e["message"] == message
        })
        .await?;
    let received = browser.wait_for("message", SETUP).await?;
    ensure!(
        received["body"] == to_browser,
        "browser received {received}"
    );

    let to_lyrebird = "hello from the browser, naïve café";
    browser
        .send(json!({"cmd": "message", "target": uri(&stack, "alice"), "body": to_lyrebird}))
        .await?;
    let got = alice
        .wait_for("a message", SETUP, |e| e["event"] == "message_received")
        .await?;
    ensure!(got["body"] == to_lyrebird, "lyrebird received {got}");
    ensure!(
        got["from"].as_str().is_some_and(|f| f.contains("erin@")),
        "{got}"
    );
    alice.quit().await?;
    browser.quit().await?;

    let db = dir
        .path()
        .join("alice.sqlite3")
        .to_string_lossy()
        .into_owned();
    for (query, body) in [("Grüße", to_browser), ("cafe", to_lyrebird)] {
        let hits = run_cli(
            &["--db", &db, "history", "search", query],
            Duration::from_secs(20),
        )
        .await?;
        ensure!(
            hits.iter().any(|h| h["hit"]["message"]["body"] == body),
            "history search for {query:?} found {hits:?}"
        );
    }
    Ok(())
}
