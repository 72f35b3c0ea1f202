//! The reference Jingle peer: the `stanza` XMPP library in Debian's headless Chromium, making
//! and taking Jingle audio calls over WebRTC, driven from Rust.
//!
//! [`JingleBrowserPeer`] runs `tests/browser/jingle-peer.mjs` (Node + playwright-core) as a
//! child process, in JSON lines like [`crate::browser::BrowserPeer`]: commands on its stdin,
//! events on its stdout (each with `"event"` and `"t"`, wall-clock ms since the Unix epoch,
//! comparable with [`now_ms`]). Its stderr (driver log, page console, every XMPP stanza with
//! `debug`) goes to a log file whose tail is added to every error.
//!
//! What the page does (see `jingle-page.js`): it logs in over RFC 7395 WebSocket, advertises
//! Jingle RTP audio, ICE-UDP, DTLS-SRTP and XEP-0353 in disco#info and entity caps, approves
//! every subscription request, and holds one call at a time. `call` to a bare JID proposes
//! (XEP-0353 `<propose/>` to every device, session-initiate to the device that sends
//! `<proceed/>`, as Conversations does); to a full JID it sends session-initiate directly.
//! Incoming calls ring (`<ringing/>` message or session-info) and wait for `answer` unless
//! `auto_answer` is set.
//!
//! Every wait is bounded. The driver runs in its own process group; Chromium (which Playwright
//! starts in a process group of its own) is found through `/proc` and killed too, so a test that
//! fails or panics leaves no browser behind.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

use crate::browser::{
    PeerStats, START_TIMEOUT, browser_package_dir, log_tail, now_ms, require_browser_tools,
};
use crate::procfs;

/// How long `quit` waits for the driver to hang up, close Chromium and exit before killing both.
const QUIT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a `stats` or `disco` answer may take.
const QUERY_TIMEOUT: Duration = Duration::from_secs(10);

/// How to start a [`JingleBrowserPeer`]; the fields map to `jingle-peer.mjs` arguments.
#[derive(Debug, Clone)]
pub struct JingleBrowserPeerOptions {
    /// `ws://127.0.0.1:PORT/xmpp-websocket` of the XMPP server (RFC 7395).
    pub ws_url: String,
    /// Bare JID to log in as, e.g. `alice@localhost`.
    pub jid: String,
    pub password: String,
    /// The resource to bind; the server picks one when `None`.
    pub resource: Option<String>,
    /// WAV played as the microphone (looped by Chromium). Chromium's fake tone when `None`.
    pub fake_audio: Option<PathBuf>,
    /// Answer incoming calls (proposals and direct session-initiates) as soon as they ring.
    pub auto_answer: bool,
    /// Offer/answer only these audio codecs, in this order (`opus`, `PCMU`, ...); Chromium's
    /// full list when empty (opus, red, G722, PCMU, PCMA, CN, telephone-event).
    pub codecs: Vec<String>,
    /// Every XMPP stanza and stanza's Jingle log into the log file; on by default when
    /// `LYREBIRD_BROWSER_DEBUG` is set.
    pub debug: bool,
    /// Where the log file goes; `$LYREBIRD_TEST_LOG_DIR` or `<tmp>/lyrebird-browser-logs` when
    /// `None`.
    pub log_dir: Option<PathBuf>,
}

impl JingleBrowserPeerOptions {
    pub fn new(
        ws_url: impl Into<String>,
        jid: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        JingleBrowserPeerOptions {
            ws_url: ws_url.into(),
            jid: jid.into(),
            password: password.into(),
            resource: None,
            fake_audio: None,
            auto_answer: false,
            codecs: Vec::new(),
            debug: std::env::var_os("LYREBIRD_BROWSER_DEBUG").is_some(),
            log_dir: None,
        }
    }

    pub fn resource(mut self, resource: impl Into<String>) -> Self {
        self.resource = Some(resource.into());
        self
    }

    pub fn fake_audio(mut self, wav: impl Into<PathBuf>) -> Self {
        self.fake_audio = Some(wav.into());
        self
    }

