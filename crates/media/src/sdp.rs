//! The little SDP reading this crate does itself (RFC 8866 syntax, RFC 3264 offer/answer):
//! a sanity check that rejects garbage with a clear error before the WebRTC stack sees it, and
//! the payload-type map of the audio section (RFC 8866 §6.6 `a=rtpmap`, with RFC 3551 static
//! types 0 and 8 that may appear without one).

use crate::config::AudioCodec;
use crate::error::MediaError;

/// What an RTP payload type carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadFormat {
    /// Audio we can decode.
    Audio(AudioCodec),
    /// RFC 4733 named telephone events at the given clock rate.
    TelephoneEvent(u32),
}

/// One format listed in the audio `m=` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdpFormat {
    /// RTP payload type.
    pub payload_type: u8,
    /// Encoding name (`opus`, `PCMU`, …), as written.
    pub name: String,
    /// Clock rate in Hz.
    pub clock_rate: u32,
}

impl SdpFormat {
    /// What this format means to us, if anything.
    pub fn format(&self) -> Option<PayloadFormat> {
        if self.name.eq_ignore_ascii_case("telephone-event") {
            return Some(PayloadFormat::TelephoneEvent(self.clock_rate));
        }
        let codec = AudioCodec::from_encoding_name(&self.name)?;
        (codec.clock_rate() == self.clock_rate).then_some(PayloadFormat::Audio(codec))
    }
}

/// The audio section of a session description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioSection {
    /// Port from the `m=` line; 0 means the stream was rejected (RFC 3264 §6).
    pub port: u16,
    /// Formats in `m=` line order (the sender's preference order).
    pub formats: Vec<SdpFormat>,
}

/// Checks that `sdp` is a session description with an audio section and returns that section.
pub fn audio_section(sdp: &str) -> Result<AudioSection, MediaError> {
    let mut lines = sdp.lines().map(str::trim).filter(|l| !l.is_empty());
    match lines.next() {
        Some("v=0") => {}
        Some(other) => {
            return Err(MediaError::BadSdp(format!(
                "must start with v=0, starts with {:?}",
                other.chars().take(20).collect::<String>()
            )));
        }
        None => return Err(MediaError::BadSdp("empty".into())),
    }
    let mut section: Option<AudioSection> = None;
    let mut in_audio = false;
    for line in lines {
        let Some((kind, value)) = line.split_once('=') else {
            return Err(MediaError::BadSdp(format!(
                "line without '=': {:?}",
                line.chars().take(40).collect::<String>()
            )));
        };
        if kind.len() != 1 {
            return Err(MediaError::BadSdp(format!("bad line type {kind:?}")));
        }
        if kind == "m" {
            in_audio = false;
            let mut fields = value.split_whitespace();
            let media = fields.next().unwrap_or_default();
            if media != "audio" || section.is_some() {
                continue;
            }
            let port = fields
                .next()
                .and_then(|p| p.split('/').next())
                .and_then(|p| p.parse::<u16>().ok())
                .ok_or_else(|| MediaError::BadSdp("audio m= line without a port".into()))?;
            let _proto = fields
                .next()
                .ok_or_else(|| MediaError::BadSdp("audio m= line without a protocol".into()))?;
            let mut formats = Vec::new();
            for pt in fields {
                let payload_type = pt
                    .parse::<u8>()
                    .ok()
                    .filter(|pt| *pt < 128)
                    .ok_or_else(|| MediaError::BadSdp(format!("bad payload type {pt:?}")))?;
                // RFC 3551 table 4 static assignments, overridden by an a=rtpmap if present.
                let (name, clock_rate) = match payload_type {
                    0 => ("PCMU", 8_000),
                    8 => ("PCMA", 8_000),
                    _ => ("", 0),
                };
                formats.push(SdpFormat {
                    payload_type,
                    name: name.to_owned(),
                    clock_rate,
                });
            }
            section = Some(AudioSection { port, formats });
            in_audio = true;
        } else if kind == "a" && in_audio {
            let Some(rtpmap) = value.strip_prefix("rtpmap:") else {
                continue;
            };
            let Some((pt, encoding)) = rtpmap.split_once(' ') else {
                return Err(MediaError::BadSdp(format!("bad rtpmap {rtpmap:?}")));
            };
            let mut parts = encoding.trim().split('/');
            let name = parts.next().unwrap_or_default();
            let clock_rate = parts
                .next()
                .and_then(|r| r.parse::<u32>().ok())
                .ok_or_else(|| MediaError::BadSdp(format!("bad rtpmap {rtpmap:?}")))?;
            if let (Ok(pt), Some(section)) = (pt.parse::<u8>(), section.as_mut())
                && let Some(format) = section.formats.iter_mut().find(|f| f.payload_type == pt)
            {
                format.name = name.to_owned();
                format.clock_rate = clock_rate;
            }
        }
    }
    section.ok_or_else(|| MediaError::BadSdp("no audio m= line".into()))
}

