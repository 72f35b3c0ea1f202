//! One `<jingle/>` element (XEP-0166 §7), read into a plain model and written back.
//!
//! Reading goes through `xmpp_parsers::jingle::Jingle` for everything but the transports (see
//! [`super::ice`] for why those are read here), then checks what a call needs: only RTP
//! descriptions (XEP-0167), only ICE-UDP transports (XEP-0176), bounded counts.

use xmpp_parsers::jingle::{Description, Jingle as ParsedJingle};
use xmpp_parsers::jingle_grouping::Semantics as GroupSemantics;
use xmpp_parsers::minidom::{Element, NSChoice};

pub use xmpp_parsers::jingle::{Action, Creator, Reason, Senders};
pub use xmpp_parsers::jingle_rtp::Description as RtpDescription;

use super::error::JingleError;
use super::ice::{IceUdpTransport, short};
use super::{MAX_CONTENTS, MAX_PAYLOAD_TYPES, MAX_SOURCES};
use crate::ns;
use crate::xml::Xml;

/// One `<content/>` (XEP-0166 §7.3) of a call: an RTP description and an ICE-UDP transport.
#[derive(Debug, Clone, PartialEq)]
pub struct Content {
    /// Which party created the content (content names are unique per creator).
    pub creator: Creator,
    /// The content name; it is the SDP `a=mid` (as Conversations and browsers map it).
    pub name: String,
    /// Who sends media in it (XEP-0166 §7.3: absolute, not relative to the describer).
    pub senders: Senders,
    /// The RTP description (XEP-0167 §4), absent in `transport-info` and `content-remove`.
    pub description: Option<RtpDescription>,
    /// The ICE-UDP transport, absent in `content-remove` and `session-info`.
    pub transport: Option<IceUdpTransport>,
}

impl Content {
    /// A content with neither description nor transport (for `content-remove`).
    pub fn bare(creator: Creator, name: impl Into<String>) -> Self {
        Content {
            creator,
            name: name.into(),
            senders: Senders::Both,
            description: None,
            transport: None,
        }
    }
}

/// XEP-0167 §7 session-info payloads.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionInfo {
    /// The call is active again (after hold, or when the media starts).
    Active,
    /// The sender put the call on hold.
    Hold,
    /// The sender took the hold back.
    Unhold,
    /// The sender muted a content (`name` `None`: all of its contents).
    Mute {
        /// Creator of the content, as written.
        creator: Option<Creator>,
        /// The content name.
        name: Option<String>,
    },
    /// The sender unmuted.
    Unmute {
        /// Creator of the content.
        creator: Option<Creator>,
        /// The content name.
        name: Option<String>,
    },
    /// The responder's device is ringing.
    Ringing,
}

/// A reason (XEP-0166 §7.4) with its optional human-readable text.
#[derive(Debug, Clone, PartialEq)]
pub struct ReasonText {
    /// The condition.
    pub reason: Reason,
    /// `<text/>`, if any.
    pub text: Option<String>,
}

/// A `<jingle/>` element.
#[derive(Debug, Clone, PartialEq)]
pub struct Jingle {
    /// What it does.
    pub action: Action,
    /// The session id.
    pub sid: String,
    /// `initiator` attribute (full JID), when written.
    pub initiator: Option<String>,
    /// `responder` attribute (full JID), when written.
    pub responder: Option<String>,
    /// The contents, in order.
    pub contents: Vec<Content>,
    /// `<reason/>` (session-terminate, content-reject, ...).
    pub reason: Option<ReasonText>,
    /// XEP-0338 `<group semantics='BUNDLE'/>`: the bundled content names, in order.
    pub bundle: Option<Vec<String>>,
    /// XEP-0167 §7 payloads of a `session-info`.
    pub info: Vec<SessionInfo>,
}

impl Jingle {
    /// An element with nothing but its action and session id.
    pub fn new(action: Action, sid: impl Into<String>) -> Self {
        Jingle {
            action,
            sid: sid.into(),
            initiator: None,
            responder: None,
            contents: Vec::new(),
            reason: None,
            bundle: None,
            info: Vec::new(),
        }
    }

