//! Two Jingle call cores against each other, with the stanzas going through real XML: every
//! path of a call (accept, reject, retract, busy, timeouts, hang-ups, hold and mute, video on
//! and off, candidates before and after the answer, errors) driven from both sides.

use std::time::{Duration, Instant};

use lyrebird_sdp::SessionDescription;
use lyrebird_xmpp::jingle::session::{iq_error, session_initiate_wins};
use lyrebird_xmpp::jingle::{
    CallConfig, CallEvent, CallState, EndedBy, Jingle, JingleCall, JingleMessage, Reason,
};
use xmpp_parsers::minidom::Element;

const ROMEO: &str = "romeo@montague.lit/orchard";
const JULIET: &str = "juliet@capulet.lit/balcony";
const JULIET_PHONE: &str = "juliet@capulet.lit/phone";
const SID: &str = "a73sjjvkla37jfea";

/// A description like the media engine's: `sections` are (mid, media), with a port 0 for a
/// rejected one.
fn sdp(ufrag: &str, setup: &str, sections: &[(&str, &str, bool)]) -> SessionDescription {
    let mut text = String::from("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n");
    let mids: Vec<&str> = sections.iter().filter(|s| s.2).map(|s| s.0).collect();
    text.push_str(&format!("a=group:BUNDLE {}\r\n", mids.join(" ")));
    for (mid, media, used) in sections {
        let (port, pt, map) = match *media {
            "audio" => (9, 111, "opus/48000/2"),
            _ => (9, 96, "VP8/90000"),
        };
        let port = if *used { port } else { 0 };
        text.push_str(&format!(
            "m={media} {port} UDP/TLS/RTP/SAVPF {pt}\r\nc=IN IP4 0.0.0.0\r\n\
             a=ice-ufrag:{ufrag}\r\na=ice-pwd:{ufrag}{ufrag}{ufrag}{ufrag}{ufrag}{ufrag}\r\n\
             a=fingerprint:sha-256 AB:CD:EF\r\na=setup:{setup}\r\na=mid:{mid}\r\n\
             a=sendrecv\r\na=rtcp-mux\r\na=rtpmap:{pt} {map}\r\n"
        ));
    }
    SessionDescription::parse(&text).unwrap()
}

fn offer() -> SessionDescription {
    sdp("romo", "actpass", &[("0", "audio", true)])
}

fn answer() -> SessionDescription {
    sdp("juli", "active", &[("0", "audio", true)])
}

fn candidate(port: u16) -> String {
    format!("candidate:1 1 udp 2122260223 192.0.2.1 {port} typ host generation 0")
}

/// Delivers every stanza `from` wants to send to `to` (acting as both servers), and returns
/// the stanzas that were not for `to`'s JID (e.g. to our own bare JID).
fn deliver(
    from: &mut JingleCall,
    from_jid: &str,
    to: &mut JingleCall,
    now: Instant,
) -> Vec<String> {
    let mut elsewhere = Vec::new();
    while let Some(out) = from.poll_transmit() {
        let el: Element = out.xml.parse().expect("our stanzas are well-formed");
        let for_peer =
            out.to == to_jid(to) || out.to.split('/').next() == to_jid(to).split('/').next();
        if !for_peer || out.to.split('/').next() == from_jid.split('/').next() {
            elsewhere.push(out.xml);
            continue;
        }
        receive(to, from_jid, &el, now);
    }
    elsewhere
}

fn to_jid(call: &JingleCall) -> &'static str {
    // The peers here: whoever is not Romeo's call is Juliet's.
    if *call.role() == lyrebird_xmpp::jingle::Creator::Initiator {
        ROMEO
    } else {
        JULIET
    }
}

fn receive(to: &mut JingleCall, from_jid: &str, el: &Element, now: Instant) {
    match el.name() {
        "message" => {
            let message = JingleMessage::from_message(el).unwrap().unwrap();
            to.handle_message(now, from_jid, message, false);
        }
        "iq" => {
            let id = el.attr("id").unwrap();
            match el.attr("type") {
                Some("set") => {
                    let jingle = Jingle::from_element(el.children().next().unwrap()).unwrap();
                    to.handle_jingle(now, from_jid, id, jingle);
                }
                Some("result") => to.handle_iq_result(now, id),
                Some("error") => {
                    let condition = el
                        .get_child("error", "jabber:client")
                        .and_then(|e| e.children().next())
                        .map(|c| c.name().to_owned())
                        .unwrap();
                    to.handle_iq_error(now, id, &condition);
                }
                other => panic!("iq type {other:?}"),
            }
        }
        other => panic!("unexpected <{other}/>"),
    }
}

