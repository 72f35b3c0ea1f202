//! Property tests: every model this crate can write reads back as the same model, and no
//! input — random bytes or lines that look like SDP — makes the parser panic.

use lyrebird_sdp::{
    Attribute, Bandwidth, Candidate, Connection, Direction, Fingerprint, Fmtp, Group,
    MediaDescription, MediaKind, Origin, RtcpFb, Rtpmap, SessionDescription, Setup, Timing,
};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

/// An RFC 8866 token (no separators, never empty).
fn token() -> impl Strategy<Value = String> {
    "[A-Za-z0-9][A-Za-z0-9._!~+-]{0,10}"
}

/// Free text as RFC 8866 allows it on a line: printable, no CR, LF or NUL.
fn text() -> impl Strategy<Value = String> {
    "[ -~]{0,24}"
}

fn non_empty_text() -> impl Strategy<Value = String> {
    "[!-~][ -~]{0,20}"
}

fn direction() -> impl Strategy<Value = Direction> {
    prop_oneof![
        Just(Direction::SendRecv),
        Just(Direction::SendOnly),
        Just(Direction::RecvOnly),
        Just(Direction::Inactive),
    ]
}

fn candidate() -> impl Strategy<Value = Candidate> {
    (
        (
            token(),
            any::<u16>(),
            token(),
            any::<u32>(),
            token(),
            any::<u16>(),
            token(),
        ),
        option::of(token()),
        option::of(any::<u16>()),
        // Extension names never `raddr`/`rport`, which are typed.
        vec(("x[a-z]{1,6}", token()), 0..3),
    )
        .prop_map(
            |((foundation, component, transport, priority, address, port, kind), ra, rp, ext)| {
                Candidate {
                    foundation,
                    component,
                    transport,
                    priority,
                    address,
                    port,
                    kind,
                    related_address: ra,
                    related_port: rp,
                    extensions: ext,
                }
            },
        )
}

fn attribute() -> impl Strategy<Value = Attribute> {
    prop_oneof![
        direction().prop_map(Attribute::Direction),
        (0u8..128, token(), any::<u32>(), option::of(token())).prop_map(
            |(payload_type, encoding, clock_rate, parameters)| Attribute::Rtpmap(Rtpmap {
                payload_type,
                encoding,
                clock_rate,
                parameters,
            })
        ),
        (0u8..128, text()).prop_map(|(payload_type, parameters)| Attribute::Fmtp(Fmtp {
            payload_type,
            parameters,
        })),
        (option::of(0u8..128), non_empty_text()).prop_map(|(payload_type, feedback)| {
            Attribute::RtcpFb(RtcpFb {
                payload_type,
                feedback,
            })
        }),
        Just(Attribute::RtcpMux),
        non_empty_text().prop_map(Attribute::Mid),
        (token(), vec(token(), 0..4))
            .prop_map(|(semantics, mids)| Attribute::Group(Group { semantics, mids })),
        non_empty_text().prop_map(Attribute::IceUfrag),
        non_empty_text().prop_map(Attribute::IcePwd),
        candidate().prop_map(Attribute::Candidate),
        (token(), vec(any::<u8>(), 1..33)).prop_map(|(hash_function, bytes)| {
            let value: Vec<String> = bytes.iter().map(|b| format!("{b:02X}")).collect();
            Attribute::Fingerprint(Fingerprint {
                hash_function,
                value: value.join(":"),
            })
        }),
        prop_oneof![
            Just(Setup::Active),
            Just(Setup::Passive),
            Just(Setup::ActPass),
            Just(Setup::HoldConn),
        ]
        .prop_map(Attribute::Setup),
        ("x-[a-z0-9-]{1,8}", option::of(text()))
            .prop_map(|(name, value)| Attribute::Other { name, value }),
    ]
}

fn connection() -> impl Strategy<Value = Connection> {
    (prop_oneof![Just("IP4"), Just("IP6")], token()).prop_map(|(address_type, address)| {
        Connection {
            network_type: "IN".into(),
            address_type: address_type.into(),
            address,
        }
    })
}

fn bandwidth() -> impl Strategy<Value = Bandwidth> {
    (token(), any::<u64>()).prop_map(|(kind, value)| Bandwidth { kind, value })
}

