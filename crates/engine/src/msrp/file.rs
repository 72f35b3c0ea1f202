//! One task per file: it owns the MSRP WebSocket to the relay and the sans-IO cores, and asks
//! its account for the SIP side (INVITE / 200 / BYE).
//!
//! The task outlives SIP sessions. When the WebSocket or the relay drops, the session ends
//! (BYE) and the task starts a new one: the sender offers the rest with `a=file-range` and the
//! same `a=file-transfer-id` (RFC 5547 §9), the receiver's task picks that offer up and
//! continues the same partial file and the same running SHA-256. Nothing reaches the file's
//! final name until the last byte is in and the hash matches.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use lyrebird_msrp::{
    FileReceiver, FileSelector, FileSender, Message, Method, MsrpError, MsrpMedia, ReceiverConfig,
    ReceiverEvent, SenderConfig, SenderEvent,
};
use lyrebird_store::{Direction, NewTransfer, TransferState as RowState};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{Instrument, debug, info, warn};

use super::context::{CANCELLED_CAUSE, FromTask, TaskContext, ToTask};
use super::names::{create_partial, free_space, publish, safe_file_name};
use super::relay::Link;
use crate::backoff::Backoff;
use crate::event::EngineEvent;
use crate::event::{TransferDirection, TransferState};
use crate::ground::TransferId;
use crate::session::Signal;
use crate::transport::Incoming;

/// Progress events at most this often (the final one always goes out).
const PROGRESS_INTERVAL: Duration = Duration::from_millis(250);
/// The receiver confirms every this many bytes (RFC 4975 §7.1.2 Success-Reports).
const REPORT_EVERY: u64 = 256 * 1024;
/// No confirmation for this long while bytes are outstanding: a chunk or a report was lost (a
/// relay whose write queue overflows drops frames after answering 200 hop-by-hop — Kamailio
/// with its default 32 KiB queue did, see tests/stack/kamailio.cfg); send again from the last
/// confirmed byte in the same session. Confirmations normally come every few milliseconds.
const STALL_TIMEOUT: Duration = Duration::from_secs(2);
/// Rewinds in a row without progress before the session counts as broken.
const MAX_REWINDS: u32 = 3;
/// After the peer's BYE, messages still in flight on the MSRP path (an abort, a 413 REPORT,
/// the last chunks) are read for this long before deciding what the BYE meant. The SIP and MSRP
/// paths race: a sender's abort chunk can sit behind megabytes of window in the relay while its
/// BYE overtakes it, and on a loaded machine that took over a second. Waiting costs nothing: an
/// interrupted transfer waits for a resume anyway. A Lyrebird peer's BYE says when it cancels
/// (RFC 3326 Reason, see `CANCELLED_CAUSE`); this grace is for peers whose BYE does not.
const BYE_GRACE: Duration = Duration::from_secs(5);
/// How long a receiver that holds the whole file keeps the session for a sender that has not
/// yet heard so: longer than the sender takes to give a silent session up
/// (`STALL_TIMEOUT` × (`MAX_REWINDS` + 1)) and offer it again.
const LINGER: Duration = Duration::from_secs(15);
/// Space left free on the downloads disk after a received file: a file that would take the
/// last of it is refused, since a full disk breaks everything else (history included).
const FREE_SPACE_KEPT: u64 = 64 * 1024 * 1024;

/// How long an interrupted incoming transfer waits for the sender to offer the rest.
const RESUME_WAIT: Duration = Duration::from_secs(90);
/// File reads, in blocks this big.
const READ_BLOCK: usize = 1 << 20;

/// What a task is started with.
pub(crate) enum TransferSetup {
    Outgoing {
        transfer: TransferId,
        peer: String,
        path: PathBuf,
        file_transfer_id: String,
    },
    Incoming {
        transfer: TransferId,
        peer: String,
        offer: Box<MsrpMedia>,
        folder: PathBuf,
    },
}

pub(crate) use crate::ground::now_ms;

/// A history row for a transfer (the account id is filled in by the history writer).
pub(crate) fn row(
    key: &str,
    direction: TransferDirection,
    peer: &str,
    file_name: &str,
    size: Option<u64>,
    mime_type: Option<String>,
    sha256: Option<String>,
) -> NewTransfer {
    NewTransfer {
        account: lyrebird_store::AccountId(0),
        transfer_key: key.to_owned(),
        direction: match direction {
            TransferDirection::Incoming => Direction::In,
            TransferDirection::Outgoing => Direction::Out,
        },
        peer_address: peer.to_owned(),
        file_name: file_name.to_owned(),
        size_bytes: size,
        mime_type,
        sha256,
        local_path: None,
        state: RowState::Offered,
        bytes_confirmed: 0,
        started_at_ms: now_ms(),
        ended_at_ms: None,
        error: None,
    }
}

/// Runs one transfer to its end.
pub(crate) async fn run(
    context: TaskContext,
    setup: TransferSetup,
    commands: mpsc::Receiver<ToTask>,
) {
    let transfer = match &setup {
        TransferSetup::Outgoing { transfer, .. } | TransferSetup::Incoming { transfer, .. } => {
            *transfer
        }
    };
    let span = tracing::info_span!(
        "transfer",
        account = context.account.0,
        transfer = transfer.0
    );
    let mut task = Task {
        context,
        transfer,
        commands,
        row: None,
        progress: Progress::new(),
        pending_resume: None,
    };
    async move {
        match setup {
            TransferSetup::Outgoing {
                peer,
                path,
                file_transfer_id,
                ..
            } => task.send_file(peer, path, file_transfer_id).await,
            TransferSetup::Incoming {
                peer,
                offer,
                folder,
                ..
            } => task.receive_file(peer, *offer, folder).await,
        }
        task.to_account(FromTask::Finished { transfer }).await;
    }
    .instrument(span)
    .await;
}