fn events(call: &mut JingleCall) -> Vec<CallEvent> {
    std::iter::from_fn(|| call.poll_event()).collect()
}

fn stanzas(call: &mut JingleCall) -> Vec<String> {
    std::iter::from_fn(|| call.poll_transmit())
        .map(|o| o.xml)
        .collect()
}

fn ended(events: &[CallEvent]) -> Option<(Reason, EndedBy)> {
    events.iter().find_map(|e| match e {
        CallEvent::Ended { reason, by, .. } => Some((reason.clone(), by.clone())),
        _ => None,
    })
}

/// Romeo proposes; Juliet's device receives the proposal and rings.
fn proposed(now: Instant) -> (JingleCall, JingleCall) {
    let mut romeo = JingleCall::propose(
        CallConfig::new(ROMEO),
        now,
        SID,
        "juliet@capulet.lit",
        &["audio"],
    );
    let out = stanzas(&mut romeo);
    assert_eq!(out.len(), 1);
    let el: Element = out[0].parse().unwrap();
    assert_eq!(
        el.attr("to"),
        Some("juliet@capulet.lit"),
        "every device rings"
    );
    assert_eq!(el.attr("type"), Some("chat"));
    assert!(el.has_child("store", "urn:xmpp:hints"));
    let Some(Ok(JingleMessage::Propose { id, media })) = JingleMessage::from_message(&el) else {
        panic!("a propose")
    };
    let juliet =
        JingleCall::incoming_proposal(CallConfig::new(JULIET), now, ROMEO, &id, media, true);
    assert_eq!(romeo.state(), CallState::Proposing);
    assert_eq!(juliet.state(), CallState::Ringing);
    (romeo, juliet)
}

/// Through to an active call, with candidates before and after the answer.
fn active(now: Instant) -> (JingleCall, JingleCall) {
    let (mut romeo, mut juliet) = proposed(now);
    // The offer and a first candidate exist while it rings.
    romeo.set_local_description(now, offer()).unwrap();
    romeo
        .add_local_candidate(now, "0", &candidate(5000))
        .unwrap();
    assert!(
        stanzas(&mut romeo).is_empty(),
        "nothing before a device proceeds"
    );

    deliver(&mut juliet, JULIET, &mut romeo, now); // <ringing/>
    assert_eq!(events(&mut romeo), [CallEvent::PeerRinging]);
    let ev = events(&mut juliet);
    assert!(matches!(&ev[0], CallEvent::Incoming { known: true, .. }));

    juliet.accept(now).unwrap();
    let to_own = deliver(&mut juliet, JULIET, &mut romeo, now);
    assert_eq!(to_own.len(), 1, "<accept/> to our own account");
    assert!(to_own[0].contains("<accept") && to_own[0].contains("to='juliet@capulet.lit'"));
    let ev = events(&mut romeo);
    assert_eq!(
        ev,
        [CallEvent::Proceeding {
            device: JULIET.into()
        }]
    );

    // session-initiate carries the early candidate; then another trickles before the answer.
    romeo
        .add_local_candidate(now, "0", &candidate(5001))
        .unwrap();
    deliver(&mut romeo, ROMEO, &mut juliet, now);
    let ev = events(&mut juliet);
    let CallEvent::RemoteOffer(remote) = &ev[0] else {
        panic!("{ev:?}")
    };
    assert_eq!(remote.media[0].candidates().next().unwrap().port, 5000);
    assert_eq!(remote.ice_credentials(0).unwrap().0, "romo");
    assert!(
        matches!(&ev[1], CallEvent::RemoteCandidate(c) if c.candidate.contains(" 5001 ") && c.mid == "0")
    );

    // Juliet's answer: session-accept (she accepted already).
    juliet
        .add_local_candidate(now, "0", &candidate(6000))
        .unwrap();
    juliet.set_local_description(now, answer()).unwrap();
    assert_eq!(events(&mut juliet), [CallEvent::Accepted]);
    juliet
        .add_local_candidate(now, "0", &candidate(6001))
        .unwrap();
    deliver(&mut juliet, JULIET, &mut romeo, now);
    let ev = events(&mut romeo);
    let CallEvent::RemoteAnswer(remote) = &ev[0] else {
        panic!("{ev:?}")
    };
    assert_eq!(remote.setup(0), Some(lyrebird_sdp::Setup::Active));
    assert_eq!(remote.media[0].candidates().next().unwrap().port, 6000);
    assert_eq!(ev[1], CallEvent::Accepted);
    assert!(matches!(&ev[2], CallEvent::RemoteCandidate(c) if c.candidate.contains(" 6001 ")));
    // Acks flow back; nothing is left outstanding.
    deliver(&mut romeo, ROMEO, &mut juliet, now);
    deliver(&mut juliet, JULIET, &mut romeo, now);
    assert_eq!(romeo.state(), CallState::Active);
    assert_eq!(juliet.state(), CallState::Active);
    assert_eq!(romeo.poll_timeout(), None, "every IQ answered");
    assert_eq!(juliet.poll_timeout(), None);
    (romeo, juliet)
}

