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
use xmpp_parsers::jid::Jid;
use xmpp_parsers::minidom::Element;

use super::stream::Phase;
use super::{Client, ns};
use crate::event::*;
use crate::xml::Xml;

/// XEP-0198 `<r/>` is sent after this many unacknowledged stanzas, or after
/// [`ACK_REQUEST_DELAY`] when fewer were sent.
const ACK_REQUEST_BATCH: u64 = 5;
const ACK_REQUEST_DELAY: Duration = Duration::from_millis(250);

/// How far a stream-management session has got: what the owner records, after what those
/// stanzas brought is kept, and hands back to [`Client::confirm_handled`]; with its
/// `resume_id` it lets a later run resume the session ([`Client::resume_after_restart`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMark {
    /// Which session of this client it counts (see [`Client::confirm_handled`]).
    pub session: u64,
    /// The XEP-0198 resumption id, when the server allows resumption.
    pub resume_id: Option<String>,
    /// Our full JID on that session.
    pub jid: String,
    /// Stanzas received on it so far.
    pub received: u64,
}

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
    /// Stanzas received on this session.
    pub(super) inbound: u64,
    /// Of `inbound`, how many the owner has confirmed handled (with
    /// [`ClientConfig::confirm_handled`]: kept in history). This is the `h` we report then.
    pub(super) confirmed: u64,
    /// An `<r/>` was answered with fewer than we had received: an `<a/>` goes out when the
    /// owner confirms more.
    pub(super) ack_owed: bool,
    /// The `h` of our last `<a/>`.
    pub(super) answered: u64,
    /// Counts the sessions `<enabled/>` started, so a late confirmation for an earlier session
    /// cannot count for this one.
    pub(super) session: u64,
    /// The session to resume was left by an earlier run of the owner, which this run knows
    /// nothing of ([`Client::resume_after_restart`]).
    pub(super) from_earlier_run: bool,
    /// Stanzas sent since `<enable/>`.
    pub(super) outbound: u64,
    /// Highest `seq` for which an `<r/>` was already sent.
    pub(super) requested_up_to: u64,
    /// When an `<r/>` for the stanzas sent since the last one is due.
    pub(super) ack_due: Option<Instant>,
    pub(super) unacked: VecDeque<Unacked>,
}

impl Client {
    /// The `h` we tell the server: what we received, or what the owner confirmed handled.
    pub(super) fn reported_handled(&self) -> u64 {
        if self.config.confirm_handled {
            self.sm.confirmed.min(self.sm.inbound)
        } else {
            self.sm.inbound
        }
    }

    /// Where the current stream-management session stands, while stanzas are counted.
    pub fn received_mark(&self) -> Option<ReceivedMark> {
        if !self.sm.counting_in {
            return None;
        }
        Some(ReceivedMark {
            session: self.sm.session,
            resume_id: self.sm.resume_id.clone(),
            jid: self.bound_jid.clone().unwrap_or_else(|| self.bare_jid()),
            received: self.sm.inbound,
        })
    }

    /// With [`ClientConfig::confirm_handled`]: everything received up to `mark` is handled
    /// (kept), so the server may forget it. An `<a/>` owed to the server goes out with the next
    /// [`Client::poll_transmit`].
    pub fn confirm_handled(&mut self, mark: &ReceivedMark) {
        if mark.session != self.sm.session {
            return;
        }
        let confirmed = mark.received.min(self.sm.inbound);
        if confirmed <= self.sm.confirmed {
            return;
        }
        self.sm.confirmed = confirmed;
    }

    /// The `<a/>` owed since an `<r/>` was answered short, once the owner confirmed more: one
    /// for however many confirmations came in meanwhile (see [`Client::poll_transmit`]).
    pub(super) fn answer_owed_ack(&mut self) {
        if self.sm.ack_owed
            && self.sm.counting_in
            && self.is_online()
            && self.reported_handled() > self.sm.answered
        {
            self.send_ack_answer();
        }
    }

    /// Asks the server to acknowledge what we sent (`<r/>`, when stream management is on):
    /// its answer shows the XMPP stream itself is alive, whatever carries it. Returns whether
    /// it was asked.
    pub fn probe_liveness(&mut self) -> bool {
        if !(self.is_online() && self.sm.counting_in && self.sm.counting_out) {
            return false;
        }
        self.send_ack_request();
        true
    }

    /// Before the first connection: resume the session an earlier run of the owner left
    /// (killed, crashed, the power cut), so what the server queued for it while it was gone
    /// arrives here rather than nowhere. `handled` is what that run had kept; `jid` the full
    /// JID it had. If the server no longer has the session, a new one is bound as usual.
    pub fn resume_after_restart(&mut self, resume_id: String, handled: u64, jid: String) {
        if !matches!(self.phase, Phase::Disconnected) {
            return;
        }
        self.sm.resume_id = Some(resume_id);
        self.sm.inbound = handled;
        self.sm.confirmed = handled;
        self.sm.from_earlier_run = true;
        if Jid::new(&jid).is_ok() {
            self.bound_jid = Some(jid);
        }
    }

    /// `<a h/>` with what we report handled.
    pub(super) fn send_ack_answer(&mut self) {
        let h = self.reported_handled();
        self.sm.ack_owed = h < self.sm.inbound;
        self.sm.answered = h;
        self.send_raw(Xml::ns("a", ns::SM).attr("h", &h.to_string()).build());
    }

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
                self.sm.confirmed = 0;
                self.sm.ack_owed = false;
                self.sm.answered = 0;
                self.sm.session += 1;
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
                    self.send_ack_answer();
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
                    if self.sm.from_earlier_run {
                        // What the earlier run sent is settled (or lost with it); the server
                        // counts on from what it got, and so do we.
                        self.sm.outbound = h;
                        self.sm.requested_up_to = h;
                    }
                    self.acknowledge(h);
                }
                self.negotiation_deadline = None;
                self.phase = Phase::Online;
                self.sm.counting_in = true;
                self.sm.counting_out = true;
                if std::mem::take(&mut self.sm.from_earlier_run) {
                    self.take_over_earlier_session(now);
                    return;
                }
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
                        session: self.sm.session,
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
