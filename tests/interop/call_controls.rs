//! The controls of a phone between headless Lyrebirds through a real Kamailio: call waiting
//! and swapping between two calls, attended transfer, and both sides putting a call on hold at
//! the same moment (glare). What is asserted is what a person would notice: which call rings,
//! who is on hold, whose voice reaches whom, and that no call is left stuck.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use serde_json::{Value, json};
use testkit::audio::similarity;
use testkit::lyrebird::{Lyrebird, LyrebirdOptions, call_id};
use testkit::speech::phrase_wav;
use testkit::stack::{Stack, StackOptions};

const SETUP: Duration = Duration::from_secs(20);
/// How long speech crosses a call before its recording is judged.
const TALK: Duration = Duration::from_secs(6);

fn uri(stack: &Stack, user: &str) -> String {
    format!("sip:{user}@{}", stack.kamailio().domain())
}

/// Packets `call` receives over two seconds.
async fn packets_received_over(lyrebird: &mut Lyrebird, call: u64) -> Result<u64> {
    let stats = |v: &Value| v["stats"]["packets_received"].as_u64().unwrap_or(0);
    let before = stats(
        &lyrebird
            .command(json!({"cmd": "stats", "call": call}))
            .await?,
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = stats(
        &lyrebird
            .command(json!({"cmd": "stats", "call": call}))
            .await?,
    );
    Ok(after.saturating_sub(before))
}

/// Bob is in a call with Alice when Carol calls: Carol's call rings without touching Alice's;
/// answering it puts Alice on hold; swapping back holds Carol and resumes Alice; hanging up on
/// Alice leaves Carol's call, which Bob then resumes and talks in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_call_waits_and_the_person_swaps_between_them() -> Result<()> {
    let stack = Stack::start(StackOptions::kamailio_only())?;
    let dir = testkit::test_dir("lyrebird-call-controls-")?;
    let quiet = |user| {
        LyrebirdOptions::on_kamailio(&stack, user, dir.path())
            .arg("--tone")
            .arg("440")
            .arg("--discard")
    };
    let mut alice = Lyrebird::start(quiet("alice")).await?;
    let mut bob = Lyrebird::start(quiet("bob")).await?;
    let mut carol = Lyrebird::start(quiet("carol")).await?;
    for lyrebird in [&mut alice, &mut bob, &mut carol] {
        lyrebird.registered(SETUP).await?;
    }

    let from_alice = call_id(
        &alice
            .command(json!({"cmd": "call", "target": uri(&stack, "bob")}))
            .await?,
    )?;
    let bob_alice = bob.incoming_call(SETUP).await?;
    bob.command(json!({"cmd": "answer", "call": bob_alice}))
        .await?;
    alice.call_state(from_alice, "audio_flowing", SETUP).await?;
    bob.call_state(bob_alice, "audio_flowing", SETUP).await?;

    // Carol's call rings at Bob while he talks to Alice.
    let from_carol = call_id(
        &carol
            .command(json!({"cmd": "call", "target": uri(&stack, "bob")}))
            .await?,
    )?;
    let bob_carol = bob.incoming_call(SETUP).await?;
    ensure!(bob_carol != bob_alice, "the waiting call has its own id");
    carol.call_state(from_carol, "ringing", SETUP).await?;
    ensure!(
        packets_received_over(&mut alice, from_alice).await? > 0,
        "Alice's call must go on while Carol's rings"
    );

    // Answering Carol holds Alice.
    bob.command(json!({"cmd": "answer", "call": bob_carol}))
        .await?;
    bob.hold_state(bob_alice, true, false, SETUP).await?;
    alice.hold_state(from_alice, false, true, SETUP).await?;
    carol.call_state(from_carol, "audio_flowing", SETUP).await?;

    // Swapping back: Carol is held, Alice resumed.
    bob.command(json!({"cmd": "resume", "call": bob_alice}))
        .await?;
    bob.hold_state(bob_carol, true, false, SETUP).await?;
    carol.hold_state(from_carol, false, true, SETUP).await?;
    alice.hold_state(from_alice, false, false, SETUP).await?;
    ensure!(
        packets_received_over(&mut alice, from_alice).await? > 10,
        "Alice hears Bob again after the swap"
    );

    // Bob hangs up on Alice; Carol's call is still there, and resumes.
    bob.command(json!({"cmd": "hangup", "call": bob_alice}))
        .await?;
    alice.call_state(from_alice, "ended", SETUP).await?;
    bob.command(json!({"cmd": "resume", "call": bob_carol}))
        .await?;
    carol.hold_state(from_carol, false, false, SETUP).await?;
    ensure!(
        packets_received_over(&mut carol, from_carol).await? > 10,
        "Carol hears Bob after he resumed her call"
    );
    ensure!(
        packets_received_over(&mut bob, bob_carol).await? > 10,
        "Bob hears Carol after he resumed her call"
    );
    carol
        .command(json!({"cmd": "hangup", "call": from_carol}))
        .await?;
    bob.call_state(bob_carol, "ended", SETUP).await?;
    for lyrebird in [alice, bob, carol] {
        lyrebird.quit().await?;
    }
    Ok(())
}

