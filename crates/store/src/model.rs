//! Plain data types exchanged with the store.
//!
//! `New*` structs are what the engine writes; the structs without the prefix are what it reads
//! back (the same fields plus the row id and values the store derives). Every timestamp is an
//! `i64` of milliseconds since the UNIX epoch, supplied by the caller: the store never reads a
//! clock, so tests can use any time they like and the engine decides which clock is trusted.

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use serde::{Deserialize, Serialize};

/// Declares a row-id newtype that converts to and from SQLite's INTEGER.
macro_rules! row_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub i64);

        // Row ids are plain numbers to a front end; declaring them inline keeps the store's
        // `AccountId` from clashing with the engine's type of the same name.
        #[cfg(feature = "ts")]
        impl ts_rs::TS for $name {
            type WithoutGenerics = Self;
            type OptionInnerType = Self;
            fn name(_: &ts_rs::Config) -> String {
                "number".to_owned()
            }
            fn inline(_: &ts_rs::Config) -> String {
                "number".to_owned()
            }
        }

        impl ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                self.0.to_sql()
            }
        }

        impl FromSql for $name {
            fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
                i64::column_result(value).map($name)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}#{}", stringify!($name), self.0)
            }
        }
    };
}

row_id!(
    /// Row id of an account.
    AccountId
);
row_id!(
    /// Row id of a contact (roster / address-book entry).
    ContactId
);
row_id!(
    /// Row id of a conversation.
    ConversationId
);
row_id!(
    /// Row id of a message; also its FTS5 rowid.
    MessageId
);
row_id!(
    /// Row id of a call record.
    CallId
);
row_id!(
    /// Row id of a file transfer.
    TransferId
);

/// Declares a closed set of values stored as lowercase TEXT (the schema's CHECK constraints
/// list the same words, so a typo in SQL or Rust fails loudly instead of storing junk).
macro_rules! text_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[cfg_attr(feature = "ts", derive(ts_rs::TS))]
        $(#[$doc])*
        pub enum $name {
            $($(#[$vdoc])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// The word stored in the database.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            /// Parses the stored word.
            pub fn parse(text: &str) -> Option<Self> {
                match text {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(self.as_str()))
            }
        }

        impl FromSql for $name {
            fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
                let text = value.as_str()?;
                $name::parse(text).ok_or_else(|| {
                    FromSqlError::Other(
                        format!(concat!("unknown ", stringify!($name), " {:?}"), text).into(),
                    )
                })
            }
        }
    };
}

text_enum!(
    /// Which protocol an account speaks.
    AccountKind {
        /// SIP over WebSocket (RFC 7118): calls, SIP MESSAGE.
        Sip => "sip",
        /// XMPP over WebSocket (RFC 7395): chat, presence.
        Xmpp => "xmpp",
    }
);

text_enum!(
    /// Presence subscription state of a contact, as in the XMPP roster
    /// (RFC 6121 §2.1.2.5); SIP presence (RFC 3856) maps onto the same four states.
    Subscription {
        /// Neither side sees the other's presence.
        None => "none",
        /// We see the contact's presence.
        To => "to",
        /// The contact sees ours.
        From => "from",
        /// Both directions.
        Both => "both",
    }
);

text_enum!(
    /// One-to-one chat or multi-user room.
    ConversationKind {
        /// One peer.
        Direct => "direct",
        /// A multi-user chat room (XEP-0045) or similar.
        Room => "room",
    }
);

text_enum!(
    /// Which way something travelled, seen from this client.
    Direction {
        /// Received from a peer.
        In => "in",
        /// Sent by this client.
        Out => "out",
    }
);

text_enum!(
    /// Delivery state of a message. For outgoing messages it follows the receipts
    /// (XEP-0184 delivered, XEP-0333 displayed = read); incoming messages are `Delivered`
    /// until the person has seen them, then `Read`.
    DeliveryState {
        /// Stored, not yet handed to the transport (offline or reconnecting).
        Queued => "queued",
        /// Handed to the server.
        Sent => "sent",
        /// The peer's client received it.
        Delivered => "delivered",
        /// The peer (or, for incoming, the local person) has displayed it.
        Read => "read",
        /// Sending failed permanently.
        Failed => "failed",
    }
);

impl DeliveryState {
    /// Whether moving from `self` to `next` is progress. Receipts arrive out of order and
    /// duplicated (XEP-0184 §5 lets a client send them more than once), so the store only
    /// ever moves a message forward: queued → sent → delivered → read. `Failed` is reachable
    /// only before the peer confirmed anything, and a failed message may be retried (queued)
    /// or proven delivered by a late receipt.
    pub fn may_become(self, next: DeliveryState) -> bool {
        use DeliveryState::*;
        if self == next {
            return false;
        }
        match (self, next) {
            (Queued | Sent, Failed) => true,
            (_, Failed) => false,
            (Failed, _) => true,
            (from, to) => to.progress() > from.progress(),
        }
    }

