//! Two chat session cores wired back to back (no relay): messages both ways, chunked ones put
//! back together, reports turned into "delivered", and refusals and silence into failures.

use std::time::{Duration, Instant};

use lyrebird_msrp::chat::REPORT_TIMEOUT;
use lyrebird_msrp::{ChatConfig, ChatEvent, ChatSession, CpimMessage, Message, MsrpUri};

fn session(local: &str, peer: &str, max_message_bytes: usize) -> ChatSession {
    ChatSession::new(ChatConfig {
        local: MsrpUri::parse(local).unwrap(),
        to_path: vec![MsrpUri::parse(peer).unwrap()],
        chunk_size: 100,
        max_message_bytes,
        rng_seed: local.len() as u64,
    })
    .unwrap()
}

const A: &str = "msrp://a.invalid:2855/a1;ws";
const B: &str = "msrp://b.invalid:2855/b1;ws";

/// Moves frames both ways until both are quiet, confirming every received message as an
/// application that has stored it would; returns (events of a, events of b).
fn pump(a: &mut ChatSession, b: &mut ChatSession) -> (Vec<ChatEvent>, Vec<ChatEvent>) {
    let (mut events_a, mut events_b) = (Vec::new(), Vec::new());
    loop {
        let mut moved = false;
        while let Some(frame) = a.poll_transmit() {
            b.handle_message(Message::parse(&frame).unwrap());
            moved = true;
        }
        while let Some(frame) = b.poll_transmit() {
            a.handle_message(Message::parse(&frame).unwrap());
            moved = true;
        }
        for (session, events) in [(&mut *a, &mut events_a), (&mut *b, &mut events_b)] {
            while let Some(event) = session.poll_event() {
                if let ChatEvent::Received { message_id, .. } = &event {
                    session.confirm_received(message_id);
                }
                events.push(event);
                moved = true;
            }
        }
        if !moved {
            break;
        }
    }
    (events_a, events_b)
}

#[test]
fn a_message_counts_as_delivered_only_once_the_receiver_has_kept_it() {
    let (mut a, mut b) = (session(A, B, 10_000), session(B, A, 10_000));
    let now = Instant::now();
    let kept = a.send(now, "text/plain", b"keep me").unwrap();
    let lost = a.send(now, "text/plain", b"lose me").unwrap();
    // Everything moves, but b has not said yet whether it stored what arrived.
    let mut received = Vec::new();
    for _ in 0..10 {
        while let Some(frame) = a.poll_transmit() {
            b.handle_message(Message::parse(&frame).unwrap());
        }
        while let Some(frame) = b.poll_transmit() {
            a.handle_message(Message::parse(&frame).unwrap());
        }
        while let Some(ChatEvent::Received { message_id, .. }) = b.poll_event() {
            received.push(message_id);
        }
    }
    assert_eq!(received.len(), 2);
    assert!(
        std::iter::from_fn(|| a.poll_event()).all(|e| !matches!(e, ChatEvent::Delivered { .. }))
    );
    assert_eq!(a.pending().count(), 2);
    // b stored the first and could not store the second.
    assert!(b.confirm_received(&received[0]));
    b.forget_received(&received[1]);
    assert!(
        !b.confirm_received(&received[1]),
        "nothing to confirm any more"
    );
    let (ev_a, _) = pump(&mut a, &mut b);
    assert_eq!(ev_a, vec![ChatEvent::Delivered { message_id: kept }]);
    assert_eq!(a.pending().collect::<Vec<_>>(), [lost.as_str()]);
}

#[test]
fn messages_go_both_ways_and_are_confirmed() {
    let (mut a, mut b) = (session(A, B, 10_000), session(B, A, 10_000));
    let now = Instant::now();
    let long: Vec<u8> = (0..350).map(|i| b'a' + (i % 26) as u8).collect();
    let id1 = a.send(now, "text/plain", b"hello <b>bob</b>").unwrap();
    let id2 = a.send(now, "text/plain", &long).unwrap();
    let (ev_a, ev_b) = pump(&mut a, &mut b);
    let received: Vec<&[u8]> = ev_b
        .iter()
        .filter_map(|e| match e {
            ChatEvent::Received { body, .. } => Some(body.as_slice()),
            _ => None,
        })
        .collect();
    assert_eq!(received, vec![&b"hello <b>bob</b>"[..], &long[..]]);
    assert!(ev_a.contains(&ChatEvent::Delivered { message_id: id1 }));
    assert!(ev_a.contains(&ChatEvent::Delivered { message_id: id2 }));
    assert_eq!(a.pending().count(), 0);

    let reply = b.send(now, "text/plain", "réponse ✓".as_bytes()).unwrap();
    let (ev_a, ev_b) = pump(&mut a, &mut b);
    assert!(
        matches!(&ev_a[..], [ChatEvent::Received { body, .. }] if body == "réponse ✓".as_bytes())
    );
    assert_eq!(ev_b, vec![ChatEvent::Delivered { message_id: reply }]);
}

