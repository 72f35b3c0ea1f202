//! The reference browser peer: JsSIP in Debian's headless Chromium, driven from Rust.
//!
//! [`BrowserPeer`] runs `tests/browser/peer.mjs` (Node + playwright-core) as a child process and
//! talks to it in JSON lines: commands on its stdin, events on its stdout (each with `"event"`
//! and `"t"`, wall-clock ms since the Unix epoch, comparable with [`now_ms`] and across peers).
//! Its stderr (driver log, page console) goes to a log file whose tail is added to every error,
//! so a failed wait says what the browser saw.
//!
//! Every wait is bounded. The driver runs in its own process group; Chromium (which Playwright
//! starts in a process group of its own) is found through `/proc` and killed too, so a test that
//! fails or panics leaves no browser behind. All of that is [`ChromiumPeer`]'s, which the Jingle
//! peer ([`crate::jingle_browser::JingleBrowserPeer`]) is too.
//!
//! [`browser_to_browser_setup`] measures the reference call set-up figure that Lyrebird's own is
//! compared with (DESIGN.md, "Benchmarks").

use std::collections::VecDeque;
use std::fmt::Debug;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

use crate::procfs;

/// How long Chromium may take to start and load the page (cold start on a busy 2-core machine).
pub const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the page may take to answer `stats`.
const STATS_TIMEOUT: Duration = Duration::from_secs(10);

/// Wall-clock milliseconds since the Unix epoch, the clock of every event's `t`.
pub fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

/// Directory of the npm package (`tests/browser`).
pub fn browser_package_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("browser")
}

/// Checks that Node, Chromium and the npm package are installed.
pub fn require_browser_tools() -> Result<()> {
    require_package_files(&[
        "node_modules/jssip/lib/JsSIP.js",
        "node_modules/playwright-core/package.json",
        "node_modules/esbuild/package.json",
    ])?;
    let chromium = std::env::var_os("LYREBIRD_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    if !chromium.exists() {
        bail!(
            "{} is missing: run ./task test, which installs chromium",
            chromium.display()
        );
    }
    let node = std::process::Command::new("node")
        .arg("--version")
        .output()
        .context("node is missing: install Node.js 20")?;
    if !node.status.success() {
        bail!("`node --version` failed");
    }
    Ok(())
}

/// Checks that these files (relative to the npm package) are installed.
pub(crate) fn require_package_files(files: &[&str]) -> Result<()> {
    let package = browser_package_dir();
    for needed in files.iter().map(|file| package.join(file)) {
        if !needed.exists() {
            bail!(
                "{} is missing: run `npm ci` in {} (./task test does)",
                needed.display(),
                package.display()
            );
        }
    }
    Ok(())
}

/// How to start a [`BrowserPeer`]; the fields map to `peer.mjs` arguments.
#[derive(Debug, Clone)]
pub struct BrowserPeerOptions {
    /// `ws://127.0.0.1:PORT` of the SIP proxy.
    pub ws_url: String,
    /// `sip:user@domain`.
    pub uri: String,
    pub password: String,
    /// WAV played as the microphone (looped by Chromium). Chromium's fake tone when `None`.
    pub fake_audio: Option<PathBuf>,
    /// Answer incoming calls as soon as they arrive.
    pub auto_answer: bool,
    /// Display name, and the label used in log file names and errors.
    pub name: Option<String>,
    /// Send the offer/answer at the first ICE candidate instead of JsSIP's default of waiting
    /// for gathering to complete. Off for reference figures.
    pub early_ice: bool,
    /// Send Chromium's fake camera (640×480 unless `video_size`) beside the microphone.
    pub video: bool,
    pub video_size: Option<(u32, u32)>,
    /// Keep the video's size under CPU or bandwidth pressure (Chromium lowers the frame rate
    /// instead), for benchmarks comparing equal pictures.
    pub hold_resolution: bool,
    /// JsSIP debug logging (every SIP message) to the log file; on by default when
    /// `LYREBIRD_BROWSER_DEBUG` is set.
    pub debug: bool,
    /// Where the log file goes; `$LYREBIRD_TEST_LOG_DIR` or `<tmp>/lyrebird-browser-logs` when
    /// `None`.
    pub log_dir: Option<PathBuf>,
}

