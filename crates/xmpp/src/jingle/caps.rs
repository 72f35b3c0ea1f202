//! Discovery for calls: the features we advertise (XEP-0030 / XEP-0115), whether a contact's
//! features say it can take a call, and external STUN/TURN services (XEP-0215).

use xmpp_parsers::minidom::Element;

use crate::ns;
use crate::xml::Xml;

/// The disco features that say "call me" (XEP-0166 §11, XEP-0167 §11, XEP-0176 §13,
/// XEP-0320 §5, XEP-0293 §5, XEP-0294 §5, XEP-0338 §5, XEP-0339 §5, XEP-0353 §5).
///
/// Advertise them only when audio works on this machine (a device to capture and play, and
/// the media engine up): a contact's client offers a call button from these alone. `video`
/// adds `urn:xmpp:jingle:apps:rtp:video`, for when a camera (or a test pattern) can send.
pub fn call_features(video: bool) -> Vec<&'static str> {
    let mut features = vec![
        ns::JINGLE,
        ns::JINGLE_RTP,
        ns::JINGLE_RTP_AUDIO,
        ns::JINGLE_ICE_UDP,
        ns::JINGLE_DTLS,
        ns::JINGLE_RTCP_FB,
        ns::JINGLE_RTP_HDREXT,
        ns::JINGLE_GROUPING,
        ns::JINGLE_SSMA,
        ns::JINGLE_MESSAGE,
    ];
    if video {
        features.push(ns::JINGLE_RTP_VIDEO);
    }
    features
}

/// What a call would carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallMedia {
    /// Audio only.
    Audio,
    /// Audio and video.
    Video,
}

/// True if a contact's disco features (from [`crate::XmppEvent::PeerFeatures`]) say it can
/// take a call with `media` that we can place: Jingle RTP over ICE-UDP with DTLS-SRTP, and the
/// media type. (Clients that advertise RTP without DTLS cannot talk to a WebRTC engine.)
pub fn can_take_call(features: &[String], media: CallMedia) -> bool {
    let has = |f: &str| features.iter().any(|g| g == f);
    let base = has(ns::JINGLE)
        && has(ns::JINGLE_RTP)
        && has(ns::JINGLE_ICE_UDP)
        && has(ns::JINGLE_DTLS)
        && has(ns::JINGLE_RTP_AUDIO);
    match media {
        CallMedia::Audio => base,
        CallMedia::Video => base && has(ns::JINGLE_RTP_VIDEO),
    }
}

/// True if the contact understands XEP-0353, so a call starts with `<propose/>` to its bare
/// JID (every device rings); otherwise `session-initiate` goes straight to one full JID.
pub fn supports_message_initiation(features: &[String]) -> bool {
    features.iter().any(|f| f == ns::JINGLE_MESSAGE)
}

/// A STUN or TURN server for the media engine (a WebRTC `RTCIceServer`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IceServer {
    /// `stun:host:port`, `turn:host:port?transport=udp`, `turns:host:port?transport=tcp`.
    pub url: String,
    /// TURN user name (XEP-0215 `username`).
    pub username: Option<String>,
    /// TURN password (XEP-0215 `password`).
    pub credential: Option<String>,
    /// When the credentials expire (ms since the epoch), if the server said.
    pub expires_ms: Option<i64>,
    /// The service said `restricted`: credentials must be asked for with
    /// [`credentials_request`] before use, unless they came with it.
    pub restricted: bool,
}

impl IceServer {
    /// True for a TURN server reached over UDP (webrtc-rs 0.21 skips TURN over TCP and TLS).
    pub fn is_udp_turn(&self) -> bool {
        self.url.starts_with("turn:") && !self.url.contains("transport=tcp")
    }
}

/// The payload of the IQ-get to our server that asks for STUN/TURN services (XEP-0215 §3.1).
pub fn services_request() -> Xml {
    Xml::ns("services", ns::EXT_DISCO)
}

/// The payload asking for credentials of one restricted service (XEP-0215 §3.3).
pub fn credentials_request(host: &str, kind: &str) -> Xml {
    Xml::ns("credentials", ns::EXT_DISCO)
        .child(Xml::new("service").attr("host", host).attr("type", kind))
}

/// The most services read from one answer.
const MAX_SERVICES: usize = 32;

