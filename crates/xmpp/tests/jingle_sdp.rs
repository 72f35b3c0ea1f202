//! The Jingle ↔ SDP mapping against the XEPs' own examples, a Chromium offer, a peer that does
//! not bundle (Dino), and hostile input.

use lyrebird_sdp::{Attribute, Direction, SessionDescription, Setup};
use lyrebird_xmpp::jingle::sdp::{
    direction_of, jingle_to_sdp, sdp_to_jingle, senders_of, transport_info_content,
    trickle_candidates,
};
use lyrebird_xmpp::jingle::{
    Action, Creator, Jingle, JingleError, JingleMedia, MAX_CANDIDATES, MAX_CONTENTS, Senders,
};
use xmpp_parsers::minidom::Element;

fn element(xml: &str) -> Element {
    xml.parse().expect("test XML is well-formed")
}

fn parse(xml: &str) -> Result<Jingle, JingleError> {
    Jingle::from_element(&element(xml))
}

/// Writes and reads back: what we send is what a peer reads.
fn rewrite(jingle: &Jingle) -> Jingle {
    let xml = jingle.to_xml().build();
    parse(&xml).unwrap_or_else(|e| panic!("our own XML does not read back ({e}):\n{xml}"))
}

/// XEP-0167 Example 1 (Romeo's session-initiate with the audio payload types), with the ICE-UDP
/// transport of XEP-0176 Example 1 and its candidates, the DTLS fingerprint of XEP-0320
/// Example 1, XEP-0293 feedback, XEP-0294 header extensions, XEP-0339 sources, and the
/// XEP-0338 Example 1 BUNDLE group over a second (video) content.
const XEP_SESSION_INITIATE: &str = "\
<jingle xmlns='urn:xmpp:jingle:1' action='session-initiate' \
        initiator='romeo@montague.lit/orchard' sid='a73sjjvkla37jfea'>\
  <content creator='initiator' name='voice'>\
    <description xmlns='urn:xmpp:jingle:apps:rtp:1' media='audio'>\
      <payload-type id='96' name='speex' clockrate='16000'/>\
      <payload-type id='97' name='speex' clockrate='8000'/>\
      <payload-type id='18' name='G729'/>\
      <payload-type id='0' name='PCMU'/>\
      <payload-type id='103' name='L16' clockrate='16000' channels='2'/>\
      <payload-type id='98' name='x-ISAC' clockrate='8000'/>\
      <payload-type id='111' name='opus' clockrate='48000' channels='2'>\
        <parameter name='minptime' value='10'/>\
        <parameter name='useinbandfec' value='1'/>\
        <rtcp-fb xmlns='urn:xmpp:jingle:apps:rtp:rtcp-fb:0' type='transport-cc'/>\
      </payload-type>\
      <rtp-hdrext xmlns='urn:xmpp:jingle:apps:rtp:rtp-hdrext:0' id='1' \
                  uri='urn:ietf:params:rtp-hdrext:ssrc-audio-level'/>\
      <source xmlns='urn:xmpp:jingle:apps:rtp:ssma:0' ssrc='1656081975'>\
        <parameter name='cname' value='Yv/wvbCdsDW2Prgd'/>\
        <parameter name='msid' value='MLTJKIHilGn71fNQoszkQ4jlPTuS5vJyKVIv \
MLTJKIHilGn71fNQoszkQ4jlPTuS5vJyKVIva0'/>\
      </source>\
      <rtcp-mux/>\
    </description>\
    <transport xmlns='urn:xmpp:jingle:transports:ice-udp:1' \
               pwd='asd88fgpdd777uzjYhagZg' ufrag='8hhy'>\
      <fingerprint xmlns='urn:xmpp:jingle:apps:dtls:0' hash='sha-256' setup='actpass'>\
02:1A:CC:54:27:AB:EB:9C:53:3F:3E:4B:65:2E:7D:46:3F:54:42:CD:54:F1:7A:03:A2:7D:F9:B0:7F:46:19:B2\
</fingerprint>\
      <candidate component='1' foundation='1' generation='0' id='el0747fg11' \
                 ip='10.0.1.1' network='1' port='8998' priority='2130706431' \
                 protocol='udp' type='host'/>\
      <candidate component='1' foundation='2' generation='0' id='y3s2b30v3r' \
                 ip='192.0.2.3' network='1' port='45664' priority='1694498815' \
                 protocol='udp' rel-addr='10.0.1.1' rel-port='8998' type='srflx'/>\
    </transport>\
  </content>\
  <content creator='initiator' name='webcam' senders='initiator'>\
    <description xmlns='urn:xmpp:jingle:apps:rtp:1' media='video'>\
      <payload-type id='96' name='VP8' clockrate='90000'>\
        <rtcp-fb xmlns='urn:xmpp:jingle:apps:rtp:rtcp-fb:0' type='nack'/>\
        <rtcp-fb xmlns='urn:xmpp:jingle:apps:rtp:rtcp-fb:0' type='nack' subtype='pli'/>\
        <rtcp-fb xmlns='urn:xmpp:jingle:apps:rtp:rtcp-fb:0' type='ccm' subtype='fir'/>\
      </payload-type>\
      <payload-type id='97' name='rtx' clockrate='90000'>\
        <parameter name='apt' value='96'/>\
      </payload-type>\
      <source xmlns='urn:xmpp:jingle:apps:rtp:ssma:0' ssrc='1794823405'>\
        <parameter name='cname' value='Yv/wvbCdsDW2Prgd'/></source>\
      <source xmlns='urn:xmpp:jingle:apps:rtp:ssma:0' ssrc='2950281411'>\
        <parameter name='cname' value='Yv/wvbCdsDW2Prgd'/></source>\
      <ssrc-group xmlns='urn:xmpp:jingle:apps:rtp:ssma:0' semantics='FID'>\
        <source ssrc='1794823405'/><source ssrc='2950281411'/>\
      </ssrc-group>\
      <rtcp-mux/>\
    </description>\
    <transport xmlns='urn:xmpp:jingle:transports:ice-udp:1' \
               pwd='asd88fgpdd777uzjYhagZg' ufrag='8hhy'>\
      <fingerprint xmlns='urn:xmpp:jingle:apps:dtls:0' hash='sha-256' setup='actpass'>\
02:1A:CC:54:27:AB:EB:9C:53:3F:3E:4B:65:2E:7D:46:3F:54:42:CD:54:F1:7A:03:A2:7D:F9:B0:7F:46:19:B2\
</fingerprint>\
    </transport>\
  </content>\
  <group xmlns='urn:xmpp:jingle:apps:grouping:0' semantics='BUNDLE'>\
    <content name='voice'/><content name='webcam'/>\
  </group>\
</jingle>";

