//! A SIP MESSAGE answered 200 OK is a promise: the sender forgets it, and SIP keeps no archive
//! to fetch it from again. So whatever Lyrebird answered 200 must be in its history even if the
//! process is killed (`kill -9`) a moment later.
//!
//! A raw SIP-over-WebSocket sender floods a `lyrebird-cli run` with MESSAGEs and notes which
//! ones got 200; part-way through, the receiver gets SIGKILL. Its history file, read afterwards
//! with `lyrebird-cli --db FILE history search`, must hold every message answered 200, each
//! once. The kill lands at a different point of the flood in each run, because the window it
//! must not fall into is small.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, ensure};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use testkit::lyrebird::{Lyrebird, LyrebirdOptions, run_cli};
use testkit::rawsip::RawSipClient;
use testkit::stack::{Stack, StackOptions};

const SETUP: Duration = Duration::from_secs(20);
/// Messages per flood: 300 in the test command; `LYREBIRD_FLOOD=1000` is the long form.
fn flood_size() -> usize {
    std::env::var("LYREBIRD_FLOOD")
        .ok()
        .and_then(|n| n.parse().ok())
        .filter(|n| (10..=10_000).contains(n))
        .unwrap_or(300)
}
/// After the kill, answers the receiver sent before it died are in flight for milliseconds;
/// this much silence means none is left.
const QUIET: Duration = Duration::from_millis(1500);
/// How many 200s the sender sees before the receiver is killed, one run each: the first, then
/// every tenth of the flood from 2/15 on (1, 40, 70, … 280 for 300 messages).
fn kill_points(flood: usize) -> Vec<usize> {
    std::iter::once(1)
        .chain((0..9).map(|k| flood * (4 + 3 * k) / 30))
        .collect()
}

/// What one flood ended with.
struct Flood {
    /// Bodies of the messages the sender saw answered 200.
    answered: BTreeSet<String>,
    /// Final responses other than 200, by status.
    refused: HashMap<u16, usize>,
    /// From the first MESSAGE sent to the last 200 seen.
    elapsed: Duration,
}

/// Sends `flood_size()` MESSAGEs to `target` at once and collects their final responses. With
/// `kill_after`, SIGKILLs `receiver` as soon as that many 200s have come back, then keeps
/// listening until the answers stop.
async fn flood(
    sender: &mut RawSipClient,
    target: &str,
    run: usize,
    receiver: &Lyrebird,
    kill_after: Option<usize>,
) -> Result<Flood> {
    let mut bodies = HashMap::new();
    let size = flood_size();
    let mut requests = Vec::with_capacity(size);
    for i in 0..size {
        let body = format!("durable{run} message {i}");
        let request = sender.request(
            "MESSAGE",
            target,
            &["Content-Type: text/plain;charset=UTF-8"],
            &body,
        );
        let call_id = header(&request, "Call-ID")
            .ok_or_else(|| anyhow!("a request without Call-ID: {request}"))?;
        bodies.insert(call_id, body);
        requests.push(request);
    }
    let started = Instant::now();
    for request in &requests {
        sender.send(request).await?;
    }
    let mut answered = BTreeSet::new();
    let mut refused = HashMap::new();
    let mut last_ok = started;
    let mut killed = false;
    // Bounded: each wait is at most a few seconds, and there are at most `size` answers.
    while answered.len() + refused.values().sum::<usize>() < size {
        let wait = if killed { QUIET } else { SETUP };
        let response = match sender.response(wait, false).await {
            Ok(response) => response,
            Err(_) if killed => break,
            Err(e) => {
                // The sockets' queues say which side stopped reading: the receiver (its
                // Recv-Q full) or the proxy (the receiver's Send-Q full).
                let sockets = std::process::Command::new("ss")
                    .args(["-tnp"])
                    .output()
                    .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                    .unwrap_or_default();
                return Err(e.context(format!(
                    "after {} answers, run {run}; sockets:\n{sockets}\nreceiver log:\n{}",
                    answered.len(),
                    receiver.log_tail()
                )));
            }
        };
        let call_id = response
            .header("Call-ID")
            .ok_or_else(|| anyhow!("a response without Call-ID: {}", response.text))?;
        let body = bodies
            .get(call_id)
            .ok_or_else(|| anyhow!("a response to no request of ours: {}", response.text))?;
        if response.status == 200 {
            ensure!(
                answered.insert(body.clone()),
                "two 200s for {body:?}: {}",
                response.text
            );
            last_ok = Instant::now();
        } else {
            *refused.entry(response.status).or_default() += 1;
        }
        if !killed && kill_after.is_some_and(|n| answered.len() >= n) {
            let pid = receiver
                .pid()
                .ok_or_else(|| anyhow!("the receiver is not running"))?;
            kill(Pid::from_raw(i32::try_from(pid)?), Signal::SIGKILL)
                .context("SIGKILL to the receiver")?;
            killed = true;
        }
    }
    Ok(Flood {
        answered,
        refused,
        elapsed: last_ok - started,
    })
}

