//! The RFCs' own descriptions and the ones real peers send, as vectors: each must parse, say
//! what it means, and come back byte for byte.

use lyrebird_sdp::{
    Attribute, Direction, FileSelector, MediaKind, SdpError, SessionDescription, Setup,
    parse_file_range,
};

/// Joins lines with CRLF, as they go on the wire.
fn crlf(lines: &[&str]) -> String {
    lines.iter().map(|l| format!("{l}\r\n")).collect()
}

fn round_trip(text: &str) -> SessionDescription {
    let sdp = SessionDescription::parse(text).unwrap();
    assert_eq!(sdp.to_string(), text);
    assert_eq!(SessionDescription::parse(&sdp.to_string()).unwrap(), sdp);
    sdp
}

// RFC 3264 §10.1: Alice offers audio and two videos; Bob rejects the first video.
const RFC3264_10_1_OFFER: &[&str] = &[
    "v=0",
    "o=alice 2890844526 2890844526 IN IP4 host.anywhere.com",
    "s=",
    "c=IN IP4 host.anywhere.com",
    "t=0 0",
    "m=audio 49170 RTP/AVP 0",
    "a=rtpmap:0 PCMU/8000",
    "m=video 51372 RTP/AVP 31",
    "a=rtpmap:31 H261/90000",
    "m=video 53000 RTP/AVP 32",
    "a=rtpmap:32 MPV/90000",
];

const RFC3264_10_1_ANSWER: &[&str] = &[
    "v=0",
    "o=bob 2890844730 2890844730 IN IP4 host.example.com",
    "s=",
    "c=IN IP4 host.example.com",
    "t=0 0",
    "m=audio 49920 RTP/AVP 0",
    "a=rtpmap:0 PCMU/8000",
    "m=video 0 RTP/AVP 31",
    "m=video 53000 RTP/AVP 32",
    "a=rtpmap:32 MPV/90000",
];

// RFC 3264 §10.1, Bob's later offer: a new audio stream, receive only.
const RFC3264_10_1_REOFFER: &[&str] = &[
    "v=0",
    "o=bob 2890844730 2890844731 IN IP4 host.example.com",
    "s=",
    "c=IN IP4 host.example.com",
    "t=0 0",
    "m=audio 65422 RTP/AVP 0",
    "a=rtpmap:0 PCMU/8000",
    "m=video 0 RTP/AVP 31",
    "m=video 53000 RTP/AVP 32",
    "a=rtpmap:32 MPV/90000",
    "m=audio 51434 RTP/AVP 110",
    "a=rtpmap:110 telephone-events/8000",
    "a=recvonly",
];

// RFC 3264 §10.1, Alice's answer to that: she sends the events Bob will only receive.
const RFC3264_10_1_REANSWER: &[&str] = &[
    "v=0",
    "o=alice 2890844526 2890844527 IN IP4 host.anywhere.com",
    "s=",
    "c=IN IP4 host.anywhere.com",
    "t=0 0",
    "m=audio 49170 RTP/AVP 0",
    "a=rtpmap:0 PCMU/8000",
    "m=video 0 RTP/AVP 31",
    "a=rtpmap:31 H261/90000",
    "m=video 53000 RTP/AVP 32",
    "a=rtpmap:32 MPV/90000",
    "m=audio 53122 RTP/AVP 110",
    "a=rtpmap:110 telephone-events/8000",
    "a=sendonly",
];

// RFC 3264 §10.2: one of N codecs, offered inactive, then locked down with a second exchange.
const RFC3264_10_2_OFFER: &[&str] = &[
    "v=0",
    "o=alice 2890844526 2890844526 IN IP4 host.anywhere.com",
    "s=",
    "c=IN IP4 host.anywhere.com",
    "t=0 0",
    "m=audio 62986 RTP/AVP 0 4 18",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:4 G723/8000",
    "a=rtpmap:18 G729/8000",
    "a=inactive",
];

