//! The MSRP view of a session description: RFC 4975 §8 (`m=message`, `a=path`,
//! `a=accept-types`), RFC 7977 (`TCP/WS/MSRP`), RFC 5547 (`a=file-selector`,
//! `a=file-transfer-id`, `a=file-disposition`, `a=file-date`, `a=file-range`), read from and
//! written to the one SDP model, [`lyrebird_sdp::SessionDescription`].
//!
//! A push offer (RFC 5547 §6) is `a=sendonly` with the file selector; the answer is
//! `a=recvonly` repeating the selector. Resuming (RFC 5547 §9) is a new offer with the same
//! selector and `a=file-transfer-id`, and `a=file-range:<first>-<last>` naming the bytes still
//! to come.

use lyrebird_sdp::{
    Attribute, Connection, MediaDescription, MediaKind, Origin, SessionDescription, Setup,
    format_file_range, parse_file_range,
};
pub use lyrebird_sdp::{Direction, FileSelector};

use crate::error::MsrpError;
use crate::uri::{MsrpUri, format_path};

/// The `m=message` stream of an MSRP session.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MsrpMedia {
    /// `TCP/WS/MSRP` over WebSocket (RFC 7977), `TCP/TLS/MSRP`, or `TCP/MSRP`.
    pub protocol: String,
    /// `a=path`: relays first, the endpoint's own URI last (RFC 4976 §6.1).
    pub path: Vec<MsrpUri>,
    /// `a=accept-types`.
    pub accept_types: Vec<String>,
    /// `a=accept-wrapped-types`: what may travel inside a wrapper type such as `message/cpim`.
    pub accept_wrapped_types: Vec<String>,
    /// The direction that applies to the stream (its own attribute, else the session's).
    pub direction: Direction,
    /// `a=file-selector`, for a file transfer.
    pub file_selector: Option<FileSelector>,
    /// `a=file-transfer-id`: names this transfer across resumed sessions.
    pub file_transfer_id: Option<String>,
    /// `a=file-disposition` (`attachment`, `render`).
    pub file_disposition: Option<String>,
    /// `a=file-date` value as written (e.g. `modification:"Fri, 19 Nov 2026 10:00:00 GMT"`).
    pub file_date: Option<String>,
    /// `a=file-range`: 1-based first and last byte (`None` last = `*`, to the end).
    pub file_range: Option<(u64, Option<u64>)>,
    /// `a=max-size`.
    pub max_size: Option<u64>,
}

/// True for an `m=message` section over an MSRP protocol.
fn is_msrp(section: &MediaDescription) -> bool {
    section.kind == MediaKind::Message && section.protocol.to_ascii_uppercase().ends_with("/MSRP")
}

/// True if the SDP offers an MSRP stream (`m=message` over an MSRP protocol), which is how an
/// INVITE for a file transfer or a chat is told from a call.
pub fn offers_msrp(sdp: &str) -> bool {
    SessionDescription::parse(sdp).is_ok_and(|d| d.media.iter().any(is_msrp))
}

fn sdp_error(error: lyrebird_sdp::SdpError) -> MsrpError {
    MsrpError::Sdp(error.to_string())
}

fn other(name: &str, value: impl Into<String>) -> Attribute {
    Attribute::Other {
        name: name.to_owned(),
        value: Some(value.into()),
    }
}

impl MsrpMedia {
    /// Writes a whole SDP body with this one stream. `session_version` goes in `o=`.
    pub fn to_sdp(&self, session_id: u64, session_version: u64) -> String {
        self.to_description(session_id, session_version).to_string()
    }

    /// The whole description with this one stream, for callers that edit it further.
    pub fn to_description(&self, session_id: u64, session_version: u64) -> SessionDescription {
        let host = self
            .path
            .last()
            .map_or("lyrebird.invalid", |u| u.host.as_str())
            .to_owned();
        let port = self.path.last().and_then(|u| u.port).unwrap_or(9);
        let mut description = SessionDescription::new(Origin {
            username: "-".into(),
            session_id: session_id.to_string(),
            session_version,
            network_type: "IN".into(),
            address_type: "IP4".into(),
            address: host.clone(),
        });
        description.connection = Some(Connection {
            network_type: "IN".into(),
            address_type: "IP4".into(),
            address: host,
        });
        let mut section =
            MediaDescription::new(MediaKind::Message, port, &self.protocol, vec!["*".into()]);
        let attributes = &mut section.attributes;
        attributes.push(other("path", format_path(&self.path)));
        let types = if self.accept_types.is_empty() {
            "*".to_owned()
        } else {
            self.accept_types.join(" ")
        };
        attributes.push(other("accept-types", types));
        if !self.accept_wrapped_types.is_empty() {
            attributes.push(other(
                "accept-wrapped-types",
                self.accept_wrapped_types.join(" "),
            ));
        }
        // RFC 7977 §8: over WebSocket the client always opens the connection.
        attributes.push(Attribute::Setup(Setup::Active));
        attributes.push(Attribute::Direction(self.direction));
        if let Some(selector) = &self.file_selector {
            attributes.push(other("file-selector", selector.to_attribute()));
        }
        if let Some(id) = &self.file_transfer_id {
            attributes.push(other("file-transfer-id", id));
        }
        if let Some(d) = &self.file_disposition {
            attributes.push(other("file-disposition", d));
        }
        if let Some(d) = &self.file_date {
            attributes.push(other("file-date", d));
        }
        if let Some(range) = self.file_range {
            attributes.push(other("file-range", format_file_range(range)));
        }
        if let Some(max) = self.max_size {
            attributes.push(other("max-size", max.to_string()));
        }
        description.media.push(section);
        description
    }

