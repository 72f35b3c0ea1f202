//! Namespaces used on the wire (the XEP that defines each is named where it is used).

/// RFC 7395 §3.3.2.
pub const FRAMING: &str = "urn:ietf:params:xml:ns:xmpp-framing";
/// RFC 6120 §4.3.
pub const STREAM: &str = "http://etherx.jabber.org/streams";
/// RFC 6120 §4.9.
pub const STREAM_ERRORS: &str = "urn:ietf:params:xml:ns:xmpp-streams";
/// RFC 6120 §8.3.
pub const STANZA_ERRORS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
/// RFC 6120 §6.
pub const SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
/// RFC 6120 §7.
pub const BIND: &str = "urn:ietf:params:xml:ns:xmpp-bind";
/// RFC 6120 §4.9.
pub const CLIENT: &str = "jabber:client";
/// RFC 6121 §2.
pub const ROSTER: &str = "jabber:iq:roster";
/// XEP-0198.
pub const SM: &str = "urn:xmpp:sm:3";
/// XEP-0184.
pub const RECEIPTS: &str = "urn:xmpp:receipts";
/// XEP-0085.
pub const CHATSTATES: &str = "http://jabber.org/protocol/chatstates";
/// XEP-0308.
pub const CORRECT: &str = "urn:xmpp:message-correct:0";
/// XEP-0280.
pub const CARBONS: &str = "urn:xmpp:carbons:2";
/// XEP-0297.
pub const FORWARD: &str = "urn:xmpp:forward:0";
/// XEP-0203.
pub const DELAY: &str = "urn:xmpp:delay";
/// XEP-0313.
pub const MAM: &str = "urn:xmpp:mam:2";
/// XEP-0059.
pub const RSM: &str = "http://jabber.org/protocol/rsm";
/// XEP-0004.
pub const DATA_FORMS: &str = "jabber:x:data";
/// XEP-0359.
pub const SID: &str = "urn:xmpp:sid:0";
/// XEP-0045.
pub const MUC: &str = "http://jabber.org/protocol/muc";
/// XEP-0045.
pub const MUC_USER: &str = "http://jabber.org/protocol/muc#user";
/// XEP-0045 §10.
pub const MUC_OWNER: &str = "http://jabber.org/protocol/muc#owner";
/// XEP-0363.
pub const UPLOAD: &str = "urn:xmpp:http:upload:0";
/// XEP-0066.
pub const OOB: &str = "jabber:x:oob";
/// XEP-0030.
pub const DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
/// XEP-0030.
pub const DISCO_ITEMS: &str = "http://jabber.org/protocol/disco#items";
/// XEP-0115.
pub const CAPS: &str = "http://jabber.org/protocol/caps";
/// XEP-0199.
pub const PING: &str = "urn:xmpp:ping";
/// XEP-0334.
pub const HINTS: &str = "urn:xmpp:hints";
/// XEP-0166.
pub const JINGLE: &str = "urn:xmpp:jingle:1";
/// XEP-0166 §10: Jingle-specific stanza error conditions.
pub const JINGLE_ERRORS: &str = "urn:xmpp:jingle:errors:1";
/// XEP-0167.
pub const JINGLE_RTP: &str = "urn:xmpp:jingle:apps:rtp:1";
/// XEP-0167 §11: "can do audio".
pub const JINGLE_RTP_AUDIO: &str = "urn:xmpp:jingle:apps:rtp:audio";
/// XEP-0167 §11: "can do video".
pub const JINGLE_RTP_VIDEO: &str = "urn:xmpp:jingle:apps:rtp:video";
/// XEP-0167 §7: session-info payloads (ringing, hold, mute, ...).
pub const JINGLE_RTP_INFO: &str = "urn:xmpp:jingle:apps:rtp:info:1";
/// XEP-0176.
pub const JINGLE_ICE_UDP: &str = "urn:xmpp:jingle:transports:ice-udp:1";
/// XEP-0320.
pub const JINGLE_DTLS: &str = "urn:xmpp:jingle:apps:dtls:0";
/// XEP-0293.
pub const JINGLE_RTCP_FB: &str = "urn:xmpp:jingle:apps:rtp:rtcp-fb:0";
/// XEP-0294.
pub const JINGLE_RTP_HDREXT: &str = "urn:xmpp:jingle:apps:rtp:rtp-hdrext:0";
/// XEP-0338.
pub const JINGLE_GROUPING: &str = "urn:xmpp:jingle:apps:grouping:0";
/// XEP-0339.
pub const JINGLE_SSMA: &str = "urn:xmpp:jingle:apps:rtp:ssma:0";
/// XEP-0353.
pub const JINGLE_MESSAGE: &str = "urn:xmpp:jingle-message:0";
/// XEP-0215.
pub const EXT_DISCO: &str = "urn:xmpp:extdisco:2";
