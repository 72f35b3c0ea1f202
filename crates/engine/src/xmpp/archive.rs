//! Archive catch-up (XEP-0313): what the server kept while we were away, for our own archive
//! and for each room we are in (§6.1.2).
//!
//! Each archive has a *sync point* in history (`archive_sync`): the archive id of the last
//! item of the last page stored. A catch-up resumes just after it (RSM `<after>`), and every
//! page's messages are written in one transaction together with the new sync point, so the
//! point can never get ahead of what is stored: a quit, a `kill -9` or a lost connection in
//! the middle of a catch-up leaves a point from which the next one fetches the rest. Live
//! messages never move it — a message that arrived live says nothing about the older ones
//! still in the archive. The price is that what arrived live since the last catch-up is
//! fetched once more at the next login, and dropped there as a duplicate (the store
//! de-duplicates by stable id per conversation).
//!
//! When the server no longer has the item we stopped at (expired, archive reset) it answers
//! `item-not-found`, and the catch-up starts again by date, a little before the newest message
//! it had stored, so clock skew cannot skip anything.
//!
//! Pages are written by their own task, so fetching the next page overlaps with storing this
//! one; archived messages are shown only once stored, and only those that were new.
//!
//! After a login our own archive is read once more, [`SECOND_LOOK_AFTER`] after going online.
//! A session has no presence for a moment at every login (between binding and the available
//! presence, or between the unavailable and available presence of a session taken over from
//! an earlier run). A message a server routes in that moment goes to its offline store, not to
//! us, and is archived by the sender's side of the server; ejabberd does both in the sender's
//! process, which can finish after our first catch-up query has already run. Such a message
//! reaches us only at the next login — unless the archive is read again once the server has
//! surely finished with it. The second look starts from the same sync point, so it also
//! fetches what arrived live meanwhile, dropped as duplicates.

use std::collections::HashMap;
use std::time::Duration;

use lyrebird_xmpp::{ArchiveStart, ChatMessage};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use lyrebird_xmpp::Client;

use super::store::{self, SyncPoint, chat_event};
use crate::event::EngineEvent;
use crate::ground::AccountId;
use crate::history::History;
use crate::notice::AccountNotice;

/// A catch-up by date starts this long before the newest message stored from that archive,
/// so clock skew between us and the server cannot skip a message; the overlap is
/// de-duplicated by stable id.
const ARCHIVE_OVERLAP_MS: i64 = 5 * 60 * 1000;

/// How long after going online our archive is read again (see the module's documentation). A
/// message routed in the presence gap is stored within milliseconds; seconds leave a margin
/// for a loaded server.
const SECOND_LOOK_AFTER: Duration = Duration::from_secs(2);

/// Conditions with which a room says it keeps no archive; not worth a warning.
const NO_ROOM_ARCHIVE: [&str; 2] = ["feature-not-implemented", "service-unavailable"];

/// One catch-up in progress.
pub(super) struct ArchiveFetch {
    /// `None`: the account's own archive; else the room's bare JID.
    room: Option<String>,
    start: ArchiveStart,
    /// The newest message time of the sync point it started from, for a restart by date.
    resume_at_ms: Option<i64>,
    /// Messages of the page being received, not yet handed to the writer.
    page: Vec<ChatMessage>,
    /// The newest message time seen in this page.
    page_newest_ms: Option<i64>,
    /// Archived messages stored that were new.
    new: u64,
    started: Instant,
}

/// The catch-ups of one account, by query id, and the writer task's channels.
pub(super) struct CatchUp {
    account: AccountId,
    page_size: u32,
    notices: mpsc::UnboundedSender<AccountNotice>,
    fetches: HashMap<String, ArchiveFetch>,
    /// Pages to write, in order, by the writer task (so fetching the next page overlaps with
    /// storing this one).
    jobs: mpsc::UnboundedSender<ArchiveJob>,
    /// The writer's ends until it is started.
    writer: Option<(
        mpsc::UnboundedReceiver<ArchiveJob>,
        mpsc::UnboundedSender<ArchiveWritten>,
    )>,
    written: mpsc::UnboundedReceiver<ArchiveWritten>,
    /// When the session we are on went online, until the catch-up of our archive that
    /// followed it is over.
    login_at: Option<Instant>,
    /// When our archive is to be read once more after that catch-up.
    second_look_at: Option<Instant>,
}

/// Messages to store, and the sync point they reach (for a page's last batch).
struct ArchiveJob {
    query: String,
    messages: Vec<ChatMessage>,
    sync: Option<SyncPoint>,
    /// The query is over: how many messages it fetched.
    done: Option<u64>,
    room: Option<String>,
}

