//! Long-running checks shared by the interop tests (short forms) and the benchmark programs
//! (long forms): calls placed one after another while /proc watches the caller for leaks, and
//! a soak of one engine holding many calls, transfers and a chat flood at once.
//!
//! Each run asserts only what a person would check (the call had audio, every message and
//! file arrived once and intact, the engine kept answering) and returns the figures; callers
//! print them, and the tests add the assertions that do not depend on the machine's speed.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::json_lines::JsonLines;
use crate::lyrebird::{Lyrebird, LyrebirdOptions, start_accounts};
use crate::procfs;
use crate::stack::Stack;
use crate::xmpp::{online, start_lyrebird};

/// Bound on logins, call set-up and each step of a run.
const SETUP: Duration = Duration::from_secs(30);

/// What /proc says about one process at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessFigures {
    /// Resident memory now (`VmRSS`).
    pub rss_kib: u64,
    /// The most it has ever been resident (`VmHWM`).
    pub peak_rss_kib: u64,
    pub fds: usize,
    pub threads: u64,
}

impl ProcessFigures {
    pub fn of(pid: u32) -> Result<Self> {
        let (rss_kib, peak_rss_kib) =
            procfs::memory_kib(pid).with_context(|| format!("no memory figures for {pid}"))?;
        Ok(Self {
            rss_kib,
            peak_rss_kib,
            fds: procfs::open_fds(pid).with_context(|| format!("no fd list for {pid}"))?,
            threads: procfs::threads(pid).with_context(|| format!("no thread count for {pid}"))?,
        })
    }
}

impl fmt::Display for ProcessFigures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "RSS {:.1} MiB (peak {:.1} MiB), {} open fds, {} threads",
            mib(self.rss_kib),
            mib(self.peak_rss_kib),
            self.fds,
            self.threads
        )
    }
}

pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The figures of `pid` once its open fds and threads have stayed the same for `quiet`
/// (tasks and sockets of a call that just ended wind down for a moment); after `within`
/// without such a pause, the last figures read.
pub async fn settled(pid: u32, quiet: Duration, within: Duration) -> Result<ProcessFigures> {
    let deadline = Instant::now() + within;
    let mut last = ProcessFigures::of(pid)?;
    let mut same_since = Instant::now();
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = ProcessFigures::of(pid)?;
        if (now.fds, now.threads) != (last.fds, last.threads) {
            same_since = Instant::now();
        } else if same_since.elapsed() >= quiet {
            return Ok(now);
        }
        last = now;
    }
    Ok(last)
}

/// The caller's figures after each of a series of calls.
#[derive(Debug, Clone)]
pub struct CallsInARow {
    /// `after[i]`: once call `i + 1` has ended and the caller has settled.
    pub after: Vec<ProcessFigures>,
}

impl CallsInARow {
    pub fn first(&self) -> Option<&ProcessFigures> {
        self.after.first()
    }

    pub fn last(&self) -> Option<&ProcessFigures> {
        self.after.last()
    }

    /// Growth of resident memory from after the first call to after the last, in percent.
    pub fn rss_growth_percent(&self) -> Option<f64> {
        let (first, last) = (self.first()?, self.last()?);
        Some((last.rss_kib as f64 / first.rss_kib.max(1) as f64 - 1.0) * 100.0)
    }
}

