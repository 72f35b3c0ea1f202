//! Call flows modelled on RFC 3665, with two `UserAgent`s wired through a tiny in-test proxy
//! in virtual time. The proxy is a registrar with digest auth (MD5), adds its own Via
//! (stateless branch derivation, RFC 3261 §16.11, so CANCEL/ACK follow the INVITE), a
//! Record-Route on dialog-forming INVITEs, rewrites the Request-URI to the registered Contact
//! with a nathelper-style `;alias=` parameter, and relays everything else to the other UA.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use lyrebird_sip::auth::{Algorithm, Credentials};
use lyrebird_sip::message::{self, Message, Method, Uri};
use lyrebird_sip::timer::MESSAGE_ANSWER_WAIT;
use lyrebird_sip::{EndReason, IncomingMessageId, Reason, SipError, UaConfig, UaEvent, UserAgent};

#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
enum Side {
    A,
    B,
}

impl Side {
    fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }
}

const REALM: &str = "example.com";
const RR: &str = "<sip:proxy.example.com;transport=ws;lr>";

struct Proxy {
    passwords: HashMap<String, String>,
    nonces: u32,
    locations: HashMap<String, (Side, String)>,
    min_expires: u32,
    drop_acks: bool,
    /// Every request seen, as (from side, method, raw text).
    log: Vec<(Side, String, String)>,
}

fn copy_response(req: &Message, status: u16, reason: &str) -> Message {
    let mut r = Message::new_response(status, reason);
    for v in req.header_values("Via") {
        r.push_header("Via", v);
    }
    for h in ["From", "Call-ID", "CSeq"] {
        r.push_header(h, req.header(h).unwrap());
    }
    let to = req.header("To").unwrap();
    r.push_header(
        "To",
        if to.contains("tag=") {
            to.to_owned()
        } else {
            format!("{to};tag=reg1")
        },
    );
    r
}

impl Proxy {
    fn new() -> Self {
        Proxy {
            passwords: [("alice", "alicepw"), ("bob", "bobpw")]
                .into_iter()
                .map(|(u, p)| (u.to_owned(), p.to_owned()))
                .collect(),
            nonces: 0,
            locations: HashMap::new(),
            min_expires: 0,
            drop_acks: false,
            log: Vec::new(),
        }
    }

    fn check_auth(&self, req: &Message) -> bool {
        let Some(c) = req.header("Authorization").and_then(Credentials::parse) else {
            return false;
        };
        let Some(pw) = self.passwords.get(&c.username) else {
            return false;
        };
        let alg = Algorithm::Md5;
        let ha1 = alg.hash_hex(&format!("{}:{}:{pw}", c.username, c.realm));
        let ha2 = alg.hash_hex(&format!("{}:{}", req.method().unwrap(), c.uri));
        let expected = alg.hash_hex(&format!(
            "{ha1}:{}:{}:{}:auth:{ha2}",
            c.nonce,
            c.nc.unwrap_or_default(),
            c.cnonce.unwrap_or_default()
        ));
        c.response == expected && c.realm == REALM
    }

    /// Returns messages to deliver: (to side, bytes).
    fn handle(&mut self, from: Side, bytes: &[u8]) -> Vec<(Side, Vec<u8>)> {
        let mut msg = message::parse(bytes).expect("UA sent an unparsable message");
        if let Some(method) = msg.method().cloned() {
            self.log.push((
                from,
                method.to_string(),
                String::from_utf8_lossy(bytes).into_owned(),
            ));
            if method == Method::Register {
                return vec![(from, self.registrar(from, &msg).to_bytes())];
            }
            if method == Method::Ack && self.drop_acks {
                return vec![];
            }
            let in_dialog = msg.to().unwrap().tag().is_some();
            let mut to_side = from.other();
            let mut new_ruri = None;
            if !in_dialog && matches!(method, Method::Invite | Method::Message | Method::Options) {
                let user = msg.request_uri().unwrap().user.clone().unwrap_or_default();
                let Some((side, contact)) = self.locations.get(&user).cloned() else {
                    return vec![(from, copy_response(&msg, 404, "Not Found").to_bytes())];
                };
                to_side = side;
                new_ruri = Some(contact);
            }
            let branch = msg.top_via().unwrap().branch().unwrap().to_owned();
            msg.headers.insert(
                0,
                message::Header {
                    name: "Via".into(),
                    value: format!("SIP/2.0/WS proxy.invalid;branch=z9hG4bKp{branch}"),
                },
            );
            // Loose routing: remove our own Route entry (§16.4).
            let routes: Vec<String> = msg
                .list_header("Route")
                .iter()
                .map(|s| s.to_string())
                .collect();
            msg.remove_header("Route");
            for r in routes.iter().filter(|r| !r.contains("proxy.example.com")) {
                msg.push_header("Route", r.clone());
            }
            if let Some(contact) = new_ruri {
                let mut uri = Uri::parse(&contact).unwrap();
                uri.params.push(message::Param {
                    name: "alias".into(),
                    value: Some("10.0.0.1~5060~1".into()),
                });
                if let message::StartLine::Request { uri: ruri, .. } = &mut msg.start {
                    *ruri = uri;
                }
                if method == Method::Invite {
                    msg.push_header("Record-Route", RR);
                }
            }
            vec![(to_side, msg.to_bytes())]
        } else {
            // Response: pop our Via and send to the other side.
            let vias: Vec<String> = msg
                .list_header("Via")
                .iter()
                .map(|s| s.to_string())
                .collect();
            assert!(
                vias[0].contains("proxy.invalid"),
                "response without proxy Via"
            );
            msg.remove_header("Via");
            for v in vias.iter().skip(1).rev() {
                msg.headers.insert(
                    0,
                    message::Header {
                        name: "Via".into(),
                        value: v.clone(),
                    },
                );
            }
            vec![(from.other(), msg.to_bytes())]
        }
    }

