//! Sound-card input and output through cpal.
//!
//! cpal's `Stream` is `!Send`, so each opened device gets a dedicated thread that builds the
//! stream, starts it and then only waits to be told to stop. The real-time callbacks exchange
//! samples with the media task through lock-free single-producer/single-consumer ring buffers
//! (`rtrb`) in the device's own rate and channel layout: the callbacks never allocate, lock
//! or log. Down-mixing and rate conversion to/from 48 kHz mono happen in the media task.

use crate::config::AudioDevices;
use crate::error::MediaError;
use crate::resample::Resampler;
use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{FromSample, SizedSample};
use std::collections::VecDeque;
use std::sync::mpsc;
use std::thread::JoinHandle;

/// Frames per device callback. A fixed size keeps PulseAudio from delivering ~1 s chunks.
const DEVICE_BUFFER_FRAMES: u32 = 960;
/// Most device audio the media task keeps queued (ms) before dropping the oldest: bounds
/// latency when the device clock runs faster than ours.
const MAX_QUEUED_MS: usize = 200;

/// Lists capture and playback devices of the default host.
pub fn list_devices() -> Result<AudioDevices, MediaError> {
    let host = cpal::default_host();
    let names = |devices: Result<_, cpal::Error>| -> Result<Vec<String>, MediaError> {
        let devices: Box<dyn Iterator<Item = cpal::Device>> =
            devices.map_err(|e: cpal::Error| MediaError::AudioDevice(e.to_string()))?;
        Ok(devices.map(|d| d.to_string()).collect())
    };
    Ok(AudioDevices {
        inputs: names(
            host.input_devices()
                .map(|d| Box::new(d) as Box<dyn Iterator<Item = _>>),
        )?,
        outputs: names(
            host.output_devices()
                .map(|d| Box::new(d) as Box<dyn Iterator<Item = _>>),
        )?,
        default_input: host.default_input_device().map(|d| d.to_string()),
        default_output: host.default_output_device().map(|d| d.to_string()),
    })
}

fn find_device(name: Option<&str>, input: bool) -> Result<cpal::Device, MediaError> {
    let host = cpal::default_host();
    let found = match name {
        None if input => host.default_input_device(),
        None => host.default_output_device(),
        Some(wanted) => {
            let devices = if input {
                host.input_devices().map(|d| d.collect::<Vec<_>>())
            } else {
                host.output_devices().map(|d| d.collect::<Vec<_>>())
            }
            .map_err(|e| MediaError::AudioDevice(e.to_string()))?;
            devices.into_iter().find(|d| d.to_string() == wanted)
        }
    };
    found.ok_or_else(|| {
        MediaError::AudioDevice(format!(
            "no {} device {}",
            if input { "input" } else { "output" },
            name.unwrap_or("(default)")
        ))
    })
}

/// Owns the thread that owns the cpal stream; dropping it stops the stream.
struct DeviceThread {
    stop: Option<mpsc::Sender<()>>,
    handle: Option<JoinHandle<()>>,
}

impl Drop for DeviceThread {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

/// Builds a stream for a device configuration, returning our end of its ring buffer.
type StreamBuilder<T> =
    fn(&cpal::Device, cpal::StreamConfig, cpal::SampleFormat) -> Result<(cpal::Stream, T), String>;

struct Opened<T> {
    ring_end: T,
    sample_rate: u32,
    channels: usize,
}

/// Builds and plays a stream on a new thread; returns the ring-buffer end for the media task.
async fn open_on_thread<T: Send + 'static>(
    name: Option<String>,
    input: bool,
    build: StreamBuilder<T>,
) -> Result<(Opened<T>, DeviceThread), MediaError> {
    let (result_tx, result_rx) = tokio::sync::oneshot::channel();
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let handle = std::thread::Builder::new()
        .name(
            if input {
                "lyrebird-capture"
            } else {
                "lyrebird-playback"
            }
            .into(),
        )
        .spawn(move || {
            let opened = (|| {
                let device = find_device(name.as_deref(), input)?;
                let supported = if input {
                    device.default_input_config()
                } else {
                    device.default_output_config()
                }
                .map_err(|e| MediaError::AudioDevice(e.to_string()))?;
                let format = supported.sample_format();
                let mut config = supported.config();
                config.buffer_size = cpal::BufferSize::Fixed(DEVICE_BUFFER_FRAMES);
                let (stream, ring_end) = match build(&device, config, format) {
                    Ok(built) => built,
                    Err(refused) => {
                        // Some backends refuse a fixed size: fall back to the default.
                        tracing::debug!(%refused, "fixed device buffer refused; using the default");
                        config.buffer_size = cpal::BufferSize::Default;
                        build(&device, config, format).map_err(MediaError::AudioDevice)?
                    }
                };
                stream
                    .play()
                    .map_err(|e| MediaError::AudioDevice(e.to_string()))?;
                Ok::<_, MediaError>((
                    stream,
                    Opened {
                        ring_end,
                        sample_rate: config.sample_rate,
                        channels: usize::from(config.channels.max(1)),
                    },
                ))
            })();
            match opened {
                Ok((stream, opened)) => {
                    if result_tx.send(Ok(opened)).is_ok() {
                        // Park until the session drops its handle (the sender), then stop.
                        let _ = stop_rx.recv();
                    }
                    drop(stream);
                }
                Err(err) => {
                    let _ = result_tx.send(Err(err));
                }
            }
        })
        .map_err(|e| MediaError::AudioDevice(format!("cannot start audio thread: {e}")))?;
    let thread = DeviceThread {
        stop: Some(stop_tx),
        handle: Some(handle),
    };
    let opened = result_rx
        .await
        .map_err(|_| MediaError::AudioDevice("audio thread ended unexpectedly".into()))??;
    Ok((opened, thread))
}

