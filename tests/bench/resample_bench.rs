//! Lyrebird's sample-rate converter (`lyrebird_media::resample::Resampler`) against rubato's, for
//! the conversions the product makes: 48 kHz to and from 8 kHz (G.711), 16 kHz and 44.1 kHz
//! (sound cards and WAV files), mono and stereo, streamed in 20 ms pieces as calls do.
//!
//! Converters compared:
//! * `lyrebird` — ours, one instance per channel (the product mixes to mono before converting,
//!   so stereo is two instances);
//! * `rubato-fft` — rubato's synchronous FFT resampler (fixed ratio, fixed input of 20 ms);
//! * `rubato-sinc` — rubato's asynchronous sinc resampler, 128 taps, Blackman-Harris window,
//!   linear interpolation between 256 tabulated phases, fixed input of 20 ms.
//!
//! Figures, per converter and conversion:
//! * CPU per second of audio: this thread's CPU clock over 10 s of noise, the fastest of
//!   `--passes` passes, the converters taking turns within each pass;
//! * allocations per second of audio once running (a counting global allocator, after 100 ms of
//!   warm-up): the audio path must not allocate per frame (DESIGN.md);
//! * latency: how far the newest output lags the newest input after each piece (ms);
//! * SNR of a 1 kHz tone at −6 dBFS, one way and (for 48 kHz → R) there and back: the tone fitted
//!   by least squares over one second in the middle, everything else counted as noise;
//! * passband: the gain of tones from 100 Hz to the band edge (3.4 kHz at 8 kHz, 7 kHz at 16 kHz,
//!   20 kHz at 44.1 kHz), its lowest and highest value in dB;
//! * aliasing (downsampling): the loudest output, relative to the input, of tones from 1.05 × the
//!   output's Nyquist frequency to the input's, every 250 Hz, which can only come out as aliases:
//!   of those landing below the band edge, and of all.
//!
//! Usage: `bench-resample [--passes N] [--seconds S]` (build with `--release`).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result, anyhow, ensure};
use clap::Parser;
use lyrebird_media::resample::Resampler as OurResampler;
use nix::time::{ClockId, clock_gettime};
use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{
    Async, Fft, FixedAsync, FixedSync, SincInterpolationParameters, SincInterpolationType,
    WindowFunction,
};

/// Counts every allocation of the process, so a converter's steady state can be checked for none.
struct CountingAllocator;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// A global allocator can only be written with `unsafe`; this one is the only way to see whether a
// converter allocates per piece.
// SAFETY: every call is forwarded unchanged to the system allocator; only a counter is added.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

#[derive(Parser)]
#[command(about = "Lyrebird's resampler against rubato's: CPU, allocations, latency, quality")]
struct Options {
    /// Timing passes; the fastest counts.
    #[arg(long, default_value_t = 5)]
    passes: usize,
    /// Seconds of audio converted per timing pass.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
}

/// The conversions the product makes.
const CONVERSIONS: [(u32, u32); 6] = [
    (48_000, 8_000),
    (8_000, 48_000),
    (48_000, 16_000),
    (16_000, 48_000),
    (44_100, 48_000),
    (48_000, 44_100),
];

const KINDS: [Kind; 3] = [Kind::Lyrebird, Kind::RubatoFft, Kind::RubatoSinc];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Lyrebird,
    RubatoFft,
    RubatoSinc,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Lyrebird => "lyrebird",
            Kind::RubatoFft => "rubato-fft",
            Kind::RubatoSinc => "rubato-sinc",
        }
    }
}

/// A streaming converter of interleaved f32 audio with all its buffers made up front.
enum Converter {
    Lyrebird {
        channels: Vec<OurResampler>,
        /// One channel's input and output of the current piece.
        channel_in: Vec<f32>,
        channel_out: Vec<Vec<f32>>,
    },
    Rubato {
        resampler: Box<dyn rubato::Resampler<f32>>,
        scratch: Vec<f32>,
    },
}