    fn registrar(&mut self, from: Side, req: &Message) -> Message {
        if !self.check_auth(req) {
            self.nonces += 1;
            let mut r = copy_response(req, 401, "Unauthorized");
            r.push_header(
                "WWW-Authenticate",
                format!(
                    "Digest realm=\"{REALM}\", nonce=\"n{}\", qop=\"auth\", algorithm=MD5",
                    self.nonces
                ),
            );
            return r;
        }
        let contact = req.contacts().unwrap().remove(0);
        let expires: u32 = contact
            .param("expires")
            .and_then(|p| p.value.as_deref()?.parse().ok())
            .unwrap_or(3600);
        if expires != 0 && expires < self.min_expires {
            let mut r = copy_response(req, 423, "Interval Too Brief");
            r.push_header("Min-Expires", self.min_expires.to_string());
            return r;
        }
        let user = req.to().unwrap().uri.user.clone().unwrap();
        let mut r = copy_response(req, 200, "OK");
        if expires == 0 {
            self.locations.remove(&user);
        } else {
            self.locations.insert(user, (from, contact.uri.to_string()));
            let mut c = contact.clone();
            c.params.retain(|p| p.name != "expires");
            r.push_header("Contact", format!("{c};expires={expires}"));
            r.push_header("Require", "outbound");
            r.push_header("Flow-Timer", "25");
        }
        r
    }
}

struct Net {
    now: Instant,
    a: UserAgent,
    b: UserAgent,
    proxy: Proxy,
    ev_a: Vec<UaEvent>,
    ev_b: Vec<UaEvent>,
}

fn config(user: &str, password: &str, seed: u64) -> UaConfig {
    UaConfig {
        aor: format!("sip:{user}@example.com"),
        display_name: Some(user.to_uppercase()),
        auth_username: None,
        password: password.into(),
        instance_id: format!("00000000-0000-4000-8000-00000000000{seed}"),
        register_expires: 600,
        user_agent: "lyrebird-test".into(),
        secure: false,
        outbound_proxy: Some("sip:proxy.example.com;transport=ws".into()),
        rng_seed: seed,
    }
}

impl Net {
    fn new() -> Net {
        Net::with_passwords("alicepw", "bobpw")
    }

    fn with_passwords(pa: &str, pb: &str) -> Net {
        let now = Instant::now();
        let mut a = UserAgent::new(config("alice", pa, 1)).unwrap();
        let mut b = UserAgent::new(config("bob", pb, 2)).unwrap();
        a.handle_connected(now);
        b.handle_connected(now);
        Net {
            now,
            a,
            b,
            proxy: Proxy::new(),
            ev_a: vec![],
            ev_b: vec![],
        }
    }

    fn ua(&mut self, side: Side) -> &mut UserAgent {
        match side {
            Side::A => &mut self.a,
            Side::B => &mut self.b,
        }
    }

