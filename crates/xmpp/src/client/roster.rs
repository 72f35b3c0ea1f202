//! The roster (RFC 6121 §2): the answer to the roster get every new session starts with (§2.2,
//! sent by `stream.rs`), adding, renaming and removing contacts (§2.3, §2.5), and roster pushes
//! from the server (§2.1.6).
//!
//! State owned here: none; the roster itself lives with the owner, which gets it as
//! [`XmppEvent::Roster`] and [`XmppEvent::RosterPush`].

use std::time::Instant;

use xmpp_parsers::jid::Jid;
use xmpp_parsers::minidom::Element;

use super::iq::IqPurpose;
use super::{Client, bare_of, checked_jid, ns};
use crate::XmppError;
use crate::event::*;
use crate::xml::Xml;

impl Client {
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

    /// The answer to [`IqPurpose::RosterGet`].
    pub(super) fn on_roster(&mut self, el: &Element) {
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

    /// A roster push: `<iq type='set'><query xmlns='jabber:iq:roster'/></iq>`.
    pub(super) fn on_roster_push(&mut self, payload: &Element, id: &str, from: Option<&str>) {
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
