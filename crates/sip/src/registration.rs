//! Registration state (RFC 3261 §10.2, RFC 5626 §4.2).
//!
//! One binding per UA: Contact with `+sip.instance` and `reg-id=1`. The granted lifetime is the
//! `expires` parameter of our Contact in the 2xx, else the Expires header (§10.2.4). A refresh
//! is scheduled at the lesser of `expires - 5 s` and 90 % of `expires` (never earlier than half
//! of it, so a tiny grant does not cause a refresh storm). 423 is retried once with
//! Min-Expires (§10.2.8). Failures are reported and never retried automatically; the engine
//! decides (RFC 5626 §4.5 back-off belongs to whoever owns the clock and the connection).

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RegState {
    Idle,
    Registering,
    Registered,
    Unregistering,
    Failed,
}

#[derive(Debug, Clone)]
pub(crate) struct Registration {
    /// The application wants to be registered (survives flow loss: RFC 5626 flow recovery).
    pub wanted: bool,
    pub state: RegState,
    pub call_id: String,
    pub from_tag: String,
    pub cseq: u32,
    /// Expires asked for in the current/next REGISTER.
    pub requested_expires: u32,
    pub auth_retries: u8,
    pub retried_423: bool,
    pub keepalive: Option<Duration>,
    pub outbound: bool,
}

impl Registration {
    pub(crate) fn new(call_id: String, from_tag: String, expires: u32) -> Self {
        Registration {
            wanted: false,
            state: RegState::Idle,
            call_id,
            from_tag,
            cseq: 0,
            requested_expires: expires,
            auth_retries: 0,
            retried_423: false,
            keepalive: None,
            outbound: false,
        }
    }
}

/// When to refresh a binding granted for `expires`.
pub fn refresh_delay(expires: Duration) -> Duration {
    let early = expires.saturating_sub(Duration::from_secs(5));
    let ninety = expires.mul_f64(0.9);
    early.min(ninety).max(expires / 2)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn refresh_schedule() {
        assert_eq!(
            refresh_delay(Duration::from_secs(600)),
            Duration::from_secs(540)
        );
        assert_eq!(
            refresh_delay(Duration::from_secs(30)),
            Duration::from_secs(25)
        );
        assert_eq!(
            refresh_delay(Duration::from_secs(4)),
            Duration::from_secs(2)
        );
    }
}
