//! One call's media: a task that owns the `MediaSession` (WebRTC peer connection and audio).
//!
//! The account task owns the call's SIP dialog; the two talk over channels. The call task builds
//! the offer or the answer, applies the peer's answer, reports media milestones, and tears the
//! session down (finalising any recording) when the SIP side says the call is over.

use std::sync::Arc;

use lyrebird_media::{Conference, HoldState, MediaConfig, MediaError, MediaEvent, MediaSession};
use lyrebird_store::CallEndReason;
use tokio::sync::{mpsc, oneshot};
use tracing::{Instrument, debug, warn};

use crate::config::CallAudio;
use crate::event::{CallState, EngineEvent};
use crate::ground::{AccountId, CallId, EngineError};
use crate::notice::AccountNotice;
use crate::session::Signal;
use lyrebird_media::MediaStats;

/// Which side of the offer/answer exchange (RFC 3264) this call is on.
#[derive(Debug)]
pub(crate) enum CallRole {
    /// Outgoing call: we offer in the INVITE.
    Offerer,
    /// Incoming call: the INVITE carried the peer's offer.
    Answerer { offer: String },
    /// Incoming call taken before its offer came (XEP-0353: the person accepts the proposal,
    /// then the caller sends the offer). The media session gets ready meanwhile, so the offer
    /// is answered as soon as it arrives (`ToCall::Reoffer`, answered with `Signal::Answer`).
    AnswererAwaitingOffer,
}

/// Account task → call task.
#[derive(Debug)]
pub(crate) enum ToCall {
    /// The peer's answer (from a 183 or the 200).
    RemoteAnswer {
        sdp: String,
    },
    /// A candidate the peer trickled for media section `mid` (Jingle `transport-info`).
    RemoteCandidate {
        mid: String,
        candidate: String,
    },
    /// A re-INVITE's offer.
    Reoffer {
        sdp: String,
    },
    /// Put the call on hold (`hold`) or resume it: the task makes the offer.
    Hold {
        hold: bool,
        reply: oneshot::Sender<Result<(), EngineError>>,
    },
    /// The peer accepted our hold or resume offer with this answer.
    HoldAnswered {
        sdp: Option<String>,
    },
    /// The peer refused our hold or resume offer.
    HoldRefused,
    /// Record the call into this file, or stop (`None`).
    Record {
        path: Option<std::path::PathBuf>,
        reply: oneshot::Sender<Result<(), EngineError>>,
    },
    /// Mix the call into this conference (`None`: take it out).
    Conference {
        conference: Option<Conference>,
        reply: oneshot::Sender<Result<(), EngineError>>,
    },
    /// Our hold or resume offer was not sent: the peer's offer came first, and our answer to
    /// it carries the hold or resume.
    HoldSuperseded,
    Stats {
        reply: oneshot::Sender<Result<MediaStats, EngineError>>,
    },
    SetMuted {
        muted: bool,
    },
    Dtmf {
        digit: char,
        reply: oneshot::Sender<Result<(), EngineError>>,
    },
    /// The SIP side is over.
    End,
}

impl ToCall {
    /// Answers whoever waits for this command with `error` instead of carrying it out.
    pub(crate) fn fail(self, error: EngineError) {
        match self {
            ToCall::Hold { reply, .. }
            | ToCall::Record { reply, .. }
            | ToCall::Conference { reply, .. }
            | ToCall::Dtmf { reply, .. } => drop(reply.send(Err(error))),
            ToCall::Stats { reply } => drop(reply.send(Err(error))),
            ToCall::RemoteAnswer { .. }
            | ToCall::RemoteCandidate { .. }
            | ToCall::Reoffer { .. }
            | ToCall::HoldAnswered { .. }
            | ToCall::HoldRefused
            | ToCall::HoldSuperseded
            | ToCall::SetMuted { .. }
            | ToCall::End => {}
        }
    }
}

/// Call task → account task.
#[derive(Debug)]
pub(crate) enum FromCall {
    /// Offer/answer work on the call's dialog: the offer, the answer, the answer to a re-offer
    /// (`None` when renegotiation failed and the current description should be repeated).
    Signal { call: CallId, signal: Signal },
    /// Who holds the call, after an offer/answer exchange changed it or may have.
    Hold { call: CallId, state: HoldState },
    /// Media could not be set up or broke. `peer_fault` when the peer's SDP was the cause.
    MediaFailed {
        call: CallId,
        reason: String,
        peer_fault: bool,
    },
    /// The task has stopped and released the media.
    Finished { call: CallId },
    /// The call has rung as long as a call may ring (sent by the call's ring timer, not by its
    /// task).
    RingLimit { call: CallId },
}

