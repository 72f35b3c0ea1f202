//! What happens inside a confirmed (or early) INVITE dialog: re-INVITE and UPDATE both ways
//! with glare (RFC 3261 §14, RFC 3311), REFER and its NOTIFYs (RFC 3515, RFC 5589), Replaces
//! (RFC 3891) and DTMF in INFO (RFC 6086). Two user agents and the proxy of `common`, in
//! virtual time, plus single-UA tests fed raw requests.

mod common;

use std::time::Duration;

use common::*;
use lyrebird_sip::{EndReason, InviteOptions, ReplacesTarget, SipError};

/// A registered pair with A's call to B answered and confirmed.
fn confirmed_call() -> (Net, CallId, CallId) {
    let mut net = Net::new();
    net.register_both();
    let (ca, cb) = net.call();
    net.b.answer(net.now, cb, "v=0 answer".into()).unwrap();
    net.pump();
    assert!(net.ev_b.contains(&UaEvent::CallConfirmed { call: cb }));
    net.ev_a.clear();
    net.ev_b.clear();
    net.proxy.log.clear();
    (net, ca, cb)
}

fn reoffer_of(events: &[UaEvent], call: CallId) -> Option<String> {
    events.iter().find_map(|e| match e {
        UaEvent::Reoffer { call: c, sdp } if *c == call => sdp.clone(),
        _ => None,
    })
}

fn ended(events: &[UaEvent]) -> bool {
    events
        .iter()
        .any(|e| matches!(e, UaEvent::CallEnded { .. }))
}

// ---------------------------------------------------------------------- re-INVITE, UPDATE

#[test]
fn our_reinvite_is_answered_and_acked() {
    let (mut net, ca, cb) = confirmed_call();
    net.a.reinvite(net.now, ca, "v=0 hold".into()).unwrap();
    assert!(
        net.a.reinvite(net.now, ca, "v=0 again".into()).is_err(),
        "one offer at a time"
    );
    net.pump();
    assert_eq!(reoffer_of(&net.ev_b, cb).as_deref(), Some("v=0 hold"));
    net.b
        .answer_reoffer(net.now, cb, "v=0 held".into())
        .unwrap();
    net.pump();
    assert_eq!(
        net.ev_a,
        vec![UaEvent::ReofferAnswered {
            call: ca,
            sdp: Some("v=0 held".into())
        }]
    );
    let invite = &net.sent(Side::A, "INVITE")[0];
    assert!(invite.starts_with("INVITE sip:bob@"), "{invite}");
    assert!(invite.contains("CSeq: 2 INVITE\r\n"));
    assert!(invite.contains("Route: <sip:proxy.example.com;transport=ws;lr>"));
    assert!(invite.contains("Content-Type: application/sdp\r\n") && invite.ends_with("v=0 hold"));
    let acks = net.sent(Side::A, "ACK");
    assert_eq!(acks.len(), 1);
    assert!(acks[0].contains("CSeq: 2 ACK\r\n"));
    // The call goes on: a BYE still follows the dialog.
    net.a.hangup(net.now, ca).unwrap();
    net.pump();
    assert!(net.sent(Side::A, "BYE")[0].contains("CSeq: 3 BYE"));
}

#[test]
fn a_refused_reinvite_keeps_the_call_as_it_was() {
    let (mut net, ca, cb) = confirmed_call();
    net.a.reinvite(net.now, ca, "v=0 video".into()).unwrap();
    net.pump();
    assert!(reoffer_of(&net.ev_b, cb).is_some());
    assert_eq!(
        net.b.reject_reoffer(net.now, cb, 200),
        Err(SipError::InvalidStatus(200))
    );
    net.b.reject_reoffer(net.now, cb, 488).unwrap();
    net.pump();
    assert_eq!(
        net.ev_a,
        vec![UaEvent::ReofferFailed {
            call: ca,
            status: 488,
            reason: "Not Acceptable Here".into()
        }]
    );
    assert!(!ended(&net.ev_b));
    assert_eq!(net.sent(Side::A, "ACK").len(), 1, "the 488 is ACKed");
    // A new offer is possible again, and the call still ends normally.
    net.a.reinvite(net.now, ca, "v=0 audio".into()).unwrap();
    net.pump();
    net.b.answer_reoffer(net.now, cb, "v=0 ok".into()).unwrap();
    net.pump();
    assert!(net.ev_a.contains(&UaEvent::ReofferAnswered {
        call: ca,
        sdp: Some("v=0 ok".into())
    }));
}

