//! VP8 speed on this machine: encode and decode time per frame at 1280x720 for 300 test-pattern
//! frames, at a few encoder speeds and thread counts. Prints figures; judges nothing.
//!
//! `cargo run --release -p lyrebird-video --example vp8_speed [kbit/s]` (default 1000).

use std::time::{Duration, Instant};

use lyrebird_video::{TestPattern, Vp8Decoder, Vp8Encoder, Vp8EncoderConfig, read_counter};

const WIDTH: u32 = 1280;
const HEIGHT: u32 = 720;
const FRAMES: u32 = 300;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let kbps: u32 = match std::env::args().nth(1) {
        Some(arg) => arg.parse()?,
        None => 1000,
    };
    let pattern = TestPattern::new(WIDTH, HEIGHT)?;
    println!(
        "VP8 {WIDTH}x{HEIGHT}, {FRAMES} frames at 30 fps, target {kbps} kbit/s, libvpx {}",
        libvpx_version()
    );
    println!("speed threads  encode ms/frame  decode ms/frame  kbit/s  counters read");
    for (speed, threads) in [(6, 1), (8, 1), (10, 1), (8, 2)] {
        let mut config = Vp8EncoderConfig::new(WIDTH, HEIGHT, kbps);
        config.speed = speed;
        config.threads = threads;
        let mut encoder = Vp8Encoder::new(config)?;
        let mut encoded = Vec::new();
        let mut encode_time = Duration::ZERO;
        for n in 0..FRAMES {
            // Drawing the pattern is not the encoder's time.
            let frame = pattern.frame(n);
            let start = Instant::now();
            let out = encoder.encode(&frame, i64::from(n) * 3000)?;
            encode_time += start.elapsed();
            encoded.extend(out);
        }

        let mut decoder = Vp8Decoder::new()?;
        let mut pictures = Vec::new();
        let start = Instant::now();
        for frame in &encoded {
            pictures.push(decoder.decode(&frame.data)?);
        }
        let decode_time = start.elapsed();
        let read = (0..)
            .zip(&pictures)
            .filter(|(n, p)| p.as_ref().and_then(read_counter) == Some(*n))
            .count();

        let bytes: usize = encoded.iter().map(|f| f.data.len()).sum();
        let per_frame = |d: Duration| d.as_secs_f64() * 1000.0 / f64::from(FRAMES);
        println!(
            "{speed:>5} {threads:>7}  {:>15.2}  {:>15.2}  {:>6.0}  {read}/{FRAMES}",
            per_frame(encode_time),
            per_frame(decode_time),
            bytes as f64 * 8.0 * 30.0 / f64::from(FRAMES) / 1000.0,
        );
    }
    Ok(())
}

fn libvpx_version() -> String {
    std::process::Command::new("pkg-config")
        .args(["--modversion", "vpx"])
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "(version unknown)".into())
}
