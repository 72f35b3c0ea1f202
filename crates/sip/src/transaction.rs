//! Transaction state (RFC 3261 §17 with RFC 6026) for a reliable transport.
//!
//! Client transactions are matched by top-Via branch plus CSeq method (§17.1.3); server
//! transactions by branch, sent-by and method, with ACK matching the INVITE (§17.2.3).
//! Only RFC 3261 branches (`z9hG4bK`) are matched; a request without one gets a fresh
//! transaction each time, which is harmless on a reliable transport.
//!
//! State diagrams implemented (reliable transport, so no retransmission timers):
//! - INVITE client: Calling → Proceeding → Accepted (2xx, Timer M) | Completed→Terminated
//!   (non-2xx: the transaction sends the ACK itself, Timer D = 0).
//! - non-INVITE client: Trying → Proceeding → Terminated (Timer K = 0). Timer B/F = 64*T1.
//! - INVITE server: Proceeding → Accepted (2xx, Timer L) | Completed (non-2xx, Timer H) →
//!   Terminated on ACK (Timer I = 0). Retransmitted INVITEs are absorbed / re-answered.
//! - non-INVITE server: Trying → Terminated on the final response (Timer J = 0).

use std::time::Instant;

use crate::message::{Message, Method};
use crate::timer::{TimerKind, TimerTable};

/// Client transaction timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClientTimer {
    /// Timer B (INVITE) or F (non-INVITE).
    Timeout,
    /// Timer M (RFC 6026): how long an INVITE client transaction stays Accepted.
    Accepted,
}

impl TimerKind for ClientTimer {
    fn slot(self) -> usize {
        self as usize
    }
}

/// Server transaction timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ServerTimer {
    /// Timer L (Accepted) or H (Completed, waiting for the ACK of a non-2xx).
    Linger,
}

impl TimerKind for ServerTimer {
    fn slot(self) -> usize {
        self as usize
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClientState {
    Calling,
    Proceeding,
    Accepted,
    Terminated,
}

/// Who gets the responses of a client transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Owner {
    /// The registration (REGISTER).
    Register,
    /// An outgoing MESSAGE, by its handle.
    Message(u64),
    /// A request of an INVITE session, by the session's handle.
    Session(u64, SessionRequest),
}

/// Which request of an INVITE session a client transaction carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SessionRequest {
    /// The dialog-creating INVITE.
    Invite,
    /// CANCEL of that INVITE.
    Cancel,
    /// BYE.
    Bye,
    /// A re-INVITE or UPDATE carrying our new offer.
    Reoffer,
    /// REFER, by the handle of the refer.
    Refer(u64),
    /// NOTIFY of a refer subscription we accepted.
    Notify(u64),
    /// INFO (DTMF).
    Info,
}

#[derive(Debug, Clone)]
pub(crate) struct ClientTxn {
    pub branch: String,
    pub method: Method,
    /// The request as sent (needed for ACK of non-2xx, CANCEL and auth retries).
    pub request: Message,
    pub state: ClientState,
    pub timers: TimerTable<ClientTimer, 2>,
    pub owner: Owner,
}

/// What the transaction layer decided about a response.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ClientVerdict {
    /// Pass to the transaction user.
    Deliver,
    /// Retransmission or late response: drop it.
    Absorb,
    /// A non-2xx final to an INVITE: send this ACK (§17.1.1.3) and pass to the user.
    AckAndDeliver(Message),
    /// A retransmitted non-2xx final: only resend the ACK.
    AckOnly(Message),
}

impl ClientTxn {
    pub(crate) fn matches(&self, branch: &str, cseq_method: &Method) -> bool {
        self.branch == branch && self.method == *cseq_method
    }