#[test]
fn the_xep_examples_map_to_sdp_and_back() {
    let jingle = parse(XEP_SESSION_INITIATE).unwrap();
    assert_eq!(jingle.action, Action::SessionInitiate);
    assert_eq!(jingle.sid, "a73sjjvkla37jfea");
    assert_eq!(
        jingle.initiator.as_deref(),
        Some("romeo@montague.lit/orchard")
    );
    assert_eq!(jingle, rewrite(&jingle), "our writing loses nothing");

    let media = JingleMedia::of(&jingle);
    assert!(media.is_bundled());
    let sdp = jingle_to_sdp(&media, &Creator::Initiator, &jingle.sid, 1, None).unwrap();
    // What the media engine reads: parse our text back with the one SDP parser.
    let text = sdp.to_string();
    let sdp = SessionDescription::parse(&text).unwrap();
    assert_eq!(
        sdp.bundle(),
        Some(&["voice".to_owned(), "webcam".to_owned()][..])
    );
    assert_eq!(sdp.media.len(), 2);
    let audio = &sdp.media[0];
    assert_eq!(audio.protocol, "UDP/TLS/RTP/SAVPF");
    assert_eq!(audio.mid(), Some("voice"));
    assert_eq!(
        audio.payload_types().collect::<Vec<_>>(),
        [96, 97, 18, 0, 103, 98, 111]
    );
    assert_eq!(
        sdp.ice_credentials(0),
        Some(("8hhy", "asd88fgpdd777uzjYhagZg"))
    );
    assert_eq!(sdp.setup(0), Some(Setup::ActPass));
    assert_eq!(
        sdp.fingerprint(0).unwrap().value,
        "02:1A:CC:54:27:AB:EB:9C:53:3F:3E:4B:65:2E:7D:46:3F:54:42:CD:54:F1:7A:03:A2:7D:F9:B0:7F:46:19:B2"
    );
    assert!(audio.rtcp_mux());
    let opus = audio.rtp_format(111).unwrap();
    assert_eq!(
        (opus.encoding, opus.clock_rate, opus.parameters),
        ("opus", 48000, Some("2"))
    );
    assert_eq!(opus.fmtp, Some("minptime=10;useinbandfec=1"));
    assert_eq!(opus.feedback, ["transport-cc"]);
    let l16 = audio.rtp_format(103).unwrap();
    assert_eq!(l16.parameters, Some("2"));
    // G729 and PCMU came without a clock rate: static types, written without a=rtpmap.
    assert!(audio.rtpmap(18).is_none());
    assert_eq!(audio.rtp_format(0).unwrap().encoding, "PCMU");
    assert_eq!(
        audio.value_of("extmap"),
        Some("1 urn:ietf:params:rtp-hdrext:ssrc-audio-level")
    );
    assert_eq!(
        audio.value_of("ssrc"),
        Some("1656081975 cname:Yv/wvbCdsDW2Prgd")
    );
    let candidates: Vec<String> = audio.candidates().map(|c| c.to_attribute_value()).collect();
    assert_eq!(
        candidates,
        [
            "candidate:1 1 udp 2130706431 10.0.1.1 8998 typ host generation 0 network-id 1",
            "candidate:2 1 udp 1694498815 192.0.2.3 45664 typ srflx raddr 10.0.1.1 rport 8998 \
             generation 0 network-id 1",
        ]
    );
    assert_eq!(sdp.direction(0), Some(Direction::SendRecv));
    // senders='initiator', described by the initiator: it only sends.
    assert_eq!(sdp.direction(1), Some(Direction::SendOnly));
    let video = &sdp.media[1];
    assert_eq!(
        video.rtp_format(96).unwrap().feedback,
        ["nack", "nack pli", "ccm fir"]
    );
    assert_eq!(video.fmtp(97), Some("apt=96"));
    assert_eq!(
        video.value_of("ssrc-group"),
        Some("FID 1794823405 2950281411")
    );

    // And back: the same contents (candidate ids are ours, derived; the rest is identical).
    let mut back = sdp_to_jingle(&sdp, &Creator::Initiator, &Creator::Initiator).unwrap();
    assert_eq!(back.bundle, media.bundle);
    for (ours, theirs) in back.contents.iter_mut().zip(&media.contents) {
        let (Some(t), Some(o)) = (theirs.transport.as_ref(), ours.transport.as_mut()) else {
            panic!("transports kept");
        };
        assert_eq!(o.candidates.len(), t.candidates.len());
        for (a, b) in o.candidates.iter_mut().zip(&t.candidates) {
            assert!(!a.id.is_empty());
            a.id = b.id.clone();
        }
        // Static payload types gain the clock rate RFC 3551 gives them.
        let (Some(od), Some(td)) = (ours.description.as_mut(), theirs.description.as_ref()) else {
            panic!("descriptions kept");
        };
        for (a, b) in od.payload_types.iter_mut().zip(&td.payload_types) {
            if b.clockrate.is_none() {
                assert_eq!(a.clockrate, Some(8000));
                a.clockrate = None;
            }
        }
    }
    assert_eq!(back.contents, media.contents);
}

