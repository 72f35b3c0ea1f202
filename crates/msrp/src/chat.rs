//! A chat session (RFC 4975 §5, §7): short messages both ways inside one MSRP session, as
//! opposed to the one-way file push of [`crate::sender`] / [`crate::receiver`].
//!
//! Sending: [`ChatSession::send`] frames a message — in chunks of at most `chunk_size` bytes,
//! since relays cap frame sizes (Kamailio at ≈ 11 KB) — asking for a Success-Report, which is
//! what [`ChatEvent::Delivered`] means: the peer has the whole message, not merely a relay.
//! Receiving: chunks of one Message-ID are put together (bounded by `max_message_bytes`;
//! larger ones are refused with 413, §7.1.1), answered, and reported when asked for.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::error::MsrpError;
use crate::message::{ByteRange, Continuation, Kind, Message, Method};
use crate::relay::new_transaction_id;
use crate::uri::{MsrpUri, format_path};

/// A message without a report this long after its last chunk went out has failed (RFC 4975
/// §7.1.2 leaves the bound to the sender; 30 s is the transaction timeout of §7.3).
pub const REPORT_TIMEOUT: Duration = Duration::from_secs(30);
/// Messages being put together at once, at most (a peer cannot make us hold more).
const MAX_PARTIAL_MESSAGES: usize = 16;

/// How a chat session is set up.
#[derive(Debug, Clone)]
pub struct ChatConfig {
    /// Our URI on this session's connection (the last entry of our `a=path`).
    pub local: MsrpUri,
    /// Our relays' Use-Path followed by the peer's `a=path`.
    pub to_path: Vec<MsrpUri>,
    /// Largest body per SEND.
    pub chunk_size: usize,
    /// Largest incoming message; larger ones are refused.
    pub max_message_bytes: usize,
    /// Seed for transaction and message ids.
    pub rng_seed: u64,
}

/// What a chat session reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatEvent {
    /// A whole message arrived.
    Received {
        /// Its Message-ID.
        message_id: String,
        /// Its Content-Type (`text/plain`, `message/cpim`, ...).
        content_type: String,
        /// Its body.
        body: Vec<u8>,
    },
    /// The peer reported having all of an outgoing message.
    Delivered {
        /// The Message-ID [`ChatSession::send`] returned.
        message_id: String,
    },
    /// An outgoing message did not arrive: an error response, a failure REPORT, or no report.
    Failed {
        /// The Message-ID [`ChatSession::send`] returned.
        message_id: String,
        /// The MSRP status (408 for no report in time).
        status: u16,
        /// What the relay or the peer said.
        comment: String,
    },
    /// Something received was refused (answered with an error); worth a log line.
    Refused(MsrpError),
}

struct Outgoing {
    total: u64,
    deadline: Instant,
}

struct Partial {
    content_type: String,
    total: Option<u64>,
    data: Vec<u8>,
}

/// One chat session's MSRP state.
pub struct ChatSession {
    config: ChatConfig,
    to_path: String,
    from_path: String,
    rng: StdRng,
    /// Transaction id → Message-ID of SENDs waiting for their response.
    transactions: HashMap<String, String>,
    /// Messages waiting for their Success-Report.
    outgoing: HashMap<String, Outgoing>,
    incoming: HashMap<String, Partial>,
    /// Success-Reports of received messages, held until the receiver has stored them
    /// ([`ChatSession::confirm_received`]): a report tells the sender "delivered".
    unconfirmed: HashMap<String, Message>,
    transmit: VecDeque<Vec<u8>>,
    events: VecDeque<ChatEvent>,
}

impl ChatSession {
    /// Starts a session; fails on a configuration that cannot work.
    pub fn new(config: ChatConfig) -> Result<Self, MsrpError> {
        if config.to_path.is_empty() || config.chunk_size == 0 {
            return Err(MsrpError::Misuse(
                "a chat session needs a To-Path and a positive chunk size".into(),
            ));
        }
        Ok(Self {
            to_path: format_path(&config.to_path),
            from_path: config.local.to_string(),
            rng: StdRng::seed_from_u64(config.rng_seed),
            transactions: HashMap::new(),
            outgoing: HashMap::new(),
            incoming: HashMap::new(),
            unconfirmed: HashMap::new(),
            transmit: VecDeque::new(),
            events: VecDeque::new(),
            config,
        })
    }

