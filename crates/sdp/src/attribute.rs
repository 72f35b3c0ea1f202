//! `a=` lines (RFC 8866 §5.13): the ones offer/answer needs are typed, every other attribute is
//! kept as written, and all of them stay in the order the peer sent.
//!
//! Typed here, with their RFCs:
//! - direction `sendrecv` / `sendonly` / `recvonly` / `inactive` (RFC 8866 §6.7);
//! - `rtpmap`, `fmtp` (RFC 8866 §6.6, §6.15), `rtcp-fb` (RFC 4585 §4.2), `rtcp-mux` (RFC 5761);
//! - `mid`, `group` (RFC 5888; `BUNDLE` is RFC 8843);
//! - `ice-ufrag`, `ice-pwd`, `candidate` (RFC 8839 §5);
//! - `fingerprint` (RFC 8122 §5), `setup` (RFC 4145 §4).

use std::fmt;

use crate::direction::Direction;

/// One attribute line, without its `a=`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attribute {
    /// `a=sendrecv` and the other directions.
    Direction(Direction),
    /// `a=rtpmap:<pt> <encoding>/<clock rate>[/<parameters>]`.
    Rtpmap(Rtpmap),
    /// `a=fmtp:<pt> <parameters>` for an RTP payload type.
    Fmtp(Fmtp),
    /// `a=rtcp-fb:<pt or *> <feedback>`.
    RtcpFb(RtcpFb),
    /// `a=rtcp-mux`.
    RtcpMux,
    /// `a=mid:<identification tag>`.
    Mid(String),
    /// `a=group:<semantics> <mid>...`, e.g. `BUNDLE 0 1`.
    Group(Group),
    /// `a=ice-ufrag:<username fragment>`.
    IceUfrag(String),
    /// `a=ice-pwd:<password>`.
    IcePwd(String),
    /// `a=candidate:...`.
    Candidate(Candidate),
    /// `a=fingerprint:<hash function> <hex pairs>`.
    Fingerprint(Fingerprint),
    /// `a=setup:<role>`.
    Setup(Setup),
    /// Anything else, kept as written: `a=<name>` (`value` is `None`) or `a=<name>:<value>`.
    Other {
        /// The attribute name.
        name: String,
        /// The text after the first `:`, if there is one.
        value: Option<String>,
    },
}

/// `a=rtpmap` (RFC 8866 §6.6): what an RTP payload type carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rtpmap {
    /// RTP payload type, 0–127.
    pub payload_type: u8,
    /// Encoding name as written (`opus`, `PCMU`, `telephone-event`, ...).
    pub encoding: String,
    /// Clock rate in Hz.
    pub clock_rate: u32,
    /// Encoding parameters (for audio, the channel count), as written.
    pub parameters: Option<String>,
}

/// `a=fmtp` (RFC 8866 §6.15) for an RTP payload type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fmtp {
    /// RTP payload type, 0–127.
    pub payload_type: u8,
    /// The format parameters, as written (`minptime=10;useinbandfec=1`).
    pub parameters: String,
}

/// `a=rtcp-fb` (RFC 4585 §4.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtcpFb {
    /// The payload type it applies to; `None` is `*`, every payload type of the section.
    pub payload_type: Option<u8>,
    /// The feedback type and parameters, as written (`nack pli`, `transport-cc`).
    pub feedback: String,
}

/// `a=group` (RFC 5888 §5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// `BUNDLE`, `LS`, `FID`, ...
    pub semantics: String,
    /// The `a=mid` tags of the grouped sections, in order.
    pub mids: Vec<String>,
}

/// `a=candidate` (RFC 8839 §5.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Foundation.
    pub foundation: String,
    /// Component ID (1 is RTP, 2 RTCP; with rtcp-mux only 1).
    pub component: u16,
    /// Transport as written (`udp`, `UDP`, `tcp`).
    pub transport: String,
    /// Priority.
    pub priority: u32,
    /// Address: IPv4, IPv6 or an mDNS `.local` name.
    pub address: String,
    /// Port.
    pub port: u16,
    /// Candidate type after `typ` (`host`, `srflx`, `prflx`, `relay`).
    pub kind: String,
    /// `raddr`.
    pub related_address: Option<String>,
    /// `rport`.
    pub related_port: Option<u16>,
    /// Extension name/value pairs in order (`generation 0`, `tcptype active`, ...).
    pub extensions: Vec<(String, String)>,
}

/// `a=fingerprint` (RFC 8122 §5): the hash of the DTLS certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    /// Hash function name as written (`sha-256`).
    pub hash_function: String,
    /// Upper- or lower-case hex pairs separated by colons, as written.
    pub value: String,
}