    pub(crate) fn on_response(&mut self, now: Instant, resp: &Message) -> ClientVerdict {
        let status = resp.status().unwrap_or(0);
        let invite = self.method == Method::Invite;
        match (self.state, status) {
            (ClientState::Calling | ClientState::Proceeding, 100..=199) => {
                self.state = ClientState::Proceeding;
                if invite {
                    // §17.1.1.2: Timer B only guards the Calling state.
                    self.timers.stop(ClientTimer::Timeout);
                }
                ClientVerdict::Deliver
            }
            (ClientState::Calling | ClientState::Proceeding, 200..=299) => {
                if invite {
                    // RFC 6026 §8.4: Accepted state absorbs nothing; 2xx retransmissions
                    // still reach the user so it can re-ACK.
                    self.state = ClientState::Accepted;
                    self.timers.stop(ClientTimer::Timeout);
                    self.timers
                        .set(ClientTimer::Accepted, now + crate::timer::TIMEOUT_64T1);
                } else {
                    self.state = ClientState::Terminated;
                }
                ClientVerdict::Deliver
            }
            (ClientState::Calling | ClientState::Proceeding, _) => {
                self.state = ClientState::Terminated;
                if invite {
                    ClientVerdict::AckAndDeliver(self.ack_for_non_2xx(resp))
                } else {
                    ClientVerdict::Deliver
                }
            }
            (ClientState::Accepted, 200..=299) => ClientVerdict::Deliver,
            (ClientState::Terminated, 300..=699) if invite => {
                ClientVerdict::AckOnly(self.ack_for_non_2xx(resp))
            }
            _ => ClientVerdict::Absorb,
        }
    }

    /// §17.1.1.3: the ACK of a non-2xx has the INVITE's Request-URI, Call-ID, From, CSeq
    /// number, top Via and Route, and the response's To (with its tag).
    fn ack_for_non_2xx(&self, resp: &Message) -> Message {
        let uri = self
            .request
            .request_uri()
            .cloned()
            .unwrap_or_else(|| crate::message::Uri {
                scheme: "sip".into(),
                user: None,
                password: None,
                host: "invalid".into(),
                port: None,
                params: Vec::new(),
                headers: None,
                opaque: None,
            });
        let mut ack = Message::new_request(Method::Ack, uri);
        if let Some(v) = self.request.list_header("Via").first() {
            ack.push_header("Via", *v);
        }
        ack.push_header("Max-Forwards", "70");
        for r in self.request.header_values("Route") {
            ack.push_header("Route", r);
        }
        for name in ["From", "Call-ID"] {
            if let Some(v) = self.request.header(name) {
                ack.push_header(name, v);
            }
        }
        if let Some(v) = resp.header("To") {
            ack.push_header("To", v);
        }
        let seq = self.request.cseq().map(|c| c.seq).unwrap_or(0);
        ack.push_header("CSeq", format!("{seq} ACK"));
        ack
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ServerState {
    Proceeding,
    Accepted,
    Completed,
    Terminated,
}

#[derive(Debug, Clone)]
pub(crate) struct ServerTxn {
    pub branch: String,
    pub sent_by: String,
    pub method: Method,
    pub state: ServerState,
    pub last_response: Option<Vec<u8>>,
    pub timers: TimerTable<ServerTimer, 1>,
}

impl ServerTxn {
    /// §17.2.3 matching; an ACK matches the INVITE transaction.
    pub(crate) fn matches(&self, branch: &str, sent_by: &str, method: &Method) -> bool {
        let method = if *method == Method::Ack {
            &Method::Invite
        } else {
            method
        };
        branch.starts_with("z9hG4bK")
            && self.branch == branch
            && self.sent_by == sent_by
            && self.method == *method
    }

    /// Records a response being sent and moves the state machine.
    pub(crate) fn on_send(&mut self, now: Instant, status: u16, bytes: &[u8]) {
        self.last_response = Some(bytes.to_vec());
        if status < 200 {
            return;
        }
        if self.method == Method::Invite {
            self.state = if status < 300 {
                ServerState::Accepted
            } else {
                ServerState::Completed
            };
            // Timer L (RFC 6026) or Timer H (§17.2.1): both 64*T1.
            self.timers
                .set(ServerTimer::Linger, now + crate::timer::TIMEOUT_64T1);
        } else {
            // Timer J = 0 on a reliable transport.
            self.state = ServerState::Terminated;
        }
    }
}
