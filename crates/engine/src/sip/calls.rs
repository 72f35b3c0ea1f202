//! The account's calls: what the person and the peer did to each, kept in step with the call's
//! media task (`call.rs`) and its dialog (through the session table), told to front ends as
//! `CallState` events and to history.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use lyrebird_media::{HoldState, MediaConfig, MediaStats};
use lyrebird_sip as sip;
use lyrebird_store::CallEndReason;
use tokio::sync::{mpsc, oneshot};
use tokio::task::AbortHandle;
use tracing::{debug, info};

use super::sessions::Signalling;
use crate::call::{self, CallEnding, CallReports, CallRole, CallTasks, FromCall, ToCall};
use crate::config::{CallAudio, DtmfMethod};
use crate::event::{CallDirection, CallState, EngineEvent};
use crate::ground::{AccountId, CallId, EngineError, IdSource};
use crate::history::History;
use crate::notice::AccountNotice;
use crate::session::{DialogEvent, SessionId, Signal};

/// The longest an outgoing call rings before we give up with CANCEL. A proxy ends a call that
/// rings on with Timer C (RFC 3261 §16.6, more than 3 minutes), but not every server runs it,
/// and a call must never ring for ever.
const OUTGOING_RING_LIMIT: Duration = Duration::from_secs(180);
/// The longest an incoming call rings before we decline it 480 Temporarily Unavailable and keep
/// it as missed: the caller's CANCEL can be lost with their server or their network.
const INCOMING_RING_LIMIT: Duration = Duration::from_secs(120);

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
    /// Who holds the call, as last told to front ends.
    hold: HoldState,
    /// Where the call's audio comes from and goes to, once it has media; a call that replaces
    /// this one (a transfer) takes it over.
    audio: Option<CallAudio>,
    /// Our REFER of this call's peer, while it is in progress (we transfer them).
    transferring: Option<sip::ReferId>,
    /// This call is being made because the peer of another call asked us to (REFER): its
    /// progress is reported there, and that call ends once this one is answered.
    referred_by: Option<(CallId, sip::IncomingReferId)>,
    /// This call takes the place of another (INVITE with Replaces, RFC 3891), which ends once
    /// this one is answered.
    replaces: Option<CallId>,
    /// The peer's re-offer is with the media task, not answered yet: an offer of ours must
    /// not cross it.
    peer_offer_pending: bool,
    /// Our re-offer (hold or resume) went out and is not answered yet.
    our_offer_pending: bool,
    /// Ends the call if it is still ringing when the ring limit is reached.
    ring_timer: AbortHandle,
}

/// Everything the calls of one account share.
pub(crate) struct Calls {
    account: AccountId,
    media: Arc<MediaConfig>,
    ids: Arc<IdSource>,
    reports: CallReports,
    history: History,
    /// Answer every incoming call at once with this audio.
    auto_answer: Option<CallAudio>,
    /// A second call rings while one is answered; off, it is refused busy.
    call_waiting: bool,
    entries: HashMap<CallId, CallEntry>,
    tasks: CallTasks,
}

impl Calls {
    pub(crate) fn new(
        account: AccountId,
        media: Arc<MediaConfig>,
        ids: Arc<IdSource>,
        notices: mpsc::UnboundedSender<AccountNotice>,
        history: History,
        auto_answer: Option<CallAudio>,
        call_waiting: bool,
    ) -> Self {
        let reports = CallReports::new(account, notices);
        Self {
            account,
            media,
            ids,
            tasks: CallTasks::new(account, reports.clone()),
            reports,
            history,
            auto_answer,
            call_waiting,
            entries: HashMap::new(),
        }
    }

    /// The next message from a call task (for the account's `select!`).
    pub(crate) async fn next_message(&mut self) -> Option<FromCall> {
        self.tasks.next_message().await
    }

