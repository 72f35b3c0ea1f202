//! Sources and sinks of 20 ms, 48 kHz mono frames.

use crate::codec::{FRAME_48K, to_i16};
use crate::config::{AudioSink, AudioSource};
use crate::device::{DeviceInput, DeviceOutput};
use crate::error::MediaError;
use crate::resample::resample_all;
use std::collections::VecDeque;
use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

/// Longest received audio kept for the echo source (1 s): bounds memory and delay.
const MAX_ECHO_SAMPLES: usize = 48_000;

/// Reads a WAV file of any rate, channel count and sample format as 48 kHz mono f32.
pub fn read_wav_48k_mono(path: &Path) -> Result<Vec<f32>, MediaError> {
    let file_error = |e: hound::Error| MediaError::AudioFile(format!("{}: {e}", path.display()));
    let mut reader = hound::WavReader::open(path).map_err(file_error)?;
    let spec = reader.spec();
    let channels = usize::from(spec.channels.max(1));
    let interleaved: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Float => reader
            .samples::<f32>()
            .collect::<Result<_, _>>()
            .map_err(file_error)?,
        hound::SampleFormat::Int => {
            let scale = 1.0 / (1u64 << (spec.bits_per_sample.clamp(1, 32) - 1)) as f32;
            reader
                .samples::<i32>()
                .map(|s| s.map(|s| s as f32 * scale))
                .collect::<Result<_, _>>()
                .map_err(file_error)?
        }
    };
    let mono: Vec<f32> = interleaved
        .chunks(channels)
        .map(|frame| frame.iter().sum::<f32>() / frame.len() as f32)
        .collect();
    Ok(resample_all(&mono, spec.sample_rate, 48_000))
}

/// A running source.
pub(crate) enum Source {
    Silence,
    Tone {
        phase: f64,
        step: f64,
        amplitude: f32,
    },
    Wav {
        samples: Vec<f32>,
        position: usize,
        looped: bool,
    },
    Device(Box<DeviceInput>),
    Echo(VecDeque<f32>),
}

impl Source {
    pub(crate) async fn open(spec: &AudioSource) -> Result<Self, MediaError> {
        Ok(match spec {
            AudioSource::Silence => Source::Silence,
            AudioSource::Tone {
                frequency_hz,
                amplitude,
            } => Source::Tone {
                phase: 0.0,
                step: std::f64::consts::TAU * f64::from(*frequency_hz) / 48_000.0,
                amplitude: amplitude.clamp(0.0, 1.0),
            },
            AudioSource::Wav { path, looped } => {
                let path = path.clone();
                let samples = tokio::task::spawn_blocking(move || read_wav_48k_mono(&path))
                    .await
                    .map_err(|e| MediaError::AudioFile(format!("reader task: {e}")))??;
                Source::Wav {
                    samples,
                    position: 0,
                    looped: *looped,
                }
            }
            AudioSource::Device { name } => {
                Source::Device(Box::new(DeviceInput::open(name.clone()).await?))
            }
            AudioSource::Echo => Source::Echo(VecDeque::with_capacity(MAX_ECHO_SAMPLES)),
        })
    }

    /// Produces the next frame.
    pub(crate) fn fill(&mut self, frame: &mut [f32; FRAME_48K]) {
        match self {
            Source::Silence => frame.fill(0.0),
            Source::Tone {
                phase,
                step,
                amplitude,
            } => {
                for sample in frame.iter_mut() {
                    *sample = *amplitude * phase.sin() as f32;
                    // Keep the phase small so precision does not degrade over a long call.
                    *phase = (*phase + *step) % std::f64::consts::TAU;
                }
            }
            Source::Wav {
                samples,
                position,
                looped,
            } => {
                for sample in frame.iter_mut() {
                    if *position >= samples.len() && *looped && !samples.is_empty() {
                        *position = 0;
                    }
                    *sample = samples.get(*position).copied().unwrap_or(0.0);
                    *position += 1;
                }
            }
            Source::Device(input) => input.fill(frame),
            Source::Echo(queue) => {
                for sample in frame.iter_mut() {
                    *sample = queue.pop_front().unwrap_or(0.0);
                }
            }
        }
    }

    /// Called on ticks where nothing is sent: keeps a live device from queueing stale audio.
    pub(crate) fn idle(&mut self, scratch: &mut [f32; FRAME_48K]) {
        match self {
            Source::Device(input) => input.fill(scratch),
            Source::Echo(queue) => queue.clear(),
            _ => {}
        }
    }

    /// Offers received audio to an echo source.
    pub(crate) fn received(&mut self, frame: &[f32]) {
        if let Source::Echo(queue) = self {
            queue.extend(frame.iter().copied());
            while queue.len() > MAX_ECHO_SAMPLES {
                queue.pop_front();
            }
        }
    }
}

/// A running sink.
pub(crate) enum Sink {
    Discard,
    Wav(Option<hound::WavWriter<BufWriter<File>>>),
    Device(Box<DeviceOutput>),
}

impl Sink {
    pub(crate) async fn open(spec: &AudioSink) -> Result<Self, MediaError> {
        Ok(match spec {
            AudioSink::Discard => Sink::Discard,
            AudioSink::Wav { path } => {
                let spec = hound::WavSpec {
                    channels: 1,
                    sample_rate: 48_000,
                    bits_per_sample: 16,
                    sample_format: hound::SampleFormat::Int,
                };
                let writer = hound::WavWriter::create(path, spec)
                    .map_err(|e| MediaError::AudioFile(format!("{}: {e}", path.display())))?;
                Sink::Wav(Some(writer))
            }
            AudioSink::Device { name } => {
                Sink::Device(Box::new(DeviceOutput::open(name.clone()).await?))
            }
        })
    }

    pub(crate) fn write(&mut self, frame: &[f32]) -> Result<(), MediaError> {
        match self {
            Sink::Discard => Ok(()),
            Sink::Wav(Some(writer)) => {
                for &sample in frame {
                    writer
                        .write_sample(to_i16(sample))
                        .map_err(|e| MediaError::AudioFile(e.to_string()))?;
                }
                Ok(())
            }
            Sink::Wav(None) => Ok(()),
            Sink::Device(output) => {
                output.write(frame);
                Ok(())
            }
        }
    }

    /// Writes the WAV header sizes; a recording is only valid after this.
    pub(crate) fn finalize(&mut self) -> Result<(), MediaError> {
        if let Sink::Wav(writer) = self
            && let Some(writer) = writer.take()
        {
            writer
                .finalize()
                .map_err(|e| MediaError::AudioFile(e.to_string()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_wav_recording_holds_every_frame_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("recording.wav");
        let mut sink = Sink::open(&AudioSink::Wav { path: path.clone() })
            .await
            .unwrap();
        let frames: Vec<Vec<f32>> = (0..3)
            .map(|n| {
                (0..FRAME_48K)
                    .map(|i| ((n * FRAME_48K + i) as f32 * 0.01).sin() * 0.5)
                    .collect()
            })
            .collect();
        for frame in &frames {
            sink.write(frame).unwrap();
        }
        sink.finalize().unwrap();
        let written: Vec<i16> = hound::WavReader::open(&path)
            .unwrap()
            .samples::<i16>()
            .map(Result::unwrap)
            .collect();
        let expected: Vec<i16> = frames.iter().flatten().map(|&s| to_i16(s)).collect();
        assert_eq!(written, expected);
    }
}
