//! The JSON-line commands of a SIP account of its own: messages, transfers, files and MSRP chat.
//! Call commands, which XMPP accounts take too, are in `calls.rs`.

use std::path::PathBuf;

use lyrebird_engine::{AccountId, CallId, EngineError, EngineHandle, TransferId};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AudioArgs;
use crate::calls;
use crate::service::Refusal;

/// A command for a SIP account, read from stdin (`help::SIP_COMMANDS` documents each).
#[derive(Debug, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub(crate) enum SipCommand {
    Message {
        target: String,
        body: String,
    },
    Transfer {
        call: u64,
        target: String,
    },
    AttendedTransfer {
        call: u64,
        to: u64,
    },
    /// Open an MSRP chat session (RFC 4975); `message` to that peer then goes through it.
    OpenChat {
        target: String,
    },
    /// Offer a file over MSRP.
    SendFile {
        target: String,
        path: PathBuf,
    },
    /// Accept an offered file (into `folder`, else --downloads).
    AcceptFile {
        transfer: u64,
        #[serde(default)]
        folder: Option<PathBuf>,
    },
    DeclineFile {
        transfer: u64,
    },
    CancelFile {
        transfer: u64,
    },
}

/// Carries out one command for the SIP account `account`; `request` is the whole JSON line.
pub(crate) async fn handle(
    engine: &EngineHandle,
    account: AccountId,
    audio: &AudioArgs,
    request: Value,
) -> Result<Value, Refusal> {
    if calls::takes(&request) {
        return calls::handle(engine, account, audio, request).await;
    }
    let command: SipCommand =
        serde_json::from_value(request).map_err(|e| Refusal::Invalid(e.to_string()))?;
    let outcome: Result<Value, EngineError> = match command {
        SipCommand::Message { target, body } => engine
            .send_message(account, &target, &body)
            .await
            .map(|message| json!({"message": message})),
        SipCommand::Transfer { call, target } => engine
            .transfer(CallId(call), &target)
            .await
            .map(|()| json!({})),
        SipCommand::AttendedTransfer { call, to } => engine
            .attended_transfer(CallId(call), CallId(to))
            .await
            .map(|()| json!({})),
        SipCommand::OpenChat { target } => engine
            .open_chat_session(account, &target)
            .await
            .map(|()| json!({})),
        SipCommand::SendFile { target, path } => engine
            .send_file(account, &target, path)
            .await
            .map(|transfer| json!({"transfer": transfer})),
        SipCommand::AcceptFile { transfer, folder } => engine
            .accept_transfer(TransferId(transfer), folder)
            .await
            .map(|()| json!({})),
        SipCommand::DeclineFile { transfer } => engine
            .decline_transfer(TransferId(transfer))
            .await
            .map(|()| json!({})),
        SipCommand::CancelFile { transfer } => engine
            .cancel_transfer(TransferId(transfer))
            .await
            .map(|()| json!({})),
    };
    Ok(outcome?)
}
