//! Lyrebird's sans-IO SIP user-agent core (RFC 3261 over WebSocket, RFC 7118).
//!
//! # Event-loop contract for the engine
//!
//! The core never does I/O, never reads a clock, never sleeps, spawns or locks. Time comes in
//! as a [`std::time::Instant`] argument; randomness (branches, tags, Call-IDs, cnonces) comes
//! from a `StdRng` seeded by [`UaConfig::rng_seed`], so tests are deterministic.
//!
//! The owner (one task per account) loops:
//!
//! 1. feed inputs: [`UserAgent::handle_connected`] when the WebSocket opens,
//!    [`UserAgent::handle_input`] for every received WebSocket message (text or binary; one SIP
//!    message per WS message, RFC 7118 §5), [`UserAgent::handle_disconnected`] when it closes,
//!    [`UserAgent::handle_timeout`] when the deadline from [`UserAgent::poll_timeout`] passes,
//!    and commands ([`UserAgent::register`], [`UserAgent::invite`], ...);
//! 2. after every input, drain [`UserAgent::poll_transmit`] (send each item as one WS message)
//!    and [`UserAgent::poll_event`];
//! 3. sleep until `poll_timeout()` or the next input.
//!
//! If [`UserAgent::keepalive_interval`] is `Some`, the registrar asked for RFC 5626 keepalives
//! (Flow-Timer); the engine sends them (WebSocket ping or `\r\n\r\n`) at that interval.
//!
//! # Layout (read against the RFCs)
//!
//! - [`message`]: syntax (RFC 3261 §7, §20, §25; RFC 4475 and RFC 5118 torture cases);
//! - [`auth`]: digest (RFC 7616, RFC 8760), the `lyrebird-digest` crate the MSRP core shares;
//! - `transaction`: §17 state machines with RFC 6026, reliable-transport timers ([`timer`]);
//! - `endpoint`: what the parts below share: identity, request and response building (§8,
//!   §12.2.1.1), the transaction table, digest retries (§22.2), the output queues;
//! - `dialog`: §12; [`registration`]: §10 and RFC 5626;
//! - `invite`: the INVITE session, one module per concern: `client` (§13.2, CANCEL §9.1),
//!   `server` (§13.3, CANCEL §9.2, Replaces RFC 3891), `reoffer` (re-INVITE §14, UPDATE
//!   RFC 3311, glare), `refer` (REFER and NOTIFY, RFC 3515 and RFC 5589), `info` (DTMF in
//!   INFO, RFC 6086); the state diagram is in its module header;
//! - `messaging`: MESSAGE both ways (RFC 3428); [`replaces`]: the Replaces header;
//! - [`events`]: what the user agent reports; [`reason`]: the Reason header (RFC 3326);
//! - [`ua`]: the [`UserAgent`], a router from input to the parts above, and the commands.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
#![warn(missing_docs)]

/// Digest authentication (RFC 7616, RFC 8760), shared with the MSRP core.
pub use lyrebird_digest as auth;
mod dialog;
mod endpoint;
pub mod error;
pub mod events;
mod invite;
pub mod message;
mod messaging;
pub mod reason;
pub mod registration;
pub mod replaces;
pub mod timer;
mod transaction;
pub mod ua;

pub use error::SipError;
pub use reason::Reason;
pub use ua::{
    CallId, EndReason, IncomingMessageId, IncomingReferId, InviteOptions, MessageId, Party,
    ReferId, ReplacesTarget, UaConfig, UaEvent, UserAgent,
};
