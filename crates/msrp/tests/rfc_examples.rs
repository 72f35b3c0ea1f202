//! The examples of RFC 4975 (§7.1, §7.2, §7.1.2, chunking) and RFC 4976 (§5, AUTH) as test
//! vectors: each parses, says what the RFC says it says, and encodes back to the same bytes.

use lyrebird_msrp::{Continuation, Kind, Message, Method, MsrpError};

fn crlf(text: &str) -> Vec<u8> {
    text.replace('\n', "\r\n").into_bytes()
}

fn round_trip(text: &str) -> Message {
    let wire = crlf(text);
    let message = Message::parse(&wire).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(
        message.encode(),
        wire,
        "re-encoding changed the message:\n{text}"
    );
    message
}

#[test]
fn rfc4975_basic_send_and_response() {
    let send = round_trip(
        "MSRP a786hjs2 SEND
To-Path: msrp://biloxi.example.com:12763/kjhd37s2s20w2a;tcp
From-Path: msrp://atlanta.example.com:7654/jshA7weztas;tcp
Message-ID: 87652491
Byte-Range: 1-25/25
Content-Type: text/plain

Hey Bob, are you there?
-------a786hjs2$
",
    );
    assert_eq!(send.kind, Kind::Request(Method::Send));
    assert_eq!(send.body.as_deref(), Some(&b"Hey Bob, are you there?"[..]));
    assert_eq!(send.message_id(), Some("87652491"));
    let range = send.byte_range().unwrap().unwrap();
    assert_eq!(
        (range.start, range.end, range.total),
        (1, Some(25), Some(25))
    );
    assert_eq!(
        send.to_path().unwrap()[0].session_id.as_deref(),
        Some("kjhd37s2s20w2a")
    );

    let ok = round_trip(
        "MSRP a786hjs2 200 OK
To-Path: msrp://atlanta.example.com:7654/jshA7weztas;tcp
From-Path: msrp://biloxi.example.com:12763/kjhd37s2s20w2a;tcp
-------a786hjs2$
",
    );
    assert_eq!(ok.status(), Some(200));
    // The response we would build to the SEND is exactly the RFC's.
    let local = send.to_path().unwrap().remove(0);
    let built = send.response(200, "OK", &local).unwrap();
    assert_eq!(built, ok);
}

#[test]
fn rfc4975_chunked_message_and_report() {
    let first = round_trip(
        "MSRP d93kswow SEND
To-Path: msrp://bob.example.com:8888/9di4eae923wzd;tcp
From-Path: msrp://alicepc.example.com:7777/iau39soe2843z;tcp
Message-ID: 12339sdqwer
Byte-Range: 1-137/148
Content-Type: message/cpim

To: Bob <sip:bob@example.com>
From: Alice <sip:alice@example.com>
DateTime: 2006-05-15T15:02:31-03:00
Content-Type: text/plain

ABCD
-------d93kswow+
",
    );
    assert_eq!(first.continuation, Continuation::More);
    let second = round_trip(
        "MSRP op2nc9a SEND
To-Path: msrp://bob.example.com:8888/9di4eae923wzd;tcp
From-Path: msrp://alicepc.example.com:7777/iau39soe2843z;tcp
Message-ID: 12339sdqwer
Byte-Range: 138-148/148
Content-Type: message/cpim

1234567890
-------op2nc9a$
",
    );
    assert_eq!(second.continuation, Continuation::Complete);
    let report = round_trip(
        "MSRP dkei38sd REPORT
To-Path: msrp://alice.example.com:7777/iau39soe2843z;tcp
From-Path: msrp://bob.example.com:8888/9di4eae923wzd;tcp
Message-ID: 12339sdqwer
Byte-Range: 1-148/148
Status: 000 200 OK
-------dkei38sd$
",
    );
    assert_eq!(report.status_header().unwrap().unwrap().code, 200);
    // REPORTs are never answered (§7.1.2).
    let local = report.to_path().unwrap().remove(0);
    assert!(report.response(200, "OK", &local).is_none());
}

