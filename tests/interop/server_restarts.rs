//! Servers crash and come back while Lyrebird is in use. Kamailio and Prosody are each killed
//! with SIGKILL and started again N times at random moments (a seeded generator; the seed is
//! printed, and `LYREBIRD_RESTART_SEED` replays a run) while two headless Lyrebirds hold a call,
//! chat over XMPP and send files over MSRP through Kamailio's relay. Every other Kamailio kill
//! lands while the previous restart is still being re-registered to, and every other Prosody kill
//! while the accounts log in again.
//!
//! What a person would check, each time: the SIP accounts register again and the XMPP accounts
//! come back online (the time from the server being back is printed, the worst last); the
//! call's audio never stopped (the media goes peer to peer, not through the server: the caller's
//! recording of the callee's tone has the tone in every tenth of a second from the first to the
//! hang-up); every chat message sent across the restarts is in both histories exactly once; and
//! a file caught by a restart either arrives intact or is told as failed and arrives intact when
//! sent again, and is never reported complete when it is not.
//!
//! N is 3 here; `./task restarts [N]` runs this test with `LYREBIRD_RESTARTS=N` (RELIABILITY.md).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail, ensure};
use serde_json::{Value, json};
use testkit::audio::{read_wav_mono, tone_power};
use testkit::json_lines::JsonLines;
use testkit::lyrebird::{Lyrebird, LyrebirdOptions};
use testkit::reliability::{each_exactly_once, sha256_of, write_random_file};
use testkit::stack::{Stack, StackOptions};
use testkit::xmpp::{online, start_lyrebird};

const SETUP: Duration = Duration::from_secs(30);
/// Bound on an account coming back after a restart (the goal is 5 s; this only ends a hung run).
const BACK: Duration = Duration::from_secs(60);
/// Bound on a file transfer reaching its end after the restarts that caught it.
const TRANSFER_END: Duration = Duration::from_secs(180);
const FILE_SIZE: usize = 16 << 20;
/// One chat message each way per this period, for the whole run.
const CHAT_PERIOD: Duration = Duration::from_millis(100);
const CALLEE_TONE_HZ: f32 = 660.0;

/// splitmix64: a small seeded generator, so a failing schedule can be replayed.
struct Schedule(u64);

impl Schedule {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A duration uniformly in `[from, to)`.
    fn between(&mut self, from: Duration, to: Duration) -> Duration {
        let span = to.saturating_sub(from).as_millis().max(1) as u64;
        from + Duration::from_millis(self.next() % span)
    }

