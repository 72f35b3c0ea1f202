//! What the engine tells its front ends. Serialized as JSON objects tagged by `"event"` (the CLI
//! prints them as JSON lines; the desktop shell forwards them to the UI).

use serde::{Deserialize, Serialize};

use crate::{AccountId, CallId, MessageId};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    /// Something from a server or peer was wrong and has been answered or ignored; the
    /// engine carries on.
    Warning {
        account: Option<AccountId>,
        detail: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallDirection {
    Outgoing,
    Incoming,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
