//! Audio encoders and decoders behind one interface, working on 20 ms frames of 48 kHz mono
//! f32 PCM (the pipeline's internal format).
//!
//! * Opus (RFC 6716 / RFC 7587) runs natively at 48 kHz. In-band FEC is on (`useinbandfec=1`
//!   in our fmtp) so the receiver can rebuild a lost packet from the next one (RFC 6716
//!   §2.1.7); without the next packet the decoder's own PLC extrapolates.
//! * G.711 (PCMU/PCMA) runs at 8 kHz: frames are band-limited and decimated by the windowed-sinc
//!   resampler, and interpolated back on receive. G.711 has no PLC of its own, so a lost frame
//!   repeats the last one with a falling gain (in the spirit of ITU-T G.711 Appendix I, much
//!   simplified).

use crate::config::AudioCodec;
use crate::g711;
use crate::resample::Resampler;

/// Samples in one 20 ms frame at 48 kHz.
pub const FRAME_48K: usize = 960;
/// Largest Opus frame the decoder may return: 120 ms at 48 kHz (RFC 6716 §2.1.4).
const MAX_OPUS_FRAME: usize = 5760;
/// Opus payload buffer; RFC 7587 §3.4 recommends supporting up to 1275 bytes per frame.
const MAX_OPUS_PACKET: usize = 1500;

/// Encodes 20 ms frames into RTP payloads.
pub struct Encoder {
    kind: EncoderKind,
    payload: Vec<u8>,
}

enum EncoderKind {
    Opus(opus::Encoder),
    G711 {
        alaw: bool,
        decimator: Resampler,
        narrowband: Vec<f32>,
    },
}

/// libopus encoder complexity (0–10) and bitrate (bit/s), chosen together by
/// `bench-opus-complexity` (BENCHMARKS.md): 6 at 36 kbit/s scores the same PESQ as Chromium's 9 at
/// 32 kbit/s without loss and better with 5 % loss, for a fifth less encoder CPU. Below 9 the
/// 32 kbit/s of Chromium is too little for libopus to turn FEC on at all (its `decide_fec`
/// weighs the bitrate by complexity and expected loss), and at 9 it is on by a hair; 36 kbit/s
/// keeps FEC on with room. From 7 up a float libopus also runs its speech/music analysis, which
/// changes nothing measurable in a voice call.
const OPUS_COMPLEXITY: i32 = 6;
/// See [`OPUS_COMPLEXITY`].
const OPUS_BITRATE: i32 = 36_000;

impl Encoder {
    /// An encoder for `codec`.
    pub fn new(codec: AudioCodec) -> Result<Self, String> {
        let kind = match codec {
            AudioCodec::Opus => return Self::opus(OPUS_COMPLEXITY, OPUS_BITRATE),
            AudioCodec::Pcmu | AudioCodec::Pcma => EncoderKind::G711 {
                alaw: codec == AudioCodec::Pcma,
                decimator: Resampler::new(48_000, 8_000),
                narrowband: Vec::with_capacity(FRAME_48K),
            },
        };
        Ok(Encoder::with_kind(kind))
    }

