//! The stream itself: opening it (RFC 7395 §3.4), SASL (RFC 6120 §6, with the stream restart
//! of §6.4.6 / RFC 7395 §3.5), resource binding (RFC 6120 §7) and what a freshly bound session
//! does first, closing (RFC 7395 §3.6) and stream errors (RFC 6120 §4.9).
//!
//! State owned here: the negotiation [`Phase`] (which holds the SASL exchange while it runs),
//! and the `authenticated`, `features`, `bound_jid`, `negotiation_deadline`, `closing` and
//! `close_answered` fields of [`Client`]. Resumption (XEP-0198 `<resume/>`) is chosen here, between
//! SASL and binding, and completed in `sm.rs`.

use std::time::Instant;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use rand::Rng;
use tracing::{debug, warn};
use xmpp_parsers::jid::Jid;
use xmpp_parsers::minidom::Element;

use super::iq::IqPurpose;
use super::sm::{SmState, Unacked};
use super::{Client, child_text, ns};
use crate::XmppError;
use crate::event::*;
use crate::sasl::{Mechanism, SaslExchange};
use crate::xml::Xml;

#[derive(Debug)]
pub(super) enum Phase {
    /// No connection.
    Disconnected,
    /// `<open/>` sent; waiting for the server's `<open/>` and features.
    Opening,
    /// SASL exchange in progress.
    Authenticating(SaslExchange),
    /// Resource binding IQ sent.
    Binding,
    /// XEP-0198 `<resume/>` sent.
    Resuming,
    /// Stanzas flow.
    Online,
    /// We or the server closed the stream.
    Closed,
}

impl Client {
    /// Closes the stream politely (sends unavailable presence first).
    pub fn close(&mut self, _now: Instant) {
        if self.is_online() {
            self.send_raw(
                Xml::ns("presence", ns::CLIENT)
                    .attr("type", "unavailable")
                    .build(),
            );
            // Ack what we handled so the server does not keep the session for resumption.
            if self.sm.counting_in {
                self.send_ack_answer();
            }
        }
        if !matches!(self.phase, Phase::Disconnected | Phase::Closed) {
            self.send_raw(Xml::ns("close", ns::FRAMING).build());
        }
        self.closing = true;
        self.sm = SmState {
            session: self.sm.session,
            ..SmState::default()
        };
        self.phase = Phase::Closed;
    }

    pub(super) fn fail(&mut self, error: XmppError) {
        warn!(%error, "xmpp stream failed");
        if !matches!(self.phase, Phase::Closed | Phase::Disconnected) {
            self.send_raw(Xml::ns("close", ns::FRAMING).build());
        }
        self.close_locally(Some(error));
    }

    pub(super) fn close_locally(&mut self, error: Option<XmppError>) {
        if matches!(self.phase, Phase::Disconnected) {
            return;
        }
        self.phase = Phase::Closed;
        self.negotiation_deadline = None;
        self.iqs.clear();
        for room in self.rooms.values_mut() {
            room.joined = false;
        }
        self.events.push_back(XmppEvent::Offline { error });
    }

    pub(super) fn open_stream(&mut self, now: Instant) {
        self.phase = Phase::Opening;
        self.negotiation_deadline = Some(now + self.config.response_timeout);
        self.send_raw(
            Xml::ns("open", ns::FRAMING)
                .attr("to", &self.domain)
                .attr("version", "1.0")
                .attr("xml:lang", "en")
                .build(),
        );
    }

    pub(super) fn on_open(&mut self) {
        if !matches!(self.phase, Phase::Opening) {
            self.warn("unexpected <open/> ignored".into());
        }
    }

    pub(super) fn on_close(&mut self, el: &Element) {
        // RFC 7395 §3.6: answer the server's close with ours, then the WS closes.
        if self.closing {
            self.close_answered = true;
        } else {
            self.send_raw(Xml::ns("close", ns::FRAMING).build());
        }
        let error = if self.closing {
            None
        } else if let Some(uri) = el.attr("see-other-uri") {
            Some(XmppError::StreamError {
                condition: "see-other-uri".into(),
                text: Some(uri.to_owned()),
            })
        } else {
            Some(XmppError::Protocol("the server closed the stream".into()))
        };
        self.close_locally(error);
    }

