//! Call signalling between the stream and the engine's call cores
//! ([`crate::jingle::JingleCall`], one per call, owned by the engine): incoming Jingle IQ-sets
//! (XEP-0166) and XEP-0353 messages (live or as carbons) are reported as [`CallSignal`]s; the cores'
//! stanzas are sent with [`Client::send_call_stanza`], and the answers to their IQs come back
//! as events. Also the server's STUN/TURN services (XEP-0215).
//!
//! State owned here: none beyond the outstanding IQs in `Client::iqs`.

use std::time::Instant;

use xmpp_parsers::minidom::Element;

use super::iq::IqPurpose;
use super::{Client, bare_of};
use crate::event::CallSignal;
use crate::jingle::{Jingle, JingleMessage, Outgoing};

impl Client {
    /// Sends a stanza a call core produced. Its IQ-sets are remembered, so that their result
    /// or error comes back as [`CallSignal::IqResult`] / [`CallSignal::IqError`]
    /// (an IQ the server never answers fails with `remote-server-timeout`).
    pub fn send_call_stanza(&mut self, now: Instant, out: &Outgoing) {
        self.last_now = Some(now);
        if let Ok(el) = out.xml.parse::<Element>()
            && el.name() == "iq"
            && el.attr("type") == Some("set")
            && let Some(id) = el.attr("id")
        {
            let deadline = now + self.config.response_timeout;
            self.iqs
                .insert(id.to_owned(), (IqPurpose::Jingle, deadline));
        }
        self.send_stanza(out.xml.clone(), None);
    }

    /// Asks our server for STUN/TURN services (XEP-0215 §3.1); the answer comes as
    /// [`CallSignal::IceServers`] (empty if the server has none or refuses).
    pub fn request_ice_servers(&mut self, now: Instant) {
        let domain = self.domain.clone();
        self.send_iq(
            now,
            "get",
            Some(&domain),
            crate::jingle::caps::services_request(),
            IqPurpose::ExternalServices,
        );
    }

    /// A Jingle IQ-set: reported for the engine to route by `sid` (to the call's core, or to a
    /// new incoming call for `session-initiate`). The engine must answer it: the core does, and
    /// for an unknown session `jingle::session::iq_error(.., "item-not-found",
    /// Some("unknown-session"))`.
    pub(super) fn on_jingle_iq(&mut self, payload: &Element, id: &str, from: Option<&str>) {
        let Some(from) = from else {
            self.iq_error(None, id, "cancel", "bad-request");
            return;
        };
        let sid = payload.attr("sid").unwrap_or_default().to_owned();
        if sid.is_empty() {
            self.iq_error(Some(from), id, "cancel", "bad-request");
            return;
        }
        self.call_signals.push_back(CallSignal::Jingle {
            from: from.to_owned(),
            id: id.to_owned(),
            sid,
            action: payload.attr("action").unwrap_or_default().to_owned(),
            jingle: Jingle::from_element(payload),
        });
    }

    /// A message with a XEP-0353 element, live or unwrapped from a carbon (`sent`: a carbon of
    /// a message our other device sent).
    pub(super) fn on_call_message(&mut self, el: &Element, sent: bool) {
        let Some(result) = JingleMessage::from_message(el) else {
            return;
        };
        let message = match result {
            Ok(m) => m,
            Err(e) => {
                self.warn(format!("ignored a malformed call message: {e}"));
                return;
            }
        };
        let from = el.attr("from").unwrap_or_default().to_owned();
        let to = el.attr("to").unwrap_or_default().to_owned();
        // From our own account: another device of ours (a sent carbon, or an <accept/> it
        // sent to our bare JID).
        let ours = sent || (!from.is_empty() && bare_of(&from) == self.bare_jid());
        let peer = if sent { bare_of(&to) } else { bare_of(&from) };
        self.call_signals.push_back(CallSignal::Message {
            from,
            peer,
            ours,
            message,
        });
    }
}