#[test]
fn cpim_travels_as_the_peer_asked() {
    let (mut a, mut b) = (session(A, B, 10_000), session(B, A, 10_000));
    let wrapped = CpimMessage {
        from: "<sip:alice@localhost>".into(),
        to: "<sip:bob@localhost>".into(),
        date_time: Some("2026-11-21T12:00:00Z".into()),
        content_type: "text/plain;charset=utf-8".into(),
        body: b"inside".to_vec(),
    };
    a.send(Instant::now(), "message/cpim", &wrapped.encode())
        .unwrap();
    let (_, ev_b) = pump(&mut a, &mut b);
    let [
        ChatEvent::Received {
            content_type, body, ..
        },
    ] = &ev_b[..]
    else {
        panic!("{ev_b:?}");
    };
    assert_eq!(content_type, "message/cpim");
    assert_eq!(CpimMessage::parse(body).unwrap(), wrapped);
}

#[test]
fn a_message_too_large_is_refused_and_reported_failed() {
    let (mut a, mut b) = (session(A, B, 10_000), session(B, A, 250));
    let id = a.send(Instant::now(), "text/plain", &[b'x'; 300]).unwrap();
    let (ev_a, ev_b) = pump(&mut a, &mut b);
    assert!(ev_b.iter().all(|e| matches!(e, ChatEvent::Refused(_))));
    assert!(
        ev_a.iter().any(
            |e| matches!(e, ChatEvent::Failed { message_id, status: 413, .. } if *message_id == id)
        ),
        "{ev_a:?}"
    );
}

#[test]
fn silence_fails_a_message_after_the_report_timeout() {
    let mut a = session(A, B, 10_000);
    let now = Instant::now();
    let id = a.send(now, "text/plain", b"anyone?").unwrap();
    while a.poll_transmit().is_some() {}
    assert_eq!(a.poll_timeout(), Some(now + REPORT_TIMEOUT));
    a.handle_timeout(now + Duration::from_secs(1));
    assert_eq!(a.poll_event(), None);
    a.handle_timeout(now + REPORT_TIMEOUT);
    assert!(
        matches!(a.poll_event(), Some(ChatEvent::Failed { message_id, status: 408, .. }) if message_id == id)
    );
    assert_eq!(a.poll_timeout(), None);
}

#[test]
fn keepalives_aborts_and_garbage_deliver_nothing() {
    let mut b = session(B, A, 10_000);
    let frames: [&[u8]; 3] = [
        // §7.1.1 keep-alive: an empty SEND.
        b"MSRP k1k1k1k1 SEND\r\nTo-Path: msrp://b.invalid:2855/b1;ws\r\nFrom-Path: msrp://a.invalid:2855/a1;ws\r\nMessage-ID: m1\r\nByte-Range: 1-0/0\r\n-------k1k1k1k1$\r\n",
        // The first part of a message, then its abort.
        b"MSRP k2k2k2k2 SEND\r\nTo-Path: msrp://b.invalid:2855/b1;ws\r\nFrom-Path: msrp://a.invalid:2855/a1;ws\r\nMessage-ID: m2\r\nByte-Range: 1-3/6\r\nContent-Type: text/plain\r\n\r\nabc\r\n-------k2k2k2k2+\r\n",
        b"MSRP k3k3k3k3 SEND\r\nTo-Path: msrp://b.invalid:2855/b1;ws\r\nFrom-Path: msrp://a.invalid:2855/a1;ws\r\nMessage-ID: m2\r\nByte-Range: 4-3/6\r\n-------k3k3k3k3#\r\n",
    ];
    for frame in frames {
        assert!(b.handle_message(Message::parse(frame).unwrap()));
    }
    assert_eq!(b.poll_event(), None);
    // Every SEND got its 200 transaction response.
    let responses = std::iter::from_fn(|| b.poll_transmit())
        .filter(|f| Message::parse(f).unwrap().status() == Some(200))
        .count();
    assert_eq!(responses, 3);
}
