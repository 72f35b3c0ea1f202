//! One media section (RFC 8866 §5.14): the `m=` line and the `i=`, `c=`, `b=`, `k=` and `a=`
//! lines under it, with typed reading of what RTP offer/answer needs.

use std::fmt;

use crate::attribute::{Attribute, Candidate, Fingerprint, RtcpFb, Rtpmap, Setup};
use crate::direction::Direction;
use crate::line::{Bandwidth, Connection};

/// The media type of an `m=` line.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MediaKind {
    /// `audio`.
    Audio,
    /// `video`.
    Video,
    /// `message` (MSRP, RFC 4975 §8).
    Message,
    /// `application` (e.g. a WebRTC data channel).
    Application,
    /// `text` (real-time text, RFC 4103).
    Text,
    /// Any other media type, kept as written.
    Other(String),
}

impl MediaKind {
    /// Reads the media field of an `m=` line.
    pub fn from_name(name: &str) -> Self {
        match name {
            "audio" => MediaKind::Audio,
            "video" => MediaKind::Video,
            "message" => MediaKind::Message,
            "application" => MediaKind::Application,
            "text" => MediaKind::Text,
            other => MediaKind::Other(other.to_owned()),
        }
    }

    /// The media field as written in an `m=` line.
    pub fn as_str(&self) -> &str {
        match self {
            MediaKind::Audio => "audio",
            MediaKind::Video => "video",
            MediaKind::Message => "message",
            MediaKind::Application => "application",
            MediaKind::Text => "text",
            MediaKind::Other(other) => other,
        }
    }
}

impl fmt::Display for MediaKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A media section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaDescription {
    /// Media type.
    pub kind: MediaKind,
    /// Transport port; 0 means the stream is rejected or removed (RFC 3264 §6, §8.2).
    pub port: u16,
    /// The `/<number of ports>` after the port, if written.
    pub port_count: Option<u16>,
    /// Transport protocol (`UDP/TLS/RTP/SAVPF`, `RTP/AVP`, `TCP/WS/MSRP`, ...).
    pub protocol: String,
    /// Media formats in `m=` line order: RTP payload type numbers for RTP protocols (the
    /// sender's preference order), `*` for MSRP.
    pub formats: Vec<String>,
    /// `i=` title.
    pub information: Option<String>,
    /// `c=` lines of this section (more than one only for multicast).
    pub connections: Vec<Connection>,
    /// `b=` lines.
    pub bandwidths: Vec<Bandwidth>,
    /// `k=` (obsolete, RFC 8866 §5.12), kept as written.
    pub key: Option<String>,
    /// `a=` lines in order.
    pub attributes: Vec<Attribute>,
}

/// What an RTP payload type of a section carries: its `a=rtpmap`, or the RFC 3551 static
/// assignment when there is none, with its `a=fmtp` and `a=rtcp-fb` lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpFormat<'a> {
    /// RTP payload type.
    pub payload_type: u8,
    /// Encoding name as written (`opus`, `PCMU`, ...).
    pub encoding: &'a str,
    /// Clock rate in Hz.
    pub clock_rate: u32,
    /// Encoding parameters (audio: channels), if any.
    pub parameters: Option<&'a str>,
    /// `a=fmtp` parameters, if any.
    pub fmtp: Option<&'a str>,
    /// `a=rtcp-fb` feedback types for this payload type and for `*`, in order.
    pub feedback: Vec<&'a str>,
}