/// Alice talks to Bob, puts him on hold to call Carol, then connects the two (REFER with
/// Replaces): Bob calls Carol in place of Alice's call, Alice's calls both end, and Bob and
/// Carol hear each other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attended_transfer_connects_the_other_two() -> Result<()> {
    let stack = Stack::start(StackOptions::kamailio_only())?;
    let dir = testkit::test_dir("lyrebird-call-controls-")?;
    let speech_bob = phrase_wav(dir.path(), 4)?;
    let speech_carol = phrase_wav(dir.path(), 5)?;
    let bob_hears = dir.path().join("bob-hears.wav");
    let carol_hears = dir.path().join("carol-hears.wav");
    let answering = |user, speech: &Path, record: &Path| {
        LyrebirdOptions::on_kamailio(&stack, user, dir.path())
            .arg("--auto-answer")
            .arg("--play")
            .arg(speech.to_string_lossy().into_owned())
            .arg("--loop-play")
            .arg("--record")
            .arg(record.to_string_lossy().into_owned())
    };
    let mut alice = Lyrebird::start(
        LyrebirdOptions::on_kamailio(&stack, "alice", dir.path())
            .arg("--tone")
            .arg("440")
            .arg("--discard"),
    )
    .await?;
    let mut bob = Lyrebird::start(answering("bob", &speech_bob, &bob_hears)).await?;
    let mut carol = Lyrebird::start(answering("carol", &speech_carol, &carol_hears)).await?;
    for lyrebird in [&mut alice, &mut bob, &mut carol] {
        lyrebird.registered(SETUP).await?;
    }

    let to_bob = call_id(
        &alice
            .command(json!({"cmd": "call", "target": uri(&stack, "bob")}))
            .await?,
    )?;
    alice.call_state(to_bob, "audio_flowing", SETUP).await?;
    let bob_old = bob.incoming_call(SETUP).await?;
    // The consultation call holds Bob's.
    let to_carol = call_id(
        &alice
            .command(json!({"cmd": "call", "target": uri(&stack, "carol")}))
            .await?,
    )?;
    alice.hold_state(to_bob, true, false, SETUP).await?;
    alice.call_state(to_carol, "audio_flowing", SETUP).await?;
    let carol_old = carol.incoming_call(SETUP).await?;

    alice
        .command(json!({"cmd": "attended_transfer", "call": to_bob, "to": to_carol}))
        .await?;
    let done = alice
        .wait_for("the transfer's final report", SETUP, |e| {
            e["event"] == "call_transfer" && e["call"] == json!(to_bob) && e["final"] == true
        })
        .await?;
    ensure!(done["status"] == 200, "the transfer failed: {done}");
    alice.call_state(to_bob, "ended", SETUP).await?;
    alice.call_state(to_carol, "ended", SETUP).await?;
    bob.call_state(bob_old, "ended", SETUP).await?;
    carol.call_state(carol_old, "ended", SETUP).await?;

    // The call Bob made on Alice's request replaced hers at Carol's, without ringing.
    let bob_new = bob
        .wait_for("Bob's call to Carol", SETUP, |e| {
            e["event"] == "call_state"
                && e["state"]["state"] == "dialing"
                && e["state"]["direction"] == "outgoing"
        })
        .await?["call"]
        .as_u64()
        .context("no id")?;
    bob.call_state(bob_new, "audio_flowing", SETUP).await?;
    let carol_new = carol
        .wait_for("the replacing call", SETUP, |e| {
            e["event"] == "call_state"
                && e["state"]["state"] == "dialing"
                && e["state"]["direction"] == "incoming"
                && e["call"] != json!(carol_old)
        })
        .await?["call"]
        .as_u64()
        .context("no id")?;
    carol.call_state(carol_new, "audio_flowing", SETUP).await?;
    tokio::time::sleep(TALK).await;
    bob.command(json!({"cmd": "hangup", "call": bob_new}))
        .await?;
    carol.call_state(carol_new, "ended", SETUP).await?;
    for lyrebird in [alice, bob, carol] {
        lyrebird.quit().await?;
    }

    // Each new call records beside the old one (`<name>-call<N>.wav`).
    let recording = |path: &Path, call: u64| {
        let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned());
        path.with_file_name(format!("{}-call{call}.wav", stem.unwrap_or_default()))
    };
    for (who, heard, expected, other) in [
        (
            "Bob",
            recording(&bob_hears, bob_new),
            &speech_carol,
            &speech_bob,
        ),
        (
            "Carol",
            recording(&carol_hears, carol_new),
            &speech_bob,
            &speech_carol,
        ),
    ] {
        let right = similarity(expected, &heard)?;
        let wrong = similarity(other, &heard)?;
        println!("{who}: {right:?} / own speech {wrong:?}");
        ensure!(
            right.contains_reference(),
            "{who} does not hear the other side after the transfer: {right:?}"
        );
        ensure!(
            !wrong.contains_reference(),
            "{who} hears their own speech: {wrong:?}"
        );
    }
    Ok(())
}