#[test]
fn an_accepted_call_connects_and_ends_on_hang_up() {
    let now = Instant::now();
    let (mut romeo, mut juliet) = active(now);
    romeo.hangup(now);
    let out: Vec<String> = std::iter::from_fn(|| romeo.poll_transmit())
        .map(|o| o.xml)
        .collect();
    assert!(out[0].contains("session-terminate") && out[0].contains("<success"));
    // XEP-0353 §3.6: the end goes into every device's history.
    assert!(out[1].contains("<finish") && out[1].contains("to='juliet@capulet.lit'"));
    let terminate: Element = out[0].parse().unwrap();
    receive(&mut juliet, ROMEO, &terminate, now);
    assert_eq!(
        ended(&events(&mut romeo)),
        Some((Reason::Success, EndedBy::Us))
    );
    assert_eq!(
        ended(&events(&mut juliet)),
        Some((Reason::Success, EndedBy::Peer))
    );
    deliver(&mut juliet, JULIET, &mut romeo, now);
    assert_eq!(romeo.state(), CallState::Ended);
}

#[test]
fn the_callee_can_hang_up_too() {
    let now = Instant::now();
    let (mut romeo, mut juliet) = active(now);
    juliet.hangup(now);
    deliver(&mut juliet, JULIET, &mut romeo, now);
    assert_eq!(
        ended(&events(&mut romeo)),
        Some((Reason::Success, EndedBy::Peer))
    );
    assert_eq!(
        ended(&events(&mut juliet)),
        Some((Reason::Success, EndedBy::Us))
    );
}

#[test]
fn a_rejected_call_ends_on_both_sides_with_decline_or_busy() {
    for reason in [Reason::Decline, Reason::Busy] {
        let now = Instant::now();
        let (mut romeo, mut juliet) = proposed(now);
        stanzas(&mut juliet);
        juliet.reject(now, reason.clone()).unwrap();
        deliver(&mut juliet, JULIET, &mut romeo, now);
        assert_eq!(
            ended(&events(&mut juliet)),
            Some((reason.clone(), EndedBy::Us))
        );
        assert_eq!(ended(&events(&mut romeo)), Some((reason, EndedBy::Peer)));
        assert_eq!(romeo.poll_timeout(), None, "the ring timer is off");
    }
}

#[test]
fn a_retracted_call_stops_ringing() {
    let now = Instant::now();
    let (mut romeo, mut juliet) = proposed(now);
    stanzas(&mut juliet);
    romeo.hangup(now);
    deliver(&mut romeo, ROMEO, &mut juliet, now);
    assert_eq!(
        ended(&events(&mut romeo)),
        Some((Reason::Cancel, EndedBy::Us))
    );
    assert_eq!(
        ended(&events(&mut juliet)),
        Some((Reason::Cancel, EndedBy::Peer))
    );
    assert!(juliet.accept(now).is_err(), "nothing left to accept");
}

#[test]
fn an_unanswered_call_is_retracted_after_the_ring_timeout() {
    let now = Instant::now();
    let (mut romeo, mut juliet) = proposed(now);
    stanzas(&mut juliet);
    let deadline = romeo.poll_timeout().unwrap();
    assert_eq!(deadline, now + Duration::from_secs(60));
    romeo.handle_timeout(deadline - Duration::from_millis(1));
    assert_eq!(romeo.state(), CallState::Proposing);
    romeo.handle_timeout(deadline);
    deliver(&mut romeo, ROMEO, &mut juliet, deadline);
    assert_eq!(
        ended(&events(&mut romeo)),
        Some((Reason::Timeout, EndedBy::Timeout))
    );
    assert_eq!(
        ended(&events(&mut juliet)),
        Some((Reason::Timeout, EndedBy::Peer))
    );
}

