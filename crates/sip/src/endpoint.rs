//! What every part of the user agent shares: the account's identity, the transaction layer
//! (RFC 3261 §17) and the queues of bytes to send and events to report.
//!
//! The registration, the INVITE sessions and MESSAGE handling each own their state and borrow
//! the [`Endpoint`] to build requests (§8.1.1, §12.2.1.1), answer requests (§8.2.6), start
//! client transactions and answer digest challenges (§22.2). It is the "sip" half of libre's
//! split between the SIP stack and the sessions that use it.

use std::collections::VecDeque;
use std::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tracing::trace;

use crate::auth::{self, Challenge, DigestInput};
use crate::dialog::Dialog;
use crate::error::SipError;
use crate::events::UaEvent;
use crate::message::{self, Message, Method, NameAddr, Uri};
use crate::reason::Reason;
use crate::timer::{TIMEOUT_64T1, TimerTable};
use crate::transaction::{
    ClientState, ClientTimer, ClientTxn, Owner, ServerState, ServerTimer, ServerTxn,
};

/// Methods we accept (Allow header, §20.5).
pub const ALLOW: &str = "INVITE, ACK, BYE, CANCEL, OPTIONS, MESSAGE, UPDATE, REFER, NOTIFY, INFO";
/// Option tags we understand in Require (§8.2.2.3) and advertise in Supported.
pub(crate) const SUPPORTED_OPTIONS: &[&str] = &["outbound", "path", "replaces"];
/// The Supported header value we send.
pub(crate) const SUPPORTED: &str = "outbound, path, replaces";
const MAX_AUTH_RETRIES: u8 = 2;

/// Configuration of one account.
#[derive(Debug, Clone)]
pub struct UaConfig {
    /// Address of record, e.g. `sip:alice@example.com`.
    pub aor: String,
    /// Display name for From.
    pub display_name: Option<String>,
    /// Digest username; defaults to the AoR user part.
    pub auth_username: Option<String>,
    /// Digest password (kept in memory only, never logged).
    pub password: String,
    /// UUID used as `+sip.instance="<urn:uuid:...>"` (RFC 5626 §4.1).
    pub instance_id: String,
    /// Requested registration lifetime in seconds.
    pub register_expires: u32,
    /// User-Agent header value.
    pub user_agent: String,
    /// `wss` (SIP/2.0/WSS, `transport=wss`) instead of `ws`.
    pub secure: bool,
    /// SIP URI of an outbound proxy, put in a preloaded Route with `;lr`.
    pub outbound_proxy: Option<String>,
    /// Seed for branches, tags, Call-IDs and cnonces.
    pub rng_seed: u64,
}

/// The shared half of the user agent.
#[derive(Debug)]
pub(crate) struct Endpoint {
    pub cfg: UaConfig,
    pub aor: Uri,
    auth_username: String,
    pub rng: StdRng,
    /// Random `.invalid` host for Via and Contact (RFC 7118 §5.2).
    local_host: String,
    /// Contact URI user part.
    contact_user: String,
    pub connected: bool,
    transmits: VecDeque<Vec<u8>>,
    events: VecDeque<UaEvent>,
    next_handle: u64,
    pub clients: Vec<ClientTxn>,
    pub servers: Vec<ServerTxn>,
    /// Last nonce used and its count, so a reused nonce gets an increasing nc (RFC 7616 §3.4).
    nonce_count: Option<(String, u32)>,
}

