//! Calls with XMPP contacts through a real Prosody: Jingle RTP sessions set up with Jingle
//! Message Initiation (XEP-0353), media by the same WebRTC engine as SIP calls. What is asserted
//! is what a person would check: each side's recording holds the other side's speech (and not
//! its own), the caller heard it ring, a declined or withdrawn call ends on both sides with its
//! reason and is in both histories, the person's second device stops ringing when the first
//! answers, and a stranger's call rings but is never answered by itself. The browser peer is a
//! third-party XMPP library with Jingle over WebRTC (npm `stanza`) in a real Chromium.

use std::path::Path;
use std::time::Duration;

use anyhow::{Result, ensure};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use testkit::audio::assert_heard;
use testkit::jingle_browser::{JingleBrowserPeer, JingleBrowserPeerOptions};
use testkit::json_lines::JsonLines;
use testkit::lyrebird::{call_id, history_calls};
use testkit::speech::phrase_wav;
use testkit::stack::{Stack, StackOptions, TurnAuth};
use testkit::xmpp::{befriend, online, scripted_login, start_lyrebird, text, xml_attr};
use tokio_tungstenite::tungstenite::Message;

const LOGIN: Duration = Duration::from_secs(20);
const SETUP: Duration = Duration::from_secs(20);
const DELIVERY: Duration = Duration::from_secs(15);
/// How long a call is held so several seconds of speech cross it.
const TALK: Duration = Duration::from_secs(7);

fn jid(stack: &Stack, user: &str) -> String {
    format!("{user}@{}", stack.xmpp().domain())
}

/// A Lyrebird with one XMPP account, its media on loopback, files under `dir`.
async fn lyrebird(
    stack: &Stack,
    user: &str,
    resource: &str,
    dir: &Path,
    extra: &[&str],
) -> Result<JsonLines> {
    let mut args = vec!["--resource", resource, "--bind", "127.0.0.1"];
    args.extend_from_slice(extra);
    let mut peer = start_lyrebird(
        &stack.xmpp().ws_url(),
        &jid(stack, user),
        &format!("{user}-secret"),
        &dir.join(format!("{user}-{resource}.sqlite3")),
        &dir.join(format!("{user}-{resource}.log")),
        &args,
    )?;
    online(&mut peer, LOGIN).await?;
    Ok(peer)
}

/// Bob's Lyrebird (device `bob_device`, started with `bob_extra`) and Alice's (`laptop`, with
/// `alice_extra`), mutual roster contacts.
async fn alice_and_bob(
    stack: &Stack,
    dir: &Path,
    bob_device: &str,
    bob_extra: &[&str],
    alice_extra: &[&str],
) -> Result<(JsonLines, JsonLines)> {
    let mut bob = lyrebird(stack, "bob", bob_device, dir, bob_extra).await?;
    let mut alice = lyrebird(stack, "alice", "laptop", dir, alice_extra).await?;
    let (alice_jid, bob_jid) = (jid(stack, "alice"), jid(stack, "bob"));
    befriend(&mut alice, &alice_jid, &mut bob, &bob_jid, DELIVERY).await?;
    Ok((alice, bob))
}

const QUIET: &[&str] = &["--silence", "--discard"];

