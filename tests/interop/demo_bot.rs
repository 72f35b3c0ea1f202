//! The demo contact's bot behaviour (what `./task demo` runs as "bob"), against real servers:
//! `lyrebird-cli run --reply-messages` answers SIP MESSAGEs, `lyrebird-cli xmpp --reply-chats
//! --auto-approve` approves a subscription and answers chats. A person checks that the reply
//! comes back with their own words in it, and that two bots do not answer each other for ever.
//! (Auto-accepting files, `--auto-accept-files`, is proven in msrp_transfer.rs.)

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use serde_json::{Value, json};
use testkit::lyrebird::{Lyrebird, LyrebirdOptions};
use testkit::stack::{Stack, StackOptions};
use testkit::xmpp::{online, start_lyrebird};

const SETUP: Duration = Duration::from_secs(20);
const DELIVERY: Duration = Duration::from_secs(15);

fn is_sip_message(e: &Value, body: &str) -> bool {
    e["event"] == "message_received" && e["body"] == body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sip_bot_answers_each_message_with_its_text() -> Result<()> {
    let stack = Stack::start(StackOptions::kamailio_only())?;
    let dir = tempfile::tempdir()?;
    let kamailio = stack.kamailio();
    let options = |user: &str| {
        LyrebirdOptions::for_user(
            &kamailio.ws_url(),
            kamailio.domain(),
            user,
            &format!("{user}-secret"),
            dir.path(),
        )
    };
    let mut bob = Lyrebird::start(options("bob").arg("--reply-messages")).await?;
    let mut alice = Lyrebird::start(options("alice")).await?;
    bob.registered(SETUP).await?;
    alice.registered(SETUP).await?;
    let bob_uri = format!("sip:bob@{}", kamailio.domain());

    // Text that looks like another bot's reply gets none (no bot ping-pong); then a normal one.
    // Kamailio forwards in order over one WebSocket, so once the second reply is in, a reply to
    // the first would have been seen already.
    for body in ["You said: I am a bot", "Hello bob, <b>ünïcode</b> & all"] {
        alice
            .command(json!({"cmd": "message", "target": bob_uri, "body": body}))
            .await?;
    }
    let reply = alice
        .wait_for("bob's reply", DELIVERY, |e| {
            is_sip_message(e, "You said: Hello bob, <b>ünïcode</b> & all")
        })
        .await?;
    ensure!(
        reply["from"]
            .as_str()
            .is_some_and(|f| f.contains("sip:bob@")),
        "reply not from bob: {reply}"
    );
    ensure!(
        !alice
            .history
            .iter()
            .any(|e| is_sip_message(e, "You said: You said: I am a bot")),
        "the bot answered a bot's reply"
    );
    let replied = bob
        .wait_for("the bot's reply", DELIVERY, |e| e["event"] == "bot_reply")
        .await?;
    ensure!(replied["ok"] == true, "bob could not reply: {replied}");
    alice.quit().await?;
    bob.quit().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xmpp_bot_approves_and_answers_each_chat() -> Result<()> {
    let stack = Stack::start(StackOptions::prosody_only())?;
    let dir = tempfile::tempdir()?;
    let prosody = stack.prosody();
    let jid = |user: &str| format!("{user}@{}", prosody.domain());
    let start = |user: &str, extra: &[&str]| {
        start_lyrebird(
            &prosody.ws_url(),
            &jid(user),
            &format!("{user}-secret"),
            &dir.path().join(format!("{user}.sqlite3")),
            &dir.path().join(format!("{user}.log")),
            extra,
        )
    };
    let mut bob = start("bob", &["--reply-chats", "--auto-approve"])?;
    online(&mut bob, SETUP).await?;
    let mut alice = start("alice", &["--auto-approve"])?;
    online(&mut alice, SETUP).await?;

    // Alice asks to see bob; bob's bot approves and asks back; alice (auto-approve) agrees.
    alice
        .command(json!({"cmd": "add_contact", "jid": jid("bob"), "name": "Bob (demo)"}))
        .await?;
    alice
        .wait_for(
            "bob in the roster with a mutual subscription",
            DELIVERY,
            |e| e["event"] == "contact" && e["jid"] == jid("bob") && e["subscription"] == "both",
        )
        .await?;
    alice
        .wait_for("bob online", DELIVERY, |e| {
            e["event"] == "presence"
                && e["available"] == true
                && e["jid"]
                    .as_str()
                    .is_some_and(|j| j.starts_with(&format!("{}/", jid("bob"))))
        })
        .await?;

    let body = "Hi bob! <script>alert(1)</script>";
    alice
        .command(json!({"cmd": "message", "to": jid("bob"), "body": body}))
        .await?;
    let reply = alice
        .wait_for("bob's reply", DELIVERY, |e| {
            e["event"] == "chat_message"
                && e["outgoing"] == false
                && e["body"] == format!("You said: {body}")
        })
        .await?;
    ensure!(reply["peer"] == jid("bob"), "{reply}");
    let replied = bob
        .wait_for("the bot's reply", DELIVERY, |e| e["event"] == "bot_reply")
        .await?;
    ensure!(replied["ok"] == true, "bob could not reply: {replied}");
    // Bob's own reply (outgoing, and any carbon or echo of it) is not answered again.
    let later = bob.drain(Duration::from_secs(2)).await;
    ensure!(
        !later.iter().any(|e| e["event"] == "bot_reply"),
        "bob replied again: {later:?}"
    );
    let text = reply["body"].as_str().context("reply without body")?;
    ensure!(text.ends_with("</script>"), "{text}");
    alice.quit().await?;
    bob.quit().await?;
    Ok(())
}