/// A Chromium offer (crates/sdp's example: audio and video, BUNDLE, host/srflx/tcp
/// candidates, extmap, ssrc, rtx), as webrtc-rs writes them too.
const CHROMIUM_OFFER: &str = "v=0\r
o=- 4611731400430051336 2 IN IP4 127.0.0.1\r
s=-\r
t=0 0\r
a=group:BUNDLE 0 1 2\r
a=extmap-allow-mixed\r
a=msid-semantic: WMS 5b1fa0a3-8c55-4bd7-a1f9-3f0c4bb0b6e1\r
m=audio 54400 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\r
c=IN IP4 192.168.1.20\r
a=rtcp:9 IN IP4 0.0.0.0\r
a=candidate:1467250027 1 udp 2122260223 192.168.1.20 54400 typ host generation 0 network-id 1 network-cost 10\r
a=candidate:434176891 1 tcp 1518280447 192.168.1.20 9 typ host tcptype active generation 0 network-id 1 network-cost 10\r
a=candidate:842163049 1 udp 1686052607 203.0.113.9 54400 typ srflx raddr 192.168.1.20 rport 54400 generation 0 network-id 1 network-cost 10\r
a=candidate:9 1 udp 2122260223 0b6cf3c2-9d5e-4c2e-a0e1-5c7c2f0f1a2b.local 54401 typ host generation 0\r
a=ice-ufrag:Oyef\r
a=ice-pwd:7gZ5XQvPD8nBbYkN4t9fvFSm\r
a=ice-options:trickle\r
a=fingerprint:sha-256 49:66:12:17:0D:1C:91:AE:57:4C:C6:36:DD:D5:97:D2:7D:62:C9:9A:7F:B9:A3:F4:70:03:E7:43:91:73:23:5E\r
a=setup:actpass\r
a=mid:0\r
a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r
a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r
a=sendrecv\r
a=msid:5b1fa0a3-8c55-4bd7-a1f9-3f0c4bb0b6e1 0c2f4b6e-2b36-4c1b-9d0e-6a1d3f5e7a90\r
a=rtcp-mux\r
a=rtpmap:111 opus/48000/2\r
a=rtcp-fb:111 transport-cc\r
a=fmtp:111 minptime=10;useinbandfec=1\r
a=rtpmap:63 red/48000/2\r
a=fmtp:63 111/111\r
a=rtpmap:9 G722/8000\r
a=rtpmap:0 PCMU/8000\r
a=rtpmap:8 PCMA/8000\r
a=rtpmap:13 CN/8000\r
a=rtpmap:110 telephone-event/48000\r
a=rtpmap:126 telephone-event/8000\r
a=fmtp:126 0-15\r
a=ssrc:3570614608 cname:4TOk42mSjXCkVIa6\r
a=ssrc:3570614608 msid:5b1fa0a3 0c2f4b6e\r
m=video 54400 UDP/TLS/RTP/SAVPF 96 97 102 103\r
c=IN IP4 192.168.1.20\r
a=rtcp:9 IN IP4 0.0.0.0\r
a=ice-ufrag:Oyef\r
a=ice-pwd:7gZ5XQvPD8nBbYkN4t9fvFSm\r
a=ice-options:trickle\r
a=fingerprint:sha-256 49:66:12:17:0D:1C:91:AE:57:4C:C6:36:DD:D5:97:D2:7D:62:C9:9A:7F:B9:A3:F4:70:03:E7:43:91:73:23:5E\r
a=setup:actpass\r
a=mid:1\r
a=extmap:14 urn:ietf:params:rtp-hdrext:toffset\r
a=recvonly\r
a=rtcp-mux\r
a=rtcp-rsize\r
a=rtpmap:96 VP8/90000\r
a=rtcp-fb:96 goog-remb\r
a=rtcp-fb:96 transport-cc\r
a=rtcp-fb:96 ccm fir\r
a=rtcp-fb:96 nack\r
a=rtcp-fb:96 nack pli\r
a=rtpmap:97 rtx/90000\r
a=fmtp:97 apt=96\r
a=rtpmap:102 H264/90000\r
a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f\r
a=rtpmap:103 rtx/90000\r
a=fmtp:103 apt=102\r
a=ssrc-group:FID 1794823405 2950281411\r
a=ssrc:1794823405 cname:4TOk42mSjXCkVIa6\r
a=ssrc:2950281411 cname:4TOk42mSjXCkVIa6\r
m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r
c=IN IP4 0.0.0.0\r
a=mid:2\r
a=sctp-port:5000\r
";

