//! A streaming windowed-sinc sample-rate converter for arbitrary ratios.
//!
//! Each output sample at input position `t` is `Σ x[k]·h(t−k)` where `h` is a sinc low-pass
//! with cut-off just below the lower of the two Nyquist frequencies (so downsampling does not
//! alias and upsampling does not image), shaped by a Blackman window. An output falls at one of
//! `output_rate / gcd(input_rate, output_rate)` distinct fractions of an input sample, so the
//! weights of every fraction are computed once, when the converter is made (a polyphase
//! filter), and each output is one dot product that the compiler vectorises. State carries
//! across calls, so a stream can be converted in pieces of any size with no clicks at the
//! seams, and nothing is allocated once the history has grown to its working size.

use std::sync::Arc;

/// Zero crossings of the sinc on each side of the centre.
const ZERO_CROSSINGS: usize = 12;
/// Cut-off as a fraction of the lower Nyquist frequency: leaves a transition band.
const CUTOFF_FRACTION: f64 = 0.92;
/// Most table rows kept. Every sound-card rate against 48 kHz needs at most 640 (11.025 kHz);
/// an odd rate needing more uses the nearest lower row, off by under 1/1024 of a sample.
const MAX_PHASES: u64 = 1024;

/// Converts a mono f32 stream from one rate to another.
#[derive(Debug, Clone)]
pub struct Resampler {
    /// Input samples consumed per output sample, as an exact fraction:
    /// `step_whole + step_remainder / phases`.
    step_whole: usize,
    step_remainder: u64,
    /// `output_rate / gcd(input_rate, output_rate)`: the fractions of an input sample at which
    /// outputs fall.
    phases: u64,
    /// Position of the next output sample: `history[index]` plus `phase / phases`.
    /// Kept exact so that converting in pieces gives the same samples as one call.
    index: usize,
    phase: u64,
    step: f64,
    /// Half the kernel width, in input samples.
    half_width: usize,
    history: Vec<f32>,
    /// `rows` rows of `2 · half_width` weights; row `r` serves outputs at `r / rows` of an input
    /// sample past the centre, tap `j` weighs input `centre − half_width + 1 + j`.
    table: Arc<[f32]>,
    rows: u64,
    passthrough: bool,
}

impl Resampler {
    /// A converter from `input_rate` to `output_rate` (both in Hz, non-zero).
    pub fn new(input_rate: u32, output_rate: u32) -> Self {
        let input_rate = input_rate.max(1);
        let output_rate = output_rate.max(1);
        let divisor = u64::from(greatest_common_divisor(input_rate, output_rate));
        let input_step = u64::from(input_rate) / divisor;
        let phases = u64::from(output_rate) / divisor;
        let step = f64::from(input_rate) / f64::from(output_rate);
        let cutoff = CUTOFF_FRACTION * (1.0 / step).min(1.0);
        let half_width = (ZERO_CROSSINGS as f64 / cutoff).ceil() as usize;
        let rows = phases.min(MAX_PHASES);
        // Start with a kernel's worth of silence before the first input sample and the first
        // output exactly on it: output n is input time n·step, with no delay.
        let history = vec![0.0; half_width];
        Resampler {
            step_whole: (input_step / phases) as usize,
            step_remainder: input_step % phases,
            phases,
            index: half_width,
            phase: 0,
            step,
            half_width,
            history,
            table: polyphase_table(rows, half_width, cutoff),
            rows,
            passthrough: input_rate == output_rate,
        }
    }

    /// Output samples per input sample.
    pub fn ratio(&self) -> f64 {
        1.0 / self.step
    }

    /// Converts `input`, appending the produced samples to `output`.
    pub fn process(&mut self, input: &[f32], output: &mut Vec<f32>) {
        if self.passthrough {
            output.extend_from_slice(input);
            return;
        }
        self.history.extend_from_slice(input);
        let taps = 2 * self.half_width;
        // An output at position t needs input up to floor(t) + half_width.
        while self.index + self.half_width < self.history.len() {
            let row = (self.phase * self.rows / self.phases) as usize;
            let first = self.index + 1 - self.half_width;
            let (Some(window), Some(weights)) = (
                self.history.get(first..first + taps),
                self.table.get(row * taps..(row + 1) * taps),
            ) else {
                break;
            };
            output.push(dot(window, weights));
            self.index += self.step_whole;
            self.phase += self.step_remainder;
            if self.phase >= self.phases {
                self.phase -= self.phases;
                self.index += 1;
            }
        }
        // Drop input that no future output can reach.
        let keep_from = (self.index + 1).saturating_sub(self.half_width);
        if keep_from > 0 {
            let keep_from = keep_from.min(self.history.len());
            self.history.drain(..keep_from);
            self.index -= keep_from;
        }
    }

    /// Pushes enough silence through to emit everything still held back by the group delay.
    pub fn flush(&mut self, output: &mut Vec<f32>) {
        if self.passthrough {
            return;
        }
        let padding = vec![0.0; self.half_width * 2 + 1];
        self.process(&padding, output);
    }
}