/// RFC 3551 §6 table 4 and 5: payload types assigned statically, which may appear in an `m=`
/// line without an `a=rtpmap` (PCMU as 0 and PCMA as 8 still do in SIP).
fn static_payload_type(payload_type: u8) -> Option<(&'static str, u32, Option<&'static str>)> {
    Some(match payload_type {
        0 => ("PCMU", 8_000, None),
        3 => ("GSM", 8_000, None),
        4 => ("G723", 8_000, None),
        5 => ("DVI4", 8_000, None),
        6 => ("DVI4", 16_000, None),
        7 => ("LPC", 8_000, None),
        8 => ("PCMA", 8_000, None),
        9 => ("G722", 8_000, None),
        10 => ("L16", 44_100, Some("2")),
        11 => ("L16", 44_100, None),
        12 => ("QCELP", 8_000, None),
        13 => ("CN", 8_000, None),
        14 => ("MPA", 90_000, None),
        15 => ("G728", 8_000, None),
        16 => ("DVI4", 11_025, None),
        17 => ("DVI4", 22_050, None),
        18 => ("G729", 8_000, None),
        25 => ("CelB", 90_000, None),
        26 => ("JPEG", 90_000, None),
        28 => ("nv", 90_000, None),
        31 => ("H261", 90_000, None),
        32 => ("MPV", 90_000, None),
        33 => ("MP2T", 90_000, None),
        34 => ("H263", 90_000, None),
        _ => return None,
    })
}

/// True if `protocol` is an RTP profile (`RTP/AVP`, `UDP/TLS/RTP/SAVPF`, ...), whose formats
/// are payload type numbers (RFC 8866 §5.14).
pub(crate) fn is_rtp(protocol: &str) -> bool {
    protocol.split('/').any(|part| part == "RTP")
}

impl MediaDescription {
    /// A section with no lines under its `m=` line.
    pub fn new(
        kind: MediaKind,
        port: u16,
        protocol: impl Into<String>,
        formats: Vec<String>,
    ) -> Self {
        MediaDescription {
            kind,
            port,
            port_count: None,
            protocol: protocol.into(),
            formats,
            information: None,
            connections: Vec::new(),
            bandwidths: Vec::new(),
            key: None,
            attributes: Vec::new(),
        }
    }

    /// True if the port is 0: the answerer rejected the stream, or an offerer removed it.
    pub fn is_rejected(&self) -> bool {
        self.port == 0
    }

    /// True for audio and video, the sections hold applies to.
    pub fn is_audio_or_video(&self) -> bool {
        matches!(self.kind, MediaKind::Audio | MediaKind::Video)
    }

    /// True if the protocol is an RTP profile.
    pub fn is_rtp(&self) -> bool {
        is_rtp(&self.protocol)
    }

    /// The section's own direction attribute, if it has one (see
    /// [`crate::SessionDescription::direction`] for the one that applies).
    pub fn direction(&self) -> Option<Direction> {
        self.attributes.iter().find_map(|a| match a {
            Attribute::Direction(d) => Some(*d),
            _ => None,
        })
    }

    /// Writes `direction` as this section's direction attribute: the first one is replaced in
    /// place, any further ones dropped, and if there was none it is appended.
    pub fn set_direction(&mut self, direction: Direction) {
        set_direction(&mut self.attributes, direction);
    }

    /// `a=mid`.
    pub fn mid(&self) -> Option<&str> {
        self.attributes.iter().find_map(|a| match a {
            Attribute::Mid(mid) => Some(mid.as_str()),
            _ => None,
        })
    }

    /// This section's own `a=ice-ufrag`.
    pub fn ice_ufrag(&self) -> Option<&str> {
        ice_ufrag(&self.attributes)
    }

    /// This section's own `a=ice-pwd`.
    pub fn ice_pwd(&self) -> Option<&str> {
        ice_pwd(&self.attributes)
    }

    /// `a=candidate` lines in order.
    pub fn candidates(&self) -> impl Iterator<Item = &Candidate> {
        self.attributes.iter().filter_map(|a| match a {
            Attribute::Candidate(c) => Some(c),
            _ => None,
        })
    }

    /// This section's own `a=fingerprint`.
    pub fn fingerprint(&self) -> Option<&Fingerprint> {
        fingerprint(&self.attributes)
    }

    /// This section's own `a=setup`.
    pub fn setup(&self) -> Option<Setup> {
        setup(&self.attributes)
    }

    /// True if `a=rtcp-mux` is present.
    pub fn rtcp_mux(&self) -> bool {
        self.attributes.contains(&Attribute::RtcpMux)
    }