/// How a call ended, whichever protocol carried it: words for the person, the SIP status if
/// there was one, and the history's category. Each call table has its own constructor from
/// its protocol's reasons (`sip/calls.rs`, `xmpp/calls.rs`).
pub(crate) struct CallEnding {
    pub(crate) text: String,
    pub(crate) status: Option<u16>,
    pub(crate) cause: CallEndReason,
}

impl CallEnding {
    /// An ending decided here, with no status from the peer.
    pub(crate) fn local(text: impl Into<String>, cause: CallEndReason) -> Self {
        Self {
            text: text.into(),
            status: None,
            cause,
        }
    }
}

/// How an account's call table tells the supervisor and front ends about its calls: the same
/// events, words and logs for a SIP call and an XMPP one.
#[derive(Clone)]
pub(crate) struct CallReports {
    account: AccountId,
    notices: mpsc::UnboundedSender<AccountNotice>,
}

impl CallReports {
    pub(crate) fn new(account: AccountId, notices: mpsc::UnboundedSender<AccountNotice>) -> Self {
        Self { account, notices }
    }

    /// Where call tasks send what front ends see (media milestones, DTMF, devices).
    pub(crate) fn notices(&self) -> mpsc::UnboundedSender<AccountNotice> {
        self.notices.clone()
    }

    pub(crate) fn emit(&self, event: EngineEvent) {
        let _ = self.notices.send(AccountNotice::Event(event));
    }

    /// Something went wrong with a call that the person should hear about.
    pub(crate) fn warn(&self, detail: String) {
        warn!(account = self.account.0, %detail, "call problem");
        self.emit(EngineEvent::Warning {
            account: Some(self.account),
            detail,
        });
    }

    pub(crate) fn state(&self, call: CallId, state: CallState) {
        debug!(
            account = self.account.0,
            call = call.0,
            ?state,
            "call state"
        );
        self.emit(EngineEvent::CallState {
            account: self.account,
            call,
            state,
        });
    }

    /// The supervisor routes commands for `call` to this account from now on.
    pub(crate) fn opened(&self, call: CallId) {
        let _ = self.notices.send(AccountNotice::CallOpened {
            call,
            account: self.account,
        });
    }

    /// `call` is gone.
    pub(crate) fn closed(&self, call: CallId) {
        let _ = self.notices.send(AccountNotice::CallClosed { call });
    }
}

/// The media tasks of one account's calls: how one starts, and the one channel they all
/// report on.
pub(crate) struct CallTasks {
    account: AccountId,
    reports: CallReports,
    to_account: mpsc::Sender<FromCall>,
    from_tasks: mpsc::Receiver<FromCall>,
}

impl CallTasks {
    pub(crate) fn new(account: AccountId, reports: CallReports) -> Self {
        let (to_account, from_tasks) = mpsc::channel(64);
        Self {
            account,
            reports,
            to_account,
            from_tasks,
        }
    }

    /// The next message from any of the tasks (for the account's `select!`).
    pub(crate) async fn next_message(&mut self) -> Option<FromCall> {
        self.from_tasks.recv().await
    }

    /// Where a timer of the account's sends what the tasks send (a ring limit).
    pub(crate) fn to_account(&self) -> mpsc::Sender<FromCall> {
        self.to_account.clone()
    }

    /// Starts the media task of `call`; returns its inbox.
    pub(crate) fn start(
        &self,
        call: CallId,
        media: Arc<MediaConfig>,
        audio: CallAudio,
        role: CallRole,
    ) -> mpsc::Sender<ToCall> {
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(run(
            call,
            self.account,
            media,
            audio,
            role,
            rx,
            self.to_account.clone(),
            self.reports.notices(),
        ));
        tx
    }
}

/// Hands a front end's command to a call's media task (`task`: the task, or why there is
/// none); a task that is gone or busy answers the command with the error.
pub(crate) fn command_task(
    task: Result<mpsc::Sender<ToCall>, EngineError>,
    call: CallId,
    command: ToCall,
) {
    let task = match task {
        Ok(task) => task,
        Err(e) => return command.fail(e),
    };
    match task.try_send(command) {
        Ok(()) => {}
        Err(mpsc::error::TrySendError::Full(command)) => {
            command.fail(EngineError::InvalidState("the call is busy".into()))
        }
        Err(mpsc::error::TrySendError::Closed(command)) => {
            command.fail(EngineError::UnknownCall(call.0))
        }
    }
}