fn media() -> impl Strategy<Value = MediaDescription> {
    let rtp = (
        prop_oneof![
            Just(MediaKind::Audio),
            Just(MediaKind::Video),
            "x-[a-z]{1,6}".prop_map(MediaKind::Other),
        ],
        prop_oneof![Just("RTP/AVP"), Just("UDP/TLS/RTP/SAVPF")],
        vec((0u8..128).prop_map(|pt| pt.to_string()), 1..6),
    );
    let other = (
        prop_oneof![
            Just(MediaKind::Message),
            Just(MediaKind::Application),
            Just(MediaKind::Text)
        ],
        prop_oneof![Just("TCP/WS/MSRP"), Just("UDP/DTLS/SCTP")],
        vec(token(), 1..3),
    );
    (
        prop_oneof![rtp, other],
        any::<u16>(),
        option::of(any::<u16>()),
        option::of(text()),
        vec(connection(), 0..2),
        vec(bandwidth(), 0..2),
        option::of(text()),
        vec(attribute(), 0..8),
    )
        .prop_map(
            |(
                (kind, protocol, formats),
                port,
                port_count,
                information,
                connections,
                bandwidths,
                key,
                attributes,
            )| {
                MediaDescription {
                    kind,
                    port,
                    port_count,
                    protocol: protocol.into(),
                    formats,
                    information,
                    connections,
                    bandwidths,
                    key,
                    attributes,
                }
            },
        )
}

fn description() -> impl Strategy<Value = SessionDescription> {
    let origin = (token(), "[0-9]{1,20}", any::<u64>(), connection()).prop_map(
        |(username, session_id, session_version, c)| Origin {
            username,
            session_id,
            session_version,
            network_type: c.network_type,
            address_type: c.address_type,
            address: c.address,
        },
    );
    let timing = (any::<u64>(), any::<u64>(), vec(non_empty_text(), 0..2)).prop_map(
        |(start, stop, repeats)| Timing {
            start,
            stop,
            repeats,
        },
    );
    (
        (origin, text(), option::of(text()), option::of(text())),
        (vec(text(), 0..2), vec(text(), 0..2)),
        (
            option::of(connection()),
            vec(bandwidth(), 0..2),
            vec(timing, 1..3),
        ),
        (option::of(text()), option::of(text())),
        vec(attribute(), 0..6),
        vec(media(), 0..4),
    )
        .prop_map(
            |(
                (origin, session_name, information, uri),
                (emails, phones),
                (connection, bandwidths, timing),
                (time_zones, key),
                attributes,
                media,
            )| SessionDescription {
                origin,
                session_name,
                information,
                uri,
                emails,
                phones,
                connection,
                bandwidths,
                timing,
                time_zones,
                key,
                attributes,
                media,
            },
        )
}

/// Lines that look like SDP: a known or unknown type letter and text that may or may not fit.
fn sdp_like() -> impl Strategy<Value = String> {
    let line = (
        prop_oneof![
            Just("o="),
            Just("s="),
            Just("c="),
            Just("b="),
            Just("t="),
            Just("r="),
            Just("m="),
            Just("a="),
            Just("a=rtpmap:"),
            Just("a=candidate:"),
            Just("a=fmtp:"),
            Just("a=rtcp-fb:"),
            Just("a=fingerprint:"),
            Just("a=group:"),
            Just("a=setup:"),
            Just("m=audio "),
            Just("x="),
        ],
        "[ -~]{0,30}|[0-9 /*.-]{0,20}",
    )
        .prop_map(|(kind, rest)| format!("{kind}{rest}"));
    vec(line, 0..12).prop_map(|lines| {
        let mut text = String::from("v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nt=0 0\r\n");
        for line in lines {
            text.push_str(&line);
            text.push_str("\r\n");
        }
        text
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn written_models_read_back_the_same(model in description()) {
        let text = model.to_string();
        prop_assert_eq!(SessionDescription::parse(&text), Ok(model), "{}", text);
    }

    #[test]
    fn random_bytes_never_panic(bytes in vec(any::<u8>(), 0..512)) {
        let _ = SessionDescription::parse_bytes(&bytes);
        let mut prefixed = b"v=0\r\n".to_vec();
        prefixed.extend_from_slice(&bytes);
        let _ = SessionDescription::parse_bytes(&prefixed);
    }

    #[test]
    fn sdp_like_text_never_panics_and_what_parses_round_trips(text in sdp_like()) {
        if let Ok(model) = SessionDescription::parse(&text) {
            prop_assert_eq!(SessionDescription::parse(&model.to_string()), Ok(model.clone()));
            for index in 0..model.media.len() {
                let _ = (model.holds(index), model.ice_credentials(index), model.direction(index));
            }
            let mut edited = model;
            edited.map_audio_video_direction(Direction::held);
            edited.bump_version();
            prop_assert!(SessionDescription::parse(&edited.to_string()).is_ok());
        }
    }
}
