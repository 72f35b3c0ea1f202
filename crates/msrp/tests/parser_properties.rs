//! Property tests of the parser (run in the normal test command; the cargo-fuzz target in
//! `fuzz/` explores further): any input is either a message or an error, never a panic, and
//! every message we can build survives encode → parse unchanged.

use lyrebird_msrp::{Continuation, Kind, Message, Method};
use proptest::prelude::*;

fn transaction_id() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9][a-zA-Z0-9.+=-]{3,31}"
}

fn message() -> impl Strategy<Value = Message> {
    (
        transaction_id(),
        prop_oneof![
            Just(Kind::Request(Method::Send)),
            Just(Kind::Request(Method::Report)),
            Just(Kind::Request(Method::Auth)),
            (200u16..=999).prop_map(|status| Kind::Response {
                status,
                comment: Some("Whatever it is".into())
            }),
        ],
        proptest::collection::vec(("[A-Z][a-zA-Z-]{0,12}", "[ -~]{0,40}"), 0..6),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..2000)),
        prop_oneof![
            Just(Continuation::Complete),
            Just(Continuation::More),
            Just(Continuation::Aborted)
        ],
    )
        .prop_map(|(tid, kind, extra, body, continuation)| {
            let mut headers = vec![
                ("To-Path".to_owned(), "msrp://a.example:1/x;ws".to_owned()),
                (
                    "From-Path".to_owned(),
                    "msrp://b.invalid:2855/y;ws".to_owned(),
                ),
            ];
            let is_response = matches!(kind, Kind::Response { .. });
            for (name, value) in extra {
                // Headers whose values the parser interprets are generated valid elsewhere.
                if ["Byte-Range", "Status", "To-Path", "From-Path"]
                    .iter()
                    .any(|h| h.eq_ignore_ascii_case(&name))
                {
                    continue;
                }
                headers.push((name, value.trim().to_owned()));
            }
            let body = if is_response { None } else { body };
            if body.is_some() {
                headers.push(("Content-Type".into(), "application/octet-stream".into()));
            }
            Message {
                transaction_id: tid,
                kind,
                headers,
                body,
                continuation,
            }
        })
        .prop_filter("the body must not contain its end-line", |m| {
            let needle = format!("\r\n-------{}", m.transaction_id);
            m.body
                .as_ref()
                .is_none_or(|b| !b.windows(needle.len()).any(|w| w == needle.as_bytes()))
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = Message::parse(&data);
    }

    #[test]
    fn mutated_messages_never_panic(m in message(), at in any::<prop::sample::Index>(), byte in any::<u8>(), cut in any::<prop::sample::Index>()) {
        let mut wire = m.encode();
        let i = at.index(wire.len());
        wire[i] = byte;
        let _ = Message::parse(&wire);
        let j = cut.index(wire.len());
        let _ = Message::parse(&wire[..j]);
    }

    #[test]
    fn built_messages_round_trip(m in message()) {
        let wire = m.encode();
        let parsed = Message::parse(&wire).map_err(|e| TestCaseError::fail(format!("{e}")))?;
        prop_assert_eq!(&parsed, &m);
        prop_assert_eq!(parsed.encode(), wire);
    }
}