    fn new_call(&mut self, sig: &mut Signalling, direction: CallDirection, peer: String) -> CallId {
        let call = CallId(self.ids.next());
        let history_key = uuid::Uuid::new_v4().to_string();
        self.history
            .call_started(self.account, &history_key, direction, &peer);
        let limit = match direction {
            CallDirection::Outgoing => OUTGOING_RING_LIMIT,
            CallDirection::Incoming => INCOMING_RING_LIMIT,
        };
        let to_account = self.tasks.to_account();
        let ring_timer = tokio::spawn(async move {
            tokio::time::sleep(limit).await;
            let _ = to_account.send(FromCall::RingLimit { call }).await;
        })
        .abort_handle();
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
                hold: HoldState::default(),
                audio: None,
                transferring: None,
                referred_by: None,
                replaces: None,
                peer_offer_pending: false,
                our_offer_pending: false,
                ring_timer,
            },
        );
        sig.sessions.open(SessionId::Call(call), peer.clone(), None);
        self.reports.opened(call);
        self.reports
            .state(call, CallState::Dialing { direction, peer });
        call
    }

    /// An incoming INVITE that is a call (its offer has no MSRP media).
    pub(crate) fn on_offer(
        &mut self,
        sig: &mut Signalling,
        dialog: sip::CallId,
        from: sip::Party,
        sdp: Option<String>,
        replaces: Option<CallId>,
    ) {
        let Some(offer) = sdp else {
            // A WebRTC peer always offers in the INVITE; answering an offerless INVITE would need
            // an offer in the 200 and the answer in the ACK, which no browser peer sends.
            self.reports
                .warn("incoming INVITE without an SDP offer declined (488)".into());
            let _ = sig.ua.reject(sig.now, dialog, 488);
            return;
        };
        if let Err(e) = lyrebird_media::sdp::usable_audio_section(&offer) {
            // Refused before it rings (488, RFC 3261 §21.4.26), but not silently: the
            // attempt is in history and on screen with what was wrong with it.
            self.reports
                .warn(format!("a call from {} could not be taken: {e}", from.uri));
            let call = self.new_call(sig, CallDirection::Incoming, from.uri.clone());
            sig.sessions.rebind(SessionId::Call(call), dialog);
            let _ = sig.send(SessionId::Call(call), Signal::Decline { status: 488 });
            let ending = CallEnding {
                text: format!("refused: {e}"),
                status: Some(488),
                cause: CallEndReason::Failed,
            };
            self.end_call(sig, call, ending);
            return;
        }
        let in_a_call = self
            .entries
            .values()
            .any(|e| e.answered && e.phase != CallPhase::Ended);
        let busy = !self.call_waiting && replaces.is_none() && in_a_call;
        let call = self.new_call(sig, CallDirection::Incoming, from.uri.clone());
        sig.sessions.rebind(SessionId::Call(call), dialog);
        if busy {
            // Call waiting is off: the caller hears busy, and the person finds a missed call.
            info!(
                call = call.0,
                "busy: call waiting is off and a call is in progress"
            );
            let _ = sig.send(SessionId::Call(call), Signal::Decline { status: 486 });
            self.end_call(
                sig,
                call,
                CallEnding::local("busy: another call was in progress", CallEndReason::Busy),
            );
            return;
        }
        if let Some(entry) = self.entries.get_mut(&call) {
            entry.offer = Some(offer);
        }
        // An attended transfer completing (RFC 3891 §3): the new call takes the old one's place
        // at once, without ringing, with the old call's audio; the old one ends when it is
        // answered.
        if let Some(old) = replaces.filter(|old| self.entries.contains_key(old)) {
            info!(call = call.0, replaced = old.0, "call replaces another");
            let audio = self
                .entries
                .get(&old)
                .and_then(|e| e.audio.as_ref())
                .map(|a| a.for_successor(call.0));
            if let Some(entry) = self.entries.get_mut(&call) {
                entry.replaces = Some(old);
            }
            if let Err(e) = self.answer(call, audio) {
                self.reports
                    .warn(format!("could not take over the transferred call: {e}"));
            }
            return;
        }
        if let Err(e) = sig.ua.ring(sig.now, dialog) {
            debug!(error = %e, "could not send 180");
        }
        self.reports.emit(EngineEvent::IncomingCall {
            account: self.account,
            call,
            from: from.uri,
            display_name: from.display_name,
        });
        self.reports.state(call, CallState::Ringing { status: 180 });
        if let Some(audio) = self.auto_answer.clone()
            && let Err(e) = self.answer(call, Some(audio))
        {
            self.reports.warn(format!("auto-answer failed: {e}"));
        }
    }

    /// Something happened on a call's dialog.
    pub(crate) fn on_dialog(&mut self, sig: &mut Signalling, call: CallId, event: DialogEvent) {
        match event {
            DialogEvent::Progress { status, sdp } => {
                self.tell_referrer(sig, call, status, false);
                self.reports.state(call, CallState::Ringing { status });
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
                self.reports.state(call, CallState::Answered);
                self.history.call_answered(self.account, &key);
                self.tell_referrer(sig, call, 200, true);
                match sdp {
                    Some(sdp) => self.deliver_remote_sdp(call, sdp),
                    None if remote_applied => {}
                    None => {
                        self.reports
                            .warn("the callee answered without SDP; hanging up".into());
                        let _ = self.hangup(sig, call);
                    }
                }
            }
            DialogEvent::Reoffered { sdp } => {
                let task = self.entries.get(&call).and_then(|e| e.task.clone());
                match (sdp, task) {
                    (Some(sdp), Some(task)) => {
                        if task.try_send(ToCall::Reoffer { sdp }).is_ok()
                            && let Some(entry) = self.entries.get_mut(&call)
                        {
                            entry.peer_offer_pending = true;
                        }
                    }
                    // No offer (or no media yet): our current description answers it.
                    _ => {
                        let answer = Signal::AnswerReoffer { sdp: None };
                        if let Err(e) = sig.send(SessionId::Call(call), answer) {
                            self.reports
                                .warn(format!("could not answer a re-INVITE: {e}"));
                        }
                    }
                }
            }
            DialogEvent::Referred {
                refer,
                target,
                replaces,
                referred_by,
            } => self.on_referred(sig, call, refer, target, replaces, referred_by),
            DialogEvent::ReferProgress {
                refer,
                status,
                reason,
                done,
            } => self.on_transfer_progress(sig, call, refer, status, reason, done),
            DialogEvent::Dtmf { digit, .. } => {
                debug!(call = call.0, %digit, "DTMF received in SIP INFO");
                self.reports.emit(EngineEvent::DtmfReceived {
                    account: self.account,
                    call,
                    digit: digit.to_string(),
                });
            }
            DialogEvent::ReofferAnswered { sdp } => {
                if let Some(entry) = self.entries.get_mut(&call) {
                    entry.our_offer_pending = false;
                }
                self.to_task(call, ToCall::HoldAnswered { sdp });
            }
            DialogEvent::ReofferFailed { status, reason } => {
                if let Some(entry) = self.entries.get_mut(&call) {
                    entry.our_offer_pending = false;
                }
                self.reports.warn(format!(
                    "the other side refused the change of hold: {status} {reason}"
                ));
                self.to_task(call, ToCall::HoldRefused);
            }
            DialogEvent::Ended { reason } => {
                if let sip::EndReason::Rejected { status, .. }
                | sip::EndReason::Failed { status, .. } = &reason
                {
                    self.tell_referrer(sig, call, *status, true);
                }
                let answered = self.entries.get(&call).is_some_and(|c| c.answered);
                self.end_call(sig, call, CallEnding::from_sip(&reason, answered));
            }
        }
    }

    /// Asks the peer of `call` to call `target` instead (blind transfer, RFC 3515).
    pub(crate) fn transfer(
        &mut self,
        sig: &mut Signalling,
        call: CallId,
        target: String,
    ) -> Result<(), EngineError> {
        let target = target.trim().to_owned();
        if target.is_empty() {
            return Err(EngineError::InvalidConfig(
                "no one to transfer to: the address is empty".into(),
            ));
        }
        self.refer(sig, call, &target, None)
    }

    /// Connects the peer of `call` with the peer of `to` (attended transfer): the first is
    /// asked to call the second, replacing our call with them (RFC 3515, RFC 3891, RFC 5589).
    pub(crate) fn attended_transfer(
        &mut self,
        sig: &mut Signalling,
        call: CallId,
        to: CallId,
    ) -> Result<(), EngineError> {
        if call == to {
            return Err(EngineError::InvalidState(
                "a call cannot be transferred to itself".into(),
            ));
        }
        let other = self
            .entries
            .get(&to)
            .ok_or(EngineError::UnknownCall(to.0))?;
        if !other.answered || other.phase == CallPhase::Ended {
            return Err(EngineError::InvalidState(
                "the call to transfer to must be answered".into(),
            ));
        }
        let dialog = sig
            .sessions
            .dialog(SessionId::Call(to))
            .ok_or(EngineError::UnknownCall(to.0))?;
        let replaces = sig
            .ua
            .replaces_target(dialog)
            .ok_or_else(|| EngineError::InvalidState("the other call has no dialog".into()))?;
        let target = other.peer.clone();
        self.refer(sig, call, &target, Some(replaces))
    }

    fn refer(
        &mut self,
        sig: &mut Signalling,
        call: CallId,
        target: &str,
        replaces: Option<sip::ReplacesTarget>,
    ) -> Result<(), EngineError> {
        let entry = self
            .entries
            .get(&call)
            .ok_or(EngineError::UnknownCall(call.0))?;
        if !entry.answered || entry.phase == CallPhase::Ended {
            return Err(EngineError::InvalidState(
                "only an answered call can be transferred".into(),
            ));
        }
        if entry.transferring.is_some() {
            return Err(EngineError::InvalidState(
                "this call is already being transferred".into(),
            ));
        }
        let dialog = sig
            .sessions
            .dialog(SessionId::Call(call))
            .ok_or(EngineError::UnknownCall(call.0))?;
        let refer = sig.ua.refer(sig.now, dialog, target, replaces)?;
        info!(call = call.0, %target, "transfer asked");
        if let Some(entry) = self.entries.get_mut(&call) {
            entry.transferring = Some(refer);
        }
        Ok(())
    }

    /// How the transfer we asked for is going (the REFER's answer and NOTIFYs).
    fn on_transfer_progress(
        &mut self,
        sig: &mut Signalling,
        call: CallId,
        refer: sip::ReferId,
        status: u16,
        reason: String,
        done: bool,
    ) {
        let Some(entry) = self.entries.get_mut(&call) else {
            return;
        };
        if entry.transferring != Some(refer) {
            return;
        }
        if done {
            entry.transferring = None;
        }
        self.reports.emit(EngineEvent::CallTransfer {
            account: self.account,
            call,
            status,
            reason: reason.clone(),
            done,
        });
        if done && (200..300).contains(&status) {
            // The other side now talks to the transfer target; our part is over.
            if sig
                .send(SessionId::Call(call), Signal::End { reason: None })
                .is_ok()
            {
                self.end_call(
                    sig,
                    call,
                    CallEnding::local("transferred", CallEndReason::LocalHangup),
                );
            }
        } else if done {
            self.reports
                .warn(format!("the transfer did not complete: {status} {reason}"));
        }
    }

    /// The peer of `call` asks us to call `target` instead (we are being transferred): the
    /// new call goes out at once with this call's audio, its progress is reported to the
    /// peer, and this call ends once the new one is answered.
    #[allow(clippy::too_many_arguments)]
    fn on_referred(
        &mut self,
        sig: &mut Signalling,
        call: CallId,
        refer: sip::IncomingReferId,
        target: String,
        replaces: Option<sip::ReplacesTarget>,
        referred_by: Option<String>,
    ) {
        let audio = self.entries.get(&call).and_then(|e| e.audio.clone());
        let Some(audio) = audio else {
            let _ = sig.ua.reject_refer(sig.now, refer, 603);
            return;
        };
        if let Err(e) = sig.ua.accept_refer(sig.now, refer) {
            debug!(error = %e, "could not accept a REFER");
            return;
        }
        info!(call = call.0, %target, "transferred by the other side");
        let target = target.trim().to_owned();
        if target.is_empty() {
            let _ = sig.ua.notify_refer(sig.now, refer, 400, "Bad Request");
            return;
        }
        let new_call = self.new_call(sig, CallDirection::Outgoing, target);
        self.spawn_task(new_call, audio.for_successor(new_call.0), CallRole::Offerer);
        sig.sessions.set_invite_options(
            SessionId::Call(new_call),
            sip::InviteOptions {
                replaces,
                referred_by,
            },
        );
        if let Some(entry) = self.entries.get_mut(&new_call) {
            entry.referred_by = Some((call, refer));
        }
    }

    /// Tells the peer that transferred us how the call it asked for is going (NOTIFY with a
    /// `message/sipfrag` status line); once it is answered, the old call ends.
    fn tell_referrer(&mut self, sig: &mut Signalling, call: CallId, status: u16, done: bool) {
        let Some(entry) = self.entries.get_mut(&call) else {
            return;
        };
        let Some((old, refer)) = entry.referred_by else {
            return;
        };
        if done {
            entry.referred_by = None;
        }
        let reason = sip::ua::reason_phrase(status);
        if let Err(e) = sig.ua.notify_refer(sig.now, refer, status, reason) {
            debug!(error = %e, "transfer progress not told");
        }
        if done && (200..300).contains(&status) {
            self.end_replaced(sig, old, "transferred");
        }
    }

    /// Ends a call another one has taken over.
    fn end_replaced(&mut self, sig: &mut Signalling, call: CallId, why: &str) {
        if self
            .entries
            .get(&call)
            .is_none_or(|e| e.phase == CallPhase::Ended)
        {
            return;
        }
        let _ = sig.send(SessionId::Call(call), Signal::End { reason: None });
        self.end_call(
            sig,
            call,
            CallEnding::local(why, CallEndReason::LocalHangup),
        );
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
        self.reports.state(
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
        if let Some(entry) = self.entries.remove(&call) {
            entry.ring_timer.abort();
            self.reports.closed(call);
        }
    }

    fn to_task(&self, call: CallId, message: ToCall) {
        if let Some(task) = self.entries.get(&call).and_then(|e| e.task.as_ref())
            && task.try_send(message).is_err()
        {
            debug!(call = call.0, "call task gone or busy; message dropped");
        }
    }

    /// Hands a front end's command to the call's media task; a call without one, or a task
    /// that is gone or busy, answers the command with the error.
    pub(crate) fn command(&self, call: CallId, command: ToCall) {
        call::command_task(self.task(call), call, command);
    }

    /// Sends a key press the way the account is set to (RFC 4733 events, SIP INFO or both).
    pub(crate) fn send_dtmf(
        &mut self,
        sig: &mut Signalling,
        call: CallId,
        digit: char,
        method: DtmfMethod,
        reply: oneshot::Sender<Result<(), EngineError>>,
    ) {
        if !matches!(digit, '0'..='9' | '*' | '#' | 'A'..='D' | 'a'..='d') {
            let _ = reply.send(Err(EngineError::InvalidConfig(format!(
                "{digit:?} is not a key: use 0-9, *, # or A-D"
            ))));
            return;
        }
        if matches!(method, DtmfMethod::Info | DtmfMethod::Both) {
            let sent = sig
                .sessions
                .dialog(SessionId::Call(call))
                .ok_or(EngineError::UnknownCall(call.0))
                .and_then(|dialog| {
                    Ok(sig
                        .ua
                        .send_dtmf_info(sig.now, dialog, digit.to_ascii_uppercase(), 100)?)
                });
            if let Err(e) = sent {
                let _ = reply.send(Err(e));
                return;
            }
            if method == DtmfMethod::Info {
                let _ = reply.send(Ok(()));
                return;
            }
        }
        self.command(call, ToCall::Dtmf { digit, reply });
    }

    /// Starts recording a call into a new WAV file in `folder` (named by time and party), or
    /// stops (`None`).
    pub(crate) fn record(
        &mut self,
        call: CallId,
        folder: Option<std::path::PathBuf>,
        reply: oneshot::Sender<Result<(), EngineError>>,
    ) {
        let peer = self
            .entries
            .get(&call)
            .map(|e| e.peer.as_str())
            .unwrap_or("");
        if let Some(command) = call::record_command(folder, peer, call, reply) {
            self.command(call, command);
        }
    }

    /// Puts a call on hold or resumes it; its media task makes the offer.
    pub(crate) fn hold(
        &mut self,
        call: CallId,
        hold: bool,
        reply: oneshot::Sender<Result<(), EngineError>>,
    ) {
        let answered = self
            .entries
            .get(&call)
            .map(|entry| entry.phase == CallPhase::Signalled && entry.answered);
        match answered {
            Some(true) => self.command(call, ToCall::Hold { hold, reply }),
            Some(false) => drop(reply.send(Err(EngineError::InvalidState(
                "only an answered call can be put on hold".into(),
            )))),
            None => drop(reply.send(Err(EngineError::UnknownCall(call.0)))),
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
        self.command(call, ToCall::Stats { reply });
    }

    fn spawn_task(&mut self, call: CallId, audio: CallAudio, role: CallRole) {
        let tx = self
            .tasks
            .start(call, Arc::clone(&self.media), audio.clone(), role);
        if let Some(entry) = self.entries.get_mut(&call) {
            entry.task = Some(tx);
            entry.audio = Some(audio);
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
                    self.reports.warn(format!("peer's SDP refused: {reason}"));
                }
                let has_dialog = sig.sessions.dialog(SessionId::Call(call)).is_some();
                let end = match (entry.phase, has_dialog) {
                    // The peer's offer was unusable: 488 Not Acceptable Here (RFC 3261 §21.4.26).
                    (CallPhase::Answering, true) => {
                        let status = if peer_fault { 488 } else { 500 };
                        let _ = sig.send(SessionId::Call(call), Signal::Decline { status });
                        CallEnding {
                            text: format!("could not be answered: {reason}"),
                            status: Some(status),
                            cause: CallEndReason::Failed,
                        }
                    }
                    (_, true) => {
                        let _ = sig.send(SessionId::Call(call), Signal::End { reason: None });
                        // Nobody hung up: the media died (the peer vanished, the network went),
                        // and history says so rather than "hung up".
                        let what = if entry.answered {
                            "media connection lost"
                        } else {
                            "media failed"
                        };
                        CallEnding::local(format!("{what}: {reason}"), CallEndReason::Failed)
                    }
                    (_, false) => {
                        CallEnding::local(format!("media failed: {reason}"), CallEndReason::Failed)
                    }
                };
                self.end_call(sig, call, end);
            }
            FromCall::Hold { call, state } => {
                let Some(entry) = self.entries.get_mut(&call) else {
                    return;
                };
                if entry.hold == state || entry.phase == CallPhase::Ended {
                    return;
                }
                entry.hold = state;
                self.reports.emit(EngineEvent::CallHold {
                    account: self.account,
                    call,
                    local: state.local,
                    remote: state.remote,
                });
            }
            FromCall::RingLimit { call } => self.on_ring_limit(sig, call),
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

    /// A call still ringing at its limit ends: ours with CANCEL, the peer's with 480 (RFC 3261
    /// §21.4.18) so that its caller hears why; both are kept in history as not answered.
    fn on_ring_limit(&mut self, sig: &mut Signalling, call: CallId) {
        let Some(entry) = self.entries.get(&call) else {
            return;
        };
        let ringing = match entry.direction {
            CallDirection::Outgoing => !entry.answered && entry.phase != CallPhase::Ended,
            CallDirection::Incoming => entry.phase == CallPhase::Setup,
        };
        if !ringing {
            return;
        }
        let (signal, limit) = match entry.direction {
            CallDirection::Outgoing => (Signal::End { reason: None }, OUTGOING_RING_LIMIT),
            CallDirection::Incoming => (Signal::Decline { status: 480 }, INCOMING_RING_LIMIT),
        };
        info!(
            call = call.0,
            ?limit,
            "no answer: the call rang for its limit"
        );
        if sig.sessions.dialog(SessionId::Call(call)).is_some() {
            let _ = sig.send(SessionId::Call(call), signal);
        }
        self.end_call(
            sig,
            call,
            CallEnding::local(
                format!("no answer after {} s", limit.as_secs()),
                CallEndReason::NoAnswer,
            ),
        );
    }

    fn on_task_signal(&mut self, sig: &mut Signalling, call: CallId, signal: Signal) {
        let Some(entry) = self.entries.get_mut(&call) else {
            return;
        };
        if entry.phase == CallPhase::Ended {
            return;
        }
        let reoffering = matches!(signal, Signal::Reoffer { .. });
        if reoffering && entry.peer_offer_pending {
            // Offers must not cross (RFC 3264 §4): our answer to the peer's offer says it.
            debug!(
                call = call.0,
                "our re-offer is carried by the answer to the peer's"
            );
            self.to_task(call, ToCall::HoldSuperseded);
            return;
        }
        let answering_reoffer = matches!(signal, Signal::AnswerReoffer { .. });
        if answering_reoffer {
            entry.peer_offer_pending = false;
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
                let replaced = entry.replaces.take();
                self.history.call_answered(self.account, &key);
                self.reports.state(call, CallState::Answered);
                if let Some(old) = replaced {
                    self.end_replaced(sig, old, "replaced by the transferred call");
                }
            }
            _ => {}
        }
        match sig.send(SessionId::Call(call), signal) {
            Ok(()) if reoffering => {
                debug!(call = call.0, "re-offer sent");
                if let Some(entry) = self.entries.get_mut(&call) {
                    entry.our_offer_pending = true;
                }
            }
            // Our offer that met a 491 waits to be retried; the answer just given to the
            // peer's crossing offer already carried our hold or resume, so it is withdrawn.
            Ok(()) if answering_reoffer => self.withdraw_crossed_offer(sig, call),
            Ok(()) => {}
            Err(e) => match failure {
                Some(what) => self.end_call(
                    sig,
                    call,
                    CallEnding::local(format!("{what}: {e}"), CallEndReason::Failed),
                ),
                None if reoffering => {
                    self.reports
                        .warn(format!("could not change the call's hold: {e}"));
                    self.to_task(call, ToCall::HoldRefused);
                }
                None => self
                    .reports
                    .warn(format!("could not answer a re-INVITE: {e}")),
            },
        }
    }

    fn withdraw_crossed_offer(&mut self, sig: &mut Signalling, call: CallId) {
        let pending = self
            .entries
            .get(&call)
            .is_some_and(|entry| entry.our_offer_pending);
        let Some(dialog) = sig
            .sessions
            .dialog(SessionId::Call(call))
            .filter(|_| pending)
        else {
            return;
        };
        if let Ok(true) = sig.ua.withdraw_reoffer(dialog) {
            debug!(
                call = call.0,
                "our re-offer waiting after a 491 is withdrawn"
            );
            if let Some(entry) = self.entries.get_mut(&call) {
                entry.our_offer_pending = false;
            }
            self.to_task(call, ToCall::HoldSuperseded);
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

impl CallEnding {
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
