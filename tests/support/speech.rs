//! Speech test signals made at test time with `espeak-ng` and `sox`.
//!
//! Real speech (not tones) is what a voice path must carry: codecs such as Opus treat tones and
//! speech differently, and the similarity check in [`crate::audio`] compares spectral envelopes
//! that only speech varies richly. Nothing is shipped in the repository: each phrase is spoken by
//! `espeak-ng` and resampled by `sox` to 48 kHz mono 16-bit, the format Chromium's
//! `--use-file-for-fake-audio-capture` and WebRTC's Opus clock use.
//!
//! Files are cached by phrase inside the directory the caller gives, so several tests (or several
//! peers in one test) that ask for the same phrase share one file. Creation goes through a
//! temporary name and a rename, so parallel test binaries sharing a directory never see a
//! half-written WAV.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// Sample rate of every WAV this module writes.
pub const SPEECH_SAMPLE_RATE: u32 = 48_000;

/// Phrases of roughly 4–6 s each, different enough in sound that the similarity check can tell
/// them apart. Tests pick them by index so that each peer of a call speaks its own phrase.
pub const PHRASES: [&str; 4] = [
    "The quick brown fox jumps over the lazy dog, near the river bank, early this morning.",
    "Seven purple elephants were dancing quietly under the bright winter moon last night.",
    "Please call me back tomorrow afternoon about the budget numbers for the new project.",
    "Rain in the mountains turns to snow by midnight, so bring a warm coat and strong boots.",
];

/// Checks that the programs this module runs are installed.
pub fn require_speech_tools() -> Result<()> {
    for (tool, arg) in [("espeak-ng", "--version"), ("sox", "--version")] {
        let status = Command::new(tool)
            .arg(arg)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
        match status {
            Ok(s) if s.success() => {}
            _ => bail!("`{tool}` is missing: run ./task test, which installs it"),
        }
    }
    Ok(())
}

/// Returns a 48 kHz mono 16-bit WAV of `phrase` spoken by espeak-ng, creating it in `dir` if it
/// is not cached there yet.
pub fn speech_wav(dir: &Path, phrase: &str) -> Result<PathBuf> {
    voiced_speech_wav(dir, phrase, None)
}

/// [`speech_wav`] in an espeak-ng voice of its own (`espeak-ng --voices`, e.g. `en-us+f3`), or
/// espeak-ng's default voice with `None`.
pub fn voiced_speech_wav(dir: &Path, phrase: &str, voice: Option<&str>) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let key = match voice {
        Some(voice) => format!("{voice}\0{phrase}"),
        None => phrase.to_owned(),
    };
    let path = dir.join(format!("speech-{:016x}.wav", fnv1a64(key.as_bytes())));
    if path.is_file() {
        return Ok(path);
    }
    let unique = format!(
        "{}-{}",
        std::process::id(),
        fnv1a64(path.as_os_str().as_encoded_bytes())
    );
    let raw = dir.join(format!(".espeak-{unique}.wav"));
    let partial = dir.join(format!(".speech-{unique}.wav"));

    let mut espeak = Command::new("espeak-ng");
    if let Some(voice) = voice {
        espeak.args(["-v", voice]);
    }
    run(espeak.arg("-w").arg(&raw).arg("--").arg(phrase))?;
    // espeak-ng writes 22.05 kHz; sox's default rate converter is a high-quality sinc filter.
    // -R seeds sox's dither the same every time, so a phrase is the same samples in every run.
    run(Command::new("sox")
        .arg("-R")
        .arg(&raw)
        .args(["-r", "48000", "-c", "1", "-b", "16", "-e", "signed-integer"])
        .arg(&partial))?;
    let _ = std::fs::remove_file(&raw);
    std::fs::rename(&partial, &path)
        .with_context(|| format!("moving {} to {}", partial.display(), path.display()))?;
    Ok(path)
}

/// The speech WAV for `PHRASES[index % PHRASES.len()]`.
pub fn phrase_wav(dir: &Path, index: usize) -> Result<PathBuf> {
    speech_wav(dir, PHRASES[index % PHRASES.len()])
}

fn run(command: &mut Command) -> Result<()> {
    let output = command
        .output()
        .with_context(|| format!("running {command:?} (./task test installs espeak-ng and sox)"))?;
    if !output.status.success() {
        bail!(
            "{command:?} failed with {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// FNV-1a, 64-bit: a stable name for a cached phrase (std's hasher is not stable across
/// releases).
fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speech_is_cached_and_lasts_a_few_seconds() -> Result<()> {
        require_speech_tools()?;
        let dir = tempfile::tempdir()?;
        let first = phrase_wav(dir.path(), 0)?;
        let modified = std::fs::metadata(&first)?.modified()?;
        let again = phrase_wav(dir.path(), 0)?;
        assert_eq!(first, again);
        assert_eq!(
            std::fs::metadata(&again)?.modified()?,
            modified,
            "cached file was rewritten"
        );
        for index in 0..PHRASES.len() {
            let reader = hound::WavReader::open(phrase_wav(dir.path(), index)?)?;
            let spec = reader.spec();
            assert_eq!(
                (spec.sample_rate, spec.channels, spec.bits_per_sample),
                (48_000, 1, 16)
            );
            let seconds = f64::from(reader.duration()) / 48_000.0;
            println!("phrase {index}: {seconds:.2} s");
            assert!(
                (3.5..=7.0).contains(&seconds),
                "phrase {index} lasts {seconds:.2} s"
            );
        }
        Ok(())
    }
}
