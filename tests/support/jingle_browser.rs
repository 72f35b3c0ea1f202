//! The reference Jingle peer: the `stanza` XMPP library in Debian's headless Chromium, making
//! and taking Jingle audio calls over WebRTC, driven from Rust.
//!
//! [`JingleBrowserPeer`] runs `tests/browser/jingle-peer.mjs` (Node + playwright-core) as a
//! child process, in JSON lines like [`crate::browser::BrowserPeer`]: commands on its stdin,
//! events on its stdout (each with `"event"` and `"t"`, wall-clock ms since the Unix epoch,
//! comparable with [`crate::browser::now_ms`]). Its stderr (driver log, page console, every XMPP
//! stanza with `debug`) goes to a log file whose tail is added to every error.
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
//! fails or panics leaves no browser behind: that is [`ChromiumPeer`], which the SIP browser
//! peer is too.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::browser::{
    ChromiumPeer, PeerKind, PeerStats, event_name, new_log_path, require_browser_tools,
    require_package_files,
};

/// How long the page may take to answer `call`, `add_contact` or `disco`.
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
            ..PeerStats::default()
        }
    }
}

/// One stanza client in its own headless Chromium.
pub type JingleBrowserPeer = ChromiumPeer<Jingle>;

/// The [`PeerKind`] of [`JingleBrowserPeer`]: `jingle-peer.mjs`, stanza.
pub enum Jingle {}

impl PeerKind for Jingle {
    type Stats = JingleStats;
    const NAME: &'static str = "jingle browser peer";
    // Hanging up, going offline and closing Chromium.
    const QUIT_TIMEOUT: Duration = Duration::from_secs(10);

    fn decodes_audio(stats: &JingleStats) -> bool {
        stats.decodes_audio()
    }
}

impl ChromiumPeer<Jingle> {
    /// Starts Node + Chromium, loads the page and waits (bounded) until the client is online:
    /// logged in, caps advertised, initial presence sent. Its full JID is [`Self::jid`].
    pub async fn start(options: JingleBrowserPeerOptions) -> Result<JingleBrowserPeer> {
        require_browser_tools()?;
        require_package_files(&["node_modules/stanza/package.json"])?;
        let label = options.label();
        let log_path = new_log_path(options.log_dir.as_deref(), &format!("jingle-{label}"))?;
        let mut peer = ChromiumPeer::spawn("jingle-peer.mjs", label, log_path, |command| {
            command
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
        })
        .await?;
        // Login, roster and presence take well under a second on loopback.
        let online = peer.wait_for("online", Duration::from_secs(20)).await?;
        if online.get("jid").and_then(Value::as_str).is_none() {
            return Err(peer.failure(&format!("`online` without a jid: {online}")));
        }
        Ok(peer)
    }

    /// The full JID the server bound, e.g. `alice@localhost/jingle-1` (from the first `online`
    /// event, which [`Self::start`] waits for).
    pub fn jid(&self) -> &str {
        self.seen("online")
            .and_then(|online| online.get("jid"))
            .and_then(Value::as_str)
            .unwrap_or_default()
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
