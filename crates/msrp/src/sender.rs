//! Sending one file as one MSRP message in chunks (RFC 4975 §5.1, §7.1.1).
//!
//! The engine reads the bytes; this core decides which bytes go next, frames them as SEND
//! chunks (`Byte-Range`, continuation `+` then `$`), tracks the hop-by-hop transaction
//! responses (§7.2, 30 s limit) and the receiver's Success-Reports (§7.1.2), whose Byte-Range
//! `1-N/total` says how much has arrived. Progress a person can trust is that N, not what was
//! written to the socket.
//!
//! Flow control: MSRP has none of its own, and a relay buffers what its next hop cannot take
//! yet. The sender therefore keeps at most `window` bytes sent but unconfirmed, which bounds
//! the relay's buffering and our own memory, independent of the file's size.
//!
//! Resume (RFC 5547 §9): a new sender starts at `resume_from`, the last byte the receiver
//! confirmed; its Byte-Ranges continue the same numbering, so the receiver can place them.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::time::Instant;

use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::error::MsrpError;
use crate::message::{Continuation, Kind, Message, Method};
use crate::relay::{TRANSACTION_TIMEOUT, new_transaction_id};
use crate::uri::{MsrpUri, format_path};

/// The chunk body size we send by default. Measured against Kamailio 5.6's msrp relay over
/// WebSocket (tests/interop/msrp_transfer.rs with `LYREBIRD_MSRP_CHUNK`): frames of about
/// 10.6 KB pass, frames of about 11.7 KB are silently dropped (not the 14,338 bytes its
/// source suggests). 8 KiB of body plus ~400 bytes of headers keeps a wide margin.
pub const DEFAULT_CHUNK_SIZE: usize = 8 * 1024;

/// How the sender is set up.
#[derive(Debug, Clone)]
pub struct SenderConfig {
    /// Our URI on this connection (the From-Path).
    pub local: MsrpUri,
    /// Our relays' Use-Path followed by the peer's `a=path` (RFC 4976 §6.1).
    pub to_path: Vec<MsrpUri>,
    /// The Message-ID of the file's message; kept across resumed sessions.
    pub message_id: String,
    /// The Content-Type of the chunks (the file's MIME type).
    pub content_type: String,
    /// The file's size.
    pub total: u64,
    /// Bytes already confirmed by the receiver (0 for a fresh transfer).
    pub resume_from: u64,
    /// Chunk body size.
    pub chunk_size: usize,
    /// Most bytes sent but not yet confirmed.
    pub window: u64,
    /// Seeds transaction ids.
    pub rng_seed: u64,
}

/// Which bytes the engine should read and hand to [`FileSender::encode_chunk`] next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkPlan {
    /// 0-based offset in the file.
    pub offset: u64,
    /// Number of bytes.
    pub len: usize,
}

/// What the sender reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SenderEvent {
    /// The receiver has confirmed this many bytes from the start of the file.
    Confirmed {
        /// Contiguous bytes confirmed.
        bytes: u64,
    },
    /// Every byte is confirmed.
    Completed,
    /// The transfer cannot go on in this session.
    Failed(MsrpError),
}

/// The sending side of one file's MSRP message.
#[derive(Debug)]
pub struct FileSender {
    config: SenderConfig,
    to_path: String,
    from_path: String,
    next_offset: u64,
    confirmed: u64,
    /// SEND transactions awaiting their response, oldest first.
    outstanding: VecDeque<(String, Instant)>,
    events: VecDeque<SenderEvent>,
    rng: StdRng,
    finished: bool,
    sent_empty: bool,
}

