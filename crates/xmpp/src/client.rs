//! The client stream state machine. See the crate docs for the event-loop contract.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tracing::{debug, trace, warn};
use xmpp_parsers::jid::Jid;
use xmpp_parsers::minidom::Element;

use crate::event::*;
use crate::sasl::{Mechanism, SaslExchange};
use crate::xml::Xml;
use crate::{XmppError, time};

/// Namespaces used on the wire (the XEP that defines each is named where it is used).
pub mod ns {
    /// RFC 7395 §3.3.2.
    pub const FRAMING: &str = "urn:ietf:params:xml:ns:xmpp-framing";
    /// RFC 6120 §4.3.
    pub const STREAM: &str = "http://etherx.jabber.org/streams";
    /// RFC 6120 §4.9.
    pub const STREAM_ERRORS: &str = "urn:ietf:params:xml:ns:xmpp-streams";
    /// RFC 6120 §8.3.
    pub const STANZA_ERRORS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
    /// RFC 6120 §6.
    pub const SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
    /// RFC 6120 §7.
    pub const BIND: &str = "urn:ietf:params:xml:ns:xmpp-bind";
    /// RFC 6120 §4.9.
    pub const CLIENT: &str = "jabber:client";
    /// RFC 6121 §2.
    pub const ROSTER: &str = "jabber:iq:roster";
    /// XEP-0198.
    pub const SM: &str = "urn:xmpp:sm:3";
    /// XEP-0184.
    pub const RECEIPTS: &str = "urn:xmpp:receipts";
    /// XEP-0085.
    pub const CHATSTATES: &str = "http://jabber.org/protocol/chatstates";
    /// XEP-0308.
    pub const CORRECT: &str = "urn:xmpp:message-correct:0";
    /// XEP-0280.
    pub const CARBONS: &str = "urn:xmpp:carbons:2";
    /// XEP-0297.
    pub const FORWARD: &str = "urn:xmpp:forward:0";
    /// XEP-0203.
    pub const DELAY: &str = "urn:xmpp:delay";
    /// XEP-0313.
    pub const MAM: &str = "urn:xmpp:mam:2";
    /// XEP-0059.
    pub const RSM: &str = "http://jabber.org/protocol/rsm";
    /// XEP-0004.
    pub const DATA_FORMS: &str = "jabber:x:data";
    /// XEP-0359.
    pub const SID: &str = "urn:xmpp:sid:0";
    /// XEP-0045.
    pub const MUC: &str = "http://jabber.org/protocol/muc";
    /// XEP-0045.
    pub const MUC_USER: &str = "http://jabber.org/protocol/muc#user";
    /// XEP-0045 §10.
    pub const MUC_OWNER: &str = "http://jabber.org/protocol/muc#owner";
    /// XEP-0363.
    pub const UPLOAD: &str = "urn:xmpp:http:upload:0";
    /// XEP-0066.
    pub const OOB: &str = "jabber:x:oob";
    /// XEP-0030.
    pub const DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
    /// XEP-0030.
    pub const DISCO_ITEMS: &str = "http://jabber.org/protocol/disco#items";
    /// XEP-0115.
    pub const CAPS: &str = "http://jabber.org/protocol/caps";
    /// XEP-0199.
    pub const PING: &str = "urn:xmpp:ping";
    /// XEP-0334.
    pub const HINTS: &str = "urn:xmpp:hints";
}

/// How the client logs in and behaves.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Our bare JID, `user@domain`.
    pub jid: String,
    /// The password (used for SASL only; never logged).
    pub password: String,
    /// The resource to ask for; the server picks one when `None`.
    pub resource: Option<String>,
    /// Allow SASL PLAIN (RFC 6120 §13.8: only over TLS, or a loopback test bed). SCRAM is always
    /// preferred when offered.
    pub allow_plain: bool,
    /// Seed for ids and nonces.
    pub rng_seed: u64,
    /// Largest stanza accepted; larger ones are dropped with a warning.
    pub max_stanza_bytes: usize,
    /// Bound on each step of stream negotiation, and on each IQ.
    pub response_timeout: Duration,
    /// RSM page size for archive queries (the server may cap it).
    pub mam_page_size: u32,
    /// XEP-0115 node (a URL naming this software).
    pub caps_node: String,
}

impl ClientConfig {
    /// Defaults for everything but the account.
    pub fn new(jid: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            jid: jid.into(),
            password: password.into(),
            resource: None,
            allow_plain: false,
            rng_seed: 0,
            max_stanza_bytes: 256 * 1024,
            response_timeout: Duration::from_secs(20),
            mam_page_size: 500,
            caps_node: "https://example.invalid/lyrebird".into(),
        }
    }
}

#[derive(Debug)]
enum Phase {
    /// No connection.
    Disconnected,
    /// `<open/>` sent; waiting for the server's `<open/>` and features.
    Opening,
    /// SASL exchange in progress.
    Authenticating(SaslExchange),
    /// Resource binding IQ sent.
    Binding,
    /// XEP-0198 `<resume/>` sent.
    Resuming,
    /// Stanzas flow.
    Online,
    /// We or the server closed the stream.
    Closed,
}

/// What an outstanding IQ was for.
#[derive(Debug, Clone)]
enum IqPurpose {
    Bind,
    RosterGet,
    RosterSet,
    Carbons,
    ServerInfo,
    ServerItems,
    ServiceInfo(String),
    PeerInfo { jid: String, ver: String },
    Archive { query: String },
    UploadSlot { request: String },
    RoomConfig,
}

/// One outgoing stanza the server has not acknowledged yet (XEP-0198 §4).
#[derive(Debug, Clone)]
struct Unacked {
    /// Sequence number (1-based count of stanzas sent since `<enable/>`).
    seq: u64,
    xml: String,
    /// For messages: (id, bare recipient), reported as sent once acked.
    message: Option<(String, String)>,
}

#[derive(Debug, Default)]
struct SmState {
    /// `<enable/>` sent on this stream: outbound stanzas are being counted.
    counting_out: bool,
    /// `<enabled/>` received: inbound stanzas are being counted.
    counting_in: bool,
    /// Resumption id from `<enabled id='...' resume='true'/>`.
    resume_id: Option<String>,
    /// Stanzas received (the `h` we report).
    inbound: u64,
    /// Stanzas sent since `<enable/>`.
    outbound: u64,
    /// Highest `seq` for which an `<r/>` was already sent.
    requested_up_to: u64,
    /// When an `<r/>` for the stanzas sent since the last one is due.
    ack_due: Option<Instant>,
    unacked: VecDeque<Unacked>,
}

#[derive(Debug, Default)]
struct ArchiveQuery {
    /// A room's bare JID, or `None` for our own archive.
    archive: Option<String>,
    start_ms: Option<i64>,
    /// The RSM `<after>` of the page asked for last.
    after: Option<String>,
    messages: u64,
}

/// Where an archive catch-up starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArchiveStart {
    /// The whole archive.
    Beginning,
    /// Just after the item with this archive id (XEP-0059 `<after>`): where an earlier
    /// catch-up stopped. A server that no longer has it answers `item-not-found`.
    After(String),
    /// Messages from this time (ms since the Unix epoch) on (the `start` field).
    Since(i64),
}

#[derive(Debug, Clone)]
struct Room {
    nick: String,
    joined: bool,
    history: u32,
}

/// The sans-IO XMPP client. See the crate docs.
#[derive(Debug)]
pub struct Client {
    config: ClientConfig,
    domain: String,
    local: String,
    rng: StdRng,
    phase: Phase,
    authenticated: bool,
    bound_jid: Option<String>,
    features: Option<Element>,
    sm: SmState,
    transmit: VecDeque<String>,
    events: VecDeque<XmppEvent>,
    /// Stanzas written while not online, sent (in order) once the stream is usable.
    pending: VecDeque<(String, Option<(String, String)>)>,
    iqs: HashMap<String, (IqPurpose, Instant)>,
    negotiation_deadline: Option<Instant>,
    archive: HashMap<String, ArchiveQuery>,
    rooms: HashMap<String, Room>,
    presence: Option<String>,
    server_features: Vec<String>,
    disco_pending: usize,
    upload_service: Option<(String, Option<u64>)>,
    known_caps: HashSet<String>,
    closing: bool,
    /// The latest time given to any `handle_*` call (commands carry no time of their own).
    last_now: Option<Instant>,
}

fn bare_of(jid: &str) -> String {
    match Jid::new(jid) {
        Ok(j) => j.to_bare().to_string(),
        Err(_) => jid.split('/').next().unwrap_or(jid).to_owned(),
    }
}

fn resource_of(jid: &str) -> Option<String> {
    Jid::new(jid)
        .ok()
        .and_then(|j| j.resource().map(|r| r.as_str().to_owned()))
}