/// Why a session ended.
enum SessionEnd {
    Completed,
    CancelledByPeer,
    CancelledLocally,
    Interrupted(String),
    Failed(String),
    /// The peer refused the offer with this status.
    Declined(u16),
}

struct Progress {
    last_emit: Option<Instant>,
    session_start: Instant,
    session_base: u64,
}

impl Progress {
    fn new() -> Self {
        Self {
            last_emit: None,
            session_start: Instant::now(),
            session_base: 0,
        }
    }
    fn new_session(&mut self, from: u64) {
        self.session_start = Instant::now();
        self.session_base = from;
    }
}

struct Task {
    context: TaskContext,
    transfer: TransferId,
    commands: mpsc::Receiver<ToTask>,
    row: Option<NewTransfer>,
    progress: Progress,
    /// A resume offer that arrived while the previous session was still winding down.
    pending_resume: Option<MsrpMedia>,
}

impl Task {
    fn emit(&self, event: EngineEvent) {
        let _ = self
            .context
            .notices
            .send(crate::notice::AccountNotice::Event(event));
    }

    fn state(&mut self, state: TransferState) {
        info!(state = state_name(&state), "transfer state");
        debug!(?state, "transfer state in full");
        if let Some(row) = self.row.as_mut() {
            let (row_state, ended, error) = match &state {
                TransferState::Offering { .. } | TransferState::Offered => {
                    (RowState::Offered, false, None)
                }
                TransferState::Active { .. } | TransferState::Interrupted { .. } => {
                    (RowState::Active, false, None)
                }
                TransferState::Completed { path, .. } => {
                    row.local_path = path.clone().or(row.local_path.take());
                    (RowState::Completed, true, None)
                }
                TransferState::Declined { status } => (
                    RowState::Cancelled,
                    true,
                    Some(format!("declined ({status})")),
                ),
                TransferState::Cancelled { by_peer } => (
                    RowState::Cancelled,
                    true,
                    Some(
                        if *by_peer {
                            "cancelled by the peer"
                        } else {
                            "cancelled"
                        }
                        .to_owned(),
                    ),
                ),
                TransferState::Failed { reason } => (RowState::Failed, true, Some(reason.clone())),
            };
            row.state = row_state;
            row.error = error;
            if ended {
                row.ended_at_ms = Some(now_ms());
            }
            self.context
                .history
                .transfer(self.context.account, row.clone());
        }
        self.emit(EngineEvent::TransferState {
            account: self.context.account,
            transfer: self.transfer,
            state,
        });
    }

    fn set_confirmed(&mut self, bytes: u64) {
        if let Some(row) = self.row.as_mut() {
            row.bytes_confirmed = bytes;
        }
    }

    fn progress(&mut self, bytes: u64, total: u64, force: bool) {
        let now = Instant::now();
        if !force
            && self
                .progress
                .last_emit
                .is_some_and(|last| now - last < PROGRESS_INTERVAL)
        {
            return;
        }
        self.progress.last_emit = Some(now);
        let elapsed = (now - self.progress.session_start).as_secs_f64();
        let moved = bytes.saturating_sub(self.progress.session_base) as f64;
        let rate = if elapsed > 0.0 { moved / elapsed } else { 0.0 };
        let eta_ms =
            (rate > 0.0).then(|| ((total.saturating_sub(bytes)) as f64 / rate * 1000.0) as u64);
        let percent = if total == 0 {
            100.0
        } else {
            (bytes as f64 * 10_000.0 / total as f64).floor() / 100.0
        };
        self.emit(EngineEvent::TransferProgress {
            account: self.context.account,
            transfer: self.transfer,
            bytes,
            total,
            percent,
            rate_bps: rate as u64,
            eta_ms,
        });
    }

    async fn to_account(&self, message: FromTask) {
        let _ = self.context.to_account.send(message).await;
    }

    async fn signal(&self, signal: Signal) {
        self.to_account(FromTask::Signal {
            transfer: self.transfer,
            signal,
        })
        .await;
    }

    async fn bye(&self) {
        self.signal(Signal::End { reason: None }).await;
    }

    /// Ends the SIP session saying the person cancelled the transfer.
    async fn cancelling_bye(&self) {
        let reason = lyrebird_sip::Reason::sip(CANCELLED_CAUSE, "file transfer cancelled");
        self.signal(Signal::End {
            reason: Some(reason),
        })
        .await;
    }

    async fn open_link(&self) -> Result<Link, String> {
        Link::open(&self.context).await
    }
}

// ---- sending ------------------------------------------------------------------------------

/// What the earlier sessions of an outgoing transfer got to.
#[derive(Default)]
struct Offers {
    /// The file was offered (the person has seen "offered").
    made: bool,
    /// The peer accepted an offer: every later offer resumes that transfer.
    accepted: bool,
}

/// Reads the file in blocks off the runtime's threads and serves chunks from the block.
struct BlockReader {
    file: Arc<std::fs::File>,
    block: Vec<u8>,
    block_start: u64,
}