impl Converter {
    fn new(kind: Kind, from: u32, to: u32, channels: usize) -> Result<Self> {
        let piece = piece_frames(from);
        let converter = match kind {
            Kind::Lyrebird => Converter::Lyrebird {
                channels: (0..channels).map(|_| OurResampler::new(from, to)).collect(),
                channel_in: Vec::with_capacity(piece),
                channel_out: (0..channels)
                    .map(|_| Vec::with_capacity(piece * 8))
                    .collect(),
            },
            Kind::RubatoFft => rubato_converter(Box::new(
                Fft::<f32>::new(
                    from as usize,
                    to as usize,
                    piece,
                    channels,
                    FixedSync::Input,
                )
                .context("rubato Fft")?,
            )),
            Kind::RubatoSinc => {
                let parameters =
                    SincInterpolationParameters::new(128, WindowFunction::BlackmanHarris2)
                        .oversampling_factor(256)
                        .interpolation(SincInterpolationType::Linear);
                rubato_converter(Box::new(
                    Async::<f32>::new_sinc(
                        f64::from(to) / f64::from(from),
                        1.1,
                        &parameters,
                        piece,
                        channels,
                        FixedAsync::Input,
                    )
                    .context("rubato sinc")?,
                ))
            }
        };
        Ok(converter)
    }

    /// Input frames the next [`Converter::process`] takes.
    fn next_input_frames(&self, from: u32) -> usize {
        match self {
            Converter::Lyrebird { .. } => piece_frames(from),
            Converter::Rubato { resampler, .. } => resampler.input_frames_next(),
        }
    }

    /// Output frames by which the output is late, beyond what has not been computed yet.
    fn delay_frames(&self) -> usize {
        match self {
            Converter::Lyrebird { .. } => 0,
            Converter::Rubato { resampler, .. } => resampler.output_delay(),
        }
    }

    /// Converts one piece (`frames` interleaved frames), appending to `output`, which has room.
    fn process(
        &mut self,
        input: &[f32],
        channel_count: usize,
        output: &mut Vec<f32>,
    ) -> Result<()> {
        match self {
            Converter::Lyrebird {
                channels,
                channel_in,
                channel_out,
            } => {
                for (channel, (resampler, produced)) in
                    channels.iter_mut().zip(channel_out.iter_mut()).enumerate()
                {
                    channel_in.clear();
                    channel_in.extend(input.iter().skip(channel).step_by(channel_count));
                    produced.clear();
                    resampler.process(channel_in, produced);
                }
                let frames = channel_out.first().map_or(0, Vec::len);
                for frame in 0..frames {
                    for produced in channel_out.iter() {
                        output.push(produced.get(frame).copied().unwrap_or(0.0));
                    }
                }
            }
            Converter::Rubato { resampler, scratch } => {
                let frames_in = input.len() / channel_count;
                let input_adapter = InterleavedSlice::new(input, channel_count, frames_in)
                    .map_err(|e| anyhow!("input adapter: {e}"))?;
                let capacity = scratch.len() / channel_count;
                let mut output_adapter =
                    InterleavedSlice::new_mut(scratch.as_mut_slice(), channel_count, capacity)
                        .map_err(|e| anyhow!("output adapter: {e}"))?;
                let (_, written) = resampler
                    .process_into_buffer(&input_adapter, &mut output_adapter, None)
                    .map_err(|e| anyhow!("rubato: {e}"))?;
                output.extend_from_slice(&scratch[..written * channel_count]);
            }
        }
        Ok(())
    }
}

fn rubato_converter(resampler: Box<dyn rubato::Resampler<f32>>) -> Converter {
    let scratch = vec![0.0; resampler.output_frames_max() * resampler.nbr_channels()];
    Converter::Rubato { resampler, scratch }
}

/// 20 ms at `rate`: the piece a call converts at once.
fn piece_frames(rate: u32) -> usize {
    (rate / 50) as usize
}

