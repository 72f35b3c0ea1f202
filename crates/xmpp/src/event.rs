//! What the core tells its owner, and the plain data it carries.

use crate::XmppError;
use crate::jingle::caps::IceServer;
use crate::jingle::{Jingle, JingleError, JingleMessage};

/// RFC 6121 §4.7.2.1 `<show/>`; `None` in [`Presence::show`] means plainly available.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Show {
    /// Free for chat.
    Chat,
    /// Temporarily away.
    Away,
    /// Extended away.
    Xa,
    /// Do not disturb.
    Dnd,
}

impl Show {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            Show::Chat => "chat",
            Show::Away => "away",
            Show::Xa => "xa",
            Show::Dnd => "dnd",
        }
    }

    /// Parses the wire value.
    pub fn parse(text: &str) -> Option<Show> {
        match text.trim() {
            "chat" => Some(Show::Chat),
            "away" => Some(Show::Away),
            "xa" => Some(Show::Xa),
            "dnd" => Some(Show::Dnd),
            _ => None,
        }
    }
}

/// XEP-0085 chat states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChatState {
    /// Paying attention to the conversation.
    Active,
    /// Typing.
    Composing,
    /// Stopped typing.
    Paused,
    /// Not paying attention.
    Inactive,
    /// Left the conversation.
    Gone,
}

impl ChatState {
    /// The element name.
    pub fn as_str(self) -> &'static str {
        match self {
            ChatState::Active => "active",
            ChatState::Composing => "composing",
            ChatState::Paused => "paused",
            ChatState::Inactive => "inactive",
            ChatState::Gone => "gone",
        }
    }

    /// Parses an element name.
    pub fn parse(text: &str) -> Option<ChatState> {
        match text {
            "active" => Some(ChatState::Active),
            "composing" => Some(ChatState::Composing),
            "paused" => Some(ChatState::Paused),
            "inactive" => Some(ChatState::Inactive),
            "gone" => Some(ChatState::Gone),
            _ => None,
        }
    }
}

/// One resource's presence (RFC 6121 §4), or its going offline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presence {
    /// The full JID (`user@domain/resource`), or a bare JID if the sender has none.
    pub from: String,
    /// `false` for `type='unavailable'`.
    pub available: bool,
    /// `<show/>`.
    pub show: Option<Show>,
    /// `<status/>`.
    pub status: Option<String>,
    /// `<priority/>` (RFC 6121 §4.7.2.3), 0 when absent.
    pub priority: i8,
    /// XEP-0115 `(node, ver)` if the sender advertised capabilities.
    pub caps: Option<(String, String)>,
}

/// A roster item (RFC 6121 §2.1.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RosterItem {
    /// Bare JID.
    pub jid: String,
    /// The name the user gave the contact.
    pub name: Option<String>,
    /// `none`, `to`, `from`, `both`, or `remove` in a push that deletes the item.
    pub subscription: String,
    /// `ask='subscribe'`: our request is pending.
    pub pending_out: bool,
    /// Group names.
    pub groups: Vec<String>,
}

/// `chat`, `groupchat` or `normal`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    /// 1:1 chat.
    Chat,
    /// A MUC room message (XEP-0045).
    Groupchat,
    /// `normal` (or no type).
    Normal,
}

/// Where a message came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageOrigin {
    /// Delivered live on this stream.
    Live,
    /// A copy of a conversation held on another of our devices (XEP-0280).
    Carbon,
    /// Fetched from the server's archive (XEP-0313) by the query with this id.
    Archive {
        /// The query id returned by [`crate::Client::mam_catch_up`].
        query: String,
    },
    /// Room history sent when joining (XEP-0045 §7.2.15).
    RoomHistory,
}