#[test]
fn a_challenged_reinvite_is_sent_again_with_credentials() {
    let (mut net, ca, cb) = confirmed_call();
    net.proxy.challenge_reinvites = true;
    net.a.reinvite(net.now, ca, "v=0 hold".into()).unwrap();
    net.pump();
    let invites = net.sent(Side::A, "INVITE");
    assert_eq!(invites.len(), 2);
    assert!(!invites[0].contains("Proxy-Authorization"));
    assert!(invites[1].contains("Proxy-Authorization: Digest username=\"alice\""));
    assert!(invites[1].contains("CSeq: 3 INVITE"));
    net.b
        .answer_reoffer(net.now, cb, "v=0 held".into())
        .unwrap();
    net.pump();
    assert_eq!(
        net.ev_a,
        vec![UaEvent::ReofferAnswered {
            call: ca,
            sdp: Some("v=0 held".into())
        }]
    );
    let acks = net.sent(Side::A, "ACK");
    assert!(acks.iter().any(|a| a.contains("CSeq: 3 ACK")), "{acks:?}");
}

#[test]
fn glare_is_answered_491_and_both_offers_go_through_after_the_random_waits() {
    let (mut net, ca, cb) = confirmed_call();
    let t0 = net.now;
    net.a.reinvite(net.now, ca, "v=0 from a".into()).unwrap();
    net.b.reinvite(net.now, cb, "v=0 from b".into()).unwrap();
    net.pump();
    // Each side got the other's re-INVITE while its own was pending: 491 both ways.
    let b_responses: Vec<_> = net
        .proxy
        .log
        .iter()
        .filter(|(_, m, _)| m == "ACK")
        .collect();
    assert_eq!(b_responses.len(), 2, "each 491 is ACKed");
    assert!(
        net.ev_a.is_empty() && net.ev_b.is_empty(),
        "{:?} {:?}",
        net.ev_a,
        net.ev_b
    );
    // A chose the Call-ID: it waits 2.1-4 s; B waits 0-2 s (§14.1).
    let a_retry = net.a.poll_timeout().unwrap();
    let b_retry = net.b.poll_timeout().unwrap();
    assert!(
        a_retry >= t0 + Duration::from_millis(2100) && a_retry <= t0 + Duration::from_secs(4),
        "{:?}",
        a_retry - t0
    );
    assert!(b_retry <= t0 + Duration::from_secs(2), "{:?}", b_retry - t0);
    assert_eq!((a_retry - t0).as_millis() % 10, 0, "10 ms units");

    // B goes first; A, backing off, takes B's offer.
    net.advance(b_retry);
    assert_eq!(reoffer_of(&net.ev_a, ca).as_deref(), Some("v=0 from b"));
    net.a
        .answer_reoffer(net.now, ca, "v=0 a answers".into())
        .unwrap();
    net.pump();
    assert!(net.ev_b.contains(&UaEvent::ReofferAnswered {
        call: cb,
        sdp: Some("v=0 a answers".into())
    }));
    // Then A's own offer goes out.
    net.advance(a_retry);
    assert_eq!(reoffer_of(&net.ev_b, cb).as_deref(), Some("v=0 from a"));
    net.b
        .answer_reoffer(net.now, cb, "v=0 b answers".into())
        .unwrap();
    net.pump();
    assert!(net.ev_a.contains(&UaEvent::ReofferAnswered {
        call: ca,
        sdp: Some("v=0 b answers".into())
    }));
    let failed = |evs: &[UaEvent]| {
        evs.iter()
            .any(|e| matches!(e, UaEvent::ReofferFailed { .. }))
    };
    assert!(!failed(&net.ev_a) && !failed(&net.ev_b));
    assert_eq!(net.sent(Side::A, "INVITE").len(), 2);
    assert_eq!(net.sent(Side::B, "INVITE").len(), 2);
}