/// Alice (headless `lyrebird-cli run`) calls bob through the stack's Kamailio `calls` times,
/// one after another: each call's audio arrives (bob's tone, counted in alice's statistics),
/// a second later alice hangs up. Alice's process is read from /proc after each call.
pub async fn calls_in_a_row(stack: &Stack, dir: &Path, calls: u32) -> Result<CallsInARow> {
    let mut bob = Lyrebird::start(
        LyrebirdOptions::on_kamailio(stack, "bob", dir)
            .arg("--auto-answer")
            .arg("--tone")
            .arg("660")
            .arg("--discard"),
    )
    .await?;
    let mut alice = Lyrebird::start(
        LyrebirdOptions::on_kamailio(stack, "alice", dir)
            .arg("--tone")
            .arg("440")
            .arg("--discard"),
    )
    .await?;
    bob.registered(SETUP).await?;
    alice.registered(SETUP).await?;
    let pid = alice.pid().context("alice has no pid")?;
    let target = format!("sip:bob@{}", stack.kamailio().domain());
    let mut after = Vec::new();
    for n in 1..=calls {
        let call = alice
            .command(json!({"cmd": "call", "target": target}))
            .await?["call"]
            .as_u64()
            .context("no call id")?;
        let incoming = bob.incoming_call(SETUP).await?;
        alice.call_state(call, "audio_flowing", SETUP).await?;
        bob.call_state(incoming, "audio_flowing", SETUP).await?;
        // A second of conversation, so every part of the media path has run.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let stats = alice.command(json!({"cmd": "stats", "call": call})).await?;
        ensure!(
            stats["stats"]["packets_received"]
                .as_u64()
                .is_some_and(|p| p > 0),
            "call {n}: no audio arrived: {stats}"
        );
        alice
            .command(json!({"cmd": "hangup", "call": call}))
            .await?;
        alice.call_state(call, "ended", SETUP).await?;
        bob.call_state(incoming, "ended", SETUP).await?;
        // What this call said is checked; later waits look at the next call only.
        alice.discard_pending();
        bob.discard_pending();
        let figures = settled(pid, Duration::from_secs(1), Duration::from_secs(15)).await?;
        println!("after call {n}: {figures}");
        after.push(figures);
    }
    alice.quit().await?;
    bob.quit().await?;
    Ok(CallsInARow { after })
}

/// Alice (headless `lyrebird-cli run`) calls sipp through the stack's Kamailio `calls` times,
/// one after another: sipp answers each with a WebRTC answer whose only candidate is a closed
/// port (tests/stack/sipp-webrtc-answerer.xml), so only signalling and the start and teardown
/// of media run; alice hangs up once answered. Alice's process is read after call 1, after
/// every `sample_every` calls, and once more (numbered `calls + 1`) when the last calls' SIP
/// transactions have ended.
pub async fn calls_to_sipp(
    stack: &Stack,
    dir: &Path,
    calls: u32,
    sample_every: u32,
) -> Result<Vec<(u32, ProcessFigures)>> {
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("stack/sipp-webrtc-answerer.xml");
    // 127.0.0.2: the test bed's Kamailio takes every port of 127.0.0.1 for its own.
    let port = std::net::UdpSocket::bind("127.0.0.2:0")?
        .local_addr()?
        .port();
    let log = std::fs::File::create(dir.join("sipp.log"))?;
    let mut sipp = tokio::process::Command::new("sipp")
        .arg("-sf")
        .arg(&scenario)
        .args(["-i", "127.0.0.2", "-p", &port.to_string(), "-t", "u1"])
        .args(["-m", &calls.to_string(), "-nostdin", "-trace_err"])
        .arg("-error_file")
        .arg(dir.join("sipp-errors.log"))
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .context("starting sipp (Debian package sip-tester)")?;
    let mut alice = Lyrebird::start(
        LyrebirdOptions::on_kamailio(stack, "alice", dir)
            .arg("--silence")
            .arg("--discard"),
    )
    .await?;
    alice.registered(SETUP).await?;
    let pid = alice.pid().context("alice has no pid")?;
    // An address outside Kamailio's domain: relayed as it is, over UDP, to sipp.
    let target = format!("sip:answerer@127.0.0.2:{port}");
    let mut after = Vec::new();
    for n in 1..=calls {
        if let Ok(Some(status)) = sipp.try_wait() {
            bail!(
                "sipp exited ({status}) before call {n}; see {}",
                dir.join("sipp.log").display()
            );
        }
        let call = alice
            .command(json!({"cmd": "call", "target": target}))
            .await?["call"]
            .as_u64()
            .context("no call id")?;
        alice.call_state(call, "answered", SETUP).await?;
        alice
            .command(json!({"cmd": "hangup", "call": call}))
            .await?;
        let ended = alice.call_state(call, "ended", SETUP).await?;
        ensure!(
            ended["state"]["reason"] == "hung up",
            "call {n} did not end by our hang-up: {ended}"
        );
        alice.discard_pending();
        if n == 1 || n % sample_every.max(1) == 0 || n == calls {
            let figures = settled(pid, Duration::from_secs(1), Duration::from_secs(15)).await?;
            println!("after call {n}: {figures}");
            after.push((n, figures));
        }
    }
    // The SIP transactions of the last calls linger for Timer M / B (64*T1 = 32 s, RFC 6026)
    // to absorb retransmissions; after that only what the calls left behind remains.
    tokio::time::sleep(Duration::from_secs(34)).await;
    let figures = settled(pid, Duration::from_secs(1), Duration::from_secs(15)).await?;
    println!("34 s after call {calls}: {figures}");
    after.push((calls + 1, figures));
    alice.quit().await?;
    match tokio::time::timeout(Duration::from_secs(10), sipp.wait()).await {
        Ok(status) => ensure!(
            status?.success(),
            "sipp counted failed calls; see {}",
            dir.join("sipp.log").display()
        ),
        Err(_) => bail!("sipp did not finish after the last call"),
    }
    Ok(after)
}