#[test]
fn a_chromium_offer_goes_through_jingle_and_comes_back_equivalent() {
    let offer = SessionDescription::parse(CHROMIUM_OFFER).unwrap();
    let media = sdp_to_jingle(&offer, &Creator::Initiator, &Creator::Initiator).unwrap();
    // The data channel has no Jingle RTP form: left out, and out of the group.
    assert_eq!(media.contents.len(), 2);
    assert_eq!(
        media.bundle.as_deref(),
        Some(&["0".to_owned(), "1".to_owned()][..])
    );
    assert_eq!(
        media.contents[1].senders,
        Senders::Responder,
        "recvonly offer"
    );

    let mut initiate = Jingle::new(Action::SessionInitiate, "sid-1");
    initiate.contents = media.contents.clone();
    initiate.bundle = media.bundle.clone();
    let received = rewrite(&initiate);
    assert_eq!(received, initiate);

    let sdp = jingle_to_sdp(
        &JingleMedia::of(&received),
        &Creator::Initiator,
        "sid-1",
        1,
        None,
    )
    .unwrap();
    let sdp = SessionDescription::parse(&sdp.to_string()).unwrap();
    assert_eq!(sdp.media.len(), 2);
    for (index, original) in offer.media.iter().take(2).enumerate() {
        let mapped = &sdp.media[index];
        assert_eq!(mapped.kind, original.kind);
        assert_eq!(mapped.mid(), original.mid());
        assert_eq!(mapped.formats, original.formats);
        assert_eq!(sdp.direction(index), offer.direction(index));
        assert_eq!(sdp.ice_credentials(index), offer.ice_credentials(index));
        assert_eq!(sdp.fingerprint(index), offer.fingerprint(index));
        assert_eq!(sdp.setup(index), offer.setup(index));
        for pt in original.payload_types() {
            let (a, b) = (
                mapped.rtp_format(pt).unwrap(),
                original.rtp_format(pt).unwrap(),
            );
            assert_eq!(
                (a.encoding, a.clock_rate, a.parameters, a.fmtp, a.feedback),
                (b.encoding, b.clock_rate, b.parameters, b.fmtp, b.feedback),
                "payload type {pt}"
            );
        }
        let extmaps = |m: &lyrebird_sdp::MediaDescription| -> Vec<String> {
            m.attributes
                .iter()
                .filter_map(|a| match a {
                    Attribute::Other {
                        name,
                        value: Some(v),
                    } if name == "extmap" || name == "ssrc" || name == "ssrc-group" => {
                        Some(format!("{name}:{v}"))
                    }
                    _ => None,
                })
                .collect()
        };
        let (mut a, mut b) = (extmaps(mapped), extmaps(original));
        a.sort();
        b.sort();
        assert_eq!(a, b);
    }
    // UDP candidates with IP addresses survive; TCP and mDNS ones cannot be ICE-UDP candidates.
    let candidates: Vec<String> = sdp.media[0]
        .candidates()
        .map(|c| c.to_attribute_value())
        .collect();
    assert_eq!(
        candidates,
        [
            "candidate:1467250027 1 udp 2122260223 192.168.1.20 54400 typ host generation 0 network-id 1",
            "candidate:842163049 1 udp 1686052607 203.0.113.9 54400 typ srflx raddr 192.168.1.20 rport 54400 generation 0 network-id 1",
        ]
    );
    // telephone-event's name-less fmtp value survives.
    assert_eq!(sdp.media[0].fmtp(126), Some("0-15"));
}

