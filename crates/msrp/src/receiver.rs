//! Receiving one file as one chunked MSRP message (RFC 4975 §7.1.1, §7.1.2).
//!
//! The core answers each SEND (200, or 4xx for a bad chunk), decides which bytes are new and
//! where they go, and sends Success-Reports with `Byte-Range: 1-N/total` where N is the count
//! of contiguous bytes held — every `report_every` bytes and at the end — which is what the
//! sender shows as progress and resumes from.
//!
//! Writes are strictly in order: a chunk overlapping bytes already held (a resumed sender
//! re-sending from its last confirmation) is trimmed, so no byte is written twice. Chunks that
//! arrive ahead of a gap are held in memory until the gap fills — Kamailio's relay reorders
//! chunks when it forwards through several worker processes (measured: chunks megabytes
//! ahead of the contiguous edge) — up to `max_reorder_bytes`, which the sender's window
//! bounds anyway; beyond that a chunk is refused and the REPORT says where the file ends.

use std::collections::{BTreeMap, VecDeque};

use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::error::MsrpError;
use crate::message::{ByteRange, Continuation, Kind, Message, Method};
use crate::relay::new_transaction_id;
use crate::uri::{MsrpUri, format_path};

/// How the receiver is set up.
#[derive(Debug, Clone)]
pub struct ReceiverConfig {
    /// Our URI (the last hop of the sender's To-Path).
    pub local: MsrpUri,
    /// The size the offer announced.
    pub total: u64,
    /// Bytes already held from an earlier session (resume), 0 for a fresh transfer.
    pub already_have: u64,
    /// Send a Success-Report every this many new bytes.
    pub report_every: u64,
    /// Seeds transaction ids.
    pub rng_seed: u64,
    /// Most bytes held out of order, waiting for a gap to fill.
    pub max_reorder_bytes: u64,
}

/// What the receiver reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReceiverEvent {
    /// Write `data` at `offset`; offsets only ever grow, with no gaps.
    Write {
        /// 0-based position in the file.
        offset: u64,
        /// The bytes.
        data: Vec<u8>,
    },
    /// Every byte has arrived.
    Complete,
    /// The sender abandoned the message (`#`).
    Aborted,
    /// A complete text message on the session (chat within an MSRP session).
    Text {
        /// Its Content-Type.
        content_type: String,
        /// Its body.
        body: Vec<u8>,
    },
    /// A malformed or out-of-rules chunk was refused; the session carries on.
    Refused(MsrpError),
}

/// The receiving side of one file's MSRP message.
#[derive(Debug)]
pub struct FileReceiver {
    config: ReceiverConfig,
    local: String,
    message_id: Option<String>,
    have: u64,
    reported: u64,
    /// The first chunk of a session is always reported, so a resumed sender learns at once
    /// how much we already hold (and its window cannot stall short of our report interval).
    reported_once: bool,
    complete: bool,
    duplicate_bytes: u64,
    refused_chunks: u64,
    reordered_chunks: u64,
    /// Chunks ahead of `have`, by offset.
    pending: BTreeMap<u64, Vec<u8>>,
    pending_bytes: u64,
    transmit: VecDeque<Vec<u8>>,
    events: VecDeque<ReceiverEvent>,
    rng: StdRng,
}

impl FileReceiver {
    /// Starts a receiver.
    pub fn new(config: ReceiverConfig) -> Result<Self, MsrpError> {
        if config.already_have > config.total {
            return Err(MsrpError::Misuse("already have more than the total".into()));
        }
        Ok(Self {
            local: config.local.to_string(),
            message_id: None,
            have: config.already_have,
            reported: config.already_have,
            reported_once: false,
            complete: false,
            duplicate_bytes: 0,
            refused_chunks: 0,
            reordered_chunks: 0,
            pending: BTreeMap::new(),
            pending_bytes: 0,
            transmit: VecDeque::new(),
            events: VecDeque::new(),
            rng: StdRng::seed_from_u64(config.rng_seed),
            config,
        })
    }