/// Issue test 1: two Lyrebirds call each other over Prosody and hear each other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_lyrebirds_call_over_xmpp_and_hear_each_other() -> Result<()> {
    let stack = Stack::start(StackOptions::prosody_only())?;
    let dir = testkit::test_dir("lyrebird-jingle-")?;
    let (alice_jid, bob_jid) = (jid(&stack, "alice"), jid(&stack, "bob"));
    let speech_alice = phrase_wav(dir.path(), 0)?;
    let speech_bob = phrase_wav(dir.path(), 1)?;
    let heard_by_alice = dir.path().join("heard-by-alice.wav");
    let heard_by_bob = dir.path().join("heard-by-bob.wav");
    let (play_bob, record_bob) = (
        speech_bob.to_string_lossy().into_owned(),
        heard_by_bob.to_string_lossy().into_owned(),
    );
    let (mut alice, mut bob) = alice_and_bob(
        &stack,
        dir.path(),
        "desk",
        &[
            "--auto-answer",
            "--play",
            &play_bob,
            "--record",
            &record_bob,
        ],
        &[],
    )
    .await?;

    let result = alice
        .command(json!({"cmd": "call", "target": format!("xmpp:{bob_jid}"),
                        "play": speech_alice, "record": heard_by_alice}))
        .await?;
    let call = call_id(&result)?;
    // XEP-0353 <ringing/> from bob's device before it proceeds.
    alice.call_state(call, "ringing", SETUP).await?;
    alice.call_state(call, "answered", SETUP).await?;
    alice.call_state(call, "audio_flowing", SETUP).await?;
    let bob_call = bob.incoming_call(SETUP).await?;
    bob.call_state(bob_call, "audio_flowing", SETUP).await?;
    let stats = alice.command(json!({"cmd": "stats", "call": call})).await?;
    ensure!(
        stats["stats"].is_object(),
        "alice's call has no statistics: {stats}"
    );
    tokio::time::sleep(TALK).await;
    alice
        .command(json!({"cmd": "hangup", "call": call}))
        .await?;
    alice.call_state(call, "ended", SETUP).await?;
    let ended = bob.call_state(bob_call, "ended", SETUP).await?;
    ensure!(
        ended["state"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("other side hung up")),
        "bob: {ended}"
    );
    alice.quit().await?;
    bob.quit().await?;

    assert_heard(&heard_by_bob, &speech_alice, &speech_bob, "bob")?;
    assert_heard(&heard_by_alice, &speech_bob, &speech_alice, "alice")?;

    let alice_calls = history_calls(&dir.path().join("alice-laptop.sqlite3")).await?;
    ensure!(
        alice_calls.len() == 1
            && alice_calls[0]["direction"] == "out"
            && alice_calls[0]["peer_address"] == bob_jid.as_str()
            && alice_calls[0]["answered_at_ms"].is_i64()
            && alice_calls[0]["end_reason"] == "local_hangup",
        "alice's history: {alice_calls:?}"
    );
    let bob_calls = history_calls(&dir.path().join("bob-desk.sqlite3")).await?;
    ensure!(
        bob_calls.len() == 1
            && bob_calls[0]["direction"] == "in"
            && bob_calls[0]["peer_address"] == alice_jid.as_str()
            && bob_calls[0]["end_reason"] == "remote_hangup"
            && bob_calls[0]["missed"] == false,
        "bob's history: {bob_calls:?}"
    );
    Ok(())
}

/// Issue test 1, second half: a declined call and a withdrawn (retracted) call end cleanly on
/// both sides, with their reasons, and both are in both histories.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declined_and_a_withdrawn_xmpp_call_end_on_both_sides() -> Result<()> {
    let stack = Stack::start(StackOptions::prosody_only())?;
    let dir = testkit::test_dir("lyrebird-jingle-")?;
    let bob_jid = jid(&stack, "bob");
    let (mut alice, mut bob) = alice_and_bob(&stack, dir.path(), "desk", QUIET, QUIET).await?;

    // Declined.
    let call = call_id(
        &alice
            .command(json!({"cmd": "call", "target": bob_jid}))
            .await?,
    )?;
    let bob_call = bob.incoming_call(SETUP).await?;
    alice.call_state(call, "ringing", SETUP).await?;
    bob.command(json!({"cmd": "reject", "call": bob_call}))
        .await?;
    let ended = alice.call_state(call, "ended", SETUP).await?;
    ensure!(ended["state"]["reason"] == "declined", "alice: {ended}");
    bob.call_state(bob_call, "ended", SETUP).await?;

    // Withdrawn while it rings.
    let call = call_id(
        &alice
            .command(json!({"cmd": "call", "target": bob_jid}))
            .await?,
    )?;
    let bob_call = bob.incoming_call(SETUP).await?;
    alice.call_state(call, "ringing", SETUP).await?;
    alice
        .command(json!({"cmd": "hangup", "call": call}))
        .await?;
    let ended = alice.call_state(call, "ended", SETUP).await?;
    ensure!(ended["state"]["reason"] == "cancelled", "alice: {ended}");
    let ended = bob.call_state(bob_call, "ended", SETUP).await?;
    ensure!(
        ended["state"]["reason"] == "cancelled by the caller",
        "bob: {ended}"
    );
    alice.quit().await?;
    bob.quit().await?;

    let alice_calls = history_calls(&dir.path().join("alice-laptop.sqlite3")).await?;
    let reasons: Vec<_> = alice_calls
        .iter()
        .map(|c| c["end_reason"].clone())
        .collect();
    ensure!(
        reasons == [json!("local_cancel"), json!("declined")],
        "alice's history, newest first: {alice_calls:?}"
    );
    let bob_calls = history_calls(&dir.path().join("bob-desk.sqlite3")).await?;
    let reasons: Vec<_> = bob_calls
        .iter()
        .map(|c| (c["end_reason"].clone(), c["missed"].clone()))
        .collect();
    ensure!(
        reasons
            == [
                (json!("remote_cancel"), json!(true)),
                // Never answered on this device: missed, whoever ended it.
                (json!("declined"), json!(true)),
            ],
        "bob's history, newest first: {bob_calls:?}"
    );
    Ok(())
}