    /// Relays until quiet (bounded, so a loop between the UAs fails the test).
    fn pump(&mut self) {
        for _ in 0..200 {
            let mut moved = false;
            for side in [Side::A, Side::B] {
                while let Some(bytes) = self.ua(side).poll_transmit() {
                    moved = true;
                    for (to, out) in self.proxy.handle(side, &bytes) {
                        let now = self.now;
                        self.ua(to).handle_input(now, &out);
                    }
                }
            }
            while let Some(e) = self.a.poll_event() {
                self.ev_a.push(e);
            }
            while let Some(e) = self.b.poll_event() {
                self.ev_b.push(e);
            }
            if !moved {
                return;
            }
        }
        panic!("messages kept flowing: a loop");
    }

    /// Advances virtual time to `until`, firing timers on the way.
    fn advance(&mut self, until: Instant) {
        loop {
            let next = [self.a.poll_timeout(), self.b.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(t) if t <= until => {
                    self.now = self.now.max(t);
                    let now = self.now;
                    self.a.handle_timeout(now);
                    self.b.handle_timeout(now);
                    self.pump();
                }
                _ => break,
            }
        }
        self.now = until;
    }

    fn register_both(&mut self) {
        self.a.register(self.now).unwrap();
        self.b.register(self.now).unwrap();
        self.pump();
        assert!(
            self.ev_a
                .iter()
                .any(|e| matches!(e, UaEvent::Registered { .. })),
            "{:?}",
            self.ev_a
        );
        assert!(
            self.ev_b
                .iter()
                .any(|e| matches!(e, UaEvent::Registered { .. }))
        );
        self.ev_a.clear();
        self.ev_b.clear();
        self.proxy.log.clear();
    }

    fn sent(&self, side: Side, method: &str) -> Vec<String> {
        self.proxy
            .log
            .iter()
            .filter(|(s, m, _)| *s == side && m == method)
            .map(|(_, _, t)| t.clone())
            .collect()
    }

    /// A calls bob; returns the call handles on both sides after B got the INVITE.
    fn call(&mut self) -> (lyrebird_sip::CallId, lyrebird_sip::CallId) {
        let ca = self
            .a
            .invite(self.now, "sip:bob@example.com", "v=0 offer".into())
            .unwrap();
        self.pump();
        let cb = match self.ev_b.last() {
            Some(UaEvent::IncomingCall {
                call, from, sdp, ..
            }) => {
                assert_eq!(from.uri, "sip:alice@example.com");
                assert_eq!(from.display_name.as_deref(), Some("ALICE"));
                assert_eq!(sdp.as_deref(), Some("v=0 offer"));
                *call
            }
            other => panic!("no IncomingCall: {other:?}"),
        };
        (ca, cb)
    }
}

#[test]
fn registration_with_401_challenge() {
    let mut net = Net::new();
    net.a.register(net.now).unwrap();
    net.pump();
    let regs = net.sent(Side::A, "REGISTER");
    assert_eq!(regs.len(), 2);
    assert!(!regs[0].contains("Authorization"));
    assert!(regs[1].contains("Authorization: Digest username=\"alice\""));
    assert!(regs[1].contains("CSeq: 2 REGISTER"));
    assert!(regs[0].contains("Via: SIP/2.0/WS ") && regs[0].contains(".invalid;branch=z9hG4bK"));
    assert!(regs[0].contains(";transport=ws;ob>;+sip.instance=\"<urn:uuid:00000000-0000-4000-8000-000000000001>\";reg-id=1"));
    assert!(regs[0].contains("Supported: outbound, path"));
    assert!(regs[0].contains("Route: <sip:proxy.example.com;transport=ws;lr>"));
    assert_eq!(
        net.ev_a,
        vec![UaEvent::Registered {
            expires: Duration::from_secs(600),
            outbound: true
        }]
    );
    assert_eq!(net.a.keepalive_interval(), Some(Duration::from_secs(25)));
}

#[test]
fn wrong_password_fails_once_without_looping() {
    let mut net = Net::with_passwords("wrong", "bobpw");
    net.a.register(net.now).unwrap();
    net.pump();
    assert_eq!(net.sent(Side::A, "REGISTER").len(), 2);
    assert_eq!(
        net.ev_a,
        vec![UaEvent::RegistrationFailed {
            status: 401,
            reason: "Unauthorized".into()
        }]
    );
    // No retry by itself: nothing scheduled.
    assert_eq!(net.a.poll_timeout(), None);
}

