//! The controls of a real phone in the real desktop window: the `lyrebird` app under Xvfb,
//! driven through tauri-driver + WebKitWebDriver, against a real Kamailio and Prosody on
//! loopback, with headless Lyrebirds (`lyrebird-cli`) as the other parties.
//!
//! Alice (the window, her SIP and XMPP accounts provisioned) has Bob and Carol in her contacts.
//! She calls Bob; Carol calls while they talk, and the incoming-call screen offers to hold Bob
//! and answer. Both calls are then on screen, named as her contacts; she swaps between them
//! with hold and resume, records one, merges them into a conference, takes Bob out of it
//! again, and transfers Carol to Dave (blind, through the transfer dialog); a second call from
//! Carol while Alice is in a call is declined; last, she calls Dave and connects Bob with him
//! (attended transfer, the dialog's other choice). Every step is checked on the other side too.
//!
//! Screenshots of the multi-call view, the conference view and the transfer dialog go to
//! `$CARGO_TARGET_DIR/lyrebird-screenshots/` (`calls-*.png`), and every screen is audited with
//! axe-core: a serious or critical accessibility violation fails the test.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde_json::{Value, json};
use testkit::axe::Audits;
use testkit::desktop::{DesktopApp, DesktopOptions};
use testkit::lyrebird::{Lyrebird, LyrebirdOptions, call_id};
use testkit::stack::{Stack, StackOptions};
use testkit::webdriver::{Session, testid};

/// Bound for a server-side step (registration, call setup, a re-INVITE).
const SETUP: Duration = Duration::from_secs(20);
/// Bound for the UI to show something the engine already knows.
const UI: Duration = Duration::from_secs(20);

fn step(started: Instant, what: &str) {
    println!("[{:>5.1} s] {what}", started.elapsed().as_secs_f64());
}

/// The CSS of the call card with `user` on the other side.
fn card(user: &str) -> String {
    format!("[data-testid=\"in-call\"][data-peer*=\"sip:{user}@\"]")
}

/// What the window shows of each call going on, in screen order.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CardView {
    peer: String,
    name: String,
    state: String,
    active: bool,
    held: bool,
}

fn cards(session: &Session) -> Result<Vec<CardView>> {
    let value = session.execute(
        "return [...document.querySelectorAll('[data-testid=\"in-call\"]')].map(c => ({\
           peer: c.dataset.peer, state: c.dataset.state,\
           active: c.dataset.active === 'true', held: c.dataset.held === 'true',\
           name: (c.querySelector('[data-testid=\"call-peer\"]') || {}).textContent || ''\
         }));",
        vec![],
    )?;
    let list = value.as_array().cloned().unwrap_or_default();
    Ok(list
        .iter()
        .map(|c| CardView {
            peer: c["peer"].as_str().unwrap_or_default().to_owned(),
            name: c["name"].as_str().unwrap_or_default().trim().to_owned(),
            state: c["state"].as_str().unwrap_or_default().to_owned(),
            active: c["active"] == true,
            held: c["held"] == true,
        })
        .collect())
}

/// Waits until the live calls on screen are, in order, `want`: (user, active, held).
fn wait_cards(session: &Session, what: &str, want: &[(&str, bool, bool)]) -> Result<Vec<CardView>> {
    session.wait_for(what, UI, |s| {
        let now: Vec<CardView> = cards(s)?
            .into_iter()
            .filter(|c| c.state != "ended")
            .collect();
        let matches = now.len() == want.len()
            && now.iter().zip(want).all(|(c, (user, active, held))| {
                c.peer.contains(&format!("sip:{user}@")) && c.active == *active && c.held == *held
            });
        Ok(matches.then_some(now))
    })
}

/// Clicks the button `id` inside the call card with `user`.
fn click_on_card(app: &DesktopApp, user: &str, id: &str) -> Result<()> {
    app.click_css(&format!("{} {}", card(user), testid(id)), UI)?;
    Ok(())
}

fn text_of(session: &Session, css: &str) -> Result<String> {
    let element = session.wait_element(css, UI)?;
    Ok(session.text(&element)?.trim().to_owned())
}