impl BlockReader {
    async fn read(&mut self, offset: u64, len: usize) -> Result<&[u8], String> {
        let block_end = self.block_start + self.block.len() as u64;
        if offset < self.block_start || offset + len as u64 > block_end {
            let file = Arc::clone(&self.file);
            let want = READ_BLOCK.max(len);
            let block = tokio::task::spawn_blocking(move || read_at(&file, offset, want))
                .await
                .map_err(|e| format!("file read task failed: {e}"))?
                .map_err(|e| format!("cannot read the file: {e}"))?;
            self.block = block;
            self.block_start = offset;
        }
        let from = usize::try_from(offset - self.block_start).unwrap_or(usize::MAX);
        self.block
            .get(from..from + len)
            .ok_or_else(|| "the file shrank while being sent".to_owned())
    }
}

fn read_at(file: &std::fs::File, offset: u64, want: usize) -> std::io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0; want];
    let mut filled = 0;
    while filled < want {
        let n = file.read_at(&mut buf[filled..], offset + filled as u64)?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    buf.truncate(filled);
    Ok(buf)
}

fn hash_file(path: &Path) -> std::io::Result<(u64, [u8; 32])> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0; READ_BLOCK];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        hasher.update(&buf[..n]);
    }
    Ok((size, hasher.finalize().into()))
}

fn guess_mime(name: &str) -> &'static str {
    let ext = name
        .rsplit('.')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    match ext.as_str() {
        "txt" => "text/plain",
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "wav" => "audio/wav",
        _ => "application/octet-stream",
    }
}