/// The weights of every output position (see [`Resampler::table`]), scaled by the cut-off so
/// that a passband tone keeps its level.
fn polyphase_table(rows: u64, half_width: usize, cutoff: f64) -> Arc<[f32]> {
    let taps = 2 * half_width;
    (0..rows)
        .flat_map(|row| {
            let fraction = row as f64 / rows as f64;
            (0..taps).map(move |tap| {
                // Input k minus output position t, in input samples.
                let distance = tap as f64 - (half_width as f64 - 1.0) - fraction;
                (cutoff * windowed_sinc(distance * cutoff)) as f32
            })
        })
        .collect()
}

/// Blackman-windowed sinc at `x` zero crossings from the centre; zero beyond the window.
fn windowed_sinc(x: f64) -> f64 {
    let x = x.abs();
    if x >= ZERO_CROSSINGS as f64 {
        return 0.0;
    }
    let sinc = if x == 0.0 {
        1.0
    } else {
        (std::f64::consts::PI * x).sin() / (std::f64::consts::PI * x)
    };
    // Blackman window over [-Z, Z], evaluated at x ≥ 0.
    let n = 0.5 + x / (2.0 * ZERO_CROSSINGS as f64);
    let window = 0.42 - 0.5 * (2.0 * std::f64::consts::PI * n).cos()
        + 0.08 * (4.0 * std::f64::consts::PI * n).cos();
    sinc * window
}

/// `Σ a·b` in eight independent lanes, a shape the compiler turns into vector instructions
/// (one running sum could not be reordered).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    const LANES: usize = 8;
    let mut sums = [0.0f32; LANES];
    let mut a_blocks = a.chunks_exact(LANES);
    let mut b_blocks = b.chunks_exact(LANES);
    for (x, y) in (&mut a_blocks).zip(&mut b_blocks) {
        for ((sum, x), y) in sums.iter_mut().zip(x).zip(y) {
            *sum += x * y;
        }
    }
    let tail: f32 = a_blocks
        .remainder()
        .iter()
        .zip(b_blocks.remainder())
        .map(|(x, y)| x * y)
        .sum();
    sums.iter().sum::<f32>() + tail
}

fn greatest_common_divisor(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Converts a whole buffer at once (used for WAV files).
pub fn resample_all(input: &[f32], input_rate: u32, output_rate: u32) -> Vec<f32> {
    if input_rate == output_rate {
        return input.to_vec();
    }
    let mut resampler = Resampler::new(input_rate, output_rate);
    let expected = (input.len() as f64 * resampler.ratio()).round() as usize;
    let mut output = Vec::with_capacity(expected + resampler.half_width * 2 + 8);
    resampler.process(input, &mut output);
    resampler.flush(&mut output);
    output.truncate(expected);
    output
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(rate: u32, hz: f64, seconds: f64) -> Vec<f32> {
        let n = (f64::from(rate) * seconds) as usize;
        (0..n)
            .map(|i| {
                (0.5 * (2.0 * std::f64::consts::PI * hz * i as f64 / f64::from(rate)).sin()) as f32
            })
            .collect()
    }

    fn rms(x: &[f32]) -> f64 {
        (x.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>() / x.len().max(1) as f64).sqrt()
    }

    #[test]
    fn keeps_a_passband_tone_and_length() {
        for (from, to) in [
            (44_100, 48_000),
            (8_000, 48_000),
            (48_000, 8_000),
            (16_000, 48_000),
            // 640 table rows; and an odd rate that needs more than MAX_PHASES of them.
            (11_025, 48_000),
            (48_000, 47_999),
        ] {
            let input = tone(from, 1000.0, 0.5);
            let output = resample_all(&input, from, to);
            let expected = (input.len() as f64 * f64::from(to) / f64::from(from)).round() as usize;
            assert_eq!(output.len(), expected, "{from}->{to}");
            let reference = tone(to, 1000.0, 0.5);
            // Compare the middle (edges see the filter's ramp).
            let mid = output.len() / 4..output.len() * 3 / 4;
            let error: Vec<f32> = mid.clone().map(|i| output[i] - reference[i]).collect();
            assert!(
                rms(&error) < 0.01,
                "{from}->{to}: error rms {}",
                rms(&error)
            );
        }
    }

    #[test]
    fn removes_content_above_the_new_nyquist() {
        // 6 kHz at 48 kHz must not alias into 2 kHz when going to 8 kHz.
        let input = tone(48_000, 6_000.0, 0.5);
        let output = resample_all(&input, 48_000, 8_000);
        let mid = &output[output.len() / 4..output.len() * 3 / 4];
        assert!(rms(mid) < 0.01, "aliased energy rms {}", rms(mid));
    }

    #[test]
    fn streaming_in_pieces_matches_one_shot() {
        let input = tone(8_000, 440.0, 0.3);
        let mut whole = Resampler::new(8_000, 48_000);
        let mut one_shot = Vec::new();
        whole.process(&input, &mut one_shot);
        let mut pieces = Resampler::new(8_000, 48_000);
        let mut streamed = Vec::new();
        for chunk in input.chunks(160) {
            pieces.process(chunk, &mut streamed);
        }
        assert_eq!(one_shot.len(), streamed.len());
        for (a, b) in one_shot.iter().zip(&streamed) {
            assert!((a - b).abs() < 1e-5);
        }
    }
}
