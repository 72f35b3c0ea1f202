//! Chat inside an MSRP session (RFC 4975 session mode), beside SIP MESSAGE (RFC 3428, page
//! mode): a peer that offers `m=message` with text types (no file selector) gets a session
//! that carries messages both ways; `EngineHandle::open_chat_session` offers one. While a
//! session with a peer is open, `send_message` to that peer goes through it. Messages are
//! stored and reported exactly like SIP MESSAGEs (`MessageReceived`, `MessageDelivered`,
//! `MessageFailed`), so history and the UI do not care which way a message came.
//!
//! One task per session owns its relay WebSocket and a `lyrebird_msrp::ChatSession`; the SIP
//! side (INVITE / 200 / BYE) is the account's, asked for through [`FromTask::Chat`]. A peer
//! that accepts only `message/cpim` gets every message wrapped in CPIM (RFC 3862); a wrapped
//! message that arrives is unwrapped before it is stored.

use std::collections::HashMap;
use std::time::Duration;

use lyrebird_msrp::{ChatConfig, ChatEvent, ChatSession, CpimMessage, Direction, MsrpMedia};
use lyrebird_sip as sip;
use lyrebird_store::DeliveryState;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::{Instrument, debug, info, warn};

use super::context::{FromChat, FromTask, TaskContext, ToChat};
use super::relay::Link;
use crate::event::EngineEvent;
use crate::ground::{AccountId, EngineError, MessageId};
use crate::session::{ChatId, DialogEvent, SessionId, Signal};
use crate::sip::sessions::Signalling;
use crate::transport::Incoming;

/// Largest message accepted from a peer.
const MAX_MESSAGE_BYTES: usize = 1 << 20;
/// Bound on the peer answering our offer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);
const PLAIN: &str = "text/plain";
const CPIM: &str = "message/cpim";

struct Entry {
    peer: String,
    open: bool,
    task: mpsc::Sender<ToChat>,
    /// Who waits for an outgoing session to open.
    opening: Option<oneshot::Sender<Result<(), EngineError>>>,
    /// Outgoing messages in flight: id → history key.
    in_flight: HashMap<MessageId, String>,
}

/// The account's chat sessions: SIP sessions ↔ chat tasks.
pub(crate) struct Chats {
    account: AccountId,
    next: u64,
    entries: HashMap<ChatId, Entry>,
}

/// True if an MSRP offer is a chat session: two-way, no file, and some text type accepted.
pub(crate) fn is_chat_offer(offer: &MsrpMedia) -> bool {
    offer.file_selector.is_none()
        && offer.direction == Direction::SendRecv
        && offer
            .accept_types
            .iter()
            .any(|t| t == "*" || t.eq_ignore_ascii_case(PLAIN) || t.eq_ignore_ascii_case(CPIM))
}

impl Chats {
    pub(crate) fn new(account: AccountId) -> Self {
        Self {
            account,
            next: 0,
            entries: HashMap::new(),
        }
    }

    fn spawn(
        &mut self,
        context: &TaskContext,
        sig: &mut Signalling,
        peer: String,
        offer: Option<MsrpMedia>,
        dialog: Option<sip::CallId>,
    ) -> ChatId {
        self.next += 1;
        let chat = ChatId(self.next);
        let (tx, rx) = mpsc::channel(64);
        self.entries.insert(
            chat,
            Entry {
                peer: peer.clone(),
                open: false,
                task: tx,
                opening: None,
                in_flight: HashMap::new(),
            },
        );
        sig.sessions
            .open(SessionId::Chat(chat), peer.clone(), dialog);
        let span = tracing::info_span!("chat", account = self.account.0, chat = chat.0);
        tokio::spawn(run(context.clone(), chat, peer, offer, rx).instrument(span));
        chat
    }

    /// A peer offers a chat session: take it (like a SIP MESSAGE, it needs no consent).
    pub(crate) fn on_offer(
        &mut self,
        context: &TaskContext,
        sig: &mut Signalling,
        dialog: sip::CallId,
        from: String,
        offer: MsrpMedia,
    ) {
        info!(account = self.account.0, peer = %from, "chat session offered");
        let _ = sig.ua.ring(sig.now, dialog);
        self.spawn(context, sig, from, Some(offer), Some(dialog));
    }