    /// The call's Opus encoder at another libopus complexity (0–10) and bitrate (bit/s), so a
    /// benchmark can weigh CPU against voice quality with every other setting as in a call.
    pub fn opus(complexity: i32, bitrate: i32) -> Result<Self, String> {
        let mut encoder = opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Voip)
            .map_err(|e| format!("opus encoder: {e}"))?;
        encoder
            .set_complexity(complexity)
            // FEC only helps if the encoder expects loss; 5 % keeps the bitrate cost small.
            .and_then(|()| encoder.set_inband_fec(true))
            .and_then(|()| encoder.set_packet_loss_perc(5))
            .and_then(|()| encoder.set_bitrate(opus::Bitrate::Bits(bitrate)))
            .map_err(|e| format!("opus encoder settings: {e}"))?;
        Ok(Encoder::with_kind(EncoderKind::Opus(encoder)))
    }

    fn with_kind(kind: EncoderKind) -> Self {
        Encoder {
            kind,
            payload: vec![0; MAX_OPUS_PACKET],
        }
    }

    /// RTP timestamp increment per 20 ms frame.
    pub fn timestamp_step(&self) -> u32 {
        match self.kind {
            EncoderKind::Opus(_) => 960,
            EncoderKind::G711 { .. } => 160,
        }
    }

    /// Encodes one frame; the returned slice is the RTP payload.
    pub fn encode(&mut self, frame: &[f32; FRAME_48K]) -> Result<&[u8], String> {
        match &mut self.kind {
            EncoderKind::Opus(encoder) => {
                let n = encoder
                    .encode_float(frame, &mut self.payload)
                    .map_err(|e| format!("opus encode: {e}"))?;
                Ok(&self.payload[..n])
            }
            EncoderKind::G711 {
                alaw,
                decimator,
                narrowband,
            } => {
                decimator.process(frame, narrowband);
                // The decimator emits exactly 160 samples per 960 in steady state; pad or keep
                // the remainder so a rounding hiccup never changes the packet size.
                narrowband.resize(narrowband.len().max(160), 0.0);
                self.payload.clear();
                for &sample in narrowband.iter().take(160) {
                    let linear = to_i16(sample);
                    self.payload.push(if *alaw {
                        g711::linear_to_alaw(linear)
                    } else {
                        g711::linear_to_ulaw(linear)
                    });
                }
                narrowband.drain(..160);
                Ok(&self.payload)
            }
        }
    }
}

/// Decodes RTP payloads (or conceals their loss) into 48 kHz mono samples.
pub struct Decoder {
    kind: DecoderKind,
    scratch: Vec<f32>,
}

enum DecoderKind {
    Opus {
        decoder: opus::Decoder,
        last_frame_samples: usize,
    },
    G711 {
        alaw: bool,
        interpolator: Resampler,
        last_narrowband: Vec<f32>,
        narrowband: Vec<f32>,
        conceal_gain: f32,
    },
}

impl Decoder {
    /// A decoder for `codec`.
    pub fn new(codec: AudioCodec) -> Result<Self, String> {
        let kind = match codec {
            AudioCodec::Opus => DecoderKind::Opus {
                decoder: opus::Decoder::new(48_000, opus::Channels::Mono)
                    .map_err(|e| format!("opus decoder: {e}"))?,
                last_frame_samples: FRAME_48K,
            },
            AudioCodec::Pcmu | AudioCodec::Pcma => DecoderKind::G711 {
                alaw: codec == AudioCodec::Pcma,
                interpolator: Resampler::new(8_000, 48_000),
                last_narrowband: Vec::with_capacity(FRAME_48K),
                narrowband: Vec::with_capacity(FRAME_48K),
                conceal_gain: 1.0,
            },
        };
        Ok(Decoder {
            kind,
            scratch: vec![0.0; MAX_OPUS_FRAME],
        })
    }

    /// Decodes `payload`, appending 48 kHz samples to `out`. A payload the decoder rejects is
    /// treated as lost (concealed), never as a panic.
    pub fn decode(&mut self, payload: &[u8], out: &mut Vec<f32>) {
        match &mut self.kind {
            DecoderKind::Opus {
                decoder,
                last_frame_samples,
            } => match decoder.decode_float(payload, &mut self.scratch, false) {
                Ok(n) if n > 0 => {
                    *last_frame_samples = n.min(MAX_OPUS_FRAME);
                    out.extend_from_slice(&self.scratch[..*last_frame_samples]);
                }
                _ => self.conceal(None, out),
            },
            DecoderKind::G711 {
                alaw,
                interpolator,
                last_narrowband,
                narrowband,
                conceal_gain,
            } => {
                narrowband.clear();
                narrowband.extend(payload.iter().map(|&code| {
                    let linear = if *alaw {
                        g711::alaw_to_linear(code)
                    } else {
                        g711::ulaw_to_linear(code)
                    };
                    f32::from(linear) / 32_768.0
                }));
                last_narrowband.clear();
                last_narrowband.extend_from_slice(narrowband);
                *conceal_gain = 1.0;
                interpolator.process(narrowband, out);
            }
        }
    }

