//! IQ semantics (RFC 6120 §8.2.3): every request we send is remembered with what it was for and
//! a deadline; its result or error is routed back to the concern that asked. Requests from
//! others are answered here (roster pushes and disco#info by their modules, XEP-0199 ping
//! inline), anything else with `service-unavailable` (RFC 6120 §8.4).
//!
//! State owned here: [`IqPurpose`], the kind of each outstanding request in `Client::iqs`.

use std::time::{Duration, Instant};

use tracing::debug;
use xmpp_parsers::minidom::Element;

use super::{Client, ns, stanza_error_condition};
use crate::XmppError;
use crate::event::CallSignal;
use crate::xml::Xml;

/// What an outstanding IQ was for.
#[derive(Debug, Clone)]
pub(super) enum IqPurpose {
    Bind,
    RosterGet,
    RosterSet,
    Carbons,
    ServerInfo,
    ServerItems,
    ServiceInfo(String),
    PeerInfo {
        jid: String,
        ver: String,
    },
    Archive {
        query: String,
    },
    UploadSlot {
        request: String,
    },
    RoomConfig,
    /// A Jingle IQ-set a call core sent; its answer goes back to the engine.
    Jingle,
    /// XEP-0215 STUN/TURN services.
    ExternalServices,
}

impl Client {
    pub(super) fn send_iq(
        &mut self,
        now: Instant,
        kind: &str,
        to: Option<&str>,
        payload: Xml,
        purpose: IqPurpose,
    ) -> String {
        let id = self.new_id();
        let xml = Xml::ns("iq", ns::CLIENT)
            .attr("type", kind)
            .attr("id", &id)
            .attr_opt("to", to)
            .child(payload)
            .build();
        self.iqs.insert(
            id.clone(),
            (
                purpose,
                now + self.config.response_timeout.max(Duration::from_secs(1)),
            ),
        );
        self.send_stanza(xml, None);
        id
    }

    pub(super) fn on_iq(&mut self, now: Instant, el: Element) {
        let id = el.attr("id").unwrap_or_default().to_owned();
        let from = el.attr("from").map(str::to_owned);
        match el.attr("type") {
            Some("result") | Some("error") => {
                let Some((purpose, _)) = self.iqs.remove(&id) else {
                    return; // late or unknown answer
                };
                if el.attr("type") == Some("error") {
                    let condition = stanza_error_condition(&el);
                    self.iq_failed(now, &id, purpose, condition);
                } else {
                    self.iq_result(now, purpose, &el);
                }
            }
            Some("get") | Some("set") => self.iq_request(now, &el, &id, from.as_deref()),
            _ => self.warn("ignored an IQ without a valid type".into()),
        }
    }

    pub(super) fn iq_reply(&mut self, to: Option<&str>, id: &str, payload: Option<Xml>) {
        let xml = Xml::ns("iq", ns::CLIENT)
            .attr("type", "result")
            .attr("id", id)
            .attr_opt("to", to)
            .child_opt(payload)
            .build();
        self.send_stanza(xml, None);
    }

    fn iq_request(&mut self, _now: Instant, el: &Element, id: &str, from: Option<&str>) {
        let Some(payload) = el.children().next() else {
            self.iq_error(from, id, "cancel", "bad-request");
            return;
        };
        let pns = payload.ns();
        match (payload.name(), pns.as_str(), el.attr("type")) {
            ("query", ns::ROSTER, Some("set")) => self.on_roster_push(payload, id, from),
            ("ping", ns::PING, Some("get")) => self.iq_reply(from, id, None),
            ("query", ns::DISCO_INFO, Some("get")) => self.answer_disco_info(payload, id, from),
            ("jingle", ns::JINGLE, Some("set")) if self.config.calls => {
                self.on_jingle_iq(payload, id, from)
            }
            _ => self.iq_error(from, id, "cancel", "service-unavailable"),
        }
    }

    pub(super) fn iq_error(
        &mut self,
        to: Option<&str>,
        id: &str,
        kind: &str,
        condition: &'static str,
    ) {
        let xml = Xml::ns("iq", ns::CLIENT)
            .attr("type", "error")
            .attr("id", id)
            .attr_opt("to", to)
            .child(
                Xml::new("error")
                    .attr("type", kind)
                    .child(Xml::ns(condition, ns::STANZA_ERRORS)),
            )
            .build();
        self.send_stanza(xml, None);
    }

    fn iq_result(&mut self, now: Instant, purpose: IqPurpose, el: &Element) {
        match purpose {
            IqPurpose::Bind => self.on_bound(now, el),
            IqPurpose::RosterGet => self.on_roster(el),
            IqPurpose::RosterSet | IqPurpose::Carbons | IqPurpose::RoomConfig => {}
            IqPurpose::ServerInfo => self.on_server_info(el),
            IqPurpose::ServerItems => self.on_server_items(now, el),
            IqPurpose::ServiceInfo(service) => self.on_service_info(service, el),
            IqPurpose::PeerInfo { jid, ver } => self.on_peer_info(jid, ver, el),
            IqPurpose::Archive { query } => self.on_archive_page(now, query, el),
            IqPurpose::UploadSlot { request } => self.on_upload_slot(request, el),
            IqPurpose::Jingle => self.call_signals.push_back(CallSignal::IqResult {
                id: el.attr("id").unwrap_or_default().to_owned(),
            }),
            IqPurpose::ExternalServices => self.call_signals.push_back(CallSignal::IceServers(
                crate::jingle::caps::parse_services(el),
            )),
        }
    }

    /// An IQ of ours was answered with an error, or not at all (`remote-server-timeout`).
    pub(super) fn iq_failed(
        &mut self,
        _now: Instant,
        id: &str,
        purpose: IqPurpose,
        condition: String,
    ) {
        match purpose {
            IqPurpose::Jingle => self.call_signals.push_back(CallSignal::IqError {
                id: id.to_owned(),
                condition,
            }),
            IqPurpose::ExternalServices => {
                debug!(%condition, "no external services");
                self.call_signals
                    .push_back(CallSignal::IceServers(Vec::new()));
            }
            IqPurpose::Bind => self.fail(XmppError::Protocol(format!(
                "resource binding failed: {condition}"
            ))),
            IqPurpose::Archive { query } => self.archive_failed(query, condition),
            IqPurpose::UploadSlot { request } => self.upload_failed(request, condition),
            IqPurpose::ServiceInfo(_) => self.service_info_failed(),
            IqPurpose::ServerInfo => self.report_server_info_if_done(),
            IqPurpose::RosterSet => self.warn(format!("roster change refused: {condition}")),
            IqPurpose::Carbons => self.warn(format!("carbons not enabled: {condition}")),
            IqPurpose::RoomConfig => self.warn(format!("new room not unlocked: {condition}")),
            IqPurpose::PeerInfo { ver, .. } => {
                debug!(%condition, "a contact's disco#info failed");
                self.peer_info_failed(&ver);
            }
            IqPurpose::RosterGet | IqPurpose::ServerItems => debug!(%condition, "iq failed"),
        }
    }
}