#[test]
fn another_device_answering_stops_ringing_here() {
    let now = Instant::now();
    for answer in [
        JingleMessage::Proceed { id: SID.into() },
        JingleMessage::Accept { id: SID.into() },
        JingleMessage::Reject {
            id: SID.into(),
            reason: None,
        },
    ] {
        let (_romeo, mut juliet) = proposed(now);
        events(&mut juliet);
        // Our own message reflected back changes nothing.
        juliet.handle_message(now, JULIET, answer.clone(), true);
        assert_eq!(juliet.state(), CallState::Ringing);
        // A carbon from her phone does.
        juliet.handle_message(now, JULIET_PHONE, answer, true);
        assert_eq!(
            ended(&events(&mut juliet)).map(|e| e.1),
            Some(EndedBy::Elsewhere)
        );
        assert!(
            stanzas(&mut juliet).iter().all(|s| s.contains("<ringing")),
            "nothing sent"
        );
    }
}

#[test]
fn a_stranger_is_asked_about_and_not_told_that_we_ring() {
    let now = Instant::now();
    let mut juliet = JingleCall::incoming_proposal(
        CallConfig::new(JULIET),
        now,
        "mallory@evil.example/x",
        "m1",
        vec!["audio".into()],
        false,
    );
    assert!(matches!(
        &events(&mut juliet)[0],
        CallEvent::Incoming { known: false, .. }
    ));
    assert!(
        stanzas(&mut juliet).is_empty(),
        "no <ringing/> to a stranger"
    );

    // A session-initiate straight from a stranger, without a proposal: acked, asked about.
    let (mut romeo, _) = proposed(now);
    romeo.set_local_description(now, offer()).unwrap();
    romeo.handle_message(
        now,
        JULIET,
        JingleMessage::Proceed { id: SID.into() },
        false,
    );
    let initiate = stanzas(&mut romeo).pop().unwrap();
    let el: Element = initiate.parse().unwrap();
    let jingle = Jingle::from_element(el.children().next().unwrap()).unwrap();
    let mut juliet =
        JingleCall::incoming_session(CallConfig::new(JULIET), now, ROMEO, "iq1", jingle, false);
    let ev = events(&mut juliet);
    assert!(matches!(&ev[0], CallEvent::RemoteOffer(_)));
    assert!(matches!(&ev[1], CallEvent::Incoming { known: false, .. }));
    let out = stanzas(&mut juliet);
    assert_eq!(out.len(), 1, "only the ack, no ringing info: {out:?}");
    assert!(out[0].contains("type='result'") && out[0].contains("id='iq1'"));
    assert_eq!(juliet.state(), CallState::Ringing);
}

#[test]
fn a_direct_session_without_message_initiation_works_both_ways() {
    let now = Instant::now();
    let mut romeo = JingleCall::initiate(CallConfig::new(ROMEO), now, SID, JULIET);
    romeo.set_local_description(now, offer()).unwrap();
    let out = stanzas(&mut romeo);
    let el: Element = out[0].parse().unwrap();
    assert_eq!(el.attr("to"), Some(JULIET));
    let jingle = Jingle::from_element(el.children().next().unwrap()).unwrap();
    assert_eq!(jingle.initiator.as_deref(), Some(ROMEO));
    let mut juliet = JingleCall::incoming_session(
        CallConfig::new(JULIET),
        now,
        ROMEO,
        el.attr("id").unwrap(),
        jingle,
        true,
    );
    events(&mut juliet);
    // Ack and session-info ringing.
    deliver(&mut juliet, JULIET, &mut romeo, now);
    assert_eq!(events(&mut romeo), [CallEvent::PeerRinging]);
    juliet.set_local_description(now, answer()).unwrap();
    assert!(
        stanzas(&mut juliet).is_empty(),
        "not accepted by the person yet"
    );
    juliet.accept(now).unwrap();
    deliver(&mut juliet, JULIET, &mut romeo, now);
    let ev = events(&mut romeo);
    assert!(matches!(ev[0], CallEvent::RemoteAnswer(_)) && ev[1] == CallEvent::Accepted);
    // The callee rejects nothing now; a busy callee would have: see the rejection test.
    romeo.hangup(now);
    deliver(&mut romeo, ROMEO, &mut juliet, now);
    assert_eq!(
        ended(&events(&mut juliet)),
        Some((Reason::Success, EndedBy::Peer))
    );
}

