//! Calls and messages through a real Kamailio over WebSocket, between headless Lyrebirds and
//! between Lyrebird and a real Chromium running JsSIP. What is asserted is what a person would
//! check: the other side's speech is in the recording (and the wrong speech is not), the browser
//! decoded audio with energy, hang-up from either side ends both, messages arrive with their text
//! and are in history.

use std::time::Duration;

use anyhow::{Result, ensure};
use serde_json::{Value, json};
use testkit::audio::assert_heard;
use testkit::browser::{BrowserPeer, BrowserPeerOptions};
use testkit::lyrebird::{Lyrebird, LyrebirdOptions, call_id, history_calls, run_cli};
use testkit::speech::phrase_wav;
use testkit::stack::{Stack, StackOptions, TurnAuth};

const SETUP: Duration = Duration::from_secs(20);
/// How long a call is held so several seconds of speech cross it.
const TALK: Duration = Duration::from_secs(7);

fn sip_stack() -> Result<Stack> {
    Stack::start(StackOptions::kamailio_only())
}

fn uri(stack: &Stack, user: &str) -> String {
    format!("sip:{user}@{}", stack.kamailio().domain())
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
        LyrebirdOptions::on_kamailio(&stack, "bob", dir.path())
            .arg("--auto-answer")
            .arg("--play")
            .arg(speech_bob.to_string_lossy())
            .arg("--record")
            .arg(heard_by_bob.to_string_lossy()),
    )
    .await?;
    let mut alice =
        Lyrebird::start(LyrebirdOptions::on_kamailio(&stack, "alice", dir.path())).await?;
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
    let mut alice =
        Lyrebird::start(LyrebirdOptions::on_kamailio(&stack, "alice", dir.path())).await?;
    alice.registered(SETUP).await?;

    let result = alice
        .command(json!({"cmd": "call", "target": uri(&stack, "carol"),
                        "play": speech_lyrebird, "record": recording}))
        .await?;
    let call = call_id(&result)?;
    alice.call_state(call, "answered", SETUP).await?;
    alice.call_state(call, "audio_flowing", SETUP).await?;
    browser.wait_for("first_audio", SETUP).await?;
    println!(
        "browser stats: {:?}",
        browser.wait_for_decoded_audio(SETUP).await?
    );
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
    let mut bob = Lyrebird::start(LyrebirdOptions::on_kamailio(&stack, "bob", dir.path())).await?;
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
    println!(
        "browser stats: {:?}",
        browser.wait_for_decoded_audio(SETUP).await?
    );
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
    let mut alice =
        Lyrebird::start(LyrebirdOptions::on_kamailio(&stack, "alice", dir.path())).await?;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_echo_service_sends_back_what_the_caller_says() -> Result<()> {
    let stack = sip_stack()?;
    let dir = tempfile::tempdir()?;
    let speech = phrase_wav(dir.path(), 0)?;
    let other = phrase_wav(dir.path(), 1)?;
    let echoed = dir.path().join("echoed.wav");
    let mut echo = Lyrebird::start(
        LyrebirdOptions::on_kamailio(&stack, "bob", dir.path())
            .arg("--auto-answer")
            .arg("--echo"),
    )
    .await?;
    let mut alice =
        Lyrebird::start(LyrebirdOptions::on_kamailio(&stack, "alice", dir.path())).await?;
    echo.registered(SETUP).await?;
    alice.registered(SETUP).await?;
    let result = alice
        .command(
            json!({"cmd": "call", "target": uri(&stack, "bob"), "play": speech, "record": echoed}),
        )
        .await?;
    let call = call_id(&result)?;
    alice.call_state(call, "audio_flowing", SETUP).await?;
    tokio::time::sleep(TALK).await;
    alice
        .command(json!({"cmd": "hangup", "call": call}))
        .await?;
    alice.call_state(call, "ended", SETUP).await?;
    alice.quit().await?;
    echo.quit().await?;
    assert_heard(&echoed, &speech, &other, "alice (her own echo)")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declined_and_cancelled_calls_end_on_both_sides_and_are_in_history() -> Result<()> {
    let stack = sip_stack()?;
    let dir = tempfile::tempdir()?;
    let mut alice = Lyrebird::start(
        LyrebirdOptions::on_kamailio(&stack, "alice", dir.path())
            .arg("--silence")
            .arg("--discard"),
    )
    .await?;
    let mut bob = Lyrebird::start(
        LyrebirdOptions::on_kamailio(&stack, "bob", dir.path())
            .arg("--silence")
            .arg("--discard"),
    )
    .await?;
    alice.registered(SETUP).await?;
    bob.registered(SETUP).await?;

    // Bob declines: alice hears 603 Decline.
    let call = call_id(
        &alice
            .command(json!({"cmd": "call", "target": uri(&stack, "bob")}))
            .await?,
    )?;
    alice.call_state(call, "ringing", SETUP).await?;
    let incoming = bob.incoming_call(SETUP).await?;
    bob.command(json!({"cmd": "reject", "call": incoming}))
        .await?;
    let ended = alice.call_state(call, "ended", SETUP).await?;
    ensure!(
        ended["state"]["status"] == 603,
        "alice should see 603 Decline: {ended}"
    );
    bob.call_state(incoming, "ended", SETUP).await?;

    // Alice gives up while it rings: CANCEL, bob's phone stops ringing, a missed call for bob.
    let call = call_id(
        &alice
            .command(json!({"cmd": "call", "target": uri(&stack, "bob")}))
            .await?,
    )?;
    alice.call_state(call, "ringing", SETUP).await?;
    let incoming = bob.incoming_call(SETUP).await?;
    alice
        .command(json!({"cmd": "hangup", "call": call}))
        .await?;
    alice.call_state(call, "ended", SETUP).await?;
    let ended = bob.call_state(incoming, "ended", SETUP).await?;
    ensure!(
        ended["state"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("cancel")),
        "bob: {ended}"
    );
    alice.quit().await?;
    bob.quit().await?;

    let calls = history_calls(&dir.path().join("bob.sqlite3")).await?;
    ensure!(calls.len() == 2, "bob's history: {calls:?}");
    // Newest first: the cancelled call is a missed call, the declined one is not shown as answered.
    ensure!(
        calls[0]["end_reason"] == "remote_cancel" && calls[0]["missed"] == true,
        "{calls:?}"
    );
    ensure!(calls[1]["answered_at_ms"].is_null(), "{calls:?}");
    let calls = history_calls(&dir.path().join("alice.sqlite3")).await?;
    ensure!(
        calls[0]["end_reason"] == "local_cancel" && calls[1]["end_reason"] == "declined",
        "{calls:?}"
    );
    Ok(())
}

/// Lyrebird unregisters when it quits: calling it afterwards gets the proxy's
/// 480 Temporarily Unavailable at once instead of a ring that nobody answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_quitting_lyrebird_is_no_longer_reachable() -> Result<()> {
    let stack = sip_stack()?;
    let dir = tempfile::tempdir()?;
    let mut alice = Lyrebird::start(
        LyrebirdOptions::on_kamailio(&stack, "alice", dir.path())
            .arg("--silence")
            .arg("--discard"),
    )
    .await?;
    let mut bob = Lyrebird::start(LyrebirdOptions::on_kamailio(&stack, "bob", dir.path())).await?;
    alice.registered(SETUP).await?;
    bob.registered(SETUP).await?;
    let history = bob.quit().await?;
    ensure!(
        history
            .iter()
            .any(|e| e["state"]["state"] == "unregistered"),
        "bob did not unregister: {history:?}"
    );
    let call = call_id(
        &alice
            .command(json!({"cmd": "call", "target": uri(&stack, "bob")}))
            .await?,
    )?;
    let ended = alice.call_state(call, "ended", SETUP).await?;
    ensure!(
        ended["state"]["status"] == 480,
        "expected 480 for an unregistered user: {ended}"
    );
    alice.quit().await?;
    Ok(())
}

