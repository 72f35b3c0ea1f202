//! Calls that never get answered: how long each side waits, how the call ends, what goes on
//! the wire, and what history keeps. Unanswered calls never connect media, so none needs ICE;
//! their audio is silence and a discarding sink, so none needs a sound card.

use std::time::Duration;

use anyhow::{Result, ensure};
use lyrebird_engine::{CallId, CallState, EngineEvent};
use lyrebird_sip::message::{Message, Method};
use lyrebird_store::{CallEndReason, Direction};

use crate::support::{
    AOR, Client, ClockHold, Peer, assert_close, gap, quiet_audio, response_to, text,
};

const MINUTE: Duration = Duration::from_secs(60);
const CALLEE: &str = "sip:bob@lyrebird.test";

/// The peer sees no request of `method` among what it has seen so far.
fn never_sent(peer: &mut Peer, method: &Method) -> Result<()> {
    let sent = peer
        .catch_up()
        .iter()
        .filter(|s| s.request(method).is_some())
        .count();
    ensure!(sent == 0, "{sent} {method} request(s) sent");
    Ok(())
}

/// Whether `event` says `call` is over.
fn ends(event: &EngineEvent, call: CallId) -> bool {
    matches!(
        event,
        EngineEvent::CallState { call: c, state: CallState::Ended { .. }, .. } if *c == call
    )
}

#[tokio::test(start_paused = true)]
async fn an_invite_without_any_response_ends_after_timer_b() -> Result<()> {
    let mut peer = Peer::start(600).await?;
    let mut client = Client::start(&peer).await?;
    client.registered(MINUTE).await?;

    // The offer is built on the media thread, in real time; the clock waits for the INVITE.
    let hold = ClockHold::new();
    let call = client
        .engine
        .call(client.account, CALLEE, quiet_audio())
        .await?;
    let (invited_at, _, _) = peer.request(Method::Invite, MINUTE).await?;
    hold.release().await?;
    // The server withholds every response, 100 Trying included.
    let (ended_at, reason, status) = client.ended(call, 2 * MINUTE).await?;
    // RFC 3261 §17.1.1.2: Timer B, 64*T1 = 32 s on any transport.
    assert_close(
        gap(invited_at, ended_at)?,
        Duration::from_secs(32),
        "unanswered INVITE given up",
    )?;
    ensure!(status == Some(408), "ended with status {status:?}");
    ensure!(reason.contains("Request Timeout"), "reason shown: {reason}");
    // With no provisional there was nothing to CANCEL (§9.1).
    never_sent(&mut peer, &Method::Cancel)?;

    let record = client.last_call().await?;
    ensure!(record.direction == Direction::Out, "{record:?}");
    ensure!(record.peer_address == CALLEE, "{record:?}");
    ensure!(record.answered_at_ms.is_none(), "{record:?}");
    ensure!(
        record.end_reason == Some(CallEndReason::Failed),
        "history says {:?}",
        record.end_reason
    );
    Ok(())
}

/// An INVITE from Carol to our registered Contact, with an audio offer.
fn incoming_invite(contact: &str) -> String {
    let offer = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
                 m=audio 9 UDP/TLS/RTP/SAVPF 0\r\nc=IN IP4 127.0.0.1\r\n\
                 a=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n";
    format!(
        "INVITE {contact} SIP/2.0\r\n\
         Via: SIP/2.0/WS peer.lyrebird.test;branch=z9hG4bK-carol-1\r\n\
         Max-Forwards: 70\r\n\
         From: \"Carol\" <sip:carol@lyrebird.test>;tag=carol-tag\r\n\
         To: <{AOR}>\r\n\
         Call-ID: carol-call-1@lyrebird.test\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:carol@peer.lyrebird.test;transport=ws>\r\n\
         Content-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{offer}",
        offer.len()
    )
}

/// §9.1: the CANCEL of `invite` (same Request-URI, Via, From, To, Call-ID and CSeq number).
fn cancel_of(invite: &str) -> String {
    invite
        .split("\r\n\r\n")
        .next()
        .unwrap_or_default()
        .lines()
        .filter(|line| !line.starts_with("Content-") && !line.starts_with("Contact:"))
        .map(|line| match line {
            l if l.starts_with("INVITE ") => l.replacen("INVITE", "CANCEL", 1),
            "CSeq: 1 INVITE" => "CSeq: 1 CANCEL".to_owned(),
            l => l.to_owned(),
        })
        .chain(["Content-Length: 0".to_owned(), String::new(), String::new()])
        .collect::<Vec<_>>()
        .join("\r\n")
}

