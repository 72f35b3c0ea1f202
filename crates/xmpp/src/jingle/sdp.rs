//! Jingle RTP sessions ↔ SDP, for a WebRTC media engine that speaks SDP offer/answer.
//!
//! One content is one media section, read against the XEPs:
//!
//! | Jingle                                                | SDP                                   |
//! |-------------------------------------------------------|---------------------------------------|
//! | content `name` (XEP-0166 §7.3)                        | `a=mid`                               |
//! | `senders` + who describes                             | `a=sendrecv/sendonly/recvonly/inactive` |
//! | `<description media>` (XEP-0167 §4)                   | `m=<media> 9 UDP/TLS/RTP/SAVPF <pts>` |
//! | `<payload-type id name clockrate channels>`           | `a=rtpmap:<id> <name>/<rate>[/<ch>]`  |
//! | `<parameter name value>`                              | `a=fmtp:<id> name=value;...`          |
//! | `ptime` / `maxptime`                                  | `a=ptime` / `a=maxptime`              |
//! | `<rtcp-fb type subtype>` (XEP-0293 §4)                | `a=rtcp-fb:<id> type subtype`         |
//! | `<rtp-hdrext id uri senders>` (XEP-0294 §4)           | `a=extmap:<id>[/dir] <uri>`           |
//! | `<rtcp-mux/>` (XEP-0167 §5)                           | `a=rtcp-mux`                          |
//! | `<source ssrc><parameter/>` (XEP-0339 §3.1)           | `a=ssrc:<ssrc> <name>[:<value>]`      |
//! | `<ssrc-group semantics>` (XEP-0339 §3.2)              | `a=ssrc-group:<semantics> <ssrc>...`  |
//! | transport `ufrag` / `pwd` (XEP-0176 §5.1)             | `a=ice-ufrag` / `a=ice-pwd`           |
//! | `<candidate/>` (XEP-0176 §5.2)                        | `a=candidate`                         |
//! | `<fingerprint hash setup>` (XEP-0320 §3)              | `a=fingerprint` + `a=setup`           |
//! | `<group semantics='BUNDLE'>` (XEP-0338 §3)            | `a=group:BUNDLE <mids>`               |
//!
//! Direction is the one mapping that needs context: SDP writes it from the describing side's
//! point of view, Jingle's `senders` names parties. So every function takes the `describer`:
//! the party (initiator or responder) whose description it is.
//!
//! Peers that do not bundle (Dino: one ICE transport per content) simply give each section its
//! own credentials and candidates, and no `a=group`; nothing here assumes a shared transport.
//!
//! Not mapped: XEP-0167 `<bandwidth/>` (its fields are private in `xmpp-parsers` 0.23),
//! data channels (`m=application`, XEP-0343), and `a=rtcp-fb:*` is expanded onto each payload
//! type (the description-level `<rtcp-fb/>` of XEP-0293 §4 has no field in `xmpp-parsers`).

use lyrebird_sdp::{
    Attribute, Candidate, Connection, Direction, Fingerprint as SdpFingerprint, Fmtp, Group,
    MediaDescription, MediaKind, Origin, RtcpFb as SdpRtcpFb, Rtpmap, SessionDescription,
};
use xmpp_parsers::jingle_dtls_srtp::Fingerprint;
use xmpp_parsers::jingle_rtcp_fb::RtcpFb;
use xmpp_parsers::jingle_rtp::{Channels, Parameter, PayloadType};
use xmpp_parsers::jingle_rtp_hdrext::{RtpHdrext, Senders as HdrextSenders};
use xmpp_parsers::jingle_ssma::{
    Group as SsrcGroup, Parameter as SourceParameter, Semantics as SsrcSemantics, Source,
};

use super::element::{Content, Creator, Jingle, RtpDescription, Senders};
use super::error::JingleError;
use super::ice::{
    IceCandidate, IceUdpTransport, colon_hex_bytes, setup_from_sdp, setup_to_sdp, short,
};
use super::{MAX_CONTENTS, MAX_SOURCES};

/// The RTP profile of every section written: DTLS-SRTP with feedback (the WebRTC profile).
pub const PROFILE: &str = "UDP/TLS/RTP/SAVPF";