/// The sound card path: bob uses the default input and output devices (a PulseAudio null sink
/// whose monitor is the default source, as `./task test` sets up), so what bob's speaker plays
/// is what bob's microphone picks up and sends back. Alice hearing her own speech proves cpal
/// playback and capture both work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sound_card_path_plays_and_captures() -> Result<()> {
    ensure!(
        std::env::var_os("LYREBIRD_TEST_NETNS").is_some(),
        "needs the PulseAudio null sink that ./task test starts; run it through ./task test"
    );
    let stack = sip_stack()?;
    let dir = tempfile::tempdir()?;
    let speech = phrase_wav(dir.path(), 2)?;
    let other = phrase_wav(dir.path(), 3)?;
    let heard = dir.path().join("heard.wav");
    let mut bob = Lyrebird::start(LyrebirdOptions::on_kamailio(&stack, "bob", dir.path())).await?;
    let mut alice =
        Lyrebird::start(LyrebirdOptions::on_kamailio(&stack, "alice", dir.path())).await?;
    bob.registered(SETUP).await?;
    alice.registered(SETUP).await?;
    let call = call_id(
        &alice
            .command(json!({"cmd": "call", "target": uri(&stack, "bob"), "play": speech, "loop": true, "record": heard}))
            .await?,
    )?;
    let incoming = bob.incoming_call(SETUP).await?;
    // No play/record: the sound card.
    bob.command(json!({"cmd": "answer", "call": incoming}))
        .await?;
    alice.call_state(call, "audio_flowing", SETUP).await?;
    // Device capture starts a second or two after the stream is opened (INTEROP.md).
    tokio::time::sleep(TALK + Duration::from_secs(3)).await;
    let stats = bob
        .command(json!({"cmd": "stats", "call": incoming}))
        .await?;
    println!("bob's stats with the sound card: {stats}");
    alice
        .command(json!({"cmd": "hangup", "call": call}))
        .await?;
    alice.call_state(call, "ended", SETUP).await?;
    alice.quit().await?;
    bob.quit().await?;
    assert_heard(
        &heard,
        &speech,
        &other,
        "alice (through bob's speaker and microphone)",
    )
}