/// Issue test 4: the callee's second device stops ringing when the first answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_device_stops_ringing_when_the_first_answers() -> Result<()> {
    let stack = Stack::start(StackOptions::prosody_only())?;
    let dir = testkit::test_dir("lyrebird-jingle-")?;
    let bob_jid = jid(&stack, "bob");
    let (mut alice, mut phone) = alice_and_bob(&stack, dir.path(), "phone", QUIET, QUIET).await?;
    let mut desk = lyrebird(&stack, "bob", "desk", dir.path(), QUIET).await?;

    let call = call_id(
        &alice
            .command(json!({"cmd": "call", "target": bob_jid}))
            .await?,
    )?;
    let on_phone = phone.incoming_call(SETUP).await?;
    let on_desk = desk.incoming_call(SETUP).await?;
    phone
        .command(json!({"cmd": "answer", "call": on_phone}))
        .await?;
    alice.call_state(call, "answered", SETUP).await?;
    phone.call_state(on_phone, "answered", SETUP).await?;
    let stopped = desk.call_state(on_desk, "ended", SETUP).await?;
    ensure!(
        stopped["state"]["reason"] == "answered on another of your devices",
        "the desk: {stopped}"
    );
    phone
        .command(json!({"cmd": "hangup", "call": on_phone}))
        .await?;
    alice.call_state(call, "ended", SETUP).await?;
    for peer in [alice, phone, desk] {
        peer.quit().await?;
    }
    let desk_calls = history_calls(&dir.path().join("bob-desk.sqlite3")).await?;
    ensure!(
        desk_calls.len() == 1 && desk_calls[0]["end_reason"] == "answered_elsewhere",
        "the desk's history: {desk_calls:?}"
    );
    Ok(())
}

/// Issue test 5, in part: a caller not in the roster rings, and is not answered by itself even
/// with auto-answer on; the person declines it and the caller hears so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_strangers_call_rings_and_waits_for_the_person() -> Result<()> {
    let stack = Stack::start(StackOptions::prosody_only())?;
    let dir = testkit::test_dir("lyrebird-jingle-")?;
    let bob_jid = jid(&stack, "bob");
    let mut bob = lyrebird(
        &stack,
        "bob",
        "desk",
        dir.path(),
        &["--silence", "--discard", "--auto-answer"],
    )
    .await?;
    let mut mallory = lyrebird(&stack, "carol", "laptop", dir.path(), QUIET).await?;

    let call = call_id(
        &mallory
            .command(json!({"cmd": "call", "target": bob_jid}))
            .await?,
    )?;
    let bob_call = bob.incoming_call(SETUP).await?;
    // A known caller would be answered at once; give a stranger's call the time that takes.
    let taken = bob
        .drain(Duration::from_secs(3))
        .await
        .into_iter()
        .find(|e| e["event"] == "call_state" && e["state"]["state"] == "answered");
    ensure!(taken.is_none(), "a stranger's call was answered: {taken:?}");
    bob.command(json!({"cmd": "reject", "call": bob_call}))
        .await?;
    let ended = mallory.call_state(call, "ended", SETUP).await?;
    ensure!(
        ended["state"]["reason"] == "declined",
        "the caller: {ended}"
    );
    bob.quit().await?;
    mallory.quit().await?;
    Ok(())
}