pub(crate) fn token(rng: &mut StdRng, len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// The SDP body of a message, if it has one.
pub(crate) fn sdp_body(msg: &Message) -> Option<String> {
    if msg.body.is_empty() || msg.content_type().as_deref() != Some("application/sdp") {
        return None;
    }
    Some(String::from_utf8_lossy(&msg.body).into_owned())
}

/// A caller-given target: a SIP URI without a header part.
pub(crate) fn parse_target(target: &str) -> Result<Uri, SipError> {
    let uri = Uri::parse(target.trim())?;
    if !uri.is_sip() || uri.headers.is_some() {
        return Err(SipError::InvalidUri {
            uri: target.to_owned(),
            reason: "target must be a sip:/sips: URI without headers".into(),
        });
    }
    Ok(uri)
}

/// The branch of a message's top Via, or "" when it has none.
pub(crate) fn branch_of(msg: &Message) -> String {
    msg.top_via()
        .ok()
        .and_then(|v| v.branch().map(str::to_owned))
        .unwrap_or_default()
}

impl Endpoint {
    /// Validates the configuration. Also returns the registration's Call-ID and From tag,
    /// drawn right after the local host so a seed always gives the same identifiers.
    pub(crate) fn new(cfg: UaConfig) -> Result<(Endpoint, String, String), SipError> {
        let aor = Uri::parse(&cfg.aor).map_err(|e| SipError::InvalidConfig(format!("AoR: {e}")))?;
        if !aor.is_sip() {
            return Err(SipError::InvalidConfig(
                "AoR must be a sip: or sips: URI".into(),
            ));
        }
        let Some(user) = aor.user.clone() else {
            return Err(SipError::InvalidConfig("AoR has no user part".into()));
        };
        if cfg.instance_id.is_empty()
            || !cfg
                .instance_id
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == '-')
        {
            return Err(SipError::InvalidConfig("instance_id must be a UUID".into()));
        }
        if let Some(proxy) = &cfg.outbound_proxy {
            let u = Uri::parse(proxy)
                .map_err(|e| SipError::InvalidConfig(format!("outbound proxy: {e}")))?;
            if !u.is_sip() {
                return Err(SipError::InvalidConfig(
                    "outbound proxy must be a SIP URI".into(),
                ));
            }
        }
        if cfg.user_agent.contains(['\r', '\n']) {
            return Err(SipError::InvalidConfig("user_agent contains CR/LF".into()));
        }
        let mut rng = StdRng::seed_from_u64(cfg.rng_seed);
        let local_host = format!("{}.invalid", token(&mut rng, 12));
        let reg_call_id = token(&mut rng, 22);
        let reg_tag = token(&mut rng, 10);
        let auth_username = cfg.auth_username.clone().unwrap_or_else(|| user.clone());
        let endpoint = Endpoint {
            aor,
            auth_username,
            rng,
            local_host,
            contact_user: user,
            connected: false,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            next_handle: 1,
            clients: Vec::new(),
            servers: Vec::new(),
            nonce_count: None,
            cfg,
        };
        Ok((endpoint, reg_call_id, reg_tag))
    }

    // ------------------------------------------------------------------ identity

    /// The Contact URI (`sip:user@host.invalid;transport=ws;ob`).
    pub(crate) fn contact_uri(&self) -> String {
        let transport = if self.cfg.secure { "wss" } else { "ws" };
        format!(
            "sip:{}@{};transport={transport};ob",
            self.contact_user, self.local_host
        )
    }

    /// The Contact header value.
    pub(crate) fn contact(&self) -> String {
        format!("<{}>", self.contact_uri())
    }

    pub(crate) fn local_host(&self) -> &str {
        &self.local_host
    }

    /// A Request-URI user that is ours: the AoR user or the Contact user. Proxies may add
    /// parameters such as nathelper's `;alias=`, which do not matter here.
    pub(crate) fn is_our_user(&self, user: &str) -> bool {
        user == self.contact_user || Some(user) == self.aor.user.as_deref()
    }

    /// Our From / To address (display name and AoR).
    pub(crate) fn local_name_addr(&self) -> String {
        let na = NameAddr {
            display_name: self.cfg.display_name.clone(),
            uri: self.aor.clone(),
            params: Vec::new(),
        };
        na.to_string()
    }

    pub(crate) fn token(&mut self, len: usize) -> String {
        token(&mut self.rng, len)
    }

    pub(crate) fn next_handle(&mut self) -> u64 {
        let h = self.next_handle;
        self.next_handle += 1;
        h
    }

    // ------------------------------------------------------------------ output queues

    pub(crate) fn emit(&mut self, event: UaEvent) {
        self.events.push_back(event);
    }

    pub(crate) fn poll_event(&mut self) -> Option<UaEvent> {
        self.events.pop_front()
    }

    pub(crate) fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmits.pop_front()
    }

    pub(crate) fn transmit(&mut self, msg: &Message) {
        self.transmit_bytes(msg.to_bytes());
    }

    pub(crate) fn transmit_bytes(&mut self, bytes: Vec<u8>) {
        trace!(message = %String::from_utf8_lossy(&bytes), "send");
        self.transmits.push_back(bytes);
    }

    // ------------------------------------------------------------------ building requests

    fn via_value(&self, branch: &str) -> String {
        format!(
            "SIP/2.0/{} {};branch={branch};rport",
            if self.cfg.secure { "WSS" } else { "WS" },
            self.local_host
        )
    }

    /// A request outside any dialog, with the preloaded outbound-proxy Route (§8.1.1).
    pub(crate) fn out_of_dialog_request(
        &self,
        method: Method,
        ruri: Uri,
        to: &str,
        from: &str,
        call_id: &str,
        cseq: u32,
    ) -> Message {
        let mut req = Message::new_request(method.clone(), ruri);
        req.push_header("Via", "");
        req.push_header("Max-Forwards", "70");
        if let Some(proxy) = &self.cfg.outbound_proxy {
            let route = if proxy.contains(";lr") {
                format!("<{proxy}>")
            } else {
                format!("<{proxy};lr>")
            };
            req.push_header("Route", route);
        }
        req.push_header("To", to);
        req.push_header("From", from);
        req.push_header("Call-ID", call_id);
        req.push_header("CSeq", format!("{cseq} {method}"));
        req.push_header("Supported", SUPPORTED);
        req.push_header("User-Agent", self.cfg.user_agent.clone());
        req
    }

    /// A request inside a dialog (§12.2.1.1).
    pub(crate) fn in_dialog_request(&self, method: Method, dialog: &Dialog, cseq: u32) -> Message {
        let (ruri, routes) = dialog.request_target();
        let mut req = Message::new_request(method.clone(), ruri);
        req.push_header("Via", "");
        req.push_header("Max-Forwards", "70");
        for r in routes {
            req.push_header("Route", r);
        }
        req.push_header("To", dialog.remote_party_value());
        req.push_header("From", dialog.local_party_value());
        req.push_header("Call-ID", dialog.call_id.clone());
        req.push_header("CSeq", format!("{cseq} {method}"));
        req.push_header("User-Agent", self.cfg.user_agent.clone());
        req
    }

    /// Sets a fresh branch in the (placeholder) top Via.
    pub(crate) fn stamp_via(&mut self, req: &mut Message) -> String {
        let branch = format!("z9hG4bK{}", self.token(16));
        let via = self.via_value(&branch);
        match req.headers.iter_mut().find(|h| h.name == "Via") {
            Some(h) => h.value = via,
            None => req.headers.insert(
                0,
                message::Header {
                    name: "Via".into(),
                    value: via,
                },
            ),
        }
        branch
    }

    // ------------------------------------------------------------------ client transactions

    /// Sends `req` in a new client transaction; returns the request as sent (with its Via).
    pub(crate) fn start_client_txn(
        &mut self,
        now: Instant,
        mut req: Message,
        owner: Owner,
    ) -> Message {
        let branch = self.stamp_via(&mut req);
        let method = req.method().cloned().unwrap_or(Method::Options);
        self.transmit(&req);
        let mut timers = TimerTable::new();
        // Timer B / F = 64*T1; A and E are not armed on a reliable transport (§17.1).
        timers.set(ClientTimer::Timeout, now + TIMEOUT_64T1);
        self.clients.push(ClientTxn {
            branch,
            method,
            request: req.clone(),
            state: ClientState::Calling,
            timers,
            owner,
        });
        req
    }

    /// §9.1: a CANCEL has the INVITE's Request-URI, Call-ID, To, From, CSeq number, Route
    /// and top Via, so it matches the INVITE's server transaction at the next hop.
    pub(crate) fn send_cancel(
        &mut self,
        now: Instant,
        invite: &Message,
        reason: Option<&Reason>,
        owner: Owner,
    ) {
        let Some(uri) = invite.request_uri().cloned() else {
            return;
        };
        let mut cancel = Message::new_request(Method::Cancel, uri);
        if let Some(v) = invite.list_header("Via").first() {
            cancel.push_header("Via", *v);
        }
        cancel.push_header("Max-Forwards", "70");
        for r in invite.header_values("Route") {
            cancel.push_header("Route", r);
        }
        for h in ["To", "From", "Call-ID"] {
            if let Some(v) = invite.header(h) {
                cancel.push_header(h, v);
            }
        }
        let seq = invite.cseq().map(|c| c.seq).unwrap_or(1);
        cancel.push_header("CSeq", format!("{seq} CANCEL"));
        if let Some(reason) = reason {
            cancel.push_header("Reason", reason.to_header_value());
        }
        self.transmit(&cancel);
        let mut timers = TimerTable::new();
        timers.set(ClientTimer::Timeout, now + TIMEOUT_64T1);
        self.clients.push(ClientTxn {
            branch: branch_of(invite),
            method: Method::Cancel,
            request: cancel,
            state: ClientState::Calling,
            timers,
            owner,
        });
    }

    /// Forgets the client transactions `drop` selects (their responses are then dropped).
    pub(crate) fn forget_clients(&mut self, drop: impl Fn(&Owner) -> bool) {
        self.clients.retain(|t| !drop(&t.owner));
    }

    /// Client transactions whose Timer B/F fired, with the request they carried; the
    /// Accepted ones whose Timer M fired simply end.
    pub(crate) fn expire_clients(&mut self, now: Instant) -> Vec<(Owner, Message)> {
        let mut timed_out = Vec::new();
        for txn in &mut self.clients {
            if txn.timers.take_expired(ClientTimer::Timeout, now) {
                txn.state = ClientState::Terminated;
                timed_out.push((txn.owner, txn.request.clone()));
            }
            if txn.timers.take_expired(ClientTimer::Accepted, now) {
                txn.state = ClientState::Terminated;
            }
        }
        self.clients.retain(|t| t.state != ClientState::Terminated);
        for txn in &mut self.servers {
            if txn.timers.take_expired(ServerTimer::Linger, now) {
                txn.state = ServerState::Terminated;
            }
        }
        self.servers.retain(|t| t.state != ServerState::Terminated);
        timed_out
    }

    pub(crate) fn next_transaction_deadline(&self) -> Option<Instant> {
        let clients = self.clients.iter().filter_map(|t| t.timers.next());
        let servers = self.servers.iter().filter_map(|t| t.timers.next());
        clients.chain(servers).min()
    }

    /// Builds a copy of `request` with credentials for `resp`'s challenge and the next CSeq,
    /// or None when we must not retry (second failure with the same credentials, unusable
    /// challenge).
    pub(crate) fn authorized_retry(
        &mut self,
        request: &Message,
        resp: &Message,
        retries: u8,
    ) -> Option<Message> {
        let status = resp.status()?;
        let (challenge_header, auth_header) = if status == 401 {
            ("WWW-Authenticate", "Authorization")
        } else {
            ("Proxy-Authenticate", "Proxy-Authorization")
        };
        let challenge = Challenge::best(resp.header_values(challenge_header))?;
        // A first challenge is always answered; after that only a stale nonce justifies a
        // new attempt (RFC 7616 §3.3), and never more than MAX_AUTH_RETRIES times.
        if retries > 0 && (!challenge.stale || retries >= MAX_AUTH_RETRIES) {
            return None;
        }
        let nc = match &self.nonce_count {
            Some((n, c)) if *n == challenge.nonce => c + 1,
            _ => 1,
        };
        self.nonce_count = Some((challenge.nonce.clone(), nc));
        let cnonce = self.token(16);
        let method = request.method()?.as_str().to_owned();
        let uri = request.request_uri()?.to_string();
        let value = auth::authorization_value(
            &challenge,
            &DigestInput {
                username: &self.auth_username,
                password: &self.cfg.password,
                method: &method,
                uri: &uri,
                cnonce: &cnonce,
                nonce_count: nc,
            },
        )
        .ok()?;
        let mut retry = request.clone();
        retry.remove_header(auth_header);
        retry.push_header(auth_header, value);
        let cseq = request.cseq().ok()?;
        retry.remove_header("CSeq");
        retry.push_header("CSeq", format!("{} {}", cseq.seq + 1, cseq.method));
        Some(retry)
    }

    // ------------------------------------------------------------------ server side

    /// Opens a server transaction for a new request.
    pub(crate) fn open_server_txn(&mut self, branch: String, sent_by: String, method: Method) {
        self.servers.push(ServerTxn {
            branch,
            sent_by,
            method,
            state: ServerState::Proceeding,
            last_response: None,
            timers: TimerTable::new(),
        });
    }

    /// §8.2.6.2: a response copies Via, From, To, Call-ID, CSeq; adds our To tag.
    pub(crate) fn response_to(
        &self,
        req: &Message,
        status: u16,
        reason: &str,
        to_tag: Option<&str>,
    ) -> Message {
        let mut resp = Message::new_response(status, reason);
        for v in req.header_values("Via") {
            resp.push_header("Via", v);
        }
        if let Some(v) = req.header("From") {
            resp.push_header("From", v);
        }
        if let Some(v) = req.header("To") {
            let has_tag = req.to().map(|t| t.tag().is_some()).unwrap_or(true);
            match to_tag {
                Some(tag) if !has_tag && status > 100 => {
                    resp.push_header("To", format!("{v};tag={tag}"))
                }
                _ => resp.push_header("To", v),
            }
        }
        for h in ["Call-ID", "CSeq"] {
            if let Some(v) = req.header(h) {
                resp.push_header(h, v);
            }
        }
        // §12.1.1: dialog-creating responses copy Record-Route.
        if req.method() == Some(&Method::Invite) && (101..300).contains(&status) {
            for rr in req.header_values("Record-Route") {
                resp.push_header("Record-Route", rr);
            }
        }
        resp.push_header("Server", self.cfg.user_agent.clone());
        resp
    }

    /// Sends `resp` to `req` through the request's server transaction (if it still has one).
    pub(crate) fn respond(&mut self, now: Instant, req: &Message, resp: Message) {
        let branch = branch_of(req);
        let method = req.method().cloned().unwrap_or(Method::Options);
        let status = resp.status().unwrap_or(500);
        let bytes = resp.to_bytes();
        if let Some(txn) = self
            .servers
            .iter_mut()
            .find(|t| t.branch == branch && t.method == method)
        {
            txn.on_send(now, status, &bytes);
        }
        self.servers.retain(|t| t.state != ServerState::Terminated);
        self.transmit_bytes(bytes);
    }

    /// Answers a request with a default reason phrase and extra headers; a response that
    /// ends no dialog still gets a To tag (§8.2.6.2).
    pub(crate) fn reply(
        &mut self,
        now: Instant,
        req: &Message,
        status: u16,
        extra: &[(&str, String)],
    ) {
        let mut resp = self.response_to(req, status, reason_phrase(status), None);
        if status > 100 && req.to().map(|t| t.tag().is_none()).unwrap_or(false) {
            let tag = self.token(10);
            resp.remove_header("To");
            if let Some(v) = req.header("To") {
                resp.headers.insert(
                    2.min(resp.headers.len()),
                    message::Header {
                        name: "To".into(),
                        value: format!("{v};tag={tag}"),
                    },
                );
            }
        }
        for (n, v) in extra {
            resp.push_header(n, v.clone());
        }
        self.respond(now, req, resp);
    }
}

/// Default reason phrases (§21, RFC 3515, RFC 6086).
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Trying",
        180 => "Ringing",
        183 => "Session Progress",
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        415 => "Unsupported Media Type",
        420 => "Bad Extension",
        423 => "Interval Too Brief",
        469 => "Bad Info Package",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        489 => "Bad Event",
        491 => "Request Pending",
        500 => "Server Internal Error",
        503 => "Service Unavailable",
        603 => "Decline",
        _ => "Unknown",
    }
}