    /// Produces one packet's worth of concealment audio. `next` is the packet after the lost
    /// one, used for Opus in-band FEC.
    pub fn conceal(&mut self, next: Option<&[u8]>, out: &mut Vec<f32>) {
        match &mut self.kind {
            DecoderKind::Opus {
                decoder,
                last_frame_samples,
            } => {
                let samples = (*last_frame_samples).clamp(120, MAX_OPUS_FRAME);
                let buffer = &mut self.scratch[..samples];
                // With FEC the decoder rebuilds the lost frame from redundancy carried in the next
                // packet; with an empty payload it runs its packet-loss concealment.
                let result = match next {
                    Some(next) if !next.is_empty() => decoder.decode_float(next, buffer, true),
                    _ => decoder.decode_float(&[], buffer, false),
                };
                match result {
                    Ok(n) if n > 0 => out.extend_from_slice(&buffer[..n.min(samples)]),
                    _ => out.extend(std::iter::repeat_n(0.0, samples)),
                }
            }
            DecoderKind::G711 {
                interpolator,
                last_narrowband,
                narrowband,
                conceal_gain,
                ..
            } => {
                // Repeat the last frame at half the previous gain: audible continuity for one
                // loss, silence after a burst (gain < 0.07 after 4 losses).
                *conceal_gain *= 0.5;
                narrowband.clear();
                if last_narrowband.is_empty() {
                    narrowband.extend(std::iter::repeat_n(0.0, 160));
                } else {
                    let gain = *conceal_gain;
                    let len = last_narrowband.len();
                    narrowband.extend(last_narrowband.iter().enumerate().map(|(i, s)| {
                        // Ramp from the previous frame's gain (2×) down to this one's, so the
                        // level falls smoothly instead of stepping at the frame boundary.
                        s * gain * (2.0 - i as f32 / len as f32)
                    }));
                }
                interpolator.process(narrowband, out);
            }
        }
    }
}

/// Converts a float sample to 16-bit PCM with saturation.
pub fn to_i16(sample: f32) -> i16 {
    (sample * 32_767.0).round().clamp(-32_768.0, 32_767.0) as i16
}