/// A message with a body, incoming or (via carbons and the archive) sent by us elsewhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    /// The key that identifies this message everywhere it appears (live, carbon, archive, room
    /// reflection): the sender's XEP-0359 origin-id, else the stanza `id`, else the archive id.
    pub stable_id: String,
    /// Chat or groupchat.
    pub kind: MessageKind,
    /// `true` when we sent it (from this or another device).
    pub outgoing: bool,
    /// The conversation: the peer's bare JID, or the room's bare JID.
    pub peer: String,
    /// The full `from` of the stanza (for rooms: `room@service/nick`).
    pub from: String,
    /// For room messages: the sender's nickname.
    pub nick: Option<String>,
    /// The text.
    pub body: String,
    /// XEP-0308: the stable id of the message this one corrects.
    pub replaces: Option<String>,
    /// XEP-0066: an out-of-band URL (a shared file).
    pub oob_url: Option<String>,
    /// XEP-0203 delay stamp (ms since the epoch): when it was really sent.
    pub sent_at_ms: Option<i64>,
    /// XEP-0359 stanza-id assigned by our server's archive, if any.
    pub archive_id: Option<String>,
    /// Where it came from.
    pub origin: MessageOrigin,
    /// XEP-0184: the sender asked to hear that it arrived, by this stanza id. The owner sends
    /// the receipt with [`crate::Client::send_receipt`] once the message is kept, so a sender
    /// is never told "delivered" about a message a crash could still lose.
    pub receipt_id: Option<String>,
}

/// A MUC occupant's presence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Occupant {
    /// The room's bare JID.
    pub room: String,
    /// The occupant's nickname.
    pub nick: String,
    /// The occupant's real JID when the room discloses it.
    pub jid: Option<String>,
    /// `false` when the occupant left.
    pub available: bool,
    /// XEP-0045 role.
    pub role: Option<String>,
    /// XEP-0045 affiliation.
    pub affiliation: Option<String>,
    /// `true` for our own occupant (status code 110).
    pub is_self: bool,
}

/// An HTTP upload slot (XEP-0363 §4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadSlot {
    /// Where to PUT the file.
    pub put_url: String,
    /// Headers the PUT must carry (only those XEP-0363 §4 allows are passed on).
    pub put_headers: Vec<(String, String)>,
    /// Where the file can be fetched once uploaded.
    pub get_url: String,
}

/// Events, drained with [`crate::Client::poll_event`].
#[derive(Debug, Clone, PartialEq)]
pub enum XmppEvent {
    /// The stream is usable. `resumed` means XEP-0198 resumption worked: nothing was lost, and
    /// roster, presence and rooms are as before; otherwise this is a fresh session.
    Online {
        /// Our full JID.
        jid: String,
        /// Whether the previous session was resumed.
        resumed: bool,
    },
    /// The stream ended. The owner closes the WebSocket; unless `error.is_permanent()` it
    /// reconnects and calls `handle_connected` again (resumption is attempted automatically).
    Offline {
        /// Why, when it was not our own orderly close.
        error: Option<XmppError>,
    },
    /// The full roster (after a fresh login).
    Roster(Vec<RosterItem>),
    /// One roster item changed (RFC 6121 §2.1.6 push); subscription `remove` means deleted.
    RosterPush(RosterItem),
    /// A resource's presence changed.
    Presence(Presence),
    /// Someone asks to see our presence (RFC 6121 §3.1.3): approve or deny.
    SubscriptionRequest {
        /// Bare JID.
        from: String,
    },
    /// A subscription we asked for was approved (`subscribed`) or refused / revoked
    /// (`unsubscribed`), or the contact stopped watching us (`unsubscribe`).
    SubscriptionChanged {
        /// Bare JID.
        from: String,
        /// `subscribed`, `unsubscribed` or `unsubscribe`.
        kind: String,
    },
    /// A message with a body.
    Message(ChatMessage),
    /// A typing notification (XEP-0085).
    ChatState {
        /// Bare JID of the peer.
        from: String,
        /// The state.
        state: ChatState,
    },
    /// The server has our message (XEP-0198 ack, or sent when the server lacks XEP-0198).
    MessageSent {
        /// Our message id.
        id: String,
        /// The bare JID it was sent to.
        to: String,
    },
    /// The recipient's client got our message (XEP-0184).
    MessageDelivered {
        /// Our message id.
        id: String,
        /// Bare JID of the recipient.
        from: String,
    },
    /// A message bounced with an error.
    MessageFailed {
        /// Our message id.
        id: String,
        /// Bare JID of the intended recipient.
        peer: String,
        /// The stanza error condition.
        condition: String,
    },
    /// Our occupant entered a room.
    RoomJoined {
        /// Room bare JID.
        room: String,
        /// Our nickname.
        nick: String,
    },
    /// Joining failed or we were removed from the room.
    RoomError {
        /// Room bare JID.
        room: String,
        /// The error condition or reason.
        condition: String,
    },
    /// An occupant's presence changed.
    Occupant(Occupant),
    /// A room's subject.
    RoomSubject {
        /// Room bare JID.
        room: String,
        /// The subject.
        subject: String,
    },
    /// One page of an archive query is over: its messages were reported before this.
    ArchivePage {
        /// The query id.
        query: String,
        /// The archive id of the page's last item (messages without a body included): a
        /// later catch-up resumes after it. `None` for an empty page.
        last: Option<String>,
        /// The archive has nothing after this page; the query is over.
        complete: bool,
        /// Messages with a body that the query returned so far.
        messages: u64,
    },
    /// An archive query failed.
    ArchiveFailed {
        /// The query id.
        query: String,
        /// Why.
        condition: String,
    },
    /// The server's features, and services found by disco (XEP-0030).
    ServerInfo {
        /// Server features (`urn:xmpp:mam:2`, `urn:xmpp:carbons:2`, ...).
        features: Vec<String>,
        /// The HTTP upload service, if any, and its maximum file size.
        upload_service: Option<(String, Option<u64>)>,
    },
    /// What a contact's client supports (XEP-0115 + XEP-0030).
    PeerFeatures {
        /// Full JID.
        jid: String,
        /// Features.
        features: Vec<String>,
    },
    /// An HTTP upload slot was granted.
    UploadSlot {
        /// The request id from [`crate::Client::request_upload_slot`].
        request: String,
        /// The slot.
        slot: UploadSlot,
    },
    /// An HTTP upload slot was refused.
    UploadFailed {
        /// The request id.
        request: String,
        /// Why.
        condition: String,
    },
    /// The server sent something wrong that was ignored or answered with an error; the stream
    /// carries on.
    Warning(String),
}