/// Both sides put the call on hold at the same moment: the re-INVITEs cross, both get 491
/// and retry after their random waits (RFC 3261 §14.1); the call ends up held by both, and
/// both resuming brings the audio back. No side is left stuck.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_sides_holding_at_once_settle() -> Result<()> {
    let stack = Stack::start(StackOptions::kamailio_only())?;
    let dir = testkit::test_dir("lyrebird-call-controls-")?;
    let tone = |user| {
        LyrebirdOptions::on_kamailio(&stack, user, dir.path())
            .arg("--tone")
            .arg("440")
            .arg("--discard")
    };
    let mut alice = Lyrebird::start(tone("alice")).await?;
    let mut bob = Lyrebird::start(tone("bob").arg("--auto-answer")).await?;
    alice.registered(SETUP).await?;
    bob.registered(SETUP).await?;
    let call = call_id(
        &alice
            .command(json!({"cmd": "call", "target": uri(&stack, "bob")}))
            .await?,
    )?;
    alice.call_state(call, "audio_flowing", SETUP).await?;
    let bob_call = bob.incoming_call(SETUP).await?;
    bob.call_state(bob_call, "audio_flowing", SETUP).await?;

    let (a, b) = tokio::join!(
        alice.command(json!({"cmd": "hold", "call": call})),
        bob.command(json!({"cmd": "hold", "call": bob_call}))
    );
    ensure!(a?["ok"] == true && b?["ok"] == true, "both holds accepted");
    // The glare retry waits up to 4 s; each side ends up holding, and held.
    alice.hold_state(call, true, true, SETUP).await?;
    bob.hold_state(bob_call, true, true, SETUP).await?;
    // Packets already on their way settle first.
    tokio::time::sleep(Duration::from_millis(500)).await;
    ensure!(
        packets_received_over(&mut alice, call).await? == 0,
        "audio while both hold"
    );

    // Earlier hold events (each side's own hold, before the other's arrived) are history now.
    alice.drain(Duration::from_millis(300)).await;
    bob.drain(Duration::from_millis(300)).await;
    alice
        .command(json!({"cmd": "resume", "call": call}))
        .await?;
    bob.hold_state(bob_call, true, false, SETUP).await?;
    bob.command(json!({"cmd": "resume", "call": bob_call}))
        .await?;
    alice.hold_state(call, false, false, SETUP).await?;
    bob.hold_state(bob_call, false, false, SETUP).await?;
    ensure!(
        packets_received_over(&mut alice, call).await? > 10,
        "no audio after resume"
    );
    ensure!(
        packets_received_over(&mut bob, bob_call).await? > 10,
        "no audio after resume"
    );
    alice
        .command(json!({"cmd": "hangup", "call": call}))
        .await?;
    bob.call_state(bob_call, "ended", SETUP).await?;
    alice.quit().await?;
    bob.quit().await?;
    Ok(())
}

