//! VP8 through libvpx, end to end: the test pattern's counters must come back out of a real
//! encoder and decoder, and damaged input must give errors, never a panic or a wrong picture.

use lyrebird_video::{
    EncodedFrame, Error, I420Frame, TestPattern, Vp8Decoder, Vp8Encoder, Vp8EncoderConfig,
    read_counter,
};

/// 90 kHz ticks per frame at 30 fps.
const TICKS_30FPS: i64 = 3000;

/// Encodes `count` pattern frames starting at frame number `first`, expecting exactly one
/// compressed frame for each (frame dropping is off by default).
fn encode_pattern(
    encoder: &mut Vp8Encoder,
    pattern: &TestPattern,
    first: u32,
    count: u32,
) -> Vec<EncodedFrame> {
    (first..first + count)
        .map(|n| {
            let mut out = encoder
                .encode(&pattern.frame(n), i64::from(n) * TICKS_30FPS)
                .unwrap();
            assert_eq!(out.len(), 1, "frame {n} gave {} outputs", out.len());
            out.remove(0)
        })
        .collect()
}

fn counters_survive(width: u32, height: u32, kbps: u32, frames: u32) {
    let pattern = TestPattern::new(width, height).unwrap();
    let mut encoder = Vp8Encoder::new(Vp8EncoderConfig::new(width, height, kbps)).unwrap();
    let mut decoder = Vp8Decoder::new().unwrap();
    let encoded = encode_pattern(&mut encoder, &pattern, 0, frames);
    assert!(encoded[0].keyframe, "a stream starts with a keyframe");
    let mut read = Vec::new();
    for frame in &encoded {
        let picture = decoder.decode(&frame.data).unwrap().expect("a shown frame");
        assert_eq!((picture.width(), picture.height()), (width, height));
        read.push(read_counter(&picture));
    }
    let expected: Vec<_> = (0..frames).map(Some).collect();
    assert_eq!(read, expected);

    // The bitrate was held to, roughly: the test is about readability at a realistic rate,
    // not about a stream that quietly ran at ten times the budget.
    let bytes: usize = encoded.iter().map(|f| f.data.len()).sum();
    let kbps_used = bytes * 8 * 30 / frames as usize / 1000;
    assert!(
        kbps_used < kbps as usize * 2,
        "{kbps_used} kbit/s for {kbps}"
    );
}

#[test]
fn pattern_counters_survive_640x360_at_300_kbps() {
    counters_survive(640, 360, 300, 90);
}

#[test]
fn pattern_counters_survive_1280x720_at_1_mbps() {
    counters_survive(1280, 720, 1000, 60);
}

#[test]
fn requested_keyframe_comes_on_the_next_encode() {
    let pattern = TestPattern::new(320, 240).unwrap();
    let mut encoder = Vp8Encoder::new(Vp8EncoderConfig::new(320, 240, 300)).unwrap();
    let start = encode_pattern(&mut encoder, &pattern, 0, 10);
    let keyframes: Vec<bool> = start.iter().map(|f| f.keyframe).collect();
    assert_eq!(keyframes, [[true].as_slice(), &[false; 9]].concat());

    encoder.request_keyframe();
    let next = encode_pattern(&mut encoder, &pattern, 10, 2);
    assert!(next[0].keyframe, "the requested keyframe");
    assert!(!next[1].keyframe, "the request is spent once honoured");
    assert_eq!(next[0].pts, 10 * TICKS_30FPS);
}

#[test]
fn lowering_the_bitrate_at_run_time_shrinks_the_stream() {
    let pattern = TestPattern::new(640, 360).unwrap();
    let mut steady = Vp8Encoder::new(Vp8EncoderConfig::new(640, 360, 1000)).unwrap();
    let mut lowered = Vp8Encoder::new(Vp8EncoderConfig::new(640, 360, 1000)).unwrap();
    encode_pattern(&mut steady, &pattern, 0, 30);
    encode_pattern(&mut lowered, &pattern, 0, 30);

    lowered.set_bitrate(250).unwrap();
    assert_eq!(lowered.config().bitrate_kbps, 250);
    let size = |frames: Vec<EncodedFrame>| frames.iter().map(|f| f.data.len()).sum::<usize>();
    let steady_bytes = size(encode_pattern(&mut steady, &pattern, 30, 60));
    let lowered_bytes = size(encode_pattern(&mut lowered, &pattern, 30, 60));
    assert!(
        lowered_bytes * 2 < steady_bytes,
        "250 kbit/s gave {lowered_bytes} bytes, 1000 kbit/s {steady_bytes}"
    );
}

/// Deterministic pseudo-random bytes (xorshift).
fn noise(seed: u32, len: usize) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        })
        .collect()
}

