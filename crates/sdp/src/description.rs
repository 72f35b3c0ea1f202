//! A whole session description (RFC 8866 §5): the session-level lines, then the media sections.
//!
//! Parsing takes the lines in any order within their level and refuses what RFC 8866 does not
//! allow there; writing puts them in the order of the RFC 8866 §9 grammar, with CRLF line ends
//! and attributes in the order they were read, so a conforming description comes back byte for
//! byte.

use std::fmt;
use std::str::FromStr;

use crate::attribute::{Attribute, Fingerprint, Group, Setup};
use crate::direction::Direction;
use crate::error::{SdpError, quote};
use crate::line::{Bandwidth, Connection};
use crate::media::{self, MediaDescription, MediaKind};
use crate::{MAX_DESCRIPTION_BYTES, MAX_FORMATS, MAX_LINES, MAX_MEDIA_SECTIONS};

/// `o=` (RFC 8866 §5.2): who made the description and which version of it this is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// User name, `-` when there is none.
    pub username: String,
    /// Session ID, as written (a number, but peers write more digits than any integer holds).
    pub session_id: String,
    /// Session version; RFC 3264 §8 makes each new offer in a session increase it.
    pub session_version: u64,
    /// Network type, `IN`.
    pub network_type: String,
    /// Address type, `IP4` or `IP6`.
    pub address_type: String,
    /// Address or host name of the origin.
    pub address: String,
}

/// `t=` (RFC 8866 §5.9) and the `r=` lines that follow it, which are kept as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timing {
    /// Start time (NTP seconds); 0 for an unbounded session, as SIP writes it.
    pub start: u64,
    /// Stop time; 0 for an unbounded session.
    pub stop: u64,
    /// `r=` repeat lines under this `t=`.
    pub repeats: Vec<String>,
}

/// A session description with any number of media sections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription {
    /// `o=`.
    pub origin: Origin,
    /// `s=`; SIP writes `-`.
    pub session_name: String,
    /// `i=`.
    pub information: Option<String>,
    /// `u=`.
    pub uri: Option<String>,
    /// `e=` lines.
    pub emails: Vec<String>,
    /// `p=` lines.
    pub phones: Vec<String>,
    /// Session-level `c=`, the fallback for sections without their own.
    pub connection: Option<Connection>,
    /// Session-level `b=` lines.
    pub bandwidths: Vec<Bandwidth>,
    /// `t=` lines (at least one).
    pub timing: Vec<Timing>,
    /// `z=` (time zone adjustments), kept as written.
    pub time_zones: Option<String>,
    /// `k=` (obsolete, RFC 8866 §5.12), kept as written.
    pub key: Option<String>,
    /// Session-level `a=` lines in order.
    pub attributes: Vec<Attribute>,
    /// Media sections in order; their index is how RFC 3264 matches an answer to its offer.
    pub media: Vec<MediaDescription>,
}

impl SessionDescription {
    /// A description with no media, `s=-` and `t=0 0`, as SIP user agents write it.
    pub fn new(origin: Origin) -> Self {
        SessionDescription {
            origin,
            session_name: "-".to_owned(),
            information: None,
            uri: None,
            emails: Vec::new(),
            phones: Vec::new(),
            connection: None,
            bandwidths: Vec::new(),
            timing: vec![Timing {
                start: 0,
                stop: 0,
                repeats: Vec::new(),
            }],
            time_zones: None,
            key: None,
            attributes: Vec::new(),
            media: Vec::new(),
        }
    }

    /// Parses a description. Lines may end in CRLF or LF; blank lines are skipped.
    pub fn parse(text: &str) -> Result<Self, SdpError> {
        Parser::default().parse(text)
    }

    /// Parses a description received as bytes.
    pub fn parse_bytes(bytes: &[u8]) -> Result<Self, SdpError> {
        if bytes.len() > MAX_DESCRIPTION_BYTES {
            return Err(SdpError::TooLarge {
                len: bytes.len(),
                max: MAX_DESCRIPTION_BYTES,
            });
        }
        Self::parse(std::str::from_utf8(bytes).map_err(|_| SdpError::NotText)?)
    }