    /// The formats that are RTP payload types, in `m=` line order; none unless the protocol
    /// is an RTP profile.
    pub fn payload_types(&self) -> impl Iterator<Item = u8> + '_ {
        let rtp = self.is_rtp();
        self.formats
            .iter()
            .filter(move |_| rtp)
            .filter_map(|f| crate::attribute::payload_type(f))
    }

    /// The `a=rtpmap` of `payload_type`.
    pub fn rtpmap(&self, payload_type: u8) -> Option<&Rtpmap> {
        self.attributes.iter().find_map(|a| match a {
            Attribute::Rtpmap(r) if r.payload_type == payload_type => Some(r),
            _ => None,
        })
    }

    /// The `a=fmtp` parameters of `payload_type`.
    pub fn fmtp(&self, payload_type: u8) -> Option<&str> {
        self.attributes.iter().find_map(|a| match a {
            Attribute::Fmtp(f) if f.payload_type == payload_type => Some(f.parameters.as_str()),
            _ => None,
        })
    }

    /// The `a=rtcp-fb` lines that apply to `payload_type` (its own and `*`).
    pub fn rtcp_fb(&self, payload_type: u8) -> impl Iterator<Item = &RtcpFb> {
        self.attributes.iter().filter_map(move |a| match a {
            Attribute::RtcpFb(fb) if fb.payload_type.is_none_or(|pt| pt == payload_type) => {
                Some(fb)
            }
            _ => None,
        })
    }

    /// What `payload_type` carries: its `a=rtpmap`, else the RFC 3551 static assignment.
    /// `None` for a dynamic type without `a=rtpmap`.
    pub fn rtp_format(&self, payload_type: u8) -> Option<RtpFormat<'_>> {
        let (encoding, clock_rate, parameters) = match self.rtpmap(payload_type) {
            Some(r) => (r.encoding.as_str(), r.clock_rate, r.parameters.as_deref()),
            None => static_payload_type(payload_type)?,
        };
        Some(RtpFormat {
            payload_type,
            encoding,
            clock_rate,
            parameters,
            fmtp: self.fmtp(payload_type),
            feedback: self
                .rtcp_fb(payload_type)
                .map(|fb| fb.feedback.as_str())
                .collect(),
        })
    }

    /// The value of the first attribute named `name` that this crate keeps as
    /// [`Attribute::Other`] (`path`, `accept-types`, `msid`, ...). `Some("")` for a property
    /// attribute written without a value.
    pub fn value_of(&self, name: &str) -> Option<&str> {
        value_of(&self.attributes, name)
    }
}

pub(crate) fn set_direction(attributes: &mut Vec<Attribute>, direction: Direction) {
    let mut written = false;
    attributes.retain_mut(|a| match a {
        Attribute::Direction(d) if !written => {
            *d = direction;
            written = true;
            true
        }
        Attribute::Direction(_) => false,
        _ => true,
    });
    if !written {
        attributes.push(Attribute::Direction(direction));
    }
}

pub(crate) fn ice_ufrag(attributes: &[Attribute]) -> Option<&str> {
    attributes.iter().find_map(|a| match a {
        Attribute::IceUfrag(u) => Some(u.as_str()),
        _ => None,
    })
}

pub(crate) fn ice_pwd(attributes: &[Attribute]) -> Option<&str> {
    attributes.iter().find_map(|a| match a {
        Attribute::IcePwd(p) => Some(p.as_str()),
        _ => None,
    })
}

pub(crate) fn fingerprint(attributes: &[Attribute]) -> Option<&Fingerprint> {
    attributes.iter().find_map(|a| match a {
        Attribute::Fingerprint(f) => Some(f),
        _ => None,
    })
}

pub(crate) fn setup(attributes: &[Attribute]) -> Option<Setup> {
    attributes.iter().find_map(|a| match a {
        Attribute::Setup(s) => Some(*s),
        _ => None,
    })
}

pub(crate) fn value_of<'a>(attributes: &'a [Attribute], wanted: &str) -> Option<&'a str> {
    attributes.iter().find_map(|a| match a {
        Attribute::Other { name, value } if name == wanted => Some(value.as_deref().unwrap_or("")),
        _ => None,
    })
}