    pub(super) fn on_stream_error(&mut self, el: &Element) {
        let condition = el
            .children()
            .find(|c| c.ns() == ns::STREAM_ERRORS && c.name() != "text")
            .map(|c| c.name().to_owned())
            .unwrap_or_else(|| "undefined-condition".into());
        let text = child_text(el, "text", ns::STREAM_ERRORS);
        if condition == "conflict" {
            // Another login took our resource; resuming this session is impossible.
            self.sm = SmState::default();
        }
        self.fail(XmppError::StreamError { condition, text });
    }

    pub(super) fn on_features(&mut self, now: Instant, features: Element) {
        if !matches!(self.phase, Phase::Opening) {
            self.warn("unexpected stream features ignored".into());
            return;
        }
        self.negotiation_deadline = Some(now + self.config.response_timeout);
        if !self.authenticated {
            let offered: Vec<String> = features
                .get_child("mechanisms", ns::SASL)
                .map(|m| {
                    m.children()
                        .filter(|c| c.name() == "mechanism")
                        .map(Element::text)
                        .collect()
                })
                .unwrap_or_default();
            let Some(mechanism) =
                Mechanism::choose(offered.iter().map(String::as_str), self.config.allow_plain)
            else {
                self.fail(XmppError::NoMechanism {
                    offered: offered.join(","),
                });
                return;
            };
            debug!(mechanism = mechanism.name(), "authenticating");
            let cnonce = {
                let bytes: [u8; 18] = self.rng.random();
                B64.encode(bytes)
            };
            let local = self.local.clone();
            let (exchange, initial) =
                SaslExchange::start(mechanism, &local, &self.config.password, &cnonce);
            self.send_raw(
                Xml::ns("auth", ns::SASL)
                    .attr("mechanism", mechanism.name())
                    .text(&B64.encode(initial))
                    .build(),
            );
            self.phase = Phase::Authenticating(exchange);
            return;
        }
        let sm_offered = features.has_child("sm", ns::SM);
        self.features = Some(features);
        if sm_offered && let Some(previd) = self.sm.resume_id.clone() {
            // The server resends everything after `h` and counts on from there.
            let h = self.reported_handled();
            self.sm.inbound = h;
            self.sm.confirmed = h;
            self.sm.answered = h;
            self.send_raw(
                Xml::ns("resume", ns::SM)
                    .attr("previd", &previd)
                    .attr("h", &h.to_string())
                    .build(),
            );
            self.phase = Phase::Resuming;
            return;
        }
        self.bind(now);
    }

    pub(super) fn bind(&mut self, now: Instant) {
        let id = self.new_id();
        let bind = Xml::ns("bind", ns::BIND)
            .child_opt(
                self.config
                    .resource
                    .as_deref()
                    .map(|r| Xml::new("resource").text(r)),
            )
            .build();
        self.send_raw(format!(
            "<iq xmlns='jabber:client' type='set' id='{id}'>{bind}</iq>"
        ));
        self.iqs.insert(
            id.clone(),
            (IqPurpose::Bind, now + self.config.response_timeout),
        );
        self.phase = Phase::Binding;
    }

    pub(super) fn on_sasl(&mut self, now: Instant, el: Element) {
        let Phase::Authenticating(exchange) = &mut self.phase else {
            self.warn(format!("unexpected SASL <{}/> ignored", el.name()));
            return;
        };
        let data = match B64.decode(el.text().trim()) {
            Ok(d) => d,
            Err(_) if el.name() == "failure" => Vec::new(),
            Err(_) => {
                self.fail(XmppError::Protocol("SASL data is not base64".into()));
                return;
            }
        };
        match el.name() {
            "challenge" => match exchange.challenge(&data) {
                Ok(response) => self.send_raw(
                    Xml::ns("response", ns::SASL)
                        .text(&B64.encode(response))
                        .build(),
                ),
                Err(e) => {
                    self.send_raw(Xml::ns("abort", ns::SASL).build());
                    self.fail(e);
                }
            },
            "success" => match exchange.success(&data) {
                Ok(()) => {
                    debug!("authenticated");
                    self.authenticated = true;
                    // RFC 6120 §6.4.6 / RFC 7395 §3.5: restart the stream.
                    self.open_stream(now);
                }
                Err(e) => self.fail(e),
            },
            "failure" => {
                let condition = el
                    .children()
                    .find(|c| c.name() != "text")
                    .map(|c| c.name().to_owned())
                    .unwrap_or_else(|| "not-authorized".into());
                let text = child_text(&el, "text", ns::SASL);
                self.sm = SmState::default();
                self.fail(XmppError::AuthFailed { condition, text });
            }
            other => {
                let other = other.to_owned();
                self.fail(XmppError::Protocol(format!("unexpected SASL <{other}/>")));
            }
        }
    }

