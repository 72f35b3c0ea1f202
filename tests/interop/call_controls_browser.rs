//! Call controls with a real browser user: Chromium running JsSIP, through a real Kamailio over
//! WebSocket. Hold and resume from either side, key presses both ways (SIP INFO and RFC 4733),
//! transfers either side asks for, and a transfer to nobody. What is asserted is what the people
//! on the call would notice: silence while the call is held and sound again after, the digits
//! pressed arriving in the order pressed, the transferred parties hearing each other, and a
//! failed transfer leaving the call as it was.
//!
//! Timing: windows of a call are measured on the wall clock that Lyrebird's events (`t_ms`), the
//! browser's events (`t`) and this test share, and every window is entered only [`SETTLE`] after
//! the change it follows was confirmed by both sides, so how long a change takes is never
//! asserted.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use serde_json::{Value, json};
use testkit::audio::{assert_heard, read_wav_mono, rms_between, tone_power, write_tone_wav};
use testkit::browser::{BrowserPeer, BrowserPeerOptions, PeerStats};
use testkit::lyrebird::{Lyrebird, LyrebirdOptions, call_id};
use testkit::speech::phrase_wav;
use testkit::stack::{Stack, StackOptions};

const SETUP: Duration = Duration::from_secs(20);
/// How long each stretch of a call (talking, held, resumed) is observed.
const STRETCH: Duration = Duration::from_secs(4);
/// Left after a change (hold, resume, transfer) before a stretch is observed, and cut from the
/// end of each stretch of a recording: covers the jitter buffer and the recording starting a
/// little after the call was placed.
const SETTLE: Duration = Duration::from_secs(1);
/// How long a transferred call is kept so several seconds of speech cross it.
const TALK: Duration = Duration::from_secs(7);
/// Every key, in the order a person would type them on a keypad.
const KEYS: &str = "123456789*0#";
/// RMS (full scale 1) above which a stretch of a recording holds sound: the tones sent have an
/// RMS near 0.2.
const SOUND: f64 = 0.02;
/// RMS below which a stretch of a recording is silent (−60 dBFS).
const SILENCE: f64 = 0.001;

fn sip_stack() -> Result<Stack> {
    Stack::start(StackOptions::kamailio_only())
}

fn browser_options(stack: &Stack, user: &str) -> BrowserPeerOptions {
    BrowserPeerOptions::new(
        stack.kamailio().ws_url(),
        uri(stack, user),
        format!("{user}-secret"),
    )
    .name(user)
}

fn uri(stack: &Stack, user: &str) -> String {
    format!("sip:{user}@{}", stack.kamailio().domain())
}

fn t_ms(event: &Value) -> Result<f64> {
    event["t_ms"]
        .as_f64()
        .with_context(|| format!("event without t_ms: {event}"))
}

/// Waits for Lyrebird to report who holds `call`.
async fn hold_reported(
    lyrebird: &mut Lyrebird,
    call: u64,
    local: bool,
    remote: bool,
) -> Result<Value> {
    let what = format!("call {call} held locally {local}, remotely {remote}");
    lyrebird
        .wait_for(&what, SETUP, |e| {
            e["event"] == "call_hold"
                && e["call"] == json!(call)
                && e["local"] == json!(local)
                && e["remote"] == json!(remote)
        })
        .await
}

/// The `call_transfer` events of `call` up to and including the final one.
async fn transfer_progress(lyrebird: &mut Lyrebird, call: u64) -> Result<Vec<Value>> {
    let mut progress = Vec::new();
    loop {
        let event = lyrebird
            .wait_for("transfer progress", SETUP, |e| {
                e["event"] == "call_transfer" && e["call"] == json!(call)
            })
            .await?;
        progress.push(event.clone());
        if event["final"] == json!(true) {
            return Ok(progress);
        }
    }
}

/// The browser's counters at the start and at the end of `span`.
async fn observe(browser: &mut BrowserPeer, span: Duration) -> Result<(PeerStats, PeerStats)> {
    let before = browser.stats().await?;
    tokio::time::sleep(span).await;
    let after = browser.stats().await?;
    Ok((before, after))
}

