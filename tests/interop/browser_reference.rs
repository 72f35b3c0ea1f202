//! The reference browser peer works: two JsSIP user agents in headless Chromium call and message
//! each other through the real Kamailio of the test bed.
//!
//! This is the control experiment for every Lyrebird-versus-browser test: when it passes and a
//! Lyrebird interop test fails, the fault is Lyrebird's. It also prints the reference call
//! set-up figures (dial → first inbound audio packets), which Lyrebird's are compared with.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use serde_json::{Value, json};
use testkit::browser::{
    BrowserPeer, BrowserPeerOptions, browser_to_browser_setup, chromium_is_running, event_time,
    require_browser_tools, summarize,
};
use testkit::speech::{phrase_wav, require_speech_tools};
use testkit::stack::{Stack, StackOptions};

const STEP: Duration = Duration::from_secs(20);

fn speech_dir() -> std::path::PathBuf {
    std::env::temp_dir().join("lyrebird-speech-cache")
}

fn field<'a>(event: &'a Value, name: &str) -> &'a str {
    event.get(name).and_then(Value::as_str).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jssip_browsers_call_and_message_each_other_through_kamailio() -> Result<()> {
    require_browser_tools()?;
    require_speech_tools()?;
    let stack = Stack::start(StackOptions::kamailio_only())?;
    let kamailio = stack.kamailio();
    let ws_url = kamailio.ws_url();
    let domain = kamailio.domain().to_owned();
    let alice_uri = format!("sip:alice@{domain}");
    let bob_uri = format!("sip:bob@{domain}");
    let alice_password = kamailio.password("alice").context("no alice")?.to_owned();
    let bob_password = kamailio.password("bob").context("no bob")?.to_owned();

    let (alice, bob) = tokio::join!(
        BrowserPeer::start(
            BrowserPeerOptions::new(&ws_url, &alice_uri, &alice_password)
                .fake_audio(phrase_wav(&speech_dir(), 0)?)
                .name("alice"),
        ),
        BrowserPeer::start(
            BrowserPeerOptions::new(&ws_url, &bob_uri, &bob_password)
                .fake_audio(phrase_wav(&speech_dir(), 1)?)
                .name("bob"),
        ),
    );
    let (mut alice, mut bob) = (alice?, bob?);
    alice.wait_for("registered", STEP).await?;
    bob.wait_for("registered", STEP).await?;

    // Alice calls, Bob answers when the INVITE arrives.
    alice
        .send(json!({ "cmd": "call", "target": bob_uri }))
        .await?;
    let dial = event_time(&alice.wait_for("dialing", STEP).await?)?;
    let incoming = bob.wait_for("incoming_call", STEP).await?;
    ensure!(
        field(&incoming, "from") == alice_uri,
        "incoming call from {incoming}"
    );
    bob.send(json!({ "cmd": "answer" })).await?;
    alice.wait_for("confirmed", STEP).await?;
    bob.wait_for("confirmed", STEP).await?;
    let alice_audio = event_time(&alice.wait_for("first_audio", STEP).await?)?;
    let bob_audio = event_time(&bob.wait_for("first_audio", STEP).await?)?;
    println!(
        "dial -> first audio: at alice {:.0} ms, at bob {:.0} ms (with a test-driven answer)",
        alice_audio - dial,
        bob_audio - dial
    );

    // Decoded audio that is not silence reaches both pages (the elements play it).
    for peer in [&mut alice, &mut bob] {
        let stats = peer.wait_for_decoded_audio(STEP).await?;
        println!("{}: {stats:?}", peer.label());
        ensure!(stats.packets_sent > 25, "{}: {stats:?}", peer.label());
        ensure!(
            stats
                .codec
                .as_deref()
                .is_some_and(|codec| codec.starts_with("audio/opus")),
            "{}: codec {:?}",
            peer.label(),
            stats.codec
        );
    }

    // MESSAGE both ways (RFC 3428), during the call.
    let to_bob = format!("hello bob, this is alice at {dial:.0}");
    let to_alice = format!("hi alice, bob here; ünïcödé ✓ {bob_audio:.0}");
    alice
        .send(json!({ "cmd": "message", "target": bob_uri, "body": to_bob }))
        .await?;
    bob.send(json!({ "cmd": "message", "target": alice_uri, "body": to_alice }))
        .await?;
    alice.wait_for("message_sent", STEP).await?;
    bob.wait_for("message_sent", STEP).await?;
    let at_bob = bob.wait_for("message", STEP).await?;
    let at_alice = alice.wait_for("message", STEP).await?;
    ensure!(
        field(&at_bob, "body") == to_bob && field(&at_bob, "from") == alice_uri,
        "bob got {at_bob}"
    );
    ensure!(
        field(&at_alice, "body") == to_alice && field(&at_alice, "from") == bob_uri,
        "alice got {at_alice}"
    );

    // Bob hangs up; Alice's session ends because of it.
    bob.send(json!({ "cmd": "hangup" })).await?;
    let bob_end = bob.wait_for("ended", STEP).await?;
    let alice_end = alice.wait_for("ended", STEP).await?;
    ensure!(field(&bob_end, "originator") == "local", "bob: {bob_end}");
    ensure!(
        field(&alice_end, "originator") == "remote" && field(&alice_end, "cause") == "Terminated",
        "alice: {alice_end}"
    );
    for peer in [&alice, &bob] {
        ensure!(
            peer.seen("error").is_none(),
            "{} reported {:?}",
            peer.label(),
            peer.seen("error")
        );
    }
    let (quit_alice, quit_bob) = tokio::join!(alice.quit(), bob.quit());
    quit_alice.context("alice quit")?;
    quit_bob.context("bob quit")?;
    drop(stack);
    Ok(())
}

