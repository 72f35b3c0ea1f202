//! The client stream state machine. See the crate docs for the event-loop contract.
//!
//! This file holds the [`Client`] (its configuration and state), the `handle_*` / `poll_*`
//! entry points, the dispatch of each incoming top-level element to the concern that handles
//! it, and the sending helpers every concern shares. The concerns, one module each, add their
//! own `impl Client` blocks:
//!
//! - `stream`: opening, SASL, binding, closing, stream errors (RFC 7395, RFC 6120 §4–§7);
//! - `sm`: stream management, acks and resumption (XEP-0198);
//! - `iq`: outstanding IQs and answering requests (RFC 6120 §8.2.3);
//! - `roster`, `presence`: RFC 6121 §2 and §3–§4;
//! - `message`: chat messages, receipts, chat states, carbons, corrections;
//! - `muc`: rooms (XEP-0045); `mam`: archive catch-up (XEP-0313);
//! - `disco`: service discovery and caps (XEP-0030, XEP-0115); `upload`: XEP-0363 slots;
//! - `jingle`: routing call signalling (XEP-0166 IQs, XEP-0353 messages) to and from the
//!   engine's call cores, and STUN/TURN discovery (XEP-0215).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tracing::{debug, trace};
use xmpp_parsers::jid::Jid;
use xmpp_parsers::minidom::Element;

use crate::XmppError;
use crate::event::*;
use crate::ns;
use crate::xml::Xml;

mod disco;
mod iq;
mod jingle;
mod mam;
mod message;
mod muc;
mod presence;
mod roster;
mod sm;
mod stream;
mod upload;

pub use mam::ArchiveStart;
pub use sm::ReceivedMark;

use disco::Disco;
use iq::IqPurpose;
use mam::ArchiveQuery;
use muc::Room;
use sm::SmState;
use stream::Phase;

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
    /// Disco features advertised besides the chat ones, e.g.
    /// [`crate::jingle::caps::call_features`] when audio works on this machine (XEP-0115:
    /// they change the caps `ver`, so set them before going online).
    pub extra_features: Vec<String>,
    /// Route call signalling to [`Client::poll_call_signal`]. Off: Jingle IQs are refused
    /// with `service-unavailable` (RFC 6120 §8.4) and call messages ignored, as before calls.
    pub calls: bool,
    /// Report to the server (XEP-0198 `h`) only the stanzas the owner confirmed handled with
    /// [`Client::confirm_handled`], rather than all received: an owner that keeps messages
    /// confirms once they are kept, so the server forgets nothing a crash could still lose.
    pub confirm_handled: bool,
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
            extra_features: Vec::new(),
            calls: false,
            confirm_handled: false,
        }
    }
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
    call_signals: VecDeque<CallSignal>,
    /// Stanzas written while not online, sent (in order) once the stream is usable.
    pending: VecDeque<(String, Option<(String, String)>)>,
    iqs: HashMap<String, (IqPurpose, Instant)>,
    negotiation_deadline: Option<Instant>,
    archive: HashMap<String, ArchiveQuery>,
    rooms: HashMap<String, Room>,
    presence: Option<String>,
    disco: Disco,
    closing: bool,
    /// The server answered our `<close/>` with its own (RFC 7395 §3.6): the stream is over on
    /// both sides and the WebSocket may close without the server taking it for a dropped
    /// connection (and holding the session for resumption).
    close_answered: bool,
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

fn looks_like_stanza(frame: &str) -> bool {
    let head = frame.trim_start();
    head.starts_with("<message") || head.starts_with("<presence") || head.starts_with("<iq")
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
            call_signals: VecDeque::new(),
            pending: VecDeque::new(),
            iqs: HashMap::new(),
            negotiation_deadline: None,
            archive: HashMap::new(),
            rooms: HashMap::new(),
            presence: None,
            disco: Disco::default(),
            closing: false,
            close_answered: false,
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

    /// After [`Client::close`]: the server has answered with its `<close/>`, so the
    /// WebSocket can be closed now (RFC 7395 §3.6). Until then the driver should keep
    /// reading, for a bounded time.
    pub fn close_answered(&self) -> bool {
        self.close_answered
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
        self.disco.upload_service.as_ref()
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
            self.answer_owed_ack();
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

    /// The next call signal (only with [`ClientConfig::calls`]).
    pub fn poll_call_signal(&mut self) -> Option<CallSignal> {
        self.call_signals.pop_front()
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
        self.close_answered = false;
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
        self.on_ack_timer(now);
        if self.negotiation_deadline.is_some_and(|d| now >= d) {
            self.negotiation_deadline = None;
            self.fail(XmppError::Timeout(
                "the server did not answer during login".into(),
            ));
            return;
        }
        let expired: Vec<_> = self.iqs.extract_if(|_, (_, at)| now >= *at).collect();
        for (id, (purpose, _)) in expired {
            self.iq_failed(now, &id, purpose, "remote-server-timeout".into());
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
        if crate::xml::nests_deeper_than(trimmed, crate::xml::MAX_NESTING) {
            // Dropped like an oversized stanza (and counted for the same reason): parsing it
            // would recurse once per level.
            if self.sm.counting_in && looks_like_stanza(frame) {
                self.sm.inbound += 1;
            }
            self.warn(format!(
                "dropped a stanza nested deeper than {} elements",
                crate::xml::MAX_NESTING
            ));
            return;
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

    /// Routes one top-level element to the concern that handles it.
    fn handle_element(&mut self, now: Instant, el: Element) {
        let ns = el.ns();
        match (el.name(), ns.as_str()) {
            ("open", ns::FRAMING) => self.on_open(),
            ("close", ns::FRAMING) => self.on_close(&el),
            ("features", ns::STREAM) => self.on_features(now, el),
            ("error", ns::STREAM) => self.on_stream_error(&el),
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

    // ----- internals shared by the concerns -----

    fn new_id(&mut self) -> String {
        let a: u64 = self.rng.random();
        let b: u32 = self.rng.random();
        format!("{a:016x}{b:08x}")
    }

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

    /// Sends, in order, what was written while the stream was not usable.
    fn flush_pending(&mut self) {
        while let Some((xml, message)) = self.pending.pop_front() {
            self.transmit_stanza(xml, message);
        }
    }

    fn warn(&mut self, text: String) {
        debug!(%text, "xmpp warning");
        self.events.push_back(XmppEvent::Warning(text));
    }

    fn is_from_self_account(&self, from: Option<&str>) -> bool {
        match from {
            None => true,
            Some(f) => bare_of(f) == self.bare_jid() || f == self.domain,
        }
    }
}
