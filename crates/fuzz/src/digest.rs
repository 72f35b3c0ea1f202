//! Digest challenges (RFC 7616, RFC 8760) from `WWW-Authenticate`, `Proxy-Authenticate` and
//! MSRP relays, and the credentials written in answer.

use lyrebird_digest::{Challenge, Credentials, DigestInput, authorization_value};

/// A challenge value (several, one per line, for `best`). The answer to an accepted challenge
/// must carry its realm, nonce and opaque back unchanged, whatever characters they hold:
/// a server compares them byte for byte.
pub fn challenge(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = Challenge::best(text.lines());
    let _ = Credentials::parse(&text);
    let Some(challenge) = Challenge::parse(&text) else {
        return;
    };
    let input = DigestInput {
        username: "alice",
        password: "secret",
        method: "REGISTER",
        uri: "sip:example.com",
        cnonce: "0a4f113b",
        nonce_count: 1,
    };
    let Ok(answer) = authorization_value(&challenge, &input) else {
        return;
    };
    let Some(credentials) = Credentials::parse(&answer) else {
        panic!("our own Authorization value does not parse: {answer:?}");
    };
    assert_eq!(credentials.realm, challenge.realm, "realm in {answer:?}");
    assert_eq!(credentials.nonce, challenge.nonce, "nonce in {answer:?}");
    assert_eq!(
        credentials.username, input.username,
        "username in {answer:?}"
    );
}