const RFC3264_10_2_ANSWER: &[&str] = &[
    "v=0",
    "o=bob 2890844730 2890844731 IN IP4 host.example.com",
    "s=",
    "c=IN IP4 host.example.com",
    "t=0 0",
    "m=audio 54344 RTP/AVP 0 4",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:4 G723/8000",
    "a=inactive",
];

const RFC3264_10_2_REOFFER: &[&str] = &[
    "v=0",
    "o=alice 2890844526 2890844527 IN IP4 host.anywhere.com",
    "s=",
    "c=IN IP4 host.anywhere.com",
    "t=0 0",
    "m=audio 62986 RTP/AVP 4",
    "a=rtpmap:4 G723/8000",
    "a=sendrecv",
];

// RFC 3264 §9 figure 1, capabilities: all ports 0, and t= before c= (out of RFC 8866 order).
const RFC3264_9_CAPABILITIES: &[&str] = &[
    "v=0",
    "o=carol 28908764872 28908764872 IN IP4 100.3.6.6",
    "s=-",
    "t=0 0",
    "c=IN IP4 192.0.2.4",
    "m=audio 0 RTP/AVP 0 1 3",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:1 1016/8000",
    "a=rtpmap:3 GSM/8000",
    "m=video 0 RTP/AVP 31 34",
    "a=rtpmap:31 H261/90000",
    "a=rtpmap:34 H263/90000",
];

#[test]
fn rfc3264_examples_round_trip() {
    let offer = round_trip(&crlf(RFC3264_10_1_OFFER));
    assert_eq!(offer.media.len(), 3);
    assert_eq!(offer.media[1].kind, MediaKind::Video);
    assert_eq!(offer.session_name, "");
    assert_eq!(offer.origin.session_id, "2890844526");
    assert_eq!(offer.direction(0), Some(Direction::SendRecv));
    assert_eq!(offer.direction(3), None);

    let answer = round_trip(&crlf(RFC3264_10_1_ANSWER));
    assert!(answer.media[1].is_rejected());
    assert!(!answer.media[2].is_rejected());
    assert!(!answer.holds(1), "a rejected stream is not on hold");

    let reoffer = round_trip(&crlf(RFC3264_10_1_REOFFER));
    assert_eq!(
        reoffer.origin.session_version,
        answer.origin.session_version + 1
    );
    assert_eq!(reoffer.direction(3), Some(Direction::RecvOnly));
    let dtmf = reoffer.media[3].rtp_format(110).unwrap();
    assert_eq!((dtmf.encoding, dtmf.clock_rate), ("telephone-events", 8000));

    let reanswer = round_trip(&crlf(RFC3264_10_1_REANSWER));
    assert_eq!(
        reanswer.direction(3),
        reoffer.direction(3).map(Direction::reversed)
    );
    assert!(
        reanswer.holds(3),
        "a sendonly stream is one the peer does not receive"
    );
    assert!(
        !reanswer.holds_audio_video(),
        "the first audio stream still flows"
    );

    let offer = round_trip(&crlf(RFC3264_10_2_OFFER));
    assert_eq!(
        offer.media[0].payload_types().collect::<Vec<_>>(),
        [0, 4, 18]
    );
    assert_eq!(offer.direction(0), Some(Direction::Inactive));
    let answer = round_trip(&crlf(RFC3264_10_2_ANSWER));
    assert_eq!(answer.media[0].payload_types().collect::<Vec<_>>(), [0, 4]);
    let reoffer = round_trip(&crlf(RFC3264_10_2_REOFFER));
    assert_eq!(
        reoffer.origin.session_version,
        offer.origin.session_version + 1
    );
    assert_eq!(reoffer.direction(0), Some(Direction::SendRecv));

    // Lines out of RFC 8866 order are read; they are written back in order.
    let text = crlf(RFC3264_9_CAPABILITIES);
    let capabilities = SessionDescription::parse(&text).unwrap();
    assert!(capabilities.media.iter().all(|m| m.is_rejected()));
    let written = capabilities.to_string();
    assert!(
        written.contains("s=-\r\nc=IN IP4 192.0.2.4\r\nt=0 0\r\n"),
        "{written}"
    );
    assert_eq!(SessionDescription::parse(&written).unwrap(), capabilities);
}