#[test]
fn a_peer_that_does_not_bundle_gets_credentials_per_section() {
    // Dino: one transport per content, different credentials, no group.
    let accept = "<jingle xmlns='urn:xmpp:jingle:1' action='session-accept' sid='s' \
        responder='juliet@capulet.lit/balcony'>\
      <content creator='initiator' name='audio'>\
        <description xmlns='urn:xmpp:jingle:apps:rtp:1' media='audio'>\
          <payload-type id='111' name='opus' clockrate='48000' channels='2'/><rtcp-mux/>\
        </description>\
        <transport xmlns='urn:xmpp:jingle:transports:ice-udp:1' ufrag='aaaa' pwd='aaaaaaaaaaaaaaaaaaaaaa'>\
          <fingerprint xmlns='urn:xmpp:jingle:apps:dtls:0' hash='sha-256' setup='active'>AA:BB</fingerprint>\
          <candidate component='1' foundation='1' generation='0' id='1' ip='192.0.2.7' port='5000' \
             priority='2130706431' protocol='udp' type='host'/>\
        </transport>\
      </content>\
      <content creator='initiator' name='video'>\
        <description xmlns='urn:xmpp:jingle:apps:rtp:1' media='video'>\
          <payload-type id='96' name='VP8' clockrate='90000'/><rtcp-mux/>\
        </description>\
        <transport xmlns='urn:xmpp:jingle:transports:ice-udp:1' ufrag='bbbb' pwd='bbbbbbbbbbbbbbbbbbbbbb'>\
          <fingerprint xmlns='urn:xmpp:jingle:apps:dtls:0' hash='sha-256' setup='active'>AA:BB</fingerprint>\
          <candidate component='1' foundation='1' generation='0' id='2' ip='192.0.2.7' port='5002' \
             priority='2130706431' protocol='udp' type='host'/>\
        </transport>\
      </content>\
    </jingle>";
    let jingle = parse(accept).unwrap();
    let media = JingleMedia::of(&jingle);
    assert!(!media.is_bundled());
    let sdp = jingle_to_sdp(&media, &Creator::Responder, "s", 1, None).unwrap();
    let sdp = SessionDescription::parse(&sdp.to_string()).unwrap();
    assert_eq!(sdp.bundle(), None);
    assert_eq!(
        sdp.ice_credentials(0),
        Some(("aaaa", "aaaaaaaaaaaaaaaaaaaaaa"))
    );
    assert_eq!(
        sdp.ice_credentials(1),
        Some(("bbbb", "bbbbbbbbbbbbbbbbbbbbbb"))
    );
    assert_eq!(sdp.setup(1), Some(Setup::Active));
    assert_eq!(sdp.media[1].candidates().next().unwrap().port, 5002);
}

