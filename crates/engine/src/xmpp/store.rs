//! XMPP things in the history database: turns what the XMPP account saw into store changes.
//! The history writer (`history.rs`) calls [`Writer::xmpp_change`] for each recorded
//! [`XmppHappening`]; archive pages are written through [`insert_archive`] in one transaction,
//! which reports which messages were new.

use lyrebird_store::{
    self as st, AccountKind, Change, ChangeOutcome, ConversationKind, DeliveryState, Direction,
    MessageRef, NewAccount, NewContact, NewMessage, Subscription,
};
use lyrebird_xmpp::{ChatMessage, MessageKind, MessageOrigin};

use crate::event::{ChatOrigin, EngineEvent};
use crate::ground::{AccountId, EngineError};
use crate::history::Writer;

/// Something an XMPP account saw or did that history keeps.
#[derive(Debug)]
pub(crate) enum XmppHappening {
    AccountAdded {
        account: AccountId,
        jid: String,
        server_url: String,
    },
    Contact {
        account: AccountId,
        jid: String,
        name: Option<String>,
        subscription: String,
        groups: Vec<String>,
    },
    ContactRemoved {
        account: AccountId,
        jid: String,
    },
    /// A room we joined (so it is listed even before anyone speaks).
    Room {
        account: AccountId,
        room: String,
    },
    Message {
        account: AccountId,
        peer: String,
        room: bool,
        sender: String,
        body: String,
        stable_id: String,
        outgoing: bool,
        sent_at_ms: Option<i64>,
        state: DeliveryState,
        replaces: Option<String>,
    },
    MessageState {
        account: AccountId,
        peer: String,
        room: bool,
        stable_id: String,
        state: DeliveryState,
    },
    /// The stream-management session the account is on and how far it got (`None`: closed,
    /// or one that cannot be resumed).
    StreamResumption {
        account: AccountId,
        mark: Option<lyrebird_xmpp::ReceivedMark>,
    },
}

/// The history record for a message; `state` overrides the default (delivered for incoming,
/// sent for our messages seen via carbons or the archive).
pub(crate) fn message_happening(
    account: AccountId,
    m: &ChatMessage,
    state: Option<DeliveryState>,
) -> XmppHappening {
    XmppHappening::Message {
        account,
        peer: m.peer.clone(),
        room: m.kind == MessageKind::Groupchat,
        sender: m.from.clone(),
        body: m.body.clone(),
        stable_id: m.stable_id.clone(),
        outgoing: m.outgoing,
        sent_at_ms: m.sent_at_ms,
        state: state.unwrap_or(if m.outgoing {
            DeliveryState::Sent
        } else {
            DeliveryState::Delivered
        }),
        replaces: m.replaces.clone(),
    }
}

fn kind(room: bool) -> ConversationKind {
    if room {
        ConversationKind::Room
    } else {
        ConversationKind::Direct
    }
}

impl Writer {
    fn xmpp_account(&self, account: AccountId) -> Result<(st::AccountId, String), EngineError> {
        self.accounts
            .get(&account)
            .cloned()
            .ok_or(EngineError::UnknownAccount(account.0))
    }

    fn xmpp_conversation(
        &mut self,
        account: AccountId,
        peer: &str,
        room: bool,
    ) -> Result<st::ConversationId, EngineError> {
        let (account, _) = self.xmpp_account(account)?;
        Ok(self
            .store
            .find_or_create_conversation(account, peer, kind(room))?
            .id)
    }

