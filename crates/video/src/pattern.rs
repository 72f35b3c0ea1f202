//! A synthetic video source whose frames carry their own number, readable after lossy coding.
//!
//! Each frame has a flat grey band across the top holding the stamp, and moving content below
//! it (a scrolling luma wave, drifting colour, a bouncing box) so an encoder has real work.
//!
//! The stamp is two rows of 32 square cells, each black or white, `cell` pixels wide:
//!
//! ```text
//!  row 0:  counter bit 31 … bit 0                       (32 cells)
//!  row 1:  sync 10110010 │ CRC-16 of the counter (16) │ 01001101
//! ```
//!
//! Cells are at least 16 px and sit on 16-px boundaries from 640 px wide up (`cell` is
//! `width / 40` rounded down to a multiple of 16, at most 64), so each is whole VP8 macroblocks
//! of flat colour, which survive coarse quantisation. The reader averages the middle of each
//! cell, calibrates black and white from the 16 sync cells, refuses a cell whose level is in the
//! middle third between them, and checks the CRC (which catches every error of up to three
//! cells): a damaged stamp reads as `None`, never as a wrong number.

use crate::{Error, I420Frame, Result};

const WHITE: u8 = 235;
const BLACK: u8 = 16;
const BACKGROUND: u8 = 128;
const CELLS_PER_ROW: u32 = 32;
const SYNC: [bool; 8] = [true, false, true, true, false, false, true, false];

/// Side of one stamp cell for a frame size, or `None` when the stamp does not fit.
fn cell_size(width: u32, height: u32) -> Option<u32> {
    // 32 cells plus a cell of margin each side need 34 cells; 40 leaves room to spare.
    let by_width = width / 40;
    let cell = match by_width {
        16.. => (by_width / 16 * 16).min(64),
        8..=15 => 8,
        4..=7 => 4,
        _ => return None,
    };
    // The band (margin, two rows, margin) must leave most of the picture for moving content.
    (height >= band_height(cell) + 2 * cell).then_some(cell)
}

fn band_height(cell: u32) -> u32 {
    4 * cell
}

