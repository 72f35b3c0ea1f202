//! Service discovery (XEP-0030) and entity capabilities (XEP-0115): after binding, the server's
//! disco#info and disco#items, and disco#info of each item to find the HTTP upload service
//! (XEP-0363 §2), reported together as one [`XmppEvent::ServerInfo`]; what peers' caps mean,
//! asked once per `ver` (XEP-0115 §6.2); our own caps `ver` (§5.1) and our answer to disco#info.
//!
//! State owned here: [`Disco`], what the server offers and which caps are already known.

use std::collections::HashMap;
use std::time::Instant;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use xmpp_parsers::minidom::Element;

use super::iq::IqPurpose;
use super::upload::upload_limit;
use super::{Client, ns};
use crate::event::*;
use crate::xml::Xml;

/// What we tell others we support (XEP-0030 / XEP-0115).
const OUR_FEATURES: [&str; 10] = [
    ns::DISCO_INFO,
    ns::CAPS,
    ns::RECEIPTS,
    ns::CHATSTATES,
    ns::CORRECT,
    ns::CARBONS,
    ns::OOB,
    ns::MUC,
    ns::PING,
    ns::SID,
];

#[derive(Debug, Default)]
pub(super) struct Disco {
    /// The server's disco#info features.
    server_features: Vec<String>,
    /// disco#info queries of the server's items not answered yet.
    pending: usize,
    /// The HTTP upload service found among the server's items, and its size limit.
    pub(super) upload_service: Option<(String, Option<u64>)>,
    /// What each XEP-0115 `ver` seen means, or who waits to learn it.
    caps: HashMap<String, Caps>,
}

/// One XEP-0115 `ver`: asked about once (§6.2), its features then told for every device that
/// announces it, so each contact's device gets its own [`XmppEvent::PeerFeatures`].
#[derive(Debug)]
enum Caps {
    /// The disco#info query is out; these full JIDs announced the `ver` meanwhile.
    Asked { waiting: Vec<String> },
    /// The features the `ver` stands for.
    Known(Vec<String>),
}

/// The most devices kept waiting for one `ver`'s answer (a flood of presences must not grow
/// the list without bound).
const MAX_WAITING_FOR_CAPS: usize = 256;

impl Client {
    /// The answer to [`IqPurpose::ServerInfo`].
    pub(super) fn on_server_info(&mut self, el: &Element) {
        if let Some(q) = el.get_child("query", ns::DISCO_INFO) {
            self.disco.server_features = features_of(q);
        }
        self.report_server_info_if_done();
    }

