//! Headless recording: received (decoded) video written to Y4M and read back, counters intact.

use std::time::Duration;

use lyrebird_video::{
    FrameRate, ReceiveStats, TestPattern, Vp8Decoder, Vp8Encoder, Vp8EncoderConfig, Y4mReader,
    Y4mWriter, read_counter,
};

#[test]
fn decoded_video_records_to_y4m_and_reads_back() {
    let (width, height) = (640, 360);
    let mut pattern = TestPattern::new(width, height).unwrap();
    let mut encoder = Vp8Encoder::new(Vp8EncoderConfig::new(width, height, 400)).unwrap();
    let mut decoder = Vp8Decoder::new().unwrap();
    let mut recorder = Y4mWriter::new(Vec::new(), FrameRate::fps(30)).unwrap();
    let mut stats = ReceiveStats::new();

    for n in 0..40u32 {
        let frame = pattern.next_frame();
        for encoded in encoder.encode(&frame, i64::from(n) * 3000).unwrap() {
            let picture = decoder.decode(&encoded.data).unwrap().unwrap();
            stats.frame_decoded(
                Duration::from_millis(u64::from(n) * 1000 / 30),
                picture.width(),
                picture.height(),
            );
            recorder.write_frame(&picture).unwrap();
        }
    }
    let file = recorder.into_inner();

    let snap = stats.snapshot(Duration::from_millis(39 * 1000 / 30));
    assert_eq!(snap.frames_decoded, 40);
    assert_eq!(snap.frames_per_second, 30);
    assert_eq!(snap.freeze_count, 0);
    assert_eq!(snap.resolution, Some((width, height)));

    let mut reader = Y4mReader::new(&file[..]).unwrap();
    assert_eq!((reader.width(), reader.height()), (width, height));
    let mut counters = Vec::new();
    while let Some(frame) = reader.read_frame().unwrap() {
        counters.push(read_counter(&frame));
    }
    assert_eq!(counters, (0..40).map(Some).collect::<Vec<_>>());
}
