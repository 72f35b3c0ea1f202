//! [`I420Frame`]: one 8-bit 4:2:0 picture.

use crate::{Error, Result};

/// Largest width or height a frame may have. VP8 codes sizes in 14 bits (up to 16383); the
/// limit also keeps a hostile Y4M header from asking for a multi-gigabyte allocation.
pub const MAX_DIMENSION: u32 = 16_384;

/// An 8-bit I420 (YUV 4:2:0 planar) picture.
///
/// The three planes are stored packed, one after the other with no row padding: Y is
/// `width × height`, U and V are each `ceil(width/2) × ceil(height/2)`, so each plane's stride
/// equals its width. That packed layout is exactly what a Y4M `FRAME` and a WebGL I420 renderer
/// take, so handing a frame on costs no copy ([`as_packed`](Self::as_packed)).
#[derive(Clone, PartialEq, Eq)]
pub struct I420Frame {
    width: u32,
    height: u32,
    data: Vec<u8>,
}

impl std::fmt::Debug for I420Frame {
    // The pixel bytes would flood any log or assertion message.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("I420Frame")
            .field("width", &self.width)
            .field("height", &self.height)
            .finish_non_exhaustive()
    }
}

/// Width and height of each chroma plane for a luma size: half, rounded up, so an odd last
/// column or row of luma still has chroma.
fn chroma_size(width: u32, height: u32) -> (u32, u32) {
    (width.div_ceil(2), height.div_ceil(2))
}

impl I420Frame {
    /// Bytes of packed I420 for a picture size, or `InvalidSize`.
    pub fn packed_len(width: u32, height: u32) -> Result<usize> {
        if width == 0 || height == 0 || width > MAX_DIMENSION || height > MAX_DIMENSION {
            return Err(Error::InvalidSize { width, height });
        }
        let (cw, ch) = chroma_size(width, height);
        // Cannot overflow: both terms are below 2 × 16384² on any 64-bit or 32-bit usize.
        Ok(width as usize * height as usize + 2 * (cw as usize * ch as usize))
    }

    /// A black picture (video-range black: Y 16, U and V 128).
    pub fn new(width: u32, height: u32) -> Result<Self> {
        Self::filled(width, height, 16, 128, 128)
    }

    /// A picture with every sample of each plane set to the given value.
    pub fn filled(width: u32, height: u32, y: u8, u: u8, v: u8) -> Result<Self> {
        let len = Self::packed_len(width, height)?;
        let luma = width as usize * height as usize;
        let chroma = (len - luma) / 2;
        let mut data = Vec::with_capacity(len);
        data.resize(luma, y);
        data.resize(luma + chroma, u);
        data.resize(len, v);
        Ok(Self {
            width,
            height,
            data,
        })
    }

    /// Takes packed I420 bytes (Y, then U, then V, no padding), as a renderer or a Y4M frame
    /// holds them. The length must be exactly [`packed_len`](Self::packed_len).
    pub fn from_packed(width: u32, height: u32, data: Vec<u8>) -> Result<Self> {
        let expected = Self::packed_len(width, height)?;
        if data.len() != expected {
            return Err(Error::BufferSize {
                expected,
                actual: data.len(),
            });
        }
        Ok(Self {
            width,
            height,
            data,
        })
    }

    /// Copies a picture out of three strided planes (a decoder's or a camera's buffers). Each
    /// `(plane, stride)` must hold its rows at `stride` bytes apart; the last row may be short.
    pub fn from_planes(
        width: u32,
        height: u32,
        y: (&[u8], usize),
        u: (&[u8], usize),
        v: (&[u8], usize),
    ) -> Result<Self> {
        let len = Self::packed_len(width, height)?;
        let (cw, ch) = chroma_size(width, height);
        let mut data = Vec::with_capacity(len);
        copy_plane(&mut data, y, width as usize, height as usize)?;
        copy_plane(&mut data, u, cw as usize, ch as usize)?;
        copy_plane(&mut data, v, cw as usize, ch as usize)?;
        Ok(Self {
            width,
            height,
            data,
        })
    }

    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }

    /// Width of the U and V planes: `ceil(width / 2)`; also their stride.
    pub fn chroma_width(&self) -> u32 {
        chroma_size(self.width, self.height).0
    }

    /// Height of the U and V planes: `ceil(height / 2)`.
    pub fn chroma_height(&self) -> u32 {
        chroma_size(self.width, self.height).1
    }

    fn luma_len(&self) -> usize {
        self.width as usize * self.height as usize
    }

    fn chroma_len(&self) -> usize {
        (self.data.len() - self.luma_len()) / 2
    }

    /// The Y plane, `width` bytes per row.
    pub fn y(&self) -> &[u8] {
        &self.data[..self.luma_len()]
    }

    /// The U (Cb) plane, [`chroma_width`](Self::chroma_width) bytes per row.
    pub fn u(&self) -> &[u8] {
        let start = self.luma_len();
        &self.data[start..start + self.chroma_len()]
    }

    /// The V (Cr) plane, [`chroma_width`](Self::chroma_width) bytes per row.
    pub fn v(&self) -> &[u8] {
        &self.data[self.luma_len() + self.chroma_len()..]
    }

    /// All three planes at once for writing (Y, U, V).
    pub fn planes_mut(&mut self) -> (&mut [u8], &mut [u8], &mut [u8]) {
        let luma = self.luma_len();
        let chroma = self.chroma_len();
        let (y, uv) = self.data.split_at_mut(luma);
        let (u, v) = uv.split_at_mut(chroma);
        (y, u, v)
    }

    /// The packed I420 bytes (Y, U, V, no padding).
    pub fn as_packed(&self) -> &[u8] {
        &self.data
    }

    /// The packed I420 bytes, without a copy.
    pub fn into_packed(self) -> Vec<u8> {
        self.data
    }
}

