//! Fuzz harnesses for Lyrebird: one function per target, for every parser that reads what a
//! peer or server sent, and for each protocol core driven by arbitrary operations.
//!
//! The same functions serve two callers, so a target is defined in one place:
//!
//! - `crates/fuzz/libfuzzer/` (outside the workspace): one libFuzzer entry point per target,
//!   built with coverage instrumentation by `./task fuzz`;
//! - `tests/corpus_replay.rs`: every seed and every crash reproducer in `corpus/<target>/` and
//!   `crashes/<target>/` through its harness, in the normal test run.
//!
//! A harness panics only when it finds a bug: a panic in a core, a broken round trip that the
//! core promises, memory that grows beyond [`memory_bound`], or a timer that stays due after
//! it was handled (an engine would spin on it).

pub mod digest;
#[allow(unsafe_code)]
pub mod heap;
pub mod jingle;
pub mod msrp;
pub mod sdp;
pub mod sip;
pub mod xmpp;

use std::time::{Duration, Instant};

/// One fuzz target: its name (the directory under `corpus/` and `crashes/`, and the libFuzzer
/// binary), its harness and the longest input worth trying.
#[derive(Clone, Copy)]
pub struct Target {
    /// Directory and binary name.
    pub name: &'static str,
    /// The harness.
    pub run: fn(&[u8]),
    /// libFuzzer's `-max_len` for it: room for the largest realistic message, not more.
    pub max_len: usize,
}

/// Every target, in the order `./task fuzz` runs them.
pub const TARGETS: &[Target] = &[
    Target {
        name: "sip_message",
        run: sip::message,
        max_len: 4096,
    },
    Target {
        name: "sdp_description",
        run: sdp::description,
        max_len: 4096,
    },
    Target {
        name: "sdp_msrp",
        run: sdp::msrp_media,
        max_len: 2048,
    },
    Target {
        name: "msrp_message",
        run: msrp::message,
        max_len: 4096,
    },
    Target {
        name: "cpim",
        run: msrp::cpim,
        max_len: 2048,
    },
    Target {
        name: "xmpp_stanza",
        run: xmpp::stanza,
        max_len: 4096,
    },
    Target {
        name: "digest_challenge",
        run: digest::challenge,
        max_len: 1024,
    },
    Target {
        name: "sip_user_agent",
        run: sip::user_agent,
        max_len: 8192,
    },
    Target {
        name: "xmpp_client",
        run: xmpp::client,
        max_len: 8192,
    },
    Target {
        name: "msrp_session",
        run: msrp::session,
        max_len: 8192,
    },
    Target {
        name: "jingle_element",
        run: jingle::element,
        max_len: 8192,
    },
];

/// The most heap a core may hold, its output queues included, after any operation of a
/// structure-aware run over `input_len` bytes: a fixed allowance for its tables plus a
/// constant factor of what it was fed. A core that keeps everything it is sent stays well
/// inside; one that copies without bound, or grows on its own when time passes, does not.
pub fn memory_bound(input_len: usize) -> usize {
    256 * 1024 + 64 * input_len
}

/// The operations a structure-aware run decodes from its input: as many as the bytes make,
/// at most 256 (enough for every state a core has, short enough to keep runs fast).
pub fn operations<'a, Op: arbitrary::Arbitrary<'a>>(data: &'a [u8]) -> Vec<Op> {
    let mut input = arbitrary::Unstructured::new(data);
    let mut ops = Vec::new();
    while !input.is_empty() && ops.len() < 256 {
        match Op::arbitrary(&mut input) {
            Ok(op) => ops.push(op),
            Err(_) => break,
        }
    }
    ops
}

/// Virtual time for the structure-aware targets: a start and advances chosen by the input.
#[derive(Debug)]
pub(crate) struct Clock {
    now: Instant,
}

impl Clock {
    pub(crate) fn new() -> Self {
        Self {
            now: Instant::now(),
        }
    }

    pub(crate) fn now(&self) -> Instant {
        self.now
    }

    /// Moves time on by up to about 4.6 hours (u24 milliseconds), enough to pass every
    /// registration refresh and transaction timeout.
    pub(crate) fn advance(&mut self, millis: u32) {
        self.now += Duration::from_millis(u64::from(millis & 0x00ff_ffff));
    }

    /// Moves time to `deadline` if it is later.
    pub(crate) fn advance_to(&mut self, deadline: Instant) {
        self.now = self.now.max(deadline);
    }
}

/// Handles a core's due timers the way an engine does, and checks the deadline moves on: a
/// deadline still due after a few rounds would make the engine's loop spin.
pub(crate) fn settle_timers<Core>(
    now: Instant,
    core: &mut Core,
    poll_timeout: impl Fn(&Core) -> Option<Instant>,
    mut handle_timeout: impl FnMut(&mut Core, Instant),
) {
    for _ in 0..4 {
        match poll_timeout(core) {
            Some(deadline) if deadline <= now => handle_timeout(core, now),
            _ => return,
        }
    }
    if let Some(deadline) = poll_timeout(core) {
        assert!(deadline > now, "a deadline stays due after it was handled");
    }
}

/// Panics when the heap held by this thread since `baseline` exceeds [`memory_bound`].
pub(crate) fn check_memory(baseline: isize, input_len: usize, what: &str) {
    let held = heap::live_bytes() - baseline;
    let bound = memory_bound(input_len);
    assert!(
        held <= bound as isize,
        "{what}: {held} bytes held after an operation, bound {bound}"
    );
}
