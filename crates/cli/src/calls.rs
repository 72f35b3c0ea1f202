//! The JSON-line commands for calls, which SIP and XMPP accounts both take: the engine treats a
//! call the same whichever network carries it.

use std::path::PathBuf;

use lyrebird_engine::{
    AccountId, AudioSink, AudioSource, CallAudio, CallId, EngineError, EngineHandle,
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AudioArgs;
use crate::help::{self, CALL_COMMANDS};
use crate::service::Refusal;

/// A call command, read from stdin (`help::CALL_COMMANDS` documents each).
#[derive(Debug, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub(crate) enum CallCommand {
    Call {
        target: String,
        #[serde(flatten)]
        audio: AudioChoice,
    },
    Answer {
        call: u64,
        #[serde(flatten)]
        audio: AudioChoice,
    },
    Reject {
        call: u64,
    },
    Hangup {
        call: u64,
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
}

/// A call command's own choice of audio (`play`, `loop`, `record`, `echo`), over the command
/// line's.
#[derive(Debug, Deserialize)]
pub(crate) struct AudioChoice {
    #[serde(default)]
    play: Option<PathBuf>,
    /// With `play`: start again at the end.
    #[serde(default, rename = "loop")]
    loop_play: bool,
    #[serde(default)]
    record: Option<PathBuf>,
    #[serde(default)]
    echo: bool,
}

impl AudioChoice {
    /// The audio for the call: this choice, else the command line's `defaults`.
    fn or(self, defaults: &AudioArgs) -> CallAudio {
        if self.echo {
            return CallAudio::echo();
        }
        let mut audio = defaults.to_audio();
        if let Some(path) = self.play {
            audio.source = AudioSource::Wav {
                path,
                looped: self.loop_play,
            };
        }
        if let Some(path) = self.record {
            audio.sink = AudioSink::Wav { path };
        }
        audio
    }
}

/// Whether `request` is a call command.
pub(crate) fn takes(request: &Value) -> bool {
    request
        .get("cmd")
        .and_then(Value::as_str)
        .is_some_and(|cmd| help::lists(CALL_COMMANDS, cmd))
}

/// Carries out one call command for `account`; `request` is the whole JSON line.
pub(crate) async fn handle(
    engine: &EngineHandle,
    account: AccountId,
    audio: &AudioArgs,
    request: Value,
) -> Result<Value, Refusal> {
    let command: CallCommand =
        serde_json::from_value(request).map_err(|e| Refusal::Invalid(e.to_string()))?;
    let outcome: Result<Value, EngineError> = match command {
        CallCommand::Call {
            target,
            audio: choice,
        } => engine
            .call(account, &target, choice.or(audio))
            .await
            .map(|call| json!({"call": call})),
        CallCommand::Answer {
            call,
            audio: choice,
        } => engine
            .answer(CallId(call), Some(choice.or(audio)))
            .await
            .map(|()| json!({})),
        CallCommand::Reject { call } => engine.reject(CallId(call)).await.map(|()| json!({})),
        CallCommand::Hangup { call } => engine.hangup(CallId(call)).await.map(|()| json!({})),
        CallCommand::Stats { call } => engine
            .call_stats(CallId(call))
            .await
            .map(|stats| json!({"stats": stats})),
        CallCommand::Mute { call, muted } => engine
            .set_muted(CallId(call), muted)
            .await
            .map(|()| json!({})),
        CallCommand::Dtmf { call, digit } => engine
            .send_dtmf(CallId(call), digit)
            .await
            .map(|()| json!({})),
        CallCommand::Hold { call } => engine.hold(CallId(call)).await.map(|()| json!({})),
        CallCommand::Resume { call } => engine.resume(CallId(call)).await.map(|()| json!({})),
        CallCommand::Merge { calls } => engine
            .merge(calls.into_iter().map(CallId).collect())
            .await
            .map(|()| json!({})),
        CallCommand::Split { call } => engine.split(CallId(call)).await.map(|()| json!({})),
        CallCommand::LeaveConference => engine.leave_conference().await.map(|()| json!({})),
        CallCommand::Record { call, on } => {
            engine.record(CallId(call), on).await.map(|()| json!({}))
        }
    };
    Ok(outcome?)
}
