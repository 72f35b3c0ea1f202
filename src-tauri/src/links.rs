//! `sip:`, `sips:`, `tel:` and `xmpp:` links that open Lyrebird (RFC 3261 §19.1, RFC 3966,
//! RFC 5122). They arrive as command-line arguments (Linux, Windows: first launch, or a second
//! launch forwarded by the single-instance plugin) or as deep-link events (macOS). The UI gets
//! each as the event `"open-uri"` with the URI string and decides what to do (dial, chat).

/// The schemes Lyrebird opens. `sips` is registered implicitly by accepting it here only.
const SCHEMES: [&str; 4] = ["sip", "sips", "tel", "xmpp"];

/// Longest link accepted; a real address is far shorter, and the UI shows it.
const MAX_LINK_LEN: usize = 2048;

/// Whether `text` is a link Lyrebird opens: a known scheme, nothing after it but printable
/// characters, and a sane length.
pub fn is_link(text: &str) -> bool {
    let Some((scheme, rest)) = text.split_once(':') else {
        return false;
    };
    SCHEMES.iter().any(|s| s.eq_ignore_ascii_case(scheme))
        && !rest.trim_start_matches('/').is_empty()
        && text.len() <= MAX_LINK_LEN
        && !text.chars().any(char::is_control)
}

/// The links among command-line arguments (the program name and options never match).
pub fn links_in_args<I, S>(args: I) -> Vec<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    args.into_iter()
        .filter(|a| is_link(a.as_ref()))
        .map(|a| a.as_ref().to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_links_among_arguments() {
        let args = [
            "/usr/bin/lyrebird",
            "--minimized",
            "sip:bob@lyrebird.test",
            "TEL:+15551234",
            "xmpp:room@conference.lyrebird.test?join",
            "sips:carol@example.com",
            "http://example.com",
        ];
        assert_eq!(
            links_in_args(args),
            vec![
                "sip:bob@lyrebird.test",
                "TEL:+15551234",
                "xmpp:room@conference.lyrebird.test?join",
                "sips:carol@example.com",
            ]
        );
    }

    #[test]
    fn rejects_empty_overlong_and_control_characters() {
        assert!(!is_link("sip:"));
        assert!(!is_link("sip://"));
        assert!(!is_link("sipx:bob"));
        assert!(!is_link("sip:bob\n@x"));
        assert!(!is_link(&format!("sip:{}", "a".repeat(MAX_LINK_LEN))));
        assert!(is_link("tel:1"));
    }
}
