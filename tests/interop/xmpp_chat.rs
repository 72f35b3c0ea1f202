//! Chat and presence over XMPP-over-WebSocket against real servers on loopback: two
//! Lyrebirds, Lyrebird with a third-party client (xmpp.js in Node), carbons, the archive,
//! stream resumption after a cut connection, a group chat, HTTP upload, and bad input.
//! The tests of what must never be lost run one body against two servers, Prosody (plain
//! WebSocket) and ejabberd (WebSocket over TLS): `prosody::<test>` and `ejabberd::<test>`.
//! What is asserted is what a person would check: the text arrived, once, in order, the other
//! side saw the presence, the ticks went to "delivered", and history has every message.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use testkit::json_lines::JsonLines;
use testkit::lyrebird::run_cli;
use testkit::stack::{ArchiveOwner, ArchiveSeed, Stack, StackOptions};
use testkit::xmpp::{
    CuttingRelay, befriend, online, scripted_login, start_lyrebird, start_reference, text, xml_attr,
};
use tokio_tungstenite::tungstenite::Message;

const LOGIN: Duration = Duration::from_secs(20);
const DELIVERY: Duration = Duration::from_secs(15);

fn prosody() -> Result<Stack> {
    Stack::start(StackOptions::prosody_only())
}

/// The XMPP server a test body runs against.
#[derive(Debug, Clone, Copy)]
enum Server {
    Prosody,
    Ejabberd,
}

impl Server {
    fn start(self) -> Result<Stack> {
        Stack::start(match self {
            Server::Prosody => StackOptions::prosody_only(),
            Server::Ejabberd => StackOptions::ejabberd_only(),
        })
    }
}

/// Declares each named test body (`async fn(Server) -> Result<()>`) once per XMPP server, as
/// `prosody::<name>` and `ejabberd::<name>`: one body, two real servers.
macro_rules! on_every_server {
    ($($name:ident),+ $(,)?) => {
        mod prosody {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() -> anyhow::Result<()> {
                    super::$name(super::Server::Prosody).await
                }
            )+
        }
        mod ejabberd {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() -> anyhow::Result<()> {
                    super::$name(super::Server::Ejabberd).await
                }
            )+
        }
    };
}

on_every_server!(
    two_lyrebirds_subscribe_see_presence_and_chat_with_receipts,
    third_party_client_presence_and_chat_both_ways,
    carbons_show_a_conversation_held_on_the_other_device,
    resumption_after_a_cut_connection_loses_and_repeats_nothing,
    group_chat_with_two_lyrebirds_and_a_third_party_client,
    a_file_shared_by_http_upload_arrives_identical,
    archive_brings_what_arrived_while_offline_exactly_once_in_order,
    a_kill_during_a_flood_loses_and_repeats_nothing,
    logging_straight_back_in_after_a_quit_meets_no_held_session,
);

fn jid(stack: &Stack, user: &str) -> String {
    format!("{user}@{}", stack.xmpp().domain())
}

/// `extra`, plus the server's certificate for Lyrebird to trust when it has one.
fn trusting<'a>(stack: &Stack, extra: &[&'a str], certificate: &'a mut String) -> Vec<&'a str> {
    let mut args = extra.to_vec();
    if let Some(path) = stack.xmpp().trusted_certificate() {
        *certificate = path.display().to_string();
        args.extend(["--trust-cert", certificate.as_str()]);
    }
    args
}

async fn lyrebird(stack: &Stack, user: &str, dir: &Path, extra: &[&str]) -> Result<JsonLines> {
    let mut certificate = String::new();
    let mut peer = start_lyrebird(
        &stack.xmpp().ws_url(),
        &jid(stack, user),
        &format!("{user}-secret"),
        &dir.join(format!("{user}.sqlite3")),
        &dir.join(format!("{user}.log")),
        &trusting(stack, extra, &mut certificate),
    )?;
    online(&mut peer, LOGIN).await?;
    Ok(peer)
}

async fn reference(
    stack: &Stack,
    user: &str,
    resource: &str,
    dir: &Path,
    extra: &[&str],
) -> Result<JsonLines> {
    let certificate = stack.xmpp().trusted_certificate();
    let mut peer = start_reference(
        &stack.xmpp().ws_url(),
        &jid(stack, user),
        &format!("{user}-secret"),
        resource,
        &dir.join(format!("{user}-{resource}.log")),
        extra,
        certificate.as_deref(),
    )?;
    peer.wait_for("online", LOGIN, |e| e["event"] == "online")
        .await?;
    Ok(peer)
}

fn is_chat(e: &Value, body: &str) -> bool {
    e["event"] == "chat_message" && e["body"] == body
}

/// The bodies of the stored conversation with `peer`, oldest first.
async fn stored_bodies(peer: &mut JsonLines, with: &str) -> Result<Vec<String>> {
    let result = peer
        .command(json!({"cmd": "history", "peer": with, "limit": 1000}))
        .await?;
    Ok(result["messages"]
        .as_array()
        .context("history without messages")?
        .iter()
        .filter_map(|m| m["body"].as_str().map(str::to_owned))
        .collect())
}

/// The bodies of a room's history as `peer` stored it, oldest first.
async fn stored_room_bodies(peer: &mut JsonLines, room: &str) -> Result<Vec<String>> {
    let result = peer
        .command(json!({"cmd": "room_history", "room": room, "limit": 100}))
        .await?;
    Ok(result["messages"]
        .as_array()
        .context("room history without messages")?
        .iter()
        .filter_map(|m| m["body"].as_str().map(str::to_owned))
        .collect())
}