#[test]
fn hold_and_mute_reach_the_peer() {
    let now = Instant::now();
    let (mut romeo, mut juliet) = active(now);
    romeo.hold(now, true).unwrap();
    romeo.mute(now, true, Some("0")).unwrap();
    romeo.mute(now, false, None).unwrap();
    romeo.hold(now, false).unwrap();
    deliver(&mut romeo, ROMEO, &mut juliet, now);
    assert_eq!(
        events(&mut juliet),
        [
            CallEvent::PeerHold(true),
            CallEvent::PeerMute {
                content: Some("0".into()),
                muted: true
            },
            CallEvent::PeerMute {
                content: None,
                muted: false
            },
            CallEvent::PeerHold(false),
        ]
    );
    deliver(&mut juliet, JULIET, &mut romeo, now);
    assert_eq!(romeo.poll_timeout(), None, "all acknowledged");
    // Not before the call is active.
    let (mut r, _) = proposed(now);
    assert!(r.hold(now, true).is_err());
}

#[test]
fn video_is_added_accepted_and_removed() {
    let now = Instant::now();
    let (mut romeo, mut juliet) = active(now);
    // Romeo turns his camera on: a new offer with a video section.
    let with_video = sdp(
        "romo",
        "actpass",
        &[("0", "audio", true), ("1", "video", true)],
    );
    romeo.set_local_description(now, with_video).unwrap();
    deliver(&mut romeo, ROMEO, &mut juliet, now);
    let ev = events(&mut juliet);
    let CallEvent::RemoteOffer(remote) = &ev[0] else {
        panic!("{ev:?}")
    };
    assert_eq!(
        remote.media.len(),
        2,
        "the whole session, old and new sections"
    );
    assert_eq!(remote.media[1].mid(), Some("1"));
    juliet
        .set_local_description(
            now,
            sdp(
                "juli",
                "active",
                &[("0", "audio", true), ("1", "video", true)],
            ),
        )
        .unwrap();
    deliver(&mut juliet, JULIET, &mut romeo, now);
    let ev = events(&mut romeo);
    let CallEvent::RemoteAnswer(remote) = &ev[0] else {
        panic!("{ev:?}")
    };
    assert_eq!(remote.media.len(), 2);
    assert!(!remote.media[1].is_rejected());
    assert_eq!(ev[1], CallEvent::ContentsAccepted(vec!["1".into()]));
    deliver(&mut romeo, ROMEO, &mut juliet, now);

    // And off again.
    romeo.remove_content(now, &["1"]).unwrap();
    deliver(&mut romeo, ROMEO, &mut juliet, now);
    assert_eq!(
        events(&mut juliet),
        [CallEvent::ContentsRemoved(vec!["1".into()])]
    );
    assert!(romeo.remove_content(now, &["9"]).is_err());
}

#[test]
fn the_peer_stopping_its_camera_with_content_modify_is_a_new_remote_offer() {
    let now = Instant::now();
    let (mut romeo, _juliet) = active(now);
    // Juliet (the responder) stops sending in content 0: only the initiator sends now.
    let modify = Jingle::from_element(
        &format!(
            "<jingle xmlns='urn:xmpp:jingle:1' action='content-modify' sid='{SID}'>\
             <content creator='initiator' name='0' senders='initiator'/></jingle>"
        )
        .parse()
        .unwrap(),
    )
    .unwrap();
    romeo.handle_jingle(now, JULIET, "cm1", modify.clone());
    assert!(stanzas(&mut romeo)[0].contains("type='result'"));
    let ev = events(&mut romeo);
    let CallEvent::RemoteOffer(remote) = &ev[0] else {
        panic!("{ev:?}")
    };
    // Written by the responder: it only receives.
    assert_eq!(remote.direction(0), Some(lyrebird_sdp::Direction::RecvOnly));
    assert_eq!(
        remote.ice_credentials(0).map(|c| c.0),
        Some("juli"),
        "same transport"
    );
    // Our answer needs no Jingle message.
    romeo
        .set_local_description(now, sdp("romo", "active", &[("0", "audio", true)]))
        .unwrap();
    assert!(stanzas(&mut romeo).is_empty());
    // The same again changes nothing.
    romeo.handle_jingle(now, JULIET, "cm2", modify);
    stanzas(&mut romeo);
    assert!(events(&mut romeo).is_empty());
}

