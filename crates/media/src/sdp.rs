//! The media view of the shared SDP model (`lyrebird-sdp`, RFC 8866 syntax, RFC 3264
//! offer/answer): a check that rejects garbage with a clear error before the WebRTC stack sees
//! it, the payload-type map of the audio section (`a=rtpmap`, with RFC 3551 static types such
//! as 0 and 8 that may appear without one), and the ICE credentials of our own offer.

use lyrebird_sdp::{Attribute, MediaKind, SessionDescription, Setup};

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
    /// The `m=` line's transport protocol, e.g. `UDP/TLS/RTP/SAVPF`.
    pub protocol: String,
}

/// Checks that `sdp` is a session description with an audio section and returns that section.
pub fn audio_section(sdp: &str) -> Result<AudioSection, MediaError> {
    let description =
        SessionDescription::parse(sdp).map_err(|e| MediaError::BadSdp(e.to_string()))?;
    audio_section_of(&description)
}

/// The first audio section of a parsed description.
pub fn audio_section_of(description: &SessionDescription) -> Result<AudioSection, MediaError> {
    let (_, section) = description
        .first_of(&MediaKind::Audio)
        .ok_or_else(|| MediaError::BadSdp("no audio m= line".into()))?;
    let formats = section
        .payload_types()
        .map(|payload_type| match section.rtp_format(payload_type) {
            Some(format) => SdpFormat {
                payload_type,
                name: format.encoding.to_owned(),
                clock_rate: format.clock_rate,
            },
            // A dynamic type without a=rtpmap: listed, but it means nothing to us.
            None => SdpFormat {
                payload_type,
                name: String::new(),
                clock_rate: 0,
            },
        })
        .collect();
    Ok(AudioSection {
        port: section.port,
        formats,
        protocol: section.protocol.clone(),
    })
}

