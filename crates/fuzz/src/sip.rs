//! SIP: the message parser on its own, and the user agent driven by a peer that answers what
//! it sends, starts dialogs of its own, and misbehaves.

use std::collections::VecDeque;

use arbitrary::Arbitrary;
use lyrebird_sip::message::{self, Message, StartLine};
use lyrebird_sip::{
    CallId, IncomingMessageId, IncomingReferId, Reason, UaConfig, UaEvent, UserAgent,
};

use crate::{Clock, check_memory, heap, settle_timers};

/// One received WebSocket message (RFC 7118), one TCP-style stream, and a malformed request
/// to answer: every typed view of an accepted message is read too, since the cores call them
/// on whatever arrives.
pub fn message(data: &[u8]) {
    if let Ok(msg) = message::parse(data) {
        read_every_view(&msg);
        // What we accepted we can write; the writer must not panic on it either.
        let _ = msg.to_bytes();
    }
    let mut stream = data;
    while let Ok((msg, used)) = message::parse_stream(stream) {
        assert!(
            used > 0 && used <= stream.len(),
            "parse_stream used {used} of {}",
            stream.len()
        );
        read_every_view(&msg);
        stream = &stream[used..];
    }
    let _ = message::salvage(data);
}

fn read_every_view(msg: &Message) {
    let _ = msg.method();
    let _ = msg
        .request_uri()
        .map(|uri| (uri.is_sip(), uri.is_loose_route()));
    let _ = msg.vias().map(|vias| {
        for via in vias {
            let _ = (via.branch(), via.sent_by());
        }
    });
    let _ = msg.cseq();
    let _ = msg.call_id();
    let _ = msg.from().map(|from| from.tag().map(str::len));
    let _ = msg.to();
    let _ = msg.contacts();
    let _ = msg.record_routes();
    let _ = msg.routes();
    let _ = msg.content_type();
    let _ = msg.has_option("Supported", "outbound");
    let _ = msg.list_header("Require");
    for name in ["Reason", "Replaces", "Refer-To", "Event", "Expires"] {
        for value in msg.header_values(name) {
            let _ = Reason::parse(value);
            let _ = message::split_list(value);
            let _ = message::NameAddr::parse(value);
        }
    }
    for value in msg
        .header_values("WWW-Authenticate")
        .chain(msg.header_values("Proxy-Authenticate"))
    {
        let _ = lyrebird_sip::auth::Challenge::parse(value);
    }
}

const AOR: &str = "sip:bob@example.com";
const PEER: &str = "<sip:carol@example.net>";
const AUDIO_OFFER: &str = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 49170 UDP/TLS/RTP/SAVPF 111 0\r\na=rtpmap:111 opus/48000/2\r\na=sendrecv\r\na=ice-ufrag:F7gI\r\na=ice-pwd:x9cml/YzichV2+XlhiMu8g\r\na=fingerprint:sha-256 D1:2C:BE:AD:C4:F6:64:5C:25:16:11:9C:AF:E7:0F:73:79:36:4E:9C:1E:15:54:39:0C:06:8B:ED:96:86:00:39\r\na=setup:actpass\r\na=rtcp-mux\r\n";
const MSRP_OFFER: &str = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=message 7654 TCP/TLS/MSRP *\r\na=accept-types:text/plain message/cpim\r\na=path:msrp://192.0.2.1:7654/jshA7we;tcp\r\na=sendonly\r\na=file-selector:name:\"a.txt\" type:text/plain size:3\r\n";

/// A body the peer or the user puts in an offer or answer.
#[derive(Debug, Arbitrary)]
enum Body {
    None,
    Audio,
    Msrp,
    Text(String),
}

impl Body {
    fn text(&self) -> Option<&str> {
        match self {
            Body::None => None,
            Body::Audio => Some(AUDIO_OFFER),
            Body::Msrp => Some(MSRP_OFFER),
            Body::Text(text) => Some(text),
        }
    }
}