    /// Offers a chat session to `target`; `reply` is answered when it is open or has failed.
    pub(crate) fn open(
        &mut self,
        context: Option<&TaskContext>,
        sig: &mut Signalling,
        target: String,
        reply: oneshot::Sender<Result<(), EngineError>>,
    ) {
        let Some(context) = context else {
            let _ = reply.send(Err(EngineError::InvalidConfig(
                "MSRP is not set up for this account (no relay)".into(),
            )));
            return;
        };
        let target = target.trim().to_owned();
        if target.is_empty() {
            let _ = reply.send(Err(EngineError::InvalidConfig(
                "no one to chat with: the address is empty".into(),
            )));
            return;
        }
        if self.open_with(&target).is_some() {
            let _ = reply.send(Ok(()));
            return;
        }
        let chat = self.spawn(context, sig, target, None, None);
        if let Some(entry) = self.entries.get_mut(&chat) {
            entry.opening = Some(reply);
        }
    }

    fn open_with(&self, peer: &str) -> Option<ChatId> {
        self.entries
            .iter()
            .find(|(_, e)| e.open && e.peer == peer)
            .map(|(id, _)| *id)
    }

    /// Sends through the open session with `peer`, if there is one; `false` if there is none.
    pub(crate) fn send(&mut self, peer: &str, message: MessageId, key: &str, body: &str) -> bool {
        let Some(chat) = self.open_with(peer) else {
            return false;
        };
        let Some(entry) = self.entries.get_mut(&chat) else {
            return false;
        };
        let sent = entry
            .task
            .try_send(ToChat::Send {
                message,
                body: body.to_owned(),
            })
            .is_ok();
        if sent {
            entry.in_flight.insert(message, key.to_owned());
        }
        sent
    }

    /// Something happened on a chat session's dialog.
    pub(crate) fn on_dialog(&mut self, sig: &mut Signalling, chat: ChatId, event: DialogEvent) {
        match event {
            DialogEvent::Answered { sdp } => match sdp {
                Some(sdp) => self.to_task(chat, ToChat::Answered { sdp }),
                None => {
                    let _ = sig.send(SessionId::Chat(chat), Signal::End { reason: None });
                    self.to_task(chat, ToChat::SessionEnded);
                }
            },
            DialogEvent::Reoffered { .. } => {
                // A refresh: the session goes on as it was, so the answer is our last SDP.
                let answer = Signal::AnswerReoffer { sdp: None };
                if let Err(e) = sig.send(SessionId::Chat(chat), answer) {
                    warn!(error = %e, "could not answer a re-INVITE of a chat session");
                }
            }
            DialogEvent::Ended { reason } => {
                debug!(chat = chat.0, ?reason, "chat session ended by SIP");
                self.to_task(chat, ToChat::SessionEnded);
            }
            DialogEvent::Referred { refer, .. } => {
                let _ = sig.ua.reject_refer(sig.now, refer, 603);
            }
            DialogEvent::Progress { .. }
            | DialogEvent::ReofferAnswered { .. }
            | DialogEvent::ReofferFailed { .. }
            | DialogEvent::Dtmf { .. }
            | DialogEvent::ReferProgress { .. } => {}
        }
    }

    fn to_task(&self, chat: ChatId, message: ToChat) {
        if let Some(entry) = self.entries.get(&chat)
            && entry.task.try_send(message).is_err()
        {
            warn!(chat = chat.0, "chat task gone or busy; message dropped");
        }
    }

    /// SIP work and results from a chat task.
    pub(crate) fn on_task_message(
        &mut self,
        context: &TaskContext,
        sig: &mut Signalling,
        message: FromChat,
    ) {
        let emit = |event| {
            let _ = context
                .notices
                .send(crate::notice::AccountNotice::Event(event));
        };
        match message {
            FromChat::Signal { chat, signal } => {
                let offering = matches!(signal, Signal::Offer { .. } | Signal::Answer { .. });
                if let Err(e) = sig.send(SessionId::Chat(chat), signal)
                    && offering
                {
                    warn!(error = %e, "chat session not set up");
                    self.to_task(chat, ToChat::SessionEnded);
                }
            }
            FromChat::Opened { chat } => {
                if let Some(entry) = self.entries.get_mut(&chat) {
                    info!(chat = chat.0, peer = %entry.peer, "chat session open");
                    entry.open = true;
                    if let Some(reply) = entry.opening.take() {
                        let _ = reply.send(Ok(()));
                    }
                }
            }
            FromChat::Received {
                chat,
                content_type,
                body,
            } => {
                let Some(entry) = self.entries.get(&chat) else {
                    return;
                };
                // Already stored by the chat task, which confirmed it to the sender.
                emit(EngineEvent::MessageReceived {
                    account: self.account,
                    from: entry.peer.clone(),
                    content_type,
                    body,
                });
            }
            FromChat::Delivered { chat, message } => {
                if let Some(entry) = self.entries.get_mut(&chat) {
                    settle(context, self.account, entry, message, Ok(()));
                }
            }
            FromChat::Failed {
                chat,
                message,
                status,
                reason,
            } => {
                if let Some(entry) = self.entries.get_mut(&chat) {
                    settle(context, self.account, entry, message, Err((status, reason)));
                }
            }
            FromChat::Finished { chat, reason } => {
                let Some(mut entry) = self.entries.remove(&chat) else {
                    return;
                };
                let _ = sig.send(SessionId::Chat(chat), Signal::End { reason: None });
                sig.sessions.close(SessionId::Chat(chat));
                let reason = reason.unwrap_or_else(|| "the chat session ended".into());
                info!(chat = chat.0, peer = %entry.peer, %reason, "chat session over");
                if let Some(reply) = entry.opening.take() {
                    let _ = reply.send(Err(EngineError::InvalidState(format!(
                        "no chat session with {}: {reason}",
                        entry.peer
                    ))));
                }
                let unsettled: Vec<MessageId> = entry.in_flight.keys().copied().collect();
                for message in unsettled {
                    let outcome = Err((0, reason.clone()));
                    settle(context, self.account, &mut entry, message, outcome);
                }
            }
        }
    }