/// The contents of a session description and its BUNDLE group, ready for a `session-initiate`,
/// `session-accept` or `content-add`, or read from one.
#[derive(Debug, Clone, PartialEq)]
pub struct JingleMedia {
    /// One content per media section.
    pub contents: Vec<Content>,
    /// The XEP-0338 BUNDLE group, when the description bundles.
    pub bundle: Option<Vec<String>>,
}

impl JingleMedia {
    /// The contents and group of a received `<jingle/>`.
    pub fn of(jingle: &Jingle) -> Self {
        JingleMedia {
            contents: jingle.contents.clone(),
            bundle: jingle.bundle.clone(),
        }
    }

    /// True if every content shares one transport (XEP-0338 BUNDLE of all contents).
    pub fn is_bundled(&self) -> bool {
        self.bundle
            .as_ref()
            .is_some_and(|b| self.contents.iter().all(|c| b.contains(&c.name)))
    }
}

/// A trickled candidate for the media engine (`RTCIceCandidateInit`): which section it
/// belongs to and the `candidate:...` text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrickleCandidate {
    /// The section's `a=mid` (the content name).
    pub mid: String,
    /// The ICE username fragment the candidate belongs to, if the transport said.
    pub ufrag: Option<String>,
    /// `candidate:<foundation> <component> ...`.
    pub candidate: String,
}

fn other(describer: &Creator) -> Creator {
    match describer {
        Creator::Initiator => Creator::Responder,
        Creator::Responder => Creator::Initiator,
    }
}

fn is(party: &Creator, senders: &Senders) -> bool {
    matches!(
        (party, senders),
        (Creator::Initiator, Senders::Initiator) | (Creator::Responder, Senders::Responder)
    )
}

/// XEP-0166 `senders` of an SDP direction written by `describer`.
pub fn senders_of(direction: Direction, describer: &Creator) -> Senders {
    let party = |c: Creator| match c {
        Creator::Initiator => Senders::Initiator,
        Creator::Responder => Senders::Responder,
    };
    match direction {
        Direction::SendRecv => Senders::Both,
        Direction::Inactive => Senders::None,
        Direction::SendOnly => party(describer.clone()),
        Direction::RecvOnly => party(other(describer)),
    }
}

/// The SDP direction `describer` writes for a content with `senders`.
pub fn direction_of(senders: &Senders, describer: &Creator) -> Direction {
    match senders {
        Senders::Both => Direction::SendRecv,
        Senders::None => Direction::Inactive,
        s if is(describer, s) => Direction::SendOnly,
        _ => Direction::RecvOnly,
    }
}

// ----- SDP → Jingle -----

/// Maps a session description written by `describer` (our offer as initiator, our answer as
/// responder, or the description of a `content-add`) to Jingle contents created by `creator`.
///
/// Sections that are not audio or video RTP (a data channel) and rejected sections (port 0)
/// are left out; the BUNDLE group keeps only the mids that were mapped.
pub fn sdp_to_jingle(
    sdp: &SessionDescription,
    describer: &Creator,
    creator: &Creator,
) -> Result<JingleMedia, JingleError> {
    let mut contents = Vec::new();
    for (index, section) in sdp.media.iter().enumerate() {
        if !section.is_audio_or_video() || !section.is_rtp() || section.is_rejected() {
            continue;
        }
        if contents.len() == MAX_CONTENTS {
            return Err(JingleError::TooMany {
                what: "media sections",
                max: MAX_CONTENTS,
            });
        }
        contents.push(section_to_content(sdp, index, describer, creator)?);
    }
    let bundle = sdp.bundle().map(|mids| {
        mids.iter()
            .filter(|m| contents.iter().any(|c| &c.name == *m))
            .cloned()
            .collect::<Vec<_>>()
    });
    Ok(JingleMedia {
        contents,
        bundle: bundle.filter(|b| !b.is_empty()),
    })
}