fn ring_capacity(config: &cpal::StreamConfig) -> usize {
    (config.sample_rate as usize * usize::from(config.channels.max(1))).max(4096)
}

fn build_capture(
    device: &cpal::Device,
    config: cpal::StreamConfig,
    format: cpal::SampleFormat,
) -> Result<(cpal::Stream, rtrb::Consumer<f32>), String> {
    fn typed<T>(
        device: &cpal::Device,
        config: cpal::StreamConfig,
    ) -> Result<(cpal::Stream, rtrb::Consumer<f32>), String>
    where
        T: SizedSample,
        f32: FromSample<T>,
    {
        let (mut producer, consumer) = rtrb::RingBuffer::<f32>::new(ring_capacity(&config));
        let stream = device
            .build_input_stream::<T, _, _>(
                config,
                move |data: &[T], _| {
                    // Real-time context: no allocation, locking or logging. A full ring means
                    // the media task is behind; the newest samples are dropped.
                    for &sample in data {
                        if producer.push(sample.to_sample::<f32>()).is_err() {
                            break;
                        }
                    }
                },
                |_err| {},
                None,
            )
            .map_err(|e| e.to_string())?;
        Ok((stream, consumer))
    }
    match format {
        cpal::SampleFormat::F32 => typed::<f32>(device, config),
        cpal::SampleFormat::I16 => typed::<i16>(device, config),
        cpal::SampleFormat::I32 => typed::<i32>(device, config),
        cpal::SampleFormat::U16 => typed::<u16>(device, config),
        other => Err(format!("unsupported capture sample format {other}")),
    }
}

fn build_playback(
    device: &cpal::Device,
    config: cpal::StreamConfig,
    format: cpal::SampleFormat,
) -> Result<(cpal::Stream, rtrb::Producer<f32>), String> {
    fn typed<T>(
        device: &cpal::Device,
        config: cpal::StreamConfig,
    ) -> Result<(cpal::Stream, rtrb::Producer<f32>), String>
    where
        T: SizedSample + FromSample<f32>,
    {
        let (producer, mut consumer) = rtrb::RingBuffer::<f32>::new(ring_capacity(&config));
        let stream = device
            .build_output_stream::<T, _, _>(
                config,
                move |data: &mut [T], _| {
                    // Real-time context: underrun plays silence.
                    for slot in data.iter_mut() {
                        *slot = T::from_sample(consumer.pop().unwrap_or(0.0));
                    }
                },
                |_err| {},
                None,
            )
            .map_err(|e| e.to_string())?;
        Ok((stream, producer))
    }
    match format {
        cpal::SampleFormat::F32 => typed::<f32>(device, config),
        cpal::SampleFormat::I16 => typed::<i16>(device, config),
        cpal::SampleFormat::I32 => typed::<i32>(device, config),
        cpal::SampleFormat::U16 => typed::<u16>(device, config),
        other => Err(format!("unsupported playback sample format {other}")),
    }
}

/// A capture device delivering 48 kHz mono to the media task.
pub(crate) struct DeviceInput {
    consumer: rtrb::Consumer<f32>,
    channels: usize,
    resampler: Resampler,
    mono: Vec<f32>,
    resampled: Vec<f32>,
    queue: VecDeque<f32>,
    /// The largest burst the device has delivered at once (48 kHz samples). Devices deliver in
    /// periods (a PulseAudio default period can be a second); the queue must hold at least two,
    /// or whole periods would be thrown away as "too much latency".
    largest_burst: usize,
    _thread: DeviceThread,
}

impl DeviceInput {
    pub(crate) async fn open(name: Option<String>) -> Result<Self, MediaError> {
        let (opened, thread) = open_on_thread(name, true, build_capture).await?;
        Ok(DeviceInput {
            consumer: opened.ring_end,
            channels: opened.channels,
            resampler: Resampler::new(opened.sample_rate, 48_000),
            mono: Vec::with_capacity(8192),
            resampled: Vec::with_capacity(8192),
            queue: VecDeque::with_capacity(48 * MAX_QUEUED_MS * 2),
            largest_burst: 0,
            _thread: thread,
        })
    }

