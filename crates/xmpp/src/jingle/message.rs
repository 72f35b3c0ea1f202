//! Jingle Message Initiation (XEP-0353, namespace `urn:xmpp:jingle-message:0`, version 0.6).
//!
//! The caller sends `<propose/>` in a `<message type='chat'/>` to the callee's *bare* JID, so
//! every device of the callee rings (and archives, and carbon-copies it). A device answers with
//! `<ringing/>` and then `<proceed/>` (to the caller's full JID, after which the caller sends
//! `session-initiate` to that device) or `<reject/>`; the caller can `<retract/>` before that.
//! After the session, `<finish/>` records how it ended. Because all of these go as chat
//! messages, carbons (XEP-0280) show the callee's other devices that one of them answered.
//!
//! Read here rather than with `xmpp_parsers::jingle_message::JingleMI`, which lacks
//! `<ringing/>` and `<finish/>` and takes only one `<description/>` in a propose.

use xmpp_parsers::minidom::Element;

use super::element::{Reason, ReasonText, reason_name};
use super::error::JingleError;
use super::ice::short;
use crate::ns;
use crate::xml::Xml;

/// One XEP-0353 element.
#[derive(Debug, Clone, PartialEq)]
pub enum JingleMessage {
    /// §3.1: the caller proposes a session with these media (`audio`, `video`).
    Propose {
        /// The session id; the later `session-initiate` uses it as its `sid`.
        id: String,
        /// The `media` of each `<description/>`.
        media: Vec<String>,
    },
    /// §3.2: a callee device is ringing.
    Ringing {
        /// The session id.
        id: String,
    },
    /// §3.3: a callee device takes the call; the caller sends it `session-initiate`.
    Proceed {
        /// The session id.
        id: String,
    },
    /// Older XEP-0353 versions: sent to the callee's own bare JID to tell its other devices.
    Accept {
        /// The session id.
        id: String,
    },
    /// §3.4: the callee declines.
    Reject {
        /// The session id.
        id: String,
        /// Why (`busy`, `decline`, ...).
        reason: Option<ReasonText>,
    },
    /// §3.5: the caller withdraws the proposal.
    Retract {
        /// The session id.
        id: String,
        /// Why (`cancel`, `timeout`, ...).
        reason: Option<ReasonText>,
    },
    /// §3.6: the session is over (for history on every device).
    Finish {
        /// The session id.
        id: String,
        /// How it ended.
        reason: Option<ReasonText>,
    },
}

impl JingleMessage {
    /// The XEP-0353 element of a `<message/>`, if it has one.
    pub fn from_message(message: &Element) -> Option<Result<Self, JingleError>> {
        message
            .children()
            .find(|c| c.has_ns(ns::JINGLE_MESSAGE))
            .map(Self::from_element)
    }

    /// Reads one element in the `urn:xmpp:jingle-message:0` namespace.
    pub fn from_element(el: &Element) -> Result<Self, JingleError> {
        if !el.has_ns(ns::JINGLE_MESSAGE) {
            return Err(JingleError::Malformed(format!(
                "<{}/> is not a Jingle message",
                el.name()
            )));
        }
        let id = el
            .attr("id")
            .filter(|id| !id.trim().is_empty())
            .ok_or_else(|| JingleError::Malformed(format!("<{}/> without an id", el.name())))?
            .to_owned();
        let reason = || {
            el.get_child("reason", ns::JINGLE)
                .map(|r| {
                    xmpp_parsers::jingle::ReasonElement::try_from(r.clone())
                        .map(|r| ReasonText {
                            text: r.texts.values().next().cloned(),
                            reason: r.reason,
                        })
                        .map_err(|e| JingleError::Malformed(format!("reason: {e}")))
                })
                .transpose()
        };
        Ok(match el.name() {
            "propose" => {
                let media: Vec<String> = el
                    .children()
                    .filter(|c| c.name() == "description")
                    .take(super::MAX_CONTENTS)
                    .filter_map(|c| c.attr("media").map(str::to_owned))
                    .collect();
                if media.is_empty() {
                    return Err(JingleError::Malformed(
                        "a propose without an RTP description".into(),
                    ));
                }
                JingleMessage::Propose { id, media }
            }
            "ringing" => JingleMessage::Ringing { id },
            "proceed" => JingleMessage::Proceed { id },
            "accept" => JingleMessage::Accept { id },
            "reject" => JingleMessage::Reject {
                id,
                reason: reason()?,
            },
            "retract" => JingleMessage::Retract {
                id,
                reason: reason()?,
            },
            "finish" => JingleMessage::Finish {
                id,
                reason: reason()?,
            },
            other => {
                return Err(JingleError::Malformed(format!(
                    "unknown Jingle message {}",
                    short(other)
                )));
            }
        })
    }

