//! HTTP file upload (XEP-0363): the service's size limit (§2), asking for a slot (§4) and
//! checking the slot the service hands out (only HTTP(S) URLs, only the allowed headers).
//!
//! State owned here: none; the service and its limit are found by `disco.rs`.

use std::time::Instant;

use xmpp_parsers::minidom::Element;

use super::iq::IqPurpose;
use super::{Client, child_text, ns};
use crate::XmppError;
use crate::event::*;
use crate::xml::Xml;

impl Client {
    /// Asks the upload service for a slot (XEP-0363 §4). Returns the request id.
    pub fn request_upload_slot(
        &mut self,
        now: Instant,
        filename: &str,
        size: u64,
        content_type: &str,
    ) -> Result<String, XmppError> {
        let Some((service, limit)) = self.disco.upload_service.clone() else {
            return Err(XmppError::Unsupported(
                "the server has no HTTP upload service".into(),
            ));
        };
        if let Some(limit) = limit.filter(|l| size > *l) {
            return Err(XmppError::InvalidInput(format!(
                "file of {size} bytes exceeds the server's limit of {limit}"
            )));
        }
        let name = filename.rsplit(['/', '\\']).next().unwrap_or(filename);
        if name.is_empty() {
            return Err(XmppError::InvalidInput("empty file name".into()));
        }
        let request = self.new_id();
        self.send_iq(
            now,
            "get",
            Some(&service),
            Xml::ns("request", ns::UPLOAD)
                .attr("filename", name)
                .attr("size", &size.to_string())
                .attr("content-type", content_type),
            IqPurpose::UploadSlot {
                request: request.clone(),
            },
        );
        Ok(request)
    }

    /// The answer to [`IqPurpose::UploadSlot`].
    pub(super) fn on_upload_slot(&mut self, request: String, el: &Element) {
        match el.get_child("slot", ns::UPLOAD).and_then(parse_slot) {
            Some(slot) => self
                .events
                .push_back(XmppEvent::UploadSlot { request, slot }),
            None => self.events.push_back(XmppEvent::UploadFailed {
                request,
                condition: "the server's slot has no usable put/get URL".into(),
            }),
        }
    }

    pub(super) fn upload_failed(&mut self, request: String, condition: String) {
        self.events
            .push_back(XmppEvent::UploadFailed { request, condition });
    }
}

/// XEP-0363 §2: the size limit, from the service's extended disco form.
pub(super) fn upload_limit(query: &Element) -> Option<u64> {
    query
        .children()
        .filter(|c| c.is("x", ns::DATA_FORMS))
        .flat_map(|x| x.children())
        .filter(|f| f.name() == "field" && f.attr("var") == Some("max-file-size"))
        .find_map(|f| child_text(f, "value", ns::DATA_FORMS))
        .and_then(|v| v.trim().parse().ok())
}

fn parse_slot(slot: &Element) -> Option<UploadSlot> {
    let put = slot.get_child("put", ns::UPLOAD)?;
    let get = slot.get_child("get", ns::UPLOAD)?;
    let put_url = put.attr("url")?.to_owned();
    let get_url = get.attr("url")?.to_owned();
    if !(put_url.starts_with("http://") || put_url.starts_with("https://")) {
        return None;
    }
    // XEP-0363 §4: only these headers may be passed on; anything else is dropped.
    let put_headers = put
        .children()
        .filter(|h| h.name() == "header")
        .filter_map(|h| {
            let name = h.attr("name")?;
            ["Authorization", "Cookie", "Expires"]
                .iter()
                .any(|allowed| allowed.eq_ignore_ascii_case(name))
                .then(|| (name.to_owned(), h.text().replace(['\r', '\n'], "")))
        })
        .collect();
    Some(UploadSlot {
        put_url,
        put_headers,
        get_url,
    })
}