/// Issue test 2: a browser XMPP user (the `stanza` library's Jingle in Chromium, its fake
/// microphone playing speech) calls Lyrebird and is called by it. Audio is proven both ways on
/// both sides: the browser decodes audio with energy, Lyrebird's recording holds the
/// browser's speech.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_xmpp_user_and_lyrebird_call_each_other() -> Result<()> {
    let stack = Stack::start(StackOptions::prosody_only())?;
    let dir = testkit::test_dir("lyrebird-jingle-")?;
    let (alice_jid, bob_jid) = (jid(&stack, "alice"), jid(&stack, "bob"));
    let speech_browser = phrase_wav(dir.path(), 2)?;
    let speech_lyrebird = phrase_wav(dir.path(), 3)?;
    let mut browser = JingleBrowserPeer::start(
        JingleBrowserPeerOptions::new(stack.xmpp().ws_url(), &alice_jid, "alice-secret")
            .resource("browser")
            .fake_audio(&speech_browser)
            .auto_answer(true)
            .log_dir(dir.path()),
    )
    .await?;
    let (play, record_in, record_out) = (
        speech_lyrebird.to_string_lossy().into_owned(),
        dir.path().join("lyrebird-answered.wav"),
        dir.path().join("lyrebird-called.wav"),
    );
    let answered_recording = record_in.to_string_lossy().into_owned();
    let mut bob = lyrebird(
        &stack,
        "bob",
        "desk",
        dir.path(),
        &[
            "--auto-answer",
            "--play",
            &play,
            "--record",
            &answered_recording,
        ],
    )
    .await?;
    // The browser in Lyrebird's roster (so its call is answered by itself), and Lyrebird in
    // the browser's (so it sees Lyrebird's call features).
    bob.command(json!({"cmd": "add_contact", "jid": alice_jid}))
        .await?;
    browser.add_contact(&bob_jid).await?;
    bob.wait_for("the browser in the roster", DELIVERY, |e| {
        e["event"] == "contact" && e["jid"] == alice_jid.as_str()
    })
    .await?;

    // The browser calls (XEP-0353 to the bare JID); Lyrebird answers.
    browser.call(&bob_jid).await?;
    let call = bob.incoming_call(SETUP).await?;
    bob.call_state(call, "audio_flowing", SETUP).await?;
    browser.wait_for("accepted", SETUP).await?;
    let heard = browser.wait_for_decoded_audio(SETUP).await?;
    println!("the browser heard Lyrebird: {heard:?}");
    tokio::time::sleep(TALK).await;
    browser.hangup().await?;
    let ended = bob.call_state(call, "ended", SETUP).await?;
    ensure!(
        ended["state"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("other side hung up")),
        "Lyrebird: {ended}"
    );
    browser.wait_for("ended", SETUP).await?;

    // Lyrebird calls; the browser answers.
    let call = call_id(
        &bob.command(json!({"cmd": "call", "target": format!("xmpp:{alice_jid}"),
                            "play": speech_lyrebird, "record": record_out}))
            .await?,
    )?;
    browser.wait_for("incoming", SETUP).await?;
    bob.call_state(call, "audio_flowing", SETUP).await?;
    let heard = browser.wait_for_decoded_audio(SETUP).await?;
    println!("the browser heard Lyrebird's call: {heard:?}");
    tokio::time::sleep(TALK).await;
    bob.command(json!({"cmd": "hangup", "call": call})).await?;
    let ended = browser.wait_for("ended", SETUP).await?;
    ensure!(ended["reason"] == "success", "the browser: {ended}");
    bob.quit().await?;
    browser.quit().await?;

    assert_heard(
        &record_in,
        &speech_browser,
        &speech_lyrebird,
        "Lyrebird answering",
    )?;
    assert_heard(
        &record_out,
        &speech_browser,
        &speech_lyrebird,
        "Lyrebird calling",
    )?;
    let calls = history_calls(&dir.path().join("bob-desk.sqlite3")).await?;
    let kinds: Vec<_> = calls
        .iter()
        .map(|c| (c["direction"].clone(), c["end_reason"].clone()))
        .collect();
    ensure!(
        kinds
            == [
                (json!("out"), json!("local_hangup")),
                (json!("in"), json!("remote_hangup")),
            ],
        "Lyrebird's history, newest first: {calls:?}"
    );
    Ok(())
}