impl Task {
    async fn send_file(&mut self, peer: String, path: PathBuf, file_transfer_id: String) {
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "file".into());
        let mime = guess_mime(&file_name).to_owned();
        let size_hint = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        self.state(TransferState::Offering {
            peer: peer.clone(),
            file_name: file_name.clone(),
            size: size_hint,
        });
        let hashed = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || hash_file(&path)).await
        };
        let (total, sha256) = match hashed {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => {
                return self.state(TransferState::Failed {
                    reason: format!("cannot read the file: {e}"),
                });
            }
            Err(e) => {
                return self.state(TransferState::Failed {
                    reason: format!("hashing failed: {e}"),
                });
            }
        };
        let file = match std::fs::File::open(&path) {
            Ok(f) => Arc::new(f),
            Err(e) => {
                return self.state(TransferState::Failed {
                    reason: format!("cannot open the file: {e}"),
                });
            }
        };
        let sha_hex = hex::encode(sha256);
        let mut row = row(
            &file_transfer_id,
            TransferDirection::Outgoing,
            &peer,
            &file_name,
            Some(total),
            Some(mime.clone()),
            Some(sha_hex.clone()),
        );
        row.local_path = Some(path.to_string_lossy().into_owned());
        self.row = Some(row);
        let selector = FileSelector {
            name: file_name,
            mime_type: Some(mime.clone()),
            size: Some(total),
            sha256: Some(sha256),
        };
        let message_id = super::relay::random_token(16);
        let mut reader = BlockReader {
            file,
            block: Vec::new(),
            block_start: 0,
        };
        let mut confirmed = 0u64;
        let mut interruptions = 0u32;
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
        let mut offers = Offers::default();
        loop {
            let end = match self.open_link().await {
                Err(reason) if !offers.made => SessionEnd::Failed(reason),
                Err(reason) => SessionEnd::Interrupted(reason),
                Ok(link) => {
                    self.send_session(
                        link,
                        &selector,
                        &file_transfer_id,
                        &message_id,
                        &mime,
                        &mut reader,
                        &mut confirmed,
                        &mut offers,
                    )
                    .await
                }
            };
            self.set_confirmed(confirmed);
            match end {
                SessionEnd::Completed => {
                    self.progress(total, total, true);
                    return self.state(TransferState::Completed {
                        bytes: total,
                        sha256: sha_hex,
                        path: None,
                        duplicate_bytes: 0,
                        out_of_order_writes: 0,
                    });
                }
                SessionEnd::CancelledByPeer => {
                    return self.state(TransferState::Cancelled { by_peer: true });
                }
                SessionEnd::CancelledLocally => {
                    return self.state(TransferState::Cancelled { by_peer: false });
                }
                SessionEnd::Failed(reason) => return self.state(TransferState::Failed { reason }),
                SessionEnd::Declined(status) => {
                    return self.state(TransferState::Declined { status });
                }
                SessionEnd::Interrupted(reason) => {
                    interruptions += 1;
                    if interruptions > self.context.config.max_resumes {
                        return self.state(TransferState::Failed {
                            reason: format!(
                                "gave up after {interruptions} interruptions: {reason}"
                            ),
                        });
                    }
                    self.state(TransferState::Interrupted { reason, confirmed });
                    let (delay, _) = backoff.next_delay();
                    // A cancel while waiting to resume is still a cancel.
                    let wait = tokio::time::sleep(delay);
                    tokio::pin!(wait);
                    loop {
                        tokio::select! {
                            () = &mut wait => break,
                            command = self.commands.recv() => match command {
                                Some(ToTask::Cancel) | None => {
                                    return self.state(TransferState::Cancelled { by_peer: false });
                                }
                                Some(_) => {}
                            },
                        }
                    }
                }
            }
        }
    }

    /// One SIP session + MSRP session: offer, wait for the answer, send until done or broken.
    #[allow(clippy::too_many_arguments)]
    async fn send_session(
        &mut self,
        mut link: Link,
        selector: &FileSelector,
        file_transfer_id: &str,
        message_id: &str,
        mime: &str,
        reader: &mut BlockReader,
        confirmed: &mut u64,
        offers: &mut Offers,
    ) -> SessionEnd {
        let total = selector.size.unwrap_or(0);
        let mut path = link.use_path.clone();
        path.push(link.local.clone());
        let media = MsrpMedia {
            protocol: "TCP/WS/MSRP".into(),
            path,
            accept_types: vec![mime.to_owned()],
            accept_wrapped_types: Vec::new(),
            direction: lyrebird_msrp::Direction::SendOnly,
            file_selector: Some(selector.clone()),
            file_transfer_id: Some(file_transfer_id.to_owned()),
            file_disposition: Some("attachment".into()),
            file_date: None,
            // Every offer after the first is a resume (RFC 5547 §9), even when nothing was
            // confirmed: the range ties it to the receiver's transfer instead of a new one.
            file_range: offers.accepted.then_some((*confirmed + 1, Some(total))),
            max_size: None,
        };
        self.signal(Signal::Offer {
            sdp: media.to_sdp(rand::random::<u32>().into(), 1),
        })
        .await;
        if !offers.made {
            offers.made = true;
            self.state(TransferState::Offered);
        }
        // Wait for the answer, keeping the relay connection serviced.
        let answer = loop {
            tokio::select! {
                command = self.commands.recv() => match command {
                    Some(ToTask::Answered { sdp }) => break sdp,
                    Some(ToTask::OfferRefused { status, reason }) => {
                        link.conn.close().await;
                        return match status {
                            // A resume that cannot reach the receiver yet: our own SIP flow
                            // is still down (0: not sent), the receiver's phone has not
                            // registered again after a restart of the server (the proxy
                            // answers 480), or the offer timed out. Nobody cancelled anything,
                            // so it is retried like any other interruption.
                            0 | 408 | 480 | 503 if offers.accepted => SessionEnd::Interrupted(
                                format!("the receiver cannot take the rest yet: {status} {reason}"),
                            ),
                            480 | 486 | 600 | 603 if *confirmed == 0 => SessionEnd::Declined(status),
                            480 | 486 | 600 | 603 => SessionEnd::CancelledByPeer,
                            487 => SessionEnd::CancelledLocally,
                            _ => SessionEnd::Failed(format!("the offer failed: {status} {reason}")),
                        };
                    }
                    Some(ToTask::SessionEnded | ToTask::PeerCancelled) => {
                        link.conn.close().await;
                        return SessionEnd::CancelledByPeer;
                    }
                    Some(ToTask::Cancel) | None => {
                        self.cancelling_bye().await;
                        link.conn.close().await;
                        return SessionEnd::CancelledLocally;
                    }
                    Some(_) => {}
                },
                incoming = link.conn.recv() => match incoming {
                    Ok(Some(Incoming::Message(frame))) => {
                        let _ = link.accept(&frame).await;
                    }
                    Ok(Some(Incoming::Alive)) => {}
                    Ok(None) | Err(_) => {
                        self.bye().await;
                        return SessionEnd::Interrupted("the relay connection dropped before the answer".into());
                    }
                },
            }
        };
        let peer = match MsrpMedia::parse(&answer) {
            Ok(peer) => peer,
            Err(e) => {
                self.bye().await;
                link.conn.close().await;
                return SessionEnd::Failed(format!("the peer's answer is unusable: {e}"));
            }
        };
        offers.accepted = true;
        let mut to_path = link.use_path.clone();
        to_path.extend(peer.path.iter().cloned());
        let sender = FileSender::new(SenderConfig {
            local: link.local.clone(),
            to_path,
            message_id: message_id.to_owned(),
            content_type: mime.to_owned(),
            total,
            resume_from: *confirmed,
            chunk_size: self.context.config.chunk_size,
            window: self
                .context
                .config
                .window_bytes
                .max(self.context.config.chunk_size as u64),
            rng_seed: rand::random(),
        });
        let mut sender = match sender {
            Ok(s) => s,
            Err(e) => {
                self.bye().await;
                return SessionEnd::Failed(e.to_string());
            }
        };
        self.progress.new_session(*confirmed);
        self.state(TransferState::Active {
            from_byte: *confirmed,
        });
        let end = self
            .pump_sender(&mut link, &mut sender, reader, confirmed)
            .await;
        match end {
            SessionEnd::Completed
            | SessionEnd::Interrupted(_)
            | SessionEnd::Failed(_)
            | SessionEnd::Declined(_) => self.bye().await,
            SessionEnd::CancelledLocally => {
                if let Some(abort) = sender.abort(Instant::now().into_std()) {
                    let _ = link.conn.send(abort).await;
                }
                self.cancelling_bye().await;
            }
            SessionEnd::CancelledByPeer => self.bye().await,
        }
        link.conn.close().await;
        end
    }

    async fn pump_sender(
        &mut self,
        link: &mut Link,
        sender: &mut FileSender,
        reader: &mut BlockReader,
        confirmed: &mut u64,
    ) -> SessionEnd {
        let total = sender.total();
        let mut last_confirmation = Instant::now();
        let mut peer_ended_at: Option<Instant> = None;
        let mut rewinds = 0u32;
        loop {
            while let Some(event) = sender.poll_event() {
                match event {
                    SenderEvent::Confirmed { bytes } => {
                        rewinds = 0;
                        *confirmed = bytes;
                        last_confirmation = Instant::now();
                        self.set_confirmed(bytes);
                        self.progress(bytes, total, bytes == total);
                    }
                    SenderEvent::Completed => return SessionEnd::Completed,
                    SenderEvent::Failed(MsrpError::Refused { status: 413, .. }) => {
                        return SessionEnd::CancelledByPeer;
                    }
                    SenderEvent::Failed(
                        e @ (MsrpError::Timeout { .. }
                        | MsrpError::Refused {
                            status: 408 | 481 | 503,
                            ..
                        }),
                    ) => return SessionEnd::Interrupted(e.to_string()),
                    SenderEvent::Failed(e) => return SessionEnd::Failed(e.to_string()),
                }
            }
            let deadlines = [
                sender.poll_timeout().map(Instant::from_std),
                link.auth.poll_timeout().map(Instant::from_std),
                (sender.sent() > *confirmed).then_some(last_confirmation + STALL_TIMEOUT),
                peer_ended_at.map(|at| at + BYE_GRACE),
            ];
            let deadline = deadlines.into_iter().flatten().min();
            let can_send = peer_ended_at.is_none() && sender.next_chunk().is_some();
            tokio::select! {
                biased;
                command = self.commands.recv() => match command {
                    Some(ToTask::Cancel) | None => return SessionEnd::CancelledLocally,
                    Some(ToTask::PeerCancelled) => return SessionEnd::CancelledByPeer,
                    Some(ToTask::SessionEnded) => {
                        // Read what is still in flight (a 413 REPORT means a cancel).
                        peer_ended_at.get_or_insert_with(Instant::now);
                    }
                    Some(_) => {}
                },
                incoming = link.conn.recv() => match incoming {
                    Ok(Some(Incoming::Message(frame))) => match link.accept(&frame).await {
                        Ok(Some(message)) => {
                            if !sender.handle_message(&message) {
                                debug!("MSRP message for no one here ignored");
                            }
                        }
                        Ok(None) => {}
                        Err(reason) => return SessionEnd::Interrupted(reason),
                    },
                    Ok(Some(Incoming::Alive)) => {}
                    Ok(None) => return SessionEnd::Interrupted("the relay closed the connection".into()),
                    Err(e) => return SessionEnd::Interrupted(e.to_string()),
                },
                () = sleep_until_opt(deadline) => {
                    let now = Instant::now();
                    if peer_ended_at.is_some_and(|at| now >= at + BYE_GRACE) {
                        return SessionEnd::Interrupted("the peer ended the session".into());
                    }
                    if sender.sent() > *confirmed && now >= last_confirmation + STALL_TIMEOUT {
                        rewinds += 1;
                        if rewinds > MAX_REWINDS {
                            return SessionEnd::Interrupted(
                                "no confirmation from the peer in time".into(),
                            );
                        }
                        warn!(confirmed = *confirmed, "no confirmation: sending again from the last confirmed byte");
                        sender.rewind();
                        last_confirmation = now;
                    }
                    sender.handle_timeout(now.into_std());
                    if let Err(reason) = link.renew_auth(now).await {
                        return SessionEnd::Interrupted(reason);
                    }
                }
                () = std::future::ready(()), if can_send => {
                    let Some(plan) = sender.next_chunk() else { continue };
                    let data = match reader.read(plan.offset, plan.len).await {
                        Ok(data) => data,
                        Err(reason) => return SessionEnd::Failed(reason),
                    };
                    let frame = match sender.encode_chunk(Instant::now().into_std(), data) {
                        Ok(frame) => frame,
                        Err(e) => return SessionEnd::Failed(e.to_string()),
                    };
                    if let Err(e) = link.conn.send(frame).await {
                        return SessionEnd::Interrupted(e.to_string());
                    }
                }
            }
        }
    }
}