/// Validates a JID the caller gave us, normalized (RFC 7622).
fn checked_jid(jid: &str) -> Result<String, XmppError> {
    Jid::new(jid.trim())
        .map(|j| j.to_string())
        .map_err(|e| XmppError::InvalidInput(format!("not a valid JID `{jid}`: {e}")))
}

fn child_text(el: &Element, name: &str, ns: &str) -> Option<String> {
    el.get_child(name, ns).map(Element::text)
}

fn stanza_error_condition(el: &Element) -> String {
    el.get_child("error", ns::CLIENT)
        .and_then(|e| {
            e.children()
                .find(|c| c.ns() == ns::STANZA_ERRORS && c.name() != "text")
                .map(|c| c.name().to_owned())
        })
        .unwrap_or_else(|| "undefined-condition".into())
}

impl Client {
    /// A client for the account in `config`; nothing happens until [`Client::handle_connected`].
    pub fn new(config: ClientConfig) -> Result<Self, XmppError> {
        let jid = Jid::new(config.jid.trim())
            .map_err(|e| XmppError::InvalidInput(format!("account JID: {e}")))?;
        let local = jid
            .node()
            .map(|n| n.as_str().to_owned())
            .ok_or_else(|| XmppError::InvalidInput("the account JID needs a user part".into()))?;
        let domain = jid.domain().as_str().to_owned();
        let rng = StdRng::seed_from_u64(config.rng_seed);
        Ok(Self {
            config,
            domain,
            local,
            rng,
            phase: Phase::Disconnected,
            authenticated: false,
            bound_jid: None,
            features: None,
            sm: SmState::default(),
            transmit: VecDeque::new(),
            events: VecDeque::new(),
            pending: VecDeque::new(),
            iqs: HashMap::new(),
            negotiation_deadline: None,
            archive: HashMap::new(),
            rooms: HashMap::new(),
            presence: None,
            server_features: Vec::new(),
            disco_pending: 0,
            upload_service: None,
            known_caps: HashSet::new(),
            closing: false,
            last_now: None,
        })
    }

    // ----- getters -----

    /// Our bare JID.
    pub fn bare_jid(&self) -> String {
        format!("{}@{}", self.local, self.domain)
    }

    /// Our full JID once bound.
    pub fn full_jid(&self) -> Option<&str> {
        self.bound_jid.as_deref()
    }

    /// Whether stanzas flow.
    pub fn is_online(&self) -> bool {
        matches!(self.phase, Phase::Online)
    }

    /// Whether a dropped connection could be resumed (XEP-0198).
    pub fn can_resume(&self) -> bool {
        self.sm.resume_id.is_some()
    }

    /// The HTTP upload service found by disco, and its size limit.
    pub fn upload_service(&self) -> Option<&(String, Option<u64>)> {
        self.upload_service.as_ref()
    }

    /// Stanzas sent but not yet acknowledged by the server (XEP-0198).
    pub fn unacknowledged(&self) -> usize {
        self.sm.unacked.len() + self.pending.len()
    }

    // ----- poll_* -----

    /// The next WebSocket text message to send.
    pub fn poll_transmit(&mut self) -> Option<String> {
        if self.transmit.is_empty() {
            self.request_ack_if_needed();
        }
        let out = self.transmit.pop_front();
        if let Some(frame) = &out {
            trace!(frame = %frame, "xmpp send");
        }
        out
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<XmppEvent> {
        self.events.pop_front()
    }

    /// When [`Client::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let iq = self.iqs.values().map(|(_, at)| *at).min();
        [iq, self.negotiation_deadline, self.sm.ack_due]
            .into_iter()
            .flatten()
            .min()
    }

    // ----- handle_* -----

    /// The WebSocket (sub-protocol `xmpp`) is open: opens the stream (RFC 7395 §3.4).
    pub fn handle_connected(&mut self, now: Instant) {
        self.last_now = Some(now);
        self.transmit.clear();
        self.authenticated = false;
        self.features = None;
        self.closing = false;
        self.sm.counting_out = false;
        self.sm.counting_in = false;
        self.open_stream(now);
    }

    /// The WebSocket closed or failed. Unacknowledged stanzas are kept for resumption.
    pub fn handle_disconnected(&mut self, _now: Instant) {
        let was_online = self.is_online();
        let error = match self.phase {
            Phase::Closed | Phase::Disconnected => None,
            _ => Some(XmppError::Protocol("the connection was lost".into())),
        };
        self.phase = Phase::Disconnected;
        self.transmit.clear();
        self.iqs.clear();
        self.negotiation_deadline = None;
        self.sm.counting_out = false;
        self.sm.counting_in = false;
        for room in self.rooms.values_mut() {
            room.joined = false;
        }
        if was_online || error.is_some() {
            self.events.push_back(XmppEvent::Offline { error });
        }
    }