    /// The session-level direction attribute, if any.
    pub fn session_direction(&self) -> Option<Direction> {
        self.attributes.iter().find_map(|a| match a {
            Attribute::Direction(d) => Some(*d),
            _ => None,
        })
    }

    /// The direction that applies to section `index` (RFC 3264 §5.1): its own attribute, else
    /// the session-level one, else `sendrecv`. `None` if there is no such section.
    pub fn direction(&self, index: usize) -> Option<Direction> {
        let section = self.media.get(index)?;
        Some(
            section
                .direction()
                .or_else(|| self.session_direction())
                .unwrap_or_default(),
        )
    }

    /// Replaces the direction of every audio and video section still in use (port not 0) with
    /// `change(current direction)`: `Direction::held` puts a call on hold, a constant answers
    /// a peer's hold. Each changed section gets its own attribute, which overrides any
    /// session-level one.
    pub fn map_audio_video_direction(&mut self, change: impl Fn(Direction) -> Direction) {
        let fallback = self.session_direction().unwrap_or_default();
        for section in &mut self.media {
            if section.is_audio_or_video() && !section.is_rejected() {
                let current = section.direction().unwrap_or(fallback);
                section.set_direction(change(current));
            }
        }
    }

    /// Sets `direction` on every audio and video section still in use.
    pub fn set_audio_video_direction(&mut self, direction: Direction) {
        self.map_audio_video_direction(|_| direction);
    }

    /// Increments the session version in `o=`, as RFC 3264 §8 requires of every new offer in
    /// a session (it wraps at 2^64 rather than failing: "different" is what a peer checks).
    pub fn bump_version(&mut self) {
        self.origin.session_version = self.origin.session_version.wrapping_add(1);
    }

    /// The `c=` that applies to section `index`: its own first one, else the session's.
    pub fn connection_of(&self, index: usize) -> Option<&Connection> {
        let section = self.media.get(index)?;
        section.connections.first().or(self.connection.as_ref())
    }

    /// The ICE username fragment and password of section `index` (RFC 8839 §5.4: the
    /// section's own, else the session-level ones).
    pub fn ice_credentials(&self, index: usize) -> Option<(&str, &str)> {
        let section = self.media.get(index)?;
        let ufrag = section
            .ice_ufrag()
            .or_else(|| media::ice_ufrag(&self.attributes))?;
        let pwd = section
            .ice_pwd()
            .or_else(|| media::ice_pwd(&self.attributes))?;
        Some((ufrag, pwd))
    }

    /// The DTLS fingerprint of section `index`: its own, else the session-level one.
    pub fn fingerprint(&self, index: usize) -> Option<&Fingerprint> {
        let section = self.media.get(index)?;
        section
            .fingerprint()
            .or_else(|| media::fingerprint(&self.attributes))
    }

    /// The `a=setup` role of section `index`: its own, else the session-level one.
    pub fn setup(&self, index: usize) -> Option<Setup> {
        let section = self.media.get(index)?;
        section.setup().or_else(|| media::setup(&self.attributes))
    }

    /// Session-level `a=group` lines.
    pub fn groups(&self) -> impl Iterator<Item = &Group> {
        self.attributes.iter().filter_map(|a| match a {
            Attribute::Group(g) => Some(g),
            _ => None,
        })
    }

    /// The mids of the first `a=group:BUNDLE` (RFC 8843), if any.
    pub fn bundle(&self) -> Option<&[String]> {
        self.groups()
            .find(|g| g.semantics == "BUNDLE")
            .map(|g| g.mids.as_slice())
    }

    /// The section tagged `a=mid:<mid>`, with its index.
    pub fn media_by_mid(&self, mid: &str) -> Option<(usize, &MediaDescription)> {
        self.media
            .iter()
            .enumerate()
            .find(|(_, m)| m.mid() == Some(mid))
    }

    /// Like [`MediaDescription::value_of`], for session-level attributes.
    pub fn value_of(&self, name: &str) -> Option<&str> {
        media::value_of(&self.attributes, name)
    }

