//! Jingle as a peer writes it: a `<jingle/>` element or a XEP-0353 message, read, written back,
//! mapped to SDP for the media engine, and handed to a call core.

use std::time::Instant;

use lyrebird_sdp::SessionDescription;
use lyrebird_xmpp::jingle::sdp::{jingle_to_sdp, sdp_to_jingle, trickle_candidates};
use lyrebird_xmpp::jingle::{CallConfig, Creator, Jingle, JingleCall, JingleMedia, JingleMessage};
use lyrebird_xmpp::xml::{MAX_NESTING, nests_deeper_than};
use xmpp_parsers::minidom::Element;

use crate::settle_timers;

/// One element. What reads as a `<jingle/>` must read back the same from what we write, and
/// whatever maps to SDP must be SDP the one parser reads (the media engine gets nothing else).
pub fn element(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if nests_deeper_than(&text, MAX_NESTING) {
        return; // the client drops these before parsing
    }
    let Ok(el) = text.parse::<Element>() else {
        return;
    };
    if let Some(Ok(message)) = JingleMessage::from_message(&el) {
        let written = message.to_stanza("romeo@montague.lit", "m1");
        let Ok(again) = written.parse::<Element>() else {
            panic!("a call message we write is not XML: {written:?}");
        };
        let again = JingleMessage::from_message(&again);
        assert!(
            matches!(&again, Some(Ok(m)) if *m == message),
            "a call message changed on the way back: {written:?}"
        );
    }
    let Ok(jingle) = Jingle::from_element(&el) else {
        return;
    };
    let written = jingle.to_xml().build();
    let Ok(again) = written.parse::<Element>() else {
        panic!("a <jingle/> we write is not XML: {written:?}");
    };
    match Jingle::from_element(&again) {
        Ok(again) => assert_eq!(again, jingle, "a <jingle/> changed on the way back"),
        Err(e) => panic!("a <jingle/> we write does not read back ({e}): {written:?}"),
    }
    let media = JingleMedia::of(&jingle);
    for describer in [Creator::Initiator, Creator::Responder] {
        if let Ok(sdp) = jingle_to_sdp(&media, &describer, &jingle.sid, 1, None) {
            let text = sdp.to_string();
            let Ok(read) = SessionDescription::parse(&text) else {
                panic!("SDP mapped from Jingle does not parse: {text:?}");
            };
            let _ = sdp_to_jingle(&read, &describer, &Creator::Initiator);
        }
    }
    let _ = trickle_candidates(&jingle);

    // A call core that gets it as a session-initiate, then as every later action.
    let now = Instant::now();
    let from = "romeo@montague.lit/orchard";
    let config = CallConfig::new("alice@localhost/phone");
    let mut call = JingleCall::incoming_session(config, now, from, "i1", jingle.clone(), true);
    let _ = call.accept(now);
    call.handle_jingle(now, from, "i2", jingle);
    while call.poll_transmit().is_some() {}
    while call.poll_event().is_some() {}
    settle_timers(
        now + std::time::Duration::from_secs(3600),
        &mut call,
        JingleCall::poll_timeout,
        JingleCall::handle_timeout,
    );
}