/// `a=setup` (RFC 4145 §4): which side opens the connection (DTLS: which side is the client).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Setup {
    /// `active`: the describing side connects.
    Active,
    /// `passive`: the describing side accepts.
    Passive,
    /// `actpass`: either; an offerer writes this.
    ActPass,
    /// `holdconn`: no connection for now.
    HoldConn,
}

impl Setup {
    /// The attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            Setup::Active => "active",
            Setup::Passive => "passive",
            Setup::ActPass => "actpass",
            Setup::HoldConn => "holdconn",
        }
    }
}

/// RFC 8866 §9 `token-char`: visible ASCII except the separators SDP gives meaning to.
pub(crate) fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text.bytes().all(|b| {
            matches!(b, 0x21 | 0x23..=0x27 | 0x2a | 0x2b | 0x2d | 0x2e | 0x30..=0x39 | 0x41..=0x5a | 0x5e..=0x7e)
        })
}

pub(crate) fn payload_type(text: &str) -> Option<u8> {
    // No sign, no leading '+': `u8::from_str` would take "+5".
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<u8>().ok().filter(|pt| *pt < 128)
}

impl Attribute {
    /// Reads one attribute from the text after `a=`. `Err` says what is wrong.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let (name, value) = match text.split_once(':') {
            Some((name, value)) => (name, Some(value)),
            None => (text, None),
        };
        if !is_token(name) {
            return Err(format!("bad attribute name {}", crate::error::quote(name)));
        }
        let need = |what: &str| -> Result<&str, String> {
            value
                .filter(|v| !v.is_empty())
                .ok_or_else(|| format!("a={what} needs a value"))
        };
        let flag = |attribute: Attribute| -> Result<Attribute, String> {
            match value {
                None => Ok(attribute),
                Some(_) => Err(format!("a={name} takes no value")),
            }
        };
        if let Some(direction) = Direction::from_name(name) {
            return flag(Attribute::Direction(direction));
        }
        Ok(match name {
            "rtcp-mux" => flag(Attribute::RtcpMux)?,
            "rtpmap" => Attribute::Rtpmap(parse_rtpmap(need(name)?)?),
            "fmtp" => {
                let value = need(name)?;
                let (format, parameters) = value.split_once(' ').unwrap_or((value, ""));
                match payload_type(format) {
                    Some(payload_type) => Attribute::Fmtp(Fmtp {
                        payload_type,
                        parameters: parameters.to_owned(),
                    }),
                    // A non-RTP format (RFC 8866 allows fmtp for any format): keep it as is.
                    None => Attribute::Other {
                        name: name.to_owned(),
                        value: Some(value.to_owned()),
                    },
                }
            }
            "rtcp-fb" => {
                let value = need(name)?;
                let (format, feedback) = value
                    .split_once(' ')
                    .filter(|(_, f)| !f.is_empty())
                    .ok_or_else(|| format!("bad rtcp-fb {}", crate::error::quote(value)))?;
                let payload_type = match format {
                    "*" => None,
                    pt => Some(
                        payload_type(pt)
                            .ok_or_else(|| format!("bad rtcp-fb payload type {pt:?}"))?,
                    ),
                };
                Attribute::RtcpFb(RtcpFb {
                    payload_type,
                    feedback: feedback.to_owned(),
                })
            }
            "mid" => Attribute::Mid(need(name)?.to_owned()),
            "group" => {
                let mut fields = need(name)?.split_ascii_whitespace();
                let semantics = fields.next().ok_or("a=group without semantics")?;
                Attribute::Group(Group {
                    semantics: semantics.to_owned(),
                    mids: fields.map(str::to_owned).collect(),
                })
            }
            "ice-ufrag" => Attribute::IceUfrag(need(name)?.to_owned()),
            "ice-pwd" => Attribute::IcePwd(need(name)?.to_owned()),
            "candidate" => Attribute::Candidate(parse_candidate(need(name)?)?),
            "fingerprint" => {
                let value = need(name)?;
                let bad = || format!("bad fingerprint {}", crate::error::quote(value));
                let (hash_function, hex) = value.split_once(' ').ok_or_else(bad)?;
                let well_formed = is_token(hash_function)
                    && !hex.is_empty()
                    && hex
                        .split(':')
                        .all(|pair| pair.len() == 2 && pair.bytes().all(|b| b.is_ascii_hexdigit()));
                if !well_formed {
                    return Err(bad());
                }
                Attribute::Fingerprint(Fingerprint {
                    hash_function: hash_function.to_owned(),
                    value: hex.to_owned(),
                })
            }
            "setup" => Attribute::Setup(match need(name)? {
                "active" => Setup::Active,
                "passive" => Setup::Passive,
                "actpass" => Setup::ActPass,
                "holdconn" => Setup::HoldConn,
                other => return Err(format!("bad setup role {}", crate::error::quote(other))),
            }),
            _ => Attribute::Other {
                name: name.to_owned(),
                value: value.map(str::to_owned),
            },
        })
    }

    /// The attribute name (`rtpmap`, `sendonly`, or the name of an [`Attribute::Other`]).
    pub fn name(&self) -> &str {
        match self {
            Attribute::Direction(d) => d.as_str(),
            Attribute::Rtpmap(_) => "rtpmap",
            Attribute::Fmtp(_) => "fmtp",
            Attribute::RtcpFb(_) => "rtcp-fb",
            Attribute::RtcpMux => "rtcp-mux",
            Attribute::Mid(_) => "mid",
            Attribute::Group(_) => "group",
            Attribute::IceUfrag(_) => "ice-ufrag",
            Attribute::IcePwd(_) => "ice-pwd",
            Attribute::Candidate(_) => "candidate",
            Attribute::Fingerprint(_) => "fingerprint",
            Attribute::Setup(_) => "setup",
            Attribute::Other { name, .. } => name,
        }
    }
}