    /// True if this description, from a peer, puts section `index` on hold (RFC 6337 §5): the
    /// section is in use and its direction is `sendonly` or `inactive`, or it is the legacy
    /// RFC 2543 form, `c=IN IP4 0.0.0.0`.
    ///
    /// The legacy form counts only in a section without ICE: with ICE (RFC 8839 §4.2.1.2)
    /// `0.0.0.0` with port 9 merely means "no candidate gathered yet", and a trickling browser
    /// writes it in every first offer.
    pub fn holds(&self, index: usize) -> bool {
        let (Some(section), Some(direction)) = (self.media.get(index), self.direction(index))
        else {
            return false;
        };
        if section.is_rejected() {
            return false;
        }
        let uses_ice =
            section.ice_ufrag().is_some() || media::ice_ufrag(&self.attributes).is_some();
        !direction.receives()
            || (!uses_ice
                && self
                    .connection_of(index)
                    .is_some_and(Connection::is_unspecified_ip4))
    }

    /// True if this description, from a peer, puts the call on hold: it has audio or video in
    /// use and every such section [`holds`](Self::holds).
    pub fn holds_audio_video(&self) -> bool {
        let mut in_use = self
            .media
            .iter()
            .enumerate()
            .filter(|(_, m)| m.is_audio_or_video() && !m.is_rejected())
            .peekable();
        in_use.peek().is_some() && in_use.all(|(index, _)| self.holds(index))
    }

    /// The first section of `kind`, with its index.
    pub fn first_of(&self, kind: &MediaKind) -> Option<(usize, &MediaDescription)> {
        self.media.iter().enumerate().find(|(_, m)| &m.kind == kind)
    }
}

impl FromStr for SessionDescription {
    type Err = SdpError;

    fn from_str(text: &str) -> Result<Self, SdpError> {
        Self::parse(text)
    }
}

/// Builds a description line by line, tracking which section the lines belong to.
#[derive(Default)]
struct Parser {
    origin: Option<Origin>,
    session_name: Option<String>,
    information: Option<String>,
    uri: Option<String>,
    emails: Vec<String>,
    phones: Vec<String>,
    connection: Option<Connection>,
    bandwidths: Vec<Bandwidth>,
    timing: Vec<Timing>,
    time_zones: Option<String>,
    key: Option<String>,
    attributes: Vec<Attribute>,
    media: Vec<MediaDescription>,
}

/// Stores `value` in a field that RFC 8866 allows once.
fn once<T>(field: &mut Option<T>, value: T, kind: char) -> Result<(), String> {
    if field.is_some() {
        return Err(format!("a second {kind}= line"));
    }
    *field = Some(value);
    Ok(())
}

impl Parser {
    fn parse(mut self, text: &str) -> Result<SessionDescription, SdpError> {
        if text.len() > MAX_DESCRIPTION_BYTES {
            return Err(SdpError::TooLarge {
                len: text.len(),
                max: MAX_DESCRIPTION_BYTES,
            });
        }
        let mut lines = text
            .split('\n')
            .enumerate()
            .map(|(i, line)| (i + 1, line.strip_suffix('\r').unwrap_or(line)))
            .filter(|(_, line)| !line.is_empty());
        match lines.next() {
            Some((_, "v=0")) => {}
            Some((line, other)) => {
                return Err(SdpError::Syntax {
                    line,
                    reason: format!("must start with v=0, starts with {}", quote(other)),
                });
            }
            None => return Err(SdpError::Missing("v=")),
        }
        for (count, (number, line)) in lines.enumerate() {
            if count >= MAX_LINES {
                return Err(SdpError::TooMany {
                    what: "lines",
                    max: MAX_LINES,
                });
            }
            self.line(line).map_err(|reason| SdpError::Syntax {
                line: number,
                reason,
            })?;
            if self.media.len() > MAX_MEDIA_SECTIONS {
                return Err(SdpError::TooMany {
                    what: "media sections",
                    max: MAX_MEDIA_SECTIONS,
                });
            }
        }
        if self.timing.is_empty() {
            return Err(SdpError::Missing("t="));
        }
        Ok(SessionDescription {
            origin: self.origin.ok_or(SdpError::Missing("o="))?,
            session_name: self.session_name.ok_or(SdpError::Missing("s="))?,
            information: self.information,
            uri: self.uri,
            emails: self.emails,
            phones: self.phones,
            connection: self.connection,
            bandwidths: self.bandwidths,
            timing: self.timing,
            time_zones: self.time_zones,
            key: self.key,
            attributes: self.attributes,
            media: self.media,
        })
    }

