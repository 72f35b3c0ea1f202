//! Stream management (XEP-0198): counting stanzas both ways (§4), acknowledgement requests
//! and answers, resending what the server did not get after `<resumed/>` (§5), and falling back
//! to a new session when resumption is refused.
//!
//! State owned here: [`SmState`] (the counters, the resumption id and the queue of stanzas
//! not yet acknowledged). Every stanza sent once the stream is online goes through
//! [`Client::transmit_stanza`], which is where it is counted and kept.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use tracing::debug;
use xmpp_parsers::minidom::Element;

use super::stream::Phase;
use super::{Client, ns};
use crate::event::*;
use crate::xml::Xml;

/// XEP-0198 `<r/>` is sent after this many unacknowledged stanzas, or after
/// [`ACK_REQUEST_DELAY`] when fewer were sent.
const ACK_REQUEST_BATCH: u64 = 5;
const ACK_REQUEST_DELAY: Duration = Duration::from_millis(250);

/// One outgoing stanza the server has not acknowledged yet (XEP-0198 §4).
#[derive(Debug, Clone)]
pub(super) struct Unacked {
    /// Sequence number (1-based count of stanzas sent since `<enable/>`).
    pub(super) seq: u64,
    pub(super) xml: String,
    /// For messages: (id, bare recipient), reported as sent once acked.
    pub(super) message: Option<(String, String)>,
}

#[derive(Debug, Default)]
pub(super) struct SmState {
    /// `<enable/>` sent on this stream: outbound stanzas are being counted.
    pub(super) counting_out: bool,
    /// `<enabled/>` received: inbound stanzas are being counted.
    pub(super) counting_in: bool,
    /// Resumption id from `<enabled id='...' resume='true'/>`.
    pub(super) resume_id: Option<String>,
    /// Stanzas received (the `h` we report).
    pub(super) inbound: u64,
    /// Stanzas sent since `<enable/>`.
    pub(super) outbound: u64,
    /// Highest `seq` for which an `<r/>` was already sent.
    pub(super) requested_up_to: u64,
    /// When an `<r/>` for the stanzas sent since the last one is due.
    pub(super) ack_due: Option<Instant>,
    pub(super) unacked: VecDeque<Unacked>,
}

impl Client {
    pub(super) fn transmit_stanza(&mut self, xml: String, message: Option<(String, String)>) {
        if self.sm.counting_out {
            self.sm.outbound += 1;
            self.sm.unacked.push_back(Unacked {
                seq: self.sm.outbound,
                xml: xml.clone(),
                message,
            });
        } else if let Some((id, to)) = message {
            // Without XEP-0198, handing it to TCP is all the assurance there is.
            self.events.push_back(XmppEvent::MessageSent { id, to });
        }
        self.transmit.push_back(xml);
    }

    /// XEP-0198 §4: one `<r/>` after each burst of stanzas, not after every stanza.
    ///
    /// Asking after every stanza doubles the small writes on the link, and with Nagle's
    /// algorithm on the server's socket each extra small segment can hold the next stanza back
    /// for a delayed ACK (~40 ms). So the request waits for a few stanzas or a short delay.
    pub(super) fn request_ack_if_needed(&mut self) {
        let waiting = self.sm.outbound.saturating_sub(self.sm.requested_up_to);
        if !(self.is_online() && self.sm.counting_in && waiting > 0 && !self.sm.unacked.is_empty())
        {
            return;
        }
        if waiting >= ACK_REQUEST_BATCH {
            self.send_ack_request();
        } else if self.sm.ack_due.is_none() {
            self.sm.ack_due = self.last_now.map(|now| now + ACK_REQUEST_DELAY);
        }
    }

    /// The delayed `<r/>` of [`Client::request_ack_if_needed`], once its time has come.
    pub(super) fn on_ack_timer(&mut self, now: Instant) {
        if self.sm.ack_due.is_some_and(|d| now >= d) {
            self.sm.ack_due = None;
            if self.is_online() && self.sm.outbound > self.sm.requested_up_to {
                self.send_ack_request();
            }
        }
    }

    fn send_ack_request(&mut self) {
        self.sm.ack_due = None;
        self.sm.requested_up_to = self.sm.outbound;
        self.transmit.push_back(Xml::ns("r", ns::SM).build());
    }

    pub(super) fn on_sm(&mut self, now: Instant, el: Element) {
        match el.name() {
            "enabled" => {
                self.sm.counting_in = true;
                self.sm.inbound = 0;
                if matches!(el.attr("resume"), Some("true" | "1")) {
                    self.sm.resume_id = el.attr("id").map(str::to_owned);
                }
                debug!(
                    resumable = self.sm.resume_id.is_some(),
                    "stream management on"
                );
            }
            "r" => {
                if self.sm.counting_in {
                    self.send_raw(
                        Xml::ns("a", ns::SM)
                            .attr("h", &self.sm.inbound.to_string())
                            .build(),
                    );
                }
            }
            "a" => match el.attr("h").and_then(|h| h.parse::<u64>().ok()) {
                Some(h) => self.acknowledge(h),
                None => self.warn("stream management <a/> without a valid h".into()),
            },
            "resumed" => {
                if !matches!(self.phase, Phase::Resuming) {
                    self.warn("unexpected <resumed/> ignored".into());
                    return;
                }
                if let Some(h) = el.attr("h").and_then(|h| h.parse::<u64>().ok()) {
                    self.acknowledge(h);
                }
                self.negotiation_deadline = None;
                self.phase = Phase::Online;
                self.sm.counting_in = true;
                self.sm.counting_out = true;
                // XEP-0198 §5: resend what the server did not get, in order, then the rest.
                let resend: Vec<String> = self.sm.unacked.iter().map(|u| u.xml.clone()).collect();
                self.sm.requested_up_to = 0;
                self.transmit.extend(resend);
                let jid = self.bound_jid.clone().unwrap_or_else(|| self.bare_jid());
                self.events
                    .push_back(XmppEvent::Online { jid, resumed: true });
                let rooms: Vec<String> = self.rooms.keys().cloned().collect();
                for room in rooms {
                    if let Some(r) = self.rooms.get_mut(&room) {
                        r.joined = true;
                    }
                }
                self.flush_pending();
            }
            "failed" => {
                if matches!(self.phase, Phase::Resuming) {
                    debug!("resumption refused; binding a new session");
                    // Keep the unacked stanzas: on_bound resends the messages among them.
                    let unacked = std::mem::take(&mut self.sm.unacked);
                    self.sm = SmState {
                        unacked,
                        ..SmState::default()
                    };
                    self.bind(now);
                } else {
                    self.warn("stream management could not be enabled".into());
                    self.sm.counting_out = false;
                    // What was counted is simply sent; no resumption without SM.
                    let acked: Vec<Unacked> = self.sm.unacked.drain(..).collect();
                    for u in acked {
                        if let Some((id, to)) = u.message {
                            self.events.push_back(XmppEvent::MessageSent { id, to });
                        }
                    }
                }
            }
            other => {
                let other = other.to_owned();
                self.warn(format!("ignored stream management <{other}/>"));
            }
        }
    }

    fn acknowledge(&mut self, h: u64) {
        if h > self.sm.outbound {
            self.warn(format!(
                "server acknowledged {h} stanzas but only {} were sent",
                self.sm.outbound
            ));
        }
        while let Some(front) = self.sm.unacked.front() {
            if front.seq > h {
                break;
            }
            if let Some(u) = self.sm.unacked.pop_front()
                && let Some((id, to)) = u.message
            {
                self.events.push_back(XmppEvent::MessageSent { id, to });
            }
        }
    }
}