    /// The account is stopping: end every session.
    pub(crate) fn shutdown(&mut self, sig: &mut Signalling) {
        for (&chat, entry) in &self.entries {
            let _ = sig.send(SessionId::Chat(chat), Signal::End { reason: None });
            let _ = entry.task.try_send(ToChat::Close);
        }
    }
}

/// Records how an outgoing message ended, in history and as an event (once per message).
fn settle(
    context: &TaskContext,
    account: AccountId,
    entry: &mut Entry,
    message: MessageId,
    outcome: Result<(), (u16, String)>,
) {
    let Some(key) = entry.in_flight.remove(&message) else {
        return;
    };
    let (state, event) = match outcome {
        Ok(()) => (
            DeliveryState::Sent,
            EngineEvent::MessageDelivered { account, message },
        ),
        Err((status, reason)) => (
            DeliveryState::Failed,
            EngineEvent::MessageFailed {
                account,
                message,
                status,
                reason,
            },
        ),
    };
    context
        .history
        .message_state(account, &key, &entry.peer, state);
    let _ = context
        .notices
        .send(crate::notice::AccountNotice::Event(event));
}

/// How one side wraps what it sends: as the peer's accept-types allow.
fn outgoing_type(peer: &MsrpMedia) -> Option<&'static str> {
    let accepts = |t: &str| {
        peer.accept_types
            .iter()
            .any(|a| a == "*" || a.eq_ignore_ascii_case(t))
    };
    if accepts(PLAIN) {
        Some(PLAIN)
    } else if accepts(CPIM) {
        Some(CPIM)
    } else {
        None
    }
}

/// A received body as text: CPIM unwrapped, bytes that are not UTF-8 replaced.
fn unwrap_text(content_type: &str, body: &[u8]) -> Result<(String, String), String> {
    let base = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if base == CPIM {
        let inner = CpimMessage::parse(body).map_err(|e| e.to_string())?;
        return unwrap_text(&inner.content_type, &inner.body);
    }
    if !base.starts_with("text/") {
        return Err(format!(
            "a chat message of type {content_type} was not shown"
        ));
    }
    Ok((
        content_type.to_owned(),
        String::from_utf8_lossy(body).into_owned(),
    ))
}

async fn run(
    context: TaskContext,
    chat: ChatId,
    peer: String,
    offer: Option<MsrpMedia>,
    mut commands: mpsc::Receiver<ToChat>,
) {
    let reason = session(&context, chat, &peer, offer, &mut commands).await;
    send(&context, FromChat::Finished { chat, reason }).await;
}

/// Hands a chat task's message to its account.
async fn send(context: &TaskContext, message: FromChat) {
    let _ = context.to_account.send(FromTask::Chat(message)).await;
}

/// A received chat message the history writer has stored, or failed to store.
struct StoredChatMessage {
    message_id: String,
    result: Result<crate::history::Kept, EngineError>,
    content_type: String,
    body: String,
}