/// What a soak puts on one engine at once.
#[derive(Debug, Clone)]
pub struct SoakOptions {
    /// How long the flood runs, with every call up.
    pub duration: Duration,
    pub calls: usize,
    /// Files sent at once at the start of the flood.
    pub transfers: usize,
    /// Send another round of `transfers` files whenever one has arrived, while the flood lasts.
    pub repeat_transfers: bool,
    pub file_size: usize,
    pub messages_per_second: u32,
}

impl SoakOptions {
    /// 8 calls, 4 transfers of 4 MiB, 100 chat messages a second.
    pub fn for_duration(duration: Duration) -> Self {
        Self {
            duration,
            calls: 8,
            transfers: 4,
            repeat_transfers: false,
            file_size: 4 << 20,
            messages_per_second: 100,
        }
    }
}

/// What a soak measured.
#[derive(Debug, Clone)]
pub struct SoakFigures {
    /// The engine with one call up, before the load.
    pub one_call: ProcessFigures,
    /// At the end of the load (`peak_rss_kib` covers the whole run).
    pub loaded: ProcessFigures,
    pub calls: usize,
    /// Files that arrived complete with the sender's SHA-256.
    pub files: usize,
    /// Chat messages sent to the engine and found in its history, each once.
    pub messages: usize,
    /// `ping` round trips during the load, and the slowest.
    pub pings: usize,
    pub slowest_ping: Duration,
    /// How long the flood ran, and how long after it the last message was shown.
    pub elapsed: Duration,
    pub last_message_after: Duration,
    /// Where the last message spent that time.
    pub last_message_path: MessagePath,
    /// CPU time the engine used during the flood, in percent of one core.
    pub cpu_percent: f64,
}

/// The stages one chat message went through, from the clocks of the processes it crossed (all
/// on this machine): where a backlog sits.
#[derive(Debug, Clone, Copy, Default)]
pub struct MessagePath {
    /// The sending client took the command (its engine's queue of commands).
    pub to_sender_ms: i64,
    /// The server acknowledged it to the sender (XEP-0198): the sender's socket and the server.
    pub to_server_ms: i64,
    /// The receiving engine showed it: the server's delivery and the receiver's engine.
    pub to_receiver_ms: i64,
    /// The harness read it from the receiver's output.
    pub to_reader_ms: i64,
}