impl BrowserPeerOptions {
    pub fn new(
        ws_url: impl Into<String>,
        uri: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        BrowserPeerOptions {
            ws_url: ws_url.into(),
            uri: uri.into(),
            password: password.into(),
            fake_audio: None,
            auto_answer: false,
            name: None,
            early_ice: false,
            video: false,
            video_size: None,
            hold_resolution: false,
            debug: std::env::var_os("LYREBIRD_BROWSER_DEBUG").is_some(),
            log_dir: None,
        }
    }

    pub fn fake_audio(mut self, wav: impl Into<PathBuf>) -> Self {
        self.fake_audio = Some(wav.into());
        self
    }

    pub fn video(mut self, on: bool) -> Self {
        self.video = on;
        self
    }

    /// Keep the video's size under pressure (see the field of the same name).
    pub fn hold_resolution(mut self, on: bool) -> Self {
        self.hold_resolution = on;
        self
    }

    /// Send the fake camera at this size.
    pub fn video_size(mut self, width: u32, height: u32) -> Self {
        self.video = true;
        self.video_size = Some((width, height));
        self
    }

    pub fn auto_answer(mut self, on: bool) -> Self {
        self.auto_answer = on;
        self
    }

    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    fn label(&self) -> String {
        self.name.clone().unwrap_or_else(|| {
            self.uri
                .trim_start_matches("sip:")
                .split('@')
                .next()
                .unwrap_or("peer")
                .to_owned()
        })
    }
}

/// Media counters from the page's `RTCPeerConnection.getStats()` (the `stats` event).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerStats {
    pub t: f64,
    pub packets_received: u64,
    pub bytes_received: u64,
    /// Sum over received samples of (level)² × duration (W3C webrtc-stats); rises only while
    /// decoded audio that is not silence plays.
    pub total_audio_energy: f64,
    pub audio_level: f64,
    pub packets_sent: u64,
    /// `audio/opus/48000/2` and the like; `None` before media flows.
    pub codec: Option<String>,
    /// Video received (`inbound-rtp` of kind video): frames decoded and their size; and video
    /// frames encoded for sending. Zero without video.
    #[serde(default)]
    pub video_frames_decoded: u64,
    #[serde(default)]
    pub video_width: u32,
    #[serde(default)]
    pub video_height: u32,
    #[serde(default)]
    pub video_frames_encoded: u64,
    /// Which of the page's calls these counters are from (numbered from 1 in the order the
    /// page saw them; a transfer starts a new one); `None` without a call.
    #[serde(default)]
    pub call: Option<u64>,
}

impl PeerStats {
    /// Whether the page has received audio packets and decoded audio with energy from them —
    /// what a person hears.
    pub fn decodes_audio(&self) -> bool {
        self.packets_received > 25 && self.total_audio_energy > 0.0 && self.audio_level > 0.0
    }
}

/// One JsSIP user agent in its own headless Chromium.
pub type BrowserPeer = ChromiumPeer<JsSip>;

/// The [`PeerKind`] of [`BrowserPeer`]: `peer.mjs`, JsSIP.
pub enum JsSip {}

impl PeerKind for JsSip {
    type Stats = PeerStats;
    const NAME: &'static str = "browser peer";
    // Unregistering and closing Chromium.
    const QUIT_TIMEOUT: Duration = Duration::from_secs(8);

    fn decodes_audio(stats: &PeerStats) -> bool {
        stats.decodes_audio()
    }
}

