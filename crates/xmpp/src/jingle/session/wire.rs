//! The IQ answers to Jingle requests (XEP-0166 §6.3.2, §10), which the engine also sends for
//! sessions no core has, and tie-breaking (§7.2.16).

use tracing::debug;

use crate::jingle::element::{Action, Jingle, ReasonText};
use crate::jingle::error::JingleError;
use crate::ns;
use crate::xml::Xml;

use super::Outgoing;

/// `<iq type='result'/>` acknowledging a Jingle IQ (XEP-0166 §6.3.2).
pub fn iq_result(to: &str, id: &str) -> String {
    Xml::ns("iq", ns::CLIENT)
        .attr("type", "result")
        .attr("to", to)
        .attr("id", id)
        .build()
}

/// An IQ error with a stanza condition and an optional XEP-0166 §10 Jingle condition
/// (`unknown-session`, `out-of-order`, `tie-break`, `unsupported-info`). The engine answers
/// a Jingle IQ for a session it does not have with `item-not-found` + `unknown-session`, and
/// a malformed one with `bad-request`.
pub fn iq_error(
    to: &str,
    id: &str,
    kind: &str,
    condition: &'static str,
    jingle_condition: Option<&'static str>,
) -> String {
    let mut error = Xml::new("error")
        .attr("type", kind)
        .child(Xml::ns(condition, ns::STANZA_ERRORS));
    if let Some(c) = jingle_condition {
        error = error.child(Xml::ns(c, ns::JINGLE_ERRORS));
    }
    Xml::ns("iq", ns::CLIENT)
        .attr("type", "error")
        .attr("to", to)
        .attr("id", id)
        .child(error)
        .build()
}

/// The answer to a `session-initiate` that did not read as a call (an unknown transport or
/// application, no fingerprint, ...): the IQ is acknowledged and the session terminated with
/// the matching reason (XEP-0166 §6.3.2, "ack, then terminate"), so the caller learns why.
pub fn refuse_session_initiate(
    local: &str,
    from: &str,
    iq_id: &str,
    sid: &str,
    error: &JingleError,
) -> Vec<Outgoing> {
    let mut terminate = Jingle::new(Action::SessionTerminate, sid);
    terminate.reason = Some(ReasonText {
        reason: error.reason(),
        text: Some(error.to_string()),
    });
    let terminate = Xml::ns("iq", ns::CLIENT)
        .attr("type", "set")
        .attr("to", from)
        .attr("id", &format!("{sid}-refused"))
        .child(terminate.to_xml())
        .build();
    debug!(%local, %sid, %error, "session-initiate refused");
    vec![
        Outgoing {
            to: from.to_owned(),
            xml: iq_result(from, iq_id),
        },
        Outgoing {
            to: from.to_owned(),
            xml: terminate,
        },
    ]
}

/// XEP-0166 §7.2.16 tie-break between two `session-initiate`s crossing between the same
/// parties: the one with the lower sid wins. True if `ours` wins, in which case the engine
/// answers theirs with `iq_error(.., "cancel", "conflict", Some("tie-break"))`.
pub fn session_initiate_wins(ours: &str, theirs: &str) -> bool {
    ours < theirs
}
