//! Messages (RFC 6121 §5): sending 1:1 chat messages with an origin-id (XEP-0359), a receipt
//! request (XEP-0184) and `<active/>` (XEP-0085), corrections (XEP-0308), links (XEP-0066) and
//! standalone chat states (XEP-0085 §5, not stored per XEP-0334); and every message received,
//! live, as a carbon (XEP-0280, trusted only from our own account) or unwrapped from an archive
//! result by `mam.rs`: receipts, chat states, room subjects, errors for messages we sent, and
//! the one stable id that makes the same message one row in history wherever it came from.
//!
//! State owned here: none; what a message needs from elsewhere (our room nicks) it reads.

use std::time::Instant;

use xmpp_parsers::minidom::Element;

use super::{Client, bare_of, checked_jid, child_text, ns, resource_of, stanza_error_condition};
use crate::event::*;
use crate::xml::Xml;
use crate::{XmppError, time};

impl Client {
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

    pub(super) fn on_message(&mut self, now: Instant, el: Element) {
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
            self.on_archive_result(now, from.as_deref(), result);
            return;
        }
        let outgoing = false;
        self.on_chat_message(now, &el, MessageOrigin::Live, outgoing, None);
    }

    /// Handles a message (possibly unwrapped from a carbon or archive result). Returns whether
    /// it had a body (was reported as a message).
    pub(super) fn on_chat_message(
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
        if kind != MessageKind::Groupchat
            && !matches!(origin, MessageOrigin::Archive { .. })
            && el.children().any(|c| c.has_ns(ns::JINGLE_MESSAGE))
        {
            if self.config.calls {
                self.on_call_message(el, outgoing);
            }
            return false;
        }
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
        let receipt_id = (live
            && kind != MessageKind::Groupchat
            && el.has_child("request", ns::RECEIPTS)
            && !from.is_empty())
        .then(|| el.attr("id").filter(|id| !id.is_empty()))
        .flatten()
        .map(str::to_owned);
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
            receipt_id,
        };
        self.events.push_back(XmppEvent::Message(message));
        true
    }

    /// XEP-0184: tells the sender of `message` that it arrived, if it asked to hear so.
    pub fn send_receipt(&mut self, message: &ChatMessage) {
        let Some(id) = message.receipt_id.as_deref() else {
            return;
        };
        let xml = Xml::ns("message", ns::CLIENT)
            .attr("to", &message.from)
            .attr("type", "chat")
            .child(Xml::ns("received", ns::RECEIPTS).attr("id", id))
            .child(Xml::ns("store", ns::HINTS))
            .build();
        self.send_stanza(xml, None);
    }
}

/// The message inside a carbon (XEP-0280) or archive result (XEP-0313), both wrapped in a
/// XEP-0297 `<forwarded/>`.
pub(super) fn forwarded_message(wrapper: &Element) -> Option<&Element> {
    wrapper
        .get_child("forwarded", ns::FORWARD)
        .and_then(|f| f.get_child("message", ns::CLIENT))
}