#[test]
fn video_the_peer_refuses_comes_back_rejected() {
    let now = Instant::now();
    let (mut romeo, mut juliet) = active(now);
    let with_video = sdp(
        "juli",
        "actpass",
        &[("0", "audio", true), ("1", "video", true)],
    );
    // This time Juliet adds video, and Romeo's engine answers with the section rejected.
    juliet.set_local_description(now, with_video).unwrap();
    deliver(&mut juliet, JULIET, &mut romeo, now);
    assert!(matches!(&events(&mut romeo)[0], CallEvent::RemoteOffer(_)));
    romeo
        .set_local_description(
            now,
            sdp(
                "romo",
                "active",
                &[("0", "audio", true), ("1", "video", false)],
            ),
        )
        .unwrap();
    deliver(&mut romeo, ROMEO, &mut juliet, now);
    let ev = events(&mut juliet);
    let CallEvent::RemoteAnswer(remote) = &ev[0] else {
        panic!("{ev:?}")
    };
    assert!(
        remote.media[1].is_rejected(),
        "answered with port 0 for the media engine"
    );
    assert_eq!(ev[1], CallEvent::ContentsRejected(vec!["1".into()]));
    assert_eq!(juliet.state(), CallState::Active, "the audio goes on");
}

#[test]
fn candidates_that_arrive_before_the_answer_wait_for_it() {
    let now = Instant::now();
    let mut romeo = JingleCall::initiate(CallConfig::new(ROMEO), now, SID, JULIET);
    romeo.set_local_description(now, offer()).unwrap();
    let initiate: Element = stanzas(&mut romeo)[0].parse().unwrap();
    let jingle = Jingle::from_element(initiate.children().next().unwrap()).unwrap();
    let mut juliet =
        JingleCall::incoming_session(CallConfig::new(JULIET), now, ROMEO, "i", jingle, true);
    events(&mut juliet);
    stanzas(&mut juliet);
    // Juliet's peer (say, a browser) trickles before it accepts: hand-made transport-info.
    let info = format!(
        "<jingle xmlns='urn:xmpp:jingle:1' action='transport-info' sid='{SID}'>\
         <content creator='initiator' name='0'>\
         <transport xmlns='urn:xmpp:jingle:transports:ice-udp:1' ufrag='juli' pwd='x'>\
         <candidate component='1' foundation='1' generation='0' id='c' ip='192.0.2.9' port='7000' \
          priority='1' protocol='udp' type='host'/></transport></content></jingle>"
    );
    let info = Jingle::from_element(&info.parse().unwrap()).unwrap();
    romeo.handle_jingle(now, JULIET, "t1", info);
    assert!(events(&mut romeo).is_empty(), "held until the answer");
    assert!(stanzas(&mut romeo)[0].contains("type='result'"));
    juliet.set_local_description(now, answer()).unwrap();
    juliet.accept(now).unwrap();
    deliver(&mut juliet, JULIET, &mut romeo, now);
    let ev = events(&mut romeo);
    assert!(matches!(ev[0], CallEvent::RemoteAnswer(_)));
    assert!(
        ev.iter()
            .any(|e| matches!(e, CallEvent::RemoteCandidate(c) if c.candidate.contains(" 7000 ")))
    );
}

#[test]
fn iq_errors_and_silence_end_the_setup_but_not_the_call() {
    let now = Instant::now();
    // session-initiate refused (the device went away).
    let mut romeo = JingleCall::initiate(CallConfig::new(ROMEO), now, SID, JULIET);
    romeo.set_local_description(now, offer()).unwrap();
    let initiate: Element = stanzas(&mut romeo)[0].parse().unwrap();
    let id = initiate.attr("id").unwrap();
    let error: Element = iq_error(ROMEO, id, "cancel", "service-unavailable", None)
        .parse()
        .unwrap();
    receive(&mut romeo, JULIET, &error, now);
    assert_eq!(
        ended(&events(&mut romeo)).map(|e| e.1),
        Some(EndedBy::Error("service-unavailable".into()))
    );
    assert!(
        stanzas(&mut romeo).is_empty(),
        "no terminate for a session the peer never had"
    );

    // session-initiate never answered: terminated with timeout after the IQ deadline.
    let mut romeo = JingleCall::initiate(CallConfig::new(ROMEO), now, SID, JULIET);
    romeo.set_local_description(now, offer()).unwrap();
    stanzas(&mut romeo);
    let deadline = romeo.poll_timeout().unwrap();
    assert_eq!(deadline, now + Duration::from_secs(20));
    romeo.handle_timeout(deadline);
    assert_eq!(
        ended(&events(&mut romeo)),
        Some((Reason::Timeout, EndedBy::Timeout))
    );
    assert!(stanzas(&mut romeo)[0].contains("session-terminate"));

    // A lost transport-info or session-info only warns.
    let (mut romeo, _juliet) = active(now);
    romeo.hold(now, true).unwrap();
    romeo
        .add_local_candidate(now, "0", &candidate(5002))
        .unwrap();
    stanzas(&mut romeo);
    romeo.handle_timeout(now + Duration::from_secs(21));
    let ev = events(&mut romeo);
    assert_eq!(ev.len(), 2);
    assert!(ev.iter().all(|e| matches!(e, CallEvent::Warning(_))));
    assert_eq!(romeo.state(), CallState::Active);
}