fn section_to_content(
    sdp: &SessionDescription,
    index: usize,
    describer: &Creator,
    creator: &Creator,
) -> Result<Content, JingleError> {
    let section = &sdp.media[index];
    let mid = section
        .mid()
        .ok_or_else(|| JingleError::Sdp(format!("media section {index} has no a=mid")))?
        .to_owned();
    let direction = sdp.direction(index).unwrap_or_default();
    let description = section_description(section, &mid, describer)?;
    let (ufrag, pwd) = sdp
        .ice_credentials(index)
        .map(|(u, p)| (Some(u.to_owned()), Some(p.to_owned())))
        .unwrap_or((None, None));
    if ufrag.is_none() {
        return Err(JingleError::Missing {
            content: mid,
            what: "ICE credentials",
        });
    }
    let fingerprint = sdp
        .fingerprint(index)
        .ok_or_else(|| JingleError::MissingFingerprint {
            content: mid.clone(),
        })?;
    let setup = match sdp.setup(index) {
        Some(s) => setup_from_sdp(s)?,
        // RFC 5763 §5: an offer without a=setup is actpass; an answer must say.
        None => setup_from_sdp(match describer {
            Creator::Initiator => lyrebird_sdp::Setup::ActPass,
            Creator::Responder => lyrebird_sdp::Setup::Active,
        })?,
    };
    // Not `Fingerprint::from_colon_separated_hex`: it panics on malformed hex.
    let fingerprint = Fingerprint {
        hash: fingerprint
            .hash_function
            .parse()
            .map_err(|_| JingleError::Sdp("a=fingerprint: bad hash function".into()))?,
        setup,
        value: colon_hex_bytes(&fingerprint.value)
            .ok_or_else(|| JingleError::Sdp("a=fingerprint: bad hex".into()))?,
    };
    let candidates = section
        .candidates()
        .filter_map(|c| candidate_from_sdp(c, &mid))
        .collect();
    Ok(Content {
        creator: creator.clone(),
        name: mid,
        senders: senders_of(direction, describer),
        description: Some(description),
        transport: Some(IceUdpTransport {
            ufrag,
            pwd,
            candidates,
            fingerprint: Some(fingerprint),
        }),
    })
}

fn section_description(
    section: &MediaDescription,
    mid: &str,
    describer: &Creator,
) -> Result<RtpDescription, JingleError> {
    let mut description = RtpDescription::new(section.kind.as_str().to_owned());
    let ptime = section
        .value_of("ptime")
        .and_then(|p| p.trim().parse().ok());
    let maxptime = section
        .value_of("maxptime")
        .and_then(|p| p.trim().parse().ok());
    for pt in section.payload_types() {
        let Some(format) = section.rtp_format(pt) else {
            continue; // a dynamic type without a=rtpmap says nothing usable
        };
        let channels = format.parameters.and_then(|p| p.parse().ok()).unwrap_or(1);
        let mut payload =
            PayloadType::new(pt, format.encoding.to_owned(), format.clock_rate, channels);
        payload.ptime = ptime;
        payload.maxptime = maxptime;
        if let Some(fmtp) = format.fmtp {
            payload.parameters = fmtp_parameters(fmtp);
        }
        payload.rtcp_fbs = format
            .feedback
            .iter()
            .map(|fb| {
                let mut words = fb.splitn(2, ' ');
                RtcpFb {
                    type_: words.next().unwrap_or_default().to_owned(),
                    subtype: words.next().map(|s| s.trim().to_owned()),
                }
            })
            .collect();
        description.payload_types.push(payload);
    }
    if description.payload_types.is_empty() {
        return Err(JingleError::NoPayloadTypes {
            content: mid.to_owned(),
        });
    }
    description.rtcp_mux = section.rtcp_mux();
    for attribute in &section.attributes {
        let Attribute::Other {
            name,
            value: Some(value),
        } = attribute
        else {
            continue;
        };
        match name.as_str() {
            "extmap" => {
                if let Some(ext) = extmap(value, describer) {
                    description.hdrexts.push(ext);
                }
            }
            "ssrc" => add_ssrc(&mut description.ssrcs, value),
            "ssrc-group" => {
                if let Some(group) = ssrc_group(value) {
                    description.ssrc_groups.push(group);
                }
            }
            _ => {}
        }
        if description.ssrcs.len() + description.ssrc_groups.len() > MAX_SOURCES
            || description.hdrexts.len() > MAX_SOURCES
        {
            return Err(JingleError::TooMany {
                what: "sources or header extensions in one section",
                max: MAX_SOURCES,
            });
        }
    }
    Ok(description)
}