/// Issue item 1.
async fn two_lyrebirds_subscribe_see_presence_and_chat_with_receipts(server: Server) -> Result<()> {
    let stack = server.start()?;
    let dir = testkit::test_dir("lyrebird-xmpp-")?;
    let (alice_jid, bob_jid) = (jid(&stack, "alice"), jid(&stack, "bob"));
    let mut alice = lyrebird(&stack, "alice", dir.path(), &[]).await?;
    let mut bob = lyrebird(&stack, "bob", dir.path(), &[]).await?;
    befriend(&mut alice, &alice_jid, &mut bob, &bob_jid, DELIVERY).await?;

    // Presence changes are seen on the other side, per resource.
    bob.command(json!({"cmd": "presence", "show": "away", "status": "at lunch"}))
        .await?;
    let seen = alice
        .wait_for("bob away", DELIVERY, |e| {
            e["event"] == "presence"
                && e["jid"].as_str().is_some_and(|j| j.starts_with(&bob_jid))
                && e["show"] == "away"
        })
        .await?;
    ensure!(seen["status"] == "at lunch", "{seen}");
    let roster = alice.command(json!({"cmd": "roster"})).await?;
    let bob_entry = roster["contacts"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["jid"] == bob_jid.as_str()))
        .context("bob not in alice's roster")?;
    ensure!(bob_entry["resources"][0]["show"] == "away", "{roster}");

    // Typing, then a message with a receipt, both ways.
    alice
        .command(json!({"cmd": "chat_state", "to": bob_jid, "state": "composing"}))
        .await?;
    bob.wait_for("alice typing", DELIVERY, |e| {
        e["event"] == "chat_state" && e["from"] == alice_jid && e["state"] == "composing"
    })
    .await?;
    let sent = alice
        .command(json!({"cmd": "message", "to": bob_jid, "body": "Hi Bob, lunch at noon?"}))
        .await?;
    let id = sent["message"]
        .as_str()
        .context("no message id")?
        .to_owned();
    let got = bob
        .wait_for("alice's message", DELIVERY, |e| {
            is_chat(e, "Hi Bob, lunch at noon?")
        })
        .await?;
    ensure!(
        got["id"] == id.as_str() && got["outgoing"] == false,
        "{got}"
    );
    alice
        .wait_for("delivered tick", DELIVERY, |e| {
            e["event"] == "chat_message_state"
                && e["id"] == id.as_str()
                && e["state"] == "delivered"
        })
        .await?;
    let reply = bob
        .command(json!({"cmd": "message", "to": alice_jid, "body": "Yes! See you there."}))
        .await?;
    alice
        .wait_for("bob's reply", DELIVERY, |e| {
            is_chat(e, "Yes! See you there.")
        })
        .await?;
    bob.wait_for("delivered tick", DELIVERY, |e| {
        e["event"] == "chat_message_state"
            && e["id"] == reply["message"]
            && e["state"] == "delivered"
    })
    .await?;
    // A correction replaces the text on the other side and in both histories.
    alice
        .command(json!({"cmd": "correct", "to": bob_jid, "message": id, "body": "Hi Bob, lunch at one?"}))
        .await?;
    let fixed = bob
        .wait_for("correction", DELIVERY, |e| {
            is_chat(e, "Hi Bob, lunch at one?")
        })
        .await?;
    ensure!(fixed["replaces"] == id.as_str(), "{fixed}");
    tokio::time::sleep(Duration::from_millis(300)).await;

    let expected = ["Hi Bob, lunch at one?", "Yes! See you there."];
    ensure!(stored_bodies(&mut alice, &bob_jid).await? == expected);
    ensure!(stored_bodies(&mut bob, &alice_jid).await? == expected);
    let hits = bob
        .command(json!({"cmd": "search", "query": "lunch"}))
        .await?;
    ensure!(
        hits["hits"].as_array().is_some_and(|h| h.len() == 1),
        "{hits}"
    );

    // A "correction" naming the other side's message (XEP-0308 §5: only its author may) is
    // kept as a message of its own; Alice's words stay hers, in both histories.
    bob.command(
        json!({"cmd": "correct", "to": alice_jid, "message": id, "body": "Bob owes nothing"}),
    )
    .await?;
    alice
        .wait_for("bob's spoofed correction", DELIVERY, |e| {
            is_chat(e, "Bob owes nothing")
        })
        .await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let expected = [
        "Hi Bob, lunch at one?",
        "Yes! See you there.",
        "Bob owes nothing",
    ];
    ensure!(
        stored_bodies(&mut alice, &bob_jid).await? == expected,
        "alice: {:?}",
        stored_bodies(&mut alice, &bob_jid).await?
    );
    ensure!(
        stored_bodies(&mut bob, &alice_jid).await? == expected,
        "bob: {:?}",
        stored_bodies(&mut bob, &alice_jid).await?
    );
    alice.quit().await?;
    bob.quit().await?;
    Ok(())
}

/// Issue item 2.
async fn third_party_client_presence_and_chat_both_ways(server: Server) -> Result<()> {
    let stack = server.start()?;
    let dir = testkit::test_dir("lyrebird-xmpp-")?;
    let (alice_jid, carol_jid) = (jid(&stack, "alice"), jid(&stack, "carol"));
    let mut alice = lyrebird(&stack, "alice", dir.path(), &["--auto-approve"]).await?;
    let mut carol = reference(&stack, "carol", "xmppjs", dir.path(), &[]).await?;

    carol
        .command(json!({"cmd": "subscribe", "to": alice_jid}))
        .await?;
    // Alice auto-approves and asks back; carol approves.
    carol
        .wait_for("alice asks back", DELIVERY, |e| {
            e["event"] == "presence" && e["type"] == "subscribe"
        })
        .await?;
    carol
        .command(json!({"cmd": "subscribed", "to": alice_jid}))
        .await?;
    carol
        .wait_for("alice's presence", DELIVERY, |e| {
            e["event"] == "presence"
                && e["type"] == "available"
                && e["from"]
                    .as_str()
                    .is_some_and(|f| f.starts_with(&alice_jid))
        })
        .await?;
    carol
        .command(json!({"cmd": "presence", "show": "dnd", "status": "in a meeting"}))
        .await?;
    alice
        .wait_for("carol dnd", DELIVERY, |e| {
            e["event"] == "presence"
                && e["jid"] == format!("{carol_jid}/xmppjs")
                && e["show"] == "dnd"
        })
        .await?;

    let sent = alice
        .command(json!({"cmd": "message", "to": carol_jid, "body": "Hello from Lyrebird"}))
        .await?;
    let got = carol
        .wait_for("lyrebird's message", DELIVERY, |e| {
            e["event"] == "message" && e["body"] == "Hello from Lyrebird"
        })
        .await?;
    ensure!(got["id"] == sent["message"], "{got} vs {sent}");
    alice
        .wait_for("delivered", DELIVERY, |e| {
            e["event"] == "chat_message_state"
                && e["id"] == sent["message"]
                && e["state"] == "delivered"
        })
        .await?;
    let back = carol
        .command(json!({"cmd": "message", "to": alice_jid, "body": "Hello from xmpp.js"}))
        .await?;
    alice
        .wait_for("xmpp.js message", DELIVERY, |e| {
            is_chat(e, "Hello from xmpp.js")
        })
        .await?;
    carol
        .wait_for("receipt from lyrebird", DELIVERY, |e| {
            e["event"] == "receipt" && e["id"] == back["message"]
        })
        .await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    ensure!(
        stored_bodies(&mut alice, &carol_jid).await?
            == ["Hello from Lyrebird", "Hello from xmpp.js"]
    );
    alice.quit().await?;
    carol.quit().await?;
    Ok(())
}