/// What a Lyrebird recorded, placed on the wall clock: sample 0 is taken to be `start_ms` (the
/// call's `dialing` event or the answer command's result, around when its media — and so the
/// recording — started).
struct Recording {
    samples: Vec<f32>,
    rate: u32,
    start_ms: f64,
}

impl Recording {
    fn open(path: &Path, start_ms: f64) -> Result<Self> {
        let (samples, rate) = read_wav_mono(path)?;
        Ok(Self {
            samples,
            rate,
            start_ms,
        })
    }

    /// RMS level of what was recorded between two wall-clock instants (ms), the last
    /// [`SETTLE`] cut off: the recording starts a little after `start_ms`, so a stretch of it
    /// lies a little later than the wall clock says.
    fn level(&self, from_ms: f64, to_ms: f64) -> Result<f64> {
        let from_s = (from_ms - self.start_ms) / 1000.0;
        let to_s = (to_ms - self.start_ms) / 1000.0 - SETTLE.as_secs_f64();
        rms_between(&self.samples, self.rate, from_s, to_s).with_context(|| {
            format!(
                "the recording ({:.1} s) has nothing from {from_s:.1} s to {to_s:.1} s",
                self.samples.len() as f64 / f64::from(self.rate)
            )
        })
    }
}

/// Who places the call a hold test holds; the DTLS roles (and so what a re-offer's answer must
/// keep) differ between the two.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    Lyrebird,
    Browser,
}

/// Lyrebird holds a call it placed to a browser and resumes it; then the browser holds and
/// resumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_and_resume_both_ways_with_a_browser() -> Result<()> {
    hold_and_resume_both_ways(Caller::Lyrebird).await
}

/// The same when the browser placed the call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_and_resume_both_ways_when_the_browser_called() -> Result<()> {
    hold_and_resume_both_ways(Caller::Browser).await
}

