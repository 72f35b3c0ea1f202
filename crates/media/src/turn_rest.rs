//! Time-limited TURN credentials derived from a secret shared with the TURN server: the
//! "TURN REST API" (draft-uberti-behave-turn-rest-00 §2.2), which coturn implements as
//! `use-auth-secret` and Kamailio's `auth_ephemeral` module as well.
//!
//! The user name is `<expiry>:<user>` (expiry in seconds since the Unix epoch) and the password
//! is base64(HMAC-SHA1(secret, user name)). The server recomputes the password from the user
//! name and refuses it once the expiry has passed, so a leaked credential is worth a day at
//! most, and the secret itself never leaves the machine.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use sha1::Sha1;

/// How long derived credentials stay valid: longer than any call's allocation refreshes need.
pub(crate) const LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);

/// The user name and password for `user` (empty: none) from `secret`, valid until
/// `now + LIFETIME`.
pub(crate) fn credentials(secret: &str, user: &str, now: SystemTime) -> (String, String) {
    let expiry = now
        .checked_add(LIFETIME)
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    let username = if user.is_empty() {
        expiry.to_string()
    } else {
        format!("{expiry}:{user}")
    };
    // HMAC takes a key of any length, so this cannot fail.
    let password = match Hmac::<Sha1>::new_from_slice(secret.as_bytes()) {
        Ok(mut mac) => {
            mac.update(username.as_bytes());
            B64.encode(mac.finalize().into_bytes())
        }
        Err(_) => String::new(),
    };
    (username, password)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_is_the_hmac_of_the_user_name_with_the_expiry_a_day_ahead() {
        // Cross-checked with Python: base64(hmac.new(b"north", b"1700086400:alice", sha1)).
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let (username, password) = credentials("north", "alice", now);
        assert_eq!(username, "1700086400:alice");
        assert_eq!(password, "SXua5ne/+mDhiHTp0pQJzRO4ESg=");
        assert_eq!(credentials("north", "", now).0, "1700086400");
    }
}
