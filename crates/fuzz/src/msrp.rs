//! MSRP: frames and CPIM bodies on their own, and the session parts (relay AUTH, chat, file
//! sender and receiver) driven by a peer that answers what they send and sends chunks of
//! its own.

use std::collections::VecDeque;

use arbitrary::Arbitrary;
use lyrebird_msrp::{
    AuthOutcome, ByteRange, ChatConfig, ChatEvent, ChatSession, Continuation, CpimMessage,
    FileReceiver, FileSender, Message, Method, MsrpUri, ReceiverConfig, RelayAuth, SenderConfig,
    Status,
};

use crate::{Clock, check_memory, heap, settle_timers};

/// One WebSocket message from the relay or the peer. What the parser accepts re-encodes to
/// something it reads as the same message, and its typed headers read without panicking.
pub fn message(data: &[u8]) {
    let Ok(message) = Message::parse(data) else {
        return;
    };
    let _ = message.to_path();
    let _ = message.from_path();
    let _ = message.byte_range();
    let _ = message.status_header();
    let _ = message.message_id();
    for (_, value) in &message.headers {
        let _ = ByteRange::parse(value);
        let _ = Status::parse(value);
        let _ = MsrpUri::parse_list(value);
    }
    let encoded = message.encode();
    let Ok(again) = Message::parse(&encoded) else {
        panic!("an accepted message does not re-parse: {encoded:?}");
    };
    assert_eq!(again, message, "a message changed on the way back");
}

/// A `message/cpim` body (RFC 3862) from a chat peer. What parses writes back to a body that
/// parses to the same content.
pub fn cpim(data: &[u8]) {
    let Ok(cpim) = CpimMessage::parse(data) else {
        return;
    };
    let encoded = cpim.encode();
    let Ok(again) = CpimMessage::parse(&encoded) else {
        panic!("an accepted CPIM body does not re-parse: {encoded:?}");
    };
    assert_eq!(
        again.body, cpim.body,
        "CPIM content changed on the way back"
    );
}

const LOCAL: &str = "msrp://bob.invalid:2855/local1;ws";
const PEER: &str = "msrp://alice.invalid:2855/peer1;ws";
const RELAY: &str = "msrp://relay.example.com:2855;ws";
const MESSAGE_IDS: &[&str] = &["file-1", "chat-1", "chat-2", "x"];
const CONTENT_TYPES: &[&str] = &["text/plain", "message/cpim", "application/octet-stream", ""];

/// Which part of the session a frame is for; an engine routes by connection and session id.
#[derive(Debug, Arbitrary, Clone, Copy)]
enum Part {
    Relay,
    Chat,
    Sender,
    Receiver,
}

#[derive(Debug, Arbitrary)]
enum Op {
    Advance(u32),
    FireTimer,
    Raw(Part, Vec<u8>),
    /// A SEND from the peer: one chunk of a message, with its Byte-Range chosen by the input.
    Chunk {
        to: Part,
        message_id: u8,
        start: u32,
        end: Option<u32>,
        total: Option<u32>,
        continuation: u8,
        content_type: u8,
        body: Vec<u8>,
    },
    /// The peer or relay answers one of our recent requests.
    Respond {
        to: Part,
        pick: u8,
        status: u16,
        challenge: bool,
    },
    /// A REPORT for one of our messages.
    Report {
        to: Part,
        message_id: u8,
        status: u16,
        end: u32,
    },
    RelayStart,
    ChatSend {
        content_type: u8,
        body: Vec<u8>,
    },
    ChatConfirm(u8),
    ChatForget(u8),
    SenderChunk,
    SenderOddChunk(u16),
    SenderRewind,
    SenderAbort,
}

struct Session {
    relay: RelayAuth,
    chat: ChatSession,
    sender: FileSender,
    receiver: FileReceiver,
    /// Our latest requests, newest last.
    requests: VecDeque<Message>,
    received: Vec<String>,
    peer_uri: MsrpUri,
    counter: u32,
}

fn uri(text: &str) -> MsrpUri {
    let Ok(uri) = MsrpUri::parse(text) else {
        panic!("the fuzz URIs are valid");
    };
    uri
}