/// Lyrebird holds and resumes, then the browser holds and resumes. Both sides send a steady
/// tone, so every stretch of the call either has sound or has none.
async fn hold_and_resume_both_ways(caller: Caller) -> Result<()> {
    let stack = sip_stack()?;
    let dir = testkit::test_dir("lyrebird-call-controls-browser-")?;
    let browser_tone = dir.path().join("browser-tone.wav");
    write_tone_wav(&browser_tone, 660, 10, 0.3)?;
    let recording = dir.path().join("heard-from-browser.wav");

    let mut browser = BrowserPeer::start(
        browser_options(&stack, "carol")
            .fake_audio(&browser_tone)
            .auto_answer(true),
    )
    .await?;
    browser.wait_for("registered", SETUP).await?;
    let mut alice = Lyrebird::start(
        LyrebirdOptions::on_kamailio(&stack, "alice", dir.path())
            .arg("--tone")
            .arg("440"),
    )
    .await?;
    alice.registered(SETUP).await?;

    // `start_ms`: when the recording began, as near as the events tell (see `Recording`).
    let (call, start_ms) = match caller {
        Caller::Lyrebird => {
            let call = call_id(
                &alice
                    .command(
                        json!({"cmd": "call", "target": uri(&stack, "carol"), "record": recording}),
                    )
                    .await?,
            )?;
            (
                call,
                t_ms(&alice.call_state(call, "dialing", SETUP).await?)?,
            )
        }
        Caller::Browser => {
            browser
                .send(json!({"cmd": "call", "target": uri(&stack, "alice")}))
                .await?;
            let call = alice.incoming_call(SETUP).await?;
            let answered = alice
                .command(json!({"cmd": "answer", "call": call, "record": recording}))
                .await?;
            (call, t_ms(&answered)?)
        }
    };
    alice.call_state(call, "audio_flowing", SETUP).await?;
    browser.wait_for_decoded_audio(SETUP).await?;
    tokio::time::sleep(SETTLE).await;
    let (talk_start, talk_end) = observe(&mut browser, STRETCH).await?;

    // Lyrebird holds: the browser is told (its JsSIP reports a remote hold) and nothing flows
    // either way.
    alice.command(json!({"cmd": "hold", "call": call})).await?;
    hold_reported(&mut alice, call, true, false).await?;
    let held = browser.wait_for("hold", SETUP).await?;
    ensure!(held["originator"] == "remote", "browser: {held}");
    tokio::time::sleep(SETTLE).await;
    let (held_start, held_end) = observe(&mut browser, STRETCH).await?;

    alice
        .command(json!({"cmd": "resume", "call": call}))
        .await?;
    hold_reported(&mut alice, call, false, false).await?;
    let resumed = browser.wait_for("unhold", SETUP).await?;
    ensure!(resumed["originator"] == "remote", "browser: {resumed}");
    tokio::time::sleep(SETTLE).await;
    let (resumed_start, resumed_end) = observe(&mut browser, STRETCH).await?;

    // The browser holds: Lyrebird shows the call as held by the other side and sends it
    // nothing until it resumes.
    browser.send(json!({"cmd": "hold"})).await?;
    let held = browser.wait_for("hold", SETUP).await?;
    ensure!(held["originator"] == "local", "browser: {held}");
    hold_reported(&mut alice, call, false, true).await?;
    tokio::time::sleep(SETTLE).await;
    let (browser_held_start, browser_held_end) = observe(&mut browser, STRETCH).await?;

    browser.send(json!({"cmd": "unhold"})).await?;
    let resumed = browser.wait_for("unhold", SETUP).await?;
    ensure!(resumed["originator"] == "local", "browser: {resumed}");
    hold_reported(&mut alice, call, false, false).await?;
    tokio::time::sleep(SETTLE).await;
    let (unheld_start, unheld_end) = observe(&mut browser, STRETCH).await?;

    alice
        .command(json!({"cmd": "hangup", "call": call}))
        .await?;
    alice.call_state(call, "ended", SETUP).await?;
    browser.wait_for("ended", SETUP).await?;
    alice.quit().await?;
    browser.quit().await?;

    // What the browser received in each stretch.
    let stretches = [
        ("talking", &talk_start, &talk_end),
        ("held by Lyrebird", &held_start, &held_end),
        ("resumed by Lyrebird", &resumed_start, &resumed_end),
        (
            "held by the browser",
            &browser_held_start,
            &browser_held_end,
        ),
        ("resumed by the browser", &unheld_start, &unheld_end),
    ];
    for (name, start, end) in &stretches {
        println!(
            "browser, {name}: {} packets, audio energy {:.4}",
            end.packets_received - start.packets_received,
            end.total_audio_energy - start.total_audio_energy
        );
    }
    let talk_energy = talk_end.total_audio_energy - talk_start.total_audio_energy;
    ensure!(
        talk_end.packets_received > talk_start.packets_received && talk_energy > 0.0,
        "the browser heard nothing before the hold: {talk_start:?} -> {talk_end:?}"
    );
    for (name, start, end) in [&stretches[1], &stretches[3]] {
        ensure!(
            end.packets_received == start.packets_received,
            "audio reached the browser while {name}: {start:?} -> {end:?}"
        );
        ensure!(
            end.total_audio_energy - start.total_audio_energy < talk_energy / 100.0,
            "the browser played sound while {name}: {start:?} -> {end:?}"
        );
    }
    for (name, start, end) in [&stretches[2], &stretches[4]] {
        ensure!(
            end.packets_received > start.packets_received
                && end.total_audio_energy - start.total_audio_energy > talk_energy / 4.0,
            "audio did not reach the browser again when {name}: {start:?} -> {end:?}"
        );
    }

    // What Lyrebird recorded from the browser in the same stretches.
    let heard = Recording::open(&recording, start_ms)?;
    let level = |start: &PeerStats, end: &PeerStats| heard.level(start.t, end.t);
    let talking = level(&talk_start, &talk_end)?;
    let held = level(&held_start, &held_end)?;
    let resumed = level(&resumed_start, &resumed_end)?;
    let unheld = level(&unheld_start, &unheld_end)?;
    println!(
        "lyrebird's recording (RMS): talking {talking:.4}, held {held:.5}, resumed {resumed:.4}, \
         after the browser resumed {unheld:.4}"
    );
    ensure!(
        talking > SOUND,
        "lyrebird heard nothing before the hold: {talking}"
    );
    ensure!(
        held < SILENCE,
        "lyrebird's recording has sound while it held the call: {held}"
    );
    ensure!(
        resumed > SOUND,
        "lyrebird heard nothing after resuming: {resumed}"
    );
    ensure!(
        unheld > SOUND,
        "lyrebird heard nothing after the browser resumed: {unheld}"
    );
    Ok(())
}