    /// Fills `frame` with the oldest captured audio (silence if the device is behind).
    pub(crate) fn fill(&mut self, frame: &mut [f32]) {
        self.mono.clear();
        let mut accumulator = 0.0;
        let mut in_frame = 0;
        while let Ok(sample) = self.consumer.pop() {
            accumulator += sample;
            in_frame += 1;
            if in_frame == self.channels {
                self.mono.push(accumulator / self.channels as f32);
                accumulator = 0.0;
                in_frame = 0;
            }
        }
        self.resampled.clear();
        self.resampler.process(&self.mono, &mut self.resampled);
        self.largest_burst = self.largest_burst.max(self.resampled.len());
        self.queue.extend(self.resampled.drain(..));
        // Bounded latency: beyond the limit (clock drift between the device and the network),
        // the oldest audio goes.
        let limit = (48 * MAX_QUEUED_MS).max(2 * self.largest_burst + frame.len());
        while self.queue.len() > limit {
            self.queue.pop_front();
        }
        for slot in frame.iter_mut() {
            *slot = self.queue.pop_front().unwrap_or(0.0);
        }
    }
}

/// A playback device fed 48 kHz mono by the media task.
pub(crate) struct DeviceOutput {
    producer: rtrb::Producer<f32>,
    channels: usize,
    resampler: Resampler,
    converted: Vec<f32>,
    _thread: DeviceThread,
}

impl DeviceOutput {
    pub(crate) async fn open(name: Option<String>) -> Result<Self, MediaError> {
        let (opened, thread) = open_on_thread(name, false, build_playback).await?;
        Ok(DeviceOutput {
            producer: opened.ring_end,
            channels: opened.channels,
            resampler: Resampler::new(48_000, opened.sample_rate),
            converted: Vec::with_capacity(8192),
            _thread: thread,
        })
    }

    /// Queues one frame for playback (dropped if the device has fallen far behind).
    pub(crate) fn write(&mut self, frame: &[f32]) {
        self.converted.clear();
        self.resampler.process(frame, &mut self.converted);
        for &sample in &self.converted {
            for _ in 0..self.channels {
                if self.producer.push(sample).is_err() {
                    return;
                }
            }
        }
    }
}

/// The level of a capture device outside any call: the settings screen's meter.
///
/// Capture runs on its own thread (as in calls); dropping the meter stops it.
pub struct InputMeter {
    samples: rtrb::Consumer<f32>,
    /// Samples in one 20 ms window (all channels).
    window: usize,
    level: f32,
    _thread: DeviceThread,
}

impl std::fmt::Debug for InputMeter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InputMeter")
            .field("level", &self.level)
            .finish_non_exhaustive()
    }
}

impl InputMeter {
    /// Opens the named capture device (the default one for `None`).
    pub async fn open(device: Option<String>) -> Result<InputMeter, MediaError> {
        let (opened, thread) = open_on_thread(device, true, build_capture).await?;
        Ok(InputMeter {
            samples: opened.ring_end,
            window: (opened.sample_rate as usize / 50 * opened.channels).max(1),
            level: 0.0,
            _thread: thread,
        })
    }

    /// RMS of the newest 20 ms captured, 0..1 of full scale; the previous value when
    /// nothing new has arrived.
    pub fn level(&mut self) -> f32 {
        let available = self.samples.slots();
        if available == 0 {
            return self.level;
        }
        // Only the newest window counts: skip what is older.
        let skip = available.saturating_sub(self.window);
        let mut sum = 0.0f64;
        let mut counted = 0usize;
        for index in 0..available {
            let Ok(sample) = self.samples.pop() else {
                break;
            };
            if index >= skip {
                sum += f64::from(sample) * f64::from(sample);
                counted += 1;
            }
        }
        if counted > 0 {
            self.level = ((sum / counted as f64).sqrt() as f32).clamp(0.0, 1.0);
        }
        self.level
    }
}

/// Plays a soft tone on the named playback device (the default one for `None`): the
/// settings screen's "test" button.
pub async fn play_test_tone(
    device: Option<String>,
    frequency_hz: f32,
    duration: std::time::Duration,
) -> Result<(), MediaError> {
    let (mut opened, thread) = open_on_thread(device, false, build_playback).await?;
    let rate = opened.sample_rate as f32;
    let total = (rate * duration.as_secs_f32()) as usize;
    let mut written = 0usize;
    let started = std::time::Instant::now();
    // Bounded: the tone's own length plus a second for a slow device.
    while written < total && started.elapsed() < duration + std::time::Duration::from_secs(1) {
        while written < total && opened.ring_end.slots() >= opened.channels {
            let t = written as f32 / rate;
            // 10 ms fades at both ends so the tone does not click.
            let fade = (t / 0.01)
                .min((total - written) as f32 / rate / 0.01)
                .min(1.0);
            let sample = 0.2 * fade * (std::f32::consts::TAU * frequency_hz * t).sin();
            for _ in 0..opened.channels {
                let _ = opened.ring_end.push(sample);
            }
            written += 1;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    // Let the device play out what is queued before the stream stops.
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    drop(thread);
    Ok(())
}
