//! SDP for MSRP file transfer: RFC 4975 §8 (`m=message`, `a=path`, `a=accept-types`), RFC 7977
//! (`TCP/WS/MSRP`), RFC 5547 (`a=file-selector`, `a=file-transfer-id`, `a=file-disposition`,
//! `a=file-date`, `a=file-range`).
//!
//! A push offer (RFC 5547 §6) is `a=sendonly` with the file selector; the answer is
//! `a=recvonly` repeating the selector. Resuming (RFC 5547 §9) is a new offer with the same
//! selector and `a=file-transfer-id`, and `a=file-range:<first>-<last>` naming the bytes still
//! to come.

use std::fmt::Write as _;

use crate::error::MsrpError;
use crate::uri::{MsrpUri, format_path};

/// The file as described by `a=file-selector` (RFC 5547 §5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSelector {
    /// The file name as offered; untrusted, never a path.
    pub name: String,
    /// MIME type.
    pub mime_type: Option<String>,
    /// Size in bytes.
    pub size: Option<u64>,
    /// SHA-256 of the content.
    pub sha256: Option<[u8; 32]>,
}

/// Who sends in this media stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    /// `a=sendonly`: the describing side pushes the file.
    SendOnly,
    /// `a=recvonly`: the describing side receives it.
    RecvOnly,
    /// `a=sendrecv` (the default, e.g. chat).
    #[default]
    SendRecv,
}

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
    /// Direction attribute.
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

/// True if the SDP offers an MSRP stream (`m=message` over an MSRP protocol), which is how an
/// INVITE for a file transfer is told from an audio call.
pub fn offers_msrp(sdp: &str) -> bool {
    sdp.lines().any(|line| {
        let mut parts = line.trim_end().split(' ');
        parts.next() == Some("m=message")
            && parts
                .nth(1)
                .is_some_and(|proto| proto.to_ascii_uppercase().ends_with("/MSRP"))
    })
}

/// Percent-encodes what RFC 5547 §5's `filename-string` cannot hold: `"`, `%` and controls.
fn encode_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if c == '"' || c == '%' || c.is_control() {
            let mut buf = [0; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                let _ = write!(out, "%{b:02X}");
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn decode_name(encoded: &str) -> Result<String, MsrpError> {
    let bytes = encoded.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = encoded
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| MsrpError::Sdp("bad %-escape in the file name".into()))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| MsrpError::Sdp("file name is not UTF-8".into()))
}

impl FileSelector {
    /// Writes the attribute value (without `a=file-selector:`).
    pub fn to_attribute(&self) -> String {
        let mut v = format!("name:\"{}\"", encode_name(&self.name));
        if let Some(t) = &self.mime_type {
            let _ = write!(v, " type:{t}");
        }
        if let Some(size) = self.size {
            let _ = write!(v, " size:{size}");
        }
        if let Some(hash) = &self.sha256 {
            // RFC 5547 §5 uses the RFC 4572 fingerprint form: upper-case hex pairs and colons.
            let hex: Vec<String> = hash.iter().map(|b| format!("{b:02X}")).collect();
            let _ = write!(v, " hash:sha-256:{}", hex.join(":"));
        }
        v
    }

    /// Parses the attribute value.
    pub fn parse(value: &str) -> Result<Self, MsrpError> {
        let mut selector = FileSelector {
            name: String::new(),
            mime_type: None,
            size: None,
            sha256: None,
        };
        let mut rest = value.trim();
        let mut has_name = false;
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix("name:\"") {
                let end = after
                    .find('"')
                    .ok_or_else(|| MsrpError::Sdp("unterminated file name".into()))?;
                selector.name = decode_name(&after[..end])?;
                has_name = true;
                rest = after[end + 1..].trim_start();
                continue;
            }
            let (item, after) = rest.split_once(' ').unwrap_or((rest, ""));
            rest = after.trim_start();
            if let Some(t) = item.strip_prefix("type:") {
                selector.mime_type = Some(t.to_owned());
            } else if let Some(s) = item.strip_prefix("size:") {
                selector.size = Some(
                    s.parse()
                        .map_err(|_| MsrpError::Sdp(format!("bad file size {s:?}")))?,
                );
            } else if let Some(h) = item.strip_prefix("hash:") {
                let Some((algorithm, hex)) = h.split_once(':') else {
                    return Err(MsrpError::Sdp("bad file hash".into()));
                };
                if algorithm.eq_ignore_ascii_case("sha-256") {
                    let digits: String = hex.split(':').collect();
                    let bytes = hex::decode(&digits)
                        .map_err(|_| MsrpError::Sdp("bad sha-256 hex".into()))?;
                    selector.sha256 = Some(
                        bytes
                            .try_into()
                            .map_err(|_| MsrpError::Sdp("sha-256 is not 32 bytes".into()))?,
                    );
                }
                // Other hash algorithms (sha-1) are legal but give us nothing to check with.
            }
        }
        if !has_name {
            return Err(MsrpError::Sdp("file-selector without a name".into()));
        }
        Ok(selector)
    }
}