/// Issue item 3.
async fn carbons_show_a_conversation_held_on_the_other_device(server: Server) -> Result<()> {
    let stack = server.start()?;
    let dir = testkit::test_dir("lyrebird-xmpp-")?;
    let (alice_jid, bob_jid) = (jid(&stack, "alice"), jid(&stack, "bob"));
    let mut alice_desktop = lyrebird(&stack, "alice", dir.path(), &[]).await?;
    let mut alice_phone = reference(&stack, "alice", "phone", dir.path(), &["--carbons"]).await?;
    let mut bob = reference(&stack, "bob", "pc", dir.path(), &[]).await?;

    // Alice writes from her phone (xmpp.js): her desktop Lyrebird shows it as sent by her.
    bob.command(json!({"cmd": "message", "to": format!("{alice_jid}/phone"), "body": "Are you on your phone?"}))
        .await?;
    let copy = alice_desktop
        .wait_for("carbon of the message to the phone", DELIVERY, |e| {
            is_chat(e, "Are you on your phone?")
        })
        .await?;
    ensure!(
        copy["origin"] == "carbon" && copy["outgoing"] == false,
        "{copy}"
    );
    alice_phone
        .command(json!({"cmd": "message", "to": bob_jid, "body": "Yes, typing on the phone"}))
        .await?;
    let sent_copy = alice_desktop
        .wait_for("carbon of what the phone sent", DELIVERY, |e| {
            is_chat(e, "Yes, typing on the phone")
        })
        .await?;
    ensure!(
        sent_copy["origin"] == "carbon"
            && sent_copy["outgoing"] == true
            && sent_copy["peer"] == bob_jid.as_str(),
        "{sent_copy}"
    );
    // And the other way: what the desktop sends shows up on the phone.
    alice_desktop
        .command(json!({"cmd": "message", "to": bob_jid, "body": "Now from the desktop"}))
        .await?;
    alice_phone
        .wait_for("carbon on the phone", DELIVERY, |e| {
            e["event"] == "message" && e["body"] == "Now from the desktop" && e["carbon"] == "sent"
        })
        .await?;
    bob.wait_for("desktop message", DELIVERY, |e| {
        e["event"] == "message" && e["body"] == "Now from the desktop"
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    ensure!(
        stored_bodies(&mut alice_desktop, &bob_jid).await?
            == [
                "Are you on your phone?",
                "Yes, typing on the phone",
                "Now from the desktop"
            ]
    );
    alice_desktop.quit().await?;
    alice_phone.quit().await?;
    bob.quit().await?;
    Ok(())
}

/// Issue item 4.
async fn archive_brings_what_arrived_while_offline_exactly_once_in_order(
    server: Server,
) -> Result<()> {
    let stack = server.start()?;
    let dir = testkit::test_dir("lyrebird-xmpp-")?;
    let (alice_jid, bob_jid) = (jid(&stack, "alice"), jid(&stack, "bob"));
    let first = lyrebird(&stack, "alice", dir.path(), &[]).await?;
    first.quit().await?;

    let mut bob = reference(&stack, "bob", "pc", dir.path(), &[]).await?;
    let count = 40;
    for i in 0..count {
        bob.command(json!({"cmd": "message", "to": alice_jid, "body": format!("while you were away #{i:02}")}))
            .await?;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    for round in 0..2 {
        let mut alice = lyrebird(&stack, "alice", dir.path(), &["--archive-page", "7"]).await?;
        let synced = alice
            .wait_for("archive synced", DELIVERY, |e| {
                e["event"] == "archive_synced"
            })
            .await?;
        let shown_from = |alice: &JsonLines, archive_only: bool| -> Vec<String> {
            alice
                .history
                .iter()
                .filter(|e| e["event"] == "chat_message")
                .filter(|e| !archive_only || e["origin"] == "archive")
                .filter_map(|e| e["body"].as_str().map(str::to_owned))
                .collect()
        };
        let expected: Vec<String> = (0..count)
            .map(|i| format!("while you were away #{i:02}"))
            .collect();
        if round == 0 {
            match server {
                // The test bed's Prosody keeps no offline storage: all of it is archived.
                Server::Prosody => {
                    ensure!(synced["new"] == count, "{synced}");
                    let shown = shown_from(&alice, true);
                    ensure!(shown == expected, "shown once each, in order: {shown:?}");
                }
                // ejabberd also pushes its offline storage at login (XEP-0160), before or
                // during the catch-up, which then finds the same messages in the archive.
                Server::Ejabberd => {
                    let last = expected.last().context("no messages")?;
                    alice
                        .wait_for("the last message", DELIVERY, |e| is_chat(e, last))
                        .await?;
                    // A copy would come now.
                    alice.drain(Duration::from_millis(500)).await;
                    let shown = shown_from(&alice, false);
                    each_once(&shown, &expected)?;
                    ensure!(shown.len() == expected.len(), "shown: {shown:?}");
                }
            }
        } else {
            ensure!(synced["new"] == 0, "nothing new the second time: {synced}");
            let shown = shown_from(&alice, false);
            ensure!(shown.is_empty(), "{shown:?}");
        }
        ensure!(stored_bodies(&mut alice, &bob_jid).await? == expected);
        alice.quit().await?;
    }
    bob.quit().await?;
    Ok(())
}

/// Old messages the interrupted catch-up tests put into an archive.
const SEEDED: u32 = 3000;
/// Archived messages shown before the interrupted catch-up is stopped.
const SHOWN_BEFORE_STOP: usize = 500;

/// How a person stops Lyrebird in the middle of a catch-up.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Stop {
    Quit,
    Kill,
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The bodies `seed_archive` gave the seeded messages.
fn seeded_bodies(prefix: &str) -> Vec<String> {
    (1..=SEEDED).map(|i| format!("{prefix}{i:05}")).collect()
}

/// Waits until `peer` has shown `count` archived messages of `room` (or of 1:1 chats), and
/// checks the catch-up was still under way then.
async fn shown_from_archive(peer: &mut JsonLines, room: bool, count: usize) -> Result<()> {
    let shown = std::cell::Cell::new(0);
    let synced = std::cell::Cell::new(false);
    peer.wait_for("archived messages shown", Duration::from_secs(60), |e| {
        if e["event"] == "chat_message" && e["origin"] == "archive" && e["room"] == room {
            shown.set(shown.get() + 1);
        }
        if e["event"] == "archive_synced" && e["room"].is_string() == room {
            synced.set(true);
        }
        shown.get() >= count
    })
    .await?;
    ensure!(
        !synced.get(),
        "the catch-up finished before it could be interrupted: seed more messages"
    );
    Ok(())
}

/// Stops `peer` as `stop` says.
async fn stop(peer: JsonLines, stop: Stop) -> Result<()> {
    match stop {
        Stop::Quit => {
            peer.quit().await?;
        }
        Stop::Kill => peer.kill().await,
    }
    Ok(())
}

/// `bodies` holds each of `want` exactly once.
fn each_once(bodies: &[String], want: &[String]) -> Result<()> {
    let mut counts = std::collections::HashMap::<&str, usize>::new();
    for body in bodies {
        *counts.entry(body.as_str()).or_default() += 1;
    }
    let missing: Vec<&String> = want
        .iter()
        .filter(|w| !counts.contains_key(w.as_str()))
        .collect();
    let twice: Vec<(&&str, &usize)> = counts.iter().filter(|(_, n)| **n > 1).collect();
    ensure!(
        missing.is_empty() && twice.is_empty(),
        "{} of {} missing (first: {:?}), {} stored more than once: {:?}",
        missing.len(),
        want.len(),
        missing.first(),
        twice.len(),
        twice.iter().take(5).collect::<Vec<_>>()
    );
    Ok(())
}

/// Runs Lyrebird as alice on `db` until she is online and, for a room, in it.
async fn alice_on(
    stack: &Stack,
    db: &Path,
    log: &Path,
    room: Option<&str>,
    extra: &[&str],
) -> Result<JsonLines> {
    let alice_jid = jid(stack, "alice");
    let mut alice = start_lyrebird(
        &stack.prosody().ws_url(),
        &alice_jid,
        "alice-secret",
        db,
        log,
        extra,
    )?;
    online(&mut alice, LOGIN).await?;
    if let Some(room) = room {
        // No join history: what arrives from the room's past comes from its archive.
        alice
            .command(json!({"cmd": "join", "room": room, "nick": "Alice", "history": 0}))
            .await?;
    }
    Ok(alice)
}

/// Messages lost: a live message during the catch-up of an archive (alice's own, or `room`'s)
/// that holds [`SEEDED`] old messages, then a quit or a `kill -9` part-way through it. After
/// the restart every archived message is in history, once.
async fn interrupted_catch_up_loses_nothing(
    stack: &Stack,
    dir: &Path,
    bob: &mut JsonLines,
    room: Option<&str>,
    prefix: &str,
) -> Result<()> {
    let (alice_jid, bob_jid) = (jid(stack, "alice"), jid(stack, "bob"));
    let is_room = room.is_some();
    let from_archive = |e: &Value| e["event"] == "archive_synced" && e["room"].as_str() == room;
    for how in [Stop::Quit, Stop::Kill] {
        let db = dir.join(format!("alice-{how:?}.sqlite3"));
        let log = |n: u32| dir.join(format!("alice-{how:?}-{n}.log"));
        let mut alice = alice_on(stack, &db, &log(1), room, &["--archive-page", "50"]).await?;
        alice
            .wait_for("the catch-up under way", DELIVERY, |e| {
                e["event"] == "chat_message" && e["origin"] == "archive" && e["room"] == is_room
            })
            .await?;
        let live = format!("live during the catch-up ({how:?})");
        let send = match room {
            Some(room) => json!({"cmd": "room_message", "room": room, "body": live}),
            None => json!({"cmd": "message", "to": alice_jid, "body": live}),
        };
        bob.command(send).await?;
        alice
            .wait_for("the live message", DELIVERY, |e| {
                is_chat(e, &live) && e["origin"] == "live"
            })
            .await?;
        shown_from_archive(&mut alice, is_room, SHOWN_BEFORE_STOP).await?;
        stop(alice, how).await?;

        let mut alice = alice_on(stack, &db, &log(2), room, &[]).await?;
        let synced = alice
            .wait_for(
                "the catch-up to finish",
                Duration::from_secs(60),
                from_archive,
            )
            .await?;
        let ask = match room {
            Some(room) => json!({"cmd": "room_history", "room": room, "limit": 10 * SEEDED}),
            None => json!({"cmd": "history", "peer": bob_jid, "limit": 10 * SEEDED}),
        };
        let stored = alice.command(ask).await?;
        let bodies: Vec<String> = stored["messages"]
            .as_array()
            .context("history without messages")?
            .iter()
            .filter_map(|m| m["body"].as_str().map(str::to_owned))
            .collect();
        let mut want = seeded_bodies(prefix);
        want.push(live.clone());
        each_once(&bodies, &want).with_context(|| format!("after a {how:?}: {synced}"))?;
        alice.quit().await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_catch_up_fetches_the_rest_despite_a_live_message() -> Result<()> {
    let stack = prosody()?;
    let dir = testkit::test_dir("lyrebird-xmpp-")?;
    let prefix = "archived #";
    // Two hours old: far older than any overlap a catch-up by date would allow.
    stack.prosody().seed_archive(&ArchiveSeed {
        owner: ArchiveOwner::User("alice"),
        from: "bob",
        count: SEEDED,
        prefix,
        first_at_unix: unix_now() - 2 * 3600,
    })?;
    let mut bob = lyrebird(&stack, "bob", dir.path(), &["--no-archive"]).await?;
    interrupted_catch_up_loses_nothing(&stack, dir.path(), &mut bob, None, prefix).await?;
    bob.quit().await?;
    Ok(())
}

/// The same for a room's archive (XEP-0313 §6.1.2), caught up when the room is joined.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_room_catch_up_fetches_the_rest_despite_a_live_message() -> Result<()> {
    let stack = prosody()?;
    let dir = testkit::test_dir("lyrebird-xmpp-")?;
    let room = format!("archive@{}", stack.prosody().muc_domain());
    let prefix = "room archived #";
    // Bob stays in the room throughout: Prosody drops a temporary room's archive with it.
    let mut bob = lyrebird(&stack, "bob", dir.path(), &["--no-archive"]).await?;
    bob.command(json!({"cmd": "join", "room": room, "nick": "Bob"}))
        .await?;
    bob.wait_for("bob in the room", DELIVERY, |e| {
        e["event"] == "room_joined" && e["room"] == room.as_str()
    })
    .await?;
    stack.prosody().seed_archive(&ArchiveSeed {
        owner: ArchiveOwner::Room("archive"),
        from: "Carol",
        count: SEEDED,
        prefix,
        first_at_unix: unix_now() - 2 * 3600,
    })?;
    interrupted_catch_up_loses_nothing(&stack, dir.path(), &mut bob, Some(&room), prefix).await?;
    bob.quit().await?;
    Ok(())
}

/// A `kill -9` in the middle of a flood of messages: after the restart every message is in
/// history exactly once (the catch-up brings back what was shown but not yet written).
async fn a_kill_during_a_flood_loses_and_repeats_nothing(server: Server) -> Result<()> {
    let stack = server.start()?;
    let dir = testkit::test_dir("lyrebird-xmpp-")?;
    let (alice_jid, bob_jid) = (jid(&stack, "alice"), jid(&stack, "bob"));
    // 300 in the test command; `LYREBIRD_FLOOD=1000` is the long form.
    let flood = std::env::var("LYREBIRD_FLOOD")
        .ok()
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|n| (10..=10_000).contains(n))
        .unwrap_or(300);
    let mut alice = lyrebird(&stack, "alice", dir.path(), &[]).await?;
    let mut bob = lyrebird(&stack, "bob", dir.path(), &["--no-archive"]).await?;
    let bodies: Vec<String> = (0..flood).map(|i| format!("flood #{i:03}")).collect();
    let pid = alice.pid().context("alice has no pid")?;
    for (i, body) in bodies.iter().enumerate() {
        bob.command(json!({"cmd": "message", "to": alice_jid, "body": body}))
            .await?;
        if i == flood / 3 {
            // Killed while messages keep arriving and being written.
            alice
                .wait_for("a third of the flood", DELIVERY, |e| is_chat(e, body))
                .await?;
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(i32::try_from(pid)?),
                nix::sys::signal::Signal::SIGKILL,
            )?;
        }
    }
    alice.kill().await;
    // Killed mid-write, the file is still sound (WAL): SQLite's integrity check passes.
    let db = dir.path().join("alice.sqlite3");
    let check = run_cli(
        &["--db", &db.to_string_lossy(), "history", "check"],
        DELIVERY,
    )
    .await?;
    ensure!(
        check
            .iter()
            .any(|e| e["event"] == "history_check" && e["sound"] == true),
        "the history file is damaged: {check:?}"
    );
    let mut alice = lyrebird(&stack, "alice", dir.path(), &[]).await?;
    // The rest of the flood may still be on its way: each message comes either from the
    // archive or live, so wait for the catch-ups to end (the login's, and the second look
    // that follows it) and for the flood's last message.
    let last = bodies.last().context("an empty flood")?;
    let (synced, saw_last) = (std::cell::Cell::new(false), std::cell::Cell::new(false));
    alice
        .wait_for(
            "the catch-up and the flood's end",
            Duration::from_secs(60),
            |e| {
                synced.set(
                    synced.get()
                        || (e["event"] == "archive_synced"
                            && e["room"].is_null()
                            && e["again_soon"] == false),
                );
                saw_last.set(saw_last.get() || is_chat(e, last));
                synced.get() && saw_last.get()
            },
        )
        .await?;
    let stored = stored_bodies(&mut alice, &bob_jid).await?;
    each_once(&stored, &bodies)?;
    ensure!(stored.len() == bodies.len(), "{} stored", stored.len());
    alice.quit().await?;
    bob.quit().await?;
    Ok(())
}

/// Issue item 5.
async fn resumption_after_a_cut_connection_loses_and_repeats_nothing(server: Server) -> Result<()> {
    let stack = server.start()?;
    let dir = testkit::test_dir("lyrebird-xmpp-")?;
    let (alice_jid, bob_jid) = (jid(&stack, "alice"), jid(&stack, "bob"));
    let relay = CuttingRelay::start(([127, 0, 0, 1], stack.xmpp().ws_port()).into()).await?;
    let relayed_ws = stack.xmpp().ws_url_through(relay.addr());
    let mut certificate = String::new();
    let mut alice = start_lyrebird(
        &relayed_ws,
        &alice_jid,
        "alice-secret",
        &dir.path().join("alice.sqlite3"),
        &dir.path().join("alice.log"),
        &trusting(&stack, &[], &mut certificate),
    )?;
    online(&mut alice, LOGIN).await?;
    let mut bob = lyrebird(&stack, "bob", dir.path(), &[]).await?;

    let rounds = 30;
    for i in 0..rounds {
        alice
            .command(json!({"cmd": "message", "to": bob_jid, "body": format!("a{i:02}")}))
            .await?;
        bob.command(json!({"cmd": "message", "to": alice_jid, "body": format!("b{i:02}")}))
            .await?;
        if i == 10 || i == 20 {
            if i == 20 {
                // The second cut hits the resumed stream.
                alice
                    .wait_for("resumed", LOGIN, |e| {
                        e["event"] == "xmpp_online" && e["resumed"] == true
                    })
                    .await?;
            }
            let cut = relay.cut();
            ensure!(cut > 0, "nothing to cut");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    alice
        .wait_for("resumed", LOGIN, |e| {
            e["event"] == "xmpp_online" && e["resumed"] == true
        })
        .await?;
    let expect = |p: char| {
        (0..rounds)
            .map(|i| format!("{p}{i:02}"))
            .collect::<Vec<_>>()
    };
    for (peer, want) in [(&mut bob, expect('a')), (&mut alice, expect('b'))] {
        let last = want.last().cloned().unwrap_or_default();
        peer.wait_for("the last message", Duration::from_secs(40), |e| {
            is_chat(e, &last)
        })
        .await?;
    }
    // Late duplicates would show up now.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for (peer, want) in [(&mut bob, expect('a')), (&mut alice, expect('b'))] {
        peer.drain(Duration::from_millis(200)).await;
        let mut got: Vec<String> = peer
            .history
            .iter()
            .filter(|e| e["event"] == "chat_message" && e["outgoing"] == false)
            .filter_map(|e| e["body"].as_str().map(str::to_owned))
            .collect();
        got.sort();
        ensure!(got == want, "each message shown exactly once: {got:?}");
    }
    let mut all = expect('a');
    all.extend(expect('b'));
    all.sort();
    for (peer, with) in [(&mut alice, &bob_jid), (&mut bob, &alice_jid)] {
        let mut stored = stored_bodies(peer, with).await?;
        stored.sort();
        ensure!(
            stored == all,
            "each message stored exactly once: {stored:?}"
        );
    }
    alice.quit().await?;
    bob.quit().await?;
    Ok(())
}

/// Quitting closes the stream with the server (RFC 7395 §3.6) and leaves it nothing to hold
/// for resumption: logging straight back in with the same resource meets no conflict, and
/// what was sent in between arrives once. A server that still held the old session (ejabberd
/// holds one whose WebSocket closed without the close handshake, for 300 s) would route what
/// was sent in between to it, and hand the new login a conflict.
async fn logging_straight_back_in_after_a_quit_meets_no_held_session(server: Server) -> Result<()> {
    let stack = server.start()?;
    let dir = testkit::test_dir("lyrebird-xmpp-")?;
    let (alice_jid, bob_jid) = (jid(&stack, "alice"), jid(&stack, "bob"));
    let same_resource = ["--resource", "desk"];
    let mut bob = lyrebird(&stack, "bob", dir.path(), &["--no-archive"]).await?;
    let first = lyrebird(&stack, "alice", dir.path(), &same_resource).await?;
    let first_jid = first
        .history
        .iter()
        .find(|e| e["event"] == "xmpp_online")
        .map(|e| e["jid"].clone())
        .context("no xmpp_online event")?;
    ensure!(
        first_jid == format!("{alice_jid}/desk").as_str(),
        "{first_jid}"
    );
    first.quit().await?;

    bob.command(json!({"cmd": "message", "to": alice_jid, "body": "Sent while you were out"}))
        .await?;
    let mut alice = start_lyrebird(
        &stack.xmpp().ws_url(),
        &alice_jid,
        "alice-secret",
        &dir.path().join("alice.sqlite3"),
        &dir.path().join("alice-again.log"),
        &trusting(&stack, &same_resource, &mut String::new()),
    )?;
    let again = online(&mut alice, LOGIN).await?;
    ensure!(
        again["jid"] == first_jid && again["resumed"] == false,
        "a new session with the same resource: {again}"
    );
    alice
        .wait_for("what was sent in between", DELIVERY, |e| {
            is_chat(e, "Sent while you were out")
        })
        .await?;
    bob.command(json!({"cmd": "message", "to": alice_jid, "body": "Welcome back"}))
        .await?;
    alice
        .wait_for("a live message", DELIVERY, |e| is_chat(e, "Welcome back"))
        .await?;
    // A conflict or a stream error would come now, and a late copy with it.
    alice.drain(Duration::from_secs(2)).await;
    let trouble: Vec<&Value> = alice
        .history
        .iter()
        .filter(|e| {
            e["event"] == "account_state"
                && !matches!(
                    e["state"]["state"].as_str(),
                    Some("connecting" | "connected")
                )
        })
        .collect();
    ensure!(
        trouble.is_empty(),
        "the new session was disturbed: {trouble:?}"
    );
    let shown = alice
        .history
        .iter()
        .filter(|e| e["event"] == "chat_message")
        .count();
    ensure!(shown == 2, "each message shown once: {:?}", alice.history);
    ensure!(
        stored_bodies(&mut alice, &bob_jid).await? == ["Sent while you were out", "Welcome back"]
    );
    alice.quit().await?;
    bob.quit().await?;
    Ok(())
}

/// Issue item 6.
async fn group_chat_with_two_lyrebirds_and_a_third_party_client(server: Server) -> Result<()> {
    let stack = server.start()?;
    let dir = testkit::test_dir("lyrebird-xmpp-")?;
    let room = format!("lunch@{}", stack.xmpp().muc_domain());
    let mut alice = lyrebird(&stack, "alice", dir.path(), &[]).await?;
    let mut bob = lyrebird(&stack, "bob", dir.path(), &[]).await?;
    let mut carol = reference(&stack, "carol", "xmppjs", dir.path(), &[]).await?;

    alice
        .command(json!({"cmd": "join", "room": room, "nick": "Alice"}))
        .await?;
    alice
        .wait_for("joined", DELIVERY, |e| {
            e["event"] == "room_joined" && e["room"] == room.as_str()
        })
        .await?;
    alice
        .command(json!({"cmd": "room_message", "room": room, "body": "Before anyone came"}))
        .await?;
    // The room reflecting it back proves the room has it (and so its history) before Bob joins;
    // otherwise Bob could join first and get it live instead of as history.
    alice
        .wait_for("the room's reflection", DELIVERY, |e| {
            e["event"] == "chat_message_state"
                && e["peer"] == room.as_str()
                && e["state"] == "delivered"
        })
        .await?;
    bob.command(json!({"cmd": "join", "room": room, "nick": "Bob"}))
        .await?;
    // Room history reaches the late joiner.
    bob.wait_for("room history", DELIVERY, |e| {
        is_chat(e, "Before anyone came") && e["origin"] == "room_history" && e["nick"] == "Alice"
    })
    .await?;
    carol
        .command(json!({"cmd": "join", "room": room, "nick": "Carol"}))
        .await?;
    carol
        .wait_for("carol in", DELIVERY, |e| {
            e["event"] == "occupant" && e["self"] == true
        })
        .await?;
    let occupant = |nick: &'static str| {
        move |e: &Value| e["event"] == "occupant" && e["nick"] == nick && e["available"] == true
    };
    alice.wait_for("bob in", DELIVERY, occupant("Bob")).await?;
    alice
        .wait_for("carol in", DELIVERY, occupant("Carol"))
        .await?;
    bob.wait_for("carol in", DELIVERY, occupant("Carol"))
        .await?;
    let alice_said = alice
        .command(json!({"cmd": "room_message", "room": room, "body": "Hello room, from Alice"}))
        .await?["message"]
        .as_str()
        .context("no message id")?
        .to_owned();
    bob.command(json!({"cmd": "room_message", "room": room, "body": "Hello room, from Bob"}))
        .await?;
    carol
        .command(json!({"cmd": "room_message", "room": room, "body": "Hello room, from Carol"}))
        .await?;
    for body in ["Hello room, from Bob", "Hello room, from Carol"] {
        alice
            .wait_for(body, DELIVERY, |e| is_chat(e, body) && e["room"] == true)
            .await?;
    }
    for body in ["Hello room, from Alice", "Hello room, from Carol"] {
        bob.wait_for(body, DELIVERY, |e| is_chat(e, body)).await?;
    }
    for body in ["Hello room, from Alice", "Hello room, from Bob"] {
        carol
            .wait_for(body, DELIVERY, |e| {
                e["event"] == "message" && e["body"] == body
            })
            .await?;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let bodies = stored_room_bodies(&mut alice, &room).await?;
    ensure!(
        bodies.len() == 4,
        "each room message stored once: {bodies:?}"
    );

    // XEP-0308 in the room: Alice corrects her message, in place everywhere; Bob "correcting"
    // Alice's message only adds a message of his own.
    alice
        .command(json!({"cmd": "correct", "to": room, "room": true, "message": alice_said, "body": "Hello room, from Alice (edited)"}))
        .await?;
    bob.wait_for("alice's correction", DELIVERY, |e| {
        is_chat(e, "Hello room, from Alice (edited)") && e["replaces"] == alice_said.as_str()
    })
    .await?;
    bob.command(json!({"cmd": "correct", "to": room, "room": true, "message": alice_said, "body": "Alice agrees to pay"}))
        .await?;
    alice
        .wait_for("bob's spoofed correction", DELIVERY, |e| {
            is_chat(e, "Alice agrees to pay")
        })
        .await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    for peer in [&mut alice, &mut bob] {
        let bodies = stored_room_bodies(peer, &room).await?;
        let has = |body: &str| bodies.iter().any(|b| b == body);
        ensure!(
            bodies.len() == 5
                && has("Hello room, from Alice (edited)")
                && !has("Hello room, from Alice")
                && has("Alice agrees to pay"),
            "room history after corrections: {bodies:?}"
        );
    }
    alice.command(json!({"cmd": "leave", "room": room})).await?;
    bob.wait_for("alice left", DELIVERY, |e| {
        e["event"] == "occupant" && e["nick"] == "Alice" && e["available"] == false
    })
    .await?;
    alice.quit().await?;
    bob.quit().await?;
    carol.quit().await?;
    Ok(())
}

/// Issue item 7.
async fn a_file_shared_by_http_upload_arrives_identical(server: Server) -> Result<()> {
    use sha2::{Digest, Sha256};
    let hex = |d: &[u8]| d.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let stack = server.start()?;
    let dir = testkit::test_dir("lyrebird-xmpp-")?;
    let (alice_jid, bob_jid) = (jid(&stack, "alice"), jid(&stack, "bob"));
    let mut alice = lyrebird(&stack, "alice", dir.path(), &[]).await?;
    let downloads = dir.path().join("bob-downloads");
    let downloads_arg = downloads.display().to_string();
    let mut bob = lyrebird(&stack, "bob", dir.path(), &["--downloads", &downloads_arg]).await?;
    alice
        .wait_for("upload service", DELIVERY, |e| {
            e["event"] == "xmpp_server_info" && e["upload_service"].is_string()
        })
        .await?;
    let file = dir.path().join("holiday photo.bin");
    let content: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&file, &content)?;
    let expected = hex(&Sha256::digest(&content));

    alice
        .command(json!({"cmd": "share_file", "to": bob_jid, "path": file}))
        .await?;
    let shared = alice
        .wait_for("shared", Duration::from_secs(30), |e| {
            e["event"] == "file_shared" || e["event"] == "file_failed"
        })
        .await?;
    ensure!(
        shared["event"] == "file_shared" && shared["sha256"] == expected.as_str(),
        "{shared}"
    );
    ensure!(
        alice
            .history
            .iter()
            .any(|e| e["event"] == "file_progress" && e["direction"] == "upload"),
        "upload progress was reported"
    );
    let link = bob
        .wait_for("link", DELIVERY, |e| {
            e["event"] == "chat_message" && e["url"].is_string()
        })
        .await?;
    ensure!(link["peer"] == alice_jid.as_str());
    bob.command(json!({"cmd": "download", "url": link["url"]}))
        .await?;
    let done = bob
        .wait_for("downloaded", Duration::from_secs(30), |e| {
            e["event"] == "file_downloaded" || e["event"] == "file_failed"
        })
        .await?;
    ensure!(done["event"] == "file_downloaded", "{done}");
    let path = done["path"].as_str().context("no path")?;
    ensure!(Path::new(path).starts_with(&downloads), "{path}");
    let got = std::fs::read(path)?;
    ensure!(hex(&Sha256::digest(&got)) == expected && done["sha256"] == expected.as_str());
    alice.quit().await?;
    bob.quit().await?;
    Ok(())
}

/// Issue item 8, part 1: a wrong password is a clear, final error; a silent server is retried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_and_silent_server_give_clear_errors() -> Result<()> {
    let stack = prosody()?;
    let dir = testkit::test_dir("lyrebird-xmpp-")?;
    let mut alice = start_lyrebird(
        &stack.prosody().ws_url(),
        &jid(&stack, "alice"),
        "not-the-password",
        &dir.path().join("alice.sqlite3"),
        &dir.path().join("alice.log"),
        &[],
    )?;
    let failed = alice
        .wait_for("auth failure", LOGIN, |e| {
            e["event"] == "account_state" && e["state"]["state"] == "authentication_failed"
        })
        .await?;
    ensure!(
        failed["state"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("not-authorized")),
        "{failed}"
    );
    let after = alice.drain(Duration::from_secs(2)).await;
    ensure!(
        !after.iter().any(|e| e["state"]["state"] == "reconnecting"),
        "a wrong password is not retried: {after:?}"
    );
    alice.kill().await;

    // A server that accepts TCP and never says a word.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = silent.local_addr()?;
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let mut bob = start_lyrebird(
        &format!("ws://{addr}/xmpp-websocket"),
        &jid(&stack, "bob"),
        "bob-secret",
        &dir.path().join("bob.sqlite3"),
        &dir.path().join("bob.log"),
        &[],
    )?;
    let retry = bob
        .wait_for("reconnecting", Duration::from_secs(30), |e| {
            e["event"] == "account_state" && e["state"]["state"] == "reconnecting"
        })
        .await?;
    ensure!(
        retry["state"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("no answer")),
        "{retry}"
    );
    bob.quit().await?;
    holder.abort();
    Ok(())
}

/// Issue item 8, part 2: a scripted server sends unknown stanzas, an oversized stanza and
/// malformed XML. Lyrebird warns, keeps the good message in history, and reconnects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_unknown_and_oversized_input_is_survived() -> Result<()> {
    let dir = testkit::test_dir("lyrebird-xmpp-")?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move {
        let mut connections = 0;
        while let Ok((socket, _)) = listener.accept().await {
            connections += 1;
            let _ = scripted_session(socket).await;
            if connections >= 2 {
                break;
            }
        }
        connections
    });
    let mut alice = scripted_alice(addr, dir.path()).await?;
    alice
        .wait_for("the good message", DELIVERY, |e| {
            is_chat(e, "still readable")
        })
        .await?;
    let reconnect = alice
        .wait_for("reconnect after malformed XML", DELIVERY, |e| {
            e["event"] == "account_state" && e["state"]["state"] == "reconnecting"
        })
        .await?;
    ensure!(
        reconnect["state"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("malformed")),
        "{reconnect}"
    );
    let warnings: Vec<&Value> = alice
        .history
        .iter()
        .filter(|e| e["event"] == "warning")
        .collect();
    ensure!(
        warnings.len() >= 2,
        "unknown and oversized input were reported: {warnings:?}"
    );
    online(&mut alice, LOGIN).await?;
    ensure!(stored_bodies(&mut alice, "bob@localhost").await? == ["still readable"]);
    alice.quit().await?;
    let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
    Ok(())
}