    /// Reads a `<jingle xmlns='urn:xmpp:jingle:1'/>` element.
    pub fn from_element(el: &Element) -> Result<Self, JingleError> {
        if !el.is("jingle", ns::JINGLE) {
            return Err(JingleError::Malformed(format!(
                "<{}/> in {} is not <jingle/>",
                el.name(),
                el.ns()
            )));
        }
        let mut el = el.clone();
        let mut transports = Vec::new();
        for child in el.children_mut() {
            if !child.is("content", ns::JINGLE) {
                continue;
            }
            if transports.len() == MAX_CONTENTS {
                return Err(JingleError::TooMany {
                    what: "contents",
                    max: MAX_CONTENTS,
                });
            }
            let name = child.attr("name").unwrap_or_default().to_owned();
            let transport = match child.remove_child("transport", NSChoice::Any) {
                None => None,
                Some(t) if t.ns() == ns::JINGLE_ICE_UDP => Some(IceUdpTransport::from_element(&t)?),
                Some(t) => {
                    return Err(JingleError::UnknownTransport {
                        content: name,
                        namespace: t.ns(),
                    });
                }
            };
            transports.push(transport);
            accept_valueless_parameters(child);
        }
        let parsed =
            ParsedJingle::try_from(el).map_err(|e| JingleError::Malformed(e.to_string()))?;
        let mut contents = Vec::with_capacity(parsed.contents.len());
        for (content, transport) in parsed.contents.into_iter().zip(transports) {
            let name = content.name.0;
            let description = match content.description {
                None => None,
                Some(Description::Rtp(d)) => Some(d),
                Some(Description::Unknown(d)) => {
                    return Err(JingleError::UnknownDescription {
                        content: name,
                        namespace: d.ns(),
                    });
                }
            };
            if let Some(d) = &description {
                check_description(&name, d)?;
            }
            if name.is_empty() || name.contains(char::is_whitespace) {
                // It becomes an SDP a=mid, a token (RFC 5888 §4).
                return Err(JingleError::BadValue {
                    what: "content name",
                    reason: short(&name),
                });
            }
            contents.push(Content {
                creator: content.creator,
                name,
                senders: content.senders,
                description,
                transport,
            });
        }
        let bundle = parsed
            .group
            .filter(|g| g.semantics == GroupSemantics::Bundle)
            .map(|g| g.contents.into_iter().map(|c| c.name.0).collect());
        let reason = parsed.reason.map(|r| ReasonText {
            text: r
                .texts
                .get("en")
                .or_else(|| r.texts.values().next())
                .cloned(),
            reason: r.reason,
        });
        let info = parsed
            .other
            .iter()
            .filter(|e| e.has_ns(ns::JINGLE_RTP_INFO))
            .filter_map(session_info)
            .collect();
        Ok(Jingle {
            action: parsed.action,
            sid: parsed.sid.0,
            initiator: parsed.initiator.map(|j| j.to_string()),
            responder: parsed.responder.map(|j| j.to_string()),
            contents,
            reason,
            bundle,
            info,
        })
    }

    /// The content named `name`.
    pub fn content(&self, name: &str) -> Option<&Content> {
        self.contents.iter().find(|c| c.name == name)
    }

    /// Writes the element.
    pub fn to_xml(&self) -> Xml {
        let mut x = Xml::ns("jingle", ns::JINGLE)
            .attr("action", action_name(&self.action))
            .attr_opt("initiator", self.initiator.as_deref())
            .attr_opt("responder", self.responder.as_deref())
            .attr("sid", &self.sid);
        for content in &self.contents {
            let mut c = Xml::new("content")
                .attr("creator", creator_name(&content.creator))
                .attr("name", &content.name)
                .attr("senders", senders_name(&content.senders));
            if let Some(d) = &content.description {
                c = c.raw(&String::from(&Element::from(d.clone())));
            }
            if let Some(t) = &content.transport {
                c = c.child(t.to_xml());
            }
            x = x.child(c);
        }
        if let Some(mids) = &self.bundle {
            let mut g = Xml::ns("group", ns::JINGLE_GROUPING).attr("semantics", "BUNDLE");
            for mid in mids {
                g = g.child(Xml::new("content").attr("name", mid));
            }
            x = x.child(g);
        }
        if let Some(r) = &self.reason {
            x = x.child(super::message::reason_xml(&r.reason, r.text.as_deref()));
        }
        for info in &self.info {
            x = x.child(session_info_xml(info));
        }
        x
    }
}