impl Session {
    fn new() -> Self {
        let (local, peer) = (uri(LOCAL), uri(PEER));
        let relay = RelayAuth::new(uri(RELAY), local.clone(), "bob", "secret", 600, 1);
        let chat = ChatSession::new(ChatConfig {
            local: local.clone(),
            to_path: vec![peer.clone()],
            chunk_size: 512,
            max_message_bytes: 16 * 1024,
            rng_seed: 2,
        });
        let sender = FileSender::new(SenderConfig {
            local: local.clone(),
            to_path: vec![peer.clone()],
            message_id: "file-1".into(),
            content_type: "application/octet-stream".into(),
            total: 20_000,
            resume_from: 0,
            chunk_size: 1024,
            window: 4096,
            rng_seed: 3,
        });
        let receiver = FileReceiver::new(ReceiverConfig {
            local,
            total: 20_000,
            already_have: 0,
            report_every: 4096,
            rng_seed: 4,
            max_reorder_bytes: 8192,
        });
        let (Ok(chat), Ok(sender), Ok(receiver)) = (chat, sender, receiver) else {
            panic!("the fuzz configuration is valid");
        };
        Self {
            relay,
            chat,
            sender,
            receiver,
            requests: VecDeque::new(),
            received: Vec::new(),
            peer_uri: peer,
            counter: 0,
        }
    }

    fn sent(&mut self, frame: &[u8]) {
        if let Ok(message) = Message::parse(frame)
            && message.method().is_some()
        {
            self.requests.push_back(message);
            if self.requests.len() > 8 {
                self.requests.pop_front();
            }
        }
    }

    fn deliver(&mut self, now: std::time::Instant, to: Part, frame: &[u8]) {
        let Ok(message) = Message::parse(frame) else {
            return;
        };
        match to {
            Part::Relay => {
                if let Ok(AuthOutcome::Send(frame)) = self.relay.handle_message(now, &message) {
                    self.sent(&frame);
                }
            }
            Part::Chat => {
                self.chat.handle_message(message);
            }
            Part::Sender => {
                self.sender.handle_message(&message);
            }
            Part::Receiver => {
                self.receiver.handle_message(message);
            }
        }
    }

    fn next_transaction(&mut self) -> String {
        self.counter = self.counter.wrapping_add(1);
        format!("peer{:04}", self.counter)
    }

    fn chunk(&mut self, op: &Op) -> Option<Vec<u8>> {
        let Op::Chunk {
            message_id,
            start,
            end,
            total,
            continuation,
            content_type,
            body,
            ..
        } = op
        else {
            return None;
        };
        let range = format!(
            "{}-{}/{}",
            start,
            end.map_or("*".to_owned(), |e| e.to_string()),
            total.map_or("*".to_owned(), |t| t.to_string())
        );
        let mut message = Message::request(self.next_transaction(), Method::Send)
            .with_header("To-Path", LOCAL)
            .with_header("From-Path", PEER)
            .with_header("Message-ID", pick(MESSAGE_IDS, *message_id))
            .with_header("Byte-Range", range);
        let content_type = pick(CONTENT_TYPES, *content_type);
        if !content_type.is_empty() {
            message = message.with_header("Content-Type", content_type);
            message.body = Some(body.clone());
        }
        message.continuation = match continuation % 3 {
            0 => Continuation::Complete,
            1 => Continuation::More,
            _ => Continuation::Aborted,
        };
        Some(message.encode())
    }

    fn respond(&mut self, op: &Op) -> Option<Vec<u8>> {
        let Op::Respond {
            pick,
            status,
            challenge,
            ..
        } = op
        else {
            return None;
        };
        let request = self
            .requests
            .get(usize::from(*pick) % self.requests.len().max(1))?;
        let status = 200 + status % 400;
        let mut response = request.response(status, "fuzz", &self.peer_uri)?;
        if status == 401 && *challenge {
            response.headers.push((
                "WWW-Authenticate".into(),
                format!(
                    "Digest realm=\"example.com\", nonce=\"n{}\", qop=\"auth\"",
                    self.counter
                ),
            ));
        }
        if status == 200 && request.method() == Some(&Method::Auth) {
            response
                .headers
                .push(("Use-Path".into(), RELAY.replace(";ws", "/r1;ws")));
            response.headers.push(("Expires".into(), "600".into()));
        }
        Some(response.encode())
    }

