//! Two media sessions in one process, offer/answer exchanged directly (no SIP), over loopback
//! with mDNS off. Checks that each side records the other's audio.

use anyhow::{Context, Result, bail, ensure};
use lyrebird_media::{
    AudioCodec, AudioSink, AudioSource, Conference, MediaConfig, MediaError, MediaEvent,
    MediaSession, read_wav_48k_mono, resample::Resampler,
};
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::Receiver;
use tokio::time::timeout;

const STEP_TIMEOUT: Duration = Duration::from_secs(10);

fn loopback_config() -> MediaConfig {
    MediaConfig {
        mdns: false,
        bind_addrs: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
        gathering_timeout: Duration::from_secs(2),
        ..MediaConfig::default()
    }
}

async fn wait_for(events: &mut Receiver<MediaEvent>, wanted: MediaEvent) -> Result<()> {
    timeout(STEP_TIMEOUT, async {
        while let Some(event) = events.recv().await {
            if event == wanted {
                return Ok(());
            }
            if let MediaEvent::Failed { reason } = event {
                bail!("media failed: {reason}");
            }
        }
        bail!("event stream ended before {wanted:?}")
    })
    .await
    .with_context(|| format!("timed out waiting for {wanted:?}"))?
}

struct Call {
    offerer: MediaSession,
    answerer: MediaSession,
    offerer_events: Receiver<MediaEvent>,
    answerer_events: Receiver<MediaEvent>,
}

/// Offer/answer, then wait until both sides are connected and have heard the other.
async fn connect(
    offerer_config: &MediaConfig,
    offerer_media: (AudioSource, AudioSink),
    answerer_media: (AudioSource, AudioSink),
) -> Result<Call> {
    let mut offerer = MediaSession::new(offerer_config, offerer_media.0, offerer_media.1).await?;
    let mut answerer =
        MediaSession::new(&loopback_config(), answerer_media.0, answerer_media.1).await?;
    let mut offerer_events = offerer.events();
    let mut answerer_events = answerer.events();

    let started = Instant::now();
    let offer = offerer.create_offer().await?;
    assert!(
        offer.contains("a=candidate"),
        "offer must carry candidates:\n{offer}"
    );
    assert!(offer.contains("UDP/TLS/RTP/SAVPF") && offer.contains("a=fingerprint"));
    assert!(offer.contains("a=rtcp-mux"), "{offer}");
    let offered = started.elapsed();
    let answer = answerer.accept_offer(&offer).await?;
    println!(
        "create_offer {offered:?}, accept_offer done {:?}",
        started.elapsed()
    );
    assert!(
        answer.contains("a=candidate"),
        "answer must carry candidates:\n{answer}"
    );
    offerer.apply_answer(&answer).await?;
    wait_for(&mut offerer_events, MediaEvent::Connected).await?;
    let connected = started.elapsed();
    wait_for(&mut answerer_events, MediaEvent::Connected).await?;
    wait_for(&mut offerer_events, MediaEvent::FirstAudioReceived).await?;
    let first_audio = started.elapsed();
    wait_for(&mut answerer_events, MediaEvent::FirstAudioReceived).await?;
    println!("offer->connected {connected:?}, offer->first audio at offerer {first_audio:?}");
    Ok(Call {
        offerer,
        answerer,
        offerer_events,
        answerer_events,
    })
}

