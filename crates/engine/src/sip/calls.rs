//! The account's calls: what the person and the peer did to each, kept in step with the call's
//! media task (`call.rs`) and its dialog (through the session table), told to front ends as
//! `CallState` events and to history.

use std::collections::HashMap;
use std::sync::Arc;

use lyrebird_media::{MediaConfig, MediaStats};
use lyrebird_sip as sip;
use lyrebird_store::CallEndReason;
use tokio::sync::{mpsc, oneshot};
use tracing::debug;

use super::sessions::Signalling;
use crate::call::{self, CallRole, FromCall, ToCall};
use crate::config::CallAudio;
use crate::event::{CallDirection, CallState, EngineEvent};
use crate::ground::{AccountId, CallId, EngineError, IdSource};
use crate::history::History;
use crate::notice::AccountNotice;
use crate::session::{DialogEvent, SessionId, Signal};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CallPhase {
    /// Outgoing: the offer is being prepared. Incoming: waiting for the person.
    Setup,
    /// Incoming call accepted by the person, the answer is being prepared.
    Answering,
    /// INVITE sent / 200 sent.
    Signalled,
    /// The SIP side is over; waiting for the call task to stop.
    Ended,
}

struct CallEntry {
    direction: CallDirection,
    peer: String,
    phase: CallPhase,
    /// The peer's offer, for an incoming call not yet answered.
    offer: Option<String>,
    /// The peer's answer has been given to the media session.
    remote_applied: bool,
    /// A 2xx was sent or received.
    answered: bool,
    task: Option<mpsc::Sender<ToCall>>,
    history_key: String,
}

/// Everything the calls of one account share.
pub(crate) struct Calls {
    account: AccountId,
    media: Arc<MediaConfig>,
    ids: Arc<IdSource>,
    notices: mpsc::UnboundedSender<AccountNotice>,
    history: History,
    /// Answer every incoming call at once with this audio.
    auto_answer: Option<CallAudio>,
    entries: HashMap<CallId, CallEntry>,
    to_account: mpsc::Sender<FromCall>,
    from_tasks: mpsc::Receiver<FromCall>,
}

impl Calls {
    pub(crate) fn new(
        account: AccountId,
        media: Arc<MediaConfig>,
        ids: Arc<IdSource>,
        notices: mpsc::UnboundedSender<AccountNotice>,
        history: History,
        auto_answer: Option<CallAudio>,
    ) -> Self {
        let (to_account, from_tasks) = mpsc::channel(64);
        Self {
            account,
            media,
            ids,
            notices,
            history,
            auto_answer,
            entries: HashMap::new(),
            to_account,
            from_tasks,
        }
    }

    /// The next message from a call task (for the account's `select!`).
    pub(crate) async fn next_message(&mut self) -> Option<FromCall> {
        self.from_tasks.recv().await
    }

    fn emit(&self, event: EngineEvent) {
        let _ = self.notices.send(AccountNotice::Event(event));
    }

    fn warn(&self, detail: String) {
        tracing::warn!(account = self.account.0, %detail, "call problem");
        self.emit(EngineEvent::Warning {
            account: Some(self.account),
            detail,
        });
    }