/// A sound card that cannot be opened (none there, taken by another program, a device that
/// was unplugged) does not stop a call: it goes on without that device, and the person is
/// told which one and why. Alice has no microphone, Bob no speaker: Bob's speech still reaches
/// Alice, Alice's side sends silence, and each hears of the missing device.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_goes_on_without_a_sound_card_device_and_says_which() -> Result<()> {
    const NO_MICROPHONE: &str = "Lyrebird test: a microphone that is not there";
    const NO_SPEAKER: &str = "Lyrebird test: a speaker that is not there";
    let stack = sip_stack()?;
    let dir = tempfile::tempdir()?;
    let speech_bob = phrase_wav(dir.path(), 1)?;
    let other = phrase_wav(dir.path(), 0)?;
    let heard_by_alice = dir.path().join("heard-by-alice.wav");
    let mut bob = Lyrebird::start(
        LyrebirdOptions::on_kamailio(&stack, "bob", dir.path())
            .arg("--auto-answer")
            .arg("--play")
            .arg(speech_bob.to_string_lossy())
            .arg("--loop-play")
            .arg("--speaker")
            .arg(NO_SPEAKER),
    )
    .await?;
    let mut alice = Lyrebird::start(
        LyrebirdOptions::on_kamailio(&stack, "alice", dir.path())
            .arg("--microphone")
            .arg(NO_MICROPHONE),
    )
    .await?;
    bob.registered(SETUP).await?;
    alice.registered(SETUP).await?;
    let call = call_id(
        &alice
            .command(json!({"cmd": "call", "target": uri(&stack, "bob"), "record": heard_by_alice}))
            .await?,
    )?;
    let missing = |device: &'static str, name: &'static str| {
        move |e: &Value| {
            e["event"] == "call_device_unavailable"
                && e["device"] == device
                && e["reason"].as_str().is_some_and(|r| r.contains(name))
        }
    };
    let told = alice
        .seen_or_wait("no microphone", SETUP, missing("microphone", NO_MICROPHONE))
        .await?;
    ensure!(told["call"] == json!(call), "{told}");
    // Events read while looking for the one above are kept, so look among them too.
    let flowing = |call: u64| {
        move |e: &Value| {
            e["event"] == "call_state"
                && e["call"] == json!(call)
                && e["state"]["state"] == "audio_flowing"
        }
    };
    alice
        .seen_or_wait("alice's audio", SETUP, flowing(call))
        .await?;
    let bob_call = bob.incoming_call(SETUP).await?;
    bob.seen_or_wait("no speaker", SETUP, missing("speaker", NO_SPEAKER))
        .await?;
    bob.seen_or_wait("bob's audio", SETUP, flowing(bob_call))
        .await?;
    // Bob's phrase loops: long enough for it to be heard whole twice, since this test starts
    // while the binary's other tests start their servers and browsers.
    tokio::time::sleep(TALK + Duration::from_secs(5)).await;
    let bob_stats = bob
        .command(json!({"cmd": "stats", "call": bob_call}))
        .await?;
    println!("bob's stats without a speaker: {bob_stats}");
    ensure!(
        bob_stats["stats"]["packets_received"]
            .as_u64()
            .is_some_and(|n| n > 100),
        "alice's side sends (silence) without a microphone: {bob_stats}"
    );
    alice
        .command(json!({"cmd": "hangup", "call": call}))
        .await?;
    alice.call_state(call, "ended", SETUP).await?;
    bob.call_state(bob_call, "ended", SETUP).await?;
    alice.quit().await?;
    bob.quit().await?;
    assert_heard(
        &heard_by_alice,
        &speech_bob,
        &other,
        "alice, without a microphone",
    )
}

