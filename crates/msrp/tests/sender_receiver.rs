//! A sender and a receiver core wired back to back (no relay), with the connection cut in
//! the middle and the transfer resumed from the last confirmed byte: the receiver ends with
//! exactly the file, every write continuing where the last one ended.

use std::time::Instant;

use lyrebird_msrp::{
    FileReceiver, FileSender, Message, MsrpUri, ReceiverConfig, ReceiverEvent, SenderConfig,
    SenderEvent,
};

fn file(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

fn sender(total: u64, resume_from: u64) -> FileSender {
    FileSender::new(SenderConfig {
        local: MsrpUri::parse("msrp://a.invalid:2855/a1;ws").unwrap(),
        to_path: vec![MsrpUri::parse("msrp://b.invalid:2855/b1;ws").unwrap()],
        message_id: "file-1".into(),
        content_type: "application/octet-stream".into(),
        total,
        resume_from,
        chunk_size: 1000,
        window: 4000,
        rng_seed: resume_from,
    })
    .unwrap()
}

/// Runs until done or until `cut_after` chunks; returns the sender's confirmed count.
fn run(
    data: &[u8],
    sender: &mut FileSender,
    receiver: &mut FileReceiver,
    out: &mut Vec<u8>,
    cut_after: Option<usize>,
) -> (u64, bool) {
    let now = Instant::now();
    let mut chunks = 0;
    let mut completed = false;
    loop {
        let mut progressed = false;
        if let Some(plan) = sender.next_chunk() {
            if cut_after == Some(chunks) {
                return (sender.confirmed(), false);
            }
            let bytes = &data[plan.offset as usize..plan.offset as usize + plan.len];
            let frame = sender.encode_chunk(now, bytes).unwrap();
            chunks += 1;
            assert!(receiver.handle_message(Message::parse(&frame).unwrap()));
            progressed = true;
        }
        while let Some(frame) = receiver.poll_transmit() {
            assert!(sender.handle_message(&Message::parse(&frame).unwrap()));
            progressed = true;
        }
        while let Some(event) = receiver.poll_event() {
            match event {
                ReceiverEvent::Write { offset, data } => {
                    assert_eq!(
                        offset as usize,
                        out.len(),
                        "writes must be in order, no gaps"
                    );
                    out.extend_from_slice(&data);
                }
                ReceiverEvent::Complete => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        while let Some(event) = sender.poll_event() {
            match event {
                SenderEvent::Confirmed { bytes } => assert!(bytes <= out.len() as u64),
                SenderEvent::Completed => completed = true,
                SenderEvent::Failed(e) => panic!("{e}"),
            }
        }
        if completed || !progressed {
            return (sender.confirmed(), completed);
        }
    }
}

fn receiver(total: u64, have: u64) -> FileReceiver {
    FileReceiver::new(ReceiverConfig {
        local: MsrpUri::parse("msrp://b.invalid:2855/b1;ws").unwrap(),
        total,
        already_have: have,
        report_every: 2500,
        rng_seed: 1,
        max_reorder_bytes: 1 << 20,
    })
    .unwrap()
}

#[test]
fn transfers_of_various_sizes_complete() {
    for len in [0usize, 1, 999, 1000, 1001, 12_345] {
        let data = file(len);
        let mut out = Vec::new();
        let (confirmed, done) = run(
            &data,
            &mut sender(len as u64, 0),
            &mut receiver(len as u64, 0),
            &mut out,
            None,
        );
        assert!(done, "len {len}");
        assert_eq!(confirmed, len as u64);
        assert_eq!(out, data);
    }
}

#[test]
fn resumes_from_the_last_confirmed_byte_without_rewriting() {
    let data = file(50_000);
    let mut out = Vec::new();
    let mut rx = receiver(50_000, 0);
    let (confirmed, done) = run(&data, &mut sender(50_000, 0), &mut rx, &mut out, Some(17));
    assert!(!done);
    // The cut loses the unconfirmed tail on the sender's side; the receiver holds more.
    assert!(confirmed <= out.len() as u64 && confirmed > 0);
    let held = out.len() as u64;
    // New session: the sender restarts at its last confirmation, the receiver at what it holds.
    let mut rx2 = receiver(50_000, held);
    let (confirmed, done) = run(
        &data,
        &mut sender(50_000, confirmed),
        &mut rx2,
        &mut out,
        None,
    );
    assert!(done);
    assert_eq!(confirmed, 50_000);
    assert_eq!(out, data);
    assert_eq!(rx2.refused_chunks(), 0);
    assert!(rx2.duplicate_bytes() > 0 || confirmed == held);
}

#[test]
fn reordered_chunks_are_written_in_order() {
    let data = file(20_000);
    let mut tx = sender(20_000, 0);
    let mut rx = receiver(20_000, 0);
    let now = Instant::now();
    let mut frames = Vec::new();
    while let Some(plan) = tx.next_chunk() {
        let bytes = &data[plan.offset as usize..plan.offset as usize + plan.len];
        frames.push(tx.encode_chunk(now, bytes).unwrap());
    }
    // Deliver in a scrambled order, as a relay with several workers may.
    let order = [2, 0, 3, 1];
    let mut out = Vec::new();
    for i in order {
        rx.handle_message(Message::parse(&frames[i]).unwrap());
        while let Some(event) = rx.poll_event() {
            if let ReceiverEvent::Write { offset, data } = event {
                assert_eq!(offset as usize, out.len());
                out.extend_from_slice(&data);
            }
        }
    }
    assert_eq!(out, data[..4000]);
    assert_eq!(rx.reordered_chunks(), 2);
    assert_eq!(rx.duplicate_bytes(), 0);
}

#[test]
fn an_aborted_message_is_reported() {
    let mut tx = sender(10_000, 0);
    let mut rx = receiver(10_000, 0);
    let frame = tx.abort(Instant::now()).unwrap();
    rx.handle_message(Message::parse(&frame).unwrap());
    assert_eq!(rx.poll_event(), Some(ReceiverEvent::Aborted));
    assert!(tx.next_chunk().is_none());
}

/// Sends every chunk of `data` and returns the receiver's reports (nothing delivered back).
fn send_all(data: &[u8], tx: &mut FileSender, rx: &mut FileReceiver) -> Vec<Vec<u8>> {
    let now = Instant::now();
    let mut reports = Vec::new();
    while let Some(plan) = tx.next_chunk() {
        let bytes = &data[plan.offset as usize..plan.offset as usize + plan.len];
        let frame = tx.encode_chunk(now, bytes).unwrap();
        rx.handle_message(Message::parse(&frame).unwrap());
        while let Some(frame) = rx.poll_transmit() {
            let message = Message::parse(&frame).unwrap();
            if message.method().is_some() {
                reports.push(frame);
            }
        }
    }
    reports
}

fn completes_on(tx: &mut FileSender, reports: &[Vec<u8>]) -> bool {
    for frame in reports {
        tx.handle_message(&Message::parse(frame).unwrap());
    }
    std::iter::from_fn(|| tx.poll_event()).any(|e| e == SenderEvent::Completed)
}

#[test]
fn a_lost_final_report_is_repeated_when_the_tail_comes_again() {
    let data = file(3_500);
    let mut tx = sender(3_500, 0);
    let mut rx = receiver(3_500, 0);
    let reports = send_all(&data, &mut tx, &mut rx);
    assert!(rx.is_complete());
    // Everything but the final report reaches the sender: it still waits for the last bytes.
    assert!(!completes_on(&mut tx, &reports[..reports.len() - 1]));
    // It sends again from its last confirmation; the receiver, complete, reports it all again.
    tx.rewind();
    let again = send_all(&data, &mut tx, &mut rx);
    assert!(!again.is_empty(), "a resent tail must be answered");
    assert!(completes_on(&mut tx, &again));
    assert_eq!(
        std::iter::from_fn(|| rx.poll_event())
            .filter(|e| *e == ReceiverEvent::Complete)
            .count(),
        1,
        "the file completes once"
    );
}

#[test]
fn a_resumed_session_for_a_complete_file_is_confirmed_at_once() {
    let data = file(3_500);
    // The receiver holds the whole file; the sender only knows of the first 1000 bytes.
    let mut tx = sender(3_500, 1_000);
    let mut rx = receiver(3_500, 3_500);
    let now = Instant::now();
    let plan = tx.next_chunk().unwrap();
    let bytes = &data[plan.offset as usize..plan.offset as usize + plan.len];
    let frame = tx.encode_chunk(now, bytes).unwrap();
    rx.handle_message(Message::parse(&frame).unwrap());
    let reports: Vec<Vec<u8>> = std::iter::from_fn(|| rx.poll_transmit())
        .filter(|f| Message::parse(f).unwrap().method().is_some())
        .collect();
    assert!(completes_on(&mut tx, &reports));
    assert!(
        std::iter::from_fn(|| rx.poll_event()).all(|e| !matches!(e, ReceiverEvent::Write { .. })),
        "nothing is written twice"
    );
}

/// A SEND of our file's message id with the given range and body.
fn chunk(tid: &str, range: &str, body: &[u8], continuation: char) -> Message {
    let mut frame = format!(
        "MSRP {tid} SEND\r\nTo-Path: msrp://b.invalid:2855/b1;ws\r\nFrom-Path: msrp://a.invalid:2855/a1;ws\r\nMessage-ID: file-1\r\nByte-Range: {range}\r\nContent-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    frame.extend_from_slice(body);
    frame.extend_from_slice(format!("\r\n-------{tid}{continuation}\r\n").as_bytes());
    Message::parse(&frame).unwrap()
}

#[test]
fn bytes_past_the_offered_size_are_refused_and_never_written() {
    let mut rx = receiver(10, 0);
    rx.handle_message(chunk("tid00001", "1-5/10", b"hello", '+'));
    // The same message goes on with an unknown total and runs past the offered 10 bytes.
    rx.handle_message(chunk("tid00002", "6-20/*", b"0123456789abcde", '$'));
    // And a chunk that starts beyond the end altogether.
    rx.handle_message(chunk("tid00003", "4000000001-4000000005/*", b"later", '$'));
    let mut written = 0u64;
    while let Some(event) = rx.poll_event() {
        if let ReceiverEvent::Write { offset, data } = event {
            written = written.max(offset + data.len() as u64);
        }
    }
    assert!(written <= 10, "{written} bytes written of a 10-byte file");
    assert_eq!(rx.refused_chunks(), 2);
}
