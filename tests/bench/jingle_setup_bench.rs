//! XMPP call set-up benchmark: prints figures, asserts nothing. Run in a loopback namespace with
//! `$CARGO_TARGET_DIR/debug/bench-jingle [ROUNDS]` (BENCHMARKS.md says how the published figures
//! were made).
//!
//! Set-up of a Jingle call through one Prosody on loopback, from the dial to the first audio
//! packet received on BOTH sides, each call proposed to the callee's bare JID (XEP-0353) and
//! answered at once: Lyrebird → a browser XMPP user (npm `stanza` in Chromium), and, in the same
//! run, the reference: the same browser library calling the same browser user. Also Lyrebird →
//! Lyrebird.
//!
//! It also prints where the answering browser's time goes in both browser figures (each step's
//! median, ms after the dial): the part from the session-initiate reaching the browser to its
//! first audio is the browser's own, and bounds from below what any caller can reach.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::json;
use testkit::browser::{event_time, now_ms, summarize};
use testkit::jingle_browser::{JingleBrowserPeer, JingleBrowserPeerOptions};
use testkit::json_lines::{JsonLines, event_ms};
use testkit::speech::phrase_wav;
use testkit::stack::{Stack, StackOptions};
use testkit::xmpp::{online, start_lyrebird};

const STEP: Duration = Duration::from_secs(20);