#[test]
fn static_payload_types_need_no_rtpmap() {
    let sdp = SessionDescription::parse(&crlf(&[
        "v=0",
        "o=- 1 1 IN IP4 192.0.2.1",
        "s=-",
        "c=IN IP4 192.0.2.1",
        "t=0 0",
        "m=audio 4000 RTP/AVP 0 8 9 96",
    ]))
    .unwrap();
    let audio = &sdp.media[0];
    let names: Vec<_> = audio
        .payload_types()
        .map(|pt| audio.rtp_format(pt).map(|f| (f.encoding, f.clock_rate)))
        .collect();
    assert_eq!(
        names,
        [
            Some(("PCMU", 8000)),
            Some(("PCMA", 8000)),
            Some(("G722", 8000)),
            None
        ]
    );
}

// An MSRP chat offer over TCP with RFC 4975 §8's attributes, written as a whole description.
const RFC4975_OFFER: &[&str] = &[
    "v=0",
    "o=alice 2890844526 2890844527 IN IP4 alice.example.com",
    "s=-",
    "c=IN IP4 alice.example.com",
    "t=0 0",
    "m=message 7654 TCP/MSRP *",
    "a=accept-types:text/plain",
    "a=path:msrp://alice.example.com:7654/jshA7weztas;tcp",
];

// A file push in the form of RFC 5547 §9.1: Alice offers a picture, Bob's answer receives it.
const RFC5547_OFFER: &[&str] = &[
    "v=0",
    "o=alice 2890844526 2890844526 IN IP4 host.atlanta.example.com",
    "s=",
    "c=IN IP4 host.atlanta.example.com",
    "t=0 0",
    "m=message 7654 TCP/MSRP *",
    "i=This is my latest picture",
    "a=sendonly",
    "a=accept-types:message/cpim",
    "a=accept-wrapped-types:*",
    "a=path:msrp://atlanta.example.com:7654/jshA7we;tcp",
    "a=file-selector:name:\"My cool picture.jpg\" type:image/jpeg size:32349 \
     hash:sha-1:72:24:5F:E8:65:3D:DA:F3:71:36:2F:86:D4:71:91:3E:E4:A2:CE:2E",
    "a=file-transfer-id:vBnG916bdberum2fFEABR1FR3ExZMUrd",
    "a=file-disposition:attachment",
    "a=file-date:creation:\"Mon, 15 May 2006 15:01:31 +0300\"",
    "a=file-icon:cid:id2@alicepc.example.com",
    "a=file-range:1-32349",
];

const RFC5547_ANSWER: &[&str] = &[
    "v=0",
    "o=bob 2890844656 2890844656 IN IP4 host.biloxi.example.com",
    "s=",
    "c=IN IP4 host.biloxi.example.com",
    "t=0 0",
    "m=message 8888 TCP/MSRP *",
    "a=recvonly",
    "a=accept-types:message/cpim",
    "a=accept-wrapped-types:*",
    "a=path:msrp://bob.example.com:8888/9di4ea;tcp",
    "a=file-selector:name:\"My cool picture.jpg\" type:image/jpeg size:32349 \
     hash:sha-1:72:24:5F:E8:65:3D:DA:F3:71:36:2F:86:D4:71:91:3E:E4:A2:CE:2E",
    "a=file-transfer-id:vBnG916bdberum2fFEABR1FR3ExZMUrd",
    "a=file-range:1-32349",
];

