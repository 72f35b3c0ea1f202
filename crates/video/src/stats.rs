//! Statistics of a received video stream, from times the caller supplies (this crate reads no
//! clock): pass each event's time as a `Duration` since any fixed start, never decreasing.

use std::collections::VecDeque;
use std::time::Duration;

/// Interframe delays averaged for freeze detection (libwebrtc's
/// `kAvgInterframeDelaysWindowSizeFrames`).
const FREEZE_WINDOW: usize = 30;
/// Delays needed before any freeze is counted (`kMinFrameSamplesToDetectFreeze`).
const FREEZE_MIN_SAMPLES: usize = 5;
/// A freeze's delay exceeds the average by at least this (`kMinIncreaseForFreezeMs`).
const FREEZE_MIN_INCREASE_MS: u64 = 150;
const RATE_WINDOW: Duration = Duration::from_secs(1);

/// What a receiver saw, at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VideoStats {
    pub frames_decoded: u64,
    /// Frames that arrived but could not be decoded (damaged, or waiting for a keyframe).
    pub frames_dropped: u64,
    /// Size of the last decoded frame.
    pub resolution: Option<(u32, u32)>,
    /// Frames decoded in the last second (W3C webrtc-stats `framesPerSecond`).
    pub frames_per_second: u32,
    /// W3C webrtc-stats `freezeCount`, computed as libwebrtc does (see [`ReceiveStats`]).
    pub freeze_count: u64,
    /// Sum of the freezes' delays (`totalFreezesDuration`).
    pub total_freeze_duration: Duration,
}

/// Counts decoded and undecodable frames, the frame rate and freezes of one received stream.
///
/// A freeze is a delay between two decoded frames of at least
/// `max(3 × avg, avg + 150 ms)`, where `avg` is the mean of the last 30 delays, this one
/// included, in whole milliseconds rounded down, and only once 5 delays are known. That is
/// libwebrtc's `VideoQualityObserver2`, what Chrome reports as `freezeCount`; the W3C text
/// leaves open whether the current delay is in the average, and matching Chrome's figures is
/// what lets the two be compared in an interop test.
#[derive(Debug, Clone, Default)]
pub struct ReceiveStats {
    frames_decoded: u64,
    frames_dropped: u64,
    resolution: Option<(u32, u32)>,
    last_frame_at: Option<Duration>,
    /// Decode times within the last second of the latest frame, oldest first.
    recent: VecDeque<Duration>,
    /// The last `FREEZE_WINDOW` interframe delays in ms, and their sum.
    delays_ms: VecDeque<u64>,
    delays_sum_ms: u64,
    freeze_count: u64,
    total_freeze_duration: Duration,
}

impl ReceiveStats {
    pub fn new() -> Self {
        Self::default()
    }

    /// A frame of `width × height` was decoded at time `at`.
    pub fn frame_decoded(&mut self, at: Duration, width: u32, height: u32) {
        self.frames_decoded += 1;
        self.resolution = Some((width, height));
        if let Some(last) = self.last_frame_at {
            // A time before the last one (a caller's clock stepping back) counts as no delay.
            let delay_ms = at.saturating_sub(last).as_millis() as u64;
            self.note_delay(delay_ms);
        }
        self.last_frame_at = Some(at.max(self.last_frame_at.unwrap_or_default()));
        self.recent.push_back(at);
        while self.recent.front().is_some_and(|&t| t + RATE_WINDOW <= at) {
            self.recent.pop_front();
        }
    }

    fn note_delay(&mut self, delay_ms: u64) {
        self.delays_ms.push_back(delay_ms);
        self.delays_sum_ms += delay_ms;
        if self.delays_ms.len() > FREEZE_WINDOW {
            self.delays_sum_ms -= self.delays_ms.pop_front().unwrap_or(0);
        }
        if self.delays_ms.len() < FREEZE_MIN_SAMPLES {
            return;
        }
        let avg = self.delays_sum_ms / self.delays_ms.len() as u64;
        if delay_ms >= (3 * avg).max(avg + FREEZE_MIN_INCREASE_MS) {
            self.freeze_count += 1;
            self.total_freeze_duration += Duration::from_millis(delay_ms);
        }
    }

    /// A frame arrived that could not be decoded.
    pub fn frame_dropped(&mut self) {
        self.frames_dropped += 1;
    }

    /// Frames decoded in the second up to `now` (the interval `(now − 1 s, now]`).
    pub fn frames_per_second(&self, now: Duration) -> u32 {
        let count = self
            .recent
            .iter()
            .filter(|&&t| t <= now && t + RATE_WINDOW > now)
            .count();
        u32::try_from(count).unwrap_or(u32::MAX)
    }