fn is_peer_fault(e: &MediaError) -> bool {
    matches!(
        e,
        MediaError::BadSdp(_)
            | MediaError::NoCommonCodec { .. }
            | MediaError::UnsupportedProfile { .. }
    )
}

#[allow(clippy::too_many_arguments)]
pub(crate) async fn run(
    call: CallId,
    account: AccountId,
    media: Arc<MediaConfig>,
    audio: CallAudio,
    role: CallRole,
    inbox: mpsc::Receiver<ToCall>,
    to_account: mpsc::Sender<FromCall>,
    notices: mpsc::UnboundedSender<AccountNotice>,
) {
    let span = tracing::info_span!("call", account = account.0, call = call.0);
    drive(
        call, account, media, audio, role, inbox, to_account, notices,
    )
    .instrument(span)
    .await;
}

#[allow(clippy::too_many_arguments)]
async fn drive(
    call: CallId,
    account: AccountId,
    media: Arc<MediaConfig>,
    audio: CallAudio,
    role: CallRole,
    mut inbox: mpsc::Receiver<ToCall>,
    to_account: mpsc::Sender<FromCall>,
    notices: mpsc::UnboundedSender<AccountNotice>,
) {
    let state = |state: CallState| {
        let _ = notices.send(AccountNotice::Event(EngineEvent::CallState {
            account,
            call,
            state,
        }));
    };
    let failed = |e: MediaError| FromCall::MediaFailed {
        call,
        reason: e.to_string(),
        peer_fault: is_peer_fault(&e),
    };

    let media = match audio.music_on_hold {
        Some(music) => Arc::new(MediaConfig {
            music_on_hold: Some(music),
            ..(*media).clone()
        }),
        None => media,
    };
    let mut session = match MediaSession::new(&media, audio.source, audio.sink).await {
        Ok(session) => session,
        Err(e) => {
            warn!(error = %e, "media session could not start");
            let _ = to_account.send(failed(e)).await;
            let _ = to_account.send(FromCall::Finished { call }).await;
            return;
        }
    };
    let mut awaiting_offer = false;
    let first = match role {
        CallRole::Offerer => Some(session.create_offer().await.map(|sdp| FromCall::Signal {
            call,
            signal: Signal::Offer { sdp },
        })),
        CallRole::Answerer { offer } => Some(answer(&session, call, &offer).await),
        CallRole::AnswererAwaitingOffer => {
            awaiting_offer = true;
            None
        }
    };
    let mut media_events = session.events();
    match first {
        Some(Ok(message)) => {
            let _ = to_account.send(message).await;
        }
        Some(Err(e)) => {
            warn!(error = %e, "offer/answer failed");
            let _ = to_account.send(failed(e)).await;
        }
        None => {}
    }

    let mut audio_seen = false;
    // A hold or resume asked for while ours was waiting for its answer.
    let mut wanted_hold: Option<bool> = None;
    loop {
        tokio::select! {
            message = inbox.recv() => match message {
                None | Some(ToCall::End) => break,
                Some(ToCall::RemoteAnswer { sdp }) => {
                    if let Err(e) = session.apply_answer(&sdp).await {
                        warn!(error = %e, "peer's answer refused");
                        let _ = to_account.send(failed(e)).await;
                    }
                }
                Some(ToCall::RemoteCandidate { mid, candidate }) => {
                    debug!(%mid, %candidate, "peer's trickled candidate");
                    if let Err(e) = session.add_remote_candidate(&mid, &candidate).await {
                        warn!(error = %e, "peer's candidate refused");
                    }
                }
                Some(ToCall::Reoffer { sdp }) if awaiting_offer => {
                    awaiting_offer = false;
                    match answer(&session, call, &sdp).await {
                        Ok(message) => {
                            let _ = to_account.send(message).await;
                        }
                        Err(e) => {
                            warn!(error = %e, "offer/answer failed");
                            let _ = to_account.send(failed(e)).await;
                        }
                    }
                }
                Some(ToCall::Reoffer { sdp }) => {
                    let answer = match session.accept_offer(&sdp).await {
                        Ok(answer) => Some(answer),
                        Err(e) => {
                            warn!(error = %e, "re-INVITE offer could not be renegotiated");
                            None
                        }
                    };
                    let signal = Signal::AnswerReoffer { sdp: answer };
                    let _ = to_account.send(FromCall::Signal { call, signal }).await;
                    let state = session.hold_state();
                    let _ = to_account.send(FromCall::Hold { call, state }).await;
                }
                Some(ToCall::Hold { hold, reply }) => {
                    if session.hold_pending() {
                        // One offer at a time: the latest wish goes out once the answer is in,
                        // so a quick hold-then-resume is not refused.
                        wanted_hold = Some(hold);
                        let _ = reply.send(Ok(()));
                    } else {
                        let sent = send_hold_offer(&session, call, hold, &to_account).await;
                        let _ = reply.send(sent.map_err(EngineError::from));
                    }
                }
                Some(ToCall::HoldAnswered { sdp }) => {
                    if let Some(sdp) = sdp
                        && let Err(e) = session.apply_hold_answer(&sdp)
                    {
                        warn!(error = %e, "the answer to our hold offer is unusable");
                    }
                    let state = session.hold_state();
                    let _ = to_account.send(FromCall::Hold { call, state }).await;
                    send_wanted_hold(&session, call, &mut wanted_hold, &to_account).await;
                }
                Some(ToCall::Record { path, reply }) => {
                    let recording = path.as_ref().map(|p| p.display().to_string());
                    let result = session.record(path).await.map_err(EngineError::from);
                    if result.is_ok() {
                        let _ = notices.send(AccountNotice::Event(EngineEvent::CallRecording {
                            account,
                            call,
                            path: recording,
                        }));
                    }
                    let _ = reply.send(result);
                }
                Some(ToCall::Conference { conference, reply }) => {
                    let result = match conference {
                        Some(conference) => session.join_conference(&conference),
                        None => {
                            session.leave_conference();
                            Ok(())
                        }
                    };
                    let _ = reply.send(result.map_err(EngineError::from));
                }
                Some(ToCall::HoldSuperseded) => {
                    session.hold_superseded();
                    let state = session.hold_state();
                    let _ = to_account.send(FromCall::Hold { call, state }).await;
                    send_wanted_hold(&session, call, &mut wanted_hold, &to_account).await;
                }
                Some(ToCall::HoldRefused) => {
                    session.hold_refused();
                    let state = session.hold_state();
                    let _ = to_account.send(FromCall::Hold { call, state }).await;
                    send_wanted_hold(&session, call, &mut wanted_hold, &to_account).await;
                }
                Some(ToCall::Stats { reply }) => {
                    let _ = reply.send(Ok(session.stats()));
                }
                Some(ToCall::SetMuted { muted }) => session.set_muted(muted),
                Some(ToCall::Dtmf { digit, reply }) => {
                    let _ = reply.send(session.send_dtmf(digit).await.map_err(EngineError::from));
                }
            },
            Some(event) = media_events.recv() => match event {
                MediaEvent::Connected => state(CallState::MediaConnected),
                MediaEvent::FirstAudioReceived => {
                    if !audio_seen {
                        audio_seen = true;
                        state(CallState::AudioFlowing);
                    }
                }
                MediaEvent::Disconnected => debug!("media path interrupted; ICE may recover"),
                MediaEvent::Dtmf { digit } => {
                    let _ = notices.send(AccountNotice::Event(EngineEvent::DtmfReceived {
                        account,
                        call,
                        digit: digit.to_string(),
                    }));
                }
                MediaEvent::Failed { reason } => {
                    let _ = to_account
                        .send(FromCall::MediaFailed { call, reason, peer_fault: false })
                        .await;
                }
                MediaEvent::DeviceUnavailable { role, reason } => {
                    let _ = notices.send(AccountNotice::Event(
                        EngineEvent::CallDeviceUnavailable {
                            account,
                            call,
                            device: role,
                            reason,
                        },
                    ));
                }
            },
        }
    }
    if let Err(e) = session.close().await {
        warn!(error = %e, "media did not close cleanly");
    }
    let _ = to_account.send(FromCall::Finished { call }).await;
}