impl MsrpMedia {
    /// Writes a whole SDP body with this one stream. `session_version` goes in `o=`.
    pub fn to_sdp(&self, session_id: u64, session_version: u64) -> String {
        let host = self
            .path
            .last()
            .map_or("lyrebird.invalid", |u| u.host.as_str())
            .to_owned();
        let port = self.path.last().and_then(|u| u.port).unwrap_or(9);
        let mut s = String::with_capacity(512);
        let _ = write!(
            s,
            "v=0\r\no=- {session_id} {session_version} IN IP4 {host}\r\ns=-\r\nc=IN IP4 {host}\r\nt=0 0\r\n"
        );
        let _ = write!(s, "m=message {port} {} *\r\n", self.protocol);
        let _ = write!(s, "a=path:{}\r\n", format_path(&self.path));
        let types = if self.accept_types.is_empty() {
            "*".to_owned()
        } else {
            self.accept_types.join(" ")
        };
        let _ = write!(s, "a=accept-types:{types}\r\n");
        if !self.accept_wrapped_types.is_empty() {
            let wrapped = self.accept_wrapped_types.join(" ");
            let _ = write!(s, "a=accept-wrapped-types:{wrapped}\r\n");
        }
        // RFC 7977 §8: over WebSocket the client always opens the connection.
        s.push_str("a=setup:active\r\n");
        s.push_str(match self.direction {
            Direction::SendOnly => "a=sendonly\r\n",
            Direction::RecvOnly => "a=recvonly\r\n",
            Direction::SendRecv => "a=sendrecv\r\n",
        });
        if let Some(selector) = &self.file_selector {
            let _ = write!(s, "a=file-selector:{}\r\n", selector.to_attribute());
        }
        if let Some(id) = &self.file_transfer_id {
            let _ = write!(s, "a=file-transfer-id:{id}\r\n");
        }
        if let Some(d) = &self.file_disposition {
            let _ = write!(s, "a=file-disposition:{d}\r\n");
        }
        if let Some(d) = &self.file_date {
            let _ = write!(s, "a=file-date:{d}\r\n");
        }
        if let Some((first, last)) = self.file_range {
            match last {
                Some(last) => {
                    let _ = write!(s, "a=file-range:{first}-{last}\r\n");
                }
                None => {
                    let _ = write!(s, "a=file-range:{first}-*\r\n");
                }
            }
        }
        if let Some(max) = self.max_size {
            let _ = write!(s, "a=max-size:{max}\r\n");
        }
        s
    }

    /// Finds and parses the first MSRP `m=message` stream of an SDP body.
    pub fn parse(sdp: &str) -> Result<Self, MsrpError> {
        let mut media: Option<MsrpMedia> = None;
        let mut in_msrp = false;
        for line in sdp.lines() {
            let line = line.trim_end_matches('\r');
            if let Some(m) = line.strip_prefix("m=") {
                if media.is_some() {
                    break; // only the first MSRP stream counts
                }
                let fields: Vec<&str> = m.split(' ').collect();
                in_msrp = fields.first() == Some(&"message")
                    && fields
                        .get(2)
                        .is_some_and(|p| p.to_ascii_uppercase().ends_with("/MSRP"));
                if in_msrp {
                    if fields.get(1) == Some(&"0") {
                        return Err(MsrpError::Sdp(
                            "the MSRP stream was refused (port 0)".into(),
                        ));
                    }
                    media = Some(MsrpMedia {
                        protocol: fields.get(2).copied().unwrap_or_default().to_owned(),
                        ..MsrpMedia::default()
                    });
                }
                continue;
            }
            let (true, Some(m), Some(attr)) = (in_msrp, media.as_mut(), line.strip_prefix("a="))
            else {
                continue;
            };
            let (name, value) = attr.split_once(':').unwrap_or((attr, ""));
            match name {
                "path" => m.path = MsrpUri::parse_list(value)?,
                "accept-types" => {
                    m.accept_types = value.split_ascii_whitespace().map(str::to_owned).collect();
                }
                "accept-wrapped-types" => {
                    m.accept_wrapped_types =
                        value.split_ascii_whitespace().map(str::to_owned).collect();
                }
                "sendonly" => m.direction = Direction::SendOnly,
                "recvonly" => m.direction = Direction::RecvOnly,
                "sendrecv" => m.direction = Direction::SendRecv,
                "file-selector" => m.file_selector = Some(FileSelector::parse(value)?),
                "file-transfer-id" => m.file_transfer_id = Some(value.trim().to_owned()),
                "file-disposition" => m.file_disposition = Some(value.trim().to_owned()),
                "file-date" => m.file_date = Some(value.trim().to_owned()),
                "max-size" => m.max_size = value.trim().parse().ok(),
                "file-range" => {
                    let bad = || MsrpError::Sdp(format!("bad file-range {value:?}"));
                    let (first, last) = value.trim().split_once('-').ok_or_else(bad)?;
                    let first: u64 = first.parse().map_err(|_| bad())?;
                    let last = match last {
                        "*" => None,
                        n => Some(n.parse::<u64>().map_err(|_| bad())?),
                    };
                    if first == 0 || last.is_some_and(|l| l + 1 < first) {
                        return Err(bad());
                    }
                    m.file_range = Some((first, last));
                }
                _ => {}
            }
        }
        let media = media.ok_or_else(|| MsrpError::Sdp("no MSRP m=message stream".into()))?;
        if media.path.is_empty() {
            return Err(MsrpError::Sdp("the MSRP stream has no a=path".into()));
        }
        Ok(media)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 5547 §8.1 (the offer of a file push), adapted to WebSocket and a relay.
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
        assert!(!offers_msrp("v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"));
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