/// Call signalling for the engine's call cores, drained with
/// [`crate::Client::poll_call_signal`] (a queue of its own, filled only when
/// [`crate::ClientConfig::calls`] is on, so that an engine without calls is unaffected).
#[derive(Debug, Clone, PartialEq)]
pub enum CallSignal {
    /// A Jingle IQ-set (XEP-0166) for the engine to route by `sid`, already read. The engine
    /// must answer it (the call core does; see [`crate::jingle::session::iq_error`] for a
    /// session it does not have, or one that does not read: `bad-request`, or for an
    /// unreadable `session-initiate` an ack and a `session-terminate` with
    /// [`JingleError::reason`]).
    Jingle {
        /// The sender's full JID.
        from: String,
        /// The IQ id to answer.
        id: String,
        /// The session id.
        sid: String,
        /// The action as written (to answer a `session-initiate` that did not read).
        action: String,
        /// The element, or why it cannot be a call.
        jingle: Result<Jingle, JingleError>,
    },
    /// A Jingle IQ that a call core sent was answered with a result.
    IqResult {
        /// The IQ id.
        id: String,
    },
    /// A Jingle IQ that a call core sent failed (or timed out: `remote-server-timeout`).
    IqError {
        /// The IQ id.
        id: String,
        /// The stanza error condition.
        condition: String,
    },
    /// A XEP-0353 call message, live or as a carbon. Route it by its id: a `propose` from a
    /// contact starts an incoming call (if `ours` is false); anything else goes to the call.
    Message {
        /// The sender's full JID.
        from: String,
        /// The other party's bare JID (the recipient, when it is our own sent carbon).
        peer: String,
        /// Sent by another device of our own account (stop ringing on its accept/reject; never
        /// ring for our own propose).
        ours: bool,
        /// The message.
        message: JingleMessage,
    },
    /// The server's STUN/TURN services (XEP-0215), as ICE servers for calls.
    IceServers(Vec<IceServer>),
}
