//! Benchmark: a 10 s Opus tone call between two sessions in this process, over loopback.
//! Prints offer→connected, offer→first audio, and the CPU the process used while the call was
//! established (both ends together, and per end).
//!
//! `cargo run -p lyrebird-media --example tone_call [seconds]`

use anyhow::{Result, bail};
use lyrebird_media::{AudioSink, AudioSource, MediaConfig, MediaEvent, MediaSession};
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};
use tokio::time::timeout;

/// User + system CPU time of this process, from /proc/self/stat (Linux).
fn process_cpu() -> Result<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields.get(11).unwrap_or(&"0").parse::<u64>()?
        + fields.get(12).unwrap_or(&"0").parse::<u64>()?;
    // USER_HZ is 100 on Linux.
    Ok(Duration::from_millis(ticks * 10))
}

async fn wait(
    events: &mut tokio::sync::mpsc::Receiver<MediaEvent>,
    wanted: MediaEvent,
) -> Result<()> {
    timeout(Duration::from_secs(10), async {
        while let Some(event) = events.recv().await {
            if event == wanted {
                return Ok(());
            }
        }
        bail!("events ended")
    })
    .await?
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let seconds: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let config = MediaConfig {
        mdns: false,
        bind_addrs: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
        ..MediaConfig::default()
    };
    let tone = |hz| AudioSource::Tone {
        frequency_hz: hz,
        amplitude: 0.3,
    };
    let mut a = MediaSession::new(&config, tone(440.0), AudioSink::Discard).await?;
    let mut b = MediaSession::new(&config, tone(1000.0), AudioSink::Discard).await?;
    let (mut a_events, mut b_events) = (a.events(), b.events());

    let started = Instant::now();
    let offer = a.create_offer().await?;
    let answer = b.accept_offer(&offer).await?;
    a.apply_answer(&answer).await?;
    wait(&mut a_events, MediaEvent::Connected).await?;
    let connected = started.elapsed();
    wait(&mut a_events, MediaEvent::FirstAudioReceived).await?;
    let first_audio = started.elapsed();
    wait(&mut b_events, MediaEvent::FirstAudioReceived).await?;

    let cpu_before = process_cpu()?;
    let wall_before = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let cpu = process_cpu()? - cpu_before;
    let wall = wall_before.elapsed();
    let (sa, sb) = (a.stats(), b.stats());
    a.close().await?;
    b.close().await?;

    let percent = 100.0 * cpu.as_secs_f64() / wall.as_secs_f64();
    println!("offer->connected: {connected:?}");
    println!("offer->first audio (offerer): {first_audio:?}");
    println!(
        "CPU over {wall:.1?}: {cpu:?} = {percent:.2} % of one core for both ends, {:.2} % per end",
        percent / 2.0
    );
    println!("A: {sa:?}\nB: {sb:?}");
    Ok(())
}
