//! Calls with XMPP contacts: Jingle RTP sessions (XEP-0166, XEP-0167) over ICE-UDP
//! (XEP-0176) with DTLS-SRTP (XEP-0320), set up with Jingle Message Initiation (XEP-0353).
//!
//! Sans-IO like the rest of the crate: nothing here sends, reads a clock or spawns.
//!
//! - [`element`]: one `<jingle/>` element read into a plain model ([`Jingle`], [`Content`])
//!   and written back; [`ice`]: the ICE-UDP transport and its fingerprint.
//! - [`sdp`]: Jingle contents ↔ SDP for the media engine (webrtc-rs speaks SDP), trickled
//!   candidates both ways.
//! - [`message`]: XEP-0353 `<propose/>`, `<ringing/>`, `<proceed/>`, `<accept/>`,
//!   `<reject/>`, `<retract/>`, `<finish/>`.
//! - [`session`]: the call state machine, one per call ([`JingleCall`]).
//! - [`caps`]: the disco features to advertise, whether a contact can take a call, and
//!   XEP-0215 STUN/TURN services as ICE servers.
//!
//! What `xmpp-parsers` 0.23 is used for, and where it is not (and why): `jingle` (the
//! element, contents, reasons), `jingle_rtp`, `jingle_rtcp_fb`, `jingle_rtp_hdrext`,
//! `jingle_grouping`, `jingle_ssma` and `jingle_dtls_srtp` are used as they are. Its
//! `jingle_ice_udp::Transport` hides its fields ([`ice`] reads transports itself), its
//! `jingle_message::JingleMI` has no `<ringing/>` or `<finish/>` and allows one description
//! only ([`message`] reads them itself), and its `extdisco::Service` hides its fields
//! ([`caps`] reads services itself).

pub mod caps;
pub mod element;
pub mod error;
pub mod ice;
pub mod message;
pub mod sdp;
pub mod session;

pub use element::{
    Action, Content, Creator, Jingle, Reason, ReasonText, RtpDescription, Senders, SessionInfo,
};
pub use error::JingleError;
pub use ice::{IceCandidate, IceUdpTransport};
pub use message::JingleMessage;

pub use sdp::{JingleMedia, TrickleCandidate};
pub use session::{CallConfig, CallEvent, CallState, EndedBy, JingleCall, Outgoing};

/// The most contents accepted in one `<jingle/>` (a call has audio, video, maybe screen).
pub const MAX_CONTENTS: usize = 16;
/// The most payload types in one description (RTP has 128 payload type numbers).
pub const MAX_PAYLOAD_TYPES: usize = 128;
/// The most candidates in one transport.
pub const MAX_CANDIDATES: usize = 64;
/// The most sources, source groups, header extensions, or parameters of one payload type.
pub const MAX_SOURCES: usize = 64;