#[test]
fn msrp_examples_round_trip() {
    let chat = round_trip(&crlf(RFC4975_OFFER));
    let (_, message) = chat.first_of(&MediaKind::Message).unwrap();
    assert_eq!(message.formats, ["*"]);
    assert_eq!(message.value_of("accept-types"), Some("text/plain"));

    let offer = round_trip(&crlf(RFC5547_OFFER));
    let push = &offer.media[0];
    assert_eq!(
        push.information.as_deref(),
        Some("This is my latest picture")
    );
    assert_eq!(offer.direction(0), Some(Direction::SendOnly));
    let selector = FileSelector::parse(push.value_of("file-selector").unwrap()).unwrap();
    assert_eq!(selector.name, "My cool picture.jpg");
    assert_eq!(selector.size, Some(32349));
    assert_eq!(
        parse_file_range(push.value_of("file-range").unwrap()),
        Ok((1, Some(32349)))
    );
    assert_eq!(
        push.value_of("file-date"),
        Some("creation:\"Mon, 15 May 2006 15:01:31 +0300\"")
    );

    let answer = round_trip(&crlf(RFC5547_ANSWER));
    assert_eq!(
        answer.direction(0),
        offer.direction(0).map(Direction::reversed)
    );
}

// What Chromium offers for a call with a camera (ICE candidates gathered, BUNDLE).
const CHROMIUM_OFFER: &[&str] = &[
    "v=0",
    "o=- 4611731400430051336 2 IN IP4 127.0.0.1",
    "s=-",
    "t=0 0",
    "a=group:BUNDLE 0 1",
    "a=extmap-allow-mixed",
    "a=msid-semantic: WMS 5b1fa0a3-8c55-4bd7-a1f9-3f0c4bb0b6e1",
    "m=audio 54400 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126",
    "c=IN IP4 192.168.1.20",
    "a=rtcp:9 IN IP4 0.0.0.0",
    "a=candidate:1467250027 1 udp 2122260223 192.168.1.20 54400 typ host generation 0 \
     network-id 1 network-cost 10",
    "a=candidate:434176891 1 tcp 1518280447 192.168.1.20 9 typ host tcptype active \
     generation 0 network-id 1 network-cost 10",
    "a=candidate:842163049 1 udp 1686052607 203.0.113.9 54400 typ srflx raddr 192.168.1.20 \
     rport 54400 generation 0 network-id 1 network-cost 10",
    "a=ice-ufrag:Oyef",
    "a=ice-pwd:7gZ5XQvPD8nBbYkN4t9fvFSm",
    "a=ice-options:trickle",
    "a=fingerprint:sha-256 49:66:12:17:0D:1C:91:AE:57:4C:C6:36:DD:D5:97:D2:7D:62:C9:9A:7F:B9:\
     A3:F4:70:03:E7:43:91:73:23:5E",
    "a=setup:actpass",
    "a=mid:0",
    "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level",
    "a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01",
    "a=sendrecv",
    "a=msid:5b1fa0a3-8c55-4bd7-a1f9-3f0c4bb0b6e1 0c2f4b6e-2b36-4c1b-9d0e-6a1d3f5e7a90",
    "a=rtcp-mux",
    "a=rtpmap:111 opus/48000/2",
    "a=rtcp-fb:111 transport-cc",
    "a=fmtp:111 minptime=10;useinbandfec=1",
    "a=rtpmap:63 red/48000/2",
    "a=fmtp:63 111/111",
    "a=rtpmap:9 G722/8000",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:8 PCMA/8000",
    "a=rtpmap:13 CN/8000",
    "a=rtpmap:110 telephone-event/48000",
    "a=rtpmap:126 telephone-event/8000",
    "a=ssrc:3570614608 cname:4TOk42mSjXCkVIa6",
    "m=video 54400 UDP/TLS/RTP/SAVPF 96 97 102 103",
    "c=IN IP4 192.168.1.20",
    "a=rtcp:9 IN IP4 0.0.0.0",
    "a=ice-ufrag:Oyef",
    "a=ice-pwd:7gZ5XQvPD8nBbYkN4t9fvFSm",
    "a=ice-options:trickle",
    "a=fingerprint:sha-256 49:66:12:17:0D:1C:91:AE:57:4C:C6:36:DD:D5:97:D2:7D:62:C9:9A:7F:B9:\
     A3:F4:70:03:E7:43:91:73:23:5E",
    "a=setup:actpass",
    "a=mid:1",
    "a=sendrecv",
    "a=rtcp-mux",
    "a=rtcp-rsize",
    "a=rtpmap:96 VP8/90000",
    "a=rtcp-fb:96 goog-remb",
    "a=rtcp-fb:96 transport-cc",
    "a=rtcp-fb:96 ccm fir",
    "a=rtcp-fb:96 nack",
    "a=rtcp-fb:96 nack pli",
    "a=rtpmap:97 rtx/90000",
    "a=fmtp:97 apt=96",
    "a=rtpmap:102 H264/90000",
    "a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f",
    "a=rtpmap:103 rtx/90000",
    "a=fmtp:103 apt=102",
    "a=ssrc-group:FID 1794823405 2950281411",
];