/// What streaming a signal through a converter gave.
struct Run {
    output: Vec<f32>,
    /// Output frames the converter reports as delay (already in `output`).
    delay_frames: usize,
    /// Largest lag of the newest output behind the newest input after a piece, in seconds.
    worst_lag: f64,
    /// Allocations after warm-up.
    allocations: u64,
    /// Input seconds converted after warm-up.
    counted_seconds: f64,
}

/// Streams `input` (interleaved) through a fresh converter in the pieces it asks for.
fn stream(kind: Kind, from: u32, to: u32, channels: usize, input: &[f32]) -> Result<Run> {
    let mut converter = Converter::new(kind, from, to, channels)?;
    let total_frames = input.len() / channels;
    let expected = (total_frames as f64 * f64::from(to) / f64::from(from)) as usize;
    let mut output = Vec::with_capacity((expected + to as usize) * channels);
    let delay_frames = converter.delay_frames();
    let warm_up_frames = from as usize / 10;
    let mut consumed = 0;
    let mut worst_lag: f64 = 0.0;
    let mut allocations_at_warm_up = None;
    let mut warm_up_consumed = 0;
    loop {
        let frames = converter.next_input_frames(from);
        if consumed + frames > total_frames {
            break;
        }
        if allocations_at_warm_up.is_none() && consumed >= warm_up_frames {
            allocations_at_warm_up = Some(ALLOCATIONS.load(Ordering::Relaxed));
            warm_up_consumed = consumed;
        }
        let piece = input
            .get(consumed * channels..(consumed + frames) * channels)
            .context("piece outside the input")?;
        converter.process(piece, channels, &mut output)?;
        consumed += frames;
        let produced = output.len() / channels;
        let newest_output_time = (produced as f64 - delay_frames as f64) / f64::from(to);
        worst_lag = worst_lag.max(consumed as f64 / f64::from(from) - newest_output_time);
    }
    let allocations = allocations_at_warm_up
        .map(|start| ALLOCATIONS.load(Ordering::Relaxed) - start)
        .unwrap_or(0);
    Ok(Run {
        output,
        delay_frames,
        worst_lag,
        allocations,
        counted_seconds: (consumed - warm_up_consumed) as f64 / f64::from(from),
    })
}

/// The mono output of a run with the reported delay taken off the front.
fn aligned(run: &Run) -> &[f32] {
    run.output.get(run.delay_frames..).unwrap_or_default()
}

fn tone(rate: u32, hz: f64, amplitude: f64, seconds: f64) -> Vec<f32> {
    let n = (f64::from(rate) * seconds) as usize;
    (0..n)
        .map(|i| {
            (amplitude * (2.0 * std::f64::consts::PI * hz * i as f64 / f64::from(rate)).sin())
                as f32
        })
        .collect()
}

/// Deterministic white noise at −12 dBFS (a linear congruential generator).
fn noise(frames: usize, channels: usize) -> Vec<f32> {
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    (0..frames * channels)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((state >> 40) as f64 / f64::from(1u32 << 24) - 0.5) as f32 * 0.5
        })
        .collect()
}

/// One second from the middle of `signal` (whole cycles of any tone at a multiple of 1 Hz).
fn middle_second(signal: &[f32], rate: u32) -> Result<&[f32]> {
    let length = rate as usize;
    let start = signal
        .len()
        .checked_sub(length)
        .map(|spare| spare / 2)
        .context("signal shorter than one second")?;
    signal
        .get(start..start + length)
        .context("middle second outside the signal")
}