    /// Time passed: fails negotiation steps and IQs the server never answered.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.last_now = Some(now);
        if self.sm.ack_due.is_some_and(|d| now >= d) {
            self.sm.ack_due = None;
            if self.is_online() && self.sm.outbound > self.sm.requested_up_to {
                self.send_ack_request();
            }
        }
        if self.negotiation_deadline.is_some_and(|d| now >= d) {
            self.negotiation_deadline = None;
            self.fail(XmppError::Timeout(
                "the server did not answer during login".into(),
            ));
            return;
        }
        let expired: Vec<String> = self
            .iqs
            .iter()
            .filter(|(_, (_, at))| now >= *at)
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            if let Some((purpose, _)) = self.iqs.remove(&id) {
                self.iq_failed(now, purpose, "remote-server-timeout".into());
            }
        }
    }

    /// One WebSocket text message from the server: exactly one element (RFC 7395 §3.3.3).
    pub fn handle_frame(&mut self, now: Instant, frame: &str) {
        self.last_now = Some(now);
        trace!(frame = %frame, "xmpp recv");
        if frame.len() > self.config.max_stanza_bytes {
            // Counted as received so the server does not resend it after resumption; nothing
            // a person could read is in it that we could safely keep.
            if self.sm.counting_in && looks_like_stanza(frame) {
                self.sm.inbound += 1;
            }
            self.warn(format!(
                "dropped a {} byte stanza (limit {})",
                frame.len(),
                self.config.max_stanza_bytes
            ));
            return;
        }
        let trimmed = frame.trim();
        if trimmed.is_empty() {
            return; // whitespace keepalive
        }
        let element: Element = match trimmed.parse() {
            Ok(e) => e,
            Err(e) => {
                // RFC 6120 §4.9.3.13: not-well-formed is a stream error; the stream cannot be
                // trusted after it. Close it; the owner reconnects and resumes.
                self.send_raw(
                    Xml::new("stream:error")
                        .attr("xmlns:stream", ns::STREAM)
                        .child(Xml::ns("not-well-formed", ns::STREAM_ERRORS))
                        .build(),
                );
                self.fail(XmppError::Protocol(format!(
                    "the server sent malformed XML: {e}"
                )));
                return;
            }
        };
        self.handle_element(now, element);
    }

    fn handle_element(&mut self, now: Instant, el: Element) {
        let ns = el.ns();
        match (el.name(), ns.as_str()) {
            ("open", ns::FRAMING) => {
                if !matches!(self.phase, Phase::Opening) {
                    self.warn("unexpected <open/> ignored".into());
                }
            }
            ("close", ns::FRAMING) => {
                // RFC 7395 §3.6: answer the server's close with ours, then the WS closes.
                if !self.closing {
                    self.send_raw(Xml::ns("close", ns::FRAMING).build());
                }
                let error = if self.closing {
                    None
                } else if let Some(uri) = el.attr("see-other-uri") {
                    Some(XmppError::StreamError {
                        condition: "see-other-uri".into(),
                        text: Some(uri.to_owned()),
                    })
                } else {
                    Some(XmppError::Protocol("the server closed the stream".into()))
                };
                self.close_locally(error);
            }
            ("features", ns::STREAM) => self.on_features(now, el),
            ("error", ns::STREAM) => {
                let condition = el
                    .children()
                    .find(|c| c.ns() == ns::STREAM_ERRORS && c.name() != "text")
                    .map(|c| c.name().to_owned())
                    .unwrap_or_else(|| "undefined-condition".into());
                let text = child_text(&el, "text", ns::STREAM_ERRORS);
                if condition == "conflict" {
                    // Another login took our resource; resuming this session is impossible.
                    self.sm = SmState::default();
                }
                self.fail(XmppError::StreamError { condition, text });
            }
            (_, ns::SASL) => self.on_sasl(now, el),
            (_, ns::SM) => self.on_sm(now, el),
            ("message" | "presence" | "iq", ns::CLIENT) => {
                if self.sm.counting_in {
                    self.sm.inbound += 1;
                }
                match el.name() {
                    "message" => self.on_message(now, el),
                    "presence" => self.on_presence(now, el),
                    _ => self.on_iq(now, el),
                }
            }
            (name, ns) => {
                self.warn(format!("ignored an unknown element <{name}/> in {ns}"));
            }
        }
    }

    // ----- commands -----

    /// Closes the stream politely (sends unavailable presence first).
    pub fn close(&mut self, _now: Instant) {
        if self.is_online() {
            self.send_raw(
                Xml::ns("presence", ns::CLIENT)
                    .attr("type", "unavailable")
                    .build(),
            );
            // Ack what we received so the server does not keep the session for resumption.
            if self.sm.counting_in {
                self.send_raw(
                    Xml::ns("a", ns::SM)
                        .attr("h", &self.sm.inbound.to_string())
                        .build(),
                );
            }
        }
        if !matches!(self.phase, Phase::Disconnected | Phase::Closed) {
            self.send_raw(Xml::ns("close", ns::FRAMING).build());
        }
        self.closing = true;
        self.sm = SmState::default();
        self.phase = Phase::Closed;
    }

    /// Sets our presence (broadcast to subscribers, RFC 6121 §4.2), with XEP-0115 caps.
    pub fn set_presence(&mut self, show: Option<Show>, status: Option<&str>, priority: i8) {
        let xml = self.presence_xml(None, show, status, priority);
        self.presence = Some(xml.clone());
        self.send_stanza(xml, None);
    }

    /// Directed presence to one JID (RFC 6121 §4.6).
    pub fn send_directed_presence(
        &mut self,
        to: &str,
        show: Option<Show>,
        status: Option<&str>,
    ) -> Result<(), XmppError> {
        let to = checked_jid(to)?;
        let xml = self.presence_xml(Some(&to), show, status, 0);
        self.send_stanza(xml, None);
        Ok(())
    }

    fn presence_xml(
        &self,
        to: Option<&str>,
        show: Option<Show>,
        status: Option<&str>,
        priority: i8,
    ) -> String {
        Xml::ns("presence", ns::CLIENT)
            .attr_opt("to", to)
            .child_opt(show.map(|s| Xml::new("show").text(s.as_str())))
            .child_opt(status.map(|s| Xml::new("status").text(s)))
            .child_opt((priority != 0).then(|| Xml::new("priority").text(&priority.to_string())))
            .child(
                Xml::ns("c", ns::CAPS)
                    .attr("hash", "sha-1")
                    .attr("node", &self.config.caps_node)
                    .attr("ver", &self.caps_ver()),
            )
            .build()
    }

    /// Adds or renames a contact (RFC 6121 §2.3).
    pub fn roster_set(
        &mut self,
        now: Instant,
        jid: &str,
        name: Option<&str>,
        groups: &[String],
    ) -> Result<(), XmppError> {
        let jid = bare_of(&checked_jid(jid)?);
        let mut item = Xml::new("item").attr("jid", &jid).attr_opt("name", name);
        for g in groups {
            item = item.child(Xml::new("group").text(g));
        }
        self.send_iq(
            now,
            "set",
            None,
            Xml::ns("query", ns::ROSTER).child(item),
            IqPurpose::RosterSet,
        );
        Ok(())
    }

    /// Removes a contact, cancelling subscriptions both ways (RFC 6121 §2.5).
    pub fn roster_remove(&mut self, now: Instant, jid: &str) -> Result<(), XmppError> {
        let jid = bare_of(&checked_jid(jid)?);
        self.send_iq(
            now,
            "set",
            None,
            Xml::ns("query", ns::ROSTER).child(
                Xml::new("item")
                    .attr("jid", &jid)
                    .attr("subscription", "remove"),
            ),
            IqPurpose::RosterSet,
        );
        Ok(())
    }

    /// Presence subscription management (RFC 6121 §3): `subscribe` (ask), `subscribed`
    /// (approve), `unsubscribed` (deny or revoke), `unsubscribe` (cancel ours).
    pub fn subscription(&mut self, jid: &str, kind: &str) -> Result<(), XmppError> {
        if !matches!(
            kind,
            "subscribe" | "subscribed" | "unsubscribe" | "unsubscribed"
        ) {
            return Err(XmppError::InvalidInput(format!(
                "unknown subscription action `{kind}`"
            )));
        }
        let jid = bare_of(&checked_jid(jid)?);
        let xml = Xml::ns("presence", ns::CLIENT)
            .attr("to", &jid)
            .attr("type", kind)
            .build();
        self.send_stanza(xml, None);
        Ok(())
    }

    fn new_id(&mut self) -> String {
        let a: u64 = self.rng.random();
        let b: u32 = self.rng.random();
        format!("{a:016x}{b:08x}")
    }

    /// Sends a 1:1 chat message with a receipt request (XEP-0184), `<active/>` (XEP-0085) and
    /// an origin-id (XEP-0359). Returns its id, which is also its stable id.
    pub fn send_chat(&mut self, to: &str, body: &str) -> Result<String, XmppError> {
        self.send_message_with(to, body, None, None)
    }

    /// XEP-0308: replaces the text of our message `original_id` (the last one we sent).
    pub fn send_correction(
        &mut self,
        to: &str,
        original_id: &str,
        body: &str,
    ) -> Result<String, XmppError> {
        self.send_message_with(to, body, Some(original_id), None)
    }

    /// Shares a link with XEP-0066 out-of-band data (the body is the URL, so clients without
    /// XEP-0066 still show it).
    pub fn send_link(&mut self, to: &str, url: &str) -> Result<String, XmppError> {
        self.send_message_with(to, url, None, Some(url))
    }

    fn send_message_with(
        &mut self,
        to: &str,
        body: &str,
        replaces: Option<&str>,
        oob: Option<&str>,
    ) -> Result<String, XmppError> {
        if body.is_empty() {
            return Err(XmppError::InvalidInput("empty message".into()));
        }
        // A full JID addresses one device (RFC 6121 §8.5.3); the conversation is the bare JID.
        let address = checked_jid(to)?;
        let to = bare_of(&address);
        let id = self.new_id();
        let xml = Xml::ns("message", ns::CLIENT)
            .attr("type", "chat")
            .attr("to", &address)
            .attr("id", &id)
            .child(Xml::new("body").text(body))
            .child(Xml::ns("request", ns::RECEIPTS))
            .child(Xml::ns("active", ns::CHATSTATES))
            .child(Xml::ns("origin-id", ns::SID).attr("id", &id))
            .child_opt(replaces.map(|r| Xml::ns("replace", ns::CORRECT).attr("id", r)))
            .child_opt(oob.map(|u| Xml::ns("x", ns::OOB).child(Xml::new("url").text(u))))
            .build();
        self.send_stanza(xml, Some((id.clone(), to)));
        Ok(id)
    }

    /// Sends a standalone chat state (XEP-0085 §5), not stored by the server (XEP-0334).
    pub fn send_chat_state(&mut self, to: &str, state: ChatState) -> Result<(), XmppError> {
        let to = bare_of(&checked_jid(to)?);
        let xml = Xml::ns("message", ns::CLIENT)
            .attr("type", "chat")
            .attr("to", &to)
            .child(Xml::ns(state.as_str(), ns::CHATSTATES))
            .child(Xml::ns("no-store", ns::HINTS))
            .build();
        self.send_stanza(xml, None);
        Ok(())
    }

    /// Joins a room (XEP-0045 §7.2) as `nick`, asking for up to `history` old messages.
    pub fn join_room(&mut self, room: &str, nick: &str, history: u32) -> Result<(), XmppError> {
        let room = bare_of(&checked_jid(room)?);
        if nick.trim().is_empty() {
            return Err(XmppError::InvalidInput("empty nickname".into()));
        }
        checked_jid(&format!("{room}/{nick}"))?;
        self.rooms.insert(
            room.clone(),
            Room {
                nick: nick.to_owned(),
                joined: false,
                history,
            },
        );
        self.send_join(&room);
        Ok(())
    }

    fn send_join(&mut self, room: &str) {
        let Some(r) = self.rooms.get(room) else {
            return;
        };
        let xml = Xml::ns("presence", ns::CLIENT)
            .attr("to", &format!("{room}/{}", r.nick))
            .child(
                Xml::ns("x", ns::MUC)
                    .child(Xml::new("history").attr("maxstanzas", &r.history.to_string())),
            )
            .build();
        self.send_stanza(xml, None);
    }

    /// Changes our nickname in a joined room (XEP-0045 §7.6).
    pub fn change_nick(&mut self, room: &str, nick: &str) -> Result<(), XmppError> {
        let room = bare_of(&checked_jid(room)?);
        checked_jid(&format!("{room}/{nick}"))?;
        let Some(r) = self.rooms.get_mut(&room) else {
            return Err(XmppError::InvalidInput(format!("not in room {room}")));
        };
        r.nick = nick.to_owned();
        let xml = Xml::ns("presence", ns::CLIENT)
            .attr("to", &format!("{room}/{nick}"))
            .build();
        self.send_stanza(xml, None);
        Ok(())
    }

    /// Leaves a room (XEP-0045 §7.14).
    pub fn leave_room(&mut self, room: &str) -> Result<(), XmppError> {
        let room = bare_of(&checked_jid(room)?);
        let Some(r) = self.rooms.remove(&room) else {
            return Err(XmppError::InvalidInput(format!("not in room {room}")));
        };
        let xml = Xml::ns("presence", ns::CLIENT)
            .attr("to", &format!("{room}/{}", r.nick))
            .attr("type", "unavailable")
            .build();
        self.send_stanza(xml, None);
        Ok(())
    }

    /// Sends a message to a room (XEP-0045 §7.4). The room reflects it back with the same id.
    pub fn send_room_message(&mut self, room: &str, body: &str) -> Result<String, XmppError> {
        self.send_room_message_with(room, body, None)
    }

    /// XEP-0308 in a room: replaces the text of our room message `original_id`.
    pub fn send_room_correction(
        &mut self,
        room: &str,
        original_id: &str,
        body: &str,
    ) -> Result<String, XmppError> {
        self.send_room_message_with(room, body, Some(original_id))
    }

    fn send_room_message_with(
        &mut self,
        room: &str,
        body: &str,
        replaces: Option<&str>,
    ) -> Result<String, XmppError> {
        if body.is_empty() {
            return Err(XmppError::InvalidInput("empty message".into()));
        }
        let room = bare_of(&checked_jid(room)?);
        if !self.rooms.contains_key(&room) {
            return Err(XmppError::InvalidInput(format!("not in room {room}")));
        }
        let id = self.new_id();
        let xml = Xml::ns("message", ns::CLIENT)
            .attr("type", "groupchat")
            .attr("to", &room)
            .attr("id", &id)
            .child(Xml::new("body").text(body))
            .child(Xml::ns("origin-id", ns::SID).attr("id", &id))
            .child_opt(replaces.map(|r| Xml::ns("replace", ns::CORRECT).attr("id", r)))
            .build();
        self.send_stanza(xml, Some((id.clone(), room)));
        Ok(id)
    }

    /// Fetches an archive (XEP-0313): ours when `archive` is `None`, else the room's with that
    /// bare JID (§6.1.2), from `start` on, paging with RSM until the server says the result is
    /// complete. Messages arrive as [`XmppEvent::Message`] with [`MessageOrigin::Archive`],
    /// oldest first; after each page's messages comes an [`XmppEvent::ArchivePage`] naming the
    /// page's last archive id, which is where a later catch-up can resume.
    pub fn mam_catch_up(
        &mut self,
        now: Instant,
        archive: Option<&str>,
        start: ArchiveStart,
    ) -> Result<String, XmppError> {
        let archive = archive
            .map(|a| checked_jid(a).map(|j| bare_of(&j)))
            .transpose()?;
        let query = self.new_id();
        let (start_ms, after) = match start {
            ArchiveStart::Beginning => (None, None),
            ArchiveStart::Since(ms) => (Some(ms), None),
            ArchiveStart::After(id) if id.is_empty() => (None, None),
            ArchiveStart::After(id) => (None, Some(id)),
        };
        self.archive.insert(
            query.clone(),
            ArchiveQuery {
                archive,
                start_ms,
                messages: 0,
                after: after.clone(),
            },
        );
        self.send_archive_page(now, &query, after.as_deref());
        Ok(query)
    }

    fn send_archive_page(&mut self, now: Instant, query: &str, after: Option<&str>) {
        let Some(q) = self.archive.get(query) else {
            return;
        };
        let mut form = Xml::ns("x", ns::DATA_FORMS).attr("type", "submit").child(
            Xml::new("field")
                .attr("var", "FORM_TYPE")
                .attr("type", "hidden")
                .child(Xml::new("value").text(ns::MAM)),
        );
        if let Some(start) = q.start_ms {
            form = form.child(
                Xml::new("field")
                    .attr("var", "start")
                    .child(Xml::new("value").text(&time::format_ms(start))),
            );
        }
        let set = Xml::ns("set", ns::RSM)
            .child(Xml::new("max").text(&self.config.mam_page_size.to_string()))
            .child_opt(after.map(|a| Xml::new("after").text(a)));
        let payload = Xml::ns("query", ns::MAM)
            .attr("queryid", query)
            .child(form)
            .child(set);
        let to = q.archive.clone();
        self.send_iq(
            now,
            "set",
            to.as_deref(),
            payload,
            IqPurpose::Archive {
                query: query.to_owned(),
            },
        );
    }

    /// Asks the upload service for a slot (XEP-0363 §4). Returns the request id.
    pub fn request_upload_slot(
        &mut self,
        now: Instant,
        filename: &str,
        size: u64,
        content_type: &str,
    ) -> Result<String, XmppError> {
        let Some((service, limit)) = self.upload_service.clone() else {
            return Err(XmppError::Unsupported(
                "the server has no HTTP upload service".into(),
            ));
        };
        if let Some(limit) = limit.filter(|l| size > *l) {
            return Err(XmppError::InvalidInput(format!(
                "file of {size} bytes exceeds the server's limit of {limit}"
            )));
        }
        let name = filename.rsplit(['/', '\\']).next().unwrap_or(filename);
        if name.is_empty() {
            return Err(XmppError::InvalidInput("empty file name".into()));
        }
        let request = self.new_id();
        self.send_iq(
            now,
            "get",
            Some(&service),
            Xml::ns("request", ns::UPLOAD)
                .attr("filename", name)
                .attr("size", &size.to_string())
                .attr("content-type", content_type),
            IqPurpose::UploadSlot {
                request: request.clone(),
            },
        );
        Ok(request)
    }

    // ----- internals: sending -----

    fn send_raw(&mut self, xml: String) {
        self.transmit.push_back(xml);
    }

    /// A stanza: sent at once when online (and kept until acked), else queued until online.
    fn send_stanza(&mut self, xml: String, message: Option<(String, String)>) {
        if !self.is_online() {
            self.pending.push_back((xml, message));
            return;
        }
        self.transmit_stanza(xml, message);
    }

    fn transmit_stanza(&mut self, xml: String, message: Option<(String, String)>) {
        if self.sm.counting_out {
            self.sm.outbound += 1;
            self.sm.unacked.push_back(Unacked {
                seq: self.sm.outbound,
                xml: xml.clone(),
                message,
            });
        } else if let Some((id, to)) = message {
            // Without XEP-0198, handing it to TCP is all the assurance there is.
            self.events.push_back(XmppEvent::MessageSent { id, to });
        }
        self.transmit.push_back(xml);
    }

    /// XEP-0198 §4: one `<r/>` after each burst of stanzas, not after every stanza.
    ///
    /// Asking after every stanza doubles the small writes on the link, and with Nagle's
    /// algorithm on the server's socket each extra small segment can hold the next stanza back
    /// for a delayed ACK (~40 ms). So the request waits for a few stanzas or a short delay.
    fn request_ack_if_needed(&mut self) {
        let waiting = self.sm.outbound.saturating_sub(self.sm.requested_up_to);
        if !(self.is_online() && self.sm.counting_in && waiting > 0 && !self.sm.unacked.is_empty())
        {
            return;
        }
        if waiting >= ACK_REQUEST_BATCH {
            self.send_ack_request();
        } else if self.sm.ack_due.is_none() {
            self.sm.ack_due = self.last_now.map(|now| now + ACK_REQUEST_DELAY);
        }
    }

    fn send_ack_request(&mut self) {
        self.sm.ack_due = None;
        self.sm.requested_up_to = self.sm.outbound;
        self.transmit.push_back(Xml::ns("r", ns::SM).build());
    }

    fn send_iq(
        &mut self,
        now: Instant,
        kind: &str,
        to: Option<&str>,
        payload: Xml,
        purpose: IqPurpose,
    ) -> String {
        let id = self.new_id();
        let xml = Xml::ns("iq", ns::CLIENT)
            .attr("type", kind)
            .attr("id", &id)
            .attr_opt("to", to)
            .child(payload)
            .build();
        self.iqs.insert(
            id.clone(),
            (
                purpose,
                now + self.config.response_timeout.max(Duration::from_secs(1)),
            ),
        );
        self.send_stanza(xml, None);
        id
    }

    fn warn(&mut self, text: String) {
        debug!(%text, "xmpp warning");
        self.events.push_back(XmppEvent::Warning(text));
    }

    fn fail(&mut self, error: XmppError) {
        warn!(%error, "xmpp stream failed");
        if !matches!(self.phase, Phase::Closed | Phase::Disconnected) {
            self.send_raw(Xml::ns("close", ns::FRAMING).build());
        }
        self.close_locally(Some(error));
    }

    fn close_locally(&mut self, error: Option<XmppError>) {
        if matches!(self.phase, Phase::Disconnected) {
            return;
        }
        self.phase = Phase::Closed;
        self.negotiation_deadline = None;
        self.iqs.clear();
        for room in self.rooms.values_mut() {
            room.joined = false;
        }
        self.events.push_back(XmppEvent::Offline { error });
    }

    // ----- internals: negotiation -----

    fn open_stream(&mut self, now: Instant) {
        self.phase = Phase::Opening;
        self.negotiation_deadline = Some(now + self.config.response_timeout);
        self.send_raw(
            Xml::ns("open", ns::FRAMING)
                .attr("to", &self.domain)
                .attr("version", "1.0")
                .attr("xml:lang", "en")
                .build(),
        );
    }

    fn on_features(&mut self, now: Instant, features: Element) {
        if !matches!(self.phase, Phase::Opening) {
            self.warn("unexpected stream features ignored".into());
            return;
        }
        self.negotiation_deadline = Some(now + self.config.response_timeout);
        if !self.authenticated {
            let offered: Vec<String> = features
                .get_child("mechanisms", ns::SASL)
                .map(|m| {
                    m.children()
                        .filter(|c| c.name() == "mechanism")
                        .map(Element::text)
                        .collect()
                })
                .unwrap_or_default();
            let Some(mechanism) =
                Mechanism::choose(offered.iter().map(String::as_str), self.config.allow_plain)
            else {
                self.fail(XmppError::NoMechanism {
                    offered: offered.join(","),
                });
                return;
            };
            debug!(mechanism = mechanism.name(), "authenticating");
            let cnonce = {
                let bytes: [u8; 18] = self.rng.random();
                B64.encode(bytes)
            };
            let local = self.local.clone();
            let (exchange, initial) =
                SaslExchange::start(mechanism, &local, &self.config.password, &cnonce);
            self.send_raw(
                Xml::ns("auth", ns::SASL)
                    .attr("mechanism", mechanism.name())
                    .text(&B64.encode(initial))
                    .build(),
            );
            self.phase = Phase::Authenticating(exchange);
            return;
        }
        let sm_offered = features.has_child("sm", ns::SM);
        self.features = Some(features);
        if sm_offered && let Some(previd) = self.sm.resume_id.clone() {
            self.send_raw(
                Xml::ns("resume", ns::SM)
                    .attr("previd", &previd)
                    .attr("h", &self.sm.inbound.to_string())
                    .build(),
            );
            self.phase = Phase::Resuming;
            return;
        }
        self.bind(now);
    }

    fn bind(&mut self, now: Instant) {
        let id = self.new_id();
        let bind = Xml::ns("bind", ns::BIND)
            .child_opt(
                self.config
                    .resource
                    .as_deref()
                    .map(|r| Xml::new("resource").text(r)),
            )
            .build();
        self.send_raw(format!(
            "<iq xmlns='jabber:client' type='set' id='{id}'>{bind}</iq>"
        ));
        self.iqs.insert(
            id.clone(),
            (IqPurpose::Bind, now + self.config.response_timeout),
        );
        self.phase = Phase::Binding;
    }

    fn on_sasl(&mut self, now: Instant, el: Element) {
        let Phase::Authenticating(exchange) = &mut self.phase else {
            self.warn(format!("unexpected SASL <{}/> ignored", el.name()));
            return;
        };
        let data = match B64.decode(el.text().trim()) {
            Ok(d) => d,
            Err(_) if el.name() == "failure" => Vec::new(),
            Err(_) => {
                self.fail(XmppError::Protocol("SASL data is not base64".into()));
                return;
            }
        };
        match el.name() {
            "challenge" => match exchange.challenge(&data) {
                Ok(response) => self.send_raw(
                    Xml::ns("response", ns::SASL)
                        .text(&B64.encode(response))
                        .build(),
                ),
                Err(e) => {
                    self.send_raw(Xml::ns("abort", ns::SASL).build());
                    self.fail(e);
                }
            },
            "success" => match exchange.success(&data) {
                Ok(()) => {
                    debug!("authenticated");
                    self.authenticated = true;
                    // RFC 6120 §6.4.6 / RFC 7395 §3.5: restart the stream.
                    self.open_stream(now);
                }
                Err(e) => self.fail(e),
            },
            "failure" => {
                let condition = el
                    .children()
                    .find(|c| c.name() != "text")
                    .map(|c| c.name().to_owned())
                    .unwrap_or_else(|| "not-authorized".into());
                let text = child_text(&el, "text", ns::SASL);
                self.sm = SmState::default();
                self.fail(XmppError::AuthFailed { condition, text });
            }
            other => {
                let other = other.to_owned();
                self.fail(XmppError::Protocol(format!("unexpected SASL <{other}/>")));
            }
        }
    }

    fn on_bound(&mut self, now: Instant, el: &Element) {
        let jid = el
            .get_child("bind", ns::BIND)
            .and_then(|b| child_text(b, "jid", ns::BIND));
        let Some(jid) = jid.filter(|j| Jid::new(j).is_ok()) else {
            self.fail(XmppError::Protocol(
                "resource binding returned no JID".into(),
            ));
            return;
        };
        self.bound_jid = Some(jid.clone());
        self.negotiation_deadline = None;
        self.phase = Phase::Online;
        // XEP-0198 §3: enable with resumption before anything else, so every later stanza is
        // counted.
        let sm_offered = self
            .features
            .as_ref()
            .is_some_and(|f| f.has_child("sm", ns::SM));
        // The old session is gone: what it did not get acked is sent again on the new one
        // (messages only; the receiver de-duplicates by id). Roster/presence/IQs are redone.
        let leftover: Vec<Unacked> = self.sm.unacked.drain(..).collect();
        self.sm = SmState::default();
        if sm_offered {
            self.send_raw(Xml::ns("enable", ns::SM).attr("resume", "true").build());
            self.sm.counting_out = true;
        }
        self.events.push_back(XmppEvent::Online {
            jid,
            resumed: false,
        });
        self.send_iq(
            now,
            "get",
            None,
            Xml::ns("query", ns::ROSTER),
            IqPurpose::RosterGet,
        );
        self.send_iq(
            now,
            "set",
            None,
            Xml::ns("enable", ns::CARBONS),
            IqPurpose::Carbons,
        );
        let domain = self.domain.clone();
        self.send_iq(
            now,
            "get",
            Some(&domain),
            Xml::ns("query", ns::DISCO_INFO),
            IqPurpose::ServerInfo,
        );
        self.send_iq(
            now,
            "get",
            Some(&domain),
            Xml::ns("query", ns::DISCO_ITEMS),
            IqPurpose::ServerItems,
        );
        if let Some(presence) = self.presence.clone() {
            self.transmit_stanza(presence, None);
        }
        let rooms: Vec<String> = self.rooms.keys().cloned().collect();
        for room in rooms {
            self.send_join(&room);
        }
        for old in leftover {
            if old.message.is_some() {
                self.transmit_stanza(old.xml, old.message);
            }
        }
        self.flush_pending();
    }

    fn flush_pending(&mut self) {
        while let Some((xml, message)) = self.pending.pop_front() {
            self.transmit_stanza(xml, message);
        }
    }

    fn on_sm(&mut self, now: Instant, el: Element) {
        match el.name() {
            "enabled" => {
                self.sm.counting_in = true;
                self.sm.inbound = 0;
                if matches!(el.attr("resume"), Some("true" | "1")) {
                    self.sm.resume_id = el.attr("id").map(str::to_owned);
                }
                debug!(
                    resumable = self.sm.resume_id.is_some(),
                    "stream management on"
                );
            }
            "r" => {
                if self.sm.counting_in {
                    self.send_raw(
                        Xml::ns("a", ns::SM)
                            .attr("h", &self.sm.inbound.to_string())
                            .build(),
                    );
                }
            }
            "a" => match el.attr("h").and_then(|h| h.parse::<u64>().ok()) {
                Some(h) => self.acknowledge(h),
                None => self.warn("stream management <a/> without a valid h".into()),
            },
            "resumed" => {
                if !matches!(self.phase, Phase::Resuming) {
                    self.warn("unexpected <resumed/> ignored".into());
                    return;
                }
                if let Some(h) = el.attr("h").and_then(|h| h.parse::<u64>().ok()) {
                    self.acknowledge(h);
                }
                self.negotiation_deadline = None;
                self.phase = Phase::Online;
                self.sm.counting_in = true;
                self.sm.counting_out = true;
                // XEP-0198 §5: resend what the server did not get, in order, then the rest.
                let resend: Vec<String> = self.sm.unacked.iter().map(|u| u.xml.clone()).collect();
                self.sm.requested_up_to = 0;
                self.transmit.extend(resend);
                let jid = self.bound_jid.clone().unwrap_or_else(|| self.bare_jid());
                self.events
                    .push_back(XmppEvent::Online { jid, resumed: true });
                let rooms: Vec<String> = self.rooms.keys().cloned().collect();
                for room in rooms {
                    if let Some(r) = self.rooms.get_mut(&room) {
                        r.joined = true;
                    }
                }
                self.flush_pending();
            }
            "failed" => {
                if matches!(self.phase, Phase::Resuming) {
                    debug!("resumption refused; binding a new session");
                    // Keep the unacked stanzas: on_bound resends the messages among them.
                    let unacked = std::mem::take(&mut self.sm.unacked);
                    self.sm = SmState {
                        unacked,
                        ..SmState::default()
                    };
                    self.bind(now);
                } else {
                    self.warn("stream management could not be enabled".into());
                    self.sm.counting_out = false;
                    // What was counted is simply sent; no resumption without SM.
                    let acked: Vec<Unacked> = self.sm.unacked.drain(..).collect();
                    for u in acked {
                        if let Some((id, to)) = u.message {
                            self.events.push_back(XmppEvent::MessageSent { id, to });
                        }
                    }
                }
            }
            other => {
                let other = other.to_owned();
                self.warn(format!("ignored stream management <{other}/>"));
            }
        }
    }

    fn acknowledge(&mut self, h: u64) {
        if h > self.sm.outbound {
            self.warn(format!(
                "server acknowledged {h} stanzas but only {} were sent",
                self.sm.outbound
            ));
        }
        while let Some(front) = self.sm.unacked.front() {
            if front.seq > h {
                break;
            }
            if let Some(u) = self.sm.unacked.pop_front()
                && let Some((id, to)) = u.message
            {
                self.events.push_back(XmppEvent::MessageSent { id, to });
            }
        }
    }

    // ----- internals: stanzas -----

    fn is_from_self_account(&self, from: Option<&str>) -> bool {
        match from {
            None => true,
            Some(f) => bare_of(f) == self.bare_jid() || f == self.domain,
        }
    }

    fn on_message(&mut self, now: Instant, el: Element) {
        let from = el.attr("from").map(str::to_owned);
        // XEP-0280 §11 / XEP-0313 §5.1.1: carbons and archive results are only trusted from
        // our own account; anyone else could forge them.
        if let Some(carbon) = el
            .get_child("received", ns::CARBONS)
            .or_else(|| el.get_child("sent", ns::CARBONS))
        {
            if !self.is_from_self_account(from.as_deref()) {
                self.warn("ignored a forged carbon".into());
                return;
            }
            let sent = carbon.name() == "sent";
            if let Some(inner) = forwarded_message(carbon) {
                self.on_chat_message(now, inner, MessageOrigin::Carbon, sent, None);
            }
            return;
        }
        if let Some(result) = el.get_child("result", ns::MAM) {
            let query = result.attr("queryid").unwrap_or_default().to_owned();
            // Results come from the archive we asked: our account, or the room.
            let trusted = match self.archive.get(&query).and_then(|q| q.archive.as_deref()) {
                Some(room) => from.as_deref().is_some_and(|f| f == room),
                None => self.is_from_self_account(from.as_deref()),
            };
            if !trusted {
                self.warn("ignored an archive result from a stranger".into());
                return;
            }
            let archive_id = result.attr("id").map(str::to_owned);
            let delay = result
                .get_child("forwarded", ns::FORWARD)
                .and_then(|f| f.get_child("delay", ns::DELAY))
                .and_then(|d| d.attr("stamp"))
                .and_then(time::parse_ms);
            if let Some(inner) = forwarded_message(result) {
                let outgoing = inner
                    .attr("from")
                    .is_some_and(|f| bare_of(f) == self.bare_jid());
                let counted = self.on_chat_message(
                    now,
                    inner,
                    MessageOrigin::Archive {
                        query: query.clone(),
                    },
                    outgoing,
                    archive_id.map(|a| (a, delay)),
                );
                if counted && let Some(q) = self.archive.get_mut(&query) {
                    q.messages += 1;
                }
            }
            return;
        }
        let outgoing = false;
        self.on_chat_message(now, &el, MessageOrigin::Live, outgoing, None);
    }

    /// Handles a message (possibly unwrapped from a carbon or archive result). Returns whether
    /// it had a body (was reported as a message).
    fn on_chat_message(
        &mut self,
        _now: Instant,
        el: &Element,
        origin: MessageOrigin,
        outgoing: bool,
        archive: Option<(String, Option<i64>)>,
    ) -> bool {
        let kind = match el.attr("type") {
            Some("chat") => MessageKind::Chat,
            Some("groupchat") => MessageKind::Groupchat,
            Some("error") => {
                if let Some(id) = el.attr("id") {
                    let peer = el.attr("from").map(bare_of).unwrap_or_default();
                    let condition = stanza_error_condition(el);
                    self.events.push_back(XmppEvent::MessageFailed {
                        id: id.to_owned(),
                        peer,
                        condition,
                    });
                }
                return false;
            }
            Some("headline") => return false,
            _ => MessageKind::Normal,
        };
        let from = el.attr("from").unwrap_or_default().to_owned();
        let to = el.attr("to").unwrap_or_default().to_owned();
        let peer = if outgoing {
            bare_of(&to)
        } else {
            bare_of(&from)
        };
        if peer.is_empty() {
            return false;
        }
        let live = origin == MessageOrigin::Live;
        // XEP-0184: a receipt for one of ours.
        if let Some(received) = el.get_child("received", ns::RECEIPTS)
            && let Some(id) = received.attr("id")
            && !outgoing
        {
            self.events.push_back(XmppEvent::MessageDelivered {
                id: id.to_owned(),
                from: peer.clone(),
            });
        }
        if kind == MessageKind::Groupchat
            && let Some(subject) = child_text(el, "subject", ns::CLIENT)
            && !el.has_child("body", ns::CLIENT)
        {
            self.events.push_back(XmppEvent::RoomSubject {
                room: peer,
                subject,
            });
            return false;
        }
        let body = child_text(el, "body", ns::CLIENT);
        if kind != MessageKind::Groupchat
            && !outgoing
            && live
            && let Some(state) = el
                .children()
                .find(|c| c.ns() == ns::CHATSTATES)
                .and_then(|c| ChatState::parse(c.name()))
        {
            self.events.push_back(XmppEvent::ChatState {
                from: peer.clone(),
                state,
            });
        }
        let Some(body) = body else {
            return false;
        };
        // XEP-0184 §5.4: only the live recipient acknowledges; never for groupchat or errors.
        if live
            && kind != MessageKind::Groupchat
            && el.has_child("request", ns::RECEIPTS)
            && let Some(id) = el.attr("id")
            && !from.is_empty()
        {
            let xml = Xml::ns("message", ns::CLIENT)
                .attr("to", &from)
                .attr("type", "chat")
                .child(Xml::ns("received", ns::RECEIPTS).attr("id", id))
                .child(Xml::ns("store", ns::HINTS))
                .build();
            self.send_stanza(xml, None);
        }
        let own_archive_id = el
            .children()
            .find(|c| {
                c.is("stanza-id", ns::SID) && c.attr("by").is_some_and(|b| b == self.bare_jid())
            })
            .and_then(|c| c.attr("id"))
            .map(str::to_owned);
        let origin_id = el
            .get_child("origin-id", ns::SID)
            .and_then(|o| o.attr("id"))
            .map(str::to_owned);
        let (archive_id, archived_at) = match archive {
            Some((id, at)) => (Some(id), at),
            None => (own_archive_id, None),
        };
        let delay = el
            .get_child("delay", ns::DELAY)
            .and_then(|d| d.attr("stamp"))
            .and_then(time::parse_ms)
            .or(archived_at);
        let Some(stable_id) = origin_id
            .or_else(|| el.attr("id").filter(|i| !i.is_empty()).map(str::to_owned))
            .or_else(|| archive_id.clone())
        else {
            self.warn("ignored a message without any id".into());
            return false;
        };
        let nick = (kind == MessageKind::Groupchat)
            .then(|| resource_of(&from))
            .flatten();
        let outgoing = outgoing
            || (kind == MessageKind::Groupchat
                && nick.is_some()
                && self
                    .rooms
                    .get(&peer)
                    .is_some_and(|r| Some(&r.nick) == nick.as_ref()));
        let origin = if kind == MessageKind::Groupchat && delay.is_some() && live {
            MessageOrigin::RoomHistory
        } else {
            origin
        };
        let message = ChatMessage {
            stable_id,
            kind,
            outgoing,
            peer,
            from,
            nick,
            body,
            replaces: el
                .get_child("replace", ns::CORRECT)
                .and_then(|r| r.attr("id"))
                .map(str::to_owned),
            oob_url: el
                .get_child("x", ns::OOB)
                .and_then(|x| child_text(x, "url", ns::OOB)),
            sent_at_ms: delay,
            archive_id,
            origin,
        };
        self.events.push_back(XmppEvent::Message(message));
        true
    }

    fn on_presence(&mut self, now: Instant, el: Element) {
        let Some(from) = el.attr("from").map(str::to_owned) else {
            return; // our own broadcast reflected without from: nothing to learn
        };
        let bare = bare_of(&from);
        let kind = el.attr("type").unwrap_or("available").to_owned();
        if let Some(x) = el.get_child("x", ns::MUC_USER).cloned()
            && self.rooms.contains_key(&bare)
        {
            self.on_occupant(now, &from, &bare, &kind, &x);
            return;
        }
        if kind == "error" && self.rooms.contains_key(&bare) {
            let condition = stanza_error_condition(&el);
            self.rooms.remove(&bare);
            self.events.push_back(XmppEvent::RoomError {
                room: bare,
                condition,
            });
            return;
        }
        match kind.as_str() {
            "available" | "unavailable" => {
                let caps = el
                    .get_child("c", ns::CAPS)
                    .and_then(|c| Some((c.attr("node")?.to_owned(), c.attr("ver")?.to_owned())));
                if let Some((node, ver)) = &caps
                    && kind == "available"
                    && from != self.full_jid().unwrap_or_default()
                    && self.known_caps.insert(ver.clone())
                {
                    // XEP-0115 §6.2: ask once per ver what it means.
                    self.send_iq(
                        now,
                        "get",
                        Some(&from),
                        Xml::ns("query", ns::DISCO_INFO).attr("node", &format!("{node}#{ver}")),
                        IqPurpose::PeerInfo {
                            jid: from.clone(),
                            ver: ver.clone(),
                        },
                    );
                }
                let presence = Presence {
                    from,
                    available: kind == "available",
                    show: child_text(&el, "show", ns::CLIENT).and_then(|s| Show::parse(&s)),
                    status: child_text(&el, "status", ns::CLIENT),
                    priority: child_text(&el, "priority", ns::CLIENT)
                        .and_then(|p| p.trim().parse().ok())
                        .unwrap_or(0),
                    caps,
                };
                self.events.push_back(XmppEvent::Presence(presence));
            }
            "subscribe" => self
                .events
                .push_back(XmppEvent::SubscriptionRequest { from: bare }),
            "subscribed" | "unsubscribed" | "unsubscribe" => self
                .events
                .push_back(XmppEvent::SubscriptionChanged { from: bare, kind }),
            "error" => self.warn(format!(
                "presence error from {bare}: {}",
                stanza_error_condition(&el)
            )),
            _ => {}
        }
    }

    fn on_occupant(&mut self, now: Instant, from: &str, room: &str, kind: &str, x: &Element) {
        let nick = resource_of(from).unwrap_or_default();
        let codes: Vec<&str> = x
            .children()
            .filter(|c| c.name() == "status")
            .filter_map(|c| c.attr("code"))
            .collect();
        let is_self = codes.contains(&"110");
        let item = x.get_child("item", ns::MUC_USER);
        let occupant = Occupant {
            room: room.to_owned(),
            nick: nick.clone(),
            jid: item.and_then(|i| i.attr("jid")).map(str::to_owned),
            available: kind != "unavailable",
            role: item.and_then(|i| i.attr("role")).map(str::to_owned),
            affiliation: item.and_then(|i| i.attr("affiliation")).map(str::to_owned),
            is_self,
        };
        if is_self && codes.contains(&"201") {
            // XEP-0045 §10.1.2: a room we just created stays locked (others get
            // item-not-found) until configured; accept the default configuration.
            self.send_iq(
                now,
                "set",
                Some(room),
                Xml::ns("query", ns::MUC_OWNER)
                    .child(Xml::ns("x", ns::DATA_FORMS).attr("type", "submit")),
                IqPurpose::RoomConfig,
            );
        }
        if is_self {
            let mut joined_now = false;
            let mut removed = false;
            if let Some(r) = self.rooms.get_mut(room) {
                if kind == "unavailable" {
                    // 303 is a nick change: we are still in the room under the new nick.
                    if !codes.contains(&"303") {
                        removed = true;
                    }
                } else {
                    r.nick = nick.clone();
                    if !r.joined {
                        r.joined = true;
                        joined_now = true;
                    }
                }
            }
            if removed {
                self.rooms.remove(room);
                self.events.push_back(XmppEvent::RoomError {
                    room: room.to_owned(),
                    condition: "removed from the room".into(),
                });
            }
            self.events.push_back(XmppEvent::Occupant(occupant));
            if joined_now {
                self.events.push_back(XmppEvent::RoomJoined {
                    room: room.to_owned(),
                    nick,
                });
            }
            return;
        }
        self.events.push_back(XmppEvent::Occupant(occupant));
    }

    fn on_iq(&mut self, now: Instant, el: Element) {
        let id = el.attr("id").unwrap_or_default().to_owned();
        let from = el.attr("from").map(str::to_owned);
        match el.attr("type") {
            Some("result") | Some("error") => {
                let Some((purpose, _)) = self.iqs.remove(&id) else {
                    return; // late or unknown answer
                };
                if el.attr("type") == Some("error") {
                    let condition = stanza_error_condition(&el);
                    self.iq_failed(now, purpose, condition);
                } else {
                    self.iq_result(now, purpose, &el);
                }
            }
            Some("get") | Some("set") => self.iq_request(now, &el, &id, from.as_deref()),
            _ => self.warn("ignored an IQ without a valid type".into()),
        }
    }

    fn iq_reply(&mut self, to: Option<&str>, id: &str, payload: Option<Xml>) {
        let xml = Xml::ns("iq", ns::CLIENT)
            .attr("type", "result")
            .attr("id", id)
            .attr_opt("to", to)
            .child_opt(payload)
            .build();
        self.send_stanza(xml, None);
    }

    fn iq_request(&mut self, _now: Instant, el: &Element, id: &str, from: Option<&str>) {
        let Some(payload) = el.children().next() else {
            self.iq_error(from, id, "cancel", "bad-request");
            return;
        };
        let pns = payload.ns();
        match (payload.name(), pns.as_str(), el.attr("type")) {
            ("query", ns::ROSTER, Some("set")) => {
                // RFC 6121 §2.1.6: a push is only valid from our own account.
                if !self.is_from_self_account(from) {
                    self.iq_error(from, id, "cancel", "service-unavailable");
                    return;
                }
                for item in payload.children().filter(|c| c.name() == "item") {
                    if let Some(item) = roster_item(item) {
                        self.events.push_back(XmppEvent::RosterPush(item));
                    }
                }
                self.iq_reply(from, id, None);
            }
            ("ping", ns::PING, Some("get")) => self.iq_reply(from, id, None),
            ("query", ns::DISCO_INFO, Some("get")) => {
                let node = payload.attr("node").map(str::to_owned);
                let mut query = Xml::ns("query", ns::DISCO_INFO).attr_opt("node", node.as_deref());
                query = query.child(
                    Xml::new("identity")
                        .attr("category", "client")
                        .attr("type", "pc")
                        .attr("name", "Lyrebird"),
                );
                for feature in OUR_FEATURES {
                    query = query.child(Xml::new("feature").attr("var", feature));
                }
                self.iq_reply(from, id, Some(query));
            }
            _ => self.iq_error(from, id, "cancel", "service-unavailable"),
        }
    }

    fn iq_error(&mut self, to: Option<&str>, id: &str, kind: &str, condition: &'static str) {
        let xml = Xml::ns("iq", ns::CLIENT)
            .attr("type", "error")
            .attr("id", id)
            .attr_opt("to", to)
            .child(
                Xml::new("error")
                    .attr("type", kind)
                    .child(Xml::ns(condition, ns::STANZA_ERRORS)),
            )
            .build();
        self.send_stanza(xml, None);
    }

    fn iq_result(&mut self, now: Instant, purpose: IqPurpose, el: &Element) {
        match purpose {
            IqPurpose::Bind => self.on_bound(now, el),
            IqPurpose::RosterGet => {
                let items = el
                    .get_child("query", ns::ROSTER)
                    .map(|q| {
                        q.children()
                            .filter(|c| c.name() == "item")
                            .filter_map(roster_item)
                            .collect()
                    })
                    .unwrap_or_default();
                self.events.push_back(XmppEvent::Roster(items));
            }
            IqPurpose::RosterSet | IqPurpose::Carbons | IqPurpose::RoomConfig => {}
            IqPurpose::ServerInfo => {
                if let Some(q) = el.get_child("query", ns::DISCO_INFO) {
                    self.server_features = features_of(q);
                }
                self.report_server_info_if_done();
            }
            IqPurpose::ServerItems => {
                let items: Vec<String> = el
                    .get_child("query", ns::DISCO_ITEMS)
                    .map(|q| {
                        q.children()
                            .filter(|c| c.name() == "item")
                            .filter_map(|c| c.attr("jid"))
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default();
                for item in items {
                    self.disco_pending += 1;
                    self.send_iq(
                        now,
                        "get",
                        Some(&item),
                        Xml::ns("query", ns::DISCO_INFO),
                        IqPurpose::ServiceInfo(item.clone()),
                    );
                }
                self.report_server_info_if_done();
            }
            IqPurpose::ServiceInfo(service) => {
                self.disco_pending = self.disco_pending.saturating_sub(1);
                if let Some(q) = el.get_child("query", ns::DISCO_INFO)
                    && features_of(q).iter().any(|f| f == ns::UPLOAD)
                {
                    self.upload_service = Some((service, upload_limit(q)));
                }
                self.report_server_info_if_done();
            }
            IqPurpose::PeerInfo { jid, ver } => {
                let features = el
                    .get_child("query", ns::DISCO_INFO)
                    .map(features_of)
                    .unwrap_or_default();
                let _ = ver;
                self.events
                    .push_back(XmppEvent::PeerFeatures { jid, features });
            }
            IqPurpose::Archive { query } => {
                let fin = el.get_child("fin", ns::MAM);
                let last = fin
                    .and_then(|f| f.get_child("set", ns::RSM))
                    .and_then(|s| child_text(s, "last", ns::RSM))
                    .filter(|l| !l.is_empty());
                let Some(q) = self.archive.get_mut(&query) else {
                    return;
                };
                // A page without a last item, or one that did not move past the previous
                // page, ends the query: asking again would repeat it forever.
                let moved = last.is_some() && last != q.after;
                let complete =
                    !moved || fin.is_some_and(|f| matches!(f.attr("complete"), Some("true" | "1")));
                let messages = q.messages;
                let last = last.filter(|_| moved);
                if complete {
                    self.archive.remove(&query);
                } else {
                    q.after = last.clone();
                }
                self.events.push_back(XmppEvent::ArchivePage {
                    query: query.clone(),
                    last: last.clone(),
                    complete,
                    messages,
                });
                if !complete {
                    self.send_archive_page(now, &query, last.as_deref());
                }
            }
            IqPurpose::UploadSlot { request } => {
                match el.get_child("slot", ns::UPLOAD).and_then(parse_slot) {
                    Some(slot) => self
                        .events
                        .push_back(XmppEvent::UploadSlot { request, slot }),
                    None => self.events.push_back(XmppEvent::UploadFailed {
                        request,
                        condition: "the server's slot has no usable put/get URL".into(),
                    }),
                }
            }
        }
    }

    fn iq_failed(&mut self, _now: Instant, purpose: IqPurpose, condition: String) {
        match purpose {
            IqPurpose::Bind => self.fail(XmppError::Protocol(format!(
                "resource binding failed: {condition}"
            ))),
            IqPurpose::Archive { query } => {
                self.archive.remove(&query);
                self.events
                    .push_back(XmppEvent::ArchiveFailed { query, condition });
            }
            IqPurpose::UploadSlot { request } => self
                .events
                .push_back(XmppEvent::UploadFailed { request, condition }),
            IqPurpose::ServiceInfo(_) => {
                self.disco_pending = self.disco_pending.saturating_sub(1);
                self.report_server_info_if_done();
            }
            IqPurpose::ServerInfo => self.report_server_info_if_done(),
            IqPurpose::RosterSet => self.warn(format!("roster change refused: {condition}")),
            IqPurpose::Carbons => self.warn(format!("carbons not enabled: {condition}")),
            IqPurpose::RoomConfig => self.warn(format!("new room not unlocked: {condition}")),
            IqPurpose::RosterGet | IqPurpose::ServerItems | IqPurpose::PeerInfo { .. } => {
                debug!(%condition, "iq failed")
            }
        }
    }

    fn report_server_info_if_done(&mut self) {
        let waiting = self.iqs.values().any(|(p, _)| {
            matches!(
                p,
                IqPurpose::ServerInfo | IqPurpose::ServerItems | IqPurpose::ServiceInfo(_)
            )
        });
        if !waiting {
            self.events.push_back(XmppEvent::ServerInfo {
                features: self.server_features.clone(),
                upload_service: self.upload_service.clone(),
            });
        }
    }

    /// XEP-0115 §5.1 verification string over our disco#info, SHA-1, base64.
    fn caps_ver(&self) -> String {
        let mut features: Vec<&str> = OUR_FEATURES.to_vec();
        features.sort_unstable();
        let mut s = String::from("client/pc//Lyrebird<");
        for f in features {
            s.push_str(f);
            s.push('<');
        }
        let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, s.as_bytes());
        B64.encode(digest.as_ref())
    }
}