#[test]
fn an_answer_keeps_the_offers_order_and_rejects_what_the_peer_left_out() {
    let offer = SessionDescription::parse(CHROMIUM_OFFER).unwrap();
    let mut media = sdp_to_jingle(&offer, &Creator::Initiator, &Creator::Initiator).unwrap();
    // The responder accepts only the audio content.
    media.contents.truncate(1);
    let answer = jingle_to_sdp(&media, &Creator::Responder, "s", 1, Some(&offer)).unwrap();
    let answer = SessionDescription::parse(&answer.to_string()).unwrap();
    assert_eq!(answer.media.len(), 3, "one section per offered section");
    assert!(!answer.media[0].is_rejected());
    assert!(answer.media[1].is_rejected() && answer.media[2].is_rejected());
    assert_eq!(answer.media[2].mid(), Some("2"));
}

#[test]
fn senders_and_directions_map_both_ways_for_either_describer() {
    for describer in [Creator::Initiator, Creator::Responder] {
        for direction in [
            Direction::SendRecv,
            Direction::SendOnly,
            Direction::RecvOnly,
            Direction::Inactive,
        ] {
            let senders = senders_of(direction, &describer);
            assert_eq!(direction_of(&senders, &describer), direction);
        }
    }
    // The responder's recvonly means the initiator sends.
    assert_eq!(
        senders_of(Direction::RecvOnly, &Creator::Responder),
        Senders::Initiator
    );
    // senders='initiator' as the responder writes it: recvonly.
    assert_eq!(
        direction_of(&Senders::Initiator, &Creator::Responder),
        Direction::RecvOnly
    );
}

#[test]
fn trickled_candidates_go_out_and_come_in_per_mid() {
    let line = "candidate:842163049 1 udp 1686052607 203.0.113.9 54400 typ srflx raddr \
                192.168.1.20 rport 54400 generation 0";
    let content = transport_info_content(&Creator::Initiator, "0", Some("Oyef"), None, line)
        .unwrap()
        .unwrap();
    let mut info = Jingle::new(Action::TransportInfo, "sid-1");
    info.contents.push(content);
    let received = rewrite(&info);
    let trickled = trickle_candidates(&received);
    assert_eq!(trickled.len(), 1);
    assert_eq!(trickled[0].mid, "0");
    assert_eq!(trickled[0].ufrag.as_deref(), Some("Oyef"));
    assert_eq!(trickled[0].candidate, line);
    // TCP and mDNS candidates have no ICE-UDP form; garbage is an error.
    let tcp = "candidate:1 1 tcp 1518280447 192.0.2.1 9 typ host tcptype active";
    let mdns = "candidate:1 1 udp 2122260223 abc.local 5000 typ host";
    for skipped in [tcp, mdns] {
        assert_eq!(
            transport_info_content(&Creator::Initiator, "0", None, None, skipped).unwrap(),
            None
        );
    }
    assert!(transport_info_content(&Creator::Initiator, "0", None, None, "candidate:1").is_err());
}

fn initiate_with(content: &str) -> String {
    format!(
        "<jingle xmlns='urn:xmpp:jingle:1' action='session-initiate' sid='x'>{content}</jingle>"
    )
}

const DESCRIPTION: &str = "<description xmlns='urn:xmpp:jingle:apps:rtp:1' media='audio'>\
    <payload-type id='0' name='PCMU' clockrate='8000'/></description>";
const FINGERPRINT: &str = "<fingerprint xmlns='urn:xmpp:jingle:apps:dtls:0' hash='sha-256' \
    setup='actpass'>AA:BB</fingerprint>";