#[test]
fn a_chromium_offer_round_trips_and_reads() {
    let offer = round_trip(&crlf(CHROMIUM_OFFER));
    assert_eq!(offer.bundle(), Some(&["0".to_owned(), "1".to_owned()][..]));
    assert_eq!(offer.media_by_mid("1").map(|(i, _)| i), Some(1));
    assert_eq!(
        offer.ice_credentials(1),
        Some(("Oyef", "7gZ5XQvPD8nBbYkN4t9fvFSm"))
    );
    assert_eq!(offer.setup(0), Some(Setup::ActPass));
    assert_eq!(offer.fingerprint(0).unwrap().hash_function, "sha-256");
    let audio = &offer.media[0];
    assert!(audio.rtcp_mux());
    assert_eq!(audio.candidates().count(), 3);
    let srflx = audio.candidates().nth(2).unwrap();
    assert_eq!(srflx.kind, "srflx");
    assert_eq!(srflx.related_port, Some(54400));
    assert_eq!(srflx.extensions[0], ("generation".into(), "0".into()));
    let opus = audio.rtp_format(111).unwrap();
    assert_eq!(
        (opus.encoding, opus.clock_rate, opus.parameters),
        ("opus", 48000, Some("2"))
    );
    assert_eq!(opus.fmtp, Some("minptime=10;useinbandfec=1"));
    assert_eq!(opus.feedback, ["transport-cc"]);
    let video = &offer.media[1];
    assert_eq!(video.rtp_format(96).unwrap().feedback.len(), 5);
    assert_eq!(video.fmtp(97), Some("apt=96"));
    assert_eq!(
        offer.value_of("msid-semantic"),
        Some(" WMS 5b1fa0a3-8c55-4bd7-a1f9-3f0c4bb0b6e1")
    );
    assert!(!offer.holds_audio_video());
}

#[test]
fn putting_a_call_on_hold_rewrites_directions_and_the_version() {
    let mut ours = SessionDescription::parse(&crlf(CHROMIUM_OFFER)).unwrap();
    ours.map_audio_video_direction(Direction::held);
    ours.bump_version();
    let text = ours.to_string();
    assert_eq!(text.matches("a=sendonly\r\n").count(), 2, "{text}");
    assert!(!text.contains("a=sendrecv"));
    assert!(text.starts_with("v=0\r\no=- 4611731400430051336 3 IN IP4 127.0.0.1\r\n"));
    // Only the direction lines and o= changed: the rest stays where it was.
    let original = crlf(CHROMIUM_OFFER);
    let changed: Vec<_> = original
        .lines()
        .zip(text.lines())
        .filter(|(a, b)| a != b)
        .collect();
    assert_eq!(changed.len(), 3, "{changed:?}");
    let seen = SessionDescription::parse(&text).unwrap();
    assert!(seen.holds(0) && seen.holds(1) && seen.holds_audio_video());

    // Resuming gives back what hold took.
    ours.map_audio_video_direction(Direction::resumed);
    ours.bump_version();
    assert_eq!(ours.direction(0), Some(Direction::SendRecv));
    assert_eq!(ours.origin.session_version, 4);
}