#[test]
fn jingle_for_another_session_or_out_of_order_is_refused() {
    let now = Instant::now();
    let (mut romeo, mut juliet) = active(now);
    // Wrong sid, and the right sid from a third party.
    let other = Jingle::new(lyrebird_xmpp::jingle::Action::SessionInfo, "other");
    romeo.handle_jingle(now, JULIET, "x1", other);
    let same = Jingle::new(lyrebird_xmpp::jingle::Action::SessionTerminate, SID);
    romeo.handle_jingle(now, "mallory@evil.example/x", "x2", same);
    let out = stanzas(&mut romeo);
    assert!(
        out.iter()
            .all(|s| s.contains("item-not-found") && s.contains("unknown-session"))
    );
    assert_eq!(romeo.state(), CallState::Active);
    // A second session-accept.
    let again = Jingle::new(lyrebird_xmpp::jingle::Action::SessionAccept, SID);
    romeo.handle_jingle(now, JULIET, "x3", again);
    let out = stanzas(&mut romeo);
    assert!(out[0].contains("unexpected-request") && out[0].contains("out-of-order"));
    // Unsupported actions.
    let replace = Jingle::new(lyrebird_xmpp::jingle::Action::TransportReplace, SID);
    juliet.handle_jingle(now, ROMEO, "x4", replace);
    assert!(stanzas(&mut juliet)[0].contains("feature-not-implemented"));
}

#[test]
fn a_hostile_session_initiate_is_acked_then_terminated_with_its_reason() {
    let now = Instant::now();
    let no_fingerprint = format!(
        "<jingle xmlns='urn:xmpp:jingle:1' action='session-initiate' sid='{SID}'>\
         <content creator='initiator' name='0'>\
         <description xmlns='urn:xmpp:jingle:apps:rtp:1' media='audio'>\
         <payload-type id='0' name='PCMU' clockrate='8000'/></description>\
         <transport xmlns='urn:xmpp:jingle:transports:ice-udp:1' ufrag='u' pwd='p'/>\
         </content></jingle>"
    );
    let jingle = Jingle::from_element(&no_fingerprint.parse().unwrap()).unwrap();
    let mut juliet =
        JingleCall::incoming_session(CallConfig::new(JULIET), now, ROMEO, "i", jingle, true);
    let out = stanzas(&mut juliet);
    assert!(out[0].contains("type='result'"));
    assert!(out[1].contains("session-terminate") && out[1].contains("security-error"));
    let ev = events(&mut juliet);
    assert!(
        !ev.iter().any(|e| matches!(e, CallEvent::Incoming { .. })),
        "never rings"
    );
    assert_eq!(ended(&ev), Some((Reason::SecurityError, EndedBy::Us)));
}

#[test]
fn crossed_proposals_and_sessions_break_the_tie_the_same_way_on_both_sides() {
    let now = Instant::now();
    let mut a = JingleCall::propose(
        CallConfig::new(ROMEO),
        now,
        "aaa",
        "juliet@capulet.lit",
        &["audio"],
    );
    let mut b = JingleCall::propose(
        CallConfig::new(JULIET),
        now,
        "bbb",
        "romeo@montague.lit",
        &["audio"],
    );
    stanzas(&mut a);
    stanzas(&mut b);
    assert!(a.resolve_crossed_proposal("bbb"), "the lower id wins");
    assert!(!b.resolve_crossed_proposal("aaa"));
    let out = stanzas(&mut b);
    assert!(out[0].contains("<retract") && out[0].contains("expired"));
    assert_eq!(ended(&events(&mut b)), Some((Reason::Expired, EndedBy::Us)));
    assert!(a.state() == CallState::Proposing);
    assert!(session_initiate_wins("aaa", "bbb") && !session_initiate_wins("bbb", "aaa"));
}