/// Key presses both ways: Lyrebird's as SIP INFO reach JsSIP; the browser's as RFC 4733 events
/// in the audio and as SIP INFO reach Lyrebird; every digit once, in the order pressed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_presses_cross_both_ways_with_a_browser() -> Result<()> {
    let stack = sip_stack()?;
    let dir = testkit::test_dir("lyrebird-call-controls-browser-")?;
    let mut browser = BrowserPeer::start(browser_options(&stack, "dave").auto_answer(true)).await?;
    browser.wait_for("registered", SETUP).await?;
    let mut alice = Lyrebird::start(
        LyrebirdOptions::on_kamailio(&stack, "alice", dir.path())
            .arg("--dtmf")
            .arg("info")
            .arg("--silence")
            .arg("--discard"),
    )
    .await?;
    alice.registered(SETUP).await?;

    let call = call_id(
        &alice
            .command(json!({"cmd": "call", "target": uri(&stack, "dave")}))
            .await?,
    )?;
    alice.call_state(call, "audio_flowing", SETUP).await?;
    browser.wait_for("confirmed", SETUP).await?;
    browser.wait_for("first_audio", SETUP).await?;

    for key in KEYS.chars() {
        alice
            .command(json!({"cmd": "dtmf", "call": call, "digit": key.to_string()}))
            .await?;
    }
    let mut got = String::new();
    for _ in KEYS.chars() {
        let event = browser.wait_for("dtmf", SETUP).await?;
        got.push_str(event["tone"].as_str().unwrap_or("?"));
    }
    ensure!(
        got == KEYS,
        "JsSIP received {got:?} for the INFO keys {KEYS:?}"
    );

    // The browser presses the keys twice, first as RFC 4733 events, then as INFO. Lyrebird's
    // reports of both, in order, must be the keys twice: a duplicate or a lost event shows.
    browser
        .send(json!({"cmd": "dtmf", "tones": KEYS, "transport": "RFC2833"}))
        .await?;
    let mut got = String::new();
    for _ in KEYS.chars() {
        let event = alice
            .wait_for("a key press", SETUP, |e| {
                e["event"] == "dtmf_received" && e["call"] == json!(call)
            })
            .await?;
        got.push_str(event["digit"].as_str().unwrap_or("?"));
    }
    ensure!(
        got == KEYS,
        "lyrebird reported {got:?} for the RFC 4733 keys {KEYS:?}"
    );
    // The last event's end packets are sent three times (RFC 4733 §2.5.1.4): wait for the
    // browser to finish sending before the next keys, so a late duplicate cannot pass for one.
    browser
        .wait_for_where("dtmf_sent", SETUP, |e| e["tone"] == "#")
        .await?;

    browser
        .send(json!({"cmd": "dtmf", "tones": KEYS, "transport": "INFO"}))
        .await?;
    for _ in KEYS.chars() {
        let event = alice
            .wait_for("a key press", SETUP, |e| {
                e["event"] == "dtmf_received" && e["call"] == json!(call)
            })
            .await?;
        got.push_str(event["digit"].as_str().unwrap_or("?"));
    }
    ensure!(
        got == format!("{KEYS}{KEYS}"),
        "lyrebird reported {got:?} for the RFC 4733 keys and then the INFO keys {KEYS:?}"
    );
    browser
        .wait_for_where("dtmf_sent", SETUP, |e| e["tone"] == "#")
        .await?;

    alice
        .command(json!({"cmd": "hangup", "call": call}))
        .await?;
    alice.call_state(call, "ended", SETUP).await?;
    browser.wait_for("ended", SETUP).await?;
    let history = alice.quit().await?;
    browser.quit().await?;
    let reported: String = history
        .iter()
        .filter(|e| e["event"] == "dtmf_received")
        .map(|e| e["digit"].as_str().unwrap_or("?"))
        .collect();
    ensure!(
        reported == format!("{KEYS}{KEYS}"),
        "every key press lyrebird reported during the call: {reported:?}"
    );
    Ok(())
}

