//! The ICE-UDP transport (XEP-0176) with its DTLS-SRTP fingerprint (XEP-0320).
//!
//! `xmpp-parsers` 0.23 has a `jingle_ice_udp::Transport`, but its `ufrag`, `pwd`,
//! `candidates` and `fingerprint` fields are private with no getters, and its `Candidate`
//! requires an IP address (so one mDNS or malformed candidate fails the whole `<jingle/>`).
//! So the transport is read and written here; the fingerprint inside it is
//! `xmpp_parsers::jingle_dtls_srtp::Fingerprint`, whose fields are public.

use std::net::IpAddr;

use xmpp_parsers::hashes::Algo;
use xmpp_parsers::jingle_dtls_srtp::{Fingerprint, Setup};
use xmpp_parsers::minidom::Element;

use super::MAX_CANDIDATES;
use super::error::JingleError;
use crate::ns;
use crate::xml::Xml;

/// `<transport xmlns='urn:xmpp:jingle:transports:ice-udp:1'/>` (XEP-0176 §5.1).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct IceUdpTransport {
    /// ICE username fragment; may be absent in a `transport-info` that only adds candidates.
    pub ufrag: Option<String>,
    /// ICE password.
    pub pwd: Option<String>,
    /// Candidates (XEP-0176 §5.2), in the order received.
    pub candidates: Vec<IceCandidate>,
    /// The DTLS certificate fingerprint and role (XEP-0320 §3).
    pub fingerprint: Option<Fingerprint>,
}

/// `<candidate/>` (XEP-0176 §5.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IceCandidate {
    /// Component: 1 RTP, 2 RTCP (only 1 with rtcp-mux).
    pub component: u8,
    /// ICE foundation.
    pub foundation: String,
    /// Generation (XEP-0176 §5.2); 0 for the first gathering.
    pub generation: u8,
    /// A unique id for the candidate in the session.
    pub id: String,
    /// The address. XEP-0176 says an IP address; a host name is kept (and mapped) as written.
    pub ip: String,
    /// The port.
    pub port: u16,
    /// ICE priority.
    pub priority: u32,
    /// `udp` (the only protocol XEP-0176 defines).
    pub protocol: String,
    /// `host`, `srflx`, `prflx` or `relay`.
    pub kind: String,
    /// Related address (srflx/relay base).
    pub rel_addr: Option<String>,
    /// Related port.
    pub rel_port: Option<u16>,
    /// Network index.
    pub network: Option<u8>,
}

fn attr_number<T: std::str::FromStr>(
    el: &Element,
    name: &'static str,
) -> Result<Option<T>, JingleError> {
    match el.attr(name) {
        None => Ok(None),
        Some(text) => text
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| JingleError::BadValue {
                what: name,
                reason: format!("not a number: {}", short(text)),
            }),
    }
}

/// A bounded quotation of peer text for an error message.
pub(crate) fn short(text: &str) -> String {
    let cut: String = text.chars().take(40).collect();
    format!("{cut:?}")
}

impl IceCandidate {
    fn from_element(el: &Element) -> Result<Self, JingleError> {
        let required = |name: &'static str| -> Result<String, JingleError> {
            el.attr(name)
                .filter(|v| !v.trim().is_empty())
                .map(|v| v.trim().to_owned())
                .ok_or_else(|| JingleError::BadValue {
                    what: "candidate",
                    reason: format!("no `{name}`"),
                })
        };
        let token = |name: &'static str| -> Result<String, JingleError> {
            let value = required(name)?;
            if value.contains(|c: char| c.is_whitespace() || c.is_control()) {
                return Err(JingleError::BadValue {
                    what: "candidate",
                    reason: format!("`{name}` {}", short(&value)),
                });
            }
            Ok(value)
        };
        let kind = required("type")?;
        if !matches!(kind.as_str(), "host" | "srflx" | "prflx" | "relay") {
            return Err(JingleError::BadValue {
                what: "candidate type",
                reason: short(&kind),
            });
        }
        let ip = token("ip")?;
        Ok(IceCandidate {
            component: attr_number(el, "component")?.unwrap_or(1),
            foundation: token("foundation")?,
            // Older peers omit generation and id; both have obvious defaults.
            generation: attr_number(el, "generation")?.unwrap_or(0),
            id: el.attr("id").unwrap_or_default().to_owned(),
            ip,
            port: attr_number(el, "port")?.ok_or_else(|| JingleError::BadValue {
                what: "candidate",
                reason: "no `port`".into(),
            })?,
            priority: attr_number(el, "priority")?.ok_or_else(|| JingleError::BadValue {
                what: "candidate",
                reason: "no `priority`".into(),
            })?,
            protocol: match el.attr("protocol") {
                None => "udp".to_owned(),
                Some(_) => token("protocol")?,
            },
            kind,
            rel_addr: match el.attr("rel-addr") {
                None => None,
                Some(_) => Some(token("rel-addr")?),
            },
            rel_port: attr_number(el, "rel-port")?,
            network: attr_number(el, "network")?,
        })
    }

    fn to_xml(&self) -> Xml {
        Xml::new("candidate")
            .attr("component", &self.component.to_string())
            .attr("foundation", &self.foundation)
            .attr("generation", &self.generation.to_string())
            .attr("id", &self.id)
            .attr("ip", &self.ip)
            .attr("port", &self.port.to_string())
            .attr("priority", &self.priority.to_string())
            .attr("protocol", &self.protocol)
            .attr("type", &self.kind)
            .attr_opt("rel-addr", self.rel_addr.as_deref())
            .attr_opt("rel-port", self.rel_port.map(|p| p.to_string()).as_deref())
            .attr_opt("network", self.network.map(|n| n.to_string()).as_deref())
    }

    /// True if the address is an IP address, as XEP-0176 requires (an mDNS `.local` name is
    /// not: most Jingle peers cannot resolve it).
    pub fn has_ip_address(&self) -> bool {
        self.ip.parse::<IpAddr>().is_ok()
    }
}