impl ChromiumPeer<JsSip> {
    /// Starts Node + Chromium, loads the page, and waits (bounded) until the page runs its JsSIP
    /// user agent (the `started` event). Registration follows on its own: wait for
    /// `registered`.
    pub async fn start(options: BrowserPeerOptions) -> Result<BrowserPeer> {
        require_browser_tools()?;
        let label = options.label();
        let log_path = new_log_path(options.log_dir.as_deref(), &label)?;
        let name = label.clone();
        ChromiumPeer::spawn("peer.mjs", label, log_path, |command| {
            command
                .arg("--ws")
                .arg(&options.ws_url)
                .arg("--uri")
                .arg(&options.uri)
                .arg("--password")
                .arg(&options.password)
                .arg("--name")
                .arg(&name);
            if let Some(wav) = &options.fake_audio {
                command.arg("--fake-audio").arg(wav);
            }
            if options.auto_answer {
                command.arg("--auto-answer");
            }
            if options.early_ice {
                command.arg("--early-ice");
            }
            if options.video {
                command.arg("--video");
            }
            if options.hold_resolution {
                command.arg("--hold-resolution");
            }
            if let Some((width, height)) = options.video_size {
                command.arg("--video-size").arg(format!("{width}x{height}"));
            }
            if options.debug {
                command.arg("--debug");
            }
        })
        .await
    }
}

/// A fresh log file path `<dir>/<name>-<pid>-<ms>.log` in `log_dir`, or in
/// `$LYREBIRD_TEST_LOG_DIR` or `<tmp>/lyrebird-browser-logs` when `None` (created if need be).
pub(crate) fn new_log_path(log_dir: Option<&Path>, name: &str) -> Result<PathBuf> {
    let log_dir = log_dir
        .map(Path::to_owned)
        .or_else(|| std::env::var_os("LYREBIRD_TEST_LOG_DIR").map(PathBuf::from))
        .unwrap_or_else(|| std::env::temp_dir().join("lyrebird-browser-logs"));
    std::fs::create_dir_all(&log_dir).with_context(|| format!("creating {}", log_dir.display()))?;
    Ok(log_dir.join(format!(
        "{name}-{}-{}.log",
        std::process::id(),
        now_ms() as u64
    )))
}

/// What tells one kind of [`ChromiumPeer`] from another.
pub trait PeerKind {
    /// What the page's `stats` event holds.
    type Stats: DeserializeOwned + Debug;
    /// What errors call the peer, e.g. `browser peer`.
    const NAME: &'static str;
    /// How long `quit` waits for the driver to leave, close Chromium and exit before killing
    /// both.
    const QUIT_TIMEOUT: Duration;
    /// Whether `stats` show received audio packets and decoded audio with energy from them —
    /// what a person hears.
    fn decodes_audio(stats: &Self::Stats) -> bool;
}

/// A reference peer: a Node driver (a script in `tests/browser`) that runs a page in its own
/// headless Chromium, and the JSON lines it speaks: commands out, events in, every wait
/// bounded. [`BrowserPeer`] and [`crate::jingle_browser::JingleBrowserPeer`] are one each, with
/// their own `start` and commands. Dropping it kills the driver and its Chromium.
pub struct ChromiumPeer<K: PeerKind> {
    label: String,
    child: Child,
    driver_pid: Option<i32>,
    /// Process groups of the Chromium instances the driver started.
    chromium_groups: Vec<i32>,
    stdin: Option<ChildStdin>,
    events: mpsc::UnboundedReceiver<Value>,
    /// Events received but not yet consumed by `next_event` / `wait_for`.
    pending: VecDeque<Value>,
    /// Every event received, in order.
    history: Vec<Value>,
    log_path: PathBuf,
    kind: PhantomData<K>,
}