/// §17.1.1.3: the ACK of a non-2xx final response, on the INVITE's branch, with the response's
/// To.
fn ack_of(invite: &str, response: &Message) -> String {
    let to = response.header("To").unwrap_or_default();
    cancel_of(invite)
        .replacen("CANCEL", "ACK", 1)
        .replace("CSeq: 1 CANCEL", "CSeq: 1 ACK")
        .replace(&format!("To: <{AOR}>"), &format!("To: {to}"))
}

#[tokio::test(start_paused = true)]
async fn a_ringing_call_the_caller_cancels_ends_as_cancelled_by_the_caller() -> Result<()> {
    let mut peer = Peer::start(600).await?;
    let mut client = Client::start(&peer).await?;
    client.registered(MINUTE).await?;
    let (_, flow, register) = peer.request(Method::Register, MINUTE).await?;
    let contact = register
        .contacts()?
        .into_iter()
        .next()
        .map(|c| c.uri.to_string())
        .unwrap_or_default();

    let invite = incoming_invite(&contact);
    peer.send(flow, invite.clone())?;
    let account = client.account;
    let (_, call) = client
        .wait_for(MINUTE, "incoming call", |e| match e {
            EngineEvent::IncomingCall {
                account: a, call, ..
            } if *a == account => Some(*call),
            _ => None,
        })
        .await?;
    peer.response(Method::Invite, 180, MINUTE).await?;

    // Nobody answers for a minute and a half: the call keeps ringing, nothing gives up on it.
    tokio::time::sleep(Duration::from_secs(90)).await;
    let ended_early = client.catch_up().iter().any(|(_, e)| ends(e, call));
    ensure!(!ended_early, "the ringing call ended by itself");

    let cancelled_at = tokio::time::Instant::now();
    peer.send(flow, cancel_of(&invite))?;
    peer.response(Method::Cancel, 200, MINUTE).await?;
    let (_, terminated) = peer.response(Method::Invite, 487, MINUTE).await?;
    peer.send(flow, ack_of(&invite, &terminated))?;

    let (ended_at, reason, status) = client.ended(call, MINUTE).await?;
    assert_close(
        gap(cancelled_at, ended_at)?,
        Duration::ZERO,
        "ended on the CANCEL",
    )?;
    ensure!(
        reason == "cancelled by the caller",
        "reason shown: {reason}"
    );
    ensure!(status == Some(487), "ended with status {status:?}");

    let record = client.last_call().await?;
    ensure!(record.direction == Direction::In, "{record:?}");
    ensure!(
        record.peer_address == "sip:carol@lyrebird.test",
        "{record:?}"
    );
    ensure!(record.missed, "not counted as missed: {record:?}");
    ensure!(
        record.end_reason == Some(CallEndReason::RemoteCancel),
        "history says {:?}",
        record.end_reason
    );
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn hanging_up_before_any_provisional_cancels_on_the_first_one() -> Result<()> {
    let mut peer = Peer::start(600).await?;
    let mut client = Client::start(&peer).await?;
    client.registered(MINUTE).await?;

    let hold = ClockHold::new();
    let call = client
        .engine
        .call(client.account, CALLEE, quiet_audio())
        .await?;
    let (_, flow, invite) = peer.request(Method::Invite, MINUTE).await?;
    hold.release().await?;

    // The person gives up before even 100 Trying: the call is over for them at once.
    let hung_up_at = tokio::time::Instant::now();
    client.engine.hangup(call).await?;
    let (ended_at, reason, status) = client.ended(call, MINUTE).await?;
    assert_close(
        gap(hung_up_at, ended_at)?,
        Duration::ZERO,
        "ended on hang-up",
    )?;
    ensure!(reason == "cancelled", "reason shown: {reason}");
    ensure!(status.is_none(), "ended with status {status:?}");

    // §9.1: no CANCEL may go out before a provisional response; wait well past a round trip.
    tokio::time::sleep(Duration::from_secs(5)).await;
    never_sent(&mut peer, &Method::Cancel)?;

    // The first provisional, 100 Trying, lets it go out at once.
    let trying_at = tokio::time::Instant::now();
    peer.send(flow, text(&response_to(&invite, 100, "Trying")))?;
    let (cancel_at, _, cancel) = peer.request(Method::Cancel, MINUTE).await?;
    assert_close(
        gap(trying_at, cancel_at)?,
        Duration::ZERO,
        "CANCEL on the 100",
    )?;
    ensure!(
        cancel.top_via()?.branch() == invite.top_via()?.branch(),
        "CANCEL on another branch than its INVITE"
    );
    ensure!(
        cancel.call_id()? == invite.call_id()?,
        "CANCEL of another call"
    );
    ensure!(
        cancel.cseq()?.seq == invite.cseq()?.seq && cancel.cseq()?.method == Method::Cancel,
        "CANCEL CSeq {:?}",
        cancel.header("CSeq")
    );

    // The callee's side confirms; the INVITE transaction ends with 487 and our ACK.
    peer.send(flow, text(&response_to(&cancel, 200, "OK")))?;
    peer.send(flow, text(&response_to(&invite, 487, "Request Terminated")))?;
    peer.request(Method::Ack, MINUTE).await?;

    let record = client.last_call().await?;
    ensure!(record.direction == Direction::Out, "{record:?}");
    ensure!(
        record.end_reason == Some(CallEndReason::LocalCancel),
        "history says {:?}",
        record.end_reason
    );
    // Nothing more came of it: the end was shown once.
    let endings = client
        .catch_up()
        .iter()
        .filter(|(_, e)| ends(e, call))
        .count();
    ensure!(endings == 1, "the call ended {endings} times");
    Ok(())
}

/// The caller's CANCEL never comes (lost with their server): the call stops ringing after two
/// minutes, the caller is told 480 Temporarily Unavailable, and history keeps a missed call.
#[tokio::test(start_paused = true)]
async fn an_incoming_call_nobody_answers_stops_ringing_at_its_limit() -> Result<()> {
    let mut peer = Peer::start(600).await?;
    let mut client = Client::start(&peer).await?;
    client.registered(MINUTE).await?;
    let (_, flow, register) = peer.request(Method::Register, MINUTE).await?;
    let contact = register
        .contacts()?
        .into_iter()
        .next()
        .map(|c| c.uri.to_string())
        .unwrap_or_default();

    let invite = incoming_invite(&contact);
    let invited_at = tokio::time::Instant::now();
    peer.send(flow, invite.clone())?;
    let account = client.account;
    let (_, call) = client
        .wait_for(MINUTE, "incoming call", |e| match e {
            EngineEvent::IncomingCall {
                account: a, call, ..
            } if *a == account => Some(*call),
            _ => None,
        })
        .await?;
    peer.response(Method::Invite, 180, MINUTE).await?;

    let (declined_at, declined) = peer.response(Method::Invite, 480, 5 * MINUTE).await?;
    assert_close(
        gap(invited_at, declined_at)?,
        2 * MINUTE,
        "ringing given up",
    )?;
    peer.send(flow, ack_of(&invite, &declined))?;
    let (ended_at, reason, _) = client.ended(call, MINUTE).await?;
    assert_close(
        gap(declined_at, ended_at)?,
        Duration::ZERO,
        "ended on the 480",
    )?;
    ensure!(reason == "no answer after 120 s", "reason shown: {reason}");

    let record = client.last_call().await?;
    ensure!(record.direction == Direction::In, "{record:?}");
    ensure!(record.missed, "not counted as missed: {record:?}");
    ensure!(
        record.end_reason == Some(CallEndReason::NoAnswer),
        "history says {:?}",
        record.end_reason
    );
    Ok(())
}

/// A callee's server that lets a call ring for ever (no Timer C): we give up after three
/// minutes with CANCEL, and the call is kept as not answered.
#[tokio::test(start_paused = true)]
async fn an_outgoing_call_that_rings_on_is_cancelled_at_its_limit() -> Result<()> {
    let mut peer = Peer::start(600).await?;
    let mut client = Client::start(&peer).await?;
    client.registered(MINUTE).await?;

    let hold = ClockHold::new();
    let call = client
        .engine
        .call(client.account, CALLEE, quiet_audio())
        .await?;
    let (invited_at, flow, invite) = peer.request(Method::Invite, MINUTE).await?;
    hold.release().await?;
    peer.send(flow, text(&response_to(&invite, 180, "Ringing")))?;

    let (cancel_at, _, cancel) = peer.request(Method::Cancel, 5 * MINUTE).await?;
    assert_close(gap(invited_at, cancel_at)?, 3 * MINUTE, "ringing given up")?;
    let (ended_at, reason, _) = client.ended(call, MINUTE).await?;
    assert_close(
        gap(cancel_at, ended_at)?,
        Duration::ZERO,
        "ended on the CANCEL",
    )?;
    ensure!(reason == "no answer after 180 s", "reason shown: {reason}");
    peer.send(flow, text(&response_to(&cancel, 200, "OK")))?;
    peer.send(flow, text(&response_to(&invite, 487, "Request Terminated")))?;
    peer.request(Method::Ack, MINUTE).await?;

    let record = client.last_call().await?;
    ensure!(record.direction == Direction::Out, "{record:?}");
    ensure!(
        record.end_reason == Some(CallEndReason::NoAnswer),
        "history says {:?}",
        record.end_reason
    );
    let endings = client
        .catch_up()
        .iter()
        .filter(|(_, e)| ends(e, call))
        .count();
    ensure!(endings == 1, "the call ended {endings} times");
    Ok(())
}