    /// The store change for one happening (`None` when it was written directly).
    pub(crate) fn xmpp_change(
        &mut self,
        at_ms: i64,
        happening: XmppHappening,
    ) -> Result<Option<Change>, EngineError> {
        Ok(Some(match happening {
            XmppHappening::AccountAdded {
                account,
                jid,
                server_url,
            } => {
                let change = Change::UpsertAccount(NewAccount {
                    kind: AccountKind::Xmpp,
                    address: jid.clone(),
                    display_name: None,
                    server_url,
                    settings: serde_json::json!({}),
                    created_at_ms: at_ms,
                });
                let outcome = self.store.apply(std::slice::from_ref(&change))?;
                if let Some(ChangeOutcome::Account(id)) = outcome.outcomes.first() {
                    self.accounts.insert(account, (*id, jid));
                }
                return Ok(None);
            }
            XmppHappening::Contact {
                account,
                jid,
                name,
                subscription,
                groups,
            } => Change::UpsertContact(NewContact {
                account: self.xmpp_account(account)?.0,
                address: jid,
                display_name: name,
                groups,
                subscription: Subscription::parse(&subscription).unwrap_or(Subscription::None),
            }),
            XmppHappening::ContactRemoved { account, jid } => Change::RemoveContact {
                account: self.xmpp_account(account)?.0,
                address: jid,
            },
            XmppHappening::StreamResumption { account, mark } => {
                let account = self.xmpp_account(account)?.0;
                match mark.and_then(|m| Some((m.resume_id?, m.jid, m.received))) {
                    Some((resume_id, jid, handled)) => {
                        Change::SetStreamResumption(st::StreamResumption {
                            account,
                            resume_id,
                            jid,
                            handled,
                            updated_at_ms: at_ms,
                        })
                    }
                    None => Change::ClearStreamResumption { account },
                }
            }
            XmppHappening::Room { account, room } => {
                self.xmpp_conversation(account, &room, true)?;
                return Ok(None);
            }
            XmppHappening::MessageState {
                account,
                peer,
                room,
                stable_id,
                state,
            } => Change::UpdateMessageState {
                message: MessageRef::Stable {
                    conversation: self.xmpp_conversation(account, &peer, room)?,
                    stable_id,
                },
                state,
            },
            XmppHappening::Message {
                account,
                peer,
                room,
                sender,
                body,
                stable_id,
                outgoing,
                sent_at_ms,
                state,
                replaces,
            } => {
                let conversation = self.xmpp_conversation(account, &peer, room)?;
                let sender = if outgoing && !room {
                    self.xmpp_account(account)?.1
                } else {
                    sender
                };
                let message = NewMessage {
                    conversation,
                    direction: if outgoing {
                        Direction::Out
                    } else {
                        Direction::In
                    },
                    sender,
                    body,
                    content_type: "text/plain".into(),
                    stable_id,
                    sent_at_ms: sent_at_ms.or(outgoing.then_some(at_ms)),
                    received_at_ms: at_ms,
                    state,
                    corrects_stable_id: None,
                };
                match replaces {
                    // XEP-0308: the correction replaces the original's text in place (history
                    // and search show the message once) when its author wrote the original.
                    Some(original) => Change::CorrectMessage {
                        original: MessageRef::Stable {
                            conversation,
                            stable_id: original,
                        },
                        correction: message,
                    },
                    None => Change::InsertMessage(message),
                }
            }
        }))
    }
}

/// Writes archived messages in one transaction, with the sync point they reach (if any) in
/// the same one; `true` for each message that was new.
pub(super) fn insert_archive(
    writer: &mut Writer,
    account: AccountId,
    messages: &[ChatMessage],
    sync: Option<SyncPoint>,
) -> Result<Vec<bool>, EngineError> {
    let now = crate::ground::now_ms();
    let mut changes = Vec::with_capacity(messages.len() + 1);
    for m in messages {
        let happening = message_happening(account, m, None);
        // A message always becomes exactly one change, so outcomes line up with `messages`.
        let Some(change) = writer.xmpp_change(now, happening)? else {
            return Err(EngineError::History(
                "archive message without a change".into(),
            ));
        };
        changes.push(change);
    }
    if let Some(point) = sync {
        let row = writer.xmpp_account(account)?.0;
        changes.push(Change::SetArchiveSync(sync_row(row, point, now)));
    }
    if changes.is_empty() {
        return Ok(Vec::new());
    }
    let outcome = writer.store.apply(&changes)?;
    Ok(outcome
        .outcomes
        .iter()
        .take(messages.len())
        .map(|o| {
            matches!(
                o,
                ChangeOutcome::MessageInserted(_) | ChangeOutcome::Updated
            )
        })
        .collect())
}

