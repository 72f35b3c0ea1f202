//! What each libopus complexity and bitrate costs in encoder CPU and gives in voice quality, with
//! every other setting as in a Lyrebird call (`lyrebird_media::codec::Encoder::opus`: 48 kHz mono,
//! VoIP, in-band FEC for 5 % expected loss).
//!
//! The four test phrases, each spoken by several espeak-ng voices (48 kHz) and joined by
//! half-second pauses, are encoded in 20 ms frames and decoded by Lyrebird's own decoder twice:
//! with every packet, and with 5 % of the packets lost in a fixed pseudo-random pattern (the same
//! for every setting), each loss concealed as the call's receive path does — from the next
//! packet's FEC when that packet arrived, otherwise by the decoder's PLC. For each setting it
//! prints:
//!
//! * the encoder's CPU time per 20 ms frame (this thread's CPU clock, the fastest of `--passes`
//!   passes; the settings take turns within each pass so a busy moment of the machine does not
//!   fall on one of them) and that as a share of one core in a call;
//! * the bitrate the encoder produced;
//! * PESQ, ITU-T P.862.2 wideband MOS-LQO (1–4.64), of the decoded speech against the original,
//!   both at 16 kHz, from PyPI's `pesq` (the ITU reference code), with no loss and with 5 % loss:
//!   the mean over the voices.
//!
//! Usage: `bench-opus-complexity [--passes N] [--levels 0,5,9] [--bitrates 32000,36000]`. PESQ
//! runs in a Python virtual environment made on first use under `$HOME/.cache/lyrebird/pesq-venv`
//! (pip: numpy, pesq), or in the Python named by `LYREBIRD_PESQ_PYTHON`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use clap::Parser;
use lyrebird_media::AudioCodec;
use lyrebird_media::codec::{Decoder, Encoder, FRAME_48K};
use nix::time::{ClockId, clock_gettime};
use testkit::audio::{read_wav_mono, resample, write_wav_mono};
use testkit::speech::{PHRASES, SPEECH_SAMPLE_RATE, require_speech_tools, voiced_speech_wav};

/// espeak-ng voices: its default (male), a female and an American variant, so no figure rests on
/// one voice's pitch.
const VOICES: [Option<&str>; 3] = [None, Some("en+f3"), Some("en-us+m3")];
/// Share of packets lost in the lossy condition: what the encoder's FEC is tuned for.
const LOSS_PERCENT: u32 = 5;
/// PESQ's wideband mode takes 16 kHz audio.
const PESQ_RATE: u32 = 16_000;
/// Frames per second of call audio.
const FRAMES_PER_SECOND: f64 = 50.0;
/// Creating the virtual environment and building `pesq` (a C extension) from source.
const PIP_TIMEOUT: Duration = Duration::from_secs(600);
const PESQ_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Parser)]
#[command(about = "Opus encoder complexity and bitrate: CPU per frame against PESQ voice quality")]
struct Args {
    /// Encoding passes per setting; the fastest one is reported.
    #[arg(long, default_value_t = 5)]
    passes: u32,
    /// Complexity levels to measure, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "0,1,2,3,4,5,6,7,8,9,10")]
    levels: Vec<i32>,
    /// Bitrates to measure each level at, bit/s, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "32000")]
    bitrates: Vec<i32>,
}

#[derive(Clone, Copy)]
struct Setting {
    level: i32,
    bitrate: i32,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args = Args::parse();
    ensure!(args.passes > 0, "--passes must be at least 1");
    require_speech_tools()?;
    let dir = tempfile::tempdir()?;
    let python = pesq_python().await?;
    let mut settings = Vec::new();
    for &bitrate in &args.bitrates {
        ensure!(
            (6_000..=510_000).contains(&bitrate),
            "bitrate {bitrate} is outside Opus's 6–510 kbit/s"
        );
        for &level in &args.levels {
            ensure!((0..=10).contains(&level), "complexity {level} is not 0–10");
            settings.push(Setting { level, bitrate });
        }
    }

    let mut talks = Vec::new();
    for voice in VOICES {
        let speech = joined_phrases(dir.path(), voice)?;
        let reference = dir.path().join(format!("reference-{}.wav", talks.len()));
        write_wav_mono(
            &reference,
            &resample(&speech, SPEECH_SAMPLE_RATE, PESQ_RATE)?,
            PESQ_RATE,
        )?;
        talks.push((speech, reference));
    }
    println!(
        "speech: {} phrases × {} voices, {:.1} s at 48 kHz; loss pattern: {LOSS_PERCENT} % of packets",
        PHRASES.len(),
        VOICES.len(),
        talks.iter().map(|(s, _)| s.len()).sum::<usize>() as f64 / f64::from(SPEECH_SAMPLE_RATE)
    );

