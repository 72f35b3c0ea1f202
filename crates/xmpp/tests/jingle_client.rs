//! The client stream routing call signalling: Jingle IQs and XEP-0353 messages to the engine's
//! call cores, their stanzas out and the answers back, call features in disco, XEP-0215.

mod common;
use common::{attr, drain};

use std::time::{Duration, Instant};

use lyrebird_xmpp::jingle::caps::call_features;
use lyrebird_xmpp::jingle::{CallConfig, JingleCall, JingleError, JingleMessage};
use lyrebird_xmpp::*;

const OPEN: &str =
    "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' from='localhost' id='x' version='1.0'/>";
const FEATURES_PLAIN_ONLY: &str = "<stream:features xmlns:stream='http://etherx.jabber.org/streams'><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms></stream:features>";
const FEATURES_BIND: &str = "<stream:features xmlns:stream='http://etherx.jabber.org/streams'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>";
const ROMEO: &str = "romeo@montague.lit/orchard";

fn signals(c: &mut Client) -> Vec<CallSignal> {
    std::iter::from_fn(|| c.poll_call_signal()).collect()
}

fn online(calls: bool, now: Instant) -> Client {
    let mut config = ClientConfig::new("alice@localhost", "alice-secret");
    config.allow_plain = true;
    config.calls = calls;
    if calls {
        config.extra_features = call_features(true).into_iter().map(String::from).collect();
    }
    let mut c = Client::new(config).unwrap();
    c.handle_connected(now);
    c.handle_frame(now, OPEN);
    c.handle_frame(now, FEATURES_PLAIN_ONLY);
    c.handle_frame(now, "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
    c.handle_frame(now, OPEN);
    c.handle_frame(now, FEATURES_BIND);
    let sent = drain(&mut c);
    let bind = sent.iter().find(|s| s.contains("xmpp-bind")).unwrap();
    let id = attr(bind, "id").to_owned();
    c.handle_frame(now, &format!("<iq xmlns='jabber:client' type='result' id='{id}'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>alice@localhost/desk</jid></bind></iq>"));
    drain(&mut c);
    assert!(c.is_online());
    std::iter::from_fn(|| c.poll_event()).for_each(drop);
    c
}

fn initiate(sid: &str, transport_ns: &str) -> String {
    format!(
        "<iq xmlns='jabber:client' type='set' from='{ROMEO}' to='alice@localhost/desk' id='j1'>\
         <jingle xmlns='urn:xmpp:jingle:1' action='session-initiate' sid='{sid}' initiator='{ROMEO}'>\
         <content creator='initiator' name='0'>\
         <description xmlns='urn:xmpp:jingle:apps:rtp:1' media='audio'>\
         <payload-type id='111' name='opus' clockrate='48000' channels='2'/><rtcp-mux/></description>\
         <transport xmlns='{transport_ns}' ufrag='u' pwd='pppppppppppppppppppppp'>\
         <fingerprint xmlns='urn:xmpp:jingle:apps:dtls:0' hash='sha-256' setup='actpass'>AB:CD</fingerprint>\
         </transport></content></jingle></iq>"
    )
}

#[test]
fn without_calls_jingle_is_refused_as_before() {
    let now = Instant::now();
    let mut c = online(false, now);
    c.handle_frame(now, &initiate("s1", "urn:xmpp:jingle:transports:ice-udp:1"));
    let sent = drain(&mut c);
    assert!(sent[0].contains("service-unavailable") && sent[0].contains("id='j1'"));
    assert!(signals(&mut c).is_empty());
}

#[test]
fn a_session_initiate_reaches_a_call_core_whose_stanzas_and_answers_go_through_the_client() {
    let now = Instant::now();
    let mut c = online(true, now);
    c.handle_frame(now, &initiate("s1", "urn:xmpp:jingle:transports:ice-udp:1"));
    assert!(
        drain(&mut c).is_empty(),
        "the engine answers, through the call core"
    );
    let mut signal = signals(&mut c);
    let CallSignal::Jingle {
        from,
        id,
        sid,
        action,
        jingle,
    } = signal.remove(0)
    else {
        panic!()
    };
    assert_eq!(
        (from.as_str(), id.as_str(), sid.as_str(), action.as_str()),
        (ROMEO, "j1", "s1", "session-initiate")
    );
    let mut call = JingleCall::incoming_session(
        CallConfig::new("alice@localhost/desk"),
        now,
        &from,
        &id,
        jingle.unwrap(),
        true,
    );
    while let Some(out) = call.poll_transmit() {
        c.send_call_stanza(now, &out);
    }
    let sent = drain(&mut c);
    assert!(sent[0].contains("type='result'") && sent[0].contains("id='j1'"));
    assert!(sent[1].contains("<ringing"), "session-info ringing");
    let ringing_id = attr(&sent[1], "id").to_owned();
    c.handle_frame(
        now,
        &format!("<iq xmlns='jabber:client' type='result' from='{ROMEO}' id='{ringing_id}'/>"),
    );
    assert_eq!(
        signals(&mut c),
        [CallSignal::IqResult {
            id: ringing_id.clone()
        }]
    );
    call.handle_iq_result(now, &ringing_id);
    assert_eq!(
        call.poll_timeout(),
        Some(now + Duration::from_secs(60)),
        "only the ring timer"
    );

    // An error for one of the core's IQs, and one the server never answers.
    call.hold(now, true).unwrap_err();
    call.hangup(now);
    while let Some(out) = call.poll_transmit() {
        c.send_call_stanza(now, &out);
    }
    let terminate = drain(&mut c).pop().unwrap();
    let tid = attr(&terminate, "id").to_owned();
    c.handle_frame(now, &format!("<iq xmlns='jabber:client' type='error' from='{ROMEO}' id='{tid}'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"));
    assert_eq!(
        signals(&mut c),
        [CallSignal::IqError {
            id: tid,
            condition: "item-not-found".into()
        }]
    );
}

#[test]
fn a_session_initiate_that_cannot_be_a_call_still_reaches_the_engine_with_its_reason() {
    let now = Instant::now();
    let mut c = online(true, now);
    c.handle_frame(now, &initiate("s2", "urn:xmpp:jingle:transports:s5b:1"));
    let signal = signals(&mut c);
    let CallSignal::Jingle {
        jingle: Err(e),
        sid,
        ..
    } = &signal[0]
    else {
        panic!("{signal:?}")
    };
    assert_eq!(sid, "s2");
    assert!(matches!(e, JingleError::UnknownTransport { .. }));
    // The engine acks and terminates with the reason the error maps to.
    for out in lyrebird_xmpp::jingle::session::refuse_session_initiate(
        "alice@localhost/desk",
        ROMEO,
        "j1",
        sid,
        e,
    ) {
        c.send_call_stanza(now, &out);
    }
    let sent = drain(&mut c);
    assert!(sent[0].contains("type='result'") && sent[0].contains("id='j1'"));
    assert!(sent[1].contains("session-terminate") && sent[1].contains("<unsupported-transports"));
    // A Jingle IQ without a sid is refused by the client itself.
    c.handle_frame(now, "<iq xmlns='jabber:client' type='set' from='romeo@montague.lit/orchard' id='j9'><jingle xmlns='urn:xmpp:jingle:1' action='session-info'/></iq>");
    assert!(drain(&mut c)[0].contains("bad-request"));
}

#[test]
fn call_messages_come_live_and_as_carbons_from_our_other_devices() {
    let now = Instant::now();
    let mut c = online(true, now);
    c.handle_frame(now, &format!("<message xmlns='jabber:client' type='chat' from='{ROMEO}' to='alice@localhost' id='m1'><propose xmlns='urn:xmpp:jingle-message:0' id='s3'><description xmlns='urn:xmpp:jingle:apps:rtp:1' media='audio'/><description xmlns='urn:xmpp:jingle:apps:rtp:1' media='video'/></propose><store xmlns='urn:xmpp:hints'/></message>"));
    let signal = signals(&mut c);
    assert_eq!(
        signal,
        [CallSignal::Message {
            from: ROMEO.into(),
            peer: "romeo@montague.lit".into(),
            ours: false,
            message: JingleMessage::Propose {
                id: "s3".into(),
                media: vec!["audio".into(), "video".into()]
            },
        }]
    );
    // Our phone proceeded: the sent carbon tells this device to stop ringing.
    c.handle_frame(now, &format!("<message xmlns='jabber:client' from='alice@localhost' to='alice@localhost/desk'><sent xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' type='chat' from='alice@localhost/phone' to='{ROMEO}' id='p1'><proceed xmlns='urn:xmpp:jingle-message:0' id='s3'/></message></forwarded></sent></message>"));
    let signal = signals(&mut c);
    let CallSignal::Message {
        ours: true,
        peer,
        message: JingleMessage::Proceed { id },
        ..
    } = &signal[0]
    else {
        panic!("{signal:?}")
    };
    assert_eq!((peer.as_str(), id.as_str()), ("romeo@montague.lit", "s3"));
    // The older form: <accept/> sent by the phone to our bare JID.
    c.handle_frame(now, "<message xmlns='jabber:client' type='chat' from='alice@localhost/phone' to='alice@localhost' id='a1'><accept xmlns='urn:xmpp:jingle-message:0' id='s3'/></message>");
    assert!(matches!(
        &signals(&mut c)[0],
        CallSignal::Message { ours: true, .. }
    ));
    // A forged carbon from someone else is not a call signal.
    c.handle_frame(now, &format!("<message xmlns='jabber:client' from='{ROMEO}' to='alice@localhost/desk'><sent xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' type='chat' from='alice@localhost/phone' to='{ROMEO}'><proceed xmlns='urn:xmpp:jingle-message:0' id='s3'/></message></forwarded></sent></message>"));
    assert!(signals(&mut c).is_empty());
    // A malformed one is a warning, not a signal.
    c.handle_frame(now, &format!("<message xmlns='jabber:client' type='chat' from='{ROMEO}'><propose xmlns='urn:xmpp:jingle-message:0'/></message>"));
    assert!(signals(&mut c).is_empty());
}

#[test]
fn call_features_are_advertised_only_when_configured_and_change_the_caps_ver() {
    let now = Instant::now();
    let disco = "<iq xmlns='jabber:client' type='get' from='romeo@montague.lit/orchard' id='d1'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>";
    let mut without = online(false, now);
    without.handle_frame(now, disco);
    let plain = drain(&mut without).pop().unwrap();
    assert!(!plain.contains("urn:xmpp:jingle:1"));
    let mut with = online(true, now);
    with.handle_frame(now, disco);
    let calls = drain(&mut with).pop().unwrap();
    for feature in call_features(true) {
        assert!(calls.contains(&format!("var='{feature}'")), "{feature}");
    }
    without.set_presence(None, None, 0);
    with.set_presence(None, None, 0);
    let (a, b) = (
        drain(&mut without).pop().unwrap(),
        drain(&mut with).pop().unwrap(),
    );
    assert_ne!(attr(&a, "ver"), attr(&b, "ver"));
}

#[test]
fn stun_and_turn_services_come_from_the_server() {
    let now = Instant::now();
    let mut c = online(true, now);
    c.request_ice_servers(now);
    let sent = drain(&mut c).pop().unwrap();
    assert!(
        sent.contains("<services xmlns='urn:xmpp:extdisco:2'/>") && sent.contains("to='localhost'")
    );
    let id = attr(&sent, "id").to_owned();
    c.handle_frame(now, &format!("<iq xmlns='jabber:client' type='result' from='localhost' id='{id}'><services xmlns='urn:xmpp:extdisco:2'><service host='127.0.0.1' port='3478' transport='udp' type='turn' username='1700000000:alice' password='pw'/></services></iq>"));
    let signal = signals(&mut c);
    let CallSignal::IceServers(servers) = &signal[0] else {
        panic!("{signal:?}")
    };
    assert_eq!(servers[0].url, "turn:127.0.0.1:3478?transport=udp");
    // A server without XEP-0215: an empty list, not silence.
    c.request_ice_servers(now);
    let id = attr(&drain(&mut c).pop().unwrap(), "id").to_owned();
    c.handle_frame(now, &format!("<iq xmlns='jabber:client' type='error' from='localhost' id='{id}'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"));
    assert_eq!(signals(&mut c), [CallSignal::IceServers(Vec::new())]);
}

#[test]
fn every_device_announcing_known_caps_gets_its_features_with_one_query_per_ver() {
    let now = Instant::now();
    let mut c = online(true, now);
    let presence = |from: &str| {
        format!(
            "<presence xmlns='jabber:client' from='{from}'><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='https://app.example' ver='V1='/></presence>"
        )
    };
    let features = |c: &mut Client| -> Vec<String> {
        std::iter::from_fn(|| c.poll_event())
            .filter_map(|e| match e {
                XmppEvent::PeerFeatures { jid, features } => {
                    assert!(features.iter().any(|f| f == "urn:xmpp:jingle:1"));
                    Some(jid)
                }
                _ => None,
            })
            .collect()
    };
    c.handle_frame(now, &presence("romeo@montague.lit/orchard"));
    c.handle_frame(now, &presence("romeo@montague.lit/balcony"));
    let queries: Vec<String> = drain(&mut c)
        .into_iter()
        .filter(|s| s.contains("disco#info"))
        .collect();
    assert_eq!(queries.len(), 1, "one query per ver: {queries:?}");
    let id = attr(&queries[0], "id").to_owned();
    c.handle_frame(now, &format!("<iq xmlns='jabber:client' type='result' from='romeo@montague.lit/orchard' id='{id}'><query xmlns='http://jabber.org/protocol/disco#info' node='https://app.example#V1='><feature var='urn:xmpp:jingle:1'/></query></iq>"));
    let mut told = features(&mut c);
    told.sort();
    assert_eq!(
        told,
        ["romeo@montague.lit/balcony", "romeo@montague.lit/orchard"]
    );
    // Known by now: a third device is told at once, with no query.
    c.handle_frame(now, &presence("juliet@capulet.lit/chamber"));
    assert!(drain(&mut c).iter().all(|s| !s.contains("disco#info")));
    assert_eq!(features(&mut c), ["juliet@capulet.lit/chamber"]);
}