    pub fn auto_answer(mut self, on: bool) -> Self {
        self.auto_answer = on;
        self
    }

    pub fn codecs<S: Into<String>>(mut self, codecs: impl IntoIterator<Item = S>) -> Self {
        self.codecs = codecs.into_iter().map(Into::into).collect();
        self
    }

    pub fn log_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.log_dir = Some(dir.into());
        self
    }

    /// `alice` or `alice-phone`: used in log file names and errors.
    fn label(&self) -> String {
        let user = self.jid.split('@').next().unwrap_or("peer");
        match &self.resource {
            Some(resource) => format!("{user}-{resource}"),
            None => user.to_owned(),
        }
    }
}

/// Media counters of the current call from the page's `RTCPeerConnection.getStats()` (the
/// `stats` event), with the selected ICE candidate pair.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JingleStats {
    pub t: f64,
    /// The Jingle sid (= the XEP-0353 proposal id) of the current call; `None` without one.
    pub sid: Option<String>,
    /// `proposing`, `proposed`, `proceeded`, `pending`, `accepting`, `active`.
    pub stage: Option<String>,
    pub packets_received: u64,
    pub bytes_received: u64,
    /// Sum over received samples of (level)² × duration (W3C webrtc-stats); rises only while
    /// decoded audio that is not silence plays.
    pub total_audio_energy: f64,
    pub audio_level: f64,
    pub packets_sent: u64,
    /// `audio/opus/48000/2` and the like; `None` before media flows.
    pub codec: Option<String>,
    /// `RTCPeerConnection.iceConnectionState`.
    pub ice_state: Option<String>,
    pub candidate_pair_state: Option<String>,
    /// `host`, `srflx`, `prflx` or `relay` of the selected pair's ends.
    pub local_candidate_type: Option<String>,
    pub remote_candidate_type: Option<String>,
    /// `127.0.0.1:PORT/udp`.
    pub local_address: Option<String>,
    pub remote_address: Option<String>,
}

impl JingleStats {
    /// Whether the page has received audio packets and decoded audio with energy from them —
    /// what a person hears.
    pub fn decodes_audio(&self) -> bool {
        self.packets_received > 25 && self.total_audio_energy > 0.0 && self.audio_level > 0.0
    }

    /// The counters in the SIP browser peer's shape, for code shared with JsSIP tests.
    pub fn to_peer_stats(&self) -> PeerStats {
        PeerStats {
            t: self.t,
            packets_received: self.packets_received,
            bytes_received: self.bytes_received,
            total_audio_energy: self.total_audio_energy,
            audio_level: self.audio_level,
            packets_sent: self.packets_sent,
            codec: self.codec.clone(),
            call: None,
        }
    }
}

/// One stanza client in its own headless Chromium.
pub struct JingleBrowserPeer {
    label: String,
    /// The full JID the server bound (from the `online` event).
    jid: String,
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
}