/// Power of `frequency` in `samples` (Goertzel), normalised so a full-scale sine gives ~0.25.
fn goertzel(samples: &[f32], frequency: f32, rate: f32) -> f32 {
    let coefficient = 2.0 * (std::f32::consts::TAU * frequency / rate).cos();
    let (mut s1, mut s2) = (0.0f32, 0.0f32);
    for &x in samples {
        let s0 = x + coefficient * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - coefficient * s1 * s2;
    power / (samples.len() as f32).powi(2)
}

fn rms(samples: &[f32]) -> f32 {
    (samples.iter().map(|s| s * s).sum::<f32>() / samples.len().max(1) as f32).sqrt()
}

fn assert_tone(path: &Path, expected_hz: f32, wrong_hz: f32) -> Result<()> {
    let recording = read_wav_48k_mono(path)?;
    assert!(
        recording.len() > 48_000,
        "recording too short: {}",
        recording.len()
    );
    // The last 0.5 s is well inside the call.
    let tail = &recording[recording.len() - 24_000..];
    let right = goertzel(tail, expected_hz, 48_000.0);
    let wrong = goertzel(tail, wrong_hz, 48_000.0);
    let level = rms(tail);
    println!(
        "{}: rms {level:.3}, {expected_hz} Hz {right:.5}, {wrong_hz} Hz {wrong:.7}",
        path.display()
    );
    assert!(level > 0.1, "recording is (nearly) silent: rms {level}");
    // A 0.4-amplitude sine gives 0.04 here.
    assert!(right > 0.01, "no real energy at {expected_hz} Hz: {right}");
    assert!(
        right > 1000.0 * wrong,
        "{wrong_hz} Hz present: {wrong} vs {right}"
    );
    Ok(())
}

async fn tone_call(offerer_config: MediaConfig, expected_codec: &str) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let offerer_wav = dir.path().join("offerer.wav");
    let answerer_wav = dir.path().join("answerer.wav");
    let tone = |hz| AudioSource::Tone {
        frequency_hz: hz,
        amplitude: 0.4,
    };
    let call = connect(
        &offerer_config,
        (
            tone(440.0),
            AudioSink::Wav {
                path: offerer_wav.clone(),
            },
        ),
        (
            tone(1000.0),
            AudioSink::Wav {
                path: answerer_wav.clone(),
            },
        ),
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (offerer_stats, answerer_stats) = (call.offerer.stats(), call.answerer.stats());
    println!("offerer {offerer_stats:?}\nanswerer {answerer_stats:?}");
    for stats in [&offerer_stats, &answerer_stats] {
        assert_eq!(stats.codec, expected_codec);
        assert!(stats.packets_sent >= 40, "{stats:?}");
        assert!(stats.packets_received >= 40, "{stats:?}");
        // The output meter is the level of the last frame played, which may be concealment
        // on a loaded machine; the recordings below prove what each side heard.
        assert!(stats.input_level > 0.1, "{stats:?}");
        assert_eq!(stats.packets_lost, 0, "loopback should not lose: {stats:?}");
    }
    drop((call.offerer_events, call.answerer_events));
    call.offerer.close().await?;
    call.answerer.close().await?;
    // Each side hears the other's tone, never its own.
    assert_tone(&offerer_wav, 1000.0, 440.0)?;
    assert_tone(&answerer_wav, 440.0, 1000.0)?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opus_tones_cross_both_ways() -> Result<()> {
    tone_call(loopback_config(), "opus").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pcmu_only_offer_carries_tones_both_ways() -> Result<()> {
    let config = MediaConfig {
        codecs: vec![AudioCodec::Pcmu],
        ..loopback_config()
    };
    tone_call(config, "PCMU").await
}

/// A speech-like test signal: a gliding fundamental with harmonics and a syllable envelope.
fn write_test_wav(path: &Path, rate: u32, channels: u16, seconds: f32) -> Result<()> {
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(path, spec)?;
    let mut phase = 0.0f32;
    for n in 0..(rate as f32 * seconds) as usize {
        let t = n as f32 / rate as f32;
        let f0 = 140.0 + 60.0 * (std::f32::consts::TAU * 0.7 * t).sin();
        phase += std::f32::consts::TAU * f0 / rate as f32;
        let voiced: f32 = (1..=8).map(|k| (k as f32 * phase).sin() / k as f32).sum();
        let envelope = 0.5 + 0.5 * (std::f32::consts::TAU * 3.0 * t).sin();
        let sample = (0.25 * voiced * envelope * 32_767.0) as i16;
        for _ in 0..channels {
            writer.write_sample(sample)?;
        }
    }
    writer.finalize()?;
    Ok(())
}

/// Lag (in samples of `recording`) maximising correlation with `reference`, searched at 8 kHz.
fn coarse_lag(reference: &[f32], recording: &[f32]) -> usize {
    let decimate = |x: &[f32]| {
        let mut resampler = Resampler::new(48_000, 8_000);
        let mut out = Vec::new();
        resampler.process(x, &mut out);
        out
    };
    let (reference, recording) = (decimate(reference), decimate(recording));
    let window = &reference[..reference.len().min(4_000)];
    let mut best = (0usize, f32::MIN);
    for lag in 0..recording.len().saturating_sub(window.len()) {
        let score: f32 = window
            .iter()
            .zip(&recording[lag..])
            .map(|(a, b)| a * b)
            .sum();
        if score > best.1 {
            best = (lag, score);
        }
    }
    best.0 * 6
}

fn correlation(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let energy =
        (a.iter().map(|x| x * x).sum::<f32>() * b.iter().map(|y| y * y).sum::<f32>()).sqrt();
    dot / energy.max(f32::EPSILON)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wav_file_comes_out_recognisably() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let source = dir.path().join("source.wav");
    let recording = dir.path().join("recording.wav");
    // 16 kHz stereo exercises down-mix and resampling on the way in.
    write_test_wav(&source, 16_000, 2, 1.5)?;
    let call = connect(
        &loopback_config(),
        (
            AudioSource::Wav {
                path: source.clone(),
                looped: false,
            },
            AudioSink::Discard,
        ),
        (
            AudioSource::Silence,
            AudioSink::Wav {
                path: recording.clone(),
            },
        ),
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(1800)).await;
    call.offerer.close().await?;
    call.answerer.close().await?;

    let reference = read_wav_48k_mono(&source)?;
    let received = read_wav_48k_mono(&recording)?;
    let coarse = coarse_lag(&reference, &received);
    // Refine at full rate around the coarse estimate.
    let segment = &reference[2_400..reference.len() - 4_800];
    let mut best = (0usize, f32::MIN);
    for lag in coarse.saturating_sub(24)..coarse + 24 {
        let start = lag + 2_400;
        if start + segment.len() > received.len() {
            break;
        }
        let c = correlation(segment, &received[start..start + segment.len()]);
        if c > best.1 {
            best = (lag, c);
        }
    }
    println!(
        "alignment lag {} samples, correlation {:.3}",
        best.0, best.1
    );
    assert!(
        best.1 > 0.7,
        "received audio does not match the file: {}",
        best.1
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_sdp_is_an_error_not_a_panic() -> Result<()> {
    let session =
        MediaSession::new(&loopback_config(), AudioSource::Silence, AudioSink::Discard).await?;
    for garbage in [
        "",
        "garbage",
        "v=0\r\nnonsense",
        "v=0\r\nm=audio 9 RTP/AVP 999\r\n",
        "\u{0}\u{ff}",
    ] {
        assert!(
            matches!(
                session.apply_answer(garbage).await,
                Err(MediaError::BadSdp(_))
            ),
            "{garbage:?}"
        );
        assert!(
            matches!(
                session.accept_offer(garbage).await,
                Err(MediaError::BadSdp(_))
            ),
            "{garbage:?}"
        );
    }
    let g722_only = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 9\r\nc=IN IP4 127.0.0.1\r\na=rtpmap:9 G722/8000\r\n";
    assert!(matches!(
        session.accept_offer(g722_only).await,
        Err(MediaError::NoCommonCodec { .. })
    ));
    assert!(matches!(
        session.send_dtmf('x').await,
        Err(MediaError::InvalidDtmfDigit('x'))
    ));
    session.close().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dtmf_is_sent_as_telephone_events() -> Result<()> {
    let call = connect(
        &loopback_config(),
        (AudioSource::Silence, AudioSink::Discard),
        (AudioSource::Silence, AudioSink::Discard),
    )
    .await?;
    let mut answerer_events = call.answerer_events;
    let before = call.answerer.stats().packets_received;
    let keys = "5#1A";
    for key in keys.chars() {
        call.offerer.send_dtmf(key).await?;
    }
    // The far side tells each key press once, in order.
    let mut heard = String::new();
    timeout(STEP_TIMEOUT, async {
        while heard.len() < keys.len() {
            match answerer_events.recv().await {
                Some(MediaEvent::Dtmf { digit }) => heard.push(digit),
                Some(_) => {}
                None => break,
            }
        }
    })
    .await
    .with_context(|| format!("only {heard:?} of {keys:?} arrived"))?;
    assert_eq!(heard, keys);
    // Event packets replace audio packets one for one, so the stream keeps its rate.
    let after = call.answerer.stats().packets_received;
    assert!(
        after - before >= 20,
        "stream stalled during DTMF: {before} -> {after}"
    );
    call.offerer.close().await?;
    call.answerer.close().await?;
    Ok(())
}

/// A local conference (N−1 mixing): three calls from this end, each party sending its own
/// tone, this end sending another; each party hears this end and the two other parties, and
/// not itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conference_lets_every_party_hear_the_others_and_not_itself() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let tone = |hz| AudioSource::Tone {
        frequency_hz: hz,
        amplitude: 0.2,
    };
    let party_tones = [600.0f32, 800.0, 1000.0];
    let host_tone = 440.0f32;
    let mut calls = Vec::new();
    let mut recordings = Vec::new();
    for hz in party_tones {
        let recording = dir.path().join(format!("party-{hz}.wav"));
        let call = connect(
            &loopback_config(),
            (tone(host_tone), AudioSink::Discard),
            (
                tone(hz),
                AudioSink::Wav {
                    path: recording.clone(),
                },
            ),
        )
        .await?;
        calls.push(call);
        recordings.push(recording);
    }
    let conference = Conference::new();
    for call in &calls {
        call.offerer.join_conference(&conference)?;
    }
    assert_eq!(conference.len(), 3);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for call in calls {
        call.offerer.close().await?;
        call.answerer.close().await?;
    }
    assert!(conference.is_empty(), "closed calls leave the conference");
    for (own, recording) in party_tones.iter().zip(&recordings) {
        let heard = read_wav_48k_mono(recording)?;
        let tail = &heard[heard.len().saturating_sub(24_000)..];
        let power = |hz: f32| goertzel(tail, hz, 48_000.0);
        let others: Vec<f32> = party_tones
            .iter()
            .filter(|hz| *hz != own)
            .copied()
            .collect();
        println!(
            "party {own} Hz hears: host {:.5}, others {:?}, itself {:.7}",
            power(host_tone),
            others.iter().map(|hz| power(*hz)).collect::<Vec<_>>(),
            power(*own)
        );
        assert!(
            power(host_tone) > 0.001,
            "party {own} Hz does not hear this end"
        );
        for hz in &others {
            assert!(
                power(*hz) > 0.001,
                "party {own} Hz does not hear the {hz} Hz party"
            );
            assert!(
                power(*hz) > 100.0 * power(*own),
                "party {own} Hz hears itself: {} vs {}",
                power(*own),
                power(*hz)
            );
        }
    }
    Ok(())
}

/// Packets `session` receives in `window`.
async fn received_during(session: &MediaSession, window: Duration) -> u64 {
    let before = session.stats().packets_received;
    tokio::time::sleep(window).await;
    session.stats().packets_received - before
}

/// RFC 6337: the holder offers sendonly and the held side answers recvonly; while held, neither
/// side's source reaches the other; after resume both directions flow again. Then the other
/// side holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_stops_both_directions_and_resume_restores_them() -> Result<()> {
    let tone = |hz| AudioSource::Tone {
        frequency_hz: hz,
        amplitude: 0.4,
    };
    let call = connect(
        &loopback_config(),
        (tone(440.0), AudioSink::Discard),
        (tone(1000.0), AudioSink::Discard),
    )
    .await?;
    let window = Duration::from_millis(400);
    for (holder, held) in [
        (&call.offerer, &call.answerer),
        (&call.answerer, &call.offerer),
    ] {
        let hold = holder.hold_offer(true)?;
        assert!(hold.contains("a=sendonly"), "{hold}");
        let answer = held.accept_offer(&hold).await?;
        assert!(answer.contains("a=recvonly"), "{answer}");
        holder.apply_hold_answer(&answer)?;
        assert!(holder.hold_state().local && !holder.hold_state().remote);
        assert!(held.hold_state().remote && !held.hold_state().local);
        // Packets already on the way settle first.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            received_during(held, window).await,
            0,
            "the holder still sends"
        );
        assert_eq!(
            received_during(holder, window).await,
            0,
            "the held side still sends"
        );

        let resume = holder.hold_offer(false)?;
        assert!(resume.contains("a=sendrecv"), "{resume}");
        let answer = held.accept_offer(&resume).await?;
        holder.apply_hold_answer(&answer)?;
        assert_eq!(holder.hold_state(), Default::default());
        assert_eq!(held.hold_state(), Default::default());
        assert!(
            received_during(held, window).await >= 10,
            "no audio after resume"
        );
        assert!(
            received_during(holder, window).await >= 10,
            "no audio after resume"
        );
    }
    call.offerer.close().await?;
    call.answerer.close().await?;
    Ok(())
}

/// Every payload type in the offer's m-line appears once and has exactly one rtpmap: a
/// duplicated payload type is an invalid offer (RFC 4566 §5.14) that strict peers refuse.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_offer_lists_each_payload_type_once() -> Result<()> {
    for codecs in [None, Some(vec![AudioCodec::Pcmu, AudioCodec::Pcma])] {
        let mut config = loopback_config();
        if let Some(codecs) = codecs.clone() {
            config.codecs = codecs;
        }
        let session = MediaSession::new(&config, AudioSource::Silence, AudioSink::Discard).await?;
        let offer = session.create_offer().await?;
        let m_line = offer
            .lines()
            .find(|l| l.starts_with("m=audio"))
            .context("no m=audio line")?;
        let payload_types: Vec<&str> = m_line.split_whitespace().skip(3).collect();
        let mut unique = payload_types.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(
            unique.len(),
            payload_types.len(),
            "duplicated payload type in {m_line}"
        );
        for pt in &payload_types {
            let rtpmaps = offer
                .lines()
                .filter(|l| l.starts_with(&format!("a=rtpmap:{pt} ")))
                .count();
            assert_eq!(
                rtpmaps, 1,
                "payload type {pt} has {rtpmaps} rtpmap lines:\n{offer}"
            );
        }
        assert!(
            offer.contains("telephone-event/"),
            "no telephone-event offered ({codecs:?}):\n{offer}"
        );
        session.close().await?;
    }
    Ok(())
}

/// The offer's DTLS fingerprint changed on the way (a man in the middle of the signalling):
/// the peer's certificate does not match it, so the call must fail and carry no audio at all
/// (RFC 5763 §5). Both sides send a tone, so any audio would be counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fingerprint_that_does_not_match_the_certificate_carries_no_audio() -> Result<()> {
    let tone = |hz| AudioSource::Tone {
        frequency_hz: hz,
        amplitude: 0.4,
    };
    let mut offerer =
        MediaSession::new(&loopback_config(), tone(440.0), AudioSink::Discard).await?;
    let mut answerer =
        MediaSession::new(&loopback_config(), tone(1000.0), AudioSink::Discard).await?;
    let mut offerer_events = offerer.events();
    let mut answerer_events = answerer.events();
    let offer = offerer.create_offer().await?;
    // Flip the last hex digit of the fingerprint: still well-formed, no longer the offerer's.
    let tampered: String = offer
        .lines()
        .map(|line| {
            if line.starts_with("a=fingerprint:") {
                let (head, last) = line.split_at(line.len() - 1);
                let flipped = if last == "0" { "1" } else { "0" };
                format!("{head}{flipped}\r\n")
            } else {
                format!("{line}\r\n")
            }
        })
        .collect();
    ensure!(tampered != offer, "the offer has no fingerprint to change");
    let answer = answerer.accept_offer(&tampered).await?;
    offerer.apply_answer(&answer).await?;

    // Whatever happens at the transport, no audio may arrive on either side, and the side
    // that checks the mismatched fingerprint must say the call failed.
    // Bounded well past the media's own connect deadline (12 s).
    let deadline = Instant::now() + Duration::from_secs(25);
    let mut failed = false;
    while Instant::now() < deadline && !failed {
        tokio::select! {
            Some(event) = answerer_events.recv() => match event {
                MediaEvent::FirstAudioReceived => bail!("the answerer heard audio over a forged fingerprint"),
                MediaEvent::Failed { reason } => {
                    println!("answerer failed: {reason}");
                    failed = true;
                }
                _ => {}
            },
            Some(event) = offerer_events.recv() => {
                ensure!(event != MediaEvent::FirstAudioReceived, "the offerer heard audio over a forged fingerprint");
                println!("offerer: {event:?}");
            }
            () = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
    ensure!(failed, "the mismatch was not reported as a failed call");
    ensure!(
        offerer.stats().packets_received == 0 && answerer.stats().packets_received == 0,
        "media packets were accepted: offerer {}, answerer {}",
        offerer.stats().packets_received,
        answerer.stats().packets_received
    );
    offerer.close().await?;
    answerer.close().await?;
    Ok(())
}