// ---- receiving ----------------------------------------------------------------------------

/// A finished session still open for the sender (see `Task::linger`).
struct Lingering {
    link: Link,
    receiver: FileReceiver,
}

struct Partial {
    total: u64,
    have: u64,
    hasher: Sha256,
    writer: tokio::io::BufWriter<tokio::fs::File>,
    part: PathBuf,
    duplicate_bytes: u64,
    out_of_order_writes: u64,
    /// Message-ID and From-Path of the last SEND, to address a cancel REPORT.
    last_send: Option<(String, String)>,
}

impl Task {
    async fn receive_file(&mut self, peer: String, mut offer: MsrpMedia, folder: PathBuf) {
        let Some(selector) = offer.file_selector.clone() else {
            self.bye().await;
            return self.state(TransferState::Failed {
                reason: "the offer has no file selector".into(),
            });
        };
        let key = offer
            .file_transfer_id
            .clone()
            .unwrap_or_else(|| super::relay::random_token(16));
        self.row = Some(row(
            &key,
            TransferDirection::Incoming,
            &peer,
            &selector.name,
            selector.size,
            selector.mime_type.clone(),
            selector.sha256.map(hex::encode),
        ));
        let Some(total) = selector.size else {
            self.bye().await;
            return self.state(TransferState::Failed {
                reason: "the offer does not say how big the file is".into(),
            });
        };
        let name = safe_file_name(&selector.name);
        // A declared size the disk cannot hold fails now, with the figures, rather than
        // after filling the disk.
        if let Some(free) = free_space(&folder)
            && free < total.saturating_add(FREE_SPACE_KEPT)
        {
            self.bye().await;
            return self.state(TransferState::Failed {
                reason: format!(
                    "the file is {} MB and only {} MB is free in {}",
                    total.div_ceil(1_000_000),
                    free / 1_000_000,
                    folder.display()
                ),
            });
        }
        // Only now, after acceptance, does anything touch the disk.
        let (part, file) = match create_partial(&folder, &name) {
            Ok(v) => v,
            Err(e) => {
                self.bye().await;
                return self.state(TransferState::Failed {
                    reason: format!("cannot create a file in {}: {e}", folder.display()),
                });
            }
        };
        if let Some(row) = self.row.as_mut() {
            row.local_path = Some(part.to_string_lossy().into_owned());
        }
        let mut rx = Partial {
            total,
            have: 0,
            hasher: Sha256::new(),
            writer: tokio::io::BufWriter::with_capacity(1 << 20, tokio::fs::File::from_std(file)),
            part,
            duplicate_bytes: 0,
            out_of_order_writes: 0,
            last_send: None,
        };
        let mut first = true;
        loop {
            let (end, lingering) = match self.open_link().await {
                Err(reason) if first => (SessionEnd::Failed(reason), None),
                Err(reason) => (SessionEnd::Interrupted(reason), None),
                Ok(link) => self.receive_session(link, &offer, &mut rx).await,
            };
            first = false;
            self.set_confirmed(rx.have);
            let _ = rx.writer.flush().await;
            match end {
                SessionEnd::Completed => {
                    let total = rx.total;
                    let completed = self.finish_incoming(rx, &folder, &name, &selector).await;
                    match lingering {
                        Some(lingering) if completed => self.linger(lingering, total).await,
                        Some(lingering) => {
                            self.bye().await;
                            lingering.link.conn.close().await;
                        }
                        None => {}
                    }
                    return;
                }
                SessionEnd::CancelledByPeer | SessionEnd::CancelledLocally => {
                    drop(rx.writer);
                    let _ = tokio::fs::remove_file(&rx.part).await;
                    let by_peer = matches!(end, SessionEnd::CancelledByPeer);
                    return self.state(TransferState::Cancelled { by_peer });
                }
                SessionEnd::Declined(status) => {
                    drop(rx.writer);
                    let _ = tokio::fs::remove_file(&rx.part).await;
                    return self.state(TransferState::Declined { status });
                }
                SessionEnd::Failed(reason) => {
                    drop(rx.writer);
                    let _ = tokio::fs::remove_file(&rx.part).await;
                    return self.state(TransferState::Failed { reason });
                }
                SessionEnd::Interrupted(reason) => {
                    self.state(TransferState::Interrupted {
                        reason,
                        confirmed: rx.have,
                    });
                    // Wait for the sender to offer the rest (RFC 5547 §9).
                    let deadline = Instant::now() + RESUME_WAIT;
                    let resumed = if let Some(offer) = self.pending_resume.take() {
                        Some(offer)
                    } else {
                        loop {
                            tokio::select! {
                                command = self.commands.recv() => match command {
                                    Some(ToTask::Resume { offer }) => break Some(*offer),
                                    Some(cancel @ (ToTask::Cancel | ToTask::PeerCancelled)) => {
                                        drop(rx.writer);
                                        let _ = tokio::fs::remove_file(&rx.part).await;
                                        let by_peer = matches!(cancel, ToTask::PeerCancelled);
                                        return self.state(TransferState::Cancelled { by_peer });
                                    }
                                    None => break None,
                                    Some(_) => {}
                                },
                                () = tokio::time::sleep_until(deadline) => break None,
                            }
                        }
                    };
                    match resumed {
                        Some(next)
                            if next
                                .file_range
                                .is_some_and(|(first, _)| first <= rx.have + 1) =>
                        {
                            offer = next;
                        }
                        Some(_) => {
                            self.bye().await;
                            drop(rx.writer);
                            let _ = tokio::fs::remove_file(&rx.part).await;
                            return self.state(TransferState::Failed {
                                reason: "the resumed offer skips bytes we do not have".into(),
                            });
                        }
                        None => {
                            drop(rx.writer);
                            let _ = tokio::fs::remove_file(&rx.part).await;
                            return self.state(TransferState::Failed {
                                reason: "interrupted and not resumed".into(),
                            });
                        }
                    }
                }
            }
        }
    }