    // CPU: every setting encodes the first voice once per pass, in turn.
    let mut fastest = vec![f64::INFINITY; settings.len()];
    for _ in 0..args.passes {
        for (setting, best) in settings.iter().zip(fastest.iter_mut()) {
            let (_, micros) = encode(&talks[0].0, *setting)?;
            *best = best.min(micros);
        }
    }

    println!();
    println!(
        "| complexity | bitrate set | encoder CPU per 20 ms frame | share of one core | bitrate produced | PESQ-WB, no loss | PESQ-WB, {LOSS_PERCENT} % loss |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (setting, micros) in settings.iter().zip(&fastest) {
        let (mut bytes, mut frames, mut clean, mut lossy) = (0, 0, 0.0, 0.0);
        for (index, (speech, reference)) in talks.iter().enumerate() {
            let (packets, _) = encode(speech, *setting)?;
            bytes += packets.iter().map(Vec::len).sum::<usize>();
            frames += packets.len();
            let name = format!("{}-{}-{index}", setting.level, setting.bitrate);
            let clean_wav =
                decoded_wav(dir.path(), &packets, &|_| false, &format!("{name}-clean"))?;
            let lossy_wav =
                decoded_wav(dir.path(), &packets, &lost_packet, &format!("{name}-lossy"))?;
            clean += pesq(&python, reference, &clean_wav).await?;
            lossy += pesq(&python, reference, &lossy_wav).await?;
        }
        let voices = talks.len() as f64;
        println!(
            "| {} | {:.0} kbit/s | {:.0} µs | {:.2} % | {:.1} kbit/s | {:.3} | {:.3} |",
            setting.level,
            f64::from(setting.bitrate) / 1000.0,
            micros,
            micros * FRAMES_PER_SECOND / 1e6 * 100.0,
            bytes as f64 * 8.0 / (frames as f64 / FRAMES_PER_SECOND) / 1000.0,
            clean / voices,
            lossy / voices
        );
    }
    Ok(())
}

/// The test phrases in `voice` at 48 kHz, each followed by half a second of silence, as a talker
/// pauses.
fn joined_phrases(dir: &Path, voice: Option<&str>) -> Result<Vec<f32>> {
    let mut speech = Vec::new();
    for phrase in PHRASES {
        let (samples, rate) = read_wav_mono(&voiced_speech_wav(dir, phrase, voice)?)?;
        ensure!(rate == SPEECH_SAMPLE_RATE, "{phrase:?} is at {rate} Hz");
        speech.extend_from_slice(&samples);
        speech.extend(std::iter::repeat_n(0.0, SPEECH_SAMPLE_RATE as usize / 2));
    }
    // Whole frames only: a partial last frame would be padded differently per run.
    speech.truncate(speech.len() / FRAME_48K * FRAME_48K);
    Ok(speech)
}

/// Encodes `speech` with a fresh encoder; returns the packets and the CPU time per frame in
/// microseconds.
fn encode(speech: &[f32], setting: Setting) -> Result<(Vec<Vec<u8>>, f64)> {
    let mut encoder = Encoder::opus(setting.level, setting.bitrate).map_err(anyhow::Error::msg)?;
    let mut packets = Vec::with_capacity(speech.len() / FRAME_48K);
    let started = thread_cpu_seconds()?;
    for frame in speech.chunks_exact(FRAME_48K) {
        let frame: &[f32; FRAME_48K] = frame.try_into()?;
        packets.push(encoder.encode(frame).map_err(anyhow::Error::msg)?.to_vec());
    }
    let used = thread_cpu_seconds()? - started;
    let micros = used * 1e6 / packets.len().max(1) as f64;
    Ok((packets, micros))
}

/// `packets` decoded (with `lost` ones concealed) and written as a 16 kHz WAV for PESQ.
fn decoded_wav(
    dir: &Path,
    packets: &[Vec<u8>],
    lost: &dyn Fn(usize) -> bool,
    name: &str,
) -> Result<PathBuf> {
    let decoded = decode(packets, lost)?;
    let path = dir.join(format!("{name}.wav"));
    write_wav_mono(
        &path,
        &resample(&decoded, SPEECH_SAMPLE_RATE, PESQ_RATE)?,
        PESQ_RATE,
    )?;
    Ok(path)
}

