//! Multi-user chat (XEP-0045): joining (§7.2) and leaving (§7.14) rooms, nickname changes
//! (§7.6), room messages (§7.4, with XEP-0308 corrections), occupant presence and our own
//! (status codes 110, 201, 303), and unlocking a room we just created (§10.1.2).
//!
//! State owned here: `Client::rooms`, one [`Room`] per room we are in or joining, kept across
//! reconnections so the rooms are joined again on every new session.

use std::time::Instant;

use xmpp_parsers::minidom::Element;

use super::iq::IqPurpose;
use super::{Client, bare_of, checked_jid, ns, resource_of, stanza_error_condition};
use crate::XmppError;
use crate::event::*;
use crate::xml::Xml;

#[derive(Debug, Clone)]
pub(super) struct Room {
    pub(super) nick: String,
    pub(super) joined: bool,
    history: u32,
}

impl Client {
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

    pub(super) fn send_join(&mut self, room: &str) {
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

    /// Presence from `from` (bare JID `bare`) when `bare` is a room we are in or joining: an
    /// occupant's presence, or the room refusing us. Returns whether it was handled here.
    pub(super) fn on_room_presence(
        &mut self,
        now: Instant,
        from: &str,
        bare: &str,
        kind: &str,
        el: &Element,
    ) -> bool {
        if let Some(x) = el.get_child("x", ns::MUC_USER).cloned()
            && self.rooms.contains_key(bare)
        {
            self.on_occupant(now, from, bare, kind, &x);
            return true;
        }
        if kind == "error" && self.rooms.contains_key(bare) {
            let condition = stanza_error_condition(el);
            self.rooms.remove(bare);
            self.events.push_back(XmppEvent::RoomError {
                room: bare.to_owned(),
                condition,
            });
            return true;
        }
        false
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
                    // 303 is a nick change: we are still in the room under the new nick. While
                    // we are joining, an unavailable self-presence ends an earlier occupancy
                    // (of a session taken over from an earlier run), not the one we asked for:
                    // a refused join is a presence error.
                    if !codes.contains(&"303") && r.joined {
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
}