    /// Contiguous bytes held.
    pub fn have(&self) -> u64 {
        self.have
    }

    /// True once every byte has arrived.
    pub fn is_complete(&self) -> bool {
        self.complete
    }

    /// Bytes that arrived a second time and were dropped (resumed senders overlap).
    pub fn duplicate_bytes(&self) -> u64 {
        self.duplicate_bytes
    }

    /// Chunks that arrived ahead of a gap and were held until it filled.
    pub fn reordered_chunks(&self) -> u64 {
        self.reordered_chunks
    }

    /// Chunks refused because they were too far ahead or malformed.
    pub fn refused_chunks(&self) -> u64 {
        self.refused_chunks
    }

    /// Feeds one message that arrived on the session's connection. Returns `false` if it is
    /// not for this receiver (responses to someone else's transactions).
    pub fn handle_message(&mut self, message: Message) -> bool {
        match &message.kind {
            Kind::Request(Method::Send) => {
                self.on_send(message);
                true
            }
            // Responses to our REPORTs do not exist (§7.1.2); others are not ours.
            _ => false,
        }
    }

    fn respond(&mut self, request: &Message, status: u16, comment: &str) {
        if let Ok(local) = MsrpUri::parse(&self.local)
            && let Some(response) = request.response(status, comment, &local)
        {
            self.transmit.push_back(response.encode());
        }
    }

    fn refuse(&mut self, request: &Message, status: u16, error: MsrpError) {
        self.refused_chunks += 1;
        let comment = match status {
            400 => "Bad Request",
            413 => "Stop sending",
            _ => "Refused",
        };
        self.respond(request, status, comment);
        self.events.push_back(ReceiverEvent::Refused(error));
    }

    fn on_send(&mut self, mut message: Message) {
        let range = match message.byte_range() {
            Ok(range) => range,
            Err(e) => return self.refuse(&message, 400, e),
        };
        let body_len = message.body.as_ref().map_or(0, Vec::len) as u64;
        let range = range.unwrap_or(ByteRange {
            start: 1,
            end: Some(body_len),
            total: Some(body_len),
        });
        let Some(id) = message.message_id().map(str::to_owned) else {
            return self.refuse(
                &message,
                400,
                MsrpError::malformed("Message-ID", "a SEND without Message-ID"),
            );
        };
        if let Some(end) = range.end
            && end + 1 - range.start != body_len
            && message.continuation != Continuation::Aborted
        {
            return self.refuse(
                &message,
                400,
                MsrpError::Protocol(format!(
                    "Byte-Range {}-{end} but {body_len} bytes of body",
                    range.start
                )),
            );
        }
        // A short text on the session, not our file: chat inside the transfer's session.
        let is_file = match &self.message_id {
            Some(known) => *known == id,
            None => range.total == Some(self.config.total),
        };
        if !is_file {
            let content_type = message
                .header("Content-Type")
                .unwrap_or("text/plain")
                .to_owned();
            self.respond(&message, 200, "OK");
            if message.continuation == Continuation::Complete && range.start == 1 {
                self.events.push_back(ReceiverEvent::Text {
                    content_type,
                    body: message.body.take().unwrap_or_default(),
                });
            }
            return;
        }
        if range.total.is_some_and(|t| t != self.config.total) {
            return self.refuse(
                &message,
                413,
                MsrpError::Protocol("the chunk's total differs from the offered size".into()),
            );
        }
        self.message_id = Some(id);
        if message.continuation == Continuation::Aborted {
            self.respond(&message, 200, "OK");
            self.events.push_back(ReceiverEvent::Aborted);
            return;
        }
        let offset = range.start.saturating_sub(1);
        let data = message.body.take().unwrap_or_default();
        // A chunk with an unknown total (`*`) could otherwise run past the size the offer
        // declared, and so past what the person accepted onto their disk.
        if offset.saturating_add(data.len() as u64) > self.config.total {
            return self.refuse(
                &message,
                413,
                MsrpError::Protocol(format!(
                    "bytes {}-{} are past the offered size of {} bytes",
                    range.start,
                    offset.saturating_add(data.len() as u64),
                    self.config.total
                )),
            );
        }
        if offset > self.have {
            let fits = self.pending_bytes + data.len() as u64 <= self.config.max_reorder_bytes;
            if !fits {
                // Too far ahead to hold: refuse it and say where we really are.
                message.body = Some(data);
                self.refuse(
                    &message,
                    413,
                    MsrpError::Protocol(format!(
                        "chunk at byte {} but only {} held",
                        range.start, self.have
                    )),
                );
                self.report(&message, true);
                return;
            }
            self.respond(&message, 200, "OK");
            self.reordered_chunks += 1;
            if let Some(old) = self.pending.insert(offset, data) {
                self.duplicate_bytes += old.len() as u64;
                self.pending_bytes -= old.len() as u64;
            }
            self.pending_bytes += self.pending.get(&offset).map_or(0, |d| d.len() as u64);
            return;
        }
        self.respond(&message, 200, "OK");
        self.accept_in_order(offset, data);
        // Whatever was waiting for this gap now follows.
        while let Some(entry) = self.pending.first_entry() {
            if *entry.key() > self.have {
                break;
            }
            let (at, data) = entry.remove_entry();
            self.pending_bytes -= data.len() as u64;
            self.accept_in_order(at, data);
        }
        let finished = self.have == self.config.total
            && (self.config.total > 0 || message.continuation == Continuation::Complete);
        if finished && !self.complete {
            self.complete = true;
            self.report(&message, true);
            self.events.push_back(ReceiverEvent::Complete);
        } else if self.complete {
            // A chunk after the whole file is in: the sender did not get our final report
            // (lost on the way) and sends the tail again. Say once more that we hold it all.
            self.report(&message, true);
        } else if !self.reported_once || self.have >= self.reported + self.config.report_every {
            self.report(&message, false);
        }
    }