// JsSIP's hold(): a re-offer with the same ICE and DTLS, a=sendonly, a higher version.
const JSSIP_HOLD: &[&str] = &[
    "v=0",
    "o=- 7290518426937442531 3 IN IP4 127.0.0.1",
    "s=-",
    "t=0 0",
    "a=group:BUNDLE 0",
    "a=msid-semantic: WMS",
    "m=audio 9 UDP/TLS/RTP/SAVPF 111 0 8 126",
    "c=IN IP4 0.0.0.0",
    "a=rtcp:9 IN IP4 0.0.0.0",
    "a=candidate:2999745851 1 udp 2122260223 127.0.0.1 43210 typ host generation 0",
    "a=ice-ufrag:k3Jd",
    "a=ice-pwd:tKz0Vb1yx8qP5nL2sW7eR4uA",
    "a=ice-options:trickle",
    "a=fingerprint:sha-256 0A:1B:2C:3D:4E:5F:60:71:82:93:A4:B5:C6:D7:E8:F9:0A:1B:2C:3D:4E:5F:\
     60:71:82:93:A4:B5:C6:D7:E8:F9",
    "a=setup:actpass",
    "a=mid:0",
    "a=sendonly",
    "a=rtcp-mux",
    "a=rtpmap:111 opus/48000/2",
    "a=fmtp:111 minptime=10;useinbandfec=1",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:8 PCMA/8000",
    "a=rtpmap:126 telephone-event/8000",
];

// Our answer to it, as the media stack writes it (sendrecv), before we mirror the hold.
const OUR_ANSWER: &[&str] = &[
    "v=0",
    "o=- 5120432391726118913 2 IN IP4 0.0.0.0",
    "s=-",
    "t=0 0",
    "a=group:BUNDLE 0",
    "m=audio 9 UDP/TLS/RTP/SAVPF 111 126",
    "c=IN IP4 0.0.0.0",
    "a=ice-ufrag:QwEr",
    "a=ice-pwd:aSdFgHjKlZxCvBnMqWeRtYuI",
    "a=fingerprint:sha-256 11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:\
     77:88:99:AA:BB:CC:DD:EE:FF:00",
    "a=setup:active",
    "a=mid:0",
    "a=sendrecv",
    "a=rtcp-mux",
    "a=rtpmap:111 opus/48000/2",
    "a=rtpmap:126 telephone-event/8000",
];

#[test]
fn a_jssip_hold_is_seen_and_answered_recvonly() {
    let offer = round_trip(&crlf(JSSIP_HOLD));
    // With ICE, c=0.0.0.0 only means "no default candidate": the direction says hold.
    assert!(offer.holds(0) && offer.holds_audio_video());
    let mut answer = round_trip(&crlf(OUR_ANSWER));
    assert!(!answer.holds_audio_video());
    let offered = offer.direction(0).unwrap();
    answer.map_audio_video_direction(|_| offered.reversed());
    let text = answer.to_string();
    assert!(
        text.contains("a=mid:0\r\na=recvonly\r\na=rtcp-mux\r\n"),
        "{text}"
    );
    assert_eq!(
        SessionDescription::parse(&text).unwrap().direction(0),
        Some(Direction::RecvOnly)
    );
}