    /// The answer to [`IqPurpose::ServerItems`]: asks each item what it is.
    pub(super) fn on_server_items(&mut self, now: Instant, el: &Element) {
        let items: Vec<String> = el
            .get_child("query", ns::DISCO_ITEMS)
            .map(|q| {
                q.children()
                    .filter(|c| c.name() == "item")
                    .filter_map(|c| c.attr("jid"))
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        for item in items {
            self.disco.pending += 1;
            self.send_iq(
                now,
                "get",
                Some(&item),
                Xml::ns("query", ns::DISCO_INFO),
                IqPurpose::ServiceInfo(item.clone()),
            );
        }
        self.report_server_info_if_done();
    }

    /// The answer to [`IqPurpose::ServiceInfo`].
    pub(super) fn on_service_info(&mut self, service: String, el: &Element) {
        self.disco.pending = self.disco.pending.saturating_sub(1);
        if let Some(q) = el.get_child("query", ns::DISCO_INFO)
            && features_of(q).iter().any(|f| f == ns::UPLOAD)
        {
            self.disco.upload_service = Some((service, upload_limit(q)));
        }
        self.report_server_info_if_done();
    }

    pub(super) fn service_info_failed(&mut self) {
        self.disco.pending = self.disco.pending.saturating_sub(1);
        self.report_server_info_if_done();
    }

    pub(super) fn report_server_info_if_done(&mut self) {
        let waiting = self.iqs.values().any(|(p, _)| {
            matches!(
                p,
                IqPurpose::ServerInfo | IqPurpose::ServerItems | IqPurpose::ServiceInfo(_)
            )
        });
        if !waiting {
            self.events.push_back(XmppEvent::ServerInfo {
                features: self.disco.server_features.clone(),
                upload_service: self.disco.upload_service.clone(),
            });
        }
    }

    /// Caps `node#ver` seen in available presence from `from` (not ourselves).
    pub(super) fn learn_caps(&mut self, now: Instant, from: &str, node: &str, ver: &str) {
        match self.disco.caps.get_mut(ver) {
            Some(Caps::Known(features)) => {
                let features = features.clone();
                self.events.push_back(XmppEvent::PeerFeatures {
                    jid: from.to_owned(),
                    features,
                });
                return;
            }
            Some(Caps::Asked { waiting }) => {
                if waiting.len() < MAX_WAITING_FOR_CAPS && !waiting.iter().any(|j| j == from) {
                    waiting.push(from.to_owned());
                }
                return;
            }
            None => {}
        }
        self.disco.caps.insert(
            ver.to_owned(),
            Caps::Asked {
                waiting: Vec::new(),
            },
        );
        // XEP-0115 §6.2: ask once per ver what it means.
        self.send_iq(
            now,
            "get",
            Some(from),
            Xml::ns("query", ns::DISCO_INFO).attr("node", &format!("{node}#{ver}")),
            IqPurpose::PeerInfo {
                jid: from.to_owned(),
                ver: ver.to_owned(),
            },
        );
    }

    /// The answer to [`IqPurpose::PeerInfo`].
    pub(super) fn on_peer_info(&mut self, jid: String, ver: String, el: &Element) {
        let features = el
            .get_child("query", ns::DISCO_INFO)
            .map(features_of)
            .unwrap_or_default();
        let waiting = match self.disco.caps.insert(ver, Caps::Known(features.clone())) {
            Some(Caps::Asked { waiting }) => waiting,
            _ => Vec::new(),
        };
        for other in waiting.into_iter().filter(|w| *w != jid) {
            self.events.push_back(XmppEvent::PeerFeatures {
                jid: other,
                features: features.clone(),
            });
        }
        self.events
            .push_back(XmppEvent::PeerFeatures { jid, features });
    }

    /// The disco#info query for `ver` failed: the next device announcing it is asked.
    pub(super) fn peer_info_failed(&mut self, ver: &str) {
        if matches!(self.disco.caps.get(ver), Some(Caps::Asked { .. })) {
            self.disco.caps.remove(ver);
        }
    }

    /// Answers a disco#info request about us (any node: we have one set of features).
    pub(super) fn answer_disco_info(&mut self, payload: &Element, id: &str, from: Option<&str>) {
        let node = payload.attr("node").map(str::to_owned);
        let mut query = Xml::ns("query", ns::DISCO_INFO).attr_opt("node", node.as_deref());
        query = query.child(
            Xml::new("identity")
                .attr("category", "client")
                .attr("type", "pc")
                .attr("name", "Lyrebird"),
        );
        for feature in self.our_features() {
            query = query.child(Xml::new("feature").attr("var", feature));
        }
        self.iq_reply(from, id, Some(query));
    }

    /// The chat features and the configured extra ones (calls), without duplicates.
    fn our_features(&self) -> Vec<&str> {
        let mut features: Vec<&str> = OUR_FEATURES.to_vec();
        for extra in &self.config.extra_features {
            if !features.contains(&extra.as_str()) {
                features.push(extra);
            }
        }
        features
    }

    /// XEP-0115 §5.1 verification string over our disco#info, SHA-1, base64.
    pub(super) fn caps_ver(&self) -> String {
        let mut features = self.our_features();
        features.sort_unstable();
        let mut s = String::from("client/pc//Lyrebird<");
        for f in features {
            s.push_str(f);
            s.push('<');
        }
        let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, s.as_bytes());
        B64.encode(digest.as_ref())
    }
}

fn features_of(query: &Element) -> Vec<String> {
    query
        .children()
        .filter(|c| c.name() == "feature")
        .filter_map(|c| c.attr("var"))
        .map(str::to_owned)
        .collect()
}