    /// Takes bytes starting at or before `have`: trims what is already held, emits the rest.
    fn accept_in_order(&mut self, offset: u64, mut data: Vec<u8>) {
        let end = offset + data.len() as u64;
        if end <= self.have {
            self.duplicate_bytes += data.len() as u64;
            return;
        }
        let skip = self.have - offset;
        self.duplicate_bytes += skip;
        if skip > 0 {
            data.drain(..usize::try_from(skip).unwrap_or(data.len()));
        }
        self.events.push_back(ReceiverEvent::Write {
            offset: self.have,
            data,
        });
        self.have = end;
    }

    /// A Success-Report (RFC 4975 §7.1.2) saying we hold bytes 1..=have.
    fn report(&mut self, send: &Message, force: bool) {
        let wants = send
            .header("Success-Report")
            .is_some_and(|v| v.eq_ignore_ascii_case("yes"));
        if !wants && !force {
            return;
        }
        let Ok(from_path) = send.from_path() else {
            return;
        };
        let tid = new_transaction_id(&mut self.rng);
        let mut report = Message::request(tid, Method::Report)
            .with_header("To-Path", format_path(&from_path))
            .with_header("From-Path", self.local.clone())
            .with_header("Message-ID", self.message_id.clone().unwrap_or_default())
            .with_header(
                "Byte-Range",
                ByteRange {
                    start: 1,
                    end: Some(self.have),
                    total: Some(self.config.total),
                }
                .to_string(),
            )
            .with_header("Status", "000 200 OK");
        report.continuation = Continuation::Complete;
        self.reported = self.have;
        self.reported_once = true;
        self.transmit.push_back(report.encode());
    }

    /// The next message to send on the connection.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmit.pop_front()
    }

    /// The next thing to report.
    pub fn poll_event(&mut self) -> Option<ReceiverEvent> {
        self.events.pop_front()
    }
}
