//! The account's session table: which SIP dialog carries which session (a call, a file, an MSRP
//! chat), and the one place where a session's [`Signal`]s become requests on its dialog and the
//! dialog's events become [`DialogEvent`]s for the session.
//!
//! A session has at most one current dialog. A file transfer that resumes after a dropped
//! connection offers itself again in a new dialog; the old one is forgotten, and whatever it
//! still reports is dropped. A session that ends its dialog itself (`Signal::End`,
//! `Signal::Decline`) is detached from it at once: the ending is the session's own doing, so it
//! hears nothing more of that dialog; `DialogEvent::Ended` reports only endings it did not ask
//! for.

use std::collections::HashMap;
use std::time::Instant;

use lyrebird_sip::{self as sip, UaEvent, UserAgent};
use tracing::debug;

use crate::ground::EngineError;
use crate::session::{DialogEvent, SessionId, Signal};

struct Entry {
    /// Who the session is with: the target of our INVITE.
    peer: String,
    dialog: Option<sip::CallId>,
    /// Our current session description: repeated to a re-INVITE that asks for no change (or
    /// one that cannot be taken).
    local_sdp: Option<String>,
    /// What our INVITE says beside the offer (Replaces, Referred-By: a call we make because
    /// we were transferred).
    invite: sip::InviteOptions,
}

/// What a SIP event is about.
#[derive(Debug)]
pub(crate) enum Routed {
    /// Something happened on a session's dialog.
    Session(SessionId, DialogEvent),
    /// A new incoming INVITE: the account decides what kind of session it opens.
    Offer {
        dialog: sip::CallId,
        from: sip::Party,
        sdp: Option<String>,
        /// The session it replaces (RFC 3891: an attended transfer's target answering).
        replaces: Option<SessionId>,
    },
    /// Not about a session (registration, MESSAGE, protocol errors).
    Account(UaEvent),
    /// Nothing to do: an ACK, or news of a dialog no session owns any more.
    Nothing,
}

/// The table, with the SIP core and the time of the event being handled: what books hold to
/// signal on their sessions' dialogs.
pub(crate) struct Signalling<'a> {
    pub(crate) ua: &'a mut UserAgent,
    pub(crate) sessions: &'a mut Sessions,
    pub(crate) now: Instant,
}

impl Signalling<'_> {
    /// Carries out a session's signal on its dialog.
    pub(crate) fn send(&mut self, session: SessionId, signal: Signal) -> Result<(), EngineError> {
        self.sessions.signal(self.ua, self.now, session, signal)
    }
}

#[derive(Default)]
pub(crate) struct Sessions {
    entries: HashMap<SessionId, Entry>,
    by_dialog: HashMap<sip::CallId, SessionId>,
}

impl Sessions {
    /// Adds a session with `peer`; `dialog` is the incoming INVITE's, if it came from one.
    pub(crate) fn open(&mut self, session: SessionId, peer: String, dialog: Option<sip::CallId>) {
        if let Some(dialog) = dialog {
            self.by_dialog.insert(dialog, session);
        }
        self.entries.insert(
            session,
            Entry {
                peer,
                dialog,
                local_sdp: None,
                invite: sip::InviteOptions::default(),
            },
        );
    }

    /// Sets what the session's INVITE says beside the offer.
    pub(crate) fn set_invite_options(&mut self, session: SessionId, options: sip::InviteOptions) {
        if let Some(entry) = self.entries.get_mut(&session) {
            entry.invite = options;
        }
    }

    /// Moves a session onto a new incoming dialog (a resumed file transfer offered again by
    /// its sender); the old dialog, if any, is returned for the caller to end.
    pub(crate) fn rebind(
        &mut self,
        session: SessionId,
        dialog: sip::CallId,
    ) -> Option<sip::CallId> {
        let entry = self.entries.get_mut(&session)?;
        let old = entry.dialog.replace(dialog);
        if let Some(old) = old {
            self.by_dialog.remove(&old);
        }
        self.by_dialog.insert(dialog, session);
        old
    }

    /// Removes a session; its dialog (if it still has one) is returned for the caller to end.
    pub(crate) fn close(&mut self, session: SessionId) -> Option<sip::CallId> {
        let dialog = self.entries.remove(&session)?.dialog?;
        self.by_dialog.remove(&dialog);
        Some(dialog)
    }

    /// The session's current dialog.
    pub(crate) fn dialog(&self, session: SessionId) -> Option<sip::CallId> {
        self.entries.get(&session)?.dialog
    }