/// CRC-16/CCITT-FALSE (polynomial 0x1021, initial 0xFFFF): its non-zero start means an
/// all-black or all-white read does not pass.
fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0xFFFF;
    for &byte in bytes {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The 64 cell values (row 0 then row 1) that stand for `counter`.
fn stamp_bits(counter: u32) -> [bool; 64] {
    let mut bits = [false; 64];
    for (i, bit) in bits[..32].iter_mut().enumerate() {
        *bit = counter >> (31 - i) & 1 == 1;
    }
    let crc = crc16(&counter.to_be_bytes());
    bits[32..40].copy_from_slice(&SYNC);
    for (i, bit) in bits[40..56].iter_mut().enumerate() {
        *bit = crc >> (15 - i) & 1 == 1;
    }
    for (bit, sync) in bits[56..].iter_mut().zip(SYNC) {
        *bit = !sync;
    }
    bits
}

/// Top-left pixel of cell `index` (0..64).
fn cell_origin(cell: u32, index: usize) -> (u32, u32) {
    let index = index as u32;
    let column = index % CELLS_PER_ROW;
    let row = index / CELLS_PER_ROW;
    (cell * (1 + column), cell * (1 + row))
}

/// Paints the stamp for `counter` over the top band of `frame` (flat grey band, black and
/// white cells, neutral chroma). Fails with `InvalidSize` when the frame is too small (under
/// 160 px wide, or too short for the band).
pub fn stamp_counter(frame: &mut I420Frame, counter: u32) -> Result<()> {
    let (width, height) = (frame.width(), frame.height());
    let cell = cell_size(width, height).ok_or(Error::InvalidSize { width, height })?;
    let band = band_height(cell) as usize;
    let (cw, w) = (frame.chroma_width() as usize, width as usize);
    let (y, u, v) = frame.planes_mut();
    y[..band * w].fill(BACKGROUND);
    // Chroma rows covering the band (rounded up, to cover an odd last luma row).
    let chroma_rows = band.div_ceil(2);
    u[..chroma_rows * cw].fill(128);
    v[..chroma_rows * cw].fill(128);
    for (index, bit) in stamp_bits(counter).into_iter().enumerate() {
        let (x0, y0) = cell_origin(cell, index);
        let level = if bit { WHITE } else { BLACK };
        for row in y0..y0 + cell {
            let start = row as usize * w + x0 as usize;
            y[start..start + cell as usize].fill(level);
        }
    }
    Ok(())
}

/// Reads the frame number stamped by [`stamp_counter`] / [`TestPattern`], or `None` when the
/// frame has no readable stamp (none there, a different size than it was stamped at, or
/// damaged).
pub fn read_counter(frame: &I420Frame) -> Option<u32> {
    let cell = cell_size(frame.width(), frame.height())?;
    let y = frame.y();
    let w = frame.width() as usize;
    // Average the middle half of each cell: its edges blur into the neighbours under the loop
    // filter and chroma/luma ringing.
    let inset = cell / 4;
    let span = cell - 2 * inset;
    let mut levels = [0u32; 64];
    for (index, level) in levels.iter_mut().enumerate() {
        let (x0, y0) = cell_origin(cell, index);
        let mut sum = 0u32;
        for row in y0 + inset..y0 + inset + span {
            let start = row as usize * w + (x0 + inset) as usize;
            sum += y[start..start + span as usize]
                .iter()
                .map(|&p| u32::from(p))
                .sum::<u32>();
        }
        *level = sum / (span * span);
    }

    // Calibrate from the sync cells: every white one must be clearly brighter than every
    // black one, or this is not a stamp.
    let sync_levels = levels[32..40]
        .iter()
        .zip(SYNC)
        .chain(levels[56..].iter().zip(SYNC.map(|s| !s)));
    let (mut white_min, mut black_max) = (u32::MAX, 0);
    let (mut white_sum, mut black_sum) = (0, 0);
    for (&level, is_white) in sync_levels {
        if is_white {
            white_min = white_min.min(level);
            white_sum += level;
        } else {
            black_max = black_max.max(level);
            black_sum += level;
        }
    }
    const MIN_CONTRAST: u32 = 64;
    if white_min < black_max + MIN_CONTRAST {
        return None;
    }
    let (white, black) = (white_sum / 8, black_sum / 8);
    let third = (white - black) / 3;

    let mut bits = [false; 64];
    for (bit, &level) in bits.iter_mut().zip(&levels) {
        *bit = if level >= white - third {
            true
        } else if level <= black + third {
            false
        } else {
            return None;
        };
    }
    let counter = bits[..32]
        .iter()
        .fold(0u32, |acc, &b| acc << 1 | u32::from(b));
    (bits == stamp_bits(counter)).then_some(counter)
}

/// Moving test pictures, each stamped with its frame number (0, 1, 2, … wrapping at `u32`).
#[derive(Debug, Clone)]
pub struct TestPattern {
    /// A frame of the right size to paint each picture into (its size is checked once, here).
    blank: I420Frame,
    counter: u32,
}

impl TestPattern {
    /// Fails with `InvalidSize` for a size the stamp does not fit (under 160 px wide or 24 px
    /// high, roughly) or that no frame can have.
    pub fn new(width: u32, height: u32) -> Result<Self> {
        let blank = I420Frame::new(width, height)?;
        cell_size(width, height).ok_or(Error::InvalidSize { width, height })?;
        Ok(Self { blank, counter: 0 })
    }

    /// The number the next frame will carry.
    pub fn counter(&self) -> u32 {
        self.counter
    }

    /// The next frame, then advances the counter.
    pub fn next_frame(&mut self) -> I420Frame {
        let frame = self.frame(self.counter);
        self.counter = self.counter.wrapping_add(1);
        frame
    }

    /// The picture for frame number `counter` (the same number always gives the same picture).
    pub fn frame(&self, counter: u32) -> I420Frame {
        let mut frame = self.moving_content(counter);
        // Cannot fail: `new` checked that the stamp fits this size.
        let _ = stamp_counter(&mut frame, counter);
        frame
    }

    fn moving_content(&self, t: u32) -> I420Frame {
        let mut frame = self.blank.clone();
        let (width, height) = (frame.width(), frame.height());
        let cw = frame.chroma_width() as usize;
        let w = width as usize;
        let t = t as usize;
        let (y, u, v) = frame.planes_mut();

        // Luma: a diagonal triangle wave scrolling 3 px a frame; in the bottom quarter a fine
        // texture scrolling 2 px a frame, the kind of detail a camera gives and motion search
        // must follow; over both, a box that bounces.
        let side = (height / 5).max(8) as usize;
        let (bx, by) = (
            bounce(t * 7, w.saturating_sub(side)),
            bounce(t * 5, (height as usize).saturating_sub(side)),
        );
        let texture_from = height as usize * 3 / 4;
        for (row, line) in y.chunks_mut(w).enumerate() {
            for (col, px) in line.iter_mut().enumerate() {
                let in_box = (bx..bx + side).contains(&col) && (by..by + side).contains(&row);
                *px = if in_box {
                    WHITE
                } else if row >= texture_from {
                    texture(col + 2 * t, row)
                } else {
                    triangle(col + row / 2 + 3 * t, 16, 235)
                };
            }
        }
        // Chroma: U drifts sideways, V drifts down, at different speeds.
        for (row, (u_line, v_line)) in u.chunks_mut(cw).zip(v.chunks_mut(cw)).enumerate() {
            for (col, (up, vp)) in u_line.iter_mut().zip(v_line.iter_mut()).enumerate() {
                *up = triangle(col * 2 + t, 64, 192);
                *vp = triangle(row * 3 + 2 * t, 64, 192);
            }
        }
        frame
    }
}

/// A fixed pseudo-random texture of 4x4-pixel grains, levels 96..=159.
fn texture(x: usize, y: usize) -> u8 {
    let mut h =
        ((x / 4) as u32).wrapping_mul(0x9E37_79B1) ^ ((y / 4) as u32).wrapping_mul(0x85EB_CA77);
    h ^= h >> 15;
    h = h.wrapping_mul(0x2C1B_3C6D);
    h ^= h >> 12;
    96 + (h & 0x3F) as u8
}

/// A triangle wave of period 2 × (hi − lo) between `lo` and `hi`.
fn triangle(phase: usize, lo: u8, hi: u8) -> u8 {
    let span = usize::from(hi - lo);
    let p = phase % (2 * span);
    let offset = if p < span { p } else { 2 * span - p };
    lo + offset as u8
}

/// Position bouncing between 0 and `max` as `travel` grows.
fn bounce(travel: usize, max: usize) -> usize {
    if max == 0 {
        return 0;
    }
    let p = travel % (2 * max);
    if p <= max { p } else { 2 * max - p }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cell_sizes_follow_the_width() {
        assert_eq!(cell_size(640, 360), Some(16));
        assert_eq!(cell_size(1280, 720), Some(32));
        assert_eq!(cell_size(1920, 1080), Some(48));
        assert_eq!(cell_size(320, 240), Some(8));
        assert_eq!(cell_size(160, 120), Some(4));
        assert_eq!(cell_size(159, 120), None);
        assert_eq!(cell_size(640, 95), None);
        assert!(TestPattern::new(100, 100).is_err());
    }

    #[test]
    fn crc_matches_the_published_check_value() {
        assert_eq!(crc16(b"123456789"), 0x29B1);
    }

    #[test]
    fn stamps_read_back_exactly_at_several_sizes() {
        for (w, h) in [(640, 360), (1280, 720), (321, 241), (160, 120)] {
            let pattern = TestPattern::new(w, h).unwrap();
            for counter in [0, 1, 0x8000_0001, u32::MAX, 123_456] {
                assert_eq!(
                    read_counter(&pattern.frame(counter)),
                    Some(counter),
                    "{w}x{h}"
                );
            }
        }
    }

    #[test]
    fn content_moves_between_frames() {
        let pattern = TestPattern::new(640, 360).unwrap();
        let (a, b) = (pattern.frame(10), pattern.frame(11));
        let band = 64 * 640;
        assert_ne!(a.y()[band..], b.y()[band..]);
        assert_ne!(a.u(), b.u());
        assert_ne!(a.v(), b.v());
    }

    #[test]
    fn frames_without_a_stamp_read_as_none() {
        assert_eq!(read_counter(&I420Frame::new(640, 360).unwrap()), None);
        let white = I420Frame::filled(640, 360, 235, 128, 128).unwrap();
        assert_eq!(read_counter(&white), None);
        // Pseudo-random noise.
        let mut noise = I420Frame::new(640, 360).unwrap();
        let mut state = 0x1234_5678u32;
        for px in noise.planes_mut().0 {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            *px = state as u8;
        }
        assert_eq!(read_counter(&noise), None);
        // A stamp read at another size than it was written at.
        let small = TestPattern::new(320, 240).unwrap().frame(7);
        let mut big = I420Frame::new(640, 480).unwrap();
        for (row, line) in small.y().chunks(320).enumerate() {
            big.planes_mut().0[row * 640..row * 640 + 320].copy_from_slice(line);
        }
        assert_eq!(read_counter(&big), None);
    }

    #[test]
    fn a_corrupted_stamp_reads_as_none_not_as_another_number() {
        let pattern = TestPattern::new(640, 360).unwrap();
        let clean = pattern.frame(0x00C0_FFEE);
        // Flip each single cell in turn, data and check cells alike.
        for index in 0..64 {
            let mut frame = clean.clone();
            let (x0, y0) = cell_origin(16, index);
            let y = frame.planes_mut().0;
            let level = if y[(y0 * 640 + x0) as usize] == WHITE {
                BLACK
            } else {
                WHITE
            };
            for row in y0..y0 + 16 {
                let start = (row * 640 + x0) as usize;
                y[start..start + 16].fill(level);
            }
            assert_eq!(read_counter(&frame), None, "cell {index}");
        }
        // A cell smeared to mid-grey is refused rather than guessed.
        let mut frame = clean.clone();
        let (x0, y0) = cell_origin(16, 5);
        for row in y0..y0 + 16 {
            let start = (row * 640 + x0) as usize;
            frame.planes_mut().0[start..start + 16].fill(126);
        }
        assert_eq!(read_counter(&frame), None);
    }
}
