//! Reconnect delays: exponential with jitter, so a restarted server is not hit by every client
//! at the same instant (RFC 5626 §4.5 asks the same of flow recovery), yet recovers in well
//! under a second when the server is back quickly.

use std::time::Duration;

use rand::Rng;

#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(first: Duration, max: Duration) -> Self {
        Self {
            first,
            max,
            attempt: 0,
        }
    }

    /// The delay before the next attempt, and the attempt's number (1-based).
    pub fn next_delay(&mut self) -> (Duration, u32) {
        let exponent = self.attempt.min(16);
        self.attempt = self.attempt.saturating_add(1);
        let base = self.first.saturating_mul(1u32 << exponent).min(self.max);
        // Jitter of ±25 % keeps clients from reconnecting in lockstep.
        let factor = rand::rng().random_range(0.75..1.25);
        (base.mul_f64(factor).min(self.max), self.attempt)
    }

    /// A working connection resets the schedule.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_then_caps_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(200), Duration::from_secs(30));
        let (d1, n1) = b.next_delay();
        assert_eq!(n1, 1);
        assert!(d1 >= Duration::from_millis(150) && d1 <= Duration::from_millis(250));
        for _ in 0..20 {
            let (d, _) = b.next_delay();
            assert!(d <= Duration::from_secs(30));
        }
        let (late, _) = b.next_delay();
        assert!(late >= Duration::from_millis(22_500));
        b.reset();
        let (again, n) = b.next_delay();
        assert_eq!(n, 1);
        assert!(again <= Duration::from_millis(250));
    }
}