/// `a=fmtp` parameters (`minptime=10;useinbandfec=1`) as XEP-0167 `<parameter/>`s. A value
/// without a name (telephone-event's `0-16`) becomes a parameter with an empty name.
fn fmtp_parameters(fmtp: &str) -> Vec<Parameter> {
    fmtp.split(';')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((name, value)) => Parameter {
                name: name.trim().to_owned(),
                value: value.trim().to_owned(),
            },
            None => Parameter {
                name: String::new(),
                value: p.to_owned(),
            },
        })
        .collect()
}

/// `a=extmap:<id>[/<direction>] <uri> [<attributes>]` (RFC 8285 §8).
fn extmap(value: &str, describer: &Creator) -> Option<RtpHdrext> {
    let mut fields = value.split_ascii_whitespace();
    let first = fields.next()?;
    let (id, direction) = match first.split_once('/') {
        Some((id, d)) => (id, Direction::from_name(d)?),
        None => (first, Direction::SendRecv),
    };
    let id: u16 = id.parse().ok().filter(|id| (1..=4095).contains(id))?;
    let uri = fields.next()?.to_owned();
    let senders = match senders_of(direction, describer) {
        Senders::Both => HdrextSenders::Both,
        Senders::Initiator => HdrextSenders::Initiator,
        Senders::Responder => HdrextSenders::Responder,
        Senders::None => return None,
    };
    Some(RtpHdrext::new(id, uri).with_senders(senders))
}

/// `a=ssrc:<ssrc> <name>[:<value>]` (RFC 5576 §4.1): one `<source/>` per SSRC, parameters in
/// the order read.
fn add_ssrc(sources: &mut Vec<Source>, value: &str) {
    let Some((id, attribute)) = value.trim().split_once(' ') else {
        return;
    };
    let Ok(id) = id.parse::<u32>() else {
        return;
    };
    let (name, value) = match attribute.split_once(':') {
        Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
        None => (attribute.to_owned(), None),
    };
    let parameter = SourceParameter { name, value };
    match sources.iter_mut().find(|s| s.id == id) {
        Some(source) => source.parameters.push(parameter),
        None => {
            let mut source = Source::new(id);
            source.parameters.push(parameter);
            sources.push(source);
        }
    }
}

/// `a=ssrc-group:<semantics> <ssrc>...` (RFC 5576 §4.2).
fn ssrc_group(value: &str) -> Option<SsrcGroup> {
    let mut fields = value.split_ascii_whitespace();
    let semantics: SsrcSemantics = fields.next()?.parse().ok()?;
    let sources = fields
        .take(MAX_SOURCES)
        .map(|s| s.parse().ok().map(Source::new))
        .collect::<Option<Vec<_>>>()?;
    Some(SsrcGroup { semantics, sources })
}

/// A candidate from SDP as XEP-0176 writes it; `None` for what ICE-UDP cannot carry (TCP
/// candidates, and mDNS `.local` names that Jingle peers cannot resolve).
pub fn candidate_from_sdp(candidate: &Candidate, mid: &str) -> Option<IceCandidate> {
    if !candidate.transport.eq_ignore_ascii_case("udp") {
        return None;
    }
    let extension = |name: &str| {
        candidate
            .extensions
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.parse().ok())
    };
    let ice = IceCandidate {
        component: u8::try_from(candidate.component).ok()?,
        foundation: candidate.foundation.clone(),
        generation: extension("generation").unwrap_or(0),
        // XEP-0176 §5.2 wants an id unique in the session; a hash of what makes the candidate
        // unique is stable, so re-sending a candidate keeps its id.
        id: candidate_id(mid, candidate),
        ip: candidate.address.clone(),
        port: candidate.port,
        priority: candidate.priority,
        protocol: "udp".to_owned(),
        kind: candidate.kind.clone(),
        rel_addr: candidate.related_address.clone(),
        rel_port: candidate.related_port,
        network: extension("network-id"),
    };
    ice.has_ip_address().then_some(ice)
}

fn candidate_id(mid: &str, c: &Candidate) -> String {
    // FNV-1a, 64 bits: enough to tell a session's few dozen candidates apart.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let text = format!(
        "{mid} {} {} {} {} {}",
        c.foundation, c.component, c.address, c.port, c.kind
    );
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{hash:016x}")
}