fn parse_rtpmap(value: &str) -> Result<Rtpmap, String> {
    let bad = || format!("bad rtpmap {}", crate::error::quote(value));
    let (pt, encoding) = value.split_once(' ').ok_or_else(bad)?;
    let payload_type = payload_type(pt).ok_or_else(bad)?;
    let mut parts = encoding.trim().splitn(3, '/');
    let encoding = parts.next().filter(|e| is_token(e)).ok_or_else(bad)?;
    let clock_rate = parts
        .next()
        .filter(|r| r.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|r| r.parse::<u32>().ok())
        .ok_or_else(bad)?;
    let parameters = match parts.next() {
        Some(p) if is_token(p) => Some(p.to_owned()),
        Some(_) => return Err(bad()),
        None => None,
    };
    Ok(Rtpmap {
        payload_type,
        encoding: encoding.to_owned(),
        clock_rate,
        parameters,
    })
}

impl std::str::FromStr for Candidate {
    type Err = crate::SdpError;

    /// Reads a candidate on its own, as trickle ICE carries it (RFC 8840 §4.1, and the
    /// `candidate` of a WebRTC `RTCIceCandidateInit`): with or without the `candidate:` prefix,
    /// and with or without a leading `a=`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let text = text.strip_prefix("a=").unwrap_or(text);
        let text = text.strip_prefix("candidate:").unwrap_or(text);
        parse_candidate(text).map_err(|reason| crate::SdpError::value("candidate", reason))
    }
}

impl Candidate {
    /// The candidate as trickle ICE carries it: `candidate:<foundation> <component> ...`
    /// (the `a=candidate` attribute without its `a=`).
    pub fn to_attribute_value(&self) -> String {
        Attribute::Candidate(self.clone()).to_string()
    }
}

fn parse_candidate(value: &str) -> Result<Candidate, String> {
    let bad = |why: &str| format!("bad candidate ({why}): {}", crate::error::quote(value));
    let mut fields = value.split_ascii_whitespace();
    let mut next = |what: &str| fields.next().ok_or_else(|| bad(what));
    let foundation = next("foundation")?.to_owned();
    let component = next("component")?.parse().map_err(|_| bad("component"))?;
    let transport = next("transport")?.to_owned();
    let priority = next("priority")?.parse().map_err(|_| bad("priority"))?;
    let address = next("address")?.to_owned();
    let port = next("port")?.parse().map_err(|_| bad("port"))?;
    if next("typ")? != "typ" {
        return Err(bad("typ"));
    }
    let kind = next("type")?.to_owned();
    let mut candidate = Candidate {
        foundation,
        component,
        transport,
        priority,
        address,
        port,
        kind,
        related_address: None,
        related_port: None,
        extensions: Vec::new(),
    };
    let rest: Vec<&str> = fields.collect();
    let mut pairs = rest.chunks(2);
    for pair in &mut pairs {
        let [name, value] = pair else {
            return Err(bad("extension without a value"));
        };
        match *name {
            "raddr" if candidate.related_address.is_none() && candidate.extensions.is_empty() => {
                candidate.related_address = Some((*value).to_owned());
            }
            "rport" if candidate.related_port.is_none() && candidate.extensions.is_empty() => {
                candidate.related_port = Some(value.parse().map_err(|_| bad("rport"))?);
            }
            _ => candidate
                .extensions
                .push(((*name).to_owned(), (*value).to_owned())),
        }
    }
    Ok(candidate)
}

