//! Registration (RFC 3261 §10.2, RFC 5626 §4.2 and §4.4).
//!
//! ```text
//!            register()                       2xx
//!   Idle ───────────────▶ Registering ───────────────▶ Registered ──┐ refresh timer
//!    ▲                     │  ▲   │ 401/407: retry with credentials │ (90 % of expires)
//!    │        error/timeout│  │   │ 423: retry once with Min-Expires│
//!    │                     ▼  └───┘                                 ▼
//!    │                   Failed                                Registering ...
//!    │  2xx/error/timeout
//!    └──────────── Unregistering ◀──── unregister()  (Expires: 0)
//! ```
//!
//! One binding per UA: Contact with `+sip.instance` and `reg-id=1`. The granted lifetime is the
//! `expires` parameter of our Contact in the 2xx, else the Expires header (§10.2.4). A refresh
//! is scheduled at the lesser of `expires - 5 s` and 90 % of `expires` (never earlier than half
//! of it, so a tiny grant does not cause a refresh storm). 423 is retried once with
//! Min-Expires (§10.2.8). Failures are reported and never retried automatically; the engine
//! decides (RFC 5626 §4.5 back-off belongs to whoever owns the clock and the connection).
//! A new flow needs a new REGISTER (RFC 5626 §4.4.1 flow recovery), so a wanted registration
//! survives the loss of its flow.

use std::time::{Duration, Instant};

use tracing::debug;

use crate::endpoint::{ALLOW, Endpoint};
use crate::events::UaEvent;
use crate::message::{Message, Method, Uri};
use crate::timer::{TimerKind, TimerTable};
use crate::transaction::Owner;

/// One REGISTER exchange, retries included.
#[derive(Debug, Clone, Copy)]
struct Attempt {
    /// Expires asked for in the REGISTER in flight.
    requested_expires: u32,
    auth_retries: u8,
    retried_423: bool,
}