mod virtual_time {
    //! Two cores against each other in virtual time with loss and delay (DESIGN.md, tests
    //! layer 2): whatever the people do and whatever the network loses, nothing panics, no
    //! deadline stays due once handled, and once both hang up and time passes both calls end.

    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Romeo(u8),
        Juliet(u8),
        /// Deliver the oldest stanza in flight from Romeo (true) or Juliet (false).
        Deliver(bool),
        /// Lose it.
        Drop(bool),
        Advance(u16),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u8..10).prop_map(Op::Romeo),
            (0u8..10).prop_map(Op::Juliet),
            any::<bool>().prop_map(Op::Deliver),
            any::<bool>().prop_map(Op::Drop),
            (0u16..90).prop_map(Op::Advance),
        ]
    }

    fn command(call: &mut JingleCall, local: &str, now: Instant, which: u8) {
        let ufrag = if local == ROMEO { "romo" } else { "juli" };
        let _ = match which {
            0 => call.accept(now),
            1 => call.reject(now, Reason::Busy),
            2 => {
                call.hangup(now);
                Ok(())
            }
            3 => call.set_local_description(now, sdp(ufrag, "actpass", &[("0", "audio", true)])),
            4 => call.set_local_description(
                now,
                sdp(
                    ufrag,
                    "active",
                    &[("0", "audio", true), ("1", "video", true)],
                ),
            ),
            5 => call.add_local_candidate(now, "0", &candidate(5000)),
            6 => call.hold(now, true),
            7 => call.mute(now, true, Some("0")),
            8 => call.remove_content(now, &["1"]),
            _ => {
                call.fail(now, Reason::ConnectivityError);
                Ok(())
            }
        };
    }

    fn settle(call: &mut JingleCall, now: Instant) {
        for _ in 0..4 {
            match call.poll_timeout() {
                Some(at) if at <= now => call.handle_timeout(now),
                _ => break,
            }
        }
        assert!(
            call.poll_timeout().is_none_or(|at| at > now),
            "a deadline stays due"
        );
    }

    /// Moves every stanza a side wants to send into its flight queue.
    fn collect(call: &mut JingleCall, flight: &mut Vec<Element>) {
        while let Some(out) = call.poll_transmit() {
            flight.push(out.xml.parse().expect("our stanzas are XML"));
        }
        while call.poll_event().is_some() {}
    }

    fn arrive(to: &mut JingleCall, from: &str, el: &Element, now: Instant) {
        // Messages to our own account go nowhere here; the rest reaches the peer.
        if el
            .attr("to")
            .is_some_and(|t| t.split('/').next() == from.split('/').next())
        {
            return;
        }
        receive(to, from, el, now);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
        #[test]
        fn any_sequence_of_actions_and_losses_ends_cleanly(ops in proptest::collection::vec(op(), 1..60)) {
            let mut now = Instant::now();
            let (mut romeo, mut juliet) = proposed(now);
            let (mut from_romeo, mut from_juliet) = (Vec::new(), Vec::new());
            for op in ops {
                match op {
                    Op::Romeo(k) => command(&mut romeo, ROMEO, now, k),
                    Op::Juliet(k) => command(&mut juliet, JULIET, now, k),
                    Op::Deliver(true) if !from_romeo.is_empty() => {
                        let el = from_romeo.remove(0);
                        arrive(&mut juliet, ROMEO, &el, now);
                    }
                    Op::Deliver(false) if !from_juliet.is_empty() => {
                        let el = from_juliet.remove(0);
                        arrive(&mut romeo, JULIET, &el, now);
                    }
                    Op::Drop(true) if !from_romeo.is_empty() => { from_romeo.remove(0); }
                    Op::Drop(false) if !from_juliet.is_empty() => { from_juliet.remove(0); }
                    Op::Advance(secs) => now += Duration::from_secs(u64::from(secs)),
                    _ => {}
                }
                settle(&mut romeo, now);
                settle(&mut juliet, now);
                collect(&mut romeo, &mut from_romeo);
                collect(&mut juliet, &mut from_juliet);
            }
            // Both hang up; everything in flight arrives; time passes.
            romeo.hangup(now);
            juliet.hangup(now);
            for _ in 0..8 {
                collect(&mut romeo, &mut from_romeo);
                collect(&mut juliet, &mut from_juliet);
                for el in std::mem::take(&mut from_romeo) { arrive(&mut juliet, ROMEO, &el, now); }
                for el in std::mem::take(&mut from_juliet) { arrive(&mut romeo, JULIET, &el, now); }
                now += Duration::from_secs(120);
                settle(&mut romeo, now);
                settle(&mut juliet, now);
            }
            prop_assert_eq!(romeo.state(), CallState::Ended);
            prop_assert_eq!(juliet.state(), CallState::Ended);
            prop_assert_eq!(romeo.poll_timeout(), None);
            prop_assert_eq!(juliet.poll_timeout(), None);
        }
    }
}