    fn progress(self) -> u8 {
        match self {
            DeliveryState::Queued | DeliveryState::Failed => 0,
            DeliveryState::Sent => 1,
            DeliveryState::Delivered => 2,
            DeliveryState::Read => 3,
        }
    }
}

text_enum!(
    /// Why a call ended.
    CallEndReason {
        /// This side hung up an established call (sent BYE).
        LocalHangup => "local_hangup",
        /// The peer hung up an established call (received BYE).
        RemoteHangup => "remote_hangup",
        /// This side cancelled before an answer (CANCEL, RFC 3261 §9).
        LocalCancel => "local_cancel",
        /// The caller cancelled before we answered.
        RemoteCancel => "remote_cancel",
        /// Declined (603 / 486 sent or received).
        Declined => "declined",
        /// The callee was busy (486 / 600).
        Busy => "busy",
        /// Nobody answered before the timeout (408 / 480 / local ring timeout).
        NoAnswer => "no_answer",
        /// Answered on another device of the same account (CANCEL with
        /// `Reason: SIP;cause=200`, RFC 3326).
        AnsweredElsewhere => "answered_elsewhere",
        /// Transport, media or protocol failure.
        Failed => "failed",
    }
);

text_enum!(
    /// Life cycle of a file transfer.
    // The engine's `TransferState` (with progress details) is what a front end mostly sees.
    #[cfg_attr(feature = "ts", ts(rename = "StoredTransferState"))]
    TransferState {
        /// Offered, not yet accepted.
        Offered => "offered",
        /// Bytes are flowing.
        Active => "active",
        /// All bytes confirmed and the hash (if any) verified.
        Completed => "completed",
        /// Aborted by an error.
        Failed => "failed",
        /// Cancelled or declined by either side.
        Cancelled => "cancelled",
    }
);

/// An account to create or update, keyed by (`kind`, `address`).
///
/// There is deliberately no password field: secrets live in the OS keyring or in memory,
/// never in this database (which is backed up, synced and copied around by people).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct NewAccount {
    /// Protocol.
    pub kind: AccountKind,
    /// SIP address-of-record (`sip:alice@example.com`) or bare JID (`alice@example.com`).
    pub address: String,
    /// Name shown to the person and sent to peers.
    pub display_name: Option<String>,
    /// WebSocket URL of the server (`wss://sip.example.com/ws`).
    pub server_url: String,
    /// Non-secret settings; must be a JSON object. On update it is merged into the stored
    /// object as an RFC 7396 merge patch: keys not named stay, a `null` value removes a key.
    pub settings: serde_json::Value,
    /// When the account was first created. Kept from the first insert on later upserts.
    pub created_at_ms: i64,
}

/// A stored account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Account {
    /// Row id.
    pub id: AccountId,
    /// Protocol.
    pub kind: AccountKind,
    /// Address-of-record or bare JID.
    pub address: String,
    /// Display name.
    pub display_name: Option<String>,
    /// Server WebSocket URL.
    pub server_url: String,
    /// Non-secret settings (a JSON object).
    pub settings: serde_json::Value,
    /// Creation time.
    pub created_at_ms: i64,
}

/// A contact to create or update, keyed by (`account`, `address`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct NewContact {
    /// Owning account.
    pub account: AccountId,
    /// SIP URI or bare JID of the contact.
    pub address: String,
    /// Name the person gave the contact.
    pub display_name: Option<String>,
    /// Roster groups (RFC 6121 §2.1.2.4), in the order given.
    pub groups: Vec<String>,
    /// Presence subscription.
    pub subscription: Subscription,
}

/// A stored contact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Contact {
    /// Row id.
    pub id: ContactId,
    /// Owning account.
    pub account: AccountId,
    /// SIP URI or bare JID.
    pub address: String,
    /// Display name.
    pub display_name: Option<String>,
    /// Roster groups.
    pub groups: Vec<String>,
    /// Presence subscription.
    pub subscription: Subscription,
}

/// A stored conversation: one peer or room on one account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Conversation {
    /// Row id.
    pub id: ConversationId,
    /// Owning account.
    pub account: AccountId,
    /// Peer SIP URI, bare JID, or room JID.
    pub peer_address: String,
    /// Direct or room.
    pub kind: ConversationKind,
    /// Room subject or a name the person chose.
    pub title: Option<String>,
    /// Timestamp of the newest message, if any.
    pub last_activity_at_ms: Option<i64>,
    /// Incoming messages not yet read.
    pub unread_count: u32,
}