/// Requests the peer can send; each gets the headers its method needs.
#[derive(Debug, Arbitrary, Clone, Copy)]
enum PeerMethod {
    Invite,
    ReInvite,
    Update,
    Bye,
    Cancel,
    Ack,
    Message,
    Options,
    Refer,
    Notify,
    Info,
    Other,
}

/// A challenge for a 401 or 407, or something broken in its place.
#[derive(Debug, Arbitrary)]
enum ChallengeKind {
    Md5,
    Sha256Qop,
    Stale,
    Raw(String),
}

#[derive(Debug, Arbitrary)]
enum Op {
    Connect,
    Disconnect,
    /// Time passes; due timers fire.
    Advance(u32),
    /// Straight to the next deadline.
    FireTimer,
    /// Any bytes as one WebSocket message.
    Raw(Vec<u8>),
    /// The peer's last message again, once as sent and once with a byte changed.
    Retransmit,
    Mutate {
        at: u16,
        byte: u8,
    },
    /// The peer answers one of the recent requests we sent.
    Reply {
        pick: u8,
        status: u16,
        peer_tag: bool,
        challenge: ChallengeKind,
        body: Body,
        extra: Option<(String, String)>,
    },
    /// The peer sends a request, inside the latest dialog or outside any.
    Request {
        method: PeerMethod,
        in_dialog: bool,
        body: Body,
        extra: Option<(String, String)>,
    },
    Register,
    Unregister,
    Invite {
        target: u8,
        body: Body,
    },
    Ring(u8),
    Answer(u8, Body),
    Reject(u8, u16),
    Hangup(u8, Option<u16>),
    Reinvite(u8, Body),
    Update(u8, Body),
    WithdrawReoffer(u8),
    AnswerReoffer(u8, Body),
    RejectReoffer(u8, u16),
    Refer {
        call: u8,
        attended: u8,
    },
    AcceptRefer(u8),
    RejectRefer(u8, u16),
    NotifyRefer(u8, u16),
    Dtmf(u8, char, u32),
    SendMessage {
        target: u8,
        body: Vec<u8>,
    },
    AnswerMessage(u8, u16),
}

const TARGETS: &[&str] = &[
    "sip:carol@example.net",
    "carol",
    "sip:bob@example.com;transport=ws",
    "tel:+15551234567",
    "",
];

fn pick<T: Copy>(items: &[T], index: u8) -> Option<T> {
    (!items.is_empty()).then(|| items[usize::from(index) % items.len()])
}

/// What the scripted peer remembers between operations.
#[derive(Default)]
struct Peer {
    /// Our latest requests, newest last, for the peer to answer.
    requests: VecDeque<Message>,
    /// (Call-ID, our name-addr with tag, the peer's name-addr with tag) of the latest dialog.
    dialog: Option<(String, String, String)>,
    /// The peer's latest INVITE (for CANCEL and ACK): Via, Call-ID, From, To, CSeq number.
    invite: Option<(String, String, String, String, u32)>,
    last_frame: Vec<u8>,
    counter: u32,
    calls: Vec<CallId>,
    messages: Vec<IncomingMessageId>,
    refers: Vec<IncomingReferId>,
}

impl Peer {
    fn next(&mut self) -> u32 {
        self.counter = self.counter.wrapping_add(1);
        self.counter
    }

    fn saw_transmit(&mut self, bytes: &[u8]) {
        let Ok(msg) = message::parse(bytes) else {
            return;
        };
        let (Ok(call_id), Some(from), Some(to)) =
            (msg.call_id(), msg.header("From"), msg.header("To"))
        else {
            return;
        };
        let is_request = matches!(msg.start, StartLine::Request { .. });
        let (ours, theirs) = if is_request { (from, to) } else { (to, from) };
        if ours.contains("tag=") && theirs.contains("tag=") {
            self.dialog = Some((call_id.to_owned(), ours.to_owned(), theirs.to_owned()));
        }
        if is_request {
            self.requests.push_back(msg);
            if self.requests.len() > 8 {
                self.requests.pop_front();
            }
        }
    }