    fn line(&mut self, line: &str) -> Result<(), String> {
        let bytes = line.as_bytes();
        if bytes.len() < 2 || bytes[1] != b'=' || !bytes[0].is_ascii_lowercase() {
            return Err(format!("not a <type>=<value> line: {}", quote(line)));
        }
        if line.contains(['\r', '\0']) {
            return Err(format!("CR or NUL inside a line: {}", quote(line)));
        }
        let kind = char::from(bytes[0]);
        let value = &line[2..];
        if kind == 'm' {
            self.media.push(parse_media(value)?);
            return Ok(());
        }
        if let Some(section) = self.media.last_mut() {
            return match kind {
                'i' => once(&mut section.information, value.to_owned(), kind),
                'c' => {
                    section.connections.push(parse_connection(value)?);
                    Ok(())
                }
                'b' => {
                    section.bandwidths.push(parse_bandwidth(value)?);
                    Ok(())
                }
                'k' => once(&mut section.key, value.to_owned(), kind),
                'a' => {
                    section.attributes.push(Attribute::parse(value)?);
                    Ok(())
                }
                other => Err(format!("{other}= is not allowed in a media section")),
            };
        }
        match kind {
            'o' => once(&mut self.origin, parse_origin(value)?, kind),
            's' => once(&mut self.session_name, value.to_owned(), kind),
            'i' => once(&mut self.information, value.to_owned(), kind),
            'u' => once(&mut self.uri, value.to_owned(), kind),
            'e' => {
                self.emails.push(value.to_owned());
                Ok(())
            }
            'p' => {
                self.phones.push(value.to_owned());
                Ok(())
            }
            'c' => once(&mut self.connection, parse_connection(value)?, kind),
            'b' => {
                self.bandwidths.push(parse_bandwidth(value)?);
                Ok(())
            }
            't' => {
                self.timing.push(parse_timing(value)?);
                Ok(())
            }
            'r' => match self.timing.last_mut() {
                Some(timing) => {
                    timing.repeats.push(value.to_owned());
                    Ok(())
                }
                None => Err("r= before any t=".to_owned()),
            },
            'z' => once(&mut self.time_zones, value.to_owned(), kind),
            'k' => once(&mut self.key, value.to_owned(), kind),
            'a' => {
                self.attributes.push(Attribute::parse(value)?);
                Ok(())
            }
            'v' => Err("a second v= line".to_owned()),
            other => Err(format!("unknown line type {other}=")),
        }
    }
}

/// Reads a decimal number written with digits only (no sign, no spaces).
fn number<T: FromStr>(text: &str, what: &str) -> Result<T, String> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("bad {what} {}", quote(text)));
    }
    text.parse()
        .map_err(|_| format!("{what} out of range: {}", quote(text)))
}

fn parse_origin(value: &str) -> Result<Origin, String> {
    let fields: Vec<&str> = value.split_ascii_whitespace().take(7).collect();
    let [
        username,
        session_id,
        version,
        network_type,
        address_type,
        address,
    ] = fields[..]
    else {
        return Err(format!("o= needs six fields: {}", quote(value)));
    };
    Ok(Origin {
        username: username.to_owned(),
        session_id: session_id.to_owned(),
        session_version: number(version, "session version")?,
        network_type: network_type.to_owned(),
        address_type: address_type.to_owned(),
        address: address.to_owned(),
    })
}

fn parse_connection(value: &str) -> Result<Connection, String> {
    let fields: Vec<&str> = value.split_ascii_whitespace().take(4).collect();
    let [network_type, address_type, address] = fields[..] else {
        return Err(format!("c= needs three fields: {}", quote(value)));
    };
    Ok(Connection {
        network_type: network_type.to_owned(),
        address_type: address_type.to_owned(),
        address: address.to_owned(),
    })
}

fn parse_bandwidth(value: &str) -> Result<Bandwidth, String> {
    let (kind, amount) = value
        .split_once(':')
        .filter(|(kind, _)| crate::attribute::is_token(kind))
        .ok_or_else(|| format!("bad b= {}", quote(value)))?;
    Ok(Bandwidth {
        kind: kind.to_owned(),
        value: number(amount, "bandwidth")?,
    })
}