/// Lyrebird A calls the browser user B and transfers B to Lyrebird C (blind): the browser
/// follows the REFER, B and C hear each other, and A's call ends once the browser reports the
/// new call answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lyrebird_transfers_a_browser_to_another_lyrebird() -> Result<()> {
    let stack = sip_stack()?;
    let dir = testkit::test_dir("lyrebird-call-controls-browser-")?;
    let speech_a = phrase_wav(dir.path(), 0)?;
    let speech_b = phrase_wav(dir.path(), 1)?;
    let speech_c = phrase_wav(dir.path(), 2)?;
    let heard_by_c = dir.path().join("heard-by-c.wav");

    let mut browser = BrowserPeer::start(
        browser_options(&stack, "carol")
            .fake_audio(&speech_b)
            .auto_answer(true),
    )
    .await?;
    let mut bob = Lyrebird::start(
        LyrebirdOptions::on_kamailio(&stack, "bob", dir.path())
            .arg("--auto-answer")
            .arg("--play")
            .arg(speech_c.to_string_lossy())
            .arg("--loop-play")
            .arg("--record")
            .arg(heard_by_c.to_string_lossy()),
    )
    .await?;
    let mut alice =
        Lyrebird::start(LyrebirdOptions::on_kamailio(&stack, "alice", dir.path()).arg("--discard"))
            .await?;
    browser.wait_for("registered", SETUP).await?;
    bob.registered(SETUP).await?;
    alice.registered(SETUP).await?;

    let call = call_id(
        &alice
            .command(json!({"cmd": "call", "target": uri(&stack, "carol"),
                            "play": speech_a, "loop": true}))
            .await?,
    )?;
    alice.call_state(call, "audio_flowing", SETUP).await?;
    browser.wait_for_decoded_audio(SETUP).await?;

    alice
        .command(json!({"cmd": "transfer", "call": call, "target": uri(&stack, "bob")}))
        .await?;
    let referred = browser.wait_for("referred", SETUP).await?;
    ensure!(
        referred["target"]
            .as_str()
            .is_some_and(|t| t.contains("bob@")),
        "the browser was referred to {referred}"
    );
    let new_call = browser.wait_for("transfer_call", SETUP).await?["call"].clone();
    let from = bob.incoming_call(SETUP).await?;
    let incoming = bob
        .history
        .iter()
        .find(|e| e["event"] == "incoming_call" && e["call"] == json!(from))
        .cloned()
        .unwrap_or_default();
    ensure!(
        incoming["from"]
            .as_str()
            .is_some_and(|f| f.contains("carol@")),
        "C should be called by the browser user: {incoming}"
    );
    bob.call_state(from, "audio_flowing", SETUP).await?;
    browser
        .wait_for_where("confirmed", SETUP, |e| e["call"] == new_call)
        .await?;

    let progress = transfer_progress(&mut alice, call).await?;
    println!("A's transfer progress: {progress:?}");
    let last = progress.last().context("no transfer progress")?;
    ensure!(
        last["status"] == 200,
        "A should see the transfer succeed (NOTIFY 200): {progress:?}"
    );
    // The REFER's own 202 Accepted first, then the browser's NOTIFYs; only the last is final.
    ensure!(
        progress[0]["status"] == 202
            && progress[..progress.len() - 1]
                .iter()
                .all(|e| e["final"] == false),
        "A should see the REFER accepted, then progress, then the end: {progress:?}"
    );
    let ended = alice.call_state(call, "ended", SETUP).await?;
    ensure!(
        ended["state"]["reason"] == "transferred",
        "A's call should end as transferred: {ended}"
    );
    let old_ended = browser
        .wait_for_where("ended", SETUP, |e| e["call"] != new_call)
        .await?;
    ensure!(
        old_ended["originator"] == "remote",
        "A should end the old call: {old_ended}"
    );

    // B hears C on the new call, and C hears B.
    let stats = browser.wait_for_decoded_audio(SETUP).await?;
    ensure!(
        stats.call == new_call.as_u64(),
        "the browser's audio should come from the transferred call: {stats:?}"
    );
    tokio::time::sleep(TALK).await;
    let later = browser.stats().await?;
    ensure!(
        later.packets_received > stats.packets_received
            && later.total_audio_energy > stats.total_audio_energy,
        "audio stopped reaching the browser on the transferred call: {stats:?} -> {later:?}"
    );
    browser.send(json!({"cmd": "hangup"})).await?;
    bob.call_state(from, "ended", SETUP).await?;
    bob.quit().await?;
    alice.quit().await?;
    browser.quit().await?;
    assert_heard(&heard_by_c, &speech_b, &speech_a, "C (from the browser)")
}

