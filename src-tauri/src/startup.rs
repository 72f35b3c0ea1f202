//! How long ago the process started, for the "first useful paint" figure the benchmark reads.
//!
//! On Linux the kernel's own record of the start (`/proc/self/stat` field 22, in clock ticks
//! since boot) counts the dynamic loading of WebKit and GTK before `main`; elsewhere the clock
//! starts at `main`.

use std::time::{Duration, Instant};

/// The kernel reports process times in USER_HZ ticks, which Linux fixes at 100 for userspace
/// on every architecture (see proc(5), "(22) starttime").
const USER_HZ: f64 = 100.0;

#[derive(Debug, Clone, Copy)]
pub struct StartClock {
    at_main: Instant,
    /// How old the process already was when `main` ran, if the OS says.
    before_main: Option<Duration>,
}

impl StartClock {
    /// Call first thing in `main`.
    pub fn now() -> Self {
        let at_main = Instant::now();
        let before_main = read_proc_age();
        Self {
            at_main,
            before_main,
        }
    }

    /// Time since the process started.
    pub fn elapsed(&self) -> Duration {
        self.at_main.elapsed() + self.before_main.unwrap_or_default()
    }
}

fn read_proc_age() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let uptime = std::fs::read_to_string("/proc/uptime").ok()?;
    process_age(&stat, &uptime)
}

/// The age of a process from its `/proc/<pid>/stat` line and `/proc/uptime`.
pub fn process_age(stat: &str, uptime: &str) -> Option<Duration> {
    // The command name (field 2) is in parentheses and may hold spaces or ')' itself, so count
    // fields from the last ')'. After it comes field 3 (state); starttime is field 22.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let start_ticks: f64 = after_name.split_whitespace().nth(22 - 3)?.parse().ok()?;
    let up: f64 = uptime.split_whitespace().next()?.parse().ok()?;
    let age = up - start_ticks / USER_HZ;
    (age.is_finite() && age >= 0.0).then(|| Duration::from_secs_f64(age))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_starttime_after_a_name_with_spaces_and_parens() {
        // Field 22 (starttime) = 12345 ticks = 123.45 s after boot.
        let stat = "4242 (we (b) ird) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 9 0 12345 1000 50 18446744073709551615";
        let age = process_age(stat, "124.00 300.00\n").unwrap();
        assert_eq!(age.as_millis(), 550);
        assert!(
            process_age(stat, "100.00 1.0").is_none(),
            "started in the future"
        );
        assert!(process_age("garbage", "1 1").is_none());
    }

    #[test]
    fn this_process_is_young_but_not_newborn() {
        let clock = StartClock::now();
        let elapsed = clock.elapsed();
        assert!(elapsed < Duration::from_secs(3600), "{elapsed:?}");
        if cfg!(target_os = "linux") {
            assert!(clock.before_main.is_some());
        }
    }
}