/// XEP-0198 `<r/>` is sent after this many unacknowledged stanzas, or after
/// [`ACK_REQUEST_DELAY`] when fewer were sent.
const ACK_REQUEST_BATCH: u64 = 5;
const ACK_REQUEST_DELAY: Duration = Duration::from_millis(250);

/// What we tell others we support (XEP-0030 / XEP-0115).
const OUR_FEATURES: [&str; 10] = [
    ns::DISCO_INFO,
    ns::CAPS,
    ns::RECEIPTS,
    ns::CHATSTATES,
    ns::CORRECT,
    ns::CARBONS,
    ns::OOB,
    ns::MUC,
    ns::PING,
    ns::SID,
];

fn looks_like_stanza(frame: &str) -> bool {
    let head = frame.trim_start();
    head.starts_with("<message") || head.starts_with("<presence") || head.starts_with("<iq")
}

fn forwarded_message(wrapper: &Element) -> Option<&Element> {
    wrapper
        .get_child("forwarded", ns::FORWARD)
        .and_then(|f| f.get_child("message", ns::CLIENT))
}

fn roster_item(item: &Element) -> Option<RosterItem> {
    let jid = item.attr("jid")?;
    let jid = Jid::new(jid).ok()?.to_bare().to_string();
    Some(RosterItem {
        jid,
        name: item.attr("name").map(str::to_owned),
        subscription: item.attr("subscription").unwrap_or("none").to_owned(),
        pending_out: item.attr("ask") == Some("subscribe"),
        groups: item
            .children()
            .filter(|c| c.name() == "group")
            .map(Element::text)
            .collect(),
    })
}