impl fmt::Display for MessagePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "sender took it +{} ms, server acked +{} ms, receiver showed it +{} ms, read +{} ms",
            self.to_sender_ms, self.to_server_ms, self.to_receiver_ms, self.to_reader_ms
        )
    }
}

impl fmt::Display for SoakFigures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} calls held for {:.0} s, {} files intact, {} chat messages each stored once \
             (the last shown {:.1} s after the flood ended; its path: {}); {} pings answered, slowest {} ms; \
             engine CPU {:.0} % of a core; one call: {}; under load: {}; peak RSS {:.1} MiB \
             = {:.2}x the one-call RSS",
            self.calls,
            self.elapsed.as_secs_f64(),
            self.files,
            self.messages,
            self.last_message_after.as_secs_f64(),
            self.last_message_path,
            self.pings,
            self.slowest_ping.as_millis(),
            self.cpu_percent,
            self.one_call,
            self.loaded,
            mib(self.loaded.peak_rss_kib),
            self.loaded.peak_rss_kib as f64 / self.one_call.rss_kib.max(1) as f64,
        )
    }
}

/// Writes `len` pseudo-random, incompressible bytes to `path`; returns their SHA-256 (hex).
pub fn write_random_file(path: &Path, len: usize, seed: u64) -> Result<String> {
    let mut state = seed | 1;
    let mut data = Vec::with_capacity(len + 8);
    while data.len() < len {
        // xorshift64
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        data.extend_from_slice(&state.to_le_bytes());
    }
    data.truncate(len);
    std::fs::write(path, &data).with_context(|| format!("writing {}", path.display()))?;
    Ok(sha256_hex(&data))
}

pub fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub fn sha256_of(path: &Path) -> Result<String> {
    let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(sha256_hex(&data))
}

/// The final state (`completed`, `failed`, `cancelled`, `declined`) of `transfer` among
/// the events `peer` has read so far.
pub fn final_transfer_state(peer: &JsonLines, transfer: u64) -> Option<Value> {
    peer.history.iter().find_map(|e| {
        (e["event"] == "transfer_state"
            && e["transfer"] == json!(transfer)
            && matches!(
                e["state"]["state"].as_str(),
                Some("completed" | "failed" | "cancelled" | "declined")
            ))
        .then(|| e["state"].clone())
    })
}

/// One file of a soak: the sender's transfer id and what the receiver must end up with.
struct SoakFile {
    name: String,
    path: PathBuf,
    sha: String,
    sent: u64,
}

/// Reads whatever the processes have printed by now, so none of them blocks on a full stdout
/// pipe; everything lands in their `history`.
async fn pump(peers: &mut [&mut JsonLines]) {
    for peer in peers.iter_mut() {
        peer.drain(Duration::ZERO).await;
    }
}

/// Waits until every file of a round has ended on the sender, then checks each: completed on
/// both sides, the receiver's copy has the sender's SHA-256. Both copies are removed then, so a
/// long soak does not fill the disk.
async fn check_files(
    files: &[SoakFile],
    sender: &mut JsonLines,
    receiver: &mut JsonLines,
) -> Result<()> {
    for f in files {
        let state = sender
            .seen_or_wait(
                &format!("{} to end", f.name),
                Duration::from_secs(180),
                |e| {
                    e["event"] == "transfer_state"
                        && e["transfer"] == json!(f.sent)
                        && matches!(
                            e["state"]["state"].as_str(),
                            Some("completed" | "failed" | "cancelled" | "declined")
                        )
                },
            )
            .await?;
        ensure!(
            state["state"]["state"] == "completed",
            "{}: sender says {state}",
            f.name
        );
        let offer = receiver
            .seen_or_wait(&format!("the offer of {}", f.name), SETUP, |e| {
                e["event"] == "transfer_offered" && e["file_name"] == f.name.as_str()
            })
            .await?;
        let received = offer["transfer"].as_u64().context("offer without an id")?;
        let state = receiver
            .seen_or_wait(&format!("{} received", f.name), SETUP, |e| {
                e["event"] == "transfer_state"
                    && e["transfer"] == json!(received)
                    && matches!(
                        e["state"]["state"].as_str(),
                        Some("completed" | "failed" | "cancelled" | "declined")
                    )
            })
            .await?;
        ensure!(
            state["state"]["state"] == "completed",
            "{}: receiver says {state}",
            f.name
        );
        let saved = PathBuf::from(state["state"]["path"].as_str().context("no path")?);
        ensure!(
            sha256_of(&saved)? == f.sha,
            "{}: the received file's SHA-256 differs",
            f.name
        );
        let _ = std::fs::remove_file(&saved);
        let _ = std::fs::remove_file(&f.path);
    }
    Ok(())
}