/// A XEP-0176 candidate as an SDP candidate (RFC 8839 §5.1).
pub fn candidate_to_sdp(candidate: &IceCandidate) -> Candidate {
    let mut extensions = vec![("generation".to_owned(), candidate.generation.to_string())];
    if let Some(network) = candidate.network {
        extensions.push(("network-id".to_owned(), network.to_string()));
    }
    Candidate {
        foundation: candidate.foundation.clone(),
        component: u16::from(candidate.component),
        transport: candidate.protocol.clone(),
        priority: candidate.priority,
        address: candidate.ip.clone(),
        port: candidate.port,
        kind: candidate.kind.clone(),
        related_address: candidate.rel_addr.clone(),
        related_port: candidate.rel_port,
        extensions,
    }
}

/// A `transport-info` content carrying one trickled candidate of ours (XEP-0176 §6.2): the
/// media engine's `candidate:...` text for section `mid`, with that section's credentials.
/// `Ok(None)` for a candidate ICE-UDP cannot carry (TCP, mDNS).
pub fn transport_info_content(
    creator: &Creator,
    mid: &str,
    ufrag: Option<&str>,
    pwd: Option<&str>,
    candidate: &str,
) -> Result<Option<Content>, JingleError> {
    let parsed: Candidate = candidate.parse()?;
    let Some(ice) = candidate_from_sdp(&parsed, mid) else {
        return Ok(None);
    };
    Ok(Some(Content {
        creator: creator.clone(),
        name: mid.to_owned(),
        senders: Senders::Both,
        description: None,
        transport: Some(IceUdpTransport {
            ufrag: ufrag.map(str::to_owned),
            pwd: pwd.map(str::to_owned),
            candidates: vec![ice],
            fingerprint: None,
        }),
    }))
}

/// The candidates of a received `transport-info` (or of any element), for the media engine.
pub fn trickle_candidates(jingle: &Jingle) -> Vec<TrickleCandidate> {
    jingle
        .contents
        .iter()
        .filter_map(|c| c.transport.as_ref().map(|t| (c, t)))
        .flat_map(|(c, t)| {
            t.candidates.iter().map(|candidate| TrickleCandidate {
                mid: c.name.clone(),
                ufrag: t.ufrag.clone(),
                candidate: candidate_to_sdp(candidate).to_attribute_value(),
            })
        })
        .collect()
}

// ----- Jingle → SDP -----

/// Maps Jingle contents described by `describer` to a session description: the peer's
/// `session-initiate` (an offer) or `session-accept` (an answer).
///
/// `sid` seeds the `o=` session id and `version` is its version (RFC 3264 §8: raise it for
/// each new offer in the session, e.g. after a `content-add`). With `offer` (our own offer
/// that this answers), sections come in the offer's order and an offered section the peer
/// left out is written rejected (port 0), as RFC 3264 §6 requires of an answer.
pub fn jingle_to_sdp(
    media: &JingleMedia,
    describer: &Creator,
    sid: &str,
    version: u64,
    offer: Option<&SessionDescription>,
) -> Result<SessionDescription, JingleError> {
    if media.contents.len() > MAX_CONTENTS {
        return Err(JingleError::TooMany {
            what: "contents",
            max: MAX_CONTENTS,
        });
    }
    let mut sdp = SessionDescription::new(Origin {
        username: "-".to_owned(),
        session_id: session_number(sid).to_string(),
        session_version: version,
        network_type: "IN".to_owned(),
        address_type: "IP4".to_owned(),
        address: "0.0.0.0".to_owned(),
    });
    if let Some(mids) = &media.bundle {
        sdp.attributes.push(Attribute::Group(Group {
            semantics: "BUNDLE".to_owned(),
            mids: mids.clone(),
        }));
    }
    // XEP-0176 transports always trickle (transport-info).
    sdp.attributes.push(Attribute::Other {
        name: "ice-options".to_owned(),
        value: Some("trickle".to_owned()),
    });
    match offer {
        None => {
            for content in &media.contents {
                sdp.media.push(content_to_section(content, describer)?);
            }
        }
        Some(offer) => {
            for section in &offer.media {
                let mid = section.mid();
                match media.contents.iter().find(|c| Some(c.name.as_str()) == mid) {
                    Some(content) => sdp.media.push(content_to_section(content, describer)?),
                    None => sdp.media.push(rejected(section)),
                }
            }
            if let Some(extra) = media
                .contents
                .iter()
                .find(|c| offer.media_by_mid(&c.name).is_none())
            {
                return Err(JingleError::UnknownContent(extra.name.clone()));
            }
        }
    }
    // Whatever a peer wrote, the media engine gets well-formed SDP or nothing: read back
    // what was written with the one SDP parser (a name with a space would make two fields).
    SessionDescription::parse(&sdp.to_string()).map_err(|e| JingleError::BadValue {
        what: "description",
        reason: format!("it does not form valid SDP: {e}"),
    })?;
    Ok(sdp)
}