    fn state(&self, call: CallId, state: CallState) {
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

    fn new_call(&mut self, sig: &mut Signalling, direction: CallDirection, peer: String) -> CallId {
        let call = CallId(self.ids.next());
        let history_key = uuid::Uuid::new_v4().to_string();
        self.history
            .call_started(self.account, &history_key, direction, &peer);
        self.entries.insert(
            call,
            CallEntry {
                direction,
                peer: peer.clone(),
                phase: CallPhase::Setup,
                offer: None,
                remote_applied: false,
                answered: false,
                task: None,
                history_key,
            },
        );
        sig.sessions.open(SessionId::Call(call), peer.clone(), None);
        let _ = self.notices.send(AccountNotice::CallOpened {
            call,
            account: self.account,
        });
        self.state(call, CallState::Dialing { direction, peer });
        call
    }

    /// An incoming INVITE that is a call (its offer has no MSRP media).
    pub(crate) fn on_offer(
        &mut self,
        sig: &mut Signalling,
        dialog: sip::CallId,
        from: sip::Party,
        sdp: Option<String>,
    ) {
        let Some(offer) = sdp else {
            // A WebRTC peer always offers in the INVITE; answering an offerless INVITE would need
            // an offer in the 200 and the answer in the ACK, which no browser peer sends.
            self.warn("incoming INVITE without an SDP offer declined (488)".into());
            let _ = sig.ua.reject(sig.now, dialog, 488);
            return;
        };
        let call = self.new_call(sig, CallDirection::Incoming, from.uri.clone());
        sig.sessions.rebind(SessionId::Call(call), dialog);
        if let Some(entry) = self.entries.get_mut(&call) {
            entry.offer = Some(offer);
        }
        if let Err(e) = sig.ua.ring(sig.now, dialog) {
            debug!(error = %e, "could not send 180");
        }
        self.emit(EngineEvent::IncomingCall {
            account: self.account,
            call,
            from: from.uri,
            display_name: from.display_name,
        });
        self.state(call, CallState::Ringing { status: 180 });
        if let Some(audio) = self.auto_answer.clone()
            && let Err(e) = self.answer(call, Some(audio))
        {
            self.warn(format!("auto-answer failed: {e}"));
        }
    }

    /// Something happened on a call's dialog.
    pub(crate) fn on_dialog(&mut self, sig: &mut Signalling, call: CallId, event: DialogEvent) {
        match event {
            DialogEvent::Progress { status, sdp } => {
                self.state(call, CallState::Ringing { status });
                if let Some(sdp) = sdp {
                    self.deliver_remote_sdp(call, sdp);
                }
            }
            DialogEvent::Answered { sdp } => {
                let Some(entry) = self.entries.get_mut(&call) else {
                    return;
                };
                entry.answered = true;
                let remote_applied = entry.remote_applied;
                let key = entry.history_key.clone();
                self.state(call, CallState::Answered);
                self.history.call_answered(self.account, &key);
                match sdp {
                    Some(sdp) => self.deliver_remote_sdp(call, sdp),
                    None if remote_applied => {}
                    None => {
                        self.warn("the callee answered without SDP; hanging up".into());
                        let _ = self.hangup(sig, call);
                    }
                }
            }
            DialogEvent::Reoffered { sdp } => {
                let task = self.entries.get(&call).and_then(|e| e.task.clone());
                match (sdp, task) {
                    (Some(sdp), Some(task)) => {
                        let _ = task.try_send(ToCall::Reoffer { sdp });
                    }
                    // No offer (or no media yet): our current description answers it.
                    _ => {
                        let answer = Signal::AnswerReoffer { sdp: None };
                        if let Err(e) = sig.send(SessionId::Call(call), answer) {
                            self.warn(format!("could not answer a re-INVITE: {e}"));
                        }
                    }
                }
            }
            DialogEvent::Referred { refer, .. } => {
                let _ = sig.ua.reject_refer(sig.now, refer, 603);
            }
            DialogEvent::Dtmf { digit, .. } => {
                debug!(call = call.0, %digit, "DTMF received in SIP INFO");
                self.emit(EngineEvent::DtmfReceived {
                    account: self.account,
                    call,
                    digit: digit.to_string(),
                });
            }
            DialogEvent::ReofferAnswered { .. }
            | DialogEvent::ReofferFailed { .. }
            | DialogEvent::ReferProgress { .. } => {}
            DialogEvent::Ended { reason } => {
                let answered = self.entries.get(&call).is_some_and(|c| c.answered);
                self.end_call(sig, call, CallEnding::from_sip(&reason, answered));
            }
        }
    }

    /// Gives the peer's answer (from a 183 or the 200) to the media session, once.
    fn deliver_remote_sdp(&mut self, call: CallId, sdp: String) {
        let Some(entry) = self.entries.get_mut(&call) else {
            return;
        };
        if entry.remote_applied || entry.direction != CallDirection::Outgoing {
            return;
        }
        entry.remote_applied = true;
        if let Some(task) = &entry.task {
            let _ = task.try_send(ToCall::RemoteAnswer { sdp });
        }
    }

    fn end_call(&mut self, sig: &mut Signalling, call: CallId, end: CallEnding) {
        let Some(entry) = self.entries.get_mut(&call) else {
            return;
        };
        if entry.phase == CallPhase::Ended {
            return;
        }
        entry.phase = CallPhase::Ended;
        let task_running = match &entry.task {
            Some(task) => task.try_send(ToCall::End).is_ok(),
            None => false,
        };
        let key = entry.history_key.clone();
        sig.sessions.close(SessionId::Call(call));
        self.history.call_ended(self.account, &key, end.cause);
        self.state(
            call,
            CallState::Ended {
                reason: end.text,
                status: end.status,
            },
        );
        if !task_running {
            self.forget(call);
        }
    }

    fn forget(&mut self, call: CallId) {
        if self.entries.remove(&call).is_some() {
            let _ = self.notices.send(AccountNotice::CallClosed { call });
        }
    }

    /// The call's media task, for commands that only it can carry out.
    pub(crate) fn task(&self, call: CallId) -> Result<mpsc::Sender<ToCall>, EngineError> {
        let entry = self
            .entries
            .get(&call)
            .ok_or(EngineError::UnknownCall(call.0))?;
        entry
            .task
            .clone()
            .ok_or_else(|| EngineError::InvalidState("the call has no media yet".into()))
    }

    pub(crate) fn stats(
        &self,
        call: CallId,
        reply: oneshot::Sender<Result<MediaStats, EngineError>>,
    ) {
        match self.task(call) {
            Ok(task) => {
                let _ = task.try_send(ToCall::Stats { reply });
            }
            Err(e) => {
                let _ = reply.send(Err(e));
            }
        }
    }

    fn spawn_task(&mut self, call: CallId, audio: CallAudio, role: CallRole) {
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(call::run(
            call,
            self.account,
            Arc::clone(&self.media),
            audio,
            role,
            rx,
            self.to_account.clone(),
            self.notices.clone(),
        ));
        if let Some(entry) = self.entries.get_mut(&call) {
            entry.task = Some(tx);
        }
    }

    pub(crate) fn place_call(
        &mut self,
        sig: &mut Signalling,
        target: String,
        audio: CallAudio,
    ) -> Result<CallId, EngineError> {
        let target = target.trim().to_owned();
        if target.is_empty() {
            return Err(EngineError::InvalidConfig(
                "no one to call: the address is empty".into(),
            ));
        }
        let call = self.new_call(sig, CallDirection::Outgoing, target);
        self.spawn_task(call, audio, CallRole::Offerer);
        Ok(call)
    }

    pub(crate) fn answer(
        &mut self,
        call: CallId,
        audio: Option<CallAudio>,
    ) -> Result<(), EngineError> {
        let entry = self
            .entries
            .get_mut(&call)
            .ok_or(EngineError::UnknownCall(call.0))?;
        if entry.direction != CallDirection::Incoming || entry.phase != CallPhase::Setup {
            return Err(EngineError::InvalidState(
                "only a ringing incoming call can be answered".into(),
            ));
        }
        let offer = entry
            .offer
            .take()
            .ok_or_else(|| EngineError::InvalidState("the call has no offer".into()))?;
        entry.phase = CallPhase::Answering;
        let audio = audio.unwrap_or_else(CallAudio::devices);
        self.spawn_task(call, audio, CallRole::Answerer { offer });
        Ok(())
    }

    pub(crate) fn reject(&mut self, sig: &mut Signalling, call: CallId) -> Result<(), EngineError> {
        let entry = self
            .entries
            .get(&call)
            .ok_or(EngineError::UnknownCall(call.0))?;
        if entry.direction != CallDirection::Incoming || entry.phase != CallPhase::Setup {
            return Err(EngineError::InvalidState(
                "only a ringing incoming call can be declined".into(),
            ));
        }
        sig.send(SessionId::Call(call), Signal::Decline { status: 603 })?;
        self.end_call(
            sig,
            call,
            CallEnding::from_sip(&sip::EndReason::LocalHangup, false),
        );
        Ok(())
    }

    pub(crate) fn hangup(&mut self, sig: &mut Signalling, call: CallId) -> Result<(), EngineError> {
        let entry = self
            .entries
            .get(&call)
            .ok_or(EngineError::UnknownCall(call.0))?;
        if entry.phase == CallPhase::Ended {
            return Err(EngineError::UnknownCall(call.0));
        }
        let answered = entry.answered;
        let end = match sig.sessions.dialog(SessionId::Call(call)) {
            Some(_) => {
                sig.send(SessionId::Call(call), Signal::End { reason: None })?;
                CallEnding::from_sip(&sip::EndReason::LocalHangup, answered)
            }
            // The INVITE has not gone out yet (the offer is still being built).
            None => CallEnding::local("hung up before dialling", CallEndReason::LocalCancel),
        };
        self.end_call(sig, call, end);
        Ok(())
    }

    /// What a call task reports or asks for.
    pub(crate) fn on_task_message(&mut self, sig: &mut Signalling, message: FromCall) {
        match message {
            FromCall::Signal { call, signal } => self.on_task_signal(sig, call, signal),
            FromCall::MediaFailed {
                call,
                reason,
                peer_fault,
            } => {
                let Some(entry) = self.entries.get(&call) else {
                    return;
                };
                if entry.phase == CallPhase::Ended {
                    return;
                }
                if peer_fault {
                    self.warn(format!("peer's SDP refused: {reason}"));
                }
                let has_dialog = sig.sessions.dialog(SessionId::Call(call)).is_some();
                let end = match (entry.phase, has_dialog) {
                    // The peer's offer was unusable: 488 Not Acceptable Here (RFC 3261 §21.4.26).
                    (CallPhase::Answering, true) => {
                        let status = if peer_fault { 488 } else { 500 };
                        let _ = sig.send(SessionId::Call(call), Signal::Decline { status });
                        CallEnding::from_sip(&sip::EndReason::LocalHangup, false)
                    }
                    (_, true) => {
                        let _ = sig.send(SessionId::Call(call), Signal::End { reason: None });
                        CallEnding::from_sip(&sip::EndReason::LocalHangup, entry.answered)
                    }
                    (_, false) => {
                        CallEnding::local(format!("media failed: {reason}"), CallEndReason::Failed)
                    }
                };
                self.end_call(sig, call, end);
            }
            FromCall::Finished { call } => {
                let ended = self
                    .entries
                    .get(&call)
                    .is_some_and(|c| c.phase == CallPhase::Ended);
                if ended {
                    self.forget(call);
                } else if let Some(entry) = self.entries.get_mut(&call) {
                    entry.task = None;
                }
            }
        }
    }

    fn on_task_signal(&mut self, sig: &mut Signalling, call: CallId, signal: Signal) {
        let Some(entry) = self.entries.get_mut(&call) else {
            return;
        };
        if entry.phase == CallPhase::Ended {
            return;
        }
        let failure = match &signal {
            Signal::Offer { .. } => Some(format!("cannot call {}", entry.peer)),
            Signal::Answer { .. } => Some("could not answer".to_owned()),
            _ => None,
        };
        match &signal {
            Signal::Offer { .. } => entry.phase = CallPhase::Signalled,
            Signal::Answer { .. } => {
                if entry.phase != CallPhase::Answering {
                    return;
                }
                entry.phase = CallPhase::Signalled;
                entry.answered = true;
                let key = entry.history_key.clone();
                self.history.call_answered(self.account, &key);
                self.state(call, CallState::Answered);
            }
            _ => {}
        }
        if let Err(e) = sig.send(SessionId::Call(call), signal) {
            match failure {
                Some(what) => self.end_call(
                    sig,
                    call,
                    CallEnding::local(format!("{what}: {e}"), CallEndReason::Failed),
                ),
                None => self.warn(format!("could not answer a re-INVITE: {e}")),
            }
        }
    }

    /// Hangs up every call (the account is stopping).
    pub(crate) fn hangup_all(&mut self, sig: &mut Signalling) {
        let calls: Vec<CallId> = self.entries.keys().copied().collect();
        for call in calls {
            let _ = self.hangup(sig, call);
        }
    }

    /// Tells every call task to stop (the account has stopped).
    pub(crate) fn stop_tasks(&self) {
        for entry in self.entries.values() {
            if let Some(task) = &entry.task {
                let _ = task.try_send(ToCall::End);
            }
        }
    }
}

/// How a call ended: words for the person, the SIP status if any, and the history's category.
struct CallEnding {
    text: String,
    status: Option<u16>,
    cause: CallEndReason,
}

impl CallEnding {
    fn local(text: impl Into<String>, cause: CallEndReason) -> Self {
        Self {
            text: text.into(),
            status: None,
            cause,
        }
    }

    fn from_sip(reason: &sip::EndReason, answered: bool) -> Self {
        use CallEndReason as R;
        let (text, status, cause) = match reason {
            sip::EndReason::LocalHangup if answered => ("hung up".to_owned(), None, R::LocalHangup),
            sip::EndReason::LocalHangup => ("cancelled".to_owned(), None, R::LocalCancel),
            sip::EndReason::RemoteHangup { .. } => {
                ("the other side hung up".to_owned(), None, R::RemoteHangup)
            }
            sip::EndReason::Cancelled => (
                "cancelled by the caller".to_owned(),
                Some(487),
                R::RemoteCancel,
            ),
            sip::EndReason::Rejected { status, reason } => {
                let cause = match status {
                    486 | 600 => R::Busy,
                    603 => R::Declined,
                    408 | 480 => R::NoAnswer,
                    _ => R::Failed,
                };
                (format!("declined: {status} {reason}"), Some(*status), cause)
            }
            sip::EndReason::Failed { status, reason } => (
                format!("failed: {status} {reason}"),
                Some(*status),
                R::Failed,
            ),
        };
        Self {
            text,
            status,
            cause,
        }
    }
}