/// The STUN/TURN services the XMPP server offers (XEP-0215; Prosody's mod_turn_external with
/// time-limited credentials for the test bed's coturn) are used for calls when none are
/// configured: two relay-only Lyrebirds with no TURN server of their own talk through coturn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_only_call_goes_through_the_turn_server_the_xmpp_server_offers() -> Result<()> {
    let stack = Stack::start(StackOptions {
        kamailio: false,
        turn_auth: TurnAuth::SharedSecret,
        ..StackOptions::default()
    })?;
    let dir = testkit::test_dir("lyrebird-jingle-")?;
    let bob_jid = jid(&stack, "bob");
    let speech = phrase_wav(dir.path(), 0)?;
    let other = phrase_wav(dir.path(), 1)?;
    let heard = dir.path().join("heard-via-turn.wav");
    let play = speech.to_string_lossy().into_owned();
    let record = heard.to_string_lossy().into_owned();
    let (mut alice, bob) = alice_and_bob(
        &stack,
        dir.path(),
        "desk",
        &[
            "--relay-only",
            "--auto-answer",
            "--play",
            &play,
            "--discard",
        ],
        &["--relay-only", "--silence", "--record", &record],
    )
    .await?;
    let call = call_id(
        &alice
            .command(json!({"cmd": "call", "target": bob_jid}))
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
    let turn_log = std::fs::read_to_string(stack.coturn().log_path()).unwrap_or_default();
    let allocations = turn_log
        .lines()
        .filter(|l| l.contains("ALLOCATE processed, success"))
        .count();
    ensure!(
        allocations >= 2,
        "coturn logged {allocations} successful allocations:\n{turn_log}"
    );
    assert_heard(&heard, &speech, &other, "alice (through the server's TURN)")
}