#[test]
fn legacy_hold_is_c_zero_without_ice() {
    let held = crlf(&[
        "v=0",
        "o=- 1 2 IN IP4 192.0.2.1",
        "s=-",
        "c=IN IP4 0.0.0.0",
        "t=0 0",
        "m=audio 4000 RTP/AVP 0",
    ]);
    let sdp = round_trip(&held);
    assert_eq!(sdp.direction(0), Some(Direction::SendRecv));
    assert!(sdp.holds(0) && sdp.holds_audio_video());
    // The same with ICE credentials is a trickling offer, not a hold.
    let trickling = held.replace("t=0 0\r\n", "t=0 0\r\na=ice-ufrag:abcd\r\n");
    assert!(!SessionDescription::parse(&trickling).unwrap().holds(0));
    // A media-level c= wins over the session's.
    let moved = held.replace(
        "m=audio 4000 RTP/AVP 0\r\n",
        "m=audio 4000 RTP/AVP 0\r\nc=IN IP4 192.0.2.1\r\n",
    );
    assert!(!SessionDescription::parse(&moved).unwrap().holds(0));
}

#[test]
fn session_level_direction_is_the_fallback() {
    let mut sdp = round_trip(&crlf(&[
        "v=0",
        "o=- 1 2 IN IP4 192.0.2.1",
        "s=-",
        "c=IN IP4 192.0.2.1",
        "t=0 0",
        "a=inactive",
        "m=audio 4000 RTP/AVP 0",
        "m=video 4002 RTP/AVP 31",
        "a=sendrecv",
        "m=video 0 RTP/AVP 31",
        "m=message 4004 TCP/MSRP *",
        "a=path:msrp://192.0.2.1:4004/x;tcp",
    ]));
    assert_eq!(sdp.direction(0), Some(Direction::Inactive));
    assert_eq!(sdp.direction(1), Some(Direction::SendRecv));
    assert!(sdp.holds(0) && !sdp.holds(1) && !sdp.holds_audio_video());
    sdp.map_audio_video_direction(Direction::held);
    assert_eq!(sdp.direction(0), Some(Direction::Inactive));
    assert_eq!(sdp.direction(1), Some(Direction::SendOnly));
    // The rejected section and the MSRP one are left alone.
    assert_eq!(sdp.media[2].direction(), None);
    assert_eq!(sdp.media[3].direction(), None);
    sdp.media[3].set_direction(Direction::SendOnly);
    sdp.media[3].set_direction(Direction::RecvOnly);
    assert_eq!(
        sdp.media[3].attributes.last(),
        Some(&Attribute::Direction(Direction::RecvOnly))
    );
    assert_eq!(sdp.media[3].attributes.len(), 2);
}

#[test]
fn line_feeds_alone_and_blank_lines_are_accepted() {
    let text = crlf(RFC3264_10_2_OFFER);
    let lf = text.replace("\r\n", "\n") + "\n\n";
    assert_eq!(
        SessionDescription::parse(&lf).unwrap(),
        SessionDescription::parse(&text).unwrap()
    );
}