/// An answer's rejection of an offered section (RFC 3264 §6): same media and formats, port 0.
fn rejected(offered: &MediaDescription) -> MediaDescription {
    let mut section = MediaDescription::new(
        offered.kind.clone(),
        0,
        offered.protocol.clone(),
        offered.formats.clone(),
    );
    if let Some(mid) = offered.mid() {
        section.attributes.push(Attribute::Mid(mid.to_owned()));
    }
    section
}

fn session_number(sid: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in sid.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // Keep it within the 63 bits some stacks parse into a signed integer.
    hash >> 1
}

/// Writes one content as a media section.
pub fn content_to_section(
    content: &Content,
    describer: &Creator,
) -> Result<MediaDescription, JingleError> {
    let name = &content.name;
    let description = content.description.as_ref().ok_or(JingleError::Missing {
        content: name.clone(),
        what: "description",
    })?;
    let transport = content.transport.as_ref().ok_or(JingleError::Missing {
        content: name.clone(),
        what: "transport",
    })?;
    let fingerprint =
        transport
            .fingerprint
            .as_ref()
            .ok_or_else(|| JingleError::MissingFingerprint {
                content: name.clone(),
            })?;
    let (Some(ufrag), Some(pwd)) = (&transport.ufrag, &transport.pwd) else {
        return Err(JingleError::Missing {
            content: name.clone(),
            what: "ICE credentials",
        });
    };
    let kind = match description.media.as_str() {
        "audio" => MediaKind::Audio,
        "video" => MediaKind::Video,
        other => {
            return Err(JingleError::BadValue {
                what: "media",
                reason: short(other),
            });
        }
    };
    let usable: Vec<&PayloadType> = description
        .payload_types
        .iter()
        .filter(|pt| pt.id < 128)
        .filter(|pt| (pt.name.is_some() && pt.clockrate.is_some()) || pt.id < 35)
        .filter(|pt| pt.name.as_deref().is_none_or(is_sdp_token))
        .collect();
    if usable.is_empty() {
        return Err(JingleError::NoPayloadTypes {
            content: name.clone(),
        });
    }
    let formats = usable.iter().map(|pt| pt.id.to_string()).collect();
    let mut section = MediaDescription::new(kind.clone(), 9, PROFILE, formats);
    section.connections.push(Connection {
        network_type: "IN".to_owned(),
        address_type: "IP4".to_owned(),
        address: "0.0.0.0".to_owned(),
    });
    let a = &mut section.attributes;
    a.push(Attribute::Other {
        name: "rtcp".to_owned(),
        value: Some("9 IN IP4 0.0.0.0".to_owned()),
    });
    a.push(Attribute::IceUfrag(ufrag.clone()));
    a.push(Attribute::IcePwd(pwd.clone()));
    a.push(Attribute::Fingerprint(SdpFingerprint {
        hash_function: String::from(fingerprint.hash.clone()),
        value: colon_hex(&fingerprint.value),
    }));
    a.push(Attribute::Setup(setup_to_sdp(&fingerprint.setup)));
    a.push(Attribute::Mid(name.clone()));
    for ext in description.hdrexts.iter().filter(|e| is_field(&e.uri)) {
        let senders = match ext.senders {
            HdrextSenders::Both => Senders::Both,
            HdrextSenders::Initiator => Senders::Initiator,
            HdrextSenders::Responder => Senders::Responder,
        };
        let value = match direction_of(&senders, describer) {
            Direction::SendRecv => format!("{} {}", ext.id, ext.uri),
            d => format!("{}/{d} {}", ext.id, ext.uri),
        };
        a.push(Attribute::Other {
            name: "extmap".to_owned(),
            value: Some(value),
        });
    }
    a.push(Attribute::Direction(direction_of(
        &content.senders,
        describer,
    )));
    if description.rtcp_mux {
        a.push(Attribute::RtcpMux);
    }
    for pt in &usable {
        if let (Some(encoding), Some(clock_rate)) = (&pt.name, pt.clockrate) {
            let channels: &Channels = &pt.channels;
            a.push(Attribute::Rtpmap(Rtpmap {
                payload_type: pt.id,
                encoding: encoding.clone(),
                clock_rate,
                parameters: (kind == MediaKind::Audio && channels.0 > 1)
                    .then(|| channels.0.to_string()),
            }));
        }
        for fb in pt
            .rtcp_fbs
            .iter()
            .filter(|fb| is_field(&fb.type_) && fb.subtype.as_deref().is_none_or(is_field))
        {
            a.push(Attribute::RtcpFb(SdpRtcpFb {
                payload_type: Some(pt.id),
                feedback: match &fb.subtype {
                    Some(s) => format!("{} {s}", fb.type_),
                    None => fb.type_.clone(),
                },
            }));
        }
        if !pt.parameters.is_empty() {
            let parameters = pt
                .parameters
                .iter()
                .filter(|p| {
                    [&p.name, &p.value]
                        .iter()
                        .all(|t| t.is_empty() || (is_field(t) && !t.contains(';')))
                })
                .map(|p| match (p.name.is_empty(), p.value.is_empty()) {
                    (true, _) => p.value.clone(),
                    (false, true) => p.name.clone(),
                    (false, false) => format!("{}={}", p.name, p.value),
                })
                .collect::<Vec<_>>()
                .join(";");
            a.push(Attribute::Fmtp(Fmtp {
                payload_type: pt.id,
                parameters,
            }));
        }
    }
    if let Some(ptime) = usable.iter().find_map(|pt| pt.ptime) {
        a.push(Attribute::Other {
            name: "ptime".to_owned(),
            value: Some(ptime.to_string()),
        });
    }
    if let Some(maxptime) = usable.iter().find_map(|pt| pt.maxptime) {
        a.push(Attribute::Other {
            name: "maxptime".to_owned(),
            value: Some(maxptime.to_string()),
        });
    }
    for group in &description.ssrc_groups {
        let mut value = ssrc_semantics_name(&group.semantics).to_owned();
        for s in &group.sources {
            value.push(' ');
            value.push_str(&s.id.to_string());
        }
        a.push(Attribute::Other {
            name: "ssrc-group".to_owned(),
            value: Some(value),
        });
    }
    for source in &description.ssrcs {
        for p in source
            .parameters
            .iter()
            .filter(|p| is_field(&p.name) && !p.name.contains(':'))
            .filter(|p| p.value.as_deref().is_none_or(|v| !v.contains(['\r', '\n'])))
        {
            let value = match &p.value {
                Some(v) => format!("{} {}:{v}", source.id, p.name),
                None => format!("{} {}", source.id, p.name),
            };
            a.push(Attribute::Other {
                name: "ssrc".to_owned(),
                value: Some(value),
            });
        }
    }
    for candidate in &transport.candidates {
        a.push(Attribute::Candidate(candidate_to_sdp(candidate)));
    }
    Ok(section)
}

/// RFC 8866 §9 `token`, without `/` (an encoding name is followed by `/<clock rate>`).
fn is_sdp_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"/\"(),:;<=>?@[]{}".contains(&b))
}

/// A value that is one field in an SDP line: printable, no spaces.
fn is_field(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_graphic())
}

fn ssrc_semantics_name(s: &SsrcSemantics) -> &'static str {
    match s {
        SsrcSemantics::Ls => "LS",
        SsrcSemantics::Fid => "FID",
        SsrcSemantics::Srf => "SRF",
        SsrcSemantics::Anat => "ANAT",
        SsrcSemantics::Fec => "FEC",
        SsrcSemantics::Ddp => "DDP",
    }
}

fn colon_hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}