/// Reads the STUN/TURN services of a XEP-0215 answer (`<services/>` or `<credentials/>`, or
/// the IQ that holds one): only `stun`, `stuns`, `turn` and `turns` services, each as an ICE
/// server URL (RFC 7064 / RFC 7065 syntax). Services with `action='remove'` are left out.
pub fn parse_services(el: &Element) -> Vec<IceServer> {
    let list = if el.has_ns(ns::EXT_DISCO) {
        Some(el)
    } else {
        el.children().find(|c| c.has_ns(ns::EXT_DISCO))
    };
    let Some(list) = list else {
        return Vec::new();
    };
    list.children()
        .filter(|c| c.is("service", ns::EXT_DISCO))
        .filter(|c| c.attr("action") != Some("remove"))
        .filter_map(service)
        .take(MAX_SERVICES)
        .collect()
}

fn service(el: &Element) -> Option<IceServer> {
    let kind = el.attr("type")?;
    if !matches!(kind, "stun" | "stuns" | "turn" | "turns") {
        return None;
    }
    let host = el.attr("host")?.trim();
    if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c == '/' || c == '?') {
        return None;
    }
    // An IPv6 literal needs brackets in a URI (RFC 7064 §3.1).
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    let port = el.attr("port").and_then(|p| p.trim().parse::<u16>().ok());
    let mut url = format!("{kind}:{host}");
    if let Some(port) = port {
        url.push_str(&format!(":{port}"));
    }
    if kind.starts_with("turn")
        && let Some(transport @ ("udp" | "tcp")) = el.attr("transport")
    {
        url.push_str(&format!("?transport={transport}"));
    }
    Some(IceServer {
        url,
        username: el.attr("username").map(str::to_owned),
        credential: el.attr("password").map(str::to_owned),
        expires_ms: el.attr("expires").and_then(crate::time::parse_ms),
        restricted: matches!(el.attr("restricted"), Some("1" | "true")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(features: &[&str]) -> Vec<String> {
        features.iter().map(|f| (*f).to_owned()).collect()
    }

    #[test]
    fn our_features_let_a_peer_call_us_with_video_only_when_we_say_so() {
        let audio = strings(&call_features(false));
        let video = strings(&call_features(true));
        assert!(can_take_call(&audio, CallMedia::Audio));
        assert!(!can_take_call(&audio, CallMedia::Video));
        assert!(can_take_call(&video, CallMedia::Video));
        assert!(supports_message_initiation(&audio));
    }

    #[test]
    fn a_peer_without_dtls_or_ice_cannot_take_a_call() {
        let mut features = strings(&call_features(true));
        features.retain(|f| f != ns::JINGLE_DTLS);
        assert!(!can_take_call(&features, CallMedia::Audio));
        let chat_only = strings(&[ns::DISCO_INFO, ns::CARBONS]);
        assert!(!can_take_call(&chat_only, CallMedia::Audio));
        assert!(!supports_message_initiation(&chat_only));
    }

    #[test]
    fn xep_0215_services_become_ice_servers() {
        // XEP-0215 §3.1, Example 2 (with a TURN password added for the restricted server).
        let answer: Element = "<iq xmlns='jabber:client' type='result' id='ul2bc7y6'>\
            <services xmlns='urn:xmpp:extdisco:2'>\
              <service host='stun.shakespeare.lit' port='9998' transport='udp' type='stun'/>\
              <service host='192.0.2.1' port='3478' transport='udp' type='turn' \
                 username='u' password='p' expires='2026-12-07T16:00:00Z' restricted='1'/>\
              <service host='2001:db8::1' port='5349' transport='tcp' type='turns'/>\
              <service host='ftp.shakespeare.lit' port='20' transport='tcp' type='ftp'/>\
              <service action='remove' host='old.lit' type='stun'/>\
            </services></iq>"
            .parse()
            .unwrap();
        let servers = parse_services(&answer);
        let urls: Vec<&str> = servers.iter().map(|s| s.url.as_str()).collect();
        assert_eq!(
            urls,
            [
                "stun:stun.shakespeare.lit:9998",
                "turn:192.0.2.1:3478?transport=udp",
                "turns:[2001:db8::1]:5349?transport=tcp",
            ]
        );
        assert_eq!(servers[1].username.as_deref(), Some("u"));
        assert_eq!(servers[1].credential.as_deref(), Some("p"));
        assert!(servers[1].restricted && servers[1].is_udp_turn());
        assert_eq!(
            servers[1].expires_ms,
            crate::time::parse_ms("2026-12-07T16:00:00Z")
        );
        assert!(!servers[2].is_udp_turn());
        assert_eq!(
            services_request().build(),
            "<services xmlns='urn:xmpp:extdisco:2'/>"
        );
    }
}