/// Answers the peer's first offer.
async fn answer(session: &MediaSession, call: CallId, offer: &str) -> Result<FromCall, MediaError> {
    let sdp = session.accept_offer(offer).await?;
    Ok(FromCall::Signal {
        call,
        signal: Signal::Answer { sdp },
    })
}

/// Sends our hold (`hold`) or resume offer and tells the account who holds now.
async fn send_hold_offer(
    session: &MediaSession,
    call: CallId,
    hold: bool,
    to_account: &mpsc::Sender<FromCall>,
) -> Result<(), MediaError> {
    let sdp = session.hold_offer(hold)?;
    let signal = Signal::Reoffer { sdp };
    let _ = to_account.send(FromCall::Signal { call, signal }).await;
    let state = session.hold_state();
    let _ = to_account.send(FromCall::Hold { call, state }).await;
    Ok(())
}

/// Once our offer is settled, sends the hold or resume asked for meanwhile, if the call is not
/// already that way.
async fn send_wanted_hold(
    session: &MediaSession,
    call: CallId,
    wanted: &mut Option<bool>,
    to_account: &mpsc::Sender<FromCall>,
) {
    let Some(hold) = wanted.take() else {
        return;
    };
    if session.hold_pending() || session.hold_state().local == hold {
        return;
    }
    if let Err(e) = send_hold_offer(session, call, hold, to_account).await {
        warn!(error = %e, hold, "the hold or resume asked for meanwhile could not be offered");
    }
}

