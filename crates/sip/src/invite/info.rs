//! DTMF in INFO requests, the legacy INFO usage that RFC 6086 §2 keeps alive.
//!
//! ```text
//!  INFO  Content-Type: application/dtmf-relay      INFO  Content-Type: application/dtmf
//!        Signal=5                                        5
//!        Duration=160
//! ```
//!
//! Such INFOs carry no Info-Package header. One that does names a package we never offered
//! in Recv-Info, so it gets 469 Bad Info Package (RFC 6086 §4.2.2); a legacy INFO with another
//! body type gets 415 with what we accept (RFC 3261 §21.4.13). An INFO without a body is
//! answered 200 and reported nowhere.

use std::time::Instant;

use super::Sessions;
use crate::endpoint::Endpoint;
use crate::error::SipError;
use crate::events::{CallId, UaEvent};
use crate::message::{Message, Method};
use crate::transaction::{Owner, SessionRequest};

const DTMF_RELAY: &str = "application/dtmf-relay";
const DTMF: &str = "application/dtmf";

fn dtmf_digit(text: &str) -> Option<char> {
    let text = text.trim();
    // Some phones send the event number of RFC 4733 §3.2 for `*` and `#`.
    match text {
        "10" => return Some('*'),
        "11" => return Some('#'),
        _ => {}
    }
    let mut chars = text.chars();
    let c = chars.next()?.to_ascii_uppercase();
    (chars.next().is_none() && matches!(c, '0'..='9' | '*' | '#' | 'A'..='D')).then_some(c)
}

/// `Signal=5\r\nDuration=160` → ('5', Some(160)).
fn parse_dtmf_relay(body: &str) -> Option<(char, Option<u32>)> {
    let mut digit = None;
    let mut duration = None;
    for line in body.lines() {
        let Some((name, value)) = line.split_once('=') else {
            continue;
        };
        match name.trim().to_ascii_lowercase().as_str() {
            "signal" => digit = dtmf_digit(value),
            "duration" => duration = value.trim().parse().ok(),
            _ => {}
        }
    }
    Some((digit?, duration))
}

impl Sessions {
    pub(super) fn on_info(&mut self, ep: &mut Endpoint, now: Instant, id: u64, req: &Message) {
        if req.header("Info-Package").is_some() {
            ep.reply(now, req, 469, &[("Recv-Info", String::new())]);
            return;
        }
        if req.body.is_empty() {
            ep.reply(now, req, 200, &[]);
            return;
        }
        let body = String::from_utf8_lossy(&req.body);
        let parsed = match req.content_type().as_deref() {
            Some(DTMF_RELAY) => parse_dtmf_relay(&body),
            Some(DTMF) => dtmf_digit(&body).map(|d| (d, None)),
            _ => {
                let accept = format!("{DTMF_RELAY}, {DTMF}");
                ep.reply(now, req, 415, &[("Accept", accept)]);
                return;
            }
        };
        let Some((digit, duration_ms)) = parsed else {
            ep.reply(now, req, 400, &[]);
            return;
        };
        ep.reply(now, req, 200, &[]);
        ep.emit(UaEvent::DtmfReceived {
            call: CallId(id),
            digit,
            duration_ms,
        });
    }

    /// Sends one DTMF digit as INFO with `application/dtmf-relay`.
    pub(crate) fn send_dtmf_info(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        call: CallId,
        digit: char,
        duration_ms: u32,
    ) -> Result<(), SipError> {
        let Some(digit) = dtmf_digit(&digit.to_string()) else {
            return Err(SipError::InvalidConfig(format!(
                "{digit:?} is not a DTMF digit"
            )));
        };
        let s = self.get_mut(call)?;
        if !s.is_confirmed() {
            return Err(super::invalid(s, "send DTMF before the call is set up"));
        }
        let mut req = s.next_request(ep, Method::Info);
        req.push_header("Content-Type", DTMF_RELAY);
        req.body = format!("Signal={digit}\r\nDuration={duration_ms}\r\n").into_bytes();
        ep.start_client_txn(now, req, Owner::Session(call.0, SessionRequest::Info));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtmf_bodies() {
        assert_eq!(
            parse_dtmf_relay("Signal=5\r\nDuration=160\r\n"),
            Some(('5', Some(160)))
        );
        assert_eq!(parse_dtmf_relay("Signal= #\r\n"), Some(('#', None)));
        assert_eq!(parse_dtmf_relay("Signal=10"), Some(('*', None)));
        assert_eq!(parse_dtmf_relay("Duration=160"), None);
        assert_eq!(dtmf_digit("d"), Some('D'));
        assert_eq!(dtmf_digit("E"), None);
        assert_eq!(dtmf_digit("55"), None);
    }
}