#[test]
fn update_in_a_confirmed_dialog_needs_no_ack() {
    let (mut net, ca, cb) = confirmed_call();
    net.a.update(net.now, ca, "v=0 update".into()).unwrap();
    net.pump();
    assert_eq!(reoffer_of(&net.ev_b, cb).as_deref(), Some("v=0 update"));
    net.b
        .answer_reoffer(net.now, cb, "v=0 updated".into())
        .unwrap();
    net.pump();
    assert_eq!(
        net.ev_a,
        vec![UaEvent::ReofferAnswered {
            call: ca,
            sdp: Some("v=0 updated".into())
        }]
    );
    assert!(net.sent(Side::A, "UPDATE")[0].contains("CSeq: 2 UPDATE"));
    assert!(net.sent(Side::A, "ACK").is_empty());
}

/// The raw INVITE of `request` answered by the raw UA: (call, our To tag).
fn raw_incoming_call(
    ua: &mut UserAgent,
    now: std::time::Instant,
    answer: bool,
) -> (CallId, String) {
    ua.handle_input(now, &raw_invite());
    assert_eq!(first_line(ua), "SIP/2.0 100 Trying");
    let call = match ua.poll_event() {
        Some(UaEvent::IncomingCall { call, .. }) => call,
        other => panic!("{other:?}"),
    };
    if answer {
        ua.answer(now, call, "v=0 answer".into()).unwrap();
    } else {
        ua.ring(now, call).unwrap();
    }
    let resp = String::from_utf8(ua.poll_transmit().unwrap()).unwrap();
    let tag = message::parse(resp.as_bytes())
        .unwrap()
        .to()
        .unwrap()
        .tag()
        .unwrap()
        .to_owned();
    (call, tag)
}

fn raw_invite() -> Vec<u8> {
    request("INVITE", "Content-Type: application/sdp\r\n", "v=0\r\n")
}

fn raw_call_id() -> String {
    message::parse(&raw_invite())
        .unwrap()
        .call_id()
        .unwrap()
        .to_owned()
}

/// An in-dialog request from carol (the peer of `raw_incoming_call`).
fn raw_in_dialog(method: &str, seq: u32, our_tag: &str, extra: &str, body: &str) -> Vec<u8> {
    format!(
        "{method} sip:bob@abc.invalid;transport=ws SIP/2.0\r\n\
         Via: SIP/2.0/WS x.invalid;branch=z9hG4bK{method}{seq}\r\nMax-Forwards: 70\r\n\
         From: <sip:carol@example.com>;tag=c1\r\nTo: <sip:bob@example.com>;tag={our_tag}\r\n\
         Call-ID: {}\r\nCSeq: {seq} {method}\r\nContact: <sip:carol@y.invalid;transport=ws>\r\n\
         {extra}Content-Length: {}\r\n\r\n{body}",
        raw_call_id(),
        body.len()
    )
    .into_bytes()
}

#[test]
fn update_in_an_early_dialog_is_a_reoffer() {
    let (mut ua, now) = raw_ua();
    let (call, tag) = raw_incoming_call(&mut ua, now, false);
    ua.handle_input(
        now,
        &raw_in_dialog(
            "UPDATE",
            2,
            &tag,
            "Content-Type: application/sdp\r\n",
            "v=0 early",
        ),
    );
    assert_eq!(
        ua.poll_event(),
        Some(UaEvent::Reoffer {
            call,
            sdp: Some("v=0 early".into())
        })
    );
    assert_eq!(ua.poll_transmit(), None, "answered only by the owner");
    ua.answer_reoffer(now, call, "v=0 early answer".into())
        .unwrap();
    let resp = String::from_utf8(ua.poll_transmit().unwrap()).unwrap();
    assert!(resp.starts_with("SIP/2.0 200 OK\r\n"), "{resp}");
    assert!(resp.contains("CSeq: 2 UPDATE\r\n") && resp.ends_with("v=0 early answer"));
    // The call itself is still unanswered and can be answered.
    ua.answer(now, call, "v=0".into()).unwrap();
}

