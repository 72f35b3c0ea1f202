//! The crate's one error type.

/// What went wrong, split by whose fault it is: the caller's ([`InvalidSize`](Error::InvalidSize),
/// [`BufferSize`](Error::BufferSize), [`InvalidArgument`](Error::InvalidArgument)), the
/// stream's ([`Corrupt`](Error::Corrupt), [`KeyframeRequired`](Error::KeyframeRequired),
/// [`Y4m`](Error::Y4m)), or the machine's ([`Codec`](Error::Codec), [`Io`](Error::Io)).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A width or height of zero, or larger than [`MAX_DIMENSION`](crate::MAX_DIMENSION).
    #[error("invalid picture size {width}x{height}")]
    InvalidSize { width: u32, height: u32 },
    /// A buffer too short (or, for packed I420, not exactly as long) for the picture size.
    #[error("buffer holds {actual} bytes where {expected} are needed")]
    BufferSize { expected: usize, actual: usize },
    /// A setting or argument out of range (bitrate 0, pts going backwards, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(&'static str),
    /// libvpx refused an operation that valid input should not make it refuse (out of memory,
    /// an ABI mismatch with the installed library).
    #[error("libvpx {operation} failed: {message}")]
    Codec {
        operation: &'static str,
        message: String,
    },
    /// The VP8 data could not be decoded (garbage, truncated, or referring to a lost frame).
    /// The decoder then waits for a keyframe: ask the sender for one (RTCP PLI).
    #[error("undecodable VP8 frame: {0}")]
    Corrupt(String),
    /// An inter frame arrived while the decoder waits for a keyframe (at the start, or after
    /// an error); it was not decoded. Ask the sender for a keyframe (RTCP PLI).
    #[error("waiting for a VP8 keyframe")]
    KeyframeRequired,
    /// A Y4M stream that does not follow the format, or uses a layout other than 8-bit 4:2:0.
    #[error("malformed Y4M stream: {0}")]
    Y4m(String),
    /// Reading or writing a Y4M stream failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
