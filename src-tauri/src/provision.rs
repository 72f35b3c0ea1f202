//! `LYREBIRD_PROVISION=/path/accounts.json` (demo and tests only): accounts saved at start, their
//! passwords kept in memory for this run (never written to the keyring or the database).
//!
//! The file is a JSON array of `{ "settings": AccountSettings, "password": "..." }`, where
//! `AccountSettings` is the engine's tagged union (`"kind": "sip" | "xmpp"`).

use lyrebird_engine::{AccountSettings, Password};
use serde::Deserialize;

/// One account to save at start.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProvisionedAccount {
    pub settings: AccountSettings,
    password: String,
}

impl ProvisionedAccount {
    pub fn password(&self) -> Password {
        Password::new(self.password.clone())
    }
}

impl std::fmt::Debug for ProvisionedAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProvisionedAccount")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// Parses a provisioning file's text. Errors say where the file is wrong, never a password.
pub fn parse(text: &str) -> Result<Vec<ProvisionedAccount>, String> {
    serde_json::from_str(text).map_err(|e| {
        format!(
            "provisioning file: {} at line {} column {}",
            e.classify_name(),
            e.line(),
            e.column()
        )
    })
}

/// Reads and parses the provisioning file at `path`.
pub fn load(path: &std::path::Path) -> Result<Vec<ProvisionedAccount>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read provisioning file {}: {e}", path.display()))?;
    parse(&text)
}

trait ClassifyName {
    fn classify_name(&self) -> &'static str;
}

impl ClassifyName for serde_json::Error {
    fn classify_name(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "unreadable",
            serde_json::error::Category::Syntax => "not JSON",
            serde_json::error::Category::Data => "not a list of {settings, password}",
            serde_json::error::Category::Eof => "cut short",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_one_sip_and_one_xmpp_account() {
        let text = r#"[
          {"settings": {"kind": "sip", "ws_url": "ws://127.0.0.1:8080", "aor": "sip:alice@lyrebird.test",
                        "display_name": "Alice", "auth_username": null, "outbound_proxy": null, "turn": null,
                        "msrp_relay_ws_url": null, "msrp_relay_uri": null, "trusted_certificate": null},
           "password": "alice-secret"},
          {"settings": {"kind": "xmpp", "ws_url": "ws://127.0.0.1:5280/xmpp-websocket",
                        "jid": "alice@lyrebird.test", "resource": null, "allow_plain": true,
                        "trusted_certificate": null},
           "password": "xmpp-secret"}
        ]"#;
        let accounts = parse(text).unwrap();
        assert_eq!(accounts.len(), 2);
        assert!(matches!(accounts[0].settings, AccountSettings::Sip(_)));
        assert!(matches!(accounts[1].settings, AccountSettings::Xmpp(_)));
        assert_eq!(accounts[0].password().expose(), "alice-secret");
        assert!(!format!("{:?}", accounts[0]).contains("alice-secret"));
    }

    #[test]
    fn errors_locate_the_fault_without_echoing_passwords() {
        let err = parse(r#"[{"settings": {"kind": "irc"}, "password": "hunter2"}]"#).unwrap_err();
        assert!(err.contains("line 1"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        assert!(parse("[").unwrap_err().contains("cut short"));
        assert!(parse(r#"{"settings": 1}"#).is_err());
        assert!(parse("[]").unwrap().is_empty());
    }
}