    /// Queues `body` as one message; returns its Message-ID.
    pub fn send(
        &mut self,
        now: Instant,
        content_type: &str,
        body: &[u8],
    ) -> Result<String, MsrpError> {
        if body.is_empty() {
            return Err(MsrpError::Misuse("an empty chat message".into()));
        }
        if content_type.is_empty() || content_type.contains(['\r', '\n']) {
            return Err(MsrpError::Misuse("bad Content-Type".into()));
        }
        let message_id = new_transaction_id(&mut self.rng);
        let total = body.len() as u64;
        let mut start = 0usize;
        for chunk in body.chunks(self.config.chunk_size) {
            let end = start + chunk.len();
            let tid = new_transaction_id(&mut self.rng);
            let mut message = Message::request(tid.clone(), Method::Send)
                .with_header("To-Path", self.to_path.clone())
                .with_header("From-Path", self.from_path.clone())
                .with_header("Message-ID", message_id.clone())
                .with_header("Success-Report", "yes")
                .with_header("Failure-Report", "yes")
                .with_header(
                    "Byte-Range",
                    ByteRange {
                        start: start as u64 + 1,
                        end: Some(end as u64),
                        total: Some(total),
                    }
                    .to_string(),
                )
                .with_header("Content-Type", content_type);
            message.body = Some(chunk.to_vec());
            message.continuation = if end == body.len() {
                Continuation::Complete
            } else {
                Continuation::More
            };
            self.transmit.push_back(message.encode());
            self.transactions.insert(tid, message_id.clone());
            start = end;
        }
        self.outgoing.insert(
            message_id.clone(),
            Outgoing {
                total,
                deadline: now + REPORT_TIMEOUT,
            },
        );
        Ok(message_id)
    }

    /// Feeds a message that arrived on the session's connection. Returns `false` if it is not
    /// for this session (the relay's AUTH traffic, say).
    pub fn handle_message(&mut self, message: Message) -> bool {
        match &message.kind {
            Kind::Response { status, comment } => {
                let Some(message_id) = self.transactions.remove(&message.transaction_id) else {
                    return false;
                };
                if *status != 200 {
                    let comment = comment.clone().unwrap_or_default();
                    self.fail(&message_id, *status, comment);
                }
                true
            }
            Kind::Request(Method::Report) => {
                let Some(message_id) = message.message_id().map(str::to_owned) else {
                    return false;
                };
                if !self.outgoing.contains_key(&message_id) {
                    return false;
                }
                self.on_report(&message_id, &message);
                true
            }
            Kind::Request(Method::Send) => {
                self.on_send(message);
                true
            }
            Kind::Request(_) => false,
        }
    }

    fn fail(&mut self, message_id: &str, status: u16, comment: String) {
        if self.outgoing.remove(message_id).is_some() {
            self.transactions.retain(|_, m| m != message_id);
            self.events.push_back(ChatEvent::Failed {
                message_id: message_id.to_owned(),
                status,
                comment,
            });
        }
    }

    fn on_report(&mut self, message_id: &str, report: &Message) {
        let status = match report.status_header() {
            Ok(Some(status)) => status,
            _ => {
                let comment = "a REPORT without a valid Status".to_owned();
                return self.fail(message_id, 400, comment);
            }
        };
        if status.code != 200 {
            let comment = status.comment.unwrap_or_default();
            return self.fail(message_id, status.code, comment);
        }
        let total = self.outgoing.get(message_id).map_or(0, |o| o.total);
        let covers_all = matches!(
            report.byte_range(),
            Ok(Some(ByteRange { start: 1, end: Some(end), .. })) if end >= total
        );
        if covers_all {
            self.outgoing.remove(message_id);
            self.events.push_back(ChatEvent::Delivered {
                message_id: message_id.to_owned(),
            });
        }
    }

    fn respond(&mut self, request: &Message, status: u16, comment: &str) {
        if let Some(response) = request.response(status, comment, &self.config.local) {
            self.transmit.push_back(response.encode());
        }
    }

    fn refuse(&mut self, request: &Message, status: u16, error: MsrpError) {
        let comment = match status {
            413 => "Message too large",
            415 => "Unsupported media type",
            _ => "Bad Request",
        };
        self.respond(request, status, comment);
        self.events.push_back(ChatEvent::Refused(error));
    }

