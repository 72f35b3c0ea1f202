//! The XMPP account's calls: Jingle RTP sessions (XEP-0166, XEP-0167) set up with Jingle
//! Message Initiation (XEP-0353).
//!
//! Each call is a signalling core (`lyrebird_xmpp::jingle::JingleCall`, sans-IO) owned here, and
//! a media task (`call.rs`) — the same task a SIP call runs, speaking offer/answer SDP. This
//! table keeps the two in step, the way `sip/calls.rs` does for a SIP dialog:
//!
//! ```text
//!  media task                          this table                        the XMPP stream
//!  Signal::Offer / Answer ───────────▶ core.set_local_description ─────▶ session-initiate / -accept
//!  ToCall::RemoteAnswer / Reoffer ◀─── CallEvent::RemoteAnswer / Offer ◀─ session-accept / -initiate
//!  ToCall::RemoteCandidate ◀────────── CallEvent::RemoteCandidate ◀────── transport-info
//! ```
//!
//! and tells front ends the same `CallState` events, and history the same records, as a SIP
//! call. A caller not in the roster rings but is never answered automatically (the person
//! decides). Hold and mute are told to the peer as XEP-0167 session-info; the media keeps its
//! one negotiated description and goes silent while held.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use lyrebird_media::{HoldState, IceServer, MediaConfig, turn_url_problem};
use lyrebird_sdp::SessionDescription;
use lyrebird_store::CallEndReason;
use lyrebird_xmpp::jingle::caps::{CallMedia, can_take_call};
use lyrebird_xmpp::jingle::session::{iq_error, iq_result, refuse_session_initiate};
use lyrebird_xmpp::jingle::{
    CallConfig, CallEvent, CallState as CoreState, EndedBy, JingleCall, JingleMessage, Reason,
    element::reason_name,
};
use lyrebird_xmpp::{CallSignal, Client};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info};

use crate::call::{self, CallEnding, CallReports, CallRole, CallTasks, FromCall, ToCall};
use crate::command::AccountCommand;
use crate::config::CallAudio;
use crate::event::{CallDirection, CallState, EngineEvent};
use crate::ground::{AccountId, CallId, EngineError, IdSource};
use crate::history::History;
use crate::notice::AccountNotice;
use crate::session::Signal;

/// What the account knows of a caller: whether it is in the roster, and by which name.
pub(crate) struct Caller {
    pub(crate) known: bool,
    pub(crate) name: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Outgoing: the callee's devices ring (or the one called directly).
    Calling,
    /// Incoming: ringing here, waiting for the person.
    Ringing,
    /// Incoming, taken by the person: the media answer is being made.
    Answering,
    /// Both sides accepted.
    Live,
    /// Over; waiting for the media task to stop.
    Ended,
}

struct Entry {
    core: JingleCall,
    direction: CallDirection,
    /// The other party's bare JID.
    peer: String,
    display_name: Option<String>,
    phase: Phase,
    /// The peer's offer, until a media task takes it (incoming calls).
    offer: Option<String>,
    /// Trickled candidates that came before the media task: (mid, candidate).
    candidates: Vec<(String, String)>,
    /// Where the call's audio comes from and goes to, once it has media.
    audio: Option<CallAudio>,
    answered: bool,
    task: Option<mpsc::Sender<ToCall>>,
    history_key: String,
    hold: HoldState,
    /// The person muted the microphone (kept apart from hold, which also silences it).
    muted: bool,
    /// How the call ends when it ends because of us (media failure): the core's own words
    /// for it would be less precise.
    ending: Option<CallEnding>,
    /// History, the supervisor and front ends know of the call (an incoming one once it
    /// rings).
    announced: bool,
}

/// The calls of one XMPP account.
pub(crate) struct Calls {
    account: AccountId,
    media: Arc<MediaConfig>,
    ids: Arc<IdSource>,
    reports: CallReports,
    history: History,
    /// Answer calls from roster contacts at once with this audio.
    auto_answer: Option<CallAudio>,
    /// Our full JID, once online: calls need it.
    local: Option<String>,
    /// Disco features of contacts' devices (full JID), to tell who can take a call.
    features: HashMap<String, Vec<String>>,
    /// STUN/TURN servers our XMPP server offers (XEP-0215), used when none are configured.
    server_ice_servers: Vec<IceServer>,
    entries: HashMap<CallId, Entry>,
    tasks: CallTasks,
}

fn bare(jid: &str) -> &str {
    jid.split('/').next().unwrap_or(jid)
}