impl JingleBrowserPeer {
    /// Starts Node + Chromium, loads the page and waits (bounded) until the client is online:
    /// logged in, caps advertised, initial presence sent. Its full JID is [`Self::jid`].
    pub async fn start(options: JingleBrowserPeerOptions) -> Result<JingleBrowserPeer> {
        require_browser_tools()?;
        let package = browser_package_dir();
        let stanza = package.join("node_modules/stanza/package.json");
        if !stanza.exists() {
            bail!(
                "{} is missing: run `npm ci` in {} (./task test does)",
                stanza.display(),
                package.display()
            );
        }
        let label = options.label();
        let log_dir = options
            .log_dir
            .clone()
            .or_else(|| std::env::var_os("LYREBIRD_TEST_LOG_DIR").map(PathBuf::from))
            .unwrap_or_else(|| std::env::temp_dir().join("lyrebird-browser-logs"));
        std::fs::create_dir_all(&log_dir)
            .with_context(|| format!("creating {}", log_dir.display()))?;
        let log_path = log_dir.join(format!(
            "jingle-{label}-{}-{}.log",
            std::process::id(),
            now_ms() as u64
        ));
        let log_file = std::fs::File::create(&log_path)
            .with_context(|| format!("creating {}", log_path.display()))?;

        let mut command = Command::new("node");
        command
            .arg(package.join("jingle-peer.mjs"))
            .arg("--ws")
            .arg(&options.ws_url)
            .arg("--jid")
            .arg(&options.jid)
            .arg("--password")
            .arg(&options.password);
        if let Some(resource) = &options.resource {
            command.arg("--resource").arg(resource);
        }
        if let Some(wav) = &options.fake_audio {
            command.arg("--fake-audio").arg(wav);
        }
        if options.auto_answer {
            command.arg("--auto-answer");
        }
        if !options.codecs.is_empty() {
            command.arg("--codecs").arg(options.codecs.join(","));
        }
        if options.debug {
            command.arg("--debug");
        }
        command
            .current_dir(&package)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            // Its own process group, so it can be signalled as a whole.
            .process_group(0)
            .kill_on_drop(true);
        let mut child = command.spawn().context("spawning node jingle-peer.mjs")?;
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

        let mut peer = JingleBrowserPeer {
            label,
            jid: String::new(),
            child,
            driver_pid,
            chromium_groups: Vec::new(),
            stdin,
            events,
            pending: VecDeque::new(),
            history: Vec::new(),
            log_path,
        };
        peer.wait_for("started", START_TIMEOUT).await?;
        peer.chromium_groups = driver_pid.map(chromium_groups_under).unwrap_or_default();
        // Login, roster and presence take well under a second on loopback.
        let online = peer.wait_for("online", Duration::from_secs(20)).await?;
        peer.jid = online
            .get("jid")
            .and_then(Value::as_str)
            .ok_or_else(|| peer.failure(&format!("`online` without a jid: {online}")))?
            .to_owned();
        Ok(peer)
    }

    /// The full JID the server bound, e.g. `alice@localhost/jingle-1`.
    pub fn jid(&self) -> &str {
        &self.jid
    }

    /// The label used in errors and the log file name.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Process groups of the Chromium instances this peer started (for leak checks).
    pub fn browser_process_groups(&self) -> &[i32] {
        &self.chromium_groups
    }

    /// The driver's stderr log (driver, page console, stanzas with `debug`).
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

    /// Sends one command, e.g. `json!({"cmd": "call", "to": "bob@localhost"})`.
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

    /// Calls `to` and waits (bounded) for the page to start; returns the call's sid. A bare JID
    /// is proposed to every device (XEP-0353), a full JID gets a session-initiate.
    pub async fn call(&mut self, to: &str) -> Result<String> {
        self.send(json!({ "cmd": "call", "to": to })).await?;
        // The page refuses a second call with an `error` instead of `dialing`.
        let dialing = self
            .wait_matching("`dialing` or a refusal", QUERY_TIMEOUT, |e| {
                (event_name(e) == "dialing" && e["to"] == to)
                    || (event_name(e) == "error"
                        && e["detail"].as_str().is_some_and(|d| d.starts_with("call:")))
            })
            .await?;
        if event_name(&dialing) == "error" {
            return Err(self.failure(&format!("calling {to} was refused: {dialing}")));
        }
        dialing["sid"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| self.failure(&format!("`dialing` without a sid: {dialing}")))
    }

    /// Answers the current incoming call (`<proceed/>` to a proposal, session-accept to a
    /// session-initiate). `accepted` follows when the session is active.
    pub async fn answer(&mut self) -> Result<()> {
        self.send(json!({ "cmd": "answer" })).await
    }

    /// Declines the current incoming call (`<reject/>` or session-terminate `decline`).
    pub async fn reject(&mut self) -> Result<()> {
        self.send(json!({ "cmd": "reject" })).await
    }

    /// Ends the current call in whatever stage it is (`<retract/>` while proposing,
    /// session-terminate otherwise).
    pub async fn hangup(&mut self) -> Result<()> {
        self.send(json!({ "cmd": "hangup" })).await
    }