/// (power of the `hz` component, power of everything else) over whole cycles.
fn tone_and_rest(window: &[f32], rate: u32, hz: f64) -> (f64, f64) {
    let n = window.len() as f64;
    let omega = 2.0 * std::f64::consts::PI * hz / f64::from(rate);
    let (mut sine, mut cosine, mut sum) = (0.0, 0.0, 0.0);
    for (i, &x) in window.iter().enumerate() {
        let x = f64::from(x);
        sine += x * (omega * i as f64).sin();
        cosine += x * (omega * i as f64).cos();
        sum += x;
    }
    let (a, b, dc) = (2.0 * sine / n, 2.0 * cosine / n, sum / n);
    let mut rest = 0.0;
    for (i, &x) in window.iter().enumerate() {
        let fitted = a * (omega * i as f64).sin() + b * (omega * i as f64).cos() + dc;
        rest += (f64::from(x) - fitted).powi(2);
    }
    ((a * a + b * b) / 2.0, rest / n)
}

fn snr_db(window: &[f32], rate: u32, hz: f64) -> f64 {
    let (signal, rest) = tone_and_rest(window, rate, hz);
    10.0 * (signal / rest.max(1e-30)).log10()
}

/// Where a tone at `hz` lands after sampling at `rate`.
fn folded(hz: f64, rate: u32) -> f64 {
    let rate = f64::from(rate);
    let within = hz % rate;
    if within > rate / 2.0 {
        rate - within
    } else {
        within
    }
}

fn power_db(window: &[f32]) -> f64 {
    let power = window.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>() / window.len() as f64;
    10.0 * power.max(1e-30).log10()
}

/// The edge of the band that matters at `rate`: telephony, wideband voice, or hi-fi.
fn band_edge(rate: u32) -> f64 {
    match rate {
        8_000 => 3_400.0,
        16_000 => 7_000.0,
        _ => 20_000.0,
    }
}

struct Quality {
    one_way_snr: f64,
    round_trip_snr: Option<f64>,
    passband: (f64, f64),
    /// (worst alias landing below the band edge, worst alias anywhere), dB re input.
    alias: Option<(f64, f64)>,
    lag_ms: f64,
}

const TONE_AMPLITUDE: f64 = 0.5;
const TONE_SECONDS: f64 = 2.0;

fn quality(kind: Kind, from: u32, to: u32) -> Result<Quality> {
    let input = tone(from, 1_000.0, TONE_AMPLITUDE, TONE_SECONDS);
    let there = stream(kind, from, to, 1, &input)?;
    let one_way_snr = snr_db(middle_second(aligned(&there), to)?, to, 1_000.0);
    let round_trip_snr = if from == 48_000 {
        let back = stream(kind, to, from, 1, aligned(&there))?;
        Some(snr_db(middle_second(aligned(&back), from)?, from, 1_000.0))
    } else {
        None
    };

    let edge = band_edge(from.min(to));
    let mut lowest = f64::INFINITY;
    let mut highest = f64::NEG_INFINITY;
    let mut hz = 100.0;
    while hz <= edge {
        let run = stream(
            kind,
            from,
            to,
            1,
            &tone(from, hz, TONE_AMPLITUDE, TONE_SECONDS),
        )?;
        let (power, _) = tone_and_rest(middle_second(aligned(&run), to)?, to, hz);
        let gain = 10.0 * (power / (TONE_AMPLITUDE * TONE_AMPLITUDE / 2.0)).log10();
        lowest = lowest.min(gain);
        highest = highest.max(gain);
        hz += if edge > 10_000.0 { 500.0 } else { 100.0 };
    }

    let alias = if to < from {
        // From just above the output's Nyquist frequency to just below the input's.
        let mut hz = (0.525 * f64::from(to) / 50.0).ceil() * 50.0;
        let highest = 0.5 * f64::from(from) - 100.0;
        let input_db = power_db(&tone(from, 1_000.0, TONE_AMPLITUDE, 1.0));
        let (mut worst_in_band, mut worst) = (f64::NEG_INFINITY, f64::NEG_INFINITY);
        while hz <= highest {
            let run = stream(
                kind,
                from,
                to,
                1,
                &tone(from, hz, TONE_AMPLITUDE, TONE_SECONDS),
            )?;
            let level = power_db(middle_second(aligned(&run), to)?) - input_db;
            worst = worst.max(level);
            if folded(hz, to) <= edge {
                worst_in_band = worst_in_band.max(level);
            }
            hz += 250.0;
        }
        Some((worst_in_band, worst))
    } else {
        None
    };
    Ok(Quality {
        one_way_snr,
        round_trip_snr,
        passband: (lowest, highest),
        alias,
        lag_ms: there.worst_lag * 1000.0,
    })
}