impl FileSender {
    /// Starts a sender; fails on a configuration that cannot work.
    pub fn new(config: SenderConfig) -> Result<Self, MsrpError> {
        if config.to_path.is_empty() {
            return Err(MsrpError::Misuse("empty To-Path".into()));
        }
        if config.chunk_size == 0 || config.window < config.chunk_size as u64 {
            return Err(MsrpError::Misuse(
                "chunk size must be positive and the window at least one chunk".into(),
            ));
        }
        if config.resume_from > config.total {
            return Err(MsrpError::Misuse(
                "resume point beyond the end of the file".into(),
            ));
        }
        if config.message_id.is_empty() || config.content_type.contains(['\r', '\n']) {
            return Err(MsrpError::Misuse("bad Message-ID or Content-Type".into()));
        }
        Ok(Self {
            to_path: format_path(&config.to_path),
            from_path: config.local.to_string(),
            next_offset: config.resume_from,
            confirmed: config.resume_from,
            outstanding: VecDeque::new(),
            events: VecDeque::new(),
            rng: StdRng::seed_from_u64(config.rng_seed),
            finished: false,
            sent_empty: false,
            config,
        })
    }

    /// Bytes handed to the connection so far (including resumed ones).
    pub fn sent(&self) -> u64 {
        self.next_offset
    }

    /// Bytes the receiver has confirmed.
    pub fn confirmed(&self) -> u64 {
        self.confirmed
    }

    /// The total size.
    pub fn total(&self) -> u64 {
        self.config.total
    }

    /// True once every byte is confirmed or the sender has failed.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// The next chunk to read, or `None` if everything is sent or the window is full.
    pub fn next_chunk(&self) -> Option<ChunkPlan> {
        if self.finished {
            return None;
        }
        let total = self.config.total;
        if total == 0 {
            return (!self.sent_empty).then_some(ChunkPlan { offset: 0, len: 0 });
        }
        if self.next_offset >= total || self.next_offset - self.confirmed >= self.config.window {
            return None;
        }
        let len = (total - self.next_offset).min(self.config.chunk_size as u64);
        Some(ChunkPlan {
            offset: self.next_offset,
            len: usize::try_from(len).unwrap_or(self.config.chunk_size),
        })
    }

    /// Frames the bytes of the chunk [`FileSender::next_chunk`] asked for.
    pub fn encode_chunk(&mut self, now: Instant, data: &[u8]) -> Result<Vec<u8>, MsrpError> {
        let plan = self
            .next_chunk()
            .ok_or_else(|| MsrpError::Misuse("no chunk is due".into()))?;
        if data.len() != plan.len {
            return Err(MsrpError::Misuse(format!(
                "chunk of {} bytes given, {} planned",
                data.len(),
                plan.len
            )));
        }
        let end = plan.offset + data.len() as u64;
        let continuation = if end == self.config.total {
            Continuation::Complete
        } else {
            Continuation::More
        };
        let frame = self.frame(now, plan.offset + 1, end, data, continuation);
        self.next_offset = end;
        if self.config.total == 0 {
            self.sent_empty = true;
        }
        Ok(frame)
    }

    fn frame(
        &mut self,
        now: Instant,
        start: u64,
        end: u64,
        data: &[u8],
        continuation: Continuation,
    ) -> Vec<u8> {
        let tid = new_transaction_id(&mut self.rng);
        // Written directly rather than through `Message` to avoid copying every chunk twice.
        let mut head = String::with_capacity(384);
        let _ = write!(
            head,
            "MSRP {tid} SEND\r\nTo-Path: {}\r\nFrom-Path: {}\r\nMessage-ID: {}\r\n\
             Success-Report: yes\r\nFailure-Report: yes\r\nByte-Range: {start}-{end}/{}\r\n\
             Content-Type: {}\r\n\r\n",
            self.to_path,
            self.from_path,
            self.config.message_id,
            self.config.total,
            self.config.content_type,
        );
        let mut out = Vec::with_capacity(head.len() + data.len() + tid.len() + 12);
        out.extend_from_slice(head.as_bytes());
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n-------");
        out.extend_from_slice(tid.as_bytes());
        out.push(match continuation {
            Continuation::Complete => b'$',
            Continuation::More => b'+',
            Continuation::Aborted => b'#',
        });
        out.extend_from_slice(b"\r\n");
        self.outstanding.push_back((tid, now));
        out
    }

