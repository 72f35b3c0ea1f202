//! One `lyrebird-cli accounts` process holding a SIP and an XMPP account at once, as the desktop
//! app holds them, against the real Kamailio and Prosody: a SIP MESSAGE and an XMPP chat
//! message each reach a peer and an answer comes back to the right account, a call placed on
//! the SIP account is held and resumed, and both accounts' messages are in the one history.
//! What is asserted is what a person would check: the words arrived where they were sent, and
//! a command that could go to either account is not guessed.

use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use serde_json::{Value, json};
use testkit::json_lines::JsonLines;
use testkit::lyrebird::{Lyrebird, LyrebirdOptions, start_accounts};
use testkit::stack::{Stack, StackOptions};
use testkit::xmpp::{online, start_lyrebird};

const SETUP: Duration = Duration::from_secs(20);
const DELIVERY: Duration = Duration::from_secs(15);

/// Sends a command that must be refused; returns the refusal.
async fn refused(peer: &mut JsonLines, command: Value) -> Result<String> {
    match peer.command(command).await {
        Ok(result) => bail!("accepted: {result}"),
        Err(e) => Ok(e.to_string()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_process_uses_a_sip_and_an_xmpp_account_at_once() -> Result<()> {
    let stack = Stack::start(StackOptions {
        coturn: false,
        ..StackOptions::default()
    })?;
    let dir = testkit::test_dir("lyrebird-several-accounts-")?;
    let (kamailio, prosody) = (stack.kamailio(), stack.prosody());
    let alice_sip = format!("sip:alice@{}", kamailio.domain());
    let alice_jid = format!("alice@{}", prosody.domain());
    let bob_sip = format!("sip:bob@{}", kamailio.domain());
    let bob_jid = format!("bob@{}", prosody.domain());

    // Alice: both accounts in one accounts file, passwords in the environment.
    let file = dir.path().join("accounts.json");
    let accounts = json!([
        {"kind": "sip", "ws": kamailio.ws_url(), "aor": alice_sip,
         "password_env": "ALICE_SIP_PASSWORD", "display_name": "Alice"},
        {"kind": "xmpp", "ws": prosody.ws_url(), "jid": alice_jid,
         "password_env": "ALICE_XMPP_PASSWORD", "allow_plain": true}
    ]);
    std::fs::write(&file, serde_json::to_vec_pretty(&accounts)?)?;
    let mut alice = start_accounts(
        &file,
        &dir.path().join("alice.sqlite3"),
        &dir.path().join("alice.log"),
        &[
            ("ALICE_SIP_PASSWORD".into(), "alice-secret".into()),
            ("ALICE_XMPP_PASSWORD".into(), "alice-secret".into()),
        ],
        &["--tone", "440", "--discard"],
    )?;
    // Bob: the single-account modes, one process each.
    let mut bob_phone = Lyrebird::start(
        LyrebirdOptions::for_user(
            &kamailio.ws_url(),
            kamailio.domain(),
            "bob",
            "bob-secret",
            dir.path(),
        )
        .arg("--auto-answer")
        .arg("--tone")
        .arg("660")
        .arg("--discard"),
    )
    .await?;
    let mut bob_chat = start_lyrebird(
        &prosody.ws_url(),
        &bob_jid,
        "bob-secret",
        &dir.path().join("bob-xmpp.sqlite3"),
        &dir.path().join("bob-xmpp.log"),
        &[],
    )?;

    let listed = alice
        .wait_for("the accounts", SETUP, |e| e["event"] == "accounts")
        .await?;
    ensure!(
        listed["accounts"]
            == json!([
                {"account": 1, "kind": "sip", "address": alice_sip},
                {"account": 2, "kind": "xmpp", "address": alice_jid}
            ]),
        "{listed}"
    );
    alice
        .wait_for("alice's SIP account registered", SETUP, |e| {
            e["event"] == "account_state"
                && e["account"] == 1
                && e["state"]["state"] == "registered"
        })
        .await?;
    alice
        .wait_for("alice's XMPP account online", SETUP, |e| {
            e["event"] == "xmpp_online" && e["account"] == 2
        })
        .await?;
    bob_phone.registered(SETUP).await?;
    online(&mut bob_chat, SETUP).await?;

    // Both accounts take `message`: unnamed, it is refused, not guessed.
    let why = refused(
        &mut alice,
        json!({"cmd": "message", "target": bob_sip, "body": "which way?"}),
    )
    .await?;
    ensure!(why.contains("several accounts take message"), "{why}");
    // Nor does an account take the other kind's command.
    let why = refused(
        &mut alice,
        json!({"cmd": "join", "account": 1, "room": "x@y", "nick": "alice"}),
    )
    .await?;
    ensure!(why.contains("not a command of SIP accounts"), "{why}");

    // A SIP MESSAGE, the SIP account named by its AoR; and an XMPP chat message, the XMPP
    // account named by its id. Each reaches its peer.
    let sip_text = "Kookaburra over SIP, ünïcode & <all>";
    let xmpp_text = "Kookaburra over XMPP, ünïcode & <all>";
    alice
        .command(
            json!({"cmd": "message", "account": alice_sip, "target": bob_sip, "body": sip_text}),
        )
        .await?;
    alice
        .command(json!({"cmd": "message", "account": 2, "to": bob_jid, "body": xmpp_text}))
        .await?;
    let got = bob_phone
        .wait_for("alice's SIP MESSAGE", DELIVERY, |e| {
            e["event"] == "message_received" && e["body"] == sip_text
        })
        .await?;
    ensure!(
        got["from"]
            .as_str()
            .is_some_and(|f| f.contains("sip:alice@")),
        "{got}"
    );
    let got = bob_chat
        .wait_for("alice's chat message", DELIVERY, |e| {
            e["event"] == "chat_message" && e["body"] == xmpp_text
        })
        .await?;
    ensure!(
        got["peer"] == alice_jid && got["outgoing"] == false,
        "{got}"
    );

    // Answers come back, each to the account it was sent to.
    bob_phone
        .command(json!({"cmd": "message", "target": alice_sip, "body": "SIP answer"}))
        .await?;
    bob_chat
        .command(json!({"cmd": "message", "to": alice_jid, "body": "XMPP answer"}))
        .await?;
    alice
        .wait_for("bob's SIP answer on account 1", DELIVERY, |e| {
            e["event"] == "message_received" && e["account"] == 1 && e["body"] == "SIP answer"
        })
        .await?;
    alice
        .wait_for("bob's XMPP answer on account 2", DELIVERY, |e| {
            e["event"] == "chat_message"
                && e["account"] == 2
                && e["body"] == "XMPP answer"
                && e["outgoing"] == false
        })
        .await?;

    // A call: only the SIP account takes `call`, so it needs no name. Held and resumed from
    // this process, the other side sees it.
    let call = alice
        .command(json!({"cmd": "call", "target": bob_sip}))
        .await?["call"]
        .as_u64()
        .context("no call id")?;
    alice
        .wait_for("the call's audio", SETUP, |e| {
            e["event"] == "call_state"
                && e["call"] == json!(call)
                && e["account"] == 1
                && e["state"]["state"] == "audio_flowing"
        })
        .await?;
    let bob_call = bob_phone.incoming_call(SETUP).await?;
    bob_phone
        .call_state(bob_call, "audio_flowing", SETUP)
        .await?;
    alice
        .command(json!({"cmd": "hold", "account": alice_sip, "call": call}))
        .await?;
    alice.hold_state(call, true, false, SETUP).await?;
    bob_phone.hold_state(bob_call, false, true, SETUP).await?;
    alice
        .command(json!({"cmd": "resume", "call": call}))
        .await?;
    alice.hold_state(call, false, false, SETUP).await?;
    bob_phone.hold_state(bob_call, false, false, SETUP).await?;
    alice
        .command(json!({"cmd": "hangup", "call": call}))
        .await?;
    bob_phone.call_state(bob_call, "ended", SETUP).await?;

    // One history holds both accounts' words; a search needs no account.
    let hits = alice
        .command(json!({"cmd": "search", "query": "kookaburra"}))
        .await?;
    let mut found: Vec<&str> = hits["hits"]
        .as_array()
        .context("search without hits")?
        .iter()
        .filter_map(|h| h["message"]["body"].as_str())
        .collect();
    found.sort_unstable();
    ensure!(found == [sip_text, xmpp_text], "{hits}");

    alice.quit().await?;
    bob_phone.quit().await?;
    bob_chat.quit().await?;
    Ok(())
}
