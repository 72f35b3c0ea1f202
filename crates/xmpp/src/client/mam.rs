//! Archive catch-up (XEP-0313): queries of our own archive or a room's (§6.1.2) from a start
//! time or a stored sync point, paged with RSM (XEP-0059) until the server says the result is
//! complete; result messages (trusted only from the archive asked, §5.1.1) are reported like
//! any other message, with [`MessageOrigin::Archive`].
//!
//! State owned here: `Client::archive`, one [`ArchiveQuery`] per query still running, by
//! query id.

use std::time::Instant;

use tracing::debug;
use xmpp_parsers::minidom::Element;

use super::iq::IqPurpose;
use super::message::forwarded_message;
use super::{Client, bare_of, checked_jid, child_text, ns};
use crate::event::*;
use crate::xml::Xml;
use crate::{XmppError, time};

#[derive(Debug, Default)]
pub(super) struct ArchiveQuery {
    /// A room's bare JID, or `None` for our own archive.
    archive: Option<String>,
    start_ms: Option<i64>,
    /// The RSM `<after>` of the page asked for last.
    after: Option<String>,
    messages: u64,
}

/// Where an archive catch-up starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArchiveStart {
    /// The whole archive.
    Beginning,
    /// Just after the item with this archive id (XEP-0059 `<after>`): where an earlier
    /// catch-up stopped. A server that no longer has it answers `item-not-found`.
    After(String),
    /// Messages from this time (ms since the Unix epoch) on (the `start` field).
    Since(i64),
}

impl Client {
    /// Fetches an archive (XEP-0313): ours when `archive` is `None`, else the room's with that
    /// bare JID (§6.1.2), from `start` on, paging with RSM until the server says the result is
    /// complete. Messages arrive as [`XmppEvent::Message`] with [`MessageOrigin::Archive`],
    /// oldest first; after each page's messages comes an [`XmppEvent::ArchivePage`] naming the
    /// page's last archive id, which is where a later catch-up can resume.
    pub fn mam_catch_up(
        &mut self,
        now: Instant,
        archive: Option<&str>,
        start: ArchiveStart,
    ) -> Result<String, XmppError> {
        let archive = archive
            .map(|a| checked_jid(a).map(|j| bare_of(&j)))
            .transpose()?;
        let query = self.new_id();
        let (start_ms, after) = match start {
            ArchiveStart::Beginning => (None, None),
            ArchiveStart::Since(ms) => (Some(ms), None),
            ArchiveStart::After(id) if id.is_empty() => (None, None),
            ArchiveStart::After(id) => (None, Some(id)),
        };
        self.archive.insert(
            query.clone(),
            ArchiveQuery {
                archive,
                start_ms,
                messages: 0,
                after: after.clone(),
            },
        );
        self.send_archive_page(now, &query, after.as_deref());
        Ok(query)
    }

    fn send_archive_page(&mut self, now: Instant, query: &str, after: Option<&str>) {
        let Some(q) = self.archive.get(query) else {
            return;
        };
        let mut form = Xml::ns("x", ns::DATA_FORMS).attr("type", "submit").child(
            Xml::new("field")
                .attr("var", "FORM_TYPE")
                .attr("type", "hidden")
                .child(Xml::new("value").text(ns::MAM)),
        );
        if let Some(start) = q.start_ms {
            form = form.child(
                Xml::new("field")
                    .attr("var", "start")
                    .child(Xml::new("value").text(&time::format_ms(start))),
            );
        }
        let set = Xml::ns("set", ns::RSM)
            .child(Xml::new("max").text(&self.config.mam_page_size.to_string()))
            .child_opt(after.map(|a| Xml::new("after").text(a)));
        let payload = Xml::ns("query", ns::MAM)
            .attr("queryid", query)
            .child(form)
            .child(set);
        let to = q.archive.clone();
        self.send_iq(
            now,
            "set",
            to.as_deref(),
            payload,
            IqPurpose::Archive {
                query: query.to_owned(),
            },
        );
    }

    /// One `<result/>` of a query, carried in a message from `from`.
    pub(super) fn on_archive_result(&mut self, now: Instant, from: Option<&str>, result: &Element) {
        let query = result.attr("queryid").unwrap_or_default().to_owned();
        let Some(asked) = self.archive.get(&query) else {
            // A query of an earlier run, whose results a resumed session brings again; that
            // run's catch-up starts over from the point it had stored.
            debug!("ignored a result of an archive query this run did not send");
            return;
        };
        // Results come from the archive we asked: our account, or the room.
        let trusted = match asked.archive.as_deref() {
            Some(room) => from.is_some_and(|f| f == room),
            None => self.is_from_self_account(from),
        };
        if !trusted {
            self.warn("ignored an archive result from a stranger".into());
            return;
        }
        let archive_id = result.attr("id").map(str::to_owned);
        let delay = result
            .get_child("forwarded", ns::FORWARD)
            .and_then(|f| f.get_child("delay", ns::DELAY))
            .and_then(|d| d.attr("stamp"))
            .and_then(time::parse_ms);
        if let Some(inner) = forwarded_message(result) {
            let outgoing = inner
                .attr("from")
                .is_some_and(|f| bare_of(f) == self.bare_jid());
            let counted = self.on_chat_message(
                now,
                inner,
                MessageOrigin::Archive {
                    query: query.clone(),
                },
                outgoing,
                archive_id.map(|a| (a, delay)),
            );
            if counted && let Some(q) = self.archive.get_mut(&query) {
                q.messages += 1;
            }
        }
    }

    /// The answer to [`IqPurpose::Archive`]: the `<fin/>` of one page.
    pub(super) fn on_archive_page(&mut self, now: Instant, query: String, el: &Element) {
        let fin = el.get_child("fin", ns::MAM);
        let last = fin
            .and_then(|f| f.get_child("set", ns::RSM))
            .and_then(|s| child_text(s, "last", ns::RSM))
            .filter(|l| !l.is_empty());
        let Some(q) = self.archive.get_mut(&query) else {
            return;
        };
        // A page without a last item, or one that did not move past the previous
        // page, ends the query: asking again would repeat it forever.
        let moved = last.is_some() && last != q.after;
        let complete =
            !moved || fin.is_some_and(|f| matches!(f.attr("complete"), Some("true" | "1")));
        let messages = q.messages;
        let last = last.filter(|_| moved);
        if complete {
            self.archive.remove(&query);
        } else {
            q.after = last.clone();
        }
        self.events.push_back(XmppEvent::ArchivePage {
            query: query.clone(),
            last: last.clone(),
            complete,
            messages,
        });
        if !complete {
            self.send_archive_page(now, &query, last.as_deref());
        }
    }

    pub(super) fn archive_failed(&mut self, query: String, condition: String) {
        self.archive.remove(&query);
        self.events
            .push_back(XmppEvent::ArchiveFailed { query, condition });
    }
}
