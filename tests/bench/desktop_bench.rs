//! `bench-desktop`: the desktop app against Linphone Desktop, in one run, under one Xvfb.
//!
//! Figures (printed as Markdown tables for BENCHMARKS.md):
//! - **Idle memory** of the whole app: the sum of PSS (`/proc/<pid>/smaps_rollup`; each shared
//!   page divided among the processes sharing it, so the sum counts every page once) over the
//!   app and every process under it (WebKit's web and network processes). Lyrebird runs with
//!   one SIP and one XMPP account online (proven from outside: bob's headless Lyrebird sees
//!   alice's XMPP presence and gets a 200 for a SIP MESSAGE to her); Linphone Desktop idles on
//!   its start screen (no account), as the issue states its reference figure.
//! - **Start to first useful paint**: measured from outside for both, the same way: time from
//!   spawn until a top-level window of at least 200×200 is mapped and shows more than one
//!   colour (polled every 20 ms with `xwininfo` + `xwd`). For Lyrebird also its own log line
//!   "first useful paint after N ms" (contacts on screen from the local history). The first
//!   round of each starts with an empty profile; later rounds reuse it (warm).
//! - **Size of the `.deb`**: with `--build-deb`, `./task deb` (size-optimised release);
//!   otherwise the size of one already in `$CARGO_TARGET_DIR/release/bundle/deb`.
//!
//! Run inside the loopback namespace like the tests (see BENCHMARKS.md):
//! `unshare --net --pid --fork --kill-child --mount-proc ./task __inside-netns
//!  $CARGO_TARGET_DIR/debug/bench-desktop [--rounds N] [--settle SECONDS] [--build-deb] [--no-linphone]`

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use clap::Parser;
use serde_json::json;
use testkit::desktop::{
    DesktopOptions, GroupChild, SessionBus, Xvfb, process_name, process_tree, pss_by_mapping,
    pss_kib, top_level_windows, window_painted,
};
use testkit::json_lines::JsonLines;
use testkit::lyrebird::{Lyrebird, LyrebirdOptions};
use testkit::stack::{Stack, StackOptions};
use testkit::xmpp::{online, start_lyrebird};

#[derive(Parser, Debug)]
#[command(about = "Idle memory, start-to-paint time and .deb size: Lyrebird vs Linphone Desktop")]
struct Args {
    /// Starts of each app to time (the first is cold, with an empty profile).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Seconds to let each app settle before its memory is read.
    #[arg(long, default_value_t = 15)]
    settle: u64,
    /// Build the .deb (`./task deb`, size-optimised release) and report its size.
    #[arg(long)]
    build_deb: bool,
    /// Skip Linphone Desktop.
    #[arg(long)]
    no_linphone: bool,
    /// The Lyrebird binary to measure. Default: the release binary the .deb holds when
    /// --build-deb is given, else $LYREBIRD_DESKTOP, else `lyrebird` next to this program.
    #[arg(long, value_name = "PATH")]
    app: Option<PathBuf>,
    /// Extra environment for Lyrebird (repeatable), e.g. `LYREBIRD_WEBVIEW_DEFAULTS=1` to
    /// measure WebKit's own defaults instead of Lyrebird's tuning.
    #[arg(long = "env", value_name = "NAME=VALUE")]
    app_env: Vec<String>,
    /// Also print, per process, the N mappings with the most PSS (where the memory goes).
    #[arg(long, value_name = "N", default_value_t = 0)]
    mappings: usize,
    /// Instead of the start and idle figures: the app online with both accounts under a chat
    /// flood for MINUTES, its memory read every --sample seconds (the curve), then every
    /// message checked in its history.
    #[arg(long, value_name = "MINUTES")]
    flood: Option<u64>,
    /// XMPP messages a second in the flood; a quarter as many SIP MESSAGEs come beside them.
    #[arg(long, default_value_t = 20)]
    flood_rate: u32,
    /// Seconds between two memory readings during the flood.
    #[arg(long, default_value_t = 60)]
    sample: u64,
}