/// Recording a call keeps both directions, mixed, in a WAV file in the recordings folder; the
/// events say where, and when it stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_call_holds_both_sides() -> Result<()> {
    let stack = Stack::start(StackOptions::kamailio_only())?;
    let dir = testkit::test_dir("lyrebird-call-controls-")?;
    let recordings = dir.path().join("recordings");
    let mut alice = Lyrebird::start(
        LyrebirdOptions::on_kamailio(&stack, "alice", dir.path())
            .arg("--recordings")
            .arg(recordings.to_string_lossy().into_owned())
            .arg("--tone")
            .arg("440")
            .arg("--discard"),
    )
    .await?;
    let mut bob = Lyrebird::start(
        LyrebirdOptions::on_kamailio(&stack, "bob", dir.path())
            .arg("--auto-answer")
            .arg("--tone")
            .arg("600")
            .arg("--discard"),
    )
    .await?;
    alice.registered(SETUP).await?;
    bob.registered(SETUP).await?;
    let call = call_id(
        &alice
            .command(json!({"cmd": "call", "target": uri(&stack, "bob")}))
            .await?,
    )?;
    alice.call_state(call, "audio_flowing", SETUP).await?;
    alice
        .command(json!({"cmd": "record", "call": call, "on": true}))
        .await?;
    let started = alice
        .wait_for("the recording", SETUP, |e| {
            e["event"] == "call_recording" && e["call"] == json!(call)
        })
        .await?;
    let path = started["path"]
        .as_str()
        .context("no recording path")?
        .to_owned();
    ensure!(
        Path::new(&path).starts_with(&recordings) && path.contains("bob"),
        "recorded to {path}"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    alice
        .command(json!({"cmd": "record", "call": call, "on": false}))
        .await?;
    alice
        .wait_for("the recording's end", SETUP, |e| {
            e["event"] == "call_recording" && e["call"] == json!(call) && e["path"].is_null()
        })
        .await?;
    alice
        .command(json!({"cmd": "hangup", "call": call}))
        .await?;
    alice.quit().await?;
    bob.quit().await?;

    let (samples, rate) = testkit::audio::read_wav_mono(Path::new(&path))?;
    ensure!(
        samples.len() as u32 >= 2 * rate,
        "the recording is short: {}",
        samples.len()
    );
    let said = testkit::audio::tone_power(&samples, rate, 440.0);
    let heard = testkit::audio::tone_power(&samples, rate, 600.0);
    println!("recording: our 440 Hz {said:.5}, their 600 Hz {heard:.5}");
    ensure!(said > 0.001 && heard > 0.001, "both sides must be in it");
    Ok(())
}

/// With call waiting off, a second call while one is answered is refused busy (486): the
/// caller hears busy, the first call goes on, and the person finds the busy call in history.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_call_waiting_a_second_call_is_busy() -> Result<()> {
    let stack = Stack::start(StackOptions::kamailio_only())?;
    let dir = testkit::test_dir("lyrebird-call-controls-")?;
    let quiet = |user| {
        LyrebirdOptions::on_kamailio(&stack, user, dir.path())
            .arg("--tone")
            .arg("440")
            .arg("--discard")
    };
    let mut alice = Lyrebird::start(quiet("alice")).await?;
    let mut bob =
        Lyrebird::start(quiet("bob").arg("--auto-answer").arg("--no-call-waiting")).await?;
    let mut carol = Lyrebird::start(quiet("carol")).await?;
    for lyrebird in [&mut alice, &mut bob, &mut carol] {
        lyrebird.registered(SETUP).await?;
    }
    let first = call_id(
        &alice
            .command(json!({"cmd": "call", "target": uri(&stack, "bob")}))
            .await?,
    )?;
    alice.call_state(first, "audio_flowing", SETUP).await?;
    let second = call_id(
        &carol
            .command(json!({"cmd": "call", "target": uri(&stack, "bob")}))
            .await?,
    )?;
    let ended = carol.call_state(second, "ended", SETUP).await?;
    ensure!(
        ended["state"]["status"] == 486,
        "Carol should hear busy: {ended}"
    );
    ensure!(
        packets_received_over(&mut alice, first).await? > 10,
        "the first call goes on"
    );
    alice
        .command(json!({"cmd": "hangup", "call": first}))
        .await?;
    for lyrebird in [alice, bob, carol] {
        lyrebird.quit().await?;
    }
    let db = dir.path().join("bob.sqlite3");
    let lines =
        testkit::lyrebird::run_cli(&["--db", &db.to_string_lossy(), "history", "calls"], SETUP)
            .await?;
    ensure!(
        lines.iter().any(|l| l["call"]["end_reason"] == "busy"
            && l["call"]["peer_address"]
                .as_str()
                .is_some_and(|p| p.contains("carol"))),
        "the busy call is in Bob's history: {lines:?}"
    );
    Ok(())
}

