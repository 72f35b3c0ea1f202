//! The JSON-line commands of a SIP account: calls, messages, files and MSRP chat.

use std::path::PathBuf;

use lyrebird_engine::{
    AccountId, AudioSink, AudioSource, CallAudio, CallId, EngineError, EngineHandle, TransferId,
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AudioArgs;
use crate::service::Refusal;

/// A command for a SIP account, read from stdin (`help::SIP_COMMANDS` documents each).
#[derive(Debug, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub(crate) enum SipCommand {
    Call {
        target: String,
        #[serde(default)]
        play: Option<PathBuf>,
        /// With `play`: start again at the end.
        #[serde(default, rename = "loop")]
        loop_play: bool,
        #[serde(default)]
        record: Option<PathBuf>,
        #[serde(default)]
        echo: bool,
    },
    Answer {
        call: u64,
        #[serde(default)]
        play: Option<PathBuf>,
        #[serde(default, rename = "loop")]
        loop_play: bool,
        #[serde(default)]
        record: Option<PathBuf>,
        #[serde(default)]
        echo: bool,
    },
    Reject {
        call: u64,
    },
    Hangup {
        call: u64,
    },
    Message {
        target: String,
        body: String,
    },
    Stats {
        call: u64,
    },
    Mute {
        call: u64,
        muted: bool,
    },
    Dtmf {
        call: u64,
        digit: char,
    },
    Hold {
        call: u64,
    },
    Resume {
        call: u64,
    },
    Transfer {
        call: u64,
        target: String,
    },
    AttendedTransfer {
        call: u64,
        to: u64,
    },
    /// Mix these calls (and those already mixed) into the local conference.
    Merge {
        calls: Vec<u64>,
    },
    /// Take a call out of the conference.
    Split {
        call: u64,
    },
    /// Leave the conference: connect the other two, or end it for everyone.
    LeaveConference,
    /// Start (`on`) or stop recording a call.
    Record {
        call: u64,
        on: bool,
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

/// Audio for a call started from stdin: the command's own choice, else the command line's.
fn choose_audio(
    defaults: &AudioArgs,
    play: Option<PathBuf>,
    looped: bool,
    record: Option<PathBuf>,
    echo: bool,
) -> CallAudio {
    if echo {
        return CallAudio::echo();
    }
    let mut audio = defaults.to_audio();
    if let Some(path) = play {
        audio.source = AudioSource::Wav { path, looped };
    }
    if let Some(path) = record {
        audio.sink = AudioSink::Wav { path };
    }
    audio
}

/// Carries out one command for the SIP account `account`; `request` is the whole JSON line.
pub(crate) async fn handle(
    engine: &EngineHandle,
    account: AccountId,
    audio: &AudioArgs,
    request: Value,
) -> Result<Value, Refusal> {
    let command: SipCommand =
        serde_json::from_value(request).map_err(|e| Refusal::Invalid(e.to_string()))?;
    let outcome: Result<Value, EngineError> = match command {
        SipCommand::Call {
            target,
            play,
            loop_play,
            record,
            echo,
        } => engine
            .call(
                account,
                &target,
                choose_audio(audio, play, loop_play, record, echo),
            )
            .await
            .map(|call| json!({"call": call})),
        SipCommand::Answer {
            call,
            play,
            loop_play,
            record,
            echo,
        } => engine
            .answer(
                CallId(call),
                Some(choose_audio(audio, play, loop_play, record, echo)),
            )
            .await
            .map(|()| json!({})),
        SipCommand::Reject { call } => engine.reject(CallId(call)).await.map(|()| json!({})),
        SipCommand::Hangup { call } => engine.hangup(CallId(call)).await.map(|()| json!({})),
        SipCommand::Message { target, body } => engine
            .send_message(account, &target, &body)
            .await
            .map(|message| json!({"message": message})),
        SipCommand::Stats { call } => engine
            .call_stats(CallId(call))
            .await
            .map(|stats| json!({"stats": stats})),
        SipCommand::Mute { call, muted } => engine
            .set_muted(CallId(call), muted)
            .await
            .map(|()| json!({})),
        SipCommand::Dtmf { call, digit } => engine
            .send_dtmf(CallId(call), digit)
            .await
            .map(|()| json!({})),
        SipCommand::Hold { call } => engine.hold(CallId(call)).await.map(|()| json!({})),
        SipCommand::Resume { call } => engine.resume(CallId(call)).await.map(|()| json!({})),
        SipCommand::Transfer { call, target } => engine
            .transfer(CallId(call), &target)
            .await
            .map(|()| json!({})),
        SipCommand::AttendedTransfer { call, to } => engine
            .attended_transfer(CallId(call), CallId(to))
            .await
            .map(|()| json!({})),
        SipCommand::Merge { calls } => engine
            .merge(calls.into_iter().map(CallId).collect())
            .await
            .map(|()| json!({})),
        SipCommand::Split { call } => engine.split(CallId(call)).await.map(|()| json!({})),
        SipCommand::LeaveConference => engine.leave_conference().await.map(|()| json!({})),
        SipCommand::Record { call, on } => {
            engine.record(CallId(call), on).await.map(|()| json!({}))
        }
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
