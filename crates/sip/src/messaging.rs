//! Instant messages: MESSAGE requests both ways (RFC 3428).
//!
//! ```text
//!  send_message ──MESSAGE──▶            ◀──MESSAGE── peer
//!     ◀── 401/407: once more with credentials      │ MessageReceived (not answered yet)
//!     ◀── 2xx: MessageDelivered                    │ owner stores it
//!     ◀── error / timeout: MessageFailed           ▼ answer_message → 200 (or its error)
//!                                                    no answer in MESSAGE_ANSWER_WAIT → 500
//! ```
//!
//! A 2xx tells the sender the message was delivered and it will not send it again (§7), so
//! an incoming MESSAGE is answered only once the owner says it is kept for good. Meanwhile its
//! server transaction stays open: a retransmission matches it and gets nothing, as in the
//! Trying state (RFC 3261 §17.2.2). A copy that arrives after the transaction ended carries the
//! same `stable_id` (Call-ID, CSeq number, From tag), so the owner can tell it apart.

use std::collections::BTreeMap;
use std::time::Instant;

use tracing::debug;

use crate::endpoint::{Endpoint, parse_target};
use crate::error::SipError;
use crate::events::{IncomingMessageId, MessageId, Party, UaEvent};
use crate::message::{Message, Method};
use crate::timer::{MESSAGE_ANSWER_WAIT, TimerKind, TimerTable};
use crate::transaction::Owner;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InMessageTimer {
    /// Answer 500 when the owner has not answered by then.
    AnswerBy,
}

impl TimerKind for InMessageTimer {
    fn slot(self) -> usize {
        self as usize
    }
}

/// An outgoing MESSAGE waiting for its final response.
#[derive(Debug, Clone)]
struct OutMessage {
    auth_retries: u8,
}

/// An incoming MESSAGE whose server transaction waits for `answer_message`.
#[derive(Debug, Clone)]
struct InMessage {
    /// The request without its body, to build the response from.
    request: Message,
    timers: TimerTable<InMessageTimer, 1>,
}

/// Every MESSAGE in flight, both ways.
#[derive(Debug, Default)]
pub(crate) struct Messaging {
    outgoing: BTreeMap<u64, OutMessage>,
    incoming: BTreeMap<u64, InMessage>,
}

impl Messaging {
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.incoming.values().filter_map(|m| m.timers.next()).min()
    }

    /// Sends a MESSAGE outside any dialog.
    pub(crate) fn send(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        target: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<MessageId, SipError> {
        if !ep.connected {
            return Err(SipError::NotConnected);
        }
        let target_uri = parse_target(target)?;
        if content_type.is_empty() || content_type.contains(['\r', '\n']) {
            return Err(SipError::InvalidConfig("bad content type".into()));
        }
        let id = ep.next_handle();
        let call_id = ep.token(22);
        let from = format!("{};tag={}", ep.local_name_addr(), ep.token(10));
        let mut req = ep.out_of_dialog_request(
            Method::Message,
            target_uri.clone(),
            &format!("<{target_uri}>"),
            &from,
            &call_id,
            1,
        );
        req.push_header("Content-Type", content_type);
        req.body = body;
        ep.start_client_txn(now, req, Owner::Message(id));
        self.outgoing.insert(id, OutMessage { auth_retries: 0 });
        Ok(MessageId(id))
    }

    /// Answers an incoming MESSAGE with a final status.
    pub(crate) fn answer(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        id: IncomingMessageId,
        status: u16,
    ) -> Result<(), SipError> {
        if !(200..=699).contains(&status) {
            return Err(SipError::InvalidStatus(status));
        }
        let pending = self
            .incoming
            .remove(&id.0)
            .ok_or(SipError::UnknownMessage)?;
        ep.reply(now, &pending.request, status, &[]);
        Ok(())
    }

    /// A new MESSAGE, in a dialog or not: reported, answered later.
    pub(crate) fn on_request(&mut self, ep: &mut Endpoint, now: Instant, mut req: Message) {
        let (Ok(from), Ok(to), Ok(call_id), Ok(cseq)) =
            (req.from(), req.to(), req.call_id(), req.cseq())
        else {
            return;
        };
        // None of the three holds whitespace (§25.1: Call-ID is words, a tag a token).
        let stable_id = format!("{call_id} {} {}", cseq.seq, from.tag().unwrap_or(""));
        let content_type = req.content_type().unwrap_or_else(|| "text/plain".into());
        let body = std::mem::take(&mut req.body);
        let id = ep.next_handle();
        let mut timers = TimerTable::new();
        timers.set(InMessageTimer::AnswerBy, now + MESSAGE_ANSWER_WAIT);
        self.incoming.insert(
            id,
            InMessage {
                request: req,
                timers,
            },
        );
        ep.emit(UaEvent::MessageReceived {
            id: IncomingMessageId(id),
            stable_id,
            from: Party::from(&from),
            to: Party::from(&to),
            content_type,
            body,
        });
    }

    pub(crate) fn on_response(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        id: u64,
        request: &Message,
        resp: &Message,
    ) {
        let status = resp.status().unwrap_or(0);
        if status < 200 {
            return;
        }
        if (200..300).contains(&status) {
            if self.outgoing.remove(&id).is_some() {
                ep.emit(UaEvent::MessageDelivered { id: MessageId(id) });
            }
            return;
        }
        if matches!(status, 401 | 407) {
            let retries = self.outgoing.get(&id).map(|m| m.auth_retries).unwrap_or(0);
            if let Some(retry) = ep.authorized_retry(request, resp, retries) {
                if let Some(m) = self.outgoing.get_mut(&id) {
                    m.auth_retries += 1;
                }
                ep.start_client_txn(now, retry, Owner::Message(id));
                return;
            }
        }
        self.failed(ep, id, status, resp.reason());
    }

    pub(crate) fn failed(&mut self, ep: &mut Endpoint, id: u64, status: u16, reason: &str) {
        if self.outgoing.remove(&id).is_some() {
            ep.emit(UaEvent::MessageFailed {
                id: MessageId(id),
                status,
                reason: reason.to_owned(),
            });
        }
    }

    /// Incoming MESSAGEs the owner did not answer in time get 500.
    pub(crate) fn on_timeout(&mut self, ep: &mut Endpoint, now: Instant) {
        let late: Vec<u64> = self
            .incoming
            .iter_mut()
            .filter_map(|(id, m)| {
                m.timers
                    .take_expired(InMessageTimer::AnswerBy, now)
                    .then_some(*id)
            })
            .collect();
        for id in late {
            if let Some(pending) = self.incoming.remove(&id) {
                debug!(message = id, "incoming MESSAGE not answered in time; 500");
                ep.reply(now, &pending.request, 500, &[]);
                ep.emit(UaEvent::MessageAnswerTimedOut {
                    id: IncomingMessageId(id),
                });
            }
        }
    }

    /// The flow is gone: outgoing MESSAGEs fail, incoming ones can no longer be answered
    /// (their transactions died with the flow; the sender's proxy answers them for us).
    pub(crate) fn on_disconnected(&mut self, ep: &mut Endpoint) {
        let outgoing: Vec<u64> = self.outgoing.keys().copied().collect();
        for id in outgoing {
            self.failed(ep, id, 503, "transport closed");
        }
        if !self.incoming.is_empty() {
            debug!(
                count = self.incoming.len(),
                "flow down: incoming MESSAGEs left unanswered"
            );
            self.incoming.clear();
        }
    }
}