/// The browser user B, in a call with Lyrebird A, refers A to Lyrebird C: A calls C with the
/// audio of its call with B, C answers, A's call with B ends, and B's JsSIP hears how it went.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_transfers_lyrebird_to_another_lyrebird() -> Result<()> {
    let stack = sip_stack()?;
    let dir = testkit::test_dir("lyrebird-call-controls-browser-")?;
    let speech_a = phrase_wav(dir.path(), 3)?;
    let speech_b = phrase_wav(dir.path(), 4)?;
    let heard_by_c = dir.path().join("heard-by-c.wav");

    let mut browser =
        BrowserPeer::start(browser_options(&stack, "dave").fake_audio(&speech_b)).await?;
    let mut alice =
        Lyrebird::start(LyrebirdOptions::on_kamailio(&stack, "alice", dir.path()).arg("--discard"))
            .await?;
    let mut bob = Lyrebird::start(
        LyrebirdOptions::on_kamailio(&stack, "bob", dir.path())
            .arg("--auto-answer")
            .arg("--silence")
            .arg("--record")
            .arg(heard_by_c.to_string_lossy()),
    )
    .await?;
    browser.wait_for("registered", SETUP).await?;
    alice.registered(SETUP).await?;
    bob.registered(SETUP).await?;

    browser
        .send(json!({"cmd": "call", "target": uri(&stack, "alice")}))
        .await?;
    let call = alice.incoming_call(SETUP).await?;
    alice
        .command(json!({"cmd": "answer", "call": call, "play": speech_a, "loop": true}))
        .await?;
    alice.call_state(call, "audio_flowing", SETUP).await?;
    browser.wait_for("confirmed", SETUP).await?;

    browser
        .send(json!({"cmd": "refer", "target": uri(&stack, "bob")}))
        .await?;
    let request = browser.wait_for("refer_request", SETUP).await?;
    ensure!(
        request["ok"] == true,
        "Lyrebird should accept the REFER: {request}"
    );

    // A calls C by itself.
    let new_call = alice
        .wait_for("the call the transfer asked for", SETUP, |e| {
            e["event"] == "call_state"
                && e["call"] != json!(call)
                && e["state"]["state"] == "dialing"
        })
        .await?;
    ensure!(
        new_call["state"]["direction"] == "outgoing"
            && new_call["state"]["peer"]
                .as_str()
                .is_some_and(|p| p.contains("bob@")),
        "A should call C: {new_call}"
    );
    let new_call = new_call["call"]
        .as_u64()
        .with_context(|| format!("no call id: {new_call}"))?;
    let at_c = bob.incoming_call(SETUP).await?;
    alice.call_state(new_call, "answered", SETUP).await?;
    let ended = alice.call_state(call, "ended", SETUP).await?;
    println!("A's call with the browser: {ended}");
    let old_ended = browser.wait_for("ended", SETUP).await?;
    ensure!(
        old_ended["originator"] == "remote",
        "A should end its call with the browser: {old_ended}"
    );
    // B's JsSIP follows the transfer in A's NOTIFYs, up to the answer.
    let accepted = browser
        .wait_for_where("refer_notify", SETUP, |e| {
            e["kind"] != "trying" && e["kind"] != "progress"
        })
        .await?;
    ensure!(
        accepted["kind"] == "accepted" && accepted["status"] == 200,
        "the browser should learn that the transfer succeeded: {accepted}"
    );
    alice.call_state(new_call, "audio_flowing", SETUP).await?;
    bob.call_state(at_c, "audio_flowing", SETUP).await?;
    tokio::time::sleep(TALK).await;

    alice
        .command(json!({"cmd": "hangup", "call": new_call}))
        .await?;
    bob.call_state(at_c, "ended", SETUP).await?;
    alice.quit().await?;
    bob.quit().await?;
    browser.quit().await?;
    // C hears what A was sending to B: the transfer kept A's audio.
    assert_heard(
        &heard_by_c,
        &speech_a,
        &speech_b,
        "C (from A after the transfer)",
    )
}