    /// Adds `jid` to the roster and asks for its presence (`subscribed` follows when approved).
    pub async fn add_contact(&mut self, jid: &str) -> Result<()> {
        self.send(json!({ "cmd": "add_contact", "jid": jid }))
            .await?;
        self.wait_for_where("contact_added", QUERY_TIMEOUT, |e| e["jid"] == jid)
            .await
            .map(|_| ())
    }

    /// The disco#info features `jid` (usually a full JID) advertises.
    pub async fn disco_features(&mut self, jid: &str) -> Result<Vec<String>> {
        self.send(json!({ "cmd": "disco", "jid": jid })).await?;
        let info = self
            .wait_for_where("disco_info", QUERY_TIMEOUT, |e| e["jid"] == jid)
            .await?;
        Ok(info["features"]
            .as_array()
            .map(|features| {
                features
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default())
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
    /// e.g. the `ended` of one particular sid.
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
    async fn wait_matching(
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

    /// Asks the page for the current call's media counters and waits (bounded) for them.
    pub async fn stats(&mut self) -> Result<JingleStats> {
        self.send(json!({ "cmd": "stats" })).await?;
        let event = self.wait_for("stats", QUERY_TIMEOUT).await?;
        serde_json::from_value(event.clone())
            .with_context(|| format!("{}: malformed stats event {event}", self.label))
    }

    /// Waits (bounded) until the page has received audio packets and decoded audio with
    /// energy from them, and returns the stats that showed it. Polls, because how soon the
    /// `<audio>` element starts playing depends on the machine.
    pub async fn wait_for_decoded_audio(&mut self, timeout: Duration) -> Result<JingleStats> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let stats = self.stats().await?;
            if stats.decodes_audio() {
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

    /// Hangs up, goes offline, closes Chromium and waits (bounded) for the driver to exit;
    /// kills whatever is left after that.
    pub async fn quit(mut self) -> Result<()> {
        let _ = self.send(json!({ "cmd": "quit" })).await;
        self.stdin = None;
        let exited = tokio::time::timeout(QUIT_TIMEOUT, self.child.wait()).await;
        self.kill_everything();
        match exited {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => Err(anyhow!("{}: waiting for the driver: {error}", self.label)),
            Err(_) => Err(anyhow!(
                "{}: the driver did not exit within {QUIT_TIMEOUT:?}; killed it",
                self.label
            )),
        }
    }

    /// An error that carries what the peer saw: its recent events and the end of its log.
    fn failure(&self, what: &str) -> anyhow::Error {
        let recent: Vec<String> = self
            .history
            .iter()
            .rev()
            .take(25)
            .rev()
            .map(|event| event.to_string())
            .collect();
        anyhow!(
            "jingle browser peer {}: {what}\nrecent events:\n  {}\nlog {} (last lines):\n{}",
            self.label,
            recent.join("\n  "),
            self.log_path.display(),
            log_tail(&self.log_path, 30)
        )
    }

    /// SIGTERM to the driver's group (it hangs up and closes Chromium), a short bounded wait,
    /// then SIGKILL to the driver's group and to every Chromium group still alive.
    fn kill_everything(&mut self) {
        if let Some(pid) = self.driver_pid {
            // Chromium may not have been recorded yet: look again.
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

impl Drop for JingleBrowserPeer {
    fn drop(&mut self) {
        self.stdin = None;
        self.kill_everything();
    }
}

fn event_name(event: &Value) -> &str {
    event.get("event").and_then(Value::as_str).unwrap_or("")
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

fn process_is_chromium(pid: i32) -> bool {
    u32::try_from(pid)
        .ok()
        .and_then(procfs::stat)
        .is_some_and(|stat| stat.comm.contains("chrom"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::{Stack, StackOptions};

    const STEP: Duration = Duration::from_secs(20);

    /// The reference peer proved against itself before it judges Lyrebird: two Chromiums
    /// running stanza call each other through a real Prosody, once with an XEP-0353 proposal to
    /// a bare JID and once with a direct session-initiate to a full JID, and each side must
    /// decode the other's speech.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_browsers_call_each_other_over_jingle() -> Result<()> {
        let stack =
            tokio::task::spawn_blocking(|| Stack::start(StackOptions::prosody_only())).await??;
        let prosody = stack.prosody();
        let domain = prosody.domain().to_owned();
        let speech = crate::test_dir("lyrebird-jingle-speech-")?;
        // StackOptions' default users have the password `<user>-secret`.
        let options = |user: &str, phrase: usize| -> Result<JingleBrowserPeerOptions> {
            Ok(JingleBrowserPeerOptions::new(
                prosody.ws_url(),
                format!("{user}@{domain}"),
                format!("{user}-secret"),
            )
            .resource("jingle-selftest")
            .fake_audio(crate::speech::phrase_wav(speech.path(), phrase)?))
        };
        let (alice, bob) = tokio::join!(
            JingleBrowserPeer::start(options("alice", 0)?),
            JingleBrowserPeer::start(options("bob", 1)?),
        );
        let (mut alice, mut bob) = (alice?, bob?);

        // A roster contact sees the callee's Jingle audio and XEP-0353 support.
        alice.add_contact(&format!("bob@{domain}")).await?;
        let bob_jid = bob.jid().to_owned();
        alice
            .wait_for_where("presence", STEP, |e| e["from"] == bob_jid.as_str())
            .await?;
        let features = alice.disco_features(&bob_jid).await?;
        for feature in [
            "urn:xmpp:jingle:apps:rtp:audio",
            "urn:xmpp:jingle-message:0",
        ] {
            assert!(
                features.iter().any(|f| f == feature),
                "{feature} missing: {features:?}"
            );
        }

        // Proposed to the bare JID, answered, heard both ways, hung up by the caller.
        let sid = alice.call(&format!("bob@{domain}")).await?;
        let incoming = bob.wait_for("incoming", STEP).await?;
        assert_eq!(incoming["via"], "propose");
        assert_eq!(incoming["sid"], sid.as_str());
        alice.wait_for("ringing", STEP).await?;
        bob.answer().await?;
        alice.wait_for("accepted", STEP).await?;
        bob.wait_for("accepted", STEP).await?;
        let heard_by_alice = alice.wait_for_decoded_audio(STEP).await?;
        let heard_by_bob = bob.wait_for_decoded_audio(STEP).await?;
        assert_eq!(heard_by_alice.local_candidate_type.as_deref(), Some("host"));
        eprintln!("proposed call: alice heard {heard_by_alice:?}\nbob heard {heard_by_bob:?}");
        alice.hangup().await?;
        let ended = bob.wait_for("ended", STEP).await?;
        assert_eq!(ended["reason"], "success");
        alice.wait_for("ended", STEP).await?;

        // Direct session-initiate to the full JID, hung up by the callee.
        let alice_jid = alice.jid().to_owned();
        let sid = bob.call(&alice_jid).await?;
        let incoming = alice.wait_for("incoming", STEP).await?;
        assert_eq!(incoming["via"], "jingle");
        assert_eq!(incoming["sid"], sid.as_str());
        alice.answer().await?;
        bob.wait_for("accepted", STEP).await?;
        alice.wait_for_decoded_audio(STEP).await?;
        bob.wait_for_decoded_audio(STEP).await?;
        alice.hangup().await?;
        bob.wait_for("ended", STEP).await?;
        alice.wait_for("ended", STEP).await?;

        // A second call while one rings is refused by the page, not silently queued.
        bob.call(&format!("alice@{domain}")).await?;
        alice.wait_for("incoming", STEP).await?;
        assert!(bob.call(&alice_jid).await.is_err());
        alice.reject().await?;
        let declined = bob.wait_for("ended", STEP).await?;
        assert_eq!(declined["reason"], "decline");

        let (quit_alice, quit_bob) = tokio::join!(alice.quit(), bob.quit());
        quit_alice?;
        quit_bob?;
        tokio::task::spawn_blocking(move || drop(stack)).await?;
        Ok(())
    }
}