// ---------------------------------------------------------------------- Replaces

#[test]
fn an_invite_with_replaces_names_our_call() {
    let (mut net, ca, cb) = confirmed_call();
    let target = net.b.replaces_target(cb).unwrap();
    // B's view, turned for A: A's tag is the to-tag.
    let a_side = net.a.replaces_target(ca).unwrap();
    assert_eq!(target.call_id, a_side.call_id);
    assert_eq!(target.to_tag, a_side.from_tag);
    net.b
        .invite_with(
            net.now,
            "sip:alice@example.com",
            "v=0 new".into(),
            InviteOptions {
                replaces: Some(target.clone()),
                ..InviteOptions::default()
            },
        )
        .unwrap();
    net.pump();
    let invite = net.sent(Side::B, "INVITE").remove(0);
    assert!(invite.contains(&format!("Replaces: {}\r\n", target.to_header_value())));
    assert!(matches!(
        net.ev_a.last(),
        Some(UaEvent::IncomingCall { replaces: Some(c), .. }) if *c == ca
    ));

    // A Replaces naming no dialog of ours: 481.
    net.ev_b.clear();
    let bogus = ReplacesTarget {
        call_id: "nope".into(),
        ..target
    };
    let call = net
        .b
        .invite_with(
            net.now,
            "sip:alice@example.com",
            "v=0".into(),
            InviteOptions {
                replaces: Some(bogus),
                ..InviteOptions::default()
            },
        )
        .unwrap();
    net.pump();
    assert!(net.ev_b.contains(&UaEvent::CallEnded {
        call,
        reason: EndReason::Rejected {
            status: 481,
            reason: "Call/Transaction Does Not Exist".into()
        }
    }));
}

#[test]
fn replaces_early_only_refuses_a_confirmed_dialog_and_an_incoming_early_one() {
    let (mut ua, now) = raw_ua();
    let (_call, tag) = raw_incoming_call(&mut ua, now, true);
    let call_id = raw_call_id();
    let replaces = |flag: &str, branch: &str| {
        format!(
            "INVITE sip:bob@abc.invalid;transport=ws SIP/2.0\r\n\
             Via: SIP/2.0/WS z.invalid;branch=z9hG4bK{branch}\r\nMax-Forwards: 70\r\n\
             From: <sip:dave@example.com>;tag=d1\r\nTo: <sip:bob@example.com>\r\n\
             Call-ID: new-{branch}\r\nCSeq: 1 INVITE\r\nContact: <sip:dave@z.invalid;transport=ws>\r\n\
             Replaces: {call_id};to-tag={tag};from-tag=c1{flag}\r\nContent-Length: 0\r\n\r\n"
        )
    };
    while ua.poll_transmit().is_some() {}
    ua.handle_input(now, replaces(";early-only", "e1").as_bytes());
    assert_eq!(first_line(&mut ua), "SIP/2.0 486 Busy Here");
    assert_eq!(ua.poll_event(), None);

    // An early dialog we did not start cannot be replaced (RFC 3891 §3): 481.
    let (mut ua, now) = raw_ua();
    let (_call, tag_early) = raw_incoming_call(&mut ua, now, false);
    let text = replaces("", "e2").replace(&tag, &tag_early);
    ua.handle_input(now, text.as_bytes());
    assert_eq!(
        first_line(&mut ua),
        "SIP/2.0 481 Call/Transaction Does Not Exist"
    );
}

// ---------------------------------------------------------------------- REFER

