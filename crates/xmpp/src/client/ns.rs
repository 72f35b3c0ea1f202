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
