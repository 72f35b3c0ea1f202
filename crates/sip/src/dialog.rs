//! Dialog state (RFC 3261 §12).
//!
//! A dialog is identified by Call-ID, local tag and remote tag (§12). The UAC takes the route
//! set from the Record-Route of the response in reverse order (§12.1.2), the UAS in received
//! order (§12.1.1); the remote target is the peer's Contact and is refreshed by target-refresh
//! requests (§12.2). Requests inside the dialog follow §12.2.1.1: with a loose-routing first
//! hop (`;lr`) the Request-URI is the remote target and the route set becomes Route headers;
//! with a strict router the first route becomes the Request-URI and the remote target is
//! appended as the last Route.

use crate::message::{NameAddr, Uri};

#[derive(Debug, Clone)]
pub(crate) struct Dialog {
    pub call_id: String,
    pub local_tag: String,
    /// `None` until the peer answered with a To tag (UAC before the first 1xx/2xx).
    pub remote_tag: Option<String>,
    /// Our address as it appears in From (UAC) or To (UAS), without tag.
    pub local_uri: String,
    /// The peer's address without tag.
    pub remote_uri: String,
    pub local_seq: u32,
    pub remote_seq: Option<u32>,
    pub remote_target: Uri,
    /// Route set, each entry a full `<uri>;params` value, first hop first.
    pub route_set: Vec<String>,
}

/// A name-addr printed without its `tag` parameter.
pub(crate) fn without_tag(na: &NameAddr) -> String {
    let mut copy = na.clone();
    copy.params.retain(|p| !p.name.eq_ignore_ascii_case("tag"));
    copy.to_string()
}

impl Dialog {
    pub(crate) fn local_party_value(&self) -> String {
        format!("{};tag={}", self.local_uri, self.local_tag)
    }

    pub(crate) fn remote_party_value(&self) -> String {
        match &self.remote_tag {
            Some(t) if !t.is_empty() => format!("{};tag={t}", self.remote_uri),
            _ => self.remote_uri.clone(),
        }
    }

    /// Request-URI and Route header values for the next in-dialog request (§12.2.1.1).
    pub(crate) fn request_target(&self) -> (Uri, Vec<String>) {
        let first = self.route_set.first().and_then(|r| NameAddr::parse(r).ok());
        match first {
            None => (self.remote_target.clone(), Vec::new()),
            Some(f) if f.uri.is_loose_route() => {
                (self.remote_target.clone(), self.route_set.clone())
            }
            Some(f) => {
                // Strict routing: first route is the Request-URI (without URI parameters
                // that are not allowed there), the remote target goes last.
                let mut ruri = f.uri.clone();
                ruri.params.retain(|p| !p.name.eq_ignore_ascii_case("lr"));
                let mut routes: Vec<String> = self.route_set[1..].to_vec();
                routes.push(format!("<{}>", self.remote_target));
                (ruri, routes)
            }
        }
    }
}