fn check_description(content: &str, d: &RtpDescription) -> Result<(), JingleError> {
    if d.payload_types.len() > MAX_PAYLOAD_TYPES {
        return Err(JingleError::TooMany {
            what: "payload types in one description",
            max: MAX_PAYLOAD_TYPES,
        });
    }
    if d.ssrcs.len() + d.ssrc_groups.len() > MAX_SOURCES || d.hdrexts.len() > MAX_SOURCES {
        return Err(JingleError::TooMany {
            what: "sources or header extensions in one description",
            max: MAX_SOURCES,
        });
    }
    for pt in &d.payload_types {
        if pt.id > 127 {
            return Err(JingleError::BadValue {
                what: "payload type id",
                reason: format!("{} in content {}", pt.id, short(content)),
            });
        }
        if pt.parameters.len() + pt.rtcp_fbs.len() > MAX_SOURCES {
            return Err(JingleError::TooMany {
                what: "parameters of one payload type",
                max: MAX_SOURCES,
            });
        }
    }
    Ok(())
}

fn session_info(el: &Element) -> Option<SessionInfo> {
    let creator = el.attr("creator").and_then(|c| c.parse().ok());
    let name = el.attr("name").map(str::to_owned);
    Some(match el.name() {
        "active" => SessionInfo::Active,
        "hold" => SessionInfo::Hold,
        "unhold" => SessionInfo::Unhold,
        "ringing" => SessionInfo::Ringing,
        "mute" => SessionInfo::Mute { creator, name },
        "unmute" => SessionInfo::Unmute { creator, name },
        _ => return None,
    })
}

fn session_info_xml(info: &SessionInfo) -> Xml {
    let (name, creator, content) = match info {
        SessionInfo::Active => ("active", None, None),
        SessionInfo::Hold => ("hold", None, None),
        SessionInfo::Unhold => ("unhold", None, None),
        SessionInfo::Ringing => ("ringing", None, None),
        SessionInfo::Mute { creator, name } => ("mute", creator.as_ref(), name.as_deref()),
        SessionInfo::Unmute { creator, name } => ("unmute", creator.as_ref(), name.as_deref()),
    };
    Xml::ns(name, ns::JINGLE_RTP_INFO)
        .attr_opt("creator", creator.map(creator_name))
        .attr_opt("name", content)
}

/// The wire name of an action.
pub fn action_name(action: &Action) -> &'static str {
    match action {
        Action::ContentAccept => "content-accept",
        Action::ContentAdd => "content-add",
        Action::ContentModify => "content-modify",
        Action::ContentReject => "content-reject",
        Action::ContentRemove => "content-remove",
        Action::DescriptionInfo => "description-info",
        Action::SecurityInfo => "security-info",
        Action::SessionAccept => "session-accept",
        Action::SessionInfo => "session-info",
        Action::SessionInitiate => "session-initiate",
        Action::SessionTerminate => "session-terminate",
        Action::TransportAccept => "transport-accept",
        Action::TransportInfo => "transport-info",
        Action::TransportReject => "transport-reject",
        Action::TransportReplace => "transport-replace",
    }
}

/// The wire name of a creator.
pub fn creator_name(creator: &Creator) -> &'static str {
    match creator {
        Creator::Initiator => "initiator",
        Creator::Responder => "responder",
    }
}

/// The wire name of a senders value.
pub fn senders_name(senders: &Senders) -> &'static str {
    match senders {
        Senders::Both => "both",
        Senders::Initiator => "initiator",
        Senders::Responder => "responder",
        Senders::None => "none",
    }
}

/// Gives every payload-type `<parameter/>` without a `value` an empty one. An SDP format
/// parameter that is a bare token (RED's `111/111`, telephone-event's `0-16`) has no value, and
/// browser libraries (stanza) write it as a name alone; XEP-0167 says `value` is required and
/// xmpp-parsers refuses the whole element without it, which would refuse the call. The SDP
/// mapping writes a name with an empty value back as the bare token.
fn accept_valueless_parameters(content: &mut Element) {
    use xmpp_parsers::minidom::rxml;
    for description in content.children_mut() {
        if !description.is("description", ns::JINGLE_RTP) {
            continue;
        }
        for payload in description.children_mut() {
            if !payload.is("payload-type", ns::JINGLE_RTP) {
                continue;
            }
            for parameter in payload.children_mut() {
                if parameter.is("parameter", ns::JINGLE_RTP)
                    && parameter.attr("value").is_none()
                    && let Ok(value) = rxml::NcName::try_from("value")
                {
                    parameter.set_attr(rxml::Namespace::NONE, value, "");
                }
            }
        }
    }
}

/// The wire name of a reason condition.
pub fn reason_name(reason: &Reason) -> String {
    Element::from(reason.clone()).name().to_owned()
}
