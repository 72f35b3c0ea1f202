//! What the user agent reports to its owner, and the handles those reports name.

use std::time::Duration;

use crate::message::NameAddr;
use crate::reason::Reason;
use crate::replaces::ReplacesTarget;
#[cfg(doc)]
use crate::timer::MESSAGE_ANSWER_WAIT;

/// Local handle of a call (not the SIP Call-ID).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallId(pub(crate) u64);

/// Local handle of an outgoing MESSAGE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(pub(crate) u64);

/// Local handle of an incoming MESSAGE that awaits its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IncomingMessageId(pub(crate) u64);

/// Local handle of a REFER we sent (RFC 3515), for its progress reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReferId(pub(crate) u64);

/// Local handle of a REFER we received, for `accept_refer`, `reject_refer`, `notify_refer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IncomingReferId(pub(crate) u64);

/// A party of a call or message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Party {
    /// Display name, unquoted.
    pub display_name: Option<String>,
    /// The URI.
    pub uri: String,
}

impl From<&NameAddr> for Party {
    fn from(na: &NameAddr) -> Self {
        Party {
            display_name: na.display_name.clone(),
            uri: na.uri.to_string(),
        }
    }
}

/// Why a call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndReason {
    /// We hung up (BYE, CANCEL, or declined/rejected an incoming call).
    LocalHangup,
    /// The peer sent BYE, saying why if it used a Reason header (RFC 3326).
    RemoteHangup {
        /// The BYE's Reason, if any.
        reason: Option<Reason>,
    },
    /// The caller cancelled before we answered.
    Cancelled,
    /// The peer answered our INVITE with a final error.
    Rejected {
        /// status code
        status: u16,
        /// reason phrase
        reason: String,
    },
    /// Local failure: transaction timeout (408), missing ACK (408), transport loss (503).
    Failed {
        /// status code
        status: u16,
        /// reason
        reason: String,
    },
}

/// Events for the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UaEvent {
    /// The registrar accepted our binding.
    Registered {
        /// Granted lifetime.
        expires: Duration,
        /// The registrar answered with `Require: outbound` (RFC 5626 §5.2).
        outbound: bool,
    },
    /// REGISTER failed (status 0: timeout or transport).
    RegistrationFailed {
        /// status code or 0
        status: u16,
        /// reason
        reason: String,
    },
    /// Our binding was removed.
    Unregistered,
    /// A new incoming INVITE.
    IncomingCall {
        /// handle
        call: CallId,
        /// caller
        from: Party,
        /// callee as addressed
        to: Party,
        /// SDP offer
        sdp: Option<String>,
        /// The INVITE carried a Replaces header (RFC 3891) naming this call of ours: the
        /// caller takes its place, so answering it should end that one.
        replaces: Option<CallId>,
    },
    /// 1xx to our INVITE (other than 100).
    CallProgress {
        /// handle
        call: CallId,
        /// status
        status: u16,
        /// reason phrase
        reason: String,
        /// early SDP
        sdp: Option<String>,
    },
    /// 2xx to our INVITE; the ACK is already queued.
    CallAnswered {
        /// handle
        call: CallId,
        /// SDP answer
        sdp: Option<String>,
    },
    /// The ACK for our 2xx arrived.
    CallConfirmed {
        /// handle
        call: CallId,
    },
    /// The peer sent a re-INVITE, or an UPDATE (RFC 3311) in an early or confirmed dialog;
    /// answer with `UserAgent::answer_reoffer`.
    Reoffer {
        /// handle
        call: CallId,
        /// new offer
        sdp: Option<String>,
    },
    /// Our re-INVITE (or UPDATE) got a 2xx; for a re-INVITE the ACK is already queued.
    ReofferAnswered {
        /// handle
        call: CallId,
        /// the peer's answer
        sdp: Option<String>,
    },
    /// Our re-INVITE (or UPDATE) finally failed: the session keeps its previous SDP and the
    /// call goes on (RFC 3261 §14.1), unless a [`UaEvent::CallEnded`] follows.
    ReofferFailed {
        /// handle
        call: CallId,
        /// status (408 on timeout)
        status: u16,
        /// reason phrase
        reason: String,
    },
    /// Progress of a REFER we sent: its own response (202, or the final error) and the
    /// `message/sipfrag` status lines of the NOTIFYs that follow (RFC 3515 §2.4.5).
    ReferProgress {
        /// the call the REFER was sent in
        call: CallId,
        /// handle from `UserAgent::refer`
        refer: ReferId,
        /// status line of the sipfrag, of the REFER's response, or 0 when the subscription
        /// ended without a final status
        status: u16,
        /// its reason phrase, or why the subscription ended
        reason: String,
        /// nothing more comes for this refer
        final_: bool,
    },
    /// The peer asks us to call `target` (RFC 3515); decide with
    /// `UserAgent::accept_refer` or `UserAgent::reject_refer`, then report how the new
    /// call goes with `UserAgent::notify_refer`.
    ReferReceived {
        /// the call the REFER came in
        call: CallId,
        /// handle for the answer and the notifications
        refer: IncomingReferId,
        /// the Refer-To URI, without its header part
        target: String,
        /// attended transfer: the dialog the new INVITE must replace (RFC 3891)
        replaces: Option<ReplacesTarget>,
        /// the Referred-By header (RFC 3892), as received
        referred_by: Option<String>,
    },
    /// A DTMF digit in an INFO request (`application/dtmf-relay` or `application/dtmf`).
    DtmfReceived {
        /// handle
        call: CallId,
        /// `0`-`9`, `*`, `#`, `A`-`D`
        digit: char,
        /// tone length, when the body said
        duration_ms: Option<u32>,
    },
    /// The call is over; the handle is now invalid.
    CallEnded {
        /// handle
        call: CallId,
        /// why
        reason: EndReason,
    },
    /// An incoming MESSAGE, not answered yet: answer it with `UserAgent::answer_message`
    /// once it is kept for good, because a 2xx tells the sender it was delivered (RFC 3428 §7)
    /// and the sender will not send it again. Unanswered after [`MESSAGE_ANSWER_WAIT`], the
    /// core answers 500 itself and reports [`UaEvent::MessageAnswerTimedOut`].
    MessageReceived {
        /// handle for the answer
        id: IncomingMessageId,
        /// The same for every copy of this request (its Call-ID, CSeq number and From tag),
        /// so a copy that comes in a transaction of its own, after ours has ended, is known.
        stable_id: String,
        /// sender
        from: Party,
        /// recipient as addressed
        to: Party,
        /// media type
        content_type: String,
        /// body
        body: Vec<u8>,
    },
    /// An incoming MESSAGE was not answered within [`MESSAGE_ANSWER_WAIT`]; the core
    /// answered it 500 (Server Internal Error), so the sender knows it was not delivered.
    MessageAnswerTimedOut {
        /// handle
        id: IncomingMessageId,
    },
    /// Our MESSAGE got a 2xx.
    MessageDelivered {
        /// handle
        id: MessageId,
    },
    /// Our MESSAGE failed.
    MessageFailed {
        /// handle
        id: MessageId,
        /// status (408 timeout, 503 transport)
        status: u16,
        /// reason
        reason: String,
    },
    /// Malformed input (already answered with 400/505 when possible).
    ProtocolError {
        /// what was wrong
        detail: String,
    },
}
