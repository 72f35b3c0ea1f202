//! Lyrebird's sans-IO MSRP core: file transfer and chat as RFC 4975 sessions through RFC 4976
//! relays, over WebSocket (RFC 7977), described in SDP per RFC 4975 §8 and RFC 5547.
//!
//! # Event-loop contract
//!
//! Like the SIP core, nothing here does I/O, reads a clock, sleeps, spawns or locks: time
//! comes in as an [`std::time::Instant`] argument and randomness from seeded generators. The
//! engine owns one WebSocket per session (sub-protocol `msrp`, one MSRP message per WebSocket
//! message) and loops:
//!
//! 1. [`RelayAuth::start`] → send; feed every received frame to [`Message::parse`] and then to
//!    [`RelayAuth::handle_message`] until it is [`relay::AuthOutcome::Granted`]; the grant's
//!    Use-Path goes first in the SDP `a=path` ([`MsrpMedia`]).
//! 2. Sending a file: [`FileSender::next_chunk`] says which bytes to read, the engine reads
//!    them, [`FileSender::encode_chunk`] frames them; received frames go to
//!    [`FileSender::handle_message`], results come from [`FileSender::poll_event`].
//! 3. Receiving: frames go to [`FileReceiver::handle_message`]; the engine writes what
//!    [`FileReceiver::poll_event`] says and sends what [`FileReceiver::poll_transmit`] gives.
//! 4. Deadlines: `poll_timeout` / `handle_timeout` on each part (30 s transaction timeout,
//!    relay re-AUTH at 80 % of Expires).
//!
//! # Layout (read against the RFCs)
//!
//! - [`message`]: RFC 4975 §7 and §9 syntax, strict; [`uri`]: §6 URIs;
//! - [`relay`]: RFC 4976 §5 AUTH with digest (the arithmetic is `lyrebird-digest`'s);
//! - [`sender`], [`receiver`]: §5.1 chunking, §7.1.2 reports;
//! - [`chat`]: §5 and §7 for short messages both ways in one session; [`cpim`]: RFC 3862,
//!   the `message/cpim` wrapper a chat peer may ask for;
//! - [`sdp`]: the MSRP view of the shared SDP model (`lyrebird-sdp`): RFC 4975 §8, RFC 5547
//!   file selector and resume.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
#![warn(missing_docs)]

pub mod chat;
pub mod cpim;
pub mod error;
pub mod message;
pub mod receiver;
pub mod relay;
pub mod sdp;
pub mod sender;
pub mod uri;

pub use chat::{ChatConfig, ChatEvent, ChatSession};
pub use cpim::CpimMessage;
pub use error::MsrpError;
pub use message::{ByteRange, Continuation, Kind, Message, Method, Status};
pub use receiver::{FileReceiver, ReceiverConfig, ReceiverEvent};
pub use relay::{AuthOutcome, Grant, RelayAuth};
pub use sdp::{Direction, FileSelector, MsrpMedia, offers_msrp};
pub use sender::{ChunkPlan, DEFAULT_CHUNK_SIZE, FileSender, SenderConfig, SenderEvent};
pub use uri::MsrpUri;