/// A stored batch: which of its messages were new.
pub(super) struct ArchiveWritten {
    query: String,
    messages: Vec<ChatMessage>,
    new_flags: Vec<bool>,
    done: Option<u64>,
    room: Option<String>,
}

/// The key of an archive in the `archive_sync` table.
fn archive_key(room: Option<&str>) -> String {
    room.unwrap_or_default().to_owned()
}

impl CatchUp {
    /// `page_size` is the RSM page size asked of the server.
    pub(super) fn new(
        account: AccountId,
        page_size: u32,
        notices: mpsc::UnboundedSender<AccountNotice>,
    ) -> Self {
        let (jobs, jobs_rx) = mpsc::unbounded_channel();
        let (written_tx, written) = mpsc::unbounded_channel();
        Self {
            account,
            page_size,
            notices,
            fetches: HashMap::new(),
            jobs,
            writer: Some((jobs_rx, written_tx)),
            written,
            login_at: None,
            second_look_at: None,
        }
    }

    /// Starts the task that stores pages (once, from within the account's task).
    pub(super) fn start_writer(&mut self, history: History) {
        if let Some((jobs, written)) = self.writer.take() {
            tokio::spawn(write_archive_pages(self.account, history, jobs, written));
        }
    }

    /// The next batch the writer has stored (for the account's `select!`).
    pub(super) async fn next_written(&mut self) -> Option<ArchiveWritten> {
        self.written.recv().await
    }

    fn emit(&self, event: EngineEvent) {
        let _ = self.notices.send(AccountNotice::Event(event));
    }

    fn warn(&self, detail: String) {
        self.emit(EngineEvent::Warning {
            account: Some(self.account),
            detail,
        });
    }

    /// A new session is online (not a resumed one): catches up on our archive now, and once
    /// more a moment later if that ends quickly (see the module's documentation).
    pub(super) async fn on_login(&mut self, client: &mut Client, history: &History) {
        self.login_at = Some(Instant::now());
        self.second_look_at = None;
        self.start_catch_up(client, history, None).await;
    }

    /// When our archive is to be read once more after a login, if it is.
    pub(super) fn second_look_at(&self) -> Option<Instant> {
        self.second_look_at
    }

    /// The time for [`Self::second_look_at`] has come.
    pub(super) async fn take_second_look(&mut self, client: &mut Client, history: &History) {
        self.second_look_at = None;
        self.start_catch_up(client, history, None).await;
    }

    /// Starts catching up on our archive (`room` = `None`) or a room's, from its sync point.
    pub(super) async fn start_catch_up(
        &mut self,
        client: &mut Client,
        history: &History,
        room: Option<String>,
    ) {
        let account = self.account;
        let key = archive_key(room.as_deref());
        let sync = history
            .query_writer(move |w| store::archive_sync(w, account, &key))
            .await;
        let (start, resume_at_ms) = match sync {
            Ok(Some(sync)) => (ArchiveStart::After(sync.last_id), sync.last_at_ms),
            Ok(None) => (ArchiveStart::Beginning, None),
            Err(e) => {
                // Without the point, fetching everything is slow but loses nothing.
                warn!(error = %e, "archive sync point not readable; fetching the whole archive");
                (ArchiveStart::Beginning, None)
            }
        };
        // A catch-up of the same archive from an earlier stream can never finish now.
        self.fetches.retain(|_, fetch| fetch.room != room);
        self.begin_fetch(client, room, start, resume_at_ms);
    }

    fn begin_fetch(
        &mut self,
        client: &mut Client,
        room: Option<String>,
        start: ArchiveStart,
        resume_at_ms: Option<i64>,
    ) {
        debug!(?room, ?start, "archive catch-up");
        let now = Instant::now().into_std();
        match client.mam_catch_up(now, room.as_deref(), start.clone()) {
            Ok(query) => {
                self.fetches.insert(
                    query,
                    ArchiveFetch {
                        room,
                        start,
                        resume_at_ms,
                        page: Vec::new(),
                        page_newest_ms: None,
                        new: 0,
                        started: Instant::now(),
                    },
                );
            }
            Err(e) => self.warn(format!("archive catch-up not started: {e}")),
        }
    }

    /// An archived message of query `query`: kept until its page is over.
    pub(super) fn on_message(&mut self, query: &str, message: ChatMessage) {
        // A page bigger than we asked for (a careless server) is stored in parts, without
        // moving the sync point until its end, so memory stays bounded.
        let limit = 4 * self.page_size.max(1) as usize;
        let Some(fetch) = self.fetches.get_mut(query) else {
            return;
        };
        if let Some(at) = message.sent_at_ms {
            fetch.page_newest_ms = Some(fetch.page_newest_ms.map_or(at, |n| n.max(at)));
        }
        fetch.page.push(message);
        if fetch.page.len() >= limit {
            self.store_batch(query, None, None);
        }
    }

