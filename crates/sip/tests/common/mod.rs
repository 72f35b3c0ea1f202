//! The test network shared by the flow tests: two `UserAgent`s wired through a tiny in-test
//! proxy in virtual time. The proxy is a registrar with digest auth (MD5), adds its own Via
//! (stateless branch derivation, RFC 3261 §16.11, so CANCEL/ACK follow the INVITE), a
//! Record-Route on dialog-forming INVITEs, rewrites the Request-URI to the registered Contact
//! with a nathelper-style `;alias=` parameter, and relays everything else to the other UA.

#![allow(dead_code)]

use std::collections::HashMap;
use std::time::Instant;

pub use lyrebird_sip::auth::{Algorithm, Credentials};
pub use lyrebird_sip::message::{self, Message, Method, Uri};
pub use lyrebird_sip::{CallId, UaConfig, UaEvent, UserAgent};

#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum Side {
    A,
    B,
}

impl Side {
    pub fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }
}

pub const REALM: &str = "example.com";
pub const RR: &str = "<sip:proxy.example.com;transport=ws;lr>";

pub struct Proxy {
    pub passwords: HashMap<String, String>,
    pub nonces: u32,
    pub locations: HashMap<String, (Side, String)>,
    pub min_expires: u32,
    pub drop_acks: bool,
    /// Answer in-dialog INVITEs without Proxy-Authorization with 407 (a proxy that
    /// authenticates every INVITE).
    pub challenge_reinvites: bool,
    /// Every request seen, as (from side, method, raw text).
    pub log: Vec<(Side, String, String)>,
}

pub fn copy_response(req: &Message, status: u16, reason: &str) -> Message {
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
    pub fn new() -> Self {
        Proxy {
            passwords: [("alice", "alicepw"), ("bob", "bobpw")]
                .into_iter()
                .map(|(u, p)| (u.to_owned(), p.to_owned()))
                .collect(),
            nonces: 0,
            locations: HashMap::new(),
            min_expires: 0,
            drop_acks: false,
            challenge_reinvites: false,
            log: Vec::new(),
        }
    }

    pub fn check_auth(&self, req: &Message) -> bool {
        self.check_credentials(req, "Authorization")
    }

    pub fn check_credentials(&self, req: &Message, header: &str) -> bool {
        let Some(c) = req.header(header).and_then(Credentials::parse) else {
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
    pub fn handle(&mut self, from: Side, bytes: &[u8]) -> Vec<(Side, Vec<u8>)> {
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
            if in_dialog
                && method == Method::Invite
                && self.challenge_reinvites
                && !self.check_credentials(&msg, "Proxy-Authorization")
            {
                self.nonces += 1;
                let mut r = copy_response(&msg, 407, "Proxy Authentication Required");
                r.push_header(
                    "Proxy-Authenticate",
                    format!(
                        "Digest realm=\"{REALM}\", nonce=\"p{}\", qop=\"auth\", algorithm=MD5",
                        self.nonces
                    ),
                );
                return vec![(from, r.to_bytes())];
            }
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

    pub fn registrar(&mut self, from: Side, req: &Message) -> Message {
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

pub struct Net {
    pub now: Instant,
    pub a: UserAgent,
    pub b: UserAgent,
    pub proxy: Proxy,
    pub ev_a: Vec<UaEvent>,
    pub ev_b: Vec<UaEvent>,
}

pub fn config(user: &str, password: &str, seed: u64) -> UaConfig {
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
    pub fn new() -> Net {
        Net::with_passwords("alicepw", "bobpw")
    }

    pub fn with_passwords(pa: &str, pb: &str) -> Net {
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

    pub fn ua(&mut self, side: Side) -> &mut UserAgent {
        match side {
            Side::A => &mut self.a,
            Side::B => &mut self.b,
        }
    }

    /// Relays until quiet (bounded, so a loop between the UAs fails the test).
    pub fn pump(&mut self) {
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
    pub fn advance(&mut self, until: Instant) {
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

    pub fn register_both(&mut self) {
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

    pub fn sent(&self, side: Side, method: &str) -> Vec<String> {
        self.proxy
            .log
            .iter()
            .filter(|(s, m, _)| *s == side && m == method)
            .map(|(_, _, t)| t.clone())
            .collect()
    }

    /// A calls bob; returns the call handles on both sides after B got the INVITE.
    pub fn call(&mut self) -> (CallId, CallId) {
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

pub fn raw_ua() -> (UserAgent, Instant) {
    let now = Instant::now();
    let mut ua = UserAgent::new(config("bob", "pw", 3)).unwrap();
    ua.handle_connected(now);
    (ua, now)
}

pub fn request(method: &str, extra: &str, body: &str) -> Vec<u8> {
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

pub fn first_line(ua: &mut UserAgent) -> String {
    let out = String::from_utf8(ua.poll_transmit().expect("a response")).unwrap();
    out.lines().next().unwrap().to_owned()
}