#[test]
fn damaged_input_is_an_error_and_the_next_keyframe_recovers() {
    let pattern = TestPattern::new(640, 360).unwrap();
    let mut encoder = Vp8Encoder::new(Vp8EncoderConfig::new(640, 360, 500)).unwrap();
    let mut decoder = Vp8Decoder::new().unwrap();
    let stream = encode_pattern(&mut encoder, &pattern, 0, 10);

    // Before any keyframe: inter frames and garbage are refused.
    assert!(decoder.is_awaiting_keyframe());
    assert!(matches!(
        decoder.decode(&stream[1].data),
        Err(Error::KeyframeRequired)
    ));
    assert!(decoder.decode(&[]).is_err());

    for frame in &stream[..5] {
        decoder.decode(&frame.data).unwrap().unwrap();
    }
    assert!(!decoder.is_awaiting_keyframe());

    // Each kind of damage, each time after a clean keyframe so it meets a working decoder.
    let key = &stream[0].data;
    let inter = &stream[5].data;
    let mut keyframe_with_noise = key[..10].to_vec();
    keyframe_with_noise.extend(noise(7, key.len() - 10));
    let mut flipped_inter = inter.clone();
    for byte in flipped_inter.iter_mut().skip(3).step_by(5) {
        *byte ^= 0xA5;
    }
    let damaged: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("three bytes", inter[..3].to_vec()),
        ("inter frame cut in half", inter[..inter.len() / 2].to_vec()),
        (
            "inter frame missing its last bytes",
            inter[..inter.len() - 8].to_vec(),
        ),
        ("keyframe cut in half", key[..key.len() / 2].to_vec()),
        ("keyframe header, noise after", keyframe_with_noise),
        ("inter frame with bits flipped", flipped_inter),
        ("noise", noise(1, 2000)),
        ("one byte", vec![0x00]),
    ];
    for (what, data) in &damaged {
        decoder.decode(key).unwrap().unwrap();
        let result = decoder.decode(data);
        assert!(result.is_err(), "{what}: {result:?}");
        assert!(decoder.is_awaiting_keyframe(), "{what}");
        // While waiting, the intact inter frames that follow are refused, not smeared.
        assert!(matches!(
            decoder.decode(&stream[6].data),
            Err(Error::KeyframeRequired)
        ));
    }

    // Plenty more garbage of many lengths: errors only, no panic, no crash.
    for seed in 0..300u32 {
        let data = noise(seed, (seed as usize * 37) % 5000 + 1);
        let _ = decoder.decode(&data);
    }

    // The sender is asked for a keyframe (PLI); it decodes, and so do the frames after it.
    encoder.request_keyframe();
    let recovery = encode_pattern(&mut encoder, &pattern, 10, 5);
    assert!(recovery[0].keyframe);
    for (n, frame) in (10..).zip(&recovery) {
        let picture = decoder.decode(&frame.data).unwrap().unwrap();
        assert_eq!(read_counter(&picture), Some(n));
    }
}

#[test]
fn decoder_waits_for_a_keyframe_after_a_reported_loss() {
    let pattern = TestPattern::new(320, 240).unwrap();
    let mut encoder = Vp8Encoder::new(Vp8EncoderConfig::new(320, 240, 300)).unwrap();
    let mut decoder = Vp8Decoder::new().unwrap();
    let stream = encode_pattern(&mut encoder, &pattern, 0, 4);
    decoder.decode(&stream[0].data).unwrap().unwrap();
    decoder.wait_for_keyframe();
    assert!(matches!(
        decoder.decode(&stream[2].data),
        Err(Error::KeyframeRequired)
    ));
    decoder.decode(&stream[0].data).unwrap().unwrap();
    decoder.decode(&stream[1].data).unwrap().unwrap();
}

#[test]
fn size_changes_mid_stream_reach_the_decoder() {
    let mut encoder = Vp8Encoder::new(Vp8EncoderConfig::new(640, 360, 500)).unwrap();
    let mut decoder = Vp8Decoder::new().unwrap();
    let sizes = [(640, 360), (1280, 720), (320, 240), (642, 362)];
    let mut n = 0u32;
    for (width, height) in sizes {
        let pattern = TestPattern::new(width, height).unwrap();
        let encoded = encode_pattern(&mut encoder, &pattern, n, 15);
        assert!(encoded[0].keyframe, "a new size starts with a keyframe");
        assert!(encoded[1..].iter().all(|f| !f.keyframe));
        assert_eq!(encoder.config().width, width);
        for frame in &encoded {
            assert_eq!((frame.width, frame.height), (width, height));
            let picture = decoder.decode(&frame.data).unwrap().unwrap();
            assert_eq!((picture.width(), picture.height()), (width, height));
            assert_eq!(read_counter(&picture), Some(n));
            n += 1;
        }
    }
}

#[test]
fn odd_sizes_encode_and_decode() {
    let (width, height) = (333, 201);
    let mut encoder = Vp8Encoder::new(Vp8EncoderConfig::new(width, height, 300)).unwrap();
    let mut decoder = Vp8Decoder::new().unwrap();
    // A flat picture comes back nearly flat, chroma included (the last odd column and row
    // have chroma too).
    let frame = I420Frame::filled(width, height, 100, 60, 200).unwrap();
    let encoded = encoder.encode(&frame, 0).unwrap();
    let picture = decoder.decode(&encoded[0].data).unwrap().unwrap();
    assert_eq!((picture.width(), picture.height()), (width, height));
    assert_eq!(
        (picture.chroma_width(), picture.chroma_height()),
        (167, 101)
    );
    let near = |plane: &[u8], value: u8| plane.iter().all(|&p| p.abs_diff(value) <= 3);
    assert!(near(picture.y(), 100));
    assert!(near(picture.u(), 60));
    assert!(near(picture.v(), 200));
}

#[test]
fn pattern_counters_survive_the_coarsest_quantiser() {
    // 30 kbit/s is far below what this moving picture needs, so the encoder codes every frame
    // at its quantiser ceiling: the worst a stamp can meet at any bitrate.
    let (width, height) = (640, 360);
    let pattern = TestPattern::new(width, height).unwrap();
    let mut encoder = Vp8Encoder::new(Vp8EncoderConfig::new(width, height, 30)).unwrap();
    let mut decoder = Vp8Decoder::new().unwrap();
    let mut qps = Vec::new();
    for (n, frame) in (0..).zip(encode_pattern(&mut encoder, &pattern, 0, 60)) {
        qps.push(encoder.last_qp().unwrap());
        let picture = decoder.decode(&frame.data).unwrap().unwrap();
        assert_eq!(read_counter(&picture), Some(n));
    }
    // Quantiser index 106 is max quantiser 56, the ceiling `Vp8EncoderConfig::new` sets.
    assert_eq!(qps[30..], [106; 30]);
}
