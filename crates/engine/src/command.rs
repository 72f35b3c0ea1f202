//! Commands from the engine's front ends for one account: its calls, messages and files. The
//! supervisor routes each to the account that owns the call or transfer, whatever protocol that
//! account speaks; an account answers what it cannot do with an error.

use tokio::sync::oneshot;

use crate::config::CallAudio;
use crate::ground::{CallId, EngineError, MessageId};
use lyrebird_media::MediaStats;

/// Commands from the engine's front ends, routed to the account that owns the call or message.
#[derive(Debug)]
pub(crate) enum AccountCommand {
    Call {
        target: String,
        audio: CallAudio,
        reply: oneshot::Sender<Result<CallId, EngineError>>,
    },
    Answer {
        call: CallId,
        audio: Option<CallAudio>,
        reply: oneshot::Sender<Result<(), EngineError>>,
    },
    Reject {
        call: CallId,
        reply: oneshot::Sender<Result<(), EngineError>>,
    },
    Hangup {
        call: CallId,
        reply: oneshot::Sender<Result<(), EngineError>>,
    },
    SendMessage {
        target: String,
        body: String,
        reply: oneshot::Sender<Result<MessageId, EngineError>>,
    },
    Stats {
        call: CallId,
        reply: oneshot::Sender<Result<MediaStats, EngineError>>,
    },
    SetMuted {
        call: CallId,
        muted: bool,
        reply: oneshot::Sender<Result<(), EngineError>>,
    },
    SendDtmf {
        call: CallId,
        digit: char,
        reply: oneshot::Sender<Result<(), EngineError>>,
    },
    /// Ask the peer to call `target` instead (blind transfer).
    Transfer {
        call: CallId,
        target: String,
        reply: oneshot::Sender<Result<(), EngineError>>,
    },
    /// Connect the peer of `call` with the peer of `to` (attended transfer).
    AttendedTransfer {
        call: CallId,
        to: CallId,
        reply: oneshot::Sender<Result<(), EngineError>>,
    },
    /// Record a call into a new file in `folder`, or stop recording (`None`).
    Record {
        call: CallId,
        folder: Option<std::path::PathBuf>,
        reply: oneshot::Sender<Result<(), EngineError>>,
    },
    /// Mix a call into a conference, or take it out (`None`).
    Conference {
        call: CallId,
        conference: Option<lyrebird_media::Conference>,
        reply: oneshot::Sender<Result<(), EngineError>>,
    },
    /// Hold (`hold`) or resume a call.
    Hold {
        call: CallId,
        hold: bool,
        reply: oneshot::Sender<Result<(), EngineError>>,
    },
    /// File transfers and MSRP chats (see `msrp/`).
    Files(crate::msrp::TransferCommand),
    Shutdown {
        reply: oneshot::Sender<()>,
    },
}

impl AccountCommand {
    /// Answers the command's caller with an error instead of carrying it out.
    pub(crate) fn fail(self, error: EngineError) {
        match self {
            AccountCommand::Call { reply, .. } => drop(reply.send(Err(error))),
            AccountCommand::Answer { reply, .. }
            | AccountCommand::Reject { reply, .. }
            | AccountCommand::Hangup { reply, .. }
            | AccountCommand::SetMuted { reply, .. }
            | AccountCommand::Hold { reply, .. }
            | AccountCommand::Conference { reply, .. }
            | AccountCommand::Record { reply, .. }
            | AccountCommand::Transfer { reply, .. }
            | AccountCommand::AttendedTransfer { reply, .. }
            | AccountCommand::SendDtmf { reply, .. } => drop(reply.send(Err(error))),
            AccountCommand::SendMessage { reply, .. } => drop(reply.send(Err(error))),
            AccountCommand::Stats { reply, .. } => drop(reply.send(Err(error))),
            AccountCommand::Files(command) => command.fail(error),
            AccountCommand::Shutdown { reply } => drop(reply.send(())),
        }
    }
}