    fn report(&mut self, op: &Op) -> Option<Vec<u8>> {
        let Op::Report {
            message_id,
            status,
            end,
            ..
        } = op
        else {
            return None;
        };
        let message = Message::request(self.next_transaction(), Method::Report)
            .with_header("To-Path", LOCAL)
            .with_header("From-Path", PEER)
            .with_header("Message-ID", pick(MESSAGE_IDS, *message_id))
            .with_header("Byte-Range", format!("1-{end}/{end}"))
            .with_header("Status", format!("000 {} fuzz", 200 + status % 400));
        Some(message.encode())
    }
}

fn pick<'a>(items: &[&'a str], index: u8) -> &'a str {
    items[usize::from(index) % items.len()]
}

fn part_of(op: &Op) -> Part {
    match op {
        Op::Raw(to, _) | Op::Chunk { to, .. } | Op::Respond { to, .. } | Op::Report { to, .. } => {
            *to
        }
        _ => Part::Chat,
    }
}

/// The relay AUTH, a chat session, a file sender and a file receiver under a sequence of
/// frames, timer firings and user actions. After every operation the heap they hold, their
/// queues included, stays within [`crate::memory_bound`] and no deadline is left due.
pub fn session(data: &[u8]) {
    let ops: Vec<Op> = crate::operations(data);
    let baseline = heap::live_bytes();
    let mut clock = Clock::new();
    let mut session = Session::new();
    for op in &ops {
        let now = clock.now();
        let frame = match op {
            Op::Advance(millis) => {
                clock.advance(*millis);
                None
            }
            Op::FireTimer => {
                let deadlines = [
                    session.relay.poll_timeout(),
                    session.chat.poll_timeout(),
                    session.sender.poll_timeout(),
                ];
                if let Some(deadline) = deadlines.into_iter().flatten().min() {
                    clock.advance_to(deadline);
                }
                None
            }
            Op::Raw(_, bytes) => Some(bytes.clone()),
            Op::Chunk { .. } => session.chunk(op),
            Op::Respond { .. } => session.respond(op),
            Op::Report { .. } => session.report(op),
            Op::RelayStart => {
                let frame = session.relay.start(now);
                session.sent(&frame);
                None
            }
            Op::ChatSend { content_type, body } => {
                let _ = session
                    .chat
                    .send(now, pick(CONTENT_TYPES, *content_type), body);
                None
            }
            Op::ChatConfirm(index) => {
                if let Some(id) = session.received.get(usize::from(*index)) {
                    let id = id.clone();
                    session.chat.confirm_received(&id);
                }
                None
            }
            Op::ChatForget(index) => {
                if let Some(id) = session.received.get(usize::from(*index)) {
                    let id = id.clone();
                    session.chat.forget_received(&id);
                }
                None
            }
            Op::SenderChunk => {
                if let Some(plan) = session.sender.next_chunk()
                    && let Ok(frame) = session.sender.encode_chunk(now, &vec![b'z'; plan.len])
                {
                    session.sent(&frame);
                }
                None
            }
            Op::SenderOddChunk(len) => {
                if let Ok(frame) = session
                    .sender
                    .encode_chunk(now, &vec![b'y'; usize::from(*len)])
                {
                    session.sent(&frame);
                }
                None
            }
            Op::SenderRewind => {
                session.sender.rewind();
                None
            }
            Op::SenderAbort => {
                if let Some(frame) = session.sender.abort(now) {
                    session.sent(&frame);
                }
                None
            }
        };
        if let Some(frame) = frame {
            session.deliver(now, part_of(op), &frame);
        }
        let now = clock.now();
        settle_timers(
            now,
            &mut session,
            |session| session.relay.poll_timeout(),
            |session, at| {
                if let Ok(Some(frame)) = session.relay.handle_timeout(at) {
                    session.sent(&frame);
                }
            },
        );
        settle_timers(
            now,
            &mut session.chat,
            ChatSession::poll_timeout,
            ChatSession::handle_timeout,
        );
        settle_timers(
            now,
            &mut session.sender,
            FileSender::poll_timeout,
            FileSender::handle_timeout,
        );
        check_memory(baseline, data.len(), "MSRP session");
        while let Some(frame) = session.chat.poll_transmit() {
            session.sent(&frame);
        }
        while let Some(frame) = session.receiver.poll_transmit() {
            session.sent(&frame);
        }
        while let Some(event) = session.chat.poll_event() {
            if let ChatEvent::Received { message_id, .. } = event {
                session.received.push(message_id);
                if session.received.len() > 64 {
                    session.received.remove(0);
                }
            }
        }
        while session.receiver.poll_event().is_some() {}
        while session.sender.poll_event().is_some() {}
    }
}