/// A call target as a person or a link writes it: `xmpp:bob@example.com`,
/// `bob@example.com`, or one device `bob@example.com/phone`. Returns (bare, full if given).
fn parse_target(target: &str) -> Result<(String, Option<String>), EngineError> {
    let jid = target.trim();
    let jid = jid.strip_prefix("xmpp:").unwrap_or(jid);
    // RFC 5122: an XMPP URI's query (`?message`, `?call`) says what to do, not who.
    let jid = jid.split('?').next().unwrap_or_default();
    let bare_jid = bare(jid);
    let well_formed = bare_jid
        .split_once('@')
        .is_some_and(|(user, domain)| !user.is_empty() && !domain.is_empty())
        && !jid.chars().any(|c| c.is_whitespace() || c.is_control())
        && !jid.ends_with('/');
    if !well_formed {
        return Err(EngineError::InvalidConfig(format!(
            "`{}` is not an XMPP address to call: write user@example.com",
            target.trim()
        )));
    }
    let full = (jid != bare_jid).then(|| jid.to_owned());
    Ok((bare_jid.to_owned(), full))
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
        let reports = CallReports::new(account, notices);
        Self {
            account,
            media,
            ids,
            tasks: CallTasks::new(account, reports.clone()),
            reports,
            history,
            auto_answer,
            local: None,
            features: HashMap::new(),
            server_ice_servers: Vec::new(),
            entries: HashMap::new(),
        }
    }

    /// The next message from a call task (for the account's `select!`).
    pub(crate) async fn next_message(&mut self) -> Option<FromCall> {
        self.tasks.next_message().await
    }

    /// When [`Calls::on_timeout`] is due.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.entries
            .values()
            .filter_map(|e| e.core.poll_timeout())
            .min()
    }

    /// The account is online as `jid` (a full JID).
    pub(crate) fn set_local(&mut self, jid: &str) {
        self.local = Some(jid.to_owned());
    }

    /// A contact device's disco features arrived.
    pub(crate) fn on_features(&mut self, jid: &str, features: &[String]) {
        self.features.insert(jid.to_owned(), features.to_vec());
    }

    /// A contact device went offline: what it could do no longer counts.
    pub(crate) fn on_unavailable(&mut self, jid: &str) {
        self.features.remove(jid);
    }

    fn config(&self) -> Result<CallConfig, EngineError> {
        self.local.clone().map(CallConfig::new).ok_or_else(|| {
            EngineError::InvalidState("the account is not online yet; calls need it".into())
        })
    }

    /// Files a new call: history, the supervisor's call table, and a `Dialing` state.
    fn open(
        &mut self,
        core: JingleCall,
        direction: CallDirection,
        peer: String,
        caller: Caller,
    ) -> CallId {
        let call = CallId(self.ids.next());
        let history_key = uuid::Uuid::new_v4().to_string();
        self.entries.insert(
            call,
            Entry {
                core,
                direction,
                peer: peer.clone(),
                display_name: caller.name,
                phase: match direction {
                    CallDirection::Outgoing => Phase::Calling,
                    CallDirection::Incoming => Phase::Ringing,
                },
                offer: None,
                candidates: Vec::new(),
                audio: None,
                answered: false,
                task: None,
                history_key,
                hold: HoldState::default(),
                muted: false,
                ending: None,
                announced: false,
            },
        );
        call
    }

    /// Tells history, the supervisor and front ends about a call just opened.
    fn announce(&mut self, call: CallId) {
        let Some(entry) = self.entries.get_mut(&call) else {
            return;
        };
        entry.announced = true;
        let (direction, peer) = (entry.direction, entry.peer.clone());
        self.history
            .call_started(self.account, &entry.history_key, direction, &peer);
        self.reports.opened(call);
        self.reports
            .state(call, CallState::Dialing { direction, peer });
    }

    /// Calls `target` (a bare JID: every device of the contact rings, XEP-0353; a full JID:
    /// that device only, with `session-initiate`).
    pub(crate) fn place_call(
        &mut self,
        client: &mut Client,
        now: Instant,
        target: &str,
        audio: CallAudio,
    ) -> Result<CallId, EngineError> {
        let (bare_jid, full) = parse_target(target)?;
        self.check_can_take_call(&bare_jid, full.as_deref())?;
        let config = self.config()?;
        let sid = uuid::Uuid::new_v4().to_string();
        let core = match &full {
            Some(full) => JingleCall::initiate(config, now, sid, full),
            None => JingleCall::propose(config, now, sid, &bare_jid, &["audio"]),
        };
        let caller = Caller {
            known: true,
            name: None,
        };
        let call = self.open(core, CallDirection::Outgoing, bare_jid, caller);
        self.announce(call);
        info!(
            account = self.account.0,
            call = call.0,
            "calling over Jingle"
        );
        self.spawn_task(call, audio, CallRole::Offerer);
        self.pump(client, now, call);
        Ok(call)
    }

    /// Refuses at once a call to a contact whose every known device said it cannot take one
    /// (no Jingle audio with ICE and DTLS in its disco features). Unknown devices are tried.
    fn check_can_take_call(&self, bare_jid: &str, full: Option<&str>) -> Result<(), EngineError> {
        let known: Vec<&Vec<String>> = self
            .features
            .iter()
            .filter(|(jid, _)| match full {
                Some(full) => jid.as_str() == full,
                None => bare(jid) == bare_jid,
            })
            .map(|(_, features)| features)
            .collect();
        if !known.is_empty() && !known.iter().any(|f| can_take_call(f, CallMedia::Audio)) {
            return Err(EngineError::InvalidState(format!(
                "{bare_jid} cannot take calls: their XMPP app does not offer Jingle audio calls \
                 (XEP-0167 with ICE and DTLS-SRTP)"
            )));
        }
        Ok(())
    }

    fn spawn_task(&mut self, call: CallId, audio: CallAudio, role: CallRole) {
        // Configured servers win; else those our XMPP server offers (XEP-0215).
        let media = if self.media.ice_servers.is_empty() && !self.server_ice_servers.is_empty() {
            Arc::new(MediaConfig {
                ice_servers: self.server_ice_servers.clone(),
                ..(*self.media).clone()
            })
        } else {
            Arc::clone(&self.media)
        };
        let tx = self.tasks.start(call, media, audio.clone(), role);
        if let Some(entry) = self.entries.get_mut(&call) {
            for (mid, candidate) in entry.candidates.drain(..) {
                let _ = tx.try_send(ToCall::RemoteCandidate { mid, candidate });
            }
            entry.task = Some(tx);
            entry.audio = Some(audio);
        }
    }

    fn to_task(&self, call: CallId, message: ToCall) {
        if let Some(task) = self.entries.get(&call).and_then(|e| e.task.as_ref())
            && task.try_send(message).is_err()
        {
            debug!(call = call.0, "call task gone or busy; message dropped");
        }
    }

    /// Sends what the call's core has to send and acts on what it reports, until it is quiet.
    fn pump(&mut self, client: &mut Client, now: Instant, call: CallId) {
        loop {
            let Some(entry) = self.entries.get_mut(&call) else {
                return;
            };
            while let Some(out) = entry.core.poll_transmit() {
                client.send_call_stanza(now, &out);
            }
            match entry.core.poll_event() {
                Some(event) => self.on_core_event(client, now, call, event),
                None => return,
            }
        }
    }

    fn on_core_event(&mut self, client: &mut Client, now: Instant, call: CallId, event: CallEvent) {
        let Some(entry) = self.entries.get_mut(&call) else {
            return;
        };
        match event {
            CallEvent::Incoming { from, media, known } => {
                info!(
                    account = self.account.0,
                    call = call.0,
                    ?media,
                    known,
                    "incoming Jingle call"
                );
                let display_name = entry.display_name.clone();
                self.announce(call);
                self.reports.emit(EngineEvent::IncomingCall {
                    account: self.account,
                    call,
                    from: bare(&from).to_owned(),
                    display_name,
                });
                self.reports.state(call, CallState::Ringing { status: 180 });
                // A stranger's call is the person's to take (XEP-0353 §4, XEP-0166 §12).
                if known
                    && let Some(audio) = self.auto_answer.clone()
                    && let Err(e) = self.answer(client, now, call, Some(audio))
                {
                    self.reports.warn(format!("auto-answer failed: {e}"));
                }
            }
            CallEvent::PeerRinging => self.reports.state(call, CallState::Ringing { status: 180 }),
            CallEvent::Proceeding { device } => {
                debug!(call = call.0, %device, "a device of the callee took the call");
            }
            CallEvent::RemoteOffer(sdp) => {
                let sdp = sdp.to_string();
                if entry.task.is_some() {
                    self.to_task(call, ToCall::Reoffer { sdp });
                } else {
                    entry.offer = Some(sdp);
                }
            }
            CallEvent::RemoteAnswer(sdp) => self.to_task(
                call,
                ToCall::RemoteAnswer {
                    sdp: sdp.to_string(),
                },
            ),
            CallEvent::RemoteCandidate(candidate) => match &entry.task {
                Some(_) => self.to_task(
                    call,
                    ToCall::RemoteCandidate {
                        mid: candidate.mid,
                        candidate: candidate.candidate,
                    },
                ),
                None => entry.candidates.push((candidate.mid, candidate.candidate)),
            },
            CallEvent::Accepted => {
                if !entry.answered {
                    entry.answered = true;
                    entry.phase = Phase::Live;
                    let key = entry.history_key.clone();
                    self.history.call_answered(self.account, &key);
                    self.reports.state(call, CallState::Answered);
                }
            }
            CallEvent::PeerHold(on) => {
                entry.hold.remote = on;
                let hold = entry.hold;
                self.reports.emit(EngineEvent::CallHold {
                    account: self.account,
                    call,
                    local: hold.local,
                    remote: hold.remote,
                });
            }
            CallEvent::PeerMute { content, muted } => {
                debug!(call = call.0, ?content, muted, "the peer muted or unmuted");
            }
            CallEvent::ContentsAccepted(names)
            | CallEvent::ContentsRejected(names)
            | CallEvent::ContentsRemoved(names) => {
                debug!(call = call.0, ?names, "contents changed");
            }
            CallEvent::Ended { reason, text, by } => {
                let ending = entry.ending.take().unwrap_or_else(|| {
                    CallEnding::from_jingle(&reason, text.as_deref(), &by, entry)
                });
                self.end_call(call, ending);
            }
            CallEvent::Warning(detail) => self.reports.warn(detail),
        }
    }

    /// The person takes a ringing call; `None` uses the sound card.
    pub(crate) fn answer(
        &mut self,
        client: &mut Client,
        now: Instant,
        call: CallId,
        audio: Option<CallAudio>,
    ) -> Result<(), EngineError> {
        let entry = self.entry_in(
            call,
            Phase::Ringing,
            "only a ringing incoming call can be answered",
        )?;
        entry
            .core
            .accept(now)
            .map_err(|e| EngineError::InvalidState(e.to_string()))?;
        entry.phase = Phase::Answering;
        let audio = audio.unwrap_or_else(CallAudio::devices);
        // With the offer here, answer it; else (a proposal taken) get the media ready while
        // the caller sends it: it is answered the moment it arrives.
        let role = match entry.offer.take() {
            Some(offer) => CallRole::Answerer { offer },
            None => CallRole::AnswererAwaitingOffer,
        };
        self.spawn_task(call, audio, role);
        self.pump(client, now, call);
        Ok(())
    }

    pub(crate) fn reject(
        &mut self,
        client: &mut Client,
        now: Instant,
        call: CallId,
    ) -> Result<(), EngineError> {
        let entry = self.entry_in(
            call,
            Phase::Ringing,
            "only a ringing incoming call can be declined",
        )?;
        entry
            .core
            .reject(now, Reason::Decline)
            .map_err(|e| EngineError::InvalidState(e.to_string()))?;
        self.pump(client, now, call);
        Ok(())
    }

    pub(crate) fn hangup(
        &mut self,
        client: &mut Client,
        now: Instant,
        call: CallId,
    ) -> Result<(), EngineError> {
        let entry = self
            .entries
            .get_mut(&call)
            .ok_or(EngineError::UnknownCall(call.0))?;
        if entry.phase == Phase::Ended {
            return Err(EngineError::UnknownCall(call.0));
        }
        entry.core.hangup(now);
        self.pump(client, now, call);
        // A core already over says nothing more; the call ends here all the same.
        if self
            .entries
            .get(&call)
            .is_some_and(|e| e.phase != Phase::Ended)
        {
            self.end_call(
                call,
                CallEnding::local("hung up", CallEndReason::LocalHangup),
            );
        }
        Ok(())
    }

    /// Hold (XEP-0167 §7.1): the peer is told, and our microphone goes silent while held.
    fn hold(
        &mut self,
        client: &mut Client,
        now: Instant,
        call: CallId,
        hold: bool,
    ) -> Result<(), EngineError> {
        let entry = self.entry_in(
            call,
            Phase::Live,
            "only an answered call can be put on hold",
        )?;
        entry
            .core
            .hold(now, hold)
            .map_err(|e| EngineError::InvalidState(e.to_string()))?;
        entry.hold.local = hold;
        let (state, muted) = (entry.hold, entry.muted || hold);
        self.to_task(call, ToCall::SetMuted { muted });
        self.reports.emit(EngineEvent::CallHold {
            account: self.account,
            call,
            local: state.local,
            remote: state.remote,
        });
        self.pump(client, now, call);
        Ok(())
    }

    fn set_muted(
        &mut self,
        client: &mut Client,
        now: Instant,
        call: CallId,
        muted: bool,
    ) -> Result<(), EngineError> {
        let entry = self
            .entries
            .get_mut(&call)
            .ok_or(EngineError::UnknownCall(call.0))?;
        entry.muted = muted;
        if entry.phase == Phase::Live {
            // Telling the peer is a courtesy (XEP-0167 §7.3); the silence is what counts.
            let _ = entry.core.mute(now, muted, None);
        }
        let silent = muted || entry.hold.local;
        self.to_task(call, ToCall::SetMuted { muted: silent });
        self.pump(client, now, call);
        Ok(())
    }

    /// The call, if it is in `phase`; else `refusal` (a command that does not fit the call).
    fn entry_in(
        &mut self,
        call: CallId,
        phase: Phase,
        refusal: &str,
    ) -> Result<&mut Entry, EngineError> {
        match self.entries.get_mut(&call) {
            None => Err(EngineError::UnknownCall(call.0)),
            Some(entry) if entry.phase == phase => Ok(entry),
            Some(_) => Err(EngineError::InvalidState(refusal.to_owned())),
        }
    }

    /// The call's media task, for commands that only it can carry out.
    fn task(&self, call: CallId) -> Result<mpsc::Sender<ToCall>, EngineError> {
        let entry = self
            .entries
            .get(&call)
            .ok_or(EngineError::UnknownCall(call.0))?;
        entry
            .task
            .clone()
            .ok_or_else(|| EngineError::InvalidState("the call has no media yet".into()))
    }

    /// Hands a command to the call's media task, or answers it with why it cannot be.
    fn command(&self, call: CallId, command: ToCall) {
        call::command_task(self.task(call), call, command);
    }

    /// A front end's command for one of this account's calls (or to place one).
    pub(crate) fn on_command(
        &mut self,
        client: &mut Client,
        now: Instant,
        command: AccountCommand,
    ) {
        fn done(reply: oneshot::Sender<Result<(), EngineError>>, r: Result<(), EngineError>) {
            let _ = reply.send(r);
        }
        match command {
            AccountCommand::Call {
                target,
                audio,
                reply,
            } => {
                let _ = reply.send(self.place_call(client, now, &target, audio));
            }
            AccountCommand::Answer { call, audio, reply } => {
                done(reply, self.answer(client, now, call, audio))
            }
            AccountCommand::Reject { call, reply } => done(reply, self.reject(client, now, call)),
            AccountCommand::Hangup { call, reply } => done(reply, self.hangup(client, now, call)),
            AccountCommand::Hold { call, hold, reply } => {
                done(reply, self.hold(client, now, call, hold))
            }
            AccountCommand::SetMuted { call, muted, reply } => {
                done(reply, self.set_muted(client, now, call, muted))
            }
            AccountCommand::Stats { call, reply } => self.command(call, ToCall::Stats { reply }),
            AccountCommand::SendDtmf { call, digit, reply } => {
                if matches!(digit, '0'..='9' | '*' | '#' | 'A'..='D' | 'a'..='d') {
                    self.command(call, ToCall::Dtmf { digit, reply });
                } else {
                    done(
                        reply,
                        Err(EngineError::InvalidConfig(format!(
                            "{digit:?} is not a key: use 0-9, *, # or A-D"
                        ))),
                    );
                }
            }
            AccountCommand::Record {
                call,
                folder,
                reply,
            } => {
                let peer = self.entries.get(&call).map(|e| e.peer.clone());
                if let Some(command) =
                    call::record_command(folder, peer.as_deref().unwrap_or(""), call, reply)
                {
                    self.command(call, command);
                }
            }
            AccountCommand::Conference {
                call,
                conference,
                reply,
            } => self.command(call, ToCall::Conference { conference, reply }),
            command @ (AccountCommand::Transfer { .. }
            | AccountCommand::AttendedTransfer { .. }) => command.fail(EngineError::InvalidState(
                "calls with XMPP contacts cannot be transferred (Jingle has no transfer)".into(),
            )),
            command @ (AccountCommand::SendMessage { .. } | AccountCommand::Files(_)) => command
                .fail(EngineError::InvalidState(
                    "this is an XMPP account: send messages and files with its XMPP commands"
                        .into(),
                )),
            AccountCommand::Shutdown { reply } => drop(reply.send(())),
        }
    }

    /// Call signalling the stream received: Jingle IQs, answers to ours, XEP-0353 messages.
    pub(crate) fn on_signal(
        &mut self,
        client: &mut Client,
        now: Instant,
        signal: CallSignal,
        caller: impl Fn(&str) -> Caller,
    ) {
        match signal {
            CallSignal::Jingle {
                from,
                id,
                sid,
                action,
                jingle,
            } => self.on_jingle(client, now, &from, &id, &sid, &action, jingle, caller),
            CallSignal::IqResult { id } => {
                if let Some(call) = self.owner_of_iq(&id)
                    && let Some(entry) = self.entries.get_mut(&call)
                {
                    entry.core.handle_iq_result(now, &id);
                    self.pump(client, now, call);
                }
            }
            CallSignal::IqError { id, condition } => {
                if let Some(call) = self.owner_of_iq(&id)
                    && let Some(entry) = self.entries.get_mut(&call)
                {
                    entry.core.handle_iq_error(now, &id, &condition);
                    self.pump(client, now, call);
                }
            }
            CallSignal::Message {
                from,
                peer,
                ours,
                message,
            } => self.on_call_message(client, now, &from, &peer, ours, message, caller),
            CallSignal::IceServers(servers) => self.on_server_ice_servers(&servers),
        }
    }

    /// The STUN/TURN services our XMPP server offers (XEP-0215): those the media engine can
    /// use, with their credentials, become the calls' ICE servers when none are configured.
    fn on_server_ice_servers(&mut self, services: &[lyrebird_xmpp::jingle::caps::IceServer]) {
        self.server_ice_servers = services
            .iter()
            .filter(|s| {
                let usable = s.url.starts_with("stun:")
                    || (s.url.starts_with("turn:")
                        && turn_url_problem(&s.url).is_none()
                        && s.username.is_some()
                        && s.credential.is_some());
                if !usable {
                    debug!(url = %s.url, "a STUN/TURN service the media engine cannot use");
                }
                usable
            })
            .map(|s| IceServer {
                urls: vec![s.url.clone()],
                username: s.username.clone(),
                credential: s.credential.clone(),
                shared_secret: None,
            })
            .collect();
        info!(
            account = self.account.0,
            offered = services.len(),
            used = self.server_ice_servers.len(),
            "STUN/TURN services from the XMPP server"
        );
    }

    fn owner_of_iq(&self, id: &str) -> Option<CallId> {
        self.entries
            .iter()
            .find(|(_, e)| e.core.owns_iq(id))
            .map(|(call, _)| *call)
    }

    /// The live call with session id `sid` whose peer is `from` (a stranger cannot reach into
    /// someone else's call by naming its id).
    fn call_with(&self, sid: &str, from: &str) -> Option<CallId> {
        self.entries
            .iter()
            .find(|(_, e)| e.phase != Phase::Ended && e.core.sid() == sid && e.peer == bare(from))
            .map(|(call, _)| *call)
    }

    #[allow(clippy::too_many_arguments)]
    fn on_jingle(
        &mut self,
        client: &mut Client,
        now: Instant,
        from: &str,
        id: &str,
        sid: &str,
        action: &str,
        jingle: Result<lyrebird_xmpp::jingle::Jingle, lyrebird_xmpp::jingle::JingleError>,
        caller: impl Fn(&str) -> Caller,
    ) {
        let existing = self.call_with(sid, from);
        match (existing, jingle) {
            (Some(call), Ok(jingle)) => {
                if let Some(entry) = self.entries.get_mut(&call) {
                    entry.core.handle_jingle(now, from, id, jingle);
                }
                self.pump(client, now, call);
            }
            (None, Err(e)) if action == "session-initiate" => {
                self.reports
                    .warn(format!("a call from {from} could not be taken: {e}"));
                let local = self.local.clone().unwrap_or_default();
                for out in refuse_session_initiate(&local, from, id, sid, &e) {
                    client.send_call_stanza(now, &out);
                }
            }
            // The offer of a call this device already took cannot be used: the call ends on
            // both sides with the reason (ack, then terminate: XEP-0166 §6.3.2), at once
            // rather than when the caller gives up.
            (Some(call), Err(e)) if action == "session-initiate" => {
                self.reports
                    .warn(format!("the call from {from} could not be set up: {e}"));
                client.send_call_stanza(now, &outgoing(from, iq_result(from, id)));
                if let Some(entry) = self.entries.get_mut(&call) {
                    entry.ending = Some(CallEnding::local(
                        format!("the caller's offer could not be used: {e}"),
                        CallEndReason::Failed,
                    ));
                    entry.core.fail(now, e.reason());
                }
                self.pump(client, now, call);
                self.end_if_open(call);
            }
            (_, Err(e)) => {
                self.reports
                    .warn(format!("a Jingle {action} from {from} was refused: {e}"));
                let answer = iq_error(from, id, "modify", "bad-request", None);
                client.send_call_stanza(now, &outgoing(from, answer));
            }
            (None, Ok(jingle)) if action == "session-initiate" => {
                let config = match self.config() {
                    Ok(config) => config,
                    Err(_) => return,
                };
                let who = caller(bare(from));
                let known = who.known;
                let core = JingleCall::incoming_session(config, now, from, id, jingle, known);
                let call = self.open(core, CallDirection::Incoming, bare(from).to_owned(), who);
                self.pump(client, now, call);
            }
            (None, Ok(_)) => {
                let answer = iq_error(
                    from,
                    id,
                    "cancel",
                    "item-not-found",
                    Some("unknown-session"),
                );
                client.send_call_stanza(now, &outgoing(from, answer));
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_call_message(
        &mut self,
        client: &mut Client,
        now: Instant,
        from: &str,
        peer: &str,
        ours: bool,
        message: JingleMessage,
        caller: impl Fn(&str) -> Caller,
    ) {
        let id = message.id().to_owned();
        let existing = self
            .entries
            .iter()
            .find(|(_, e)| {
                e.phase != Phase::Ended && e.core.sid() == id && (ours || e.peer == bare(from))
            })
            .map(|(call, _)| *call);
        if let Some(call) = existing {
            if let Some(entry) = self.entries.get_mut(&call) {
                entry.core.handle_message(now, from, message, ours);
            }
            self.pump(client, now, call);
            return;
        }
        let JingleMessage::Propose { media, .. } = message else {
            debug!(%from, %id, "a call message for no call here; ignored");
            return;
        };
        if ours {
            // Our own other device calling someone: nothing rings here.
            return;
        }
        let Ok(config) = self.config() else { return };
        // Both called each other at once (XEP-0353 §3.3): the lower id wins on both sides.
        let crossed = self
            .entries
            .iter()
            .find(|(_, e)| {
                e.direction == CallDirection::Outgoing
                    && e.phase == Phase::Calling
                    && e.peer == bare(peer)
            })
            .map(|(call, _)| *call);
        let mut take_over = None;
        if let Some(ours_call) = crossed {
            let Some(entry) = self.entries.get_mut(&ours_call) else {
                return;
            };
            if entry.core.resolve_crossed_proposal(&id) {
                debug!(%id, "our call crossed theirs and wins");
                return;
            }
            entry.ending = Some(CallEnding::local(
                "crossed with the other side's call, which goes on instead",
                CallEndReason::LocalCancel,
            ));
            take_over = Some(ours_call);
        }
        let who = caller(bare(from));
        let known = who.known;
        let core = JingleCall::incoming_proposal(config, now, from, &id, media, known);
        let call = self.open(core, CallDirection::Incoming, bare(from).to_owned(), who);
        // The call we placed gives way to theirs and is answered with the same audio.
        if let Some(lost) = take_over {
            let audio = self
                .entries
                .get(&lost)
                .and_then(|e| e.audio.as_ref())
                .map(|a| a.for_successor(call.0));
            self.pump(client, now, lost);
            self.pump(client, now, call);
            if let Some(audio) = audio
                && let Err(e) = self.answer(client, now, call, Some(audio))
            {
                self.reports
                    .warn(format!("could not take the crossing call: {e}"));
            }
            return;
        }
        self.pump(client, now, call);
    }

    /// What a call task reports or asks for.
    pub(crate) fn on_task_message(&mut self, client: &mut Client, now: Instant, message: FromCall) {
        match message {
            FromCall::Signal { call, signal } => self.on_task_signal(client, now, call, signal),
            FromCall::MediaFailed {
                call,
                reason,
                peer_fault,
            } => {
                let Some(entry) = self.entries.get_mut(&call) else {
                    return;
                };
                if entry.phase == Phase::Ended {
                    return;
                }
                let (why, text) = if peer_fault {
                    self.reports
                        .warn(format!("the peer's media description refused: {reason}"));
                    (
                        Reason::IncompatibleParameters,
                        format!("media failed: {reason}"),
                    )
                } else if entry.answered {
                    (
                        Reason::ConnectivityError,
                        format!("media connection lost: {reason}"),
                    )
                } else {
                    (Reason::MediaError, format!("media failed: {reason}"))
                };
                if let Some(entry) = self.entries.get_mut(&call) {
                    entry.ending = Some(CallEnding::local(text, CallEndReason::Failed));
                    entry.core.fail(now, why);
                }
                self.pump(client, now, call);
                self.end_if_open(call);
            }
            FromCall::Hold { call, state } => {
                debug!(call = call.0, ?state, "media hold state");
            }
            FromCall::RingLimit { .. } => {}
            FromCall::Finished { call } => {
                let ended = self
                    .entries
                    .get(&call)
                    .is_some_and(|e| e.phase == Phase::Ended);
                if ended {
                    self.forget(call);
                } else if let Some(entry) = self.entries.get_mut(&call) {
                    entry.task = None;
                }
            }
        }
    }

    fn on_task_signal(&mut self, client: &mut Client, now: Instant, call: CallId, signal: Signal) {
        let Some(entry) = self.entries.get_mut(&call) else {
            return;
        };
        if entry.phase == Phase::Ended {
            return;
        }
        let sdp = match signal {
            Signal::Offer { sdp } | Signal::Answer { sdp } => sdp,
            Signal::AnswerReoffer { sdp: Some(sdp) } => sdp,
            Signal::AnswerReoffer { sdp: None } => {
                self.reports
                    .warn("the other side's change to the call could not be taken".into());
                return;
            }
            // Hold is session-info here, not a new offer; the task never declines or ends.
            Signal::Reoffer { .. } => return self.to_task(call, ToCall::HoldRefused),
            Signal::Decline { .. } | Signal::End { .. } => return,
        };
        let described = SessionDescription::parse(&sdp)
            .map_err(|e| e.to_string())
            .and_then(|sdp| {
                entry
                    .core
                    .set_local_description(now, sdp)
                    .map_err(|e| e.to_string())
            });
        if let Err(e) = described {
            entry.ending = Some(CallEnding::local(
                format!("the call could not be described in Jingle: {e}"),
                CallEndReason::Failed,
            ));
            entry.core.fail(now, Reason::FailedApplication);
        }
        self.pump(client, now, call);
        self.end_if_open(call);
    }

    /// Ends the call here if the core is over but said nothing (it was over already).
    fn end_if_open(&mut self, call: CallId) {
        let Some(entry) = self.entries.get_mut(&call) else {
            return;
        };
        if entry.phase != Phase::Ended
            && entry.core.state() == CoreState::Ended
            && let Some(ending) = entry.ending.take()
        {
            self.end_call(call, ending);
        }
    }

    /// Ring and IQ deadlines.
    pub(crate) fn on_timeout(&mut self, client: &mut Client, now: Instant) {
        let due: Vec<CallId> = self
            .entries
            .iter()
            .filter(|(_, e)| e.core.poll_timeout().is_some_and(|at| at <= now))
            .map(|(call, _)| *call)
            .collect();
        for call in due {
            if let Some(entry) = self.entries.get_mut(&call) {
                entry.core.handle_timeout(now);
            }
            self.pump(client, now, call);
        }
    }

    fn end_call(&mut self, call: CallId, ending: CallEnding) {
        let Some(entry) = self.entries.get_mut(&call) else {
            return;
        };
        if entry.phase == Phase::Ended {
            return;
        }
        entry.phase = Phase::Ended;
        if !entry.announced {
            // Refused before it rang (a session-initiate that could not be a call): nobody
            // saw it, so there is nothing to end in history or on screen.
            self.entries.remove(&call);
            return;
        }
        let task_running = match &entry.task {
            Some(task) => task.try_send(ToCall::End).is_ok(),
            None => false,
        };
        let key = entry.history_key.clone();
        info!(account = self.account.0, call = call.0, reason = %ending.text, "call ended");
        self.history.call_ended(self.account, &key, ending.cause);
        self.reports.state(
            call,
            CallState::Ended {
                reason: ending.text,
                status: ending.status,
            },
        );
        if !task_running {
            self.forget(call);
        }
    }

    fn forget(&mut self, call: CallId) {
        if self.entries.remove(&call).is_some() {
            self.reports.closed(call);
        }
    }

    /// Hangs up every call (the account is stopping).
    pub(crate) fn hangup_all(&mut self, client: &mut Client, now: Instant) {
        let calls: Vec<CallId> = self.entries.keys().copied().collect();
        for call in calls {
            let _ = self.hangup(client, now, call);
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

fn outgoing(to: &str, xml: String) -> lyrebird_xmpp::jingle::session::Outgoing {
    lyrebird_xmpp::jingle::session::Outgoing {
        to: to.to_owned(),
        xml,
    }
}

impl CallEnding {
    /// The XEP-0166 §7.4 reason, who ended the call, and whether it had been answered.
    fn from_jingle(reason: &Reason, text: Option<&str>, by: &EndedBy, entry: &Entry) -> Self {
        use CallEndReason as R;
        let answered = entry.answered;
        let incoming = entry.direction == CallDirection::Incoming;
        let detail = text.map(|t| format!(" ({t})")).unwrap_or_default();
        let (words, cause) = match (by, reason) {
            (EndedBy::Elsewhere, Reason::Decline | Reason::Busy) => (
                "declined on another of your devices".to_owned(),
                R::Declined,
            ),
            (EndedBy::Elsewhere, _) => (
                "answered on another of your devices".to_owned(),
                R::AnsweredElsewhere,
            ),
            (EndedBy::Timeout, _) if !answered => ("no answer".to_owned(), R::NoAnswer),
            (EndedBy::Timeout, _) => ("the other side stopped answering".to_owned(), R::Failed),
            (EndedBy::Error(condition), _) => (
                format!("the other side refused the call: {condition}"),
                R::Failed,
            ),
            (EndedBy::Us, Reason::Success) => ("hung up".to_owned(), R::LocalHangup),
            (EndedBy::Us, Reason::Cancel) if !answered => ("cancelled".to_owned(), R::LocalCancel),
            (EndedBy::Us, Reason::Decline | Reason::Busy) => ("declined".to_owned(), R::Declined),
            (EndedBy::Us, other) => (format!("ended: {}", reason_name(other)), R::Failed),
            (EndedBy::Peer, Reason::Success) => {
                ("the other side hung up".to_owned(), R::RemoteHangup)
            }
            (EndedBy::Peer, Reason::Cancel | Reason::Gone) if !answered && incoming => {
                ("cancelled by the caller".to_owned(), R::RemoteCancel)
            }
            (EndedBy::Peer, Reason::Cancel | Reason::Gone) if answered => {
                ("the other side hung up".to_owned(), R::RemoteHangup)
            }
            (EndedBy::Peer, Reason::Decline) => ("declined".to_owned(), R::Declined),
            (EndedBy::Peer, Reason::Busy) => ("busy".to_owned(), R::Busy),
            (EndedBy::Peer, Reason::Timeout | Reason::Expired) => {
                ("no answer".to_owned(), R::NoAnswer)
            }
            (EndedBy::Peer, other) => (
                format!("the other side ended the call: {}", reason_name(other)),
                R::Failed,
            ),
        };
        CallEnding::local(format!("{words}{detail}"), cause)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_targets_are_read_as_a_person_or_a_link_writes_them() {
        let ok = |t: &str| parse_target(t).ok();
        assert_eq!(
            ok("bob@example.com"),
            Some(("bob@example.com".into(), None))
        );
        assert_eq!(
            ok(" xmpp:bob@example.com?call "),
            Some(("bob@example.com".into(), None))
        );
        assert_eq!(
            ok("bob@example.com/phone"),
            Some((
                "bob@example.com".into(),
                Some("bob@example.com/phone".into())
            ))
        );
        for bad in [
            "",
            "example.com",
            "@example.com",
            "bob@",
            "bo b@example.com",
            "bob@x/",
        ] {
            assert!(parse_target(bad).is_err(), "{bad:?} taken");
        }
    }
}