/// Music on hold: while Alice holds Bob, Bob hears her hold music and nothing of her
/// microphone; before and after, he hears her (each a distinct tone, told apart by frequency in
/// Bob's recording).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_peer_hears_music_on_hold_and_not_the_microphone() -> Result<()> {
    const VOICE_HZ: f32 = 440.0;
    const MUSIC_HZ: f32 = 660.0;
    let stack = Stack::start(StackOptions::kamailio_only())?;
    let dir = testkit::test_dir("lyrebird-call-controls-")?;
    let music = dir.path().join("music.wav");
    testkit::audio::write_tone_wav(&music, MUSIC_HZ as u32, 3, 0.4)?;
    let heard = dir.path().join("bob-heard.wav");
    let mut alice = Lyrebird::start(
        LyrebirdOptions::on_kamailio(&stack, "alice", dir.path())
            .arg("--tone")
            .arg("440")
            .arg("--discard")
            .arg("--music-on-hold")
            .arg(music.to_string_lossy().into_owned()),
    )
    .await?;
    let mut bob = Lyrebird::start(
        LyrebirdOptions::on_kamailio(&stack, "bob", dir.path())
            .arg("--auto-answer")
            .arg("--silence")
            .arg("--record")
            .arg(heard.to_string_lossy().into_owned()),
    )
    .await?;
    alice.registered(SETUP).await?;
    bob.registered(SETUP).await?;
    let call = call_id(
        &alice
            .command(json!({"cmd": "call", "target": uri(&stack, "bob")}))
            .await?,
    )?;
    alice.call_state(call, "audio_flowing", SETUP).await?;
    let bob_call = bob.incoming_call(SETUP).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    alice.command(json!({"cmd": "hold", "call": call})).await?;
    bob.hold_state(bob_call, false, true, SETUP).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    alice
        .command(json!({"cmd": "resume", "call": call}))
        .await?;
    bob.hold_state(bob_call, false, false, SETUP).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    alice
        .command(json!({"cmd": "hangup", "call": call}))
        .await?;
    bob.call_state(bob_call, "ended", SETUP).await?;
    alice.quit().await?;
    bob.quit().await?;

    // Half-second windows of what Bob heard, each named by the tone that dominates it.
    let (samples, rate) = testkit::audio::read_wav_mono(&heard)?;
    let window = rate as usize / 2;
    let heard: Vec<char> = samples
        .chunks_exact(window)
        .map(|w| {
            let (voice, music) = (
                testkit::audio::tone_power(w, rate, VOICE_HZ),
                testkit::audio::tone_power(w, rate, MUSIC_HZ),
            );
            match (voice > 1e-4, music > 1e-4) {
                (true, false) if voice > 100.0 * music => 'v',
                (false, true) if music > 100.0 * voice => 'm',
                (false, false) => '.',
                _ => '?',
            }
        })
        .collect();
    let heard: String = heard.into_iter().collect();
    // Her voice, then her music (at least two seconds of it, never mixed with the voice), then
    // her voice again.
    let trimmed: String = heard.chars().filter(|c| *c != '?').collect();
    let runs: Vec<(char, usize)> = trimmed.chars().fold(Vec::new(), |mut runs, c| {
        match runs.last_mut() {
            Some((last, n)) if *last == c => *n += 1,
            _ => runs.push((c, 1)),
        }
        runs
    });
    let order: String = runs
        .iter()
        .filter(|(c, n)| *c != '.' && *n >= 2)
        .map(|(c, _)| *c)
        .collect();
    ensure!(
        order == "vmv",
        "Bob should hear voice, music, voice; heard (per 0.5 s) {heard}"
    );
    ensure!(heard.matches('m').count() >= 4, "too little music: {heard}");
    // A window on each change of source holds both; more would be voice and music mixed.
    ensure!(
        heard.matches('?').count() <= 4,
        "voice and music mixed: {heard}"
    );
    Ok(())
}