/// Runs the session; returns why it ended when that was not a normal close.
async fn session(
    context: &TaskContext,
    chat: ChatId,
    peer: &str,
    offer: Option<MsrpMedia>,
    commands: &mut mpsc::Receiver<ToChat>,
) -> Option<String> {
    let mut link = match Link::open(context).await {
        Ok(link) => link,
        Err(reason) => return Some(reason),
    };
    let mut path = link.use_path.clone();
    path.push(link.local.clone());
    let ours = MsrpMedia {
        protocol: "TCP/WS/MSRP".into(),
        path,
        accept_types: context.config.chat_accept_types.clone(),
        accept_wrapped_types: vec![PLAIN.into()],
        direction: Direction::SendRecv,
        max_size: Some(MAX_MESSAGE_BYTES as u64),
        ..MsrpMedia::default()
    };
    let sdp = ours.to_sdp(rand::random::<u32>().into(), 1);
    let theirs = match offer {
        Some(offer) => {
            send(
                context,
                FromChat::Signal {
                    chat,
                    signal: Signal::Answer { sdp },
                },
            )
            .await;
            offer
        }
        None => {
            send(
                context,
                FromChat::Signal {
                    chat,
                    signal: Signal::Offer { sdp },
                },
            )
            .await;
            let deadline = Instant::now() + ANSWER_TIMEOUT;
            let answer = loop {
                tokio::select! {
                    command = commands.recv() => match command {
                        Some(ToChat::Answered { sdp }) => break sdp,
                        Some(ToChat::SessionEnded) => {
                            link.conn.close().await;
                            return Some("the peer did not take the chat session".into());
                        }
                        Some(ToChat::Close) | None => {
                            link.conn.close().await;
                            return None;
                        }
                        Some(ToChat::Send { .. }) => {}
                    },
                    incoming = link.conn.recv() => match incoming {
                        Ok(Some(Incoming::Message(frame))) => {
                            let _ = link.accept(&frame).await;
                        }
                        Ok(Some(Incoming::Alive)) => {}
                        Ok(None) | Err(_) => return Some("the relay connection dropped".into()),
                    },
                    () = tokio::time::sleep_until(deadline) => {
                        link.conn.close().await;
                        return Some("the peer did not answer".into());
                    }
                }
            };
            match MsrpMedia::parse(&answer) {
                Ok(media) => media,
                Err(e) => {
                    link.conn.close().await;
                    return Some(format!("the peer's answer is unusable: {e}"));
                }
            }
        }
    };
    let wrap = outgoing_type(&theirs);
    let mut to_path = link.use_path.clone();
    to_path.extend(theirs.path.iter().cloned());
    let mut core = match ChatSession::new(ChatConfig {
        local: link.local.clone(),
        to_path,
        chunk_size: context.config.chunk_size,
        max_message_bytes: MAX_MESSAGE_BYTES,
        rng_seed: rand::random(),
    }) {
        Ok(core) => core,
        Err(e) => {
            link.conn.close().await;
            return Some(e.to_string());
        }
    };
    send(context, FromChat::Opened { chat }).await;
    // MSRP Message-ID → the engine's message id.
    let mut ids: HashMap<String, MessageId> = HashMap::new();
    // The history writer's word on received messages: each is confirmed to its sender (the
    // Success-Report that makes it "delivered" there) and shown only once it is stored.
    let (stored_tx, mut stored) = mpsc::unbounded_channel::<StoredChatMessage>();
    let result = loop {
        let deadline = [
            core.poll_timeout().map(Instant::from_std),
            link.auth.poll_timeout().map(Instant::from_std),
        ]
        .into_iter()
        .flatten()
        .min();
        tokio::select! {
            command = commands.recv() => match command {
                Some(ToChat::Send { message, body }) => {
                    let framed = match wrap {
                        Some(PLAIN) => Ok((PLAIN, body.into_bytes())),
                        Some(_) => Ok((CPIM, CpimMessage {
                            from: format!("<{}>", context.aor),
                            to: format!("<{peer}>"),
                            // RFC 3339, which XEP-0082's format is a profile of.
                            date_time: Some(lyrebird_xmpp::time::format_ms(crate::ground::now_ms())),
                            content_type: "text/plain;charset=utf-8".into(),
                            body: body.into_bytes(),
                        }.encode())),
                        None => Err("the peer accepts neither text/plain nor message/cpim".to_owned()),
                    };
                    match framed.and_then(|(kind, bytes)| {
                        core.send(Instant::now().into_std(), kind, &bytes).map_err(|e| e.to_string())
                    }) {
                        Ok(id) => {
                            ids.insert(id, message);
                        }
                        Err(reason) => send(context, FromChat::Failed { chat, message, status: 0, reason }).await,
                    }
                }
                Some(ToChat::SessionEnded) => break None,
                Some(ToChat::Close) | None => break None,
                Some(ToChat::Answered { .. }) => {}
            },
            incoming = link.conn.recv() => match incoming {
                Ok(Some(Incoming::Message(frame))) => match link.accept(&frame).await {
                    Ok(Some(message)) => {
                        core.handle_message(message);
                    }
                    Ok(None) => continue,
                    Err(reason) => break Some(reason),
                },
                Ok(Some(Incoming::Alive)) => {}
                Ok(None) => break Some("the relay closed the connection".into()),
                Err(e) => break Some(e.to_string()),
            },
            Some(message) = stored.recv() => match message.result {
                Ok(kept) => {
                    core.confirm_received(&message.message_id);
                    // A resent copy already in history is confirmed but not shown again.
                    if kept == crate::history::Kept::New {
                        send(
                        context,
                        FromChat::Received {
                            chat,
                            content_type: message.content_type,
                            body: message.body,
                        },
                    )
                    .await;
                    }
                }
                Err(e) => {
                    // No report: the sender counts it as not delivered.
                    core.forget_received(&message.message_id);
                    warn!(error = %e, "a received chat message could not be stored");
                    let _ = context.notices.send(crate::notice::AccountNotice::Event(
                        EngineEvent::Warning {
                            account: Some(context.account),
                            detail: format!(
                                "a chat message from {peer} could not be stored, so its sender \
                                 was not told it arrived: {e}"
                            ),
                        },
                    ));
                }
            },
            () = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => {
                let now = Instant::now();
                core.handle_timeout(now.into_std());
                if let Err(reason) = link.renew_auth(now).await {
                    break Some(reason);
                }
            }
        }
        while let Some(frame) = core.poll_transmit() {
            if let Err(e) = link.conn.send(frame).await {
                warn!(error = %e, "chat session connection failed");
                break;
            }
        }
        while let Some(event) = core.poll_event() {
            match event {
                ChatEvent::Received {
                    message_id,
                    content_type,
                    body,
                } => match unwrap_text(&content_type, &body) {
                    Ok((content_type, body)) => {
                        let reply = stored_tx.clone();
                        let (id, kind, text) =
                            (message_id.clone(), content_type.clone(), body.clone());
                        let ack: crate::history::Ack = Box::new(move |result| {
                            let _ = reply.send(StoredChatMessage {
                                message_id: id,
                                result,
                                content_type: kind,
                                body: text,
                            });
                        });
                        // The sender's Message-ID keeps a resent copy from being stored twice.
                        context.history.message_received(
                            context.account,
                            &format!("msrp:{message_id}"),
                            peer,
                            &content_type,
                            &body,
                            Some(ack),
                        );
                    }
                    Err(reason) => {
                        core.forget_received(&message_id);
                        warn!(%reason, "chat message dropped");
                    }
                },
                ChatEvent::Delivered { message_id } => {
                    if let Some(message) = ids.remove(&message_id) {
                        send(context, FromChat::Delivered { chat, message }).await;
                    }
                }
                ChatEvent::Failed {
                    message_id,
                    status,
                    comment,
                } => {
                    if let Some(message) = ids.remove(&message_id) {
                        send(
                            context,
                            FromChat::Failed {
                                chat,
                                message,
                                status,
                                reason: comment,
                            },
                        )
                        .await;
                    }
                }
                ChatEvent::Refused(e) => warn!(error = %e, "chat message refused"),
            }
        }
    };
    link.conn.close().await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpim_is_unwrapped_and_binary_is_refused() {
        let wrapped = CpimMessage {
            from: "<sip:a@x>".into(),
            to: "<sip:b@x>".into(),
            date_time: None,
            content_type: "text/plain;charset=utf-8".into(),
            body: b"<script>hi</script>".to_vec(),
        };
        let (kind, text) = unwrap_text("message/cpim", &wrapped.encode()).unwrap();
        assert_eq!(
            (kind.as_str(), text.as_str()),
            ("text/plain;charset=utf-8", "<script>hi</script>")
        );
        assert!(unwrap_text("application/octet-stream", b"\0\x01").is_err());
        assert!(unwrap_text("message/cpim", b"not cpim").is_err());
    }

    #[test]
    fn the_peer_gets_plain_text_unless_it_only_takes_cpim() {
        let media = |types: &[&str]| MsrpMedia {
            accept_types: types.iter().map(|t| (*t).to_owned()).collect(),
            ..MsrpMedia::default()
        };
        assert_eq!(
            outgoing_type(&media(&["message/cpim", "text/plain"])),
            Some(PLAIN)
        );
        assert_eq!(outgoing_type(&media(&["message/cpim"])), Some(CPIM));
        assert_eq!(outgoing_type(&media(&["*"])), Some(PLAIN));
        assert_eq!(outgoing_type(&media(&["image/png"])), None);
        assert!(is_chat_offer(&media(&["message/cpim"])));
        assert!(!is_chat_offer(&media(&["image/png"])));
    }
}