/// Alice's Lyrebird logged in to the scripted server at `addr` (no archive: a script has
/// none), with her history and log (`alice.log`) in `dir`.
async fn scripted_alice(addr: std::net::SocketAddr, dir: &Path) -> Result<JsonLines> {
    let mut alice = start_lyrebird(
        &format!("ws://{addr}/xmpp-websocket"),
        "alice@localhost",
        "alice-secret",
        &dir.join("alice.sqlite3"),
        &dir.join("alice.log"),
        &["--no-archive"],
    )?;
    online(&mut alice, LOGIN).await?;
    Ok(alice)
}

/// One RFC 7395 session from a server that misbehaves after login.
async fn scripted_session(socket: tokio::net::TcpStream) -> Result<()> {
    let mut ws = scripted_login(socket, false).await?;
    ws.send(text(
        "<frobnicate xmlns='urn:example:unknown'><x/></frobnicate>",
    ))
    .await?;
    ws.send(text("<iq xmlns='jabber:client' type='get' id='u1' from='localhost'><weird xmlns='urn:example:weird'/></iq>")).await?;
    let huge = "x".repeat(400 * 1024);
    ws.send(text(&format!("<message xmlns='jabber:client' from='bob@localhost/pc' type='chat' id='big'><body>{huge}</body></message>"))).await?;
    ws.send(text("<message xmlns='jabber:client' from='bob@localhost/pc' type='chat' id='good'><body>still readable</body></message>")).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    ws.send(text("<message xmlns='jabber:client'><body>broken</bod"))
        .await?;
    // Whatever the client says now (its answer to the unknown IQ, its goodbye) is only read.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while let Ok(Some(Ok(_))) = tokio::time::timeout_at(deadline, ws.next()).await {}
    Ok(())
}

