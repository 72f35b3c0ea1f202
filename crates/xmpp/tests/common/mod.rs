//! Helpers shared by the client-core tests.

use lyrebird_xmpp::Client;

/// Everything the client wants sent, in order.
pub fn drain(c: &mut Client) -> Vec<String> {
    std::iter::from_fn(|| c.poll_transmit()).collect()
}

/// The value of attribute `name` (single-quoted, as the client writes) in the first place it
/// appears in `xml`; empty when absent.
pub fn attr<'a>(xml: &'a str, name: &str) -> &'a str {
    let pat = format!("{name}='");
    let start = xml.find(&pat).map(|i| i + pat.len()).unwrap_or(0);
    let end = xml[start..].find('\'').map(|i| start + i).unwrap_or(start);
    &xml[start..end]
}