    /// A fraction in `[from, to)`.
    fn fraction(&mut self, from: f64, to: f64) -> f64 {
        from + (to - from) * (self.next() % 10_000) as f64 / 10_000.0
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn event_ms(e: &Value) -> u64 {
    e["t_ms"].as_u64().unwrap_or(0)
}

fn is_registered(e: &Value) -> bool {
    e["event"] == "account_state" && e["state"]["state"] == "registered"
}

fn is_online(e: &Value) -> bool {
    e["event"] == "xmpp_online"
}

/// When `peer` first said `back` at or after `since_ms`.
fn first_since(peer: &JsonLines, since_ms: u64, back: fn(&Value) -> bool) -> Option<u64> {
    peer.history
        .iter()
        .find(|e| back(e) && event_ms(e) >= since_ms)
        .map(event_ms)
}

/// The two Lyrebirds (each a SIP and an XMPP process) and the chat running between them.
struct World {
    alice_phone: Lyrebird,
    bob_phone: Lyrebird,
    alice_chat: JsonLines,
    bob_chat: JsonLines,
    alice_jid: String,
    bob_jid: String,
    /// (command id, body) of every chat message each side sent.
    from_alice: Vec<(u64, String)>,
    from_bob: Vec<(u64, String)>,
    next_chat: Instant,
    chatting: bool,
}

impl World {
    /// One step of the background: the chat messages due, and reading every process's output
    /// (so none blocks on a full pipe; everything lands in `history`).
    async fn tick(&mut self) -> Result<()> {
        if self.chatting && Instant::now() >= self.next_chat {
            self.next_chat += CHAT_PERIOD;
            let n = self.from_alice.len();
            let body = format!("restart chat a{n:05}");
            let id = self
                .alice_chat
                .send(json!({"cmd": "message", "to": self.bob_jid, "body": body}))
                .await?;
            self.from_alice.push((id, body));
            let body = format!("restart chat b{n:05}");
            let id = self
                .bob_chat
                .send(json!({"cmd": "message", "to": self.alice_jid, "body": body}))
                .await?;
            self.from_bob.push((id, body));
        }
        for peer in [
            &mut *self.alice_phone,
            &mut *self.bob_phone,
            &mut self.alice_chat,
            &mut self.bob_chat,
        ] {
            peer.drain(Duration::from_millis(1)).await;
        }
        Ok(())
    }

    /// Keeps the background going until `done` says so, or fails after `timeout`.
    async fn run_until(
        &mut self,
        what: &str,
        timeout: Duration,
        done: impl Fn(&World) -> bool,
    ) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            self.tick().await?;
            if done(self) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "{what}: not within {timeout:?}\nalice (SIP) log:\n{}\nalice (XMPP) log:\n{}",
                    self.alice_phone.log_tail(),
                    self.alice_chat.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Keeps the background going for `pause`.
    async fn run_for(&mut self, pause: Duration) -> Result<()> {
        let until = Instant::now() + pause;
        self.run_until("a pause", pause + SETUP, |_| Instant::now() >= until)
            .await
    }
}

/// Which server a fault hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Server {
    Kamailio,
    Prosody,
}

/// One SIGKILL and restart, and how the accounts came back.
#[derive(Debug)]
struct Fault {
    server: Server,
    /// What was going on at the kill.
    during: &'static str,
    killed_ms: u64,
    back_ms: u64,
    /// Per account (alice, bob): milliseconds from the server answering again (its probe in
    /// `start`; 0 when the account was back before the probe) to registered/online, `None`
    /// when the next kill came first.
    recovered_after: [Option<u64>; 2],
}

/// One file sent across restarts, and how it ended.
struct FileRun {
    name: String,
    sha: String,
    sent: u64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kamailio_and_prosody_killed_at_random_moments_lose_nothing() -> Result<()> {
    let restarts: usize = match std::env::var("LYREBIRD_RESTARTS") {
        Ok(n) => n.parse().context("LYREBIRD_RESTARTS is a number")?,
        Err(_) => 3,
    };
    let seed: u64 = match std::env::var("LYREBIRD_RESTART_SEED") {
        Ok(s) => s.parse().context("LYREBIRD_RESTART_SEED is a number")?,
        Err(_) => now_ms() ^ (u64::from(std::process::id()) << 32),
    };
    println!(
        "restarts: {restarts} of each server; seed {seed} (replay: LYREBIRD_RESTART_SEED={seed})"
    );
    let mut schedule = Schedule(seed);

    let mut stack = Stack::start(StackOptions {
        coturn: false,
        ..StackOptions::default()
    })?;
    let dir = testkit::test_dir("lyrebird-restarts-")?;
    let (kamailio, prosody) = (stack.kamailio(), stack.prosody());
    let bob_sip = format!("sip:bob@{}", kamailio.domain());
    let (alice_jid, bob_jid) = (
        format!("alice@{}", prosody.domain()),
        format!("bob@{}", prosody.domain()),
    );
    let downloads = dir.path().join("bob-downloads");
    let phone = |user: &str| {
        LyrebirdOptions::on_kamailio(&stack, user, dir.path())
            .arg("--msrp-relay-ws")
            .arg(kamailio.msrp_ws_url())
            .arg("--msrp-relay-uri")
            .arg(kamailio.msrp_relay_uri())
    };
    let mut alice_phone = Lyrebird::start(phone("alice").arg("--tone").arg("440")).await?;
    let mut bob_phone = Lyrebird::start(
        phone("bob")
            .arg("--auto-answer")
            .arg("--tone")
            .arg(CALLEE_TONE_HZ.to_string())
            .arg("--discard")
            .arg("--auto-accept-files")
            .arg("--downloads")
            .arg(downloads.to_string_lossy()),
    )
    .await?;
    let chat = |user: &str, jid: &str| {
        start_lyrebird(
            &prosody.ws_url(),
            jid,
            &format!("{user}-secret"),
            &dir.path().join(format!("{user}-xmpp.sqlite3")),
            &dir.path().join(format!("{user}-xmpp.log")),
            &[],
        )
    };
    let mut alice_chat = chat("alice", &alice_jid)?;
    let mut bob_chat = chat("bob", &bob_jid)?;
    alice_phone.registered(SETUP).await?;
    bob_phone.registered(SETUP).await?;
    online(&mut alice_chat, SETUP).await?;
    online(&mut bob_chat, SETUP).await?;

    // The call: alice records what bob's side sends (a steady tone).
    let recording = dir.path().join("alice-hears.wav");
    let call = alice_phone
        .command(json!({"cmd": "call", "target": bob_sip, "record": recording}))
        .await?["call"]
        .as_u64()
        .context("no call id")?;
    alice_phone.call_state(call, "audio_flowing", SETUP).await?;
    let bob_call = bob_phone.incoming_call(SETUP).await?;
    bob_phone
        .call_state(bob_call, "audio_flowing", SETUP)
        .await?;

    let mut world = World {
        alice_phone,
        bob_phone,
        alice_chat,
        bob_chat,
        alice_jid: alice_jid.clone(),
        bob_jid: bob_jid.clone(),
        from_alice: Vec::new(),
        from_bob: Vec::new(),
        next_chat: Instant::now(),
        chatting: true,
    };
    world.run_for(Duration::from_secs(1)).await?;

    let mut faults: Vec<Fault> = Vec::new();
    let mut files: Vec<FileRun> = Vec::new();
    let mut outcomes: Vec<String> = Vec::new();

    // Kamailio: even kills while a file is on its way, odd ones while the previous restart is
    // being registered to again.
    for k in 0..restarts {
        let during = if k % 2 == 0 {
            let round = files.len() as u64 + 1;
            let name = format!("restart-{round:02}.bin");
            let path = dir.path().join(&name);
            let sha = write_random_file(&path, FILE_SIZE, seed ^ round)?;
            let sent = world
                .alice_phone
                .command(json!({"cmd": "send_file", "target": bob_sip, "path": path}))
                .await?["transfer"]
                .as_u64()
                .context("no transfer id")?;
            let at = (FILE_SIZE as f64 * schedule.fraction(0.1, 0.7)) as u64;
            world
                .run_until(&format!("{name} past byte {at}"), TRANSFER_END, |w| {
                    w.alice_phone.history.iter().any(|e| {
                        e["event"] == "transfer_progress"
                            && e["transfer"] == json!(sent)
                            && e["bytes"].as_u64().is_some_and(|b| b >= at)
                    })
                })
                .await?;
            files.push(FileRun { name, sha, sent });
            "a file transfer, the call and the chat"
        } else {
            let pause = schedule.between(Duration::ZERO, Duration::from_millis(400));
            world.run_for(pause).await?;
            "re-registration after the previous restart, the call and the chat"
        };
        faults.push(
            kill_and_restart(
                &mut stack,
                &mut world,
                &mut schedule,
                Server::Kamailio,
                during,
            )
            .await?,
        );
        let last = k + 1 == restarts;
        if k % 2 == 1 || last {
            wait_back(&mut world, Server::Kamailio, &faults).await?;
            // The transfer caught by the kill ends one way or the other.
            if let Some(file) = files.last() {
                let outcome = settle_transfer(&mut world, file, &bob_sip, dir.path()).await?;
                println!("{}: {outcome}", file.name);
                outcomes.push(format!("{}: {outcome}", file.name));
            }
        }
    }
    // Prosody: even kills at a random moment of the chat, odd ones while the accounts log in.
    for k in 0..restarts {
        let (pause, during) = if k % 2 == 0 {
            (
                schedule.between(Duration::from_millis(300), Duration::from_secs(2)),
                "the chat and the call",
            )
        } else {
            (
                schedule.between(Duration::ZERO, Duration::from_millis(400)),
                "the log-in after the previous restart, the chat and the call",
            )
        };
        world.run_for(pause).await?;
        faults.push(
            kill_and_restart(
                &mut stack,
                &mut world,
                &mut schedule,
                Server::Prosody,
                during,
            )
            .await?,
        );
        if k % 2 == 1 || k + 1 == restarts {
            wait_back(&mut world, Server::Prosody, &faults).await?;
        }
    }

    // A few more seconds of chat on the healthy servers, then every message must arrive.
    world.run_for(Duration::from_secs(2)).await?;
    world.chatting = false;
    let (last_a, last_b) = (
        world
            .from_alice
            .last()
            .map(|(_, b)| b.clone())
            .unwrap_or_default(),
        world
            .from_bob
            .last()
            .map(|(_, b)| b.clone())
            .unwrap_or_default(),
    );
    world
        .run_until("the last chat messages", Duration::from_secs(120), |w| {
            let got = |peer: &JsonLines, body: &str| {
                peer.history
                    .iter()
                    .any(|e| e["event"] == "chat_message" && e["body"] == body)
            };
            got(&w.bob_chat, &last_a) && got(&w.alice_chat, &last_b)
        })
        .await?;
    // Late duplicates (a resend, an archive page) would arrive now.
    world.run_for(Duration::from_secs(2)).await?;

    // Audio: the tone never stopped, and the call is still up after every restart.
    let stats = world
        .alice_phone
        .command(json!({"cmd": "stats", "call": call}))
        .await?;
    world
        .alice_phone
        .command(json!({"cmd": "hangup", "call": call}))
        .await?;
    world
        .run_until("the call to end on both sides", SETUP, |w| {
            let ended = |peer: &JsonLines, id: u64| {
                peer.history.iter().any(|e| {
                    e["event"] == "call_state"
                        && e["call"] == json!(id)
                        && e["state"]["state"] == "ended"
                })
            };
            ended(&w.alice_phone, call) && ended(&w.bob_phone, bob_call)
        })
        .await?;
    let hang_ups: Vec<&Value> = world
        .alice_phone
        .history
        .iter()
        .filter(|e| {
            e["event"] == "call_state" && e["call"] == json!(call) && e["state"]["state"] == "ended"
        })
        .collect();
    ensure!(
        hang_ups.len() == 1,
        "the call ended more than once: {hang_ups:?}"
    );
    let audio = audio_continuity(&recording)?;
    println!(
        "audio: {:.1} s recorded with the tone in every 100 ms window from {:.1} s to the hang-up; \
         quietest window {:.0} % of the median; alice's statistics at the end: {}",
        audio.seconds, audio.tone_from_s, audio.quietest_percent, stats["stats"]
    );

    // Chat: every message each side sent was taken, arrived once, and is in both histories once.
    let mut chat_lines = Vec::new();
    for (sender, sent, receiver, receiver_peer) in [
        ("alice", &world.from_alice, "bob", &world.bob_chat),
        ("bob", &world.from_bob, "alice", &world.alice_chat),
    ] {
        let sender_peer = if sender == "alice" {
            &world.alice_chat
        } else {
            &world.bob_chat
        };
        let results: HashMap<u64, &Value> = sender_peer
            .history
            .iter()
            .filter(|e| e["event"] == "result" && e["cmd"] == "message")
            .filter_map(|e| Some((e["id"].as_u64()?, e)))
            .collect();
        for (id, body) in sent {
            let result = results
                .get(id)
                .with_context(|| format!("{sender}'s message {body:?} got no answer"))?;
            ensure!(
                result["ok"] == true,
                "{sender}'s message {body:?} was refused: {result}"
            );
        }
        let want: Vec<String> = sent.iter().map(|(_, b)| b.clone()).collect();
        let shown: Vec<&str> = receiver_peer
            .history
            .iter()
            .filter(|e| e["event"] == "chat_message" && e["outgoing"] == false)
            .filter_map(|e| e["body"].as_str())
            .filter(|b| b.starts_with("restart chat"))
            .collect();
        each_exactly_once(&shown, &want)
            .with_context(|| format!("{sender} → {receiver}: messages shown to {receiver}"))?;
        chat_lines.push(format!(
            "{sender} → {receiver}: {} messages, each shown once",
            want.len()
        ));
    }
    let everything: Vec<String> = world
        .from_alice
        .iter()
        .chain(&world.from_bob)
        .map(|(_, b)| b.clone())
        .collect();
    let limit = everything.len() + 100;
    for (who, peer, with) in [
        ("alice", &mut world.alice_chat, &bob_jid),
        ("bob", &mut world.bob_chat, &alice_jid),
    ] {
        let history = peer
            .command_within(
                json!({"cmd": "history", "peer": with, "limit": limit}),
                Duration::from_secs(60),
            )
            .await?;
        let stored: Vec<&str> = history["messages"]
            .as_array()
            .context("history without messages")?
            .iter()
            .filter_map(|m| m["body"].as_str())
            .collect();
        each_exactly_once(&stored, &everything).with_context(|| format!("{who}'s history"))?;
    }

    // The report: what was injected, how the accounts came back, what was lost.
    recovery(&world, &mut faults);
    println!("\nfaults injected (seed {seed}):");
    let mut worst: HashMap<&str, u64> = HashMap::new();
    for fault in &faults {
        let name = match fault.server {
            Server::Kamailio => "Kamailio",
            Server::Prosody => "Prosody",
        };
        let came_back = fault
            .recovered_after
            .iter()
            .map(|r| r.map_or("killed again first".to_owned(), |ms| format!("{ms} ms")))
            .collect::<Vec<_>>()
            .join(", ");
        println!(
            "  SIGKILL {name} during {} (down {} ms): alice, bob back after {came_back}",
            fault.during,
            fault.back_ms.saturating_sub(fault.killed_ms)
        );
        for ms in fault.recovered_after.iter().flatten() {
            let w = worst.entry(name).or_default();
            *w = (*w).max(*ms);
        }
    }
    for (server, ms) in &worst {
        let what = if *server == "Kamailio" {
            "re-registration"
        } else {
            "XMPP log-in"
        };
        println!("worst {what} after {server} was back: {ms} ms (goal: 5000 ms)");
    }
    for line in chat_lines.iter().chain(&outcomes) {
        println!("{line}");
    }
    println!("lost: 0 messages, 0 files, 0 s of audio; duplicated: 0 messages");

    let World {
        alice_phone,
        bob_phone,
        alice_chat,
        bob_chat,
        ..
    } = world;
    alice_phone.quit().await?;
    bob_phone.quit().await?;
    alice_chat.quit().await?;
    bob_chat.quit().await?;
    Ok(())
}

/// Kills `server` (SIGKILL), leaves it down for a random moment, starts it again; returns when
/// it answers again.
async fn kill_and_restart(
    stack: &mut Stack,
    world: &mut World,
    schedule: &mut Schedule,
    server: Server,
    during: &'static str,
) -> Result<Fault> {
    let down = schedule.between(Duration::from_millis(100), Duration::from_millis(1500));
    let killed_ms = now_ms();
    match server {
        Server::Kamailio => stack.kamailio_mut().kill(),
        Server::Prosody => stack.prosody_mut().kill(),
    }
    world.run_for(down).await?;
    match server {
        Server::Kamailio => stack.kamailio_mut().start()?,
        Server::Prosody => stack.prosody_mut().start()?,
    }
    let back_ms = now_ms();
    Ok(Fault {
        server,
        during,
        killed_ms,
        back_ms,
        recovered_after: [None, None],
    })
}

/// Waits until both of `server`'s accounts are back after its last restart, then fills in
/// how long each took after every restart of that server (or that it was killed again first).
async fn wait_back(world: &mut World, server: Server, faults: &[Fault]) -> Result<()> {
    let Some(last) = faults.iter().rev().find(|f| f.server == server) else {
        return Ok(());
    };
    // From the kill: an account may be back before the probe in `start` saw the server answer.
    let since = last.killed_ms;
    let what = match server {
        Server::Kamailio => "both SIP accounts registered again",
        Server::Prosody => "both XMPP accounts online again",
    };
    world
        .run_until(what, BACK, |w| match server {
            Server::Kamailio => {
                first_since(&w.alice_phone, since, is_registered).is_some()
                    && first_since(&w.bob_phone, since, is_registered).is_some()
            }
            Server::Prosody => {
                first_since(&w.alice_chat, since, is_online).is_some()
                    && first_since(&w.bob_chat, since, is_online).is_some()
            }
        })
        .await
}

/// How long each account took to come back after each fault; `None` when the next kill of the
/// same server came first.
fn recovery(world: &World, faults: &mut [Fault]) {
    for i in 0..faults.len() {
        let next_kill = faults[i + 1..]
            .iter()
            .find(|f| f.server == faults[i].server)
            .map_or(u64::MAX, |f| f.killed_ms);
        let (peers, back): ([&JsonLines; 2], fn(&Value) -> bool) = match faults[i].server {
            Server::Kamailio => ([&world.alice_phone, &world.bob_phone], is_registered),
            Server::Prosody => ([&world.alice_chat, &world.bob_chat], is_online),
        };
        let (killed, back_ms) = (faults[i].killed_ms, faults[i].back_ms);
        for (slot, peer) in peers.iter().enumerate() {
            faults[i].recovered_after[slot] = first_since(peer, killed, back)
                .filter(|at| *at < next_kill)
                .map(|at| at.saturating_sub(back_ms));
        }
    }
}

/// Waits for the end of a transfer caught by a restart, on both sides. Completed: the receiver's
/// copy has the file's SHA-256. Failed: the receiver does not present it as complete, and the
/// same file sent again arrives intact. Returns what happened, in words.
async fn settle_transfer(
    world: &mut World,
    file: &FileRun,
    bob_sip: &str,
    dir: &Path,
) -> Result<String> {
    let sent = file.sent;
    world
        .run_until(
            &format!("{} to end on the sender", file.name),
            TRANSFER_END,
            |w| final_state(&w.alice_phone, sent).is_some(),
        )
        .await?;
    let sender = final_state(&world.alice_phone, sent).unwrap_or_default();
    let interruptions = world
        .alice_phone
        .history
        .iter()
        .filter(|e| {
            e["event"] == "transfer_state"
                && e["transfer"] == json!(sent)
                && e["state"]["state"] == "interrupted"
        })
        .count();
    let received = offered_id(&world.bob_phone, &file.name, 0)
        .with_context(|| format!("bob never saw the offer of {}", file.name))?;
    world
        .run_until(
            &format!("{} to end on the receiver", file.name),
            TRANSFER_END,
            |w| final_state(&w.bob_phone, received).is_some(),
        )
        .await?;
    let receiver = final_state(&world.bob_phone, received).unwrap_or_default();
    if receiver["state"] == "completed" {
        let saved = PathBuf::from(receiver["path"].as_str().context("no path")?);
        ensure!(
            sha256_of(&saved)? == file.sha,
            "{} was reported complete but its SHA-256 differs",
            file.name
        );
    }
    if sender["state"] == "completed" {
        ensure!(
            receiver["state"] == "completed",
            "{}: the sender says complete, the receiver {receiver}",
            file.name
        );
        return Ok(format!(
            "resumed after {interruptions} interruption(s) and completed; SHA-256 matches"
        ));
    }
    ensure!(
        sender["state"] == "failed",
        "{}: the sender ended it as {sender}",
        file.name
    );
    // Failed: told, and the person can send it again.
    let again = world
        .alice_phone
        .command(json!({"cmd": "send_file", "target": bob_sip, "path": dir.join(&file.name)}))
        .await?["transfer"]
        .as_u64()
        .context("no transfer id")?;
    world
        .run_until(&format!("{} sent again", file.name), TRANSFER_END, |w| {
            final_state(&w.alice_phone, again).is_some()
        })
        .await?;
    let retried = final_state(&world.alice_phone, again).unwrap_or_default();
    ensure!(
        retried["state"] == "completed",
        "{} sent again: {retried}",
        file.name
    );
    let received_again = offered_id(&world.bob_phone, &file.name, 1)
        .with_context(|| format!("bob never saw the second offer of {}", file.name))?;
    world
        .run_until(
            &format!("{} received again", file.name),
            TRANSFER_END,
            |w| final_state(&w.bob_phone, received_again).is_some(),
        )
        .await?;
    let receiver_again = final_state(&world.bob_phone, received_again).unwrap_or_default();
    ensure!(receiver_again["state"] == "completed", "{receiver_again}");
    let saved = PathBuf::from(receiver_again["path"].as_str().context("no path")?);
    ensure!(
        sha256_of(&saved)? == file.sha,
        "{} sent again: SHA-256 differs",
        file.name
    );
    Ok(format!(
        "failed ({}; receiver: {}) and arrived intact when sent again",
        sender["reason"], receiver["state"]
    ))
}

/// The final state of `transfer` in what `peer` has said so far.
fn final_state(peer: &JsonLines, transfer: u64) -> Option<Value> {
    testkit::reliability::final_transfer_state(peer, transfer)
}

/// The id of the `nth` (from 0) offer of a file named `name` that `peer` received.
fn offered_id(peer: &JsonLines, name: &str, nth: usize) -> Option<u64> {
    peer.history
        .iter()
        .filter(|e| e["event"] == "transfer_offered" && e["file_name"] == name)
        .nth(nth)
        .and_then(|e| e["transfer"].as_u64())
}

struct AudioContinuity {
    seconds: f64,
    tone_from_s: f64,
    quietest_percent: f64,
}

/// Checks that the callee's tone is in every 100 ms of the caller's recording from its first
/// appearance to the hang-up. The recording is time-true (the media clock writes silence for
/// frames that did not arrive), so a stall of the media shows as quiet windows.
fn audio_continuity(recording: &Path) -> Result<AudioContinuity> {
    let (samples, rate) = read_wav_mono(recording)?;
    let window = (rate / 10) as usize;
    let powers: Vec<f64> = samples
        .chunks_exact(window)
        .map(|w| tone_power(w, rate, CALLEE_TONE_HZ))
        .collect();
    let mut sorted = powers.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted.get(sorted.len() / 2).copied().unwrap_or(0.0);
    ensure!(
        median > 1e-4,
        "no tone in the recording (median power {median})"
    );
    let floor = median * 0.1;
    let first = powers
        .iter()
        .position(|p| *p >= floor)
        .context("the tone never arrived")?;
    // The last window may be cut by the hang-up.
    let until = powers.len().saturating_sub(1);
    let quiet: Vec<usize> = (first..until).filter(|i| powers[*i] < floor).collect();
    ensure!(
        quiet.is_empty(),
        "the tone stopped in {} windows of 100 ms, first at {:.1} s of {:.1} s",
        quiet.len(),
        quiet.first().map_or(0.0, |i| *i as f64 / 10.0),
        powers.len() as f64 / 10.0
    );
    let quietest = (first..until)
        .map(|i| powers[i])
        .fold(f64::INFINITY, f64::min);
    Ok(AudioContinuity {
        seconds: samples.len() as f64 / f64::from(rate),
        tone_from_s: first as f64 / 10.0,
        quietest_percent: quietest / median * 100.0,
    })
}