    /// Verifies and publishes the received file; `true` when it is complete.
    async fn finish_incoming(
        &mut self,
        rx: Partial,
        folder: &Path,
        name: &str,
        selector: &FileSelector,
    ) -> bool {
        let Partial {
            writer,
            hasher,
            part,
            have,
            duplicate_bytes,
            out_of_order_writes,
            ..
        } = rx;
        let mut file = writer.into_inner();
        let _ = file.flush().await;
        let _ = file.sync_all().await;
        drop(file);
        let digest: [u8; 32] = hasher.finalize().into();
        if let Some(expected) = selector.sha256
            && expected != digest
        {
            let _ = tokio::fs::remove_file(&part).await;
            self.state(TransferState::Failed {
                reason: format!(
                    "SHA-256 mismatch: offered {}, received {}",
                    hex::encode(expected),
                    hex::encode(digest)
                ),
            });
            return false;
        }
        match publish(&part, folder, name) {
            Ok(path) => {
                let path = path.to_string_lossy().into_owned();
                if let Some(row) = self.row.as_mut() {
                    row.sha256 = Some(hex::encode(digest));
                }
                self.progress(have, have, true);
                self.state(TransferState::Completed {
                    bytes: have,
                    sha256: hex::encode(digest),
                    path: Some(path),
                    duplicate_bytes,
                    out_of_order_writes,
                });
                true
            }
            Err(e) => {
                let _ = tokio::fs::remove_file(&part).await;
                self.state(TransferState::Failed {
                    reason: format!("cannot store the received file: {e}"),
                });
                false
            }
        }
    }