#[tokio::main]
async fn main() -> Result<()> {
    let rounds: usize = std::env::args()
        .nth(1)
        .map(|r| r.parse())
        .transpose()?
        .unwrap_or(10);
    let stack = Stack::start(StackOptions::prosody_only())?;
    let dir = testkit::test_dir("lyrebird-bench-jingle-")?;
    let speech = phrase_wav(dir.path(), 1)?;
    let domain = stack.xmpp().domain().to_owned();
    println!("# Lyrebird XMPP call set-up benchmark ({rounds} rounds each, Prosody on loopback)\n");

    // The callee for the browser figures: a browser that answers every call at once.
    let mut callee = browser(&stack, "bob", &speech, true, dir.path()).await?;
    let callee_jid = format!("bob@{domain}");

    let mut alice = lyrebird(&stack, "alice", &speech, &[], dir.path()).await?;
    let mut from_lyrebird = Vec::with_capacity(rounds);
    let mut callee_steps_lyrebird = CalleeSteps::default();
    for _ in 0..rounds {
        let mark = callee.history().len();
        let dial = now_ms();
        let call = alice
            .command(json!({"cmd": "call", "target": format!("xmpp:{callee_jid}")}))
            .await?["call"]
            .as_u64()
            .context("no call id")?;
        let ours = event_ms(&alice.call_state(call, "audio_flowing", STEP).await?)?;
        let theirs = event_time(&callee.wait_for("first_audio", STEP).await?)?;
        from_lyrebird.push(ours.max(theirs) - dial);
        callee_steps_lyrebird.add(&callee.history()[mark..], dial);
        alice
            .command(json!({"cmd": "hangup", "call": call}))
            .await?;
        alice.call_state(call, "ended", STEP).await?;
        callee.wait_for("ended", STEP).await?;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    alice.quit().await?;

    let mut caller = browser(&stack, "carol", &speech, false, dir.path()).await?;
    let mut from_browser = Vec::with_capacity(rounds);
    let mut callee_steps_browser = CalleeSteps::default();
    for _ in 0..rounds {
        let mark = callee.history().len();
        let dial = now_ms();
        caller.call(&callee_jid).await?;
        let ours = event_time(&caller.wait_for("first_audio", STEP).await?)?;
        let theirs = event_time(&callee.wait_for("first_audio", STEP).await?)?;
        from_browser.push(ours.max(theirs) - dial);
        callee_steps_browser.add(&callee.history()[mark..], dial);
        caller.hangup().await?;
        caller.wait_for("ended", STEP).await?;
        callee.wait_for("ended", STEP).await?;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    caller.quit().await?;
    callee.quit().await?;

    let mut bob = lyrebird(&stack, "bob", &speech, &["--auto-answer"], dir.path()).await?;
    let mut dave = lyrebird(&stack, "dave", &speech, &[], dir.path()).await?;
    // Bob answers roster contacts only.
    bob.command(json!({"cmd": "add_contact", "jid": format!("dave@{domain}")}))
        .await?;
    bob.wait_for("dave in the roster", STEP, |e| {
        e["event"] == "contact" && e["jid"] == format!("dave@{domain}")
    })
    .await?;
    let mut between_lyrebirds = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let dial = now_ms();
        let call = dave
            .command(json!({"cmd": "call", "target": format!("xmpp:bob@{domain}")}))
            .await?["call"]
            .as_u64()
            .context("no call id")?;
        let ours = event_ms(&dave.call_state(call, "audio_flowing", STEP).await?)?;
        let answered = bob.incoming_call(STEP).await?;
        let theirs = event_ms(&bob.call_state(answered, "audio_flowing", STEP).await?)?;
        between_lyrebirds.push(ours.max(theirs) - dial);
        dave.command(json!({"cmd": "hangup", "call": call})).await?;
        dave.call_state(call, "ended", STEP).await?;
        bob.call_state(answered, "ended", STEP).await?;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    dave.quit().await?;
    bob.quit().await?;

    println!("| dial → first audio received on both sides (Jingle, XEP-0353) | |");
    println!("|---|---|");
    println!(
        "| Lyrebird → Chromium/stanza | {} |",
        summarize(&from_lyrebird)
    );
    println!(
        "| Chromium/stanza → Chromium/stanza (reference) | {} |",
        summarize(&from_browser)
    );
    println!(
        "| Lyrebird → Lyrebird | {} |",
        summarize(&between_lyrebirds)
    );
    println!(
        "\n| the answering browser's steps, ms after the dial (median) | called by Lyrebird | called by a browser |"
    );
    println!("|---|---|---|");
    for (i, step) in CALLEE_STEPS.iter().enumerate() {
        println!(
            "| {} | {} | {} |",
            step.label,
            callee_steps_lyrebird.median(i),
            callee_steps_browser.median(i)
        );
    }
    println!(
        "| browser's own share: session-initiate arrived → first audio | {} | {} |",
        callee_steps_lyrebird.own_share(),
        callee_steps_browser.own_share()
    );
    Ok(())
}

/// A set-up step of the answering browser: its event name and, for `ice_state`, the state.
struct CalleeStep {
    label: &'static str,
    event: &'static str,
    state: Option<&'static str>,
}

const CALLEE_STEPS: [CalleeStep; 5] = [
    CalleeStep {
        label: "proposal arrived (XEP-0353)",
        event: "incoming",
        state: None,
    },
    CalleeStep {
        label: "session-initiate arrived",
        event: "session_initiate",
        state: None,
    },
    CalleeStep {
        label: "session-accept sent",
        event: "answer_sent",
        state: None,
    },
    CalleeStep {
        label: "ICE connected",
        event: "ice_state",
        state: Some("connected"),
    },
    CalleeStep {
        label: "first audio received",
        event: "first_audio",
        state: None,
    },
];

/// Each call's times of [`CALLEE_STEPS`], ms after its dial.
#[derive(Default)]
struct CalleeSteps {
    calls: Vec<[Option<f64>; CALLEE_STEPS.len()]>,
}

impl CalleeSteps {
    fn add(&mut self, events: &[serde_json::Value], dial: f64) {
        let mut times = [None; CALLEE_STEPS.len()];
        for (time, step) in times.iter_mut().zip(&CALLEE_STEPS) {
            *time = events
                .iter()
                .find(|e| {
                    e["event"] == step.event && step.state.is_none_or(|state| e["state"] == state)
                })
                .and_then(|e| event_time(e).ok())
                .map(|t| t - dial);
        }
        self.calls.push(times);
    }

    fn median(&self, step: usize) -> String {
        median(self.calls.iter().filter_map(|c| c[step]).collect())
    }

    fn own_share(&self) -> String {
        let (initiate, audio) = (1, CALLEE_STEPS.len() - 1);
        median(
            self.calls
                .iter()
                .filter_map(|c| Some(c[audio]? - c[initiate]?))
                .collect(),
        )
    }
}

fn median(mut values: Vec<f64>) -> String {
    if values.is_empty() {
        return "–".into();
    }
    values.sort_by(f64::total_cmp);
    format!("{:.0} ms", values[values.len() / 2])
}

async fn browser(
    stack: &Stack,
    user: &str,
    speech: &Path,
    auto_answer: bool,
    dir: &Path,
) -> Result<JingleBrowserPeer> {
    JingleBrowserPeer::start(
        JingleBrowserPeerOptions::new(
            stack.xmpp().ws_url(),
            format!("{user}@{}", stack.xmpp().domain()),
            format!("{user}-secret"),
        )
        .resource("bench")
        .fake_audio(speech)
        .auto_answer(auto_answer)
        .log_dir(dir),
    )
    .await
}

async fn lyrebird(
    stack: &Stack,
    user: &str,
    speech: &Path,
    extra: &[&str],
    dir: &Path,
) -> Result<JsonLines> {
    let play = speech.to_string_lossy().into_owned();
    let mut args = vec!["--bind", "127.0.0.1", "--play", &play, "--discard"];
    args.extend_from_slice(extra);
    let mut peer = start_lyrebird(
        &stack.xmpp().ws_url(),
        &format!("{user}@{}", stack.xmpp().domain()),
        &format!("{user}-secret"),
        &dir.join(format!("{user}.sqlite3")),
        &dir.join(format!("{user}.log")),
        &args,
    )?;
    online(&mut peer, STEP).await?;
    Ok(peer)
}
