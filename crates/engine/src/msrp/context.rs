//! What MSRP session tasks (files and chats) start with, and the messages between them and
//! their account. Their signalling is the one session protocol (`crate::session`); the rest is
//! what only files or only chats need.

use std::sync::Arc;

use lyrebird_msrp::MsrpMedia;
use tokio::sync::mpsc;

use crate::config::FileTransferConfig;
use crate::ground::{AccountId, MessageId, TransferId};
use crate::history::History;
use crate::notice::AccountNotice;
use crate::session::{ChatId, Signal};

/// The cause in the Reason header (RFC 3326) of a BYE that ends a transfer because a person
/// cancelled it. A BYE alone does not say so: a sender also ends a session it gives up, to
/// resume in a new one, and the MSRP abort (or 413 REPORT) that does say so can sit behind
/// megabytes of file in a relay while the BYE overtakes it. 487 is SIP's "Request Terminated".
pub(crate) const CANCELLED_CAUSE: u16 = 487;

/// Everything needed to start transfer and chat tasks for one account.
#[derive(Clone)]
pub(crate) struct TaskContext {
    pub(crate) account: AccountId,
    /// The account's own address (CPIM `From`).
    pub(crate) aor: String,
    pub(crate) config: Arc<FileTransferConfig>,
    pub(crate) username: String,
    pub(crate) password: String,
    pub(crate) notices: mpsc::UnboundedSender<AccountNotice>,
    pub(crate) history: History,
    pub(crate) to_account: mpsc::Sender<FromTask>,
}

/// From a transfer or chat task to its account.
#[derive(Debug)]
pub(crate) enum FromTask {
    /// Offer/answer work on the transfer's dialog.
    Signal {
        transfer: TransferId,
        signal: Signal,
    },
    Finished {
        transfer: TransferId,
    },
    /// From a chat session's task.
    Chat(FromChat),
}

/// From the account to a transfer task.
#[derive(Debug)]
pub(crate) enum ToTask {
    /// The peer answered our offer with this SDP.
    Answered { sdp: String },
    /// Our offer was refused (status) or failed.
    OfferRefused { status: u16, reason: String },
    /// The SIP session ended (BYE or CANCEL from the peer, or a local failure).
    SessionEnded,
    /// The peer ended the session saying it cancelled the transfer (see `CANCELLED_CAUSE`).
    PeerCancelled,
    /// The peer offers the rest of an interrupted incoming transfer (RFC 5547 §9).
    Resume { offer: Box<MsrpMedia> },
    /// The person cancelled.
    Cancel,
}

/// From a chat task to its account.
#[derive(Debug)]
pub(crate) enum FromChat {
    /// Offer/answer work on the chat's dialog.
    Signal {
        chat: ChatId,
        signal: Signal,
    },
    /// The session carries messages now.
    Opened {
        chat: ChatId,
    },
    Received {
        chat: ChatId,
        content_type: String,
        body: String,
    },
    Delivered {
        chat: ChatId,
        message: MessageId,
    },
    Failed {
        chat: ChatId,
        message: MessageId,
        status: u16,
        reason: String,
    },
    /// The task ends; `reason` says why when it was not a normal close.
    Finished {
        chat: ChatId,
        reason: Option<String>,
    },
}

/// From the account to a chat task.
#[derive(Debug)]
pub(crate) enum ToChat {
    Answered { sdp: String },
    SessionEnded,
    Send { message: MessageId, body: String },
    Close,
}