#[test]
fn refresh_is_scheduled_at_90_percent_and_423_uses_min_expires() {
    let mut net = Net::new();
    net.register_both();
    let t0 = net.now;
    assert_eq!(net.a.poll_timeout(), Some(t0 + Duration::from_secs(540)));
    net.advance(t0 + Duration::from_secs(539));
    assert!(net.sent(Side::A, "REGISTER").is_empty());
    net.advance(t0 + Duration::from_secs(541));
    assert_eq!(
        net.sent(Side::A, "REGISTER").len(),
        2,
        "refresh + auth retry"
    );
    assert!(
        net.ev_a
            .iter()
            .any(|e| matches!(e, UaEvent::Registered { .. }))
    );

    let mut net = Net::new();
    net.proxy.min_expires = 3600;
    net.a.register(net.now).unwrap();
    net.pump();
    let regs = net.sent(Side::A, "REGISTER");
    assert_eq!(regs.len(), 3, "challenge, 423, retry");
    assert!(regs[2].contains("Expires: 3600"));
    assert_eq!(
        net.ev_a,
        vec![UaEvent::Registered {
            expires: Duration::from_secs(3600),
            outbound: true
        }]
    );
}

#[test]
fn successful_call_then_callee_hangs_up() {
    let mut net = Net::new();
    net.register_both();
    let (ca, cb) = net.call();
    // B's INVITE Request-URI is its contact plus the proxy's alias parameter.
    net.b.ring(net.now, cb).unwrap();
    net.pump();
    assert!(matches!(
        net.ev_a.last(),
        Some(UaEvent::CallProgress { status: 180, .. })
    ));
    net.b.answer(net.now, cb, "v=0 answer".into()).unwrap();
    net.pump();
    assert!(net.ev_a.contains(&UaEvent::CallAnswered {
        call: ca,
        sdp: Some("v=0 answer".into())
    }));
    assert!(net.ev_b.contains(&UaEvent::CallConfirmed { call: cb }));
    let ack = net.sent(Side::A, "ACK");
    assert_eq!(ack.len(), 1);
    assert!(
        ack[0].starts_with("ACK sip:bob@"),
        "ACK goes to the remote target: {}",
        ack[0]
    );
    assert!(ack[0].contains("Route: <sip:proxy.example.com;transport=ws;lr>"));
    assert!(ack[0].contains("CSeq: 1 ACK"));

    net.b.hangup(net.now, cb).unwrap();
    net.pump();
    assert!(net.ev_b.contains(&UaEvent::CallEnded {
        call: cb,
        reason: EndReason::LocalHangup
    }));
    assert!(net.ev_a.contains(&UaEvent::CallEnded {
        call: ca,
        reason: EndReason::RemoteHangup { reason: None }
    }));
    let bye = net.sent(Side::B, "BYE");
    assert!(bye[0].starts_with("BYE sip:alice@"), "{}", bye[0]);
    assert!(bye[0].contains("Route: <sip:proxy.example.com;transport=ws;lr>"));
}

#[test]
fn caller_hangs_up() {
    let mut net = Net::new();
    net.register_both();
    let (ca, cb) = net.call();
    net.b.answer(net.now, cb, "v=0 answer".into()).unwrap();
    net.pump();
    net.a.hangup(net.now, ca).unwrap();
    net.pump();
    assert!(net.ev_a.contains(&UaEvent::CallEnded {
        call: ca,
        reason: EndReason::LocalHangup
    }));
    assert!(net.ev_b.contains(&UaEvent::CallEnded {
        call: cb,
        reason: EndReason::RemoteHangup { reason: None }
    }));
    assert!(net.sent(Side::A, "BYE")[0].contains("CSeq: 2 BYE"));
    assert!(net.a.hangup(net.now, ca).is_err());
}

#[test]
fn a_bye_says_why_with_a_reason_header() {
    let mut net = Net::new();
    net.register_both();
    let (ca, cb) = net.call();
    net.b.answer(net.now, cb, "v=0 answer".into()).unwrap();
    net.pump();
    let why = Reason::sip(487, "file transfer \"x\" cancelled");
    net.a
        .hangup_with_reason(net.now, ca, Some(why.clone()))
        .unwrap();
    net.pump();
    assert!(net.sent(Side::A, "BYE")[0].contains("Reason: SIP ;cause=487 ;text="));
    assert!(net.ev_b.contains(&UaEvent::CallEnded {
        call: cb,
        reason: EndReason::RemoteHangup { reason: Some(why) }
    }));
}