impl Attempt {
    fn new(requested_expires: u32) -> Attempt {
        Attempt {
            requested_expires,
            auth_retries: 0,
            retried_423: false,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum RegState {
    Idle,
    Registering(Attempt),
    Registered,
    Unregistering(Attempt),
    Failed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RegTimer {
    /// Re-REGISTER before the binding expires.
    Refresh,
}

impl TimerKind for RegTimer {
    fn slot(self) -> usize {
        self as usize
    }
}

/// The account's binding at its registrar.
#[derive(Debug, Clone)]
pub(crate) struct Registration {
    /// The application wants to be registered (survives flow loss: RFC 5626 flow recovery).
    wanted: bool,
    state: RegState,
    call_id: String,
    from_tag: String,
    cseq: u32,
    /// RFC 5626 §4.4.1 keepalive interval from the registrar's Flow-Timer.
    keepalive: Option<Duration>,
    /// The registrar holds a binding of ours on this flow: a REGISTER was accepted and neither
    /// an un-REGISTER nor the flow's end has removed it since. Only then is there anything for
    /// an un-REGISTER to remove (a refused password never bound anything).
    bound: bool,
    timers: TimerTable<RegTimer, 1>,
}

impl Registration {
    pub(crate) fn new(call_id: String, from_tag: String) -> Self {
        Registration {
            wanted: false,
            state: RegState::Idle,
            call_id,
            from_tag,
            cseq: 0,
            keepalive: None,
            bound: false,
            timers: TimerTable::new(),
        }
    }

    pub(crate) fn keepalive(&self) -> Option<Duration> {
        self.keepalive
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// The application asks to be registered; sends REGISTER if the flow is up.
    pub(crate) fn register(&mut self, ep: &mut Endpoint, now: Instant) {
        self.wanted = true;
        if ep.connected && !matches!(self.state, RegState::Registering(_)) {
            self.send(ep, now, ep.cfg.register_expires);
        }
    }

    /// Removes the binding (Expires: 0), or forgets it when the flow is down or there is none
    /// (a REGISTER still in flight may yet bind, so it is followed by an un-REGISTER).
    pub(crate) fn unregister(&mut self, ep: &mut Endpoint, now: Instant) {
        self.wanted = false;
        self.timers.stop_all();
        let in_flight = matches!(self.state, RegState::Registering(_));
        if !ep.connected || !(self.bound || in_flight) {
            ep.forget_clients(|o| *o == Owner::Register);
            if !matches!(self.state, RegState::Idle) {
                self.state = RegState::Idle;
                ep.emit(UaEvent::Unregistered);
            }
            return;
        }
        ep.forget_clients(|o| *o == Owner::Register);
        self.send(ep, now, 0);
    }

    /// A new flow: register again if wanted (RFC 5626 §4.4.1).
    pub(crate) fn on_connected(&mut self, ep: &mut Endpoint, now: Instant) {
        if self.wanted && !matches!(self.state, RegState::Registering(_)) {
            self.send(ep, now, ep.cfg.register_expires);
        }
    }

    /// The flow died and the binding with it.
    pub(crate) fn on_disconnected(&mut self, ep: &mut Endpoint) {
        self.timers.stop_all();
        self.keepalive = None;
        self.bound = false;
        match self.state {
            RegState::Registered | RegState::Registering(_) => {
                self.state = RegState::Idle;
                ep.emit(UaEvent::RegistrationFailed {
                    status: 0,
                    reason: "flow closed".into(),
                });
            }
            RegState::Unregistering(_) => {
                self.state = RegState::Idle;
                ep.emit(UaEvent::Unregistered);
            }
            RegState::Idle | RegState::Failed => {}
        }
    }

    pub(crate) fn on_timeout(&mut self, ep: &mut Endpoint, now: Instant) {
        if self.timers.take_expired(RegTimer::Refresh, now) && self.wanted && ep.connected {
            debug!("refreshing registration");
            self.send(ep, now, ep.cfg.register_expires);
        }
    }

    /// Timer F fired for our REGISTER.
    pub(crate) fn on_transaction_timeout(&mut self, ep: &mut Endpoint) {
        let was_unregister = matches!(self.state, RegState::Unregistering(_));
        self.state = RegState::Failed;
        if was_unregister {
            ep.emit(UaEvent::Unregistered);
        } else {
            ep.emit(UaEvent::RegistrationFailed {
                status: 0,
                reason: "timeout".into(),
            });
        }
    }

    pub(crate) fn on_response(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        request: &Message,
        resp: &Message,
    ) {
        let status = resp.status().unwrap_or(0);
        if status < 200 {
            return;
        }
        let (mut attempt, unregistering) = match self.state {
            RegState::Registering(a) => (a, false),
            RegState::Unregistering(a) => (a, true),
            // A late answer to a REGISTER we no longer wait for.
            _ => return,
        };
        match status {
            200..=299 if unregistering => {
                self.state = RegState::Idle;
                self.keepalive = None;
                self.bound = false;
                ep.emit(UaEvent::Unregistered);
            }
            200..=299 => {
                let granted = granted_expires(ep, resp, attempt.requested_expires);
                self.state = RegState::Registered;
                self.bound = granted > 0;
                let outbound = resp.has_option("Require", "outbound");
                self.keepalive = resp
                    .header("Flow-Timer")
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .filter(|s| *s > 0)
                    .map(Duration::from_secs);
                let expires = Duration::from_secs(u64::from(granted));
                if granted > 0 {
                    self.timers
                        .set(RegTimer::Refresh, now + refresh_delay(expires));
                }
                debug!(expires = granted, "registered");
                ep.emit(UaEvent::Registered { expires, outbound });
            }
            401 | 407 => match ep.authorized_retry(request, resp, attempt.auth_retries) {
                Some(retry) => {
                    attempt.auth_retries += 1;
                    self.cseq += 1;
                    self.set_attempt(attempt, unregistering);
                    ep.start_client_txn(now, retry, Owner::Register);
                }
                None => self.failed(ep, status, resp.reason(), unregistering),
            },
            423 if !attempt.retried_423 && !unregistering => {
                let min = resp
                    .header("Min-Expires")
                    .and_then(|v| v.trim().parse::<u32>().ok());
                match min {
                    Some(min) if min > attempt.requested_expires => {
                        attempt.retried_423 = true;
                        attempt.requested_expires = min;
                        self.cseq += 1;
                        // Keep credentials: the retry re-uses the last Authorization.
                        let mut retry = self.build(ep, min);
                        for h in ["Authorization", "Proxy-Authorization"] {
                            if let Some(v) = request.header(h) {
                                retry.push_header(h, v);
                            }
                        }
                        self.set_attempt(attempt, false);
                        ep.start_client_txn(now, retry, Owner::Register);
                    }
                    _ => self.failed(ep, status, resp.reason(), false),
                }
            }
            _ => self.failed(ep, status, resp.reason(), unregistering),
        }
    }

    fn set_attempt(&mut self, attempt: Attempt, unregistering: bool) {
        self.state = if unregistering {
            RegState::Unregistering(attempt)
        } else {
            RegState::Registering(attempt)
        };
    }

    fn failed(&mut self, ep: &mut Endpoint, status: u16, reason: &str, unregistering: bool) {
        self.timers.stop_all();
        if unregistering {
            self.state = RegState::Idle;
            ep.emit(UaEvent::Unregistered);
            return;
        }
        self.state = RegState::Failed;
        debug!(status, "registration failed");
        ep.emit(UaEvent::RegistrationFailed {
            status,
            reason: reason.to_owned(),
        });
    }

    fn send(&mut self, ep: &mut Endpoint, now: Instant, expires: u32) {
        ep.forget_clients(|o| *o == Owner::Register);
        self.cseq += 1;
        self.set_attempt(Attempt::new(expires), expires == 0);
        let req = self.build(ep, expires);
        ep.start_client_txn(now, req, Owner::Register);
    }

    fn build(&self, ep: &Endpoint, expires: u32) -> Message {
        let registrar = Uri {
            scheme: ep.aor.scheme.clone(),
            user: None,
            password: None,
            host: ep.aor.host.clone(),
            port: ep.aor.port,
            params: Vec::new(),
            headers: None,
            opaque: None,
        };
        let aor = format!("<{}>", ep.aor);
        let from = format!("{};tag={}", ep.local_name_addr(), self.from_tag);
        let mut req = ep.out_of_dialog_request(
            Method::Register,
            registrar,
            &aor,
            &from,
            &self.call_id,
            self.cseq,
        );
        req.push_header(
            "Contact",
            format!(
                "<{}>;+sip.instance=\"<urn:uuid:{}>\";reg-id=1;expires={expires}",
                ep.contact_uri(),
                ep.cfg.instance_id
            ),
        );
        req.push_header("Expires", expires.to_string());
        req.push_header("Allow", ALLOW);
        req
    }
}

/// §10.2.4: our Contact's expires param, else the Expires header, else what we asked.
fn granted_expires(ep: &Endpoint, resp: &Message, requested: u32) -> u32 {
    let instance = format!("\"<urn:uuid:{}>\"", ep.cfg.instance_id);
    let ours = resp.contacts().ok().and_then(|cs| {
        cs.into_iter().find(|c| {
            c.param("+sip.instance")
                .and_then(|p| p.value.as_deref())
                .is_some_and(|v| v.eq_ignore_ascii_case(&instance))
                || c.uri.host.eq_ignore_ascii_case(ep.local_host())
        })
    });
    ours.and_then(|c| {
        c.param("expires")
            .and_then(|p| p.value.as_deref()?.parse().ok())
    })
    .or_else(|| resp.header("Expires").and_then(|v| v.trim().parse().ok()))
    .unwrap_or(requested)
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
