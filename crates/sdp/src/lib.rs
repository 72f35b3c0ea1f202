//! Lyrebird's one SDP model (RFC 8866 syntax, RFC 3264 offer/answer), shared by calls
//! (`lyrebird-media`) and MSRP sessions (`lyrebird-msrp`).
//!
//! Like the protocol cores, this crate does no I/O and reads no clock: text in, model out,
//! model in, text out.
//!
//! - [`SessionDescription::parse`] reads a description with any number of media sections
//!   (audio, video, MSRP `message`, and kinds it does not know, kept as written) and refuses
//!   garbage with an [`SdpError`] that names the line. Input is bounded
//!   ([`MAX_DESCRIPTION_BYTES`], [`MAX_LINES`], [`MAX_MEDIA_SECTIONS`], [`MAX_FORMATS`]) so a
//!   hostile peer cannot make it allocate without bound.
//! - Its `Display` writes it back: CRLF line ends, lines in RFC 8866 §9 order, attributes in
//!   the order they were read, so a conforming description round-trips byte for byte.
//! - Attributes offer/answer needs are typed ([`Attribute`]); the rest are kept as
//!   [`Attribute::Other`] and read with [`MediaDescription::value_of`].
//! - Hold (RFC 6337): to hold, rewrite our own description with
//!   [`SessionDescription::map_audio_video_direction`]`(`[`Direction::held`]`)` and
//!   [`SessionDescription::bump_version`]; to notice the peer's hold, ask its description
//!   [`SessionDescription::holds_audio_video`]; to answer it, write the offered direction
//!   [`Direction::reversed`] into our answer.
//!
//! # Layout (read against the RFCs)
//!
//! - [`description`]: RFC 8866 §5 lines and §9 order; the session-level fallbacks of
//!   RFC 3264 §5.1 (direction), RFC 8839 §5.4 (ICE credentials);
//! - [`media`]: RFC 8866 §5.14 media sections; RTP payload types with RFC 3551 §6 static types;
//! - [`attribute`]: the typed `a=` lines and their RFCs;
//! - [`direction`]: RFC 3264 §6.1 answers, RFC 6337 hold;
//! - [`file_transfer`]: RFC 5547 `a=file-selector` and `a=file-range` values.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
#![warn(missing_docs)]

pub mod attribute;
pub mod description;
pub mod direction;
pub mod error;
pub mod file_transfer;
pub mod line;
pub mod media;

pub use attribute::{Attribute, Candidate, Fingerprint, Fmtp, Group, RtcpFb, Rtpmap, Setup};
pub use description::{Origin, SessionDescription, Timing};
pub use direction::Direction;
pub use error::SdpError;
pub use file_transfer::{FileSelector, format_file_range, parse_file_range};
pub use line::{Bandwidth, Connection};
pub use media::{MediaDescription, MediaKind, RtpFormat};

/// The longest description accepted. Browser offers with audio, video, a data channel and
/// every candidate are around 10 KiB; SIP bodies are bounded well below this too.
pub const MAX_DESCRIPTION_BYTES: usize = 128 * 1024;
/// The most lines accepted after `v=`.
pub const MAX_LINES: usize = 4096;
/// The most media sections accepted.
pub const MAX_MEDIA_SECTIONS: usize = 64;
/// The most formats accepted in one `m=` line (RTP has only 128 payload types).
pub const MAX_FORMATS: usize = 128;