impl IceUdpTransport {
    /// Reads a `<transport/>` in the ICE-UDP namespace.
    pub fn from_element(el: &Element) -> Result<Self, JingleError> {
        // RFC 8839 §5.4: ice-char is ALPHA / DIGIT / "+" / "/".
        let credential = |name: &'static str| -> Result<Option<String>, JingleError> {
            match el.attr(name) {
                None => Ok(None),
                Some(v)
                    if !v.is_empty()
                        && v.len() <= 256
                        && v.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/') =>
                {
                    Ok(Some(v.to_owned()))
                }
                Some(v) => Err(JingleError::BadValue {
                    what: name,
                    reason: short(v),
                }),
            }
        };
        let mut transport = IceUdpTransport {
            ufrag: credential("ufrag")?,
            pwd: credential("pwd")?,
            ..Default::default()
        };
        for child in el.children() {
            if child.is("candidate", ns::JINGLE_ICE_UDP) {
                if transport.candidates.len() == MAX_CANDIDATES {
                    return Err(JingleError::TooMany {
                        what: "candidates in one transport",
                        max: MAX_CANDIDATES,
                    });
                }
                transport
                    .candidates
                    .push(IceCandidate::from_element(child)?);
            } else if child.is("fingerprint", ns::JINGLE_DTLS) && transport.fingerprint.is_none() {
                transport.fingerprint = Some(read_fingerprint(child)?);
            }
            // Anything else (XEP-0176 <remote-candidate/>, XEP-0343 <sctpmap/>) is ignored.
        }
        Ok(transport)
    }

    /// Writes the element.
    pub fn to_xml(&self) -> Xml {
        let mut x = Xml::ns("transport", ns::JINGLE_ICE_UDP)
            .attr_opt("ufrag", self.ufrag.as_deref())
            .attr_opt("pwd", self.pwd.as_deref());
        if let Some(fp) = &self.fingerprint {
            x = x.raw(&String::from(&Element::from(fp.clone())));
        }
        for c in &self.candidates {
            x = x.child(c.to_xml());
        }
        x
    }
}

/// Reads `<fingerprint hash setup>AB:CD:...</fingerprint>` (XEP-0320 §3).
///
/// Not with `Fingerprint::try_from`: `xmpp-parsers` 0.23 decodes the hex with `assert!`s, so
/// a peer's `A:B` or `ABC` would panic the client. The hex is checked here first.
fn read_fingerprint(el: &Element) -> Result<Fingerprint, JingleError> {
    let bad = |reason: String| JingleError::BadValue {
        what: "fingerprint",
        reason,
    };
    let hash: Algo = el
        .attr("hash")
        .ok_or_else(|| bad("no `hash`".into()))?
        .parse()
        .map_err(|_| bad("bad `hash`".into()))?;
    let setup: Setup = el
        .attr("setup")
        .ok_or_else(|| bad("no `setup`".into()))?
        .parse()
        .map_err(|_| {
            bad(format!(
                "bad `setup` {}",
                short(el.attr("setup").unwrap_or_default())
            ))
        })?;
    let value = colon_hex_bytes(el.text().trim()).ok_or_else(|| bad(short(&el.text())))?;
    Ok(Fingerprint { hash, setup, value })
}

/// Bytes of `AB:CD:...` (RFC 8122 §5: two hex digits per byte, colons between); `None` if the
/// text is anything else, or longer than any certificate hash (64 bytes for SHA-512).
pub(crate) fn colon_hex_bytes(text: &str) -> Option<Vec<u8>> {
    if text.is_empty() || text.len() > 64 * 3 {
        return None;
    }
    text.split(':')
        .map(|pair| {
            (pair.len() == 2 && pair.bytes().all(|b| b.is_ascii_hexdigit()))
                .then(|| u8::from_str_radix(pair, 16).ok())
                .flatten()
        })
        .collect()
}

/// The SDP `a=setup` value of a XEP-0320 role.
pub(crate) fn setup_to_sdp(setup: &Setup) -> lyrebird_sdp::Setup {
    match setup {
        Setup::Active => lyrebird_sdp::Setup::Active,
        Setup::Passive => lyrebird_sdp::Setup::Passive,
        Setup::Actpass => lyrebird_sdp::Setup::ActPass,
    }
}

/// The XEP-0320 role of an SDP `a=setup` (XEP-0320 has no `holdconn`).
pub(crate) fn setup_from_sdp(setup: lyrebird_sdp::Setup) -> Result<Setup, JingleError> {
    Ok(match setup {
        lyrebird_sdp::Setup::Active => Setup::Active,
        lyrebird_sdp::Setup::Passive => Setup::Passive,
        lyrebird_sdp::Setup::ActPass => Setup::Actpass,
        lyrebird_sdp::Setup::HoldConn => {
            return Err(JingleError::Sdp(
                "a=setup:holdconn has no Jingle form".into(),
            ));
        }
    })
}
