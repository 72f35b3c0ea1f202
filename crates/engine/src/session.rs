//! The one protocol between an account task and the tasks of the sessions it signals for.
//!
//! A SIP dialog carries a call, a file (RFC 5547) or an MSRP chat; whatever it carries, its task
//! speaks to the account in offer/answer terms (RFC 3264), never in SIP: it hands over an offer
//! or an answer, answers the peer's new offers, or ends the session, and it hears back what the
//! peer did. The account's session table (`sip/sessions.rs`) turns each [`Signal`] into
//! requests on the dialog and each dialog event into a [`DialogEvent`] for the task, the same
//! way for every kind of session.
//!
//! ```text
//!  session task (call media, file, chat)          account task (one per account)
//!  ───────────────────────────────────────        ─────────────────────────────────
//!   Signal::Offer ───────────────────────────────▶ INVITE
//!                 ◀── DialogEvent::Progress/Answered  1xx / 2xx (ACK sent)
//!                 ◀── DialogEvent::Reoffered       the peer's re-INVITE / UPDATE
//!   Signal::AnswerReoffer ───────────────────────▶ its 2xx
//!   Signal::Reoffer ─────────────────────────────▶ re-INVITE
//!                 ◀── DialogEvent::ReofferAnswered / ReofferFailed
//!   Signal::End ─────────────────────────────────▶ CANCEL / BYE
//!                 ◀── DialogEvent::Ended           BYE, CANCEL, failure
//! ```

use lyrebird_sip as sip;

use crate::ground::{CallId, TransferId};

/// Identifies an MSRP chat session within its account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct ChatId(pub(crate) u64);

/// A session of any kind, as the account's session table knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum SessionId {
    Call(CallId),
    File(TransferId),
    Chat(ChatId),
}

/// Session task → account: signalling work on the session's dialog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Signal {
    /// Open the session with this offer (an INVITE to the session's peer).
    Offer { sdp: String },
    /// Accept the peer's offer with this answer (a 2xx to its INVITE).
    Answer { sdp: String },
    /// A new offer within the running session (a re-INVITE: hold, resume, an ICE restart).
    Reoffer { sdp: String },
    /// The answer to the peer's re-offer; `None` repeats the current description (the new
    /// offer could not be taken, or it was a refresh that changes nothing).
    AnswerReoffer { sdp: Option<String> },
    /// Decline the peer's offer before it is answered.
    Decline { status: u16 },
    /// End the session: CANCEL before an answer, BYE after, with a Reason (RFC 3326) if any.
    End { reason: Option<sip::Reason> },
}

/// Account → session task: what the peer (or the signalling path) did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DialogEvent {
    /// A provisional answer to our offer (180 ringing, 183 with early media).
    Progress { status: u16, sdp: Option<String> },
    /// Our offer was accepted.
    Answered { sdp: Option<String> },
    /// The peer made a new offer in the running session; answer with
    /// [`Signal::AnswerReoffer`]. `None`: it asks for our offer (answered with the current
    /// description).
    Reoffered { sdp: Option<String> },
    /// Our re-offer was accepted with this answer.
    ReofferAnswered { sdp: Option<String> },
    /// Our re-offer was refused; the session goes on as it was (RFC 3261 §14.1).
    ReofferFailed { status: u16, reason: String },
    /// The peer sent a DTMF digit in signalling (SIP INFO, RFC 6086).
    Dtmf {
        digit: char,
        duration_ms: Option<u32>,
    },
    /// The peer asks us to call `target` instead (REFER, RFC 3515), replacing one of its
    /// dialogs there when `replaces` is set (attended transfer, RFC 3891).
    Referred {
        refer: sip::IncomingReferId,
        target: String,
        replaces: Option<sip::ReplacesTarget>,
        referred_by: Option<String>,
    },
    /// How the call we asked the peer to make (our REFER) is going.
    ReferProgress {
        refer: sip::ReferId,
        status: u16,
        reason: String,
        done: bool,
    },
    /// The session is over; the id is no longer valid on the dialog.
    Ended { reason: sip::EndReason },
}