/// One engine (`lyrebird-cli accounts` with alice's SIP and XMPP accounts) under load: `calls`
/// calls to bob's phone, `transfers` files to bob's phone, and bob's XMPP account sending it
/// `messages_per_second` chat messages for `duration`. Every second the engine answers a
/// `ping`, each call's statistics (its audio still arriving) and the XMPP roster. At the end:
/// no call ended by itself, every file arrived with its SHA-256, every message is in the
/// engine's history exactly once.
pub async fn soak(stack: &Stack, dir: &Path, options: &SoakOptions) -> Result<SoakFigures> {
    let (kamailio, prosody) = (stack.kamailio(), stack.prosody());
    let alice_sip = format!("sip:alice@{}", kamailio.domain());
    let alice_jid = format!("alice@{}", prosody.domain());
    let bob_sip = format!("sip:bob@{}", kamailio.domain());
    let bob_jid = format!("bob@{}", prosody.domain());
    let downloads = dir.join("bob-downloads");
    let file = dir.join("accounts.json");
    let accounts = json!([
        {"kind": "sip", "ws": kamailio.ws_url(), "aor": alice_sip,
         "password_env": "ALICE_PASSWORD",
         "msrp_relay_ws": kamailio.msrp_ws_url(), "msrp_relay_uri": kamailio.msrp_relay_uri()},
        {"kind": "xmpp", "ws": prosody.ws_url(), "jid": alice_jid,
         "password_env": "ALICE_PASSWORD", "allow_plain": true}
    ]);
    std::fs::write(&file, serde_json::to_vec_pretty(&accounts)?)?;
    let mut alice = start_accounts(
        &file,
        &dir.join("alice.sqlite3"),
        &dir.join("alice.log"),
        &[("ALICE_PASSWORD".into(), "alice-secret".into())],
        &["--tone", "440", "--discard", "--no-hold-other-calls"],
    )?;
    let mut bob_phone = Lyrebird::start(
        LyrebirdOptions::on_kamailio(stack, "bob", dir)
            .arg("--auto-answer")
            .arg("--tone")
            .arg("660")
            .arg("--discard")
            .arg("--no-hold-other-calls")
            .arg("--msrp-relay-ws")
            .arg(kamailio.msrp_ws_url())
            .arg("--msrp-relay-uri")
            .arg(kamailio.msrp_relay_uri())
            .arg("--auto-accept-files")
            .arg("--downloads")
            .arg(downloads.to_string_lossy()),
    )
    .await?;
    let mut bob_chat = start_lyrebird(
        &prosody.ws_url(),
        &bob_jid,
        "bob-secret",
        &dir.join("bob-xmpp.sqlite3"),
        &dir.join("bob-xmpp.log"),
        &[],
    )?;
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
    let pid = alice.pid().context("alice has no pid")?;

    // The yardstick: the same engine with one call up and its audio flowing.
    let mut calls = Vec::with_capacity(options.calls);
    calls.push(place_call(&mut alice, &bob_sip).await?);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let one_call = ProcessFigures::of(pid)?;
    println!("one call: {one_call}");
    while calls.len() < options.calls {
        calls.push(place_call(&mut alice, &bob_sip).await?);
    }
    println!("{} calls up", calls.len());

    let started = Instant::now();
    let cpu_before = procfs::cpu_seconds(pid).unwrap_or(0.0);
    let mut round: Vec<SoakFile> = Vec::new();
    let mut files_checked = 0usize;
    let mut next_file = 0u64;
    let mut sent_messages: Vec<String> = Vec::new();
    let mut received_so_far = HashMap::<u64, u64>::new();
    let (mut pings, mut slowest_ping) = (0usize, Duration::ZERO);
    let tick = Duration::from_secs(1) / options.messages_per_second.max(1);
    let (mut last_command, mut last_sent_ms) = (0u64, 0i64);
    let mut pace = tokio::time::interval(tick);
    pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut next_check = Instant::now();
    let mut transfers_left = true;
    // Bounded: the flood sends duration × rate messages, then the loop ends.
    let total = (options.duration.as_secs_f64() * f64::from(options.messages_per_second)) as usize;
    while sent_messages.len() < total {
        pace.tick().await;
        let body = format!("soak #{:06}", sent_messages.len());
        last_sent_ms = wall_clock_ms();
        last_command = bob_chat
            .send(json!({"cmd": "message", "to": alice_jid, "body": body}))
            .await?;
        sent_messages.push(body);
        pump(&mut [&mut alice, &mut bob_phone, &mut bob_chat]).await;
        if Instant::now() < next_check {
            continue;
        }
        next_check = Instant::now() + Duration::from_secs(1);
        let asked = Instant::now();
        alice.command(json!({"cmd": "ping"})).await?;
        slowest_ping = slowest_ping.max(asked.elapsed());
        pings += 1;
        alice
            .command(json!({"cmd": "roster", "account": 2}))
            .await?;
        for &call in &calls {
            let stats = alice.command(json!({"cmd": "stats", "call": call})).await?;
            let received = stats["stats"]["packets_received"].as_u64().unwrap_or(0);
            let before = received_so_far.insert(call, received).unwrap_or(0);
            ensure!(
                received > before,
                "call {call}: no audio arrived since the last check ({before} then {received} packets)"
            );
        }
        let round_done = round
            .iter()
            .all(|f| final_transfer_state(&alice, f.sent).is_some());
        if transfers_left && round_done {
            check_files(&round, &mut alice, &mut bob_phone).await?;
            files_checked += round.len();
            round.clear();
            for _ in 0..options.transfers {
                next_file += 1;
                let name = format!("soak-{next_file:03}.bin");
                let path = dir.join(&name);
                let sha = write_random_file(&path, options.file_size, next_file)?;
                let result = alice
                    .command(json!({"cmd": "send_file", "target": bob_sip, "path": path}))
                    .await?;
                let sent = result["transfer"]
                    .as_u64()
                    .with_context(|| format!("no transfer id in {result}"))?;
                round.push(SoakFile {
                    name,
                    path,
                    sha,
                    sent,
                });
            }
            transfers_left = options.repeat_transfers;
        }
    }
    let elapsed = started.elapsed();
    let cpu_percent =
        (procfs::cpu_seconds(pid).unwrap_or(0.0) - cpu_before) / elapsed.as_secs_f64() * 100.0;
    println!(
        "flood of {} messages sent in {:.1} s; waiting for the files and the last message",
        sent_messages.len(),
        elapsed.as_secs_f64()
    );

    // Every file of the last round ends intact.
    check_files(&round, &mut alice, &mut bob_phone).await?;
    files_checked += round.len();

    // Every message arrived and is stored once.
    let last = sent_messages.last().cloned().unwrap_or_default();
    let shown = alice
        .seen_or_wait("the flood's last message", Duration::from_secs(180), |e| {
            e["event"] == "chat_message" && e["body"] == last
        })
        .await?;
    let last_message_after = started.elapsed().saturating_sub(elapsed);
    let read_ms = wall_clock_ms();
    let taken = bob_chat
        .seen_or_wait("the sender's result for the last message", SETUP, |e| {
            e["event"] == "result" && e["id"] == json!(last_command)
        })
        .await?;
    let message_id = taken["message"].clone();
    let acked = bob_chat
        .seen_or_wait("the server's ack of the last message", SETUP, |e| {
            e["event"] == "chat_message_state" && e["id"] == message_id && e["state"] != "failed"
        })
        .await?;
    let at = |event: &Value| event["t_ms"].as_i64().unwrap_or_default();
    let last_message_path = MessagePath {
        to_sender_ms: at(&taken) - last_sent_ms,
        to_server_ms: at(&acked) - at(&taken),
        to_receiver_ms: at(&shown) - at(&acked),
        to_reader_ms: read_ms - at(&shown),
    };
    let loaded = ProcessFigures::of(pid)?;
    let history = alice
        .command_within(
            json!({"cmd": "history", "account": 2, "peer": bob_jid,
                   "limit": sent_messages.len() + 100}),
            Duration::from_secs(60),
        )
        .await?;
    let stored: Vec<&str> = history["messages"]
        .as_array()
        .context("history without messages")?
        .iter()
        .filter_map(|m| m["body"].as_str())
        .filter(|b| b.starts_with("soak #"))
        .collect();
    each_exactly_once(&stored, &sent_messages)?;

    // No call ended by itself.
    pump(&mut [&mut alice, &mut bob_phone, &mut bob_chat]).await;
    for &call in &calls {
        if let Some(ended) = alice.history.iter().find(|e| {
            e["event"] == "call_state" && e["call"] == json!(call) && e["state"]["state"] == "ended"
        }) {
            bail!("call {call} dropped during the soak: {ended}");
        }
        alice
            .command(json!({"cmd": "hangup", "call": call}))
            .await?;
    }
    let figures = SoakFigures {
        one_call,
        loaded,
        calls: calls.len(),
        files: files_checked,
        messages: stored.len(),
        pings,
        slowest_ping,
        elapsed,
        last_message_after,
        last_message_path,
        cpu_percent,
    };
    alice.quit().await?;
    bob_phone.quit().await?;
    bob_chat.quit().await?;
    Ok(figures)
}

fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Places a call from the `accounts` process and waits for its audio.
async fn place_call(alice: &mut JsonLines, target: &str) -> Result<u64> {
    let call = alice
        .command(json!({"cmd": "call", "target": target}))
        .await?["call"]
        .as_u64()
        .context("no call id")?;
    alice
        .wait_for(&format!("call {call}'s audio"), SETUP, |e| {
            e["event"] == "call_state"
                && e["call"] == json!(call)
                && e["state"]["state"] == "audio_flowing"
        })
        .await?;
    Ok(call)
}

/// `got` holds every one of `want`, each exactly once (in any order).
pub fn each_exactly_once(got: &[&str], want: &[String]) -> Result<()> {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for body in got {
        *counts.entry(body).or_default() += 1;
    }
    let missing: Vec<&String> = want
        .iter()
        .filter(|w| !counts.contains_key(w.as_str()))
        .collect();
    let repeated: Vec<(&&str, &usize)> = counts.iter().filter(|(_, n)| **n > 1).collect();
    let wanted: std::collections::HashSet<&str> = want.iter().map(String::as_str).collect();
    let unexpected: Vec<&&str> = counts.keys().filter(|b| !wanted.contains(**b)).collect();
    ensure!(
        missing.is_empty() && repeated.is_empty() && unexpected.is_empty(),
        "{} missing {:?}, repeated {:?}, unexpected {:?}",
        missing.len(),
        missing.iter().take(20).collect::<Vec<_>>(),
        repeated.iter().take(20).collect::<Vec<_>>(),
        unexpected.iter().take(20).collect::<Vec<_>>()
    );
    Ok(())
}