impl fmt::Display for Attribute {
    /// Writes the text after `a=`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Attribute::Direction(d) => f.write_str(d.as_str()),
            Attribute::Rtpmap(r) => {
                write!(
                    f,
                    "rtpmap:{} {}/{}",
                    r.payload_type, r.encoding, r.clock_rate
                )?;
                if let Some(p) = &r.parameters {
                    write!(f, "/{p}")?;
                }
                Ok(())
            }
            Attribute::Fmtp(p) => write!(f, "fmtp:{} {}", p.payload_type, p.parameters),
            Attribute::RtcpFb(fb) => match fb.payload_type {
                Some(pt) => write!(f, "rtcp-fb:{pt} {}", fb.feedback),
                None => write!(f, "rtcp-fb:* {}", fb.feedback),
            },
            Attribute::RtcpMux => f.write_str("rtcp-mux"),
            Attribute::Mid(mid) => write!(f, "mid:{mid}"),
            Attribute::Group(g) => {
                write!(f, "group:{}", g.semantics)?;
                for mid in &g.mids {
                    write!(f, " {mid}")?;
                }
                Ok(())
            }
            Attribute::IceUfrag(u) => write!(f, "ice-ufrag:{u}"),
            Attribute::IcePwd(p) => write!(f, "ice-pwd:{p}"),
            Attribute::Candidate(c) => {
                write!(
                    f,
                    "candidate:{} {} {} {} {} {} typ {}",
                    c.foundation, c.component, c.transport, c.priority, c.address, c.port, c.kind
                )?;
                if let Some(a) = &c.related_address {
                    write!(f, " raddr {a}")?;
                }
                if let Some(p) = c.related_port {
                    write!(f, " rport {p}")?;
                }
                for (name, value) in &c.extensions {
                    write!(f, " {name} {value}")?;
                }
                Ok(())
            }
            Attribute::Fingerprint(fp) => {
                write!(f, "fingerprint:{} {}", fp.hash_function, fp.value)
            }
            Attribute::Setup(s) => write!(f, "setup:{}", s.as_str()),
            Attribute::Other { name, value } => match value {
                Some(v) => write!(f, "{name}:{v}"),
                None => f.write_str(name),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_attributes_round_trip() {
        for text in [
            "sendonly",
            "rtpmap:111 opus/48000/2",
            "rtpmap:0 PCMU/8000",
            "fmtp:111 minptime=10;useinbandfec=1",
            "rtcp-fb:96 nack pli",
            "rtcp-fb:* transport-cc",
            "rtcp-mux",
            "mid:0",
            "group:BUNDLE 0 1",
            "ice-ufrag:Ab3d",
            "ice-pwd:0123456789abcdefghijkl",
            "candidate:842163049 1 udp 1677729535 198.51.100.7 61665 typ srflx raddr 10.0.0.2 \
             rport 61665 generation 0 network-cost 999",
            "candidate:1 1 TCP 2105458943 abc.local 9 typ host tcptype active",
            "fingerprint:sha-256 AB:CD:01",
            "setup:actpass",
            "path:msrp://a.example:7654/x;tcp",
            "x-unknown",
        ] {
            let attribute = Attribute::parse(text).unwrap();
            assert_eq!(attribute.to_string(), text);
            assert!(!matches!(attribute, Attribute::Other { .. }) || text.starts_with(['p', 'x']));
        }
    }

    #[test]
    fn malformed_typed_attributes_are_errors() {
        for text in [
            "rtpmap:300 opus/48000",
            "rtpmap:111",
            "rtpmap:111 opus",
            "rtpmap:111 opus/fast",
            "rtcp-fb:x nack",
            "rtcp-fb:96",
            "sendonly:yes",
            "rtcp-mux:1",
            "mid:",
            "candidate:1 1 udp",
            "candidate:1 1 udp 1 1.2.3.4 9 host",
            "candidate:1 1 udp 1 1.2.3.4 9 typ host generation",
            "fingerprint:sha-256",
            "fingerprint:sha-256 XYZ",
            "setup:sometimes",
            "bad name:1",
            "",
        ] {
            assert!(Attribute::parse(text).is_err(), "{text:?}");
        }
    }

    #[test]
    fn a_trickled_candidate_reads_with_or_without_its_prefix() {
        let line = "candidate:1 1 udp 2122260223 192.0.2.1 5000 typ host generation 0";
        let with: Candidate = line.parse().unwrap();
        let without: Candidate = line.trim_start_matches("candidate:").parse().unwrap();
        assert_eq!(with, without);
        assert_eq!(with.to_attribute_value(), line);
        assert_eq!(format!("a={line}").parse::<Candidate>().unwrap(), with);
        assert!("candidate:1 1 udp".parse::<Candidate>().is_err());
    }

    #[test]
    fn fmtp_of_a_non_rtp_format_is_kept_as_written() {
        let attribute = Attribute::parse("fmtp:webrtc-datachannel max-message-size=1").unwrap();
        assert!(matches!(attribute, Attribute::Other { .. }));
        assert_eq!(
            attribute.to_string(),
            "fmtp:webrtc-datachannel max-message-size=1"
        );
    }
}