/// Bound for any one thing to happen (a window, a login, a log line).
const BOUND: Duration = Duration::from_secs(60);
/// How often the window poller looks.
const POLL: Duration = Duration::from_millis(20);

/// A started app: its process group and when it was spawned.
struct Started {
    process: GroupChild,
    spawned: Instant,
}

#[derive(Debug, Default)]
struct Figures {
    /// The binary measured.
    app: PathBuf,
    /// Spawn → a painted top-level window, per round (ms).
    paint_ms: Vec<f64>,
    /// The app's own "first useful paint" (ms), per round (Lyrebird only).
    own_paint_ms: Vec<f64>,
    /// Sum of PSS (KiB) and the per-process breakdown.
    pss_kib: Option<u64>,
    breakdown: Vec<(String, u64)>,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args = Args::parse();
    if !args.no_linphone && testkit::desktop::which("linphone").is_none() {
        bail!("Linphone Desktop is missing: apt-get install linphone (or pass --no-linphone)");
    }
    if std::env::var_os("LYREBIRD_TEST_NETNS").is_none() {
        eprintln!(
            "note: not inside the loopback namespace (./task __inside-netns); servers still bind 127.0.0.1"
        );
    }
    let dir = tempfile::Builder::new()
        .prefix("lyrebird-bench-desktop-")
        .tempdir()?;
    // The .deb first: it builds the release binary that is then measured.
    let deb = deb_size(args.build_deb)?;
    let mut options = DesktopOptions::new(dir.path())?;
    if let Some(app) = &args.app {
        options.app = app.clone();
    } else if args.build_deb {
        options.app = target_dir()?.join("release/lyrebird");
    }
    eprintln!("measuring {}", options.app.display());
    for d in [&options.data_dir, &options.downloads_dir, &options.log_dir] {
        std::fs::create_dir_all(d)?;
    }
    let xvfb = Xvfb::start(&options.log_dir.join("xvfb.log"))?;
    let bus = SessionBus::start(&options.log_dir)?;
    let display = xvfb.display();
    eprintln!("Xvfb on {display}");

    let stack = Stack::start(StackOptions {
        coturn: false,
        ..StackOptions::default()
    })?;
    let (mut bob_xmpp, mut bob_sip) = demo_contact(&stack, dir.path()).await?;
    let provision = dir.path().join("accounts.json");
    write_provision(&stack, &provision)?;
    let mut lyrebird_options = options
        .clone()
        .env("LYREBIRD_PROVISION", provision.display().to_string());
    for pair in &args.app_env {
        let (name, value) = pair
            .split_once('=')
            .with_context(|| format!("--env wants NAME=VALUE, not {pair:?}"))?;
        lyrebird_options = lyrebird_options.env(name, value);
    }

    if let Some(minutes) = args.flood {
        let log = options.log_dir.join("lyrebird-flood.log");
        let mut started = spawn_lyrebird(&lyrebird_options, &display, &bus, &log)?;
        time_to_paint(&display, &mut started)?;
        accounts_online(&stack, &mut bob_xmpp, &mut bob_sip).await?;
        let flood = Flood {
            stack: &stack,
            root: started.process.pid(),
            database: options.data_dir.join("history.sqlite3"),
            duration: Duration::from_secs(minutes * 60),
            rate: args.flood_rate.max(4),
            sample: Duration::from_secs(args.sample.max(1)),
        };
        let outcome = flood.run(&mut bob_xmpp, &mut bob_sip).await;
        started.process.stop(Duration::from_secs(5));
        bob_sip.quit().await.ok();
        bob_xmpp.quit().await.ok();
        return outcome;
    }