    /// The session id.
    pub fn id(&self) -> &str {
        match self {
            JingleMessage::Propose { id, .. }
            | JingleMessage::Ringing { id }
            | JingleMessage::Proceed { id }
            | JingleMessage::Accept { id }
            | JingleMessage::Reject { id, .. }
            | JingleMessage::Retract { id, .. }
            | JingleMessage::Finish { id, .. } => id,
        }
    }

    /// Writes the element.
    pub fn to_xml(&self) -> Xml {
        let (name, reason) = match self {
            JingleMessage::Propose { .. } => ("propose", None),
            JingleMessage::Ringing { .. } => ("ringing", None),
            JingleMessage::Proceed { .. } => ("proceed", None),
            JingleMessage::Accept { .. } => ("accept", None),
            JingleMessage::Reject { reason, .. } => ("reject", reason.as_ref()),
            JingleMessage::Retract { reason, .. } => ("retract", reason.as_ref()),
            JingleMessage::Finish { reason, .. } => ("finish", reason.as_ref()),
        };
        let mut x = Xml::ns(name, ns::JINGLE_MESSAGE).attr("id", self.id());
        if let JingleMessage::Propose { media, .. } = self {
            for m in media {
                x = x.child(Xml::ns("description", ns::JINGLE_RTP).attr("media", m));
            }
        }
        if let Some(r) = reason {
            x = x.child(reason_xml(&r.reason, r.text.as_deref()));
        }
        x
    }

    /// The whole `<message/>` stanza: type `chat` and a XEP-0334 `<store/>` hint, as §3
    /// requires so that the archive and carbons carry it.
    pub fn to_stanza(&self, to: &str, stanza_id: &str) -> String {
        Xml::ns("message", ns::CLIENT)
            .attr("to", to)
            .attr("type", "chat")
            .attr("id", stanza_id)
            .child(self.to_xml())
            .child(Xml::ns("store", ns::HINTS))
            .build()
    }
}

/// `<reason xmlns='urn:xmpp:jingle:1'><condition/><text/></reason>`.
pub(crate) fn reason_xml(reason: &Reason, text: Option<&str>) -> Xml {
    let condition = Element::from(reason.clone());
    let mut inner = Xml::ns("reason", ns::JINGLE);
    inner = match reason {
        Reason::AlternativeSession { .. } => inner.raw(&String::from(&condition)),
        _ => inner.child(Xml::new(static_name(&reason_name(reason)))),
    };
    if let Some(t) = text {
        inner = inner.child(Xml::new("text").text(t));
    }
    inner
}

/// `Xml::new` takes a static name; reasons are a closed set.
fn static_name(name: &str) -> &'static str {
    const NAMES: [&str; 17] = [
        "alternative-session",
        "busy",
        "cancel",
        "connectivity-error",
        "decline",
        "expired",
        "failed-application",
        "failed-transport",
        "general-error",
        "gone",
        "incompatible-parameters",
        "media-error",
        "security-error",
        "success",
        "timeout",
        "unsupported-applications",
        "unsupported-transports",
    ];
    NAMES
        .into_iter()
        .find(|n| *n == name)
        .unwrap_or("general-error")
}