#[test]
fn busy_486_is_acked_and_reported() {
    let mut net = Net::new();
    net.register_both();
    let (ca, cb) = net.call();
    net.b.reject(net.now, cb, 486).unwrap();
    net.pump();
    assert!(net.ev_a.contains(&UaEvent::CallEnded {
        call: ca,
        reason: EndReason::Rejected {
            status: 486,
            reason: "Busy Here".into()
        }
    }));
    let ack = net.sent(Side::A, "ACK");
    assert_eq!(ack.len(), 1, "transaction-generated ACK for the non-2xx");
    assert!(ack[0].contains("CSeq: 1 ACK"));
    // The UAS transaction absorbed the ACK (Timer I = 0): no Timer H (32 s) is left running,
    // only the registration refresh.
    assert!(net.b.poll_timeout() > Some(net.now + Duration::from_secs(60)));
}

#[test]
fn caller_cancels_after_ringing() {
    let mut net = Net::new();
    net.register_both();
    let (ca, cb) = net.call();
    net.b.ring(net.now, cb).unwrap();
    net.pump();
    net.a.hangup(net.now, ca).unwrap();
    net.pump();
    assert!(net.ev_a.contains(&UaEvent::CallEnded {
        call: ca,
        reason: EndReason::LocalHangup
    }));
    assert!(net.ev_b.contains(&UaEvent::CallEnded {
        call: cb,
        reason: EndReason::Cancelled
    }));
    assert_eq!(net.sent(Side::A, "CANCEL").len(), 1);
    assert_eq!(net.sent(Side::A, "ACK").len(), 1, "487 is ACKed");
    assert!(
        net.ev_a
            .iter()
            .filter(|e| matches!(e, UaEvent::CallEnded { .. }))
            .count()
            == 1
    );
}

#[test]
fn cancel_before_any_provisional_waits_for_one() {
    let mut net = Net::new();
    net.register_both();
    let ca = net
        .a
        .invite(net.now, "sip:bob@example.com", "v=0".into())
        .unwrap();
    net.a.hangup(net.now, ca).unwrap();
    // 100 Trying arrives during pump and is enough to send CANCEL (§9.1).
    net.pump();
    assert_eq!(net.sent(Side::A, "CANCEL").len(), 1);
    assert!(net.ev_b.iter().any(|e| matches!(
        e,
        UaEvent::CallEnded {
            reason: EndReason::Cancelled,
            ..
        }
    )));
}

#[test]
fn message_both_ways() {
    let mut net = Net::new();
    net.register_both();
    let id = net
        .a
        .send_message(
            net.now,
            "sip:bob@example.com",
            "text/plain",
            b"hi bob".to_vec(),
        )
        .unwrap();
    net.pump();
    // Bob has it but has not answered: he answers once he has stored it.
    assert!(!net.ev_a.contains(&UaEvent::MessageDelivered { id }));
    let incoming = net
        .ev_b
        .iter()
        .find_map(|e| match e {
            UaEvent::MessageReceived {
                id,
                from,
                content_type,
                body,
                ..
            } if from.uri == "sip:alice@example.com"
                && content_type == "text/plain"
                && body == b"hi bob" =>
            {
                Some(*id)
            }
            _ => None,
        })
        .expect("bob got the message");
    net.b.answer_message(net.now, incoming, 200).unwrap();
    net.pump();
    assert!(net.ev_a.contains(&UaEvent::MessageDelivered { id }));
    let id = net
        .b
        .send_message(
            net.now,
            "sip:alice@example.com",
            "text/plain",
            b"hi alice".to_vec(),
        )
        .unwrap();
    net.pump();
    let incoming = net
        .ev_a
        .iter()
        .find_map(|e| match e {
            UaEvent::MessageReceived { id, body, .. } if body == b"hi alice" => Some(*id),
            _ => None,
        })
        .expect("alice got the message");
    net.a.answer_message(net.now, incoming, 200).unwrap();
    net.pump();
    assert!(net.ev_b.contains(&UaEvent::MessageDelivered { id }));
    let id = net
        .a
        .send_message(
            net.now,
            "sip:carol@example.com",
            "text/plain",
            b"?".to_vec(),
        )
        .unwrap();
    net.pump();
    assert!(net.ev_a.contains(&UaEvent::MessageFailed {
        id,
        status: 404,
        reason: "Not Found".into()
    }));
}