/// Lyrebird transfers the browser to an address nobody has registered: the transfer fails with
/// the browser's final NOTIFY, and the call with the browser carries on with audio both ways.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_to_nobody_fails_and_the_call_goes_on() -> Result<()> {
    let stack = sip_stack()?;
    let dir = testkit::test_dir("lyrebird-call-controls-browser-")?;
    let browser_tone = dir.path().join("browser-tone.wav");
    write_tone_wav(&browser_tone, 660, 10, 0.3)?;
    let recording = dir.path().join("heard-from-browser.wav");

    let mut browser = BrowserPeer::start(
        browser_options(&stack, "erin")
            .fake_audio(&browser_tone)
            .auto_answer(true),
    )
    .await?;
    browser.wait_for("registered", SETUP).await?;
    let mut alice = Lyrebird::start(
        LyrebirdOptions::on_kamailio(&stack, "alice", dir.path())
            .arg("--tone")
            .arg("440"),
    )
    .await?;
    alice.registered(SETUP).await?;

    let call = call_id(
        &alice
            .command(json!({"cmd": "call", "target": uri(&stack, "erin"), "record": recording}))
            .await?,
    )?;
    let start_ms = t_ms(&alice.call_state(call, "dialing", SETUP).await?)?;
    alice.call_state(call, "audio_flowing", SETUP).await?;
    browser.wait_for_decoded_audio(SETUP).await?;

    alice
        .command(json!({"cmd": "transfer", "call": call, "target": uri(&stack, "nobody")}))
        .await?;
    let progress = transfer_progress(&mut alice, call).await?;
    println!("transfer to nobody: {progress:?}");
    let last = progress.last().context("no transfer progress")?;
    ensure!(
        last["status"].as_u64().is_some_and(|s| s >= 300),
        "the transfer to nobody should fail: {progress:?}"
    );
    let failed = browser.wait_for("failed", SETUP).await?;
    println!("the browser's call to nobody: {failed}");
    browser.wait_for("transfer_call_failed", SETUP).await?;
    ensure!(
        !alice
            .history
            .iter()
            .any(|e| e["event"] == "call_state" && e["state"]["state"] == "ended"),
        "the failed transfer ended A's call: {:?}",
        alice.history
    );

    // The call goes on, both ways.
    tokio::time::sleep(SETTLE).await;
    let (start, end) = observe(&mut browser, STRETCH).await?;
    println!("browser after the failed transfer: {start:?} -> {end:?}");
    ensure!(
        start.call == Some(1) && end.call == Some(1),
        "the browser should be back on its first call: {end:?}"
    );
    ensure!(
        end.packets_received > start.packets_received
            && end.total_audio_energy > start.total_audio_energy,
        "audio stopped reaching the browser after the failed transfer: {start:?} -> {end:?}"
    );

    alice
        .command(json!({"cmd": "hangup", "call": call}))
        .await?;
    let ended = alice.call_state(call, "ended", SETUP).await?;
    ensure!(ended["state"]["reason"] == "hung up", "{ended}");
    browser.wait_for("ended", SETUP).await?;
    alice.quit().await?;
    browser.quit().await?;

    let heard = Recording::open(&recording, start_ms)?.level(start.t, end.t)?;
    println!("lyrebird's recording after the failed transfer (RMS): {heard:.4}");
    ensure!(
        heard > SOUND,
        "lyrebird heard nothing from the browser after the failed transfer: {heard}"
    );
    Ok(())
}

