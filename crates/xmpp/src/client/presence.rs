//! Presence (RFC 6121 §3, §4): our own broadcast presence (§4.2) and directed presence (§4.6),
//! both with XEP-0115 caps; subscription requests and answers (§3); and presence received from
//! contacts. Presence from a room we are in is handed to `muc.rs`, caps we have not seen yet to
//! `disco.rs`.
//!
//! State owned here: `Client::presence`, the last presence we set, sent again on every new
//! session.

use std::time::Instant;

use xmpp_parsers::minidom::Element;

use super::{Client, bare_of, checked_jid, child_text, ns, stanza_error_condition};
use crate::XmppError;
use crate::event::*;
use crate::xml::Xml;

impl Client {
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

    pub(super) fn on_presence(&mut self, now: Instant, el: Element) {
        let Some(from) = el.attr("from").map(str::to_owned) else {
            return; // our own broadcast reflected without from: nothing to learn
        };
        let bare = bare_of(&from);
        let kind = el.attr("type").unwrap_or("available").to_owned();
        if self.on_room_presence(now, &from, &bare, &kind, &el) {
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
                {
                    self.learn_caps(now, &from, node, ver);
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
}