fn referred(
    events: &[UaEvent],
) -> (
    lyrebird_sip::IncomingReferId,
    String,
    Option<ReplacesTarget>,
    Option<String>,
) {
    events
        .iter()
        .find_map(|e| match e {
            UaEvent::ReferReceived {
                refer,
                target,
                replaces,
                referred_by,
                ..
            } => Some((
                *refer,
                target.clone(),
                replaces.clone(),
                referred_by.clone(),
            )),
            _ => None,
        })
        .expect("ReferReceived")
}

fn progress(events: &[UaEvent]) -> Vec<(u16, String, bool)> {
    events
        .iter()
        .filter_map(|e| match e {
            UaEvent::ReferProgress {
                status,
                reason,
                final_,
                ..
            } => Some((*status, reason.clone(), *final_)),
            _ => None,
        })
        .collect()
}

#[test]
fn blind_transfer_reports_progress_even_after_the_referrer_hangs_up() {
    let (mut net, ca, cb) = confirmed_call();
    let refer = net
        .a
        .refer(net.now, ca, "sip:carol@example.com", None)
        .unwrap();
    net.pump();
    let sent = &net.sent(Side::A, "REFER")[0];
    assert!(
        sent.contains("Refer-To: <sip:carol@example.com>\r\n"),
        "{sent}"
    );
    assert!(sent.contains("Referred-By: <sip:alice@example.com>\r\n"));
    assert!(sent.contains("CSeq: 2 REFER\r\n"));
    let (incoming, target, replaces, referred_by) = referred(&net.ev_b);
    assert_eq!(target, "sip:carol@example.com");
    assert_eq!(replaces, None);
    assert_eq!(referred_by.as_deref(), Some("<sip:alice@example.com>"));
    assert!(
        progress(&net.ev_a).is_empty(),
        "no answer before the owner decides"
    );

    net.b.accept_refer(net.now, incoming).unwrap();
    net.pump();
    assert_eq!(
        progress(&net.ev_a),
        vec![
            (202, "Accepted".into(), false),
            (100, "Trying".into(), false)
        ]
    );
    let notify = &net.sent(Side::B, "NOTIFY")[0];
    assert!(notify.contains("Event: refer;id=2\r\n"), "{notify}");
    assert!(notify.contains("Subscription-State: active;expires=60\r\n"));
    assert!(notify.contains("Content-Type: message/sipfrag;version=2.0\r\n"));
    assert!(notify.ends_with("\r\n\r\nSIP/2.0 100 Trying\r\n"));

    // The transferor hangs up at once; the subscription outlives the call.
    net.a.hangup(net.now, ca).unwrap();
    net.pump();
    assert!(net.ev_b.contains(&UaEvent::CallEnded {
        call: cb,
        reason: EndReason::RemoteHangup { reason: None }
    }));
    net.ev_a.clear();
    net.b
        .notify_refer(net.now, incoming, 180, "Ringing")
        .unwrap();
    net.b.notify_refer(net.now, incoming, 200, "OK").unwrap();
    net.pump();
    assert_eq!(
        net.ev_a,
        vec![
            UaEvent::ReferProgress {
                call: ca,
                refer,
                status: 180,
                reason: "Ringing".into(),
                final_: false
            },
            UaEvent::ReferProgress {
                call: ca,
                refer,
                status: 200,
                reason: "OK".into(),
                final_: true
            }
        ]
    );
    let last = net.sent(Side::B, "NOTIFY").pop().unwrap();
    assert!(last.contains("Subscription-State: terminated;reason=noresource\r\n"));
    // The subscription is over, and with it the dialog.
    assert_eq!(
        net.b.notify_refer(net.now, incoming, 200, "OK"),
        Err(SipError::UnknownRefer)
    );
    assert_eq!(net.b.hangup(net.now, cb), Err(SipError::UnknownCall));
}