/// Alice hosts a conference with Bob and Carol, holds and resumes it as one, and leaves it: the
/// two are connected to each other (REFER with Replaces), Alice's calls end, and Bob and Carol
/// go on talking.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conference_holds_as_one_and_leaving_it_connects_the_other_two() -> Result<()> {
    let stack = Stack::start(StackOptions::kamailio_only())?;
    let dir = testkit::test_dir("lyrebird-call-controls-")?;
    let party = |user, hz: &str| {
        LyrebirdOptions::on_kamailio(&stack, user, dir.path())
            .arg("--auto-answer")
            .arg("--tone")
            .arg(hz.to_owned())
            .arg("--discard")
    };
    let mut alice = Lyrebird::start(
        LyrebirdOptions::on_kamailio(&stack, "alice", dir.path())
            .arg("--tone")
            .arg("440")
            .arg("--discard"),
    )
    .await?;
    let mut bob = Lyrebird::start(party("bob", "550")).await?;
    let mut carol = Lyrebird::start(party("carol", "660")).await?;
    for lyrebird in [&mut alice, &mut bob, &mut carol] {
        lyrebird.registered(SETUP).await?;
    }
    let mut calls = Vec::new();
    for callee in ["bob", "carol"] {
        let call = call_id(
            &alice
                .command(json!({"cmd": "call", "target": uri(&stack, callee)}))
                .await?,
        )?;
        alice.call_state(call, "audio_flowing", SETUP).await?;
        calls.push(call);
    }
    let bob_old = bob.incoming_call(SETUP).await?;
    let carol_old = carol.incoming_call(SETUP).await?;
    let merged = alice
        .command(json!({"cmd": "merge", "calls": calls}))
        .await?;
    ensure!(merged["ok"] == true, "merge refused: {merged}");
    // Calling Carol held Bob; the merge resumed him.
    bob.hold_state(bob_old, false, false, SETUP).await?;

    // The conference is held and resumed as one, whichever call the person holds it by.
    alice
        .command(json!({"cmd": "hold", "call": calls[0]}))
        .await?;
    bob.hold_state(bob_old, false, true, SETUP).await?;
    carol.hold_state(carol_old, false, true, SETUP).await?;
    alice
        .command(json!({"cmd": "resume", "call": calls[1]}))
        .await?;
    bob.hold_state(bob_old, false, false, SETUP).await?;
    carol.hold_state(carol_old, false, false, SETUP).await?;

    let left = alice.command(json!({"cmd": "leave_conference"})).await?;
    ensure!(left["ok"] == true, "leave refused: {left}");
    for call in &calls {
        alice.call_state(*call, "ended", SETUP).await?;
    }
    bob.call_state(bob_old, "ended", SETUP).await?;
    carol.call_state(carol_old, "ended", SETUP).await?;
    let bob_new = bob
        .wait_for("Bob's call to Carol", SETUP, |e| {
            e["event"] == "call_state"
                && e["state"]["state"] == "dialing"
                && e["state"]["direction"] == "outgoing"
        })
        .await?["call"]
        .as_u64()
        .context("no id")?;
    bob.call_state(bob_new, "audio_flowing", SETUP).await?;
    ensure!(
        packets_received_over(&mut bob, bob_new).await? > 10,
        "Bob does not hear Carol"
    );
    bob.command(json!({"cmd": "hangup", "call": bob_new}))
        .await?;
    for lyrebird in [alice, bob, carol] {
        lyrebird.quit().await?;
    }
    Ok(())
}
