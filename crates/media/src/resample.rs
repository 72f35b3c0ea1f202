//! A streaming windowed-sinc sample-rate converter for arbitrary ratios.
//!
//! Each output sample at input position `t` is `Σ x[k]·h(t−k)` where `h` is a sinc low-pass
//! with cut-off just below the lower of the two Nyquist frequencies (so downsampling does not
//! alias and upsampling does not image), shaped by a Blackman window. The kernel is tabulated
//! once (`PHASES` points per zero crossing) and linearly interpolated, which keeps the error
//! far below 16-bit quantisation. State carries across calls, so a stream can be converted in
//! 20 ms pieces with no clicks at the seams.

use std::sync::Arc;

/// Zero crossings of the sinc on each side of the centre.
const ZERO_CROSSINGS: usize = 12;
/// Table resolution per zero crossing.
const PHASES: usize = 256;
/// Cut-off as a fraction of the lower Nyquist frequency: leaves a transition band.
const CUTOFF_FRACTION: f64 = 0.92;

/// Converts a mono f32 stream from one rate to another.
#[derive(Debug, Clone)]
pub struct Resampler {
    /// Input samples consumed per output sample, as an exact fraction:
    /// `step_whole + step_remainder / output_rate`.
    step_whole: usize,
    step_remainder: u64,
    output_rate: u64,
    /// Position of the next output sample: `history[index]` plus `fraction / output_rate`.
    /// Kept exact so that converting in pieces gives the same samples as one call.
    index: usize,
    fraction: u64,
    step: f64,
    /// Normalised cut-off (1.0 = input Nyquist).
    cutoff: f64,
    /// Half the kernel width, in input samples.
    half_width: usize,
    history: Vec<f32>,
    kernel: Arc<[f32]>,
    passthrough: bool,
}

impl Resampler {
    /// A converter from `input_rate` to `output_rate` (both in Hz, non-zero).
    pub fn new(input_rate: u32, output_rate: u32) -> Self {
        let input_rate = input_rate.max(1);
        let output_rate = output_rate.max(1);
        let step = f64::from(input_rate) / f64::from(output_rate);
        let cutoff = CUTOFF_FRACTION * (1.0 / step).min(1.0);
        let half_width = (ZERO_CROSSINGS as f64 / cutoff).ceil() as usize;
        // Start with a kernel's worth of silence before the first input sample and the first
        // output exactly on it: output n is input time n·step, with no delay.
        let history = vec![0.0; half_width];
        Resampler {
            step_whole: (input_rate / output_rate) as usize,
            step_remainder: u64::from(input_rate % output_rate),
            output_rate: u64::from(output_rate),
            index: half_width,
            fraction: 0,
            step,
            cutoff,
            half_width,
            history,
            kernel: kernel_table(),
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
        // An output at position t needs input up to floor(t) + half_width.
        while self.index + self.half_width < self.history.len() {
            let position = self.index as f64 + self.fraction as f64 / self.output_rate as f64;
            output.push(self.sample_at(position));
            self.index += self.step_whole;
            self.fraction += self.step_remainder;
            if self.fraction >= self.output_rate {
                self.fraction -= self.output_rate;
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

    fn sample_at(&self, position: f64) -> f32 {
        let centre = position.floor() as isize;
        let fraction = position - centre as f64;
        let first = centre - self.half_width as isize + 1;
        let last = centre + self.half_width as isize;
        let mut sum = 0.0f64;
        for index in first.max(0)..=last {
            let Some(&x) = self.history.get(index as usize) else {
                break;
            };
            let distance = (index - centre) as f64 - fraction; // k - t
            sum += f64::from(x) * self.kernel_value(distance * self.cutoff);
        }
        (sum * self.cutoff) as f32
    }

    /// Windowed sinc at `x` zero crossings from the centre (interpolated table lookup).
    fn kernel_value(&self, x: f64) -> f64 {
        let scaled = x.abs() * PHASES as f64;
        let index = scaled.floor() as usize;
        let fraction = scaled - index as f64;
        match (self.kernel.get(index), self.kernel.get(index + 1)) {
            (Some(&a), Some(&b)) => f64::from(a) + (f64::from(b) - f64::from(a)) * fraction,
            (Some(&a), None) => f64::from(a),
            _ => 0.0,
        }
    }
}

fn kernel_table() -> Arc<[f32]> {
    let length = ZERO_CROSSINGS * PHASES + 1;
    (0..length)
        .map(|i| {
            let x = i as f64 / PHASES as f64;
            let sinc = if i == 0 {
                1.0
            } else {
                (std::f64::consts::PI * x).sin() / (std::f64::consts::PI * x)
            };
            // Blackman window over [-Z, Z], evaluated at x ≥ 0.
            let n = 0.5 + x / (2.0 * ZERO_CROSSINGS as f64);
            let window = 0.42 - 0.5 * (2.0 * std::f64::consts::PI * n).cos()
                + 0.08 * (4.0 * std::f64::consts::PI * n).cos();
            (sinc * window) as f32
        })
        .collect()
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