/// Issue test 5: hostile or broken Jingle ends with a clear reason and breaks nothing. A
/// scripted server plays a stranger's device sending Lyrebird a session with a transport it
/// cannot use, one without a DTLS fingerprint (it would be unencrypted), a `<jingle/>` without a
/// session id and a `transport-info` for a session that does not exist; each is answered as
/// XEP-0166 says (ack then terminate with the matching reason, or an IQ error), nothing rings,
/// and a chat message after them still arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_or_broken_jingle_is_answered_with_its_reason_and_nothing_rings() -> Result<()> {
    let dir = testkit::test_dir("lyrebird-jingle-")?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move {
        let (socket, _) = listener.accept().await?;
        let mut ws = scripted_login(socket, false).await?;
        let from = "romeo@montague.lit/orchard";
        let content = |transport: &str| {
            format!(
                "<content creator='initiator' name='0'>\
                 <description xmlns='urn:xmpp:jingle:apps:rtp:1' media='audio'>\
                 <payload-type id='111' name='opus' clockrate='48000' channels='2'/><rtcp-mux/>\
                 </description>{transport}</content>"
            )
        };
        let initiate = |id: &str, sid: &str, content: &str| {
            format!(
                "<iq xmlns='jabber:client' type='set' from='{from}' to='alice@localhost/lyre' id='{id}'>\
                 <jingle xmlns='urn:xmpp:jingle:1' action='session-initiate' sid='{sid}' \
                 initiator='{from}'>{content}</jingle></iq>"
            )
        };
        let frames = [
            initiate(
                "j1",
                "s1",
                &content("<transport xmlns='urn:xmpp:jingle:transports:s5b:1' sid='x'/>"),
            ),
            initiate(
                "j2",
                "s2",
                &content(
                    "<transport xmlns='urn:xmpp:jingle:transports:ice-udp:1' ufrag='u' \
                     pwd='pppppppppppppppppppppp'/>",
                ),
            ),
            format!(
                "<iq xmlns='jabber:client' type='set' from='{from}' to='alice@localhost/lyre' id='j3'>\
                 <jingle xmlns='urn:xmpp:jingle:1' action='session-initiate'/></iq>"
            ),
            format!(
                "<iq xmlns='jabber:client' type='set' from='{from}' to='alice@localhost/lyre' id='j4'>\
                 <jingle xmlns='urn:xmpp:jingle:1' action='transport-info' sid='nope'/></iq>"
            ),
            format!(
                "<message xmlns='jabber:client' from='{from}' type='chat' id='m1'>\
                 <body>still readable</body></message>"
            ),
        ];
        for frame in &frames {
            ws.send(text(frame)).await?;
        }
        // What Lyrebird answers, until every request has its answer (or time is up).
        let mut answers = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        let answered = |answers: &[String]| {
            ["j1", "j2", "j3", "j4"].iter().all(|id| {
                answers
                    .iter()
                    .any(|a| a.starts_with("<iq") && xml_attr(a, "id").as_deref() == Some(*id))
            }) && ["s1", "s2"].iter().all(|sid| {
                answers
                    .iter()
                    .any(|a| a.contains("session-terminate") && a.contains(&format!("sid='{sid}'")))
            })
        };
        while !answered(&answers) {
            match tokio::time::timeout_at(deadline, ws.next()).await {
                Ok(Some(Ok(Message::Text(frame)))) => answers.push(frame.to_string()),
                Ok(Some(Ok(_))) => {}
                _ => break,
            }
        }
        anyhow::Ok(answers)
    });
    let mut alice = start_lyrebird(
        &format!("ws://{addr}/xmpp-websocket"),
        "alice@localhost",
        "alice-secret",
        &dir.path().join("alice.sqlite3"),
        &dir.path().join("alice.log"),
        &["--no-archive", "--bind", "127.0.0.1"],
    )?;
    online(&mut alice, LOGIN).await?;
    alice
        .wait_for("the message after the hostile Jingle", DELIVERY, |e| {
            e["event"] == "chat_message" && e["body"] == "still readable"
        })
        .await?;
    let answers = tokio::time::timeout(Duration::from_secs(20), server).await???;
    let find = |what: &dyn Fn(&String) -> bool| answers.iter().find(|a| what(a)).cloned();
    let id_is = |a: &String, id: &str| xml_attr(a, "id").as_deref() == Some(id);
    let terminate = |sid: &str| {
        find(&|a: &String| a.contains("session-terminate") && a.contains(&format!("sid='{sid}'")))
    };
    for id in ["j1", "j2"] {
        ensure!(
            find(&|a: &String| id_is(a, id) && a.contains("type='result'")).is_some(),
            "{id} was not acknowledged: {answers:#?}"
        );
    }
    let s1 = terminate("s1").unwrap_or_default();
    ensure!(s1.contains("<unsupported-transports"), "{answers:#?}");
    let s2 = terminate("s2").unwrap_or_default();
    ensure!(s2.contains("<security-error"), "{answers:#?}");
    let j3 = find(&|a: &String| id_is(a, "j3")).unwrap_or_default();
    ensure!(
        j3.contains("type='error'") && j3.contains("bad-request"),
        "{answers:#?}"
    );
    let j4 = find(&|a: &String| id_is(a, "j4")).unwrap_or_default();
    ensure!(
        j4.contains("item-not-found") && j4.contains("unknown-session"),
        "{answers:#?}"
    );
    let rang: Vec<&Value> = alice
        .history
        .iter()
        .filter(|e| e["event"] == "incoming_call")
        .collect();
    ensure!(rang.is_empty(), "broken calls rang: {rang:?}");
    let warned = alice
        .history
        .iter()
        .filter(|e| e["event"] == "warning")
        .count();
    ensure!(warned >= 1, "nothing said why the calls were refused");
    alice.quit().await?;
    Ok(())
}

/// The demo contact's XMPP side (`./task demo`): `--auto-answer --echo` sends back what the
/// caller says, so the caller's recording holds the caller's own speech.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_xmpp_echo_service_sends_the_callers_speech_back() -> Result<()> {
    let stack = Stack::start(StackOptions::prosody_only())?;
    let dir = testkit::test_dir("lyrebird-jingle-")?;
    let bob_jid = jid(&stack, "bob");
    let speech = phrase_wav(dir.path(), 0)?;
    let other = phrase_wav(dir.path(), 1)?;
    let echoed = dir.path().join("echoed.wav");
    let (mut alice, bob) = alice_and_bob(
        &stack,
        dir.path(),
        "echo",
        &["--auto-answer", "--echo"],
        &[],
    )
    .await?;
    let call = call_id(
        &alice
            .command(json!({"cmd": "call", "target": bob_jid, "play": speech, "record": echoed}))
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
    assert_heard(&echoed, &speech, &other, "alice (her own words, echoed)")
}