fn ice(inner: &str) -> String {
    format!(
        "<transport xmlns='urn:xmpp:jingle:transports:ice-udp:1' ufrag='u' pwd='p'>{inner}</transport>"
    )
}

fn to_sdp(xml: &str) -> Result<SessionDescription, JingleError> {
    let jingle = parse(xml)?;
    jingle_to_sdp(&JingleMedia::of(&jingle), &Creator::Initiator, "x", 1, None)
}

#[test]
fn hostile_or_broken_jingle_is_a_typed_error_never_a_panic() {
    let content =
        |inner: String| format!("<content creator='initiator' name='a'>{inner}</content>");
    // Sane: works.
    assert!(
        to_sdp(&initiate_with(&content(format!(
            "{DESCRIPTION}{}",
            ice(FINGERPRINT)
        ))))
        .is_ok()
    );

    let missing_fingerprint = initiate_with(&content(format!("{DESCRIPTION}{}", ice(""))));
    assert_eq!(
        to_sdp(&missing_fingerprint).unwrap_err(),
        JingleError::MissingFingerprint {
            content: "a".into()
        }
    );
    let raw_udp = initiate_with(&content(format!(
        "{DESCRIPTION}<transport xmlns='urn:xmpp:jingle:transports:raw-udp:1'/>"
    )));
    let e = to_sdp(&raw_udp).unwrap_err();
    assert!(matches!(e, JingleError::UnknownTransport { .. }), "{e}");
    assert_eq!(
        e.reason(),
        lyrebird_xmpp::jingle::Reason::UnsupportedTransports
    );
    let file = initiate_with(&content(format!(
        "<description xmlns='urn:xmpp:jingle:apps:file-transfer:5'/>{}",
        ice(FINGERPRINT)
    )));
    assert!(matches!(
        to_sdp(&file).unwrap_err(),
        JingleError::UnknownDescription { .. }
    ));
    let no_payloads = initiate_with(&content(format!(
        "<description xmlns='urn:xmpp:jingle:apps:rtp:1' media='audio'/>{}",
        ice(FINGERPRINT)
    )));
    assert!(matches!(
        to_sdp(&no_payloads).unwrap_err(),
        JingleError::NoPayloadTypes { .. }
    ));
    let dynamic_without_name = initiate_with(&content(format!(
        "<description xmlns='urn:xmpp:jingle:apps:rtp:1' media='audio'><payload-type id='101'/></description>{}",
        ice(FINGERPRINT)
    )));
    assert!(matches!(
        to_sdp(&dynamic_without_name).unwrap_err(),
        JingleError::NoPayloadTypes { .. }
    ));
    let big_id = initiate_with(&content(format!(
        "<description xmlns='urn:xmpp:jingle:apps:rtp:1' media='audio'>\
         <payload-type id='200' name='x' clockrate='8000'/></description>{}",
        ice(FINGERPRINT)
    )));
    assert!(matches!(
        to_sdp(&big_id).unwrap_err(),
        JingleError::BadValue { .. }
    ));
    let no_credentials = initiate_with(&content(format!(
        "{DESCRIPTION}<transport xmlns='urn:xmpp:jingle:transports:ice-udp:1'>{FINGERPRINT}</transport>"
    )));
    assert!(matches!(
        to_sdp(&no_credentials).unwrap_err(),
        JingleError::Missing {
            what: "ICE credentials",
            ..
        }
    ));
    let no_transport = initiate_with(&content(DESCRIPTION.to_owned()));
    assert!(matches!(
        to_sdp(&no_transport).unwrap_err(),
        JingleError::Missing {
            what: "transport",
            ..
        }
    ));

    // Absurd counts.
    let many_contents: String = (0..=MAX_CONTENTS)
        .map(|i| format!("<content creator='initiator' name='c{i}'/>"))
        .collect();
    assert!(matches!(
        parse(&initiate_with(&many_contents)).unwrap_err(),
        JingleError::TooMany { .. }
    ));
    let candidate = "<candidate component='1' foundation='1' generation='0' id='i' \
        ip='192.0.2.1' port='1' priority='1' protocol='udp' type='host'/>";
    let many_candidates = initiate_with(&content(format!(
        "{DESCRIPTION}{}",
        ice(&candidate.repeat(MAX_CANDIDATES + 1))
    )));
    assert!(matches!(
        parse(&many_candidates).unwrap_err(),
        JingleError::TooMany { .. }
    ));

    // Malformed pieces.
    for broken in [
        "<jingle xmlns='urn:xmpp:jingle:1' sid='x'/>".to_owned(),
        "<jingle xmlns='urn:xmpp:jingle:1' action='dance' sid='x'/>".to_owned(),
        "<jingle xmlns='urn:xmpp:jingle:0' action='session-initiate' sid='x'/>".to_owned(),
        initiate_with("<content name='a'/>"),
        initiate_with(&content(ice(
            "<candidate component='1' foundation='1' ip='192.0.2.1' priority='1' type='host'/>",
        ))),
        initiate_with(&content(ice(
            "<candidate component='x' foundation='1' ip='192.0.2.1' port='1' priority='1' type='host'/>",
        ))),
        initiate_with(&content(ice(
            "<candidate component='1' foundation='1' ip='192.0.2.1' port='1' priority='1' type='evil'/>",
        ))),
        initiate_with(&content(ice(
            "<fingerprint xmlns='urn:xmpp:jingle:apps:dtls:0' hash='sha-256' setup='actpass'>zz</fingerprint>",
        ))),
        initiate_with("<content creator='initiator' name='a b'/>"),
        // xmpp-parsers' own hex decoder asserts on these: they must be errors, not panics.
        initiate_with(&content(ice(
            "<fingerprint xmlns='urn:xmpp:jingle:apps:dtls:0' hash='sha-256' setup='actpass'>ABC</fingerprint>",
        ))),
        initiate_with(&content(ice(
            "<fingerprint xmlns='urn:xmpp:jingle:apps:dtls:0' hash='sha-256' setup='actpass'>A:BCD</fingerprint>",
        ))),
        initiate_with(&content(ice(
            "<fingerprint xmlns='urn:xmpp:jingle:apps:dtls:0' hash='sha-256' setup='actpass'>\u{e9}A:B</fingerprint>",
        ))),
        initiate_with(&content(ice(
            "<fingerprint xmlns='urn:xmpp:jingle:apps:dtls:0' hash='sha-256' setup='holdconn'>AB</fingerprint>",
        ))),
        initiate_with(&content(ice("<x/>").replace("ufrag='u'", "ufrag='a b'"))),
    ] {
        let e = parse(&broken).unwrap_err();
        assert!(!e.to_string().is_empty());
    }
}