#[test]
fn rfc4976_auth_exchange() {
    let auth = round_trip(
        "MSRP 49fh AUTH
To-Path: msrps://alice@intra.example.com;tcp
From-Path: msrps://alice.example.com:9892/98cjs;tcp
-------49fh$
",
    );
    assert_eq!(auth.method(), Some(&Method::Auth));
    assert!(auth.to_path().unwrap()[0].session_id.is_none());
    round_trip(
        "MSRP 49fh 401 Unauthorized
To-Path: msrps://alice.example.com:9892/98cjs;tcp
From-Path: msrps://alice@intra.example.com;tcp
WWW-Authenticate: Digest realm=\"intra.example.com\", qop=\"auth\", nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\"
-------49fh$
",
    );
    let ok = round_trip(
        "MSRP 49fi 200 OK
To-Path: msrps://alice.example.com:9892/98cjs;tcp
From-Path: msrps://alice@intra.example.com;tcp
Use-Path: msrps://intra.example.com:9000/jui787s2f;tcp
Expires: 900
-------49fi$
",
    );
    assert_eq!(ok.header("expires"), Some("900"));
}

#[test]
fn malformed_messages_get_clear_errors() {
    let cases: &[(&str, &str)] = &[
        ("MSRP a786hjs2 SEND\n", "headers"),
        (
            "MSRQ a786hjs2 SEND\nTo-Path: msrp://a:1/b;tcp\nFrom-Path: msrp://a:1/c;tcp\n-------a786hjs2$\n",
            "start line",
        ),
        (
            "MSRP ab SEND\nTo-Path: msrp://a:1/b;tcp\nFrom-Path: msrp://a:1/c;tcp\n-------ab$\n",
            "start line",
        ),
        (
            "MSRP a786hjs2 send\nTo-Path: msrp://a:1/b;tcp\nFrom-Path: msrp://a:1/c;tcp\n-------a786hjs2$\n",
            "start line",
        ),
        (
            "MSRP a786hjs2 SEND\nFrom-Path: msrp://a:1/c;tcp\nTo-Path: msrp://a:1/b;tcp\n-------a786hjs2$\n",
            "headers",
        ),
        (
            "MSRP a786hjs2 SEND\nTo-Path: msrp://a:1/b;tcp\nFrom-Path: msrp://a:1/c;tcp\n-------a786hjs2!\n",
            "end-line",
        ),
        (
            "MSRP a786hjs2 SEND\nTo-Path: msrp://a:1/b;tcp\nFrom-Path: msrp://a:1/c;tcp\n-------a786hjs2$\nextra",
            "end-line",
        ),
        (
            "MSRP a786hjs2 SEND\nTo-Path: msrp://a:1/b;tcp\nFrom-Path: msrp://a:1/c;tcp\n-------other$\n",
            "end-line",
        ),
        (
            "MSRP a786hjs2 SEND\nTo-Path: msrp://a:1/b;tcp\nFrom-Path: msrp://a:1/c;tcp\nContent-Type: text/plain\n\nx\n-------a786hjs2$\ny\n-------a786hjs2$\n",
            "body",
        ),
        (
            "MSRP a786hjs2 SEND\nTo-Path: msrp://a:1/b;tcp\nFrom-Path: msrp://a:1/c;tcp\n\nbody without type\n-------a786hjs2$\n",
            "headers",
        ),
        (
            "MSRP a786hjs2 SEND\nTo-Path: msrp://a:1/b;tcp\nFrom-Path: msrp://a:1/c;tcp\nByte-Range: 0-1/1\n-------a786hjs2$\n",
            "Byte-Range",
        ),
        (
            "MSRP a786hjs2 200 OK\nTo-Path: msrp://a:1/b;tcp\nFrom-Path: msrp://a:1/c;tcp\nContent-Type: text/plain\n\nno\n-------a786hjs2$\n",
            "body",
        ),
    ];
    for (text, part) in cases {
        match Message::parse(&crlf(text)) {
            Err(MsrpError::Malformed { what, .. }) => assert_eq!(what, *part, "{text}"),
            Err(MsrpError::InvalidUri { .. }) => assert_eq!(*part, "uri", "{text}"),
            other => panic!("expected a {part} error for {text:?}, got {other:?}"),
        }
    }
}
