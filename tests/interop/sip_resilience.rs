//! What happens when things go wrong: the server restarts, the password is wrong, a peer sends
//! broken SIP or SDP. Lyrebird must recover by itself where it can, say clearly what failed
//! where it cannot, answer broken input with an error response, and never crash.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use lyrebird_engine::MAX_SIP_TEXT_BYTES;
use serde_json::json;
use testkit::lyrebird::{Lyrebird, LyrebirdOptions, history_calls};
use testkit::rawsip::RawSipClient;
use testkit::stack::{
    PrivateAuthority, Stack, StackOptions, TlsServer, Validity, make_self_signed_certificate,
};

const SETUP: Duration = Duration::from_secs(20);

fn sip_stack() -> Result<Stack> {
    Stack::start(StackOptions::kamailio_only())
}

fn options(stack: &Stack, user: &str, password: &str, dir: &std::path::Path) -> LyrebirdOptions {
    let kamailio = stack.kamailio();
    LyrebirdOptions::for_user(&kamailio.ws_url(), kamailio.domain(), user, password, dir)
}

/// Alice answering every call by herself (so only a refusal can stop one), her address, and
/// Mallory, who writes raw SIP to her through the proxy.
async fn alice_and_mallory(
    stack: &Stack,
    dir: &std::path::Path,
) -> Result<(Lyrebird, String, RawSipClient)> {
    let mut alice = Lyrebird::start(
        options(stack, "alice", "alice-secret", dir)
            .arg("--auto-answer")
            .arg("--silence")
            .arg("--discard"),
    )
    .await?;
    alice.registered(SETUP).await?;
    let target = format!("sip:alice@{}", stack.kamailio().domain());
    let mallory = RawSipClient::connect(&stack.kamailio().ws_url()).await?;
    Ok((alice, target, mallory))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reregisters_by_itself_after_the_server_restarts_and_can_be_called_again() -> Result<()> {
    let mut stack = sip_stack()?;
    let dir = tempfile::tempdir()?;
    let mut alice = Lyrebird::start(
        options(&stack, "alice", "alice-secret", dir.path())
            .arg("--silence")
            .arg("--discard"),
    )
    .await?;
    alice.registered(SETUP).await?;

    // The restarted server has lost every registration (in-memory location table).
    stack.kamailio_mut().restart()?;
    alice
        .wait_for("reconnecting", SETUP, |e| {
            e["event"] == "account_state" && e["state"]["state"] == "reconnecting"
        })
        .await?;
    alice.registered(SETUP).await?;

    let mut bob = Lyrebird::start(
        options(&stack, "bob", "bob-secret", dir.path())
            .arg("--silence")
            .arg("--discard"),
    )
    .await?;
    bob.registered(SETUP).await?;
    let result = bob
        .command(
            json!({"cmd": "call", "target": format!("sip:alice@{}", stack.kamailio().domain())}),
        )
        .await?;
    let call = result["call"].as_u64().unwrap_or_default();
    let incoming = alice.incoming_call(SETUP).await?;
    alice
        .command(json!({"cmd": "answer", "call": incoming}))
        .await?;
    bob.call_state(call, "answered", SETUP).await?;
    bob.command(json!({"cmd": "hangup", "call": call})).await?;
    alice.call_state(incoming, "ended", SETUP).await?;
    alice.quit().await?;
    bob.quit().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_reported_once_with_the_server_status_and_not_retried() -> Result<()> {
    let stack = sip_stack()?;
    let dir = tempfile::tempdir()?;
    let mut alice =
        Lyrebird::start(options(&stack, "alice", "not-the-password", dir.path())).await?;
    let failed = alice
        .wait_for("registration failure", SETUP, |e| {
            e["event"] == "account_state" && e["state"]["state"] == "registration_failed"
        })
        .await?;
    let status = failed["state"]["status"].as_u64().unwrap_or_default();
    ensure!(
        status == 401 || status == 403,
        "expected the server's 401/403, got {failed}"
    );
    ensure!(
        failed["state"]["reason"]
            .as_str()
            .is_some_and(|r| !r.is_empty()),
        "no reason: {failed}"
    );

    // Nothing more happens by itself: no new attempts, no reconnect loop.
    alice.discard_pending();
    let quiet = alice
        .wait_for("anything after the failure", Duration::from_secs(4), |e| {
            e["event"] == "account_state"
        })
        .await;
    ensure!(
        quiet.is_err(),
        "the account kept trying after a definite failure: {quiet:?}"
    );
    let history = alice.quit().await?;
    let attempts = history
        .iter()
        .filter(|e| e["state"]["state"] == "registration_failed")
        .count();
    ensure!(attempts == 1, "registration failed {attempts} times");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_sdp_and_malformed_sip_from_a_peer_get_error_responses_and_no_crash() -> Result<()> {
    let stack = sip_stack()?;
    let dir = tempfile::tempdir()?;
    let (mut alice, target, mut mallory) = alice_and_mallory(&stack, dir.path()).await?;

    // 1. An INVITE whose SDP is garbage: answered 488 Not Acceptable Here, even though alice
    //    answers calls automatically.
    let invite = mallory.request(
        "INVITE",
        &target,
        &["Content-Type: application/sdp"],
        "v=0\r\nthis is not SDP at all\r\nm=audio banana\r\n",
    );
    mallory.send(&invite).await?;
    let response = mallory.response(SETUP, false).await?;
    ensure!(
        response.status == 488,
        "expected 488 for garbage SDP, got:\n{}",
        response.text
    );
    mallory
        .send(&RawSipClient::ack_for(&invite, &response)?)
        .await?;
    alice
        .wait_for("a warning about the SDP", SETUP, |e| {
            e["event"] == "warning" && e["detail"].as_str().is_some_and(|d| d.contains("SDP"))
        })
        .await?;

    // 2. A MESSAGE whose CSeq names another method (RFC 3261 §8.1.1.5): 400 Bad Request.
    let bad_cseq = mallory.request(
        "MESSAGE",
        &target,
        &["CSeq: 1 INVITE", "Content-Type: text/plain"],
        "hi",
    );
    mallory.send(&bad_cseq).await?;
    let response = mallory.response(SETUP, false).await?;
    ensure!(
        response.status == 400,
        "expected 400 for a mismatched CSeq, got:\n{}",
        response.text
    );

    // 3. An INVITE whose SDP is for something that is not audio over WebRTC.
    let video_only = mallory.request(
        "INVITE",
        &target,
        &["Content-Type: application/sdp"],
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=video 9 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n",
    );
    mallory.send(&video_only).await?;
    let response = mallory.response(SETUP, false).await?;
    ensure!(
        response.status == 488,
        "expected 488 for an offer with no usable audio, got:\n{}",
        response.text
    );
    mallory
        .send(&RawSipClient::ack_for(&video_only, &response)?)
        .await?;

    // Alice is alive, still registered, and still takes a good message.
    a_good_message_still_arrives(&mut alice, &mut mallory, &target).await?;
    alice.quit().await?;
    Ok(())
}

/// What a SIP desk phone or baresip offers: plain RTP without ICE or DTLS. Until Lyrebird speaks
/// it, the call is refused (488) before it rings — and not silently: the attempt is on screen
/// and in history with what was wrong (before, it was reported as "cancelled").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_rtp_phones_call_is_refused_and_reported_as_what_it_is() -> Result<()> {
    let stack = sip_stack()?;
    let dir = tempfile::tempdir()?;
    let (mut alice, target, mut mallory) = alice_and_mallory(&stack, dir.path()).await?;
    let invite = mallory.request(
        "INVITE",
        &target,
        &["Content-Type: application/sdp"],
        "v=0\r\no=baresip 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio 4000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n",
    );
    mallory.send(&invite).await?;
    let response = mallory.response(SETUP, false).await?;
    ensure!(
        response.status == 488,
        "expected 488, got:\n{}",
        response.text
    );
    mallory
        .send(&RawSipClient::ack_for(&invite, &response)?)
        .await?;
    let ended = alice
        .wait_for("the refused call", SETUP, |e| {
            e["event"] == "call_state" && e["state"]["state"] == "ended"
        })
        .await?;
    let reason = ended["state"]["reason"].as_str().unwrap_or_default();
    ensure!(
        reason.contains("RTP/AVP") && !reason.contains("cancel"),
        "the call's end says: {ended}"
    );
    ensure!(
        !alice.history.iter().any(|e| e["event"] == "incoming_call"),
        "a call that cannot be taken rang"
    );
    alice.quit().await?;
    let calls = history_calls(&dir.path().join("alice.sqlite3")).await?;
    ensure!(
        calls.len() == 1 && calls[0]["end_reason"] == "failed" && calls[0]["direction"] == "in",
        "alice's history: {calls:?}"
    );
    Ok(())
}

/// Starts a Lyrebird that must refuse the server's certificate: the account stops in
/// "untrusted" with `words` and what to do, and never tries again or connects.
async fn refused_for_good(options: LyrebirdOptions, words: &str) -> Result<()> {
    let mut refused = Lyrebird::start(options).await?;
    let state = refused
        .wait_for("a refused certificate", SETUP, |e| {
            e["event"] == "account_state" && e["state"]["state"] == "untrusted"
        })
        .await?;
    let reason = state["state"]["reason"].as_str().unwrap_or_default();
    ensure!(
        reason.contains(words) && reason.contains("trusted server certificate"),
        "the refusal does not say what is wrong ({words:?}) and what to do: {state}"
    );
    refused.discard_pending();
    let quiet = refused
        .wait_for("anything after the refusal", Duration::from_secs(3), |e| {
            e["event"] == "account_state"
        })
        .await;
    ensure!(
        quiet.is_err(),
        "a refused certificate was retried: {quiet:?}"
    );
    let history = refused.quit().await?;
    ensure!(
        !history.iter().any(|e| {
            let state = &e["state"]["state"];
            state == "registered" || state == "connected" || state == "reconnecting"
        }),
        "connected to, or kept trying, an untrusted server: {history:?}"
    );
    Ok(())
}

/// A server whose certificate comes from an authority the person trusts but has expired, or is
/// made out to another server, is refused for that reason in words (not as "not the
/// certificate you trusted"); from an authority nobody trusts, it is refused as unknown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_or_misnamed_server_certificate_is_refused_with_its_fault_named() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let authority = PrivateAuthority::create(&dir.path().join("authority"))?;
    let (expired_cert, expired_key) = authority.issue("expired", "127.0.0.1", Validity::Expired)?;
    let (misnamed_cert, misnamed_key) =
        authority.issue("misnamed", "elsewhere.invalid", Validity::Current)?;
    let expired = TlsServer::start(dir.path(), &expired_cert, &expired_key)?;
    let misnamed = TlsServer::start(dir.path(), &misnamed_cert, &misnamed_key)?;
    let trusting = authority.certificate_path();
    let cases = [
        (expired.wss_url(), Some(&trusting), "it has expired"),
        (
            misnamed.wss_url(),
            Some(&trusting),
            "it is made out to a different server name",
        ),
        (
            misnamed.wss_url(),
            None,
            "it is not signed by an authority this computer trusts",
        ),
    ];
    for (index, (url, trust, words)) in cases.into_iter().enumerate() {
        let account_dir = dir.path().join(format!("account-{index}"));
        std::fs::create_dir_all(&account_dir)?;
        let mut options =
            LyrebirdOptions::for_user(&url, "localhost", "alice", "alice-secret", &account_dir);
        if let Some(trust) = trust {
            options = options.arg("--trust-cert").arg(trust.to_string_lossy());
        }
        refused_for_good(options, &format!("certificate is not trusted: {words}")).await?;
    }
    Ok(())
}

/// RFC 7118 over TLS: a server whose certificate chains to no system root is refused, with the
/// reason in words; once the person trusts that certificate explicitly, the same account
/// registers over wss:// and is reachable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_self_signed_wss_server_is_refused_unless_its_certificate_is_trusted() -> Result<()> {
    let stack = sip_stack()?;
    let dir = tempfile::tempdir()?;
    let kamailio = stack.kamailio();
    let (untrusting_dir, trusting_dir) =
        (dir.path().join("untrusting"), dir.path().join("trusting"));
    std::fs::create_dir_all(&untrusting_dir)?;
    std::fs::create_dir_all(&trusting_dir)?;
    let over_tls = |dir: &std::path::Path| {
        LyrebirdOptions::for_user(
            &kamailio.wss_url(),
            kamailio.domain(),
            "alice",
            "alice-secret",
            dir,
        )
    };

    // Untrusted, and pinned to a certificate that is not the server's: both refusals are final
    // (a certificate does not change by retrying) and say what is wrong and what to do.
    let other_certificate = dir.path().join("other-cert.pem");
    make_self_signed_certificate(&other_certificate, &dir.path().join("other-key.pem"))?;
    let mismatched_dir = dir.path().join("mismatched");
    std::fs::create_dir_all(&mismatched_dir)?;
    let refusals = [
        (
            over_tls(&untrusting_dir),
            "certificate is not trusted: it is self-signed",
        ),
        (
            over_tls(&mismatched_dir)
                .arg("--trust-cert")
                .arg(other_certificate.to_string_lossy()),
            "does not match the certificate you trusted",
        ),
    ];
    for (options, words) in refusals {
        refused_for_good(options, words).await?;
    }

    let certificate = kamailio.certificate_path();
    let mut alice = Lyrebird::start(
        over_tls(&trusting_dir)
            .arg("--trust-cert")
            .arg(certificate.to_string_lossy()),
    )
    .await?;
    alice.registered(SETUP).await?;
    let mut bob = Lyrebird::start(options(&stack, "bob", "bob-secret", dir.path())).await?;
    bob.registered(SETUP).await?;
    bob.command(json!({"cmd": "message", "target": format!("sip:alice@{}", kamailio.domain()), "body": "over TLS?"}))
        .await?;
    let got = alice
        .wait_for("a message over wss", SETUP, |e| {
            e["event"] == "message_received"
        })
        .await?;
    ensure!(got["body"] == "over TLS?", "{got}");
    alice.quit().await?;
    bob.quit().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_too_long_for_one_message_is_refused_and_signalling_goes_on() -> Result<()> {
    let stack = sip_stack()?;
    let dir = tempfile::tempdir()?;
    let mut alice = Lyrebird::start(options(&stack, "alice", "alice-secret", dir.path())).await?;
    alice.registered(SETUP).await?;
    let mut bob = Lyrebird::start(options(&stack, "bob", "bob-secret", dir.path())).await?;
    bob.registered(SETUP).await?;
    let to_alice = format!("sip:alice@{}", stack.kamailio().domain());

    // The longest text that may go as one MESSAGE passes Kamailio intact.
    let longest = "x".repeat(MAX_SIP_TEXT_BYTES);
    bob.command(json!({"cmd": "message", "target": to_alice, "body": longest}))
        .await?;
    let got = alice
        .wait_for("the longest text message", SETUP, |e| {
            e["event"] == "message_received"
        })
        .await?;
    ensure!(
        got["body"].as_str() == Some(longest.as_str()),
        "the longest text arrived changed ({} bytes)",
        got["body"].as_str().map_or(0, str::len)
    );

    // One byte more is refused with words a person can act on, and nothing is sent.
    let refused = bob
        .command(json!({"cmd": "message", "target": to_alice, "body": format!("{longest}y")}))
        .await;
    let error = format!(
        "{:#}",
        refused.err().context("a too long text was accepted")?
    );
    ensure!(
        error.contains("send it as a file"),
        "unclear refusal: {error}"
    );

    // The flow was never cut: the next message arrives and nobody reconnected.
    bob.command(json!({"cmd": "message", "target": to_alice, "body": "still here"}))
        .await?;
    alice
        .wait_for("the message after the refusal", SETUP, |e| {
            e["event"] == "message_received" && e["body"] == "still here"
        })
        .await?;
    for peer in [alice, bob] {
        let history = peer.quit().await?;
        ensure!(
            !history
                .iter()
                .any(|e| e["state"]["state"] == "reconnecting"),
            "the signalling flow was interrupted: {history:?}"
        );
    }
    Ok(())
}

/// After hostile input from Mallory, a well-formed MESSAGE to Alice is answered 200 and shown
/// to her: she is alive, registered and reachable.
async fn a_good_message_still_arrives(
    alice: &mut Lyrebird,
    mallory: &mut RawSipClient,
    target: &str,
) -> Result<()> {
    let fine = mallory.request(
        "MESSAGE",
        target,
        &["Content-Type: text/plain"],
        "still there?",
    );
    mallory.send(&fine).await?;
    let response = mallory.response(SETUP, false).await?;
    ensure!(
        response.status == 200,
        "a well-formed MESSAGE after the bad ones: {}",
        response.text
    );
    let got = alice
        .wait_for("the good message", SETUP, |e| {
            e["event"] == "message_received"
        })
        .await?;
    ensure!(got["body"] == "still there?", "{got}");
    Ok(())
}

/// Offers with absurd values — hundreds of media lines (as many as fit the proxy's 16 KiB),
/// negative and out-of-range ports and payload types, a 10 kB fmtp, a fingerprint that is not
/// hex — each get a final refusal, and the callee stays registered and reachable. (The parsers themselves are fuzzed: crates/fuzz.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absurd_sdp_values_are_refused_and_nothing_breaks() -> Result<()> {
    let stack = sip_stack()?;
    let dir = tempfile::tempdir()?;
    let (mut alice, target, mut mallory) = alice_and_mallory(&stack, dir.path()).await?;
    let head = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n";
    let audio = "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n";
    let cases = [
        ("200 media lines", format!("{head}{}", audio.repeat(200))),
        (
            "a negative port",
            format!("{head}m=audio -5 UDP/TLS/RTP/SAVPF 111\r\n"),
        ),
        (
            "a port past 65535",
            format!("{head}m=audio 99999 UDP/TLS/RTP/SAVPF 111\r\n"),
        ),
        (
            "payload type 300",
            format!("{head}m=audio 9 UDP/TLS/RTP/SAVPF 300\r\na=rtpmap:300 opus/48000/2\r\n"),
        ),
        (
            "a 10 kB fmtp",
            format!("{head}{audio}a=fmtp:111 {}\r\n", "x".repeat(10_000)),
        ),
        (
            "a fingerprint that is not hex",
            format!(
                "{head}{audio}a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=fingerprint:sha-256 ZZ:ZZ:{}\r\na=setup:actpass\r\na=rtcp-mux\r\n",
                "Z".repeat(5_000)
            ),
        ),
        (
            "a rate of zero and a billion channels",
            format!("{head}m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/0/1000000000\r\n"),
        ),
    ];
    for (what, sdp) in &cases {
        let invite = mallory.request("INVITE", &target, &["Content-Type: application/sdp"], sdp);
        mallory.send(&invite).await?;
        let response = mallory.response(SETUP, false).await?;
        ensure!(
            response.status >= 400,
            "an offer with {what} was not refused:\n{}",
            response.text
        );
        mallory
            .send(&RawSipClient::ack_for(&invite, &response)?)
            .await?;
    }
    a_good_message_still_arrives(&mut alice, &mut mallory, &target).await?;
    let history = alice.quit().await?;
    ensure!(
        !history
            .iter()
            .any(|e| e["event"] == "call_state" && e["state"]["state"] == "answered"),
        "an absurd offer was answered: {history:?}"
    );
    Ok(())
}