#[test]
fn unacknowledged_2xx_is_retransmitted_then_bye_after_64_t1() {
    let mut net = Net::new();
    net.register_both();
    let (_ca, cb) = net.call();
    net.proxy.drop_acks = true;
    let t0 = net.now;
    net.b.answer(net.now, cb, "v=0".into()).unwrap();
    net.pump();
    net.advance(t0 + Duration::from_secs(31));
    assert!(
        !net.ev_b
            .iter()
            .any(|e| matches!(e, UaEvent::CallEnded { .. }))
    );
    assert!(
        net.sent(Side::A, "ACK").len() >= 5,
        "A re-ACKs each retransmitted 2xx"
    );
    net.advance(t0 + Duration::from_secs(33));
    assert!(net.ev_b.contains(&UaEvent::CallEnded {
        call: cb,
        reason: EndReason::Failed {
            status: 408,
            reason: "no ACK received".into()
        }
    }));
    assert_eq!(net.sent(Side::B, "BYE").len(), 1);
}

#[test]
fn transport_drop_then_reconnect_reregisters() {
    let mut net = Net::new();
    net.register_both();
    net.a.handle_disconnected(net.now);
    net.pump();
    assert_eq!(
        net.ev_a,
        vec![UaEvent::RegistrationFailed {
            status: 0,
            reason: "flow closed".into()
        }]
    );
    assert_eq!(net.a.keepalive_interval(), None);
    assert!(
        net.a
            .invite(net.now, "sip:bob@example.com", String::new())
            .is_err()
    );
    net.ev_a.clear();
    net.a.handle_connected(net.now);
    net.pump();
    assert_eq!(net.sent(Side::A, "REGISTER").len(), 2);
    assert!(matches!(net.ev_a.last(), Some(UaEvent::Registered { .. })));
}

#[test]
fn transaction_timeout_fails_the_call_with_408() {
    let mut net = Net::new();
    net.register_both();
    let ca = net
        .a
        .invite(net.now, "sip:bob@example.com", "v=0".into())
        .unwrap();
    // Nothing is relayed: the INVITE is lost.
    while net.a.poll_transmit().is_some() {}
    let t = net.a.poll_timeout().unwrap();
    assert_eq!(t, net.now + Duration::from_secs(32), "Timer B = 64*T1");
    net.a.handle_timeout(t);
    assert_eq!(
        net.a.poll_event(),
        Some(UaEvent::CallEnded {
            call: ca,
            reason: EndReason::Failed {
                status: 408,
                reason: "Request Timeout".into()
            }
        })
    );
}

fn raw_ua() -> (UserAgent, Instant) {
    let now = Instant::now();
    let mut ua = UserAgent::new(config("bob", "pw", 3)).unwrap();
    ua.handle_connected(now);
    (ua, now)
}

