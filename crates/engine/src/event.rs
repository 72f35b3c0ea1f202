//! What the engine tells its front ends. Serialized as JSON objects tagged by `"event"` (the CLI
//! prints them as JSON lines; the desktop shell forwards them to the UI).

use serde::{Deserialize, Serialize};

use crate::ground::{AccountId, CallId, MessageId, TransferId};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EngineEvent {
    /// An account's connection or registration changed.
    AccountState {
        account: AccountId,
        state: AccountState,
    },
    /// Someone is calling. Answer with `EngineHandle::answer`, or reject / hang up.
    IncomingCall {
        account: AccountId,
        call: CallId,
        from: String,
        display_name: Option<String>,
    },
    /// A call moved on.
    CallState {
        account: AccountId,
        call: CallId,
        state: CallState,
    },
    /// Who holds the call changed (RFC 6337): `local` when we put it on hold, `remote` when the
    /// other side did (both can be true). Mute is separate.
    CallHold {
        account: AccountId,
        call: CallId,
        local: bool,
        remote: bool,
    },
    /// How a transfer we asked for is going: the status line the transferred side reports
    /// (RFC 3515 NOTIFY `message/sipfrag`); `final` once it is over (a 2xx: the call is handed
    /// over and ends here).
    CallTransfer {
        account: AccountId,
        call: CallId,
        status: u16,
        reason: String,
        #[serde(rename = "final")]
        done: bool,
    },
    /// The call is being recorded into `path` (what we hear and what we say, mixed), or no
    /// longer (`None`). The other side is not told (no SIP signal); the window shows it.
    CallRecording {
        account: AccountId,
        call: CallId,
        path: Option<String>,
    },
    /// The calls now mixed together in the local conference (empty: there is none). Each
    /// party hears the others and us, never itself.
    Conference { calls: Vec<CallId> },
    /// The other side pressed a key during the call (an RFC 4733 telephone event in the media,
    /// or a SIP INFO with `application/dtmf-relay` or `application/dtmf`).
    DtmfReceived {
        account: AccountId,
        call: CallId,
        /// `0-9`, `*`, `#` or `A-D`.
        digit: String,
    },
    /// A call goes on without a sound-card device that could not be opened (none there, taken
    /// by another program, permission denied): without the microphone the other side hears
    /// silence; without the speaker nothing is played. Told once, when the call's media starts.
    CallDeviceUnavailable {
        account: AccountId,
        call: CallId,
        device: lyrebird_media::DeviceRole,
        reason: String,
    },
    /// A SIP MESSAGE (RFC 3428) arrived.
    MessageReceived {
        account: AccountId,
        from: String,
        content_type: String,
        body: String,
    },
    /// The server accepted an outgoing message for delivery (2xx).
    MessageDelivered {
        account: AccountId,
        message: MessageId,
    },
    /// An outgoing message could not be delivered.
    MessageFailed {
        account: AccountId,
        message: MessageId,
        status: u16,
        reason: String,
    },
    /// Someone offers a file (RFC 5547 push). Accept with `EngineHandle::accept_transfer`,
    /// or decline. Nothing is written before acceptance.
    TransferOffered {
        account: AccountId,
        transfer: TransferId,
        #[serde(flatten)]
        offer: Box<OfferedFile>,
    },
    /// A file transfer moved on.
    TransferState {
        account: AccountId,
        transfer: TransferId,
        state: TransferState,
    },
    /// Bytes the receiver has confirmed (sender) or written (receiver); throttled, the last
    /// one always reaches `total`.
    TransferProgress {
        account: AccountId,
        transfer: TransferId,
        bytes: u64,
        total: u64,
        /// 0–100, two decimals, 100 only when every byte is in.
        percent: f64,
        /// Bytes per second in this session.
        rate_bps: u64,
        /// Estimated time left.
        eta_ms: Option<u64>,
    },
    /// Something from a server or peer was wrong and has been answered or ignored; the
    /// engine carries on.
    Warning {
        account: Option<AccountId>,
        detail: String,
    },
    // ----- XMPP: chat and presence (see `xmpp/`) -----
    /// The XMPP session is usable; `resumed` means the previous stream was resumed (XEP-0198)
    /// and nothing was lost.
    XmppOnline {
        account: AccountId,
        jid: String,
        resumed: bool,
    },
    /// What the server offers (XEP-0030), including its HTTP upload service.
    XmppServerInfo {
        account: AccountId,
        features: Vec<String>,
        upload_service: Option<String>,
    },
    /// A roster contact was added or changed (also one per contact after login).
    Contact {
        account: AccountId,
        jid: String,
        name: Option<String>,
        subscription: String,
        pending_out: bool,
        groups: Vec<String>,
    },
    /// A contact was removed from the roster.
    ContactRemoved { account: AccountId, jid: String },
    /// A contact's resource changed presence.
    Presence {
        account: AccountId,
        /// Full JID (`user@domain/resource`).
        jid: String,
        available: bool,
        show: Option<String>,
        status: Option<String>,
    },
    /// Someone asks to see our presence: approve or deny.
    SubscriptionRequest { account: AccountId, from: String },
    /// `subscribed`, `unsubscribed` or `unsubscribe` from a contact.
    SubscriptionChanged {
        account: AccountId,
        from: String,
        kind: String,
    },
    /// A chat or room message, received or sent (from another device, or the archive). Each
    /// appears once, identified by its stable `id`.
    ChatMessage {
        account: AccountId,
        id: String,
        /// Bare JID of the contact, or the room.
        peer: String,
        from: String,
        nick: Option<String>,
        room: bool,
        outgoing: bool,
        body: String,
        /// The id of the message this one corrects (XEP-0308).
        replaces: Option<String>,
        /// A shared file's URL (XEP-0066).
        url: Option<String>,
        /// `live`, `carbon`, `archive` or `room_history`.
        origin: ChatOrigin,
        sent_at_ms: Option<i64>,
    },
    /// A contact is typing, paused, ... (XEP-0085).
    ChatState {
        account: AccountId,
        from: String,
        state: String,
    },
    /// Our message is `sent` (the server has it), `delivered` (the recipient's client has it)
    /// or `failed`.
    ChatMessageState {
        account: AccountId,
        id: String,
        peer: String,
        state: String,
        reason: Option<String>,
    },
    RoomJoined {
        account: AccountId,
        room: String,
        nick: String,
    },
    /// Joining failed, or we were removed.
    RoomError {
        account: AccountId,
        room: String,
        reason: String,
    },
    RoomSubject {
        account: AccountId,
        room: String,
        subject: String,
    },
    /// An occupant of a room came, changed or left.
    Occupant {
        account: AccountId,
        room: String,
        nick: String,
        jid: Option<String>,
        available: bool,
        role: Option<String>,
        is_self: bool,
    },
    /// Archive catch-up (XEP-0313) finished: `fetched` from the server, `new` of them stored.
    /// `room` is the room whose archive it was, `None` for the account's own. `again_soon`: the
    /// archive is read once more in a moment, for what the server was still storing at login.
    ArchiveSynced {
        account: AccountId,
        room: Option<String>,
        again_soon: bool,
        fetched: u64,
        new: u64,
        elapsed_ms: u64,
    },
    /// What a contact's client supports (XEP-0115).
    PeerFeatures {
        account: AccountId,
        jid: String,
        features: Vec<String>,
    },
    /// An HTTP upload or download progressed.
    FileProgress {
        account: AccountId,
        transfer: u64,
        direction: String,
        bytes: u64,
        total: Option<u64>,
    },
    /// A file was uploaded (XEP-0363) and its link sent as message `message`.
    FileShared {
        account: AccountId,
        transfer: u64,
        to: String,
        url: String,
        sha256: String,
        message: String,
    },
    /// A shared file was downloaded.
    FileDownloaded {
        account: AccountId,
        transfer: u64,
        url: String,
        path: String,
        sha256: String,
        bytes: u64,
    },
    /// An upload or download failed.
    FileFailed {
        account: AccountId,
        transfer: u64,
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum AccountState {
    Connecting,
    /// The WebSocket is open.
    Connected,
    /// The registrar accepted our contact for this many seconds.
    Registered {
        expires_s: u64,
        outbound: bool,
    },
    /// The registrar said no. Not retried by itself: a wrong password stays wrong.
    RegistrationFailed {
        status: u16,
        reason: String,
    },
    Unregistered,
    /// The connection is gone; the engine will reconnect after `delay_ms`.
    Reconnecting {
        attempt: u32,
        delay_ms: u64,
        reason: String,
    },
    /// The account was removed or the engine stopped.
    Stopped,
    /// The server refused our credentials (XMPP SASL). Not retried: fix the account first.
    AuthenticationFailed {
        reason: String,
    },
    /// The server's TLS certificate is not trusted, or is not the one the person trusted for
    /// this account. Not retried: `reason` says what is wrong and what to do.
    Untrusted {
        reason: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum CallDirection {
    Outgoing,
    Incoming,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum CallState {
    /// The offer is being prepared and sent.
    Dialing {
        direction: CallDirection,
        peer: String,
    },
    /// The callee is being alerted (180) or sent early progress (183).
    Ringing { status: u16 },
    /// The call was answered; media is being connected.
    Answered,
    /// ICE and DTLS are up.
    MediaConnected,
    /// The first audio packet from the peer arrived.
    AudioFlowing,
    /// The call is over.
    Ended { reason: String, status: Option<u16> },
}

/// What an incoming offer says about the file (RFC 5547 file selector) and who sends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct OfferedFile {
    pub from: String,
    pub display_name: Option<String>,
    /// As offered: untrusted; the saved file gets a safe name.
    pub file_name: String,
    pub size: Option<u64>,
    pub mime_type: Option<String>,
    /// SHA-256 as 64 lowercase hex digits, if offered.
    pub sha256: Option<String>,
}

/// In or out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum TransferDirection {
    Outgoing,
    Incoming,
}

/// Where a transfer is in its life.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum TransferState {
    /// Outgoing: hashing the file, reaching the relay, offering it.
    Offering {
        peer: String,
        file_name: String,
        size: u64,
    },
    /// Waiting for the person to accept or decline (incoming), or for the peer (outgoing).
    Offered,
    /// Bytes are flowing (again, after an interruption, from `from_byte`).
    Active { from_byte: u64 },
    /// The connection dropped; the transfer will resume from `confirmed`.
    Interrupted { reason: String, confirmed: u64 },
    /// Every byte arrived and the SHA-256 matches. `path` is where the file is (incoming).
    Completed {
        bytes: u64,
        sha256: String,
        path: Option<String>,
        /// Bytes that arrived twice (resumed overlap) and were not written again.
        duplicate_bytes: u64,
        /// Writes that did not continue exactly where the previous one ended (always 0).
        out_of_order_writes: u64,
    },
    /// The peer declined the offer.
    Declined { status: u16 },
    /// Cancelled by us or by the peer.
    Cancelled { by_peer: bool },
    /// It cannot go on; nothing incomplete is left under the file's name.
    Failed { reason: String },
}

/// Where a chat message shown in an event came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum ChatOrigin {
    /// Delivered live.
    Live,
    /// Held on another of our devices (XEP-0280 carbons).
    Carbon,
    /// Fetched from the server archive (XEP-0313).
    Archive,
    /// Room history sent on joining (XEP-0045).
    RoomHistory,
}

impl EngineEvent {
    /// The account an event is about, if any.
    pub fn account(&self) -> Option<AccountId> {
        use EngineEvent as E;
        match self {
            E::Warning { account, .. } => *account,
            E::Conference { .. } => None,
            E::AccountState { account, .. }
            | E::IncomingCall { account, .. }
            | E::CallState { account, .. }
            | E::DtmfReceived { account, .. }
            | E::CallDeviceUnavailable { account, .. }
            | E::CallHold { account, .. }
            | E::CallTransfer { account, .. }
            | E::CallRecording { account, .. }
            | E::MessageReceived { account, .. }
            | E::MessageDelivered { account, .. }
            | E::MessageFailed { account, .. }
            | E::TransferOffered { account, .. }
            | E::TransferState { account, .. }
            | E::TransferProgress { account, .. }
            | E::XmppOnline { account, .. }
            | E::XmppServerInfo { account, .. }
            | E::Contact { account, .. }
            | E::ContactRemoved { account, .. }
            | E::Presence { account, .. }
            | E::SubscriptionRequest { account, .. }
            | E::SubscriptionChanged { account, .. }
            | E::ChatMessage { account, .. }
            | E::ChatState { account, .. }
            | E::ChatMessageState { account, .. }
            | E::RoomJoined { account, .. }
            | E::RoomError { account, .. }
            | E::RoomSubject { account, .. }
            | E::Occupant { account, .. }
            | E::ArchiveSynced { account, .. }
            | E::PeerFeatures { account, .. }
            | E::FileProgress { account, .. }
            | E::FileShared { account, .. }
            | E::FileDownloaded { account, .. }
            | E::FileFailed { account, .. } => Some(*account),
        }
    }
}