    // Lyrebird.
    let mut lyrebird = Figures {
        app: options.app.clone(),
        ..Figures::default()
    };
    for round in 0..args.rounds.max(1) {
        let log = options.log_dir.join(format!("lyrebird-{round}.log"));
        let mut started = spawn_lyrebird(&lyrebird_options, &display, &bus, &log)?;
        let paint = time_to_paint(&display, &mut started)?;
        lyrebird.paint_ms.push(paint);
        let own = own_paint_ms(&log).await?;
        lyrebird.own_paint_ms.push(own);
        eprintln!(
            "lyrebird round {round}: window painted after {paint:.0} ms, own first useful paint {own:.0} ms"
        );
        if round == 0 {
            accounts_online(&stack, &mut bob_xmpp, &mut bob_sip).await?;
            eprintln!(
                "lyrebird: SIP and XMPP accounts online; settling {} s",
                args.settle
            );
            let (total, breakdown) =
                idle_memory(started.process.pid(), args.settle, args.mappings).await;
            lyrebird.pss_kib = Some(total);
            lyrebird.breakdown = breakdown;
        }
        started.process.stop(Duration::from_secs(5));
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    // Linphone Desktop, same display, same bus.
    let mut linphone = Figures::default();
    if !args.no_linphone {
        let home = dir.path().join("linphone-home");
        std::fs::create_dir_all(&home)?;
        for round in 0..args.rounds.max(1) {
            let log = options.log_dir.join(format!("linphone-{round}.log"));
            let mut command = Command::new("linphone");
            command
                .env("DISPLAY", &display)
                .env("HOME", &home)
                .env("XDG_CONFIG_HOME", home.join(".config"))
                .env("XDG_DATA_HOME", home.join(".local/share"))
                .env("DBUS_SESSION_BUS_ADDRESS", bus.address())
                .env("NO_AT_BRIDGE", "1")
                .stdin(Stdio::null());
            redirect(&mut command, &log)?;
            let mut started = spawn("linphone", command)?;
            let paint = time_to_paint(&display, &mut started)?;
            linphone.paint_ms.push(paint);
            eprintln!("linphone round {round}: window painted after {paint:.0} ms");
            if round == 0 {
                eprintln!("linphone: settling {} s", args.settle);
                let (total, breakdown) =
                    idle_memory(started.process.pid(), args.settle, args.mappings).await;
                linphone.pss_kib = Some(total);
                linphone.breakdown = breakdown;
            }
            started.process.stop(Duration::from_secs(5));
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    bob_sip.quit().await.ok();
    bob_xmpp.quit().await.ok();
    drop(stack);
    report(
        &args,
        &lyrebird,
        (!args.no_linphone).then_some(&linphone),
        deb,
    );
    Ok(())
}

fn redirect(command: &mut Command, log: &Path) -> Result<()> {
    let file = std::fs::File::create(log)?;
    command
        .stdout(Stdio::from(file.try_clone()?))
        .stderr(Stdio::from(file));
    Ok(())
}

/// Starts the desktop app on `display` with its environment from `options`, output to `log`.
fn spawn_lyrebird(
    options: &DesktopOptions,
    display: &str,
    bus: &SessionBus,
    log: &Path,
) -> Result<Started> {
    let mut command = Command::new(&options.app);
    command
        .env("DISPLAY", display)
        .envs(options.app_env(bus))
        .stdin(Stdio::null());
    redirect(&mut command, log)?;
    spawn("lyrebird", command)
}

fn spawn(name: &str, command: Command) -> Result<Started> {
    let spawned = Instant::now();
    Ok(Started {
        process: GroupChild::spawn(name, command)?,
        spawned,
    })
}

/// Spawn → the first top-level window of at least 200×200 that is mapped and painted.
fn time_to_paint(display: &str, started: &mut Started) -> Result<f64> {
    loop {
        if started.process.exited() {
            bail!("the app exited before it painted a window");
        }
        for window in top_level_windows(display)? {
            if window.width >= 200 && window.height >= 200 && window_painted(display, &window.id) {
                return Ok(started.spawned.elapsed().as_secs_f64() * 1000.0);
            }
        }
        if started.spawned.elapsed() > BOUND {
            bail!("no painted window within {BOUND:?}");
        }
        std::thread::sleep(POLL);
    }
}

/// The app's own figure: "first useful paint after N ms" in its log.
async fn own_paint_ms(log: &Path) -> Result<f64> {
    let deadline = Instant::now() + BOUND;
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(ms) = text.lines().find_map(|line| {
            let rest = line.split("first useful paint after ").nth(1)?;
            rest.split_whitespace().next()?.parse::<f64>().ok()
        }) {
            return Ok(ms);
        }
        if Instant::now() > deadline {
            bail!("no \"first useful paint\" line in {}", log.display());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// After `settle` seconds, the sum of PSS over the process tree (median of three readings two
/// seconds apart), with the per-process figures of the last reading. With `mappings` > 0, also
/// prints each process's largest mappings.
async fn idle_memory(root: u32, settle: u64, mappings: usize) -> (u64, Vec<(String, u64)>) {
    tokio::time::sleep(Duration::from_secs(settle)).await;
    let mut totals = Vec::new();
    let mut breakdown = Vec::new();
    for reading in 0..3 {
        if reading > 0 {
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        breakdown = process_tree(root)
            .into_iter()
            .filter_map(|pid| {
                let kib = pss_kib(pid)?;
                Some((process_name(pid).unwrap_or_else(|| pid.to_string()), kib))
            })
            .collect();
        totals.push(breakdown.iter().map(|(_, kib)| kib).sum::<u64>());
    }
    totals.sort_unstable();
    if mappings > 0 {
        for pid in process_tree(root) {
            let name = process_name(pid).unwrap_or_else(|| pid.to_string());
            eprintln!("PSS of {name} ({pid}) by mapping:");
            for (path, kib) in pss_by_mapping(pid).into_iter().take(mappings) {
                eprintln!("  {:8.1} MiB  {path}", mib(kib));
            }
        }
    }
    (totals[totals.len() / 2], breakdown)
}

/// Bob, headless: XMPP with auto-approve (and alice pre-subscribed to him), SIP registered.
async fn demo_contact(stack: &Stack, dir: &Path) -> Result<(JsonLines, Lyrebird)> {
    let prosody = stack.prosody();
    let jid = |user: &str| format!("{user}@{}", prosody.domain());
    let mut bob = start_lyrebird(
        &prosody.ws_url(),
        &jid("bob"),
        "bob-secret",
        &dir.join("bob-xmpp.sqlite3"),
        &dir.join("bob-xmpp.log"),
        &["--auto-approve"],
    )?;
    online(&mut bob, BOUND).await?;
    let mut alice = start_lyrebird(
        &prosody.ws_url(),
        &jid("alice"),
        "alice-secret",
        &dir.join("alice-presubscribe.sqlite3"),
        &dir.join("alice-presubscribe.log"),
        &["--auto-approve", "--no-archive"],
    )?;
    online(&mut alice, BOUND).await?;
    alice
        .command(json!({"cmd": "add_contact", "jid": jid("bob"), "name": "Bob"}))
        .await?;
    alice
        .wait_for("mutual subscription with bob", BOUND, |e| {
            e["event"] == "contact" && e["jid"] == jid("bob") && e["subscription"] == "both"
        })
        .await?;
    alice.quit().await?;
    let kamailio = stack.kamailio();
    let mut bob_sip = Lyrebird::start(LyrebirdOptions::for_user(
        &kamailio.ws_url(),
        kamailio.domain(),
        "bob",
        "bob-secret",
        dir,
    ))
    .await?;
    bob_sip.registered(BOUND).await?;
    Ok((bob, bob_sip))
}

fn write_provision(stack: &Stack, path: &Path) -> Result<()> {
    let (kamailio, prosody) = (stack.kamailio(), stack.prosody());
    let accounts = json!([
        {"settings": {"kind": "sip", "ws_url": kamailio.ws_url(),
                      "aor": format!("sip:alice@{}", kamailio.domain()),
                      "display_name": "Alice", "auth_username": null, "outbound_proxy": null,
                      "turn": null, "msrp_relay_ws_url": kamailio.msrp_ws_url(),
                      "msrp_relay_uri": kamailio.msrp_relay_uri(), "trusted_certificate": null},
         "password": "alice-secret"},
        {"settings": {"kind": "xmpp", "ws_url": prosody.ws_url(),
                      "jid": format!("alice@{}", prosody.domain()), "resource": null,
                      "allow_plain": true, "trusted_certificate": null},
         "password": "alice-secret"}
    ]);
    std::fs::write(path, serde_json::to_vec_pretty(&accounts)?)?;
    Ok(())
}

/// Proves from outside that alice's two accounts are online: bob sees her XMPP presence, and
/// a SIP MESSAGE to her is answered 2xx (Kamailio only forwards to a registered contact).
async fn accounts_online(
    stack: &Stack,
    bob_xmpp: &mut JsonLines,
    bob_sip: &mut Lyrebird,
) -> Result<()> {
    let alice_jid = format!("alice@{}/", stack.prosody().domain());
    bob_xmpp
        .wait_for("alice's desktop presence", BOUND, |e| {
            e["event"] == "presence"
                && e["available"] == true
                && e["jid"].as_str().is_some_and(|j| j.starts_with(&alice_jid))
        })
        .await?;
    let alice_sip = format!("sip:alice@{}", stack.kamailio().domain());
    let deadline = Instant::now() + BOUND;
    loop {
        let result = bob_sip
            .command(
                json!({"cmd": "message", "target": alice_sip, "body": "ping from the benchmark"}),
            )
            .await?;
        let message = result["message"].clone();
        let outcome = bob_sip
            .wait_for("the message's outcome", BOUND, |e| {
                (e["event"] == "message_delivered" || e["event"] == "message_failed")
                    && e["message"] == message
            })
            .await?;
        if outcome["event"] == "message_delivered" {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("alice's SIP account never received a message: {outcome}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The desktop app under a chat flood from bob's two accounts.
struct Flood<'a> {
    stack: &'a Stack,
    /// The app's process, the root of the tree whose memory is read.
    root: u32,
    /// The app's history file, read (not written) at the end with `lyrebird-cli history`.
    database: PathBuf,
    duration: Duration,
    /// XMPP messages a second (SIP: a quarter of it).
    rate: u32,
    sample: Duration,
}

/// One reading of the app's memory during the flood.
struct MemorySample {
    at: Duration,
    sent: usize,
    pss_kib: u64,
    by_process: Vec<(String, u64)>,
}

impl Flood<'_> {
    async fn run(&self, bob_xmpp: &mut JsonLines, bob_sip: &mut Lyrebird) -> Result<()> {
        let alice_jid = format!("alice@{}", self.stack.prosody().domain());
        let alice_sip = format!("sip:alice@{}", self.stack.kamailio().domain());
        let mut pace = tokio::time::interval(Duration::from_secs(1) / self.rate);
        pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let mut sent: Vec<String> = Vec::new();
        let mut samples = vec![self.read_memory(Duration::ZERO, 0)];
        eprintln!("{}", samples[0]);
        let started = Instant::now();
        let mut next_sample = self.sample;
        // Bounded: duration × rate messages, then the loop ends.
        let total = (self.duration.as_secs_f64() * f64::from(self.rate)) as usize;
        for n in 0..total {
            pace.tick().await;
            let body = format!("desktop flood {n:07} over xmpp");
            bob_xmpp
                .send(json!({"cmd": "message", "to": alice_jid, "body": body}))
                .await?;
            sent.push(body);
            if n % 4 == 0 {
                let body = format!("desktop flood {n:07} over sip");
                bob_sip
                    .send(json!({"cmd": "message", "target": alice_sip, "body": body}))
                    .await?;
                sent.push(body);
            }
            // Keep both senders' output read so neither blocks on a full pipe.
            bob_xmpp.drain(Duration::from_millis(1)).await;
            bob_sip.drain(Duration::from_millis(1)).await;
            if started.elapsed() >= next_sample {
                let sample = self.read_memory(started.elapsed(), sent.len());
                eprintln!("{sample}");
                samples.push(sample);
                next_sample += self.sample;
            }
        }
        let stored = self.wait_until_stored(&sent).await?;
        let settled = self.read_memory(started.elapsed(), sent.len());
        eprintln!("{settled} (all {stored} messages in history)");
        samples.push(settled);
        let failed: Vec<_> = bob_sip
            .history
            .iter()
            .chain(bob_xmpp.history.iter())
            .filter(|e| {
                e["event"] == "message_failed"
                    || (e["event"] == "chat_message_state" && e["state"] == "failed")
            })
            .take(3)
            .cloned()
            .collect();
        if !failed.is_empty() {
            bail!("the flood lost messages on the way: {failed:?}");
        }
        self.report(&samples, stored);
        Ok(())
    }

    fn read_memory(&self, at: Duration, sent: usize) -> MemorySample {
        let by_process: Vec<(String, u64)> = process_tree(self.root)
            .into_iter()
            .filter_map(|pid| {
                let kib = pss_kib(pid)?;
                Some((process_name(pid).unwrap_or_else(|| pid.to_string()), kib))
            })
            .collect();
        MemorySample {
            at,
            sent,
            pss_kib: by_process.iter().map(|(_, kib)| kib).sum(),
            by_process,
        }
    }

    /// Waits (bounded) until every message sent is in the app's history exactly once; returns
    /// how many that is.
    async fn wait_until_stored(&self, sent: &[String]) -> Result<usize> {
        let database = self.database.to_string_lossy().into_owned();
        let limit = (sent.len() + 100).to_string();
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let hits = testkit::lyrebird::run_cli(
                &[
                    "--db",
                    &database,
                    "history",
                    "search",
                    "desktop flood",
                    "--limit",
                    &limit,
                ],
                BOUND,
            )
            .await?;
            let bodies: Vec<&str> = hits
                .iter()
                .filter_map(|hit| hit["hit"]["message"]["body"].as_str())
                .collect();
            if bodies.len() >= sent.len() || Instant::now() > deadline {
                testkit::reliability::each_exactly_once(&bodies, sent)?;
                return Ok(bodies.len());
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }

    fn report(&self, samples: &[MemorySample], stored: usize) {
        println!(
            "\n### Desktop app under a chat flood: {} min, {} XMPP + {} SIP messages a second\n",
            self.duration.as_secs() / 60,
            self.rate,
            f64::from(self.rate) / 4.0
        );
        let names: Vec<String> = samples
            .first()
            .map(|s| s.by_process.iter().map(|(name, _)| name.clone()).collect())
            .unwrap_or_default();
        println!(
            "| minute | messages sent | PSS of all processes | {} |",
            names.join(" | ")
        );
        println!("|---:|---:|---:|{}", "---:|".repeat(names.len()));
        for sample in samples {
            let per_name: Vec<String> = names
                .iter()
                .map(|name| {
                    let kib: u64 = sample
                        .by_process
                        .iter()
                        .filter(|(n, _)| n == name)
                        .map(|(_, kib)| kib)
                        .sum();
                    format!("{:.1} MiB", mib(kib))
                })
                .collect();
            println!(
                "| {:.1} | {} | {:.1} MiB | {} |",
                sample.at.as_secs_f64() / 60.0,
                sample.sent,
                mib(sample.pss_kib),
                per_name.join(" | ")
            );
        }
        println!("\nEvery one of the {stored} messages is in the app's history exactly once.");
    }
}

impl std::fmt::Display for MemorySample {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:6.1} min, {:6} sent: PSS {:.1} MiB ({})",
            self.at.as_secs_f64() / 60.0,
            self.sent,
            mib(self.pss_kib),
            self.by_process
                .iter()
                .map(|(name, kib)| format!("{name} {:.1}", mib(*kib)))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

/// The .deb's path and size: built now with `--build-deb`, else one already built.
fn deb_size(build: bool) -> Result<Option<(PathBuf, u64)>> {
    let target = target_dir()?;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or_else(|| anyhow!("no repository root"))?
        .to_owned();
    if build {
        // One place knows how the package is built (size-optimised release): the task script.
        eprintln!("building the .deb (./task deb)");
        run_checked(
            Command::new(root.join("task"))
                .arg("deb")
                .current_dir(&root)
                .env("CARGO_TARGET_DIR", &target),
        )?;
    }
    let dir = target.join("release/bundle/deb");
    let newest = std::fs::read_dir(&dir)
        .ok()
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "deb"))
        .filter_map(|p| Some((std::fs::metadata(&p).ok()?.modified().ok()?, p)))
        .max();
    Ok(match newest {
        Some((_, path)) => {
            let size = std::fs::metadata(&path)?.len();
            Some((path, size))
        }
        None => None,
    })
}

fn target_dir() -> Result<PathBuf> {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .ok_or_else(|| {
            anyhow!("set CARGO_TARGET_DIR (the .deb and the release binary are under it)")
        })
}

fn run_checked(command: &mut Command) -> Result<()> {
    let status = command
        .status()
        .with_context(|| format!("running {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed: {status}");
    }
    Ok(())
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn rounds(values: &[f64]) -> String {
    values
        .iter()
        .map(|v| format!("{v:.0}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn report(
    args: &Args,
    lyrebird: &Figures,
    linphone: Option<&Figures>,
    deb: Option<(PathBuf, u64)>,
) {
    println!(
        "\n## Desktop app (bench-desktop, {} rounds, {} s settle)\n",
        args.rounds, args.settle
    );
    println!("Lyrebird binary: {}", lyrebird.app.display());
    println!("Extra environment: {:?}\n", args.app_env);
    println!("| idle memory, sum of PSS over all processes | MiB | processes |");
    println!("|---|---|---|");
    let describe = |f: &Figures| {
        f.breakdown
            .iter()
            .map(|(name, kib)| format!("{name} {:.0}", mib(*kib)))
            .collect::<Vec<_>>()
            .join(" + ")
    };
    if let Some(kib) = lyrebird.pss_kib {
        println!(
            "| Lyrebird, one SIP + one XMPP account online | {:.1} | {} |",
            mib(kib),
            describe(lyrebird)
        );
    }
    if let Some(l) = linphone
        && let Some(kib) = l.pss_kib
    {
        println!(
            "| Linphone Desktop, idle (start screen, no account) | {:.1} | {} |",
            mib(kib),
            describe(l)
        );
        if let Some(ours) = lyrebird.pss_kib {
            println!(
                "\nLyrebird / Linphone memory: **{:.2}×** (target ≤ 0.75×)",
                ours as f64 / kib as f64
            );
        }
    }
    println!(
        "\n| start → painted window (spawn to a mapped, non-blank top-level window) | median ms | rounds (first cold) |"
    );
    println!("|---|---|---|");
    println!(
        "| Lyrebird | {:.0} | {} |",
        median(&lyrebird.paint_ms),
        rounds(&lyrebird.paint_ms)
    );
    println!(
        "| Lyrebird, own log \"first useful paint\" (contacts on screen) | {:.0} | {} |",
        median(&lyrebird.own_paint_ms),
        rounds(&lyrebird.own_paint_ms)
    );
    if let Some(l) = linphone {
        println!(
            "| Linphone Desktop | {:.0} | {} |",
            median(&l.paint_ms),
            rounds(&l.paint_ms)
        );
        println!(
            "\nLyrebird / Linphone start to paint: **{:.2}×** (target ≤ 0.5×)",
            median(&lyrebird.paint_ms) / median(&l.paint_ms)
        );
    }
    match deb {
        Some((path, size)) => println!(
            "\n.deb: {} — **{:.2} MB** ({size} bytes; target < 10 MB)",
            path.display(),
            size as f64 / 1_000_000.0
        ),
        None => println!("\n.deb: not built (run with --build-deb)"),
    }
}