/// The audio section, or `NoCommonCodec` if it lists nothing we can decode.
pub fn usable_audio_section(sdp: &str) -> Result<AudioSection, MediaError> {
    let section = audio_section(sdp)?;
    let has_audio = section
        .formats
        .iter()
        .any(|f| matches!(f.format(), Some(PayloadFormat::Audio(_))));
    if section.port == 0 || !has_audio {
        return Err(MediaError::NoCommonCodec {
            offered: section
                .formats
                .iter()
                .map(|f| format!("{}/{}", f.name, f.clock_rate))
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    Ok(section)
}

/// The ICE username fragment and password (`a=ice-ufrag`, `a=ice-pwd`, RFC 8839 §5.4) of a
/// description with one set of credentials (BUNDLE: the first occurrence of each counts).
pub fn ice_credentials(sdp: &str) -> Option<(String, String)> {
    let value = |name: &str| {
        sdp.lines()
            .find_map(|line| line.trim().strip_prefix(name))
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    Some((value("a=ice-ufrag:")?, value("a=ice-pwd:")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_ice_credentials() {
        let sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=ice-ufrag:Ab3d\r\n\
            a=ice-pwd:0123456789abcdefghijkl\r\n";
        assert_eq!(
            ice_credentials(sdp),
            Some(("Ab3d".to_owned(), "0123456789abcdefghijkl".to_owned()))
        );
        assert_eq!(ice_credentials("v=0\r\na=ice-ufrag:Ab3d\r\n"), None);
        assert_eq!(ice_credentials(OFFER), None);
    }

    const OFFER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111 0 126\r\nc=IN IP4 0.0.0.0\r\n\
        a=rtpmap:111 opus/48000/2\r\na=rtpmap:126 telephone-event/8000\r\n";

    #[test]
    fn reads_formats_with_static_types() {
        let section = audio_section(OFFER).unwrap();
        let formats: Vec<_> = section.formats.iter().map(SdpFormat::format).collect();
        assert_eq!(
            formats,
            vec![
                Some(PayloadFormat::Audio(AudioCodec::Opus)),
                Some(PayloadFormat::Audio(AudioCodec::Pcmu)),
                Some(PayloadFormat::TelephoneEvent(8000)),
            ]
        );
    }

    #[test]
    fn rejects_garbage_without_panicking() {
        for garbage in [
            "",
            "hello",
            "v=0\r\nm=audio",
            "v=0\r\nm=audio x RTP/AVP 0",
            "v=0\r\nm=audio 9 RTP/AVP 300",
            "v=0\r\nthis is not sdp",
            "v=0\r\nm=video 9 RTP/AVP 96\r\n",
            "\u{0}\u{1}\u{2}",
        ] {
            assert!(
                matches!(audio_section(garbage), Err(MediaError::BadSdp(_))),
                "{garbage:?}"
            );
        }
    }

    #[test]
    fn no_known_codec_is_reported_as_such() {
        let sdp = "v=0\r\nm=audio 9 RTP/AVP 9\r\na=rtpmap:9 G722/8000\r\n";
        assert!(matches!(
            usable_audio_section(sdp),
            Err(MediaError::NoCommonCodec { .. })
        ));
    }
}