#[test]
fn a_rejected_refer_is_a_final_report() {
    let (mut net, ca, _cb) = confirmed_call();
    let refer = net
        .a
        .refer(net.now, ca, "sip:carol@example.com", None)
        .unwrap();
    net.pump();
    let (incoming, ..) = referred(&net.ev_b);
    assert_eq!(
        net.b.reject_refer(net.now, incoming, 202),
        Err(SipError::InvalidStatus(202))
    );
    net.b.reject_refer(net.now, incoming, 603).unwrap();
    net.pump();
    assert_eq!(
        net.ev_a,
        vec![UaEvent::ReferProgress {
            call: ca,
            refer,
            status: 603,
            reason: "Decline".into(),
            final_: true
        }]
    );
    assert_eq!(
        net.b.accept_refer(net.now, incoming),
        Err(SipError::UnknownRefer)
    );
}

#[test]
fn attended_transfer_carries_an_escaped_replaces_in_refer_to() {
    let (mut net, ca, cb) = confirmed_call();
    // The dialog to replace: any of A's dialogs will do for the syntax.
    let consult = net.a.replaces_target(ca).unwrap();
    net.a
        .refer(net.now, ca, "sip:carol@example.com", Some(consult.clone()))
        .unwrap();
    net.pump();
    let sent = &net.sent(Side::A, "REFER")[0];
    let escaped = format!(
        "Refer-To: <sip:carol@example.com?Replaces={}%3Bto-tag%3D{}%3Bfrom-tag%3D{}>\r\n",
        consult.call_id.replace('@', "%40"),
        consult.to_tag,
        consult.from_tag
    );
    assert!(sent.contains(&escaped), "{sent}");
    let (_, target, replaces, _) = referred(&net.ev_b);
    assert_eq!(target, "sip:carol@example.com");
    assert_eq!(replaces, Some(consult));
    let _ = cb;
}

#[test]
fn a_notify_ending_the_subscription_without_a_status_is_final_with_status_0() {
    let (mut net, ca, _cb) = confirmed_call();
    let refer = net
        .a
        .refer(net.now, ca, "sip:carol@example.com", None)
        .unwrap();
    // Take the REFER off the wire and answer it ourselves as B's side would.
    let bytes = net.a.poll_transmit().unwrap();
    let sent = message::parse(&bytes).unwrap();
    let from = sent.header("From").unwrap().to_owned();
    let to = sent.header("To").unwrap().to_owned();
    let call_id = sent.call_id().unwrap().to_owned();
    let notify = format!(
        "NOTIFY {} SIP/2.0\r\nVia: SIP/2.0/WS b.invalid;branch=z9hG4bKn1\r\nMax-Forwards: 70\r\n\
         From: {to}\r\nTo: {from}\r\nCall-ID: {call_id}\r\nCSeq: 900 NOTIFY\r\n\
         Contact: <sip:bob@b.invalid;transport=ws>\r\nEvent: refer\r\n\
         Subscription-State: terminated;reason=timeout\r\nContent-Length: 0\r\n\r\n",
        net.a.contact_uri()
    );
    net.a.handle_input(net.now, notify.as_bytes());
    assert_eq!(first_line(&mut net.a), "SIP/2.0 200 OK");
    assert_eq!(
        net.a.poll_event(),
        Some(UaEvent::ReferProgress {
            call: ca,
            refer,
            status: 0,
            reason: "subscription terminated: timeout".into(),
            final_: true
        })
    );
    // A NOTIFY for another event package is refused.
    let other = notify
        .replace("Event: refer", "Event: dialog")
        .replace("CSeq: 900", "CSeq: 901")
        .replace("bKn1", "bKn2");
    net.a.handle_input(net.now, other.as_bytes());
    assert_eq!(first_line(&mut net.a), "SIP/2.0 489 Bad Event");
}

// ---------------------------------------------------------------------- INFO DTMF