    fn saw_event(&mut self, event: UaEvent) {
        match event {
            UaEvent::IncomingCall { call, .. } => self.calls.push(call),
            UaEvent::MessageReceived { id, .. } => self.messages.push(id),
            UaEvent::ReferReceived { refer, .. } => self.refers.push(refer),
            _ => {}
        }
    }

    fn reply(&mut self, op: &Op) -> Option<Vec<u8>> {
        let Op::Reply {
            pick,
            status,
            peer_tag,
            challenge,
            body,
            extra,
        } = op
        else {
            return None;
        };
        let request = self
            .requests
            .get(usize::from(*pick) % self.requests.len().max(1))?
            .clone();
        let status = 100 + status % 600;
        let mut out = format!("SIP/2.0 {status} Fuzz\r\n");
        for via in request.header_values("Via") {
            out.push_str(&format!("Via: {via}\r\n"));
        }
        for name in ["From", "Call-ID", "CSeq"] {
            out.push_str(&format!(
                "{name}: {}\r\n",
                request.header(name).unwrap_or("")
            ));
        }
        let to = request.header("To").unwrap_or("");
        if *peer_tag && !to.contains("tag=") {
            out.push_str(&format!("To: {to};tag=peer{}\r\n", self.next()));
        } else {
            out.push_str(&format!("To: {to}\r\n"));
        }
        out.push_str("Contact: <sip:carol@192.0.2.1;transport=ws>;expires=600\r\n");
        if status == 200 && request.method().is_some_and(|m| m.as_str() == "REGISTER") {
            let contact = request.header("Contact").unwrap_or("");
            out.push_str(&format!(
                "Contact: {contact};expires=300\r\nRequire: outbound\r\nFlow-Timer: 25\r\n"
            ));
        }
        if status == 401 || status == 407 {
            let header = if status == 401 {
                "WWW-Authenticate"
            } else {
                "Proxy-Authenticate"
            };
            let value = match challenge {
                ChallengeKind::Md5 => {
                    format!("Digest realm=\"example.com\", nonce=\"n{}\"", self.next())
                }
                ChallengeKind::Sha256Qop => format!(
                    "Digest realm=\"example.com\", nonce=\"n{}\", qop=\"auth\", algorithm=SHA-256, opaque=\"o\"",
                    self.next()
                ),
                ChallengeKind::Stale => format!(
                    "Digest realm=\"example.com\", nonce=\"n{}\", stale=true",
                    self.next()
                ),
                ChallengeKind::Raw(raw) => raw.clone(),
            };
            out.push_str(&format!("{header}: {value}\r\n"));
        }
        if let Some((name, value)) = extra {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        Some(finish(out, body.text(), "application/sdp"))
    }

    fn request(&mut self, op: &Op) -> Option<Vec<u8>> {
        let Op::Request {
            method,
            in_dialog,
            body,
            extra,
        } = op
        else {
            return None;
        };
        let n = self.next();
        let (name, body_type, mut headers) = match method {
            PeerMethod::Invite | PeerMethod::ReInvite => ("INVITE", "application/sdp", String::new()),
            PeerMethod::Update => ("UPDATE", "application/sdp", String::new()),
            PeerMethod::Bye => ("BYE", "text/plain", "Reason: Q.850;cause=16;text=\"Normal\"\r\n".to_owned()),
            PeerMethod::Cancel => ("CANCEL", "text/plain", String::new()),
            PeerMethod::Ack => ("ACK", "application/sdp", String::new()),
            PeerMethod::Message => ("MESSAGE", "text/plain", String::new()),
            PeerMethod::Options => ("OPTIONS", "text/plain", "Accept: application/sdp\r\n".to_owned()),
            PeerMethod::Refer => ("REFER", "text/plain", "Refer-To: <sip:dave@example.net?Replaces=abc%3Bto-tag%3D1%3Bfrom-tag%3D2>\r\nReferred-By: <sip:carol@example.net>\r\n".to_owned()),
            PeerMethod::Notify => ("NOTIFY", "message/sipfrag;version=2.0", "Event: refer\r\nSubscription-State: active;expires=60\r\n".to_owned()),
            PeerMethod::Info => ("INFO", "application/dtmf-relay", String::new()),
            PeerMethod::Other => ("SUBSCRIBE", "text/plain", "Event: presence\r\n".to_owned()),
        };
        let (via, call_id, from, to, cseq) = match (method, &self.invite, &self.dialog) {
            (PeerMethod::Cancel | PeerMethod::Ack, Some(invite), _) => invite.clone(),
            (_, _, Some((call_id, ours, theirs))) if *in_dialog => (
                format!("SIP/2.0/WSS peer.invalid;branch=z9hG4bKp{n}"),
                call_id.clone(),
                theirs.clone(),
                ours.clone(),
                n + 1,
            ),
            _ => (
                format!("SIP/2.0/WSS peer.invalid;branch=z9hG4bKp{n}"),
                format!("peer-call-{n}"),
                format!("{PEER};tag=pt{n}"),
                format!("<{AOR}>"),
                1,
            ),
        };
        if matches!(method, PeerMethod::Invite) {
            self.invite = Some((via.clone(), call_id.clone(), from.clone(), to.clone(), cseq));
        }
        if let Some((name, value)) = extra {
            headers.push_str(&format!("{name}: {value}\r\n"));
        }
        let out = format!(
            "{name} sip:bob@df7jal23ls0d.invalid;transport=ws SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\nFrom: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {name}\r\nContact: <sip:carol@192.0.2.1;transport=ws>\r\n{headers}"
        );
        Some(finish(out, body.text(), body_type))
    }
}

fn finish(mut head: String, body: Option<&str>, content_type: &str) -> Vec<u8> {
    let body = body.unwrap_or("");
    if !body.is_empty() {
        head.push_str(&format!("Content-Type: {content_type}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    head.into_bytes()
}

fn config() -> UaConfig {
    UaConfig {
        aor: AOR.into(),
        display_name: Some("Bob".into()),
        auth_username: None,
        password: "secret".into(),
        instance_id: "00000000-0000-4000-8000-000000000001".into(),
        register_expires: 600,
        user_agent: "Lyrebird fuzz".into(),
        secure: true,
        outbound_proxy: None,
        rng_seed: 7,
    }
}

/// The user agent under a sequence of peer messages, timer firings, flow changes and user
/// commands. After every operation the heap it holds, its queues included, stays within
/// [`crate::memory_bound`], its deadline is never left due, and then its output is drained
/// as an engine would.
pub fn user_agent(data: &[u8]) {
    let ops: Vec<Op> = crate::operations(data);
    let baseline = heap::live_bytes();
    let mut clock = Clock::new();
    let Ok(mut ua) = UserAgent::new(config()) else {
        panic!("the fuzz configuration is valid");
    };
    let mut peer = Peer::default();
    for op in &ops {
        let now = clock.now();
        let frame = match op {
            Op::Connect => {
                ua.handle_connected(now);
                None
            }
            Op::Disconnect => {
                ua.handle_disconnected(now);
                None
            }
            Op::Advance(millis) => {
                clock.advance(*millis);
                None
            }
            Op::FireTimer => {
                if let Some(deadline) = ua.poll_timeout() {
                    clock.advance_to(deadline);
                }
                None
            }
            Op::Raw(bytes) => Some(bytes.clone()),
            Op::Retransmit => Some(peer.last_frame.clone()),
            Op::Mutate { at, byte } => {
                let mut frame = peer.last_frame.clone();
                if !frame.is_empty() {
                    let at = usize::from(*at) % frame.len();
                    frame[at] = *byte;
                }
                Some(frame)
            }
            Op::Reply { .. } => peer.reply(op),
            Op::Request { .. } => peer.request(op),
            Op::Register => {
                let _ = ua.register(now);
                None
            }
            Op::Unregister => {
                let _ = ua.unregister(now);
                None
            }
            Op::Invite { target, body } => {
                let target = pick(TARGETS, *target).unwrap_or_default();
                if let Ok(call) = ua.invite(now, target, body.text().unwrap_or("").to_owned()) {
                    peer.calls.push(call);
                }
                None
            }
            Op::Ring(call) => {
                if let Some(call) = pick(&peer.calls, *call) {
                    let _ = ua.ring(now, call);
                }
                None
            }
            Op::Answer(call, body) => {
                if let Some(call) = pick(&peer.calls, *call) {
                    let _ = ua.answer(now, call, body.text().unwrap_or("").to_owned());
                }
                None
            }
            Op::Reject(call, status) => {
                if let Some(call) = pick(&peer.calls, *call) {
                    let _ = ua.reject(now, call, *status);
                }
                None
            }
            Op::Hangup(call, cause) => {
                if let Some(call) = pick(&peer.calls, *call) {
                    let reason = cause.map(|cause| Reason::sip(cause, "fuzz"));
                    let _ = ua.hangup_with_reason(now, call, reason);
                }
                None
            }
            Op::Reinvite(call, body) => {
                if let Some(call) = pick(&peer.calls, *call) {
                    let _ = ua.reinvite(now, call, body.text().unwrap_or("").to_owned());
                }
                None
            }
            Op::Update(call, body) => {
                if let Some(call) = pick(&peer.calls, *call) {
                    let _ = ua.update(now, call, body.text().unwrap_or("").to_owned());
                }
                None
            }
            Op::WithdrawReoffer(call) => {
                if let Some(call) = pick(&peer.calls, *call) {
                    let _ = ua.withdraw_reoffer(call);
                }
                None
            }
            Op::AnswerReoffer(call, body) => {
                if let Some(call) = pick(&peer.calls, *call) {
                    let _ = ua.answer_reoffer(now, call, body.text().unwrap_or("").to_owned());
                }
                None
            }
            Op::RejectReoffer(call, status) => {
                if let Some(call) = pick(&peer.calls, *call) {
                    let _ = ua.reject_reoffer(now, call, *status);
                }
                None
            }
            Op::Refer { call, attended } => {
                if let Some(call) = pick(&peer.calls, *call) {
                    let replaces =
                        pick(&peer.calls, *attended).and_then(|other| ua.replaces_target(other));
                    let _ = ua.refer(now, call, "sip:dave@example.net", replaces);
                }
                None
            }
            Op::AcceptRefer(refer) => {
                if let Some(refer) = pick(&peer.refers, *refer) {
                    let _ = ua.accept_refer(now, refer);
                }
                None
            }
            Op::RejectRefer(refer, status) => {
                if let Some(refer) = pick(&peer.refers, *refer) {
                    let _ = ua.reject_refer(now, refer, *status);
                }
                None
            }
            Op::NotifyRefer(refer, status) => {
                if let Some(refer) = pick(&peer.refers, *refer) {
                    let _ = ua.notify_refer(now, refer, *status, "Fuzz");
                }
                None
            }
            Op::Dtmf(call, digit, duration) => {
                if let Some(call) = pick(&peer.calls, *call) {
                    let _ = ua.send_dtmf_info(now, call, *digit, *duration);
                }
                None
            }
            Op::SendMessage { target, body } => {
                let target = pick(TARGETS, *target).unwrap_or_default();
                let _ = ua.send_message(now, target, "text/plain", body.clone());
                None
            }
            Op::AnswerMessage(id, status) => {
                if let Some(id) = pick(&peer.messages, *id) {
                    let _ = ua.answer_message(now, id, *status);
                }
                None
            }
        };
        if let Some(frame) = frame {
            ua.handle_input(now, &frame);
            peer.last_frame = frame;
        }
        let now = clock.now();
        settle_timers(
            now,
            &mut ua,
            UserAgent::poll_timeout,
            UserAgent::handle_timeout,
        );
        check_memory(baseline, data.len(), "SIP user agent");
        while let Some(bytes) = ua.poll_transmit() {
            peer.saw_transmit(&bytes);
        }
        while let Some(event) = ua.poll_event() {
            peer.saw_event(event);
        }
    }
}