    /// Answers `offer` on `link` (RFC 5547: recvonly, our path behind the relay's) and makes
    /// the receiver core for the bytes after the first `have`.
    async fn answer(
        &mut self,
        link: &Link,
        offer: &MsrpMedia,
        total: u64,
        have: u64,
    ) -> Result<FileReceiver, String> {
        let mut path = link.use_path.clone();
        path.push(link.local.clone());
        let answer = MsrpMedia {
            protocol: offer.protocol.clone(),
            path,
            accept_types: offer.accept_types.clone(),
            accept_wrapped_types: Vec::new(),
            direction: lyrebird_msrp::Direction::RecvOnly,
            file_selector: offer.file_selector.clone(),
            file_transfer_id: offer.file_transfer_id.clone(),
            file_disposition: offer.file_disposition.clone(),
            file_date: offer.file_date.clone(),
            file_range: offer.file_range,
            max_size: None,
        };
        self.signal(Signal::Answer {
            sdp: answer.to_sdp(rand::random::<u32>().into(), 1),
        })
        .await;
        FileReceiver::new(ReceiverConfig {
            local: link.local.clone(),
            total,
            already_have: have,
            report_every: REPORT_EVERY,
            rng_seed: rand::random(),
            // The sender never has more than its window unconfirmed; allow for a larger one.
            max_reorder_bytes: 4 * self.context.config.window_bytes.max(1 << 20),
        })
        .map_err(|e| e.to_string())
    }