fn parse_timing(value: &str) -> Result<Timing, String> {
    let fields: Vec<&str> = value.split_ascii_whitespace().take(3).collect();
    let [start, stop] = fields[..] else {
        return Err(format!("t= needs two fields: {}", quote(value)));
    };
    Ok(Timing {
        start: number(start, "start time")?,
        stop: number(stop, "stop time")?,
        repeats: Vec::new(),
    })
}

fn parse_media(value: &str) -> Result<MediaDescription, String> {
    let mut fields = value.split_ascii_whitespace();
    let kind = fields
        .next()
        .filter(|k| crate::attribute::is_token(k))
        .ok_or_else(|| format!("m= without a media type: {}", quote(value)))?;
    let port_field = fields.next().ok_or("m= without a port")?;
    let (port, port_count) = match port_field.split_once('/') {
        Some((port, count)) => (port, Some(number(count, "port count")?)),
        None => (port_field, None),
    };
    let port = number(port, "port")?;
    let protocol = fields
        .next()
        .filter(|p| p.split('/').all(crate::attribute::is_token))
        .ok_or("m= without a protocol")?;
    let rtp = media::is_rtp(protocol);
    let mut formats = Vec::new();
    for format in fields {
        if formats.len() == MAX_FORMATS {
            return Err(format!("more than {MAX_FORMATS} formats in one m= line"));
        }
        if rtp && !number::<u8>(format, "payload type").is_ok_and(|pt| pt < 128) {
            return Err(format!("bad RTP payload type {}", quote(format)));
        }
        formats.push(format.to_owned());
    }
    if formats.is_empty() {
        return Err("m= without a format".to_owned());
    }
    let mut section = MediaDescription::new(MediaKind::from_name(kind), port, protocol, formats);
    section.port_count = port_count;
    Ok(section)
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} {} {} {}",
            self.username,
            self.session_id,
            self.session_version,
            self.network_type,
            self.address_type,
            self.address
        )
    }
}

impl fmt::Display for MediaDescription {
    /// Writes the section, from its `m=` line, each line ending in CRLF.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "m={} {}", self.kind, self.port)?;
        if let Some(count) = self.port_count {
            write!(f, "/{count}")?;
        }
        write!(f, " {}", self.protocol)?;
        for format in &self.formats {
            write!(f, " {format}")?;
        }
        f.write_str("\r\n")?;
        if let Some(i) = &self.information {
            write!(f, "i={i}\r\n")?;
        }
        for c in &self.connections {
            write!(f, "c={c}\r\n")?;
        }
        for b in &self.bandwidths {
            write!(f, "b={b}\r\n")?;
        }
        if let Some(k) = &self.key {
            write!(f, "k={k}\r\n")?;
        }
        for a in &self.attributes {
            write!(f, "a={a}\r\n")?;
        }
        Ok(())
    }
}

impl fmt::Display for SessionDescription {
    /// Writes the description in RFC 8866 §9 line order, each line ending in CRLF.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v=0\r\no={}\r\ns={}\r\n", self.origin, self.session_name)?;
        if let Some(i) = &self.information {
            write!(f, "i={i}\r\n")?;
        }
        if let Some(u) = &self.uri {
            write!(f, "u={u}\r\n")?;
        }
        for e in &self.emails {
            write!(f, "e={e}\r\n")?;
        }
        for p in &self.phones {
            write!(f, "p={p}\r\n")?;
        }
        if let Some(c) = &self.connection {
            write!(f, "c={c}\r\n")?;
        }
        for b in &self.bandwidths {
            write!(f, "b={b}\r\n")?;
        }
        for t in &self.timing {
            write!(f, "t={} {}\r\n", t.start, t.stop)?;
            for r in &t.repeats {
                write!(f, "r={r}\r\n")?;
            }
        }
        if let Some(z) = &self.time_zones {
            write!(f, "z={z}\r\n")?;
        }
        if let Some(k) = &self.key {
            write!(f, "k={k}\r\n")?;
        }
        for a in &self.attributes {
            write!(f, "a={a}\r\n")?;
        }
        for m in &self.media {
            write!(f, "{m}")?;
        }
        Ok(())
    }
}
