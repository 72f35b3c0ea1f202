//! Lyrebird's sans-IO XMPP client core: one client stream over WebSocket (RFC 7395), built on
//! `xmpp-parsers` (JIDs, dates, and its DOM, `minidom`, for incoming stanzas).
//!
//! # Event-loop contract for the engine
//!
//! Like `lyrebird-sip`, the core never does I/O, never reads a clock, never sleeps or spawns.
//! Time comes in as an [`std::time::Instant`]; ids and SCRAM nonces come from a `StdRng`
//! seeded by [`ClientConfig::rng_seed`]. The owner (one task per account):
//!
//! 1. calls [`Client::handle_connected`] when the WebSocket (sub-protocol `xmpp`) opens,
//!    [`Client::handle_frame`] for every text message received (RFC 7395 §3.3.3: one complete
//!    element per message), [`Client::handle_disconnected`] when it closes, and
//!    [`Client::handle_timeout`] when [`Client::poll_timeout`] passes; and commands
//!    ([`Client::send_chat`], [`Client::join_room`], ...);
//! 2. after every input drains [`Client::poll_transmit`] (one WebSocket text message each) and
//!    [`Client::poll_event`];
//! 3. on [`XmppEvent::Offline`] closes the socket and, unless the error is permanent (wrong
//!    password), reconnects with backoff and calls `handle_connected` again.
//!
//! # What happens on the wire, read against the specs
//!
//! - RFC 7395 §3.4: `<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to=DOMAIN
//!   version='1.0'/>`; the server answers `<open/>` and `<stream:features/>`.
//! - RFC 6120 §6: SASL ([`sasl`]): SCRAM-SHA-256, SCRAM-SHA-1, PLAIN only if allowed; the
//!   server's SCRAM signature is verified. After `<success/>` the stream restarts (§6.4.6).
//! - XEP-0198: after a fresh login, `<enable resume='true'/>` precedes everything else, then
//!   resource binding (RFC 6120 §7) has already happened. On reconnect the core sends
//!   `<resume previd h/>` (after SASL): if the server agrees, unacknowledged stanzas are resent
//!   and the session continues; otherwise a new session is bound and unacknowledged *messages*
//!   are sent again (receivers de-duplicate by id, so nothing is lost and nothing shows twice).
//! - After binding: roster get (RFC 6121 §2.2), carbons on (XEP-0280), disco#info and
//!   disco#items of the server (XEP-0030) to find the HTTP upload service (XEP-0363), our
//!   presence (with XEP-0115 caps) if one was set, room re-joins.
//! - Messages ([`XmppEvent::Message`]) from live delivery, carbons and the archive carry one
//!   [`ChatMessage::stable_id`]: the sender's origin-id/stanza id, so the same message is one
//!   row in history wherever it came from.
//!
//! Calls with XMPP contacts (Jingle, XEP-0353) are in [`jingle`]: one sans-IO
//! [`jingle::JingleCall`] per call, the Jingle ↔ SDP mapping for the media engine, and the call
//! features and STUN/TURN discovery. The client only routes their signalling (when
//! [`ClientConfig::calls`] is on): [`Client::poll_call_signal`] and [`Client::send_call_stanza`].
//!
//! Malformed XML from the server is a stream error (RFC 6120 §4.9.3.13): the core closes the
//! stream and reports it. Unknown elements are ignored, unknown IQ requests answered with
//! `service-unavailable` (RFC 6120 §8.4), oversized stanzas dropped with a warning. Nothing
//! here panics on input.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
#![warn(missing_docs)]

mod client;
mod error;
mod event;
pub mod jingle;
pub mod ns;
pub mod sasl;
pub mod time;
pub mod xml;

pub use client::{ArchiveStart, Client, ClientConfig, ReceivedMark};
pub use error::XmppError;
pub use event::{
    CallSignal, ChatMessage, ChatState, MessageKind, MessageOrigin, Occupant, Presence, RosterItem,
    Show, UploadSlot, XmppEvent,
};