/// A message to store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct NewMessage {
    /// Conversation it belongs to (see `Store::find_or_create_conversation`).
    pub conversation: ConversationId,
    /// In or out.
    pub direction: Direction,
    /// Who wrote it: SIP URI, JID, or room occupant JID.
    pub sender: String,
    /// The text (or, for non-text content types, its textual form).
    pub body: String,
    /// MIME type of `body`, e.g. `text/plain`.
    pub content_type: String,
    /// Protocol identifier, unique within the conversation: XEP-0359 stanza-id / origin-id,
    /// or the SIP MESSAGE's Call-ID. A second insert with the same id (MAM replaying what
    /// live delivery already stored, a retransmission) is skipped and reported as duplicate.
    pub stable_id: String,
    /// When the sender says it was sent (XEP-0203 delay, SIP Date), if known.
    pub sent_at_ms: Option<i64>,
    /// When this client received it (or, outgoing, created it).
    pub received_at_ms: i64,
    /// Initial delivery state.
    pub state: DeliveryState,
    /// For a correction (XEP-0308): the `stable_id` of the message it replaces.
    pub corrects_stable_id: Option<String>,
}

/// A stored message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Message {
    /// Row id.
    pub id: MessageId,
    /// Conversation.
    pub conversation: ConversationId,
    /// In or out.
    pub direction: Direction,
    /// Author.
    pub sender: String,
    /// Text.
    pub body: String,
    /// MIME type of `body`.
    pub content_type: String,
    /// Protocol identifier, unique within the conversation.
    pub stable_id: String,
    /// Sender's timestamp.
    pub sent_at_ms: Option<i64>,
    /// Local receive / creation time.
    pub received_at_ms: i64,
    /// Delivery state.
    pub state: DeliveryState,
    /// `stable_id` of the message this one corrects.
    pub corrects_stable_id: Option<String>,
}

impl Message {
    /// The time the message is ordered by: the sender's timestamp when known, else the
    /// local receive time (so history fetched late from an archive still sorts where it was
    /// written).
    pub fn sort_at_ms(&self) -> i64 {
        self.sent_at_ms.unwrap_or(self.received_at_ms)
    }

    /// Cursor for fetching the page of messages older than this one.
    pub fn cursor(&self) -> MessageCursor {
        MessageCursor {
            at_ms: self.sort_at_ms(),
            id: self.id,
        }
    }
}

/// Position in a conversation's history for keyset pagination: messages strictly before
/// (`at_ms`, `id`) in (time, id) order. Stable while new messages arrive, unlike OFFSET.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct MessageCursor {
    /// `Message::sort_at_ms` of the boundary message.
    pub at_ms: i64,
    /// Its id, breaking ties between messages with the same timestamp.
    pub id: MessageId,
}

/// How a change names an existing message: by row id (the engine stored it itself) or by
/// its protocol id (a receipt or correction from a peer names it that way).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub enum MessageRef {
    /// By row id.
    Id(MessageId),
    /// By conversation and `stable_id`.
    Stable {
        /// Conversation.
        conversation: ConversationId,
        /// Protocol id.
        stable_id: String,
    },
}

/// One full-text search result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct SearchHit {
    /// The matching message.
    pub message: Message,
    /// The account of the message's conversation.
    pub account: AccountId,
    /// The conversation's peer (SIP URI, bare JID or room JID), to open it from the hit.
    pub peer_address: String,
    /// Direct or room.
    pub kind: ConversationKind,
    /// A short excerpt of the body with each matched term between
    /// [`SNIPPET_MATCH_START`] and [`SNIPPET_MATCH_END`]. The excerpt is raw text: a UI
    /// must escape it before rendering it as markup.
    pub snippet: String,
    /// FTS5 bm25 rank: lower is a better match.
    pub rank: f64,
}

/// Marks the start of a matched term in [`SearchHit::snippet`] (ASCII STX, which never
/// appears in typed text).
pub const SNIPPET_MATCH_START: &str = "\u{2}";
/// Marks the end of a matched term in [`SearchHit::snippet`] (ASCII ETX).
pub const SNIPPET_MATCH_END: &str = "\u{3}";

/// A call to record when it starts ringing (incoming) or is dialled (outgoing).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct NewCall {
    /// Account that placed or received it.
    pub account: AccountId,
    /// Protocol key unique per account, e.g. the SIP Call-ID (RFC 3261 §8.1.1.4). A second
    /// insert with the same key is reported as duplicate.
    pub call_key: String,
    /// In or out.
    pub direction: Direction,
    /// Remote party's URI.
    pub peer_address: String,
    /// When the INVITE was sent or received.
    pub started_at_ms: i64,
}