    /// Sends again from the last confirmed byte, in this session: for a path that lost a chunk
    /// (a relay may drop one), the receiver drops what it already holds and fills the gap.
    pub fn rewind(&mut self) {
        if !self.finished {
            self.next_offset = self.confirmed;
            self.sent_empty = false;
        }
    }

    /// Ends the message early: an empty chunk flagged `#` (RFC 4975 §7.1.1), so the receiver
    /// knows the message will never complete. `None` if the transfer is already over.
    pub fn abort(&mut self, now: Instant) -> Option<Vec<u8>> {
        if self.finished {
            return None;
        }
        self.finished = true;
        let at = self.next_offset;
        Some(self.frame(now, at + 1, at, &[], Continuation::Aborted))
    }

    /// Feeds a message that arrived on the session's connection. Returns `false` if it is not
    /// for this sender (another message's REPORT, a request for someone else).
    pub fn handle_message(&mut self, message: &Message) -> bool {
        match &message.kind {
            Kind::Response { status, comment } => {
                let Some(at) = self
                    .outstanding
                    .iter()
                    .position(|(tid, _)| *tid == message.transaction_id)
                else {
                    return false;
                };
                self.outstanding.remove(at);
                if *status != 200 && !self.finished {
                    self.fail(MsrpError::Refused {
                        who: "the relay or the peer",
                        status: *status,
                        comment: comment.clone().unwrap_or_default(),
                    });
                }
                true
            }
            Kind::Request(Method::Report) => {
                if message.message_id() != Some(self.config.message_id.as_str()) {
                    return false;
                }
                self.on_report(message);
                true
            }
            Kind::Request(_) => false,
        }
    }

    fn on_report(&mut self, report: &Message) {
        if self.finished {
            return;
        }
        let status = match report.status_header() {
            Ok(Some(status)) => status,
            Ok(None) | Err(_) => {
                self.fail(MsrpError::Protocol(
                    "a REPORT without a valid Status".into(),
                ));
                return;
            }
        };
        if status.code != 200 {
            self.fail(MsrpError::Refused {
                who: "the peer",
                status: status.code,
                comment: status.comment.unwrap_or_default(),
            });
            return;
        }
        // A Success-Report covers the bytes in its Byte-Range; only a range from byte 1 says
        // "everything up to N" (our receiver reports that way; §7.1.2 allows per-chunk ranges,
        // which we do not count, to keep "confirmed" contiguous).
        let Ok(Some(range)) = report.byte_range() else {
            return;
        };
        let Some(end) = range.end else { return };
        if range.start != 1 || end > self.config.total {
            return;
        }
        if end > self.confirmed || (self.config.total == 0 && self.sent_empty) {
            self.confirmed = end.max(self.confirmed);
            // The receiver may hold more than we knew (it kept bytes we never saw confirmed
            // before a resume): skip ahead rather than send them again.
            self.next_offset = self.next_offset.max(self.confirmed);
            self.events.push_back(SenderEvent::Confirmed {
                bytes: self.confirmed,
            });
        }
        if self.confirmed == self.config.total && (self.config.total > 0 || self.sent_empty) {
            self.finished = true;
            self.events.push_back(SenderEvent::Completed);
        }
    }

    fn fail(&mut self, error: MsrpError) {
        self.finished = true;
        self.events.push_back(SenderEvent::Failed(error));
    }

    /// The next thing to report.
    pub fn poll_event(&mut self) -> Option<SenderEvent> {
        self.events.pop_front()
    }

    /// When the oldest SEND times out.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.outstanding
            .front()
            .map(|(_, sent)| *sent + TRANSACTION_TIMEOUT)
    }

    /// Fails the transfer if a SEND has gone unanswered too long.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some((_, sent)) = self.outstanding.front()
            && now >= *sent + TRANSACTION_TIMEOUT
        {
            self.outstanding.clear();
            if !self.finished {
                self.fail(MsrpError::Timeout {
                    method: "SEND",
                    seconds: TRANSACTION_TIMEOUT.as_secs(),
                });
            }
        }
    }
}