    /// Finds and parses the first MSRP `m=message` stream of an SDP body.
    pub fn parse(sdp: &str) -> Result<Self, MsrpError> {
        let description = SessionDescription::parse(sdp).map_err(sdp_error)?;
        Self::from_description(&description)
    }

    /// Reads the first MSRP `m=message` stream of a parsed description.
    pub fn from_description(description: &SessionDescription) -> Result<Self, MsrpError> {
        let (index, section) = description
            .media
            .iter()
            .enumerate()
            .find(|(_, m)| is_msrp(m))
            .ok_or_else(|| MsrpError::Sdp("no MSRP m=message stream".into()))?;
        if section.is_rejected() {
            return Err(MsrpError::Sdp(
                "the MSRP stream was refused (port 0)".into(),
            ));
        }
        let mut media = MsrpMedia {
            protocol: section.protocol.clone(),
            direction: description.direction(index).unwrap_or_default(),
            ..MsrpMedia::default()
        };
        for attribute in &section.attributes {
            let Attribute::Other { name, value } = attribute else {
                continue;
            };
            let value = value.as_deref().unwrap_or("");
            match name.as_str() {
                "path" => media.path = MsrpUri::parse_list(value)?,
                "accept-types" => {
                    media.accept_types =
                        value.split_ascii_whitespace().map(str::to_owned).collect();
                }
                "accept-wrapped-types" => {
                    media.accept_wrapped_types =
                        value.split_ascii_whitespace().map(str::to_owned).collect();
                }
                "file-selector" => {
                    media.file_selector = Some(FileSelector::parse(value).map_err(sdp_error)?);
                }
                "file-transfer-id" => media.file_transfer_id = Some(value.trim().to_owned()),
                "file-disposition" => media.file_disposition = Some(value.trim().to_owned()),
                "file-date" => media.file_date = Some(value.trim().to_owned()),
                "max-size" => media.max_size = value.trim().parse().ok(),
                "file-range" => {
                    media.file_range = Some(parse_file_range(value).map_err(sdp_error)?)
                }
                _ => {}
            }
        }
        if media.path.is_empty() {
            return Err(MsrpError::Sdp("the MSRP stream has no a=path".into()));
        }
        Ok(media)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 5547 §9.1 (the offer of a file push), adapted to WebSocket and a relay.
    const OFFER: &str = "v=0\r\n\
o=alice 2890844526 2890844526 IN IP4 host.atlanta.example.com\r\n\
s=-\r\n\
c=IN IP4 host.atlanta.example.com\r\n\
t=0 0\r\n\
m=message 7654 TCP/WS/MSRP *\r\n\
i=This is my latest picture\r\n\
a=sendonly\r\n\
a=accept-types:message/cpim\r\n\
a=accept-wrapped-types:*\r\n\
a=path:msrp://relay.example.com:443/abc;ws msrp://atlanta.invalid:7654/jshA7we;ws\r\n\
a=file-selector:name:\"My cool picture.jpg\" type:image/jpeg size:32349 hash:sha-1:72:24:5F:E8:65:3D:DA:F3:71:36:2F:86:D4:71:91:3E:E4:A2:CE:2E\r\n\
a=file-transfer-id:vBnG916bdberum2fFEABR1FR3ExZMUrd\r\n\
a=file-disposition:attachment\r\n\
a=file-date:creation:\"Mon, 15 May 2006 15:01:31 +0300\"\r\n\
a=file-icon:cid:id2@alicepc.example.com\r\n\
a=file-range:1-32349\r\n";

    #[test]
    fn parses_rfc5547_offer() {
        assert!(offers_msrp(OFFER));
        assert!(!offers_msrp(
            "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
        ));
        let m = MsrpMedia::parse(OFFER).unwrap();
        assert_eq!(m.direction, Direction::SendOnly);
        assert_eq!(m.path.len(), 2);
        let s = m.file_selector.as_ref().unwrap();
        assert_eq!(s.name, "My cool picture.jpg");
        assert_eq!(s.size, Some(32349));
        assert_eq!(s.mime_type.as_deref(), Some("image/jpeg"));
        assert_eq!(s.sha256, None);
        assert_eq!(m.file_range, Some((1, Some(32349))));
        assert_eq!(
            m.file_transfer_id.as_deref(),
            Some("vBnG916bdberum2fFEABR1FR3ExZMUrd")
        );
    }

    #[test]
    fn an_msrp_stream_after_a_call_is_found_and_direction_falls_back() {
        let sdp = "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nt=0 0\r\na=recvonly\r\n\
            m=audio 0 RTP/AVP 0\r\n\
            m=message 9 TCP/WS/MSRP *\r\na=path:msrp://h:9/x;ws\r\n";
        assert!(offers_msrp(sdp));
        let m = MsrpMedia::parse(sdp).unwrap();
        assert_eq!(m.direction, Direction::RecvOnly);
        assert_eq!(m.accept_types, Vec::<String>::new());
    }

    #[test]
    fn unusable_streams_are_errors() {
        let head = "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nt=0 0\r\n";
        for (body, expected) in [
            ("m=audio 9 RTP/AVP 0\r\n", "no MSRP"),
            (
                "m=message 0 TCP/WS/MSRP *\r\na=path:msrp://h:9/x;ws\r\n",
                "port 0",
            ),
            ("m=message 9 TCP/WS/MSRP *\r\n", "no a=path"),
            ("m=message 9 TCP/WS/MSRP *\r\na=path:\r\n", "empty path"),
            (
                "m=message 9 TCP/WS/MSRP *\r\na=path:msrp://h:9/x;ws\r\na=file-range:0-5\r\n",
                "file-range",
            ),
            (
                "m=message 9 TCP/WS/MSRP *\r\na=path:msrp://h:9/x;ws\r\na=file-selector:size:1\r\n",
                "file-selector",
            ),
            ("m=message 9\r\n", "SDP line 5"),
        ] {
            let error = MsrpMedia::parse(&format!("{head}{body}")).unwrap_err();
            assert!(error.to_string().contains(expected), "{body:?}: {error}");
        }
        assert!(MsrpMedia::parse("garbage").is_err());
        assert!(!offers_msrp("garbage m=message 9 TCP/WS/MSRP *"));
    }

    #[test]
    fn a_chat_offer_round_trips_its_wrapped_types() {
        let media = MsrpMedia {
            protocol: "TCP/WS/MSRP".into(),
            path: MsrpUri::parse_list("msrp://r:1/x;ws msrp://me.invalid:2855/y;ws").unwrap(),
            accept_types: vec!["message/cpim".into(), "text/plain".into()],
            accept_wrapped_types: vec!["text/plain".into()],
            ..MsrpMedia::default()
        };
        let sdp = media.to_sdp(1, 1);
        assert!(
            sdp.contains("a=accept-wrapped-types:text/plain\r\n"),
            "{sdp}"
        );
        assert_eq!(MsrpMedia::parse(&sdp).unwrap(), media);
    }

    #[test]
    fn writes_the_same_offer_as_before() {
        let media = MsrpMedia {
            protocol: "TCP/WS/MSRP".into(),
            path: MsrpUri::parse_list("msrp://r:1/x;ws msrp://me.invalid:2855/y;ws").unwrap(),
            accept_types: vec!["text/plain".into()],
            direction: Direction::SendOnly,
            file_transfer_id: Some("t1".into()),
            file_range: Some((5, None)),
            max_size: Some(10),
            ..MsrpMedia::default()
        };
        assert_eq!(
            media.to_sdp(7, 2),
            "v=0\r\no=- 7 2 IN IP4 me.invalid\r\ns=-\r\nc=IN IP4 me.invalid\r\nt=0 0\r\n\
             m=message 2855 TCP/WS/MSRP *\r\n\
             a=path:msrp://r:1/x;ws msrp://me.invalid:2855/y;ws\r\n\
             a=accept-types:text/plain\r\na=setup:active\r\na=sendonly\r\n\
             a=file-transfer-id:t1\r\na=file-range:5-*\r\na=max-size:10\r\n"
        );
    }

    #[test]
    fn round_trips_with_hostile_name_and_sha256() {
        let media = MsrpMedia {
            protocol: "TCP/WS/MSRP".into(),
            path: MsrpUri::parse_list("msrp://r:1/x;ws msrp://me.invalid:2855/y;ws").unwrap(),
            accept_types: vec!["*".into()],
            accept_wrapped_types: Vec::new(),
            direction: Direction::SendOnly,
            file_selector: Some(FileSelector {
                name: "../\"evil\"%\r\n.txt".into(),
                mime_type: Some("application/octet-stream".into()),
                size: Some(0),
                sha256: Some([0xab; 32]),
            }),
            file_transfer_id: Some("t1".into()),
            file_disposition: Some("attachment".into()),
            file_date: None,
            file_range: Some((5, None)),
            max_size: None,
        };
        let sdp = media.to_sdp(1, 2);
        assert!(!sdp.contains("\"evil\""));
        assert_eq!(MsrpMedia::parse(&sdp).unwrap(), media);
    }
}