/// How the end of a call is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct CallEnd {
    /// When it ended.
    pub at_ms: i64,
    /// Why.
    pub reason: CallEndReason,
}

/// How a change names an existing call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub enum CallRef {
    /// By row id.
    Id(CallId),
    /// By account and protocol key (SIP Call-ID).
    Key {
        /// Account.
        account: AccountId,
        /// Protocol key.
        call_key: String,
    },
}

/// A stored call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct CallRecord {
    /// Row id.
    pub id: CallId,
    /// Account.
    pub account: AccountId,
    /// Protocol key (SIP Call-ID).
    pub call_key: String,
    /// In or out.
    pub direction: Direction,
    /// Remote party.
    pub peer_address: String,
    /// INVITE time.
    pub started_at_ms: i64,
    /// Answer time (200 OK), if answered.
    pub answered_at_ms: Option<i64>,
    /// End time, if ended.
    pub ended_at_ms: Option<i64>,
    /// Why it ended.
    pub end_reason: Option<CallEndReason>,
    /// Talk time: end minus answer, for answered calls that ended.
    pub duration_ms: Option<i64>,
    /// An incoming call that was never answered here (derived by the database).
    pub missed: bool,
}

/// A file transfer to create or update, keyed by (`account`, `transfer_key`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct NewTransfer {
    /// Account.
    pub account: AccountId,
    /// Protocol key unique per account (MSRP session id, XEP-0363 slot, ...).
    pub transfer_key: String,
    /// In or out.
    pub direction: Direction,
    /// Remote party.
    pub peer_address: String,
    /// File name as offered (RFC 5547 `a=file-selector` name); never trusted as a path.
    pub file_name: String,
    /// Size in bytes, if announced.
    pub size_bytes: Option<u64>,
    /// MIME type, if announced.
    pub mime_type: Option<String>,
    /// SHA-256 of the content as 64 lowercase hex digits, if announced or computed.
    pub sha256: Option<String>,
    /// Where the file is (outgoing) or is being written (incoming), as UTF-8.
    pub local_path: Option<String>,
    /// State.
    pub state: TransferState,
    /// Bytes the receiver has confirmed (MSRP success REPORTs, RFC 4975 §7.1.2).
    pub bytes_confirmed: u64,
    /// When it was offered.
    pub started_at_ms: i64,
    /// When it finished, failed or was cancelled.
    pub ended_at_ms: Option<i64>,
    /// Human-readable error for failed transfers.
    pub error: Option<String>,
}

/// A stored file transfer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Transfer {
    /// Row id.
    pub id: TransferId,
    /// Account.
    pub account: AccountId,
    /// Protocol key.
    pub transfer_key: String,
    /// In or out.
    pub direction: Direction,
    /// Remote party.
    pub peer_address: String,
    /// Offered file name.
    pub file_name: String,
    /// Size in bytes.
    pub size_bytes: Option<u64>,
    /// MIME type.
    pub mime_type: Option<String>,
    /// SHA-256 (lowercase hex).
    pub sha256: Option<String>,
    /// Local path.
    pub local_path: Option<String>,
    /// State.
    pub state: TransferState,
    /// Bytes confirmed.
    pub bytes_confirmed: u64,
    /// Offer time.
    pub started_at_ms: i64,
    /// End time.
    pub ended_at_ms: Option<i64>,
    /// Error text.
    pub error: Option<String>,
}

/// The XMPP stream-management session (XEP-0198) an account is on, for a later run to resume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamResumption {
    /// Account.
    pub account: AccountId,
    /// The server's resumption id.
    pub resume_id: String,
    /// Our full JID on that session.
    pub jid: String,
    /// Stanzas received on it whose messages are stored.
    pub handled: u64,
    /// When this was written.
    pub updated_at_ms: i64,
}

/// How far the catch-up of one server archive (XEP-0313) has got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveSync {
    /// Account.
    pub account: AccountId,
    /// Which archive: `""` for the account's own, else a room's bare JID.
    pub archive: String,
    /// The archive id (RSM UID) of the last item of the last page stored.
    pub last_id: String,
    /// The newest message time among what was stored, if any message had one: where a
    /// catch-up restarts by date when the server no longer knows `last_id`.
    pub last_at_ms: Option<i64>,
    /// Whether that page was the archive's last (the catch-up reached its end).
    pub complete: bool,
    /// When this was written.
    pub updated_at_ms: i64,
}
