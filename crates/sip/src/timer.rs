//! Timer values (RFC 3261 §17, Table 4; RFC 6026 §8.4) and a small fixed-slot timer table.
//!
//! Over a reliable transport such as WebSocket (RFC 7118) Timers A, E and G are not armed
//! (§17.1.1.2, §17.1.2.2, §17.2.1) and D, I, J, K are zero (§17.1.1.2, §17.2.1, §17.2.2,
//! §17.1.2.2), so the states they guard are left immediately. B, F, H, L, M stay 64*T1.

use std::marker::PhantomData;
use std::time::{Duration, Instant};

/// T1, the RTT estimate (§17.1.1.1).
pub const T1: Duration = Duration::from_millis(500);
/// T2, the cap on non-INVITE and 2xx retransmission intervals.
pub const T2: Duration = Duration::from_secs(4);
/// 64*T1: Timers B, F, H, L, M and the UAS wait for ACK (§13.3.1.4).
pub const TIMEOUT_64T1: Duration = Duration::from_secs(32);
/// How long an incoming MESSAGE waits for the engine's answer before the core answers 500:
/// half of the sender's Timer F, so the 500 reaches it while it still listens.
pub const MESSAGE_ANSWER_WAIT: Duration = Duration::from_secs(16);

/// A kind of timer: each variant owns one slot of a [`TimerTable`].
pub(crate) trait TimerKind: Copy {
    /// The variant's slot, below the table's size.
    fn slot(self) -> usize;
}

/// One slot per timer kind, set or cleared as a whole, in the manner of quinn-proto's
/// `TimerTable`: `K` is an enum of the kinds and `N` how many there are.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TimerTable<K, const N: usize> {
    slots: [Option<Instant>; N],
    kind: PhantomData<K>,
}

impl<K: TimerKind, const N: usize> TimerTable<K, N> {
    pub(crate) fn new() -> Self {
        TimerTable {
            slots: [None; N],
            kind: PhantomData,
        }
    }
    pub(crate) fn set(&mut self, kind: K, at: Instant) {
        if let Some(slot) = self.slots.get_mut(kind.slot()) {
            *slot = Some(at);
        }
    }
    pub(crate) fn stop(&mut self, kind: K) {
        if let Some(slot) = self.slots.get_mut(kind.slot()) {
            *slot = None;
        }
    }
    pub(crate) fn stop_all(&mut self) {
        self.slots = [None; N];
    }
    /// True (and the slot cleared) if `kind` was set and is due at `now`.
    pub(crate) fn take_expired(&mut self, kind: K, now: Instant) -> bool {
        match self.slots.get(kind.slot()).copied().flatten() {
            Some(at) if at <= now => {
                self.stop(kind);
                true
            }
            _ => false,
        }
    }
    pub(crate) fn next(&self) -> Option<Instant> {
        self.slots.iter().flatten().min().copied()
    }
}