    fn on_send(&mut self, mut message: Message) {
        let Some(message_id) = message.message_id().map(str::to_owned) else {
            let error = MsrpError::malformed("Message-ID", "a SEND without Message-ID");
            return self.refuse(&message, 400, error);
        };
        let body = message.body.take().unwrap_or_default();
        let range = match message.byte_range() {
            Ok(range) => range.unwrap_or(ByteRange {
                start: 1,
                end: Some(body.len() as u64),
                total: Some(body.len() as u64),
            }),
            Err(e) => return self.refuse(&message, 400, e),
        };
        if message.continuation == Continuation::Aborted {
            self.incoming.remove(&message_id);
            return self.respond(&message, 200, "OK");
        }
        let limit = self.config.max_message_bytes as u64;
        let end = range.start - 1 + body.len() as u64;
        if range.total.is_some_and(|t| t > limit) || end > limit {
            self.incoming.remove(&message_id);
            let error = MsrpError::Protocol(format!("a chat message over {limit} bytes"));
            return self.refuse(&message, 413, error);
        }
        // A keep-alive SEND (§7.1.1: empty, no Content-Type) carries no message.
        if body.is_empty() && message.header("Content-Type").is_none() {
            return self.respond(&message, 200, "OK");
        }
        if !self.incoming.contains_key(&message_id) && self.incoming.len() >= MAX_PARTIAL_MESSAGES {
            let error = MsrpError::Protocol("too many chat messages in progress".into());
            return self.refuse(&message, 413, error);
        }
        let partial = self
            .incoming
            .entry(message_id.clone())
            .or_insert_with(|| Partial {
                content_type: String::new(),
                total: range.total,
                data: Vec::new(),
            });
        if let Some(content_type) = message.header("Content-Type") {
            partial.content_type = content_type.to_owned();
        }
        let offset = (range.start - 1) as usize;
        if partial.data.len() < offset + body.len() {
            partial.data.resize(offset + body.len(), 0);
        }
        partial.data[offset..offset + body.len()].copy_from_slice(&body);
        let done = match partial.total {
            Some(total) => {
                partial.data.len() as u64 >= total && message.continuation == Continuation::Complete
            }
            None => message.continuation == Continuation::Complete,
        };
        self.respond(&message, 200, "OK");
        if !done {
            return;
        }
        let Some(partial) = self.incoming.remove(&message_id) else {
            return;
        };
        let total = partial.data.len() as u64;
        if message
            .header("Success-Report")
            .is_some_and(|v| v.eq_ignore_ascii_case("yes"))
            && let Ok(from_path) = message.from_path()
        {
            let tid = new_transaction_id(&mut self.rng);
            let mut report = Message::request(tid, Method::Report)
                .with_header("To-Path", format_path(&from_path))
                .with_header("From-Path", self.from_path.clone())
                .with_header("Message-ID", message_id.clone())
                .with_header(
                    "Byte-Range",
                    ByteRange {
                        start: 1,
                        end: Some(total),
                        total: Some(total),
                    }
                    .to_string(),
                )
                .with_header("Status", "000 200 OK");
            report.continuation = Continuation::Complete;
            self.unconfirmed.insert(message_id.clone(), report);
        }
        let content_type = if partial.content_type.is_empty() {
            "text/plain".to_owned()
        } else {
            partial.content_type
        };
        self.events.push_back(ChatEvent::Received {
            message_id,
            content_type,
            body: partial.data,
        });
    }

    /// The next frame to send on the connection.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmit.pop_front()
    }

    /// The next thing to report.
    pub fn poll_event(&mut self) -> Option<ChatEvent> {
        self.events.pop_front()
    }

    /// When the oldest outgoing message runs out of time for its report.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.outgoing.values().map(|o| o.deadline).min()
    }

    /// Fails the messages whose report is overdue.
    pub fn handle_timeout(&mut self, now: Instant) {
        let overdue: Vec<String> = self
            .outgoing
            .iter()
            .filter(|(_, o)| now >= o.deadline)
            .map(|(id, _)| id.clone())
            .collect();
        for message_id in overdue {
            let comment = format!("no report within {} s", REPORT_TIMEOUT.as_secs());
            self.fail(&message_id, 408, comment);
        }
    }

    /// The receiver has stored the message `message_id` ([`ChatEvent::Received`]): its
    /// Success-Report (RFC 4975 §7.1.2), if the sender asked for one, goes out now. Returns
    /// whether there was one to send.
    pub fn confirm_received(&mut self, message_id: &str) -> bool {
        match self.unconfirmed.remove(message_id) {
            Some(report) => {
                self.transmit.push_back(report.encode());
                true
            }
            None => false,
        }
    }

    /// The receiver could not keep the message `message_id`: no Success-Report goes out, so
    /// the sender does not count it as delivered (it fails it when its wait for the report
    /// runs out).
    pub fn forget_received(&mut self, message_id: &str) {
        self.unconfirmed.remove(message_id);
    }

    /// Messages sent and not yet confirmed.
    pub fn pending(&self) -> impl Iterator<Item = &str> {
        self.outgoing.keys().map(String::as_str)
    }
}