/// A peer that vanishes mid-call (its process killed: no BYE, no ICE, nothing) ends the call
/// within 30 s (ICE consent freshness, RFC 7675) with a reason that says so, and history records
/// it as failed, not as a hang-up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_whose_peer_vanishes_ends_and_says_why() -> Result<()> {
    let stack = sip_stack()?;
    let dir = tempfile::tempdir()?;
    let speech = phrase_wav(dir.path(), 1)?;
    let mut bob = Lyrebird::start(
        LyrebirdOptions::on_kamailio(&stack, "bob", dir.path())
            .arg("--auto-answer")
            .arg("--play")
            .arg(speech.to_string_lossy())
            .arg("--loop-play")
            .arg("--discard"),
    )
    .await?;
    let mut alice =
        Lyrebird::start(LyrebirdOptions::on_kamailio(&stack, "alice", dir.path())).await?;
    bob.registered(SETUP).await?;
    alice.registered(SETUP).await?;
    let call = call_id(
        &alice
            .command(json!({"cmd": "call", "target": uri(&stack, "bob"), "record": dir.path().join("heard.wav")}))
            .await?,
    )?;
    alice.call_state(call, "audio_flowing", SETUP).await?;
    bob.kill().await;
    let killed = std::time::Instant::now();
    let ended = alice
        .call_state(call, "ended", Duration::from_secs(45))
        .await?;
    println!(
        "the call ended {:.1} s after the peer vanished: {ended}",
        killed.elapsed().as_secs_f64()
    );
    let reason = ended["state"]["reason"].as_str().unwrap_or_default();
    ensure!(
        reason.contains("stopped answering"),
        "the reason does not say the other side vanished: {ended}"
    );
    alice.quit().await?;
    let calls = history_calls(&dir.path().join("alice.sqlite3")).await?;
    ensure!(
        calls.len() == 1 && calls[0]["end_reason"] == "failed",
        "alice's history: {calls:?}"
    );
    Ok(())
}

/// Media relayed through TURN only (coturn): Lyrebird gathers a relay candidate with the
/// configured long-term credentials and the call carries speech through it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_through_a_turn_relay_only() -> Result<()> {
    call_through_turn(TurnAuth::LongTerm, false).await
}

/// The same with TURN over TCP (for networks that let no UDP out): the WebRTC stack speaks UDP
/// to a bridge on loopback, and the bridge speaks TCP to coturn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_through_a_turn_relay_over_tcp() -> Result<()> {
    call_through_turn(TurnAuth::LongTerm, true).await
}

/// The same with time-limited credentials each side derives from the secret it shares with
/// coturn (the TURN REST API, coturn's `use-auth-secret`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_through_a_turn_relay_with_time_limited_credentials() -> Result<()> {
    call_through_turn(TurnAuth::SharedSecret, false).await
}