/// The stream-management session the last run of `account` left open, if any.
pub(super) fn stream_resumption(
    writer: &mut Writer,
    account: AccountId,
) -> Result<Option<st::StreamResumption>, EngineError> {
    let (account, _) = writer.xmpp_account(account)?;
    Ok(writer.store.stream_resumption(account)?)
}

/// How far the catch-up of `archive` (`""`: our own; else a room's bare JID) has got.
pub(super) fn archive_sync(
    writer: &mut Writer,
    account: AccountId,
    archive: &str,
) -> Result<Option<st::ArchiveSync>, EngineError> {
    let (account, _) = writer.xmpp_account(account)?;
    Ok(writer.store.archive_sync(account, archive)?)
}

impl crate::history::OtherHappening for XmppHappening {
    fn change(
        self: Box<Self>,
        writer: &mut Writer,
        at_ms: i64,
    ) -> Result<Option<Change>, EngineError> {
        writer.xmpp_change(at_ms, *self)
    }
}

impl crate::history::History {
    /// Records what an XMPP account saw or did.
    pub(crate) fn record_xmpp(&self, happening: XmppHappening) {
        self.record_other(Box::new(happening), None);
    }

    /// Records what an XMPP account saw or did, and says when it is committed.
    pub(crate) fn record_xmpp_acked(&self, happening: XmppHappening, ack: crate::history::Ack) {
        self.record_other(Box::new(happening), Some(ack));
    }

    /// The newest `limit` messages of a room on `account`, oldest first.
    pub(crate) async fn room_messages(
        &self,
        account: AccountId,
        room: &str,
        limit: u32,
    ) -> Result<Vec<crate::history::MessageRecord>, EngineError> {
        let room = room.to_owned();
        self.query_writer(move |w| {
            let conversation = w.xmpp_conversation(account, &room, true)?;
            Ok(w.store.messages(conversation, None, limit)?)
        })
        .await
    }
}

/// Where a stored page leaves an archive's catch-up.
pub(super) struct SyncPoint {
    pub(super) archive: String,
    pub(super) last_id: String,
    pub(super) last_at_ms: Option<i64>,
    pub(super) complete: bool,
}

/// The sync point row for a stored page.
pub(super) fn sync_row(
    account: lyrebird_store::AccountId,
    point: SyncPoint,
    now_ms: i64,
) -> st::ArchiveSync {
    st::ArchiveSync {
        account,
        archive: point.archive,
        last_id: point.last_id,
        last_at_ms: point.last_at_ms,
        complete: point.complete,
        updated_at_ms: now_ms,
    }
}

/// How a chat message is shown to front ends.
pub(super) fn chat_event(account: AccountId, m: &ChatMessage) -> EngineEvent {
    EngineEvent::ChatMessage {
        account,
        id: m.stable_id.clone(),
        peer: m.peer.clone(),
        from: m.from.clone(),
        nick: m.nick.clone(),
        room: m.kind == MessageKind::Groupchat,
        outgoing: m.outgoing,
        body: m.body.clone(),
        replaces: m.replaces.clone(),
        url: m.oob_url.clone(),
        origin: match &m.origin {
            MessageOrigin::Live => ChatOrigin::Live,
            MessageOrigin::Carbon => ChatOrigin::Carbon,
            MessageOrigin::Archive { .. } => ChatOrigin::Archive,
            MessageOrigin::RoomHistory => ChatOrigin::RoomHistory,
        },
        sent_at_ms: m.sent_at_ms,
    }
}