#[test]
fn garbage_is_refused_with_a_reason() {
    let good = crlf(RFC3264_10_2_OFFER);
    let cases: Vec<(String, &str)> = vec![
        (String::new(), "no v="),
        ("hello".into(), "must start with v=0"),
        ("v=1\r\n".into(), "must start with v=0"),
        (
            "v=0\r\nthis is not SDP at all\r\nm=audio banana\r\n".into(),
            "line 2",
        ),
        ("v=0\r\nnonsense".into(), "line 2"),
        ("\u{0}\u{1}\u{2}".into(), "must start with v=0"),
        ("\u{0}\u{ff}".into(), "must start with v=0"),
        (
            good.replace(
                "o=alice 2890844526 2890844526 IN IP4 host.anywhere.com\r\n",
                "",
            ),
            "no o=",
        ),
        (good.replace("s=\r\n", ""), "no s="),
        (good.replace("t=0 0\r\n", ""), "no t="),
        (good.replace("t=0 0", "t=0"), "t= needs two fields"),
        (good.replace("2890844526 IN", "-1 IN"), "session version"),
        (good.replace("m=audio 62986", "m=audio x"), "bad port"),
        (
            good.replace("m=audio 62986", "m=audio 70000"),
            "port out of range",
        ),
        (
            good.replace("RTP/AVP 0 4 18", "RTP/AVP 0 4 300"),
            "payload type",
        ),
        (
            good.replace("RTP/AVP 0 4 18", "RTP/AVP"),
            "without a format",
        ),
        (
            good.replace("a=rtpmap:18 G729/8000", "a=rtpmap:18 G729"),
            "bad rtpmap",
        ),
        (good.replace("s=\r\n", "s=\r\ns=again\r\n"), "a second s="),
        (good.replace("s=\r\n", "s=\r\nv=0\r\n"), "a second v="),
        (good.replace("s=\r\n", "s=\r\nx=1\r\n"), "unknown line type"),
        (good + "t=0 0\r\n", "not allowed in a media section"),
        (
            "v=0\r\no=- 1 1 IN IP4 h\r\ns=\u{0}\r\nt=0 0\r\n".into(),
            "NUL",
        ),
        (
            "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nt=0 0\r\nA=x\r\n".into(),
            "type",
        ),
        (
            "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nt=0 0\r\nb=AS\r\n".into(),
            "bad b=",
        ),
        (
            "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nr=7d 1h\r\nt=0 0\r\n".into(),
            "r= before",
        ),
    ];
    for (text, expected) in cases {
        let error = SessionDescription::parse(&text)
            .expect_err(&text)
            .to_string();
        assert!(error.contains(expected), "{text:?}: {error}");
    }
    assert_eq!(
        SessionDescription::parse_bytes(b"v=0\r\n\xff\r\n"),
        Err(SdpError::NotText)
    );
}

#[test]
fn absurd_sizes_are_refused() {
    let head = "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nt=0 0\r\n";
    let huge = format!(
        "{head}a=x:{}\r\n",
        "y".repeat(lyrebird_sdp::MAX_DESCRIPTION_BYTES)
    );
    assert!(matches!(
        SessionDescription::parse(&huge),
        Err(SdpError::TooLarge { .. })
    ));
    let many_lines = format!("{head}{}", "a=x\r\n".repeat(lyrebird_sdp::MAX_LINES + 1));
    assert!(matches!(
        SessionDescription::parse(&many_lines),
        Err(SdpError::TooMany { what: "lines", .. })
    ));
    let many_sections = format!(
        "{head}{}",
        "m=audio 9 RTP/AVP 0\r\n".repeat(lyrebird_sdp::MAX_MEDIA_SECTIONS + 1)
    );
    assert!(matches!(
        SessionDescription::parse(&many_sections),
        Err(SdpError::TooMany {
            what: "media sections",
            ..
        })
    ));
    let formats: Vec<String> = (0..=lyrebird_sdp::MAX_FORMATS)
        .map(|i| format!("f{i}"))
        .collect();
    let many_formats = format!("{head}m=message 9 TCP/MSRP {}\r\n", formats.join(" "));
    let error = SessionDescription::parse(&many_formats)
        .unwrap_err()
        .to_string();
    assert!(error.contains("formats"), "{error}");
}

#[test]
fn unknown_media_kinds_are_kept() {
    let text = crlf(&[
        "v=0",
        "o=- 1 1 IN IP6 ::1",
        "s=-",
        "t=0 0",
        "m=x-hologram 9/2 RTP/AVP 96",
        "b=AS:2000",
        "a=rtpmap:96 HOLO/90000",
        "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
        "a=sctp-port:5000",
    ]);
    let sdp = round_trip(&text);
    assert_eq!(sdp.media[0].kind, MediaKind::Other("x-hologram".into()));
    assert_eq!(sdp.media[0].port_count, Some(2));
    assert_eq!(sdp.media[1].kind, MediaKind::Application);
    assert_eq!(sdp.media[1].payload_types().count(), 0);
}