/// The audio section, or `NoCommonCodec` if it lists nothing we can decode.
pub fn usable_audio_section(sdp: &str) -> Result<AudioSection, MediaError> {
    let section = audio_section(sdp)?;
    // DTLS-SRTP over UDP or TCP (RFC 5764, RFC 8842); with or without feedback (AVPF).
    let dtls = section.protocol.contains("TLS/RTP/SAVP");
    if section.port != 0 && !dtls {
        return Err(MediaError::UnsupportedProfile {
            protocol: section.protocol,
        });
    }
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
/// description with one set of credentials (BUNDLE): those of the first section that has both,
/// its own or the session's.
pub fn ice_credentials(sdp: &str) -> Option<(String, String)> {
    let description = SessionDescription::parse(sdp).ok()?;
    (0..description.media.len())
        .find_map(|index| description.ice_credentials(index))
        .map(|(ufrag, pwd)| (ufrag.to_owned(), pwd.to_owned()))
}

/// Our DTLS role once a first offer/answer has settled it (RFC 5763 §5), from the description
/// that settled it: our own answer says it (`ours_answered`), or the peer's answer to our
/// `actpass` offer says theirs and we take the other (a peer that writes none is `active`).
pub fn settled_setup(sdp: &str, ours_answered: bool) -> Option<Setup> {
    let description = SessionDescription::parse(sdp).ok()?;
    let (index, _) = description.first_of(&MediaKind::Audio)?;
    let written = description.setup(index);
    match (ours_answered, written) {
        (true, Some(setup @ (Setup::Active | Setup::Passive))) => Some(setup),
        (true, _) => None,
        (false, Some(Setup::Passive)) => Some(Setup::Active),
        (false, _) => Some(Setup::Passive),
    }
}

/// `sdp` with every `a=setup` written as `setup`. An answer in a later exchange must keep the
/// DTLS role the first one settled (RFC 5763 §5, RFC 8829 §5.3.1): the DTLS association goes
/// on, and a browser refuses an answer that would swap roles ("Failed to set SSL role").
pub fn with_setup(sdp: &str, setup: Setup) -> Result<String, MediaError> {
    let mut description =
        SessionDescription::parse(sdp).map_err(|e| MediaError::BadSdp(e.to_string()))?;
    let sections = description.media.iter_mut().map(|m| &mut m.attributes);
    for attributes in std::iter::once(&mut description.attributes).chain(sections) {
        for attribute in attributes.iter_mut() {
            if let Attribute::Setup(written) = attribute {
                *written = setup;
            }
        }
    }
    Ok(description.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_exchange_settles_the_dtls_role_and_later_answers_keep_it() {
        let head = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n";
        let with = |setup: &str| {
            format!("{head}m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=setup:{setup}\r\n")
        };
        // We offered actpass: the peer's answer decides, and we take the other role.
        assert_eq!(settled_setup(&with("active"), false), Some(Setup::Passive));
        assert_eq!(settled_setup(&with("passive"), false), Some(Setup::Active));
        // We answered: our answer says it.
        assert_eq!(settled_setup(&with("active"), true), Some(Setup::Active));
        assert_eq!(settled_setup(&with("actpass"), true), None);

        let rewritten = with_setup(&with("active"), Setup::Passive).unwrap();
        assert!(rewritten.contains("a=setup:passive"), "{rewritten}");
        assert!(!rewritten.contains("a=setup:active"), "{rewritten}");
        assert!(rewritten.contains("a=mid:0"), "{rewritten}");
        let session_level = format!("{head}a=setup:active\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n");
        assert!(
            with_setup(&session_level, Setup::Passive)
                .unwrap()
                .contains("a=setup:passive")
        );
    }

    #[test]
    fn reads_ice_credentials() {
        let head = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n";
        let sdp = format!(
            "{head}m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=ice-ufrag:Ab3d\r\n\
            a=ice-pwd:0123456789abcdefghijkl\r\n"
        );
        let expected = Some(("Ab3d".to_owned(), "0123456789abcdefghijkl".to_owned()));
        assert_eq!(ice_credentials(&sdp), expected);
        // Session-level credentials count for every section (RFC 8839 §5.4).
        let session_level = format!(
            "{head}a=ice-ufrag:Ab3d\r\na=ice-pwd:0123456789abcdefghijkl\r\n\
            m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
        );
        assert_eq!(ice_credentials(&session_level), expected);
        assert_eq!(
            ice_credentials(&format!(
                "{head}a=ice-ufrag:Ab3d\r\nm=audio 9 RTP/AVP 0\r\n"
            )),
            None
        );
        assert_eq!(ice_credentials(OFFER), None);
        assert_eq!(ice_credentials("garbage"), None);
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

    /// What a desk phone or baresip offers: plain RTP, or SDES keys, without DTLS.
    #[test]
    fn a_plain_rtp_or_sdes_offer_is_named_for_what_it_is() {
        for protocol in ["RTP/AVP", "RTP/SAVP", "RTP/AVPF"] {
            let sdp = format!(
                "v=0\r\no=- 1 2 IN IP4 192.0.2.7\r\ns=-\r\nc=IN IP4 192.0.2.7\r\nt=0 0\r\n\
                 m=audio 4000 {protocol} 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n"
            );
            match usable_audio_section(&sdp) {
                Err(e @ MediaError::UnsupportedProfile { .. }) => {
                    assert!(e.to_string().contains(protocol), "{e}")
                }
                other => panic!("{protocol}: {other:?}"),
            }
        }
        assert!(usable_audio_section(OFFER).is_ok());
    }

    #[test]
    fn no_known_codec_is_reported_as_such() {
        let sdp = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
            m=audio 9 UDP/TLS/RTP/SAVPF 9 96\r\na=rtpmap:9 G722/8000\r\n";
        match usable_audio_section(sdp) {
            Err(MediaError::NoCommonCodec { offered }) => assert_eq!(offered, "G722/8000, /0"),
            other => panic!("{other:?}"),
        }
        // A rejected audio stream (port 0) has nothing usable either.
        let rejected = OFFER.replace("m=audio 9", "m=audio 0");
        assert!(matches!(
            usable_audio_section(&rejected),
            Err(MediaError::NoCommonCodec { .. })
        ));
    }

    #[test]
    fn the_audio_section_is_found_among_others() {
        let sdp = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n\
            m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\na=rtpmap:96 VP8/90000\r\n\
            m=audio 9 UDP/TLS/RTP/SAVPF 8 110\r\na=mid:1\r\n\
            a=rtpmap:110 telephone-event/48000\r\n";
        let section = usable_audio_section(sdp).unwrap();
        let formats: Vec<_> = section.formats.iter().map(SdpFormat::format).collect();
        assert_eq!(
            formats,
            vec![
                Some(PayloadFormat::Audio(AudioCodec::Pcma)),
                Some(PayloadFormat::TelephoneEvent(48000)),
            ]
        );
        let video_only = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n\
            t=0 0\r\nm=video 9 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n";
        assert!(matches!(
            audio_section(video_only),
            Err(MediaError::BadSdp(_))
        ));
    }
}