    fn detach(&mut self, session: SessionId) -> Option<sip::CallId> {
        let dialog = self.entries.get_mut(&session)?.dialog.take()?;
        self.by_dialog.remove(&dialog);
        Some(dialog)
    }

    /// Carries out a session's signal on its dialog (see [`Signal`]).
    pub(crate) fn signal(
        &mut self,
        ua: &mut UserAgent,
        now: Instant,
        session: SessionId,
        signal: Signal,
    ) -> Result<(), EngineError> {
        let entry = self
            .entries
            .get_mut(&session)
            .ok_or_else(|| EngineError::InvalidState("the session is over".into()))?;
        let no_dialog = || EngineError::InvalidState("the session has no dialog".into());
        match signal {
            Signal::Offer { sdp } => {
                entry.local_sdp = Some(sdp.clone());
                let dialog = ua.invite_with(now, &entry.peer, sdp, entry.invite.clone())?;
                if let Some(old) = entry.dialog.replace(dialog) {
                    self.by_dialog.remove(&old);
                }
                self.by_dialog.insert(dialog, session);
            }
            Signal::Answer { sdp } => {
                entry.local_sdp = Some(sdp.clone());
                ua.answer(now, entry.dialog.ok_or_else(no_dialog)?, sdp)?;
            }
            Signal::AnswerReoffer { sdp } => {
                if let Some(sdp) = &sdp {
                    entry.local_sdp = Some(sdp.clone());
                }
                let sdp = sdp.or_else(|| entry.local_sdp.clone()).unwrap_or_default();
                ua.answer_reoffer(now, entry.dialog.ok_or_else(no_dialog)?, sdp)?;
            }
            Signal::Reoffer { sdp } => {
                let dialog = entry.dialog.ok_or_else(no_dialog)?;
                ua.reinvite(now, dialog, sdp.clone())?;
                entry.local_sdp = Some(sdp);
            }
            Signal::Decline { status } => {
                let dialog = self.detach(session).ok_or_else(no_dialog)?;
                ua.reject(now, dialog, status)?;
            }
            Signal::End { reason } => {
                let dialog = self.detach(session).ok_or_else(no_dialog)?;
                ua.hangup_with_reason(now, dialog, reason)?;
            }
        }
        Ok(())
    }

    /// Says what a SIP event is about, and keeps the table in step with it.
    pub(crate) fn route(&mut self, event: UaEvent) -> Routed {
        let (dialog, event) = match event {
            UaEvent::IncomingCall {
                call,
                from,
                sdp,
                replaces,
                ..
            } => {
                let replaces = replaces.and_then(|dialog| self.by_dialog.get(&dialog).copied());
                return Routed::Offer {
                    dialog: call,
                    from,
                    sdp,
                    replaces,
                };
            }
            UaEvent::CallProgress {
                call, status, sdp, ..
            } => (call, DialogEvent::Progress { status, sdp }),
            UaEvent::CallAnswered { call, sdp } => (call, DialogEvent::Answered { sdp }),
            UaEvent::Reoffer { call, sdp } => (call, DialogEvent::Reoffered { sdp }),
            UaEvent::CallEnded { call, reason } => (call, DialogEvent::Ended { reason }),
            UaEvent::ReofferAnswered { call, sdp } => (call, DialogEvent::ReofferAnswered { sdp }),
            UaEvent::ReofferFailed {
                call,
                status,
                reason,
            } => (call, DialogEvent::ReofferFailed { status, reason }),
            UaEvent::DtmfReceived {
                call,
                digit,
                duration_ms,
            } => (call, DialogEvent::Dtmf { digit, duration_ms }),
            UaEvent::ReferReceived {
                call,
                refer,
                target,
                replaces,
                referred_by,
            } => (
                call,
                DialogEvent::Referred {
                    refer,
                    target,
                    replaces,
                    referred_by,
                },
            ),
            UaEvent::ReferProgress {
                call,
                refer,
                status,
                reason,
                final_,
            } => (
                call,
                DialogEvent::ReferProgress {
                    refer,
                    status,
                    reason,
                    done: final_,
                },
            ),
            UaEvent::CallConfirmed { call } => {
                debug!(?call, "ACK received");
                return Routed::Nothing;
            }
            other => return Routed::Account(other),
        };
        let Some(&session) = self.by_dialog.get(&dialog) else {
            debug!(?dialog, ?event, "event of a dialog no session owns");
            return Routed::Nothing;
        };
        if matches!(event, DialogEvent::Ended { .. }) {
            self.by_dialog.remove(&dialog);
            if let Some(entry) = self.entries.get_mut(&session) {
                entry.dialog = None;
            }
        }
        Routed::Session(session, event)
    }
}