/// What a server saw of a client's goodbye.
#[derive(Debug)]
struct Goodbye {
    /// The client sent `<close/>`.
    sent_close: bool,
    /// The client closed the WebSocket before the server answered with its own `<close/>`.
    closed_before_answer: bool,
    /// The client closed the WebSocket after the server's `<close/>`.
    closed_after_answer: bool,
}

/// Logs the client in, then answers its `<close/>` only after a pause, watching whether the
/// client waits for that answer before it closes the WebSocket (RFC 7395 §3.6).
async fn slow_to_answer_close(socket: tokio::net::TcpStream) -> Result<Goodbye> {
    let mut ws = scripted_login(socket, false).await?;
    let mut goodbye = Goodbye {
        sent_close: false,
        closed_before_answer: false,
        closed_after_answer: false,
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Ok(Some(Ok(Message::Text(frame)))) if frame.starts_with("<close") => {
                goodbye.sent_close = true;
                break;
            }
            Ok(Some(Ok(Message::Close(_)) | Err(_)) | None) | Err(_) => {
                goodbye.closed_before_answer = true;
                return Ok(goodbye);
            }
            Ok(Some(Ok(_))) => {}
        }
    }
    let pause = tokio::time::Instant::now() + Duration::from_millis(500);
    while let Ok(frame) = tokio::time::timeout_at(pause, ws.next()).await {
        if matches!(frame, Some(Ok(Message::Close(_)) | Err(_)) | None) {
            goodbye.closed_before_answer = true;
            return Ok(goodbye);
        }
    }
    ws.send(text("<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>"))
        .await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while let Ok(frame) = tokio::time::timeout_at(deadline, ws.next()).await {
        if matches!(frame, Some(Ok(Message::Close(_)) | Err(_)) | None) {
            goodbye.closed_after_answer = true;
            break;
        }
    }
    Ok(goodbye)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quitting_waits_for_the_servers_close_before_closing_the_websocket() -> Result<()> {
    let dir = testkit::test_dir("lyrebird-xmpp-")?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move {
        let (socket, _) = listener.accept().await?;
        slow_to_answer_close(socket).await
    });
    let alice = scripted_alice(addr, dir.path()).await?;
    alice.quit().await?;
    let goodbye = tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .context("the scripted server did not finish")???;
    ensure!(
        goodbye.sent_close && !goodbye.closed_before_answer && goodbye.closed_after_answer,
        "the client did not close the stream as RFC 7395 §3.6 says: {goodbye:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_too_long_for_one_stanza_is_refused_and_the_stream_goes_on() -> Result<()> {
    let stack = prosody()?;
    let dir = tempfile::tempdir()?;
    let (alice_jid, bob_jid) = (jid(&stack, "alice"), jid(&stack, "bob"));
    let mut alice = lyrebird(&stack, "alice", dir.path(), &[]).await?;
    let mut bob = lyrebird(&stack, "bob", dir.path(), &[]).await?;

    // The longest text, made of the character XML escaping lengthens most, passes Prosody.
    let longest = "<".repeat(lyrebird_engine::MAX_XMPP_TEXT_BYTES);
    alice
        .command(json!({"cmd": "message", "to": bob_jid, "body": longest}))
        .await?;
    bob.wait_for("the longest text message", DELIVERY, |e| {
        is_chat(e, &longest)
    })
    .await?;

    // One byte more is refused with words a person can act on.
    let refused = alice
        .command(json!({"cmd": "message", "to": bob_jid, "body": format!("{longest}<")}))
        .await;
    let error = format!(
        "{:#}",
        refused.err().context("a too long text was accepted")?
    );
    ensure!(
        error.contains("send it as a file"),
        "unclear refusal: {error}"
    );

    // The stream was never cut: the next message arrives, and nobody reconnected.
    alice
        .command(json!({"cmd": "message", "to": bob_jid, "body": "still here"}))
        .await?;
    bob.wait_for("the message after the refusal", DELIVERY, |e| {
        is_chat(e, "still here")
    })
    .await?;
    ensure!(
        stored_bodies(&mut bob, &alice_jid).await? == [longest.clone(), "still here".into()],
        "bob's history is not the two messages sent"
    );
    for peer in [alice, bob] {
        let history = peer.quit().await?;
        ensure!(
            !history
                .iter()
                .any(|e| e["state"]["state"] == "reconnecting"),
            "the stream was interrupted: {history:?}"
        );
    }
    Ok(())
}