    /// The answer to [`IqPurpose::Bind`]: the session is new (not resumed), so everything a
    /// session starts with is asked for again.
    pub(super) fn on_bound(&mut self, now: Instant, el: &Element) {
        let jid = el
            .get_child("bind", ns::BIND)
            .and_then(|b| child_text(b, "jid", ns::BIND));
        let Some(jid) = jid.filter(|j| Jid::new(j).is_ok()) else {
            self.fail(XmppError::Protocol(
                "resource binding returned no JID".into(),
            ));
            return;
        };
        self.bound_jid = Some(jid.clone());
        self.negotiation_deadline = None;
        self.phase = Phase::Online;
        // XEP-0198 §3: enable with resumption before anything else, so every later stanza is
        // counted.
        let sm_offered = self
            .features
            .as_ref()
            .is_some_and(|f| f.has_child("sm", ns::SM));
        // The old session is gone: what it did not get acked is sent again on the new one
        // (messages only; the receiver de-duplicates by id). Roster/presence/IQs are redone.
        let leftover: Vec<Unacked> = self.sm.unacked.drain(..).collect();
        self.sm = SmState {
            session: self.sm.session,
            ..SmState::default()
        };
        if sm_offered {
            self.send_raw(Xml::ns("enable", ns::SM).attr("resume", "true").build());
            self.sm.counting_out = true;
        }
        self.start_session(now, jid);
        for old in leftover {
            if old.message.is_some() {
                self.transmit_stanza(old.xml, old.message);
            }
        }
        self.flush_pending();
    }

    /// A session resumed that an earlier run of the owner left ([`Client::resume_after_restart`]):
    /// the server kept it, with what it queued for it, but this run has none of its state. So it
    /// starts over on it as on a new one, after an unavailable presence: the next available
    /// presence is then an initial one again (RFC 6121 §4.2), for which the server sends our
    /// contacts' presence back, and it takes us out of the rooms the earlier run was in.
    pub(super) fn take_over_earlier_session(&mut self, now: Instant) {
        debug!("resumed the session an earlier run left; starting over on it");
        self.transmit_stanza(
            Xml::ns("presence", ns::CLIENT)
                .attr("type", "unavailable")
                .build(),
            None,
        );
        let jid = self.bound_jid.clone().unwrap_or_else(|| self.bare_jid());
        self.start_session(now, jid);
        self.flush_pending();
    }

    /// What every session starts with: roster, carbons, what the server offers, our presence
    /// and rooms.
    fn start_session(&mut self, now: Instant, jid: String) {
        self.events.push_back(XmppEvent::Online {
            jid,
            resumed: false,
        });
        self.send_iq(
            now,
            "get",
            None,
            Xml::ns("query", ns::ROSTER),
            IqPurpose::RosterGet,
        );
        self.send_iq(
            now,
            "set",
            None,
            Xml::ns("enable", ns::CARBONS),
            IqPurpose::Carbons,
        );
        let domain = self.domain.clone();
        self.send_iq(
            now,
            "get",
            Some(&domain),
            Xml::ns("query", ns::DISCO_INFO),
            IqPurpose::ServerInfo,
        );
        self.send_iq(
            now,
            "get",
            Some(&domain),
            Xml::ns("query", ns::DISCO_ITEMS),
            IqPurpose::ServerItems,
        );
        if let Some(presence) = self.presence.clone() {
            self.transmit_stanza(presence, None);
        }
        let rooms: Vec<String> = self.rooms.keys().cloned().collect();
        for room in rooms {
            self.send_join(&room);
        }
    }
}