async fn call_through_turn(auth: TurnAuth, over_tcp: bool) -> Result<()> {
    let stack = Stack::start(StackOptions {
        prosody: false,
        turn_auth: auth,
        ..StackOptions::default()
    })?;
    let dir = tempfile::tempdir()?;
    let speech = phrase_wav(dir.path(), 0)?;
    let other = phrase_wav(dir.path(), 1)?;
    let heard = dir.path().join("heard-via-turn.wav");
    let coturn = stack.coturn();
    let relay = |options: LyrebirdOptions, user: &str| {
        let url = if over_tcp {
            coturn.turn_tcp_url()
        } else {
            coturn.turn_url()
        };
        let options = options.arg("--ice-server").arg(url).arg("--relay-only");
        match coturn.shared_secret() {
            Some(secret) => options
                .arg("--turn-user")
                .arg(user)
                .arg("--turn-secret-env")
                .arg("LYREBIRD_TEST_TURN_SECRET")
                .env("LYREBIRD_TEST_TURN_SECRET", secret),
            None => options
                .arg("--turn-user")
                .arg(coturn.username())
                .arg("--turn-password-env")
                .arg("LYREBIRD_TEST_TURN_PASSWORD")
                .env("LYREBIRD_TEST_TURN_PASSWORD", coturn.password()),
        }
    };
    let mut bob = Lyrebird::start(
        relay(
            LyrebirdOptions::on_kamailio(&stack, "bob", dir.path()),
            "bob",
        )
        .arg("--auto-answer")
        .arg("--play")
        .arg(speech.to_string_lossy())
        .arg("--discard"),
    )
    .await?;
    let mut alice = Lyrebird::start(
        relay(
            LyrebirdOptions::on_kamailio(&stack, "alice", dir.path()),
            "alice",
        )
        .arg("--silence")
        .arg("--record")
        .arg(heard.to_string_lossy()),
    )
    .await?;
    bob.registered(SETUP).await?;
    alice.registered(SETUP).await?;
    let call = call_id(
        &alice
            .command(json!({"cmd": "call", "target": uri(&stack, "bob")}))
            .await?,
    )?;
    alice.call_state(call, "audio_flowing", SETUP).await?;
    tokio::time::sleep(TALK).await;
    alice
        .command(json!({"cmd": "hangup", "call": call}))
        .await?;
    alice.call_state(call, "ended", SETUP).await?;
    alice.quit().await?;
    bob.quit().await?;
    let turn_log = std::fs::read_to_string(coturn.log_path()).unwrap_or_default();
    // Both sides allocated a relay, and media was sent through it (data relayed to a peer).
    let allocations = turn_log
        .lines()
        .filter(|l| l.contains("ALLOCATE processed, success"))
        .count();
    ensure!(
        allocations >= 2,
        "coturn logged {allocations} successful allocations:\n{turn_log}"
    );
    ensure!(
        turn_log
            .lines()
            .any(|l| l.contains("CHANNEL_BIND processed, success") || l.contains("SEND processed")),
        "no media relayed by coturn:\n{turn_log}"
    );
    if over_tcp {
        // Both sides reached coturn over TCP, not UDP.
        let tcp = turn_log
            .lines()
            .filter(|l| l.contains("tcp or tls connected to"))
            .count();
        ensure!(tcp >= 2, "coturn saw {tcp} TCP connections:\n{turn_log}");
    }
    if auth == TurnAuth::SharedSecret {
        // The allocations were made under derived names, `<expiry>:<user>`.
        ensure!(
            turn_log
                .lines()
                .any(|l| l.contains("ALLOCATE processed, success")
                    && l.split("user <")
                        .nth(1)
                        .and_then(|rest| rest.split_once(':'))
                        .is_some_and(|(expiry, user)| expiry.parse::<u64>().is_ok()
                            && user.starts_with("alice>"))),
            "no allocation under a time-limited user name for alice:\n{turn_log}"
        );
    }
    assert_heard(&heard, &speech, &other, "alice (through TURN)")
}