/// A local conference that Lyrebird hosts for a browser user and two other Lyrebirds, each
/// sending a tone of its own: every party's received audio holds the tones of the host and of
/// every other party, and not its own (N−1 mixing in the engine).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conference_lets_every_party_hear_the_others_and_not_itself() -> Result<()> {
    let stack = sip_stack()?;
    let dir = testkit::test_dir("lyrebird-conference-")?;
    let host_hz = 440.0f32;
    let parties = [("bob", 600.0f32), ("carol", 800.0f32)];
    let browser_hz = 1000.0f32;
    let browser_tone = dir.path().join("browser-tone.wav");
    write_tone_wav(&browser_tone, browser_hz as u32, 20, 0.2)?;

    let mut host = Lyrebird::start(
        LyrebirdOptions::on_kamailio(&stack, "alice", dir.path())
            .arg("--tone")
            .arg(host_hz.to_string())
            .arg("--discard"),
    )
    .await?;
    let mut lyrebirds = Vec::new();
    for (user, hz) in parties {
        let recording = dir.path().join(format!("{user}-hears.wav"));
        let lyrebird = Lyrebird::start(
            LyrebirdOptions::on_kamailio(&stack, user, dir.path())
                .arg("--auto-answer")
                .arg("--tone")
                .arg(hz.to_string())
                .arg("--record")
                .arg(recording.to_string_lossy().into_owned()),
        )
        .await?;
        lyrebirds.push((lyrebird, recording, hz));
    }
    let mut browser = BrowserPeer::start(
        browser_options(&stack, "dave")
            .fake_audio(&browser_tone)
            .auto_answer(true),
    )
    .await?;
    host.registered(SETUP).await?;
    for (lyrebird, _, _) in &mut lyrebirds {
        lyrebird.registered(SETUP).await?;
    }
    browser.wait_for("registered", SETUP).await?;

    // Each new call puts the previous ones on hold; merging resumes and mixes them all.
    let mut calls = Vec::new();
    for user in ["bob", "carol", "dave"] {
        let call = call_id(
            &host
                .command(json!({"cmd": "call", "target": uri(&stack, user)}))
                .await?,
        )?;
        host.call_state(call, "audio_flowing", SETUP).await?;
        calls.push(call);
    }
    host.command(json!({"cmd": "merge", "calls": calls}))
        .await?;
    let conference = host
        .wait_for("the conference", SETUP, |e| {
            e["event"] == "conference" && e["calls"].as_array().is_some_and(|c| c.len() == 3)
        })
        .await?;
    println!("{conference}");
    tokio::time::sleep(Duration::from_secs(3)).await;

    // The browser's ears: every other tone, not its own.
    let all = [host_hz, parties[0].1, parties[1].1, browser_hz];
    browser
        .send(json!({"cmd": "spectrum", "frequencies": all, "ms": 1500}))
        .await?;
    let spectrum = browser.wait_for("spectrum", SETUP).await?;
    let db: Vec<f64> = spectrum["db"]
        .as_array()
        .context("no spectrum")?
        .iter()
        .filter_map(Value::as_f64)
        .collect();
    println!("dave (browser) hears, dB at {all:?}: {db:?}");
    ensure!(db.len() == 4, "spectrum: {spectrum}");
    for (hz, level) in all.iter().zip(&db).take(3) {
        ensure!(
            *level > db[3] + 20.0,
            "dave should hear {hz} Hz well above his own tone: {db:?}"
        );
    }

    let mut finished = Vec::new();
    for (lyrebird, recording, hz) in lyrebirds {
        lyrebird.quit().await?;
        finished.push((recording, hz));
    }
    host.quit().await?;
    browser.quit().await?;

    for (recording, own) in finished {
        let (samples, rate) = read_wav_mono(&recording)?;
        // The last two seconds, well after the merge.
        let tail = &samples[samples.len().saturating_sub(2 * rate as usize)..];
        let power = |hz: f32| tone_power(tail, rate, hz);
        let heard: Vec<(f32, f64)> = all.iter().map(|hz| (*hz, power(*hz))).collect();
        println!("{} hears {heard:?}", recording.display());
        for (hz, p) in &heard {
            if *hz == own {
                continue;
            }
            ensure!(
                *p > 0.0005,
                "{own} Hz party does not hear {hz} Hz: {heard:?}"
            );
            ensure!(
                *p > 100.0 * power(own),
                "{own} Hz party hears itself: {heard:?}"
            );
        }
    }
    Ok(())
}