/// The reference figure for Lyrebird's call set-up benchmark (INTEROP.md: ≈ 440 ms for first
/// RTP both ways). Printed, and bounded loosely so a broken peer cannot pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jssip_browser_to_browser_call_setup_figures() -> Result<()> {
    require_browser_tools()?;
    require_speech_tools()?;
    let stack = Stack::start(StackOptions::kamailio_only())?;
    let rounds = 5;
    let timings = browser_to_browser_setup(&stack, rounds).await?;
    ensure!(timings.len() == rounds, "{timings:?}");
    for (round, timing) in timings.iter().enumerate() {
        println!("round {round}: {timing:?}");
    }
    let pick = |f: fn(&testkit::browser::SetupTiming) -> f64| -> Vec<f64> {
        timings.iter().map(f).collect()
    };
    println!("JsSIP<->JsSIP via Kamailio WS, callee auto-answers:");
    println!(
        "  dial -> offer ready (ICE gathered): {}",
        summarize(&pick(|t| t.dial_to_offer_ms))
    );
    println!(
        "  dial -> 200 OK at caller:           {}",
        summarize(&pick(|t| t.dial_to_answer_ms))
    );
    println!(
        "  dial -> first audio at caller:      {}",
        summarize(&pick(|t| t.dial_to_caller_audio_ms))
    );
    println!(
        "  dial -> first audio at callee:      {}",
        summarize(&pick(|t| t.dial_to_callee_audio_ms))
    );
    println!(
        "  dial -> audio both ways:            {}",
        summarize(&pick(|t| t.dial_to_both_ms))
    );
    for timing in &timings {
        ensure!(
            timing.dial_to_both_ms > 0.0 && timing.dial_to_both_ms < 10_000.0,
            "implausible set-up time {timing:?}"
        );
    }
    drop(stack);
    Ok(())
}

/// A peer that is dropped without `quit` (a failing test) takes its Chromium with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_browser_peer_kills_its_chromium() -> Result<()> {
    require_browser_tools()?;
    // A port nobody listens on: the page starts and its WebSocket fails to connect.
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut peer = BrowserPeer::start(
        BrowserPeerOptions::new(
            format!("ws://127.0.0.1:{closed_port}"),
            "sip:nobody@localhost",
            "x",
        )
        .name("dropped"),
    )
    .await?;
    peer.wait_for("ws_disconnected", STEP).await?;
    let groups = peer.browser_process_groups().to_vec();
    ensure!(
        !groups.is_empty(),
        "no Chromium process found under the driver"
    );
    drop(peer);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while groups.iter().any(|pid| chromium_is_running(*pid)) {
        ensure!(
            std::time::Instant::now() < deadline,
            "Chromium {groups:?} still runs 5 s after the peer was dropped"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}