fn request(method: &str, extra: &str, body: &str) -> Vec<u8> {
    let n = extra.len() + body.len();
    format!(
        "{method} sip:bob@abc.invalid;transport=ws;alias=1.2.3.4~5~1 SIP/2.0\r\n\
         Via: SIP/2.0/WS x.invalid;branch=z9hG4bK{method}{n}\r\nMax-Forwards: 70\r\n\
         From: <sip:carol@example.com>;tag=c1\r\nTo: <sip:bob@example.com>\r\n\
         Call-ID: raw-{method}-{n}\r\nCSeq: 1 {method}\r\nContact: <sip:carol@y.invalid;transport=ws>\r\n\
         {extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn first_line(ua: &mut UserAgent) -> String {
    let out = String::from_utf8(ua.poll_transmit().expect("a response")).unwrap();
    out.lines().next().unwrap().to_owned()
}

#[test]
fn uas_answers_options_unknown_methods_require_and_media_types() {
    let (mut ua, now) = raw_ua();
    ua.handle_input(now, &request("OPTIONS", "", ""));
    let resp = String::from_utf8(ua.poll_transmit().unwrap()).unwrap();
    assert!(resp.starts_with("SIP/2.0 200 OK\r\n"));
    assert!(resp.contains(
        "Allow: INVITE, ACK, BYE, CANCEL, OPTIONS, MESSAGE, UPDATE, REFER, NOTIFY, INFO\r\n"
    ));
    assert!(resp.contains("Supported: outbound, path, replaces\r\n"));
    assert!(resp.contains("To: <sip:bob@example.com>;tag="));

    ua.handle_input(now, &request("SUBSCRIBE", "", ""));
    assert_eq!(first_line(&mut ua), "SIP/2.0 405 Method Not Allowed");

    ua.handle_input(now, &request("INVITE", "Require: 100rel\r\n", ""));
    let resp = String::from_utf8(ua.poll_transmit().unwrap()).unwrap();
    assert!(resp.starts_with("SIP/2.0 420 ") && resp.contains("Unsupported: 100rel"));

    let mut inv = request("INVITE", "Content-Type: text/plain\r\n", "hello");
    ua.handle_input(now, &inv);
    assert_eq!(first_line(&mut ua), "SIP/2.0 415 Unsupported Media Type");

    // An INVITE to our contact with a nathelper alias is accepted (100 Trying + event).
    inv = request("INVITE", "Content-Type: application/sdp\r\n", "v=0\r\n");
    let inv = String::from_utf8(inv).unwrap();
    ua.handle_input(now, inv.as_bytes());
    assert_eq!(first_line(&mut ua), "SIP/2.0 100 Trying");
    let call = match ua.poll_event() {
        Some(UaEvent::IncomingCall { call, .. }) => call,
        other => panic!("{other:?}"),
    };
    // A retransmitted INVITE is absorbed by the server transaction (answered again with 100).
    ua.handle_input(now, inv.as_bytes());
    assert_eq!(first_line(&mut ua), "SIP/2.0 100 Trying");
    assert_eq!(ua.poll_event(), None);
    // Incoming CANCEL → 200 to CANCEL, 487 to INVITE, CallEnded{Cancelled}.
    let cancel = inv
        .split("\r\n\r\n")
        .next()
        .unwrap()
        .replacen("INVITE sip:", "CANCEL sip:", 1)
        .replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL")
        .replace("Content-Type: application/sdp\r\n", "")
        .replace("Content-Length: 5", "Content-Length: 0")
        .replace("Content-Length: 5", "Content-Length: 0")
        + "\r\n\r\n";
    ua.handle_input(now, cancel.as_bytes());
    assert_eq!(first_line(&mut ua), "SIP/2.0 200 OK");
    assert_eq!(first_line(&mut ua), "SIP/2.0 487 Request Terminated");
    assert_eq!(
        ua.poll_event(),
        Some(UaEvent::CallEnded {
            call,
            reason: EndReason::Cancelled
        })
    );

    // In-dialog request for an unknown dialog → 481.
    let bye = String::from_utf8(request("BYE", "", ""))
        .unwrap()
        .replace("<sip:bob@example.com>", "<sip:bob@example.com>;tag=zz");
    ua.handle_input(now, bye.as_bytes());
    assert_eq!(
        first_line(&mut ua),
        "SIP/2.0 481 Call/Transaction Does Not Exist"
    );

    // Keepalive ping gets a pong, no event.
    ua.handle_input(now, b"\r\n\r\n");
    assert_eq!(ua.poll_transmit().as_deref(), Some(&b"\r\n"[..]));
}

fn message_received(ua: &mut UserAgent) -> (IncomingMessageId, String) {
    match ua.poll_event() {
        Some(UaEvent::MessageReceived { id, stable_id, .. }) => (id, stable_id),
        other => panic!("expected MessageReceived, got {other:?}"),
    }
}

#[test]
fn an_incoming_message_is_answered_only_when_the_engine_says_so() {
    let (mut ua, now) = raw_ua();
    let message = request("MESSAGE", "Content-Type: text/plain\r\n", "kept?");
    ua.handle_input(now, &message);
    assert_eq!(ua.poll_transmit(), None, "answered before it was stored");
    let (id, stable_id) = message_received(&mut ua);
    assert_eq!(stable_id, "raw-MESSAGE-31 1 c1");

    // The sender's retransmission meets the open server transaction: no answer, no event.
    ua.handle_input(now, &message);
    assert_eq!(ua.poll_transmit(), None);
    assert_eq!(ua.poll_event(), None);

    assert_eq!(
        ua.answer_message(now, id, 100),
        Err(SipError::InvalidStatus(100))
    );
    ua.answer_message(now, id, 200).unwrap();
    let response = String::from_utf8(ua.poll_transmit().unwrap()).unwrap();
    assert!(response.starts_with("SIP/2.0 200 OK\r\n"), "{response}");
    assert!(response.contains("To: <sip:bob@example.com>;tag="));
    assert!(response.contains("Call-ID: raw-MESSAGE-31\r\n"));
    assert_eq!(ua.poll_transmit(), None);
    assert_eq!(
        ua.answer_message(now, id, 200),
        Err(SipError::UnknownMessage)
    );
    assert_eq!(ua.poll_timeout(), None);

    // A copy after the transaction ended is news to the transaction layer; the stable id is
    // what tells the engine it already has it.
    ua.handle_input(now, &message);
    let (again, again_stable) = message_received(&mut ua);
    assert_ne!(again, id);
    assert_eq!(again_stable, stable_id);
}

#[test]
fn an_incoming_message_can_be_refused_with_the_status_given() {
    let (mut ua, now) = raw_ua();
    ua.handle_input(now, &request("MESSAGE", "", "x"));
    let (id, _) = message_received(&mut ua);
    ua.answer_message(now, id, 500).unwrap();
    assert_eq!(first_line(&mut ua), "SIP/2.0 500 Server Internal Error");
    ua.handle_input(now, &request("MESSAGE", "", "xy"));
    let (id, _) = message_received(&mut ua);
    ua.answer_message(now, id, 488).unwrap();
    assert_eq!(first_line(&mut ua), "SIP/2.0 488 Not Acceptable Here");
}

#[test]
fn an_incoming_message_not_answered_in_time_gets_500() {
    let (mut ua, now) = raw_ua();
    ua.handle_input(now, &request("MESSAGE", "", "slow"));
    let (id, _) = message_received(&mut ua);
    let deadline = now + MESSAGE_ANSWER_WAIT;
    assert_eq!(ua.poll_timeout(), Some(deadline));
    assert!(
        MESSAGE_ANSWER_WAIT < Duration::from_secs(32),
        "beyond Timer F"
    );

    ua.handle_timeout(deadline - Duration::from_millis(1));
    assert_eq!(ua.poll_transmit(), None);
    ua.handle_timeout(deadline);
    assert_eq!(first_line(&mut ua), "SIP/2.0 500 Server Internal Error");
    assert_eq!(ua.poll_event(), Some(UaEvent::MessageAnswerTimedOut { id }));
    assert_eq!(ua.poll_timeout(), None);
    // The engine's answer comes too late and changes nothing.
    assert_eq!(
        ua.answer_message(deadline, id, 200),
        Err(SipError::UnknownMessage)
    );
    assert_eq!(ua.poll_transmit(), None);
}

#[test]
fn incoming_messages_are_dropped_with_their_flow() {
    let (mut ua, now) = raw_ua();
    ua.handle_input(now, &request("MESSAGE", "", "gone"));
    let (id, _) = message_received(&mut ua);
    ua.handle_disconnected(now);
    assert_eq!(ua.poll_timeout(), None);
    assert_eq!(
        ua.answer_message(now, id, 200),
        Err(SipError::UnknownMessage)
    );
    ua.handle_connected(now);
    ua.handle_timeout(now + MESSAGE_ANSWER_WAIT);
    assert_eq!(ua.poll_transmit(), None);
}

#[test]
fn re_invite_is_offered_and_answered() {
    let mut net = Net::new();
    net.register_both();
    let (ca, cb) = net.call();
    net.b.answer(net.now, cb, "v=0 answer".into()).unwrap();
    net.pump();
    // Build a re-INVITE from B's view of the dialog by reusing B's BYE shape: hang up is not
    // wanted, so craft it from the ACK A sent (same dialog identifiers, swapped direction).
    let ack = net.sent(Side::A, "ACK").remove(0);
    let parsed = message::parse(ack.as_bytes()).unwrap();
    let reinvite = format!(
        "INVITE {} SIP/2.0\r\nVia: SIP/2.0/WS b.invalid;branch=z9hG4bKre1\r\nMax-Forwards: 70\r\n\
         From: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: 500 INVITE\r\nContact: <sip:bob@b.invalid;transport=ws>\r\n\
         Content-Type: application/sdp\r\nContent-Length: 8\r\n\r\nv=0 hold",
        parsed
            .header("From")
            .unwrap()
            .split(['<', '>'])
            .nth(1)
            .unwrap(),
        parsed.header("To").unwrap(),
        parsed.header("From").unwrap(),
        parsed.call_id().unwrap(),
    );
    net.a.handle_input(net.now, reinvite.as_bytes());
    assert_eq!(
        net.a.poll_event(),
        Some(UaEvent::Reoffer {
            call: ca,
            sdp: Some("v=0 hold".into())
        })
    );
    while net.a.poll_transmit().is_some() {}
    net.a
        .answer_reoffer(net.now, ca, "v=0 held".into())
        .unwrap();
    let resp = String::from_utf8(net.a.poll_transmit().unwrap()).unwrap();
    assert!(
        resp.starts_with("SIP/2.0 200 OK") && resp.ends_with("v=0 held"),
        "{resp}"
    );
    assert!(resp.contains("CSeq: 500 INVITE"));
}