fn header(text: &str, name: &str) -> Option<String> {
    text.lines()
        .take_while(|l| !l.is_empty())
        .find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
        .map(str::to_owned)
}

/// How many times each body of `run` is in the history file at `db`.
async fn stored_bodies(db: &Path, run: usize) -> Result<HashMap<String, usize>> {
    let db = db.to_string_lossy();
    let query = format!("durable{run}");
    let limit = (flood_size() * 2).to_string();
    let hits = run_cli(
        &["--db", &db, "history", "search", &query, "--limit", &limit],
        SETUP,
    )
    .await?;
    let mut counts = HashMap::new();
    for hit in hits {
        let body = hit["hit"]["message"]["body"]
            .as_str()
            .ok_or_else(|| anyhow!("a search hit without a body: {hit}"))?;
        *counts.entry(body.to_owned()).or_default() += 1;
    }
    Ok(counts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_answered_200_is_in_history_after_a_kill_9() -> Result<()> {
    // One user per run, so no run's dead registration can take the next run's messages.
    let size = flood_size();
    let kills = kill_points(size);
    let runs = kills.len() + 1;
    let users: Vec<String> = (0..runs).map(|run| format!("rx{run}")).collect();
    let stack = Stack::start(StackOptions {
        users: users
            .iter()
            .map(|user| (user.clone(), format!("{user}-secret")))
            .collect(),
        ..StackOptions::kamailio_only()
    })?;
    let kamailio = stack.kamailio();
    let dir = tempfile::tempdir()?;
    let mut failures = Vec::new();

    // Run 0 is not killed: every message must arrive, be answered 200 and be stored once. It
    // also gives the flood's rate.
    for (run, user) in users.iter().enumerate() {
        let kill_after = run.checked_sub(1).map(|k| kills[k]);
        let options = LyrebirdOptions::for_user(
            &kamailio.ws_url(),
            kamailio.domain(),
            user,
            &format!("{user}-secret"),
            dir.path(),
        );
        let db = options.db.clone();
        let mut receiver = Lyrebird::start(options).await?;
        receiver.registered(SETUP).await?;
        let mut sender = RawSipClient::connect(&kamailio.ws_url()).await?;
        let target = format!("sip:{user}@{}", kamailio.domain());
        let result = flood(&mut sender, &target, run, &receiver, kill_after).await?;
        if kill_after.is_some() {
            receiver.kill().await;
        } else {
            receiver.quit().await?;
        }

        // Killed mid-write, the file is still sound (WAL): SQLite's integrity check passes.
        let db_arg = db.to_string_lossy();
        let check = run_cli(&["--db", &db_arg, "history", "check"], SETUP).await?;
        ensure!(
            check
                .iter()
                .any(|e| e["event"] == "history_check" && e["sound"] == true),
            "run {run}: the history file is damaged: {check:?}"
        );
        let stored = stored_bodies(&db, run).await?;
        let lost: Vec<&String> = result
            .answered
            .iter()
            .filter(|body| !stored.contains_key(*body))
            .collect();
        let twice: Vec<(&String, &usize)> = stored.iter().filter(|(_, n)| **n > 1).collect();
        let rate = result.answered.len() as f64 / result.elapsed.as_secs_f64().max(1e-3);
        eprintln!(
            "run {run}: kill after {kill_after:?} 200s; {} answered 200 in {:.0} ms ({rate:.0} \
             messages/s), other answers {:?}; {} stored, {} answered but lost, {} stored twice",
            result.answered.len(),
            result.elapsed.as_secs_f64() * 1000.0,
            result.refused,
            stored.len(),
            lost.len(),
            twice.len(),
        );
        if kill_after.is_none() && result.answered.len() != size {
            failures.push(format!(
                "run {run}: only {} of {size} answered 200 without a kill",
                result.answered.len()
            ));
        }
        if !lost.is_empty() {
            failures.push(format!(
                "run {run}: {} answered 200 but not stored, e.g. {:?}",
                lost.len(),
                lost.iter().take(5).collect::<Vec<_>>()
            ));
        }
        if !twice.is_empty() {
            failures.push(format!("run {run}: stored twice: {twice:?}"));
        }
    }
    ensure!(failures.is_empty(), "{}", failures.join("\n"));
    Ok(())
}