    /// All figures, with the frame rate taken over the second up to `now`.
    pub fn snapshot(&self, now: Duration) -> VideoStats {
        VideoStats {
            frames_decoded: self.frames_decoded,
            frames_dropped: self.frames_dropped,
            resolution: self.resolution,
            frames_per_second: self.frames_per_second(now),
            freeze_count: self.freeze_count,
            total_freeze_duration: self.total_freeze_duration,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(value: u64) -> Duration {
        Duration::from_millis(value)
    }

    /// Feeds frames at the given times (ms), all 640x360.
    fn feed(stats: &mut ReceiveStats, times: impl IntoIterator<Item = u64>) {
        for t in times {
            stats.frame_decoded(ms(t), 640, 360);
        }
    }

    #[test]
    fn steady_stream_has_no_freeze_and_its_frame_rate() {
        let mut stats = ReceiveStats::new();
        feed(&mut stats, (0..300).map(|i| i * 1000 / 30));
        let now = ms(299 * 1000 / 30);
        let snap = stats.snapshot(now);
        assert_eq!(snap.freeze_count, 0);
        assert_eq!(snap.frames_decoded, 300);
        assert_eq!(snap.frames_per_second, 30);
        assert_eq!(snap.resolution, Some((640, 360)));
        // Two seconds after the last frame, nothing was decoded in the last second.
        assert_eq!(stats.frames_per_second(now + ms(2000)), 0);
    }

    #[test]
    fn counts_a_gap_as_a_freeze_by_libwebrtcs_rule() {
        let mut stats = ReceiveStats::new();
        // 30 frames 33 ms apart (29 delays), then a 400 ms gap.
        feed(&mut stats, (0..30).map(|i| i * 33));
        let last = 29 * 33;
        feed(&mut stats, [last + 400]);
        // Window: 29 × 33 + 400 = 1357 over 30 → avg 45; threshold max(135, 195) = 195.
        assert_eq!(stats.snapshot(ms(last + 400)).freeze_count, 1);
        assert_eq!(
            stats.snapshot(ms(last + 400)).total_freeze_duration,
            ms(400)
        );

        // Just under the threshold is not a freeze: with the 400 ms delay in the window,
        // delays 33 ms afterwards, a 180 ms gap has avg (28×33 + 400 + 180) / 30 = 50 (rounded
        // down), threshold max(150, 200) = 200.
        let mut t = last + 400;
        t += 33;
        feed(&mut stats, [t]);
        t += 180;
        feed(&mut stats, [t]);
        assert_eq!(stats.snapshot(ms(t)).freeze_count, 1);
    }

    #[test]
    fn threshold_is_inclusive_and_tracks_the_average() {
        // A slow 5 fps stream: delays of 200 ms, avg with the gap included decides.
        let mut stats = ReceiveStats::new();
        feed(&mut stats, (0..10).map(|i| i * 200));
        // 9 delays of 200 + one of d: avg = (1800 + d) / 10; freeze iff d >= max(3 avg, avg+150).
        // d = 771: avg = 257, 3 avg = 771 → freeze (equality counts).
        feed(&mut stats, [1800 + 771]);
        assert_eq!(stats.snapshot(ms(2571)).freeze_count, 1);

        let mut stats = ReceiveStats::new();
        feed(&mut stats, (0..10).map(|i| i * 200));
        // d = 770: avg = 257, 3 avg = 771 → no freeze.
        feed(&mut stats, [1800 + 770]);
        assert_eq!(stats.snapshot(ms(2570)).freeze_count, 0);
    }

    #[test]
    fn no_freeze_before_five_delays() {
        let mut stats = ReceiveStats::new();
        // Four delays only; the last is huge.
        feed(&mut stats, [0, 33, 66, 99, 5000]);
        assert_eq!(stats.snapshot(ms(5000)).freeze_count, 0);
        // On a fresh stream the fifth delay is judged: 4 × 33 + 868 = 1000, avg 200,
        // threshold max(600, 350) = 600.
        let mut stats = ReceiveStats::new();
        feed(&mut stats, [0, 33, 66, 99, 132, 1000]);
        assert_eq!(stats.snapshot(ms(1000)).freeze_count, 1);
    }

    #[test]
    fn dropped_frames_and_size_changes_are_reported() {
        let mut stats = ReceiveStats::new();
        assert_eq!(stats.snapshot(ms(0)), VideoStats::default());
        stats.frame_dropped();
        stats.frame_decoded(ms(10), 640, 360);
        stats.frame_decoded(ms(20), 1280, 720);
        stats.frame_dropped();
        let snap = stats.snapshot(ms(20));
        assert_eq!(snap.frames_dropped, 2);
        assert_eq!(snap.frames_decoded, 2);
        assert_eq!(snap.resolution, Some((1280, 720)));
        assert_eq!(snap.frames_per_second, 2);
    }

    #[test]
    fn time_going_backwards_does_not_panic_or_freeze() {
        let mut stats = ReceiveStats::new();
        feed(&mut stats, [1000, 1033, 1066, 1099, 1132, 1165, 500, 1198]);
        assert_eq!(stats.snapshot(ms(1198)).freeze_count, 0);
    }
}