#[test]
fn sdp_that_jingle_cannot_carry_is_refused() {
    let offer = SessionDescription::parse(CHROMIUM_OFFER).unwrap();
    let strip = |name: &str| {
        let mut o = offer.clone();
        for m in &mut o.media {
            m.attributes.retain(|a| a.name() != name);
        }
        o
    };
    assert!(matches!(
        sdp_to_jingle(
            &strip("fingerprint"),
            &Creator::Initiator,
            &Creator::Initiator
        ),
        Err(JingleError::MissingFingerprint { .. })
    ));
    assert!(matches!(
        sdp_to_jingle(&strip("mid"), &Creator::Initiator, &Creator::Initiator),
        Err(JingleError::Sdp(_))
    ));
    assert!(matches!(
        sdp_to_jingle(
            &strip("ice-ufrag"),
            &Creator::Initiator,
            &Creator::Initiator
        ),
        Err(JingleError::Missing { .. })
    ));
}

/// Chromium offers RED (RFC 2198) with the bare-token fmtp `111/111`; stanza writes it as a
/// `<parameter/>` with a name and no value. Refusing it refused the browser's whole call.
#[test]
fn a_parameter_with_a_name_alone_is_a_bare_fmtp_token() {
    let description = "<description xmlns='urn:xmpp:jingle:apps:rtp:1' media='audio'>\
        <payload-type id='111' name='opus' clockrate='48000' channels='2'>\
        <parameter name='useinbandfec' value='1'/></payload-type>\
        <payload-type id='63' name='red' clockrate='48000' channels='2'>\
        <parameter name='111/111'/></payload-type><rtcp-mux/></description>";
    let xml = initiate_with(&format!(
        "<content creator='initiator' name='0'>{description}{}</content>",
        ice(FINGERPRINT)
    ));
    let sdp = to_sdp(&xml).unwrap().to_string();
    assert!(sdp.contains("a=fmtp:63 111/111\r\n"), "{sdp}");
    assert!(sdp.contains("a=fmtp:111 useinbandfec=1\r\n"), "{sdp}");
}