fn thread_cpu_seconds() -> Result<f64> {
    let now = clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID).context("thread CPU clock")?;
    Ok(now.tv_sec() as f64 + now.tv_nsec() as f64 / 1e9)
}

/// (CPU seconds per second of audio, fastest pass; allocations per second after warm-up).
fn cpu_cost(
    kinds: &[Kind],
    from: u32,
    to: u32,
    channels: usize,
    options: &Options,
) -> Result<Vec<(f64, f64)>> {
    let frames = (f64::from(from) * options.seconds) as usize;
    let input = noise(frames, channels);
    let mut best = vec![f64::INFINITY; kinds.len()];
    let mut allocations = vec![0.0f64; kinds.len()];
    for _ in 0..options.passes.max(1) {
        for (index, &kind) in kinds.iter().enumerate() {
            let start = thread_cpu_seconds()?;
            let run = stream(kind, from, to, channels, &input)?;
            let spent = thread_cpu_seconds()? - start;
            ensure!(!run.output.is_empty(), "{} produced nothing", kind.name());
            best[index] = best[index].min(spent / options.seconds);
            allocations[index] = run.allocations as f64 / run.counted_seconds.max(1e-9);
        }
    }
    Ok(best.into_iter().zip(allocations).collect())
}

fn main() -> Result<()> {
    let options = Options::parse();
    println!(
        "CPU per second of audio (µs, fastest of {} passes of {} s of noise, 20 ms pieces) and \
         allocations per second of audio after 100 ms",
        options.passes, options.seconds
    );
    println!(
        "{:<16} {:<7} {:>22} {:>22} {:>22}",
        "conversion", "layout", "lyrebird", "rubato-fft", "rubato-sinc"
    );
    for (from, to) in CONVERSIONS {
        for channels in [1, 2] {
            let costs = cpu_cost(&KINDS, from, to, channels, &options)?;
            let cells: Vec<String> = costs
                .iter()
                .map(|(cpu, allocations)| format!("{:8.0} µs {:6.1} alloc", cpu * 1e6, allocations))
                .collect();
            println!(
                "{:<16} {:<7} {:>22} {:>22} {:>22}",
                format!("{from}→{to}"),
                if channels == 1 { "mono" } else { "stereo" },
                cells[0],
                cells[1],
                cells[2]
            );
        }
    }
    println!();
    println!(
        "Quality (mono): 1 kHz tone at −6 dBFS SNR one way / there and back (dB), passband gain \
         100 Hz..band edge (min..max dB), worst alias landing in the band / anywhere (dB re input), latency (ms)"
    );
    println!(
        "{:<16} {:<12} {:>9} {:>9} {:>17} {:>15} {:>8}",
        "conversion", "converter", "SNR", "SNR r-t", "passband", "alias band/any", "latency"
    );
    for (from, to) in CONVERSIONS {
        for kind in KINDS {
            let q = quality(kind, from, to)?;
            println!(
                "{:<16} {:<12} {:>9.1} {:>9} {:>17} {:>15} {:>8.2}",
                format!("{from}→{to}"),
                kind.name(),
                q.one_way_snr,
                q.round_trip_snr
                    .map_or("-".to_owned(), |snr| format!("{snr:.1}")),
                format!("{:.3}..{:.3}", q.passband.0, q.passband.1),
                q.alias.map_or("-".to_owned(), |(in_band, any)| format!(
                    "{in_band:.1} / {any:.1}"
                )),
                q.lag_ms
            );
        }
    }
    Ok(())
}