    /// A page of `query` is over: its messages and the point it reaches are stored together.
    pub(super) fn on_page(
        &mut self,
        query: &str,
        last: Option<String>,
        complete: bool,
        fetched: u64,
    ) {
        let Some(fetch) = self.fetches.get_mut(query) else {
            return;
        };
        let sync = last.map(|last_id| SyncPoint {
            archive: archive_key(fetch.room.as_deref()),
            last_id,
            last_at_ms: fetch.page_newest_ms.take(),
            complete,
        });
        self.store_batch(query, sync, complete.then_some(fetched));
    }

    /// A query failed: what it gathered is stored (without moving its sync point); a point
    /// the server has forgotten restarts the catch-up by date.
    pub(super) fn on_failed(&mut self, client: &mut Client, query: &str, condition: String) {
        self.store_batch(query, None, None);
        let Some(fetch) = self.fetches.remove(query) else {
            return;
        };
        if condition == "item-not-found" && matches!(fetch.start, ArchiveStart::After(_)) {
            info!(room = ?fetch.room, "the server no longer has where the last catch-up stopped; catching up by date");
            let start = match fetch.resume_at_ms {
                Some(at) => ArchiveStart::Since(at.saturating_sub(ARCHIVE_OVERLAP_MS)),
                None => ArchiveStart::Beginning,
            };
            self.begin_fetch(client, fetch.room, start, None);
            return;
        }
        match fetch.room {
            Some(room) if NO_ROOM_ARCHIVE.contains(&condition.as_str()) => {
                debug!(%room, %condition, "room keeps no archive");
            }
            Some(room) => self.warn(format!("catch-up of room {room} failed: {condition}")),
            None => self.warn(format!("archive catch-up failed: {condition}")),
        }
    }

    /// Hands the gathered messages of `query` to the archive writer (one transaction).
    fn store_batch(&mut self, query: &str, sync: Option<SyncPoint>, done: Option<u64>) {
        let Some(fetch) = self.fetches.get_mut(query) else {
            return;
        };
        let messages = std::mem::take(&mut fetch.page);
        if messages.is_empty() && sync.is_none() && done.is_none() {
            return;
        }
        let _ = self.jobs.send(ArchiveJob {
            query: query.to_owned(),
            messages,
            sync,
            done,
            room: fetch.room.clone(),
        });
    }

    /// A batch is stored: shows the messages that were new, in order (a copy that arrived live
    /// as well is shown by whichever of the two history stored first); says when the catch-up
    /// is over.
    pub(super) fn on_written(&mut self, written: ArchiveWritten) {
        let mut new = 0;
        for (message, is_new) in written.messages.iter().zip(written.new_flags) {
            if is_new {
                new += 1;
                self.emit(chat_event(self.account, message));
            }
        }
        if let Some(fetch) = self.fetches.get_mut(&written.query) {
            fetch.new += new;
        }
        if let Some(fetched) = written.done
            && let Some(fetch) = self.fetches.remove(&written.query)
        {
            if written.room.is_none()
                && let Some(login_at) = self.login_at.take()
            {
                let look_at = login_at + SECOND_LOOK_AFTER;
                self.second_look_at = (Instant::now() < look_at).then_some(look_at);
            }
            self.emit(EngineEvent::ArchiveSynced {
                account: self.account,
                room: written.room,
                again_soon: self.second_look_at.is_some(),
                fetched,
                new: fetch.new,
                elapsed_ms: u64::try_from(fetch.started.elapsed().as_millis()).unwrap_or(u64::MAX),
            });
        }
    }
}

/// Stores archive batches one after another (one transaction each), off the account loop.
async fn write_archive_pages(
    account: AccountId,
    history: History,
    mut jobs: mpsc::UnboundedReceiver<ArchiveJob>,
    written: mpsc::UnboundedSender<ArchiveWritten>,
) {
    while let Some(job) = jobs.recv().await {
        let ArchiveJob {
            query,
            messages,
            sync,
            done,
            room,
        } = job;
        let outcome = history
            .query_writer(move |w| {
                let flags = store::insert_archive(w, account, &messages, sync);
                Ok((messages, flags))
            })
            .await;
        let (messages, new_flags) = match outcome {
            Ok((messages, Ok(flags))) => (messages, flags),
            Ok((messages, Err(e))) => {
                // Nothing of the page (nor its sync point) was written: the next catch-up
                // fetches it again.
                warn!(error = %e, "archive page not stored");
                (messages, Vec::new())
            }
            Err(e) => {
                warn!(error = %e, "archive page not stored");
                (Vec::new(), Vec::new())
            }
        };
        let result = ArchiveWritten {
            query,
            messages,
            new_flags,
            done,
            room,
        };
        if written.send(result).is_err() {
            break;
        }
    }
}