/// Decodes `packets` in order; a packet `lost` says is lost is concealed, from the next packet's
/// FEC when that one arrived.
fn decode(packets: &[Vec<u8>], lost: &dyn Fn(usize) -> bool) -> Result<Vec<f32>> {
    let mut decoder = Decoder::new(AudioCodec::Opus).map_err(anyhow::Error::msg)?;
    let mut out = Vec::with_capacity(packets.len() * FRAME_48K);
    for (index, packet) in packets.iter().enumerate() {
        if lost(index) {
            let next = packets
                .get(index + 1)
                .filter(|_| !lost(index + 1))
                .map(Vec::as_slice);
            decoder.conceal(next, &mut out);
        } else {
            decoder.decode(packet, &mut out);
        }
    }
    Ok(out)
}

/// A fixed pseudo-random loss pattern (a hash of the packet index), `LOSS_PERCENT` of packets.
fn lost_packet(index: usize) -> bool {
    let mut x = index as u64 ^ 0x9e37_79b9_7f4a_7c15;
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    x % 100 < u64::from(LOSS_PERCENT)
}

fn thread_cpu_seconds() -> Result<f64> {
    let now = clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID).context("thread CPU clock")?;
    Ok(now.tv_sec() as f64 + now.tv_nsec() as f64 / 1e9)
}

/// A Python that can `import pesq`: `LYREBIRD_PESQ_PYTHON`, or a virtual environment in the cache
/// made now if it is not there yet.
async fn pesq_python() -> Result<PathBuf> {
    if let Some(python) = std::env::var_os("LYREBIRD_PESQ_PYTHON") {
        return Ok(PathBuf::from(python));
    }
    let home = std::env::var_os("HOME").context("HOME is not set")?;
    let venv = Path::new(&home).join(".cache/lyrebird/pesq-venv");
    let python = venv.join("bin/python");
    if run(&python, &["-c", "import numpy, pesq"], PESQ_TIMEOUT)
        .await
        .is_ok()
    {
        return Ok(python);
    }
    eprintln!("making {} with numpy and pesq from PyPI", venv.display());
    let venv_arg = venv.to_string_lossy();
    run(
        Path::new("python3"),
        &["-m", "venv", "--clear", &venv_arg],
        PIP_TIMEOUT,
    )
    .await?;
    run(
        &python,
        &[
            "-m",
            "pip",
            "install",
            "--quiet",
            "--timeout",
            "60",
            "numpy",
            "pesq",
        ],
        PIP_TIMEOUT,
    )
    .await?;
    Ok(python)
}

/// PESQ wideband MOS-LQO of `degraded` against `reference`, mono 16-bit WAVs at [`PESQ_RATE`]
/// (the script takes the rate from the files).
async fn pesq(python: &Path, reference: &Path, degraded: &Path) -> Result<f64> {
    const SCRIPT: &str = "import sys, wave, numpy\n\
        from pesq import pesq\n\
        def read(path):\n    \
            with wave.open(path) as w:\n        \
                assert w.getnchannels() == 1 and w.getsampwidth() == 2\n        \
                return w.getframerate(), numpy.frombuffer(w.readframes(w.getnframes()), dtype='<i2').astype(numpy.float64)\n\
        rate, reference = read(sys.argv[1])\n\
        _, degraded = read(sys.argv[2])\n\
        print(pesq(rate, reference, degraded, 'wb'))\n";
    let output = run(
        python,
        &[
            "-c",
            SCRIPT,
            &reference.to_string_lossy(),
            &degraded.to_string_lossy(),
        ],
        PESQ_TIMEOUT,
    )
    .await?;
    let score: f64 = output
        .trim()
        .parse()
        .with_context(|| format!("PESQ printed {output:?}"))?;
    Ok(score)
}

/// Runs a program to completion within `timeout`; its standard output on success.
async fn run(program: &Path, args: &[&str], timeout: Duration) -> Result<String> {
    let child = tokio::process::Command::new(program)
        .args(args)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(timeout, child)
        .await
        .with_context(|| format!("{} did not finish within {timeout:?}", program.display()))?
        .with_context(|| format!("running {}", program.display()))?;
    if !output.status.success() {
        bail!(
            "{} {} failed with {}: {}",
            program.display(),
            args.first().copied().unwrap_or_default(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