fn features_of(query: &Element) -> Vec<String> {
    query
        .children()
        .filter(|c| c.name() == "feature")
        .filter_map(|c| c.attr("var"))
        .map(str::to_owned)
        .collect()
}

/// XEP-0363 §2: the size limit, from the service's extended disco form.
fn upload_limit(query: &Element) -> Option<u64> {
    query
        .children()
        .filter(|c| c.is("x", ns::DATA_FORMS))
        .flat_map(|x| x.children())
        .filter(|f| f.name() == "field" && f.attr("var") == Some("max-file-size"))
        .find_map(|f| child_text(f, "value", ns::DATA_FORMS))
        .and_then(|v| v.trim().parse().ok())
}

fn parse_slot(slot: &Element) -> Option<UploadSlot> {
    let put = slot.get_child("put", ns::UPLOAD)?;
    let get = slot.get_child("get", ns::UPLOAD)?;
    let put_url = put.attr("url")?.to_owned();
    let get_url = get.attr("url")?.to_owned();
    if !(put_url.starts_with("http://") || put_url.starts_with("https://")) {
        return None;
    }
    // XEP-0363 §4: only these headers may be passed on; anything else is dropped.
    let put_headers = put
        .children()
        .filter(|h| h.name() == "header")
        .filter_map(|h| {
            let name = h.attr("name")?;
            ["Authorization", "Cookie", "Expires"]
                .iter()
                .any(|allowed| allowed.eq_ignore_ascii_case(name))
                .then(|| (name.to_owned(), h.text().replace(['\r', '\n'], "")))
        })
        .collect();
    Some(UploadSlot {
        put_url,
        put_headers,
        get_url,
    })
}