impl<K: PeerKind> ChromiumPeer<K> {
    /// Runs `node <script>` in the npm package, with the arguments `args` adds, stderr into a
    /// new file at `log_path`, in its own process group, and waits (bounded) for its `started`
    /// event. `label` names the peer in errors.
    pub(crate) async fn spawn(
        script: &str,
        label: String,
        log_path: PathBuf,
        args: impl FnOnce(&mut Command),
    ) -> Result<Self> {
        let log_file = std::fs::File::create(&log_path)
            .with_context(|| format!("creating {}", log_path.display()))?;
        let package = browser_package_dir();
        let mut command = Command::new("node");
        command.arg(package.join(script));
        args(&mut command);
        command
            .current_dir(&package)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            // Its own process group, so it can be signalled as a whole.
            .process_group(0)
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .with_context(|| format!("spawning node {script}"))?;
        let driver_pid = child.id().and_then(|pid| i32::try_from(pid).ok());
        let stdin = child.stdin.take();
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow!("node stdout was not captured"))?;

        let (sender, events) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let event = serde_json::from_str::<Value>(&line)
                    .unwrap_or_else(|_| json!({ "event": "_unparsed", "line": line }));
                if sender.send(event).is_err() {
                    break;
                }
            }
        });

        let mut peer = ChromiumPeer {
            label,
            child,
            driver_pid,
            chromium_groups: Vec::new(),
            stdin,
            events,
            pending: VecDeque::new(),
            history: Vec::new(),
            log_path,
            kind: PhantomData,
        };
        peer.wait_for("started", START_TIMEOUT).await?;
        peer.chromium_groups = driver_pid.map(chromium_groups_under).unwrap_or_default();
        Ok(peer)
    }

    /// The label used in errors and the log file name.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Process groups of the Chromium instances this peer started (for leak checks).
    pub fn browser_process_groups(&self) -> &[i32] {
        &self.chromium_groups
    }

    /// The driver's stderr log (driver, page console, the protocol's debug log with `debug`).
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Every event received so far, in order (consumed or not).
    pub fn history(&self) -> &[Value] {
        &self.history
    }

    /// The first event named `name` received so far, consumed or not.
    pub fn seen(&self, name: &str) -> Option<&Value> {
        self.history.iter().find(|event| event_name(event) == name)
    }

    /// Sends one command, e.g. `json!({"cmd": "call", "target": "sip:bob@localhost"})`.
    pub async fn send(&mut self, command: Value) -> Result<()> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| anyhow!("{}: the peer has quit", self.label))?;
        let mut line = serde_json::to_string(&command)?;
        line.push('\n');
        let written = tokio::time::timeout(Duration::from_secs(5), async {
            stdin.write_all(line.as_bytes()).await?;
            stdin.flush().await
        })
        .await;
        match written {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(self.failure(&format!("writing {command}: {error}"))),
            Err(_) => Err(self.failure(&format!("writing {command} timed out"))),
        }
    }

    /// The next event not yet consumed, waiting at most `timeout`.
    pub async fn next_event(&mut self, timeout: Duration) -> Result<Value> {
        if let Some(event) = self.pending.pop_front() {
            return Ok(event);
        }
        match tokio::time::timeout(timeout, self.events.recv()).await {
            Ok(Some(event)) => {
                self.history.push(event.clone());
                Ok(event)
            }
            Ok(None) => Err(self.failure("the peer exited")),
            Err(_) => Err(self.failure(&format!("no event within {timeout:?}"))),
        }
    }

    /// Waits at most `timeout` for the first unconsumed event named `name` and consumes it.
    /// Other events stay queued (in order) for later calls and stay in [`Self::history`].
    pub async fn wait_for(&mut self, name: &str, timeout: Duration) -> Result<Value> {
        self.wait_for_where(name, timeout, |_| true).await
    }

    /// [`Self::wait_for`] for the first unconsumed event named `name` that `want` accepts,
    /// e.g. the `ended` of one particular call.
    pub async fn wait_for_where(
        &mut self,
        name: &str,
        timeout: Duration,
        want: impl Fn(&Value) -> bool,
    ) -> Result<Value> {
        self.wait_matching(&format!("`{name}`"), timeout, |event| {
            event_name(event) == name && want(event)
        })
        .await
    }

    /// Waits at most `timeout` for the first unconsumed event that `wanted` accepts (`what`
    /// names it in errors) and consumes it; the others stay queued.
    pub(crate) async fn wait_matching(
        &mut self,
        what: &str,
        timeout: Duration,
        wanted: impl Fn(&Value) -> bool,
    ) -> Result<Value> {
        if let Some(index) = self.pending.iter().position(&wanted)
            && let Some(event) = self.pending.remove(index)
        {
            return Ok(event);
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.events.recv()).await {
                Ok(Some(event)) => {
                    self.history.push(event.clone());
                    if wanted(&event) {
                        return Ok(event);
                    }
                    self.pending.push_back(event);
                }
                Ok(None) => {
                    return Err(self.failure(&format!("the peer exited while waiting for {what}")));
                }
                Err(_) => {
                    return Err(self.failure(&format!("no {what} event within {timeout:?}")));
                }
            }
        }
    }

    /// Asks the page for its (current call's) media counters and waits (bounded) for them.
    pub async fn stats(&mut self) -> Result<K::Stats> {
        self.send(json!({ "cmd": "stats" })).await?;
        let event = self.wait_for("stats", STATS_TIMEOUT).await?;
        serde_json::from_value(event.clone())
            .with_context(|| format!("{}: malformed stats event {event}", self.label))
    }

    /// Waits (bounded) until the page has received audio packets and decoded audio with
    /// energy from them — what a person hears — and returns the stats that showed it.
    /// Polls, because how soon the `<audio>` element starts playing depends on the machine.
    pub async fn wait_for_decoded_audio(&mut self, timeout: Duration) -> Result<K::Stats> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let stats = self.stats().await?;
            if K::decodes_audio(&stats) {
                return Ok(stats);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(self.failure(&format!(
                    "no decoded audio with energy within {timeout:?}: {stats:?}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Sends `quit` (the page unregisters, or hangs up and goes offline; Chromium closes) and
    /// waits (bounded) for the driver to exit; kills whatever is left after that.
    pub async fn quit(mut self) -> Result<()> {
        let _ = self.send(json!({ "cmd": "quit" })).await;
        self.stdin = None;
        let timeout = K::QUIT_TIMEOUT;
        let exited = tokio::time::timeout(timeout, self.child.wait()).await;
        self.kill_everything();
        match exited {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => Err(anyhow!("{}: waiting for the driver: {error}", self.label)),
            Err(_) => Err(anyhow!(
                "{}: the driver did not exit within {timeout:?}; killed it",
                self.label
            )),
        }
    }

    /// An error that carries what the peer saw: its recent events and the end of its log.
    pub(crate) fn failure(&self, what: &str) -> anyhow::Error {
        let recent: Vec<String> = self
            .history
            .iter()
            .rev()
            .take(25)
            .rev()
            .map(|event| event.to_string())
            .collect();
        anyhow!(
            "{} {}: {what}\nrecent events:\n  {}\nlog {} (last lines):\n{}",
            K::NAME,
            self.label,
            recent.join("\n  "),
            self.log_path.display(),
            log_tail(&self.log_path, 30)
        )
    }

    /// SIGTERM to the driver's group (it closes Chromium), a short bounded wait, then SIGKILL to
    /// the driver's group and to every Chromium group still alive.
    fn kill_everything(&mut self) {
        if let Some(pid) = self.driver_pid {
            // Chromium may have been restarted or not yet recorded: look again.
            for group in chromium_groups_under(pid) {
                if !self.chromium_groups.contains(&group) {
                    self.chromium_groups.push(group);
                }
            }
        }
        let running = matches!(self.child.try_wait(), Ok(None));
        if running && let Some(pid) = self.driver_pid {
            let _ = killpg(Pid::from_raw(pid), Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(3);
            while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
            let _ = self.child.start_kill();
        }
        for group in self.chromium_groups.drain(..) {
            if process_is_chromium(group) {
                let _ = killpg(Pid::from_raw(group), Signal::SIGKILL);
            }
        }
    }
}

impl<K: PeerKind> Drop for ChromiumPeer<K> {
    fn drop(&mut self) {
        self.stdin = None;
        self.kill_everything();
    }
}

pub(crate) fn event_name(event: &Value) -> &str {
    event.get("event").and_then(Value::as_str).unwrap_or("")
}

/// The `t` of an event (ms since the epoch).
pub fn event_time(event: &Value) -> Result<f64> {
    event
        .get("t")
        .and_then(Value::as_f64)
        .ok_or_else(|| anyhow!("event without a numeric `t`: {event}"))
}

/// The last `lines` lines of a log file (for error messages).
pub fn log_tail(path: &Path, lines: usize) -> String {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(error) => format!("(cannot read: {error})"),
    }
}

/// Process groups of the Chromium browsers that are children of `parent`.
fn chromium_groups_under(parent: i32) -> Vec<i32> {
    let mut groups: Vec<i32> = procfs::all_pids()
        .into_iter()
        .filter_map(procfs::stat)
        .filter(|stat| i32::try_from(stat.ppid) == Ok(parent) && stat.comm.contains("chrom"))
        .filter_map(|stat| i32::try_from(stat.pgrp).ok())
        .filter(|group| *group > 1)
        .collect();
    groups.sort_unstable();
    groups.dedup();
    groups
}

/// Whether a Chromium process with this pid still runs (zombies count as gone).
pub fn chromium_is_running(pid: i32) -> bool {
    u32::try_from(pid)
        .ok()
        .and_then(procfs::stat)
        .is_some_and(|stat| stat.comm.contains("chrom") && stat.state != 'Z')
}

fn process_is_chromium(pid: i32) -> bool {
    u32::try_from(pid)
        .ok()
        .and_then(procfs::stat)
        .is_some_and(|stat| stat.comm.contains("chrom"))
}

/// Where the benchmark's peers register.
#[derive(Debug, Clone)]
pub struct SipAccounts {
    /// `ws://127.0.0.1:PORT`.
    pub ws_url: String,
    /// SIP domain, e.g. `localhost`.
    pub domain: String,
    /// (user, password) of the caller.
    pub caller: (String, String),
    /// (user, password) of the callee (auto-answers).
    pub callee: (String, String),
}

/// One browser-to-browser call set-up, in ms from the dial (the caller page's `dialing` event,
/// taken just before `JsSIP.UA.call`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SetupTiming {
    /// Until the caller's `getStats` first shows inbound audio packets.
    pub dial_to_caller_audio_ms: f64,
    /// Until the callee's `getStats` first shows inbound audio packets.
    pub dial_to_callee_audio_ms: f64,
    /// Until audio flows both ways: the later of the two.
    pub dial_to_both_ms: f64,
    /// Until the caller's 2xx arrived (JsSIP `accepted`).
    pub dial_to_answer_ms: f64,
    /// Until the caller's offer was ready (JsSIP waits for complete ICE gathering first).
    pub dial_to_offer_ms: f64,
}

/// Median and range of a set of timings, for printing.
pub fn summarize(values: &[f64]) -> String {
    if values.is_empty() {
        return "no data".to_owned();
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let median = if sorted.len() % 2 == 1 {
        sorted[sorted.len() / 2]
    } else {
        (sorted[sorted.len() / 2 - 1] + sorted[sorted.len() / 2]) / 2.0
    };
    format!(
        "median {median:.0} ms (min {:.0}, max {:.0}, n={})",
        sorted[0],
        sorted[sorted.len() - 1],
        sorted.len()
    )
}

/// [`browser_to_browser_setup_with`] on the test bed's Kamailio, with `carol` calling `dave`.
pub async fn browser_to_browser_setup(
    stack: &crate::stack::Stack,
    rounds: usize,
) -> Result<Vec<SetupTiming>> {
    let kamailio = stack
        .try_kamailio()
        .ok_or_else(|| anyhow!("the stack was started without Kamailio"))?;
    let account = |user: &str| -> Result<(String, String)> {
        let password = kamailio
            .password(user)
            .ok_or_else(|| anyhow!("the stack has no user {user}"))?;
        Ok((user.to_owned(), password.to_owned()))
    };
    let accounts = SipAccounts {
        ws_url: kamailio.ws_url(),
        domain: kamailio.domain().to_owned(),
        caller: account("carol")?,
        callee: account("dave")?,
    };
    let speech_dir = std::env::temp_dir().join("lyrebird-speech-cache");
    browser_to_browser_setup_with(&accounts, rounds, &speech_dir).await
}

/// The reference call set-up figure: two JsSIP browsers (the callee auto-answers) call each
/// other `rounds` times through the SIP proxy; each round is timed from the dial to the first
/// inbound audio packets on each side. Peers are started once and reused, so the figures are
/// for warm browsers, as a person's would be.
pub async fn browser_to_browser_setup_with(
    accounts: &SipAccounts,
    rounds: usize,
    speech_dir: &Path,
) -> Result<Vec<SetupTiming>> {
    let caller_uri = format!("sip:{}@{}", accounts.caller.0, accounts.domain);
    let callee_uri = format!("sip:{}@{}", accounts.callee.0, accounts.domain);
    let caller_wav = crate::speech::phrase_wav(speech_dir, 0)?;
    let callee_wav = crate::speech::phrase_wav(speech_dir, 1)?;
    let (caller, callee) = tokio::join!(
        BrowserPeer::start(
            BrowserPeerOptions::new(&accounts.ws_url, &caller_uri, &accounts.caller.1)
                .fake_audio(caller_wav)
                .name(format!("bench-{}", accounts.caller.0)),
        ),
        BrowserPeer::start(
            BrowserPeerOptions::new(&accounts.ws_url, &callee_uri, &accounts.callee.1)
                .fake_audio(callee_wav)
                .auto_answer(true)
                .name(format!("bench-{}", accounts.callee.0)),
        ),
    );
    let (mut caller, mut callee) = (caller?, callee?);
    let step = Duration::from_secs(15);
    caller.wait_for("registered", step).await?;
    callee.wait_for("registered", step).await?;

    let mut timings = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        caller
            .send(json!({ "cmd": "call", "target": callee_uri }))
            .await?;
        let dial = event_time(&caller.wait_for("dialing", step).await?)?;
        let offer = event_time(&caller.wait_for("local_sdp", step).await?)?;
        let answer = event_time(&caller.wait_for("accepted", step).await?)?;
        let caller_audio = event_time(&caller.wait_for("first_audio", step).await?)?;
        let callee_audio = event_time(&callee.wait_for("first_audio", step).await?)?;
        timings.push(SetupTiming {
            dial_to_caller_audio_ms: caller_audio - dial,
            dial_to_callee_audio_ms: callee_audio - dial,
            dial_to_both_ms: caller_audio.max(callee_audio) - dial,
            dial_to_answer_ms: answer - dial,
            dial_to_offer_ms: offer - dial,
        });
        callee.send(json!({ "cmd": "hangup" })).await?;
        callee.wait_for("ended", step).await?;
        caller.wait_for("ended", step).await?;
        // Let both sides finish closing their peer connections before the next dial.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let (quit_caller, quit_callee) = tokio::join!(caller.quit(), callee.quit());
    quit_caller?;
    quit_callee?;
    Ok(timings)
}
