//! The picture side of a Lyrebird video call, with no I/O, clock or runtime of its own:
//!
//! ```text
//!  TestPattern / Y4mReader ──I420Frame──▶ Vp8Encoder ──EncodedFrame──▶ (RTP, elsewhere)
//!  (RTP, elsewhere) ──VP8 bytes──▶ Vp8Decoder ──I420Frame──▶ Y4mWriter / renderer
//!                                       └──▶ ReceiveStats (decoded, undecodable, fps, freezes)
//! ```
//!
//! * [`I420Frame`] is the one picture type: 8-bit 4:2:0, planes packed without padding, so a
//!   renderer or a Y4M file takes [`I420Frame::as_packed`] as it is.
//! * [`Vp8Encoder`] / [`Vp8Decoder`] wrap the system libvpx (all `unsafe` lives in `vp8.rs`).
//! * [`Y4mWriter`] records pictures headless; [`Y4mReader`] plays a clip back as a source.
//! * [`TestPattern`] makes moving pictures with a frame counter that [`read_counter`] reads back
//!   after lossy coding, so an end-to-end test can tell which frame arrived.
//! * [`ReceiveStats`] counts what a receiver saw; times come from the caller.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod error;
mod frame;
mod pattern;
mod stats;
mod vp8;
mod y4m;

pub use error::Error;
pub use frame::{I420Frame, MAX_DIMENSION};
pub use pattern::{TestPattern, read_counter, stamp_counter};
pub use stats::{ReceiveStats, VideoStats};
pub use vp8::{EncodedFrame, RTP_VIDEO_CLOCK_RATE, Vp8Decoder, Vp8Encoder, Vp8EncoderConfig};
pub use y4m::{FrameRate, Y4mReader, Y4mWriter};

/// Result of this crate's fallible operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;