/// RMS level of a frame, 0..1 of full scale.
pub fn rms_level(frame: &[f32]) -> f32 {
    if frame.is_empty() {
        return 0.0;
    }
    let energy: f32 = frame.iter().map(|s| s * s).sum();
    (energy / frame.len() as f32).sqrt().min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone_frame(start: usize, hz: f32) -> [f32; FRAME_48K] {
        let mut frame = [0.0; FRAME_48K];
        for (i, s) in frame.iter_mut().enumerate() {
            let t = (start + i) as f32 / 48_000.0;
            *s = 0.5 * (2.0 * std::f32::consts::PI * hz * t).sin();
        }
        frame
    }

    fn round_trip(codec: AudioCodec) -> (Vec<f32>, Vec<f32>) {
        let mut encoder = Encoder::new(codec).unwrap();
        let mut decoder = Decoder::new(codec).unwrap();
        let mut sent = Vec::new();
        let mut received = Vec::new();
        for n in 0..50 {
            let frame = tone_frame(n * FRAME_48K, 440.0);
            sent.extend_from_slice(&frame);
            let payload = encoder.encode(&frame).unwrap().to_vec();
            if codec != AudioCodec::Opus {
                assert_eq!(payload.len(), 160);
            }
            decoder.decode(&payload, &mut received);
        }
        (sent, received)
    }

    #[test]
    fn every_codec_reproduces_a_tone() {
        for codec in [AudioCodec::Opus, AudioCodec::Pcmu, AudioCodec::Pcma] {
            let (sent, received) = round_trip(codec);
            assert!(received.len() >= sent.len() - 2 * FRAME_48K, "{codec:?}");
            let level = rms_level(&received[received.len() / 2..]);
            assert!((level - 0.354).abs() < 0.05, "{codec:?} level {level}");
        }
    }

    #[test]
    fn concealment_never_fails_and_g711_fades_out() {
        for codec in [AudioCodec::Opus, AudioCodec::Pcmu] {
            let (_, _) = round_trip(codec);
            let mut decoder = Decoder::new(codec).unwrap();
            let mut encoder = Encoder::new(codec).unwrap();
            let mut out = Vec::new();
            for n in 0..10 {
                let payload = encoder
                    .encode(&tone_frame(n * FRAME_48K, 440.0))
                    .unwrap()
                    .to_vec();
                decoder.decode(&payload, &mut out);
            }
            let mut concealed = Vec::new();
            for _ in 0..8 {
                decoder.conceal(None, &mut concealed);
            }
            assert!(concealed.len() >= 7 * FRAME_48K, "{codec:?}");
            let tail = rms_level(&concealed[concealed.len() - FRAME_48K..]);
            assert!(
                tail < 0.05,
                "{codec:?} concealment should fade, tail {tail}"
            );
            // Garbage payloads are concealed, not a panic.
            decoder.decode(&[0xFF, 0xFF, 0xFF], &mut concealed);
        }
    }

    /// A voiced, vowel-like frame: a gliding 120–160 Hz fundamental with falling harmonics and a
    /// syllable-rate swell, so SILK codes it as active speech.
    fn voiced_frame(start: usize) -> [f32; FRAME_48K] {
        let mut frame = [0.0; FRAME_48K];
        for (i, s) in frame.iter_mut().enumerate() {
            let t = (start + i) as f32 / 48_000.0;
            let pitch = 140.0 + 20.0 * (2.0 * std::f32::consts::PI * 0.7 * t).sin();
            let swell = 0.6 + 0.4 * (2.0 * std::f32::consts::PI * 3.0 * t).sin();
            *s = swell
                * (1..=12)
                    .map(|h| (2.0 * std::f32::consts::PI * pitch * h as f32 * t).sin() / h as f32)
                    .sum::<f32>()
                * 0.15;
        }
        frame
    }

    fn distance(a: &[f32], b: &[f32]) -> f32 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y) * (x - y))
            .sum::<f32>()
            .sqrt()
    }

    /// The bitrate is chosen so that libopus keeps in-band FEC on (see `OPUS_COMPLEXITY`): a lost
    /// frame rebuilt from the next packet must be the lost audio, not the decoder's guess.
    #[test]
    fn call_opus_packets_carry_fec_for_the_frame_before() {
        let mut encoder = Encoder::new(AudioCodec::Opus).unwrap();
        let packets: Vec<Vec<u8>> = (0..60)
            .map(|n| {
                encoder
                    .encode(&voiced_frame(n * FRAME_48K))
                    .unwrap()
                    .to_vec()
            })
            .collect();
        const LOST: usize = 40;
        let decoded_up_to_loss = || {
            let mut decoder = Decoder::new(AudioCodec::Opus).unwrap();
            let mut scratch = Vec::new();
            for packet in &packets[..LOST] {
                decoder.decode(packet, &mut scratch);
            }
            decoder
        };
        let mut clean = Vec::new();
        decoded_up_to_loss().decode(&packets[LOST], &mut clean);
        let mut from_fec = Vec::new();
        decoded_up_to_loss().conceal(Some(&packets[LOST + 1]), &mut from_fec);
        let mut guessed = Vec::new();
        decoded_up_to_loss().conceal(None, &mut guessed);
        let (fec_error, plc_error) = (distance(&from_fec, &clean), distance(&guessed, &clean));
        assert!(
            fec_error < plc_error / 2.0,
            "FEC rebuilt the frame no better than concealment: {fec_error} vs {plc_error}"
        );
    }
}