#[test]
fn dtmf_info_both_ways() {
    let (mut net, ca, cb) = confirmed_call();
    assert!(net.a.send_dtmf_info(net.now, ca, 'x', 160).is_err());
    net.a.send_dtmf_info(net.now, ca, '5', 160).unwrap();
    net.pump();
    assert_eq!(
        net.ev_b,
        vec![UaEvent::DtmfReceived {
            call: cb,
            digit: '5',
            duration_ms: Some(160)
        }]
    );
    let info = &net.sent(Side::A, "INFO")[0];
    assert!(info.contains("Content-Type: application/dtmf-relay\r\n"));
    assert!(info.ends_with("\r\n\r\nSignal=5\r\nDuration=160\r\n"));

    let (mut ua, now) = raw_ua();
    let (call, tag) = raw_incoming_call(&mut ua, now, true);
    let ack = String::from_utf8(raw_in_dialog("ACK", 1, &tag, "", ""))
        .unwrap()
        .replace("bKACK1", "bKack");
    ua.handle_input(now, ack.as_bytes());
    assert_eq!(ua.poll_event(), Some(UaEvent::CallConfirmed { call }));
    while ua.poll_transmit().is_some() {}
    ua.handle_input(
        now,
        &raw_in_dialog("INFO", 2, &tag, "Content-Type: application/dtmf\r\n", "#"),
    );
    assert_eq!(first_line(&mut ua), "SIP/2.0 200 OK");
    assert_eq!(
        ua.poll_event(),
        Some(UaEvent::DtmfReceived {
            call,
            digit: '#',
            duration_ms: None
        })
    );
    ua.handle_input(
        now,
        &raw_in_dialog(
            "INFO",
            3,
            &tag,
            "Info-Package: foo\r\nContent-Type: application/foo\r\n",
            "x",
        ),
    );
    assert_eq!(first_line(&mut ua), "SIP/2.0 469 Bad Info Package");
    ua.handle_input(
        now,
        &raw_in_dialog("INFO", 4, &tag, "Content-Type: text/plain\r\n", "5"),
    );
    let resp = String::from_utf8(ua.poll_transmit().unwrap()).unwrap();
    assert!(resp.starts_with("SIP/2.0 415 Unsupported Media Type\r\n"));
    assert!(resp.contains("Accept: application/dtmf-relay, application/dtmf\r\n"));
    assert_eq!(ua.poll_event(), None);
}

#[test]
fn a_reinvite_that_times_out_ends_the_call() {
    let (mut net, ca, _cb) = confirmed_call();
    net.a.reinvite(net.now, ca, "v=0 lost".into()).unwrap();
    // The re-INVITE is lost on the way.
    while net.a.poll_transmit().is_some() {}
    let deadline = net.now + Duration::from_secs(32);
    net.a.handle_timeout(deadline);
    let events: Vec<UaEvent> = std::iter::from_fn(|| net.a.poll_event()).collect();
    assert_eq!(
        events,
        vec![
            UaEvent::ReofferFailed {
                call: ca,
                status: 408,
                reason: "Request Timeout".into()
            },
            UaEvent::CallEnded {
                call: ca,
                reason: EndReason::Failed {
                    status: 408,
                    reason: "Request Timeout".into()
                }
            }
        ]
    );
    let bye = String::from_utf8(net.a.poll_transmit().unwrap()).unwrap();
    assert!(
        bye.starts_with("BYE ") && bye.contains("CSeq: 3 BYE"),
        "{bye}"
    );
}

#[test]
fn a_refer_left_unanswered_is_refused_480() {
    let (mut net, ca, _cb) = confirmed_call();
    let t0 = net.now;
    let refer = net
        .a
        .refer(net.now, ca, "sip:carol@example.com", None)
        .unwrap();
    net.pump();
    let (incoming, ..) = referred(&net.ev_b);
    net.advance(t0 + lyrebird_sip::timer::MESSAGE_ANSWER_WAIT);
    assert!(net.ev_a.contains(&UaEvent::ReferProgress {
        call: ca,
        refer,
        status: 480,
        reason: "Temporarily Unavailable".into(),
        final_: true
    }));
    assert_eq!(
        net.b.accept_refer(net.now, incoming),
        Err(SipError::UnknownRefer)
    );
}