    /// One session of an incoming transfer. A completed session is handed back still open,
    /// for `linger`.
    async fn receive_session(
        &mut self,
        mut link: Link,
        offer: &MsrpMedia,
        rx: &mut Partial,
    ) -> (SessionEnd, Option<Lingering>) {
        let mut receiver = match self.answer(&link, offer, rx.total, rx.have).await {
            Ok(r) => r,
            Err(e) => {
                self.bye().await;
                link.conn.close().await;
                return (SessionEnd::Failed(e), None);
            }
        };
        self.progress.new_session(rx.have);
        self.state(TransferState::Active { from_byte: rx.have });
        let end = self.pump_receiver(&mut link, &mut receiver, rx).await;
        match end {
            SessionEnd::Completed => return (end, Some(Lingering { link, receiver })),
            SessionEnd::CancelledLocally => {
                // RFC 4975 §10: 413 asks the sender to stop sending this message.
                if let Some((message_id, from_path)) = &rx.last_send {
                    let report = Message::request(super::relay::random_token(12), Method::Report)
                        .with_header("To-Path", from_path.clone())
                        .with_header("From-Path", link.local.to_string())
                        .with_header("Message-ID", message_id.clone())
                        .with_header("Byte-Range", format!("1-{}/{}", rx.have, rx.total))
                        .with_header("Status", "000 413 Stop sending");
                    let _ = link.conn.send(report.encode()).await;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                self.cancelling_bye().await;
            }
            // A resume offer already arrived: its session is the live one now.
            SessionEnd::Interrupted(_) if self.pending_resume.is_some() => {}
            SessionEnd::Interrupted(_)
            | SessionEnd::Failed(_)
            | SessionEnd::Declined(_)
            | SessionEnd::CancelledByPeer => self.bye().await,
        }
        link.conn.close().await;
        (end, None)
    }

    /// Keeps a finished transfer's session for the sender, which counts the file as delivered
    /// only when a Success-Report covers its last byte (RFC 4975 §7.1.2). If that report was
    /// lost, the sender sends the tail again (answered by the receiver core with a report for
    /// the whole file), or gives the session up and offers the rest in a new one (answered and
    /// confirmed the same way). Nothing is written. Ends at the sender's BYE (unless a resume
    /// follows it at once) or after `LINGER`.
    async fn linger(&mut self, lingering: Lingering, total: u64) {
        /// A resume comes this soon after the BYE of a session the sender gave up.
        const RESUME_AFTER_BYE: Duration = Duration::from_secs(3);
        let mut lingering = Some(lingering);
        let mut session_open = true;
        let mut deadline = Instant::now() + LINGER;
        loop {
            let incoming = async {
                match lingering.as_mut() {
                    Some(l) => l.link.conn.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                command = self.commands.recv() => match command {
                    Some(ToTask::SessionEnded | ToTask::PeerCancelled) => {
                        session_open = false;
                        deadline = deadline.min(Instant::now() + RESUME_AFTER_BYE);
                    }
                    Some(ToTask::Resume { offer }) => {
                        info!("the sender did not hear that the file arrived and offers it again");
                        if let Some(old) = lingering.take() {
                            old.link.conn.close().await;
                        }
                        let link = match self.open_link().await {
                            Ok(link) => link,
                            Err(reason) => {
                                warn!(%reason, "cannot confirm the finished file to its sender");
                                break;
                            }
                        };
                        match self.answer(&link, &offer, total, total).await {
                            Ok(receiver) => lingering = Some(Lingering { link, receiver }),
                            Err(reason) => {
                                warn!(%reason, "cannot confirm the finished file to its sender");
                                break;
                            }
                        }
                        session_open = true;
                        deadline = Instant::now() + LINGER;
                    }
                    Some(ToTask::Cancel) | None => break,
                    Some(_) => {}
                },
                incoming = incoming => match incoming {
                    Ok(Some(Incoming::Message(frame))) => {
                        let Some(l) = lingering.as_mut() else { continue };
                        let Ok(Some(message)) = l.link.accept(&frame).await else {
                            continue;
                        };
                        l.receiver.handle_message(message);
                        while let Some(frame) = l.receiver.poll_transmit() {
                            if l.link.conn.send(frame).await.is_err() {
                                break;
                            }
                        }
                        while l.receiver.poll_event().is_some() {}
                    }
                    Ok(Some(Incoming::Alive)) => {}
                    // The relay connection is gone; a resume may still come.
                    Ok(None) | Err(_) => lingering = None,
                },
                () = tokio::time::sleep_until(deadline) => break,
            }
        }
        if session_open {
            self.bye().await;
        }
        if let Some(l) = lingering {
            l.link.conn.close().await;
        }
    }

    async fn pump_receiver(
        &mut self,
        link: &mut Link,
        receiver: &mut FileReceiver,
        rx: &mut Partial,
    ) -> SessionEnd {
        let mut peer_ended_at: Option<Instant> = None;
        loop {
            let deadline = [
                link.auth.poll_timeout().map(Instant::from_std),
                peer_ended_at.map(|at| at + BYE_GRACE),
            ]
            .into_iter()
            .flatten()
            .min();
            tokio::select! {
                biased;
                command = self.commands.recv() => match command {
                    Some(ToTask::Cancel) | None => return SessionEnd::CancelledLocally,
                    Some(ToTask::PeerCancelled) => return SessionEnd::CancelledByPeer,
                    Some(ToTask::SessionEnded) => {
                        peer_ended_at.get_or_insert_with(Instant::now);
                    }
                    Some(ToTask::Resume { offer }) => {
                        // The sender already offers the rest: this session is over.
                        self.pending_resume = Some(*offer);
                        rx.duplicate_bytes += receiver.duplicate_bytes();
                        return SessionEnd::Interrupted("the sender started a new session".into());
                    }
                    Some(_) => {}
                },
                incoming = link.conn.recv() => match incoming {
                    Ok(Some(Incoming::Message(frame))) => {
                        let message = match link.accept(&frame).await {
                            Ok(Some(message)) => message,
                            Ok(None) => continue,
                            Err(reason) => return SessionEnd::Interrupted(reason),
                        };
                        if message.method() == Some(&Method::Send)
                            && let (Some(id), Some(from)) = (message.message_id(), message.header("From-Path"))
                        {
                            rx.last_send = Some((id.to_owned(), from.to_owned()));
                        }
                        receiver.handle_message(message);
                        while let Some(frame) = receiver.poll_transmit() {
                            if let Err(e) = link.conn.send(frame).await {
                                return SessionEnd::Interrupted(e.to_string());
                            }
                        }
                        while let Some(event) = receiver.poll_event() {
                            match event {
                                ReceiverEvent::Write { offset, data } => {
                                    if offset != rx.have {
                                        rx.out_of_order_writes += 1;
                                    }
                                    rx.hasher.update(&data);
                                    if let Err(e) = rx.writer.write_all(&data).await {
                                        return SessionEnd::Failed(format!("cannot write the file: {e}"));
                                    }
                                    rx.have = offset + data.len() as u64;
                                    let (have, total) = (rx.have, rx.total);
                                    self.set_confirmed(have);
                                    self.progress(have, total, false);
                                }
                                ReceiverEvent::Complete => {
                                    info!(
                                        reordered_chunks = receiver.reordered_chunks(),
                                        duplicate_bytes = receiver.duplicate_bytes(),
                                        "all bytes received"
                                    );
                                    rx.duplicate_bytes += receiver.duplicate_bytes();
                                    return SessionEnd::Completed;
                                }
                                ReceiverEvent::Aborted => return SessionEnd::CancelledByPeer,
                                ReceiverEvent::Text { content_type, .. } => {
                                    debug!(%content_type, "text message inside a file session ignored");
                                }
                                ReceiverEvent::Refused(e) => warn!(error = %e, "MSRP chunk refused"),
                            }
                        }
                    }
                    Ok(Some(Incoming::Alive)) => {}
                    Ok(None) => return self.receiver_lost(receiver, rx, "the relay closed the connection"),
                    Err(e) => return self.receiver_lost(receiver, rx, &e.to_string()),
                },
                () = sleep_until_opt(deadline) => {
                    let now = Instant::now();
                    if peer_ended_at.is_some_and(|at| now >= at + BYE_GRACE) {
                        rx.duplicate_bytes += receiver.duplicate_bytes();
                        return SessionEnd::Interrupted("the sender ended the session early".into());
                    }
                    if let Err(reason) = link.renew_auth(now).await {
                        return SessionEnd::Interrupted(reason);
                    }
                }
            }
        }
    }

    fn receiver_lost(&self, receiver: &FileReceiver, rx: &mut Partial, reason: &str) -> SessionEnd {
        rx.duplicate_bytes += receiver.duplicate_bytes();
        SessionEnd::Interrupted(reason.to_owned())
    }
}

fn state_name(state: &TransferState) -> &'static str {
    match state {
        TransferState::Offering { .. } => "offering",
        TransferState::Offered => "offered",
        TransferState::Active { .. } => "active",
        TransferState::Interrupted { .. } => "interrupted",
        TransferState::Completed { .. } => "completed",
        TransferState::Declined { .. } => "declined",
        TransferState::Cancelled { .. } => "cancelled",
        TransferState::Failed { .. } => "failed",
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