/// A server with stream management whose room reflects a message before the server
/// acknowledges it, as ejabberd does: every IQ gets an empty result, joining the room
/// `room@muc.localhost` succeeds, and each group-chat message is reflected, then acknowledged.
async fn room_reflects_before_the_ack(socket: tokio::net::TcpStream) -> Result<()> {
    let mut ws = scripted_login(socket, true).await?;
    let mut handled = 0u32;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while let Ok(Some(Ok(frame))) = tokio::time::timeout_at(deadline, ws.next()).await {
        let Message::Text(frame) = frame else {
            continue;
        };
        let frame = frame.to_string();
        if frame.starts_with("<enable") {
            ws.send(text(
                "<enabled xmlns='urn:xmpp:sm:3' id='sm-1' resume='true'/>",
            ))
            .await?;
            continue;
        }
        if frame.starts_with("<r ") || frame.starts_with("<r/") {
            ws.send(text(&format!("<a xmlns='urn:xmpp:sm:3' h='{handled}'/>")))
                .await?;
            continue;
        }
        if frame.starts_with("<close") {
            ws.send(text("<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>"))
                .await?;
            break;
        }
        if !(frame.starts_with("<iq")
            || frame.starts_with("<presence")
            || frame.starts_with("<message"))
        {
            continue;
        }
        handled += 1;
        let id = xml_attr(&frame, "id").unwrap_or_default();
        let to = xml_attr(&frame, "to").unwrap_or_default();
        if frame.starts_with("<iq") && !frame.contains("type='result'") {
            ws.send(text(&format!(
                "<iq xmlns='jabber:client' type='result' id='{id}'/>"
            )))
            .await?;
        } else if frame.starts_with("<presence") && to == "room@muc.localhost/Alice" {
            ws.send(text("<presence xmlns='jabber:client' from='room@muc.localhost/Alice' to='alice@localhost/lyre'><x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='member' role='participant' jid='alice@localhost/lyre'/><status code='110'/></x></presence>")).await?;
            ws.send(text("<message xmlns='jabber:client' type='groupchat' from='room@muc.localhost' id='subject'><subject/></message>")).await?;
        } else if frame.starts_with("<message")
            && frame.contains("groupchat")
            && frame.contains("<body")
        {
            let body = frame
                .split("<body>")
                .nth(1)
                .and_then(|b| b.split("</body>").next())
                .unwrap_or_default();
            ws.send(text(&format!("<message xmlns='jabber:client' type='groupchat' from='room@muc.localhost/Alice' to='alice@localhost/lyre' id='{id}'><body>{body}</body><stanza-id xmlns='urn:xmpp:sid:0' by='room@muc.localhost' id='archived-{id}'/></message>"))).await?;
            ws.send(text(&format!("<a xmlns='urn:xmpp:sm:3' h='{handled}'/>")))
                .await?;
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_reflection_before_the_servers_ack_is_recorded_as_delivered() -> Result<()> {
    let dir = testkit::test_dir("lyrebird-xmpp-")?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move {
        let (socket, _) = listener.accept().await?;
        room_reflects_before_the_ack(socket).await
    });
    let log = dir.path().join("alice.log");
    let mut alice = scripted_alice(addr, dir.path()).await?;
    let room = "room@muc.localhost";
    alice
        .command(json!({"cmd": "join", "room": room, "nick": "Alice"}))
        .await?;
    alice
        .wait_for("joined", DELIVERY, |e| {
            e["event"] == "room_joined" && e["room"] == room
        })
        .await?;
    let sent = alice
        .command(json!({"cmd": "room_message", "room": room, "body": "reflected first"}))
        .await?;
    let id = sent["message"]
        .as_str()
        .context("no message id")?
        .to_owned();
    alice
        .wait_for("the room's reflection", DELIVERY, |e| {
            e["event"] == "chat_message_state"
                && e["id"] == id.as_str()
                && e["state"] == "delivered"
        })
        .await?;
    // The acknowledgement right behind the reflection must not set it back to "sent".
    let regressed = alice
        .wait_for("a later state", Duration::from_secs(2), |e| {
            e["event"] == "chat_message_state" && e["id"] == id.as_str()
        })
        .await;
    ensure!(regressed.is_err(), "the state went back: {regressed:?}");
    let history = alice
        .command(json!({"cmd": "room_history", "room": room, "limit": 10}))
        .await?;
    let stored: Vec<&Value> = history["messages"]
        .as_array()
        .context("room history without messages")?
        .iter()
        .filter(|m| m["body"] == "reflected first")
        .collect();
    ensure!(
        stored.len() == 1 && stored[0]["state"] == "delivered",
        "history does not hold the message once, delivered: {history}"
    );
    alice.quit().await?;
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    ensure!(
        !log.contains("event not recorded"),
        "a state change was lost: {}",
        log.lines()
            .filter(|l| l.contains("not recorded"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
    Ok(())
}

/// A server whose archive gains a message only after the login's catch-up query has run, and
/// which never delivers that message live: what ejabberd does with a message routed while the
/// session is between presences (it goes to offline storage and is archived a moment later by
/// the sender's side). Answers the first archive query with nothing, every later one with the
/// message; returns the archive queries seen.
async fn archives_after_the_first_query(socket: tokio::net::TcpStream) -> Result<Vec<String>> {
    let mut ws = scripted_login(socket, false).await?;
    let mut queries = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while let Ok(Some(Ok(frame))) = tokio::time::timeout_at(deadline, ws.next()).await {
        let Message::Text(frame) = frame else {
            continue;
        };
        let frame = frame.to_string();
        if frame.starts_with("<close") {
            ws.send(text("<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>"))
                .await?;
            break;
        }
        if !frame.starts_with("<iq") || frame.contains("type='result'") {
            continue;
        }
        let id = xml_attr(&frame, "id").unwrap_or_default();
        if frame.contains("urn:xmpp:mam:2") {
            let query = xml_attr(&frame, "queryid").unwrap_or_default();
            let last = if queries.is_empty() {
                String::new()
            } else {
                ws.send(text(&format!(
                    "<message xmlns='jabber:client' to='alice@localhost/lyre'>\
                     <result xmlns='urn:xmpp:mam:2' queryid='{query}' id='archived-late'>\
                     <forwarded xmlns='urn:xmpp:forward:0'>\
                     <delay xmlns='urn:xmpp:delay' stamp='2026-12-07T10:00:00Z'/>\
                     <message xmlns='jabber:client' from='bob@localhost/pc' to='alice@localhost' \
                     type='chat' id='late-1'><body>archived after the catch-up</body></message>\
                     </forwarded></result></message>"
                )))
                .await?;
                "<first index='0'>archived-late</first><last>archived-late</last>".to_owned()
            };
            queries.push(frame);
            ws.send(text(&format!(
                "<iq xmlns='jabber:client' type='result' id='{id}'>\
                 <fin xmlns='urn:xmpp:mam:2' complete='true'>\
                 <set xmlns='http://jabber.org/protocol/rsm'>{last}</set></fin></iq>"
            )))
            .await?;
        } else if frame.contains("jabber:iq:roster") {
            ws.send(text(&format!(
                "<iq xmlns='jabber:client' type='result' id='{id}'><query xmlns='jabber:iq:roster'/></iq>"
            )))
            .await?;
        } else {
            ws.send(text(&format!(
                "<iq xmlns='jabber:client' type='result' id='{id}'/>"
            )))
            .await?;
        }
    }
    Ok(queries)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_archived_just_after_the_login_catch_up_is_fetched_too() -> Result<()> {
    let dir = testkit::test_dir("lyrebird-xmpp-")?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move {
        let (socket, _) = listener.accept().await?;
        archives_after_the_first_query(socket).await
    });
    let mut alice = start_lyrebird(
        &format!("ws://{addr}/xmpp-websocket"),
        "alice@localhost",
        "alice-secret",
        &dir.path().join("alice.sqlite3"),
        &dir.path().join("alice.log"),
        &[],
    )?;
    online(&mut alice, LOGIN).await?;
    let first = alice
        .wait_for("the login's catch-up", DELIVERY, |e| {
            e["event"] == "archive_synced" && e["room"].is_null()
        })
        .await?;
    ensure!(
        first["again_soon"] == true && first["new"] == 0,
        "the login's catch-up did not say a second look follows: {first}"
    );
    let shown = alice
        .wait_for("the late-archived message", DELIVERY, |e| {
            is_chat(e, "archived after the catch-up")
        })
        .await?;
    ensure!(shown["origin"] == "archive", "{shown}");
    let second = alice
        .wait_for("the second look's end", DELIVERY, |e| {
            e["event"] == "archive_synced" && e["room"].is_null()
        })
        .await?;
    ensure!(
        second["again_soon"] == false && second["new"] == 1,
        "the second look: {second}"
    );
    let stored = stored_bodies(&mut alice, "bob@localhost").await?;
    ensure!(stored == ["archived after the catch-up"], "{stored:?}");
    alice.quit().await?;
    let queries = tokio::time::timeout(Duration::from_secs(20), server).await???;
    ensure!(
        queries.len() == 2,
        "expected the login's query and one more: {queries:#?}"
    );
    Ok(())
}