/// The command that starts recording `call` into a new file in `folder` (created if need be),
/// or stops it (`None`); `None` when the folder cannot be made, the caller already told why.
pub(crate) fn record_command(
    folder: Option<std::path::PathBuf>,
    peer: &str,
    call: CallId,
    reply: oneshot::Sender<Result<(), EngineError>>,
) -> Option<ToCall> {
    let path = match folder {
        None => None,
        Some(folder) => {
            if let Err(e) = std::fs::create_dir_all(&folder) {
                let _ = reply.send(Err(EngineError::InvalidConfig(format!(
                    "cannot create {}: {e}",
                    folder.display()
                ))));
                return None;
            }
            Some(folder.join(recording_name(crate::ground::now_ms(), peer, call)))
        }
    };
    Some(ToCall::Record { path, reply })
}

/// A recording's file name: when it started (UTC), who the call is with (only characters safe
/// in any file system), and the call, e.g. `2026-12-07_14-03-22_bob_call7.wav`.
fn recording_name(now_ms: i64, peer: &str, call: CallId) -> String {
    // `YYYY-MM-DDThh:mm:ss.sssZ` (the XMPP core's UTC formatting) to `YYYY-MM-DD_hh-mm-ss`.
    let stamp: String = lyrebird_xmpp::time::format_ms(now_ms)
        .chars()
        .take(19)
        .map(|c| match c {
            'T' => '_',
            ':' => '-',
            c => c,
        })
        .collect();
    let user = peer
        .trim_start_matches("sips:")
        .trim_start_matches("sip:")
        .trim_start_matches("xmpp:")
        .split(['@', ';', '?'])
        .next()
        .unwrap_or_default();
    let safe: String = user
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '+'))
        .take(40)
        .collect();
    let safe = if safe.is_empty() || safe.starts_with('.') {
        "call".to_owned()
    } else {
        safe
    };
    format!("{stamp}_{safe}_call{}.wav", call.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recordings_are_named_by_time_and_a_safe_party_name() {
        // 2026-12-07 14:03:22 UTC
        let at = 1_796_652_202_000;
        assert_eq!(
            recording_name(at, "sip:bob@example.com", CallId(7)),
            "2026-12-07_14-03-22_bob_call7.wav"
        );
        assert_eq!(
            recording_name(at, "sip:../../etc/passwd@evil", CallId(1)),
            "2026-12-07_14-03-22_call_call1.wav"
        );
        assert_eq!(
            recording_name(at, "xmpp:carol@example.org/phone", CallId(8)),
            "2026-12-07_14-03-22_carol_call8.wav"
        );
        assert_eq!(
            recording_name(0, "sip:a/b\\c<d>@x", CallId(2)),
            "1970-01-01_00-00-00_abcd_call2.wav"
        );
        // A leap day, and a day before the epoch.
        assert_eq!(
            recording_name(1_709_164_800_000, "bob", CallId(3)),
            "2024-02-29_00-00-00_bob_call3.wav"
        );
        assert_eq!(
            recording_name(-1_000, "bob", CallId(4)),
            "1969-12-31_23-59-59_bob_call4.wav"
        );
    }
}