/// Appends `rows` rows of `row_len` bytes taken `stride` apart from `plane`.
fn copy_plane(
    out: &mut Vec<u8>,
    (plane, stride): (&[u8], usize),
    row_len: usize,
    rows: usize,
) -> Result<()> {
    if stride < row_len {
        return Err(Error::InvalidArgument("plane stride shorter than its row"));
    }
    // `rows` is at least 1 (sizes are checked first); a stride so large that the plane could
    // not exist in memory overflows, and is refused.
    let needed = stride
        .checked_mul(rows - 1)
        .and_then(|n| n.checked_add(row_len))
        .ok_or(Error::InvalidArgument("plane stride too large"))?;
    if plane.len() < needed {
        return Err(Error::BufferSize {
            expected: needed,
            actual: plane.len(),
        });
    }
    for row in plane.chunks(stride).take(rows) {
        out.extend_from_slice(&row[..row_len]);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_sizes_round_chroma_up() {
        let frame = I420Frame::new(5, 3).unwrap();
        assert_eq!((frame.chroma_width(), frame.chroma_height()), (3, 2));
        assert_eq!(frame.y().len(), 15);
        assert_eq!(frame.u().len(), 6);
        assert_eq!(frame.v().len(), 6);
        assert_eq!(I420Frame::packed_len(5, 3).unwrap(), 27);
    }

    #[test]
    fn packed_round_trip_keeps_planes_apart() {
        let mut frame = I420Frame::filled(3, 3, 1, 2, 3).unwrap();
        assert_eq!(
            frame.as_packed(),
            &[1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3]
        );
        frame.planes_mut().1[0] = 9;
        let again = I420Frame::from_packed(3, 3, frame.clone().into_packed()).unwrap();
        assert_eq!(again, frame);
        assert_eq!(again.u(), &[9, 2, 2, 2]);
        assert_eq!(again.v(), &[3, 3, 3, 3]);
    }

    #[test]
    fn from_planes_drops_stride_padding() {
        // 3x2 luma with stride 4; chroma 2x1 with stride 3 (last row short).
        let y = [1, 2, 3, 0, 4, 5, 6];
        let u = [7, 8];
        let v = [9, 10, 0];
        let frame = I420Frame::from_planes(3, 2, (&y, 4), (&u, 3), (&v, 3)).unwrap();
        assert_eq!(frame.as_packed(), &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    }

    #[test]
    fn wrong_sizes_are_errors() {
        assert!(matches!(
            I420Frame::new(0, 4),
            Err(Error::InvalidSize { .. })
        ));
        assert!(matches!(
            I420Frame::new(MAX_DIMENSION + 1, 4),
            Err(Error::InvalidSize { .. })
        ));
        assert!(matches!(
            I420Frame::from_packed(2, 2, vec![0; 5]),
            Err(Error::BufferSize {
                expected: 6,
                actual: 5
            })
        ));
        let short = [0u8; 5];
        assert!(matches!(
            I420Frame::from_planes(3, 2, (&short, 4), (&short, 2), (&short, 2)),
            Err(Error::BufferSize { .. })
        ));
        assert!(matches!(
            I420Frame::from_planes(3, 2, (&short, 2), (&short, 2), (&short, 2)),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            I420Frame::from_planes(3, 2, (&short, usize::MAX), (&short, 2), (&short, 2)),
            Err(Error::InvalidArgument(_))
        ));
    }
}