fn write_provision(stack: &Stack, path: &Path) -> Result<()> {
    let (kamailio, prosody) = (stack.kamailio(), stack.prosody());
    let accounts = json!([
        {"settings": {"kind": "sip", "ws_url": kamailio.ws_url(),
                      "aor": format!("sip:alice@{}", kamailio.domain()),
                      "display_name": "Alice", "auth_username": null, "outbound_proxy": null,
                      "turn": null, "msrp_relay_ws_url": null, "msrp_relay_uri": null,
                      "trusted_certificate": null},
         "password": "alice-secret"},
        {"settings": {"kind": "xmpp", "ws_url": prosody.ws_url(),
                      "jid": format!("alice@{}", prosody.domain()), "resource": null,
                      "allow_plain": true, "trusted_certificate": null},
         "password": "alice-secret"}
    ]);
    std::fs::write(path, serde_json::to_vec_pretty(&accounts)?)?;
    Ok(())
}

struct Parties {
    bob: Lyrebird,
    carol: Lyrebird,
    dave: Lyrebird,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_window_juggles_several_calls_like_a_phone() -> Result<()> {
    let started = Instant::now();
    let stack = Stack::start(StackOptions {
        coturn: false,
        ..StackOptions::default()
    })?;
    let dir = testkit::test_dir("lyrebird-desktop-calls-")?;
    let kamailio = stack.kamailio();
    let domain = kamailio.domain().to_owned();
    let party = |user: &str, name: &str, tone: &str| {
        LyrebirdOptions::for_user(
            &kamailio.ws_url(),
            &domain,
            user,
            &format!("{user}-secret"),
            dir.path(),
        )
        .arg("--display-name")
        .arg(name)
        .arg("--tone")
        .arg(tone)
        .arg("--discard")
    };
    // Bob and Dave answer by themselves; Carol calls Alice and is transferred to Dave.
    let mut parties = Parties {
        bob: Lyrebird::start(party("bob", "bob's phone", "440").arg("--auto-answer")).await?,
        carol: Lyrebird::start(party("carol", "carol's phone", "660")).await?,
        dave: Lyrebird::start(party("dave", "Dave Davis", "880").arg("--auto-answer")).await?,
    };
    for lyrebird in [&mut parties.bob, &mut parties.carol, &mut parties.dave] {
        lyrebird.registered(SETUP).await?;
    }
    step(started, "servers, bob, carol and dave ready");

    let provision = dir.path().join("accounts.json");
    write_provision(&stack, &provision)?;
    let options =
        DesktopOptions::new(dir.path())?.env("LYREBIRD_PROVISION", provision.display().to_string());
    let recordings = options.data_dir.join("recordings");
    let app = DesktopApp::start(options)?;
    step(
        started,
        &format!("window open on display {}", app.display()),
    );
    let mut audits = Audits::default();
    let result = drive(
        &app,
        &mut parties,
        &mut audits,
        &domain,
        &recordings,
        started,
    )
    .await;
    if let Err(error) = &result {
        let _ = app.screenshot("calls-failure");
        let source = app.session().source().unwrap_or_default();
        std::fs::write(dir.path().join("failure.html"), source)?;
        eprintln!(
            "FAILED: {error:#}\n--- app log tail ---\n{}\n--- page saved in {} ---",
            app.log_tail(),
            dir.path().join("failure.html").display()
        );
    }
    result?;
    println!("audited: {}", audits.screens().join(", "));
    audits.ensure_passed()?;
    drop(app);
    let Parties { bob, carol, dave } = parties;
    for lyrebird in [bob, carol, dave] {
        lyrebird.quit().await?;
    }
    step(started, "done");
    Ok(())
}

async fn drive(
    app: &DesktopApp,
    parties: &mut Parties,
    audits: &mut Audits,
    domain: &str,
    recordings: &Path,
    started: Instant,
) -> Result<()> {
    let session = app.session();
    let Parties { bob, carol, dave } = parties;
    let alice = format!("sip:alice@{domain}");

    // The provisioned accounts come online.
    app.click("nav-settings", UI)?;
    for (kind, state) in [("SIP", "registered"), ("XMPP", "online")] {
        session.wait_for(&format!("the {kind} account {state}"), SETUP, |s| {
            for item in s.find_all(&testid("account-item"))? {
                if s.text(&item)?.contains(kind)
                    && s.attribute(&item, "data-state")?.as_deref() == Some(state)
                {
                    return Ok(Some(()));
                }
            }
            Ok(None)
        })?;
    }
    step(started, "accounts online");

    // Bob and Carol as contacts, with the names Alice knows them by (an XMPP roster entry
    // names the person at the same address, whatever their phone sends as its name).
    app.click("nav-contacts", UI)?;
    for (user, name) in [("bob", "Bob Baker"), ("carol", "Carol Carter")] {
        app.fill("contact-add-address", &format!("{user}@{domain}"), UI)?;
        app.fill("contact-add-name", name, UI)?;
        app.click("contact-add", UI)?;
        let address = format!("{user}@{domain}");
        let mut last = Value::Null;
        let found = session.wait_for(&format!("{name} in contacts"), SETUP, |s| {
            last = s.execute(
                "return [...document.querySelectorAll('[data-testid=\"contact-item\"]')]\
                   .map(e => [e.dataset.addresses || '', e.textContent || '']);",
                vec![],
            )?;
            let listed = last.as_array().cloned().unwrap_or_default();
            Ok(listed
                .iter()
                .any(|item| {
                    let addresses = item[0].as_str().unwrap_or_default();
                    addresses.split_whitespace().any(|a| a == address)
                        && item[1].as_str().unwrap_or_default().contains(name)
                })
                .then_some(()))
        });
        found.with_context(|| format!("contacts listed: {last}"))?;
    }
    step(started, "bob and carol are contacts");

    // 1. Alice calls Bob.
    app.click("nav-calls", UI)?;
    audits.run(session, "calls")?;
    app.fill("dial-input", &format!("sip:bob@{domain}"), UI)?;
    app.click("dial-call", UI)?;
    let bob_call = bob.incoming_call(SETUP).await?;
    bob.call_state(bob_call, "audio_flowing", SETUP).await?;
    wait_cards(session, "the call with bob", &[("bob", true, false)])?;
    ensure!(
        text_of(session, &format!("{} {}", card("bob"), testid("call-peer")))? == "Bob Baker",
        "bob is not shown by his contact name"
    );
    step(started, "in a call with bob");

    // 2. Carol calls: the incoming-call screen says Bob will be held.
    let carol_call = call_id(
        &carol
            .command(json!({"cmd": "call", "target": alice}))
            .await?,
    )?;
    carol.call_state(carol_call, "ringing", SETUP).await?;
    let waiting = text_of(session, &testid("incoming-while-in-call"))?;
    ensure!(
        waiting == "You are in a call with Bob Baker; answering puts it on hold.",
        "the incoming screen says {waiting:?}"
    );
    let caller = text_of(session, &testid("incoming-caller"))?;
    ensure!(
        caller.contains("Carol Carter") && !caller.contains("sip:"),
        "caller shown as {caller:?}"
    );
    ensure!(
        text_of(session, &testid("incoming-answer"))? == "Hold and answer",
        "the answer button does not say it holds bob"
    );
    app.screenshot("calls-incoming-while-in-call")?;
    audits.run(session, "incoming call while in a call")?;

    // 3. Hold and answer: Bob is held, Carol talks.
    app.click("incoming-answer", UI)?;
    carol.call_state(carol_call, "audio_flowing", SETUP).await?;
    bob.hold_state(bob_call, false, true, SETUP).await?;
    let shown = wait_cards(
        session,
        "carol active, bob held",
        &[("carol", true, false), ("bob", false, true)],
    )?;
    let names: Vec<&str> = shown.iter().map(|c| c.name.as_str()).collect();
    ensure!(
        names == ["Carol Carter", "Bob Baker"],
        "calls named {names:?}"
    );
    app.screenshot("calls-multi-call")?;
    audits.run(session, "several calls")?;
    step(started, "answered carol, bob on hold");

    // 4. Swap: resuming Bob holds Carol, and back.
    click_on_card(app, "bob", "call-hold")?;
    bob.hold_state(bob_call, false, false, SETUP).await?;
    carol.hold_state(carol_call, false, true, SETUP).await?;
    wait_cards(
        session,
        "bob active, carol held",
        &[("bob", true, false), ("carol", false, true)],
    )?;
    click_on_card(app, "carol", "call-hold")?;
    carol.hold_state(carol_call, false, false, SETUP).await?;
    bob.hold_state(bob_call, false, true, SETUP).await?;
    wait_cards(
        session,
        "carol active again, bob held",
        &[("carol", true, false), ("bob", false, true)],
    )?;
    step(started, "swapped between the calls with hold and resume");

    // 5. Record the call with Carol: a red dot and a file in the recordings folder.
    click_on_card(app, "carol", "call-record")?;
    let indicator = text_of(
        session,
        &format!("{} {}", card("carol"), testid("call-recording")),
    )?;
    ensure!(
        indicator.starts_with("· Recording to ") && indicator.ends_with(".wav"),
        "recording indicator says {indicator:?}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    app.screenshot("calls-recording")?;
    click_on_card(app, "carol", "call-record")?;
    session.wait_for("the recording indicator to go", UI, |s| {
        Ok(
            s.find_all(&format!("{} {}", card("carol"), testid("call-recording")))?
                .is_empty()
                .then_some(()),
        )
    })?;
    let files: Vec<_> = std::fs::read_dir(recordings)
        .with_context(|| format!("reading {}", recordings.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "wav"))
        .collect();
    let Some(file) = files.first() else {
        bail!("no recording in {}", recordings.display());
    };
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    ensure!(
        indicator.ends_with(&name),
        "the window named {indicator:?}, the file is {name}"
    );
    let size = std::fs::metadata(file)?.len();
    ensure!(
        size > 44 + 16_000,
        "the recording {} holds {size} bytes",
        file.display()
    );
    step(started, &format!("recorded {name} ({size} bytes)"));

    // 6. Merge: Bob comes off hold into a conference with Carol and Alice.
    click_on_card(app, "carol", "call-merge")?;
    bob.hold_state(bob_call, false, false, SETUP).await?;
    // textContent, not WebDriver's element text: WebKitWebDriver leaves out text in boxes that
    // cut it with an ellipsis, as the roster's names are.
    let members = session.wait_for("the conference roster", UI, |s| {
        let value = s.execute(
            "return [...document.querySelectorAll('[data-testid=\"conference-member\"]')]\
               .map(e => e.textContent);",
            vec![],
        )?;
        let peers: Vec<String> = value
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        Ok((peers.len() == 2).then_some(peers))
    })?;
    ensure!(
        members.iter().any(|m| m.contains("Carol Carter"))
            && members.iter().any(|m| m.contains("Bob Baker"))
            && members.iter().all(|m| !m.contains("sip:")),
        "conference roster: {members:?}"
    );
    app.screenshot("calls-conference")?;
    audits.run(session, "conference")?;
    step(started, "merged into a conference");

    // Split Bob out: the conference is gone, both calls stay.
    let split = format!(
        "[data-testid=\"conference-member\"][data-peer*=\"sip:bob@\"] {}",
        testid("conference-split")
    );
    app.click_css(&split, UI)?;
    session.wait_for("the conference to end", UI, |s| {
        Ok(s.find_all(&testid("conference"))?.is_empty().then_some(()))
    })?;
    ensure!(
        cards(session)?
            .iter()
            .filter(|c| c.state != "ended")
            .count()
            == 2,
        "both calls go on after the split"
    );
    step(started, "split bob out of the conference");

    // 7. Transfer Carol to Dave through the dialog (blind).
    click_on_card(app, "carol", "call-transfer")?;
    session.wait_testid("call-transfer-dialog", UI)?;
    let offered = session.find_all(&testid("call-transfer-attended"))?;
    ensure!(
        offered.len() == 1,
        "the dialog offers {} other calls",
        offered.len()
    );
    ensure!(
        session.text(&offered[0])?.trim() == "Connect with Bob Baker",
        "the other call is not named by contact"
    );
    app.screenshot("calls-transfer-dialog")?;
    audits.run(session, "transfer dialog")?;
    app.fill("call-transfer-target", &format!("sip:dave@{domain}"), UI)?;
    app.click("call-transfer-blind", UI)?;
    let dave_call = dave.incoming_call(SETUP).await?;
    dave.call_state(dave_call, "audio_flowing", SETUP).await?;
    carol.call_state(carol_call, "ended", SETUP).await?;
    wait_cards(session, "only bob's call left", &[("bob", true, false)])?;
    step(started, "carol transferred to dave");

    // 8. Carol calls again while Alice talks to Bob; Alice declines.
    let again = call_id(
        &carol
            .command(json!({"cmd": "call", "target": alice}))
            .await?,
    )?;
    carol.call_state(again, "ringing", SETUP).await?;
    session.wait_testid("incoming-while-in-call", UI)?;
    app.click("incoming-decline", UI)?;
    let ended = carol.call_state(again, "ended", SETUP).await?;
    println!("carol's declined call: {}", ended["state"]);
    ensure!(
        ended["state"]["status"].as_u64().is_some_and(|s| s >= 400),
        "carol's call was not refused: {ended}"
    );
    wait_cards(session, "bob's call goes on", &[("bob", true, false)])?;
    step(started, "declined carol's second call, still with bob");

    // 9. Alice calls Dave too (Bob is held), and connects Bob with Dave through the dialog
    // (attended transfer): both her calls end, and Bob calls Dave in place of hers.
    app.click("nav-calls", UI)?;
    app.fill("dial-input", &format!("sip:dave@{domain}"), UI)?;
    app.click("dial-call", UI)?;
    let dave_alice = dave
        .wait_for("alice's call at dave", SETUP, |e| {
            e["event"] == "incoming_call" && e["call"] != json!(dave_call)
        })
        .await?["call"]
        .as_u64()
        .context("no id")?;
    dave.call_state(dave_alice, "audio_flowing", SETUP).await?;
    bob.hold_state(bob_call, false, true, SETUP).await?;
    wait_cards(
        session,
        "dave active, bob held",
        &[("dave", true, false), ("bob", false, true)],
    )?;
    click_on_card(app, "bob", "call-transfer")?;
    let connect = session.wait_element(&testid("call-transfer-attended"), UI)?;
    let words = session.text(&connect)?;
    ensure!(
        words.trim() == "Connect with dave",
        "the attended transfer button says {words:?}"
    );
    session.click(&connect)?;
    let bob_dave = bob
        .wait_for("bob's call to dave", SETUP, |e| {
            e["event"] == "call_state"
                && e["state"]["state"] == "dialing"
                && e["state"]["direction"] == "outgoing"
        })
        .await?["call"]
        .as_u64()
        .context("no id")?;
    bob.call_state(bob_dave, "audio_flowing", SETUP).await?;
    bob.call_state(bob_call, "ended", SETUP).await?;
    dave.call_state(dave_alice, "ended", SETUP).await?;
    wait_cards(session, "no call left", &[])?;
    step(started, "connected bob with dave (attended transfer)");

    // The others hang up.
    bob.command(json!({"cmd": "hangup", "call": bob_dave}))
        .await?;
    let dave_carol = carol
        .wait_for("carol's call to dave", SETUP, |e| {
            e["event"] == "call_state"
                && e["state"]["state"] == "dialing"
                && e["state"]["direction"] == "outgoing"
                && e["call"] != json!(carol_call)
                && e["call"] != json!(again)
        })
        .await?;
    carol
        .command(json!({"cmd": "hangup", "call": dave_carol["call"].clone()}))
        .await?;
    dave.call_state(dave_call, "ended", SETUP).await?;
    Ok(())
}
